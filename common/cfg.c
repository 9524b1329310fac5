/* This file implements cfg.h: reading YAML with libyaml's event API into a tree of nodes that
 * keep their file, line and column; resolving `include:` by deep-merging mappings; and the
 * schema-driven decoder that turns a mapping into a C struct, applying documented defaults,
 * checking types and ranges and naming FILE:LINE:COL and the field path in every error.
 *
 * Invariants: every node, key and string of a document lives in the document's arena and is
 * freed with it; a tree handed to a decoder has no `include` keys and no duplicate keys; key i
 * of a mapping was written in items[i]->file; decoding either fills the whole struct or
 * returns an error (never a partly-defaulted required field). Type rules: a quoted scalar is a
 * string; booleans are true/false only; integers have no fraction or exponent; null or empty
 * values are "missing a value".
 */
#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

enum {
    MAX_DEPTH = 64,          /* YAML nesting depth */
    MAX_INCLUDES = 32,       /* include chain length */
    MAX_FILE_BYTES = 16 << 20,
    PATH_LEN = 256           /* field paths in messages */
};

/* ---- arena ------------------------------------------------------------------------------ */

typedef struct block block;
struct block {
    block *next;
    size_t used, cap;
    max_align_t data[];
};

struct cfg_doc {
    block *arena;
    cfg_node *root;
};

static void *arena_alloc(cfg_doc *doc, size_t size)
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

static char *arena_strndup(cfg_doc *doc, const char *s, size_t n)
{
    char *p = arena_alloc(doc, n + 1);
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

/* ---- node helpers and messages ---------------------------------------------------------- */

const cfg_node *cfg_map_get(const cfg_node *map, const char *key)
{
    if (!map || map->kind != CFG_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i], key) == 0)
            return map->items[i];
    return NULL;
}

static long map_index(const cfg_node *map, const char *key)
{
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i], key) == 0)
            return (long)i;
    return -1;
}

int cfg_node_is_null(const cfg_node *node)
{
    if (!node || node->kind != CFG_SCALAR || node->quoted)
        return 0;
    const char *t = node->text;
    return t[0] == '\0' || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 ||
           strcmp(t, "Null") == 0 || strcmp(t, "NULL") == 0;
}

static ss_status vpos_error(ss_err *err, const char *file, int line, int col, const char *path,
                            const char *fmt, va_list ap)
{
    char msg[sizeof err->msg];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (path && path[0])
        return ss_err_set(err, SS_ERR_CONFIG, "%s:%d:%d: field '%s': %s", file, line, col, path,
                          msg);
    return ss_err_set(err, SS_ERR_CONFIG, "%s:%d:%d: %s", file, line, col, msg);
}

