/* This file implements `switchsim sim`: it runs a step program (sim/program.h text form) on a
 * pod with the analytic or the SystemC timing engine (sim/engine.h) and prints the makespan,
 * the link-load lower bound, per-unit busy fractions of the cores (all of them for small
 * programs; min/mean/max over cores plus the N busiest for big ones) and the N busiest links;
 * --trace also writes a Chrome trace-event JSON file (cli/sim_trace.h: one process per chip,
 * threads per unit and network lane of each core and per outgoing link, link-utilisation
 * counters, dispatch flows), optionally restricted to some chips and layers.
 *
 * Invariants: see cli.h for exit statuses: bad options are usage errors (2); a pod or program
 * that cannot be loaded, a program with more cores than the pod, a program the engine cannot
 * price, or a trace that cannot be written is a failure (1) reported with the underlying
 * message. The output depends only on the inputs (no wall-clock figures), so runs are
 * reproducible byte for byte; ties in the rankings go to the lower core or link id.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "sim_trace.h"
#include "collectives/coll.h"
#include "sim/engine.h"
#include "sim/pod.h"
#include "sim/program.h"
#include "sim/topo.h"
#include "traces/chrome_trace.h"

static const char *const engine_choices[] = {"analytic", "systemc", NULL}; /* kind order */

typedef struct {
    const char *pod_path, *program_path, *trace_path;
    cli_trace_opts trace;
    int engine, format;
    uint64_t packet_bytes;
    long top;
} sim_opts;

/* Everything one run needs; freed by run_free. */
typedef struct {
    sim_pod pod;
    sim_topo topo;
    sim_program prog;
    sim_result res;
    sim_engine_cfg cfg;
    int collectives;     /* collective ops of the program as written (lowered before the run) */
} sim_run;

static int parse_opts(sim_opts *o, int argc, char **argv)
{
    cli_opt opts[] = {
        {"pod", CLI_OPT_STR, &o->pod_path, "FILE", "pod config (configs/pods/*.yaml)", NULL, 0,
         0, 1},
        {"program", CLI_OPT_STR, &o->program_path, "FILE",
         "step program in the text form of sim/program.h (*.prog)", NULL, 0, 0, 1},
        {"engine", CLI_OPT_CHOICE, &o->engine, NULL,
         "analytic: list scheduling, FIFO ports, contention-free links beyond; systemc: "
         "discrete events, FIFO links",
         engine_choices, 0, 0, 0},
        {"packet-bytes", CLI_OPT_U64, &o->packet_bytes, "N",
         "packet size messages are cut into", NULL, 1, 1 << 30, 0},
        {"trace", CLI_OPT_STR, &o->trace_path, "FILE",
         "also write a Chrome trace-event JSON (open in https://ui.perfetto.dev)", NULL, 0, 0,
         0},
        CLI_TRACE_OPTIONS(&o->trace),
        {"format", CLI_OPT_CHOICE, &o->format, NULL, "output format", cli_format_choices, 0, 0,
         0},
        {"top", CLI_OPT_INT, &o->top, "N",
         "list the N busiest links, and the N busiest cores when the program has more",
         NULL, 1, 1000000, 0},
    };
    cli_spec spec = {
        "switchsim sim --pod FILE --program FILE [OPTIONS]",
        "Runs a step program on a pod with a timing engine (no values are computed) and prints\n"
        "the makespan (seconds, and cycles of the chip clock), the link-load lower bound (the\n"
        "busiest link's serialisation time: no schedule can be faster), the events the engine\n"
        "processed, per-core busy fractions of the units (mxu: matmul, vector, dma: hbm,\n"
        "net: send/recv; fraction = time the unit is occupied / makespan, where net counts the\n"
        "time with at least one send or recv of the core in flight, a recv's wait for its\n"
        "message included, and concurrent transfers once: a core drives all its chip's ports\n"
        "at once) and the busiest links (bytes, packets, busy time, utilisation = busy /\n"
        "makespan, peak queue in packets).\n\n"
        "Cores: program core c runs on chip c / cores_per_chip of the pod; a program may use\n"
        "fewer cores than the pod has, not more. Busy fractions are summarised (min, mean, max)\n"
        "over the program's cores; the core table lists every core when there are at most\n"
        "--top of them, else the --top busiest (by their busiest unit).\n\n"
        "Engines: 'analytic' schedules ops in dependency order and prices every message as if\n"
        "it were alone on its route (hops x (latency + first packet) + rest / bandwidth) once a\n"
        "chip's port has injected it (sends of a chip through one port queue there, FIFO; sends\n"
        "through different ports run at once), so flows sharing a later link do not slow each\n"
        "other: its makespan can be below the link bound, and it reports no queues (peak queue\n"
        "0). 'systemc' simulates packets through FIFO links (needs a build with SystemC).\n\n"
        "Collectives: collective ops of the program are replaced by the send/recv schedule of\n"
        "their algorithm (the op's algo= hint, or auto: the fastest predicted on this pod)\n"
        "before the engine runs; see 'switchsim collective --help' for the algorithms.\n\n"
        "Trace (--trace): one process per chip; threads 'core C <unit>' carry the ops (named by\n"
        "label, or by kind; sends and recvs overlap, so they spread over lanes 'core C net',\n"
        "'core C net 2', ...), 'link ...' threads the links' busy windows (windows that overlap,\n"
        "as contention-free flows can in the analytic engine, merge into one slice that counts\n"
        "its messages), 'util ...' counters each link's busy fraction per time bin\n"
        "(--trace-bins), and 'dispatch' flow arrows run from every message that delivers\n"
        "tokens to a Switch layer's experts to the expert matmul it feeds. --trace-chips and\n"
        "--trace-layers keep the trace small on big pods (links: of the selected chips, cut to\n"
        "the time span of the selected layers' ops).",
        opts,
        (int)(sizeof opts / sizeof opts[0]),
        0,
        0,
        "example (a 4-stage pipeline on the 8 cores of a TPU v3-8, from the source tree):\n"
        "  switchsim sim --pod configs/pods/tpu-v3-8.yaml \\\n"
        "      --program tests/engine/programs/pipeline.prog --trace pipeline.json\n"
        "  switchsim sim --pod configs/pods/tpu-v3-8.yaml \\\n"
        "      --program tests/engine/programs/pipeline.prog --trace p.json --trace-chips 0-1\n"
        "  switchsim sim --pod configs/pods/tpu-v3-8.yaml \\\n"
        "      --program tests/engine/programs/pipeline.prog --format json --top 3",
    };
    o->engine = SIM_ENGINE_ANALYTIC;
    o->format = EMIT_TABLE;
    o->packet_bytes = SIM_PACKET_BYTES_DEFAULT;
    o->top = 10;
    o->trace.bins = CLI_TRACE_BINS_DEFAULT;
    char *pos[argc];
    int npos = 0;
    return cli_parse(&spec, argc, argv, pos, &npos);
}

