/* This file implements the tests of the test support library cli_child (cli_child.h) against
 * the built $SWITCHSIM: exit statuses and the two captured streams kept apart, output larger
 * than the first buffer, JSON parsing and its failure reasons, source paths, entering the
 * source root, the messages when the environment of meson test is missing, and the status and
 * text expectations.
 *
 * Invariants: only environment variables of this process are changed, and restored.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "cli_child.h"

static void test_cli_child_captures_streams_and_status(void **state)
{
    (void)state;
    cli_child_result r;
    assert_int_equal(cli_child_run(&r, "%s", "--help"), 0);
    cli_child_print(&r, stdout, 300);
    assert_non_null(strstr(r.out, "usage: switchsim"));
    assert_int_equal(r.out_len, strlen(r.out));
    assert_string_equal(r.args, "--help");
    assert_string_equal(r.why, "");
    assert_int_equal(cli_child_rerun(&r, "no-such-command-%d", 7), 2); /* frees the first */
    cli_child_print(&r, stdout, 300);
    assert_string_equal(r.args, "no-such-command-7");
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "no-such-command-7"));
    cli_child_free(&r);
}

/* The product list of Switch-C is over twice the 4 KiB first buffer: it must come back whole. */
static void test_cli_child_grows_buffers(void **state)
{
    (void)state;
    cli_child_result r;
    assert_int_equal(cli_child_run(&r, "model --model configs/models/switch-c-2048.yaml "
                                       "--matmuls --format json"),
                     0);
    printf("  %zu bytes of stdout\n", r.out_len);
    assert_true(r.out_len > 8192);
    assert_int_equal(r.out_len, strlen(r.out));
    assert_non_null(strstr(r.out, "\"matmuls\""));
    assert_int_equal(r.out[r.out_len - 1], '\n'); /* the end is there too */
    cli_child_free(&r);
}

static void test_cli_child_json(void **state)
{
    (void)state;
    cli_child_result r;
    json_t *doc = cli_child_json(&r, "model --model configs/models/t5-base.yaml --format json");
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "model")), "t5-base");
    json_decref(doc);
    cli_child_free(&r);
    assert_null(cli_child_json(&r, "--help")); /* exit 0, but a table */
    printf("  why: %s\n", r.why);
    assert_non_null(strstr(r.why, "not JSON"));
    cli_child_free(&r);
    assert_null(cli_child_json(&r, "model --model nowhere.yaml --format json"));
    printf("  why: %s\n", r.why);
    assert_non_null(strstr(r.why, "exit status 1, expected 0"));
    cli_child_free(&r);
}

static void test_cli_child_environment(void **state)
{
    (void)state;
    char path[64];
    const char *root = cli_child_source_root();
    assert_non_null(root);
    assert_int_equal(cli_child_source_path(path, 8, "configs/chips/tpu-v3.yaml"), -1);
    assert_string_equal(path, "");
    char *saved = strdup(root);
    assert_non_null(saved);
    assert_int_equal(unsetenv("SWITCHSIM_SOURCE_ROOT"), 0);
    assert_null(cli_child_source_root());
    assert_int_equal(cli_child_source_path(path, sizeof path, "x"), -1);
    cli_child_result r;
    assert_int_equal(cli_child_run(&r, "--help"), -1);
    printf("  why: %s\n", r.why);
    assert_non_null(strstr(r.why, "meson test"));
    assert_string_equal(r.out, "");
    cli_child_free(&r);
    assert_int_equal(setenv("SWITCHSIM_SOURCE_ROOT", saved, 1), 0);
    free(saved);
    assert_non_null(cli_child_binary());
}

static void test_cli_child_enter_source_root(void **state)
{
    (void)state;
    struct stat root, cwd;
    assert_int_equal(stat(cli_child_source_root(), &root), 0);
    assert_int_equal(cli_child_enter_source_root(), 0);
    assert_int_equal(stat(".", &cwd), 0);
    assert_true(cwd.st_dev == root.st_dev && cwd.st_ino == root.st_ino);
}

static void test_cli_child_expectations(void **state)
{
    (void)state;
    cli_child_result r;
    cli_child_run(&r, "--%s", "help");
    assert_int_equal(cli_child_expect_status(&r, 0), 1);
    assert_int_equal(cli_child_expect_status(&r, 2), 0); /* prints the transcript */
    assert_int_equal(cli_child_expect_text(r.out, "usage:"), 1);
    assert_int_equal(cli_child_expect_text(r.out, "no such words"), 0);
    cli_child_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_child_captures_streams_and_status),
        cmocka_unit_test(test_cli_child_grows_buffers),
        cmocka_unit_test(test_cli_child_json),
        cmocka_unit_test(test_cli_child_environment),
        cmocka_unit_test(test_cli_child_expectations),
        cmocka_unit_test(test_cli_child_enter_source_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