static ss_status pos_error(ss_err *err, const char *file, int line, int col, const char *path,
                           const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static ss_status pos_error(ss_err *err, const char *file, int line, int col, const char *path,
                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vpos_error(err, file, line, col, path, fmt, ap);
    va_end(ap);
    return SS_ERR_CONFIG;
}

ss_status cfg_error(ss_err *err, const cfg_node *at, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vpos_error(err, at->file, at->line, at->col, path, fmt, ap);
    va_end(ap);
    return SS_ERR_CONFIG;
}

/* An error at key i of map (positions of keys are kept apart from their values). */
static ss_status key_error(ss_err *err, const cfg_node *map, size_t i, const char *path,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static ss_status key_error(ss_err *err, const cfg_node *map, size_t i, const char *path,
                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vpos_error(err, map->items[i]->file, map->key_line[i], map->key_col[i], path, fmt, ap);
    va_end(ap);
    return SS_ERR_CONFIG;
}

/* Appends text to an existing message (keeps the code). */
static void err_append(ss_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err_append(ss_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    size_t used = strlen(err->msg);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + used, sizeof err->msg - used, fmt, ap);
    va_end(ap);
}

static void join_path(char *out, size_t n, const char *path, const char *field)
{
    snprintf(out, n, "%s%s%s", path && path[0] ? path : "", path && path[0] ? "." : "", field);
}

static ss_status nomem(ss_err *err)
{
    return ss_err_set(err, SS_ERR_NOMEM, "out of memory while reading a config");
}

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

/* ---- YAML events to nodes --------------------------------------------------------------- */

typedef struct {
    cfg_doc *doc;
    yaml_parser_t *parser;
    const char *file; /* arena copy */
    const char *text; /* the file's bytes, for positions of reader errors */
    ss_err *err;
} parse_state;

static cfg_node *new_node(parse_state *ps, cfg_node_kind kind, yaml_mark_t mark)
{
    cfg_node *n = arena_alloc(ps->doc, sizeof *n);
    if (n) {
        n->kind = kind;
        n->file = ps->file;
        n->line = (int)mark.line + 1;
        n->col = (int)mark.column + 1;
    }
    return n;
}

/* line and column (1-based) of byte offset off in text */
static void offset_position(const char *text, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static ss_status syntax_error(parse_state *ps)
{
    const yaml_parser_t *p = ps->parser;
    if (p->error == YAML_MEMORY_ERROR)
        return nomem(ps->err);
    if (p->error == YAML_READER_ERROR) {
        int line, col;
        offset_position(ps->text, p->problem_offset, &line, &col);
        return pos_error(ps->err, ps->file, line, col, NULL, "cannot read the YAML text: %s",
                         p->problem ? p->problem : "unknown problem");
    }
    ss_status st = pos_error(ps->err, ps->file, (int)p->problem_mark.line + 1,
                             (int)p->problem_mark.column + 1, NULL, "YAML syntax error: %s",
                             p->problem ? p->problem : "unknown problem");
    if (p->context)
        err_append(ps->err, " (%s at line %d, column %d)", p->context,
                   (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    return st;
}

static ss_status next_event(parse_state *ps, yaml_event_t *ev)
{
    if (!yaml_parser_parse(ps->parser, ev))
        return syntax_error(ps);
    return SS_OK;
}

/* Children of a mapping or sequence while it is being read. */
typedef struct {
    const char **keys;
    int *kl, *kc;
    cfg_node **items;
    size_t n, cap;
} kids;

static int kids_push(kids *k, const char *key, int kl, int kc, cfg_node *item)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 8;
        const char **keys = realloc(k->keys, cap * sizeof *keys);
        if (keys)
            k->keys = keys;
        int *l = realloc(k->kl, cap * sizeof *l);
        if (l)
            k->kl = l;
        int *c = realloc(k->kc, cap * sizeof *c);
        if (c)
            k->kc = c;
        cfg_node **items = realloc(k->items, cap * sizeof *items);
        if (items)
            k->items = items;
        if (!keys || !l || !c || !items)
            return -1;
        k->cap = cap;
    }
    k->keys[k->n] = key;
    k->kl[k->n] = kl;
    k->kc[k->n] = kc;
    k->items[k->n] = item;
    k->n++;
    return 0;
}

static void kids_free(kids *k)
{
    free(k->keys);
    free(k->kl);
    free(k->kc);
    free(k->items);
}

/* Moves the children into node (arena storage). */
static int kids_finish(cfg_doc *doc, kids *k, cfg_node *node)
{
    node->n = k->n;
    if (k->n == 0)
        return 0;
    node->items = arena_alloc(doc, k->n * sizeof *node->items);
    if (!node->items)
        return -1;
    memcpy(node->items, k->items, k->n * sizeof *node->items);
    if (node->kind != CFG_MAP)
        return 0;
    node->keys = arena_alloc(doc, k->n * sizeof *node->keys);
    node->key_line = arena_alloc(doc, k->n * sizeof *node->key_line);
    node->key_col = arena_alloc(doc, k->n * sizeof *node->key_col);
    if (!node->keys || !node->key_line || !node->key_col)
        return -1;
    memcpy(node->keys, k->keys, k->n * sizeof *node->keys);
    memcpy(node->key_line, k->kl, k->n * sizeof *node->key_line);
    memcpy(node->key_col, k->kc, k->n * sizeof *node->key_col);
    return 0;
}

static ss_status parse_node(parse_state *ps, yaml_event_t *ev, int depth, cfg_node **out);

static ss_status parse_scalar(parse_state *ps, const yaml_event_t *ev, cfg_node **out)
{
    const char *tag = (const char *)ev->data.scalar.tag;
    int quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    if (tag && strcmp(tag, "tag:yaml.org,2002:str") == 0)
        quoted = 1;
    else if (tag)
        return pos_error(ps->err, ps->file, (int)ev->start_mark.line + 1,
                         (int)ev->start_mark.column + 1, NULL,
                         "YAML tags (%s) are not supported; write the plain value", tag);
    cfg_node *n = new_node(ps, CFG_SCALAR, ev->start_mark);
    if (!n)
        return nomem(ps->err);
    n->text = arena_strndup(ps->doc, (const char *)ev->data.scalar.value,
                            ev->data.scalar.length);
    if (!n->text)
        return nomem(ps->err);
    if (strlen(n->text) != ev->data.scalar.length)
        return cfg_error(ps->err, n, NULL, "a value holds a NUL character");
    n->quoted = quoted;
    *out = n;
    return SS_OK;
}

/* Reads children until the closing event; maps read key/value pairs. */
static ss_status parse_children(parse_state *ps, cfg_node *node, yaml_event_type_t end,
                                int depth)
{
    kids k = {0};
    ss_status st = SS_OK;
    for (;;) {
        yaml_event_t ev;
        if ((st = next_event(ps, &ev)) != SS_OK)
            break;
        if (ev.type == end) {
            yaml_event_delete(&ev);
            break;
        }
        const char *key = NULL;
        int kl = 0, kc = 0;
        if (node->kind == CFG_MAP) {
            if (ev.type != YAML_SCALAR_EVENT) {
                st = pos_error(ps->err, ps->file, (int)ev.start_mark.line + 1,
                               (int)ev.start_mark.column + 1, NULL,
                               "a mapping key must be a plain name");
                yaml_event_delete(&ev);
                break;
            }
            key = arena_strndup(ps->doc, (const char *)ev.data.scalar.value,
                                ev.data.scalar.length);
            kl = (int)ev.start_mark.line + 1;
            kc = (int)ev.start_mark.column + 1;
            yaml_event_delete(&ev);
            if (!key) {
                st = nomem(ps->err);
                break;
            }
            for (size_t i = 0; i < k.n; i++) {
                if (strcmp(k.keys[i], key) == 0) {
                    st = pos_error(ps->err, ps->file, kl, kc, key,
                                   "duplicate key (first given at line %d, column %d)", k.kl[i],
                                   k.kc[i]);
                    break;
                }
            }
            if (st != SS_OK)
                break;
            if ((st = next_event(ps, &ev)) != SS_OK)
                break;
        }
        cfg_node *child = NULL;
        st = parse_node(ps, &ev, depth + 1, &child);
        yaml_event_delete(&ev);
        if (st != SS_OK)
            break;
        if (kids_push(&k, key, kl, kc, child) != 0) {
            st = nomem(ps->err);
            break;
        }
    }
    if (st == SS_OK && kids_finish(ps->doc, &k, node) != 0)
        st = nomem(ps->err);
    kids_free(&k);
    return st;
}

/* Builds the node that starts with event ev (which the caller deletes). */
static ss_status parse_node(parse_state *ps, yaml_event_t *ev, int depth, cfg_node **out)
{
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    if (depth > MAX_DEPTH)
        return pos_error(ps->err, ps->file, line, col, NULL, "nesting deeper than %d levels",
                         MAX_DEPTH);
    switch (ev->type) {
    case YAML_SCALAR_EVENT: return parse_scalar(ps, ev, out);
    case YAML_ALIAS_EVENT:
        return pos_error(ps->err, ps->file, line, col, NULL,
                         "YAML aliases (*%s) are not supported; use include: to share settings",
                         (const char *)ev->data.alias.anchor);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        const char *tag = (const char *)(is_map ? ev->data.mapping_start.tag
                                                : ev->data.sequence_start.tag);
        if (tag)
            return pos_error(ps->err, ps->file, line, col, NULL,
                             "YAML tags (%s) are not supported", tag);
        cfg_node *n = new_node(ps, is_map ? CFG_MAP : CFG_SEQ, ev->start_mark);
        if (!n)
            return nomem(ps->err);
        ss_status st = parse_children(ps, n, is_map ? YAML_MAPPING_END_EVENT
                                                    : YAML_SEQUENCE_END_EVENT, depth);
        if (st == SS_OK)
            *out = n;
        return st;
    }
    default:
        return pos_error(ps->err, ps->file, line, col, NULL, "unexpected YAML event %d",
                         (int)ev->type);
    }
}

/* Reads the document after its DOCUMENT-START event, then checks that the stream ends. */
static ss_status read_document(parse_state *ps, cfg_node **root)
{
    yaml_event_t ev;
    ss_status st = next_event(ps, &ev);
    if (st != SS_OK)
        return st;
    st = parse_node(ps, &ev, 0, root);
    yaml_event_delete(&ev);
    if (st != SS_OK || (st = next_event(ps, &ev)) != SS_OK) /* DOCUMENT-END */
        return st;
    yaml_event_delete(&ev);
    if ((st = next_event(ps, &ev)) != SS_OK)
        return st;
    if (ev.type != YAML_STREAM_END_EVENT)
        st = pos_error(ps->err, ps->file, (int)ev.start_mark.line + 1,
                       (int)ev.start_mark.column + 1, NULL,
                       "a config file holds one YAML document; this is a second one");
    yaml_event_delete(&ev);
    return st;
}

/* Parses one YAML document from text; *root is NULL for an empty stream. */
static ss_status parse_text(cfg_doc *doc, const char *file, const char *text, size_t len,
                            cfg_node **root, ss_err *err)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return nomem(err);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    parse_state ps = {doc, &parser, file, text, err};
    yaml_event_t ev;
    *root = NULL;
    ss_status st = next_event(&ps, &ev); /* STREAM-START */
    if (st == SS_OK) {
        yaml_event_delete(&ev);
        st = next_event(&ps, &ev); /* DOCUMENT-START, or STREAM-END when there is none */
    }
    if (st == SS_OK) {
        int has_doc = ev.type == YAML_DOCUMENT_START_EVENT;
        yaml_event_delete(&ev);
        if (has_doc)
            st = read_document(&ps, root);
    }
    yaml_parser_delete(&parser);
    return st;
}

/* ---- describing values ------------------------------------------------------------------ */

typedef enum { NUM_NONE, NUM_INT, NUM_REAL } num_class;

static const char *skip_digits(const char *s)
{
    while (*s >= '0' && *s <= '9')
        s++;
    return s;
}

/* Integer: [+-]digits. Real: [+-](digits[.digits] | .digits)[e[+-]digits]. */
static num_class classify_number(const char *s)
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
            return NUM_NONE;
    } else if (!have_int) {
        return NUM_NONE;
    }
    int real = *int_end == '.';
    if (*p == 'e' || *p == 'E') {
        const char *e = p + 1;
        if (*e == '+' || *e == '-')
            e++;
        const char *ee = skip_digits(e);
        if (ee == e)
            return NUM_NONE;
        p = ee;
        real = 1;
    }
    if (*p)
        return NUM_NONE;
    return real ? NUM_REAL : NUM_INT;
}

