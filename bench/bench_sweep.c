/* This file implements bench_sweep, which measures the throughput of `switchsim sweep`
 * (points per second, wall clock) on fixed sweeps: bench/sweep-tiny-32.yaml (32 points of a
 * few milliseconds each: the cost of the sweep machinery itself, one process per point) and
 * configs/sweeps/switch-base-experts-v3-32.yaml (6 points of about 0.3 s: the simulator's
 * cost dominates), each with -j 1, -j 2 and, when mpirun is on PATH, 2 and 4 MPI ranks of
 * -j 1. Every run starts from an empty output folder (nothing resumed) and skips the report.
 * Invariants: prints to stdout only; a run that fails is reported with its exit status and its
 * log is kept (the scratch folder is removed only when every run succeeded); never part of
 * `meson test`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "cli/cli.h"
#include "common/fileio.h"

typedef struct {
    const char *sweep;  /* relative to the source root */
    int points;
} bench_sweep_file;

typedef struct {
    const char *label;
    int ranks;          /* 0: no mpirun */
    int jobs;
} bench_mode;

static const bench_sweep_file sweeps[] = {
    {"bench/sweep-tiny-32.yaml", 32},
    {"configs/sweeps/switch-base-experts-v3-32.yaml", 6},
};
static const bench_mode modes[] = {
    {"-j 1", 0, 1}, {"-j 2", 0, 2}, {"mpirun -np 2, -j 1", 2, 1}, {"mpirun -np 4, -j 1", 4, 1},
};

/* Runs one sweep in one mode into a fresh folder; returns the exit status (-1: killed or not
 * started), *wall the time. */
static int run_once(const char *exe, const char *root, const char *tmp, const bench_sweep_file *s,
                    const bench_mode *m, int rep, double *wall)
{
    char out[512], cmd[8192], launcher[256] = "";
    snprintf(out, sizeof out, "%s/run-%d-%d-%d", tmp, m->ranks, m->jobs, rep);
    *wall = 0;
    if (file_remove_tree(out) != 0) /* the same folder served the previous sweep file */
        return -1;
    if (m->ranks)
        snprintf(launcher, sizeof launcher,
                 "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                 "mpirun --oversubscribe -np %d ",
                 m->ranks);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && %s'%s' sweep %s -j %d --no-report -o '%s' > /dev/null 2> '%s.log'",
             root, launcher, exe, s->sweep, m->jobs, out, out);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    bench_child r = {0};
    const int started = bench_child_run(argv, 0, &r) == 0;
    free(r.out);
    *wall = r.wall_s;
    return started ? r.status : -1;
}

int main(int argc, char **argv)
{
    const char *exe = BENCH_SWITCHSIM, *root = BENCH_SOURCE_ROOT;
    long repeat = 3;
    cli_opt opts[] = {
        {"switchsim", CLI_OPT_STR, &exe, "PATH", "the switchsim binary", NULL, 0, 0, 0},
        {"root", CLI_OPT_STR, &root, "DIR", "source tree", NULL, 0, 0, 0},
        {"repeat", CLI_OPT_INT, &repeat, "R", "runs per case; the best is reported", NULL, 1,
         100, 0},
    };
    cli_spec spec = {"bench_sweep [OPTIONS]",
                     "Points per second of `switchsim sweep` with -j 1, -j 2 and 2 and 4 MPI "
                     "ranks,\non a 32-point sweep of tiny estimates and the 6-point Switch-Base "
                     "experts sweep.",
                     opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, NULL};
    char *pos[argc];
    int npos = 0;
    const int prc = cli_parse(&spec, argc, argv, pos, &npos);
    if (prc != CLI_PARSE_OK)
        return prc == CLI_PARSE_HELP ? 0 : 2;
    char tmp[] = "/tmp/bench_sweep_XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("bench_sweep: mkdtemp");
        return 1;
    }
    int have_mpirun = system("command -v mpirun > /dev/null 2>&1") == 0;
    int failed = 0;
    printf("%-48s %-20s %7s %10s %10s\n", "sweep", "mode", "points", "best_s", "points/s");
    for (size_t i = 0; i < sizeof sweeps / sizeof sweeps[0]; i++)
        for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
            const bench_mode *m = &modes[k];
            if (m->ranks && !have_mpirun)
                continue;
            double best = 1e300;
            int rc = 0;
            for (long r = 0; r < repeat && rc == 0; r++) {
                double wall;
                rc = run_once(exe, root, tmp, &sweeps[i], m, (int)r, &wall);
                if (wall < best)
                    best = wall;
            }
            failed |= rc != 0;
            if (rc != 0)
                printf("%-48s %-20s %7d  failed (exit %d; log in %s)\n", sweeps[i].sweep,
                       m->label, sweeps[i].points, rc, tmp);
            else
                printf("%-48s %-20s %7d %10.3f %10.1f\n", sweeps[i].sweep, m->label,
                       sweeps[i].points, best, sweeps[i].points / best);
            fflush(stdout);
        }
    if (failed)
        return 1; /* the logs stay in tmp */
    return file_remove_tree(tmp) == 0 ? 0 : 1;
}
