/* This file implements the matrix-unit GEMM of mxu_gemm.h: C(MxN) (+)= op(A)(MxK) * op(B)(KxN)
 * with operands rounded to bf16 (or kept in fp32) and fp32 accumulation, either in the fixed
 * summation order of a weight-stationary systolic array (SIM_GEMM_EXACT) or by cblas_sgemm on
 * the widened operands (SIM_GEMM_FAST).
 *
 * Summation order of SIM_GEMM_EXACT. The MXU holds a weight tile of tile_k rows of op(B);
 * partial sums flow down the rows of the tile, one add per row, and leave the bottom of the
 * array into an fp32 accumulator. For every output element (i, j):
 *
 *     acc = accumulate ? C[i][j] : +0.0f
 *     for each K tile [k0, k1), k0 = 0, tile_k, 2*tile_k, ... (the last one may be short):
 *         s = +0.0f
 *         for k = k0, k0+1, ..., k1-1:
 *             p = a[i][k] * b[k][j]     exact in fp32 for bf16 operands (8-bit significands,
 *                                       barring underflow); with SIM_OPERANDS_F32 the product
 *                                       is rounded to fp32 before the add
 *             s = s + p                 rounded to fp32
 *         acc = acc + s                 rounded to fp32
 *     C[i][j] = acc
 *
 * No multiply-add is fused: the build passes -ffp-contract=off (meson.build), and `p` and the
 * add are separate statements; with fp32 operands a fused add would skip the product's
 * rounding, which test_mxu_gemm_f32_products_rounded detects.
 *
 * Error bound. Every product of element (i, j) passes through at most (min(tile_k, K) - 1)
 * rounded adds inside its tile and ceil(K / tile_k) adds into the accumulator, so by the
 * standard analysis of recursive summation (Higham, Accuracy and Stability of Numerical
 * Algorithms, 2nd ed., section 4.2)
 *     |C[i][j] - exact| <= gamma_n * (sum_k |a[i][k] b[k][j]| + (accumulate ? |C_in[i][j]| : 0))
 * with n = (min(tile_k, K) - 1) + ceil(K / tile_k), gamma_n = n u / (1 - n u), u = 2^-24, and
 * n one larger with fp32 operands (the product rounding). In fast mode the order is OpenBLAS's;
 * any summation order of K products plus C has at most K adds on a product's path, so n = K
 * (+1 for fp32 operands). "exact" is the exact sum of the operands after rounding to bf16.
 *
 * How the order is kept while vectorising: the operands are first packed into scratch (op(A)
 * as M x K rows padded to a multiple of RB rows, op(B) as panels of K x NB columns padded with
 * zeros) and rounded to bf16 row by row as they are copied. For a block of RB rows and one
 * panel, the kernel keeps RB x NB partial sums `s` in vector registers, runs k through one
 * tile in increasing order and adds the tile's sums into the block's accumulators, tile after
 * tile. Elements of a row are independent, so vectorising across N changes no element's order.
 * Padding rows and columns are computed and discarded.
 *
 * Sizes: M, K and N may be 0. M = 0 or N = 0 leaves C untouched; K = 0 is an empty sum, so C
 * becomes zero (or stays as it is with accumulate), as in BLAS. All arguments are checked
 * before anything is allocated or written, so an error leaves C untouched. Operands are copied
 * before C is written. Exact mode runs on one thread; fast mode on OpenBLAS's threads.
 *
 * reference: REFERENCE.md sections 6 (MXU: 128x128 bf16 x bf16 -> fp32) and 7 (numerics).
 */
#include "sim/mxu_gemm.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

enum {
    RB = 4,        /* output rows per exact-mode block */
    VW = 16,       /* fp32 lanes per vector */
    NV = 4,        /* vectors per block row */
    NB = VW * NV,  /* output columns per panel */
    ALIGN = 64     /* scratch alignment, bytes */
};

typedef float vf16 __attribute__((vector_size(VW * sizeof(float))));

