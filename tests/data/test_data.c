/* This file implements the tests of the training data pipeline (model/data.c): the vocabulary
 * layout, T5's span-corruption lengths (512 -> 568 raw tokens, 114 targets), noise counts with
 * TensorFlow's half-to-even rounding, the structure and statistics of noise masks, sentinel
 * replacement and exact reconstruction, the held-out split, epoch shuffling, determinism,
 * resume, batching, and corpus loading (the committed tiny corpus in tests/data/corpus/, a
 * temporary directory with files that must be skipped, missing corpora, and the Debian package
 * fortunes when it is installed).
 *
 * Invariants: the expected lengths were worked out by hand from T5's formulas (written out in
 * the comments), not by calling the code under test; reconstruction is checked by an
 * independent decoder of the sentinel format written here. Statistical checks use fixed seeds
 * and limits several standard errors wide (stated at each check), so they are deterministic
 * and still fail for a biased segmentation or a wrong noise count.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/rng.h"
#include "model/data.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static void corpus_path(char *out, size_t cap)
{
    const char *root = getenv("SWITCHSIM_SOURCE_ROOT");
    if (!root)
        fail_msg("SWITCHSIM_SOURCE_ROOT is not set (run the tests with meson test)");
    snprintf(out, cap, "%s/tests/data/corpus", root);
}

static void load_tiny(model_data_corpus *c)
{
    char dir[4096];
    corpus_path(dir, sizeof dir);
    const char *paths[] = {dir};
    ss_err err = {0};
    ss_status st = model_data_corpus_load(c, paths, 1, &err);
    if (st != SS_OK)
        fail_msg("%s", err.msg);
}

/* A corpus of n random lowercase letters and spaces (not loaded from files). */
static void synthetic_corpus(model_data_corpus *c, size_t n, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->text = malloc(n);
    assert_non_null(c->text);
    rng_state r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = rng_below(&r, 27);
        c->text[i] = k == 26 ? ' ' : (uint8_t)('a' + k);
    }
    c->n_bytes = n;
}

static void init_ds(model_data *ds, const model_data_corpus *c, const model_data_cfg *cfg)
{
    ss_err err = {0};
    ss_status st = model_data_init(ds, c, cfg, &err);
    if (st != SS_OK)
        fail_msg("%s", err.msg);
}

static void example(int32_t *in, int32_t *tg, model_data *ds, model_data_split split,
                    uint64_t g)
{
    ss_err err = {0};
    ss_status st = model_data_example(in, tg, ds, split, g, &err);
    if (st != SS_OK)
        fail_msg("%s", err.msg);
}

static size_t find_id(const int32_t *row, size_t T, int32_t id)
{
    for (size_t i = 0; i < T; i++)
        if (row[i] == id)
            return i;
    return T;
}

/* Checks that row[T] is ids then eos then only pad; returns the length up to eos (excluded). */
static size_t check_row_end(const int32_t *row, size_t T)
{
    size_t e = find_id(row, T, MODEL_DATA_EOS_ID);
    assert_true(e < T);
    for (size_t i = 0; i < e; i++)
        assert_true(row[i] != MODEL_DATA_PAD_ID && row[i] >= 0 &&
                    row[i] < MODEL_DATA_VOCAB_USED);
    for (size_t i = e + 1; i < T; i++)
        assert_int_equal(row[i], MODEL_DATA_PAD_ID);
    return e;
}

/* Independent decoder of the span-corruption format: checks that the inputs hold bytes and
 * sentinels <extra_id_0>, <extra_id_1>, ... in order, that the targets are exactly those
 * sentinels each followed by a non-empty run of bytes, and writes the original tokens by
 * replacing each input sentinel with its target span. Returns the number of tokens written
 * and the number of spans in *spans. */
static size_t reconstruct(int32_t *out, size_t *spans, const int32_t *in, size_t T_in,
                          const int32_t *tg, size_t T_out)
{
    size_t ni = check_row_end(in, T_in), nt = check_row_end(tg, T_out);
    size_t n = 0;
    int k_in = 0;
    for (size_t i = 0; i < ni; i++) {
        int k = model_data_sentinel_index(in[i]);
        if (k < 0) {
            assert_true(in[i] < MODEL_DATA_NUM_BYTES);
            out[n++] = in[i];
            continue;
        }
        assert_int_equal(k, k_in++);
        size_t p = find_id(tg, nt, in[i]);
        assert_true(p < nt);
        size_t q = p + 1;
        for (; q < nt && tg[q] < MODEL_DATA_NUM_BYTES; q++)
            out[n++] = tg[q];
        assert_true(q > p + 1); /* a span holds at least one token */
    }
    /* The targets hold exactly the sentinels of the inputs, in order, starting at 0. */
    int k_tg = 0;
    assert_true(nt > 0 && model_data_sentinel_index(tg[0]) == 0);
    for (size_t i = 0; i < nt; i++)
        if (tg[i] >= MODEL_DATA_NUM_BYTES)
            assert_int_equal(model_data_sentinel_index(tg[i]), k_tg++);
    assert_int_equal(k_tg, k_in);
    *spans = (size_t)k_in;
    return n;
}

/* Whether the chunk's corpus bytes equal the reconstruction of example (in, tg). */
static void assert_example_is_chunk(const model_data *ds, size_t chunk, const int32_t *in,
                                    const int32_t *tg)
{
    size_t R = (size_t)ds->raw_length, spans;
    int32_t *rec = malloc((size_t)(ds->cfg.input_length + ds->cfg.target_length) * sizeof *rec);
    assert_non_null(rec);
    size_t n = reconstruct(rec, &spans, in, (size_t)ds->cfg.input_length, tg,
                           (size_t)ds->cfg.target_length);
    assert_int_equal(n, R);
    for (size_t i = 0; i < R; i++)
        assert_int_equal(rec[i], ds->text[chunk * R + i]);
    free(rec);
}

/* ---- vocabulary and lengths -------------------------------------------------------------- */

