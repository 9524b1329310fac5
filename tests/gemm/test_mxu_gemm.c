/* This file implements the tests of the matrix-unit GEMM (sim/mxu_gemm.c): exact mode against
 * an fp64 reference within the per-element bound its summation order implies, a hand-made case
 * that only the systolic order gets right, fast mode against exact mode, shapes 1, 7, 127, 128,
 * 129 and 1000 in each dimension, the four transpose combinations, accumulate-into-C, leading
 * dimensions wider than the rows, NaN and Inf propagation, bf16 operand rounding (and its
 * absence with fp32 operands), the denormal policy, empty dimensions and argument errors.
 *
 * Invariants: the reference multiplies the operands after rounding them with the scalar
 * bf16_round_f32 (not the array path sim_gemm uses) and sums in fp64; the bound checked per
 * element is |C - ref| <= (gamma + gamma_ref) * (sum_k |a_ik b_kj| + (accumulate ? |C_in| :
 * 0)), gamma = sim_gemm_error_gamma (checked against hand-computed n in
 * test_mxu_gemm_error_gamma), gamma_ref = (K + 1) 2^-53 / (1 - (K + 1) 2^-53) for the
 * reference's own rounding. Fast and exact mode may differ by at most the sum of their two
 * bounds. Every comparison prints its largest difference.
 * reference: the error bound of recursive summation, Higham, Accuracy and Stability of
 * Numerical Algorithms, 2nd ed., section 4.2.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/bf16.h"
#include "common/rng.h"
#include "sim/mxu_gemm.h"

/* The NOMEM test asks for petabytes of scratch; under AddressSanitizer that must return NULL
 * instead of aborting. Without ASan this function is never called. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

#define SENTINEL 12345.0f /* in C's padding columns, must survive every call */

static sim_gemm_cfg make_cfg(sim_gemm_mode mode)
{
    sim_gemm_cfg cfg = sim_gemm_cfg_default();
    cfg.mode = mode;
    return cfg;
}

/* Element (r, c) of op(x): x stored with row stride ld, transposed when trans. */
static float op_get(const float *x, size_t ld, int trans, size_t r, size_t c)
{
    return trans ? x[c * ld + r] : x[r * ld + c];
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    assert_non_null(p);
    return p;
}

/* ---- a random problem and its fp64 reference ---------------------------------------- */

typedef struct {
    size_t M, K, N;
    int trans_a, trans_b, accumulate;
    size_t pad; /* extra elements at the end of every stored row of A, B and C */
} gemm_case;

typedef struct {
    gemm_case g;
    size_t lda, ldb, ldc;
    float *A, *B; /* stored operands, uniform in [-1, 1), not yet rounded */
    float *C0;    /* initial C: uniform with accumulate, NaN without; SENTINEL in padding */
    double *ref;  /* M x N: fp64 sum of the bf16-rounded products (+ C0 with accumulate) */
    double *mag;  /* M x N: sum_k |a_ik b_kj| (+ |C0| with accumulate) */
} fixture;

static void fill_stored(rng_state *r, float **out, size_t *ld, size_t rows, size_t cols,
                        size_t pad)
{
    *ld = cols + pad;
    *out = xcalloc(rows * *ld, sizeof(float));
    for (size_t i = 0; i < rows; i++)
        rng_fill_uniform_f32(r, *out + i * *ld, cols, -1.0f, 1.0f);
}

/* x[r][c] = bf16_round_f32(op(src)[r][c]) as a dense rows x cols array of doubles. */
static double *rounded_dense(const float *src, size_t ld, int trans, size_t rows, size_t cols,
                             bf16_denormals pol)
{
    double *x = xcalloc(rows * cols, sizeof(double));
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            x[r * cols + c] = bf16_round_f32(op_get(src, ld, trans, r, c), pol);
    return x;
}

/* ref and mag, summing over k in increasing order for every element (rows of C at a time). */
static void fixture_reference(fixture *f, bf16_denormals pol)
{
    const gemm_case *g = &f->g;
    double *a = rounded_dense(f->A, f->lda, g->trans_a, g->M, g->K, pol);
    double *b = rounded_dense(f->B, f->ldb, g->trans_b, g->K, g->N, pol);
    for (size_t i = 0; i < g->M; i++) {
        double *s = f->ref + i * g->N, *m = f->mag + i * g->N;
        for (size_t j = 0; j < g->N; j++) {
            const double c0 = g->accumulate ? (double)f->C0[i * f->ldc + j] : 0.0;
            s[j] = c0;
            m[j] = fabs(c0);
        }
        for (size_t k = 0; k < g->K; k++) {
            const double aik = a[i * g->K + k];
            for (size_t j = 0; j < g->N; j++) {
                const double p = aik * b[k * g->N + j]; /* exact: bf16 x bf16 */
                s[j] += p;
                m[j] += fabs(p);
            }
        }
    }
    free(a);
    free(b);
}