static int is_bool_word(const char *s)
{
    static const char *const words[] = {"true", "True", "TRUE", "false", "False", "FALSE"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(s, words[i]) == 0)
            return 1;
    return 0;
}

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

/* What a node is, for "got ..." in messages. */
static void describe(const cfg_node *n, char *buf, size_t len)
{
    if (n->kind == CFG_MAP) {
        snprintf(buf, len, "a mapping");
    } else if (n->kind == CFG_SEQ) {
        snprintf(buf, len, "a list of %zu item%s", n->n, n->n == 1 ? "" : "s");
    } else if (cfg_node_is_null(n)) {
        snprintf(buf, len, "nothing");
    } else if (n->quoted) {
        snprintf(buf, len, "a string \"%.40s%s\"", n->text, strlen(n->text) > 40 ? "..." : "");
    } else if (classify_number(n->text) == NUM_INT) {
        snprintf(buf, len, "the integer %.40s", n->text);
    } else if (classify_number(n->text) == NUM_REAL) {
        snprintf(buf, len, "the number %.40s", n->text);
    } else if (is_bool_word(n->text)) {
        snprintf(buf, len, "the boolean %s", n->text);
    } else {
        snprintf(buf, len, "a string \"%.40s%s\"", n->text, strlen(n->text) > 40 ? "..." : "");
    }
}

