/* This file implements the tests of the option parser in cli/opt.c: values and ranges,
 * choices, required options, positional arguments (including negative numbers), --name=value,
 * the usage errors it reports, and -o rewritten to --output before "--" (cli_short_output).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cli.h"

typedef struct {
    long m;
    uint64_t seed;
    double cf;
    int fmt;
    int verbose;
    const char *out;
} opts;

static int parse(opts *o, int argc, char **argv, char **pos, int *npos)
{
    static const char *const modes[] = {"table", "csv", "json", NULL};
    cli_opt table[] = {
        {"m", CLI_OPT_INT, &o->m, "M", "rows", NULL, 1, 1000, 1},
        {"seed", CLI_OPT_U64, &o->seed, "S", "seed", NULL, 0, 0, 0},
        {"cf", CLI_OPT_DOUBLE, &o->cf, "CF", "capacity factor", NULL, 0.5, 4, 0},
        {"format", CLI_OPT_CHOICE, &o->fmt, NULL, "output format", modes, 0, 0, 0},
        {"verbose", CLI_OPT_FLAG, &o->verbose, NULL, "more output", NULL, 0, 0, 0},
        {"out", CLI_OPT_STR, &o->out, "DIR", "output folder", NULL, 0, 0, 0},
    };
    cli_spec spec = {"test [OPTIONS] VALUE...", "A test.", table, 6, 0, 3, NULL};
    return cli_parse(&spec, argc, argv, pos, npos);
}

static void test_opt_parses_all_kinds(void **state)
{
    (void)state;
    opts o = {0, 7, 1.0, 0, 0, NULL};
    char *argv[] = {"test", "--m", "12", "--seed=0x10", "--cf", "1.25", "--format", "json",
                    "--verbose", "--out", "dir", "-1.5", "x", NULL};
    char *pos[13];
    int npos;
    assert_int_equal(parse(&o, 13, argv, pos, &npos), CLI_PARSE_OK);
    assert_int_equal(o.m, 12);
    assert_int_equal(o.seed, 16);
    assert_true(o.cf == 1.25);
    assert_int_equal(o.fmt, 2);
    assert_int_equal(o.verbose, 1);
    assert_string_equal(o.out, "dir");
    assert_int_equal(npos, 2);
    assert_string_equal(pos[0], "-1.5");
    assert_string_equal(pos[1], "x");
}

static void expect_error(const char *a1, const char *a2)
{
    opts o = {0, 7, 1.0, 0, 0, NULL};
    char *argv[] = {"test", "--m", "5", (char *)a1, (char *)a2, NULL};
    char *pos[6];
    int npos;
    assert_int_equal(parse(&o, a2 ? 5 : 4, argv, pos, &npos), CLI_PARSE_ERROR);
}

static void test_opt_rejects_bad_values(void **state)
{
    (void)state;
    expect_error("--m", "0");          /* below range */
    expect_error("--m", "1001");       /* above range */
    expect_error("--m", "12x");        /* not an integer */
    expect_error("--seed", "-1");      /* negative u64 */
    expect_error("--cf", "nan");       /* not finite */
    expect_error("--cf", "5");         /* above range */
    expect_error("--format", "xml");   /* not a choice */
    expect_error("--bogus", "1");      /* unknown option */
    expect_error("--verbose=1", NULL); /* flag with value */
    expect_error("--out", NULL);       /* missing value */
    expect_error("-x", NULL);          /* unknown short option */
}

static void test_opt_required_and_help(void **state)
{
    (void)state;
    opts o = {0, 7, 1.0, 0, 0, NULL};
    char *pos[8];
    int npos;
    char *argv1[] = {"test", "a", NULL};
    assert_int_equal(parse(&o, 2, argv1, pos, &npos), CLI_PARSE_ERROR); /* --m missing */
    char *argv2[] = {"test", "--help", NULL};
    assert_int_equal(parse(&o, 2, argv2, pos, &npos), CLI_PARSE_HELP);
    char *argv3[] = {"test", "--m", "3", "--", "--m", NULL};
    assert_int_equal(parse(&o, 5, argv3, pos, &npos), CLI_PARSE_OK);
    assert_int_equal(npos, 1);
    assert_string_equal(pos[0], "--m");
    char *argv4[] = {"test", "--m", "3", "a", "b", "c", "d", NULL};
    assert_int_equal(parse(&o, 7, argv4, pos, &npos), CLI_PARSE_ERROR); /* at most 3 */
}

/* -o becomes --output wherever it stands before "--", never argv[0] or after "--". */
static void test_opt_short_output(void **state)
{
    (void)state;
    char *argv[] = {"-o", "in.json", "-o", "dir", "-oo", "--", "-o", NULL};
    cli_short_output(7, argv);
    const char *want[] = {"-o", "in.json", "--output", "dir", "-oo", "--", "-o"};
    for (int i = 0; i < 7; i++) {
        printf("argv[%d] = %s (want %s)\n", i, argv[i], want[i]);
        assert_string_equal(argv[i], want[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opt_parses_all_kinds),
        cmocka_unit_test(test_opt_rejects_bad_values),
        cmocka_unit_test(test_opt_required_and_help),
        cmocka_unit_test(test_opt_short_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
