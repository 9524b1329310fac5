/* This file declares the bfloat16 type and its conversions: fp32 -> bf16 with
 * round-to-nearest-even, bf16 -> fp32 (exact), and array versions with a vectorised path.
 *
 * Invariants: bf16 is the top 16 bits of an IEEE-754 binary32. Conversion rounds to nearest,
 * ties to even; NaN stays NaN (quiet bit set, sign kept); +-Inf stay Inf; finite values that
 * round past the largest finite bf16 become Inf. Under BF16_DENORMALS_FLUSH a denormal fp32
 * input (and so any denormal result) becomes a zero of the same sign. The array path gives the
 * same bits as the scalar path for every input under both policies.
 * reference: REFERENCE.md section 7 (numerics facts).
 */
#ifndef SWITCHSIM_COMMON_BF16_H
#define SWITCHSIM_COMMON_BF16_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint16_t bits;
} bf16;

typedef enum {
    BF16_DENORMALS_KEEP = 0, /* gradual underflow, as software rounding does */
    BF16_DENORMALS_FLUSH = 1 /* denormal inputs and results become signed zero (TPU, AVX512-BF16) */
} bf16_denormals;

/* Scalar reference: rounds the fp32 bit pattern u to bf16 bits. */
uint16_t bf16_round_bits(uint32_t u, bf16_denormals pol);
bf16 bf16_from_f32(float x, bf16_denormals pol);
float bf16_to_f32(bf16 h);
/* x rounded to bf16 precision and widened back to fp32. */
float bf16_round_f32(float x, bf16_denormals pol);

/* Array conversions; dispatch at run time to the best implementation the CPU supports. */
void bf16_from_f32_array(bf16 *out, const float *in, size_t n, bf16_denormals pol);
void bf16_to_f32_array(float *out, const bf16 *in, size_t n);
/* In place: x[i] = bf16_round_f32(x[i]). */
void bf16_round_f32_array(float *x, size_t n, bf16_denormals pol);

/* Implementations of the array path, for tests and benchmarks. */
typedef enum {
    BF16_IMPL_PORTABLE = 0, /* the scalar reference in a loop */
    BF16_IMPL_AVX512F,      /* integer rounding in AVX-512F registers */
    BF16_IMPL_AVX512BF16,   /* vcvtneps2bf16 (flush policy) + AVX-512F (keep policy) */
    BF16_IMPL_COUNT
} bf16_impl;

/* Whether this CPU (and this build) can run impl. */
int bf16_impl_available(bf16_impl impl);
/* Selects impl for subsequent array calls; returns 0, or -1 if it is not available. */
int bf16_impl_select(bf16_impl impl);
bf16_impl bf16_impl_current(void);
const char *bf16_impl_name(bf16_impl impl);
/* Parses "keep"/"flush"; returns 0 on success. */
int bf16_denormals_parse(const char *s, bf16_denormals *out);
const char *bf16_denormals_name(bf16_denormals pol);

/* Kernels of the AVX-512 array path (common/bf16_avx512.c, built only when
 * SWITCHSIM_HAVE_AVX512BF16); call them only through the array functions above, which check
 * the CPU first. Any n; tails use masked loads and stores. */
void bf16_avx512f_from_f32(bf16 *out, const float *in, size_t n, bf16_denormals pol);
void bf16_avx512f_round_f32(float *x, size_t n, bf16_denormals pol);
void bf16_avx512bf16_from_f32_flush(bf16 *out, const float *in, size_t n);
void bf16_avx512bf16_round_f32_flush(float *x, size_t n);
void bf16_avx512_to_f32(float *out, const bf16 *in, size_t n);

#endif
