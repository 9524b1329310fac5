/* This file implements layers.h: the dense T5 layers (embedding, output head, RMSNorm,
 * relative-position-bias attention, dense FFN, dropout, residual add, cross-entropy), forward
 * and backward.
 *
 * Dimension letters as in layers.h: B batch, T query tokens, S key tokens, N rows, C d_model,
 * F d_ff, H heads, D d_kv, V vocabulary; HD = H * D.
 *
 * Invariants: every matrix product goes through model_linear_* or sim_gemm (per-head attention
 * products use strided views: head h of a [rows, HD] projection starts at column h*D with row
 * stride HD); elementwise work is fp32 in a fixed order, so results are bit-reproducible for a
 * given input, numerics and rng state. Backward functions only add into their gradients.
 * Functions that return a status check user-given values before writing any output, except
 * that a GEMM failure (allocation) may leave outputs partly written.
 * reference: REFERENCE.md section 2; HuggingFace transformers modeling_t5.py (T5Attention,
 * T5LayerNorm, T5DenseGatedActDense, _relative_position_bucket) for the semantics followed.
 */
#include "model/layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------------- */

/* Zeroed scratch of rows * cols floats; SS_ERR_NOMEM with a message naming `what`. */
static ss_status scratch_alloc(float **out, size_t rows, size_t cols, const char *what,
                               ss_err *err)
{
    size_t n;
    *out = NULL;
    if (ss_mul_size(rows, cols, &n) != 0 || n > SIZE_MAX / sizeof(float))
        return ss_err_set(err, SS_ERR_NOMEM, "%s: %zu x %zu floats overflow", what, rows, cols);
    *out = calloc(n ? n : 1, sizeof(float));
    if (!*out)
        return ss_err_set(err, SS_ERR_NOMEM, "%s: cannot allocate %zu x %zu floats", what, rows,
                          cols);
    return SS_OK;
}

static ss_status check_rate(float p, ss_err *err)
{
    if (!(p >= 0.0f && p < 1.0f))
        return ss_err_set(err, SS_ERR_RANGE, "dropout rate %g is not in [0, 1)", (double)p);
    return SS_OK;
}

static ss_status check_tokens(const int32_t *tok, size_t n, size_t V, int32_t pad_id,
                              int allow_pad, const char *what, ss_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (allow_pad && tok[i] == pad_id)
            continue;
        if (tok[i] < 0 || (size_t)tok[i] >= V)
            return ss_err_set(err, SS_ERR_RANGE, "%s: token %d at position %zu is outside "
                              "[0, %zu)", what, (int)tok[i], i, V);
    }
    return SS_OK;
}

/* ---- embedding and output head ------------------------------------------------------- */

ss_status model_embedding_forward(float *out, const int32_t *tokens, const float *wte, size_t N,
                                  size_t C, size_t V, const model_numerics *nx, ss_err *err)
{
    SS_ASSERT(out && tokens && wte && nx);
    ss_status st = check_tokens(tokens, N, V, 0, 0, "embedding", err);
    if (st != SS_OK)
        return st;
    for (size_t n = 0; n < N; n++)
        memcpy(out + n * C, wte + (size_t)tokens[n] * C, C * sizeof(float));
    model_store(out, N * C, nx);
    return SS_OK;
}

void model_embedding_backward(float *dwte, const float *dout, const int32_t *tokens, size_t N,
                              size_t C, size_t V)
{
    SS_ASSERT(dwte && dout && tokens);
    for (size_t n = 0; n < N; n++) {
        SS_ASSERT(tokens[n] >= 0 && (size_t)tokens[n] < V);
        float *row = dwte + (size_t)tokens[n] * C;
        for (size_t c = 0; c < C; c++)
            row[c] += dout[n * C + c];
    }
}

/* The factor of the tied head: d_model^-0.5 rounded once to fp32. */
static float head_scale(size_t C)
{
    return (float)(1.0 / sqrt((double)C));
}

/* xs[N,C] = inp * C^-0.5, freshly allocated. */
static ss_status scaled_input(float **xs, const float *inp, size_t N, size_t C, ss_err *err)
{
    ss_status st = scratch_alloc(xs, N, C, "tied head", err);
    if (st != SS_OK)
        return st;
    float s = head_scale(C);
    for (size_t i = 0; i < N * C; i++)
        (*xs)[i] = inp[i] * s;
    return SS_OK;
}

