/* This file implements the tests of the training stack's own pieces: the checkpoint format
 * (round trip, atomic write, and one specific error per kind of damage or mismatch), the run
 * config's train: fields (defaults, values, errors), and the training loop on a tiny Switch
 * model over the committed tiny corpus (tests/train/tiny-switch.yaml, tests/train/tiny-run.yaml,
 * tests/data/corpus/): determinism, bit-exact resume (with metrics truncation), the
 * output-directory policy, evaluation lines, results.json keys and a decreasing loss.
 *
 * Invariants: every test works in its own temporary directory and removes it; no test needs
 * the fortunes package or asserts wall-clock time.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/fileio.h"
#include "model/checkpoint.h"
#include "model/data.h"
#include "model/optim.h"
#include "model/run_cfg.h"
#include "model/train.h"
#include "test_scratch.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static char g_root[2048];

static void src_path(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", g_root, rel);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void expect_msg(const ss_err *err, const char *needle)
{
    if (!strstr(err->msg, needle)) {
        print_error("expected '%s' in: %s\n", needle, err->msg);
        fail();
    }
}

static char *read_text(const char *path, size_t *len)
{
    char *text = NULL;
    ss_err err = {0};
    if (file_read_all(path, (size_t)1 << 30, &text, len, &err) != SS_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    return text;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* ---- checkpoint format ------------------------------------------------------------------- */

enum { NP = 1000, NS = 37 };

typedef struct {
    char dir[256], path[512];
    model_ckpt_header h;
    float params[NP], state[NS];
} ckpt_fixture;

/* Makes a scratch directory and writes a checkpoint of known contents to path in it. */
static void ckpt_fixture_write(ckpt_fixture *f)
{
    assert_int_equal(test_scratch_make(f->dir, sizeof f->dir, "switchsim-train"), 0);
    snprintf(f->path, sizeof f->path, "%s/checkpoint.bin", f->dir);
    memset(&f->h, 0, sizeof f->h);
    snprintf(f->h.model_name, sizeof f->h.model_name, "tiny");
    f->h.model_hash = 0x1122334455667788u;
    f->h.settings_hash = 0x99aabbccddeeff00u;
    f->h.nparams = NP;
    f->h.optimizer = 1;
    f->h.opt_state_size = NS;
    f->h.step = 123;
    f->h.seed = 42;
    f->h.data_position = 123 * 8;
    f->h.tokens = 98765;
    f->h.wall_seconds = 1.25;
    rng_seed(&f->h.rng, 9);
    (void)rng_normal(&f->h.rng); /* leaves a spare deviate in the state */
    rng_state r;
    rng_seed(&r, 1);
    for (int i = 0; i < NP; i++)
        f->params[i] = rng_normal_f32(&r, 0.0f, 1.0f);
    for (int i = 0; i < NS; i++)
        f->state[i] = (float)i * 0.5f - 3.0f;
    f->params[7] = -0.0f;
    f->params[8] = INFINITY;
    ss_err err = {0};
    if (model_ckpt_write(f->path, &f->h, f->params, f->state, &err) != SS_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
}

/* A new fixture with its checkpoint written; ckpt_fixture_free removes both. */
static ckpt_fixture *ckpt_fixture_new(void)
{
    ckpt_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    ckpt_fixture_write(f);
    return f;
}

static void ckpt_fixture_free(ckpt_fixture *f)
{
    test_scratch_remove(f->dir);
    free(f);
}

static ss_status ckpt_fixture_read(ckpt_fixture *f, const model_ckpt_header *want, ss_err *err)
{
    static float p[NP], s[NS];
    model_ckpt_header got;
    return model_ckpt_read(f->path, want, &got, p, s, err);
}

static void test_train_ckpt_round_trip(void **state)
{
    (void)state;
    ckpt_fixture *f = ckpt_fixture_new();
    size_t len = 0;
    free(read_text(f->path, &len));
    assert_int_equal(len, model_ckpt_file_bytes(NP, NS));
    assert_int_equal(len, 256 + 4 * (NP + NS) + 8);
    float p[NP], s[NS];
    model_ckpt_header got;
    ss_err err = {0};
    assert_int_equal(model_ckpt_read(f->path, &f->h, &got, p, s, &err), SS_OK);
    assert_memory_equal(p, f->params, sizeof p); /* bit for bit, -0 and inf included */
    assert_memory_equal(s, f->state, sizeof s);
    assert_string_equal(got.model_name, "tiny");
    assert_true(got.model_hash == f->h.model_hash && got.settings_hash == f->h.settings_hash);
    assert_true(got.step == 123 && got.seed == 42 && got.data_position == 984 &&
                got.tokens == 98765 && got.optimizer == 1);
    assert_true(got.wall_seconds == 1.25);
    assert_memory_equal(got.rng.s, f->h.rng.s, sizeof got.rng.s);
    assert_int_equal(got.rng.has_spare, 1);
    assert_true(got.rng.spare == f->h.rng.spare);
    /* the restored stream continues exactly as the saved one */
    rng_state a = f->h.rng, b = got.rng;
    assert_true(rng_normal(&a) == rng_normal(&b) && rng_next_u64(&a) == rng_next_u64(&b));
    ckpt_fixture_free(f);
}

/* Atomic write: only the checkpoint in the directory, and an overwrite replaces it whole. */
static void test_train_ckpt_atomic(void **state)
{
    (void)state;
    ckpt_fixture *f = ckpt_fixture_new();
    assert_int_equal(count_entries(f->dir), 1);
    f->h.step = 124;
    f->params[0] = 99.0f;
    ss_err err = {0};
    assert_int_equal(model_ckpt_write(f->path, &f->h, f->params, f->state, &err), SS_OK);
    assert_int_equal(count_entries(f->dir), 1);
    model_ckpt_header got;
    assert_int_equal(model_ckpt_read_header(f->path, &got, &err), SS_OK);
    assert_int_equal(got.step, 124);
    /* a write that cannot happen leaves the old file and no temporary */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/missing-dir/checkpoint.bin", f->dir);
    assert_int_equal(model_ckpt_write(bad, &f->h, f->params, f->state, &err), SS_ERR_IO);
    assert_int_equal(count_entries(f->dir), 1);
    ckpt_fixture_free(f);
}

/* Rewrites the file with byte `at` xor-ed with `mask`. */
static void poke(const char *path, size_t at, unsigned char mask)
{
    size_t len = 0;
    char *b = read_text(path, &len);
    assert_true(at < len);
    b[at] = (char)(b[at] ^ mask);
    write_bytes(path, b, len);
    free(b);
}

static void test_train_ckpt_flipped_byte(void **state)
{
    (void)state;
    const size_t spots[] = {300, 256 + 4 * NP + 5, 20 /* model name */, 130 /* seed */,
                            256 + 4 * (NP + NS) + 3 /* the checksum itself */};
    for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
        ckpt_fixture *f = ckpt_fixture_new();
        poke(f->path, spots[i], 0x10);
        ss_err err = {0};
        assert_int_equal(ckpt_fixture_read(f, &f->h, &err), SS_ERR_DATA);
        expect_msg(&err, "checksum check failed");
        expect_msg(&err, "corrupt");
        ckpt_fixture_free(f);
    }
}

