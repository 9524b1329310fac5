/* This file implements the functional distributed trainer of dtrain.h: P model replicas, one
 * thread per simulated core, a Switch-layer hook (model_t5_experts_hook) that sends each
 * core's packed expert rows to the experts' owners and back through all-to-allv schedules of
 * the collectives module, the all-reduce of the dense gradients, global-norm clipping and the
 * per-core optimizer update.
 *
 * Row orders. A core's packed rows (model_switch_acts: expert_row) are grouped by expert, and
 * the core that runs source s's rows of expert e (expert_owner: e / Eo, or e R + s mod R with
 * replicas) never decreases with e, so the rows for owner o are one contiguous block: that
 * block is the core's all-to-allv send block for o, and the blocks it gets back land in the
 * same places. An owner receives, from every source s in rank order, s's rows for each of its
 * experts in expert order ("source-major"); it runs expert j on the rows of all the sources it
 * serves in source order ("expert-major", the single-device order restricted to those
 * sources, since core s's routing groups come before core s+1's), so permute() converts
 * between the two orders with the per-(source, expert) counts that every source publishes in
 * its dispatch (src_rows: 0 for a source another replica serves).
 *
 * Invariants: the counts of a layer (rows, cnt) are written once per step, by their source
 * core, before the dispatch's first barrier, and only read after it; an owner's expert-major
 * buffers of a layer hold the forward's rows until that layer's backward; with replicas an
 * expert's gradient is all-reduced among its R cores before the norm reads it.
 * reference: dtrain.h.
 */
#include "model/dtrain.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "common/bf16.h"
#include "model/layers.h"
#include "model/optim.h"
#include "model/train.h"

#define STREAM_SALT UINT64_C(0x64747261696e3272) /* "dtrain2r": the cores' dropout streams */

/* One Switch layer's expert side on a core: the rows of its own experts, from every core. */
typedef struct {
    size_t cap;         /* rows the buffers hold */
    size_t rows;        /* rows received in the last dispatch */
    float *xe, *ye;     /* [cap, C] expert-major inputs and outputs */
    float *pre, *hid;   /* [cap, FI], [cap, F] */
    float *mask;        /* [cap, F] expert dropout scales, or NULL */
    float *dye, *dxe;   /* [cap, C] */
} xside;

typedef struct {
    model_dtrain *d;
    int core;
    model_t5 m;
    rng_state rng;           /* this step's dropout / jitter stream (seed_core_stream) */
    model_t5_metrics mt;
    xside *xs;               /* [nswitch] */
    float *recv, *send;      /* [cap_max, C] staging of this core's exchanges */
    size_t *span;            /* [3 Eo] scratch of permute and expert_spans */
    model_t5_experts_hook hook; /* ctx = this core */
    float *opt_dense;        /* optimizer state of the dense tensors (dense_t) */
    float *opt_expert;       /* optimizer state of this core's expert slices */
    ss_status st;            /* the step's outcome on this core, and its message */
    ss_err err;
    /* the step's shard */
    const int32_t *inputs, *dec_inputs, *targets;
    float dloss;             /* loss weight n_c / n */
} dcore;

struct model_dtrain {
    model_dtrain_cfg cfg;
    model_cfg model;
    run_train_cfg train;
    int P, nswitch, E, k;
    int Eo;                        /* experts per core: E / P, or 1 with replicas */
    int R;                         /* replicas of each expert: P / E when E < P, else 1 */
    size_t C, F, FI;
    model_t5_shape core_shape;
    dcore *core;                   /* [P] */
    /* tensors: dense (replicated) and each core's expert slices (same offsets on all) */
    model_tensor *dense_t, *expert_t;  /* expert_t: [P * nexpert_t] */
    size_t ndense, nexpert_t, dense_floats;
    size_t expert_floats;          /* floats of one core's expert slices */
    size_t opt_dense_n, opt_expert_n; /* floats of a core's dense / expert optimizer state */
    model_adafactor_cfg af_expert;
    float **ar_buf;                /* [P][max(dense, expert floats)] all-reduce staging */
    coll_schedule allreduce;
    coll_schedule *xreduce;        /* [E] with replicas: expert e's gradient all-reduce among
                                      its R cores (NULL without replicas) */
    /* exchanges */
    pthread_barrier_t bar;
    int have_barrier;
    uint64_t *rows;                /* [nswitch][P * P] rows s -> o in the dispatch */
    int32_t *cnt;                  /* [nswitch][P * E] rows of source s for expert e */
    const void **xsend;            /* [P] */
    void **xrecv;                  /* [P] */
    bf16 **b16_send, **b16_recv;   /* [P][cap_max * C] */
    size_t cap_max;
    ss_status xst;                 /* the last collective's status */
    ss_err xerr;
    /* metrics */
    int32_t *tpe, *choice;
    double *dropped, *entropy;
    size_t *choice_offset;
    uint64_t *received, *sent;     /* [nswitch * P], [nswitch * P * P] */
};

/* ---- layout checks ----------------------------------------------------------------------- */

static ss_status check_layout(const model_dtrain_cfg *c, ss_err *err)
{
    const model_cfg *m = c->model;
    if (c->cores < 1)
        return ss_err_set(err, SS_ERR_CONFIG, "distributed training: %d cores (need >= 1)",
                          c->cores);
    if (c->shape.B % c->cores != 0)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "distributed training: batch %d is not divisible by %d cores "
                          "(%d sequences left over)",
                          c->shape.B, c->cores, c->shape.B % c->cores);
    const int E = m->sw.num_experts;
    if (m->has_switch && E % c->cores != 0 && (E > c->cores || c->cores % E != 0))
        return ss_err_set(err, SS_ERR_CONFIG,
                          "distributed training: %d experts do not fit %d cores: the experts "
                          "must be a multiple of the cores (each core owns E / P) or divide "
                          "them (each expert is replicated on P / E cores)",
                          E, c->cores);
    return SS_OK;
}

/* ---- expert placement -------------------------------------------------------------------- */

/* Global index of core c's local expert j: c Eo + j, or c / R with replicas (the R cores
 * e R .. e R + R - 1 hold expert e, as model_plan_first_expert places them). */
static int core_expert(const model_dtrain *d, int c, int j)
{
    return d->R > 1 ? c / d->R : c * d->Eo + j;
}

/* The core that runs source s's rows for expert e: its owner, or with replicas the one in
 * s's replica group (s mod R), so every replica serves P / R sources. */
static int expert_owner(const model_dtrain *d, int e, int s)
{
    return d->R > 1 ? e * d->R + s % d->R : e / d->Eo;
}