static void test_data_vocab_layout(void **state)
{
    (void)state;
    assert_int_equal(MODEL_DATA_VOCAB_SIZE, 384);
    assert_int_equal(MODEL_DATA_VOCAB_SIZE % 128, 0);
    assert_true(MODEL_DATA_VOCAB_USED <= MODEL_DATA_VOCAB_SIZE);
    /* sentinels count down from the top of the sentinel block: <extra_id_0> = 355 */
    assert_int_equal(model_data_sentinel(0), 355);
    assert_int_equal(model_data_sentinel(99), 256);
    for (int k = 0; k < MODEL_DATA_NUM_SENTINELS; k++) {
        int32_t id = model_data_sentinel(k);
        assert_true(id >= MODEL_DATA_NUM_BYTES && id < MODEL_DATA_VOCAB_USED);
        assert_true(id != MODEL_DATA_PAD_ID && id != MODEL_DATA_EOS_ID);
        assert_int_equal(model_data_sentinel_index(id), k);
    }
    assert_int_equal(model_data_sentinel_index(255), -1);
    assert_int_equal(model_data_sentinel_index(MODEL_DATA_PAD_ID), -1);
    assert_int_equal(model_data_sentinel_index(MODEL_DATA_EOS_ID), -1);
    assert_true(MODEL_DATA_PAD_ID != MODEL_DATA_EOS_ID);
    assert_true(MODEL_DATA_PAD_ID >= MODEL_DATA_NUM_BYTES &&
                MODEL_DATA_EOS_ID < MODEL_DATA_VOCAB_USED);
}

static void expect_lengths(int input_length, double density, int want_raw, int want_targets)
{
    int raw = -1, tg = -1;
    ss_err err = {0};
    assert_int_equal(model_data_span_lengths(&raw, &tg, input_length, density, 3.0, &err),
                     SS_OK);
    print_message("  input_length %d density %.2f -> raw %d (want %d), targets %d (want %d)\n",
                  input_length, density, raw, want_raw, tg, want_targets);
    assert_int_equal(raw, want_raw);
    assert_int_equal(tg, want_targets);
}

/* Hand-worked from T5's formulas, in = t - round(.15 t) + round(round(.15 t) / 3) + 1:
 * 512: t = 568: noise 85 (85.2), spans 28 (28.33), in 512, targets 85 + 28 + 1 = 114;
 *      t = 569: noise 85 (85.35), in 513 > 512.
 * 128: t = 141: noise 21 (21.15), spans 7, in 128, targets 29; t = 142: in 129.
 * 256: t = 284: noise 43 (42.6), spans 14, in 256, targets 58; t = 285: in 257.
 * density 0.5, input 512: t = 767: noise 384 (383.5 to even), spans 128, in 512, targets 513
 *      > 512, so T5's hack gives t = 766, targets 512; t = 768: in 513. */
static void test_data_span_lengths_t5(void **state)
{
    (void)state;
    expect_lengths(512, 0.15, 568, 114);
    expect_lengths(128, 0.15, 141, 29);
    expect_lengths(256, 0.15, 284, 58);
    expect_lengths(512, 0.5, 766, 512);

    int raw, tg;
    ss_err err = {0};
    assert_int_equal(model_data_span_lengths(&raw, &tg, 512, 0.0, 3.0, &err), SS_ERR_RANGE);
    assert_non_null(strstr(err.msg, "noise_density"));
    assert_int_equal(model_data_span_lengths(&raw, &tg, 1, 0.15, 3.0, &err), SS_ERR_RANGE);
    assert_non_null(strstr(err.msg, "input_length"));
    assert_int_equal(model_data_span_lengths(&raw, &tg, 512, 0.15, 0.5, &err), SS_ERR_RANGE);
    assert_non_null(strstr(err.msg, "mean_noise_span_length"));
}

/* TensorFlow's binary32 counts with round-half-to-even: 0.25 * 10 = 2.5 -> 2, 0.25 * 14 = 3.5
 * -> 4 (both exact in binary32), and the degeneracy guards. */
static void test_data_noise_counts(void **state)
{
    (void)state;
    model_data_span_counts c = model_data_noise_counts(568, 0.15, 3.0);
    assert_int_equal(c.noise_tokens, 85);
    assert_int_equal(c.noise_spans, 28);
    c = model_data_noise_counts(141, 0.15, 3.0);
    assert_int_equal(c.noise_tokens, 21);
    assert_int_equal(c.noise_spans, 7);
    c = model_data_noise_counts(10, 0.25, 1.0);
    assert_int_equal(c.noise_tokens, 2);
    assert_int_equal(c.noise_spans, 2);
    c = model_data_noise_counts(14, 0.25, 1.0);
    assert_int_equal(c.noise_tokens, 4);
    assert_int_equal(c.noise_spans, 4);
    c = model_data_noise_counts(4, 0.15, 3.0); /* 0.6 -> 1 token; 0.33 -> 0 -> 1 span */
    assert_int_equal(c.noise_tokens, 1);
    assert_int_equal(c.noise_spans, 1);
    c = model_data_noise_counts(1, 0.15, 3.0); /* counted as length 2 */
    assert_int_equal(c.noise_tokens, 1);
    assert_int_equal(c.noise_spans, 1);
    c = model_data_noise_counts(100, 0.0, 3.0);
    assert_int_equal(c.noise_tokens, 0);
    assert_int_equal(c.noise_spans, 0);
    /* over many lengths the noise fraction is round(0.15 n) / n: within 0.5 / n of 0.15 */
    double worst = 0.0;
    for (size_t n = 20; n <= 4000; n++) {
        c = model_data_noise_counts(n, 0.15, 3.0);
        double dev = fabs((double)c.noise_tokens / (double)n - 0.15) * (double)n;
        if (dev > worst)
            worst = dev;
    }
    print_message("  max |noise/n - 0.15| * n over n in [20, 4000]: %.6f (limit 0.5)\n", worst);
    assert_true(worst <= 0.5 + 1e-6);
}

/* For every input length up to the sentinel limit the mask's counts give inputs of exactly
 * input_length. The targets can differ from the helper's: the helper rounds R * 0.15 in
 * binary64, the mask in binary32 as TensorFlow does, and where the two straddle a half (190 *
 * 0.15 = 28.4999... in binary64 but 28.500002 in binary32) the mask has one more noise token
 * and one more span: inputs unchanged, targets 2 longer (172 -> raw 190, targets 40, helper
 * 38). T5 itself truncates those targets to the helper's length; the dataset sizes its targets
 * from the mask's counts instead (data.h). */
