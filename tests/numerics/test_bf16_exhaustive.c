/* This file implements the exhaustive test of common/bf16: for all 2^32 fp32 bit patterns and
 * both denormal policies, (1) the scalar reference bf16_round_bits against an independent
 * rounding written with double arithmetic, and (2) every available array implementation
 * (bf16_from_f32_array and bf16_round_f32_array) against the scalar reference. The range is
 * split over two threads and processed in chunks of 2^20 patterns.
 *
 * Invariants: the independent reference shares no code or bit tricks with bf16.c: it classifies
 * the input with fpclassify, rounds |x| to the bf16 grid by adding and subtracting a power of
 * two in double (whose own round-to-nearest-even does the rounding; exact because the grid
 * spacing is at least 2^-133 and |x| < 2^128), and encodes the result from its exponent and
 * significand. Worker threads only count; CMocka assertions run on the main thread.
 * reference: IEEE 754-2008 sections 3.4 (binary32 layout) and 4.3.1 (roundTiesToEven).
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/bf16.h"

#define NTHREADS 2
#define CHUNK ((uint32_t)1 << 20)
#define PATTERNS ((uint64_t)1 << 32)
#define MAX_REPORTED 4

/* ---- independent reference ---- */

#define BF16_MANT_BITS 7      /* stored significand bits */
#define BF16_MIN_EXP (-126)   /* exponent of the smallest normal */
#define BF16_MAX_EXP 127      /* exponent of the largest finite binade */
#define BF16_EXP_BIAS 127
#define POW2_MIN (-200)
#define POW2_MAX 200

/* pow2[k - POW2_MIN] = 2^k, built by exact doubling and halving (no libm on the hot path). */
static double pow2[POW2_MAX - POW2_MIN + 1];

static void init_pow2(void)
{
    pow2[-POW2_MIN] = 1.0;
    for (int k = 1; k <= POW2_MAX; k++)
        pow2[k - POW2_MIN] = 2.0 * pow2[k - 1 - POW2_MIN];
    for (int k = -1; k >= POW2_MIN; k--)
        pow2[k - POW2_MIN] = 0.5 * pow2[k + 1 - POW2_MIN];
}

static double two_to(int k)
{
    return pow2[k - POW2_MIN];
}

/* ax > 0 rounded to nearest, ties to even, on the bf16 grid of binade e (spacing 2^(e-7);
 * e is clamped to -126 below the smallest normal, where the spacing stays 2^-133). Adding
 * C = 2^(e - 7 + 52) moves ax into the binade of C, whose double spacing is the bf16
 * spacing, so the double addition itself rounds; subtracting C again is exact. */
static double round_to_grid(double ax, int e)
{
    double c = two_to(e - BF16_MANT_BITS + 52);
    volatile double t = ax + c; /* volatile: keep the rounding step as written */
    return t - c;
}

/* The bf16 encoding (without sign) of r > 0 on the bf16 grid, r < 2^128, in binade e (or
 * the binade above when rounding carried into it). */
static uint16_t encode_on_grid(double r, int e)
{
    if (r >= two_to(e + 1))
        e++;
    if (r < two_to(BF16_MIN_EXP)) /* denormal or zero: significand in units of 2^-133 */
        return (uint16_t)(r / two_to(BF16_MIN_EXP - BF16_MANT_BITS));
    double frac = r / two_to(e) - 1.0; /* in [0, 1), a multiple of 2^-7 */
    return (uint16_t)(((e + BF16_EXP_BIAS) << BF16_MANT_BITS) |
                      (int)(frac * two_to(BF16_MANT_BITS)));
}

static uint16_t reference_round(uint32_t u, bf16_denormals pol)
{
    float x;
    memcpy(&x, &u, sizeof x);
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    switch (fpclassify(x)) {
    case FP_NAN: {
        /* quiet NaN: all-ones exponent, quiet bit, the six payload bits below it */
        uint32_t payload_top = (u >> 16) & 0x3fu;
        return (uint16_t)(sign | 0x7fc0u | payload_top);
    }
    case FP_INFINITE: return (uint16_t)(sign | 0x7f80u);
    case FP_ZERO: return sign;
    case FP_SUBNORMAL:
        if (pol == BF16_DENORMALS_FLUSH)
            return sign;
        break;
    default: break;
    }
    double ax = fabs((double)x);
    int e = ilogb(ax);
    if (e < BF16_MIN_EXP)
        e = BF16_MIN_EXP;
    double r = round_to_grid(ax, e);
    if (r >= two_to(BF16_MAX_EXP + 1)) /* past the largest finite bf16 */
        return (uint16_t)(sign | 0x7f80u);
    return (uint16_t)(sign | encode_on_grid(r, e));
}

