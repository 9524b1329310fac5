/* This file declares the training stack's optimizers (Adafactor as T5X runs it, and AdamW),
 * the learning-rate schedules and gradient clipping by global norm, as plain functions over
 * the model's flat fp32 parameter, gradient and optimizer-state buffers.
 *
 * Layout. The model owns one flat fp32 parameter buffer and one gradient buffer with the same
 * offsets, described by a list of model_tensor: tensor k occupies the `count * rows * cols`
 * floats from `offset` (the same range in both buffers), stored as `count` row-major
 * [rows, cols] matrices one after the other. A vector is rows = 1; a single matrix count = 1
 * (0 is read as 1, so a designated initializer may leave it out). A tensor of rank > 2 is
 * described as a 2-D view, folding its dimensions into rows and cols the way T5X's factor
 * rules group them (e.g. attention [C, H, D] as [C, H*D]: T5X marks heads and kv both
 * COLUMN); a STACK of matrices that T5X treats as a batch dimension (experts, T5X MoE rule
 * 'expert': BATCH; scanned 'layers') is count = E, so that Adafactor keeps its statistics
 * (factored moments, parameter scale, update RMS) per matrix of the stack, as T5X does. A
 * stack written as one [E*C, F] matrix (count = 1) is instead treated as one matrix.
 * Tensors are listed in increasing offset order without overlap (model_tensors_check); gaps
 * are allowed and never touched. The optimizer state is one caller-owned flat fp32 buffer,
 * all zero before the first update, laid out from the tensor list (the "packed offset" of
 * tensor k is the sum of the element counts of tensors 0..k-1; it equals `offset` when the
 * tensors tile the parameter buffer from 0, the normal case):
 *
 *   AdamW      [ m: P floats | v: P floats ]            P = sum of element counts;
 *                                                       tensor k at its packed offset in each
 *   Adafactor  [ second moments, tensor by tensor | m: P floats, only when beta1 > 0 ]
 *              second moments of tensor k: for each matrix of its stack in order, either
 *              factored: v_row [rows] then v_col [cols] (v_row[i]: running mean over the
 *              columns of row i of g^2 + eps1; v_col[j]: over the rows of column j), or
 *              unfactored: v [rows * cols] (same indexing as the parameter).
 *
 * Steps. Every function takes `step` = the number of updates already applied (0 for the
 * first update), which is T5X's and optax's optimizer step counter: the schedules are
 * evaluated at `step`, and the optimizers use t = step + 1 (the paper's 1-based t) for
 * decay rates and bias corrections.
 *
 * Adafactor (per matrix M of a tensor, n = rows * cols elements; p its parameters, g its
 * gradient; lr the learning rate given for this step):
 *   t      = step - step_offset + 1                          (step >= step_offset)
 *   beta2  = 1 - t^(-decay_rate)                  (0 at t = 1: v starts as g^2 + eps1)
 *   scale  = lr * min(max(eps2, RMS(p)), max_parameter_scale) when multiply_by_parameter_scale
 *            (no min() when max_parameter_scale == 0), else lr; RMS(p) = sqrt(mean(p^2))
 *            over M, before the update
 *   factored (see model_adafactor_is_factored):
 *     v_row[i] = beta2 v_row[i] + (1 - beta2) mean_j(g_ij^2 + eps1)
 *     v_col[j] = beta2 v_col[j] + (1 - beta2) mean_i(g_ij^2 + eps1)
 *     y_ij = g_ij * rsqrt(v_row[i] / mean(v_row)) * rsqrt(v_col[j])        if rows <= cols
 *     y_ij = g_ij * rsqrt(v_row[i]) * rsqrt(v_col[j] / mean(v_col))        if rows >  cols
 *            (T5X normalises the accumulator of the smaller dimension, which it calls
 *            v_row; both forms equal g / sqrt(v_row[i] v_col[j] / mean(all g^2 stats)) and
 *            differ only in rounding)
 *   unfactored:
 *     v = beta2 v + (1 - beta2)(g^2 + eps1);   y = g * rsqrt(v)
 *   update clipping (clipping_threshold d > 0): y = y / max(1, RMS(y) / d), RMS over M
 *   u = scale * y;  with beta1 > 0: m = beta1 m + (1 - beta1) u; u = m
 *   p = (1 - wd) p - u   with wd = weight_decay * (weight_decay_lr_exponent != 0 ?
 *                        lr^weight_decay_lr_exponent : 1); p = p - u when weight_decay == 0
 * Numerics: elementwise work is fp32, with the T5X evaluation order (y = (g * first factor) *
 * second factor; u = scale * (y / clip)). The scalars: beta2 is computed in double and rounded
 * to fp32, and 1 - beta2 is then formed in fp32 (T5X's mixing_rate); 1 - beta1 and 1 - wd are
 * computed in double and rounded once (T5X passes Python floats); scale = lr * fmaxf(RMS(p),
 * eps2) in fp32. rsqrt(x) is 1.0f / sqrtf(x). The reductions (means of g^2 + eps1 per row and
 * column, mean(v_row) or mean(v_col), RMS(p), RMS(y)) accumulate in double in index order and
 * are rounded to fp32; T5X reduces in fp32 in XLA's order, so expect fp32 rounding-level
 * differences (a few ulp), not bit equality.
 *
 * Where T5X (t5x/adafactor.py, the default optimizer of T5X/Switch training) and the paper
 * (Algorithm 4 and Section 6 of Shazeer & Stern) differ, this file follows T5X:
 *   - the paper factors every matrix; T5X's default heuristic (_factored_dims) factors a
 *     parameter only when its second-largest dimension is >= min_dim_size_to_factor = 128,
 *     i.e. a matrix only when BOTH rows and cols are >= 128 (a 127 x 4096 matrix keeps a full
 *     v), and never a vector. Under T5X MoE's logical factor rules ('expert': BATCH, embed
 *     ROW, mlp COLUMN) an expert stack is factored per expert whatever its size (explicit
 *     rules skip the threshold): factor_stacks = 1 reproduces that for count > 1 (0 applies
 *     the threshold to stacks too);
 *   - the paper uses row and column SUMS R, C and V = R C / (1^T R); T5X uses means, the same
 *     estimate;
 *   - the paper's relative step rho_t = min(1e-2, 1/sqrt(t)) lives inside the optimizer; T5X
 *     passes it in as the learning rate ("constant * rsqrt_decay", base 1.0, 10^4 warmup
 *     steps: model_lr_schedule with MODEL_LR_RSQRT), evaluated at the 0-based step, i.e.
 *     1/sqrt(max(step, 10^4)) instead of the paper's 1/sqrt(max(step + 1, 10^4));
 *   - momentum (beta1, off by default in both) averages the scaled, clipped update u;
 *   - weight decay is T5X's (not in the paper): decoupled, p = (1 - wd) p - u, NOT multiplied
 *     by the learning rate unless weight_decay_lr_exponent is set (T5X: weight_decay_rate
 *     None with an exponent e is weight_decay = 1 here);
 *   - T5X's step_offset, max_parameter_scale are supported; its global_norm_clip_threshold is
 *     model_grad_clip_global_norm, called by the caller before the update; skip_nan_updates is
 *     not implemented (a non-finite gradient poisons the state, as with T5X's default).
 *
 * AdamW (per element; Loshchilov & Hutter with PyTorch's torch.optim.AdamW conventions):
 *   t = step + 1;  bc1 = 1 - beta1^t;  bc2 = 1 - beta2^t   (double)
 *   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
 *   p = p * (1 - lr * weight_decay)                         (decoupled decay, old p)
 *   p = p - (lr / bc1) * m / (sqrtf(v) / sqrt(bc2) + eps)
 * i.e. p -= lr (m_hat / (sqrt(v_hat) + eps) + weight_decay p) as optax.adamw. The scalars
 * (1 - beta1, 1 - beta2, 1 - lr wd, lr / bc1, sqrt(bc2), as PyTorch forms them from Python
 * floats) are computed in double and rounded to fp32; element math is fp32 in the order
 * written. PyTorch updates m with lerp (m + (1 - beta1)(g - m)), equal up to rounding.
 * The paper multiplies the decay by the schedule multiplier eta_t rather than by lr; with a
 * constant alpha that is the same up to the constant folded into weight_decay.
 *
 * Global-norm clipping: norm = sqrt(sum of g^2 over every element of every tensor), summed in
 * double in tensor and index order (fp32 sums of 10^9 squares lose digits and could overflow);
 * when max_norm > 0 and norm > max_norm every gradient element becomes
 * (float)(g * (max_norm / norm)) with the ratio in double (T5X's `g * thr * min(1/thr,
 * 1/norm)`; PyTorch's clip_grad_norm_ divides by norm + 1e-6 instead, a relative difference
 * of 1e-6 / norm). A non-finite norm leaves the gradients unchanged and is returned, so the
 * caller can skip the step.
 *
 * Invariants: pointers are non-NULL and tensor lists, configs and schedules satisfy their
 * check functions (model_tensors_check, model_*_check), which callers run once on user
 * input; the update functions re-assert the cheap parts (SS_ASSERT). No function keeps state
 * between calls: the result depends only on the arguments, bit for bit.
 * reference: N. Shazeer, M. Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory
 * Cost", arXiv 1804.04235 (Algorithms 4 and 5, Section 6 update clipping, Section 8 relative
 * step); T5X t5x/adafactor.py defaults; I. Loshchilov, F. Hutter, "Decoupled Weight Decay
 * Regularization", arXiv 1711.05101 (Algorithm 2); D. Kingma, J. Ba, "Adam", arXiv 1412.6980;
 * C. Raffel et al., T5, JMLR 21, 2020 (inverse square root schedule); R. Pascanu et al., "On
 * the difficulty of training recurrent neural networks", ICML 2013 (global norm clipping).
 */
