/* This file implements `switchsim estimate`: the prediction of one training step of a run at
 * full scale. It loads the run (a `kind: run` config, or one built from --model/--pod/--data/
 * --model-ways/--batch), lays the model out over the pod's cores (model/plan.h; an impossible
 * layout or a model that does not fit in HBM is a failure naming the constraint and the
 * figures), counts parameters and FLOPs (model/count.h), generates the step program
 * (model/stepgen.h: forward, backward and optimizer with per-core matmul shapes, the Switch
 * layers' all-to-alls priced from a routing model, the model-parallel and gradient
 * reductions), lowers its collectives to send/recv schedules on the pod's torus
 * (collectives/coll.h) and runs a timing engine (sim/engine.h) with per-op times recorded.
 *
 * Figures (all per step of `batch` sequences):
 *   step_seconds           the engine's makespan of the whole step program (every
 *                          microbatch, the gradient reduction and the optimizer update);
 *   examples_per_second    batch / step_seconds; tokens_per_second = batch * input_length /
 *                          step_seconds (input tokens, the run's batch_tokens convention);
 *   train_flops_per_step   3 x forward FLOPs per sequence (Table 9 convention) x batch;
 *   mfu                    train_flops_per_step / step_seconds / pod peak bf16 FLOP/s;
 *   hardware_utilization   matmul FLOPs the program executes (routers, P V products, the
 *                          recomputation of --remat, padded expert slots; all cores) /
 *                          step_seconds / pod peak;
 *   time_split             on the critical core (the core whose last op ends last; ties: the
 *                          lowest id), each instant of [0, step_seconds) is exactly one of:
 *                          compute (an op of a compute unit, i.e. the MXUs, the vector unit
 *                          or the DMA engine, is running), exposed_comm (no compute op runs
 *                          but a send or recv is in flight, including a recv waiting for its
 *                          peer) or idle (nothing runs). The three sum to step_seconds.
 *   comm_bytes             per collective kind, the bytes every core's buffer contributes,
 *                          summed over cores (model_stepgen_stats), and comm_bytes.links the
 *                          payload the pod's links carried (a message crossing h links
 *                          counts h times); the busiest links are listed.
 *   memory_per_core        model_plan_memory_of: parameters, gradients, optimizer state,
 *                          activations (with or without rematerialisation), dispatch buffers.
 * Every figure is a prediction of the simulator. The chip preset may carry a calibration (one
 * free parameter, mxu_efficiency, sim/chip.h): the `note` field says which.
 * Reports: the JSON result (--format json, and the file --results writes atomically) also
 * carries "detail" (cli/estimate_detail.h: the time breakdown per layer, every link, the
 * expert load, roofline points) and the keys scaling curves need (num_experts, chips,
 * link_bandwidth_bytes_per_s, ...); `switchsim report` draws them. Tables omit the detail.
 *
 * Collectives (--comm): `lowered` replaces every collective by its send/recv schedule on the
 * torus (coll_program_lower) and the engine simulates every message of every instance, with
 * the contention between them; `isolated` simulates each DISTINCT collective once, alone on
 * the pod, with the same engine (collectives/coll_price.h: same kind, bytes, matrix and
 * algorithm, group equal up to a torus translation), and the engine then runs each instance
 * as one op per member that begins when the last member is ready and lasts the measured time,
 * adding the measured per-link load (sim/engine.h, "priced collectives"). Isolation ignores
 * contention between overlapping collectives and with other traffic, and lets no member start
 * before the others. `auto` (the default) is lowered up to EST_COMM_LOWERED_MAX cores, so the
 * calibration runs (32 cores) are unchanged, and isolated above: a 2048-core Switch-C step is
 * 51.7 M ops lowered, 5.5 M isolated. lowered_ops is the number of ops the engine ran.
 * With the analytic engine an isolated price is at least its schedule's step-wise link-load
 * bound (coll_price.h); prices_raised_to_bound counts the distinct collectives raised to it.
 *
 * Lowering at scale: before coll_program_lower the program is copied in collective rounds
 * (every core's ops up to and including its next collective, core after core), so the members
 * of a collective instance sit close together and the lowering holds a few schedules at a time;
 * without it a 2048-core Switch-C program kept all 151 instances' schedules alive and ran out of
 * memory. All-to-alls over more than EST_A2A_DIRECT_MAX ranks get the dimension-ordered
 * algorithm (--a2a-algo scaled): a direct one has p(p-1) messages per instance.
 *
 * Calibration (--fit EX_PER_S): bisection on the chip's mxu_efficiency in (0, 1] until the
 * run gives EX_PER_S examples/s (relative error below FIT_TOL, at most FIT_STEPS engine
 * runs); examples/s grows monotonically with the efficiency. The program is built and lowered
 * once; only the engine runs again. The fitted value is printed and used for the rest.
 *
 * Invariants: exit statuses as cli.h: bad options 2; a run that cannot be loaded, planned,
 * fitted in HBM, built or priced 1 with the underlying message on stderr. The output depends
 * only on the inputs (no wall-clock figures).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "cli/estimate_detail.h"
#include "collectives/coll.h"
#include "collectives/coll_price.h"
#include "common/cfg.h"
#include "common/fileio.h"
#include "model/count.h"
#include "model/plan.h"
#include "model/run_cfg.h"
#include "model/stepgen.h"
#include "sim/engine.h"
#include "sim/pod.h"
#include "sim/program.h"
#include "sim/topo.h"
#include "estimate_program.h"
#include "sim_trace.h"
#include "traces/chrome_trace.h"

static const char *const engine_choices[] = {"analytic", "systemc", NULL}; /* kind order */
/* --a2a-algo: the algorithm of the Switch layers' all-to-alls (see retarget_a2a). */
static const char *const a2a_choices[] = {"scaled", "program", "direct", "dimorder", NULL};
enum { A2A_SCALED = 0, A2A_PROGRAM, A2A_DIRECT, A2A_DIMORDER };
/* Largest all-to-all group that `scaled` leaves to the program's hint: above it a direct
 * all-to-all's p(p-1) messages (4.2 million for 2048 cores, per instance) make the lowered
 * program too large to simulate, and dimorder's p(c-1 + sum of line lengths - dims) are used. */
enum { EST_A2A_DIRECT_MAX = 64 };
/* --comm: how collectives are priced (see "Collectives" in the file comment). */
static const char *const comm_choices[] = {"auto", "lowered", "isolated", NULL};
enum { COMM_AUTO = 0, COMM_LOWERED, COMM_ISOLATED };
/* Largest pod that --comm auto prices lowered (every message simulated); above it isolated. */
enum { EST_COMM_LOWERED_MAX = 256 };

