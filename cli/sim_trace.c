/* This file implements the Chrome trace of a timing-engine run shared by `switchsim sim` and
 * `switchsim estimate` (cli/sim_trace.h): one process per chip, one thread per unit of each of
 * its cores carrying the ops (named by label, or by kind), one thread per outgoing link
 * carrying its busy windows, and a load counter per link.
 *
 * Invariants: the run must have been recorded with record_ops (op times) and, for the link
 * tracks, record_links; windows that overlap on a link (contention-free flows of the analytic
 * engine) merge into one slice that counts its messages, so every track stays properly
 * nested. Moved here unchanged from cli/cmd_sim.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sim_trace.h"

/* Thread ids inside a chip's process: units of local core L at L * SIM_UNIT_COUNT + unit,
 * then its outgoing links at cores_per_chip * SIM_UNIT_COUNT + 2 * dim + dir. */
static int unit_tid(int local, int unit)
{
    return local * SIM_UNIT_COUNT + unit;
}

static int link_tid(const sim_topo *t, const sim_topo_link *l)
{
    return t->cores_per_chip * SIM_UNIT_COUNT + 2 * l->dim + (int)l->dir;
}

static void trace_names(chrome_trace *tr, const sim_topo *t)
{
    char name[SIM_TOPO_NAME_MAX + 32];
    for (int chip = 0; chip < sim_topo_nchips(t); chip++) {
        int xyz[SIM_TOPO_MAX_DIMS];
        sim_topo_coords(t, chip, xyz);
        snprintf(name, sizeof name, "chip %d (%d,%d,%d)", chip, xyz[0], xyz[1], xyz[2]);
        chrome_trace_process_name(tr, chip, name);
        for (int local = 0; local < t->cores_per_chip; local++)
            for (int u = 0; u < SIM_UNIT_COUNT; u++) {
                snprintf(name, sizeof name, "core %d %s", sim_topo_core_id(t, chip, local),
                         sim_unit_name((sim_unit)u));
                chrome_trace_thread_name(tr, chip, unit_tid(local, u), name);
            }
    }
    for (int l = 0; l < sim_topo_nlinks(t); l++) {
        const sim_topo_link link = sim_topo_link_get(t, l);
        char lname[SIM_TOPO_NAME_MAX];
        sim_topo_link_name(t, l, lname, sizeof lname);
        snprintf(name, sizeof name, "link %s", lname);
        chrome_trace_thread_name(tr, link.src_chip, link_tid(t, &link), name);
    }
}

static void trace_op(chrome_trace *tr, const sim_topo *topo, const sim_program *prog,
                     const sim_result *res, int32_t id)
{
    const sim_prog_op *op = sim_program_op(prog, id);
    const sim_op_kind kind = (sim_op_kind)op->kind;
    const char *label = sim_program_string(prog, op->label);
    chrome_trace_arg args[3] = {{"op", NULL, id}, {"core", NULL, op->core}, {NULL, NULL, 0}};
    int nargs = 2;
    if (kind == SIM_OP_SEND || kind == SIM_OP_RECV) {
        args[2] = (chrome_trace_arg){"bytes", NULL, (double)op->xfer.bytes};
        nargs = 3;
    }
    const double start = res->op_start_s[id];
    chrome_trace_complete(tr, label[0] ? label : sim_op_kind_name(kind), sim_op_kind_name(kind),
                          sim_topo_core_chip(topo, op->core),
                          unit_tid(sim_topo_core_local(topo, op->core),
                                   sim_engine_op_unit(kind)),
                          start, res->op_end_s[id] - start, args, nargs);
}

/* Orders link intervals by link, then by start (or end), then by end (or start). */
static int cmp_by_start(const void *a, const void *b)
{
    const sim_link_interval *x = a, *y = b;
    if (x->link != y->link)
        return x->link < y->link ? -1 : 1;
    if (x->start_s != y->start_s)
        return x->start_s < y->start_s ? -1 : 1;
    return (x->end_s > y->end_s) - (x->end_s < y->end_s);
}

