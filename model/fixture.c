/* This file implements fixture.h: the reader of the binary reference fixtures written by
 * tests/reference/gen_fixtures.py, and the runner that executes a fixture's kind (Switch
 * layer, attention, optimizer, whole T5 model with its optimizer steps) on the fixture's
 * inputs and compares the results with the fixture's expected outputs.
 *
 * Invariants: the reader validates every field before it allocates from it (lengths, counts
 * and sizes are bounded in fixture.h), so a corrupt file yields SS_ERR_DATA with the byte
 * offset of the bad field, never an overflow or a huge allocation; the checksum is verified
 * before anything else past the magic and version. The runner only reads the fixture; every
 * buffer it allocates is registered in its context and released on every path.
 * reference: fixture.h (the format); tests/reference/gen_fixtures.py (the PyTorch reference).
 */
#include "model/fixture.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "model/layers.h"
#include "model/linear.h"
#include "model/optim.h"
#include "model/switch_layer.h"
#include "model/t5.h"

/* ---- checksum ------------------------------------------------------------------------- */

uint32_t model_fixture_crc32(const uint8_t *buf, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= buf[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* ---- reader --------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *buf;
    size_t n;   /* bytes before the checksum */
    size_t off;
    size_t at;  /* start of the field read last: where messages point */
    const char *what;
    ss_err *err;
} cursor;

static ss_status bad(cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static ss_status bad(cursor *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ss_err_set(c->err, SS_ERR_DATA, "fixture %s: byte %zu: %s", c->what, c->at, msg);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads n raw bytes at the cursor; `field` names them when the file ends first. */
static ss_status take(cursor *c, size_t n, const char *field, const uint8_t **out)
{
    c->at = c->off;
    if (c->n - c->off < n)
        return bad(c, "truncated: %s needs %zu bytes, %zu left", field, n, c->n - c->off);
    *out = c->buf + c->off;
    c->off += n;
    return SS_OK;
}

static ss_status take_u32(cursor *c, const char *field, uint32_t *v)
{
    const uint8_t *p = NULL;
    ss_status st = take(c, 4, field, &p);
    if (st == SS_OK)
        *v = le32(p);
    return st;
}

static ss_status take_u8(cursor *c, const char *field, uint8_t *v)
{
    const uint8_t *p = NULL;
    ss_status st = take(c, 1, field, &p);
    if (st == SS_OK)
        *v = p[0];
    return st;
}

static int is_key_char(int ch)
{
    return isalnum(ch) || ch == '_';
}

static int is_name_char(int ch)
{
    return is_key_char(ch) || ch == '.';
}

/* A length-prefixed identifier ([A-Za-z0-9_]{1,max}) copied into out[max + 1]. */
static ss_status take_name(cursor *c, const char *field, size_t max, char *out)
{
    uint32_t len;
    const uint8_t *p = NULL;
    ss_status st = take_u32(c, field, &len);
    if (st != SS_OK)
        return st;
    if (len < 1 || len > max)
        return bad(c, "%s length %u is not in [1, %zu]", field, len, max);
    if ((st = take(c, len, field, &p)) != SS_OK)
        return st;
    for (uint32_t i = 0; i < len; i++)
        if (!is_name_char(p[i]))
            return bad(c, "%s has a character 0x%02x outside [A-Za-z0-9_.]", field, p[i]);
    memcpy(out, p, len);
    out[len] = '\0';
    return SS_OK;
}

/* One "key=value" line of text [s, e) into *pm. */
static ss_status parse_param_line(cursor *c, const char *s, const char *e,
                                  model_fixture_param *pm)
{
    const char *eq = memchr(s, '=', (size_t)(e - s));
    if (!eq)
        return bad(c, "parameter line '%.*s' has no '='", (int)(e - s), s);
    size_t klen = (size_t)(eq - s), vlen = (size_t)(e - eq - 1);
    if (klen < 1 || klen >= sizeof pm->key)
        return bad(c, "parameter key '%.*s' is empty or longer than %zu bytes", (int)klen, s,
                   sizeof pm->key - 1);
    if (vlen >= sizeof pm->value)
        return bad(c, "parameter '%.*s' has a value longer than %zu bytes", (int)klen, s,
                   sizeof pm->value - 1);
    for (size_t i = 0; i < klen; i++)
        if (!is_key_char((unsigned char)s[i]))
            return bad(c, "parameter key '%.*s' has a character outside [A-Za-z0-9_]",
                       (int)klen, s);
    for (size_t i = 0; i < vlen; i++)
        if (!isprint((unsigned char)eq[1 + i]))
            return bad(c, "parameter '%.*s' has a non-printable value", (int)klen, s);
    memcpy(pm->key, s, klen);
    pm->key[klen] = '\0';
    memcpy(pm->value, eq + 1, vlen);
    pm->value[vlen] = '\0';
    return SS_OK;
}

static ss_status parse_params(cursor *c, model_fixture *fx)
{
    uint32_t len;
    const uint8_t *p = NULL;
    ss_status st = take_u32(c, "params length", &len);
    if (st != SS_OK)
        return st;
    if (len > MODEL_FIXTURE_MAX_PARAMS_LEN)
        return bad(c, "params length %u exceeds %u", len, MODEL_FIXTURE_MAX_PARAMS_LEN);
    if ((st = take(c, len, "params", &p)) != SS_OK)
        return st;
    const char *s = (const char *)p, *end = s + len;
    if (len > 0 && end[-1] != '\n')
        return bad(c, "the params text does not end with a newline");
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += p[i] == '\n';
    fx->params = calloc(lines ? lines : 1, sizeof *fx->params);
    if (!fx->params)
        return ss_err_set(c->err, SS_ERR_NOMEM, "fixture %s: out of memory", c->what);
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        model_fixture_param *pm = &fx->params[fx->nparams];
        c->at = (size_t)((const uint8_t *)s - c->buf);
        if ((st = parse_param_line(c, s, nl, pm)) != SS_OK)
            return st;
        for (size_t i = 0; i < fx->nparams; i++)
            if (strcmp(fx->params[i].key, pm->key) == 0)
                return bad(c, "parameter '%s' is given twice", pm->key);
        fx->nparams++;
        s = nl + 1;
    }
    return SS_OK;
}

/* Role, dtype, rank, reserved byte and dims of tensor t. */
static ss_status parse_tensor_header(cursor *c, model_fixture_tensor *t)
{
    uint8_t role, dtype, rank, reserved;
    const size_t start = c->off;
    ss_status st = take_u8(c, "tensor role", &role);
    if (st == SS_OK)
        st = take_u8(c, "tensor dtype", &dtype);
    if (st == SS_OK)
        st = take_u8(c, "tensor rank", &rank);
    if (st == SS_OK)
        st = take_u8(c, "reserved byte", &reserved);
    if (st != SS_OK)
        return st;
    c->at = start;
    if (role > MODEL_FIXTURE_OUTPUT)
        return bad(c, "tensor '%s': unknown role %u (0 input, 1 output)", t->name, role);
    c->at = start + 1;
    if (dtype > MODEL_FIXTURE_I32)
        return bad(c, "tensor '%s': unknown dtype %u (0 f32, 1 i32)", t->name, dtype);
    c->at = start + 2;
    if (rank > MODEL_FIXTURE_MAX_RANK)
        return bad(c, "tensor '%s': rank %u exceeds %d", t->name, rank, MODEL_FIXTURE_MAX_RANK);
    c->at = start + 3;
    if (reserved != 0)
        return bad(c, "tensor '%s': reserved byte is %u, not 0", t->name, reserved);
    t->role = (model_fixture_role)role;
    t->dtype = (model_fixture_dtype)dtype;
    t->rank = rank;
    t->count = 1;
    for (int i = 0; i < MODEL_FIXTURE_MAX_RANK; i++)
        t->dims[i] = 1;
    for (int i = 0; i < t->rank; i++) {
        uint32_t d;
        if ((st = take_u32(c, "tensor dim", &d)) != SS_OK)
            return st;
        if (d < 1 || d > MODEL_FIXTURE_MAX_ELEMS || t->count * d > MODEL_FIXTURE_MAX_ELEMS)
            return bad(c, "tensor '%s': dim %d = %u gives no elements or more than %u", t->name,
                       i, d, MODEL_FIXTURE_MAX_ELEMS);
        t->dims[i] = d;
        t->count *= d;
    }
    return SS_OK;
}

static ss_status parse_tolerance(cursor *c, model_fixture_tensor *t)
{
    uint32_t bits;
    ss_status st = take_u32(c, "tensor tolerance", &bits);
    if (st != SS_OK)
        return st;
    memcpy(&t->tol, &bits, sizeof t->tol);
    const int needs_tol = t->role == MODEL_FIXTURE_OUTPUT && t->dtype == MODEL_FIXTURE_F32;
    if (needs_tol && !(t->tol > 0.0f && t->tol < 1.0f))
        return bad(c, "tensor '%s': tolerance %g is not in (0, 1)", t->name, (double)t->tol);
    if (!needs_tol && bits != 0)
        return bad(c, "tensor '%s': tolerance must be 0 for %s", t->name,
                   t->role == MODEL_FIXTURE_INPUT ? "an input" : "an i32 output");
    return SS_OK;
}

static ss_status parse_data(cursor *c, model_fixture_tensor *t)
{
    const uint8_t *p = NULL;
    ss_status st = take(c, t->count * 4, "tensor data", &p);
    if (st != SS_OK)
        return st;
    void *mem = malloc(t->count * 4);
    if (!mem)
        return ss_err_set(c->err, SS_ERR_NOMEM, "fixture %s: out of memory", c->what);
    if (t->dtype == MODEL_FIXTURE_F32)
        t->f32 = mem;
    else
        t->i32 = mem;
    for (size_t i = 0; i < t->count; i++) {
        uint32_t u = le32(p + 4 * i);
        if (t->dtype == MODEL_FIXTURE_I32) {
            memcpy(&t->i32[i], &u, 4);
            continue;
        }
        memcpy(&t->f32[i], &u, 4);
        c->at = (size_t)(p - c->buf) + 4 * i;
        if (!isfinite(t->f32[i]))
            return bad(c, "tensor '%s': element %zu is not finite", t->name, i);
    }
    return SS_OK;
}

static ss_status parse_tensor(cursor *c, model_fixture *fx)
{
    model_fixture_tensor *t = &fx->tensors[fx->ntensors];
    ss_status st = take_name(c, "tensor name", MODEL_FIXTURE_MAX_NAME, t->name);
    if (st != SS_OK)
        return st;
    for (size_t i = 0; i < fx->ntensors; i++)
        if (strcmp(fx->tensors[i].name, t->name) == 0)
            return bad(c, "tensor '%s' is given twice", t->name);
    fx->ntensors++; /* from here on its data is owned by fx */
    if ((st = parse_tensor_header(c, t)) == SS_OK && (st = parse_tolerance(c, t)) == SS_OK)
        st = parse_data(c, t);
    return st;
}

/* Magic, version and checksum; c->n is set to the bytes before the checksum. */
static ss_status check_envelope(cursor *c, size_t n)
{
    if (n < 8 || memcmp(c->buf, "SWFX", 4) != 0)
        return bad(c, "bad magic: not a switchsim fixture (expected \"SWFX\")");
    uint32_t version = le32(c->buf + 4);
    if (version != MODEL_FIXTURE_VERSION) {
        c->at = 4;
        return bad(c, "version %u is not supported (this reader knows %u)", version,
                   MODEL_FIXTURE_VERSION);
    }
    if (n < 12) {
        c->at = 8;
        return bad(c, "truncated: %zu bytes, too short for a fixture", n);
    }
    c->n = n - 4;
    uint32_t want = le32(c->buf + c->n), got = model_fixture_crc32(c->buf, c->n);
    if (want != got) {
        c->at = c->n;
        return bad(c, "bad checksum: stored 0x%08x, computed 0x%08x (corrupt or truncated)",
                   want, got);
    }
    c->off = 8;
    return SS_OK;
}

static ss_status parse_body(cursor *c, model_fixture *fx)
{
    uint32_t ntensors;
    ss_status st = take_name(c, "kind", MODEL_FIXTURE_MAX_KIND, fx->kind);
    if (st == SS_OK && strchr(fx->kind, '.'))
        st = bad(c, "kind '%s' has a '.'", fx->kind);
    if (st == SS_OK)
        st = parse_params(c, fx);
    if (st == SS_OK)
        st = take_u32(c, "tensor count", &ntensors);
    if (st != SS_OK)
        return st;
    if (ntensors < 1 || ntensors > MODEL_FIXTURE_MAX_TENSORS)
        return bad(c, "tensor count %u is not in [1, %u]", ntensors, MODEL_FIXTURE_MAX_TENSORS);
    fx->tensors = calloc(ntensors, sizeof *fx->tensors);
    if (!fx->tensors)
        return ss_err_set(c->err, SS_ERR_NOMEM, "fixture %s: out of memory", c->what);
    for (uint32_t i = 0; i < ntensors && st == SS_OK; i++)
        st = parse_tensor(c, fx);
    c->at = c->off;
    if (st == SS_OK && c->off != c->n)
        st = bad(c, "%zu unexpected bytes after the last tensor", c->n - c->off);
    return st;
}

ss_status model_fixture_parse(model_fixture *fx, const uint8_t *buf, size_t n, const char *what,
                              ss_err *err)
{
    SS_ASSERT(fx && (buf || n == 0) && what);
    memset(fx, 0, sizeof *fx);
    snprintf(fx->path, sizeof fx->path, "%s", what);
    cursor c = {buf, n, 0, 0, what, err};
    ss_status st = check_envelope(&c, n);
    if (st == SS_OK)
        st = parse_body(&c, fx);
    if (st != SS_OK)
        model_fixture_free(fx);
    return st;
}

ss_status model_fixture_load(model_fixture *fx, const char *path, ss_err *err)
{
    char *data = NULL;
    size_t len = 0;
    memset(fx, 0, sizeof *fx);
    ss_status st = file_read_all(path, MODEL_FIXTURE_MAX_FILE, &data, &len, err);
    if (st != SS_OK)
        return st;
    st = model_fixture_parse(fx, (const uint8_t *)data, len, path, err);
    free(data);
    return st;
}

void model_fixture_free(model_fixture *fx)
{
    if (!fx)
        return;
    for (size_t i = 0; i < fx->ntensors; i++) {
        free(fx->tensors[i].f32);
        free(fx->tensors[i].i32);
    }
    free(fx->tensors);
    free(fx->params);
    char path[sizeof fx->path];
    memcpy(path, fx->path, sizeof path);
    memset(fx, 0, sizeof *fx);
    memcpy(fx->path, path, sizeof path);
}

const model_fixture_tensor *model_fixture_find(const model_fixture *fx, const char *name)
{
    for (size_t i = 0; i < fx->ntensors; i++)
        if (strcmp(fx->tensors[i].name, name) == 0)
            return &fx->tensors[i];
    return NULL;
}

const char *model_fixture_param_str(const model_fixture *fx, const char *key)
{
    for (size_t i = 0; i < fx->nparams; i++)
        if (strcmp(fx->params[i].key, key) == 0)
            return fx->params[i].value;
    return NULL;
}

/* ---- runner context ------------------------------------------------------------------- */

enum { MAX_ALLOCS = 64, MAX_RESULTS = 1024 };

/* One array the C code produced, under the name a fixture output may have. */
typedef struct {
    const char *name;
    model_fixture_dtype dtype;
    size_t count;
    const float *f32;
    const int32_t *i32;
} result;

typedef struct {
    const model_fixture *fx;
    ss_err *err;
    void *allocs[MAX_ALLOCS];
    size_t nallocs;
    result res[MAX_RESULTS];
    size_t nres;
} run_ctx;

static ss_status run_error(run_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static ss_status run_error(run_ctx *c, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ss_err_set(c->err, SS_ERR_DATA, "fixture %s (kind %s): %s", c->fx->path, c->fx->kind,
                      msg);
}

/* A zeroed array of n elements of `size` bytes, freed with the context. */
static void *ctx_alloc(run_ctx *c, size_t n, size_t size)
{
    SS_ASSERT(c->nallocs < MAX_ALLOCS);
    void *p = calloc(n ? n : 1, size);
    if (p)
        c->allocs[c->nallocs++] = p;
    else
        ss_err_set(c->err, SS_ERR_NOMEM, "fixture %s: out of memory", c->fx->path);
    return p;
}

static void ctx_free(run_ctx *c)
{
    for (size_t i = 0; i < c->nallocs; i++)
        free(c->allocs[i]);
    c->nallocs = 0;
}

static void emit_f32(run_ctx *c, const char *name, const float *x, size_t n)
{
    SS_ASSERT(c->nres < MAX_RESULTS);
    c->res[c->nres++] = (result){name, MODEL_FIXTURE_F32, n, x, NULL};
}

static void emit_i32(run_ctx *c, const char *name, const int32_t *x, size_t n)
{
    SS_ASSERT(c->nres < MAX_RESULTS);
    c->res[c->nres++] = (result){name, MODEL_FIXTURE_I32, n, NULL, x};
}

/* A scalar result kept in the context. */
static ss_status emit_scalar_f32(run_ctx *c, const char *name, double v)
{
    float *x = ctx_alloc(c, 1, sizeof *x);
    if (!x)
        return SS_ERR_NOMEM;
    *x = (float)v;
    emit_f32(c, name, x, 1);
    return SS_OK;
}

static ss_status emit_scalar_i32(run_ctx *c, const char *name, int32_t v)
{
    int32_t *x = ctx_alloc(c, 1, sizeof *x);
    if (!x)
        return SS_ERR_NOMEM;
    *x = v;
    emit_i32(c, name, x, 1);
    return SS_OK;
}

/* ---- runner: parameters --------------------------------------------------------------- */

static ss_status param_need(run_ctx *c, const char *key, const char **v)
{
    *v = model_fixture_param_str(c->fx, key);
    return *v ? SS_OK : run_error(c, "missing parameter '%s'", key);
}

static ss_status param_long(run_ctx *c, const char *key, long min, long max, long *out)
{
    const char *v, *end;
    ss_status st = param_need(c, key, &v);
    if (st != SS_OK)
        return st;
    errno = 0;
    long x = strtol(v, (char **)&end, 10);
    if (errno || end == v || *end || x < min || x > max)
        return run_error(c, "parameter %s=%s is not an integer in [%ld, %ld]", key, v, min, max);
    *out = x;
    return SS_OK;
}

static ss_status param_size(run_ctx *c, const char *key, size_t *out)
{
    long x;
    ss_status st = param_long(c, key, 1, 1 << 20, &x);
    if (st == SS_OK)
        *out = (size_t)x;
    return st;
}

static ss_status param_int(run_ctx *c, const char *key, long min, long max, int *out)
{
    long x;
    ss_status st = param_long(c, key, min, max, &x);
    if (st == SS_OK)
        *out = (int)x;
    return st;
}

static ss_status param_double(run_ctx *c, const char *key, double *out)
{
    const char *v, *end;
    ss_status st = param_need(c, key, &v);
    if (st != SS_OK)
        return st;
    errno = 0;
    double x = strtod(v, (char **)&end);
    if (errno || end == v || *end || !isfinite(x))
        return run_error(c, "parameter %s=%s is not a finite number", key, v);
    *out = x;
    return SS_OK;
}

/* A parameter that may be absent: *out keeps its default then. */
static ss_status param_double_opt(run_ctx *c, const char *key, double *out)
{
    return model_fixture_param_str(c->fx, key) ? param_double(c, key, out) : SS_OK;
}

static ss_status param_int_opt(run_ctx *c, const char *key, long min, long max, int *out)
{
    return model_fixture_param_str(c->fx, key) ? param_int(c, key, min, max, out) : SS_OK;
}

/* Index of the value in choices (NULL-terminated); with dflt >= 0 the key may be absent. */
static ss_status param_choice(run_ctx *c, const char *key, const char *const *choices, int dflt,
                              int *out)
{
    const char *v = model_fixture_param_str(c->fx, key);
    if (!v && dflt >= 0) {
        *out = dflt;
        return SS_OK;
    }
    if (!v)
        return run_error(c, "missing parameter '%s'", key);
    for (int i = 0; choices[i]; i++)
        if (strcmp(v, choices[i]) == 0) {
            *out = i;
            return SS_OK;
        }
    char list[256] = "";
    for (int i = 0; choices[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "|" : "",
                 choices[i]);
    return run_error(c, "parameter %s=%s is not one of %s", key, v, list);
}

static const char *const bool_choices[] = {"0", "1", NULL};

static ss_status param_bool(run_ctx *c, const char *key, int *out)
{
    return param_choice(c, key, bool_choices, -1, out);
}

/* numerics=fp32|bf16 and denormals=keep|flush. */
static ss_status param_numerics(run_ctx *c, model_numerics *nx)
{
    static const char *const kinds[] = {"fp32", "bf16", NULL};
    static const char *const denormals[] = {"keep", "flush", NULL};
    int kind, den;
    ss_status st = param_choice(c, "numerics", kinds, -1, &kind);
    if (st == SS_OK)
        st = param_choice(c, "denormals", denormals, 0, &den);
    if (st == SS_OK)
        *nx = kind == 0 ? model_numerics_fp32() : model_numerics_bf16((bf16_denormals)den);
    return st;
}

/* ---- runner: inputs ------------------------------------------------------------------- */

static void shape_str(char *buf, size_t n, int rank, const size_t *dims)
{
    size_t off = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%zu", i ? "," : "", dims[i]);
    if (off < n)
        snprintf(buf + off, n - off, "]");
}

/* The input tensor `name` of the given dtype and shape; with optional, *out = NULL when it is
 * absent. */
static ss_status input_tensor(run_ctx *c, const char *name, model_fixture_dtype dtype, int rank,
                              const size_t *dims, int optional, const model_fixture_tensor **out)
{
    const model_fixture_tensor *t = model_fixture_find(c->fx, name);
    *out = NULL;
    if (!t)
        return optional ? SS_OK : run_error(c, "missing input tensor '%s'", name);
    int same = t->role == MODEL_FIXTURE_INPUT && t->dtype == dtype && t->rank == rank;
    for (int i = 0; same && i < rank; i++)
        same = t->dims[i] == dims[i];
    if (!same) {
        char want[96], got[96];
        shape_str(want, sizeof want, rank, dims);
        shape_str(got, sizeof got, t->rank, t->dims);
        return run_error(c, "tensor '%s' must be an %s input of shape %s; it is an %s %s of "
                         "shape %s", name, dtype == MODEL_FIXTURE_F32 ? "f32" : "i32", want,
                         t->dtype == MODEL_FIXTURE_F32 ? "f32" : "i32",
                         t->role == MODEL_FIXTURE_INPUT ? "input" : "output", got);
    }
    *out = t;
    return SS_OK;
}

/* A writable copy of an f32 input (NULL and an error when missing or misshapen). */
static float *input_copy(run_ctx *c, const char *name, int rank, size_t d0, size_t d1, size_t d2)
{
    const size_t dims[3] = {d0, d1, d2};
    const model_fixture_tensor *t;
    if (input_tensor(c, name, MODEL_FIXTURE_F32, rank, dims, 0, &t) != SS_OK)
        return NULL;
    float *x = ctx_alloc(c, t->count, sizeof *x);
    if (x)
        memcpy(x, t->f32, t->count * sizeof *x);
    return x;
}

/* ---- kind: switch_layer --------------------------------------------------------------- */

/* The routing settings both the switch_layer and t5_model kinds take (jitter off, no expert
 * dropout; the one capacity factor serves training and evaluation). */
static ss_status routing_params(run_ctx *c, model_switch_cfg *sw)
{
    static const char *const roundings[] = {"round", "truncate", NULL};
    static const char *const priorities[] = {"token_order", "batch_prioritized", NULL};
    static const char *const dtypes[] = {"fp32", "bf16", NULL};
    int rounding = 0, priority = 0, dtype = 0;
    double cf = 0.0;
    ss_status st = param_int(c, "top_k", 1, 1 << 20, &sw->top_k);
    if (st == SS_OK) st = param_double(c, "capacity_factor", &cf);
    if (st == SS_OK) st = param_int(c, "min_capacity", 0, 1 << 20, &sw->min_capacity);
    if (st == SS_OK) st = param_int(c, "group_size", 0, 1 << 20, &sw->group_size);
    if (st == SS_OK) st = param_choice(c, "capacity_rounding", roundings, -1, &rounding);
    if (st == SS_OK) st = param_choice(c, "drop_priority", priorities, -1, &priority);
    if (st == SS_OK) st = param_choice(c, "router_dtype", dtypes, -1, &dtype);
    if (st == SS_OK) st = param_double(c, "aux_alpha", &sw->aux_loss_alpha);
    if (st == SS_OK) st = param_double(c, "z_coef", &sw->z_loss_coef);
    if (st != SS_OK)
        return st;
    sw->capacity_factor_train = sw->capacity_factor_eval = cf;
    sw->capacity_rounding = (model_capacity_rounding)rounding;
    sw->drop_priority = (model_drop_priority)priority;
    sw->jitter = MODEL_JITTER_OFF;
    sw->router_dtype = (model_router_dtype)dtype;
    return SS_OK;
}

static const char *const ffn_choices[] = {"relu", "geglu", NULL};

static ss_status switch_spec(run_ctx *c, model_switch_spec *s, size_t *N)
{
    int ffn = 0;
    memset(s, 0, sizeof *s);
    ss_status st = param_size(c, "N", N);
    if (st == SS_OK) st = param_size(c, "C", &s->C);
    if (st == SS_OK) st = param_size(c, "F", &s->F);
    if (st == SS_OK) st = param_size(c, "E", &s->E);
    if (st == SS_OK) st = param_choice(c, "ffn", ffn_choices, -1, &ffn);
    if (st == SS_OK) st = routing_params(c, &s->sw);
    if (st == SS_OK) st = param_bool(c, "renormalize", &s->top_k_renormalize);
    if (st == SS_OK) st = param_bool(c, "aux_count_all", &s->aux_count_all_choices);
    if (st != SS_OK)
        return st;
    s->ffn = (model_ffn)ffn;
    s->sw.num_experts = (int)s->E;
    s->sw.every = 1;
    return SS_OK;
}

static void switch_emit(run_ctx *c, const model_switch_acts *a, const model_switch_plan *p,
                        const float *out, const float *dx, const float *dflat)
{
    const size_t N = p->N, C = p->spec.C, E = p->spec.E, k = p->k;
    model_switch_weights dw;
    model_switch_weights_bind(&dw, (float *)dflat, &p->spec);
    emit_f32(c, "out", out, N * C);
    emit_f32(c, "probs", a->probs, N * E);
    emit_f32(c, "gate", a->gate, N * k);
    emit_i32(c, "expert", a->expert, N * k);
    emit_i32(c, "slot", a->slot, N * k);
    emit_f32(c, "dx", dx, N * C);
    emit_f32(c, "dwr", dw.wr, C * E);
    emit_f32(c, "dwi", dw.wi, E * C * p->FI);
    emit_f32(c, "dwo", dw.wo, E * p->spec.F * C);
}

static ss_status run_switch(run_ctx *c)
{
    model_switch_spec spec;
    model_switch_plan plan;
    model_numerics nx;
    size_t N;
    ss_status st = switch_spec(c, &spec, &N);
    if (st == SS_OK)
        st = param_numerics(c, &nx);
    if (st == SS_OK && (st = model_switch_plan_make(&plan, &spec, N, 1, c->err)) != SS_OK)
        ss_err_prefix(c->err, "fixture %s", c->fx->path);
    if (st != SS_OK)
        return st;
    const size_t C = spec.C, E = spec.E, F = spec.F, FI = plan.FI;
    const size_t P = model_switch_param_count(&spec);
    float *x = input_copy(c, "x", 2, N, C, 0);
    float *dout = x ? input_copy(c, "dout", 2, N, C, 0) : NULL;
    float *wr = dout ? input_copy(c, "wr", 2, C, E, 0) : NULL;
    float *wi = wr ? input_copy(c, "wi", 3, E, C, FI) : NULL;
    float *wo = wi ? input_copy(c, "wo", 3, E, F, C) : NULL;
    float *flat = wo ? ctx_alloc(c, P, sizeof(float)) : NULL;
    float *dflat = flat ? ctx_alloc(c, P, sizeof(float)) : NULL;
    float *out = dflat ? ctx_alloc(c, N * C, sizeof(float)) : NULL;
    float *dx = out ? ctx_alloc(c, N * C, sizeof(float)) : NULL;
    void *mem = dx ? ctx_alloc(c, plan.acts_bytes, 1) : NULL;
    if (!mem)
        return c->err->code;
    model_switch_weights w, dw;
    model_switch_weights_bind(&w, flat, &spec);
    model_switch_weights_bind(&dw, dflat, &spec);
    memcpy(w.wr, wr, C * E * sizeof(float));
    memcpy(w.wi, wi, E * C * FI * sizeof(float));
    memcpy(w.wo, wo, E * F * C * sizeof(float));
    model_switch_acts acts;
    model_switch_stats stats;
    model_switch_acts_bind(&acts, mem, &plan);
    st = model_switch_forward(out, &acts, &stats, x, &w, &plan, NULL, &nx, c->err);
    if (st == SS_OK)
        st = model_switch_backward(dx, &dw, dout, 1.0f, 1.0f, &acts, &w, &plan, &nx, c->err);
    if (st == SS_OK)
        st = emit_scalar_i32(c, "capacity", (int32_t)plan.K);
    if (st == SS_OK)
        st = emit_scalar_f32(c, "aux_loss", stats.aux_loss);
    if (st == SS_OK)
        st = emit_scalar_f32(c, "z_loss", stats.z_loss);
    if (st == SS_OK)
        switch_emit(c, &acts, &plan, out, dx, dflat);
    return st;
}

/* ---- kind: attention ------------------------------------------------------------------ */

typedef struct {
    model_attn_dims d;
    int self, bias, bidirectional, num_buckets, max_distance;
} attn_setup;

static ss_status attn_params(run_ctx *c, attn_setup *a)
{
    memset(a, 0, sizeof *a);
    model_attn_dims *d = &a->d;
    ss_status st = param_size(c, "B", &d->B);
    if (st == SS_OK) st = param_size(c, "T", &d->T);
    if (st == SS_OK) st = param_size(c, "S", &d->S);
    if (st == SS_OK) st = param_size(c, "C", &d->C);
    if (st == SS_OK) st = param_size(c, "H", &d->H);
    if (st == SS_OK) st = param_size(c, "D", &d->D);
    if (st == SS_OK) st = param_bool(c, "causal", &d->causal);
    if (st == SS_OK) st = param_bool(c, "self", &a->self);
    if (st == SS_OK) st = param_bool(c, "bias", &a->bias);
    if (st == SS_OK && a->bias) {
        st = param_bool(c, "bidirectional", &a->bidirectional);
        if (st == SS_OK) st = param_int(c, "num_buckets", 1, 1 << 16, &a->num_buckets);
        if (st == SS_OK) st = param_int(c, "max_distance", 1, 1 << 20, &a->max_distance);
    }
    if (st != SS_OK)
        return st;
    if (a->self && d->S != d->T)
        return run_error(c, "self-attention needs S == T (S = %zu, T = %zu)", d->S, d->T);
    if (a->bias && (st = model_relpos_check(a->bidirectional, a->num_buckets, a->max_distance,
                                            c->err)) != SS_OK)
        ss_err_prefix(c->err, "fixture %s", c->fx->path);
    return st;
}

/* The optional i32 key mask [B,S] as bytes; *mask = NULL when the fixture has none. */
static ss_status attn_key_mask(run_ctx *c, const model_attn_dims *d, uint8_t **mask)
{
    const size_t dims[2] = {d->B, d->S};
    const model_fixture_tensor *t;
    *mask = NULL;
    ss_status st = input_tensor(c, "key_mask", MODEL_FIXTURE_I32, 2, dims, 1, &t);
    if (st != SS_OK || !t)
        return st;
    if (!(*mask = ctx_alloc(c, t->count, 1)))
        return SS_ERR_NOMEM;
    for (size_t i = 0; i < t->count; i++)
        (*mask)[i] = t->i32[i] != 0;
    return SS_OK;
}

/* Allocates the activations and gradients of one call. */
static ss_status attn_buffers(run_ctx *c, const model_attn_dims *d, model_attn_acts *a,
                              model_attn_grads *g)
{
    const size_t HD = d->H * d->D, NQ = d->B * d->T, NK = d->B * d->S;
    memset(a, 0, sizeof *a);
    a->q = ctx_alloc(c, NQ * HD, sizeof(float));
    a->k = a->q ? ctx_alloc(c, NK * HD, sizeof(float)) : NULL;
    a->v = a->k ? ctx_alloc(c, NK * HD, sizeof(float)) : NULL;
    a->att = a->v ? ctx_alloc(c, d->B * d->H * d->T * d->S, sizeof(float)) : NULL;
    a->y = a->att ? ctx_alloc(c, NQ * HD, sizeof(float)) : NULL;
    g->wq = a->y ? ctx_alloc(c, d->C * HD, sizeof(float)) : NULL;
    g->wk = g->wq ? ctx_alloc(c, d->C * HD, sizeof(float)) : NULL;
    g->wv = g->wk ? ctx_alloc(c, d->C * HD, sizeof(float)) : NULL;
    g->wo = g->wv ? ctx_alloc(c, HD * d->C, sizeof(float)) : NULL;
    return g->wo ? SS_OK : c->err->code;
}

static ss_status run_attention(run_ctx *c)
{
    attn_setup s;
    model_numerics nx;
    ss_status st = attn_params(c, &s);
    if (st == SS_OK)
        st = param_numerics(c, &nx);
    if (st != SS_OK)
        return st;
    const model_attn_dims *d = &s.d;
    const size_t B = d->B, T = d->T, S = d->S, C = d->C, H = d->H, HD = d->H * d->D;
    const size_t NB = (size_t)s.num_buckets;
    model_attn_weights w;
    float *xq = input_copy(c, "xq", 3, B, T, C);
    float *xkv = (xq && !s.self) ? input_copy(c, "xkv", 3, B, S, C) : xq;
    float *dout = xkv ? input_copy(c, "dout", 3, B, T, C) : NULL;
    w.wq = dout ? input_copy(c, "wq", 2, C, HD, 0) : NULL;
    w.wk = w.wq ? input_copy(c, "wk", 2, C, HD, 0) : NULL;
    w.wv = w.wk ? input_copy(c, "wv", 2, C, HD, 0) : NULL;
    w.wo = w.wv ? input_copy(c, "wo", 2, HD, C, 0) : NULL;
    float *table = (w.wo && s.bias) ? input_copy(c, "table", 2, NB, H, 0) : NULL;
    if (!w.wo || (s.bias && !table))
        return c->err->code;
    uint8_t *mask;
    model_attn_acts acts;
    model_attn_grads g;
    if ((st = attn_key_mask(c, d, &mask)) != SS_OK || (st = attn_buffers(c, d, &acts, &g)) != SS_OK)
        return st;
    float *out = ctx_alloc(c, B * T * C, sizeof(float));
    float *dxq = out ? ctx_alloc(c, B * T * C, sizeof(float)) : NULL;
    float *dxkv = dxq ? (s.self ? dxq : ctx_alloc(c, B * S * C, sizeof(float))) : NULL;
    float *bias = (dxkv && s.bias) ? ctx_alloc(c, H * T * S, sizeof(float)) : NULL;
    float *dbias = bias ? ctx_alloc(c, H * T * S, sizeof(float)) : NULL;
    float *dtable = dbias ? ctx_alloc(c, NB * H, sizeof(float)) : NULL;
    if (!dxkv || (s.bias && !dtable))
        return c->err->code;
    if (s.bias)
        st = model_relpos_bias_forward(bias, table, T, S, H, s.bidirectional, s.num_buckets,
                                       s.max_distance, c->err);
    if (st == SS_OK)
        st = model_attention_forward(out, &acts, xq, xkv, &w, bias, mask, d, NULL, &nx, c->err);
    if (st == SS_OK)
        st = model_attention_backward(dxq, dxkv, &g, dbias, dout, &acts, xq, xkv, &w, d, &nx,
                                      c->err);
    if (st != SS_OK)
        return st;
    if (s.bias) {
        model_relpos_bias_backward(dtable, dbias, T, S, H, s.bidirectional, s.num_buckets,
                                   s.max_distance);
        emit_f32(c, "dtable", dtable, NB * H);
    }
    emit_f32(c, "out", out, B * T * C);
    emit_f32(c, "att", acts.att, B * H * T * S);
    emit_f32(c, "dxq", dxq, B * T * C);
    if (!s.self)
        emit_f32(c, "dxkv", dxkv, B * S * C);
    emit_f32(c, "dwq", g.wq, C * HD);
    emit_f32(c, "dwk", g.wk, C * HD);
    emit_f32(c, "dwv", g.wv, C * HD);
    emit_f32(c, "dwo", g.wo, HD * C);
    return SS_OK;
}

/* ---- kind: optimizer ------------------------------------------------------------------ */

enum { MAX_OPT_TENSORS = 32 };

/* tensors=name:count:rows:cols,... into t[*n] with packed offsets; names are copied into the
 * context. */
static ss_status opt_tensors(run_ctx *c, model_tensor *t, size_t *n)
{
    const char *v;
    ss_status st = param_need(c, "tensors", &v);
    if (st != SS_OK)
        return st;
    char *copy = ctx_alloc(c, strlen(v) + 1, 1);
    if (!copy)
        return SS_ERR_NOMEM;
    strcpy(copy, v);
    size_t off = 0;
    *n = 0;
    for (char *item = strtok(copy, ","); item; item = strtok(NULL, ",")) {
        char name[48];
        unsigned long cnt, rows, cols;
        int used = 0;
        if (*n == MAX_OPT_TENSORS)
            return run_error(c, "more than %d tensors in 'tensors'", MAX_OPT_TENSORS);
        if (sscanf(item, "%47[A-Za-z0-9_]:%lu:%lu:%lu%n", name, &cnt, &rows, &cols, &used) != 4 ||
            item[used] != '\0' || cnt > 4096 || rows > 1 << 20 || cols > 1 << 20)
            return run_error(c, "'tensors' item '%s' is not name:count:rows:cols", item);
        char *colon = strchr(item, ':');
        *colon = '\0'; /* the item's name, kept in the context's copy */
        t[*n] = (model_tensor){item, off, cnt, rows, cols};
        off += model_tensor_size(&t[*n]);
        (*n)++;
    }
    if (*n == 0)
        return run_error(c, "'tensors' lists no tensor");
    if ((st = model_tensors_check(t, *n, off, c->err)) != SS_OK)
        ss_err_prefix(c->err, "fixture %s", c->fx->path);
    return st;
}

static ss_status adafactor_cfg(run_ctx *c, model_adafactor_cfg *a)
{
    *a = model_adafactor_cfg_t5x();
    ss_status st = param_int_opt(c, "factored", 0, 1, &a->factored);
    if (st == SS_OK)
        st = param_int_opt(c, "min_dim_size_to_factor", 1, 1 << 20, &a->min_dim_size_to_factor);
    if (st == SS_OK) st = param_int_opt(c, "factor_stacks", 0, 1, &a->factor_stacks);
    if (st == SS_OK) st = param_double_opt(c, "decay_rate", &a->decay_rate);
    if (st == SS_OK) st = param_double_opt(c, "epsilon1", &a->epsilon1);
    if (st == SS_OK) st = param_double_opt(c, "epsilon2", &a->epsilon2);
    if (st == SS_OK) st = param_double_opt(c, "clipping_threshold", &a->clipping_threshold);
    if (st == SS_OK)
        st = param_int_opt(c, "multiply_by_parameter_scale", 0, 1,
                           &a->multiply_by_parameter_scale);
    if (st == SS_OK) st = param_double_opt(c, "max_parameter_scale", &a->max_parameter_scale);
    if (st == SS_OK) st = param_double_opt(c, "beta1", &a->beta1);
    if (st == SS_OK) st = param_double_opt(c, "weight_decay", &a->weight_decay);
    if (st == SS_OK && (st = model_adafactor_cfg_check(a, c->err)) != SS_OK)
        ss_err_prefix(c->err, "fixture %s", c->fx->path);
    return st;
}

static ss_status adamw_cfg(run_ctx *c, model_adamw_cfg *a)
{
    *a = model_adamw_cfg_default();
    ss_status st = param_double_opt(c, "beta1", &a->beta1);
    if (st == SS_OK) st = param_double_opt(c, "beta2", &a->beta2);
    if (st == SS_OK) st = param_double_opt(c, "eps", &a->eps);
    if (st == SS_OK) st = param_double_opt(c, "weight_decay", &a->weight_decay);
    if (st == SS_OK && (st = model_adamw_cfg_check(a, c->err)) != SS_OK)
        ss_err_prefix(c->err, "fixture %s", c->fx->path);
    return st;
}

static ss_status run_optimizer(run_ctx *c)
{
    static const char *const kinds[] = {"adafactor", "adamw", NULL};
    model_tensor t[MAX_OPT_TENSORS];
    model_adafactor_cfg af;
    model_adamw_cfg aw;
    size_t n = 0, steps = 0;
    long step0 = 0;
    double lr = 0.0;
    int kind = 0;
    ss_status st = param_choice(c, "optimizer", kinds, -1, &kind);
    if (st == SS_OK) st = opt_tensors(c, t, &n);
    if (st == SS_OK) st = param_double(c, "lr", &lr);
    if (st == SS_OK) st = param_size(c, "steps", &steps);
    if (st == SS_OK) st = param_long(c, "step0", 0, 1L << 40, &step0);
    if (st == SS_OK) st = kind == 0 ? adafactor_cfg(c, &af) : adamw_cfg(c, &aw);
    if (st != SS_OK)
        return st;
    const size_t P = model_tensors_size(t, n);
    const size_t ns = kind == 0 ? model_adafactor_state_size(t, n, &af)
                                : model_adamw_state_size(t, n);
    float *params = input_copy(c, "params", 1, P, 0, 0);
    float *grads = params ? input_copy(c, "grads", 2, steps, P, 0) : NULL;
    float *state = grads ? ctx_alloc(c, ns, sizeof(float)) : NULL;
    if (!state)
        return c->err->code;
    for (size_t s = 0; s < steps; s++) {
        const uint64_t step = (uint64_t)step0 + s;
        if (kind == 0)
            model_adafactor_update(params, grads + s * P, state, t, n, step, (float)lr, &af);
        else
            model_adamw_update(params, grads + s * P, state, t, n, step, (float)lr, &aw);
    }
    emit_f32(c, "params_out", params, P);
    emit_f32(c, "state_out", state, ns);
    return SS_OK;
}

/* ---- kind: t5_model ------------------------------------------------------------------- */

static ss_status t5_params(run_ctx *c, model_cfg *m, model_t5_shape *sh, long *pad)
{
    int ffn = 0;
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "fixture");
    ss_status st = param_int(c, "B", 1, 1 << 16, &sh->B);
    if (st == SS_OK) st = param_int(c, "T_in", 1, 1 << 16, &sh->T_in);
    if (st == SS_OK) st = param_int(c, "T_out", 1, 1 << 16, &sh->T_out);
    if (st == SS_OK) st = param_int(c, "C", 1, 1 << 16, &m->d_model);
    if (st == SS_OK) st = param_int(c, "F", 1, 1 << 16, &m->d_ff);
    if (st == SS_OK) st = param_int(c, "D", 1, 1 << 16, &m->d_kv);
    if (st == SS_OK) st = param_int(c, "H", 1, 1 << 16, &m->num_heads);
    if (st == SS_OK) st = param_int(c, "Le", 1, 64, &m->encoder_layers);
    if (st == SS_OK) st = param_int(c, "Ld", 1, 64, &m->decoder_layers);
    if (st == SS_OK) st = param_int(c, "V", 1, 1 << 20, &m->vocab_size);
    if (st == SS_OK) st = param_choice(c, "ffn", ffn_choices, -1, &ffn);
    if (st == SS_OK) st = param_bool(c, "tied", &m->tied_embeddings);
    if (st == SS_OK)
        st = param_int(c, "num_buckets", 1, 1 << 16, &m->relative_attention_num_buckets);
    if (st == SS_OK)
        st = param_int(c, "max_distance", 1, 1 << 20, &m->relative_attention_max_distance);
    if (st == SS_OK) st = param_long(c, "pad_id", 0, 1 << 20, pad);
    if (st == SS_OK) st = param_bool(c, "switch", &m->has_switch);
    if (st == SS_OK && m->has_switch) {
        st = param_int(c, "E", 1, 1 << 16, &m->sw.num_experts);
        if (st == SS_OK) st = param_int(c, "every", 1, 64, &m->sw.every);
        if (st == SS_OK) st = routing_params(c, &m->sw);
    }
    m->ffn = (model_ffn)ffn;
    m->num_layers = m->encoder_layers > m->decoder_layers ? m->encoder_layers : m->decoder_layers;
    m->sw.init_scale = 0.1;
    return st;
}

/* The model's flat buffer x split into one result per tensor, named prefix + tensor name. */
static ss_status emit_per_tensor(run_ctx *c, const model_t5 *m, const char *prefix,
                                 const float *x)
{
    const size_t len = MODEL_FIXTURE_MAX_NAME + 1;
    char *names = ctx_alloc(c, m->ntensors, len);
    if (!names)
        return SS_ERR_NOMEM;
    for (size_t k = 0; k < m->ntensors; k++) {
        char *name = names + k * len;
        snprintf(name, len, "%s%s", prefix, m->tensors[k].name);
        if (c->nres == MAX_RESULTS)
            return run_error(c, "the model has more than %d tensors to compare", MAX_RESULTS);
        emit_f32(c, name, x + m->tensors[k].offset, model_tensor_size(&m->tensors[k]));
    }
    return SS_OK;
}

/* A copy of n floats kept in the context. */
static float *ctx_copy(run_ctx *c, const float *x, size_t n)
{
    float *y = ctx_alloc(c, n, sizeof *y);
    if (y)
        memcpy(y, x, n * sizeof *y);
    return y;
}

/* One update of a copy of the parameters with each optimizer, from the model's gradients. */
static ss_status t5_optimizer_steps(run_ctx *c, const model_t5 *m, float lr)
{
    const model_adafactor_cfg af = model_adafactor_cfg_t5x();
    const model_adamw_cfg aw = model_adamw_cfg_default();
    float *pa = ctx_copy(c, m->params, m->nparams);
    float *pw = pa ? ctx_copy(c, m->params, m->nparams) : NULL;
    float *sa = pw ? ctx_alloc(c, model_adafactor_state_size(m->tensors, m->ntensors, &af),
                               sizeof(float)) : NULL;
    float *sw = sa ? ctx_alloc(c, model_adamw_state_size(m->tensors, m->ntensors),
                               sizeof(float)) : NULL;
    if (!sw)
        return c->err->code;
    model_adafactor_update(pa, m->grads, sa, m->tensors, m->ntensors, 0, lr, &af);
    model_adamw_update(pw, m->grads, sw, m->tensors, m->ntensors, 0, lr, &aw);
    ss_status st = emit_per_tensor(c, m, "adafactor.", pa);
    return st == SS_OK ? emit_per_tensor(c, m, "adamw.", pw) : st;
}

/* Forward, backward, losses, routing decisions, gradients and the optimizer steps of m. */
static ss_status t5_run_model(run_ctx *c, model_t5 *m, float lr)
{
    const size_t B = (size_t)m->shape.B, Ti = (size_t)m->shape.T_in, To = (size_t)m->shape.T_out;
    const size_t din[2] = {B, Ti}, dout[2] = {B, To};
    const model_fixture_tensor *in, *dec, *tgt;
    float *params = input_copy(c, "params", 1, m->nparams, 0, 0);
    if (!params)
        return c->err->code;
    ss_status st = input_tensor(c, "inputs", MODEL_FIXTURE_I32, 2, din, 0, &in);
    if (st == SS_OK) st = input_tensor(c, "decoder_inputs", MODEL_FIXTURE_I32, 2, dout, 0, &dec);
    if (st == SS_OK) st = input_tensor(c, "targets", MODEL_FIXTURE_I32, 2, dout, 0, &tgt);
    if (st != SS_OK)
        return st;
    memcpy(m->params, params, m->nparams * sizeof(float));
    model_t5_zero_grad(m);
    model_t5_metrics met;
    st = model_t5_forward(m, in->i32, dec->i32, tgt->i32, 1, NULL, &met, c->err);
    if (st == SS_OK)
        st = model_t5_backward(m, c->err);
    if (st != SS_OK)
        return st;
    if ((st = emit_scalar_f32(c, "loss", met.loss)) != SS_OK ||
        (st = emit_scalar_f32(c, "aux_loss", met.aux_loss)) != SS_OK ||
        (st = emit_scalar_f32(c, "z_loss", met.z_loss)) != SS_OK ||
        (st = emit_scalar_f32(c, "total", met.total)) != SS_OK)
        return st;
    if (met.nswitch > 0) {
        const size_t n = met.choice_offset[met.nswitch];
        int32_t *choice = ctx_alloc(c, n, sizeof *choice);
        if (!choice)
            return SS_ERR_NOMEM;
        memcpy(choice, met.expert_choice, n * sizeof *choice);
        emit_i32(c, "expert_choice", choice, n);
    }
    const float *grads = ctx_copy(c, m->grads, m->nparams);
    if (!grads)
        return SS_ERR_NOMEM;
    st = emit_per_tensor(c, m, "grad.", grads);
    return st == SS_OK ? t5_optimizer_steps(c, m, lr) : st;
}

static ss_status run_t5(run_ctx *c)
{
    model_cfg cfg;
    model_t5_shape sh;
    model_numerics nx;
    model_t5 m;
    long pad = 0;
    double lr = 0.0;
    ss_status st = t5_params(c, &cfg, &sh, &pad);
    if (st == SS_OK) st = param_numerics(c, &nx);
    if (st == SS_OK) st = param_double(c, "lr", &lr);
    if (st != SS_OK)
        return st;
    if ((st = model_t5_init(&m, &cfg, sh, &nx, c->err)) != SS_OK) {
        ss_err_prefix(c->err, "fixture %s", c->fx->path);
        return st;
    }
    m.pad_id = (int32_t)pad;
    st = t5_run_model(c, &m, (float)lr);
    model_t5_free(&m);
    return st;
}

/* ---- comparison ----------------------------------------------------------------------- */

/* The float widened as its shortest decimal reads (1e-5f as 1e-5, not 9.99999975e-06), so
 * reports print the tolerance the generator wrote. */
static double float_as_decimal(float f)
{
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        if (strtof(buf, NULL) == f)
            break;
    }
    return strtod(buf, NULL);
}

static void compare_f32(model_fixture_row *row, const float *ref, const float *got, size_t n)
{
    double max_ref = 0.0, max_abs = 0.0, max_elem = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double r = ref[i], g = got[i], e = fabs(g - r);
        if (!isfinite(g)) {
            row->mismatches++;
            continue;
        }
        max_ref = fmax(max_ref, fabs(r));
        max_abs = fmax(max_abs, e);
        if (r != 0.0)
            max_elem = fmax(max_elem, e / fabs(r));
    }
    row->max_abs_err = row->mismatches ? INFINITY : max_abs;
    row->max_rel_err = row->mismatches ? INFINITY : max_ref > 0.0 ? max_abs / max_ref : max_abs;
    row->max_elem_rel = max_elem;
    row->pass = row->mismatches == 0 && row->max_rel_err <= row->tol;
}

static void compare_i32(model_fixture_row *row, const int32_t *ref, const int32_t *got, size_t n)
{
    double max_abs = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - (double)ref[i]);
        row->mismatches += e != 0.0;
        max_abs = fmax(max_abs, e);
    }
    row->max_abs_err = max_abs;
    row->max_rel_err = row->mismatches ? 1.0 : 0.0;
    row->pass = row->mismatches == 0;
}

