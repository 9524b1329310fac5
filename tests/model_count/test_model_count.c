/* This file implements the tests of the parameter and FLOP counts (model/count.c) and of
 * `switchsim model` (cli/cmd_model.c, linked into this executable and called in-process; one
 * test also runs the built $SWITCHSIM): every Table 9 preset of configs/models/ (under
 * $SWITCHSIM_SOURCE_ROOT) against the published figures, the Switch-Base expert sweep, a tiny
 * model counted by hand, identities between the two FLOP conventions computed from independent
 * formulas, empty stacks, top-2 routing, errors, and the command's output and usage errors.
 *
 * Invariants: published figures are written here as printed in REFERENCE.md section 3; each
 * comparison prints the counted figure, the published one and the relative difference.
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
#include <jansson.h>

#include "cli/cli.h"
#include "cli_child.h"
#include "model/count.h"
#include "model/model_cfg.h"

/* ---- helpers ------------------------------------------------------------------------ */

static void preset_path(char *buf, size_t n, const char *file)
{
    char rel[512];
    snprintf(rel, sizeof rel, "configs/models/%s", file);
    if (cli_child_source_path(buf, n, rel) != 0)
        fail();
}

static model_cfg load_preset(const char *file)
{
    char path[4096];
    preset_path(path, sizeof path, file);
    model_cfg m;
    ss_err err = {0};
    if (model_cfg_load(&m, path, &err) != SS_OK)
        fail_msg("cannot load %s: %s", path, err.msg);
    return m;
}

static model_counts count_or_fail(const model_cfg *m, int64_t ti, int64_t tt)
{
    model_counts c;
    ss_err err = {0};
    if (model_count(m, ti, tt, &c, &err) != SS_OK)
        fail_msg("model_count(%s): %s", m->name, err.msg);
    return c;
}

static double rel_diff(double got, double want)
{
    return fabs(got - want) / fabs(want);
}

/* The tiny model counted by hand in test_model_count_hand_counted. */
static model_cfg tiny_cfg(void)
{
    model_cfg m;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "hand");
    m.d_model = 8;
    m.d_ff = 16;
    m.d_kv = 4;
    m.num_heads = 2;
    m.num_layers = 2;
    m.encoder_layers = 2;
    m.decoder_layers = 3;
    m.vocab_size = 10;
    m.ffn = MODEL_FFN_GEGLU;
    m.tied_embeddings = 0;
    m.relative_attention_num_buckets = 4;
    m.relative_attention_max_distance = 8;
    m.has_switch = 1;
    m.sw.num_experts = 4;
    m.sw.every = 2;
    m.sw.top_k = 2;
    return m;
}

/* ---- Table 9 ------------------------------------------------------------------------ */

typedef struct {
    const char *file;
    double params;     /* published */
    double params_tol; /* allowed |counted - published|: 0 = exact */
    double flops;      /* published FLOPs per sequence (512 inputs, 114 targets) */
} table9_row;

/* REFERENCE.md section 3. Parameter tolerances are half a unit of the last published digit,
 * except T5-Large: 739M is 1.46M above the ReLU-4096 count (737.54M; 737.67M with norms and
 * biases), so it gets 0.25%. */
static const table9_row table9[] = {
    {"t5-base.yaml", 223e6, 0.5e6, 124e9},
    {"t5-large.yaml", 739e6, 0.0025 * 739e6, 425e9},
    {"t5-xxl.yaml", 11e9, 0.5e9, 6.3e12},
    {"switch-base-128.yaml", 7415169024.0, 0, 124e9},
    {"switch-large-128.yaml", 26e9, 0.5e9, 425e9},
    {"switch-xxl-128.yaml", 395e9, 0.5e9, 6.3e12},
    {"switch-c-2048.yaml", 1571308810240.0, 0, 890e9},
};
enum { TABLE9_ROWS = sizeof table9 / sizeof table9[0] };

static void test_model_count_table9_params(void **state)
{
    (void)state;
    for (size_t i = 0; i < TABLE9_ROWS; i++) {
        const model_cfg m = load_preset(table9[i].file);
        const model_counts c = count_or_fail(&m, 512, 114);
        const double diff = (double)c.params - table9[i].params;
        print_message("  %-22s params %15lld published %15.0f diff %+.4g (%+.3f%%)\n",
                      table9[i].file, (long long)c.params, table9[i].params, diff,
                      100 * diff / table9[i].params);
        assert_true(fabs(diff) <= table9[i].params_tol);
    }
}

