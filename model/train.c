/* This file implements the functional training loop of train.h: setting up the corpus,
 * dataset, model and optimizer state from the options, the output-directory policy, resuming
 * from a checkpoint (with metrics truncation), the step (batch, forward, backward, clipping,
 * update), held-out evaluation, the metrics lines, checkpoints and results.json.
 *
 * Invariants: everything that decides step s + 1 (parameters, optimizer state, step, the
 * training rng stream) lives in the trainer struct and in the checkpoint; the data of step s
 * is a pure function of (corpus, data settings, s); evaluation draws no random numbers; every
 * file the run writes is either appended line by line and flushed (metrics.jsonl) or replaced
 * atomically (checkpoint.bin, results.json, a truncated metrics.jsonl).
 * reference: see train.h.
 */
#include "model/train.h"

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
#include "model/optim.h"
#include "model/t5.h"

#define METRICS_MAX_BYTES ((size_t)1 << 32) /* metrics.jsonl read back on resume */

typedef struct {
    const model_train_opts *o;
    model_data_corpus corpus;
    model_data ds;
    int data_ready;
    model_t5 m;
    model_lr_schedule sched;
    float *opt_state;          /* [opt_size] */
    size_t opt_size;
    int32_t *inputs;           /* [B, T_in] */
    int32_t *targets;          /* [B, T_out] */
    int32_t *dec_inputs;       /* [B, T_out] */
    rng_state rng;             /* the training stream (dropout, jitter) */
    uint64_t step;             /* updates applied */
    uint64_t first_step;       /* where this invocation started */
    uint64_t tokens;           /* non-pad targets trained on */
    double wall_before;        /* training seconds of earlier invocations (checkpoint) */
    double t_start;            /* monotonic clock at the start of this invocation's loop */
    FILE *metrics;
    model_train_paths paths;   /* DIR/checkpoint.bin, metrics.jsonl, results.json */
    model_ckpt_header ident;   /* the identity fields a checkpoint of this run carries */
    double last_loss, last_accuracy, last_lr;
    int have_eval;
    double eval_loss, eval_accuracy;
    uint64_t eval_step;
    uint64_t *routing;         /* [nswitch * E] first choices summed over this invocation's
                                  steps, for --record-routing; NULL when not recording */
    int routing_layers, routing_experts;
} trainer;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double wall_total(const trainer *t)
{
    return t->wall_before + (now_s() - t->t_start);
}

/* ---- settings ---------------------------------------------------------------------------- */

model_numerics model_train_numerics(const run_train_cfg *train, bf16_denormals denormals)
{
    model_numerics nx = train->precision == RUN_PRECISION_BF16
                            ? model_numerics_bf16(denormals)
                            : model_numerics_fp32();
    nx.gemm.mode = train->gemm;
    return nx;
}

static model_numerics numerics_of(const model_train_opts *o)
{
    return model_train_numerics(&o->train, o->denormals);
}

static json_t *json_u64(uint64_t v)
{
    return json_integer((json_int_t)v);
}

/* All of a train: mapping's fields, nested mappings included whether or not they were given. */
static json_t *train_cfg_json(const run_train_cfg *train)
{
    run_train_cfg t = *train;
    t.has_adafactor = t.has_adamw = t.has_data = 1;
    return cfg_to_json(&run_train_cfg_schema, &t);
}

uint64_t model_train_settings_hash(const model_train_opts *o, int target_length,
                                   const uint8_t *corpus, size_t corpus_bytes)
{
    run_train_cfg tr = o->train;
    tr.eval_every = tr.eval_batches = tr.checkpoint_every = tr.log_every = 0;
    memset(tr.data.corpus, 0, sizeof tr.data.corpus);
    json_t *j = json_object();
    json_t *train_json = train_cfg_json(&tr);
    json_object_del(train_json, "compare_router"); /* never changes the trajectory */
    json_object_set_new(j, "train", train_json);
    json_object_set_new(j, "denormals", json_string(bf16_denormals_name(o->denormals)));
    json_object_set_new(j, "batch", json_integer(o->batch));
    json_object_set_new(j, "input_length", json_integer(o->input_length));
    json_object_set_new(j, "target_length", json_integer(target_length));
    char corpus_hash[24];
    snprintf(corpus_hash, sizeof corpus_hash, "%016llx",
             (unsigned long long)model_ckpt_fnv1a(MODEL_CKPT_FNV_OFFSET, corpus, corpus_bytes));
    json_object_set_new(j, "corpus_fnv1a", json_string(corpus_hash));
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    SS_ASSERT(text);
    uint64_t h = model_ckpt_fnv1a(MODEL_CKPT_FNV_OFFSET, text, strlen(text));
    free(text);
    json_decref(j);
    return h;
}

