/* This file implements the run description of run_cfg.h: the schemas of a `kind: run` config
 * and of its `plan:` mapping, and the checks that tie the plan to the model and the pod (core
 * count, expert placement, model-parallel splits, batch splits: the constraints themselves are
 * model/plan.h's model_plan_check_* functions, reported here at the field they are about).
 *
 * The `train:` mapping (functional training) has a schema per nested mapping (adafactor:,
 * adamw:, data:) whose defaults are the optimizers' published ones; an absent mapping is
 * decoded from an empty one, so the defaults are written once, in the field tables.
 *
 * Invariants: see run_cfg.h. Each check names the field it is about and states the numbers
 * that disagree; checks run in the order of run_checks, the first failure is reported.
 * reference: REFERENCE.md sections 2 (T5 pre-training: 512 input / 114 target tokens) and 4
 * (parallelism: N = n x m cores, experts spread over the n data ways).
 */
#include "model/run_cfg.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "model/data.h"
#include "model/plan.h"

static const char *const mode_names[] = {"train", "eval", "estimate", NULL};
/* In model_plan_mapping order (model/plan.h). */
static const char *const mapping_names[] = {"model_neighbours", "data_neighbours", NULL};

static const cfg_field plan_fields[] = {
    CFG_INT(run_plan, data, CFG_REQUIRED, NULL, 1, 1 << 20,
            "data-parallel ways n (experts are spread over these)"),
    CFG_INT(run_plan, model, CFG_OPTIONAL, "1", 1, 1 << 16,
            "model-parallel ways m (d_ff and heads split m ways)"),
    CFG_INT(run_plan, experts_per_core, CFG_OPTIONAL, NULL, 1, 1 << 16,
            "experts on each core (default: max(1, num_experts / data))"),
    CFG_INT(run_plan, microbatches, CFG_OPTIONAL, "1", 1, 1 << 16,
            "gradient-accumulation steps per batch"),
    CFG_ENUM(run_plan, mapping, CFG_OPTIONAL, "model_neighbours", mapping_names,
             "which ways get neighbouring cores: model_neighbours (a data replica's model "
             "ways on one chip and its neighbours) or data_neighbours"),
    CFG_BOOL(run_plan, remat, CFG_OPTIONAL, "false",
             "rematerialise activations in backward (keeps only each layer's input)"),
};

static const cfg_schema plan_schema = {
    .kind = NULL,
    .summary = "parallel layout of the run on the pod's cores",
    .size = sizeof(run_plan),
    .fields = plan_fields,
    .nfields = sizeof plan_fields / sizeof plan_fields[0],
    .check = NULL,
};

/* ---- train: ------------------------------------------------------------------------------ */

static const char *const precision_names[] = {"bf16", "fp32", NULL};
static const char *const gemm_names[] = {"exact", "fast", NULL};
static const char *const optimizer_names[] = {"adafactor", "adamw", NULL};
static const char *const schedule_names[] = {"constant", "rsqrt", "linear", NULL};