#ifndef SWITCHSIM_MODEL_OPTIM_H
#define SWITCHSIM_MODEL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* One parameter tensor: the same range of the parameter, gradient buffers. */
typedef struct {
    const char *name; /* for messages (not owned; may be NULL) */
    size_t offset;    /* first element, in floats, in the parameter and gradient buffers */
    size_t count;     /* matrices in the stack (experts, layers); 0 is read as 1 */
    size_t rows;      /* rows of each matrix; 1 for a vector */
    size_t cols;      /* columns of each matrix (the contiguous dimension) */
} model_tensor;

/* Elements of the tensor: count * rows * cols (count 0 read as 1). */
size_t model_tensor_size(const model_tensor *t);
/* Sum of model_tensor_size over the list (P in the layouts above). */
size_t model_tensors_size(const model_tensor *t, size_t n);
/* Checks a tensor list against a parameter buffer of nparams floats: every tensor has rows,
 * cols >= 1, lies inside the buffer (no size overflow), and the tensors come in increasing
 * offset order without overlap. The message names the tensor (index and name). */
ss_status model_tensors_check(const model_tensor *t, size_t n, size_t nparams, ss_err *err);

/* ---- Adafactor ------------------------------------------------------------------------- */

typedef struct {
    int factored;                    /* 1: factored second moments for large matrices */
    int min_dim_size_to_factor;      /* a matrix is factored when rows and cols are >= this */
    int factor_stacks;               /* 1: every matrix of a stack (count > 1) is factored
                                      * when rows, cols >= 2, ignoring the threshold (T5X MoE
                                      * logical rules); 0: the threshold applies to stacks */
    double decay_rate;               /* exponent c in beta2 = 1 - t^-c */
    uint64_t step_offset;            /* t counts from this step (fine-tuning resets v) */
    double epsilon1;                 /* added to g^2 */
    double epsilon2;                 /* lower bound of the parameter scale */
    double clipping_threshold;       /* d of update clipping; 0: no clipping */
    int multiply_by_parameter_scale; /* 1: step relative to RMS(p) */
    double max_parameter_scale;      /* upper bound of the parameter scale; 0: none */
    double beta1;                    /* momentum; 0: none (no m in the state) */
    double weight_decay;             /* T5X weight_decay_rate; 0: none */
    double weight_decay_lr_exponent; /* wd *= lr^this when != 0 */
} model_adafactor_cfg;

