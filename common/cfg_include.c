/* This file implements loading config documents (cfg.h: cfg_doc_load, cfg_doc_parse;
 * cfg_impl.h: cfg_doc_load_named): reading a file, parsing it (cfg_parse.c), checking that its
 * root is a mapping, and resolving every `include:` key by deep-merging the included
 * documents under the including mapping's own keys.
 *
 * Invariants: a tree handed out has no `include` keys; merging never changes its inputs (it
 * builds new mapping nodes in the arena), nested mappings merge key by key and anything else
 * is replaced by the overriding side; a merged key keeps the position of the file it came
 * from, so key i of a mapping was written in items[i]->file; an include chain that returns to
 * an open file is an error naming the cycle, and chains stop at MAX_INCLUDES files; an
 * included document may not declare a different `kind` than the mapping that includes it.
 */
#include "cfg_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
    MAX_INCLUDES = 32,        /* include chain length, files */
    MAX_FILE_BYTES = 16 << 20 /* a config file's size */
};

/* ---- reading files ---------------------------------------------------------------------- */

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
        return cfg_nomem(err);
    return e ? io_error(path, e, from, from_path, err) : SS_OK;
}

/* The first problem with the document's root, which must be a non-empty mapping. */
static ss_status check_root(const cfg_node *root, const char *file, ss_err *err)
{
    if (!root || cfg_node_is_null(root))
        return cfg_pos_error(err, file, root ? root->line : 1, root ? root->col : 1, NULL,
                             "the file is empty; a config is a mapping that starts with "
                             "'kind: <chip|pod|model|run>'");
    if (root->kind != CFG_MAP) {
        char got[96];
        cfg_describe(root, got, sizeof got);
        return cfg_error(err, root, NULL,
                         "expected a mapping (key: value lines) at the top of the file, got %s",
                         got);
    }
    return SS_OK;
}

static ss_status parse_and_resolve(loader *ld, const char *file, const char *text, size_t len,
                                   cfg_node **root)
{
    ss_status st = cfg_parse_yaml(ld->doc, file, text, len, root, ld->err);
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
    const char *file = cfg_arena_strndup(ld->doc, path, strlen(path));
    if (!file)
        return cfg_nomem(ld->err);
    char *text = NULL;
    size_t len = 0;
    ss_status st = read_file(path, &text, &len, from, from_path, ld->err);
    if (st != SS_OK)
        return st;
    ld->stack[ld->depth++] = (open_file){sb.st_dev, sb.st_ino, file};
    st = parse_and_resolve(ld, file, text, len, root);
    ld->depth--;
    if (st != SS_OK && from)
        cfg_err_append(ld->err, " (in '%s', named at %s:%d:%d)", from->text, from->file,
                       from->line, from->col);
    free(text);
    return st;
}

/* ---- include: and merging --------------------------------------------------------------- */

static const char *kind_of(const cfg_node *map)
{
    const cfg_node *k = cfg_map_get(map, "kind");
    return k && k->kind == CFG_SCALAR && !cfg_node_is_null(k) ? k->text : NULL;
}

/* A new mapping with no keys yet, at proto's position, with room for cap keys. */
static cfg_node *empty_like(cfg_doc *doc, const cfg_node *proto, size_t cap)
{
    cfg_node *m = cfg_arena_alloc(doc, sizeof *m);
    if (!m)
        return NULL;
    *m = *proto;
    m->n = 0;
    return cap == 0 || cfg_node_reserve(doc, m, cap) == 0 ? m : NULL;
}

/* Appends key i of src (its name and position) to m, with value item. */
static void append_key(cfg_node *m, const cfg_node *src, size_t i, cfg_node *item)
{
    m->keys[m->n] = src->keys[i];
    m->key_line[m->n] = src->key_line[i];
    m->key_col[m->n] = src->key_col[i];
    m->items[m->n] = item;
    m->n++;
}

/* base with over's keys laid on top: nested mappings merge, anything else replaces. The
 * result takes over's position; keys keep the position of the file they came from. */
