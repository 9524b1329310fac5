/* This file implements the seeded generator of rng.h: SplitMix64 seeding of xoshiro256**,
 * uniform integers and reals, and normal deviates by the polar method with a logarithm of its
 * own so that the sequence is the same on every platform.
 *
 * Invariants: the state is never all zero; every real is derived from the raw bits with
 * binary64 operations whose results IEEE-754 fixes exactly (+ - * /, sqrt, frexp), never with a
 * libm function that may differ in the last bit; the build has -ffp-contract=off, so no
 * multiply-add is fused behind our back.
 * reference: Blackman and Vigna, ACM TOMS 47(4), 2021; Marsaglia and Bray, SIAM Review 6(3),
 * 1964.
 */
#include "rng.h"

#include <math.h>

#include "status.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void rng_seed(rng_state *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0.0;
    SS_ASSERT((r->s[0] | r->s[1] | r->s[2] | r->s[3]) != 0);
}

uint64_t rng_next_u64(rng_state *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(rng_state *r)
{
    return (double)(rng_next_u64(r) >> 11) * 0x1p-53;
}

float rng_uniform_f32(rng_state *r, float lo, float hi)
{
    SS_ASSERT(isfinite(lo) && isfinite(hi) && lo < hi);
    const double width = (double)hi - (double)lo;
    for (;;) {
        const double u = (double)(rng_next_u64(r) >> 40) * 0x1p-24;
        const float x = (float)((double)lo + width * u);
        if (x < hi)
            return x;
    }
}

void rng_fill_uniform_f32(rng_state *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rng_uniform_f32(r, lo, hi);
}

uint64_t rng_below(rng_state *r, uint64_t n)
{
    SS_ASSERT(n >= 1);
    /* 2^64 mod n: drawing below it would make the low residues more likely. */
    const uint64_t threshold = (0 - n) % n;
    for (;;) {
        const uint64_t x = rng_next_u64(r);
        if (x >= threshold)
            return x % n;
    }
}

/* Natural logarithm of a positive finite x, correct to a few ulps, using only operations whose
 * results IEEE-754 fixes: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), then
 * log(m) = 2 atanh(f) = 2 (f + f^3/3 + f^5/5 + ...), f = (m - 1) / (m + 1), |f| < 0.172;
 * 13 terms leave a truncation error below f^27/27 < 1e-21. */
static double portable_log(double x)
{
    int e = 0;
    double m = frexp(x, &e); /* m in [0.5, 1) */
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e -= 1;
    }
    const double f = (m - 1.0) / (m + 1.0);
    const double f2 = f * f;
    double series = 0.0;
    for (int k = 12; k >= 0; k--)
        series = 1.0 / (double)(2 * k + 1) + f2 * series;
    const double ln2 = 0.69314718055994530942;
    return (double)e * ln2 + 2.0 * f * series;
}

double rng_normal(rng_state *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * rng_uniform(r) - 1.0;
        v = 2.0 * rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    const double factor = sqrt(-2.0 * portable_log(s) / s);
    r->spare = v * factor;
    r->has_spare = 1;
    return u * factor;
}

float rng_normal_f32(rng_state *r, float mean, float std)
{
    return (float)((double)mean + (double)std * rng_normal(r));
}
