/* This file implements the tests of `switchsim sweep` run as a child process on tiny sweeps
 * (Switch-Tiny on 8 cores, a few milliseconds per point): the order and count of a product's
 * points and that the overrides reach the estimate (through the run's model, pod and chip
 * references), the list form with a failing point that is recorded with its error while the
 * others are merged, resuming (finished points are not re-run, deleted and failed ones are),
 * identical merged files with -j 1 and -j 2, the CSV columns, the per-point time limit, the
 * generated run configs of --dry-run, and bad sweep files (the files of tests/sweep/bad, each with
 * its expected "FILE:LINE:COL: field ..." message on its first line).
 *
 * Invariants: every run's transcript is printed; numeric comparisons print both figures.
 * Output folders live in a mkdtemp directory removed at the end; --no-report keeps the tests
 * independent of `switchsim report`.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "cli_child.h"
#include "sweep_check.h"
#include "test_scratch.h"

#define PRODUCT "tests/sweep/product.yaml"
#define POINTS "tests/sweep/points.yaml"

static char scratch[64];

static const json_t *point_at(const json_t *res, size_t i)
{
    const json_t *p = json_array_get(json_object_get(res, "points"), i);
    assert_non_null(p);
    return p;
}

static json_int_t int_of(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        fail_msg("'%s' is not an integer", key);
    return json_integer_value(v);
}

static double num_of(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        fail_msg("'%s' is not a number", key);
    return json_number_value(v);
}

static const char *str_of(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        fail_msg("'%s' is not a string", key);
    return json_string_value(v);
}

/* Runs PRODUCT into scratch/NAME with extra options; returns the merged results. */
static json_t *run_product(const char *name, const char *extra, char *dir, size_t n)
{
    snprintf(dir, n, "%s/%s", scratch, name);
    cli_child_result r = {0};
    sweep_check_run(&r, 0, "%s -o %s --no-report %s", PRODUCT, dir, extra);
    cli_child_free(&r);
    return sweep_check_results(dir);
}

/* A product's points come first key slowest, with ids 000-..005-, and every override reaches
 * the estimate: the plan's microbatches, and the link bandwidth two references down
 * (run -> pod -> chip). */
static void test_sweep_product_order(void **state)
{
    (void)state;
    char dir[256];
    json_t *res = run_product("order", "-j 2", dir, sizeof dir);
    static const int mb[6] = {1, 1, 2, 2, 4, 4}, gbps[6] = {50, 100, 50, 100, 50, 100};
    assert_int_equal(json_array_size(json_object_get(res, "points")), 6);
    assert_string_equal(str_of(res, "sweep"), "product");
    for (size_t i = 0; i < 6; i++) {
        const json_t *p = point_at(res, i), *pt = json_object_get(p, "point");
        char want_id[8];
        snprintf(want_id, sizeof want_id, "%03zu-", i);
        printf("point %zu: %s microbatches %d link_gbps %d\n", i, str_of(p, "id"),
               (int)int_of(pt, "plan.microbatches"), (int)num_of(pt, "pod.chip.link_gbps"));
        assert_memory_equal(str_of(p, "id"), want_id, 4);
        assert_string_equal(str_of(p, "status"), "ok");
        assert_int_equal(int_of(pt, "plan.microbatches"), mb[i]);
        assert_true(num_of(pt, "pod.chip.link_gbps") == gbps[i]); /* a real field */
        assert_int_equal(int_of(json_object_get(p, "result"), "microbatches"), mb[i]);
    }
    for (size_t i = 0; i < 6; i += 2) {
        double slow = num_of(json_object_get(point_at(res, i), "result"), "step_seconds");
        double fast = num_of(json_object_get(point_at(res, i + 1), "result"), "step_seconds");
        printf("microbatches %d: step %.9g s at 50 GB/s, %.9g s at 100 GB/s (diff %.3g)\n",
               mb[i], slow, fast, slow - fast);
        assert_true(slow > fast);
    }
    json_decref(res);
}

/* The list form: a failing point (3 data ways on 8 cores) is recorded with the estimate's
 * error, the others are merged, and the exit status is 1. */
