/* This file implements the training data pipeline declared in data.h: reading and packing the
 * fortune corpus, T5 span corruption (lengths, noise mask, sentinel replacement), the held-out
 * split, per-epoch shuffling and batching.
 *
 * Invariants: every random draw comes from an rng_state seeded by stream_seed() from a seed
 * and the position of the draw (split, epoch order, or one example), never from state carried
 * between calls, so examples can be rebuilt in any order; the cached epoch order is a pure
 * function of (seed, epoch). Directory listings are sorted, so the packed corpus does not
 * depend on the file system's order. The noise-span count is clamped to the non-noise token
 * count, which only matters where T5's own code would fail (density near 0.5 with mean span 1).
 * reference: t5/data/preprocessors.py (random_spans_helper, random_spans_noise_mask,
 * _random_segmentation, noise_span_to_unique_sentinel, nonnoise_span_to_unique_sentinel).
 */
#include "model/data.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"

#define MAX_FILE_BYTES ((size_t)64 << 20)
#define MAX_INPUT_LENGTH (1 << 24)
#define PACKAGE_HINT "; install the Debian package fortunes (apt-get install fortunes)"

/* Tags that keep the rng streams of different purposes apart. */
enum { STREAM_SPLIT = 1, STREAM_ORDER, STREAM_EXAMPLE, STREAM_HELDOUT };

/* <extra_id_0>, the highest sentinel id; <extra_id_k> = SENTINEL_TOP - k. */
#define SENTINEL_TOP (MODEL_DATA_SENTINEL_FIRST + MODEL_DATA_NUM_SENTINELS - 1)

int32_t model_data_sentinel(int k)
{
    SS_ASSERT(k >= 0 && k < MODEL_DATA_NUM_SENTINELS);
    return SENTINEL_TOP - k;
}

int model_data_sentinel_index(int32_t id)
{
    if (id < MODEL_DATA_SENTINEL_FIRST || id > SENTINEL_TOP)
        return -1;
    return SENTINEL_TOP - id;
}

/* ---- corpus ------------------------------------------------------------------------------ */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

static int bytes_put(bytes *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
    return 0;
}

/* Appends one fortune (a slice of a file, trimmed of leading and trailing newlines), preceded
 * by the blank-line separator when it is not the first. Empty fortunes are dropped. */
static int pack_fortune(bytes *out, size_t *count, const char *s, size_t len)
{
    while (len > 0 && s[0] == '\n') {
        s++;
        len--;
    }
    while (len > 0 && s[len - 1] == '\n')
        len--;
    if (len == 0)
        return 0;
    if ((out->n > 0 && bytes_put(out, "\n", 1)) || bytes_put(out, s, len) ||
        bytes_put(out, "\n", 1))
        return -1;
    (*count)++;
    return 0;
}

static int is_separator(const char *line, size_t len)
{
    return (len == 1 && line[0] == '%') || (len == 2 && line[0] == '%' && line[1] == '\r');
}

/* Splits a fortune file at lines holding only "%" and packs each fortune. */
static int pack_file_text(bytes *out, size_t *count, const char *data, size_t len)
{
    size_t body = 0, line = 0;
    while (line < len) {
        const char *nl = memchr(data + line, '\n', len - line);
        size_t end = nl ? (size_t)(nl - data) : len;
        if (is_separator(data + line, end - line)) {
            if (pack_fortune(out, count, data + body, line - body))
                return -1;
            body = end + 1;
        }
        line = end + 1;
    }
    if (body < len)
        return pack_fortune(out, count, data + body, len - body);
    return 0;
}

static ss_status load_file(bytes *out, model_data_corpus *c, const char *path, ss_err *err)
{
    char *data;
    size_t len;
    ss_status st = file_read_all(path, MAX_FILE_BYTES, &data, &len, err);
    if (st != SS_OK)
        return st;
    if (memchr(data, '\0', len)) {
        free(data);
        return ss_err_set(err, SS_ERR_DATA,
                          "%s: holds NUL bytes: a binary file (a .dat index?), not fortunes",
                          path);
    }
    int bad = pack_file_text(out, &c->n_fortunes, data, len);
    free(data);
    if (bad)
        return ss_err_set(err, SS_ERR_NOMEM, "%s: out of memory packing the corpus", path);
    c->n_files++;
    return SS_OK;
}

