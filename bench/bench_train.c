/* This file implements bench_train, which measures functional training throughput: N steps
 * of a small Switch model (configs/models/switch-tiny.yaml by default, and with --dense the
 * same model with its Switch layers replaced by dense FFNs) through the real trainer,
 * model_train_run of model/train.h (batch, forward, backward, gradient norm, Adafactor update,
 * one metrics line), for each precision (fp32, bf16) and GEMM mode (fast, exact), printing
 * tokens/s and the achieved GFLOP/s.
 *
 * Timing: the trainer's progress callback gives the loop's wall time after every step; the
 * figure is taken between the end of step `warmup` and the end of step N - 1, so neither the
 * first steps (allocation, page faults) nor the last (final metrics line, checkpoint) count;
 * no evaluation runs (held-out fraction 0) and no checkpoint is due before the last step.
 * Every configuration trains once per round, R rounds (so all see the same background load);
 * the best and the median round are reported.
 * tokens/s counts input (encoder) tokens, B * T_in per step, as results.json's tokens_per_s.
 * FLOPs: model/count.h's train_matmul_flops_per_seq (3 x every executed matrix product of the
 * forward, experts at k of E with no capacity padding, routers and attention products
 * included) times B, per step; vector work is not counted. The OpenBLAS core and thread count
 * are printed: they change fast-mode speed (OPENBLAS_CORETYPE, OPENBLAS_NUM_THREADS).
 * Distributed rows (--cores P > 1, default 8): the same model, batch and numerics trained by
 * the functional distributed trainer of model/dtrain.h on P simulated cores (one thread per
 * core; tokens through all-to-allv, gradients through an all-reduce, per-core optimizer
 * updates), stepped directly with model_dtrain_step on the same data and timed over the same
 * steps; the simulated step time is not computed there (it is a separate, optional cost of
 * `switchsim train --distributed`). Both row kinds run on the same host CPUs, so the ratio
 * is the cost of simulating P cores' worth of work, threads and data movement on them.
 * Invariants: prints to stdout only; writes only into a temporary directory it removes;
 * never part of `meson test`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>
#include <jansson.h>

#include "bench_util.h"
#include "cli/cli.h"
#include "model/count.h"
#include "model/data.h"
#include "model/dtrain.h"
#include "model/model_cfg.h"
#include "model/run_cfg.h"
#include "model/train.h"
#include "common/fileio.h"

enum { MAX_REPS = 50 };

typedef struct {
    const char *model, *corpus;
    long batch, input_length, steps, warmup, reps, cores;
    int dense, precision, gemm, format;
} bench_opts;

static const char *const precision_choices[] = {"all", "fp32", "bf16", NULL};
static const char *const gemm_choices[] = {"all", "fast", "exact", NULL};

/* Wall time of the trainer's loop at the end of the steps the callback cares about. */
typedef struct {
    uint64_t first, last;  /* steps (updates applied) at which to read the clock */
    double t_first, t_last;
} step_clock;

static void on_progress(void *ctx, const model_train_progress *p)
{
    step_clock *c = ctx;
    if (p->step == c->first)
        c->t_first = p->wall_s;
    if (p->step == c->last)
        c->t_last = p->wall_s;
}

/* Trains steps of cfg and returns the timed seconds of steps warmup+1 .. steps-1 (< 0 on
 * error, printed); *target_length receives the decoder length span corruption gives. */
