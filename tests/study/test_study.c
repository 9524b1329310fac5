/* This file implements the tests of `switchsim study precision` (cli/cmd_study.c), run as a
 * child process: a very short real study on the tiny test model and corpus (the run configs
 * in tests/study/) that must write summary.json with the documented keys, per-step router
 * disagreement and summary.md; the summary rules (final/min/max losses, the divergence rule,
 * dropped and disagreement means) on hand-written metrics files with --summary-only; and
 * usage errors.
 *
 * Invariants: runs in the source root (SWITCHSIM_SOURCE_ROOT) with the binary at $SWITCHSIM,
 * in temporary directories that it removes; asserts no wall-clock time.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "cli_child.h"
#include "test_scratch.h"

static cli_child_result g_run; /* the last run: g_run.out is its stdout, g_run.err its stderr */

static const char *const run_names[] = {"fp32", "bf16-router", "bf16-fp32-router"};

/* ---- helpers ----------------------------------------------------------------------------- */

static void slurp(const char *path, char *buf, size_t n)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    size_t k = fread(buf, 1, n - 1, f);
    buf[k] = '\0';
    fclose(f);
}

/* Runs `switchsim study ARGS` into g_run, ARGS a format (a shell fragment) and its values;
 * the exit status (-1 with g_run.why when it did not run). */
#define study(...) cli_child_rerun(&g_run, "study " __VA_ARGS__)

static void expect_status(int got, int want)
{
    (void)got; /* g_run.status, checked with its transcript */
    assert_true(cli_child_expect_status(&g_run, want));
}

static void expect_in(const char *text, const char *needle)
{
    assert_true(cli_child_expect_text(text, needle));
}

static json_t *load_json(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        print_error("%s: %s\n", path, je.text);
        fail();
    }
    return j;
}

static const json_t *run_of(const json_t *summary, const char *name)
{
    const json_t *rs = json_object_get(summary, "runs");
    for (size_t i = 0; i < json_array_size(rs); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(rs, i), "name")), name) ==
            0)
            return json_array_get(rs, i);
    print_error("no run %s in the summary\n", name);
    fail();
    return NULL;
}

static double real_of(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v)) {
        print_error("%s is not a number\n", key);
        fail();
    }
    return json_number_value(v);
}

/* ---- a real short study ------------------------------------------------------------------- */

static const char *const run_keys[] = {
    "name", "label", "config", "precision", "router_dtype", "steps", "final_step",
    "final_train_loss", "final_heldout_loss", "heldout_step", "min_train_loss",
    "min_train_loss_step", "max_train_loss", "max_train_loss_step", "diverged", "divergence",
    "stopped_with", "dropped_fraction_final", "dropped_fraction_mean", "router_compare_dtype",
    "router_disagreement_mean", "router_disagreement_max", "router_disagreement_mean_all",
    "router_disagreement_steps", "loss_curve", "heldout_curve", "switch_layers"};

static void test_study_short_run(void **state)
{
    (void)state;
    char dir[256];
    assert_int_equal(test_scratch_make(dir, sizeof dir, "switchsim-study"), 0);
    expect_status(study("precision --out %s --configs tests/study --format json", dir), 0);
    /* stdout: one row per run */
    json_t *rows = json_loads(g_run.out, 0, NULL);
    assert_non_null(rows);
    assert_int_equal(json_array_size(json_object_get(rows, "runs")), 3);
    json_decref(rows);
    json_t *s = load_json(dir, "summary.json");
    static const char *const top[] = {"study", "command", "date_utc", "out_dir", "configs",
                                      "openblas_core", "openblas_threads", "runs"};
    for (size_t k = 0; k < sizeof top / sizeof top[0]; k++)
        assert_non_null(json_object_get(s, top[k]));
    static const char *const router[] = {"fp32", "bf16", "fp32"};
    static const char *const other[] = {"bf16", "fp32", "bf16"};
    for (int i = 0; i < 3; i++) {
        const json_t *r = run_of(s, run_names[i]);
        for (size_t k = 0; k < sizeof run_keys / sizeof run_keys[0]; k++)
            if (!json_object_get(r, run_keys[k])) {
                print_error("run %s lacks key %s\n", run_names[i], run_keys[k]);
                fail();
            }
        assert_string_equal(json_string_value(json_object_get(r, "router_dtype")), router[i]);
        assert_string_equal(json_string_value(json_object_get(r, "router_compare_dtype")),
                            other[i]);
        assert_int_equal(json_integer_value(json_object_get(r, "steps")), 4);
        assert_true(json_is_false(json_object_get(r, "diverged")));
        const json_t *steps = json_object_get(r, "router_disagreement_steps");
        assert_int_equal(json_array_size(steps), 4);
        assert_int_equal(json_array_size(json_array_get(steps, 0)), 2); /* 2 Switch layers */
        const double mean = real_of(r, "router_disagreement_mean_all");
        const double loss = real_of(r, "final_train_loss");
        printf("  %s: final loss %.4f, held-out %.4f, mean router disagreement %.4f\n",
               run_names[i], loss, real_of(r, "final_heldout_loss"), mean);
        assert_true(mean >= 0.0 && mean <= 1.0 && isfinite(loss));
        assert_int_equal(json_array_size(json_object_get(r, "dropped_fraction_final")), 2);
        assert_int_equal(json_integer_value(json_object_get(r, "heldout_step")), 4);
    }
    json_decref(s);
    char md[8192], path[512];
    snprintf(path, sizeof path, "%s/summary.md", dir);
    slurp(path, md, sizeof md);
    expect_in(md, "# Selective precision study");
    expect_in(md, "(b) bf16 including the router");
    expect_in(md, "router disagreement, mean");
    test_scratch_remove(dir);
}

