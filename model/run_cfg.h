/* This file declares the description of a run, as read from a `kind: run` config
 * (configs/runs/): which model on which pod, the parallel layout (data x model ways, experts
 * per core, microbatches), the batch and sequence lengths, the number of steps, the seed and
 * the mode; and, for functional training (`switchsim train`), the `train:` settings:
 * precision, optimizer, learning-rate schedule, clipping, evaluation and checkpoint cadence,
 * and the data (`train.data:`).
 *
 * Invariants: after run_cfg_load succeeds, plan.data * plan.model == pod.cores; plan.model
 * divides the model's d_ff and num_heads; with Switch layers the experts spread evenly over
 * the data ways (num_experts % data == 0 when num_experts >= data, else data % num_experts
 * == 0) and experts_per_core is max(1, num_experts / data); batch (sequences) is divisible by
 * plan.data and batch / plan.data by plan.microbatches; batch_tokens == batch * input_length;
 * train holds every `train:` field (defaults when absent), its optimizer and schedule settings
 * pass model/optim.h's checks, and train.data.corpus is absolute or relative to the working
 * directory (resolved against the config file).
 * reference: REFERENCE.md section 4 (data, model and expert parallelism).
 */
#ifndef SWITCHSIM_MODEL_RUN_CFG_H
#define SWITCHSIM_MODEL_RUN_CFG_H

#include <stdint.h>

#include "common/cfg.h"
#include "common/status.h"
#include "model/model_cfg.h"
#include "model/optim.h"
#include "sim/mxu_gemm.h"
#include "sim/pod.h"

typedef enum { RUN_MODE_TRAIN = 0, RUN_MODE_EVAL, RUN_MODE_ESTIMATE } run_mode;

/* How the N = data * model cores of the pod share the work. */
typedef struct {
    int data;              /* n: data-parallel ways (experts are spread over these) */
    int model;             /* m: model-parallel ways (d_ff and heads split m ways) */
    int experts_per_core;  /* derived when not given: max(1, num_experts / data); 0 if dense */
    int microbatches;      /* gradient-accumulation steps per batch */
    int mapping;           /* model_plan_mapping (model/plan.h): 0 model_neighbours (default),
                              1 data_neighbours: which ways get neighbouring cores */
    int remat;             /* 1: rematerialise activations in backward (plan memory, step) */
} run_plan;

typedef enum { RUN_PRECISION_BF16 = 0, RUN_PRECISION_FP32 } run_precision;
typedef enum { RUN_OPTIMIZER_ADAFACTOR = 0, RUN_OPTIMIZER_ADAMW } run_optimizer;

/* The training data (model/data.h): where the corpus is and how it is corrupted and split. */
typedef struct {
    char corpus[1024];       /* fortune file or directory; a relative path is resolved against
                                the directory of the config file that gives it */
    double heldout_fraction; /* of the corpus chunks, kept out of training for evaluation */
    double noise_density;    /* span corruption: fraction of tokens corrupted */
    double mean_span;        /* span corruption: mean noise span length, tokens */
} run_data_cfg;

/* How a functional training run trains (YAML `train:`; every field has a default, and an
 * absent `train:` mapping means all defaults). */
typedef struct {
    run_precision precision;       /* bf16: bf16 matmul operands and stored activations (the
                                      model's router_dtype decides the router); fp32: fp32 */
    sim_gemm_mode gemm;            /* how matmuls are computed: exact (systolic order) or fast */
    run_optimizer optimizer;
    model_adafactor_cfg adafactor; /* YAML `adafactor:`; T5X's defaults */
    model_adamw_cfg adamw;         /* YAML `adamw:`; torch.optim.AdamW's defaults */
    int has_adafactor, has_adamw;  /* 1 once decoded (given or defaulted), so that
                                      cfg_to_json shows the effective settings */
    double learning_rate;          /* schedule base: peak lr, or the rsqrt numerator */
    model_lr_kind schedule;        /* constant | rsqrt | linear */
    uint64_t warmup_steps;         /* linear warmup (constant, linear) or rsqrt plateau */
    uint64_t decay_steps;          /* linear: steps from learning_rate to end_learning_rate */
    double end_learning_rate;      /* linear: the final lr */
    double clip_norm;              /* global gradient-norm clipping threshold; 0: off */
    int eval_every;                /* held-out evaluation every N steps (and at the end);
                                      0: at the end only */
    int eval_batches;              /* held-out batches per evaluation */
    int checkpoint_every;          /* checkpoint every N steps (and at the end); 0: end only */
    int log_every;                 /* a metrics line every N steps (and the last step) */
    run_data_cfg data;             /* YAML `data:` */
    int has_data;                  /* 1 once decoded, as has_adafactor */
    int compare_router;            /* 1: every training step also routes its router inputs
                                      with the other router dtype (bf16 <-> fp32) and logs
                                      router_disagreement; changes no trajectory */
} run_train_cfg;

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
    run_train_cfg train;   /* YAML `train:`; all defaults when absent */
    int has_train;         /* 1 once decoded (given or defaulted), so that cfg_to_json
                              shows the effective training settings */
} run_cfg;

/* The fields of a `kind: run` config. */
extern const cfg_schema run_cfg_schema;

/* Loads and validates a run; model and pod may be paths (relative to the run file) or inline
 * mappings. Errors name file, line, column and field. */
ss_status run_cfg_load(run_cfg *out, const char *path, ss_err *err);
ss_status run_cfg_decode(run_cfg *out, const cfg_node *node, ss_err *err);

const char *run_mode_name(run_mode m);

/* The fields of a run's `train:` mapping. */
extern const cfg_schema run_train_cfg_schema;
/* Every field of `train:` at its default (what an absent mapping means). */
ss_status run_train_cfg_defaults(run_train_cfg *out, ss_err *err);
/* The learning-rate schedule the settings describe. */
model_lr_schedule run_train_schedule(const run_train_cfg *t);
const char *run_precision_name(run_precision p);
const char *run_optimizer_name(run_optimizer o);
const char *run_schedule_name(model_lr_kind k);

#endif