static double time_training(const model_cfg *cfg, const bench_opts *o, run_precision prec,
                            sim_gemm_mode gemm, int *target_length)
{
    ss_err err = {0};
    model_train_opts t;
    memset(&t, 0, sizeof t);
    if (run_train_cfg_defaults(&t.train, &err) != SS_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return -1;
    }
    char dir[] = "/tmp/switchsim-bench-train-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("bench_train: mkdtemp");
        return -1;
    }
    t.model = cfg;
    t.train.precision = prec;
    t.train.gemm = gemm;
    t.train.eval_every = 0;
    t.train.checkpoint_every = 0;
    t.train.log_every = 1 << 30;
    t.train.data.heldout_fraction = 0.0;
    snprintf(t.train.data.corpus, sizeof t.train.data.corpus, "%s", o->corpus);
    t.batch = (int)o->batch;
    t.input_length = (int)o->input_length;
    t.steps = (uint64_t)o->steps;
    t.seed = 1;
    t.denormals = BF16_DENORMALS_FLUSH;
    t.out_dir = dir;
    step_clock clk = {(uint64_t)o->warmup, (uint64_t)o->steps - 1, -1, -1};
    t.progress = on_progress;
    t.progress_ctx = &clk;
    json_t *res = NULL;
    ss_status st = model_train_run(&t, &res, &err);
    if (st == SS_OK)
        *target_length = (int)json_integer_value(json_object_get(res, "target_length"));
    json_decref(res);
    file_remove_tree(dir);
    if (st != SS_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return -1;
    }
    return clk.t_last - clk.t_first;
}

/* The distributed steps of one configuration (data loaded, trainer built). */
typedef struct {
    model_data_corpus corpus;
    model_data ds;
    model_dtrain *d;
    int data_ready;
    int32_t *in, *tgt, *dec;
    run_train_cfg tr;
} dist_run;

static ss_status dist_setup(dist_run *r, const model_cfg *cfg, const bench_opts *o,
                            run_precision prec, sim_gemm_mode gemm, ss_err *err)
{
    ss_status st = run_train_cfg_defaults(&r->tr, err);
    if (st != SS_OK)
        return st;
    r->tr.precision = prec;
    r->tr.gemm = gemm;
    r->tr.data.heldout_fraction = 0.0;
    snprintf(r->tr.data.corpus, sizeof r->tr.data.corpus, "%s", o->corpus);
    st = model_train_data_open(&r->corpus, &r->ds, &r->tr, (int)o->input_length, 0, 1, err);
    if (st != SS_OK)
        return st;
    r->data_ready = 1;
    const int T_out = r->ds.cfg.target_length;
    const model_dtrain_cfg dc = {.model = cfg, .shape = {(int)o->batch, (int)o->input_length,
                                                         T_out},
                                 .nx = model_train_numerics(&r->tr, BF16_DENORMALS_FLUSH),
                                 .cores = (int)o->cores, .train = &r->tr, .seed = 1};
    if ((st = model_dtrain_init(&r->d, &dc, err)) != SS_OK)
        return st;
    r->in = calloc((size_t)(o->batch * o->input_length), sizeof(int32_t));
    r->tgt = calloc((size_t)o->batch * (size_t)T_out, sizeof(int32_t));
    r->dec = calloc((size_t)o->batch * (size_t)T_out, sizeof(int32_t));
    if (!r->in || !r->tgt || !r->dec)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the batches");
    return SS_OK;
}

static void dist_free(dist_run *r)
{
    model_dtrain_free(r->d);
    free(r->in);
    free(r->tgt);
    free(r->dec);
    if (r->data_ready)
        model_data_free(&r->ds);
    model_data_corpus_free(&r->corpus);
}

/* As time_training, on o->cores simulated cores through model_dtrain_step. */
static double time_distributed(const model_cfg *cfg, const bench_opts *o, run_precision prec,
                               sim_gemm_mode gemm, int *target_length)
{
    ss_err err = {0};
    dist_run r;
    memset(&r, 0, sizeof r);
    ss_status st = dist_setup(&r, cfg, o, prec, gemm, &err);
    const model_lr_schedule sched = run_train_schedule(&r.tr);
    double t_first = bench_now_s(), t_last = t_first;
    for (long s = 0; st == SS_OK && s < o->steps; s++) {
        st = model_data_batch(r.in, r.tgt, r.dec, &r.ds, MODEL_DATA_TRAIN, (uint64_t)s,
                              (int)o->batch, &err);
        if (st == SS_OK)
            st = model_dtrain_step(r.d, r.in, r.dec, r.tgt, (uint64_t)s,
                                   (float)model_lr_at(&sched, (uint64_t)s), NULL, &err);
        if (s + 1 == o->warmup)
            t_first = bench_now_s();
        if (s + 1 == o->steps - 1)
            t_last = bench_now_s();
    }
    if (st == SS_OK)
        *target_length = r.ds.cfg.target_length;
    dist_free(&r);
    if (st != SS_OK) {
        fprintf(stderr, "bench_train: %ld cores: %s\n", o->cores, err.msg);
        return -1;
    }
    return t_last - t_first;
}