sim_gemm_cfg sim_gemm_cfg_default(void)
{
    sim_gemm_cfg cfg = {
        .mode = SIM_GEMM_EXACT,
        .operands = SIM_OPERANDS_BF16,
        .denormals = BF16_DENORMALS_KEEP,
        .tile_k = 128,
    };
    return cfg;
}

int sim_gemm_mode_parse(const char *s, sim_gemm_mode *out)
{
    if (strcmp(s, "exact") == 0)
        *out = SIM_GEMM_EXACT;
    else if (strcmp(s, "fast") == 0)
        *out = SIM_GEMM_FAST;
    else
        return -1;
    return 0;
}

const char *sim_gemm_mode_name(sim_gemm_mode mode)
{
    switch (mode) {
    case SIM_GEMM_EXACT: return "exact";
    case SIM_GEMM_FAST: return "fast";
    }
    return "invalid";
}

double sim_gemm_error_gamma(const sim_gemm_cfg *cfg, size_t K)
{
    SS_ASSERT(cfg->tile_k >= 1);
    if (K == 0)
        return 0.0;
    double n;
    if (cfg->mode == SIM_GEMM_EXACT) {
        const size_t tile = (size_t)cfg->tile_k;
        n = (double)((K < tile ? K : tile) - 1) + (double)(K / tile + (K % tile != 0));
    } else {
        n = (double)K;
    }
    if (cfg->operands == SIM_OPERANDS_F32)
        n += 1.0;
    const double nu = n * 0x1p-24;
    return nu < 1.0 ? nu / (1.0 - nu) : INFINITY;
}

/* ---- argument checks ---------------------------------------------------------------- */

/* A stored matrix of rows x cols elements with row stride ld: ld must cover a row, the
 * pointer must be given when there is anything to read, and its extent in bytes must fit in
 * size_t. */
static ss_status check_matrix(const char *name, const float *x, size_t ld, const char *ld_name,
                              size_t rows, size_t cols, const char *layout, ss_err *err)
{
    if (ld < cols)
        return ss_err_set(err, SS_ERR_RANGE,
                          "sim_gemm: %s = %zu is less than the %zu columns of %s stored %s",
                          ld_name, ld, cols, name, layout);
    if (rows == 0 || cols == 0)
        return SS_OK;
    if (!x)
        return ss_err_set(err, SS_ERR_RANGE, "sim_gemm: %s is NULL but holds %zu x %zu elements",
                          name, rows, cols);
    size_t extent;
    if (ss_mul_size(rows - 1, ld, &extent) != 0 || extent > SIZE_MAX / sizeof(float) - cols)
        return ss_err_set(err, SS_ERR_RANGE,
                          "sim_gemm: %s (%zu rows, %s = %zu) spans more bytes than size_t holds",
                          name, rows, ld_name, ld);
    return SS_OK;
}

static ss_status check_cfg(const sim_gemm_cfg *cfg, ss_err *err)
{
    if (!cfg)
        return ss_err_set(err, SS_ERR_RANGE, "sim_gemm: cfg is NULL");
    if (cfg->mode != SIM_GEMM_EXACT && cfg->mode != SIM_GEMM_FAST)
        return ss_err_set(err, SS_ERR_RANGE, "sim_gemm: unknown mode %d", (int)cfg->mode);
    if (cfg->operands != SIM_OPERANDS_BF16 && cfg->operands != SIM_OPERANDS_F32)
        return ss_err_set(err, SS_ERR_RANGE, "sim_gemm: unknown operand type %d",
                          (int)cfg->operands);
    if (cfg->denormals != BF16_DENORMALS_KEEP && cfg->denormals != BF16_DENORMALS_FLUSH)
        return ss_err_set(err, SS_ERR_RANGE, "sim_gemm: unknown denormal policy %d",
                          (int)cfg->denormals);
    if (cfg->tile_k < 1)
        return ss_err_set(err, SS_ERR_RANGE, "sim_gemm: tile_k = %d, must be >= 1", cfg->tile_k);
    return SS_OK;
}