static int has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcmp(name + n - k, suffix) == 0;
}

/* Directory entries that may be fortune files (subdirectories are weeded out by stat). */
static int is_candidate_name(const char *name)
{
    return name[0] != '.' && !has_suffix(name, ".dat") && !has_suffix(name, ".u8");
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The candidate names of directory dir, sorted. */
static ss_status list_dir(char ***names_out, size_t *n_out, const char *dir, ss_err *err)
{
    *names_out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d)
        return ss_err_set(err, SS_ERR_IO, "%s: cannot list the directory: %s", dir,
                          strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_candidate_name(e->d_name))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn)
                break;
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name)))
            break;
        n++;
    }
    int failed = e != NULL;
    closedir(d);
    if (failed) {
        free_names(names, n);
        return ss_err_set(err, SS_ERR_NOMEM, "%s: out of memory listing the directory", dir);
    }
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_names);
    *names_out = names;
    *n_out = n;
    return SS_OK;
}

static ss_status load_dir(bytes *out, model_data_corpus *c, const char *dir, ss_err *err)
{
    char **names;
    size_t n;
    ss_status st = list_dir(&names, &n, dir, err);
    for (size_t i = 0; st == SS_OK && i < n; i++) {
        char path[4096];
        struct stat sb;
        if (snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= (int)sizeof path)
            st = ss_err_set(err, SS_ERR_IO, "%s/%s: path too long", dir, names[i]);
        else if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
            st = load_file(out, c, path, err);
    }
    free_names(names, n);
    return st;
}

static const char *package_hint(const char *path)
{
    size_t k = strlen(MODEL_DATA_FORTUNES_DIR);
    return strncmp(path, MODEL_DATA_FORTUNES_DIR, k) == 0 && (path[k] == '\0' || path[k] == '/')
               ? PACKAGE_HINT
               : "";
}

static ss_status load_path(bytes *out, model_data_corpus *c, const char *path, ss_err *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return ss_err_set(err, SS_ERR_IO, "%s: fortune corpus not found (%s)%s", path,
                          strerror(errno), package_hint(path));
    return S_ISDIR(sb.st_mode) ? load_dir(out, c, path, err) : load_file(out, c, path, err);
}

ss_status model_data_corpus_load(model_data_corpus *c, const char *const *paths, size_t n_paths,
                                 ss_err *err)
{
    memset(c, 0, sizeof *c);
    if (n_paths == 0)
        return ss_err_set(err, SS_ERR_USAGE, "fortune corpus: no path given (the default is %s)",
                          MODEL_DATA_FORTUNES_DIR);
    bytes out = {0};
    ss_status st = SS_OK;
    for (size_t i = 0; st == SS_OK && i < n_paths; i++)
        st = load_path(&out, c, paths[i], err);
    if (st == SS_OK && c->n_fortunes == 0)
        st = ss_err_set(err, SS_ERR_DATA, "%s%s: no fortunes found in the fortune corpus%s",
                        paths[0], n_paths > 1 ? " (and the other paths)" : "",
                        package_hint(paths[0]));
    if (st != SS_OK) {
        free(out.p);
        memset(c, 0, sizeof *c);
        return st;
    }
    c->text = out.p;
    c->n_bytes = out.n;
    return SS_OK;
}

void model_data_corpus_free(model_data_corpus *c)
{
    free(c->text);
    memset(c, 0, sizeof *c);
}

/* ---- span corruption --------------------------------------------------------------------- */

/* T5's _tokens_length_to_inputs_length_targets_length: Python round() on binary64, which
 * rounds half to even like rint() in the default rounding mode. */
static void helper_io(long *in, long *tgt, long tokens, double density, double mean_span)
{
    long noise = (long)rint((double)tokens * density);
    long spans = (long)rint((double)noise / mean_span);
    *in = tokens - noise + spans + 1;
    *tgt = noise + spans + 1;
}

static ss_status check_span_params(double density, double mean_span, ss_err *err)
{
    if (!(density > 0.0 && density <= 0.5))
        return ss_err_set(err, SS_ERR_RANGE, "noise_density %g: must be in (0, 0.5]", density);
    if (!(mean_span >= 1.0 && mean_span <= 1e6))
        return ss_err_set(err, SS_ERR_RANGE, "mean_noise_span_length %g: must be in [1, 1e6]",
                          mean_span);
    return SS_OK;
}

