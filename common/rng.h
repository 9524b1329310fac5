/* This file declares switchsim's seeded random number generator: xoshiro256** (Blackman and
 * Vigna) whose 256-bit state is filled from one 64-bit seed by four outputs of SplitMix64,
 * with uniform integers, uniform reals and normal deviates drawn from it.
 *
 * Algorithms (all in integer or IEEE-754 binary64 arithmetic with no contraction, so a seed
 * gives the same sequence on every platform with IEEE doubles and FLT_EVAL_METHOD == 0):
 * - seeding: x = seed; s[i] = splitmix64(x) for i = 0..3 (x += 0x9e3779b97f4a7c15, then the
 *   xor-shift-multiply finaliser). SplitMix64 never yields four zero words from one seed, so the
 *   state is never all zero, which is xoshiro's only forbidden state.
 * - rng_next_u64: xoshiro256** (result rotl(s1 * 5, 7) * 9; state update with shift 17 and
 *   rotation 45).
 * - rng_uniform: the top 53 bits of one output times 2^-53, in [0, 1).
 * - rng_uniform_f32: lo + (hi - lo) * u in binary64 with u = top 24 bits times 2^-24, rounded
 *   once to binary32; a result that rounds up to hi is redrawn, so the value is in [lo, hi).
 *   For [-1, 1) every value is exact: -1 + k * 2^-23, k uniform in [0, 2^24).
 * - rng_below: uniform integer in [0, n) by rejection (draws below 2^64 mod n are redrawn),
 *   unbiased.
 * - rng_normal: Marsaglia's polar method on two rng_uniform draws mapped to [-1, 1); the
 *   logarithm is computed by this file (frexp plus an atanh series, only + - * / and IEEE
 *   sqrt), not by libm, whose last bit differs between libraries. Deviates come in pairs; the
 *   second is kept in the state and returned by the next call.
 * reference: D. Blackman, S. Vigna, "Scrambled linear pseudorandom number generators", ACM
 * TOMS 47(4), 2021 (xoshiro256**, SplitMix64 seeding); G. Marsaglia, T. A. Bray, "A convenient
 * method for generating normal variables", SIAM Review 6(3), 1964 (polar method).
 */
#ifndef SWITCHSIM_COMMON_RNG_H
#define SWITCHSIM_COMMON_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];  /* xoshiro256** state, never all zero */
    int has_spare;  /* 1 when `spare` holds the second deviate of the last normal pair */
    double spare;   /* that deviate */
} rng_state;

/* Fills the state from seed (any value, 0 included) and drops any pending normal deviate. */
void rng_seed(rng_state *r, uint64_t seed);
/* The next 64 raw bits. */
uint64_t rng_next_u64(rng_state *r);
/* Uniform in [0, 1) with 53 random bits. */
double rng_uniform(rng_state *r);
/* Uniform in [lo, hi); lo < hi, both finite. */
float rng_uniform_f32(rng_state *r, float lo, float hi);
/* x[i] = rng_uniform_f32(r, lo, hi) for i = 0..n-1, in index order. */
void rng_fill_uniform_f32(rng_state *r, float *x, size_t n, float lo, float hi);
/* Uniform integer in [0, n); n >= 1. */
uint64_t rng_below(rng_state *r, uint64_t n);
/* Standard normal deviate N(0, 1). */
double rng_normal(rng_state *r);
/* mean + std * rng_normal(r), rounded once to binary32. */
float rng_normal_f32(rng_state *r, float mean, float std);

#endif
