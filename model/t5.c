/* This file implements the whole T5 encoder-decoder with Switch layers of t5.h: the parameter
 * layout (built by one walk over the architecture that also lists the residual sublayers),
 * the initialisation, and the forward and backward of the model as a sequence of pre-norm
 * residual sublayers over the layers of model/layers.h and model/switch_layer.h; and the
 * comparison of the last forward's routing with the other router dtype.
 *
 * Every residual sublayer (self-attention, cross-attention, dense FFN, Switch FFN) is one
 * `sub`: x_out = x_in + dropout(f(rmsnorm(x_in))). Its backward receives dx, the gradient of
 * x_out, and adds the sublayer's path into dx in place, which then is the gradient of x_in
 * (the residual's identity path needs no work). Sublayers are stored in execution order,
 * encoder first; x_in of a sublayer is x_out of the previous one of its stack.
 *
 * Invariants: the activation block holds every array a forward writes and a backward reads,
 * laid out once by the same walk that sizes it (layout_acts); after a successful forward
 * st->have_forward is 1 and the arrays hold that call; the backward only reads them (scratch
 * arrays are separate), so it may run twice on one forward.
 * reference: t5.h (architecture, layout and initialisation rules).
 */
#include "model/t5.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/data.h"
#include "model/layers.h"
#include "model/switch_layer.h"

enum { NAME_LEN = 96, ALIGN = 64 };

typedef enum { SUB_SELF = 0, SUB_CROSS, SUB_FFN, SUB_SWITCH } sub_kind;

/* One pre-norm residual sublayer. Offsets index the parameter (and gradient) buffer. */
typedef struct {
    sub_kind kind;
    int dec;            /* 0: encoder stack, 1: decoder stack */
    size_t norm;        /* offset of the RMSNorm scale [C] */
    size_t w[4];        /* attention: q, k, v, o; FFN: wi, wo; Switch: the layer's block */
    int sw;             /* Switch layer index (SUB_SWITCH), else -1 */
    /* activations of the last forward */
    const float *x_in;  /* [N, C] the stream entering (x_out of the previous sublayer) */
    float *x_out;       /* [N, C] */
    float *ln;          /* [N, C] rmsnorm(x_in) */
    float *rstd;        /* [N] */
    float *out;         /* [N, C] f(ln), after the residual dropout */
    float *mask;        /* [N, C] residual dropout scales; NULL when cfg.dropout == 0 */
    float *drop;        /* attention [B, H, T, S] or FFN [N, F] dropout scales, or NULL */
    model_attn_acts attn;
    model_ffn_acts ffn;
} sub;

/* One Switch layer's plans and activation block. */
typedef struct {
    model_switch_plan plan[2]; /* [0] evaluation, [1] training */
    void *mem;                 /* max of both plans' acts_bytes */
    model_switch_acts acts;    /* bound for the plan of the last forward */
    int training;              /* which plan the last forward used */
    int block;                 /* block index in its stack */
} swl;

struct model_t5_state {
    sub *subs;
    size_t nsub;
    size_t nsub_enc;          /* subs [0, nsub_enc) are the encoder's */
    swl *sw;
    int nswitch;
    int nswitch_enc;
    model_switch_spec spec;   /* valid when cfg.has_switch */
    char (*names)[NAME_LEN];  /* [ntensors] */
    double *init_std;         /* [ntensors]: truncated-normal std, or 0 for "all ones" */
    size_t wte, lm_head;      /* offsets; lm_head unused when tied */
    size_t table[2];          /* relative position bias table of each stack [NB, H] */
    size_t final_norm[2];     /* final RMSNorm of each stack [C] */
    void *block;              /* the one activation allocation */
    size_t block_bytes;
    /* per stack s (0 encoder, 1 decoder): */
    int32_t *tokens[2];       /* [N_s] inputs / decoder inputs of the last forward */
    int32_t *targets;         /* [Nd] */
    uint8_t *keys[2];         /* [N_s] key masks: inputs != pad, targets != pad */
    float *emb[2];            /* [N_s, C] embedding after dropout */
    float *emb_mask[2];       /* [N_s, C] or NULL */
    float *bias[2];           /* [H, T_s, T_s] relative position bias */
    float *fin[2];            /* [N_s, C] final norm output, after dropout (the encoder output
                               * / the head input) */
    float *fin_rstd[2];       /* [N_s] */
    float *fin_mask[2];       /* [N_s, C] or NULL */
    float *logits;            /* [Nd, V] */
    /* backward scratch */
    float *dx[2];             /* [N_s, C] gradient of the residual stream */
    float *dbias[2];          /* [H, T_s, T_s] */
    float *d_enc;             /* [Ne, C] gradient of the encoder output */
    float *d_out;             /* [max N, C] */
    float *d_ln;              /* [max N, C] */
    float *dlogits;           /* [Nd, V] */
    /* metrics storage */
    double *dropped, *entropy, *laux, *lz; /* [nswitch] */
    int32_t *tpe;             /* [nswitch * E] */
    int32_t *choice;          /* [choice_offset[nswitch]] */
    size_t *layer_tokens;     /* [nswitch] */
    size_t *choice_offset;    /* [nswitch + 1] */
    size_t *capacity;         /* [nswitch] */
    int *switch_block;        /* [nswitch] */
    /* the last forward */
    int have_forward;
    float p;                  /* dropout rate it used */
    float daux;               /* weight of the routing losses in the running backward */
};

/* ---- small helpers ------------------------------------------------------------------- */

static size_t rows_of(const model_t5 *m, int dec)
{
    return (size_t)m->shape.B * (size_t)(dec ? m->shape.T_out : m->shape.T_in);
}

static size_t len_of(const model_t5 *m, int dec)
{
    return (size_t)(dec ? m->shape.T_out : m->shape.T_in);
}

