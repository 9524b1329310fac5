/* This file implements the sweep file of `switchsim sweep` (a `kind: sweep` config): loading
 * and validating it, expanding it into points, and writing each point out as a run config.
 *
 *   kind: sweep
 *   name: experts                  # points are named "<name>-<index>"
 *   run: ../runs/base.yaml         # the base run, relative to this file
 *   estimate: {engine: analytic}   # optional: engine, routing, remat, ... (sweep --help)
 *   product:                       # cartesian product, first key slowest ...
 *     model: [../models/a.yaml, ../models/b.yaml]
 *     plan.microbatches: [1, 2]
 *   points:                        # ... or a list of override maps (exactly one of the two)
 *     - {pod: ../pods/p.yaml, plan.data: 64}
 *
 * A key is a dotted path of run-config fields: it may go through mappings (plan.data) and
 * through references to other configs (model.switch.num_experts, pod.chip.link_gbps); a
 * reference itself takes a path relative to the sweep file (pod: ../pods/x.yaml). Keys are
 * resolved against run_cfg_schema when the sweep is loaded, and every value is decoded with
 * its field's own rules (cfg_decode on a one-field schema), so a typo or a bad value fails
 * with the config reader's "FILE:LINE:COL: field 'PATH': MESSAGE" before anything runs.
 *
 * A point's run config includes the base run and overrides the swept fields. Going through a
 * reference that the base gives as a path (model: ../models/x.yaml), the reference becomes a
 * mapping that includes that file (or the point's own value for the reference) and overrides
 * the field: cfg's include merge then yields exactly the base with the point's changes.
 *
 * Invariants: after sweep_spec_load, every non-NULL values[] node decoded without error for
 * its key's field; every key ends at a leaf field or a reference; points are in the stable
 * order sweep.h states.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/sweep.h"
#include "model/run_cfg.h"

static const char *const engine_names[] = {"analytic", "systemc", NULL};

typedef struct {
    char name[41];
    char run[4096];
    sweep_estimate_cfg est;
    int has_est;
} sweep_head;

static const cfg_field estimate_fields[] = {
    CFG_ENUM(sweep_estimate_cfg, engine, CFG_OPTIONAL, "analytic", engine_names,
             "timing engine of every point: analytic or systemc"),
    CFG_STRING(sweep_estimate_cfg, routing, CFG_OPTIONAL, "uniform",
               "routing model: uniform, skew:S or hist:FILE (FILE relative to the sweep)"),
    CFG_BOOL(sweep_estimate_cfg, remat, CFG_OPTIONAL, "false", "estimate --remat"),
    CFG_BOOL(sweep_estimate_cfg, exact_counts, CFG_OPTIONAL, "false", "estimate --exact-counts"),
    CFG_BOOL(sweep_estimate_cfg, grad_bf16, CFG_OPTIONAL, "false", "estimate --grad-bf16"),
    CFG_BOOL(sweep_estimate_cfg, no_overlap, CFG_OPTIONAL, "false", "estimate --no-overlap"),
    CFG_BYTES(sweep_estimate_cfg, packet_bytes, CFG_OPTIONAL, "0", 0, 1 << 30,
              "estimate --packet-bytes; 0: estimate's default"),
    CFG_DOUBLE(sweep_estimate_cfg, timeout_s, CFG_OPTIONAL, "0", 0, 1e7,
               "wall-clock limit of one point, seconds (0: none; --timeout overrides)"),
};
static const cfg_schema estimate_schema = {
    NULL, "how each point is estimated", sizeof(sweep_estimate_cfg), estimate_fields,
    sizeof estimate_fields / sizeof estimate_fields[0], NULL};

static const cfg_field head_fields[] = {
    CFG_STRING(sweep_head, name, CFG_REQUIRED, NULL, "sweep name (points: NAME-INDEX)"),
    CFG_STRING(sweep_head, run, CFG_REQUIRED, NULL, "base run config, relative to this file"),
    CFG_MAPPING_OPT(sweep_head, est, "estimate", has_est, &estimate_schema,
                    "estimate options of every point"),
};
static const cfg_schema head_schema = {"sweep", "a parameter sweep over run configs",
                                       sizeof(sweep_head), head_fields,
                                       sizeof head_fields / sizeof head_fields[0], NULL};

/* ---- paths ------------------------------------------------------------------------------ */