static int cmp_by_end(const void *a, const void *b)
{
    const sim_link_interval *x = a, *y = b;
    if (x->link != y->link)
        return x->link < y->link ? -1 : 1;
    if (x->end_s != y->end_s)
        return x->end_s < y->end_s ? -1 : 1;
    return (x->start_s > y->start_s) - (x->start_s < y->start_s);
}

/* One link's windows (sorted by start): overlapping ones merge into one "busy" slice that
 * counts its messages, so the link's track stays properly nested. */
static void trace_link_slices(chrome_trace *tr, const sim_topo *t, const sim_link_interval *iv,
                              size_t n)
{
    const sim_topo_link link = sim_topo_link_get(t, iv[0].link);
    size_t i = 0;
    while (i < n) {
        double end = iv[i].end_s;
        size_t j = i + 1;
        for (; j < n && iv[j].start_s < end; j++)
            end = fmax(end, iv[j].end_s);
        const chrome_trace_arg arg = {"messages", NULL, (double)(j - i)};
        chrome_trace_complete(tr, "busy", "link", link.src_chip, link_tid(t, &link),
                              iv[i].start_s, end - iv[i].start_s, &arg, 1);
        i = j;
    }
}

/* One link's load (windows open at once) as a counter: above 1 where flows overlap, which
 * the analytic engine allows (contention-free) and a FIFO link does not. */
static void trace_link_load(chrome_trace *tr, const sim_topo *t, const sim_link_interval *by_start,
                            const sim_link_interval *by_end, size_t n)
{
    const sim_topo_link link = sim_topo_link_get(t, by_start[0].link);
    char lname[SIM_TOPO_NAME_MAX], name[SIM_TOPO_NAME_MAX + 16];
    sim_topo_link_name(t, by_start[0].link, lname, sizeof lname);
    snprintf(name, sizeof name, "load %s", lname);
    size_t i = 0, j = 0;
    long load = 0;
    while (j < n) { /* at equal times ends go first, so back-to-back windows read 1, not 2 */
        const double now = i < n && by_start[i].start_s < by_end[j].end_s ? by_start[i].start_s
                                                                           : by_end[j].end_s;
        while (j < n && by_end[j].end_s == now)
            load--, j++;
        while (i < n && by_start[i].start_s == now)
            load++, i++;
        const chrome_trace_arg arg = {"windows", NULL, (double)load};
        chrome_trace_counter(tr, name, link.src_chip, now, &arg, 1);
    }
}

/* The links' busy windows: merged slices and a load counter per link. */
static int trace_links(chrome_trace *tr, const sim_topo *topo, const sim_result *res)
{
    const size_t n = res->nlink_intervals;
    sim_link_interval *s = malloc((n + 1) * sizeof *s), *e = malloc((n + 1) * sizeof *e);
    if (!s || !e) {
        free(s);
        free(e);
        return -1;
    }
    if (n) {
        memcpy(s, res->link_intervals, n * sizeof *s);
        memcpy(e, res->link_intervals, n * sizeof *e);
    }
    qsort(s, n, sizeof *s, cmp_by_start);
    qsort(e, n, sizeof *e, cmp_by_end);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && s[j].link == s[i].link;)
            j++;
        trace_link_slices(tr, topo, s + i, j - i);
        trace_link_load(tr, topo, s + i, e + i, j - i);
    }
    free(s);
    free(e);
    return 0;
}

int cli_trace_write(chrome_trace *tr, const sim_topo *topo, const sim_program *prog,
                    const sim_result *res, const char *who)
{
    ss_err err = {0};
    trace_names(tr, topo);
    for (int32_t i = 0; i < prog->nops; i++)
        trace_op(tr, topo, prog, res, i);
    if (trace_links(tr, topo, res) != 0) {
        chrome_trace_abort(tr);
        cli_error(who, "out of memory writing the trace");
        return -1;
    }
    if (chrome_trace_close(tr, &err) != SS_OK) {
        cli_error(who, "%s", err.msg);
        return -1;
    }
    return 0;
}
