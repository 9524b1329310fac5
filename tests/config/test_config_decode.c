/* This file implements the tests of the YAML tree and the schema-driven decoder of
 * common/cfg_parse.c and common/cfg_schema.c on a test schema that has one field of every
 * type: node positions, the type rules (quoted scalars are strings, true/false only, no
 * fraction or exponent in integers, null is "missing a value"), ranges, defaults, byte
 * counts with units, suggestions and the schema's JSON description.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/model_cfg.h"
#include "sim/chip.h"
#include "test_config.h"

typedef struct {
    int a;
    double x;
} inner_t;

typedef struct {
    char name[8];
    int i;
    uint64_t u;
    double d;
    int b;
    int e;
    uint64_t bytes;
    int list[3];
    int nlist;
    int flags[2];
    int nflags;
    inner_t inner;
    int has_inner;
} obj_t;

static const char *const colours[] = {"red", "green", "blue", NULL};

static const cfg_field inner_fields[] = {
    CFG_INT(inner_t, a, CFG_REQUIRED, NULL, 0, 10, "a small count"),
    CFG_DOUBLE(inner_t, x, CFG_OPTIONAL, "0.5", 0, 1, "a fraction"),
};
static const cfg_schema inner_schema = {NULL, "inner mapping", sizeof(inner_t), inner_fields,
                                        2, NULL};

static const cfg_field obj_fields[] = {
    CFG_STRING(obj_t, name, CFG_REQUIRED, NULL, "a short name"),
    CFG_INT(obj_t, i, CFG_REQUIRED, NULL, -5, 100, "an integer"),
    CFG_U64(obj_t, u, CFG_OPTIONAL, "3", 0, 1.8446744073709552e19, "a large count"),
    CFG_DOUBLE(obj_t, d, CFG_OPTIONAL, "1e-2", -1, 1e6, "a real"),
    CFG_BOOL(obj_t, b, CFG_OPTIONAL, "false", "a switch"),
    CFG_ENUM(obj_t, e, CFG_OPTIONAL, "green", colours, "a colour"),
    CFG_BYTES(obj_t, bytes, CFG_OPTIONAL, "1 KiB", 0, 1.8446744073709552e19, "a size"),
    CFG_INT_LIST(obj_t, list, nlist, 1, CFG_OPTIONAL, 1, 9, "digits"),
    CFG_BOOL_LIST(obj_t, flags, nflags, 2, CFG_OPTIONAL, "two flags"),
    CFG_MAPPING_OPT(obj_t, inner, "inner", has_inner, &inner_schema, "a nested mapping"),
};
static const cfg_schema obj_schema = {"thing", "a test kind", sizeof(obj_t), obj_fields,
                                      sizeof obj_fields / sizeof obj_fields[0], NULL};

/* Parses text as "mem/test.yaml" and decodes it with obj_schema. */
static ss_status decode_text(const char *text, obj_t *o, ss_err *err)
{
    cfg_doc *doc = NULL;
    ss_status st = cfg_doc_parse(&doc, "mem/test.yaml", text, strlen(text), err);
    if (st != SS_OK)
        return st;
    st = cfg_decode(&obj_schema, o, cfg_doc_root(doc), "", err);
    cfg_doc_free(doc);
    return st;
}

void test_config_tree_positions(void **state)
{
    (void)state;
    const char *text = "a: 1\n"
                       "b:\n"
                       "  - x\n"
                       "  - \"y\"\n"
                       "c: {d: ~, e: !!str 5}\n";
    cfg_doc *doc = NULL;
    ss_err err = {0};
    assert_int_equal(cfg_doc_parse(&doc, "mem/tree.yaml", text, strlen(text), &err), SS_OK);
    const cfg_node *root = cfg_doc_root(doc);
    assert_int_equal(root->kind, CFG_MAP);
    assert_int_equal(root->n, 3);
    assert_string_equal(root->keys[1], "b");
    assert_int_equal(root->key_line[1], 2);
    assert_int_equal(root->key_col[1], 1);
    const cfg_node *b = cfg_map_get(root, "b");
    assert_int_equal(b->kind, CFG_SEQ);
    assert_int_equal(b->n, 2);
    assert_int_equal(b->items[1]->line, 4);
    assert_int_equal(b->items[1]->col, 5);
    assert_false(b->items[0]->quoted);
    assert_true(b->items[1]->quoted);
    assert_string_equal(b->items[1]->file, "mem/tree.yaml");
    const cfg_node *c = cfg_map_get(root, "c");
    assert_int_equal(c->line, 5);
    assert_int_equal(c->col, 4);
    assert_true(cfg_node_is_null(cfg_map_get(c, "d")));
    assert_true(cfg_map_get(c, "e")->quoted); /* !!str makes a string */
    assert_false(cfg_node_is_null(cfg_map_get(root, "a")));
    assert_null(cfg_map_get(root, "z"));
    cfg_doc_free(doc);

    const char *tagged = "a: !custom 5\n";
    assert_int_equal(cfg_doc_parse(&doc, "mem/tag.yaml", tagged, strlen(tagged), &err),
                     SS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "mem/tag.yaml:1:4: YAML tags (!custom) are not supported"));
}

