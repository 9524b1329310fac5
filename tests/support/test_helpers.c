/* This file implements the tests of the test support helpers test_pod (test_pod.h) and
 * test_scratch (test_scratch.h): the default chip carries the figures the header states and a
 * pod's engine configuration points at its own chip and topology (one packet over one hop of
 * a ring takes the closed form latency + packet / bandwidth); grids wrap every dimension or
 * none; a scratch directory is fresh, private and under /tmp, a path that does not fit is
 * refused, removal takes the whole tree (not what a link inside points at), and
 * SWITCHSIM_KEEP_TMP keeps it.
 *
 * Invariants: every directory made here is removed before the test returns; the environment
 * variable changed is restored.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <math.h>

#include "test_pod.h"
#include "test_scratch.h"

static void test_helpers_pod_chip_figures(void **state)
{
    (void)state;
    const sim_chip c = test_pod_chip("figures", 2);
    assert_string_equal(c.name, "figures");
    assert_int_equal(c.cores_per_chip, 2);
    assert_true(c.link_gbps == TEST_POD_LINK_GBPS);
    assert_true(c.link_latency_ns == TEST_POD_LINK_LATENCY_NS);
    assert_true(c.hbm_gbps == TEST_POD_HBM_GBPS);
    assert_int_equal(c.ici_ports, TEST_POD_ICI_PORTS);
    assert_int_equal(c.mxu_rows, 128);
}

/* A ring of 4 chips has 4 links each way, a line of 4 has 3 each way; test_pod_topo builds
 * the 2x3x2 torus it is given. */
static void test_helpers_pod_grid_wraps(void **state)
{
    (void)state;
    const sim_topo ring = test_pod_grid(1, 4, 1, 1, 1, 1), line = test_pod_grid(1, 4, 1, 1, 0, 2);
    printf("ring of 4: %d links, line of 4: %d links\n", ring.nlinks, line.nlinks);
    assert_int_equal(ring.nlinks, 8);
    assert_int_equal(line.nlinks, 6);
    assert_int_equal(line.cores_per_chip, 2);
    const int dims[3] = {2, 3, 2}, wraps[3] = {1, 1, 1};
    const sim_topo t = test_pod_topo(3, dims, wraps, 1);
    assert_int_equal(t.nchips, 12);
}

/* One 4 KiB packet from chip 0 to chip 1 of a ring: latency + 4096 B / 100 GB/s. */
static void test_helpers_pod_runs_its_chip(void **state)
{
    (void)state;
    test_pod d;
    test_pod_init(&d, test_pod_chip("ring", 1), test_pod_grid(1, 4, 1, 1, 1, 1), 1);
    assert_ptr_equal(d.cfg.chip, &d.chip);
    assert_ptr_equal(d.cfg.topo, &d.topo);
    assert_int_equal(d.cfg.packet_bytes, TEST_POD_PACKET_BYTES);
    sim_program p = test_pod_program(4);
    sim_program_add_send(&p, 0, 0, 1, TEST_POD_PACKET_BYTES, 0, NULL, 0);
    sim_program_add_recv(&p, 1, 0, 0, TEST_POD_PACKET_BYTES, 0, NULL, 0);
    sim_result r = test_pod_run(SIM_ENGINE_ANALYTIC, &p, &d.cfg);
    const double want = TEST_POD_LINK_LATENCY_NS / 1e9 +
                        (double)TEST_POD_PACKET_BYTES / (TEST_POD_LINK_GBPS * 1e9);
    printf("makespan %.17g s, closed form %.17g s, diff %.3g\n", r.makespan_s, want,
           fabs(r.makespan_s - want));
    assert_true(fabs(r.makespan_s - want) <= 1e-15);
    sim_result_free(&r);
    sim_program_free(&p);
}

static int exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void test_helpers_scratch_make_is_fresh_and_private(void **state)
{
    (void)state;
    char a[64], b[64];
    assert_int_equal(test_scratch_make(a, sizeof a, "switchsim-helpers"), 0);
    assert_int_equal(test_scratch_make(b, sizeof b, "switchsim-helpers"), 0);
    printf("made %s and %s\n", a, b);
    assert_int_equal(strncmp(a, "/tmp/switchsim-helpers-", 23), 0);
    assert_string_not_equal(a, b);
    struct stat sb;
    assert_int_equal(stat(a, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(test_scratch_remove(a), 0);
    assert_int_equal(test_scratch_remove(b), 0);
    assert_false(exists(a));
    assert_false(exists(b));
}

static void test_helpers_scratch_make_refuses_a_short_buffer(void **state)
{
    (void)state;
    char small[16];
    assert_int_equal(test_scratch_make(small, sizeof small, "switchsim-helpers"), -1);
    assert_string_equal(small, "");
    assert_int_equal(test_scratch_remove(small), 0); /* nothing to remove */
}

/* A tree with a subdirectory and a link to a file outside: the tree goes, the file stays. */
static void test_helpers_scratch_remove_takes_the_tree(void **state)
{
    (void)state;
    char dir[64], outside[64], path[160], target[160];
    assert_int_equal(test_scratch_make(dir, sizeof dir, "switchsim-helpers"), 0);
    assert_int_equal(test_scratch_make(outside, sizeof outside, "switchsim-helpers"), 0);
    snprintf(target, sizeof target, "%s/kept.txt", outside);
    write_text(target, "kept\n");
    snprintf(path, sizeof path, "%s/sub", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/sub/a.txt", dir);
    write_text(path, "a\n");
    snprintf(path, sizeof path, "%s/link", dir);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(test_scratch_remove(dir), 0);
    assert_false(exists(dir));
    assert_true(exists(target));
    assert_int_equal(test_scratch_remove(outside), 0);
    assert_false(exists(outside));
}

static void test_helpers_scratch_keep_tmp_keeps_it(void **state)
{
    (void)state;
    char dir[64];
    const char *old = getenv("SWITCHSIM_KEEP_TMP");
    char *saved = old ? strdup(old) : NULL;
    assert_int_equal(test_scratch_make(dir, sizeof dir, "switchsim-helpers"), 0);
    setenv("SWITCHSIM_KEEP_TMP", "1", 1);
    const int kept = test_scratch_remove(dir);
    const int still = exists(dir);
    unsetenv("SWITCHSIM_KEEP_TMP");
    assert_int_equal(test_scratch_remove(dir), 0);
    if (saved)
        setenv("SWITCHSIM_KEEP_TMP", saved, 1);
    free(saved);
    assert_int_equal(kept, 0);
    assert_true(still);
    assert_false(exists(dir));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_helpers_pod_chip_figures),
        cmocka_unit_test(test_helpers_pod_grid_wraps),
        cmocka_unit_test(test_helpers_pod_runs_its_chip),
        cmocka_unit_test(test_helpers_scratch_make_is_fresh_and_private),
        cmocka_unit_test(test_helpers_scratch_make_refuses_a_short_buffer),
        cmocka_unit_test(test_helpers_scratch_remove_takes_the_tree),
        cmocka_unit_test(test_helpers_scratch_keep_tmp_keeps_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