/* Packets of estimates: large enough that the SystemC engine simulates a 2048-core step in
 * seconds (see bench/RESULTS.md), small against the messages that dominate a step. */
enum { EST_PACKET_BYTES_DEFAULT = 65536 };
enum { FIT_STEPS = 60 };
#define FIT_TOL 1e-6
#define NOTE_UNCALIBRATED "prediction; uncalibrated (chip mxu_efficiency 1)"

typedef struct {
    const char *run_path, *model_path, *pod_path, *routing, *trace_path;
    const char *results_path; /* --results: the full JSON result (with "detail") */
    cli_trace_opts trace;     /* --trace-chips, --trace-layers, --trace-bins */
    long data, model_ways, batch, input_length, target_length, microbatches;
    int engine, format, remat, no_overlap, exact_counts, grad_bf16, a2a;
    int comm;              /* COMM_*: --comm */
    uint64_t packet_bytes;
    double mxu_efficiency; /* 0: the chip's own */
    double fit;            /* 0: no fit; else the examples/s to fit mxu_efficiency to */
    long top;
} est_opts;

/* The time split of one core (see the file comment). */
typedef struct {
    int32_t core;
    double compute_s, exposed_comm_s, idle_s;
} est_split;

/* Everything one estimate needs; freed by est_free. */
typedef struct {
    run_cfg run;
    model_plan plan;
    int has_plan;
    model_plan_memory mem;
    model_counts counts;
    model_routing routing;
    int has_routing;
    model_stepgen_stats stats;
    sim_topo topo;
    int32_t program_ops;   /* ops of the generated program, collectives not yet lowered */
    int32_t collectives;   /* collective ops among them */
    sim_program prog;      /* lowered: the program the engine runs */
    sim_result res;
    int has_res;
    int isolated;          /* collectives priced in isolation (--comm), prog keeps them */
    coll_prices prices;    /* when isolated: the price of every collective */
    int has_prices;
    int fit_steps;         /* engine runs of the bisection (0: no fit) */
    est_split split;
    cli_coll_kinds coll;   /* kind of every collective id, for the detail */
} est_run;

/* ---- options ------------------------------------------------------------------------ */

static int parse_opts(est_opts *o, int argc, char **argv)
{
    cli_opt opts[] = {
        {"run", CLI_OPT_STR, &o->run_path, "FILE", "run config (configs/runs/*.yaml)", NULL, 0,
         0, 0},
        {"model", CLI_OPT_STR, &o->model_path, "FILE",
         "without --run: model config (configs/models/*.yaml)", NULL, 0, 0, 0},
        {"pod", CLI_OPT_STR, &o->pod_path, "FILE", "without --run: pod config", NULL, 0, 0, 0},
        {"data", CLI_OPT_INT, &o->data, "N", "without --run: data-parallel ways", NULL, 1,
         1 << 20, 0},
        {"model-ways", CLI_OPT_INT, &o->model_ways, "M", "without --run: model-parallel ways",
         NULL, 1, 1 << 16, 0},
        {"batch", CLI_OPT_INT, &o->batch, "B", "without --run: sequences per step", NULL, 1,
         1 << 30, 0},
        {"input-length", CLI_OPT_INT, &o->input_length, "T",
         "without --run: encoder tokens per sequence", NULL, 1, 1000000, 0},
        {"target-length", CLI_OPT_INT, &o->target_length, "T",
         "without --run: decoder tokens per sequence", NULL, 1, 1000000, 0},
        {"microbatches", CLI_OPT_INT, &o->microbatches, "K",
         "without --run: gradient-accumulation steps", NULL, 1, 1 << 16, 0},
        {"engine", CLI_OPT_CHOICE, &o->engine, NULL,
         "analytic: list scheduling, contention-free links; systemc: discrete events, FIFO "
         "links",
         engine_choices, 0, 0, 0},
        {"routing", CLI_OPT_STR, &o->routing, "MODEL",
         "tokens per expert: uniform, skew:S (Zipf exponent S) or hist:FILE (recorded by "
         "switchsim train --record-routing)",
         NULL, 0, 0, 0},
        {"remat", CLI_OPT_FLAG, &o->remat, NULL,
         "rematerialise activations in backward (also plan.remat: true in the run)", NULL, 0,
         0, 0},
        {"no-overlap", CLI_OPT_FLAG, &o->no_overlap, NULL,
         "do not overlap the gradient reduction with the backward pass", NULL, 0, 0, 0},
        {"exact-counts", CLI_OPT_FLAG, &o->exact_counts, NULL,
         "expert buffers and all-to-alls carry only the kept tokens (default: the padded "
         "[E, capacity, d_model] shapes)",
         NULL, 0, 0, 0},
        {"grad-bf16", CLI_OPT_FLAG, &o->grad_bf16, NULL,
         "reduce gradients in bf16 (default: fp32)", NULL, 0, 0, 0},
        {"mxu-efficiency", CLI_OPT_DOUBLE, &o->mxu_efficiency, "X",
         "override the chip's calibrated mxu_efficiency, in (0, 1]", NULL, 1e-6, 1, 0},
        {"fit", CLI_OPT_DOUBLE, &o->fit, "EX_PER_S",
         "calibrate: find the mxu_efficiency that gives this many examples/s", NULL, 1e-9,
         1e15, 0},
        {"a2a-algo", CLI_OPT_CHOICE, &o->a2a, NULL,
         "all-to-all algorithm: scaled (the program's, i.e. the collectives module's auto, up "
         "to 64 ranks; dimorder above), program, direct or dimorder",
         a2a_choices, 0, 0, 0},
        {"comm", CLI_OPT_CHOICE, &o->comm, NULL,
         "how collectives are priced: lowered (every message of every instance simulated in "
         "the step), isolated (each distinct collective simulated once alone on the pod, then "
         "one op per member: ignores contention between collectives and with other traffic) or "
         "auto (lowered up to 256 cores, isolated above)",
         comm_choices, 0, 0, 0},
        {"packet-bytes", CLI_OPT_U64, &o->packet_bytes, "N",
         "packet size messages are cut into", NULL, 1, 1 << 30, 0},
        {"trace", CLI_OPT_STR, &o->trace_path, "FILE",
         "also write a Chrome trace-event JSON of the step (https://ui.perfetto.dev)", NULL, 0,
         0, 0},
        CLI_TRACE_OPTIONS(&o->trace),
        {"results", CLI_OPT_STR, &o->results_path, "FILE",
         "also write the full JSON result, with the report detail (time breakdown per layer, "
         "every link, expert load, roofline; see switchsim report), atomically to FILE",
         NULL, 0, 0, 0},
        {"top", CLI_OPT_INT, &o->top, "N", "list the N busiest links", NULL, 1, 1000000, 0},
        {"format", CLI_OPT_CHOICE, &o->format, NULL, "output format", cli_format_choices, 0, 0,
         0},
    };
    cli_spec spec = {
        "switchsim estimate --run FILE [OPTIONS]\n"
        "       switchsim estimate --model FILE --pod FILE --data N --batch B [OPTIONS]",
        "Predicts one training step of a run at full scale: lays the model out over the pod\n"
        "(data x model ways, experts over the data ways), checks that it fits in HBM, builds\n"
        "the step program (forward, backward, optimizer; Switch all-to-alls sized by the\n"
        "routing model; model-parallel and gradient reductions), lowers the collectives onto\n"
        "the torus and runs a timing engine. Prints parameters, FLOPs per sequence, training\n"
        "FLOPs per step, step time, examples/s and tokens/s (input tokens), MFU (Table 9\n"
        "training FLOPs / time / pod peak bf16), hardware utilisation (executed matmul FLOPs /\n"
        "time / peak), the time split of the critical core into compute (a compute unit busy),\n"
        "exposed communication (only sends/recvs in flight) and idle, bytes per collective\n"
        "kind and on the busiest links, the dropped-token fraction and memory per core.\n\n"
        "All figures are predictions. The chip preset may be calibrated (its mxu_efficiency,\n"
        "fitted once with --fit to T5-Base at 1600 examples/s on 32 TPU v3 cores); the note\n"
        "field says whether it is.",
        opts,
        (int)(sizeof opts / sizeof opts[0]),
        0,
        0,
        "examples (from the source tree):\n"
        "  switchsim estimate --run configs/runs/switch-base-128-v3-32.yaml\n"
        "  switchsim estimate --run configs/runs/t5-base-v3-32.yaml --fit 1600 --format json\n"
        "  switchsim estimate --model configs/models/t5-large.yaml \\\n"
        "      --pod configs/pods/tpu-v3-32.yaml --data 32 --batch 2048 --microbatches 8 \\\n"
        "      --engine systemc",
    };
    o->engine = SIM_ENGINE_ANALYTIC;
    o->format = EMIT_TABLE;
    o->packet_bytes = EST_PACKET_BYTES_DEFAULT;
    o->model_ways = 1;
    o->microbatches = 1;
    o->input_length = 512;
    o->target_length = 114;
    o->routing = "uniform";
    o->top = 5;
    o->trace.bins = CLI_TRACE_BINS_DEFAULT;
    char *pos[argc];
    int npos = 0;
    return cli_parse(&spec, argc, argv, pos, &npos);
}

