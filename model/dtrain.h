/* This file declares the functional distributed trainer: the T5/Switch model of model/t5.h
 * trained for real on P simulated cores, expert + data parallel, with every token and every
 * gradient moved between the cores' buffers by the collectives module (collectives/coll.h).
 *
 * Layout (P = cores, E experts): core c holds a replica of every dense parameter and, of every
 * Switch layer, either experts [c Eo, (c + 1) Eo) when E >= P (Eo = E / P experts per core,
 * one owner each) or expert c / R when E < P (R = P / E expert replicas: expert e lives on
 * cores e R .. e R + R - 1, as model_plan_first_expert places it). Its parameter buffer keeps
 * the whole t5.h layout so that offsets stay those of the single-device model; the slices of
 * experts it does not hold are never read, written or updated. Core c gets
 * sequences [c B/P, (c + 1) B/P) of the batch of B sequences; a Switch layer's routing groups
 * are formed from the core's own tokens (sw.group_size must divide them).
 *
 * One step (model_dtrain_step), every core in its own thread:
 *   forward: the core's model runs its shard; at each Switch layer it routes its tokens
 *     (model_switch_route_forward: packed rows grouped by expert, hence by owner), then an
 *     all-to-allv (counts: the kept rows for each owner) moves the rows to the owners (with
 *     replicas, core s's rows for expert e go to the replica e R + s mod R, the one in s's
 *     replica group, so each replica serves P / R sources), as bf16
 *     with bf16 numerics (the rows are bf16 values already) or fp32; the owner runs each of its
 *     experts on the rows of all sources (source order: the single-device row order), and a
 *     second all-to-allv (the transposed counts) brings the outputs back for the combine;
 *   backward: mirrored: the gradients of the expert outputs go to the owners (fp32), the owner
 *     runs the expert backward (its expert gradients stay local) and the input gradients
 *     return (fp32); each core weights its loss by n_c / n (its share of the batch's non-pad
 *     targets) and its routing losses by 1 / P (model_t5_backward_weighted), so the SUM over
 *     cores is the gradient of the whole batch;
 *   then the dense gradients of all cores are all-reduced (summed, fp32) through one
 *   all-reduce schedule and, with replicas, each expert's gradients among its R cores (one
 *   subgroup all-reduce schedule per expert: each replica holds the gradient of the rows it
 *   ran); the global gradient norm (dense once + every expert once) clips
 *   them as model_grad_clip_global_norm does, and every core applies the same optimizer
 *   update to its dense replica and its own expert slices (Adafactor factors each expert
 *   matrix as it would in the whole stack).
 *
 * Equivalence. With no dropout (cfg.dropout = sw.expert_dropout = 0; jitter draws from each
 * core's own stream, so it must be off too) the step computes what model/train.h's single
 * device step computes on the same batch with the same routing groups: routing decisions
 * are identical whenever the router inputs are, and losses and parameters differ only by
 * floating-point summation order: dense weight gradients are sums of P per-core matmuls
 * added by the all-reduce instead of one matmul over the batch (with replicas, an expert's
 * weight gradients likewise: R partial matmuls added by its subgroup all-reduce), the loss
 * weights n_c / n round differently from 1 / n, and the global norm is accumulated in
 * another order.
 *
 * Threads: the P core threads meet at a barrier around every exchange; one of them runs the
 * collective for all. A core that fails keeps meeting the barriers, so the others finish.
 *
 * Invariants: after a step every core's dense parameters, and the R replicas of an expert, are
 * bit-identical (one all-reduce result, one update rule); the rows a core receives in a
 * dispatch equal the kept choices, for its experts, of the cores it serves; a choice's expert
 * index is global.
 * reference: W. Fedus, B. Zoph, N. Shazeer, "Switch Transformers", JMLR 23, 2022 (section 5,
 * expert and data parallelism); D. Lepikhin et al., "GShard", arXiv 2006.16668.
 */
#ifndef SWITCHSIM_MODEL_DTRAIN_H
#define SWITCHSIM_MODEL_DTRAIN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "collectives/coll.h"
#include "common/status.h"
#include "model/linear.h"
#include "model/model_cfg.h"
#include "model/run_cfg.h"
#include "model/t5.h"

