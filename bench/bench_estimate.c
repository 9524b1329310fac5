/* This file implements bench_estimate, which measures the cost of `switchsim estimate` (the
 * whole pipeline: plan, step program, collective pricing, timing engine) on full-scale runs:
 * Switch-Base-128 on 32 TPU v3 cores, Switch-C-2048 and Switch-XXL on 2048 cores (a
 * 1024-chip pod), each with the analytic and the SystemC engine. For each it runs the built
 * command as a child process and prints the wall time, the CPU time (user + system of the
 * command and the processes it waited for: on a shared machine the steadier figure), the peak
 * resident memory (wait4's ru_maxrss: the largest of the command and its SystemC simulation
 * children), how the collectives were priced (--comm) and the predicted step time and
 * examples/s read from its JSON output. --comm passes a pricing mode to every run. A run that
 * exceeds --timeout seconds is killed with its whole process group and reported as such.
 * Invariants: prints to stdout only; never part of `meson test`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bench_util.h"
#include "cli/cli.h"

typedef struct {
    const char *run;    /* configs/runs/<run>.yaml */
    const char *engine; /* analytic | systemc */
} bench_case;

static const bench_case cases[] = {
    {"switch-base-128-v3-32", "analytic"},
    {"switch-base-128-v3-32", "systemc"},
    {"switch-c-2048-v3-2048", "analytic"},
    {"switch-c-2048-v3-2048", "systemc"},
    {"switch-xxl-128-v3-2048", "analytic"},
    {"switch-xxl-128-v3-2048", "systemc"},
};

static void report(const bench_case *c, const bench_child *r, double timeout_s)
{
    if (r->status != 0) {
        printf("%-24s %-9s %8.2f %8.2f %10.0f  %s\n", c->run, c->engine, r->wall_s, r->cpu_s,
               r->maxrss_mib,
               r->status < 0 ? (r->wall_s >= timeout_s ? "killed at --timeout" : "killed")
                             : "failed");
        return;
    }
    json_error_t jerr;
    json_t *o = r->out ? json_loads(r->out, 0, &jerr) : NULL;
    const double step = o ? json_number_value(json_object_get(o, "step_seconds")) : 0;
    const double eps = o ? json_number_value(json_object_get(o, "examples_per_second")) : 0;
    const double ops = o ? json_number_value(json_object_get(o, "lowered_ops")) : 0;
    const char *comm = o ? json_string_value(json_object_get(o, "comm")) : NULL;
    printf("%-24s %-9s %8.2f %8.2f %10.0f  %s, step %.4f s, %.0f examples/s, %.3g engine ops\n",
           c->run, c->engine, r->wall_s, r->cpu_s, r->maxrss_mib, comm ? comm : "?", step, eps,
           ops);
    json_decref(o);
}

int main(int argc, char **argv)
{
    const char *exe = BENCH_SWITCHSIM, *root = BENCH_SOURCE_ROOT, *only = NULL, *comm = NULL;
    double timeout_s = 600;
    uint64_t packet_bytes = 0;
    cli_opt opts[] = {
        {"switchsim", CLI_OPT_STR, &exe, "PATH", "the switchsim binary", NULL, 0, 0, 0},
        {"root", CLI_OPT_STR, &root, "DIR", "source tree (configs/runs/)", NULL, 0, 0, 0},
        {"only", CLI_OPT_STR, &only, "RUN", "only the cases of this run", NULL, 0, 0, 0},
        {"timeout", CLI_OPT_DOUBLE, &timeout_s, "S", "kill a run after S seconds", NULL, 1, 1e6,
         0},
        {"packet-bytes", CLI_OPT_U64, &packet_bytes, "N",
         "pass --packet-bytes N (default: the estimate command's own)", NULL, 1, 1 << 30, 0},
        {"comm", CLI_OPT_STR, &comm, "MODE",
         "pass --comm MODE (lowered, isolated or auto; default: the command's own, auto)", NULL,
         0, 0, 0},
    };
    cli_spec spec = {"bench_estimate [OPTIONS]",
                     "Wall time, CPU time and peak memory of `switchsim estimate` on "
                     "Switch-Base-128\n(32 cores), Switch-C-2048 and Switch-XXL (2048 cores) "
                     "with both engines.",
                     opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, NULL};
    char *pos[argc];
    int npos = 0;
    const int prc = cli_parse(&spec, argc, argv, pos, &npos);
    if (prc != CLI_PARSE_OK)
        return prc == CLI_PARSE_HELP ? 0 : 2;
    printf("%-24s %-9s %8s %8s %10s  %s\n", "run", "engine", "wall_s", "cpu_s", "maxrss_MiB",
           "comm, result");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bench_case *c = &cases[i];
        if (only && strcmp(only, c->run) != 0)
            continue;
        char run[4096], pkt[32];
        snprintf(run, sizeof run, "%s/configs/runs/%s.yaml", root, c->run);
        snprintf(pkt, sizeof pkt, "%llu", (unsigned long long)packet_bytes);
        char *args[12] = {(char *)exe, "estimate", "--run", run, "--engine", (char *)c->engine,
                          "--format", "json"};
        int na = 8;
        if (packet_bytes) {
            args[na++] = "--packet-bytes";
            args[na++] = pkt;
        }
        if (comm) {
            args[na++] = "--comm";
            args[na++] = (char *)comm;
        }
        args[na] = NULL;
        bench_child r = {0};
        if (bench_child_run(args, timeout_s, &r) != 0) {
            fprintf(stderr, "bench_estimate: cannot run %s: %s\n", exe, strerror(errno));
            return 1;
        }
        report(c, &r, timeout_s);
        free(r.out);
        fflush(stdout);
    }
    return 0;
}