/* ---- the summary rules on hand-written metrics ------------------------------------------- */

static void write_metrics(const char *dir, const char *run, const char *lines)
{
    char sub[512], path[600];
    snprintf(sub, sizeof sub, "%s/%s", dir, run);
    assert_int_equal(mkdir(sub, 0777), 0);
    snprintf(path, sizeof path, "%s/metrics.jsonl", sub);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(lines, f);
    fclose(f);
}

#define TRAIN(step, loss, d0, d1)                                                              \
    "{\"split\":\"train\",\"step\":" #step ",\"loss\":" #loss                                  \
    ",\"dropped_fraction\":[0.5,0.25],\"router_disagreement\":[" #d0 "," #d1                   \
    "],\"router_compare_dtype\":\"fp32\"}\n"

static void test_study_summary_rules(void **state)
{
    (void)state;
    char dir[256];
    assert_int_equal(test_scratch_make(dir, sizeof dir, "switchsim-study"), 0);
    /* (a) blows up: 7 > 2 x 3 (the minimum before it) */
    write_metrics(dir, "fp32",
                  TRAIN(1, 5.0, 0, 0) TRAIN(2, 3.0, 0, 0) TRAIN(3, 7.0, 0, 0)
                  "{\"split\":\"heldout\",\"step\":3,\"loss\":6.5}\n");
    /* (b) starts high and falls: the first steps are not a divergence */
    write_metrics(dir, "bf16-router",
                  TRAIN(1, 10.0, 0.25, 0.5) TRAIN(2, 4.0, 0.0, 0.5) TRAIN(3, 4.5, 0.125, 0.25)
                  "{\"split\":\"heldout\",\"step\":2,\"loss\":4.25}\n");
    /* (c) a partial last line (a run that was stopped) is ignored */
    write_metrics(dir, "bf16-fp32-router", TRAIN(1, 6.0, 0, 0) "{\"split\":\"tr");
    expect_status(study("precision --out %s --configs tests/study --summary-only "
                             "--format json", dir), 0);
    json_t *s = load_json(dir, "summary.json");
    const json_t *a = run_of(s, "fp32"), *b = run_of(s, "bf16-router"),
                 *c = run_of(s, "bf16-fp32-router");
    printf("  fp32: %s\n", json_string_value(json_object_get(a, "divergence")));
    assert_true(json_is_true(json_object_get(a, "diverged")));
    expect_in(json_string_value(json_object_get(a, "divergence")), "step 3");
    assert_true(real_of(a, "min_train_loss") == 3.0 && real_of(a, "max_train_loss") == 7.0);
    assert_int_equal(json_integer_value(json_object_get(a, "max_train_loss_step")), 3);
    assert_true(real_of(a, "final_train_loss") == 7.0);
    assert_true(real_of(a, "final_heldout_loss") == 6.5);
    assert_true(json_is_false(json_object_get(b, "diverged")));
    assert_true(json_is_null(json_object_get(b, "divergence")));
    assert_true(real_of(b, "min_train_loss") == 4.0 && real_of(b, "final_train_loss") == 4.5);
    assert_true(real_of(b, "final_heldout_loss") == 4.25);
    /* disagreement: per layer means (0.125, 0.41666..), max (0.25, 0.5), overall mean */
    const json_t *m = json_object_get(b, "router_disagreement_mean");
    const json_t *mx = json_object_get(b, "router_disagreement_max");
    const double m0 = json_real_value(json_array_get(m, 0)),
                 m1 = json_real_value(json_array_get(m, 1));
    printf("  bf16-router disagreement means %.17g %.17g\n", m0, m1);
    assert_true(fabs(m0 - 0.125) < 1e-15 && fabs(m1 - 1.25 / 3.0) < 1e-15);
    assert_true(json_real_value(json_array_get(mx, 0)) == 0.25 &&
                json_real_value(json_array_get(mx, 1)) == 0.5);
    assert_true(fabs(real_of(b, "router_disagreement_mean_all") - (m0 + m1) / 2) < 1e-15);
    assert_int_equal(json_array_size(json_object_get(b, "router_disagreement_steps")), 3);
    const json_t *dm = json_object_get(b, "dropped_fraction_mean");
    assert_true(json_real_value(json_array_get(dm, 0)) == 0.5 &&
                json_real_value(json_array_get(dm, 1)) == 0.25);
    assert_int_equal(json_integer_value(json_object_get(c, "steps")), 1);
    assert_true(json_is_null(json_object_get(c, "final_heldout_loss")));
    json_decref(s);
    test_scratch_remove(dir);
}

static void test_study_errors(void **state)
{
    (void)state;
    char dir[256];
    assert_int_equal(test_scratch_make(dir, sizeof dir, "switchsim-study"), 0);
    expect_status(study("precision"), 2); /* --out is required */
    expect_in(g_run.err, "--out");
    expect_status(study("nosuch --out %s", dir), 2);
    expect_in(g_run.err, "nosuch");
    expect_status(study("precision --out %s --configs tests/nowhere", dir), 1);
    expect_in(g_run.err, "tests/nowhere/fp32.yaml");
    /* --summary-only without the runs' metrics */
    expect_status(study("precision --out %s --configs tests/study --summary-only", dir), 1);
    expect_in(g_run.err, "metrics.jsonl");
    expect_status(study("precision --help"), 0);
    expect_in(g_run.out, "switchsim study precision --out DIR");
    test_scratch_remove(dir);
}

int main(void)
{
    if (cli_child_enter_source_root() != 0)
        return 1; /* the files the tests read are relative to the source root */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_study_short_run),
        cmocka_unit_test(test_study_summary_rules),
        cmocka_unit_test(test_study_errors),
    };
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    cli_child_free(&g_run);
    return failed;
}