/* Defaults are T5X's (model_adafactor_cfg_t5x); tests/train checks that they agree. */
static const cfg_field adafactor_fields[] = {
    CFG_BOOL(model_adafactor_cfg, factored, CFG_OPTIONAL, "true",
             "factored second moments for large matrices"),
    CFG_INT(model_adafactor_cfg, min_dim_size_to_factor, CFG_OPTIONAL, "128", 1, 1 << 30,
            "a matrix is factored when both dimensions are at least this"),
    CFG_BOOL(model_adafactor_cfg, factor_stacks, CFG_OPTIONAL, "true",
             "factor every matrix of an expert stack whatever its size (T5X MoE rules)"),
    CFG_DOUBLE(model_adafactor_cfg, decay_rate, CFG_MIN_OPEN, "0.8", 0, 1e3,
               "c in beta2 = 1 - t^-c"),
    CFG_U64(model_adafactor_cfg, step_offset, CFG_OPTIONAL, "0", 0, 1e15,
            "t counts from this step"),
    CFG_DOUBLE(model_adafactor_cfg, epsilon1, CFG_MIN_OPEN, "1e-30", 0, 1,
               "added to g^2"),
    CFG_DOUBLE(model_adafactor_cfg, epsilon2, CFG_OPTIONAL, "1e-3", 0, 1,
               "lower bound of the parameter scale"),
    CFG_DOUBLE(model_adafactor_cfg, clipping_threshold, CFG_OPTIONAL, "1.0", 0, 1e30,
               "update clipping threshold d; 0: off"),
    CFG_BOOL(model_adafactor_cfg, multiply_by_parameter_scale, CFG_OPTIONAL, "true",
             "steps relative to the parameter RMS"),
    CFG_DOUBLE(model_adafactor_cfg, max_parameter_scale, CFG_OPTIONAL, "0", 0, 1e30,
               "upper bound of the parameter scale; 0: none"),
    CFG_DOUBLE(model_adafactor_cfg, beta1, CFG_OPTIONAL, "0", 0, 1, "momentum; 0: none"),
    CFG_DOUBLE(model_adafactor_cfg, weight_decay, CFG_OPTIONAL, "0", 0, 1e30,
               "T5X weight_decay_rate (decoupled, not times lr); 0: none"),
    CFG_DOUBLE(model_adafactor_cfg, weight_decay_lr_exponent, CFG_OPTIONAL, "0", -1e3, 1e3,
               "weight decay times lr^this when not 0"),
};

/* An optim.h check message "WHAT: FIELD must ..." as a config error at FIELD. */
static ss_status optim_error(ss_err *err, const cfg_node *map, const char *path,
                             const char *why)
{
    const char *colon = strstr(why, ": ");
    const char *msg = colon ? colon + 2 : why;
    char field[64];
    size_t n = strspn(msg, "abcdefghijklmnopqrstuvwxyz0123456789_");
    snprintf(field, sizeof field, "%.*s", (int)(n < sizeof field ? n : sizeof field - 1), msg);
    return cfg_check_error(err, map, path, field, "%s", msg);
}

static ss_status check_adafactor(void *obj, const cfg_node *map, const char *path, ss_err *err)
{
    ss_err why = {0};
    if (model_adafactor_cfg_check(obj, &why) == SS_OK)
        return SS_OK;
    return optim_error(err, map, path, why.msg);
}

static const cfg_schema adafactor_schema = {
    .kind = NULL,
    .summary = "Adafactor settings (T5X's defaults)",
    .size = sizeof(model_adafactor_cfg),
    .fields = adafactor_fields,
    .nfields = sizeof adafactor_fields / sizeof adafactor_fields[0],
    .check = check_adafactor,
};

/* Defaults are torch.optim.AdamW's (model_adamw_cfg_default). */
static const cfg_field adamw_fields[] = {
    CFG_DOUBLE(model_adamw_cfg, beta1, CFG_OPTIONAL, "0.9", 0, 1, "first-moment decay"),
    CFG_DOUBLE(model_adamw_cfg, beta2, CFG_OPTIONAL, "0.999", 0, 1, "second-moment decay"),
    CFG_DOUBLE(model_adamw_cfg, eps, CFG_MIN_OPEN, "1e-8", 0, 1, "added to sqrt(v_hat)"),
    CFG_DOUBLE(model_adamw_cfg, weight_decay, CFG_OPTIONAL, "0.01", 0, 1e30,
               "decoupled weight decay, times lr"),
};

static ss_status check_adamw(void *obj, const cfg_node *map, const char *path, ss_err *err)
{
    ss_err why = {0};
    if (model_adamw_cfg_check(obj, &why) == SS_OK)
        return SS_OK;
    return optim_error(err, map, path, why.msg);
}

static const cfg_schema adamw_schema = {
    .kind = NULL,
    .summary = "AdamW settings (torch.optim.AdamW's defaults)",
    .size = sizeof(model_adamw_cfg),
    .fields = adamw_fields,
    .nfields = sizeof adamw_fields / sizeof adamw_fields[0],
    .check = check_adamw,
};

