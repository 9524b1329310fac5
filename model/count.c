/* This file implements the parameter and FLOP counts of count.h. Each layer kind is described
 * once, as the list of its forward matrix products (model_matmul); parameters, executed FLOPs
 * and Table 9 FLOPs all follow from those lists, so the three counts cannot disagree about a
 * shape. The counting rules, and why they are these, are in count.h.
 *
 * Invariants: all arithmetic on counts goes through the checked helpers below (a `checked`
 * records any 64-bit overflow and model_count then fails); a layer kind the model does not
 * have (layers == 0) stays empty: no products, zero parameters and FLOPs.
 * reference: Switch Transformers (Fedus et al. 2022) Table 9; Kaplan et al. 2020 Table 1.
 */
#include "model/count.h"

#include <string.h>

static const char *const comp_names[MODEL_COMP_COUNT] = {
    "embedding",   "output_layer", "encoder_attention", "decoder_self_attention",
    "cross_attention", "dense_ffn", "experts",           "routers",
    "layer_norms", "relative_position_bias",
};

static const char *const kind_names[MODEL_LAYER_KINDS] = {
    "encoder_dense", "encoder_switch", "decoder_dense", "decoder_switch",
};

/* Product names of an attention block: q, k, v, scores, values, o. */
static const char *const self_names[6] = {"self.q",      "self.k",      "self.v",
                                          "self.scores", "self.values", "self.o"};
static const char *const cross_names[6] = {"cross.q",      "cross.k",      "cross.v",
                                           "cross.scores", "cross.values", "cross.o"};

/* ---- checked arithmetic ------------------------------------------------------------- */

typedef struct {
    int overflow; /* set once any operation overflowed int64 */
} checked;

static int64_t mul(checked *c, int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) {
        c->overflow = 1;
        return 0;
    }
    return r;
}

static int64_t add(checked *c, int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        c->overflow = 1;
        return 0;
    }
    return r;
}

static int64_t mul4(checked *c, int64_t a, int64_t b, int64_t d, int64_t e)
{
    return mul(c, mul(c, a, b), mul(c, d, e));
}

/* ---- dimensions --------------------------------------------------------------------- */

typedef struct {
    int64_t C, F, D, H, A, E, top_k, V, buckets;
    int64_t Le, Ld, Se, Sd; /* layers and Switch layers per stack */
    int64_t Ti, Tt, Thead;  /* tokens: inputs, targets, rows of the output layer */
    int64_t wi_cols;        /* F (ReLU) or 2F (GEGLU) */
    int cross;              /* decoder layers have cross-attention (there is an encoder) */
} dims;

static ss_status check_positive(const char *field, int v, ss_err *err)
{
    if (v >= 1)
        return SS_OK;
    return ss_err_set(err, SS_ERR_CONFIG, "model_count: %s must be at least 1, got %d", field,
                      v);
}

static ss_status check_model(const model_cfg *m, ss_err *err)
{
    const struct {
        const char *name;
        int v;
    } f[] = {{"d_model", m->d_model},
             {"d_ff", m->d_ff},
             {"d_kv", m->d_kv},
             {"num_heads", m->num_heads},
             {"vocab_size", m->vocab_size},
             {"relative_attention_num_buckets", m->relative_attention_num_buckets},
             {"encoder_layers + decoder_layers", m->encoder_layers + m->decoder_layers}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        ss_status st = check_positive(f[i].name, f[i].v, err);
        if (st != SS_OK)
            return st;
    }
    if (m->encoder_layers < 0 || m->decoder_layers < 0)
        return ss_err_set(err, SS_ERR_CONFIG, "model_count: negative layer count (%d, %d)",
                          m->encoder_layers, m->decoder_layers);
    if (m->has_switch) {
        const model_switch_cfg *s = &m->sw;
        if (s->num_experts < 1 || s->every < 1 || s->top_k < 1 || s->top_k > s->num_experts)
            return ss_err_set(err, SS_ERR_CONFIG,
                              "model_count: switch needs 1 <= top_k (%d) <= num_experts (%d) "
                              "and every >= 1 (%d)",
                              s->top_k, s->num_experts, s->every);
    }
    return SS_OK;
}