/* ---- loading and running ------------------------------------------------------------ */

static void run_free(sim_run *r)
{
    sim_result_free(&r->res);
    sim_program_free(&r->prog);
}

/* Replaces the program's collective ops by the send/recv schedules of the collectives module
 * (algorithm from each op's hint; auto picks the fastest predicted for this pod). */
static ss_status lower_collectives(sim_run *r, const sim_opts *o, ss_err *err)
{
    r->collectives = 0;
    for (int32_t i = 0; i < r->prog.nops; i++)
        r->collectives += sim_program_op(&r->prog, i)->kind == SIM_OP_COLLECTIVE;
    if (r->collectives == 0)
        return SS_OK;
    coll_cost cost = coll_cost_of_chip(&r->pod.chip, (uint32_t)o->packet_bytes);
    sim_program lowered;
    ss_status st = coll_program_lower(&r->prog, &r->topo, &cost, &lowered, err);
    if (st != SS_OK)
        return st;
    sim_program_free(&r->prog);
    r->prog = lowered;
    return SS_OK;
}

/* Loads the pod and the program and runs the engine; prints the failure and returns -1. */
static int run_load_and_simulate(sim_run *r, const sim_opts *o)
{
    ss_err err = {0};
    if (sim_pod_load(&r->pod, o->pod_path, &err) != SS_OK ||
        sim_pod_topo(&r->pod, &r->topo, &err) != SS_OK) {
        cli_error("sim", "%s", err.msg);
        return -1;
    }
    if (sim_program_parse_file(&r->prog, o->program_path, &err) != SS_OK) {
        cli_error("sim", "%s", err.msg);
        return -1;
    }
    if (lower_collectives(r, o, &err) != SS_OK) {
        cli_error("sim", "%s: %s", o->program_path, err.msg);
        return -1;
    }
    r->cfg = (sim_engine_cfg){.chip = &r->pod.chip,
                              .topo = &r->topo,
                              .packet_bytes = (uint32_t)o->packet_bytes,
                              .record_ops = o->trace_path != NULL,
                              .record_links = o->trace_path != NULL};
    if (sim_engine_run((sim_engine_kind)o->engine, &r->prog, &r->cfg, &r->res, &err) != SS_OK) {
        cli_error("sim", "%s engine: %s: %s", engine_choices[o->engine], o->program_path,
                  err.msg);
        return -1;
    }
    return 0;
}

