/* This file implements the tests of the Chrome trace-event writer (traces/chrome_trace.c): a
 * small trace written and parsed back with jansson (phases, pids/tids, times in microseconds,
 * arguments, escaping of awkward names), and the atomic-write guarantees (nothing at the
 * destination before close, an aborted trace leaves the old file alone).
 *
 * Invariants: files live in a fresh mkdtemp directory under /tmp, removed at the end.
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

#include "test_scratch.h"
#include "traces/chrome_trace.h"

typedef struct {
    char dir[64];
    char path[128];
} scratch;

static int setup(void **state)
{
    scratch *s = calloc(1, sizeof *s);
    if (!s || test_scratch_make(s->dir, sizeof s->dir, "switchsim-trace") != 0) {
        free(s);
        return -1;
    }
    snprintf(s->path, sizeof s->path, "%s/trace.json", s->dir);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    scratch *s = *state;
    const int rc = test_scratch_remove(s->dir);
    free(s);
    return rc;
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static json_t *load(const char *path)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        fail_msg("%s is not JSON: %s (line %d, column %d)", path, jerr.text, jerr.line,
                 jerr.column);
    return root;
}

static const json_t *event(const json_t *root, size_t i)
{
    const json_t *a = json_object_get(root, "traceEvents");
    assert_true(json_is_array(a));
    assert_true(i < json_array_size(a));
    return json_array_get(a, i);
}

static void assert_str(const json_t *o, const char *key, const char *want)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        fail_msg("%s is not a string", key);
    assert_string_equal(json_string_value(v), want);
}

static void assert_num(const json_t *o, const char *key, double want)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fail_msg("%s is not a number", key);
    const double got = json_number_value(v);
    printf("  %s: got %.17g want %.17g diff %.3g\n", key, got, want, fabs(got - want));
    assert_true(fabs(got - want) <= 1e-9 * fmax(1, fabs(want)));
}

static void test_chrome_trace_roundtrip(void **state)
{
    scratch *s = *state;
    chrome_trace t;
    ss_err err = {0};
    assert_int_equal(chrome_trace_open(&t, s->path, &err), SS_OK);
    assert_false(exists(s->path)); /* nothing at the destination until close */
    const char *awkward = "q\"b\\s\nt\tc\x01 end";
    chrome_trace_process_name(&t, 3, "chip 3 (1,1,0)");
    chrome_trace_thread_name(&t, 3, 9, awkward);
    const chrome_trace_arg args[] = {{"op", NULL, 17}, {"label", "enc.0\"x", 0},
                                     {"bytes", NULL, 4294967296.0}, {"bad", NULL, NAN}};
    chrome_trace_complete(&t, "matmul", "mxu", 3, 9, 1.5e-6, 2.25e-6, args, 4);
    chrome_trace_complete(&t, awkward, NULL, 0, 0, 0, 0, NULL, 0);
    const chrome_trace_arg series[] = {{"queue", NULL, 4}, {"bytes", NULL, 8192}};
    chrome_trace_counter(&t, "link 5", 2, 1e-3, series, 2);
    assert_int_equal(t.events, 5);
    assert_int_equal(chrome_trace_close(&t, &err), SS_OK);

    json_t *root = load(s->path);
    assert_int_equal(json_array_size(json_object_get(root, "traceEvents")), 5);
    assert_str(root, "displayTimeUnit", "ns");

    const json_t *e = event(root, 0);
    assert_str(e, "ph", "M");
    assert_str(e, "name", "process_name");
    assert_num(e, "pid", 3);
    assert_str(json_object_get(e, "args"), "name", "chip 3 (1,1,0)");

    e = event(root, 1);
    assert_str(e, "ph", "M");
    assert_str(e, "name", "thread_name");
    assert_num(e, "tid", 9);
    assert_str(json_object_get(e, "args"), "name", awkward);

    e = event(root, 2);
    assert_str(e, "ph", "X");
    assert_str(e, "name", "matmul");
    assert_str(e, "cat", "mxu");
    assert_num(e, "pid", 3);
    assert_num(e, "tid", 9);
    assert_num(e, "ts", 1.5);  /* microseconds */
    assert_num(e, "dur", 2.25);
    const json_t *a = json_object_get(e, "args");
    assert_num(a, "op", 17);
    assert_str(a, "label", "enc.0\"x");
    assert_true(json_is_integer(json_object_get(a, "bytes"))); /* integers read back exactly */
    assert_int_equal(json_integer_value(json_object_get(a, "bytes")), 4294967296);
    assert_true(json_is_null(json_object_get(a, "bad")));

    e = event(root, 3);
    assert_str(e, "name", awkward);
    assert_null(json_object_get(e, "cat"));
    assert_null(json_object_get(e, "args"));
    assert_num(e, "dur", 0);

    e = event(root, 4);
    assert_str(e, "ph", "C");
    assert_str(e, "name", "link 5");
    assert_num(e, "ts", 1000);
    assert_num(json_object_get(e, "args"), "queue", 4);
    assert_num(json_object_get(e, "args"), "bytes", 8192);
    json_decref(root);
}

/* An empty trace is still a valid file; picosecond times survive the microsecond text. */
static void test_chrome_trace_precision(void **state)
{
    scratch *s = *state;
    chrome_trace t;
    ss_err err = {0};
    assert_int_equal(chrome_trace_open(&t, s->path, &err), SS_OK);
    assert_int_equal(chrome_trace_close(&t, &err), SS_OK);
    json_t *root = load(s->path);
    assert_int_equal(json_array_size(json_object_get(root, "traceEvents")), 0);
    json_decref(root);

    assert_int_equal(chrome_trace_open(&t, s->path, &err), SS_OK);
    chrome_trace_complete(&t, "x", NULL, 0, 0, 123.456789012e-6, 1e-12, NULL, 0);
    assert_int_equal(chrome_trace_close(&t, &err), SS_OK);
    root = load(s->path);
    assert_num(event(root, 0), "ts", 123.456789);
    assert_num(event(root, 0), "dur", 0.000001);
    json_decref(root);
}

/* Aborting leaves the previous content of the destination in place. */
static void test_chrome_trace_abort(void **state)
{
    scratch *s = *state;
    ss_err err = {0};
    assert_int_equal(file_write_atomic(s->path, "old", 3, &err), SS_OK);
    chrome_trace t;
    assert_int_equal(chrome_trace_open(&t, s->path, &err), SS_OK);
    chrome_trace_process_name(&t, 0, "chip 0");
    chrome_trace_abort(&t);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(file_read_all(s->path, 1 << 10, &data, &len, &err), SS_OK);
    assert_string_equal(data, "old");
    free(data);
}

static void test_chrome_trace_open_error(void **state)
{
    (void)state;
    chrome_trace t;
    ss_err err = {0};
    assert_int_not_equal(chrome_trace_open(&t, "/nonexistent-dir/trace.json", &err), SS_OK);
    printf("  error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/trace.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chrome_trace_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chrome_trace_precision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chrome_trace_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chrome_trace_open_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
