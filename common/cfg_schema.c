/* This file implements the schema-driven half of cfg.h: decoding a mapping into a C struct
 * from a table of typed fields (cfg_decode, cfg_load, cfg_schema_find), the errors check
 * functions raise (cfg_check_error), "did you mean" suggestions for misspelt keys, kinds and
 * enum values, and the JSON views of a decoded struct and of a schema (cfg_to_json,
 * cfg_schema_to_json).
 *
 * Invariants: decoding either fills the whole struct or returns an error (never a
 * partly-defaulted required field); every key of the mapping must be a field of the schema
 * (or `kind`, equal to the schema's kind) and every required field must be given; optional
 * fields get their default by decoding the default's YAML text with the same rules, so a
 * default obeys the field's type and range; a malformed schema table aborts (SS_ASSERT), a
 * malformed config returns SS_ERR_CONFIG naming FILE:LINE:COL and the field path. Type rules:
 * a quoted scalar is a string; booleans are true/false only (YAML 1.1's yes/no/on/off are
 * rejected with a hint); integers have no fraction or exponent; null or empty values are
 * "missing a value".
 */
#include "cfg_impl.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- suggestions ------------------------------------------------------------------------ */

size_t cfg_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return la > lb ? la : lb;
    size_t prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) !=
                                        tolower((unsigned char)b[j - 1]));
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof prev);
    }
    return prev[lb];
}

/* The candidate closest to word when it is close enough to be a likely typo, else NULL. */
static const char *closest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        size_t d = cfg_edit_distance(word, cands[i]);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    size_t len = strlen(word);
    return best && best_d <= 2 && 3 * best_d <= len + 2 ? best : NULL;
}

/* names joined by sep, the last two by last: "a, b or c" */
static void join_names(char *out, size_t n, const char *const *names, size_t count,
                       const char *sep, const char *last)
{
    out[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        size_t used = strlen(out);
        snprintf(out + used, n - used, "%s%s", i == 0 ? "" : i + 1 == count ? last : sep,
                 names[i]);
    }
}

/* ---- describing values ------------------------------------------------------------------ */

/* YAML 1.1 booleans that YAML 1.2 (and switchsim) read as strings. */
static int is_yaml11_bool(const char *s)
{
    static const char *const words[] = {"yes", "no", "on", "off", "y", "n"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t j = 0;
        while (words[i][j] && tolower((unsigned char)s[j]) == words[i][j])
            j++;
        if (!words[i][j] && !s[j])
            return 1;
    }
    return 0;
}

/* A kind value for messages: 'chip', or what the node is when it is not a name. */
static void describe_kind(const cfg_node *k, char *buf, size_t len)
{
    if (k->kind == CFG_SCALAR && !cfg_node_is_null(k))
        snprintf(buf, len, "'%.60s'", k->text);
    else
        cfg_describe(k, buf, len);
}

/* ---- decoding --------------------------------------------------------------------------- */

static ss_status decode_value(const cfg_field *f, char *obj, const cfg_node *node,
                              const char *path, ss_err *err);

static const char *type_name(cfg_type t)
{
    switch (t) {
    case CFG_T_INT: return "int";
    case CFG_T_U64: return "uint64";
    case CFG_T_DOUBLE: return "number";
    case CFG_T_BOOL: return "bool";
    case CFG_T_ENUM: return "enum";
    case CFG_T_STRING: return "string";
    case CFG_T_BYTES: return "bytes";
    case CFG_T_INT_LIST: return "list of int";
    case CFG_T_BOOL_LIST: return "list of bool";
    case CFG_T_MAPPING: return "mapping";
    case CFG_T_REF: return "reference";
    }
    return "?";
}

static int max_len(const cfg_field *f)
{
    return (int)(f->size / sizeof(int));
}

static size_t count_names(const char *const *names)
{
    size_t n = 0;
    while (names[n])
        n++;
    return n;
}

