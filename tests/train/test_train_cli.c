/* This file implements the tests of the `switchsim train` command (cli/cmd_train.c), run as a
 * child process on the tiny test model and run (tests/train/tiny-*.yaml): the summary on
 * stdout, the files of the output directory, no progress bar when stderr is not a terminal,
 * the --resume / --force policy, corrupt-checkpoint and usage errors with their exit statuses.
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
#include "model/stepgen.h"
#include "test_scratch.h"

static char g_dir[256];
static cli_child_result g_run; /* the last run: g_run.out is its stdout, g_run.err its stderr */

/* Runs `switchsim train ARGS` into g_run, ARGS a format (a shell fragment) and its values;
 * the exit status (-1 with g_run.why when it did not run). */
#define train(...) cli_child_rerun(&g_run, "train " __VA_ARGS__)

#define TINY "--model tests/train/tiny-switch.yaml --run tests/train/tiny-run.yaml"

static void expect_status(int got, int want)
{
    (void)got; /* g_run.status, checked with its transcript */
    assert_true(cli_child_expect_status(&g_run, want));
}

static void expect_in(const char *text, const char *needle)
{
    assert_true(cli_child_expect_text(text, needle));
}

static int count_train_lines(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.jsonl", g_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, "\"split\":\"train\"") != NULL;
    fclose(f);
    return n;
}

static void test_train_cli_help(void **state)
{
    (void)state;
    expect_status(train("--help"), 0);
    expect_in(g_run.out, "usage: switchsim train --run FILE [--model FILE]");
    expect_in(g_run.out, "--resume");
    expect_in(g_run.out, "--force");
}

static void test_train_cli_usage_errors(void **state)
{
    (void)state;
    expect_status(train("--out '%s'", g_dir), 2); /* neither --run nor --model */
    expect_in(g_run.err, "give --run FILE");
    expect_status(train(TINY " --out '%s' --seed abc", g_dir), 2);
    expect_in(g_run.err, "--seed");
    expect_status(train(TINY " --out '%s' --resume --force", g_dir), 2);
    expect_in(g_run.err, "give one of them");
    expect_status(train("--model tests/train/no-such-model.yaml --out '%s'", g_dir), 1);
    expect_in(g_run.err, "no-such-model.yaml");
}

/* --record-routing writes a histogram that the estimate's routing model reads back: one row
 * per Switch layer of the tiny model (2: one encoder, one decoder), 4 experts, rows summing
 * to 1, and the same fractions as the tokens_per_expert of the metrics lines. */
