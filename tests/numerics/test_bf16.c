/* This file implements the fast tests of common/bf16: named rounding cases (ties to even, the
 * overflow boundary, zeros, infinities, NaN quieting, denormals under both policies), the exact
 * bf16 -> fp32 widening of all 65536 patterns, every available array implementation against
 * the scalar reference on random and special inputs for lengths 0..67 (every tail) at
 * unaligned offsets, the run-time dispatch, and the policy/implementation names.
 *
 * Invariants: expected bits are written out by hand from the IEEE-754 layout, not computed by
 * the code under test; array checks compare against bf16_round_bits and also check that no
 * element past n is written. The exhaustive check of all 2^32 inputs lives in
 * test_bf16_exhaustive.c (suite 'slow').
 */
#include <float.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/bf16.h"

#define KEEP BF16_DENORMALS_KEEP
#define FLUSH BF16_DENORMALS_FLUSH

static bf16_impl impl_at_startup;

static uint32_t f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* One named case: fp32 input bits and the bf16 bits expected under each policy. */
typedef struct {
    const char *what;
    uint32_t in;
    uint16_t keep, flush;
} round_case;

static void check_cases(const round_case *c, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t k = bf16_round_bits(c[i].in, KEEP);
        uint16_t f = bf16_round_bits(c[i].in, FLUSH);
        if (k != c[i].keep || f != c[i].flush) {
            print_error("%s: 0x%08x -> keep 0x%04x (want 0x%04x), flush 0x%04x (want 0x%04x)\n",
                        c[i].what, c[i].in, k, c[i].keep, f, c[i].flush);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

#define CHECK_CASES(arr) check_cases(arr, sizeof(arr) / sizeof(arr[0]))

static void test_bf16_round_ties_to_even(void **state)
{
    (void)state;
    static const round_case cases[] = {
        {"1.0", 0x3f800000, 0x3f80, 0x3f80},
        {"1+2^-8 (tie, even below)", 0x3f808000, 0x3f80, 0x3f80},
        {"1+2^-8+2^-23 (above tie)", 0x3f808001, 0x3f81, 0x3f81},
        {"1+2^-8-2^-23 (below tie)", 0x3f807fff, 0x3f80, 0x3f80},
        {"1+3*2^-8 (tie, even above)", 0x3f818000, 0x3f82, 0x3f82},
        {"-(1+2^-8) (negative tie)", 0xbf808000, 0xbf80, 0xbf80},
        {"-(1+3*2^-8) (negative tie)", 0xbf818000, 0xbf82, 0xbf82},
        {"-(1+2^-8+2^-23)", 0xbf808001, 0xbf81, 0xbf81},
        {"2-2^-8 (tie, carries into exponent)", 0x3fff8000, 0x4000, 0x4000},
        {"pi", 0x40490fdb, 0x4049, 0x4049},
        {"smallest normal", 0x00800000, 0x0080, 0x0080},
        {"-smallest normal", 0x80800000, 0x8080, 0x8080},
    };
    CHECK_CASES(cases);
}

static void test_bf16_round_overflow_to_inf(void **state)
{
    (void)state;
    static const round_case cases[] = {
        {"largest finite bf16", 0x7f7f0000, 0x7f7f, 0x7f7f},
        {"just below the Inf tie", 0x7f7f7fff, 0x7f7f, 0x7f7f},
        {"tie above largest (odd) -> Inf", 0x7f7f8000, 0x7f80, 0x7f80},
        {"FLT_MAX -> Inf", 0x7f7fffff, 0x7f80, 0x7f80},
        {"-largest finite bf16", 0xff7f0000, 0xff7f, 0xff7f},
        {"-FLT_MAX -> -Inf", 0xff7fffff, 0xff80, 0xff80},
        {"+Inf", 0x7f800000, 0x7f80, 0x7f80},
        {"-Inf", 0xff800000, 0xff80, 0xff80},
    };
    CHECK_CASES(cases);
    assert_int_equal(f32_bits(FLT_MAX), 0x7f7fffffu);
    assert_int_equal(bf16_from_f32(FLT_MAX, KEEP).bits, 0x7f80);
    assert_int_equal(bf16_from_f32(-FLT_MAX, FLUSH).bits, 0xff80);
}

static void test_bf16_round_zeros(void **state)
{
    (void)state;
    static const round_case cases[] = {
        {"+0", 0x00000000, 0x0000, 0x0000},
        {"-0", 0x80000000, 0x8000, 0x8000},
    };
    CHECK_CASES(cases);
}

static void test_bf16_round_nan_is_quieted(void **state)
{
    (void)state;
    static const round_case cases[] = {
        {"qNaN", 0x7fc00000, 0x7fc0, 0x7fc0},
        {"-qNaN", 0xffc00000, 0xffc0, 0xffc0},
        {"qNaN, low payload (no round-up)", 0x7fc0ffff, 0x7fc0, 0x7fc0},
        {"qNaN, all payload (no carry into sign)", 0x7fffffff, 0x7fff, 0x7fff},
        {"-qNaN, all payload", 0xffffffff, 0xffff, 0xffff},
        {"sNaN, payload only in low bits", 0x7f800001, 0x7fc0, 0x7fc0},
        {"-sNaN, payload only in low bits", 0xff800001, 0xffc0, 0xffc0},
        {"sNaN, top payload bits kept", 0x7fa00000, 0x7fe0, 0x7fe0},
        {"-sNaN, payload 0x3f kept", 0xffbf8000, 0xffff, 0xffff},
        {"sNaN, low payload tie", 0x7f808000, 0x7fc0, 0x7fc0},
    };
    CHECK_CASES(cases);
}

static void test_bf16_round_denormals_keep_and_flush(void **state)
{
    (void)state;
    static const round_case cases[] = {
        {"smallest fp32 denormal", 0x00000001, 0x0000, 0x0000},
        {"smallest bf16 denormal", 0x00010000, 0x0001, 0x0000},
        {"-smallest bf16 denormal", 0x80010000, 0x8001, 0x8000},
        {"half the smallest bf16 denormal (tie -> 0)", 0x00008000, 0x0000, 0x0000},
        {"above the half", 0x00008001, 0x0001, 0x0000},
        {"1.5 * smallest bf16 denormal (tie -> 2)", 0x00018000, 0x0002, 0x0000},
        {"-1.5 * smallest bf16 denormal", 0x80018000, 0x8002, 0x8000},
        {"largest bf16 denormal", 0x007f0000, 0x007f, 0x0000},
        {"-largest bf16 denormal", 0x807f0000, 0x807f, 0x8000},
        {"largest fp32 denormal -> smallest normal", 0x007fffff, 0x0080, 0x0000},
        {"-largest fp32 denormal", 0x807fffff, 0x8080, 0x8000},
        {"-smallest fp32 denormal (-0)", 0x80000001, 0x8000, 0x8000},
    };
    CHECK_CASES(cases);
}

static void test_bf16_float_wrappers(void **state)
{
    (void)state;
    assert_int_equal(bf16_from_f32(1.0f, KEEP).bits, 0x3f80);
    assert_int_equal(bf16_from_f32(-2.5f, FLUSH).bits, 0xc020);
    assert_true(bf16_round_f32(3.14159265f, KEEP) == 3.140625f);
    assert_true(bf16_round_f32(1.0f + 0x1p-8f, KEEP) == 1.0f);
    assert_true(bf16_round_f32(1.0f + 0x3p-8f, KEEP) == 1.0f + 0x1p-6f);
    assert_true(bf16_round_f32(0x1p-133f, KEEP) == 0x1p-133f);
    float flushed = bf16_round_f32(-0x1p-133f, FLUSH);
    assert_true(flushed == 0.0f);
    assert_int_equal(f32_bits(flushed), 0x80000000u);
    assert_true(bf16_to_f32((bf16){0x4049}) == 3.140625f);
    assert_true(bf16_to_f32((bf16){0xc020}) == -2.5f);
    assert_true(bf16_to_f32((bf16){0x0001}) == 0x1p-133f);
    assert_true(bf16_to_f32((bf16){0x7f7f}) == 0x1.fep127f);
}

/* bf16 -> fp32 is exact: the bits move to the top half, and rounding them back (keep) or any
 * non-denormal (flush) gives the same bf16 again, NaNs included once quiet. */
static void test_bf16_to_f32_exact_all_patterns(void **state)
{
    (void)state;
    int bad = 0;
    for (uint32_t b = 0; b <= 0xffff; b++) {
        float x = bf16_to_f32((bf16){(uint16_t)b});
        uint32_t u = f32_bits(x);
        int is_nan = (b & 0x7fff) > 0x7f80;
        int is_denormal = (b & 0x7f80) == 0 && (b & 0x007f) != 0;
        uint16_t want_keep = (uint16_t)(is_nan ? (b | 0x0040) : b);
        uint16_t want_flush = (uint16_t)(is_denormal ? (b & 0x8000) : want_keep);
        if (u != b << 16 || bf16_round_bits(u, KEEP) != want_keep ||
            bf16_round_bits(u, FLUSH) != want_flush) {
            if (bad++ < 8)
                print_error("bf16 0x%04x -> fp32 0x%08x\n", b, u);
        }
    }
    assert_int_equal(bad, 0);
}

/* ---- array paths against the scalar reference ---- */

#define MAX_LEN 67
#define OFFSET_MAX 3  /* start offsets 0..3 elements, so vectors straddle alignments */
#define GUARD 16      /* elements after the end that must stay untouched */
#define BUF (OFFSET_MAX + MAX_LEN + GUARD)
#define SENTINEL_BITS 0x5a5a5a5au

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rand_u32(void)
{
    /* xorshift64*: enough for test inputs, independent of common/rng. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static const uint32_t special_bits[] = {
    0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x00008000, 0x00018000, 0x007f0000,
    0x007fffff, 0x807fffff, 0x00800000, 0x3f800000, 0x3f808000, 0x3f818000, 0xbf808000,
    0xbf818000, 0x3f808001, 0x7f7f0000, 0x7f7f7fff, 0x7f7f8000, 0x7f7fffff, 0xff7fffff,
    0x7f800000, 0xff800000, 0x7f800001, 0xff800001, 0x7fa00000, 0x7fc00000, 0xffc00000,
    0x7fc0ffff, 0x7fffffff, 0xffffffff, 0x7f808000,
};
#define NSPECIAL (sizeof special_bits / sizeof special_bits[0])

/* Fills x[0..n) with a mix: special patterns, random bits, random ties, random denormals. */
static void fill_inputs(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t r = rand_u32();
        uint32_t u;
        switch (rand_u32() % 4) {
        case 0: u = special_bits[r % NSPECIAL]; break;
        case 1: u = r; break;
        case 2: u = (r & 0xffff0000u) | 0x8000u; break;        /* exact tie */
        default: u = (r & 0x807fffffu); break;                /* denormal or zero */
        }
        x[i] = f32_from_bits(u);
    }
}

/* Counts mismatches of the three array functions of the current impl against the scalar
 * reference for one length and offset; reports the first few. */
static int check_array_once(size_t off, size_t n, bf16_denormals pol)
{
    float in[BUF], rounded[BUF], widened[BUF];
    bf16 out[BUF], src[BUF];
    int bad = 0;

    fill_inputs(in, BUF);
    for (size_t i = 0; i < BUF; i++) {
        out[i].bits = (uint16_t)SENTINEL_BITS;
        src[i].bits = (uint16_t)rand_u32();
        rounded[i] = in[i];
        widened[i] = f32_from_bits(SENTINEL_BITS);
    }
    bf16_from_f32_array(out + off, in + off, n, pol);
    bf16_round_f32_array(rounded + off, n, pol);
    bf16_to_f32_array(widened + off, src + off, n);

    for (size_t i = 0; i < BUF; i++) {
        int inside = i >= off && i < off + n;
        uint32_t u = f32_bits(in[i]);
        uint16_t want = inside ? bf16_round_bits(u, pol) : (uint16_t)SENTINEL_BITS;
        uint32_t want_round = inside ? (uint32_t)want << 16 : u;
        uint32_t want_wide = inside ? (uint32_t)src[i].bits << 16 : SENTINEL_BITS;
        if (out[i].bits != want || f32_bits(rounded[i]) != want_round ||
            f32_bits(widened[i]) != want_wide) {
            if (bad++ < 4)
                print_error("%s %s n=%zu off=%zu i=%zu in=0x%08x: from 0x%04x (want 0x%04x) "
                            "round 0x%08x (want 0x%08x) to_f32 0x%08x (want 0x%08x)\n",
                            bf16_impl_name(bf16_impl_current()), bf16_denormals_name(pol), n,
                            off, i, u, out[i].bits, want, f32_bits(rounded[i]), want_round,
                            f32_bits(widened[i]), want_wide);
        }
    }
    return bad;
}

static void test_bf16_array_matches_scalar_every_impl(void **state)
{
    (void)state;
    bf16_impl saved = bf16_impl_current();
    int tested = 0;
    for (int impl = 0; impl < BF16_IMPL_COUNT; impl++) {
        if (!bf16_impl_available((bf16_impl)impl)) {
            print_message("bf16 impl %s not available on this CPU/build: not tested\n",
                          bf16_impl_name((bf16_impl)impl));
            continue;
        }
        assert_int_equal(bf16_impl_select((bf16_impl)impl), 0);
        assert_int_equal(bf16_impl_current(), impl);
        int bad = 0;
        long checks = 0;
        for (int pol = KEEP; pol <= FLUSH; pol++)
            for (size_t n = 0; n <= MAX_LEN; n++)
                for (size_t off = 0; off <= OFFSET_MAX; off++, checks++)
                    bad += check_array_once(off, n, (bf16_denormals)pol);
        print_message("bf16 impl %s: %ld array calls x 3 functions, %d mismatching elements\n",
                      bf16_impl_name((bf16_impl)impl), checks, bad);
        assert_int_equal(bad, 0);
        tested++;
    }
    assert_true(tested >= 1);
    assert_int_equal(bf16_impl_select(saved), 0);
}

/* The array functions on a long array (several full vectors plus a tail) of all specials. */
static void test_bf16_array_specials_long(void **state)
{
    (void)state;
    enum { N = 1000 };
    static float in[N], rounded[N];
    static bf16 out[N];
    bf16_impl saved = bf16_impl_current();
    for (size_t i = 0; i < N; i++)
        in[i] = f32_from_bits(special_bits[i % NSPECIAL] ^ (uint32_t)(i / NSPECIAL % 2) << 31);
    for (int impl = 0; impl < BF16_IMPL_COUNT; impl++) {
        if (bf16_impl_select((bf16_impl)impl) != 0)
            continue;
        for (int pol = KEEP; pol <= FLUSH; pol++) {
            memcpy(rounded, in, sizeof in);
            bf16_from_f32_array(out, in, N, (bf16_denormals)pol);
            bf16_round_f32_array(rounded, N, (bf16_denormals)pol);
            int bad = 0;
            for (size_t i = 0; i < N; i++) {
                uint16_t want = bf16_round_bits(f32_bits(in[i]), (bf16_denormals)pol);
                bad += out[i].bits != want || f32_bits(rounded[i]) != (uint32_t)want << 16;
            }
            if (bad)
                print_error("%s %s: %d mismatches\n", bf16_impl_name((bf16_impl)impl),
                            bf16_denormals_name((bf16_denormals)pol), bad);
            assert_int_equal(bad, 0);
        }
    }
    assert_int_equal(bf16_impl_select(saved), 0);
}

/* ---- dispatch and names ---- */

static void test_bf16_dispatch_picks_best_available(void **state)
{
    (void)state;
    bf16_impl best = BF16_IMPL_PORTABLE;
    for (int impl = 0; impl < BF16_IMPL_COUNT; impl++)
        if (bf16_impl_available((bf16_impl)impl))
            best = (bf16_impl)impl;
    print_message("dispatch chose %s at first use; best available %s\n",
                  bf16_impl_name(impl_at_startup), bf16_impl_name(best));
    assert_int_equal(impl_at_startup, best);
    assert_true(bf16_impl_available(BF16_IMPL_PORTABLE));
}

static void test_bf16_impl_select_rejects_unavailable(void **state)
{
    (void)state;
    bf16_impl saved = bf16_impl_current();
    assert_false(bf16_impl_available(BF16_IMPL_COUNT));
    assert_int_equal(bf16_impl_select(BF16_IMPL_COUNT), -1);
    assert_int_equal(bf16_impl_current(), saved);
    for (int impl = 0; impl < BF16_IMPL_COUNT; impl++) {
        int ok = bf16_impl_select((bf16_impl)impl) == 0;
        assert_int_equal(ok, bf16_impl_available((bf16_impl)impl));
        assert_int_equal(bf16_impl_current(), ok ? (bf16_impl)impl : saved);
        assert_int_equal(bf16_impl_select(saved), 0);
    }
}

static void test_bf16_impl_names(void **state)
{
    (void)state;
    assert_string_equal(bf16_impl_name(BF16_IMPL_PORTABLE), "portable");
    assert_string_equal(bf16_impl_name(BF16_IMPL_AVX512F), "avx512f");
    assert_string_equal(bf16_impl_name(BF16_IMPL_AVX512BF16), "avx512bf16");
}

static void test_bf16_denormals_parse_and_name(void **state)
{
    (void)state;
    bf16_denormals pol = BF16_DENORMALS_FLUSH;
    assert_int_equal(bf16_denormals_parse("keep", &pol), 0);
    assert_int_equal(pol, KEEP);
    assert_int_equal(bf16_denormals_parse("flush", &pol), 0);
    assert_int_equal(pol, FLUSH);
    static const char *const bad[] = {"", "Keep", "FLUSH", "flush ", "keepx", "k", "ftz"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pol = KEEP;
        assert_int_equal(bf16_denormals_parse(bad[i], &pol), -1);
        assert_int_equal(pol, KEEP); /* untouched on failure */
    }
    assert_int_equal(bf16_denormals_parse(NULL, &pol), -1);
    assert_string_equal(bf16_denormals_name(KEEP), "keep");
    assert_string_equal(bf16_denormals_name(FLUSH), "flush");
    for (int p = KEEP; p <= FLUSH; p++) {
        assert_int_equal(bf16_denormals_parse(bf16_denormals_name((bf16_denormals)p), &pol), 0);
        assert_int_equal(pol, p);
    }
}

/* Records the dispatch's own choice before any test forces one. */
static int record_startup_impl(void **state)
{
    (void)state;
    impl_at_startup = bf16_impl_current();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_dispatch_picks_best_available),
        cmocka_unit_test(test_bf16_round_ties_to_even),
        cmocka_unit_test(test_bf16_round_overflow_to_inf),
        cmocka_unit_test(test_bf16_round_zeros),
        cmocka_unit_test(test_bf16_round_nan_is_quieted),
        cmocka_unit_test(test_bf16_round_denormals_keep_and_flush),
        cmocka_unit_test(test_bf16_float_wrappers),
        cmocka_unit_test(test_bf16_to_f32_exact_all_patterns),
        cmocka_unit_test(test_bf16_array_matches_scalar_every_impl),
        cmocka_unit_test(test_bf16_array_specials_long),
        cmocka_unit_test(test_bf16_impl_select_rejects_unavailable),
        cmocka_unit_test(test_bf16_impl_names),
        cmocka_unit_test(test_bf16_denormals_parse_and_name),
    };
    return cmocka_run_group_tests(tests, record_startup_impl, NULL);
}