/* A kind value for messages: 'chip', or what the node is when it is not a name. */
static void describe_kind(const cfg_node *k, char *buf, size_t len)
{
    if (k->kind == CFG_SCALAR && !cfg_node_is_null(k))
        snprintf(buf, len, "'%.60s'", k->text);
    else
        describe(k, buf, len);
}

/* ---- include resolution ----------------------------------------------------------------- */

typedef struct {
    dev_t dev;
    ino_t ino;
    const char *path;
} open_file;

typedef struct {
    cfg_doc *doc;
    open_file stack[MAX_INCLUDES];
    int depth;
    ss_err *err;
} loader;

static ss_status resolve(loader *ld, cfg_node *node, const char *path, cfg_node **out);

/* path relative to the directory of file (unless absolute); malloc'd */
static char *relative_to(const char *file, const char *path)
{
    const char *slash = strrchr(file, '/');
    size_t dir = path[0] == '/' || !slash ? 0 : (size_t)(slash - file) + 1;
    size_t len = strlen(path);
    char *p = malloc(dir + len + 1);
    if (p) {
        memcpy(p, file, dir);
        memcpy(p + dir, path, len + 1);
    }
    return p;
}

/* "cannot read" naming the include or reference that asked for path (from, at field
 * from_path), or just the path for a file named on the command line. */
static ss_status io_error(const char *path, int errnum, const cfg_node *from,
                          const char *from_path, ss_err *err)
{
    if (from)
        return cfg_error(err, from, from_path, "cannot read '%s' (resolved as '%s'): %s",
                         from->text, path, strerror(errnum));
    return ss_err_set(err, SS_ERR_IO, "cannot read '%s': %s", path, strerror(errnum));
}

