/* This file implements the distributed training run of dtrain.h (model_dtrain_run): the run's
 * data (as model/train.h reads it), the plan's cores and topology, one model_dtrain_step per
 * training step, the simulated step time of each timed step (model_dtrain_step_seconds: the
 * step program of model/stepgen.h sized by the step's real routing, lowered by the
 * collectives module and timed by the analytic engine), held-out evaluation (model/train.h's
 * model_train_evaluate on the gathered model, each core's rows as that core routes them),
 * checkpoints of the whole model (model/checkpoint.h) with model/train.h's directory policy
 * and resume, metrics.jsonl and results.json.
 *
 * Invariants: every training line describes one applied update (step = updates applied after
 * it); sim_step_s is present exactly on the timed steps (every time_every steps and the last);
 * everything that decides step s + 1 is the cores' parameters and optimizer states (the
 * dropout streams are keyed by step, the data of step s is a pure function of s), which is
 * what a checkpoint holds, so a resumed run writes the uninterrupted run's lines (but
 * wall_s); checkpoint.bin and results.json are written atomically.
 * reference: dtrain.h, model/stepgen.h, model/train.h.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/fileio.h"
#include "model/checkpoint.h"
#include "model/data.h"
#include "model/dtrain.h"
#include "model/plan.h"
#include "model/stepgen.h"
#include "model/train.h"
#include "sim/engine.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the simulated step time ------------------------------------------------------------- */

/* A routing histogram from first-choice counts [nswitch * E] (a layer without any choice gets
 * uniform shares). fractions is malloc'd into r. */
static ss_status histogram_of(model_routing *r, const int32_t *tpe, int nswitch, int E,
                              ss_err *err)
{
    memset(r, 0, sizeof *r);
    r->kind = MODEL_ROUTING_HISTOGRAM;
    r->layers = nswitch;
    r->experts = E;
    r->fractions = calloc((size_t)nswitch * (size_t)E + 1, sizeof(double));
    if (!r->fractions)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for a routing histogram");
    for (int l = 0; l < nswitch; l++) {
        const int32_t *row = tpe + (size_t)l * (size_t)E;
        double sum = 0.0;
        for (int e = 0; e < E; e++)
            sum += row[e];
        for (int e = 0; e < E; e++)
            r->fractions[(size_t)l * (size_t)E + (size_t)e] = sum > 0.0 ? row[e] / sum
                                                                        : 1.0 / E;
    }
    return SS_OK;
}

/* Builds (stepgen), lowers (collectives) and times (analytic engine) one step program. */
static ss_status time_program(const run_cfg *run, const model_plan *plan, const sim_topo *topo,
                              const model_routing *routing, double *seconds, ss_err *err)
{
    const model_stepgen_opts so = {.remat = run->plan.remat, .overlap_grad_reduce = 1,
                                   .exact_counts = 1};
    sim_program gen, low;
    memset(&gen, 0, sizeof gen);
    memset(&low, 0, sizeof low);
    ss_status st = model_stepgen_build(&gen, NULL, plan, run, routing, &so, err);
    if (st != SS_OK)
        return st;
    const coll_cost cost = coll_cost_of_chip(&run->pod.chip, SIM_PACKET_BYTES_DEFAULT);
    st = coll_program_lower(&gen, topo, &cost, &low, err);
    sim_program_free(&gen);
    if (st != SS_OK)
        return st;
    const sim_engine_cfg cfg = {.chip = &run->pod.chip, .topo = topo,
                                .packet_bytes = SIM_PACKET_BYTES_DEFAULT};
    sim_result res;
    st = sim_engine_run(SIM_ENGINE_ANALYTIC, &low, &cfg, &res, err);
    sim_program_free(&low);
    if (st == SS_OK) {
        *seconds = res.makespan_s;
        sim_result_free(&res);
    }
    return st;
}

