/* This file implements the optimizers of the training stack (Adafactor as T5X runs it, AdamW),
 * the learning-rate schedules and gradient clipping by global norm over the model's flat
 * parameter, gradient and state buffers; the formulas, the state layout and the differences
 * between T5X and the paper are documented in optim.h.
 *
 * Invariants: a function writes only the tensors' ranges of params/grads and the state floats
 * its layout assigns; element math is fp32 and reductions accumulate in double in index
 * order, so results are bit-reproducible; no allocation, no state between calls.
 * reference: N. Shazeer, M. Stern, arXiv 1804.04235 (Adafactor); T5X t5x/adafactor.py;
 * I. Loshchilov, F. Hutter, arXiv 1711.05101 (AdamW); C. Raffel et al., JMLR 21, 2020 (T5
 * schedule).
 */
#include "model/optim.h"

#include <math.h>
#include <string.h>

/* Columns handled at once by the blocked loops (local buffers on the stack). */
enum { BLOCK = 256 };

static size_t tensor_count(const model_tensor *t)
{
    return t->count == 0 ? 1 : t->count;
}

static const char *tensor_name(const model_tensor *t)
{
    return t->name ? t->name : "(unnamed)";
}

size_t model_tensor_size(const model_tensor *t)
{
    return tensor_count(t) * t->rows * t->cols;
}

size_t model_tensors_size(const model_tensor *t, size_t n)
{
    size_t total = 0;
    for (size_t k = 0; k < n; k++)
        total += model_tensor_size(&t[k]);
    return total;
}

/* Elements of t with overflow checking; -1 on overflow. */
static int checked_tensor_size(const model_tensor *t, size_t *out)
{
    size_t matrix;
    return ss_mul_size(t->rows, t->cols, &matrix) || ss_mul_size(tensor_count(t), matrix, out)
               ? -1
               : 0;
}

ss_status model_tensors_check(const model_tensor *t, size_t n, size_t nparams, ss_err *err)
{
    size_t end_prev = 0;
    for (size_t k = 0; k < n; k++) {
        size_t size;
        if (t[k].rows == 0 || t[k].cols == 0)
            return ss_err_set(err, SS_ERR_RANGE,
                              "tensor %zu (%s): rows and cols must be >= 1 (got %zu x %zu)", k,
                              tensor_name(&t[k]), t[k].rows, t[k].cols);
        if (checked_tensor_size(&t[k], &size))
            return ss_err_set(err, SS_ERR_RANGE, "tensor %zu (%s): size %zu x %zu x %zu overflows",
                              k, tensor_name(&t[k]), tensor_count(&t[k]), t[k].rows, t[k].cols);
        if (k > 0 && t[k].offset < end_prev)
            return ss_err_set(err, SS_ERR_RANGE,
                              "tensor %zu (%s): offset %zu overlaps or precedes the previous "
                              "tensor, which ends at %zu (tensors must be in increasing offset "
                              "order without overlap)",
                              k, tensor_name(&t[k]), t[k].offset, end_prev);
        if (t[k].offset > nparams || size > nparams - t[k].offset)
            return ss_err_set(err, SS_ERR_RANGE,
                              "tensor %zu (%s): elements [%zu, %zu + %zu) lie outside the "
                              "parameter buffer of %zu floats",
                              k, tensor_name(&t[k]), t[k].offset, t[k].offset, size, nparams);
        end_prev = t[k].offset + size;
    }
    return SS_OK;
}

/* ---- shared checks --------------------------------------------------------------------- */

/* Checks lo <= x (or lo < x when strict) and x < hi (hi = INFINITY: no bound), finite. */
static ss_status check_range(const char *what, const char *field, double x, double lo,
                             int strict, double hi, ss_err *err)
{
    const int low_ok = strict ? x > lo : x >= lo;
    if (isfinite(x) && low_ok && x < hi)
        return SS_OK;
    if (isinf(hi))
        return ss_err_set(err, SS_ERR_RANGE, "%s: %s must be finite and %s %g (got %g)", what,
                          field, strict ? ">" : ">=", lo, x);
    return ss_err_set(err, SS_ERR_RANGE, "%s: %s must be in %s%g, %g) (got %g)", what, field,
                      strict ? "(" : "[", lo, hi, x);
}

/* ---- Adafactor ------------------------------------------------------------------------- */