/* One configuration: the model, numerics and cores (1: model_train_run), and its timed
 * seconds per round. */
typedef struct {
    const model_cfg *cfg;
    run_precision prec;
    sim_gemm_mode gemm;
    int cores;
    double secs[MAX_REPS];
    int nsecs;
    int target_length;
} config;

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static json_t *result_row(config *c, const bench_opts *o)
{
    model_counts cnt;
    ss_err err = {0};
    if (model_count(c->cfg, o->input_length, c->target_length, &cnt, &err) != SS_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return NULL;
    }
    qsort(c->secs, (size_t)c->nsecs, sizeof(double), cmp_double);
    const double timed = (double)(o->steps - 1 - o->warmup);
    const double best_s = c->secs[0] / timed, median_s = c->secs[c->nsecs / 2] / timed;
    const double flops = (double)cnt.train_matmul_flops_per_seq * (double)o->batch;
    const double tokens = (double)o->batch * (double)o->input_length;
    json_t *r = json_object();
    json_object_set_new(r, "model", json_string(c->cfg->name));
    json_object_set_new(r, "precision", json_string(run_precision_name(c->prec)));
    json_object_set_new(r, "gemm", json_string(sim_gemm_mode_name(c->gemm)));
    json_object_set_new(r, "cores", json_integer(c->cores));
    json_object_set_new(r, "batch", json_integer(o->batch));
    json_object_set_new(r, "input_length", json_integer(o->input_length));
    json_object_set_new(r, "target_length", json_integer(c->target_length));
    json_object_set_new(r, "timed_steps", json_integer((json_int_t)timed));
    json_object_set_new(r, "reps", json_integer(c->nsecs));
    json_object_set_new(r, "train_gflop_per_step", json_real(flops * 1e-9));
    json_object_set_new(r, "step_ms_best", json_real(1e3 * best_s));
    json_object_set_new(r, "step_ms_median", json_real(1e3 * median_s));
    json_object_set_new(r, "tokens_per_s_best", json_real(tokens / best_s));
    json_object_set_new(r, "tokens_per_s_median", json_real(tokens / median_s));
    json_object_set_new(r, "gflops_best", json_real(flops * 1e-9 / best_s));
    json_object_set_new(r, "gflops_median", json_real(flops * 1e-9 / median_s));
    return r;
}

static int parse(bench_opts *o, int argc, char **argv)
{
    cli_opt opts[] = {
        {"model", CLI_OPT_STR, &o->model, "FILE", "model config (a Switch model)", NULL, 0, 0,
         0},
        {"corpus", CLI_OPT_STR, &o->corpus, "PATH", "fortune file or directory", NULL, 0, 0, 0},
        {"batch", CLI_OPT_INT, &o->batch, "B", "sequences per step", NULL, 1, 4096, 0},
        {"input-length", CLI_OPT_INT, &o->input_length, "T", "input tokens per sequence", NULL,
         8, 4096, 0},
        {"steps", CLI_OPT_INT, &o->steps, "N", "training steps per configuration", NULL, 3,
         100000, 0},
        {"warmup", CLI_OPT_INT, &o->warmup, "W", "first steps left out of the timing", NULL, 0,
         1000, 0},
        {"reps", CLI_OPT_INT, &o->reps, "R",
         "rounds; every configuration trains once per round (best and median reported)", NULL,
         1, MAX_REPS, 0},
        {"cores", CLI_OPT_INT, &o->cores, "P",
         "also train each configuration on P simulated cores (model/dtrain.h); 1: not", NULL,
         1, 1024, 0},
        {"dense", CLI_OPT_FLAG, &o->dense, NULL,
         "also the dense variant (every Switch layer a dense FFN of the same d_ff)", NULL, 0, 0,
         0},
        {"precision", CLI_OPT_CHOICE, &o->precision, NULL, "precisions to run",
         precision_choices, 0, 0, 0},
        {"gemm", CLI_OPT_CHOICE, &o->gemm, NULL, "GEMM modes to run", gemm_choices, 0, 0, 0},
        {"format", CLI_OPT_CHOICE, &o->format, NULL, "output format", cli_format_choices, 0, 0,
         0},
    };
    cli_spec spec = {
        "bench_train [OPTIONS]",
        "Training throughput of a small Switch model through the real trainer\n"
        "(model_train_run: forward, backward, Adafactor), in tokens/s and achieved GFLOP/s\n"
        "(model/count.h's executed matmul FLOPs x 3 per sequence), per precision and GEMM mode,\n"
        "on one device and on --cores simulated cores (the distributed trainer).",
        opts,
        (int)(sizeof opts / sizeof opts[0]),
        0,
        0,
        "example:\n  bench_train --steps 20 --dense\n  bench_train --cores 8 --precision bf16 --gemm fast",
    };
    char *pos[argc];
    int npos = 0;
    return cli_parse(&spec, argc, argv, pos, &npos);
}