typedef struct {
    const model_cfg *model;
    model_t5_shape shape;        /* the whole batch: B sequences, B % cores == 0 */
    model_numerics nx;
    int cores;                   /* P >= 1 */
    const run_train_cfg *train;  /* optimizer and its settings, clip_norm */
    uint64_t seed;               /* parameters (model_t5_init_params) and the cores' dropout
                                    streams (one per core and step, keyed by (seed, core,
                                    step): a step's masks do not depend on earlier steps) */
    const sim_topo *topo;        /* may be NULL: schedules without a topology (direct
                                    all-to-all, ring all-reduce) */
    const int32_t *core_of;      /* [cores] topology core of each rank (with topo) */
    coll_cost cost;              /* link figures for coll_schedule_build_auto (with topo) */
} model_dtrain_cfg;

/* One step's metrics for the whole batch (arrays owned by the trainer, valid until the next
 * step). Layer order: encoder Switch layers, then decoder. */
typedef struct {
    double loss;              /* token-weighted mean cross-entropy over the cores */
    double aux_loss, z_loss;  /* means over cores (= over all routing groups) */
    double total;             /* loss + aux_loss + z_loss */
    size_t tokens, correct;   /* sums over cores */
    double grad_norm;         /* global norm before clipping */
    int nswitch, num_experts, top_k;
    const int32_t *tokens_per_expert; /* [nswitch * E] first choices before capacity, summed */
    const double *dropped_fraction;   /* [nswitch] means over cores */
    const double *router_entropy;     /* [nswitch] means over cores */
    const int32_t *expert_choice;     /* layer i's choices from choice_offset[i]: the
                                         single-device order (core 0's tokens first), global
                                         expert index, -1 when dropped */
    const size_t *choice_offset;      /* [nswitch + 1] */
    const uint64_t *received_rows;    /* [nswitch * cores]: rows core c received in layer
                                         i's dispatch all-to-allv (the collective's output
                                         count / C) */
    const uint64_t *sent_rows;        /* [nswitch * cores * cores]: rows core s sent core o
                                         in layer i's dispatch (s major) */
} model_dtrain_metrics;

typedef struct model_dtrain model_dtrain;

/* Builds the P replicas (parameters from cfg->seed, identical on every core), the expert
 * buffers, the optimizer states and the all-reduce schedule. SS_ERR_CONFIG with the numbers
 * when the layout is impossible: cores < 1, B not divisible by cores, num_experts neither a
 * multiple nor a divisor of the cores, a routing group size that does not divide a core's
 * tokens.
 * *out is NULL on failure. */
ss_status model_dtrain_init(model_dtrain **out, const model_dtrain_cfg *cfg, ss_err *err);
void model_dtrain_free(model_dtrain *d);

/* One training step on the whole batch: inputs [B, T_in], decoder_inputs and targets
 * [B, T_out]; step = updates applied before it (the optimizer's t), lr its learning rate.
 * SS_ERR_RANGE for a non-finite gradient norm (no update is applied). m may be NULL. */
ss_status model_dtrain_step(model_dtrain *d, const int32_t *inputs,
                            const int32_t *decoder_inputs, const int32_t *targets,
                            uint64_t step, float lr, model_dtrain_metrics *m, ss_err *err);

/* The whole model's parameters in the t5.h layout: dense tensors from core 0, each expert
 * from its owner (its first replica). out holds model_dtrain_nparams floats. */
void model_dtrain_params(const model_dtrain *d, float *out);
size_t model_dtrain_nparams(const model_dtrain *d);
/* Largest difference between two cores' dense parameters or two replicas of an expert (0
 * when the replicas agree). */
double model_dtrain_replica_spread(const model_dtrain *d);

/* The whole model's optimizer state, as a checkpoint holds it (model/checkpoint.h): the
 * dense tensors' state (core 0's, optim.h's layout over the dense tensors in model order),
 * then each expert owner's state of its expert slices (its first replica's), owners in core
 * order. model_dtrain_opt_size floats. */
size_t model_dtrain_opt_size(const model_dtrain *d);
void model_dtrain_opt_state(const model_dtrain *d, float *out);
/* Sets every core from the whole model's parameters [nparams] and optimizer state
 * [model_dtrain_opt_size] (as model_dtrain_params and model_dtrain_opt_state give them): the
 * dense ones on every core, each expert's on all its replicas. */