ss_status model_dtrain_step_seconds(const run_cfg *run, const int32_t *tokens_per_expert,
                                    int nswitch, double *seconds, ss_err *err)
{
    SS_ASSERT(run && seconds);
    model_plan plan;
    sim_topo topo;
    ss_status st = sim_pod_topo(&run->pod, &topo, err);
    if (st != SS_OK)
        return st;
    if ((st = model_plan_make(&plan, run, err)) != SS_OK)
        return st;
    model_routing routing = {0};
    const int hist = tokens_per_expert && run->model.has_switch && nswitch > 0;
    if (hist)
        st = histogram_of(&routing, tokens_per_expert, nswitch, run->model.sw.num_experts, err);
    if (st == SS_OK)
        st = time_program(run, &plan, &topo, hist ? &routing : NULL, seconds, err);
    free(routing.fractions);
    model_plan_free(&plan);
    if (st != SS_OK)
        ss_err_prefix(err, "simulated step time of run %s", run->name);
    return st;
}

/* ---- the run ----------------------------------------------------------------------------- */

typedef struct {
    const model_dtrain_run_opts *o;
    const run_cfg *run;
    model_data_corpus corpus;
    model_data ds;
    int data_ready;
    model_dtrain *d;
    sim_topo topo;
    model_plan plan;
    int have_plan;
    int32_t *core_of;           /* [cores] */
    int32_t *inputs, *targets, *dec_inputs;
    model_lr_schedule sched;
    uint64_t steps;              /* the total to reach */
    uint64_t first_step;         /* where this invocation starts (a checkpoint's step) */
    uint64_t tokens;             /* non-pad targets trained on, over all invocations */
    double wall_before;          /* training seconds of earlier invocations */
    FILE *metrics;
    model_train_paths paths;     /* with out_dir */
    model_ckpt_header ident;     /* what a checkpoint of this run carries */
    float *ck_params, *ck_opt;   /* [nparams], [opt size]: the whole model's state */
    model_t5 em;                 /* evaluation: one core's shape, the gathered parameters */
    int have_em;
    int have_eval;
    double eval_loss, eval_accuracy;
    uint64_t eval_step;
    double last_loss, last_accuracy;
    double sim_first, sim_last, sim_sum;
    uint64_t sim_count;
    double t0, wall;             /* this invocation's loop start and seconds */
} drun;

static ss_status check_run(const run_cfg *run, ss_err *err)
{
    if (run->plan.model != 1)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "run %s: plan.model = %d: the functional distributed trainer runs "
                          "data and expert parallelism only (plan.model must be 1; `switchsim "
                          "estimate` times model parallelism)",
                          run->name, run->plan.model);
    return SS_OK;
}

/* The checkpoint identity: model/train.h's settings hash of the run, extended by the core
 * count (the optimizer state's layout, dtrain.h, depends on it). */
static void make_ident(drun *r)
{
    const run_cfg *run = r->run;
    const model_train_opts to = {.model = &run->model, .train = run->train,
                                 .batch = run->batch, .input_length = run->input_length,
                                 .seed = run->seed, .denormals = run->pod.chip.denormals};
    char cores[64];
    snprintf(cores, sizeof cores, "distributed cores=%d", r->plan.n);
    model_ckpt_header *h = &r->ident;
    snprintf(h->model_name, sizeof h->model_name, "%s", run->model.name);
    h->model_hash = model_ckpt_model_hash(&run->model);
    h->settings_hash = model_ckpt_fnv1a(
        model_train_settings_hash(&to, r->ds.cfg.target_length, r->corpus.text,
                                  r->corpus.n_bytes),
        cores, strlen(cores));
    h->nparams = model_dtrain_nparams(r->d);
    h->optimizer = (uint32_t)run->train.optimizer;
    h->opt_state_size = model_dtrain_opt_size(r->d);
    h->seed = run->seed;
}

static ss_status save_checkpoint(drun *r, uint64_t step, ss_err *err)
{
    model_ckpt_header h = r->ident;
    h.step = step;
    h.data_position = step * (uint64_t)r->run->batch;
    h.tokens = r->tokens;
    h.wall_seconds = r->wall_before + (now_s() - r->t0);
    memset(&h.rng, 0, sizeof h.rng); /* unused: the cores' streams are keyed by step */
    model_dtrain_params(r->d, r->ck_params);
    model_dtrain_opt_state(r->d, r->ck_opt);
    return model_ckpt_write(r->paths.ckpt, &h, r->ck_params, r->ck_opt, err);
}