/* text resolved against the directory of file, made absolute (canonical when it exists). */
static ss_status resolve_path(char *out, size_t n, const char *file, const char *text,
                              ss_err *err)
{
    char joined[2 * PATH_MAX], canon[PATH_MAX], cwd[PATH_MAX], abs[3 * PATH_MAX + 2];
    const char *slash = strrchr(file, '/');
    int w;
    if (text[0] == '/' || !slash)
        w = snprintf(joined, sizeof joined, "%s", text);
    else
        w = snprintf(joined, sizeof joined, "%.*s/%s", (int)(slash - file), file, text);
    if (w < 0 || (size_t)w >= sizeof joined)
        return ss_err_set(err, SS_ERR_RANGE, "path too long: %s", text);
    const char *res = joined;
    if (realpath(joined, canon)) {
        res = canon;
    } else if (joined[0] != '/' && getcwd(cwd, sizeof cwd)) {
        w = snprintf(abs, sizeof abs, "%s/%s", cwd, joined);
        if (w < 0 || (size_t)w >= sizeof abs)
            return ss_err_set(err, SS_ERR_RANGE, "path too long: %s", joined);
        res = abs;
    }
    if (strlen(res) >= n)
        return ss_err_set(err, SS_ERR_RANGE, "path too long: %s", res);
    memcpy(out, res, strlen(res) + 1);
    return SS_OK;
}

/* ---- keys ------------------------------------------------------------------------------- */

static const cfg_field *find_field(const cfg_schema *s, const char *name)
{
    for (size_t i = 0; i < s->nfields; i++)
        if (strcmp(s->fields[i].name, name) == 0)
            return &s->fields[i];
    return NULL;
}

static const char *closest_field(const cfg_schema *s, const char *word)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < s->nfields; i++) {
        size_t d = cfg_edit_distance(word, s->fields[i].name);
        if (d < best_d) {
            best_d = d;
            best = s->fields[i].name;
        }
    }
    return best && best_d <= 2 && 3 * best_d <= strlen(word) + 2 ? best : NULL;
}

static int is_container(const cfg_field *f)
{
    return f->type == CFG_T_MAPPING || f->type == CFG_T_REF;
}

/* The key written at map's entry i as a scalar node (for its position in errors). */
static cfg_node key_node(const cfg_node *map, size_t i)
{
    cfg_node k = {.kind = CFG_SCALAR, .file = map->items[i]->file, .line = map->key_line[i],
                  .col = map->key_col[i], .text = map->keys[i]};
    return k;
}

/* Resolves dotted key (written at `at`, field path `path`) to its leaf field and the schema
 * that holds it. */
static ss_status resolve_key(const cfg_field **leaf, const cfg_schema **parent,
                             const char *key, const cfg_node *at, const char *path, ss_err *err)
{
    const cfg_schema *s = &run_cfg_schema;
    const cfg_field *f = NULL;
    char seg[256];
    const char *p = key;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (len == 0 || len >= sizeof seg)
            return cfg_error(err, at, path, "'%s' is not a dotted path of run-config fields",
                             key);
        memcpy(seg, p, len);
        seg[len] = '\0';
        if (f && !is_container(f))
            return cfg_error(err, at, path, "'%.*s' is a single value: it has no field '%s'",
                             (int)(p - key - 1), key, seg);
        if (f)
            s = f->sub;
        f = find_field(s, seg);
        if (!f) {
            const char *near = closest_field(s, seg);
            char in[300];
            if (p == key)
                snprintf(in, sizeof in, "a run");
            else
                snprintf(in, sizeof in, "'%.*s'", (int)(p - key - 1), key);
            if (near)
                return cfg_error(err, at, path, "%s has no field '%s'; did you mean '%s'?", in,
                                 seg, near);
            return cfg_error(err, at, path, "%s has no field '%s'", in, seg);
        }
        if (!dot)
            break;
        p = dot + 1;
    }
    if (f->type == CFG_T_MAPPING)
        return cfg_error(err, at, path,
                         "'%s' is a mapping: sweep its fields one by one (e.g. '%s.%s')", key,
                         key, f->sub->fields[0].name);
    *leaf = f;
    *parent = s;
    return SS_OK;
}

