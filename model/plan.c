/* This file implements the parallel layout of plan.h: the layout constraints, the strategy and
 * the logical-to-physical core mapping, and the memory each core needs.
 *
 * Dimension letters (per core, one microbatch): b sequences (batch / n / microbatches), Ti / To
 * input / target tokens per sequence, Ne = b Ti and Nd = b To rows, C d_model, Hl = H / m heads
 * and Al = Hl D attention columns of this core, Fl = F / m and FIl = Fl (ReLU) or 2 Fl (GEGLU)
 * FFN columns of this core, E experts, El experts on this core (experts_per_core), k top_k, V
 * vocabulary, NB relative-position buckets, G routing groups of a core per microbatch, K
 * expert capacity per group, R = E G K rows of expert buffer per core and Switch layer (E >= n:
 * El = E / n experts receive K rows from each of the n data ways' G groups; E < n: one expert
 * receives K rows from each of the E data ways of its replica set: E G K either way). s = 2
 * bytes (train.precision bf16) or 4 (fp32) per stored activation.
 *
 * Parameters (fp32 master copy, bytes = 4 x floats of this core's tensor list, which follows
 * model/t5.h's layout): q, k, v [C, Al], o [Al, C] (heads split m ways); dense wi [C, FIl], wo
 * [Fl, C]; experts El x wi [C, FIl], El x wo [Fl, C]; replicated on every core: the embedding
 * [V, C] (the vocabulary is not sharded), an untied lm_head [C, V], routers [C, E], RMSNorm
 * scales [C] and relative position biases [NB, H]. Gradients: the same (fp32).
 * Optimizer: AdamW 2 x params; Adafactor per tensor: factored (decided by
 * model_adafactor_is_factored on the FULL tensor, as the single-device optimizer decides, so
 * sharding never changes the decision) El_or_1 x (rows_local + cols_local) floats (the row
 * statistic of a column-sharded matrix is reduced over the model ways and kept whole, the
 * column statistic is sharded), else its local elements; plus params when beta1 > 0. With
 * n == m == 1 this is model_adafactor_state_size of the model's tensor list.
 *
 * Activations kept for backward, bytes, one microbatch (dropout masks 1 byte per element when
 * cfg.dropout > 0; the router's probabilities and every rstd fp32):
 *   each sublayer:       x_in [N, C] s + norm output [N, C] s + rstd [N] 4 + residual mask [N, C]
 *   self/cross attention: q [N, Al] s + k, v 2 [b S, Al] s + probabilities [b, Hl, T, S] s
 *                        + output [N, Al] s + probability mask [b, Hl, T, S]
 *                        (S = T for self-attention, Ti for cross-attention)
 *   dense FFN:           pre [N, FIl] s + hidden [N, Fl] s + hidden mask [N, Fl]
 *   Switch layer:        router probabilities [N, E] 4 + the experts' pre [R, FIl] s + hidden
 *                        [R, Fl] s + mask [R, Fl] (expert_dropout > 0); the expert inputs and
 *                        outputs are dispatch buffers, below
 *   each stack:          tokens (int32: b (Ti + 2 To) for inputs, decoder inputs, targets),
 *                        position bias [Hl, T, T] 4, final norm output [N, C] s + rstd [N] 4 +
 *                        mask [N, C]
 *   output layer:        logits [Nd, V] 4 (the softmax of the cross-entropy)
 * An encoder block is a self-attention and an FFN/Switch sublayer (Ne rows), a decoder block a
 * self-attention, a cross-attention and an FFN/Switch sublayer (Nd rows).
 *   activations       = stacks + output layer + sum over blocks of the block's activations
 *   activations_remat = stacks + output layer + sum over blocks of the block input [N, C] s
 *                       + the largest block's activations (the one being recomputed)
 * Backward scratch (gradient of the residual stream and of the logits, a few [N, C] arrays) is
 * not counted: it is transient and reused across layers.
 * Dispatch buffers, per Switch layer: expert inputs [R, C] s and outputs [R, C] s (the
 * receiving side of the dispatch all-to-all and the sending side of the combine), and the
 * routing decisions in index form as model/switch_layer.h keeps them: expert, row (int32) and
 * gate (fp32) per token and choice, N k 12 bytes (the dense Mesh-TensorFlow dispatch/combine
 * tensors [G, S, E, K] would be far larger); plus, once, the staging buffers of one layer in
 * flight: the send side of the dispatch and the receive side of the combine, 2 [R, C] s.
 * Without remat every Switch layer's buffers are kept for backward; with remat only the
 * largest layer's (recomputed layer by layer).
 *
 * Invariants: core_of is a permutation of 0..cores-1; model_plan_core and model_plan_cell are
 * inverses; memory figures are exact integer byte counts of the formulas above.
 * reference: REFERENCE.md section 4 (data, model, expert parallelism: the paper's Section 5);
 * T5X / Mesh TensorFlow Adafactor (factored second moments).
 */
