/* This file implements the tests of reports/emit: one result object rendered as an aligned
 * table, as CSV (with quoting and round-trip reals) and as JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "reports/emit.h"

static json_t *sample(void)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string("tpu, v3"));
    json_object_set_new(o, "cores", json_integer(32));
    json_object_set_new(o, "peak", json_real(0.1));
    json_object_set_new(o, "bw", json_real(450.0));
    json_object_set_new(o, "tiny", json_real(1.25e-7));
    json_t *nested = json_object();
    json_object_set_new(nested, "ok", json_true());
    json_object_set_new(o, "check", nested);
    json_t *rows = json_array();
    for (int i = 0; i < 2; i++) {
        json_t *r = json_object();
        json_object_set_new(r, "id", json_integer(i));
        json_object_set_new(r, "value", json_real(1.5 * (i + 1)));
        json_array_append_new(rows, r);
    }
    json_object_set_new(o, "rows", rows);
    return o;
}

static char *render(emit_format fmt)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    json_t *o = sample();
    assert_int_equal(emit_result(f, o, fmt), 0);
    fclose(f);
    json_decref(o);
    return buf;
}

static void test_emit_table_aligns_keys_and_prints_rows(void **state)
{
    (void)state;
    char *t = render(EMIT_TABLE);
    const char *want = "name      tpu, v3\n"
                       "cores     32\n"
                       "peak      0.1\n"
                       "bw        450\n"
                       "tiny      1.25e-07\n"
                       "check.ok  true\n"
                       "\n"
                       "rows:\n"
                       "  id  value\n"
                       "   0    1.5\n"
                       "   1      3\n";
    assert_string_equal(t, want);
    free(t);
}

static void test_emit_csv_quotes_and_round_trips(void **state)
{
    (void)state;
    char *t = render(EMIT_CSV);
    const char *want = "name,cores,peak,bw,tiny,check.ok\n"
                       "\"tpu, v3\",32,0.1,450,1.25e-07,true\n"
                       "\n"
                       "# rows\n"
                       "id,value\n"
                       "0,1.5\n"
                       "1,3\n";
    assert_string_equal(t, want);
    free(t);
}

static void test_emit_json_parses_back(void **state)
{
    (void)state;
    char *t = render(EMIT_JSON);
    json_error_t e;
    json_t *back = json_loads(t, 0, &e);
    assert_non_null(back);
    json_t *o = sample();
    assert_true(json_equal(back, o));
    assert_non_null(strstr(t, "\"peak\": 0.1,"));
    assert_non_null(strstr(t, "\"value\": 3.0"));
    assert_non_null(strstr(t, "\"bw\": 450.0,"));
    assert_non_null(strstr(t, "\"tiny\": 1.25e-07,"));
    json_decref(o);
    json_decref(back);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emit_table_aligns_keys_and_prints_rows),
        cmocka_unit_test(test_emit_csv_quotes_and_round_trips),
        cmocka_unit_test(test_emit_json_parses_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