static void test_model_count_table9_flops(void **state)
{
    (void)state;
    double worst = 0;
    for (size_t i = 0; i < TABLE9_ROWS; i++) {
        const model_cfg m = load_preset(table9[i].file);
        const model_counts c = count_or_fail(&m, 512, 114);
        const double rel = rel_diff((double)c.flops_per_seq, table9[i].flops);
        print_message("  %-22s flops/seq %.5g published %.4g rel diff %.3f%% (matmul %.5g)\n",
                      table9[i].file, (double)c.flops_per_seq, table9[i].flops, 100 * rel,
                      (double)c.matmul_flops_per_seq);
        worst = fmax(worst, rel);
        assert_true(rel <= 0.01);
    }
    print_message("  max rel diff %.3f%%\n", 100 * worst);
}

/* Switch-Base with E experts: 1.07/1.98/3.79/7.42/14.66B published (two decimals); E = 8 is
 * not published: every expert adds 12 Switch layers x (2 C F + C) = 56,631,312 parameters.
 * FLOPs do not depend on E and equal T5-Base's (the FLOP-matched baseline). */
static void test_model_count_expert_sweep(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        int experts;
        double published_b; /* 0: not published */
    } sweep[] = {
        {"switch-base-8.yaml", 8, 0},       {"switch-base-16.yaml", 16, 1.07},
        {"switch-base-32.yaml", 32, 1.98},  {"switch-base-64.yaml", 64, 3.79},
        {"switch-base-128.yaml", 128, 7.42}, {"switch-base-256.yaml", 256, 14.66},
    };
    const model_cfg t5 = load_preset("t5-base.yaml");
    const model_counts dense = count_or_fail(&t5, 512, 114);
    const int64_t per_expert = 12 * (2 * 768 * 3072 + 768);
    for (size_t i = 0; i < sizeof sweep / sizeof sweep[0]; i++) {
        const model_cfg m = load_preset(sweep[i].file);
        assert_int_equal(m.sw.num_experts, sweep[i].experts);
        const model_counts c = count_or_fail(&m, 512, 114);
        const int64_t want = 7415169024LL + (sweep[i].experts - 128) * per_expert;
        print_message("  E=%-3d params %lld (%.4fB, published %.2fB) flops/seq %lld\n",
                      sweep[i].experts, (long long)c.params, (double)c.params / 1e9,
                      sweep[i].published_b, (long long)c.flops_per_seq);
        assert_true(c.params == want);
        if (sweep[i].published_b > 0)
            assert_true(fabs((double)c.params / 1e9 - sweep[i].published_b) <= 0.005);
        assert_true(c.flops_per_seq == dense.flops_per_seq);
    }
}

/* ---- a model counted by hand -------------------------------------------------------- */

/* tiny_cfg: C=8, F=16 GEGLU (wi [8,32], wo [16,8]: C*W = 384 per FFN), H=2, D=4, A=8,
 * Le=2 (layer 0 dense, layer 1 Switch), Ld=3 (layers 0, 2 dense, layer 1 Switch), E=4, top-2,
 * V=10 untied, 4 buckets; Ti=6, Tt=3.
 * Parameters: attention block 4 C A = 256: encoder 2 x 256 = 512, decoder self 768, cross 768;
 * dense FFNs (1 + 2) x 384 = 1152; experts 2 x 4 x 384 = 3072; routers 2 x C E = 64;
 * embedding 80, output 80 -> params 6496. Norms 2x2x8 + 3x3x8 + 2x8 (final) = 120, position
 * biases 2 stacks x 4 x 2 = 16 -> 136, params_all 6632. Active: experts 2 layers x 2 x 384 =
 * 1536 instead of 3072 -> 4960.
 * Table 9 FLOPs: encoder attention 2x6x2x256 + 2x2x6x6x8 = 6144 + 1152 = 7296; decoder self
 * 2x3x3x256 + 2x3x3x3x8 = 4608 + 432 = 5040; cross 4608 + 2x3x3x6x8 = 4608 + 864 = 5472; dense
 * 2 x (6x1 + 3x2) x 384 = 9216; experts 2 x 2 x (6 + 3) x 384 = 13824; routers 0; output
 * 2x3x8x10 = 480 -> 41328; training 123984.
 * Executed FLOPs: encoder attention per layer 4x(2x6x8x8) + 2x(2x2x6x4x6) = 3072 + 1152 = 4224,
 * x2 = 8448; decoder self per layer 4x(2x3x64) + 2x(2x2x3x4x3) = 1536 + 288, x3 = 5472; cross
 * per layer q,o 2x(2x3x64) + k,v 2x(2x6x64) + 2x(2x2x3x4x6) = 768 + 1536 + 576 = 2880, x3 =
 * 8640; dense 9216; experts 13824; routers 2 x (6 + 3) x 8 x 4 = 576; output 480 -> 46656. */
