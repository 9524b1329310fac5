/* This file tests the functional distributed trainer (model/dtrain.h) against single-device
 * training (model/t5.h + the same optimizer, clipping and routing groups) on a tiny Switch
 * model: losses per step and final parameters within a stated tolerance, identical routing
 * decisions, with one owner per expert and with expert replicas (fewer experts than cores),
 * rows really moved through the all-to-allv (received counts equal the router's kept choices
 * for the sources a core serves), clear errors for impossible layouts, a positive simulated
 * step time that depends on the routing and the pod, held-out evaluation lines, and a run
 * resumed from its checkpoint that matches the uninterrupted run bit for bit.
 *
 * Tolerances. Differences come only from the order of floating-point sums (dtrain.h): dense
 * weight gradients are P per-core matmuls added by the all-reduce instead of one matmul, the
 * loss weights n_c / n round differently from 1 / n, and the global norm is accumulated per
 * core. fp32 numerics: |loss difference| <= 1e-5 per step and |parameter difference| <= 1e-5
 * after 4 steps (the measured maxima are printed: 5e-8 and 7e-7). bf16 numerics (what
 * training uses): a last-bit difference can flip one bf16 rounding of an activation (a
 * relative 2^-8), so the bound is 2e-3 on losses and on parameters (measured: 5e-11 and
 * 1.2e-7). The whole-run test uses dropout, router jitter and expert dropout (each core
 * draws its own masks), so it checks that such a run trains, not equivalence.
 */
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

#include "common/fileio.h"
#include "model/data.h"
#include "model/dtrain.h"
#include "model/optim.h"
#include "model/run_cfg.h"
#include "model/t5.h"

static const char *g_root = ".";

enum { TI = 16, TO = 8, STEPS = 4 };

static void src_path(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", g_root, rel);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    assert_non_null(p);
    return p;
}

/* C 32, F 64, H 2, D 16, 2 + 2 blocks (one Switch layer per stack), byte vocabulary, E
 * experts (0: a dense model), routing groups of 8 tokens (they divide a core's 2 x 16 encoder
 * and 2 x 8 decoder tokens), no dropout, no jitter. */
static model_cfg tiny_cfg(int E)
{
    model_cfg c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "tiny-dtrain");
    c.d_model = 32;
    c.d_ff = 64;
    c.d_kv = 16;
    c.num_heads = 2;
    c.num_layers = c.encoder_layers = c.decoder_layers = 2;
    c.vocab_size = 384;
    c.ffn = MODEL_FFN_RELU;
    c.tied_embeddings = 1;
    c.relative_attention_num_buckets = 8;
    c.relative_attention_max_distance = 16;
    c.has_switch = E > 0;
    if (!c.has_switch)
        return c;
    model_switch_cfg *s = &c.sw;
    s->num_experts = E;
    s->every = 2;
    s->top_k = 1;
    s->capacity_factor_train = 1.0; /* tight: some tokens are dropped */
    s->capacity_factor_eval = 2.0;
    s->min_capacity = 1;
    s->group_size = 8;
    s->capacity_rounding = MODEL_CAPACITY_ROUND;
    s->drop_priority = MODEL_DROP_TOKEN_ORDER;
    s->jitter = MODEL_JITTER_OFF;
    s->router_dtype = MODEL_ROUTER_FP32;
    s->aux_loss_alpha = 1e-2;
    s->z_loss_coef = 1e-3;
    s->init_scale = 1.0;
    return c;
}

/* Batch `step` of B sequences: random bytes, targets with a few pads at the end of some
 * rows, decoder inputs = targets shifted right. */
typedef struct {
    int B;
    int32_t *in, *tgt, *dec;
} batch;

static void make_batch(batch *b, int B, uint64_t step)
{
    b->B = B;
    b->in = xcalloc((size_t)B * TI, sizeof(int32_t));
    b->tgt = xcalloc((size_t)B * TO, sizeof(int32_t));
    b->dec = xcalloc((size_t)B * TO, sizeof(int32_t));
    rng_state r;
    rng_seed(&r, 1000 + step);
    for (size_t i = 0; i < (size_t)B * TI; i++)
        b->in[i] = (int32_t)rng_below(&r, 256);
    for (int s = 0; s < B; s++)
        for (int t = 0; t < TO; t++)
            b->tgt[s * TO + t] = t >= TO - (s % 3) ? MODEL_DATA_PAD_ID
                                                   : (int32_t)rng_below(&r, 256);
    model_data_shift_right(b->dec, b->tgt, (size_t)B, TO);
}

