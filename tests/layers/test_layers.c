/* This file implements the tests of the dense T5 layers (model/layers.c): forward passes
 * against naive fp64 references written here (embedding, tied and untied head, RMSNorm,
 * attention with bias, masks and dropout, ReLU and GEGLU FFN, cross-entropy), finite-
 * difference gradient checks of every gradient every layer produces, T5's relative position
 * buckets against values derived by hand from the formula, causal and padding masking, rows
 * with every key masked, the strided attention products in fast (OpenBLAS) GEMM mode, bf16
 * against fp32 numerics, determinism from a seed, and the errors for bad user values.
 *
 * Gradient checks: fp32 numerics (model_numerics_fp32), the scalar loss L = sum(out * g) for
 * a fixed random g accumulated in double, a five-point central difference with step FD_H =
 * 1e-2 (truncation O(h^4)), and the error measure max_i |fd_i - an_i| / max_i |an_i| over
 * every element of the array checked; it must stay below GRAD_TOL (2e-3; measured values are
 * printed, about 1e-5 to 1e-4). Dropout masks are held fixed by re-seeding the rng before
 * every forward. ReLU inputs are drawn so that no pre-activation lies within 0.03 of the kink,
 * farther than any perturbation moves it.
 * reference: T5's _relative_position_bucket (Mesh TensorFlow transformer/attention.py,
 * HuggingFace modeling_t5.py); the bucket values in test_layers_relpos_bucket_values are
 * worked out by hand in the comments next to them.
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

#include "common/rng.h"
#include "model/layers.h"

#define FD_H 1e-2f
#define GRAD_TOL 2e-3
#define BF16_TOL 3e-2 /* normwise relative difference of bf16 from fp32 numerics */
#define REF_TOL 1e-5  /* normwise relative difference of fp32 kernels from fp64 references */

/* ---- helpers ------------------------------------------------------------------------- */

static float *fvec(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

static float *frand(rng_state *r, size_t n, float lo, float hi)
{
    float *p = fvec(n);
    rng_fill_uniform_f32(r, p, n, lo, hi);
    return p;
}

static double *dvec(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* max |x - ref| / max |ref|, printed. */
static double rel_diff(const char *what, const float *x, const double *ref, size_t n)
{
    double md = 0.0, mr = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)x[i] - ref[i]);
        md = d > md ? d : md;
        mr = fabs(ref[i]) > mr ? fabs(ref[i]) : mr;
    }
    double e = md / (mr > 0.0 ? mr : 1.0);
    printf("  %-34s max rel diff %.3e (max |ref| %.3e)\n", what, e, mr);
    return e;
}

static double rel_diff_f(const char *what, const float *x, const float *ref, size_t n)
{
    double *r = dvec(n);
    for (size_t i = 0; i < n; i++)
        r[i] = ref[i];
    double e = rel_diff(what, x, r, n);
    free(r);
    return e;
}

/* out[N,OC] = x[N,C] @ w[C,OC] in double (w transposed: stored [OC,C]). */
static void ref_matmul(double *out, const double *x, const float *w, size_t N, size_t C,
                       size_t OC, int w_trans)
{
    for (size_t n = 0; n < N; n++)
        for (size_t o = 0; o < OC; o++) {
            double s = 0.0;
            for (size_t c = 0; c < C; c++)
                s += x[n * C + c] * (double)(w_trans ? w[o * C + c] : w[c * OC + o]);
            out[n * OC + o] = s;
        }
}