/* Is core c the first replica of its experts (the one whose copy counts and is gathered)? */
static int first_replica(const model_dtrain *d, int c)
{
    return c % d->R == 0;
}

/* Rows of source s for owner o's local expert j in a dispatch with counts cnt [P * E]. */
static size_t src_rows(const model_dtrain *d, const int32_t *cnt, int s, int o, int j)
{
    const int e = core_expert(d, o, j);
    return expert_owner(d, e, s) == o ? (size_t)cnt[(size_t)s * (size_t)d->E + (size_t)e] : 0;
}

/* ---- tensors and optimizer --------------------------------------------------------------- */

static int is_expert_tensor(const model_dtrain *d, const model_tensor *t)
{
    return d->model.has_switch && strstr(t->name, ".mlp.experts.") != NULL &&
           t->count == (size_t)d->E;
}

static ss_status split_tensors(model_dtrain *d, ss_err *err)
{
    const model_t5 *m = &d->core[0].m;
    size_t ne = 0;
    for (size_t i = 0; i < m->ntensors; i++)
        ne += is_expert_tensor(d, &m->tensors[i]);
    d->ndense = m->ntensors - ne;
    d->nexpert_t = ne;
    d->dense_t = calloc(d->ndense + 1, sizeof *d->dense_t);
    d->expert_t = calloc((size_t)d->P * ne + 1, sizeof *d->expert_t);
    if (!d->dense_t || !d->expert_t)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the tensor lists");
    size_t nd = 0, j = 0;
    for (size_t i = 0; i < m->ntensors; i++) {
        const model_tensor *t = &m->tensors[i];
        if (!is_expert_tensor(d, t)) {
            d->dense_t[nd++] = *t;
            d->dense_floats += model_tensor_size(t);
            continue;
        }
        const size_t per = t->rows * t->cols;
        d->expert_floats += (size_t)d->Eo * per;
        for (int c = 0; c < d->P; c++) {
            model_tensor s = *t;
            s.count = (size_t)d->Eo;
            s.offset = t->offset + (size_t)core_expert(d, c, 0) * per;
            d->expert_t[(size_t)c * ne + j] = s;
        }
        j++;
    }
    /* Adafactor factors a stack's matrices by the stack rule (factor_stacks, count > 1); a
     * slice of one expert must keep that decision: rows, cols >= 2 is the same rule. */
    d->af_expert = d->train.adafactor;
    if (d->af_expert.factor_stacks && d->E > 1)
        d->af_expert.min_dim_size_to_factor = 1;
    return SS_OK;
}

static size_t opt_size(const model_dtrain *d, const model_tensor *t, size_t n,
                       const model_adafactor_cfg *af)
{
    return d->train.optimizer == RUN_OPTIMIZER_ADAFACTOR ? model_adafactor_state_size(t, n, af)
                                                         : model_adamw_state_size(t, n);
}

static void opt_update(const model_dtrain *d, float *params, float *grads, float *state,
                       const model_tensor *t, size_t n, const model_adafactor_cfg *af,
                       uint64_t step, float lr)
{
    if (d->train.optimizer == RUN_OPTIMIZER_ADAFACTOR)
        model_adafactor_update(params, grads, state, t, n, step, lr, af);
    else
        model_adamw_update(params, grads, state, t, n, step, lr, &d->train.adamw);
}

static const model_tensor *core_experts(const model_dtrain *d, int c)
{
    return d->expert_t + (size_t)c * d->nexpert_t;
}

/* ---- init -------------------------------------------------------------------------------- */

/* Rows an owner can receive in one dispatch of a Switch layer: at most K per routing group
 * and expert, over every group of every core (never more than the layer's choices). */
static size_t xside_cap(const model_dtrain *d, const model_switch_plan *plan)
{
    const size_t bound = plan->G * plan->K * (size_t)d->Eo * (size_t)d->P;
    const size_t all = plan->N * plan->k * (size_t)d->P;
    return bound < all ? bound : all;
}

static ss_status alloc_xside(model_dtrain *d, xside *x, size_t cap, int dropout, ss_err *err)
{
    x->cap = cap;
    x->xe = calloc(cap * d->C + 1, sizeof(float));
    x->ye = calloc(cap * d->C + 1, sizeof(float));
    x->dye = calloc(cap * d->C + 1, sizeof(float));
    x->dxe = calloc(cap * d->C + 1, sizeof(float));
    x->pre = calloc(cap * d->FI + 1, sizeof(float));
    x->hid = calloc(cap * d->F + 1, sizeof(float));
    x->mask = dropout ? calloc(cap * d->F + 1, sizeof(float)) : NULL;
    if (!x->xe || !x->ye || !x->dye || !x->dxe || !x->pre || !x->hid || (dropout && !x->mask))
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for %zu expert rows", cap);
    return SS_OK;
}

static void free_xside(xside *x)
{
    free(x->xe);
    free(x->ye);
    free(x->dye);
    free(x->dxe);
    free(x->pre);
    free(x->hid);
    free(x->mask);
}

/* Switch layers of the encoder stack (the first ones in model order). */
static int encoder_switch_layers(const model_cfg *m)
{
    int n = 0;
    for (int b = 0; b < m->encoder_layers; b++)
        n += model_t5_block_is_switch(m, b);
    return n;
}

/* Rows each Switch layer's owner buffers need: the larger of the training and evaluation
 * plans of the core's token counts. */
static ss_status layer_caps(model_dtrain *d, size_t *cap, ss_err *err)
{
    const model_switch_spec spec = model_switch_spec_from_cfg(&d->model);
    const size_t Ne = (size_t)d->core_shape.B * (size_t)d->core_shape.T_in;
    const size_t Nd = (size_t)d->core_shape.B * (size_t)d->core_shape.T_out;
    const int nenc = encoder_switch_layers(&d->model);
    for (int i = 0; i < d->nswitch; i++) {
        cap[i] = 0;
        for (int tr = 0; tr < 2; tr++) {
            model_switch_plan plan;
            ss_status st = model_switch_plan_make(&plan, &spec, i < nenc ? Ne : Nd, tr, err);
            if (st != SS_OK)
                return st;
            const size_t c = xside_cap(d, &plan);
            if (c > cap[i])
                cap[i] = c;
        }
    }
    return SS_OK;
}

/* ---- row orders -------------------------------------------------------------------------- */

/* Owner o's expert-major spans: tot[j] rows of local expert j in all, starting at base[j]. */
static void expert_spans(const model_dtrain *d, const int32_t *cnt, int o, size_t *base,
                         size_t *tot)
{
    size_t pos = 0;
    for (int j = 0; j < d->Eo; j++) {
        tot[j] = 0;
        for (int s = 0; s < d->P; s++)
            tot[j] += src_rows(d, cnt, s, o, j);
        base[j] = pos;
        pos += tot[j];
    }
}

