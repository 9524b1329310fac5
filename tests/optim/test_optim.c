/* This file implements the tests of the optimizers, schedules and gradient clipping
 * (model/optim.c): Adafactor against values computed by hand and against an independent
 * double-precision transcription of the paper's algorithm, its factoring choice, update
 * clipping, parameter scale, weight decay, momentum and step offset; AdamW against two steps
 * computed by hand; the learning-rate schedules at their boundaries; global-norm clipping; the
 * state layout (stacks, gaps, state sizes); and convergence on a quadratic toy problem.
 *
 * Invariants: the reference values come from outside the code under test: the hand values are
 * derived in the comments (checked with a Python calculator), and ref_adafactor_step follows
 * Shazeer & Stern's Algorithm 4 (factored, with row and column SUMS and V = R C / 1^T R) and
 * Algorithm 5 (unfactored), update clipping (Section 6) and the relative step (Section 8) in
 * double, plus T5X's two additions (momentum on the scaled update, decoupled decay), without
 * calling model/optim.c. Random inputs come from fixed seeds, so every run is identical.
 * reference: N. Shazeer, M. Stern, arXiv 1804.04235; I. Loshchilov, F. Hutter,
 * arXiv 1711.05101; T5X t5x/adafactor.py.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rng.h"
#include "model/optim.h"

/* ---- helpers --------------------------------------------------------------------------- */

static float *falloc(size_t n)
{
    float *x = calloc(n, sizeof *x);
    assert_non_null(x);
    return x;
}

static double *dalloc(size_t n)
{
    double *x = calloc(n, sizeof *x);
    assert_non_null(x);
    return x;
}

static void fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    rng_state r;
    rng_seed(&r, seed);
    rng_fill_uniform_f32(&r, x, n, lo, hi);
}

/* Max |got - want| over n, printed with a label. */
static double max_abs_diff(const char *label, const float *got, const double *want, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]);
        if (!(d <= worst))
            worst = d;
    }
    print_message("  %s: max |diff| = %.3g over %zu values\n", label, worst, n);
    return worst;
}

/* Max |got - want| / |want| over n, printed with a label. */
static double max_rel_diff(const char *label, const float *got, const double *want, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]) / fabs(want[i]);
        if (!(d <= worst))
            worst = d;
    }
    print_message("  %s: max relative diff = %.3g over %zu values\n", label, worst, n);
    return worst;
}

static double rms_f(const float *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return sqrt(s / (double)n);
}

/* ---- the double-precision reference (the paper, not model/optim.c) --------------------- */

/* Settings of one reference matrix; the paper's names. */
typedef struct {
    size_t rows, cols; /* n x m in the paper */
    int factored;      /* Algorithm 4 (1) or 5 (0) */
    double eps1, eps2; /* regularisation constants */
    double d;          /* clipping threshold; 0: no clipping */
    double c;          /* beta2_t = 1 - t^-c */
    int relative;      /* alpha_t = max(eps2, RMS(X_{t-1})) rho_t (1) or rho_t (0) */
    double beta1;      /* T5X momentum on the scaled update; 0: none */
    double wd;         /* T5X decoupled decay: X = (1 - wd) X - update */
} ref_cfg;

typedef struct {
    double *R, *C, *V, *M; /* R [n] row sums, C [m] column sums, V [n*m], M [n*m] */
    double last_clip;      /* max(1, RMS(U)/d) of the last step */
} ref_state;

static ref_state ref_alloc(const ref_cfg *c)
{
    return (ref_state){dalloc(c->rows), dalloc(c->cols), dalloc(c->rows * c->cols),
                       dalloc(c->rows * c->cols), 0.0};
}

static void ref_free(ref_state *s)
{
    free(s->R);
    free(s->C);
    free(s->V);
    free(s->M);
}

/* One step t (1-based) with relative step size rho on X [n, m] (double) and gradient G. */
static void ref_adafactor_step(double *X, const float *Gf, ref_state *s, const ref_cfg *c,
                               double t, double rho)
{
    const size_t n = c->rows, m = c->cols, nm = n * m;
    const double beta2 = 1.0 - pow(t, -c->c);
    double xs = 0.0;
    for (size_t k = 0; k < nm; k++)
        xs += X[k] * X[k];
    const double alpha = c->relative ? fmax(c->eps2, sqrt(xs / (double)nm)) * rho : rho;
    double *U = dalloc(nm);
    if (c->factored) {
        /* R_t = beta2 R + (1 - beta2)(G^2 + eps1 1 1^T) 1_m; C_t likewise with 1_n^T. */
        for (size_t i = 0; i < n; i++) {
            double rs = 0.0;
            for (size_t j = 0; j < m; j++) {
                const double g = Gf[i * m + j];
                rs += g * g + c->eps1;
            }
            s->R[i] = beta2 * s->R[i] + (1.0 - beta2) * rs;
        }
        for (size_t j = 0; j < m; j++) {
            double cs = 0.0;
            for (size_t i = 0; i < n; i++) {
                const double g = Gf[i * m + j];
                cs += g * g + c->eps1;
            }
            s->C[j] = beta2 * s->C[j] + (1.0 - beta2) * cs;
        }
        double sum_r = 0.0;
        for (size_t i = 0; i < n; i++)
            sum_r += s->R[i];
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < m; j++)
                U[i * m + j] = Gf[i * m + j] / sqrt(s->R[i] * s->C[j] / sum_r);
    } else {
        for (size_t k = 0; k < nm; k++) {
            const double g = Gf[k];
            s->V[k] = beta2 * s->V[k] + (1.0 - beta2) * (g * g + c->eps1);
            U[k] = g / sqrt(s->V[k]);
        }
    }
    double us = 0.0;
    for (size_t k = 0; k < nm; k++)
        us += U[k] * U[k];
    s->last_clip = c->d > 0.0 ? fmax(1.0, sqrt(us / (double)nm) / c->d) : 1.0;
    for (size_t k = 0; k < nm; k++) {
        double u = alpha * U[k] / s->last_clip;
        if (c->beta1 > 0.0) {
            s->M[k] = c->beta1 * s->M[k] + (1.0 - c->beta1) * u;
            u = s->M[k];
        }
        X[k] = (1.0 - c->wd) * X[k] - u;
    }
    free(U);
}

/* Runs `steps` updates of one [rows, cols] tensor through model_adafactor_update and the
 * reference, with gradients gscale[s] * U(-1, 1); returns the max |param diff| and reports
 * the clipping denominators of the reference. */
