/* This file implements the tests of the whole T5 encoder-decoder with Switch layers
 * (model/t5.c): the parameter layout against model/count.h and the HF names, the Switch block
 * rule, the initialisation (statistics, determinism, per-tensor streams), the metrics, argument
 * errors, central finite-difference gradient checks of the total loss for a sample of
 * elements of EVERY tensor and along two directions per tensor (dense and Switch, tied and
 * untied head, ReLU and GEGLU, with and without dropout), evaluation without dropout,
 * determinism of forward and backward, an overfitting run of plain SGD, bf16
 * against fp32, and one timed forward/backward of configs/models/switch-tiny.yaml.
 *
 * Invariants: gradient checks run in fp32 (model_numerics_fp32) with jitter off, init scale 1
 * (gradients well above the fp32 round-off of the loss), the same dropout masks in every
 * evaluation (the rng is reseeded before each forward), and skip (and count) every
 * perturbation that changes a routing decision (metrics.expert_choice and tokens_per_expert
 * compared with the unperturbed forward; a dropped token changing its expert moves L_aux's
 * f_i). Derivatives are Richardson estimates from central differences at h and h/2; the
 * tolerances and the allowance for round-off are stated at FD_EPS. Per tensor: its
 * largest-|gradient| element and 4 random ones, and the directional derivative along the
 * analytic gradient and along a random sign vector (which sees gradient terms missing from the
 * analytic gradient altogether). Each of these mutations of model/t5.c was tried and makes the
 * checks fail: no decoder bias-table gradient, no cross-attention gradient into the encoder,
 * daux = 0, dz = 0, no decoder or no encoder embedding gradient, dropout masks ignored in the
 * backward, no final-norm or cross-attention-norm weight gradient.
 * reference: the semantics stated in model/t5.h.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/rng.h"
#include "model/count.h"
#include "model/linear.h"
#include "model/model_cfg.h"
#include "model/t5.h"

enum { B_ = 2, TI = 12, TO = 6, PAD = 0 };

/* Finite differences (see gradcheck). FD_LOSS_NOISE bounds the fp32 round-off of the total loss
 * (about 4.6 here) when one parameter moves: observed up to ~3e-6. The Richardson estimate
 * (4 d(h/2) - d(h)) / 3 then carries up to 3 FD_LOSS_NOISE / h of noise, which is allowed on
 * top of the relative tolerance. An element whose two estimates d(h), d(h/2) disagree by more
 * than 10% plus that noise sits on a ReLU kink and is skipped (counted). */
#define FD_EPS 1e-2f
#define FD_LOSS_NOISE 4e-6
#define FD_TOL_ELEMENT 2e-2
#define FD_DIR_DELTA 1e-3
#define FD_TOL_DIRECTION 1e-2
#define FD_TOL_RANDOM_RELU 0.25

/* ---- fixture --------------------------------------------------------------------------- */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    assert_non_null(p);
    return p;
}

/* The tiny model: C 32, F 64, H 2, D 16, 2 + 2 blocks, V 64, 8 buckets; with Switch: E 4
 * every 2, cf 1 (train) / 2 (eval), min capacity 1, jitter off, alpha 1e-2, c_z 1e-3. */
static model_cfg tiny_cfg(int has_switch, model_ffn ffn, int tied)
{
    model_cfg c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "tiny");
    c.d_model = 32;
    c.d_ff = 64;
    c.d_kv = 16;
    c.num_heads = 2;
    c.num_layers = c.encoder_layers = c.decoder_layers = 2;
    c.vocab_size = 64;
    c.ffn = ffn;
    c.tied_embeddings = tied;
    c.relative_attention_num_buckets = 8;
    c.relative_attention_max_distance = 16;
    c.dropout = 0.0;
    c.has_switch = has_switch;
    if (has_switch) {
        model_switch_cfg *s = &c.sw;
        s->num_experts = 4;
        s->every = 2;
        s->top_k = 1;
        s->capacity_factor_train = 1.0;
        s->capacity_factor_eval = 2.0;
        s->min_capacity = 1;
        s->group_size = 0;
        s->capacity_rounding = MODEL_CAPACITY_ROUND;
        s->drop_priority = MODEL_DROP_TOKEN_ORDER;
        s->jitter = MODEL_JITTER_OFF;
        s->jitter_eps = 1e-2;
        s->router_dtype = MODEL_ROUTER_FP32;
        s->aux_loss_alpha = 1e-2;
        s->z_loss_coef = 1e-3;
        s->init_scale = 0.1;
        s->expert_dropout = 0.0;
    }
    return c;
}

typedef struct {
    int32_t in[B_ * TI];
    int32_t dec[B_ * TO];
    int32_t tgt[B_ * TO];
} batch;

/* Random non-pad tokens; row 1 has 3 padded inputs and 2 padded targets at the end. */
static batch make_batch(uint64_t seed, int V)
{
    batch b;
    rng_state r;
    rng_seed(&r, seed);
    for (int i = 0; i < B_ * TI; i++)
        b.in[i] = 1 + (int32_t)rng_below(&r, (uint64_t)V - 1);
    for (int i = 0; i < B_ * TO; i++)
        b.tgt[i] = 1 + (int32_t)rng_below(&r, (uint64_t)V - 1);
    for (int t = TI - 3; t < TI; t++)
        b.in[TI + t] = PAD;
    for (int t = TO - 2; t < TO; t++)
        b.tgt[TO + t] = PAD;
    for (int row = 0; row < B_; row++) {
        b.dec[row * TO] = PAD;
        for (int t = 1; t < TO; t++)
            b.dec[row * TO + t] = b.tgt[row * TO + t - 1];
    }
    return b;
}

static const model_t5_shape tiny_shape = {B_, TI, TO};

static void make_model(model_t5 *m, const model_cfg *c, model_t5_shape shape,
                       const model_numerics *nx, uint64_t seed)
{
    ss_err err = {0};
    ss_status st = model_t5_init(m, c, shape, nx, &err);
    if (st != SS_OK)
        fprintf(stderr, "model_t5_init: %s\n", err.msg);
    assert_int_equal(st, SS_OK);
    m->pad_id = PAD;
    model_t5_init_params(m, seed);
}

/* Forward in training mode with the rng reseeded from drop_seed (same dropout masks). */
static model_t5_metrics run_forward(model_t5 *m, const batch *b, uint64_t drop_seed)
{
    rng_state r;
    rng_seed(&r, drop_seed);
    model_t5_metrics met;
    ss_err err = {0};
    ss_status st = model_t5_forward(m, b->in, b->dec, b->tgt, 1, &r, &met, &err);
    if (st != SS_OK)
        fprintf(stderr, "forward: %s\n", err.msg);
    assert_int_equal(st, SS_OK);
    return met;
}