static void test_data_lengths_exact_inputs(void **state)
{
    (void)state;
    int checked = 0, longer = 0;
    for (int L = 24; L <= 4096; L++) {
        int raw, tg;
        ss_err err = {0};
        assert_int_equal(model_data_span_lengths(&raw, &tg, L, 0.15, 3.0, &err), SS_OK);
        model_data_span_counts c = model_data_noise_counts((size_t)raw, 0.15, 3.0);
        if (c.noise_spans > MODEL_DATA_NUM_SENTINELS)
            break;
        size_t in = (size_t)raw - c.noise_tokens + c.noise_spans + 1;
        size_t tgt = c.noise_tokens + c.noise_spans + 1;
        if (in != (size_t)L || (tgt != (size_t)tg && tgt != (size_t)tg + 2))
            fail_msg("input_length %d: raw %d gives inputs %zu, targets %zu (helper %d)", L, raw,
                     in, tgt, tg);
        if (L == 172)
            assert_true(raw == 190 && tgt == 40 && tg == 38);
        longer += tgt != (size_t)tg;
        checked++;
    }
    print_message("  %d input lengths from 24 give exact inputs; %d have targets 2 longer than "
                  "the helper's\n",
                  checked, longer);
    assert_true(checked > 1000);
    assert_true(longer > 0 && longer < checked / 20);
}

/* ---- noise masks ------------------------------------------------------------------------- */

static void test_data_noise_mask_structure(void **state)
{
    (void)state;
    static const size_t lengths[] = {1, 2, 3, 5, 10, 34, 141, 568, 1000};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        size_t n = lengths[li];
        uint8_t *mask = malloc(n);
        uint32_t *scratch = malloc(MODEL_DATA_MASK_SCRATCH(n) * sizeof *scratch);
        assert_true(mask && scratch);
        model_data_span_counts c = model_data_noise_counts(n, 0.15, 3.0);
        for (uint64_t seed = 0; seed < 50; seed++) {
            rng_state r;
            rng_seed(&r, seed);
            memset(mask, 7, n);
            model_data_noise_mask(mask, scratch, n, 0.15, 3.0, &r);
            assert_int_equal(mask[0], 0); /* starts with non-noise */
            if (n == 1)
                continue;
            assert_int_equal(mask[n - 1], 1); /* ends with noise */
            size_t noise = 0, runs = 0, plain_runs = 0;
            for (size_t i = 0; i < n; i++) {
                assert_true(mask[i] <= 1);
                noise += mask[i];
                runs += mask[i] && (i == 0 || !mask[i - 1]);
                plain_runs += !mask[i] && (i == 0 || mask[i - 1]);
            }
            assert_int_equal(noise, c.noise_tokens);
            assert_int_equal(runs, c.noise_spans);
            assert_int_equal(plain_runs, c.noise_spans);
        }
        free(mask);
        free(scratch);
    }
}

/* The segmentation draws uniform compositions: a noise span of 85 tokens split into 28 parts
 * has length 1 with probability C(83,26)/C(84,27) = 27/84 = 0.3214; over 4000 masks (112000
 * spans, standard error 0.0014) the frequency must be within 0.01. The noise rate per position
 * must be flat: mean over 10 blocks of interior positions within 0.02 of 85/568 (block standard
 * error about 0.002). */
static void test_data_noise_mask_distribution(void **state)
{
    (void)state;
    enum { N = 568, MASKS = 4000, BLOCKS = 10 };
    uint8_t mask[N];
    uint32_t scratch[MODEL_DATA_MASK_SCRATCH(N)];
    static uint32_t pos_count[N];
    memset(pos_count, 0, sizeof pos_count);
    size_t spans = 0, ones = 0;
    rng_state r;
    rng_seed(&r, 2024);
    for (int m = 0; m < MASKS; m++) {
        model_data_noise_mask(mask, scratch, N, 0.15, 3.0, &r);
        size_t run = 0;
        for (size_t i = 0; i <= N; i++) {
            if (i < N && mask[i]) {
                run++;
                pos_count[i]++;
                continue;
            }
            if (run) {
                spans++;
                ones += run == 1;
            }
            run = 0;
        }
    }
    double p1 = (double)ones / (double)spans, want = 27.0 / 84.0;
    print_message("  P(noise span length 1) = %.4f (want %.4f, diff %.4f, limit 0.01)\n", p1,
                  want, fabs(p1 - want));
    assert_int_equal(spans, (size_t)MASKS * 28);
    assert_true(fabs(p1 - want) < 0.01);
    double rate = 85.0 / 568.0, worst = 0.0;
    size_t per = (N - 2) / BLOCKS;
    for (int b = 0; b < BLOCKS; b++) {
        double sum = 0.0;
        for (size_t i = 1 + (size_t)b * per; i < 1 + (size_t)(b + 1) * per; i++)
            sum += (double)pos_count[i] / MASKS;
        double d = fabs(sum / (double)per - rate);
        if (d > worst)
            worst = d;
    }
    print_message("  max |block noise rate - %.4f| = %.4f (limit 0.02)\n", rate, worst);
    assert_true(worst < 0.02);
}

/* The exact distribution for 20 tokens at density 0.25: 5 noise tokens in 2 spans, 15 non-noise
 * tokens in 2 spans. T5's segmentation makes every composition equally likely, so the first
 * noise span has length 1..4 with probability 1/4 each and the first non-noise span 1..14 with
 * 1/14 each. Over 8000 masks: counts 2000 (standard error 39) and 571 (standard error 23);
 * limits 150 and 100. A biased shuffle (e.g. Sattolo's, which never leaves an element in place)
 * fails this. */