model_adafactor_cfg model_adafactor_cfg_t5x(void)
{
    return (model_adafactor_cfg){
        .factored = 1,
        .min_dim_size_to_factor = 128,
        .factor_stacks = 1,
        .decay_rate = 0.8,
        .step_offset = 0,
        .epsilon1 = 1e-30,
        .epsilon2 = 1e-3,
        .clipping_threshold = 1.0,
        .multiply_by_parameter_scale = 1,
        .max_parameter_scale = 0.0,
        .beta1 = 0.0,
        .weight_decay = 0.0,
        .weight_decay_lr_exponent = 0.0,
    };
}

ss_status model_adafactor_cfg_check(const model_adafactor_cfg *cfg, ss_err *err)
{
    const char *w = "adafactor";
    ss_status st;
    if (cfg->min_dim_size_to_factor < 1)
        return ss_err_set(err, SS_ERR_RANGE, "%s: min_dim_size_to_factor must be >= 1 (got %d)",
                          w, cfg->min_dim_size_to_factor);
    const double wd_max = cfg->weight_decay_lr_exponent == 0.0 ? 1.0 : INFINITY;
    if ((st = check_range(w, "decay_rate", cfg->decay_rate, 0.0, 1, INFINITY, err)) ||
        (st = check_range(w, "epsilon1", cfg->epsilon1, 0.0, 1, INFINITY, err)) ||
        (st = check_range(w, "epsilon2", cfg->epsilon2, 0.0, 0, INFINITY, err)) ||
        (st = check_range(w, "clipping_threshold", cfg->clipping_threshold, 0.0, 0, INFINITY,
                          err)) ||
        (st = check_range(w, "max_parameter_scale", cfg->max_parameter_scale, 0.0, 0, INFINITY,
                          err)) ||
        (st = check_range(w, "beta1", cfg->beta1, 0.0, 0, 1.0, err)) ||
        (st = check_range(w, "weight_decay", cfg->weight_decay, 0.0, 0, wd_max, err)) ||
        (st = check_range(w, "weight_decay_lr_exponent", cfg->weight_decay_lr_exponent,
                          -INFINITY, 0, INFINITY, err)))
        return st;
    return SS_OK;
}

int model_adafactor_is_factored(const model_tensor *t, const model_adafactor_cfg *cfg)
{
    if (!cfg->factored || t->rows < 2 || t->cols < 2)
        return 0;
    if (cfg->factor_stacks && tensor_count(t) > 1)
        return 1;
    const size_t min_dim = (size_t)cfg->min_dim_size_to_factor;
    return t->rows >= min_dim && t->cols >= min_dim;
}

/* Second-moment floats of one tensor. */
static size_t second_moment_size(const model_tensor *t, const model_adafactor_cfg *cfg)
{
    const size_t per_matrix = model_adafactor_is_factored(t, cfg) ? t->rows + t->cols
                                                                  : t->rows * t->cols;
    return tensor_count(t) * per_matrix;
}

static size_t second_moments_size(const model_tensor *t, size_t n,
                                  const model_adafactor_cfg *cfg)
{
    size_t total = 0;
    for (size_t k = 0; k < n; k++)
        total += second_moment_size(&t[k], cfg);
    return total;
}

size_t model_adafactor_state_size(const model_tensor *t, size_t n,
                                  const model_adafactor_cfg *cfg)
{
    return second_moments_size(t, n, cfg) + (cfg->beta1 > 0.0 ? model_tensors_size(t, n) : 0);
}

static float rsqrt(float x)
{
    return 1.0f / sqrtf(x);
}

/* sqrt(mean(x^2)) of n floats, accumulated in double. */
static double rms(const float *x, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)x[i] * (double)x[i];
    return sqrt(sum / (double)n);
}

static float mean_f(const float *x, size_t n)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    return (float)(sum / (double)n);
}

/* lr times the clamped parameter scale of one matrix (or lr alone). */
static float update_scale(const float *p, size_t n, float lr, const model_adafactor_cfg *cfg)
{
    if (!cfg->multiply_by_parameter_scale)
        return lr;
    float scale = fmaxf((float)rms(p, n), (float)cfg->epsilon2);
    if (cfg->max_parameter_scale > 0.0)
        scale = fminf(scale, (float)cfg->max_parameter_scale);
    return lr * scale;
}

static void unfactored_moments(float *v, const float *g, size_t n, float beta2, float eps1)
{
    const float mix = 1.0f - beta2;
    for (size_t i = 0; i < n; i++)
        v[i] = beta2 * v[i] + mix * (g[i] * g[i] + eps1);
}