static void test_train_ckpt_truncated(void **state)
{
    (void)state;
    const size_t keep[] = {256 + 4 * (NP + NS) + 7, 256 + 40, 100, 12, 0};
    const char *check[] = {"size check failed", "size check failed", "size check failed",
                           "size check failed", "magic check failed"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        ckpt_fixture *f = ckpt_fixture_new();
        size_t len = 0;
        char *b = read_text(f->path, &len);
        write_bytes(f->path, b, keep[i]);
        free(b);
        ss_err err = {0};
        assert_int_equal(ckpt_fixture_read(f, &f->h, &err), SS_ERR_DATA);
        expect_msg(&err, check[i]);
        if (keep[i] >= 12)
            expect_msg(&err, "truncated");
        ckpt_fixture_free(f);
    }
}

static void test_train_ckpt_wrong_magic_and_version(void **state)
{
    (void)state;
    ckpt_fixture *f = ckpt_fixture_new();
    poke(f->path, 0, 0x01);
    ss_err err = {0};
    assert_int_equal(ckpt_fixture_read(f, &f->h, &err), SS_ERR_DATA);
    expect_msg(&err, "magic check failed");
    expect_msg(&err, "SWSIMCKP");
    poke(f->path, 0, 0x01);     /* magic back */
    poke(f->path, 8, 0x03);     /* version 1 -> 2 */
    assert_int_equal(ckpt_fixture_read(f, &f->h, &err), SS_ERR_DATA);
    expect_msg(&err, "version check failed: expected format version 1, got 2");
    poke(f->path, 8, 0x03);
    poke(f->path, 12, 0x01);    /* header bytes 256 -> 257 */
    assert_int_equal(ckpt_fixture_read(f, &f->h, &err), SS_ERR_DATA);
    expect_msg(&err, "header size check failed: expected 256 header bytes, got 257");
    ckpt_fixture_free(f);
}

