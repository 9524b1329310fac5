/* This file declares the functional training loop: the whole T5/Switch model (model/t5.h)
 * trained for real on the span-corrupted fortunes corpus (model/data.h) with Adafactor or
 * AdamW (model/optim.h), writing per-step metrics, periodic held-out evaluations, checkpoints
 * (model/checkpoint.h) and a final results.json into an output directory.
 *
 * One step s (s = updates applied before it, 0 first): the training batch s (data.h: example
 * s * B + b in row b), zero the gradients, forward with training = 1 drawing dropout and
 * jitter from the run's training rng stream, backward, global-norm clipping (clip_norm; the
 * pre-clip norm is logged), lr = schedule(s), one optimizer update with step s. A non-finite
 * gradient norm stops the run with an error (the update is not applied).
 *
 * Randomness: parameters from model_t5_init_params(seed); the data order and noise masks from
 * the dataset's seed (= seed); dropout and jitter from one rng stream seeded with
 * seed ^ MODEL_TRAIN_RNG_SALT that runs across steps and is saved in checkpoints. Evaluation
 * (training = 0: no dropout, no jitter, the eval capacity factor) draws nothing, so when and
 * how often it runs never changes the training trajectory. Same options, same results, bit for
 * bit (with the same OpenBLAS core and thread count in gemm: fast).
 *
 * Output directory DIR (created if missing, one level):
 *   DIR/metrics.jsonl   one JSON object per line. Training lines (every log_every steps and
 *                       the last step): {"split": "train", "step": s + 1 (updates applied
 *                       after it), "lr", "loss", "aux_loss", "z_loss", "total", "grad_norm"
 *                       (before clipping), "accuracy", "tokens" (non-pad targets of the
 *                       batch), "dropped_fraction": [per Switch layer], "tokens_per_expert":
 *                       [[E counts] per Switch layer, top-1 choices before capacity],
 *                       "router_entropy": [per Switch layer], "wall_s"; with train
 *                       compare_router also "router_disagreement": [per Switch layer: the
 *                       fraction of its tokens whose expert choice differs when the same
 *                       router inputs and weights of the step's forward are routed with the
 *                       other router dtype, model_t5_router_disagreement] and
 *                       "router_compare_dtype" ("bf16" or "fp32": that other dtype)}.
 *                       Evaluation lines
 *                       (every eval_every steps and after the last step, when the corpus has
 *                       a held-out split): {"split": "heldout", "step", "batches", "loss"
 *                       (token-weighted over the batches), "accuracy", "tokens", "aux_loss",
 *                       "z_loss", "total" (means over batches), "dropped_fraction": [mean per
 *                       layer], "router_entropy": [mean per layer], "wall_s"}. Layer order:
 *                       encoder Switch layers, then decoder. Reals are printed with 17
 *                       significant digits, so lines of two runs compare bit for bit (all but
 *                       wall_s).
 *   DIR/checkpoint.bin  every checkpoint_every steps and after the last step (atomic).
 *   DIR/results.json    written atomically at the end (keys: see model_train_run).
 *
 * Starting and resuming: a run without resume refuses a DIR that holds checkpoint.bin
 * (SS_ERR_USAGE: pass resume to continue it or force to start afresh, which deletes the
 * checkpoint and truncates metrics.jsonl once the model is set up). With resume,
 * DIR/checkpoint.bin
 * must exist and match the run (model, nparams, optimizer, state size, seed, settings hash:
 * model_train_settings_hash); parameters, optimizer state, step, tokens and the rng stream come
 * from it, metrics.jsonl keeps its lines up to the checkpoint's step (lines of later steps,
 * and a partial last line, are dropped: they were written after the checkpoint by a run that
 * stopped) and new lines are appended. A resumed run then writes exactly the lines and
 * parameters the uninterrupted run would have (but wall_s). `steps` is the total to reach: a
 * checkpoint already at or past it trains nothing.
 *
 * Invariants: the checkpoint's step equals the number of training lines' steps <= it that a
 * log_every = 1 run has written; metrics lines are flushed before each checkpoint is written.
 * reference: C. Raffel et al., T5, JMLR 21, 2020 (pre-training setup); W. Fedus, B. Zoph, N.
 * Shazeer, Switch Transformers, JMLR 23, 2022.
 */
#ifndef SWITCHSIM_MODEL_TRAIN_H
#define SWITCHSIM_MODEL_TRAIN_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "common/bf16.h"
#include "common/status.h"
#include "model/data.h"
#include "model/linear.h"
#include "model/model_cfg.h"
#include "model/run_cfg.h"
#include "model/t5.h"

#define MODEL_TRAIN_RNG_SALT UINT64_C(0x7261696e64726f70) /* "raindrop": dropout stream */

/* What a progress display gets after every step. */
typedef struct {
    uint64_t step;        /* updates applied */
    uint64_t steps;       /* the total to reach */
    uint64_t first_step;  /* where this invocation started */
    double loss;          /* of the last step */
    double lr;            /* of the last step */
    double eval_loss;     /* of the last evaluation; NaN before the first */
    double wall_s;        /* of this invocation */
    double tokens_per_s;  /* input tokens per second in this invocation */
} model_train_progress;

typedef void (*model_train_progress_fn)(void *ctx, const model_train_progress *p);

