/* This file implements the entry point shared by switchsim's timing engines (engine.h): the
 * dispatch to the analytic or the SystemC engine, the checks both engines need, and the
 * helpers both use so that they price ops, pair transfers, cut messages into packets and
 * count link statistics identically.
 *
 * Message arithmetic (see engine.h for the link model): a message of B bytes is
 * P = max(1, ceil(B / packet_bytes)) packets; bandwidth b = link_gbps * 1e9 B/s, latency
 * L = link_latency_ns * 1e-9 s. Uncontended, packet j (size s_j, serialisation t_j = s_j / b)
 * enters link k of the route when it has fully arrived over link k-1 and link k is free, so
 * with full packets of time t the pipeline gives: link k (0-based) is busy from
 * k * (L + t_0) for B / b (a short last packet waits behind its predecessor at every hop, so
 * the window has no gap), and the last packet arrives after h hops at
 * h * (L + t_0) + (B - s_0) / b.
 *
 * Invariants: every helper is a pure function of its arguments (no global state); transfers
 * pair exactly as sim_program_validate pairs them, so a validated program always pairs.
 */
#include "sim/engine.h"

#include <stdlib.h>
#include <string.h>

#include "switchsim_config.h"
#if SWITCHSIM_HAVE_SYSTEMC
#include "sim/sc/engine_sc.h"
#endif

static const char *const engine_names[] = {"analytic", "systemc"}; /* sim_engine_kind order */
static const char *const unit_names[] = {"mxu", "vector", "dma", "net"}; /* sim_unit order */

const char *sim_engine_name(sim_engine_kind kind)
{
    SS_ASSERT(kind == SIM_ENGINE_ANALYTIC || kind == SIM_ENGINE_SYSTEMC);
    return engine_names[kind];
}

int sim_engine_parse(const char *s, sim_engine_kind *out)
{
    for (int i = 0; i < (int)(sizeof engine_names / sizeof engine_names[0]); i++)
        if (strcmp(s, engine_names[i]) == 0) {
            *out = (sim_engine_kind)i;
            return 0;
        }
    return -1;
}

const char *sim_unit_name(sim_unit u)
{
    SS_ASSERT(u >= 0 && u < SIM_UNIT_COUNT);
    return unit_names[u];
}

/* ---- dispatch ----------------------------------------------------------------------- */

ss_status sim_engine_run(sim_engine_kind kind, const sim_program *p, const sim_engine_cfg *cfg,
                         sim_result *out, ss_err *err)
{
    return sim_engine_run_priced(kind, p, cfg, NULL, out, err);
}

ss_status sim_engine_run_priced(sim_engine_kind kind, const sim_program *p,
                                const sim_engine_cfg *cfg, const sim_coll_prices *prices,
                                sim_result *out, ss_err *err)
{
    memset(out, 0, sizeof *out);
    ss_status st = sim_engine_check(p, cfg, prices, err);
    if (st != SS_OK)
        return st;
    switch (kind) {
    case SIM_ENGINE_ANALYTIC: return sim_analytic_engine_run(p, cfg, prices, out, err);
    case SIM_ENGINE_SYSTEMC:
#if SWITCHSIM_HAVE_SYSTEMC
        return sim_sc_engine_run(p, cfg, prices, out, err);
#else
        return ss_err_set(err, SS_ERR_USAGE,
                          "this switchsim was built without SystemC, so the systemc engine is "
                          "not available (use --engine analytic, or rebuild with "
                          "libsystemc-dev installed and -Dsystemc=enabled)");
#endif
    }
    return ss_err_set(err, SS_ERR_USAGE, "unknown engine %d", (int)kind);
}