/* Each identity field the reader compares gives its own error. */
static void test_train_ckpt_mismatch(void **state)
{
    (void)state;
    ckpt_fixture *f = ckpt_fixture_new();
    model_ckpt_header want;
    ss_err err = {0};

    want = f->h;
    want.model_hash ^= 1;
    assert_int_equal(ckpt_fixture_read(f, &want, &err), SS_ERR_DATA);
    expect_msg(&err, "model check failed: expected model 'tiny'");
    want = f->h;
    snprintf(want.model_name, sizeof want.model_name, "other");
    assert_int_equal(ckpt_fixture_read(f, &want, &err), SS_ERR_DATA);
    expect_msg(&err, "expected model 'other'");
    want = f->h;
    want.nparams = NP + 1;
    assert_int_equal(ckpt_fixture_read(f, &want, &err), SS_ERR_DATA);
    expect_msg(&err, "nparams check failed: expected 1001 (this run), got 1000");
    want = f->h;
    want.optimizer = 0;
    assert_int_equal(ckpt_fixture_read(f, &want, &err), SS_ERR_DATA);
    expect_msg(&err, "optimizer check failed");
    want = f->h;
    want.opt_state_size = NS - 1;
    assert_int_equal(ckpt_fixture_read(f, &want, &err), SS_ERR_DATA);
    expect_msg(&err, "state size check failed");
    want = f->h;
    want.seed = 43;
    assert_int_equal(ckpt_fixture_read(f, &want, &err), SS_ERR_DATA);
    expect_msg(&err, "seed check failed: expected 43 (this run), got 42");
    want = f->h;
    want.settings_hash ^= 2;
    assert_int_equal(ckpt_fixture_read(f, &want, &err), SS_ERR_DATA);
    expect_msg(&err, "settings check failed");
    /* the step, data position, tokens and wall time are state, not identity */
    want = f->h;
    want.step = 0;
    want.tokens = 0;
    want.wall_seconds = 0;
    assert_int_equal(ckpt_fixture_read(f, &want, &err), SS_OK);
    ckpt_fixture_free(f);
}

static void test_train_ckpt_fnv1a(void **state)
{
    (void)state;
    /* published FNV-1a 64 test vectors */
    assert_true(model_ckpt_fnv1a(MODEL_CKPT_FNV_OFFSET, "", 0) == UINT64_C(0xcbf29ce484222325));
    assert_true(model_ckpt_fnv1a(MODEL_CKPT_FNV_OFFSET, "a", 1) == UINT64_C(0xaf63dc4c8601ec8c));
    assert_true(model_ckpt_fnv1a(MODEL_CKPT_FNV_OFFSET, "foobar", 6) ==
                UINT64_C(0x85944171f73967e8));
}

/* ---- run config: train: ------------------------------------------------------------------ */

static void expect_adafactor_equal(const model_adafactor_cfg *a, const model_adafactor_cfg *b)
{
    assert_int_equal(a->factored, b->factored);
    assert_int_equal(a->min_dim_size_to_factor, b->min_dim_size_to_factor);
    assert_int_equal(a->factor_stacks, b->factor_stacks);
    assert_true(a->decay_rate == b->decay_rate);
    assert_int_equal(a->step_offset, b->step_offset);
    assert_true(a->epsilon1 == b->epsilon1 && a->epsilon2 == b->epsilon2);
    assert_true(a->clipping_threshold == b->clipping_threshold);
    assert_int_equal(a->multiply_by_parameter_scale, b->multiply_by_parameter_scale);
    assert_true(a->max_parameter_scale == b->max_parameter_scale);
    assert_true(a->beta1 == b->beta1 && a->weight_decay == b->weight_decay);
    assert_true(a->weight_decay_lr_exponent == b->weight_decay_lr_exponent);
}

static void test_train_cfg_defaults(void **state)
{
    (void)state;
    run_train_cfg t;
    ss_err err = {0};
    assert_int_equal(run_train_cfg_defaults(&t, &err), SS_OK);
    model_adafactor_cfg af = model_adafactor_cfg_t5x();
    model_adamw_cfg aw = model_adamw_cfg_default();
    expect_adafactor_equal(&t.adafactor, &af);
    assert_true(t.adamw.beta1 == aw.beta1 && t.adamw.beta2 == aw.beta2 &&
                t.adamw.eps == aw.eps && t.adamw.weight_decay == aw.weight_decay);
    assert_int_equal(t.precision, RUN_PRECISION_BF16);
    assert_int_equal(t.optimizer, RUN_OPTIMIZER_ADAFACTOR);
    model_lr_schedule s = run_train_schedule(&t), t5 = model_lr_schedule_t5();
    assert_true(s.kind == t5.kind && s.base == t5.base && s.warmup_steps == t5.warmup_steps);
    assert_true(t.clip_norm == 0.0);
    assert_int_equal(t.log_every, 1);
    assert_string_equal(t.data.corpus, MODEL_DATA_FORTUNES_DIR);
    assert_true(t.data.heldout_fraction == 0.05 && t.data.noise_density == 0.15 &&
                t.data.mean_span == 3.0);
}