/* v_row[i] and v_col[j] from the row and column means of g^2 + eps1 (double sums). */
static void factored_moments(float *vr, float *vc, const float *g, size_t rows, size_t cols,
                             float beta2, float eps1)
{
    const float mix = 1.0f - beta2;
    for (size_t i = 0; i < rows; i++) {
        double sum = 0.0;
        for (size_t j = 0; j < cols; j++)
            sum += g[i * cols + j] * g[i * cols + j] + eps1;
        vr[i] = beta2 * vr[i] + mix * (float)(sum / (double)cols);
    }
    for (size_t j0 = 0; j0 < cols; j0 += BLOCK) {
        const size_t nj = cols - j0 < BLOCK ? cols - j0 : BLOCK;
        double acc[BLOCK] = {0};
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < nj; j++)
                acc[j] += g[i * cols + j0 + j] * g[i * cols + j0 + j] + eps1;
        for (size_t j = 0; j < nj; j++)
            vc[j0 + j] = beta2 * vc[j0 + j] + mix * (float)(acc[j] / (double)rows);
    }
}

/* How one matrix's gradient becomes y: from v (unfactored) or v_row, v_col (factored). */
typedef struct {
    const float *g;   /* [rows, cols] gradient */
    const float *v;   /* [rows, cols] unfactored second moment, or NULL */
    const float *vr;  /* [rows] factored row moments (when v is NULL) */
    const float *vc;  /* [cols] factored column moments */
    float norm;       /* mean of the smaller dimension's accumulator */
    int rows_small;   /* rows <= cols: v_row is normalised and applied first */
    size_t rows, cols;
} precond;

/* y[0..nj) = the preconditioned gradient of row i, columns j0..j0+nj. */
static void precondition_block(float *y, const precond *pc, size_t i, size_t j0, size_t nj)
{
    const float *g = pc->g + i * pc->cols + j0;
    if (pc->v) {
        const float *v = pc->v + i * pc->cols + j0;
        for (size_t j = 0; j < nj; j++)
            y[j] = g[j] * rsqrt(v[j]);
        return;
    }
    const float *vc = pc->vc + j0;
    if (pc->rows_small) {
        const float rf = rsqrt(pc->vr[i] / pc->norm);
        for (size_t j = 0; j < nj; j++)
            y[j] = g[j] * rf * rsqrt(vc[j]);
    } else {
        const float rf = rsqrt(pc->vr[i]);
        for (size_t j = 0; j < nj; j++)
            y[j] = g[j] * rsqrt(vc[j] / pc->norm) * rf;
    }
}

/* max(1, RMS(y) / threshold) over the matrix; 1 when clipping is off. */
static float clipping_denom(const precond *pc, double threshold)
{
    if (threshold <= 0.0)
        return 1.0f;
    float y[BLOCK];
    double sum = 0.0;
    for (size_t i = 0; i < pc->rows; i++)
        for (size_t j0 = 0; j0 < pc->cols; j0 += BLOCK) {
            const size_t nj = pc->cols - j0 < BLOCK ? pc->cols - j0 : BLOCK;
            precondition_block(y, pc, i, j0, nj);
            for (size_t j = 0; j < nj; j++)
                sum += (double)y[j] * (double)y[j];
        }
    const float r = (float)sqrt(sum / (double)(pc->rows * pc->cols));
    return fmaxf(1.0f, r / (float)threshold);
}

/* Per-step scalars shared by every matrix. */
typedef struct {
    float beta2, eps1, beta1, one_minus_beta1;
    int has_decay; /* weight decay on: p = decay * p - u */
    float decay;   /* 1 - wd */
} step_scalars;

/* p -= u with u = scale * y / denom (through momentum m when m != NULL). */
static void apply_block(float *p, float *m, const float *y, size_t nj, float scale, float denom,
                        const step_scalars *s)
{
    for (size_t j = 0; j < nj; j++) {
        float u = scale * (y[j] / denom);
        if (m) {
            m[j] = s->beta1 * m[j] + s->one_minus_beta1 * u;
            u = m[j];
        }
        p[j] = s->has_decay ? s->decay * p[j] - u : p[j] - u;
    }
}

