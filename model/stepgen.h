/* This file declares the step-program generator: from a model, a run and its parallel layout
 * (model/plan.h) it builds the step program (sim/program.h) of one full training step — every
 * microbatch's forward and backward, the gradient reductions and the optimizer update — for
 * every core of the pod, with the exact matmul shapes a core executes, its vector ops, and
 * collective ops (lowered later by coll_program_lower, collectives/coll.h). It also declares
 * the routing models that size the Switch layers' all-to-alls in estimate mode.
 *
 * Dimension letters: C d_model, F d_ff, W the width of wi (F ReLU, 2F GEGLU), A = H*D the
 * attention width, H heads, E experts, K capacity per expert per routing group, V vocab, Ti/Tt
 * input/target tokens per sequence, s sequences per core per microbatch, n data ways, m model
 * ways, Te = s*Ti and Td = s*Tt the encoder/decoder rows of a core.
 *
 * What a core runs (per microbatch; labels in brackets, L the layer index in its stack):
 *  - matmuls: the forward products of model/count.h's per-layer-kind lists with the rows
 *    scaled to the core's tokens (m = s * count m) and the sharded dimension divided by m:
 *    q/k/v columns A/m and o rows A/m (heads sharded), wi columns W/m and wo rows F/m (d_ff
 *    sharded, experts too). Attention products (Q K^T, P V: H batched products per sequence)
 *    are folded into one matmul of m = s*(H/m)*tq rows with the per-head k and n. The router
 *    [C, E] is replicated on the m cores of a data replica (each computes it). The output
 *    layer [C, V] (the vocabulary is not sharded, as in plan.h) runs on ceil(Td/m) rows of
 *    each model core: the tokens are split over the m cores of a replica. Expert matmuls have
 *    as rows the core's expert buffer: experts_per_core x (routing groups that send to it) x
 *    K (padded static shapes, the default) or the tokens the routing model keeps (exact).
 *    Backward: for every forward product [m,k] x [k,n] two products, dX = dY x B^T
 *    ([m,n] x [n,k]) and dB = A^T x dY ([k,m] x [m,n]), in reverse layer order. With remat a
 *    layer's forward matmuls and vector ops run again right before its backward.
 *  - vector ops (elements of the core's share): RMSNorm (norm, row C) before each block and
 *    the final norm of a stack; attention bias-and-mask add (elementwise) and softmax (row
 *    tkv); the FFN activation (elementwise over s*W/m per token); residual adds; router
 *    softmax (row E, fp32); dispatch gather and combine scatter (elementwise over the expert
 *    buffer); the embedding lookup (elementwise); the loss (softmax, row V, fp32, plus an
 *    elementwise cross-entropy). Each has a backward op of the same kind and size. Dropout
 *    is taken as fused into the op it follows (no separate op).
 *  - no hbm ops: weight and activation streaming is inside the matmul and vector time models
 *    (sim/timing.h price their operands' HBM traffic).
 *  - collectives (all with algo hint "auto", bf16 activations, 2 bytes an element):
 *      all-to-allv "moe.dispatch" before the experts and "moe.combine" after, forward and
 *        backward (backward of combine has the dispatch matrix, of dispatch the combine
 *        matrix), within the n cores of one model shard (rank d = data way d). Matrix entry
 *        [i][j] = bytes group i sends the experts on data way j = sum over those experts of
 *        (groups per core) x (K, padded default; or min(count, K), exact) x C x 2. With
 *        E < n (replicated experts) data way i sends to the replica of each expert in its own
 *        block of E consecutive data ways (expert e of block b on data way b*E + e).
 *      all-reduce "attn.allreduce" / "ffn.allreduce" / "moe.allreduce" of the block output
 *        [rows, C] within the m cores of a replica (m > 1): after each sharded attention or
 *        FFN block forward, and of the block's input gradient in backward (cross-attention:
 *        [Td + Te, C], its k/v gradient flows to the encoder output). The output layer's
 *        split rows' input gradients are all-gathered in backward ("head.allgather", [Td, C]
 *        bf16). The loss needs no collective (its normaliser, the token count, is known).
 *      gradient all-reduce "grad.allreduce.<layer>": the layer's replicated-parameter gradients
 *        (attention, dense FFN, router, norms; position biases with layer 0 of a stack) of this
 *        core's shard, fp32 (4 bytes; opts.grad_bf16 halves it), over the n data cores of
 *        one model shard; expert gradients are not reduced over data cores unless experts are
 *        replicated, then "grad.allreduce.<layer>.experts" over the n/E replicas of the
 *        core's expert; the embedding (and untied output layer) "grad.allreduce.embed" over
 *        all n*m cores (each core holds a partial: its rows of the output layer, its 1/m of
 *        the lookup's tokens). With overlap_grad_reduce a layer's reduction depends only on
 *        its own backward (last microbatch) and the previous reduction, so it overlaps the
 *        backward of earlier layers; without it every reduction waits for the whole backward.
 *  - optimizer update after every reduction: vector passes over the core's parameters in
 *    fp32 — Adafactor (factored, T5X): 6 elementwise + 2 reduction passes, 8 vector FLOPs a
 *    parameter; AdamW: 10 elementwise passes, 10 FLOPs a parameter (labels "optim.*").
 * Dependencies: a core's compute and its activation collectives form one chain in program
 * order; gradient reductions hang off it (see above); the optimizer waits for the chain's
 * end and the last reduction. Layer index (sim op field): encoder layers 0..Le-1, decoder
 * layers Le..Le+Ld-1, embedding/head/optimizer ops SIM_PROG_NONE; phases forward, backward
 * (remat recompute included), optimizer.
 *
 * Collective ids: per collective instance of the step, one id for each group of its class
 * (data column, model row, expert-replica set, all cores); ids are dense from 0.
 *
 * FLOP accounting (stats): model_flops = 3 x count.h flops_per_seq (Table 9) x batch.
 * executed_flops = sum over all cores of 2 m k n of every matmul op. With exact counts and no
 * dropped token it equals batch x (3 x count.h matmul_flops_per_seq + remat x (the same less
 * the output layer, which is not recomputed)) plus (m - 1) x 3 x the router FLOPs per
 * sequence (the router runs on every model core). Padded buffers replace each Switch layer's
 * top_k*S expert rows per group by E*K (more when K is clamped up by min_capacity, fewer when
 * tokens are dropped); so does dropping in exact mode (only kept tokens run).
 *
 * Invariants: the program validates (sim_program_validate) and contains no send/recv; ids
 * of collectives are unique per instance and equal on every member; every group lists
 * physical cores (plan->core_of) in rank order (data way or model way order).
 * reference: REFERENCE.md section 4; Switch Transformers (Fedus et al. 2022) Section 5;
 * Shazeer et al. 2018 (Mesh-TensorFlow) for the model-parallel all-reduces.
 *
 * ---- Routing histogram file (model_routing_load; `switchsim train --record-routing`) ----
 * A JSON object: {"layers": [[f_0, ..., f_{E-1}], ...]} — one row per Switch layer in model
 * order (encoder Switch layers first, then decoder), each row the fraction of the layer's
 * routed choices (top-1 or all top-k choices, before capacity) that picked expert e. Every
 * row has the same length E >= 1, entries >= 0 and a positive sum; rows are normalised to sum
 * to 1 on load. Optional keys are ignored (e.g. "experts", "tokens", "model").
 */
