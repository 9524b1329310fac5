/* This file implements the tests of `switchsim check` (the binary named by $SWITCHSIM): all
 * presets validate with exit status 0 and a JSON "configs" array with derived figures, an
 * invalid file gives exit status 1 and its positioned error on stderr, usage errors give 2,
 * and --schema prints a kind's fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_config.h"

static char paths[TC_MAX_FILES][TC_PATH];

/* Reads all of f into a malloc'd string. */
static char *read_all(FILE *f)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (size_t got; (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    buf[n] = '\0';
    return buf;
}

/* Runs "$SWITCHSIM check ARGS" (ARGS already shell-quoted); *out and *err receive stdout and
 * stderr (malloc'd); returns the exit status. */
static int run_check(const char *args, char **out, char **err)
{
    const char *exe = getenv("SWITCHSIM");
    if (!exe)
        fail_msg("SWITCHSIM is not set (run the tests with meson test)");
    char err_path[] = "/tmp/switchsim-check-XXXXXX";
    int fd = mkstemp(err_path);
    assert_true(fd >= 0);
    size_t len = strlen(exe) + strlen(args) + strlen(err_path) + 32;
    char *cmd = malloc(len);
    assert_non_null(cmd);
    snprintf(cmd, len, "'%s' check %s 2>'%s'", exe, args, err_path);
    FILE *p = popen(cmd, "r");
    free(cmd);
    assert_non_null(p);
    *out = read_all(p);
    int status = pclose(p);
    FILE *e = fdopen(fd, "r");
    assert_non_null(e);
    *err = read_all(e);
    fclose(e);
    unlink(err_path);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Appends ' path' (quoted) to args. */
static void add_arg(char *args, size_t cap, const char *path)
{
    size_t used = strlen(args);
    assert_true(used + strlen(path) + 4 < cap);
    snprintf(args + used, cap - used, " '%s'", path);
}

void test_config_check_presets(void **state)
{
    (void)state;
    static char args[TC_MAX_FILES * TC_PATH];
    snprintf(args, sizeof args, "--format json");
    size_t total = 0;
    const char *dirs[] = {"configs/chips", "configs/pods", "configs/models", "configs/runs"};
    for (size_t d = 0; d < 4; d++) {
        char dir[TC_PATH];
        tc_source_path(dir, sizeof dir, dirs[d]);
        size_t n = tc_list_yaml(dir, paths, TC_MAX_FILES);
        for (size_t i = 0; i < n; i++)
            add_arg(args, sizeof args, paths[i]);
        total += n;
    }
    char *out = NULL, *err = NULL;
    int rc = run_check(args, &out, &err);
    if (rc != 0)
        fail_msg("exit %d, stderr: %s", rc, err);
    free(err);
    json_error_t jerr;
    json_t *doc = json_loads(out, 0, &jerr);
    free(out);
    assert_non_null(doc);
    json_t *configs = json_object_get(doc, "configs");
    assert_int_equal(json_array_size(configs), total);
    int seen_v3 = 0;
    for (size_t i = 0; i < total; i++) {
        json_t *c = json_array_get(configs, i);
        assert_true(json_is_true(json_object_get(c, "valid")));
        assert_non_null(json_object_get(c, "derived"));
        if (strcmp(json_string_value(json_object_get(c, "name")), "tpu-v3") == 0) {
            double tf = json_real_value(
                json_object_get(json_object_get(c, "derived"), "peak_bf16_tflops_per_chip"));
            printf("tpu-v3 peak per chip: %.6g TFLOP/s (expected 123.2)\n", tf);
            assert_true(tf > 123.2 * 0.999 && tf < 123.2 * 1.001);
            assert_string_equal(json_string_value(json_object_get(c, "denormals")), "flush");
            seen_v3 = 1;
        }
    }
    assert_true(seen_v3);
    json_decref(doc);

    /* the table format shows one block per file */
    char path[TC_PATH];
    tc_source_path(path, sizeof path, "configs/pods/tpu-v3-2048.yaml");
    args[0] = '\0';
    add_arg(args, sizeof args, path);
    rc = run_check(args, &out, &err);
    free(err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "derived.bisection_links"));
    assert_non_null(strstr(out, "derived.cores"));
    free(out);
}

void test_config_check_invalid_exit_1(void **state)
{
    (void)state;
    char good[TC_PATH], bad[TC_PATH], args[3 * TC_PATH];
    tc_source_path(good, sizeof good, "configs/chips/tpu-v3.yaml");
    tc_source_path(bad, sizeof bad, "tests/configs/bad/chip-unknown-key.yaml");
    snprintf(args, sizeof args, "--format json");
    add_arg(args, sizeof args, good);
    add_arg(args, sizeof args, bad);
    char *out = NULL, *err = NULL;
    int rc = run_check(args, &out, &err);
    assert_int_equal(rc, 1);
    printf("stderr: %s", err);
    assert_non_null(strstr(err, "chip-unknown-key.yaml:15:1: field 'lnk_gbps': unknown key; "
                                "did you mean 'link_gbps'?"));
    free(err);
    json_error_t jerr;
    json_t *doc = json_loads(out, 0, &jerr);
    free(out);
    assert_non_null(doc);
    json_t *configs = json_object_get(doc, "configs");
    assert_int_equal(json_array_size(configs), 2);
    assert_true(json_is_true(json_object_get(json_array_get(configs, 0), "valid")));
    assert_true(json_is_false(json_object_get(json_array_get(configs, 1), "valid")));
    json_decref(doc);

    snprintf(args, sizeof args, "'%s/no-such-file.yaml'", good);
    rc = run_check(args, &out, &err);
    free(out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "cannot read"));
    free(err);
}

void test_config_check_usage(void **state)
{
    (void)state;
    static const struct {
        const char *args;
        int status;
        const char *out, *err; /* expected substrings, or NULL */
    } cases[] = {
        {"", 2, NULL, "expected at least one FILE"},
        {"--format yaml x.yaml", 2, NULL, "--format must be one of"},
        {"--schema gpu", 2, NULL, "unknown kind 'gpu'"},
        {"--schema chip x.yaml", 2, NULL, "--schema takes no FILE arguments"},
        {"--schema model --format csv", 0, "switch.capacity_factor_train", NULL},
        {"--help", 0, "usage: switchsim check", NULL},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char *out = NULL, *err = NULL;
        int rc = run_check(cases[k].args, &out, &err);
        if (rc != cases[k].status || (cases[k].out && !strstr(out, cases[k].out)) ||
            (cases[k].err && !strstr(err, cases[k].err)))
            fail_msg("check %s: exit %d (expected %d)\nstdout: %s\nstderr: %s", cases[k].args,
                     rc, cases[k].status, out, err);
        free(out);
        free(err);
    }
}
