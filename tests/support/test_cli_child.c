/* This file implements the tests of the test support library cli_child (cli_child.h) against
 * the built $SWITCHSIM: exit statuses and the two captured streams kept apart, output larger
 * than the first buffer, JSON parsing and its failure reasons, the shown JSON run (its
 * transcript on stdout), source paths, entering the source root, the messages when the
 * environment of meson test is missing, and the status and text expectations.
 *
 * Invariants: only environment variables of this process are changed, and restored; stdout
 * is redirected only around one call, and restored.
 */
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

/* What f(max_out, args) prints on stdout, captured through a temporary file. */
static char *stdout_of(json_t **doc, size_t max_out, const char *args)
{
    fflush(stdout);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    const int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
    *doc = cli_child_json_shown(max_out, "%s", args);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    const long n = ftell(tmp);
    char *text = calloc((size_t)n + 1, 1);
    assert_non_null(text);
    rewind(tmp);
    assert_int_equal(fread(text, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return text;
}

/* cli_child_json_shown returns the document and shows the run (stdout cut at max_out);
 * NULL when the output is not JSON, still with the transcript. */
static void test_cli_child_json_shown(void **state)
{
    (void)state;
    json_t *doc = NULL;
    char *text = stdout_of(&doc, 10, "model --model configs/models/t5-base.yaml --format json");
    printf("%s\n", text);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "model")), "t5-base");
    assert_non_null(strstr(text, "$ switchsim model --model configs/models/t5-base.yaml"));
    assert_non_null(strstr(text, "  -> exit 0\n"));
    assert_null(strstr(text, "t5-base\"")); /* the JSON is past the first 10 bytes */
    json_decref(doc);
    free(text);
    text = stdout_of(&doc, 0, "--help");
    printf("%s\n", text);
    assert_null(doc);
    assert_non_null(strstr(text, "not JSON"));
    free(text);
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
        cmocka_unit_test(test_cli_child_json_shown),
        cmocka_unit_test(test_cli_child_environment),
        cmocka_unit_test(test_cli_child_expectations),
        cmocka_unit_test(test_cli_child_enter_source_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
