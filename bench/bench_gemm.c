/* This file implements bench_gemm, which measures the matrix-unit GEMM of sim/mxu_gemm.c:
 * fast mode with bf16 operands (rounding and widening included) against a plain fp32
 * cblas_sgemm on the same shapes, and exact mode, in GFLOP/s (2 M N K flops per GEMM), with the
 * best and the median of several rounds (every kind runs once per round, so all see the same
 * background load) and the fraction of this machine's fp32 peak.
 *
 * Peak: cores x clock x FMA units per core x fp32 lanes per FMA x 2 flops. Cores are the
 * online CPUs, the clock is the first "cpu MHz" of /proc/cpuinfo unless --ghz is given, the
 * lanes are 16 with AVX-512F (8 with AVX2/FMA, else 4), and the FMA units per core default to
 * 2 (--fma-units): AMD Zen 4 and Zen 5 and Intel server cores with two AVX-512 FMA ports issue
 * two 512-bit (Zen 4: two 256-bit halves of one) FMAs per cycle; this is an assumption, not a
 * measurement. The clock actually reached (boost) is estimated too, from a chain of
 * dependent integer adds, and printed for comparison; fractions use the stated clock. Exact
 * mode runs on one thread and issues a multiply and an add per product (no
 * fused multiply-add, by design), so its fraction is also given of one core's peak.
 * Invariants: prints to stdout only; never part of `meson test`.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "bench_util.h"
#include "cli/cli.h"
#include "common/bf16.h"
#include "common/rng.h"
#include "sim/mxu_gemm.h"

enum { MAX_REPS = 100 };

typedef struct {
    size_t M, K, N;
} shape;

typedef enum { RUN_FAST_BF16, RUN_SGEMM, RUN_EXACT_BF16 } run_kind;

static const char *const run_names[] = {"fast bf16 (sim_gemm)", "fp32 cblas_sgemm",
                                        "exact bf16 (sim_gemm)"};

typedef struct {
    float *A, *B, *C;
    shape s;
} problem;

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* First "cpu MHz" of /proc/cpuinfo in GHz, or 0 when there is none. */
static double cpuinfo_ghz(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return 0.0;
    char line[256];
    double mhz = 0.0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "cpu MHz", 7) == 0) {
            const char *colon = strchr(line, ':');
            if (colon)
                mhz = strtod(colon + 1, NULL);
            break;
        }
    }
    fclose(f);
    return mhz / 1000.0;
}

/* The clock while running a chain of dependent one-cycle integer adds, in GHz: the best of 50
 * short runs (0.25 ms at 4 GHz), so that a run cut by preemption does not count; 0 off x86-64.
 * Under a hypervisor /proc/cpuinfo shows the nominal clock, and boost clocks may be well above
 * it; this estimate shows the clock the benchmark actually ran at. */
static double measured_ghz(void)
{
#if defined(__x86_64__)
    const long iters = 10000; /* x 100 adds */
    double best = 0.0;
    for (int rep = 0; rep < 50; rep++) {
        uint64_t x = 0;
        const double t0 = bench_now_s();
        for (long i = 0; i < iters; i++)
            __asm__ volatile(".rept 100\n\tadd $1, %0\n\t.endr" : "+r"(x));
        const double ghz = (double)iters * 100.0 / (bench_now_s() - t0) / 1e9;
        best = ghz > best ? ghz : best;
    }
    return best;
#else
    return 0.0;
#endif
}

static int simd_lanes(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return 16;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 8;
    return 4;
}

static int problem_make(problem *p, shape s, uint64_t seed)
{
    p->s = s;
    p->A = malloc(s.M * s.K * sizeof(float));
    p->B = malloc(s.K * s.N * sizeof(float));
    p->C = malloc(s.M * s.N * sizeof(float));
    if (!p->A || !p->B || !p->C)
        return -1;
    rng_state r;
    rng_seed(&r, seed);
    rng_fill_uniform_f32(&r, p->A, s.M * s.K, -1.0f, 1.0f);
    rng_fill_uniform_f32(&r, p->B, s.K * s.N, -1.0f, 1.0f);
    return 0;
}

static void problem_free(problem *p)
{
    free(p->A);
    free(p->B);
    free(p->C);
}

/* One GEMM of the given kind; returns its wall time in seconds, or -1 on error. */
static double time_once(const problem *p, run_kind kind)
{
    const size_t M = p->s.M, K = p->s.K, N = p->s.N;
    sim_gemm_cfg cfg = sim_gemm_cfg_default();
    cfg.mode = kind == RUN_EXACT_BF16 ? SIM_GEMM_EXACT : SIM_GEMM_FAST;
    ss_err err = {0};
    const double t0 = bench_now_s();
    if (kind == RUN_SGEMM) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f,
                    p->A, (int)K, p->B, (int)N, 0.0f, p->C, (int)N);
    } else if (sim_gemm(p->C, N, p->A, K, 0, p->B, N, 0, M, K, N, 0, &cfg, &err) != SS_OK) {
        fprintf(stderr, "bench_gemm: %s\n", err.msg);
        return -1.0;
    }
    return bench_now_s() - t0;
}

/* Prints best and median GFLOP/s of the sorted times t[0..reps) and the fractions of the
 * machine's (and one core's) peak. */
