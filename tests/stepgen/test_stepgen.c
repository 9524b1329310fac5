/* This file tests the step-program generator (model/stepgen.c) and the routing models
 * (model/routing.c): op counts and shapes of a tiny model on one core, matmul-FLOP
 * conservation across layouts, the all-to-allv matrices against the routing model (uniform,
 * skew with a hand-computed dropped fraction), the histogram reader, collective groups and ids
 * (sim_program_validate), lowering with coll_program_lower and running the analytic engine,
 * the effect of overlapping the gradient reduction, and the generation of Switch-Base-128 on
 * 32 cores and Switch-C-2048 on 2048 cores (op counts, bytes and time printed; the big case is
 * skipped when SWITCHSIM_SKIP_BIG is set, as the sanitizer build does).
 *
 * Models: configs/models/switch-tiny.yaml (C 128, F 512, 4 heads of 32, 2+2 layers, E 8,
 * a Switch layer every 2nd block) on configs/runs/switch-tiny-v3-8.yaml's pod (TPU v3-8,
 * 8 cores), with the layout, batch and lengths set per test; its dense twin drops `switch:`.
 * FLOP tolerance: exact equality (relative 1e-12: every figure is an integer below 2^53).
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
#include <unistd.h>

#include <cmocka.h>

#include "collectives/coll.h"
#include "model/count.h"
#include "model/plan.h"
#include "model/run_cfg.h"
#include "model/stepgen.h"
#include "sim/engine.h"
#include "sim/pod.h"
#include "sim/program.h"

/* ---- helpers ------------------------------------------------------------------------- */

static const char *root(void)
{
    const char *r = getenv("SWITCHSIM_SOURCE_ROOT");
    if (!r)
        fail_msg("SWITCHSIM_SOURCE_ROOT is not set");
    return r;
}

static void load_run(run_cfg *run, const char *file)
{
    char path[1024];
    ss_err err = {0};
    snprintf(path, sizeof path, "%s/configs/runs/%s", root(), file);
    if (run_cfg_load(run, path, &err) != SS_OK)
        fail_msg("%s", err.msg);
}

/* The tiny run with layout n x m, batch, microbatches and lengths. */
static void tiny_run(run_cfg *run, int dense, int n, int m, int batch, int mb, int ti, int tt)
{
    load_run(run, "switch-tiny-v3-8.yaml");
    if (dense) {
        run->model.has_switch = 0;
        memset(&run->model.sw, 0, sizeof run->model.sw);
    }
    if (m > 4) { /* 8 heads of 16 so that 8 model ways divide them */
        run->model.num_heads = 8;
        run->model.d_kv = 16;
    }
    run->model.sw.capacity_factor_train = 1.25;
    run->plan.data = n;
    run->plan.model = m;
    run->plan.microbatches = mb;
    run->plan.experts_per_core = 0;
    run->batch = batch;
    run->input_length = ti;
    run->target_length = tt;
    run->batch_tokens = (uint64_t)batch * (uint64_t)ti;
    if (n * m == 1) /* one core: only the plan's core count is looked at (no engine) */
        run->pod.cores = 1;
}

static void build(sim_program *prog, model_stepgen_stats *st, model_plan *plan,
                  const run_cfg *run, const model_routing *r, const model_stepgen_opts *o)
{
    ss_err err = {0};
    if (model_plan_make(plan, run, &err) != SS_OK)
        fail_msg("plan: %s", err.msg);
    if (model_stepgen_build(prog, st, plan, run, r, o, &err) != SS_OK)
        fail_msg("stepgen: %s", err.msg);
    if (sim_program_validate(prog, &err) != SS_OK)
        fail_msg("validate: %s", err.msg);
}

static model_counts counts_of(const run_cfg *run)
{
    model_counts c;
    ss_err err = {0};
    if (model_count(&run->model, run->input_length, run->target_length, &c, &err) != SS_OK)
        fail_msg("%s", err.msg);
    return c;
}

/* Forward products of one sequence through every layer, and the router's share. */
static int forward_matmuls(const model_counts *c)
{
    int n = 1; /* the head */
    for (int k = 0; k < MODEL_LAYER_KINDS; k++)
        n += c->layer[k].layers * c->layer[k].nmatmul;
    return n;
}