static void run_backward(model_t5 *m)
{
    ss_err err = {0};
    ss_status st = model_t5_backward(m, &err);
    if (st != SS_OK)
        fprintf(stderr, "backward: %s\n", err.msg);
    assert_int_equal(st, SS_OK);
}

static const model_tensor *tensor(const model_t5 *m, const char *name)
{
    long k = model_t5_tensor_find(m, name);
    if (k < 0)
        fprintf(stderr, "no tensor %s\n", name);
    assert_true(k >= 0);
    return &m->tensors[k];
}

/* ---- layout ---------------------------------------------------------------------------- */

static void check_count(const model_cfg *c)
{
    model_t5 m;
    const model_numerics nx = model_numerics_fp32();
    make_model(&m, c, tiny_shape, &nx, 1);
    model_counts counts;
    ss_err err = {0};
    assert_int_equal(model_count(c, TI, TO, &counts, &err), SS_OK);
    printf("  switch=%d ffn=%s tied=%d every=%d: nparams %zu, count.h params_all %lld\n",
           c->has_switch, model_ffn_name(c->ffn), c->tied_embeddings, c->sw.every, m.nparams,
           (long long)counts.params_all);
    assert_int_equal(m.nparams, (size_t)counts.params_all);
    assert_int_equal(model_tensors_check(m.tensors, m.ntensors, m.nparams, &err), SS_OK);
    size_t off = 0;
    for (size_t k = 0; k < m.ntensors; k++) {
        assert_int_equal(m.tensors[k].offset, off);
        off += model_tensor_size(&m.tensors[k]);
    }
    assert_int_equal(off, m.nparams);
    model_t5_free(&m);
}

static void test_t5_param_count_matches_count_h(void **state)
{
    (void)state;
    for (int sw = 0; sw < 2; sw++)
        for (int ffn = 0; ffn < 2; ffn++)
            for (int tied = 0; tied < 2; tied++) {
                model_cfg c = tiny_cfg(sw, (model_ffn)ffn, tied);
                check_count(&c);
            }
    model_cfg c = tiny_cfg(1, MODEL_FFN_RELU, 1);
    c.sw.every = 1;
    check_count(&c);
}

static void expect_shape(const model_t5 *m, const char *name, size_t count, size_t rows,
                         size_t cols)
{
    const model_tensor *t = tensor(m, name);
    assert_int_equal(t->count ? t->count : 1, count);
    assert_int_equal(t->rows, rows);
    assert_int_equal(t->cols, cols);
}

