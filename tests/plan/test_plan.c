/* This file implements the tests of model/plan.c: the strategy each layout gets (the five of
 * the Switch paper's Section 5 on real model and pod configs), the rejection of impossible
 * layouts with the failed constraint and the amount in the message, the logical-to-physical
 * core maps, the memory per core of hand-computable tiny models (parameters, Adafactor and
 * AdamW state, activations with and without remat, dispatch buffers), the HBM check, the
 * run-config fields plan.mapping / plan.remat, and a cross-check of the activation formula
 * against model/t5.c's real allocation.
 *
 * Invariants: configs are read from $SWITCHSIM_SOURCE_ROOT/configs; every expected figure is
 * written out as the arithmetic of plan.c's formulas for the tiny shapes, not computed by
 * calling plan.c's helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "model/count.h"
#include "model/plan.h"
#include "model/switch_layer.h"
#include "model/t5.h"

enum { PATH = 1024 };

static void source_path(char *out, size_t n, const char *rel)
{
    const char *root = getenv("SWITCHSIM_SOURCE_ROOT");
    if (!root)
        fail_msg("SWITCHSIM_SOURCE_ROOT is not set (run the tests with meson test)");
    snprintf(out, n, "%s/%s", root, rel);
}

static void must(ss_status st, const ss_err *err)
{
    if (st != SS_OK)
        fail_msg("unexpected error: %s", err->msg);
}

/* A run of model configs/models/<model>.yaml on configs/pods/<pod>.yaml, n x m, train
 * defaults (bf16, Adafactor). */
static void real_run(run_cfg *r, const char *model, const char *pod, int n, int m, int batch)
{
    char path[PATH], rel[256];
    ss_err err;
    memset(r, 0, sizeof *r);
    snprintf(rel, sizeof rel, "configs/models/%s.yaml", model);
    source_path(path, sizeof path, rel);
    must(model_cfg_load(&r->model, path, &err), &err);
    snprintf(rel, sizeof rel, "configs/pods/%s.yaml", pod);
    source_path(path, sizeof path, rel);
    must(sim_pod_load(&r->pod, path, &err), &err);
    must(run_train_cfg_defaults(&r->train, &err), &err);
    r->has_train = 1;
    r->plan = (run_plan){.data = n, .model = m, .microbatches = 1};
    r->batch = batch;
    r->input_length = 512;
    r->target_length = 114;
    r->batch_tokens = (uint64_t)batch * 512u;
}

/* The tiny dense model of the hand computations: C 4, F 8 (ReLU), D 2, H 2, 1 + 1 layers,
 * V 10, NB 4, tied, no dropout; on a hand-built pod of one chip with 2 cores and 1 GiB HBM.
 * Batch 4 of 3 input and 2 target tokens, fp32. */
static void tiny_run(run_cfg *r, int n, int m)
{
    ss_err err;
    memset(r, 0, sizeof *r);
    model_cfg *c = &r->model;
    snprintf(c->name, sizeof c->name, "tiny");
    c->d_model = 4;
    c->d_ff = 8;
    c->d_kv = 2;
    c->num_heads = 2;
    c->num_layers = c->encoder_layers = c->decoder_layers = 1;
    c->vocab_size = 10;
    c->ffn = MODEL_FFN_RELU;
    c->tied_embeddings = 1;
    c->relative_attention_num_buckets = 4;
    c->relative_attention_max_distance = 8;
    snprintf(r->pod.name, sizeof r->pod.name, "tiny-pod");
    r->pod.chip.cores_per_chip = 2;
    r->pod.chip.hbm_bytes = 1ull << 30;
    r->pod.chips = 1;
    r->pod.cores = 2;
    must(run_train_cfg_defaults(&r->train, &err), &err);
    r->train.precision = RUN_PRECISION_FP32;
    r->plan = (run_plan){.data = n, .model = m, .microbatches = 1};
    r->batch = 4;
    r->input_length = 3;
    r->target_length = 2;
}

/* tiny_run with every FFN a Switch layer of 4 experts, cf 1.0, min capacity 1. */
static void tiny_switch_run(run_cfg *r, int n, int m)
{
    tiny_run(r, n, m);
    model_switch_cfg *sw = &r->model.sw;
    r->model.has_switch = 1;
    sw->num_experts = 4;
    sw->every = 1;
    sw->top_k = 1;
    sw->capacity_factor_train = 1.0;
    sw->capacity_factor_eval = 1.0;
    sw->min_capacity = 1;
    sw->capacity_rounding = MODEL_CAPACITY_ROUND;
}