/* ---- setup ------------------------------------------------------------------------------- */

ss_status model_train_data_open(model_data_corpus *corpus, model_data *ds,
                                const run_train_cfg *train, int input_length,
                                int target_length, uint64_t seed, ss_err *err)
{
    const char *path = train->data.corpus;
    ss_status st = model_data_corpus_load(corpus, &path, 1, err);
    if (st != SS_OK)
        return st;
    model_data_cfg dc = model_data_cfg_t5(input_length, target_length, seed);
    dc.heldout_fraction = train->data.heldout_fraction;
    dc.noise_density = train->data.noise_density;
    dc.mean_span = train->data.mean_span;
    st = model_data_init(ds, corpus, &dc, err);
    if (st != SS_OK) {
        model_data_corpus_free(corpus);
        ss_err_prefix(err, "data from %s", path);
    }
    return st;
}

static ss_status open_data(trainer *t, ss_err *err)
{
    const model_train_opts *o = t->o;
    ss_status st = model_train_data_open(&t->corpus, &t->ds, &o->train, o->input_length,
                                         o->target_length, o->seed, err);
    t->data_ready = st == SS_OK;
    return st;
}

/* n * size zeroed bytes, or NULL (also on size overflow). */
static void *zalloc(size_t n, size_t size)
{
    size_t bytes;
    return ss_mul_size(n, size, &bytes) == 0 ? calloc(bytes ? bytes : 1, 1) : NULL;
}

static size_t optimizer_state_size(const trainer *t)
{
    const run_train_cfg *tr = &t->o->train;
    return tr->optimizer == RUN_OPTIMIZER_ADAFACTOR
               ? model_adafactor_state_size(t->m.tensors, t->m.ntensors, &tr->adafactor)
               : model_adamw_state_size(t->m.tensors, t->m.ntensors);
}

static ss_status build_model(trainer *t, ss_err *err)
{
    const model_train_opts *o = t->o;
    const int T_out = t->ds.cfg.target_length;
    if (o->model->vocab_size < MODEL_DATA_VOCAB_USED)
        return ss_err_set(err, SS_ERR_CONFIG,
                          "model '%s': vocab_size %d is smaller than the %d ids of the byte "
                          "vocabulary (model/data.h; use 384)",
                          o->model->name, o->model->vocab_size, MODEL_DATA_VOCAB_USED);
    model_t5_shape shape = {o->batch, o->input_length, T_out};
    model_numerics nx = numerics_of(o);
    ss_status st = model_t5_init(&t->m, o->model, shape, &nx, err);
    if (st != SS_OK)
        return st;
    model_t5_init_params(&t->m, o->seed);
    t->opt_size = optimizer_state_size(t);
    const size_t B = (size_t)o->batch;
    t->opt_state = zalloc(t->opt_size, sizeof(float));
    t->inputs = zalloc(B * (size_t)o->input_length, sizeof(int32_t));
    t->targets = zalloc(B * (size_t)T_out, sizeof(int32_t));
    t->dec_inputs = zalloc(B * (size_t)T_out, sizeof(int32_t));
    if (!t->opt_state || !t->inputs || !t->targets || !t->dec_inputs)
        return ss_err_set(err, SS_ERR_NOMEM,
                          "out of memory for the optimizer state (%zu floats) and the batches",
                          t->opt_size);
    t->sched = run_train_schedule(&o->train);
    rng_seed(&t->rng, o->seed ^ MODEL_TRAIN_RNG_SALT);
    model_ckpt_header *h = &t->ident;
    snprintf(h->model_name, sizeof h->model_name, "%s", o->model->name);
    h->model_hash = model_ckpt_model_hash(o->model);
    h->settings_hash =
        model_train_settings_hash(o, T_out, t->corpus.text, t->corpus.n_bytes);
    h->nparams = t->m.nparams;
    h->optimizer = (uint32_t)o->train.optimizer;
    h->opt_state_size = t->opt_size;
    h->seed = o->seed;
    return SS_OK;
}

static void trainer_free(trainer *t)
{
    if (t->metrics)
        fclose(t->metrics);
    model_t5_free(&t->m);
    free(t->opt_state);
    free(t->inputs);
    free(t->targets);
    free(t->dec_inputs);
    free(t->routing);
    if (t->data_ready)
        model_data_free(&t->ds);
    model_data_corpus_free(&t->corpus);
}