static void test_model_count_hand_counted(void **state)
{
    (void)state;
    const model_cfg m = tiny_cfg();
    const model_counts c = count_or_fail(&m, 6, 3);
    static const int64_t params[MODEL_COMP_COUNT] = {80, 80, 512, 768, 768, 1152, 3072, 64,
                                                     120, 16};
    static const int64_t flops[MODEL_COMP_COUNT] = {0, 480, 7296, 5040, 5472, 9216, 13824, 0,
                                                    0, 0};
    static const int64_t matmul[MODEL_COMP_COUNT] = {0, 480, 8448, 5472, 8640, 9216, 13824,
                                                     576, 0, 0};
    for (int i = 0; i < MODEL_COMP_COUNT; i++) {
        print_message("  %-24s params %5lld (%5lld) flops %6lld (%6lld) matmul %6lld (%6lld)\n",
                      model_comp_name((model_comp)i), (long long)c.params_comp[i],
                      (long long)params[i], (long long)c.flops_comp[i], (long long)flops[i],
                      (long long)c.matmul_flops_comp[i], (long long)matmul[i]);
        assert_true(c.params_comp[i] == params[i]);
        assert_true(c.flops_comp[i] == flops[i]);
        assert_true(c.matmul_flops_comp[i] == matmul[i]);
    }
    assert_true(c.params == 6496 && c.params_norms_and_biases == 136 && c.params_all == 6632);
    assert_true(c.active_params == 4960);
    assert_true(c.flops_per_seq == 41328 && c.train_flops_per_seq == 123984);
    assert_true(c.matmul_flops_per_seq == 46656 && c.train_matmul_flops_per_seq == 3 * 46656);
    /* layer kinds: counts, per-layer parameters (enc switch: 256 + 4 x 384 + 32; dec dense:
     * 2 x 256 + 384), norms and product lists */
    const model_layer_counts *es = &c.layer[MODEL_LAYER_ENC_SWITCH];
    const model_layer_counts *dd = &c.layer[MODEL_LAYER_DEC_DENSE];
    const model_layer_counts *ds = &c.layer[MODEL_LAYER_DEC_SWITCH];
    assert_int_equal(c.layer[MODEL_LAYER_ENC_DENSE].layers, 1);
    assert_int_equal(es->layers, 1);
    assert_int_equal(dd->layers, 2);
    assert_int_equal(ds->layers, 1);
    assert_true(es->params == 1824 && es->params_norms == 16 && es->tokens == 6);
    assert_true(dd->params == 896 && dd->params_norms == 24 && dd->tokens == 3);
    assert_int_equal(c.layer[MODEL_LAYER_ENC_DENSE].nmatmul, 8);
    assert_int_equal(ds->nmatmul, 15);
    /* cross k: 6 encoder rows, but 3 target tokens in the Table 9 share */
    const model_matmul *ck = &ds->mm[7];
    assert_string_equal(ck->name, "cross.k");
    assert_true(ck->m == 6 && ck->k == 8 && ck->n == 8 && ck->flops == 768 &&
                ck->table9_flops == 384);
    const model_matmul *wi = &ds->mm[13];
    assert_string_equal(wi->name, "expert.wi");
    assert_true(wi->m == 6 && wi->k == 8 && wi->n == 32 && wi->experts == 4);
    assert_true(c.head.m == 3 && c.head.k == 8 && c.head.n == 10 && c.head.flops == 480);
}

