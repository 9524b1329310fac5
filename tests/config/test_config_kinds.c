/* This file implements the tests of the four config kinds and the files that use them: every
 * preset in configs/ loads (the folders are listed at test time), derived figures match the
 * published TPU numbers, defaults are applied, include: merges and overrides and keeps the
 * positions of included text, every file in tests/configs/good/ loads, and every malformed
 * file in tests/configs/bad/ fails with the error recorded next to it ("# expect: ..." lines,
 * or NAME.yaml.expect for a file that cannot hold a comment).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/run_cfg.h"
#include "test_config.h"

static char paths[TC_MAX_FILES][TC_PATH];

/* Asserts that path loads; prints the error otherwise. */
static void must_load(ss_status st, const char *path, const ss_err *err)
{
    if (st != SS_OK)
        fail_msg("%s: %s", path, err->msg);
}

void test_config_presets_load(void **state)
{
    (void)state;
    /* folder, kind, presets named in the config issue (at least this many) */
    static const struct {
        const char *dir, *kind;
        size_t min;
    } dirs[] = {
        {"configs/chips", "chip", 4},   /* tpu-v2, tpu-v3, tpu-v4, hypo-256 */
        {"configs/pods", "pod", 7},     /* v3-8/32/512/2048, v4 4x4x4 and 16x16x16, hypo */
        {"configs/models", "model", 13},/* t5 x3, switch-base x6, large, xxl, c, tiny */
        {"configs/runs", "run", 2},
    };
    int failures = 0;
    for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
        char dir[TC_PATH];
        tc_source_path(dir, sizeof dir, dirs[d].dir);
        size_t n = tc_list_yaml(dir, paths, TC_MAX_FILES);
        printf("%s: %zu presets\n", dirs[d].dir, n);
        if (n < dirs[d].min) {
            print_error("%s has %zu presets, expected at least %zu\n", dirs[d].dir, n,
                        dirs[d].min);
            failures++;
        }
        for (size_t i = 0; i < n; i++) {
            ss_err err = {0};
            const char *kind = NULL;
            if (tc_load_any(paths[i], &kind, &err) != SS_OK) {
                print_error("%s\n", err.msg);
                failures++;
            } else if (strcmp(kind, dirs[d].kind) != 0) {
                print_error("%s is a %s in the %s folder\n", paths[i], kind, dirs[d].kind);
                failures++;
            }
        }
    }
    assert_int_equal(failures, 0);
}

/* Relative difference of got from want, printed. */
static double rel_diff(const char *what, double got, double want)
{
    double d = (got - want) / want;
    printf("%s: %.6g (published %.6g, rel. difference %+.4f%%)\n", what, got, want, 100 * d);
    return d < 0 ? -d : d;
}

void test_config_chip_peak(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        double published_tflops; /* REFERENCE.md section 6 */
        double tolerance;
    } chips[] = {
        {"configs/chips/tpu-v3.yaml", 123.2, 0.001}, /* 2*2*128*128*2*0.94 GHz = 123.21 */
        {"configs/chips/tpu-v2.yaml", 45.0, 0.025},  /* "~0.70 GHz" gives 45.9 */
        {"configs/chips/tpu-v4.yaml", 275.0, 0.002}, /* "~1.05 GHz" gives 275.25 */
    };
    for (size_t i = 0; i < sizeof chips / sizeof chips[0]; i++) {
        char path[TC_PATH];
        tc_source_path(path, sizeof path, chips[i].file);
        sim_chip c;
        ss_err err = {0};
        must_load(sim_chip_load(&c, path, &err), path, &err);
        double d = rel_diff(c.name, sim_chip_peak_flops(&c) / 1e12, chips[i].published_tflops);
        assert_true(d <= chips[i].tolerance);
        assert_true(sim_chip_peak_flops(&c) == c.cores_per_chip * sim_chip_core_peak_flops(&c));
    }
}

static sim_pod load_pod(const char *rel)
{
    char path[TC_PATH];
    tc_source_path(path, sizeof path, rel);
    sim_pod p;
    ss_err err = {0};
    must_load(sim_pod_load(&p, path, &err), path, &err);
    return p;
}