int main(int argc, char **argv)
{
    bench_opts o = {"configs/models/switch-tiny.yaml", "/usr/share/games/fortunes", 16, 128,
                    12, 2, 3, 8, 0, 0, 0, EMIT_TABLE};
    const int p = parse(&o, argc, argv);
    if (p != CLI_PARSE_OK)
        return p == CLI_PARSE_HELP ? 0 : 2;
    if (o.warmup >= o.steps - 1) {
        fprintf(stderr, "bench_train: --warmup %ld leaves no timed step of %ld\n", o.warmup,
                o.steps);
        return 2;
    }
    ss_err err = {0};
    model_cfg models[2];
    if (model_cfg_load(&models[0], o.model, &err) != SS_OK) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    models[1] = models[0];
    models[1].has_switch = 0;
    memset(&models[1].sw, 0, sizeof models[1].sw);
    snprintf(models[1].name, sizeof models[1].name, "%.*s-dense",
             (int)(sizeof models[1].name - 7), models[0].name);
    config cfgs[16];
    int n = 0;
    for (int m = 0; m < (o.dense ? 2 : 1); m++)
        for (int pr = 0; pr < 2; pr++)
            for (int g = 0; g < 2; g++)
                for (int dist = 0; dist < (o.cores > 1 ? 2 : 1); dist++)
                    if ((!o.precision || o.precision == pr + 1) && (!o.gemm || o.gemm == g + 1))
                        cfgs[n++] = (config){&models[m],
                                             pr ? RUN_PRECISION_BF16 : RUN_PRECISION_FP32,
                                             g ? SIM_GEMM_EXACT : SIM_GEMM_FAST,
                                             dist ? (int)o.cores : 1, {0}, 0, 0};
    for (long rep = 0; rep < o.reps; rep++)
        for (int i = 0; i < n; i++) {
            const config *c = &cfgs[i];
            const double secs =
                c->cores > 1
                    ? time_distributed(c->cfg, &o, c->prec, c->gemm, &cfgs[i].target_length)
                    : time_training(c->cfg, &o, c->prec, c->gemm, &cfgs[i].target_length);
            if (secs <= 0)
                return 1;
            cfgs[i].secs[cfgs[i].nsecs++] = secs;
        }
    json_t *rows = json_array();
    int failed = 0;
    for (int i = 0; i < n; i++) {
        json_t *r = result_row(&cfgs[i], &o);
        failed |= !r;
        if (r)
            json_array_append_new(rows, r);
    }
    json_t *out = json_object();
    json_object_set_new(out, "openblas_core", json_string(openblas_get_corename()));
    json_object_set_new(out, "openblas_threads", json_integer(openblas_get_num_threads()));
    json_object_set_new(out, "runs", rows);
    const int bad = emit_result(stdout, out, (emit_format)o.format) != 0;
    json_decref(out);
    return failed || bad ? 1 : 0;
}
