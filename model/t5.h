/* This file declares the whole T5 encoder-decoder with Switch layers: the flat parameter layout
 * (and its tensor list for the optimizer), the initialisation, and the forward and backward of
 * the full model from token ids to the total loss, built from the layers of model/layers.h and
 * model/switch_layer.h.
 *
 * Dimension letters: B batch, Ti input (encoder) tokens and To target (decoder) tokens per
 * sequence, Ne = B*Ti and Nd = B*To rows, C d_model, F d_ff, FI = F (ReLU) or 2F (GEGLU), H
 * heads, D d_kv, A = H*D, E experts, V vocabulary, NB relative-position buckets, Le / Ld
 * encoder / decoder blocks.
 *
 * Architecture (T5 v1.0 / v1.1 as the Switch models use it; HF = HuggingFace
 * switch_transformers / t5; pre-norm residual sublayers x + dropout(f(rmsnorm(x)))):
 *   encoder:  x = dropout(wte[inputs])
 *             per block: x += dropout(selfattn(norm(x)))        bidirectional bias, key mask
 *                        x += dropout(ffn_or_switch(norm(x)))   from inputs != pad
 *             enc = dropout(final_norm(x))
 *   decoder:  y = dropout(wte[decoder_inputs])
 *             per block: y += dropout(selfattn(norm(y)))        causal, unidirectional bias,
 *                                                                keys masked by targets != pad
 *                        y += dropout(crossattn(norm(y), enc))  no bias, keys masked by
 *                                                                inputs != pad
 *                        y += dropout(ffn_or_switch(norm(y)))
 *             logits = head(dropout(final_norm(y)))             tied: (y * C^-0.5) @ wte^T
 *   loss: mean cross-entropy over targets != pad.
 * Attention-probability dropout and the dense FFN's hidden dropout use the same rate
 * (cfg.dropout) as the residual dropouts; a Switch layer's experts use sw.expert_dropout. All
 * dropouts are active only in training. The relative position bias of each stack comes from the
 * table of its first block and is shared by its blocks. The decoder's self-attention keys are
 * masked by targets != pad (decoder_inputs start with the pad id as the start token, so they
 * cannot serve); with right-padded targets the causal mask already hides every padded key
 * from a real query, so the mask only affects padded queries, which the loss ignores. Every
 * token, padding included, is routed by the Switch layers (as HF and T5X do).
 *
 * Switch layers: block i of a stack (0-based) is a Switch layer iff i % every == every - 1,
 * so a stack of L blocks has floor(L / every) of them (model_cfg_switch_layers). HF decides
 * `i % sparse_step == 1 or sparse_step == 1`: the same blocks for every = 1 and 2 (the only
 * values the Switch models use: 1, 3, 5, ... for every = 2); for every >= 3 HF's count can
 * exceed floor(L / every) and this file follows model_cfg's count. A Switch layer sees all the
 * tokens of its stack (Ne or Nd) in one call; sw.group_size must divide them.
 *
 * Total loss (what backward differentiates):
 *   total = loss + sum over Switch layers of L_aux + sum over Switch layers of L_z
 * where each layer's L_aux already carries alpha (sw.aux_loss_alpha) and its group average,
 * and L_z carries c_z: the SUM over layers, not the average, as Mesh TensorFlow adds every MoE
 * layer's loss to the objective. (HF differs: per stack it concatenates the router logits of
 * all its Switch layers along the token axis and computes one load-balancing loss and one
 * z-loss over them, roughly the layers' average, then adds encoder + decoder; a comparison
 * with HF must sum HF's per-layer losses instead.) The backward passes daux = dz = 1 to every
 * layer.
 *
 * Parameter layout. One flat fp32 buffer; tensors in this order (HF state_dict order), each
 * contiguous, no gaps, tensor k at offset sum of the sizes of tensors 0..k-1; the gradient
 * buffer uses the same offsets. Every matrix is stored [in, out] (x @ W): the transpose of
 * the PyTorch nn.Linear weight. The tensor names are HF switch_transformers parameter names
 * without the ".weight" suffix (the model_tensor `name`; count = E for expert stacks):
 *   shared                                          [V, C]   HF shared.weight (as is)
 *   for encoder block i = 0 .. Le-1:
 *     encoder.block.i.layer.0.SelfAttention.q       [C, A]   q.weight^T
 *     encoder.block.i.layer.0.SelfAttention.k       [C, A]   k.weight^T
 *     encoder.block.i.layer.0.SelfAttention.v       [C, A]   v.weight^T
 *     encoder.block.i.layer.0.SelfAttention.o       [A, C]   o.weight^T
 *     encoder.block.0.layer.0.SelfAttention.relative_attention_bias
 *                                                   [NB, H]  as is (block 0 only)
 *     encoder.block.i.layer.0.layer_norm            [C]
 *     dense block:
 *       encoder.block.i.layer.1.mlp.wi              [C, FI]  ReLU: wi.weight^T; GEGLU (HF T5
 *                                                            v1.1 DenseReluDense): columns
 *                                                            0..F-1 wi_0.weight^T, F..2F-1
 *                                                            wi_1.weight^T
 *       encoder.block.i.layer.1.mlp.wo              [F, C]   wo.weight^T
 *     Switch block (model_switch_weights_bind's layout: router, all wi, all wo):
 *       encoder.block.i.layer.1.mlp.router.classifier
 *                                                   [C, E]   router.classifier.weight^T
 *       encoder.block.i.layer.1.mlp.experts.wi      E x [C, FI]  expert e at e*C*FI:
 *                                                            experts.expert_e.wi.weight^T
 *       encoder.block.i.layer.1.mlp.experts.wo      E x [F, C]   experts.expert_e.wo.weight^T
 *     encoder.block.i.layer.1.layer_norm            [C]
 *   encoder.final_layer_norm                        [C]
 *   for decoder block i = 0 .. Ld-1:
 *     decoder.block.i.layer.0.SelfAttention.{q,k,v,o} (as above; relative_attention_bias
 *                                                   [NB, H] after o in block 0 only)
 *     decoder.block.i.layer.0.layer_norm            [C]
 *     decoder.block.i.layer.1.EncDecAttention.{q,k,v,o}   (q [C,A] on the decoder stream,
 *                                                   k, v [C,A] on the encoder output, o [A,C])
 *     decoder.block.i.layer.1.layer_norm            [C]
 *     decoder.block.i.layer.2.mlp.*                 (dense or Switch, as in the encoder)
 *     decoder.block.i.layer.2.layer_norm            [C]
 *   decoder.final_layer_norm                        [C]
 *   lm_head                                         [C, V]   untied only: lm_head.weight^T
 * (HF T5 names the dense FFN "DenseReluDense" instead of "mlp".) nparams equals model/count.h's
 * params_all for the same config.
 *
 * Initialisation (model_t5_init_params): every element of a tensor is drawn from a truncated
 * normal: z ~ N(0, 1) redrawn while |z| > 2, value = std * z (std is the std of the normal
 * before truncation, as Mesh TensorFlow's truncated_normal_initializer; the std of the values
 * is about 0.88 std). s = sw.init_scale for a model with Switch layers (default 0.1) and 1.0
 * for a dense model (T5's default); fan_in = rows of the [in, out] matrix:
 *   matrices (k, v, o, FFN and expert wi/wo, routers, lm_head)   std = sqrt(s / fan_in)
 *   attention q                                  std = sqrt(s / (C * D))  (T5 folds the
 *                                                1/sqrt(D) of attention into q's init)
 *   shared embedding                             std = 1.0 (T5X/Mesh TF embedding init; not
 *                                                scaled by s)
 *   relative_attention_bias                      std = sqrt(s / NB)  (NB rows as fan_in)
 *   layer norms                                  1
 * Each tensor is drawn from its own rng stream seeded from (seed, a 64-bit hash of the tensor's
 * name), so adding, removing or reordering tensors never changes the values of the others
 * (a tensor of the same name, shape and std gets the same values in every model, e.g. tied and
 * untied variants share all but lm_head).
 *
 * Activations: everything backward needs is kept from the last forward in one allocation
 * sized from the shape at model_t5_init (no rematerialisation), together with the backward's
 * scratch. Numerics follow m->nx (model/linear.h): fp32 everywhere, or bf16 operands and
 * bf16-stored activations.
 *
 * Padding: the pad id is m->pad_id, set by model_t5_init to MODEL_DATA_PAD_ID (model/data.h,
 * the byte vocabulary's pad, also the decoder start token); a caller with another vocabulary
 * sets it after init.
 *
 * Invariants: nparams == sum of the tensor sizes; params and grads are nparams floats at the
 * same offsets; tensors pass model_tensors_check; after a successful forward the metrics and
 * saved activations describe that call until the next forward.
 * reference: REFERENCE.md sections 1-2; C. Raffel et al., T5, JMLR 21, 2020; W. Fedus, B.
 * Zoph, N. Shazeer, "Switch Transformers", JMLR 23, 2022 (init scale, expert frequency);
 * HuggingFace transformers modeling_switch_transformers.py (parameter names, sparse_step).
 */