/* Decodes value with its key's field rules: a one-field schema over a one-entry mapping. */
static ss_status check_value(const sweep_key *k, const cfg_schema *parent, const cfg_node *v,
                             const char *path, ss_err *err)
{
    if (k->field->type == CFG_T_REF && v->kind != CFG_SCALAR) {
        char full[600];
        snprintf(full, sizeof full, "%s.%s", path, k->field->name);
        return cfg_error(err, v, full,
                         "expected a %s file (relative to the sweep file); to change single "
                         "fields, sweep '%s.FIELD' keys",
                         k->field->sub->kind, k->key);
    }
    cfg_field one = *k->field;
    one.flags &= ~(unsigned)CFG_REQUIRED;
    one.def = NULL;
    cfg_schema s = {NULL, "", parent->size, &one, 1, NULL};
    const char *keys[1] = {one.name};
    int kl[1] = {v->line}, kc[1] = {v->col};
    cfg_node *items[1] = {(cfg_node *)v};
    cfg_node map = {.kind = CFG_MAP, .file = v->file, .line = v->line, .col = v->col, .n = 1,
                    .keys = keys, .key_line = kl, .key_col = kc, .items = items};
    void *buf = calloc(1, parent->size);
    if (!buf)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory");
    ss_status st = cfg_decode(&s, buf, &map, path, err);
    free(buf);
    return st;
}

/* The column of key (added at the end when new); parent receives the key's schema. */
static ss_status key_column(sweep_spec *s, int *col, const cfg_schema **parent,
                            const cfg_node *map, size_t i, const char *path, ss_err *err)
{
    const char *key = map->keys[i];
    cfg_node at = key_node(map, i);
    const cfg_field *leaf = NULL;
    char full[600];
    snprintf(full, sizeof full, "%s.%.300s", path, key);
    ss_status st = resolve_key(&leaf, parent, key, &at, full, err);
    if (st != SS_OK)
        return st;
    for (int k = 0; k < s->nkeys; k++)
        if (strcmp(s->keys[k].key, key) == 0) {
            *col = k;
            return SS_OK;
        }
    if (s->nkeys == SWEEP_MAX_KEYS)
        return cfg_error(err, &at, path, "more than %d swept keys", SWEEP_MAX_KEYS);
    if (strlen(key) >= sizeof s->keys[0].key)
        return cfg_error(err, &at, path, "key too long");
    snprintf(s->keys[s->nkeys].key, sizeof s->keys[0].key, "%s", key);
    s->keys[s->nkeys].field = leaf;
    *col = s->nkeys++;
    return SS_OK;
}

/* ---- product and points ------------------------------------------------------------------- */

static ss_status alloc_values(sweep_spec *s, const cfg_node *at, const char *what, ss_err *err)
{
    if (s->npoints == 0)
        return cfg_error(err, at, what, "no points: give at least one value");
    if (s->npoints > SWEEP_MAX_POINTS)
        return cfg_error(err, at, what, "%zu points; at most %d", s->npoints,
                         SWEEP_MAX_POINTS);
    s->values = calloc(s->npoints * (size_t)SWEEP_MAX_KEYS, sizeof *s->values);
    if (!s->values)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for %zu points", s->npoints);
    return SS_OK;
}

static int is_list_field(const cfg_field *f)
{
    return f->type == CFG_T_INT_LIST || f->type == CFG_T_BOOL_LIST;
}

/* The values of a product entry: the items of a list, or the entry itself when it is a single
 * value (a scalar; for a list field such as pod.dims, a list of scalars). */
static int entry_is_one(const cfg_field *f, const cfg_node *entry)
{
    if (entry->kind != CFG_SEQ)
        return 1;
    return is_list_field(f) && !(entry->n > 0 && entry->items[0]->kind == CFG_SEQ);
}

static size_t product_len(const cfg_field *f, const cfg_node *entry)
{
    return entry_is_one(f, entry) ? 1 : entry->n;
}

static const cfg_node *product_value(const cfg_field *f, const cfg_node *entry, size_t j)
{
    return entry_is_one(f, entry) ? entry : entry->items[j];
}