/* ---- result ------------------------------------------------------------------------- */

static double fraction(double busy_s, double makespan_s)
{
    return makespan_s > 0 ? busy_s / makespan_s : 0;
}

static double core_unit_fraction(const sim_run *r, int32_t core, int u)
{
    return fraction(r->res.unit_busy_s[(size_t)core * SIM_UNIT_COUNT + u], r->res.makespan_s);
}

/* The busiest unit's fraction: how a core ranks. */
static double core_peak_fraction(const sim_run *r, int32_t core)
{
    double m = 0;
    for (int u = 0; u < SIM_UNIT_COUNT; u++)
        m = fmax(m, core_unit_fraction(r, core, u));
    return m;
}

/* min/mean/max of each unit's busy fraction over the program's cores. */
static json_t *units_json(const sim_run *r)
{
    json_t *a = json_array();
    for (int u = 0; u < SIM_UNIT_COUNT; u++) {
        double lo = INFINITY, hi = 0, sum = 0;
        for (int32_t c = 0; c < r->prog.ncores; c++) {
            const double f = core_unit_fraction(r, c, u);
            lo = fmin(lo, f);
            hi = fmax(hi, f);
            sum += f;
        }
        json_t *o = json_object();
        json_object_set_new(o, "unit", json_string(sim_unit_name((sim_unit)u)));
        json_object_set_new(o, "min", json_real(lo));
        /* clamped: the rounding of the sum must not put the mean outside [min, max] */
        json_object_set_new(o, "mean", json_real(fmin(fmax(sum / r->prog.ncores, lo), hi)));
        json_object_set_new(o, "max", json_real(hi));
        json_array_append_new(a, o);
    }
    return a;
}

/* Ranking of ids by a descending key, ties by ascending id. */
typedef struct {
    double key;
    int32_t id;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->key != y->key)
        return x->key > y->key ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The cores to list: all in id order when there are at most top, else the top busiest. */
static ranked *pick_cores(const sim_run *r, long top, int32_t *n)
{
    ranked *k = malloc((size_t)r->prog.ncores * sizeof *k);
    if (!k)
        return NULL;
    for (int32_t c = 0; c < r->prog.ncores; c++)
        k[c] = (ranked){core_peak_fraction(r, c), c};
    *n = r->prog.ncores;
    if (r->prog.ncores > top) {
        qsort(k, (size_t)r->prog.ncores, sizeof *k, cmp_ranked);
        *n = (int32_t)top;
    }
    return k;
}

static json_t *cores_json(const sim_run *r, const ranked *k, int32_t n)
{
    json_t *a = json_array();
    for (int32_t i = 0; i < n; i++) {
        const int32_t c = k[i].id;
        json_t *o = json_object();
        json_object_set_new(o, "core", json_integer(c));
        json_object_set_new(o, "chip", json_integer(sim_topo_core_chip(&r->topo, c)));
        for (int u = 0; u < SIM_UNIT_COUNT; u++)
            json_object_set_new(o, sim_unit_name((sim_unit)u),
                                json_real(core_unit_fraction(r, c, u)));
        json_array_append_new(a, o);
    }
    return a;
}

/* Links that carried traffic, busiest first (by busy time), at most top of them. */
static ranked *pick_links(const sim_run *r, long top, int32_t *n)
{
    ranked *k = malloc(((size_t)r->res.nlinks + 1) * sizeof *k);
    if (!k)
        return NULL;
    int32_t used = 0;
    for (int32_t l = 0; l < r->res.nlinks; l++)
        if (r->res.link_packets[l] > 0)
            k[used++] = (ranked){r->res.link_busy_s[l], l};
    qsort(k, (size_t)used, sizeof *k, cmp_ranked);
    *n = used < top ? used : (int32_t)top;
    return k;
}