static void fixture_make(fixture *f, const gemm_case *g, uint64_t seed)
{
    rng_state r;
    rng_seed(&r, seed);
    memset(f, 0, sizeof *f);
    f->g = *g;
    fill_stored(&r, &f->A, &f->lda, g->trans_a ? g->K : g->M, g->trans_a ? g->M : g->K, g->pad);
    fill_stored(&r, &f->B, &f->ldb, g->trans_b ? g->N : g->K, g->trans_b ? g->K : g->N, g->pad);
    fill_stored(&r, &f->C0, &f->ldc, g->M, g->N, g->pad);
    for (size_t i = 0; i < g->M; i++) {
        for (size_t j = 0; j < f->ldc; j++) {
            float *c = &f->C0[i * f->ldc + j];
            if (j >= g->N)
                *c = SENTINEL;
            else if (!g->accumulate)
                *c = NAN; /* must be overwritten, never read */
        }
    }
    f->ref = xcalloc(g->M * g->N, sizeof(double));
    f->mag = xcalloc(g->M * g->N, sizeof(double));
    fixture_reference(f, BF16_DENORMALS_KEEP);
}

static void fixture_free(fixture *f)
{
    free(f->A);
    free(f->B);
    free(f->C0);
    free(f->ref);
    free(f->mag);
}

/* Runs sim_gemm on a copy of C0 and returns it (caller frees); asserts success and that the
 * padding of C is untouched. */
static float *fixture_run(const fixture *f, const sim_gemm_cfg *cfg)
{
    const gemm_case *g = &f->g;
    float *C = xcalloc(g->M * f->ldc, sizeof(float));
    memcpy(C, f->C0, g->M * f->ldc * sizeof(float));
    ss_err err = {0};
    ss_status st = sim_gemm(C, f->ldc, f->A, f->lda, g->trans_a, f->B, f->ldb, g->trans_b, g->M,
                            g->K, g->N, g->accumulate, cfg, &err);
    if (st != SS_OK)
        print_error("sim_gemm failed: %s\n", err.msg);
    assert_int_equal(st, SS_OK);
    for (size_t i = 0; i < g->M; i++)
        for (size_t j = g->N; j < f->ldc; j++)
            assert_true(C[i * f->ldc + j] == SENTINEL);
    return C;
}

static double gamma_ref(size_t K)
{
    const double nu = (double)(K + 1) * 0x1p-53;
    return nu / (1.0 - nu);
}

static const char *case_text(const gemm_case *g, char *buf, size_t n)
{
    snprintf(buf, n, "M=%zu K=%zu N=%zu trans=%d%d acc=%d pad=%zu", g->M, g->K, g->N,
             g->trans_a, g->trans_b, g->accumulate, g->pad);
    return buf;
}

/* Asserts |C - ref| <= (gamma + gamma_ref) * mag for every element; prints the largest
 * absolute error and the largest error as a fraction of its element's bound. */
static void expect_within_bound(const fixture *f, const float *C, double gamma,
                                const char *label)
{
    const gemm_case *g = &f->g;
    const double gam = gamma + gamma_ref(g->K);
    double max_abs = 0.0, max_frac = 0.0;
    size_t bad = 0;
    for (size_t i = 0; i < g->M; i++) {
        for (size_t j = 0; j < g->N; j++) {
            const double e = fabs((double)C[i * f->ldc + j] - f->ref[i * g->N + j]);
            const double bound = gam * f->mag[i * g->N + j];
            if (!(e <= bound)) /* also catches NaN */
                bad++;
            max_abs = fmax(max_abs, e);
            if (bound > 0.0)
                max_frac = fmax(max_frac, e / bound);
        }
    }
    char buf[160];
    print_message("  %-6s %s: max |C - ref| = %.3g, max error / bound = %.3f\n", label,
                  case_text(g, buf, sizeof buf), max_abs, max_frac);
    assert_int_equal(bad, 0);
}

/* Asserts |C1 - C2| <= gamma * mag per element; prints the largest difference. */
static void expect_close(const fixture *f, const float *C1, const float *C2, double gamma,
                         const char *label)
{
    const gemm_case *g = &f->g;
    double max_abs = 0.0;
    size_t bad = 0;
    for (size_t i = 0; i < g->M; i++) {
        for (size_t j = 0; j < g->N; j++) {
            const double d = fabs((double)C1[i * f->ldc + j] - (double)C2[i * f->ldc + j]);
            if (!(d <= gamma * f->mag[i * g->N + j]))
                bad++;
            max_abs = fmax(max_abs, d);
        }
    }
    char buf[160];
    print_message("  %-6s %s: max |fast - exact| = %.3g\n", label, case_text(g, buf, sizeof buf),
                  max_abs);
    assert_int_equal(bad, 0);
}

/* Exact and fast mode on one random problem: each within its bound, and within the sum of
 * both bounds of each other. */