/* Either --run, or --model, --pod, --data and --batch (and none of them with --run). */
static int check_run_source(const est_opts *o)
{
    const int flags = (o->model_path != NULL) + (o->pod_path != NULL) + (o->data != 0) +
                      (o->batch != 0);
    if (o->run_path && flags == 0)
        return 0;
    if (!o->run_path && flags == 4)
        return 0;
    cli_error("estimate", o->run_path ? "--run cannot be combined with --model/--pod/--data/"
                                        "--batch"
                                      : "give --run FILE, or all of --model, --pod, --data "
                                        "and --batch");
    fprintf(stderr, "Try 'switchsim estimate --help'.\n");
    return -1;
}

/* ---- loading -------------------------------------------------------------------------- */

/* path as a single-quoted YAML scalar ('' escapes a quote); 0, or -1 when it does not fit. */
static int yaml_quote(char *buf, size_t cap, const char *path)
{
    size_t n = 0;
    if (cap < 3)
        return -1;
    buf[n++] = '\'';
    for (const char *c = path; *c; c++) {
        if (n + 4 > cap)
            return -1;
        if (*c == '\'')
            buf[n++] = '\'';
        buf[n++] = *c;
    }
    buf[n++] = '\'';
    buf[n] = '\0';
    return 0;
}

/* The run the --model/--pod/... flags describe, decoded as a `kind: run` document (paths are
 * relative to the working directory). */
static ss_status run_from_flags(run_cfg *run, const est_opts *o, ss_err *err)
{
    char model[1100], pod[1100], text[3000];
    if (yaml_quote(model, sizeof model, o->model_path) != 0 ||
        yaml_quote(pod, sizeof pod, o->pod_path) != 0)
        return ss_err_set(err, SS_ERR_USAGE, "--model or --pod path is too long");
    snprintf(text, sizeof text,
             "kind: run\nname: command-line\nmodel: %s\npod: %s\n"
             "plan: {data: %ld, model: %ld, microbatches: %ld}\nbatch: %ld\n"
             "input_length: %ld\ntarget_length: %ld\nsteps: 1\nmode: estimate\n",
             model, pod, o->data, o->model_ways, o->microbatches, o->batch, o->input_length,
             o->target_length);
    cfg_doc *doc = NULL;
    ss_status st = cfg_doc_parse(&doc, "command line", text, strlen(text), err);
    if (st == SS_OK)
        st = run_cfg_decode(run, cfg_doc_root(doc), err);
    cfg_doc_free(doc);
    return st;
}

static int load_run(est_run *e, const est_opts *o)
{
    ss_err err = {0};
    ss_status st = o->run_path ? run_cfg_load(&e->run, o->run_path, &err)
                               : run_from_flags(&e->run, o, &err);
    if (st == SS_OK)
        st = sim_pod_topo(&e->run.pod, &e->topo, &err);
    if (st != SS_OK) {
        cli_error("estimate", "%s", err.msg);
        return -1;
    }
    if (o->remat)
        e->run.plan.remat = 1;
    if (o->mxu_efficiency > 0)
        e->run.pod.chip.mxu_efficiency = o->mxu_efficiency;
    return 0;
}

/* The layout and its memory per core; an impossible layout or a model that does not fit in
 * HBM fails with the plan's message. */
static int make_plan(est_run *e)
{
    ss_err err = {0};
    if (model_plan_make(&e->plan, &e->run, &err) != SS_OK) {
        cli_error("estimate", "%s: impossible layout: %s", e->run.name, err.msg);
        return -1;
    }
    e->has_plan = 1;
    if (model_plan_memory_of(&e->mem, &e->plan, &e->run, e->run.plan.remat, &err) != SS_OK) {
        cli_error("estimate", "%s: %s", e->run.name, err.msg);
        return -1;
    }
    return 0;
}