/* Stacks without layers: no cross-attention without an encoder, and the output layer on the
 * input tokens without a decoder. Figures from the hand count above:
 * decoder only: params 768 + 2x384 + 4x384 + 32 + 160 = 3264; norms 3 layers x 2 x 8 + 8 = 56,
 * biases 8; flops 5040 + 2x3x2x384 + 2x2x3x384 + 480 = 14736.
 * encoder only: params 512 + 384 + 1536 + 32 + 160 = 2624; norms 2x2x8 + 8 = 40, biases 8;
 * flops 7296 + 2x6x384 + 2x2x6x384 + 2x6x8x10 = 22080. */
static void test_model_count_empty_stacks(void **state)
{
    (void)state;
    model_cfg m = tiny_cfg();
    m.encoder_layers = 0;
    model_counts c = count_or_fail(&m, 6, 3);
    print_message("  decoder only: params %lld norms+biases %lld flops %lld\n",
                  (long long)c.params, (long long)c.params_norms_and_biases,
                  (long long)c.flops_per_seq);
    assert_true(c.params == 3264 && c.params_norms_and_biases == 64 && c.flops_per_seq == 14736);
    assert_true(c.params_comp[MODEL_COMP_CROSS_ATTN] == 0 && c.head.m == 3);
    assert_true(c.layer[MODEL_LAYER_ENC_DENSE].layers == 0 &&
                c.layer[MODEL_LAYER_ENC_DENSE].nmatmul == 0 &&
                c.layer[MODEL_LAYER_ENC_SWITCH].params == 0);
    assert_int_equal(c.layer[MODEL_LAYER_DEC_DENSE].nmatmul, 8);

    m = tiny_cfg();
    m.decoder_layers = 0;
    c = count_or_fail(&m, 6, 3);
    print_message("  encoder only: params %lld norms+biases %lld flops %lld\n",
                  (long long)c.params, (long long)c.params_norms_and_biases,
                  (long long)c.flops_per_seq);
    assert_true(c.params == 2624 && c.params_norms_and_biases == 48 && c.flops_per_seq == 22080);
    assert_true(c.head.m == 6 && c.flops_comp[MODEL_COMP_DEC_SELF_ATTN] == 0);
}

/* ---- identities --------------------------------------------------------------------- */

/* Relations every count must satisfy, with the Table 9 total recomputed from its formula over
 * the parameter counts, and the executed total from the difference between the conventions
 * (routers + P V products + cross k/v over Ti - Tt rows). */
static void check_identities(const model_cfg *m, const model_counts *c)
{
    const int64_t Ti = c->input_len, Tt = c->target_len, C = m->d_model, V = m->vocab_size;
    const int64_t A = (int64_t)m->num_heads * m->d_kv, Le = m->encoder_layers;
    const int64_t Ld = m->decoder_layers, W = (m->ffn == MODEL_FFN_GEGLU ? 3 : 2) * m->d_ff;
    const int64_t Se = model_cfg_switch_layers(m, m->encoder_layers);
    const int64_t Sd = model_cfg_switch_layers(m, m->decoder_layers);
    const int64_t E = m->has_switch ? m->sw.num_experts : 0, k = m->sw.top_k;
    SS_ASSERT(Le > 0 && Ld > 0);
    /* active non-embedding parameters per token of each stack, routers excluded */
    const int64_t Pe = Le * 4 * C * A + (Le - Se) * C * W + Se * k * C * W;
    const int64_t Pd = Ld * 8 * C * A + (Ld - Sd) * C * W + Sd * k * C * W;
    const int64_t attn = 2 * A * (Le * Ti * Ti + Ld * Tt * Tt + Ld * Tt * Ti);
    const int64_t table9 = 2 * Ti * Pe + 2 * Tt * Pd + attn + 2 * Tt * C * V;
    const int64_t routers = 2 * (Se * Ti + Sd * Tt) * C * E;
    const int64_t executed = table9 + routers + attn + 4 * Ld * (Ti - Tt) * C * A;
    print_message("  %-18s Ti %lld Tt %lld: flops %lld (formula %lld), matmul %lld (formula "
                  "%lld)\n",
                  m->name, (long long)Ti, (long long)Tt, (long long)c->flops_per_seq,
                  (long long)table9, (long long)c->matmul_flops_per_seq, (long long)executed);
    assert_true(c->flops_per_seq == table9);
    assert_true(c->matmul_flops_per_seq == executed);
    assert_true(c->active_params == c->params - (Se + Sd) * (E - k) * C * W);
    assert_true(c->params_all == c->params + c->params_norms_and_biases);
    assert_true(c->train_flops_per_seq == 3 * c->flops_per_seq);
    assert_true(c->train_matmul_flops_per_seq == 3 * c->matmul_flops_per_seq);
    int64_t p = 0, nb = 0, f = c->head.table9_flops, mm = c->head.flops;
    for (int i = 0; i < MODEL_COMP_COUNT; i++)
        *(model_comp_in_params((model_comp)i) ? &p : &nb) += c->params_comp[i];
    for (int i = 0; i < MODEL_LAYER_KINDS; i++) {
        f += c->layer[i].layers * c->layer[i].table9_flops;
        mm += c->layer[i].layers * c->layer[i].matmul_flops;
    }
    assert_true(p == c->params && nb == c->params_norms_and_biases);
    assert_true(f == c->flops_per_seq && mm == c->matmul_flops_per_seq);
}