static void test_train_cli_record_routing(void **state)
{
    (void)state;
    char hist[512];
    snprintf(hist, sizeof hist, "%s/routing.json", g_dir);
    expect_status(train(TINY " --out '%s' --force --steps 3 --record-routing '%s'", g_dir, hist),
                  0);
    model_routing r;
    ss_err err = {0};
    if (model_routing_load(&r, hist, &err) != SS_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_int_equal(r.kind, MODEL_ROUTING_HISTOGRAM);
    assert_int_equal(r.layers, 2);
    assert_int_equal(r.experts, 4);
    /* the metrics lines' first-choice counts, summed over the 3 steps */
    double counts[2][4] = {{0}};
    char path[512], line[16384];
    snprintf(path, sizeof path, "%s/metrics.jsonl", g_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        json_t *tpe = json_object_get(j, "tokens_per_expert");
        for (size_t l = 0; tpe && l < 2; l++)
            for (size_t e = 0; e < 4; e++)
                counts[l][e] +=
                    (double)json_integer_value(json_array_get(json_array_get(tpe, l), e));
        json_decref(j);
    }
    fclose(f);
    for (int l = 0; l < 2; l++) {
        double sum = 0, rows = 0;
        for (int e = 0; e < 4; e++) {
            sum += r.fractions[l * 4 + e];
            rows += counts[l][e];
        }
        assert_true(rows > 0);
        assert_true(sum > 0.999999 && sum < 1.000001);
        for (int e = 0; e < 4; e++)
            assert_true(r.fractions[l * 4 + e] == counts[l][e] / rows);
    }
    model_routing_free(&r);
    expect_status(train(TINY " --out '%s' --resume --steps 3 --record-routing '%s'", g_dir, hist),
                  2); /* nothing left to train: no routing to record (a usage error) */
    expect_in(g_run.err, "no routing to record");
}

/* A full run, a refused rerun, a resume, then a corrupt checkpoint. */
static void test_train_cli_run_and_resume(void **state)
{
    (void)state;
    expect_status(train(TINY " --out '%s' --format json", g_dir), 0);
    json_t *s = json_loads(g_run.out, 0, NULL);
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "model")), "tiny-switch-test");
    assert_string_equal(json_string_value(json_object_get(s, "run")), "tiny-train-test");
    assert_int_equal(json_integer_value(json_object_get(s, "steps")), 6);
    assert_true(json_is_real(json_object_get(s, "train_loss")));
    assert_true(json_is_real(json_object_get(s, "eval_loss")));
    assert_true(json_is_real(json_object_get(s, "tokens_per_s")));
    json_decref(s);
    assert_null(strchr(g_run.err, '\r')); /* no progress bar: stderr is not a terminal */
    assert_int_equal(count_train_lines(), 6);
    char path[512];
    snprintf(path, sizeof path, "%s/results.json", g_dir);
    json_t *res = json_load_file(path, 0, NULL);
    assert_non_null(res);
    json_t *v = json_object_get(res, "versions");
    assert_non_null(json_object_get(v, "switchsim"));
    assert_non_null(json_object_get(v, "openblas_core"));
    json_decref(res);

    expect_status(train(TINY " --out '%s'", g_dir), 2);
    expect_in(g_run.err, "already holds a checkpoint");

    expect_status(train(TINY " --out '%s' --resume --steps 8 --format csv", g_dir), 0);
    expect_in(g_run.out, "steps_run");
    assert_int_equal(count_train_lines(), 8);

    snprintf(path, sizeof path, "%s/checkpoint.bin", g_dir);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 1000, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 1000, SEEK_SET);
    fputc(c ^ 0x20, f);
    fclose(f);
    expect_status(train(TINY " --out '%s' --resume --steps 9", g_dir), 1);
    expect_in(g_run.err, "checksum check failed");
    assert_int_equal(count_train_lines(), 8);

    expect_status(train(TINY " --out '%s' --force --steps 2 --eval-every 0", g_dir), 0);
    assert_int_equal(count_train_lines(), 2);
}

/* Without --model, the model the run config names is trained. */
static void test_train_cli_model_from_run(void **state)
{
    (void)state;
    expect_status(train("--run tests/train/tiny-run.yaml --out '%s' --force --steps 2 "
                        "--eval-every 0 --format json",
                        g_dir),
                  0);
    json_t *s = json_loads(g_run.out, 0, NULL);
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "model")), "tiny-switch-test");
    assert_int_equal(json_integer_value(json_object_get(s, "steps")), 2);
    json_decref(s);
    assert_null(strstr(g_run.err, "names model")); /* no mismatch note */
    assert_int_equal(count_train_lines(), 2);
}

static int setup(void **state)
{
    (void)state;
    return test_scratch_make(g_dir, sizeof g_dir, "switchsim-train-cli");
}

static int teardown(void **state)
{
    (void)state;
    cli_child_free(&g_run);
    return test_scratch_remove(g_dir);
}

int main(void)
{
    if (cli_child_enter_source_root() != 0)
        return 1; /* the files the tests read are relative to the source root */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_cli_help),
        cmocka_unit_test(test_train_cli_usage_errors),
        cmocka_unit_test(test_train_cli_run_and_resume),
        cmocka_unit_test(test_train_cli_record_routing),
        cmocka_unit_test(test_train_cli_model_from_run),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
