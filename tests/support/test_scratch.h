/* This file declares the test support for scratch directories: a fresh private directory
 * under /tmp for a test's output files, and its removal with everything under it.
 *
 * Invariants: nothing here asserts or exits, so setup/teardown functions and tests of any kind
 * can use it; every failure is said on stderr and returned as -1; a directory is removed
 * through file_remove_tree (common/fileio.h), never through a shell; with SWITCHSIM_KEEP_TMP
 * set (to anything non-empty) test_scratch_remove keeps the directory and says where it is.
 */
#ifndef TESTS_SUPPORT_TEST_SCRATCH_H
#define TESTS_SUPPORT_TEST_SCRATCH_H

#include <stddef.h>

/* Creates a fresh directory "/tmp/PREFIX-XXXXXX" (mode 0700, mkdtemp) and writes its path to
 * buf (cap bytes). Returns 0, or -1 (buf "") when the path does not fit or mkdtemp fails. */
int test_scratch_make(char *buf, size_t cap, const char *prefix);

/* Removes dir and everything under it. Returns 0 when dir no longer exists (or is kept because
 * SWITCHSIM_KEEP_TMP is set), -1 otherwise. */
int test_scratch_remove(const char *dir);

#endif
