/* This file declares the parameter and FLOP counts of a T5 / Switch Transformer model
 * (model_cfg): per component, per layer kind with the shapes of every forward matrix multiply,
 * and the totals that reproduce the Switch Transformer paper's Table 9.
 *
 * Dimension letters: C d_model, F d_ff, D d_kv, H heads, A = H*D (attention width), E experts,
 * k top_k, V vocab, Le/Ld encoder/decoder layers, Se/Sd Switch layers per stack, Ti input
 * (encoder) tokens, Tt target (decoder) tokens per sequence. W = 2F (ReLU: wi [C,F]) or 3F
 * (GEGLU: wi [C,2F]) so that one FFN has C*W parameters.
 *
 * Parameter rule (`params`, Table 9's convention): every weight matrix is counted: the token
 * embedding V*C (once when tied; an untied output layer adds C*V), per attention block
 * q, k, v [C,A] and o [A,C] = 4CA (encoder self, decoder self, decoder cross), per dense FFN
 * C*W, per Switch layer E experts of C*W each plus the router [C,E]. The RMSNorm scales (C per
 * norm: 2 per encoder layer, 3 per decoder layer (2 without an encoder), one final norm per
 * stack) and the relative position biases ([buckets, H] per stack, shared by its layers) are
 * NOT in `params`; they are counted separately in `params_norms_and_biases`, and `params_all`
 * has both. Why: with V = 32128 this rule gives Switch-Base-128 exactly 7,415,169,024 and
 * Switch-C-2048 (32 heads, tied) exactly 1,571,308,810,240, as REFERENCE.md section 3 states;
 * adding the norms and biases gives 7,415,217,408 and 1,571,308,972,448 instead (+48,384 and
 * +162,208), and no vocabulary size makes both figures come out with them (162,208 is not a
 * multiple of 2080).
 *
 * FLOP rule (`flops_per_seq`, Table 9's convention, Kaplan et al. 2020 "2N + 2 n_layer n_ctx
 * d_attn" applied per stack): forward FLOPs per sequence =
 *     2 Ti Pe + 2 Tt Pd                           weight multiplies: 2 per multiply-add of the
 *                                                 active non-embedding parameters of the stack
 *                                                 a token flows through (Switch layers: k of E
 *                                                 experts; routers excluded; the decoder's
 *                                                 cross-attention k and v count per target
 *                                                 token like every other decoder weight)
 *   + 2 Le Ti Ti A + 2 Ld Tt Tt A + 2 Ld Tt Ti A  attention: one 2 n_ctx A term per token per
 *                                                 layer (Kaplan's QK^T "mask" term; the AV
 *                                                 product is not counted), n_ctx = Ti for the
 *                                                 encoder and for cross-attention, Tt for the
 *                                                 decoder's self-attention (the full square,
 *                                                 not the causal half)
 *   + 2 Tt C V                                    the output layer on every target token.
 * This reproduces every FLOPs/seq figure of Table 9 within 0.7% (T5-Large with ReLU 4096).
 * It is NOT what the hardware executes: the router, the AV products and the cross-attention
 * k/v projections over the Ti encoder outputs are real work. Counting them (every product of
 * the `mm` lists below, 2 m k n each) gives `matmul_flops_per_seq`, 11-23% above Table 9
 * (Switch-C: +23%). Each of these single changes to the Table 9 rule breaks the 1% agreement:
 * counting AV too (T5-Base +5.4%), counting routers (Switch-C +9.4%), cross k/v over Ti (+9.5%
 * and more), no output layer (T5-Base -4.1%); the causal half instead of the full square for
 * decoder self-attention moves no row by more than 0.1% (both agree). Vector work (norms,
 * softmax, activations, the embedding lookup) is in neither count.
 * Training FLOPs per sequence = 3 x forward in both conventions (the backward pass computes
 * the gradients of both operands of every product: 2 x forward).
 *
 * Invariants: every count is an exact 64-bit integer; model_count fails with SS_ERR_RANGE
 * rather than overflow. Totals are the sums over components; matmul_flops_per_seq
 * (flops_per_seq) == the sum over layer kinds of layers * matmul_flops (table9_flops) +
 * head.flops. A stack with no layers has no norms or position biases; a decoder without an
 * encoder has no cross-attention; the output layer runs on the target tokens, or on the input
 * tokens when there is no decoder.
 * reference: Fedus, Zoph, Shazeer, "Switch Transformers" (JMLR 2022) Table 9; Kaplan et al.,
 * "Scaling Laws for Neural Language Models" (arXiv 2001.08361) Table 1; REFERENCE.md s2, s3.
 */
#ifndef SWITCHSIM_MODEL_COUNT_H
#define SWITCHSIM_MODEL_COUNT_H

#include <stdint.h>

#include "common/status.h"
#include "model/model_cfg.h"