#include "model/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/switch_layer.h"
#include "model/t5.h"

/* ---- layout constraints ------------------------------------------------------------------ */

ss_status model_plan_check_cores(int n, int m, const sim_pod *pod, ss_err *err)
{
    long used = (long)n * m;
    if (used == pod->cores)
        return SS_OK;
    long diff = used > pod->cores ? used - pod->cores : pod->cores - used;
    return ss_err_set(err, SS_ERR_CONFIG,
                      "plan uses %d*%d = %ld cores but pod '%s' has %d cores (%ld %s)", n, m,
                      used, pod->name, pod->cores, diff,
                      used > pod->cores ? "too many" : "left idle");
}

ss_status model_plan_check_experts(int n, const model_cfg *model, ss_err *err)
{
    if (!model->has_switch)
        return SS_OK;
    int e = model->sw.num_experts;
    if (e >= n && e % n != 0)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "model '%s' has %d experts, which do not spread evenly over %d data "
                          "ways (%d %% %d = %d)",
                          model->name, e, n, e, n, e % n);
    if (e < n && n % e != 0)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "%d data ways cannot hold the %d experts of model '%s' the same "
                          "number of times each (%d %% %d = %d)",
                          n, e, model->name, n, e, n % e);
    return SS_OK;
}

ss_status model_plan_check_model_ways(int m, const model_cfg *model, ss_err *err)
{
    if (model->d_ff % m != 0)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "%d model ways do not divide d_ff = %d of model '%s' (%d %% %d = %d)",
                          m, model->d_ff, model->name, model->d_ff, m, model->d_ff % m);
    if (model->num_heads % m != 0)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "%d model ways do not divide num_heads = %d of model '%s' "
                          "(%d %% %d = %d)",
                          m, model->num_heads, model->name, model->num_heads, m,
                          model->num_heads % m);
    return SS_OK;
}

ss_status model_plan_check_batch(int batch, int n, ss_err *err)
{
    if (batch % n == 0)
        return SS_OK;
    return ss_err_set(err, SS_ERR_CONFIG,
                      "%d sequences per step do not split evenly over %d data ways "
                      "(%d %% %d = %d)",
                      batch, n, batch, n, batch % n);
}

ss_status model_plan_check_microbatches(int batch, int n, int microbatches, ss_err *err)
{
    int per_way = batch / n;
    if (per_way % microbatches == 0)
        return SS_OK;
    return ss_err_set(err, SS_ERR_CONFIG,
                      "the %d sequences of each data way do not split into %d microbatches "
                      "(%d %% %d = %d)",
                      per_way, microbatches, per_way, microbatches, per_way % microbatches);
}

/* One stack's check of model_plan_check_groups. */
static ss_status check_group(long tokens, int group, const char *stack, int seqs, int len,
                             ss_err *err)
{
    if (tokens % group == 0)
        return SS_OK;
    return ss_err_set(err, SS_ERR_CONFIG,
                      "switch.group_size %d does not divide the %ld %s tokens of a core per "
                      "microbatch (%d sequences x %d; %ld %% %d = %ld)",
                      group, tokens, stack, seqs, len, tokens, group, tokens % group);
}

ss_status model_plan_check_groups(int seqs_per_microbatch, int input_length, int target_length,
                                  const model_cfg *model, ss_err *err)
{
    if (!model->has_switch || model->sw.group_size == 0)
        return SS_OK;
    const int g = model->sw.group_size;
    ss_status st = check_group((long)seqs_per_microbatch * input_length, g, "encoder",
                               seqs_per_microbatch, input_length, err);
    if (st != SS_OK)
        return st;
    return check_group((long)seqs_per_microbatch * target_length, g, "decoder",
                       seqs_per_microbatch, target_length, err);
}