static double *to_double(const float *x, size_t n)
{
    double *d = dvec(n);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* ---- finite-difference gradient check ------------------------------------------------ */

typedef double (*loss_fn)(void *ctx);

/* Five-point central difference of fn with respect to x[i]. */
static double fd_deriv(loss_fn fn, void *ctx, float *x, size_t i)
{
    static const float off[4] = {-2.0f, -1.0f, 1.0f, 2.0f};
    float x0 = x[i];
    double f[4];
    for (int k = 0; k < 4; k++) {
        x[i] = x0 + off[k] * FD_H;
        f[k] = fn(ctx);
    }
    x[i] = x0;
    return (f[0] - 8.0 * f[1] + 8.0 * f[2] - f[3]) / (12.0 * (double)FD_H);
}

/* max |fd - an| / max |an| over x[0..n-1], printed; an must not be all zero. */
static double grad_err(const char *name, loss_fn fn, void *ctx, float *x, const float *an,
                       size_t n)
{
    double md = 0.0, ma = 0.0;
    for (size_t i = 0; i < n; i++) {
        double fd = fd_deriv(fn, ctx, x, i);
        double d = fabs(fd - (double)an[i]);
        md = d > md ? d : md;
        ma = fabs((double)an[i]) > ma ? fabs((double)an[i]) : ma;
    }
    double e = md / (ma > 0.0 ? ma : 1.0);
    printf("  grad %-29s max rel err %.3e (max |grad| %.3e, %zu elements)\n", name, e, ma, n);
    return e;
}

static void check_grad(const char *name, loss_fn fn, void *ctx, float *x, const float *an,
                       size_t n)
{
    double e = grad_err(name, fn, ctx, x, an, n);
    assert_true(e < GRAD_TOL);
}

/* ---- embedding and head -------------------------------------------------------------- */

typedef struct {
    size_t N, C, V;
    int tied;
    int32_t *tokens; /* [N]: with tokens, the head reads embeddings of the tokens */
    float *x;        /* [N, C]: head input when tokens is NULL */
    float *wte;      /* [V, C] */
    float *lm;       /* [C, V] untied head */
    float *emb;      /* [N, C] scratch */
    float *logits;   /* [N, V] */
    float *g;        /* [N, V] or [N, C] */
    model_numerics nx;
} head_case;

static void head_case_init(head_case *h, size_t N, size_t C, size_t V, int tied, int tokens,
                           uint64_t seed)
{
    rng_state r;
    rng_seed(&r, seed);
    memset(h, 0, sizeof *h);
    h->N = N;
    h->C = C;
    h->V = V;
    h->tied = tied;
    h->nx = model_numerics_fp32();
    if (tokens) {
        h->tokens = calloc(N, sizeof *h->tokens);
        assert_non_null(h->tokens);
        for (size_t n = 0; n < N; n++)
            h->tokens[n] = (int32_t)((n * 3) % (V - 1)); /* repeats: token 0 twice for N > 4 */
    }
    h->x = frand(&r, N * C, -1.0f, 1.0f);
    h->wte = frand(&r, V * C, -1.0f, 1.0f);
    h->lm = frand(&r, C * V, -1.0f, 1.0f);
    h->emb = fvec(N * C);
    h->logits = fvec(N * V);
    h->g = frand(&r, N * V, -1.0f, 1.0f);
}

static void head_case_free(head_case *h)
{
    free(h->tokens);
    free(h->x);
    free(h->wte);
    free(h->lm);
    free(h->emb);
    free(h->logits);
    free(h->g);
}

/* The head input: the embeddings of the tokens, or x. */
static const float *head_input(head_case *h)
{
    if (!h->tokens)
        return h->x;
    ss_err err;
    assert_int_equal(model_embedding_forward(h->emb, h->tokens, h->wte, h->N, h->C, h->V, &h->nx,
                                             &err), SS_OK);
    return h->emb;
}

static double head_loss(void *ctx)
{
    head_case *h = ctx;
    ss_err err;
    const float *in = head_input(h);
    assert_int_equal(model_head_forward(h->logits, in, h->tied ? h->wte : h->lm, h->N, h->C,
                                        h->V, h->tied, &h->nx, &err), SS_OK);
    return dot(h->logits, h->g, h->N * h->V);
}

/* Analytic gradients of head_loss: dx [N,C] (when no tokens) and dw (wte or lm). */
static void head_grads(head_case *h, float *dx, float *dw)
{
    ss_err err;
    float *demb = fvec(h->N * h->C);
    head_loss(h);
    const float *in = h->tokens ? h->emb : h->x;
    assert_int_equal(model_head_backward(demb, dw, h->g, in, h->tied ? h->wte : h->lm, h->N,
                                         h->C, h->V, h->tied, &h->nx, &err), SS_OK);
    if (h->tokens)
        model_embedding_backward(dw, demb, h->tokens, h->N, h->C, h->V);
    else
        memcpy(dx, demb, h->N * h->C * sizeof(float));
    free(demb);
}

static void test_layers_embedding_forward(void **state)
{
    (void)state;
    head_case h;
    head_case_init(&h, 6, 4, 5, 1, 1, 11);
    head_input(&h);
    for (size_t n = 0; n < h.N; n++)
        assert_memory_equal(h.emb + n * h.C, h.wte + (size_t)h.tokens[n] * h.C,
                            h.C * sizeof(float));
    head_case_free(&h);
}

/* The embedding alone: loss = sum(emb * g[0 .. N*C-1]). */
static double emb_loss(void *ctx)
{
    head_case *h = ctx;
    return dot(head_input(h), h->g, h->N * h->C);
}

static void test_layers_embedding_gradcheck(void **state)
{
    (void)state;
    head_case h;
    head_case_init(&h, 6, 4, 5, 0, 1, 12);
    float *dw = fvec(h.V * h.C);
    head_input(&h);
    model_embedding_backward(dw, h.g, h.tokens, h.N, h.C, h.V);
    printf(" embedding:\n");
    check_grad("wte", emb_loss, &h, h.wte, dw, h.V * h.C);
    /* token 0 appears at n = 0 and n = 4 (3n mod 4): its row sums two gradient rows */
    for (size_t c = 0; c < h.C; c++)
        assert_float_equal(dw[c], h.g[0 * h.C + c] + h.g[4 * h.C + c], 1e-6);
    /* a row of a token never used has no gradient */
    for (size_t c = 0; c < h.C; c++)
        assert_true(dw[(h.V - 1) * h.C + c] == 0.0f);
    free(dw);
    head_case_free(&h);
}

static void check_head_reference(head_case *h)
{
    double *x = to_double(h->x, h->N * h->C), *ref = dvec(h->N * h->V);
    if (h->tied) {
        double s = 1.0 / sqrt((double)h->C);
        for (size_t i = 0; i < h->N * h->C; i++)
            x[i] = (double)(float)(h->x[i] * (float)s); /* scaled in fp32 before the product */
        ref_matmul(ref, x, h->wte, h->N, h->C, h->V, 1);
    } else {
        ref_matmul(ref, x, h->lm, h->N, h->C, h->V, 0);
    }
    head_loss(h);
    assert_true(rel_diff(h->tied ? "tied head vs reference" : "untied head vs reference",
                         h->logits, ref, h->N * h->V) < REF_TOL);
    free(x);
    free(ref);
}

static void test_layers_head_forward(void **state)
{
    (void)state;
    head_case h;
    head_case_init(&h, 5, 4, 7, 1, 0, 13);
    check_head_reference(&h); /* C = 4: the tied head scales the input by exactly 0.5 */
    h.tied = 0;
    check_head_reference(&h);
    head_case_free(&h);
}

static void test_layers_head_gradcheck(void **state)
{
    (void)state;
    for (int tied = 0; tied <= 1; tied++) {
        head_case h;
        head_case_init(&h, 5, 6, 7, tied, 0, 14 + (uint64_t)tied);
        float *dx = fvec(h.N * h.C), *dw = fvec(h.V * h.C);
        head_grads(&h, dx, dw);
        printf(" %s head:\n", tied ? "tied" : "untied");
        check_grad("input", head_loss, &h, h.x, dx, h.N * h.C);
        check_grad(tied ? "wte" : "lm_head", head_loss, &h, tied ? h.wte : h.lm, dw, h.V * h.C);
        free(dx);
        free(dw);
        head_case_free(&h);
    }
}

/* Embedding and tied head share wte: both gradients add up in one array. */
static void test_layers_tied_embedding_gradcheck(void **state)
{
    (void)state;
    head_case h;
    head_case_init(&h, 6, 4, 5, 1, 1, 16);
    float *dw = fvec(h.V * h.C);
    head_grads(&h, NULL, dw);
    printf(" embedding + tied head:\n");
    check_grad("wte (both uses)", head_loss, &h, h.wte, dw, h.V * h.C);
    free(dw);
    head_case_free(&h);
}

/* ---- RMSNorm ------------------------------------------------------------------------- */

typedef struct {
    size_t N, C;
    float *x, *w, *g, *out, *rstd;
    model_numerics nx;
} norm_case;

static void norm_case_init(norm_case *c, size_t N, size_t C, uint64_t seed)
{
    rng_state r;
    rng_seed(&r, seed);
    c->N = N;
    c->C = C;
    c->x = frand(&r, N * C, -1.0f, 1.0f);
    c->w = frand(&r, C, 0.5f, 1.5f);
    c->g = frand(&r, N * C, -1.0f, 1.0f);
    c->out = fvec(N * C);
    c->rstd = fvec(N);
    c->nx = model_numerics_fp32();
}

static void norm_case_free(norm_case *c)
{
    free(c->x);
    free(c->w);
    free(c->g);
    free(c->out);
    free(c->rstd);
}

static double norm_loss(void *ctx)
{
    norm_case *c = ctx;
    model_rmsnorm_forward(c->out, c->rstd, c->x, c->w, c->N, c->C, &c->nx);
    return dot(c->out, c->g, c->N * c->C);
}

static void test_layers_rmsnorm_forward(void **state)
{
    (void)state;
    norm_case c;
    norm_case_init(&c, 4, 8, 21);
    c.x[3] = 30.0f; /* a large value: no mean subtraction, scale only */
    norm_loss(&c);
    double *ref = dvec(c.N * c.C);
    for (size_t n = 0; n < c.N; n++) {
        double ss = 0.0;
        for (size_t k = 0; k < c.C; k++)
            ss += (double)c.x[n * c.C + k] * c.x[n * c.C + k];
        double r = 1.0 / sqrt(ss / (double)c.C + 1e-6);
        assert_true(fabs(c.rstd[n] - r) <= 1e-6 * r);
        for (size_t k = 0; k < c.C; k++)
            ref[n * c.C + k] = c.w[k] * c.x[n * c.C + k] * r;
    }
    assert_true(rel_diff("rmsnorm vs reference", c.out, ref, c.N * c.C) < REF_TOL);
    free(ref);
    norm_case_free(&c);
}

static void test_layers_rmsnorm_gradcheck(void **state)
{
    (void)state;
    norm_case c;
    norm_case_init(&c, 4, 8, 22);
    float *dx = fvec(c.N * c.C), *dw = fvec(c.C);
    norm_loss(&c);
    model_rmsnorm_backward(dx, dw, c.g, c.x, c.w, c.rstd, c.N, c.C);
    printf(" rmsnorm:\n");
    check_grad("input", norm_loss, &c, c.x, dx, c.N * c.C);
    check_grad("weight", norm_loss, &c, c.w, dw, c.C);
    free(dx);
    free(dw);
    norm_case_free(&c);
}

/* ---- relative position buckets ------------------------------------------------------- */

typedef struct {
    long rel;
    int bidirectional, num_buckets, max_distance, bucket;
} bucket_case;

/* Bidirectional nb buckets: half are for rel > 0 (offset nb/2), n = |rel|, max_exact = nb/4;
 * unidirectional: n = max(-rel, 0), max_exact = nb/2. n < max_exact -> n; else
 * max_exact + floor(ln(n / max_exact) / ln(max_distance / max_exact) * (nbh - max_exact)),
 * capped at nbh - 1, nbh being the buckets of one side. */
static const bucket_case bucket_cases[] = {
    /* bidirectional, 32 buckets, max distance 128: nbh = 16, max_exact = 8, ln(128/8) = ln 16 */
    {0, 1, 32, 128, 0},
    {1, 1, 32, 128, 17},     /* 16 + 1 */
    {-1, 1, 32, 128, 1},
    {7, 1, 32, 128, 23},     /* 16 + 7 */
    {-7, 1, 32, 128, 7},
    {8, 1, 32, 128, 24},     /* 16 + 8 + floor(ln 1 / ln 16 * 8) = 16 + 8 */
    {-8, 1, 32, 128, 8},
    {11, 1, 32, 128, 24},    /* ln 1.375 / ln 16 * 8 = 0.919 -> 16 + 8 */
    {-12, 1, 32, 128, 9},    /* ln 1.5 / ln 16 * 8 = 1.170 -> 9 */
    {-16, 1, 32, 128, 10},   /* ln 2 / ln 16 * 8 = 2 exactly -> 10 */
    {20, 1, 32, 128, 26},    /* ln 2.5 / ln 16 * 8 = 2.644 -> 16 + 10 */
    {-32, 1, 32, 128, 12},   /* ln 4 / ln 16 * 8 = 4 -> 12 */
    {-64, 1, 32, 128, 14},   /* ln 8 / ln 16 * 8 = 6 -> 14 */
    {-127, 1, 32, 128, 15},  /* ln 15.875 / ln 16 * 8 = 7.977 -> 15 */
    {128, 1, 32, 128, 31},   /* 8 + 8 = 16, capped at 15 -> 16 + 15 */
    {-1000, 1, 32, 128, 15},
    {1000, 1, 32, 128, 31},
    /* unidirectional, 32 buckets, max distance 128: max_exact = 16, ln(128/16) = ln 8 */
    {0, 0, 32, 128, 0},
    {5, 0, 32, 128, 0},      /* the future counts as distance 0 */
    {-1, 0, 32, 128, 1},
    {-15, 0, 32, 128, 15},
    {-16, 0, 32, 128, 16},
    {-20, 0, 32, 128, 17},   /* ln 1.25 / ln 8 * 16 = 1.717 -> 17 */
    {-32, 0, 32, 128, 21},   /* ln 2 / ln 8 * 16 = 5.333 -> 21 */
    {-64, 0, 32, 128, 26},   /* ln 4 / ln 8 * 16 = 10.667 -> 26 */
    {-100, 0, 32, 128, 30},  /* ln 6.25 / ln 8 * 16 = 14.10 -> 30 */
    {-127, 0, 32, 128, 31},  /* ln 7.9375 / ln 8 * 16 = 15.94 -> 31 */
    {-128, 0, 32, 128, 31},  /* 32, capped at 31 */
    /* bidirectional, 8 buckets, max distance 16: nbh = 4, max_exact = 2, ln(16/2) = ln 8 */
    {1, 1, 8, 16, 5},
    {-1, 1, 8, 16, 1},
    {2, 1, 8, 16, 6},        /* 4 + 2 + floor(0) */
    {-3, 1, 8, 16, 2},       /* ln 1.5 / ln 8 * 2 = 0.390 -> 2 */
    {-5, 1, 8, 16, 2},       /* ln 2.5 / ln 8 * 2 = 0.881 -> 2 */
    {-6, 1, 8, 16, 3},       /* ln 3 / ln 8 * 2 = 1.057 -> 3 */
    {6, 1, 8, 16, 7},
    {-16, 1, 8, 16, 3},      /* 2 + 2 = 4, capped at 3 */
    /* unidirectional, 16 buckets, max distance 32: max_exact = 8, ln(32/8) = ln 4 */
    {3, 0, 16, 32, 0},
    {-9, 0, 16, 32, 8},      /* ln 1.125 / ln 4 * 8 = 0.680 -> 8 */
    {-10, 0, 16, 32, 9},     /* ln 1.25 / ln 4 * 8 = 1.288 -> 9 */
    {-16, 0, 16, 32, 12},    /* ln 2 / ln 4 * 8 = 4 -> 12 */
    {-31, 0, 16, 32, 15},    /* ln 3.875 / ln 4 * 8 = 7.817 -> 15 */
    {-32, 0, 16, 32, 15},    /* 16, capped at 15 */
};

static void test_layers_relpos_bucket_values(void **state)
{
    (void)state;
    size_t bad = 0;
    for (size_t i = 0; i < sizeof bucket_cases / sizeof bucket_cases[0]; i++) {
        const bucket_case *b = &bucket_cases[i];
        int got = model_relpos_bucket(b->rel, b->bidirectional, b->num_buckets, b->max_distance);
        if (got != b->bucket) {
            printf("  rel %ld bidirectional %d buckets %d max %d: got %d, want %d\n", b->rel,
                   b->bidirectional, b->num_buckets, b->max_distance, got, b->bucket);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* Buckets never decrease with distance, stay in range and split by sign when bidirectional. */
static void test_layers_relpos_bucket_monotone(void **state)
{
    (void)state;
    for (int bi = 0; bi <= 1; bi++) {
        int prev = -1;
        for (long n = 0; n <= 400; n++) {
            int b = model_relpos_bucket(-n, bi, 32, 128);
            assert_true(b >= prev && b >= 0 && b < (bi ? 16 : 32));
            prev = b;
            if (bi && n > 0)
                assert_int_equal(model_relpos_bucket(n, 1, 32, 128), 16 + b);
        }
    }
}

static void test_layers_relpos_bias_layout(void **state)
{
    (void)state;
    enum { T = 3, S = 4, H = 2, NB = 32 };
    rng_state r;
    rng_seed(&r, 31);
    float *table = frand(&r, NB * H, -1.0f, 1.0f), *bias = fvec(H * T * S);
    float *dbias = frand(&r, H * T * S, -1.0f, 1.0f), *dtable = fvec(NB * H);
    ss_err err;
    assert_int_equal(model_relpos_bias_forward(bias, table, T, S, H, 1, NB, 128, &err), SS_OK);
    /* bias[h, i=0, j=1]: rel +1 -> bucket 17; bias[h, i=2, j=0]: rel -2 -> bucket 2 */
    for (size_t h = 0; h < H; h++) {
        assert_true(bias[(h * T + 0) * S + 1] == table[17 * H + h]);
        assert_true(bias[(h * T + 2) * S + 0] == table[2 * H + h]);
        assert_true(bias[(h * T + 1) * S + 1] == table[0 * H + h]);
    }
    /* backward: bucket 0 (the diagonal i == j, i < 3) collects three entries per head */
    model_relpos_bias_backward(dtable, dbias, T, S, H, 1, NB, 128);
    for (size_t h = 0; h < H; h++) {
        float want = 0.0f;
        for (size_t i = 0; i < T; i++)
            want += dbias[(h * T + i) * S + i];
        assert_float_equal(dtable[0 * H + h], want, 1e-6);
        assert_float_equal(dtable[2 * H + h], dbias[(h * T + 2) * S + 0], 1e-6);
    }
    free(table);
    free(bias);
    free(dbias);
    free(dtable);
}

/* ---- attention ----------------------------------------------------------------------- */

typedef struct {
    model_attn_dims d;
    int use_table, bidirectional, num_buckets, max_distance;
    float *xq, *xkv;          /* [B,T,C], [B,S,C]; the same array for self-attention */
    float *wq, *wk, *wv, *wo; /* [C,HD] x3, [HD,C] */
    float *table;             /* [NB, H] */
    uint8_t *kmask;           /* [B, S] or NULL */
    float *g;                 /* [B, T, C]: dL/dout */
    float *out, *bias;        /* [B,T,C], [H,T,S] */
    model_attn_acts acts;
    uint64_t seed;            /* dropout seed, re-used at every forward */
    model_numerics nx;
} attn_case;

typedef struct {
    int self, causal, use_table, masked;
    float dropout;
} attn_kind;

static void attn_case_init(attn_case *a, size_t B, size_t T, size_t S, attn_kind k,
                           uint64_t seed)
{
    rng_state r;
    rng_seed(&r, seed);
    memset(a, 0, sizeof *a);
    a->d = (model_attn_dims){.B = B, .T = T, .S = k.self ? T : S, .C = 8, .H = 2, .D = 3,
                             .causal = k.causal, .dropout = k.dropout};
    S = a->d.S;
    size_t C = a->d.C, HD = a->d.H * a->d.D;
    a->use_table = k.use_table;
    a->bidirectional = !k.causal;
    a->num_buckets = 8;
    a->max_distance = 16;
    a->xq = frand(&r, B * T * C, -1.0f, 1.0f);
    a->xkv = k.self ? a->xq : frand(&r, B * S * C, -1.0f, 1.0f);
    a->wq = frand(&r, C * HD, -0.5f, 0.5f);
    a->wk = frand(&r, C * HD, -0.5f, 0.5f);
    a->wv = frand(&r, C * HD, -0.5f, 0.5f);
    a->wo = frand(&r, HD * C, -0.5f, 0.5f);
    a->table = frand(&r, (size_t)a->num_buckets * a->d.H, -1.0f, 1.0f);
    if (k.masked) {
        a->kmask = calloc(B * S, 1);
        assert_non_null(a->kmask);
        for (size_t i = 0; i < B * S; i++)
            a->kmask[i] = !(i / S == B - 1 && i % S >= S - 2); /* last sequence: 2 pads */
    }
    a->g = frand(&r, B * T * C, -1.0f, 1.0f);
    a->out = fvec(B * T * C);
    a->bias = fvec(a->d.H * T * S);
    a->acts.q = fvec(B * T * HD);
    a->acts.k = fvec(B * S * HD);
    a->acts.v = fvec(B * S * HD);
    a->acts.att = fvec(B * a->d.H * T * S);
    a->acts.drop = k.dropout > 0.0f ? fvec(B * a->d.H * T * S) : NULL;
    a->acts.y = fvec(B * T * HD);
    a->seed = seed + 1000;
    a->nx = model_numerics_fp32();
}

static void attn_case_free(attn_case *a)
{
    if (a->xkv != a->xq)
        free(a->xkv);
    free(a->xq);
    free(a->wq);
    free(a->wk);
    free(a->wv);
    free(a->wo);
    free(a->table);
    free(a->kmask);
    free(a->g);
    free(a->out);
    free(a->bias);
    free(a->acts.q);
    free(a->acts.k);
    free(a->acts.v);
    free(a->acts.att);
    free(a->acts.drop);
    free(a->acts.y);
}

static model_attn_weights attn_weights(const attn_case *a)
{
    return (model_attn_weights){a->wq, a->wk, a->wv, a->wo};
}

static void attn_forward(attn_case *a)
{
    ss_err err;
    rng_state r;
    rng_seed(&r, a->seed);
    if (a->use_table)
        assert_int_equal(model_relpos_bias_forward(a->bias, a->table, a->d.T, a->d.S, a->d.H,
                                                   a->bidirectional, a->num_buckets,
                                                   a->max_distance, &err), SS_OK);
    model_attn_weights w = attn_weights(a);
    ss_status st = model_attention_forward(a->out, &a->acts, a->xq, a->xkv, &w,
                                           a->use_table ? a->bias : NULL, a->kmask, &a->d, &r,
                                           &a->nx, &err);
    if (st != SS_OK)
        printf("  %s\n", err.msg);
    assert_int_equal(st, SS_OK);
}

static double attn_loss(void *ctx)
{
    attn_case *a = ctx;
    attn_forward(a);
    return dot(a->out, a->g, a->d.B * a->d.T * a->d.C);
}

/* Gradients of one attention case (all [shape of the array they differentiate]). */
typedef struct {
    float *xq, *xkv, *wq, *wk, *wv, *wo, *bias, *table;
} attn_grad_bufs;

static void attn_grad_bufs_init(attn_grad_bufs *g, const attn_case *a)
{
    size_t C = a->d.C, HD = a->d.H * a->d.D;
    g->xq = fvec(a->d.B * a->d.T * C);
    g->xkv = a->xkv == a->xq ? g->xq : fvec(a->d.B * a->d.S * C);
    g->wq = fvec(C * HD);
    g->wk = fvec(C * HD);
    g->wv = fvec(C * HD);
    g->wo = fvec(HD * C);
    g->bias = fvec(a->d.H * a->d.T * a->d.S);
    g->table = fvec((size_t)a->num_buckets * a->d.H);
}

static void attn_grad_bufs_free(attn_grad_bufs *g)
{
    if (g->xkv != g->xq)
        free(g->xkv);
    free(g->xq);
    free(g->wq);
    free(g->wk);
    free(g->wv);
    free(g->wo);
    free(g->bias);
    free(g->table);
}

/* Backward of the last forward of a, from dout, adding into g (bias gradient into g->bias;
 * the table gradient is left to the caller). */
static void attn_backward(attn_case *a, const float *dout, attn_grad_bufs *g)
{
    ss_err err;
    model_attn_weights w = attn_weights(a);
    model_attn_grads dw = {g->wq, g->wk, g->wv, g->wo};
    ss_status st = model_attention_backward(g->xq, g->xkv, &dw, a->use_table ? g->bias : NULL,
                                            dout, &a->acts, a->xq, a->xkv, &w, &a->d, &a->nx,
                                            &err);
    if (st != SS_OK)
        printf("  %s\n", err.msg);
    assert_int_equal(st, SS_OK);
}

static void attn_table_backward(attn_case *a, attn_grad_bufs *g)
{
    model_relpos_bias_backward(g->table, g->bias, a->d.T, a->d.S, a->d.H, a->bidirectional,
                               a->num_buckets, a->max_distance);
}

static void attn_gradcheck(const char *name, attn_kind k, size_t B, size_t T, size_t S,
                           uint64_t seed)
{
    attn_case a;
    attn_grad_bufs g;
    attn_case_init(&a, B, T, S, k, seed);
    attn_grad_bufs_init(&g, &a);
    attn_forward(&a);
    attn_backward(&a, a.g, &g);
    if (a.use_table)
        attn_table_backward(&a, &g);
    size_t C = a.d.C, HD = a.d.H * a.d.D;
    printf(" %s:\n", name);
    check_grad(k.self ? "input" : "decoder input (queries)", attn_loss, &a, a.xq, g.xq,
               B * T * C);
    if (!k.self)
        check_grad("encoder output (keys, values)", attn_loss, &a, a.xkv, g.xkv, B * a.d.S * C);
    check_grad("wq", attn_loss, &a, a.wq, g.wq, C * HD);
    check_grad("wk", attn_loss, &a, a.wk, g.wk, C * HD);
    check_grad("wv", attn_loss, &a, a.wv, g.wv, C * HD);
    check_grad("wo", attn_loss, &a, a.wo, g.wo, HD * C);
    if (a.use_table)
        check_grad("position bias table", attn_loss, &a, a.table, g.table,
                   (size_t)a.num_buckets * a.d.H);
    attn_grad_bufs_free(&g);
    attn_case_free(&a);
}

static void test_layers_attention_encoder_gradcheck(void **state)
{
    (void)state;
    attn_gradcheck("encoder self-attention (bias, padding)",
                   (attn_kind){.self = 1, .use_table = 1, .masked = 1}, 2, 7, 0, 41);
}

static void test_layers_attention_decoder_gradcheck(void **state)
{
    (void)state;
    attn_gradcheck("decoder causal self-attention (bias, padding)",
                   (attn_kind){.self = 1, .causal = 1, .use_table = 1, .masked = 1}, 2, 7, 0, 42);
}

static void test_layers_attention_cross_gradcheck(void **state)
{
    (void)state;
    attn_gradcheck("cross-attention (padding)", (attn_kind){.masked = 1}, 2, 4, 6, 43);
}

static void test_layers_attention_dropout_gradcheck(void **state)
{
    (void)state;
    attn_gradcheck("encoder self-attention, dropout 0.3 (fixed mask)",
                   (attn_kind){.self = 1, .use_table = 1, .dropout = 0.3f}, 2, 5, 0, 44);
}

/* Two layers sharing one bias table: out = attn_b(attn_a(x)); the table's gradient is the sum
 * of both layers' contributions, accumulated in one [H,T,S] buffer. */
typedef struct {
    attn_case a, b;
} attn_stack;

static double attn_stack_loss(void *ctx)
{
    attn_stack *s = ctx;
    attn_forward(&s->a);
    attn_forward(&s->b);
    return dot(s->b.out, s->b.g, s->b.d.B * s->b.d.T * s->b.d.C);
}

static void test_layers_attention_shared_bias_gradcheck(void **state)
{
    (void)state;
    attn_kind k = {.self = 1, .use_table = 1};
    attn_stack s;
    attn_case_init(&s.a, 2, 6, 0, k, 45);
    attn_case_init(&s.b, 2, 6, 0, k, 46);
    free(s.b.xq);
    free(s.b.table);
    s.b.xq = s.b.xkv = s.a.out; /* layer b reads layer a's output */
    s.b.table = s.a.table;      /* one table for the stack */
    attn_grad_bufs ga, gb;
    attn_grad_bufs_init(&ga, &s.a);
    attn_grad_bufs_init(&gb, &s.b);
    free(gb.bias);
    gb.bias = ga.bias; /* one bias gradient for the stack */
    attn_stack_loss(&s);
    attn_backward(&s.b, s.b.g, &gb);
    attn_backward(&s.a, gb.xq, &ga);
    attn_table_backward(&s.a, &ga);
    printf(" two attention layers sharing a bias table:\n");
    check_grad("shared position bias table", attn_stack_loss, &s, s.a.table, ga.table,
               (size_t)s.a.num_buckets * s.a.d.H);
    check_grad("input", attn_stack_loss, &s, s.a.xq, ga.xq, s.a.d.B * s.a.d.T * s.a.d.C);
    gb.bias = NULL;
    attn_grad_bufs_free(&ga);
    attn_grad_bufs_free(&gb);
    s.b.xq = s.b.xkv = NULL;
    s.b.table = NULL;
    attn_case_free(&s.a);
    attn_case_free(&s.b);
}

/* Naive fp64 attention from the case's inputs (dropout mask from acts.drop). */
static double *attn_reference(const attn_case *a)
{
    const model_attn_dims *d = &a->d;
    size_t B = d->B, T = d->T, S = d->S, C = d->C, H = d->H, D = d->D, HD = H * D;
    double *xq = to_double(a->xq, B * T * C), *xkv = to_double(a->xkv, B * S * C);
    double *q = dvec(B * T * HD), *k = dvec(B * S * HD), *v = dvec(B * S * HD);
    double *y = dvec(B * T * HD), *out = dvec(B * T * C), *p = dvec(S);
    ref_matmul(q, xq, a->wq, B * T, C, HD, 0);
    ref_matmul(k, xkv, a->wk, B * S, C, HD, 0);
    ref_matmul(v, xkv, a->wv, B * S, C, HD, 0);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t i = 0; i < T; i++) {
                double mx = -INFINITY, sum = 0.0;
                for (size_t j = 0; j < S; j++) {
                    int hidden = (d->causal && j > i) || (a->kmask && !a->kmask[b * S + j]);
                    double s = 0.0;
                    for (size_t e = 0; e < D; e++)
                        s += q[(b * T + i) * HD + h * D + e] * k[(b * S + j) * HD + h * D + e];
                    if (a->use_table)
                        s += a->bias[(h * T + i) * S + j];
                    p[j] = hidden ? -INFINITY : s;
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (size_t j = 0; j < S; j++) {
                    p[j] = mx == -INFINITY ? 0.0 : exp(p[j] - mx);
                    sum += p[j];
                }
                for (size_t e = 0; e < D; e++) {
                    double acc = 0.0;
                    for (size_t j = 0; j < S; j++) {
                        double dr = a->acts.drop ? a->acts.drop[((b * H + h) * T + i) * S + j]
                                                 : 1.0;
                        acc += (sum > 0.0 ? p[j] / sum : 0.0) * dr *
                               v[(b * S + j) * HD + h * D + e];
                    }
                    y[(b * T + i) * HD + h * D + e] = acc;
                }
            }
    ref_matmul(out, y, a->wo, B * T, HD, C, 0);
    free(xq);
    free(xkv);
    free(q);
    free(k);
    free(v);
    free(y);
    free(p);
    return out;
}

static void attn_check_reference(const char *name, attn_kind k, size_t B, size_t T, size_t S,
                                 uint64_t seed)
{
    attn_case a;
    attn_case_init(&a, B, T, S, k, seed);
    attn_forward(&a);
    double *ref = attn_reference(&a);
    assert_true(rel_diff(name, a.out, ref, B * T * a.d.C) < REF_TOL);
    free(ref);
    attn_case_free(&a);
}

static void test_layers_attention_forward_reference(void **state)
{
    (void)state;
    attn_check_reference("encoder attention vs reference",
                         (attn_kind){.self = 1, .use_table = 1, .masked = 1}, 2, 7, 0, 51);
    attn_check_reference("decoder attention vs reference",
                         (attn_kind){.self = 1, .causal = 1, .use_table = 1, .masked = 1}, 2, 7,
                         0, 52);
    attn_check_reference("cross-attention vs reference", (attn_kind){.masked = 1}, 2, 4, 6, 53);
    attn_check_reference("attention with dropout vs reference",
                         (attn_kind){.self = 1, .use_table = 1, .dropout = 0.5f}, 2, 5, 0, 54);
}

/* The strided per-head products also run through OpenBLAS (fast mode): same forward as the
 * reference, same gradients as exact mode. */
static void test_layers_attention_fast_gemm(void **state)
{
    (void)state;
    attn_kind k = {.self = 1, .causal = 1, .use_table = 1, .masked = 1, .dropout = 0.2f};
    attn_case a;
    attn_case_init(&a, 2, 7, 0, k, 55);
    attn_grad_bufs exact, fast;
    attn_grad_bufs_init(&exact, &a);
    attn_grad_bufs_init(&fast, &a);
    attn_forward(&a);
    attn_backward(&a, a.g, &exact);
    a.nx.gemm.mode = SIM_GEMM_FAST;
    attn_forward(&a);
    double *ref = attn_reference(&a);
    assert_true(rel_diff("fast-mode attention vs reference", a.out, ref,
                         a.d.B * a.d.T * a.d.C) < REF_TOL);
    attn_backward(&a, a.g, &fast);
    size_t C = a.d.C, HD = a.d.H * a.d.D;
    assert_true(rel_diff_f("fast vs exact: input grad", fast.xq, exact.xq,
                           a.d.B * a.d.T * C) < REF_TOL);
    assert_true(rel_diff_f("fast vs exact: wq grad", fast.wq, exact.wq, C * HD) < REF_TOL);
    assert_true(rel_diff_f("fast vs exact: wk grad", fast.wk, exact.wk, C * HD) < REF_TOL);
    assert_true(rel_diff_f("fast vs exact: wv grad", fast.wv, exact.wv, C * HD) < REF_TOL);
    assert_true(rel_diff_f("fast vs exact: wo grad", fast.wo, exact.wo, HD * C) < REF_TOL);
    assert_true(rel_diff_f("fast vs exact: bias grad", fast.bias, exact.bias,
                           a.d.H * a.d.T * a.d.T) < REF_TOL);
    free(ref);
    attn_grad_bufs_free(&exact);
    attn_grad_bufs_free(&fast);
    attn_case_free(&a);
}

/* Changing the input at position t changes no decoder output before t. */
static void test_layers_attention_causal_blocks_future(void **state)
{
    (void)state;
    enum { T = 6, t = 3 };
    attn_case a;
    attn_case_init(&a, 1, T, 0, (attn_kind){.self = 1, .causal = 1, .use_table = 1}, 61);
    size_t C = a.d.C;
    attn_forward(&a);
    float *before = fvec(T * C);
    memcpy(before, a.out, T * C * sizeof(float));
    for (size_t i = 0; i < T; i++)
        for (size_t j = i + 1; j < T; j++)
            for (size_t h = 0; h < a.d.H; h++)
                assert_true(a.acts.att[(h * T + i) * T + j] == 0.0f);
    for (size_t c = 0; c < C; c++)
        a.xq[t * C + c] += 0.5f;
    attn_forward(&a);
    assert_memory_equal(before, a.out, t * C * sizeof(float));
    for (size_t i = t; i < T; i++)
        assert_memory_not_equal(before + i * C, a.out + i * C, C * sizeof(float));
    /* the same change without the causal mask reaches the earlier positions */
    a.d.causal = 0;
    attn_forward(&a);
    memcpy(before, a.out, T * C * sizeof(float));
    for (size_t c = 0; c < C; c++)
        a.xq[t * C + c] -= 0.5f;
    attn_forward(&a);
    assert_memory_not_equal(before, a.out, t * C * sizeof(float));
    free(before);
    attn_case_free(&a);
}

/* A padded key gets probability 0 and its input affects no other position's output. */
static void test_layers_attention_padding_mask(void **state)
{
    (void)state;
    attn_case a;
    attn_case_init(&a, 2, 5, 0, (attn_kind){.self = 1, .use_table = 1, .masked = 1}, 62);
    size_t T = a.d.T, C = a.d.C, H = a.d.H, pad = 1 * T + (T - 1); /* sequence 1, last token */
    assert_int_equal(a.kmask[pad], 0);
    attn_forward(&a);
    float *before = fvec(2 * T * C);
    memcpy(before, a.out, 2 * T * C * sizeof(float));
    for (size_t h = 0; h < H; h++)
        for (size_t i = 0; i < T; i++) {
            const float *row = a.acts.att + ((1 * H + h) * T + i) * T;
            assert_true(row[T - 1] == 0.0f && row[T - 2] == 0.0f);
            float s = 0.0f;
            for (size_t j = 0; j < T; j++)
                s += row[j];
            assert_float_equal(s, 1.0f, 1e-6);
        }
    for (size_t c = 0; c < C; c++)
        a.xq[pad * C + c] += 1.0f;
    attn_forward(&a);
    for (size_t n = 0; n < 2 * T; n++)
        if (n != pad)
            assert_memory_equal(before + n * C, a.out + n * C, C * sizeof(float));
    assert_memory_not_equal(before + pad * C, a.out + pad * C, C * sizeof(float));
    /* model_key_mask_from_tokens marks pad ids with 0 */
    int32_t tok[4] = {5, 0, 7, 0};
    uint8_t m[4];
    model_key_mask_from_tokens(m, tok, 4, 0);
    assert_true(m[0] == 1 && m[1] == 0 && m[2] == 1 && m[3] == 0);
    free(before);
    attn_case_free(&a);
}

/* A sequence whose keys are all padding: zero probabilities, zero output, finite gradients. */
static void test_layers_attention_all_masked_rows(void **state)
{
    (void)state;
    attn_case a;
    attn_case_init(&a, 2, 4, 0, (attn_kind){.self = 1, .use_table = 1, .masked = 1}, 63);
    size_t T = a.d.T, C = a.d.C, H = a.d.H;
    memset(a.kmask, 0, T); /* sequence 0: every key masked */
    attn_forward(&a);
    assert_true(all_finite(a.out, 2 * T * C));
    for (size_t i = 0; i < H * T * T; i++)
        assert_true(a.acts.att[i] == 0.0f);
    for (size_t i = 0; i < T * C; i++)
        assert_true(a.out[i] == 0.0f);
    attn_grad_bufs g;
    attn_grad_bufs_init(&g, &a);
    attn_backward(&a, a.g, &g);
    assert_true(all_finite(g.xq, 2 * T * C) && all_finite(g.wq, C * H * a.d.D));
    assert_true(all_finite(g.bias, H * T * T));
    for (size_t i = 0; i < T * C; i++)
        assert_true(g.xq[i] == 0.0f); /* nothing flows into the fully masked sequence */
    attn_grad_bufs_free(&g);
    attn_case_free(&a);
}

/* ---- FFN ----------------------------------------------------------------------------- */

typedef struct {
    size_t N, C, F, W;
    model_ffn kind;
    float p;
    float *x, *wi, *wo, *g, *out;
    model_ffn_acts acts;
    uint64_t seed;
    model_numerics nx;
} ffn_case;

static void ffn_case_free(ffn_case *f)
{
    free(f->x);
    free(f->wi);
    free(f->wo);
    free(f->g);
    free(f->out);
    free(f->acts.pre);
    free(f->acts.h);
    free(f->acts.mask);
}

static void ffn_forward(ffn_case *f)
{
    ss_err err;
    rng_state r;
    rng_seed(&r, f->seed);
    ss_status st = model_ffn_forward(f->out, &f->acts, f->x, f->wi, f->wo, f->N, f->C, f->F,
                                     f->kind, f->p, &r, &f->nx, &err);
    if (st != SS_OK)
        printf("  %s\n", err.msg);
    assert_int_equal(st, SS_OK);
}

/* Smallest |pre-activation| of the ReLU units. */
static float ffn_min_abs_pre(const ffn_case *f)
{
    float m = INFINITY;
    for (size_t i = 0; i < f->N * f->F; i++)
        m = fabsf(f->acts.pre[i]) < m ? fabsf(f->acts.pre[i]) : m;
    return m;
}

static void ffn_case_init(ffn_case *f, size_t N, size_t C, size_t F, model_ffn kind, float p,
                          uint64_t seed)
{
    rng_state r;
    rng_seed(&r, seed);
    memset(f, 0, sizeof *f);
    f->N = N;
    f->C = C;
    f->F = F;
    f->W = kind == MODEL_FFN_GEGLU ? 2 * F : F;
    f->kind = kind;
    f->p = p;
    f->nx = model_numerics_fp32();
    f->seed = seed + 1000;
    f->acts.pre = fvec(N * f->W);
    f->acts.h = fvec(N * F);
    f->acts.mask = p > 0.0f ? fvec(N * F) : NULL;
    f->out = fvec(N * C);
    f->g = frand(&r, N * C, -1.0f, 1.0f);
    /* ReLU: redraw until no pre-activation is within 0.03 of the kink (a perturbation of the
     * gradient check moves one by at most 2 FD_H * max(|x|, |wi|) = 0.02) */
    for (int tries = 0;; tries++) {
        assert_true(tries < 1000);
        free(f->x);
        free(f->wi);
        free(f->wo);
        f->x = frand(&r, N * C, -1.0f, 1.0f);
        f->wi = frand(&r, C * f->W, -0.5f, 0.5f);
        f->wo = frand(&r, F * C, -0.5f, 0.5f);
        ffn_forward(f);
        if (kind != MODEL_FFN_RELU || ffn_min_abs_pre(f) > 0.03f)
            break;
    }
}

static double ffn_loss(void *ctx)
{
    ffn_case *f = ctx;
    ffn_forward(f);
    return dot(f->out, f->g, f->N * f->C);
}

static void ffn_gradcheck(const char *name, model_ffn kind, float p, uint64_t seed)
{
    ffn_case f;
    ffn_case_init(&f, 4, 6, 5, kind, p, seed);
    float *dx = fvec(f.N * f.C), *dwi = fvec(f.C * f.W), *dwo = fvec(f.F * f.C);
    ss_err err;
    ffn_forward(&f);
    assert_int_equal(model_ffn_backward(dx, dwi, dwo, f.g, &f.acts, f.x, f.wi, f.wo, f.N, f.C,
                                        f.F, kind, &f.nx, &err), SS_OK);
    printf(" %s:\n", name);
    check_grad("input", ffn_loss, &f, f.x, dx, f.N * f.C);
    check_grad("wi", ffn_loss, &f, f.wi, dwi, f.C * f.W);
    check_grad("wo", ffn_loss, &f, f.wo, dwo, f.F * f.C);
    free(dx);
    free(dwi);
    free(dwo);
    ffn_case_free(&f);
}

static void test_layers_ffn_relu_gradcheck(void **state)
{
    (void)state;
    ffn_gradcheck("FFN ReLU", MODEL_FFN_RELU, 0.0f, 71);
    ffn_gradcheck("FFN ReLU, dropout 0.4 (fixed mask)", MODEL_FFN_RELU, 0.4f, 72);
}

static void test_layers_ffn_geglu_gradcheck(void **state)
{
    (void)state;
    ffn_gradcheck("FFN GEGLU", MODEL_FFN_GEGLU, 0.0f, 73);
    ffn_gradcheck("FFN GEGLU, dropout 0.4 (fixed mask)", MODEL_FFN_GEGLU, 0.4f, 74);
}

static double gelu_ref(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / acos(-1.0)) * (x + 0.044715 * x * x * x)));
}

static void test_layers_ffn_forward_reference(void **state)
{
    (void)state;
    for (int geglu = 0; geglu <= 1; geglu++) {
        ffn_case f;
        model_ffn kind = geglu ? MODEL_FFN_GEGLU : MODEL_FFN_RELU;
        ffn_case_init(&f, 4, 6, 5, kind, 0.25f, 75 + (uint64_t)geglu);
        double *x = to_double(f.x, f.N * f.C), *pre = dvec(f.N * f.W), *h = dvec(f.N * f.F);
        double *ref = dvec(f.N * f.C);
        ref_matmul(pre, x, f.wi, f.N, f.C, f.W, 0);
        for (size_t n = 0; n < f.N; n++)
            for (size_t j = 0; j < f.F; j++) {
                double a = pre[n * f.W + j];
                a = geglu ? gelu_ref(a) * pre[n * f.W + f.F + j] : (a > 0.0 ? a : 0.0);
                h[n * f.F + j] = a * f.acts.mask[n * f.F + j];
            }
        ref_matmul(ref, h, f.wo, f.N, f.F, f.C, 0);
        assert_true(rel_diff(geglu ? "FFN GEGLU vs reference" : "FFN ReLU vs reference", f.out,
                             ref, f.N * f.C) < REF_TOL);
        free(x);
        free(pre);
        free(h);
        free(ref);
        ffn_case_free(&f);
    }
}

static void test_layers_gelu_values(void **state)
{
    (void)state;
    /* gelu_new(1) = 0.5 (1 + tanh(0.7978845608 * 1.044715)) = 0.841192 */
    assert_float_equal(model_gelu(1.0f), 0.8411920f, 1e-6);
    assert_float_equal(model_gelu(-1.0f), -0.1588080f, 1e-6);
    assert_true(model_gelu(0.0f) == 0.0f);
    double md = 0.0;
    for (int i = -40; i <= 40; i++) {
        double x = i / 8.0, h = 1e-5;
        double fd = (gelu_ref(x + h) - gelu_ref(x - h)) / (2.0 * h);
        double d = fabs(model_gelu_grad((float)x) - fd) + fabs(model_gelu((float)x) - gelu_ref(x));
        d /= fabs(x) > 1.0 ? fabs(x) : 1.0;
        md = d > md ? d : md;
    }
    printf("  gelu and its derivative vs fp64: max diff %.3e (relative above |x| = 1)\n", md);
    assert_true(md < 1e-6);
}

/* p == 0 without a mask array; with a mask array p == 0 fills it with 1. */
static void test_layers_ffn_no_dropout(void **state)
{
    (void)state;
    ffn_case f;
    ffn_case_init(&f, 3, 4, 5, MODEL_FFN_GEGLU, 0.0f, 77);
    float *out0 = fvec(f.N * f.C);
    memcpy(out0, f.out, f.N * f.C * sizeof(float));
    f.acts.mask = fvec(f.N * f.F);
    ss_err err;
    assert_int_equal(model_ffn_forward(f.out, &f.acts, f.x, f.wi, f.wo, f.N, f.C, f.F, f.kind,
                                       0.0f, NULL, &f.nx, &err), SS_OK);
    for (size_t i = 0; i < f.N * f.F; i++)
        assert_true(f.acts.mask[i] == 1.0f);
    assert_memory_equal(out0, f.out, f.N * f.C * sizeof(float));
    free(out0);
    ffn_case_free(&f);
}

/* ---- dropout and residual ------------------------------------------------------------ */

static void test_layers_dropout_mask_statistics(void **state)
{
    (void)state;
    enum { n = 100000 };
    const float p = 0.3f;
    float *mask = fvec(n), *x = fvec(n), *out = fvec(n), *d = fvec(n);
    rng_state r;
    rng_seed(&r, 81);
    model_numerics nx = model_numerics_fp32();
    ss_err err;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)i;
    assert_int_equal(model_dropout_forward(out, mask, x, n, p, &r, &nx, &err), SS_OK);
    size_t dropped = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(mask[i] == 0.0f || mask[i] == 1.0f / (1.0f - p));
        assert_true(out[i] == x[i] * mask[i]);
        dropped += mask[i] == 0.0f;
    }
    double frac = (double)dropped / n, sigma = sqrt(p * (1.0 - p) / n);
    printf("  dropped fraction %.4f (p = %.2f, 5 sigma = %.4f)\n", frac, (double)p, 5 * sigma);
    assert_true(fabs(frac - p) < 5 * sigma);
    /* backward: dinp += dout * mask */
    for (size_t i = 0; i < n; i++)
        d[i] = 1.0f;
    model_dropout_backward(d, x, mask, n);
    for (size_t i = 0; i < n; i++)
        assert_true(d[i] == 1.0f + x[i] * mask[i]);
    /* p == 0: everything kept, no generator needed */
    assert_int_equal(model_dropout_forward(out, mask, x, n, 0.0f, NULL, &nx, &err), SS_OK);
    assert_memory_equal(out, x, n * sizeof(float));
    free(mask);
    free(x);
    free(out);
    free(d);
}

