/* This file implements the lowering of collectives to step programs (coll.h): a schedule
 * becomes send/recv pairs of a sim_program, and a whole program's collective ops are replaced
 * by their schedules.
 *
 * Messages. All transfers of one step from rank a to rank b (a != b) form one message of
 * (sum of counts) * elem_bytes bytes. A rank's sends of a step are ordered by the first
 * transfer of each in the schedule; its recvs by (position of the matching send in its
 * sender's list, sender), i.e. roughly in arrival order. Dependencies, per rank: every op of
 * step s depends on the join of the rank's previous step (the collective's own dependencies
 * for its first step), and the step's last op (its last recv, or its last send when it
 * receives nothing) also on the step's other ops, which makes it the step's join. So the
 * sends and recvs of one step run concurrently (the engines' network interface drives every
 * port at once: a bidirectional ring sends both ways together, a direct all-to-all injects on
 * every port), while step s + 1 starts only once step s is complete, which is what the data
 * dependencies need (a rank forwards what it received). A single-op step is a plain chain.
 * Pairing is by (src, dst, tag) in order, and both sides list a pair's messages in step order,
 * so the k-th send pairs with the k-th recv.
 *
 * Reuse: a step program repeats the same collective many times (every layer, microbatch and
 * phase), so a built schedule and its message plan are shared by every instance with the
 * same (kind, group, bytes, matrix, algorithm hint); up to BUILT_KEEP unused ones are kept,
 * least recently used evicted first. The algorithm auto chose for a (kind, group, bytes,
 * matrix) is remembered for the rest of the program (the choice depends on nothing else).
 *
 * Invariants: the lowered program has no collective op and validates whenever the input did;
 * ops that are not collectives keep their kind, fields, label, layer and phase, and their
 * dependencies (a dependency on a collective becomes one on the core's last op of it).
 */
#include "collectives/coll.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t step, src, dst, pos;
    size_t first;    /* index of its first transfer */
    uint64_t bytes;
} msg;

/* A schedule's messages, in two orders. */
typedef struct {
    msg *by_src;          /* sorted by (src, step, pos) */
    msg *by_dst;          /* sorted by (dst, step, pos, src) */
    size_t n;
    size_t *src_start;    /* [p + 1] */
    size_t *dst_start;    /* [p + 1] */
} plan;

static void plan_free(plan *pl)
{
    free(pl->by_src);
    free(pl->by_dst);
    free(pl->src_start);
    free(pl->dst_start);
    memset(pl, 0, sizeof *pl);
}

#define CMP(a, b) (((a) > (b)) - ((a) < (b)))

static int cmp_pair(const void *a, const void *b) /* (step, src, dst, first) */
{
    const msg *x = a, *y = b;
    int c = CMP(x->step, y->step);
    c = c ? c : CMP(x->src, y->src);
    c = c ? c : CMP(x->dst, y->dst);
    return c ? c : CMP(x->first, y->first);
}

static int cmp_send(const void *a, const void *b) /* (src, step, first) */
{
    const msg *x = a, *y = b;
    int c = CMP(x->src, y->src);
    c = c ? c : CMP(x->step, y->step);
    return c ? c : CMP(x->first, y->first);
}

static int cmp_recv(const void *a, const void *b) /* (dst, step, pos, src) */
{
    const msg *x = a, *y = b;
    int c = CMP(x->dst, y->dst);
    c = c ? c : CMP(x->step, y->step);
    c = c ? c : CMP(x->pos, y->pos);
    return c ? c : CMP(x->src, y->src);
}

/* One entry per network transfer, then merged per (step, src, dst). */
static size_t collect(const coll_schedule *s, msg *m)
{
    size_t n = 0;
    for (int32_t st = 0; st < s->nsteps; st++)
        for (size_t i = s->step_start[st]; i < s->step_start[st + 1]; i++)
            if (s->x[i].src != s->x[i].dst)
                m[n++] = (msg){st, s->x[i].src, s->x[i].dst, 0, i,
                               s->x[i].count * s->elem_bytes};
    qsort(m, n, sizeof *m, cmp_pair);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && m[k - 1].step == m[i].step && m[k - 1].src == m[i].src &&
            m[k - 1].dst == m[i].dst)
            m[k - 1].bytes += m[i].bytes;
        else
            m[k++] = m[i];
    }
    return k;
}

static void starts(const msg *m, size_t n, int32_t p, int by_dst, size_t *start)
{
    memset(start, 0, ((size_t)p + 1) * sizeof *start);
    for (size_t i = 0; i < n; i++)
        start[(by_dst ? m[i].dst : m[i].src) + 1]++;
    for (int32_t r = 0; r < p; r++)
        start[r + 1] += start[r];
}