static void make_ok(model_plan *p, const run_cfg *r)
{
    ss_err err;
    must(model_plan_make(p, r, &err), &err);
}

/* The plan fails with SS_ERR_CONFIG and its message contains every one of the fragments. */
static void expect_reject(const run_cfg *r, const char *const *frags, size_t nfrag)
{
    model_plan p;
    ss_err err = {0};
    ss_status st = model_plan_make(&p, r, &err);
    print_message("rejected: %s\n", err.msg);
    assert_int_equal(st, SS_ERR_CONFIG);
    assert_null(p.core_of);
    for (size_t i = 0; i < nfrag; i++)
        if (!strstr(err.msg, frags[i]))
            fail_msg("message '%s' lacks '%s'", err.msg, frags[i]);
}

#define EXPECT_REJECT(r, ...)                                                                   \
    do {                                                                                        \
        const char *const frags_[] = {__VA_ARGS__};                                             \
        expect_reject((r), frags_, sizeof frags_ / sizeof frags_[0]);                           \
    } while (0)

static void print_memory(const char *what, const model_plan_memory *mem)
{
    print_message("%s: params %llu grads %llu optimizer %llu activations %llu (remat %llu) "
                  "dispatch %llu total %llu hbm %llu (remat %d)\n",
                  what, (unsigned long long)mem->params, (unsigned long long)mem->grads,
                  (unsigned long long)mem->optimizer, (unsigned long long)mem->activations,
                  (unsigned long long)mem->activations_remat,
                  (unsigned long long)mem->dispatch, (unsigned long long)mem->total,
                  (unsigned long long)mem->hbm, mem->remat);
}

/* ---- strategies ------------------------------------------------------------------------- */

static void test_plan_strategy_t5_base_data(void **state)
{
    (void)state;
    run_cfg r;
    model_plan p;
    real_run(&r, "t5-base", "tpu-v3-32", 32, 1, 256);
    make_ok(&p, &r);
    assert_int_equal(p.strategy, MODEL_PLAN_DATA);
    assert_string_equal(model_plan_strategy_name(p.strategy), "data");
    assert_int_equal(p.cores, 32);
    assert_int_equal(p.num_experts, 0);
    assert_int_equal(p.experts_per_core, 0);
    assert_int_equal(p.seqs_per_core, 8);
    assert_int_equal(p.seqs_per_microbatch, 8);
    assert_int_equal(p.ff_per_core, 2048);
    assert_int_equal(p.heads_per_core, 12);
    assert_int_equal(p.capacity_enc, 0);
    model_plan_free(&p);
}

static void test_plan_strategy_switch_base_expert_data(void **state)
{
    (void)state;
    run_cfg r;
    model_plan p;
    real_run(&r, "switch-base-128", "tpu-v3-32", 32, 1, 256);
    r.plan.microbatches = 2;
    make_ok(&p, &r);
    assert_int_equal(p.strategy, MODEL_PLAN_EXPERT_DATA);
    assert_string_equal(model_plan_strategy_name(p.strategy), "expert+data");
    assert_int_equal(p.num_experts, 128);
    assert_int_equal(p.experts_per_core, 4);
    assert_int_equal(p.expert_replicas, 1);
    assert_int_equal(p.seqs_per_core, 8);
    assert_int_equal(p.seqs_per_microbatch, 4);
    /* a routing group is one core's tokens of one microbatch: 4 x 512 and 4 x 114 */
    assert_int_equal(p.group_tokens_enc, 2048);
    assert_int_equal(p.group_tokens_dec, 456);
    assert_int_equal(p.groups_enc, 1);
    /* the config's cf 1.0: 2048 / 128 = 16; 456 / 128 = 3.56 -> 4 */
    print_message("capacity enc %d dec %d (cf %.2f)\n", p.capacity_enc, p.capacity_dec,
                  r.model.sw.capacity_factor_train);
    assert_int_equal(p.capacity_enc,
                     (int)model_switch_capacity(r.model.sw.capacity_factor_train, 2048, 128,
                                                r.model.sw.min_capacity,
                                                r.model.sw.capacity_rounding));
    assert_true(p.capacity_enc > p.capacity_dec);
    for (int d = 0; d < 32; d++)
        assert_int_equal(model_plan_first_expert(&p, d), 4 * d);
    model_plan_free(&p);
}

