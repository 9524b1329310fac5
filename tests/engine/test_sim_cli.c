/* This file implements the tests of `switchsim sim`: it runs the built command ($SWITCHSIM)
 * from the source root ($SWITCHSIM_SOURCE_ROOT) on configs/pods/tpu-v3-8.yaml and the example
 * program tests/engine/programs/pipeline.prog, and checks exit statuses, messages, that the
 * printed figures equal the analytic engine called in-process on the same files, the --top
 * summaries, and the --trace file.
 *
 * Invariants: every run's stdout and stderr are captured (tests/support/cli_child.h) and
 * printed; a usage error exits 2, a bad input file or an unpriceable program exits 1 with
 * the underlying message, success 0.
 * Scratch files live in a mkdtemp directory, removed at the end.
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
#include "sim/engine.h"
#include "sim/pod.h"
#include "sim/program.h"
#include "test_scratch.h"

#define POD "configs/pods/tpu-v3-8.yaml"
#define PROG "tests/engine/programs/pipeline.prog"

static char scratch[64];

/* Runs "cd $SWITCHSIM_SOURCE_ROOT && $SWITCHSIM sim args" and prints the transcript. */
static void run(cli_child_result *r, const char *args)
{
    cli_child_run(r, "sim %s", args);
    cli_child_print(r, stdout, 2000);
}

/* Runs and checks the exit status and that stderr contains every needle (NULL-terminated). */
static void expect(int status, const char *args, ...)
{
    cli_child_result r;
    run(&r, args);
    assert_int_equal(r.status, status);
    va_list ap;
    va_start(ap, args);
    for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *))
        if (!strstr(r.err, n) && !strstr(r.out, n))
            fail_msg("output lacks '%s'", n);
    va_end(ap);
    cli_child_free(&r);
}

/* The JSON that "switchsim sim args" prints with exit status 0. */
static json_t *run_json(const char *args)
{
    json_t *o = cli_child_json_shown(2000, "sim %s", args);
    assert_non_null(o);
    return o;
}

/* Writes text to scratch/name and returns the path in buf. */
static const char *write_file(char *buf, size_t n, const char *name, const char *text)
{
    snprintf(buf, n, "%s/%s", scratch, name);
    FILE *f = fopen(buf, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return buf;
}

/* The analytic engine run in-process on the same files. */
static sim_result in_process(sim_pod *pod, sim_topo *topo, sim_program *p)
{
    char path[4096];
    ss_err err = {0};
    if (cli_child_source_path(path, sizeof path, POD) != 0)
        fail();
    if (sim_pod_load(pod, path, &err) != SS_OK || sim_pod_topo(pod, topo, &err) != SS_OK)
        fail_msg("%s", err.msg);
    if (cli_child_source_path(path, sizeof path, PROG) != 0)
        fail();
    if (sim_program_parse_file(p, path, &err) != SS_OK)
        fail_msg("%s", err.msg);
    const sim_engine_cfg cfg = {&pod->chip, topo, SIM_PACKET_BYTES_DEFAULT, 0, 0};
    sim_result r;
    if (sim_engine_run(SIM_ENGINE_ANALYTIC, p, &cfg, &r, &err) != SS_OK)
        fail_msg("%s", err.msg);
    return r;
}

static double num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fail_msg("%s is not a number", key);
    return json_number_value(v);
}

static void test_sim_cli_help(void **state)
{
    (void)state;
    expect(0, "--help", "usage: switchsim sim", "pipeline.prog", "--packet-bytes", "--trace",
           (const char *)NULL);
}

