/* This file declares the dense layers of the T5 encoder-decoder that the Switch Transformer
 * builds on, each as a forward and a backward function over flat fp32 arrays: token embedding,
 * output head (tied or untied), RMSNorm ("T5 LayerNorm"), multi-head attention with T5's
 * relative position bias (encoder self-attention, causal decoder self-attention,
 * cross-attention), the dense FFN (ReLU or GEGLU), dropout, residual add and the cross-entropy
 * loss.
 *
 * Conventions (llm.c style): outputs first, then inputs, then dimensions, then the numerics and
 * the error record. Backward functions take d-prefixed gradients and ACCUMULATE into them with
 * += (so a parameter used twice, like a tied embedding or the shared bias table, sums its
 * gradients); a gradient pointer documented as optional may be NULL to skip it. Arrays are
 * row-major; a shape [A, B] means index a * B + b.
 *
 * Dimension letters: B batch, T query tokens per sequence, S key/value tokens per sequence
 * (S == T for self-attention; the encoder length for cross-attention), N = B * T rows,
 * C d_model, F d_ff, H heads, D d_kv, V vocabulary, NB relative-position buckets.
 *
 * Weight layouts (x @ W, as T5/Flax store kernels; a PyTorch nn.Linear weight is the
 * transpose):
 *   wte      [V, C]      embedding row per token id (HF shared.weight as is)
 *   lm_head  [C, V]      untied head (HF lm_head.weight^T)
 *   norm w   [C]         RMSNorm scale (HF layer_norm.weight)
 *   wq,wk,wv [C, H*D]    column h*D + d is head h, feature d (HF q/k/v.weight^T; HF views
 *                        the projection as [B, T, H, D])
 *   wo       [H*D, C]    row h*D + d (HF o.weight^T)
 *   table    [NB, H]     relative position bias per bucket and head (HF
 *                        relative_attention_bias.weight as is)
 *   wi       [C, F] ReLU / [C, 2F] GEGLU (columns 0..F-1 gated by gelu: HF wi_0.weight^T;
 *                        columns F..2F-1 linear: HF wi_1.weight^T)
 *   wo (FFN) [F, C]      (HF wo.weight^T)
 *
 * Numerics: every matrix product goes through model_linear_* or sim_gemm with nx->gemm;
 * elementwise work (norm, softmax, activations, losses) is fp32. Forward functions round the
 * activations they store (outputs and saved intermediates) to bf16 when nx->store_bf16
 * (model_store); statistics (rstd), dropout masks, losses and all gradients stay fp32.
 *
 * Attention follows T5: scores are q . k WITHOUT the 1/sqrt(D) factor (T5 folds it into the
 * initialisation of wq); the position bias [H, T, S] is added to the scores, masked keys get
 * -inf, softmax runs in fp32, and a row whose keys are all masked yields zero probabilities
 * (so a zero output, never NaN). The bias is computed once per stack from the table of that
 * stack's first layer (model_relpos_bias_forward) and shared by every layer; its gradient
 * sums over layers in a [H, T, S] buffer and flows into the table once
 * (model_relpos_bias_backward). Cross-attention passes no bias.
 *
 * Dropout: mask elements are 0 (probability p) or 1/(1-p), drawn in index order from the rng,
 * one rng_uniform per element (dropped when u < p); the backward multiplies by the same mask.
 *
 * Invariants: pointer arguments not documented as optional are non-NULL (SS_ASSERT); values
 * that come from users or data (token ids, dropout rates, bucket settings, causal with
 * S != T) are checked and reported through ss_err.
 * reference: REFERENCE.md section 2 (T5 architecture); C. Raffel et al., "Exploring the Limits
 * of Transfer Learning with a Unified Text-to-Text Transformer", JMLR 21, 2020 (relative
 * position buckets: Mesh TensorFlow / HuggingFace `_relative_position_bucket`); N. Shazeer,
 * "GLU Variants Improve Transformer", arXiv 2002.05202 (GEGLU); D. Hendrycks, K. Gimpel,
 * "Gaussian Error Linear Units", arXiv 1606.08415 (tanh approximation).
 */