static void test_train_cfg_fields(void **state)
{
    (void)state;
    char path[4096], corpus[4096];
    src_path(path, sizeof path, "tests/train/tiny-run.yaml");
    src_path(corpus, sizeof corpus, "tests/train/../data/corpus");
    run_cfg r;
    ss_err err = {0};
    if (run_cfg_load(&r, path, &err) != SS_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_int_equal(r.has_train, 1);
    assert_int_equal(r.train.schedule, MODEL_LR_CONSTANT);
    assert_true(r.train.learning_rate == 0.01 && r.train.clip_norm == 1.0);
    assert_int_equal(r.train.eval_every, 3);
    assert_int_equal(r.train.checkpoint_every, 3);
    assert_string_equal(r.train.data.corpus, corpus); /* relative to the run file */
    assert_true(r.train.data.heldout_fraction == 0.1);
    /* nested mappings not given keep their defaults */
    model_adafactor_cfg af = model_adafactor_cfg_t5x();
    expect_adafactor_equal(&r.train.adafactor, &af);

    /* a run without train: gets every default */
    src_path(path, sizeof path, "configs/runs/switch-tiny-v3-8.yaml");
    assert_int_equal(run_cfg_load(&r, path, &err), SS_OK);
    run_train_cfg def;
    assert_int_equal(run_train_cfg_defaults(&def, &err), SS_OK);
    json_t *a = cfg_to_json(&run_train_cfg_schema, &r.train);
    json_t *b = cfg_to_json(&run_train_cfg_schema, &def);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    expect_adafactor_equal(&r.train.adafactor, &def.adafactor);
    assert_string_equal(r.train.data.corpus, def.data.corpus);
}

/* A run whose train: mapping is `train` (YAML flow text), parsed as if in tests/train/. */
static ss_status parse_run_with_train(const char *train, ss_err *err)
{
    char text[2048], name[4096];
    snprintf(text, sizeof text,
             "kind: run\nname: t\nmodel: tiny-switch.yaml\npod: ../../configs/pods/tpu-v3-8.yaml\n"
             "plan: {data: 4, model: 2}\nbatch: 4\ninput_length: 32\ntarget_length: 8\n"
             "mode: train\ntrain: %s\n",
             train);
    src_path(name, sizeof name, "tests/train/inline-run.yaml");
    cfg_doc *doc = NULL;
    ss_status st = cfg_doc_parse(&doc, name, text, strlen(text), err);
    run_cfg r;
    if (st == SS_OK)
        st = run_cfg_decode(&r, cfg_doc_root(doc), err);
    cfg_doc_free(doc);
    return st;
}

static void test_train_cfg_errors(void **state)
{
    (void)state;
    static const struct {
        const char *train, *msg;
    } cases[] = {
        {"{precision: fp16}", "field 'train.precision'"},
        {"{optimizer: sgd}", "field 'train.optimizer'"},
        {"{schedule: cosine}", "field 'train.schedule'"},
        {"{gemm: slow}", "field 'train.gemm'"},
        {"{schedule: rsqrt, warmup_steps: 0}", "field 'train.warmup_steps': lr schedule: rsqrt "
                                               "needs warmup_steps >= 1"},
        {"{learning_rate: -1}", "field 'train.learning_rate'"},
        {"{clip_norm: -0.5}", "field 'train.clip_norm'"},
        {"{log_every: 0}", "field 'train.log_every'"},
        {"{eval_batches: 0}", "field 'train.eval_batches'"},
        {"{eval_every: -1}", "field 'train.eval_every'"},
        {"{checkpoint_every: -2}", "field 'train.checkpoint_every'"},
        {"{adafactor: {beta1: 1.0}}", "field 'train.adafactor.beta1': beta1 must be in [0, 1)"},
        {"{adafactor: {decay_rate: 0}}", "field 'train.adafactor.decay_rate'"},
        {"{adafactor: {clipping_threshold: -1}}", "field 'train.adafactor.clipping_threshold'"},
        {"{adafactor: {weight_decay: 1.5}}", "field 'train.adafactor.weight_decay': "
                                             "weight_decay must be in [0, 1)"},
        {"{adamw: {beta2: 1.0}}", "field 'train.adamw.beta2': beta2 must be in [0, 1)"},
        {"{adamw: {eps: 0}}", "field 'train.adamw.eps'"},
        {"{adamw: {momentum: 0.9}}", "adamw.momentum"},
        {"{data: {heldout_fraction: 0.6}}", "field 'train.data.heldout_fraction'"},
        {"{data: {noise_density: 0}}", "field 'train.data.noise_density'"},
        {"{data: {mean_span: 0.5}}", "field 'train.data.mean_span'"},
        {"{lr: 0.1}", "train.lr"},
        {"{dropout: 0.2}", "train.dropout"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ss_err err = {0};
        ss_status st = parse_run_with_train(cases[i].train, &err);
        if (st != SS_ERR_CONFIG || !strstr(err.msg, cases[i].msg)) {
            print_error("train: %s\n  expected an error with '%s'\n  got (%d): %s\n",
                        cases[i].train, cases[i].msg, (int)st, err.msg);
            fail();
        }
        /* errors point at the file and line of the run */
        assert_non_null(strstr(err.msg, "inline-run.yaml:"));
    }
    ss_err err = {0};
    assert_int_equal(parse_run_with_train("{optimizer: adamw, adamw: {beta1: 0.8}}", &err),
                     SS_OK);
}

/* ---- the training loop ------------------------------------------------------------------- */

typedef struct {
    run_cfg run;
    model_train_opts o;
    char dir[256];
} train_fixture;

/* The tiny run's settings, into a fresh temporary directory. */
static train_fixture *train_fixture_new(void)
{
    train_fixture *f = calloc(1, sizeof *f);
    char path[4096];
    src_path(path, sizeof path, "tests/train/tiny-run.yaml");
    ss_err err = {0};
    if (run_cfg_load(&f->run, path, &err) != SS_OK) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_int_equal(test_scratch_make(f->dir, sizeof f->dir, "switchsim-train"), 0);
    model_train_opts *o = &f->o;
    o->model = &f->run.model;
    o->run_name = f->run.name;
    o->train = f->run.train;
    o->batch = f->run.batch;
    o->input_length = f->run.input_length;
    o->target_length = f->run.target_length;
    o->steps = (uint64_t)f->run.steps;
    o->seed = f->run.seed;
    o->denormals = f->run.pod.chip.denormals;
    o->out_dir = f->dir;
    return f;
}

static void train_fixture_free(train_fixture *f)
{
    test_scratch_remove(f->dir);
    free(f);
}

static ss_status run_training(train_fixture *f, json_t **res, ss_err *err)
{
    json_t *local = NULL;
    ss_status st = model_train_run(&f->o, res ? res : &local, err);
    json_decref(local);
    return st;
}

static void must_train(train_fixture *f, json_t **res)
{
    ss_err err = {0};
    ss_status st = run_training(f, res, &err);
    if (st != SS_OK) {
        print_error("training failed: %s\n", err.msg);
        fail();
    }
}

/* metrics.jsonl of dir with every "wall_s" member removed, one line per entry. */
static char *metrics_without_wall(const char *dir, int *nlines)
{
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    size_t len = 0;
    char *text = read_text(path, &len);
    size_t cap = len + 1, used = 0;
    char *out = calloc(cap, 1);
    *nlines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        assert_non_null(j);
        assert_non_null(json_object_get(j, "wall_s"));
        json_object_del(j, "wall_s");
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
        size_t n = strlen(s);
        assert_true(used + n + 1 < cap);
        memcpy(out + used, s, n);
        used += n;
        out[used++] = '\n';
        free(s);
        json_decref(j);
        (*nlines)++;
    }
    free(text);
    return out;
}

/* The training losses of a metrics file, in order. */
static int train_losses(const char *dir, double *loss, int max)
{
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    size_t len = 0;
    char *text = read_text(path, &len);
    int n = 0;
    for (char *line = strtok(text, "\n"); line && n < max; line = strtok(NULL, "\n")) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        if (strcmp(json_string_value(json_object_get(j, "split")), "train") == 0)
            loss[n++] = json_real_value(json_object_get(j, "loss"));
        json_decref(j);
    }
    free(text);
    return n;
}