static void check_case(const gemm_case *g, uint64_t seed)
{
    fixture f;
    fixture_make(&f, g, seed);
    const sim_gemm_cfg exact = make_cfg(SIM_GEMM_EXACT), fast = make_cfg(SIM_GEMM_FAST);
    float *ce = fixture_run(&f, &exact);
    float *cf = fixture_run(&f, &fast);
    const double ge = sim_gemm_error_gamma(&exact, g->K), gf = sim_gemm_error_gamma(&fast, g->K);
    expect_within_bound(&f, ce, ge, "exact");
    expect_within_bound(&f, cf, gf, "fast");
    expect_close(&f, cf, ce, ge + gf + 2.0 * gamma_ref(g->K), "f-vs-e");
    free(ce);
    free(cf);
    fixture_free(&f);
}

/* Asserts that two M x N blocks (row strides ldx, ldy) hold the same bits; prints how many
 * elements differ and by how much at most. */
static void expect_bits_equal(const float *x, size_t ldx, const float *y, size_t ldy, size_t M,
                              size_t N, const char *label)
{
    size_t diff = 0;
    double max_abs = 0.0;
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j++) {
            if (memcmp(&x[i * ldx + j], &y[i * ldy + j], sizeof(float)) != 0)
                diff++;
            max_abs = fmax(max_abs, fabs((double)x[i * ldx + j] - (double)y[i * ldy + j]));
        }
    }
    print_message("  %s: %zu elements differ in their bits, max difference %.3g\n", label, diff,
                  max_abs);
    assert_int_equal(diff, 0);
}

/* ---- configuration and names -------------------------------------------------------- */

static void test_mxu_gemm_cfg_and_names(void **state)
{
    (void)state;
    const sim_gemm_cfg d = sim_gemm_cfg_default();
    assert_int_equal(d.mode, SIM_GEMM_EXACT);
    assert_int_equal(d.operands, SIM_OPERANDS_BF16);
    assert_int_equal(d.denormals, BF16_DENORMALS_KEEP);
    assert_int_equal(d.tile_k, 128);
    sim_gemm_mode m = SIM_GEMM_FAST;
    assert_int_equal(sim_gemm_mode_parse("exact", &m), 0);
    assert_int_equal(m, SIM_GEMM_EXACT);
    assert_int_equal(sim_gemm_mode_parse("fast", &m), 0);
    assert_int_equal(m, SIM_GEMM_FAST);
    assert_int_equal(sim_gemm_mode_parse("Exact", &m), -1);
    assert_int_equal(sim_gemm_mode_parse("", &m), -1);
    assert_int_equal(m, SIM_GEMM_FAST); /* untouched on failure */
    assert_string_equal(sim_gemm_mode_name(SIM_GEMM_EXACT), "exact");
    assert_string_equal(sim_gemm_mode_name(SIM_GEMM_FAST), "fast");
    assert_string_equal(sim_gemm_mode_name((sim_gemm_mode)7), "invalid");
}