static void report(const problem *p, run_kind kind, double *t, int reps, double peak,
                   double core_peak)
{
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    const double flops = 2.0 * (double)p->s.M * (double)p->s.N * (double)p->s.K;
    const double best = flops / t[0] / 1e9, median = flops / t[reps / 2] / 1e9;
    char dims[64];
    snprintf(dims, sizeof dims, "%zux%zux%zu", p->s.M, p->s.K, p->s.N);
    printf("%-16s %-22s %9.1f %9.1f %9.3f %8.1f%% %8.1f%%\n", dims, run_names[kind], best, median,
           t[0] * 1e3, 100.0 * best * 1e9 / peak, 100.0 * best * 1e9 / core_peak);
}

/* Times the kinds on one problem: one warm-up each, then reps rounds in which every kind runs
 * once, so that all kinds see the same background load; then reports each kind. */
static int bench_shape(const problem *p, const run_kind *kinds, int nkinds, int reps,
                       double peak, double core_peak)
{
    double t[3][MAX_REPS];
    SS_ASSERT(nkinds <= 3 && reps <= MAX_REPS);
    for (int k = 0; k < nkinds; k++)
        if (time_once(p, kinds[k]) < 0.0)
            return -1;
    for (int i = 0; i < reps; i++)
        for (int k = 0; k < nkinds; k++)
            if ((t[k][i] = time_once(p, kinds[k])) < 0.0)
                return -1;
    for (int k = 0; k < nkinds; k++)
        report(p, kinds[k], t[k], reps, peak, core_peak);
    return 0;
}

static int parse(int argc, char **argv, double *ghz, long *fma_units, long *reps)
{
    cli_opt opts[] = {
        {"ghz", CLI_OPT_DOUBLE, ghz, "GHZ", "core clock for the peak (0: /proc/cpuinfo)", NULL,
         0, 10, 0},
        {"fma-units", CLI_OPT_INT, fma_units, "U", "fp32 FMA units per core for the peak", NULL,
         1, 8, 0},
        {"reps", CLI_OPT_INT, reps, "R", "timed repetitions per shape", NULL, 1, MAX_REPS, 0},
    };
    cli_spec spec = {
        "bench_gemm [OPTIONS]",
        "GFLOP/s of the matrix-unit GEMM: fast mode with bf16 operands (rounding and widening\n"
        "included) vs plain fp32 cblas_sgemm on 512^3, 2048^3 and (8192x768)x(768x3072), and\n"
        "exact mode on 512^3. Best and median of R rounds (each kind once per round, after one\n"
        "warm-up each); peak = cores x GHz x FMA units x SIMD lanes x 2.",
        opts,
        (int)(sizeof opts / sizeof opts[0]),
        0,
        0,
        "example:\n  OPENBLAS_CORETYPE=SkylakeX build/bench/bench_gemm --reps 5",
    };
    char *pos[argc];
    int npos = 0;
    return cli_parse(&spec, argc, argv, pos, &npos);
}

int main(int argc, char **argv)
{
    double ghz = 0.0;
    long fma_units = 2, reps = 7;
    const int pr = parse(argc, argv, &ghz, &fma_units, &reps);
    if (pr == CLI_PARSE_HELP)
        return 0;
    if (pr != CLI_PARSE_OK)
        return 2;
    const char *clock_src = "--ghz";
    if (ghz == 0.0) {
        ghz = cpuinfo_ghz();
        clock_src = "/proc/cpuinfo cpu MHz";
    }
    if (ghz <= 0.0) {
        fprintf(stderr, "bench_gemm: no clock in /proc/cpuinfo; pass --ghz\n");
        return 2;
    }
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const int lanes = simd_lanes();
    const double core_peak = ghz * 1e9 * (double)fma_units * lanes * 2.0;
    const double peak = core_peak * (double)cores;
    printf("OpenBLAS %s\ncore %s, %d thread%s\n", openblas_get_config(), openblas_get_corename(),
           openblas_get_num_threads(), openblas_get_num_threads() == 1 ? "" : "s");
    printf("bf16 rounding: %s\n", bf16_impl_name(bf16_impl_current()));
    printf("fp32 peak: %ld cores x %.3f GHz (%s) x %ld FMA units x %d lanes x 2 = %.1f GFLOP/s "
           "(one core %.1f)\n",
           cores, ghz, clock_src, fma_units, lanes, peak / 1e9, core_peak / 1e9);
    const double mghz = measured_ghz();
    if (mghz > 0.0)
        printf("measured clock (dependent adds): %.3f GHz; the peak at that clock is %.1f "
               "GFLOP/s\n",
               mghz, peak / ghz * mghz / 1e9);
    printf("\n");
    printf("%-16s %-22s %9s %9s %9s %9s %9s\n", "MxKxN", "kernel", "best", "median", "best ms",
           "of peak", "of core");

    const shape shapes[] = {{512, 512, 512}, {2048, 2048, 2048}, {8192, 768, 3072}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        problem p;
        if (problem_make(&p, shapes[i], 1 + i) != 0) {
            fprintf(stderr, "bench_gemm: out of memory\n");
            problem_free(&p);
            return 1;
        }
        const run_kind kinds[] = {RUN_FAST_BF16, RUN_SGEMM, RUN_EXACT_BF16};
        const int rc = bench_shape(&p, kinds, i == 0 ? 3 : 2, (int)reps, peak, core_peak);
        problem_free(&p);
        if (rc != 0)
            return 1;
    }
    printf("\nGFLOP/s = 2 M N K / time; \"of core\" is relative to one core's peak (exact mode "
           "runs on one thread).\n");
    return 0;
}
