/* This file implements the step-program generator of model/stepgen.h. It works in two passes:
 *  1. a TEMPLATE: the ordered op list of one core for the whole step (every microbatch's
 *     forward and backward, gradient reductions, optimizer), with labels interned once, the
 *     collective instances numbered (each instance reserves one id per group of its class),
 *     and the expert-buffer-sized fields marked so they can be scaled per data way;
 *  2. INSTANTIATION: the template replayed for every core of the n x m grid, filling in the
 *     physical core, the group of each collective (shared group ids), its id and the
 *     dependencies (a chain for compute and activation collectives; gradient reductions off
 *     the chain).
 * All cores of the grid run the same ops; only expert-buffer rows (exact counts) and the group
 * of a collective depend on the core's cell. Counting stats while instantiating keeps them
 * exactly equal to what the program holds.
 *
 * Invariants: every template op with a collective has a group class whose groups have >= 2
 * members (size-1 collectives are left out); a collective instance's ids are
 * [id_base, id_base + groups of its class); deps only name ops of the same core added before.
 * reference: REFERENCE.md section 4 (layouts), model/count.h (the forward products).
 */
#include "model/stepgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/count.h"

/* ---- template ------------------------------------------------------------------------ */

typedef enum { GC_NONE = 0, GC_DATA, GC_MODEL, GC_REPLICA, GC_ALL } gclass;
typedef enum { DEP_CHAIN = 0, DEP_GRAD, DEP_JOIN } depmode;

/* One op of the per-core template. */
typedef struct {
    uint8_t kind;     /* sim_op_kind */
    uint8_t phase;    /* sim_phase */
    uint8_t gclass;   /* collectives: which groups */
    uint8_t dep;      /* depmode */
    uint8_t xdim;     /* expert-buffer scaling: 0 none, 1 first dim (m / elements), 2 k */
    uint8_t dtype;    /* sim_operands */
    uint8_t vkind;    /* sim_vector_kind */
    uint8_t ckind;    /* sim_coll_kind */
    int32_t label;    /* interned string id */
    int32_t layer;    /* sim layer or SIM_PROG_NONE */
    int32_t xsw;      /* expert rows of this Switch layer (index into gen.rows), else -1 */
    int32_t matrix;   /* alltoallv matrix id, else SIM_PROG_NONE */
    int32_t id_base;  /* collective: first id of the instance */
    int32_t bwd_ar;   /* forward norm of a sharded block: its backward is preceded by a model
                         all-reduce of the block's input gradient, [bwd_ar rows, C] */
    uint64_t a, b, c; /* matmul m, k, n; vector elements, row_len; collective bytes */
} top;

typedef struct {
    top *v;
    size_t n, cap;
} tlist;

/* One Switch layer's routing: expert rows per data way and the all-to-all matrices. */
typedef struct {
    int64_t *rows;        /* [n] expert-buffer rows of data way d (all its local experts) */
    int32_t disp, comb;   /* matrix ids (n > 1), else SIM_PROG_NONE */
    int owns_rows;        /* rows allocated here (not shared with the previous layer) */
} swroute;

typedef struct {
    const model_plan *p;
    const run_cfg *run;
    const model_cfg *mc;
    model_stepgen_opts o;
    model_counts cnt;
    sim_program *prog;
    ss_err *err;
    /* dimensions */
    int n, m, E, R, epc, Le, Ld, nsw;
    int64_t s;                 /* sequences per core per microbatch */
    int64_t rows_enc, rows_dec, groups_enc, groups_dec, S_enc, S_dec, K_enc, K_dec;
    int64_t C, V, W, F, A, H;
    sim_operands act_dtype, router_dtype;
    /* routing */
    swroute *sw;               /* [nsw] */
    double dropped_sum, padding_sum;
    /* template */
    tlist t;
    tlist *fwd;                /* [Le + Ld + 1] forward ops of each layer (last: embed/head) */
    int32_t next_id;
    int32_t algo_auto;
    /* gradient bytes per layer (replicated params, experts), embedding; optimizer params */
    uint64_t *grad_dense, *grad_expert; /* [Le + Ld] parameters (not bytes) */
    uint64_t embed_params, core_params;
    /* groups */
    int32_t *gid_data, *gid_model, *gid_rep, gid_all; /* [m], [n], [m * E] */
} gen;

static ss_status nomem(gen *g, const char *what)
{
    return ss_err_set(g->err, SS_ERR_NOMEM, "stepgen: out of memory for %s", what);
}

static top *tpush(gen *g, tlist *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        top *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return NULL;
        l->v = v;
        l->cap = cap;
    }
    top *o = &l->v[l->n++];
    memset(o, 0, sizeof *o);
    o->xsw = -1;
    o->matrix = SIM_PROG_NONE;
    o->layer = SIM_PROG_NONE;
    o->dtype = (uint8_t)g->act_dtype;
    return o;
}

/* Interns "<prefix>.<name>[<suffix>]". */
static int32_t label_of(gen *g, const char *prefix, const char *name, const char *suffix)
{
    char buf[SIM_PROG_MAX_TEXT + 1];
    snprintf(buf, sizeof buf, "%s%s%s%s", prefix, *prefix ? "." : "", name, suffix);
    return sim_program_intern(g->prog, buf);
}

/* Ids of a new collective instance of class gc. */
static int32_t take_ids(gen *g, gclass gc)
{
    const int32_t base = g->next_id;
    const int32_t groups = gc == GC_DATA ? g->m : gc == GC_MODEL ? g->n
                           : gc == GC_REPLICA ? g->m * g->E : 1;
    g->next_id += groups;
    return base;
}

/* ---- the forward op list of a layer -------------------------------------------------- */

typedef struct {
    gen *g;
    tlist *l;            /* the layer's forward list */
    const char *prefix;  /* "enc.3" */
    int32_t layer;
    int fail;            /* an allocation failed */
} lb;

static top *add(lb *b, sim_op_kind kind, const char *name)
{
    top *o = tpush(b->g, b->l);
    if (!o) {
        b->fail = 1;
        return NULL;
    }
    o->kind = (uint8_t)kind;
    o->phase = SIM_PHASE_FORWARD;
    o->layer = b->layer;
    o->label = label_of(b->g, b->prefix, name, "");
    return o;
}