/* What the field expects, for messages: "an integer", "one of relu, geglu", ... */
static void expected_text(const cfg_field *f, char *buf, size_t n)
{
    switch (f->type) {
    case CFG_T_INT: snprintf(buf, n, "an integer"); break;
    case CFG_T_U64: snprintf(buf, n, "a non-negative integer"); break;
    case CFG_T_DOUBLE: snprintf(buf, n, "a number"); break;
    case CFG_T_BOOL: snprintf(buf, n, "true or false"); break;
    case CFG_T_ENUM: {
        char names[256];
        size_t count = count_names(f->names);
        join_names(names, sizeof names, f->names, count, ", ", " or ");
        snprintf(buf, n, "%s%s", count > 2 ? "one of " : "", names);
        break;
    }
    case CFG_T_STRING: snprintf(buf, n, "a string of 1 to %zu characters", f->size - 1); break;
    case CFG_T_BYTES:
        snprintf(buf, n, "a byte count (an integer, or a string like \"32 GiB\" or \"900 MB\")");
        break;
    case CFG_T_INT_LIST:
    case CFG_T_BOOL_LIST: {
        const char *what = f->type == CFG_T_INT_LIST ? "integers" : "booleans (true/false)";
        if (f->min_len == max_len(f))
            snprintf(buf, n, "a list of %d %s", f->min_len, what);
        else
            snprintf(buf, n, "a list of %d to %d %s", f->min_len, max_len(f), what);
        break;
    }
    case CFG_T_MAPPING: snprintf(buf, n, "a mapping"); break;
    case CFG_T_REF:
        snprintf(buf, n, "a path to a %s config or an inline mapping", f->sub->kind);
        break;
    }
}

static ss_status type_error(const cfg_field *f, const cfg_node *node, const char *path,
                            const char *note, ss_err *err)
{
    char want[320], got[96];
    expected_text(f, want, sizeof want);
    cfg_describe(node, got, sizeof got);
    return cfg_error(err, node, path, "expected %s, got %s%s", want, got, note ? note : "");
}

/* One end of a range: "64", "0.99", "32 GiB", "2^64-1". */
static void bound_text(const cfg_field *f, double v, char *buf, size_t n)
{
    if (v >= 18446744073709551615.0)
        snprintf(buf, n, "2^64-1");
    else if (f->type == CFG_T_BYTES)
        cfg_bytes_format(buf, n, (uint64_t)v);
    else if (v == floor(v) && fabs(v) < 1e18)
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%.15g", v);
}

/* "[1, 64]", "(0, 10]" */
static void range_text(const cfg_field *f, char *buf, size_t n)
{
    char lo[32], hi[32];
    bound_text(f, f->min, lo, sizeof lo);
    bound_text(f, f->max, hi, sizeof hi);
    snprintf(buf, n, "%s%s, %s]", f->flags & CFG_MIN_OPEN ? "(" : "[", lo, hi);
}

/* "SHOWN is out of range: allowed [lo, hi]" when v lies outside f's range, else SS_OK. shown
 * is how the message writes the value. */
static ss_status check_range(const cfg_field *f, double v, const char *shown,
                             const cfg_node *node, const char *path, ss_err *err)
{
    int low = (f->flags & CFG_MIN_OPEN) ? !(v > f->min) : v < f->min;
    if (!low && !(v > f->max))
        return SS_OK;
    char range[96];
    range_text(f, range, sizeof range);
    return cfg_error(err, node, path, "%s is out of range: allowed %s", shown, range);
}

/* A non-null scalar, or an error saying what was expected. */
static ss_status want_scalar(const cfg_field *f, const cfg_node *node, const char *path,
                             ss_err *err)
{
    if (cfg_node_is_null(node)) {
        char want[320];
        expected_text(f, want, sizeof want);
        return cfg_error(err, node, path, "missing a value (expected %s)", want);
    }
    if (node->kind != CFG_SCALAR)
        return type_error(f, node, path, NULL, err);
    return SS_OK;
}

/* Checks that node is a plain integer: quoted, real and other scalars are type errors. */
static ss_status plain_integer(const cfg_field *f, const cfg_node *node, const char *path,
                              ss_err *err)
{
    if (node->quoted)
        return type_error(f, node, path, " (quoted values are strings)", err);
    cfg_num_class c = cfg_classify_number(node->text);
    if (c == CFG_NUM_REAL)
        return type_error(f, node, path,
                          strpbrk(node->text, "eE")
                              ? " (exponent notation is only for real numbers)"
                              : " (an integer has no fraction)",
                          err);
    return c == CFG_NUM_INT ? SS_OK : type_error(f, node, path, NULL, err);
}

