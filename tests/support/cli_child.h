/* This file declares the test support for running the built switchsim binary as a child
 * process: cli_child_run runs "$SWITCHSIM ARGS" in $SWITCHSIM_SOURCE_ROOT with stdin from
 * /dev/null and captures its stdout, stderr and exit status; cli_child_json also parses its
 * stdout as JSON.
 *
 * Invariants: nothing here asserts or exits, so that any test (CMocka or not) can use it;
 * every failure to run or to parse is reported in the result's `why`; after cli_child_run or
 * cli_child_json the result holds malloc'd, NUL-terminated out/err/args (possibly empty,
 * never NULL) that cli_child_free releases.
 */
#ifndef TESTS_SUPPORT_CLI_CHILD_H
#define TESTS_SUPPORT_CLI_CHILD_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

typedef struct {
    int status;     /* exit status 0..255; -1 if it did not exit normally or could not start */
    char *args;     /* the ARGS it ran with (after formatting) */
    char *out;      /* all of stdout, NUL-terminated */
    size_t out_len; /* bytes of out, excluding the NUL */
    char *err;      /* all of stderr, NUL-terminated */
    size_t err_len; /* bytes of err, excluding the NUL */
    char why[512];  /* "" on success; else why the run or the JSON parse failed */
} cli_child_result;

/* $SWITCHSIM_SOURCE_ROOT, or NULL after a message on stderr saying to run through meson test. */
const char *cli_child_source_root(void);

/* $SWITCHSIM (the built binary), or NULL after the same kind of message. */
const char *cli_child_binary(void);

/* Makes the source root the working directory, for tests that read files relative to it;
 * 0, or -1 after a message on stderr (either variable unset, or chdir failed). */
int cli_child_enter_source_root(void);

/* Writes "$SWITCHSIM_SOURCE_ROOT/REL" to buf; returns 0, or -1 (buf "") when the variable is
 * unset or the path does not fit in n bytes (with a message on stderr). */
int cli_child_source_path(char *buf, size_t n, const char *rel);

/* Runs "$SWITCHSIM ARGS" through /bin/sh in the source root, ARGS formatted from fmt (already
 * shell-quoted where needed), stdin from /dev/null. Fills *r (free it with cli_child_free
 * whatever the outcome) and returns r->status. */
int cli_child_run(cli_child_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* cli_child_run into a result that holds an earlier run (or is zeroed): frees that first. */
int cli_child_rerun(cli_child_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* cli_child_run with a va_list. */
int cli_child_vrun(cli_child_result *r, const char *fmt, va_list ap);

/* Runs like cli_child_run and parses stdout as JSON. Returns the document (the caller
 * json_decref's it), or NULL when the command did not exit 0 or its stdout is not JSON;
 * r->why then says which. */
json_t *cli_child_json(cli_child_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* cli_child_json with a result of its own: prints the transcript to stdout (at most max_out
 * bytes of stdout, as cli_child_print) and, on a failure, r->why to stderr; returns the
 * document, or NULL on a failure. */
json_t *cli_child_json_shown(size_t max_out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "$ switchsim ARGS\n  -> exit N\n", then at most max_out bytes of stdout, then stderr,
 * to f: the transcript the CLI tests show for every run. */
void cli_child_print(const cli_child_result *r, FILE *f, size_t max_out);

/* 1 when r exited with status want; else 0, after printing the expected and actual statuses
 * and the whole transcript to stderr. */
int cli_child_expect_status(const cli_child_result *r, int want);

/* 1 when text contains needle; else 0, after printing both to stderr. */
int cli_child_expect_text(const char *text, const char *needle);

/* Releases r's buffers; r may then be reused. */
void cli_child_free(cli_child_result *r);

#endif