static void add_mm(lb *b, const char *name, uint64_t m, uint64_t k, uint64_t n, sim_operands dt,
                   int32_t xsw)
{
    top *o = add(b, SIM_OP_MATMUL, name);
    if (!o)
        return;
    o->a = m;
    o->b = k;
    o->c = n;
    o->dtype = (uint8_t)dt;
    o->xsw = xsw;
    o->xdim = xsw >= 0 ? 1 : 0;
}

static void add_vec(lb *b, const char *name, sim_vector_kind vk, uint64_t elements,
                    uint64_t row_len, sim_operands dt, int32_t xsw)
{
    top *o = add(b, SIM_OP_VECTOR, name);
    if (!o)
        return;
    o->vkind = (uint8_t)vk;
    o->a = elements ? elements : 1;
    o->b = row_len;
    o->dtype = (uint8_t)dt;
    o->xsw = xsw;
    o->xdim = xsw >= 0 ? 1 : 0;
}

/* A collective marker in a forward list: kind, class, bytes or matrix. The backward pass
 * decides what it becomes there (see emit_backward). */
static top *add_coll(lb *b, const char *name, sim_coll_kind ck, gclass gc, uint64_t bytes,
                     int32_t matrix, int32_t xsw)
{
    top *o = add(b, SIM_OP_COLLECTIVE, name);
    if (!o)
        return NULL;
    o->ckind = (uint8_t)ck;
    o->gclass = (uint8_t)gc;
    o->c = bytes;
    o->matrix = matrix;
    o->xsw = xsw; /* all-to-alls: their Switch layer (no scaling: xdim 0) */
    return o;
}

/* Which dimension of a weight product the model ways shard: 'n' (q, k, v, wi), 'k' (o, wo),
 * or 0 (the router). */
static char shard_dim(const model_matmul *mm)
{
    const char *dot = strrchr(mm->name, '.');
    const char *leaf = dot ? dot + 1 : mm->name;
    if (mm->comp == MODEL_COMP_ROUTERS)
        return 0;
    return (!strcmp(leaf, "o") || !strcmp(leaf, "wo")) ? 'k' : 'n';
}

/* The core's shape of a forward product (rows scaled to s sequences, sharded over m). */
static void core_shape(const gen *g, const model_matmul *mm, uint64_t *M, uint64_t *K,
                       uint64_t *N)
{
    const int64_t mw = g->m;
    if (mm->kind != MODEL_MM_WEIGHT) {
        /* H / m heads of s sequences folded into the rows */
        *M = (uint64_t)(g->s * (mm->batch / mw) * mm->m);
        *K = (uint64_t)mm->k;
        *N = (uint64_t)mm->n;
        return;
    }
    *M = (uint64_t)(g->s * mm->m);
    *K = (uint64_t)mm->k;
    *N = (uint64_t)mm->n;
    if (shard_dim(mm) == 'n')
        *N /= (uint64_t)mw;
    else if (shard_dim(mm) == 'k')
        *K /= (uint64_t)mw;
}

/* "self.q" -> "attn.q", "cross.q" -> "cross.q", "ffn.wi", "router" -> "moe.router",
 * "expert.wi" -> "moe.expert.wi". */
static const char *op_name(const model_matmul *mm, char *buf, size_t len)
{
    if (!strncmp(mm->name, "self.", 5))
        snprintf(buf, len, "attn.%s", mm->name + 5);
    else if (mm->comp == MODEL_COMP_ROUTERS || mm->comp == MODEL_COMP_EXPERTS)
        snprintf(buf, len, "moe.%s", mm->name);
    else
        snprintf(buf, len, "%s", mm->name);
    return buf;
}

/* The attention block starting at product i (q, k, v, scores, values, o). */
static void build_attention(lb *b, const model_layer_counts *lc, int i, const char *blk,
                            int64_t rows, int64_t rows_kv)
{
    gen *g = b->g;
    char nm[64];
    snprintf(nm, sizeof nm, "%s.norm", blk);
    add_vec(b, nm, SIM_VECTOR_NORM, (uint64_t)(rows * g->C), (uint64_t)g->C, g->act_dtype, -1);
    if (g->m > 1 && !b->fail) /* backward: all-reduce of the block's input gradient */
        b->l->v[b->l->n - 1].bwd_ar = (int32_t)(rows + (strcmp(blk, "cross") ? 0 : rows_kv));
    for (int j = i; j < i + 6; j++) {
        const model_matmul *mm = &lc->mm[j];
        uint64_t M, K, N;
        core_shape(g, mm, &M, &K, &N);
        add_mm(b, op_name(mm, nm, sizeof nm), M, K, N, g->act_dtype, -1);
        if (mm->kind == MODEL_MM_SCORES) {
            snprintf(nm, sizeof nm, "%s.bias", blk);
            add_vec(b, nm, SIM_VECTOR_ELEMENTWISE, M * N, 0, SIM_OPERANDS_F32, -1);
            snprintf(nm, sizeof nm, "%s.softmax", blk);
            add_vec(b, nm, SIM_VECTOR_SOFTMAX, M * N, N, SIM_OPERANDS_F32, -1);
        }
    }
    if (g->m > 1) {
        snprintf(nm, sizeof nm, "%s.allreduce", blk);
        add_coll(b, nm, SIM_COLL_ALLREDUCE, GC_MODEL, (uint64_t)(rows * g->C * 2), SIM_PROG_NONE,
                 -1);
    }
    snprintf(nm, sizeof nm, "%s.residual", blk);
    add_vec(b, nm, SIM_VECTOR_ELEMENTWISE, (uint64_t)(rows * g->C), 0, g->act_dtype, -1);
}

