/* This file tests `switchsim train --distributed` (cli/cmd_train.c) as a child process on the
 * tiny 8-core run (tests/dtrain/tiny-dp8.yaml): the summary with the cores, the real loss and
 * the simulated step time, the metrics lines (training and held-out), --resume of a stopped
 * run, and the usage and layout errors with their exit statuses.
 *
 * Invariants: runs in the source root (SWITCHSIM_SOURCE_ROOT) with the binary at $SWITCHSIM,
 * in a temporary output directory that it removes.
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

#include "cli_child.h"
#include "test_scratch.h"

static char g_dir[256];
static cli_child_result g_run;

#define TINY8 "--model tests/dtrain/tiny-switch8.yaml --run tests/dtrain/tiny-dp8.yaml"

static void expect_status(int want)
{
    assert_true(cli_child_expect_status(&g_run, want));
}

static void expect_in(const char *text, const char *needle)
{
    assert_true(cli_child_expect_text(text, needle));
}

static void test_dtrain_cli_trains_on_8_cores(void **state)
{
    (void)state;
    json_t *s = cli_child_json(&g_run, "train " TINY8 " --distributed --steps 2 --out '%s' "
                               "--format json", g_dir);
    if (!s)
        print_message("%s\n%s\n", g_run.why, g_run.err);
    assert_non_null(s);
    const double loss = json_real_value(json_object_get(s, "train_loss"));
    const double sim = json_real_value(json_object_get(s, "sim_step_s"));
    print_message("train_loss %.6g, sim_step_s %.6g\n", loss, sim);
    assert_int_equal(json_integer_value(json_object_get(s, "cores")), 8);
    assert_int_equal(json_integer_value(json_object_get(s, "steps")), 2);
    assert_true(loss > 0.0);
    assert_true(sim > 0.0);
    json_decref(s);
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.jsonl", g_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[8192];
    int n = 0;
    int nev = 0;
    while (fgets(line, sizeof line, f)) {
        n += strstr(line, "\"sim_step_s\"") != NULL && strstr(line, "\"loss\"") != NULL;
        nev += strstr(line, "\"split\":\"heldout\"") != NULL;
    }
    fclose(f);
    assert_int_equal(n, 2);
    assert_int_equal(nev, 1); /* the evaluation after the last step */
    unlink(path);
    snprintf(path, sizeof path, "%s/results.json", g_dir);
    assert_int_equal(unlink(path), 0);
}

static void test_dtrain_cli_errors(void **state)
{
    (void)state;
    cli_child_rerun(&g_run, "train --help");
    expect_status(0);
    expect_in(g_run.out, "--distributed");
    cli_child_rerun(&g_run, "train --model tests/dtrain/tiny-switch8.yaml --distributed "
                            "--out '%s'", g_dir);
    expect_status(2);
    expect_in(g_run.err, "--distributed needs --run");
    cli_child_rerun(&g_run, "train " TINY8 " --distributed --resume --out '%s/none'", g_dir);
    expect_status(2);
    expect_in(g_run.err, "no checkpoint to resume from");
    cli_child_rerun(&g_run, "train " TINY8 " --distributed --record-routing '%s/h.json' "
                            "--out '%s/rr'", g_dir, g_dir);
    expect_status(2);
    expect_in(g_run.err, "--record-routing records a single-device run");
    /* 4 data ways x 2 model ways: model parallelism is not executed */
    cli_child_rerun(&g_run, "train --model tests/train/tiny-switch.yaml "
                            "--run tests/train/tiny-run.yaml --distributed --out '%s'", g_dir);
    expect_status(1);
    expect_in(g_run.err, "plan.model = 2");
}

/* A run stopped at step 2 is refused without --resume and continued with it: the summary
 * says where it started, metrics.jsonl holds the 3 training lines. */
static void test_dtrain_cli_resumes(void **state)
{
    (void)state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/resume", g_dir);
    cli_child_free(&g_run); /* cli_child_json runs into a fresh result */
    json_t *s = cli_child_json(&g_run, "train " TINY8 " --distributed --steps 2 --out '%s' "
                               "--format json", dir);
    assert_non_null(s);
    json_decref(s);
    cli_child_rerun(&g_run, "train " TINY8 " --distributed --steps 3 --out '%s'", dir);
    expect_status(2);
    expect_in(g_run.err, "already holds a checkpoint");
    cli_child_free(&g_run);
    s = cli_child_json(&g_run, "train " TINY8 " --distributed --steps 3 --resume --out '%s' "
                       "--format json", dir);
    if (!s)
        print_message("%s\n%s\n", g_run.why, g_run.err);
    assert_non_null(s);
    const double eval = json_real_value(json_object_get(s, "eval_loss"));
    print_message("resumed from step %lld to %lld, eval_loss %.6g\n",
                  (long long)json_integer_value(json_object_get(s, "first_step")),
                  (long long)json_integer_value(json_object_get(s, "steps")), eval);
    assert_int_equal(json_integer_value(json_object_get(s, "first_step")), 2);
    assert_int_equal(json_integer_value(json_object_get(s, "steps")), 3);
    assert_true(eval > 0.0);
    json_decref(s);
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, "\"split\":\"train\"") != NULL;
    fclose(f);
    assert_int_equal(n, 3);
}

int main(void)
{
    if (cli_child_enter_source_root() != 0)
        return 1;
    if (test_scratch_make(g_dir, sizeof g_dir, "switchsim-dtrain-cli") != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtrain_cli_trains_on_8_cores),
        cmocka_unit_test(test_dtrain_cli_errors),
        cmocka_unit_test(test_dtrain_cli_resumes),
    };
    const int rc = cmocka_run_group_tests(tests, NULL, NULL);
    cli_child_free(&g_run);
    test_scratch_remove(g_dir);
    return rc;
}
