/* This file implements `switchsim numerics gemm`: one random bf16 GEMM on the matrix-unit model
 * (sim/mxu_gemm.c), compared with an fp64 reference computed from the same bf16 operands, with
 * its largest errors, the error bound of the chosen mode and a checksum of inputs and output.
 *
 * Invariants: the output depends only on the options (no timings, no addresses), so the same
 * options print the same bytes on every run; in exact mode also on every platform with IEEE
 * arithmetic, in fast mode only for the same OpenBLAS build, core and thread count. A bound
 * violation prints the result and exits 1; sizes beyond the memory limit are usage errors (2).
 * See cli.h for exit statuses.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "common/bf16.h"
#include "common/rng.h"
#include "sim/mxu_gemm.h"

enum { MAX_DIM = 16384 };
#define MAX_BYTES ((uint64_t)2 << 30) /* working set limit, see bytes_needed */
#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

static const char *const mode_choices[] = {"exact", "fast", NULL};
static const char *const denormal_choices[] = {"keep", "flush", NULL};

typedef struct {
    long m, k, n, tile_k;
    uint64_t seed;
    int mode, denormals, format; /* indices into the choice lists */
} gemm_opts;

/* Errors of C against the reference, over all elements. */
typedef struct {
    double max_abs_err; /* max |C - ref| */
    double max_abs_ref; /* max |ref| */
    double max_bound;   /* max gamma * sum_k |a b| */
    int within_bound;   /* every element within its own bound */
} gemm_errors;

/* ---- options ------------------------------------------------------------------------ */

/* A, B, their scratch copies inside sim_gemm, C, and the fp64 reference and magnitudes. */
static uint64_t bytes_needed(uint64_t M, uint64_t K, uint64_t N)
{
    return 8 * (M * K + K * N) + 20 * M * N;
}

static int parse_opts(gemm_opts *o, int argc, char **argv)
{
    cli_opt opts[] = {
        {"m", CLI_OPT_INT, &o->m, "M", "rows of A and C", NULL, 1, MAX_DIM, 1},
        {"k", CLI_OPT_INT, &o->k, "K", "columns of A, rows of B (the summed dimension)", NULL, 1,
         MAX_DIM, 1},
        {"n", CLI_OPT_INT, &o->n, "N", "columns of B and C", NULL, 1, MAX_DIM, 1},
        {"seed", CLI_OPT_U64, &o->seed, "S", "seed of the generator (0 .. 2^63-1)", NULL, 0, 0,
         0},
        {"mode", CLI_OPT_CHOICE, &o->mode, NULL,
         "exact: systolic summation order; fast: cblas_sgemm", mode_choices, 0, 0, 0},
        {"denormals", CLI_OPT_CHOICE, &o->denormals, NULL,
         "denormal policy of the bf16 operand rounding", denormal_choices, 0, 0, 0},
        {"tile-k", CLI_OPT_INT, &o->tile_k, "T", "rows of the systolic array (K per tile)",
         NULL, 1, MAX_DIM, 0},
        {"format", CLI_OPT_CHOICE, &o->format, NULL, "output format", cli_format_choices, 0, 0,
         0},
    };
    cli_spec spec = {
        "switchsim numerics gemm --m M --k K --n N [OPTIONS]",
        "Runs one random GEMM C[M,N] = A[M,K] x B[K,N] on the matrix-unit model and compares it\n"
        "with an fp64 reference. Inputs: the switchsim generator (xoshiro256** seeded by\n"
        "SplitMix64 from --seed, common/rng.h) draws A in row-major order, then B, uniform in\n"
        "[-1, 1) (values -1 + j * 2^-23); both are rounded to bf16 (nearest even, --denormals).\n"
        "The reference sums the same bf16 products in fp64, in k order.\n\n"
        "Output: max_abs_err = max |C - ref| over all elements; max_rel_err = max_abs_err /\n"
        "max |ref| (relative to the largest reference element, not per element); error_gamma =\n"
        "gamma_n = n u / (1 - n u), u = 2^-24, with n = (min(T, K) - 1) + ceil(K / T) in exact\n"
        "mode and n = K in fast mode; error_bound = max over elements of gamma_n * sum_k |a b|;\n"
        "within_bound says whether every element is within its own bound (plus the fp64\n"
        "reference's own rounding); checksum = FNV-1a 64 (offset 0xcbf29ce484222325, prime\n"
        "0x100000001b3) over the bf16 bits of A then B (2 bytes each, low byte first, row-major)\n"
        "then the fp32 bits of C (4 bytes each, low byte first), as 16 lowercase hex digits.\n"
        "The output is deterministic: in exact mode the same on every IEEE platform, in fast\n"
        "mode for the same OpenBLAS build, core and thread count. Exit status 1 if an element\n"
        "exceeds its bound.\n"
        "Memory: 8 (MK + KN) + 20 MN bytes must stay within 2 GiB.",
        opts,
        (int)(sizeof opts / sizeof opts[0]),
        0,
        0,
        "examples:\n"
        "  switchsim numerics gemm --m 256 --k 1024 --n 256 --seed 7\n"
        "  switchsim numerics gemm --m 128 --k 4096 --n 64 --mode fast --format json",
    };
    char *pos[argc]; /* cli_parse stores positional arguments before rejecting them */
    int npos = 0;
    const int rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc == CLI_PARSE_HELP)
        return CLI_PARSE_HELP;
    if (rc != CLI_PARSE_OK)
        return CLI_PARSE_ERROR;
    if (o->seed > (uint64_t)INT64_MAX) {
        cli_error("usage", "--seed must be at most 2^63-1, got %" PRIu64, o->seed);
        return CLI_PARSE_ERROR;
    }
    const uint64_t bytes = bytes_needed((uint64_t)o->m, (uint64_t)o->k, (uint64_t)o->n);
    if (bytes > MAX_BYTES) {
        cli_error("usage",
                  "--m %ld --k %ld --n %ld needs %" PRIu64 " bytes (8 (MK + KN) + 20 MN); the "
                  "limit is %" PRIu64 " (2 GiB)",
                  o->m, o->k, o->n, bytes, MAX_BYTES);
        return CLI_PARSE_ERROR;
    }
    return CLI_PARSE_OK;
}