static void test_model_count_identities(void **state)
{
    (void)state;
    static const int64_t lengths[][2] = {{512, 114}, {1024, 1024}, {7, 300}};
    for (size_t i = 0; i < TABLE9_ROWS; i++) {
        const model_cfg m = load_preset(table9[i].file);
        for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
            const model_counts c = count_or_fail(&m, lengths[l][0], lengths[l][1]);
            check_identities(&m, &c);
        }
    }
    model_cfg tiny = tiny_cfg();
    tiny.sw.top_k = 3;
    const model_counts c = count_or_fail(&tiny, 6, 3);
    check_identities(&tiny, &c);
}

/* top-2 doubles the experts' FLOPs and active parameters, and nothing else. */
static void test_model_count_top2(void **state)
{
    (void)state;
    model_cfg m = load_preset("switch-base-128.yaml");
    const model_counts one = count_or_fail(&m, 512, 114);
    m.sw.top_k = 2;
    const model_counts two = count_or_fail(&m, 512, 114);
    const int64_t expert_active = 12 * 2 * 768 * 3072;
    print_message("  top-1 experts %lld flops, top-2 %lld\n",
                  (long long)one.flops_comp[MODEL_COMP_EXPERTS],
                  (long long)two.flops_comp[MODEL_COMP_EXPERTS]);
    assert_true(two.flops_comp[MODEL_COMP_EXPERTS] == 2 * one.flops_comp[MODEL_COMP_EXPERTS]);
    assert_true(two.flops_per_seq - one.flops_per_seq == one.flops_comp[MODEL_COMP_EXPERTS]);
    assert_true(two.active_params - one.active_params == expert_active);
    assert_true(two.params == one.params);
}

static void test_model_count_errors(void **state)
{
    (void)state;
    const model_cfg m = tiny_cfg();
    model_counts c;
    ss_err err = {0};
    static const int64_t bad[][2] = {{0, 3}, {6, 0}, {MODEL_COUNT_MAX_LEN + 1, 3}, {6, -1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(model_count(&m, bad[i][0], bad[i][1], &c, &err), SS_ERR_RANGE);
        print_message("  %s\n", err.msg);
        assert_non_null(strstr(err.msg, "length"));
    }
    model_cfg z = tiny_cfg();
    z.d_model = 0;
    assert_int_equal(model_count(&z, 6, 3, &c, &err), SS_ERR_CONFIG);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "d_model"));
    z = tiny_cfg();
    z.sw.top_k = 5; /* more than the 4 experts */
    assert_int_equal(model_count(&z, 6, 3, &c, &err), SS_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "top_k"));
    /* the largest sizes the schema allows overflow 64 bits */
    model_cfg big = tiny_cfg();
    big.d_model = 1 << 20;
    big.d_ff = 1 << 22;
    big.encoder_layers = big.decoder_layers = 1000;
    big.sw.num_experts = 65536;
    big.sw.every = 1;
    assert_int_equal(model_count(&big, MODEL_COUNT_MAX_LEN, MODEL_COUNT_MAX_LEN, &c, &err),
                     SS_ERR_RANGE);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "64-bit"));
}

/* ---- switchsim model (in-process) --------------------------------------------------- */

typedef struct {
    int rc;
    char *out, *err; /* captured stdout and stderr (caller frees) */
} cmd_result;