static ss_status resume(drun *r, ss_err *err)
{
    model_ckpt_header got;
    ss_status st = model_ckpt_read(r->paths.ckpt, &r->ident, &got, r->ck_params, r->ck_opt,
                                   err);
    if (st == SS_ERR_DATA)
        ss_err_prefix(err, "distributed run on %d cores (a checkpoint belongs to one core "
                      "count)", r->plan.n);
    if (st != SS_OK)
        return st;
    const uint64_t pos = got.step * (uint64_t)r->run->batch;
    if (got.data_position != pos)
        return ss_err_set(err, SS_ERR_DATA,
                          "%s: data position check failed: expected %llu examples for step "
                          "%llu at batch %d, got %llu",
                          r->paths.ckpt, (unsigned long long)pos, (unsigned long long)got.step,
                          r->run->batch, (unsigned long long)got.data_position);
    model_dtrain_set_state(r->d, r->ck_params, r->ck_opt);
    r->first_step = got.step;
    r->tokens = got.tokens;
    r->wall_before = got.wall_seconds;
    return model_train_metrics_truncate(r->paths.metrics, got.step, err);
}

/* The evaluation model (when the corpus has a held-out split): one core's shape. */
static ss_status open_eval(drun *r, ss_err *err)
{
    const run_cfg *run = r->run;
    if (r->ds.n_heldout == 0)
        return SS_OK;
    const model_t5_shape shape = {run->batch / r->plan.n, run->input_length,
                                  r->ds.cfg.target_length};
    const model_numerics nx = model_train_numerics(&run->train, run->pod.chip.denormals);
    ss_status st = model_t5_init(&r->em, &run->model, shape, &nx, err);
    if (st != SS_OK)
        ss_err_prefix(err, "evaluation model");
    r->have_em = st == SS_OK;
    return st;
}

/* Checkpoint buffers, then resume and the metrics file (with out_dir). */
static ss_status open_out(drun *r, ss_err *err)
{
    make_ident(r);
    r->ck_params = calloc(r->ident.nparams + 1, sizeof(float));
    r->ck_opt = calloc(r->ident.opt_state_size + 1, sizeof(float));
    if (!r->ck_params || !r->ck_opt)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the model's state (%llu + "
                          "%llu floats)", (unsigned long long)r->ident.nparams,
                          (unsigned long long)r->ident.opt_state_size);
    if (!r->o->out_dir)
        return SS_OK;
    ss_status st = r->o->resume ? resume(r, err) : SS_OK;
    return st == SS_OK ? model_train_metrics_open(&r->paths, r->o->resume, &r->metrics, err)
                       : st;
}

static ss_status setup(drun *r, ss_err *err)
{
    const run_cfg *run = r->run;
    ss_status st = check_run(run, err);
    if (st == SS_OK && r->o->resume && !r->o->out_dir)
        st = ss_err_set(err, SS_ERR_USAGE, "run %s: resume needs an output directory",
                        run->name);
    if (st == SS_OK && r->o->out_dir)
        st = model_train_out_dir(r->o->out_dir, r->o->resume, r->o->force, &r->paths, err);
    if (st == SS_OK)
        st = sim_pod_topo(&run->pod, &r->topo, err);
    if (st == SS_OK && (st = model_plan_make(&r->plan, run, err)) == SS_OK)
        r->have_plan = 1;
    if (st != SS_OK)
        return st;
    const int P = r->plan.n;
    r->core_of = calloc((size_t)P, sizeof *r->core_of);
    if (!r->core_of)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the core map");
    for (int c = 0; c < P; c++)
        r->core_of[c] = r->plan.core_of[c];
    st = model_train_data_open(&r->corpus, &r->ds, &run->train, run->input_length,
                               run->target_length, run->seed, err);
    if (st != SS_OK)
        return st;
    r->data_ready = 1;
    const int T_out = r->ds.cfg.target_length;
    const model_dtrain_cfg dc = {
        .model = &run->model, .shape = {run->batch, run->input_length, T_out},
        .nx = model_train_numerics(&run->train, run->pod.chip.denormals), .cores = P,
        .train = &run->train, .seed = run->seed, .topo = &r->topo, .core_of = r->core_of,
        .cost = coll_cost_of_chip(&run->pod.chip, SIM_PACKET_BYTES_DEFAULT)};
    if ((st = model_dtrain_init(&r->d, &dc, err)) != SS_OK)
        return st;
    const size_t B = (size_t)run->batch;
    r->inputs = calloc(B * (size_t)run->input_length + 1, sizeof(int32_t));
    r->targets = calloc(B * (size_t)T_out + 1, sizeof(int32_t));
    r->dec_inputs = calloc(B * (size_t)T_out + 1, sizeof(int32_t));
    if (!r->inputs || !r->targets || !r->dec_inputs)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the batches");
    r->sched = run_train_schedule(&run->train);
    st = open_eval(r, err);
    return st == SS_OK ? open_out(r, err) : st;
}

