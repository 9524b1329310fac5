/* This file implements the analytic timing engine (engine.h): a step program priced by list
 * scheduling, without events. Every op gets
 *   start = max(end of its dependencies, end of the previous op on its unit of its core)
 * and then
 *   matmul, vector, hbm   end = start + sim_engine_op_seconds (the op alone on its core);
 *   send                  end = start + bytes / link bandwidth (injecting every packet onto
 *                         the first link; 0 between two cores of one chip); its message's
 *                         last packet arrives at start + sim_msg_latency_s(hops);
 *   recv                  end = max(start, arrival of the matching send's last packet).
 * A recv holds its core's network unit from start to end (no other send or recv of that core
 * runs meanwhile), a send for its injection time. unit_busy_s adds end - start of every op:
 * the time the unit is occupied, which for a recv includes waiting for its message (as in
 * the SystemC engine). Links are contention-free: every message is priced as if
 * it were alone, so flows sharing a link overlap in time and the makespan does not model
 * contention. Instead every message adds its bytes, packets and serialisation time to every
 * link of its route, and link_bound_s = max over links of that busy time is a lower bound on
 * any schedule's makespan (a link serialises what it carries). link_peak_queue stays 0 (no
 * queues are modelled) and events is 0. With record_links each message contributes one
 * busy window per link of its route, [start + k * (latency + first packet), + bytes / bw).
 *
 * Order of evaluation: op ids are a topological order within a core, but a recv may precede
 * its send in id order, so ops are evaluated in a topological order (Kahn's algorithm, FIFO,
 * seeded in id order) of the graph of dependencies, send -> recv edges and unit edges (each op
 * after the previous op of its unit on its core). Each time is a max/sum of its predecessors'
 * times, so any topological order gives the same result; the FIFO makes the floating-point
 * summation order of the per-link and per-unit totals fixed as well. An op left unevaluated
 * means the program deadlocks because units run their ops in program order (e.g. every core
 * of an exchange posts its recv before its send on the one network unit); that is an error
 * naming the lowest such op. Cost: O(ops + deps + sum of hops) time, O(ops + deps) memory.
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
    sim_result *r;
    int32_t *partner;     /* send <-> recv, -1 otherwise */
    int32_t *indeg;       /* predecessors not evaluated yet */
    int32_t *unit_next;   /* next op on the same unit of the same core, -1 = none */
    uint32_t *succ_start; /* [nops + 1] CSR of dependents */
    int32_t *succ;        /* [ndeps] */
    int32_t *queue;       /* [nops] FIFO of ready ops */
    double *start, *end;  /* op times */
    double *arrival;      /* recv: when its message's last packet arrives */
    double *unit_free;    /* [ncores * SIM_UNIT_COUNT] end of the unit's last op so far */
    int *route;           /* [diameter] links of the current message */
    size_t qhead, qtail;
} engine;

static void engine_free(engine *e)
{
    free(e->partner);
    free(e->indeg);
    free(e->unit_next);
    free(e->succ_start);
    free(e->succ);
    free(e->queue);
    free(e->start);
    free(e->end);
    free(e->arrival);
    free(e->unit_free);
    free(e->route);
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
    e->queue = array(n, sizeof *e->queue);
    e->start = array(n, sizeof *e->start);
    e->end = array(n, sizeof *e->end);
    e->arrival = array(n, sizeof *e->arrival);
    e->unit_free = array(units, sizeof *e->unit_free);
    e->route = array((size_t)sim_topo_diameter(e->cfg->topo), sizeof *e->route);
    if (e->partner && e->indeg && e->unit_next && e->succ_start && e->succ && e->queue &&
        e->start && e->end && e->arrival && e->unit_free && e->route)
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
            SS_ASSERT(u < SIM_UNIT_COUNT); /* sim_engine_check rejected collectives */
            if (last[u] >= 0) {
                e->unit_next[last[u]] = ops[k];
                e->indeg[ops[k]]++;
            }
            last[u] = ops[k];
        }
    }
}

static void release(engine *e, int32_t op)
{
    SS_ASSERT(e->indeg[op] > 0);
    if (--e->indeg[op] == 0)
        e->queue[e->qtail++] = op;
}

/* Prices the send's message: link statistics, busy windows, the recv's arrival; returns
 * the send's duration (its injection time). */