/* Executed forward matmul FLOPs per sequence with padded expert buffers: each Switch layer's
 * expert products run on E*K rows per group of S tokens instead of top_k*S. */
static double padded_flops_per_seq(const model_counts *c, const model_plan *p, int top_k)
{
    double total = (double)c->matmul_flops_per_seq;
    for (int k = 0; k < MODEL_LAYER_KINDS; k++) {
        const model_layer_counts *l = &c->layer[k];
        const int dec = k == MODEL_LAYER_DEC_SWITCH;
        if (k != MODEL_LAYER_ENC_SWITCH && !dec)
            continue;
        const double S = dec ? p->group_tokens_dec : p->group_tokens_enc;
        const double K = dec ? p->capacity_dec : p->capacity_enc;
        for (int j = 0; j < l->nmatmul; j++)
            if (l->mm[j].comp == MODEL_COMP_EXPERTS)
                total += l->layers * (double)l->mm[j].flops *
                         (p->num_experts * K / (top_k * S) - 1);
    }
    return total;
}

static double router_flops_per_seq(const model_counts *c)
{
    return (double)c->matmul_flops_comp[MODEL_COMP_ROUTERS];
}

static int count_kind(const sim_program *p, sim_op_kind kind, sim_phase phase)
{
    int n = 0;
    for (int32_t i = 0; i < p->nops; i++) {
        const sim_prog_op *o = sim_program_op(p, i);
        n += o->kind == kind && (phase == SIM_PHASE_NONE || o->phase == phase);
    }
    return n;
}

/* The first op with this label (and phase; NONE: any), or NULL. */
static const sim_prog_op *find_op(const sim_program *p, const char *label, sim_phase phase)
{
    for (int32_t i = 0; i < p->nops; i++) {
        const sim_prog_op *o = sim_program_op(p, i);
        if (!strcmp(sim_program_string(p, o->label), label) &&
            (phase == SIM_PHASE_NONE || o->phase == phase))
            return o;
    }
    return NULL;
}