static void test_layers_residual(void **state)
{
    (void)state;
    float a[3] = {1.0f, 2.0f, 3.0f}, b[3] = {0.5f, -2.0f, 4.0f}, out[3];
    float da[3] = {1.0f, 1.0f, 1.0f}, db[3] = {0}, dout[3] = {0.25f, 0.5f, -1.0f};
    model_numerics nx = model_numerics_fp32();
    model_residual_forward(out, a, b, 3, &nx);
    assert_true(out[0] == 1.5f && out[1] == 0.0f && out[2] == 7.0f);
    model_residual_backward(da, db, dout, 3);
    assert_true(da[0] == 1.25f && da[1] == 1.5f && da[2] == 0.0f);
    assert_memory_equal(db, dout, sizeof dout);
    model_residual_forward(a, a, b, 3, &nx); /* in place */
    assert_true(a[2] == 7.0f);
}

/* ---- cross-entropy ------------------------------------------------------------------- */

static void test_layers_xent_values(void **state)
{
    (void)state;
    enum { V = 3 };
    const float logits[4 * V] = {0, 0, 0, 1000, 0, -1000, 2, 1, 0, 5, 5, 5};
    const int32_t targets[4] = {1, 0, -1, 2}; /* -1: padding */
    model_xent_stats s;
    ss_err err;
    assert_int_equal(model_xent_forward(&s, logits, targets, 4, V, -1, &err), SS_OK);
    /* rows: ln 3 (tie, argmax 0 != 1), ~0 (stable at 1000, correct), pad, ln 3 (argmax 0) */
    double want = (log(3.0) + 0.0 + log(3.0)) / 3.0;
    printf("  loss %.9f, want %.9f\n", s.loss, want);
    assert_true(fabs(s.loss - want) < 1e-6);
    assert_int_equal(s.count, 3);
    assert_int_equal(s.correct, 1);
    float dl[4 * V];
    for (size_t i = 0; i < 4 * V; i++)
        dl[i] = 0.5f;
    model_xent_backward(dl, logits, targets, 4, V, -1, 1.0f);
    for (size_t v = 0; v < V; v++) /* pad row untouched */
        assert_true(dl[2 * V + v] == 0.5f);
    assert_float_equal(dl[1], 0.5f + (1.0f / 3.0f - 1.0f) / 3.0f, 1e-6);
    assert_float_equal(dl[0], 0.5f + (1.0f / 3.0f) / 3.0f, 1e-6);
    assert_true(all_finite(dl, 4 * V));
    /* only padding: loss 0, count 0, no gradient */
    const int32_t pads[2] = {-1, -1};
    float dl0[4 * V];
    memcpy(dl0, dl, sizeof dl);
    assert_int_equal(model_xent_forward(&s, logits, pads, 2, V, -1, &err), SS_OK);
    assert_true(s.loss == 0.0 && s.count == 0 && s.correct == 0);
    model_xent_backward(dl, logits, pads, 2, V, -1, 1.0f);
    assert_memory_equal(dl, dl0, sizeof dl);
}