/* cblas_sgemm takes int sizes and strides. */
static ss_status check_blas_range(size_t M, size_t K, size_t N, size_t ldc, ss_err *err)
{
    const size_t lim = (size_t)INT_MAX;
    if (M > lim || K > lim || N > lim || ldc > lim)
        return ss_err_set(err, SS_ERR_RANGE,
                          "sim_gemm: fast mode needs M, K, N and ldc <= %d (BLAS int), got "
                          "M = %zu, K = %zu, N = %zu, ldc = %zu",
                          INT_MAX, M, K, N, ldc);
    return SS_OK;
}

static ss_status check_args(const float *C, size_t ldc, const float *A, size_t lda, int trans_a,
                            const float *B, size_t ldb, int trans_b, size_t M, size_t K,
                            size_t N, const sim_gemm_cfg *cfg, ss_err *err)
{
    ss_status st = check_cfg(cfg, err);
    if (st == SS_OK)
        st = trans_a ? check_matrix("A", A, lda, "lda", K, M, "K x M (trans_a)", err)
                     : check_matrix("A", A, lda, "lda", M, K, "M x K", err);
    if (st == SS_OK)
        st = trans_b ? check_matrix("B", B, ldb, "ldb", N, K, "N x K (trans_b)", err)
                     : check_matrix("B", B, ldb, "ldb", K, N, "K x N", err);
    if (st == SS_OK)
        st = check_matrix("C", C, ldc, "ldc", M, N, "M x N", err);
    if (st == SS_OK && cfg->mode == SIM_GEMM_FAST)
        st = check_blas_range(M, K, N, ldc, err);
    return st;
}

/* ---- scratch and packing ------------------------------------------------------------ */

/* ALIGN-aligned space for rows x cols floats, zeroed when zero is set; what names it in the
 * error. */
static ss_status scratch_alloc(float **out, size_t rows, size_t cols, int zero, const char *what,
                               ss_err *err)
{
    size_t n, bytes;
    *out = NULL;
    if (ss_mul_size(rows, cols, &n) != 0 || ss_mul_size(n, sizeof(float), &bytes) != 0 ||
        bytes > SIZE_MAX - ALIGN)
        return ss_err_set(err, SS_ERR_NOMEM,
                          "sim_gemm: scratch for %s (%zu x %zu floats) overflows size_t", what,
                          rows, cols);
    bytes = (bytes + ALIGN - 1) / ALIGN * ALIGN;
    *out = aligned_alloc(ALIGN, bytes);
    if (!*out)
        return ss_err_set(err, SS_ERR_NOMEM,
                          "sim_gemm: cannot allocate %zu bytes of scratch for %s (%zu x %zu "
                          "floats)",
                          bytes, what, rows, cols);
    if (zero)
        memset(*out, 0, bytes);
    return SS_OK;
}

/* Rounds n packed operands to bf16 (SIM_OPERANDS_BF16) or leaves them as they are. */
static void round_operands(float *x, size_t n, const sim_gemm_cfg *cfg)
{
    if (cfg->operands == SIM_OPERANDS_BF16)
        bf16_round_f32_array(x, n, cfg->denormals);
}

enum { TBLOCK = 32 }; /* source rows read together by the transposing copy */

/* dst[r][c] = round(op(src)[r][c]) for r < rows, c < cols, where op(src)[r][c] is src[r][c],
 * or src[c][r] when trans; dst and src rows are dst_ld and src_ld floats apart. Each row is
 * rounded while it is still in cache; other elements of dst are left alone. */
