/* This file implements switch_layer.h: the Switch / top-k mixture-of-experts layer forward and
 * backward in three phases (route, experts, combine), its capacity rule, its call plan, the
 * layout of its activation block, and the route-only evaluation of saved router inputs with
 * another router dtype (for the selective-precision study).
 *
 * Invariants: the semantics are those stated in switch_layer.h. Every loop runs in a fixed
 * order (tokens, then choices, then features), so a seed and the inputs determine every bit.
 * Matrix products go through model_linear_* (router) and model_ffn_* (experts); the rest is
 * fp32 elementwise work, except the loss and statistic sums, which are double. Routing
 * decisions are integers computed from the stored probabilities only, so the backward
 * treats them (and the jitter noise) as constants.
 * reference: REFERENCE.md section 1; Mesh-TensorFlow moe.py (_switch_gating, _top_2_gating,
 * transformer_moe_layer_v1); Flaxformer routing.py (TokensChooseMaskedRouter,
 * _load_balancing_loss, _router_z_loss) and moe_layers.py (expert capacity).
 */
#include "model/switch_layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"
#include "model/layers.h"

/* MTF's epsilon in the top-k gate renormalisation. */
#define RENORM_EPS 1e-9f

/* ---- spec, capacity, plan ------------------------------------------------------------ */

model_switch_spec model_switch_spec_from_cfg(const model_cfg *m)
{
    SS_ASSERT(m && m->has_switch);
    model_switch_spec s;
    memset(&s, 0, sizeof s);
    s.C = (size_t)m->d_model;
    s.F = (size_t)m->d_ff;
    s.E = (size_t)m->sw.num_experts;
    s.ffn = m->ffn;
    s.sw = m->sw;
    return s;
}

/* Columns of an expert's wi: F (ReLU) or 2F (GEGLU); SIZE_MAX if 2F overflows. */
static size_t wi_width(const model_switch_spec *spec)
{
    if (spec->ffn != MODEL_FFN_GEGLU)
        return spec->F;
    return spec->F <= SIZE_MAX / 2 ? 2 * spec->F : SIZE_MAX;
}

/* Python's round() of a non-negative double: to nearest, ties to even. */
static double round_half_even(double v)
{
    double fl = floor(v);
    double frac = v - fl; /* exact */
    if (frac > 0.5)
        return fl + 1.0;
    if (frac < 0.5)
        return fl;
    return fmod(fl, 2.0) == 0.0 ? fl : fl + 1.0;
}

size_t model_switch_capacity(double cf, size_t tokens_per_group, size_t E, int min_capacity,
                             model_capacity_rounding rounding)
{
    SS_ASSERT(tokens_per_group >= 1 && E >= 1 && cf >= 0.0);
    double v = (cf * (double)tokens_per_group) / (double)E;
    size_t K;
    if (rounding == MODEL_CAPACITY_ROUND) {
        K = (size_t)round_half_even(v);
    } else {
        K = (size_t)floor(v);
        if (K > tokens_per_group)
            K = tokens_per_group;
    }
    if (min_capacity > 0 && K < (size_t)min_capacity)
        K = (size_t)min_capacity;
    return K;
}

/* Carves the acts block: with base == NULL only the size is computed. Every array starts on
 * a 64-byte boundary of the block; an empty array is NULL. */
typedef struct {
    char *base;
    size_t off;
    int overflow;
} carver;

static void *carve(carver *c, size_t n, size_t elem)
{
    size_t bytes;
    size_t start = (c->off + 63) & ~(size_t)63;
    if (c->overflow || start < c->off || ss_mul_size(n, elem, &bytes) != 0 ||
        start > SIZE_MAX - bytes) {
        c->overflow = 1;
        return NULL;
    }
    c->off = start + bytes;
    return (c->base && n) ? c->base + start : NULL;
}

/* a * b, or SIZE_MAX (which makes the carver overflow) if that overflows. */
static size_t mul2(size_t a, size_t b)
{
    size_t r;
    return ss_mul_size(a, b, &r) == 0 ? r : SIZE_MAX;
}

/* Binds *a into base (or, with base NULL, only measures) and returns the block's size in
 * bytes; *overflow is set when a size does not fit size_t. */