ss_status model_data_span_lengths(int *raw_length, int *targets_length, int input_length,
                                  double density, double mean_span, ss_err *err)
{
    ss_status st = check_span_params(density, mean_span, err);
    if (st != SS_OK)
        return st;
    if (input_length < 2 || input_length > MAX_INPUT_LENGTH)
        return ss_err_set(err, SS_ERR_RANGE, "input_length %d: must be in [2, %d]",
                          input_length, MAX_INPUT_LENGTH);
    long tokens = input_length - 1, in, tgt;
    for (;;) {
        helper_io(&in, &tgt, tokens + 1, density, mean_span);
        if (in > input_length)
            break;
        tokens++;
    }
    helper_io(&in, &tgt, tokens, density, mean_span);
    if (density == 0.5 && tgt > in) { /* T5: keep targets no longer than the inputs */
        tokens--;
        tgt--;
    }
    *raw_length = (int)tokens;
    *targets_length = (int)tgt;
    return SS_OK;
}

model_data_span_counts model_data_noise_counts(size_t n, double density, double mean_span)
{
    model_data_span_counts c = {0, 0};
    if (density <= 0.0)
        return c;
    size_t L = n < 2 ? 2 : n;
    /* binary32 as TensorFlow: to_float(length) * noise_density, then tf.round (half even) */
    long noise = lrintf((float)L * (float)density);
    if (noise < 1)
        noise = 1;
    if ((size_t)noise > L - 1)
        noise = (long)L - 1;
    long spans = lrintf((float)noise / (float)mean_span);
    if (spans < 1)
        spans = 1;
    if ((size_t)spans > L - (size_t)noise)
        spans = (long)(L - (size_t)noise);
    if (spans > noise)
        spans = noise;
    c.noise_tokens = (size_t)noise;
    c.noise_spans = (size_t)spans;
    return c;
}

/* Fisher-Yates (Durstenfeld): a[] becomes a uniformly random permutation of itself. */
static void shuffle_u32(uint32_t *a, size_t n, rng_state *r)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* T5's _random_segmentation: len[segs] = a uniformly random composition of items into segs
 * positive parts, from a shuffled indicator of which of items-1 gaps start a new segment. */
static void segment(uint32_t *len, uint32_t *ind, size_t items, size_t segs, rng_state *r)
{
    SS_ASSERT(segs >= 1 && items >= segs);
    for (size_t i = 0; i + 1 < items; i++)
        ind[i] = i + 1 < segs;
    shuffle_u32(ind, items - 1, r);
    memset(len, 0, segs * sizeof *len);
    size_t s = 0;
    len[0] = 1;
    for (size_t i = 0; i + 1 < items; i++) {
        s += ind[i];
        len[s]++;
    }
}

void model_data_noise_mask(uint8_t *mask, uint32_t *scratch, size_t n, double density,
                           double mean_span, rng_state *r)
{
    if (n == 0)
        return;
    model_data_span_counts c = model_data_noise_counts(n, density, mean_span);
    if (c.noise_tokens == 0) {
        memset(mask, 0, n);
        return;
    }
    size_t L = n < 2 ? 2 : n, S = c.noise_spans;
    uint32_t *noise_len = scratch + L, *plain_len = noise_len + S;
    segment(noise_len, scratch, c.noise_tokens, S, r);
    segment(plain_len, scratch, L - c.noise_tokens, S, r);
    size_t pos = 0;
    for (size_t s = 0; s < S; s++) {
        for (uint32_t k = 0; k < plain_len[s]; k++, pos++)
            if (pos < n)
                mask[pos] = 0;
        for (uint32_t k = 0; k < noise_len[s]; k++, pos++)
            if (pos < n)
                mask[pos] = 1;
    }
    SS_ASSERT(pos == L);
}

/* T5's noise_span_to_unique_sentinel plus eos and padding: out[T] = tokens with each run of
 * positions where (mask != 0) == selected replaced by the next sentinel. */
