/* This file implements the Chrome trace of a timing-engine run shared by `switchsim sim` and
 * `switchsim estimate` (cli/sim_trace.h): per chip a process, per core the unit threads and
 * the network lanes, per link its merged busy windows and a binned utilisation counter, and
 * flow arrows from the messages of a Switch layer's dispatch to the expert matmul they feed;
 * plus the parser of --trace-chips / --trace-layers.
 *
 * Invariants: the run must have been recorded with record_ops (op times) and, for the link
 * tracks, record_links. Thread ids inside a chip's process: unit u of local core L at
 * L * SIM_UNIT_COUNT + u (lane 0 of the network is the unit SIM_UNIT_NET), the outgoing links
 * at cores_per_chip * SIM_UNIT_COUNT + 2 * dim + dir, extra network lanes k >= 1 at
 * lane_base + L * LANES_MAX + k. Lanes: a core's network ops sorted by (start, end, id) go to
 * the lowest lane whose last op ended before their start (or at it, when neither op is
 * empty), so no two slices of a lane overlap (from LANES_MAX - 1 lanes on, the last lane is
 * shared). Thread sort indices keep each core's lanes next to its units and the links last.
 * Flows: id = the source op's id, so every "s" has exactly one "f" with the same name, cat
 * and id, and both are written only when both ops are in the selection; each end sits at the
 * middle of its op's slice.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sim_trace.h"

enum { LANES_MAX = 4096 };

static const char flow_name[] = "dispatch", flow_cat[] = "moe";

/* ---- selection ------------------------------------------------------------------------ */

void cli_trace_select_free(cli_trace_select *s)
{
    free(s->chips);
    free(s->layers);
    for (int i = 0; i < s->nprefixes; i++)
        free(s->prefixes[i]);
    free(s->prefixes);
    memset(s, 0, sizeof *s);
}

/* "N" or "N-M" (decimal, 0 <= N <= M <= INT32_MAX) into r; 0, or -1. */
static int parse_range(const char *item, int32_t r[2])
{
    char *end = NULL;
    errno = 0;
    const long lo = strtol(item, &end, 10);
    long hi = lo;
    if (end == item || !isdigit((unsigned char)item[0]))
        return -1;
    if (*end == '-') {
        const char *h = end + 1;
        if (!isdigit((unsigned char)*h))
            return -1;
        hi = strtol(h, &end, 10);
    }
    if (*end != '\0' || errno || lo < 0 || hi < lo || hi > INT32_MAX)
        return -1;
    r[0] = (int32_t)lo;
    r[1] = (int32_t)hi;
    return 0;
}

/* Appends one item of a list: a range, or (prefixes != NULL) a label prefix. */
static int add_item(cli_trace_select *s, const char *item, int layers)
{
    int32_t r[2];
    if (parse_range(item, r) == 0) {
        int32_t(**v)[2] = layers ? &s->layers : &s->chips;
        int *n = layers ? &s->nlayers : &s->nchips;
        int32_t(*g)[2] = realloc(*v, ((size_t)*n + 1) * sizeof *g);
        if (!g)
            return -1;
        g[*n][0] = r[0];
        g[(*n)++][1] = r[1];
        *v = g;
        return 0;
    }
    if (!layers || isdigit((unsigned char)item[0]))
        return -1;
    char **p = realloc(s->prefixes, ((size_t)s->nprefixes + 1) * sizeof *p);
    if (!p)
        return -1;
    s->prefixes = p;
    if (!(p[s->nprefixes] = strdup(item)))
        return -1;
    s->nprefixes++;
    return 0;
}

/* Splits a comma-separated list into items; 0, or -1 after a message. */
static int parse_list(cli_trace_select *s, const char *list, int layers, const char *who)
{
    const char *opt = layers ? "--trace-layers" : "--trace-chips";
    const char *p = list;
    char item[SIM_PROG_MAX_TEXT + 1];
    do {
        const size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof item) {
            cli_error(who, "%s: empty or overlong item in '%s'", opt, list);
            return -1;
        }
        memcpy(item, p, n);
        item[n] = '\0';
        if (add_item(s, item, layers) != 0) {
            cli_error(who, "%s: '%s' is not %s", opt, item,
                      layers ? "a layer index, a range N-M or a label prefix"
                             : "a chip index or a range N-M");
            return -1;
        }
        p += n;
    } while (*p++ == ',');
    return 0;
}