static cfg_node *merge(cfg_doc *doc, const cfg_node *base, const cfg_node *over)
{
    cfg_node *m = empty_like(doc, over, base->n + over->n);
    if (!m)
        return NULL;
    for (size_t pass = 0; pass < 2; pass++) {
        const cfg_node *src = pass == 0 ? base : over;
        for (size_t i = 0; i < src->n; i++) {
            long j = cfg_map_index(pass == 0 ? over : base, src->keys[i]);
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
            append_key(m, from, fi, item);
        }
    }
    return m;
}

/* map without key i (a shallow copy) */
static cfg_node *without_key(cfg_doc *doc, const cfg_node *map, size_t skip)
{
    cfg_node *m = empty_like(doc, map, map->n);
    if (!m)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (i != skip)
            append_key(m, map, i, map->items[i]);
    return m;
}

/* Loads one included file named by scalar node pn and merges it onto *base. own_kind is the
 * kind the including mapping declares (or NULL). */
static ss_status include_one(loader *ld, const cfg_node *pn, const char *inc_path,
                             const char *own_kind, cfg_node **base)
{
    char got[96];
    if (pn->kind != CFG_SCALAR || cfg_node_is_null(pn)) {
        cfg_describe(pn, got, sizeof got);
        return cfg_error(ld->err, pn, inc_path,
                         "expected a file path (or a list of paths), got %s", got);
    }
    char *path = relative_to(pn->file, pn->text);
    if (!path)
        return cfg_nomem(ld->err);
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
    return *base ? SS_OK : cfg_nomem(ld->err);
}

/* Applies the include: key i of map, giving the merged mapping. */
static ss_status apply_include(loader *ld, cfg_node *map, size_t i, const char *path,
                               cfg_node **out)
{
    char inc_path[CFG_PATH_LEN];
    cfg_join_path(inc_path, sizeof inc_path, path, "include");
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
    return *out ? SS_OK : cfg_nomem(ld->err);
}

/* Resolves includes in node and everything below it; *out is the resolved node. */
static ss_status resolve(loader *ld, cfg_node *node, const char *path, cfg_node **out)
{
    *out = node;
    if (node->kind == CFG_SCALAR)
        return SS_OK;
    for (size_t i = 0; i < node->n; i++) {
        char sub[CFG_PATH_LEN];
        if (node->kind == CFG_MAP)
            cfg_join_path(sub, sizeof sub, path, node->keys[i]);
        else
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        ss_status st = resolve(ld, node->items[i], sub, &node->items[i]);
        if (st != SS_OK)
            return st;
    }
    long inc = node->kind == CFG_MAP ? cfg_map_index(node, "include") : -1;
    return inc < 0 ? SS_OK : apply_include(ld, node, (size_t)inc, path, out);
}

/* ---- documents -------------------------------------------------------------------------- */

/* A new document from text (when not NULL; path is its name in messages) or else from the
 * file path, which the include or reference `from` at from_path names (NULL: the command line). */
static ss_status load_doc(cfg_doc **out, const char *path, const char *text, size_t len,
                          const cfg_node *from, const char *from_path, ss_err *err)
{
    *out = NULL;
    cfg_doc *doc = calloc(1, sizeof *doc);
    if (!doc)
        return cfg_nomem(err);
    loader ld = {.doc = doc, .err = err};
    ss_status st;
    if (text) {
        const char *file = cfg_arena_strndup(doc, path, strlen(path));
        st = file ? parse_and_resolve(&ld, file, text, len, &doc->root) : cfg_nomem(err);
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

ss_status cfg_doc_load_named(cfg_doc **out, const cfg_node *from, const char *from_path,
                             ss_err *err)
{
    *out = NULL;
    char *file = relative_to(from->file, from->text);
    if (!file)
        return cfg_nomem(err);
    ss_status st = load_doc(out, file, NULL, 0, from, from_path, err);
    free(file);
    return st;
}