static void test_sim_cli_matches_engine(void **state)
{
    (void)state;
    sim_pod pod;
    sim_topo topo;
    sim_program p;
    sim_result want = in_process(&pod, &topo, &p);
    json_t *o = run_json("--pod " POD " --program " PROG " --format json");
    printf("  makespan %.17g want %.17g, link bound %.17g want %.17g\n", num(o, "makespan_s"),
           want.makespan_s, num(o, "link_bound_s"), want.link_bound_s);
    assert_true(num(o, "makespan_s") == want.makespan_s);
    assert_true(num(o, "link_bound_s") == want.link_bound_s);
    assert_true(num(o, "makespan_cycles") == llround(want.makespan_s * 0.94e9));
    assert_true(num(o, "events") == 0);
    assert_string_equal(json_string_value(json_object_get(o, "engine")), "analytic");
    assert_string_equal(json_string_value(json_object_get(o, "cores_listed")), "all");
    const json_t *cores = json_object_get(o, "cores");
    assert_int_equal(json_array_size(cores), 8);
    for (size_t c = 0; c < 8; c++) {
        const json_t *row = json_array_get(cores, c);
        assert_true(num(row, "core") == (double)c);
        const double mxu = want.unit_busy_s[c * SIM_UNIT_COUNT + SIM_UNIT_MXU] / want.makespan_s;
        printf("  core %zu mxu %.17g want %.17g\n", c, num(row, "mxu"), mxu);
        assert_true(num(row, "mxu") == mxu);
    }
    /* busiest links first; their bytes are the engine's */
    const json_t *links = json_object_get(o, "links");
    assert_true(json_array_size(links) >= 1 && json_array_size(links) <= 10);
    double prev = INFINITY;
    for (size_t i = 0; i < json_array_size(links); i++) {
        const json_t *l = json_array_get(links, i);
        const int id = (int)num(l, "link");
        assert_true(num(l, "bytes") == (double)want.link_bytes[id]);
        assert_true(num(l, "busy_s") <= prev);
        prev = num(l, "busy_s");
        assert_true(num(l, "peak_queue") == 0);
        assert_non_null(strstr(json_string_value(json_object_get(l, "name")), "chip ("));
    }
    json_decref(o);
    sim_result_free(&want);
    sim_program_free(&p);
}

static void test_sim_cli_top(void **state)
{
    (void)state;
    json_t *o = run_json("--pod " POD " --program " PROG " --format json --top 3");
    assert_string_equal(json_string_value(json_object_get(o, "cores_listed")), "busiest");
    const json_t *cores = json_object_get(o, "cores");
    assert_int_equal(json_array_size(cores), 3);
    assert_true(json_array_size(json_object_get(o, "links")) <= 3);
    /* ranked by the busiest unit, descending; ties by ascending core */
    double prev = INFINITY, prev_core = -1;
    for (size_t i = 0; i < json_array_size(cores); i++) {
        const json_t *c = json_array_get(cores, i);
        const double peak = fmax(fmax(num(c, "mxu"), num(c, "vector")),
                                 fmax(num(c, "dma"), num(c, "net")));
        assert_true(peak < prev || (peak == prev && num(c, "core") > prev_core));
        prev = peak;
        prev_core = num(c, "core");
    }
    const json_t *busy = json_object_get(o, "busy");
    assert_int_equal(json_array_size(busy), SIM_UNIT_COUNT);
    for (size_t u = 0; u < json_array_size(busy); u++) {
        const json_t *b = json_array_get(busy, u);
        assert_true(num(b, "min") <= num(b, "mean") && num(b, "mean") <= num(b, "max"));
        assert_true(num(b, "max") <= 1);
    }
    json_decref(o);
    expect(0, "--pod " POD " --program " PROG " --format csv", "makespan_s", "# links",
           (const char *)NULL);
    expect(0, "--pod " POD " --program " PROG, "makespan_cycles", "link_bound_s", "utilization",
           (const char *)NULL);
}