#ifndef SWITCHSIM_MODEL_T5_H
#define SWITCHSIM_MODEL_T5_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"
#include "common/status.h"
#include "model/linear.h"
#include "model/model_cfg.h"
#include "model/optim.h"
#include "model/switch_layer.h"

/* Shapes of one forward/backward call. */
typedef struct {
    int B;      /* sequences */
    int T_in;   /* encoder tokens per sequence (Ti) */
    int T_out;  /* decoder tokens per sequence (To) */
} model_t5_shape;

typedef struct {
    double loss;            /* mean cross-entropy over non-pad targets */
    double aux_loss;        /* sum over Switch layers of L_aux (each averaged over its groups) */
    double z_loss;          /* sum over Switch layers of L_z */
    double total;           /* loss + aux_loss + z_loss: what backward differentiates */
    size_t tokens;          /* non-pad targets */
    size_t correct;         /* argmax == target among them */
    int nswitch;            /* Switch layers (encoder then decoder order) */
    /* per Switch layer i < nswitch (arrays owned by the model, valid until the next call): */
    const double *dropped_fraction;   /* [nswitch] */
    const double *router_entropy;     /* [nswitch] */
    const int32_t *tokens_per_expert; /* [nswitch * E]: top-1 choices before capacity */
    const int32_t *expert_choice;     /* routing decisions: layer i's are the
                                         layer_tokens[i] * top_k entries from
                                         choice_offset[i], [tokens, top_k] row-major (expert
                                         index; -1 when dropped) for exact comparisons */
    /* additions to the fixed API: */
    int num_experts;                  /* E (0 for a dense model) */
    int top_k;                        /* choices per token (0 for a dense model) */
    int nswitch_encoder;              /* the first nswitch_encoder layers are the encoder's */
    const int *switch_block;          /* [nswitch]: block index of the layer in its stack */
    const size_t *layer_tokens;       /* [nswitch]: tokens routed (Ne or Nd) */
    const size_t *choice_offset;      /* [nswitch + 1]: start of layer i in expert_choice */
    const double *layer_aux_loss;     /* [nswitch]: L_aux of each layer */
    const double *layer_z_loss;       /* [nswitch]: L_z of each layer */
    const size_t *capacity;           /* [nswitch]: expert capacity K per group used */
} model_t5_metrics;