static void expect_flops(const char *what, double got, double want)
{
    const double rel = fabs(got - want) / want;
    printf("  %-40s executed %.6e expected %.6e rel diff %.3e\n", what, got, want, rel);
    assert_true(rel <= 1e-12);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

/* ---- tests --------------------------------------------------------------------------- */

/* Tiny Switch model on one core: matmul counts, shapes, no collectives, exact FLOPs. */
static void test_stepgen_tiny_one_core(void **state)
{
    (void)state;
    run_cfg run;
    tiny_run(&run, 0, 1, 1, 4, 2, 32, 8);
    const model_counts c = counts_of(&run);
    model_plan plan;
    sim_program prog;
    model_stepgen_stats st;
    model_stepgen_opts o = {0};
    o.exact_counts = 1;
    build(&prog, &st, &plan, &run, NULL, &o);
    const int F = forward_matmuls(&c);
    printf("  ops %d, forward matmuls per microbatch %d\n", prog.nops, F);
    assert_int_equal(count_kind(&prog, SIM_OP_MATMUL, SIM_PHASE_FORWARD), 2 * F);
    assert_int_equal(count_kind(&prog, SIM_OP_MATMUL, SIM_PHASE_BACKWARD), 2 * 2 * F);
    assert_int_equal(count_kind(&prog, SIM_OP_COLLECTIVE, SIM_PHASE_NONE), 0);
    assert_int_equal(count_kind(&prog, SIM_OP_VECTOR, SIM_PHASE_OPTIMIZER), 8); /* Adafactor */
    /* s = 2 sequences per microbatch: q is [2*32, 128] x [128, 4*32] */
    const sim_prog_op *q = find_op(&prog, "enc.0.attn.q", SIM_PHASE_FORWARD);
    assert_non_null(q);
    assert_int_equal(q->matmul.m, 64);
    assert_int_equal(q->matmul.k, 128);
    assert_int_equal(q->matmul.n, 128);
    assert_int_equal(q->layer, 0);
    const sim_prog_op *dw = find_op(&prog, "enc.0.attn.q.dw", SIM_PHASE_BACKWARD);
    assert_non_null(dw);
    assert_int_equal(dw->matmul.m, 128); /* dW = X^T dY: [128, 64] x [64, 128] */
    assert_int_equal(dw->matmul.k, 64);
    /* scores: 4 heads x 2 sequences x 32 query rows, k = d_kv 32, n = 32 keys */
    const sim_prog_op *sc = find_op(&prog, "dec.0.cross.scores", SIM_PHASE_FORWARD);
    assert_non_null(sc);
    assert_int_equal(sc->matmul.m, 4 * 2 * 8);
    assert_int_equal(sc->matmul.k, 32);
    assert_int_equal(sc->matmul.n, 32);
    assert_int_equal(sc->layer, 2);
    /* exact counts, uniform: the 8 experts hold all 64 encoder tokens */
    const sim_prog_op *wi = find_op(&prog, "enc.1.moe.expert.wi", SIM_PHASE_FORWARD);
    assert_non_null(wi);
    assert_int_equal(wi->matmul.m, 64);
    assert_int_equal(wi->matmul.n, 512);
    assert_non_null(find_op(&prog, "head.logits", SIM_PHASE_FORWARD));
    assert_non_null(find_op(&prog, "enc.1.moe.router.softmax", SIM_PHASE_BACKWARD));
    expect_flops("tiny switch, 1 core, exact counts", st.executed_flops,
                 3.0 * run.batch * (double)c.matmul_flops_per_seq);
    assert_true(st.model_flops == 3.0 * run.batch * (double)c.flops_per_seq);
    assert_true(st.dropped_fraction == 0);
    sim_program_free(&prog);
    model_plan_free(&plan);

    /* remat: every layer's forward products once more (not the head) */
    o.remat = 1;
    build(&prog, &st, &plan, &run, NULL, &o);
    assert_int_equal(count_kind(&prog, SIM_OP_MATMUL, SIM_PHASE_BACKWARD), 2 * (2 * F + F - 1));
    assert_non_null(find_op(&prog, "enc.0.attn.q.remat", SIM_PHASE_BACKWARD));
    expect_flops("tiny switch, 1 core, remat", st.executed_flops,
                 run.batch * (4.0 * (double)c.matmul_flops_per_seq - (double)c.head.flops));
    sim_program_free(&prog);
    model_plan_free(&plan);

    /* padded (default): the expert buffers hold E x K rows; K = round(1.25 * 64 / 8) = 10 */
    o.remat = 0;
    o.exact_counts = 0;
    build(&prog, &st, &plan, &run, NULL, &o);
    wi = find_op(&prog, "enc.1.moe.expert.wi", SIM_PHASE_FORWARD);
    assert_int_equal(plan.capacity_enc, 10);
    assert_int_equal(wi->matmul.m, 80);
    /* decoder: 2 x 8 = 16 tokens, K = max(round(1.25 * 16 / 8), min_capacity 4) = 4: 32
     * slots, 16 used */
    assert_int_equal(plan.capacity_dec, 4);
    printf("  padding fraction %.6f (expected (16/80 + 16/32) / 2 = 0.35)\n",
           st.padding_fraction);
    assert_true(fabs(st.padding_fraction - 0.35) < 1e-15);
    expect_flops("tiny switch, 1 core, padded", st.executed_flops,
                 3.0 * run.batch * padded_flops_per_seq(&c, &plan, 1));
    sim_program_free(&prog);
    model_plan_free(&plan);
}

/* The same executed FLOPs for data 8, model 8, model 2 x data 4 (dense) and expert+data 8,
 * expert+model+data 4 x 2 (Switch, exact counts), except the router replicated on m cores. */
static void test_stepgen_flops_conserved(void **state)
{
    (void)state;
    static const struct {
        int dense, n, m;
    } layouts[] = {{1, 8, 1}, {1, 1, 8}, {1, 4, 2}, {0, 8, 1}, {0, 4, 2}, {0, 1, 8}};
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        run_cfg run;
        tiny_run(&run, layouts[i].dense, layouts[i].n, layouts[i].m, 16, 2, 32, 16);
        const model_counts c = counts_of(&run);
        model_plan plan;
        sim_program prog;
        model_stepgen_stats st;
        model_stepgen_opts o = {0};
        o.exact_counts = 1;
        build(&prog, &st, &plan, &run, NULL, &o);
        char what[64];
        snprintf(what, sizeof what, "%s n=%d m=%d (%s)", layouts[i].dense ? "dense" : "switch",
                 layouts[i].n, layouts[i].m, model_plan_strategy_name(plan.strategy));
        const double router_extra = (layouts[i].m - 1) * 3.0 * router_flops_per_seq(&c);
        expect_flops(what, st.executed_flops,
                     run.batch * (3.0 * (double)c.matmul_flops_per_seq + router_extra));
        sim_program_free(&prog);
        model_plan_free(&plan);
    }
}

