/* This file implements the declarative option parser of cli.h: it turns a table of options
 * into parsing with range checks and clear usage errors, and into the subcommand's --help.
 *
 * Invariants: a parse error never leaves a partially-valid destination in use, because the
 * caller returns CLI_EXIT_USAGE on CLI_PARSE_ERROR; destinations of options not given keep the
 * caller's defaults, which --help prints.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/status.h"

const char *const cli_format_choices[] = {"table", "csv", "json", NULL};

void cli_error(const char *prefix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "switchsim: %s: ", prefix);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int bounded(const cli_opt *o)
{
    return !(o->min == 0 && o->max == 0);
}

static void print_default(const cli_opt *o)
{
    switch (o->type) {
    case CLI_OPT_STR: {
        const char *s = *(const char **)o->dest;
        if (s)
            printf(" (default: %s)", s);
        break;
    }
    case CLI_OPT_INT: printf(" (default: %ld)", *(long *)o->dest); break;
    case CLI_OPT_U64: printf(" (default: %llu)", (unsigned long long)*(uint64_t *)o->dest); break;
    case CLI_OPT_DOUBLE: printf(" (default: %g)", *(double *)o->dest); break;
    case CLI_OPT_CHOICE: printf(" (default: %s)", o->choices[*(int *)o->dest]); break;
    case CLI_OPT_FLAG: break;
    }
}

void cli_print_help(const cli_spec *spec)
{
    printf("usage: %s\n", spec->usage);
    if (spec->description)
        printf("\n%s\n", spec->description);
    printf("\noptions:\n");
    for (int i = 0; i < spec->nopts; i++) {
        const cli_opt *o = &spec->opts[i];
        char left[96];
        if (o->type == CLI_OPT_CHOICE && !o->metavar) {
            char alts[64] = "";
            for (int c = 0; o->choices[c]; c++) {
                strncat(alts, c ? "|" : "", sizeof alts - strlen(alts) - 1);
                strncat(alts, o->choices[c], sizeof alts - strlen(alts) - 1);
            }
            snprintf(left, sizeof left, "--%s %s", o->name, alts);
        } else if (o->type == CLI_OPT_FLAG) {
            snprintf(left, sizeof left, "--%s", o->name);
        } else {
            snprintf(left, sizeof left, "--%s %s", o->name, o->metavar ? o->metavar : "VALUE");
        }
        printf("  %-28s %s", left, o->help ? o->help : "");
        if (o->required)
            printf(" (required)");
        else
            print_default(o);
        if (bounded(o) && (o->type == CLI_OPT_INT || o->type == CLI_OPT_U64 ||
                           o->type == CLI_OPT_DOUBLE))
            printf(" [%.15g..%.15g]", o->min, o->max);
        printf("\n");
    }
    printf("  %-28s %s\n", "-h, --help", "show this help and exit");
    if (spec->epilog)
        printf("\n%s\n", spec->epilog);
}

static cli_opt *find_opt(const cli_spec *spec, const char *name, size_t len)
{
    for (int i = 0; i < spec->nopts; i++)
        if (strlen(spec->opts[i].name) == len && strncmp(spec->opts[i].name, name, len) == 0)
            return &spec->opts[i];
    return NULL;
}

static int set_value(const cli_opt *o, const char *v)
{
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case CLI_OPT_FLAG: break;
    case CLI_OPT_STR: *(const char **)o->dest = v; return 0;
    case CLI_OPT_INT: {
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end) {
            cli_error("usage", "--%s expects an integer, got '%s'", o->name, v);
            return -1;
        }
        if (bounded(o) && (x < o->min || x > o->max)) {
            cli_error("usage", "--%s must be in [%g, %g], got %ld", o->name, o->min, o->max, x);
            return -1;
        }
        *(long *)o->dest = x;
        return 0;
    }
    case CLI_OPT_U64: {
        if (v[0] == '-') {
            cli_error("usage", "--%s expects a non-negative integer, got '%s'", o->name, v);
            return -1;
        }
        unsigned long long x = strtoull(v, &end, 0);
        if (errno || end == v || *end) {
            cli_error("usage", "--%s expects a non-negative integer, got '%s'", o->name, v);
            return -1;
        }
        if (bounded(o) && ((double)x < o->min || (double)x > o->max)) {
            cli_error("usage", "--%s must be in [%g, %g], got %llu", o->name, o->min, o->max, x);
            return -1;
        }
        *(uint64_t *)o->dest = (uint64_t)x;
        return 0;
    }
    case CLI_OPT_DOUBLE: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x)) {
            cli_error("usage", "--%s expects a finite number, got '%s'", o->name, v);
            return -1;
        }
        if (bounded(o) && (x < o->min || x > o->max)) {
            cli_error("usage", "--%s must be in [%g, %g], got %g", o->name, o->min, o->max, x);
            return -1;
        }
        *(double *)o->dest = x;
        return 0;
    }
    case CLI_OPT_CHOICE:
        for (int c = 0; o->choices[c]; c++) {
            if (strcmp(o->choices[c], v) == 0) {
                *(int *)o->dest = c;
                return 0;
            }
        }
        {
            char alts[128] = "";
            for (int c = 0; o->choices[c]; c++) {
                strncat(alts, c ? ", " : "", sizeof alts - strlen(alts) - 1);
                strncat(alts, o->choices[c], sizeof alts - strlen(alts) - 1);
            }
            cli_error("usage", "--%s must be one of %s; got '%s'", o->name, alts, v);
        }
        return -1;
    }
    return 0;
}

static void group_usage(FILE *f, const cli_group *g)
{
    fprintf(f, "usage: switchsim %s <%s> [options]\n\n", g->command, g->what);
    if (g->intro)
        fprintf(f, "%s\n\n", g->intro);
    fprintf(f, "%ss:\n", g->what);
    for (int i = 0; i < g->ntools; i++)
        fprintf(f, "  %-8s %s\n", g->tools[i].name, g->tools[i].summary);
    fprintf(f, "\n'switchsim %s <%s> --help' explains each one.\n", g->command, g->what);
}

int cli_dispatch(const cli_group *g, int argc, char **argv)
{
    if (argc < 2) {
        group_usage(stderr, g);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        group_usage(stdout, g);
        return CLI_EXIT_OK;
    }
    for (int i = 0; i < g->ntools; i++)
        if (strcmp(argv[1], g->tools[i].name) == 0)
            return g->tools[i].run(argc - 1, argv + 1);
    cli_error("usage", "unknown %s '%s' for switchsim %s", g->what, argv[1], g->command);
    group_usage(stderr, g);
    return CLI_EXIT_USAGE;
}

/* "-1.5", "-.5", "-inf", "-nan" are values, not options. */
static int looks_negative_number(const char *a)
{
    if (a[1] == '.' || (a[1] >= '0' && a[1] <= '9'))
        return 1;
    return strcasecmp(a, "-inf") == 0 || strcasecmp(a, "-infinity") == 0 ||
           strcasecmp(a, "-nan") == 0;
}