/* The dense FFN (products i, i+1) or the Switch layer (router, expert.wi, expert.wo). */
static void build_ffn(lb *b, const model_layer_counts *lc, int i, int64_t rows, int xsw)
{
    gen *g = b->g;
    const int sw = xsw >= 0;
    const char *blk = sw ? "moe" : "ffn";
    char nm[64];
    snprintf(nm, sizeof nm, "%s.norm", blk);
    add_vec(b, nm, SIM_VECTOR_NORM, (uint64_t)(rows * g->C), (uint64_t)g->C, g->act_dtype, -1);
    if (g->m > 1 && !b->fail)
        b->l->v[b->l->n - 1].bwd_ar = (int32_t)rows;
    if (sw) {
        const model_matmul *r = &lc->mm[i++];
        add_mm(b, "moe.router", (uint64_t)(g->s * r->m), (uint64_t)r->k, (uint64_t)r->n,
               g->router_dtype, -1);
        add_vec(b, "moe.router.softmax", SIM_VECTOR_SOFTMAX, (uint64_t)(rows * g->E),
                (uint64_t)g->E, SIM_OPERANDS_F32, -1);
        add_vec(b, "moe.dispatch.gather", SIM_VECTOR_ELEMENTWISE, (uint64_t)g->C, 0,
                g->act_dtype, xsw);
        if (g->n > 1)
            add_coll(b, "moe.dispatch", SIM_COLL_ALLTOALLV, GC_DATA, 0, g->sw[xsw].disp, xsw);
    }
    for (int j = i; j < i + 2; j++) {
        const model_matmul *mm = &lc->mm[j];
        uint64_t M, K, N;
        core_shape(g, mm, &M, &K, &N);
        if (sw)
            M = 1; /* rows: the core's expert buffer */
        add_mm(b, op_name(mm, nm, sizeof nm), M, K, N, g->act_dtype, sw ? xsw : -1);
        if (j == i) {
            snprintf(nm, sizeof nm, "%s.act", blk);
            add_vec(b, nm, SIM_VECTOR_ELEMENTWISE, (sw ? 1 : (uint64_t)rows) * N, 0,
                    g->act_dtype, sw ? xsw : -1);
        }
    }
    if (sw) {
        if (g->n > 1)
            add_coll(b, "moe.combine", SIM_COLL_ALLTOALLV, GC_DATA, 0, g->sw[xsw].comb, xsw);
        add_vec(b, "moe.combine.scatter", SIM_VECTOR_ELEMENTWISE, (uint64_t)(rows * g->C), 0,
                g->act_dtype, -1);
    }
    if (g->m > 1) {
        snprintf(nm, sizeof nm, "%s.allreduce", blk);
        add_coll(b, nm, SIM_COLL_ALLREDUCE, GC_MODEL, (uint64_t)(rows * g->C * 2), SIM_PROG_NONE,
                 -1);
    }
    snprintf(nm, sizeof nm, "%s.residual", blk);
    add_vec(b, nm, SIM_VECTOR_ELEMENTWISE, (uint64_t)(rows * g->C), 0, g->act_dtype, -1);
}

static int is_switch_layer(const model_cfg *mc, int block)
{
    return mc->has_switch && block % mc->sw.every == mc->sw.every - 1;
}

/* Parameters of a layer this core holds: replicated ones (dense) and its experts. */
static void layer_params(gen *g, const model_layer_counts *lc, uint64_t *dense,
                         uint64_t *expert)
{
    *dense = (uint64_t)lc->params_norms;
    *expert = 0;
    for (int j = 0; j < lc->nmatmul; j++) {
        const model_matmul *mm = &lc->mm[j];
        if (mm->kind != MODEL_MM_WEIGHT)
            continue;
        const uint64_t kn = (uint64_t)(mm->k * mm->n);
        if (mm->comp == MODEL_COMP_EXPERTS)
            *expert += (uint64_t)g->epc * kn / (uint64_t)g->m;
        else if (mm->comp == MODEL_COMP_ROUTERS)
            *dense += kn;
        else
            *dense += kn / (uint64_t)g->m;
    }
}

/* Forward list of layer `idx` (0..Le-1 encoder, then decoder). */
static ss_status build_layer(gen *g, int idx, int *swi)
{
    const int dec = idx >= g->Le;
    const int block = dec ? idx - g->Le : idx;
    const int sw = is_switch_layer(g->mc, block);
    const model_layer_kind kind = dec ? (sw ? MODEL_LAYER_DEC_SWITCH : MODEL_LAYER_DEC_DENSE)
                                      : (sw ? MODEL_LAYER_ENC_SWITCH : MODEL_LAYER_ENC_DENSE);
    const model_layer_counts *lc = &g->cnt.layer[kind];
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s.%d", dec ? "dec" : "enc", block);
    lb b = {g, &g->fwd[idx], prefix, idx, 0};
    const int64_t rows = dec ? g->rows_dec : g->rows_enc;
    int i = 0;
    build_attention(&b, lc, i, "attn", rows, rows);
    i += 6;
    if (dec && g->Le > 0) {
        build_attention(&b, lc, i, "cross", rows, g->rows_enc);
        i += 6;
    }
    build_ffn(&b, lc, i, rows, sw ? (*swi)++ : -1);
    layer_params(g, lc, &g->grad_dense[idx], &g->grad_expert[idx]);
    if (block == 0) /* the stack's relative position biases */
        g->grad_dense[idx] += (uint64_t)(g->mc->relative_attention_num_buckets * g->H);
    if (block == (dec ? g->Ld : g->Le) - 1) /* the stack's final norm */
        g->grad_dense[idx] += (uint64_t)g->C;
    return b.fail ? nomem(g, "the template") : SS_OK;
}

/* ---- the step ------------------------------------------------------------------------ */

/* Appends a copy of forward op f as a forward (or remat) op of the template. */
static ss_status emit_copy(gen *g, const top *f, sim_phase phase, int remat)
{
    top *o = tpush(g, &g->t);
    if (!o)
        return nomem(g, "the template");
    *o = *f;
    o->phase = (uint8_t)phase;
    o->dep = DEP_CHAIN;
    if (remat)
        o->label = label_of(g, "", sim_program_string(g->prog, f->label), ".remat");
    if (o->kind == SIM_OP_COLLECTIVE)
        o->id_base = take_ids(g, (gclass)o->gclass);
    return SS_OK;
}