static size_t layout(model_switch_acts *a, char *base, const model_switch_plan *p,
                     int *overflow)
{
    const size_t N = p->N, C = p->spec.C, E = p->spec.E, F = p->spec.F, k = p->k, R = p->R;
    const size_t noise_n = p->jitter == MODEL_JITTER_INPUT    ? mul2(N, C)
                           : p->jitter == MODEL_JITTER_LOGITS ? mul2(N, E)
                                                              : 0;
    carver c = {base, 0, 0};
    memset(a, 0, sizeof *a);
    a->xr = carve(&c, mul2(N, C), sizeof(float));
    a->noise = carve(&c, noise_n, sizeof(float));
    a->logits = carve(&c, mul2(N, E), sizeof(float));
    a->probs = carve(&c, mul2(N, E), sizeof(float));
    a->lse = carve(&c, N, sizeof(float));
    a->expert = carve(&c, mul2(N, k), sizeof(int32_t));
    a->slot = carve(&c, mul2(N, k), sizeof(int32_t));
    a->row = carve(&c, mul2(N, k), sizeof(int32_t));
    a->gate = carve(&c, mul2(N, k), sizeof(float));
    a->tokens_in = carve(&c, E, sizeof(int32_t));
    a->tokens_out = carve(&c, E, sizeof(int32_t));
    a->f_count = carve(&c, mul2(p->G, E), sizeof(int32_t));
    a->group_row = carve(&c, mul2(p->G, E), sizeof(int32_t));
    a->expert_row = carve(&c, E + 1, sizeof(int32_t));
    a->rank = carve(&c, p->S, sizeof(uint64_t));
    a->xe = carve(&c, mul2(R, C), sizeof(float));
    a->ye = carve(&c, mul2(R, C), sizeof(float));
    a->pre = carve(&c, mul2(R, p->FI), sizeof(float));
    a->hid = carve(&c, mul2(R, F), sizeof(float));
    a->mask = carve(&c, p->dropout > 0.0f ? mul2(R, F) : 0, sizeof(float));
    a->dye = carve(&c, mul2(R, C), sizeof(float));
    a->dxe = carve(&c, mul2(R, C), sizeof(float));
    a->dh = carve(&c, mul2(N, E), sizeof(float));
    a->dxr = carve(&c, p->jitter == MODEL_JITTER_INPUT ? mul2(N, C) : 0, sizeof(float));
    *overflow = c.overflow;
    return c.off;
}

static ss_status range_error(ss_err *err, const char *what)
{
    return ss_err_set(err, SS_ERR_RANGE, "switch layer: %s", what);
}

/* The user-given sizes and rates of one call; cf is the capacity factor it uses. */
static ss_status check_call(const model_switch_spec *spec, size_t N, double cf, ss_err *err)
{
    const model_switch_cfg *sw = &spec->sw;
    if (N == 0)
        return range_error(err, "no tokens (N = 0)");
    if (spec->C == 0 || spec->F == 0 || spec->E == 0)
        return ss_err_set(err, SS_ERR_RANGE,
                          "switch layer: d_model %zu, d_ff %zu and experts %zu must all be >= 1",
                          spec->C, spec->F, spec->E);
    if (sw->top_k < 1 || (size_t)sw->top_k > spec->E)
        return ss_err_set(err, SS_ERR_RANGE, "switch layer: top_k %d is not in [1, %zu experts]",
                          sw->top_k, spec->E);
    if (sw->group_size < 0 || (sw->group_size > 0 && N % (size_t)sw->group_size != 0))
        return ss_err_set(err, SS_ERR_RANGE,
                          "switch layer: group_size %d does not divide the %zu tokens of the call",
                          sw->group_size, N);
    if (!(cf > 0.0) || !isfinite(cf))
        return ss_err_set(err, SS_ERR_RANGE, "switch layer: capacity factor %g is not > 0", cf);
    if (!(sw->jitter_eps >= 0.0 && sw->jitter_eps < 1.0))
        return ss_err_set(err, SS_ERR_RANGE, "switch layer: jitter_eps %g is not in [0, 1)",
                          sw->jitter_eps);
    if (!(sw->expert_dropout >= 0.0 && sw->expert_dropout < 1.0))
        return ss_err_set(err, SS_ERR_RANGE, "switch layer: expert_dropout %g is not in [0, 1)",
                          sw->expert_dropout);
    const size_t k = (size_t)sw->top_k;
    if (N > (size_t)INT32_MAX / k || spec->E > (size_t)INT32_MAX - 1)
        return ss_err_set(err, SS_ERR_RANGE,
                          "switch layer: %zu tokens x top_k %zu (or %zu experts) exceed the "
                          "int32 routing indices",
                          N, k, spec->E);
    return SS_OK;
}