ss_status sim_engine_check(const sim_program *p, const sim_engine_cfg *cfg,
                           const sim_coll_prices *prices, ss_err *err)
{
    if (!cfg || !cfg->chip || !cfg->topo)
        return ss_err_set(err, SS_ERR_USAGE, "engine configuration needs a chip and a topology");
    if (cfg->chip->cores_per_chip != cfg->topo->cores_per_chip)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "chip %s has %d cores per chip but the topology has %d",
                          cfg->chip->name, cfg->chip->cores_per_chip, cfg->topo->cores_per_chip);
    if (cfg->packet_bytes < 1)
        return ss_err_set(err, SS_ERR_RANGE, "packet_bytes must be at least 1, got 0");
    ss_status st = sim_program_status(p, err);
    if (st != SS_OK)
        return st;
    const int pod_cores = sim_topo_ncores(cfg->topo);
    if (p->ncores > pod_cores)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "the program has %d cores but the pod has only %d (%d chips x %d "
                          "cores per chip)",
                          (int)p->ncores, pod_cores, sim_topo_nchips(cfg->topo),
                          cfg->topo->cores_per_chip);
    for (int32_t i = 0; i < p->nops; i++) {
        const sim_prog_op *op = sim_program_op(p, i);
        if (op->kind != SIM_OP_COLLECTIVE)
            continue;
        if (!prices)
            return ss_err_set(err, SS_ERR_USAGE,
                              "op %d (core %d) is a collective: engines price send/recv only; "
                              "lower collective ops with the collectives module first "
                              "(coll_program_lower, as switchsim sim does), or give their "
                              "prices (sim_engine_run_priced)",
                              (int)i, (int)op->core);
        const sim_coll_prices *t = prices;
        if (op->coll.id >= t->nids || t->price_of[op->coll.id] < 0 ||
            t->price_of[op->coll.id] >= t->nprices)
            return ss_err_set(err, SS_ERR_USAGE,
                              "op %d (core %d): collective %d has no price in the table (%d "
                              "ids, %d prices)",
                              (int)i, (int)op->core, (int)op->coll.id, (int)t->nids,
                              (int)t->nprices);
    }
    return SS_OK;
}

/* ---- ops ---------------------------------------------------------------------------- */

sim_unit sim_engine_op_unit(sim_op_kind kind)
{
    switch (kind) {
    case SIM_OP_MATMUL: return SIM_UNIT_MXU;
    case SIM_OP_VECTOR: return SIM_UNIT_VECTOR;
    case SIM_OP_HBM: return SIM_UNIT_DMA;
    case SIM_OP_SEND:
    case SIM_OP_RECV:
    case SIM_OP_COLLECTIVE: return SIM_UNIT_NET;
    default: return SIM_UNIT_COUNT;
    }
}

ss_status sim_engine_op_seconds(const sim_program *p, int32_t id, const sim_chip *chip,
                                double *seconds, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(p, id);
    ss_status st = SS_OK;
    switch (op->kind) {
    case SIM_OP_MATMUL: {
        sim_matmul_op mm = sim_matmul_op_default(op->matmul.m, op->matmul.k, op->matmul.n);
        mm.operands = op->matmul.dtype;
        sim_matmul_timing t;
        st = sim_matmul_time(&t, chip, &mm, err);
        if (st == SS_OK)
            *seconds = t.seconds;
        break;
    }
    case SIM_OP_VECTOR: {
        const sim_vector_op v = {op->vector.kind, op->vector.elements, op->vector.row_len,
                                 op->vector.dtype};
        sim_vector_timing t;
        st = sim_vector_time(&t, chip, &v, err);
        if (st == SS_OK)
            *seconds = t.seconds;
        break;
    }
    case SIM_OP_HBM:
        *seconds = ((double)op->hbm.read_bytes + (double)op->hbm.write_bytes) /
                   sim_timing_core_hbm_bytes_per_s(chip);
        break;
    default: SS_ASSERT(!"sim_engine_op_seconds: matmul, vector or hbm op");
    }
    if (st != SS_OK)
        ss_err_prefix(err, "op %d (core %d, %s)", (int)id, (int)op->core,
                      sim_op_kind_name((sim_op_kind)op->kind));
    return st;
}