typedef struct {
    double param_diff;  /* max |p_float - X_double| after the last step */
    double moment_diff; /* max relative diff of the second-moment state after the last step */
    double max_clip;    /* largest reference clipping denominator over the steps */
} ref_result;

static ref_result run_against_reference(size_t rows, size_t cols,
                                        const model_adafactor_cfg *cfg, const double *gscale,
                                        int steps, float lr, uint64_t seed)
{
    const size_t nm = rows * cols;
    const model_tensor t = {.name = "w", .offset = 0, .count = 1, .rows = rows, .cols = cols};
    const ref_cfg rc = {.rows = rows,
                        .cols = cols,
                        .factored = model_adafactor_is_factored(&t, cfg),
                        .eps1 = cfg->epsilon1,
                        .eps2 = cfg->epsilon2,
                        .d = cfg->clipping_threshold,
                        .c = cfg->decay_rate,
                        .relative = cfg->multiply_by_parameter_scale,
                        .beta1 = cfg->beta1,
                        .wd = cfg->weight_decay};
    float *p = falloc(nm), *g = falloc(nm);
    float *state = falloc(model_adafactor_state_size(&t, 1, cfg));
    double *X = dalloc(nm);
    ref_state rs = ref_alloc(&rc);
    fill_uniform(p, nm, seed, -1.0f, 1.0f);
    for (size_t k = 0; k < nm; k++)
        X[k] = p[k];
    ref_result res = {0};
    for (int s = 0; s < steps; s++) {
        fill_uniform(g, nm, seed + 1 + (uint64_t)s, -1.0f, 1.0f);
        for (size_t k = 0; k < nm; k++)
            g[k] *= (float)gscale[s];
        model_adafactor_update(p, g, state, &t, 1, (uint64_t)s, lr, cfg);
        ref_adafactor_step(X, g, &rs, &rc, (double)s + 1.0, lr);
        res.max_clip = fmax(res.max_clip, rs.last_clip);
    }
    res.param_diff = max_abs_diff("params vs reference", p, X, nm);
    if (rc.factored) {
        /* state v_row = R / cols, v_col = C / rows */
        double *want = dalloc(rows + cols);
        for (size_t i = 0; i < rows; i++)
            want[i] = rs.R[i] / (double)cols;
        for (size_t j = 0; j < cols; j++)
            want[rows + j] = rs.C[j] / (double)rows;
        res.moment_diff = max_rel_diff("v_row, v_col vs R/m, C/n", state, want, rows + cols);
        free(want);
    } else {
        res.moment_diff = max_rel_diff("v vs reference", state, rs.V, nm);
    }
    print_message("  largest clipping denominator: %.4g\n", res.max_clip);
    ref_free(&rs);
    free(X);
    free(state);
    free(g);
    free(p);
    return res;
}

/* ---- Adafactor ------------------------------------------------------------------------- */

/* Vector p = [3, 4], g = [0.5, -2], lr = 0.01, T5X defaults, step 0 (t = 1): beta2 = 0, so
 * v = g^2 + 1e-30 and y = g / |g| = [1, -1] (eps1 is far below fp32 resolution); RMS(y) = 1,
 * no clipping; RMS(p) = sqrt((9 + 16) / 2) = 3.5355339059; p -= 0.01 * 3.5355339059 * y:
 * p = [2.9646446609, 4.0353553391]. Step 1 (t = 2) with the same g: beta2 = 1 - 2^-0.8
 * = 0.4256508, v = beta2 g^2 + (1 - beta2) g^2 = g^2 again, y = [1, -1]; RMS(p) is now
 * sqrt((2.9646446609^2 + 4.0353553391^2) / 2) = 3.5407068982; p = [2.9292375920, 4.0707624080]. */
static void test_optim_adafactor_vector_hand(void **state)
{
    (void)state;
    const model_adafactor_cfg cfg = model_adafactor_cfg_t5x();
    const model_tensor t = {.name = "scale", .offset = 0, .rows = 1, .cols = 2};
    float p[2] = {3.0f, 4.0f};
    const float g[2] = {0.5f, -2.0f};
    float v[2] = {0};
    assert_int_equal(model_adafactor_state_size(&t, 1, &cfg), 2);
    model_adafactor_update(p, g, v, &t, 1, 0, 0.01f, &cfg);
    const double want0[2] = {2.9646446609, 4.0353553391};
    assert_true(max_abs_diff("step 0", p, want0, 2) < 1e-6);
    const double wantv[2] = {0.25, 4.0};
    assert_true(max_rel_diff("v after step 0", v, wantv, 2) < 1e-7);
    model_adafactor_update(p, g, v, &t, 1, 1, 0.01f, &cfg);
    const double want1[2] = {2.9292375920, 4.0707624080};
    assert_true(max_abs_diff("step 1", p, want1, 2) < 1e-6);
}