/* ---- workers ---- */

typedef enum { CHECK_SCALAR_VS_REFERENCE, CHECK_ARRAY_VS_SCALAR } check_kind;

typedef struct {
    check_kind kind;
    uint64_t begin, end;       /* half-open range of bit patterns */
    uint64_t checked;          /* patterns x policies compared */
    uint64_t mismatches;
    char first_bad[MAX_REPORTED][128]; /* descriptions of the first mismatches */
} work;

typedef struct {
    float *in;       /* [CHUNK] */
    float *rounded;  /* [CHUNK] */
    bf16 *out;       /* [CHUNK] */
} buffers;

/* Counts a mismatch of got (tested side) against want (trusted side) of function what on
 * input u. */
static void note_mismatch(work *w, const char *what, uint32_t u, bf16_denormals pol, uint32_t got,
                          uint32_t want)
{
    if (w->mismatches < MAX_REPORTED)
        snprintf(w->first_bad[w->mismatches], sizeof w->first_bad[0],
                 "%s(0x%08x, %s): got 0x%04x, want 0x%04x", what, u, bf16_denormals_name(pol),
                 got, want);
    w->mismatches++;
}

static void check_chunk_reference(work *w, uint64_t base, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)(base + i);
        for (int p = BF16_DENORMALS_KEEP; p <= BF16_DENORMALS_FLUSH; p++) {
            bf16_denormals pol = (bf16_denormals)p;
            uint16_t got = bf16_round_bits(u, pol), want = reference_round(u, pol);
            if (got != want)
                note_mismatch(w, "bf16_round_bits", u, pol, got, want);
        }
    }
    w->checked += 2 * (uint64_t)n;
}

static void check_chunk_array(work *w, buffers *b, uint64_t base, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)(base + i);
        memcpy(&b->in[i], &u, sizeof u);
    }
    for (int p = BF16_DENORMALS_KEEP; p <= BF16_DENORMALS_FLUSH; p++) {
        bf16_denormals pol = (bf16_denormals)p;
        memcpy(b->rounded, b->in, n * sizeof *b->in);
        bf16_from_f32_array(b->out, b->in, n, pol);
        bf16_round_f32_array(b->rounded, n, pol);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)(base + i), r;
            uint16_t want = bf16_round_bits(u, pol);
            memcpy(&r, &b->rounded[i], sizeof r);
            if (b->out[i].bits != want)
                note_mismatch(w, "bf16_from_f32_array", u, pol, b->out[i].bits, want);
            else if (r != (uint32_t)want << 16)
                note_mismatch(w, "bf16_round_f32_array", u, pol, r, (uint32_t)want << 16);
        }
    }
    w->checked += 2 * (uint64_t)n;
}

static void *run_work(void *arg)
{
    work *w = arg;
    buffers b = {0};
    if (w->kind == CHECK_ARRAY_VS_SCALAR) {
        b.in = malloc(CHUNK * sizeof *b.in);
        b.rounded = malloc(CHUNK * sizeof *b.rounded);
        b.out = malloc(CHUNK * sizeof *b.out);
        if (!b.in || !b.rounded || !b.out) {
            free(b.in);
            free(b.rounded);
            free(b.out);
            return w; /* checked stays short of the range: the main thread fails the test */
        }
    }
    for (uint64_t base = w->begin; base < w->end; base += CHUNK) {
        uint32_t n = (uint32_t)(w->end - base < CHUNK ? w->end - base : CHUNK);
        if (w->kind == CHECK_SCALAR_VS_REFERENCE)
            check_chunk_reference(w, base, n);
        else
            check_chunk_array(w, &b, base, n);
    }
    free(b.in);
    free(b.rounded);
    free(b.out);
    return NULL;
}