typedef struct {
    size_t N, V;
    int32_t pad;
    float *logits;
    int32_t *targets;
} xent_case;

static double xent_loss(void *ctx)
{
    xent_case *x = ctx;
    model_xent_stats s;
    ss_err err;
    assert_int_equal(model_xent_forward(&s, x->logits, x->targets, x->N, x->V, x->pad, &err),
                     SS_OK);
    return s.loss;
}

static void test_layers_xent_gradcheck(void **state)
{
    (void)state;
    rng_state r;
    rng_seed(&r, 91);
    xent_case x = {.N = 6, .V = 7, .pad = 0};
    x.logits = frand(&r, x.N * x.V, -2.0f, 2.0f);
    x.targets = calloc(x.N, sizeof *x.targets);
    assert_non_null(x.targets);
    const int32_t t[6] = {3, 0, 6, 1, 0, 2}; /* two padding rows (id 0) */
    memcpy(x.targets, t, sizeof t);
    float *dl = fvec(x.N * x.V);
    model_xent_backward(dl, x.logits, x.targets, x.N, x.V, x.pad, 1.0f);
    printf(" cross-entropy with padding:\n");
    check_grad("logits", xent_loss, &x, x.logits, dl, x.N * x.V);
    for (size_t v = 0; v < x.V; v++)
        assert_true(dl[1 * x.V + v] == 0.0f && dl[4 * x.V + v] == 0.0f);
    free(dl);
    free(x.logits);
    free(x.targets);
}