static void test_data_noise_mask_uniform_small(void **state)
{
    (void)state;
    enum { N = 20, MASKS = 8000 };
    uint8_t mask[N];
    uint32_t scratch[MODEL_DATA_MASK_SCRATCH(N)];
    size_t noise_first[N + 1] = {0}, plain_first[N + 1] = {0};
    rng_state r;
    rng_seed(&r, 77);
    for (int m = 0; m < MASKS; m++) {
        model_data_noise_mask(mask, scratch, N, 0.25, 3.0, &r);
        size_t p = 0, q;
        while (p < N && !mask[p])
            p++;
        for (q = p; q < N && mask[q]; q++)
            ;
        plain_first[p]++;
        noise_first[q - p]++;
    }
    double worst_noise = 0.0, worst_plain = 0.0;
    for (size_t len = 1; len <= 4; len++)
        worst_noise = fmax(worst_noise, fabs((double)noise_first[len] - MASKS / 4.0));
    for (size_t len = 1; len <= 14; len++)
        worst_plain = fmax(worst_plain, fabs((double)plain_first[len] - MASKS / 14.0));
    print_message("  first noise span: max |count - %.0f| = %.0f (limit 150); first non-noise "
                  "span: max |count - %.0f| = %.0f (limit 100)\n",
                  MASKS / 4.0, worst_noise, MASKS / 14.0, worst_plain);
    assert_int_equal(noise_first[1] + noise_first[2] + noise_first[3] + noise_first[4], MASKS);
    assert_true(worst_noise < 150.0);
    assert_true(worst_plain < 100.0);
}

/* ---- sentinel replacement ---------------------------------------------------------------- */

static void test_data_span_corrupt_known(void **state)
{
    (void)state;
    const int32_t S0 = model_data_sentinel(0), S1 = model_data_sentinel(1);
    const int32_t E = MODEL_DATA_EOS_ID, P = MODEL_DATA_PAD_ID;
    int32_t tok[10];
    for (int i = 0; i < 10; i++)
        tok[i] = 'A' + i;
    /* T5 shape: A B [C D] E F G [H I J] */
    const uint8_t m1[10] = {0, 0, 1, 1, 0, 0, 0, 1, 1, 1};
    const int32_t want_in1[10] = {'A', 'B', S0, 'E', 'F', 'G', S1, E, P, P};
    const int32_t want_tg1[10] = {S0, 'C', 'D', S1, 'H', 'I', 'J', E, P, P};
    int32_t in[10], tg[10];
    ss_err err = {0};
    assert_int_equal(model_data_span_corrupt(in, tg, tok, m1, 10, 10, 10, &err), SS_OK);
    assert_memory_equal(in, want_in1, sizeof in);
    assert_memory_equal(tg, want_tg1, sizeof tg);
    /* A mask ending with non-noise: T5 replaces each non-noise span of the targets too. */
    const uint8_t m2[3] = {0, 1, 0};
    const int32_t want_in2[5] = {'A', S0, 'C', E, P};
    const int32_t want_tg2[5] = {S0, 'B', S1, E, P};
    assert_int_equal(model_data_span_corrupt(in, tg, tok, m2, 3, 5, 5, &err), SS_OK);
    assert_memory_equal(in, want_in2, 5 * sizeof *in);
    assert_memory_equal(tg, want_tg2, 5 * sizeof *tg);
}

static void test_data_span_corrupt_errors(void **state)
{
    (void)state;
    enum { N = 202 };
    int32_t tok[N], in[N + 1], tg[N + 1];
    uint8_t mask[N];
    for (int i = 0; i < N; i++) {
        tok[i] = 'a';
        mask[i] = (uint8_t)(i & 1); /* 101 noise spans */
    }
    ss_err err = {0};
    assert_int_equal(model_data_span_corrupt(in, tg, tok, mask, N, N + 1, N + 1, &err),
                     SS_ERR_RANGE);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "more than 100 sentinels"));
    /* 10 tokens, 2 noise spans of 5: inputs need 5 + 1 + 1 = 7 ids; targets 5 + 1 + 1 = 7 */
    uint8_t m[10] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1};
    assert_int_equal(model_data_span_corrupt(in, tg, tok, m, 10, 6, 7, &err), SS_ERR_RANGE);
    assert_non_null(strstr(err.msg, "inputs need 7 tokens"));
    assert_int_equal(model_data_span_corrupt(in, tg, tok, m, 10, 7, 6, &err), SS_ERR_RANGE);
    assert_non_null(strstr(err.msg, "targets need 7 tokens"));
    assert_int_equal(model_data_span_corrupt(in, tg, tok, m, 10, 7, 7, &err), SS_OK);
}

/* Random tokens and masks of many lengths: inputs and targets together give back the tokens. */
static void test_data_span_corrupt_reconstructs(void **state)
{
    (void)state;
    static const size_t lengths[] = {2, 3, 7, 34, 141, 568};
    rng_state r;
    rng_seed(&r, 99);
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        size_t n = lengths[li], T = n + 2;
        int32_t *tok = malloc(n * sizeof *tok), *in = malloc(T * sizeof *in);
        int32_t *tg = malloc(T * sizeof *tg), *rec = malloc(2 * T * sizeof *rec);
        uint8_t *mask = malloc(n);
        uint32_t *scratch = malloc(MODEL_DATA_MASK_SCRATCH(n) * sizeof *scratch);
        assert_true(tok && in && tg && rec && mask && scratch);
        model_data_span_counts c = model_data_noise_counts(n, 0.15, 3.0);
        for (int rep = 0; rep < 20; rep++) {
            for (size_t i = 0; i < n; i++)
                tok[i] = (int32_t)rng_below(&r, 256);
            model_data_noise_mask(mask, scratch, n, 0.15, 3.0, &r);
            ss_err err = {0};
            assert_int_equal(model_data_span_corrupt(in, tg, tok, mask, n, T, T, &err), SS_OK);
            size_t spans;
            size_t got = reconstruct(rec, &spans, in, T, tg, T);
            assert_int_equal(got, n);
            assert_memory_equal(rec, tok, n * sizeof *tok);
            assert_int_equal(spans, c.noise_spans);
            assert_int_equal(find_id(in, T, MODEL_DATA_EOS_ID), n - c.noise_tokens + spans);
            assert_int_equal(find_id(tg, T, MODEL_DATA_EOS_ID), c.noise_tokens + spans);
        }
        free(tok);
        free(in);
        free(tg);
        free(rec);
        free(mask);
        free(scratch);
    }
}

static void test_data_shift_right(void **state)
{
    (void)state;
    const int32_t tg[2 * 4] = {10, 11, 12, MODEL_DATA_EOS_ID, 20, MODEL_DATA_EOS_ID,
                               MODEL_DATA_PAD_ID, MODEL_DATA_PAD_ID};
    const int32_t want[2 * 4] = {MODEL_DATA_PAD_ID, 10, 11, 12,
                                 MODEL_DATA_PAD_ID, 20, MODEL_DATA_EOS_ID, MODEL_DATA_PAD_ID};
    int32_t dec[2 * 4];
    model_data_shift_right(dec, tg, 2, 4);
    assert_memory_equal(dec, want, sizeof dec);
}