static ss_status emit_forward(gen *g, const tlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        ss_status st = emit_copy(g, &l->v[i], SIM_PHASE_FORWARD, 0);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

static ss_status emit_remat(gen *g, const tlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].kind == SIM_OP_COLLECTIVE)
            continue; /* saved outputs of communication are not recomputed */
        ss_status st = emit_copy(g, &l->v[i], SIM_PHASE_BACKWARD, 1);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

/* A backward op derived from forward op f with a label suffix. */
static top *bwd_op(gen *g, const top *f, const char *suffix)
{
    top *o = tpush(g, &g->t);
    if (!o)
        return NULL;
    *o = *f;
    o->phase = SIM_PHASE_BACKWARD;
    o->dep = DEP_CHAIN;
    o->bwd_ar = 0;
    if (*suffix)
        o->label = label_of(g, "", sim_program_string(g->prog, f->label), suffix);
    return o;
}

/* The model all-reduce of a block's input gradient ([rows, C] bf16) before f (its norm). */
static top *bwd_allreduce(gen *g, const top *f)
{
    top *o = bwd_op(g, f, ".allreduce");
    if (!o)
        return NULL;
    o->kind = SIM_OP_COLLECTIVE;
    o->ckind = SIM_COLL_ALLREDUCE;
    o->gclass = GC_MODEL;
    o->c = (uint64_t)f->bwd_ar * (uint64_t)g->C * 2;
    o->matrix = SIM_PROG_NONE;
    o->xsw = -1;
    o->xdim = 0;
    o->id_base = take_ids(g, GC_MODEL);
    return o;
}

/* The backward of one forward op: two matmuls per matmul, the same vector op, the mirrored
 * all-to-all; a forward all-reduce of a block output has no backward communication (its
 * input-gradient all-reduce comes with the block's norm). */
static ss_status emit_backward_op(gen *g, const top *f)
{
    top *o;
    switch ((sim_op_kind)f->kind) {
    case SIM_OP_MATMUL:
        if (!(o = bwd_op(g, f, ".dx")))
            break;
        o->b = f->c; /* dX[m,k] = dY[m,n] x B^T[n,k] */
        o->c = f->b;
        if (!(o = bwd_op(g, f, ".dw")))
            break;
        o->a = f->b; /* dB[k,n] = A^T[k,m] x dY[m,n] */
        o->b = f->a;
        o->c = f->c;
        o->xdim = f->xdim ? 2 : 0;
        return SS_OK;
    case SIM_OP_VECTOR:
        if (f->bwd_ar && !bwd_allreduce(g, f))
            break;
        return bwd_op(g, f, "") ? SS_OK : nomem(g, "the template");
    case SIM_OP_COLLECTIVE:
        if (f->ckind != SIM_COLL_ALLTOALLV)
            return SS_OK;
        if (!(o = bwd_op(g, f, "")))
            break;
        /* backward of dispatch carries the combine matrix and vice versa */
        o->matrix = f->matrix == g->sw[f->xsw].disp ? g->sw[f->xsw].comb : g->sw[f->xsw].disp;
        o->id_base = take_ids(g, (gclass)o->gclass);
        return SS_OK;
    default:
        SS_ASSERT(0);
    }
    return nomem(g, "the template");
}

