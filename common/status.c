/* This file implements the error record helpers of status.h: formatting messages into a
 * caller-owned buffer, prefixing context, and the always-on assertion.
 *
 * Invariants: messages are always NUL-terminated and truncated, never overflowed.
 */
#include "status.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ss_status ss_err_vset(ss_err *err, ss_status code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

ss_status ss_err_set(ss_err *err, ss_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ss_err_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void ss_err_prefix(ss_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[512];
    char old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t np = strlen(prefix), no = strlen(old);
    if (np > sizeof err->msg - 3)
        np = sizeof err->msg - 3;
    if (no > sizeof err->msg - 3 - np)
        no = sizeof err->msg - 3 - np;
    memcpy(err->msg, prefix, np);
    memcpy(err->msg + np, ": ", 2);
    memcpy(err->msg + np + 2, old, no);
    err->msg[np + 2 + no] = '\0';
}

const char *ss_status_name(ss_status code)
{
    switch (code) {
    case SS_OK: return "ok";
    case SS_ERR_USAGE: return "usage error";
    case SS_ERR_IO: return "I/O error";
    case SS_ERR_CONFIG: return "config error";
    case SS_ERR_NOMEM: return "out of memory";
    case SS_ERR_RANGE: return "out of range";
    case SS_ERR_DATA: return "data error";
    }
    return "unknown error";
}

void ss_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "switchsim: internal error: assertion '%s' failed at %s:%d\n", expr, file,
            line);
    abort();
}

int ss_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}
