/* This file declares the parallel layout of a training run over a pod's cores (the plan) and
 * the memory each core needs for it.
 *
 * Layout. The pod's cores form a logical n x m grid: n data ways (d = 0..n-1: each holds
 * batch / n sequences) by m model ways (k = 0..m-1: each holds 1/m of every d_ff and of the
 * attention heads). Switch experts are spread over the n data ways: with E >= n each data way
 * holds E / n experts (expert parallelism; tokens reach them by all-to-all); with E < n each
 * expert is replicated on n / E data ways. The m model ways split each expert's d_ff too.
 * The strategy (REFERENCE.md section 4, the paper's Section 5) follows from n, m and the
 * model, never from the user. Experts are only parallel when there are several data ways, so
 * a model counts as Switch-parallel when it has Switch layers and n > 1:
 *   m == 1: data (dense, or n == 1: all experts on the one core)   Switch, n > 1: expert+data
 *   n == 1, m > 1: model (dense or Switch: all experts, d_ff split m ways)
 *   n > 1, m > 1: model+data (dense)                              Switch: expert+model+data
 * Routing groups are one core's tokens per microbatch (or the model's switch.group_size when
 * it sets one): group_tokens_enc = seqs_per_microbatch * input_length, likewise for the
 * decoder with target_length; capacity_* is model_switch_capacity of the train capacity factor.
 *
 * Mapping onto the torus. core_of[d * m + k] is the physical core id (sim/topo.h numbering:
 * core = chip * cores_per_chip + local, chips row-major with x fastest) of grid cell (d, k).
 *  - MODEL_PLAN_MAP_MODEL_NEIGHBOURS (default): core_of[d*m + k] = d*m + k. The m cores of one
 *    data replica are consecutive core ids: the cores of one chip first, then the neighbouring
 *    chips along x; so the model-parallel all-reduces (every layer, latency-bound) stay on a
 *    chip or cross one ring hop, while the data-parallel gradient reduction (once a step) and
 *    the expert all-to-alls span the pod. (A group longer than a row of chips continues on
 *    the next row: row-major ids, so its last and first chips are two hops apart.)
 *  - MODEL_PLAN_MAP_DATA_NEIGHBOURS: core_of[d*m + k] = k*n + d: the n cores of one model
 *    shard are consecutive instead, which favours the all-to-alls and the gradient reduction
 *    at the cost of spreading each model-parallel group over the pod.
 * Both are permutations of 0..cores-1.
 *
 * Memory per core (model_plan_memory_of; bytes; each figure counts the tensors a training step
 * keeps, with the exact formulas in plan.c's file comment):
 *  - params: fp32 master copy of this core's share: attention q/k/v/o and dense FFN weights
 *    / m (heads and d_ff sharded), experts_per_core experts' weights / m, the router, RMSNorm
 *    scales, relative-position biases and the embedding (and untied output layer) replicated
 *    on every core (the vocabulary is NOT sharded over m);
 *  - grads: fp32, the same as params;
 *  - optimizer: Adafactor (factored second moment over this core's tensor shapes, as
 *    model_adafactor_state_size) or AdamW (2 x params), from run->train.optimizer;
 *  - activations: what backward needs at the per-core batch of one microbatch (bf16 when
 *    train.precision is bf16, else fp32), encoder at input_length, decoder at target_length;
 *  - activations_remat: with rematerialisation: every layer's input plus one layer's full
 *    activations (the largest);
 *  - dispatch: Switch layers' expert input/output buffers [E * groups * capacity, d_model]
 *    and routing decisions (index form, as switch_layer.h), for every Switch layer (kept for
 *    backward) or, with remat, for the largest one; plus one layer's all-to-all staging;
 *  - total = params + grads + optimizer + (remat ? activations_remat : activations) + dispatch;
 *  - hbm = chip HBM / cores_per_chip.
 * Not counted: the backward's transient scratch (a few [rows, d_model] gradient arrays), the
 * program's code and XLA-style temporaries. Cross-check: for a small dense model on one core
 * in fp32, activations are 0.80 of model_t5_acts_bytes without dropout and 0.64 with it
 * (t5.c also keeps each sublayer's output, fp32 dropout masks and its backward scratch).
 * reference: REFERENCE.md section 4 (data, model and expert parallelism; Switch Section 5).
 */
#ifndef SWITCHSIM_MODEL_PLAN_H
#define SWITCHSIM_MODEL_PLAN_H

#include <stdint.h>

#include "common/status.h"
#include "model/run_cfg.h"

typedef enum {
    MODEL_PLAN_DATA = 0,          /* n = cores, m = 1, dense model (or a Switch model with
                                     n == 1: all experts on the one core) */
    MODEL_PLAN_MODEL,             /* n = 1, m = cores (dense or Switch) */
    MODEL_PLAN_MODEL_DATA,        /* n x m, dense */
    MODEL_PLAN_EXPERT_DATA,       /* experts over the n data cores, m = 1 */
    MODEL_PLAN_EXPERT_MODEL_DATA  /* experts over n, each expert's d_ff over m */
} model_plan_strategy;