static void free_batch(batch *b)
{
    free(b->in);
    free(b->tgt);
    free(b->dec);
}

static run_train_cfg train_cfg(void)
{
    run_train_cfg t;
    ss_err err = {0};
    assert_int_equal(run_train_cfg_defaults(&t, &err), SS_OK);
    t.clip_norm = 0.5; /* small enough to clip: exercises the global norm */
    return t;
}

/* The single-device reference: model_train's step (zero, forward, backward, clip, update). */
typedef struct {
    model_t5 m;
    float *opt;
    run_train_cfg t;
} ref_trainer;

static void ref_init(ref_trainer *r, const model_cfg *c, int B, const model_numerics *nx)
{
    ss_err err = {0};
    r->t = train_cfg();
    model_t5_shape shape = {B, TI, TO};
    assert_int_equal(model_t5_init(&r->m, c, shape, nx, &err), SS_OK);
    model_t5_init_params(&r->m, 5);
    r->opt = xcalloc(model_adafactor_state_size(r->m.tensors, r->m.ntensors, &r->t.adafactor),
                     sizeof(float));
}

static double ref_step(ref_trainer *r, const batch *b, uint64_t step, model_t5_metrics *mt)
{
    ss_err err = {0};
    model_t5_zero_grad(&r->m);
    assert_int_equal(model_t5_forward(&r->m, b->in, b->dec, b->tgt, 1, NULL, mt, &err), SS_OK);
    assert_int_equal(model_t5_backward(&r->m, &err), SS_OK);
    const double norm = model_grad_clip_global_norm(r->m.grads, r->m.tensors, r->m.ntensors,
                                                    r->t.clip_norm);
    model_adafactor_update(r->m.params, r->m.grads, r->opt, r->m.tensors, r->m.ntensors, step,
                           0.01f, &r->t.adafactor);
    return norm;
}

static void ref_free(ref_trainer *r)
{
    model_t5_free(&r->m);
    free(r->opt);
}

static model_dtrain *dtrain_make(const model_cfg *c, int B, int P, const model_numerics *nx,
                                 const run_train_cfg *t)
{
    ss_err err = {0};
    model_dtrain_cfg dc = {.model = c, .shape = {B, TI, TO}, .nx = *nx, .cores = P,
                           .train = t, .seed = 5};
    model_dtrain *d = NULL;
    ss_status st = model_dtrain_init(&d, &dc, &err);
    if (st != SS_OK)
        print_message("init: %s\n", err.msg);
    assert_int_equal(st, SS_OK);
    return d;
}

/* Counts choices of the reference that differ from the distributed ones. */
static size_t choice_mismatches(const model_t5_metrics *a, const model_dtrain_metrics *b)
{
    assert_int_equal(a->nswitch, b->nswitch);
    size_t bad = 0;
    for (int i = 0; i < a->nswitch; i++) {
        const size_t n = a->choice_offset[i + 1] - a->choice_offset[i];
        assert_int_equal(n, b->choice_offset[i + 1] - b->choice_offset[i]);
        for (size_t j = 0; j < n; j++)
            bad += a->expert_choice[a->choice_offset[i] + j] !=
                   b->expert_choice[b->choice_offset[i] + j];
    }
    return bad;
}