static const cfg_field data_fields[] = {
    CFG_STRING(run_data_cfg, corpus, CFG_OPTIONAL, MODEL_DATA_FORTUNES_DIR,
               "fortune file or directory (relative to this file); default: Debian's "
               "fortunes package"),
    CFG_DOUBLE(run_data_cfg, heldout_fraction, CFG_OPTIONAL, "0.05", 0, 0.5,
               "fraction of the corpus chunks held out for evaluation"),
    CFG_DOUBLE(run_data_cfg, noise_density, CFG_MIN_OPEN, "0.15", 0, 0.5,
               "span corruption: fraction of tokens corrupted (T5: 0.15)"),
    CFG_DOUBLE(run_data_cfg, mean_span, CFG_OPTIONAL, "3.0", 1, 1e6,
               "span corruption: mean noise span length in tokens (T5: 3)"),
};

/* A relative corpus path is relative to the file that wrote it. */
static ss_status check_data(void *obj, const cfg_node *map, const char *path, ss_err *err)
{
    run_data_cfg *d = obj;
    const cfg_node *at = cfg_map_get(map, "corpus");
    if (!at || d->corpus[0] == '/')
        return SS_OK;
    const char *slash = strrchr(at->file, '/');
    if (!slash)
        return SS_OK;
    char joined[sizeof d->corpus];
    int n = snprintf(joined, sizeof joined, "%.*s/%s", (int)(slash - at->file), at->file,
                     d->corpus);
    if (n < 0 || (size_t)n >= sizeof joined)
        return cfg_check_error(err, map, path, "corpus",
                               "path is too long once resolved against %s (%zu bytes at most)",
                               at->file, sizeof joined - 1);
    memcpy(d->corpus, joined, (size_t)n + 1);
    return SS_OK;
}

static const cfg_schema data_schema = {
    .kind = NULL,
    .summary = "training data: corpus, held-out split, span corruption",
    .size = sizeof(run_data_cfg),
    .fields = data_fields,
    .nfields = sizeof data_fields / sizeof data_fields[0],
    .check = check_data,
};

static ss_status check_train(void *obj, const cfg_node *map, const char *path, ss_err *err);

static const cfg_field train_fields[] = {
    CFG_ENUM(run_train_cfg, precision, CFG_OPTIONAL, "bf16", precision_names,
             "bf16 (bf16 matmul operands and activations; the router follows the model's "
             "router_dtype) or fp32"),
    CFG_ENUM(run_train_cfg, gemm, CFG_OPTIONAL, "fast", gemm_names,
             "matmuls: fast (fp32 BLAS on the rounded operands) or exact (systolic order)"),
    CFG_ENUM(run_train_cfg, optimizer, CFG_OPTIONAL, "adafactor", optimizer_names,
             "adafactor (T5X) or adamw"),
    CFG_MAPPING_OPT(run_train_cfg, adafactor, "adafactor", has_adafactor, &adafactor_schema,
                    "Adafactor settings"),
    CFG_MAPPING_OPT(run_train_cfg, adamw, "adamw", has_adamw, &adamw_schema, "AdamW settings"),
    CFG_DOUBLE(run_train_cfg, learning_rate, CFG_OPTIONAL, "1.0", 0, 1e6,
               "schedule base: peak lr (constant, linear) or numerator (rsqrt; T5: 1.0)"),
    CFG_ENUM(run_train_cfg, schedule, CFG_OPTIONAL, "rsqrt", schedule_names,
             "constant, rsqrt (T5: lr / sqrt(max(step, warmup))) or linear decay"),
    CFG_U64(run_train_cfg, warmup_steps, CFG_OPTIONAL, "10000", 0, 1e15,
            "linear warmup steps (constant, linear) or the rsqrt plateau (T5: 10^4)"),
    CFG_U64(run_train_cfg, decay_steps, CFG_OPTIONAL, "1000", 1, 1e15,
            "linear: steps from learning_rate to end_learning_rate after the warmup"),
    CFG_DOUBLE(run_train_cfg, end_learning_rate, CFG_OPTIONAL, "0", 0, 1e6,
               "linear: the lr after the decay"),
    CFG_DOUBLE(run_train_cfg, clip_norm, CFG_OPTIONAL, "0", 0, 1e30,
               "clip gradients to this global norm; 0: off"),
    CFG_INT(run_train_cfg, eval_every, CFG_OPTIONAL, "100", 0, 1 << 30,
            "held-out evaluation every N steps and at the end; 0: at the end only"),
    CFG_INT(run_train_cfg, eval_batches, CFG_OPTIONAL, "4", 1, 1 << 20,
            "held-out batches per evaluation"),
    CFG_INT(run_train_cfg, checkpoint_every, CFG_OPTIONAL, "100", 0, 1 << 30,
            "checkpoint every N steps and at the end; 0: at the end only"),
    CFG_INT(run_train_cfg, log_every, CFG_OPTIONAL, "1", 1, 1 << 30,
            "a metrics line every N steps and at the last step"),
    CFG_MAPPING_OPT(run_train_cfg, data, "data", has_data, &data_schema,
                    "corpus, held-out fraction, span corruption"),
    CFG_BOOL(run_train_cfg, compare_router, CFG_OPTIONAL, "false",
             "also route every step's router inputs with the other router dtype and log the "
             "fraction of tokens whose expert differs (router_disagreement)"),
};

