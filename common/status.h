/* This file implements the status codes and the error record that every recoverable failure
 * in switchsim travels through.
 *
 * Invariants: a function that returns a status other than SS_OK has written a message into the
 * caller's ss_err (when one was given); the message names the file, line and field where the
 * input said so. Invariant violations use SS_ASSERT, which stays on in release builds and
 * aborts; only cli/ calls exit().
 */
#ifndef SWITCHSIM_COMMON_STATUS_H
#define SWITCHSIM_COMMON_STATUS_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
    SS_OK = 0,
    SS_ERR_USAGE,  /* bad command-line use */
    SS_ERR_IO,     /* a file could not be read or written */
    SS_ERR_CONFIG, /* a config file is malformed or inconsistent */
    SS_ERR_NOMEM,  /* allocation failed or a size would overflow */
    SS_ERR_RANGE,  /* a user-given size or value is out of range */
    SS_ERR_DATA    /* a data file (checkpoint, fixture) is corrupt */
} ss_status;

/* One error message; fixed size so that reporting never allocates. */
typedef struct {
    ss_status code;
    char msg[1024];
} ss_err;

/* Writes a formatted message into err (if not NULL) and returns code. */
ss_status ss_err_set(ss_err *err, ss_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
ss_status ss_err_vset(ss_err *err, ss_status code, const char *fmt, va_list ap);
/* Prepends "prefix: " to an existing message (keeps the code). */
void ss_err_prefix(ss_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ss_status_name(ss_status code);

/* Aborts with file:line and the expression; never compiled out. */
void ss_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define SS_ASSERT(e) ((e) ? (void)0 : ss_assert_fail(#e, __FILE__, __LINE__))

/* Checked size arithmetic: returns 0 and sets *out on success, -1 on overflow. */
int ss_mul_size(size_t a, size_t b, size_t *out);

#endif
