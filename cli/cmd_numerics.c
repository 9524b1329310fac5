/* This file implements `switchsim numerics`, which dispatches to its two tools: bf16 rounding
 * of fp32 values and one random matrix-unit GEMM against an fp64 reference.
 *
 * Invariants: see cli.h for exit statuses.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: switchsim numerics <tool> [options]\n\n"
               "tools:\n"
               "  bf16   round fp32 values to bf16 and print the bits and values\n"
               "  gemm   run one random bf16 GEMM on the matrix-unit model and report its "
               "error against fp64\n\n"
               "'switchsim numerics <tool> --help' explains each one.\n");
}

int cmd_numerics(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "bf16") == 0)
        return cmd_numerics_bf16(argc - 1, argv + 1);
    if (strcmp(argv[1], "gemm") == 0)
        return cmd_numerics_gemm(argc - 1, argv + 1);
    cli_error("usage", "unknown numerics tool '%s'", argv[1]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