void test_config_scalar_types_decode(void **state)
{
    (void)state;
    obj_t o;
    ss_err err = {0};
    const char *full = "kind: thing\n"
                       "name: abcdefg\n"
                       "i: -5\n"
                       "u: 18446744073709551615\n"
                       "d: 1e3\n"
                       "b: True\n"
                       "e: blue\n"
                       "bytes: \"1.5 KiB\"\n"
                       "list: [1, 9]\n"
                       "flags:\n"
                       "  - true\n"
                       "  - FALSE\n"
                       "inner: {a: 3}\n";
    ss_status st = decode_text(full, &o, &err);
    if (st != SS_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(o.name, "abcdefg");
    assert_int_equal(o.i, -5);
    assert_true(o.u == UINT64_MAX);
    assert_true(o.d == 1000.0);
    assert_int_equal(o.b, 1);
    assert_int_equal(o.e, 2);
    assert_true(o.bytes == 1536);
    assert_int_equal(o.nlist, 2);
    assert_int_equal(o.list[0], 1);
    assert_int_equal(o.list[1], 9);
    assert_int_equal(o.nflags, 2);
    assert_int_equal(o.flags[0], 1);
    assert_int_equal(o.flags[1], 0);
    assert_int_equal(o.has_inner, 1);
    assert_int_equal(o.inner.a, 3);
    assert_true(o.inner.x == 0.5); /* the inner default */

    /* only the required fields: every optional one gets its documented default */
    const char *minimal = "name: x\ni: 0\nd: -.5\n";
    st = decode_text(minimal, &o, &err);
    if (st != SS_OK)
        fail_msg("%s", err.msg);
    assert_true(o.u == 3);
    assert_true(o.d == -0.5);
    assert_int_equal(o.b, 0);
    assert_int_equal(o.e, 1);
    assert_true(o.bytes == 1024);
    assert_int_equal(o.nlist, 0);
    assert_int_equal(o.has_inner, 0);
    assert_int_equal(o.inner.a, 0);

    json_t *j = cfg_to_json(&obj_schema, &o);
    assert_string_equal(json_string_value(json_object_get(j, "e")), "green");
    assert_true(json_is_null(json_object_get(j, "inner")));
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), 1024);
    json_decref(j);
}

#define B "kind: thing\nname: abc\n" /* lines 1-2 of every case below */

