/* This file declares switchsim's config reader: YAML files (libyaml) parsed into a tree of
 * nodes that remember their file, line and column; `include:` resolution with field
 * overrides; and schema-driven decoding into C structs with errors that name the file, line,
 * column and field.
 *
 * Invariants: every node keeps the position where its text was written, so an error in an
 * included file names that file; decoding never applies a silent default to a required field
 * and rejects unknown keys, wrong types and out-of-range values.
 *
 * Errors all read "FILE:LINE:COL: field 'PATH': MESSAGE" (the "field" part is left out when
 * the error is about the file itself, e.g. a YAML syntax error), where PATH is the dotted path
 * of the field from the root of the document the position is in ("switch.top_k", "dims[1]").
 *
 * `include:` (a path, or a list of paths, relative to the file that says it) may appear in any
 * mapping: the included documents are the base, applied in order, and the mapping's own keys
 * override them; nested mappings merge key by key, a scalar or a list replaces. Includes are
 * resolved when a document is loaded, so the tree a decoder sees has no `include` keys.
 */
#ifndef SWITCHSIM_COMMON_CFG_H
#define SWITCHSIM_COMMON_CFG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/status.h"

typedef enum { CFG_SCALAR, CFG_MAP, CFG_SEQ } cfg_node_kind;

typedef struct cfg_node cfg_node;
struct cfg_node {
    cfg_node_kind kind;
    const char *file; /* path of the file the node was written in */
    int line, col;    /* 1-based position of the node's value */
    /* CFG_SCALAR */
    const char *text;
    int quoted;       /* the scalar was quoted (or a block scalar): always a string */
    /* CFG_MAP: keys[i] -> items[i]; CFG_SEQ: items[i]. Key i was written in items[i]->file
     * (after an include merge a mapping holds keys from several files). */
    size_t n;
    const char **keys;
    int *key_line, *key_col;
    cfg_node **items;
};

/* A loaded document owns all its nodes. */
typedef struct cfg_doc cfg_doc;

/* Parses path and resolves include: chains; *out is NULL on error. The root of a loaded
 * document is always a mapping (an empty file or a top-level scalar or list is an error). */
ss_status cfg_doc_load(cfg_doc **out, const char *path, ss_err *err);
/* Same, from text in memory; name stands for the file in messages and includes resolve
 * relative to its directory. */
ss_status cfg_doc_parse(cfg_doc **out, const char *name, const char *text, size_t len,
                        ss_err *err);
const cfg_node *cfg_doc_root(const cfg_doc *doc);
void cfg_doc_free(cfg_doc *doc);

/* Member `key` of a mapping node, or NULL. */
const cfg_node *cfg_map_get(const cfg_node *map, const char *key);
/* A plain scalar that YAML reads as null: empty, "~" or null/Null/NULL. */
int cfg_node_is_null(const cfg_node *node);

/* Writes "FILE:LINE:COL: field 'PATH': MESSAGE" for node `at` (PATH may be "" or NULL to
 * leave the field part out) and returns SS_ERR_CONFIG. */