/* Trains STEPS steps both ways; returns the largest loss and parameter differences. */
static void compare(int P, const model_cfg *c, int B, const model_numerics *nx,
                    double *dloss, double *dparam, size_t *mismatches)
{
    ss_err err = {0};
    ref_trainer ref;
    ref_init(&ref, c, B, nx);
    const run_train_cfg t = train_cfg();
    model_dtrain *d = dtrain_make(c, B, P, nx, &t);
    *dloss = *dparam = 0.0;
    *mismatches = 0;
    for (uint64_t s = 0; s < STEPS; s++) {
        batch b;
        make_batch(&b, B, s);
        model_t5_metrics mt;
        const double rn = ref_step(&ref, &b, s, &mt);
        model_dtrain_metrics dm;
        assert_int_equal(model_dtrain_step(d, b.in, b.dec, b.tgt, s, 0.01f, &dm, &err), SS_OK);
        *mismatches += choice_mismatches(&mt, &dm);
        const double dl = fabs(mt.total - dm.total);
        if (dl > *dloss)
            *dloss = dl;
        assert_true(fabs(rn - dm.grad_norm) <= 1e-3 * rn);
        assert_int_equal(mt.tokens, dm.tokens);
        free_batch(&b);
    }
    const size_t n = model_dtrain_nparams(d);
    assert_int_equal(n, ref.m.nparams);
    float *p = xcalloc(n, sizeof(float));
    model_dtrain_params(d, p);
    for (size_t i = 0; i < n; i++) {
        const double diff = fabs((double)p[i] - (double)ref.m.params[i]);
        if (!(diff <= *dparam))
            *dparam = isnan(diff) ? INFINITY : diff;
    }
    assert_true(model_dtrain_replica_spread(d) == 0.0);
    free(p);
    model_dtrain_free(d);
    ref_free(&ref);
}

static void expect_equivalent_cfg(int P, const model_cfg *c, int B, const model_numerics *nx,
                                  double tol, const char *what)
{
    double dl, dp;
    size_t bad;
    compare(P, c, B, nx, &dl, &dp, &bad);
    print_message("%s, %d cores: max |total loss diff| %.3g, max |param diff| %.3g, "
                  "routing mismatches %zu (tolerance %.0e)\n",
                  what, P, dl, dp, bad, tol);
    assert_true(dl <= tol);
    assert_true(dp <= tol);
    assert_int_equal(bad, 0);
}

static void expect_equivalent(int P, int E, int B, const model_numerics *nx, double tol,
                              const char *what)
{
    const model_cfg c = tiny_cfg(E);
    expect_equivalent_cfg(P, &c, B, nx, tol, what);
}

static void test_dtrain_matches_single_device_fp32(void **state)
{
    (void)state;
    const model_numerics nx = model_numerics_fp32();
    expect_equivalent(8, 8, 16, &nx, 1e-5, "fp32");
    expect_equivalent(2, 8, 4, &nx, 1e-5, "fp32");
}

/* Top-2 routing (two rows per token, possibly to two owners) and GEGLU experts. */
static void test_dtrain_top2_geglu(void **state)
{
    (void)state;
    const model_numerics nx = model_numerics_fp32();
    model_cfg c = tiny_cfg(8);
    c.sw.top_k = 2;
    c.ffn = MODEL_FFN_GEGLU;
    expect_equivalent_cfg(4, &c, 8, &nx, 1e-5, "fp32 top-2 GEGLU");
}

/* A dense model is plain data parallelism: no exchange, only the all-reduce. */
static void test_dtrain_dense_data_parallel(void **state)
{
    (void)state;
    const model_numerics nx = model_numerics_fp32();
    expect_equivalent(4, 0, 8, &nx, 1e-5, "fp32 dense");
}

static void test_dtrain_matches_single_device_bf16(void **state)
{
    (void)state;
    const model_numerics nx = model_numerics_bf16(BF16_DENORMALS_FLUSH);
    expect_equivalent(8, 8, 16, &nx, 2e-3, "bf16");
    expect_equivalent(2, 4, 4, &nx, 2e-3, "bf16");
}

/* Expert replicas (E < P, each expert on P / E cores, tokens to the replica in the sender's
 * replica group): the same equivalence, with each expert's gradients all-reduced among its
 * replicas; the replicas stay bit-identical. */
static void test_dtrain_expert_replicas(void **state)
{
    (void)state;
    const model_numerics fp32 = model_numerics_fp32();
    const model_numerics bf16 = model_numerics_bf16(BF16_DENORMALS_FLUSH);
    expect_equivalent(8, 4, 16, &fp32, 1e-5, "fp32 replicas (4 experts)");
    expect_equivalent(8, 1, 16, &fp32, 1e-5, "fp32 replicas (1 expert)");
    expect_equivalent(4, 2, 8, &bf16, 2e-3, "bf16 replicas (2 experts)");
    model_cfg c = tiny_cfg(2);
    c.sw.top_k = 2;
    c.ffn = MODEL_FFN_GEGLU;
    expect_equivalent_cfg(8, &c, 16, &fp32, 1e-5, "fp32 replicas top-2 GEGLU");
}