/* Reads all of f into a malloc'd, NUL-terminated buffer; returns an errno value or 0. */
static int slurp(FILE *f, char **text, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            return ENOMEM;
        n += fread(buf + n, 1, cap - n - 1, f);
        if (ferror(f) || n >= MAX_FILE_BYTES) {
            free(buf);
            return ferror(f) ? EIO : EFBIG;
        }
        if (n < cap - 1)
            break;
        char *bigger = realloc(buf, 2 * cap);
        if (!bigger)
            free(buf);
        buf = bigger;
        cap *= 2;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

static ss_status read_file(const char *path, char **text, size_t *len, const cfg_node *from,
                           const char *from_path, ss_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return io_error(path, errno, from, from_path, err);
    int e = slurp(f, text, len);
    fclose(f);
    if (e == ENOMEM)
        return nomem(err);
    return e ? io_error(path, e, from, from_path, err) : SS_OK;
}

/* The first problem with the document's root, which must be a non-empty mapping. */
static ss_status check_root(const cfg_node *root, const char *file, ss_err *err)
{
    if (!root || cfg_node_is_null(root))
        return pos_error(err, file, root ? root->line : 1, root ? root->col : 1, NULL,
                         "the file is empty; a config is a mapping that starts with "
                         "'kind: <chip|pod|model|run>'");
    if (root->kind != CFG_MAP) {
        char got[96];
        describe(root, got, sizeof got);
        return cfg_error(err, root, NULL,
                         "expected a mapping (key: value lines) at the top of the file, got %s",
                         got);
    }
    return SS_OK;
}

static ss_status parse_and_resolve(loader *ld, const char *file, const char *text, size_t len,
                                   cfg_node **root)
{
    ss_status st = parse_text(ld->doc, file, text, len, root, ld->err);
    if (st == SS_OK)
        st = check_root(*root, file, ld->err);
    if (st == SS_OK)
        st = resolve(ld, *root, "", root);
    return st;
}

/* Loads path (an include named by node `from` at field from_path, or the top-level file when
 * from is NULL) into *root, detecting include cycles. */
static ss_status load_file(loader *ld, const char *path, const cfg_node *from,
                           const char *from_path, cfg_node **root)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return io_error(path, errno, from, from_path, ld->err);
    if (!S_ISREG(sb.st_mode))
        return io_error(path, S_ISDIR(sb.st_mode) ? EISDIR : EINVAL, from, from_path, ld->err);
    for (int i = 0; i < ld->depth; i++) {
        if (ld->stack[i].dev == sb.st_dev && ld->stack[i].ino == sb.st_ino) {
            char chain[512] = "";
            for (int j = i; j < ld->depth; j++) {
                size_t used = strlen(chain);
                snprintf(chain + used, sizeof chain - used, "%s -> ", ld->stack[j].path);
            }
            return cfg_error(ld->err, from, from_path, "include cycle: %s%s", chain, path);
        }
    }
    if (ld->depth == MAX_INCLUDES)
        return cfg_error(ld->err, from, from_path, "includes nested deeper than %d files",
                         MAX_INCLUDES);
    const char *file = arena_strndup(ld->doc, path, strlen(path));
    if (!file)
        return nomem(ld->err);
    char *text = NULL;
    size_t len = 0;
    ss_status st = read_file(path, &text, &len, from, from_path, ld->err);
    if (st != SS_OK)
        return st;
    ld->stack[ld->depth++] = (open_file){sb.st_dev, sb.st_ino, file};
    st = parse_and_resolve(ld, file, text, len, root);
    ld->depth--;
    if (st != SS_OK && from)
        err_append(ld->err, " (in '%s', named at %s:%d:%d)", from->text, from->file,
                   from->line, from->col);
    free(text);
    return st;
}

static const char *kind_of(const cfg_node *map)
{
    const cfg_node *k = cfg_map_get(map, "kind");
    return k && k->kind == CFG_SCALAR && !cfg_node_is_null(k) ? k->text : NULL;
}

/* base with over's keys laid on top: nested mappings merge, anything else replaces. The
 * result takes over's position; keys keep the position of the file they came from. */
static cfg_node *merge(cfg_doc *doc, const cfg_node *base, const cfg_node *over)
{
    cfg_node *m = arena_alloc(doc, sizeof *m);
    size_t cap = base->n + over->n;
    if (!m)
        return NULL;
    *m = *over;
    m->n = 0;
    if (cap == 0)
        return m;
    m->keys = arena_alloc(doc, cap * sizeof *m->keys);
    m->key_line = arena_alloc(doc, cap * sizeof *m->key_line);
    m->key_col = arena_alloc(doc, cap * sizeof *m->key_col);
    m->items = arena_alloc(doc, cap * sizeof *m->items);
    if (!m->keys || !m->key_line || !m->key_col || !m->items)
        return NULL;
    for (size_t pass = 0; pass < 2; pass++) {
        const cfg_node *src = pass == 0 ? base : over;
        for (size_t i = 0; i < src->n; i++) {
            long j = map_index(pass == 0 ? over : base, src->keys[i]);
            if (pass == 1 && j >= 0)
                continue; /* already placed in pass 0 */
            const cfg_node *from = src; /* whose key position is used */
            size_t fi = i;
            cfg_node *item = src->items[i];
            if (pass == 0 && j >= 0) {
                from = over;
                fi = (size_t)j;
                item = over->items[j];
                if (src->items[i]->kind == CFG_MAP && item->kind == CFG_MAP)
                    item = merge(doc, src->items[i], item);
                if (!item)
                    return NULL;
            }
            m->keys[m->n] = from->keys[fi];
            m->key_line[m->n] = from->key_line[fi];
            m->key_col[m->n] = from->key_col[fi];
            m->items[m->n] = item;
            m->n++;
        }
    }
    return m;
}