/* ---- dataset ----------------------------------------------------------------------------- */

/* 1000 span-corrupted 512-token examples: every one has 28 sentinels, inputs of exactly 512
 * (eos at 511) and targets of 114; the noise fraction over all of them is 85/568 = 0.1496,
 * within 0.005 of 0.15; every example reconstructs its chunk. */
static void test_data_noise_fraction(void **state)
{
    (void)state;
    model_data_corpus c;
    synthetic_corpus(&c, 64 * 1024, 5);
    model_data_cfg cfg = model_data_cfg_t5(512, 0, 1);
    model_data ds;
    init_ds(&ds, &c, &cfg);
    assert_int_equal(ds.raw_length, 568);
    assert_int_equal(ds.cfg.target_length, 114);
    assert_int_equal(ds.span_inputs, 512);
    assert_int_equal(ds.span_targets, 114);
    int32_t in[512], tg[114];
    size_t noise = 0, total = 0;
    for (uint64_t g = 0; g < 1000; g++) {
        example(in, tg, &ds, MODEL_DATA_TRAIN, g);
        assert_int_equal(in[511], MODEL_DATA_EOS_ID);
        assert_int_equal(tg[113], MODEL_DATA_EOS_ID);
        size_t sent = 0;
        for (int t = 0; t < 113; t++) {
            noise += tg[t] < MODEL_DATA_NUM_BYTES;
            sent += model_data_sentinel_index(tg[t]) >= 0;
        }
        assert_int_equal(sent, 28);
        total += 568;
        assert_example_is_chunk(&ds, model_data_chunk_of(&ds, MODEL_DATA_TRAIN, g), in, tg);
    }
    double frac = (double)noise / (double)total;
    print_message("  noise fraction over 1000 examples: %.5f (|diff from 0.15| %.5f, limit "
                  "0.005)\n",
                  frac, fabs(frac - 0.15));
    assert_true(fabs(frac - 0.15) < 0.005);
    model_data_free(&ds);
    model_data_corpus_free(&c);
}

static void test_data_batch_layout(void **state)
{
    (void)state;
    model_data_corpus c;
    load_tiny(&c);
    model_data_cfg cfg = model_data_cfg_t5(32, 12, 7);
    model_data ds;
    init_ds(&ds, &c, &cfg);
    /* 32: t = 34: noise 5 (5.1), spans 2 (1.67), in 32, targets 8; t = 35: in 33 */
    assert_int_equal(ds.raw_length, 34);
    assert_int_equal(ds.span_targets, 8);
    enum { B = 5 };
    int32_t in[B * 32], tg[B * 12], dec[B * 12];
    ss_err err = {0};
    assert_int_equal(model_data_batch(in, tg, dec, &ds, MODEL_DATA_TRAIN, 3, B, &err), SS_OK);
    for (int b = 0; b < B; b++) {
        assert_int_equal(check_row_end(in + b * 32, 32), 31);
        assert_int_equal(check_row_end(tg + b * 12, 12), 7);
        assert_int_equal(dec[b * 12], MODEL_DATA_PAD_ID);
        for (int t = 1; t < 12; t++)
            assert_int_equal(dec[b * 12 + t], tg[b * 12 + t - 1]);
        int32_t in1[32], tg1[12];
        example(in1, tg1, &ds, MODEL_DATA_TRAIN, 3 * B + (uint64_t)b);
        assert_memory_equal(in1, in + b * 32, sizeof in1);
        assert_memory_equal(tg1, tg + b * 12, sizeof tg1);
    }
    assert_int_equal(model_data_batch(in, tg, dec, &ds, MODEL_DATA_TRAIN, 0, 0, &err),
                     SS_ERR_RANGE);
    model_data_free(&ds);
    model_data_corpus_free(&c);
}

static int batches_equal(model_data *a, model_data *b, model_data_split split, uint64_t step)
{
    enum { B = 4, TI = 32, TO = 8 };
    int32_t ia[B * TI], ta[B * TO], da[B * TO], ib[B * TI], tb[B * TO], db[B * TO];
    ss_err err = {0};
    assert_int_equal(model_data_batch(ia, ta, da, a, split, step, B, &err), SS_OK);
    assert_int_equal(model_data_batch(ib, tb, db, b, split, step, B, &err), SS_OK);
    return !memcmp(ia, ib, sizeof ia) && !memcmp(ta, tb, sizeof ta) &&
           !memcmp(da, db, sizeof da);
}

/* Same seed: same batches. Another seed: other training batches, the same held-out ones. */
static void test_data_determinism(void **state)
{
    (void)state;
    model_data_corpus c;
    load_tiny(&c);
    model_data_cfg cfg = model_data_cfg_t5(32, 0, 11), cfg2 = cfg;
    cfg2.seed = 12;
    model_data a, b, d;
    init_ds(&a, &c, &cfg);
    init_ds(&b, &c, &cfg);
    init_ds(&d, &c, &cfg2);
    int differs = 0;
    for (uint64_t s = 0; s < 30; s++) {
        assert_true(batches_equal(&a, &b, MODEL_DATA_TRAIN, s));
        assert_true(batches_equal(&a, &b, MODEL_DATA_HELDOUT, s));
        assert_true(batches_equal(&a, &d, MODEL_DATA_HELDOUT, s));
        differs += !batches_equal(&a, &d, MODEL_DATA_TRAIN, s);
    }
    print_message("  seed 11 vs 12: %d of 30 training batches differ\n", differs);
    assert_int_equal(differs, 30);
    model_data_free(&a);
    model_data_free(&b);
    model_data_free(&d);
    model_data_corpus_free(&c);
}

/* The held-out chunks: round(0.2 * chunks) of them, disjoint from the training chunks, together
 * all chunks; a training epoch visits every training chunk once and no held-out chunk; the
 * split ignores the training seed and follows split_seed; examples hold their chunk's text. */
