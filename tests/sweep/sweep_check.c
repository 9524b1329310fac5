/* This file implements the helpers the sweep tests share (sweep_check.h).
 *
 * Invariants: nothing here leaves a child process or an open file behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sweep_check.h"

void sweep_check_run(cli_child_result *r, int want_status, const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    cli_child_run(r, "sweep %s", args);
    cli_child_print(r, stdout, 4000);
    if (!cli_child_expect_status(r, want_status))
        fail_msg("switchsim sweep %s: exit %d, want %d", args, r->status, want_status);
}

char *sweep_check_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (len + 2 > cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        buf[len++] = (char)c;
    }
    fclose(f);
    if (!buf)
        buf = calloc(1, 1);
    assert_non_null(buf);
    buf[len] = '\0';
    return buf;
}

json_t *sweep_check_results(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/results.json", dir);
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        fail_msg("%s: %s (line %d)", path, e.text, e.line);
    assert_true(json_is_array(json_object_get(j, "points")));
    return j;
}

void sweep_check_same_file(const char *a, const char *b)
{
    char *ta = sweep_check_read(a), *tb = sweep_check_read(b);
    if (strcmp(ta, tb) != 0) {
        size_t i = 0;
        while (ta[i] && ta[i] == tb[i])
            i++;
        fprintf(stderr, "%s and %s differ at byte %zu:\n--- %.200s\n+++ %.200s\n", a, b, i,
                ta + (i > 40 ? i - 40 : 0), tb + (i > 40 ? i - 40 : 0));
        free(ta);
        free(tb);
        fail_msg("merged results differ");
    }
    free(ta);
    free(tb);
}