static ss_status check_len(const char *what, int64_t len, ss_err *err)
{
    if (len >= 1 && len <= MODEL_COUNT_MAX_LEN)
        return SS_OK;
    return ss_err_set(err, SS_ERR_RANGE, "model_count: %s length %lld is outside 1 .. %d",
                      what, (long long)len, MODEL_COUNT_MAX_LEN);
}

static dims make_dims(const model_cfg *m, int64_t Ti, int64_t Tt)
{
    dims d = {0};
    d.C = m->d_model;
    d.F = m->d_ff;
    d.D = m->d_kv;
    d.H = m->num_heads;
    d.A = d.H * d.D; /* both < 2^31: no overflow */
    d.E = m->has_switch ? m->sw.num_experts : 0;
    d.top_k = m->has_switch ? m->sw.top_k : 0;
    d.V = m->vocab_size;
    d.buckets = m->relative_attention_num_buckets;
    d.Le = m->encoder_layers;
    d.Ld = m->decoder_layers;
    d.Se = model_cfg_switch_layers(m, m->encoder_layers);
    d.Sd = model_cfg_switch_layers(m, m->decoder_layers);
    d.Ti = Ti;
    d.Tt = Tt;
    d.Thead = d.Ld > 0 ? Tt : Ti;
    d.wi_cols = m->ffn == MODEL_FFN_GEGLU ? 2 * d.F : d.F;
    d.cross = d.Le > 0;
    return d;
}

/* ---- the products of one layer ------------------------------------------------------ */

/* Appends a product with batch 1 and one weight matrix unless set otherwise by the caller. */
static model_matmul *push(model_layer_counts *l, const char *name, model_comp comp,
                          model_mm_kind kind, int64_t m, int64_t k, int64_t n)
{
    SS_ASSERT(l->nmatmul < MODEL_LAYER_MATMULS_MAX);
    model_matmul *mm = &l->mm[l->nmatmul++];
    *mm = (model_matmul){name, comp, kind, 1, m, k, n, 1, 0, 0};
    return mm;
}

/* q, k, v, QK^T, PV, o of an attention block: tq query rows, tkv key/value rows. */
static void push_attention(model_layer_counts *l, const dims *d, const char *const names[6],
                           model_comp comp, int64_t tq, int64_t tkv)
{
    push(l, names[0], comp, MODEL_MM_WEIGHT, tq, d->C, d->A);
    push(l, names[1], comp, MODEL_MM_WEIGHT, tkv, d->C, d->A);
    push(l, names[2], comp, MODEL_MM_WEIGHT, tkv, d->C, d->A);
    push(l, names[3], comp, MODEL_MM_SCORES, tq, d->D, tkv)->batch = d->H;
    push(l, names[4], comp, MODEL_MM_VALUES, tq, tkv, d->D)->batch = d->H;
    push(l, names[5], comp, MODEL_MM_WEIGHT, tq, d->A, d->C);
}

/* A dense FFN, or a router and its experts (each token's rows go to top_k of E experts). */
static void push_ffn(model_layer_counts *l, const dims *d, int64_t t, int is_switch)
{
    if (!is_switch) {
        push(l, "ffn.wi", MODEL_COMP_DENSE_FFN, MODEL_MM_WEIGHT, t, d->C, d->wi_cols);
        push(l, "ffn.wo", MODEL_COMP_DENSE_FFN, MODEL_MM_WEIGHT, t, d->F, d->C);
        return;
    }
    const int64_t rows = d->top_k * t; /* top_k < 2^31, t <= 10^6: no overflow */
    push(l, "router", MODEL_COMP_ROUTERS, MODEL_MM_WEIGHT, t, d->C, d->E);
    push(l, "expert.wi", MODEL_COMP_EXPERTS, MODEL_MM_WEIGHT, rows, d->C, d->wi_cols)->experts =
        d->E;
    push(l, "expert.wo", MODEL_COMP_EXPERTS, MODEL_MM_WEIGHT, rows, d->F, d->C)->experts = d->E;
}

/* Parameters of a product's weight matrices (0 for attention products). */
static int64_t weight_params(checked *c, const model_matmul *mm)
{
    return mm->kind == MODEL_MM_WEIGHT ? mul(c, mm->experts, mul(c, mm->k, mm->n)) : 0;
}