ss_status model_head_forward(float *logits, const float *inp, const float *w, size_t N, size_t C,
                             size_t V, int tied, const model_numerics *nx, ss_err *err)
{
    SS_ASSERT(logits && inp && w && nx);
    ss_status st;
    if (!tied) {
        st = model_linear_forward(logits, inp, w, N, C, V, nx, err);
    } else {
        float *xs;
        st = scaled_input(&xs, inp, N, C, err);
        if (st == SS_OK)
            st = sim_gemm(logits, V, xs, C, 0, w, C, 1, N, C, V, 0, &nx->gemm, err);
        free(xs);
    }
    if (st != SS_OK) {
        ss_err_prefix(err, "output head forward");
        return st;
    }
    model_store(logits, N * V, nx);
    return SS_OK;
}

/* Tied head backward: dinp += C^-0.5 * (dlogits @ wte); dwte += dlogits^T @ (inp * C^-0.5). */
static ss_status tied_head_backward(float *dinp, float *dwte, const float *dlogits,
                                    const float *inp, const float *wte, size_t N, size_t C,
                                    size_t V, const model_numerics *nx, ss_err *err)
{
    float *buf;
    ss_status st = SS_OK;
    if (dinp) {
        st = scratch_alloc(&buf, N, C, "tied head", err);
        if (st != SS_OK)
            return st;
        st = sim_gemm(buf, C, dlogits, V, 0, wte, C, 0, N, V, C, 0, &nx->gemm, err);
        if (st == SS_OK) {
            float s = head_scale(C);
            for (size_t i = 0; i < N * C; i++)
                dinp[i] += s * buf[i];
        }
        free(buf);
    }
    if (st == SS_OK && dwte) {
        st = scaled_input(&buf, inp, N, C, err);
        if (st != SS_OK)
            return st;
        st = sim_gemm(dwte, C, dlogits, V, 1, buf, C, 0, V, N, C, 1, &nx->gemm, err);
        free(buf);
    }
    return st;
}

ss_status model_head_backward(float *dinp, float *dw, const float *dlogits, const float *inp,
                              const float *w, size_t N, size_t C, size_t V, int tied,
                              const model_numerics *nx, ss_err *err)
{
    SS_ASSERT(dlogits && inp && w && nx);
    ss_status st = tied ? tied_head_backward(dinp, dw, dlogits, inp, w, N, C, V, nx, err)
                        : model_linear_backward(dinp, dw, dlogits, inp, w, N, C, V, nx, err);
    if (st != SS_OK)
        ss_err_prefix(err, "output head backward");
    return st;
}

/* ---- RMSNorm ------------------------------------------------------------------------- */

void model_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                           size_t N, size_t C, const model_numerics *nx)
{
    SS_ASSERT(out && rstd && inp && weight && nx && C > 0);
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float ss = 0.0f;
        for (size_t c = 0; c < C; c++)
            ss += x[c] * x[c];
        float r = 1.0f / sqrtf(ss / (float)C + MODEL_RMSNORM_EPS);
        rstd[n] = r;
        for (size_t c = 0; c < C; c++)
            out[n * C + c] = weight[c] * (x[c] * r);
    }
    model_store(out, N * C, nx);
}

/* With y_c = w_c x_c r and r = (mean x^2 + eps)^-1/2, dr/dx_i = -r^3 x_i / C, so
 * dx_i = r w_i g_i - x_i r^3 (sum_c w_c g_c x_c) / C and dw_c = sum_rows g_c x_c r. */
void model_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                            const float *weight, const float *rstd, size_t N, size_t C)
{
    SS_ASSERT(dout && inp && weight && rstd);
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *g = dout + n * C;
        float r = rstd[n];
        if (dweight)
            for (size_t c = 0; c < C; c++)
                dweight[c] += g[c] * (x[c] * r);
        if (!dinp)
            continue;
        float dot = 0.0f;
        for (size_t c = 0; c < C; c++)
            dot += weight[c] * g[c] * x[c];
        float k = r * r * r * dot / (float)C;
        for (size_t c = 0; c < C; c++)
            dinp[n * C + c] += r * weight[c] * g[c] - x[c] * k;
    }
}