/* "PREFIX.a.b" for key "a.b.c": the field path cfg_decode extends with the leaf name. */
static void parent_path(char *buf, size_t n, const char *prefix, const char *key)
{
    const char *dot = strrchr(key, '.');
    if (dot)
        snprintf(buf, n, "%s.%.*s", prefix, (int)(dot - key), key);
    else
        snprintf(buf, n, "%s", prefix);
}

static ss_status load_product(sweep_spec *s, const cfg_node *prod, ss_err *err)
{
    if (prod->kind != CFG_MAP || prod->n == 0)
        return cfg_error(err, prod, "product",
                         "expected a mapping of run-config keys to lists of values");
    s->npoints = 1;
    for (size_t i = 0; i < prod->n; i++) {
        int col;
        const cfg_schema *parent;
        ss_status st = key_column(s, &col, &parent, prod, i, "product", err);
        if (st != SS_OK)
            return st;
        const cfg_field *f = s->keys[col].field;
        const cfg_node *entry = prod->items[i];
        size_t len = product_len(f, entry);
        if (len == 0) {
            char path[300];
            snprintf(path, sizeof path, "product.%s", prod->keys[i]);
            return cfg_error(err, entry, path, "an empty list: give at least one value");
        }
        char prefix[320];
        parent_path(prefix, sizeof prefix, "product", prod->keys[i]);
        for (size_t j = 0; j < len; j++)
            if ((st = check_value(&s->keys[col], parent, product_value(f, entry, j), prefix,
                                  err)) != SS_OK)
                return st;
        if (s->npoints > SWEEP_MAX_POINTS)
            return cfg_error(err, prod, "product", "more than %d points", SWEEP_MAX_POINTS);
        s->npoints *= len;
    }
    ss_status st = alloc_values(s, prod, "product", err);
    if (st != SS_OK)
        return st;
    for (size_t p = 0; p < s->npoints; p++) {
        size_t rest = p;
        for (size_t i = prod->n; i-- > 0;) { /* the last key varies fastest */
            const cfg_field *f = s->keys[i].field;
            size_t len = product_len(f, prod->items[i]);
            s->values[p * SWEEP_MAX_KEYS + i] = product_value(f, prod->items[i], rest % len);
            rest /= len;
        }
    }
    return SS_OK;
}

static ss_status load_points(sweep_spec *s, const cfg_node *pts, ss_err *err)
{
    if (pts->kind != CFG_SEQ)
        return cfg_error(err, pts, "points", "expected a list of override mappings");
    s->npoints = pts->n;
    ss_status st = alloc_values(s, pts, "points", err);
    if (st != SS_OK)
        return st;
    for (size_t p = 0; p < pts->n; p++) {
        const cfg_node *m = pts->items[p];
        char path[64];
        snprintf(path, sizeof path, "points[%zu]", p);
        if (m->kind != CFG_MAP || m->n == 0)
            return cfg_error(err, m, path, "expected a mapping of run-config keys to values");
        for (size_t i = 0; i < m->n; i++) {
            int col;
            const cfg_schema *parent;
            if ((st = key_column(s, &col, &parent, m, i, path, err)) != SS_OK)
                return st;
            char prefix[320];
            parent_path(prefix, sizeof prefix, path, m->keys[i]);
            if ((st = check_value(&s->keys[col], parent, m->items[i], prefix, err)) != SS_OK)
                return st;
            s->values[p * SWEEP_MAX_KEYS + (size_t)col] = m->items[i];
        }
    }
    return SS_OK;
}

/* Rejects a top-level key that is neither a head field nor product/points, suggesting the
 * nearest of all of them (cfg_decode alone would not know product and points). */
static ss_status check_top_keys(const cfg_node *root, ss_err *err)
{
    static const char *const known[] = {"kind", "name", "run", "estimate", "product", "points"};
    enum { NKNOWN = sizeof known / sizeof known[0] };
    for (size_t i = 0; i < root->n; i++) {
        const char *best = NULL;
        size_t best_d = (size_t)-1;
        for (int k = 0; k < NKNOWN; k++) {
            size_t d = cfg_edit_distance(root->keys[i], known[k]);
            if (d < best_d) {
                best_d = d;
                best = known[k];
            }
        }
        if (best_d == 0)
            continue;
        cfg_node at = key_node(root, i);
        if (best_d <= 2 && 3 * best_d <= strlen(root->keys[i]) + 2)
            return cfg_error(err, &at, root->keys[i], "unknown key; did you mean '%s'?", best);
        return cfg_error(err, &at, root->keys[i],
                         "unknown key; a sweep has: kind, name, run, estimate, product, points");
    }
    return SS_OK;
}