const cfg_schema run_train_cfg_schema = {
    .kind = NULL,
    .summary = "functional training: numerics, optimizer, schedule, cadence, data",
    .size = sizeof(run_train_cfg),
    .fields = train_fields,
    .nfields = sizeof train_fields / sizeof train_fields[0],
    .check = check_train,
};

/* obj = every field of schema at its default: decodes an empty mapping. */
static ss_status decode_defaults(const cfg_schema *schema, void *obj, ss_err *err)
{
    cfg_doc *doc = NULL;
    ss_status st = cfg_doc_parse(&doc, "<defaults>", "{}", 2, err);
    if (st == SS_OK)
        st = cfg_decode(schema, obj, cfg_doc_root(doc), "", err);
    cfg_doc_free(doc);
    return st;
}

/* Absent nested mappings take their defaults; the schedule passes optim.h's check. */
static ss_status check_train(void *obj, const cfg_node *map, const char *path, ss_err *err)
{
    run_train_cfg *t = obj;
    ss_status st = SS_OK;
    if (!t->has_adafactor)
        st = decode_defaults(&adafactor_schema, &t->adafactor, err);
    if (st == SS_OK && !t->has_adamw)
        st = decode_defaults(&adamw_schema, &t->adamw, err);
    if (st == SS_OK && !t->has_data)
        st = decode_defaults(&data_schema, &t->data, err);
    if (st != SS_OK)
        return st;
    t->has_adafactor = t->has_adamw = t->has_data = 1; /* filled: cfg_to_json shows them */
    model_lr_schedule sched = run_train_schedule(t);
    ss_err why = {0};
    if (model_lr_schedule_check(&sched, &why) == SS_OK)
        return SS_OK;
    const int plateau = t->schedule == MODEL_LR_RSQRT && t->warmup_steps < 1;
    return cfg_check_error(err, map, path, plateau ? "warmup_steps" : "schedule", "%s",
                           why.msg);
}

ss_status run_train_cfg_defaults(run_train_cfg *out, ss_err *err)
{
    return decode_defaults(&run_train_cfg_schema, out, err);
}

model_lr_schedule run_train_schedule(const run_train_cfg *t)
{
    model_lr_schedule s = {
        .kind = t->schedule,
        .base = t->learning_rate,
        .warmup_steps = t->warmup_steps,
        .decay_steps = t->decay_steps,
        .end = t->end_learning_rate,
    };
    return s;
}

const char *run_precision_name(run_precision p)
{
    return precision_names[p];
}

