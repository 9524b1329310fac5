/* This file implements the tests of `switchsim numerics gemm` (cli/cmd_numerics_gemm.c),
 * called in-process with stdout captured: the JSON fields and their relations, the checksum
 * and errors recomputed here from their documented definitions, determinism, the CSV header,
 * --help and the usage errors (exit status 2).
 *
 * Invariants: the recomputation uses the scalar bf16_round_f32 and hashes a byte buffer built
 * explicitly in little-endian order, so it shares no code with the command beyond the
 * generator and sim_gemm themselves.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "cli/cli.h"
#include "common/bf16.h"
#include "common/rng.h"
#include "sim/mxu_gemm.h"

/* Runs `gemm args...` and returns its exit status; *out receives stdout (caller frees). */
static int run_cmd(char **out, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "gemm";
    for (; args[argc - 1]; argc++) {
        assert_true(argc < 31);
        argv[argc] = (char *)args[argc - 1];
    }
    argv[argc] = NULL;
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stdout);
    const int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
    const int rc = cmd_numerics_gemm(argc, argv);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    assert_int_equal(fseek(tmp, 0, SEEK_END), 0);
    const long size = ftell(tmp);
    assert_true(size >= 0);
    rewind(tmp);
    *out = calloc((size_t)size + 1, 1);
    assert_non_null(*out);
    assert_int_equal(fread(*out, 1, (size_t)size, tmp), (size_t)size);
    fclose(tmp);
    return rc;
}

static json_t *run_json(const char *const *args)
{
    char *out = NULL;
    assert_int_equal(run_cmd(&out, args), 0);
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    if (!j)
        print_error("not JSON (%s): %s\n", jerr.text, out);
    assert_non_null(j);
    free(out);
    return j;
}

static double real_field(const json_t *j, const char *key)
{
    const json_t *v = json_object_get(j, key);
    assert_non_null(v);
    assert_true(json_is_real(v));
    return json_real_value(v);
}

static void test_numerics_gemm_cmd_json_fields(void **state)
{
    (void)state;
    for (int fast = 0; fast <= 1; fast++) {
        const char *const args[] = {"--m", "33", "--k", "300", "--n", "70", "--seed", "5",
                                    "--mode", fast ? "fast" : "exact", "--format", "json", NULL};
        json_t *j = run_json(args);
        assert_int_equal(json_integer_value(json_object_get(j, "m")), 33);
        assert_int_equal(json_integer_value(json_object_get(j, "k")), 300);
        assert_int_equal(json_integer_value(json_object_get(j, "n")), 70);
        assert_int_equal(json_integer_value(json_object_get(j, "seed")), 5);
        assert_int_equal(json_integer_value(json_object_get(j, "tile_k")), 128);
        assert_string_equal(json_string_value(json_object_get(j, "mode")),
                            fast ? "fast" : "exact");
        assert_string_equal(json_string_value(json_object_get(j, "denormals")), "keep");
        const double abs_err = real_field(j, "max_abs_err"), rel = real_field(j, "max_rel_err");
        const double max_ref = real_field(j, "max_abs_ref"), bound = real_field(j, "error_bound");
        const double gamma = real_field(j, "error_gamma");
        print_message("  %s: max_abs_err %.3g max_rel_err %.3g error_bound %.3g gamma %.3g\n",
                      fast ? "fast" : "exact", abs_err, rel, bound, gamma);
        assert_true(abs_err > 0.0 && abs_err <= bound);
        assert_true(rel == abs_err / max_ref);
        const double n = fast ? 300 : 127 + 3;
        assert_true(gamma == n * 0x1p-24 / (1.0 - n * 0x1p-24));
        assert_true(json_is_true(json_object_get(j, "within_bound")));
        const char *sum = json_string_value(json_object_get(j, "checksum"));
        assert_non_null(sum);
        assert_int_equal(strlen(sum), 16);
        assert_int_equal(strspn(sum, "0123456789abcdef"), 16);
        json_decref(j);
    }
}

/* FNV-1a 64 over a byte buffer. */
static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

