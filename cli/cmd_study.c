/* This file implements `switchsim study`, numerics studies that train several variants of one
 * run and summarise them side by side; its one study, `switchsim study precision`, reproduces
 * at small scale the Switch Transformer paper's selective-precision experiment (Table 2): the
 * same model trained (a) in fp32 everywhere, (b) in bf16 including the router, (c) in bf16
 * with an fp32 router.
 *
 * The study: CONFIGS/{fp32,bf16-router,bf16-fp32-router}.yaml are `kind: run` configs (the
 * committed ones in configs/experiments/selective-precision/ share a base by include:), each
 * trained with model/train.h into OUT/<run>/ (afresh: --force semantics) with the train
 * option compare_router forced on, so every training line also holds the fraction of tokens
 * per Switch layer that the other router dtype routes to another expert on the same router
 * inputs. A run that stops because its gradient norm is not finite counts as diverged and the
 * study goes on; any other failure stops it. Then OUT/summary.json and OUT/summary.md are
 * written atomically from the runs' metrics.jsonl files.
 *
 * Summary keys, per run (summary.json "runs"[i]): name, label, config, precision, router_dtype,
 * steps (training lines), final_step, final_train_loss, final_heldout_loss, heldout_step,
 * min_train_loss, min_train_loss_step, max_train_loss, max_train_loss_step, diverged,
 * divergence (why, or null), stopped_with (the trainer's error, or null),
 * dropped_fraction_final and dropped_fraction_mean ([per Switch layer]), router_compare_dtype,
 * router_disagreement_mean, router_disagreement_max ([per layer]), router_disagreement_mean_all
 * (mean over layers and steps), router_disagreement_steps ([[per layer] per step]),
 * loss_curve {step, train}, heldout_curve {step, loss}, switch_layers (names, in the order
 * of the per-layer arrays). Top level: study, command, date_utc, out_dir, configs,
 * openblas_core, openblas_threads, runs.
 *
 * Divergence rule: a run diverged when training stopped on a non-finite gradient norm, when a
 * logged loss is not finite, or when a training loss exceeds twice the lowest loss logged
 * before it (the running minimum, so the high losses of the first steps do not count).
 *
 * Invariants: exit 0 ok (also when a run diverged: that is a result), 1 failure, 2 usage; the
 * summary files are replaced atomically; stdout gets one table row per run.
 * reference: W. Fedus, B. Zoph, N. Shazeer, "Switch Transformers", JMLR 23, 2022, section 2.4
 * and Table 2 (selective precision); REFERENCE.md section 1.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cblas.h>
#include <jansson.h>

#include "cli.h"
#include "common/fileio.h"
#include "model/run_cfg.h"
#include "model/t5.h"
#include "model/train.h"
#include "switchsim_config.h"

#define METRICS_MAX_BYTES ((size_t)1 << 30)
#define NRUNS 3
#define WINDOWS 20 /* rows of the Markdown curve tables */

static const struct {
    const char *name;  /* config file stem and output subdirectory */
    const char *label; /* the paper's wording */
} runs[NRUNS] = {
    {"fp32", "(a) fp32 everywhere"},
    {"bf16-router", "(b) bf16 including the router"},
    {"bf16-fp32-router", "(c) bf16 with an fp32 router"},
};

typedef struct {
    const char *out, *configs;
    long steps;
    int summary_only, format;
} study_cli;

/* ---- options -------------------------------------------------------------------------- */

