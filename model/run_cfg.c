/* This file implements the run description of run_cfg.h: the schemas of a `kind: run` config
 * and of its `plan:` mapping, and the checks that tie the plan to the model and the pod (core
 * count, expert placement, model-parallel splits, batch splits).
 *
 * Invariants: see run_cfg.h. Each check names the field it is about and states the numbers
 * that disagree; checks run in the order of run_checks, the first failure is reported.
 * reference: REFERENCE.md sections 2 (T5 pre-training: 512 input / 114 target tokens) and 4
 * (parallelism: N = n x m cores, experts spread over the n data ways).
 */
#include "model/run_cfg.h"

#include <stddef.h>

static const char *const mode_names[] = {"train", "eval", "estimate", NULL};

static const cfg_field plan_fields[] = {
    CFG_INT(run_plan, data, CFG_REQUIRED, NULL, 1, 1 << 20,
            "data-parallel ways n (experts are spread over these)"),
    CFG_INT(run_plan, model, CFG_OPTIONAL, "1", 1, 1 << 16,
            "model-parallel ways m (d_ff and heads split m ways)"),
    CFG_INT(run_plan, experts_per_core, CFG_OPTIONAL, NULL, 1, 1 << 16,
            "experts on each core (default: max(1, num_experts / data))"),
    CFG_INT(run_plan, microbatches, CFG_OPTIONAL, "1", 1, 1 << 16,
            "gradient-accumulation steps per batch"),
};

static const cfg_schema plan_schema = {
    .kind = NULL,
    .summary = "parallel layout of the run on the pod's cores",
    .size = sizeof(run_plan),
    .fields = plan_fields,
    .nfields = sizeof plan_fields / sizeof plan_fields[0],
    .check = NULL,
};

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

static ss_status check_cores(run_cfg *r, const cfg_node *map, const char *path, ss_err *err)
{
    long used = (long)r->plan.data * r->plan.model;
    if (used == r->pod.cores)
        return SS_OK;
    long diff = used > r->pod.cores ? used - r->pod.cores : r->pod.cores - used;
    return cfg_check_error(err, map, path, "plan.data",
                           "plan uses %d*%d = %ld cores but pod '%s' has %d cores (%ld %s)",
                           r->plan.data, r->plan.model, used, r->pod.name, r->pod.cores, diff,
                           used > r->pod.cores ? "too many" : "left idle");
}

/* Experts spread over the data ways: several per core, or each on several cores. */
static ss_status check_experts(run_cfg *r, const cfg_node *map, const char *path, ss_err *err)
{
    int given = cfg_map_get(cfg_map_get(map, "plan"), "experts_per_core") != NULL;
    if (!r->model.has_switch) {
        if (given)
            return cfg_check_error(err, map, path, "plan.experts_per_core",
                                   "model '%s' is dense (no switch:); experts_per_core does "
                                   "not apply",
                                   r->model.name);
        r->plan.experts_per_core = 0;
        return SS_OK;
    }
    int e = r->model.sw.num_experts, n = r->plan.data;
    if (e >= n && e % n != 0)
        return cfg_check_error(err, map, path, "plan.data",
                               "model '%s' has %d experts, which do not spread evenly over %d "
                               "data ways (%d %% %d = %d)",
                               r->model.name, e, n, e, n, e % n);
    if (e < n && n % e != 0)
        return cfg_check_error(err, map, path, "plan.data",
                               "%d data ways cannot hold the %d experts of model '%s' the same "
                               "number of times each (%d %% %d = %d)",
                               n, e, r->model.name, n, e, n % e);
    int per_core = e >= n ? e / n : 1;
    if (given && r->plan.experts_per_core != per_core)
        return cfg_check_error(err, map, path, "plan.experts_per_core",
                               "%d does not match %d experts over %d data ways (%d per core)",
                               r->plan.experts_per_core, e, n, per_core);
    r->plan.experts_per_core = per_core;
    return SS_OK;
}

static ss_status check_model_ways(run_cfg *r, const cfg_node *map, const char *path,
                                  ss_err *err)
{
    int m = r->plan.model;
    if (r->model.d_ff % m != 0)
        return cfg_check_error(err, map, path, "plan.model",
                               "%d model ways do not divide d_ff = %d of model '%s' "
                               "(%d %% %d = %d)",
                               m, r->model.d_ff, r->model.name, r->model.d_ff, m,
                               r->model.d_ff % m);
    if (r->model.num_heads % m != 0)
        return cfg_check_error(err, map, path, "plan.model",
                               "%d model ways do not divide num_heads = %d of model '%s' "
                               "(%d %% %d = %d)",
                               m, r->model.num_heads, r->model.name, r->model.num_heads, m,
                               r->model.num_heads % m);
    return SS_OK;
}

static ss_status check_batch_split(run_cfg *r, const cfg_node *map, const char *path,
                                   ss_err *err)
{
    const char *field = cfg_map_get(map, "batch") ? "batch" : "batch_tokens";
    if (r->batch % r->plan.data != 0)
        return cfg_check_error(err, map, path, field,
                               "%d sequences per step do not split evenly over %d data ways "
                               "(%d %% %d = %d)",
                               r->batch, r->plan.data, r->batch, r->plan.data,
                               r->batch % r->plan.data);
    int per_way = r->batch / r->plan.data;
    if (per_way % r->plan.microbatches != 0)
        return cfg_check_error(err, map, path, "plan.microbatches",
                               "the %d sequences of each data way do not split into %d "
                               "microbatches (%d %% %d = %d)",
                               per_way, r->plan.microbatches, per_way, r->plan.microbatches,
                               per_way % r->plan.microbatches);
    return SS_OK;
}

typedef ss_status (*run_check)(run_cfg *r, const cfg_node *map, const char *path, ss_err *err);

/* In order; the first failure is reported. Extension point: whether the weights, optimizer
 * state and activations of each core fit in its chip's HBM is checked here once model/ can
 * estimate them (a later issue); until then no memory check is made. */
static const run_check run_checks[] = {
    check_batch_given, check_cores, check_experts, check_model_ways, check_batch_split,
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