static void test_plan_strategy_switch_xxl_expert_model_data(void **state)
{
    (void)state;
    run_cfg r;
    model_plan p;
    real_run(&r, "switch-xxl-128", "tpu-v3-512", 64, 8, 1024);
    make_ok(&p, &r);
    assert_int_equal(p.strategy, MODEL_PLAN_EXPERT_MODEL_DATA);
    assert_string_equal(model_plan_strategy_name(p.strategy), "expert+model+data");
    assert_int_equal(p.cores, 512);
    assert_int_equal(p.experts_per_core, 2);
    assert_int_equal(p.ff_per_core, 10240 / 8);
    assert_int_equal(p.heads_per_core, 64 / 8);
    assert_int_equal(p.seqs_per_core, 16);
    /* the model ways of one data replica are consecutive cores: a chip and its neighbour */
    assert_int_equal(model_plan_core(&p, 3, 0), 24);
    assert_int_equal(model_plan_core(&p, 3, 7), 31);
    model_plan_free(&p);
}

static void test_plan_strategy_model_only_and_model_data(void **state)
{
    (void)state;
    run_cfg r;
    model_plan p;
    real_run(&r, "t5-large", "tpu-v3-8", 1, 8, 8);
    make_ok(&p, &r);
    assert_int_equal(p.strategy, MODEL_PLAN_MODEL);
    assert_string_equal(model_plan_strategy_name(p.strategy), "model");
    assert_int_equal(p.ff_per_core, 4096 / 8);
    assert_int_equal(p.heads_per_core, 2);
    assert_int_equal(p.seqs_per_core, 8);
    model_plan_free(&p);

    real_run(&r, "t5-large", "tpu-v3-8", 2, 4, 8);
    make_ok(&p, &r);
    assert_int_equal(p.strategy, MODEL_PLAN_MODEL_DATA);
    assert_string_equal(model_plan_strategy_name(p.strategy), "model+data");
    model_plan_free(&p);

    /* a Switch model on one data way has no expert parallelism: all experts on that way */
    tiny_switch_run(&r, 1, 2);
    make_ok(&p, &r);
    assert_int_equal(p.strategy, MODEL_PLAN_MODEL);
    assert_int_equal(p.experts_per_core, 4);
    model_plan_free(&p);
    r.pod.cores = 1;
    r.plan.model = 1;
    make_ok(&p, &r);
    assert_int_equal(p.strategy, MODEL_PLAN_DATA);
    model_plan_free(&p);
}

static void test_plan_strategy_replicated_experts(void **state)
{
    (void)state;
    run_cfg r;
    model_plan p;
    /* 8 experts on 32 data ways: each expert on 4 cores */
    real_run(&r, "switch-base-8", "tpu-v3-32", 32, 1, 256);
    make_ok(&p, &r);
    assert_int_equal(p.strategy, MODEL_PLAN_EXPERT_DATA);
    assert_int_equal(p.experts_per_core, 1);
    assert_int_equal(p.expert_replicas, 4);
    assert_int_equal(model_plan_first_expert(&p, 0), 0);
    assert_int_equal(model_plan_first_expert(&p, 3), 0);
    assert_int_equal(model_plan_first_expert(&p, 4), 1);
    assert_int_equal(model_plan_first_expert(&p, 31), 7);
    model_plan_free(&p);
}

/* ---- impossible layouts ----------------------------------------------------------------- */

static void test_plan_reject_cores(void **state)
{
    (void)state;
    run_cfg r;
    real_run(&r, "t5-base", "tpu-v3-32", 16, 1, 256);
    EXPECT_REJECT(&r, "16*1 = 16 cores", "has 32 cores", "16 left idle");
    real_run(&r, "t5-base", "tpu-v3-32", 16, 4, 256);
    EXPECT_REJECT(&r, "16*4 = 64 cores", "32 too many");
}

static void test_plan_reject_experts(void **state)
{
    (void)state;
    run_cfg r;
    real_run(&r, "switch-base-128", "tpu-v3-32", 32, 1, 240);
    r.pod.cores = 48;
    r.plan.data = 48;
    EXPECT_REJECT(&r, "128 experts", "48 data ways", "128 % 48 = 32");
    r.pod.cores = 192;
    r.plan.data = 192;
    r.batch = 192;
    EXPECT_REJECT(&r, "192 data ways", "128 experts", "192 % 128 = 64");
}