/* The core that runs source s's rows for expert e (dtrain.h's placement). */
static int owner_of(int e, int s, int P, int E)
{
    const int R = E < P ? P / E : 1, Eo = E < P ? 1 : E / P;
    return R > 1 ? e * R + s % R : e / Eo;
}

/* The rows each core received in a dispatch are the kept choices for its experts from the
 * sources it serves, counted from the single-device reference's routing decisions (source s
 * made the s-th P-th of a layer's choices); the sent matrix agrees. */
static void expect_tokens_moved(int P, int E, int B)
{
    ss_err err = {0};
    const model_numerics nx = model_numerics_fp32();
    const model_cfg c = tiny_cfg(E);
    ref_trainer ref;
    ref_init(&ref, &c, B, &nx);
    const run_train_cfg t = train_cfg();
    model_dtrain *d = dtrain_make(&c, B, P, &nx, &t);
    batch b;
    make_batch(&b, B, 0);
    model_t5_metrics mt;
    ref_step(&ref, &b, 0, &mt);
    model_dtrain_metrics dm;
    assert_int_equal(model_dtrain_step(d, b.in, b.dec, b.tgt, 0, 0.01f, &dm, &err), SS_OK);
    uint64_t moved = 0, total_kept = 0;
    for (int i = 0; i < mt.nswitch; i++) {
        const size_t n = mt.choice_offset[i + 1] - mt.choice_offset[i], per = n / (size_t)P;
        for (int o = 0; o < P; o++) {
            uint64_t kept = 0, sent = 0;
            for (size_t j = 0; j < n; j++) {
                const int e = mt.expert_choice[mt.choice_offset[i] + j];
                kept += e >= 0 && owner_of(e, (int)(j / per), P, E) == o;
            }
            for (int s = 0; s < P; s++) {
                const uint64_t m = dm.sent_rows[((size_t)i * P + (size_t)s) * P + (size_t)o];
                sent += m;
                moved += s != o ? m : 0;
            }
            print_message("%d experts on %d cores, layer %d core %d: received %llu rows, "
                          "router kept %llu\n", E, P, i, o,
                          (unsigned long long)dm.received_rows[i * P + o],
                          (unsigned long long)kept);
            assert_int_equal(dm.received_rows[i * P + o], kept);
            assert_int_equal(sent, kept);
            total_kept += kept;
        }
    }
    assert_true(total_kept > 0);
    assert_true(moved > 0); /* rows crossed between cores, not just local copies */
    free_batch(&b);
    model_dtrain_free(d);
    ref_free(&ref);
}

static void test_dtrain_tokens_moved(void **state)
{
    (void)state;
    expect_tokens_moved(4, 8, 8);
    expect_tokens_moved(8, 4, 16); /* replicas: each expert serves 4 of the 8 sources */
}