/* The checksum and max_abs_err from their definitions in --help. */
static void test_numerics_gemm_cmd_definitions(void **state)
{
    (void)state;
    enum { M = 9, K = 130, N = 17 };
    const char *const args[] = {"--m", "9", "--k", "130", "--n", "17", "--seed", "77",
                                "--denormals", "flush", "--format", "json", NULL};
    json_t *j = run_json(args);

    static float A[M * K], B[K * N], C[M * N];
    rng_state r;
    rng_seed(&r, 77);
    for (size_t i = 0; i < M * K; i++)
        A[i] = bf16_round_f32(rng_uniform_f32(&r, -1.0f, 1.0f), BF16_DENORMALS_FLUSH);
    for (size_t i = 0; i < K * N; i++)
        B[i] = bf16_round_f32(rng_uniform_f32(&r, -1.0f, 1.0f), BF16_DENORMALS_FLUSH);
    sim_gemm_cfg cfg = sim_gemm_cfg_default();
    cfg.denormals = BF16_DENORMALS_FLUSH;
    assert_int_equal(sim_gemm(C, N, A, K, 0, B, N, 0, M, K, N, 0, &cfg, NULL), SS_OK);

    static unsigned char bytes[2 * (M * K + K * N) + 4 * M * N];
    size_t nb = 0;
    for (size_t i = 0; i < M * K + K * N; i++) {
        const float x = i < M * K ? A[i] : B[i - M * K];
        uint32_t u;
        memcpy(&u, &x, sizeof u);
        assert_true((u & 0xffff) == 0); /* bf16: low half zero */
        bytes[nb++] = (unsigned char)(u >> 16);
        bytes[nb++] = (unsigned char)(u >> 24);
    }
    double max_err = 0.0, max_ref = 0.0;
    for (size_t i = 0; i < M; i++) {
        for (size_t jj = 0; jj < N; jj++) {
            double ref = 0.0;
            for (size_t k = 0; k < K; k++)
                ref += (double)A[i * K + k] * (double)B[k * N + jj];
            max_err = fmax(max_err, fabs(C[i * N + jj] - ref));
            max_ref = fmax(max_ref, fabs(ref));
            uint32_t u;
            memcpy(&u, &C[i * N + jj], sizeof u);
            for (int b = 0; b < 4; b++)
                bytes[nb++] = (unsigned char)(u >> (8 * b));
        }
    }
    char want[17];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)fnv1a(bytes, nb));
    const char *got = json_string_value(json_object_get(j, "checksum"));
    print_message("  checksum %s (recomputed %s); max_abs_err %.9g (recomputed %.9g)\n", got,
                  want, real_field(j, "max_abs_err"), max_err);
    assert_string_equal(got, want);
    assert_true(real_field(j, "max_abs_err") == max_err);
    assert_true(real_field(j, "max_abs_ref") == max_ref);
    json_decref(j);
}

/* Same options, same bytes; another seed or mode, another checksum. */
static void test_numerics_gemm_cmd_deterministic(void **state)
{
    (void)state;
    const char *const a[] = {"--m", "20", "--k", "257", "--n", "40", "--seed", "3", NULL};
    const char *const b[] = {"--m", "20", "--k", "257", "--n", "40", "--seed", "4", NULL};
    char *o1 = NULL, *o2 = NULL, *o3 = NULL;
    assert_int_equal(run_cmd(&o1, a), 0);
    assert_int_equal(run_cmd(&o2, a), 0);
    assert_int_equal(run_cmd(&o3, b), 0);
    assert_string_equal(o1, o2);
    assert_true(strcmp(o1, o3) != 0);
    assert_non_null(strstr(o1, "checksum"));
    free(o1);
    free(o2);
    free(o3);
    const char *const ex[] = {"--m", "8", "--k", "512", "--n", "8", "--format", "json", NULL};
    const char *const fa[] = {"--m",    "8",    "--k",      "512",  "--n", "8",
                              "--mode", "fast", "--format", "json", NULL};
    json_t *je = run_json(ex), *jf = run_json(fa);
    print_message("  exact %s, fast %s\n", json_string_value(json_object_get(je, "checksum")),
                  json_string_value(json_object_get(jf, "checksum")));
    assert_string_not_equal(json_string_value(json_object_get(je, "checksum")),
                            json_string_value(json_object_get(jf, "checksum")));
    json_decref(je);
    json_decref(jf);
}

static void test_numerics_gemm_cmd_csv(void **state)
{
    (void)state;
    const char *const args[] = {"--m", "4", "--k", "4", "--n", "4", "--format", "csv", NULL};
    char *out = NULL;
    assert_int_equal(run_cmd(&out, args), 0);
    print_message("%s", out);
    assert_non_null(strstr(out, "max_abs_err"));
    assert_non_null(strstr(out, "max_rel_err"));
    assert_non_null(strstr(out, "checksum"));
    free(out);
}

static void test_numerics_gemm_cmd_usage(void **state)
{
    (void)state;
    const char *const bad[][16] = {
        {"--m", "4", "--k", "4", NULL},                          /* --n missing */
        {"--m", "0", "--k", "4", "--n", "4", NULL},              /* below 1 */
        {"--m", "16385", "--k", "4", "--n", "4", NULL},          /* above 16384 */
        {"--m", "16384", "--k", "16384", "--n", "4", NULL},      /* beyond 2 GiB */
        {"--m", "4", "--k", "4", "--n", "4", "--mode", "slow", NULL},
        {"--m", "4", "--k", "4", "--n", "4", "--seed", "9223372036854775808", NULL},
        {"--m", "4", "--k", "4", "--n", "4", "--tile-k", "0", NULL},
        {"--m", "4", "--k", "4", "--n", "4", "extra", NULL},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        char *out = NULL;
        assert_int_equal(run_cmd(&out, bad[c]), 2);
        assert_string_equal(out, ""); /* nothing on stdout */
        free(out);
    }
    const char *const help[] = {"--help", NULL};
    char *out = NULL;
    assert_int_equal(run_cmd(&out, help), 0);
    assert_non_null(strstr(out, "[-1, 1)"));
    assert_non_null(strstr(out, "FNV-1a 64"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numerics_gemm_cmd_json_fields),
        cmocka_unit_test(test_numerics_gemm_cmd_definitions),
        cmocka_unit_test(test_numerics_gemm_cmd_deterministic),
        cmocka_unit_test(test_numerics_gemm_cmd_csv),
        cmocka_unit_test(test_numerics_gemm_cmd_usage),
    };
    return cmocka_run_group_tests_name("numerics_gemm_cmd", tests, NULL, NULL);
}