ss_status model_switch_plan_make(model_switch_plan *plan, const model_switch_spec *spec,
                                 size_t N, int training, ss_err *err)
{
    SS_ASSERT(plan && spec);
    const model_switch_cfg *sw = &spec->sw;
    const double cf = training ? sw->capacity_factor_train : sw->capacity_factor_eval;
    memset(plan, 0, sizeof *plan);
    ss_status st = check_call(spec, N, cf, err);
    if (st != SS_OK)
        return st;
    plan->spec = *spec;
    plan->N = N;
    plan->training = training ? 1 : 0;
    plan->k = (size_t)sw->top_k;
    plan->S = sw->group_size > 0 ? (size_t)sw->group_size : N;
    plan->G = N / plan->S;
    plan->cf = cf;
    plan->K = model_switch_capacity(cf, plan->S, spec->E, sw->min_capacity,
                                    sw->capacity_rounding);
    plan->jitter = (training && sw->jitter_eps > 0.0) ? sw->jitter : MODEL_JITTER_OFF;
    plan->dropout = training ? (float)sw->expert_dropout : 0.0f;
    plan->R = N * plan->k;
    plan->FI = wi_width(spec);
    model_switch_acts probe;
    int overflow = 0;
    plan->acts_bytes = layout(&probe, NULL, plan, &overflow);
    if (overflow)
        return ss_err_set(err, SS_ERR_NOMEM,
                          "switch layer: the activation block for %zu tokens overflows size_t",
                          N);
    return SS_OK;
}

void model_switch_acts_bind(model_switch_acts *acts, void *mem, const model_switch_plan *plan)
{
    SS_ASSERT(acts && mem && plan);
    int overflow = 0;
    size_t bytes = layout(acts, mem, plan, &overflow);
    SS_ASSERT(!overflow && bytes == plan->acts_bytes);
}

size_t model_switch_param_count(const model_switch_spec *spec)
{
    const size_t C = spec->C, E = spec->E, F = spec->F, FI = wi_width(spec);
    return C * E + E * C * FI + E * F * C;
}

void model_switch_weights_bind(model_switch_weights *w, float *flat,
                               const model_switch_spec *spec)
{
    const size_t C = spec->C, E = spec->E, FI = wi_width(spec);
    w->wr = flat;
    w->wi = w->wr + C * E;
    w->wo = w->wi + E * C * FI;
}

/* ---- route: router ------------------------------------------------------------------- */

/* The numerics of the router matmul: fp32 or bf16 operands by router_dtype, whatever the
 * rest of the model uses; the matrix unit's mode and denormal policy are the model's. */
static model_numerics router_numerics(const model_numerics *nx, model_router_dtype dtype)
{
    model_numerics r = *nx;
    r.gemm.operands = dtype == MODEL_ROUTER_BF16 ? SIM_OPERANDS_BF16 : SIM_OPERANDS_F32;
    r.store_bf16 = 0;
    return r;
}

static void jitter_fill(float *noise, size_t n, double eps, rng_state *r)
{
    rng_fill_uniform_f32(r, noise, n, (float)(1.0 - eps), (float)(1.0 + eps));
}

static void multiply(float *x, const float *by, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= by[i];
}

/* p[E] = softmax(h[E]) in fp32; returns logsumexp(h) = max + log(sum). */
static float softmax_row(float *p, const float *h, size_t E)
{
    float m = h[0];
    for (size_t e = 1; e < E; e++)
        if (h[e] > m)
            m = h[e];
    float sum = 0.0f;
    for (size_t e = 0; e < E; e++) {
        p[e] = expf(h[e] - m);
        sum += p[e];
    }
    for (size_t e = 0; e < E; e++)
        p[e] /= sum;
    return m + logf(sum);
}

/* logits[N,E] = xr @ wr with the operands of router dtype `dtype`, times the logits jitter
 * noise[N,E] (NULL: none), rounded to bf16 for a BF16 router; probs[N,E] = their softmax
 * (rounded to bf16 for a BF16 router); lse[N] (may be NULL) = the logsumexp of each row. */
static ss_status router_probs(float *logits, float *probs, float *lse, const float *xr,
                              const float *wr, const float *logit_noise,
                              model_router_dtype dtype, size_t N, size_t C, size_t E,
                              const model_numerics *nx, ss_err *err)
{
    const model_numerics rnx = router_numerics(nx, dtype);
    ss_status st = model_linear_forward(logits, xr, wr, N, C, E, &rnx, err);
    if (st != SS_OK) {
        ss_err_prefix(err, "switch layer router");
        return st;
    }
    if (logit_noise)
        multiply(logits, logit_noise, N * E);
    const int bf16_router = dtype == MODEL_ROUTER_BF16;
    if (bf16_router)
        bf16_round_f32_array(logits, N * E, nx->gemm.denormals);
    for (size_t t = 0; t < N; t++) {
        const float l = softmax_row(probs + t * E, logits + t * E, E);
        if (lse)
            lse[t] = l;
    }
    if (bf16_router)
        bf16_round_f32_array(probs, N * E, nx->gemm.denormals);
    return SS_OK;
}