/* ---- output directory, resume ------------------------------------------------------------ */

static ss_status join(char *out, size_t n, const char *dir, const char *name, ss_err *err)
{
    int k = snprintf(out, n, "%s/%s", dir, name);
    if (k < 0 || (size_t)k >= n)
        return ss_err_set(err, SS_ERR_USAGE, "%s: output directory path too long", dir);
    return SS_OK;
}

ss_status model_train_out_dir(const char *dir, int resume, int force, model_train_paths *p,
                             ss_err *err)
{
    ss_status st;
    if ((st = join(p->ckpt, sizeof p->ckpt, dir, "checkpoint.bin", err)) != SS_OK ||
        (st = join(p->metrics, sizeof p->metrics, dir, "metrics.jsonl", err)) != SS_OK ||
        (st = join(p->results, sizeof p->results, dir, "results.json", err)) != SS_OK)
        return st;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return ss_err_set(err, SS_ERR_IO, "%s: cannot create the output directory: %s", dir,
                          strerror(errno));
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ss_err_set(err, SS_ERR_IO, "%s: not a directory", dir);
    const int has_ckpt = stat(p->ckpt, &sb) == 0;
    if (resume && !has_ckpt)
        return ss_err_set(err, SS_ERR_USAGE, "%s: no checkpoint to resume from", p->ckpt);
    if (!resume && has_ckpt && !force)
        return ss_err_set(err, SS_ERR_USAGE,
                          "%s already holds a checkpoint: resume it (--resume) or start afresh "
                          "(--force, which deletes the checkpoint and truncates metrics.jsonl)",
                          dir);
    return SS_OK;
}

static ss_status prepare_dir(trainer *t, ss_err *err)
{
    return model_train_out_dir(t->o->out_dir, t->o->resume, t->o->force, &t->paths, err);
}

/* The JSON line's "step", or -1 when the line is not a complete metrics object. */
static long long line_step(const char *line, size_t len)
{
    json_t *j = json_loadb(line, len, 0, NULL);
    json_t *s = json_object_get(j, "step");
    long long step = json_is_integer(s) ? (long long)json_integer_value(s) : -1;
    json_decref(j);
    return step;
}

ss_status model_train_metrics_truncate(const char *path, uint64_t step, ss_err *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return SS_OK; /* nothing written yet */
    char *text = NULL;
    size_t len = 0;
    ss_status st = file_read_all(path, METRICS_MAX_BYTES, &text, &len, err);
    if (st != SS_OK)
        return st;
    size_t keep = 0;
    while (keep < len) {
        const char *nl = memchr(text + keep, '\n', len - keep);
        if (!nl)
            break; /* a partial last line */
        size_t n = (size_t)(nl - (text + keep));
        long long s = line_step(text + keep, n);
        if (s < 0 || (uint64_t)s > step)
            break;
        keep += n + 1;
    }
    if (keep < len)
        st = file_write_atomic(path, text, keep, err);
    free(text);
    return st;
}

static ss_status resume(trainer *t, ss_err *err)
{
    model_ckpt_header got;
    ss_status st = model_ckpt_read(t->paths.ckpt, &t->ident, &got, t->m.params, t->opt_state, err);
    if (st != SS_OK)
        return st;
    const uint64_t pos = got.step * (uint64_t)t->o->batch;
    if (got.data_position != pos)
        return ss_err_set(err, SS_ERR_DATA,
                          "%s: data position check failed: expected %llu examples for step "
                          "%llu at batch %d, got %llu",
                          t->paths.ckpt, (unsigned long long)pos, (unsigned long long)got.step,
                          t->o->batch, (unsigned long long)got.data_position);
    t->step = got.step;
    t->tokens = got.tokens;
    t->wall_before = got.wall_seconds;
    t->rng = got.rng;
    return model_train_metrics_truncate(t->paths.metrics, got.step, err);
}

ss_status model_train_metrics_open(const model_train_paths *p, int resume, FILE **f,
                                   ss_err *err)
{
    if (!resume && remove(p->ckpt) != 0 && errno != ENOENT)
        return ss_err_set(err, SS_ERR_IO, "%s: cannot remove the old checkpoint: %s", p->ckpt,
                          strerror(errno));
    *f = fopen(p->metrics, resume ? "ab" : "wb");
    if (!*f)
        return ss_err_set(err, SS_ERR_IO, "%s: cannot open: %s", p->metrics, strerror(errno));
    return SS_OK;
}

static ss_status open_metrics(trainer *t, ss_err *err)
{
    return model_train_metrics_open(&t->paths, t->o->resume, &t->metrics, err);
}