/* Parameters and optimizer state of dir's checkpoint (malloc'd). */
static void read_final_state(const char *dir, model_ckpt_header *h, float **p, float **s)
{
    char path[512];
    snprintf(path, sizeof path, "%s/checkpoint.bin", dir);
    ss_err err = {0};
    assert_int_equal(model_ckpt_read_header(path, h, &err), SS_OK);
    *p = malloc(h->nparams * sizeof(float));
    *s = malloc((h->opt_state_size + 1) * sizeof(float));
    model_ckpt_header got;
    assert_int_equal(model_ckpt_read(path, h, &got, *p, *s, &err), SS_OK);
}

/* Two runs' metrics (but wall_s), parameters, optimizer state and rng agree bit for bit. */
static void expect_same_runs(const char *a, const char *b)
{
    int na = 0, nb = 0;
    char *ma = metrics_without_wall(a, &na), *mb = metrics_without_wall(b, &nb);
    if (na != nb || strcmp(ma, mb) != 0) {
        print_error("metrics differ (%d vs %d lines):\n%s\n---\n%s\n", na, nb, ma, mb);
        fail();
    }
    model_ckpt_header ha, hb;
    float *pa, *sa, *pb, *sb;
    read_final_state(a, &ha, &pa, &sa);
    read_final_state(b, &hb, &pb, &sb);
    assert_int_equal(ha.nparams, hb.nparams);
    assert_int_equal(ha.step, hb.step);
    assert_int_equal(ha.tokens, hb.tokens);
    assert_memory_equal(ha.rng.s, hb.rng.s, sizeof ha.rng.s);
    double maxdiff = 0;
    for (uint64_t i = 0; i < ha.nparams; i++)
        maxdiff = fmax(maxdiff, fabs((double)pa[i] - (double)pb[i]));
    print_message("final params: %llu floats, max |difference| %g\n",
                  (unsigned long long)ha.nparams, maxdiff);
    assert_memory_equal(pa, pb, ha.nparams * sizeof(float));
    assert_memory_equal(sa, sb, ha.opt_state_size * sizeof(float));
    free(ma);
    free(mb);
    free(pa);
    free(sa);
    free(pb);
    free(sb);
}