/* Converts owner o's rows between the source-major order (what the all-to-allv delivers and
 * takes) and the expert-major order (what the experts run on): to_expert 1 reads src in
 * source-major order and writes dst in expert-major order, 0 the reverse. span holds 3 Eo
 * entries of scratch. */
static void permute(float *dst, const float *src, const model_dtrain *d, const int32_t *cnt,
                    int o, int to_expert, size_t *span)
{
    const size_t C = d->C;
    size_t *base = span, *tot = span + d->Eo, *run = span + 2 * d->Eo;
    expert_spans(d, cnt, o, base, tot);
    memcpy(run, base, (size_t)d->Eo * sizeof *run);
    size_t smaj = 0;
    for (int s = 0; s < d->P; s++)
        for (int j = 0; j < d->Eo; j++) {
            const size_t n = src_rows(d, cnt, s, o, j);
            float *to = to_expert ? dst + run[j] * C : dst + smaj * C;
            const float *from = to_expert ? src + smaj * C : src + run[j] * C;
            if (n)
                memcpy(to, from, n * C * sizeof(float));
            run[j] += n;
            smaj += n;
        }
}

/* ---- exchanges --------------------------------------------------------------------------- */

static uint64_t *layer_rows(const model_dtrain *d, int layer)
{
    return d->rows + (size_t)layer * (size_t)d->P * (size_t)d->P * 2;
}

/* The transposed counts (owner o -> source s), stored after the layer's rows. */
static uint64_t *layer_back(const model_dtrain *d, int layer)
{
    return layer_rows(d, layer) + (size_t)d->P * (size_t)d->P;
}

static int32_t *layer_cnt(const model_dtrain *d, int layer)
{
    return d->cnt + (size_t)layer * (size_t)d->P * (size_t)d->E;
}

static ss_status build_a2a(const model_dtrain *d, coll_schedule *s, const uint64_t *matrix,
                           uint32_t elem_bytes, ss_err *err)
{
    const coll_desc desc = {.kind = SIM_COLL_ALLTOALLV, .p = d->P, .matrix = matrix,
                            .elem_bytes = elem_bytes, .topo = d->cfg.topo,
                            .cores = d->cfg.core_of};
    return d->cfg.topo ? coll_schedule_build_auto(s, &desc, &d->cfg.cost, err)
                       : coll_schedule_build(s, &desc, COLL_ALGO_DIRECT, err);
}

/* The all-to-allv of rows[P * P] (rows of width C from rank s to rank o at s * P + o) from
 * d->xsend to d->xrecv, as bf16 (use_bf16: the rows hold bf16 values) or fp32. received
 * (may be NULL) gets each rank's rows as the schedule delivered them. */
static ss_status exchange_run(model_dtrain *d, const uint64_t *rows, int use_bf16,
                              uint64_t *received, ss_err *err)
{
    const int P = d->P;
    const size_t PP = (size_t)P * (size_t)P;
    uint64_t *matrix = malloc(PP * sizeof *matrix);
    if (!matrix)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for an all-to-allv matrix");
    for (size_t i = 0; i < PP; i++)
        matrix[i] = rows[i] * d->C;
    coll_schedule s;
    ss_status st = build_a2a(d, &s, matrix, use_bf16 ? 2 : 4, err);
    free(matrix);
    if (st != SS_OK)
        return st;
    const bf16_denormals pol = d->cfg.nx.gemm.denormals;
    if (use_bf16) {
        for (int c = 0; c < P; c++)
            bf16_from_f32_array(d->b16_send[c], d->xsend[c], s.in_count[c], pol);
        st = coll_run(&s, COLL_BF16, pol, (const void *const *)d->b16_send,
                      (void *const *)d->b16_recv, err);
        for (int c = 0; st == SS_OK && c < P; c++)
            bf16_to_f32_array(d->xrecv[c], d->b16_recv[c], s.out_count[c]);
    } else {
        st = coll_run(&s, COLL_FP32, pol, d->xsend, d->xrecv, err);
    }
    for (int c = 0; st == SS_OK && received && c < P; c++)
        received[c] = s.out_count[c] / d->C;
    coll_schedule_free(&s);
    return st;
}

/* Every core calls this with its xsend/xrecv slots set: one thread runs the exchange while
 * the others wait; all return its status. */
static ss_status exchange(model_dtrain *d, const uint64_t *rows, int use_bf16,
                          uint64_t *received, ss_err *err)
{
    if (pthread_barrier_wait(&d->bar) == PTHREAD_BARRIER_SERIAL_THREAD)
        d->xst = exchange_run(d, rows, use_bf16, received, &d->xerr);
    pthread_barrier_wait(&d->bar);
    if (d->xst != SS_OK)
        return ss_err_set(err, d->xst, "all-to-allv: %s", d->xerr.msg);
    return SS_OK;
}

/* ---- the experts hook -------------------------------------------------------------------- */

/* Local expert j's (global core_expert(o, j)) FFN activations in the owner's buffers from
 * row r0. */
static model_ffn_acts xacts(const model_dtrain *d, const xside *x, size_t r0)
{
    model_ffn_acts fa = {x->pre + r0 * d->FI, x->hid + r0 * d->F,
                         x->mask ? x->mask + r0 * d->F : NULL};
    return fa;
}

static ss_status experts_forward_local(dcore *cc, xside *x, const int32_t *cnt,
                                       const model_switch_weights *w,
                                       const model_switch_plan *plan, rng_state *r,
                                       const model_numerics *nx, ss_err *err)
{
    const model_dtrain *d = cc->d;
    size_t *base = cc->span, *tot = cc->span + d->Eo;
    expert_spans(d, cnt, cc->core, base, tot);
    for (int j = 0; j < d->Eo; j++) {
        if (tot[j] == 0)
            continue;
        const size_t e = (size_t)core_expert(d, cc->core, j);
        model_ffn_acts fa = xacts(d, x, base[j]);
        ss_status st = model_ffn_forward(x->ye + base[j] * d->C, &fa, x->xe + base[j] * d->C,
                                         w->wi + e * d->C * d->FI, w->wo + e * d->F * d->C,
                                         tot[j], d->C, d->F, d->model.ffn, plan->dropout, r,
                                         nx, err);
        if (st != SS_OK) {
            ss_err_prefix(err, "core %d expert %zu", cc->core, e);
            return st;
        }
    }
    return SS_OK;
}