static const result *find_result(const run_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->nres; i++)
        if (strcmp(c->res[i].name, name) == 0)
            return &c->res[i];
    return NULL;
}

static ss_status compare_outputs(run_ctx *c, model_fixture_report *rep)
{
    const model_fixture *fx = c->fx;
    size_t nout = 0;
    for (size_t i = 0; i < fx->ntensors; i++)
        nout += fx->tensors[i].role == MODEL_FIXTURE_OUTPUT;
    if (nout == 0)
        return run_error(c, "the fixture has no output tensor to compare");
    rep->rows = calloc(nout, sizeof *rep->rows);
    if (!rep->rows)
        return ss_err_set(c->err, SS_ERR_NOMEM, "fixture %s: out of memory", fx->path);
    rep->pass = 1;
    for (size_t i = 0; i < fx->ntensors; i++) {
        const model_fixture_tensor *t = &fx->tensors[i];
        if (t->role != MODEL_FIXTURE_OUTPUT)
            continue;
        const result *r = find_result(c, t->name);
        if (!r)
            return run_error(c, "output '%s' is not produced by this kind", t->name);
        if (r->dtype != t->dtype || r->count != t->count)
            return run_error(c, "output '%s' is %s with %zu elements; the C code produces %s "
                             "with %zu", t->name, t->dtype == MODEL_FIXTURE_F32 ? "f32" : "i32",
                             t->count, r->dtype == MODEL_FIXTURE_F32 ? "f32" : "i32", r->count);
        model_fixture_row *row = &rep->rows[rep->nrows++];
        snprintf(row->name, sizeof row->name, "%s", t->name);
        row->dtype = t->dtype;
        row->rank = t->rank;
        memcpy(row->dims, t->dims, sizeof row->dims);
        row->tol = t->dtype == MODEL_FIXTURE_F32 ? float_as_decimal(t->tol) : 0.0;
        if (t->dtype == MODEL_FIXTURE_F32)
            compare_f32(row, t->f32, r->f32, t->count);
        else
            compare_i32(row, t->i32, r->i32, t->count);
        rep->pass &= row->pass;
    }
    return SS_OK;
}

