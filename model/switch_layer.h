/* This file declares the Switch (top-1) and mixture-of-experts (top-k, k = 2 for the MoE
 * baseline) layer, forward and backward: router, routing groups and expert capacity, dispatch,
 * the experts (each the dense FFN of model/layers.h), combine, the load-balancing and z losses,
 * and per-call routing statistics.
 *
 * Dimension letters: N tokens of one call (rows), C d_model, F d_ff of one expert, FI the
 * width of wi (F for ReLU, 2F for GEGLU), E experts, k experts per token (top_k), G routing
 * groups, S tokens per group (N = G * S), K expert capacity (tokens per expert per group),
 * R = N * k rows of the packed expert buffers.
 *
 * Weight layout (one flat block, model_switch_weights_bind; gradients use the same layout):
 *   wr [C, E]         router kernel, logits = x @ wr, no bias (Flax kernel; HF
 *                     router.classifier.weight^T)
 *   wi [E][C, FI]     expert e's wi at wi + e*C*FI (the layout of model_ffn_forward's wi;
 *                     GEGLU: columns 0..F-1 gelu, F..2F-1 linear)
 *   wo [E][F, C]      expert e's wo at wo + e*F*C
 *
 * Semantics (defaults first; [MTF] Mesh-TensorFlow moe.py, [FF] Flaxformer routing.py /
 * moe_layers.py, [HF] HuggingFace switch_transformers):
 * - Groups: token t belongs to group t / S; S = sw.group_size, 0 meaning S = N. S must divide
 *   N. Everything below except the router matmul and the z-loss is per group.
 * - Capacity (model_switch_capacity): v = (cf * S) / E in double, cf the train or eval
 *   capacity factor; ROUND ([FF]): K = max(round_half_even(v), min_capacity), which is
 *   Python's int(round(v)); TRUNCATE ([MTF]): K = max(min(S, floor(v)), min_capacity). Neither
 *   reference multiplies by k for top-2 (the capacity factor carries it); nor does this layer.
 *   The [MTF] clamp to S never changes a routing decision (an expert gets at most S choices of
 *   a group), only the reported capacity.
 * - Router input: xr = x (fp32), times the input jitter when training with jitter INPUT.
 * - Logits h = xr @ wr through the matrix unit with fp32 operands (router_dtype FP32,
 *   "selective precision", whatever the numerics of the rest of the model) or bf16 operands
 *   (router_dtype BF16). Then, training with jitter LOGITS: h *= noise. Then, with a BF16
 *   router only, h is rounded to bf16 (one rounding after the jitter).
 * - Jitter noise: one rng_uniform_f32(r, 1 - eps, 1 + eps) per element of x ([N, C], INPUT,
 *   [MTF] default) or of h ([N, E], LOGITS, the paper's pseudocode), drawn in index order
 *   before anything else the call draws; none in evaluation, with OFF, or with eps == 0.
 * - p = softmax(h) in fp32 (max subtracted, exp, sums in expert order, divide); BF16 router:
 *   p is then rounded to bf16, and everything below (choices, gates, sort keys, P_i, entropy)
 *   uses the rounded p, so rounding can create ties.
 * - Choices: choice 0 = argmax_e p (ties: lowest index), choice j = argmax over the experts
 *   not yet chosen. NaN compares below every number.
 * - Dispatch priority in a group: TOKEN_ORDER walks the tokens in order; BATCH_PRIORITIZED
 *   ([FF] BPR, V-MoE) walks them by descending p of their choice 0, ties (and NaN, last) by
 *   token index (a stable sort). All tokens' choice 0 is assigned first, then all tokens'
 *   choice 1 in the same order, and so on ([MTF], [FF]): slot = number of earlier assignments
 *   of the group to that expert; the choice is kept iff slot < K, else dropped (slot -1).
 * - Gate of choice j: p of its expert ([FF]; gates not renormalised: default), or with
 *   top_k_renormalize ([MTF] _top_2_gating) p_j / (p_0 + ... + p_{k-1} + 1e-9) in fp32. With
 *   nx->store_bf16 the gate is rounded to bf16, as [MTF]/[FF] cast the combine tensor to the
 *   activation dtype. A dropped choice's gate is stored as 0.
 * - Experts: the kept choices are packed by (expert, group, slot) into R-row buffers: expert
 *   e owns rows [expert_row[e], expert_row[e+1]), its group-g tokens at slot order. Expert e
 *   runs model_ffn_forward (kind spec.ffn, dropout rate sw.expert_dropout in training, 0 in
 *   evaluation) on its rows; experts with no rows are skipped; dropout masks are drawn in
 *   expert order after the jitter. Expert inputs are x itself (not jittered), stored with
 *   model_store.
 * - Output: out[t] = sum over kept choices j (in order j = 0, 1, ...) of gate_j * ye[row_j],
 *   exactly 0 for a token whose choices were all dropped (the caller's residual carries it;
 *   [HF] once passed dropped tokens through). Stored with model_store.
 * - Load-balancing loss: per group g, f_gi = (tokens of g whose choice 0 is i) / S, counted
 *   before capacity and not differentiated ([MTF]; with aux_count_all_choices, [FF] counts
 *   every choice, so f sums to k; [HF] takes the argmax of its capacity-masked mask, so its
 *   dropped tokens count for expert 0: not reproduced), P_gi = (sum over t in g of p_ti) / S;
 *   L_aux = alpha * E * (1/G) sum_g sum_i f_gi P_gi, in double. With p = 1/E exactly (equal
 *   logits, E a power of two) it is alpha exactly; with f_i = 1/E, alpha up to the fp32
 *   rounding of sum_i p_i = 1. (The whole model's loss adds each layer's L_aux; the caller
 *   chooses the weight daux of each layer in the backward, e.g. 1 or 1 / layers.)
 * - Router z-loss (ST-MoE, [FF]): L_z = c_z * (1/N) * sum_t lse_t^2, lse_t = logsumexp_e h_te
 *   in fp32 (max + log of the softmax sum), squared and summed in double. (In [MTF] the
 *   z-loss is also multiplied by the aux coefficient; here c_z stands alone.) Both losses are
 *   computed in evaluation too.
 * - Entropy: mean over tokens of -sum_e p log p (p == 0 terms are 0), in double ([MTF] logs
 *   p + 1e-9).
 * - Backward: the choices, slots and noise are constants. Gradients reach p through the gates
 *   of the kept choices, through P_i (daux * alpha * E * f_gi / (G * S)) and, with the
 *   softmax, h through the z-loss (daux, dz: the weights of L_aux and L_z in the total loss);
 *   then wr and x through the router matmul (times the input noise), and x, wi, wo through the
 *   experts. bf16 roundings (router, gates, stores) pass gradients straight through.
 *
 * Call sequence: model_switch_spec_from_cfg (or fill a spec), model_switch_plan_make for N
 * tokens and train/eval, allocate model_switch_plan.acts_bytes and model_switch_acts_bind,
 * then model_switch_forward / model_switch_backward (or their three phases, which the
 * distributed executor calls separately around its all-to-alls). Nothing is global: the
 * acts block holds every saved value and every scratch array.
 *
 * Invariants: after a forward, for every token and choice, expert[t,j] is in [0, E) and the
 * k experts of a token are distinct; slot[t,j] is -1 or in [0, K) and row[t,j] is -1 exactly
 * when slot is; sum_e tokens_in[e] = N k; sum_e tokens_out[e] = kept = R used rows.
 * reference: REFERENCE.md section 1 (Switch layer math); W. Fedus, B. Zoph, N. Shazeer,
 * "Switch Transformers", JMLR 23, 2022 (eqs. 4-6); B. Zoph et al., "ST-MoE", arXiv
 * 2202.08906 (z-loss); C. Riquelme et al., "Scaling Vision with Sparse Mixture of Experts",
 * NeurIPS 2021 (batch prioritized routing); D. Lepikhin et al., "GShard", arXiv 2006.16668
 * (top-2 gating).
 */