/* A copy of the root mapping without product/points, for the head schema. */
static ss_status decode_head(sweep_head *h, const cfg_node *root, ss_err *err)
{
    cfg_node copy = *root;
    const char **keys = calloc(root->n + 1, sizeof *keys);
    int *kl = calloc(root->n + 1, sizeof *kl), *kc = calloc(root->n + 1, sizeof *kc);
    cfg_node **items = calloc(root->n + 1, sizeof *items);
    ss_status st = SS_OK;
    if (!keys || !kl || !kc || !items) {
        st = ss_err_set(err, SS_ERR_NOMEM, "out of memory");
        goto out;
    }
    copy.n = 0;
    for (size_t i = 0; i < root->n; i++) {
        if (strcmp(root->keys[i], "product") == 0 || strcmp(root->keys[i], "points") == 0)
            continue;
        keys[copy.n] = root->keys[i];
        kl[copy.n] = root->key_line[i];
        kc[copy.n] = root->key_col[i];
        items[copy.n++] = root->items[i];
    }
    copy.keys = keys;
    copy.key_line = kl;
    copy.key_col = kc;
    copy.items = items;
    st = cfg_decode(&head_schema, h, &copy, "", err);
out:
    free(keys);
    free(kl);
    free(kc);
    free(items);
    return st;
}

ss_status sweep_spec_load(sweep_spec *s, const char *path, ss_err *err)
{
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    ss_status st = cfg_doc_load(&s->doc, path, err);
    if (st != SS_OK)
        return st;
    const cfg_node *root = cfg_doc_root(s->doc);
    sweep_head h;
    if ((st = check_top_keys(root, err)) != SS_OK || (st = decode_head(&h, root, err)) != SS_OK)
        goto fail;
    if (!h.has_est && (st = cfg_decode(&estimate_schema, &h.est, &(cfg_node){.kind = CFG_MAP,
                                                                             .file = path,
                                                                             .line = 1,
                                                                             .col = 1},
                                       "estimate", err)) != SS_OK)
        goto fail;
    snprintf(s->name, sizeof s->name, "%s", h.name);
    s->est = h.est;
    const cfg_node *run_node = cfg_map_get(root, "run");
    if ((st = resolve_path(s->run_path, sizeof s->run_path, run_node->file, h.run, err)) != SS_OK)
        goto fail;
    {
        run_cfg *base = malloc(sizeof *base);
        if (!base) {
            st = ss_err_set(err, SS_ERR_NOMEM, "out of memory");
            goto fail;
        }
        st = run_cfg_load(base, s->run_path, err);
        free(base);
        if (st != SS_OK) {
            ss_err_prefix(err, "%s:%d:%d: field 'run': the base run is not valid: ",
                          run_node->file, run_node->line, run_node->col);
            goto fail;
        }
    }
    const char *routing = s->est.routing;
    if (strncmp(routing, "hist:", 5) == 0) {
        const cfg_node *est = cfg_map_get(root, "estimate");
        char abs[4096];
        if ((st = resolve_path(abs, sizeof abs, est ? est->file : path, routing + 5, err)) !=
            SS_OK)
            goto fail;
        if (strlen(abs) + 6 > sizeof s->est.routing) {
            st = ss_err_set(err, SS_ERR_RANGE, "routing histogram path too long: %s", abs);
            goto fail;
        }
        snprintf(s->est.routing, sizeof s->est.routing, "hist:%s", abs);
    }
    const cfg_node *prod = cfg_map_get(root, "product"), *pts = cfg_map_get(root, "points");
    if ((prod != NULL) == (pts != NULL)) {
        st = cfg_error(err, prod ? pts : root, prod ? "points" : "",
                       prod ? "give either product or points, not both"
                            : "missing 'product' (a cartesian product of values) or 'points' "
                              "(a list of override maps)");
        goto fail;
    }
    st = prod ? load_product(s, prod, err) : load_points(s, pts, err);
    if (st != SS_OK)
        goto fail;
    return SS_OK;
fail:
    sweep_spec_free(s);
    return st;
}