/* Runs one check over all 2^32 patterns on NTHREADS threads, prints the totals and returns
 * the number of mismatches (fails the test at once only if a range was left unchecked). */
static uint64_t run_all_patterns(check_kind kind, const char *label)
{
    work w[NTHREADS];
    pthread_t th[NTHREADS];
    uint64_t per = PATTERNS / NTHREADS;
    for (int t = 0; t < NTHREADS; t++) {
        w[t] = (work){.kind = kind, .begin = per * (uint64_t)t,
                      .end = t == NTHREADS - 1 ? PATTERNS : per * (uint64_t)(t + 1)};
        assert_int_equal(pthread_create(&th[t], NULL, run_work, &w[t]), 0);
    }
    uint64_t checked = 0, mismatches = 0;
    for (int t = 0; t < NTHREADS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        checked += w[t].checked;
        mismatches += w[t].mismatches;
        for (uint64_t k = 0; k < w[t].mismatches && k < MAX_REPORTED; k++)
            print_error("%s: %s\n", label, w[t].first_bad[k]);
    }
    print_message("%s: %llu patterns x 2 policies = %llu checks, %llu mismatches\n", label,
                  (unsigned long long)(checked / 2), (unsigned long long)checked,
                  (unsigned long long)mismatches);
    assert_true(checked == 2 * PATTERNS);
    return mismatches;
}

/* A few spot values, so that a broken reference cannot agree with a broken bf16.c silently. */
static void test_bf16_exhaustive_reference_spot_values(void **state)
{
    (void)state;
    assert_int_equal(reference_round(0x3f800000, BF16_DENORMALS_KEEP), 0x3f80);
    assert_int_equal(reference_round(0x3f808000, BF16_DENORMALS_KEEP), 0x3f80);
    assert_int_equal(reference_round(0x3f818000, BF16_DENORMALS_KEEP), 0x3f82);
    assert_int_equal(reference_round(0xbf808001, BF16_DENORMALS_KEEP), 0xbf81);
    assert_int_equal(reference_round(0x7f7f8000, BF16_DENORMALS_KEEP), 0x7f80);
    assert_int_equal(reference_round(0x7f7f7fff, BF16_DENORMALS_KEEP), 0x7f7f);
    assert_int_equal(reference_round(0x007fffff, BF16_DENORMALS_KEEP), 0x0080);
    assert_int_equal(reference_round(0x00018000, BF16_DENORMALS_KEEP), 0x0002);
    assert_int_equal(reference_round(0x80010000, BF16_DENORMALS_FLUSH), 0x8000);
    assert_int_equal(reference_round(0xff800001, BF16_DENORMALS_FLUSH), 0xffc0);
    assert_int_equal(reference_round(0x7fc0ffff, BF16_DENORMALS_KEEP), 0x7fc0);
}

static void test_bf16_exhaustive_scalar_vs_reference(void **state)
{
    (void)state;
    uint64_t mismatches =
        run_all_patterns(CHECK_SCALAR_VS_REFERENCE, "scalar vs independent reference");
    assert_true(mismatches == 0);
}

static void test_bf16_exhaustive_array_vs_scalar(void **state)
{
    (void)state;
    bf16_impl saved = bf16_impl_current();
    uint64_t mismatches = 0; /* over all impls: every impl is checked before the test fails */
    for (int impl = 0; impl < BF16_IMPL_COUNT; impl++) {
        char label[96];
        snprintf(label, sizeof label, "array impl %s vs scalar", bf16_impl_name((bf16_impl)impl));
        if (bf16_impl_select((bf16_impl)impl) != 0) {
            print_message("%s: not available on this CPU/build, not tested\n", label);
            continue;
        }
        mismatches += run_all_patterns(CHECK_ARRAY_VS_SCALAR, label);
    }
    assert_int_equal(bf16_impl_select(saved), 0);
    assert_true(mismatches == 0);
}

int main(void)
{
    init_pow2();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_exhaustive_reference_spot_values),
        cmocka_unit_test(test_bf16_exhaustive_scalar_vs_reference),
        cmocka_unit_test(test_bf16_exhaustive_array_vs_scalar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