static ss_status plan_build(plan *pl, const coll_schedule *s, ss_err *err)
{
    memset(pl, 0, sizeof *pl);
    const size_t cap = s->nx ? s->nx : 1;
    pl->by_src = malloc(cap * sizeof *pl->by_src);
    pl->by_dst = malloc(cap * sizeof *pl->by_dst);
    pl->src_start = malloc(((size_t)s->p + 1) * sizeof *pl->src_start);
    pl->dst_start = malloc(((size_t)s->p + 1) * sizeof *pl->dst_start);
    if (!pl->by_src || !pl->by_dst || !pl->src_start || !pl->dst_start) {
        plan_free(pl);
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory lowering %zu transfers", s->nx);
    }
    pl->n = collect(s, pl->by_src);
    qsort(pl->by_src, pl->n, sizeof *pl->by_src, cmp_send);
    for (size_t i = 0; i < pl->n; i++) /* position in the sender's list of its step */
        pl->by_src[i].pos = i && pl->by_src[i - 1].src == pl->by_src[i].src &&
                                    pl->by_src[i - 1].step == pl->by_src[i].step
                                ? pl->by_src[i - 1].pos + 1
                                : 0;
    memcpy(pl->by_dst, pl->by_src, pl->n * sizeof *pl->by_dst);
    qsort(pl->by_dst, pl->n, sizeof *pl->by_dst, cmp_recv);
    starts(pl->by_src, pl->n, s->p, 0, pl->src_start);
    starts(pl->by_dst, pl->n, s->p, 1, pl->dst_start);
    return SS_OK;
}

/* Number of messages of list m[i .. end) in step `step` (they are contiguous from i). */
static int32_t step_len(const msg *m, size_t i, size_t end, int32_t step)
{
    int32_t n = 0;
    while (i + (size_t)n < end && m[i + (size_t)n].step == step)
        n++;
    return n;
}

/* Appends rank r's ops with the dependencies described at the top of this file; *last = its
 * last op (the join of its last step) or -1. */
static ss_status emit_rank(const plan *pl, int32_t r, sim_program *p, const int32_t *cores,
                           int32_t tag, const int32_t *deps, int32_t ndeps, int32_t *last,
                           ss_err *err)
{
    size_t si = pl->src_start[r], ri = pl->dst_start[r];
    const size_t se = pl->src_start[r + 1], re = pl->dst_start[r + 1];
    *last = -1;
    /* dep[0 .. nprev) = what every op of the step depends on, then the step's ops so far */
    int32_t *dep = malloc((se - si + re - ri + (size_t)ndeps + 1) * sizeof *dep);
    if (!dep)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory lowering rank %d", r);
    if (ndeps > 0)
        memcpy(dep, deps, (size_t)ndeps * sizeof *dep);
    int32_t nprev = ndeps;
    ss_status st = SS_OK;
    while (st == SS_OK && (si < se || ri < re)) {
        const int32_t step = si < se && (ri >= re || pl->by_src[si].step <= pl->by_dst[ri].step)
                                 ? pl->by_src[si].step
                                 : pl->by_dst[ri].step;
        const int32_t nops = step_len(pl->by_src, si, se, step) +
                             step_len(pl->by_dst, ri, re, step);
        int32_t k = 0; /* ops of the step added so far */
        for (int recv = 0; recv < 2 && st == SS_OK; recv++) {
            const msg *m = recv ? pl->by_dst : pl->by_src;
            size_t *i = recv ? &ri : &si;
            for (; st == SS_OK && *i < (recv ? re : se) && m[*i].step == step; (*i)++, k++) {
                const int32_t nd = k + 1 == nops ? nprev + k : nprev; /* the join: all */
                const int32_t id = recv ? sim_program_add_recv(p, cores[r], 0, cores[m[*i].src],
                                                               m[*i].bytes, tag, dep, nd)
                                        : sim_program_add_send(p, cores[r], 0, cores[m[*i].dst],
                                                               m[*i].bytes, tag, dep, nd);
                if (id < 0)
                    st = sim_program_status(p, err);
                dep[nprev + k] = id;
            }
        }
        if (st == SS_OK) {
            *last = dep[0] = dep[nprev + nops - 1];
            nprev = 1;
        }
    }
    free(dep);
    return st;
}