void sweep_spec_free(sweep_spec *s)
{
    free(s->values);
    cfg_doc_free(s->doc);
    s->values = NULL;
    s->doc = NULL;
}

/* ---- point run configs ------------------------------------------------------------------- */

/* The tree of a point's overrides: a mapping per path segment, a value at each leaf. */
typedef struct ynode {
    char key[256];
    char include[4096];        /* "" or the file this mapping includes (a reference's base) */
    const cfg_node *value;     /* leaf: the swept value */
    const cfg_field *field;    /* leaf: its field */
    struct ynode *kids[SWEEP_MAX_KEYS];
    int nkids;
} ynode;

static void ynode_free(ynode *n)
{
    if (!n)
        return;
    for (int i = 0; i < n->nkids; i++)
        ynode_free(n->kids[i]);
    free(n);
}

static ynode *ynode_child(ynode *n, const char *key)
{
    for (int i = 0; i < n->nkids; i++)
        if (strcmp(n->kids[i]->key, key) == 0)
            return n->kids[i];
    if (n->nkids == SWEEP_MAX_KEYS)
        return NULL;
    ynode *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    snprintf(c->key, sizeof c->key, "%s", key);
    return n->kids[n->nkids++] = c;
}

/* Documents loaded while following references, freed together. */
typedef struct {
    cfg_doc *docs[64];
    int n;
} doc_list;

static ss_status doc_list_load(const cfg_node **root, doc_list *l, const char *path, ss_err *err)
{
    if (l->n == (int)(sizeof l->docs / sizeof l->docs[0]))
        return ss_err_set(err, SS_ERR_RANGE, "too many referenced configs");
    ss_status st = cfg_doc_load(&l->docs[l->n], path, err);
    if (st != SS_OK)
        return st;
    *root = cfg_doc_root(l->docs[l->n++]);
    return SS_OK;
}

static const cfg_node *point_value(const sweep_spec *s, size_t i, const char *key)
{
    for (int k = 0; k < s->nkeys; k++)
        if (strcmp(s->keys[k].key, key) == 0)
            return s->values[i * SWEEP_MAX_KEYS + (size_t)k];
    return NULL;
}

/* Whether point i also sets a key under reference key k (then k's value becomes the include of
 * that mapping instead of a leaf). */
static int has_subkeys(const sweep_spec *s, size_t i, const char *key)
{
    size_t len = strlen(key);
    for (int k = 0; k < s->nkeys; k++)
        if (s->values[i * SWEEP_MAX_KEYS + (size_t)k] &&
            strncmp(s->keys[k].key, key, len) == 0 && s->keys[k].key[len] == '.')
            return 1;
    return 0;
}

/* The file reference segment `seg` (full dotted path `prefix`) of point i points to: the
 * point's own value for it, else what the base says (base: the mapping that holds seg).
 * *inline_map receives the base's inline mapping when the base does not use a path. */
static ss_status ref_target(char *out, size_t n, const cfg_node **inline_map,
                            const sweep_spec *s, size_t i, const char *prefix,
                            const cfg_node *base, const char *seg, ss_err *err)
{
    *inline_map = NULL;
    out[0] = '\0';
    const cfg_node *own = point_value(s, i, prefix);
    if (own)
        return resolve_path(out, n, own->file, own->text, err);
    const cfg_node *bn = base ? cfg_map_get(base, seg) : NULL;
    if (!bn)
        return ss_err_set(err, SS_ERR_CONFIG, "%s: the base run has no '%s' to override",
                          s->run_path, prefix);
    if (bn->kind == CFG_MAP) {
        *inline_map = bn;
        return SS_OK;
    }
    return resolve_path(out, n, bn->file, bn->text, err);
}