static ss_status decode_int(const cfg_field *f, int *dst, const cfg_node *node,
                            const char *path, ss_err *err)
{
    ss_status st = plain_integer(f, node, path, err);
    if (st != SS_OK)
        return st;
    errno = 0;
    long long v = strtoll(node->text, NULL, 10);
    double dv = errno == ERANGE ? (v < 0 ? -HUGE_VAL : HUGE_VAL) : (double)v;
    if ((st = check_range(f, dv, node->text, node, path, err)) == SS_OK)
        *dst = (int)v; /* the schema's range lies within int */
    return st;
}

static ss_status decode_u64(const cfg_field *f, uint64_t *dst, const cfg_node *node,
                            const char *path, ss_err *err)
{
    ss_status st = plain_integer(f, node, path, err);
    if (st != SS_OK)
        return st;
    if (node->text[0] == '-')
        return cfg_error(err, node, path, "expected a non-negative integer, got %s",
                         node->text);
    errno = 0;
    unsigned long long v = strtoull(node->text, NULL, 10);
    if (errno == ERANGE)
        return cfg_error(err, node, path, "%s does not fit in 64 bits", node->text);
    if ((st = check_range(f, (double)v, node->text, node, path, err)) == SS_OK)
        *dst = v;
    return st;
}

static ss_status decode_bool(const cfg_field *f, int *dst, const cfg_node *node,
                             const char *path, ss_err *err)
{
    if (!node->quoted && cfg_is_bool_word(node->text)) {
        *dst = tolower((unsigned char)node->text[0]) == 't';
        return SS_OK;
    }
    if (!node->quoted && is_yaml11_bool(node->text))
        return cfg_error(err, node, path,
                         "expected true or false, got '%s' (yes/no/on/off are not booleans "
                         "here: write true or false)",
                         node->text);
    return type_error(f, node, path, node->quoted ? " (quoted values are strings)" : NULL,
                      err);
}

static ss_status decode_enum(const cfg_field *f, int *dst, const cfg_node *node,
                             const char *path, ss_err *err)
{
    size_t n = count_names(f->names);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(node->text, f->names[i]) == 0) {
            *dst = (int)i;
            return SS_OK;
        }
    }
    const char *near = closest(node->text, f->names, n);
    char note[96] = "";
    if (near)
        snprintf(note, sizeof note, "; did you mean '%s'?", near);
    return type_error(f, node, path, note, err);
}

static ss_status decode_double(const cfg_field *f, double *dst, const cfg_node *node,
                               const char *path, ss_err *err)
{
    if (node->quoted)
        return type_error(f, node, path, " (quoted values are strings)", err);
    if (cfg_classify_number(node->text) == CFG_NUM_NONE)
        return type_error(f, node, path, NULL, err);
    double v = strtod(node->text, NULL);
    if (!isfinite(v))
        return cfg_error(err, node, path, "%s is too large for a number", node->text);
    *dst = v;
    return check_range(f, v, node->text, node, path, err);
}

static ss_status decode_bytes(const cfg_field *f, uint64_t *dst, const cfg_node *node,
                              const char *path, ss_err *err)
{
    const char *why = NULL;
    uint64_t v;
    if (cfg_bytes_parse(node->text, &v, &why) != 0)
        return cfg_error(err, node, path, "'%s': %s", node->text, why);
    char got[32];
    cfg_bytes_format(got, sizeof got, v);
    ss_status st = check_range(f, (double)v, got, node, path, err);
    if (st == SS_OK)
        *dst = v;
    return st;
}

static ss_status decode_string(const cfg_field *f, char *dst, const cfg_node *node,
                               const char *path, ss_err *err)
{
    size_t len = strlen(node->text);
    if (len == 0 || len >= f->size)
        return cfg_error(err, node, path,
                         "expected a string of 1 to %zu characters, got %zu characters",
                         f->size - 1, len);
    memcpy(dst, node->text, len + 1);
    return SS_OK;
}