static void test_data_heldout_disjoint(void **state)
{
    (void)state;
    model_data_corpus c;
    load_tiny(&c);
    model_data_cfg cfg = model_data_cfg_t5(32, 0, 3);
    cfg.heldout_fraction = 0.2;
    model_data ds;
    init_ds(&ds, &c, &cfg);
    size_t n = ds.n_chunks;
    assert_int_equal(n, c.n_bytes / 34);
    assert_int_equal(ds.n_heldout, (size_t)rint(0.2 * (double)n));
    assert_int_equal(ds.n_train + ds.n_heldout, n);
    uint8_t *kind = calloc(n, 1);
    assert_non_null(kind);
    for (size_t i = 0; i < ds.n_heldout; i++) {
        assert_true(ds.heldout_chunks[i] < n && kind[ds.heldout_chunks[i]] == 0);
        kind[ds.heldout_chunks[i]] = 2;
    }
    for (size_t i = 0; i < ds.n_train; i++) {
        assert_true(ds.train_chunks[i] < n && kind[ds.train_chunks[i]] == 0);
        kind[ds.train_chunks[i]] = 1;
    }
    uint32_t *seen = calloc(n, sizeof *seen);
    assert_non_null(seen);
    int32_t in[32], tg[8];
    for (uint64_t g = 0; g < ds.n_train; g++) {
        size_t ch = model_data_chunk_of(&ds, MODEL_DATA_TRAIN, g);
        assert_int_equal(kind[ch], 1);
        seen[ch]++;
        example(in, tg, &ds, MODEL_DATA_TRAIN, g);
        assert_example_is_chunk(&ds, ch, in, tg);
    }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seen[i], kind[i] == 1 ? 1 : 0);
    for (uint64_t g = 0; g < 2 * ds.n_heldout; g++) {
        size_t ch = model_data_chunk_of(&ds, MODEL_DATA_HELDOUT, g);
        assert_int_equal(kind[ch], 2);
        example(in, tg, &ds, MODEL_DATA_HELDOUT, g);
        assert_example_is_chunk(&ds, ch, in, tg);
    }
    model_data other;
    model_data_cfg cfg2 = cfg;
    cfg2.seed = 4;
    init_ds(&other, &c, &cfg2);
    assert_memory_equal(other.heldout_chunks, ds.heldout_chunks,
                        ds.n_heldout * sizeof *ds.heldout_chunks);
    model_data_free(&other);
    cfg2.split_seed = cfg.split_seed + 1;
    init_ds(&other, &c, &cfg2);
    assert_int_equal(other.n_heldout, ds.n_heldout);
    assert_memory_not_equal(other.heldout_chunks, ds.heldout_chunks,
                            ds.n_heldout * sizeof *ds.heldout_chunks);
    model_data_free(&other);
    free(kind);
    free(seen);
    model_data_free(&ds);
    model_data_corpus_free(&c);
}

/* Epoch orders are permutations of the training chunks that differ between epochs. */
static void test_data_epoch_shuffle(void **state)
{
    (void)state;
    model_data_corpus c;
    load_tiny(&c);
    model_data_cfg cfg = model_data_cfg_t5(32, 0, 8);
    model_data ds;
    init_ds(&ds, &c, &cfg);
    size_t nt = ds.n_train, same_as_prev = 0, in_place = 0;
    size_t *prev = malloc(nt * sizeof *prev);
    uint32_t *seen = calloc(ds.n_chunks, sizeof *seen);
    assert_true(prev && seen);
    for (uint64_t e = 0; e < 4; e++) {
        memset(seen, 0, ds.n_chunks * sizeof *seen);
        for (size_t j = 0; j < nt; j++) {
            size_t ch = model_data_chunk_of(&ds, MODEL_DATA_TRAIN, e * nt + j);
            seen[ch]++;
            if (e > 0)
                same_as_prev += prev[j] == ch;
            if (e == 0)
                in_place += ch == ds.train_chunks[j];
            prev[j] = ch;
        }
        for (size_t i = 0; i < nt; i++)
            assert_int_equal(seen[ds.train_chunks[i]], 1);
    }
    print_message("  %zu training chunks; positions equal to the previous epoch's: %zu of %zu; "
                  "epoch 0 fixed points: %zu\n",
                  nt, same_as_prev, 3 * nt, in_place);
    assert_true(same_as_prev < nt); /* a random permutation has about one fixed point */
    assert_true(in_place < nt / 2);
    free(prev);
    free(seen);
    model_data_free(&ds);
    model_data_corpus_free(&c);
}

/* Epoch orders are uniform permutations: over 1000 training seeds the number of fixed points
 * (epoch 0 position j holding the j-th training chunk) averages 1 (variance 1 per permutation:
 * total 1000, standard error 32; limit 150). */
static void test_data_epoch_order_uniform(void **state)
{
    (void)state;
    model_data_corpus c;
    load_tiny(&c);
    size_t fixed = 0;
    for (uint64_t seed = 0; seed < 1000; seed++) {
        model_data_cfg cfg = model_data_cfg_t5(32, 0, seed);
        model_data ds;
        init_ds(&ds, &c, &cfg);
        for (size_t j = 0; j < ds.n_train; j++)
            fixed += model_data_chunk_of(&ds, MODEL_DATA_TRAIN, j) == ds.train_chunks[j];
        model_data_free(&ds);
    }
    print_message("  fixed points over 1000 epoch orders: %zu (want 1000, limit 150)\n", fixed);
    assert_true(fixed > 850 && fixed < 1150);
    model_data_corpus_free(&c);
}

/* Resume: batches built by a fresh dataset, in reverse order and one at a time, equal the
 * batches of a sequential run over several epochs (B = 3 does not divide the epoch). */