/* Factored (rows < cols and rows > cols), unfactored, with clipping in the last step. */
static void test_optim_adafactor_matches_paper_reference(void **state)
{
    (void)state;
    model_adafactor_cfg cfg = model_adafactor_cfg_t5x();
    cfg.min_dim_size_to_factor = 2; /* factor the small test matrices */
    const double gscale[4] = {1.0, 0.5, 0.01, 30.0}; /* the last step must clip */
    const struct {
        size_t rows, cols;
        int factored;
    } cases[] = {{5, 7, 1}, {7, 5, 1}, {1, 9, 0}, {6, 6, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        print_message("[%zu x %zu]\n", cases[k].rows, cases[k].cols);
        const model_tensor t = {.rows = cases[k].rows, .cols = cases[k].cols};
        assert_int_equal(model_adafactor_is_factored(&t, &cfg), cases[k].factored);
        const ref_result r =
            run_against_reference(cases[k].rows, cases[k].cols, &cfg, gscale, 4, 0.05f, 100 + k);
        assert_true(r.param_diff < 1e-6);
        assert_true(r.moment_diff < 1e-5);
        assert_true(r.max_clip > 1.5);
    }
}

/* A 130 x 140 matrix under the untouched T5X defaults (factored at this size), three steps. */
static void test_optim_adafactor_t5x_defaults_large_matrix(void **state)
{
    (void)state;
    const model_adafactor_cfg cfg = model_adafactor_cfg_t5x();
    const double gscale[3] = {1.0, 2.0, 0.1};
    const ref_result r = run_against_reference(130, 140, &cfg, gscale, 3, 0.01f, 7);
    assert_true(r.param_diff < 1e-6);
    assert_true(r.moment_diff < 1e-5);
}

/* Momentum, T5X weight decay and a large eps1, no clipping, no parameter scale: the reference
 * again. */
static void test_optim_adafactor_momentum_decay_reference(void **state)
{
    (void)state;
    model_adafactor_cfg cfg = model_adafactor_cfg_t5x();
    cfg.min_dim_size_to_factor = 4;
    cfg.epsilon1 = 1e-3; /* large enough to show where it is added */
    cfg.beta1 = 0.9;
    cfg.weight_decay = 1e-2;
    cfg.clipping_threshold = 0.0;
    cfg.multiply_by_parameter_scale = 0;
    const double gscale[4] = {1.0, 3.0, 0.2, 1.0};
    const size_t dims[2][2] = {{4, 9}, {3, 3}}; /* factored, and unfactored (3 < 4) */
    for (int k = 0; k < 2; k++) {
        print_message("[%zu x %zu]\n", dims[k][0], dims[k][1]);
        const ref_result r =
            run_against_reference(dims[k][0], dims[k][1], &cfg, gscale, 4, 0.02f, 40 + k);
        assert_true(r.param_diff < 1e-6);
        assert_true(r.moment_diff < 1e-5);
        assert_true(r.max_clip == 1.0);
    }
}

/* T5X factors a matrix only when both dimensions are >= 128; never a vector; stacks per
 * matrix whatever their size (factor_stacks); nothing when factored = 0. The state sizes
 * follow, and the update differs: unfactored at t = 1 gives y = sign(g) exactly. */
static void test_optim_adafactor_factored_choice(void **state)
{
    (void)state;
    model_adafactor_cfg cfg = model_adafactor_cfg_t5x();
    const struct {
        model_tensor t;
        int want;
        size_t state_floats;
    } cases[] = {
        {{.rows = 128, .cols = 128}, 1, 256},
        {{.rows = 127, .cols = 200}, 0, 127 * 200},
        {{.rows = 200, .cols = 127}, 0, 127 * 200},
        {{.rows = 128, .cols = 3072}, 1, 128 + 3072},
        {{.rows = 1, .cols = 4096}, 0, 4096},
        {{.count = 8, .rows = 16, .cols = 32}, 1, 8 * 48},
        {{.count = 8, .rows = 1, .cols = 32}, 0, 8 * 32},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const model_tensor *t = &cases[k].t;
        print_message("  %zu x [%zu x %zu]: factored %d, %zu state floats\n",
                      t->count ? t->count : 1, t->rows, t->cols,
                      model_adafactor_is_factored(t, &cfg), model_adafactor_state_size(t, 1, &cfg));
        assert_int_equal(model_adafactor_is_factored(&cases[k].t, &cfg), cases[k].want);
        assert_int_equal(model_adafactor_state_size(&cases[k].t, 1, &cfg), cases[k].state_floats);
    }
    const model_tensor stack = {.count = 8, .rows = 16, .cols = 32};
    cfg.factor_stacks = 0;
    assert_int_equal(model_adafactor_is_factored(&stack, &cfg), 0);
    cfg.min_dim_size_to_factor = 16;
    assert_int_equal(model_adafactor_is_factored(&stack, &cfg), 1);
    cfg = model_adafactor_cfg_t5x();
    cfg.factored = 0;
    assert_int_equal(model_adafactor_is_factored(&cases[0].t, &cfg), 0);
    assert_int_equal(model_adafactor_state_size(&cases[0].t, 1, &cfg), 128 * 128);

    /* behaviour: 128 x 130 factored vs the same matrix with factored = 0 */
    const model_tensor t = {.rows = 128, .cols = 130};
    const size_t n = 128 * 130;
    float *p0 = falloc(n), *pf = falloc(n), *pu = falloc(n), *g = falloc(n);
    fill_uniform(p0, n, 3, -1.0f, 1.0f);
    fill_uniform(g, n, 4, -1.0f, 1.0f);
    memcpy(pf, p0, n * sizeof *p0);
    memcpy(pu, p0, n * sizeof *p0);
    model_adafactor_cfg fac = model_adafactor_cfg_t5x(), unf = fac;
    unf.factored = 0;
    float *sf = falloc(model_adafactor_state_size(&t, 1, &fac));
    float *su = falloc(model_adafactor_state_size(&t, 1, &unf));
    model_adafactor_update(pf, g, sf, &t, 1, 0, 0.01f, &fac);
    model_adafactor_update(pu, g, su, &t, 1, 0, 0.01f, &unf);
    const float step = (float)(0.01 * rms_f(p0, n));
    double unf_dev = 0.0, fac_spread = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double du = fabs((double)p0[i] - pu[i]), df = fabs((double)p0[i] - pf[i]);
        unf_dev = fmax(unf_dev, fabs(du - step));
        fac_spread = fmax(fac_spread, fabs(df - step));
    }
    print_message("  unfactored |dp| - step: max %.3g; factored: max %.3g\n", unf_dev,
                  fac_spread);
    assert_true(unf_dev < 1e-6 * step + 1e-7); /* all steps equal: y = sign(g) */
    assert_true(fac_spread > 0.5 * step);      /* factored steps vary with |g| */
    free(su);
    free(sf);
    free(g);
    free(pu);
    free(pf);
    free(p0);
}

/* A gradient 1000x larger than the history: RMS(y) = 1/sqrt(1 - beta2) > 1 at t = 2, so the
 * applied update is clipped to RMS exactly d = 1 (in units of the step scale); without
 * clipping it is 1/sqrt(2^-0.8) = 1.32. */
static void test_optim_adafactor_update_clipping(void **state)
{
    (void)state;
    const model_tensor t = {.rows = 4, .cols = 50};
    const size_t n = 200;
    const double want_unclipped = 1.0 / sqrt(pow(2.0, -0.8));
    for (int clip = 1; clip >= 0; clip--) {
        model_adafactor_cfg cfg = model_adafactor_cfg_t5x();
        cfg.clipping_threshold = clip ? 1.0 : 0.0;
        float *p = falloc(n), *g = falloc(n), *before = falloc(n);
        float *v = falloc(model_adafactor_state_size(&t, 1, &cfg));
        fill_uniform(p, n, 8, -1.0f, 1.0f);
        fill_uniform(g, n, 9, -1e-3f, 1e-3f);
        model_adafactor_update(p, g, v, &t, 1, 0, 0.01f, &cfg);
        for (size_t i = 0; i < n; i++)
            g[i] *= 1000.0f;
        memcpy(before, p, n * sizeof *p);
        const double scale = 0.01 * rms_f(before, n);
        model_adafactor_update(p, g, v, &t, 1, 1, 0.01f, &cfg);
        double s = 0.0;
        for (size_t i = 0; i < n; i++)
            s += ((double)before[i] - p[i]) * ((double)before[i] - p[i]);
        const double rms_update = sqrt(s / (double)n) / scale;
        print_message("  clipping %s: RMS(update) / scale = %.6f (unclipped theory %.6f)\n",
                      clip ? "on" : "off", rms_update, want_unclipped);
        if (clip)
            assert_true(fabs(rms_update - 1.0) < 1e-4);
        else
            assert_true(fabs(rms_update - want_unclipped) < 1e-3);
        free(v);
        free(before);
        free(g);
        free(p);
    }
}