ss_status coll_schedule_lower(const coll_schedule *s, sim_program *p, const int32_t *cores,
                              int32_t tag, const int32_t *const *deps, const int32_t *ndeps,
                              int32_t *last, ss_err *err)
{
    plan pl;
    ss_status st = plan_build(&pl, s, err);
    for (int32_t r = 0; st == SS_OK && r < s->p; r++) {
        int32_t l;
        st = emit_rank(&pl, r, p, cores, tag, deps ? deps[r] : NULL, ndeps ? ndeps[r] : 0, &l,
                       err);
        if (last)
            last[r] = l;
    }
    plan_free(&pl);
    return st;
}

/* ---- whole programs ----------------------------------------------------------------- */

/* A built schedule and its message plan, shared by every instance with the same signature
 * (kind, group, bytes, matrix, algorithm hint): a step program repeats the same collective
 * many times (every layer, every microbatch), and building a large schedule is costly. */
typedef struct {
    sim_coll_kind kind;
    int32_t group, matrix, algo_hint;
    uint64_t bytes;
    int32_t users;      /* instances being lowered with it now */
    uint64_t last_use;  /* for evicting the least recently used unused entry */
    coll_schedule s;
    plan pl;
} built;

enum { BUILT_KEEP = 8 }; /* unused entries kept for reuse */

/* One collective instance of the input program. */
typedef struct {
    int32_t id;
    int32_t remaining;  /* members not lowered yet */
    int32_t entry;      /* index into lowering.built, -1 before the first member */
} instance;

/* The algorithm auto chose for a collective signature, so that later instances with the
 * same kind, group, size and matrix skip the search. */
typedef struct {
    sim_coll_kind kind;
    int32_t group, matrix;
    uint64_t bytes;
    coll_algo algo;
} choice;

typedef struct {
    const sim_program *in;
    const sim_topo *topo;
    const coll_cost *cost;
    sim_program *out;
    int32_t *map;       /* [in nops] new id of each op (a collective: its core's last op) */
    instance *inst;
    int32_t ninst;
    choice *chosen;     /* [nchosen] */
    size_t nchosen, chosen_cap;
    built *built;       /* [nbuilt] */
    int32_t nbuilt, built_cap;
    uint64_t clock;     /* instances started, for last_use */
} lowering;

static int cmp_inst(const void *a, const void *b)
{
    return CMP(((const instance *)a)->id, ((const instance *)b)->id);
}

static ss_status find_instances(lowering *L, ss_err *err)
{
    L->inst = calloc((size_t)L->in->nops + 1, sizeof *L->inst);
    if (!L->inst)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < L->in->nops; i++) {
        const sim_prog_op *op = sim_program_op(L->in, i);
        if (op->kind == SIM_OP_COLLECTIVE)
            L->inst[L->ninst++].id = op->coll.id;
    }
    qsort(L->inst, (size_t)L->ninst, sizeof *L->inst, cmp_inst);
    int32_t k = 0;
    for (int32_t i = 0; i < L->ninst; i++) {
        if (k && L->inst[k - 1].id == L->inst[i].id)
            L->inst[k - 1].remaining++;
        else
            L->inst[k++] = (instance){.id = L->inst[i].id, .remaining = 1, .entry = -1};
    }
    L->ninst = k;
    return SS_OK;
}

static ss_status build_auto_cached(lowering *L, const sim_prog_coll *c, const coll_desc *d,
                                   coll_schedule *s, ss_err *err)
{
    for (size_t i = 0; i < L->nchosen; i++) {
        const choice *k = &L->chosen[i];
        if (k->kind == c->kind && k->group == c->group && k->matrix == c->matrix &&
            k->bytes == c->bytes)
            return coll_schedule_build(s, d, k->algo, err);
    }
    ss_status st = coll_schedule_build_auto(s, d, L->cost, err);
    if (st != SS_OK)
        return st;
    if (L->nchosen == L->chosen_cap) {
        const size_t cap = L->chosen_cap ? 2 * L->chosen_cap : 16;
        choice *n = realloc(L->chosen, cap * sizeof *n);
        if (!n)
            return SS_OK; /* the cache is an optimisation only */
        L->chosen = n;
        L->chosen_cap = cap;
    }
    L->chosen[L->nchosen++] = (choice){c->kind, c->group, c->matrix, c->bytes, s->algo};
    return SS_OK;
}