int cli_trace_select_parse(cli_trace_select *s, const cli_trace_opts *o, const char *trace_path,
                           const char *who)
{
    memset(s, 0, sizeof *s);
    s->bins = o->bins > 0 ? o->bins : CLI_TRACE_BINS_DEFAULT;
    if (!trace_path && (o->chips || o->layers || s->bins != CLI_TRACE_BINS_DEFAULT)) {
        cli_error(who, "--trace-chips, --trace-layers and --trace-bins need --trace FILE");
        return -1;
    }
    if ((o->chips && parse_list(s, o->chips, 0, who) != 0) ||
        (o->layers && parse_list(s, o->layers, 1, who) != 0)) {
        cli_trace_select_free(s);
        return -1;
    }
    s->by_layer = o->layers != NULL;
    return 0;
}

static int in_ranges(int32_t (*r)[2], int n, int32_t v)
{
    for (int i = 0; i < n; i++)
        if (v >= r[i][0] && v <= r[i][1])
            return 1;
    return 0;
}

int cli_trace_select_chip(const cli_trace_select *s, int chip)
{
    return !s || !s->chips || in_ranges(s->chips, s->nchips, chip);
}

int cli_trace_select_op(const cli_trace_select *s, int32_t layer, const char *label)
{
    if (!s || !s->by_layer)
        return 1;
    if (layer >= 0 && in_ranges(s->layers, s->nlayers, layer))
        return 1;
    for (int i = 0; i < s->nprefixes; i++) {
        const size_t n = strlen(s->prefixes[i]);
        if (strncmp(label, s->prefixes[i], n) == 0 && (label[n] == '\0' || label[n] == '.'))
            return 1;
    }
    return 0;
}

/* ---- the writer's state ------------------------------------------------------------------ */

/* A network op to place: its window and id (sorted by start, end, id). */
typedef struct {
    double start, end;
    int32_t id;
} net_op;

typedef struct {
    chrome_trace *tr;
    const sim_topo *topo;
    const sim_program *prog;
    const sim_result *res;
    const cli_trace_select *sel;
    int32_t *lane;    /* [nops] network lane of an emitted net op; -1: not emitted; -2: an
                         emitted op of an in-order unit */
    int32_t *partner; /* [nops] send <-> recv pairing (sim_program_pair_xfers) */
    int32_t *next;    /* [nops] the first matmul after each op on its core, or -1 */
    net_op *net;      /* [most ops of one core] scratch: one core's net ops */
    double *lane_end; /* [LANES_MAX] end of each lane's last op */
    uint8_t *lane_open; /* [LANES_MAX] 1 when that op has a duration */
    double t_lo, t_hi;  /* time span of the emitted ops (links are cut to it) */
} writer;

static int unit_tid(int local, int unit)
{
    return local * SIM_UNIT_COUNT + unit;
}

static int link_tid(const sim_topo *t, const sim_topo_link *l)
{
    return t->cores_per_chip * SIM_UNIT_COUNT + 2 * l->dim + (int)l->dir;
}

static int lane_tid(const sim_topo *t, int local, int lane)
{
    if (lane == 0)
        return unit_tid(local, SIM_UNIT_NET);
    return t->cores_per_chip * SIM_UNIT_COUNT + 2 * SIM_TOPO_MAX_DIMS + local * LANES_MAX + lane;
}

/* Display order inside a chip: each core's units then its extra network lanes, then the links. */
static int sort_index(const sim_topo *t, int local, int slot)
{
    return local < t->cores_per_chip ? local * (LANES_MAX + SIM_UNIT_COUNT) + slot
                                     : t->cores_per_chip * (LANES_MAX + SIM_UNIT_COUNT) + slot;
}

static int is_net(sim_op_kind k)
{
    return k == SIM_OP_SEND || k == SIM_OP_RECV || k == SIM_OP_COLLECTIVE;
}

static void chip_names(writer *w, int chip)
{
    const sim_topo *t = w->topo;
    char name[SIM_TOPO_NAME_MAX + 32];
    int xyz[SIM_TOPO_MAX_DIMS];
    sim_topo_coords(t, chip, xyz);
    snprintf(name, sizeof name, "chip %d (%d,%d,%d)", chip, xyz[0], xyz[1], xyz[2]);
    chrome_trace_process_name(w->tr, chip, name);
    for (int local = 0; local < t->cores_per_chip; local++)
        for (int u = 0; u < SIM_UNIT_COUNT; u++) {
            snprintf(name, sizeof name, "core %d %s", sim_topo_core_id(t, chip, local),
                     sim_unit_name((sim_unit)u));
            chrome_trace_thread_name(w->tr, chip, unit_tid(local, u), name);
            chrome_trace_thread_sort(w->tr, chip, unit_tid(local, u), sort_index(t, local, u));
        }
}