struct model_t5_state; /* activations, scratch and layout: private to t5.c */

/* Delegation of the Switch layers' expert phase (model/dtrain.h: the experts live on other
 * cores). With a hook, a Switch layer's forward runs model_switch_route_forward, then
 * experts_forward (which must fill acts->ye for every kept row of acts->xe, as
 * model_switch_experts_forward does), then model_switch_combine_forward; its backward runs
 * model_switch_combine_backward, then experts_backward (which must fill acts->dxe for every
 * kept row from acts->dye and add the expert weight gradients wherever the experts live),
 * then model_switch_route_backward: the same sequence as model_switch_forward/backward.
 * layer is the Switch layer index (encoder then decoder); w and dw are the calling model's
 * bindings of that layer's parameters and gradients. */
typedef struct {
    ss_status (*experts_forward)(void *ctx, int layer, model_switch_acts *acts,
                                 const model_switch_plan *plan, const model_switch_weights *w,
                                 rng_state *r, const model_numerics *nx, ss_err *err);
    ss_status (*experts_backward)(void *ctx, int layer, model_switch_acts *acts,
                                  const model_switch_plan *plan, const model_switch_weights *w,
                                  const model_switch_weights *dw, const model_numerics *nx,
                                  ss_err *err);
    void *ctx;
} model_t5_experts_hook;