static ss_status save_checkpoint(trainer *t, ss_err *err)
{
    model_ckpt_header h = t->ident;
    h.step = t->step;
    h.data_position = t->step * (uint64_t)t->o->batch;
    h.tokens = t->tokens;
    h.wall_seconds = wall_total(t);
    h.rng = t->rng;
    return model_ckpt_write(t->paths.ckpt, &h, t->m.params, t->opt_state, err);
}

/* ---- metrics lines ----------------------------------------------------------------------- */

static ss_status write_line(trainer *t, json_t *line, ss_err *err)
{
    json_object_set_new(line, "wall_s", json_real(wall_total(t)));
    char *text = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(line);
    if (!text)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for a metrics line");
    int bad = fputs(text, t->metrics) < 0 || fputc('\n', t->metrics) == EOF ||
              fflush(t->metrics) != 0;
    free(text);
    if (bad)
        return ss_err_set(err, SS_ERR_IO, "%s: write failed: %s", t->paths.metrics,
                          strerror(errno));
    return SS_OK;
}

static json_t *doubles_json(const double *x, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_real(x[i]));
    return a;
}

static json_t *expert_counts_json(const model_t5_metrics *mt)
{
    json_t *a = json_array();
    for (int i = 0; i < mt->nswitch; i++) {
        json_t *row = json_array();
        for (int e = 0; e < mt->num_experts; e++)
            json_array_append_new(
                row, json_integer(mt->tokens_per_expert[(size_t)i * (size_t)mt->num_experts +
                                                        (size_t)e]));
        json_array_append_new(a, row);
    }
    return a;
}

