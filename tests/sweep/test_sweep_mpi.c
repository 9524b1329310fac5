/* This file implements the MPI tests of `switchsim sweep`: the tiny product sweep and the list
 * sweep with a failing point run under `mpirun --oversubscribe -np 2` and `-np 4` (point i on
 * rank i % ranks, rank 0 gathering over MPI), and rank 0's merged results.json and
 * results.csv must equal those of a plain -j 1 run byte for byte, with the exit status of the
 * plain run. Exits 77 (skipped) when the build has no MPI or mpirun is not on PATH.
 *
 * Invariants: mpirun runs with OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM) set (containers run tests as
 * root) and LeakSanitizer off in the ranks (Open MPI's own allocations are not ours); each
 * run's log is printed. Output folders live in a mkdtemp directory removed at the end.
 */
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

#include "cli_child.h"
#include "sweep_check.h"
#include "test_scratch.h"
#include "switchsim_config.h"

static char scratch[64];

/* Runs the sweep under mpirun with `ranks` ranks into scratch/NAME; returns the exit status. */
static int mpirun_sweep(const char *sweep, int ranks, const char *name)
{
    const char *root = cli_child_source_root(), *exe = cli_child_binary();
    assert_non_null(root);
    assert_non_null(exe);
    char cmd[4096], log[256];
    snprintf(log, sizeof log, "%s/%s.log", scratch, name);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
             "ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe -x ASAN_OPTIONS -np %d '%s' "
             "sweep %s -j 1 --no-report -o '%s/%s' > '%s' 2>&1",
             root, ranks, exe, sweep, scratch, name, log);
    printf("$ %s\n", cmd);
    int rc = system(cmd);
    char *text = sweep_check_read(log);
    printf("%s", text);
    free(text);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void plain_sweep(const char *sweep, int want, const char *name)
{
    cli_child_result r = {0};
    sweep_check_run(&r, want, "%s -j 1 --no-report -o %s/%s", sweep, scratch, name);
    cli_child_free(&r);
}

static void expect_same_results(const char *a, const char *b)
{
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s/%s/results.json", scratch, a);
    snprintf(pb, sizeof pb, "%s/%s/results.json", scratch, b);
    sweep_check_same_file(pa, pb);
    snprintf(pa, sizeof pa, "%s/%s/results.csv", scratch, a);
    snprintf(pb, sizeof pb, "%s/%s/results.csv", scratch, b);
    sweep_check_same_file(pa, pb);
}

/* 2 and 4 ranks merge the product sweep exactly as one process does, and the log shows the
 * points spread over the ranks. */
static void test_sweep_mpi_matches_plain(void **state)
{
    (void)state;
    plain_sweep("tests/sweep/product.yaml", 0, "plain");
    static const int ranks[2] = {2, 4};
    for (int k = 0; k < 2; k++) {
        char name[32], log[256];
        snprintf(name, sizeof name, "np%d", ranks[k]);
        assert_int_equal(mpirun_sweep("tests/sweep/product.yaml", ranks[k], name), 0);
        expect_same_results("plain", name);
        snprintf(log, sizeof log, "%s/%s.log", scratch, name);
        char *text = sweep_check_read(log);
        char want[32];
        snprintf(want, sizeof want, "rank %d/%d: ", ranks[k] - 1, ranks[k]);
        assert_true(cli_child_expect_text(text, want));
        free(text);
    }
}

/* A failing point on another rank reaches rank 0 with its error; the status is 1 everywhere. */
static void test_sweep_mpi_failed_point(void **state)
{
    (void)state;
    plain_sweep("tests/sweep/points.yaml", 1, "plain-points");
    assert_int_equal(mpirun_sweep("tests/sweep/points.yaml", 4, "np4-points"), 1);
    expect_same_results("plain-points", "np4-points");
}

static int setup(void **state)
{
    (void)state;
    return test_scratch_make(scratch, sizeof scratch, "switchsim-test-sweep-mpi");
}

static int teardown(void **state)
{
    (void)state;
    return test_scratch_remove(scratch);
}

int main(void)
{
    if (!SWITCHSIM_HAVE_MPI) {
        printf("skipped: this build has no MPI (meson option mpi)\n");
        return 77;
    }
    if (system("command -v mpirun > /dev/null 2>&1") != 0) {
        printf("skipped: mpirun is not on PATH\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep_mpi_matches_plain),
        cmocka_unit_test(test_sweep_mpi_failed_point),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