#ifndef SWITCHSIM_MODEL_SWITCH_LAYER_H
#define SWITCHSIM_MODEL_SWITCH_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"
#include "common/status.h"
#include "model/linear.h"
#include "model/model_cfg.h"

/* What a Switch layer computes: dimensions and routing semantics. */
typedef struct {
    size_t C;                  /* d_model */
    size_t F;                  /* d_ff of one expert */
    size_t E;                  /* experts (== sw.num_experts) */
    model_ffn ffn;             /* expert FFN kind */
    model_switch_cfg sw;       /* routing settings; top_k in [1, E] */
    int top_k_renormalize;     /* 0: gates are the probabilities (default, [FF]); 1: divided
                                * by their sum over the k choices + 1e-9 ([MTF] top-2) */
    int aux_count_all_choices; /* 0: f_i counts choice 0 only (default, [MTF]); 1: every
                                * choice ([FF], [HF]) */
} model_switch_spec;

/* One call: a spec applied to N tokens in training or evaluation. */
typedef struct {
    model_switch_spec spec;
    size_t N;           /* tokens */
    int training;       /* 1: train capacity factor, jitter, expert dropout */
    size_t k;           /* experts per token (spec.sw.top_k) */
    size_t G;           /* routing groups */
    size_t S;           /* tokens per group */
    size_t K;           /* expert capacity per group */
    double cf;          /* the capacity factor used */
    model_jitter jitter;/* the jitter applied: spec's in training with eps > 0, else OFF */
    float dropout;      /* the expert dropout rate applied (0 in evaluation) */
    size_t R;           /* rows of the packed expert buffers: N * k */
    size_t FI;          /* width of wi: F (ReLU) or 2F (GEGLU) */
    size_t acts_bytes;  /* size of the block model_switch_acts_bind needs */
} model_switch_plan;

