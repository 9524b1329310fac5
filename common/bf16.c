/* This file implements bf16.h: the scalar fp32 -> bf16 rounding that is the reference for every
 * other path, the exact bf16 -> fp32 widening, the array conversions and the run-time choice of
 * their implementation (portable loop, AVX-512F integer rounding, AVX512-BF16 vcvtneps2bf16).
 *
 * Invariants: bf16_round_bits is the definition of the rounding: NaN -> the top 16 bits with
 * the quiet bit 0x0040 set (sign and top payload bits kept); under BF16_DENORMALS_FLUSH an
 * input with a zero exponent field becomes a zero of the same sign; everything else rounds to
 * nearest, ties to even, on the integer bit pattern, which carries +-Inf through unchanged and
 * rounds overflow to +-Inf. Every array implementation gives the same bits as this function
 * for every input (tests/numerics/test_bf16_exhaustive.c checks all 2^32 inputs). The
 * implementation in use is chosen once, at first use, as the best one the CPU and the build
 * support; bf16_impl_select may change it later (tests, benchmarks).
 * reference: REFERENCE.md section 7; Intel SDM / intrinsics guide, VCVTNEPS2BF16.
 */
#include "bf16.h"

#include <stdatomic.h>
#include <string.h>

#include "common/status.h"
#include "switchsim_config.h"

#define BF16_SIGN 0x8000u
#define BF16_QUIET 0x0040u
#define F32_ABS_MASK 0x7fffffffu
#define F32_EXP_MASK 0x7f800000u
#define F32_INF_BITS 0x7f800000u

uint16_t bf16_round_bits(uint32_t u, bf16_denormals pol)
{
    if ((u & F32_ABS_MASK) > F32_INF_BITS) /* NaN: quiet it, never round (no carry) */
        return (uint16_t)((u >> 16) | BF16_QUIET);
    if (pol == BF16_DENORMALS_FLUSH && (u & F32_EXP_MASK) == 0)
        return (uint16_t)((u >> 16) & BF16_SIGN);
    /* Adding 0x7fff plus the kept lsb rounds the dropped 16 bits to nearest, ties to even; a
     * carry out of the mantissa moves into the exponent, so overflow lands on Inf. */
    uint32_t lsb = (u >> 16) & 1u;
    return (uint16_t)((u + 0x7fffu + lsb) >> 16);
}

bf16 bf16_from_f32(float x, bf16_denormals pol)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (bf16){bf16_round_bits(u, pol)};
}

