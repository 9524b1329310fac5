/* This file implements the byte counts of config values (cfg.h: cfg_bytes_parse,
 * cfg_bytes_format): an integer with an optional SI (kB ... EB) or binary (KiB ... EiB) unit,
 * parsed exactly in 64-bit integers, and the shortest exact way to write a count back.
 *
 * Invariants: parsing never rounds (a fraction is accepted only when the count comes out a
 * whole number of bytes) and never overflows silently; formatting round-trips through parsing.
 */
#include "cfg.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    uint64_t factor;
} byte_unit;

#define KI_ ((uint64_t)1024)
#define K_ ((uint64_t)1000)
static const byte_unit byte_units[] = {
    {"EiB", KI_ * KI_ * KI_ * KI_ * KI_ * KI_}, {"PiB", KI_ * KI_ * KI_ * KI_ * KI_},
    {"TiB", KI_ * KI_ * KI_ * KI_}, {"GiB", KI_ * KI_ * KI_}, {"MiB", KI_ * KI_},
    {"KiB", KI_}, {"EB", K_ * K_ * K_ * K_ * K_ * K_}, {"PB", K_ * K_ * K_ * K_ * K_},
    {"TB", K_ * K_ * K_ * K_}, {"GB", K_ * K_ * K_}, {"MB", K_ * K_}, {"kB", K_}, {"KB", K_},
    {"B", 1},
};
static const size_t nbyte_units = sizeof byte_units / sizeof byte_units[0];

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

int cfg_bytes_parse(const char *text, uint64_t *out, const char **why)
{
    const char *p = text;
    while (*p == ' ')
        p++;
    if (*p == '-') {
        *why = "a byte count cannot be negative";
        return -1;
    }
    if (*p == '+')
        p++;
    /* mantissa as an integer with `frac` decimal digits after the point */
    uint64_t mant = 0, div = 1;
    int digits = 0, frac = 0, overflow = 0;
    for (; (*p >= '0' && *p <= '9') || (*p == '.' && !frac); p++) {
        if (*p == '.') {
            frac = 1;
            continue;
        }
        uint64_t digit = (uint64_t)(*p - '0');
        if (mant > (UINT64_MAX - digit) / 10 || (frac && div > UINT64_MAX / 10)) {
            overflow = 1;
        } else {
            mant = mant * 10 + digit;
            if (frac)
                div *= 10;
        }
        digits++;
    }
    if (digits == 0) {
        *why = "expected a number of bytes, optionally with a unit (\"32 GiB\", \"900 MB\")";
        return -1;
    }
    while (*p == ' ')
        p++;
    uint64_t factor = 1;
    if (*p) {
        size_t u = 0;
        while (u < nbyte_units && strcmp(p, byte_units[u].name) != 0)
            u++;
        if (u == nbyte_units) {
            *why = "unknown unit; use B, kB, MB, GB, TB, PB, EB (powers of 1000) or KiB, MiB, "
                   "GiB, TiB, PiB, EiB (powers of 1024)";
            return -1;
        }
        factor = byte_units[u].factor;
    }
    if (overflow) {
        *why = "the byte count does not fit in 64 bits";
        return -1;
    }
    /* value = mant * factor / div, exactly */
    uint64_t g = gcd_u64(mant, div);
    if (g > 1) {
        mant /= g;
        div /= g;
    }
    g = gcd_u64(factor, div);
    factor /= g;
    div /= g;
    if (div != 1) {
        *why = "a byte count must be a whole number of bytes";
        return -1;
    }
    if (mant != 0 && factor > UINT64_MAX / mant) {
        *why = "the byte count does not fit in 64 bits (at most 16 EiB - 1)";
        return -1;
    }
    *out = mant * factor;
    return 0;
}

void cfg_bytes_format(char *buf, size_t n, uint64_t bytes)
{
    for (size_t u = 0; u + 1 < nbyte_units; u++) {
        if (bytes != 0 && bytes % byte_units[u].factor == 0) {
            snprintf(buf, n, "%llu %s", (unsigned long long)(bytes / byte_units[u].factor),
                     byte_units[u].name);
            return;
        }
    }
    snprintf(buf, n, "%llu B", (unsigned long long)bytes);
}