static void test_plan_reject_model_ways(void **state)
{
    (void)state;
    run_cfg r;
    real_run(&r, "t5-base", "tpu-v3-32", 32, 1, 256);
    r.pod.cores = 160;
    r.plan.model = 5;
    EXPECT_REJECT(&r, "5 model ways do not divide d_ff = 2048", "2048 % 5 = 3");
    r.pod.cores = 256;
    r.plan.model = 8;
    EXPECT_REJECT(&r, "8 model ways do not divide num_heads = 12", "12 % 8 = 4");
}

static void test_plan_reject_batch(void **state)
{
    (void)state;
    run_cfg r;
    real_run(&r, "t5-base", "tpu-v3-32", 32, 1, 100);
    EXPECT_REJECT(&r, "100 sequences", "32 data ways", "100 % 32 = 4");
    real_run(&r, "t5-base", "tpu-v3-32", 32, 1, 128);
    r.plan.microbatches = 3;
    EXPECT_REJECT(&r, "4 sequences of each data way", "3 microbatches", "4 % 3 = 1");
}

static void test_plan_reject_group_size(void **state)
{
    (void)state;
    run_cfg r;
    real_run(&r, "switch-base-128", "tpu-v3-32", 32, 1, 256);
    r.model.sw.group_size = 1000; /* 8 x 512 = 4096 encoder tokens per core */
    EXPECT_REJECT(&r, "group_size 1000", "4096 encoder tokens", "4096 % 1000 = 96");
    r.model.sw.group_size = 1024; /* divides 4096 but not the decoder's 8 x 114 = 912 */
    EXPECT_REJECT(&r, "912 decoder tokens", "912 % 1024 = 912");
    r.model.sw.group_size = 16; /* 4096 / 16 = 256 groups; 912 / 16 = 57 */
    model_plan p;
    make_ok(&p, &r);
    assert_int_equal(p.groups_enc, 256);
    assert_int_equal(p.groups_dec, 57);
    assert_int_equal(p.group_tokens_enc, 16);
    model_plan_free(&p);
}

static void test_plan_reject_bad_ranges(void **state)
{
    (void)state;
    run_cfg r;
    tiny_run(&r, 2, 1);
    r.plan.mapping = 7;
    EXPECT_REJECT(&r, "mapping 7");
    tiny_run(&r, 2, 1);
    r.plan.microbatches = 0;
    EXPECT_REJECT(&r, "microbatches = 0");
}

/* ---- mapping ---------------------------------------------------------------------------- */

/* core_of is a permutation and model_plan_cell its inverse. */
static void check_permutation(const model_plan *p)
{
    int seen[64] = {0};
    assert_true(p->cores <= 64);
    for (int i = 0; i < p->cores; i++) {
        int c = p->core_of[i], d, k;
        assert_true(c >= 0 && c < p->cores);
        assert_int_equal(seen[c]++, 0);
        model_plan_cell(p, c, &d, &k);
        assert_int_equal(d * p->m + k, i);
    }
}