static char *read_back(FILE *tmp)
{
    assert_int_equal(fseek(tmp, 0, SEEK_END), 0);
    const long size = ftell(tmp);
    assert_true(size >= 0);
    rewind(tmp);
    char *s = calloc((size_t)size + 1, 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)size, tmp), (size_t)size);
    fclose(tmp);
    return s;
}

/* Runs `model args...` with stdout and stderr captured. */
static cmd_result run_cmd(const char *const *args)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "model";
    for (; args[argc - 1]; argc++) {
        assert_true(argc < 31);
        argv[argc] = (char *)args[argc - 1];
    }
    argv[argc] = NULL;
    FILE *out = tmpfile(), *err = tmpfile();
    assert_true(out && err);
    fflush(stdout);
    fflush(stderr);
    const int so = dup(STDOUT_FILENO), se = dup(STDERR_FILENO);
    assert_true(so >= 0 && se >= 0);
    assert_true(dup2(fileno(out), STDOUT_FILENO) >= 0 && dup2(fileno(err), STDERR_FILENO) >= 0);
    cmd_result r = {cmd_model(argc, argv), NULL, NULL};
    fflush(stdout);
    fflush(stderr);
    assert_true(dup2(so, STDOUT_FILENO) >= 0 && dup2(se, STDERR_FILENO) >= 0);
    close(so);
    close(se);
    r.out = read_back(out);
    r.err = read_back(err);
    return r;
}

static void free_result(cmd_result *r)
{
    free(r->out);
    free(r->err);
}

static json_t *parse_json(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("not JSON (%s): %s", jerr.text, text);
    return j;
}

static int64_t int_field(const json_t *j, const char *key)
{
    const json_t *v = json_object_get(j, key);
    if (!json_is_integer(v))
        fail_msg("no integer '%s' in the output", key);
    return json_integer_value(v);
}

/* The JSON figures equal model_count's on the same file, per component too. */
static void test_model_cmd_json(void **state)
{
    (void)state;
    char path[4096];
    preset_path(path, sizeof path, "switch-c-2048.yaml");
    const char *const args[] = {"--model", path, "--input-length", "1024", "--target-length",
                                "256", "--matmuls", "--format", "json", NULL};
    cmd_result r = run_cmd(args);
    assert_int_equal(r.rc, 0);
    json_t *j = parse_json(r.out);
    const model_cfg m = load_preset("switch-c-2048.yaml");
    const model_counts c = count_or_fail(&m, 1024, 256);
    print_message("  params %lld flops_per_seq %lld matmul %lld\n",
                  (long long)int_field(j, "params"), (long long)int_field(j, "flops_per_seq"),
                  (long long)int_field(j, "matmul_flops_per_seq"));
    assert_string_equal(json_string_value(json_object_get(j, "model")), "switch-c-2048");
    assert_true(int_field(j, "params") == 1571308810240LL);
    assert_true(int_field(j, "flops_per_seq") == c.flops_per_seq);
    assert_true(int_field(j, "matmul_flops_per_seq") == c.matmul_flops_per_seq);
    assert_true(int_field(j, "train_flops_per_seq") == 3 * c.flops_per_seq);
    assert_true(int_field(j, "params_norms_and_biases") == c.params_norms_and_biases);
    assert_true(int_field(j, "active_params") == c.active_params);
    assert_true(int_field(j, "input_length") == 1024 && int_field(j, "target_length") == 256);
    const json_t *comps = json_object_get(j, "components");
    assert_int_equal(json_array_size(comps), MODEL_COMP_COUNT);
    for (int i = 0; i < MODEL_COMP_COUNT; i++) {
        const json_t *row = json_array_get(comps, (size_t)i);
        assert_string_equal(json_string_value(json_object_get(row, "component")),
                            model_comp_name((model_comp)i));
        assert_true(int_field(row, "params") == c.params_comp[i]);
        assert_true(int_field(row, "flops_per_seq") == c.flops_comp[i]);
    }
    assert_int_equal(json_array_size(json_object_get(j, "layers")), 2); /* Switch only */
    /* Switch-C has only Switch layers: 15 (encoder) + 15 (decoder) product lists + output */
    const json_t *mms = json_object_get(j, "matmuls");
    const size_t want = (size_t)(c.layer[MODEL_LAYER_ENC_SWITCH].nmatmul +
                                 c.layer[MODEL_LAYER_DEC_SWITCH].nmatmul + 1);
    assert_int_equal(json_array_size(mms), want);
    int64_t per_seq = 0;
    for (size_t i = 0; i < json_array_size(mms); i++) {
        const json_t *row = json_array_get(mms, i);
        const char *layer = json_string_value(json_object_get(row, "layer"));
        per_seq += int_field(row, "flops") * (strcmp(layer, "model") == 0 ? 1 : 15);
    }
    assert_true(per_seq == c.matmul_flops_per_seq);
    json_decref(j);
    free_result(&r);
}

