/* This file implements the analytic timing engine (engine.h): a step program priced by list
 * scheduling, without events. Every op gets
 *   start = max(end of its dependencies[, end of the previous op on its unit of its core])
 * where the unit term applies to matmul, vector and hbm ops only (the network interface is not
 * an in-order unit, engine.h), and then
 *   matmul, vector, hbm   end = start + sim_engine_op_seconds (the op alone on its core);
 *   send                  injected at inject = max(start, when its first link has injected
 *                         the sends of its chip queued before it: FIFO by start, then op id),
 *                         end = inject + bytes / link bandwidth; its message's last packet
 *                         arrives at inject + sim_msg_latency_s(hops). Between two cores of
 *                         one chip: no port, end = start, arrival = start;
 *   recv                  end = max(start, arrival of the matching send's last packet);
 *   priced collective     (engine.h) start = its dependencies; once the last member of the
 *                         instance is evaluated (keys never decrease, so its start is the
 *                         latest), every member ends at that start + the price's seconds and
 *                         the price's link load is added once.
 * unit_busy_s adds end - start of every matmul, vector and hbm op; for the network interface
 * it is the length of the union of the core's send and recv windows [start, end): the time
 * with at least one transfer in flight (as in the SystemC engine). Beyond the injection queue
 * of each first link (a chip's port), links are contention-free: once injected, every message
 * is priced as if it were alone, so flows sharing a later link overlap in time there and the
 * makespan does not model that contention. Instead every message adds its bytes, packets and
 * serialisation time to every link of its route, and link_bound_s = max over links of that busy
 * time is a lower bound on any schedule's makespan (a link serialises what it carries).
 * link_peak_queue stays 0 (no queues are measured) and events is 0. With record_links each
 * message contributes one busy window per link of its route,
 * [inject + k * (latency + first packet), + bytes / bw).
 *
 * Order of evaluation: op ids are a topological order within a core, but a recv may precede
 * its send in id order, so ops are evaluated in a topological order of the graph of
 * dependencies, send -> recv edges and unit edges (each matmul, vector or hbm op after the
 * previous op of its unit on its core): Kahn's algorithm with a min-heap of ready ops keyed by
 * (the time their times are settled: a recv's end, any other op's start; op id). Keys never
 * decrease along the evaluation, so the sends sharing a port are priced in issue order, which
 * the FIFO needs; sends between chips issued at one instant are priced together, by op id.
 * The order is fixed, so results (floating-point sums included) are deterministic. An op left
 * unevaluated means the graph has a cycle: dependencies and send -> recv edges
 * (sim_program_validate rejects such programs; unit edges follow program order and cannot
 * close one); that is an error naming the lowest such op. Cost: O((ops + deps) log ops + sum
 * of hops) time, O(ops + deps) memory, plus O(n log n) to merge the network windows of a core
 * with n transfers.
 *
 * Invariants: results are deterministic; end >= start for every op; makespan = max end.
 */
#include "sim/engine.h"

#include <stdlib.h>
#include <string.h>

/* Working state of one run; arrays indexed by op id unless stated. */
typedef struct {
    const sim_program *p;
    const sim_engine_cfg *cfg;
    const sim_coll_prices *prices; /* NULL: the program has no collective */
    sim_result *r;
    int32_t *partner;     /* send <-> recv, -1 otherwise */
    int32_t *indeg;       /* predecessors not evaluated yet */
    int32_t *unit_next;   /* next op on the same in-order unit of the same core, -1 = none */
    uint32_t *succ_start; /* [nops + 1] CSR of dependents */
    int32_t *succ;        /* [ndeps] */
    int32_t *heap;        /* [nops] ready ops, a binary min-heap by (key, id) */
    int32_t *batch;       /* [nops] sends between chips issued at batch_t, not yet priced */
    double *key;          /* when the op's times are settled: its start, a recv's end */
    double *start, *end;  /* op times */
    double *arrival;      /* recv: when its message's last packet arrives */
    double *unit_free;    /* [ncores * SIM_UNIT_COUNT] end of the unit's last op so far
                             (in-order units only) */
    double *port_free;    /* [nlinks] when the link has injected its chip's sends so far */
    int *route;           /* [diameter] links of the current message */
    sim_coll_index ix;    /* priced collectives (engine.h) */
    int32_t *posted;      /* [ix.ninst] members posted so far */
    size_t nheap, nbatch, done;
    double batch_t;
} engine;