/* T5X's defaults: factored 1, min_dim_size_to_factor 128, factor_stacks 1, decay_rate 0.8,
 * step_offset 0, epsilon1 1e-30, epsilon2 1e-3, clipping_threshold 1.0,
 * multiply_by_parameter_scale 1, max_parameter_scale 0, beta1 0, weight_decay 0,
 * weight_decay_lr_exponent 0. */
model_adafactor_cfg model_adafactor_cfg_t5x(void);
/* Ranges: min_dim_size_to_factor >= 1, decay_rate > 0, epsilon1 > 0, epsilon2 >= 0,
 * clipping_threshold >= 0, max_parameter_scale >= 0, 0 <= beta1 < 1, 0 <= weight_decay < 1
 * (when the lr exponent is 0), finite values. Names the field. */
ss_status model_adafactor_cfg_check(const model_adafactor_cfg *cfg, ss_err *err);
/* 1 when the matrices of t get factored second moments (v_row, v_col) under cfg. */
int model_adafactor_is_factored(const model_tensor *t, const model_adafactor_cfg *cfg);
/* Floats of Adafactor state for the list: second moments (rows + cols per factored matrix,
 * rows * cols per other) plus P when beta1 > 0. */
size_t model_adafactor_state_size(const model_tensor *t, size_t n,
                                  const model_adafactor_cfg *cfg);