/* ---- relative position bias ---------------------------------------------------------- */

int model_relpos_bucket(long rel, int bidirectional, int num_buckets, int max_distance)
{
    int base = 0, nb = num_buckets;
    long n;
    if (bidirectional) {
        nb /= 2;
        if (rel > 0)
            base = nb;
        n = rel < 0 ? -rel : rel;
    } else {
        n = rel < 0 ? -rel : 0;
    }
    int max_exact = nb / 2;
    SS_ASSERT(model_relpos_check(bidirectional, num_buckets, max_distance, NULL) == SS_OK);
    if (n < max_exact)
        return base + (int)n;
    float v = logf((float)n / (float)max_exact) /
              (float)log((double)max_distance / (double)max_exact) * (float)(nb - max_exact);
    long large = max_exact + (long)v;
    return base + (int)(large < nb - 1 ? large : nb - 1);
}

ss_status model_relpos_check(int bidirectional, int num_buckets, int max_distance, ss_err *err)
{
    int max_exact = (bidirectional ? num_buckets / 2 : num_buckets) / 2;
    if (max_exact < 1)
        return ss_err_set(err, SS_ERR_RANGE, "relative position: %d buckets are too few for "
                          "%s attention (at least %d)", num_buckets,
                          bidirectional ? "bidirectional" : "causal", bidirectional ? 4 : 2);
    if (max_distance <= max_exact)
        return ss_err_set(err, SS_ERR_RANGE, "relative position: max distance %d must exceed "
                          "the %d exact buckets", max_distance, max_exact);
    return SS_OK;
}

ss_status model_relpos_bias_forward(float *bias, const float *table, size_t T, size_t S,
                                    size_t H, int bidirectional, int num_buckets,
                                    int max_distance, ss_err *err)
{
    SS_ASSERT(bias && table);
    ss_status st = model_relpos_check(bidirectional, num_buckets, max_distance, err);
    if (st != SS_OK)
        return st;
    for (size_t i = 0; i < T; i++)
        for (size_t j = 0; j < S; j++) {
            size_t bk = (size_t)model_relpos_bucket((long)j - (long)i, bidirectional,
                                                    num_buckets, max_distance);
            for (size_t h = 0; h < H; h++)
                bias[(h * T + i) * S + j] = table[bk * H + h];
        }
    return SS_OK;
}

void model_relpos_bias_backward(float *dtable, const float *dbias, size_t T, size_t S, size_t H,
                                int bidirectional, int num_buckets, int max_distance)
{
    SS_ASSERT(dtable && dbias);
    for (size_t i = 0; i < T; i++)
        for (size_t j = 0; j < S; j++) {
            size_t bk = (size_t)model_relpos_bucket((long)j - (long)i, bidirectional,
                                                    num_buckets, max_distance);
            for (size_t h = 0; h < H; h++)
                dtable[bk * H + h] += dbias[(h * T + i) * S + j];
        }
}

/* ---- multi-head attention ------------------------------------------------------------ */

static ss_status check_attn_dims(const model_attn_dims *d, ss_err *err)
{
    if (d->causal && d->S != d->T)
        return ss_err_set(err, SS_ERR_RANGE, "causal masking needs as many keys as queries "
                          "(T = %zu, S = %zu)", d->T, d->S);
    return check_rate(d->dropout, err);
}

/* One score row in place: adds the bias, sets hidden keys (j >= visible, or key_mask 0) to
 * -inf, and turns it into softmax probabilities; an all-hidden row becomes all zero. */
static void softmax_row(float *row, const float *bias_row, const uint8_t *key_mask,
                        size_t S, size_t visible)
{
    float mx = -INFINITY;
    for (size_t j = 0; j < S; j++) {
        if (j >= visible || (key_mask && !key_mask[j]))
            row[j] = -INFINITY;
        else if (bias_row)
            row[j] += bias_row[j];
        if (row[j] > mx)
            mx = row[j];
    }
    if (mx == -INFINITY) {
        memset(row, 0, S * sizeof(float));
        return;
    }
    float sum = 0.0f;
    for (size_t j = 0; j < S; j++) {
        row[j] = expf(row[j] - mx);
        sum += row[j];
    }
    for (size_t j = 0; j < S; j++)
        row[j] = row[j] / sum;
}

