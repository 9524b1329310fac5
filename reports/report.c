/* This file implements switchsim's performance reports (reports/report.h): it reads estimate
 * results, lays out a document of headings, paragraphs, tables and SVG charts (reports/svg.h),
 * and renders that one document as Markdown, as self-contained HTML, as one CSV per table and
 * one SVG file per chart.
 *
 * A table cell has two forms: the display text (rounded, with units: "1.354 s") for Markdown
 * and HTML, and the raw text (the JSON number with 17 significant digits, or the string) for
 * the CSV. Charts are given the JSON numbers unchanged, so their data-value / data-x / data-y
 * attributes equal the results' numbers.
 *
 * Invariants: report.h's; a table's CSV has one header line and one line per row, fields quoted
 * (RFC 4180) when they hold a comma, quote or line break; the HTML is well-formed XML (every
 * element closed, text escaped) with no script and no external reference.
 */
#include "reports/report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "reports/svg.h"

/* ---- text buffer ----------------------------------------------------------------------- */

typedef struct {
    char *d;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->d, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->d = d;
        b->cap = cap;
    }
    memcpy(b->d + b->len, s, n);
    b->len += n;
    b->d[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        sb_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_add(b, big, (size_t)n);
    free(big);
}

/* Text escaped for XML/HTML content and attribute values. */
static void sb_xml(sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_puts(b, "&amp;"); break;
        case '<': sb_puts(b, "&lt;"); break;
        case '>': sb_puts(b, "&gt;"); break;
        case '"': sb_puts(b, "&quot;"); break;
        case '\'': sb_puts(b, "&#39;"); break;
        default: sb_add(b, s, 1);
        }
    }
}

/* A Markdown table cell: '|' escaped, line breaks as spaces. */
static void sb_md_cell(sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            sb_puts(b, "\\|");
        else if (*s == '\n' || *s == '\r')
            sb_puts(b, " ");
        else
            sb_add(b, s, 1);
    }
}

/* An RFC 4180 CSV field. */
static void sb_csv(sbuf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        sb_puts(b, s);
        return;
    }
    sb_puts(b, "\"");
    for (; *s; s++) {
        if (*s == '"')
            sb_puts(b, "\"");
        sb_add(b, s, 1);
    }
    sb_puts(b, "\"");
}