void test_config_pod_derived(void **state)
{
    (void)state;
    sim_pod v3 = load_pod("configs/pods/tpu-v3-2048.yaml");
    assert_int_equal(v3.chips, 1024);
    assert_int_equal(v3.cores, 2048);
    assert_int_equal(v3.nwrap, 2);
    assert_true(v3.wraparound[0] && v3.wraparound[1]);
    assert_int_equal(sim_pod_bisection_links(&v3), 64);
    assert_int_equal(sim_pod_links(&v3), 2 * 1024);
    assert_int_equal(sim_pod_diameter_hops(&v3), 32);
    /* published: 6.4 TB/s bisection [REFERENCE.md s6] */
    double bisection_tbps = sim_pod_bisection_links(&v3) * v3.chip.link_gbps / 1e3;
    assert_true(rel_diff("v3 pod bisection TB/s", bisection_tbps, 6.4) < 1e-12);
    assert_true(sim_pod_peak_flops(&v3) == 1024 * sim_chip_peak_flops(&v3.chip));
    assert_true(rel_diff("v3 pod PFLOP/s", sim_pod_peak_flops(&v3) / 1e15, 1024 * 0.1232) < 1e-3);

    sim_pod v3_32 = load_pod("configs/pods/tpu-v3-32.yaml");
    assert_int_equal(v3_32.cores, 32);
    assert_false(v3_32.wraparound[0] || v3_32.wraparound[1]); /* mesh default */
    assert_int_equal(sim_pod_links(&v3_32), 2 * 4 * 3);
    assert_int_equal(sim_pod_bisection_links(&v3_32), 4);
    assert_int_equal(sim_pod_diameter_hops(&v3_32), 6);

    sim_pod v3_8 = load_pod("configs/pods/tpu-v3-8.yaml");
    assert_int_equal(v3_8.chips, 4);
    assert_int_equal(v3_8.cores, 8);

    sim_pod v4 = load_pod("configs/pods/tpu-v4-16x16x16.yaml");
    assert_int_equal(v4.chips, 4096);
    assert_int_equal(v4.cores, 8192);
    assert_int_equal(sim_pod_bisection_links(&v4), 512);
    bisection_tbps = sim_pod_bisection_links(&v4) * v4.chip.link_gbps / 1e3;
    assert_true(rel_diff("v4 pod bisection TB/s", bisection_tbps, 24) < 0.07); /* 45-50 GB/s */

    sim_pod cube = load_pod("configs/pods/tpu-v4-4x4x4.yaml");
    assert_int_equal(cube.cores, 128);
    assert_int_equal(sim_pod_links(&cube), 3 * 16 * 4);
    assert_int_equal(sim_pod_diameter_hops(&cube), 6);
}