static ss_status experts_backward_local(dcore *cc, xside *x, const int32_t *cnt,
                                        const model_switch_weights *w,
                                        const model_switch_weights *dw,
                                        const model_numerics *nx, ss_err *err)
{
    const model_dtrain *d = cc->d;
    size_t *base = cc->span, *tot = cc->span + d->Eo;
    expert_spans(d, cnt, cc->core, base, tot);
    memset(x->dxe, 0, x->rows * d->C * sizeof(float));
    for (int j = 0; j < d->Eo; j++) {
        if (tot[j] == 0)
            continue;
        const size_t e = (size_t)core_expert(d, cc->core, j), r0 = base[j];
        model_ffn_acts fa = xacts(d, x, r0);
        ss_status st = model_ffn_backward(
            x->dxe + r0 * d->C, dw->wi + e * d->C * d->FI, dw->wo + e * d->F * d->C,
            x->dye + r0 * d->C, &fa, x->xe + r0 * d->C, w->wi + e * d->C * d->FI,
            w->wo + e * d->F * d->C, tot[j], d->C, d->F, d->model.ffn, nx, err);
        if (st != SS_OK) {
            ss_err_prefix(err, "core %d expert %zu backward", cc->core, e);
            return st;
        }
    }
    return SS_OK;
}

/* Publishes core c's counts of a dispatch: per expert and per owner. */
static void publish_counts(model_dtrain *d, int layer, int c, const int32_t *expert_row)
{
    int32_t *cnt = layer_cnt(d, layer) + (size_t)c * (size_t)d->E;
    uint64_t *rows = layer_rows(d, layer) + (size_t)c * (size_t)d->P;
    for (int o = 0; o < d->P; o++)
        rows[o] = 0;
    for (int e = 0; e < d->E; e++) {
        cnt[e] = expert_row[e + 1] - expert_row[e];
        rows[expert_owner(d, e, c)] += (uint64_t)cnt[e];
    }
}

/* Owner c's row of the transposed counts (after the dispatch: every source has published). */
static void publish_back(model_dtrain *d, int layer, int c)
{
    const uint64_t *rows = layer_rows(d, layer);
    uint64_t *back = layer_back(d, layer) + (size_t)c * (size_t)d->P;
    for (int s = 0; s < d->P; s++)
        back[s] = rows[(size_t)s * (size_t)d->P + (size_t)c];
}

/* Sends src (the source's packed rows) to the owners, into c's expert-major buffer dst; the
 * first error wins but every core still takes part. */
static ss_status dispatch(dcore *cc, int layer, const float *src, float *dst, int use_bf16,
                          uint64_t *received, xside *x, ss_err *err)
{
    model_dtrain *d = cc->d;
    const int c = cc->core;
    d->xsend[c] = src;
    d->xrecv[c] = cc->recv;
    ss_status st = exchange(d, layer_rows(d, layer), use_bf16, received, err);
    if (st == SS_OK) {
        uint64_t n = 0;
        for (int s = 0; s < d->P; s++)
            n += layer_rows(d, layer)[(size_t)s * (size_t)d->P + (size_t)c];
        SS_ASSERT(n <= x->cap);
        x->rows = (size_t)n;
        permute(dst, cc->recv, d, layer_cnt(d, layer), c, 1, cc->span);
    }
    return st;
}

/* Sends c's expert-major rows src back to their sources, into each source's packed dst. */
static ss_status combine_back(dcore *cc, int layer, const float *src, float *dst, int use_bf16,
                              ss_status st, ss_err *err)
{
    model_dtrain *d = cc->d;
    const int c = cc->core;
    if (st == SS_OK)
        permute(cc->send, src, d, layer_cnt(d, layer), c, 0, cc->span);
    d->xsend[c] = cc->send;
    d->xrecv[c] = dst;
    ss_err e2 = {0};
    ss_status st2 = exchange(d, layer_back(d, layer), use_bf16, NULL, st == SS_OK ? err : &e2);
    return st != SS_OK ? st : st2;
}

static ss_status hook_forward(void *ctx, int layer, model_switch_acts *acts,
                              const model_switch_plan *plan, const model_switch_weights *w,
                              rng_state *r, const model_numerics *nx, ss_err *err)
{
    dcore *cc = ctx;
    model_dtrain *d = cc->d;
    xside *x = &cc->xs[layer];
    publish_counts(d, layer, cc->core, acts->expert_row);
    uint64_t *received = d->received + (size_t)layer * (size_t)d->P;
    ss_status st = dispatch(cc, layer, acts->xe, x->xe, nx->store_bf16, received, x, err);
    publish_back(d, layer, cc->core);
    if (st == SS_OK)
        st = experts_forward_local(cc, x, layer_cnt(d, layer), w, plan, r, nx, err);
    return combine_back(cc, layer, x->ye, acts->ye, nx->store_bf16, st, err);
}

static ss_status hook_backward(void *ctx, int layer, model_switch_acts *acts,
                               const model_switch_plan *plan, const model_switch_weights *w,
                               const model_switch_weights *dw, const model_numerics *nx,
                               ss_err *err)
{
    (void)plan;
    dcore *cc = ctx;
    xside *x = &cc->xs[layer];
    ss_status st = dispatch(cc, layer, acts->dye, x->dye, 0, NULL, x, err);
    if (st == SS_OK)
        st = experts_backward_local(cc, x, layer_cnt(cc->d, layer), w, dw, nx, err);
    return combine_back(cc, layer, x->dxe, acts->dxe, 0, st, err);
}

/* ---- init and free ----------------------------------------------------------------------- */

static void *zalloc(size_t n, size_t size)
{
    size_t bytes;
    return ss_mul_size(n, size, &bytes) == 0 ? calloc(bytes ? bytes : 1, 1) : NULL;
}

static ss_status nomem(ss_err *err, const char *what)
{
    return ss_err_set(err, SS_ERR_NOMEM, "distributed training: out of memory for %s", what);
}