/* Row sums of the first dispatch all-to-allv of a program: bytes core rank i sends. */
static const uint64_t *first_matrix(const sim_program *p, const char *label, int32_t *r)
{
    const sim_prog_op *o = find_op(p, label, SIM_PHASE_FORWARD);
    assert_non_null(o);
    assert_int_equal(o->kind, SIM_OP_COLLECTIVE);
    assert_int_equal(o->coll.kind, SIM_COLL_ALLTOALLV);
    return sim_program_matrix(p, o->coll.matrix, r);
}

/* Uniform padded: every entry is K tokens x C x 2 bytes; combine is the transpose; backward
 * mirrors forward. */
static void test_stepgen_alltoallv_uniform(void **state)
{
    (void)state;
    run_cfg run;
    tiny_run(&run, 0, 8, 1, 16, 1, 32, 16);
    model_plan plan;
    sim_program prog;
    model_stepgen_stats st;
    build(&prog, &st, &plan, &run, NULL, NULL);
    int32_t r;
    const uint64_t *d = first_matrix(&prog, "enc.1.moe.dispatch", &r);
    assert_int_equal(r, 8);
    /* 2 sequences x 32 tokens = 64 per core, K = round(1.25 * 64 / 8) = 10 */
    for (int i = 0; i < 64; i++)
        assert_int_equal(d[i], 10 * 128 * 2);
    const sim_prog_op *disp_b = find_op(&prog, "enc.1.moe.dispatch", SIM_PHASE_BACKWARD);
    const sim_prog_op *comb_f = find_op(&prog, "enc.1.moe.combine", SIM_PHASE_FORWARD);
    assert_int_equal(disp_b->coll.matrix, comb_f->coll.matrix);
    assert_int_equal(disp_b->coll.bytes, 8 * 10 * 128 * 2);
    printf("  dispatch row %llu bytes; a2a bytes all cores %llu; padding %.4f dropped %.4f\n",
           (unsigned long long)disp_b->coll.bytes,
           (unsigned long long)st.comm_bytes[SIM_COLL_ALLTOALLV], st.padding_fraction,
           st.dropped_fraction);
    /* 4 all-to-alls per Switch layer (2 forward, 2 backward), 2 Switch layers, 8 cores */
    assert_int_equal(st.comm_bytes[SIM_COLL_ALLTOALLV],
                     (uint64_t)8 * 4 * (8 * 10 * 128 * 2 + 8 * 5 * 128 * 2)); /* K enc 10, dec 5 */
    assert_true(st.dropped_fraction == 0);
    sim_program_free(&prog);
    model_plan_free(&plan);
}

/* Hand-computed skew (Zipf 1) on 4 experts: shares 12/25, 6/25, 4/25, 3/25.
 * Encoder group of 64 tokens: 30.72, 15.36, 10.24, 7.68 -> floors 30, 15, 10, 7 (62), the two
 * largest remainders (.72, .68) get one more: 31, 15, 10, 8; K = round(1.25*64/4) = 20:
 * kept 20, 15, 10, 8 = 53, dropped 11/64. Decoder group of 16: 7.68, 3.84, 2.56, 1.92 ->
 * 7, 3, 2, 1 (13) + remainders .92, .84, .68 -> 8, 4, 2, 2; K = 5: kept 5, 4, 2, 2 = 13,
 * dropped 3/16. Average over the two Switch layers: (11/64 + 3/16) / 2 = 0.1796875. */