#ifndef SWITCHSIM_MODEL_LAYERS_H
#define SWITCHSIM_MODEL_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"
#include "common/status.h"
#include "model/linear.h"
#include "model/model_cfg.h"

/* T5 LayerNorm epsilon. */
#define MODEL_RMSNORM_EPS 1e-6f

/* ---- embedding and output head ------------------------------------------------------- */

/* out[N,C] = wte[tokens[n], :]. SS_ERR_RANGE (nothing written) if a token is outside [0, V). */
ss_status model_embedding_forward(float *out, const int32_t *tokens, const float *wte, size_t N,
                                  size_t C, size_t V, const model_numerics *nx, ss_err *err);
/* dwte[tokens[n], :] += dout[n, :] (tokens as validated by the forward). */
void model_embedding_backward(float *dwte, const float *dout, const int32_t *tokens, size_t N,
                              size_t C, size_t V);

/* logits[N,V]. tied: w is wte [V,C] and logits = (inp * C^-0.5) @ wte^T (the input is scaled
 * before the product, as T5 does); untied: w is lm_head [C,V] and logits = inp @ lm_head.
 * Like every stored activation the logits are rounded to bf16 when nx->store_bf16 (T5X's
 * bf16 head; the loss then works on them in fp32). */
ss_status model_head_forward(float *logits, const float *inp, const float *w, size_t N, size_t C,
                             size_t V, int tied, const model_numerics *nx, ss_err *err);
/* dinp[N,C] += ... (optional), dw += ... (the same layout as w: with tied, pass the embedding
 * gradient dwte so both uses accumulate into it). */
ss_status model_head_backward(float *dinp, float *dw, const float *dlogits, const float *inp,
                              const float *w, size_t N, size_t C, size_t V, int tied,
                              const model_numerics *nx, ss_err *err);

/* ---- RMSNorm ------------------------------------------------------------------------- */

/* rstd[n] = 1 / sqrt(mean_c inp[n,c]^2 + MODEL_RMSNORM_EPS) (fp32 sums);
 * out[n,c] = weight[c] * (inp[n,c] * rstd[n]). No mean, no bias. */
void model_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                           size_t N, size_t C, const model_numerics *nx);
/* dinp[N,C] += ..., dweight[C] += ... (either optional). */
void model_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                            const float *weight, const float *rstd, size_t N, size_t C);

/* ---- relative position bias ---------------------------------------------------------- */

/* T5's _relative_position_bucket for rel = key position - query position. Bidirectional:
 * half the buckets for rel > 0; then distances below max_exact = nb/2 (nb the buckets left)
 * get their own bucket and larger ones share log-spaced buckets up to max_distance, beyond
 * which everything falls into the last. Unidirectional (causal): rel > 0 counts as 0. The log
 * is computed in fp32 as Mesh TensorFlow and HuggingFace do:
 *     max_exact + (int)(logf((float)n / max_exact) / (float)log(max_distance / max_exact)
 *                       * (nb - max_exact)).
 * Precondition (SS_ASSERT): model_relpos_check accepts the values. */
int model_relpos_bucket(long rel, int bidirectional, int num_buckets, int max_distance);
/* SS_ERR_RANGE unless the formula is defined: max_exact >= 1 (num_buckets >= 4 bidirectional,
 * >= 2 unidirectional) and max_distance > max_exact. */
ss_status model_relpos_check(int bidirectional, int num_buckets, int max_distance, ss_err *err);

/* bias[h,i,j] = table[bucket(j - i), h] for query i < T and key j < S; SS_ERR_RANGE (nothing
 * written) if model_relpos_check rejects the bucket settings. */