static ss_status init_core(model_dtrain *d, int c, const size_t *cap, ss_err *err)
{
    dcore *cc = &d->core[c];
    cc->d = d;
    cc->core = c;
    ss_status st = SS_OK;
    if (!cc->m.st) /* core 0's model already exists: split_tensors read its layout */
        st = model_t5_init(&cc->m, &d->model, d->core_shape, &d->cfg.nx, err);
    if (st != SS_OK) {
        ss_err_prefix(err, "core %d", c);
        return st;
    }
    model_t5_init_params(&cc->m, d->cfg.seed);
    cc->hook = (model_t5_experts_hook){hook_forward, hook_backward, cc};
    if (d->P > 1 && d->model.has_switch)
        cc->m.experts_hook = &cc->hook;
    cc->xs = zalloc((size_t)d->nswitch + 1, sizeof *cc->xs);
    cc->span = zalloc(3 * (size_t)d->Eo + 1, sizeof *cc->span);
    cc->recv = zalloc(d->cap_max * d->C + 1, sizeof(float));
    cc->send = zalloc(d->cap_max * d->C + 1, sizeof(float));
    d->opt_dense_n = opt_size(d, d->dense_t, d->ndense, &d->train.adafactor);
    d->opt_expert_n = opt_size(d, core_experts(d, c), d->nexpert_t, &d->af_expert);
    cc->opt_dense = zalloc(d->opt_dense_n + 1, sizeof(float));
    cc->opt_expert = zalloc(d->opt_expert_n + 1, sizeof(float));
    if (!cc->xs || !cc->span || !cc->recv || !cc->send || !cc->opt_dense || !cc->opt_expert)
        return nomem(err, "a core's buffers");
    const int dropout = d->model.has_switch && d->model.sw.expert_dropout > 0.0;
    for (int i = 0; i < d->nswitch; i++)
        if ((st = alloc_xside(d, &cc->xs[i], cap[i], dropout, err)) != SS_OK)
            return st;
    return SS_OK;
}

static ss_status init_shared(model_dtrain *d, ss_err *err)
{
    const size_t P = (size_t)d->P, ns = (size_t)d->nswitch, E = (size_t)d->E;
    const size_t k = (size_t)d->k;
    const size_t Ne = (size_t)d->core_shape.B * (size_t)d->core_shape.T_in;
    const size_t Nd = (size_t)d->core_shape.B * (size_t)d->core_shape.T_out;
    d->rows = zalloc(ns * P * P * 2 + 1, sizeof *d->rows);
    d->cnt = zalloc(ns * P * E + 1, sizeof *d->cnt);
    d->xsend = zalloc(P, sizeof *d->xsend);
    d->xrecv = zalloc(P, sizeof *d->xrecv);
    d->b16_send = zalloc(P, sizeof *d->b16_send);
    d->b16_recv = zalloc(P, sizeof *d->b16_recv);
    d->ar_buf = zalloc(P, sizeof *d->ar_buf);
    d->tpe = zalloc(ns * E + 1, sizeof *d->tpe);
    d->dropped = zalloc(ns + 1, sizeof *d->dropped);
    d->entropy = zalloc(ns + 1, sizeof *d->entropy);
    d->choice_offset = zalloc(ns + 1, sizeof *d->choice_offset);
    d->received = zalloc(ns * P + 1, sizeof *d->received);
    d->sent = zalloc(ns * P * P + 1, sizeof *d->sent);
    const int nenc = encoder_switch_layers(&d->model);
    for (size_t i = 0; i < ns; i++)
        d->choice_offset[i + 1] = d->choice_offset[i] + P * ((int)i < nenc ? Ne : Nd) * k;
    d->choice = zalloc(d->choice_offset[ns] + 1, sizeof *d->choice);
    if (!d->rows || !d->cnt || !d->xsend || !d->xrecv || !d->b16_send || !d->b16_recv ||
        !d->ar_buf || !d->tpe || !d->dropped || !d->entropy || !d->received || !d->sent ||
        !d->choice)
        return nomem(err, "the exchange tables");
    for (size_t c = 0; c < P; c++) {
        d->b16_send[c] = zalloc(d->cap_max * d->C + 1, sizeof(bf16));
        d->b16_recv[c] = zalloc(d->cap_max * d->C + 1, sizeof(bf16));
        const size_t n = d->dense_floats > d->expert_floats ? d->dense_floats
                                                            : d->expert_floats;
        d->ar_buf[c] = zalloc(n + 1, sizeof(float));
        if (!d->b16_send[c] || !d->b16_recv[c] || !d->ar_buf[c])
            return nomem(err, "the exchange buffers");
    }
    return SS_OK;
}

/* An fp32 all-reduce of count floats among the p ranks on cores[] (with a topology). */
static ss_status build_reduce(const model_dtrain *d, coll_schedule *s, int p, size_t count,
                              const int32_t *cores, ss_err *err)
{
    const coll_desc desc = {.kind = SIM_COLL_ALLREDUCE, .p = p, .count = count,
                            .elem_bytes = 4, .topo = d->cfg.topo, .cores = cores};
    return d->cfg.topo ? coll_schedule_build_auto(s, &desc, &d->cfg.cost, err)
                       : coll_schedule_build(s, &desc, COLL_ALGO_RING, err);
}

/* The dense gradients' all-reduce over all cores and, with replicas, each expert's among
 * its R cores. */
static ss_status build_allreduce(model_dtrain *d, ss_err *err)
{
    ss_status st = build_reduce(d, &d->allreduce, d->P, d->dense_floats, d->cfg.core_of, err);
    if (st != SS_OK) {
        ss_err_prefix(err, "gradient all-reduce");
        return st;
    }
    if (d->R == 1)
        return SS_OK;
    d->xreduce = zalloc((size_t)d->E, sizeof *d->xreduce);
    if (!d->xreduce)
        return nomem(err, "the expert all-reduces");
    for (int e = 0; e < d->E; e++) {
        const int32_t *cores = d->cfg.core_of ? d->cfg.core_of + (size_t)e * (size_t)d->R
                                              : NULL;
        st = build_reduce(d, &d->xreduce[e], d->R, d->expert_floats, cores, err);
        if (st != SS_OK) {
            ss_err_prefix(err, "expert %d's gradient all-reduce among its %d replicas", e,
                          d->R);
            return st;
        }
    }
    return SS_OK;
}