static ss_status replace_spans(int32_t *out, size_t T, const int32_t *tokens,
                               const uint8_t *mask, size_t n, int selected, const char *row,
                               ss_err *err)
{
    size_t len = 0;
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        int sel = (mask[i] != 0) == selected;
        int32_t id = tokens[i];
        if (sel) {
            if (i > 0 && ((mask[i - 1] != 0) == selected))
                continue; /* inside a run: dropped */
            if (k == MODEL_DATA_NUM_SENTINELS)
                return ss_err_set(err, SS_ERR_RANGE,
                                  "span corruption: the %s need more than %d sentinels", row,
                                  MODEL_DATA_NUM_SENTINELS);
            id = model_data_sentinel(k++);
        }
        if (len < T)
            out[len] = id;
        len++;
    }
    if (len + 1 > T)
        return ss_err_set(err, SS_ERR_RANGE,
                          "span corruption: the %s need %zu tokens (eos included) but the row "
                          "holds %zu",
                          row, len + 1, T);
    out[len++] = MODEL_DATA_EOS_ID;
    for (; len < T; len++)
        out[len] = MODEL_DATA_PAD_ID;
    return SS_OK;
}

ss_status model_data_span_corrupt(int32_t *inputs, int32_t *targets, const int32_t *tokens,
                                  const uint8_t *mask, size_t n, size_t T_in, size_t T_out,
                                  ss_err *err)
{
    ss_status st = replace_spans(inputs, T_in, tokens, mask, n, 1, "inputs", err);
    if (st == SS_OK)
        st = replace_spans(targets, T_out, tokens, mask, n, 0, "targets", err);
    return st;
}

void model_data_shift_right(int32_t *dec, const int32_t *targets, size_t B, size_t T)
{
    for (size_t b = 0; b < B; b++) {
        if (T == 0)
            continue;
        dec[b * T] = MODEL_DATA_PAD_ID;
        memcpy(dec + b * T + 1, targets + b * T, (T - 1) * sizeof *dec);
    }
}

/* ---- dataset ----------------------------------------------------------------------------- */

model_data_cfg model_data_cfg_t5(int input_length, int target_length, uint64_t seed)
{
    model_data_cfg c = {
        .input_length = input_length,
        .target_length = target_length,
        .noise_density = 0.15,
        .mean_span = 3.0,
        .heldout_fraction = 0.05,
        .seed = seed,
        .split_seed = MODEL_DATA_SPLIT_SEED,
    };
    return c;
}