static void test_plan_mapping_tables(void **state)
{
    (void)state;
    run_cfg r;
    model_plan p;
    real_run(&r, "t5-large", "tpu-v3-8", 4, 2, 8); /* 2x2 chips, 2 cores each */
    make_ok(&p, &r);
    assert_int_equal(p.mapping, MODEL_PLAN_MAP_MODEL_NEIGHBOURS);
    static const int model_nb[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int i = 0; i < 8; i++)
        assert_int_equal(p.core_of[i], model_nb[i]);
    check_permutation(&p);
    model_plan_free(&p);

    r.plan.mapping = MODEL_PLAN_MAP_DATA_NEIGHBOURS;
    make_ok(&p, &r);
    assert_string_equal(model_plan_mapping_name(p.mapping), "data_neighbours");
    /* (d, k) -> k * 4 + d: model way 0 of the 4 replicas on cores 0-3 (chips 0, 1) */
    static const int data_nb[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    for (int i = 0; i < 8; i++)
        assert_int_equal(p.core_of[i], data_nb[i]);
    assert_int_equal(model_plan_core(&p, 2, 1), 6);
    check_permutation(&p);
    model_plan_free(&p);
}

/* ---- memory ----------------------------------------------------------------------------- */

/* The tiny model has P = 404 floats on one model way: shared 40; encoder: bias [4,2] 8, q k v o
 * 4 x 16, 2 norms 8, wi 32 + wo 32, final norm 4 = 148; decoder: bias 8, 2 x 64 attention,
 * 3 norms 12, FFN 64, final norm 4 = 216. On 2 model ways (Al = 2, Fl = 4): attention 4 x 8 =
 * 32, FFN 16 + 16 = 32 per block: 40 + (8 + 32 + 8 + 32 + 4) + (8 + 64 + 12 + 32 + 4) = 244. */
static void test_plan_memory_params_optimizer(void **state)
{
    (void)state;
    run_cfg r;
    model_plan p;
    model_plan_memory mem;
    ss_err err;
    tiny_run(&r, 2, 1);
    make_ok(&p, &r);
    must(model_plan_memory_of(&mem, &p, &r, 0, &err), &err);
    print_memory("tiny n=2", &mem);
    assert_int_equal(mem.params, 4 * 404);
    assert_int_equal(mem.grads, 4 * 404);
    /* Adafactor, min_dim_size_to_factor 128: nothing factored, v is P floats */
    assert_int_equal(mem.optimizer, 4 * 404);
    /* it agrees with the parameter count and with optim.c on the whole model (one way) */
    model_counts cnt;
    must(model_count(&r.model, 3, 2, &cnt, &err), &err);
    assert_int_equal(mem.params, 4 * (uint64_t)cnt.params_all);
    r.train.optimizer = RUN_OPTIMIZER_ADAMW;
    must(model_plan_memory_of(&mem, &p, &r, 0, &err), &err);
    assert_int_equal(mem.optimizer, 4 * 2 * 404);
    model_plan_free(&p);

    tiny_run(&r, 1, 2);
    make_ok(&p, &r);
    must(model_plan_memory_of(&mem, &p, &r, 0, &err), &err);
    assert_int_equal(mem.params, 4 * 244);
    /* Factored from 4: the decision is made on the whole tensor. shared [10,4]: 14; q, k, v
     * whole [4,4] -> local [4,2]: 6 each; o [2,4]: 6; wi whole [4,8] -> local [4,4]: 8; wo
     * whole [8,4] -> local [4,4]: 8; biases [4,2] and norms [1,4] unfactored. Encoder 8 + 24 +
     * 4 + 16 + 4 + 4 = 60, decoder 8 + 48 + 12 + 16 + 4 = 88: 14 + 60 + 88 = 162 floats. */
    r.train.adafactor.min_dim_size_to_factor = 4;
    must(model_plan_memory_of(&mem, &p, &r, 0, &err), &err);
    assert_int_equal(mem.optimizer, 4 * 162);
    r.train.adafactor.beta1 = 0.9; /* adds the momentum: P floats */
    must(model_plan_memory_of(&mem, &p, &r, 0, &err), &err);
    assert_int_equal(mem.optimizer, 4 * (162 + 244));
    model_plan_free(&p);
}

/* Activations of the tiny model, one core of n = 2 (b = 2 sequences, Ne = 6, Nd = 4, fp32):
 * sublayer(N) = 2 N C 4 + 4 N = 36 N.
 * encoder self-attention: 36*6 + (q 6*4 + out 6*4 + k, v 2*6*4 + probs 2*2*3*3) * 4 = 744;
 * encoder FFN: 36*6 + 6 * (8 + 8) * 4 = 600; block 1344.
 * decoder self: 36*4 + (2*4*4 + 2*4*4 + 2*2*2*2) * 4 = 464; cross: 36*4 + (2*4*4 + 2*6*4 +
 * 2*2*2*3) * 4 = 560; FFN 36*4 + 4*16*4 = 400; block 1424.
 * stacks: tokens 4*2*(3+4) = 56, logits 4*4*10 = 160, encoder bias 4*2*9 + final 6*4*4 + 4*6 =
 * 192, decoder 4*2*4 + 4*4*4 + 4*4 = 112: 520. Total 1344 + 1424 + 520 = 3288.
 * remat: 520 + block inputs 6*4*4 + 4*4*4 = 160 + the largest block 1424 = 2104. */
static void test_plan_memory_activations(void **state)
{
    (void)state;
    run_cfg r;
    model_plan p;
    model_plan_memory mem;
    ss_err err;
    tiny_run(&r, 2, 1);
    make_ok(&p, &r);
    must(model_plan_memory_of(&mem, &p, &r, 0, &err), &err);
    assert_int_equal(mem.activations, 3288);
    assert_int_equal(mem.activations_remat, 2104);
    assert_int_equal(mem.dispatch, 0);
    assert_int_equal(mem.total, 3 * 4 * 404 + 3288);
    assert_int_equal(mem.hbm, 1ull << 29);
    assert_int_equal(mem.remat, 0);
    must(model_plan_memory_of(&mem, &p, &r, 1, &err), &err);
    assert_int_equal(mem.remat, 1);
    assert_int_equal(mem.total, 3 * 4 * 404 + 2104);

    /* two microbatches halve the per-core batch: b = 1 */
    tiny_run(&r, 2, 1);
    r.plan.microbatches = 2;
    model_plan q;
    make_ok(&q, &r);
    model_plan_memory half;
    must(model_plan_memory_of(&half, &q, &r, 0, &err), &err);
    print_memory("tiny n=2, 2 microbatches", &half);
    assert_true(half.activations < mem.activations);
    assert_true(2 * half.activations > mem.activations); /* the per-sequence part halves */
    model_plan_free(&q);

    /* bf16 halves the stored activations but not the fp32 ones: rstd 4 * (2*6 + 3*4) = 96,
     * final rstd 4 * (6 + 4) = 40, position biases 72 + 32 = 104, logits 160, tokens 56:
     * 456 bytes; the other 3288 - 456 = 2832 halve: 456 + 1416 = 1872 */
    r.plan.microbatches = 1;
    r.train.precision = RUN_PRECISION_BF16;
    must(model_plan_memory_of(&half, &p, &r, 0, &err), &err);
    assert_int_equal(half.activations, 1872);
    model_plan_free(&p);
}

/* The tiny model with 4 experts in every FFN, n = 2: El = 2; encoder group 6 tokens, K =
 * round(6 / 4 = 1.5) = 2, R = 4 * 1 * 2 = 8; decoder 4 tokens, K = 1, R = 4.
 * encoder Switch sublayer: 36*6 + router 4*6*4 + experts 8*(8+8)*4 = 824 (dense: 600);
 * decoder: 36*4 + 4*4*4 + 4*16*4 = 464 (dense: 400).
 * dispatch: encoder keeps 2*8*4*4 + 12*6 = 328, decoder 2*4*4*4 + 12*4 = 176, staging
 * 2*8*4*4 = 256: 760 without remat; with remat 328 + 256 = 584.
 * params: router 16, experts 2 x 32 + 2 x 32 = 128 instead of 64 per block: 404 + 2*(16+64). */
static void test_plan_memory_switch_dispatch(void **state)
{
    (void)state;
    run_cfg r;
    model_plan p;
    model_plan_memory mem;
    ss_err err;
    tiny_switch_run(&r, 2, 1);
    make_ok(&p, &r);
    assert_int_equal(p.capacity_enc, 2);
    assert_int_equal(p.capacity_dec, 1);
    must(model_plan_memory_of(&mem, &p, &r, 0, &err), &err);
    print_memory("tiny switch n=2", &mem);
    assert_int_equal(mem.params, 4 * (404 + 2 * (16 + 64)));
    assert_int_equal(mem.activations, 3288 + (824 - 600) + (464 - 400));
    assert_int_equal(mem.dispatch, 760);
    must(model_plan_memory_of(&mem, &p, &r, 1, &err), &err);
    assert_int_equal(mem.dispatch, 584);
    model_plan_free(&p);
}

static void test_plan_memory_remat_reduces(void **state)
{
    (void)state;
    run_cfg r;
    model_plan p;
    model_plan_memory plain, remat;
    ss_err err;
    real_run(&r, "t5-base", "tpu-v3-32", 32, 1, 256);
    make_ok(&p, &r);
    must(model_plan_memory_of(&plain, &p, &r, 0, &err), &err);
    must(model_plan_memory_of(&remat, &p, &r, 1, &err), &err);
    print_memory("t5-base 32x1 batch 256", &plain);
    print_memory("t5-base 32x1 batch 256, remat", &remat);
    print_message("activations / remat activations = %.2f\n",
                  (double)plain.activations / (double)remat.activations_remat);
    assert_true(remat.activations_remat * 4 < plain.activations);
    assert_true(remat.total < plain.total);
    assert_int_equal(plain.params, remat.params);
    model_plan_free(&p);

    /* at the paper's batch (2048 = 64 sequences per core) only remat fits */
    real_run(&r, "t5-base", "tpu-v3-32", 32, 1, 2048);
    make_ok(&p, &r);
    assert_int_equal(model_plan_memory_of(&plain, &p, &r, 0, &err), SS_ERR_CONFIG);
    print_message("no remat: %s\n", err.msg);
    must(model_plan_memory_of(&remat, &p, &r, 1, &err), &err);
    print_memory("t5-base 32x1 batch 2048, remat", &remat);
    model_plan_free(&p);
}

static void test_plan_memory_hbm_overflow(void **state)
{
    (void)state;
    run_cfg r;
    model_plan p;
    model_plan_memory mem;
    ss_err err = {0};
    real_run(&r, "switch-c-2048", "tpu-v3-32", 32, 1, 256);
    make_ok(&p, &r);
    assert_int_equal(p.experts_per_core, 64);
    assert_int_equal(model_plan_memory_of(&mem, &p, &r, 1, &err), SS_ERR_CONFIG);
    print_message("%s\n", err.msg);
    print_memory("switch-c-2048 on 32 cores", &mem);
    /* 1.57e12 parameters, 2048 experts of 64 x 6144 x 2 x 2048 (GEGLU wi) ... / 32 cores:
     * the fp32 parameters alone are over 100 GiB per core */
    assert_true(mem.params > 100ull << 30);
    assert_true(mem.total > mem.hbm);
    assert_int_equal(mem.hbm, 16ull << 30);
    const char *const frags[] = {"switch-c-2048", "does not fit in HBM", "GiB per core",
                                 "the chip has 16 GiB per core (32 GiB HBM / 2 cores)",
                                 "GiB over", "params "};
    for (size_t i = 0; i < sizeof frags / sizeof frags[0]; i++)
        if (!strstr(err.msg, frags[i]))
            fail_msg("message '%s' lacks '%s'", err.msg, frags[i]);
    /* the excess it states is total - hbm */
    double need, over;
    const char *at = strstr(err.msg, "needs ");
    assert_non_null(at);
    assert_int_equal(sscanf(at, "needs %lf GiB", &need), 1);
    at = strstr(err.msg, "cores): ");
    assert_non_null(at);
    assert_int_equal(sscanf(at, "cores): %lf GiB over", &over), 1);
    print_message("needs %.1f GiB, over by %.1f GiB (hbm 16)\n", need, over);
    assert_true(need - over > 15.85 && need - over < 16.15);
    model_plan_free(&p);
}

/* Switch-Base-128 on 32 cores and Switch-XXL with model parallelism fit (with remat). */
static void test_plan_memory_paper_layouts_fit(void **state)
{
    (void)state;
    run_cfg r;
    model_plan p;
    model_plan_memory mem;
    ss_err err;
    real_run(&r, "switch-base-128", "tpu-v3-32", 32, 1, 256);
    make_ok(&p, &r);
    must(model_plan_memory_of(&mem, &p, &r, 0, &err), &err);
    print_memory("switch-base-128 32x1 batch 256", &mem);
    assert_true(mem.dispatch > 0);
    model_plan_free(&p);
    /* Switch-XXL at batch 1024 with remat: 64 x 8 on a v3-512 is 1.9 GiB over (the dense
     * weights, embedding and untied head replicated on 64 data ways); 128 x 16 on 2048 cores
     * fits */
    real_run(&r, "switch-xxl-128", "tpu-v3-512", 64, 8, 1024);
    make_ok(&p, &r);
    assert_int_equal(model_plan_memory_of(&mem, &p, &r, 1, &err), SS_ERR_CONFIG);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "1.9 GiB over"));
    model_plan_free(&p);
    real_run(&r, "switch-xxl-128", "tpu-v3-2048", 128, 16, 1024);
    make_ok(&p, &r);
    assert_int_equal(p.strategy, MODEL_PLAN_EXPERT_MODEL_DATA);
    assert_int_equal(p.experts_per_core, 1);
    must(model_plan_memory_of(&mem, &p, &r, 1, &err), &err);
    print_memory("switch-xxl-128 128x16 batch 1024 remat", &mem);
    assert_true(mem.total < mem.hbm);
    model_plan_free(&p);
}

