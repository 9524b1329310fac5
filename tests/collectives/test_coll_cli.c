/* This file implements the tests of `switchsim collective` (cli/cmd_collective.c), run as a
 * subprocess: the JSON keys and the nccl-tests bandwidth conventions (algbw = bytes / seconds,
 * busbw = algbw x factor), algorithm choice and groups, agreement of the reported time with
 * the same collective built and priced in-process, and the usage errors (exit 2).
 *
 * Invariants: paths are relative to $SWITCHSIM_SOURCE_ROOT; stdout and stderr are captured
 * (tests/support/cli_child.h) for the checks to read; every comparison prints both values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "cli_child.h"
#include "collectives/coll.h"
#include "sim/engine.h"
#include "sim/pod.h"

#define POD32 "configs/pods/tpu-v3-32.yaml"   /* 4x4 mesh, 2 cores a chip */
#define POD64 "configs/pods/tpu-v4-4x4x4.yaml" /* 4x4x4 torus, 2 cores a chip */

/* Runs "cd $SWITCHSIM_SOURCE_ROOT && $SWITCHSIM collective args" and prints the transcript. */
static void run(cli_child_result *r, const char *args)
{
    cli_child_run(r, "collective %s", args);
    cli_child_print(r, stdout, 1500);
}

/* The JSON that "switchsim collective args" prints with exit status 0. */
static json_t *run_json(const char *args)
{
    json_t *o = cli_child_json_shown(1500, "collective %s", args);
    assert_non_null(o);
    return o;
}

static double num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fail_msg("key '%s' missing or not a number", key);
    return json_number_value(v);
}

static const char *str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("key '%s' missing or not a string", key);
    return json_string_value(v);
}

static void expect_rel(const char *what, double got, double want, double tol)
{
    const double rel = fabs(got - want) / fmax(fabs(want), 1e-300);
    printf("%s: %.6e vs %.6e (rel %.2e)\n", what, got, want, rel);
    if (rel > tol)
        fail_msg("%s: %.6e vs %.6e", what, got, want);
}

static void test_coll_cli_bandwidth_conventions(void **state)
{
    (void)state;
    const struct {
        const char *kind;
        double factor; /* p = 32 */
    } k[] = {{"allreduce", 2.0 * 31 / 32}, {"reducescatter", 31.0 / 32},
             {"allgather", 31.0 / 32},     {"alltoall", 31.0 / 32},
             {"broadcast", 1}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        char args[256];
        snprintf(args, sizeof args, "%s --pod " POD32 " --bytes 4194304 --format json",
                 k[i].kind);
        json_t *o = run_json(args);
        const double s = num(o, "seconds");
        assert_true(s > 0);
        assert_string_equal(str(o, "kind"), k[i].kind);
        str(o, "algo");
        str(o, "busiest_link");
        expect_rel("algbw", num(o, "algbw_GBps"), 4194304 / s / 1e9, 1e-12);
        expect_rel("busbw", num(o, "busbw_GBps"), num(o, "algbw_GBps") * k[i].factor, 1e-12);
        assert_true(num(o, "bytes_per_link") > 0);
        json_decref(o);
    }
}

/* The command's time equals the same schedule priced in-process. */
static void test_coll_cli_matches_in_process_run(void **state)
{
    (void)state;
    json_t *o = run_json("allreduce --pod " POD64 " --bytes 1048576 --algo torus --group "
                         "plane:z=1 --format json");
    assert_string_equal(str(o, "algo"), "torus");
    assert_int_equal((int)num(o, "group_size"), 32);
    char path[512];
    if (cli_child_source_path(path, sizeof path, POD64) != 0)
        fail();
    sim_pod pod;
    sim_topo t;
    ss_err err = {0};
    assert_int_equal(sim_pod_load(&pod, path, &err), SS_OK);
    assert_int_equal(sim_pod_topo(&pod, &t, &err), SS_OK);
    int32_t *cores, n;
    assert_int_equal(coll_group_parse("plane:z=1", &t, &cores, &n, &err), SS_OK);
    const coll_desc d = {SIM_COLL_ALLREDUCE, n, 1048576 / 4, NULL, 4, &t, cores};
    coll_schedule s;
    assert_int_equal(coll_schedule_build(&s, &d, COLL_ALGO_TORUS, &err), SS_OK);
    sim_program p;
    assert_int_equal(sim_program_init(&p, pod.cores, &err), SS_OK);
    assert_int_equal(coll_schedule_lower(&s, &p, cores, 0, NULL, NULL, NULL, &err), SS_OK);
    const sim_engine_cfg cfg = {&pod.chip, &t, SIM_PACKET_BYTES_DEFAULT, 0, 0};
    sim_result r;
    assert_int_equal(sim_engine_run(SIM_ENGINE_ANALYTIC, &p, &cfg, &r, &err), SS_OK);
    expect_rel("seconds vs in-process", num(o, "seconds"), r.makespan_s, 1e-12);
    sim_result_free(&r);
    sim_program_free(&p);
    coll_schedule_free(&s);
    free(cores);
    json_decref(o);
}

static void test_coll_cli_usage_errors(void **state)
{
    (void)state;
    cli_child_result r;
    const struct {
        const char *args, *needle;
    } bad[] = {
        {"gossip --pod " POD32 " --bytes 64", "unknown kind"},
        {"allreduce --pod " POD32 " --bytes 64 --algo warp", "unknown algorithm"},
        {"allreduce --pod " POD32 " --bytes 64 --group 0-99", "outside"},
        {"allreduce --pod " POD32 " --bytes 64 --group 0,2,1,3 --algo torus", "box group"},
        {"alltoall --pod " POD32 " --bytes 64 --algo ring", "cannot build"},
        {"allreduce --pod " POD32 " --bytes 6", "multiple"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run(&r, bad[i].args);
        assert_int_equal(r.status, 2);
        if (!strstr(r.err, bad[i].needle))
            fail_msg("stderr lacks '%s'", bad[i].needle);
        cli_child_free(&r);
    }
    run(&r, "--help");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "busbw"));
    cli_child_free(&r);
    run(&r, "allreduce --pod no/such.yaml --bytes 64");
    assert_int_equal(r.status, 1);
    cli_child_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coll_cli_bandwidth_conventions),
        cmocka_unit_test(test_coll_cli_matches_in_process_run),
        cmocka_unit_test(test_coll_cli_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