/* One op as an "X" slice on thread tid of its chip. */
static void emit_op(writer *w, int32_t id, int tid)
{
    const sim_prog_op *op = sim_program_op(w->prog, id);
    const sim_op_kind kind = (sim_op_kind)op->kind;
    const char *label = sim_program_string(w->prog, op->label);
    chrome_trace_arg args[5] = {{"op", NULL, id}, {"core", NULL, op->core}};
    int nargs = 2;
    if (op->layer >= 0)
        args[nargs++] = (chrome_trace_arg){"layer", NULL, op->layer};
    if (kind == SIM_OP_SEND || kind == SIM_OP_RECV) {
        args[nargs++] = (chrome_trace_arg){kind == SIM_OP_SEND ? "to" : "from", NULL,
                                           op->xfer.peer};
        args[nargs++] = (chrome_trace_arg){"bytes", NULL, (double)op->xfer.bytes};
    } else if (kind == SIM_OP_COLLECTIVE) {
        args[nargs++] = (chrome_trace_arg){"bytes", NULL, (double)op->coll.bytes};
    } else if (kind == SIM_OP_MATMUL) {
        args[nargs++] = (chrome_trace_arg){
            "flops", NULL, 2.0 * (double)op->matmul.m * (double)op->matmul.k * (double)op->matmul.n};
    }
    const double start = w->res->op_start_s[id];
    w->t_lo = fmin(w->t_lo, start);
    w->t_hi = fmax(w->t_hi, w->res->op_end_s[id]);
    chrome_trace_complete(w->tr, label[0] ? label : sim_op_kind_name(kind),
                          sim_op_kind_name(kind), sim_topo_core_chip(w->topo, op->core), tid,
                          start, w->res->op_end_s[id] - start, args, nargs);
}

/* ---- network lanes ---------------------------------------------------------------------- */

