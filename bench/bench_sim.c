/* This file implements bench_sim, which measures the speed of the pod simulator's two engines
 * (sim/engine.h) on two generated step programs:
 *   (a) random point-to-point messages: N messages between random distinct cores of the pod,
 *       sizes uniform in [1, --max-bytes]; every core issues its sends before its receives
 *       (so the program cannot deadlock);
 *   (b) a chain of --matmuls matmuls (M=K=N=--dim, bf16) on every core.
 * For each it prints the simulated makespan, the wall time of the engine call, the peak
 * resident memory (of this process for the analytic engine; of the forked simulation process
 * for SystemC, which runs in a child: getrusage(RUSAGE_CHILDREN) maxrss), and for SystemC the
 * events (SC_METHOD activations) per second.
 * Invariants: prints to stdout only; never part of `meson test`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench_util.h"
#include "cli/cli.h"
#include "common/rng.h"
#include "sim/engine.h"
#include "sim/pod.h"
#include "switchsim_config.h"

static double maxrss_mib(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

/* Program (a): random messages; sends first on every core, then receives. */
static ss_status build_messages(sim_program *p, int ncores, long n, uint64_t max_bytes,
                                uint64_t seed, ss_err *err)
{
    ss_status st = sim_program_init(p, ncores, err);
    if (st != SS_OK)
        return st;
    int32_t *src = malloc((size_t)n * sizeof *src), *dst = malloc((size_t)n * sizeof *dst);
    uint64_t *bytes = malloc((size_t)n * sizeof *bytes);
    if (!src || !dst || !bytes) {
        free(src), free(dst), free(bytes);
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for %ld messages", n);
    }
    rng_state r;
    rng_seed(&r, seed);
    for (long i = 0; i < n; i++) {
        src[i] = (int32_t)rng_below(&r, (uint64_t)ncores);
        dst[i] = (int32_t)rng_below(&r, (uint64_t)ncores - 1);
        if (dst[i] >= src[i])
            dst[i]++;
        bytes[i] = 1 + rng_below(&r, max_bytes);
    }
    int32_t label = sim_program_intern(p, "msg");
    for (long i = 0; i < n; i++)
        sim_program_add_send(p, src[i], label, dst[i], bytes[i], 0, NULL, SIM_DEPS_PREV);
    for (long i = 0; i < n; i++)
        sim_program_add_recv(p, dst[i], label, src[i], bytes[i], 0, NULL, SIM_DEPS_PREV);
    free(src), free(dst), free(bytes);
    return sim_program_status(p, err);
}

/* Program (b): a chain of matmuls on every core. */
static ss_status build_matmuls(sim_program *p, int ncores, long per_core, uint64_t dim,
                               ss_err *err)
{
    ss_status st = sim_program_init(p, ncores, err);
    if (st != SS_OK)
        return st;
    sim_program_reserve(p, (size_t)ncores * (size_t)per_core, (size_t)ncores * (size_t)per_core);
    int32_t label = sim_program_intern(p, "matmul");
    for (int c = 0; c < ncores; c++)
        for (long i = 0; i < per_core; i++)
            sim_program_add_matmul(p, c, label, dim, dim, dim, SIM_OPERANDS_BF16, NULL,
                                   SIM_DEPS_PREV);
    return sim_program_status(p, err);
}

static int run_one(const char *what, sim_engine_kind kind, const sim_program *p,
                   const sim_engine_cfg *cfg)
{
    sim_result res;
    ss_err err;
    double t0 = bench_now_s();
    ss_status st = sim_engine_run(kind, p, cfg, &res, &err);
    double wall = bench_now_s() - t0;
    if (st != SS_OK) {
        fprintf(stderr, "bench_sim: %s (%s): %s\n", what, sim_engine_name(kind), err.msg);
        return 1;
    }
    double rss = maxrss_mib(kind == SIM_ENGINE_SYSTEMC ? RUSAGE_CHILDREN : RUSAGE_SELF);
    char evs[32] = "-";
    if (kind == SIM_ENGINE_SYSTEMC)
        snprintf(evs, sizeof evs, "%.2fM (%.2fM/s)", (double)res.events / 1e6,
                 (double)res.events / 1e6 / wall);
    printf("%-34s %-9s %10d %14.6f %10.3f %12.1f  %s\n", what, sim_engine_name(kind),
           (int)p->nops, res.makespan_s * 1e3, wall, rss, evs);
    fflush(stdout);
    sim_result_free(&res);
    return 0;
}

