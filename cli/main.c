/* This file implements the switchsim command: the subcommand table, --version and the
 * top-level --help.
 *
 * Invariants: the only exit() calls of the program are here (through main's return); exit
 * statuses are 0 ok, 1 failure, 2 usage error.
 */
#include <stdio.h>
#include <string.h>

#include <cblas.h>

#include "cli.h"
#include "common/bf16.h"
#include "switchsim_config.h"
#if SWITCHSIM_HAVE_SYSTEMC
#include "sim/sc/sc_shim.h"
#endif

static const cli_cmd commands[] = {
    {"check", "validate config files and print what they describe", cmd_check},
    {"numerics", "bf16 rounding and matrix-unit GEMM numerics", cmd_numerics},
    {"op", "time one operation (GEMM, vector op) on one core of a chip", cmd_op},
    {"sim", "run a step program on a pod with the analytic or SystemC engine", cmd_sim},
    {"model", "parameter count and FLOPs per sequence of a model config", cmd_model},
    {"collective", "time a collective (all-reduce, all-to-all, ...) on a pod", cmd_collective},
    {"train", "train a model for real (bf16 numerics, real routing) and write metrics", cmd_train},
    {"estimate", "predict step time, throughput, MFU and memory of a run on a pod", cmd_estimate},
    {"report", "write a Markdown/HTML/SVG/CSV performance report of estimate results", cmd_report},
    {"check-fixture", "compare the C model with a PyTorch reference fixture", cmd_check_fixture},
    {"study", "numerics studies: selective precision (fp32 vs bf16 routers)", cmd_study},
    {"sweep", "run estimates over a grid of run-config overrides and merge them", cmd_sweep},
    {"chakra", "export/import a step program as MLCommons Chakra execution traces", cmd_chakra},
};
static const int ncommands = (int)(sizeof commands / sizeof commands[0]);

static void print_usage(FILE *f)
{
    fprintf(f,
            "usage: switchsim <subcommand> [options]\n"
            "       switchsim --version | --help\n\n"
            "A cycle-approximate simulator of a pod of TPU-style chips running Switch "
            "Transformer training.\n\nsubcommands:\n");
    for (int i = 0; i < ncommands; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'switchsim <subcommand> --help' explains each one. Data goes to stdout "
               "(--format table|csv|json),\ndiagnostics to stderr. Exit status: 0 ok, 1 "
               "failure, 2 usage error.\n");
}

static void print_version(void)
{
    printf("switchsim %s\n", SWITCHSIM_VERSION);
    printf("OpenBLAS %s, core %s, %d thread%s\n", SWITCHSIM_OPENBLAS_VERSION,
           openblas_get_corename(), openblas_get_num_threads(),
           openblas_get_num_threads() == 1 ? "" : "s");
#if SWITCHSIM_HAVE_SYSTEMC
    printf("SystemC %s\n", sim_sc_version());
#else
    printf("SystemC: not built (meson option systemc=disabled)\n");
#endif
    printf("bf16 array conversion: %s\n", bf16_impl_name(bf16_impl_current()));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--version") == 0 || strcmp(sub, "version") == 0) {
        print_version();
        return CLI_EXIT_OK;
    }
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    for (int i = 0; i < ncommands; i++)
        if (strcmp(commands[i].name, sub) == 0)
            return commands[i].run(argc - 1, argv + 1);
    cli_error("usage", "unknown subcommand '%s'", sub);
    print_usage(stderr);
    return CLI_EXIT_USAGE;
}