static double ratio(size_t a, size_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

static json_t *train_line(const trainer *t, const model_t5_metrics *mt, double lr,
                          double grad_norm)
{
    json_t *j = json_object();
    json_object_set_new(j, "split", json_string("train"));
    json_object_set_new(j, "step", json_u64(t->step));
    json_object_set_new(j, "lr", json_real(lr));
    json_object_set_new(j, "loss", json_real(mt->loss));
    json_object_set_new(j, "aux_loss", json_real(mt->aux_loss));
    json_object_set_new(j, "z_loss", json_real(mt->z_loss));
    json_object_set_new(j, "total", json_real(mt->total));
    json_object_set_new(j, "grad_norm", json_real(grad_norm));
    json_object_set_new(j, "accuracy", json_real(ratio(mt->correct, mt->tokens)));
    json_object_set_new(j, "tokens", json_u64(mt->tokens));
    json_object_set_new(j, "dropped_fraction", doubles_json(mt->dropped_fraction, mt->nswitch));
    json_object_set_new(j, "tokens_per_expert", expert_counts_json(mt));
    json_object_set_new(j, "router_entropy", doubles_json(mt->router_entropy, mt->nswitch));
    return j;
}

/* ---- one step ---------------------------------------------------------------------------- */

static void optimizer_update(trainer *t, float lr)
{
    const run_train_cfg *tr = &t->o->train;
    if (tr->optimizer == RUN_OPTIMIZER_ADAFACTOR)
        model_adafactor_update(t->m.params, t->m.grads, t->opt_state, t->m.tensors,
                               t->m.ntensors, t->step, lr, &tr->adafactor);
    else
        model_adamw_update(t->m.params, t->m.grads, t->opt_state, t->m.tensors, t->m.ntensors,
                           t->step, lr, &tr->adamw);
}

/* The router dtype compared against the model's: the other one. */
static model_router_dtype other_router_dtype(const model_cfg *c)
{
    return c->sw.router_dtype == MODEL_ROUTER_BF16 ? MODEL_ROUTER_FP32 : MODEL_ROUTER_BF16;
}

/* With compare_router: the line's "router_disagreement" [per Switch layer] and
 * "router_compare_dtype", from the forward just run (before the update changes wr). */
static ss_status compare_router(trainer *t, const model_t5_metrics *mt, json_t *line,
                                ss_err *err)
{
    if (!t->o->train.compare_router)
        return SS_OK;
    double *dis = calloc((size_t)mt->nswitch + 1, sizeof(double));
    if (!dis)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the router comparison");
    const model_router_dtype other = other_router_dtype(&t->m.cfg);
    ss_status st = model_t5_router_disagreement(&t->m, other, dis, err);
    if (st == SS_OK) {
        json_object_set_new(line, "router_disagreement", doubles_json(dis, mt->nswitch));
        json_object_set_new(line, "router_compare_dtype",
                            json_string(other == MODEL_ROUTER_BF16 ? "bf16" : "fp32"));
    }
    free(dis);
    return st;
}

/* Adds a step's first choices per Switch layer and expert to the routing histogram. */
static void record_routing(trainer *t, const model_t5_metrics *mt)
{
    if (!t->o->record_routing || mt->nswitch == 0)
        return;
    if (!t->routing) {
        t->routing_layers = mt->nswitch;
        t->routing_experts = mt->num_experts;
        t->routing = calloc((size_t)mt->nswitch * (size_t)mt->num_experts, sizeof *t->routing);
        SS_ASSERT(t->routing);
    }
    SS_ASSERT(t->routing_layers == mt->nswitch && t->routing_experts == mt->num_experts);
    for (size_t i = 0; i < (size_t)mt->nswitch * (size_t)mt->num_experts; i++)
        t->routing[i] += (uint64_t)mt->tokens_per_expert[i];
}

/* Writes the routing histogram (model/stepgen.h's format) atomically. */
static ss_status write_routing(const trainer *t, ss_err *err)
{
    if (!t->o->record_routing)
        return SS_OK;
    if (!t->routing)
        return ss_err_set(err, SS_ERR_USAGE,
                          "--record-routing %s: no training step with Switch layers ran in "
                          "this invocation, so there is no routing to record",
                          t->o->record_routing);
    json_t *layers = json_array();
    for (int l = 0; l < t->routing_layers; l++) {
        const uint64_t *row = t->routing + (size_t)l * (size_t)t->routing_experts;
        uint64_t sum = 0;
        for (int e = 0; e < t->routing_experts; e++)
            sum += row[e];
        json_t *r = json_array();
        for (int e = 0; e < t->routing_experts; e++)
            json_array_append_new(r, json_real(sum ? (double)row[e] / (double)sum : 0.0));
        json_array_append_new(layers, r);
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "model", json_string(t->o->model->name));
    json_object_set_new(doc, "steps", json_u64(t->step - t->first_step));
    json_object_set_new(doc, "first_step", json_u64(t->first_step));
    json_object_set_new(doc, "layers", layers);
    char *text = json_dumps(doc, JSON_INDENT(2));
    json_decref(doc);
    if (!text)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the routing histogram");
    ss_status st = file_write_atomic(t->o->record_routing, text, strlen(text), err);
    free(text);
    return st;
}

static ss_status train_step(trainer *t, json_t **line, ss_err *err)
{
    ss_status st = model_data_batch(t->inputs, t->targets, t->dec_inputs, &t->ds,
                                    MODEL_DATA_TRAIN, t->step, t->o->batch, err);
    model_t5_metrics mt;
    model_t5_zero_grad(&t->m);
    if (st == SS_OK)
        st = model_t5_forward(&t->m, t->inputs, t->dec_inputs, t->targets, 1, &t->rng, &mt,
                              err);
    json_t *cmp = json_object();
    if (st == SS_OK)
        st = compare_router(t, &mt, cmp, err);
    if (st == SS_OK)
        st = model_t5_backward(&t->m, err);
    if (st != SS_OK) {
        json_decref(cmp);
        ss_err_prefix(err, "step %llu", (unsigned long long)t->step);
        return st;
    }
    const double norm = model_grad_clip_global_norm(t->m.grads, t->m.tensors, t->m.ntensors,
                                                    t->o->train.clip_norm);
    if (!isfinite(norm)) {
        json_decref(cmp);
        return ss_err_set(err, SS_ERR_RANGE,
                          "step %llu: the gradient norm is %g (loss %g): training diverged; "
                          "try a smaller learning_rate, clip_norm or precision fp32",
                          (unsigned long long)t->step, norm, mt.loss);
    }
    const double lr = model_lr_at(&t->sched, t->step);
    optimizer_update(t, (float)lr);
    t->step++;
    t->tokens += mt.tokens;
    record_routing(t, &mt);
    t->last_loss = mt.loss;
    t->last_accuracy = ratio(mt.correct, mt.tokens);
    t->last_lr = lr;
    *line = train_line(t, &mt, lr, norm);
    json_object_update(*line, cmp);
    json_decref(cmp);
    return SS_OK;
}

/* ---- evaluation -------------------------------------------------------------------------- */

typedef struct {
    double loss_sum;      /* sum of loss * tokens */
    size_t tokens, correct;
    double aux, z, total; /* sums over batches */
    double *dropped, *entropy; /* [nswitch] sums over batches */
    int nswitch;
} eval_sums;

static void eval_add(eval_sums *s, const model_t5_metrics *mt)
{
    s->loss_sum += mt->loss * (double)mt->tokens;
    s->tokens += mt->tokens;
    s->correct += mt->correct;
    s->aux += mt->aux_loss;
    s->z += mt->z_loss;
    s->total += mt->total;
    s->nswitch = mt->nswitch;
    for (int i = 0; i < mt->nswitch; i++) {
        s->dropped[i] += mt->dropped_fraction[i];
        s->entropy[i] += mt->router_entropy[i];
    }
}

/* The line of `batches` held-out batches whose sums s cover `forwards` forwards. */
static json_t *eval_line(uint64_t step, eval_sums *s, int batches, int forwards)
{
    const double nf = (double)forwards;
    for (int i = 0; i < s->nswitch; i++) {
        s->dropped[i] /= nf;
        s->entropy[i] /= nf;
    }
    json_t *j = json_object();
    json_object_set_new(j, "split", json_string("heldout"));
    json_object_set_new(j, "step", json_u64(step));
    json_object_set_new(j, "batches", json_integer(batches));
    json_object_set_new(j, "loss", json_real(s->tokens ? s->loss_sum / (double)s->tokens : 0.0));
    json_object_set_new(j, "accuracy", json_real(ratio(s->correct, s->tokens)));
    json_object_set_new(j, "tokens", json_u64(s->tokens));
    json_object_set_new(j, "aux_loss", json_real(s->aux / nf));
    json_object_set_new(j, "z_loss", json_real(s->z / nf));
    json_object_set_new(j, "total", json_real(s->total / nf));
    json_object_set_new(j, "dropped_fraction", doubles_json(s->dropped, s->nswitch));
    json_object_set_new(j, "router_entropy", doubles_json(s->entropy, s->nswitch));
    return j;
}

/* Held-out batch b's `shards` forwards (training = 0: no rng use), added to s. */
static ss_status eval_batch(const model_train_eval_opts *o, int b, eval_sums *s, int nsw,
                            ss_err *err)
{
    ss_status st = model_data_batch(o->inputs, o->targets, o->dec_inputs, o->ds,
                                    MODEL_DATA_HELDOUT, (uint64_t)b, o->batch, err);
    const size_t rows = (size_t)(o->batch / o->shards);
    const size_t Ti = (size_t)o->m->shape.T_in, To = (size_t)o->m->shape.T_out;
    for (int k = 0; st == SS_OK && k < o->shards; k++) {
        model_t5_metrics mt;
        const size_t r0 = (size_t)k * rows;
        st = model_t5_forward(o->m, o->inputs + r0 * Ti, o->dec_inputs + r0 * To,
                              o->targets + r0 * To, 0, NULL, &mt, err);
        if (st == SS_OK) {
            SS_ASSERT(mt.nswitch <= nsw);
            eval_add(s, &mt);
        }
    }
    return st;
}

ss_status model_train_evaluate(const model_train_eval_opts *o, uint64_t step,
                               model_train_eval *res, json_t **line, ss_err *err)
{
    SS_ASSERT(o->shards >= 1 && o->batch % o->shards == 0 &&
              o->m->shape.B == o->batch / o->shards);
    const model_cfg *c = &o->m->cfg;
    const int nsw = model_cfg_switch_layers(c, c->encoder_layers) +
                    model_cfg_switch_layers(c, c->decoder_layers);
    eval_sums s = {0};
    s.dropped = calloc((size_t)nsw + 1, sizeof(double));
    s.entropy = calloc((size_t)nsw + 1, sizeof(double));
    ss_status st = s.dropped && s.entropy
                       ? SS_OK
                       : ss_err_set(err, SS_ERR_NOMEM, "out of memory for evaluation sums");
    for (int b = 0; st == SS_OK && b < o->batches; b++)
        st = eval_batch(o, b, &s, nsw, err);
    if (st == SS_OK) {
        res->loss = s.tokens ? s.loss_sum / (double)s.tokens : 0.0;
        res->accuracy = ratio(s.correct, s.tokens);
        *line = eval_line(step, &s, o->batches, o->batches * o->shards);
    } else {
        ss_err_prefix(err, "evaluation at step %llu", (unsigned long long)step);
    }
    free(s.dropped);
    free(s.entropy);
    return st;
}

/* eval_batches held-out batches on the trainer's model. */
static ss_status evaluate(trainer *t, json_t **line, ss_err *err)
{
    const model_train_eval_opts eo = {.m = &t->m, .ds = &t->ds, .batch = t->o->batch,
                                      .shards = 1, .batches = t->o->train.eval_batches,
                                      .inputs = t->inputs, .targets = t->targets,
                                      .dec_inputs = t->dec_inputs};
    model_train_eval res;
    ss_status st = model_train_evaluate(&eo, t->step, &res, line, err);
    if (st == SS_OK) {
        t->have_eval = 1;
        t->eval_loss = res.loss;
        t->eval_accuracy = res.accuracy;
        t->eval_step = t->step;
    }
    return st;
}

/* ---- the loop ---------------------------------------------------------------------------- */

static int due(uint64_t step, uint64_t last, int every)
{
    return step == last || (every > 0 && step % (uint64_t)every == 0);
}

static void report_progress(const trainer *t)
{
    if (!t->o->progress)
        return;
    const double wall = now_s() - t->t_start;
    const double tokens = (double)(t->step - t->first_step) * (double)t->o->batch *
                          (double)t->o->input_length;
    model_train_progress p = {
        .step = t->step,
        .steps = t->o->steps,
        .first_step = t->first_step,
        .loss = t->last_loss,
        .lr = t->last_lr,
        .eval_loss = t->have_eval ? t->eval_loss : NAN,
        .wall_s = wall,
        .tokens_per_s = wall > 0 ? tokens / wall : 0.0,
    };
    t->o->progress(t->o->progress_ctx, &p);
}

/* After a step: its line, an evaluation, a checkpoint, as due. */
static ss_status after_step(trainer *t, json_t *line, ss_err *err)
{
    const model_train_opts *o = t->o;
    const int held_out = t->ds.n_heldout > 0;
    ss_status st = SS_OK;
    if (due(t->step, o->steps, o->train.log_every))
        st = write_line(t, line, err);
    else
        json_decref(line);
    if (st == SS_OK && held_out && due(t->step, o->steps, o->train.eval_every)) {
        json_t *ev = NULL;
        st = evaluate(t, &ev, err);
        if (st == SS_OK)
            st = write_line(t, ev, err);
    }
    if (st == SS_OK && due(t->step, o->steps, o->train.checkpoint_every))
        st = save_checkpoint(t, err);
    return st;
}

static ss_status train_loop(trainer *t, ss_err *err)
{
    ss_status st = SS_OK;
    while (st == SS_OK && t->step < t->o->steps) {
        json_t *line = NULL;
        st = train_step(t, &line, err);
        if (st == SS_OK)
            st = after_step(t, line, err);
        report_progress(t);
    }
    return st;
}

/* ---- results ----------------------------------------------------------------------------- */

static json_t *real_or_null(int have, double x)
{
    return have ? json_real(x) : json_null();
}

static json_t *numerics_json(const trainer *t, const json_t *model_json)
{
    const model_train_opts *o = t->o;
    json_t *j = json_object();
    json_object_set_new(j, "precision", json_string(run_precision_name(o->train.precision)));
    json_object_set_new(j, "gemm", json_string(sim_gemm_mode_name(o->train.gemm)));
    json_object_set_new(j, "denormals", json_string(bf16_denormals_name(o->denormals)));
    json_t *rd = json_object_get(json_object_get(model_json, "switch"), "router_dtype");
    json_object_set_new(j, "router_dtype", rd ? json_copy(rd) : json_null());
    return j;
}

static json_t *optimizer_json(const model_train_opts *o, const json_t *train_json)
{
    const char *kind = run_optimizer_name(o->train.optimizer);
    json_t *j = json_object();
    json_object_set_new(j, "kind", json_string(kind));
    json_object_set_new(j, "learning_rate", json_real(o->train.learning_rate));
    json_object_set_new(j, "schedule", json_string(run_schedule_name(o->train.schedule)));
    json_object_set_new(j, "warmup_steps", json_u64(o->train.warmup_steps));
    json_object_set_new(j, "decay_steps", json_u64(o->train.decay_steps));
    json_object_set_new(j, "end_learning_rate", json_real(o->train.end_learning_rate));
    json_object_set_new(j, "clip_norm", json_real(o->train.clip_norm));
    json_object_set_new(j, "settings", json_deep_copy(json_object_get(train_json, kind)));
    return j;
}

static json_t *data_json(const trainer *t)
{
    const run_data_cfg *d = &t->o->train.data;
    json_t *j = json_object();
    json_object_set_new(j, "corpus", json_string(d->corpus));
    json_object_set_new(j, "heldout_fraction", json_real(d->heldout_fraction));
    json_object_set_new(j, "noise_density", json_real(d->noise_density));
    json_object_set_new(j, "mean_span", json_real(d->mean_span));
    json_object_set_new(j, "train_chunks", json_u64(t->ds.n_train));
    json_object_set_new(j, "heldout_chunks", json_u64(t->ds.n_heldout));
    return j;
}

static json_t *final_json(const trainer *t)
{
    const int ran = t->step > t->first_step;
    json_t *j = json_object();
    json_object_set_new(j, "train_loss", real_or_null(ran, t->last_loss));
    json_object_set_new(j, "train_accuracy", real_or_null(ran, t->last_accuracy));
    json_object_set_new(j, "eval_loss", real_or_null(t->have_eval, t->eval_loss));
    json_object_set_new(j, "eval_accuracy", real_or_null(t->have_eval, t->eval_accuracy));
    json_object_set_new(j, "eval_step", t->have_eval ? json_u64(t->eval_step) : json_null());
    return j;
}

static json_t *results_json(const trainer *t, double wall)
{
    const model_train_opts *o = t->o;
    const uint64_t ran = t->step - t->first_step;
    const double examples = (double)ran * (double)o->batch;
    json_t *model_json = cfg_to_json(&model_cfg_schema, o->model);
    json_t *train_json = train_cfg_json(&o->train);
    json_t *j = json_object();
    json_object_set_new(j, "model", json_string(o->model->name));
    json_object_set_new(j, "run", o->run_name ? json_string(o->run_name) : json_null());
    json_object_set_new(j, "seed", json_u64(o->seed));
    json_object_set_new(j, "steps", json_u64(t->step));
    json_object_set_new(j, "first_step", json_u64(t->first_step));
    json_object_set_new(j, "steps_run", json_u64(ran));
    json_object_set_new(j, "batch", json_integer(o->batch));
    json_object_set_new(j, "input_length", json_integer(o->input_length));
    json_object_set_new(j, "target_length", json_integer(t->ds.cfg.target_length));
    json_object_set_new(j, "nparams", json_u64(t->m.nparams));
    json_object_set_new(j, "numerics", numerics_json(t, model_json));
    json_object_set_new(j, "optimizer", optimizer_json(o, train_json));
    json_object_set_new(j, "data", data_json(t));
    json_object_set_new(j, "final", final_json(t));
    json_object_set_new(j, "tokens_per_s",
                        json_real(wall > 0 ? examples * (double)o->input_length / wall : 0.0));
    json_object_set_new(j, "examples_per_s", json_real(wall > 0 ? examples / wall : 0.0));
    json_object_set_new(j, "wall_s", json_real(wall));
    json_object_set_new(j, "out_dir", json_string(o->out_dir));
    json_object_set_new(j, "versions", o->versions ? json_deep_copy(o->versions) : json_object());
    json_object_set_new(j, "model_config", model_json);
    json_decref(train_json);
    return j;
}

static ss_status write_results(const trainer *t, const json_t *res, ss_err *err)
{
    char *text = json_dumps(res, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    if (!text)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for results.json");
    ss_status st = file_write_atomic(t->paths.results, text, strlen(text), err);
    free(text);
    return st;
}

/* After a run that trained nothing, the held-out figures still go into results.json. */
static ss_status final_eval(trainer *t, ss_err *err)
{
    if (t->have_eval || t->ds.n_heldout == 0)
        return SS_OK;
    json_t *line = NULL;
    ss_status st = evaluate(t, &line, err);
    json_decref(line);
    return st;
}

ss_status model_train_run(const model_train_opts *o, json_t **results, ss_err *err)
{
    SS_ASSERT(o && o->model && o->out_dir && results && o->batch >= 1);
    *results = NULL;
    trainer t;
    memset(&t, 0, sizeof t);
    t.o = o;
    ss_status st = prepare_dir(&t, err);
    if (st == SS_OK)
        st = open_data(&t, err);
    if (st == SS_OK)
        st = build_model(&t, err);
    if (st == SS_OK && o->resume)
        st = resume(&t, err);
    if (st == SS_OK)
        st = open_metrics(&t, err);
    t.first_step = t.step;
    t.t_start = now_s();
    if (st == SS_OK)
        st = train_loop(&t, err);
    const double wall = now_s() - t.t_start;
    if (st == SS_OK)
        st = final_eval(&t, err);
    if (st == SS_OK)
        st = write_routing(&t, err);
    if (st == SS_OK) {
        json_t *res = results_json(&t, wall);
        st = write_results(&t, res, err);
        if (st == SS_OK)
            *results = res;
        else
            json_decref(res);
    }
    trainer_free(&t);
    return st;
}
