/* This file implements the tests of `switchsim op`: it runs the built command ($SWITCHSIM) on
 * configs/chips/tpu-v3.yaml (under $SWITCHSIM_SOURCE_ROOT) and checks exit statuses, help
 * texts, and that the printed figures equal the timing model called in-process on the same
 * chip file.
 *
 * Invariants: every run's stdout and stderr are captured (tests/support/cli_child.h) and
 * printed; a usage error exits 2, a bad chip file exits 1 with a message naming it, success
 * exits 0.
 */
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
#include <math.h>

#include "cli_child.h"
#include "sim/chip.h"
#include "sim/timing.h"

static void chip_path(char *buf, size_t n)
{
    if (cli_child_source_path(buf, n, "configs/chips/tpu-v3.yaml") != 0)
        fail();
}

/* Runs "$SWITCHSIM args" (args already shell-quoted where needed) and prints the transcript. */
static void run(cli_child_result *r, const char *args)
{
    cli_child_run(r, "%s", args);
    cli_child_print(r, stdout, r->out_len);
}

static void expect_status(const char *args, int status, const char *needle_out,
                          const char *needle_err)
{
    cli_child_result r;
    run(&r, args);
    assert_int_equal(r.status, status);
    if (needle_out)
        assert_non_null(strstr(r.out, needle_out));
    if (needle_err)
        assert_non_null(strstr(r.err, needle_err));
    cli_child_free(&r);
}

static sim_chip load_v3(void)
{
    char path[4096];
    chip_path(path, sizeof path);
    sim_chip chip;
    ss_err err = {0};
    if (sim_chip_load(&chip, path, &err) != SS_OK)
        fail_msg("cannot load %s: %s", path, err.msg);
    return chip;
}

/* The JSON that "$SWITCHSIM args" prints with exit status 0. */
static json_t *run_json(const char *args)
{
    json_t *o = cli_child_json_shown(SIZE_MAX, "%s", args);
    assert_non_null(o);
    return o;
}

static void assert_json_close(const json_t *o, const char *key, double want, double tol)
{
    const json_t *v = json_object_get(o, key);
    assert_non_null(v);
    double got = json_number_value(v);
    double rel = fabs(got - want) / fabs(want);
    printf("  %s: printed %.17g model %.17g rel diff %.3g\n", key, got, want, rel);
    assert_true(rel <= tol);
}

static void test_op_cli_help_lists_operations(void **state)
{
    (void)state;
    expect_status("op --help", 0, "gemm", NULL);
    expect_status("op --help", 0, "vector", NULL);
    expect_status("op gemm --help", 0, "examples:", NULL);
    expect_status("op gemm --help", 0, "SCALE-Sim", NULL);
    expect_status("op vector --help", 0, "startup", NULL);
    expect_status("--help", 0, "op", NULL);
}