/* dst[n] = a[n] * b[n]. */
static void mul_into(float *dst, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = a[i] * b[i];
}

/* att[b,h] = softmax(q_bh k_bh^T + bias_h, masked) for every sequence b and head h. */
static ss_status attention_probs(const model_attn_acts *acts, const float *bias,
                                 const uint8_t *key_mask, const model_attn_dims *d,
                                 const model_numerics *nx, ss_err *err)
{
    size_t T = d->T, S = d->S, H = d->H, D = d->D, HD = H * D;
    for (size_t b = 0; b < d->B; b++)
        for (size_t h = 0; h < H; h++) {
            float *sc = acts->att + (b * H + h) * T * S;
            ss_status st = sim_gemm(sc, S, acts->q + b * T * HD + h * D, HD, 0,
                                    acts->k + b * S * HD + h * D, HD, 1, T, D, S, 0,
                                    &nx->gemm, err);
            if (st != SS_OK)
                return st;
            for (size_t i = 0; i < T; i++)
                softmax_row(sc + i * S, bias ? bias + (h * T + i) * S : NULL,
                            key_mask ? key_mask + b * S : NULL, S, d->causal ? i + 1 : S);
        }
    model_store(acts->att, d->B * H * T * S, nx);
    return SS_OK;
}

/* y[b, :, h] = (att[b,h] * drop[b,h]) @ v[b, :, h]; attd is [T,S] scratch for the product. */
static ss_status attention_values(const model_attn_acts *acts, float *attd,
                                  const model_attn_dims *d, const model_numerics *nx,
                                  ss_err *err)
{
    size_t T = d->T, S = d->S, H = d->H, D = d->D, HD = H * D;
    for (size_t b = 0; b < d->B; b++)
        for (size_t h = 0; h < H; h++) {
            size_t off = (b * H + h) * T * S;
            const float *P = acts->att + off;
            if (acts->drop) {
                mul_into(attd, P, acts->drop + off, T * S);
                P = attd;
            }
            ss_status st = sim_gemm(acts->y + b * T * HD + h * D, HD, P, S, 0,
                                    acts->v + b * S * HD + h * D, HD, 0, T, S, D, 0, &nx->gemm,
                                    err);
            if (st != SS_OK)
                return st;
        }
    model_store(acts->y, d->B * T * HD, nx);
    return SS_OK;
}

static ss_status attention_forward(float *out, model_attn_acts *acts, const float *inp_q,
                                   const float *inp_kv, const model_attn_weights *w,
                                   const float *bias, const uint8_t *key_mask,
                                   const model_attn_dims *d, rng_state *r,
                                   const model_numerics *nx, ss_err *err)
{
    size_t NQ = d->B * d->T, NK = d->B * d->S, HD = d->H * d->D;
    ss_status st = SS_OK;
    if (acts->drop)
        st = model_dropout_mask(acts->drop, d->B * d->H * d->T * d->S, d->dropout, r, err);
    if (st == SS_OK)
        st = model_linear_forward(acts->q, inp_q, w->wq, NQ, d->C, HD, nx, err);
    if (st == SS_OK)
        st = model_linear_forward(acts->k, inp_kv, w->wk, NK, d->C, HD, nx, err);
    if (st == SS_OK)
        st = model_linear_forward(acts->v, inp_kv, w->wv, NK, d->C, HD, nx, err);
    if (st != SS_OK)
        return st;
    model_store(acts->q, NQ * HD, nx);
    model_store(acts->k, NK * HD, nx);
    model_store(acts->v, NK * HD, nx);
    st = attention_probs(acts, bias, key_mask, d, nx, err);
    if (st != SS_OK)
        return st;
    float *attd = NULL;
    if (acts->drop && (st = scratch_alloc(&attd, d->T, d->S, "attention", err)) != SS_OK)
        return st;
    st = attention_values(acts, attd, d, nx, err);
    free(attd);
    if (st == SS_OK)
        st = model_linear_forward(out, acts->y, w->wo, NQ, HD, d->C, nx, err);
    if (st == SS_OK)
        model_store(out, NQ * d->C, nx);
    return st;
}