/* ---- messages ----------------------------------------------------------------------- */

void sim_msg_init(sim_msg *m, const sim_chip *chip, uint64_t bytes, uint32_t packet_bytes)
{
    SS_ASSERT(packet_bytes >= 1 && chip->link_gbps > 0);
    m->bytes = bytes;
    m->packet_bytes = packet_bytes;
    m->packets = bytes == 0 ? 1 : (bytes - 1) / packet_bytes + 1;
    m->bytes_per_s = chip->link_gbps * 1e9;
    m->latency_s = chip->link_latency_ns * 1e-9;
    m->ser_s = (double)bytes / m->bytes_per_s;
    m->first_ser_s = (double)sim_msg_packet_bytes(m, 0) / m->bytes_per_s;
}

uint64_t sim_msg_packet_bytes(const sim_msg *m, uint64_t i)
{
    SS_ASSERT(i < m->packets);
    const uint64_t before = i * m->packet_bytes;
    const uint64_t left = m->bytes - before;
    return left < m->packet_bytes ? left : m->packet_bytes;
}

double sim_msg_latency_s(const sim_msg *m, int hops)
{
    if (hops == 0)
        return 0;
    const uint64_t rest = m->bytes - sim_msg_packet_bytes(m, 0);
    return hops * (m->latency_s + m->first_ser_s) + (double)rest / m->bytes_per_s;
}

double sim_msg_link_start_s(const sim_msg *m, int k)
{
    return k * (m->latency_s + m->first_ser_s);
}

/* ---- results ------------------------------------------------------------------------ */

/* calloc of n elements of size, or NULL; n == 0 allocates one element so NULL means failure. */
static void *zeroed(size_t n, size_t size)
{
    return calloc(n ? n : 1, size);
}

ss_status sim_result_alloc(sim_result *r, int32_t nops, int32_t ncores, int32_t nlinks,
                           int record_ops, ss_err *err)
{
    SS_ASSERT(nops >= 0 && ncores >= 0 && nlinks >= 0);
    memset(r, 0, sizeof *r);
    r->nops = nops;
    r->ncores = ncores;
    r->nlinks = nlinks;
    r->unit_busy_s = zeroed((size_t)ncores * SIM_UNIT_COUNT, sizeof *r->unit_busy_s);
    r->link_bytes = zeroed((size_t)nlinks, sizeof *r->link_bytes);
    r->link_packets = zeroed((size_t)nlinks, sizeof *r->link_packets);
    r->link_busy_s = zeroed((size_t)nlinks, sizeof *r->link_busy_s);
    r->link_peak_queue = zeroed((size_t)nlinks, sizeof *r->link_peak_queue);
    int ok = r->unit_busy_s && r->link_bytes && r->link_packets && r->link_busy_s &&
             r->link_peak_queue;
    if (record_ops) {
        r->op_start_s = zeroed((size_t)nops, sizeof *r->op_start_s);
        r->op_end_s = zeroed((size_t)nops, sizeof *r->op_end_s);
        ok = ok && r->op_start_s && r->op_end_s;
    }
    if (!ok) {
        sim_result_free(r);
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the results of %d ops, %d cores "
                          "and %d links", (int)nops, (int)ncores, (int)nlinks);
    }
    return SS_OK;
}

void sim_result_add_message(sim_result *r, const int *route, int hops, const sim_msg *m)
{
    for (int k = 0; k < hops; k++) {
        SS_ASSERT(route[k] >= 0 && route[k] < r->nlinks);
        r->link_bytes[route[k]] += m->bytes;
        r->link_packets[route[k]] += m->packets;
        r->link_busy_s[route[k]] += m->ser_s;
    }
}