/* The part of them one token uses: top_k of the E expert matrices, all of any other. */
static int64_t active_params(checked *c, const model_matmul *mm, int64_t top_k)
{
    if (mm->kind != MODEL_MM_WEIGHT)
        return 0;
    return mul(c, mm->comp == MODEL_COMP_EXPERTS ? top_k : 1, mul(c, mm->k, mm->n));
}

/* The Table 9 (Kaplan) share of a product of a layer whose stack carries `tokens` rows: 2 per
 * multiply-add of the active weights per token of the layer's own stack (cross k/v included),
 * no router, and of the attention products only QK^T. */
static int64_t table9_flops(checked *c, const model_matmul *mm, int64_t tokens, int64_t top_k)
{
    if (mm->comp == MODEL_COMP_ROUTERS || mm->kind == MODEL_MM_VALUES)
        return 0;
    if (mm->kind == MODEL_MM_SCORES)
        return mm->flops;
    return mul(c, 2 * tokens, active_params(c, mm, top_k));
}

static void finish_layer(checked *c, model_layer_counts *l, const dims *d)
{
    for (int i = 0; i < l->nmatmul; i++) {
        model_matmul *mm = &l->mm[i];
        mm->flops = mul4(c, 2, mm->batch, mul(c, mm->m, mm->k), mm->n);
        mm->table9_flops = table9_flops(c, mm, l->tokens, d->top_k);
        l->params = add(c, l->params, weight_params(c, mm));
        l->matmul_flops = add(c, l->matmul_flops, mm->flops);
        l->table9_flops = add(c, l->table9_flops, mm->table9_flops);
    }
}

static void build_layer(checked *c, model_layer_counts *l, const dims *d, model_layer_kind kind)
{
    const int decoder = kind == MODEL_LAYER_DEC_DENSE || kind == MODEL_LAYER_DEC_SWITCH;
    const int is_switch = kind == MODEL_LAYER_ENC_SWITCH || kind == MODEL_LAYER_DEC_SWITCH;
    const int64_t stack = decoder ? d->Ld : d->Le, sw = decoder ? d->Sd : d->Se;
    memset(l, 0, sizeof *l);
    l->layers = (int)(is_switch ? sw : stack - sw);
    l->tokens = decoder ? d->Tt : d->Ti;
    if (l->layers == 0)
        return; /* a kind the model does not have: nothing to describe */
    if (!decoder) {
        push_attention(l, d, self_names, MODEL_COMP_ENC_ATTN, d->Ti, d->Ti);
    } else {
        push_attention(l, d, self_names, MODEL_COMP_DEC_SELF_ATTN, d->Tt, d->Tt);
        if (d->cross)
            push_attention(l, d, cross_names, MODEL_COMP_CROSS_ATTN, d->Tt, d->Ti);
    }
    push_ffn(l, d, l->tokens, is_switch);
    l->params_norms = mul(c, d->C, 2 + (decoder && d->cross));
    finish_layer(c, l, d);
}

/* ---- totals ------------------------------------------------------------------------- */

/* Adds layers x (each product's parameters, executed and Table 9 FLOPs) to the components. */
static void add_layer_totals(checked *c, model_counts *o, const model_layer_counts *l,
                             int64_t top_k)
{
    for (int i = 0; i < l->nmatmul; i++) {
        const model_matmul *mm = &l->mm[i];
        const int64_t p = weight_params(c, mm), active = active_params(c, mm, top_k);
        o->params_comp[mm->comp] = add(c, o->params_comp[mm->comp], mul(c, l->layers, p));
        o->active_params = add(c, o->active_params, mul(c, l->layers, active));
        o->matmul_flops_comp[mm->comp] =
            add(c, o->matmul_flops_comp[mm->comp], mul(c, l->layers, mm->flops));
        o->flops_comp[mm->comp] =
            add(c, o->flops_comp[mm->comp], mul(c, l->layers, mm->table9_flops));
    }
    o->params_comp[MODEL_COMP_LAYER_NORMS] =
        add(c, o->params_comp[MODEL_COMP_LAYER_NORMS], mul(c, l->layers, l->params_norms));
}

