/* This file implements linear.h: dense projections forward and backward through the
 * matrix-unit GEMM, and the rounding of stored activations.
 *
 * Invariants: the backward pass accumulates into dinp and dw (GEMM accumulate mode), so
 * gradients of parameters shared by several uses add up.
 */
#include "linear.h"

model_numerics model_numerics_fp32(void)
{
    model_numerics nx;
    nx.gemm = sim_gemm_cfg_default();
    nx.gemm.operands = SIM_OPERANDS_F32;
    nx.gemm.mode = SIM_GEMM_EXACT;
    nx.store_bf16 = 0;
    return nx;
}

model_numerics model_numerics_bf16(bf16_denormals denormals)
{
    model_numerics nx;
    nx.gemm = sim_gemm_cfg_default();
    nx.gemm.operands = SIM_OPERANDS_BF16;
    nx.gemm.denormals = denormals;
    nx.store_bf16 = 1;
    return nx;
}

ss_status model_linear_forward(float *out, const float *inp, const float *w, size_t N, size_t C,
                               size_t OC, const model_numerics *nx, ss_err *err)
{
    return sim_gemm(out, OC, inp, C, 0, w, OC, 0, N, C, OC, 0, &nx->gemm, err);
}

ss_status model_linear_backward(float *dinp, float *dw, const float *dout, const float *inp,
                                const float *w, size_t N, size_t C, size_t OC,
                                const model_numerics *nx, ss_err *err)
{
    ss_status st = SS_OK;
    if (dinp)
        st = sim_gemm(dinp, C, dout, OC, 0, w, OC, 1, N, OC, C, 1, &nx->gemm, err);
    if (st == SS_OK && dw)
        st = sim_gemm(dw, OC, inp, C, 1, dout, OC, 0, C, N, OC, 1, &nx->gemm, err);
    return st;
}

void model_store(float *x, size_t n, const model_numerics *nx)
{
    if (nx->store_bf16)
        bf16_round_f32_array(x, n, nx->gemm.denormals);
}