static void drun_free(drun *r)
{
    if (r->metrics)
        fclose(r->metrics);
    model_dtrain_free(r->d);
    if (r->have_em)
        model_t5_free(&r->em);
    free(r->ck_params);
    free(r->ck_opt);
    if (r->have_plan)
        model_plan_free(&r->plan);
    free(r->core_of);
    free(r->inputs);
    free(r->targets);
    free(r->dec_inputs);
    if (r->data_ready)
        model_data_free(&r->ds);
    model_data_corpus_free(&r->corpus);
}

static json_t *doubles_json(const double *x, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_real(x[i]));
    return a;
}

/* [[row of n counts] per layer] from [layers * n]. */
static json_t *counts_json(const void *x, int is64, size_t layers, size_t n)
{
    json_t *a = json_array();
    for (size_t l = 0; l < layers; l++) {
        json_t *row = json_array();
        for (size_t i = 0; i < n; i++) {
            const size_t j = l * n + i;
            const json_int_t v = is64 ? (json_int_t)((const uint64_t *)x)[j]
                                      : (json_int_t)((const int32_t *)x)[j];
            json_array_append_new(row, json_integer(v));
        }
        json_array_append_new(a, row);
    }
    return a;
}

static json_t *step_line(const drun *r, const model_dtrain_metrics *m, uint64_t step,
                         double lr, int timed, double sim_s, double wall)
{
    const size_t ns = (size_t)m->nswitch;
    json_t *j = json_object();
    json_object_set_new(j, "split", json_string("train"));
    json_object_set_new(j, "step", json_integer((json_int_t)step));
    json_object_set_new(j, "lr", json_real(lr));
    json_object_set_new(j, "loss", json_real(m->loss));
    json_object_set_new(j, "aux_loss", json_real(m->aux_loss));
    json_object_set_new(j, "z_loss", json_real(m->z_loss));
    json_object_set_new(j, "total", json_real(m->total));
    json_object_set_new(j, "grad_norm", json_real(m->grad_norm));
    json_object_set_new(j, "accuracy",
                        json_real(m->tokens ? (double)m->correct / (double)m->tokens : 0.0));
    json_object_set_new(j, "tokens", json_integer((json_int_t)m->tokens));
    json_object_set_new(j, "dropped_fraction", doubles_json(m->dropped_fraction, ns));
    json_object_set_new(j, "tokens_per_expert",
                        counts_json(m->tokens_per_expert, 0, ns, (size_t)m->num_experts));
    json_object_set_new(j, "router_entropy", doubles_json(m->router_entropy, ns));
    json_object_set_new(j, "received_rows",
                        counts_json(m->received_rows, 1, ns, (size_t)r->plan.n));
    if (timed)
        json_object_set_new(j, "sim_step_s", json_real(sim_s));
    json_object_set_new(j, "wall_s", json_real(wall));
    return j;
}

static ss_status write_line(drun *r, json_t *line, ss_err *err)
{
    if (!r->metrics)
        return SS_OK;
    char *text = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (!text)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for a metrics line");
    const int bad = fprintf(r->metrics, "%s\n", text) < 0 || fflush(r->metrics) != 0;
    free(text);
    return bad ? ss_err_set(err, SS_ERR_IO, "cannot write %s", r->paths.metrics) : SS_OK;
}