static ss_status emit_backward(gen *g, const tlist *l)
{
    for (size_t i = l->n; i-- > 0;) {
        ss_status st = emit_backward_op(g, &l->v[i]);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

static ss_status emit_coll(gen *g, const char *label, sim_coll_kind ck, gclass gc,
                           uint64_t bytes, int32_t layer, sim_phase phase, depmode dep)
{
    top *o = tpush(g, &g->t);
    if (!o)
        return nomem(g, "the template");
    o->kind = SIM_OP_COLLECTIVE;
    o->phase = (uint8_t)phase;
    o->ckind = (uint8_t)ck;
    o->gclass = (uint8_t)gc;
    o->c = bytes;
    o->layer = layer;
    o->dep = (uint8_t)dep;
    o->label = sim_program_intern(g->prog, label);
    o->id_base = take_ids(g, gc);
    return SS_OK;
}

static uint64_t grad_bytes(const gen *g, uint64_t params)
{
    return params * (g->o.grad_bf16 ? 2u : 4u);
}

/* The gradient reductions of layer idx (or of the embedding when idx < 0). */
static ss_status emit_grad_reduce(gen *g, int idx)
{
    char name[64];
    ss_status st = SS_OK;
    if (idx < 0) {
        if (g->n * g->m > 1)
            st = emit_coll(g, "grad.allreduce.embed", SIM_COLL_ALLREDUCE, GC_ALL,
                           grad_bytes(g, g->embed_params), SIM_PROG_NONE, SIM_PHASE_BACKWARD,
                           DEP_GRAD);
        return st;
    }
    const int dec = idx >= g->Le;
    snprintf(name, sizeof name, "grad.allreduce.%s.%d", dec ? "dec" : "enc",
             dec ? idx - g->Le : idx);
    if (g->n > 1)
        st = emit_coll(g, name, SIM_COLL_ALLREDUCE, GC_DATA, grad_bytes(g, g->grad_dense[idx]),
                       idx, SIM_PHASE_BACKWARD, DEP_GRAD);
    if (st == SS_OK && g->R > 1 && g->grad_expert[idx] > 0) {
        strncat(name, ".experts", sizeof name - strlen(name) - 1);
        st = emit_coll(g, name, SIM_COLL_ALLREDUCE, GC_REPLICA,
                       grad_bytes(g, g->grad_expert[idx]), idx, SIM_PHASE_BACKWARD, DEP_GRAD);
    }
    return st;
}

/* The forward of the embedding lookups (before layer 0 of each stack) and of the head. */
static ss_status build_edges(gen *g, tlist *embed_enc, tlist *embed_dec, tlist *head)
{
    const int64_t rh = (g->s * g->cnt.head.m + g->m - 1) / g->m; /* head rows of a core */
    lb b = {g, embed_enc, "", SIM_PROG_NONE, 0};
    if (g->Le > 0)
        add_vec(&b, "enc.embed", SIM_VECTOR_ELEMENTWISE, (uint64_t)(g->rows_enc * g->C), 0,
                g->act_dtype, -1);
    b.l = embed_dec;
    if (g->Ld > 0)
        add_vec(&b, "dec.embed", SIM_VECTOR_ELEMENTWISE, (uint64_t)(g->rows_dec * g->C), 0,
                g->act_dtype, -1);
    b.l = head;
    add_vec(&b, g->Ld > 0 ? "dec.final_norm" : "enc.final_norm", SIM_VECTOR_NORM,
            (uint64_t)((g->Ld > 0 ? g->rows_dec : g->rows_enc) * g->C), (uint64_t)g->C,
            g->act_dtype, -1);
    if (g->m > 1) /* backward: the split head rows' input gradients are gathered */
        add_coll(&b, "head.allgather", SIM_COLL_ALLGATHER, GC_MODEL,
                 (uint64_t)((g->Ld > 0 ? g->rows_dec : g->rows_enc) * g->C * 2), SIM_PROG_NONE,
                 -1);
    add_mm(&b, "head.logits", (uint64_t)rh, (uint64_t)g->C, (uint64_t)g->V, g->act_dtype, -1);
    add_vec(&b, "head.loss.softmax", SIM_VECTOR_SOFTMAX, (uint64_t)(rh * g->V), (uint64_t)g->V,
            SIM_OPERANDS_F32, -1);
    add_vec(&b, "head.loss", SIM_VECTOR_REDUCTION, (uint64_t)rh, 0, SIM_OPERANDS_F32, -1);
    return b.fail ? nomem(g, "the template") : SS_OK;
}

/* Forward collectives of the head list are backward-only (the all-gather): skip them in the
 * forward pass, and emit them in backward as themselves. */
static ss_status emit_head_forward(gen *g, const tlist *head)
{
    for (size_t i = 0; i < head->n; i++) {
        if (head->v[i].kind == SIM_OP_COLLECTIVE)
            continue;
        ss_status st = emit_copy(g, &head->v[i], SIM_PHASE_FORWARD, 0);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

static ss_status emit_head_backward(gen *g, const tlist *head)
{
    for (size_t i = head->n; i-- > 0;) {
        const top *f = &head->v[i];
        ss_status st;
        if (f->kind == SIM_OP_COLLECTIVE) {
            top *o = bwd_op(g, f, "");
            if (!o)
                return nomem(g, "the template");
            o->id_base = take_ids(g, (gclass)o->gclass);
            continue;
        }
        if ((st = emit_backward_op(g, f)) != SS_OK)
            return st;
    }
    return SS_OK;
}

/* Parameters outside the layers (embedding, untied output layer) and the core's total. */
static void count_core_params(gen *g)
{
    const int L = g->Le + g->Ld;
    g->embed_params = (uint64_t)(g->V * g->C) * (g->mc->tied_embeddings ? 1u : 2u);
    g->core_params = g->embed_params;
    for (int i = 0; i < L; i++)
        g->core_params += g->grad_dense[i] + g->grad_expert[i];
}

/* Optimizer passes over the core's parameters (see stepgen.h). */
static ss_status emit_optimizer(gen *g)
{
    static const char *const adaf[] = {"optim.grad_sq", "optim.row_sum", "optim.col_sum",
                                       "optim.precondition", "optim.rms", "optim.clip",
                                       "optim.scale", "optim.update"};
    static const char *const adamw[] = {
        "optim.m.scale", "optim.m.add", "optim.grad_sq", "optim.v.scale", "optim.v.add",
        "optim.v.sqrt",  "optim.divide", "optim.decay",  "optim.lr",      "optim.update"};
    const int ada = g->run->train.optimizer == RUN_OPTIMIZER_ADAFACTOR;
    const int npass = ada ? 8 : 10;
    count_core_params(g);
    for (int i = 0; i < npass; i++) {
        top *o = tpush(g, &g->t);
        if (!o)
            return nomem(g, "the template");
        const int red = ada && (i == 1 || i == 2 || i == 4);
        o->kind = SIM_OP_VECTOR;
        o->phase = SIM_PHASE_OPTIMIZER;
        o->vkind = (uint8_t)(red ? SIM_VECTOR_REDUCTION : SIM_VECTOR_ELEMENTWISE);
        o->a = g->core_params;
        o->dtype = SIM_OPERANDS_F32;
        o->dep = i == 0 ? DEP_JOIN : DEP_CHAIN;
        o->label = sim_program_intern(g->prog, ada ? adaf[i] : adamw[i]);
    }
    return SS_OK;
}

/* Backward of the whole model for one microbatch; reductions inline when `reduce` (the last
 * microbatch with overlap). */
static ss_status emit_backward_pass(gen *g, const tlist *ee, const tlist *ed, const tlist *hd,
                                    int reduce)
{
    const int L = g->Le + g->Ld;
    ss_status st = emit_head_backward(g, hd);
    for (int idx = L - 1; idx >= 0 && st == SS_OK; idx--) {
        if (g->o.remat)
            st = emit_remat(g, &g->fwd[idx]);
        if (st == SS_OK)
            st = emit_backward(g, &g->fwd[idx]);
        if (st == SS_OK && reduce)
            st = emit_grad_reduce(g, idx);
        if (st == SS_OK && idx == g->Le)
            st = emit_backward(g, ed);
    }
    if (st == SS_OK)
        st = emit_backward(g, ee);
    if (st == SS_OK && reduce)
        st = emit_grad_reduce(g, -1);
    return st;
}

static ss_status build_template(gen *g)
{
    const int L = g->Le + g->Ld;
    tlist ee = {0}, ed = {0}, hd = {0};
    ss_status st = SS_OK;
    int swi = 0;
    for (int idx = 0; idx < L && st == SS_OK; idx++)
        st = build_layer(g, idx, &swi);
    if (st == SS_OK)
        st = build_edges(g, &ee, &ed, &hd);
    for (int mb = 0; mb < g->p->microbatches && st == SS_OK; mb++) {
        const int last = mb == g->p->microbatches - 1;
        st = emit_forward(g, &ee);
        for (int idx = 0; idx < L && st == SS_OK; idx++) {
            if (idx == g->Le)
                st = emit_forward(g, &ed);
            if (st == SS_OK)
                st = emit_forward(g, &g->fwd[idx]);
        }
        if (st == SS_OK)
            st = emit_head_forward(g, &hd);
        if (st == SS_OK)
            st = emit_backward_pass(g, &ee, &ed, &hd, last && g->o.overlap_grad_reduce);
        if (st == SS_OK && last && !g->o.overlap_grad_reduce) {
            for (int idx = L - 1; idx >= 0 && st == SS_OK; idx--)
                st = emit_grad_reduce(g, idx);
            if (st == SS_OK)
                st = emit_grad_reduce(g, -1);
        }
    }
    if (st == SS_OK)
        st = emit_optimizer(g);
    free(ee.v);
    free(ed.v);
    free(hd.v);
    if (st == SS_OK)
        st = sim_program_status(g->prog, g->err);
    return st;
}

/* ---- routing ------------------------------------------------------------------------- */

/* Data ways that send to data way j: all n with E >= n, else the E ways of j's block
 * (i % R == j % R). */
static int sends_to(const gen *g, int i, int j)
{
    return g->R == 1 || i % g->R == j % g->R;
}

static ss_status build_routes(gen *g, const model_routing *routing)
{
    int64_t *counts = malloc(sizeof(int64_t) * 3 * (size_t)g->E);
    uint64_t *mat = NULL;
    ss_status st = SS_OK;
    if (!counts)
        return nomem(g, "the routing counts");
    int64_t *kept = counts + g->E, *prev = kept + g->E;
    if (g->n > 1 && !(mat = malloc(sizeof(uint64_t) * (size_t)g->n * (size_t)g->n))) {
        free(counts);
        return nomem(g, "the all-to-all matrices");
    }
    int swi = 0, prev_dec = -1;
    for (int idx = 0; idx < g->Le + g->Ld && st == SS_OK; idx++) {
        const int dec = idx >= g->Le;
        if (!is_switch_layer(g->mc, dec ? idx - g->Le : idx))
            continue;
        const int64_t S = dec ? g->S_dec : g->S_enc, K = dec ? g->K_dec : g->K_enc;
        const int64_t G = dec ? g->groups_dec : g->groups_enc;
        const int64_t routed = (int64_t)g->mc->sw.top_k * S;
        swroute *r = &g->sw[swi];
        st = model_routing_counts(routing, swi, g->E, routed, K, counts, kept, g->err);
        if (st != SS_OK)
            break;
        int64_t k_sum = 0;
        for (int e = 0; e < g->E; e++)
            k_sum += kept[e];
        g->dropped_sum += routed > 0 ? (double)(routed - k_sum) / (double)routed : 0;
        g->padding_sum += K > 0 ? (double)(g->E * K - k_sum) / (double)(g->E * K) : 0;
        if (!g->o.exact_counts)
            for (int e = 0; e < g->E; e++)
                kept[e] = K; /* padded static shapes: every slot travels and computes */
        /* the same slots as the previous Switch layer of the same stack: share its routes */
        if (swi > 0 && prev_dec == dec && !memcmp(prev, kept, sizeof(int64_t) * (size_t)g->E)) {
            *r = g->sw[swi - 1];
            r->owns_rows = 0;
            swi++;
            continue;
        }
        r->rows = calloc((size_t)g->n, sizeof(int64_t));
        if (!r->rows) {
            st = nomem(g, "the expert rows");
            break;
        }
        r->owns_rows = 1;
        r->disp = r->comb = SIM_PROG_NONE;
        for (int j = 0; j < g->n; j++) {
            int64_t per_group = 0; /* tokens one sending group puts on data way j */
            const int e0 = model_plan_first_expert(g->p, j);
            for (int e = e0; e < e0 + g->epc; e++)
                per_group += kept[e];
            const int64_t senders = g->R > 1 ? g->E : g->n;
            r->rows[j] = senders * G * per_group;
            if (mat)
                for (int i = 0; i < g->n; i++)
                    mat[(size_t)i * (size_t)g->n + (size_t)j] =
                        sends_to(g, i, j) ? (uint64_t)(G * per_group * g->C * 2) : 0;
        }
        if (mat) {
            r->disp = sim_program_add_matrix(g->prog, mat, g->n);
            for (int i = 0; i < g->n; i++) /* in place transpose: combine sends back */
                for (int j = i + 1; j < g->n; j++) {
                    uint64_t *a = &mat[(size_t)i * (size_t)g->n + (size_t)j];
                    uint64_t *b = &mat[(size_t)j * (size_t)g->n + (size_t)i];
                    const uint64_t t = *a;
                    *a = *b;
                    *b = t;
                }
            r->comb = sim_program_add_matrix(g->prog, mat, g->n);
            st = sim_program_status(g->prog, g->err);
        }
        memcpy(prev, kept, sizeof(int64_t) * (size_t)g->E);
        prev_dec = dec;
        swi++;
    }
    free(mat);
    free(counts);
    return st;
}

/* ---- groups and instantiation -------------------------------------------------------- */

static ss_status build_groups(gen *g)
{
    const int n = g->n, m = g->m, E = g->E > 0 ? g->E : 1;
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)n * (size_t)m);
    g->gid_data = malloc(sizeof(int32_t) * ((size_t)m + (size_t)n + (size_t)m * (size_t)E));
    if (!buf || !g->gid_data) {
        free(buf);
        return nomem(g, "the groups");
    }
    g->gid_model = g->gid_data + m;
    g->gid_rep = g->gid_model + n;
    for (int k = 0; k < m; k++) { /* the n cores of model shard k, data way order */
        for (int d = 0; d < n; d++)
            buf[d] = g->p->core_of[d * m + k];
        g->gid_data[k] = sim_program_add_group(g->prog, buf, n);
    }
    for (int d = 0; d < n; d++) /* the m cores of data replica d */
        g->gid_model[d] = sim_program_add_group(g->prog, &g->p->core_of[d * m], m);
    for (int k = 0; k < m && g->R > 1; k++) /* the R replicas of expert e in shard k */
        for (int e = 0; e < g->E; e++) {
            for (int r = 0; r < g->R; r++)
                buf[r] = g->p->core_of[(e * g->R + r) * m + k];
            g->gid_rep[k * g->E + e] = sim_program_add_group(g->prog, buf, g->R);
        }
    g->gid_all = sim_program_add_group(g->prog, g->p->core_of, n * m);
    free(buf);
    return sim_program_status(g->prog, g->err);
}

/* Group id and index (offset from the instance's id_base) of class gc for cell (d, k). */
static int32_t group_of(const gen *g, gclass gc, int d, int k, int32_t *index)
{
    switch (gc) {
    case GC_DATA:
        *index = k;
        return g->gid_data[k];
    case GC_MODEL:
        *index = d;
        return g->gid_model[d];
    case GC_REPLICA:
        *index = k * g->E + d / g->R;
        return g->gid_rep[*index];
    default:
        *index = 0;
        return g->gid_all;
    }
}

/* The state of one core while its template is replayed. */
typedef struct {
    int32_t chain;      /* last op of the compute/activation chain, -1 none */
    int32_t grad;       /* last gradient reduction, -1 none */
} cursor;

static int32_t add_one(gen *g, const top *t, int32_t core, int d, int k, const int32_t *deps,
                       int32_t ndeps, model_stepgen_stats *st)
{
    sim_program *p = g->prog;
    uint64_t a = t->a, b = t->b;
    if (t->xdim == 1)
        a *= (uint64_t)g->sw[t->xsw].rows[d];
    else if (t->xdim == 2)
        b *= (uint64_t)g->sw[t->xsw].rows[d];
    switch ((sim_op_kind)t->kind) {
    case SIM_OP_MATMUL:
        if (a == 0 || b == 0)
            return -2; /* an expert with no tokens (exact counts): nothing to run */
        st->executed_flops += 2.0 * (double)a * (double)b * (double)t->c;
        return sim_program_add_matmul(p, core, t->label, a, b, t->c, (sim_operands)t->dtype,
                                      deps, ndeps);
    case SIM_OP_VECTOR:
        if (a == 0)
            return -2;
        st->vector_flops +=
            (double)a * sim_vector_flops_per_element((sim_vector_kind)t->vkind);
        return sim_program_add_vector(p, core, t->label, (sim_vector_kind)t->vkind, a, b,
                                      (sim_operands)t->dtype, deps, ndeps);
    case SIM_OP_COLLECTIVE: {
        sim_prog_coll c = {0};
        int32_t index;
        c.kind = (sim_coll_kind)t->ckind;
        c.group = group_of(g, (gclass)t->gclass, d, k, &index);
        c.id = t->id_base + index;
        c.bytes = t->c;
        c.matrix = t->matrix;
        c.algo = g->algo_auto;
        const int32_t id = sim_program_add_collective(p, core, t->label, &c, deps, ndeps);
        if (id >= 0)
            st->comm_bytes[c.kind] += sim_program_op(p, id)->coll.bytes;
        return id;
    }
    default:
        SS_ASSERT(0);
        return -1;
    }
}

/* Replays the template on grid cell (d, k). */
static ss_status instantiate(gen *g, int d, int k, model_stepgen_stats *st)
{
    const int32_t core = g->p->core_of[d * g->m + k];
    cursor cur = {-1, -1};
    for (size_t i = 0; i < g->t.n; i++) {
        const top *t = &g->t.v[i];
        int32_t deps[2], nd = 0;
        if (cur.chain >= 0)
            deps[nd++] = cur.chain;
        if (t->dep != DEP_CHAIN && cur.grad >= 0)
            deps[nd++] = cur.grad;
        sim_program_set_scope(g->prog, t->layer, (sim_phase)t->phase);
        const int32_t id = add_one(g, t, core, d, k, deps, nd, st);
        if (id == -2)
            continue;
        if (id < 0)
            return sim_program_status(g->prog, g->err);
        if (t->dep == DEP_GRAD)
            cur.grad = id;
        else
            cur.chain = id;
    }
    return SS_OK;
}

/* ---- checks and setup ---------------------------------------------------------------- */

static ss_status check_plan(const model_plan *p, const run_cfg *run, ss_err *err)
{
    const model_cfg *mc = &run->model;
    const int E = mc->has_switch ? mc->sw.num_experts : 0;
    if (p->n < 1 || p->m < 1 || p->cores != p->n * p->m || !p->core_of)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "stepgen: plan has %d x %d ways for %d cores (or no core map)", p->n,
                          p->m, p->cores);
    if (p->num_experts != E)
        return ss_err_set(err, SS_ERR_CONFIG, "stepgen: plan has %d experts, the model %d",
                          p->num_experts, E);
    if (E > 0 && (p->experts_per_core * p->n != E * p->expert_replicas ||
                  (p->expert_replicas > 1 && p->experts_per_core != 1)))
        return ss_err_set(err, SS_ERR_CONFIG,
                          "stepgen: %d experts per core x %d data ways != %d experts x %d "
                          "replicas",
                          p->experts_per_core, p->n, E, p->expert_replicas);
    if (mc->d_ff % p->m || mc->num_heads % p->m)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "stepgen: %d model ways do not divide d_ff %d and num_heads %d", p->m,
                          mc->d_ff, mc->num_heads);
    if (p->microbatches < 1 || p->input_length != run->input_length ||
        p->target_length != run->target_length)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "stepgen: plan (%d microbatches, lengths %d/%d) does not match the "
                          "run (lengths %d/%d)",
                          p->microbatches, p->input_length, p->target_length,
                          run->input_length, run->target_length);
    const int64_t s = p->seqs_per_microbatch;
    if (s < 1 || s * p->microbatches * p->n != p->batch)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "stepgen: %d sequences per microbatch x %d microbatches x %d data "
                          "ways != batch %d",
                          p->seqs_per_microbatch, p->microbatches, p->n, p->batch);
    return SS_OK;
}