/* map without key i (a shallow copy) */
static cfg_node *without_key(cfg_doc *doc, const cfg_node *map, size_t skip)
{
    cfg_node *m = arena_alloc(doc, sizeof *m);
    if (!m)
        return NULL;
    *m = *map;
    m->n = 0;
    m->keys = arena_alloc(doc, (map->n + 1) * sizeof *m->keys);
    m->key_line = arena_alloc(doc, (map->n + 1) * sizeof *m->key_line);
    m->key_col = arena_alloc(doc, (map->n + 1) * sizeof *m->key_col);
    m->items = arena_alloc(doc, (map->n + 1) * sizeof *m->items);
    if (!m->keys || !m->key_line || !m->key_col || !m->items)
        return NULL;
    for (size_t i = 0; i < map->n; i++) {
        if (i == skip)
            continue;
        m->keys[m->n] = map->keys[i];
        m->key_line[m->n] = map->key_line[i];
        m->key_col[m->n] = map->key_col[i];
        m->items[m->n] = map->items[i];
        m->n++;
    }
    return m;
}

/* Loads one included file named by scalar node pn and merges it onto *base. own_kind is the
 * kind the including mapping declares (or NULL). */
static ss_status include_one(loader *ld, const cfg_node *pn, const char *inc_path,
                             const char *own_kind, cfg_node **base)
{
    char got[96];
    if (pn->kind != CFG_SCALAR || cfg_node_is_null(pn)) {
        describe(pn, got, sizeof got);
        return cfg_error(ld->err, pn, inc_path,
                         "expected a file path (or a list of paths), got %s", got);
    }
    char *path = relative_to(pn->file, pn->text);
    if (!path)
        return nomem(ld->err);
    cfg_node *inc = NULL;
    ss_status st = load_file(ld, path, pn, inc_path, &inc);
    free(path);
    if (st != SS_OK)
        return st;
    const char *inc_kind = kind_of(inc);
    const char *want = own_kind ? own_kind : (*base ? kind_of(*base) : NULL);
    if (inc_kind && want && strcmp(inc_kind, want) != 0)
        return cfg_error(ld->err, pn, inc_path,
                         "'%s' is a %s config, but the mapping that includes it is a %s", pn->text,
                         inc_kind, want);
    *base = *base ? merge(ld->doc, *base, inc) : inc;
    return *base ? SS_OK : nomem(ld->err);
}

/* Applies the include: key i of map, giving the merged mapping. */
static ss_status apply_include(loader *ld, cfg_node *map, size_t i, const char *path,
                               cfg_node **out)
{
    char inc_path[PATH_LEN];
    join_path(inc_path, sizeof inc_path, path, "include");
    const cfg_node *inc = map->items[i];
    const char *own_kind = kind_of(map);
    cfg_node *base = NULL;
    ss_status st = SS_OK;
    if (inc->kind == CFG_SEQ) {
        if (inc->n == 0)
            return cfg_error(ld->err, inc, inc_path, "an empty list includes nothing");
        for (size_t j = 0; j < inc->n && st == SS_OK; j++)
            st = include_one(ld, inc->items[j], inc_path, own_kind, &base);
    } else {
        st = include_one(ld, inc, inc_path, own_kind, &base);
    }
    if (st != SS_OK)
        return st;
    cfg_node *own = without_key(ld->doc, map, i);
    *out = own ? merge(ld->doc, base, own) : NULL;
    return *out ? SS_OK : nomem(ld->err);
}

/* Resolves includes in node and everything below it; *out is the resolved node. */
static ss_status resolve(loader *ld, cfg_node *node, const char *path, cfg_node **out)
{
    *out = node;
    if (node->kind == CFG_SCALAR)
        return SS_OK;
    for (size_t i = 0; i < node->n; i++) {
        char sub[PATH_LEN];
        if (node->kind == CFG_MAP)
            join_path(sub, sizeof sub, path, node->keys[i]);
        else
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        ss_status st = resolve(ld, node->items[i], sub, &node->items[i]);
        if (st != SS_OK)
            return st;
    }
    long inc = node->kind == CFG_MAP ? map_index(node, "include") : -1;
    return inc < 0 ? SS_OK : apply_include(ld, node, (size_t)inc, path, out);
}