/* ---- numerics and determinism -------------------------------------------------------- */

static void test_layers_bf16_close_to_fp32(void **state)
{
    (void)state;
    /* attention */
    attn_case a;
    attn_case_init(&a, 2, 7, 0, (attn_kind){.self = 1, .use_table = 1, .masked = 1}, 101);
    attn_forward(&a);
    float *ref = fvec(a.d.B * a.d.T * a.d.C);
    memcpy(ref, a.out, a.d.B * a.d.T * a.d.C * sizeof(float));
    a.nx = model_numerics_bf16(BF16_DENORMALS_KEEP);
    attn_forward(&a);
    double e = rel_diff_f("attention bf16 vs fp32", a.out, ref, a.d.B * a.d.T * a.d.C);
    assert_true(e > 0.0 && e < BF16_TOL);
    free(ref);
    attn_case_free(&a);
    /* FFN */
    ffn_case f;
    ffn_case_init(&f, 8, 16, 24, MODEL_FFN_GEGLU, 0.0f, 102);
    ref = fvec(f.N * f.C);
    memcpy(ref, f.out, f.N * f.C * sizeof(float));
    f.nx = model_numerics_bf16(BF16_DENORMALS_FLUSH);
    ffn_forward(&f);
    e = rel_diff_f("FFN GEGLU bf16 vs fp32", f.out, ref, f.N * f.C);
    assert_true(e > 0.0 && e < BF16_TOL);
    free(ref);
    ffn_case_free(&f);
    /* RMSNorm and tied head */
    head_case h;
    head_case_init(&h, 6, 12, 20, 1, 0, 103);
    head_loss(&h);
    ref = fvec(h.N * h.V);
    memcpy(ref, h.logits, h.N * h.V * sizeof(float));
    h.nx = model_numerics_bf16(BF16_DENORMALS_KEEP);
    head_loss(&h);
    e = rel_diff_f("tied head bf16 vs fp32", h.logits, ref, h.N * h.V);
    assert_true(e > 0.0 && e < BF16_TOL);
    free(ref);
    head_case_free(&h);
    norm_case c;
    norm_case_init(&c, 4, 16, 104);
    norm_loss(&c);
    ref = fvec(c.N * c.C);
    memcpy(ref, c.out, c.N * c.C * sizeof(float));
    c.nx = model_numerics_bf16(BF16_DENORMALS_KEEP);
    norm_loss(&c);
    e = rel_diff_f("rmsnorm bf16 vs fp32", c.out, ref, c.N * c.C);
    assert_true(e > 0.0 && e < BF16_TOL);
    free(ref);
    norm_case_free(&c);
}