ss_status sim_result_add_interval(sim_result *r, int32_t link, double start_s, double end_s,
                                  ss_err *err)
{
    SS_ASSERT(link >= 0 && link < r->nlinks && end_s >= start_s);
    if (r->nlink_intervals == r->link_intervals_cap) {
        size_t cap = r->link_intervals_cap ? 2 * r->link_intervals_cap : 256, bytes;
        if (ss_mul_size(cap, sizeof *r->link_intervals, &bytes) != 0)
            return ss_err_set(err, SS_ERR_NOMEM, "too many link intervals");
        sim_link_interval *grown = realloc(r->link_intervals, bytes);
        if (!grown)
            return ss_err_set(err, SS_ERR_NOMEM, "out of memory for %zu link intervals", cap);
        r->link_intervals = grown;
        r->link_intervals_cap = cap;
    }
    r->link_intervals[r->nlink_intervals++] = (sim_link_interval){link, start_s, end_s};
    return SS_OK;
}

void sim_result_free(sim_result *r)
{
    if (!r)
        return;
    free(r->op_start_s);
    free(r->op_end_s);
    free(r->unit_busy_s);
    free(r->link_bytes);
    free(r->link_packets);
    free(r->link_busy_s);
    free(r->link_peak_queue);
    free(r->link_intervals);
    memset(r, 0, sizeof *r);
}

/* ---- priced collectives ------------------------------------------------------------- */

void sim_coll_index_free(sim_coll_index *ix)
{
    free(ix->inst_of);
    free(ix->op_start);
    free(ix->ops);
    free(ix->id);
    memset(ix, 0, sizeof *ix);
}

/* Instance index of every collective op: ids in ascending order, dense. */
static ss_status number_instances(sim_coll_index *ix, const sim_program *p,
                                  const sim_coll_prices *t, ss_err *err)
{
    int32_t *slot = malloc(((size_t)t->nids + 1) * sizeof *slot);
    if (!slot)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory indexing %d collectives",
                          (int)t->nids);
    for (int32_t k = 0; k < t->nids; k++)
        slot[k] = -1;
    for (int32_t i = 0; i < p->nops; i++) {
        const sim_prog_op *op = sim_program_op(p, i);
        if (op->kind == SIM_OP_COLLECTIVE)
            slot[op->coll.id] = 0;
    }
    for (int32_t k = 0; k < t->nids; k++)
        if (slot[k] == 0) {
            ix->id[ix->ninst] = k;
            slot[k] = ix->ninst++;
        }
    for (int32_t i = 0; i < p->nops; i++) {
        const sim_prog_op *op = sim_program_op(p, i);
        ix->inst_of[i] = op->kind == SIM_OP_COLLECTIVE ? slot[op->coll.id] : -1;
    }
    free(slot);
    return SS_OK;
}

/* Member ops of every instance (CSR); each instance must have one op per group member. */
static ss_status list_members(sim_coll_index *ix, const sim_program *p, ss_err *err)
{
    for (int32_t i = 0; i < p->nops; i++)
        if (ix->inst_of[i] >= 0)
            ix->op_start[ix->inst_of[i] + 1]++;
    for (int32_t k = 0; k < ix->ninst; k++)
        ix->op_start[k + 1] += ix->op_start[k];
    uint32_t *fill = malloc(((size_t)ix->ninst + 1) * sizeof *fill);
    if (!fill)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory indexing collectives");
    memcpy(fill, ix->op_start, (size_t)ix->ninst * sizeof *fill);
    for (int32_t i = 0; i < p->nops; i++)
        if (ix->inst_of[i] >= 0)
            ix->ops[fill[ix->inst_of[i]]++] = i;
    free(fill);
    for (int32_t k = 0; k < ix->ninst; k++) {
        const int32_t first = ix->ops[ix->op_start[k]];
        int32_t n = 0;
        sim_program_group(p, sim_program_op(p, first)->coll.group, &n);
        const uint32_t have = ix->op_start[k + 1] - ix->op_start[k];
        if (have != (uint32_t)n)
            return ss_err_set(err, SS_ERR_DATA,
                              "collective %d has %u ops but its group has %d members (op %d, "
                              "core %d): a priced collective needs one op on every member",
                              (int)ix->id[k], have, (int)n, (int)first,
                              (int)sim_program_op(p, first)->core);
    }
    return SS_OK;
}