/* The SplitMix64 finaliser: a bijection of 64-bit words that mixes every bit. */
static uint64_t mix64(uint64_t z)
{
    z += UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* The seed of the rng stream for purpose `tag` at position (a, b) under `seed`. */
static uint64_t stream_seed(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b)
{
    return mix64(mix64(mix64(seed ^ mix64(tag)) ^ a) ^ b);
}

/* Resolves the lengths of cfg into ds (raw length, per-example counts, T_out). */
static ss_status resolve_lengths(model_data *ds, const model_data_cfg *cfg, ss_err *err)
{
    int helper_targets;
    ss_status st = model_data_span_lengths(&ds->raw_length, &helper_targets, cfg->input_length,
                                           cfg->noise_density, cfg->mean_span, err);
    if (st != SS_OK)
        return st;
    size_t R = (size_t)ds->raw_length;
    if (R < 2)
        return ss_err_set(err, SS_ERR_RANGE, "input_length %d: too short for span corruption",
                          cfg->input_length);
    ds->counts = model_data_noise_counts(R, cfg->noise_density, cfg->mean_span);
    if (ds->counts.noise_spans > MODEL_DATA_NUM_SENTINELS)
        return ss_err_set(err, SS_ERR_RANGE,
                          "input_length %d: span corruption makes %zu noise spans per example "
                          "but the vocabulary has %d sentinels",
                          cfg->input_length, ds->counts.noise_spans, MODEL_DATA_NUM_SENTINELS);
    ds->span_inputs = (int)(R - ds->counts.noise_tokens + ds->counts.noise_spans + 1);
    ds->span_targets = (int)(ds->counts.noise_tokens + ds->counts.noise_spans + 1);
    if (ds->span_inputs > cfg->input_length)
        return ss_err_set(err, SS_ERR_RANGE,
                          "input_length %d: span corruption of %zu raw tokens gives %d inputs; "
                          "choose another input_length",
                          cfg->input_length, R, ds->span_inputs);
    if (cfg->target_length < 0 || cfg->target_length > MAX_INPUT_LENGTH)
        return ss_err_set(err, SS_ERR_RANGE, "target_length %d: must be in [0, %d]",
                          cfg->target_length, MAX_INPUT_LENGTH);
    ds->cfg.target_length = cfg->target_length ? cfg->target_length : ds->span_targets;
    if (ds->span_targets > ds->cfg.target_length)
        return ss_err_set(err, SS_ERR_RANGE,
                          "target_length %d: span corruption with input_length %d makes %d "
                          "targets (eos included)",
                          cfg->target_length, cfg->input_length, ds->span_targets);
    return SS_OK;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Holds out the first n_heldout chunks of a permutation drawn from split_seed; both lists end
 * up in ascending chunk order. ds->order (n_chunks entries, unused until the first epoch) is
 * the work array: first the permutation, then a held-out flag per chunk. */
static void draw_split(model_data *ds)
{
    uint32_t *work = ds->order;
    for (size_t i = 0; i < ds->n_chunks; i++)
        work[i] = (uint32_t)i;
    rng_state r;
    rng_seed(&r, stream_seed(ds->cfg.split_seed, STREAM_SPLIT, 0, 0));
    shuffle_u32(work, ds->n_chunks, &r);
    memcpy(ds->heldout_chunks, work, ds->n_heldout * sizeof *work);
    qsort(ds->heldout_chunks, ds->n_heldout, sizeof *work, cmp_u32);
    memset(work, 0, ds->n_chunks * sizeof *work);
    for (size_t i = 0; i < ds->n_heldout; i++)
        work[ds->heldout_chunks[i]] = 1;
    size_t nt = 0;
    for (size_t i = 0; i < ds->n_chunks; i++)
        if (!work[i])
            ds->train_chunks[nt++] = (uint32_t)i;
    SS_ASSERT(nt == ds->n_train);
    ds->order_epoch = UINT64_MAX;
}

static ss_status split_chunks(model_data *ds, size_t n_bytes, ss_err *err)
{
    const model_data_cfg *cfg = &ds->cfg;
    if (!(cfg->heldout_fraction >= 0.0 && cfg->heldout_fraction <= 0.5))
        return ss_err_set(err, SS_ERR_RANGE, "heldout_fraction %g: must be in [0, 0.5]",
                          cfg->heldout_fraction);
    ds->n_chunks = n_bytes / (size_t)ds->raw_length;
    if (ds->n_chunks > UINT32_MAX)
        return ss_err_set(err, SS_ERR_RANGE, "corpus of %zu bytes: more than 2^32 chunks",
                          n_bytes);
    double h = rint(cfg->heldout_fraction * (double)ds->n_chunks);
    ds->n_heldout = (size_t)h;
    if (cfg->heldout_fraction > 0.0 && ds->n_heldout == 0)
        ds->n_heldout = 1;
    if (ds->n_chunks < ds->n_heldout + 1)
        return ss_err_set(err, SS_ERR_RANGE,
                          "corpus of %zu bytes: %zu chunks of %d raw tokens, too few for %zu "
                          "held-out and at least one training chunk",
                          n_bytes, ds->n_chunks, ds->raw_length, ds->n_heldout);
    ds->n_train = ds->n_chunks - ds->n_heldout;
    return SS_OK;
}

static ss_status alloc_arrays(model_data *ds, ss_err *err)
{
    size_t R = (size_t)ds->raw_length;
    ds->train_chunks = malloc(ds->n_train * sizeof *ds->train_chunks);
    ds->heldout_chunks = malloc((ds->n_heldout + 1) * sizeof *ds->heldout_chunks);
    ds->order = malloc(ds->n_chunks * sizeof *ds->order);
    ds->tokens = malloc(R * sizeof *ds->tokens);
    ds->mask = malloc(R);
    ds->seg = malloc(MODEL_DATA_MASK_SCRATCH(R) * sizeof *ds->seg);
    if (!ds->train_chunks || !ds->heldout_chunks || !ds->order || !ds->tokens || !ds->mask ||
        !ds->seg)
        return ss_err_set(err, SS_ERR_NOMEM, "data pipeline: out of memory for %zu chunks",
                          ds->n_chunks);
    return SS_OK;
}

ss_status model_data_init(model_data *ds, const model_data_corpus *corpus,
                          const model_data_cfg *cfg, ss_err *err)
{
    memset(ds, 0, sizeof *ds);
    ds->cfg = *cfg;
    ds->text = corpus->text;
    ss_status st = resolve_lengths(ds, cfg, err);
    if (st == SS_OK)
        st = split_chunks(ds, corpus->n_bytes, err);
    if (st == SS_OK)
        st = alloc_arrays(ds, err);
    if (st != SS_OK) {
        ss_err_prefix(err, "data pipeline");
        model_data_free(ds);
        return st;
    }
    draw_split(ds);
    return SS_OK;
}

void model_data_free(model_data *ds)
{
    free(ds->train_chunks);
    free(ds->heldout_chunks);
    free(ds->order);
    free(ds->tokens);
    free(ds->mask);
    free(ds->seg);
    memset(ds, 0, sizeof *ds);
}

/* Fills ds->order with epoch e's permutation of the training chunks (cached). */
static void ensure_order(model_data *ds, uint64_t epoch)
{
    if (ds->order_epoch == epoch)
        return;
    for (size_t i = 0; i < ds->n_train; i++)
        ds->order[i] = (uint32_t)i;
    rng_state r;
    rng_seed(&r, stream_seed(ds->cfg.seed, STREAM_ORDER, epoch, 0));
    shuffle_u32(ds->order, ds->n_train, &r);
    ds->order_epoch = epoch;
}

/* The chunk of example g and the seed of its noise stream. */
static void locate(size_t *chunk, uint64_t *stream, model_data *ds, model_data_split split,
                   uint64_t g)
{
    if (split == MODEL_DATA_TRAIN) {
        uint64_t epoch = g / ds->n_train, j = g % ds->n_train;
        ensure_order(ds, epoch);
        *chunk = ds->train_chunks[ds->order[j]];
        *stream = stream_seed(ds->cfg.seed, STREAM_EXAMPLE, epoch, j);
    } else {
        SS_ASSERT(ds->n_heldout > 0);
        uint64_t j = g % ds->n_heldout;
        *chunk = ds->heldout_chunks[j];
        *stream = stream_seed(ds->cfg.split_seed, STREAM_HELDOUT, 0, j);
    }
}

size_t model_data_chunk_of(model_data *ds, model_data_split split, uint64_t g)
{
    size_t chunk;
    uint64_t stream;
    locate(&chunk, &stream, ds, split, g);
    return chunk;
}

ss_status model_data_example(int32_t *inputs, int32_t *targets, model_data *ds,
                             model_data_split split, uint64_t g, ss_err *err)
{
    if (split == MODEL_DATA_HELDOUT && ds->n_heldout == 0)
        return ss_err_set(err, SS_ERR_RANGE,
                          "data pipeline: no held-out chunks (heldout_fraction is 0)");
    size_t chunk;
    uint64_t stream;
    locate(&chunk, &stream, ds, split, g);
    size_t R = (size_t)ds->raw_length;
    const uint8_t *src = ds->text + chunk * R;
    for (size_t i = 0; i < R; i++)
        ds->tokens[i] = src[i];
    rng_state r;
    rng_seed(&r, stream);
    model_data_noise_mask(ds->mask, ds->seg, R, ds->cfg.noise_density, ds->cfg.mean_span, &r);
    return model_data_span_corrupt(inputs, targets, ds->tokens, ds->mask, R,
                                   (size_t)ds->cfg.input_length,
                                   (size_t)ds->cfg.target_length, err);
}

ss_status model_data_batch(int32_t *inputs, int32_t *targets, int32_t *decoder_inputs,
                           model_data *ds, model_data_split split, uint64_t step, int B,
                           ss_err *err)
{
    if (B < 1 || step > UINT64_MAX / (uint64_t)B)
        return ss_err_set(err, SS_ERR_RANGE, "data pipeline: batch %d at step %llu: out of range",
                          B, (unsigned long long)step);
    size_t Ti = (size_t)ds->cfg.input_length, To = (size_t)ds->cfg.target_length;
    for (size_t b = 0; b < (size_t)B; b++) {
        ss_status st = model_data_example(inputs + b * Ti, targets + b * To, ds, split,
                                          step * (uint64_t)B + b, err);
        if (st != SS_OK)
            return st;
    }
    model_data_shift_right(decoder_inputs, targets, (size_t)B, To);
    return SS_OK;
}
