/* This file declares the matrix-unit GEMM: C(MxN) (+)= op(A)(MxK) * op(B)(KxN) with bf16 (or
 * fp32) operands and fp32 accumulation, as a TPU MXU computes it.
 *
 * Invariants: operands are given as fp32 arrays; with SIM_OPERANDS_BF16 every operand element
 * is first rounded to bf16 (round-to-nearest-even, the chip's denormal policy), so products
 * are exact in fp32. SIM_GEMM_EXACT sums in the fixed order of a weight-stationary systolic
 * array (documented in mxu_gemm.c) with an fp32 rounding at every add; SIM_GEMM_FAST widens
 * the operands to fp32 and calls cblas_sgemm (same products, another summation order).
 * Matrices are row-major; lda/ldb/ldc are the row strides of the stored (untransposed) arrays.
 * reference: REFERENCE.md sections 6 and 7.
 */
#ifndef SWITCHSIM_SIM_MXU_GEMM_H
#define SWITCHSIM_SIM_MXU_GEMM_H

#include <stddef.h>

#include "common/bf16.h"
#include "common/status.h"

typedef enum {
    SIM_GEMM_EXACT = 0, /* systolic accumulation order, fp32 rounding at every add */
    SIM_GEMM_FAST = 1   /* bf16 widened to fp32, cblas_sgemm */
} sim_gemm_mode;

typedef enum {
    SIM_OPERANDS_BF16 = 0, /* operands rounded to bf16 before the multiply (the MXU) */
    SIM_OPERANDS_F32 = 1   /* fp32 operands, no rounding (the model's fp32 mode) */
} sim_operands;

typedef struct {
    sim_gemm_mode mode;
    sim_operands operands;
    bf16_denormals denormals; /* applied when rounding operands to bf16 */
    int tile_k;               /* MXU rows: the K extent of one weight tile (128 on a TPU) */
} sim_gemm_cfg;

/* The default: exact mode, bf16 operands, keep denormals, 128-row tiles. */
sim_gemm_cfg sim_gemm_cfg_default(void);

/* C[M,N] = (accumulate ? C : 0) + op(A)[M,K] * op(B)[K,N].
 * A is stored M x K (lda >= K) or, when trans_a, K x M (lda >= M); likewise B is K x N or,
 * when trans_b, N x K. Returns SS_ERR_RANGE for bad sizes/strides, SS_ERR_NOMEM if scratch
 * space cannot be had; never partially writes C on error. */
ss_status sim_gemm(float *C, size_t ldc, const float *A, size_t lda, int trans_a,
                   const float *B, size_t ldb, int trans_b, size_t M, size_t K, size_t N,
                   int accumulate, const sim_gemm_cfg *cfg, ss_err *err);

/* gamma_n = n u / (1 - n u), u = 2^-24, of the per-element error bound of sim_gemm with this
 * cfg and inner dimension K: |C_ij - exact_ij| <= gamma_n * (sum_k |a_ik b_kj| + (accumulate ?
 * |C_in_ij| : 0)), exact_ij being the exact sum of the (rounded) operands' products. n is
 * (min(tile_k, K) - 1) + ceil(K / tile_k) in exact mode, K in fast mode, plus 1 with fp32
 * operands (see mxu_gemm.c); 0 when K = 0; INFINITY when n u >= 1. */
double sim_gemm_error_gamma(const sim_gemm_cfg *cfg, size_t K);

/* Parses "exact"/"fast"; returns 0 on success. */
int sim_gemm_mode_parse(const char *s, sim_gemm_mode *out);
const char *sim_gemm_mode_name(sim_gemm_mode mode);

#endif