/* Parameter groups. */
typedef enum {
    MODEL_COMP_EMBEDDING = 0, /* token embedding [V, C] (it is also the output layer when tied) */
    MODEL_COMP_OUTPUT,        /* output layer: params C*V only when untied; FLOPs in both cases */
    MODEL_COMP_ENC_ATTN,      /* encoder self-attention q, k, v [C, A], o [A, C] */
    MODEL_COMP_DEC_SELF_ATTN, /* decoder (causal) self-attention */
    MODEL_COMP_CROSS_ATTN,    /* decoder cross-attention over the encoder outputs */
    MODEL_COMP_DENSE_FFN,     /* FFNs that are not Switch layers: wi [C, F|2F], wo [F, C] */
    MODEL_COMP_EXPERTS,       /* the E expert FFNs of every Switch layer */
    MODEL_COMP_ROUTERS,       /* Switch routers [C, E] */
    MODEL_COMP_LAYER_NORMS,   /* RMSNorm scales [C] (not in `params`) */
    MODEL_COMP_REL_POS_BIAS,  /* relative position biases [buckets, H] (not in `params`) */
    MODEL_COMP_COUNT
} model_comp;

/* Layer kinds: every layer of a model is one of these. */
typedef enum {
    MODEL_LAYER_ENC_DENSE = 0,
    MODEL_LAYER_ENC_SWITCH,
    MODEL_LAYER_DEC_DENSE,
    MODEL_LAYER_DEC_SWITCH,
    MODEL_LAYER_KINDS
} model_layer_kind;

enum { MODEL_LAYER_MATMULS_MAX = 16 };
#define MODEL_COUNT_MAX_LEN 1000000 /* longest input or target length model_count accepts */

typedef enum {
    MODEL_MM_WEIGHT = 0, /* activations [m, k] @ a parameter matrix [k, n] */
    MODEL_MM_SCORES,     /* attention logits Q K^T per head: [tq, D] @ [D, tkv] */
    MODEL_MM_VALUES      /* attention output P V per head: [tq, tkv] @ [tkv, D] */
} model_mm_kind;

/* One forward matrix product of a layer, for one sequence: `batch` independent products
 * out[m, n] = a[m, k] @ b[k, n]. */
typedef struct {
    const char *name;  /* e.g. "self.q", "cross.scores", "expert.wi" (static string) */
    model_comp comp;   /* the component whose FLOPs (and, for weights, parameters) it is */
    model_mm_kind kind;
    int64_t batch;     /* independent products of this shape: H for attention products, else 1 */
    int64_t m, k, n;   /* rows (tokens), summed dimension, columns */
    int64_t experts;   /* weight matrices [k, n] the m rows are spread over: E for experts
                        * (which rows go where is the router's choice; m = top_k * tokens, no
                        * capacity padding), 1 otherwise */
    int64_t flops;     /* 2 batch m k n: what the matrix units execute */
    int64_t table9_flops; /* its share of flops_per_seq: equal to flops, except 0 for routers
                           * and P V, and cross k/v counted per target token (m = Tt) */
} model_matmul;

/* One layer of a kind. */
typedef struct {
    int layers;                 /* layers of this kind in the model (0: none, and every
                                 * other field but tokens is 0) */
    int64_t tokens;             /* rows per sequence: Ti (encoder) or Tt (decoder) */
    int64_t params;             /* parameters of one layer in the `params` convention */
    int64_t params_norms;       /* its RMSNorm scales: 2C (encoder) or 3C (decoder) */
    int nmatmul;
    model_matmul mm[MODEL_LAYER_MATMULS_MAX]; /* forward products, in execution order */
    int64_t matmul_flops;       /* sum of mm[].flops: one layer, one sequence */
    int64_t table9_flops;       /* sum of mm[].table9_flops */
} model_layer_counts;

typedef struct {
    int64_t input_len, target_len;         /* Ti, Tt */
    /* parameters */
    int64_t params_comp[MODEL_COMP_COUNT]; /* per component (norms and biases included here) */
    int64_t params;                  /* Table 9 convention: all but norms and position biases */
    int64_t params_norms_and_biases; /* RMSNorm scales + relative position biases */
    int64_t params_all;              /* params + params_norms_and_biases: every stored weight */
    int64_t active_params;           /* params with only k of E experts per Switch layer */
    /* forward FLOPs per sequence */
    int64_t flops_comp[MODEL_COMP_COUNT];        /* Table 9 (Kaplan) convention, per component */
    int64_t flops_per_seq;                       /* sum of flops_comp */
    int64_t matmul_flops_comp[MODEL_COMP_COUNT]; /* every executed product, per component */
    int64_t matmul_flops_per_seq;                /* sum of matmul_flops_comp */
    int64_t train_flops_per_seq;                 /* 3 * flops_per_seq */
    int64_t train_matmul_flops_per_seq;          /* 3 * matmul_flops_per_seq */
    /* shapes */
    model_layer_counts layer[MODEL_LAYER_KINDS];
    model_matmul head;                           /* the output layer [T, C] @ [C, V] */
} model_counts;

/* Fills *out for sequences of input_len encoder and target_len decoder tokens (each 1 ..
 * MODEL_COUNT_MAX_LEN). Fails with SS_ERR_CONFIG for a model with a non-positive dimension and
 * SS_ERR_RANGE when a count would not fit in 64 bits. */
ss_status model_count(const model_cfg *m, int64_t input_len, int64_t target_len,
                      model_counts *out, ss_err *err);

/* "embedding", "encoder_attention", ... (snake case, for JSON keys and tables). */
const char *model_comp_name(model_comp c);
/* 1 when the component is part of `params` (everything but norms and position biases). */
int model_comp_in_params(model_comp c);
/* "encoder_dense", "encoder_switch", "decoder_dense", "decoder_switch". */
const char *model_layer_kind_name(model_layer_kind k);

#endif