const char *run_optimizer_name(run_optimizer o)
{
    return optimizer_names[o];
}

const char *run_schedule_name(model_lr_kind k)
{
    return schedule_names[k];
}


static ss_status run_check_all(void *obj, const cfg_node *map, const char *path, ss_err *err);

static const cfg_field run_fields[] = {
    CFG_STRING(run_cfg, name, CFG_REQUIRED, NULL, "run name"),
    CFG_REF(run_cfg, model, &model_cfg_schema, CFG_REQUIRED,
            "the model: a path to a model config (relative to this file) or an inline mapping"),
    CFG_REF(run_cfg, pod, &sim_pod_schema, CFG_REQUIRED,
            "the pod: a path to a pod config (relative to this file) or an inline mapping"),
    CFG_MAPPING(run_cfg, plan, "plan", &plan_schema, "parallel layout: data, model, ..."),
    CFG_INT(run_cfg, batch, CFG_OPTIONAL, NULL, 1, 1 << 30,
            "sequences per step (give batch or batch_tokens)"),
    CFG_U64(run_cfg, batch_tokens, CFG_OPTIONAL, NULL, 1, 1e15,
            "input tokens per step, a multiple of input_length (give batch or batch_tokens)"),
    CFG_INT(run_cfg, input_length, CFG_OPTIONAL, "512", 1, 1 << 20,
            "encoder tokens per sequence"),
    CFG_INT(run_cfg, target_length, CFG_OPTIONAL, "114", 0, 1 << 20,
            "decoder tokens per sequence"),
    CFG_INT(run_cfg, steps, CFG_OPTIONAL, "1", 1, 1 << 30, "training or evaluation steps"),
    CFG_U64(run_cfg, seed, CFG_OPTIONAL, "0", 0, 1.8446744073709552e19,
            "random seed (initialisation, data, jitter)"),
    CFG_ENUM(run_cfg, mode, CFG_REQUIRED, NULL, mode_names,
             "train (functional, real values), eval, or estimate (timing only)"),
    CFG_MAPPING_OPT(run_cfg, train, "train", has_train, &run_train_cfg_schema,
                    "functional training settings (switchsim train); defaults when absent"),
};

const cfg_schema run_cfg_schema = {
    .kind = "run",
    .summary = "a model on a pod with a parallel layout, batch and steps",
    .size = sizeof(run_cfg),
    .fields = run_fields,
    .nfields = sizeof run_fields / sizeof run_fields[0],
    .check = run_check_all,
};

/* Exactly one of batch / batch_tokens; the other is derived. */
static ss_status check_batch_given(run_cfg *r, const cfg_node *map, const char *path,
                                   ss_err *err)
{
    int has_seq = cfg_map_get(map, "batch") != NULL;
    int has_tok = cfg_map_get(map, "batch_tokens") != NULL;
    if (has_seq && has_tok)
        return cfg_check_error(err, map, path, "batch_tokens",
                               "give batch (sequences) or batch_tokens, not both");
    if (!has_seq && !has_tok)
        return cfg_check_error(err, map, path, "batch",
                               "missing required field: sequences per step (or give "
                               "batch_tokens, input tokens per step)");
    if (has_seq) {
        r->batch_tokens = (uint64_t)r->batch * (uint64_t)r->input_length;
        return SS_OK;
    }
    uint64_t len = (uint64_t)r->input_length;
    if (r->batch_tokens % len != 0)
        return cfg_check_error(err, map, path, "batch_tokens",
                               "%llu tokens are not a whole number of %d-token sequences "
                               "(input_length)",
                               (unsigned long long)r->batch_tokens, r->input_length);
    if (r->batch_tokens / len > (1u << 30))
        return cfg_check_error(err, map, path, "batch_tokens",
                               "%llu sequences per step is more than 2^30",
                               (unsigned long long)(r->batch_tokens / len));
    r->batch = (int)(r->batch_tokens / len);
    return SS_OK;
}