static void test_op_cli_gemm_json_matches_model(void **state)
{
    (void)state;
    char path[4096], args[8192];
    chip_path(path, sizeof path);
    sim_chip chip = load_v3();
    struct {
        uint64_t M, K, N;
        sim_operands dt;
        int db, passes;
        const char *flags;
    } cases[] = {
        {8192, 4096, 4096, SIM_OPERANDS_BF16, 1, 6, ""},
        {1, 8192, 8192, SIM_OPERANDS_F32, 1, 3, "--dtype fp32 --fp32-passes 3"},
        {8, 129, 300, SIM_OPERANDS_BF16, 0, 6, "--double-buffer off"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(args, sizeof args, "op gemm --chip '%s' --m %llu --k %llu --n %llu %s "
                                    "--format json",
                 path, (unsigned long long)cases[i].M, (unsigned long long)cases[i].K,
                 (unsigned long long)cases[i].N, cases[i].flags);
        json_t *o = run_json(args);
        sim_matmul_op op = sim_matmul_op_default(cases[i].M, cases[i].K, cases[i].N);
        op.operands = cases[i].dt;
        op.double_buffer = cases[i].db;
        op.fp32_passes = cases[i].passes;
        sim_matmul_timing t;
        ss_err err = {0};
        assert_int_equal(sim_matmul_time(&t, &chip, &op, &err), SS_OK);
        assert_int_equal(json_integer_value(json_object_get(o, "cycles")), t.cycles);
        assert_json_close(o, "seconds", t.seconds, 1e-15);
        assert_json_close(o, "utilization", t.mxu_utilization, 1e-15);
        assert_json_close(o, "tflops", (double)t.flops / t.seconds / 1e12, 1e-15);
        assert_int_equal(json_integer_value(json_object_get(o, "bytes_moved")),
                         t.bytes_read + t.bytes_written);
        assert_int_equal(json_integer_value(json_object_get(o, "tiles")), t.tiles);
        assert_string_equal(json_string_value(json_object_get(o, "bound")),
                            sim_bound_name(t.bound));
        json_decref(o);
    }
}

static void test_op_cli_gemm_table_and_csv(void **state)
{
    (void)state;
    char path[4096], args[8192];
    chip_path(path, sizeof path);
    snprintf(args, sizeof args, "op gemm --chip '%s' --m 512 --k 1024 --n 1024", path);
    expect_status(args, 0, "utilization", NULL);
    expect_status(args, 0, "bound", NULL);
    snprintf(args, sizeof args, "op gemm --chip '%s' --m 512 --k 1024 --n 1024 --format csv",
             path);
    cli_child_result r;
    run(&r, args);
    assert_int_equal(r.status, 0);
    char *nl = strchr(r.out, '\n');
    assert_non_null(nl);
    assert_true(strncmp(r.out, "op,", 3) == 0);
    assert_true(strncmp(nl + 1, "gemm,", 5) == 0);
    assert_non_null(strstr(r.out, ",cycles,"));
    cli_child_free(&r);
}

static void test_op_cli_vector_json_matches_model(void **state)
{
    (void)state;
    char path[4096], args[8192];
    chip_path(path, sizeof path);
    sim_chip chip = load_v3();
    for (int k = 0; k < SIM_VECTOR_KIND_COUNT; k++) {
        snprintf(args, sizeof args,
                 "op vector --chip '%s' --kind %s --elements 1048576 --row-len 1024 --dtype fp32 "
                 "--format json",
                 path, sim_vector_kind_name((sim_vector_kind)k));
        json_t *o = run_json(args);
        sim_vector_op op = {(sim_vector_kind)k, 1048576, 1024, SIM_OPERANDS_F32};
        sim_vector_timing t;
        ss_err err = {0};
        assert_int_equal(sim_vector_time(&t, &chip, &op, &err), SS_OK);
        assert_int_equal(json_integer_value(json_object_get(o, "cycles")), t.cycles);
        assert_json_close(o, "seconds", t.seconds, 1e-15);
        assert_json_close(o, "utilization", t.utilization, 1e-15);
        assert_int_equal(json_integer_value(json_object_get(o, "bytes_written")),
                         t.bytes_written);
        json_decref(o);
    }
}

static void test_op_cli_usage_errors(void **state)
{
    (void)state;
    char path[4096], args[8192];
    chip_path(path, sizeof path);
    expect_status("op", 2, NULL, "usage: switchsim op");
    expect_status("op conv", 2, NULL, "unknown operation 'conv'");
    const char *gemm_bad[] = {
        "--m 8 --k 8",                          /* --n missing */
        "--m 0 --k 8 --n 8",                    /* below the range */
        "--m 8 --k 8 --n 8 --dtype fp16",
        "--m 8 --k 8 --n 8 --double-buffer maybe",
        "--m 8 --k 8 --n 8 --fp32-passes 2",
        "--m 8 --k 8 --n 8 --bogus 1",
        "--m 8 --k 8 --n 8 extra",
        "--m 1000000000000 --k 1000000000000 --n 1000000000000", /* overflows the model */
    };
    for (size_t i = 0; i < sizeof gemm_bad / sizeof gemm_bad[0]; i++) {
        snprintf(args, sizeof args, "op gemm --chip '%s' %s", path, gemm_bad[i]);
        expect_status(args, 2, NULL, "switchsim: usage: ");
    }
    const char *vec_bad[] = {
        "--kind layernorm --elements 8",
        "--kind norm --elements 0",
        "--elements 8",
        "--kind reduction --elements 1000 --row-len 3",
    };
    for (size_t i = 0; i < sizeof vec_bad / sizeof vec_bad[0]; i++) {
        snprintf(args, sizeof args, "op vector --chip '%s' %s", path, vec_bad[i]);
        expect_status(args, 2, NULL, "switchsim: usage: ");
    }
}

static void test_op_cli_bad_chip_file(void **state)
{
    (void)state;
    char args[8192];
    expect_status("op gemm --chip /nonexistent/chip.yaml --m 8 --k 8 --n 8", 1, NULL,
                  "/nonexistent/chip.yaml");
    char bad[] = "/tmp/switchsim-bad-chip-XXXXXX";
    int fd = mkstemp(bad);
    assert_true(fd >= 0);
    const char text[] = "kind: chip\nname: broken\nmxu_rows: [1, 2\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    snprintf(args, sizeof args, "op vector --chip '%s' --kind softmax --elements 8", bad);
    expect_status(args, 1, NULL, bad);
    unlink(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_cli_help_lists_operations),
        cmocka_unit_test(test_op_cli_gemm_json_matches_model),
        cmocka_unit_test(test_op_cli_gemm_table_and_csv),
        cmocka_unit_test(test_op_cli_vector_json_matches_model),
        cmocka_unit_test(test_op_cli_usage_errors),
        cmocka_unit_test(test_op_cli_bad_chip_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