int main(int argc, char **argv)
{
    const char *pod_path = "configs/pods/tpu-v3-2048.yaml";
    long messages = 10000, matmuls = 100;
    uint64_t max_bytes = 65536, seed = 1, dim = 1024;
    int engine = 2; /* both */
    static const char *const engines[] = {"analytic", "systemc", "both", NULL};
    cli_opt opts[] = {
        {"pod", CLI_OPT_STR, &pod_path, "FILE", "pod config", NULL, 0, 0, 0},
        {"messages", CLI_OPT_INT, &messages, "N", "random messages in program (a)", NULL, 1,
         1e7, 0},
        {"max-bytes", CLI_OPT_U64, &max_bytes, "B", "largest message of program (a)", NULL, 1,
         1e9, 0},
        {"matmuls", CLI_OPT_INT, &matmuls, "N", "matmuls per core in program (b)", NULL, 1,
         1e5, 0},
        {"dim", CLI_OPT_U64, &dim, "D", "M = K = N of every matmul in (b)", NULL, 1, 65536, 0},
        {"seed", CLI_OPT_U64, &seed, "S", "seed of the message generator", NULL, 0, 0, 0},
        {"engine", CLI_OPT_CHOICE, &engine, NULL, "engines to run", engines, 0, 0, 0},
    };
    cli_spec spec = {"bench_sim [OPTIONS]",
                     "Measures the analytic and SystemC engines on (a) random point-to-point "
                     "messages and (b) chains of matmuls on every core of a pod.",
                     opts, (int)(sizeof opts / sizeof opts[0]), 0, 0, NULL};
    char *pos[1];
    int npos;
    int pr = cli_parse(&spec, argc, argv, pos, &npos);
    if (pr != CLI_PARSE_OK)
        return pr == CLI_PARSE_HELP ? 0 : 2;

    sim_pod pod;
    sim_topo topo;
    ss_err err;
    if (sim_pod_load(&pod, pod_path, &err) != SS_OK || sim_pod_topo(&pod, &topo, &err) != SS_OK) {
        fprintf(stderr, "bench_sim: %s\n", err.msg);
        return 1;
    }
    sim_engine_cfg cfg = {&pod.chip, &topo, SIM_PACKET_BYTES_DEFAULT, 0, 0};
    printf("pod %s: %d chips (%d cores), %s; packets of %d bytes\n", pod.name, pod.chips,
           pod.cores, sim_topology_name(pod.topology), SIM_PACKET_BYTES_DEFAULT);
    printf("%-34s %-9s %10s %14s %10s %12s  %s\n", "program", "engine", "ops", "makespan_ms",
           "wall_s", "peak_rss_MiB", "events");

    sim_program pa, pb;
    char what_a[64], what_b[64];
    snprintf(what_a, sizeof what_a, "(a) %ld messages <= %llu B", messages,
             (unsigned long long)max_bytes);
    snprintf(what_b, sizeof what_b, "(b) %ld matmuls/core %llu^3", matmuls,
             (unsigned long long)dim);
    if (build_messages(&pa, pod.cores, messages, max_bytes, seed, &err) != SS_OK ||
        build_matmuls(&pb, pod.cores, matmuls, dim, &err) != SS_OK) {
        fprintf(stderr, "bench_sim: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    for (int k = 0; k < 2; k++) {
        if (engine != 2 && engine != k)
            continue;
        if (k == SIM_ENGINE_SYSTEMC && !SWITCHSIM_HAVE_SYSTEMC)
            continue;
        rc |= run_one(what_a, (sim_engine_kind)k, &pa, &cfg);
        rc |= run_one(what_b, (sim_engine_kind)k, &pb, &cfg);
    }
    sim_program_free(&pa);
    sim_program_free(&pb);
    return rc;
}