static int cmp_net(const void *a, const void *b)
{
    const net_op *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Whether lane l is free for a slice [start, end]: its last slice ended before start, or at
 * start when neither slice is empty (an empty slice never shares an instant with another one
 * of its lane, so a flow end bound there is unambiguous). */
static int lane_free(const writer *w, int l, double start, double end)
{
    return w->lane_end[l] < start ||
           (w->lane_end[l] == start && start < end && w->lane_open[l]);
}

/* The lowest lane free for [start, end] (the last one when all are taken); updates it. */
static int take_lane(writer *w, int *nlanes, double start, double end)
{
    int l = 0;
    while (l < *nlanes && !lane_free(w, l, start, end))
        l++;
    if (l == LANES_MAX)
        l = LANES_MAX - 1;
    if (l == *nlanes) {
        (*nlanes)++;
        w->lane_end[l] = end;
    }
    w->lane_end[l] = fmax(w->lane_end[l], end);
    w->lane_open[l] = start < end;
    return l;
}

/* The core's ops: in-order units straight away, network ops sorted into lanes. */
static void emit_core(writer *w, int32_t core)
{
    const int local = sim_topo_core_local(w->topo, core);
    const int chip = sim_topo_core_chip(w->topo, core);
    int32_t n = 0, nnet = 0;
    const int32_t *ops = sim_program_core_ops(w->prog, core, &n);
    for (int32_t i = 0; i < n; i++) {
        const sim_prog_op *op = sim_program_op(w->prog, ops[i]);
        if (!cli_trace_select_op(w->sel, op->layer, sim_program_string(w->prog, op->label)))
            continue;
        if (is_net((sim_op_kind)op->kind)) {
            w->net[nnet++] = (net_op){w->res->op_start_s[ops[i]], w->res->op_end_s[ops[i]], ops[i]};
            continue;
        }
        w->lane[ops[i]] = -2;
        emit_op(w, ops[i], unit_tid(local, sim_engine_op_unit((sim_op_kind)op->kind)));
    }
    qsort(w->net, (size_t)nnet, sizeof *w->net, cmp_net);
    int nlanes = 0;
    for (int32_t i = 0; i < nnet; i++) {
        const int32_t id = w->net[i].id;
        w->lane[id] = take_lane(w, &nlanes, w->net[i].start, w->net[i].end);
        emit_op(w, id, lane_tid(w->topo, local, w->lane[id]));
    }
    char name[64];
    for (int l = 1; l < nlanes; l++) {
        snprintf(name, sizeof name, "core %d net %d", core, l + 1);
        chrome_trace_thread_name(w->tr, chip, lane_tid(w->topo, local, l), name);
        chrome_trace_thread_sort(w->tr, chip, lane_tid(w->topo, local, l),
                                 sort_index(w->topo, local, SIM_UNIT_NET + l));
    }
}

/* ---- flows -------------------------------------------------------------------------------- */

static int is_expert_matmul(const sim_program *p, int32_t id)
{
    const sim_prog_op *op = sim_program_op(p, id);
    return op->kind == SIM_OP_MATMUL && strstr(sim_program_string(p, op->label), "expert");
}

/* next[i] for every op i: the first matmul after i on its core (-1 if none). */
static void next_matmuls(const sim_program *p, int32_t *next)
{
    for (int32_t c = 0; c < p->ncores; c++) {
        int32_t n = 0, after = -1;
        const int32_t *ops = sim_program_core_ops(p, c, &n);
        for (int32_t i = n - 1; i >= 0; i--) {
            next[ops[i]] = after;
            if (sim_program_op(p, ops[i])->kind == SIM_OP_MATMUL)
                after = ops[i];
        }
    }
}

/* The expert matmul op id feeds (see sim_trace.h), or -1. */
static int32_t flow_target(const writer *w, const int32_t *next, int32_t id)
{
    const sim_prog_op *op = sim_program_op(w->prog, id);
    int32_t landing = -1;
    if (op->kind == SIM_OP_SEND)
        landing = w->partner[id];
    else if (op->kind == SIM_OP_COLLECTIVE &&
             (op->coll.kind == SIM_COLL_ALLTOALL || op->coll.kind == SIM_COLL_ALLTOALLV))
        landing = id;
    if (landing < 0)
        return -1;
    const int32_t m = next[landing];
    if (m < 0 || !is_expert_matmul(w->prog, m) ||
        sim_program_op(w->prog, m)->layer != sim_program_op(w->prog, landing)->layer)
        return -1;
    return m;
}

/* The middle of op id's slice: where a flow end binds without ambiguity (a slice that ends
 * where the next one starts shares that instant with it). */
static double middle(const writer *w, int32_t id)
{
    return 0.5 * (w->res->op_start_s[id] + w->res->op_end_s[id]);
}

static void emit_flow(writer *w, int32_t from, int32_t to)
{
    const sim_topo *t = w->topo;
    const int32_t cf = sim_program_op(w->prog, from)->core, ct = sim_program_op(w->prog, to)->core;
    chrome_trace_flow_start(w->tr, flow_name, flow_cat, (uint64_t)from,
                            sim_topo_core_chip(t, cf),
                            lane_tid(t, sim_topo_core_local(t, cf), w->lane[from]),
                            middle(w, from));
    chrome_trace_flow_finish(w->tr, flow_name, flow_cat, (uint64_t)from,
                             sim_topo_core_chip(t, ct),
                             unit_tid(sim_topo_core_local(t, ct), SIM_UNIT_MXU),
                             middle(w, to));
}

/* Flows of every emitted source op whose target was emitted; -1 out of memory or when the
 * program's sends and recvs do not pair. */
static int emit_flows(writer *w, ss_err *err)
{
    const sim_program *p = w->prog;
    if (sim_program_pair_xfers(p, w->partner, err) != SS_OK)
        return -1;
    int32_t *next = w->next;
    next_matmuls(p, next);
    for (int32_t id = 0; id < p->nops; id++) {
        if (w->lane[id] < 0)
            continue;
        const int32_t to = flow_target(w, next, id);
        if (to >= 0 && w->lane[to] == -2)
            emit_flow(w, id, to);
    }
    return 0;
}

/* ---- links ------------------------------------------------------------------------------ */

/* Orders link intervals by link, then by start, then by end. */
static int cmp_interval(const void *a, const void *b)
{
    const sim_link_interval *x = a, *y = b;
    if (x->link != y->link)
        return x->link < y->link ? -1 : 1;
    if (x->start_s != y->start_s)
        return x->start_s < y->start_s ? -1 : 1;
    return (x->end_s > y->end_s) - (x->end_s < y->end_s);
}

/* Adds the busy window [a, b) to the bins of width wid. */
static void add_busy(double *bin, long nbins, double wid, double a, double b)
{
    for (long k = (long)(a / wid); k < nbins && k * wid < b; k++) {
        const double lo = fmax(a, k * wid), hi = fmin(b, (k + 1) * wid);
        if (hi > lo)
            bin[k] += hi - lo;
    }
}

/* One link's windows (sorted by start): overlapping ones merge into one "busy" slice that
 * counts its messages, so the link's track stays properly nested; the merged windows fill
 * the utilisation bins. */
static void link_slices(writer *w, const sim_link_interval *iv, size_t n, double *bin,
                        long nbins, double wid)
{
    const sim_topo_link link = sim_topo_link_get(w->topo, iv[0].link);
    size_t i = 0;
    while (i < n) {
        double end = iv[i].end_s;
        size_t j = i + 1;
        for (; j < n && iv[j].start_s < end; j++)
            end = fmax(end, iv[j].end_s);
        if (wid > 0)
            add_busy(bin, nbins, wid, iv[i].start_s, end);
        if (end >= w->t_lo && iv[i].start_s <= w->t_hi) { /* inside the selected ops' span */
            const chrome_trace_arg arg = {"messages", NULL, (double)(j - i)};
            chrome_trace_complete(w->tr, "busy", "link", link.src_chip,
                                  link_tid(w->topo, &link), iv[i].start_s, end - iv[i].start_s,
                                  &arg, 1);
        }
        i = j;
    }
}

/* The utilisation counter of one link: a value per bin of the selected ops' span, written
 * where it changes, and 0 at the end of that span. */
static void link_counter(writer *w, int32_t l, const double *bin, long nbins, double wid)
{
    const sim_topo_link link = sim_topo_link_get(w->topo, l);
    char lname[SIM_TOPO_NAME_MAX], name[SIM_TOPO_NAME_MAX + 16];
    sim_topo_link_name(w->topo, l, lname, sizeof lname);
    snprintf(name, sizeof name, "util link %s", lname);
    if (!(w->t_lo <= w->t_hi))
        return; /* no op selected */
    double last = -1;
    const long lo = (long)fmax(0, floor(w->t_lo / wid)), hi = (long)fmin(nbins, ceil(w->t_hi / wid));
    for (long k = lo; k <= hi; k++) {
        const double u = k < hi ? fmin(1.0, bin[k] / wid) : 0;
        if (u == last)
            continue;
        const chrome_trace_arg arg = {"busy_fraction", NULL, u};
        chrome_trace_counter(w->tr, name, link.src_chip, k * wid, &arg, 1);
        last = u;
    }
}

static void link_names(writer *w)
{
    char lname[SIM_TOPO_NAME_MAX], name[SIM_TOPO_NAME_MAX + 8];
    for (int l = 0; l < sim_topo_nlinks(w->topo); l++) {
        const sim_topo_link link = sim_topo_link_get(w->topo, l);
        if (!cli_trace_select_chip(w->sel, link.src_chip))
            continue;
        sim_topo_link_name(w->topo, l, lname, sizeof lname);
        snprintf(name, sizeof name, "link %s", lname);
        chrome_trace_thread_name(w->tr, link.src_chip, link_tid(w->topo, &link), name);
        chrome_trace_thread_sort(w->tr, link.src_chip, link_tid(w->topo, &link),
                                 sort_index(w->topo, w->topo->cores_per_chip, l));
    }
}

/* The selected chips' links: merged slices and a utilisation counter each. The windows are
 * bucketed by link through an index array (a counting sort: 8 bytes a window, not a copy of
 * the result's windows), then each link's are copied and sorted on their own. */
static int emit_links(writer *w)
{
    const sim_result *res = w->res;
    const long nbins = w->sel ? w->sel->bins : CLI_TRACE_BINS_DEFAULT;
    const double wid = res->makespan_s / (double)nbins;
    const size_t nl = (size_t)sim_topo_nlinks(w->topo);
    size_t *start = calloc(nl + 2, sizeof *start), *idx = NULL, most = 0;
    double *bin = malloc((size_t)nbins * sizeof *bin);
    for (size_t i = 0; start && i < res->nlink_intervals; i++) /* windows per selected link */
        if (cli_trace_select_chip(w->sel,
                                  sim_topo_link_get(w->topo, res->link_intervals[i].link).src_chip))
            start[res->link_intervals[i].link + 2]++;
    for (size_t l = 0; start && l < nl; l++) {
        most = start[l + 2] > most ? start[l + 2] : most;
        start[l + 2] += start[l + 1];
    }
    idx = start ? malloc((start[nl + 1] + 1) * sizeof *idx) : NULL;
    sim_link_interval *one = malloc((most + 1) * sizeof *one);
    if (!start || !idx || !bin || !one) {
        free(start);
        free(idx);
        free(bin);
        free(one);
        return -1;
    }
    for (size_t i = 0; i < res->nlink_intervals; i++) /* start[l + 1]: next slot of link l */
        if (cli_trace_select_chip(w->sel,
                                  sim_topo_link_get(w->topo, res->link_intervals[i].link).src_chip))
            idx[start[res->link_intervals[i].link + 1]++] = i;
    link_names(w);
    for (size_t l = 0; l < nl; l++) { /* link l's windows: idx[start[l] .. start[l + 1]) */
        const size_t n = start[l + 1] - start[l];
        if (n == 0)
            continue;
        for (size_t k = 0; k < n; k++)
            one[k] = res->link_intervals[idx[start[l] + k]];
        qsort(one, n, sizeof *one, cmp_interval);
        memset(bin, 0, (size_t)nbins * sizeof *bin);
        link_slices(w, one, n, bin, nbins, wid);
        if (wid > 0)
            link_counter(w, (int32_t)l, bin, nbins, wid);
    }
    free(start);
    free(idx);
    free(bin);
    free(one);
    return 0;
}

/* ---- the whole trace ------------------------------------------------------------------- */

static int check_chips(const cli_trace_select *sel, const sim_topo *topo, const char *who)
{
    const int nchips = sim_topo_nchips(topo);
    for (int i = 0; sel && i < sel->nchips; i++)
        if (sel->chips[i][1] >= nchips) {
            cli_error(who, "--trace-chips: chip %d is not in the pod (chips 0-%d)",
                      (int)sel->chips[i][1], nchips - 1);
            return -1;
        }
    return 0;
}

static int emit_all(writer *w, ss_err *err)
{
    const sim_topo *t = w->topo;
    for (int chip = 0; chip < sim_topo_nchips(t); chip++) {
        if (!cli_trace_select_chip(w->sel, chip))
            continue;
        chip_names(w, chip);
        for (int local = 0; local < t->cores_per_chip; local++) {
            const int core = sim_topo_core_id(t, chip, local);
            if (core < w->prog->ncores)
                emit_core(w, core);
        }
    }
    if (emit_flows(w, err) != 0)
        return -1;
    if (emit_links(w) != 0) {
        ss_err_set(err, SS_ERR_NOMEM, "out of memory writing the trace");
        return -1;
    }
    return 0;
}

int cli_trace_write(chrome_trace *tr, const sim_topo *topo, const sim_program *prog,
                    const sim_result *res, const cli_trace_select *sel, const char *who)
{
    ss_err err = {0};
    if (check_chips(sel, topo, who) != 0) {
        chrome_trace_abort(tr);
        return -1;
    }
    const size_t n = (size_t)prog->nops + 1;
    int32_t most = 0;
    for (int32_t c = 0; c < prog->ncores; c++) {
        int32_t k = 0;
        sim_program_core_ops(prog, c, &k);
        most = k > most ? k : most;
    }
    writer w = {.tr = tr,
                .topo = topo,
                .prog = prog,
                .res = res,
                .sel = sel,
                .lane = malloc(n * sizeof(int32_t)),
                .partner = malloc(n * sizeof(int32_t)),
                .next = malloc(n * sizeof(int32_t)),
                .net = malloc(((size_t)most + 1) * sizeof(net_op)),
                .lane_end = malloc(LANES_MAX * sizeof(double)),
                .lane_open = malloc(LANES_MAX)};
    int rc = -1;
    if (!w.lane || !w.partner || !w.next || !w.net || !w.lane_end || !w.lane_open) {
        ss_err_set(&err, SS_ERR_NOMEM, "out of memory writing the trace");
    } else {
        for (int32_t i = 0; i < prog->nops; i++)
            w.lane[i] = -1;
        w.t_lo = sel && sel->by_layer ? INFINITY : 0;
        w.t_hi = sel && sel->by_layer ? -INFINITY : res->makespan_s;
        rc = emit_all(&w, &err);
    }
    free(w.lane);
    free(w.partner);
    free(w.next);
    free(w.net);
    free(w.lane_end);
    free(w.lane_open);
    if (rc != 0) {
        chrome_trace_abort(tr);
        cli_error(who, "trace: %s", err.msg);
        return -1;
    }
    if (chrome_trace_close(tr, &err) != SS_OK) {
        cli_error(who, "%s", err.msg);
        return -1;
    }
    return 0;
}