/* dst is the list's member; *count receives its length. */
static ss_status decode_list(const cfg_field *f, int *dst, const cfg_node *node,
                             const char *path, int *count, ss_err *err)
{
    if (node->kind != CFG_SEQ || (int)node->n < f->min_len || (int)node->n > max_len(f))
        return type_error(f, node, path, NULL, err);
    cfg_field elem = *f;
    elem.type = f->type == CFG_T_INT_LIST ? CFG_T_INT : CFG_T_BOOL;
    elem.offset = 0;
    elem.size = sizeof(int);
    for (size_t i = 0; i < node->n; i++) {
        char sub[CFG_PATH_LEN];
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        ss_status st = decode_value(&elem, (char *)(dst + i), node->items[i], sub, err);
        if (st != SS_OK)
            return st;
    }
    *count = (int)node->n;
    return SS_OK;
}

/* The root of a referenced file must be of the referenced kind. */
static ss_status check_ref_kind(const cfg_field *f, const cfg_node *root, const cfg_node *node,
                                const char *path, ss_err *err)
{
    const cfg_node *k = cfg_map_get(root, "kind");
    if (!k)
        return cfg_error(err, root, "kind",
                         "missing; a file used as a %s must say 'kind: %s' (referenced from "
                         "%s:%d:%d)",
                         f->sub->kind, f->sub->kind, node->file, node->line, node->col);
    if (k->kind != CFG_SCALAR || strcmp(k->text, f->sub->kind) != 0) {
        char got[96];
        describe_kind(k, got, sizeof got);
        return cfg_error(err, node, path, "'%s' is not a %s config: its kind is %s", node->text,
                         f->sub->kind, got);
    }
    return SS_OK;
}

static ss_status decode_ref(const cfg_field *f, void *dst, const cfg_node *node,
                            const char *path, ss_err *err)
{
    if (node->kind == CFG_MAP)
        return cfg_decode(f->sub, dst, node, path, err);
    if (node->kind != CFG_SCALAR)
        return type_error(f, node, path, NULL, err);
    cfg_doc *doc = NULL;
    ss_status st = cfg_doc_load_named(&doc, node, path, err);
    if (st == SS_OK)
        st = check_ref_kind(f, cfg_doc_root(doc), node, path, err);
    if (st == SS_OK) {
        st = cfg_decode(f->sub, dst, cfg_doc_root(doc), "", err);
        if (st != SS_OK)
            cfg_err_append(err, " (in the %s '%s' referenced at %s:%d:%d)", f->sub->kind,
                       node->text, node->file, node->line, node->col);
    }
    cfg_doc_free(doc);
    return st;
}

/* Decodes node into field f of the struct at obj; path is the field's path. */
static ss_status decode_value(const cfg_field *f, char *obj, const cfg_node *node,
                              const char *path, ss_err *err)
{
    void *dst = obj + f->offset;
    ss_status st;
    switch (f->type) {
    case CFG_T_INT_LIST:
    case CFG_T_BOOL_LIST:
    case CFG_T_MAPPING:
    case CFG_T_REF:
        if (cfg_node_is_null(node))
            return want_scalar(f, node, path, err); /* "missing a value" */
        if (f->type == CFG_T_MAPPING)
            return node->kind == CFG_MAP ? cfg_decode(f->sub, dst, node, path, err)
                                         : type_error(f, node, path, NULL, err);
        if (f->type == CFG_T_REF)
            return decode_ref(f, dst, node, path, err);
        return decode_list(f, dst, node, path, (int *)(void *)(obj + f->count_offset), err);
    default: break;
    }
    if ((st = want_scalar(f, node, path, err)) != SS_OK)
        return st;
    switch (f->type) {
    case CFG_T_INT: return decode_int(f, dst, node, path, err);
    case CFG_T_U64: return decode_u64(f, dst, node, path, err);
    case CFG_T_DOUBLE: return decode_double(f, dst, node, path, err);
    case CFG_T_BOOL: return decode_bool(f, dst, node, path, err);
    case CFG_T_ENUM: return decode_enum(f, dst, node, path, err);
    case CFG_T_STRING: return decode_string(f, dst, node, path, err);
    case CFG_T_BYTES: return decode_bytes(f, dst, node, path, err);
    default: break;
    }
    SS_ASSERT(0 && "unhandled field type");
    return SS_ERR_CONFIG;
}