/* acts->xr, noise, logits, probs, lse. */
static ss_status router_forward(model_switch_acts *a, const float *inp, const float *wr,
                                const model_switch_plan *p, rng_state *r,
                                const model_numerics *nx, ss_err *err)
{
    const size_t N = p->N, C = p->spec.C, E = p->spec.E;
    const model_switch_cfg *sw = &p->spec.sw;
    if (p->jitter != MODEL_JITTER_OFF && !r)
        return range_error(err, "router jitter needs a random number generator (r is NULL)");
    memcpy(a->xr, inp, N * C * sizeof(float));
    if (p->jitter == MODEL_JITTER_INPUT) {
        jitter_fill(a->noise, N * C, sw->jitter_eps, r);
        multiply(a->xr, a->noise, N * C);
    }
    if (p->jitter == MODEL_JITTER_LOGITS)
        jitter_fill(a->noise, N * E, sw->jitter_eps, r);
    return router_probs(a->logits, a->probs, a->lse, a->xr, wr,
                        p->jitter == MODEL_JITTER_LOGITS ? a->noise : NULL, sw->router_dtype,
                        N, C, E, nx, err);
}

/* ---- route: choices, priority, capacity ---------------------------------------------- */

/* a ranks above b: NaN ranks below every number. */
static int better(float a, float b)
{
    return !isnan(a) && (isnan(b) || a > b);
}

/* ex[k]: the k best experts of p[E], best first, ties to the lowest index. */
static void choose_experts(int32_t *ex, const float *p, size_t E, size_t k)
{
    for (size_t j = 0; j < k; j++) {
        long best = -1;
        for (size_t e = 0; e < E; e++) {
            int taken = 0;
            for (size_t i = 0; i < j; i++)
                taken |= ex[i] == (int32_t)e;
            if (!taken && (best < 0 || better(p[e], p[best])))
                best = (long)e;
        }
        ex[j] = (int32_t)best;
    }
}

ss_status model_switch_route_choices(int32_t *expert, float *scratch,
                                     const model_switch_acts *acts, const float *wr,
                                     model_router_dtype dtype, const model_switch_plan *plan,
                                     const model_numerics *nx, ss_err *err)
{
    SS_ASSERT(expert && scratch && acts && wr && plan && nx);
    const size_t N = plan->N, C = plan->spec.C, E = plan->spec.E, k = plan->k;
    float *logits = scratch, *probs = scratch + N * E;
    const float *noise = plan->jitter == MODEL_JITTER_LOGITS ? acts->noise : NULL;
    ss_status st = router_probs(logits, probs, NULL, acts->xr, wr, noise, dtype, N, C, E, nx, err);
    if (st != SS_OK)
        return st;
    for (size_t t = 0; t < N; t++)
        choose_experts(expert + t * k, probs + t * E, E, k);
    return SS_OK;
}

double model_switch_choice_disagreement(const int32_t *a, const int32_t *b, size_t N, size_t k)
{
    if (N == 0)
        return 0.0;
    size_t differ = 0;
    for (size_t t = 0; t < N; t++)
        differ += memcmp(a + t * k, b + t * k, k * sizeof(int32_t)) != 0;
    return (double)differ / (double)N;
}

/* Maps v to a 32-bit key whose ascending order is v's descending order; NaN sorts last and
 * -0 equals +0. */
static uint32_t descending_key(float v)
{
    if (isnan(v))
        return UINT32_MAX;
    if (v == 0.0f)
        v = 0.0f;
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    uint32_t ascending = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~ascending;
}

static int compare_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* rank[S]: group g's tokens (local indices in the low 32 bits) in dispatch priority order. */
static void priority_order(uint64_t *rank, const model_switch_acts *a,
                           const model_switch_plan *p, size_t g)
{
    const size_t S = p->S, E = p->spec.E, k = p->k;
    const int bpr = p->spec.sw.drop_priority == MODEL_DROP_BATCH_PRIORITIZED;
    for (size_t i = 0; i < S; i++) {
        size_t t = g * S + i;
        uint64_t key = 0;
        if (bpr)
            key = descending_key(a->probs[t * E + (size_t)a->expert[t * k]]);
        rank[i] = (key << 32) | (uint64_t)i;
    }
    if (bpr)
        qsort(rank, S, sizeof *rank, compare_u64);
}