static void test_sweep_list_form_with_failure(void **state)
{
    (void)state;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/points", scratch);
    cli_child_result r = {0};
    sweep_check_run(&r, 1, "%s -o %s --no-report -j 2 --format json", POINTS, dir);
    assert_true(cli_child_expect_text(r.err, "4 points: 3 ok (0 resumed), 1 failed"));
    cli_child_free(&r);
    json_t *res = sweep_check_results(dir);
    assert_int_equal(json_array_size(json_object_get(res, "points")), 4);
    static const char *const want[4] = {"ok", "ok", "failed", "ok"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(str_of(point_at(res, i), "status"), want[i]);
    const json_t *r0 = json_object_get(point_at(res, 0), "result");
    const json_t *r1 = json_object_get(point_at(res, 1), "result");
    const json_t *r3 = json_object_get(point_at(res, 3), "result");
    printf("params: 8 experts %lld, 4 experts %lld\n", (long long)int_of(r0, "params"),
           (long long)int_of(r1, "params"));
    assert_true(int_of(r1, "params") < int_of(r0, "params"));
    assert_int_equal(int_of(r0, "microbatches"), 2);
    assert_int_equal(int_of(r3, "batch"), 32);
    const char *why = str_of(point_at(res, 2), "error");
    assert_true(cli_child_expect_text(why, "estimate exited with status 1"));
    assert_true(cli_child_expect_text(why, "field 'plan.data'"));
    assert_true(cli_child_expect_text(why, "3*1 = 3 cores"));
    assert_null(json_object_get(point_at(res, 2), "result"));
    json_decref(res);
    /* batch is both a swept key and a figure: the CSV names the figure result.batch */
    char path[512];
    snprintf(path, sizeof path, "%s/results.csv", dir);
    char *csv = sweep_check_read(path);
    assert_non_null(csv);
    char *nl = strchr(csv, '\n');
    assert_non_null(nl);
    *nl = '\0';
    printf("header: %s\n", csv);
    assert_non_null(strstr(csv, ",batch,"));
    assert_non_null(strstr(csv, ",result.batch,"));
    assert_null(strstr(strstr(csv, ",batch,") + 1, ",batch,"));
    free(csv);
}

static int64_t mtime_ns(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

/* The .json of point i in dir (from its id in the merged results). */
static void point_file(char *buf, size_t n, const char *dir, const json_t *res, size_t i,
                       const char *ext)
{
    snprintf(buf, n, "%s/points/%s.%s", dir, str_of(point_at(res, i), "id"), ext);
}

/* Re-running skips finished points (their files are untouched, the summary counts them as
 * resumed), re-runs a point whose result was deleted, and merges the same results. */
static void test_sweep_resume_skips_finished(void **state)
{
    (void)state;
    char dir[256], path[512], first[600];
    json_t *res = run_product("resume", "-j 2", dir, sizeof dir);
    int64_t before[6];
    for (size_t i = 0; i < 6; i++) {
        point_file(path, sizeof path, dir, res, i, "json");
        before[i] = mtime_ns(path);
        assert_true(before[i] > 0);
    }
    snprintf(first, sizeof first, "%s/first.json", scratch);
    snprintf(path, sizeof path, "%s/results.json", dir);
    assert_int_equal(rename(path, first), 0);
    point_file(path, sizeof path, dir, res, 3, "json");
    assert_int_equal(unlink(path), 0);
    nanosleep(&(struct timespec){0, 20000000}, NULL); /* a re-written file gets a later mtime */

    cli_child_result r = {0};
    sweep_check_run(&r, 0, "%s -o %s --no-report -j 2 --format json", PRODUCT, dir);
    json_error_t e;
    json_t *sum = json_loads(r.out, 0, &e);
    if (!sum)
        fail_msg("summary is not JSON: %s", e.text);
    printf("resumed %lld of 6\n", (long long)int_of(sum, "resumed"));
    assert_int_equal(int_of(sum, "resumed"), 5);
    assert_int_equal(int_of(sum, "ok"), 6);
    json_decref(sum);
    cli_child_free(&r);
    for (size_t i = 0; i < 6; i++) {
        point_file(path, sizeof path, dir, res, i, "json");
        int64_t after = mtime_ns(path);
        printf("point %zu: mtime %lld -> %lld\n", i, (long long)before[i], (long long)after);
        if (i == 3)
            assert_true(after > before[i]);
        else
            assert_true(after == before[i]);
    }
    snprintf(path, sizeof path, "%s/results.json", dir);
    sweep_check_same_file(first, path);
    json_decref(res);
}

/* A failed point is retried on a re-run (its .error is written again), the ok ones are not. */
static void test_sweep_resume_retries_failed(void **state)
{
    (void)state;
    char dir[256], err_path[512];
    snprintf(dir, sizeof dir, "%s/retry", scratch);
    cli_child_result r = {0};
    sweep_check_run(&r, 1, "%s -o %s --no-report -j 1", POINTS, dir);
    cli_child_free(&r);
    json_t *res = sweep_check_results(dir);
    point_file(err_path, sizeof err_path, dir, res, 2, "error");
    int64_t before = mtime_ns(err_path);
    assert_true(before > 0);
    nanosleep(&(struct timespec){0, 20000000}, NULL);
    sweep_check_run(&r, 1, "%s -o %s --no-report -j 1", POINTS, dir);
    assert_true(cli_child_expect_text(r.err, "4 points: 3 ok (3 resumed), 1 failed"));
    cli_child_free(&r);
    int64_t after = mtime_ns(err_path);
    printf(".error mtime %lld -> %lld\n", (long long)before, (long long)after);
    assert_true(after > before);
    json_decref(res);
}

/* The merged files do not depend on the number of workers. */
static void test_sweep_jobs_identical(void **state)
{
    (void)state;
    char d1[256], d2[256], a[512], b[512];
    json_decref(run_product("j1", "-j 1", d1, sizeof d1));
    json_decref(run_product("j2", "--jobs 2", d2, sizeof d2));
    snprintf(a, sizeof a, "%s/results.json", d1);
    snprintf(b, sizeof b, "%s/results.json", d2);
    sweep_check_same_file(a, b);
    snprintf(a, sizeof a, "%s/results.csv", d1);
    snprintf(b, sizeof b, "%s/results.csv", d2);
    sweep_check_same_file(a, b);
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

/* results.csv: id, status, the swept keys, the figures, error; one row per point, each with
 * as many fields as the header. */
static void test_sweep_csv_columns(void **state)
{
    (void)state;
    char dir[256], path[512];
    json_decref(run_product("csv", "-j 2", dir, sizeof dir));
    snprintf(path, sizeof path, "%s/results.csv", dir);
    char *csv = sweep_check_read(path);
    printf("%s", csv);
    assert_true(strncmp(csv,
                        "id,status,plan.microbatches,pod.chip.link_gbps,step_seconds,"
                        "examples_per_second,tokens_per_second,mfu,",
                        90) == 0);
    char *nl = strchr(csv, '\n');
    assert_non_null(nl);
    *nl = '\0';
    assert_non_null(strstr(csv, "comm_bytes_total"));
    assert_non_null(strstr(csv, "memory_per_core_bytes"));
    assert_non_null(strstr(csv, "params"));
    assert_non_null(strstr(csv, "cores"));
    int width = count_char(csv, ',');
    assert_true(strcmp(csv + strlen(csv) - 6, ",error") == 0);
    int rows = 0;
    for (char *line = nl + 1; *line; rows++) {
        char *end = strchr(line, '\n');
        assert_non_null(end);
        *end = '\0';
        assert_int_equal(count_char(line, ','), width);
        assert_true(strncmp(line + 12, ",ok,", 4) == 0); /* "000-xxxxxxxx,ok," */
        line = end + 1;
    }
    assert_int_equal(rows, 6);
    free(csv);
}

/* --timeout kills a point that runs too long and records why. */
static void test_sweep_timeout(void **state)
{
    (void)state;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/timeout", scratch);
    cli_child_result r = {0};
    sweep_check_run(&r, 1, "%s -o %s --no-report -j 2 --timeout 0.001", PRODUCT, dir);
    cli_child_free(&r);
    json_t *res = sweep_check_results(dir);
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(str_of(point_at(res, i), "status"), "failed");
        assert_true(cli_child_expect_text(str_of(point_at(res, i), "error"),
                                          "timed out after 0.001 s"));
    }
    json_decref(res);
}

/* --dry-run writes each point's run config (the base included, the fields overridden through
 * the references) and runs nothing. */
static void test_sweep_dry_run_configs(void **state)
{
    (void)state;
    char dir[256], path[512];
    snprintf(dir, sizeof dir, "%s/dry", scratch);
    cli_child_result r = {0};
    sweep_check_run(&r, 0, "%s -o %s --dry-run --format json", PRODUCT, dir);
    json_error_t e;
    json_t *out = json_loads(r.out, 0, &e);
    if (!out)
        fail_msg("dry run output is not JSON: %s", e.text);
    cli_child_free(&r);
    assert_int_equal(int_of(out, "points"), 6);
    const json_t *row = json_array_get(json_object_get(out, "table"), 3);
    snprintf(path, sizeof path, "%s", str_of(row, "run"));
    char *yaml = sweep_check_read(path);
    printf("%s", yaml);
    assert_non_null(strstr(yaml, "tests/sweep/tiny-run.yaml\"\n"));
    assert_non_null(strstr(yaml, "plan:\n  microbatches: 2\n"));
    assert_non_null(strstr(yaml, "configs/chips/tpu-v3.yaml\"\n    link_gbps: 100\n"));
    free(yaml);
    char json_path[600];
    snprintf(json_path, sizeof json_path, "%.*s.json", (int)(strlen(path) - 5), path);
    assert_int_equal(access(json_path, F_OK), -1);
    /* the generated config is a valid run */
    cli_child_run(&r, "check %s", path);
    cli_child_print(&r, stdout, 2000);
    assert_true(cli_child_expect_status(&r, 0));
    cli_child_free(&r);
    /* and the sweep file itself is a valid sweep of 6 points */
    cli_child_run(&r, "check --format json %s", PRODUCT);
    cli_child_print(&r, stdout, 2000);
    assert_true(cli_child_expect_status(&r, 0));
    assert_true(cli_child_expect_text(r.out, "\"kind\": \"sweep\""));
    assert_true(cli_child_expect_text(r.out, "\"points\": 6"));
    cli_child_free(&r);
    json_decref(out);
}

/* Each file in tests/sweep/bad fails before anything runs with the message on its first line
 * ("# expect: MESSAGE"). */
static void test_sweep_bad_files(void **state)
{
    (void)state;
    char dirpath[1024];
    assert_int_equal(cli_child_source_path(dirpath, sizeof dirpath, "tests/sweep/bad"), 0);
    DIR *d = opendir(dirpath);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".yaml") != 0)
            continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dirpath, de->d_name);
        char *text = sweep_check_read(path);
        if (strncmp(text, "# expect: ", 10) != 0)
            fail_msg("%s: no '# expect: ' line", path);
        char *nl = strchr(text, '\n');
        assert_non_null(nl);
        *nl = '\0';
        cli_child_result r = {0};
        char out[256];
        snprintf(out, sizeof out, "%s/bad", scratch);
        sweep_check_run(&r, 1, "tests/sweep/bad/%s --dry-run -o %s", de->d_name, out);
        assert_true(cli_child_expect_text(r.err, text + 10));
        cli_child_free(&r);
        /* switchsim check validates a sweep file the same way */
        cli_child_run(&r, "check tests/sweep/bad/%s", de->d_name);
        assert_true(cli_child_expect_status(&r, 1));
        assert_true(cli_child_expect_text(r.err, text + 10));
        cli_child_free(&r);
        free(text);
        n++;
    }
    closedir(d);
    printf("%d bad sweep files\n", n);
    assert_true(n >= 10);
}