/* One Adafactor update of every tensor (formulas above). state: the layout above, zero
 * before step 0 (or before step_offset). */
void model_adafactor_update(float *params, const float *grads, float *state,
                            const model_tensor *tensors, size_t ntensors, uint64_t step,
                            float lr, const model_adafactor_cfg *cfg);

/* ---- AdamW ----------------------------------------------------------------------------- */

typedef struct {
    double beta1;        /* first-moment decay */
    double beta2;        /* second-moment decay */
    double eps;          /* added to sqrt(v_hat) */
    double weight_decay; /* decoupled decay, multiplied by lr */
} model_adamw_cfg;

/* beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0.01 (torch.optim.AdamW's defaults). */
model_adamw_cfg model_adamw_cfg_default(void);
/* Ranges: 0 <= beta1, beta2 < 1, eps > 0, weight_decay >= 0, finite. Names the field. */
ss_status model_adamw_cfg_check(const model_adamw_cfg *cfg, ss_err *err);
/* Floats of AdamW state: 2 P (m and v). */
size_t model_adamw_state_size(const model_tensor *t, size_t n);
/* One AdamW update of every tensor (formulas above). state: [m | v], zero before step 0. */
void model_adamw_update(float *params, const float *grads, float *state,
                        const model_tensor *tensors, size_t ntensors, uint64_t step, float lr,
                        const model_adamw_cfg *cfg);

/* ---- learning-rate schedules ----------------------------------------------------------- */

typedef enum {
    MODEL_LR_CONSTANT = 0, /* base, after an optional linear warmup */
    MODEL_LR_RSQRT,        /* T5: base / sqrt(max(step, warmup_steps)) */
    MODEL_LR_LINEAR        /* optional linear warmup, then linear decay from base to end */
} model_lr_kind;

typedef struct {
    model_lr_kind kind;
    double base;           /* CONSTANT, LINEAR: the peak lr; RSQRT: the numerator */
    uint64_t warmup_steps; /* CONSTANT, LINEAR: linear warmup length (0: none);
                            * RSQRT: the plateau length, >= 1 */
    uint64_t decay_steps;  /* LINEAR: steps from base to end after the warmup, >= 1 */
    double end;            /* LINEAR: the lr from step warmup_steps + decay_steps on */
} model_lr_schedule;

/* lr at `step` (updates already applied, 0 first), in double:
 *   CONSTANT  step < W: base * step / W;  else base
 *   RSQRT     base / sqrt(max(step, W))  (T5/T5X: base 1.0, W = 10^4 gives 0.01 for the
 *             first 10^4 steps, then 1/sqrt(step); T5X's "constant * rsqrt_decay")
 *   LINEAR    step < W: base * step / W;
 *             else base + (end - base) * min(1, (step - W) / decay_steps)
 * (W = warmup_steps; the warmup starts at 0 at step 0, as HuggingFace's and optax's.) */
double model_lr_at(const model_lr_schedule *s, uint64_t step);
/* Ranges: base >= 0 and finite; RSQRT warmup_steps >= 1; LINEAR decay_steps >= 1 and end >= 0
 * finite. Names the field. */
ss_status model_lr_schedule_check(const model_lr_schedule *s, ss_err *err);
/* T5's pre-training schedule: RSQRT, base 1.0, warmup 10^4. */
model_lr_schedule model_lr_schedule_t5(void);

/* ---- gradient clipping ----------------------------------------------------------------- */

/* sqrt(sum of g^2) over the tensors' elements of grads, accumulated in double. */
double model_grad_global_norm(const float *grads, const model_tensor *tensors, size_t ntensors);
/* Returns the pre-clip global norm; scales grads by max_norm / norm (exactly as described
 * above) when max_norm > 0 and norm > max_norm is finite; otherwise leaves them unchanged. */
double model_grad_clip_global_norm(float *grads, const model_tensor *tensors, size_t ntensors,
                                   double max_norm);

#endif
