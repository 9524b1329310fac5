/* This file implements `switchsim numerics bf16`: it rounds the fp32 values given on the
 * command line to bf16 with the array conversion of common/bf16 (so the implementation the
 * dispatch chose is the one shown) and prints, for each value, the fp32 bits, the bf16 bits,
 * the bf16 value and the relative rounding error.
 *
 * Invariants: a VALUE is either "0x" followed by 1 to 8 hex digits, taken as the fp32 bit
 * pattern, or a whole decimal string that strtof reads (rounded to fp32 by strtof, so 1e39
 * is inf); anything else, hex floats included, is a usage error naming the argument. Non-finite
 * values are spelled nan, -nan, inf, -inf in every format. The bf16 value is a JSON real in
 * --format json and "%.9g" text in the table and CSV (the table would otherwise show only 6
 * digits); rel_error is null where it is not finite (NaN or Inf input, overflow to Inf).
 * reference: REFERENCE.md section 7 (numerics facts).
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "common/bf16.h"
#include "common/status.h"

static const char *const denormals_choices[] = {"keep", "flush", NULL};

static const char *const hex_digits = "0123456789abcdefABCDEF";

/* Whether s, after an optional sign, starts with 0x or 0X. */
static int has_hex_prefix(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    return s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
}

/* Parses one VALUE into fp32 bits; returns 0, or -1 if it is neither form. */
static int parse_value(const char *s, uint32_t *bits)
{
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        size_t n = strspn(s + 2, hex_digits);
        if (n < 1 || n > 8 || s[2 + n] != '\0')
            return -1;
        *bits = (uint32_t)strtoul(s + 2, NULL, 16);
        return 0;
    }
    if (s[0] == '\0' || isspace((unsigned char)s[0]) || has_hex_prefix(s))
        return -1;
    char *end;
    float x = strtof(s, &end); /* ERANGE is fine: the result is the correctly rounded fp32 */
    if (end == s || *end != '\0')
        return -1;
    memcpy(bits, &x, sizeof *bits);
    return 0;
}

/* nan, -nan, inf, -inf, or NULL for a finite x. */
static const char *nonfinite_name(double x)
{
    if (isnan(x))
        return signbit(x) ? "-nan" : "nan";
    if (isinf(x))
        return x < 0 ? "-inf" : "inf";
    return NULL;
}

static json_t *value_json(double v, emit_format fmt)
{
    const char *name = nonfinite_name(v);
    if (name)
        return json_string(name);
    if (fmt == EMIT_JSON)
        return json_real(v);
    char text[32];
    snprintf(text, sizeof text, "%.9g", v);
    return json_string(text);
}

/* |b - x| / |x|: 0 when both are zero; null when x is not finite or b overflowed to Inf. */
static json_t *rel_error_json(double x, double b)
{
    if (!isfinite(x) || !isfinite(b))
        return json_null();
    if (x == 0.0)
        return json_real(0.0);
    return json_real(fabs(b - x) / fabs(x));
}

static json_t *row_json(const char *input, uint32_t f32_bits, bf16 h, emit_format fmt)
{
    float x, b = bf16_to_f32(h);
    memcpy(&x, &f32_bits, sizeof x);
    char f32_hex[16], bf16_hex[16];
    snprintf(f32_hex, sizeof f32_hex, "0x%08x", (unsigned)f32_bits);
    snprintf(bf16_hex, sizeof bf16_hex, "0x%04x", (unsigned)h.bits);
    json_t *row = json_object();
    json_object_set_new(row, "input", json_string(input));
    json_object_set_new(row, "f32_bits", json_string(f32_hex));
    json_object_set_new(row, "bf16_bits", json_string(bf16_hex));
    json_object_set_new(row, "bf16_value", value_json(b, fmt));
    json_object_set_new(row, "rel_error", rel_error_json(x, b));
    return row;
}