static void pack(float *dst, size_t dst_ld, const float *src, size_t src_ld, int trans,
                 size_t rows, size_t cols, const sim_gemm_cfg *cfg)
{
    if (!trans) {
        for (size_t r = 0; r < rows; r++) {
            memcpy(dst + r * dst_ld, src + r * src_ld, cols * sizeof(float));
            round_operands(dst + r * dst_ld, cols, cfg);
        }
        return;
    }
    for (size_t c0 = 0; c0 < cols; c0 += TBLOCK) {
        const size_t c1 = cols - c0 < TBLOCK ? cols : c0 + TBLOCK;
        for (size_t r = 0; r < rows; r++)
            for (size_t c = c0; c < c1; c++)
                dst[r * dst_ld + c] = src[c * src_ld + r];
    }
    for (size_t r = 0; r < rows; r++)
        round_operands(dst + r * dst_ld, cols, cfg);
}

/* ---- exact mode --------------------------------------------------------------------- */

/* acc[r][c] += (the systolic sum of a[r][k] * b[k][c] over k), tile by tile, for r < RB and
 * c < NB: a holds RB rows of K floats (row stride K), b one panel of K rows of NB floats. See
 * the order at the top of this file. With GCC on x86-64 glibc it is compiled for AVX-512F,
 * AVX2 and baseline x86-64 and the loader picks one at run time (target_clones, an ifunc);
 * elsewhere for the build's target. Every variant does the same IEEE operations in the same
 * order, so all give the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void exact_block(float acc[RB][NB], const float *restrict a, const float *restrict b,
                        size_t K, size_t tile_k)
{
    for (size_t k0 = 0; k0 < K; k0 += tile_k) {
        const size_t k1 = K - k0 < tile_k ? K : k0 + tile_k;
        vf16 s[RB][NV];
#pragma GCC unroll 4
        for (int r = 0; r < RB; r++)
#pragma GCC unroll 4
            for (int q = 0; q < NV; q++)
                s[r][q] = (vf16){0.0f}; /* +0.0f in every lane */
        for (size_t k = k0; k < k1; k++) {
            vf16 bv[NV];
            memcpy(bv, b + k * NB, sizeof bv);
#pragma GCC unroll 4
            for (int r = 0; r < RB; r++) {
                const float ark = a[(size_t)r * K + k];
#pragma GCC unroll 4
                for (int q = 0; q < NV; q++) {
                    const vf16 p = ark * bv[q]; /* product, rounded on its own */
                    s[r][q] = s[r][q] + p;      /* one rounded add per array row */
                }
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < RB; r++) {
#pragma GCC unroll 4
            for (int q = 0; q < NV; q++) {
                vf16 t;
                memcpy(&t, &acc[r][q * VW], sizeof t);
                t = t + s[r][q]; /* the tile's sum into the accumulator */
                memcpy(&acc[r][q * VW], &t, sizeof t);
            }
        }
    }
}

/* Copies the rows x cols corner of C at (i0, j0) into acc (accumulate) or zeroes acc. */
static void acc_load(float acc[RB][NB], const float *C, size_t ldc, size_t i0, size_t j0,
                     size_t rows, size_t cols, int accumulate)
{
    memset(acc, 0, sizeof(float) * RB * NB);
    if (!accumulate)
        return;
    for (size_t r = 0; r < rows; r++)
        memcpy(acc[r], C + (i0 + r) * ldc + j0, cols * sizeof(float));
}

static void acc_store(float *C, size_t ldc, float acc[RB][NB], size_t i0, size_t j0,
                      size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++)
        memcpy(C + (i0 + r) * ldc + j0, acc[r], cols * sizeof(float));
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

