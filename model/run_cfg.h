/* This file declares the description of a run, as read from a `kind: run` config
 * (configs/runs/): which model on which pod, the parallel layout (data x model ways, experts
 * per core, microbatches), the batch and sequence lengths, the number of steps, the seed and
 * the mode.
 *
 * Invariants: after run_cfg_load succeeds, plan.data * plan.model == pod.cores; plan.model
 * divides the model's d_ff and num_heads; with Switch layers the experts spread evenly over
 * the data ways (num_experts % data == 0 when num_experts >= data, else data % num_experts
 * == 0) and experts_per_core is max(1, num_experts / data); batch (sequences) is divisible by
 * plan.data and batch / plan.data by plan.microbatches; batch_tokens == batch * input_length.
 * reference: REFERENCE.md section 4 (data, model and expert parallelism).
 */
#ifndef SWITCHSIM_MODEL_RUN_CFG_H
#define SWITCHSIM_MODEL_RUN_CFG_H

#include <stdint.h>

#include "common/cfg.h"
#include "common/status.h"
#include "model/model_cfg.h"
#include "sim/pod.h"

typedef enum { RUN_MODE_TRAIN = 0, RUN_MODE_EVAL, RUN_MODE_ESTIMATE } run_mode;

/* How the N = data * model cores of the pod share the work. */
typedef struct {
    int data;              /* n: data-parallel ways (experts are spread over these) */
    int model;             /* m: model-parallel ways (d_ff and heads split m ways) */
    int experts_per_core;  /* derived when not given: max(1, num_experts / data); 0 if dense */
    int microbatches;      /* gradient-accumulation steps per batch */
} run_plan;

typedef struct {
    char name[64];
    model_cfg model;
    sim_pod pod;
    run_plan plan;
    int batch;             /* sequences per step (derived from batch_tokens when not given) */
    uint64_t batch_tokens; /* input tokens per step: batch * input_length */
    int input_length;      /* encoder tokens per sequence */
    int target_length;     /* decoder tokens per sequence */
    int steps;
    uint64_t seed;
    run_mode mode;
} run_cfg;

/* The fields of a `kind: run` config. */
extern const cfg_schema run_cfg_schema;

/* Loads and validates a run; model and pod may be paths (relative to the run file) or inline
 * mappings. Errors name file, line, column and field. */
ss_status run_cfg_load(run_cfg *out, const char *path, ss_err *err);
ss_status run_cfg_decode(run_cfg *out, const cfg_node *node, ss_err *err);

const char *run_mode_name(run_mode m);

#endif