/* The step is lr * max(eps2, RMS(p)) (clamped by max_parameter_scale) with the parameter
 * scale, lr without it. A vector at t = 1 moves by exactly that amount per element. */
static void test_optim_adafactor_parameter_scale(void **state)
{
    (void)state;
    const model_tensor t = {.rows = 1, .cols = 4};
    const float g[4] = {1.0f, -1.0f, 0.5f, -0.25f};
    const struct {
        float p0;      /* all parameters */
        int relative;  /* multiply_by_parameter_scale */
        double max_ps; /* max_parameter_scale */
        double want;   /* |step| per element with lr = 0.1 */
    } cases[] = {
        {2.0f, 1, 0.0, 0.2},    /* RMS 2 */
        {20.0f, 1, 0.0, 2.0},   /* 10x the parameters, 10x the step */
        {1e-5f, 1, 0.0, 1e-4},  /* RMS below eps2 = 1e-3: lr * eps2 */
        {2.0f, 0, 0.0, 0.1},    /* absolute step */
        {20.0f, 1, 0.5, 0.05},  /* clamped at 0.5 */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        model_adafactor_cfg cfg = model_adafactor_cfg_t5x();
        cfg.multiply_by_parameter_scale = cases[k].relative;
        cfg.max_parameter_scale = cases[k].max_ps;
        float p[4], v[4] = {0};
        for (int i = 0; i < 4; i++)
            p[i] = cases[k].p0;
        model_adafactor_update(p, g, v, &t, 1, 0, 0.1f, &cfg);
        /* compare with the exact result rounded to fp32, in ulps of that result */
        double worst = 0.0;
        for (int i = 0; i < 4; i++) {
            const float want = (float)((double)cases[k].p0 - (g[i] > 0 ? 1 : -1) * cases[k].want);
            const float ulp = nextafterf(fabsf(want), INFINITY) - fabsf(want);
            worst = fmax(worst, fabs((double)p[i] - want) / ulp);
        }
        print_message("  p0 %g relative %d max_ps %g: step %g, max error %.3g ulp\n",
                      (double)cases[k].p0, cases[k].relative, cases[k].max_ps, cases[k].want,
                      worst);
        assert_true(worst <= 2.0);
    }
}

/* With g = 0 the update is 0 (y = 0 / sqrt(eps1)), so T5X's decay shows alone:
 * p = (1 - wd) p, or (1 - wd * lr^e) p with the lr exponent. Without decay p is unchanged. */
