/* This file implements bench_collectives, which measures how long switchsim takes to
 * simulate collectives on large pods, and how the simulated time compares with the closed
 * forms: a 64 MiB all-reduce (dimension-wise torus algorithm) and an all-to-all with 64 MiB
 * per core (dimension-ordered by default, --a2a direct for the direct one) on k x k tori of
 * 16, 64, 256 and 1024 chips (one core each), with each engine.
 *
 * Per row: the wall time to build the schedule, lower it to a step program and run the engine
 * (CLOCK_MONOTONIC, one run), the simulated time, and the closed form:
 *   all-reduce: 2 (p - 1)/p n / B + 4 (k - 1) alpha (bandwidth and latency terms of the
 *               dimension-wise ring all-reduce, tests/collectives check it within 3%);
 *   all-to-all: max(bisection bound, injection bound): (p/2)^2 m / (2k B) for the 4k
 *               directed links of the cut (2k one way), and (p - 1) m / (4 B) for a core that
 *               injects through its 4 ports at once (engine.h), m = per-pair bytes;
 * the engines' time over it is the "ratio" column. Chip figures: the chip config given
 * (default configs/chips/tpu-v3.yaml) with cores_per_chip forced to 1.
 * Invariants: prints to stdout only; never part of `meson test`; rows whose chip count
 * exceeds --max-chips (per engine) are skipped and say so.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "cli/cli.h"
#include "collectives/coll.h"
#include "sim/engine.h"

typedef struct {
    const char *chip_path;
    long max_chips[2]; /* per engine */
    int a2a_direct;
} bench_opts;

typedef struct {
    double wall_s, sim_s;
    int ok;
    char err[sizeof(ss_err){0}.msg];
} row;

static row simulate(sim_engine_kind e, const coll_desc *d, coll_algo a, const sim_chip *chip)
{
    row r = {0};
    ss_err err = {0};
    coll_schedule s;
    sim_program p;
    sim_result res;
    memset(&p, 0, sizeof p);
    memset(&res, 0, sizeof res);
    const double t0 = bench_now_s();
    int ok = coll_schedule_build(&s, d, a, &err) == SS_OK;
    ok = ok && sim_program_init(&p, sim_topo_ncores(d->topo), &err) == SS_OK;
    ok = ok && coll_schedule_lower(&s, &p, d->cores, 0, NULL, NULL, NULL, &err) == SS_OK;
    const sim_engine_cfg cfg = {chip, d->topo, SIM_PACKET_BYTES_DEFAULT, 0, 0};
    ok = ok && sim_engine_run(e, &p, &cfg, &res, &err) == SS_OK;
    r.wall_s = bench_now_s() - t0;
    r.ok = ok;
    r.sim_s = ok ? res.makespan_s : 0;
    if (!ok)
        snprintf(r.err, sizeof r.err, "%s", err.msg);
    coll_schedule_free(&s);
    sim_program_free(&p);
    sim_result_free(&res);
    return r;
}

static void bench_pod(const bench_opts *o, const sim_chip *chip, int k)
{
    const int dims[2] = {k, k}, wrap[2] = {1, 1};
    sim_topo t;
    ss_err err = {0};
    if (sim_topo_init(&t, 2, dims, wrap, 1, &err) != SS_OK) {
        fprintf(stderr, "bench_collectives: %s\n", err.msg);
        return;
    }
    const int32_t p = k * k;
    int32_t *cores = malloc((size_t)p * sizeof *cores);
    for (int32_t i = 0; i < p; i++)
        cores[i] = i;
    const double B = chip->link_gbps * 1e9, alpha = chip->link_latency_ns * 1e-9;
    const uint64_t n = 64u << 20, m = n / (uint64_t)p;
    const double closed[2] = {
        2.0 * (p - 1) / p * (double)n / B + 4.0 * (k - 1) * alpha,
        fmax((double)(p / 2) * (p / 2) * (double)m / (2.0 * k * B),
             (double)(p - 1) * m / (4.0 * B))};
    const coll_desc d[2] = {{SIM_COLL_ALLREDUCE, p, n / 4, NULL, 4, &t, cores},
                            {SIM_COLL_ALLTOALL, p, n, NULL, 1, &t, cores}};
    const coll_algo a[2] = {COLL_ALGO_TORUS, o->a2a_direct ? COLL_ALGO_DIRECT : COLL_ALGO_DIMORDER};
    for (int kind = 0; kind < 2; kind++)
        for (int e = 0; e < 2; e++) {
            printf("| %5d (%dx%d) | %-9s | %-8s | %-8s | ", p, k, k,
                   kind ? "alltoall" : "allreduce", coll_algo_name(a[kind]),
                   sim_engine_name((sim_engine_kind)e));
            if (p > o->max_chips[e]) {
                printf("skipped (--max-chips) | | | |\n");
                continue;
            }
            fflush(stdout);
            const row r = simulate((sim_engine_kind)e, &d[kind], a[kind], chip);
            if (!r.ok)
                printf("error: %s | | | |\n", r.err);
            else
                printf("%8.3f | %.4e | %.4e | %.3f |\n", r.wall_s, r.sim_s, closed[kind],
                       r.sim_s / closed[kind]);
            fflush(stdout);
        }
    free(cores);
}

int main(int argc, char **argv)
{
    bench_opts o = {"configs/chips/tpu-v3.yaml", {1024, 1024}, 0};
    cli_opt opts[] = {
        {"chip", CLI_OPT_STR, &o.chip_path, "FILE", "chip config (link figures)", NULL, 0, 0, 0},
        {"max-chips-analytic", CLI_OPT_INT, &o.max_chips[0], "N",
         "largest pod for the analytic engine", NULL, 1, 1 << 16, 0},
        {"max-chips-systemc", CLI_OPT_INT, &o.max_chips[1], "N",
         "largest pod for the SystemC engine", NULL, 1, 1 << 16, 0},
        {"a2a-direct", CLI_OPT_FLAG, &o.a2a_direct, NULL,
         "all-to-all with the direct algorithm instead of dimorder", NULL, 0, 0, 0},
    };
    cli_spec spec = {"bench_collectives [OPTIONS]",
                     "Wall time to simulate a 64 MiB all-reduce and a 64 MiB-per-core "
                     "all-to-all on 4x4 ... 32x32 tori with each engine, and the simulated "
                     "time against the closed form.",
                     opts, (int)(sizeof opts / sizeof opts[0]), 0, 0,
                     "example: bench_collectives --max-chips-systemc 256"};
    char *pos[argc];
    int npos = 0;
    const int rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc != CLI_PARSE_OK)
        return rc == CLI_PARSE_HELP ? 0 : 2;
    sim_chip chip;
    ss_err err = {0};
    if (sim_chip_load(&chip, o.chip_path, &err) != SS_OK) {
        fprintf(stderr, "bench_collectives: %s\n", err.msg);
        return 1;
    }
    chip.cores_per_chip = 1;
    printf("chip %s: link %.0f GB/s one way, %.0f ns per hop; 1 core per chip\n\n", chip.name,
           chip.link_gbps, chip.link_latency_ns);
    printf("| chips | kind | algo | engine | wall s | simulated s | closed form s | ratio |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int k = 4; k <= 32; k *= 2)
        bench_pod(&o, &chip, k);
    return 0;
}