/* Removes the compare_router members of dir's training lines after checking them: every
 * train line has router_disagreement [2 layers] in [0, 1] and router_compare_dtype `other`;
 * no eval line has them. Returns the number of train lines with a disagreement > 0. */
static int strip_router_comparison(const char *dir, const char *other)
{
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    size_t len = 0;
    char *text = read_text(path, &len);
    char *out = calloc(len + 1, 1);
    size_t used = 0;
    int nonzero = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        const int train = strcmp(json_string_value(json_object_get(j, "split")), "train") == 0;
        json_t *d = json_object_get(j, "router_disagreement");
        if (!train) {
            assert_null(d);
        } else {
            assert_int_equal(json_array_size(d), 2);
            double mx = 0;
            for (size_t i = 0; i < 2; i++) {
                const double v = json_real_value(json_array_get(d, i));
                assert_true(v >= 0.0 && v <= 1.0);
                mx = fmax(mx, v);
            }
            nonzero += mx > 0;
            assert_string_equal(json_string_value(json_object_get(j, "router_compare_dtype")),
                                other);
            json_object_del(j, "router_disagreement");
            json_object_del(j, "router_compare_dtype");
        }
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
        memcpy(out + used, s, strlen(s));
        used += strlen(s);
        out[used++] = '\n';
        free(s);
        json_decref(j);
    }
    assert_true(used <= len); /* the members were removed */
    ss_err err = {0};
    assert_int_equal(file_write_atomic(path, out, used, &err), SS_OK);
    free(text);
    free(out);
    return nonzero;
}

/* compare_router adds router_disagreement to the training lines and changes nothing else:
 * metrics, parameters, optimizer state and rng equal a run without it, bit for bit; for both
 * router dtypes. */
static void test_train_compare_router(void **state)
{
    (void)state;
    const model_router_dtype dtypes[] = {MODEL_ROUTER_FP32, MODEL_ROUTER_BF16};
    for (int i = 0; i < 2; i++) {
        train_fixture *a = train_fixture_new(), *b = train_fixture_new();
        a->run.model.sw.router_dtype = b->run.model.sw.router_dtype = dtypes[i];
        b->o.train.compare_router = 1;
        must_train(a, NULL);
        must_train(b, NULL);
        const int nonzero = strip_router_comparison(b->dir, i == 0 ? "bf16" : "fp32");
        print_message("router %s: %d of 6 steps with a disagreement > 0\n",
                      i == 0 ? "fp32" : "bf16", nonzero);
        expect_same_runs(a->dir, b->dir);
        train_fixture_free(a);
        train_fixture_free(b);
    }
    ss_err err = {0};
    assert_int_equal(parse_run_with_train("{compare_router: true}", &err), SS_OK);
    assert_int_equal(parse_run_with_train("{compare_router: 2}", &err), SS_ERR_CONFIG);
    expect_msg(&err, "train.compare_router");
}

static void test_train_same_seed_same_results(void **state)
{
    (void)state;
    train_fixture *a = train_fixture_new(), *b = train_fixture_new();
    must_train(a, NULL);
    must_train(b, NULL);
    expect_same_runs(a->dir, b->dir);
    /* and a different seed gives different losses (the comparison can fail) */
    train_fixture *c = train_fixture_new();
    c->o.seed = a->o.seed + 1;
    must_train(c, NULL);
    double la[16], lc[16];
    assert_int_equal(train_losses(a->dir, la, 16), 6);
    assert_int_equal(train_losses(c->dir, lc, 16), 6);
    assert_true(la[0] != lc[0]);
    train_fixture_free(a);
    train_fixture_free(b);
    train_fixture_free(c);
}

static void append_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* 3 steps, then a resume to 6, equals 6 uninterrupted steps; metrics lines written after the
 * checkpoint by a run that stopped (and a partial line) are dropped. */