static ss_status price_send(engine *e, int32_t id, double start, double *dur, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(e->p, id);
    const sim_topo *t = e->cfg->topo;
    const int src = sim_topo_core_chip(t, op->core), dst = sim_topo_core_chip(t, op->xfer.peer);
    const int hops = sim_topo_route(t, src, dst, e->route, sim_topo_diameter(t));
    sim_msg m;
    sim_msg_init(&m, e->cfg->chip, op->xfer.bytes, e->cfg->packet_bytes);
    sim_result_add_message(e->r, e->route, hops, &m);
    e->arrival[e->partner[id]] = start + sim_msg_latency_s(&m, hops);
    *dur = hops > 0 ? m.ser_s : 0;
    for (int k = 0; e->cfg->record_links && m.ser_s > 0 && k < hops; k++) {
        const double s = start + sim_msg_link_start_s(&m, k);
        ss_status st = sim_result_add_interval(e->r, e->route[k], s, s + m.ser_s, err);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

/* Times op id (all its predecessors are evaluated) and releases its successors. */
static ss_status evaluate(engine *e, int32_t id, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(e->p, id);
    const sim_unit u = sim_engine_op_unit((sim_op_kind)op->kind);
    double *unit_free = &e->unit_free[(size_t)op->core * SIM_UNIT_COUNT + u];
    int32_t nd;
    const int32_t *d = sim_program_deps(e->p, id, &nd);
    double start = *unit_free, end, dur = 0;
    for (int32_t k = 0; k < nd; k++)
        start = e->end[d[k]] > start ? e->end[d[k]] : start;
    ss_status st = SS_OK;
    if (op->kind == SIM_OP_SEND)
        st = price_send(e, id, start, &dur, err);
    else if (op->kind != SIM_OP_RECV)
        st = sim_engine_op_seconds(e->p, id, e->cfg->chip, &dur, err);
    if (st != SS_OK)
        return st;
    end = start + dur;
    if (op->kind == SIM_OP_RECV && e->arrival[id] > end)
        end = e->arrival[id];
    e->start[id] = start;
    e->end[id] = end;
    e->r->unit_busy_s[(size_t)op->core * SIM_UNIT_COUNT + u] += end - start;
    *unit_free = end;
    if (end > e->r->makespan_s)
        e->r->makespan_s = end;
    for (uint32_t k = e->succ_start[id]; k < e->succ_start[id + 1]; k++)
        release(e, e->succ[k]);
    if (e->unit_next[id] >= 0)
        release(e, e->unit_next[id]);
    if (op->kind == SIM_OP_SEND)
        release(e, e->partner[id]);
    return SS_OK;
}

static ss_status report_deadlock(const engine *e, ss_err *err)
{
    int32_t id = 0;
    while (e->indeg[id] == 0)
        id++;
    const sim_prog_op *op = sim_program_op(e->p, id);
    return ss_err_set(err, SS_ERR_DATA,
                      "the program deadlocks: op %d (core %d, %s) can never start, because each "
                      "unit of a core runs its ops in program order (e.g. a recv posted ahead of "
                      "the send its peer is waiting for, on the same network unit)",
                      (int)id, (int)op->core, sim_op_kind_name((sim_op_kind)op->kind));
}

static ss_status schedule(engine *e, ss_err *err)
{
    for (int32_t i = 0; i < e->p->nops; i++)
        if (e->indeg[i] == 0)
            e->queue[e->qtail++] = i;
    while (e->qhead < e->qtail) {
        ss_status st = evaluate(e, e->queue[e->qhead++], err);
        if (st != SS_OK)
            return st;
    }
    return e->qhead == (size_t)e->p->nops ? SS_OK : report_deadlock(e, err);
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
                                  sim_result *out, ss_err *err)
{
    engine e = {.p = p, .cfg = cfg, .r = out};
    ss_status st = sim_result_alloc(out, p->nops, sim_topo_ncores(cfg->topo),
                                    sim_topo_nlinks(cfg->topo), cfg->record_ops, err);
    if (st == SS_OK)
        st = engine_alloc(&e, err);
    if (st == SS_OK)
        st = sim_program_pair_xfers(p, e.partner, err);
    if (st == SS_OK) {
        build_graph(&e);
        st = schedule(&e, err);
    }
    if (st == SS_OK)
        finish(&e);
    else
        sim_result_free(out);
    engine_free(&e);
    return st;
}
