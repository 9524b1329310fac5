/* This file implements emit.h: rendering one result object as a text table, CSV or JSON.
 *
 * Invariants: reals print in the table with 6 significant digits and in CSV with the fewest
 * digits that read back to the same double; strings in CSV are quoted when they hold a comma,
 * quote or newline (RFC 4180).
 */
#include "emit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The fewest digits that read back to d: fixed notation for magnitudes in [1e-4, 1e15)
 * (450 prints as 450, not 4.5e+02), scientific otherwise. */
static void shortest_real(char *buf, size_t n, double d)
{
    double a = fabs(d);
    if (isfinite(d) && (a == 0 || (a >= 1e-4 && a < 1e15))) {
        for (int p = 0; p <= 17; p++) {
            snprintf(buf, n, "%.*f", p, d);
            if (strtod(buf, NULL) == d)
                return;
        }
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

/* Formats a scalar into buf; precise selects round-trip precision for reals. */
static void scalar_text(char *buf, size_t n, const json_t *v, int precise)
{
    switch (json_typeof(v)) {
    case JSON_STRING: snprintf(buf, n, "%s", json_string_value(v)); break;
    case JSON_INTEGER: snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL: {
        double d = json_real_value(v);
        if (!precise) {
            if (d == floor(d) && fabs(d) < 1e15)
                snprintf(buf, n, "%.0f", d);
            else
                snprintf(buf, n, "%.6g", d);
            break;
        }
        shortest_real(buf, n, d);
        break;
    }
    case JSON_TRUE: snprintf(buf, n, "true"); break;
    case JSON_FALSE: snprintf(buf, n, "false"); break;
    case JSON_NULL: snprintf(buf, n, "-"); break;
    case JSON_ARRAY: {
        size_t used = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < json_array_size(v) && used + 1 < n; i++) {
            char item[64];
            scalar_text(item, sizeof item, json_array_get(v, i), precise);
            used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? " " : "", item);
        }
        break;
    }
    case JSON_OBJECT: snprintf(buf, n, "{...}"); break;
    }
}

static int is_table(const json_t *v)
{
    return json_is_array(v) && json_array_size(v) > 0 && json_is_object(json_array_get(v, 0));
}

typedef struct {
    char **keys;
    char **vals;
    size_t n, cap;
} kv_list;

static void kv_push(kv_list *l, const char *k, const char *v)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->keys = realloc(l->keys, l->cap * sizeof *l->keys);
        l->vals = realloc(l->vals, l->cap * sizeof *l->vals);
        if (!l->keys || !l->vals)
            abort();
    }
    l->keys[l->n] = strdup(k);
    l->vals[l->n] = strdup(v);
    l->n++;
}

static void kv_free(kv_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->keys[i]);
        free(l->vals[i]);
    }
    free(l->keys);
    free(l->vals);
}

/* Collects the scalar members of obj (flattening nested objects) into l. */
static void flatten(kv_list *l, const json_t *obj, const char *prefix, int precise)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        char full[256];
        snprintf(full, sizeof full, "%s%s%s", prefix, prefix[0] ? "." : "", key);
        if (is_table(v))
            continue;
        if (json_is_object(v)) {
            flatten(l, v, full, precise);
            continue;
        }
        char text[4096];
        scalar_text(text, sizeof text, v, precise);
        kv_push(l, full, text);
    }
}

static void csv_field(FILE *f, const char *s)
{
    if (strpbrk(s, ",\"\n\r") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* Prints an array of objects: columns are the keys of its first element. */
static void emit_rows(FILE *f, const char *name, const json_t *arr, emit_format fmt)
{
    kv_list head = {0};
    flatten(&head, json_array_get(arr, 0), "", 0);
    size_t ncol = head.n, nrow = json_array_size(arr);
    size_t *width = calloc(ncol ? ncol : 1, sizeof *width);
    char ***cells = calloc(nrow, sizeof *cells);
    if (!width || !cells)
        abort();
    for (size_t c = 0; c < ncol; c++)
        width[c] = strlen(head.keys[c]);
    for (size_t r = 0; r < nrow; r++) {
        kv_list row = {0};
        flatten(&row, json_array_get(arr, r), "", fmt == EMIT_CSV);
        cells[r] = calloc(ncol ? ncol : 1, sizeof **cells);
        if (!cells[r])
            abort();
        for (size_t c = 0; c < ncol; c++) {
            const char *v = "-";
            for (size_t k = 0; k < row.n; k++)
                if (strcmp(row.keys[k], head.keys[c]) == 0)
                    v = row.vals[k];
            cells[r][c] = strdup(v);
            if (strlen(v) > width[c])
                width[c] = strlen(v);
        }
        kv_free(&row);
    }
    if (fmt == EMIT_CSV) {
        fprintf(f, "\n# %s\n", name);
        for (size_t c = 0; c < ncol; c++) {
            if (c)
                fputc(',', f);
            csv_field(f, head.keys[c]);
        }
        fputc('\n', f);
        for (size_t r = 0; r < nrow; r++) {
            for (size_t c = 0; c < ncol; c++) {
                if (c)
                    fputc(',', f);
                csv_field(f, cells[r][c]);
            }
            fputc('\n', f);
        }
    } else {
        fprintf(f, "\n%s:\n", name);
        for (size_t c = 0; c < ncol; c++)
            fprintf(f, "  %*s", (int)width[c], head.keys[c]);
        fputc('\n', f);
        for (size_t r = 0; r < nrow; r++) {
            for (size_t c = 0; c < ncol; c++)
                fprintf(f, "  %*s", (int)width[c], cells[r][c]);
            fputc('\n', f);
        }
    }
    for (size_t r = 0; r < nrow; r++) {
        for (size_t c = 0; c < ncol; c++)
            free(cells[r][c]);
        free(cells[r]);
    }
    free(cells);
    free(width);
    kv_free(&head);
}

/* Visits every array-of-objects member, at any depth, in order. */
static void emit_tables(FILE *f, const json_t *obj, const char *prefix, emit_format fmt)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        char full[256];
        snprintf(full, sizeof full, "%s%s%s", prefix, prefix[0] ? "." : "", key);
        if (is_table(v))
            emit_rows(f, full, v, fmt);
        else if (json_is_object(v))
            emit_tables(f, v, full, fmt);
    }
}