/* Routing groups of one stack: S tokens each, G per core, capacity K. */
static ss_status stack_groups(gen *g, int64_t rows, int groups, int capacity, const char *what,
                              int64_t *G, int64_t *S, int64_t *K)
{
    *G = groups > 0 ? groups : 1;
    *S = rows / *G;
    *K = capacity;
    if (g->E > 0 && (*S * *G != rows || capacity < 0))
        return ss_err_set(g->err, SS_ERR_CONFIG,
                          "stepgen: %s: %lld routing groups do not divide the core's %lld "
                          "tokens (capacity %d)",
                          what, (long long)*G, (long long)rows, capacity);
    return SS_OK;
}

static ss_status setup(gen *g)
{
    const model_plan *p = g->p;
    const model_cfg *mc = g->mc;
    ss_status st = model_count(mc, g->run->input_length, g->run->target_length, &g->cnt,
                               g->err);
    if (st != SS_OK)
        return st;
    g->n = p->n;
    g->m = p->m;
    g->E = p->num_experts;
    g->R = g->E > 0 ? p->expert_replicas : 1;
    g->epc = p->experts_per_core;
    g->Le = mc->encoder_layers;
    g->Ld = mc->decoder_layers;
    g->nsw = model_cfg_switch_layers(mc, g->Le) + model_cfg_switch_layers(mc, g->Ld);
    g->s = p->seqs_per_microbatch;
    g->rows_enc = g->s * p->input_length;
    g->rows_dec = g->s * p->target_length;
    g->C = mc->d_model;
    g->V = mc->vocab_size;
    g->F = mc->d_ff;
    g->H = mc->num_heads;
    g->A = (int64_t)mc->num_heads * mc->d_kv;
    g->W = mc->ffn == MODEL_FFN_GEGLU ? 2 * g->F : g->F;
    g->act_dtype =
        g->run->train.precision == RUN_PRECISION_FP32 ? SIM_OPERANDS_F32 : SIM_OPERANDS_BF16;
    g->router_dtype = mc->sw.router_dtype == MODEL_ROUTER_FP32 ? SIM_OPERANDS_F32 : g->act_dtype;
    st = stack_groups(g, g->rows_enc, p->groups_enc, p->capacity_enc, "encoder", &g->groups_enc,
                      &g->S_enc, &g->K_enc);
    if (st == SS_OK)
        st = stack_groups(g, g->rows_dec, p->groups_dec, p->capacity_dec, "decoder",
                          &g->groups_dec, &g->S_dec, &g->K_dec);
    if (st != SS_OK)
        return st;
    const size_t L = (size_t)(g->Le + g->Ld);
    g->fwd = calloc(L + 1, sizeof *g->fwd);
    g->grad_dense = calloc(2 * L + 1, sizeof(uint64_t));
    g->sw = calloc((size_t)g->nsw + 1, sizeof *g->sw);
    if (!g->fwd || !g->grad_dense || !g->sw)
        return nomem(g, "the layers");
    g->grad_expert = g->grad_dense + L;
    g->algo_auto = sim_program_intern(g->prog, "auto");
    return sim_program_status(g->prog, g->err);
}