static int parse_opts(study_cli *o, int argc, char **argv)
{
    cli_opt opts[] = {
        {"out", CLI_OPT_STR, &o->out, "DIR",
         "output directory: one subdirectory per run, summary.json, summary.md", NULL, 0, 0, 1},
        {"configs", CLI_OPT_STR, &o->configs, "DIR",
         "directory of fp32.yaml, bf16-router.yaml and bf16-fp32-router.yaml",
         NULL, 0, 0, 0},
        {"steps", CLI_OPT_INT, &o->steps, "N", "steps of every run; 0: the configs' steps", NULL,
         0, 1 << 30, 0},
        {"summary-only", CLI_OPT_FLAG, &o->summary_only, NULL,
         "train nothing: summarise the runs already in DIR", NULL, 0, 0, 0},
        {"format", CLI_OPT_CHOICE, &o->format, NULL, "format of the per-run rows on stdout",
         cli_format_choices, 0, 0, 0},
    };
    cli_spec spec = {
        "switchsim study precision --out DIR [OPTIONS]",
        "Selective precision (Switch Transformers, section 2.4): trains the same model three\n"
        "times, (a) fp32 everywhere, (b) bf16 including the router, (c) bf16 with an fp32\n"
        "router, with the same seed and data, each into DIR/<run>/ (started afresh). Every\n"
        "training step also routes its router inputs with the other router dtype and logs the\n"
        "fraction of tokens per Switch layer whose expert differs (router_disagreement). Then\n"
        "writes DIR/summary.json and DIR/summary.md: per run the final train and held-out loss,\n"
        "min/max loss, whether it diverged (a non-finite loss or gradient, or a loss above twice\n"
        "its running minimum), dropped-token fractions and the mean and per-step router\n"
        "disagreement, with loss curves. A diverged run is a result (exit 0).",
        opts,
        (int)(sizeof opts / sizeof opts[0]),
        0,
        0,
        "examples:\n"
        "  switchsim study precision --out runs/precision\n"
        "  switchsim study precision --out runs/precision --steps 50\n"
        "  switchsim study precision --out runs/precision --summary-only --format json",
    };
    char *pos[argc];
    int npos = 0;
    return cli_parse(&spec, argc, argv, pos, &npos);
}