/* Adds key k of point i to the tree, following references through the base documents. */
static ss_status add_override(ynode *root, doc_list *docs, const cfg_node *base_root,
                              const sweep_spec *s, size_t i, int k, ss_err *err)
{
    const char *key = s->keys[k].key;
    const cfg_schema *schema = &run_cfg_schema;
    const cfg_node *base = base_root;
    ynode *t = root;
    char prefix[256] = "";
    const char *p = key;
    for (;;) {
        const char *dot = strchr(p, '.');
        char seg[256];
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        snprintf(seg, sizeof seg, "%.*s", (int)len, p);
        size_t used = strlen(prefix);
        int w = snprintf(prefix + used, sizeof prefix - used, "%s%s", used ? "." : "", seg);
        SS_ASSERT(w > 0 && (size_t)w < sizeof prefix - used); /* keys are < 256 bytes */
        const cfg_field *f = find_field(schema, seg);
        SS_ASSERT(f != NULL); /* resolve_key accepted the key */
        ynode *c = ynode_child(t, seg);
        if (!c)
            return ss_err_set(err, SS_ERR_NOMEM, "out of memory");
        if (!dot) {
            c->value = s->values[i * SWEEP_MAX_KEYS + (size_t)k];
            c->field = f;
            return SS_OK;
        }
        if (f->type == CFG_T_REF) {
            const cfg_node *inline_map;
            char target[4096];
            ss_status st = ref_target(target, sizeof target, &inline_map, s, i, prefix, base,
                                      seg, err);
            if (st != SS_OK)
                return st;
            if (inline_map) {
                base = inline_map;
            } else {
                snprintf(c->include, sizeof c->include, "%s", target);
                if ((st = doc_list_load(&base, docs, target, err)) != SS_OK)
                    return st;
            }
        } else {
            base = base ? cfg_map_get(base, seg) : NULL;
        }
        schema = f->sub;
        t = c;
        p = dot + 1;
    }
}

/* Writes text as a YAML double-quoted scalar (JSON escapes are valid YAML escapes). */
static void put_quoted(FILE *f, const char *text)
{
    json_t *j = json_string(text);
    char *q = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    fputs(q ? q : "\"\"", f);
    free(q);
    json_decref(j);
}

static void put_scalar(FILE *f, const cfg_node *v)
{
    if (v->quoted)
        put_quoted(f, v->text);
    else
        fputs(v->text, f);
}

static ss_status put_value(FILE *f, const ynode *n, ss_err *err)
{
    const cfg_node *v = n->value;
    if (n->field->type == CFG_T_REF) {
        char abs[4096];
        ss_status st = resolve_path(abs, sizeof abs, v->file, v->text, err);
        if (st == SS_OK)
            put_quoted(f, abs);
        return st;
    }
    if (v->kind == CFG_SEQ) {
        fputc('[', f);
        for (size_t j = 0; j < v->n; j++) {
            if (j)
                fputs(", ", f);
            put_scalar(f, v->items[j]);
        }
        fputc(']', f);
        return SS_OK;
    }
    put_scalar(f, v);
    return SS_OK;
}