static void gen_free(gen *g)
{
    for (int i = 0; g->fwd && i <= g->Le + g->Ld; i++)
        free(g->fwd[i].v);
    free(g->fwd);
    for (int i = 0; g->sw && i < g->nsw; i++)
        if (g->sw[i].owns_rows)
            free(g->sw[i].rows);
    free(g->sw);
    free(g->grad_dense);
    free(g->gid_data);
    free(g->t.v);
}

/* Reserves the whole program: the template times the cores (at most 2 deps an op). */
static ss_status reserve(gen *g)
{
    size_t nops;
    if (ss_mul_size(g->t.n, (size_t)g->p->cores, &nops) || nops > (size_t)INT32_MAX)
        return ss_err_set(g->err, SS_ERR_RANGE,
                          "stepgen: %zu ops per core x %d cores exceed the program's 2^31 ops",
                          g->t.n, g->p->cores);
    if (sim_program_reserve(g->prog, nops, 2 * nops) != SS_OK)
        return sim_program_status(g->prog, g->err);
    return SS_OK;
}

ss_status model_stepgen_build(sim_program *out, model_stepgen_stats *stats,
                              const model_plan *plan, const run_cfg *run,
                              const model_routing *routing, const model_stepgen_opts *o,
                              ss_err *err)
{
    SS_ASSERT(out && plan && run);
    model_stepgen_stats local;
    model_stepgen_stats *st_out = stats ? stats : &local;
    memset(st_out, 0, sizeof *st_out);
    memset(out, 0, sizeof *out);
    ss_status st = check_plan(plan, run, err);
    if (st != SS_OK)
        return st;
    if ((st = sim_program_init(out, plan->cores, err)) != SS_OK)
        return st;
    gen g;
    memset(&g, 0, sizeof g);
    g.p = plan;
    g.run = run;
    g.mc = &run->model;
    g.prog = out;
    g.err = err;
    if (o)
        g.o = *o;
    st = setup(&g);
    if (st == SS_OK && g.nsw > 0)
        st = build_routes(&g, routing);
    if (st == SS_OK)
        st = build_template(&g);
    if (st == SS_OK)
        st = build_groups(&g);
    if (st == SS_OK)
        st = reserve(&g);
    for (int d = 0; d < g.n && st == SS_OK; d++)
        for (int k = 0; k < g.m && st == SS_OK; k++)
            st = instantiate(&g, d, k, st_out);
    if (st == SS_OK) {
        st_out->model_flops = 3.0 * (double)g.cnt.flops_per_seq * (double)plan->batch;
        st_out->dropped_fraction = g.nsw ? g.dropped_sum / g.nsw : 0;
        st_out->padding_fraction = g.nsw ? g.padding_sum / g.nsw : 0;
        st_out->nops = out->nops;
        st_out->ncollectives = g.next_id;
    }
    gen_free(&g);
    if (st != SS_OK) {
        sim_program_free(out);
        memset(st_out, 0, sizeof *st_out);
    }
    return st;
}