/* Held-out evaluation after `step` updates: the gathered parameters on the evaluation
 * model, every held-out batch as the cores' P shards; its line goes to metrics.jsonl when
 * `write` (not for a run that trained nothing: its results still get the figures). */
static ss_status evaluate(drun *r, uint64_t step, int write, ss_err *err)
{
    model_dtrain_params(r->d, r->em.params);
    const model_train_eval_opts eo = {.m = &r->em, .ds = &r->ds, .batch = r->run->batch,
                                      .shards = r->plan.n,
                                      .batches = r->run->train.eval_batches,
                                      .inputs = r->inputs, .targets = r->targets,
                                      .dec_inputs = r->dec_inputs};
    model_train_eval res;
    json_t *line = NULL;
    ss_status st = model_train_evaluate(&eo, step, &res, &line, err);
    if (st != SS_OK)
        return st;
    r->have_eval = 1;
    r->eval_loss = res.loss;
    r->eval_accuracy = res.accuracy;
    r->eval_step = step;
    json_object_set_new(line, "wall_s", json_real(now_s() - r->t0));
    st = write ? write_line(r, line, err) : SS_OK;
    json_decref(line);
    return st;
}

static int due(uint64_t step, uint64_t last, int every)
{
    return step == last || (every > 0 && step % (uint64_t)every == 0);
}

/* After `step` updates: an evaluation and a checkpoint, as due (model/train.h's cadence). */
static ss_status after_step(drun *r, uint64_t step, ss_err *err)
{
    const run_train_cfg *tr = &r->run->train;
    ss_status st = SS_OK;
    if (r->have_em && due(step, r->steps, tr->eval_every))
        st = evaluate(r, step, 1, err);
    if (st == SS_OK && r->o->out_dir && due(step, r->steps, tr->checkpoint_every))
        st = save_checkpoint(r, step, err);
    return st;
}

static ss_status train_step(drun *r, uint64_t step, double t0, ss_err *err)
{
    const run_cfg *run = r->run;
    ss_status st = model_data_batch(r->inputs, r->targets, r->dec_inputs, &r->ds,
                                    MODEL_DATA_TRAIN, step, run->batch, err);
    const double lr = model_lr_at(&r->sched, step);
    model_dtrain_metrics m;
    if (st == SS_OK)
        st = model_dtrain_step(r->d, r->inputs, r->dec_inputs, r->targets, step, (float)lr, &m,
                               err);
    if (st != SS_OK) {
        ss_err_prefix(err, "step %llu", (unsigned long long)step);
        return st;
    }
    const int every = r->o->time_every > 0 ? r->o->time_every : 1;
    const int timed = (step + 1) % (uint64_t)every == 0 || step + 1 == r->steps;
    double sim_s = 0.0;
    if (timed) {
        st = model_dtrain_step_seconds(run, m.tokens_per_expert, m.nswitch, &sim_s, err);
        if (st != SS_OK)
            return st;
        if (r->sim_count == 0)
            r->sim_first = sim_s;
        r->sim_last = sim_s;
        r->sim_sum += sim_s;
        r->sim_count++;
    }
    r->tokens += m.tokens;
    r->last_loss = m.loss;
    r->last_accuracy = m.tokens ? (double)m.correct / (double)m.tokens : 0.0;
    json_t *line = step_line(r, &m, step + 1, lr, timed, sim_s, now_s() - t0);
    st = write_line(r, line, err);
    json_decref(line);
    return st == SS_OK ? after_step(r, step + 1, err) : st;
}