/* One Adafactor update of one [rows, cols] matrix whose second moments start at v. */
static void adafactor_matrix(float *p, const float *g, float *v, float *m, size_t rows,
                             size_t cols, int factored, float lr, const step_scalars *s,
                             const model_adafactor_cfg *cfg)
{
    const size_t n = rows * cols;
    const float scale = update_scale(p, n, lr, cfg);
    precond pc = {.g = g, .rows = rows, .cols = cols, .rows_small = rows <= cols};
    if (factored) {
        factored_moments(v, v + rows, g, rows, cols, s->beta2, s->eps1);
        pc.vr = v;
        pc.vc = v + rows;
        pc.norm = pc.rows_small ? mean_f(pc.vr, rows) : mean_f(pc.vc, cols);
    } else {
        unfactored_moments(v, g, n, s->beta2, s->eps1);
        pc.v = v;
    }
    const float denom = clipping_denom(&pc, cfg->clipping_threshold);
    float y[BLOCK];
    for (size_t i = 0; i < rows; i++)
        for (size_t j0 = 0; j0 < cols; j0 += BLOCK) {
            const size_t nj = cols - j0 < BLOCK ? cols - j0 : BLOCK;
            precondition_block(y, &pc, i, j0, nj);
            apply_block(p + i * cols + j0, m ? m + i * cols + j0 : NULL, y, nj, scale, denom, s);
        }
}

static step_scalars adafactor_scalars(uint64_t step, float lr, const model_adafactor_cfg *cfg)
{
    const double t = (double)(step - cfg->step_offset) + 1.0;
    double wd = cfg->weight_decay;
    if (wd != 0.0 && cfg->weight_decay_lr_exponent != 0.0)
        wd *= pow((double)lr, cfg->weight_decay_lr_exponent);
    return (step_scalars){
        .beta2 = (float)(1.0 - pow(t, -cfg->decay_rate)),
        .eps1 = (float)cfg->epsilon1,
        .beta1 = (float)cfg->beta1,
        .one_minus_beta1 = (float)(1.0 - cfg->beta1),
        .has_decay = wd != 0.0,
        .decay = (float)(1.0 - wd),
    };
}

void model_adafactor_update(float *params, const float *grads, float *state,
                            const model_tensor *tensors, size_t ntensors, uint64_t step,
                            float lr, const model_adafactor_cfg *cfg)
{
    SS_ASSERT(params && grads && state && cfg && (tensors || ntensors == 0));
    SS_ASSERT(step >= cfg->step_offset);
    const step_scalars s = adafactor_scalars(step, lr, cfg);
    float *v = state;
    float *m = cfg->beta1 > 0.0 ? state + second_moments_size(tensors, ntensors, cfg) : NULL;
    for (size_t k = 0; k < ntensors; k++) {
        const model_tensor *t = &tensors[k];
        SS_ASSERT(t->rows >= 1 && t->cols >= 1);
        const int factored = model_adafactor_is_factored(t, cfg);
        const size_t n = t->rows * t->cols;
        for (size_t c = 0; c < tensor_count(t); c++) {
            const size_t at = t->offset + c * n;
            adafactor_matrix(params + at, grads + at, v, m, t->rows, t->cols, factored, lr, &s,
                             cfg);
            v += factored ? t->rows + t->cols : n;
            if (m)
                m += n;
        }
    }
}

/* ---- AdamW ----------------------------------------------------------------------------- */