/* n = (min(tile_k, K) - 1) + ceil(K / tile_k) (exact), K (fast), +1 with fp32 operands. */
static void test_mxu_gemm_error_gamma(void **state)
{
    (void)state;
    const struct {
        sim_gemm_mode mode;
        sim_operands ops;
        int tile_k;
        size_t K;
        double n;
    } cases[] = {
        {SIM_GEMM_EXACT, SIM_OPERANDS_BF16, 128, 1000, 127 + 8},
        {SIM_GEMM_EXACT, SIM_OPERANDS_BF16, 128, 128, 127 + 1},
        {SIM_GEMM_EXACT, SIM_OPERANDS_BF16, 128, 129, 127 + 2},
        {SIM_GEMM_EXACT, SIM_OPERANDS_BF16, 128, 100, 99 + 1},
        {SIM_GEMM_EXACT, SIM_OPERANDS_BF16, 128, 1, 0 + 1},
        {SIM_GEMM_EXACT, SIM_OPERANDS_F32, 128, 1000, 127 + 8 + 1},
        {SIM_GEMM_EXACT, SIM_OPERANDS_BF16, 4, 10, 3 + 3},
        {SIM_GEMM_FAST, SIM_OPERANDS_BF16, 128, 1000, 1000},
        {SIM_GEMM_FAST, SIM_OPERANDS_F32, 128, 1000, 1001},
        {SIM_GEMM_EXACT, SIM_OPERANDS_BF16, 128, 0, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sim_gemm_cfg cfg = make_cfg(cases[c].mode);
        cfg.operands = cases[c].ops;
        cfg.tile_k = cases[c].tile_k;
        const double nu = cases[c].n * 0x1p-24;
        const double want = nu / (1.0 - nu);
        const double got = sim_gemm_error_gamma(&cfg, cases[c].K);
        if (got != want)
            print_error("case %zu: gamma %.17g, want %.17g (n = %g)\n", c, got, want,
                        cases[c].n);
        assert_true(got == want);
    }
    sim_gemm_cfg fast = make_cfg(SIM_GEMM_FAST);
    assert_true(isinf(sim_gemm_error_gamma(&fast, (size_t)1 << 24)));
}

/* ---- accuracy over shapes ----------------------------------------------------------- */

static const size_t sweep_sizes[] = {1, 7, 127, 128, 129, 1000};

/* Each of M, K, N over the sweep sizes with the other two small. */
static void test_mxu_gemm_shapes_sweep(void **state)
{
    (void)state;
    const size_t small[3] = {5, 33, 19}; /* M, K, N when not swept */
    uint64_t seed = 100;
    for (int dim = 0; dim < 3; dim++) {
        for (size_t s = 0; s < sizeof sweep_sizes / sizeof sweep_sizes[0]; s++) {
            size_t d[3] = {small[0], small[1], small[2]};
            d[dim] = sweep_sizes[s];
            const gemm_case g = {d[0], d[1], d[2], 0, 0, 0, 0};
            check_case(&g, seed++);
        }
    }
}

/* A few larger combinations, with tile edges in K and panel edges in N. */
static void test_mxu_gemm_shapes_large(void **state)
{
    (void)state;
    const gemm_case cases[] = {
        {129, 1000, 129, 0, 0, 0, 0},
        {128, 129, 127, 0, 0, 0, 0},
        {1000, 128, 7, 0, 0, 0, 0},
        {7, 1000, 1000, 0, 0, 0, 0},
        {200, 384, 300, 1, 0, 1, 3},
        {1000, 1000, 1000, 0, 1, 1, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        check_case(&cases[c], 200 + c);
}

/* ---- layouts ------------------------------------------------------------------------ */

/* Stores the logical M x K matrix x (row-major, dense) as op^-1: K x M when trans. */
static float *store(const float *x, size_t rows, size_t cols, int trans, size_t ld)
{
    float *s = xcalloc((trans ? cols : rows) * ld, sizeof(float));
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            s[trans ? c * ld + r : r * ld + c] = x[r * cols + c];
    return s;
}

/* All four transpose combinations: each within bound (exact and fast), and exact mode gives
 * the same bits for the same logical matrices whatever their storage. */
static void test_mxu_gemm_transposes(void **state)
{
    (void)state;
    const size_t M = 37, K = 300, N = 70;
    float *first = NULL;
    for (int ta = 0; ta <= 1; ta++) {
        for (int tb = 0; tb <= 1; tb++) {
            const gemm_case g = {M, K, N, ta, tb, 0, 0};
            check_case(&g, 300 + (uint64_t)(2 * ta + tb));
            /* same logical A and B, stored four ways */
            rng_state r;
            rng_seed(&r, 399);
            float *a = xcalloc(M * K, sizeof(float)), *b = xcalloc(K * N, sizeof(float));
            rng_fill_uniform_f32(&r, a, M * K, -1.0f, 1.0f);
            rng_fill_uniform_f32(&r, b, K * N, -1.0f, 1.0f);
            const size_t lda = (ta ? M : K) + 2, ldb = (tb ? K : N) + 1;
            float *sa = store(a, M, K, ta, lda), *sb = store(b, K, N, tb, ldb);
            float *C = xcalloc(M * N, sizeof(float));
            const sim_gemm_cfg cfg = make_cfg(SIM_GEMM_EXACT);
            assert_int_equal(sim_gemm(C, N, sa, lda, ta, sb, ldb, tb, M, K, N, 0, &cfg, NULL),
                             SS_OK);
            if (!first)
                first = C;
            else {
                char label[64];
                snprintf(label, sizeof label, "exact trans=%d%d vs trans=00", ta, tb);
                expect_bits_equal(C, N, first, N, M, N, label);
                free(C);
            }
            free(a);
            free(b);
            free(sa);
            free(sb);
        }
    }
    free(first);
}

/* Accumulate into C (bound includes |C_in|); without accumulate a NaN-filled C is ignored
 * (fixture_make fills C with NaN then). */
static void test_mxu_gemm_accumulate(void **state)
{
    (void)state;
    const gemm_case with = {31, 300, 45, 0, 0, 1, 0};
    const gemm_case without = {31, 300, 45, 0, 0, 0, 0};
    check_case(&with, 400);
    check_case(&without, 401);
    /* accumulate adds exactly what a zero-initialised call computes when C_in is 0 */
    fixture f;
    fixture_make(&f, &with, 402);
    memset(f.C0, 0, with.M * f.ldc * sizeof(float));
    const sim_gemm_cfg cfg = make_cfg(SIM_GEMM_EXACT);
    float *acc = fixture_run(&f, &cfg);
    f.g.accumulate = 0;
    float *fresh = fixture_run(&f, &cfg);
    expect_bits_equal(acc, f.ldc, fresh, f.ldc, with.M, with.N, "accumulate onto 0 vs overwrite");
    free(acc);
    free(fresh);
    fixture_free(&f);
}

/* Leading dimensions wider than the rows: padding untouched (fixture_run) and the same bits
 * as the dense layout. */
static void test_mxu_gemm_leading_dims(void **state)
{
    (void)state;
    for (int ta = 0; ta <= 1; ta++) {
        const gemm_case padded = {21, 150, 67, ta, !ta, 1, 5};
        check_case(&padded, 500 + (uint64_t)ta);
    }
    const size_t M = 9, K = 140, N = 20, pad = 7;
    rng_state r;
    rng_seed(&r, 510);
    float *a = xcalloc(M * K, sizeof(float)), *b = xcalloc(K * N, sizeof(float));
    rng_fill_uniform_f32(&r, a, M * K, -1.0f, 1.0f);
    rng_fill_uniform_f32(&r, b, K * N, -1.0f, 1.0f);
    float *sa = store(a, M, K, 0, K + pad), *sb = store(b, K, N, 0, N + pad);
    float *dense = xcalloc(M * N, sizeof(float)), *wide = xcalloc(M * (N + pad), sizeof(float));
    const sim_gemm_cfg cfg = make_cfg(SIM_GEMM_EXACT);
    assert_int_equal(sim_gemm(dense, N, a, K, 0, b, N, 0, M, K, N, 0, &cfg, NULL), SS_OK);
    assert_int_equal(
        sim_gemm(wide, N + pad, sa, K + pad, 0, sb, N + pad, 0, M, K, N, 0, &cfg, NULL), SS_OK);
    expect_bits_equal(wide, N + pad, dense, N, M, N, "lda/ldb/ldc padded vs dense");
    free(a);
    free(b);
    free(sa);
    free(sb);
    free(dense);
    free(wide);
}

/* ---- the summation order ------------------------------------------------------------ */

static float sum_left_to_right(const float *p, size_t n)
{
    float s = 0.0f;
    for (size_t k = 0; k < n; k++)
        s = s + p[k];
    return s;
}

static float sum_pairwise(const float *p, size_t n)
{
    if (n == 1)
        return p[0];
    return sum_pairwise(p, n / 2) + sum_pairwise(p + n / 2, n - n / 2);
}

/* Products over K = 132 (tiles [0, 128) and [128, 132)): p0 = 1; p128..p131 = 2^24, 1, 1,
 * -2^24; all others 0. Exact sum 3.
 *   systolic, tile_k = 128: tile 1 sums to 1; tile 2: 2^24 + 1 = 2^24 (tie to even), + 1 =
 *     2^24, - 2^24 = 0; acc = 0 + 1 + 0 = 1.
 *   left to right over all K (= one tile of 256, or tiles of 1 product each): 1 + 2^24 =
 *     2^24 (tie), ... -> 0.
 *   pairwise: (p127 + p128) + (p129 + (p130 + p131)) = 2^24 - (2^24 - 2) = 2 -> 3.
 * Operands a = p / 2, b = 2 (both bf16), so the products are exact. */
static void test_mxu_gemm_systolic_order(void **state)
{
    (void)state;
    enum { K = 132, M = 3, N = 21 };
    float p[K] = {0};
    p[0] = 1.0f;
    p[128] = 0x1p24f;
    p[129] = 1.0f;
    p[130] = 1.0f;
    p[131] = -0x1p24f;
    const float naive = sum_left_to_right(p, K), pairwise = sum_pairwise(p, K);
    print_message("  left-to-right %g, pairwise %g, systolic expected 1, exact 3\n", naive,
                  pairwise);
    assert_true(naive == 0.0f);    /* another order would give another answer */
    assert_true(pairwise == 3.0f);

    static float A[M * K], B[K * N], C[M * N];
    for (size_t i = 0; i < M; i++) /* row i scaled by 2^i: exact, result 2^i */
        for (size_t k = 0; k < K; k++)
            A[i * K + k] = ldexpf(p[k] / 2.0f, (int)i);
    for (size_t k = 0; k < K; k++)
        for (size_t j = 0; j < N; j++)
            B[k * N + j] = 2.0f;
    const struct {
        int tile_k;
        float want;
    } runs[] = {{128, 1.0f}, {256, 0.0f}, {4, 1.0f}, {1, 0.0f}};
    for (size_t t = 0; t < sizeof runs / sizeof runs[0]; t++) {
        sim_gemm_cfg cfg = make_cfg(SIM_GEMM_EXACT);
        cfg.tile_k = runs[t].tile_k;
        assert_int_equal(sim_gemm(C, N, A, K, 0, B, N, 0, M, K, N, 0, &cfg, NULL), SS_OK);
        double max_diff = 0.0;
        for (size_t i = 0; i < M; i++)
            for (size_t j = 0; j < N; j++)
                max_diff = fmax(max_diff, fabs(C[i * N + j] - ldexpf(runs[t].want, (int)i)));
        print_message("  tile_k = %d: expected %g, max difference %g\n", runs[t].tile_k,
                      runs[t].want, max_diff);
        assert_true(max_diff == 0.0);
    }
}

/* With fp32 operands each product is rounded before the add: p0 = -1, p1 = (1 + 2^-12)^2 =
 * 1 + 2^-11 + 2^-24, which rounds to 1 + 2^-11 (tie to even); s = 2^-11. A fused multiply-add
 * would give 2^-11 + 2^-24. With bf16 operands 1 + 2^-12 rounds to 1 and C = 0. */
static void test_mxu_gemm_f32_products_rounded(void **state)
{
    (void)state;
    const float x = 1.0f + 0x1p-12f;
    const float A[2] = {-1.0f, x}, B[2] = {1.0f, x};
    sim_gemm_cfg cfg = make_cfg(SIM_GEMM_EXACT);
    cfg.operands = SIM_OPERANDS_F32;
    float C = 99.0f;
    assert_int_equal(sim_gemm(&C, 1, A, 2, 0, B, 1, 0, 1, 2, 1, 0, &cfg, NULL), SS_OK);
    print_message("  fp32 operands: C = %a (want %a; fused would give %a)\n", C, 0x1p-11,
                  0x1p-11 + 0x1p-24);
    assert_true(C == 0x1p-11f);
    cfg.operands = SIM_OPERANDS_BF16;
    assert_int_equal(sim_gemm(&C, 1, A, 2, 0, B, 1, 0, 1, 2, 1, 0, &cfg, NULL), SS_OK);
    assert_true(C == 0.0f);
}

/* ---- special values ----------------------------------------------------------------- */

/* Runs one mode on A (M x K) and B (K x N), dense, no accumulate. */
static void run_dense(float *C, const float *A, const float *B, size_t M, size_t K, size_t N,
                      const sim_gemm_cfg *cfg)
{
    ss_err err = {0};
    ss_status st = sim_gemm(C, N, A, K, 0, B, N, 0, M, K, N, 0, cfg, &err);
    if (st != SS_OK)
        print_error("%s\n", err.msg);
    assert_int_equal(st, SS_OK);
}

/* A NaN in A[2][5] makes row 2 of C NaN and nothing else; an Inf in B[7][3] makes column 3
 * +-Inf (sign of A[i][7]) except where A[i][7] = 0, which gives Inf * 0 = NaN. */
static void test_mxu_gemm_nan_inf(void **state)
{
    (void)state;
    enum { M = 9, K = 200, N = 70 };
    static float A[M * K], B[K * N], C[M * N];
    rng_state r;
    rng_seed(&r, 600);
    rng_fill_uniform_f32(&r, A, M * K, -1.0f, 1.0f);
    rng_fill_uniform_f32(&r, B, K * N, -1.0f, 1.0f);
    for (size_t i = 0; i < M; i++) /* A[i][7] nonzero, bf16-exact, sign alternating */
        A[i * K + 7] = (i % 2) ? -0.5f : 0.75f;
    A[2 * K + 5] = NAN;
    A[4 * K + 7] = 0.0f;
    B[7 * N + 3] = INFINITY;
    for (int mode = SIM_GEMM_EXACT; mode <= SIM_GEMM_FAST; mode++) {
        const sim_gemm_cfg cfg = make_cfg((sim_gemm_mode)mode);
        run_dense(C, A, B, M, K, N, &cfg);
        size_t wrong = 0, nans = 0, infs = 0;
        for (size_t i = 0; i < M; i++) {
            for (size_t j = 0; j < N; j++) {
                const float c = C[i * N + j];
                int ok;
                if (i == 2 || (i == 4 && j == 3))
                    ok = isnan(c);
                else if (j == 3)
                    ok = isinf(c) && (c > 0) == (A[i * K + 7] > 0);
                else
                    ok = isfinite(c);
                wrong += !ok;
                nans += isnan(c) != 0;
                infs += isinf(c) != 0;
            }
        }
        print_message("  %s: %zu NaN (want %d), %zu Inf (want %d), %zu wrong\n",
                      sim_gemm_mode_name(cfg.mode), nans, N + 1, infs, M - 2, wrong);
        assert_int_equal(wrong, 0);
    }
}

/* ---- operand rounding --------------------------------------------------------------- */

/* K = 1, B = 1: C = the operand as the GEMM saw it. */
static float gemm_one(float a, float b, const sim_gemm_cfg *cfg)
{
    float C = 0.0f;
    run_dense(&C, &a, &b, 1, 1, 1, cfg);
    return C;
}

static void test_mxu_gemm_bf16_operands_rounded(void **state)
{
    (void)state;
    const struct {
        float in, bf16;
    } cases[] = {
        {1.0f + 0x1p-10f, 1.0f},                 /* low bits dropped */
        {1.0f + 0x1p-8f, 1.0f},                  /* tie to even, down */
        {1.0f + 0x1p-8f + 0x1p-20f, 1.0f + 0x1p-7f}, /* above the tie, up */
        {-(1.0f + 3 * 0x1p-8f), -(1.0f + 0x1p-6f)},  /* tie to even, up */
    };
    for (int mode = SIM_GEMM_EXACT; mode <= SIM_GEMM_FAST; mode++) {
        sim_gemm_cfg cfg = make_cfg((sim_gemm_mode)mode);
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            cfg.operands = SIM_OPERANDS_BF16;
            const float ca = gemm_one(cases[c].in, 1.0f, &cfg); /* rounding of A */
            const float cb = gemm_one(1.0f, cases[c].in, &cfg); /* rounding of B */
            cfg.operands = SIM_OPERANDS_F32;
            const float cf = gemm_one(cases[c].in, 1.0f, &cfg);
            print_message("  %s: %a -> bf16 %a / %a, fp32 operands %a\n",
                          sim_gemm_mode_name(cfg.mode), cases[c].in, ca, cb, cf);
            assert_true(ca == cases[c].bf16);
            assert_true(cb == cases[c].bf16);
            assert_true(cf == cases[c].in);
        }
    }
}

/* 2^-130 is an fp32 (and bf16) denormal: kept, it times 2^100 gives 2^-30; flushed, 0. fp32
 * operands are not rounded, so the policy does not apply to them. */
static void test_mxu_gemm_denormal_policy(void **state)
{
    (void)state;
    const float tiny = 0x1p-130f, big = 0x1p100f;
    for (int mode = SIM_GEMM_EXACT; mode <= SIM_GEMM_FAST; mode++) {
        sim_gemm_cfg cfg = make_cfg((sim_gemm_mode)mode);
        cfg.denormals = BF16_DENORMALS_KEEP;
        const float keep_a = gemm_one(tiny, big, &cfg), keep_b = gemm_one(big, -tiny, &cfg);
        cfg.denormals = BF16_DENORMALS_FLUSH;
        const float flush_a = gemm_one(tiny, big, &cfg), flush_b = gemm_one(big, -tiny, &cfg);
        cfg.operands = SIM_OPERANDS_F32;
        const float f32 = gemm_one(tiny, big, &cfg);
        print_message("  %s: keep %a %a, flush %a %a, fp32 operands under flush %a\n",
                      sim_gemm_mode_name(cfg.mode), keep_a, keep_b, flush_a, flush_b, f32);
        assert_true(keep_a == 0x1p-30f);
        assert_true(keep_b == -0x1p-30f);
        assert_true(flush_a == 0.0f);
        assert_true(flush_b == 0.0f);
        assert_true(f32 == 0x1p-30f);
    }
}

/* ---- sizes and errors --------------------------------------------------------------- */

/* M = 0 or N = 0: C untouched (NULL operands allowed); K = 0: C = 0, or unchanged with
 * accumulate. */
static void test_mxu_gemm_empty_dims(void **state)
{
    (void)state;
    for (int mode = SIM_GEMM_EXACT; mode <= SIM_GEMM_FAST; mode++) {
        const sim_gemm_cfg cfg = make_cfg((sim_gemm_mode)mode);
        float C[6] = {1, 2, 3, 4, 5, 6};
        const float A[6] = {1, 1, 1, 1, 1, 1};
        assert_int_equal(sim_gemm(C, 3, NULL, 5, 0, A, 3, 0, 0, 5, 3, 0, &cfg, NULL), SS_OK);
        assert_int_equal(sim_gemm(C, 0, A, 5, 0, NULL, 0, 0, 2, 5, 0, 0, &cfg, NULL), SS_OK);
        assert_int_equal(sim_gemm(NULL, 3, NULL, 5, 0, NULL, 3, 0, 0, 5, 0, 0, &cfg, NULL),
                         SS_OK);
        assert_true(C[0] == 1 && C[5] == 6);
        assert_int_equal(sim_gemm(C, 3, NULL, 0, 0, NULL, 3, 0, 2, 0, 3, 1, &cfg, NULL), SS_OK);
        assert_true(C[0] == 1 && C[5] == 6);
        C[4] = NAN;
        assert_int_equal(sim_gemm(C, 3, NULL, 0, 0, NULL, 3, 0, 2, 0, 3, 0, &cfg, NULL), SS_OK);
        for (int i = 0; i < 6; i++)
            assert_true(C[i] == 0.0f);
    }
}

/* Calls sim_gemm expecting code and a message containing needle; C must be unchanged. */
static void expect_error(ss_status code, const char *needle, size_t ldc, const float *A,
                         size_t lda, int ta, const float *B, size_t ldb, int tb, size_t M,
                         size_t K, size_t N, const sim_gemm_cfg *cfg)
{
    float C[64], before[64];
    for (int i = 0; i < 64; i++)
        C[i] = before[i] = (float)i + 0.5f;
    ss_err err = {0};
    ss_status st = sim_gemm(C, ldc, A, lda, ta, B, ldb, tb, M, K, N, 0, cfg, &err);
    print_message("  -> %s: %s\n", ss_status_name(st), err.msg);
    assert_int_equal(st, code);
    assert_non_null(strstr(err.msg, needle));
    assert_memory_equal(C, before, sizeof C);
}

static void test_mxu_gemm_bad_args(void **state)
{
    (void)state;
    static const float X[64];
    const sim_gemm_cfg exact = make_cfg(SIM_GEMM_EXACT), fast = make_cfg(SIM_GEMM_FAST);
    /* strides shorter than a stored row */
    expect_error(SS_ERR_RANGE, "lda = 3", 4, X, 3, 0, X, 4, 0, 2, 4, 4, &exact);
    expect_error(SS_ERR_RANGE, "lda = 1", 4, X, 1, 1, X, 4, 0, 2, 4, 4, &exact);
    expect_error(SS_ERR_RANGE, "ldb = 3", 4, X, 4, 0, X, 3, 0, 2, 4, 4, &exact);
    expect_error(SS_ERR_RANGE, "ldb = 3", 4, X, 4, 0, X, 3, 1, 2, 4, 4, &exact);
    expect_error(SS_ERR_RANGE, "ldc = 3", 3, X, 4, 0, X, 4, 0, 2, 4, 4, &fast);
    /* missing operands */
    expect_error(SS_ERR_RANGE, "A is NULL", 4, NULL, 4, 0, X, 4, 0, 2, 4, 4, &exact);
    expect_error(SS_ERR_RANGE, "B is NULL", 4, X, 4, 0, NULL, 4, 0, 2, 4, 4, &fast);
    /* extents beyond the address space */
    expect_error(SS_ERR_RANGE, "spans more bytes", 4, X, SIZE_MAX / 2, 0, X, 4, 0, 4, 4, 4,
                 &exact);
    /* configuration */
    expect_error(SS_ERR_RANGE, "cfg is NULL", 4, X, 4, 0, X, 4, 0, 2, 4, 4, NULL);
    sim_gemm_cfg bad = exact;
    bad.tile_k = 0;
    expect_error(SS_ERR_RANGE, "tile_k = 0", 4, X, 4, 0, X, 4, 0, 2, 4, 4, &bad);
    bad = exact;
    bad.mode = (sim_gemm_mode)5;
    expect_error(SS_ERR_RANGE, "unknown mode", 4, X, 4, 0, X, 4, 0, 2, 4, 4, &bad);
    bad = exact;
    bad.operands = (sim_operands)5;
    expect_error(SS_ERR_RANGE, "operand type", 4, X, 4, 0, X, 4, 0, 2, 4, 4, &bad);
    bad = exact;
    bad.denormals = (bf16_denormals)5;
    expect_error(SS_ERR_RANGE, "denormal policy", 4, X, 4, 0, X, 4, 0, 2, 4, 4, &bad);
    /* BLAS int range (fast mode only); nothing is read before the check */
    const size_t big = (size_t)INT_MAX + 1;
    expect_error(SS_ERR_RANGE, "BLAS int", 1, X, 1, 0, X, 1, 0, big, 1, 1, &fast);
}

/* 2^24 x 2^24 operands need 2^50 bytes of scratch: SS_ERR_NOMEM, C untouched, nothing read. */
static void test_mxu_gemm_nomem(void **state)
{
    (void)state;
    static const float X[64];
    const size_t huge = (size_t)1 << 24;
    for (int mode = SIM_GEMM_EXACT; mode <= SIM_GEMM_FAST; mode++) {
        const sim_gemm_cfg cfg = make_cfg((sim_gemm_mode)mode);
        expect_error(SS_ERR_NOMEM, "cannot allocate", 1, X, huge, 0, X, 1, 0, huge, huge, 1,
                     &cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mxu_gemm_cfg_and_names),
        cmocka_unit_test(test_mxu_gemm_error_gamma),
        cmocka_unit_test(test_mxu_gemm_systolic_order),
        cmocka_unit_test(test_mxu_gemm_f32_products_rounded),
        cmocka_unit_test(test_mxu_gemm_bf16_operands_rounded),
        cmocka_unit_test(test_mxu_gemm_denormal_policy),
        cmocka_unit_test(test_mxu_gemm_nan_inf),
        cmocka_unit_test(test_mxu_gemm_empty_dims),
        cmocka_unit_test(test_mxu_gemm_bad_args),
        cmocka_unit_test(test_mxu_gemm_nomem),
        cmocka_unit_test(test_mxu_gemm_shapes_sweep),
        cmocka_unit_test(test_mxu_gemm_shapes_large),
        cmocka_unit_test(test_mxu_gemm_transposes),
        cmocka_unit_test(test_mxu_gemm_accumulate),
        cmocka_unit_test(test_mxu_gemm_leading_dims),
    };
    return cmocka_run_group_tests_name("mxu_gemm", tests, NULL, NULL);
}