static void test_data_resume(void **state)
{
    (void)state;
    model_data_corpus c;
    load_tiny(&c);
    model_data_cfg cfg = model_data_cfg_t5(32, 0, 21);
    model_data seq;
    init_ds(&seq, &c, &cfg);
    assert_true(seq.n_train % 3 != 0);
    enum { STEPS = 60, B = 3, TI = 32, TO = 8 };
    static int32_t in[STEPS][B * TI], tg[STEPS][B * TO], dec[STEPS][B * TO];
    ss_err err = {0};
    for (int s = 0; s < STEPS; s++)
        assert_int_equal(
            model_data_batch(in[s], tg[s], dec[s], &seq, MODEL_DATA_TRAIN, (uint64_t)s, B, &err),
            SS_OK);
    print_message("  %d steps of %d cover %.1f epochs of %zu chunks\n", STEPS, B,
                  (double)(STEPS * B) / (double)seq.n_train, seq.n_train);
    assert_true(STEPS * B > 3 * (int)seq.n_train);
    model_data fresh;
    init_ds(&fresh, &c, &cfg);
    for (int s = STEPS - 1; s >= 0; s--) {
        int32_t i1[B * TI], t1[B * TO], d1[B * TO];
        assert_int_equal(
            model_data_batch(i1, t1, d1, &fresh, MODEL_DATA_TRAIN, (uint64_t)s, B, &err), SS_OK);
        assert_memory_equal(i1, in[s], sizeof i1);
        assert_memory_equal(t1, tg[s], sizeof t1);
        assert_memory_equal(d1, dec[s], sizeof d1);
    }
    for (int s = 0; s < STEPS; s += 7) {
        model_data one;
        init_ds(&one, &c, &cfg);
        int32_t i1[B * TI], t1[B * TO], d1[B * TO];
        assert_int_equal(
            model_data_batch(i1, t1, d1, &one, MODEL_DATA_TRAIN, (uint64_t)s, B, &err), SS_OK);
        assert_memory_equal(i1, in[s], sizeof i1);
        assert_memory_equal(t1, tg[s], sizeof t1);
        model_data_free(&one);
    }
    model_data_free(&fresh);
    model_data_free(&seq);
    model_data_corpus_free(&c);
}

static void expect_init_error(const model_data_corpus *c, const model_data_cfg *cfg,
                              const char *needle)
{
    model_data ds;
    ss_err err = {0};
    assert_int_equal(model_data_init(&ds, c, cfg, &err), SS_ERR_RANGE);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, needle));
    assert_null(ds.train_chunks);
}

static void test_data_init_errors(void **state)
{
    (void)state;
    model_data_corpus c;
    load_tiny(&c);
    model_data_cfg cfg = model_data_cfg_t5(32, 7, 1); /* needs 8 targets */
    expect_init_error(&c, &cfg, "target_length 7");
    cfg = model_data_cfg_t5(4096, 0, 1); /* 682 noise tokens in 227 spans */
    expect_init_error(&c, &cfg, "sentinels");
    cfg = model_data_cfg_t5(1024, 0, 1); /* one chunk of 1137: no room for a held-out one */
    expect_init_error(&c, &cfg, "too few");
    cfg = model_data_cfg_t5(32, 0, 1);
    cfg.heldout_fraction = 0.9;
    expect_init_error(&c, &cfg, "heldout_fraction");
    cfg = model_data_cfg_t5(4, 0, 1); /* raw 4: 1 noise token, 1 span: 5 inputs > 4 */
    expect_init_error(&c, &cfg, "input_length 4");
    cfg = model_data_cfg_t5(32, 0, 1);
    cfg.heldout_fraction = 0.0;
    model_data ds;
    init_ds(&ds, &c, &cfg);
    assert_int_equal(ds.n_heldout, 0);
    int32_t in[32], tg[8], dec[8];
    ss_err err = {0};
    assert_int_equal(model_data_batch(in, tg, dec, &ds, MODEL_DATA_HELDOUT, 0, 1, &err),
                     SS_ERR_RANGE);
    assert_non_null(strstr(err.msg, "no held-out chunks"));
    model_data_free(&ds);
    model_data_corpus_free(&c);
}

/* ---- corpus ------------------------------------------------------------------------------ */

static size_t count_substr(const uint8_t *s, size_t n, const char *pat)
{
    size_t k = strlen(pat), count = 0;
    for (size_t i = 0; i + k <= n; i++)
        count += memcmp(s + i, pat, k) == 0;
    return count;
}

/* The committed corpus: 2 files, 11 + 12 non-empty fortunes (one empty one is dropped), packed
 * in file-name order with one blank line between fortunes and none after the last. */
static void test_data_corpus_tiny(void **state)
{
    (void)state;
    model_data_corpus c;
    load_tiny(&c);
    assert_int_equal(c.n_files, 2);
    assert_int_equal(c.n_fortunes, 23);
    const char *first = "A simulator that agrees with every chip agrees with none of them.\n\n"
                        "The bug is always";
    assert_memory_equal(c.text, first, strlen(first));
    const char *last = "Even the longest letter ends with a signature.\n";
    assert_memory_equal(c.text + c.n_bytes - strlen(last), last, strlen(last));
    assert_int_equal(count_substr(c.text, c.n_bytes, "\n\n"), 22);
    assert_int_equal(count_substr(c.text, c.n_bytes, "%"), 0);
    assert_int_equal(count_substr(c.text, c.n_bytes, "\n\n\n"), 0);
    assert_int_equal(count_substr(c.text, c.n_bytes, "A:\tThe one you have to carry"), 1);
    model_data_corpus_free(&c);

    char dir[4096], a[4200], b[4200];
    corpus_path(dir, sizeof dir);
    snprintf(a, sizeof a, "%s/maxims", dir);
    snprintf(b, sizeof b, "%s/engineering", dir);
    const char *paths[] = {a, b};
    ss_err err = {0};
    assert_int_equal(model_data_corpus_load(&c, paths, 2, &err), SS_OK);
    assert_int_equal(c.n_files, 2);
    const char *kettle = "The kettle that is watched";
    assert_memory_equal(c.text, kettle, strlen(kettle));
    model_data_corpus_free(&c);
}