static void test_layers_dropout_deterministic(void **state)
{
    (void)state;
    ffn_case f;
    ffn_case_init(&f, 6, 8, 10, MODEL_FFN_RELU, 0.5f, 111);
    size_t no = f.N * f.C, nm = f.N * f.F;
    float *out = fvec(no), *mask = fvec(nm);
    memcpy(out, f.out, no * sizeof(float));
    memcpy(mask, f.acts.mask, nm * sizeof(float));
    ffn_forward(&f); /* same seed: same bits */
    assert_memory_equal(out, f.out, no * sizeof(float));
    assert_memory_equal(mask, f.acts.mask, nm * sizeof(float));
    f.seed++; /* another seed: another mask */
    ffn_forward(&f);
    assert_memory_not_equal(mask, f.acts.mask, nm * sizeof(float));
    free(out);
    free(mask);
    ffn_case_free(&f);

    attn_case a;
    attn_case_init(&a, 2, 5, 0, (attn_kind){.self = 1, .use_table = 1, .dropout = 0.2f}, 112);
    size_t na = a.d.B * a.d.T * a.d.C;
    attn_forward(&a);
    out = fvec(na);
    memcpy(out, a.out, na * sizeof(float));
    attn_forward(&a);
    assert_memory_equal(out, a.out, na * sizeof(float));
    a.seed++;
    attn_forward(&a);
    assert_memory_not_equal(out, a.out, na * sizeof(float));
    free(out);
    attn_case_free(&a);
}