static void expect_init_error(const model_cfg *c, int B, int P, ss_status code,
                              const char *needle)
{
    ss_err err = {0};
    const model_numerics nx = model_numerics_fp32();
    const run_train_cfg t = train_cfg();
    model_dtrain_cfg dc = {.model = c, .shape = {B, TI, TO}, .nx = nx, .cores = P, .train = &t,
                           .seed = 1};
    model_dtrain *d = (model_dtrain *)&dc; /* must be reset to NULL */
    assert_int_equal(model_dtrain_init(&d, &dc, &err), code);
    assert_null(d);
    print_message("expected error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, needle));
}

static void test_dtrain_impossible_layouts(void **state)
{
    (void)state;
    model_cfg c = tiny_cfg(3);
    expect_init_error(&c, 16, 8, SS_ERR_CONFIG, "3 experts do not fit 8 cores");
    c = tiny_cfg(12);
    expect_init_error(&c, 16, 8, SS_ERR_CONFIG, "12 experts do not fit 8 cores");
    c = tiny_cfg(8);
    expect_init_error(&c, 12, 8, SS_ERR_CONFIG, "batch 12 is not divisible by 8 cores");
    expect_init_error(&c, 16, 0, SS_ERR_CONFIG, "0 cores");
    c.sw.group_size = 12; /* does not divide a core's 32 encoder tokens */
    expect_init_error(&c, 16, 8, SS_ERR_RANGE, "group_size 12 does not divide the 32 tokens");

    /* a run with model parallelism */
    char path[4096];
    src_path(path, sizeof path, "tests/train/tiny-run.yaml");
    run_cfg run;
    ss_err err = {0};
    assert_int_equal(run_cfg_load(&run, path, &err), SS_OK);
    model_dtrain_run_opts o = {.run = &run, .steps = 1};
    json_t *res = NULL;
    assert_int_equal(model_dtrain_run(&o, &res, &err), SS_ERR_CONFIG);
    assert_null(res);
    print_message("expected error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "plan.model = 2"));
}

/* A token outside the vocabulary is refused before any core thread starts (a core failing in
 * its embedding would leave the others waiting at an exchange). */
static void test_dtrain_rejects_bad_tokens(void **state)
{
    (void)state;
    ss_err err = {0};
    const model_numerics nx = model_numerics_fp32();
    const model_cfg c = tiny_cfg(8);
    const run_train_cfg t = train_cfg();
    model_dtrain *d = dtrain_make(&c, 16, 8, &nx, &t);
    batch b;
    make_batch(&b, 16, 0);
    b.in[17 * TI / 2] = 999;
    assert_int_equal(model_dtrain_step(d, b.in, b.dec, b.tgt, 0, 0.01f, NULL, &err),
                     SS_ERR_RANGE);
    print_message("expected error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "inputs[136] = 999"));
    b.in[17 * TI / 2] = 1;
    b.tgt[5] = -2;
    assert_int_equal(model_dtrain_step(d, b.in, b.dec, b.tgt, 0, 0.01f, NULL, &err),
                     SS_ERR_RANGE);
    assert_non_null(strstr(err.msg, "targets[5] = -2"));
    free_batch(&b);
    model_dtrain_free(d);
}

static void load_run(run_cfg *run, const char *rel)
{
    char path[4096];
    ss_err err = {0};
    src_path(path, sizeof path, rel);
    if (run_cfg_load(run, path, &err) != SS_OK)
        print_message("%s\n", err.msg);
    assert_int_equal(err.code, SS_OK);
}

/* The step program of the dp8 run is timed: positive, different for skewed routing, slower
 * on slower links. */
static void test_dtrain_sim_step_time(void **state)
{
    (void)state;
    ss_err err = {0};
    run_cfg run;
    load_run(&run, "configs/runs/switch-tiny-dp8.yaml");
    const int ns = 2, E = run.model.sw.num_experts;
    int32_t *skew = xcalloc((size_t)ns * (size_t)E, sizeof(int32_t));
    for (int l = 0; l < ns; l++) {
        skew[l * E] = 900; /* most first choices on expert 0 */
        for (int e = 1; e < E; e++)
            skew[l * E + e] = 10;
    }
    double uni, sk, slow;
    assert_int_equal(model_dtrain_step_seconds(&run, NULL, ns, &uni, &err), SS_OK);
    assert_int_equal(model_dtrain_step_seconds(&run, skew, ns, &sk, &err), SS_OK);
    run.pod.chip.link_gbps /= 8.0;
    assert_int_equal(model_dtrain_step_seconds(&run, NULL, ns, &slow, &err), SS_OK);
    print_message("switch-tiny-dp8 simulated step: uniform %.6g s, skewed %.6g s, links / 8: "
                  "%.6g s\n", uni, sk, slow);
    assert_true(uni > 0.0 && isfinite(uni));
    assert_true(sk != uni);
    assert_true(slow > uni);
    free(skew);
}

/* A whole run on the dp8 layout with a tiny model: per-step lines carry real losses and
 * sim_step_s, results.json the mean simulated step. */
static void test_dtrain_run_reports_sim_time(void **state)
{
    (void)state;
    ss_err err = {0};
    run_cfg run;
    load_run(&run, "tests/dtrain/tiny-dp8.yaml");
    char dir[] = "/tmp/switchsim-dtrain-XXXXXX";
    assert_non_null(mkdtemp(dir));
    model_dtrain_run_opts o = {.run = &run, .steps = 3, .out_dir = dir};
    json_t *res = NULL;
    ss_status st = model_dtrain_run(&o, &res, &err);
    if (st != SS_OK)
        print_message("%s\n", err.msg);
    assert_int_equal(st, SS_OK);
    const json_t *sim = json_object_get(res, "sim_step_s");
    const double mean = json_real_value(json_object_get(sim, "mean"));
    const double loss = json_real_value(json_object_get(json_object_get(res, "final"),
                                                        "train_loss"));
    print_message("tiny-dp8: final loss %.6g, mean simulated step %.6g s\n", loss, mean);
    assert_true(mean > 0.0);
    assert_true(loss > 0.0 && isfinite(loss));
    assert_int_equal(json_integer_value(json_object_get(res, "cores")), 8);
    json_decref(res);
    /* metrics.jsonl: 3 training lines, each with a loss and a sim_step_s, and the held-out
     * evaluation after the last step */
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[8192];
    int n = 0, nev = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        assert_non_null(j);
        assert_true(json_real_value(json_object_get(j, "loss")) > 0.0);
        if (strcmp(json_string_value(json_object_get(j, "split")), "heldout") == 0) {
            assert_int_equal(json_integer_value(json_object_get(j, "step")), 3);
            nev++;
        } else {
            assert_true(json_real_value(json_object_get(j, "sim_step_s")) > 0.0);
            assert_non_null(json_object_get(j, "received_rows"));
            n++;
        }
        json_decref(j);
    }
    fclose(f);
    assert_int_equal(n, 3);
    assert_int_equal(nev, 1);
    unlink(path);
    snprintf(path, sizeof path, "%s/checkpoint.bin", dir);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof path, "%s/results.json", dir);
    assert_int_equal(unlink(path), 0);
    rmdir(dir);
}

/* metrics.jsonl of dir with every line's wall_s removed (keys sorted, 17 digits: equal
 * strings mean bit-identical values); *train and *heldout count the lines of each split. */
static char *metrics_without_wall(const char *dir, int *train, int *heldout)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t cap = 1 << 16, len = 0;
    char *out = xcalloc(cap, 1), line[16384];
    *train = *heldout = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        assert_int_equal(json_object_del(j, "wall_s"), 0);
        const char *split = json_string_value(json_object_get(j, "split"));
        *train += strcmp(split, "train") == 0;
        *heldout += strcmp(split, "heldout") == 0;
        char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
        json_decref(j);
        const size_t n = strlen(text);
        while (len + n + 2 > cap) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        memcpy(out + len, text, n);
        len += n;
        out[len++] = '\n';
        out[len] = 0;
        free(text);
    }
    fclose(f);
    return out;
}

