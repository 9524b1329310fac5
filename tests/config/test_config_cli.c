/* This file implements the tests of `switchsim check` (the binary named by $SWITCHSIM): all
 * presets validate with exit status 0 and a JSON "configs" array with derived figures, an
 * invalid file gives exit status 1 and its positioned error on stderr, usage errors give 2,
 * and --schema prints a kind's fields.
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

#include "cli_child.h"
#include "test_config.h"

static char paths[TC_MAX_FILES][TC_PATH];

/* Runs "$SWITCHSIM check ARGS" (ARGS already shell-quoted) into *r (freed by the caller with
 * cli_child_free); returns the exit status, having checked that it exited normally. */
static int run_check(cli_child_result *r, const char *args)
{
    cli_child_run(r, "check %s", args);
    if (r->status < 0)
        fail_msg("%s", r->why);
    return r->status;
}

/* Appends ' path' (quoted) to args. */
static void add_arg(char *args, size_t cap, const char *path)
{
    size_t used = strlen(args);
    assert_true(used + strlen(path) + 4 < cap);
    snprintf(args + used, cap - used, " '%s'", path);
}

void test_config_check_presets(void **state)
{
    (void)state;
    static char args[TC_MAX_FILES * TC_PATH];
    snprintf(args, sizeof args, "--format json");
    size_t total = 0;
    const char *dirs[] = {"configs/chips", "configs/pods", "configs/models", "configs/runs"};
    for (size_t d = 0; d < 4; d++) {
        char dir[TC_PATH];
        tc_source_path(dir, sizeof dir, dirs[d]);
        size_t n = tc_list_yaml(dir, paths, TC_MAX_FILES);
        for (size_t i = 0; i < n; i++)
            add_arg(args, sizeof args, paths[i]);
        total += n;
    }
    cli_child_result r;
    int rc = run_check(&r, args);
    if (rc != 0)
        fail_msg("exit %d, stderr: %s", rc, r.err);
    json_error_t jerr;
    json_t *doc = json_loads(r.out, 0, &jerr);
    cli_child_free(&r);
    assert_non_null(doc);
    json_t *configs = json_object_get(doc, "configs");
    assert_int_equal(json_array_size(configs), total);
    int seen_v3 = 0;
    for (size_t i = 0; i < total; i++) {
        json_t *c = json_array_get(configs, i);
        assert_true(json_is_true(json_object_get(c, "valid")));
        assert_non_null(json_object_get(c, "derived"));
        if (strcmp(json_string_value(json_object_get(c, "name")), "tpu-v3") == 0) {
            double tf = json_real_value(
                json_object_get(json_object_get(c, "derived"), "peak_bf16_tflops_per_chip"));
            printf("tpu-v3 peak per chip: %.6g TFLOP/s (expected 123.2)\n", tf);
            assert_true(tf > 123.2 * 0.999 && tf < 123.2 * 1.001);
            assert_string_equal(json_string_value(json_object_get(c, "denormals")), "flush");
            seen_v3 = 1;
        }
    }
    assert_true(seen_v3);
    json_decref(doc);

    /* the table format shows one block per file */
    char path[TC_PATH];
    tc_source_path(path, sizeof path, "configs/pods/tpu-v3-2048.yaml");
    args[0] = '\0';
    add_arg(args, sizeof args, path);
    rc = run_check(&r, args);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(r.out, "derived.bisection_links"));
    assert_non_null(strstr(r.out, "derived.cores"));
    cli_child_free(&r);
}

void test_config_check_invalid_exit_1(void **state)
{
    (void)state;
    char good[TC_PATH], bad[TC_PATH], args[3 * TC_PATH];
    tc_source_path(good, sizeof good, "configs/chips/tpu-v3.yaml");
    tc_source_path(bad, sizeof bad, "tests/configs/bad/chip-unknown-key.yaml");
    snprintf(args, sizeof args, "--format json");
    add_arg(args, sizeof args, good);
    add_arg(args, sizeof args, bad);
    cli_child_result r;
    int rc = run_check(&r, args);
    assert_int_equal(rc, 1);
    printf("stderr: %s", r.err);
    assert_non_null(strstr(r.err, "chip-unknown-key.yaml:15:1: field 'lnk_gbps': unknown key; "
                                  "did you mean 'link_gbps'?"));
    json_error_t jerr;
    json_t *doc = json_loads(r.out, 0, &jerr);
    cli_child_free(&r);
    assert_non_null(doc);
    json_t *configs = json_object_get(doc, "configs");
    assert_int_equal(json_array_size(configs), 2);
    assert_true(json_is_true(json_object_get(json_array_get(configs, 0), "valid")));
    assert_true(json_is_false(json_object_get(json_array_get(configs, 1), "valid")));
    json_decref(doc);

    snprintf(args, sizeof args, "'%s/no-such-file.yaml'", good);
    rc = run_check(&r, args);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(r.err, "cannot read"));
    cli_child_free(&r);
}

void test_config_check_usage(void **state)
{
    (void)state;
    static const struct {
        const char *args;
        int status;
        const char *out, *err; /* expected substrings, or NULL */
    } cases[] = {
        {"", 2, NULL, "expected at least one FILE"},
        {"--format yaml x.yaml", 2, NULL, "--format must be one of"},
        {"--schema gpu", 2, NULL, "unknown kind 'gpu'"},
        {"--schema chip x.yaml", 2, NULL, "--schema takes no FILE arguments"},
        {"--schema model --format csv", 0, "switch.capacity_factor_train", NULL},
        {"--help", 0, "usage: switchsim check", NULL},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        cli_child_result r;
        int rc = run_check(&r, cases[k].args);
        if (rc != cases[k].status || (cases[k].out && !strstr(r.out, cases[k].out)) ||
            (cases[k].err && !strstr(r.err, cases[k].err)))
            fail_msg("check %s: exit %d (expected %d)\nstdout: %s\nstderr: %s", cases[k].args,
                     rc, cases[k].status, r.out, r.err);
        cli_child_free(&r);
    }
}