static ss_status load_doc(cfg_doc **out, const char *path, const char *text, size_t len,
                          const cfg_node *from, const char *from_path, ss_err *err)
{
    *out = NULL;
    cfg_doc *doc = calloc(1, sizeof *doc);
    if (!doc)
        return nomem(err);
    loader ld = {.doc = doc, .err = err};
    ss_status st;
    if (text) {
        const char *file = arena_strndup(doc, path, strlen(path));
        st = file ? parse_and_resolve(&ld, file, text, len, &doc->root) : nomem(err);
    } else {
        st = load_file(&ld, path, from, from_path, &doc->root);
    }
    if (st != SS_OK) {
        cfg_doc_free(doc);
        return st;
    }
    *out = doc;
    return SS_OK;
}

ss_status cfg_doc_load(cfg_doc **out, const char *path, ss_err *err)
{
    return load_doc(out, path, NULL, 0, NULL, NULL, err);
}

ss_status cfg_doc_parse(cfg_doc **out, const char *name, const char *text, size_t len,
                        ss_err *err)
{
    return load_doc(out, name, text, len, NULL, NULL, err);
}

/* ---- byte counts ------------------------------------------------------------------------ */

typedef struct {
    const char *name;
    uint64_t factor;
} byte_unit;

#define KI_ ((uint64_t)1024)
#define K_ ((uint64_t)1000)
static const byte_unit byte_units[] = {
    {"EiB", KI_ * KI_ * KI_ * KI_ * KI_ * KI_}, {"PiB", KI_ * KI_ * KI_ * KI_ * KI_},
    {"TiB", KI_ * KI_ * KI_ * KI_}, {"GiB", KI_ * KI_ * KI_}, {"MiB", KI_ * KI_},
    {"KiB", KI_}, {"EB", K_ * K_ * K_ * K_ * K_ * K_}, {"PB", K_ * K_ * K_ * K_ * K_},
    {"TB", K_ * K_ * K_ * K_}, {"GB", K_ * K_ * K_}, {"MB", K_ * K_}, {"kB", K_}, {"KB", K_},
    {"B", 1},
};
static const size_t nbyte_units = sizeof byte_units / sizeof byte_units[0];

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

int cfg_bytes_parse(const char *text, uint64_t *out, const char **why)
{
    const char *p = text;
    while (*p == ' ')
        p++;
    if (*p == '-') {
        *why = "a byte count cannot be negative";
        return -1;
    }
    if (*p == '+')
        p++;
    /* mantissa as an integer with `frac` decimal digits after the point */
    uint64_t mant = 0, div = 1;
    int digits = 0, frac = 0, overflow = 0;
    for (; (*p >= '0' && *p <= '9') || (*p == '.' && !frac); p++) {
        if (*p == '.') {
            frac = 1;
            continue;
        }
        uint64_t digit = (uint64_t)(*p - '0');
        if (mant > (UINT64_MAX - digit) / 10 || (frac && div > UINT64_MAX / 10)) {
            overflow = 1;
        } else {
            mant = mant * 10 + digit;
            if (frac)
                div *= 10;
        }
        digits++;
    }
    if (digits == 0) {
        *why = "expected a number of bytes, optionally with a unit (\"32 GiB\", \"900 MB\")";
        return -1;
    }
    while (*p == ' ')
        p++;
    uint64_t factor = 1;
    if (*p) {
        size_t u = 0;
        while (u < nbyte_units && strcmp(p, byte_units[u].name) != 0)
            u++;
        if (u == nbyte_units) {
            *why = "unknown unit; use B, kB, MB, GB, TB, PB, EB (powers of 1000) or KiB, MiB, "
                   "GiB, TiB, PiB, EiB (powers of 1024)";
            return -1;
        }
        factor = byte_units[u].factor;
    }
    if (overflow) {
        *why = "the byte count does not fit in 64 bits";
        return -1;
    }
    /* value = mant * factor / div, exactly */
    uint64_t g = gcd_u64(mant, div);
    if (g > 1) {
        mant /= g;
        div /= g;
    }
    g = gcd_u64(factor, div);
    factor /= g;
    div /= g;
    if (div != 1) {
        *why = "a byte count must be a whole number of bytes";
        return -1;
    }
    if (mant != 0 && factor > UINT64_MAX / mant) {
        *why = "the byte count does not fit in 64 bits (at most 16 EiB - 1)";
        return -1;
    }
    *out = mant * factor;
    return 0;
}