static void engine_free(engine *e)
{
    free(e->partner);
    free(e->indeg);
    free(e->unit_next);
    free(e->succ_start);
    free(e->succ);
    free(e->heap);
    free(e->batch);
    free(e->key);
    free(e->port_free);
    free(e->start);
    free(e->end);
    free(e->arrival);
    free(e->unit_free);
    free(e->route);
    free(e->posted);
    sim_coll_index_free(&e->ix);
}

static void *array(size_t n, size_t size)
{
    return calloc(n ? n : 1, size);
}

static ss_status engine_alloc(engine *e, ss_err *err)
{
    const size_t n = (size_t)e->p->nops;
    const size_t units = (size_t)e->r->ncores * SIM_UNIT_COUNT;
    e->partner = array(n, sizeof *e->partner);
    e->indeg = array(n, sizeof *e->indeg);
    e->unit_next = array(n, sizeof *e->unit_next);
    e->succ_start = array(n + 1, sizeof *e->succ_start);
    e->succ = array(e->p->ndeps, sizeof *e->succ);
    e->heap = array(n, sizeof *e->heap);
    e->batch = array(n, sizeof *e->batch);
    e->key = array(n, sizeof *e->key);
    e->port_free = array((size_t)e->r->nlinks, sizeof *e->port_free);
    e->start = array(n, sizeof *e->start);
    e->end = array(n, sizeof *e->end);
    e->arrival = array(n, sizeof *e->arrival);
    e->unit_free = array(units, sizeof *e->unit_free);
    e->route = array((size_t)sim_topo_diameter(e->cfg->topo), sizeof *e->route);
    e->posted = array((size_t)e->ix.ninst, sizeof *e->posted);
    if (e->partner && e->indeg && e->unit_next && e->succ_start && e->succ && e->heap &&
        e->batch && e->key && e->port_free && e->start && e->end && e->arrival &&
        e->unit_free && e->route && e->posted)
        return SS_OK;
    return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the analytic engine (%zu ops)", n);
}

/* Dependents in CSR form, the unit chains, and every op's count of predecessors. */
static void build_graph(engine *e)
{
    const sim_program *p = e->p;
    for (int32_t i = 0; i < p->nops; i++) {
        int32_t nd;
        const int32_t *d = sim_program_deps(p, i, &nd);
        for (int32_t k = 0; k < nd; k++)
            e->succ_start[d[k] + 1]++;
        e->indeg[i] = nd + (sim_program_op(p, i)->kind == SIM_OP_RECV);
        e->unit_next[i] = -1;
    }
    for (int32_t i = 0; i < p->nops; i++)
        e->succ_start[i + 1] += e->succ_start[i];
    uint32_t *fill = e->succ_start; /* fill positions: reuse, then shift back */
    for (int32_t i = 0; i < p->nops; i++) {
        int32_t nd;
        const int32_t *d = sim_program_deps(p, i, &nd);
        for (int32_t k = 0; k < nd; k++)
            e->succ[fill[d[k]]++] = i;
    }
    for (int32_t i = p->nops; i > 0; i--)
        fill[i] = fill[i - 1];
    fill[0] = 0;
    for (int32_t c = 0; c < p->ncores; c++) {
        int32_t n, last[SIM_UNIT_COUNT];
        const int32_t *ops = sim_program_core_ops(p, c, &n);
        for (int u = 0; u < SIM_UNIT_COUNT; u++)
            last[u] = -1;
        for (int32_t k = 0; k < n; k++) {
            const sim_unit u = sim_engine_op_unit((sim_op_kind)sim_program_op(p, ops[k])->kind);
            SS_ASSERT(u < SIM_UNIT_COUNT);
            if (u == SIM_UNIT_NET)
                continue; /* sends, recvs and collectives do not wait for each other */
            if (last[u] >= 0) {
                e->unit_next[last[u]] = ops[k];
                e->indeg[ops[k]]++;
            }
            last[u] = ops[k];
        }
    }
}