/* Everything but the cores' models: dimensions, tensor lists, capacities. */
static ss_status init_dims(model_dtrain *d, size_t **cap, ss_err *err)
{
    const model_cfg *m = &d->model;
    d->P = d->cfg.cores;
    d->core_shape = (model_t5_shape){d->cfg.shape.B / d->P, d->cfg.shape.T_in,
                                     d->cfg.shape.T_out};
    d->C = (size_t)m->d_model;
    d->F = (size_t)m->d_ff;
    d->FI = m->ffn == MODEL_FFN_GEGLU ? 2 * d->F : d->F;
    d->E = m->has_switch ? m->sw.num_experts : 0;
    d->R = m->has_switch && d->E < d->P ? d->P / d->E : 1;
    d->Eo = m->has_switch ? (d->R > 1 ? 1 : d->E / d->P) : 0;
    d->k = m->has_switch ? m->sw.top_k : 0;
    d->nswitch = m->has_switch ? encoder_switch_layers(m) + model_cfg_switch_layers(
                                                               m, m->decoder_layers)
                               : 0;
    *cap = zalloc((size_t)d->nswitch + 1, sizeof **cap);
    if (!*cap)
        return nomem(err, "the layer table");
    ss_status st = m->has_switch ? layer_caps(d, *cap, err) : SS_OK;
    if (st != SS_OK)
        ss_err_prefix(err, "distributed training: a core routes its own %d sequences (%d x %d "
                      "encoder and %d x %d decoder tokens)", d->core_shape.B, d->core_shape.B,
                      d->core_shape.T_in, d->core_shape.B, d->core_shape.T_out);
    const size_t Nmax = (size_t)d->core_shape.B *
                        (size_t)(d->core_shape.T_in > d->core_shape.T_out ? d->core_shape.T_in
                                                                          : d->core_shape.T_out);
    d->cap_max = Nmax * (size_t)d->k;
    for (int i = 0; i < d->nswitch; i++)
        if ((*cap)[i] > d->cap_max)
            d->cap_max = (*cap)[i];
    return st;
}

ss_status model_dtrain_init(model_dtrain **out, const model_dtrain_cfg *cfg, ss_err *err)
{
    SS_ASSERT(out && cfg && cfg->model && cfg->train);
    *out = NULL;
    ss_status st = check_layout(cfg, err);
    if (st != SS_OK)
        return st;
    model_dtrain *d = calloc(1, sizeof *d);
    if (!d)
        return nomem(err, "the trainer");
    d->cfg = *cfg;
    d->model = *cfg->model;
    d->train = *cfg->train;
    size_t *cap = NULL;
    st = init_dims(d, &cap, err);
    if (st == SS_OK) {
        d->core = zalloc((size_t)d->P, sizeof *d->core);
        if (!d->core)
            st = nomem(err, "the cores");
    }
    /* core 0's model first: the tensor lists come from its layout */
    if (st == SS_OK)
        st = model_t5_init(&d->core[0].m, &d->model, d->core_shape, &d->cfg.nx, err);
    if (st == SS_OK)
        st = split_tensors(d, err); /* names point into core 0's model, which stays */
    for (int c = 0; st == SS_OK && c < d->P; c++)
        st = init_core(d, c, cap, err);
    if (st == SS_OK)
        st = init_shared(d, err);
    if (st == SS_OK)
        st = build_allreduce(d, err);
    if (st == SS_OK && pthread_barrier_init(&d->bar, NULL, (unsigned)d->P) != 0)
        st = ss_err_set(err, SS_ERR_NOMEM, "distributed training: cannot create a barrier");
    else if (st == SS_OK)
        d->have_barrier = 1;
    free(cap);
    if (st != SS_OK) {
        model_dtrain_free(d);
        return st;
    }
    *out = d;
    return SS_OK;
}

static void free_ptrs(void **p, int n)
{
    for (int i = 0; p && i < n; i++)
        free(p[i]);
    free(p);
}

void model_dtrain_free(model_dtrain *d)
{
    if (!d)
        return;
    for (int c = 0; d->core && c < d->P; c++) {
        dcore *cc = &d->core[c];
        model_t5_free(&cc->m);
        for (int i = 0; cc->xs && i < d->nswitch; i++)
            free_xside(&cc->xs[i]);
        free(cc->xs);
        free(cc->span);
        free(cc->recv);
        free(cc->send);
        free(cc->opt_dense);
        free(cc->opt_expert);
    }
    free(d->core);
    free(d->dense_t);
    free(d->expert_t);
    free_ptrs((void **)d->ar_buf, d->P);
    free_ptrs((void **)d->b16_send, d->P);
    free_ptrs((void **)d->b16_recv, d->P);
    coll_schedule_free(&d->allreduce);
    for (int e = 0; d->xreduce && e < d->E; e++)
        coll_schedule_free(&d->xreduce[e]);
    free(d->xreduce);
    if (d->have_barrier)
        pthread_barrier_destroy(&d->bar);
    free(d->rows);
    free(d->cnt);
    free(d->xsend);
    free(d->xrecv);
    free(d->tpe);
    free(d->choice);
    free(d->dropped);
    free(d->entropy);
    free(d->choice_offset);
    free(d->received);
    free(d->sent);
    free(d);
}

/* ---- one step ---------------------------------------------------------------------------- */

static void *core_main(void *arg)
{
    dcore *cc = arg;
    model_t5_zero_grad(&cc->m);
    cc->st = model_t5_forward(&cc->m, cc->inputs, cc->dec_inputs, cc->targets, 1, &cc->rng,
                              &cc->mt, &cc->err);
    if (cc->st == SS_OK)
        cc->st = model_t5_backward_weighted(&cc->m, cc->dloss, 1.0f / (float)cc->d->P,
                                            &cc->err);
    return NULL;
}

/* Token ids must be valid before the threads start: a core that failed in its embedding
 * would never reach the exchanges the others wait in. */
static ss_status check_tokens(const model_dtrain *d, const int32_t *x, size_t n, int pad_ok,
                              const char *what, ss_err *err)
{
    const int32_t V = d->model.vocab_size, pad = d->core[0].m.pad_id;
    for (size_t i = 0; i < n; i++)
        if ((x[i] < 0 || x[i] >= V) && !(pad_ok && x[i] == pad))
            return ss_err_set(err, SS_ERR_RANGE, "%s[%zu] = %d is outside [0, %d)", what, i,
                              (int)x[i], (int)V);
    return SS_OK;
}

/* splitmix64's finaliser: a bijection that spreads every input bit over the output. */
static uint64_t mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

/* Core c's dropout stream of step `step`: keyed by (seed, core, step), so that a step's
 * masks never depend on the steps before it and a resumed run needs no stream state. */
static void seed_core_stream(model_dtrain *d, int c, uint64_t step)
{
    const uint64_t h = mix64(mix64(d->cfg.seed ^ MODEL_TRAIN_RNG_SALT ^ STREAM_SALT) ^
                             (uint64_t)c);
    rng_seed(&d->core[c].rng, mix64(h ^ step));
}