ss_status model_attention_forward(float *out, model_attn_acts *acts, const float *inp_q,
                                  const float *inp_kv, const model_attn_weights *w,
                                  const float *bias, const uint8_t *key_mask,
                                  const model_attn_dims *d, rng_state *r,
                                  const model_numerics *nx, ss_err *err)
{
    SS_ASSERT(out && acts && inp_q && inp_kv && w && d && nx);
    SS_ASSERT(w->wq && w->wk && w->wv && w->wo);
    SS_ASSERT(acts->q && acts->k && acts->v && acts->att && acts->y);
    ss_status st = check_attn_dims(d, err);
    SS_ASSERT(st != SS_OK || acts->drop || d->dropout == 0.0f);
    if (st == SS_OK)
        st = attention_forward(out, acts, inp_q, inp_kv, w, bias, key_mask, d, r, nx, err);
    if (st != SS_OK)
        ss_err_prefix(err, "attention forward");
    return st;
}

/* Softmax backward of one row in place: g_j <- p_j (g_j - sum_k p_k g_k). */
static void softmax_row_backward(float *g, const float *p, size_t S)
{
    float dot = 0.0f;
    for (size_t j = 0; j < S; j++)
        dot += p[j] * g[j];
    for (size_t j = 0; j < S; j++)
        g[j] = p[j] * (g[j] - dot);
}

/* Scratch of the attention backward: gradients of y, q, k, v and one [T,S] head block for
 * the score gradient and one for the dropped-out probabilities. */
typedef struct {
    float *dy, *dq, *dk, *dv; /* [B*T or B*S, HD] */
    float *dsc, *attd;        /* [T, S] */
} attn_scratch;

static void attn_scratch_free(attn_scratch *s)
{
    free(s->dy);
    free(s->dq);
    free(s->dk);
    free(s->dv);
    free(s->dsc);
    free(s->attd);
    memset(s, 0, sizeof *s);
}

static ss_status attn_scratch_alloc(attn_scratch *s, const model_attn_dims *d, ss_err *err)
{
    size_t HD = d->H * d->D;
    memset(s, 0, sizeof *s);
    ss_status st = scratch_alloc(&s->dy, d->B * d->T, HD, "attention backward", err);
    if (st == SS_OK)
        st = scratch_alloc(&s->dq, d->B * d->T, HD, "attention backward", err);
    if (st == SS_OK)
        st = scratch_alloc(&s->dk, d->B * d->S, HD, "attention backward", err);
    if (st == SS_OK)
        st = scratch_alloc(&s->dv, d->B * d->S, HD, "attention backward", err);
    if (st == SS_OK)
        st = scratch_alloc(&s->dsc, d->T, d->S, "attention backward", err);
    if (st == SS_OK)
        st = scratch_alloc(&s->attd, d->T, d->S, "attention backward", err);
    if (st != SS_OK)
        attn_scratch_free(s);
    return st;
}

/* For sequence b, head h: from dy, the gradients of v, of the scores (-> dbias) and of q, k. */
static ss_status attention_head_backward(attn_scratch *s, float *dbias,
                                         const model_attn_acts *acts, const model_attn_dims *d,
                                         size_t b, size_t h, const model_numerics *nx,
                                         ss_err *err)
{
    size_t T = d->T, S = d->S, D = d->D, HD = d->H * D;
    size_t off = (b * d->H + h) * T * S, qo = b * T * HD + h * D, ko = b * S * HD + h * D;
    const float *att = acts->att + off, *P = att;
    if (acts->drop) {
        mul_into(s->attd, att, acts->drop + off, T * S);
        P = s->attd;
    }
    /* d(att*drop) = dy_bh @ v_bh^T; dv_bh = (att*drop)^T @ dy_bh */
    ss_status st = sim_gemm(s->dsc, S, s->dy + qo, HD, 0, acts->v + ko, HD, 1, T, D, S, 0,
                            &nx->gemm, err);
    if (st == SS_OK)
        st = sim_gemm(s->dv + ko, HD, P, S, 1, s->dy + qo, HD, 0, S, T, D, 0, &nx->gemm, err);
    if (st != SS_OK)
        return st;
    if (acts->drop)
        mul_into(s->dsc, s->dsc, acts->drop + off, T * S);
    for (size_t i = 0; i < T; i++)
        softmax_row_backward(s->dsc + i * S, att + i * S, S);
    if (dbias)
        for (size_t i = 0; i < T * S; i++)
            dbias[h * T * S + i] += s->dsc[i];
    /* dq_bh = dscores @ k_bh; dk_bh = dscores^T @ q_bh */
    st = sim_gemm(s->dq + qo, HD, s->dsc, S, 0, acts->k + ko, HD, 0, T, S, D, 0, &nx->gemm, err);
    if (st == SS_OK)
        st = sim_gemm(s->dk + ko, HD, s->dsc, S, 1, acts->q + qo, HD, 0, S, T, D, 0, &nx->gemm,
                      err);
    return st;
}