static char *xstrdup(const char *s)
{
    const size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *d = malloc((size_t)n + 1);
    if (!d)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

/* ---- number formatting ------------------------------------------------------------------ */

/* 17 significant digits: the double read back is the same number. */
static void fmt_raw(char *buf, size_t cap, double v)
{
    snprintf(buf, cap, "%.17g", v);
}

/* v with an SI prefix and 4 significant digits: "7.415 G", "1512", "22.10 m". */
static void fmt_si(char *buf, size_t cap, double v, const char *unit)
{
    static const char *const big[] = {"", "k", "M", "G", "T", "P", "E"};
    static const char *const small[] = {"", "m", "\xc2\xb5", "n", "p"};
    const char *sep = *unit ? " " : "";
    if (!isfinite(v) || v == 0) {
        snprintf(buf, cap, "%g%s%s", v, sep, unit);
        return;
    }
    double a = fabs(v);
    int k = 0;
    if (a >= 1) {
        while (a >= 1000 && k < 6) {
            a /= 1000;
            k++;
        }
        snprintf(buf, cap, "%.4g %s%s", v < 0 ? -a : a, big[k], unit);
    } else {
        while (a < 1 && k < 4) {
            a *= 1000;
            k++;
        }
        snprintf(buf, cap, "%.4g %s%s", v < 0 ? -a : a, small[k], unit);
    }
    /* "1512 " without unit or prefix: drop the trailing space */
    const size_t n = strlen(buf);
    if (n > 0 && buf[n - 1] == ' ')
        buf[n - 1] = '\0';
}

static void fmt_pct(char *buf, size_t cap, double fraction)
{
    snprintf(buf, cap, "%.3g %%", 100 * fraction);
}

/* ---- JSON access ------------------------------------------------------------------------ */

/* The member at a dotted path ("memory_per_core.total"), or NULL. */
static const json_t *jget(const json_t *o, const char *path)
{
    char key[128];
    while (o && *path) {
        const char *dot = strchr(path, '.');
        const size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        o = json_is_object(o) ? json_object_get(o, key) : NULL;
        path += n + (dot != NULL);
    }
    return o;
}

static double jnum(const json_t *o, const char *path)
{
    const json_t *v = jget(o, path);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *jstr(const json_t *o, const char *path)
{
    const json_t *v = jget(o, path);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* ---- the document ----------------------------------------------------------------------- */

typedef struct {
    char *head, *csv_head; /* display header; CSV header */
} column;

typedef struct {
    char file[48];        /* CSV file name */
    int ncols;
    column *cols;         /* [ncols] */
    char **cells;         /* [nrows * ncols * 2]: display, raw */
    int nrows, cap;
} table;

typedef enum { BLK_HEADING, BLK_PARA, BLK_NOTE, BLK_TABLE, BLK_FIGURE } blk_kind;

typedef struct {
    blk_kind kind;
    int level;      /* heading level */
    char *text;     /* heading, paragraph, note, table caption or figure caption */
    table *t;
    char file[48];  /* figure: SVG file name */
    char *svg;      /* figure: the <svg> element */
} block;

typedef struct {
    block *v;
    int n, cap;
    int failed;     /* an allocation failed */
    ss_err err;     /* the first chart error */
    ss_status st;
} doc;

static block *doc_add(doc *d, blk_kind kind)
{
    if (d->failed)
        return NULL;
    if (d->n == d->cap) {
        const int cap = d->cap ? 2 * d->cap : 32;
        block *v = realloc(d->v, (size_t)cap * sizeof *v);
        if (!v) {
            d->failed = 1;
            return NULL;
        }
        d->v = v;
        d->cap = cap;
    }
    block *b = &d->v[d->n++];
    memset(b, 0, sizeof *b);
    b->kind = kind;
    return b;
}

/* Adds a text block; text is copied. */
static void doc_text(doc *d, blk_kind kind, int level, const char *text)
{
    block *b = doc_add(d, kind);
    if (!b)
        return;
    b->level = level;
    if (!(b->text = xstrdup(text)))
        d->failed = 1;
}

static void table_free(table *t)
{
    if (!t)
        return;
    for (int c = 0; c < t->ncols; c++) {
        free(t->cols[c].head);
        free(t->cols[c].csv_head);
    }
    for (size_t i = 0; i < (size_t)t->nrows * (size_t)t->ncols * 2; i++)
        free(t->cells[i]);
    free(t->cols);
    free(t->cells);
    free(t);
}

static void doc_free(doc *d)
{
    for (int i = 0; i < d->n; i++) {
        free(d->v[i].text);
        free(d->v[i].svg);
        table_free(d->v[i].t);
    }
    free(d->v);
    memset(d, 0, sizeof *d);
}

/* A new table (owned by the document once added with doc_table). */
static table *table_new(doc *d, const char *file, int ncols)
{
    table *t = calloc(1, sizeof *t);
    if (t)
        t->cols = calloc((size_t)ncols, sizeof *t->cols);
    if (!t || !t->cols) {
        free(t);
        d->failed = 1;
        return NULL;
    }
    snprintf(t->file, sizeof t->file, "%s", file);
    t->ncols = ncols;
    return t;
}

static void table_col(doc *d, table *t, int c, const char *head, const char *csv_head)
{
    if (!t)
        return;
    t->cols[c].head = xstrdup(head);
    t->cols[c].csv_head = xstrdup(csv_head);
    if (!t->cols[c].head || !t->cols[c].csv_head)
        d->failed = 1;
}

/* Appends an empty row; returns its index or -1. */
static int table_row(doc *d, table *t)
{
    if (!t || d->failed)
        return -1;
    if (t->nrows == t->cap) {
        const int cap = t->cap ? 2 * t->cap : 16;
        char **c = realloc(t->cells, (size_t)cap * (size_t)t->ncols * 2 * sizeof *c);
        if (!c) {
            d->failed = 1;
            return -1;
        }
        memset(c + (size_t)t->cap * (size_t)t->ncols * 2, 0,
               (size_t)(cap - t->cap) * (size_t)t->ncols * 2 * sizeof *c);
        t->cells = c;
        t->cap = cap;
    }
    return t->nrows++;
}

static void table_set(doc *d, table *t, int row, int c, const char *disp, const char *raw)
{
    if (!t || row < 0)
        return;
    char **cell = &t->cells[((size_t)row * (size_t)t->ncols + (size_t)c) * 2];
    free(cell[0]);
    free(cell[1]);
    cell[0] = xstrdup(disp);
    cell[1] = xstrdup(raw ? raw : disp);
    if (!cell[0] || !cell[1])
        d->failed = 1;
}

/* A numeric cell: display formatted by fmt, raw with 17 digits. */
static void table_num(doc *d, table *t, int row, int c, double v,
                      void (*fmt)(char *, size_t, double, const char *), const char *unit)
{
    char disp[64], raw[64];
    if (!isfinite(v)) {
        table_set(d, t, row, c, "-", "");
        return;
    }
    fmt(disp, sizeof disp, v, unit);
    fmt_raw(raw, sizeof raw, v);
    table_set(d, t, row, c, disp, raw);
}

static void fmt_si_cb(char *b, size_t n, double v, const char *u)
{
    fmt_si(b, n, v, u);
}

static void fmt_pct_cb(char *b, size_t n, double v, const char *u)
{
    (void)u;
    fmt_pct(b, n, v);
}

static void fmt_int_cb(char *b, size_t n, double v, const char *u)
{
    (void)u;
    snprintf(b, n, "%.0f", v);
}

static void fmt_g_cb(char *b, size_t n, double v, const char *u)
{
    snprintf(b, n, fabs(v) >= 1000 ? "%.0f%s%s" : "%.4g%s%s", v, *u ? " " : "", u);
}

static void doc_table(doc *d, table *t, const char *caption)
{
    block *b = doc_add(d, BLK_TABLE);
    if (!b) {
        table_free(t);
        return;
    }
    b->t = t;
    if (!(b->text = xstrdup(caption)))
        d->failed = 1;
}

/* Adds a chart drawn into svg (taken over) as file, or records the chart's error. */
static void doc_figure(doc *d, const char *file, const char *caption, svg_buf *svg,
                       ss_status st, const ss_err *err)
{
    if (st != SS_OK) {
        if (d->st == SS_OK) {
            d->st = st;
            d->err = *err;
            ss_err_prefix(&d->err, "chart %s", file);
        }
        svg_buf_free(svg);
        return;
    }
    block *b = doc_add(d, BLK_FIGURE);
    if (!b) {
        svg_buf_free(svg);
        return;
    }
    snprintf(b->file, sizeof b->file, "%s", file);
    b->svg = svg->data; /* taken over */
    memset(svg, 0, sizeof *svg);
    if (!(b->text = xstrdup(caption)) || !b->svg)
        d->failed = 1;
}

/* ---- the result set --------------------------------------------------------------------- */

/* p grown to hold more than n elements of elem bytes (*cap updated), or NULL out of memory
 * (p still valid). */
static void *grow_array(void *p, int *cap, int n, size_t elem)
{
    if (n < *cap)
        return p;
    const int c = *cap ? 2 * *cap : 8;
    void *v = realloc(p, (size_t)c * elem);
    if (v)
        *cap = c;
    return v;
}

/* Grows the parallel arrays a and b (same capacity) for one more entry; -1 out of memory. */
static int grow_pair(void **a, void **b, int *cap, int n, size_t elem)
{
    int c = *cap;
    void *na = grow_array(*a, &c, n, elem);
    if (!na)
        return -1;
    *a = na;
    if (c != *cap) {
        void *nb = realloc(*b, (size_t)c * elem);
        if (!nb)
            return -1; /* a is larger than needed: harmless, cap unchanged */
        *b = nb;
        *cap = c;
    }
    return 0;
}

static int is_result(const json_t *o)
{
    static const char *const need[] = {"model", "pod", "cores", "step_seconds",
                                       "examples_per_second"};
    if (!json_is_object(o))
        return 0;
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!json_object_get(o, need[i]))
            return 0;
    return 1;
}

/* Appends result r (copied) named name, with its sweep point (copied; may be NULL). */
static ss_status add_result(report_set *s, const json_t *r, const char *name,
                            const json_t *point, ss_err *err)
{
    int cap = s->cap, bad = 0;
    json_t **res = grow_array(s->results, &cap, s->n, sizeof *res);
    if (res)
        s->results = res;
    if (res && cap != s->cap) { /* names and points follow the results' capacity */
        char **names = realloc(s->names, (size_t)cap * sizeof *names);
        if (names)
            s->names = names;
        json_t **pts = names ? realloc(s->points, (size_t)cap * sizeof *pts) : NULL;
        if (pts)
            s->points = pts;
        bad = !names || !pts;
        if (!bad)
            s->cap = cap;
    }
    char *nm = !res || bad ? NULL : xstrdup(name);
    json_t *copy = nm ? json_deep_copy(r) : NULL;
    json_t *pt = copy && point ? json_deep_copy(point) : NULL;
    if (!copy || (point && !pt)) {
        free(nm);
        json_decref(copy);
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the results");
    }
    s->names[s->n] = nm;
    s->points[s->n] = pt;
    s->results[s->n++] = copy;
    return SS_OK;
}

static ss_status add_failed(report_set *s, const char *name, const char *error, ss_err *err)
{
    void *f = s->failed, *e = s->errors;
    const int bad = grow_pair(&f, &e, &s->failed_cap, s->nfailed, sizeof(char *));
    s->failed = f;
    s->errors = e;
    char *a = bad ? NULL : xstrdup(name), *b = a ? xstrdup(error) : NULL;
    if (!b) {
        free(a);
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the results");
    }
    s->failed[s->nfailed] = a;
    s->errors[s->nfailed++] = b;
    return SS_OK;
}

/* Adds result r under its run name; a run built from command-line flags ("command-line") is
 * named "<model> on <pod>"; a name already taken gets " #k" (k = 2, 3, ...). */
static ss_status add_result_named(report_set *s, const json_t *r, const char *fallback,
                                  const json_t *point, ss_err *err)
{
    const char *run = jstr(r, "run");
    char base[256], name[300];
    if (!*run)
        snprintf(base, sizeof base, "%s", fallback);
    else if (strcmp(run, "command-line") == 0)
        snprintf(base, sizeof base, "%s on %s", jstr(r, "model"), jstr(r, "pod"));
    else
        snprintf(base, sizeof base, "%s", run);
    snprintf(name, sizeof name, "%s", base);
    for (int k = 2, taken = 1; taken; k++) {
        taken = 0;
        for (int i = 0; i < s->n && !taken; i++)
            taken = strcmp(s->names[i], name) == 0;
        if (taken)
            snprintf(name, sizeof name, "%s #%d", base, k);
    }
    return add_result(s, r, name, point, err);
}

/* "<sweep> #i (k=v, ...)" of a sweep point. */
static char *point_name(const char *sweep, size_t i, const json_t *point)
{
    sbuf b = {0};
    sb_printf(&b, "%s #%zu", sweep, i);
    const char *key;
    json_t *v;
    int first = 1;
    if (json_is_object(point) && json_object_size(point) > 0) {
        sb_puts(&b, " (");
        json_object_foreach((json_t *)point, key, v) {
            char *txt = json_is_string(v) ? xstrdup(json_string_value(v))
                                          : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            sb_printf(&b, "%s%s=%s", first ? "" : ", ", key, txt ? txt : "?");
            free(txt);
            first = 0;
        }
        sb_puts(&b, ")");
    }
    if (b.failed) {
        free(b.d);
        return NULL;
    }
    return b.d;
}

static ss_status add_sweep(report_set *s, const json_t *doc, const char *name, ss_err *err)
{
    const json_t *points = json_object_get(doc, "points");
    const char *sweep = json_string_value(json_object_get(doc, "sweep"));
    if (!sweep || !json_is_array(points))
        return ss_err_set(err, SS_ERR_DATA,
                          "%s: a sweep file needs \"sweep\" (a string) and \"points\" (an array)",
                          name);
    size_t i;
    const json_t *p;
    json_array_foreach(points, i, p) {
        const char *status = json_string_value(json_object_get(p, "status"));
        const json_t *res = json_object_get(p, "result");
        const char *error = json_string_value(json_object_get(p, "error"));
        char *pn = point_name(sweep, i, json_object_get(p, "point"));
        if (!pn)
            return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the results");
        ss_status st = SS_OK;
        if (status && strcmp(status, "ok") == 0 && is_result(res))
            st = add_result(s, res, pn, json_object_get(p, "point"), err);
        else if (status && strcmp(status, "failed") == 0)
            st = add_failed(s, pn, error ? error : "(no error message)", err);
        else
            st = ss_err_set(err, SS_ERR_DATA,
                            "%s: sweep point %zu: needs \"status\": \"ok\" with an estimate "
                            "\"result\", or \"status\": \"failed\" with an \"error\"",
                            name, i);
        free(pn);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

void report_set_free(report_set *s)
{
    for (int i = 0; i < s->n; i++) {
        json_decref(s->results[i]);
        json_decref(s->points[i]);
        free(s->names[i]);
    }
    for (int i = 0; i < s->nfailed; i++) {
        free(s->failed[i]);
        free(s->errors[i]);
    }
    free(s->results);
    free(s->names);
    free(s->points);
    free(s->failed);
    free(s->errors);
    memset(s, 0, sizeof *s);
}

/* Drops the entries added after n results and nf failures (used on failure). */
static void truncate_set(report_set *s, int n, int nf)
{
    while (s->n > n) {
        s->n--;
        json_decref(s->results[s->n]);
        json_decref(s->points[s->n]);
        free(s->names[s->n]);
    }
    while (s->nfailed > nf) {
        s->nfailed--;
        free(s->failed[s->nfailed]);
        free(s->errors[s->nfailed]);
    }
}

ss_status report_set_add_json(report_set *s, const json_t *doc, const char *name, ss_err *err)
{
    const int n0 = s->n, nf0 = s->nfailed;
    ss_status st;
    if (json_is_object(doc) && json_object_get(doc, "sweep"))
        st = add_sweep(s, doc, name, err);
    else if (is_result(doc))
        st = add_result_named(s, doc, name, NULL, err);
    else
        st = ss_err_set(err, SS_ERR_DATA,
                        "%s: neither an estimate result (an object with \"model\", \"pod\", "
                        "\"cores\", \"step_seconds\" and \"examples_per_second\"; see switchsim "
                        "estimate --results) nor a sweep file",
                        name);
    if (st != SS_OK)
        truncate_set(s, n0, nf0);
    return st;
}

ss_status report_set_add_file(report_set *s, const char *path, ss_err *err)
{
    char *text = NULL;
    size_t len = 0;
    ss_status st = file_read_all(path, REPORT_MAX_INPUT_BYTES, &text, &len, err);
    if (st != SS_OK)
        return st;
    json_error_t je;
    json_t *doc = json_loadb(text, len, 0, &je);
    free(text);
    if (!doc)
        return ss_err_set(err, SS_ERR_DATA, "%s:%d:%d: not valid JSON: %s", path, je.line,
                          je.column, je.text);
    st = report_set_add_json(s, doc, path, err);
    json_decref(doc);
    return st;
}

/* ---- summary ---------------------------------------------------------------------------- */

enum { SUM_COLS = 12 };

static void summary_plan(char *buf, size_t cap, const json_t *r)
{
    snprintf(buf, cap, "%s, %gx%g (data x model)", jstr(r, "strategy"), jnum(r, "data_ways"),
             jnum(r, "model_ways"));
    if (jnum(r, "num_experts") > 0) {
        const size_t n = strlen(buf);
        snprintf(buf + n, cap - n, ", %g experts/core", jnum(r, "experts_per_core"));
    }
    const size_t n = strlen(buf);
    snprintf(buf + n, cap - n, ", %g microbatches, %s engine", jnum(r, "microbatches"),
             jstr(r, "engine"));
    if (*jstr(r, "comm")) { /* estimate --comm: lowered or isolated collectives */
        const size_t k = strlen(buf);
        snprintf(buf + k, cap - k, ", %s collectives", jstr(r, "comm"));
    }
}

static void summary_row(doc *d, table *t, const json_t *r, const char *name)
{
    const int row = table_row(d, t);
    char plan[256], mem[96], raw[64];
    summary_plan(plan, sizeof plan, r);
    table_set(d, t, row, 0, name, NULL);
    table_set(d, t, row, 1, jstr(r, "model"), NULL);
    table_set(d, t, row, 2, jstr(r, "pod"), NULL);
    table_num(d, t, row, 3, jnum(r, "cores"), fmt_int_cb, "");
    table_set(d, t, row, 4, plan, NULL);
    table_num(d, t, row, 5, jnum(r, "params"), fmt_si_cb, "");
    table_num(d, t, row, 6, jnum(r, "flops_per_sequence"), fmt_si_cb, "FLOP");
    table_num(d, t, row, 7, jnum(r, "step_seconds"), fmt_si_cb, "s");
    table_num(d, t, row, 8, jnum(r, "examples_per_second"), fmt_g_cb, "");
    table_num(d, t, row, 9, jnum(r, "tokens_per_second"), fmt_si_cb, "");
    table_num(d, t, row, 10, jnum(r, "mfu"), fmt_pct_cb, "");
    const double total = jnum(r, "memory_per_core.total"), hbm = jnum(r, "memory_per_core.hbm");
    snprintf(mem, sizeof mem, "%.3g of %.3g GiB", total / 1073741824.0, hbm / 1073741824.0);
    fmt_raw(raw, sizeof raw, total);
    table_set(d, t, row, 11, isfinite(total) ? mem : "-", isfinite(total) ? raw : "");
}

static void add_summary(doc *d, const report_set *s)
{
    static const char *const heads[SUM_COLS][2] = {
        {"result", "result"},
        {"model", "model"},
        {"pod", "pod"},
        {"cores", "cores"},
        {"plan", "plan"},
        {"params", "params"},
        {"FLOPs/seq", "flops_per_sequence"},
        {"step time", "step_seconds"},
        {"examples/s", "examples_per_second"},
        {"tokens/s", "tokens_per_second"},
        {"MFU", "mfu"},
        {"memory/core", "memory_per_core_bytes"},
    };
    table *t = table_new(d, "summary.csv", SUM_COLS);
    for (int c = 0; c < SUM_COLS; c++)
        table_col(d, t, c, heads[c][0], heads[c][1]);
    for (int i = 0; i < s->n; i++)
        summary_row(d, t, s->results[i], s->names[i]);
    doc_text(d, BLK_HEADING, 2, "Summary");
    doc_table(d, t,
              "Parameters and FLOPs per sequence by the Table 9 convention; examples/s and "
              "tokens/s (input tokens) per step; MFU = training FLOPs / step time / pod peak "
              "bf16 FLOP/s; memory per core (parameters, gradients, optimizer state, "
              "activations, dispatch buffers) against the core's share of HBM.");
}

/* The banner: every figure is estimated; the distinct notes of the results. */
static void add_banner(doc *d, const report_set *s)
{
    sbuf b = {0};
    sb_puts(&b, "Every figure in this report is an estimate: a prediction of the switchsim "
                "simulator, not a measurement.");
    for (int i = 0; i < s->n; i++) {
        const char *note = jstr(s->results[i], "note");
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(note, jstr(s->results[j], "note")) == 0;
        if (*note && !seen)
            sb_printf(&b, " Note%s: %s.", s->n > 1 ? " (from the results)" : "", note);
    }
    if (b.failed)
        d->failed = 1;
    else
        doc_text(d, BLK_NOTE, 0, b.d);
    free(b.d);
}

/* ---- step-time breakdown ---------------------------------------------------------------- */

/* The classes of a breakdown object: compute kinds, exposed collective kinds, idle. */
typedef struct {
    const char *group, *key; /* "compute"/"exposed_comm"/NULL (idle), member key */
    char label[48];
} bclass;

enum { BCLASS_MAX = 16 };

/* The classes with a nonzero total in any of the breakdowns (plus idle when with_idle). */
static int breakdown_classes(bclass *out, const json_t *const *totals, int n, int with_idle)
{
    static const char *const groups[] = {"compute", "exposed_comm"};
    int k = 0;
    for (int g = 0; g < 2; g++) {
        const char *key;
        json_t *v;
        const json_t *first = NULL;
        for (int i = 0; i < n && !first; i++)
            first = json_object_get(totals[i], groups[g]);
        json_object_foreach((json_t *)first, key, v) {
            int used = 0;
            for (int i = 0; i < n; i++) {
                char path[96];
                snprintf(path, sizeof path, "%s.%s", groups[g], key);
                used |= jnum(totals[i], path) > 0;
            }
            if (!used || k == BCLASS_MAX - 1)
                continue;
            out[k].group = groups[g];
            out[k].key = key;
            snprintf(out[k].label, sizeof out[k].label, g == 0 ? "%s" : "%s (exposed)", key);
            k++;
        }
    }
    if (with_idle) {
        out[k].group = NULL;
        out[k].key = "idle";
        snprintf(out[k].label, sizeof out[k].label, "idle");
        k++;
    }
    return k;
}

static double class_value(const json_t *part, const bclass *c)
{
    if (!c->group) {
        const double v = jnum(part, "idle");
        return isfinite(v) ? v : 0;
    }
    char path[96];
    snprintf(path, sizeof path, "%s.%s", c->group, c->key);
    const double v = jnum(part, path);
    return isfinite(v) ? v : 0;
}

/* Breakdown table: one row per part (total/layers or results), one column per class. */
static table *breakdown_table(doc *d, const bclass *cls, int ncls, const json_t *const *parts,
                              const char *const *names, int n, const char *first_col)
{
    table *t = table_new(d, "breakdown.csv", ncls + 2);
    table_col(d, t, 0, first_col, first_col);
    for (int c = 0; c < ncls; c++) {
        char csv[80];
        snprintf(csv, sizeof csv, "%s%s_s", cls[c].group && !strcmp(cls[c].group, "exposed_comm")
                                                 ? "comm_" : "", cls[c].key);
        table_col(d, t, c + 1, cls[c].label, csv);
    }
    table_col(d, t, ncls + 1, "sum", "sum_s");
    for (int i = 0; i < n; i++) {
        const int row = table_row(d, t);
        table_set(d, t, row, 0, names[i], NULL);
        double sum = 0;
        for (int c = 0; c < ncls; c++) {
            const double v = class_value(parts[i], &cls[c]);
            sum += v;
            table_num(d, t, row, c + 1, v, fmt_si_cb, "s");
        }
        table_num(d, t, row, ncls + 1, sum, fmt_si_cb, "s");
    }
    return t;
}

/* Stacked bars of parts[0..n) over the classes. */
static void breakdown_chart(doc *d, const char *file, const char *title, const char *caption,
                            const bclass *cls, int ncls, const json_t *const *parts,
                            const char *const *names, int n, const char *x_label)
{
    double *values = malloc(sizeof(double) * ((size_t)n * (size_t)ncls + 1));
    const char *series[BCLASS_MAX];
    if (!values) {
        d->failed = 1;
        return;
    }
    for (int c = 0; c < ncls; c++)
        series[c] = cls[c].label;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < ncls; c++)
            values[(size_t)i * (size_t)ncls + (size_t)c] = class_value(parts[i], &cls[c]);
    const svg_bars_spec spec = {title, x_label, "time per step (s)", n, ncls, names, series,
                                values, NAN, NULL};
    svg_buf svg = {0};
    ss_err err = {0};
    const ss_status st = svg_stacked_bars(&svg, &spec, &err);
    doc_figure(d, file, caption, &svg, st, &err);
    free(values);
}

static void add_breakdown_one(doc *d, const json_t *r)
{
    const json_t *b = jget(r, "detail.breakdown");
    const json_t *total = json_object_get(b, "total"), *layers = json_object_get(b, "layers");
    if (!json_is_object(total) || !json_is_array(layers))
        return;
    const size_t nl = json_array_size(layers);
    const json_t **parts = malloc(sizeof *parts * (nl + 1));
    const char **names = malloc(sizeof *names * (nl + 1));
    if (!parts || !names) {
        free(parts);
        free(names);
        d->failed = 1;
        return;
    }
    parts[0] = total;
    names[0] = "total";
    for (size_t i = 0; i < nl; i++) {
        parts[i + 1] = json_array_get(layers, i);
        names[i + 1] = jstr(parts[i + 1], "name");
    }
    bclass cls[BCLASS_MAX];
    const int ncls = breakdown_classes(cls, &total, 1, 1);
    char title[400];
    doc_text(d, BLK_HEADING, 2, "Step-time breakdown");
    snprintf(title, sizeof title,
             "On the critical core (core %g, the one whose last op ends last), each instant of "
             "the step is compute (by op class), exposed communication (no compute runs; by "
             "collective kind) or idle. Concurrent ops share an instant equally.",
             jnum(r, "detail.critical_core"));
    doc_text(d, BLK_PARA, 0, title);
    breakdown_chart(d, "breakdown_total.svg", "Step time on the critical core (estimate)",
                    "Step time of the critical core by class.", cls, ncls, parts, names, 1,
                    "step");
    breakdown_chart(d, "breakdown_layers.svg", "Step time per layer, critical core (estimate)",
                    "Time per layer (enc.i encoder, dec.j decoder; other: embedding, output "
                    "layer, optimizer). Idle time belongs to no layer.",
                    cls, ncls - 1, parts + 1, names + 1, (int)nl, "layer");
    doc_table(d, breakdown_table(d, cls, ncls, parts, names, (int)nl + 1, "part"),
              "Time per class on the critical core: the step (total) and each layer.");
    free(parts);
    free(names);
}

static void add_breakdown_many(doc *d, const report_set *s)
{
    const json_t **parts = malloc(sizeof *parts * ((size_t)s->n + 1));
    const char **names = malloc(sizeof *names * ((size_t)s->n + 1));
    int n = 0;
    if (!parts || !names) {
        free(parts);
        free(names);
        d->failed = 1;
        return;
    }
    for (int i = 0; i < s->n; i++) {
        const json_t *t = jget(s->results[i], "detail.breakdown.total");
        if (json_is_object(t)) {
            parts[n] = t;
            names[n++] = s->names[i];
        }
    }
    if (n > 0) {
        bclass cls[BCLASS_MAX];
        const int ncls = breakdown_classes(cls, parts, n, 1);
        doc_text(d, BLK_HEADING, 2, "Step-time breakdown");
        breakdown_chart(d, "breakdown.svg", "Step time by class, critical core (estimate)",
                        "Each result's step on its critical core: compute by op class, exposed "
                        "communication by collective kind, idle.",
                        cls, ncls, parts, names, n, "result");
        doc_table(d, breakdown_table(d, cls, ncls, parts, names, n, "result"),
                  "Time per class on each result's critical core.");
    }
    free(parts);
    free(names);
}

/* ---- link heatmap ----------------------------------------------------------------------- */

static int coord(const json_t *link, const char *end, int dim)
{
    return (int)json_integer_value(json_array_get(json_object_get(link, end), (size_t)dim));
}

/* One heatmap per z slice; a chip's cell is the largest utilisation of its outgoing links. */
static void add_heatmaps(doc *d, const json_t *r)
{
    const json_t *links = jget(r, "detail.links"), *dims = jget(r, "detail.topology.dims");
    if (json_array_size(links) == 0 || json_array_size(dims) != 3)
        return; /* a single chip has no links */
    const int X = (int)json_integer_value(json_array_get(dims, 0));
    const int Y = (int)json_integer_value(json_array_get(dims, 1));
    const int Z = (int)json_integer_value(json_array_get(dims, 2));
    if (X < 1 || Y < 1 || Z < 1 || (double)X * Y * Z > 65536)
        return;
    double *cell = malloc(sizeof(double) * (size_t)X * (size_t)Y * (size_t)Z);
    char **rn = calloc((size_t)Y + (size_t)X, sizeof *rn);
    if (!cell || !rn) {
        free(cell);
        free(rn);
        d->failed = 1;
        return;
    }
    for (size_t i = 0; i < (size_t)X * Y * Z; i++)
        cell[i] = NAN;
    size_t i;
    const json_t *l;
    json_array_foreach(links, i, l) {
        const int x = coord(l, "src", 0), y = coord(l, "src", 1), z = coord(l, "src", 2);
        const double u = jnum(l, "utilization");
        if (x < 0 || x >= X || y < 0 || y >= Y || z < 0 || z >= Z || !isfinite(u))
            continue;
        double *c = &cell[((size_t)z * Y + y) * X + x];
        if (isnan(*c) || u > *c)
            *c = u;
    }
    double umax = 0;
    for (size_t k = 0; k < (size_t)X * Y * Z; k++)
        if (cell[k] > umax)
            umax = cell[k];
    for (int y = 0; y < Y; y++)
        rn[y] = xprintf("y=%d", y);
    for (int x = 0; x < X; x++)
        rn[Y + x] = xprintf("x=%d", x);
    doc_text(d, BLK_HEADING, 2, "Link utilisation");
    doc_text(d, BLK_PARA, 0,
             "Each cell is a chip at (x, y) of the torus, coloured by the largest utilisation "
             "(busy time / step time) of the links leaving it; links.csv lists every directed "
             "link.");
    for (int z = 0; z < Z && !d->failed; z++) {
        char title[96], file[48], caption[128];
        snprintf(title, sizeof title, "Link utilisation (estimate)");
        snprintf(file, sizeof file, "links.svg");
        if (Z > 1) {
            snprintf(title, sizeof title, "Link utilisation, slice z = %d (estimate)", z);
            snprintf(file, sizeof file, "links_z%d.svg", z);
        }
        snprintf(caption, sizeof caption,
                 "Largest outgoing-link utilisation of each chip%s.",
                 Z > 1 ? " in this slice" : "");
        const svg_heatmap_spec spec = {title, "x", "y", "link utilisation (fraction of step)",
                                       Y, X, cell + (size_t)z * X * Y,
                                       (const char *const *)rn, (const char *const *)rn + Y,
                                       0, umax > 0 ? umax : 1};
        svg_buf svg = {0};
        ss_err err = {0};
        const ss_status st = svg_heatmap(&svg, &spec, &err);
        doc_figure(d, file, caption, &svg, st, &err);
        if (Z > 1 && !d->failed && d->n > 0 && d->v[d->n - 1].kind == BLK_FIGURE)
            d->v[d->n - 1].level = 1; /* slices side by side in HTML */
    }
    for (int k = 0; k < X + Y; k++)
        free(rn[k]);
    free(rn);
    free(cell);
}

static int cmp_util_desc(const void *a, const void *b)
{
    const double x = jnum(*(const json_t *const *)a, "utilization");
    const double y = jnum(*(const json_t *const *)b, "utilization");
    if (x != y)
        return x > y ? -1 : 1;
    return (jnum(*(const json_t *const *)a, "id") > jnum(*(const json_t *const *)b, "id")) -
           (jnum(*(const json_t *const *)a, "id") < jnum(*(const json_t *const *)b, "id"));
}

static void link_cells(doc *d, table *t, int row, const json_t *l)
{
    char name[96];
    snprintf(name, sizeof name, "(%d,%d,%d) %s%s -> (%d,%d,%d)", coord(l, "src", 0),
             coord(l, "src", 1), coord(l, "src", 2), jstr(l, "dir"), jstr(l, "dim"),
             coord(l, "dst", 0), coord(l, "dst", 1), coord(l, "dst", 2));
    table_num(d, t, row, 0, jnum(l, "id"), fmt_int_cb, "");
    table_set(d, t, row, 1, name, NULL);
    table_num(d, t, row, 2, jnum(l, "bytes"), fmt_si_cb, "B");
    table_num(d, t, row, 3, jnum(l, "busy_s"), fmt_si_cb, "s");
    table_num(d, t, row, 4, jnum(l, "utilization"), fmt_pct_cb, "");
}

static table *links_table(doc *d, const char *file, const json_t *const *links, size_t n)
{
    static const char *const heads[5][2] = {{"id", "id"},
                                            {"link", "link"},
                                            {"bytes", "bytes"},
                                            {"busy", "busy_s"},
                                            {"utilisation", "utilization"}};
    table *t = table_new(d, file, 5);
    for (int c = 0; c < 5; c++)
        table_col(d, t, c, heads[c][0], heads[c][1]);
    for (size_t i = 0; i < n; i++)
        link_cells(d, t, table_row(d, t), links[i]);
    return t;
}

enum { TOP_LINKS = 10, TOP_ROOFLINE = 12 };

/* links.csv (every link) and the busiest links in the document. */
static void add_links_tables(doc *d, const json_t *r)
{
    const json_t *links = jget(r, "detail.links");
    const size_t n = json_array_size(links);
    if (n == 0)
        return;
    const json_t **v = malloc(sizeof *v * n);
    if (!v) {
        d->failed = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(links, i);
    table *all = links_table(d, "links.csv", v, n);
    qsort(v, n, sizeof *v, cmp_util_desc);
    table *top = links_table(d, "links_busiest.csv", v, n < TOP_LINKS ? n : TOP_LINKS);
    char caption[128];
    snprintf(caption, sizeof caption,
             "The %d busiest links (links.csv lists all %zu directed links).",
             n < TOP_LINKS ? (int)n : TOP_LINKS, n);
    doc_table(d, top, caption);
    /* the full table is written as CSV only: a block without display */
    block *b = doc_add(d, BLK_TABLE);
    if (!b) {
        table_free(all);
    } else {
        b->t = all;
        b->level = -1; /* CSV only */
    }
    free(v);
}

/* ---- expert load ------------------------------------------------------------------------ */

static int same_load(const json_t *a, const json_t *b)
{
    return json_equal(json_object_get(a, "tokens_per_expert"),
                      json_object_get(b, "tokens_per_expert")) &&
           jnum(a, "capacity") == jnum(b, "capacity");
}

static void expert_chart(doc *d, const json_t *layers, size_t first, int index)
{
    const json_t *l0 = json_array_get(layers, first);
    const json_t *tokens = json_object_get(l0, "tokens_per_expert");
    const size_t E = json_array_size(tokens);
    double *v = malloc(sizeof(double) * (E + 1));
    if (!v) {
        d->failed = 1;
        return;
    }
    for (size_t e = 0; e < E; e++)
        v[e] = json_number_value(json_array_get(tokens, e));
    sbuf names = {0};
    size_t i;
    const json_t *l;
    int count = 0;
    json_array_foreach(layers, i, l) {
        if (i >= first && same_load(l, l0)) {
            sb_printf(&names, "%s%s", count ? ", " : "", jstr(l, "name"));
            count++;
        }
    }
    char title[160], cap_label[64], file[48], first_names[64] = "";
    if (names.d)
        snprintf(first_names, sizeof first_names, "%s", names.d);
    if (count > 2) { /* "enc.1, enc.3, ... (6 layers)" */
        char *second = strchr(first_names, ',');
        second = second ? strchr(second + 1, ',') : NULL;
        if (second)
            snprintf(second, sizeof first_names - (size_t)(second - first_names),
                     ", ... (%d layers)", count);
    }
    snprintf(title, sizeof title, "Expert load, %s %s (dropped %.3g %%; estimate)",
             count > 1 ? "layers" : "layer", first_names, 100 * jnum(l0, "dropped_fraction"));
    snprintf(cap_label, sizeof cap_label, "capacity %g", jnum(l0, "capacity"));
    snprintf(file, sizeof file, "experts_%d.svg", index);
    char *caption = xprintf("Tokens each expert receives from one routing group of %g tokens "
                            "(%g routed choices), with the expert capacity; tokens above it "
                            "are dropped. Switch layer%s %s.",
                            jnum(l0, "group_tokens"), jnum(l0, "routed"), count > 1 ? "s" : "",
                            names.d ? names.d : "");
    const svg_bars_spec spec = {title, "expert", "tokens per routing group (tokens)", (int)E, 1,
                                NULL, NULL, v, jnum(l0, "capacity"), cap_label};
    svg_buf svg = {0};
    ss_err err = {0};
    const ss_status st = svg_stacked_bars(&svg, &spec, &err);
    doc_figure(d, file, caption ? caption : "", &svg, st, &err);
    free(caption);
    free(names.d);
    free(v);
}

static void add_experts(doc *d, const json_t *r)
{
    const json_t *el = jget(r, "detail.expert_load");
    const json_t *layers = json_object_get(el, "layers");
    const size_t n = json_array_size(layers);
    if (n == 0)
        return;
    doc_text(d, BLK_HEADING, 2, "Expert load");
    char para[256];
    snprintf(para, sizeof para,
             "Routing model: %s. %g experts, top-%g routing; layers with the same load share a "
             "chart. Dropped fraction = routed choices over capacity / routed choices.",
             jstr(r, "routing"), jnum(el, "num_experts"), jnum(el, "top_k"));
    doc_text(d, BLK_PARA, 0, para);
    int charts = 0;
    for (size_t i = 0; i < n && !d->failed; i++) {
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = same_load(json_array_get(layers, j), json_array_get(layers, i));
        if (!dup)
            expert_chart(d, layers, i, charts++);
    }
    static const char *const heads[6][2] = {
        {"Switch layer", "switch_layer"}, {"layer", "layer"},
        {"group tokens", "group_tokens"}, {"routed", "routed"},
        {"capacity", "capacity"},         {"dropped", "dropped_fraction"}};
    table *t = table_new(d, "switch_layers.csv", 6);
    table *load = table_new(d, "expert_load.csv", 5);
    for (int c = 0; c < 6; c++)
        table_col(d, t, c, heads[c][0], heads[c][1]);
    static const char *const lh[5] = {"layer", "expert", "tokens", "kept", "capacity"};
    for (int c = 0; c < 5; c++)
        table_col(d, load, c, lh[c], lh[c]);
    for (size_t i = 0; i < n; i++) {
        const json_t *l = json_array_get(layers, i);
        const int row = table_row(d, t);
        table_num(d, t, row, 0, jnum(l, "switch_layer"), fmt_int_cb, "");
        table_set(d, t, row, 1, jstr(l, "name"), NULL);
        table_num(d, t, row, 2, jnum(l, "group_tokens"), fmt_int_cb, "");
        table_num(d, t, row, 3, jnum(l, "routed"), fmt_int_cb, "");
        table_num(d, t, row, 4, jnum(l, "capacity"), fmt_int_cb, "");
        table_num(d, t, row, 5, jnum(l, "dropped_fraction"), fmt_pct_cb, "");
        const json_t *tok = json_object_get(l, "tokens_per_expert");
        const json_t *kept = json_object_get(l, "kept_per_expert");
        for (size_t e = 0; e < json_array_size(tok) && !d->failed; e++) {
            const int lr = table_row(d, load);
            table_set(d, load, lr, 0, jstr(l, "name"), NULL);
            table_num(d, load, lr, 1, (double)e, fmt_int_cb, "");
            table_num(d, load, lr, 2, json_number_value(json_array_get(tok, e)), fmt_int_cb, "");
            table_num(d, load, lr, 3, json_number_value(json_array_get(kept, e)), fmt_int_cb, "");
            table_num(d, load, lr, 4, jnum(l, "capacity"), fmt_int_cb, "");
        }
    }
    doc_table(d, t, "Per Switch layer: one routing group's tokens, routed choices, expert "
                    "capacity and dropped fraction (expert_load.csv: tokens per expert).");
    block *b = doc_add(d, BLK_TABLE);
    if (!b) {
        table_free(load);
    } else {
        b->t = load;
        b->level = -1; /* CSV only */
    }
}

/* ---- roofline --------------------------------------------------------------------------- */

static int cmp_seconds_desc(const void *a, const void *b)
{
    const double x = jnum(*(const json_t *const *)a, "seconds");
    const double y = jnum(*(const json_t *const *)b, "seconds");
    return (x < y) - (x > y);
}

static table *roofline_table(doc *d, const char *file, const json_t *const *p, size_t n)
{
    static const char *const heads[8][2] = {
        {"op group", "name"},  {"ops", "ops"},         {"FLOPs", "flops"},
        {"HBM bytes", "bytes"}, {"time", "seconds"},   {"FLOP/byte", "intensity"},
        {"FLOP/s", "flops_per_s"}, {"kind", "kind"}};
    table *t = table_new(d, file, 8);
    for (int c = 0; c < 8; c++)
        table_col(d, t, c, heads[c][0], heads[c][1]);
    for (size_t i = 0; i < n; i++) {
        const int row = table_row(d, t);
        table_set(d, t, row, 0, jstr(p[i], "name"), NULL);
        table_num(d, t, row, 1, jnum(p[i], "ops"), fmt_int_cb, "");
        table_num(d, t, row, 2, jnum(p[i], "flops"), fmt_si_cb, "FLOP");
        table_num(d, t, row, 3, jnum(p[i], "bytes"), fmt_si_cb, "B");
        table_num(d, t, row, 4, jnum(p[i], "seconds"), fmt_si_cb, "s");
        table_num(d, t, row, 5, jnum(p[i], "intensity"), fmt_g_cb, "");
        table_num(d, t, row, 6, jnum(p[i], "flops_per_s"), fmt_si_cb, "FLOP/s");
        table_set(d, t, row, 7, jstr(p[i], "kind"), NULL);
    }
    return t;
}

static void add_roofline(doc *d, const json_t *r)
{
    const json_t *rf = jget(r, "detail.roofline");
    const json_t *pts = json_object_get(rf, "points");
    const size_t n = json_array_size(pts);
    if (n == 0)
        return;
    const json_t **p = malloc(sizeof *p * n);
    const char **names = malloc(sizeof *names * n);
    double *x = malloc(sizeof(double) * n), *y = malloc(sizeof(double) * n);
    if (!p || !names || !x || !y) {
        d->failed = 1;
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        p[i] = json_array_get(pts, i);
    block *all = doc_add(d, BLK_TABLE); /* CSV only, every group in the result's order */
    if (all) {
        all->t = roofline_table(d, "roofline.csv", p, n);
        all->level = -1;
    }
    qsort(p, n, sizeof *p, cmp_seconds_desc);
    const size_t top = n < TOP_ROOFLINE ? n : TOP_ROOFLINE;
    for (size_t i = 0; i < top; i++) {
        names[i] = jstr(p[i], "name");
        x[i] = jnum(p[i], "intensity");
        y[i] = jnum(p[i], "flops_per_s");
    }
    doc_text(d, BLK_HEADING, 2, "Roofline");
    char para[480];
    snprintf(para, sizeof para,
             "The critical core's matmul and vector ops grouped by label (layer index removed; "
             ".dx/.dw are the backward products): FLOPs and HBM bytes as the timing models "
             "price them, achieved FLOP/s over the engine's op times. The %zu groups that take "
             "longest are drawn (roofline.csv lists all %zu). Roof: one core's peak bf16 FLOP/s "
             "and HBM bandwidth; the chip model's MXU efficiency is %.4g.",
             top, n, jnum(rf, "mxu_efficiency"));
    doc_text(d, BLK_PARA, 0, para);
    const svg_roofline_spec spec = {"Roofline of the critical core's ops (estimate)",
                                    jnum(rf, "core_peak_flops"), jnum(rf, "core_hbm_bytes_per_s"),
                                    (int)top, names, x, y};
    svg_buf svg = {0};
    ss_err err = {0};
    const ss_status st = svg_roofline(&svg, &spec, &err);
    doc_figure(d, "roofline.svg", "Achieved FLOP/s against arithmetic intensity, per op group.",
               &svg, st, &err);
    doc_table(d, roofline_table(d, "roofline_top.csv", p, top),
              "The op groups that take longest on the critical core.");
done:
    free(p);
    free(names);
    free(x);
    free(y);
}

/* ---- scaling curves --------------------------------------------------------------------- */

typedef struct {
    const char *key, *file, *axis, *short_name;
} scale_var;

static const scale_var scale_vars[] = {
    {"cores", "scaling_cores.svg", "cores", "cores"},
    {"num_experts", "scaling_experts.svg", "experts", "experts"},
    {"link_bandwidth_bytes_per_s", "scaling_link_bandwidth.svg", "link bandwidth (B/s)",
     "link bandwidth"},
};
enum { NVARS = 3 };

/* What a result is compared on for a chart over var: a curve joins results equal in all of
 * these and different in var. Items: the other two scaling quantities; inputs of the result
 * (the common ones, and per chart the ones that do not follow the quantity: a larger pod
 * brings its own layout and microbatches, another chip its own MXU efficiency, more experts
 * another model file); and, for sweep results, the swept keys except those that set or follow
 * the quantity. */
enum { DESC_MAX = 40 };

typedef struct {
    char name[64], value[96];
    int scale; /* 1: one of the scaling quantities ("128 experts" in labels) */
} desc_item;

typedef struct {
    desc_item v[DESC_MAX];
    int n;
} desc;

static const char *const desc_common[] = {"batch",       "input_length", "target_length",
                                          "routing",     "routing_zipf", "remat",
                                          "exact_counts", "grad_bf16",   "engine",
                                          "overlap_grad_reduce", "a2a_algo", "packet_bytes",
                                          NULL};
static const char *const desc_per_var[NVARS][3] = {
    {"model", "mxu_efficiency", NULL},        /* cores */
    {"microbatches", "mxu_efficiency", NULL}, /* experts */
    {"model", "microbatches", NULL},          /* link bandwidth */
};

/* Whether sweep key k sets or follows scaling quantity var. */
static int key_follows(int var, const char *k)
{
    switch (var) {
    case 0: return strncmp(k, "pod", 3) == 0 || strncmp(k, "plan.", 5) == 0;
    case 1: return strcmp(k, "model") == 0 || strcmp(k, "model.switch.num_experts") == 0;
    default:
        return strcmp(k, "pod") == 0 || strcmp(k, "pod.chip") == 0 ||
               strcmp(k, "pod.chip.link_gbps") == 0;
    }
}

static void value_text(char *buf, size_t cap, const json_t *v)
{
    if (!v)
        snprintf(buf, cap, "-");
    else if (json_is_string(v))
        snprintf(buf, cap, "%s", json_string_value(v));
    else if (json_is_number(v))
        snprintf(buf, cap, "%g", json_number_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
    else {
        char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(buf, cap, "%s", t ? t : "?");
        free(t);
    }
}

static void desc_add(desc *d, const char *name, const json_t *v, int scale)
{
    if (d->n == DESC_MAX)
        return;
    desc_item *it = &d->v[d->n++];
    snprintf(it->name, sizeof it->name, "%s", name);
    value_text(it->value, sizeof it->value, v);
    it->scale = scale;
}

static void desc_of(desc *d, const report_set *s, int i, int var)
{
    const json_t *r = s->results[i];
    d->n = 0;
    for (int o = 0; o < NVARS; o++) {
        if (o == var || d->n == DESC_MAX)
            continue;
        desc_item *it = &d->v[d->n++];
        snprintf(it->name, sizeof it->name, "%s", scale_vars[o].short_name);
        const double v = jnum(r, scale_vars[o].key);
        if (o == 2 && isfinite(v))
            fmt_si(it->value, sizeof it->value, v, "B/s");
        else
            fmt_si(it->value, sizeof it->value, v, "");
        it->scale = 1;
    }
    for (const char *const *k = desc_common; *k; k++)
        desc_add(d, *k, json_object_get(r, *k), 0);
    for (const char *const *k = desc_per_var[var]; *k; k++)
        desc_add(d, *k, json_object_get(r, *k), 0);
    const char *key;
    json_t *v;
    if (s->points && s->points[i])
        json_object_foreach(s->points[i], key, v)
            if (!key_follows(var, key))
                desc_add(d, key, v, 0);
}

static int desc_equal(const desc *a, const desc *b)
{
    if (a->n != b->n)
        return 0;
    for (int k = 0; k < a->n; k++)
        if (strcmp(a->v[k].name, b->v[k].name) != 0 || strcmp(a->v[k].value, b->v[k].value) != 0)
            return 0;
    return 1;
}

/* Whether result i can be drawn over var (x and throughput > 0, log axes). */
static int drawable(const report_set *s, int i, int var)
{
    return jnum(s->results[i], scale_vars[var].key) > 0 &&
           jnum(s->results[i], "examples_per_second") > 0;
}

/* The series of a chart over var: results with equal descriptions form one series;
 * series_of[i] is result i's series (-1: not drawable), first[j] the first result of
 * series j. descs[n] is scratch. Returns the number of series. */
static int group_series(const report_set *s, int var, int *series_of, int *first, desc *descs)
{
    int nser = 0;
    for (int i = 0; i < s->n; i++) {
        series_of[i] = -1;
        if (!drawable(s, i, var))
            continue;
        desc_of(&descs[i], s, i, var);
        int j = 0;
        while (j < nser && !desc_equal(&descs[first[j]], &descs[i]))
            j++;
        if (j == nser)
            first[nser++] = i;
        series_of[i] = j;
    }
    return nser;
}

/* The legend of the series of result i: the items of its description whose value is not the
 * same for every drawable result ("all results" when none). */
static void series_label(char *buf, size_t cap, const report_set *s, const desc *descs,
                         const int *series_of, int i)
{
    buf[0] = '\0';
    for (int k = 0; k < descs[i].n; k++) {
        const desc_item *it = &descs[i].v[k];
        int same = 1;
        for (int o = 0; o < s->n && same; o++) {
            if (series_of[o] < 0)
                continue;
            int found = 0;
            for (int q = 0; q < descs[o].n && !found; q++)
                found = strcmp(descs[o].v[q].name, it->name) == 0 &&
                        strcmp(descs[o].v[q].value, it->value) == 0;
            same = found;
        }
        /* a swept key "plan.microbatches" shows as "microbatches", once */
        const char *dot = strrchr(it->name, '.'), *shown = dot ? dot + 1 : it->name;
        for (int q = 0; q < k && !same; q++) {
            const char *qd = strrchr(descs[i].v[q].name, '.');
            same = strcmp(qd ? qd + 1 : descs[i].v[q].name, shown) == 0;
        }
        if (same)
            continue;
        const size_t n = strlen(buf);
        if (it->scale)
            snprintf(buf + n, cap - n, "%s%s %s", n ? ", " : "", it->value, shown);
        else
            snprintf(buf + n, cap - n, "%s%s=%s", n ? ", " : "", shown, it->value);
    }
    if (!buf[0])
        snprintf(buf, cap, "all results");
}

typedef struct {
    double x, y;
} xy;

static int cmp_xy(const void *a, const void *b)
{
    const xy *p = a, *q = b;
    if (p->x != q->x)
        return p->x < q->x ? -1 : 1;
    return (p->y > q->y) - (p->y < q->y);
}

/* Whether series j takes at least two different values of var: a curve. */
static int is_curve(const report_set *s, int var, const int *series_of, int j)
{
    double first = NAN;
    for (int i = 0; i < s->n; i++) {
        if (series_of[i] != j)
            continue;
        const double x = jnum(s->results[i], scale_vars[var].key);
        if (isnan(first))
            first = x;
        else if (x != first)
            return 1;
    }
    return 0;
}

/* Whether a chart over var has a curve: two results that differ in var only. */
static int varies(const report_set *s, int var)
{
    int *series_of = calloc((size_t)s->n + 1, sizeof *series_of);
    int *first = calloc((size_t)s->n + 1, sizeof *first), any = 0;
    desc *descs = calloc((size_t)s->n + 1, sizeof *descs);
    if (series_of && first && descs) {
        const int nser = group_series(s, var, series_of, first, descs);
        for (int j = 0; j < nser && !any; j++)
            any = is_curve(s, var, series_of, j);
    }
    free(series_of);
    free(first);
    free(descs);
    return any;
}

static void scaling_chart(doc *d, const report_set *s, int var)
{
    const size_t n1 = (size_t)s->n + 1;
    int *series_of = calloc(n1, sizeof *series_of), *first = calloc(n1, sizeof *first);
    desc *descs = calloc(n1, sizeof *descs);
    char (*labels)[256] = calloc(n1, sizeof *labels);
    xy *pts = malloc(sizeof *pts * n1);
    double *xs = malloc(sizeof(double) * n1), *ys = malloc(sizeof(double) * n1);
    const char **names = calloc(n1, sizeof *names);
    int *npts = calloc(n1, sizeof *npts), nser = 0;
    const double **xp = calloc(n1, sizeof *xp), **yp = calloc(n1, sizeof *yp);
    if (!series_of || !first || !descs || !labels || !pts || !xs || !ys || !names || !npts ||
        !xp || !yp) {
        d->failed = 1;
        goto done;
    }
    const int ngroups = group_series(s, var, series_of, first, descs);
    int used = 0;
    for (int j = 0; j < ngroups; j++) {
        if (!is_curve(s, var, series_of, j))
            continue; /* a lone point is no scaling curve */
        int m = 0;
        for (int i = 0; i < s->n; i++)
            if (series_of[i] == j)
                pts[m++] = (xy){jnum(s->results[i], scale_vars[var].key),
                                jnum(s->results[i], "examples_per_second")};
        qsort(pts, (size_t)m, sizeof *pts, cmp_xy);
        for (int k = 0; k < m; k++) {
            xs[used + k] = pts[k].x;
            ys[used + k] = pts[k].y;
        }
        series_label(labels[nser], sizeof labels[0], s, descs, series_of, first[j]);
        names[nser] = labels[nser];
        npts[nser] = m;
        xp[nser] = xs + used;
        yp[nser] = ys + used;
        nser++;
        used += m;
    }
    char title[128], caption[256];
    snprintf(title, sizeof title, "Throughput against %s (estimate)", scale_vars[var].short_name);
    snprintf(caption, sizeof caption,
             "Examples per second against %s (log axes): one line per set of results that "
             "differ in it only (scaling.csv lists every result).",
             scale_vars[var].axis);
    const svg_lines_spec spec = {title, scale_vars[var].axis, "throughput (examples/s)", 1, 1,
                                 nser, names, npts, xp, yp};
    svg_buf svg = {0};
    ss_err err = {0};
    const ss_status st = svg_lines(&svg, &spec, &err);
    doc_figure(d, scale_vars[var].file, caption, &svg, st, &err);
done:
    free(series_of);
    free(first);
    free(descs);
    free(labels);
    free(pts);
    free(xs);
    free(ys);
    free(names);
    free(npts);
    free(xp);
    free(yp);
}

static void add_scaling(doc *d, const report_set *s)
{
    int any = 0;
    for (int v = 0; v < NVARS; v++)
        any |= varies(s, v);
    if (!any)
        return;
    doc_text(d, BLK_HEADING, 2, "Scaling");
    for (int v = 0; v < NVARS && !d->failed; v++)
        if (varies(s, v))
            scaling_chart(d, s, v);
    static const char *const heads[6][2] = {
        {"result", "result"},         {"cores", "cores"},
        {"experts", "num_experts"},   {"link bandwidth", "link_bandwidth_bytes_per_s"},
        {"examples/s", "examples_per_second"}, {"tokens/s", "tokens_per_second"}};
    table *t = table_new(d, "scaling.csv", 6);
    for (int c = 0; c < 6; c++)
        table_col(d, t, c, heads[c][0], heads[c][1]);
    for (int i = 0; i < s->n; i++) {
        const json_t *r = s->results[i];
        const int row = table_row(d, t);
        table_set(d, t, row, 0, s->names[i], NULL);
        table_num(d, t, row, 1, jnum(r, "cores"), fmt_int_cb, "");
        table_num(d, t, row, 2, jnum(r, "num_experts"), fmt_int_cb, "");
        table_num(d, t, row, 3, jnum(r, "link_bandwidth_bytes_per_s"), fmt_si_cb, "B/s");
        table_num(d, t, row, 4, jnum(r, "examples_per_second"), fmt_g_cb, "");
        table_num(d, t, row, 5, jnum(r, "tokens_per_second"), fmt_si_cb, "");
    }
    doc_table(d, t, "The quantities the scaling curves are drawn from.");
}

static void add_failed_points(doc *d, const report_set *s)
{
    if (s->nfailed == 0)
        return;
    table *t = table_new(d, "failed.csv", 2);
    table_col(d, t, 0, "sweep point", "point");
    table_col(d, t, 1, "error", "error");
    for (int i = 0; i < s->nfailed; i++) {
        const int row = table_row(d, t);
        table_set(d, t, row, 0, s->failed[i], NULL);
        table_set(d, t, row, 1, s->errors[i], NULL);
    }
    doc_text(d, BLK_HEADING, 2, "Failed points");
    doc_table(d, t, "Sweep points that produced no result, with their errors.");
}

static void build_doc(doc *d, const report_set *s, const report_opts *o)
{
    doc_text(d, BLK_HEADING, 1, o && o->title ? o->title : "switchsim performance report");
    add_banner(d, s);
    add_summary(d, s);
    if (s->n == 1) {
        const json_t *r = s->results[0];
        if (!jget(r, "detail"))
            doc_text(d, BLK_PARA, 0,
                     "This result has no detail (breakdown, links, expert load, roofline): "
                     "write it with switchsim estimate --results FILE.");
        add_breakdown_one(d, r);
        add_heatmaps(d, r);
        add_links_tables(d, r);
        add_experts(d, r);
        add_roofline(d, r);
    } else {
        add_breakdown_many(d, s);
        add_scaling(d, s);
    }
    add_failed_points(d, s);
}

/* ---- rendering -------------------------------------------------------------------------- */

static const char *cell(const table *t, int row, int c, int raw)
{
    return t->cells[((size_t)row * (size_t)t->ncols + (size_t)c) * 2 + (size_t)raw];
}

/* Whether column c holds numbers only (its raw cells parse as numbers or are empty). */
static int numeric_col(const table *t, int c)
{
    for (int r = 0; r < t->nrows; r++) {
        const char *v = cell(t, r, c, 1);
        char *end = NULL;
        if (v && *v && (strtod(v, &end), *end != '\0'))
            return 0;
    }
    return 1;
}

static void render_csv(sbuf *b, const table *t)
{
    for (int c = 0; c < t->ncols; c++) {
        sb_puts(b, c ? "," : "");
        sb_csv(b, t->cols[c].csv_head);
    }
    sb_puts(b, "\n");
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            sb_puts(b, c ? "," : "");
            sb_csv(b, cell(t, r, c, 1) ? cell(t, r, c, 1) : "");
        }
        sb_puts(b, "\n");
    }
}

static void render_md_table(sbuf *b, const table *t, const char *caption)
{
    sb_printf(b, "%s (CSV: [%s](%s))\n\n", caption, t->file, t->file);
    for (int c = 0; c < t->ncols; c++) {
        sb_puts(b, "| ");
        sb_md_cell(b, t->cols[c].head);
        sb_puts(b, " ");
    }
    sb_puts(b, "|\n");
    for (int c = 0; c < t->ncols; c++)
        sb_puts(b, numeric_col(t, c) ? "|---:" : "|---");
    sb_puts(b, "|\n");
    for (int r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            sb_puts(b, "| ");
            sb_md_cell(b, cell(t, r, c, 0) ? cell(t, r, c, 0) : "");
            sb_puts(b, " ");
        }
        sb_puts(b, "|\n");
    }
    sb_puts(b, "\n");
}

static void render_md(sbuf *b, const doc *d)
{
    for (int i = 0; i < d->n; i++) {
        const block *k = &d->v[i];
        switch (k->kind) {
        case BLK_HEADING:
            sb_printf(b, "%.*s %s\n\n", k->level, "######", k->text);
            break;
        case BLK_PARA: sb_printf(b, "%s\n\n", k->text); break;
        case BLK_NOTE: sb_printf(b, "> **Estimates.** %s\n\n", k->text); break;
        case BLK_TABLE:
            if (k->level >= 0)
                render_md_table(b, k->t, k->text);
            break;
        case BLK_FIGURE: sb_printf(b, "![%s](%s)\n\n%s\n\n", k->file, k->file, k->text); break;
        }
    }
}

static const char html_style[] =
    "body{font-family:Helvetica,Arial,sans-serif;color:#222;margin:0;background:#fafafa}"
    "main{max-width:1180px;margin:0 auto;padding:16px 24px;background:#fff}"
    "h1{font-size:26px;margin:8px 0 12px}h2{font-size:20px;margin:28px 0 8px;"
    "border-bottom:1px solid #ddd;padding-bottom:4px}"
    "p{line-height:1.45;max-width:1000px}"
    ".note{background:#fff4d6;border-left:4px solid #e0a800;padding:8px 12px}"
    "table{border-collapse:collapse;margin:6px 0 18px;font-size:13px}"
    "th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}"
    "th{background:#f0f0f0}.t{text-align:left}td.t{white-space:normal;min-width:90px}"
    "caption{caption-side:top;text-align:left;font-size:13px;color:#444;padding:4px 0}"
    "figure{margin:12px 0 20px}figure svg{max-width:100%;height:auto}"
    "figcaption{font-size:13px;color:#444}"
    ".wide{overflow-x:auto}.grid{display:flex;flex-wrap:wrap;gap:8px 24px}"
    ".grid figure{margin:4px 0;max-width:560px}";

static void render_html_table(sbuf *b, const table *t, const char *caption)
{
    sb_puts(b, "<div class=\"wide\"><table><caption>");
    sb_xml(b, caption);
    sb_puts(b, " (CSV: ");
    sb_xml(b, t->file);
    sb_puts(b, ")</caption>\n<tr>");
    for (int c = 0; c < t->ncols; c++) {
        sb_puts(b, numeric_col(t, c) ? "<th>" : "<th class=\"t\">");
        sb_xml(b, t->cols[c].head);
        sb_puts(b, "</th>");
    }
    sb_puts(b, "</tr>\n");
    for (int r = 0; r < t->nrows; r++) {
        sb_puts(b, "<tr>");
        for (int c = 0; c < t->ncols; c++) {
            sb_puts(b, numeric_col(t, c) ? "<td>" : "<td class=\"t\">");
            sb_xml(b, cell(t, r, c, 0) ? cell(t, r, c, 0) : "");
            sb_puts(b, "</td>");
        }
        sb_puts(b, "</tr>\n");
    }
    sb_puts(b, "</table></div>\n");
}

/* Whether block i exists and is a figure laid out in a grid row (level 1). */
static int grid_figure(const doc *d, int i)
{
    return i >= 0 && i < d->n && d->v[i].kind == BLK_FIGURE && d->v[i].level == 1;
}

static void render_html(sbuf *b, const doc *d, const char *title)
{
    sb_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>");
    sb_xml(b, title);
    sb_printf(b, "</title><style>%s</style></head>\n<body><main>\n", html_style);
    for (int i = 0; i < d->n; i++) {
        const block *k = &d->v[i];
        switch (k->kind) {
        case BLK_HEADING:
            sb_printf(b, "<h%d>", k->level);
            sb_xml(b, k->text);
            sb_printf(b, "</h%d>\n", k->level);
            break;
        case BLK_PARA:
        case BLK_NOTE:
            sb_puts(b, k->kind == BLK_NOTE ? "<p class=\"note\"><strong>Estimates.</strong> "
                                           : "<p>");
            sb_xml(b, k->text);
            sb_puts(b, "</p>\n");
            break;
        case BLK_TABLE:
            if (k->level >= 0)
                render_html_table(b, k->t, k->text);
            break;
        case BLK_FIGURE:
            /* consecutive level-1 figures (heatmap slices) share one wrapping row */
            if (k->level == 1 && !grid_figure(d, i - 1))
                sb_puts(b, "<div class=\"grid\">\n");
            sb_puts(b, "<figure>");
            sb_puts(b, k->svg);
            sb_puts(b, "<figcaption>");
            sb_xml(b, k->text);
            sb_puts(b, " (");
            sb_xml(b, k->file);
            sb_puts(b, ")</figcaption></figure>\n");
            if (k->level == 1 && !grid_figure(d, i + 1))
                sb_puts(b, "</div>\n");
            break;
        }
    }
    sb_puts(b, "</main></body></html>\n");
}

/* ---- files ------------------------------------------------------------------------------ */

void report_files_free(report_files *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->files[i].data);
    free(f->files);
    memset(f, 0, sizeof *f);
}

/* Appends a file taking over b's text; -1 out of memory (b freed). */
static int files_add(report_files *f, const char *name, sbuf *b)
{
    report_file *grown = b->failed ? NULL : grow_array(f->files, &f->cap, f->n, sizeof *grown);
    if (!grown) {
        free(b->d);
        memset(b, 0, sizeof *b);
        return -1;
    }
    f->files = grown;
    report_file *r = &f->files[f->n++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->data = b->d ? b->d : xstrdup("");
    r->len = b->len;
    memset(b, 0, sizeof *b);
    return r->data ? 0 : -1;
}

static int add_outputs(report_files *f, const doc *d, const char *title)
{
    sbuf md = {0}, html = {0};
    render_md(&md, d);
    render_html(&html, d, title);
    int bad = files_add(f, "report.md", &md) | files_add(f, "report.html", &html);
    for (int i = 0; i < d->n && !bad; i++) {
        const block *k = &d->v[i];
        sbuf b = {0};
        if (k->kind == BLK_TABLE) {
            render_csv(&b, k->t);
            bad = files_add(f, k->t->file, &b);
        } else if (k->kind == BLK_FIGURE) {
            sb_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            sb_puts(&b, k->svg);
            sb_puts(&b, "\n");
            bad = files_add(f, k->file, &b);
        }
    }
    return bad ? -1 : 0;
}

ss_status report_render(report_files *out, const report_set *s, const report_opts *o,
                        ss_err *err)
{
    memset(out, 0, sizeof *out);
    if (s->n < 1 && s->nfailed < 1)
        return ss_err_set(err, SS_ERR_USAGE, "a report needs at least one result");
    doc d = {0};
    d.st = SS_OK;
    build_doc(&d, s, o);
    ss_status st = d.st;
    if (st != SS_OK)
        *err = d.err;
    else if (d.failed || add_outputs(out, &d, o && o->title ? o->title
                                                           : "switchsim performance report") != 0)
        st = ss_err_set(err, SS_ERR_NOMEM, "out of memory rendering the report");
    doc_free(&d);
    if (st != SS_OK)
        report_files_free(out);
    return st;
}

/* Writes every file into dir (existing) atomically, one by one. */
static ss_status write_files(const report_files *f, const char *dir, ss_err *err)
{
    for (int i = 0; i < f->n; i++) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, f->files[i].name) >= (int)sizeof path)
            return ss_err_set(err, SS_ERR_IO, "%s: path too long", dir);
        ss_status st = file_write_atomic(path, f->files[i].data, f->files[i].len, err);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

ss_status report_write(const report_set *s, const report_opts *o, const char *dir, ss_err *err)
{
    report_files f;
    ss_status st = report_render(&f, s, o, err);
    if (st != SS_OK)
        return st;
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            st = ss_err_set(err, SS_ERR_IO, "%s exists and is not a directory", dir);
        else
            st = write_files(&f, dir, err);
        report_files_free(&f);
        return st;
    }
    /* a new directory: build it under a temporary name, then rename it into place */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", dir) >= (int)sizeof tmp) {
        report_files_free(&f);
        return ss_err_set(err, SS_ERR_IO, "%s: path too long", dir);
    }
    if (!mkdtemp(tmp)) {
        report_files_free(&f);
        return ss_err_set(err, SS_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    }
    const mode_t mask = umask(0); /* mkdtemp makes it 0700: give it the usual mode */
    umask(mask);
    if (chmod(tmp, 0777 & ~mask) != 0)
        st = ss_err_set(err, SS_ERR_IO, "cannot chmod %s: %s", tmp, strerror(errno));
    if (st == SS_OK)
        st = write_files(&f, tmp, err);
    if (st == SS_OK && rename(tmp, dir) != 0)
        st = ss_err_set(err, SS_ERR_IO, "cannot rename %s to %s: %s", tmp, dir, strerror(errno));
    if (st != SS_OK)
        file_remove_tree(tmp);
    report_files_free(&f);
    return st;
}