int model_plan_experts_per_core(int n, const model_cfg *model)
{
    if (!model->has_switch)
        return 0;
    int e = model->sw.num_experts;
    return e >= n ? e / n : 1;
}

/* Fields a hand-built run could leave out of range (run_cfg_load's schema rejects them). */
static ss_status check_run_ranges(const run_cfg *run, ss_err *err)
{
    const run_plan *pl = &run->plan;
    if (pl->data < 1 || pl->model < 1 || pl->microbatches < 1)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "plan data = %d, model = %d, microbatches = %d: each must be >= 1",
                          pl->data, pl->model, pl->microbatches);
    if (run->batch < 1 || run->input_length < 1 || run->target_length < 1)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "batch = %d, input_length = %d, target_length = %d: each must be >= 1",
                          run->batch, run->input_length, run->target_length);
    if (pl->mapping != MODEL_PLAN_MAP_MODEL_NEIGHBOURS &&
        pl->mapping != MODEL_PLAN_MAP_DATA_NEIGHBOURS)
        return ss_err_set(err, SS_ERR_CONFIG, "plan mapping %d is neither model_neighbours (0) "
                          "nor data_neighbours (1)", pl->mapping);
    return SS_OK;
}

/* Every layout constraint, in the order run_cfg.c checks them. */
static ss_status check_layout(const run_cfg *run, ss_err *err)
{
    const run_plan *pl = &run->plan;
    ss_status st = check_run_ranges(run, err);
    if (st == SS_OK)
        st = model_plan_check_cores(pl->data, pl->model, &run->pod, err);
    if (st == SS_OK)
        st = model_plan_check_experts(pl->data, &run->model, err);
    if (st == SS_OK)
        st = model_plan_check_model_ways(pl->model, &run->model, err);
    if (st == SS_OK)
        st = model_plan_check_batch(run->batch, pl->data, err);
    if (st == SS_OK)
        st = model_plan_check_microbatches(run->batch, pl->data, pl->microbatches, err);
    if (st == SS_OK)
        st = model_plan_check_groups(run->batch / pl->data / pl->microbatches,
                                     run->input_length, run->target_length, &run->model, err);
    return st;
}

/* ---- the plan ---------------------------------------------------------------------------- */

static model_plan_strategy strategy_of(int n, int m, int has_switch)
{
    if (m == 1)
        return has_switch && n > 1 ? MODEL_PLAN_EXPERT_DATA : MODEL_PLAN_DATA;
    if (n == 1)
        return MODEL_PLAN_MODEL;
    return has_switch ? MODEL_PLAN_EXPERT_MODEL_DATA : MODEL_PLAN_MODEL_DATA;
}

static void fill_core_of(model_plan *p)
{
    for (int d = 0; d < p->n; d++)
        for (int k = 0; k < p->m; k++)
            p->core_of[d * p->m + k] =
                p->mapping == MODEL_PLAN_MAP_MODEL_NEIGHBOURS ? d * p->m + k : k * p->n + d;
}

/* Routing groups of one stack: group tokens, groups per core, capacity. */
static void fill_groups(const model_cfg *mc, int tokens, int *group_tokens, int *groups,
                        int *capacity)
{
    if (!mc->has_switch) {
        *group_tokens = *groups = *capacity = 0;
        return;
    }
    const model_switch_cfg *sw = &mc->sw;
    *group_tokens = sw->group_size > 0 ? sw->group_size : tokens;
    *groups = tokens / *group_tokens;
    *capacity = (int)model_switch_capacity(sw->capacity_factor_train, (size_t)*group_tokens,
                                           (size_t)sw->num_experts, sw->min_capacity,
                                           sw->capacity_rounding);
}