/* The activation formula against t5.c's real allocation for the tiny model on one core, fp32.
 * t5.c keeps more: each sublayer's output before the residual add, dropout masks as floats,
 * the backward's scratch (residual-stream gradients, logits gradient, position-bias
 * gradients) and metrics; the plan counts only what backward reads. */
static void test_plan_memory_vs_t5_acts(void **state)
{
    (void)state;
    run_cfg r;
    model_plan p;
    model_plan_memory mem;
    model_t5 m;
    ss_err err;
    for (int drop = 0; drop < 2; drop++) {
        tiny_run(&r, 1, 1);
        r.pod.cores = 1;
        r.model.d_model = 32;
        r.model.d_ff = 64;
        r.model.d_kv = 8;
        r.model.num_heads = 4;
        r.model.num_layers = r.model.encoder_layers = r.model.decoder_layers = 2;
        r.model.vocab_size = 64;
        r.model.dropout = drop ? 0.1 : 0.0;
        r.input_length = 32;
        r.target_length = 8;
        make_ok(&p, &r);
        must(model_plan_memory_of(&mem, &p, &r, 0, &err), &err);
        model_numerics nx = model_numerics_fp32();
        must(model_t5_init(&m, &r.model, (model_t5_shape){.B = 4, .T_in = 32, .T_out = 8},
                           &nx, &err),
             &err);
        const double ratio = (double)mem.activations / (double)model_t5_acts_bytes(&m);
        print_message("dropout %.1f: plan activations %llu, t5 acts_bytes %zu, ratio %.3f\n",
                      r.model.dropout, (unsigned long long)mem.activations,
                      model_t5_acts_bytes(&m), ratio);
        assert_true(ratio > 0.6 && ratio <= 1.0);
        model_t5_free(&m);
        model_plan_free(&p);
    }
}

