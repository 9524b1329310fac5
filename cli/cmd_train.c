/* This file implements `switchsim train`: loading the model and (optionally) run configs,
 * applying the command-line overrides, running model/train.h's training loop with a progress
 * bar on a terminal, and printing a summary of the results.
 *
 * Invariants: the progress bar is drawn only when stderr is a terminal (never in tests or CI);
 * stdout gets the summary only; settings come from the run config's `train:` mapping (or its
 * defaults), then the options. Exit status: 0 ok, 1 failure (config, data, checkpoint,
 * divergence), 2 usage (including the output-directory policy: --resume / --force).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>
#include <jansson.h>

#include "cli.h"
#include "common/bf16.h"
#include "model/dtrain.h"
#include "model/model_cfg.h"
#include "model/run_cfg.h"
#include "model/train.h"
#include "switchsim_config.h"

/* Without --run: */
#define DEFAULT_BATCH 8
#define DEFAULT_INPUT_LENGTH 64
#define DEFAULT_STEPS 100

typedef struct {
    const char *model, *run, *out, *seed, *record_routing;
    long steps, eval_every, time_every;
    int resume, force, format, distributed;
} train_cli;

static int parse_opts(train_cli *o, int argc, char **argv)
{
    cli_opt opts[] = {
        {"model", CLI_OPT_STR, &o->model, "FILE",
         "model config (kind: model); default: the model the --run config names", NULL, 0, 0,
         0},
        {"run", CLI_OPT_STR, &o->run, "FILE",
         "run config (kind: run): batch, lengths, steps, seed and its train: settings", NULL, 0,
         0, 0},
        {"steps", CLI_OPT_INT, &o->steps, "N",
         "updates to have applied at the end; 0: the run's steps (100 without --run)", NULL, 0,
         1 << 30, 0},
        {"out", CLI_OPT_STR, &o->out, "DIR",
         "output directory: metrics.jsonl, checkpoint.bin, results.json", NULL, 0, 0, 0},
        {"resume", CLI_OPT_FLAG, &o->resume, NULL, "continue from DIR/checkpoint.bin", NULL, 0,
         0, 0},
        {"force", CLI_OPT_FLAG, &o->force, NULL,
         "start afresh even if DIR holds a checkpoint (deletes it)", NULL, 0, 0, 0},
        {"seed", CLI_OPT_STR, &o->seed, "S",
         "random seed: init, data order, dropout (default: the run's, 0 without --run)", NULL,
         0, 0, 0},
        {"eval-every", CLI_OPT_INT, &o->eval_every, "N",
         "held-out evaluation every N steps (0: at the end only; -1: the run's train.eval_every)",
         NULL, -1, 1 << 30, 0},
        {"record-routing", CLI_OPT_STR, &o->record_routing, "FILE",
         "write the routing histogram of the steps run (per Switch layer, the fraction of "
         "tokens whose first choice is each expert) for switchsim estimate --routing hist:FILE",
         NULL, 0, 0, 0},
        {"distributed", CLI_OPT_FLAG, &o->distributed, NULL,
         "train on the run's plan: its data ways as simulated cores (expert + data parallel; "
         "needs --run)", NULL, 0, 0, 0},
        {"time-every", CLI_OPT_INT, &o->time_every, "N",
         "--distributed: time the step program on the pod every N steps and the last", NULL, 1,
         1 << 30, 0},
        {"format", CLI_OPT_CHOICE, &o->format, NULL, "summary format", cli_format_choices, 0, 0,
         0},
    };
    cli_spec spec = {
        "switchsim train --run FILE [--model FILE] [OPTIONS]\n"
        "       switchsim train --model FILE [OPTIONS]",
        "Trains a T5 / Switch Transformer model for real: bf16 (or fp32) numerics through the\n"
        "matrix-unit GEMM, real routing, Adafactor (T5X) or AdamW, T5 span corruption over a\n"
        "fortunes corpus (byte vocabulary). The run config's train: mapping sets precision,\n"
        "optimizer, schedule, clipping, evaluation/checkpoint/log cadence and the corpus; with\n"
        "no --run: batch 8, input length 64, targets as span corruption yields, 100 steps,\n"
        "seed 0 and every train: default (the corpus: Debian's fortunes package).\n"
        "Writes DIR/metrics.jsonl (one JSON line per step, eval lines with split \"heldout\"),\n"
        "DIR/checkpoint.bin (every checkpoint_every steps and at the end) and DIR/results.json,\n"
        "and prints a summary. A DIR that holds a checkpoint is refused unless --resume (which\n"
        "continues it bit for bit, keeping metrics lines up to the checkpoint's step and\n"
        "dropping later ones) or --force (which starts afresh). Same seed, same results, bit for\n"
        "bit. A progress bar is drawn on stderr when it is a terminal.\n"
        "With --distributed the run trains on its plan's cores (plan.data simulated cores,\n"
        "plan.model 1): each core holds the dense parameters and num_experts / cores experts\n"
        "(or, with fewer experts than cores, one expert replicated on cores / num_experts\n"
        "cores; num_experts must divide or be a multiple of the cores) and trains its\n"
        "batch / cores sequences with real values; tokens travel to their experts through\n"
        "all-to-allv and gradients through all-reduces (the collectives module), and every\n"
        "step's program is timed on the pod with that step's routing (analytic engine):\n"
        "metrics lines carry sim_step_s next to the real losses. Held-out evaluation lines,\n"
        "checkpoints of the whole model, --resume and --force work as above (a checkpoint\n"
        "belongs to one core count).",
        opts,
        (int)(sizeof opts / sizeof opts[0]),
        0,
        0,
        "examples:\n"
        "  switchsim train --model configs/models/switch-tiny.yaml \\\n"
        "      --run configs/runs/switch-tiny-train.yaml --out runs/tiny\n"
        "  switchsim train --model configs/models/switch-tiny.yaml \\\n"
        "      --run configs/runs/switch-tiny-train.yaml --out runs/tiny --resume --steps 600\n"
        "  switchsim train --run configs/runs/switch-tiny-dp8.yaml --distributed --out runs/dp8\n"
        "  switchsim train --run configs/runs/switch-tiny-dp8.yaml --distributed \\\n"
        "      --out runs/dp8 --resume --steps 40",
    };
    char *pos[argc];
    int npos = 0;
    return cli_parse(&spec, argc, argv, pos, &npos);
}