#ifndef SWITCHSIM_MODEL_STEPGEN_H
#define SWITCHSIM_MODEL_STEPGEN_H

#include <stdint.h>

#include "common/status.h"
#include "model/plan.h"
#include "model/run_cfg.h"
#include "sim/program.h"

typedef enum {
    MODEL_ROUTING_UNIFORM = 0,
    MODEL_ROUTING_SKEW,
    MODEL_ROUTING_HISTOGRAM
} model_routing_kind;

typedef struct {
    model_routing_kind kind;
    double zipf;       /* skew: expert i gets a share proportional to 1/(i+1)^zipf (before
                          capacity), the same in every layer */
    /* histogram: per Switch layer, per expert token fractions, as recorded by a functional run */
    int layers, experts;
    double *fractions; /* [layers * experts], rows sum to 1 */
} model_routing;

/* Reads a histogram file (format above) into r (kind HISTOGRAM); on failure r owns nothing
 * and err names the file and the problem. */
ss_status model_routing_load(model_routing *r, const char *path, ss_err *err);
void model_routing_free(model_routing *r);
const char *model_routing_kind_name(model_routing_kind k);

/* The tokens one routing group of S tokens sends each expert, before and after capacity:
 * routed = top_k*S choices split by the layer's shares (largest-remainder rounding, so the
 * counts sum to top_k*S exactly; ties to the lower expert), kept[e] = min(count[e], K).
 * counts and kept are [E]. switch_layer is the Switch layer's index in model order (for
 * histograms). Fails when a histogram does not match the model (layers, experts). */
ss_status model_routing_counts(const model_routing *r, int switch_layer, int E, int64_t routed,
                               int64_t K, int64_t *counts, int64_t *kept, ss_err *err);

typedef struct {
    int remat;               /* recompute activations in backward (adds forward matmuls) */
    int overlap_grad_reduce; /* gradient reduction of a layer overlaps the backward of earlier
                                layers */
    int exact_counts;        /* 0 (default): expert buffers and all-to-alls carry the padded
                                static [E, K, C] shapes; 1: only the kept tokens */
    int grad_bf16;           /* 0 (default): gradients reduced in fp32; 1: in bf16 */
} model_stepgen_opts;

typedef struct {             /* what the program contains, for reports */
    double model_flops;      /* training FLOPs of one step by the Table 9 convention x 3 */
    double executed_flops;   /* all matmul FLOPs the program executes, all cores */
    uint64_t comm_bytes[8];  /* per sim_coll_kind: bytes each core contributes (its op's bytes
                                field), summed over cores and ops */
    double dropped_fraction; /* tokens over capacity / tokens routed, averaged over Switch layers */
    double padding_fraction; /* empty expert slots / slots of the padded [E, K] buffers per
                                group, averaged over Switch layers (a property of the routing:
                                the same with exact_counts, which does not carry them) */
    /* additions */
    double vector_flops;     /* vector-op FLOPs (sim_vector_flops_per_element), all cores */
    int64_t nops;            /* ops in the program */
    int64_t ncollectives;    /* collective ids: one per group of every collective instance */
} model_stepgen_stats;

/* Builds the step program into out (which must not be initialised; left freed on failure).
 * routing may be NULL for uniform; o may be NULL for the defaults (all zero). stats may be
 * NULL. Fails with SS_ERR_CONFIG when plan and run disagree (cores, tokens, experts) or a
 * histogram does not fit the model. */
ss_status model_stepgen_build(sim_program *out, model_stepgen_stats *stats,
                              const model_plan *plan, const run_cfg *run,
                              const model_routing *routing, const model_stepgen_opts *o,
                              ss_err *err);

#endif
