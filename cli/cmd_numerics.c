/* This file implements `switchsim numerics`, which dispatches to its two tools: bf16 rounding
 * of fp32 values and one random matrix-unit GEMM against an fp64 reference.
 *
 * Invariants: see cli.h for exit statuses.
 */
#include "cli.h"

int cmd_numerics(int argc, char **argv)
{
    static const cli_cmd tools[] = {
        {"bf16", "round fp32 values to bf16 and print the bits and values", cmd_numerics_bf16},
        {"gemm", "run one random bf16 GEMM on the matrix-unit model and report its error "
                 "against fp64", cmd_numerics_gemm},
    };
    static const cli_group g = {"numerics", "tool", NULL, tools, 2};
    return cli_dispatch(&g, argc, argv);
}