static void test_train_resume_bit_exact(void **state)
{
    (void)state;
    train_fixture *full = train_fixture_new(), *part = train_fixture_new();
    must_train(full, NULL);
    part->o.steps = 3;
    must_train(part, NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.jsonl", part->dir);
    append_text(path, "{\"split\":\"train\",\"step\":4,\"loss\":1}\n{\"split\":\"tra");
    part->o.steps = 6;
    part->o.resume = 1;
    must_train(part, NULL);
    expect_same_runs(full->dir, part->dir);
    train_fixture_free(full);
    train_fixture_free(part);
}

static void test_train_dir_policy(void **state)
{
    (void)state;
    train_fixture *f = train_fixture_new();
    ss_err err = {0};
    f->o.resume = 1;
    assert_int_equal(run_training(f, NULL, &err), SS_ERR_USAGE);
    expect_msg(&err, "no checkpoint to resume from");
    f->o.resume = 0;
    f->o.steps = 2;
    must_train(f, NULL);
    char ckpt[512];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.bin", f->dir);
    size_t len0 = 0;
    char *before = read_text(ckpt, &len0);
    /* a fresh run into a directory with a checkpoint is refused and changes nothing */
    assert_int_equal(run_training(f, NULL, &err), SS_ERR_USAGE);
    expect_msg(&err, "already holds a checkpoint");
    expect_msg(&err, "--force");
    size_t len1 = 0;
    char *after = read_text(ckpt, &len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0);
    free(after);
    /* a corrupt checkpoint is reported and left as it is */
    poke(ckpt, 400, 0x40);
    f->o.resume = 1;
    f->o.steps = 4;
    assert_int_equal(run_training(f, NULL, &err), SS_ERR_DATA);
    expect_msg(&err, "checksum check failed");
    after = read_text(ckpt, &len1);
    assert_int_equal(len0, len1);
    assert_int_equal((unsigned char)after[400], (unsigned char)before[400] ^ 0x40);
    free(after);
    free(before);
    /* a checkpoint of another seed is refused */
    poke(ckpt, 400, 0x40);
    f->o.seed += 1;
    assert_int_equal(run_training(f, NULL, &err), SS_ERR_DATA);
    expect_msg(&err, "seed check failed");
    f->o.seed -= 1;
    /* other settings (here the learning rate) are refused by the settings hash */
    f->o.train.learning_rate *= 2;
    assert_int_equal(run_training(f, NULL, &err), SS_ERR_DATA);
    expect_msg(&err, "settings check failed");
    f->o.train.learning_rate /= 2;
    /* a model whose vocabulary cannot hold the byte vocabulary is refused up front */
    model_cfg small = *f->o.model;
    small.vocab_size = 300;
    f->o.model = &small;
    f->o.force = 1;
    assert_int_equal(run_training(f, NULL, &err), SS_ERR_CONFIG);
    expect_msg(&err, "vocab_size 300 is smaller than the 358 ids");
    f->o.model = &f->run.model;
    /* --force starts afresh: the old checkpoint is deleted even before a new one exists */
    f->o.resume = 0;
    f->o.force = 1;
    f->o.steps = 0;
    must_train(f, NULL);
    assert_int_equal(access(ckpt, F_OK), -1);
    f->o.steps = 1;
    must_train(f, NULL);
    assert_int_equal(access(ckpt, F_OK), 0);
    double loss[8];
    assert_int_equal(train_losses(f->dir, loss, 8), 1);
    train_fixture_free(f);
}

static void test_train_eval_lines_and_results(void **state)
{
    (void)state;
    train_fixture *f = train_fixture_new();
    json_t *res = NULL;
    must_train(f, &res);
    /* eval lines at steps 3 and 6 (eval_every 3), with the documented members */
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.jsonl", f->dir);
    size_t len = 0;
    char *text = read_text(path, &len);
    int evals = 0, trains = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        const char *split = json_string_value(json_object_get(j, "split"));
        const json_int_t step = json_integer_value(json_object_get(j, "step"));
        if (strcmp(split, "heldout") == 0) {
            evals++;
            assert_int_equal(step, 3 * evals);
            assert_int_equal(json_integer_value(json_object_get(j, "batches")), 2);
            assert_true(json_real_value(json_object_get(j, "loss")) > 0);
            assert_int_equal(json_array_size(json_object_get(j, "dropped_fraction")), 2);
        } else {
            trains++;
            assert_int_equal(step, trains);
            static const char *const keys[] = {"lr", "loss", "aux_loss", "z_loss", "total",
                                               "grad_norm", "accuracy", "tokens", "wall_s"};
            for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
                assert_non_null(json_object_get(j, keys[k]));
            json_t *tpe = json_object_get(j, "tokens_per_expert");
            assert_int_equal(json_array_size(tpe), 2); /* encoder and decoder Switch layer */
            assert_int_equal(json_array_size(json_array_get(tpe, 0)), 4);
            json_int_t sum = 0;
            for (size_t e = 0; e < 4; e++)
                sum += json_integer_value(json_array_get(json_array_get(tpe, 0), e));
            assert_int_equal(sum, 4 * 32); /* every encoder token chooses one expert */
            assert_int_equal(json_array_size(json_object_get(j, "router_entropy")), 2);
        }
        json_decref(j);
    }
    free(text);
    assert_int_equal(trains, 6);
    assert_int_equal(evals, 2);

    /* results.json on disk equals the returned object and has the documented keys */
    snprintf(path, sizeof path, "%s/results.json", f->dir);
    json_t *disk = json_load_file(path, 0, NULL);
    assert_non_null(disk);
    assert_true(json_equal(disk, res));
    static const char *const keys[] = {"model", "run", "model_config", "seed", "steps",
                                       "first_step", "steps_run", "batch", "input_length",
                                       "target_length", "nparams", "numerics", "optimizer",
                                       "data", "final", "tokens_per_s", "examples_per_s",
                                       "wall_s", "out_dir", "versions"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (!json_object_get(res, keys[k])) {
            print_error("results.json lacks '%s'\n", keys[k]);
            fail();
        }
    assert_string_equal(json_string_value(json_object_get(res, "model")), "tiny-switch-test");
    assert_int_equal(json_integer_value(json_object_get(res, "steps")), 6);
    json_t *fin = json_object_get(res, "final");
    assert_true(json_is_real(json_object_get(fin, "train_loss")));
    assert_true(json_is_real(json_object_get(fin, "eval_loss")));
    assert_int_equal(json_integer_value(json_object_get(fin, "eval_step")), 6);
    json_t *nx = json_object_get(res, "numerics");
    assert_string_equal(json_string_value(json_object_get(nx, "precision")), "bf16");
    assert_string_equal(json_string_value(json_object_get(nx, "router_dtype")), "fp32");
    json_t *opt = json_object_get(res, "optimizer");
    assert_string_equal(json_string_value(json_object_get(opt, "kind")), "adafactor");
    assert_non_null(json_object_get(json_object_get(opt, "settings"), "decay_rate"));
    json_decref(disk);
    json_decref(res);
    /* no temporary file is left behind */
    assert_int_equal(count_entries(f->dir), 3);
    train_fixture_free(f);
}

static double mean(const double *x, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += x[i];
    return s / n;
}

/* 40 steps on the tiny corpus: the loss falls well below its start (ln 384 = 5.95). */
static void test_train_loss_decreases(void **state)
{
    (void)state;
    train_fixture *f = train_fixture_new();
    f->o.steps = 40;
    f->o.train.eval_every = 0;
    f->o.train.checkpoint_every = 0;
    must_train(f, NULL);
    double loss[64];
    assert_int_equal(train_losses(f->dir, loss, 64), 40);
    const double first = mean(loss, 5), last = mean(loss + 35, 5);
    print_message("mean loss of steps 1-5: %.4f, of steps 36-40: %.4f\n", first, last);
    for (int i = 0; i < 40; i++)
        assert_true(isfinite(loss[i]));
    assert_true(last < first - 1.0);
    train_fixture_free(f);
}

/* AdamW with fp32 numerics also trains and resumes (its state layout differs). */
static void test_train_adamw_fp32_resume(void **state)
{
    (void)state;
    train_fixture *full = train_fixture_new(), *part = train_fixture_new();
    train_fixture *fs[] = {full, part};
    for (int i = 0; i < 2; i++) {
        fs[i]->o.train.optimizer = RUN_OPTIMIZER_ADAMW;
        fs[i]->o.train.precision = RUN_PRECISION_FP32;
        fs[i]->o.train.learning_rate = 1e-3;
        fs[i]->o.train.schedule = MODEL_LR_LINEAR;
        fs[i]->o.train.warmup_steps = 2;
        fs[i]->o.train.decay_steps = 4;
    }
    must_train(full, NULL);
    part->o.steps = 3;
    must_train(part, NULL);
    part->o.steps = 6;
    part->o.resume = 1;
    must_train(part, NULL);
    expect_same_runs(full->dir, part->dir);
    train_fixture_free(full);
    train_fixture_free(part);
}

int main(void)
{
    const char *root = getenv("SWITCHSIM_SOURCE_ROOT");
    snprintf(g_root, sizeof g_root, "%s", root ? root : ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_ckpt_round_trip),
        cmocka_unit_test(test_train_ckpt_atomic),
        cmocka_unit_test(test_train_ckpt_flipped_byte),
        cmocka_unit_test(test_train_ckpt_truncated),
        cmocka_unit_test(test_train_ckpt_wrong_magic_and_version),
        cmocka_unit_test(test_train_ckpt_mismatch),
        cmocka_unit_test(test_train_ckpt_fnv1a),
        cmocka_unit_test(test_train_cfg_defaults),
        cmocka_unit_test(test_train_cfg_fields),
        cmocka_unit_test(test_train_cfg_errors),
        cmocka_unit_test(test_train_same_seed_same_results),
        cmocka_unit_test(test_train_resume_bit_exact),
        cmocka_unit_test(test_train_dir_policy),
        cmocka_unit_test(test_train_eval_lines_and_results),
        cmocka_unit_test(test_train_loss_decreases),
        cmocka_unit_test(test_train_adamw_fp32_resume),
        cmocka_unit_test(test_train_compare_router),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