/* ---- settings ------------------------------------------------------------------------- */

static int parse_seed(const char *s, uint64_t *out)
{
    char *end = NULL;
    if (!s[0] || s[0] == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 0);
    if (*end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* The run's settings (or the defaults) with the options applied. 0 ok, else an exit status. */
static int settings(model_train_opts *t, run_cfg *run, const model_cfg *model,
                    const train_cli *c)
{
    ss_err err = {0};
    memset(t, 0, sizeof *t);
    t->model = model;
    if (c->run) {
        if (run_cfg_load(run, c->run, &err) != SS_OK) {
            cli_error("train", "%s", err.msg);
            return CLI_EXIT_FAIL;
        }
        if (strcmp(run->model.name, model->name) != 0)
            cli_error("train", "note: run '%s' names model '%s'; training --model '%s'",
                      run->name, run->model.name, model->name);
        t->run_name = run->name;
        t->train = run->train;
        t->batch = run->batch;
        t->input_length = run->input_length;
        t->target_length = run->target_length;
        t->steps = (uint64_t)run->steps;
        t->seed = run->seed;
        t->denormals = run->pod.chip.denormals;
    } else {
        if (run_train_cfg_defaults(&t->train, &err) != SS_OK) {
            cli_error("train", "%s", err.msg);
            return CLI_EXIT_FAIL;
        }
        t->batch = DEFAULT_BATCH;
        t->input_length = DEFAULT_INPUT_LENGTH;
        t->steps = DEFAULT_STEPS;
        t->denormals = BF16_DENORMALS_FLUSH;
    }
    if (c->steps > 0)
        t->steps = (uint64_t)c->steps;
    if (c->eval_every >= 0)
        t->train.eval_every = (int)c->eval_every;
    if (c->seed && parse_seed(c->seed, &t->seed) != 0) {
        cli_error("train", "--seed: '%s' is not a non-negative integer", c->seed);
        return CLI_EXIT_USAGE;
    }
    t->out_dir = c->out;
    t->record_routing = c->record_routing;
    t->resume = c->resume;
    t->force = c->force;
    return 0;
}

json_t *cli_versions_json(void)
{
    json_t *v = json_object();
    json_object_set_new(v, "switchsim", json_string(SWITCHSIM_VERSION));
    json_object_set_new(v, "openblas", json_string(SWITCHSIM_OPENBLAS_VERSION));
    json_object_set_new(v, "openblas_core", json_string(openblas_get_corename()));
    json_object_set_new(v, "openblas_threads", json_integer(openblas_get_num_threads()));
    json_object_set_new(v, "bf16_arrays", json_string(bf16_impl_name(bf16_impl_current())));
    json_object_set_new(v, "jansson", json_string(JANSSON_VERSION));
    return v;
}

/* ---- progress --------------------------------------------------------------------------- */

static void draw_progress(void *ctx, const model_train_progress *p)
{
    (void)ctx;
    const int width = 30;
    const uint64_t span = p->steps - p->first_step;
    const double frac = span ? (double)(p->step - p->first_step) / (double)span : 1.0;
    const int fill = (int)(frac * width);
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] step %" PRIu64 "/%" PRIu64 "  loss %.4f  lr %.2e", bar, p->step,
            p->steps, p->loss, p->lr);
    if (!isnan(p->eval_loss))
        fprintf(stderr, "  eval %.4f", p->eval_loss);
    fprintf(stderr, "  %.0f tok/s ", p->tokens_per_s);
    if (p->step == p->steps)
        fputc('\n', stderr);
    fflush(stderr);
}

/* ---- output ----------------------------------------------------------------------------- */

static void copy_member(json_t *to, const char *key, const json_t *from, const char *from_key)
{
    json_t *v = json_object_get(from, from_key);
    json_object_set_new(to, key, v ? json_deep_copy(v) : json_null());
}

