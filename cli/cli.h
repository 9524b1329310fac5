/* This file declares the pieces shared by the switchsim subcommands: the subcommand table
 * entry, a small declarative option parser that also writes each subcommand's --help, and the
 * output-format option.
 *
 * Invariants: a subcommand returns its process exit status: 0 ok, 1 failure, 2 usage error;
 * only main() calls exit(). Data goes to stdout, diagnostics to stderr.
 */
#ifndef SWITCHSIM_CLI_CLI_H
#define SWITCHSIM_CLI_CLI_H

#include <stdint.h>

#include "reports/emit.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand's name */
} cli_cmd;

typedef enum {
    CLI_OPT_FLAG,   /* int: set to 1 when given */
    CLI_OPT_STR,    /* const char * */
    CLI_OPT_INT,    /* long, checked against [min, max] */
    CLI_OPT_U64,    /* uint64_t, decimal or 0x hex, checked against [min, max] */
    CLI_OPT_DOUBLE, /* double, finite, checked against [min, max] */
    CLI_OPT_CHOICE  /* int: index into choices (NULL-terminated) */
} cli_opt_type;

typedef struct {
    const char *name;    /* long name without "--" */
    cli_opt_type type;
    void *dest;
    const char *metavar; /* shown in --help; NULL for flags */
    const char *help;    /* one line; the default is appended when show_default is set */
    const char *const *choices;
    double min, max;     /* for numeric options; min == max == 0 means unbounded */
    int required;
} cli_opt;

typedef struct {
    const char *usage;       /* e.g. "switchsim numerics gemm [OPTIONS]" */
    const char *description; /* paragraph(s) printed under the usage line */
    cli_opt *opts;
    int nopts;
    int min_pos, max_pos;    /* positional argument count bounds; max_pos < 0: unbounded */
    const char *epilog;      /* printed after the options (examples, conventions) */
} cli_spec;

enum { CLI_PARSE_OK = 0, CLI_PARSE_HELP = 1, CLI_PARSE_ERROR = 2 };

/* Parses argv[1..] against spec. Positional arguments are collected into pos (argv storage,
 * at most argc entries) and counted in *npos. Accepts --name=value and --name value; "--"
 * ends options; -h/--help prints help to stdout and returns CLI_PARSE_HELP; any error prints a
 * message and a hint to stderr and returns CLI_PARSE_ERROR. */
int cli_parse(const cli_spec *spec, int argc, char **argv, char **pos, int *npos);
/* Rewrites each "-o" of argv[1..] before a "--" to "--output", for the subcommands whose -o is
 * short for --output (cli_parse knows long names only); call it before cli_parse. */
void cli_short_output(int argc, char **argv);
void cli_print_help(const cli_spec *spec);
/* A subcommand with tools of its own (`switchsim numerics bf16|gemm`, `switchsim op gemm|
 * vector`): prints the tool list for --help (stdout, exit 0) or a missing/unknown tool (stderr,
 * exit 2), else runs the tool with argv shifted so that argv[0] is the tool's name. */
typedef struct {
    const char *command;   /* "numerics" */
    const char *what;      /* "tool" / "operation": the word for one entry */
    const char *intro;     /* a paragraph under the usage line, or NULL */
    const cli_cmd *tools;
    int ntools;
} cli_group;
int cli_dispatch(const cli_group *g, int argc, char **argv);

/* Prints "switchsim: <prefix>: message" to stderr. */
void cli_error(const char *prefix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A new object of the versions a training result records (results.json "versions"): switchsim,
 * OpenBLAS (version, core, threads), the bf16 array kernels in use, jansson. Defined in
 * cmd_train.c; `switchsim study` records the same. */
json_t *cli_versions_json(void);

/* The choices of --format, in emit_format order. */
extern const char *const cli_format_choices[];

/* Subcommands. */
int cmd_check(int argc, char **argv);
int cmd_numerics(int argc, char **argv);
int cmd_numerics_bf16(int argc, char **argv); /* argv[0] = "bf16" */
int cmd_numerics_gemm(int argc, char **argv); /* argv[0] = "gemm" */
int cmd_op(int argc, char **argv);
int cmd_sim(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_collective(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_check_fixture(int argc, char **argv);
int cmd_study(int argc, char **argv);
int cmd_estimate(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_chakra(int argc, char **argv);

#endif
