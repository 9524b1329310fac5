/* This file implements the YAML reader of the config tree (cfg_impl.h: cfg_parse_yaml): it
 * turns libyaml's event stream for one document into cfg_node mappings, lists and scalars
 * that keep the file, line and column where each value and each key was written.
 *
 * Invariants: a mapping never holds a duplicate key (the second is an error naming the
 * first); every key is a scalar; nesting stops at MAX_DEPTH levels; a file holds at most one
 * document; tags (other than !!str, which makes a string), aliases and NUL characters are
 * rejected rather than half-supported; every node is allocated in the document's arena, and
 * the temporary child arrays used while reading a collection are freed on every path.
 */
#include "cfg_impl.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

enum { MAX_DEPTH = 64 /* YAML nesting depth */ };

typedef struct {
    cfg_doc *doc;
    yaml_parser_t *parser;
    const char *file; /* arena copy */
    const char *text; /* the file's bytes, for positions of reader errors */
    ss_err *err;
} parse_state;

static cfg_node *new_node(parse_state *ps, cfg_node_kind kind, yaml_mark_t mark)
{
    cfg_node *n = cfg_arena_alloc(ps->doc, sizeof *n);
    if (n) {
        n->kind = kind;
        n->file = ps->file;
        n->line = (int)mark.line + 1;
        n->col = (int)mark.column + 1;
    }
    return n;
}

/* An error about the file (no field) at libyaml position mark. */
static ss_status mark_error(parse_state *ps, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ss_status mark_error(parse_state *ps, yaml_mark_t mark, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cfg_vpos_error(ps->err, ps->file, (int)mark.line + 1, (int)mark.column + 1, NULL, fmt, ap);
    va_end(ap);
    return SS_ERR_CONFIG;
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
        return cfg_nomem(ps->err);
    if (p->error == YAML_READER_ERROR) {
        int line, col;
        offset_position(ps->text, p->problem_offset, &line, &col);
        return cfg_pos_error(ps->err, ps->file, line, col, NULL,
                             "cannot read the YAML text: %s",
                             p->problem ? p->problem : "unknown problem");
    }
    ss_status st = mark_error(ps, p->problem_mark, "YAML syntax error: %s",
                              p->problem ? p->problem : "unknown problem");
    if (p->context)
        cfg_err_append(ps->err, " (%s at line %d, column %d)", p->context,
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
    if (cfg_node_reserve(doc, node, k->n) != 0)
        return -1;
    memcpy(node->items, k->items, k->n * sizeof *node->items);
    if (node->kind != CFG_MAP)
        return 0;
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
        return mark_error(ps, ev->start_mark,
                          "YAML tags (%s) are not supported; write the plain value", tag);
    cfg_node *n = new_node(ps, CFG_SCALAR, ev->start_mark);
    if (!n)
        return cfg_nomem(ps->err);
    n->text = cfg_arena_strndup(ps->doc, (const char *)ev->data.scalar.value,
                                ev->data.scalar.length);
    if (!n->text)
        return cfg_nomem(ps->err);
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
                st = mark_error(ps, ev.start_mark, "a mapping key must be a plain name");
                yaml_event_delete(&ev);
                break;
            }
            key = cfg_arena_strndup(ps->doc, (const char *)ev.data.scalar.value,
                                    ev.data.scalar.length);
            kl = (int)ev.start_mark.line + 1;
            kc = (int)ev.start_mark.column + 1;
            yaml_event_delete(&ev);
            if (!key) {
                st = cfg_nomem(ps->err);
                break;
            }
            for (size_t i = 0; i < k.n; i++) {
                if (strcmp(k.keys[i], key) == 0) {
                    st = cfg_pos_error(ps->err, ps->file, kl, kc, key,
                                       "duplicate key (first given at line %d, column %d)",
                                       k.kl[i], k.kc[i]);
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
            st = cfg_nomem(ps->err);
            break;
        }
    }
    if (st == SS_OK && kids_finish(ps->doc, &k, node) != 0)
        st = cfg_nomem(ps->err);
    kids_free(&k);
    return st;
}

/* Builds the node that starts with event ev (which the caller deletes). */
static ss_status parse_node(parse_state *ps, yaml_event_t *ev, int depth, cfg_node **out)
{
    if (depth > MAX_DEPTH)
        return mark_error(ps, ev->start_mark, "nesting deeper than %d levels", MAX_DEPTH);
    switch (ev->type) {
    case YAML_SCALAR_EVENT: return parse_scalar(ps, ev, out);
    case YAML_ALIAS_EVENT:
        return mark_error(ps, ev->start_mark,
                          "YAML aliases (*%s) are not supported; use include: to share settings",
                          (const char *)ev->data.alias.anchor);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        const char *tag = (const char *)(is_map ? ev->data.mapping_start.tag
                                                : ev->data.sequence_start.tag);
        if (tag)
            return mark_error(ps, ev->start_mark, "YAML tags (%s) are not supported", tag);
        cfg_node *n = new_node(ps, is_map ? CFG_MAP : CFG_SEQ, ev->start_mark);
        if (!n)
            return cfg_nomem(ps->err);
        ss_status st = parse_children(ps, n, is_map ? YAML_MAPPING_END_EVENT
                                                    : YAML_SEQUENCE_END_EVENT, depth);
        if (st == SS_OK)
            *out = n;
        return st;
    }
    default:
        return mark_error(ps, ev->start_mark, "unexpected YAML event %d", (int)ev->type);
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
        st = mark_error(ps, ev.start_mark,
                        "a config file holds one YAML document; this is a second one");
    yaml_event_delete(&ev);
    return st;
}

ss_status cfg_parse_yaml(cfg_doc *doc, const char *file, const char *text, size_t len,
                         cfg_node **root, ss_err *err)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return cfg_nomem(err);
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