/* checkpoint.bin of dir without its header's wall seconds and checksum: the parameters and
 * optimizer state (from byte 256), whose size goes to *n. */
static unsigned char *checkpoint_arrays(const char *dir, size_t *n)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint.bin", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    const long size = ftell(f);
    assert_true(size > 264);
    *n = (size_t)size - 264;
    unsigned char *b = xcalloc(*n, 1);
    assert_int_equal(fseek(f, 256, SEEK_SET), 0);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void run_to(run_cfg *run, const char *dir, uint64_t steps, int resume, ss_status want,
                   const char *needle)
{
    ss_err err = {0};
    model_dtrain_run_opts o = {.run = run, .steps = steps, .out_dir = dir, .resume = resume};
    json_t *res = NULL;
    const ss_status st = model_dtrain_run(&o, &res, &err);
    if (st != want || needle)
        print_message("run to step %llu%s: %s\n", (unsigned long long)steps,
                      resume ? " (resumed)" : "", st == SS_OK ? "ok" : err.msg);
    assert_int_equal(st, want);
    if (needle)
        assert_non_null(strstr(err.msg, needle));
    if (st == SS_OK) {
        const json_t *fin = json_object_get(res, "final");
        assert_true(json_real_value(json_object_get(fin, "eval_loss")) > 0.0);
        assert_int_equal(json_integer_value(json_object_get(fin, "eval_step")), (int)steps);
    }
    json_decref(res);
}

