/* This file implements the tests of `switchsim collective` (cli/cmd_collective.c), run as a
 * subprocess: the JSON keys and the nccl-tests bandwidth conventions (algbw = bytes / seconds,
 * busbw = algbw x factor), algorithm choice and groups, agreement of the reported time with
 * the same collective built and priced in-process, and the usage errors (exit 2).
 *
 * Invariants: paths are relative to $SWITCHSIM_SOURCE_ROOT; stderr goes to a scratch file that
 * the checks read; every comparison prints both values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "collectives/coll.h"
#include "sim/engine.h"
#include "sim/pod.h"

#define POD32 "configs/pods/tpu-v3-32.yaml"   /* 4x4 mesh, 2 cores a chip */
#define POD64 "configs/pods/tpu-v4-4x4x4.yaml" /* 4x4x4 torus, 2 cores a chip */

typedef struct {
    int status;
    char out[1 << 16];
    char err[1 << 12];
} run_result;

static char scratch[64];

static const char *env_or_fail(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        fail_msg("%s is not set (run through meson test)", name);
    return v;
}

static void read_all(FILE *f, char *buf, size_t n)
{
    const size_t used = fread(buf, 1, n - 1, f);
    buf[used] = '\0';
}

static void run(run_result *r, const char *args)
{
    char errpath[128], cmd[4096];
    snprintf(errpath, sizeof errpath, "%s/stderr", scratch);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' collective %s 2>'%s'",
             env_or_fail("SWITCHSIM_SOURCE_ROOT"), env_or_fail("SWITCHSIM"), args, errpath);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    read_all(p, r->out, sizeof r->out);
    const int st = pclose(p);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    FILE *e = fopen(errpath, "r");
    assert_non_null(e);
    read_all(e, r->err, sizeof r->err);
    fclose(e);
    printf("$ switchsim collective %s\n  -> exit %d\n%.1500s%s", args, r->status, r->out,
           r->err);
}

static json_t *run_json(const char *args)
{
    static run_result r;
    run(&r, args);
    assert_int_equal(r.status, 0);
    json_error_t jerr;
    json_t *o = json_loads(r.out, 0, &jerr);
    if (!o)
        fail_msg("stdout is not JSON: %s (line %d)", jerr.text, jerr.line);
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
    snprintf(path, sizeof path, "%s/" POD64, env_or_fail("SWITCHSIM_SOURCE_ROOT"));
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
    static run_result r;
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
    }
    run(&r, "--help");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "busbw"));
    run(&r, "allreduce --pod no/such.yaml --bytes 64");
    assert_int_equal(r.status, 1);
}

static int setup(void **state)
{
    (void)state;
    snprintf(scratch, sizeof scratch, "/tmp/test_coll_cli.XXXXXX");
    return mkdtemp(scratch) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/stderr", scratch);
    unlink(path);
    rmdir(scratch);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coll_cli_bandwidth_conventions),
        cmocka_unit_test(test_coll_cli_matches_in_process_run),
        cmocka_unit_test(test_coll_cli_usage_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