/* Aborts on a malformed schema table (a programming error, not a config error). */
static void check_schema(const cfg_schema *s)
{
    for (size_t i = 0; i < s->nfields; i++) {
        const cfg_field *f = &s->fields[i];
        SS_ASSERT(f->name && f->help);
        SS_ASSERT(!(f->flags & CFG_REQUIRED) || !f->def);
        SS_ASSERT(f->offset + f->size <= s->size);
        switch (f->type) {
        case CFG_T_INT:
            SS_ASSERT(f->size == sizeof(int) && f->min <= f->max);
            SS_ASSERT(f->min >= -2147483648.0 && f->max <= 2147483647.0);
            break;
        case CFG_T_U64:
        case CFG_T_BYTES: SS_ASSERT(f->size == sizeof(uint64_t) && f->min >= 0); break;
        case CFG_T_DOUBLE: SS_ASSERT(f->size == sizeof(double) && f->min <= f->max); break;
        case CFG_T_BOOL: SS_ASSERT(f->size == sizeof(int)); break;
        case CFG_T_ENUM: SS_ASSERT(f->size == sizeof(int) && f->names && f->names[0]); break;
        case CFG_T_STRING: SS_ASSERT(f->size >= 2); break;
        case CFG_T_INT_LIST:
        case CFG_T_BOOL_LIST:
            SS_ASSERT(f->size % sizeof(int) == 0 && f->min_len >= 1);
            SS_ASSERT(f->min_len <= max_len(f) && !f->def);
            SS_ASSERT(f->count_offset + sizeof(int) <= s->size);
            break;
        case CFG_T_MAPPING:
        case CFG_T_REF:
            SS_ASSERT(f->sub && f->sub->size == f->size && !f->def);
            SS_ASSERT(f->type == CFG_T_MAPPING || f->sub->kind);
            SS_ASSERT(!(f->flags & CFG_PRESENCE) || f->count_offset + sizeof(int) <= s->size);
            break;
        }
    }
}

static const cfg_field *find_field(const cfg_schema *s, const char *name)
{
    for (size_t i = 0; i < s->nfields; i++)
        if (strcmp(s->fields[i].name, name) == 0)
            return &s->fields[i];
    return NULL;
}

/* The error for key i of map, which s has no field for; it points at the key, not at the
 * value (the positions of keys are kept apart from their values). */
static ss_status unknown_key(const cfg_schema *s, const cfg_node *map, size_t i,
                             const char *path, ss_err *err)
{
    const char *names[64];
    size_t n = 0;
    for (size_t j = 0; j < s->nfields && n < 63; j++)
        names[n++] = s->fields[j].name;
    if (s->kind)
        names[n++] = "kind";
    const char *near = closest(map->keys[i], names, n);
    char msg[sizeof err->msg];
    if (near) {
        snprintf(msg, sizeof msg, "unknown key; did you mean '%s'?", near);
    } else {
        char list[768];
        join_names(list, sizeof list, names, n, ", ", ", ");
        snprintf(msg, sizeof msg, "unknown key; %s%s has: %s", s->kind ? "a " : "",
                 s->kind ? s->kind : "this mapping", list);
    }
    return cfg_pos_error(err, map->items[i]->file, map->key_line[i], map->key_col[i], path,
                         "%s", msg);
}

static ss_status check_kind_key(const cfg_schema *s, const cfg_node *node, const char *path,
                                ss_err *err)
{
    if (node->kind == CFG_SCALAR && !cfg_node_is_null(node) && strcmp(node->text, s->kind) == 0)
        return SS_OK;
    char got[96];
    cfg_describe(node, got, sizeof got);
    return cfg_error(err, node, path, "expected '%s' here, got %s", s->kind, got);
}

/* Fills optional field f that the mapping does not give. */
static void apply_default(const cfg_field *f, char *obj)
{
    if (!f->def)
        return; /* derived by the kind's check function, or an absent optional mapping */
    cfg_node n = {.kind = CFG_SCALAR, .file = "<schema default>", .line = 1, .col = 1,
                  .text = f->def};
    ss_err e;
    if (decode_value(f, obj, &n, f->name, &e) != SS_OK) {
        fprintf(stderr, "switchsim: internal error: default of '%s': %s\n", f->name, e.msg);
        SS_ASSERT(0 && "bad default in a schema table");
    }
}