typedef struct {
    const model_cfg *model;
    const char *run_name;        /* the run config's name; NULL without one */
    run_train_cfg train;         /* numerics, optimizer, schedule, cadence, data */
    int batch;                   /* B: sequences per step */
    int input_length;            /* T_in */
    int target_length;           /* T_out; 0: what span corruption yields for T_in */
    uint64_t steps;              /* updates to have applied at the end */
    uint64_t seed;
    bf16_denormals denormals;    /* precision bf16: the chip's denormal policy */
    const char *out_dir;
    int resume;                  /* continue from out_dir/checkpoint.bin */
    int force;                   /* start afresh even when out_dir holds a checkpoint */
    const json_t *versions;      /* copied into results.json "versions" (may be NULL) */
    const char *record_routing;  /* NULL, or a path: write the routing histogram of this
                                    invocation's training steps there (model/stepgen.h's
                                    format: per Switch layer, the fraction of tokens whose
                                    first choice was each expert, before capacity) */
    model_train_progress_fn progress; /* may be NULL */
    void *progress_ctx;
} model_train_opts;

/* Runs (or resumes) training as described above. On success *results (caller frees with
 * json_decref) is what DIR/results.json holds:
 *   model, run (null without a run config), model_config (the model's fields), seed, steps
 *   (the total reached), first_step (where this invocation started), steps_run, batch,
 *   input_length, target_length, nparams,
 *   numerics {precision, gemm, denormals, router_dtype},
 *   optimizer {kind, learning_rate, schedule, warmup_steps, decay_steps, end_learning_rate,
 *   clip_norm, settings {that optimizer's fields}},
 *   data {corpus, heldout_fraction, noise_density, mean_span, train_chunks, heldout_chunks},
 *   final {train_loss, train_accuracy (of the last step; null when no step ran in this
 *   invocation), eval_loss, eval_accuracy, eval_step (null without a held-out split)},
 *   tokens_per_s (input tokens B * T_in per second of this invocation's steps; 0 when none
 *   ran), examples_per_s, wall_s (this invocation's training loop), out_dir, versions.
 * Errors: configuration and data problems as their modules report them, SS_ERR_USAGE for the
 * directory policy above, SS_ERR_DATA for a checkpoint that fails a check (checkpoint.h),
 * SS_ERR_RANGE when the gradient norm is not finite. */
ss_status model_train_run(const model_train_opts *o, json_t **results, ss_err *err);

/* FNV-1a 64 of what decides the trajectory besides the model config, the seed and the
 * parameters: precision, gemm mode, denormal policy, batch, input and (resolved) target
 * lengths, optimizer kind and settings, schedule, clip_norm, heldout fraction, span
 * corruption settings and the corpus bytes (not its path). eval/checkpoint/log cadence is
 * left out: it never changes the trajectory. */
/* Additions shared with the distributed trainer (model/dtrain.h): */
/* The numerics a train: mapping asks for (precision, gemm mode), with the chip's denormal
 * policy for bf16. */
model_numerics model_train_numerics(const run_train_cfg *train, bf16_denormals denormals);
/* Loads train->data.corpus and sets up span corruption (model_data_cfg_t5 with the
 * mapping's heldout fraction, noise density and mean span) for input_length and
 * target_length (0: what span corruption yields) with the data seed. On failure nothing is
 * left to free. */
ss_status model_train_data_open(model_data_corpus *corpus, model_data *ds,
                                const run_train_cfg *train, int input_length,
                                int target_length, uint64_t seed, ss_err *err);

uint64_t model_train_settings_hash(const model_train_opts *o, int target_length,
                                   const uint8_t *corpus, size_t corpus_bytes);

/* The output directory's files and policy (the paragraph "Starting and resuming" above),
 * shared with the distributed trainer. */
typedef struct {
    char ckpt[4096], metrics[4096], results[4096]; /* DIR/checkpoint.bin, metrics.jsonl,
                                                      results.json */
} model_train_paths;
/* Fills p, creates dir (one level) and applies the checkpoint policy: SS_ERR_USAGE for resume
 * without DIR/checkpoint.bin, or for a checkpoint there without resume or force. */
ss_status model_train_out_dir(const char *dir, int resume, int force, model_train_paths *p,
                              ss_err *err);
/* Keeps the complete lines of the metrics file at path up to the first whose step is past
 * `step` (atomically; nothing to do when the file does not exist). */
ss_status model_train_metrics_truncate(const char *path, uint64_t step, ss_err *err);
/* Opens p->metrics for appending (resume) or afresh, after removing an old p->ckpt (not
 * resume), so that an old checkpoint is never resumed against a new run's metrics. */
ss_status model_train_metrics_open(const model_train_paths *p, int resume, FILE **f,
                                   ss_err *err);

/* Held-out evaluation (training = 0: no dropout, no jitter, the eval capacity factor; no rng
 * use): `batches` held-out batches of `batch` sequences (data.h: batch b), each run as
 * `shards` forwards of batch / shards consecutive rows on m (whose shape.B is batch / shards:
 * the distributed trainer evaluates each core's rows as that core would route them). */
typedef struct {
    model_t5 *m;
    model_data *ds;
    int batch, shards, batches;
    int32_t *inputs, *targets, *dec_inputs; /* [batch, T_in], [batch, T_out] x 2 scratch */
} model_train_eval_opts;

typedef struct {
    double loss, accuracy; /* token-weighted over the batches */
} model_train_eval;

/* Evaluates and builds the metrics line {"split": "heldout", "step", "batches", "loss",
 * "accuracy", "tokens", "aux_loss", "z_loss", "total" (means over the forwards),
 * "dropped_fraction", "router_entropy" (means per layer)}; the caller adds wall_s and owns
 * *line. */
ss_status model_train_evaluate(const model_train_eval_opts *o, uint64_t step,
                               model_train_eval *res, json_t **line, ss_err *err);

#endif