/* JSON with reals in their shortest round-trip form (jansson always prints 17 digits, so
 * 0.1 would read 0.10000000000000001); strings are escaped by jansson. */
static void json_write(FILE *f, const json_t *v, int depth)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *item;
        int first = 1;
        if (json_object_size(v) == 0) {
            fputs("{}", f);
            break;
        }
        fputs("{\n", f);
        json_object_foreach((json_t *)v, key, item) {
            json_t *k = json_string(key);
            char *ks = json_dumps(k, JSON_ENCODE_ANY);
            fprintf(f, "%s%*s%s: ", first ? "" : ",\n", 2 * (depth + 1), "", ks);
            free(ks);
            json_decref(k);
            json_write(f, item, depth + 1);
            first = 0;
        }
        fprintf(f, "\n%*s}", 2 * depth, "");
        break;
    }
    case JSON_ARRAY: {
        if (json_array_size(v) == 0) {
            fputs("[]", f);
            break;
        }
        int scalars = !json_is_object(json_array_get(v, 0)) && !json_is_array(json_array_get(v, 0));
        fputs(scalars ? "[" : "[\n", f);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (scalars)
                fputs(i ? ", " : "", f);
            else
                fprintf(f, "%s%*s", i ? ",\n" : "", 2 * (depth + 1), "");
            json_write(f, json_array_get(v, i), depth + 1);
        }
        if (scalars)
            fputs("]", f);
        else
            fprintf(f, "\n%*s]", 2 * depth, "");
        break;
    }
    case JSON_REAL: {
        char buf[64];
        if (!isfinite(json_real_value(v))) {
            fputs("null", f); /* JSON has no NaN or Inf */
            break;
        }
        scalar_text(buf, sizeof buf, v, 1);
        fputs(buf, f); /* keep it a JSON real: 3 prints as 3.0 */
        if (!strpbrk(buf, ".eE"))
            fputs(".0", f);
        break;
    }
    case JSON_STRING: {
        char *s = json_dumps(v, JSON_ENCODE_ANY);
        fputs(s, f);
        free(s);
        break;
    }
    case JSON_INTEGER:
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL: {
        char buf[64];
        scalar_text(buf, sizeof buf, v, 1);
        fputs(json_is_null(v) ? "null" : buf, f);
        break;
    }
    }
}

int emit_result(FILE *f, const json_t *obj, emit_format fmt)
{
    if (fmt == EMIT_JSON) {
        json_write(f, obj, 0);
        fputc('\n', f);
        return ferror(f) ? -1 : 0;
    }
    kv_list l = {0};
    flatten(&l, obj, "", fmt == EMIT_CSV);
    if (fmt == EMIT_CSV) {
        for (size_t i = 0; i < l.n; i++) {
            if (i)
                fputc(',', f);
            csv_field(f, l.keys[i]);
        }
        if (l.n)
            fputc('\n', f);
        for (size_t i = 0; i < l.n; i++) {
            if (i)
                fputc(',', f);
            csv_field(f, l.vals[i]);
        }
        if (l.n)
            fputc('\n', f);
    } else {
        size_t w = 0;
        for (size_t i = 0; i < l.n; i++)
            if (strlen(l.keys[i]) > w)
                w = strlen(l.keys[i]);
        for (size_t i = 0; i < l.n; i++)
            fprintf(f, "%-*s  %s\n", (int)w, l.keys[i], l.vals[i]);
    }
    kv_free(&l);
    emit_tables(f, obj, "", fmt);
    return ferror(f) ? -1 : 0;
}