/* Shards the batch, sets each core's loss weight n_c / n and seeds its stream of `step`. */
static void shard(model_dtrain *d, const int32_t *inputs, const int32_t *dec_inputs,
                  const int32_t *targets, uint64_t step)
{
    const size_t Ni = (size_t)d->core_shape.B * (size_t)d->core_shape.T_in;
    const size_t No = (size_t)d->core_shape.B * (size_t)d->core_shape.T_out;
    const int32_t pad = d->core[0].m.pad_id;
    size_t n = 0, nc[d->P > 0 ? d->P : 1];
    for (int c = 0; c < d->P; c++) {
        nc[c] = 0;
        for (size_t i = 0; i < No; i++)
            nc[c] += targets[(size_t)c * No + i] != pad;
        n += nc[c];
    }
    for (int c = 0; c < d->P; c++) {
        dcore *cc = &d->core[c];
        cc->inputs = inputs + (size_t)c * Ni;
        cc->dec_inputs = dec_inputs + (size_t)c * No;
        cc->targets = targets + (size_t)c * No;
        cc->dloss = n ? (float)((double)nc[c] / (double)n) : 0.0f;
        seed_core_stream(d, c, step);
    }
}

static ss_status run_core_threads(model_dtrain *d, ss_err *err)
{
    pthread_t tid[d->P];
    for (int c = 0; c < d->P; c++) {
        d->core[c].st = SS_OK;
        /* A core thread that cannot start would leave the others waiting in a barrier. */
        SS_ASSERT(pthread_create(&tid[c], NULL, core_main, &d->core[c]) == 0);
    }
    for (int c = 0; c < d->P; c++)
        pthread_join(tid[c], NULL);
    for (int c = 0; c < d->P; c++)
        if (d->core[c].st != SS_OK)
            return ss_err_set(err, d->core[c].st, "core %d: %s", c, d->core[c].err.msg);
    return SS_OK;
}

/* The core threads already keep the CPUs busy: OpenBLAS's own threads, started by P
 * concurrent callers, would only oversubscribe them (measured: 10x slower on 2 CPUs), so
 * matmuls run single-threaded while the cores run (OpenBLAS splits no sum across threads,
 * so the values do not change). */
static ss_status run_cores(model_dtrain *d, ss_err *err)
{
    const int blas_threads = openblas_get_num_threads();
    if (d->P > 1)
        openblas_set_num_threads(1);
    ss_status st = run_core_threads(d, err);
    if (d->P > 1)
        openblas_set_num_threads(blas_threads);
    return st;
}

/* Copies the ranges of tensors t[nt] of g to buf, packed (pack), or back. */
static void tensors_copy(const model_tensor *ts, size_t nt, float *g, float *buf, int pack)
{
    size_t pos = 0;
    for (size_t i = 0; i < nt; i++) {
        const model_tensor *t = &ts[i];
        const size_t n = model_tensor_size(t);
        if (pack)
            memcpy(buf + pos, g + t->offset, n * sizeof(float));
        else
            memcpy(g + t->offset, buf + pos, n * sizeof(float));
        pos += n;
    }
}

static ss_status allreduce_dense(model_dtrain *d, ss_err *err)
{
    for (int c = 0; c < d->P; c++)
        tensors_copy(d->dense_t, d->ndense, d->core[c].m.grads, d->ar_buf[c], 1);
    ss_status st = coll_run(&d->allreduce, COLL_FP32, d->cfg.nx.gemm.denormals,
                            (const void *const *)d->ar_buf, (void *const *)d->ar_buf, err);
    if (st != SS_OK) {
        ss_err_prefix(err, "gradient all-reduce");
        return st;
    }
    for (int c = 0; c < d->P; c++)
        tensors_copy(d->dense_t, d->ndense, d->core[c].m.grads, d->ar_buf[c], 0);
    return SS_OK;
}

/* With replicas: sums each expert's gradients over its R cores (each replica holds the
 * gradient of the rows it ran), so every replica updates with the whole batch's gradient. */
static ss_status allreduce_experts(model_dtrain *d, ss_err *err)
{
    for (int e = 0; d->R > 1 && e < d->E; e++) {
        float **buf = d->ar_buf + (size_t)e * (size_t)d->R;
        for (int r = 0; r < d->R; r++) {
            const int c = e * d->R + r;
            tensors_copy(core_experts(d, c), d->nexpert_t, d->core[c].m.grads, buf[r], 1);
        }
        ss_status st = coll_run(&d->xreduce[e], COLL_FP32, d->cfg.nx.gemm.denormals,
                                (const void *const *)buf, (void *const *)buf, err);
        if (st != SS_OK) {
            ss_err_prefix(err, "expert %d's gradient all-reduce", e);
            return st;
        }
        for (int r = 0; r < d->R; r++) {
            const int c = e * d->R + r;
            tensors_copy(core_experts(d, c), d->nexpert_t, d->core[c].m.grads, buf[r], 0);
        }
    }
    return SS_OK;
}

static void scale_grads(float *g, const model_tensor *t, size_t n, double ratio)
{
    for (size_t k = 0; k < n; k++) {
        float *x = g + t[k].offset;
        const size_t m = model_tensor_size(&t[k]);
        for (size_t i = 0; i < m; i++)
            x[i] = (float)((double)x[i] * ratio);
    }
}

/* The global norm (dense once, every expert once: from its first replica) and
 * model_grad_clip_global_norm's scaling on every core. */
static double clip_global(model_dtrain *d)
{
    const double dn = model_grad_global_norm(d->core[0].m.grads, d->dense_t, d->ndense);
    double sq = dn * dn;
    for (int c = 0; c < d->P; c++) {
        if (!first_replica(d, c))
            continue;
        const double en = model_grad_global_norm(d->core[c].m.grads, core_experts(d, c),
                                                 d->nexpert_t);
        sq += en * en;
    }
    const double norm = sqrt(sq), max_norm = d->train.clip_norm;
    if (!(max_norm > 0.0) || !isfinite(norm) || norm <= max_norm)
        return norm;
    const double ratio = max_norm / norm;
    for (int c = 0; c < d->P; c++) {
        scale_grads(d->core[c].m.grads, d->dense_t, d->ndense, ratio);
        scale_grads(d->core[c].m.grads, core_experts(d, c), d->nexpert_t, ratio);
    }
    return norm;
}

static void update_all(model_dtrain *d, uint64_t step, float lr)
{
    for (int c = 0; c < d->P; c++) {
        dcore *cc = &d->core[c];
        opt_update(d, cc->m.params, cc->m.grads, cc->opt_dense, d->dense_t, d->ndense,
                   &d->train.adafactor, step, lr);
        opt_update(d, cc->m.params, cc->m.grads, cc->opt_expert, core_experts(d, c),
                   d->nexpert_t, &d->af_expert, step, lr);
    }
}