/* ---- computation -------------------------------------------------------------------- */

static void make_operands(float *A, float *B, size_t M, size_t K, size_t N, uint64_t seed,
                          bf16_denormals pol)
{
    rng_state r;
    rng_seed(&r, seed);
    rng_fill_uniform_f32(&r, A, M * K, -1.0f, 1.0f);
    rng_fill_uniform_f32(&r, B, K * N, -1.0f, 1.0f);
    bf16_round_f32_array(A, M * K, pol);
    bf16_round_f32_array(B, K * N, pol);
}

/* ref[i][j] = sum_k a b in fp64 in k order (exact products), mag[i][j] = sum_k |a b|. */
static void reference(double *ref, double *mag, const float *A, const float *B, size_t M,
                      size_t K, size_t N)
{
    for (size_t i = 0; i < M; i++) {
        double *r = ref + i * N, *g = mag + i * N;
        memset(r, 0, N * sizeof(double));
        memset(g, 0, N * sizeof(double));
        for (size_t k = 0; k < K; k++) {
            const double a = A[i * K + k];
            const float *b = B + k * N;
            for (size_t j = 0; j < N; j++) {
                const double p = a * (double)b[j];
                r[j] += p;
                g[j] += fabs(p);
            }
        }
    }
}

static gemm_errors measure_errors(const float *C, const double *ref, const double *mag,
                                  size_t count, size_t K, double gamma)
{
    /* the fp64 reference's own rounding: K adds at u = 2^-53 */
    const double nu = (double)K * 0x1p-53, gamma_ref = nu / (1.0 - nu);
    gemm_errors e = {0.0, 0.0, 0.0, 1};
    for (size_t i = 0; i < count; i++) {
        const double err = fabs((double)C[i] - ref[i]);
        e.max_abs_err = fmax(e.max_abs_err, err);
        e.max_abs_ref = fmax(e.max_abs_ref, fabs(ref[i]));
        e.max_bound = fmax(e.max_bound, gamma * mag[i]);
        if (!(err <= (gamma + gamma_ref) * mag[i]))
            e.within_bound = 0;
    }
    return e;
}

/* FNV-1a 64 step over the low nbytes of w, least significant byte first. */
static uint64_t fnv_le(uint64_t h, uint32_t w, int nbytes)
{
    for (int b = 0; b < nbytes; b++) {
        h ^= (w >> (8 * b)) & 0xff;
        h *= FNV_PRIME;
    }
    return h;
}

/* The bf16 bits of an already-rounded operand, 2 bytes per element. */
static uint64_t fnv_bf16(uint64_t h, const float *x, size_t n, bf16_denormals pol)
{
    for (size_t i = 0; i < n; i++)
        h = fnv_le(h, bf16_from_f32(x[i], pol).bits, 2);
    return h;
}

/* The fp32 bits, 4 bytes per element. */
static uint64_t fnv_f32(uint64_t h, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        h = fnv_le(h, u, 4);
    }
    return h;
}