static void test_optim_adafactor_weight_decay(void **state)
{
    (void)state;
    const model_tensor t = {.rows = 2, .cols = 3};
    const float g[6] = {0};
    const struct {
        double wd, exponent, factor;
    } cases[] = {{0.0, 0.0, 1.0}, {0.01, 0.0, 0.99}, {0.5, 1.0, 1.0 - 0.5 * 0.1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        model_adafactor_cfg cfg = model_adafactor_cfg_t5x();
        cfg.weight_decay = cases[k].wd;
        cfg.weight_decay_lr_exponent = cases[k].exponent;
        float p[6] = {1.0f, -2.0f, 3.0f, 0.5f, -0.25f, 8.0f}, v[6] = {0};
        double want[6];
        for (int i = 0; i < 6; i++)
            want[i] = (double)(float)cases[k].factor * p[i];
        model_adafactor_update(p, g, v, &t, 1, 0, 0.1f, &cfg);
        print_message("  wd %g exponent %g:", cases[k].wd, cases[k].exponent);
        assert_true(max_rel_diff("p vs (1 - wd) p", p, want, 6) < 1e-7);
    }
}

/* step_offset restarts t: step 5 with offset 5 equals step 0 without offset. */
static void test_optim_adafactor_step_offset(void **state)
{
    (void)state;
    const model_tensor t = {.rows = 3, .cols = 5};
    float a[15], b[15], g[15], va[15] = {0}, vb[15] = {0};
    fill_uniform(a, 15, 21, -1.0f, 1.0f);
    fill_uniform(g, 15, 22, -1.0f, 1.0f);
    memcpy(b, a, sizeof a);
    model_adafactor_cfg cfg = model_adafactor_cfg_t5x(), off = cfg;
    off.step_offset = 5;
    model_adafactor_update(a, g, va, &t, 1, 0, 0.01f, &cfg);
    model_adafactor_update(b, g, vb, &t, 1, 5, 0.01f, &off);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(va, vb, sizeof va);
    /* and step 1 differs from step 0 once v has history */
    model_adafactor_update(a, g, va, &t, 1, 1, 0.01f, &cfg);
    model_adafactor_update(b, g, vb, &t, 1, 5, 0.01f, &off);
    assert_memory_not_equal(va, vb, sizeof va);
}

/* ---- layout: stacks, gaps, state sizes ------------------------------------------------- */

/* A stack of three 4x6 matrices, a gap, a vector and a 6x3 matrix, updated in one call, equals
 * updating each matrix on its own (the stack is treated per matrix: factored moments, scale,
 * clipping; the stack's matrices get gradients of different sizes so that per-stack statistics
 * would differ); NaN gaps in params and grads are never read or written; the state is used up
 * to exactly its size (a guard float after it stays). Adafactor with momentum, and AdamW. */
enum { LAYOUT_PARAMS = 120, LAYOUT_PIECES = 5, LAYOUT_P = 72 + 10 + 18 };

static const model_tensor layout_list[3] = {
    {.name = "experts", .offset = 0, .count = 3, .rows = 4, .cols = 6},
    {.name = "scale", .offset = 77, .rows = 1, .cols = 10},
    {.name = "w", .offset = 87, .rows = 6, .cols = 3},
};

/* The single matrices of the list, and the gaps: [72, 77) and [105, 120). */
static const model_tensor layout_pieces[LAYOUT_PIECES] = {
    {.offset = 0, .rows = 4, .cols = 6},  {.offset = 24, .rows = 4, .cols = 6},
    {.offset = 48, .rows = 4, .cols = 6}, {.offset = 77, .rows = 1, .cols = 10},
    {.offset = 87, .rows = 6, .cols = 3},
};

static int in_gap(size_t i)
{
    return (i >= 72 && i < 77) || i >= 105;
}

typedef void (*update_fn)(float *p, const float *g, float *st, const model_tensor *t, size_t n,
                          uint64_t step, const void *cfg);

static void adafactor_fn(float *p, const float *g, float *st, const model_tensor *t, size_t n,
                         uint64_t step, const void *cfg)
{
    model_adafactor_update(p, g, st, t, n, step, 0.05f, cfg);
}

static void adamw_fn(float *p, const float *g, float *st, const model_tensor *t, size_t n,
                     uint64_t step, const void *cfg)
{
    model_adamw_update(p, g, st, t, n, step, 0.05f, cfg);
}

/* Three steps of fn over the list (state_list floats) and over each piece on its own. */
static void check_layout(update_fn fn, const void *cfg_list, const void *cfg_piece,
                         size_t state_list, const size_t *state_piece)
{
    ss_err err;
    assert_int_equal(model_tensors_check(layout_list, 3, LAYOUT_PARAMS, &err), SS_OK);
    float p[LAYOUT_PARAMS], g[LAYOUT_PARAMS], ps[LAYOUT_PARAMS];
    fill_uniform(p, LAYOUT_PARAMS, 31, -1.0f, 1.0f);
    for (size_t i = 0; i < LAYOUT_PARAMS; i++)
        if (in_gap(i))
            p[i] = NAN;
    memcpy(ps, p, sizeof p);
    float *st = falloc(state_list + 1);
    st[state_list] = 12345.0f; /* guard */
    float *stp[LAYOUT_PIECES];
    for (int k = 0; k < LAYOUT_PIECES; k++)
        stp[k] = falloc(state_piece[k]);
    for (uint64_t step = 0; step < 3; step++) {
        fill_uniform(g, LAYOUT_PARAMS, 40 + step, -1.0f, 1.0f);
        for (size_t i = 24; i < 48; i++)
            g[i] *= 100.0f; /* the stack's matrices differ in scale */
        for (size_t i = 0; i < LAYOUT_PARAMS; i++)
            if (in_gap(i))
                g[i] = NAN;
        fn(p, g, st, layout_list, 3, step, cfg_list);
        for (int k = 0; k < LAYOUT_PIECES; k++)
            fn(ps, g, stp[k], &layout_pieces[k], 1, step, cfg_piece);
    }
    assert_true(st[state_list] == 12345.0f);
    int same = 1, gaps_nan = 1, finite = 1;
    for (size_t i = 0; i < LAYOUT_PARAMS; i++) {
        if (in_gap(i)) {
            gaps_nan &= isnan(p[i]);
            continue;
        }
        same &= p[i] == ps[i];
        finite &= isfinite(p[i]);
    }
    print_message("  list == per-matrix: %d; gaps untouched: %d; finite: %d\n", same, gaps_nan,
                  finite);
    assert_true(same && gaps_nan && finite);
    for (int k = 0; k < LAYOUT_PIECES; k++)
        free(stp[k]);
    free(st);
}

static void test_optim_layout_stack_and_gaps(void **state)
{
    (void)state;
    /* Adafactor: the stack factored per matrix (factor_stacks), the lone 6x3 and the vector
     * not; momentum adds P floats. The pieces are single 4x6 matrices, factored with a
     * threshold of 4 that keeps 6x3 unfactored. */
    model_adafactor_cfg list = model_adafactor_cfg_t5x();
    list.beta1 = 0.5;
    const size_t second = 3 * (4 + 6) + 10 + 18;
    const size_t state_list = model_adafactor_state_size(layout_list, 3, &list);
    assert_int_equal(state_list, second + LAYOUT_P);
    model_adafactor_cfg piece = list;
    piece.min_dim_size_to_factor = 4;
    size_t sizes[LAYOUT_PIECES];
    for (int k = 0; k < LAYOUT_PIECES; k++)
        sizes[k] = model_adafactor_state_size(&layout_pieces[k], 1, &piece);
    assert_int_equal(sizes[0], 10 + 24);
    assert_int_equal(sizes[3], 10 + 10);
    assert_int_equal(sizes[4], 18 + 18);
    print_message("Adafactor (momentum)\n");
    check_layout(adafactor_fn, &list, &piece, state_list, sizes);
    print_message("AdamW\n");
    const model_adamw_cfg aw = model_adamw_cfg_default();
    assert_int_equal(model_adamw_state_size(layout_list, 3), 2 * LAYOUT_P);
    const size_t awsizes[LAYOUT_PIECES] = {48, 48, 48, 20, 36};
    check_layout(adamw_fn, &aw, &aw, 2 * LAYOUT_P, awsizes);
}

/* ---- AdamW ----------------------------------------------------------------------------- */

/* p = [0.5, -1.5], g1 = [1, -0.25], g2 = [-2, 0.5], lr = 0.1, no decay.
 * Step 0 (t = 1): m = 0.1 g1, v = 0.001 g1^2, bc1 = 0.1, bc2 = 0.001, so m_hat = g1 and
 * v_hat = g1^2: p -= 0.1 * g1 / (|g1| + 1e-8) -> [0.400000001, -1.400000004].
 * Step 1 (t = 2): element 0: m = 0.9 * 0.1 + 0.1 * (-2) = -0.11, v = 0.999 * 0.001 + 0.001 * 4
 * = 0.004999, bc1 = 0.19, bc2 = 0.001999: m_hat = -0.5789473684, v_hat = 2.5007503752,
 * p = 0.400000001 + 0.1 * 0.5789473684 / 1.5813760701 = 0.4366103535. Element 1 is the same
 * with g / 4 (Adam is scale-free up to eps): p = -1.4366103558. */
static void test_optim_adamw_hand_two_steps(void **state)
{
    (void)state;
    model_adamw_cfg cfg = model_adamw_cfg_default();
    cfg.weight_decay = 0.0;
    const model_tensor t = {.rows = 1, .cols = 2};
    float p[2] = {0.5f, -1.5f}, st[4] = {0};
    const float g1[2] = {1.0f, -0.25f}, g2[2] = {-2.0f, 0.5f};
    model_adamw_update(p, g1, st, &t, 1, 0, 0.1f, &cfg);
    const double want_m[2] = {0.1, -0.025}, want_v[2] = {0.001, 6.25e-5};
    assert_true(max_rel_diff("m after step 0", st, want_m, 2) < 1e-6);
    assert_true(max_rel_diff("v after step 0", st + 2, want_v, 2) < 1e-6);
    const double want0[2] = {0.400000001, -1.400000004};
    assert_true(max_abs_diff("step 0", p, want0, 2) < 2e-7);
    model_adamw_update(p, g2, st, &t, 1, 1, 0.1f, &cfg);
    const double want1[2] = {0.4366103535, -1.4366103558};
    assert_true(max_abs_diff("step 1", p, want1, 2) < 2e-7);
}

/* g = 0 keeps m = v = 0 and the Adam term 0 / (0 + eps) = 0: p = (1 - lr wd) p exactly. */
static void test_optim_adamw_weight_decay(void **state)
{
    (void)state;
    model_adamw_cfg cfg = model_adamw_cfg_default();
    cfg.weight_decay = 0.1;
    const model_tensor t = {.rows = 1, .cols = 3};
    float p[3] = {1.0f, -4.0f, 0.3f}, st[6] = {0};
    const float g[3] = {0};
    double want[3];
    for (int i = 0; i < 3; i++)
        want[i] = (double)(float)(1.0 - 0.01 * 0.1) * p[i];
    model_adamw_update(p, g, st, &t, 1, 0, 0.01f, &cfg);
    assert_true(max_rel_diff("p vs (1 - lr wd) p", p, want, 3) < 1e-7);
    /* with a gradient the decay still applies to the old p: compare wd on/off */
    float a[3] = {1.0f, -4.0f, 0.3f}, b[3] = {1.0f, -4.0f, 0.3f}, sa[6] = {0}, sb[6] = {0};
    const float g1[3] = {0.5f, 0.5f, -0.5f};
    model_adamw_cfg off = cfg;
    off.weight_decay = 0.0;
    model_adamw_update(a, g1, sa, &t, 1, 0, 0.01f, &cfg);
    model_adamw_update(b, g1, sb, &t, 1, 0, 0.01f, &off);
    const float init[3] = {1.0f, -4.0f, 0.3f};
    double worst = 0.0;
    for (int i = 0; i < 3; i++)
        worst = fmax(worst, fabs(((double)b[i] - a[i]) - 0.001 * init[i]));
    print_message("  decay difference vs lr wd p: max %.3g\n", worst);
    assert_true(worst < 1e-6);
}

/* ---- schedules ------------------------------------------------------------------------- */

static void test_optim_schedules(void **state)
{
    (void)state;
    const model_lr_schedule t5 = model_lr_schedule_t5();
    const model_lr_schedule cw = {.kind = MODEL_LR_CONSTANT, .base = 0.5, .warmup_steps = 4};
    const model_lr_schedule c0 = {.kind = MODEL_LR_CONSTANT, .base = 0.5};
    const model_lr_schedule lin = {
        .kind = MODEL_LR_LINEAR, .base = 1e-3, .warmup_steps = 100, .decay_steps = 900,
        .end = 1e-4};
    const struct {
        const model_lr_schedule *s;
        uint64_t step;
        double want;
    } cases[] = {
        {&t5, 0, 0.01},          {&t5, 1, 0.01},           {&t5, 9999, 0.01},
        {&t5, 10000, 0.01},      {&t5, 40000, 0.005},      {&t5, 1000000, 0.001},
        {&cw, 0, 0.0},           {&cw, 1, 0.125},          {&cw, 3, 0.375},
        {&cw, 4, 0.5},           {&cw, 1000, 0.5},         {&c0, 0, 0.5},
        {&lin, 0, 0.0},          {&lin, 50, 5e-4},         {&lin, 100, 1e-3},
        {&lin, 550, 5.5e-4},     {&lin, 1000, 1e-4},       {&lin, 5000, 1e-4},
    };
    double worst = 0.0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const double got = model_lr_at(cases[k].s, cases[k].step);
        const double err = fabs(got - cases[k].want);
        worst = fmax(worst, err / fmax(cases[k].want, 1e-300));
        if (err > 1e-15)
            print_message("  case %zu step %llu: got %.17g want %.17g\n", k,
                          (unsigned long long)cases[k].step, got, cases[k].want);
        assert_true(err <= 1e-15);
    }
    print_message("  %zu schedule points, max relative error %.3g\n",
                  sizeof cases / sizeof cases[0], worst);
    /* decreasing after the warmup, monotone */
    for (uint64_t s = 100; s < 1000; s++)
        assert_true(model_lr_at(&lin, s + 1) < model_lr_at(&lin, s));
    ss_err err;
    assert_int_equal(model_lr_schedule_check(&t5, &err), SS_OK);
    assert_int_equal(model_lr_schedule_check(&lin, &err), SS_OK);
    assert_int_equal(model_lr_schedule_check(&c0, &err), SS_OK);
}