static void fill_plan(model_plan *p, const run_cfg *run)
{
    const model_cfg *mc = &run->model;
    const int n = run->plan.data, m = run->plan.model;
    p->n = n;
    p->m = m;
    p->cores = n * m;
    p->strategy = strategy_of(n, m, mc->has_switch);
    p->num_experts = mc->has_switch ? mc->sw.num_experts : 0;
    p->experts_per_core = model_plan_experts_per_core(n, mc);
    p->expert_replicas = mc->has_switch && p->num_experts < n ? n / p->num_experts : 1;
    p->microbatches = run->plan.microbatches;
    p->batch = run->batch;
    p->seqs_per_core = run->batch / n;
    p->seqs_per_microbatch = p->seqs_per_core / p->microbatches;
    p->input_length = run->input_length;
    p->target_length = run->target_length;
    fill_groups(mc, p->seqs_per_microbatch * p->input_length, &p->group_tokens_enc,
                &p->groups_enc, &p->capacity_enc);
    fill_groups(mc, p->seqs_per_microbatch * p->target_length, &p->group_tokens_dec,
                &p->groups_dec, &p->capacity_dec);
    p->ff_per_core = mc->d_ff / m;
    p->heads_per_core = mc->num_heads / m;
    p->mapping = (model_plan_mapping)run->plan.mapping;
    p->remat = run->plan.remat != 0;
}

ss_status model_plan_make(model_plan *p, const run_cfg *run, ss_err *err)
{
    memset(p, 0, sizeof *p);
    ss_status st = check_layout(run, err);
    if (st != SS_OK)
        return st;
    fill_plan(p, run);
    p->core_of = calloc((size_t)p->cores, sizeof *p->core_of);
    if (!p->core_of) {
        memset(p, 0, sizeof *p);
        return ss_err_set(err, SS_ERR_NOMEM, "plan: cannot allocate the map of %d cores",
                          run->pod.cores);
    }
    fill_core_of(p);
    return SS_OK;
}

void model_plan_free(model_plan *p)
{
    free(p->core_of);
    p->core_of = NULL;
}

const char *model_plan_strategy_name(model_plan_strategy s)
{
    static const char *const names[] = {"data", "model", "model+data", "expert+data",
                                        "expert+model+data"};
    SS_ASSERT((unsigned)s < sizeof names / sizeof names[0]);
    return names[s];
}

const char *model_plan_mapping_name(model_plan_mapping m)
{
    static const char *const names[] = {"model_neighbours", "data_neighbours"};
    SS_ASSERT((unsigned)m < sizeof names / sizeof names[0]);
    return names[m];
}

int model_plan_core(const model_plan *p, int d, int k)
{
    SS_ASSERT(d >= 0 && d < p->n && k >= 0 && k < p->m);
    return p->core_of[d * p->m + k];
}

void model_plan_cell(const model_plan *p, int core, int *d, int *k)
{
    SS_ASSERT(core >= 0 && core < p->cores);
    if (p->mapping == MODEL_PLAN_MAP_MODEL_NEIGHBOURS) {
        *d = core / p->m;
        *k = core % p->m;
    } else {
        *d = core % p->n;
        *k = core / p->n;
    }
}

int model_plan_first_expert(const model_plan *p, int d)
{
    SS_ASSERT(d >= 0 && d < p->n);
    if (p->num_experts == 0)
        return -1;
    if (p->num_experts < p->n)
        return d / p->expert_replicas;
    return d * p->experts_per_core;
}

/* ---- memory: parameters and optimizer state --------------------------------------------- */

/* One tensor as this core holds it, and the whole tensor (for Adafactor's factoring rule). */
typedef struct {
    model_tensor local, full;
} shard;

typedef struct {
    shard *t;
    size_t n, cap;
} shard_list;

/* Per-core dimensions of the memory formulas (file comment). */
typedef struct {
    uint64_t C, D, H, Hl, Al, F, Fl, FI, FIl, E, El, V, NB, k;
    uint64_t b, Ti, To;
    uint64_t s;       /* bytes per stored activation */
    int drop;         /* cfg.dropout > 0 */
    int expert_drop;  /* sw.expert_dropout > 0 */
} dims;