void test_config_defaults_applied(void **state)
{
    (void)state;
    char path[TC_PATH];
    ss_err err = {0};
    /* tpu-v2.yaml does not say mxu_accumulation */
    tc_source_path(path, sizeof path, "configs/chips/tpu-v2.yaml");
    sim_chip c;
    must_load(sim_chip_load(&c, path, &err), path, &err);
    assert_int_equal(c.mxu_accumulation, SIM_GEMM_EXACT);
    assert_int_equal(c.denormals, BF16_DENORMALS_FLUSH);

    tc_source_path(path, sizeof path, "configs/models/switch-base-8.yaml");
    model_cfg m;
    must_load(model_cfg_load(&m, path, &err), path, &err);
    assert_int_equal(m.has_switch, 1);
    assert_int_equal(m.sw.num_experts, 8);
    assert_int_equal(m.sw.every, 2);
    assert_true(m.sw.capacity_factor_eval == 2.0);
    assert_true(m.sw.jitter_eps == 1e-2);
    assert_int_equal(m.sw.jitter, MODEL_JITTER_INPUT);
    assert_int_equal(m.sw.router_dtype, MODEL_ROUTER_FP32);
    assert_true(m.sw.z_loss_coef == 0.0);
    assert_true(m.sw.init_scale == 0.1);
    assert_int_equal(m.relative_attention_num_buckets, 32);
    assert_int_equal(m.relative_attention_max_distance, 128);
    assert_int_equal(m.encoder_layers, 12);
    assert_int_equal(m.decoder_layers, 12);
    assert_int_equal(model_cfg_switch_layers(&m, m.encoder_layers), 6);

    tc_source_path(path, sizeof path, "configs/models/t5-base.yaml");
    must_load(model_cfg_load(&m, path, &err), path, &err);
    assert_int_equal(m.has_switch, 0);
    assert_int_equal(m.sw.num_experts, 0);
    assert_int_equal(model_cfg_switch_layers(&m, 12), 0);

    tc_source_path(path, sizeof path, "configs/runs/switch-base-128-v3-32.yaml");
    run_cfg r;
    must_load(run_cfg_load(&r, path, &err), path, &err);
    assert_int_equal(r.batch, 2048); /* from batch_tokens 2^20 / 512 */
    assert_int_equal(r.plan.experts_per_core, 4);
    assert_int_equal(r.plan.microbatches, 4); /* given: 64 sequences at once overflow HBM */
    assert_int_equal(r.plan.remat, 0);        /* default */
    assert_int_equal(r.pod.cores, 32);
    assert_string_equal(r.model.name, "switch-base-128");
    assert_int_equal(r.mode, RUN_MODE_ESTIMATE);
}

void test_config_include_override(void **state)
{
    (void)state;
    char path[TC_PATH];
    ss_err err = {0};
    sim_chip c;
    tc_source_path(path, sizeof path, "tests/configs/good/chip-override.yaml");
    must_load(sim_chip_load(&c, path, &err), path, &err);
    assert_string_equal(c.name, "tpu-v3-fastlink");
    assert_true(c.link_gbps == 200.0);
    assert_true(c.clock_ghz == 0.94); /* from the included tpu-v3.yaml */
    assert_true(c.hbm_bytes == 32ull << 30);

    /* include list: later includes override earlier ones, the file overrides all */
    tc_source_path(path, sizeof path, "tests/configs/good/chip-include-list.yaml");
    must_load(sim_chip_load(&c, path, &err), path, &err);
    assert_true(c.link_gbps == 300.0);
    assert_true(c.link_latency_ns == 500.0);
    assert_int_equal(c.mxu_per_core, 2);

    /* nested mappings merge key by key */
    model_cfg m;
    tc_source_path(path, sizeof path, "tests/configs/good/model-deep-merge.yaml");
    must_load(model_cfg_load(&m, path, &err), path, &err);
    assert_string_equal(m.name, "moe-base-128-top2");
    assert_int_equal(m.sw.top_k, 2);
    assert_true(m.sw.z_loss_coef == 1e-3);
    assert_int_equal(m.sw.num_experts, 128); /* kept from the base */
    assert_int_equal(m.sw.every, 2);
    assert_int_equal(m.d_ff, 3072);

    /* a list replaces the included list; wraparound is derived from the new dims */
    sim_pod p = load_pod("tests/configs/good/pod-list-replace.yaml");
    assert_int_equal(p.ndims, 3);
    assert_int_equal(p.dims[2], 8);
    assert_int_equal(p.chips, 128);
    assert_int_equal(p.nwrap, 3);

    /* an inline chip mapping with its own include */
    p = load_pod("tests/configs/good/pod-inline-chip.yaml");
    assert_string_equal(p.chip.name, "tpu-v3-200");
    assert_true(p.chip.link_gbps == 200.0);
    assert_int_equal(p.chip.cores_per_chip, 2);
    assert_int_equal(p.wraparound[0], 0);
    assert_int_equal(sim_pod_links(&p), 7);
}