/* ---- run config fields ------------------------------------------------------------------ */

static void test_plan_run_cfg_mapping_remat(void **state)
{
    (void)state;
    char models[PATH], pods[PATH], path[] = "/tmp/test_plan_run_XXXXXX";
    source_path(models, sizeof models, "configs/models/t5-large.yaml");
    source_path(pods, sizeof pods, "configs/pods/tpu-v3-8.yaml");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fprintf(f, "kind: run\nname: t\nmodel: %s\npod: %s\nplan:\n  data: 4\n  model: 2\n"
               "  mapping: data_neighbours\n  remat: true\nbatch: 8\ninput_length: 16\n"
               "target_length: 4\nmode: estimate\n",
            models, pods);
    fclose(f);
    run_cfg r;
    model_plan p;
    ss_err err;
    ss_status st = run_cfg_load(&r, path, &err);
    if (st != SS_OK) {
        unlink(path);
        fail_msg("%s", err.msg);
    }
    make_ok(&p, &r);
    assert_int_equal(p.mapping, MODEL_PLAN_MAP_DATA_NEIGHBOURS);
    assert_int_equal(p.remat, 1);
    assert_int_equal(p.core_of[1], 4);
    model_plan_free(&p);

    /* a constraint reported by run_cfg_load comes from plan.c, at the field */
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "kind: run\nname: t\nmodel: %s\npod: %s\nplan:\n  data: 2\n  model: 4\n"
               "  mapping: nowhere\nbatch: 8\ninput_length: 16\ntarget_length: 4\n"
               "mode: estimate\n",
            models, pods);
    fclose(f);
    st = run_cfg_load(&r, path, &err);
    print_message("%s\n", err.msg);
    assert_int_equal(st, SS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "mapping"));
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "kind: run\nname: t\nmodel: %s\npod: %s\nplan:\n  data: 1\n  model: 3\n"
               "batch: 8\ninput_length: 16\ntarget_length: 4\nmode: estimate\n",
            models, pods);
    fclose(f);
    st = run_cfg_load(&r, path, &err);
    unlink(path);
    print_message("%s\n", err.msg);
    assert_int_equal(st, SS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "field 'plan.data'"));
    assert_non_null(strstr(err.msg, "1*3 = 3 cores but pod"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_strategy_t5_base_data),
        cmocka_unit_test(test_plan_strategy_switch_base_expert_data),
        cmocka_unit_test(test_plan_strategy_switch_xxl_expert_model_data),
        cmocka_unit_test(test_plan_strategy_model_only_and_model_data),
        cmocka_unit_test(test_plan_strategy_replicated_experts),
        cmocka_unit_test(test_plan_reject_cores),
        cmocka_unit_test(test_plan_reject_experts),
        cmocka_unit_test(test_plan_reject_model_ways),
        cmocka_unit_test(test_plan_reject_batch),
        cmocka_unit_test(test_plan_reject_group_size),
        cmocka_unit_test(test_plan_reject_bad_ranges),
        cmocka_unit_test(test_plan_mapping_tables),
        cmocka_unit_test(test_plan_memory_params_optimizer),
        cmocka_unit_test(test_plan_memory_activations),
        cmocka_unit_test(test_plan_memory_switch_dispatch),
        cmocka_unit_test(test_plan_memory_remat_reduces),
        cmocka_unit_test(test_plan_memory_hbm_overflow),
        cmocka_unit_test(test_plan_memory_paper_layouts_fit),
        cmocka_unit_test(test_plan_memory_vs_t5_acts),
        cmocka_unit_test(test_plan_run_cfg_mapping_remat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