/* A model/plan.h constraint's failure, reported at `field` of the config. */
static ss_status at_field(ss_status st, ss_err *err, const cfg_node *map, const char *path,
                          const char *field)
{
    if (st == SS_OK)
        return SS_OK;
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return cfg_check_error(err, map, path, field, "%s", msg);
}

static ss_status check_cores(run_cfg *r, const cfg_node *map, const char *path, ss_err *err)
{
    return at_field(model_plan_check_cores(r->plan.data, r->plan.model, &r->pod, err), err, map,
                    path, "plan.data");
}

/* Experts spread over the data ways: several per core, or each on several cores. */
static ss_status check_experts(run_cfg *r, const cfg_node *map, const char *path, ss_err *err)
{
    int given = cfg_map_get(cfg_map_get(map, "plan"), "experts_per_core") != NULL;
    if (!r->model.has_switch && given)
        return cfg_check_error(err, map, path, "plan.experts_per_core",
                               "model '%s' is dense (no switch:); experts_per_core does "
                               "not apply",
                               r->model.name);
    ss_status st = model_plan_check_experts(r->plan.data, &r->model, err);
    if (st != SS_OK)
        return at_field(st, err, map, path, "plan.data");
    int per_core = model_plan_experts_per_core(r->plan.data, &r->model);
    if (given && r->plan.experts_per_core != per_core)
        return cfg_check_error(err, map, path, "plan.experts_per_core",
                               "%d does not match %d experts over %d data ways (%d per core)",
                               r->plan.experts_per_core, r->model.sw.num_experts,
                               r->plan.data, per_core);
    r->plan.experts_per_core = per_core;
    return SS_OK;
}

static ss_status check_model_ways(run_cfg *r, const cfg_node *map, const char *path,
                                  ss_err *err)
{
    return at_field(model_plan_check_model_ways(r->plan.model, &r->model, err), err, map, path,
                    "plan.model");
}

static ss_status check_batch_split(run_cfg *r, const cfg_node *map, const char *path,
                                   ss_err *err)
{
    const char *field = cfg_map_get(map, "batch") ? "batch" : "batch_tokens";
    ss_status st = at_field(model_plan_check_batch(r->batch, r->plan.data, err), err, map, path,
                            field);
    if (st != SS_OK)
        return st;
    return at_field(model_plan_check_microbatches(r->batch, r->plan.data, r->plan.microbatches,
                                                  err),
                    err, map, path, "plan.microbatches");
}

/* An absent train: mapping means every training default. */
static ss_status check_train_given(run_cfg *r, const cfg_node *map, const char *path,
                                   ss_err *err)
{
    (void)map;
    (void)path;
    ss_status st = r->has_train ? SS_OK : run_train_cfg_defaults(&r->train, err);
    r->has_train = 1; /* filled: cfg_to_json shows the effective settings */
    return st;
}

typedef ss_status (*run_check)(run_cfg *r, const cfg_node *map, const char *path, ss_err *err);

/* In order; the first failure is reported. The layout constraints themselves are
 * model/plan.h's (model_plan_check_*), which model_plan_make applies to any run; whether the
 * weights, optimizer state and activations of each core fit in its chip's HBM depends on the
 * remat choice and is model_plan_memory_of's check, made by the commands that need it. */
static const run_check run_checks[] = {
    check_batch_given, check_cores, check_experts, check_model_ways, check_batch_split,
    check_train_given,
};

static ss_status run_check_all(void *obj, const cfg_node *map, const char *path, ss_err *err)
{
    for (size_t i = 0; i < sizeof run_checks / sizeof run_checks[0]; i++) {
        ss_status st = run_checks[i](obj, map, path, err);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

ss_status run_cfg_load(run_cfg *out, const char *path, ss_err *err)
{
    return cfg_load(&run_cfg_schema, out, path, err);
}

ss_status run_cfg_decode(run_cfg *out, const cfg_node *node, ss_err *err)
{
    return cfg_decode(&run_cfg_schema, out, node, "", err);
}

const char *run_mode_name(run_mode m)
{
    return mode_names[m];
}