void model_dtrain_set_state(model_dtrain *d, const float *params, const float *opt_state);

/* ---- the training run (dtrain_run.c) ---------------------------------------------------- */

/* Seconds of one simulated training step: the run's step program (model/stepgen.h, exact
 * counts: expert buffers and all-to-alls sized by tokens_per_expert, [nswitch * E] first
 * choices of a real step, as a routing histogram) lowered to send/recv on the pod's topology
 * (coll_program_lower) and timed by the analytic engine. tokens_per_expert NULL: uniform
 * routing. */
ss_status model_dtrain_step_seconds(const run_cfg *run, const int32_t *tokens_per_expert,
                                    int nswitch, double *seconds, ss_err *err);

typedef struct {
    const run_cfg *run;          /* model, pod, plan (data ways = cores; model ways 1),
                                    batch, lengths, steps, seed, train: settings (with
                                    eval_every, eval_batches, checkpoint_every) */
    uint64_t steps;              /* updates to have applied at the end (0: the run's) */
    const char *out_dir;         /* metrics.jsonl, checkpoint.bin and results.json; NULL: no
                                    files (evaluation still runs, for results) */
    int resume;                  /* continue from out_dir/checkpoint.bin */
    int force;                   /* start afresh even when out_dir holds a checkpoint */
    const json_t *versions;      /* copied into results.json (may be NULL) */
    int time_every;              /* time the step program every N steps (and the last); 0: 1 */
} model_dtrain_run_opts;

/* Trains the run on its plan's cores, one metrics line per step in out_dir/metrics.jsonl:
 * {"split": "train", "step", "lr", "loss", "aux_loss", "z_loss", "total", "grad_norm",
 * "accuracy", "tokens", "dropped_fraction", "tokens_per_expert", "router_entropy" (as
 * model/train.h's lines), "received_rows": [[rows per core] per Switch layer], "sim_step_s"
 * (the simulated step time with this step's routing; on timed steps), "wall_s"}. When the
 * corpus has a held-out split, evaluation lines as model/train.h's (model_train_evaluate,
 * the same keys) every train.eval_every steps and after the last: the whole model gathered
 * from the cores (model_dtrain_params) runs each held-out batch as the P cores' shards, one
 * after the other, so that every core's tokens form that core's routing groups with the eval
 * capacity factor, as a distributed forward would route them (on the host: not timed).
 * Checkpoints (out_dir/checkpoint.bin, model/checkpoint.h's format, written atomically)
 * every train.checkpoint_every steps and after the last: the whole model's parameters
 * (model_dtrain_params) and optimizer state (model_dtrain_opt_state's layout), the step,
 * tokens and data position; the rng field is zero (the cores' dropout streams are keyed by
 * step); the settings hash is model_train_settings_hash's extended by the core count, so a
 * checkpoint of another core count or of the single-device trainer is refused. The directory
 * policy and resume are model/train.h's (model_train_out_dir: a DIR holding a checkpoint
 * needs resume or force; resume keeps the metrics lines up to the checkpoint's step): a
 * resumed run writes the lines of the uninterrupted run bit for bit (but wall_s) and reaches
 * the same parameters. Then results.json: model, run, cores, pod, plan {data, model,
 * experts_per_core, expert_replicas}, seed, steps (the total reached), first_step,
 * steps_run, batch, input_length, target_length, nparams, numerics, final {train_loss,
 * train_accuracy (null when no step ran in this invocation), eval_loss, eval_accuracy,
 * eval_step (null without a held-out split)}, sim_step_s {first, last, mean, timed_steps of
 * this invocation}, sim_examples_per_s (batch / mean), tokens_per_s (real input tokens per
 * wall second of this invocation), wall_s, out_dir, versions. *results: the caller frees.
 * Errors: the layout (as model_dtrain_init, and SS_ERR_CONFIG for plan.model > 1: model
 * parallelism is timed by estimate but not executed here), SS_ERR_USAGE for the directory
 * policy (and resume without out_dir), SS_ERR_DATA for a checkpoint that fails a check, data,
 * I/O (out_dir is created, one level), divergence. */
ss_status model_dtrain_run(const model_dtrain_run_opts *o, json_t **results, ss_err *err);

#endif
