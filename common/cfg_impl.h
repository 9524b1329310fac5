/* This file declares what the parts of the config reader share and nothing outside common/cfg_*.c
 * may use: the document's arena, positioned error messages, describing a node for "got ..."
 * in messages, the YAML parser's entry point and loading the file a node names.
 *
 *   cfg_tree.c     the document: arena, node lookup, positioned errors, describing values
 *   cfg_parse.c    YAML text (libyaml events) into a tree of positioned nodes
 *   cfg_include.c  reading files, `include:` resolution and deep merge; cfg_doc_load/parse
 *   cfg_bytes.c    byte counts with units ("32 GiB")
 *   cfg_schema.c   schema tables: decoding a mapping into a struct, suggestions, JSON views
 *
 * Invariants: every node, key and string of a document lives in the document's arena and is
 * freed with it; every function here that returns a status other than SS_OK has written err
 * in the "FILE:LINE:COL: field 'PATH': MESSAGE" form of cfg.h (or an out-of-memory message).
 */
#ifndef SWITCHSIM_COMMON_CFG_IMPL_H
#define SWITCHSIM_COMMON_CFG_IMPL_H

#include <stdarg.h>
#include <stddef.h>

#include "common/cfg.h"

enum { CFG_PATH_LEN = 256 /* field paths in messages, bytes */ };

struct cfg_block;
struct cfg_doc {
    struct cfg_block *arena; /* newest block first; owns every node, key and string */
    cfg_node *root;          /* a mapping once loaded */
};

/* ---- cfg_tree.c ------------------------------------------------------------------------- */

/* size bytes of zeroed, max_align_t-aligned arena storage; NULL when out of memory. */
void *cfg_arena_alloc(cfg_doc *doc, size_t size);
/* A NUL-terminated arena copy of s[0..n); NULL when out of memory. */
char *cfg_arena_strndup(cfg_doc *doc, const char *s, size_t n);
/* Gives node arena arrays for cap children: items, and for a mapping also keys and their
 * positions. Leaves node->n alone; returns 0, or -1 when out of memory. */
int cfg_node_reserve(cfg_doc *doc, cfg_node *node, size_t cap);
/* Index of key in mapping map, or -1. */
long cfg_map_index(const cfg_node *map, const char *key);

/* Writes "FILE:LINE:COL: field 'PATH': MESSAGE" (no field part when path is NULL or "") and
 * returns SS_ERR_CONFIG. */
ss_status cfg_vpos_error(ss_err *err, const char *file, int line, int col, const char *path,
                         const char *fmt, va_list ap);
ss_status cfg_pos_error(ss_err *err, const char *file, int line, int col, const char *path,
                        const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Appends text to an existing message (keeps the code). */
void cfg_err_append(ss_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* out = "path.field", or "field" when path is NULL or "". */
void cfg_join_path(char *out, size_t n, const char *path, const char *field);
/* The out-of-memory error; returns SS_ERR_NOMEM. */
ss_status cfg_nomem(ss_err *err);

typedef enum { CFG_NUM_NONE, CFG_NUM_INT, CFG_NUM_REAL } cfg_num_class;
/* Integer: [+-]digits. Real: [+-](digits[.digits] | .digits)[e[+-]digits]. */
cfg_num_class cfg_classify_number(const char *s);
/* true/True/TRUE/false/False/FALSE */
int cfg_is_bool_word(const char *s);
/* What a node is, for "got ..." in messages: "a mapping", "the integer 3", ... */
void cfg_describe(const cfg_node *n, char *buf, size_t len);

/* ---- cfg_parse.c ------------------------------------------------------------------------ */

/* Parses one YAML document from text into nodes in doc's arena; file (an arena string) is the
 * name positions carry. *root is NULL for an empty stream. */
ss_status cfg_parse_yaml(cfg_doc *doc, const char *file, const char *text, size_t len,
                         cfg_node **root, ss_err *err);

/* ---- cfg_include.c ---------------------------------------------------------------------- */

/* Loads the file that scalar node `from` (at field from_path) names, relative to from->file,
 * with its includes resolved; errors name from. *out is NULL on error. */
ss_status cfg_doc_load_named(cfg_doc **out, const cfg_node *from, const char *from_path,
                             ss_err *err);

#endif