static void test_model_cmd_table_csv(void **state)
{
    (void)state;
    char path[4096];
    preset_path(path, sizeof path, "t5-base.yaml");
    const char *const table[] = {"--model", path, NULL};
    cmd_result r = run_cmd(table);
    printf("%s", r.out); /* print_message truncates long text */
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "params_norms_and_biases"));
    assert_non_null(strstr(r.out, "222855168"));
    assert_non_null(strstr(r.out, "relative_position_bias"));
    assert_null(strstr(r.out, "expert.wi")); /* products only with --matmuls */
    assert_null(strstr(r.out, "encoder_switch")); /* a dense model: no Switch layer kinds */
    free_result(&r);
    const char *const csv[] = {"--model", path, "--format", "csv", "--matmuls", NULL};
    r = run_cmd(csv);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "flops_per_seq"));
    assert_non_null(strstr(r.out, "# matmuls"));
    assert_non_null(strstr(r.out, "cross.values"));
    free_result(&r);
}

static void test_model_cmd_usage(void **state)
{
    (void)state;
    char path[4096];
    preset_path(path, sizeof path, "t5-base.yaml");
    const char *const bad[][8] = {
        {NULL},                                          /* --model missing */
        {"--model", path, "--input-length", "0", NULL},  /* below 1 */
        {"--model", path, "--target-length", "1000001", NULL},
        {"--model", path, "--format", "xml", NULL},
        {"--model", path, "extra", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cmd_result r = run_cmd(bad[i]);
        assert_int_equal(r.rc, 2);
        assert_string_equal(r.out, "");
        free_result(&r);
    }
    const char *const missing[] = {"--model", "/nonexistent/model.yaml", NULL};
    cmd_result r = run_cmd(missing);
    print_message("  %s", r.err);
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.err, "/nonexistent/model.yaml"));
    free_result(&r);
    const char *const help[] = {"--help", NULL};
    r = run_cmd(help);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "params_norms_and_biases"));
    assert_non_null(strstr(r.out, "3 x forward"));
    assert_non_null(strstr(r.out, "(default: 512)"));
    free_result(&r);
}

/* ---- the built binary --------------------------------------------------------------- */

static void test_model_cmd_binary(void **state)
{
    (void)state;
    char path[4096];
    preset_path(path, sizeof path, "switch-base-128.yaml");
    cli_child_result r;
    json_t *j = cli_child_json(&r, "model --model '%s' --format json", path);
    print_message("  $ switchsim %s -> exit %d\n", r.args, r.status);
    if (!j) /* it did not exit 0, or its stdout is not JSON */
        fail_msg("%s", r.why);
    cli_child_free(&r);
    const int64_t params = int_field(j, "params"), flops = int_field(j, "flops_per_seq");
    print_message("  params %lld flops_per_seq %lld (%.3f%% from 124B)\n", (long long)params,
                  (long long)flops, 100 * rel_diff((double)flops, 124e9));
    assert_true(params == 7415169024LL);
    assert_true(rel_diff((double)flops, 124e9) <= 0.01);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_count_table9_params),
        cmocka_unit_test(test_model_count_table9_flops),
        cmocka_unit_test(test_model_count_expert_sweep),
        cmocka_unit_test(test_model_count_hand_counted),
        cmocka_unit_test(test_model_count_empty_stacks),
        cmocka_unit_test(test_model_count_identities),
        cmocka_unit_test(test_model_count_top2),
        cmocka_unit_test(test_model_count_errors),
        cmocka_unit_test(test_model_cmd_json),
        cmocka_unit_test(test_model_cmd_table_csv),
        cmocka_unit_test(test_model_cmd_usage),
        cmocka_unit_test(test_model_cmd_binary),
    };
    return cmocka_run_group_tests_name("model_count", tests, NULL, NULL);
}