/* Layer parameters, or their gradients (same layout). */
typedef struct {
    float *wr; /* [C, E] */
    float *wi; /* [E][C, FI] */
    float *wo; /* [E][F, C] */
} model_switch_weights;

/* Saved activations, routing decisions and scratch: pointers into one caller-owned block. */
typedef struct {
    /* router */
    float *xr;          /* [N, C] router input (x times the input noise) */
    float *noise;       /* [N, C] input or [N, E] logits jitter multipliers (when applied) */
    float *logits;      /* [N, E] h as given to the softmax */
    float *probs;       /* [N, E] p */
    float *lse;         /* [N] logsumexp of each row of h */
    /* routing decisions */
    int32_t *expert;    /* [N, k] expert of choice j of token t (also when dropped) */
    int32_t *slot;      /* [N, k] position in that expert's buffer of the token's group, or -1
                         * when dropped */
    int32_t *row;       /* [N, k] row in the packed expert buffers, or -1 when dropped */
    float *gate;        /* [N, k] combine weight applied (0 when dropped) */
    int32_t *tokens_in; /* [E] choices routed to each expert before capacity, all groups */
    int32_t *tokens_out;/* [E] choices kept */
    int32_t *f_count;   /* [G, E] numerator of f_gi: tokens of group g whose choice 0 (every
                         * choice, with aux_count_all_choices) is expert i, before capacity */
    int32_t *group_row; /* [G, E] first packed row of (group, expert) */
    int32_t *expert_row;/* [E + 1] first packed row of each expert; expert_row[E] = kept */
    uint64_t *rank;     /* [S] scratch: a group's tokens in priority order (batch-prioritized:
                         * descending key in the high 32 bits, token in the low 32) */
    /* experts */
    float *xe;          /* [R, C] packed expert inputs */
    float *ye;          /* [R, C] packed expert outputs */
    float *pre;         /* [R, FI] FFN pre-activations */
    float *hid;         /* [R, F] FFN hidden activations (after dropout) */
    float *mask;        /* [R, F] FFN dropout scales; NULL when plan.dropout == 0 */
    /* backward scratch */
    float *dye;         /* [R, C] */
    float *dxe;         /* [R, C] */
    float *dh;          /* [N, E] gradient of p, then of h */
    float *dxr;         /* [N, C] router-path gradient of xr (used with input jitter) */
} model_switch_acts;

/* Per-call statistics; the arrays point into the acts block of that call. */
typedef struct {
    size_t groups;             /* G */
    size_t group_size;         /* S */
    size_t capacity;           /* K */
    size_t assigned;           /* choices before capacity: N * k */
    size_t kept;               /* choices kept */
    double dropped_fraction;   /* 1 - kept / assigned */
    double unrouted_fraction;  /* tokens with no kept choice / N (all of a token's choices
                                * dropped; == dropped_fraction for top-1) */
    double aux_loss;           /* L_aux (alpha included) */
    double z_loss;             /* L_z (c_z included) */
    double router_entropy;     /* nats, mean over tokens */
    const int32_t *tokens_in;  /* [E] acts->tokens_in */
    const int32_t *tokens_out; /* [E] acts->tokens_out */
    const int32_t *expert;     /* [N, k] acts->expert */
    const int32_t *slot;       /* [N, k] acts->slot */
} model_switch_stats;

/* The spec of model m's Switch layers (m->has_switch). top_k_renormalize and
 * aux_count_all_choices are 0 (the defaults). */
model_switch_spec model_switch_spec_from_cfg(const model_cfg *m);

/* Expert capacity per group (see the file comment); tokens_per_group >= 1, E >= 1. */
size_t model_switch_capacity(double cf, size_t tokens_per_group, size_t E, int min_capacity,
                             model_capacity_rounding rounding);

/* Fills *plan for N tokens. SS_ERR_RANGE (naming the values) if N is 0, the group size does
 * not divide N, top_k is not in [1, E], a dimension is 0, or a size exceeds the int32 indices
 * or size_t. */