/* Embedding, output layer, final norms and position biases: the parameters outside layers. */
static void add_model_params(checked *c, model_counts *o, const dims *d, int tied)
{
    const int64_t stacks = (d->Le > 0) + (d->Ld > 0);
    const int64_t vc = mul(c, d->V, d->C);
    o->params_comp[MODEL_COMP_EMBEDDING] = vc;
    o->params_comp[MODEL_COMP_OUTPUT] = tied ? 0 : vc;
    o->active_params = add(c, o->active_params, mul(c, vc, tied ? 1 : 2));
    o->params_comp[MODEL_COMP_LAYER_NORMS] =
        add(c, o->params_comp[MODEL_COMP_LAYER_NORMS], stacks * d->C); /* final norms */
    o->params_comp[MODEL_COMP_REL_POS_BIAS] = mul(c, stacks, mul(c, d->buckets, d->H));
}

static void add_head(checked *c, model_counts *o, const dims *d)
{
    model_matmul *h = &o->head;
    *h = (model_matmul){"output", MODEL_COMP_OUTPUT, MODEL_MM_WEIGHT, 1, d->Thead, d->C, d->V,
                        1, 0, 0};
    h->flops = mul4(c, 2, h->m, h->k, h->n);
    h->table9_flops = h->flops;
    o->matmul_flops_comp[MODEL_COMP_OUTPUT] = h->flops;
    o->flops_comp[MODEL_COMP_OUTPUT] = h->table9_flops;
}

static void sum_totals(checked *c, model_counts *o)
{
    for (int i = 0; i < MODEL_COMP_COUNT; i++) {
        if (model_comp_in_params((model_comp)i))
            o->params = add(c, o->params, o->params_comp[i]);
        else
            o->params_norms_and_biases = add(c, o->params_norms_and_biases, o->params_comp[i]);
        o->flops_per_seq = add(c, o->flops_per_seq, o->flops_comp[i]);
        o->matmul_flops_per_seq = add(c, o->matmul_flops_per_seq, o->matmul_flops_comp[i]);
    }
    o->params_all = add(c, o->params, o->params_norms_and_biases);
    o->train_flops_per_seq = mul(c, 3, o->flops_per_seq);
    o->train_matmul_flops_per_seq = mul(c, 3, o->matmul_flops_per_seq);
}

ss_status model_count(const model_cfg *m, int64_t input_len, int64_t target_len,
                      model_counts *out, ss_err *err)
{
    SS_ASSERT(m && out);
    ss_status st = check_model(m, err);
    if (st == SS_OK)
        st = check_len("input", input_len, err);
    if (st == SS_OK)
        st = check_len("target", target_len, err);
    if (st != SS_OK)
        return st;
    const dims d = make_dims(m, input_len, target_len);
    checked c = {0};
    model_counts o;
    memset(&o, 0, sizeof o);
    o.input_len = input_len;
    o.target_len = target_len;
    for (int k = 0; k < MODEL_LAYER_KINDS; k++) {
        build_layer(&c, &o.layer[k], &d, (model_layer_kind)k);
        add_layer_totals(&c, &o, &o.layer[k], d.top_k);
    }
    add_model_params(&c, &o, &d, m->tied_embeddings);
    add_head(&c, &o, &d);
    sum_totals(&c, &o);
    if (c.overflow)
        return ss_err_set(err, SS_ERR_RANGE,
                          "model_count: model '%s' with %lld input and %lld target tokens has "
                          "counts beyond 64-bit integers",
                          m->name, (long long)input_len, (long long)target_len);
    *out = o;
    return SS_OK;
}

const char *model_comp_name(model_comp c)
{
    SS_ASSERT(c >= 0 && c < MODEL_COMP_COUNT);
    return comp_names[c];
}

int model_comp_in_params(model_comp c)
{
    return c != MODEL_COMP_LAYER_NORMS && c != MODEL_COMP_REL_POS_BIAS;
}

const char *model_layer_kind_name(model_layer_kind k)
{
    SS_ASSERT(k >= 0 && k < MODEL_LAYER_KINDS);
    return kind_names[k];
}