/* ---- errors -------------------------------------------------------------------------- */

static void expect_error(ss_status st, const ss_err *err, const char *needle)
{
    assert_int_equal(st, SS_ERR_RANGE);
    printf("  error: %s\n", err->msg);
    assert_non_null(strstr(err->msg, needle));
}

static void test_layers_errors(void **state)
{
    (void)state;
    ss_err err;
    model_numerics nx = model_numerics_fp32();
    float wte[3 * 2] = {0}, out[2 * 2] = {7, 7, 7, 7}, mask[4];
    const int32_t bad[2] = {1, 3};
    expect_error(model_embedding_forward(out, bad, wte, 2, 2, 3, &nx, &err), &err,
                 "token 3 at position 1");
    assert_true(out[0] == 7.0f); /* nothing written */
    model_xent_stats s = {0};
    const int32_t tgt[2] = {-2, 0};
    expect_error(model_xent_forward(&s, out, tgt, 2, 2, -1, &err), &err, "token -2");
    rng_state r;
    rng_seed(&r, 1);
    expect_error(model_dropout_mask(mask, 4, 1.0f, &r, &err), &err, "not in [0, 1)");
    expect_error(model_dropout_mask(mask, 4, -0.1f, &r, &err), &err, "not in [0, 1)");
    expect_error(model_dropout_mask(mask, 4, NAN, &r, &err), &err, "not in [0, 1)");
    expect_error(model_dropout_mask(mask, 4, 0.5f, NULL, &err), &err,
                 "rate 0.5 needs a random generator");
    /* bucket settings T5's formula cannot handle */
    float bias[4], table[8] = {0};
    expect_error(model_relpos_bias_forward(bias, table, 2, 2, 1, 1, 3, 128, &err), &err,
                 "3 buckets are too few for bidirectional attention");
    assert_int_equal(model_relpos_check(0, 3, 128, &err), SS_OK);
    expect_error(model_relpos_check(0, 1, 128, &err), &err, "too few for causal");
    expect_error(model_relpos_check(1, 32, 8, &err), &err, "max distance 8 must exceed the 8");
    assert_int_equal(model_relpos_check(1, 32, 9, &err), SS_OK);

    attn_case a;
    attn_case_init(&a, 1, 3, 4, (attn_kind){.causal = 1}, 121);
    model_attn_weights w = attn_weights(&a);
    expect_error(model_attention_forward(a.out, &a.acts, a.xq, a.xkv, &w, NULL, NULL, &a.d, NULL,
                                         &a.nx, &err), &err, "attention forward: causal masking");
    a.d.causal = 0;
    a.d.dropout = 1.5f;
    expect_error(model_attention_forward(a.out, &a.acts, a.xq, a.xkv, &w, NULL, NULL, &a.d, NULL,
                                         &a.nx, &err), &err, "attention forward: dropout rate 1.5");
    attn_case_free(&a);

    ffn_case f;
    ffn_case_init(&f, 2, 3, 4, MODEL_FFN_RELU, 0.2f, 122);
    expect_error(model_ffn_forward(f.out, &f.acts, f.x, f.wi, f.wo, f.N, f.C, f.F, f.kind, 1.0f,
                                   NULL, &f.nx, &err), &err, "ffn forward: dropout rate 1 ");
    ffn_case_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layers_embedding_forward),
        cmocka_unit_test(test_layers_embedding_gradcheck),
        cmocka_unit_test(test_layers_head_forward),
        cmocka_unit_test(test_layers_head_gradcheck),
        cmocka_unit_test(test_layers_tied_embedding_gradcheck),
        cmocka_unit_test(test_layers_rmsnorm_forward),
        cmocka_unit_test(test_layers_rmsnorm_gradcheck),
        cmocka_unit_test(test_layers_relpos_bucket_values),
        cmocka_unit_test(test_layers_relpos_bucket_monotone),
        cmocka_unit_test(test_layers_relpos_bias_layout),
        cmocka_unit_test(test_layers_attention_forward_reference),
        cmocka_unit_test(test_layers_attention_encoder_gradcheck),
        cmocka_unit_test(test_layers_attention_decoder_gradcheck),
        cmocka_unit_test(test_layers_attention_cross_gradcheck),
        cmocka_unit_test(test_layers_attention_dropout_gradcheck),
        cmocka_unit_test(test_layers_attention_shared_bias_gradcheck),
        cmocka_unit_test(test_layers_attention_fast_gemm),
        cmocka_unit_test(test_layers_attention_causal_blocks_future),
        cmocka_unit_test(test_layers_attention_padding_mask),
        cmocka_unit_test(test_layers_attention_all_masked_rows),
        cmocka_unit_test(test_layers_ffn_forward_reference),
        cmocka_unit_test(test_layers_ffn_relu_gradcheck),
        cmocka_unit_test(test_layers_ffn_geglu_gradcheck),
        cmocka_unit_test(test_layers_ffn_no_dropout),
        cmocka_unit_test(test_layers_gelu_values),
        cmocka_unit_test(test_layers_dropout_mask_statistics),
        cmocka_unit_test(test_layers_residual),
        cmocka_unit_test(test_layers_xent_values),
        cmocka_unit_test(test_layers_xent_gradcheck),
        cmocka_unit_test(test_layers_bf16_close_to_fp32),
        cmocka_unit_test(test_layers_dropout_deterministic),
        cmocka_unit_test(test_layers_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