static json_t *results_json(const drun *r)
{
    const run_cfg *run = r->run;
    json_t *j = json_object();
    json_object_set_new(j, "model", json_string(run->model.name));
    json_object_set_new(j, "run", json_string(run->name));
    json_object_set_new(j, "cores", json_integer(r->plan.n));
    json_object_set_new(j, "pod", json_string(run->pod.name));
    json_t *plan = json_object();
    json_object_set_new(plan, "data", json_integer(run->plan.data));
    json_object_set_new(plan, "model", json_integer(run->plan.model));
    json_object_set_new(plan, "experts_per_core", json_integer(r->plan.experts_per_core));
    json_object_set_new(plan, "expert_replicas", json_integer(r->plan.expert_replicas));
    json_object_set_new(j, "plan", plan);
    json_object_set_new(j, "seed", json_integer((json_int_t)run->seed));
    const uint64_t ran = r->steps > r->first_step ? r->steps - r->first_step : 0;
    json_object_set_new(j, "steps", json_integer((json_int_t)(ran ? r->steps : r->first_step)));
    json_object_set_new(j, "first_step", json_integer((json_int_t)r->first_step));
    json_object_set_new(j, "steps_run", json_integer((json_int_t)ran));
    json_object_set_new(j, "batch", json_integer(run->batch));
    json_object_set_new(j, "input_length", json_integer(run->input_length));
    json_object_set_new(j, "target_length", json_integer(r->ds.cfg.target_length));
    json_object_set_new(j, "nparams", json_integer((json_int_t)model_dtrain_nparams(r->d)));
    json_t *nx = json_object();
    json_object_set_new(nx, "precision", json_string(run_precision_name(run->train.precision)));
    json_object_set_new(nx, "gemm", json_string(run->train.gemm == SIM_GEMM_EXACT ? "exact"
                                                                                  : "fast"));
    json_object_set_new(j, "numerics", nx);
    json_t *fin = json_object();
    json_object_set_new(fin, "train_loss", ran ? json_real(r->last_loss) : json_null());
    json_object_set_new(fin, "train_accuracy", ran ? json_real(r->last_accuracy) : json_null());
    json_object_set_new(fin, "eval_loss", r->have_eval ? json_real(r->eval_loss) : json_null());
    json_object_set_new(fin, "eval_accuracy",
                        r->have_eval ? json_real(r->eval_accuracy) : json_null());
    json_object_set_new(fin, "eval_step",
                        r->have_eval ? json_integer((json_int_t)r->eval_step) : json_null());
    json_object_set_new(j, "final", fin);
    const double mean = r->sim_count ? r->sim_sum / (double)r->sim_count : 0.0;
    json_t *sim = json_object();
    json_object_set_new(sim, "first", json_real(r->sim_first));
    json_object_set_new(sim, "last", json_real(r->sim_last));
    json_object_set_new(sim, "mean", json_real(mean));
    json_object_set_new(sim, "timed_steps", json_integer((json_int_t)r->sim_count));
    json_object_set_new(j, "sim_step_s", sim);
    json_object_set_new(j, "sim_examples_per_s",
                        json_real(mean > 0.0 ? (double)run->batch / mean : 0.0));
    const double tokens = (double)ran * (double)run->batch * (double)run->input_length;
    json_object_set_new(j, "tokens_per_s", json_real(r->wall > 0.0 ? tokens / r->wall : 0.0));
    json_object_set_new(j, "wall_s", json_real(r->wall));
    json_object_set_new(j, "out_dir", r->o->out_dir ? json_string(r->o->out_dir) : json_null());
    json_object_set_new(j, "versions",
                        r->o->versions ? json_deep_copy(r->o->versions) : json_null());
    return j;
}

static ss_status write_results(const drun *r, const json_t *res, ss_err *err)
{
    if (!r->o->out_dir)
        return SS_OK;
    char *text = json_dumps(res, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    if (!text)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for results.json");
    ss_status st = file_write_atomic(r->paths.results, text, strlen(text), err);
    free(text);
    return st;
}

ss_status model_dtrain_run(const model_dtrain_run_opts *o, json_t **results, ss_err *err)
{
    SS_ASSERT(o && o->run && results);
    *results = NULL;
    drun r;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.run = o->run;
    r.steps = o->steps ? o->steps : (uint64_t)o->run->steps;
    ss_status st = setup(&r, err);
    r.t0 = now_s();
    for (uint64_t s = r.first_step; st == SS_OK && s < r.steps; s++)
        st = train_step(&r, s, r.t0, err);
    r.wall = now_s() - r.t0;
    if (st == SS_OK && r.have_em && !r.have_eval)
        st = evaluate(&r, r.first_step, 0, err);
    if (st == SS_OK) {
        json_t *res = results_json(&r);
        st = write_results(&r, res, err);
        if (st == SS_OK)
            *results = res;
        else
            json_decref(res);
    }
    drun_free(&r);
    return st;
}