/* Rounds the n values (fp32 bits in bits[]) and builds the result object. */
static json_t *result_json(char **inputs, const uint32_t *bits, int n, bf16_denormals pol,
                           emit_format fmt)
{
    float *x = malloc((size_t)n * sizeof *x);
    bf16 *h = malloc((size_t)n * sizeof *h);
    if (!x || !h) {
        free(x);
        free(h);
        return NULL;
    }
    memcpy(x, bits, (size_t)n * sizeof *x);
    bf16_from_f32_array(h, x, (size_t)n, pol);

    json_t *obj = json_object();
    json_t *rows = json_array();
    json_object_set_new(obj, "denormals", json_string(bf16_denormals_name(pol)));
    json_object_set_new(obj, "impl", json_string(bf16_impl_name(bf16_impl_current())));
    for (int i = 0; i < n; i++)
        json_array_append_new(rows, row_json(inputs[i], bits[i], h[i], fmt));
    json_object_set_new(obj, "values", rows);
    free(x);
    free(h);
    return obj;
}

/* Parses the VALUEs, rounds them and prints the result; returns the exit status. */
static int run_values(const cli_spec *spec, char **pos, int npos, int denormals, int format)
{
    uint32_t *bits = malloc((size_t)npos * sizeof *bits);
    if (!bits) {
        cli_error("bf16", "out of memory");
        return CLI_EXIT_FAIL;
    }
    for (int i = 0; i < npos; i++) {
        if (parse_value(pos[i], &bits[i]) != 0) {
            cli_error("usage", "bad VALUE '%s': expected a decimal number (1.1, -3e-40, inf, "
                      "nan) or 0x and 1 to 8 hex digits (fp32 bits)", pos[i]);
            fprintf(stderr, "usage: %s\n(see --help)\n", spec->usage);
            free(bits);
            return CLI_EXIT_USAGE;
        }
    }
    bf16_denormals pol = BF16_DENORMALS_KEEP;
    SS_ASSERT(bf16_denormals_parse(denormals_choices[denormals], &pol) == 0);
    json_t *obj = result_json(pos, bits, npos, pol, (emit_format)format);
    free(bits);
    if (!obj) {
        cli_error("bf16", "out of memory");
        return CLI_EXIT_FAIL;
    }
    int rc = CLI_EXIT_OK;
    if (emit_result(stdout, obj, (emit_format)format) != 0) {
        cli_error("bf16", "cannot write the result to stdout");
        rc = CLI_EXIT_FAIL;
    }
    json_decref(obj);
    return rc;
}

int cmd_numerics_bf16(int argc, char **argv)
{
    int denormals = 0, format = EMIT_TABLE;
    cli_opt opts[] = {
        {.name = "denormals", .type = CLI_OPT_CHOICE, .dest = &denormals,
         .help = "fp32 denormal inputs: keep (gradual underflow) or flush to signed zero",
         .choices = denormals_choices},
        {.name = "format", .type = CLI_OPT_CHOICE, .dest = &format,
         .help = "output format", .choices = cli_format_choices},
    };
    cli_spec spec = {
        .usage = "switchsim numerics bf16 [--denormals keep|flush] [--format table|csv|json] "
                 "VALUE...",
        .description =
            "Rounds each fp32 VALUE to bf16 (round to nearest, ties to even; NaN stays NaN\n"
            "with the quiet bit 0x0040 set; values past the largest finite bf16 become Inf)\n"
            "and prints the fp32 bits, the bf16 bits, the bf16 value and the relative\n"
            "rounding error |bf16 - x| / |x| (\"-\" for NaN and Inf inputs and for overflow).\n\n"
            "A VALUE is a decimal number as strtof reads it (1.1, -1.5, -3e-40, inf, nan),\n"
            "rounded to fp32 first, or 0x followed by 1 to 8 hex digits, taken as the fp32\n"
            "bit pattern (0x3f808000). Negative numbers need no \"--\".",
        .opts = opts,
        .nopts = (int)(sizeof opts / sizeof opts[0]),
        .min_pos = 1,
        .max_pos = -1,
        .epilog = "examples:\n"
                  "  switchsim numerics bf16 1.1 -1.5 0x3f808000 3.4e38 nan\n"
                  "  switchsim numerics bf16 --denormals flush --format json -3e-40",
    };
    char **pos = malloc((size_t)argc * sizeof *pos);
    if (!pos) {
        cli_error("bf16", "out of memory");
        return CLI_EXIT_FAIL;
    }
    int npos = 0, rc;
    switch (cli_parse(&spec, argc, argv, pos, &npos)) {
    case CLI_PARSE_OK: rc = run_values(&spec, pos, npos, denormals, format); break;
    case CLI_PARSE_HELP: rc = CLI_EXIT_OK; break;
    default: rc = CLI_EXIT_USAGE; break;
    }
    free(pos);
    return rc;
}