static uint64_t checksum(const float *A, const float *B, const float *C, size_t M, size_t K,
                         size_t N, bf16_denormals pol)
{
    uint64_t h = FNV_OFFSET;
    h = fnv_bf16(h, A, M * K, pol);
    h = fnv_bf16(h, B, K * N, pol);
    return fnv_f32(h, C, M * N);
}

/* ---- output ------------------------------------------------------------------------- */

static json_t *result_json(const gemm_opts *o, const gemm_errors *e, double gamma,
                           uint64_t sum)
{
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, sum);
    json_t *j = json_object();
    json_object_set_new(j, "m", json_integer(o->m));
    json_object_set_new(j, "k", json_integer(o->k));
    json_object_set_new(j, "n", json_integer(o->n));
    json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(j, "mode", json_string(mode_choices[o->mode]));
    json_object_set_new(j, "denormals", json_string(denormal_choices[o->denormals]));
    json_object_set_new(j, "tile_k", json_integer(o->tile_k));
    json_object_set_new(j, "max_abs_err", json_real(e->max_abs_err));
    json_object_set_new(j, "max_rel_err", e->max_abs_ref > 0.0
                                              ? json_real(e->max_abs_err / e->max_abs_ref)
                                              : json_null());
    json_object_set_new(j, "max_abs_ref", json_real(e->max_abs_ref));
    json_object_set_new(j, "error_gamma", json_real(gamma));
    json_object_set_new(j, "error_bound", json_real(e->max_bound));
    json_object_set_new(j, "within_bound", json_boolean(e->within_bound));
    json_object_set_new(j, "checksum", json_string(hex));
    return j;
}

static sim_gemm_cfg make_cfg(const gemm_opts *o)
{
    sim_gemm_cfg cfg = sim_gemm_cfg_default();
    const int parsed = sim_gemm_mode_parse(mode_choices[o->mode], &cfg.mode) == 0 &&
                       bf16_denormals_parse(denormal_choices[o->denormals], &cfg.denormals) == 0;
    SS_ASSERT(parsed); /* the choice lists hold the names these parsers accept */
    cfg.operands = SIM_OPERANDS_BF16;
    cfg.tile_k = (int)o->tile_k;
    return cfg;
}

/* Runs the GEMM and the reference on allocated buffers and prints the result. */
static int run(const gemm_opts *o, float *A, float *B, float *C, double *ref, double *mag)
{
    const size_t M = (size_t)o->m, K = (size_t)o->k, N = (size_t)o->n;
    const sim_gemm_cfg cfg = make_cfg(o);
    make_operands(A, B, M, K, N, o->seed, cfg.denormals);
    ss_err err = {0};
    if (sim_gemm(C, N, A, K, 0, B, N, 0, M, K, N, 0, &cfg, &err) != SS_OK) {
        cli_error("numerics gemm", "%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    reference(ref, mag, A, B, M, K, N);
    const double gamma = sim_gemm_error_gamma(&cfg, K);
    const gemm_errors e = measure_errors(C, ref, mag, M * N, K, gamma);
    json_t *j = result_json(o, &e, gamma, checksum(A, B, C, M, K, N, cfg.denormals));
    const int wrote = emit_result(stdout, j, (emit_format)o->format);
    json_decref(j);
    if (wrote != 0) {
        cli_error("numerics gemm", "cannot write the result to stdout");
        return CLI_EXIT_FAIL;
    }
    if (!e.within_bound) {
        cli_error("numerics gemm", "an element exceeds its error bound (max error %g)",
                  e.max_abs_err);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

int cmd_numerics_gemm(int argc, char **argv)
{
    gemm_opts o = {0, 0, 0, 128, 1, 0, 0, EMIT_TABLE};
    const int p = parse_opts(&o, argc, argv);
    if (p == CLI_PARSE_HELP)
        return CLI_EXIT_OK;
    if (p != CLI_PARSE_OK)
        return CLI_EXIT_USAGE;
    const size_t M = (size_t)o.m, K = (size_t)o.k, N = (size_t)o.n;
    float *A = malloc(M * K * sizeof(float)), *B = malloc(K * N * sizeof(float));
    float *C = malloc(M * N * sizeof(float));
    double *ref = malloc(M * N * sizeof(double)), *mag = malloc(M * N * sizeof(double));
    int rc;
    if (!A || !B || !C || !ref || !mag) {
        cli_error("numerics gemm", "cannot allocate the matrices (%.2f GiB)",
                  (double)bytes_needed(M, K, N) / (double)(1 << 30));
        rc = CLI_EXIT_FAIL;
    } else {
        rc = run(&o, A, B, C, ref, mag);
    }
    free(A);
    free(B);
    free(C);
    free(ref);
    free(mag);
    return rc;
}