float bf16_to_f32(bf16 h)
{
    uint32_t u = (uint32_t)h.bits << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

float bf16_round_f32(float x, bf16_denormals pol)
{
    return bf16_to_f32(bf16_from_f32(x, pol));
}

/* ---- portable implementation: the scalar reference in a loop ---- */

static void portable_from_f32(bf16 *out, const float *in, size_t n, bf16_denormals pol)
{
    for (size_t i = 0; i < n; i++)
        out[i] = bf16_from_f32(in[i], pol);
}

static void portable_to_f32(float *out, const bf16 *in, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = bf16_to_f32(in[i]);
}

static void portable_round_f32(float *x, size_t n, bf16_denormals pol)
{
    for (size_t i = 0; i < n; i++)
        x[i] = bf16_round_f32(x[i], pol);
}

/* ---- AVX512-BF16: vcvtneps2bf16 serves the flush policy, AVX-512F the keep policy ---- */

#if SWITCHSIM_HAVE_AVX512BF16
static void avx512bf16_from_f32(bf16 *out, const float *in, size_t n, bf16_denormals pol)
{
    if (pol == BF16_DENORMALS_FLUSH)
        bf16_avx512bf16_from_f32_flush(out, in, n);
    else
        bf16_avx512f_from_f32(out, in, n, pol);
}

static void avx512bf16_round_f32(float *x, size_t n, bf16_denormals pol)
{
    if (pol == BF16_DENORMALS_FLUSH)
        bf16_avx512bf16_round_f32_flush(x, n);
    else
        bf16_avx512f_round_f32(x, n, pol);
}
#endif

/* ---- dispatch ---- */

typedef struct {
    const char *name;
    void (*from_f32)(bf16 *out, const float *in, size_t n, bf16_denormals pol);
    void (*to_f32)(float *out, const bf16 *in, size_t n);
    void (*round_f32)(float *x, size_t n, bf16_denormals pol);
} impl_ops;

static const impl_ops ops_table[BF16_IMPL_COUNT] = {
    [BF16_IMPL_PORTABLE] = {"portable", portable_from_f32, portable_to_f32, portable_round_f32},
#if SWITCHSIM_HAVE_AVX512BF16
    [BF16_IMPL_AVX512F] = {"avx512f", bf16_avx512f_from_f32, bf16_avx512_to_f32,
                           bf16_avx512f_round_f32},
    [BF16_IMPL_AVX512BF16] = {"avx512bf16", avx512bf16_from_f32, bf16_avx512_to_f32,
                              avx512bf16_round_f32},
#else
    [BF16_IMPL_AVX512F] = {"avx512f", NULL, NULL, NULL},
    [BF16_IMPL_AVX512BF16] = {"avx512bf16", NULL, NULL, NULL},
#endif
};

/* Whether the CPU (and the OS, which must save the zmm state) supports what the AVX-512 file
 * is compiled for: F, BW and VL, plus BF16 when bf16 is set. */
static int cpu_has_avx512(int bf16)
{
#if SWITCHSIM_HAVE_AVX512BF16 && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl"))
        return 0;
    return !bf16 || __builtin_cpu_supports("avx512bf16");
#else
    (void)bf16;
    return 0;
#endif
}

int bf16_impl_available(bf16_impl impl)
{
    switch (impl) {
    case BF16_IMPL_PORTABLE: return 1;
    case BF16_IMPL_AVX512F: return cpu_has_avx512(0);
    case BF16_IMPL_AVX512BF16: return cpu_has_avx512(1);
    case BF16_IMPL_COUNT: break;
    }
    return 0;
}

/* -1 until the first use; then the bf16_impl in use. Atomic so that threads may convert
 * arrays concurrently while the first of them makes the choice. */
static atomic_int current_impl = -1;

static bf16_impl best_available(void)
{
    for (int i = BF16_IMPL_COUNT - 1; i > BF16_IMPL_PORTABLE; i--)
        if (bf16_impl_available((bf16_impl)i))
            return (bf16_impl)i;
    return BF16_IMPL_PORTABLE;
}

bf16_impl bf16_impl_current(void)
{
    int cur = atomic_load_explicit(&current_impl, memory_order_relaxed);
    if (cur < 0) {
        cur = (int)best_available();
        atomic_store_explicit(&current_impl, cur, memory_order_relaxed);
    }
    return (bf16_impl)cur;
}

int bf16_impl_select(bf16_impl impl)
{
    if (!bf16_impl_available(impl))
        return -1;
    atomic_store_explicit(&current_impl, (int)impl, memory_order_relaxed);
    return 0;
}

const char *bf16_impl_name(bf16_impl impl)
{
    SS_ASSERT(impl >= BF16_IMPL_PORTABLE && impl < BF16_IMPL_COUNT);
    return ops_table[impl].name;
}

static const impl_ops *current_ops(void)
{
    return &ops_table[bf16_impl_current()];
}

void bf16_from_f32_array(bf16 *out, const float *in, size_t n, bf16_denormals pol)
{
    current_ops()->from_f32(out, in, n, pol);
}

void bf16_to_f32_array(float *out, const bf16 *in, size_t n)
{
    current_ops()->to_f32(out, in, n);
}

void bf16_round_f32_array(float *x, size_t n, bf16_denormals pol)
{
    current_ops()->round_f32(x, n, pol);
}

/* ---- denormal policy names ---- */

static const char *const denormals_names[] = {
    [BF16_DENORMALS_KEEP] = "keep",
    [BF16_DENORMALS_FLUSH] = "flush",
};

int bf16_denormals_parse(const char *s, bf16_denormals *out)
{
    if (!s)
        return -1;
    for (int i = 0; i < (int)(sizeof denormals_names / sizeof denormals_names[0]); i++) {
        if (strcmp(s, denormals_names[i]) == 0) {
            *out = (bf16_denormals)i;
            return 0;
        }
    }
    return -1;
}

const char *bf16_denormals_name(bf16_denormals pol)
{
    SS_ASSERT(pol == BF16_DENORMALS_KEEP || pol == BF16_DENORMALS_FLUSH);
    return denormals_names[pol];
}