static dims dims_of(const model_plan *p, const run_cfg *run)
{
    const model_cfg *c = &run->model;
    dims d = {0};
    d.C = (uint64_t)c->d_model;
    d.D = (uint64_t)c->d_kv;
    d.H = (uint64_t)c->num_heads;
    d.Hl = (uint64_t)p->heads_per_core;
    d.Al = d.Hl * d.D;
    d.F = (uint64_t)c->d_ff;
    d.Fl = (uint64_t)p->ff_per_core;
    d.FI = c->ffn == MODEL_FFN_GEGLU ? 2 * d.F : d.F;
    d.FIl = c->ffn == MODEL_FFN_GEGLU ? 2 * d.Fl : d.Fl;
    d.E = (uint64_t)p->num_experts;
    d.El = (uint64_t)p->experts_per_core;
    d.V = (uint64_t)c->vocab_size;
    d.NB = (uint64_t)c->relative_attention_num_buckets;
    d.k = c->has_switch ? (uint64_t)c->sw.top_k : 0;
    d.b = (uint64_t)p->seqs_per_microbatch;
    d.Ti = (uint64_t)p->input_length;
    d.To = (uint64_t)p->target_length;
    d.s = run->train.precision == RUN_PRECISION_BF16 ? 2 : 4;
    d.drop = c->dropout > 0.0;
    d.expert_drop = c->has_switch && c->sw.expert_dropout > 0.0;
    return d;
}

static void add_shard(shard_list *l, uint64_t count, uint64_t rows, uint64_t cols,
                      uint64_t full_count, uint64_t full_rows, uint64_t full_cols)
{
    SS_ASSERT(l->n < l->cap);
    shard *s = &l->t[l->n++];
    s->local = (model_tensor){.count = count, .rows = rows, .cols = cols};
    s->full = (model_tensor){.count = full_count, .rows = full_rows, .cols = full_cols};
}

/* A tensor every core holds whole. */
static void add_replicated(shard_list *l, uint64_t rows, uint64_t cols)
{
    add_shard(l, 1, rows, cols, 1, rows, cols);
}

static void add_attention(shard_list *l, const dims *d)
{
    for (int i = 0; i < 3; i++) /* q, k, v: columns split */
        add_shard(l, 1, d->C, d->Al, 1, d->C, d->H * d->D);
    add_shard(l, 1, d->Al, d->C, 1, d->H * d->D, d->C); /* o: rows split */
}

static void add_ffn(shard_list *l, const dims *d, int is_switch)
{
    if (is_switch) {
        add_replicated(l, d->C, d->E); /* router */
        add_shard(l, d->El, d->C, d->FIl, d->E, d->C, d->FI);
        add_shard(l, d->El, d->Fl, d->C, d->E, d->F, d->C);
    } else {
        add_shard(l, 1, d->C, d->FIl, 1, d->C, d->FI);
        add_shard(l, 1, d->Fl, d->C, 1, d->F, d->C);
    }
}

/* This core's tensors in model/t5.h's order (offsets are not needed for sizes). */
static ss_status core_tensors(shard_list *l, const run_cfg *run, const dims *d, ss_err *err)
{
    const model_cfg *c = &run->model;
    const size_t Le = (size_t)c->encoder_layers, Ld = (size_t)c->decoder_layers;
    l->cap = 8 + Le * 10 + Ld * 16;
    l->n = 0;
    l->t = calloc(l->cap, sizeof *l->t);
    if (!l->t)
        return ss_err_set(err, SS_ERR_NOMEM, "plan memory: cannot allocate %zu tensors",
                          l->cap);
    add_replicated(l, d->V, d->C); /* shared embedding */
    for (int dec = 0; dec < 2; dec++) {
        const int L = dec ? c->decoder_layers : c->encoder_layers;
        if (L > 0)
            add_replicated(l, d->NB, d->H); /* relative position bias of the stack */
        for (int i = 0; i < L; i++) {
            add_attention(l, d);
            add_replicated(l, 1, d->C);
            if (dec) {
                add_attention(l, d);
                add_replicated(l, 1, d->C);
            }
            add_ffn(l, d, c->has_switch && model_t5_block_is_switch(c, i));
            add_replicated(l, 1, d->C);
        }
        if (L > 0)
            add_replicated(l, 1, d->C); /* final norm */
    }
    if (!c->tied_embeddings)
        add_replicated(l, d->C, d->V);
    return SS_OK;
}

static uint64_t params_floats(const shard_list *l)
{
    uint64_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += model_tensor_size(&l->t[i].local);
    return n;
}

static uint64_t adafactor_floats(const shard_list *l, const model_adafactor_cfg *cfg)
{
    uint64_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        const model_tensor *t = &l->t[i].local;
        const uint64_t count = t->count ? t->count : 1;
        n += model_adafactor_is_factored(&l->t[i].full, cfg) ? count * (t->rows + t->cols)
                                                              : model_tensor_size(t);
    }
    return cfg->beta1 > 0.0 ? n + params_floats(l) : n;
}