typedef enum {
    MODEL_PLAN_MAP_MODEL_NEIGHBOURS = 0, /* a data replica's m cores are consecutive */
    MODEL_PLAN_MAP_DATA_NEIGHBOURS       /* a model shard's n cores are consecutive */
} model_plan_mapping;

typedef struct {
    model_plan_strategy strategy;  /* derived from n, m and the model */
    int n, m, cores;               /* data ways, model ways, n*m (== pod cores) */
    int num_experts;               /* E; 0 for a dense model */
    int experts_per_core;          /* E / n when E >= n (expert parallel); 1 when E < n; 0 dense */
    int expert_replicas;           /* n / E when E < n (each expert on n/E data cores), else 1 */
    int microbatches;              /* gradient accumulation steps */
    int batch;                     /* sequences per step, all cores */
    int seqs_per_core;             /* batch / n (per microbatch: / microbatches) */
    int input_length, target_length;
    int group_tokens_enc, group_tokens_dec; /* routing group = one core's tokens per microbatch
                                               (or switch.group_size); 0 dense */
    int capacity_enc, capacity_dec;         /* expert capacity per group (train cf), see
                                               switch_layer.h; 0 dense */
    model_plan_mapping mapping;
    int *core_of;                  /* [n*m]: logical (d, k) at index d*m + k -> physical core id */
    /* additions: */
    int seqs_per_microbatch;       /* seqs_per_core / microbatches */
    int groups_enc, groups_dec;    /* routing groups per core per microbatch (1 unless the model
                                      sets switch.group_size) */
    int ff_per_core;               /* d_ff / m: FFN (and expert) hidden columns per core */
    int heads_per_core;            /* num_heads / m */
    int remat;                     /* run->plan.remat: rematerialise activations in backward */
} model_plan;

typedef struct {                    /* bytes per core */
    uint64_t params, grads, optimizer, activations, activations_remat, dispatch, total;
    uint64_t hbm;                   /* the core's share of the chip's HBM */
    int remat;                      /* whether total counts activations_remat */
} model_plan_memory;

/* Derives the plan of a run: checks every layout constraint (cores == n*m, m divides d_ff and
 * num_heads, experts spread evenly over the data ways, batch divisible by n * microbatches,
 * routing groups dividing a core's tokens, plan fields in range) and fills *p (core_of
 * allocated; free with model_plan_free). The error (SS_ERR_CONFIG) names the failed
 * constraint and by how much. The HBM constraint is model_plan_memory_of's, since it depends
 * on remat. run->plan.experts_per_core is not read (it is derived); run->plan.mapping and
 * run->plan.remat are. On failure *p owns nothing (core_of NULL). Works on a run_cfg built
 * by hand as well as one from run_cfg_load. */
ss_status model_plan_make(model_plan *p, const run_cfg *run, ss_err *err);
/* Memory per core of the plan (see the file comment). Fills *mem (unless SS_ERR_NOMEM); returns
 * SS_ERR_CONFIG when total > hbm, with the figures ("needs 41.2 GiB per core, the chip has
 * 16 GiB per core (32 GiB HBM / 2 cores): 25.2 GiB over"). */
ss_status model_plan_memory_of(model_plan_memory *mem, const model_plan *p, const run_cfg *run,
                               int remat, ss_err *err);
void model_plan_free(model_plan *p);
const char *model_plan_strategy_name(model_plan_strategy s);
const char *model_plan_mapping_name(model_plan_mapping m);

/* The layout constraints, one function each (run_cfg.c calls them too, adding the config
 * location). Each returns SS_ERR_CONFIG with a message naming the constraint and by how much
 * it fails. */
/* n * m == the pod's cores. */
ss_status model_plan_check_cores(int n, int m, const sim_pod *pod, ss_err *err);
/* Switch experts spread evenly over n data ways (E % n == 0 when E >= n, else n % E == 0);
 * always OK for a dense model. */
ss_status model_plan_check_experts(int n, const model_cfg *model, ss_err *err);
/* m divides d_ff and num_heads. */
ss_status model_plan_check_model_ways(int m, const model_cfg *model, ss_err *err);
/* batch % n == 0. */
ss_status model_plan_check_batch(int batch, int n, ss_err *err);
/* (batch / n) % microbatches == 0. */
ss_status model_plan_check_microbatches(int batch, int n, int microbatches, ss_err *err);
/* switch.group_size (when set) divides a core's encoder and decoder tokens per microbatch. */
ss_status model_plan_check_groups(int seqs_per_microbatch, int input_length, int target_length,
                                  const model_cfg *model, ss_err *err);
/* experts_per_core of n data ways: max(1, E / n); 0 for a dense model. */
int model_plan_experts_per_core(int n, const model_cfg *model);

/* Physical core of grid cell (d, k); 0 <= d < n, 0 <= k < m. */
int model_plan_core(const model_plan *p, int d, int k);
/* Grid cell of a physical core (inverse of core_of); 0 <= core < cores. */
void model_plan_cell(const model_plan *p, int core, int *d, int *k);
/* The first expert held by data way d (experts first_expert .. first_expert+experts_per_core-1);
 * with replicated experts (E < n) the one expert d / expert_replicas. -1 for a dense model. */
int model_plan_first_expert(const model_plan *p, int d);

#endif