/* Prints a run's summary to stdout and frees it and the run's results; an exit status. */
static int print_summary(json_t *summary, json_t *res, int format)
{
    const int wrote = emit_result(stdout, summary, (emit_format)format);
    json_decref(summary);
    json_decref(res);
    if (wrote != 0) {
        cli_error("train", "cannot write the summary to stdout");
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

static json_t *summary_json(const json_t *res)
{
    static const char *const top[] = {"model", "run", "seed", "steps", "steps_run", "nparams",
                                      "tokens_per_s", "wall_s", "out_dir"};
    static const char *const fin[] = {"train_loss", "train_accuracy", "eval_loss",
                                      "eval_accuracy", "eval_step"};
    json_t *s = json_object();
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        copy_member(s, top[i], res, top[i]);
    copy_member(s, "precision", json_object_get(res, "numerics"), "precision");
    copy_member(s, "optimizer", json_object_get(res, "optimizer"), "kind");
    for (size_t i = 0; i < sizeof fin / sizeof fin[0]; i++)
        copy_member(s, fin[i], json_object_get(res, "final"), fin[i]);
    return s;
}

static int train_and_report(model_train_opts *t, int format)
{
    ss_err err = {0};
    json_t *versions = cli_versions_json();
    t->versions = versions;
    if (isatty(fileno(stderr)))
        t->progress = draw_progress;
    json_t *res = NULL;
    ss_status st = model_train_run(t, &res, &err);
    json_decref(versions);
    if (st != SS_OK) {
        cli_error("train", "%s", err.msg);
        return st == SS_ERR_USAGE ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    return print_summary(summary_json(res), res, format);
}

/* ---- distributed ------------------------------------------------------------------------ */

static json_t *dist_summary_json(const json_t *res)
{
    static const char *const top[] = {"model", "run", "pod", "cores", "seed", "steps",
                                      "first_step", "nparams", "tokens_per_s",
                                      "sim_examples_per_s", "wall_s", "out_dir"};
    static const char *const fin[] = {"train_loss", "train_accuracy", "eval_loss",
                                      "eval_accuracy"};
    json_t *s = json_object();
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        copy_member(s, top[i], res, top[i]);
    for (size_t i = 0; i < sizeof fin / sizeof fin[0]; i++)
        copy_member(s, fin[i], json_object_get(res, "final"), fin[i]);
    copy_member(s, "sim_step_s", json_object_get(res, "sim_step_s"), "mean");
    return s;
}

/* The run on its plan's cores, training --model (as the single-device trainer does). */
static int train_distributed(run_cfg *run, const model_cfg *model, const train_cli *c,
                             const model_train_opts *t)
{
    if (!c->run) {
        cli_error("train", "--distributed needs --run: the plan and pod come from the run");
        return CLI_EXIT_USAGE;
    }
    if (c->record_routing) {
        cli_error("train", "--record-routing records a single-device run; with --distributed "
                           "the rows each core received are in metrics.jsonl (received_rows)");
        return CLI_EXIT_USAGE;
    }
    run->model = *model;
    run->seed = t->seed;
    run->train = t->train;
    ss_err err = {0};
    json_t *versions = cli_versions_json();
    const model_dtrain_run_opts o = {.run = run, .steps = t->steps, .out_dir = c->out,
                                     .resume = c->resume, .force = c->force,
                                     .versions = versions, .time_every = (int)c->time_every};
    json_t *res = NULL;
    ss_status st = model_dtrain_run(&o, &res, &err);
    json_decref(versions);
    if (st != SS_OK) {
        cli_error("train", "%s", err.msg);
        return st == SS_ERR_USAGE ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    return print_summary(dist_summary_json(res), res, c->format);
}

int cmd_train(int argc, char **argv)
{
    train_cli c = {.out = "train-out", .eval_every = -1, .format = EMIT_TABLE, .time_every = 1};
    const int p = parse_opts(&c, argc, argv);
    if (p == CLI_PARSE_HELP)
        return CLI_EXIT_OK;
    if (p != CLI_PARSE_OK)
        return CLI_EXIT_USAGE;
    if (c.resume && c.force) {
        cli_error("train", "--resume continues the checkpoint and --force discards it: give "
                           "one of them");
        return CLI_EXIT_USAGE;
    }
    ss_err err = {0};
    model_cfg model;
    run_cfg run;
    if (!c.model && !c.run) {
        cli_error("train", "give --run FILE (its model is trained) or --model FILE");
        return CLI_EXIT_USAGE;
    }
    if (!c.model) {
        if (run_cfg_load(&run, c.run, &err) != SS_OK) {
            cli_error("train", "%s", err.msg);
            return CLI_EXIT_FAIL;
        }
        model = run.model;
    } else if (model_cfg_load(&model, c.model, &err) != SS_OK) {
        cli_error("train", "%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    model_train_opts t;
    const int bad = settings(&t, &run, &model, &c);
    if (bad)
        return bad;
    if (c.distributed)
        return train_distributed(&run, &model, &c, &t);
    return train_and_report(&t, c.format);
}
