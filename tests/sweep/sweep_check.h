/* This file declares the helpers the sweep tests share (tests/sweep/sweep_check.c): running
 * `switchsim sweep` with an expected exit status, reading a sweep's merged results, and
 * comparing two files byte for byte.
 *
 * Invariants: every run's transcript is printed; the helpers fail the current CMocka test
 * (fail_msg) instead of returning an error.
 */
#ifndef TESTS_SWEEP_SWEEP_CHECK_H
#define TESTS_SWEEP_SWEEP_CHECK_H

#include <jansson.h>

#include "cli_child.h"

/* Runs "switchsim sweep ARGS" in the source root and checks the exit status; the caller frees
 * r with cli_child_free. */
void sweep_check_run(cli_child_result *r, int want_status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* DIR/results.json, parsed (the caller json_decref's it). */
json_t *sweep_check_results(const char *dir);
/* Whole file as a malloc'd string. */
char *sweep_check_read(const char *path);
/* Fails unless files a and b have the same bytes. */
void sweep_check_same_file(const char *a, const char *b);

#endif