static ss_status fill_weights(model_plan_memory *mem, const run_cfg *run, const dims *d,
                              ss_err *err)
{
    shard_list l = {0};
    ss_status st = core_tensors(&l, run, d, err);
    if (st != SS_OK)
        return st;
    const uint64_t P = params_floats(&l);
    mem->params = 4 * P;
    mem->grads = 4 * P;
    mem->optimizer = run->train.optimizer == RUN_OPTIMIZER_ADAMW
                         ? 4 * 2 * P
                         : 4 * adafactor_floats(&l, &run->train.adafactor);
    free(l.t);
    return SS_OK;
}

/* ---- memory: activations and dispatch buffers ------------------------------------------- */

/* What every pre-norm sublayer keeps: x_in, norm output, rstd, residual dropout mask. */
static uint64_t sublayer_bytes(const dims *d, uint64_t N)
{
    return 2 * N * d->C * d->s + 4 * N + (d->drop ? N * d->C : 0);
}

/* Attention of T query tokens over S key tokens per sequence (b sequences). */
static uint64_t attention_bytes(const dims *d, uint64_t T, uint64_t S)
{
    const uint64_t N = d->b * T, NS = d->b * S, P = d->b * d->Hl * T * S;
    return sublayer_bytes(d, N) + (2 * N * d->Al + 2 * NS * d->Al + P) * d->s +
           (d->drop ? P : 0);
}

/* FFN hidden activations of `rows` rows (dense FFN or the experts of a core). */
static uint64_t ffn_hidden_bytes(const dims *d, uint64_t rows, int drop)
{
    return rows * (d->FIl + d->Fl) * d->s + (drop ? rows * d->Fl : 0);
}

/* Expert buffer rows of one Switch layer on a core: E G K. */
static uint64_t expert_rows(const model_plan *p, int dec)
{
    const uint64_t G = (uint64_t)(dec ? p->groups_dec : p->groups_enc);
    const uint64_t K = (uint64_t)(dec ? p->capacity_dec : p->capacity_enc);
    return (uint64_t)p->num_experts * G * K;
}

static uint64_t ffn_sublayer_bytes(const model_plan *p, const dims *d, uint64_t N, int dec,
                                   int is_switch)
{
    if (!is_switch)
        return sublayer_bytes(d, N) + ffn_hidden_bytes(d, N, d->drop);
    return sublayer_bytes(d, N) + 4 * N * d->E +
           ffn_hidden_bytes(d, expert_rows(p, dec), d->expert_drop);
}

/* Dispatch buffers one Switch layer keeps: expert inputs and outputs, routing decisions. */
static uint64_t switch_kept_bytes(const model_plan *p, const dims *d, int dec)
{
    const uint64_t N = d->b * (dec ? d->To : d->Ti);
    return 2 * expert_rows(p, dec) * d->C * d->s + 12 * N * d->k;
}

/* One block's activations (without its dispatch buffers). */
static uint64_t block_bytes(const model_plan *p, const run_cfg *run, const dims *d, int dec,
                            int i)
{
    const int sw = run->model.has_switch && model_t5_block_is_switch(&run->model, i);
    if (!dec)
        return attention_bytes(d, d->Ti, d->Ti) + ffn_sublayer_bytes(p, d, d->b * d->Ti, 0, sw);
    return attention_bytes(d, d->To, d->To) + attention_bytes(d, d->To, d->Ti) +
           ffn_sublayer_bytes(p, d, d->b * d->To, 1, sw);
}

/* Tokens, position biases, final norms, logits. */
static uint64_t stack_bytes(const run_cfg *run, const dims *d)
{
    const model_cfg *c = &run->model;
    uint64_t bytes = 4 * d->b * (d->Ti + 2 * d->To) + 4 * d->b * d->To * d->V;
    for (int dec = 0; dec < 2; dec++) {
        const uint64_t T = dec ? d->To : d->Ti, N = d->b * T;
        if ((dec ? c->decoder_layers : c->encoder_layers) > 0)
            bytes += 4 * d->Hl * T * T + N * d->C * d->s + 4 * N + (d->drop ? N * d->C : 0);
    }
    return bytes;
}