/* Slots of group g: choice 0 of every token in priority order, then choice 1, ...;
 * cnt[E] (the group's row of group_row, used as a counter) ends as the choices per expert. */
static void assign_slots(model_switch_acts *a, const model_switch_plan *p, size_t g)
{
    const size_t S = p->S, E = p->spec.E, k = p->k;
    int32_t *cnt = a->group_row + g * E;
    priority_order(a->rank, a, p, g);
    memset(cnt, 0, E * sizeof *cnt);
    for (size_t j = 0; j < k; j++)
        for (size_t i = 0; i < S; i++) {
            size_t t = g * S + (size_t)(a->rank[i] & 0xffffffffu);
            int32_t e = a->expert[t * k + j];
            int32_t s = cnt[e]++;
            a->slot[t * k + j] = (size_t)s < p->K ? s : -1;
        }
}

/* f_count[g, :]: the group's tokens counted in f_i. */
static void count_f(model_switch_acts *a, const model_switch_plan *p, size_t g)
{
    const size_t S = p->S, E = p->spec.E, k = p->k;
    const size_t counted = p->spec.aux_count_all_choices ? k : 1;
    int32_t *f = a->f_count + g * E;
    memset(f, 0, E * sizeof *f);
    for (size_t t = g * S; t < (g + 1) * S; t++)
        for (size_t j = 0; j < counted; j++)
            f[a->expert[t * k + j]]++;
}

/* tokens_in/out, expert_row and group_row (turned from counts into first rows), row. */
static void pack_rows(model_switch_acts *a, const model_switch_plan *p)
{
    const size_t G = p->G, S = p->S, E = p->spec.E, k = p->k, K = p->K;
    int32_t next = 0;
    for (size_t e = 0; e < E; e++) {
        a->tokens_in[e] = 0;
        a->tokens_out[e] = 0;
        a->expert_row[e] = next;
        for (size_t g = 0; g < G; g++) {
            int32_t n = a->group_row[g * E + e];
            int32_t kept = (size_t)n < K ? n : (int32_t)K;
            a->tokens_in[e] += n;
            a->tokens_out[e] += kept;
            a->group_row[g * E + e] = next;
            next += kept;
        }
    }
    a->expert_row[E] = next;
    for (size_t t = 0; t < p->N; t++)
        for (size_t j = 0; j < k; j++) {
            size_t i = t * k + j;
            a->row[i] = a->slot[i] < 0
                            ? -1
                            : a->group_row[(t / S) * E + (size_t)a->expert[i]] + a->slot[i];
        }
}

/* sum_j p of the token's choices + RENORM_EPS, in choice order ([MTF]). */
static float renorm_denominator(const float *probs, const int32_t *ex, size_t k)
{
    float d = 0.0f;
    for (size_t j = 0; j < k; j++)
        d += probs[ex[j]];
    return d + RENORM_EPS;
}

static void compute_gates(model_switch_acts *a, const model_switch_plan *p,
                          const model_numerics *nx)
{
    const size_t E = p->spec.E, k = p->k;
    for (size_t t = 0; t < p->N; t++) {
        const float *pr = a->probs + t * E;
        const int32_t *ex = a->expert + t * k;
        float d = p->spec.top_k_renormalize ? renorm_denominator(pr, ex, k) : 1.0f;
        for (size_t j = 0; j < k; j++) {
            float g = p->spec.top_k_renormalize ? pr[ex[j]] / d : pr[ex[j]];
            if (nx->store_bf16)
                g = bf16_round_f32(g, nx->gemm.denormals);
            a->gate[t * k + j] = a->slot[t * k + j] < 0 ? 0.0f : g;
        }
    }
}

/* ---- route: losses and statistics ---------------------------------------------------- */

static double aux_loss(const model_switch_acts *a, const model_switch_plan *p)
{
    const size_t G = p->G, S = p->S, E = p->spec.E;
    double total = 0.0;
    for (size_t g = 0; g < G; g++) {
        double sum = 0.0;
        for (size_t e = 0; e < E; e++) {
            double psum = 0.0;
            for (size_t t = g * S; t < (g + 1) * S; t++)
                psum += a->probs[t * E + e];
            sum += ((double)a->f_count[g * E + e] / (double)S) * (psum / (double)S);
        }
        total += sum;
    }
    return p->spec.sw.aux_loss_alpha * (double)E * (total / (double)G);
}