static ss_status attention_backward(attn_scratch *s, float *dinp_q, float *dinp_kv,
                                    const model_attn_grads *dw, float *dbias, const float *dout,
                                    const model_attn_acts *acts, const float *inp_q,
                                    const float *inp_kv, const model_attn_weights *w,
                                    const model_attn_dims *d, const model_numerics *nx,
                                    ss_err *err)
{
    size_t NQ = d->B * d->T, NK = d->B * d->S, HD = d->H * d->D;
    ss_status st = model_linear_backward(s->dy, dw->wo, dout, acts->y, w->wo, NQ, HD, d->C, nx,
                                         err);
    for (size_t b = 0; st == SS_OK && b < d->B; b++)
        for (size_t h = 0; st == SS_OK && h < d->H; h++)
            st = attention_head_backward(s, dbias, acts, d, b, h, nx, err);
    if (st == SS_OK)
        st = model_linear_backward(dinp_q, dw->wq, s->dq, inp_q, w->wq, NQ, d->C, HD, nx, err);
    if (st == SS_OK)
        st = model_linear_backward(dinp_kv, dw->wk, s->dk, inp_kv, w->wk, NK, d->C, HD, nx, err);
    if (st == SS_OK)
        st = model_linear_backward(dinp_kv, dw->wv, s->dv, inp_kv, w->wv, NK, d->C, HD, nx, err);
    return st;
}

ss_status model_attention_backward(float *dinp_q, float *dinp_kv, const model_attn_grads *dw,
                                   float *dbias, const float *dout, const model_attn_acts *acts,
                                   const float *inp_q, const float *inp_kv,
                                   const model_attn_weights *w, const model_attn_dims *d,
                                   const model_numerics *nx, ss_err *err)
{
    SS_ASSERT(dw && dout && acts && inp_q && inp_kv && w && d && nx);
    attn_scratch s;
    ss_status st = check_attn_dims(d, err);
    if (st == SS_OK)
        st = attn_scratch_alloc(&s, d, err);
    if (st == SS_OK) {
        st = attention_backward(&s, dinp_q, dinp_kv, dw, dbias, dout, acts, inp_q, inp_kv, w, d,
                                nx, err);
        attn_scratch_free(&s);
    }
    if (st != SS_OK)
        ss_err_prefix(err, "attention backward");
    return st;
}

void model_key_mask_from_tokens(uint8_t *mask, const int32_t *tokens, size_t n, int32_t pad_id)
{
    SS_ASSERT(mask && tokens);
    for (size_t i = 0; i < n; i++)
        mask[i] = tokens[i] != pad_id;
}

/* ---- dense FFN ----------------------------------------------------------------------- */

#define GELU_K0 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_K1 0.044715f

float model_gelu(float x)
{
    float t = tanhf(GELU_K0 * (x + GELU_K1 * x * x * x));
    return 0.5f * x * (1.0f + t);
}

float model_gelu_grad(float x)
{
    float t = tanhf(GELU_K0 * (x + GELU_K1 * x * x * x));
    float du = GELU_K0 * (1.0f + 3.0f * GELU_K1 * x * x);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}

/* Columns of pre per row: F for ReLU, 2F for GEGLU. */
static size_t ffn_pre_width(model_ffn kind, size_t F)
{
    return kind == MODEL_FFN_GEGLU ? 2 * F : F;
}