static const struct {
    const char *text;
    const char *expect;
} bad_cases[] = {
    {B "i: 1.5", "mem/test.yaml:3:4: field 'i': expected an integer, got the number 1.5 (an "
                 "integer has no fraction)"},
    {B "i: 1e3", "3:4: field 'i': expected an integer, got the number 1e3 (exponent notation"},
    {B "i: '5'", "3:4: field 'i': expected an integer, got a string \"5\" (quoted values are "
                 "strings)"},
    {B "i: ~", "3:4: field 'i': missing a value (expected an integer)"},
    {B "i:", "field 'i': missing a value"},
    {B "i: 101", "3:4: field 'i': 101 is out of range: allowed [-5, 100]"},
    {B "i: -6", "field 'i': -6 is out of range: allowed [-5, 100]"},
    {B "i: 99999999999999999999", "field 'i': 99999999999999999999 is out of range"},
    {B "i: [1]", "field 'i': expected an integer, got a list of 1 item"},
    {B "i: {a: 1}", "field 'i': expected an integer, got a mapping"},
    {B "i: abc", "field 'i': expected an integer, got a string \"abc\""},
    {B "i: 1\nb: yes", "4:4: field 'b': expected true or false, got 'yes' (yes/no/on/off are "
                       "not booleans here"},
    {B "i: 1\nb: Off", "field 'b': expected true or false, got 'Off'"},
    {B "i: 1\nb: 1", "field 'b': expected true or false, got the integer 1"},
    {B "i: 1\nu: -1", "4:4: field 'u': expected a non-negative integer, got -1"},
    {B "i: 1\nu: 18446744073709551616", "field 'u': 18446744073709551616 does not fit in 64"},
    {B "i: 1\nd: .inf", "field 'd': expected a number, got a string \".inf\""},
    {B "i: 1\nd: 1e999", "field 'd': 1e999 is too large for a number"},
    {B "i: 1\nd: \"0.5\"", "field 'd': expected a number, got a string \"0.5\" (quoted"},
    {B "i: 1\ne: purple", "field 'e': expected one of red, green or blue, got a string "
                          "\"purple\""},
    {B "i: 1\ne: gren", "field 'e': expected one of red, green or blue, got a string \"gren\"; "
                        "did you mean 'green'?"},
    {B "i: 1\nname2: x", "4:1: field 'name2': unknown key; did you mean 'name'?"},
    {B "i: 1\nlist: [1, 2, 3, 4]", "4:7: field 'list': expected a list of 1 to 3 integers, "
                                   "got a list of 4 items"},
    {B "i: 1\nlist: []", "field 'list': expected a list of 1 to 3 integers, got a list of 0"},
    {B "i: 1\nlist: [1, x]", "4:11: field 'list[1]': expected an integer, got a string \"x\""},
    {B "i: 1\nlist: [1, 0]", "field 'list[1]': 0 is out of range: allowed [1, 9]"},
    {B "i: 1\nflags: [true]", "field 'flags': expected a list of 2 booleans (true/false), got "
                              "a list of 1 item"},
    {B "i: 1\ninner: 5", "field 'inner': expected a mapping, got the integer 5"},
    {B "i: 1\ninner: {x: 0.2}", "4:8: field 'inner.a': missing required field: a small count"},
    {B "i: 1\ninner: {a: 1, b: 2}", "field 'inner.b': unknown key; did you mean 'a'?"},
    {B "i: 1\ninner: {a: 1, kind: thing}", "field 'inner.kind': unknown key"},
    {B "i: 1\nbytes: 1.5 B", "field 'bytes': '1.5 B': a byte count must be a whole number"},
    {B "i: 1\nname: again", "4:1: field 'name': duplicate key (first given at line 2, column 1)"},
    {B "i: 1\n  j: 2", "mem/test.yaml:4:4: YAML syntax error: mapping values are not allowed"},
    {B "", "mem/test.yaml:1:1: field 'i': missing required field: an integer (an integer)"},
    {"kind: other\nname: abc\ni: 1", "1:7: field 'kind': expected 'thing' here, got a string "
                                     "\"other\""},
    {"name: abcdefgh\ni: 1", "1:7: field 'name': expected a string of 1 to 7 characters, got 8"},
    {"name: ''\ni: 1", "field 'name': expected a string of 1 to 7 characters, got 0"},
    {"- a\n- b", "mem/test.yaml:1:1: expected a mapping (key: value lines) at the top of the "
                 "file, got a list of 2 items"},
    {"# nothing\n", "mem/test.yaml:1:1: the file is empty"},
    {"a: 1\n---\nb: 2\n", "mem/test.yaml:2:1: a config file holds one YAML document"},
    {"a: &x 1\nb: *x\n", "mem/test.yaml:2:4: YAML aliases (*x) are not supported"},
};