static void test_optim_schedule_check_errors(void **state)
{
    (void)state;
    const struct {
        model_lr_schedule s;
        const char *needle;
    } cases[] = {
        {{.kind = MODEL_LR_RSQRT, .base = 1.0, .warmup_steps = 0}, "warmup_steps"},
        {{.kind = MODEL_LR_LINEAR, .base = 1.0, .decay_steps = 0}, "decay_steps"},
        {{.kind = MODEL_LR_LINEAR, .base = 1.0, .decay_steps = 5, .end = -1.0}, "end"},
        {{.kind = MODEL_LR_CONSTANT, .base = -1.0}, "base"},
        {{.kind = MODEL_LR_CONSTANT, .base = NAN}, "base"},
        {{.kind = (model_lr_kind)7, .base = 1.0}, "kind"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ss_err err = {0};
        assert_int_equal(model_lr_schedule_check(&cases[k].s, &err), SS_ERR_RANGE);
        print_message("  %s\n", err.msg);
        assert_non_null(strstr(err.msg, cases[k].needle));
    }
}

/* ---- global-norm clipping -------------------------------------------------------------- */

static void test_optim_clip_global_norm(void **state)
{
    (void)state;
    /* two tensors with a gap holding 100s that must not count: norm = sqrt(9 + 16 + 144) = 13 */
    const model_tensor t[2] = {{.offset = 0, .rows = 1, .cols = 2},
                               {.offset = 4, .rows = 1, .cols = 1}};
    float g[5] = {3.0f, -4.0f, 100.0f, 100.0f, 12.0f};
    assert_true(model_grad_global_norm(g, t, 2) == 13.0);
    /* below (and at) the threshold: unchanged */
    float same[5];
    memcpy(same, g, sizeof g);
    assert_true(model_grad_clip_global_norm(g, t, 2, 13.0) == 13.0);
    assert_true(model_grad_clip_global_norm(g, t, 2, 20.0) == 13.0);
    assert_true(model_grad_clip_global_norm(g, t, 2, 0.0) == 13.0);
    assert_memory_equal(g, same, sizeof g);
    /* above: scaled by 6.5 / 13 = 0.5 exactly, gap untouched, pre-clip norm returned */
    assert_true(model_grad_clip_global_norm(g, t, 2, 6.5) == 13.0);
    const float want[5] = {1.5f, -2.0f, 100.0f, 100.0f, 6.0f};
    assert_memory_equal(g, want, sizeof g);
    assert_true(model_grad_global_norm(g, t, 2) == 6.5);

    /* many random values: each element is (float)(g * (max / norm)), new norm = max */
    const size_t n = 100000;
    const model_tensor big = {.rows = 100, .cols = 1000};
    float *x = falloc(n), *y = falloc(n);
    fill_uniform(x, n, 77, -1e-3f, 1e-3f);
    memcpy(y, x, n * sizeof *x);
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    const double norm = sqrt(s);
    const double got = model_grad_clip_global_norm(y, &big, 1, 0.01);
    print_message("  random: norm %.9g (independent sum %.9g), clipped norm %.9g\n", got, norm,
                  model_grad_global_norm(y, &big, 1));
    assert_true(fabs(got - norm) <= 1e-12 * norm);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++)
        wrong += y[i] != (float)((double)x[i] * (0.01 / got));
    assert_int_equal(wrong, 0);
    assert_true(fabs(model_grad_global_norm(y, &big, 1) - 0.01) < 1e-8);

    /* a non-finite norm leaves the gradients alone and is returned */
    x[5] = INFINITY;
    memcpy(y, x, n * sizeof *x);
    assert_true(isinf(model_grad_clip_global_norm(y, &big, 1, 0.01)));
    assert_memory_equal(x, y, n * sizeof *x);
    x[5] = NAN;
    memcpy(y, x, n * sizeof *x);
    assert_true(isnan(model_grad_clip_global_norm(y, &big, 1, 0.01)));
    assert_memory_equal(x, y, n * sizeof *x);
    free(y);
    free(x);
}

