/* This file implements the config document of cfg.h and cfg_impl.h: the arena that owns a
 * document's nodes, keys and strings; looking up mapping members; the positioned error
 * messages every part of the reader writes ("FILE:LINE:COL: field 'PATH': MESSAGE"); and
 * describing a node's value for the "got ..." part of a message.
 *
 * Invariants: arena storage is zeroed and aligned for any type and lives until cfg_doc_free;
 * a node's position is that of its value, and key i of a mapping has its own position
 * (key_line[i], key_col[i]) in items[i]->file. Type rules that messages describe: a quoted
 * scalar is a string; booleans are true/false only; integers have no fraction or exponent;
 * null or empty values are "nothing".
 */
#include "cfg_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ------------------------------------------------------------------------------ */

typedef struct cfg_block block;
struct cfg_block {
    block *next;
    size_t used, cap; /* bytes of data */
    max_align_t data[];
};

void *cfg_arena_alloc(cfg_doc *doc, size_t size)
{
    const size_t align = sizeof(max_align_t);
    size = (size + align - 1) / align * align;
    block *b = doc->arena;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > 16384 ? size : 16384;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = doc->arena;
        doc->arena = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

char *cfg_arena_strndup(cfg_doc *doc, const char *s, size_t n)
{
    char *p = cfg_arena_alloc(doc, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void cfg_doc_free(cfg_doc *doc)
{
    if (!doc)
        return;
    for (block *b = doc->arena, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(doc);
}

const cfg_node *cfg_doc_root(const cfg_doc *doc)
{
    return doc->root;
}

int cfg_node_reserve(cfg_doc *doc, cfg_node *node, size_t cap)
{
    node->items = cfg_arena_alloc(doc, cap * sizeof *node->items);
    if (node->kind != CFG_MAP)
        return node->items ? 0 : -1;
    node->keys = cfg_arena_alloc(doc, cap * sizeof *node->keys);
    node->key_line = cfg_arena_alloc(doc, cap * sizeof *node->key_line);
    node->key_col = cfg_arena_alloc(doc, cap * sizeof *node->key_col);
    return node->items && node->keys && node->key_line && node->key_col ? 0 : -1;
}

/* ---- node lookup ------------------------------------------------------------------------ */

long cfg_map_index(const cfg_node *map, const char *key)
{
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i], key) == 0)
            return (long)i;
    return -1;
}

const cfg_node *cfg_map_get(const cfg_node *map, const char *key)
{
    if (!map || map->kind != CFG_MAP)
        return NULL;
    long i = cfg_map_index(map, key);
    return i < 0 ? NULL : map->items[i];
}

int cfg_node_is_null(const cfg_node *node)
{
    if (!node || node->kind != CFG_SCALAR || node->quoted)
        return 0;
    const char *t = node->text;
    return t[0] == '\0' || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 ||
           strcmp(t, "Null") == 0 || strcmp(t, "NULL") == 0;
}

/* ---- messages --------------------------------------------------------------------------- */

ss_status cfg_vpos_error(ss_err *err, const char *file, int line, int col, const char *path,
                         const char *fmt, va_list ap)
{
    char msg[sizeof err->msg];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (path && path[0])
        return ss_err_set(err, SS_ERR_CONFIG, "%s:%d:%d: field '%s': %s", file, line, col, path,
                          msg);
    return ss_err_set(err, SS_ERR_CONFIG, "%s:%d:%d: %s", file, line, col, msg);
}

ss_status cfg_pos_error(ss_err *err, const char *file, int line, int col, const char *path,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cfg_vpos_error(err, file, line, col, path, fmt, ap);
    va_end(ap);
    return SS_ERR_CONFIG;
}

ss_status cfg_error(ss_err *err, const cfg_node *at, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cfg_vpos_error(err, at->file, at->line, at->col, path, fmt, ap);
    va_end(ap);
    return SS_ERR_CONFIG;
}

void cfg_err_append(ss_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    size_t used = strlen(err->msg);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + used, sizeof err->msg - used, fmt, ap);
    va_end(ap);
}

void cfg_join_path(char *out, size_t n, const char *path, const char *field)
{
    snprintf(out, n, "%s%s%s", path && path[0] ? path : "", path && path[0] ? "." : "", field);
}

ss_status cfg_nomem(ss_err *err)
{
    return ss_err_set(err, SS_ERR_NOMEM, "out of memory while reading a config");
}

/* ---- describing values ------------------------------------------------------------------ */

static const char *skip_digits(const char *s)
{
    while (*s >= '0' && *s <= '9')
        s++;
    return s;
}

cfg_num_class cfg_classify_number(const char *s)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    const char *int_end = skip_digits(p);
    int have_int = int_end > p, have_frac = 0;
    p = int_end;
    if (*p == '.') {
        const char *f = skip_digits(p + 1);
        have_frac = f > p + 1;
        p = f;
        if (!have_int && !have_frac)
            return CFG_NUM_NONE;
    } else if (!have_int) {
        return CFG_NUM_NONE;
    }
    int real = *int_end == '.';
    if (*p == 'e' || *p == 'E') {
        const char *e = p + 1;
        if (*e == '+' || *e == '-')
            e++;
        const char *ee = skip_digits(e);
        if (ee == e)
            return CFG_NUM_NONE;
        p = ee;
        real = 1;
    }
    if (*p)
        return CFG_NUM_NONE;
    return real ? CFG_NUM_REAL : CFG_NUM_INT;
}

int cfg_is_bool_word(const char *s)
{
    static const char *const words[] = {"true", "True", "TRUE", "false", "False", "FALSE"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(s, words[i]) == 0)
            return 1;
    return 0;
}

void cfg_describe(const cfg_node *n, char *buf, size_t len)
{
    if (n->kind == CFG_MAP) {
        snprintf(buf, len, "a mapping");
        return;
    }
    if (n->kind == CFG_SEQ) {
        snprintf(buf, len, "a list of %zu item%s", n->n, n->n == 1 ? "" : "s");
        return;
    }
    if (cfg_node_is_null(n)) {
        snprintf(buf, len, "nothing");
        return;
    }
    /* a quoted scalar is a string whatever it spells */
    cfg_num_class num = n->quoted ? CFG_NUM_NONE : cfg_classify_number(n->text);
    if (num == CFG_NUM_INT)
        snprintf(buf, len, "the integer %.40s", n->text);
    else if (num == CFG_NUM_REAL)
        snprintf(buf, len, "the number %.40s", n->text);
    else if (!n->quoted && cfg_is_bool_word(n->text))
        snprintf(buf, len, "the boolean %s", n->text);
    else
        snprintf(buf, len, "a string \"%.40s%s\"", n->text, strlen(n->text) > 40 ? "..." : "");
}