void test_config_scalar_type_errors(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t k = 0; k < sizeof bad_cases / sizeof bad_cases[0]; k++) {
        obj_t o;
        ss_err err = {0};
        ss_status st = decode_text(bad_cases[k].text, &o, &err);
        if (st != SS_ERR_CONFIG || !strstr(err.msg, bad_cases[k].expect)) {
            print_error("case %zu: status %d\n  text:     %s\n  expected: %s\n  got:      %s\n",
                        k, (int)st, bad_cases[k].text, bad_cases[k].expect, err.msg);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

void test_config_bytes_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t value;
        const char *why; /* NULL: valid */
    } cases[] = {
        {"0", 0, NULL},
        {"1024", 1024, NULL},
        {"32 GiB", 32ull << 30, NULL},
        {"16MiB", 16ull << 20, NULL},
        {"900 MB", 900000000ull, NULL},
        {"1.5 KiB", 1536, NULL},
        {"2.5 kB", 2500, NULL},
        {"2.5 KB", 2500, NULL},
        {"7 B", 7, NULL},
        {"1 EiB", 1ull << 60, NULL},
        {"18446744073709551615", UINT64_MAX, NULL},
        {"16 EiB", 0, "does not fit in 64 bits"},
        {"18446744073709551616", 0, "does not fit in 64 bits"},
        {"-1", 0, "cannot be negative"},
        {"-16 MiB", 0, "cannot be negative"},
        {"0.5 B", 0, "whole number of bytes"},
        {"1.0000001 KiB", 0, "whole number of bytes"},
        {"12 XB", 0, "unknown unit"},
        {"32 Gb", 0, "unknown unit"},
        {"32 gib", 0, "unknown unit"},
        {"1e3", 0, "unknown unit"},
        {"GiB", 0, "expected a number of bytes"},
        {"", 0, "expected a number of bytes"},
    };
    int failures = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint64_t v = 0;
        const char *why = NULL;
        int rc = cfg_bytes_parse(cases[k].text, &v, &why);
        int ok = cases[k].why ? rc != 0 && why && strstr(why, cases[k].why)
                              : rc == 0 && v == cases[k].value;
        if (!ok) {
            print_error("'%s': rc %d value %llu why '%s'\n", cases[k].text, rc,
                        (unsigned long long)v, why ? why : "");
            failures++;
        }
    }
    assert_int_equal(failures, 0);

    char buf[48];
    cfg_bytes_format(buf, sizeof buf, 32ull << 30);
    assert_string_equal(buf, "32 GiB");
    cfg_bytes_format(buf, sizeof buf, 900000000ull);
    assert_string_equal(buf, "900 MB");
    cfg_bytes_format(buf, sizeof buf, 1536);
    assert_string_equal(buf, "1536 B");
    cfg_bytes_format(buf, sizeof buf, 0);
    assert_string_equal(buf, "0 B");
    cfg_bytes_format(buf, sizeof buf, UINT64_MAX);
    assert_string_equal(buf, "18446744073709551615 B");
}

void test_config_edit_distance(void **state)
{
    (void)state;
    assert_int_equal(cfg_edit_distance("link_gbps", "lnk_gbps"), 1);
    assert_int_equal(cfg_edit_distance("kitten", "sitting"), 3);
    assert_int_equal(cfg_edit_distance("", "abc"), 3);
    assert_int_equal(cfg_edit_distance("ABC", "abc"), 0);
    assert_int_equal(cfg_edit_distance("chp", "chip"), 1);
}

/* The row of rows whose "field" is name. */
static const json_t *row(const json_t *rows, const char *name)
{
    for (size_t i = 0; i < json_array_size(rows); i++) {
        const json_t *r = json_array_get(rows, i);
        if (strcmp(json_string_value(json_object_get(r, "field")), name) == 0)
            return r;
    }
    fail_msg("no schema row '%s'", name);
    return NULL;
}

static const char *col(const json_t *r, const char *key)
{
    return json_string_value(json_object_get(r, key));
}

void test_config_schema_json(void **state)
{
    (void)state;
    json_t *chip = cfg_schema_to_json(&sim_chip_schema);
    assert_int_equal(json_array_size(chip), sim_chip_schema.nfields);
    assert_string_equal(col(row(chip, "denormals"), "default"), "flush");
    assert_string_equal(col(row(chip, "denormals"), "type"), "enum: keep|flush");
    assert_string_equal(col(row(chip, "clock_ghz"), "default"), "required");
    assert_string_equal(col(row(chip, "clock_ghz"), "range"), "(0, 10]");
    assert_string_equal(col(row(chip, "hbm_bytes"), "range"), "[1 MiB, 1 PiB]");
    json_decref(chip);

    json_t *model = cfg_schema_to_json(&model_cfg_schema);
    assert_string_equal(col(row(model, "switch"), "default"), "absent");
    assert_string_equal(col(row(model, "switch.top_k"), "default"), "1");
    assert_string_equal(col(row(model, "switch.capacity_factor_eval"), "default"), "2.0");
    assert_string_equal(col(row(model, "encoder_layers"), "default"), "derived");
    assert_string_equal(col(row(model, "d_kv"), "default"), "64");
    json_decref(model);
}