static ss_status put_mapping(FILE *f, const ynode *n, int indent, ss_err *err)
{
    if (n->include[0]) {
        fprintf(f, "%*sinclude: ", indent, "");
        put_quoted(f, n->include);
        fputc('\n', f);
    }
    for (int i = 0; i < n->nkids; i++) {
        const ynode *c = n->kids[i];
        fprintf(f, "%*s%s:", indent, "", c->key);
        ss_status st;
        if (c->value) {
            fputc(' ', f);
            st = put_value(f, c, err);
            fputc('\n', f);
        } else {
            fputc('\n', f);
            st = put_mapping(f, c, indent + 2, err);
        }
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

static ss_status build_tree(ynode *root, const sweep_spec *s, size_t i, ss_err *err)
{
    doc_list docs = {.n = 0};
    const cfg_node *base;
    ss_status st = doc_list_load(&base, &docs, s->run_path, err);
    for (int k = 0; st == SS_OK && k < s->nkeys; k++) {
        if (!s->values[i * SWEEP_MAX_KEYS + (size_t)k])
            continue;
        if (s->keys[k].field->type == CFG_T_REF && has_subkeys(s, i, s->keys[k].key))
            continue; /* becomes the include of the mapping its sub-keys build */
        st = add_override(root, &docs, base, s, i, k, err);
    }
    for (int d = 0; d < docs.n; d++)
        cfg_doc_free(docs.docs[d]);
    return st;
}

ss_status sweep_point_yaml(char **text, const sweep_spec *s, size_t i, ss_err *err)
{
    SS_ASSERT(i < s->npoints);
    *text = NULL;
    ynode *root = calloc(1, sizeof *root);
    if (!root)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory");
    ss_status st = build_tree(root, s, i, err);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = st == SS_OK ? open_memstream(&buf, &len) : NULL;
    if (st == SS_OK && !f)
        st = ss_err_set(err, SS_ERR_NOMEM, "out of memory");
    if (f) {
        fprintf(f, "# Point %zu of sweep '%s' (%s), generated by switchsim sweep.\n", i,
                s->name, s->path);
        fputs("include: ", f);
        put_quoted(f, s->run_path);
        fputc('\n', f);
        if (!point_value(s, i, "name")) {
            char name[64];
            snprintf(name, sizeof name, "%s-%zu", s->name, i);
            fputs("name: ", f);
            put_quoted(f, name);
            fputc('\n', f);
        }
        st = put_mapping(f, root, 0, err);
        if (fclose(f) != 0 && st == SS_OK)
            st = ss_err_set(err, SS_ERR_NOMEM, "out of memory");
    }
    ynode_free(root);
    if (st != SS_OK) {
        free(buf);
        ss_err_prefix(err, "point %zu: ", i);
        return st;
    }
    *text = buf;
    return SS_OK;
}

/* ---- point values as JSON and text ------------------------------------------------------- */

static json_t *scalar_json(const cfg_field *f, const cfg_node *v)
{
    switch (f->type) {
    case CFG_T_INT:
    case CFG_T_U64:
    case CFG_T_INT_LIST: return json_integer((json_int_t)strtoll(v->text, NULL, 0));
    case CFG_T_DOUBLE: return json_real(strtod(v->text, NULL));
    case CFG_T_BOOL:
    case CFG_T_BOOL_LIST: return json_boolean(strcmp(v->text, "true") == 0);
    default: return json_string(v->text);
    }
}

json_t *sweep_point_json(const sweep_spec *s, size_t i)
{
    json_t *o = json_object();
    for (int k = 0; o && k < s->nkeys; k++) {
        const cfg_node *v = s->values[i * SWEEP_MAX_KEYS + (size_t)k];
        if (!v)
            continue;
        json_t *j;
        if (v->kind == CFG_SEQ) {
            j = json_array();
            for (size_t e = 0; j && e < v->n; e++)
                json_array_append_new(j, scalar_json(s->keys[k].field, v->items[e]));
        } else {
            j = scalar_json(s->keys[k].field, v);
        }
        json_object_set_new(o, s->keys[k].key, j);
    }
    return o;
}

void sweep_point_text(char *buf, size_t n, const sweep_spec *s, size_t i, int k)
{
    const cfg_node *v = s->values[i * SWEEP_MAX_KEYS + (size_t)k];
    buf[0] = '\0';
    if (!v)
        return;
    if (v->kind != CFG_SEQ) {
        snprintf(buf, n, "%s", v->text);
        return;
    }
    size_t used = 0;
    for (size_t e = 0; e < v->n && used < n; e++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", e ? "x" : "", v->items[e]->text);
}

int sweep_estimate_args(const char **argv, int max, char *store, size_t nstore,
                        const sweep_spec *s)
{
    const sweep_estimate_cfg *e = &s->est;
    int n = 0;
    SS_ASSERT(max >= 16);
    argv[n++] = "--engine";
    argv[n++] = engine_names[e->engine];
    argv[n++] = "--routing";
    argv[n++] = e->routing;
    if (e->remat)
        argv[n++] = "--remat";
    if (e->exact_counts)
        argv[n++] = "--exact-counts";
    if (e->grad_bf16)
        argv[n++] = "--grad-bf16";
    if (e->no_overlap)
        argv[n++] = "--no-overlap";
    if (e->packet_bytes) {
        snprintf(store, nstore, "%llu", (unsigned long long)e->packet_bytes);
        argv[n++] = "--packet-bytes";
        argv[n++] = store;
    }
    argv[n] = NULL;
    return n;
}