static void test_t5_layout_names(void **state)
{
    (void)state;
    const model_numerics nx = model_numerics_fp32();
    model_cfg c = tiny_cfg(1, MODEL_FFN_GEGLU, 0);
    model_t5 m;
    make_model(&m, &c, tiny_shape, &nx, 1);
    assert_int_equal(tensor(&m, "shared")->offset, 0);
    expect_shape(&m, "shared", 1, 64, 32);
    expect_shape(&m, "encoder.block.0.layer.0.SelfAttention.q", 1, 32, 32);
    expect_shape(&m, "encoder.block.0.layer.0.SelfAttention.o", 1, 32, 32);
    expect_shape(&m, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias", 1, 8, 2);
    expect_shape(&m, "encoder.block.0.layer.0.layer_norm", 1, 1, 32);
    expect_shape(&m, "encoder.block.0.layer.1.mlp.wi", 1, 32, 128);
    expect_shape(&m, "encoder.block.0.layer.1.mlp.wo", 1, 64, 32);
    expect_shape(&m, "encoder.block.1.layer.1.mlp.router.classifier", 1, 32, 4);
    expect_shape(&m, "encoder.block.1.layer.1.mlp.experts.wi", 4, 32, 128);
    expect_shape(&m, "encoder.block.1.layer.1.mlp.experts.wo", 4, 64, 32);
    expect_shape(&m, "encoder.final_layer_norm", 1, 1, 32);
    expect_shape(&m, "decoder.block.0.layer.0.SelfAttention.relative_attention_bias", 1, 8, 2);
    expect_shape(&m, "decoder.block.1.layer.1.EncDecAttention.k", 1, 32, 32);
    expect_shape(&m, "decoder.block.1.layer.1.layer_norm", 1, 1, 32);
    expect_shape(&m, "decoder.block.1.layer.2.mlp.router.classifier", 1, 32, 4);
    expect_shape(&m, "decoder.block.0.layer.2.layer_norm", 1, 1, 32);
    expect_shape(&m, "decoder.final_layer_norm", 1, 1, 32);
    expect_shape(&m, "lm_head", 1, 32, 64);
    assert_int_equal(m.tensors[m.ntensors - 1].offset, tensor(&m, "lm_head")->offset);
    /* only the first block of a stack has a bias table; no dense FFN in a Switch block */
    assert_true(model_t5_tensor_find(&m, "encoder.block.1.layer.0.SelfAttention."
                                         "relative_attention_bias") < 0);
    assert_true(model_t5_tensor_find(&m, "encoder.block.1.layer.1.mlp.wi") < 0);
    assert_true(model_t5_tensor_find(&m, "decoder.block.0.layer.1.EncDecAttention."
                                         "relative_attention_bias") < 0);
    /* HF state_dict order inside a block: q k v o (bias) norm, then the FFN and its norm */
    assert_true(tensor(&m, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias")
                    ->offset < tensor(&m, "encoder.block.0.layer.0.layer_norm")->offset);
    assert_true(tensor(&m, "encoder.block.1.layer.1.mlp.experts.wo")->offset <
                tensor(&m, "encoder.block.1.layer.1.layer_norm")->offset);
    model_t5_free(&m);
    /* tied: no lm_head; every = 1: block 0 is a Switch block too */
    c = tiny_cfg(1, MODEL_FFN_RELU, 1);
    c.sw.every = 1;
    make_model(&m, &c, tiny_shape, &nx, 1);
    assert_true(model_t5_tensor_find(&m, "lm_head") < 0);
    expect_shape(&m, "encoder.block.0.layer.1.mlp.router.classifier", 1, 32, 4);
    expect_shape(&m, "decoder.block.0.layer.2.mlp.experts.wi", 4, 32, 64);
    model_t5_free(&m);
}

/* Block i is a Switch block iff i % every == every - 1: odd blocks for every 2 (HF's rule),
 * all for every 1, and floor(L / every) per stack for every L and every. */
static void test_t5_switch_block_rule(void **state)
{
    (void)state;
    model_cfg c = tiny_cfg(1, MODEL_FFN_RELU, 1);
    for (int every = 1; every <= 4; every++) {
        c.sw.every = every;
        for (int L = 1; L <= 12; L++) {
            int n = 0;
            for (int i = 0; i < L; i++) {
                int hf = every == 1 || i % every == 1;
                if (every <= 2)
                    assert_int_equal(model_t5_block_is_switch(&c, i), hf);
                n += model_t5_block_is_switch(&c, i);
            }
            assert_int_equal(n, model_cfg_switch_layers(&c, L));
        }
    }
    c.has_switch = 0;
    assert_int_equal(model_t5_block_is_switch(&c, 1), 0);
}

/* ---- initialisation -------------------------------------------------------------------- */

/* The std of N(0,1) truncated to [-2, 2]. */
static double truncated_std(void)
{
    const double phi2 = exp(-2.0) / sqrt(2.0 * 3.14159265358979323846), mass = erf(2.0 / sqrt(2.0));
    return sqrt(1.0 - 2.0 * 2.0 * phi2 / mass);
}

static void check_init_stats(const model_t5 *m, const char *name, double std)
{
    const model_tensor *t = tensor(m, name);
    const size_t n = model_tensor_size(t);
    const float *x = m->params + t->offset;
    double s = 0.0, s2 = 0.0, mx = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
        mx = fmax(mx, fabs(x[i]));
    }
    const double mean = s / (double)n, sd = sqrt(s2 / (double)n - mean * mean);
    const double want = std * truncated_std();
    printf("  %-50s n %6zu std %.5f (want %.5f) mean %+.5f max|x| %.5f (bound %.5f)\n", name,
           n, sd, want, mean, mx, 2 * std);
    assert_true(fabs(sd - want) < 0.05 * want);
    assert_true(fabs(mean) < 4.0 * want / sqrt((double)n));
    assert_true(mx <= 2.0 * std * (1 + 1e-6));
}

static void test_t5_init_statistics(void **state)
{
    (void)state;
    const model_numerics nx = model_numerics_fp32();
    model_cfg c = tiny_cfg(1, MODEL_FFN_RELU, 0);
    c.d_model = 64;
    c.d_ff = 128;
    c.vocab_size = 256;
    model_t5 m;
    make_model(&m, &c, tiny_shape, &nx, 7);
    const double s = c.sw.init_scale;
    check_init_stats(&m, "shared", 1.0);
    check_init_stats(&m, "encoder.block.0.layer.0.SelfAttention.q", sqrt(s / (64.0 * 16.0)));
    check_init_stats(&m, "encoder.block.0.layer.0.SelfAttention.k", sqrt(s / 64.0));
    check_init_stats(&m, "decoder.block.0.layer.1.EncDecAttention.o", sqrt(s / 32.0));
    check_init_stats(&m, "encoder.block.1.layer.1.mlp.experts.wi", sqrt(s / 64.0));
    check_init_stats(&m, "encoder.block.1.layer.1.mlp.experts.wo", sqrt(s / 128.0));
    check_init_stats(&m, "decoder.block.0.layer.2.mlp.wi", sqrt(s / 64.0));
    check_init_stats(&m, "lm_head", sqrt(s / 64.0));
    const model_tensor *t = tensor(&m, "decoder.block.1.layer.1.layer_norm");
    for (size_t i = 0; i < t->cols; i++)
        assert_true(m.params[t->offset + i] == 1.0f);
    model_t5_free(&m);
    /* a dense model uses s = 1 */
    c = tiny_cfg(0, MODEL_FFN_RELU, 0);
    c.d_model = 64;
    c.d_ff = 128;
    make_model(&m, &c, tiny_shape, &nx, 7);
    check_init_stats(&m, "encoder.block.0.layer.1.mlp.wi", sqrt(1.0 / 64.0));
    model_t5_free(&m);
}

static void test_t5_init_deterministic_per_tensor(void **state)
{
    (void)state;
    const model_numerics nx = model_numerics_fp32();
    model_cfg tied = tiny_cfg(1, MODEL_FFN_RELU, 1), untied = tiny_cfg(1, MODEL_FFN_RELU, 0);
    model_t5 a, b, d, u;
    make_model(&a, &tied, tiny_shape, &nx, 11);
    make_model(&b, &tied, tiny_shape, &nx, 11);
    make_model(&d, &tied, tiny_shape, &nx, 12);
    make_model(&u, &untied, tiny_shape, &nx, 11);
    assert_memory_equal(a.params, b.params, a.nparams * sizeof(float));
    size_t same = 0;
    for (size_t i = 0; i < a.nparams; i++)
        same += a.params[i] == d.params[i];
    printf("  seed 11 vs 12: %zu of %zu equal (the norms: 1)\n", same, a.nparams);
    assert_true(same < a.nparams / 10);
    /* untied adds lm_head at the end; every other tensor keeps its values */
    for (size_t k = 0; k < a.ntensors; k++) {
        const model_tensor *ta = &a.tensors[k], *tu = tensor(&u, ta->name);
        assert_memory_equal(a.params + ta->offset, u.params + tu->offset,
                            model_tensor_size(ta) * sizeof(float));
    }
    model_t5_free(&a);
    model_t5_free(&b);
    model_t5_free(&d);
    model_t5_free(&u);
}

/* ---- metrics and errors ---------------------------------------------------------------- */

static void test_t5_metrics(void **state)
{
    (void)state;
    const model_numerics nx = model_numerics_fp32();
    model_cfg c = tiny_cfg(1, MODEL_FFN_RELU, 1);
    model_t5 m;
    make_model(&m, &c, tiny_shape, &nx, 3);
    batch b = make_batch(5, c.vocab_size);
    model_t5_metrics met = run_forward(&m, &b, 0);
    size_t nonpad = 0;
    for (int i = 0; i < B_ * TO; i++)
        nonpad += b.tgt[i] != PAD;
    assert_int_equal(met.tokens, nonpad);
    assert_true(met.correct <= met.tokens);
    assert_int_equal(met.nswitch, 2);
    assert_int_equal(met.nswitch_encoder, 1);
    assert_int_equal(met.num_experts, 4);
    assert_int_equal(met.top_k, 1);
    assert_int_equal(met.switch_block[0], 1);
    assert_int_equal(met.switch_block[1], 1);
    assert_int_equal(met.layer_tokens[0], B_ * TI);
    assert_int_equal(met.layer_tokens[1], B_ * TO);
    assert_int_equal(met.choice_offset[1], B_ * TI);
    assert_int_equal(met.choice_offset[2], B_ * (TI + TO));
    double aux = 0, z = 0;
    for (int i = 0; i < met.nswitch; i++) {
        aux += met.layer_aux_loss[i];
        z += met.layer_z_loss[i];
        int32_t sum = 0;
        for (int e = 0; e < 4; e++)
            sum += met.tokens_per_expert[i * 4 + e];
        assert_int_equal((size_t)sum, met.layer_tokens[i]);
        size_t dropped = 0;
        for (size_t t = met.choice_offset[i]; t < met.choice_offset[i + 1]; t++) {
            assert_true(met.expert_choice[t] >= -1 && met.expert_choice[t] < 4);
            dropped += met.expert_choice[t] == -1;
        }
        printf("  layer %d: capacity %zu dropped %zu (%.4f) entropy %.4f aux %.6f z %.6f\n", i,
               met.capacity[i], dropped, met.dropped_fraction[i], met.router_entropy[i],
               met.layer_aux_loss[i], met.layer_z_loss[i]);
        assert_true(fabs(met.dropped_fraction[i] - (double)dropped /
                         (double)met.layer_tokens[i]) < 1e-12);
        assert_true(met.router_entropy[i] > 0 && met.router_entropy[i] <= log(4.0) + 1e-6);
        assert_true(met.layer_aux_loss[i] > 0 && met.layer_z_loss[i] > 0);
    }
    assert_true(met.aux_loss == aux && met.z_loss == z);
    assert_true(met.total == met.loss + met.aux_loss + met.z_loss);
    printf("  loss %.6f aux %.6f z %.6f total %.6f\n", met.loss, met.aux_loss, met.z_loss,
           met.total);
    /* evaluation: the eval capacity factor (2) and no rng needed */
    assert_int_equal(met.capacity[0], 6);
    ss_err err = {0};
    model_t5_metrics ev;
    assert_int_equal(model_t5_forward(&m, b.in, b.dec, b.tgt, 0, NULL, &ev, &err), SS_OK);
    assert_int_equal(ev.capacity[0], 12);
    assert_true(met.capacity == ev.capacity); /* model-owned, valid until the next call */
    model_t5_free(&m);
    /* top-2: two decisions per token, tokens_per_expert counts choice 0 only */
    c.sw.top_k = 2;
    make_model(&m, &c, tiny_shape, &nx, 3);
    met = run_forward(&m, &b, 0);
    assert_int_equal(met.top_k, 2);
    assert_int_equal(met.choice_offset[1], 2 * B_ * TI);
    assert_int_equal(met.choice_offset[2], 2 * B_ * (TI + TO));
    for (int i = 0; i < met.nswitch; i++) {
        int32_t sum = 0, first[4] = {0};
        for (int e = 0; e < 4; e++)
            sum += met.tokens_per_expert[i * 4 + e];
        assert_int_equal((size_t)sum, met.layer_tokens[i]);
        for (size_t t = 0; t < met.layer_tokens[i]; t++) {
            const int32_t *ch = met.expert_choice + met.choice_offset[i] + 2 * t;
            assert_true(ch[0] != ch[1] || ch[0] == -1);
            if (ch[0] >= 0)
                first[ch[0]]++;
        }
        for (int e = 0; e < 4; e++) /* kept first choices never exceed the counts */
            assert_true(first[e] <= met.tokens_per_expert[i * 4 + e]);
    }
    run_backward(&m);
    model_t5_free(&m);
}

/* Evaluation applies no dropout: with dropout 0.1 configured it equals the same parameters
 * with dropout 0, and needs no rng; training with dropout differs. */
static void test_t5_eval_has_no_dropout(void **state)
{
    (void)state;
    const model_numerics nx = model_numerics_fp32();
    model_cfg c0 = tiny_cfg(1, MODEL_FFN_GEGLU, 0), c1 = c0;
    c1.dropout = 0.1;
    c1.sw.expert_dropout = 0.3;
    model_t5 a, b;
    make_model(&a, &c0, tiny_shape, &nx, 41);
    make_model(&b, &c1, tiny_shape, &nx, 41);
    assert_memory_equal(a.params, b.params, a.nparams * sizeof(float));
    batch bt = make_batch(42, c0.vocab_size);
    ss_err err = {0};
    model_t5_metrics ma, mb;
    assert_int_equal(model_t5_forward(&a, bt.in, bt.dec, bt.tgt, 0, NULL, &ma, &err), SS_OK);
    assert_int_equal(model_t5_forward(&b, bt.in, bt.dec, bt.tgt, 0, NULL, &mb, &err), SS_OK);
    printf("  eval total: dropout 0 %.9f, dropout 0.1 %.9f\n", ma.total, mb.total);
    assert_memory_equal(&ma.total, &mb.total, sizeof(double));
    const double eval_total = mb.total;
    mb = run_forward(&b, &bt, 1);
    printf("  training total with dropout: %.9f\n", mb.total);
    assert_true(mb.total != eval_total);
    /* the activation block grows with the batch */
    const size_t bytes2 = model_t5_acts_bytes(&a);
    model_t5 c;
    const model_t5_shape big = {4, TI, TO};
    make_model(&c, &c0, big, &nx, 41);
    printf("  activation bytes: B=2 %zu, B=4 %zu\n", bytes2, model_t5_acts_bytes(&c));
    assert_true(bytes2 > 0 && model_t5_acts_bytes(&c) > bytes2);
    model_t5_free(&a);
    model_t5_free(&b);
    model_t5_free(&c);
}

static void test_t5_errors(void **state)
{
    (void)state;
    const model_numerics nx = model_numerics_fp32();
    model_cfg c = tiny_cfg(1, MODEL_FFN_RELU, 1);
    model_t5 m;
    ss_err err = {0};
    make_model(&m, &c, tiny_shape, &nx, 3);
    assert_int_equal(model_t5_backward(&m, &err), SS_ERR_USAGE);
    printf("  %s\n", err.msg);
    batch b = make_batch(5, c.vocab_size);
    b.tgt[3] = 64;
    assert_int_equal(model_t5_forward(&m, b.in, b.dec, b.tgt, 1, NULL, NULL, &err),
                     SS_ERR_RANGE);
    printf("  %s\n", err.msg);
    assert_int_equal(model_t5_backward(&m, &err), SS_ERR_USAGE);
    b = make_batch(5, c.vocab_size);
    b.in[7] = -1;
    assert_int_equal(model_t5_forward(&m, b.in, b.dec, b.tgt, 1, NULL, NULL, &err),
                     SS_ERR_RANGE);
    printf("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "inputs"));
    model_t5_free(&m);
    /* dropout in training needs an rng; evaluation does not */
    c.dropout = 0.1;
    make_model(&m, &c, tiny_shape, &nx, 3);
    b = make_batch(5, c.vocab_size);
    assert_int_equal(model_t5_forward(&m, b.in, b.dec, b.tgt, 1, NULL, NULL, &err),
                     SS_ERR_RANGE);
    printf("  %s\n", err.msg);
    assert_int_equal(model_t5_forward(&m, b.in, b.dec, b.tgt, 0, NULL, NULL, &err), SS_OK);
    model_t5_free(&m);
    /* init: group size, missing stack, shape */
    c = tiny_cfg(1, MODEL_FFN_RELU, 1);
    c.sw.group_size = 5;
    assert_int_equal(model_t5_init(&m, &c, tiny_shape, &nx, &err), SS_ERR_RANGE);
    printf("  %s\n", err.msg);
    model_t5_free(&m);
    c = tiny_cfg(1, MODEL_FFN_RELU, 1);
    c.encoder_layers = 0;
    assert_int_equal(model_t5_init(&m, &c, tiny_shape, &nx, &err), SS_ERR_CONFIG);
    printf("  %s\n", err.msg);
    c = tiny_cfg(0, MODEL_FFN_RELU, 1);
    model_t5_shape bad = {2, 0, 6};
    assert_int_equal(model_t5_init(&m, &c, bad, &nx, &err), SS_ERR_RANGE);
    printf("  %s\n", err.msg);
    c.relative_attention_num_buckets = 2;
    assert_int_equal(model_t5_init(&m, &c, tiny_shape, &nx, &err), SS_ERR_CONFIG);
    printf("  %s\n", err.msg);
    model_t5_free(&m);
}

/* ---- gradient check -------------------------------------------------------------------- */

typedef struct {
    model_t5 *m;
    const batch *b;
    uint64_t drop_seed;
    const int32_t *choice; /* reference routing decisions */
    size_t nchoice;
    const int32_t *tpe;    /* reference top-1 counts per expert (dropped tokens included) */
    size_t ntpe;
} fd_ctx;

/* Total loss at the current parameters; *flip = 1 if a routing decision changed. */
static double fd_eval(const fd_ctx *f, int *flip)
{
    model_t5_metrics met = run_forward(f->m, f->b, f->drop_seed);
    if (f->nchoice && memcmp(met.expert_choice, f->choice, f->nchoice * sizeof(int32_t)))
        *flip = 1;
    if (f->ntpe && memcmp(met.tokens_per_expert, f->tpe, f->ntpe * sizeof(int32_t)))
        *flip = 1; /* a dropped token changed its expert: L_aux's f_i jumps */
    return met.total;
}

/* Checks a sample of tensor k: its largest-|grad| element and `extra` random ones. An element
 * fails when |an - fd| > FD_TOL_ELEMENT * max(|an|, |fd|, 1e-2 max|an|) + the noise allowance.
 * Returns the maximum of |an - fd| / max(|an|, |fd|, 1e-2 max|an|); counts the perturbations
 * skipped for a routing change or a kink, the elements checked and those that failed. */
static double fd_tensor(const fd_ctx *f, const float *grad, size_t k, int extra, rng_state *r,
                        size_t *skipped, size_t *kinks, size_t *checked, size_t *failed)
{
    model_t5 *m = f->m;
    const model_tensor *t = &m->tensors[k];
    const size_t n = model_tensor_size(t);
    const float *g = grad + t->offset;
    size_t imax = 0;
    for (size_t i = 1; i < n; i++)
        if (fabsf(g[i]) > fabsf(g[imax]))
            imax = i;
    const double gmax = fabs(g[imax]);
    if (!(gmax > 0.0))
        fprintf(stderr, "  tensor %s has an all-zero gradient\n", t->name);
    assert_true(gmax > 0.0);
    const double noise = 3.0 * FD_LOSS_NOISE / (double)FD_EPS;
    double worst = 0.0;
    for (int s = 0; s <= extra; s++) {
        const size_t i = s == 0 ? imax : (size_t)rng_below(r, n);
        float *p = m->params + t->offset + i;
        const float p0 = *p;
        int flip = 0;
        double d[2];
        for (int half = 0; half < 2; half++) {
            const float h = half ? 0.5f * FD_EPS : FD_EPS;
            *p = p0 + h;
            const double fp = fd_eval(f, &flip);
            *p = p0 - h;
            const double fm = fd_eval(f, &flip);
            d[half] = (fp - fm) / ((double)(p0 + h) - (double)(p0 - h));
        }
        *p = p0;
        if (flip) {
            (*skipped)++;
            continue;
        }
        if (fabs(d[0] - d[1]) > 0.1 * fmax(fabs(d[0]), fabs(d[1])) + noise) {
            (*kinks)++;
            continue;
        }
        (*checked)++;
        const double fd = (4.0 * d[1] - d[0]) / 3.0, an = g[i]; /* Richardson */
        const double den = fmax(fmax(fabs(an), fabs(fd)), 1e-2 * gmax);
        const double e = fabs(an - fd) / den;
        if (fabs(an - fd) > FD_TOL_ELEMENT * den + noise) {
            fprintf(stderr, "      %s[%zu]: analytic %+.6e fd %+.6e\n", t->name, i, an, fd);
            (*failed)++;
        }
        if (getenv("T5_DEBUG"))
            printf("      [%zu] an %+.6e fd %+.6e (h %+.6e h/2 %+.6e) err %.2e\n", i, an, fd,
                   d[0], d[1], e);
        if (e > worst)
            worst = e;
    }
    return worst;
}

/* Directional checks of tensor k: along its analytic gradient u = g / |g| (the direction with
 * the largest signal over fp32 noise) and along a random unit direction r (random signs /
 * sqrt(n), which also sees gradient components the analytic gradient lacks entirely). The
 * Richardson estimate from (f(p + h v) - f(p - h v)) / 2h at h and h/2 is compared with g . v,
 * with h = min(FD_DIR_DELTA / s, 5% of the tensor's norm), s = |g| along u and |g| / sqrt(n)
 * along r (the typical size of g . r), or a quarter of that (twice at most) when a routing
 * decision changes. The error is |fd - g.v| / max(|g.v|, s); it fails above FD_TOL_DIRECTION
 * plus the noise 3 FD_LOSS_NOISE / (h s). With ReLU, the random direction's larger steps cross
 * many kinks (errors of ~10% grow with h), so it gets FD_TOL_RANDOM_RELU; the same wiring is
 * held to FD_TOL_DIRECTION in the (smooth) GEGLU variants. Returns the error, or -1 when every step changed a
 * routing decision; *fail is set on failure. */
static double fd_along(const fd_ctx *f, const float *g, float *p, size_t n, const double *v,
                       double s, double pn, double tol, int *fail)
{
    double an = 0.0;
    for (size_t i = 0; i < n; i++)
        an += (double)g[i] * v[i];
    float *p0 = xcalloc(n, sizeof(float));
    memcpy(p0, p, n * sizeof(float));
    double h = fmin(FD_DIR_DELTA / s, 5e-2 * pn), result = -1.0;
    for (int attempt = 0; attempt < 3 && result < 0; attempt++, h *= 0.25) {
        double d[2];
        int flip = 0;
        for (int half = 0; half < 2; half++) {
            double fv[2];
            const double hh = half ? 0.5 * h : h;
            for (int side = 0; side < 2; side++) {
                for (size_t i = 0; i < n; i++)
                    p[i] = (float)(p0[i] + (side ? -hh : hh) * v[i]);
                fv[side] = fd_eval(f, &flip);
            }
            d[half] = (fv[0] - fv[1]) / (2.0 * hh);
        }
        if (!flip) {
            const double fd = (4.0 * d[1] - d[0]) / 3.0, den = fmax(fabs(an), s);
            result = fabs(fd - an) / den;
            *fail = fabs(fd - an) > tol * den + 3.0 * FD_LOSS_NOISE / h;
            if (*fail)
                fprintf(stderr, "      along a direction: analytic %+.6e fd %+.6e\n", an, fd);
        }
    }
    memcpy(p, p0, n * sizeof(float));
    free(p0);
    return result;
}

/* Both directional checks of tensor k; returns the larger error (-1 if both were skipped) and
 * counts failures and skips. */
static double fd_direction(const fd_ctx *f, const float *grad, size_t k, rng_state *r,
                           size_t *failed, size_t *skipped)
{
    model_t5 *m = f->m;
    const model_tensor *t = &m->tensors[k];
    const size_t n = model_tensor_size(t);
    const float *g = grad + t->offset;
    float *p = m->params + t->offset;
    double gn = 0.0, pn = 0.0;
    for (size_t i = 0; i < n; i++) {
        gn += (double)g[i] * g[i];
        pn += (double)p[i] * p[i];
    }
    gn = sqrt(gn);
    pn = sqrt(pn);
    assert_true(gn > 0.0);
    double *v = xcalloc(n, sizeof(double)), worst = -1.0;
    for (int dir = 0; dir < 2; dir++) {
        for (size_t i = 0; i < n; i++)
            v[i] = dir ? (rng_below(r, 2) ? 1.0 : -1.0) / sqrt((double)n) : g[i] / gn;
        int fail = 0;
        const double tol = dir && m->cfg.ffn == MODEL_FFN_RELU ? FD_TOL_RANDOM_RELU
                                                               : FD_TOL_DIRECTION;
        const double e = fd_along(f, g, p, n, v, dir ? gn / sqrt((double)n) : gn, pn, tol,
                                  &fail);
        if (e < 0)
            (*skipped)++;
        if (fail) {
            fprintf(stderr, "      %s: %s direction failed\n", t->name,
                    dir ? "random" : "gradient");
            (*failed)++;
        }
        worst = fmax(worst, e);
    }
    free(v);
    return worst;
}

static void gradcheck(model_cfg c, uint64_t seed)
{
    const model_numerics nx = model_numerics_fp32();
    model_t5 m;
    c.sw.init_scale = 1.0; /* gradients well above the fp32 noise of the loss */
    make_model(&m, &c, tiny_shape, &nx, seed);
    batch b = make_batch(seed + 100, c.vocab_size);
    const uint64_t drop_seed = 77;
    model_t5_metrics met = run_forward(&m, &b, drop_seed);
    const size_t nchoice = met.nswitch ? met.choice_offset[met.nswitch] : 0;
    int32_t *choice = xcalloc(nchoice, sizeof(int32_t));
    memcpy(choice, met.expert_choice, nchoice * sizeof(int32_t));
    const size_t ntpe = (size_t)met.nswitch * (size_t)met.num_experts;
    int32_t *tpe = xcalloc(ntpe, sizeof(int32_t));
    memcpy(tpe, met.tokens_per_expert, ntpe * sizeof(int32_t));
    double dropped = 0;
    for (int i = 0; i < met.nswitch; i++)
        dropped += met.dropped_fraction[i];
    model_t5_zero_grad(&m);
    run_backward(&m);
    float *grad = xcalloc(m.nparams, sizeof(float));
    memcpy(grad, m.grads, m.nparams * sizeof(float));
    printf("  switch=%d ffn=%s tied=%d dropout=%g: loss %.6f total %.6f, dropped fraction sum "
           "%.3f\n", c.has_switch, model_ffn_name(c.ffn), c.tied_embeddings, c.dropout,
           met.loss, met.total, dropped);
    if (c.has_switch)
        assert_true(dropped > 0.0); /* the capacity rule is exercised */
    fd_ctx f = {&m, &b, drop_seed, choice, nchoice, tpe, ntpe};
    rng_state r;
    rng_seed(&r, seed ^ 0x5a5a);
    size_t skipped = 0, kinks = 0, checked = 0, failed = 0, dir_skipped = 0, dir_failed = 0;
    double worst = 0.0, worst_dir = 0.0;
    for (size_t k = 0; k < m.ntensors; k++) {
        const double e = fd_tensor(&f, grad, k, 4, &r, &skipped, &kinks, &checked, &failed);
        const double d = fd_direction(&f, grad, k, &r, &dir_failed, &dir_skipped);
        printf("    %-58s elements: max rel err %.2e, directions: %.2e\n", m.tensors[k].name,
               e, d);
        worst = fmax(worst, e);
        worst_dir = fmax(worst_dir, d);
    }
    printf("  %zu tensors, %zu elements checked (%zu failed), skipped: %zu routing changes, %zu "
           "kinks; max rel err %.3e; directions: max rel err %.3e, %zu failed, %zu "
           "skipped\n", m.ntensors, checked, failed, skipped, kinks, worst, worst_dir,
           dir_failed, dir_skipped);
    assert_int_equal(failed, 0);
    assert_int_equal(dir_failed, 0);
    assert_true((skipped + kinks) * 10 < checked);
    assert_true(dir_skipped * 10 < 2 * m.ntensors);
    free(grad);
    free(choice);
    free(tpe);
    model_t5_free(&m);
}

static void test_t5_gradcheck_switch_relu_tied(void **state)
{
    (void)state;
    gradcheck(tiny_cfg(1, MODEL_FFN_RELU, 1), 21);
}

static void test_t5_gradcheck_switch_geglu_untied(void **state)
{
    (void)state;
    gradcheck(tiny_cfg(1, MODEL_FFN_GEGLU, 0), 22);
}

static void test_t5_gradcheck_dense_relu_untied(void **state)
{
    (void)state;
    gradcheck(tiny_cfg(0, MODEL_FFN_RELU, 0), 23);
}

static void test_t5_gradcheck_dense_geglu_tied(void **state)
{
    (void)state;
    gradcheck(tiny_cfg(0, MODEL_FFN_GEGLU, 1), 24);
}

/* Every dropout site (embedding, attention, FFN, residual, final, expert) with fixed masks. */
static void test_t5_gradcheck_switch_dropout(void **state)
{
    (void)state;
    model_cfg c = tiny_cfg(1, MODEL_FFN_GEGLU, 1);
    c.dropout = 0.1;
    c.sw.expert_dropout = 0.2;
    c.sw.every = 1;
    gradcheck(c, 25);
}

/* ---- determinism, training, bf16 ------------------------------------------------------- */

static void test_t5_forward_backward_deterministic(void **state)
{
    (void)state;
    const model_numerics nx = model_numerics_fp32();
    model_cfg c = tiny_cfg(1, MODEL_FFN_RELU, 1);
    c.dropout = 0.1;
    c.sw.jitter = MODEL_JITTER_INPUT;
    c.sw.expert_dropout = 0.1;
    model_t5 a, b;
    make_model(&a, &c, tiny_shape, &nx, 9);
    make_model(&b, &c, tiny_shape, &nx, 9);
    batch bt = make_batch(10, c.vocab_size);
    model_t5_metrics ma = run_forward(&a, &bt, 4), mb = run_forward(&b, &bt, 4);
    run_backward(&a);
    run_backward(&b);
    assert_memory_equal(&ma.total, &mb.total, sizeof(double));
    assert_memory_equal(a.grads, b.grads, a.nparams * sizeof(float));
    assert_memory_equal(ma.expert_choice, mb.expert_choice,
                        ma.choice_offset[ma.nswitch] * sizeof(int32_t));
    /* another dropout seed gives another loss */
    model_t5_metrics mc = run_forward(&b, &bt, 5);
    printf("  dropout seed 4: total %.9f, seed 5: %.9f\n", ma.total, mc.total);
    assert_true(mc.total != ma.total);
    /* backward accumulates: a second call on the same forward doubles the gradients */
    run_forward(&a, &bt, 4);
    model_t5_zero_grad(&a);
    run_backward(&a);
    float *g1 = xcalloc(a.nparams, sizeof(float));
    memcpy(g1, a.grads, a.nparams * sizeof(float));
    run_backward(&a);
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < a.nparams; i++) {
        worst = fmax(worst, fabs(a.grads[i] - 2.0 * g1[i]));
        gmax = fmax(gmax, fabs(g1[i]));
    }
    printf("  twice backward: max |g2 - 2 g1| %.3e (max |g1| %.3e)\n", worst, gmax);
    assert_true(worst <= 1e-6 * gmax);
    free(g1);
    model_t5_free(&a);
    model_t5_free(&b);
}

static void test_t5_sgd_overfits(void **state)
{
    (void)state;
    const model_numerics nx = model_numerics_fp32();
    model_cfg c = tiny_cfg(1, MODEL_FFN_RELU, 1);
    model_t5 m;
    make_model(&m, &c, tiny_shape, &nx, 13);
    batch b = make_batch(14, c.vocab_size);
    const float lr = 0.5f;
    double first = 0, last = 0;
    for (int step = 0; step < 40; step++) {
        model_t5_metrics met = run_forward(&m, &b, 0);
        if (step == 0)
            first = met.loss;
        last = met.loss;
        if (step % 10 == 0)
            printf("  step %2d: loss %.5f total %.5f correct %zu/%zu\n", step, met.loss,
                   met.total, met.correct, met.tokens);
        model_t5_zero_grad(&m);
        run_backward(&m);
        for (size_t i = 0; i < m.nparams; i++)
            m.params[i] -= lr * m.grads[i];
    }
    printf("  loss %.5f -> %.5f\n", first, last);
    assert_true(last < 0.5 * first);
    model_t5_free(&m);
}

static void test_t5_bf16_close_to_fp32(void **state)
{
    (void)state;
    const model_numerics f32 = model_numerics_fp32();
    const model_numerics b16 = model_numerics_bf16(BF16_DENORMALS_KEEP);
    for (int sw = 0; sw < 2; sw++) {
        model_cfg c = tiny_cfg(sw, MODEL_FFN_GEGLU, 1);
        model_t5 a, b;
        make_model(&a, &c, tiny_shape, &f32, 31);
        make_model(&b, &c, tiny_shape, &b16, 31);
        batch bt = make_batch(32, c.vocab_size);
        model_t5_metrics ma = run_forward(&a, &bt, 0), mb = run_forward(&b, &bt, 0);
        run_backward(&a);
        run_backward(&b);
        double dot = 0, na = 0, nb = 0;
        for (size_t i = 0; i < a.nparams; i++) {
            assert_true(isfinite(b.grads[i]));
            dot += (double)a.grads[i] * b.grads[i];
            na += (double)a.grads[i] * a.grads[i];
            nb += (double)b.grads[i] * b.grads[i];
        }
        const double rel = fabs(mb.total - ma.total) / ma.total, cosine = dot / sqrt(na * nb);
        printf("  switch=%d: total fp32 %.6f bf16 %.6f (rel diff %.2e), gradient cosine %.5f\n",
               sw, ma.total, mb.total, rel, cosine);
        assert_true(rel < 1e-2);
        assert_true(cosine > 0.99);
        model_t5_free(&a);
        model_t5_free(&b);
    }
}

/* model_t5_router_disagreement: the same dtype gives 0; the other dtype gives, for the
 * encoder's Switch layer (whose input does not depend on the router dtype), exactly the
 * fraction of tokens whose choice differs in a second model that routes with that dtype. */
static void test_t5_router_disagreement(void **state)
{
    (void)state;
    const model_numerics b16 = model_numerics_bf16(BF16_DENORMALS_KEEP);
    model_cfg c = tiny_cfg(1, MODEL_FFN_RELU, 1);
    c.sw.capacity_factor_train = 4.0; /* nothing dropped: expert_choice is every choice */
    model_cfg cb = c;
    cb.sw.router_dtype = MODEL_ROUTER_BF16;
    model_t5 a, b;
    make_model(&a, &c, tiny_shape, &b16, 41);
    make_model(&b, &cb, tiny_shape, &b16, 41);
    /* Routers scaled down to near-uniform probabilities, which bf16 rounds into ties. */
    const char *routers[] = {"encoder.block.1.layer.1.mlp.router.classifier",
                             "decoder.block.1.layer.2.mlp.router.classifier"};
    for (int i = 0; i < 2; i++) {
        const model_tensor *ta = tensor(&a, routers[i]), *tb = tensor(&b, routers[i]);
        for (size_t j = 0; j < model_tensor_size(ta); j++) {
            a.params[ta->offset + j] *= 1e-3f;
            b.params[tb->offset + j] = a.params[ta->offset + j];
        }
    }
    batch bt = make_batch(42, c.vocab_size);
    double dis[2] = {-1, -1}, same[2] = {-1, -1};
    ss_err err = {0};
    assert_int_equal(model_t5_router_disagreement(&a, MODEL_ROUTER_BF16, dis, &err),
                     SS_ERR_USAGE);
    printf("  before a forward: %s\n", err.msg);
    model_t5_metrics ma = run_forward(&a, &bt, 0);
    assert_int_equal(ma.nswitch, 2);
    assert_int_equal(model_t5_router_disagreement(&a, MODEL_ROUTER_FP32, same, &err), SS_OK);
    assert_int_equal(model_t5_router_disagreement(&a, MODEL_ROUTER_BF16, dis, &err), SS_OK);
    const size_t N = ma.layer_tokens[0];
    int32_t *choice_a = xcalloc(N, sizeof(int32_t));
    memcpy(choice_a, ma.expert_choice + ma.choice_offset[0], N * sizeof(int32_t));
    model_t5_metrics mb = run_forward(&b, &bt, 0);
    const int32_t *choice_b = mb.expert_choice + mb.choice_offset[0];
    size_t differ = 0;
    for (size_t t = 0; t < N; t++) {
        assert_true(choice_a[t] >= 0 && choice_b[t] >= 0);
        differ += choice_a[t] != choice_b[t];
    }
    const double want = (double)differ / (double)N;
    printf("  same dtype: %g %g; bf16 vs fp32 router: encoder %g (second model: %zu of %zu "
           "tokens, %g), decoder %g\n", same[0], same[1], dis[0], differ, N, want, dis[1]);
    assert_true(same[0] == 0.0 && same[1] == 0.0);
    assert_true(dis[0] == want);
    assert_true(dis[0] > 0.0);
    assert_true(dis[1] >= 0.0 && dis[1] <= 1.0);
    /* Asking changes nothing the backward uses: the gradients equal a fresh model's. */
    run_backward(&a);
    model_t5 a2;
    make_model(&a2, &c, tiny_shape, &b16, 41);
    memcpy(a2.params, a.params, a.nparams * sizeof(float));
    run_forward(&a2, &bt, 0);
    run_backward(&a2);
    assert_memory_equal(a.grads, a2.grads, a.nparams * sizeof(float));
    free(choice_a);
    model_t5_free(&a);
    model_t5_free(&a2);
    model_t5_free(&b);
}

/* configs/models/switch-tiny.yaml at its real size: one timed training forward/backward
 * (printed, not asserted), bf16 numerics, B 4, 128 input and 32 target tokens. */
static void test_t5_switch_tiny_real_size(void **state)
{
    (void)state;
    const char *root = getenv("SWITCHSIM_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/models/switch-tiny.yaml", root ? root : ".");
    model_cfg c;
    ss_err err = {0};
    ss_status st = model_cfg_load(&c, path, &err);
    if (st != SS_OK)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, SS_OK);
    const model_numerics nx = model_numerics_bf16(BF16_DENORMALS_FLUSH);
    const model_t5_shape shape = {4, 128, 32};
    model_t5 m;
    st = model_t5_init(&m, &c, shape, &nx, &err);
    assert_int_equal(st, SS_OK);
    model_t5_init_params(&m, 1);
    const int B = shape.B, Ti = shape.T_in, To = shape.T_out;
    int32_t *in = xcalloc((size_t)B * Ti, sizeof(int32_t));
    int32_t *tgt = xcalloc((size_t)B * To, sizeof(int32_t));
    int32_t *dec = xcalloc((size_t)B * To, sizeof(int32_t));
    rng_state r;
    rng_seed(&r, 3);
    for (int i = 0; i < B * Ti; i++)
        in[i] = (int32_t)rng_below(&r, 256);
    for (int i = 0; i < B * To; i++)
        tgt[i] = (int32_t)rng_below(&r, 256);
    for (int row = 0; row < B; row++) {
        dec[row * To] = m.pad_id;
        for (int t = 1; t < To; t++)
            dec[row * To + t] = tgt[row * To + t - 1];
    }
    struct timespec t0, t1, t2;
    model_t5_metrics met;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = model_t5_forward(&m, in, dec, tgt, 1, &r, &met, &err);
    if (st != SS_OK)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, SS_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(model_t5_backward(&m, &err), SS_OK);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    const double fw = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    const double bw = (double)(t2.tv_sec - t1.tv_sec) + 1e-9 * (double)(t2.tv_nsec - t1.tv_nsec);
    printf("  switch-tiny: %zu params (%zu tensors), activations %.1f MiB, B=%d T_in=%d "
           "T_out=%d: loss %.4f (ln V = %.4f) aux %.5f, forward %.3f s, backward %.3f s\n",
           m.nparams, m.ntensors, (double)model_t5_acts_bytes(&m) / 1048576.0, B, Ti, To,
           met.loss, log((double)c.vocab_size), met.aux_loss, fw, bw);
    assert_true(isfinite(met.total));
    free(in);
    free(tgt);
    free(dec);
    model_t5_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_t5_param_count_matches_count_h),
        cmocka_unit_test(test_t5_layout_names),
        cmocka_unit_test(test_t5_switch_block_rule),
        cmocka_unit_test(test_t5_init_statistics),
        cmocka_unit_test(test_t5_init_deterministic_per_tensor),
        cmocka_unit_test(test_t5_metrics),
        cmocka_unit_test(test_t5_eval_has_no_dropout),
        cmocka_unit_test(test_t5_errors),
        cmocka_unit_test(test_t5_gradcheck_switch_relu_tied),
        cmocka_unit_test(test_t5_gradcheck_switch_geglu_untied),
        cmocka_unit_test(test_t5_gradcheck_dense_relu_untied),
        cmocka_unit_test(test_t5_gradcheck_dense_geglu_tied),
        cmocka_unit_test(test_t5_gradcheck_switch_dropout),
        cmocka_unit_test(test_t5_forward_backward_deterministic),
        cmocka_unit_test(test_t5_sgd_overfits),
        cmocka_unit_test(test_t5_bf16_close_to_fp32),
        cmocka_unit_test(test_t5_router_disagreement),
        cmocka_unit_test(test_t5_switch_tiny_real_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