void cfg_bytes_format(char *buf, size_t n, uint64_t bytes)
{
    for (size_t u = 0; u + 1 < nbyte_units; u++) {
        if (bytes != 0 && bytes % byte_units[u].factor == 0) {
            snprintf(buf, n, "%llu %s", (unsigned long long)(bytes / byte_units[u].factor),
                     byte_units[u].name);
            return;
        }
    }
    snprintf(buf, n, "%llu B", (unsigned long long)bytes);
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
    describe(node, got, sizeof got);
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

static ss_status check_range(const cfg_field *f, double v, const cfg_node *node,
                             const char *path, ss_err *err)
{
    int low = (f->flags & CFG_MIN_OPEN) ? !(v > f->min) : v < f->min;
    if (!low && !(v > f->max))
        return SS_OK;
    char range[96];
    range_text(f, range, sizeof range);
    return cfg_error(err, node, path, "%s is out of range: allowed %s", node->text, range);
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
    num_class c = classify_number(node->text);
    if (c == NUM_REAL)
        return type_error(f, node, path,
                          strpbrk(node->text, "eE")
                              ? " (exponent notation is only for real numbers)"
                              : " (an integer has no fraction)",
                          err);
    return c == NUM_INT ? SS_OK : type_error(f, node, path, NULL, err);
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
    if ((st = check_range(f, dv, node, path, err)) == SS_OK)
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
    if ((st = check_range(f, (double)v, node, path, err)) == SS_OK)
        *dst = v;
    return st;
}

static ss_status decode_bool(const cfg_field *f, int *dst, const cfg_node *node,
                             const char *path, ss_err *err)
{
    if (!node->quoted && is_bool_word(node->text)) {
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
    if (classify_number(node->text) == NUM_NONE)
        return type_error(f, node, path, NULL, err);
    double v = strtod(node->text, NULL);
    if (!isfinite(v))
        return cfg_error(err, node, path, "%s is too large for a number", node->text);
    *dst = v;
    return check_range(f, v, node, path, err);
}

static ss_status decode_bytes(const cfg_field *f, uint64_t *dst, const cfg_node *node,
                              const char *path, ss_err *err)
{
    const char *why = NULL;
    uint64_t v;
    if (cfg_bytes_parse(node->text, &v, &why) != 0)
        return cfg_error(err, node, path, "'%s': %s", node->text, why);
    if (!((f->flags & CFG_MIN_OPEN) ? (double)v > f->min : (double)v >= f->min) ||
        (double)v > f->max) {
        char range[96], got[32];
        range_text(f, range, sizeof range);
        cfg_bytes_format(got, sizeof got, v);
        return cfg_error(err, node, path, "%s is out of range: allowed %s", got, range);
    }
    *dst = v;
    return SS_OK;
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
        char sub[PATH_LEN];
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
    char *file = relative_to(node->file, node->text);
    if (!file)
        return nomem(err);
    ss_status st = load_doc(&doc, file, NULL, 0, node, path, err);
    free(file);
    if (st == SS_OK)
        st = check_ref_kind(f, cfg_doc_root(doc), node, path, err);
    if (st == SS_OK) {
        st = cfg_decode(f->sub, dst, cfg_doc_root(doc), "", err);
        if (st != SS_OK)
            err_append(err, " (in the %s '%s' referenced at %s:%d:%d)", f->sub->kind,
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
    if (near)
        return key_error(err, map, i, path, "unknown key; did you mean '%s'?", near);
    char list[768];
    join_names(list, sizeof list, names, n, ", ", ", ");
    return key_error(err, map, i, path, "unknown key; %s%s has: %s", s->kind ? "a " : "",
                     s->kind ? s->kind : "this mapping", list);
}

static ss_status check_kind_key(const cfg_schema *s, const cfg_node *node, const char *path,
                                ss_err *err)
{
    if (node->kind == CFG_SCALAR && !cfg_node_is_null(node) && strcmp(node->text, s->kind) == 0)
        return SS_OK;
    char got[96];
    describe(node, got, sizeof got);
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
    char sub[PATH_LEN];
    for (size_t i = 0; i < map->n; i++) {
        join_path(sub, sizeof sub, path, map->keys[i]);
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
            join_path(sub, sizeof sub, path, f->name);
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
    char buf[PATH_LEN];
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
    char full[PATH_LEN];
    join_path(full, sizeof full, path, field);
    const cfg_node *at = node_at(map, field);
    va_list ap;
    va_start(ap, fmt);
    vpos_error(err, at->file, at->line, at->col, full, fmt, ap);
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
        char name[PATH_LEN], type[320], def[128] = "", range[96] = "";
        join_path(name, sizeof name, prefix, f->name);
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
