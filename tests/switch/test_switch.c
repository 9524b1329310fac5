/* This file implements the tests of the Switch / top-k MoE layer (model/switch_layer.c): the
 * capacity rule (round vs truncate, min_capacity, the [MTF] clamp), tie-breaking, token-order
 * vs batch-prioritized dispatch, overflow dropping, the top-2 priority rule, the aux and z
 * losses against hand values, the jitter variants and their determinism, a bf16 router
 * flipping a near-tie, the statistics, the output against a per-token reference, expert
 * dropout, bf16 numerics, argument errors, and central finite-difference gradient checks.
 *
 * Invariants: hand-made routing cases use C == E and wr = identity, so the logits are x
 * exactly. The per-token reference calls model_ffn_forward on one row per (token, choice);
 * the matrix unit's exact mode sums every output element in the same order whatever the
 * number of rows, so the layer must match it bit for bit. Gradient checks run in fp32
 * (model_numerics_fp32) with loss L = sum(R * out) + wa * L_aux + wz * L_z summed in double,
 * central differences with step EPS, and only on data where no perturbation changes a routing
 * decision, a slot or (ReLU) a hidden unit's sign (the search over seeds is deterministic);
 * the error of an element is |analytic - fd| / max(|analytic|, |fd|, 1e-2 * the array's
 * largest |analytic|), and its maximum is printed per array.
 * reference: the semantics stated in model/switch_layer.h.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/bf16.h"
#include "common/rng.h"
#include "model/layers.h"
#include "model/linear.h"
#include "model/switch_layer.h"

/* ---- fixture --------------------------------------------------------------------------- */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    assert_non_null(p);
    return p;
}

/* Defaults for tests: ReLU, cf 1 (train and eval), min capacity 1, one group, rounding,
 * token order, no jitter, fp32 router, alpha 1e-2, no z-loss, no expert dropout. */
static model_switch_spec test_spec(size_t C, size_t F, size_t E, int top_k)
{
    model_switch_spec s;
    memset(&s, 0, sizeof s);
    s.C = C;
    s.F = F;
    s.E = E;
    s.ffn = MODEL_FFN_RELU;
    s.sw.num_experts = (int)E;
    s.sw.every = 1;
    s.sw.top_k = top_k;
    s.sw.capacity_factor_train = 1.0;
    s.sw.capacity_factor_eval = 1.0;
    s.sw.min_capacity = 1;
    s.sw.group_size = 0;
    s.sw.capacity_rounding = MODEL_CAPACITY_ROUND;
    s.sw.drop_priority = MODEL_DROP_TOKEN_ORDER;
    s.sw.jitter = MODEL_JITTER_OFF;
    s.sw.jitter_eps = 1e-2;
    s.sw.router_dtype = MODEL_ROUTER_FP32;
    s.sw.aux_loss_alpha = 1e-2;
    s.sw.z_loss_coef = 0.0;
    s.sw.init_scale = 0.1;
    s.sw.expert_dropout = 0.0;
    return s;
}

typedef struct {
    model_switch_plan plan;
    model_switch_acts acts;
    model_switch_stats stats;
    void *mem;
    float *params;          /* flat: wr, wi, wo */
    model_switch_weights w;
    float *grads;           /* same layout */
    model_switch_weights dw;
    float *x;               /* [N, C] */
    float *dx;              /* [N, C] */
    float *out;             /* [N, C] */
    model_numerics nx;
} fixture;

static void fx_init(fixture *f, const model_switch_spec *spec, size_t N, int training)
{
    memset(f, 0, sizeof *f);
    ss_err err = {0};
    ss_status st = model_switch_plan_make(&f->plan, spec, N, training, &err);
    if (st != SS_OK)
        fail_msg("plan: %s", err.msg);
    f->mem = xcalloc(1, f->plan.acts_bytes);
    model_switch_acts_bind(&f->acts, f->mem, &f->plan);
    size_t np = model_switch_param_count(spec);
    f->params = xcalloc(np, sizeof(float));
    f->grads = xcalloc(np, sizeof(float));
    model_switch_weights_bind(&f->w, f->params, spec);
    model_switch_weights_bind(&f->dw, f->grads, spec);
    f->x = xcalloc(N * spec->C, sizeof(float));
    f->dx = xcalloc(N * spec->C, sizeof(float));
    f->out = xcalloc(N * spec->C, sizeof(float));
    f->nx = model_numerics_fp32();
}

static void fx_free(fixture *f)
{
    free(f->mem);
    free(f->params);
    free(f->grads);
    free(f->x);
    free(f->dx);
    free(f->out);
}

static void fx_forward(fixture *f, rng_state *r)
{
    ss_err err = {0};
    ss_status st = model_switch_forward(f->out, &f->acts, &f->stats, f->x, &f->w, &f->plan, r,
                                        &f->nx, &err);
    if (st != SS_OK)
        fail_msg("forward: %s", err.msg);
}

/* wr = identity (C == E): logits are the router input. */
static void set_identity_router(fixture *f)
{
    const size_t C = f->plan.spec.C, E = f->plan.spec.E;
    assert_int_equal(C, E);
    memset(f->w.wr, 0, C * E * sizeof(float));
    for (size_t i = 0; i < C; i++)
        f->w.wr[i * E + i] = 1.0f;
}

static void set_rows(float *x, size_t C, const float *rows, size_t N)
{
    memcpy(x, rows, N * C * sizeof(float));
}

/* Uniform [-a, a) experts' weights from seed. */
static void fill_experts(fixture *f, uint64_t seed, float a)
{
    const model_switch_spec *s = &f->plan.spec;
    rng_state r;
    rng_seed(&r, seed);
    rng_fill_uniform_f32(&r, f->w.wi, s->E * s->C * f->plan.FI, -a, a);
    rng_fill_uniform_f32(&r, f->w.wo, s->E * s->F * s->C, -a, a);
}

static void expect_choices(const fixture *f, const int32_t *expert, const int32_t *slot)
{
    const size_t n = f->plan.N * f->plan.k;
    for (size_t i = 0; i < n; i++) {
        if (f->acts.expert[i] != expert[i] || f->acts.slot[i] != slot[i])
            fail_msg("token %zu choice %zu: expert %d slot %d, expected expert %d slot %d",
                     i / f->plan.k, i % f->plan.k, f->acts.expert[i], f->acts.slot[i],
                     expert[i], slot[i]);
    }
}

/* ---- capacity ---------------------------------------------------------------------------- */