/* ---- runner --------------------------------------------------------------------------- */

typedef struct {
    const char *kind;
    ss_status (*run)(run_ctx *c);
} kind_entry;

static const kind_entry kinds[] = {
    {"switch_layer", run_switch},
    {"attention", run_attention},
    {"optimizer", run_optimizer},
    {"t5_model", run_t5},
};

ss_status model_fixture_run(model_fixture_report *rep, const model_fixture *fx, ss_err *err)
{
    SS_ASSERT(rep && fx && err);
    memset(rep, 0, sizeof *rep);
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.fx = fx;
    c.err = err;
    const kind_entry *k = NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].kind, fx->kind) == 0)
            k = &kinds[i];
    ss_status st;
    if (!k)
        st = ss_err_set(err, SS_ERR_DATA, "fixture %s: unknown kind '%s' (known: switch_layer, "
                        "attention, optimizer, t5_model)", fx->path, fx->kind);
    else if ((st = k->run(&c)) == SS_OK)
        st = compare_outputs(&c, rep);
    ctx_free(&c);
    if (st != SS_OK)
        model_fixture_report_free(rep);
    return st;
}

void model_fixture_report_free(model_fixture_report *rep)
{
    if (!rep)
        return;
    free(rep->rows);
    memset(rep, 0, sizeof *rep);
}