static ss_status build_schedule(lowering *L, built *b, int32_t opid, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(L->in, opid);
    const sim_prog_coll *c = &op->coll;
    int32_t n, r = 0;
    const int32_t *cores = sim_program_group(L->in, c->group, &n);
    const uint64_t *matrix = c->matrix >= 0 ? sim_program_matrix(L->in, c->matrix, &r) : NULL;
    for (int32_t k = 0; k < n; k++)
        if (cores[k] >= sim_topo_ncores(L->topo))
            return ss_err_set(err, SS_ERR_RANGE,
                              "op %d: collective %d: core %d is outside the pod's %d cores",
                              opid, c->id, cores[k], sim_topo_ncores(L->topo));
    const coll_desc d = {c->kind, n, c->bytes, matrix, 1, L->topo, cores};
    const char *hint = sim_program_string(L->in, c->algo);
    coll_algo a;
    if (coll_algo_parse(hint, &a) != 0)
        return ss_err_set(err, SS_ERR_RANGE,
                          "op %d (core %d): collective %d: unknown algorithm hint '%s'", opid,
                          op->core, c->id, hint);
    ss_status st = a == COLL_ALGO_AUTO ? build_auto_cached(L, c, &d, &b->s, err)
                                       : coll_schedule_build(&b->s, &d, a, err);
    if (st != SS_OK) {
        ss_err_prefix(err, "op %d (core %d): collective %d", opid, op->core, c->id);
        return st;
    }
    st = plan_build(&b->pl, &b->s, err);
    if (st != SS_OK)
        coll_schedule_free(&b->s);
    return st;
}

static void built_free(built *b)
{
    coll_schedule_free(&b->s);
    plan_free(&b->pl);
}

/* Frees the least recently used unused entries beyond BUILT_KEEP (moving the last entry into
 * a freed slot; instances refer to entries in use only, which never move). */
static void evict(lowering *L)
{
    for (;;) {
        int32_t unused = 0, oldest = -1;
        for (int32_t i = 0; i < L->nbuilt; i++) {
            if (L->built[i].users > 0)
                continue;
            unused++;
            if (oldest < 0 || L->built[i].last_use < L->built[oldest].last_use)
                oldest = i;
        }
        if (unused <= BUILT_KEEP)
            return;
        built_free(&L->built[oldest]);
        const int32_t last = --L->nbuilt;
        if (oldest != last) {
            L->built[oldest] = L->built[last];
            for (int32_t k = 0; k < L->ninst; k++)
                if (L->inst[k].entry == last)
                    L->inst[k].entry = oldest;
        }
    }
}

/* The entry for op opid's signature: an existing one, or a newly built one. */
static ss_status entry_for(lowering *L, int32_t opid, int32_t *entry, ss_err *err)
{
    const sim_prog_coll *c = &sim_program_op(L->in, opid)->coll;
    for (int32_t i = 0; i < L->nbuilt; i++) {
        const built *b = &L->built[i];
        if (b->kind == c->kind && b->group == c->group && b->matrix == c->matrix &&
            b->bytes == c->bytes && b->algo_hint == c->algo) {
            *entry = i;
            return SS_OK;
        }
    }
    if (L->nbuilt == L->built_cap) {
        const int32_t cap = L->built_cap ? 2 * L->built_cap : 16;
        built *n = realloc(L->built, (size_t)cap * sizeof *n);
        if (!n)
            return ss_err_set(err, SS_ERR_NOMEM, "out of memory");
        L->built = n;
        L->built_cap = cap;
    }
    built *b = &L->built[L->nbuilt];
    memset(b, 0, sizeof *b);
    *b = (built){.kind = (sim_coll_kind)c->kind, .group = c->group, .matrix = c->matrix,
                 .algo_hint = c->algo, .bytes = c->bytes};
    ss_status st = build_schedule(L, b, opid, err);
    if (st != SS_OK)
        return st;
    *entry = L->nbuilt++;
    return SS_OK;
}

/* The new ids of op i's dependencies, in deps_out (room for its ndeps). */
static int32_t mapped_deps(const lowering *L, int32_t i, int32_t *deps_out)
{
    int32_t nd;
    const int32_t *d = sim_program_deps(L->in, i, &nd);
    for (int32_t k = 0; k < nd; k++)
        deps_out[k] = L->map[d[k]];
    return nd;
}