model_adamw_cfg model_adamw_cfg_default(void)
{
    return (model_adamw_cfg){.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
}

ss_status model_adamw_cfg_check(const model_adamw_cfg *cfg, ss_err *err)
{
    const char *w = "adamw";
    ss_status st;
    if ((st = check_range(w, "beta1", cfg->beta1, 0.0, 0, 1.0, err)) ||
        (st = check_range(w, "beta2", cfg->beta2, 0.0, 0, 1.0, err)) ||
        (st = check_range(w, "eps", cfg->eps, 0.0, 1, INFINITY, err)) ||
        (st = check_range(w, "weight_decay", cfg->weight_decay, 0.0, 0, INFINITY, err)))
        return st;
    return SS_OK;
}

size_t model_adamw_state_size(const model_tensor *t, size_t n)
{
    return 2 * model_tensors_size(t, n);
}

void model_adamw_update(float *params, const float *grads, float *state,
                        const model_tensor *tensors, size_t ntensors, uint64_t step, float lr,
                        const model_adamw_cfg *cfg)
{
    SS_ASSERT(params && grads && state && cfg && (tensors || ntensors == 0));
    const double t = (double)step + 1.0;
    const double bc1 = 1.0 - pow(cfg->beta1, t);
    const double bc2 = 1.0 - pow(cfg->beta2, t);
    const float b1 = (float)cfg->beta1, b2 = (float)cfg->beta2;
    const float c1 = (float)(1.0 - cfg->beta1), c2 = (float)(1.0 - cfg->beta2);
    const float decay = (float)(1.0 - (double)lr * cfg->weight_decay);
    const float step_size = (float)((double)lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float eps = (float)cfg->eps;
    float *m = state;
    float *v = state + model_tensors_size(tensors, ntensors);
    for (size_t k = 0; k < ntensors; k++) {
        const size_t n = model_tensor_size(&tensors[k]);
        float *p = params + tensors[k].offset;
        const float *g = grads + tensors[k].offset;
        for (size_t i = 0; i < n; i++) {
            m[i] = b1 * m[i] + c1 * g[i];
            v[i] = b2 * v[i] + c2 * (g[i] * g[i]);
            p[i] = p[i] * decay;
            p[i] = p[i] - step_size * (m[i] / (sqrtf(v[i]) / bc2_sqrt + eps));
        }
        m += n;
        v += n;
    }
}

/* ---- learning-rate schedules ----------------------------------------------------------- */

static double warmup_fraction(uint64_t step, uint64_t warmup)
{
    return (double)step / (double)warmup;
}

double model_lr_at(const model_lr_schedule *s, uint64_t step)
{
    const uint64_t w = s->warmup_steps;
    switch (s->kind) {
    case MODEL_LR_CONSTANT:
        return step < w ? s->base * warmup_fraction(step, w) : s->base;
    case MODEL_LR_RSQRT:
        SS_ASSERT(w >= 1);
        return s->base / sqrt((double)(step > w ? step : w));
    case MODEL_LR_LINEAR: {
        SS_ASSERT(s->decay_steps >= 1);
        if (step < w)
            return s->base * warmup_fraction(step, w);
        const double done = (double)(step - w) / (double)s->decay_steps;
        return s->base + (s->end - s->base) * (done < 1.0 ? done : 1.0);
    }
    }
    SS_ASSERT(!"unknown learning-rate schedule kind");
    return 0.0;
}

ss_status model_lr_schedule_check(const model_lr_schedule *s, ss_err *err)
{
    const char *w = "lr schedule";
    ss_status st;
    if (s->kind != MODEL_LR_CONSTANT && s->kind != MODEL_LR_RSQRT && s->kind != MODEL_LR_LINEAR)
        return ss_err_set(err, SS_ERR_RANGE, "%s: unknown kind %d", w, (int)s->kind);
    if ((st = check_range(w, "base", s->base, 0.0, 0, INFINITY, err)))
        return st;
    if (s->kind == MODEL_LR_RSQRT && s->warmup_steps < 1)
        return ss_err_set(err, SS_ERR_RANGE,
                          "%s: rsqrt needs warmup_steps >= 1 (lr = base / sqrt(max(step, "
                          "warmup_steps)))",
                          w);
    if (s->kind == MODEL_LR_LINEAR) {
        if (s->decay_steps < 1)
            return ss_err_set(err, SS_ERR_RANGE, "%s: linear needs decay_steps >= 1", w);
        if ((st = check_range(w, "end", s->end, 0.0, 0, INFINITY, err)))
            return st;
    }
    return SS_OK;
}

model_lr_schedule model_lr_schedule_t5(void)
{
    return (model_lr_schedule){.kind = MODEL_LR_RSQRT, .base = 1.0, .warmup_steps = 10000};
}

/* ---- gradient clipping ----------------------------------------------------------------- */

double model_grad_global_norm(const float *grads, const model_tensor *tensors, size_t ntensors)
{
    SS_ASSERT(grads && (tensors || ntensors == 0));
    double sum = 0.0;
    for (size_t k = 0; k < ntensors; k++) {
        const float *g = grads + tensors[k].offset;
        const size_t n = model_tensor_size(&tensors[k]);
        for (size_t i = 0; i < n; i++)
            sum += (double)g[i] * (double)g[i];
    }
    return sqrt(sum);
}

double model_grad_clip_global_norm(float *grads, const model_tensor *tensors, size_t ntensors,
                                   double max_norm)
{
    const double norm = model_grad_global_norm(grads, tensors, ntensors);
    if (!(max_norm > 0.0) || !isfinite(norm) || norm <= max_norm)
        return norm;
    const double ratio = max_norm / norm;
    for (size_t k = 0; k < ntensors; k++) {
        float *g = grads + tensors[k].offset;
        const size_t n = model_tensor_size(&tensors[k]);
        for (size_t i = 0; i < n; i++)
            g[i] = (float)((double)g[i] * ratio);
    }
    return norm;
}
