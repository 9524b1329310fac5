/* This file implements the tests of the `switchsim train` command (cli/cmd_train.c), run as a
 * child process on the tiny test model and run (tests/train/tiny-*.yaml): the summary on
 * stdout, the files of the output directory, no progress bar when stderr is not a terminal,
 * the --resume / --force policy, corrupt-checkpoint and usage errors with their exit statuses.
 *
 * Invariants: runs in the source root (SWITCHSIM_SOURCE_ROOT) with the binary at $SWITCHSIM,
 * in a temporary output directory that it removes.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

static const char *g_bin;
static char g_dir[256];
static char g_out[4096], g_errtext[8192];

static void slurp(const char *path, char *buf, size_t n)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    size_t k = fread(buf, 1, n - 1, f);
    buf[k] = '\0';
    fclose(f);
}

/* Runs `switchsim train ARGS` (ARGS a shell fragment); returns its exit status and leaves its
 * stdout in g_out and stderr in g_errtext. */
static int train(const char *fmt, ...)
{
    char args[2048], cmd[4096], out[512], errf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(out, sizeof out, "%s.stdout", g_dir);
    snprintf(errf, sizeof errf, "%s.stderr", g_dir);
    snprintf(cmd, sizeof cmd, "'%s' train %s >'%s' 2>'%s' </dev/null", g_bin, args, out, errf);
    int st = system(cmd);
    slurp(out, g_out, sizeof g_out);
    slurp(errf, g_errtext, sizeof g_errtext);
    remove(out);
    remove(errf);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

#define TINY "--model tests/train/tiny-switch.yaml --run tests/train/tiny-run.yaml"

static void expect_status(int got, int want)
{
    if (got != want) {
        print_error("exit status %d, expected %d\nstdout:\n%s\nstderr:\n%s\n", got, want, g_out,
                    g_errtext);
        fail();
    }
}

static void expect_in(const char *text, const char *needle)
{
    if (!strstr(text, needle)) {
        print_error("expected '%s' in:\n%s\n", needle, text);
        fail();
    }
}

static int count_train_lines(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/metrics.jsonl", g_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, "\"split\":\"train\"") != NULL;
    fclose(f);
    return n;
}

static void test_train_cli_help(void **state)
{
    (void)state;
    expect_status(train("--help"), 0);
    expect_in(g_out, "usage: switchsim train --model FILE");
    expect_in(g_out, "--resume");
    expect_in(g_out, "--force");
}

static void test_train_cli_usage_errors(void **state)
{
    (void)state;
    expect_status(train("--run tests/train/tiny-run.yaml"), 2); /* --model is required */
    expect_status(train(TINY " --out '%s' --seed abc", g_dir), 2);
    expect_in(g_errtext, "--seed");
    expect_status(train(TINY " --out '%s' --resume --force", g_dir), 2);
    expect_in(g_errtext, "give one of them");
    expect_status(train("--model tests/train/no-such-model.yaml --out '%s'", g_dir), 1);
    expect_in(g_errtext, "no-such-model.yaml");
}

/* A full run, a refused rerun, a resume, then a corrupt checkpoint. */
static void test_train_cli_run_and_resume(void **state)
{
    (void)state;
    expect_status(train(TINY " --out '%s' --format json", g_dir), 0);
    json_t *s = json_loads(g_out, 0, NULL);
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "model")), "tiny-switch-test");
    assert_string_equal(json_string_value(json_object_get(s, "run")), "tiny-train-test");
    assert_int_equal(json_integer_value(json_object_get(s, "steps")), 6);
    assert_true(json_is_real(json_object_get(s, "train_loss")));
    assert_true(json_is_real(json_object_get(s, "eval_loss")));
    assert_true(json_is_real(json_object_get(s, "tokens_per_s")));
    json_decref(s);
    assert_null(strchr(g_errtext, '\r')); /* no progress bar: stderr is not a terminal */
    assert_int_equal(count_train_lines(), 6);
    char path[512];
    snprintf(path, sizeof path, "%s/results.json", g_dir);
    json_t *res = json_load_file(path, 0, NULL);
    assert_non_null(res);
    json_t *v = json_object_get(res, "versions");
    assert_non_null(json_object_get(v, "switchsim"));
    assert_non_null(json_object_get(v, "openblas_core"));
    json_decref(res);

    expect_status(train(TINY " --out '%s'", g_dir), 2);
    expect_in(g_errtext, "already holds a checkpoint");

    expect_status(train(TINY " --out '%s' --resume --steps 8 --format csv", g_dir), 0);
    expect_in(g_out, "steps_run");
    assert_int_equal(count_train_lines(), 8);

    snprintf(path, sizeof path, "%s/checkpoint.bin", g_dir);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 1000, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 1000, SEEK_SET);
    fputc(c ^ 0x20, f);
    fclose(f);
    expect_status(train(TINY " --out '%s' --resume --steps 9", g_dir), 1);
    expect_in(g_errtext, "checksum check failed");
    assert_int_equal(count_train_lines(), 8);

    expect_status(train(TINY " --out '%s' --force --steps 2 --eval-every 0", g_dir), 0);
    assert_int_equal(count_train_lines(), 2);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/switchsim-train-cli-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(g_dir);
    if (d) {
        struct dirent *e;
        char p[4096];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
            remove(p);
        }
        closedir(d);
    }
    rmdir(g_dir);
    return 0;
}

int main(void)
{
    g_bin = getenv("SWITCHSIM");
    const char *root = getenv("SWITCHSIM_SOURCE_ROOT");
    if (!g_bin || !root || chdir(root) != 0) {
        fprintf(stderr, "test_train_cli: set SWITCHSIM and SWITCHSIM_SOURCE_ROOT\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_cli_help),
        cmocka_unit_test(test_train_cli_usage_errors),
        cmocka_unit_test(test_train_cli_run_and_resume),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