static float *P(const model_t5 *m, size_t off)
{
    return m->params + off;
}

static float *G(const model_t5 *m, size_t off)
{
    return m->grads + off;
}

int model_t5_block_is_switch(const model_cfg *cfg, int block)
{
    return cfg->has_switch && block % cfg->sw.every == cfg->sw.every - 1;
}

/* 64-bit FNV-1a of a string. */
static uint64_t hash_name(const char *s)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/* SplitMix64's finaliser. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* ---- parameter layout ---------------------------------------------------------------- */

/* A walk over the architecture: counts (t == NULL) or fills the tensor list and sublayers. */
typedef struct {
    const model_cfg *cfg;
    model_tensor *t;          /* NULL: count only */
    char (*names)[NAME_LEN];
    double *std;
    sub *subs;
    size_t n;                 /* tensors so far */
    size_t off;               /* floats so far */
    size_t nsub;
    int nswitch;
    int overflow;
} playout;

static size_t add_tensor(playout *p, size_t count, size_t rows, size_t cols, double std,
                         const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Appends a tensor of count x [rows, cols]; returns its offset. */
static size_t add_tensor(playout *p, size_t count, size_t rows, size_t cols, double std,
                         const char *fmt, ...)
{
    size_t off = p->off, sz;
    if (ss_mul_size(count, rows, &sz) || ss_mul_size(sz, cols, &sz) || sz > SIZE_MAX - p->off)
        p->overflow = 1;
    else
        p->off += sz;
    if (p->t) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->names[p->n], NAME_LEN, fmt, ap);
        va_end(ap);
        p->t[p->n] = (model_tensor){.name = p->names[p->n], .offset = off, .count = count,
                                    .rows = rows, .cols = cols};
        p->std[p->n] = std;
    }
    p->n++;
    return off;
}

static sub *new_sub(playout *p, sub_kind kind, int dec)
{
    static sub dummy;
    sub *s = p->subs ? &p->subs[p->nsub] : &dummy;
    p->nsub++;
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->dec = dec;
    s->sw = -1;
    return s;
}

/* q, k, v, o of an attention sublayer (and the stack's bias table in block 0). */
static void layout_attention(playout *p, sub *s, const char *pre, const char *what, int with_table,
                             size_t *table)
{
    const model_cfg *c = p->cfg;
    const size_t C = (size_t)c->d_model, A = (size_t)c->num_heads * (size_t)c->d_kv;
    const double sc = c->has_switch ? c->sw.init_scale : 1.0;
    static const char qkvo[] = "qkvo";
    for (int i = 0; i < 4; i++) {
        const size_t rows = i == 3 ? A : C, cols = i == 3 ? C : A;
        const double fan = i == 0 ? (double)C * (double)c->d_kv : (double)rows;
        s->w[i] = add_tensor(p, 1, rows, cols, sqrt(sc / fan), "%s.%s.%c", pre, what, qkvo[i]);
    }
    if (with_table) {
        const size_t NB = (size_t)c->relative_attention_num_buckets;
        *table = add_tensor(p, 1, NB, (size_t)c->num_heads, sqrt(sc / (double)NB),
                            "%s.%s.relative_attention_bias", pre, what);
    }
}

/* The FFN sublayer: dense wi, wo or a Switch layer's router, expert wi, expert wo. */
static void layout_ffn(playout *p, sub *s, const char *pre, int is_switch)
{
    const model_cfg *c = p->cfg;
    const size_t C = (size_t)c->d_model, F = (size_t)c->d_ff;
    const size_t FI = c->ffn == MODEL_FFN_GEGLU ? 2 * F : F;
    const double sc = c->has_switch ? c->sw.init_scale : 1.0;
    if (!is_switch) {
        s->w[0] = add_tensor(p, 1, C, FI, sqrt(sc / (double)C), "%s.mlp.wi", pre);
        s->w[1] = add_tensor(p, 1, F, C, sqrt(sc / (double)F), "%s.mlp.wo", pre);
        return;
    }
    const size_t E = (size_t)c->sw.num_experts;
    s->sw = p->nswitch++;
    s->w[0] = add_tensor(p, 1, C, E, sqrt(sc / (double)C), "%s.mlp.router.classifier", pre);
    add_tensor(p, E, C, FI, sqrt(sc / (double)C), "%s.mlp.experts.wi", pre);
    add_tensor(p, E, F, C, sqrt(sc / (double)F), "%s.mlp.experts.wo", pre);
}

static size_t add_norm(playout *p, const char *pre)
{
    return add_tensor(p, 1, 1, (size_t)p->cfg->d_model, 0.0, "%s.layer_norm", pre);
}

/* One stack's blocks and final norm, in HF state_dict order. */
static void layout_stack(playout *p, struct model_t5_state *st, int dec)
{
    const model_cfg *c = p->cfg;
    const char *stack = dec ? "decoder" : "encoder";
    const int L = dec ? c->decoder_layers : c->encoder_layers;
    char pre[NAME_LEN];
    for (int i = 0; i < L; i++) {
        int layer = 0;
        snprintf(pre, sizeof pre, "%s.block.%d.layer.%d", stack, i, layer++);
        sub *s = new_sub(p, SUB_SELF, dec);
        layout_attention(p, s, pre, "SelfAttention", i == 0, &st->table[dec]);
        s->norm = add_norm(p, pre);
        if (dec) {
            snprintf(pre, sizeof pre, "%s.block.%d.layer.%d", stack, i, layer++);
            s = new_sub(p, SUB_CROSS, dec);
            layout_attention(p, s, pre, "EncDecAttention", 0, NULL);
            s->norm = add_norm(p, pre);
        }
        snprintf(pre, sizeof pre, "%s.block.%d.layer.%d", stack, i, layer);
        const int is_switch = model_t5_block_is_switch(c, i);
        s = new_sub(p, is_switch ? SUB_SWITCH : SUB_FFN, dec);
        layout_ffn(p, s, pre, is_switch);
        s->norm = add_norm(p, pre);
    }
    st->final_norm[dec] = add_tensor(p, 1, 1, (size_t)c->d_model, 0.0, "%s.final_layer_norm",
                                     stack);
}