static double z_loss(const model_switch_acts *a, const model_switch_plan *p)
{
    double sum = 0.0;
    for (size_t t = 0; t < p->N; t++)
        sum += (double)a->lse[t] * (double)a->lse[t];
    return p->spec.sw.z_loss_coef * (sum / (double)p->N);
}

static double entropy(const model_switch_acts *a, const model_switch_plan *p)
{
    const size_t E = p->spec.E;
    double sum = 0.0;
    for (size_t i = 0; i < p->N * E; i++) {
        double q = a->probs[i];
        if (q > 0.0)
            sum -= q * log(q);
    }
    return sum / (double)p->N;
}

static void fill_stats(model_switch_stats *s, const model_switch_acts *a,
                       const model_switch_plan *p)
{
    const size_t k = p->k;
    size_t unrouted = 0;
    for (size_t t = 0; t < p->N; t++) {
        int any = 0;
        for (size_t j = 0; j < k; j++)
            any |= a->slot[t * k + j] >= 0;
        unrouted += !any;
    }
    s->groups = p->G;
    s->group_size = p->S;
    s->capacity = p->K;
    s->assigned = p->R;
    s->kept = (size_t)a->expert_row[p->spec.E];
    s->dropped_fraction = 1.0 - (double)s->kept / (double)s->assigned;
    s->unrouted_fraction = (double)unrouted / (double)p->N;
    s->aux_loss = aux_loss(a, p);
    s->z_loss = z_loss(a, p);
    s->router_entropy = entropy(a, p);
    s->tokens_in = a->tokens_in;
    s->tokens_out = a->tokens_out;
    s->expert = a->expert;
    s->slot = a->slot;
}

/* xe[row] = inp[t] for every kept choice, stored as an activation. */
static void gather(model_switch_acts *a, const float *inp, const model_switch_plan *p,
                   const model_numerics *nx)
{
    const size_t C = p->spec.C;
    for (size_t i = 0; i < p->R; i++)
        if (a->row[i] >= 0)
            memcpy(a->xe + (size_t)a->row[i] * C, inp + (i / p->k) * C, C * sizeof(float));
    model_store(a->xe, (size_t)a->expert_row[p->spec.E] * C, nx);
}

ss_status model_switch_route_forward(model_switch_acts *acts, model_switch_stats *stats,
                                     const float *inp, const float *wr,
                                     const model_switch_plan *p, rng_state *r,
                                     const model_numerics *nx, ss_err *err)
{
    SS_ASSERT(acts && inp && wr && p && nx);
    ss_status st = router_forward(acts, inp, wr, p, r, nx, err);
    if (st != SS_OK)
        return st;
    for (size_t t = 0; t < p->N; t++)
        choose_experts(acts->expert + t * p->k, acts->probs + t * p->spec.E, p->spec.E, p->k);
    for (size_t g = 0; g < p->G; g++) {
        count_f(acts, p, g);
        assign_slots(acts, p, g);
    }
    pack_rows(acts, p);
    compute_gates(acts, p, nx);
    gather(acts, inp, p, nx);
    if (stats)
        fill_stats(stats, acts, p);
    return SS_OK;
}

/* ---- experts ------------------------------------------------------------------------- */

/* Expert e's rows of the FFN activations. */
static model_ffn_acts expert_acts(const model_switch_acts *a, const model_switch_plan *p,
                                  size_t r0)
{
    model_ffn_acts fa;
    fa.pre = a->pre + r0 * p->FI;
    fa.h = a->hid + r0 * p->spec.F;
    fa.mask = a->mask ? a->mask + r0 * p->spec.F : NULL;
    return fa;
}

ss_status model_switch_experts_forward(model_switch_acts *acts, const float *wi,
                                       const float *wo, const model_switch_plan *p,
                                       rng_state *r, const model_numerics *nx, ss_err *err)
{
    SS_ASSERT(acts && wi && wo && p && nx);
    const size_t C = p->spec.C, F = p->spec.F, FI = p->FI;
    if (p->dropout > 0.0f && !r)
        return range_error(err, "expert dropout needs a random number generator (r is NULL)");
    for (size_t e = 0; e < p->spec.E; e++) {
        size_t r0 = (size_t)acts->expert_row[e];
        size_t n = (size_t)acts->expert_row[e + 1] - r0;
        if (n == 0)
            continue;
        model_ffn_acts fa = expert_acts(acts, p, r0);
        ss_status st = model_ffn_forward(acts->ye + r0 * C, &fa, acts->xe + r0 * C,
                                         wi + e * C * FI, wo + e * F * C, n, C, F, p->spec.ffn,
                                         p->dropout, r, nx, err);
        if (st != SS_OK) {
            ss_err_prefix(err, "switch layer expert %zu", e);
            return st;
        }
    }
    return SS_OK;
}