typedef struct model_t5 {
    model_cfg cfg;
    model_t5_shape shape;
    model_numerics nx;
    size_t nparams;         /* floats in params and grads */
    float *params;          /* [nparams] master parameters (fp32) */
    float *grads;           /* [nparams] gradients, same offsets */
    model_tensor *tensors;  /* [ntensors] the layout above, for the optimizer (optim.h) */
    size_t ntensors;
    int32_t pad_id;         /* padding token: masks and the loss ignore it */
    struct model_t5_state *st;
    const model_t5_experts_hook *experts_hook; /* NULL (model_t5_init's value): the experts
                                                  run here; else delegated (see above) */
} model_t5;

/* Allocates the parameters (zero), gradients (zero), tensor list and activations for calls of
 * the given shape. SS_ERR_CONFIG if the model has no encoder or no decoder (only the
 * encoder-decoder is built) or the relative position settings are invalid; SS_ERR_RANGE if a
 * shape dimension is < 1 or sw.group_size does not divide B*T_in or B*T_out; SS_ERR_NOMEM on
 * allocation failure or size overflow. On failure *m holds nothing to free (model_t5_free is
 * still safe). */
ss_status model_t5_init(model_t5 *m, const model_cfg *cfg, model_t5_shape shape,
                        const model_numerics *nx, ss_err *err);
/* Fills params as described in the file comment; deterministic in seed. */
void model_t5_init_params(model_t5 *m, uint64_t seed);
/* Runs the model on inputs [B, T_in], decoder_inputs [B, T_out] (targets shifted right, pad
 * first) and targets [B, T_out] (pad = ignored). training: 1 uses dropout, jitter and the
 * training capacity factor, drawing from r (r may be NULL when nothing is drawn: no dropout,
 * jitter off or eps 0, no expert dropout, or training == 0). out (optional) receives the
 * metrics. SS_ERR_RANGE for a token outside [0, V) (targets may also be pad), or r NULL when
 * it is needed. */
ss_status model_t5_forward(model_t5 *m, const int32_t *inputs, const int32_t *decoder_inputs,
                           const int32_t *targets, int training, rng_state *r,
                           model_t5_metrics *out, ss_err *err);
/* grads += d total / d params for the last successful forward (SS_ERR_USAGE if there is
 * none). The backward does not change the saved activations: it may be called again. */
ss_status model_t5_backward(model_t5 *m, ss_err *err);
/* model_t5_backward with weights: grads += d (dloss * loss + daux * (aux_loss + z_loss)) /
 * d params, as model_xent_backward's dloss and model_switch_backward's daux = dz take them.
 * A data-parallel replica that holds n_c of the batch's n non-pad targets and 1/N of its
 * routing groups passes dloss = n_c / n and daux = 1 / N, so that the sum of the replicas'
 * gradients is the gradient of the whole batch's total. model_t5_backward is (1, 1). */
ss_status model_t5_backward_weighted(model_t5 *m, float dloss, float daux, ss_err *err);
void model_t5_zero_grad(model_t5 *m);
void model_t5_free(model_t5 *m);

/* Additions. */
/* The index of the tensor named `name`, or -1. */
long model_t5_tensor_find(const model_t5 *m, const char *name);
/* 1 when block `block` (0-based) of either stack of cfg is a Switch layer. */
int model_t5_block_is_switch(const model_cfg *cfg, int block);
/* Bytes of the activation and scratch allocation (for memory reports). */
size_t model_t5_acts_bytes(const model_t5 *m);

/* The selective-precision comparison of the last successful forward: out[i] (i < nswitch,
 * encoder then decoder) = the fraction of Switch layer i's tokens whose choices (before
 * capacity) differ from those a router of dtype `other` makes on the same saved router
 * inputs with the same router weights (model_switch_route_choices). Draws nothing and
 * changes nothing the backward uses. SS_ERR_USAGE without a forward; SS_ERR_NOMEM. */
ss_status model_t5_router_disagreement(const model_t5 *m, model_router_dtype other,
                                       double *out, ss_err *err);

#endif