static void test_switch_capacity_formula(void **state)
{
    (void)state;
    const struct {
        double cf;
        size_t S, E;
        int min_cap;
        size_t round, trunc;
    } cases[] = {
        {1.0, 10, 4, 1, 2, 2},      /* 2.5: half to even (2), floor 2 */
        {1.0, 14, 4, 1, 4, 3},      /* 3.5: half to even (4), floor 3 */
        {1.25, 8, 4, 1, 2, 2},      /* 2.5 */
        {1.25, 12, 4, 1, 4, 3},     /* 3.75 */
        {2.0, 6, 8, 1, 2, 1},       /* 1.5: to even 2, floor 1 */
        {1.0, 2, 4, 1, 1, 1},       /* 0.5: to even 0, floor 0, both raised to min 1 */
        {1.0, 8, 8, 4, 4, 4},       /* 1 raised to min_capacity 4 */
        {4.0, 4, 2, 1, 8, 4},       /* 8: [MTF] clamps to the group size 4, [FF] does not */
        {1.25, 4096, 128, 4, 40, 40},
        {1.0, 1000, 3, 4, 333, 333} /* 333.33 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t r = model_switch_capacity(cases[i].cf, cases[i].S, cases[i].E, cases[i].min_cap,
                                         MODEL_CAPACITY_ROUND);
        size_t t = model_switch_capacity(cases[i].cf, cases[i].S, cases[i].E, cases[i].min_cap,
                                         MODEL_CAPACITY_TRUNCATE);
        printf("  cf %.2f S %zu E %zu min %d: round %zu truncate %zu\n", cases[i].cf,
               cases[i].S, cases[i].E, cases[i].min_cap, r, t);
        assert_int_equal(r, cases[i].round);
        assert_int_equal(t, cases[i].trunc);
    }
}

/* The plan picks the train or eval factor and splits the tokens into groups. */
static void test_switch_capacity_plan(void **state)
{
    (void)state;
    model_switch_spec s = test_spec(4, 4, 4, 1);
    s.sw.capacity_factor_train = 1.0;
    s.sw.capacity_factor_eval = 2.0;
    s.sw.group_size = 8;
    model_switch_plan p;
    ss_err err = {0};
    assert_int_equal(model_switch_plan_make(&p, &s, 24, 1, &err), SS_OK);
    assert_int_equal(p.G, 3);
    assert_int_equal(p.S, 8);
    assert_int_equal(p.K, 2);
    assert_int_equal(model_switch_plan_make(&p, &s, 24, 0, &err), SS_OK);
    assert_int_equal(p.K, 4);
    assert_true(p.cf == 2.0);
    s.sw.group_size = 0;
    assert_int_equal(model_switch_plan_make(&p, &s, 24, 1, &err), SS_OK);
    assert_int_equal(p.G, 1);
    assert_int_equal(p.K, 6);
}

/* ---- choices and dispatch ----------------------------------------------------------------- */

static void test_switch_tie_lowest_index(void **state)
{
    (void)state;
    model_switch_spec s = test_spec(4, 3, 4, 2);
    s.sw.capacity_factor_train = 4.0; /* K = 4: nothing dropped */
    fixture f;
    fx_init(&f, &s, 4, 1);
    set_identity_router(&f);
    const float rows[] = {
        0.0f, 0.0f, 0.0f, 0.0f,  /* all equal: experts 0 then 1 */
        0.0f, 1.0f, 1.0f, 0.5f,  /* tie of 1 and 2 above 0: 1 then 2 */
        0.5f, 2.0f, 2.0f, 2.0f,  /* three-way tie: 1 then 2 */
        3.0f, 0.0f, 3.0f, -1.0f, /* tie of 0 and 2: 0 then 2 */
    };
    set_rows(f.x, 4, rows, 4);
    fx_forward(&f, NULL);
    /* choice 0 of every token first (e0: t0, t3; e1: t1, t2), then choice 1 */
    const int32_t ex[] = {0, 1, 1, 2, 1, 2, 0, 2};
    const int32_t sl[] = {0, 2, 0, 0, 1, 1, 1, 2};
    expect_choices(&f, ex, sl);
    fx_free(&f);
}

/* Hand example where earlier tokens and most confident tokens win different slots. */
static void run_priority_case(model_drop_priority prio, double cf, const int32_t *slot)
{
    model_switch_spec s = test_spec(2, 3, 2, 1);
    s.sw.drop_priority = prio;
    s.sw.capacity_factor_train = cf;
    fixture f;
    fx_init(&f, &s, 4, 1);
    set_identity_router(&f);
    const float rows[] = {
        0.4f, 0.0f,  /* e0, p = 0.60 */
        2.2f, 0.0f,  /* e0, p = 0.90 */
        0.0f, 0.85f, /* e1, p = 0.70 */
        0.0f, 0.2f,  /* e1, p = 0.55 */
    };
    set_rows(f.x, 2, rows, 4);
    fx_forward(&f, NULL);
    const int32_t ex[] = {0, 0, 1, 1};
    expect_choices(&f, ex, slot);
    fx_free(&f);
}

static void test_switch_token_order_vs_batch_prioritized(void **state)
{
    (void)state;
    /* K = 1: token order keeps tokens 0 and 2; batch-prioritized keeps 1 (0.90) and 2 (0.70). */
    const int32_t to1[] = {0, -1, 0, -1}, bp1[] = {-1, 0, 0, -1};
    run_priority_case(MODEL_DROP_TOKEN_ORDER, 0.5, to1);
    run_priority_case(MODEL_DROP_BATCH_PRIORITIZED, 0.5, bp1);
    /* K = 2: all kept, but the positions in expert 0 swap. */
    const int32_t to2[] = {0, 1, 0, 1}, bp2[] = {1, 0, 0, 1};
    run_priority_case(MODEL_DROP_TOKEN_ORDER, 1.0, to2);
    run_priority_case(MODEL_DROP_BATCH_PRIORITIZED, 1.0, bp2);
}

/* Batch-prioritized ties keep token order (stable sort). */
static void test_switch_batch_prioritized_stable(void **state)
{
    (void)state;
    model_switch_spec s = test_spec(2, 3, 2, 1);
    s.sw.drop_priority = MODEL_DROP_BATCH_PRIORITIZED;
    s.sw.capacity_factor_train = 1.0; /* K = 2 */
    fixture f;
    fx_init(&f, &s, 4, 1);
    set_identity_router(&f);
    const float rows[] = {0.0f, 0.3f, 1.0f, 0.0f, 1.0f, 0.0f, 1.0f, 0.0f};
    set_rows(f.x, 2, rows, 4);
    fx_forward(&f, NULL);
    const int32_t ex[] = {1, 0, 0, 0}, sl[] = {0, 0, 1, -1};
    expect_choices(&f, ex, sl);
    fx_free(&f);
}

/* One row of reference: out[C] = sum over kept choices of gate * ffn_e(x). */
static void reference_row(float *o, const fixture *f, size_t t)
{
    const model_switch_spec *s = &f->plan.spec;
    const size_t C = s->C, F = s->F, FI = f->plan.FI, k = f->plan.k;
    float *pre = xcalloc(FI, sizeof(float)), *h = xcalloc(F, sizeof(float));
    float *y = xcalloc(C, sizeof(float));
    memset(o, 0, C * sizeof(float));
    for (size_t j = 0; j < k; j++) {
        if (f->acts.slot[t * k + j] < 0)
            continue;
        size_t e = (size_t)f->acts.expert[t * k + j];
        model_ffn_acts fa = {pre, h, NULL};
        ss_err err = {0};
        assert_int_equal(model_ffn_forward(y, &fa, f->x + t * C, f->w.wi + e * C * FI,
                                           f->w.wo + e * F * C, 1, C, F, s->ffn, 0.0f, NULL,
                                           &f->nx, &err),
                         SS_OK);
        float g = f->acts.gate[t * k + j];
        for (size_t c = 0; c < C; c++)
            o[c] += g * y[c];
    }
    free(pre);
    free(h);
    free(y);
}

/* Largest |out - reference| over all tokens. */
static double max_reference_diff(const fixture *f)
{
    const size_t C = f->plan.spec.C;
    float *o = xcalloc(C, sizeof(float));
    double worst = 0.0;
    for (size_t t = 0; t < f->plan.N; t++) {
        reference_row(o, f, t);
        for (size_t c = 0; c < C; c++)
            worst = fmax(worst, fabs((double)f->out[t * C + c] - (double)o[c]));
    }
    free(o);
    return worst;
}

static void test_switch_overflow_output_zero(void **state)
{
    (void)state;
    model_switch_spec s = test_spec(4, 5, 2, 1);
    s.sw.capacity_factor_train = 0.5; /* 0.5 * 6 / 2 = 1.5 -> K = 2 */
    fixture f;
    fx_init(&f, &s, 6, 1);
    for (size_t c = 0; c < 4; c++)
        f.w.wr[c * 2] = 1.0f; /* logit 0 = sum of x > 0 = logit 1 */
    rng_state r;
    rng_seed(&r, 7);
    rng_fill_uniform_f32(&r, f.x, 6 * 4, 0.1f, 1.0f);
    fill_experts(&f, 8, 0.5f);
    fx_forward(&f, NULL);
    assert_int_equal(f.plan.K, 2);
    const int32_t ex[] = {0, 0, 0, 0, 0, 0}, sl[] = {0, 1, -1, -1, -1, -1};
    expect_choices(&f, ex, sl);
    for (size_t t = 2; t < 6; t++)
        for (size_t c = 0; c < 4; c++) {
            assert_true(f.out[t * 4 + c] == 0.0f && !signbit(f.out[t * 4 + c]));
            assert_true(f.acts.gate[t] == 0.0f && f.acts.row[t] == -1);
        }
    double d = max_reference_diff(&f);
    printf("  kept tokens vs per-token reference: max |diff| %g\n", d);
    assert_true(d == 0.0);
    int nonzero = 0;
    for (size_t c = 0; c < 8; c++)
        nonzero |= f.out[c] != 0.0f;
    assert_true(nonzero);
    assert_int_equal(f.stats.kept, 2);
    assert_true(fabs(f.stats.dropped_fraction - 4.0 / 6.0) < 1e-15);
    assert_true(fabs(f.stats.unrouted_fraction - 4.0 / 6.0) < 1e-15);
    fx_free(&f);
}

/* First choices of all tokens are placed before any second choice. */
static void run_top2_case(double cf, const int32_t *slot)
{
    model_switch_spec s = test_spec(3, 4, 3, 2);
    s.sw.capacity_factor_train = cf;
    fixture f;
    fx_init(&f, &s, 3, 1);
    set_identity_router(&f);
    fill_experts(&f, 11, 0.5f);
    const float rows[] = {2.0f, 1.0f, 0.0f, 1.0f, 2.0f, 0.0f, 0.0f, 1.0f, 2.0f};
    set_rows(f.x, 3, rows, 3);
    fx_forward(&f, NULL);
    const int32_t ex[] = {0, 1, 1, 0, 2, 1};
    expect_choices(&f, ex, slot);
    for (size_t i = 0; i < 6; i++) {
        float p = f.acts.probs[(i / 2) * 3 + (size_t)ex[i]];
        assert_true(f.acts.gate[i] == (slot[i] < 0 ? 0.0f : p)); /* not renormalised */
    }
    double d = max_reference_diff(&f);
    printf("  top-2 cf %.0f vs per-token reference: max |diff| %g\n", cf, d);
    assert_true(d == 0.0);
    fx_free(&f);
}

static void test_switch_top2_priority(void **state)
{
    (void)state;
    /* K = 1: every first choice fits (token 1 keeps expert 1 although token 0's second choice
     * came earlier in token order); every second choice is dropped. */
    const int32_t k1[] = {0, -1, 0, -1, 0, -1};
    run_top2_case(1.0, k1);
    /* K = 2: second choices fill what the first choices left, in token order. */
    const int32_t k2[] = {0, 1, 0, 1, 0, -1};
    run_top2_case(2.0, k2);
}

static void test_switch_top2_renormalize(void **state)
{
    (void)state;
    model_switch_spec s = test_spec(3, 4, 3, 2);
    s.top_k_renormalize = 1;
    fixture f;
    fx_init(&f, &s, 3, 1); /* K = 1 */
    set_identity_router(&f);
    const float rows[] = {2.0f, 1.0f, 0.0f, 1.0f, 2.0f, 0.0f, 0.0f, 1.0f, 2.0f};
    set_rows(f.x, 3, rows, 3);
    fx_forward(&f, NULL);
    for (size_t t = 0; t < 3; t++) {
        const float *p = f.acts.probs + t * 3;
        float d = p[f.acts.expert[t * 2]] + p[f.acts.expert[t * 2 + 1]] + 1e-9f;
        assert_true(f.acts.gate[t * 2] == p[f.acts.expert[t * 2]] / d);
        assert_true(f.acts.gate[t * 2 + 1] == 0.0f); /* dropped, renormalised before */
        assert_true(f.acts.gate[t * 2] > 0.7f && f.acts.gate[t * 2] < 0.8f);
    }
    fx_free(&f);
}

/* ---- losses ------------------------------------------------------------------------------- */

static void test_switch_aux_loss_uniform(void **state)
{
    (void)state;
    model_switch_spec s = test_spec(4, 3, 4, 1);
    s.sw.aux_loss_alpha = 0.03;
    s.sw.group_size = 4;
    fixture f;
    fx_init(&f, &s, 8, 1);
    /* wr = 0: p = 1/4 exactly, every token picks expert 0: P uniform. */
    rng_state r;
    rng_seed(&r, 3);
    rng_fill_uniform_f32(&r, f.x, 8 * 4, -1.0f, 1.0f);
    fx_forward(&f, NULL);
    printf("  uniform P: aux %.17g (alpha %.17g)\n", f.stats.aux_loss, s.sw.aux_loss_alpha);
    assert_true(f.stats.aux_loss == s.sw.aux_loss_alpha);
    /* Balanced f (each expert 1 token per group), non-uniform P. */
    set_identity_router(&f);
    const float rows[] = {3, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 4,
                          0, 0, 0, 5, 0, 0, 1, 0, 0, 3, 0, 0, 2, 0, 0, 0};
    set_rows(f.x, 4, rows, 8);
    fx_forward(&f, NULL);
    double rel = fabs(f.stats.aux_loss - s.sw.aux_loss_alpha) / s.sw.aux_loss_alpha;
    printf("  uniform f: aux %.17g, relative difference from alpha %g\n", f.stats.aux_loss, rel);
    assert_true(rel < 1e-6);
    fx_free(&f);
}

static void test_switch_aux_loss_hand_value(void **state)
{
    (void)state;
    model_switch_spec s = test_spec(2, 3, 2, 1);
    s.sw.aux_loss_alpha = 0.1;
    s.sw.group_size = 4;
    fixture f;
    fx_init(&f, &s, 8, 1);
    set_identity_router(&f);
    const float l3 = (float)log(3.0);
    /* group 0: p = (.75,.25) x3, (.25,.75): f = (.75,.25), P = (.625,.375) ->
     * alpha * 2 * (.75 * .625 + .25 * .375) = 1.125 alpha. group 1: p = 1/2: alpha. */
    const float rows[] = {l3, 0, l3, 0, l3, 0, 0, l3, 0, 0, 0, 0, 0, 0, 0, 0};
    set_rows(f.x, 2, rows, 8);
    fx_forward(&f, NULL);
    double want = 0.1 * (1.125 + 1.0) / 2.0;
    double rel = fabs(f.stats.aux_loss - want) / want;
    printf("  aux %.10g, hand value %.10g, relative difference %g\n", f.stats.aux_loss, want,
           rel);
    assert_true(rel < 1e-6);
    fx_free(&f);

    /* Top-2 over 2 experts: [MTF] counts choice 0 only, [FF] every choice (f = 1, 1). */
    s = test_spec(2, 3, 2, 2);
    s.sw.aux_loss_alpha = 0.1;
    fixture g;
    fx_init(&g, &s, 4, 1);
    set_identity_router(&g);
    set_rows(g.x, 2, rows, 4);
    fx_forward(&g, NULL);
    double mtf = g.stats.aux_loss;
    g.plan.spec.aux_count_all_choices = 1;
    fx_forward(&g, NULL);
    printf("  top-2 aux: choice 0 only %.10g (hand 0.1125), every choice %.10g (hand 0.2)\n",
           mtf, g.stats.aux_loss);
    assert_true(fabs(mtf - 0.1125) < 1e-7);
    assert_true(fabs(g.stats.aux_loss - 0.2) < 1e-7);
    fx_free(&g);
}

static void test_switch_z_loss_hand_value(void **state)
{
    (void)state;
    model_switch_spec s = test_spec(2, 3, 2, 1);
    s.sw.z_loss_coef = 1e-3;
    fixture f;
    fx_init(&f, &s, 3, 1);
    set_identity_router(&f);
    const float l3 = (float)log(3.0);
    /* logsumexp: ln 2, ln 4 (= ln(3 + 1)), 5 + ln 2 */
    const float rows[] = {0, 0, l3, 0, 5, 5};
    set_rows(f.x, 2, rows, 3);
    fx_forward(&f, NULL);
    double l2 = log(2.0), l4 = log(4.0), l5 = 5.0 + log(2.0);
    double want = 1e-3 * (l2 * l2 + l4 * l4 + l5 * l5) / 3.0;
    double rel = fabs(f.stats.z_loss - want) / want;
    printf("  z-loss %.10g, hand value %.10g, relative difference %g\n", f.stats.z_loss, want,
           rel);
    assert_true(rel < 1e-6);
    /* entropy: ln 2, -(.75 ln .75 + .25 ln .25), ln 2 */
    double h = (2.0 * l2 - (0.75 * log(0.75) + 0.25 * log(0.25))) / 3.0;
    printf("  entropy %.10g, hand value %.10g\n", f.stats.router_entropy, h);
    assert_true(fabs(f.stats.router_entropy - h) < 1e-6);
    f.plan.spec.sw.z_loss_coef = 0.0;
    fx_forward(&f, NULL);
    assert_true(f.stats.z_loss == 0.0);
    fx_free(&f);
}

/* ---- jitter ------------------------------------------------------------------------------- */

/* A jitter fixture: C 4, E 3, 5 tokens, random x and wr. */
static void jitter_fixture(fixture *f, model_jitter jitter, int training)
{
    model_switch_spec s = test_spec(4, 3, 3, 1);
    s.sw.jitter = jitter;
    s.sw.jitter_eps = 0.1;
    fx_init(f, &s, 5, training);
    rng_state r;
    rng_seed(&r, 21);
    rng_fill_uniform_f32(&r, f->x, 5 * 4, -1.0f, 1.0f);
    rng_fill_uniform_f32(&r, f->w.wr, 4 * 3, -1.0f, 1.0f);
    fill_experts(f, 22, 0.5f);
}

static void plain_logits(float *logits, const fixture *f)
{
    ss_err err = {0};
    assert_int_equal(
        model_linear_forward(logits, f->x, f->w.wr, f->plan.N, f->plan.spec.C, f->plan.spec.E,
                             &f->nx, &err),
        SS_OK);
}

static void test_switch_jitter_input(void **state)
{
    (void)state;
    fixture f;
    jitter_fixture(&f, MODEL_JITTER_INPUT, 1);
    const size_t NC = 5 * 4, NE = 5 * 3;
    rng_state r;
    rng_seed(&r, 99);
    fx_forward(&f, &r);
    /* The noise is the seed's first N*C uniforms in [0.9, 1.1), and xr = x * noise. */
    rng_state replay;
    rng_seed(&replay, 99);
    for (size_t i = 0; i < NC; i++) {
        float u = rng_uniform_f32(&replay, 0.9f, 1.1f);
        assert_true(f.acts.noise[i] == u);
        assert_true(f.acts.xr[i] == f.x[i] * u);
    }
    float *logits = xcalloc(NE, sizeof(float)), *out1 = xcalloc(NC, sizeof(float));
    ss_err err = {0};
    assert_int_equal(model_linear_forward(logits, f.acts.xr, f.w.wr, 5, 4, 3, &f.nx, &err),
                     SS_OK);
    assert_memory_equal(logits, f.acts.logits, NE * sizeof(float));
    plain_logits(logits, &f);
    assert_memory_not_equal(logits, f.acts.logits, NE * sizeof(float));
    /* Same seed, same bits; another seed, other logits. */
    memcpy(out1, f.out, NC * sizeof(float));
    memcpy(logits, f.acts.logits, NE * sizeof(float));
    rng_seed(&r, 99);
    fx_forward(&f, &r);
    assert_memory_equal(out1, f.out, NC * sizeof(float));
    assert_memory_equal(logits, f.acts.logits, NE * sizeof(float));
    rng_seed(&r, 100);
    fx_forward(&f, &r);
    assert_memory_not_equal(logits, f.acts.logits, NE * sizeof(float));
    /* Without a generator the call fails. */
    assert_int_equal(model_switch_forward(f.out, &f.acts, NULL, f.x, &f.w, &f.plan, NULL, &f.nx,
                                          &err),
                     SS_ERR_RANGE);
    printf("  %s\n", err.msg);
    free(logits);
    free(out1);
    fx_free(&f);
}

static void test_switch_jitter_logits(void **state)
{
    (void)state;
    fixture f;
    jitter_fixture(&f, MODEL_JITTER_LOGITS, 1);
    const size_t NE = 5 * 3;
    rng_state r;
    rng_seed(&r, 5);
    fx_forward(&f, &r);
    float *logits = xcalloc(NE, sizeof(float));
    plain_logits(logits, &f);
    rng_state replay;
    rng_seed(&replay, 5);
    for (size_t i = 0; i < NE; i++) {
        float u = rng_uniform_f32(&replay, 0.9f, 1.1f);
        assert_true(f.acts.noise[i] == u);
        assert_true(f.acts.logits[i] == logits[i] * u);
    }
    assert_memory_equal(f.acts.xr, f.x, 5 * 4 * sizeof(float));
    free(logits);
    fx_free(&f);
}

/* Jitter off, or in evaluation: logits are x @ wr and no generator is needed. */
static void test_switch_jitter_off_and_eval(void **state)
{
    (void)state;
    const size_t NE = 5 * 3;
    float *logits = xcalloc(NE, sizeof(float));
    const struct {
        model_jitter j;
        int training;
    } cases[] = {{MODEL_JITTER_OFF, 1}, {MODEL_JITTER_INPUT, 0}, {MODEL_JITTER_LOGITS, 0}};
    for (size_t i = 0; i < 3; i++) {
        fixture f;
        jitter_fixture(&f, cases[i].j, cases[i].training);
        assert_int_equal(f.plan.jitter, MODEL_JITTER_OFF);
        assert_null(f.acts.noise);
        fx_forward(&f, NULL);
        plain_logits(logits, &f);
        assert_memory_equal(logits, f.acts.logits, NE * sizeof(float));
        fx_free(&f);
    }
    free(logits);
}

/* ---- bf16 router ------------------------------------------------------------------------- */

static int32_t route_one(model_router_dtype dtype, const float *x, const float *wr,
                         float *logit1)
{
    model_switch_spec s = test_spec(2, 3, 2, 1);
    s.sw.router_dtype = dtype;
    fixture f;
    fx_init(&f, &s, 1, 1);
    memcpy(f.x, x, 2 * sizeof(float));
    memcpy(f.w.wr, wr, 4 * sizeof(float));
    fx_forward(&f, NULL);
    int32_t e = f.acts.expert[0];
    *logit1 = f.acts.logits[1];
    for (size_t i = 0; i < 2; i++)
        if (dtype == MODEL_ROUTER_BF16)
            assert_true(bf16_round_f32(f.acts.probs[i], BF16_DENORMALS_KEEP) ==
                        f.acts.probs[i]);
    fx_free(&f);
    return e;
}

static void test_switch_bf16_router_near_tie(void **state)
{
    (void)state;
    /* Operands exact in bf16; logit 1 = 1 + 2^-8 rounds (half to even) to 1 in bf16. */
    const float x1[] = {1.0f, 1.0f};
    const float wr1[] = {0.5f, 0.5f, 0.5f, 0.50390625f}; /* [C, E]: column 1 is (.5, .5+2^-8) */
    float l32, l16;
    int32_t e32 = route_one(MODEL_ROUTER_FP32, x1, wr1, &l32);
    int32_t e16 = route_one(MODEL_ROUTER_BF16, x1, wr1, &l16);
    printf("  logits rounding: fp32 logit %.9g -> expert %d; bf16 logit %.9g -> expert %d\n",
           (double)l32, e32, (double)l16, e16);
    assert_true(l32 == 1.00390625f && l16 == 1.0f);
    assert_int_equal(e32, 1);
    assert_int_equal(e16, 0);
    /* Operand rounding: x = (1, 1.001) with wr = identity; 1.001 is 1 in bf16. */
    const float x2[] = {1.0f, 1.001f};
    const float wr2[] = {1.0f, 0.0f, 0.0f, 1.0f};
    e32 = route_one(MODEL_ROUTER_FP32, x2, wr2, &l32);
    e16 = route_one(MODEL_ROUTER_BF16, x2, wr2, &l16);
    printf("  operand rounding: fp32 -> expert %d; bf16 -> expert %d\n", e32, e16);
    assert_int_equal(e32, 1);
    assert_int_equal(e16, 0);
}

/* ---- route-only comparison with the other router dtype ---------------------------------- */

/* Four tokens, C = E = 2; token 1 is the logits near tie of test_switch_bf16_router_near_tie
 * (fp32 picks expert 1, bf16 rounds it to a tie: expert 0); token 0 is an exact tie (expert 0
 * in both), tokens 2 and 3 are clear choices (logits 32 vs 32.25 and -32 vs -32.25). */
static void near_tie_fixture(fixture *f, model_router_dtype dtype, model_jitter jitter)
{
    model_switch_spec s = test_spec(2, 3, 2, 1);
    s.sw.router_dtype = dtype;
    s.sw.jitter = jitter;
    s.sw.min_capacity = 4;
    fx_init(f, &s, 4, 1);
    const float x[] = {1.0f, 0.0f, 1.0f, 1.0f, 0.0f, 64.0f, 0.0f, -64.0f};
    const float wr[] = {0.5f, 0.5f, 0.5f, 0.50390625f};
    memcpy(f->x, x, sizeof x);
    memcpy(f->w.wr, wr, sizeof wr);
}

static double compare_with(fixture *f, model_router_dtype other, int32_t *choices)
{
    float scratch[2 * 4 * 2];
    ss_err err = {0};
    if (model_switch_route_choices(choices, scratch, &f->acts, f->w.wr, other, &f->plan, &f->nx,
                                   &err) != SS_OK)
        fail_msg("route choices: %s", err.msg);
    return model_switch_choice_disagreement(choices, f->acts.expert, 4, 1);
}

static void test_switch_route_choices_near_tie(void **state)
{
    (void)state;
    int32_t ch[4];
    const model_router_dtype dtypes[] = {MODEL_ROUTER_FP32, MODEL_ROUTER_BF16};
    for (int i = 0; i < 2; i++) {
        const model_router_dtype own = dtypes[i], other = dtypes[1 - i];
        fixture f;
        near_tie_fixture(&f, own, MODEL_JITTER_OFF);
        fx_forward(&f, NULL);
        double same = compare_with(&f, own, ch);
        assert_memory_equal(ch, f.acts.expert, sizeof ch);
        double diff = compare_with(&f, other, ch);
        printf("  router %s: same dtype disagreement %g, other dtype %g (token 1: %d vs %d)\n",
               own == MODEL_ROUTER_BF16 ? "bf16" : "fp32", same, diff, f.acts.expert[1], ch[1]);
        assert_true(same == 0.0);
        assert_true(diff == 0.25); /* exactly token 1 flips */
        assert_int_equal(f.acts.expert[1], own == MODEL_ROUTER_FP32 ? 1 : 0);
        assert_int_equal(ch[1], own == MODEL_ROUTER_FP32 ? 0 : 1);
        fx_free(&f);
    }
}

/* With jitter the comparison uses the saved (jittered) router inputs: the same dtype
 * reproduces the forward's choices exactly, and nothing is drawn. */
static void test_switch_route_choices_jitter(void **state)
{
    (void)state;
    const model_jitter kinds[] = {MODEL_JITTER_INPUT, MODEL_JITTER_LOGITS};
    for (int i = 0; i < 2; i++) {
        fixture f;
        model_switch_spec s = test_spec(6, 5, 4, 2);
        s.sw.jitter = kinds[i];
        s.sw.jitter_eps = 0.3; /* large noise: choices without it would differ */
        fx_init(&f, &s, 24, 1);
        rng_state r;
        rng_seed(&r, 77 + (uint64_t)i);
        rng_fill_uniform_f32(&r, f.x, 24 * 6, -1.0f, 1.0f);
        rng_fill_uniform_f32(&r, f.w.wr, 6 * 4, -1.0f, 1.0f);
        fx_forward(&f, &r);
        int32_t ch[24 * 2];
        float scratch[2 * 24 * 4];
        ss_err err = {0};
        assert_int_equal(model_switch_route_choices(ch, scratch, &f.acts, f.w.wr,
                                                    MODEL_ROUTER_FP32, &f.plan, &f.nx, &err),
                         SS_OK);
        double d = model_switch_choice_disagreement(ch, f.acts.expert, 24, 2);
        printf("  jitter %d: same-dtype disagreement %g\n", (int)kinds[i], d);
        assert_true(d == 0.0);
        assert_memory_equal(ch, f.acts.expert, sizeof ch);
        fx_free(&f);
    }
}

static void test_switch_choice_disagreement(void **state)
{
    (void)state;
    const int32_t a[] = {0, 1, 2, 3, 1, 0};
    const int32_t b[] = {0, 1, 3, 2, 1, 2}; /* token 1 swaps its two choices, token 2 differs */
    double d = model_switch_choice_disagreement(a, b, 3, 2);
    printf("  disagreement %g (want 2/3)\n", d);
    assert_true(fabs(d - 2.0 / 3.0) < 1e-15);
    assert_true(model_switch_choice_disagreement(a, a, 3, 2) == 0.0);
    assert_true(model_switch_choice_disagreement(a, b, 1, 2) == 0.0);
    assert_true(model_switch_choice_disagreement(a, b, 0, 2) == 0.0);
}

/* ---- statistics, reference, dropout, bf16 numerics ---------------------------------------- */

/* A random layer: C 6, F 5, E 4, N 24 in groups of 8, cf 1 (K 2), x and weights in [-1, 1). */
static void random_fixture(fixture *f, model_switch_spec *s, uint64_t seed)
{
    fx_init(f, s, 24, 1);
    rng_state r;
    rng_seed(&r, seed);
    rng_fill_uniform_f32(&r, f->x, 24 * s->C, -1.0f, 1.0f);
    rng_fill_uniform_f32(&r, f->w.wr, s->C * s->E, -1.0f, 1.0f);
    fill_experts(f, seed + 1, 0.5f);
}

static void check_stats(const fixture *f)
{
    const model_switch_plan *p = &f->plan;
    const size_t E = p->spec.E, k = p->k, C = p->spec.C;
    long in = 0, out = 0, kept = 0;
    for (size_t e = 0; e < E; e++) {
        in += f->stats.tokens_in[e];
        out += f->stats.tokens_out[e];
        assert_int_equal(f->stats.tokens_out[e],
                         f->acts.expert_row[e + 1] - f->acts.expert_row[e]);
        assert_true(f->stats.tokens_out[e] <= f->stats.tokens_in[e]);
        assert_true((size_t)f->stats.tokens_out[e] <= p->G * p->K);
    }
    /* Kept slots of each (group, expert) are exactly 0..n-1, and rows hold the token's x. */
    for (size_t g = 0; g < p->G; g++)
        for (size_t e = 0; e < E; e++) {
            size_t seen = 0, n = 0;
            for (size_t t = g * p->S; t < (g + 1) * p->S; t++)
                for (size_t j = 0; j < k; j++) {
                    size_t i = t * k + j;
                    if ((size_t)f->acts.expert[i] != e || f->acts.slot[i] < 0)
                        continue;
                    assert_true((size_t)f->acts.slot[i] < p->K);
                    assert_false(seen & (1u << f->acts.slot[i]));
                    seen |= 1u << f->acts.slot[i];
                    n++;
                    assert_int_equal(f->acts.row[i],
                                     f->acts.group_row[g * E + e] + f->acts.slot[i]);
                    assert_memory_equal(f->acts.xe + (size_t)f->acts.row[i] * C, f->x + t * C,
                                        C * sizeof(float));
                }
            assert_int_equal(seen, (1u << n) - 1);
        }
    for (size_t i = 0; i < p->N * k; i++) {
        kept += f->acts.slot[i] >= 0;
        assert_true((f->acts.slot[i] < 0) == (f->acts.row[i] < 0));
    }
    assert_int_equal(in, (long)(p->N * k));
    assert_int_equal(out, kept);
    assert_int_equal(f->stats.kept, (size_t)kept);
    assert_true(f->stats.dropped_fraction == 1.0 - (double)kept / (double)(p->N * k));
    printf("  top-%zu: tokens in/out per expert:", k);
    for (size_t e = 0; e < E; e++)
        printf(" %d/%d", f->stats.tokens_in[e], f->stats.tokens_out[e]);
    printf("; dropped %.3f, unrouted %.3f, aux %.5f, entropy %.4f\n",
           f->stats.dropped_fraction, f->stats.unrouted_fraction, f->stats.aux_loss,
           f->stats.router_entropy);
}

static void test_switch_statistics(void **state)
{
    (void)state;
    for (int top_k = 1; top_k <= 3; top_k++) {
        model_switch_spec s = test_spec(6, 5, 4, top_k);
        s.sw.group_size = 8;
        fixture f;
        random_fixture(&f, &s, 40);
        fx_forward(&f, NULL);
        check_stats(&f);
        assert_true(f.stats.kept < f.plan.R); /* the case drops something */
        if (top_k == 1)
            assert_true(f.stats.unrouted_fraction == f.stats.dropped_fraction);
        else
            assert_true(f.stats.unrouted_fraction < f.stats.dropped_fraction);
        fx_free(&f);
    }
    /* Uniform router: entropy ln E. */
    model_switch_spec s = test_spec(6, 5, 4, 1);
    fixture f;
    random_fixture(&f, &s, 41);
    memset(f.w.wr, 0, 6 * 4 * sizeof(float));
    fx_forward(&f, NULL);
    printf("  uniform router entropy %.17g (ln 4 = %.17g)\n", f.stats.router_entropy, log(4.0));
    assert_true(fabs(f.stats.router_entropy - log(4.0)) < 1e-14);
    fx_free(&f);
}

static void test_switch_forward_reference(void **state)
{
    (void)state;
    const struct {
        int top_k;
        model_ffn ffn;
        model_drop_priority prio;
    } cases[] = {{1, MODEL_FFN_RELU, MODEL_DROP_TOKEN_ORDER},
                 {1, MODEL_FFN_GEGLU, MODEL_DROP_BATCH_PRIORITIZED},
                 {2, MODEL_FFN_RELU, MODEL_DROP_BATCH_PRIORITIZED},
                 {2, MODEL_FFN_GEGLU, MODEL_DROP_TOKEN_ORDER}};
    for (size_t i = 0; i < 4; i++) {
        model_switch_spec s = test_spec(6, 5, 4, cases[i].top_k);
        s.ffn = cases[i].ffn;
        s.sw.drop_priority = cases[i].prio;
        s.sw.group_size = 8;
        fixture f;
        random_fixture(&f, &s, 50 + i);
        fx_forward(&f, NULL);
        double d = max_reference_diff(&f);
        printf("  top-%d %s %s: kept %zu of %zu, max |out - reference| %g\n", cases[i].top_k,
               model_ffn_name(cases[i].ffn),
               cases[i].prio == MODEL_DROP_TOKEN_ORDER ? "token-order" : "batch-prioritized",
               f.stats.kept, f.plan.R, d);
        assert_true(d == 0.0);
        fx_free(&f);
    }
}

static void test_switch_expert_dropout(void **state)
{
    (void)state;
    model_switch_spec s = test_spec(6, 5, 4, 1);
    s.sw.expert_dropout = 0.5;
    fixture f;
    random_fixture(&f, &s, 60);
    assert_non_null(f.acts.mask);
    rng_state r;
    rng_seed(&r, 1);
    fx_forward(&f, &r);
    size_t n = (size_t)f.acts.expert_row[4] * 5, zeros = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(f.acts.mask[i] == 0.0f || f.acts.mask[i] == 2.0f);
        zeros += f.acts.mask[i] == 0.0f;
    }
    printf("  expert dropout 0.5: %zu of %zu hidden units dropped\n", zeros, n);
    assert_true(zeros > 0 && zeros < n);
    float *out1 = xcalloc(24 * 6, sizeof(float));
    memcpy(out1, f.out, 24 * 6 * sizeof(float));
    rng_seed(&r, 1);
    fx_forward(&f, &r);
    assert_memory_equal(out1, f.out, 24 * 6 * sizeof(float));
    ss_err err = {0};
    assert_int_equal(model_switch_forward(f.out, &f.acts, NULL, f.x, &f.w, &f.plan, NULL, &f.nx,
                                          &err),
                     SS_ERR_RANGE);
    printf("  %s\n", err.msg);
    free(out1);
    fx_free(&f);
    /* Evaluation: no dropout, no mask. */
    fixture g;
    fx_init(&g, &s, 24, 0);
    assert_true(g.plan.dropout == 0.0f);
    assert_null(g.acts.mask);
    fx_free(&g);
}

/* bf16 numerics: gates, expert inputs and outputs are bf16 values. */
static void test_switch_bf16_numerics(void **state)
{
    (void)state;
    model_switch_spec s = test_spec(6, 5, 4, 2);
    fixture f;
    random_fixture(&f, &s, 70);
    f.nx = model_numerics_bf16(BF16_DENORMALS_KEEP);
    bf16_round_f32_array(f.x, 24 * 6, BF16_DENORMALS_KEEP); /* a stored bf16 activation */
    fx_forward(&f, NULL);
    check_stats(&f);
    for (size_t i = 0; i < f.plan.R; i++)
        assert_true(bf16_round_f32(f.acts.gate[i], BF16_DENORMALS_KEEP) == f.acts.gate[i]);
    for (size_t i = 0; i < 24 * 6; i++)
        assert_true(bf16_round_f32(f.out[i], BF16_DENORMALS_KEEP) == f.out[i]);
    for (size_t i = 0; i < f.stats.kept * 6; i++)
        assert_true(bf16_round_f32(f.acts.xe[i], BF16_DENORMALS_KEEP) == f.acts.xe[i]);
    fx_free(&f);
}

static void test_switch_errors(void **state)
{
    (void)state;
    model_switch_plan p;
    ss_err err = {0};
    model_switch_spec s = test_spec(4, 4, 4, 1);
    assert_int_equal(model_switch_plan_make(&p, &s, 0, 1, &err), SS_ERR_RANGE);
    printf("  %s\n", err.msg);
    s.sw.group_size = 5;
    assert_int_equal(model_switch_plan_make(&p, &s, 12, 1, &err), SS_ERR_RANGE);
    printf("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "group_size 5"));
    s = test_spec(4, 4, 4, 5);
    assert_int_equal(model_switch_plan_make(&p, &s, 12, 1, &err), SS_ERR_RANGE);
    printf("  %s\n", err.msg);
    s = test_spec(4, 4, 4, 0);
    assert_int_equal(model_switch_plan_make(&p, &s, 12, 1, &err), SS_ERR_RANGE);
    s = test_spec(4, 0, 4, 1);
    assert_int_equal(model_switch_plan_make(&p, &s, 12, 1, &err), SS_ERR_RANGE);
    s = test_spec(4, 4, 4, 1);
    s.sw.capacity_factor_eval = 0.0;
    assert_int_equal(model_switch_plan_make(&p, &s, 12, 0, &err), SS_ERR_RANGE);
    assert_int_equal(model_switch_plan_make(&p, &s, 12, 1, &err), SS_OK);
    s = test_spec((size_t)1 << 40, 4, 4, 1);
    assert_int_equal(model_switch_plan_make(&p, &s, (size_t)1 << 30, 1, &err), SS_ERR_NOMEM);
    printf("  %s\n", err.msg);
    s = test_spec(4, 4, 4, 2);
    assert_int_equal(model_switch_plan_make(&p, &s, (size_t)INT32_MAX, 1, &err), SS_ERR_RANGE);
    printf("  %s\n", err.msg);
}

/* The spec taken from a model config. */
static void test_switch_spec_from_cfg(void **state)
{
    (void)state;
    model_cfg m;
    memset(&m, 0, sizeof m);
    m.d_model = 8;
    m.d_ff = 16;
    m.ffn = MODEL_FFN_GEGLU;
    m.has_switch = 1;
    m.sw = test_spec(8, 16, 4, 2).sw;
    model_switch_spec s = model_switch_spec_from_cfg(&m);
    assert_int_equal(s.C, 8);
    assert_int_equal(s.F, 16);
    assert_int_equal(s.E, 4);
    assert_int_equal(s.ffn, MODEL_FFN_GEGLU);
    assert_int_equal(s.sw.top_k, 2);
    assert_int_equal(s.top_k_renormalize, 0);
    assert_int_equal(s.aux_count_all_choices, 0);
    assert_int_equal(model_switch_param_count(&s), 8 * 4 + 4 * 8 * 32 + 4 * 16 * 8);
    float *flat = xcalloc(model_switch_param_count(&s), sizeof(float));
    model_switch_weights w;
    model_switch_weights_bind(&w, flat, &s);
    assert_ptr_equal(w.wr, flat);
    assert_ptr_equal(w.wi, flat + 32);
    assert_ptr_equal(w.wo, flat + 32 + 4 * 8 * 32);
    free(flat);
}

/* ---- gradient checks ---------------------------------------------------------------------- */

#ifndef EPS
#define EPS 8e-3f
#endif
#define GRAD_TOL 1e-2

typedef struct {
    const char *name;
    int top_k;
    model_ffn ffn;
    model_drop_priority prio;
    model_jitter jitter;
    int renormalize;
    double dropout;
    float wR, wa, wz; /* weights of sum(R * out), L_aux and L_z in the loss */
} grad_case;

typedef struct {
    fixture f;
    float *R;        /* [N, C] */
    int32_t *expert; /* baseline decisions */
    int32_t *slot;
    uint8_t *sign;   /* baseline (pre > 0) of the kept rows (ReLU) */
    uint64_t seed;
} grad_fx;

/* Loss of one forward (the generator reseeded so that jitter and dropout repeat); *valid is
 * cleared if a routing decision, slot or ReLU sign differs from the baseline. */
static double grad_loss(grad_fx *g, const grad_case *c, int *valid)
{
    fixture *f = &g->f;
    rng_state r;
    rng_seed(&r, g->seed * 7919u + 1u);
    fx_forward(f, &r);
    double L = (double)c->wa * f->stats.aux_loss + (double)c->wz * f->stats.z_loss;
    for (size_t i = 0; i < f->plan.N * f->plan.spec.C; i++)
        L += (double)c->wR * (double)g->R[i] * (double)f->out[i];
    const size_t nk = f->plan.N * f->plan.k;
    if (memcmp(g->expert, f->acts.expert, nk * sizeof(int32_t)) ||
        memcmp(g->slot, f->acts.slot, nk * sizeof(int32_t)))
        *valid = 0;
    if (f->plan.spec.ffn == MODEL_FFN_RELU)
        for (size_t i = 0; i < f->stats.kept * f->plan.FI; i++)
            if (g->sign[i] != (f->acts.pre[i] > 0.0f))
                *valid = 0;
    return L;
}

static void grad_setup(grad_fx *g, const grad_case *c, uint64_t seed)
{
    model_switch_spec s = test_spec(6, 5, 4, c->top_k);
    s.ffn = c->ffn;
    s.sw.group_size = 6; /* N 12: two groups */
    s.sw.capacity_factor_train = 0.5 * c->top_k; /* K = round(0.75 k): 1 (top-1), 2 (top-2) */
    s.sw.drop_priority = c->prio;
    s.sw.jitter = c->jitter;
    s.sw.jitter_eps = 0.1;
    s.sw.aux_loss_alpha = 0.5;
    s.sw.z_loss_coef = 0.2;
    s.sw.expert_dropout = c->dropout;
    s.top_k_renormalize = c->renormalize;
    memset(g, 0, sizeof *g);
    g->seed = seed;
    fixture *f = &g->f;
    fx_init(f, &s, 12, 1);
    rng_state r;
    rng_seed(&r, seed);
    rng_fill_uniform_f32(&r, f->x, 12 * 6, -1.0f, 1.0f);
    rng_fill_uniform_f32(&r, f->w.wr, 6 * 4, -1.0f, 1.0f);
    rng_fill_uniform_f32(&r, f->w.wi, 4 * 6 * f->plan.FI, -0.5f, 0.5f);
    rng_fill_uniform_f32(&r, f->w.wo, 4 * 5 * 6, -0.5f, 0.5f);
    g->R = xcalloc(12 * 6, sizeof(float));
    rng_fill_uniform_f32(&r, g->R, 12 * 6, -1.0f, 1.0f);
    g->expert = xcalloc(12 * 2, sizeof(int32_t));
    g->slot = xcalloc(12 * 2, sizeof(int32_t));
    g->sign = xcalloc(12 * 2 * f->plan.FI, 1);
    int valid = 1;
    (void)grad_loss(g, c, &valid);
    memcpy(g->expert, f->acts.expert, 12 * f->plan.k * sizeof(int32_t));
    memcpy(g->slot, f->acts.slot, 12 * f->plan.k * sizeof(int32_t));
    for (size_t i = 0; i < f->stats.kept * f->plan.FI; i++)
        g->sign[i] = f->acts.pre[i] > 0.0f;
}

static void grad_teardown(grad_fx *g)
{
    fx_free(&g->f);
    free(g->R);
    free(g->expert);
    free(g->slot);
    free(g->sign);
}

/* Central differences over every element of v[n]; returns the largest error (file comment)
 * against the analytic an[n], or -1 if a perturbation changed a decision. */
static double check_array(grad_fx *g, const grad_case *c, float *v, const float *an, size_t n)
{
    double amax = 0.0;
    for (size_t i = 0; i < n; i++)
        amax = fmax(amax, fabs((double)an[i]));
    double worst = 0.0;
    int valid = 1;
    for (size_t i = 0; i < n; i++) {
        const float keep = v[i];
        v[i] = keep + EPS;
        double lp = grad_loss(g, c, &valid);
        v[i] = keep - EPS;
        double lm = grad_loss(g, c, &valid);
        v[i] = keep;
        double fd = (lp - lm) / ((double)(keep + EPS) - (double)(keep - EPS));
        double a = an[i];
        double scale = fmax(fmax(fabs(a), fabs(fd)), 1e-2 * amax);
        if (scale > 0.0)
            worst = fmax(worst, fabs(a - fd) / scale);
    }
    return valid ? worst : -1.0;
}

/* Runs the check of one case on the first seed whose perturbations leave every decision
 * alone; fails if the errors exceed GRAD_TOL. */
static void run_grad_case(const grad_case *c)
{
    for (uint64_t seed = 1; seed <= 200; seed++) {
        grad_fx g;
        grad_setup(&g, c, seed);
        fixture *f = &g.f;
        const model_switch_spec *s = &f->plan.spec;
        const size_t nwi = s->E * s->C * f->plan.FI, nwo = s->E * s->F * s->C;
        /* analytic gradients */
        rng_state r;
        rng_seed(&r, g.seed * 7919u + 1u);
        fx_forward(f, &r);
        ss_err err = {0};
        memset(f->dx, 0, 12 * 6 * sizeof(float));
        memset(f->grads, 0, model_switch_param_count(s) * sizeof(float));
        float *dout = xcalloc(12 * 6, sizeof(float));
        for (size_t i = 0; i < 12 * 6; i++)
            dout[i] = c->wR * g.R[i];
        assert_int_equal(model_switch_backward(f->dx, &f->dw, dout, c->wa, c->wz, &f->acts,
                                               &f->w, &f->plan, &f->nx, &err),
                         SS_OK);
        free(dout);
        double ex = check_array(&g, c, f->x, f->dx, 12 * 6);
        double ewr = check_array(&g, c, f->w.wr, f->dw.wr, 6 * 4);
        double ewi = check_array(&g, c, f->w.wi, f->dw.wi, nwi);
        double ewo = check_array(&g, c, f->w.wo, f->dw.wo, nwo);
        size_t kept = f->stats.kept;
        grad_teardown(&g);
        if (ex < 0 || ewr < 0 || ewi < 0 || ewo < 0)
            continue; /* a decision moved under a perturbation: try the next data */
        printf("  %-28s seed %3llu, kept %2zu/%2zu: max rel err x %.2e wr %.2e wi %.2e "
               "wo %.2e\n",
               c->name, (unsigned long long)seed, kept, (size_t)12 * (size_t)c->top_k, ex, ewr,
               ewi, ewo);
        assert_true(ex < GRAD_TOL);
        assert_true(ewr < GRAD_TOL);
        assert_true(ewi < GRAD_TOL);
        assert_true(ewo < GRAD_TOL);
        assert_true(kept < (size_t)12 * (size_t)c->top_k); /* drops are exercised */
        return;
    }
    fail_msg("%s: no seed in 1..200 leaves the routing alone under perturbation", c->name);
}

static void test_switch_gradients_top1(void **state)
{
    (void)state;
    const grad_case cases[] = {
        {"top-1 relu all terms", 1, MODEL_FFN_RELU, MODEL_DROP_TOKEN_ORDER, MODEL_JITTER_OFF, 0,
         0.0, 1.0f, 1.0f, 1.0f},
        {"top-1 geglu bpr all terms", 1, MODEL_FFN_GEGLU, MODEL_DROP_BATCH_PRIORITIZED,
         MODEL_JITTER_OFF, 0, 0.0, 1.0f, 1.0f, 1.0f},
        {"top-1 output only", 1, MODEL_FFN_GEGLU, MODEL_DROP_TOKEN_ORDER, MODEL_JITTER_OFF, 0,
         0.0, 1.0f, 0.0f, 0.0f},
        {"top-1 aux loss only", 1, MODEL_FFN_RELU, MODEL_DROP_TOKEN_ORDER, MODEL_JITTER_OFF, 0,
         0.0, 0.0f, 1.0f, 0.0f},
        {"top-1 z-loss only", 1, MODEL_FFN_RELU, MODEL_DROP_TOKEN_ORDER, MODEL_JITTER_OFF, 0,
         0.0, 0.0f, 0.0f, 1.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_grad_case(&cases[i]);
}

static void test_switch_gradients_top2(void **state)
{
    (void)state;
    const grad_case cases[] = {
        {"top-2 relu all terms", 2, MODEL_FFN_RELU, MODEL_DROP_TOKEN_ORDER, MODEL_JITTER_OFF, 0,
         0.0, 1.0f, 1.0f, 1.0f},
        {"top-2 geglu bpr all terms", 2, MODEL_FFN_GEGLU, MODEL_DROP_BATCH_PRIORITIZED,
         MODEL_JITTER_OFF, 0, 0.0, 1.0f, 1.0f, 1.0f},
        {"top-2 renormalized gates", 2, MODEL_FFN_GEGLU, MODEL_DROP_TOKEN_ORDER,
         MODEL_JITTER_OFF, 1, 0.0, 1.0f, 1.0f, 1.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_grad_case(&cases[i]);
}

/* The noise and dropout masks are constants of the backward (the generator is reseeded). */
static void test_switch_gradients_jitter_dropout(void **state)
{
    (void)state;
    const grad_case cases[] = {
        {"top-1 input jitter+dropout", 1, MODEL_FFN_GEGLU, MODEL_DROP_TOKEN_ORDER,
         MODEL_JITTER_INPUT, 0, 0.3, 1.0f, 1.0f, 1.0f},
        {"top-2 logits jitter", 2, MODEL_FFN_RELU, MODEL_DROP_TOKEN_ORDER, MODEL_JITTER_LOGITS,
         0, 0.0, 1.0f, 1.0f, 1.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_grad_case(&cases[i]);
}

/* max_i |a[i] - m * b[i]| / max_i |m * b[i]|. */
static double max_scaled_diff(const float *a, const float *b, float m, size_t n)
{
    double d = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - (double)m * b[i]));
        s = fmax(s, fabs((double)m * b[i]));
    }
    return s > 0.0 ? d / s : d;
}

/* Gradients accumulate (+=) and dinp may be NULL. */
static void test_switch_backward_accumulates(void **state)
{
    (void)state;
    model_switch_spec s = test_spec(6, 5, 4, 2);
    s.sw.z_loss_coef = 0.1;
    fixture f;
    random_fixture(&f, &s, 80);
    fx_forward(&f, NULL);
    const size_t np = model_switch_param_count(&s), nx = 24 * 6;
    float *dout = xcalloc(nx, sizeof(float));
    rng_state r;
    rng_seed(&r, 81);
    rng_fill_uniform_f32(&r, dout, nx, -1.0f, 1.0f);
    ss_err err = {0};
    assert_int_equal(model_switch_backward(f.dx, &f.dw, dout, 1.0f, 1.0f, &f.acts, &f.w,
                                           &f.plan, &f.nx, &err),
                     SS_OK);
    float *g1 = xcalloc(np, sizeof(float)), *x1 = xcalloc(nx, sizeof(float));
    memcpy(g1, f.grads, np * sizeof(float));
    memcpy(x1, f.dx, nx * sizeof(float));
    assert_int_equal(model_switch_backward(f.dx, &f.dw, dout, 1.0f, 1.0f, &f.acts, &f.w,
                                           &f.plan, &f.nx, &err),
                     SS_OK);
    double dg = max_scaled_diff(f.grads, g1, 2.0f, np), dxd = max_scaled_diff(f.dx, x1, 2.0f, nx);
    assert_int_equal(model_switch_backward(NULL, &f.dw, dout, 1.0f, 1.0f, &f.acts, &f.w,
                                           &f.plan, &f.nx, &err),
                     SS_OK);
    double dg3 = max_scaled_diff(f.grads, g1, 3.0f, np);
    printf("  twice: max rel diff from 2x: params %g, input %g; three times (no dinp): %g\n",
           dg, dxd, dg3);
    assert_true(dg < 1e-6 && dxd < 1e-6 && dg3 < 1e-6);
    double gsum = 0.0;
    for (size_t i = 0; i < np; i++)
        gsum += fabs(g1[i]);
    assert_true(gsum > 0.0);
    free(dout);
    free(g1);
    free(x1);
    fx_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_switch_capacity_formula),
        cmocka_unit_test(test_switch_capacity_plan),
        cmocka_unit_test(test_switch_tie_lowest_index),
        cmocka_unit_test(test_switch_token_order_vs_batch_prioritized),
        cmocka_unit_test(test_switch_batch_prioritized_stable),
        cmocka_unit_test(test_switch_overflow_output_zero),
        cmocka_unit_test(test_switch_top2_priority),
        cmocka_unit_test(test_switch_top2_renormalize),
        cmocka_unit_test(test_switch_aux_loss_uniform),
        cmocka_unit_test(test_switch_aux_loss_hand_value),
        cmocka_unit_test(test_switch_z_loss_hand_value),
        cmocka_unit_test(test_switch_jitter_input),
        cmocka_unit_test(test_switch_jitter_logits),
        cmocka_unit_test(test_switch_jitter_off_and_eval),
        cmocka_unit_test(test_switch_bf16_router_near_tie),
        cmocka_unit_test(test_switch_route_choices_near_tie),
        cmocka_unit_test(test_switch_route_choices_jitter),
        cmocka_unit_test(test_switch_choice_disagreement),
        cmocka_unit_test(test_switch_statistics),
        cmocka_unit_test(test_switch_forward_reference),
        cmocka_unit_test(test_switch_expert_dropout),
        cmocka_unit_test(test_switch_bf16_numerics),
        cmocka_unit_test(test_switch_errors),
        cmocka_unit_test(test_switch_spec_from_cfg),
        cmocka_unit_test(test_switch_gradients_top1),
        cmocka_unit_test(test_switch_gradients_top2),
        cmocka_unit_test(test_switch_gradients_jitter_dropout),
        cmocka_unit_test(test_switch_backward_accumulates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