/* ---- sizes, checks --------------------------------------------------------------------- */

/* A Switch-Base-like layer list: Adafactor's factored state vs AdamW's 2P. */
static void test_optim_state_size(void **state)
{
    (void)state;
    const model_tensor t[] = {
        {.name = "wte", .offset = 0, .rows = 32128, .cols = 768},
        {.name = "norm", .offset = 24674304, .rows = 1, .cols = 768},
        {.name = "wq", .offset = 24675072, .rows = 768, .cols = 768},
        {.name = "relpos", .offset = 25264896, .rows = 32, .cols = 12},
        {.name = "router", .offset = 25265280, .rows = 768, .cols = 128},
        {.name = "experts_wi", .offset = 25363584, .count = 128, .rows = 768, .cols = 3072},
    };
    const size_t nt = sizeof t / sizeof t[0];
    const size_t P = model_tensors_size(t, nt);
    const size_t P_want = 32128 * 768 + 768 + 768 * 768 + 32 * 12 + 768 * 128 +
                          (size_t)128 * 768 * 3072;
    assert_int_equal(P, P_want);
    ss_err err;
    assert_int_equal(model_tensors_check(t, nt, P, &err), SS_OK);
    const model_adafactor_cfg cfg = model_adafactor_cfg_t5x();
    const size_t want = (32128 + 768) + 768 + (768 + 768) + 32 * 12 + (768 + 128) +
                        128 * (768 + 3072);
    const size_t got = model_adafactor_state_size(t, nt, &cfg);
    print_message("  params %zu; Adafactor state %zu floats (%.5f x P); AdamW %zu (2 x P)\n", P,
                  got, (double)got / (double)P, model_adamw_state_size(t, nt));
    assert_int_equal(got, want);
    assert_int_equal(model_adamw_state_size(t, nt), 2 * P);
    model_adafactor_cfg mom = cfg;
    mom.beta1 = 0.9;
    assert_int_equal(model_adafactor_state_size(t, nt, &mom), want + P);
    assert_int_equal(model_tensor_size(&t[5]), (size_t)128 * 768 * 3072);
    assert_int_equal(model_tensors_size(t, 0), 0);
}