/* h[n,f] = act(pre[n, ...]) * mask[n,f] (mask optional). */
static void ffn_activate(float *h, const float *pre, const float *mask, size_t N, size_t F,
                         model_ffn kind)
{
    size_t W = ffn_pre_width(kind, F);
    for (size_t n = 0; n < N; n++)
        for (size_t f = 0; f < F; f++) {
            const float *p = pre + n * W;
            float a = kind == MODEL_FFN_GEGLU ? model_gelu(p[f]) * p[F + f]
                                              : (p[f] > 0.0f ? p[f] : 0.0f);
            h[n * F + f] = mask ? a * mask[n * F + f] : a;
        }
}

/* dpre[n, ...] = d act / d pre given dh[n,f] (mask applied first; mask optional). */
static void ffn_activate_backward(float *dpre, const float *dh, const float *pre,
                                  const float *mask, size_t N, size_t F, model_ffn kind)
{
    size_t W = ffn_pre_width(kind, F);
    for (size_t n = 0; n < N; n++)
        for (size_t f = 0; f < F; f++) {
            const float *p = pre + n * W;
            float *dp = dpre + n * W;
            float g = mask ? dh[n * F + f] * mask[n * F + f] : dh[n * F + f];
            if (kind == MODEL_FFN_GEGLU) {
                dp[f] = g * p[F + f] * model_gelu_grad(p[f]);
                dp[F + f] = g * model_gelu(p[f]);
            } else {
                dp[f] = p[f] > 0.0f ? g : 0.0f;
            }
        }
}

ss_status model_ffn_forward(float *out, model_ffn_acts *acts, const float *inp, const float *wi,
                            const float *wo, size_t N, size_t C, size_t F, model_ffn kind,
                            float p, rng_state *r, const model_numerics *nx, ss_err *err)
{
    SS_ASSERT(out && acts && acts->pre && acts->h && inp && wi && wo && nx);
    SS_ASSERT(kind == MODEL_FFN_RELU || kind == MODEL_FFN_GEGLU);
    size_t W = ffn_pre_width(kind, F);
    ss_status st = check_rate(p, err);
    SS_ASSERT(st != SS_OK || acts->mask || p == 0.0f);
    if (st == SS_OK && acts->mask)
        st = model_dropout_mask(acts->mask, N * F, p, r, err);
    if (st == SS_OK)
        st = model_linear_forward(acts->pre, inp, wi, N, C, W, nx, err);
    if (st != SS_OK) {
        ss_err_prefix(err, "ffn forward");
        return st;
    }
    model_store(acts->pre, N * W, nx);
    ffn_activate(acts->h, acts->pre, acts->mask, N, F, kind);
    model_store(acts->h, N * F, nx);
    st = model_linear_forward(out, acts->h, wo, N, F, C, nx, err);
    if (st != SS_OK) {
        ss_err_prefix(err, "ffn forward");
        return st;
    }
    model_store(out, N * C, nx);
    return SS_OK;
}

ss_status model_ffn_backward(float *dinp, float *dwi, float *dwo, const float *dout,
                             const model_ffn_acts *acts, const float *inp, const float *wi,
                             const float *wo, size_t N, size_t C, size_t F, model_ffn kind,
                             const model_numerics *nx, ss_err *err)
{
    SS_ASSERT(dout && acts && acts->pre && acts->h && inp && wi && wo && nx);
    SS_ASSERT(kind == MODEL_FFN_RELU || kind == MODEL_FFN_GEGLU);
    size_t W = ffn_pre_width(kind, F);
    float *dh = NULL, *dpre = NULL;
    ss_status st = scratch_alloc(&dh, N, F, "ffn backward", err);
    if (st == SS_OK)
        st = scratch_alloc(&dpre, N, W, "ffn backward", err);
    if (st == SS_OK)
        st = model_linear_backward(dh, dwo, dout, acts->h, wo, N, F, C, nx, err);
    if (st == SS_OK) {
        ffn_activate_backward(dpre, dh, acts->pre, acts->mask, N, F, kind);
        st = model_linear_backward(dinp, dwi, dpre, inp, wi, N, C, W, nx, err);
    }
    free(dh);
    free(dpre);
    if (st != SS_OK)
        ss_err_prefix(err, "ffn backward");
    return st;
}

/* ---- dropout and residual ------------------------------------------------------------ */

