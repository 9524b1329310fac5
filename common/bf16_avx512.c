/* This file implements the AVX-512 kernels of the bf16 array conversions declared at the end of
 * bf16.h: fp32 -> bf16 by integer rounding in AVX-512F registers (both denormal policies), by
 * the AVX512-BF16 instruction vcvtneps2bf16 (flush policy only), and the bf16 -> fp32 widening.
 * It is compiled on its own with -mavx512f -mavx512bw -mavx512vl -mavx512bf16; bf16.c calls it
 * only after checking that the CPU supports those extensions.
 *
 * Invariants: each kernel gives, lane by lane, exactly the bits of bf16_round_bits (bf16.c) for
 * every input; vcvtneps2bf16 quiets NaNs the same way (top 16 bits | 0x0040) and treats
 * denormal inputs as zeros of the same sign, which is the flush policy (checked over all 2^32
 * inputs by tests/numerics/test_bf16_exhaustive.c). Every loop handles any n: the last,
 * partial vector is loaded and stored under a lane mask, so no byte past n is read or written.
 * reference: Intel intrinsics guide (_mm512_cvtneps_pbh, _mm512_mask_cvtepi32_storeu_epi16).
 */
#include <immintrin.h>

#include "bf16.h"

#define LANES 16

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* The mask of the first min(left, 16) lanes. */
ALWAYS_INLINE __mmask16 lanes_mask(size_t left)
{
    return left >= LANES ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* Rounds 16 fp32 bit patterns to bf16 as bf16_round_bits does; the bf16 bits are returned in
 * the low half of each 32-bit lane (the high half is zero). */
ALWAYS_INLINE __m512i round_lanes(__m512i u, bf16_denormals pol)
{
    const __m512i hi = _mm512_srli_epi32(u, 16);
    const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
    const __m512i bias = _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);

    const __mmask16 nan = _mm512_cmpgt_epu32_mask(
        _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(0x0040));
    if (pol == BF16_DENORMALS_FLUSH) {
        const __mmask16 zero_exp = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000));
        r = _mm512_mask_and_epi32(r, zero_exp, hi, _mm512_set1_epi32(0x8000));
    }
    return r;
}

ALWAYS_INLINE void int_from_f32(bf16 *out, const float *in, size_t n, bf16_denormals pol)
{
    for (size_t i = 0; i < n; i += LANES) {
        const __mmask16 m = lanes_mask(n - i);
        const __m512i u = _mm512_maskz_loadu_epi32(m, in + i);
        _mm512_mask_cvtepi32_storeu_epi16(out + i, m, round_lanes(u, pol));
    }
}

ALWAYS_INLINE void int_round_f32(float *x, size_t n, bf16_denormals pol)
{
    for (size_t i = 0; i < n; i += LANES) {
        const __mmask16 m = lanes_mask(n - i);
        const __m512i u = _mm512_maskz_loadu_epi32(m, x + i);
        _mm512_mask_storeu_epi32(x + i, m, _mm512_slli_epi32(round_lanes(u, pol), 16));
    }
}

void bf16_avx512f_from_f32(bf16 *out, const float *in, size_t n, bf16_denormals pol)
{
    if (pol == BF16_DENORMALS_FLUSH)
        int_from_f32(out, in, n, BF16_DENORMALS_FLUSH);
    else
        int_from_f32(out, in, n, BF16_DENORMALS_KEEP);
}

void bf16_avx512f_round_f32(float *x, size_t n, bf16_denormals pol)
{
    if (pol == BF16_DENORMALS_FLUSH)
        int_round_f32(x, n, BF16_DENORMALS_FLUSH);
    else
        int_round_f32(x, n, BF16_DENORMALS_KEEP);
}

/* vcvtneps2bf16 on the first min(n - i, 16) floats at in + i; masked-off lanes read as 0. */
ALWAYS_INLINE __m256i cvtneps_lanes(const float *in, __mmask16 m)
{
    return (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, in));
}

void bf16_avx512bf16_from_f32_flush(bf16 *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i += LANES) {
        const __mmask16 m = lanes_mask(n - i);
        _mm256_mask_storeu_epi16(out + i, m, cvtneps_lanes(in + i, m));
    }
}

void bf16_avx512bf16_round_f32_flush(float *x, size_t n)
{
    for (size_t i = 0; i < n; i += LANES) {
        const __mmask16 m = lanes_mask(n - i);
        const __m512i wide = _mm512_cvtepu16_epi32(cvtneps_lanes(x + i, m));
        _mm512_mask_storeu_epi32(x + i, m, _mm512_slli_epi32(wide, 16));
    }
}

void bf16_avx512_to_f32(float *out, const bf16 *in, size_t n)
{
    for (size_t i = 0; i < n; i += LANES) {
        const __mmask16 m = lanes_mask(n - i);
        const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, in + i));
        _mm512_mask_storeu_epi32(out + i, m, _mm512_slli_epi32(wide, 16));
    }
}