ss_status cfg_decode(const cfg_schema *schema, void *out, const cfg_node *map, const char *path,
                     ss_err *err)
{
    check_schema(schema);
    char *obj = out;
    memset(obj, 0, schema->size);
    char sub[CFG_PATH_LEN];
    for (size_t i = 0; i < map->n; i++) {
        cfg_join_path(sub, sizeof sub, path, map->keys[i]);
        if (schema->kind && strcmp(map->keys[i], "kind") == 0) {
            ss_status st = check_kind_key(schema, map->items[i], sub, err);
            if (st != SS_OK)
                return st;
            continue;
        }
        const cfg_field *f = find_field(schema, map->keys[i]);
        if (!f)
            return unknown_key(schema, map, i, sub, err);
        ss_status st = decode_value(f, obj, map->items[i], sub, err);
        if (st != SS_OK)
            return st;
        if (f->flags & CFG_PRESENCE)
            *(int *)(obj + f->count_offset) = 1;
    }
    for (size_t i = 0; i < schema->nfields; i++) {
        const cfg_field *f = &schema->fields[i];
        if (cfg_map_get(map, f->name))
            continue;
        if (f->flags & CFG_REQUIRED) {
            char want[320];
            expected_text(f, want, sizeof want);
            cfg_join_path(sub, sizeof sub, path, f->name);
            return cfg_error(err, map, sub, "missing required field: %s (%s)", f->help, want);
        }
        apply_default(f, obj);
    }
    return schema->check ? schema->check(out, map, path, err) : SS_OK;
}

ss_status cfg_load(const cfg_schema *schema, void *out, const char *path, ss_err *err)
{
    cfg_doc *doc = NULL;
    ss_status st = cfg_doc_load(&doc, path, err);
    if (st != SS_OK)
        return st;
    const cfg_schema *found = cfg_schema_find(&schema, 1, doc, err);
    st = found ? cfg_decode(schema, out, cfg_doc_root(doc), "", err) : SS_ERR_CONFIG;
    cfg_doc_free(doc);
    return st;
}

