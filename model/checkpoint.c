/* This file implements the training checkpoint of checkpoint.h: encoding the header field by
 * field in little-endian order, streaming the float arrays through a fixed buffer while the
 * FNV-1a checksum runs over every byte, and reading with the checks in the documented order.
 *
 * Invariants: the encoding never depends on the host's byte order or struct layout; the
 * reader verifies the whole file's checksum (one pass) before it trusts or copies anything
 * (a second pass), so arrays are only written into once the file is known to be intact and
 * to match the caller's run.
 * reference: FNV-1a (Fowler, Noll, Vo), see checkpoint.h.
 */
#include "model/checkpoint.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "common/fileio.h"

#define FNV_PRIME UINT64_C(0x100000001b3)
#define CHUNK_FLOATS 16384 /* floats per buffered write or read */

uint64_t model_ckpt_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

uint64_t model_ckpt_model_hash(const model_cfg *cfg)
{
    json_t *j = cfg_to_json(&model_cfg_schema, cfg);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    SS_ASSERT(text); /* out of memory for a few hundred bytes */
    uint64_t h = model_ckpt_fnv1a(MODEL_CKPT_FNV_OFFSET, text, strlen(text));
    free(text);
    json_decref(j);
    return h;
}

size_t model_ckpt_file_bytes(uint64_t nparams, uint64_t opt_state_size)
{
    if (nparams > SIZE_MAX / 4 || opt_state_size > SIZE_MAX / 4)
        return SIZE_MAX;
    size_t a = (size_t)nparams * 4, b = (size_t)opt_state_size * 4;
    size_t fixed = MODEL_CKPT_HEADER_BYTES + 8;
    if (a > SIZE_MAX - fixed || b > SIZE_MAX - fixed - a)
        return SIZE_MAX;
    return fixed + a + b;
}