ss_status cfg_error(ss_err *err, const cfg_node *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- schema-driven decoding ------------------------------------------------------------ */

typedef enum {
    CFG_T_INT,       /* int; plain integer */
    CFG_T_U64,       /* uint64_t; plain non-negative integer */
    CFG_T_DOUBLE,    /* double; plain integer or real ("1e-3"), finite */
    CFG_T_BOOL,      /* int 0/1; plain true/false only (yes/no/on/off are rejected) */
    CFG_T_ENUM,      /* int: index into names */
    CFG_T_STRING,    /* char[size]; any non-null scalar of at most size-1 bytes */
    CFG_T_BYTES,     /* uint64_t; integer or "32 GiB", "16MiB", "900 MB" */
    CFG_T_INT_LIST,  /* int[size/sizeof(int)], length into the int at count_offset */
    CFG_T_BOOL_LIST, /* int[...] of 0/1, length into the int at count_offset */
    CFG_T_MAPPING,   /* a struct decoded with sub; an optional one that is absent stays zero
                        and its presence flag (the int at count_offset) 0 */
    CFG_T_REF        /* a struct of kind sub->kind: a path to a file of that kind, or a mapping */
} cfg_type;

enum {
    CFG_OPTIONAL = 0,
    CFG_REQUIRED = 1 << 0, /* no default: a missing field is an error */
    CFG_MIN_OPEN = 1 << 1, /* the value must be greater than min (not equal) */
    CFG_PRESENCE = 1 << 2  /* CFG_T_MAPPING: the int at count_offset is set to 1 when given */
};

typedef struct cfg_schema cfg_schema;

typedef struct {
    const char *name;        /* YAML key */
    cfg_type type;
    unsigned flags;          /* CFG_REQUIRED, CFG_MIN_OPEN, CFG_PRESENCE */
    size_t offset, size;     /* of the member in the decoded struct */
    size_t count_offset;     /* lists: element count (int); mappings: presence flag (int) */
    int min_len;             /* lists: fewest elements (most: size / sizeof(int)) */
    double min, max;         /* numbers, bytes and list elements: allowed range */
    const char *def;         /* optional fields: the default as YAML text; NULL: the kind's
                                check function derives the value (help says how) */
    const char *const *names; /* CFG_T_ENUM: NULL-terminated; index = stored value */
    const cfg_schema *sub;   /* CFG_T_MAPPING, CFG_T_REF */
    const char *help;        /* one line: meaning and unit */
} cfg_field;

/* Consistency checks across fields, after every field is decoded and defaults applied. map
 * is the mapping obj was decoded from and path its field path ("" at a document root);
 * errors should go through cfg_check_error so they point at the offending field. */
typedef ss_status (*cfg_check_fn)(void *obj, const cfg_node *map, const char *path,
                                  ss_err *err);

struct cfg_schema {
    const char *kind;        /* "chip", "pod", ...; NULL for a nested mapping */
    const char *summary;     /* one line */
    size_t size;             /* sizeof the decoded struct */
    const cfg_field *fields;
    size_t nfields;
    cfg_check_fn check;      /* may be NULL */
};

/* Field table entries (designated initialisers, so tables read one line per field). */
#define CFG_AT_(st, m) .offset = offsetof(st, m), .size = sizeof(((st *)0)->m)
#define CFG_NUM_(t, st, m, fl, df, lo, hi, hlp)                                                \
    {.name = #m, .type = (t), CFG_AT_(st, m), .flags = (fl), .def = (df), .min = (lo),         \
     .max = (hi), .help = (hlp)}
#define CFG_INT(st, m, fl, df, lo, hi, hlp) CFG_NUM_(CFG_T_INT, st, m, fl, df, lo, hi, hlp)
#define CFG_U64(st, m, fl, df, lo, hi, hlp) CFG_NUM_(CFG_T_U64, st, m, fl, df, lo, hi, hlp)
#define CFG_DOUBLE(st, m, fl, df, lo, hi, hlp) CFG_NUM_(CFG_T_DOUBLE, st, m, fl, df, lo, hi, hlp)
#define CFG_BYTES(st, m, fl, df, lo, hi, hlp) CFG_NUM_(CFG_T_BYTES, st, m, fl, df, lo, hi, hlp)
#define CFG_BOOL(st, m, fl, df, hlp)                                                           \
    {.name = #m, .type = CFG_T_BOOL, CFG_AT_(st, m), .flags = (fl), .def = (df), .help = (hlp)}
#define CFG_ENUM(st, m, fl, df, nm, hlp)                                                       \
    {.name = #m, .type = CFG_T_ENUM, CFG_AT_(st, m), .flags = (fl), .def = (df), .names = (nm), \
     .help = (hlp)}
#define CFG_STRING(st, m, fl, df, hlp)                                                         \
    {.name = #m, .type = CFG_T_STRING, CFG_AT_(st, m), .flags = (fl), .def = (df),             \
     .help = (hlp)}
#define CFG_INT_LIST(st, m, cnt, minlen, fl, lo, hi, hlp)                                      \
    {.name = #m, .type = CFG_T_INT_LIST, CFG_AT_(st, m), .count_offset = offsetof(st, cnt),    \
     .min_len = (minlen), .flags = (fl), .min = (lo), .max = (hi), .help = (hlp)}
#define CFG_BOOL_LIST(st, m, cnt, minlen, fl, hlp)                                             \
    {.name = #m, .type = CFG_T_BOOL_LIST, CFG_AT_(st, m), .count_offset = offsetof(st, cnt),   \
     .min_len = (minlen), .flags = (fl), .help = (hlp)}
/* A required nested mapping under key yaml. */
#define CFG_MAPPING(st, m, yaml, schema, hlp)                                                  \
    {.name = (yaml), .type = CFG_T_MAPPING, CFG_AT_(st, m), .flags = CFG_REQUIRED,             \
     .sub = (schema), .help = (hlp)}
/* An optional nested mapping under key yaml; present (an int member) records whether it was
 * given. */
#define CFG_MAPPING_OPT(st, m, yaml, present, schema, hlp)                                     \
    {.name = (yaml), .type = CFG_T_MAPPING, CFG_AT_(st, m),                                    \
     .count_offset = offsetof(st, present), .flags = CFG_PRESENCE, .sub = (schema),            \
     .help = (hlp)}
#define CFG_REF(st, m, schema, fl, hlp)                                                        \
    {.name = #m, .type = CFG_T_REF, CFG_AT_(st, m), .flags = (fl), .sub = (schema),           \
     .help = (hlp)}

/* Decodes mapping `map` into out (schema->size bytes, zeroed first): every key must be a field
 * of the schema (or `kind`, which must then equal schema->kind), required fields must be
 * given, optional ones get their default; then schema->check runs. path is map's field path
 * ("" at a document root). */
ss_status cfg_decode(const cfg_schema *schema, void *out, const cfg_node *map, const char *path,
                     ss_err *err);
/* Loads path, checks that its `kind:` is schema->kind and decodes it. */
ss_status cfg_load(const cfg_schema *schema, void *out, const char *path, ss_err *err);
/* The schema in schemas[0..n) whose kind the document's root names; NULL with an error when
 * kind is missing, not a string, or unknown (the message lists the known kinds). */
const cfg_schema *cfg_schema_find(const cfg_schema *const *schemas, size_t n, const cfg_doc *doc,
                                  ss_err *err);
/* For check functions: an error at field `field` (dotted, relative to map, e.g. "plan.data";
 * the nearest enclosing mapping when it is absent) whose path is path.field. */
ss_status cfg_check_error(ss_err *err, const cfg_node *map, const char *path, const char *field,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The decoded fields of obj as a JSON object, in schema order; a reference shows the name of
 * the config it points to. */
json_t *cfg_to_json(const cfg_schema *schema, const void *obj);
/* The schema as an array of {field, type, default, range, help} rows (nested mappings as
 * "outer.inner" rows). */
json_t *cfg_schema_to_json(const cfg_schema *schema);

/* Parses a byte count: a non-negative integer, optionally followed (spaces allowed) by a unit
 * B, kB/KB, MB, GB, TB, PB, EB (powers of 1000) or KiB, MiB, GiB, TiB, PiB, EiB (powers of
 * 1024); a decimal fraction is accepted when the count comes out whole ("1.5 KiB").
 * Returns 0, or -1 with *why set to a static explanation. */
int cfg_bytes_parse(const char *text, uint64_t *out, const char **why);
/* "32 GiB", "900 MB", "1536 B": the largest unit that divides bytes exactly. */
void cfg_bytes_format(char *buf, size_t n, uint64_t bytes);
/* Levenshtein distance, for "did you mean" suggestions. */
size_t cfg_edit_distance(const char *a, const char *b);

#endif
