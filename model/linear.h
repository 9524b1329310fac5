/* This file declares the model's dense projection, the one place where model layers call the
 * matrix-unit GEMM (sim/mxu_gemm.h), and the numerics settings every layer kernel receives.
 *
 * Conventions (llm.c style): outputs first, then inputs, then dimensions; backward functions
 * take d-prefixed gradients and accumulate into them with +=. Dimension letters: N rows
 * (batch x tokens), C input features, OC output features. Weights are stored [C, OC] (x @ W,
 * as T5/Flax store kernels), row-major.
 *
 * Invariants: master parameters are fp32; with gemm.operands == SIM_OPERANDS_BF16 both operands
 * of every product are rounded to bf16 on the way into the matrix unit and sums are fp32.
 */
#ifndef SWITCHSIM_MODEL_LINEAR_H
#define SWITCHSIM_MODEL_LINEAR_H

#include <stddef.h>

#include "common/status.h"
#include "sim/mxu_gemm.h"

typedef struct {
    sim_gemm_cfg gemm;  /* how every matmul is computed (exact/fast, bf16/fp32 operands) */
    int store_bf16;     /* 1: activations kept between layers are rounded to bf16 */
} model_numerics;

/* fp32 everywhere (exact summation order): the setting of gradient checks. */
model_numerics model_numerics_fp32(void);
/* bf16 operands, fp32 accumulation, activations stored in bf16, the chip's denormal policy. */
model_numerics model_numerics_bf16(bf16_denormals denormals);

/* out[N,OC] = inp[N,C] @ w[C,OC]. */
ss_status model_linear_forward(float *out, const float *inp, const float *w, size_t N, size_t C,
                               size_t OC, const model_numerics *nx, ss_err *err);
/* dinp[N,C] += dout[N,OC] @ w[C,OC]^T (skipped when dinp is NULL);
 * dw[C,OC] += inp[N,C]^T @ dout[N,OC] (skipped when dw is NULL). */
ss_status model_linear_backward(float *dinp, float *dw, const float *dout, const float *inp,
                                const float *w, size_t N, size_t C, size_t OC,
                                const model_numerics *nx, ss_err *err);
/* Rounds x[n] to bf16 in place when nx->store_bf16 (the storage of an activation). */
void model_store(float *x, size_t n, const model_numerics *nx);

#endif