ss_status sim_coll_index_build(sim_coll_index *ix, const sim_program *p,
                               const sim_coll_prices *t, ss_err *err)
{
    memset(ix, 0, sizeof *ix);
    if (!t)
        return SS_OK;
    ix->inst_of = zeroed((size_t)p->nops, sizeof *ix->inst_of);
    ix->id = zeroed((size_t)t->nids, sizeof *ix->id);
    ix->op_start = zeroed((size_t)t->nids + 1, sizeof *ix->op_start);
    ix->ops = zeroed((size_t)p->nops, sizeof *ix->ops);
    ss_status st = ix->inst_of && ix->id && ix->op_start && ix->ops
                       ? number_instances(ix, p, t, err)
                       : ss_err_set(err, SS_ERR_NOMEM, "out of memory indexing collectives");
    if (st == SS_OK)
        st = list_members(ix, p, err);
    if (st != SS_OK)
        sim_coll_index_free(ix);
    return st;
}

const sim_coll_price *sim_coll_index_price(const sim_coll_index *ix,
                                           const sim_coll_prices *t, int32_t inst)
{
    SS_ASSERT(inst >= 0 && inst < ix->ninst);
    return &t->prices[t->price_of[ix->id[inst]]];
}

/* The link of topo that link plays in a copy of the measured group moved by delta chip
 * coordinates (wrapping around; the caller only moves along wrapped dimensions). */
static int32_t moved_link(const sim_topo *topo, int32_t link, const int delta[SIM_TOPO_MAX_DIMS])
{
    const sim_topo_link l = sim_topo_link_get(topo, link);
    int c[SIM_TOPO_MAX_DIMS];
    sim_topo_coords(topo, l.src_chip, c);
    for (int d = 0; d < SIM_TOPO_MAX_DIMS; d++)
        c[d] = (c[d] + delta[d]) % topo->dims[d];
    const int32_t moved = sim_topo_link_id(topo, sim_topo_chip(topo, c), l.dim, l.dir);
    SS_ASSERT(moved >= 0);
    return moved;
}

ss_status sim_result_add_collective(sim_result *r, const sim_engine_cfg *cfg,
                                    const sim_coll_price *pr, int32_t origin_chip, double t0,
                                    ss_err *err)
{
    const sim_topo *topo = cfg->topo;
    int from[SIM_TOPO_MAX_DIMS], to[SIM_TOPO_MAX_DIMS], delta[SIM_TOPO_MAX_DIMS], moved = 0;
    sim_topo_coords(topo, pr->origin_chip, from);
    sim_topo_coords(topo, origin_chip, to);
    for (int d = 0; d < SIM_TOPO_MAX_DIMS; d++) {
        delta[d] = ((to[d] - from[d]) % topo->dims[d] + topo->dims[d]) % topo->dims[d];
        moved |= delta[d] != 0;
    }
    for (int32_t k = 0; k < pr->nlinks; k++) {
        const sim_coll_link_load *l = &pr->links[k];
        const int32_t link = moved ? moved_link(topo, l->link, delta) : l->link;
        SS_ASSERT(link >= 0 && link < r->nlinks);
        r->link_bytes[link] += l->bytes;
        r->link_packets[link] += l->packets;
        r->link_busy_s[link] += l->busy_s;
        if (l->peak_queue > r->link_peak_queue[link])
            r->link_peak_queue[link] = l->peak_queue;
    }
    for (size_t k = 0; cfg->record_links && k < pr->nintervals; k++) {
        const sim_link_interval *w = &pr->intervals[k];
        const int32_t link = moved ? moved_link(topo, w->link, delta) : w->link;
        ss_status st = sim_result_add_interval(r, link, t0 + w->start_s, t0 + w->end_s, err);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}