static void test_sim_cli_trace(void **state)
{
    (void)state;
    char path[128], args[512];
    snprintf(path, sizeof path, "%s/trace.json", scratch);
    snprintf(args, sizeof args, "--pod " POD " --program " PROG " --trace '%s'", path);
    expect(0, args, (const char *)NULL);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        fail_msg("trace is not JSON: %s (line %d)", jerr.text, jerr.line);
    const json_t *ev = json_object_get(root, "traceEvents");
    size_t ops = 0, links = 0, procs = 0, counters = 0, tracks = 0;
    double last_track = -1; /* pid * 1e6 + tid of the previous link slice */
    for (size_t i = 0; i < json_array_size(ev); i++) {
        const json_t *e = json_array_get(ev, i);
        const char *ph = json_string_value(json_object_get(e, "ph"));
        const json_t *cat = json_object_get(e, "cat");
        assert_true(num(e, "pid") >= 0 && num(e, "pid") < 4); /* pid = chip */
        if (strcmp(ph, "X") == 0 && strcmp(json_string_value(cat), "link") == 0) {
            const double track = num(e, "pid") * 1e6 + num(e, "tid");
            links++;
            tracks += track != last_track; /* a link's slices are written together */
            last_track = track;
        }
        else if (strcmp(ph, "X") == 0) {
            ops++;
            assert_true(num(e, "dur") >= 0);
        } else if (strcmp(ph, "M") == 0)
            procs += strcmp(json_string_value(json_object_get(e, "name")), "process_name") == 0;
        else if (strcmp(ph, "C") == 0)
            counters++;
    }
    printf("  %zu op slices, %zu link slices on %zu links, %zu processes, %zu counters\n", ops,
           links, tracks, procs, counters);
    assert_int_equal(ops, 48);
    assert_int_equal(procs, 4);
    /* each busy link's load counter rises from 0 and falls back to 0 at least once (slices
     * of one link may be back to back: two cores of a chip queue on its port) */
    assert_true(tracks >= 4 && links >= tracks && counters >= 2 * tracks);
    json_decref(root);
    unlink(path);
    /* an unwritable trace path fails before the run (nothing printed); a failed run leaves
     * no trace behind */
    cli_child_result r;
    run(&r, "--pod " POD " --program " PROG " --trace /nonexistent-dir/t.json");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "/nonexistent-dir/t.json"));
    cli_child_free(&r);
    snprintf(args, sizeof args, "--pod " POD " --program missing.prog --trace '%s'", path);
    expect(1, args, "missing.prog", (const char *)NULL);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_sim_cli_errors(void **state)
{
    (void)state;
    char big[128], bad[128], coll[128], args[512];
    write_file(big, sizeof big, "big.prog", "cores 9\ncore 8:\n  a: hbm read=4096 write=0\n");
    snprintf(args, sizeof args, "--pod " POD " --program '%s'", big);
    expect(1, args, "9 cores", "only 8", (const char *)NULL);

    write_file(bad, sizeof bad, "bad.prog", "cores 2\ncore 0:\n  a: matmul m=1 k=2\n");
    snprintf(args, sizeof args, "--pod " POD " --program '%s'", bad);
    expect(1, args, "bad.prog:3:", (const char *)NULL);

    write_file(coll, sizeof coll, "coll.prog",
               "cores 2\ncore 0:\n  c: collective id=0 kind=allreduce group=0-1 bytes=64\n"
               "core 1:\n  c: collective id=0 kind=allreduce group=0-1 bytes=64\n");
    snprintf(args, sizeof args, "--pod " POD " --program '%s'", coll);
    expect(0, args, "collectives_lowered", (const char *)NULL);
    write_file(coll, sizeof coll, "coll-bad.prog",
               "cores 2\ncore 0:\n  c: collective id=0 kind=allreduce group=0-1 bytes=64 "
               "algo=nosuch\ncore 1:\n  c: collective id=0 kind=allreduce group=0-1 bytes=64 "
               "algo=nosuch\n");
    snprintf(args, sizeof args, "--pod " POD " --program '%s'", coll);
    expect(1, args, "nosuch", (const char *)NULL);

    expect(1, "--pod configs/pods/missing.yaml --program " PROG, "missing.yaml",
           (const char *)NULL);
    expect(1, "--pod " POD " --program tests/engine/programs/missing.prog", "missing.prog",
           (const char *)NULL);
    expect(2, "--program " PROG, "--pod", (const char *)NULL);
    expect(2, "--pod " POD " --program " PROG " --packet-bytes 0", "packet-bytes",
           (const char *)NULL);
    expect(2, "--pod " POD " --program " PROG " --engine discrete", "engine",
           (const char *)NULL);
    expect(2, "--pod " POD " --program " PROG " extra", (const char *)NULL);
}

static int setup(void **state)
{
    (void)state;
    return test_scratch_make(scratch, sizeof scratch, "switchsim-sim-cli");
}

static int teardown(void **state)
{
    (void)state;
    return test_scratch_remove(scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_cli_help),
        cmocka_unit_test(test_sim_cli_matches_engine),
        cmocka_unit_test(test_sim_cli_top),
        cmocka_unit_test(test_sim_cli_trace),
        cmocka_unit_test(test_sim_cli_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