void test_config_include_positions(void **state)
{
    (void)state;
    char path[TC_PATH];
    ss_err err = {0};
    cfg_doc *doc = NULL;
    tc_source_path(path, sizeof path, "tests/configs/good/chip-override.yaml");
    must_load(cfg_doc_load(&doc, path, &err), path, &err);
    const cfg_node *root = cfg_doc_root(doc);
    assert_null(cfg_map_get(root, "include"));
    const cfg_node *clock = cfg_map_get(root, "clock_ghz");
    const cfg_node *link = cfg_map_get(root, "link_gbps");
    /* clock_ghz was written on line 13 of the included file, link_gbps on line 4 here */
    assert_non_null(strstr(clock->file, "configs/chips/tpu-v3.yaml"));
    assert_int_equal(clock->line, 13);
    assert_non_null(strstr(link->file, "good/chip-override.yaml"));
    assert_int_equal(link->line, 4);
    assert_int_equal(link->col, 12);
    for (size_t i = 0; i < root->n; i++)
        if (strcmp(root->keys[i], "link_gbps") == 0)
            assert_int_equal(root->key_line[i], 4);
    cfg_doc_free(doc);

    /* an error in an included file names that file and line */
    tc_source_path(path, sizeof path, "tests/configs/bad/include-error-inside.yaml");
    sim_chip c;
    assert_int_equal(sim_chip_load(&c, path, &err), SS_ERR_CONFIG);
    printf("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "bad/inc/chip-bad-clock.yaml:3:12: field 'clock_ghz'"));
}

void test_config_good_files_load(void **state)
{
    (void)state;
    char dir[TC_PATH];
    tc_source_path(dir, sizeof dir, "tests/configs/good");
    size_t n = tc_list_yaml(dir, paths, TC_MAX_FILES);
    assert_true(n >= 6);
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        ss_err err = {0};
        const char *kind;
        if (tc_load_any(paths[i], &kind, &err) != SS_OK) {
            print_error("%s\n", err.msg);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* The expectations of a bad file: "# expect: TEXT" lines, or the lines of PATH.expect. */
static size_t read_expectations(const char *path, char (*out)[512], size_t max)
{
    char side[TC_PATH + 8];
    snprintf(side, sizeof side, "%s.expect", path);
    FILE *f = fopen(side, "r");
    int sidecar = f != NULL;
    if (!f)
        f = fopen(path, "r");
    assert_non_null(f);
    size_t n = 0;
    char line[1024];
    while (fgets(line, sizeof line, f) && n < max) {
        line[strcspn(line, "\r\n")] = '\0';
        const char *text = line;
        if (!sidecar) {
            text = strstr(line, "# expect:");
            if (!text)
                continue;
            text += strlen("# expect:");
            while (*text == ' ')
                text++;
        }
        if (*text)
            snprintf(out[n++], sizeof out[0], "%.*s", (int)sizeof out[0] - 1, text);
    }
    fclose(f);
    return n;
}

void test_config_bad_files_report(void **state)
{
    (void)state;
    char dir[TC_PATH];
    tc_source_path(dir, sizeof dir, "tests/configs/bad");
    size_t n = tc_list_yaml(dir, paths, TC_MAX_FILES);
    printf("%zu malformed files\n", n);
    assert_true(n >= 20);
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        char expect[8][512];
        size_t ne = read_expectations(paths[i], expect, 8);
        int positioned = 0;
        for (size_t k = 0; k < ne; k++)
            positioned |= tc_has_position(expect[k]);
        if (ne == 0 || !positioned) {
            print_error("%s: no '# expect: NAME.yaml:LINE:COL: ...' line\n", paths[i]);
            failures++;
            continue;
        }
        ss_err err = {0};
        const char *kind;
        ss_status st = tc_load_any(paths[i], &kind, &err);
        if (st == SS_OK) {
            print_error("%s: loaded, but should fail with: %s\n", paths[i], expect[0]);
            failures++;
            continue;
        }
        for (size_t k = 0; k < ne; k++) {
            if (!strstr(err.msg, expect[k])) {
                print_error("%s:\n  expected: %s\n  got:      %s\n", paths[i], expect[k],
                            err.msg);
                failures++;
            }
        }
    }
    assert_int_equal(failures, 0);
}