ss_status model_dropout_mask(float *mask, size_t n, float p, rng_state *r, ss_err *err)
{
    SS_ASSERT(mask);
    ss_status st = check_rate(p, err);
    if (st != SS_OK)
        return st;
    if (p > 0.0f && !r)
        return ss_err_set(err, SS_ERR_RANGE, "dropout rate %g needs a random generator",
                          (double)p);
    float keep = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++)
        mask[i] = (p > 0.0f && rng_uniform(r) < (double)p) ? 0.0f : keep;
    return SS_OK;
}

ss_status model_dropout_forward(float *out, float *mask, const float *inp, size_t n, float p,
                                rng_state *r, const model_numerics *nx, ss_err *err)
{
    SS_ASSERT(out && mask && inp && nx);
    ss_status st = model_dropout_mask(mask, n, p, r, err);
    if (st != SS_OK)
        return st;
    mul_into(out, inp, mask, n);
    model_store(out, n, nx);
    return SS_OK;
}

void model_dropout_backward(float *dinp, const float *dout, const float *mask, size_t n)
{
    SS_ASSERT(dinp && dout && mask);
    for (size_t i = 0; i < n; i++)
        dinp[i] += dout[i] * mask[i];
}

void model_residual_forward(float *out, const float *a, const float *b, size_t n,
                            const model_numerics *nx)
{
    SS_ASSERT(out && a && b && nx);
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
    model_store(out, n, nx);
}

void model_residual_backward(float *da, float *db, const float *dout, size_t n)
{
    SS_ASSERT(dout);
    for (size_t i = 0; i < n; i++) {
        if (da)
            da[i] += dout[i];
        if (db)
            db[i] += dout[i];
    }
}

/* ---- cross-entropy ------------------------------------------------------------------- */

/* Max of a row and the sum of exp(x - max), in fp32. */
static float row_max(const float *x, size_t V, size_t *argmax)
{
    size_t am = 0;
    for (size_t v = 1; v < V; v++)
        if (x[v] > x[am])
            am = v;
    if (argmax)
        *argmax = am;
    return x[am];
}

static float row_sumexp(const float *x, size_t V, float mx)
{
    float s = 0.0f;
    for (size_t v = 0; v < V; v++)
        s += expf(x[v] - mx);
    return s;
}

ss_status model_xent_forward(model_xent_stats *stats, const float *logits,
                             const int32_t *targets, size_t N, size_t V, int32_t pad_id,
                             ss_err *err)
{
    SS_ASSERT(stats && logits && targets && V > 0);
    ss_status st = check_tokens(targets, N, V, pad_id, 1, "cross-entropy targets", err);
    if (st != SS_OK)
        return st;
    double sum = 0.0;
    size_t count = 0, correct = 0;
    for (size_t n = 0; n < N; n++) {
        if (targets[n] == pad_id)
            continue;
        const float *x = logits + n * V;
        size_t am;
        float mx = row_max(x, V, &am);
        float lse = mx + logf(row_sumexp(x, V, mx));
        sum += (double)(lse - x[targets[n]]);
        count++;
        correct += am == (size_t)targets[n];
    }
    stats->loss = count ? sum / (double)count : 0.0;
    stats->count = count;
    stats->correct = correct;
    return SS_OK;
}

void model_xent_backward(float *dlogits, const float *logits, const int32_t *targets, size_t N,
                         size_t V, int32_t pad_id, float dloss)
{
    SS_ASSERT(dlogits && logits && targets && V > 0);
    size_t count = 0;
    for (size_t n = 0; n < N; n++)
        count += targets[n] != pad_id;
    if (count == 0)
        return;
    float scale = dloss / (float)count;
    for (size_t n = 0; n < N; n++) {
        if (targets[n] == pad_id)
            continue;
        SS_ASSERT(targets[n] >= 0 && (size_t)targets[n] < V);
        const float *x = logits + n * V;
        float mx = row_max(x, V, NULL);
        float s = row_sumexp(x, V, mx);
        for (size_t v = 0; v < V; v++) {
            float pr = expf(x[v] - mx) / s;
            dlogits[n * V + v] += scale * (pr - (v == (size_t)targets[n] ? 1.0f : 0.0f));
        }
    }
}