/* ---- little-endian encoding ---------------------------------------------------------------- */

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_f64(unsigned char *p, double x)
{
    uint64_t v;
    memcpy(&v, &x, sizeof v);
    put_u64(p, v);
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static double get_f64(const unsigned char *p)
{
    uint64_t v = get_u64(p);
    double x;
    memcpy(&x, &v, sizeof x);
    return x;
}

static void encode_header(unsigned char *b, const model_ckpt_header *h)
{
    memset(b, 0, MODEL_CKPT_HEADER_BYTES);
    memcpy(b, MODEL_CKPT_MAGIC, 8);
    put_u32(b + 8, MODEL_CKPT_VERSION);
    put_u32(b + 12, MODEL_CKPT_HEADER_BYTES);
    size_t name_len = strnlen(h->model_name, sizeof h->model_name - 1);
    memcpy(b + 16, h->model_name, name_len);
    put_u64(b + 80, h->model_hash);
    put_u64(b + 88, h->settings_hash);
    put_u64(b + 96, h->nparams);
    put_u32(b + 104, h->optimizer);
    put_u32(b + 108, h->rng.has_spare ? 1u : 0u);
    put_u64(b + 112, h->opt_state_size);
    put_u64(b + 120, h->step);
    put_u64(b + 128, h->seed);
    put_u64(b + 136, h->data_position);
    put_u64(b + 144, h->tokens);
    put_f64(b + 152, h->wall_seconds);
    for (int i = 0; i < 4; i++)
        put_u64(b + 160 + 8 * i, h->rng.s[i]);
    put_f64(b + 192, h->rng.has_spare ? h->rng.spare : 0.0);
}

/* The fields after magic, version and header size (which the reader checks first). */
static void decode_header(model_ckpt_header *h, const unsigned char *b)
{
    memset(h, 0, sizeof *h);
    memcpy(h->model_name, b + 16, 63);
    h->model_hash = get_u64(b + 80);
    h->settings_hash = get_u64(b + 88);
    h->nparams = get_u64(b + 96);
    h->optimizer = get_u32(b + 104);
    h->rng.has_spare = get_u32(b + 108) != 0;
    h->opt_state_size = get_u64(b + 112);
    h->step = get_u64(b + 120);
    h->seed = get_u64(b + 128);
    h->data_position = get_u64(b + 136);
    h->tokens = get_u64(b + 144);
    h->wall_seconds = get_f64(b + 152);
    for (int i = 0; i < 4; i++)
        h->rng.s[i] = get_u64(b + 160 + 8 * i);
    h->rng.spare = get_f64(b + 192);
}

/* ---- writing ------------------------------------------------------------------------------- */

/* Writes n bytes and folds them into *hash; 0 or -1. */
static int write_hashed(FILE *f, const void *p, size_t n, uint64_t *hash)
{
    *hash = model_ckpt_fnv1a(*hash, p, n);
    return fwrite(p, 1, n, f) == n ? 0 : -1;
}

static int write_floats(FILE *f, const float *x, uint64_t n, unsigned char *buf, uint64_t *hash)
{
    for (uint64_t i = 0; i < n; i += CHUNK_FLOATS) {
        size_t k = (size_t)(n - i < CHUNK_FLOATS ? n - i : CHUNK_FLOATS);
        for (size_t j = 0; j < k; j++) {
            uint32_t v;
            memcpy(&v, &x[i + j], sizeof v);
            put_u32(buf + 4 * j, v);
        }
        if (write_hashed(f, buf, 4 * k, hash) != 0)
            return -1;
    }
    return 0;
}

ss_status model_ckpt_write(const char *path, const model_ckpt_header *h, const float *params,
                           const float *opt_state, ss_err *err)
{
    SS_ASSERT(path && h && (params || h->nparams == 0) && (opt_state || h->opt_state_size == 0));
    if (model_ckpt_file_bytes(h->nparams, h->opt_state_size) == SIZE_MAX)
        return ss_err_set(err, SS_ERR_NOMEM, "%s: checkpoint of %llu + %llu floats is too big",
                          path, (unsigned long long)h->nparams,
                          (unsigned long long)h->opt_state_size);
    unsigned char *buf = malloc(4 * CHUNK_FLOATS);
    if (!buf)
        return ss_err_set(err, SS_ERR_NOMEM, "%s: out of memory for the write buffer", path);
    file_atomic a;
    ss_status st = file_atomic_open(&a, path, err);
    if (st != SS_OK) {
        free(buf);
        return st;
    }
    uint64_t hash = MODEL_CKPT_FNV_OFFSET;
    encode_header(buf, h);
    int bad = write_hashed(a.f, buf, MODEL_CKPT_HEADER_BYTES, &hash) ||
              write_floats(a.f, params, h->nparams, buf, &hash) ||
              write_floats(a.f, opt_state, h->opt_state_size, buf, &hash);
    if (!bad) {
        put_u64(buf, hash);
        bad = fwrite(buf, 1, 8, a.f) != 8;
    }
    free(buf);
    if (bad) {
        int saved = errno;
        file_atomic_abort(&a);
        return ss_err_set(err, SS_ERR_IO, "%s: cannot write checkpoint: %s", path,
                          strerror(saved));
    }
    return file_atomic_commit(&a, err);
}

/* ---- reading ------------------------------------------------------------------------------- */

static ss_status fail(ss_err *err, const char *path, const char *check, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "PATH: CHECK check failed: ..." with SS_ERR_DATA. */
static ss_status fail(ss_err *err, const char *path, const char *check, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ss_err_set(err, SS_ERR_DATA, "%s: %s check failed: %s", path, check, msg);
}

static ss_status open_sized(FILE **f, size_t *bytes, const char *path, ss_err *err)
{
    *f = fopen(path, "rb");
    if (!*f)
        return ss_err_set(err, SS_ERR_IO, "%s: cannot open checkpoint: %s", path,
                          strerror(errno));
    struct stat sb;
    if (fstat(fileno(*f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(*f);
        *f = NULL;
        return ss_err_set(err, SS_ERR_IO, "%s: not a regular file", path);
    }
    *bytes = (size_t)sb.st_size;
    return SS_OK;
}

static ss_status read_exact(FILE *f, void *p, size_t n, const char *path, ss_err *err)
{
    if (fread(p, 1, n, f) == n)
        return SS_OK;
    return ss_err_set(err, SS_ERR_IO, "%s: read failed%s", path,
                      ferror(f) ? "" : " (the file shrank while being read)");
}

/* Magic, version and header size of the first bytes (n of them were read). */
static ss_status check_prefix(const unsigned char *b, size_t n, const char *path, ss_err *err)
{
    if (n < 8 || memcmp(b, MODEL_CKPT_MAGIC, 8) != 0) {
        char got[17] = "";
        for (size_t i = 0; i < 8 && i < n; i++)
            snprintf(got + 2 * i, 3, "%02x", b[i]);
        return fail(err, path, "magic",
                    "expected the bytes \"%s\" (a switchsim checkpoint), got %s%s",
                    MODEL_CKPT_MAGIC, n ? "0x" : "an empty file", got);
    }
    if (n < 16)
        return fail(err, path, "size", "truncated: expected at least %u header bytes, got %zu",
                    MODEL_CKPT_HEADER_BYTES, n);
    uint32_t version = get_u32(b + 8);
    if (version != MODEL_CKPT_VERSION)
        return fail(err, path, "version", "expected format version %u, got %u", MODEL_CKPT_VERSION,
                    version);
    uint32_t hb = get_u32(b + 12);
    if (hb != MODEL_CKPT_HEADER_BYTES)
        return fail(err, path, "header size", "expected %u header bytes, got %u",
                    MODEL_CKPT_HEADER_BYTES, hb);
    if (n < MODEL_CKPT_HEADER_BYTES)
        return fail(err, path, "size", "truncated: expected at least %u header bytes, got %zu",
                    MODEL_CKPT_HEADER_BYTES, n);
    return SS_OK;
}

/* The FNV-1a of the first n bytes of f (from its start) against the 8 bytes after them. */
static ss_status check_sum(FILE *f, size_t n, const char *path, ss_err *err)
{
    unsigned char *buf = malloc(4 * CHUNK_FLOATS);
    if (!buf)
        return ss_err_set(err, SS_ERR_NOMEM, "%s: out of memory for the read buffer", path);
    uint64_t hash = MODEL_CKPT_FNV_OFFSET;
    ss_status st = fseek(f, 0, SEEK_SET) == 0
                       ? SS_OK
                       : ss_err_set(err, SS_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    for (size_t done = 0; st == SS_OK && done < n;) {
        size_t k = n - done < 4 * CHUNK_FLOATS ? n - done : 4 * CHUNK_FLOATS;
        st = read_exact(f, buf, k, path, err);
        hash = model_ckpt_fnv1a(hash, buf, k);
        done += k;
    }
    if (st == SS_OK)
        st = read_exact(f, buf, 8, path, err);
    if (st == SS_OK && get_u64(buf) != hash)
        st = fail(err, path, "checksum",
                  "expected FNV-1a 0x%016llx of the first %zu bytes, the file says 0x%016llx "
                  "(the file is corrupt)",
                  (unsigned long long)hash, n, (unsigned long long)get_u64(buf));
    free(buf);
    return st;
}

/* Reads and verifies the header; leaves f open (positioned after the header) on success. */
static ss_status read_verified(FILE **f, const char *path, model_ckpt_header *h, ss_err *err)
{
    size_t bytes = 0;
    ss_status st = open_sized(f, &bytes, path, err);
    if (st != SS_OK)
        return st;
    unsigned char b[MODEL_CKPT_HEADER_BYTES];
    size_t n = fread(b, 1, sizeof b, *f);
    st = check_prefix(b, n, path, err);
    if (st == SS_OK) {
        decode_header(h, b);
        size_t want = model_ckpt_file_bytes(h->nparams, h->opt_state_size);
        if (want != bytes)
            st = fail(err, path, "size",
                      "expected %zu bytes for %llu parameters and %llu optimizer-state floats, "
                      "got %zu (%s)",
                      want, (unsigned long long)h->nparams,
                      (unsigned long long)h->opt_state_size, bytes,
                      bytes < want ? "truncated" : "trailing bytes");
    }
    if (st == SS_OK)
        st = check_sum(*f, bytes - 8, path, err);
    if (st == SS_OK && fseek(*f, MODEL_CKPT_HEADER_BYTES, SEEK_SET) != 0)
        st = ss_err_set(err, SS_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    if (st != SS_OK) {
        fclose(*f);
        *f = NULL;
    }
    return st;
}

ss_status model_ckpt_read_header(const char *path, model_ckpt_header *h, ss_err *err)
{
    FILE *f = NULL;
    ss_status st = read_verified(&f, path, h, err);
    if (f)
        fclose(f);
    return st;
}

static ss_status mismatch_u64(ss_err *err, const char *path, const char *check, uint64_t want,
                              uint64_t got, const char *why)
{
    return fail(err, path, check, "expected %llu (this run), got %llu (the checkpoint)%s",
                (unsigned long long)want, (unsigned long long)got, why);
}

ss_status model_ckpt_match(const char *path, const model_ckpt_header *got,
                           const model_ckpt_header *want, ss_err *err)
{
    if (got->model_hash != want->model_hash || strcmp(got->model_name, want->model_name) != 0)
        return fail(err, path, "model",
                    "expected model '%s' (config hash 0x%016llx), got '%s' (config hash "
                    "0x%016llx): the checkpoint belongs to another model config",
                    want->model_name, (unsigned long long)want->model_hash, got->model_name,
                    (unsigned long long)got->model_hash);
    if (got->nparams != want->nparams)
        return mismatch_u64(err, path, "nparams", want->nparams, got->nparams, "");
    if (got->optimizer != want->optimizer)
        return mismatch_u64(err, path, "optimizer", want->optimizer, got->optimizer,
                            " (0 adafactor, 1 adamw)");
    if (got->opt_state_size != want->opt_state_size)
        return mismatch_u64(err, path, "state size", want->opt_state_size, got->opt_state_size,
                            " optimizer-state floats: the optimizer settings differ");
    if (got->seed != want->seed)
        return mismatch_u64(err, path, "seed", want->seed, got->seed, "");
    if (got->settings_hash != want->settings_hash)
        return fail(err, path, "settings",
                    "expected settings hash 0x%016llx, got 0x%016llx: the numerics, optimizer, "
                    "schedule, clipping, batch, sequence lengths or data differ from the run "
                    "that wrote the checkpoint",
                    (unsigned long long)want->settings_hash,
                    (unsigned long long)got->settings_hash);
    return SS_OK;
}

static ss_status read_floats(FILE *f, float *x, uint64_t n, unsigned char *buf, const char *path,
                             ss_err *err)
{
    for (uint64_t i = 0; i < n; i += CHUNK_FLOATS) {
        size_t k = (size_t)(n - i < CHUNK_FLOATS ? n - i : CHUNK_FLOATS);
        ss_status st = read_exact(f, buf, 4 * k, path, err);
        if (st != SS_OK)
            return st;
        for (size_t j = 0; j < k; j++) {
            uint32_t v = get_u32(buf + 4 * j);
            memcpy(&x[i + j], &v, sizeof v);
        }
    }
    return SS_OK;
}

ss_status model_ckpt_read(const char *path, const model_ckpt_header *want,
                          model_ckpt_header *got, float *params, float *opt_state, ss_err *err)
{
    FILE *f = NULL;
    ss_status st = read_verified(&f, path, got, err);
    if (st != SS_OK)
        return st;
    st = model_ckpt_match(path, got, want, err);
    unsigned char *buf = st == SS_OK ? malloc(4 * CHUNK_FLOATS) : NULL;
    if (st == SS_OK && !buf)
        st = ss_err_set(err, SS_ERR_NOMEM, "%s: out of memory for the read buffer", path);
    if (st == SS_OK)
        st = read_floats(f, params, got->nparams, buf, path, err);
    if (st == SS_OK)
        st = read_floats(f, opt_state, got->opt_state_size, buf, path, err);
    free(buf);
    fclose(f);
    return st;
}