const cfg_schema *cfg_schema_find(const cfg_schema *const *schemas, size_t n, const cfg_doc *doc,
                                  ss_err *err)
{
    const cfg_node *root = cfg_doc_root(doc);
    const char *names[16] = {0};
    SS_ASSERT(n >= 1 && n <= 16);
    for (size_t i = 0; i < n; i++)
        names[i] = schemas[i]->kind;
    char list[256];
    join_names(list, sizeof list, names, n, ", ", ", ");
    const cfg_node *k = cfg_map_get(root, "kind");
    if (!k) {
        if (n == 1)
            cfg_error(err, root, "kind", "missing; this file must say 'kind: %s'", list);
        else
            cfg_error(err, root, "kind", "missing; a config must say which kind it is (%s)",
                      list);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (k->kind == CFG_SCALAR && strcmp(k->text, schemas[i]->kind) == 0)
            return schemas[i];
    char got[96];
    describe_kind(k, got, sizeof got);
    const char *near = k->kind == CFG_SCALAR ? closest(k->text, names, n) : NULL;
    if (n == 1)
        cfg_error(err, k, "kind", "expected %s, got %s", list, got);
    else if (near)
        cfg_error(err, k, "kind", "unknown kind %s; did you mean '%s'?", got, near);
    else
        cfg_error(err, k, "kind", "unknown kind %s; known kinds: %s", got, list);
    return NULL;
}

/* The node at dotted path `field` below map, or the deepest mapping on the way. */
static const cfg_node *node_at(const cfg_node *map, const char *field)
{
    char buf[CFG_PATH_LEN];
    snprintf(buf, sizeof buf, "%s", field);
    const cfg_node *cur = map;
    for (char *part = buf, *dot; part; part = dot ? dot + 1 : NULL) {
        dot = strchr(part, '.');
        if (dot)
            *dot = '\0';
        const cfg_node *next = cfg_map_get(cur, part);
        if (!next)
            return cur;
        cur = next;
    }
    return cur;
}

ss_status cfg_check_error(ss_err *err, const cfg_node *map, const char *path, const char *field,
                          const char *fmt, ...)
{
    char full[CFG_PATH_LEN];
    cfg_join_path(full, sizeof full, path, field);
    const cfg_node *at = node_at(map, field);
    va_list ap;
    va_start(ap, fmt);
    cfg_vpos_error(err, at->file, at->line, at->col, full, fmt, ap);
    va_end(ap);
    return SS_ERR_CONFIG;
}

/* ---- JSON ------------------------------------------------------------------------------- */

static json_t *u64_json(uint64_t v)
{
    if (v <= (uint64_t)LLONG_MAX) /* json_int_t is long long */
        return json_integer((json_int_t)v);
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return json_string(buf);
}

static json_t *field_json(const cfg_field *f, const char *obj)
{
    const char *p = obj + f->offset;
    switch (f->type) {
    case CFG_T_INT: return json_integer(*(const int *)p);
    case CFG_T_U64:
    case CFG_T_BYTES: return u64_json(*(const uint64_t *)p);
    case CFG_T_DOUBLE: return json_real(*(const double *)p);
    case CFG_T_BOOL: return json_boolean(*(const int *)p);
    case CFG_T_ENUM: return json_string(f->names[*(const int *)p]);
    case CFG_T_STRING: return json_string(p);
    case CFG_T_INT_LIST:
    case CFG_T_BOOL_LIST: {
        json_t *a = json_array();
        int n = *(const int *)(obj + f->count_offset);
        for (int i = 0; i < n; i++) {
            int v = ((const int *)p)[i];
            json_array_append_new(a, f->type == CFG_T_INT_LIST ? json_integer(v)
                                                                : json_boolean(v));
        }
        return a;
    }
    case CFG_T_MAPPING:
        if ((f->flags & CFG_PRESENCE) && !*(const int *)(obj + f->count_offset))
            return json_null();
        return cfg_to_json(f->sub, p);
    case CFG_T_REF: {
        const cfg_field *name = find_field(f->sub, "name");
        if (name && name->type == CFG_T_STRING)
            return json_string(p + name->offset);
        return cfg_to_json(f->sub, p);
    }
    }
    return json_null();
}

json_t *cfg_to_json(const cfg_schema *schema, const void *obj)
{
    json_t *o = json_object();
    for (size_t i = 0; i < schema->nfields; i++)
        json_object_set_new(o, schema->fields[i].name, field_json(&schema->fields[i], obj));
    return o;
}

static void schema_rows(json_t *rows, const cfg_schema *s, const char *prefix)
{
    for (size_t i = 0; i < s->nfields; i++) {
        const cfg_field *f = &s->fields[i];
        char name[CFG_PATH_LEN], type[320], def[128] = "", range[96] = "";
        cfg_join_path(name, sizeof name, prefix, f->name);
        snprintf(type, sizeof type, "%s", type_name(f->type));
        if (f->type == CFG_T_ENUM) {
            size_t used = strlen(type);
            snprintf(type + used, sizeof type - used, ": ");
            used = strlen(type);
            join_names(type + used, sizeof type - used, f->names, count_names(f->names), "|",
                       "|");
        } else if (f->type == CFG_T_INT_LIST || f->type == CFG_T_BOOL_LIST) {
            size_t used = strlen(type);
            snprintf(type + used, sizeof type - used, " (%d..%d)", f->min_len, max_len(f));
        } else if (f->type == CFG_T_REF) {
            snprintf(type, sizeof type, "%s (path or mapping)", f->sub->kind);
        }
        if (f->flags & CFG_REQUIRED)
            snprintf(def, sizeof def, "required");
        else if (f->def)
            snprintf(def, sizeof def, "%s", f->def);
        else
            snprintf(def, sizeof def, f->type == CFG_T_MAPPING ? "absent" : "derived");
        if (f->type == CFG_T_INT || f->type == CFG_T_U64 || f->type == CFG_T_DOUBLE ||
            f->type == CFG_T_BYTES || f->type == CFG_T_INT_LIST)
            range_text(f, range, sizeof range);
        json_t *row = json_object();
        json_object_set_new(row, "field", json_string(name));
        json_object_set_new(row, "type", json_string(type));
        json_object_set_new(row, "default", json_string(def));
        json_object_set_new(row, "range", json_string(range));
        json_object_set_new(row, "help", json_string(f->help));
        json_array_append_new(rows, row);
        if (f->type == CFG_T_MAPPING)
            schema_rows(rows, f->sub, name);
    }
}

json_t *cfg_schema_to_json(const cfg_schema *schema)
{
    json_t *rows = json_array();
    schema_rows(rows, schema, "");
    return rows;
}