/* A distributed run stopped at step 2 and resumed to step 4 writes the uninterrupted run's
 * metrics lines (training and held-out, all but wall_s) and checkpoint arrays bit for bit:
 * 4 experts on 8 cores (replicas), with dropout, router jitter and expert dropout on (the
 * cores' streams are keyed by step). A line written after the checkpoint is dropped on
 * resume; resuming a finished run adds no line; a checkpoint of another core count is
 * refused. */
static void test_dtrain_resume_bit_for_bit(void **state)
{
    (void)state;
    run_cfg run;
    load_run(&run, "tests/dtrain/tiny-dp8.yaml");
    run.model.sw.num_experts = 4;
    run.train.eval_every = 2;
    run.train.eval_batches = 1;
    run.train.checkpoint_every = 2;
    char a[] = "/tmp/switchsim-dtrain-a-XXXXXX", b[] = "/tmp/switchsim-dtrain-b-XXXXXX";
    assert_non_null(mkdtemp(a));
    assert_non_null(mkdtemp(b));
    run_to(&run, a, 4, 0, SS_OK, NULL);
    run_to(&run, b, 2, 0, SS_OK, NULL);
    run_to(&run, b, 3, 0, SS_ERR_USAGE, "already holds a checkpoint");
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", b);
    FILE *f = fopen(path, "a"); /* as if a run had stopped after step 3's line */
    assert_non_null(f);
    fputs("{\"split\": \"train\", \"step\": 3, \"loss\": 1, \"wall_s\": 0}\n", f);
    fclose(f);
    run_to(&run, b, 4, 1, SS_OK, NULL);
    int ta, ha, tb, hb;
    char *ma = metrics_without_wall(a, &ta, &ha), *mb = metrics_without_wall(b, &tb, &hb);
    size_t na, nb;
    unsigned char *ca = checkpoint_arrays(a, &na), *cb = checkpoint_arrays(b, &nb);
    size_t bad = 0;
    for (size_t i = 0; i < na && i < nb; i++)
        bad += ca[i] != cb[i];
    print_message("uninterrupted: %d training + %d held-out lines; resumed: %d + %d; "
                  "metrics equal: %s; checkpoint arrays %zu vs %zu bytes, %zu differ\n", ta,
                  ha, tb, hb, strcmp(ma, mb) == 0 ? "yes" : "no", na, nb, bad);
    assert_int_equal(ta, 4);
    assert_int_equal(ha, 2);
    assert_string_equal(ma, mb);
    assert_int_equal(na, nb);
    assert_int_equal(bad, 0);
    /* resuming a run already at its end trains and writes nothing */
    run_to(&run, b, 4, 1, SS_OK, NULL);
    char *again = metrics_without_wall(b, &tb, &hb);
    assert_string_equal(again, ma);
    free(again);
    /* another core count (one core per chip of the pod): the optimizer state's layout
     * differs */
    run.pod.chip.cores_per_chip = 1;
    run.pod.cores = run.pod.chips;
    run.plan.data = run.pod.cores;
    run_to(&run, b, 6, 1, SS_ERR_DATA, "settings");
    free(ma);
    free(mb);
    free(ca);
    free(cb);
    assert_int_equal(file_remove_tree(a), 0);
    assert_int_equal(file_remove_tree(b), 0);
}

int main(void)
{
    const char *root = getenv("SWITCHSIM_SOURCE_ROOT");
    if (root)
        g_root = root;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtrain_matches_single_device_fp32),
        cmocka_unit_test(test_dtrain_matches_single_device_bf16),
        cmocka_unit_test(test_dtrain_dense_data_parallel),
        cmocka_unit_test(test_dtrain_top2_geglu),
        cmocka_unit_test(test_dtrain_expert_replicas),
        cmocka_unit_test(test_dtrain_tokens_moved),
        cmocka_unit_test(test_dtrain_impossible_layouts),
        cmocka_unit_test(test_dtrain_rejects_bad_tokens),
        cmocka_unit_test(test_dtrain_sim_step_time),
        cmocka_unit_test(test_dtrain_run_reports_sim_time),
        cmocka_unit_test(test_dtrain_resume_bit_for_bit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