ss_status model_switch_plan_make(model_switch_plan *plan, const model_switch_spec *spec,
                                 size_t N, int training, ss_err *err);

/* Points the fields of *acts into mem, which holds plan->acts_bytes bytes aligned for float
 * (malloc's alignment is enough). */
void model_switch_acts_bind(model_switch_acts *acts, void *mem, const model_switch_plan *plan);

/* Parameters of one layer: C*E + E*C*FI + E*F*C; and the pointers into a flat block holding
 * wr, then wi, then wo. */
size_t model_switch_param_count(const model_switch_spec *spec);
void model_switch_weights_bind(model_switch_weights *w, float *flat,
                               const model_switch_spec *spec);

/* The whole layer: route, experts, combine. out[N,C]; stats may be NULL. r draws the jitter
 * and the expert dropout; it may be NULL when neither applies (evaluation, or jitter OFF and
 * no dropout). */
ss_status model_switch_forward(float *out, model_switch_acts *acts, model_switch_stats *stats,
                               const float *inp, const model_switch_weights *w,
                               const model_switch_plan *plan, rng_state *r,
                               const model_numerics *nx, ss_err *err);
/* dinp[N,C] += ... (optional), dw->wr/wi/wo += ... (all required). dout[N,C] is the gradient of
 * out; daux and dz are the gradients of the total loss with respect to L_aux and L_z. acts
 * must hold the forward of the same w and plan (it keeps what the backward needs of the
 * input); its scratch arrays are overwritten. */
ss_status model_switch_backward(float *dinp, const model_switch_weights *dw, const float *dout,
                                float daux, float dz, model_switch_acts *acts,
                                const model_switch_weights *w, const model_switch_plan *plan,
                                const model_numerics *nx, ss_err *err);

/* Phase 1: router, choices, capacity, losses and statistics, and the gather of the kept
 * tokens into acts->xe (acts->expert_row gives each expert's rows). wr [C, E]. */
ss_status model_switch_route_forward(model_switch_acts *acts, model_switch_stats *stats,
                                     const float *inp, const float *wr,
                                     const model_switch_plan *plan, rng_state *r,
                                     const model_numerics *nx, ss_err *err);
/* Phase 2: acts->ye from acts->xe, expert by expert. */
ss_status model_switch_experts_forward(model_switch_acts *acts, const float *wi,
                                       const float *wo, const model_switch_plan *plan,
                                       rng_state *r, const model_numerics *nx, ss_err *err);
/* Phase 3: out[N,C] = the gated sum of each token's kept expert outputs. */
void model_switch_combine_forward(float *out, const model_switch_acts *acts,
                                  const model_switch_plan *plan, const model_numerics *nx);

/* Backward phases, in reverse: combine (acts->dye, and acts->dh := gradient of p from the
 * gates), experts (dwi, dwo += ...; acts->dxe := gradient of xe), route (dinp += the expert
 * and router paths, optional; dwr += ...; adds the loss terms to acts->dh first). */
void model_switch_combine_backward(model_switch_acts *acts, const float *dout,
                                   const model_switch_plan *plan);
ss_status model_switch_experts_backward(float *dwi, float *dwo, model_switch_acts *acts,
                                        const float *wi, const float *wo,
                                        const model_switch_plan *plan, const model_numerics *nx,
                                        ss_err *err);
ss_status model_switch_route_backward(float *dinp, float *dwr, float daux, float dz,
                                      model_switch_acts *acts, const float *wr,
                                      const model_switch_plan *plan, const model_numerics *nx,
                                      ss_err *err);

/* Route-only evaluation with another router dtype (the selective-precision study): writes
 * expert[N, k], the choices before capacity (the rules of the file comment: argmax, ties to
 * the lowest index) that a router of dtype `dtype` makes on the router input saved by the
 * last route forward of acts with this plan (acts->xr, which includes any input jitter, and
 * acts->noise for logits jitter), with the same wr [C, E] and nx. Draws nothing and changes
 * nothing in acts. scratch holds 2 * N * E floats. With dtype == spec.sw.router_dtype the
 * result equals acts->expert. */
ss_status model_switch_route_choices(int32_t *expert, float *scratch,
                                     const model_switch_acts *acts, const float *wr,
                                     model_router_dtype dtype, const model_switch_plan *plan,
                                     const model_numerics *nx, ss_err *err);
/* The fraction of N tokens whose k choices a[N, k] and b[N, k] differ (any choice, in
 * order); 0 when N is 0. */
double model_switch_choice_disagreement(const int32_t *a, const int32_t *b, size_t N, size_t k);

#endif