static void layout_params(playout *p, struct model_t5_state *st)
{
    const model_cfg *c = p->cfg;
    const size_t C = (size_t)c->d_model, V = (size_t)c->vocab_size;
    st->wte = add_tensor(p, 1, V, C, 1.0, "shared");
    layout_stack(p, st, 0);
    st->nsub_enc = p->nsub;
    st->nswitch_enc = p->nswitch;
    layout_stack(p, st, 1);
    if (!c->tied_embeddings) {
        const double sc = c->has_switch ? c->sw.init_scale : 1.0;
        st->lm_head = add_tensor(p, 1, C, V, sqrt(sc / (double)C), "lm_head");
    }
}

/* ---- activation layout --------------------------------------------------------------- */

typedef struct {
    char *base;     /* NULL: size only */
    size_t off;
    int overflow;
} arena;

/* n elements of size elem, 64-byte aligned; NULL while sizing. */
static void *take(arena *a, size_t n, size_t elem)
{
    size_t bytes;
    if (ss_mul_size(n, elem, &bytes) || a->off > SIZE_MAX - ALIGN - bytes) {
        a->overflow = 1;
        return NULL;
    }
    a->off = (a->off + ALIGN - 1) / ALIGN * ALIGN;
    void *ptr = a->base ? a->base + a->off : NULL;
    a->off += bytes;
    return ptr;
}

static float *takef(arena *a, size_t n)
{
    return take(a, n, sizeof(float));
}