static void test_stepgen_alltoallv_skew(void **state)
{
    (void)state;
    int64_t counts[4], kept[4];
    model_routing zipf = {MODEL_ROUTING_SKEW, 1.0, 0, 0, NULL};
    ss_err err = {0};
    assert_int_equal(model_routing_counts(&zipf, 0, 4, 64, 20, counts, kept, &err), SS_OK);
    const int64_t want_c[4] = {31, 15, 10, 8}, want_k[4] = {20, 15, 10, 8};
    for (int e = 0; e < 4; e++) {
        assert_int_equal(counts[e], want_c[e]);
        assert_int_equal(kept[e], want_k[e]);
    }

    run_cfg run;
    tiny_run(&run, 0, 4, 2, 4, 1, 64, 16);
    run.model.sw.num_experts = 4;
    model_plan plan;
    sim_program prog;
    model_stepgen_stats st;
    model_stepgen_opts o = {0};
    o.exact_counts = 1;
    build(&prog, &st, &plan, &run, &zipf, &o);
    printf("  skew dropped fraction %.7f (hand: 0.1796875)\n", st.dropped_fraction);
    assert_true(fabs(st.dropped_fraction - 0.1796875) < 1e-15);
    int32_t r;
    const uint64_t *d = first_matrix(&prog, "enc.1.moe.dispatch", &r);
    assert_int_equal(r, 4);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            assert_int_equal(d[i * 4 + j], (uint64_t)want_k[j] * 128 * 2);
    /* the expert buffer of data way 0 (expert 0): 4 groups x 20 kept tokens */
    const sim_prog_op *wi = find_op(&prog, "enc.1.moe.expert.wi", SIM_PHASE_FORWARD);
    assert_int_equal(wi->core, plan.core_of[0]);
    assert_int_equal(wi->matmul.m, 4 * 20);
    assert_int_equal(wi->matmul.n, 512 / 2);
    sim_program_free(&prog);
    model_plan_free(&plan);

    /* padded: the same matrix for any routing, 20 slots per expert */
    build(&prog, &st, &plan, &run, &zipf, NULL);
    d = first_matrix(&prog, "enc.1.moe.dispatch", &r);
    for (int i = 0; i < 16; i++)
        assert_int_equal(d[i], 20 * 128 * 2);
    assert_true(fabs(st.padding_fraction - 0.5 * (27.0 / 80 + 7.0 / 20)) < 1e-15);
    sim_program_free(&prog);
    model_plan_free(&plan);
}