/* Usage errors exit 2. */
static void test_sweep_usage(void **state)
{
    (void)state;
    cli_child_result r = {0};
    sweep_check_run(&r, 2, "%s", "");
    cli_child_free(&r);
    sweep_check_run(&r, 2, "%s -j 0", PRODUCT);
    cli_child_free(&r);
    sweep_check_run(&r, 2, "%s --bogus", PRODUCT);
    cli_child_free(&r);
    sweep_check_run(&r, 1, "%s", "tests/sweep/no-such-sweep.yaml");
    assert_true(cli_child_expect_text(r.err, "no-such-sweep.yaml"));
    cli_child_free(&r);
}

static int setup(void **state)
{
    (void)state;
    return test_scratch_make(scratch, sizeof scratch, "switchsim-test-sweep");
}

static int teardown(void **state)
{
    (void)state;
    return test_scratch_remove(scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep_product_order),
        cmocka_unit_test(test_sweep_list_form_with_failure),
        cmocka_unit_test(test_sweep_resume_skips_finished),
        cmocka_unit_test(test_sweep_resume_retries_failed),
        cmocka_unit_test(test_sweep_jobs_identical),
        cmocka_unit_test(test_sweep_csv_columns),
        cmocka_unit_test(test_sweep_timeout),
        cmocka_unit_test(test_sweep_dry_run_configs),
        cmocka_unit_test(test_sweep_bad_files),
        cmocka_unit_test(test_sweep_usage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