static ss_status lower_collective(lowering *L, int32_t i, const int32_t *deps, int32_t nd,
                                  ss_err *err)
{
    const sim_prog_op *op = sim_program_op(L->in, i);
    instance key = {.id = op->coll.id};
    instance *it = bsearch(&key, L->inst, (size_t)L->ninst, sizeof *L->inst, cmp_inst);
    SS_ASSERT(it);
    if (it->entry < 0) {
        ss_status st = entry_for(L, i, &it->entry, err);
        if (st != SS_OK)
            return st;
        L->built[it->entry].users++;
        L->built[it->entry].last_use = ++L->clock;
    }
    const built *b = &L->built[it->entry];
    const int32_t rank = sim_program_group_rank(L->in, op->coll.group, op->core);
    int32_t n;
    const int32_t *cores = sim_program_group(L->in, op->coll.group, &n);
    int32_t last;
    ss_status st = emit_rank(&b->pl, rank, L->out, cores, COLL_TAG_BASE + op->coll.id, deps,
                             nd, &last, err);
    if (st == SS_OK && last < 0) { /* no message: an empty hbm op joins the dependencies */
        last = sim_program_add_hbm(L->out, op->core, 0, 0, 0, deps, nd);
        if (last < 0)
            st = sim_program_status(L->out, err);
    }
    L->map[i] = last;
    if (--it->remaining == 0) {
        L->built[it->entry].users--;
        it->entry = -1;
        evict(L);
    }
    return st;
}

static int32_t copy_op(lowering *L, int32_t i, const int32_t *deps, int32_t nd)
{
    const sim_prog_op *op = sim_program_op(L->in, i);
    const int32_t label = sim_program_intern(L->out, sim_program_string(L->in, op->label));
    switch ((sim_op_kind)op->kind) {
    case SIM_OP_MATMUL:
        return sim_program_add_matmul(L->out, op->core, label, op->matmul.m, op->matmul.k,
                                      op->matmul.n, op->matmul.dtype, deps, nd);
    case SIM_OP_VECTOR:
        return sim_program_add_vector(L->out, op->core, label, op->vector.kind,
                                      op->vector.elements, op->vector.row_len, op->vector.dtype,
                                      deps, nd);
    case SIM_OP_HBM:
        return sim_program_add_hbm(L->out, op->core, label, op->hbm.read_bytes,
                                   op->hbm.write_bytes, deps, nd);
    case SIM_OP_SEND:
        return sim_program_add_send(L->out, op->core, label, op->xfer.peer, op->xfer.bytes,
                                    op->xfer.tag, deps, nd);
    case SIM_OP_RECV:
        return sim_program_add_recv(L->out, op->core, label, op->xfer.peer, op->xfer.bytes,
                                    op->xfer.tag, deps, nd);
    default:
        SS_ASSERT(0);
        return -1;
    }
}

static ss_status lower_all(lowering *L, ss_err *err)
{
    int32_t *deps = malloc(((size_t)L->in->ndeps + 1) * sizeof *deps);
    if (!deps)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory");
    ss_status st = SS_OK;
    for (int32_t i = 0; i < L->in->nops && st == SS_OK; i++) {
        const sim_prog_op *op = sim_program_op(L->in, i);
        const int32_t nd = mapped_deps(L, i, deps);
        sim_program_set_scope(L->out, op->layer, (sim_phase)op->phase);
        const int xfer = op->kind == SIM_OP_SEND || op->kind == SIM_OP_RECV;
        if (op->kind == SIM_OP_COLLECTIVE) {
            st = lower_collective(L, i, deps, nd, err);
        } else if (xfer && L->ninst > 0 && op->xfer.tag >= COLL_TAG_BASE) {
            st = ss_err_set(err, SS_ERR_RANGE,
                            "op %d (core %d): tag %d is reserved for lowered collectives "
                            "(tags >= 2^30)",
                            i, op->core, op->xfer.tag);
        } else {
            L->map[i] = copy_op(L, i, deps, nd);
            if (L->map[i] < 0)
                st = sim_program_status(L->out, err);
        }
    }
    free(deps);
    return st;
}

ss_status coll_program_lower(const sim_program *in, const sim_topo *topo, const coll_cost *c,
                             sim_program *out, ss_err *err)
{
    ss_status st = sim_program_status(in, err);
    if (st != SS_OK)
        return st;
    lowering L = {.in = in, .topo = topo, .cost = c, .out = out};
    st = sim_program_init(out, in->ncores, err);
    if (st != SS_OK)
        return st;
    L.map = malloc(((size_t)in->nops + 1) * sizeof *L.map);
    if (!L.map)
        st = ss_err_set(err, SS_ERR_NOMEM, "out of memory");
    if (st == SS_OK)
        st = find_instances(&L, err);
    if (st == SS_OK)
        st = lower_all(&L, err);
    for (int32_t k = 0; k < L.nbuilt; k++)
        built_free(&L.built[k]);
    free(L.built);
    free(L.inst);
    free(L.map);
    free(L.chosen);
    if (st != SS_OK)
        sim_program_free(out);
    return st;
}