/* ---- combine ------------------------------------------------------------------------- */

void model_switch_combine_forward(float *out, const model_switch_acts *acts,
                                  const model_switch_plan *p, const model_numerics *nx)
{
    SS_ASSERT(out && acts && p && nx);
    const size_t C = p->spec.C, k = p->k;
    for (size_t t = 0; t < p->N; t++) {
        float *o = out + t * C;
        memset(o, 0, C * sizeof *o);
        for (size_t j = 0; j < k; j++) {
            int32_t row = acts->row[t * k + j];
            if (row < 0)
                continue;
            const float g = acts->gate[t * k + j];
            const float *y = acts->ye + (size_t)row * C;
            for (size_t c = 0; c < C; c++)
                o[c] += g * y[c];
        }
    }
    model_store(out, p->N * C, nx);
}

ss_status model_switch_forward(float *out, model_switch_acts *acts, model_switch_stats *stats,
                               const float *inp, const model_switch_weights *w,
                               const model_switch_plan *p, rng_state *r,
                               const model_numerics *nx, ss_err *err)
{
    SS_ASSERT(w);
    ss_status st = model_switch_route_forward(acts, stats, inp, w->wr, p, r, nx, err);
    if (st == SS_OK)
        st = model_switch_experts_forward(acts, w->wi, w->wo, p, r, nx, err);
    if (st == SS_OK)
        model_switch_combine_forward(out, acts, p, nx);
    return st;
}

/* ---- backward ------------------------------------------------------------------------ */