static double lower_and_run(const run_cfg *run, const sim_program *prog);

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The histogram file: normalised rows, errors that name the problem, layer mismatch. */
static void test_stepgen_histogram(void **state)
{
    (void)state;
    char path[] = "/tmp/stepgen_hist_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    model_routing r;
    ss_err err = {0};
    write_file(path, "{\"layers\": [[2, 1, 1, 0], [1, 1, 1, 1]], \"model\": \"x\"}");
    assert_int_equal(model_routing_load(&r, path, &err), SS_OK);
    assert_int_equal(r.layers, 2);
    assert_int_equal(r.experts, 4);
    assert_true(r.fractions[0] == 0.5 && r.fractions[3] == 0 && r.fractions[4] == 0.25);
    int64_t counts[4], kept[4];
    assert_int_equal(model_routing_counts(&r, 0, 4, 16, 5, counts, kept, &err), SS_OK);
    assert_int_equal(counts[0], 8);
    assert_int_equal(kept[0], 5);
    assert_int_equal(counts[3], 0);
    /* layer 2 does not exist; 8 experts do not match */
    assert_int_equal(model_routing_counts(&r, 2, 4, 16, 5, counts, kept, &err), SS_ERR_CONFIG);
    printf("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "2 layers"));

    /* a tiny Switch run has 2 Switch layers of 8 experts: this 4-expert file does not fit */
    run_cfg run;
    tiny_run(&run, 0, 8, 1, 16, 1, 32, 16);
    model_plan plan;
    sim_program prog;
    assert_int_equal(model_plan_make(&plan, &run, &err), SS_OK);
    assert_int_equal(model_stepgen_build(&prog, NULL, &plan, &run, &r, NULL, &err),
                     SS_ERR_CONFIG);
    model_plan_free(&plan);

    /* 4 experts on 4 data ways, exact counts: expert 3 gets no token, so data way 3 runs no
     * expert matmul, and the program still validates, lowers and runs */
    tiny_run(&run, 0, 4, 2, 4, 1, 64, 16);
    run.model.sw.num_experts = 4;
    model_stepgen_opts o = {0};
    o.exact_counts = 1;
    model_stepgen_stats st;
    build(&prog, &st, &plan, &run, &r, &o);
    int wi_ops[4] = {0};
    for (int32_t i = 0; i < prog.nops; i++) {
        const sim_prog_op *op = sim_program_op(&prog, i);
        if (!strcmp(sim_program_string(&prog, op->label), "enc.1.moe.expert.wi")) {
            int d, k;
            model_plan_cell(&plan, op->core, &d, &k);
            wi_ops[d]++;
        }
    }
    printf("  expert.wi ops per data way: %d %d %d %d\n", wi_ops[0], wi_ops[1], wi_ops[2],
           wi_ops[3]);
    assert_int_equal(wi_ops[0], 2); /* one per model way */
    assert_int_equal(wi_ops[3], 0);
    lower_and_run(&run, &prog);
    sim_program_free(&prog);
    model_plan_free(&plan);
    model_routing_free(&r);

    write_file(path, "{\"layers\": [[1, 2], [1]]}");
    assert_int_equal(model_routing_load(&r, path, &err), SS_ERR_DATA);
    printf("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "layers[1]"));
    write_file(path, "{\"layers\": [[0, 0]]}");
    assert_int_equal(model_routing_load(&r, path, &err), SS_ERR_DATA);
    write_file(path, "{\"layers\": [[1, -1]]}");
    assert_int_equal(model_routing_load(&r, path, &err), SS_ERR_DATA);
    write_file(path, "[1, 2");
    assert_int_equal(model_routing_load(&r, path, &err), SS_ERR_IO);
    assert_null(r.fractions);
    remove(path);
}

/* Groups: data-way collectives over the n cores of a model shard, model all-reduces over the
 * m cores of a replica, gradient reductions labelled per layer, expert replicas reduced. */
static void test_stepgen_groups_and_labels(void **state)
{
    (void)state;
    run_cfg run;
    tiny_run(&run, 0, 4, 2, 8, 1, 32, 16);
    run.plan.mapping = MODEL_PLAN_MAP_DATA_NEIGHBOURS;
    run.model.sw.num_experts = 2; /* E < n: each expert on 2 data ways */
    model_plan plan;
    sim_program prog;
    model_stepgen_stats st;
    build(&prog, &st, &plan, &run, NULL, NULL);
    assert_int_equal(plan.expert_replicas, 2);
    int seen_grad = 0, seen_rep = 0, seen_model = 0;
    for (int32_t i = 0; i < prog.nops; i++) {
        const sim_prog_op *o = sim_program_op(&prog, i);
        const char *lab = sim_program_string(&prog, o->label);
        assert_true(lab[0] != '\0');
        assert_true(o->phase != SIM_PHASE_NONE);
        if (o->kind != SIM_OP_COLLECTIVE)
            continue;
        int32_t n;
        const int32_t *g = sim_program_group(&prog, o->coll.group, &n);
        if (!strcmp(lab, "grad.allreduce.enc.0")) {
            seen_grad++;
            assert_int_equal(n, 4); /* the data ways of the core's shard: k*n + d */
            assert_int_equal(g[1] - g[0], 1);
            assert_int_equal(o->layer, 0);
            assert_int_equal(o->phase, SIM_PHASE_BACKWARD);
        } else if (!strcmp(lab, "grad.allreduce.enc.1.experts")) {
            seen_rep++;
            assert_int_equal(n, 2); /* data ways 2e and 2e+1 of one shard */
            assert_int_equal(g[1] - g[0], 1);
        } else if (!strcmp(lab, "enc.0.attn.allreduce")) {
            seen_model++;
            assert_int_equal(n, 2);
            assert_int_equal(g[1] - g[0], 4); /* model ways are n apart */
            assert_int_equal(o->coll.bytes, 2 * 32 * 128 * 2); /* 2 sequences of 32 */
        }
    }
    assert_int_equal(seen_grad, 8);
    assert_int_equal(seen_rep, 8);
    assert_int_equal(seen_model, 8);
    assert_non_null(find_op(&prog, "grad.allreduce.embed", SIM_PHASE_BACKWARD));
    assert_non_null(find_op(&prog, "dec.1.moe.dispatch", SIM_PHASE_BACKWARD));
    assert_non_null(find_op(&prog, "head.allgather", SIM_PHASE_BACKWARD));
    printf("  ops %d, collectives %lld, groups %d\n", prog.nops, (long long)st.ncollectives,
           sim_program_ngroups(&prog));
    sim_program_free(&prog);
    model_plan_free(&plan);
}

/* Lowers the program's collectives for the run's pod and runs the analytic engine. */
static double lower_and_run(const run_cfg *run, const sim_program *prog)
{
    ss_err err = {0};
    sim_topo topo;
    if (sim_pod_topo(&run->pod, &topo, &err) != SS_OK)
        fail_msg("%s", err.msg);
    coll_cost cost = coll_cost_of_chip(&run->pod.chip, SIM_PACKET_BYTES_DEFAULT);
    sim_program low;
    if (coll_program_lower(prog, &topo, &cost, &low, &err) != SS_OK)
        fail_msg("lower: %s", err.msg);
    assert_int_equal(count_kind(&low, SIM_OP_COLLECTIVE, SIM_PHASE_NONE), 0);
    sim_engine_cfg cfg = {&run->pod.chip, &topo, SIM_PACKET_BYTES_DEFAULT, 0, 0};
    sim_result res;
    if (sim_engine_run(SIM_ENGINE_ANALYTIC, &low, &cfg, &res, &err) != SS_OK)
        fail_msg("engine: %s", err.msg);
    const double t = res.makespan_s;
    printf("  lowered ops %d, makespan %.6f ms\n", low.nops, 1e3 * t);
    assert_true(t > 0);
    sim_result_free(&res);
    sim_program_free(&low);
    return t;
}

static void test_stepgen_lower_and_run(void **state)
{
    (void)state;
    static const struct {
        int dense, n, m;
    } layouts[] = {{1, 8, 1}, {1, 2, 4}, {0, 8, 1}, {0, 4, 2}, {0, 2, 4}};
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        run_cfg run;
        tiny_run(&run, layouts[i].dense, layouts[i].n, layouts[i].m, 16, 2, 32, 16);
        model_plan plan;
        sim_program prog;
        model_stepgen_stats st;
        model_stepgen_opts o = {0};
        o.overlap_grad_reduce = 1;
        build(&prog, &st, &plan, &run, NULL, &o);
        printf("  %s n=%d m=%d: ops %d\n", model_plan_strategy_name(plan.strategy),
               layouts[i].n, layouts[i].m, prog.nops);
        lower_and_run(&run, &prog);
        sim_program_free(&prog);
        model_plan_free(&plan);
    }
}

/* Data-parallel dense model: overlapping the gradient reduction with the backward of earlier
 * layers shortens the step. */
static void test_stepgen_overlap_shortens_step(void **state)
{
    (void)state;
    run_cfg run;
    tiny_run(&run, 1, 8, 1, 16, 1, 32, 16);
    double t[2];
    for (int ov = 0; ov < 2; ov++) {
        model_plan plan;
        sim_program prog;
        model_stepgen_opts o = {0};
        o.overlap_grad_reduce = ov;
        build(&prog, NULL, &plan, &run, NULL, &o);
        t[ov] = lower_and_run(&run, &prog);
        sim_program_free(&prog);
        model_plan_free(&plan);
    }
    printf("  makespan overlap off %.6f ms, on %.6f ms\n", 1e3 * t[0], 1e3 * t[1]);
    assert_true(t[1] < t[0]);
}

/* Plans that disagree with the run are rejected with a message. */
static void test_stepgen_rejects_bad_plan(void **state)
{
    (void)state;
    run_cfg run;
    tiny_run(&run, 0, 8, 1, 16, 1, 32, 16);
    model_plan plan;
    sim_program prog;
    ss_err err = {0};
    assert_int_equal(model_plan_make(&plan, &run, &err), SS_OK);
    plan.num_experts = 16;
    assert_int_equal(model_stepgen_build(&prog, NULL, &plan, &run, NULL, NULL, &err),
                     SS_ERR_CONFIG);
    printf("  %s\n", err.msg);
    plan.num_experts = 8;
    plan.seqs_per_microbatch = 3;
    assert_int_equal(model_stepgen_build(&prog, NULL, &plan, &run, NULL, NULL, &err),
                     SS_ERR_CONFIG);
    printf("  %s\n", err.msg);
    model_plan_free(&plan);
}

static void generate_big(const char *what, const run_cfg *run, int exact)
{
    model_plan plan;
    sim_program prog;
    model_stepgen_stats st;
    model_stepgen_opts o = {0};
    o.overlap_grad_reduce = 1;
    o.exact_counts = exact;
    ss_err err = {0};
    if (model_plan_make(&plan, run, &err) != SS_OK)
        fail_msg("plan: %s", err.msg);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (model_stepgen_build(&prog, &st, &plan, run, NULL, &o, &err) != SS_OK)
        fail_msg("stepgen: %s", err.msg);
    const double gen_s = seconds_since(&t0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (sim_program_validate(&prog, &err) != SS_OK)
        fail_msg("validate: %s", err.msg);
    const double val_s = seconds_since(&t0);
    const model_counts c = counts_of(run);
    printf("  %s: %d cores, %d ops (%.0f per core), %lld collectives, generated in %.3f s, "
           "validated in %.3f s, program %.1f MiB\n",
           what, plan.cores, prog.nops, (double)prog.nops / plan.cores,
           (long long)st.ncollectives, gen_s, val_s,
           sim_program_memory_bytes(&prog) / 1048576.0);
    printf("    model FLOPs %.4e, executed %.4e (x%.3f), a2a %.4e B, allreduce %.4e B, "
           "padding %.4f, dropped %.4f, K enc/dec %d/%d\n",
           st.model_flops, st.executed_flops, st.executed_flops / st.model_flops,
           (double)st.comm_bytes[SIM_COLL_ALLTOALLV], (double)st.comm_bytes[SIM_COLL_ALLREDUCE],
           st.padding_fraction, st.dropped_fraction, plan.capacity_enc, plan.capacity_dec);
    expect_flops(what, st.executed_flops,
                 3.0 * run->batch * padded_flops_per_seq(&c, &plan, run->model.sw.top_k));
    sim_program_free(&prog);
    model_plan_free(&plan);
}

static void test_stepgen_switch_base_128_on_32(void **state)
{
    (void)state;
    run_cfg run;
    load_run(&run, "switch-base-128-v3-32.yaml");
    generate_big("switch-base-128 on 32 cores", &run, 0);
}

static void test_stepgen_switch_c_2048_on_2048(void **state)
{
    (void)state;
    if (getenv("SWITCHSIM_SKIP_BIG")) {
        printf("  skipped (SWITCHSIM_SKIP_BIG)\n");
        return;
    }
    run_cfg run;
    load_run(&run, "switch-base-128-v3-32.yaml");
    char path[1024];
    ss_err err = {0};
    snprintf(path, sizeof path, "%s/configs/models/switch-c-2048.yaml", root());
    if (model_cfg_load(&run.model, path, &err) != SS_OK)
        fail_msg("%s", err.msg);
    snprintf(path, sizeof path, "%s/configs/pods/tpu-v3-2048.yaml", root());
    if (sim_pod_load(&run.pod, path, &err) != SS_OK)
        fail_msg("%s", err.msg);
    run.plan.data = 2048;
    run.plan.model = 1;
    run.plan.experts_per_core = 1;
    run.batch = 2048; /* 2^20 tokens of 512, one sequence a core */
    run.plan.microbatches = 1;
    generate_big("switch-c-2048 on 2048 cores", &run, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stepgen_tiny_one_core),
        cmocka_unit_test(test_stepgen_flops_conserved),
        cmocka_unit_test(test_stepgen_alltoallv_uniform),
        cmocka_unit_test(test_stepgen_alltoallv_skew),
        cmocka_unit_test(test_stepgen_histogram),
        cmocka_unit_test(test_stepgen_groups_and_labels),
        cmocka_unit_test(test_stepgen_lower_and_run),
        cmocka_unit_test(test_stepgen_overlap_shortens_step),
        cmocka_unit_test(test_stepgen_rejects_bad_plan),
        cmocka_unit_test(test_stepgen_switch_base_128_on_32),
        cmocka_unit_test(test_stepgen_switch_c_2048_on_2048),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