/* (key, id) order of the ready heap. */
static int before(const engine *e, int32_t a, int32_t b)
{
    return e->key[a] < e->key[b] || (e->key[a] == e->key[b] && a < b);
}

static void heap_push(engine *e, int32_t op)
{
    size_t i = e->nheap++;
    for (; i > 0 && before(e, op, e->heap[(i - 1) / 2]); i = (i - 1) / 2)
        e->heap[i] = e->heap[(i - 1) / 2];
    e->heap[i] = op;
}

static int32_t heap_pop(engine *e)
{
    const int32_t top = e->heap[0], last = e->heap[--e->nheap];
    size_t i = 0;
    for (size_t c; (c = 2 * i + 1) < e->nheap; i = c) {
        if (c + 1 < e->nheap && before(e, e->heap[c + 1], e->heap[c]))
            c++;
        if (!before(e, e->heap[c], last))
            break;
        e->heap[i] = e->heap[c];
    }
    e->heap[i] = last;
    return top;
}

/* Op id's predecessors are all evaluated: fixes its start (dependencies, and for matmul,
 * vector and hbm its unit) and its key, and queues it. */
static void make_ready(engine *e, int32_t id)
{
    const sim_prog_op *op = sim_program_op(e->p, id);
    const sim_unit u = sim_engine_op_unit((sim_op_kind)op->kind);
    int32_t nd;
    const int32_t *d = sim_program_deps(e->p, id, &nd);
    double start = u == SIM_UNIT_NET ? 0 : e->unit_free[(size_t)op->core * SIM_UNIT_COUNT + u];
    for (int32_t k = 0; k < nd; k++)
        start = e->end[d[k]] > start ? e->end[d[k]] : start;
    e->start[id] = start;
    e->key[id] = op->kind == SIM_OP_RECV && e->arrival[id] > start ? e->arrival[id] : start;
    heap_push(e, id);
}

static void release(engine *e, int32_t op)
{
    SS_ASSERT(e->indeg[op] > 0);
    if (--e->indeg[op] == 0)
        make_ready(e, op);
}

/* Whether op id is a send to another chip (it needs its chip's port). */
static int crosses_chips(const engine *e, int32_t id)
{
    const sim_prog_op *op = sim_program_op(e->p, id);
    const sim_topo *t = e->cfg->topo;
    return op->kind == SIM_OP_SEND &&
           sim_topo_core_chip(t, op->core) != sim_topo_core_chip(t, op->xfer.peer);
}

/* Prices the send's message: it is injected once its first link has injected the sends queued
 * before it (port FIFO), and flows contention-free from there: link statistics, busy windows,
 * the recv's arrival; *end = when its last packet has left the chip. */