static float dot(const float *a, const float *b, size_t n)
{
    float s = 0.0f;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* Gradient of p[E] (added to dp) from the gate gradients of one token's choices. dgate_j is
 * dout . ye for a kept choice; a dropped one has none (its gate is the constant 0). With
 * renormalisation g_j = p_j / D, D = sum_l p_l + eps over all k choices, so
 * dp_l += dgate_l / D - (sum_j dgate_j p_j) / D^2. */
static void gate_backward(float *dp, const float *probs, const int32_t *ex, const int32_t *row,
                          const float *dout, const float *ye, size_t C, size_t k,
                          int renormalize)
{
    const float d = renormalize ? renorm_denominator(probs, ex, k) : 1.0f;
    float weighted = 0.0f;
    for (size_t j = 0; j < k; j++) {
        if (row[j] < 0)
            continue;
        float dg = dot(dout, ye + (size_t)row[j] * C, C);
        dp[ex[j]] += renormalize ? dg / d : dg;
        weighted += dg * probs[ex[j]];
    }
    if (renormalize)
        for (size_t j = 0; j < k; j++)
            dp[ex[j]] -= weighted / (d * d);
}

void model_switch_combine_backward(model_switch_acts *acts, const float *dout,
                                   const model_switch_plan *p)
{
    SS_ASSERT(acts && dout && p);
    const size_t C = p->spec.C, E = p->spec.E, k = p->k;
    memset(acts->dh, 0, p->N * E * sizeof(float));
    for (size_t t = 0; t < p->N; t++) {
        const float *d = dout + t * C;
        for (size_t j = 0; j < k; j++) {
            int32_t row = acts->row[t * k + j];
            if (row < 0)
                continue;
            const float g = acts->gate[t * k + j];
            float *dy = acts->dye + (size_t)row * C;
            for (size_t c = 0; c < C; c++)
                dy[c] = g * d[c];
        }
        gate_backward(acts->dh + t * E, acts->probs + t * E, acts->expert + t * k,
                      acts->row + t * k, d, acts->ye, C, k, p->spec.top_k_renormalize);
    }
}

ss_status model_switch_experts_backward(float *dwi, float *dwo, model_switch_acts *acts,
                                        const float *wi, const float *wo,
                                        const model_switch_plan *p, const model_numerics *nx,
                                        ss_err *err)
{
    SS_ASSERT(dwi && dwo && acts && wi && wo && p && nx);
    const size_t C = p->spec.C, F = p->spec.F, FI = p->FI;
    memset(acts->dxe, 0, (size_t)acts->expert_row[p->spec.E] * C * sizeof(float));
    for (size_t e = 0; e < p->spec.E; e++) {
        size_t r0 = (size_t)acts->expert_row[e];
        size_t n = (size_t)acts->expert_row[e + 1] - r0;
        if (n == 0)
            continue;
        model_ffn_acts fa = expert_acts(acts, p, r0);
        ss_status st = model_ffn_backward(acts->dxe + r0 * C, dwi + e * C * FI, dwo + e * F * C,
                                          acts->dye + r0 * C, &fa, acts->xe + r0 * C,
                                          wi + e * C * FI, wo + e * F * C, n, C, F,
                                          p->spec.ffn, nx, err);
        if (st != SS_OK) {
            ss_err_prefix(err, "switch layer expert %zu", e);
            return st;
        }
    }
    return SS_OK;
}

/* dp += d L_aux / dp, weighted by daux: alpha * E * f_gi / (G * S) for every token of g. */
static void aux_backward(model_switch_acts *a, const model_switch_plan *p, float daux)
{
    const size_t G = p->G, S = p->S, E = p->spec.E;
    const double scale = (double)daux * p->spec.sw.aux_loss_alpha * (double)E /
                         ((double)G * (double)S * (double)S);
    for (size_t g = 0; g < G; g++)
        for (size_t e = 0; e < E; e++) {
            const float d = (float)(scale * (double)a->f_count[g * E + e]);
            for (size_t t = g * S; t < (g + 1) * S; t++)
                a->dh[t * E + e] += d;
        }
}

/* dh := softmax backward of dp (in place), plus the z-loss term dz * c_z * 2 lse_t / N * p. */
static void softmax_backward(model_switch_acts *a, const model_switch_plan *p, float dz)
{
    const size_t E = p->spec.E;
    const float zscale = (float)((double)dz * p->spec.sw.z_loss_coef * 2.0 / (double)p->N);
    for (size_t t = 0; t < p->N; t++) {
        float *dh = a->dh + t * E;
        const float *pr = a->probs + t * E;
        const float s = dot(pr, dh, E);
        const float z = zscale * a->lse[t];
        for (size_t e = 0; e < E; e++)
            dh[e] = pr[e] * (dh[e] - s) + z * pr[e];
    }
}

/* dinp[t] += dxe[row] for every kept choice (the expert path). */
static void scatter_add(float *dinp, const model_switch_acts *a, const model_switch_plan *p)
{
    const size_t C = p->spec.C;
    for (size_t i = 0; i < p->R; i++) {
        if (a->row[i] < 0)
            continue;
        float *d = dinp + (i / p->k) * C;
        const float *s = a->dxe + (size_t)a->row[i] * C;
        for (size_t c = 0; c < C; c++)
            d[c] += s[c];
    }
}

ss_status model_switch_route_backward(float *dinp, float *dwr, float daux, float dz,
                                      model_switch_acts *acts, const float *wr,
                                      const model_switch_plan *p, const model_numerics *nx,
                                      ss_err *err)
{
    SS_ASSERT(dwr && acts && wr && p && nx);
    const size_t N = p->N, C = p->spec.C, E = p->spec.E;
    if (dinp)
        scatter_add(dinp, acts, p);
    aux_backward(acts, p, daux);
    softmax_backward(acts, p, dz);
    if (p->jitter == MODEL_JITTER_LOGITS)
        multiply(acts->dh, acts->noise, N * E);
    const model_numerics rnx = router_numerics(nx, p->spec.sw.router_dtype);
    const int input_noise = p->jitter == MODEL_JITTER_INPUT && dinp;
    float *dx = input_noise ? acts->dxr : dinp;
    if (input_noise)
        memset(dx, 0, N * C * sizeof(float));
    ss_status st = model_linear_backward(dx, dwr, acts->dh, acts->xr, wr, N, C, E, &rnx, err);
    if (st != SS_OK) {
        ss_err_prefix(err, "switch layer router");
        return st;
    }
    if (input_noise)
        for (size_t i = 0; i < N * C; i++)
            dinp[i] += dx[i] * acts->noise[i];
    return SS_OK;
}

ss_status model_switch_backward(float *dinp, const model_switch_weights *dw, const float *dout,
                                float daux, float dz, model_switch_acts *acts,
                                const model_switch_weights *w, const model_switch_plan *p,
                                const model_numerics *nx, ss_err *err)
{
    SS_ASSERT(dw && w);
    model_switch_combine_backward(acts, dout, p);
    ss_status st = model_switch_experts_backward(dw->wi, dw->wo, acts, w->wi, w->wo, p, nx, err);
    if (st == SS_OK)
        st = model_switch_route_backward(dinp, dw->wr, daux, dz, acts, w->wr, p, nx, err);
    return st;
}