static ss_status gemm_exact(float *C, size_t ldc, const float *A, size_t lda, int trans_a,
                            const float *B, size_t ldb, int trans_b, size_t M, size_t K,
                            size_t N, int accumulate, const sim_gemm_cfg *cfg, ss_err *err)
{
    /* check_args bounded M and N by SIZE_MAX / 4, so these round-ups cannot wrap. */
    const size_t Mp = (M + RB - 1) / RB * RB;
    const size_t npanels = (N + NB - 1) / NB;
    float *ap = NULL, *bp = NULL;
    ss_status st = scratch_alloc(&ap, Mp, K, 1, "op(A)", err);
    if (st == SS_OK)
        st = scratch_alloc(&bp, npanels * NB, K, 1, "op(B)", err);
    if (st != SS_OK) {
        free(ap);
        return st;
    }
    pack(ap, K, A, lda, trans_a, M, K, cfg); /* padding rows stay zero */
    for (size_t p = 0; p < npanels; p++) {
        const size_t j0 = p * NB;
        const float *src = trans_b ? B + j0 * ldb : B + j0;
        pack(bp + p * K * NB, NB, src, ldb, trans_b, K, min_size(NB, N - j0), cfg);
    }

    float acc[RB][NB];
    for (size_t p = 0; p < npanels; p++) {
        const size_t j0 = p * NB, cols = min_size(NB, N - j0);
        for (size_t i0 = 0; i0 < M; i0 += RB) {
            const size_t rows = min_size(RB, M - i0);
            acc_load(acc, C, ldc, i0, j0, rows, cols, accumulate);
            exact_block(acc, ap + i0 * K, bp + p * K * NB, K, (size_t)cfg->tile_k);
            acc_store(C, ldc, acc, i0, j0, rows, cols);
        }
    }
    free(ap);
    free(bp);
    return SS_OK;
}

/* ---- fast mode ---------------------------------------------------------------------- */

/* Copies a stored operand (rows x cols, stride ld) densely and rounds it. */
static ss_status widen_operand(float **out, const float *x, size_t ld, size_t rows, size_t cols,
                               const char *what, const sim_gemm_cfg *cfg, ss_err *err)
{
    ss_status st = scratch_alloc(out, rows, cols, 0, what, err);
    if (st == SS_OK)
        pack(*out, cols, x, ld, 0, rows, cols, cfg);
    return st;
}

static ss_status gemm_fast(float *C, size_t ldc, const float *A, size_t lda, int trans_a,
                           const float *B, size_t ldb, int trans_b, size_t M, size_t K,
                           size_t N, int accumulate, const sim_gemm_cfg *cfg, ss_err *err)
{
    const size_t a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
    const size_t b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    float *wa = NULL, *wb = NULL;
    ss_status st = widen_operand(&wa, A, lda, a_rows, a_cols, "A", cfg, err);
    if (st == SS_OK)
        st = widen_operand(&wb, B, ldb, b_rows, b_cols, "B", cfg, err);
    if (st == SS_OK)
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, wa,
                    (int)a_cols, wb, (int)b_cols, accumulate ? 1.0f : 0.0f, C, (int)ldc);
    free(wa);
    free(wb);
    return st;
}

/* ---- entry point -------------------------------------------------------------------- */

/* C = empty sum: zero, or unchanged with accumulate. */
static void empty_product(float *C, size_t ldc, size_t M, size_t N, int accumulate)
{
    if (accumulate)
        return;
    for (size_t i = 0; i < M; i++)
        memset(C + i * ldc, 0, N * sizeof(float));
}

ss_status sim_gemm(float *C, size_t ldc, const float *A, size_t lda, int trans_a,
                   const float *B, size_t ldb, int trans_b, size_t M, size_t K, size_t N,
                   int accumulate, const sim_gemm_cfg *cfg, ss_err *err)
{
    ss_status st = check_args(C, ldc, A, lda, trans_a, B, ldb, trans_b, M, K, N, cfg, err);
    if (st != SS_OK)
        return st;
    if (M == 0 || N == 0)
        return SS_OK;
    if (K == 0) {
        empty_product(C, ldc, M, N, accumulate);
        return SS_OK;
    }
    if (cfg->mode == SIM_GEMM_EXACT)
        return gemm_exact(C, ldc, A, lda, trans_a, B, ldb, trans_b, M, K, N, accumulate, cfg,
                          err);
    return gemm_fast(C, ldc, A, lda, trans_a, B, ldb, trans_b, M, K, N, accumulate, cfg, err);
}