static json_t *links_json(const sim_run *r, const ranked *k, int32_t n)
{
    json_t *a = json_array();
    for (int32_t i = 0; i < n; i++) {
        const int32_t l = k[i].id;
        char name[SIM_TOPO_NAME_MAX];
        sim_topo_link_name(&r->topo, l, name, sizeof name);
        json_t *o = json_object();
        json_object_set_new(o, "link", json_integer(l));
        json_object_set_new(o, "name", json_string(name));
        json_object_set_new(o, "bytes", json_integer((json_int_t)r->res.link_bytes[l]));
        json_object_set_new(o, "packets", json_integer((json_int_t)r->res.link_packets[l]));
        json_object_set_new(o, "busy_s", json_real(r->res.link_busy_s[l]));
        json_object_set_new(o, "utilization",
                            json_real(fraction(r->res.link_busy_s[l], r->res.makespan_s)));
        json_object_set_new(o, "peak_queue", json_integer(r->res.link_peak_queue[l]));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *summary_json(const sim_run *r, const sim_opts *o)
{
    const sim_result *s = &r->res;
    const double hz = r->pod.chip.clock_ghz * 1e9;
    json_t *j = json_object();
    json_object_set_new(j, "engine", json_string(engine_choices[o->engine]));
    json_object_set_new(j, "pod", json_string(r->pod.name));
    json_object_set_new(j, "chip", json_string(r->pod.chip.name));
    json_object_set_new(j, "topology", json_string(sim_topology_name(r->pod.topology)));
    json_object_set_new(j, "pod_cores", json_integer(r->pod.cores));
    json_object_set_new(j, "program", json_string(o->program_path));
    json_object_set_new(j, "program_cores", json_integer(r->prog.ncores));
    json_object_set_new(j, "collectives_lowered", json_integer(r->collectives));
    json_object_set_new(j, "ops", json_integer(r->prog.nops));
    json_object_set_new(j, "packet_bytes", json_integer((json_int_t)o->packet_bytes));
    json_object_set_new(j, "makespan_s", json_real(s->makespan_s));
    json_object_set_new(j, "makespan_cycles",
                        json_integer((json_int_t)llround(s->makespan_s * hz)));
    json_object_set_new(j, "link_bound_s", json_real(s->link_bound_s));
    json_object_set_new(j, "link_bound_cycles",
                        json_integer((json_int_t)llround(s->link_bound_s * hz)));
    json_object_set_new(j, "events", json_integer((json_int_t)s->events));
    if (o->engine == SIM_ENGINE_ANALYTIC)
        json_object_set_new(j, "note",
                            json_string("analytic: sends queue on their chip's port, links "
                                        "beyond it contention-free (peak_queue 0); link_bound_s "
                                        "is a lower bound"));
    return j;
}

static json_t *result_json(const sim_run *r, const sim_opts *o)
{
    int32_t nc = 0, nl = 0;
    ranked *cores = pick_cores(r, o->top, &nc);
    ranked *links = pick_links(r, o->top, &nl);
    json_t *j = NULL;
    if (cores && links) {
        j = summary_json(r, o);
        json_object_set_new(j, "cores_listed",
                            json_string(nc == r->prog.ncores ? "all" : "busiest"));
        json_object_set_new(j, "busy", units_json(r));
        json_object_set_new(j, "cores", cores_json(r, cores, nc));
        json_object_set_new(j, "links", links_json(r, links, nl));
    }
    free(cores);
    free(links);
    return j;
}

/* ---- command ------------------------------------------------------------------------ */

static int emit(const sim_run *r, const sim_opts *o)
{
    json_t *j = result_json(r, o);
    if (!j) {
        cli_error("sim", "out of memory building the result");
        return CLI_EXIT_FAIL;
    }
    const int bad = emit_result(stdout, j, (emit_format)o->format) != 0;
    json_decref(j);
    if (bad) {
        cli_error("sim", "cannot write the result to stdout");
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

int cmd_sim(int argc, char **argv)
{
    sim_opts o = {0};
    const int prc = parse_opts(&o, argc, argv);
    if (prc == CLI_PARSE_HELP)
        return CLI_EXIT_OK;
    cli_trace_select sel;
    if (prc != CLI_PARSE_OK || cli_trace_select_parse(&sel, &o.trace, o.trace_path, "sim") != 0)
        return CLI_EXIT_USAGE;
    chrome_trace tr;
    ss_err err = {0};
    /* opened first, so an unwritable path fails before a long simulation */
    if (o.trace_path && chrome_trace_open(&tr, o.trace_path, &err) != SS_OK) {
        cli_error("sim", "%s", err.msg);
        cli_trace_select_free(&sel);
        return CLI_EXIT_FAIL;
    }
    sim_run r;
    memset(&r, 0, sizeof r);
    int rc = run_load_and_simulate(&r, &o) == 0 ? emit(&r, &o) : CLI_EXIT_FAIL;
    if (o.trace_path && rc == CLI_EXIT_OK)
        rc = cli_trace_write(&tr, &r.topo, &r.prog, &r.res, &sel, "sim") == 0 ? CLI_EXIT_OK
                                                                             : CLI_EXIT_FAIL;
    else if (o.trace_path)
        chrome_trace_abort(&tr);
    cli_trace_select_free(&sel);
    run_free(&r);
    return rc;
}