static void test_optim_tensors_check_errors(void **state)
{
    (void)state;
    const struct {
        model_tensor t[2];
        size_t nparams;
        const char *needle;
    } cases[] = {
        {{{.name = "a", .rows = 0, .cols = 4}, {.name = "b", .offset = 4, .rows = 1, .cols = 1}},
         10, "rows and cols"},
        {{{.name = "a", .rows = 2, .cols = 4}, {.name = "b", .offset = 7, .rows = 1, .cols = 1}},
         10, "overlaps"},
        {{{.name = "a", .rows = 2, .cols = 4}, {.name = "b", .offset = 8, .rows = 1, .cols = 3}},
         10, "outside"},
        {{{.name = "a", .rows = 2, .cols = 4},
          {.name = "b", .offset = 8, .count = SIZE_MAX / 2, .rows = 3, .cols = 1}},
         10, "overflows"},
        {{{.name = "a", .offset = 11, .rows = 1, .cols = 1}, {.name = "b", .offset = 12,
          .rows = 1, .cols = 1}}, 10, "outside"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ss_err err = {0};
        assert_int_equal(model_tensors_check(cases[k].t, 2, cases[k].nparams, &err),
                         SS_ERR_RANGE);
        print_message("  %s\n", err.msg);
        assert_non_null(strstr(err.msg, cases[k].needle));
    }
    const model_tensor ok[2] = {{.rows = 2, .cols = 4}, {.offset = 8, .rows = 1, .cols = 2}};
    ss_err err;
    assert_int_equal(model_tensors_check(ok, 2, 10, &err), SS_OK);
    assert_int_equal(model_tensors_check(ok, 2, 9, &err), SS_ERR_RANGE);
}

static void test_optim_cfg_check(void **state)
{
    (void)state;
    ss_err err;
    const model_adafactor_cfg t5x = model_adafactor_cfg_t5x();
    assert_int_equal(model_adafactor_cfg_check(&t5x, &err), SS_OK);
    const model_adamw_cfg aw = model_adamw_cfg_default();
    assert_int_equal(model_adamw_cfg_check(&aw, &err), SS_OK);
    model_adafactor_cfg a;
#define AF_BAD(field, value)                                                                  \
    do {                                                                                      \
        a = t5x;                                                                              \
        a.field = value;                                                                      \
        err.msg[0] = 0;                                                                       \
        assert_int_equal(model_adafactor_cfg_check(&a, &err), SS_ERR_RANGE);                  \
        print_message("  %s\n", err.msg);                                                     \
        assert_non_null(strstr(err.msg, #field));                                             \
    } while (0)
    AF_BAD(min_dim_size_to_factor, 0);
    AF_BAD(decay_rate, 0.0);
    AF_BAD(epsilon1, 0.0);
    AF_BAD(epsilon2, -1.0);
    AF_BAD(clipping_threshold, -1.0);
    AF_BAD(max_parameter_scale, NAN);
    AF_BAD(beta1, 1.0);
    AF_BAD(weight_decay, 1.0);
    AF_BAD(weight_decay_lr_exponent, INFINITY);
#undef AF_BAD
    a = t5x; /* with an lr exponent the rate may exceed 1 (it is multiplied by lr^e) */
    a.weight_decay = 2.0;
    a.weight_decay_lr_exponent = 1.0;
    assert_int_equal(model_adafactor_cfg_check(&a, &err), SS_OK);
    model_adamw_cfg b;
#define AW_BAD(field, value)                                                                  \
    do {                                                                                      \
        b = aw;                                                                               \
        b.field = value;                                                                      \
        err.msg[0] = 0;                                                                       \
        assert_int_equal(model_adamw_cfg_check(&b, &err), SS_ERR_RANGE);                      \
        print_message("  %s\n", err.msg);                                                     \
        assert_non_null(strstr(err.msg, #field));                                             \
    } while (0)
    AW_BAD(beta1, -0.1);
    AW_BAD(beta2, 1.0);
    AW_BAD(eps, 0.0);
    AW_BAD(weight_decay, -1.0);
#undef AW_BAD
}

/* ---- convergence ----------------------------------------------------------------------- */

/* f(p) = 0.5 sum a_i (p_i - c_i)^2 over a 130 x 140 matrix (factored under T5X defaults) and a
 * 64-vector, a_i in [0.5, 2], c_i in [-1, 1]; gradient a (p - c). */
typedef struct {
    model_tensor t[2];
    size_t n;
    float *a, *c;
} quad;

static quad quad_make(void)
{
    quad q = {{{.name = "w", .offset = 0, .rows = 130, .cols = 140},
               {.name = "v", .offset = 130 * 140, .rows = 1, .cols = 64}},
              130 * 140 + 64, NULL, NULL};
    q.a = falloc(q.n);
    q.c = falloc(q.n);
    fill_uniform(q.a, q.n, 501, 0.5f, 2.0f);
    fill_uniform(q.c, q.n, 502, -1.0f, 1.0f);
    return q;
}

static double quad_loss_grad(const quad *q, const float *p, float *g)
{
    double f = 0.0;
    for (size_t i = 0; i < q->n; i++) {
        const float d = p[i] - q->c[i];
        g[i] = q->a[i] * d;
        f += 0.5 * (double)q->a[i] * (double)d * (double)d;
    }
    return f;
}

static void test_optim_quadratic_converges(void **state)
{
    (void)state;
    quad q = quad_make();
    float *p = falloc(q.n), *g = falloc(q.n);
    const int steps = 400;
    for (int opt = 0; opt < 2; opt++) {
        const model_adafactor_cfg af = model_adafactor_cfg_t5x();
        model_adamw_cfg aw = model_adamw_cfg_default();
        aw.weight_decay = 0.0;
        const model_lr_schedule sched = {.kind = MODEL_LR_LINEAR,
                                         .base = opt == 0 ? 0.1 : 0.05,
                                         .warmup_steps = 10,
                                         .decay_steps = (uint64_t)steps - 10,
                                         .end = 0.0};
        const size_t ns = opt == 0 ? model_adafactor_state_size(q.t, 2, &af)
                                   : model_adamw_state_size(q.t, 2);
        float *st = falloc(ns);
        fill_uniform(p, q.n, 503, -1.0f, 1.0f);
        const double f0 = quad_loss_grad(&q, p, g);
        double f = f0;
        for (int s = 0; s < steps; s++) {
            const float lr = (float)model_lr_at(&sched, (uint64_t)s);
            if (opt == 0)
                model_adafactor_update(p, g, st, q.t, 2, (uint64_t)s, lr, &af);
            else
                model_adamw_update(p, g, st, q.t, 2, (uint64_t)s, lr, &aw);
            f = quad_loss_grad(&q, p, g);
        }
        print_message("  %s: loss %.6g -> %.6g after %d steps (ratio %.3g), %zu state floats\n",
                      opt == 0 ? "Adafactor" : "AdamW", f0, f, steps, f / f0, ns);
        assert_true(f < 1e-4 * f0);
        free(st);
    }
    free(g);
    free(p);
    free(q.a);
    free(q.c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optim_adafactor_vector_hand),
        cmocka_unit_test(test_optim_adafactor_matches_paper_reference),
        cmocka_unit_test(test_optim_adafactor_t5x_defaults_large_matrix),
        cmocka_unit_test(test_optim_adafactor_momentum_decay_reference),
        cmocka_unit_test(test_optim_adafactor_factored_choice),
        cmocka_unit_test(test_optim_adafactor_update_clipping),
        cmocka_unit_test(test_optim_adafactor_parameter_scale),
        cmocka_unit_test(test_optim_adafactor_weight_decay),
        cmocka_unit_test(test_optim_adafactor_step_offset),
        cmocka_unit_test(test_optim_layout_stack_and_gaps),
        cmocka_unit_test(test_optim_adamw_hand_two_steps),
        cmocka_unit_test(test_optim_adamw_weight_decay),
        cmocka_unit_test(test_optim_schedules),
        cmocka_unit_test(test_optim_schedule_check_errors),
        cmocka_unit_test(test_optim_clip_global_norm),
        cmocka_unit_test(test_optim_state_size),
        cmocka_unit_test(test_optim_tensors_check_errors),
        cmocka_unit_test(test_optim_cfg_check),
        cmocka_unit_test(test_optim_quadratic_converges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