/* The whole batch's metrics from the cores'. */
static void gather_metrics(model_dtrain *d, double norm, model_dtrain_metrics *m)
{
    const size_t P = (size_t)d->P, E = (size_t)d->E, ns = (size_t)d->nswitch;
    memset(m, 0, sizeof *m);
    double loss_w = 0.0;
    for (size_t c = 0; c < P; c++) {
        const model_t5_metrics *t = &d->core[c].mt;
        loss_w += t->loss * (double)t->tokens;
        m->aux_loss += t->aux_loss / (double)P;
        m->z_loss += t->z_loss / (double)P;
        m->tokens += t->tokens;
        m->correct += t->correct;
    }
    m->loss = m->tokens ? loss_w / (double)m->tokens : 0.0;
    m->total = m->loss + m->aux_loss + m->z_loss;
    m->grad_norm = norm;
    m->nswitch = d->nswitch;
    m->num_experts = d->E;
    m->top_k = d->k;
    memset(d->tpe, 0, ns * E * sizeof *d->tpe);
    for (size_t i = 0; i < ns; i++) {
        d->dropped[i] = d->entropy[i] = 0.0;
        size_t pos = d->choice_offset[i];
        for (size_t c = 0; c < P; c++) {
            const model_t5_metrics *t = &d->core[c].mt;
            d->dropped[i] += t->dropped_fraction[i] / (double)P;
            d->entropy[i] += t->router_entropy[i] / (double)P;
            for (size_t e = 0; e < E; e++)
                d->tpe[i * E + e] += t->tokens_per_expert[i * E + e];
            const size_t n = t->choice_offset[i + 1] - t->choice_offset[i];
            memcpy(d->choice + pos, t->expert_choice + t->choice_offset[i], n * sizeof(int32_t));
            pos += n;
        }
        SS_ASSERT(pos == d->choice_offset[i + 1]);
        memcpy(d->sent + i * P * P, layer_rows(d, (int)i), P * P * sizeof(uint64_t));
    }
    m->tokens_per_expert = d->tpe;
    m->dropped_fraction = d->dropped;
    m->router_entropy = d->entropy;
    m->expert_choice = d->choice;
    m->choice_offset = d->choice_offset;
    m->received_rows = d->received;
    m->sent_rows = d->sent;
}

ss_status model_dtrain_step(model_dtrain *d, const int32_t *inputs,
                            const int32_t *decoder_inputs, const int32_t *targets,
                            uint64_t step, float lr, model_dtrain_metrics *m, ss_err *err)
{
    SS_ASSERT(d && inputs && decoder_inputs && targets);
    const size_t B = (size_t)d->cfg.shape.B;
    ss_status st = check_tokens(d, inputs, B * (size_t)d->cfg.shape.T_in, 0, "inputs", err);
    if (st == SS_OK)
        st = check_tokens(d, decoder_inputs, B * (size_t)d->cfg.shape.T_out, 0,
                          "decoder_inputs", err);
    if (st == SS_OK)
        st = check_tokens(d, targets, B * (size_t)d->cfg.shape.T_out, 1, "targets", err);
    if (st != SS_OK)
        return st;
    shard(d, inputs, decoder_inputs, targets, step);
    if ((st = run_cores(d, err)) != SS_OK || (st = allreduce_dense(d, err)) != SS_OK ||
        (st = allreduce_experts(d, err)) != SS_OK)
        return st;
    const double norm = clip_global(d);
    if (!isfinite(norm))
        return ss_err_set(err, SS_ERR_RANGE,
                          "step %llu: the gradient norm is %g: training diverged; try a "
                          "smaller learning_rate, clip_norm or precision fp32",
                          (unsigned long long)step, norm);
    update_all(d, step, lr);
    if (m)
        gather_metrics(d, norm, m);
    return SS_OK;
}

/* ---- parameters -------------------------------------------------------------------------- */

size_t model_dtrain_nparams(const model_dtrain *d)
{
    return d->core[0].m.nparams;
}

void model_dtrain_params(const model_dtrain *d, float *out)
{
    memcpy(out, d->core[0].m.params, d->core[0].m.nparams * sizeof(float));
    for (int c = 1; c < d->P; c++) {
        if (!first_replica(d, c))
            continue;
        const model_tensor *t = core_experts(d, c);
        for (size_t i = 0; i < d->nexpert_t; i++)
            memcpy(out + t[i].offset, d->core[c].m.params + t[i].offset,
                   model_tensor_size(&t[i]) * sizeof(float));
    }
}

/* Largest |a - b| over the ranges of tensors t[n] of two parameter buffers (NaN: inf). */
static double tensors_spread(const model_tensor *t, size_t n, const float *a, const float *b,
                             double worst)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < model_tensor_size(&t[i]); j++) {
            const double diff = fabs((double)a[t[i].offset + j] - (double)b[t[i].offset + j]);
            if (diff > worst || isnan(diff))
                worst = isnan(diff) ? INFINITY : diff;
        }
    return worst;
}

double model_dtrain_replica_spread(const model_dtrain *d)
{
    double worst = 0.0;
    for (int c = 1; c < d->P; c++) {
        worst = tensors_spread(d->dense_t, d->ndense, d->core[0].m.params, d->core[c].m.params,
                               worst);
        if (!first_replica(d, c))
            worst = tensors_spread(core_experts(d, c), d->nexpert_t,
                                   d->core[c - c % d->R].m.params, d->core[c].m.params, worst);
    }
    return worst;
}

/* ---- the whole model's state (checkpoints) ------------------------------------------------- */

size_t model_dtrain_opt_size(const model_dtrain *d)
{
    return d->opt_dense_n + (size_t)(d->P / d->R) * d->opt_expert_n;
}

void model_dtrain_opt_state(const model_dtrain *d, float *out)
{
    memcpy(out, d->core[0].opt_dense, d->opt_dense_n * sizeof(float));
    float *x = out + d->opt_dense_n;
    for (int c = 0; c < d->P; c++)
        if (first_replica(d, c)) {
            memcpy(x, d->core[c].opt_expert, d->opt_expert_n * sizeof(float));
            x += d->opt_expert_n;
        }
}

void model_dtrain_set_state(model_dtrain *d, const float *params, const float *opt_state)
{
    for (int c = 0; c < d->P; c++) {
        dcore *cc = &d->core[c];
        memcpy(cc->m.params, params, cc->m.nparams * sizeof(float));
        memcpy(cc->opt_dense, opt_state, d->opt_dense_n * sizeof(float));
        const size_t owner = (size_t)(c / d->R); /* index among the first replicas */
        memcpy(cc->opt_expert, opt_state + d->opt_dense_n + owner * d->opt_expert_n,
               d->opt_expert_n * sizeof(float));
    }
}