ss_status model_relpos_bias_forward(float *bias, const float *table, size_t T, size_t S,
                                    size_t H, int bidirectional, int num_buckets,
                                    int max_distance, ss_err *err);
/* dtable[bucket(j - i), h] += dbias[h,i,j] (settings as accepted by the forward). */
void model_relpos_bias_backward(float *dtable, const float *dbias, size_t T, size_t S, size_t H,
                                int bidirectional, int num_buckets, int max_distance);

/* ---- multi-head attention ------------------------------------------------------------ */

typedef struct {
    size_t B;      /* sequences */
    size_t T;      /* query tokens per sequence */
    size_t S;      /* key/value tokens per sequence (== T for self-attention) */
    size_t C;      /* d_model: width of both inputs and of the output */
    size_t H;      /* heads */
    size_t D;      /* d_kv: per-head width */
    int causal;    /* 1: query i sees keys j <= i only (decoder self-attention; needs S == T) */
    float dropout; /* rate on the attention probabilities, in [0, 1) */
} model_attn_dims;

typedef struct {
    const float *wq; /* [C, H*D] */
    const float *wk; /* [C, H*D] */
    const float *wv; /* [C, H*D] */
    const float *wo; /* [H*D, C] */
} model_attn_weights;

typedef struct {
    float *wq; /* [C, H*D], each optional */
    float *wk; /* [C, H*D] */
    float *wv; /* [C, H*D] */
    float *wo; /* [H*D, C] */
} model_attn_grads;

/* Saved activations; caller-owned arrays of these sizes. */
typedef struct {
    float *q;    /* [B, T, H*D]: inp_q @ wq */
    float *k;    /* [B, S, H*D]: inp_kv @ wk */
    float *v;    /* [B, S, H*D]: inp_kv @ wv */
    float *att;  /* [B, H, T, S]: softmax probabilities before dropout (0 where masked) */
    float *drop; /* [B, H, T, S]: dropout scale (0 or 1/(1-p)); NULL allowed when p == 0 */
    float *y;    /* [B, T, H*D]: per-head outputs (dropout(att) @ v), the input of wo */
} model_attn_acts;

/* out[B,T,C] = attention(queries from inp_q[B,T,C], keys/values from inp_kv[B,S,C]) @ wo.
 * For self-attention pass the same array as inp_q and inp_kv. bias [H,T,S] is added to the
 * scores (optional: NULL for none, as in cross-attention); key_mask [B,S] (optional) marks
 * real keys with nonzero and padding with 0; d->causal hides future keys. r draws the
 * attention dropout mask (optional when d->dropout == 0). */
ss_status model_attention_forward(float *out, model_attn_acts *acts, const float *inp_q,
                                  const float *inp_kv, const model_attn_weights *w,
                                  const float *bias, const uint8_t *key_mask,
                                  const model_attn_dims *d, rng_state *r,
                                  const model_numerics *nx, ss_err *err);
/* dinp_q[B,T,C] += ..., dinp_kv[B,S,C] += ... (each optional; for self-attention pass the same
 * array twice and both contributions add up), dw->* += ..., dbias[H,T,S] += ... (optional;
 * summed over the batch). Needs no mask: masked probabilities are stored as 0. */
ss_status model_attention_backward(float *dinp_q, float *dinp_kv, const model_attn_grads *dw,
                                   float *dbias, const float *dout, const model_attn_acts *acts,
                                   const float *inp_q, const float *inp_kv,
                                   const model_attn_weights *w, const model_attn_dims *d,
                                   const model_numerics *nx, ss_err *err);

/* mask[n] = tokens[n] != pad_id: a key mask for model_attention_forward. (T5 decoder inputs
 * start with the pad id as the start token: build the decoder's mask from the targets.) */
void model_key_mask_from_tokens(uint8_t *mask, const int32_t *tokens, size_t n, int32_t pad_id);

/* ---- dense FFN ----------------------------------------------------------------------- */