void cli_short_output(int argc, char **argv)
{
    static char output[] = "--output";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "-o") == 0)
            argv[i] = output;
    }
}

static int usage_fail(const cli_spec *spec)
{
    fprintf(stderr, "usage: %s\n(see --help)\n", spec->usage);
    return CLI_PARSE_ERROR;
}

int cli_parse(const cli_spec *spec, int argc, char **argv, char **pos, int *npos)
{
    int given[64] = {0};
    SS_ASSERT(spec->nopts <= 64);
    *npos = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0' || looks_negative_number(a)) {
            pos[(*npos)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cli_print_help(spec);
            return CLI_PARSE_HELP;
        }
        if (a[1] != '-') {
            cli_error("usage", "unknown option '%s'", a);
            return usage_fail(spec);
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        cli_opt *o = find_opt(spec, name, len);
        if (!o) {
            cli_error("usage", "unknown option '--%.*s'", (int)len, name);
            return usage_fail(spec);
        }
        given[o - spec->opts] = 1;
        if (o->type == CLI_OPT_FLAG) {
            if (eq) {
                cli_error("usage", "--%s takes no value", o->name);
                return usage_fail(spec);
            }
            *(int *)o->dest = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) {
                cli_error("usage", "--%s needs a value (%s)", o->name,
                          o->metavar ? o->metavar : "VALUE");
                return usage_fail(spec);
            }
            v = argv[++i];
        }
        if (set_value(o, v) != 0)
            return usage_fail(spec);
    }
    for (int k = 0; k < spec->nopts; k++) {
        if (spec->opts[k].required && !given[k]) {
            cli_error("usage", "--%s is required", spec->opts[k].name);
            return usage_fail(spec);
        }
    }
    if (*npos < spec->min_pos) {
        cli_error("usage", "expected at least %d argument%s, got %d", spec->min_pos,
                  spec->min_pos == 1 ? "" : "s", *npos);
        return usage_fail(spec);
    }
    if (spec->max_pos >= 0 && *npos > spec->max_pos) {
        cli_error("usage", "unexpected argument '%s'", pos[spec->max_pos]);
        return usage_fail(spec);
    }
    return CLI_PARSE_OK;
}