/* --routing: uniform | skew:S | hist:FILE. */
static ss_status parse_routing(model_routing *r, const char *spec, ss_err *err)
{
    memset(r, 0, sizeof *r);
    if (strcmp(spec, "uniform") == 0) {
        r->kind = MODEL_ROUTING_UNIFORM;
        return SS_OK;
    }
    if (strncmp(spec, "skew:", 5) == 0) {
        char *end = NULL;
        const double s = strtod(spec + 5, &end);
        if (end == spec + 5 || *end != '\0' || !isfinite(s) || s < 0)
            return ss_err_set(err, SS_ERR_USAGE,
                              "--routing skew:S needs a Zipf exponent S >= 0, got '%s'",
                              spec + 5);
        r->kind = MODEL_ROUTING_SKEW;
        r->zipf = s;
        return SS_OK;
    }
    if (strncmp(spec, "hist:", 5) == 0 && spec[5] != '\0')
        return model_routing_load(r, spec + 5, err);
    return ss_err_set(err, SS_ERR_USAGE,
                      "--routing must be uniform, skew:S or hist:FILE, got '%s'", spec);
}

/* The --routing model: a malformed spec is a usage error (2), an unreadable histogram a
 * failure (1). */
static int load_routing(est_run *e, const est_opts *o)
{
    ss_err err = {0};
    const ss_status st = parse_routing(&e->routing, o->routing, &err);
    if (st != SS_OK) {
        cli_error("estimate", "%s", err.msg);
        if (st == SS_ERR_USAGE)
            fprintf(stderr, "Try 'switchsim estimate --help'.\n");
        return st == SS_ERR_USAGE ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    e->has_routing = 1;
    return CLI_EXIT_OK;
}

/* The algorithm --a2a-algo gives all-to-all(v) op id of p, or -1 to keep the op's hint.
 * box[g] caches whether group g is a box of the torus (-1: not known yet); every member of
 * every instance asks, and coll_group_grid is linear in the group. */
static int a2a_override(const sim_program *p, int32_t id, const sim_topo *topo, int mode,
                        signed char *box)
{
    const sim_prog_op *op = sim_program_op(p, id);
    if (op->kind != SIM_OP_COLLECTIVE ||
        (op->coll.kind != SIM_COLL_ALLTOALL && op->coll.kind != SIM_COLL_ALLTOALLV))
        return -1;
    if (mode == A2A_DIRECT)
        return COLL_ALGO_DIRECT;
    if (mode == A2A_DIMORDER)
        return COLL_ALGO_DIMORDER;
    if (mode == A2A_PROGRAM)
        return -1;
    int32_t n = 0;
    const int32_t *cores = sim_program_group(p, op->coll.group, &n);
    if (n <= EST_A2A_DIRECT_MAX)
        return -1;
    if (box[op->coll.group] < 0) {
        int ext[COLL_GRID_DIMS];
        box[op->coll.group] = (signed char)coll_group_grid(topo, cores, n, ext);
    }
    return box[op->coll.group] ? COLL_ALGO_DIMORDER : -1;
}

/* A copy of a program in collective rounds (see reorder): the tables of `in` re-interned in
 * `out`, the new id of every copied op, and scratch room for one op's dependencies. */
typedef struct {
    sim_program *out;
    const sim_program *in;
    int32_t *str, *grp, *mat; /* string, group and matrix ids of in -> ids of out */
    int32_t *newid;           /* [in nops] id of the copy, -1 before it is made */
    signed char *box;         /* [in groups] a2a_override's cache */
    int32_t *deps;            /* [ndeps_cap] */
    int32_t ndeps_cap;
    int32_t hint[COLL_ALGO_COUNT]; /* string id of each algorithm name in out */
} copier;

static void copier_free(copier *k)
{
    free(k->str);
    free(k->grp);
    free(k->mat);
    free(k->newid);
    free(k->box);
    free(k->deps);
}

static ss_status copier_init(copier *k, sim_program *out, const sim_program *in, ss_err *err)
{
    memset(k, 0, sizeof *k);
    k->out = out;
    k->in = in;
    const int32_t ns = sim_program_nstrings(in), ng = sim_program_ngroups(in);
    const int32_t nm = sim_program_nmatrices(in);
    k->str = malloc(((size_t)ns + 1) * sizeof *k->str);
    k->grp = malloc(((size_t)ng + 1) * sizeof *k->grp);
    k->mat = malloc(((size_t)nm + 1) * sizeof *k->mat);
    k->newid = malloc(((size_t)in->nops + 1) * sizeof *k->newid);
    k->box = malloc((size_t)ng + 1);
    if (!k->str || !k->grp || !k->mat || !k->newid || !k->box)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory copying the step program");
    for (int32_t i = 0; i < ns; i++)
        k->str[i] = sim_program_intern(out, sim_program_string(in, i));
    memset(k->box, -1, (size_t)ng + 1);
    for (int32_t i = 0; i < ng; i++) {
        int32_t n = 0;
        const int32_t *cores = sim_program_group(in, i, &n);
        k->grp[i] = sim_program_add_group(out, cores, n);
    }
    for (int32_t i = 0; i < nm; i++) {
        int32_t r = 0;
        const uint64_t *bytes = sim_program_matrix(in, i, &r);
        k->mat[i] = sim_program_add_matrix(out, bytes, r);
    }
    for (int a = 0; a < COLL_ALGO_COUNT; a++)
        k->hint[a] = sim_program_intern(out, coll_algo_name((coll_algo)a));
    return sim_program_status(out, err);
}

/* The dependencies of op id of in, renumbered to the copies (all made already: a dependency
 * is an earlier op of the same core); NULL out of memory. */
static const int32_t *mapped_deps(copier *k, int32_t id, int32_t *nd)
{
    const int32_t *deps = sim_program_deps(k->in, id, nd);
    if (*nd > k->ndeps_cap) {
        int32_t *d = realloc(k->deps, (size_t)*nd * sizeof *d);
        if (!d)
            return NULL;
        k->deps = d;
        k->ndeps_cap = *nd;
    }
    for (int32_t i = 0; i < *nd; i++) {
        SS_ASSERT(k->newid[deps[i]] >= 0);
        k->deps[i] = k->newid[deps[i]];
    }
    return k->deps;
}

/* Appends a copy of op id of in (same core, label, dependencies, layer, phase) to out; a
 * collective gets algorithm algo's hint when algo >= 0. Returns the copy's id or -1. */
static int32_t copy_op(copier *k, int32_t id, int algo)
{
    const sim_prog_op *op = sim_program_op(k->in, id);
    int32_t nd = 0;
    const int32_t *deps = mapped_deps(k, id, &nd);
    if (!deps && nd > 0)
        return -1;
    sim_program *out = k->out;
    const int32_t label = k->str[op->label];
    sim_program_set_scope(out, op->layer, (sim_phase)op->phase);
    switch ((sim_op_kind)op->kind) {
    case SIM_OP_MATMUL:
        return sim_program_add_matmul(out, op->core, label, op->matmul.m, op->matmul.k,
                                      op->matmul.n, op->matmul.dtype, deps, nd);
    case SIM_OP_VECTOR:
        return sim_program_add_vector(out, op->core, label, op->vector.kind,
                                      op->vector.elements, op->vector.row_len,
                                      op->vector.dtype, deps, nd);
    case SIM_OP_HBM:
        return sim_program_add_hbm(out, op->core, label, op->hbm.read_bytes,
                                   op->hbm.write_bytes, deps, nd);
    case SIM_OP_SEND:
        return sim_program_add_send(out, op->core, label, op->xfer.peer, op->xfer.bytes,
                                    op->xfer.tag, deps, nd);
    case SIM_OP_RECV:
        return sim_program_add_recv(out, op->core, label, op->xfer.peer, op->xfer.bytes,
                                    op->xfer.tag, deps, nd);
    case SIM_OP_COLLECTIVE: {
        sim_prog_coll c = op->coll;
        c.group = k->grp[c.group];
        c.matrix = c.matrix >= 0 ? k->mat[c.matrix] : c.matrix;
        c.algo = algo >= 0 ? k->hint[algo] : k->str[c.algo];
        return sim_program_add_collective(out, op->core, label, &c, deps, nd);
    }
    case SIM_OP_KIND_COUNT: break;
    }
    SS_ASSERT(0 && "unknown op kind");
    return -1;
}

/* Copies in to out in collective rounds: each round takes every core's ops up to and
 * including its next collective, so the members of a collective instance are copied close
 * together and the lowering (which keeps an instance's schedule until its last member is
 * lowered) holds a few schedules at a time instead of all of them. Every core keeps its op
 * order, so the copy is the same program with other ids. All-to-alls get --a2a-algo's hint. */
static ss_status reorder(copier *k, const sim_topo *topo, int mode, ss_err *err)
{
    const sim_program *in = k->in;
    int32_t *cursor = calloc((size_t)in->ncores + 1, sizeof *cursor);
    if (!cursor)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory copying the step program");
    for (int32_t i = 0; i < in->nops; i++)
        k->newid[i] = -1;
    int32_t left = in->nops;
    int failed = 0;
    while (left > 0 && !failed) {
        for (int32_t c = 0; c < in->ncores && !failed; c++) {
            int32_t n = 0;
            const int32_t *ops = sim_program_core_ops(in, c, &n);
            while (cursor[c] < n && !failed) {
                const int32_t id = ops[cursor[c]++];
                k->newid[id] = copy_op(k, id, a2a_override(in, id, topo, mode, k->box));
                failed = k->newid[id] < 0;
                left--;
                if (sim_program_op(in, id)->kind == SIM_OP_COLLECTIVE)
                    break;
            }
        }
    }
    free(cursor);
    ss_status st = sim_program_status(k->out, err);
    if (st == SS_OK && failed) /* copy_op's own allocation */
        st = ss_err_set(err, SS_ERR_NOMEM, "out of memory copying the step program");
    return st;
}

/* *out = in reordered in collective rounds with the all-to-all hints of --a2a-algo. */
static ss_status prepare_for_lowering(sim_program *out, const sim_program *in,
                                      const sim_topo *topo, int mode, ss_err *err)
{
    ss_status st = sim_program_init(out, in->ncores, err);
    if (st != SS_OK)
        return st;
    copier k;
    st = sim_program_reserve(out, (size_t)in->nops, in->ndeps);
    if (st == SS_OK)
        st = copier_init(&k, out, in, err);
    else
        memset(&k, 0, sizeof k);
    if (st == SS_OK)
        st = reorder(&k, topo, mode, err);
    copier_free(&k);
    if (st != SS_OK)
        sim_program_free(out);
    return st;
}

/* Replaces the generated program's collectives by their send/recv schedules on the pod (the
 * all-to-alls with the algorithm --a2a-algo asks for); frees generated. */
static ss_status lower(est_run *e, sim_program *generated, const est_opts *o, ss_err *err)
{
    e->program_ops = generated->nops;
    e->collectives = 0;
    for (int32_t i = 0; i < generated->nops; i++)
        e->collectives += sim_program_op(generated, i)->kind == SIM_OP_COLLECTIVE;
    ss_status kst = cli_detail_coll_kinds(&e->coll, generated, err);
    if (kst != SS_OK) {
        sim_program_free(generated);
        return kst;
    }
    sim_program ready;
    ss_status st = prepare_for_lowering(&ready, generated, &e->topo, o->a2a, err);
    sim_program_free(generated); /* only the copy is needed from here on */
    if (st != SS_OK)
        return st;
    e->isolated = o->comm == COMM_ISOLATED ||
                  (o->comm == COMM_AUTO && e->run.pod.cores > EST_COMM_LOWERED_MAX);
    if (e->isolated) { /* the engine prices the collectives as they are */
        e->prog = ready;
        return SS_OK;
    }
    const coll_cost cost = coll_cost_of_chip(&e->run.pod.chip, (uint32_t)o->packet_bytes);
    st = coll_program_lower(&ready, &e->topo, &cost, &e->prog, err);
    sim_program_free(&ready);
    return st;
}

/* Counts, routing model, step program, lowering. */
/* Counts and the generated step program, collectives not lowered (*generated is left freed
 * on failure); -1 after a message. */
static int generate(est_run *e, const est_opts *o, sim_program *generated)
{
    ss_err err = {0};
    memset(generated, 0, sizeof *generated);
    if (model_count(&e->run.model, e->run.input_length, e->run.target_length, &e->counts,
                    &err) != SS_OK) {
        cli_error("estimate", "%s: %s", e->run.name, err.msg);
        return -1;
    }
    const model_stepgen_opts so = {.remat = e->run.plan.remat,
                                   .overlap_grad_reduce = !o->no_overlap,
                                   .exact_counts = o->exact_counts,
                                   .grad_bf16 = o->grad_bf16};
    if (model_stepgen_build(generated, &e->stats, &e->plan, &e->run, &e->routing, &so, &err) !=
        SS_OK) {
        sim_program_free(generated);
        cli_error("estimate", "%s: step program: %s", e->run.name, err.msg);
        return -1;
    }
    return 0;
}

static int build_program(est_run *e, const est_opts *o)
{
    ss_err err = {0};
    sim_program generated;
    if (generate(e, o, &generated) != 0)
        return -1;
    ss_status st = lower(e, &generated, o, &err);
    sim_program_free(&generated);
    if (st != SS_OK) {
        cli_error("estimate", "%s: step program: %s", e->run.name, err.msg);
        return -1;
    }
    return 0;
}

/* ---- simulation and calibration --------------------------------------------------------- */

/* Runs the engine on the lowered program; record: keep per-op times (and link windows for a
 * trace). */
static ss_status simulate(est_run *e, const est_opts *o, int record, ss_err *err)
{
    if (e->has_res)
        sim_result_free(&e->res);
    e->has_res = 0;
    const sim_engine_cfg cfg = {&e->run.pod.chip, &e->topo, (uint32_t)o->packet_bytes, record,
                                record && o->trace_path != NULL};
    ss_status st = SS_OK;
    if (e->isolated && !e->has_prices) { /* once: the prices do not depend on the chip's MXU */
        const coll_cost cost = coll_cost_of_chip(&e->run.pod.chip, (uint32_t)o->packet_bytes);
        sim_engine_cfg pcfg = cfg;
        pcfg.record_links = o->trace_path != NULL; /* a fit's runs come before the last one */
        st = coll_prices_build(&e->prices, &e->prog, &e->topo, &cost,
                               (sim_engine_kind)o->engine, &pcfg, err);
        e->has_prices = st == SS_OK;
    }
    if (st == SS_OK)
        st = sim_engine_run_priced((sim_engine_kind)o->engine, &e->prog, &cfg,
                                   e->isolated ? &e->prices.table : NULL, &e->res, err);
    e->has_res = st == SS_OK;
    return st;
}

static double examples_per_second(const est_run *e)
{
    return e->res.makespan_s > 0 ? e->run.batch / e->res.makespan_s : 0;
}

/* Examples/s of the run with the chip's mxu_efficiency set to eff. */
static ss_status rate_at(est_run *e, const est_opts *o, double eff, double *rate, ss_err *err)
{
    e->run.pod.chip.mxu_efficiency = eff;
    e->fit_steps++;
    ss_status st = simulate(e, o, 0, err);
    *rate = st == SS_OK ? examples_per_second(e) : 0;
    return st;
}

/* Bisection on mxu_efficiency in (0, 1] for o->fit examples/s (see the file comment). */
static ss_status fit_efficiency(est_run *e, const est_opts *o, ss_err *err)
{
    double rate = 0, lo = 0, hi = 1;
    ss_status st = rate_at(e, o, hi, &rate, err);
    if (st != SS_OK)
        return st;
    if (rate < o->fit)
        return ss_err_set(err, SS_ERR_RANGE,
                          "cannot fit %g examples/s: even at mxu_efficiency 1 the run gives "
                          "%.6g examples/s",
                          o->fit, rate);
    while (fabs(rate - o->fit) > FIT_TOL * o->fit && e->fit_steps < FIT_STEPS) {
        const double mid = 0.5 * (lo + hi);
        if ((st = rate_at(e, o, mid, &rate, err)) != SS_OK)
            return st;
        if (rate < o->fit)
            lo = mid;
        else
            hi = mid;
    }
    /* the last probe may be below the target: settle on the bracket's upper end */
    if (e->run.pod.chip.mxu_efficiency != hi)
        st = rate_at(e, o, hi, &rate, err);
    return st;
}

static int run_engine(est_run *e, const est_opts *o)
{
    ss_err err = {0};
    ss_status st = o->fit > 0 ? fit_efficiency(e, o, &err) : SS_OK;
    if (st == SS_OK)
        st = simulate(e, o, 1, &err);
    if (st != SS_OK) {
        cli_error("estimate", "%s: %s engine: %s", e->run.name, engine_choices[o->engine],
                  err.msg);
        return -1;
    }
    return 0;
}

/* ---- time split ------------------------------------------------------------------------- */

typedef struct {
    double start, end;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Length of the union of n spans (sorted in place). */
static double union_length(span *s, size_t n)
{
    qsort(s, n, sizeof *s, cmp_span);
    double total = 0, lo = 0, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (s[i].start > hi) {
            if (hi > lo)
                total += hi - lo;
            lo = s[i].start;
            hi = s[i].end;
        } else if (s[i].end > hi) {
            hi = s[i].end;
        }
    }
    if (hi > lo)
        total += hi - lo;
    return total;
}

/* The core whose last op ends last (lowest id on ties). */
static int32_t critical_core(const est_run *e)
{
    int32_t best = 0;
    double latest = -1;
    for (int32_t c = 0; c < e->prog.ncores; c++) {
        int32_t n = 0;
        const int32_t *ops = sim_program_core_ops(&e->prog, c, &n);
        for (int32_t i = 0; i < n; i++)
            if (e->res.op_end_s[ops[i]] > latest) {
                latest = e->res.op_end_s[ops[i]];
                best = c;
            }
    }
    return best;
}

static int is_compute(sim_op_kind k)
{
    return k == SIM_OP_MATMUL || k == SIM_OP_VECTOR || k == SIM_OP_HBM;
}

/* compute = |union of compute ops|; exposed = |union of all ops| - compute; idle = the rest. */
static int time_split(est_run *e)
{
    const int32_t core = critical_core(e);
    int32_t n = 0;
    const int32_t *ops = sim_program_core_ops(&e->prog, core, &n);
    span *all = malloc(((size_t)n + 1) * sizeof *all);
    span *comp = malloc(((size_t)n + 1) * sizeof *comp);
    if (!all || !comp) {
        free(all);
        free(comp);
        cli_error("estimate", "out of memory computing the time split");
        return -1;
    }
    size_t nc = 0;
    for (int32_t i = 0; i < n; i++) {
        const span s = {e->res.op_start_s[ops[i]], e->res.op_end_s[ops[i]]};
        all[i] = s;
        if (is_compute((sim_op_kind)sim_program_op(&e->prog, ops[i])->kind))
            comp[nc++] = s;
    }
    const double busy = union_length(all, (size_t)n), compute = union_length(comp, nc);
    e->split = (est_split){core, compute, busy - compute, e->res.makespan_s - busy};
    free(all);
    free(comp);
    return 0;
}

/* ---- result ------------------------------------------------------------------------- */

static void set_real(json_t *o, const char *key, double v)
{
    json_object_set_new(o, key, json_real(v));
}

static void set_int(json_t *o, const char *key, long long v)
{
    json_object_set_new(o, key, json_integer((json_int_t)v));
}

static void set_str(json_t *o, const char *key, const char *v)
{
    json_object_set_new(o, key, json_string(v));
}

/* What the figures rest on: calibrated chip, a command-line efficiency, a fit, or nothing. */
static json_t *note_json(const est_run *e, const est_opts *o)
{
    char buf[512];
    const sim_chip *c = &e->run.pod.chip;
    if (o->fit > 0)
        snprintf(buf, sizeof buf,
                 "prediction; calibrating: mxu_efficiency fitted to %g examples/s on this run",
                 o->fit);
    else if (o->mxu_efficiency > 0)
        snprintf(buf, sizeof buf, "prediction; mxu_efficiency %g given on the command line",
                 o->mxu_efficiency);
    else if (sim_chip_is_calibrated(c))
        snprintf(buf, sizeof buf, "prediction; calibrated on %s",
                 c->calibration[0] ? c->calibration : "an unnamed fit");
    else
        snprintf(buf, sizeof buf, "%s", NOTE_UNCALIBRATED);
    return json_string(buf);
}

static json_t *run_json(const est_run *e, const est_opts *o)
{
    const run_cfg *r = &e->run;
    json_t *j = json_object();
    json_object_set_new(j, "note", note_json(e, o));
    set_str(j, "run", r->name);
    set_str(j, "model", r->model.name);
    set_str(j, "pod", r->pod.name);
    set_str(j, "chip", r->pod.chip.name);
    set_int(j, "cores", r->pod.cores);
    set_str(j, "engine", engine_choices[o->engine]);
    set_str(j, "strategy", model_plan_strategy_name(e->plan.strategy));
    set_int(j, "data_ways", e->plan.n);
    set_int(j, "model_ways", e->plan.m);
    set_int(j, "experts_per_core", e->plan.experts_per_core);
    set_int(j, "microbatches", e->plan.microbatches);
    set_int(j, "batch", r->batch);
    set_int(j, "input_length", r->input_length);
    set_int(j, "target_length", r->target_length);
    set_str(j, "routing", model_routing_kind_name(e->routing.kind));
    if (e->routing.kind == MODEL_ROUTING_SKEW)
        set_real(j, "routing_zipf", e->routing.zipf);
    set_int(j, "remat", r->plan.remat);
    set_int(j, "overlap_grad_reduce", !o->no_overlap);
    set_int(j, "exact_counts", o->exact_counts);
    set_int(j, "grad_bf16", o->grad_bf16);
    set_real(j, "mxu_efficiency", sim_chip_mxu_efficiency(&r->pod.chip));
    if (o->fit > 0) {
        set_real(j, "fit_target_examples_per_second", o->fit);
        set_int(j, "fit_engine_runs", e->fit_steps);
    }
    set_str(j, "a2a_algo", a2a_choices[o->a2a]);
    set_int(j, "packet_bytes", (long long)o->packet_bytes);
    set_int(j, "program_ops", e->program_ops);
    set_int(j, "program_collectives", e->collectives);
    set_int(j, "lowered_ops", e->prog.nops);
    set_str(j, "comm", e->isolated ? "isolated" : "lowered");
    if (e->isolated) {
        set_int(j, "distinct_collectives", e->prices.nprices);
        set_int(j, "isolated_lowered_ops", (long long)e->prices.lowered_ops);
        set_int(j, "prices_raised_to_bound", e->prices.nraised);
    }
    return j;
}

/* Parameters, FLOPs, throughput, utilisation. */
static void add_throughput(json_t *j, const est_run *e)
{
    const double step = e->res.makespan_s, peak = sim_pod_peak_flops(&e->run.pod);
    const double train_flops = (double)e->counts.train_flops_per_seq * e->run.batch;
    set_int(j, "params", e->counts.params);
    set_int(j, "params_all", e->counts.params_all);
    set_int(j, "flops_per_sequence", e->counts.flops_per_seq);
    set_real(j, "train_flops_per_step", train_flops);
    set_real(j, "executed_matmul_flops_per_step", e->stats.executed_flops);
    set_real(j, "step_seconds", step);
    set_real(j, "examples_per_second", examples_per_second(e));
    set_real(j, "tokens_per_second", step > 0 ? (double)e->run.batch * e->run.input_length / step : 0);
    set_real(j, "pod_peak_flops", peak);
    set_real(j, "mfu", step > 0 ? train_flops / step / peak : 0);
    set_real(j, "hardware_utilization", step > 0 ? e->stats.executed_flops / step / peak : 0);
    set_real(j, "dropped_token_fraction", e->stats.dropped_fraction);
    set_real(j, "expert_padding_fraction", e->stats.padding_fraction);
}

static json_t *split_json(const est_run *e)
{
    json_t *j = json_object();
    set_int(j, "critical_core", e->split.core);
    set_real(j, "compute_s", e->split.compute_s);
    set_real(j, "exposed_comm_s", e->split.exposed_comm_s);
    set_real(j, "idle_s", e->split.idle_s);
    return j;
}

static json_t *comm_json(const est_run *e)
{
    json_t *j = json_object();
    uint64_t total = 0;
    for (int k = 0; k < SIM_COLL_KIND_COUNT; k++) {
        set_int(j, sim_coll_kind_name((sim_coll_kind)k), (long long)e->stats.comm_bytes[k]);
        total += e->stats.comm_bytes[k];
    }
    set_int(j, "total", (long long)total);
    uint64_t links = 0;
    for (int32_t l = 0; l < e->res.nlinks; l++)
        links += e->res.link_bytes[l];
    set_int(j, "links", (long long)links);
    return j;
}

typedef struct {
    double busy;
    int32_t link;
} ranked_link;

static int cmp_ranked_link(const void *a, const void *b)
{
    const ranked_link *x = a, *y = b;
    if (x->busy != y->busy)
        return x->busy > y->busy ? -1 : 1;
    return (x->link > y->link) - (x->link < y->link);
}

/* The top busiest links (by serialisation time; ties: lower id), or NULL out of memory. */
static json_t *links_json(const est_run *e, long top)
{
    ranked_link *k = malloc(((size_t)e->res.nlinks + 1) * sizeof *k);
    if (!k)
        return NULL;
    int32_t used = 0;
    for (int32_t l = 0; l < e->res.nlinks; l++)
        if (e->res.link_packets[l] > 0)
            k[used++] = (ranked_link){e->res.link_busy_s[l], l};
    qsort(k, (size_t)used, sizeof *k, cmp_ranked_link);
    json_t *a = json_array();
    for (int32_t i = 0; i < used && i < top; i++) {
        const int32_t l = k[i].link;
        char name[SIM_TOPO_NAME_MAX];
        sim_topo_link_name(&e->topo, l, name, sizeof name);
        json_t *o = json_object();
        set_str(o, "link", name);
        set_int(o, "bytes", (long long)e->res.link_bytes[l]);
        set_real(o, "busy_s", e->res.link_busy_s[l]);
        set_real(o, "utilization",
                 e->res.makespan_s > 0 ? e->res.link_busy_s[l] / e->res.makespan_s : 0);
        json_array_append_new(a, o);
    }
    free(k);
    return a;
}

static json_t *memory_json(const model_plan_memory *m)
{
    json_t *j = json_object();
    set_int(j, "params", (long long)m->params);
    set_int(j, "grads", (long long)m->grads);
    set_int(j, "optimizer", (long long)m->optimizer);
    set_int(j, "activations", (long long)m->activations);
    set_int(j, "activations_remat", (long long)m->activations_remat);
    set_int(j, "dispatch", (long long)m->dispatch);
    set_int(j, "total", (long long)m->total);
    set_int(j, "hbm", (long long)m->hbm);
    set_real(j, "total_gib", (double)m->total / (1024.0 * 1024.0 * 1024.0));
    set_real(j, "hbm_gib", (double)m->hbm / (1024.0 * 1024.0 * 1024.0));
    set_int(j, "remat", m->remat);
    return j;
}

static json_t *result_json(const est_run *e, const est_opts *o)
{
    json_t *links = links_json(e, o->top);
    if (!links)
        return NULL;
    json_t *j = run_json(e, o);
    add_throughput(j, e);
    json_object_set_new(j, "time_split", split_json(e));
    json_object_set_new(j, "comm_bytes", comm_json(e));
    json_object_set_new(j, "memory_per_core", memory_json(&e->mem));
    json_object_set_new(j, "busiest_links", links);
    return j;
}

/* Adds the report detail (cli/estimate_detail.h) to j as "detail"; -1 after printing. */
static int add_detail(json_t *j, const est_run *e)
{
    const cli_detail_in in = {&e->prog,        &e->res,     &e->topo,
                              &e->run,         &e->plan,    &e->routing,
                              &e->coll,        e->split.core};
    json_t *d = NULL;
    ss_err err = {0};
    if (cli_detail_json(&d, &in, &err) != SS_OK) {
        cli_error("estimate", "%s: detail: %s", e->run.name, err.msg);
        return -1;
    }
    json_object_set_new(j, "detail", d);
    return 0;
}

/* Writes j as JSON to path atomically; -1 after printing. */
static int write_results(const json_t *j, const char *path)
{
    file_atomic a;
    ss_err err = {0};
    if (file_atomic_open(&a, path, &err) != SS_OK) {
        cli_error("estimate", "--results: %s", err.msg);
        return -1;
    }
    if (emit_result(a.f, j, EMIT_JSON) != 0) {
        file_atomic_abort(&a);
        cli_error("estimate", "--results: cannot write %s", path);
        return -1;
    }
    if (file_atomic_commit(&a, &err) != SS_OK) {
        cli_error("estimate", "--results: %s", err.msg);
        return -1;
    }
    return 0;
}

static int emit(const est_run *e, const est_opts *o)
{
    json_t *j = result_json(e, o);
    if (!j) {
        cli_error("estimate", "out of memory building the result");
        return CLI_EXIT_FAIL;
    }
    cli_detail_add_scaling(j, &e->run, &e->plan, &e->topo);
    const int detail = o->format == EMIT_JSON || o->results_path;
    if ((detail && add_detail(j, e) != 0) ||
        (o->results_path && write_results(j, o->results_path) != 0)) {
        json_decref(j);
        return CLI_EXIT_FAIL;
    }
    if (o->format != EMIT_JSON)
        json_object_del(j, "detail"); /* tables stay readable */
    const int bad = emit_result(stdout, j, (emit_format)o->format) != 0;
    json_decref(j);
    if (bad) {
        cli_error("estimate", "cannot write the result to stdout");
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

/* ---- command ------------------------------------------------------------------------ */

static void est_free(est_run *e)
{
    cli_detail_coll_kinds_free(&e->coll);
    if (e->has_res)
        sim_result_free(&e->res);
    if (e->has_prices)
        coll_prices_free(&e->prices);
    sim_program_free(&e->prog);
    if (e->has_routing && e->routing.kind == MODEL_ROUTING_HISTOGRAM)
        model_routing_free(&e->routing);
    if (e->has_plan)
        model_plan_free(&e->plan);
}

/* Load, plan, build, simulate; -1 after printing the failure. */
static int estimate(est_run *e, const est_opts *o)
{
    if (load_run(e, o) != 0 || make_plan(e) != 0 || build_program(e, o) != 0 ||
        run_engine(e, o) != 0)
        return -1;
    return time_split(e);
}

int cmd_estimate(int argc, char **argv)
{
    est_opts o;
    memset(&o, 0, sizeof o);
    const int prc = parse_opts(&o, argc, argv);
    if (prc == CLI_PARSE_HELP)
        return CLI_EXIT_OK;
    cli_trace_select sel;
    if (prc != CLI_PARSE_OK || check_run_source(&o) != 0 ||
        cli_trace_select_parse(&sel, &o.trace, o.trace_path, "estimate") != 0)
        return CLI_EXIT_USAGE;
    chrome_trace tr;
    ss_err err = {0};
    /* opened first, so an unwritable path fails before a long estimate */
    if (o.trace_path && chrome_trace_open(&tr, o.trace_path, &err) != SS_OK) {
        cli_error("estimate", "%s", err.msg);
        cli_trace_select_free(&sel);
        return CLI_EXIT_FAIL;
    }
    est_run *e = calloc(1, sizeof *e);
    int rc = e ? load_routing(e, &o) : CLI_EXIT_FAIL;
    if (!e)
        cli_error("estimate", "out of memory");
    if (rc == CLI_EXIT_OK)
        rc = estimate(e, &o) == 0 ? emit(e, &o) : CLI_EXIT_FAIL;
    if (o.trace_path && rc == CLI_EXIT_OK)
        rc = cli_trace_write(&tr, &e->topo, &e->prog, &e->res, &sel, "estimate") == 0
                 ? CLI_EXIT_OK
                 : CLI_EXIT_FAIL;
    else if (o.trace_path)
        chrome_trace_abort(&tr);
    cli_trace_select_free(&sel);
    if (e)
        est_free(e);
    free(e);
    return rc;
}

/* cli/estimate_program.h: load, plan and generate with estimate's default options. */
int cli_estimate_program(const char *run_path, sim_program *out)
{
    est_opts o;
    memset(&o, 0, sizeof o);
    o.run_path = run_path;
    o.routing = "uniform";
    memset(out, 0, sizeof *out);
    est_run *e = calloc(1, sizeof *e);
    if (!e) {
        cli_error("estimate", "out of memory");
        return -1;
    }
    int rc = load_routing(e, &o) == CLI_EXIT_OK && load_run(e, &o) == 0 && make_plan(e) == 0 &&
                     generate(e, &o, out) == 0
                 ? 0
                 : -1;
    est_free(e);
    free(e);
    return rc;
}