typedef struct {
    float *pre;      /* [N, F] (ReLU) or [N, 2F] (GEGLU): x @ wi, before the activation */
    float *h;        /* [N, F]: activation output after dropout: the input of wo */
    float *mask;     /* [N, F]: dropout scale per element (0 or 1/(1-p)); NULL when p == 0 */
} model_ffn_acts;

/* out[N,C] = dropout(act(inp[N,C] @ wi)) @ wo. ReLU: wi [C,F]; GEGLU (T5 v1.1): wi [C,2F], the
 * first F columns go through gelu (tanh approximation, "gelu_new") and multiply the last F
 * columns. wo [F,C]. dropout rate p on the hidden activation (mask drawn from r when p > 0;
 * r may be NULL when p == 0). acts must point to caller-owned arrays of the sizes above.
 * (With p == 0 and a non-NULL acts->mask, the mask is filled with 1.) */
ss_status model_ffn_forward(float *out, model_ffn_acts *acts, const float *inp, const float *wi,
                            const float *wo, size_t N, size_t C, size_t F, model_ffn kind,
                            float p, rng_state *r, const model_numerics *nx, ss_err *err);
/* dinp[N,C] += ..., dwi += ..., dwo += ... (dinp may be NULL). */
ss_status model_ffn_backward(float *dinp, float *dwi, float *dwo, const float *dout,
                             const model_ffn_acts *acts, const float *inp, const float *wi,
                             const float *wo, size_t N, size_t C, size_t F, model_ffn kind,
                             const model_numerics *nx, ss_err *err);

/* gelu_new(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) and its derivative, fp32. */
float model_gelu(float x);
float model_gelu_grad(float x);

/* ---- dropout and residual ------------------------------------------------------------ */

/* mask[i] = 0 with probability p, else 1/(1-p), one rng_uniform per element in index order.
 * SS_ERR_RANGE if p is not in [0, 1) or r is NULL while p > 0. p == 0 gives all 1 (no draw). */
ss_status model_dropout_mask(float *mask, size_t n, float p, rng_state *r, ss_err *err);
/* out[n] = inp[n] * mask[n], mask drawn as model_dropout_mask (out may equal inp). */
ss_status model_dropout_forward(float *out, float *mask, const float *inp, size_t n, float p,
                                rng_state *r, const model_numerics *nx, ss_err *err);
/* dinp[n] += dout[n] * mask[n]. */
void model_dropout_backward(float *dinp, const float *dout, const float *mask, size_t n);

/* out[n] = a[n] + b[n] (out may equal a or b). */
void model_residual_forward(float *out, const float *a, const float *b, size_t n,
                            const model_numerics *nx);
/* da[n] += dout[n], db[n] += dout[n] (either optional). */
void model_residual_backward(float *da, float *db, const float *dout, size_t n);

/* ---- cross-entropy ------------------------------------------------------------------- */

typedef struct {
    double loss;    /* mean over non-pad targets of -log softmax(logits)[target]; 0 if none */
    size_t count;   /* non-pad targets */
    size_t correct; /* non-pad targets where argmax(logits) == target (ties: lowest index) */
} model_xent_stats;

/* Per row: a stable fp32 logsumexp (max subtracted); the mean over rows is summed in double.
 * Rows whose target is pad_id are skipped. SS_ERR_RANGE (stats untouched) if a target is
 * neither pad_id nor in [0, V). */
ss_status model_xent_forward(model_xent_stats *stats, const float *logits,
                             const int32_t *targets, size_t N, size_t V, int32_t pad_id,
                             ss_err *err);
/* dlogits[N,V] += dloss / count * (softmax(logits) - onehot(target)) for non-pad rows (count
 * as in the forward; pad rows get nothing). dloss is the gradient of the mean loss (1 for a
 * loss used as is; count_here / count_total when averaging over several calls). */
void model_xent_backward(float *dlogits, const float *logits, const int32_t *targets, size_t N,
                         size_t V, int32_t pad_id, float dloss);

#endif