static ss_status price_send(engine *e, int32_t id, double start, double *end, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(e->p, id);
    const sim_topo *t = e->cfg->topo;
    const int src = sim_topo_core_chip(t, op->core), dst = sim_topo_core_chip(t, op->xfer.peer);
    const int hops = sim_topo_route(t, src, dst, e->route, sim_topo_diameter(t));
    sim_msg m;
    sim_msg_init(&m, e->cfg->chip, op->xfer.bytes, e->cfg->packet_bytes);
    sim_result_add_message(e->r, e->route, hops, &m);
    double inject = start;
    if (hops > 0) {
        double *port = &e->port_free[e->route[0]];
        inject = *port > start ? *port : start;
        *port = inject + m.ser_s;
    }
    e->arrival[e->partner[id]] = inject + sim_msg_latency_s(&m, hops);
    *end = hops > 0 ? inject + m.ser_s : start;
    for (int k = 0; e->cfg->record_links && m.ser_s > 0 && k < hops; k++) {
        const double s = inject + sim_msg_link_start_s(&m, k);
        ss_status st = sim_result_add_interval(e->r, e->route[k], s, s + m.ser_s, err);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

/* Op id ends at end: records it and releases its successors. */
static void finish_op(engine *e, int32_t id, double end)
{
    e->end[id] = end;
    e->done++;
    if (end > e->r->makespan_s)
        e->r->makespan_s = end;
    for (uint32_t k = e->succ_start[id]; k < e->succ_start[id + 1]; k++)
        release(e, e->succ[k]);
    if (e->unit_next[id] >= 0)
        release(e, e->unit_next[id]);
    if (sim_program_op(e->p, id)->kind == SIM_OP_SEND)
        release(e, e->partner[id]);
}

/* A member of a priced collective is posted: once the last member is, the instance begins at
 * the latest start of its members (the last one's: keys never decrease) and every member
 * ends the price's duration later (engine.h). */
static ss_status post_collective(engine *e, int32_t id, ss_err *err)
{
    const int32_t inst = e->ix.inst_of[id];
    const uint32_t first = e->ix.op_start[inst], n = e->ix.op_start[inst + 1] - first;
    if ((uint32_t)++e->posted[inst] < n)
        return SS_OK;
    double t0 = 0;
    for (uint32_t k = 0; k < n; k++)
        t0 = e->start[e->ix.ops[first + k]] > t0 ? e->start[e->ix.ops[first + k]] : t0;
    const sim_coll_price *pr = sim_coll_index_price(&e->ix, e->prices, inst);
    ss_status st = sim_result_add_collective(e->r, e->cfg, pr, e->prices->origin_of[e->ix.id[inst]],
                                             t0, err);
    for (uint32_t k = 0; st == SS_OK && k < n; k++)
        finish_op(e, e->ix.ops[first + k], t0 + pr->seconds);
    return st;
}

/* Times op id (all its predecessors are evaluated) and releases its successors. */
static ss_status evaluate(engine *e, int32_t id, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(e->p, id);
    if (op->kind == SIM_OP_COLLECTIVE)
        return post_collective(e, id, err);
    const sim_unit u = sim_engine_op_unit((sim_op_kind)op->kind);
    const double start = e->start[id];
    double end = e->key[id], dur = 0; /* a recv: max(start, arrival) */
    ss_status st = SS_OK;
    if (op->kind == SIM_OP_SEND)
        st = price_send(e, id, start, &end, err);
    else if (op->kind != SIM_OP_RECV)
        st = sim_engine_op_seconds(e->p, id, e->cfg->chip, &dur, err);
    if (st != SS_OK)
        return st;
    if (u != SIM_UNIT_NET) { /* the network's busy time is a union, see net_busy */
        end = start + dur;
        e->r->unit_busy_s[(size_t)op->core * SIM_UNIT_COUNT + u] += dur;
        e->unit_free[(size_t)op->core * SIM_UNIT_COUNT + u] = end;
    }
    finish_op(e, id, end);
    return SS_OK;
}

static ss_status report_deadlock(const engine *e, ss_err *err)
{
    int32_t id = 0; /* a waiting collective member has indeg 0: some op it waits for has not */
    while (id + 1 < e->p->nops && e->indeg[id] == 0)
        id++;
    const sim_prog_op *op = sim_program_op(e->p, id);
    return ss_err_set(err, SS_ERR_DATA,
                      "the program deadlocks: op %d (core %d, %s) can never start, because its "
                      "dependencies and send -> recv pairs form a cycle (e.g. two cores that "
                      "each send only after their recv from the other; sim_program_validate "
                      "rejects such programs)",
                      (int)id, (int)op->core, sim_op_kind_name((sim_op_kind)op->kind));
}

static int cmp_id(const void *a, const void *b)
{
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Prices the batch of sends issued at batch_t in op id order (the ports' FIFO tie rule). */
static ss_status flush_batch(engine *e, ss_err *err)
{
    qsort(e->batch, e->nbatch, sizeof *e->batch, cmp_id);
    const size_t n = e->nbatch;
    e->nbatch = 0;
    for (size_t i = 0; i < n; i++) {
        ss_status st = evaluate(e, e->batch[i], err);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

/* Evaluates ready ops in (key, id) order. Keys never decrease (an op's key is at least its
 * predecessors' ends, and an end at least its key), so sends reach their ports in issue order;
 * sends between chips issued at one instant are collected and priced together in id order,
 * so a send released at that instant after one with a higher id still goes first. */
static ss_status schedule(engine *e, ss_err *err)
{
    for (int32_t i = 0; i < e->p->nops; i++)
        if (e->indeg[i] == 0)
            make_ready(e, i);
    ss_status st = SS_OK;
    while (st == SS_OK && (e->nheap > 0 || e->nbatch > 0)) {
        if (e->nbatch > 0 && (e->nheap == 0 || e->key[e->heap[0]] > e->batch_t)) {
            st = flush_batch(e, err);
            continue;
        }
        const int32_t id = heap_pop(e);
        if (crosses_chips(e, id)) {
            e->batch_t = e->key[id];
            e->batch[e->nbatch++] = id;
        } else {
            st = evaluate(e, id, err);
        }
    }
    if (st != SS_OK)
        return st;
    return e->done == (size_t)e->p->nops ? SS_OK : report_deadlock(e, err);
}

/* Ascending by start, then end. */
static int cmp_window(const void *a, const void *b)
{
    const double *x = a, *y = b;
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* Length of the union of n windows {start, end} (sorted in place). */
static double union_length(double (*w)[2], size_t n)
{
    qsort(w, n, sizeof *w, cmp_window);
    double total = 0, open_start = 0, open_end = -1;
    for (size_t i = 0; i < n; i++) {
        if (w[i][0] > open_end) { /* disjoint from the open stretch: close it */
            total += open_end > open_start ? open_end - open_start : 0;
            open_start = w[i][0];
            open_end = w[i][1];
        } else if (w[i][1] > open_end) {
            open_end = w[i][1];
        }
    }
    return total + (open_end > open_start ? open_end - open_start : 0);
}

/* SIM_UNIT_NET busy time of every core: the union of its sends' and recvs' windows. */
static ss_status net_busy(engine *e, ss_err *err)
{
    const sim_program *p = e->p;
    int32_t most = 0, n;
    for (int32_t c = 0; c < p->ncores; c++) {
        sim_program_core_ops(p, c, &n);
        most = n > most ? n : most;
    }
    double(*w)[2] = array((size_t)most, sizeof *w);
    if (!w)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the network windows of %d ops",
                          (int)most);
    for (int32_t c = 0; c < p->ncores; c++) {
        const int32_t *ops = sim_program_core_ops(p, c, &n);
        size_t k = 0;
        for (int32_t i = 0; i < n; i++)
            if (sim_engine_op_unit((sim_op_kind)sim_program_op(p, ops[i])->kind) ==
                SIM_UNIT_NET) {
                w[k][0] = e->start[ops[i]];
                w[k++][1] = e->end[ops[i]];
            }
        e->r->unit_busy_s[(size_t)c * SIM_UNIT_COUNT + SIM_UNIT_NET] = union_length(w, k);
    }
    free(w);
    return SS_OK;
}

static void finish(engine *e)
{
    sim_result *r = e->r;
    for (int32_t l = 0; l < r->nlinks; l++)
        if (r->link_busy_s[l] > r->link_bound_s)
            r->link_bound_s = r->link_busy_s[l];
    if (r->op_start_s) {
        memcpy(r->op_start_s, e->start, (size_t)e->p->nops * sizeof *e->start);
        memcpy(r->op_end_s, e->end, (size_t)e->p->nops * sizeof *e->end);
    }
}

ss_status sim_analytic_engine_run(const sim_program *p, const sim_engine_cfg *cfg,
                                  const sim_coll_prices *prices, sim_result *out, ss_err *err)
{
    engine e = {.p = p, .cfg = cfg, .prices = prices, .r = out};
    ss_status st = sim_result_alloc(out, p->nops, sim_topo_ncores(cfg->topo),
                                    sim_topo_nlinks(cfg->topo), cfg->record_ops, err);
    if (st == SS_OK)
        st = sim_coll_index_build(&e.ix, p, prices, err);
    if (st == SS_OK)
        st = engine_alloc(&e, err);
    if (st == SS_OK)
        st = sim_program_pair_xfers(p, e.partner, err);
    if (st == SS_OK) {
        build_graph(&e);
        st = schedule(&e, err);
    }
    if (st == SS_OK)
        st = net_busy(&e, err);
    if (st == SS_OK)
        finish(&e);
    else
        sim_result_free(out);
    engine_free(&e);
    return st;
}