/* n floats when `want`, else NULL. */
static float *takef_if(arena *a, int want, size_t n)
{
    return want ? takef(a, n) : NULL;
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

static void layout_sub(arena *a, sub *s, const model_t5 *m)
{
    const model_cfg *c = &m->cfg;
    const int dec = s->dec;
    const size_t N = rows_of(m, dec), C = (size_t)c->d_model, F = (size_t)c->d_ff;
    const size_t A = (size_t)c->num_heads * (size_t)c->d_kv, H = (size_t)c->num_heads;
    const int drop = c->dropout > 0.0;
    s->x_out = takef(a, N * C);
    s->ln = takef(a, N * C);
    s->rstd = takef(a, N);
    s->out = takef(a, N * C);
    s->mask = takef_if(a, drop, N * C);
    if (s->kind == SUB_SELF || s->kind == SUB_CROSS) {
        const int cross = s->kind == SUB_CROSS;
        const size_t T = len_of(m, dec), S = cross ? len_of(m, 0) : T;
        const size_t NS = (size_t)m->shape.B * S, BHTS = (size_t)m->shape.B * H * T * S;
        s->attn.q = takef(a, N * A);
        s->attn.k = takef(a, NS * A);
        s->attn.v = takef(a, NS * A);
        s->attn.att = takef(a, BHTS);
        s->attn.y = takef(a, N * A);
        s->drop = takef_if(a, drop, BHTS);
    } else if (s->kind == SUB_FFN) {
        s->ffn.pre = takef(a, N * (c->ffn == MODEL_FFN_GEGLU ? 2 * F : F));
        s->ffn.h = takef(a, N * F);
        s->drop = takef_if(a, drop, N * F);
    } else {
        swl *l = &m->st->sw[s->sw];
        l->mem = take(a, max_sz(l->plan[0].acts_bytes, l->plan[1].acts_bytes), 1);
    }
}

static void layout_acts(arena *a, model_t5 *m)
{
    struct model_t5_state *st = m->st;
    const model_cfg *c = &m->cfg;
    const size_t C = (size_t)c->d_model, V = (size_t)c->vocab_size, H = (size_t)c->num_heads;
    const int drop = c->dropout > 0.0;
    const size_t Nmax = max_sz(rows_of(m, 0), rows_of(m, 1));
    for (int d = 0; d < 2; d++) {
        const size_t N = rows_of(m, d), T = len_of(m, d);
        st->tokens[d] = take(a, N, sizeof(int32_t));
        st->keys[d] = take(a, N, 1);
        st->emb[d] = takef(a, N * C);
        st->emb_mask[d] = takef_if(a, drop, N * C);
        st->bias[d] = takef(a, H * T * T);
        st->fin[d] = takef(a, N * C);
        st->fin_rstd[d] = takef(a, N);
        st->fin_mask[d] = takef_if(a, drop, N * C);
        st->dx[d] = takef(a, N * C);
        st->dbias[d] = takef(a, H * T * T);
    }
    st->targets = take(a, rows_of(m, 1), sizeof(int32_t));
    st->logits = takef(a, rows_of(m, 1) * V);
    st->dlogits = takef(a, rows_of(m, 1) * V);
    st->d_enc = takef(a, rows_of(m, 0) * C);
    st->d_out = takef(a, Nmax * C);
    st->d_ln = takef(a, Nmax * C);
    for (size_t i = 0; i < st->nsub; i++) {
        sub *s = &st->subs[i];
        layout_sub(a, s, m);
        const int first = i == 0 || i == st->nsub_enc;
        s->x_in = first ? st->emb[s->dec] : st->subs[i - 1].x_out;
    }
    /* metrics */
    const size_t ns = (size_t)st->nswitch, E = c->has_switch ? (size_t)c->sw.num_experts : 0;
    st->dropped = take(a, ns, sizeof(double));
    st->entropy = take(a, ns, sizeof(double));
    st->laux = take(a, ns, sizeof(double));
    st->lz = take(a, ns, sizeof(double));
    st->tpe = take(a, ns * E, sizeof(int32_t));
    st->layer_tokens = take(a, ns, sizeof(size_t));
    st->choice_offset = take(a, ns + 1, sizeof(size_t));
    st->capacity = take(a, ns, sizeof(size_t));
    st->switch_block = take(a, ns, sizeof(int));
    size_t nchoice = 0;
    for (int i = 0; i < st->nswitch; i++)
        nchoice += rows_of(m, i >= st->nswitch_enc) * (size_t)c->sw.top_k;
    st->choice = take(a, nchoice, sizeof(int32_t));
}

/* ---- init ---------------------------------------------------------------------------- */

static ss_status check_model(const model_t5 *m, ss_err *err)
{
    const model_cfg *c = &m->cfg;
    const model_t5_shape *s = &m->shape;
    if (c->encoder_layers < 1 || c->decoder_layers < 1)
        return ss_err_set(err, SS_ERR_CONFIG, "model %s: %d encoder and %d decoder layers: the "
                          "whole model needs both stacks", c->name, c->encoder_layers,
                          c->decoder_layers);
    if (c->d_model < 1 || c->d_ff < 1 || c->d_kv < 1 || c->num_heads < 1 || c->vocab_size < 1)
        return ss_err_set(err, SS_ERR_CONFIG, "model %s: a dimension is below 1", c->name);
    if (s->B < 1 || s->T_in < 1 || s->T_out < 1)
        return ss_err_set(err, SS_ERR_RANGE, "model shape B=%d T_in=%d T_out=%d: each must be "
                          ">= 1", s->B, s->T_in, s->T_out);
    for (int bidir = 0; bidir < 2; bidir++) {
        ss_status st = model_relpos_check(bidir, c->relative_attention_num_buckets,
                                          c->relative_attention_max_distance, err);
        if (st != SS_OK) {
            ss_err_prefix(err, "model %s", c->name);
            return SS_ERR_CONFIG;
        }
    }
    return SS_OK;
}

static ss_status make_switch_plans(model_t5 *m, ss_err *err)
{
    struct model_t5_state *st = m->st;
    for (size_t i = 0; i < st->nsub; i++) {
        const sub *s = &st->subs[i];
        if (s->kind != SUB_SWITCH)
            continue;
        swl *l = &st->sw[s->sw];
        for (int tr = 0; tr < 2; tr++) {
            ss_status e = model_switch_plan_make(&l->plan[tr], &st->spec, rows_of(m, s->dec),
                                                 tr, err);
            if (e != SS_OK) {
                ss_err_prefix(err, "%s Switch layer %d", s->dec ? "decoder" : "encoder", s->sw);
                return e;
            }
        }
    }
    return SS_OK;
}

/* Block index of each Switch layer, from the sublayer order. */
static void number_switch_blocks(struct model_t5_state *st, const model_cfg *c)
{
    int idx = 0;
    for (int d = 0; d < 2; d++) {
        const int L = d ? c->decoder_layers : c->encoder_layers;
        for (int b = 0; b < L; b++)
            if (model_t5_block_is_switch(c, b))
                st->sw[idx++].block = b;
    }
    SS_ASSERT(idx == st->nswitch);
}

static ss_status alloc_fail(ss_err *err, const char *what)
{
    return ss_err_set(err, SS_ERR_NOMEM, "model_t5_init: cannot allocate the %s", what);
}

static ss_status alloc_layout(model_t5 *m, ss_err *err)
{
    struct model_t5_state *st = m->st;
    playout p = {.cfg = &m->cfg};
    layout_params(&p, st);
    if (p.overflow)
        return ss_err_set(err, SS_ERR_NOMEM, "model %s: the parameter count overflows size_t",
                          m->cfg.name);
    m->ntensors = p.n;
    m->nparams = p.off;
    st->nsub = p.nsub;
    st->nswitch = p.nswitch;
    m->tensors = calloc(p.n, sizeof *m->tensors);
    st->names = calloc(p.n, sizeof *st->names);
    st->init_std = calloc(p.n, sizeof *st->init_std);
    st->subs = calloc(p.nsub, sizeof *st->subs);
    st->sw = calloc(p.nswitch ? (size_t)p.nswitch : 1, sizeof *st->sw);
    if (!m->tensors || !st->names || !st->init_std || !st->subs || !st->sw)
        return alloc_fail(err, "tensor list");
    m->params = calloc(m->nparams, sizeof(float));
    m->grads = calloc(m->nparams, sizeof(float));
    if (!m->params || !m->grads)
        return ss_err_set(err, SS_ERR_NOMEM, "model %s: cannot allocate 2 x %zu parameters",
                          m->cfg.name, m->nparams);
    playout q = {.cfg = &m->cfg, .t = m->tensors, .names = st->names, .std = st->init_std,
                 .subs = st->subs};
    layout_params(&q, st);
    SS_ASSERT(q.n == p.n && q.off == p.off && q.nsub == p.nsub);
    return model_tensors_check(m->tensors, m->ntensors, m->nparams, err);
}

static ss_status alloc_acts(model_t5 *m, ss_err *err)
{
    struct model_t5_state *st = m->st;
    arena a = {0};
    layout_acts(&a, m);
    if (a.overflow)
        return ss_err_set(err, SS_ERR_NOMEM, "model %s: the activations for B=%d T_in=%d "
                          "T_out=%d overflow size_t", m->cfg.name, m->shape.B, m->shape.T_in,
                          m->shape.T_out);
    st->block_bytes = a.off;
    st->block = calloc(a.off ? a.off : 1, 1);
    if (!st->block)
        return ss_err_set(err, SS_ERR_NOMEM, "model %s: cannot allocate %zu bytes of "
                          "activations", m->cfg.name, a.off);
    arena b = {.base = st->block};
    layout_acts(&b, m);
    SS_ASSERT(b.off == a.off);
    return SS_OK;
}

ss_status model_t5_init(model_t5 *m, const model_cfg *cfg, model_t5_shape shape,
                        const model_numerics *nx, ss_err *err)
{
    SS_ASSERT(m && cfg && nx);
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->shape = shape;
    m->nx = *nx;
    m->pad_id = MODEL_DATA_PAD_ID;
    ss_status e = check_model(m, err);
    if (e != SS_OK)
        return e;
    m->st = calloc(1, sizeof *m->st);
    if (!m->st)
        return alloc_fail(err, "model state");
    if (cfg->has_switch)
        m->st->spec = model_switch_spec_from_cfg(cfg);
    e = alloc_layout(m, err);
    if (e == SS_OK) {
        number_switch_blocks(m->st, cfg);
        e = make_switch_plans(m, err);
    }
    if (e == SS_OK)
        e = alloc_acts(m, err);
    if (e != SS_OK)
        model_t5_free(m);
    return e;
}

static void init_tensor(float *x, size_t n, double std, uint64_t seed, const char *name)
{
    if (std == 0.0) {
        for (size_t i = 0; i < n; i++)
            x[i] = 1.0f;
        return;
    }
    rng_state r;
    rng_seed(&r, mix64(seed) ^ hash_name(name));
    for (size_t i = 0; i < n; i++) {
        double z;
        do
            z = rng_normal(&r);
        while (fabs(z) > 2.0);
        x[i] = (float)(std * z);
    }
}

void model_t5_init_params(model_t5 *m, uint64_t seed)
{
    SS_ASSERT(m && m->st);
    for (size_t k = 0; k < m->ntensors; k++) {
        const model_tensor *t = &m->tensors[k];
        init_tensor(m->params + t->offset, model_tensor_size(t), m->st->init_std[k], seed,
                    t->name);
    }
}

void model_t5_zero_grad(model_t5 *m)
{
    SS_ASSERT(m && m->grads);
    memset(m->grads, 0, m->nparams * sizeof(float));
}

void model_t5_free(model_t5 *m)
{
    if (!m)
        return;
    if (m->st) {
        free(m->st->subs);
        free(m->st->sw);
        free(m->st->names);
        free(m->st->init_std);
        free(m->st->block);
        free(m->st);
    }
    free(m->params);
    free(m->grads);
    free(m->tensors);
    m->st = NULL;
    m->params = m->grads = NULL;
    m->tensors = NULL;
    m->nparams = m->ntensors = 0;
}

long model_t5_tensor_find(const model_t5 *m, const char *name)
{
    for (size_t k = 0; k < m->ntensors; k++)
        if (strcmp(m->tensors[k].name, name) == 0)
            return (long)k;
    return -1;
}

size_t model_t5_acts_bytes(const model_t5 *m)
{
    return m->st ? m->st->block_bytes : 0;
}

/* ---- forward ------------------------------------------------------------------------- */

static model_attn_dims attn_dims(const model_t5 *m, const sub *s, float p)
{
    const int cross = s->kind == SUB_CROSS;
    return (model_attn_dims){
        .B = (size_t)m->shape.B, .T = len_of(m, s->dec),
        .S = cross ? len_of(m, 0) : len_of(m, s->dec), .C = (size_t)m->cfg.d_model,
        .H = (size_t)m->cfg.num_heads, .D = (size_t)m->cfg.d_kv,
        .causal = s->dec && !cross, .dropout = p};
}

static model_attn_weights attn_weights(const model_t5 *m, const sub *s)
{
    return (model_attn_weights){.wq = P(m, s->w[0]), .wk = P(m, s->w[1]), .wv = P(m, s->w[2]),
                                .wo = P(m, s->w[3])};
}

static model_attn_grads attn_grads(const model_t5 *m, const sub *s)
{
    return (model_attn_grads){.wq = G(m, s->w[0]), .wk = G(m, s->w[1]), .wv = G(m, s->w[2]),
                              .wo = G(m, s->w[3])};
}

/* Copies one Switch layer's statistics into the metrics arrays. */
static void record_switch(struct model_t5_state *st, int i, const model_switch_stats *ss,
                          const model_switch_plan *plan)
{
    const size_t E = plan->spec.E, k = plan->k, n = plan->N * k;
    st->dropped[i] = ss->dropped_fraction;
    st->entropy[i] = ss->router_entropy;
    st->laux[i] = ss->aux_loss;
    st->lz[i] = ss->z_loss;
    st->capacity[i] = ss->capacity;
    st->layer_tokens[i] = plan->N;
    int32_t *tpe = st->tpe + (size_t)i * E;
    memset(tpe, 0, E * sizeof(int32_t));
    for (size_t t = 0; t < plan->N; t++)
        tpe[ss->expert[t * k]]++; /* choice 0 of each token, before capacity */
    int32_t *ch = st->choice + st->choice_offset[i];
    for (size_t j = 0; j < n; j++)
        ch[j] = ss->slot[j] >= 0 ? ss->expert[j] : -1;
}

static ss_status switch_forward(model_t5 *m, sub *s, int training, rng_state *r, ss_err *err)
{
    struct model_t5_state *st = m->st;
    swl *l = &st->sw[s->sw];
    const model_switch_plan *plan = &l->plan[training];
    model_switch_weights w;
    model_switch_weights_bind(&w, P(m, s->w[0]), &st->spec);
    model_switch_acts_bind(&l->acts, l->mem, plan);
    l->training = training;
    model_switch_stats ss;
    const model_t5_experts_hook *h = m->experts_hook;
    ss_status e;
    if (!h) {
        e = model_switch_forward(s->out, &l->acts, &ss, s->ln, &w, plan, r, &m->nx, err);
    } else {
        e = model_switch_route_forward(&l->acts, &ss, s->ln, w.wr, plan, r, &m->nx, err);
        if (e == SS_OK)
            e = h->experts_forward(h->ctx, s->sw, &l->acts, plan, &w, r, &m->nx, err);
        if (e == SS_OK)
            model_switch_combine_forward(s->out, &l->acts, plan, &m->nx);
    }
    if (e == SS_OK)
        record_switch(st, s->sw, &ss, plan);
    return e;
}

/* x_out = x_in + dropout(f(rmsnorm(x_in))). */
static ss_status sub_forward(model_t5 *m, sub *s, int training, float p, rng_state *r,
                             ss_err *err)
{
    struct model_t5_state *st = m->st;
    const model_cfg *c = &m->cfg;
    const size_t N = rows_of(m, s->dec), C = (size_t)c->d_model;
    ss_status e = SS_OK;
    model_rmsnorm_forward(s->ln, s->rstd, s->x_in, P(m, s->norm), N, C, &m->nx);
    if (s->kind == SUB_SELF || s->kind == SUB_CROSS) {
        const int cross = s->kind == SUB_CROSS;
        const model_attn_dims d = attn_dims(m, s, p);
        const model_attn_weights w = attn_weights(m, s);
        s->attn.drop = p > 0.0f ? s->drop : NULL;
        e = model_attention_forward(s->out, &s->attn, s->ln, cross ? st->fin[0] : s->ln, &w,
                                    cross ? NULL : st->bias[s->dec],
                                    st->keys[cross ? 0 : s->dec], &d, r, &m->nx, err);
    } else if (s->kind == SUB_FFN) {
        s->ffn.mask = p > 0.0f ? s->drop : NULL;
        e = model_ffn_forward(s->out, &s->ffn, s->ln, P(m, s->w[0]), P(m, s->w[1]), N, C,
                              (size_t)c->d_ff, c->ffn, p, r, &m->nx, err);
    } else {
        e = switch_forward(m, s, training, r, err);
    }
    if (e == SS_OK && p > 0.0f)
        e = model_dropout_forward(s->out, s->mask, s->out, N * C, p, r, &m->nx, err);
    if (e == SS_OK)
        model_residual_forward(s->x_out, s->x_in, s->out, N * C, &m->nx);
    return e;
}

/* Embedding (with dropout), key mask and position bias of stack d. */
static ss_status stack_input(model_t5 *m, int d, const int32_t *tokens, const int32_t *mask_from,
                             float p, rng_state *r, ss_err *err)
{
    struct model_t5_state *st = m->st;
    const model_cfg *c = &m->cfg;
    const size_t N = rows_of(m, d), T = len_of(m, d), C = (size_t)c->d_model;
    memcpy(st->tokens[d], tokens, N * sizeof(int32_t));
    ss_status e = model_embedding_forward(st->emb[d], tokens, P(m, st->wte), N, C,
                                          (size_t)c->vocab_size, &m->nx, err);
    if (e != SS_OK) {
        ss_err_prefix(err, "%s", d ? "decoder inputs" : "inputs");
        return e;
    }
    if (p > 0.0f && (e = model_dropout_forward(st->emb[d], st->emb_mask[d], st->emb[d], N * C,
                                               p, r, &m->nx, err)) != SS_OK)
        return e;
    model_key_mask_from_tokens(st->keys[d], mask_from, N, m->pad_id);
    return model_relpos_bias_forward(st->bias[d], P(m, st->table[d]), T, T,
                                     (size_t)c->num_heads, !d,
                                     c->relative_attention_num_buckets,
                                     c->relative_attention_max_distance, err);
}

/* All sublayers of stack d, then its final norm and dropout into st->fin[d]. */
static ss_status stack_forward(model_t5 *m, int d, int training, float p, rng_state *r,
                               ss_err *err)
{
    struct model_t5_state *st = m->st;
    const size_t lo = d ? st->nsub_enc : 0, hi = d ? st->nsub : st->nsub_enc;
    const size_t N = rows_of(m, d), C = (size_t)m->cfg.d_model;
    for (size_t i = lo; i < hi; i++) {
        ss_status e = sub_forward(m, &st->subs[i], training, p, r, err);
        if (e != SS_OK)
            return e;
    }
    model_rmsnorm_forward(st->fin[d], st->fin_rstd[d], st->subs[hi - 1].x_out,
                          P(m, st->final_norm[d]), N, C, &m->nx);
    if (p > 0.0f)
        return model_dropout_forward(st->fin[d], st->fin_mask[d], st->fin[d], N * C, p, r,
                                     &m->nx, err);
    return SS_OK;
}

static int needs_rng(const model_cfg *c, int training)
{
    if (!training)
        return 0;
    if (c->dropout > 0.0)
        return 1;
    return c->has_switch && ((c->sw.jitter != MODEL_JITTER_OFF && c->sw.jitter_eps > 0.0) ||
                             c->sw.expert_dropout > 0.0);
}

static void fill_metrics(const model_t5 *m, const model_xent_stats *xs, model_t5_metrics *out)
{
    const struct model_t5_state *st = m->st;
    memset(out, 0, sizeof *out);
    out->loss = xs->loss;
    out->tokens = xs->count;
    out->correct = xs->correct;
    for (int i = 0; i < st->nswitch; i++) {
        out->aux_loss += st->laux[i];
        out->z_loss += st->lz[i];
    }
    out->total = out->loss + out->aux_loss + out->z_loss;
    out->nswitch = st->nswitch;
    out->dropped_fraction = st->dropped;
    out->router_entropy = st->entropy;
    out->tokens_per_expert = st->tpe;
    out->expert_choice = st->choice;
    out->num_experts = m->cfg.has_switch ? m->cfg.sw.num_experts : 0;
    out->top_k = m->cfg.has_switch ? m->cfg.sw.top_k : 0;
    out->nswitch_encoder = st->nswitch_enc;
    out->switch_block = st->switch_block;
    out->layer_tokens = st->layer_tokens;
    out->choice_offset = st->choice_offset;
    out->layer_aux_loss = st->laux;
    out->layer_z_loss = st->lz;
    out->capacity = st->capacity;
}

static void prepare_switch_metrics(model_t5 *m)
{
    struct model_t5_state *st = m->st;
    size_t off = 0;
    for (int i = 0; i < st->nswitch; i++) {
        st->choice_offset[i] = off;
        st->switch_block[i] = st->sw[i].block;
        off += rows_of(m, i >= st->nswitch_enc) * (size_t)m->cfg.sw.top_k;
    }
    st->choice_offset[st->nswitch] = off;
}

ss_status model_t5_forward(model_t5 *m, const int32_t *inputs, const int32_t *decoder_inputs,
                           const int32_t *targets, int training, rng_state *r,
                           model_t5_metrics *out, ss_err *err)
{
    SS_ASSERT(m && m->st && inputs && decoder_inputs && targets);
    struct model_t5_state *st = m->st;
    const model_cfg *c = &m->cfg;
    training = training ? 1 : 0;
    st->have_forward = 0;
    if (needs_rng(c, training) && !r)
        return ss_err_set(err, SS_ERR_RANGE, "model_t5_forward: training with dropout or "
                          "jitter needs an rng");
    const float p = training ? (float)c->dropout : 0.0f;
    const size_t Nd = rows_of(m, 1);
    prepare_switch_metrics(m);
    memcpy(st->targets, targets, Nd * sizeof(int32_t));
    ss_status e = stack_input(m, 0, inputs, inputs, p, r, err);
    if (e == SS_OK)
        e = stack_forward(m, 0, training, p, r, err);
    if (e == SS_OK)
        e = stack_input(m, 1, decoder_inputs, targets, p, r, err);
    if (e == SS_OK)
        e = stack_forward(m, 1, training, p, r, err);
    if (e == SS_OK)
        e = model_head_forward(st->logits, st->fin[1], P(m, c->tied_embeddings ? st->wte
                                                                                : st->lm_head),
                               Nd, (size_t)c->d_model, (size_t)c->vocab_size,
                               c->tied_embeddings, &m->nx, err);
    model_xent_stats xs = {0};
    if (e == SS_OK)
        e = model_xent_forward(&xs, st->logits, targets, Nd, (size_t)c->vocab_size, m->pad_id,
                               err);
    if (e != SS_OK) {
        ss_err_prefix(err, "model %s forward", c->name);
        return e;
    }
    st->p = p;
    st->have_forward = 1;
    if (out)
        fill_metrics(m, &xs, out);
    return SS_OK;
}

/* ---- backward ------------------------------------------------------------------------ */

/* The gradient `dy` of a dropout output, as the gradient of its input: dy itself without
 * dropout, else mask * dy written into scratch. */
static const float *undrop(float *scratch, const float *dy, const float *mask, size_t n, float p)
{
    if (p <= 0.0f)
        return dy;
    memset(scratch, 0, n * sizeof(float));
    model_dropout_backward(scratch, dy, mask, n);
    return scratch;
}

static ss_status switch_backward(model_t5 *m, sub *s, float *dinp, const float *dout,
                                 ss_err *err)
{
    struct model_t5_state *st = m->st;
    swl *l = &st->sw[s->sw];
    const model_switch_plan *plan = &l->plan[l->training];
    const float daux = st->daux;
    model_switch_weights w, dw;
    model_switch_weights_bind(&w, P(m, s->w[0]), &st->spec);
    model_switch_weights_bind(&dw, G(m, s->w[0]), &st->spec);
    const model_t5_experts_hook *h = m->experts_hook;
    if (!h)
        return model_switch_backward(dinp, &dw, dout, daux, daux, &l->acts, &w, plan, &m->nx,
                                     err);
    model_switch_combine_backward(&l->acts, dout, plan);
    ss_status e = h->experts_backward(h->ctx, s->sw, &l->acts, plan, &w, &dw, &m->nx, err);
    if (e == SS_OK)
        e = model_switch_route_backward(dinp, dw.wr, daux, daux, &l->acts, w.wr, plan, &m->nx,
                                        err);
    return e;
}

/* dx: on entry the gradient of x_out; on return that of x_in. */
static ss_status sub_backward(model_t5 *m, sub *s, float *dx, ss_err *err)
{
    struct model_t5_state *st = m->st;
    const model_cfg *c = &m->cfg;
    const size_t N = rows_of(m, s->dec), C = (size_t)c->d_model;
    const float *dout = undrop(st->d_out, dx, s->mask, N * C, st->p);
    memset(st->d_ln, 0, N * C * sizeof(float));
    ss_status e;
    if (s->kind == SUB_SELF || s->kind == SUB_CROSS) {
        const int cross = s->kind == SUB_CROSS;
        const model_attn_dims d = attn_dims(m, s, st->p);
        const model_attn_weights w = attn_weights(m, s);
        const model_attn_grads dw = attn_grads(m, s);
        e = model_attention_backward(st->d_ln, cross ? st->d_enc : st->d_ln, &dw,
                                     cross ? NULL : st->dbias[s->dec], dout, &s->attn, s->ln,
                                     cross ? st->fin[0] : s->ln, &w, &d, &m->nx, err);
    } else if (s->kind == SUB_FFN) {
        e = model_ffn_backward(st->d_ln, G(m, s->w[0]), G(m, s->w[1]), dout, &s->ffn, s->ln,
                               P(m, s->w[0]), P(m, s->w[1]), N, C, (size_t)c->d_ff, c->ffn,
                               &m->nx, err);
    } else {
        e = switch_backward(m, s, st->d_ln, dout, err);
    }
    if (e == SS_OK)
        model_rmsnorm_backward(dx, G(m, s->norm), st->d_ln, s->x_in, P(m, s->norm), s->rstd,
                               N, C);
    return e;
}

/* Stack d from the gradient of its output fin[d] (dfin) to the embedding and bias table. */
static ss_status stack_backward(model_t5 *m, int d, const float *dfin, ss_err *err)
{
    struct model_t5_state *st = m->st;
    const model_cfg *c = &m->cfg;
    const size_t lo = d ? st->nsub_enc : 0, hi = d ? st->nsub : st->nsub_enc;
    const size_t N = rows_of(m, d), T = len_of(m, d), C = (size_t)c->d_model;
    const size_t H = (size_t)c->num_heads;
    float *dx = st->dx[d];
    const float *dnorm = undrop(st->d_out, dfin, st->fin_mask[d], N * C, st->p);
    memset(dx, 0, N * C * sizeof(float));
    model_rmsnorm_backward(dx, G(m, st->final_norm[d]), dnorm, st->subs[hi - 1].x_out,
                           P(m, st->final_norm[d]), st->fin_rstd[d], N, C);
    memset(st->dbias[d], 0, H * T * T * sizeof(float));
    for (size_t i = hi; i-- > lo;) {
        ss_status e = sub_backward(m, &st->subs[i], dx, err);
        if (e != SS_OK)
            return e;
    }
    model_relpos_bias_backward(G(m, st->table[d]), st->dbias[d], T, T, H, !d,
                               c->relative_attention_num_buckets,
                               c->relative_attention_max_distance);
    const float *demb = undrop(st->d_out, dx, st->emb_mask[d], N * C, st->p);
    model_embedding_backward(G(m, st->wte), demb, st->tokens[d], N, C, (size_t)c->vocab_size);
    return SS_OK;
}

ss_status model_t5_backward(model_t5 *m, ss_err *err)
{
    return model_t5_backward_weighted(m, 1.0f, 1.0f, err);
}

ss_status model_t5_backward_weighted(model_t5 *m, float dloss, float daux, ss_err *err)
{
    SS_ASSERT(m && m->st);
    struct model_t5_state *st = m->st;
    const model_cfg *c = &m->cfg;
    if (!st->have_forward)
        return ss_err_set(err, SS_ERR_USAGE, "model_t5_backward: no successful forward pass "
                          "to differentiate");
    const size_t Nd = rows_of(m, 1), C = (size_t)c->d_model, V = (size_t)c->vocab_size;
    memset(st->dlogits, 0, Nd * V * sizeof(float));
    st->daux = daux;
    model_xent_backward(st->dlogits, st->logits, st->targets, Nd, V, m->pad_id, dloss);
    float *dfin = st->d_ln; /* free until the first sublayer backward */
    memset(dfin, 0, Nd * C * sizeof(float));
    const size_t head = c->tied_embeddings ? st->wte : st->lm_head;
    ss_status e = model_head_backward(dfin, G(m, head), st->dlogits, st->fin[1], P(m, head), Nd,
                                      C, V, c->tied_embeddings, &m->nx, err);
    memset(st->d_enc, 0, rows_of(m, 0) * C * sizeof(float));
    if (e == SS_OK)
        e = stack_backward(m, 1, dfin, err);
    if (e == SS_OK)
        e = stack_backward(m, 0, st->d_enc, err);
    if (e != SS_OK)
        ss_err_prefix(err, "model %s backward", c->name);
    return e;
}

/* ---- router comparison --------------------------------------------------------------- */

/* One Switch layer's disagreement: its choices against those of router dtype `other`;
 * scratch holds the layer's N * k choices and 2 * N * E floats. */
static ss_status layer_disagreement(const model_t5 *m, const sub *s, model_router_dtype other,
                                    int32_t *choices, float *scratch, double *out, ss_err *err)
{
    const struct model_t5_state *st = m->st;
    const swl *l = &st->sw[s->sw];
    const model_switch_plan *plan = &l->plan[l->training];
    model_switch_weights w;
    model_switch_weights_bind(&w, P(m, s->w[0]), &st->spec);
    ss_status e = model_switch_route_choices(choices, scratch, &l->acts, w.wr, other, plan,
                                             &m->nx, err);
    if (e == SS_OK)
        *out = model_switch_choice_disagreement(choices, l->acts.expert, plan->N, plan->k);
    return e;
}

ss_status model_t5_router_disagreement(const model_t5 *m, model_router_dtype other,
                                       double *out, ss_err *err)
{
    SS_ASSERT(m && m->st && out);
    const struct model_t5_state *st = m->st;
    if (!st->have_forward)
        return ss_err_set(err, SS_ERR_USAGE, "model_t5_router_disagreement: no successful "
                          "forward pass to compare");
    if (st->nswitch == 0)
        return SS_OK;
    const size_t N = rows_of(m, 0) > rows_of(m, 1) ? rows_of(m, 0) : rows_of(m, 1);
    const size_t E = st->spec.E, k = (size_t)m->cfg.sw.top_k;
    int32_t *choices = malloc(N * k * sizeof(int32_t));
    float *scratch = malloc(2 * N * E * sizeof(float));
    ss_status e = choices && scratch ? SS_OK
                                     : ss_err_set(err, SS_ERR_NOMEM, "out of memory for the "
                                                  "router comparison");
    for (size_t i = 0; e == SS_OK && i < st->nsub; i++) {
        const sub *s = &st->subs[i];
        if (s->kind == SUB_SWITCH)
            e = layer_disagreement(m, s, other, choices, scratch, &out[s->sw], err);
    }
    free(choices);
    free(scratch);
    return e;
}