static void write_file(const char *dir, const char *name, const void *data, size_t n)
{
    char path[8448];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void remove_entry(const char *dir, const char *name)
{
    char path[8448];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(remove(path), 0);
}

/* A directory laid out like the package: only "good" is read; good.dat (binary), good.u8 (a
 * link to good), .hidden and off/ (offensive fortunes) are skipped. Named explicitly, the
 * binary .dat file is rejected. */
static void test_data_corpus_skips(void **state)
{
    (void)state;
    char dir[] = "/tmp/switchsim-data-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char good[] = "first fortune\n%\nsecond\nfortune\n%\n";
    const char dat[] = "\x00\x00\x00\x02\x00\x00\x00\x05%\n";
    write_file(dir, "good", good, sizeof good - 1);
    write_file(dir, "good.dat", dat, sizeof dat - 1);
    write_file(dir, ".hidden", "hidden\n", 7);
    char path[4200];
    snprintf(path, sizeof path, "%s/good.u8", dir);
    assert_int_equal(symlink("good", path), 0);
    snprintf(path, sizeof path, "%s/off", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    write_file(path, "rude", "offensive\n", 10);

    model_data_corpus c;
    const char *paths[] = {dir};
    ss_err err = {0};
    assert_int_equal(model_data_corpus_load(&c, paths, 1, &err), SS_OK);
    assert_int_equal(c.n_files, 1);
    assert_int_equal(c.n_fortunes, 2);
    const char want[] = "first fortune\n\nsecond\nfortune\n";
    assert_int_equal(c.n_bytes, sizeof want - 1);
    assert_memory_equal(c.text, want, sizeof want - 1);
    model_data_corpus_free(&c);

    snprintf(path, sizeof path, "%s/good.dat", dir);
    const char *dat_path[] = {path};
    assert_int_equal(model_data_corpus_load(&c, dat_path, 1, &err), SS_ERR_DATA);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "binary"));
    assert_null(c.text);

    snprintf(path, sizeof path, "%s/off", dir);
    remove_entry(path, "rude");
    remove_entry(dir, "off");
    remove_entry(dir, "good.u8");
    remove_entry(dir, ".hidden");
    remove_entry(dir, "good.dat");
    remove_entry(dir, "good");
    /* an empty directory holds no fortunes */
    assert_int_equal(model_data_corpus_load(&c, paths, 1, &err), SS_ERR_DATA);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "no fortunes found"));
    assert_int_equal(rmdir(dir), 0);
}

static void test_data_corpus_missing(void **state)
{
    (void)state;
    model_data_corpus c;
    ss_err err = {0};
    const char *pkg[] = {MODEL_DATA_FORTUNES_DIR "/no-such-file"};
    assert_int_equal(model_data_corpus_load(&c, pkg, 1, &err), SS_ERR_IO);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "not found"));
    assert_non_null(strstr(err.msg, "install the Debian package fortunes"));
    const char *other[] = {"/nonexistent-switchsim/corpus"};
    assert_int_equal(model_data_corpus_load(&c, other, 1, &err), SS_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent-switchsim/corpus: fortune corpus not found"));
    assert_null(strstr(err.msg, "install")); /* the hint is for the package's path only */
    assert_int_equal(model_data_corpus_load(&c, other, 0, &err), SS_ERR_USAGE);
    assert_non_null(strstr(err.msg, MODEL_DATA_FORTUNES_DIR));
}

/* The Debian package when installed (2.7 MB of text in 43 files in fortunes 1:1.99.1-7.3);
 * without it the loader must say to install it. */
static void test_data_corpus_fortunes_package(void **state)
{
    (void)state;
    model_data_corpus c;
    ss_err err = {0};
    const char *paths[] = {MODEL_DATA_FORTUNES_DIR};
    ss_status st = model_data_corpus_load(&c, paths, 1, &err);
    if (st != SS_OK) {
        print_message("  package not loaded: %s\n", err.msg);
        assert_non_null(strstr(err.msg, "install the Debian package fortunes"));
        return;
    }
    print_message("  %s: %zu files, %zu fortunes, %zu bytes\n", MODEL_DATA_FORTUNES_DIR,
                  c.n_files, c.n_fortunes, c.n_bytes);
    if (c.n_files < 30)
        fail_msg("%s holds only %zu fortune files: is only fortunes-min installed? install the "
                 "Debian package fortunes",
                 MODEL_DATA_FORTUNES_DIR, c.n_files);
    assert_true(c.n_fortunes >= 5000);
    assert_true(c.n_bytes >= 1000000);
    assert_null(memchr(c.text, '\0', c.n_bytes));
    model_data_cfg cfg = model_data_cfg_t5(512, 0, 1);
    model_data ds;
    init_ds(&ds, &c, &cfg);
    print_message("  512-token examples: %zu chunks, %zu training, %zu held out\n", ds.n_chunks,
                  ds.n_train, ds.n_heldout);
    assert_true(ds.n_chunks >= 1500);
    enum { B = 8 };
    static int32_t in[B * 512], tg[B * 114], dec[B * 114];
    assert_int_equal(model_data_batch(in, tg, dec, &ds, MODEL_DATA_TRAIN, 1000, B, &err), SS_OK);
    for (int b = 0; b < B; b++) {
        assert_int_equal(in[b * 512 + 511], MODEL_DATA_EOS_ID);
        assert_example_is_chunk(
            &ds, model_data_chunk_of(&ds, MODEL_DATA_TRAIN, 1000 * B + (uint64_t)b), in + b * 512,
            tg + b * 114);
    }
    model_data_free(&ds);
    model_data_corpus_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_vocab_layout),
        cmocka_unit_test(test_data_span_lengths_t5),
        cmocka_unit_test(test_data_noise_counts),
        cmocka_unit_test(test_data_lengths_exact_inputs),
        cmocka_unit_test(test_data_noise_mask_structure),
        cmocka_unit_test(test_data_noise_mask_distribution),
        cmocka_unit_test(test_data_noise_mask_uniform_small),
        cmocka_unit_test(test_data_span_corrupt_known),
        cmocka_unit_test(test_data_span_corrupt_errors),
        cmocka_unit_test(test_data_span_corrupt_reconstructs),
        cmocka_unit_test(test_data_shift_right),
        cmocka_unit_test(test_data_noise_fraction),
        cmocka_unit_test(test_data_batch_layout),
        cmocka_unit_test(test_data_determinism),
        cmocka_unit_test(test_data_heldout_disjoint),
        cmocka_unit_test(test_data_epoch_shuffle),
        cmocka_unit_test(test_data_epoch_order_uniform),
        cmocka_unit_test(test_data_resume),
        cmocka_unit_test(test_data_init_errors),
        cmocka_unit_test(test_data_corpus_tiny),
        cmocka_unit_test(test_data_corpus_skips),
        cmocka_unit_test(test_data_corpus_missing),
        cmocka_unit_test(test_data_corpus_fortunes_package),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