typedef struct {
    uint64_t full, remat, dispatch_all, dispatch_one;
} act_sums;

static act_sums activation_sums(const model_plan *p, const run_cfg *run, const dims *d)
{
    const model_cfg *c = &run->model;
    act_sums a = {0};
    uint64_t inputs = 0, largest = 0, staging = 0;
    for (int dec = 0; dec < 2; dec++) {
        const int L = dec ? c->decoder_layers : c->encoder_layers;
        const uint64_t N = d->b * (dec ? d->To : d->Ti);
        for (int i = 0; i < L; i++) {
            const uint64_t blk = block_bytes(p, run, d, dec, i);
            a.full += blk;
            inputs += N * d->C * d->s;
            largest = blk > largest ? blk : largest;
            if (!(c->has_switch && model_t5_block_is_switch(c, i)))
                continue;
            const uint64_t kept = switch_kept_bytes(p, d, dec);
            const uint64_t stage = 2 * expert_rows(p, dec) * d->C * d->s;
            a.dispatch_all += kept;
            a.dispatch_one = kept > a.dispatch_one ? kept : a.dispatch_one;
            staging = stage > staging ? stage : staging;
        }
    }
    const uint64_t stacks = stack_bytes(run, d);
    a.full += stacks;
    a.remat = stacks + inputs + largest;
    a.dispatch_all += staging;
    a.dispatch_one += staging;
    return a;
}

/* "41.2 GiB", "16 GiB": one decimal, dropped when it is 0. */
static void gib(char *buf, size_t n, uint64_t bytes)
{
    double g = (double)bytes / (double)(1ull << 30);
    snprintf(buf, n, "%.1f", g);
    size_t len = strlen(buf);
    if (len > 2 && strcmp(buf + len - 2, ".0") == 0)
        buf[len - 2] = '\0';
    strncat(buf, " GiB", n - strlen(buf) - 1);
}

static ss_status hbm_error(const model_plan_memory *mem, const model_plan *p,
                           const run_cfg *run, ss_err *err)
{
    char need[32], have[32], chip[32], over[32], pa[32], gr[32], op[32], ac[32], di[32];
    gib(need, sizeof need, mem->total);
    gib(have, sizeof have, mem->hbm);
    gib(chip, sizeof chip, run->pod.chip.hbm_bytes);
    gib(over, sizeof over, mem->total - mem->hbm);
    gib(pa, sizeof pa, mem->params);
    gib(gr, sizeof gr, mem->grads);
    gib(op, sizeof op, mem->optimizer);
    gib(ac, sizeof ac, mem->remat ? mem->activations_remat : mem->activations);
    gib(di, sizeof di, mem->dispatch);
    return ss_err_set(err, SS_ERR_CONFIG,
                      "model '%s' does not fit in HBM with %d data x %d model ways (%s): needs "
                      "%s per core, the chip has %s per core (%s HBM / %d cores): %s over "
                      "(params %s, grads %s, optimizer %s, activations%s %s, dispatch %s)",
                      run->model.name, p->n, p->m, model_plan_strategy_name(p->strategy), need,
                      have, chip, run->pod.chip.cores_per_chip, over, pa, gr, op,
                      mem->remat ? " (remat)" : "", ac, di);
}

ss_status model_plan_memory_of(model_plan_memory *mem, const model_plan *p, const run_cfg *run,
                               int remat, ss_err *err)
{
    memset(mem, 0, sizeof *mem);
    const dims d = dims_of(p, run);
    ss_status st = fill_weights(mem, run, &d, err);
    if (st != SS_OK)
        return st;
    const act_sums a = activation_sums(p, run, &d);
    mem->activations = a.full;
    mem->activations_remat = a.remat;
    mem->remat = remat != 0;
    mem->dispatch = remat ? a.dispatch_one : a.dispatch_all;
    mem->total = mem->params + mem->grads + mem->optimizer +
                 (remat ? mem->activations_remat : mem->activations) + mem->dispatch;
    mem->hbm = run->pod.chip.hbm_bytes / (uint64_t)run->pod.chip.cores_per_chip;
    return mem->total > mem->hbm ? hbm_error(mem, p, run, err) : SS_OK;
}