static int join(char *out, size_t n, const char *dir, const char *name, const char *ext)
{
    int k = snprintf(out, n, "%s/%s%s", dir, name, ext);
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

/* ---- training ------------------------------------------------------------------------- */

/* The run config of run i. 0 ok, else an exit status (the error printed). */
static int load_run(run_cfg *run, const char *configs, int i)
{
    char path[4096];
    if (join(path, sizeof path, configs, runs[i].name, ".yaml") != 0) {
        cli_error("study", "%s: path too long", configs);
        return CLI_EXIT_USAGE;
    }
    ss_err err = {0};
    if (run_cfg_load(run, path, &err) != SS_OK) {
        cli_error("study", "%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    return 0;
}

/* Trains run i into out/<name>; *stopped receives the trainer's message when training
 * diverged (SS_ERR_RANGE, "... training diverged ..." from a non-finite gradient norm), else
 * "". 0 ok, else an exit status. */
static int train_run(const run_cfg *run, int i, const study_cli *c, char *stopped, size_t n)
{
    char dir[4096];
    if (join(dir, sizeof dir, c->out, runs[i].name, "") != 0) {
        cli_error("study", "%s: path too long", c->out);
        return CLI_EXIT_USAGE;
    }
    model_train_opts t;
    memset(&t, 0, sizeof t);
    t.model = &run->model;
    t.run_name = run->name;
    t.train = run->train;
    t.train.compare_router = 1;
    t.batch = run->batch;
    t.input_length = run->input_length;
    t.target_length = run->target_length;
    t.steps = c->steps > 0 ? (uint64_t)c->steps : (uint64_t)run->steps;
    t.seed = run->seed;
    t.denormals = run->pod.chip.denormals;
    t.out_dir = dir;
    t.force = 1;
    json_t *versions = cli_versions_json();
    t.versions = versions;
    fprintf(stderr, "switchsim: study: training %s: %s, %llu steps -> %s\n", runs[i].name,
            runs[i].label, (unsigned long long)t.steps, dir);
    ss_err err = {0};
    json_t *res = NULL;
    ss_status st = model_train_run(&t, &res, &err);
    json_decref(res);
    json_decref(versions);
    stopped[0] = '\0';
    if (st == SS_ERR_RANGE && strstr(err.msg, "diverged")) {
        snprintf(stopped, n, "%s", err.msg);
        cli_error("study", "%s stopped: %s", runs[i].name, err.msg);
        return 0;
    }
    if (st != SS_OK) {
        cli_error("study", "%s: %s", runs[i].name, err.msg);
        return st == SS_ERR_USAGE ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    return 0;
}

/* ---- reading a run's metrics ---------------------------------------------------------- */

/* The lines of one metrics.jsonl, split by kind. */
typedef struct {
    json_t *train;   /* array of training line objects */
    json_t *heldout; /* array of held-out line objects */
} run_lines;

static int read_lines(run_lines *l, const char *dir)
{
    char path[4096];
    l->train = json_array();
    l->heldout = json_array();
    if (join(path, sizeof path, dir, "metrics.jsonl", "") != 0)
        return -1;
    char *text = NULL;
    size_t len = 0;
    ss_err err = {0};
    if (file_read_all(path, METRICS_MAX_BYTES, &text, &len, &err) != SS_OK) {
        cli_error("study", "%s", err.msg);
        return -1;
    }
    size_t at = 0;
    while (at < len) {
        const char *nl = memchr(text + at, '\n', len - at);
        const size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
        json_t *j = json_loadb(text + at, n, 0, NULL);
        const char *split = json_string_value(json_object_get(j, "split"));
        if (split && strcmp(split, "train") == 0)
            json_array_append(l->train, j);
        else if (split && strcmp(split, "heldout") == 0)
            json_array_append(l->heldout, j);
        json_decref(j);
        at += n + 1;
    }
    free(text);
    return 0;
}

static void free_lines(run_lines *l)
{
    json_decref(l->train);
    json_decref(l->heldout);
}

/* A line's number member; NaN when absent or not a number. */
static double num(const json_t *line, const char *key)
{
    const json_t *v = json_object_get(line, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static json_t *real_or_null(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* ---- per-run summary ------------------------------------------------------------------ */

/* Loss statistics and the divergence verdict of the training lines. */
static void loss_summary(json_t *s, const json_t *train, const char *stopped)
{
    const size_t n = json_array_size(train);
    double lo = INFINITY, hi = -INFINITY, running = INFINITY;
    long long lo_step = -1, hi_step = -1;
    char why[512] = "";
    for (size_t i = 0; i < n; i++) {
        const json_t *line = json_array_get(train, i);
        const double loss = num(line, "loss");
        const long long step = (long long)num(line, "step");
        if (!isfinite(loss)) {
            if (!why[0])
                snprintf(why, sizeof why, "non-finite loss at step %lld", step);
            continue;
        }
        if (loss > 2.0 * running && !why[0])
            snprintf(why, sizeof why, "loss %.4f at step %lld exceeds twice the minimum %.4f "
                     "before it", loss, step, running);
        running = fmin(running, loss);
        if (loss < lo)
            lo = loss, lo_step = step;
        if (loss > hi)
            hi = loss, hi_step = step;
    }
    if (stopped[0] && !why[0])
        snprintf(why, sizeof why, "training stopped: %s", stopped);
    json_object_set_new(s, "min_train_loss", real_or_null(lo));
    json_object_set_new(s, "min_train_loss_step",
                        lo_step >= 0 ? json_integer(lo_step) : json_null());
    json_object_set_new(s, "max_train_loss", real_or_null(hi));
    json_object_set_new(s, "max_train_loss_step",
                        hi_step >= 0 ? json_integer(hi_step) : json_null());
    json_object_set_new(s, "diverged", json_boolean(why[0] != '\0'));
    json_object_set_new(s, "divergence", why[0] ? json_string(why) : json_null());
    json_object_set_new(s, "stopped_with", stopped[0] ? json_string(stopped) : json_null());
}

/* Mean and max over the lines of each layer's entry of the per-layer array `key`; NULL
 * when no line has the key. */
static void layer_stats(const json_t *train, const char *key, json_t **mean, json_t **max)
{
    size_t layers = 0, lines = 0;
    for (size_t i = 0; i < json_array_size(train); i++) {
        const json_t *a = json_object_get(json_array_get(train, i), key);
        if (json_is_array(a))
            layers = json_array_size(a) > layers ? json_array_size(a) : layers;
    }
    *mean = *max = NULL;
    if (layers == 0)
        return;
    double *sum = calloc(layers, sizeof(double)), *mx = calloc(layers, sizeof(double));
    SS_ASSERT(sum && mx);
    for (size_t i = 0; i < json_array_size(train); i++) {
        const json_t *a = json_object_get(json_array_get(train, i), key);
        if (json_array_size(a) != layers)
            continue;
        lines++;
        for (size_t k = 0; k < layers; k++) {
            const double v = json_number_value(json_array_get(a, k));
            sum[k] += v;
            mx[k] = fmax(mx[k], v);
        }
    }
    *mean = json_array();
    *max = json_array();
    for (size_t k = 0; k < layers; k++) {
        json_array_append_new(*mean, json_real(lines ? sum[k] / (double)lines : 0.0));
        json_array_append_new(*max, json_real(mx[k]));
    }
    free(sum);
    free(mx);
}

static double array_mean(const json_t *a)
{
    double s = 0;
    for (size_t k = 0; k < json_array_size(a); k++)
        s += json_number_value(json_array_get(a, k));
    return json_array_size(a) ? s / (double)json_array_size(a) : NAN;
}

/* The per-step series of a member: {step: [...], <name>: [...]}. */
static json_t *curve(const json_t *lines, const char *key, const char *name)
{
    json_t *steps = json_array(), *vals = json_array(), *c = json_object();
    for (size_t i = 0; i < json_array_size(lines); i++) {
        const json_t *line = json_array_get(lines, i);
        json_array_append_new(steps, json_integer((json_int_t)num(line, "step")));
        json_array_append_new(vals, real_or_null(num(line, key)));
    }
    json_object_set_new(c, "step", steps);
    json_object_set_new(c, name, vals);
    return c;
}

static json_t *per_step(const json_t *train, const char *key)
{
    json_t *a = json_array();
    for (size_t i = 0; i < json_array_size(train); i++) {
        const json_t *v = json_object_get(json_array_get(train, i), key);
        json_array_append_new(a, v ? json_deep_copy(v) : json_null());
    }
    return a;
}

static void routing_summary(json_t *s, const json_t *train)
{
    const size_t n = json_array_size(train);
    const json_t *last = n ? json_array_get(train, n - 1) : NULL;
    const json_t *drop_final = json_object_get(last, "dropped_fraction");
    json_object_set_new(s, "dropped_fraction_final",
                        drop_final ? json_deep_copy(drop_final) : json_null());
    json_t *mean = NULL, *max = NULL;
    layer_stats(train, "dropped_fraction", &mean, &max);
    json_object_set_new(s, "dropped_fraction_mean", mean ? mean : json_null());
    json_decref(max);
    const json_t *dt = json_object_get(last, "router_compare_dtype");
    json_object_set_new(s, "router_compare_dtype", dt ? json_deep_copy(dt) : json_null());
    layer_stats(train, "router_disagreement", &mean, &max);
    json_object_set_new(s, "router_disagreement_mean_all",
                        mean ? real_or_null(array_mean(mean)) : json_null());
    json_object_set_new(s, "router_disagreement_mean", mean ? mean : json_null());
    json_object_set_new(s, "router_disagreement_max", max ? max : json_null());
    json_object_set_new(s, "router_disagreement_steps",
                        mean ? per_step(train, "router_disagreement") : json_null());
}

/* "encoder block 1", ... "decoder block 1": the Switch layers in metrics order. */
static json_t *layer_names(const model_cfg *m)
{
    json_t *a = json_array();
    for (int dec = 0; dec < 2; dec++) {
        const int blocks = dec ? m->decoder_layers : m->encoder_layers;
        for (int b = 0; m->has_switch && b < blocks; b++) {
            if (!model_t5_block_is_switch(m, b))
                continue;
            char name[64];
            snprintf(name, sizeof name, "%s block %d", dec ? "decoder" : "encoder", b);
            json_array_append_new(a, json_string(name));
        }
    }
    return a;
}

static json_t *run_summary(int i, const run_cfg *run, const run_lines *l, const char *config,
                           const char *stopped)
{
    json_t *s = json_object();
    const size_t n = json_array_size(l->train), nh = json_array_size(l->heldout);
    const json_t *last = n ? json_array_get(l->train, n - 1) : NULL;
    const json_t *hlast = nh ? json_array_get(l->heldout, nh - 1) : NULL;
    json_object_set_new(s, "name", json_string(runs[i].name));
    json_object_set_new(s, "label", json_string(runs[i].label));
    json_object_set_new(s, "config", json_string(config));
    json_object_set_new(s, "precision", json_string(run_precision_name(run->train.precision)));
    json_object_set_new(s, "router_dtype", json_string(run->model.sw.router_dtype ==
                                                               MODEL_ROUTER_BF16
                                                           ? "bf16"
                                                           : "fp32"));
    json_object_set_new(s, "steps", json_integer((json_int_t)n));
    json_object_set_new(s, "final_step",
                        last ? json_integer((json_int_t)num(last, "step")) : json_null());
    json_object_set_new(s, "final_train_loss", real_or_null(last ? num(last, "loss") : NAN));
    json_object_set_new(s, "final_heldout_loss", real_or_null(hlast ? num(hlast, "loss") : NAN));
    json_object_set_new(s, "heldout_step",
                        hlast ? json_integer((json_int_t)num(hlast, "step")) : json_null());
    json_object_set_new(s, "switch_layers", layer_names(&run->model));
    loss_summary(s, l->train, stopped);
    routing_summary(s, l->train);
    json_object_set_new(s, "loss_curve", curve(l->train, "loss", "train"));
    json_object_set_new(s, "heldout_curve", curve(l->heldout, "loss", "loss"));
    return s;
}

/* ---- Markdown ------------------------------------------------------------------------- */

/* A growing string (the Markdown text). */
typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    SS_ASSERT(n >= 0);
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = 2 * (b->len + (size_t)n + 1);
        b->p = realloc(b->p, b->cap);
        SS_ASSERT(b->p);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* "0.0123 / 0.0456" for a per-layer array (fmt per value), or "-". */
static void sb_layers(sbuf *b, const json_t *a, const char *fmt)
{
    if (!json_is_array(a) || json_array_size(a) == 0) {
        sb_printf(b, "-");
        return;
    }
    for (size_t k = 0; k < json_array_size(a); k++) {
        if (k)
            sb_printf(b, " / ");
        sb_printf(b, fmt, json_number_value(json_array_get(a, k)));
    }
}

static void sb_num(sbuf *b, const json_t *v, const char *fmt)
{
    if (json_is_number(v))
        sb_printf(b, fmt, json_number_value(v));
    else
        sb_printf(b, "-");
}

static void md_runs_table(sbuf *b, const json_t *rs)
{
    sb_printf(b, "| run | precision | router | steps | final train loss | final held-out "
                 "loss | min loss (step) | max loss (step) | diverged | dropped fraction, "
                 "final | dropped fraction, mean | router disagreement, mean | vs router |\n"
                 "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < json_array_size(rs); i++) {
        const json_t *r = json_array_get(rs, i);
        sb_printf(b, "| %s | %s | %s | %lld | ", json_string_value(json_object_get(r, "label")),
                  json_string_value(json_object_get(r, "precision")),
                  json_string_value(json_object_get(r, "router_dtype")),
                  (long long)json_integer_value(json_object_get(r, "steps")));
        sb_num(b, json_object_get(r, "final_train_loss"), "%.4f");
        sb_printf(b, " | ");
        sb_num(b, json_object_get(r, "final_heldout_loss"), "%.4f");
        sb_printf(b, " | ");
        sb_num(b, json_object_get(r, "min_train_loss"), "%.4f");
        sb_printf(b, " (%lld) | ", (long long)json_integer_value(json_object_get(r,
                                                           "min_train_loss_step")));
        sb_num(b, json_object_get(r, "max_train_loss"), "%.4f");
        sb_printf(b, " (%lld) | ", (long long)json_integer_value(json_object_get(r,
                                                           "max_train_loss_step")));
        const json_t *why = json_object_get(r, "divergence");
        sb_printf(b, "%s | ", json_is_string(why) ? json_string_value(why) : "no");
        sb_layers(b, json_object_get(r, "dropped_fraction_final"), "%.4f");
        sb_printf(b, " | ");
        sb_layers(b, json_object_get(r, "dropped_fraction_mean"), "%.4f");
        sb_printf(b, " | ");
        sb_layers(b, json_object_get(r, "router_disagreement_mean"), "%.5f");
        const json_t *dt = json_object_get(r, "router_compare_dtype");
        sb_printf(b, " | %s |\n", json_is_string(dt) ? json_string_value(dt) : "-");
    }
}

/* Mean of the finite values of a[lo, hi) (numbers, or entry k of per-layer arrays when
 * k >= 0); NaN when none. */
static double window_mean(const json_t *a, size_t lo, size_t hi, long k)
{
    double s = 0;
    size_t n = 0;
    for (size_t i = lo; i < hi && i < json_array_size(a); i++) {
        const json_t *v = json_array_get(a, i);
        if (k >= 0)
            v = json_array_get(v, (size_t)k);
        if (json_is_number(v) && isfinite(json_number_value(v)))
            s += json_number_value(v), n++;
    }
    return n ? s / (double)n : NAN;
}

static size_t max_steps(const json_t *rs)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(rs); i++) {
        size_t k = (size_t)json_integer_value(json_object_get(json_array_get(rs, i), "steps"));
        n = k > n ? k : n;
    }
    return n;
}

static void sb_window_value(sbuf *b, double v, const char *fmt)
{
    if (isnan(v))
        sb_printf(b, " - |");
    else {
        sb_printf(b, " ");
        sb_printf(b, fmt, v);
        sb_printf(b, " |");
    }
}

/* Training loss (all runs) and router disagreement (per run and layer), as means over
 * WINDOWS windows of consecutive training lines. */
static void md_curves(sbuf *b, const json_t *rs, size_t layers)
{
    const size_t n = max_steps(rs), w = n > WINDOWS ? (n + WINDOWS - 1) / WINDOWS : 1;
    const size_t nr = json_array_size(rs);
    sb_printf(b, "\n## Loss and router disagreement, means over windows of %zu training "
                 "steps\n\nThe disagreement columns: fraction of a Switch layer's tokens whose "
                 "expert differs when the same router inputs are routed with the other router "
                 "dtype (layers: encoder, decoder). Per-step values are in summary.json "
                 "(router_disagreement_steps, loss_curve).\n\n| steps |",
              w);
    for (size_t r = 0; r < nr; r++)
        sb_printf(b, " loss %s |",
                  json_string_value(json_object_get(json_array_get(rs, r), "name")));
    for (size_t r = 0; r < nr; r++)
        for (size_t k = 0; k < layers; k++)
            sb_printf(b, " disagreement %s L%zu |",
                      json_string_value(json_object_get(json_array_get(rs, r), "name")), k);
    sb_printf(b, "\n|---|");
    for (size_t c = 0; c < nr + nr * layers; c++)
        sb_printf(b, "---|");
    sb_printf(b, "\n");
    for (size_t lo = 0; lo < n; lo += w) {
        sb_printf(b, "| %zu-%zu |", lo + 1, lo + w < n ? lo + w : n);
        for (size_t r = 0; r < nr; r++) {
            const json_t *c = json_object_get(json_array_get(rs, r), "loss_curve");
            sb_window_value(b, window_mean(json_object_get(c, "train"), lo, lo + w, -1),
                            "%.4f");
        }
        for (size_t r = 0; r < nr; r++) {
            const json_t *d =
                json_object_get(json_array_get(rs, r), "router_disagreement_steps");
            for (size_t k = 0; k < layers; k++)
                sb_window_value(b, window_mean(d, lo, lo + w, (long)k), "%.5f");
        }
        sb_printf(b, "\n");
    }
}

static size_t layer_count(const json_t *rs)
{
    size_t layers = 0;
    for (size_t i = 0; i < json_array_size(rs); i++) {
        size_t k = json_array_size(json_object_get(json_array_get(rs, i),
                                                   "dropped_fraction_mean"));
        layers = k > layers ? k : layers;
    }
    return layers;
}

/* The first run's switch_layers joined with ", " (static storage). */
static const char *layers_text(const json_t *rs)
{
    static char buf[512];
    const json_t *names = json_object_get(json_array_get(rs, 0), "switch_layers");
    size_t len = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < json_array_size(names) && len < sizeof buf; k++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", k ? ", " : "",
                                json_string_value(json_array_get(names, k)));
    return buf;
}

static char *markdown(const json_t *summary)
{
    const json_t *rs = json_object_get(summary, "runs");
    sbuf b = {0};
    sb_printf(&b, "# Selective precision study (switchsim study precision)\n\n"
                  "- command: `%s`\n- date (UTC): %s\n- configs: %s\n- OpenBLAS core %s, "
                  "%lld thread(s)\n- divergence: a non-finite loss or gradient norm, or a "
                  "training loss above twice the lowest loss logged before it\n\n",
              json_string_value(json_object_get(summary, "command")),
              json_string_value(json_object_get(summary, "date_utc")),
              json_string_value(json_object_get(summary, "configs")),
              json_string_value(json_object_get(summary, "openblas_core")),
              (long long)json_integer_value(json_object_get(summary, "openblas_threads")));
    sb_printf(&b, "## Runs\n\nPer-layer values are listed per Switch layer, encoder layers "
                  "first (%s).\n\n", layers_text(rs));
    md_runs_table(&b, rs);
    md_curves(&b, rs, layer_count(rs));
    return b.p;
}

/* ---- the study ------------------------------------------------------------------------ */

static json_t *command_json(int argc, char **argv)
{
    char cmd[4096] = "switchsim study";
    size_t len = strlen(cmd);
    for (int i = 0; i < argc && len < sizeof cmd - 2; i++)
        len += (size_t)snprintf(cmd + len, sizeof cmd - len, " %s", argv[i]);
    return json_string(cmd);
}

static json_t *date_json(void)
{
    char buf[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    return json_string(buf);
}

static int write_text(const char *dir, const char *name, const char *text)
{
    char path[4096];
    ss_err err = {0};
    if (join(path, sizeof path, dir, name, "") != 0 ||
        file_write_atomic(path, text, strlen(text), &err) != SS_OK) {
        cli_error("study", "%s/%s: %s", dir, name, err.msg[0] ? err.msg : "path too long");
        return -1;
    }
    return 0;
}

static int write_summary(const study_cli *c, const json_t *summary)
{
    char *js = json_dumps(summary, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    char *md = markdown(summary);
    const int bad = !js || write_text(c->out, "summary.json", js) != 0 ||
                    write_text(c->out, "summary.md", md) != 0;
    free(js);
    free(md);
    return bad ? CLI_EXIT_FAIL : 0;
}

/* One scalar row per run for stdout. */
static json_t *stdout_rows(const json_t *summary)
{
    static const char *const keys[] = {"name", "precision", "router_dtype", "steps",
                                       "final_train_loss", "final_heldout_loss",
                                       "min_train_loss", "max_train_loss", "diverged",
                                       "router_disagreement_mean_all"};
    json_t *rows = json_array();
    const json_t *rs = json_object_get(summary, "runs");
    for (size_t i = 0; i < json_array_size(rs); i++) {
        const json_t *r = json_array_get(rs, i);
        json_t *row = json_object();
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            json_object_set(row, keys[k], json_object_get(r, keys[k]));
        json_object_set_new(row, "dropped_fraction_mean",
                            real_or_null(array_mean(json_object_get(r,
                                                                    "dropped_fraction_mean"))));
        json_array_append_new(rows, row);
    }
    json_t *out = json_object();
    json_object_set(out, "out_dir", json_object_get(summary, "out_dir"));
    json_object_set_new(out, "runs", rows);
    return out;
}

/* Trains (unless summary_only) and summarises run i into *out. 0 ok, else an exit status. */
static int study_run(const study_cli *c, int i, json_t **out)
{
    run_cfg *run = calloc(1, sizeof *run);
    if (!run) {
        cli_error("study", "out of memory");
        return CLI_EXIT_FAIL;
    }
    char stopped[1024] = "", dir[4096], config[4096];
    int rc = load_run(run, c->configs, i);
    if (rc == 0 && !c->summary_only)
        rc = train_run(run, i, c, stopped, sizeof stopped);
    run_lines l = {0};
    if (rc == 0 && (join(dir, sizeof dir, c->out, runs[i].name, "") != 0 ||
                    join(config, sizeof config, c->configs, runs[i].name, ".yaml") != 0 ||
                    read_lines(&l, dir) != 0))
        rc = CLI_EXIT_FAIL;
    if (rc == 0)
        *out = run_summary(i, run, &l, config, stopped);
    free_lines(&l);
    free(run);
    return rc;
}

static int study_precision(int argc, char **argv)
{
    study_cli c = {NULL, "configs/experiments/selective-precision", 0, 0, EMIT_TABLE};
    const int p = parse_opts(&c, argc, argv);
    if (p == CLI_PARSE_HELP)
        return CLI_EXIT_OK;
    if (p != CLI_PARSE_OK)
        return CLI_EXIT_USAGE;
    if (mkdir(c.out, 0777) != 0 && errno != EEXIST) {
        cli_error("study", "%s: cannot create the output directory: %s", c.out,
                  strerror(errno));
        return CLI_EXIT_FAIL;
    }
    json_t *summary = json_object();
    json_object_set_new(summary, "study", json_string("selective-precision"));
    json_object_set_new(summary, "command", command_json(argc, argv));
    json_object_set_new(summary, "date_utc", date_json());
    json_object_set_new(summary, "out_dir", json_string(c.out));
    json_object_set_new(summary, "configs", json_string(c.configs));
    json_object_set_new(summary, "openblas_core", json_string(openblas_get_corename()));
    json_object_set_new(summary, "openblas_threads", json_integer(openblas_get_num_threads()));
    json_t *rs = json_array();
    json_object_set_new(summary, "runs", rs);
    int rc = 0;
    for (int i = 0; rc == 0 && i < NRUNS; i++) {
        json_t *r = NULL;
        rc = study_run(&c, i, &r);
        if (rc == 0)
            json_array_append_new(rs, r);
    }
    if (rc == 0)
        rc = write_summary(&c, summary);
    if (rc == 0) {
        json_t *rows = stdout_rows(summary);
        if (emit_result(stdout, rows, (emit_format)c.format) != 0) {
            cli_error("study", "cannot write to stdout");
            rc = CLI_EXIT_FAIL;
        }
        json_decref(rows);
    }
    json_decref(summary);
    return rc;
}

int cmd_study(int argc, char **argv)
{
    static const cli_cmd studies[] = {
        {"precision", "selective precision: fp32 vs bf16 vs bf16 with an fp32 router, with "
                      "per-step router disagreement", study_precision},
    };
    static const cli_group g = {"study", "experiment",
                                "Numerics studies: train variants of one run and summarise "
                                "them side by side (summary.json, summary.md).",
                                studies, 1};
    return cli_dispatch(&g, argc, argv);
}
