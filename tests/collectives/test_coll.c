/* This file implements the tests of the collectives module (collectives/coll.h): data
 * movement of every kind and algorithm on several group shapes against naive references,
 * schedule invariants, group specs, auto selection, lowering to step programs that both
 * engines run, alpha-beta closed forms of the timing, and link contention.
 *
 * Tolerances (stated once): an fp32 all-reduce/reduce-scatter element must be within
 * p * 2^-24 * sum_i |x_i| of the fp64 sum of the p inputs (each of the p - 1 fp32 additions
 * rounds once by at most 2^-24 of a partial sum bounded by sum |x_i|); a bf16 one within
 * that plus 2^-8 * (|sum| + that) (the single final rounding of the fp32 sum: half an ulp of
 * 8 significant bits).
 * Copying kinds (all-gather, broadcast, all-to-all(v)) must move every byte exactly.
 * Timing closed forms use a chip with B = 100 GB/s per link and direction, alpha = 1 us per
 * hop, 4 KiB packets, one core per chip (p = chips), and must hold within 3% at the sizes
 * given in each test. Every comparison prints the values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "switchsim_config.h"
#include "collectives/coll.h"
#include "common/rng.h"
#include "sim/engine.h"
#include "test_pod.h"

enum { PKT = 4096 };
static const double B_PER_S = TEST_POD_LINK_GBPS * 1e9;
static const double ALPHA_S = TEST_POD_LINK_LATENCY_NS / 1e9;

/* An ndims-dimensional torus x [x y [x z]] (every dimension wrapped). */
static sim_topo make_topo(int ndims, int x, int y, int z, int cores_per_chip)
{
    return test_pod_grid(ndims, x, y, z, 1, cores_per_chip);
}

static int32_t *iota(int32_t n, int32_t first, int32_t stride)
{
    int32_t *c = malloc((size_t)n * sizeof *c);
    assert_non_null(c);
    for (int32_t i = 0; i < n; i++)
        c[i] = first + i * stride;
    return c;
}

static coll_cost test_cost(void)
{
    return (coll_cost){B_PER_S, ALPHA_S, PKT};
}

static double predict(const coll_schedule *s, const coll_desc *d)
{
    const coll_cost c = test_cost();
    double t;
    ss_err err = {0};
    if (coll_schedule_predict(s, d, &c, &t, &err) != SS_OK)
        fail_msg("predict: %s", err.msg);
    return t;
}

static void build_ok(coll_schedule *s, const coll_desc *d, coll_algo a)
{
    ss_err err = {0};
    const ss_status st = a == COLL_ALGO_AUTO ? coll_schedule_build_auto(s, d, &(coll_cost){
                                                   B_PER_S, ALPHA_S, PKT}, &err)
                                             : coll_schedule_build(s, d, a, &err);
    if (st != SS_OK)
        fail_msg("build %s %s p=%d: %s", sim_coll_kind_name(d->kind), coll_algo_name(a), d->p,
                 err.msg);
    if (coll_schedule_check(s, &err) != SS_OK)
        fail_msg("check %s %s p=%d: %s", sim_coll_kind_name(d->kind), coll_algo_name(a), d->p,
                 err.msg);
}

/* ---- group shapes ------------------------------------------------------------------- */

/* A group of p ranks on a topology: 1-D rings of p chips, and box groups of 2-D/3-D tori
 * (whole tori, a row, a column). */
typedef struct {
    const char *name;
    sim_topo topo;
    int32_t p;
    int32_t *cores;
} shape;

static shape ring_shape(int32_t p)
{
    shape s = {"ring", make_topo(1, p, 1, 1, 1), p, iota(p, 0, 1)};
    return s;
}

static int nshapes_made;
static shape shapes[16];

static void make_shapes(void)
{
    const int32_t ps[] = {1, 2, 3, 4, 8, 16};
    nshapes_made = 0;
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        shapes[nshapes_made++] = ring_shape(ps[i]);
    shapes[nshapes_made++] = (shape){"torus 4x4", make_topo(2, 4, 4, 1, 1), 16, iota(16, 0, 1)};
    shapes[nshapes_made++] = (shape){"torus 2x4", make_topo(2, 2, 4, 1, 1), 8, iota(8, 0, 1)};
    shapes[nshapes_made++] = (shape){"torus 2x2x2", make_topo(3, 2, 2, 2, 1), 8, iota(8, 0, 1)};
    shapes[nshapes_made++] = (shape){"torus 4x2x2", make_topo(3, 4, 2, 2, 1), 16,
                                     iota(16, 0, 1)};
    shapes[nshapes_made++] = (shape){"row 1 of 4x4", make_topo(2, 4, 4, 1, 1), 4, iota(4, 4, 1)};
    shapes[nshapes_made++] = (shape){"col 1 of 4x4", make_topo(2, 4, 4, 1, 1), 4, iota(4, 1, 4)};
    shapes[nshapes_made++] = (shape){"3 of 2x3 torus", make_topo(2, 2, 3, 1, 1), 3,
                                     iota(3, 1, 2)};
    /* two cores a chip: the chip's cores are one more grid dimension */
    shapes[nshapes_made++] = (shape){"2x2 torus x2", make_topo(2, 2, 2, 1, 2), 8, iota(8, 0, 1)};
    shapes[nshapes_made++] = (shape){"4x2 row 1 x2", make_topo(2, 4, 2, 1, 2), 8,
                                     iota(8, 8, 1)};
}

static void free_shapes(void)
{
    for (int i = 0; i < nshapes_made; i++)
        free(shapes[i].cores);
    nshapes_made = 0;
}

static coll_desc desc_of(const shape *sh, sim_coll_kind k, uint64_t count, uint32_t esz)
{
    return (coll_desc){k, sh->p, count, NULL, esz, &sh->topo, sh->cores};
}

/* ---- reductions --------------------------------------------------------------------- */

typedef struct {
    float *in32;   /* [p * count] */
    bf16 *in16;
    void **in, **out;
    int32_t p;
    uint64_t count;
} bufs;

static void bufs_free(bufs *b)
{
    for (int32_t r = 0; b->out && r < b->p; r++)
        free(b->out[r]);
    free(b->in32);
    free(b->in16);
    free(b->in);
    free(b->out);
}

static bufs bufs_make(int32_t p, uint64_t count, coll_dtype dt, uint64_t seed)
{
    bufs b = {0};
    b.p = p;
    b.count = count;
    const size_t n = (size_t)p * count + 1;
    b.in32 = malloc(n * sizeof *b.in32);
    b.in16 = malloc(n * sizeof *b.in16);
    b.in = calloc((size_t)p, sizeof *b.in);
    b.out = calloc((size_t)p, sizeof *b.out);
    assert_true(b.in32 && b.in16 && b.in && b.out);
    rng_state rng;
    rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        b.in32[i] = rng_normal_f32(&rng, 0.0f, 1.0f) * (i % 7 == 0 ? 1e3f : 1.0f);
        b.in16[i] = bf16_from_f32(b.in32[i], BF16_DENORMALS_KEEP);
        if (dt == COLL_BF16)
            b.in32[i] = bf16_to_f32(b.in16[i]);
    }
    for (int32_t r = 0; r < p; r++) {
        b.in[r] = dt == COLL_BF16 ? (void *)(b.in16 + (size_t)r * count)
                                  : (void *)(b.in32 + (size_t)r * count);
        b.out[r] = calloc(count + 1, sizeof(float));
        assert_non_null(b.out[r]);
    }
    return b;
}

static double out_value(const bufs *b, coll_dtype dt, int32_t r, uint64_t i)
{
    return dt == COLL_BF16 ? bf16_to_f32(((const bf16 *)b->out[r])[i])
                           : ((const float *)b->out[r])[i];
}

/* Checks rank r's output elements [0, n) against the fp64 sums of global elements
 * [first, first + n); returns the largest error relative to the tolerance. */
static double check_sums(const bufs *b, coll_dtype dt, int32_t r, uint64_t first, uint64_t n)
{
    double worst = 0;
    for (uint64_t i = 0; i < n; i++) {
        double sum = 0, mag = 0;
        for (int32_t q = 0; q < b->p; q++) {
            const double x = b->in32[(size_t)q * b->count + first + i];
            sum += x;
            mag += fabs(x);
        }
        double tol = b->p * ldexp(1.0, -24) * mag + 1e-30;
        if (dt == COLL_BF16) /* the rounding of the fp32 sum, which is off by the above */
            tol += ldexp(1.0, -8) * (fabs(sum) + tol);
        const double e = fabs(out_value(b, dt, r, i) - sum) / tol;
        worst = e > worst ? e : worst;
    }
    return worst;
}

static void run_ok(const coll_schedule *s, coll_dtype dt, bufs *b)
{
    ss_err err = {0};
    if (coll_run(s, dt, BF16_DENORMALS_KEEP, (const void *const *)b->in, b->out, &err) != SS_OK)
        fail_msg("run: %s", err.msg);
}

/* Runs kind with algo on the shape, checks the sums and bit-reproducibility. */
static void reduce_case(const shape *sh, sim_coll_kind kind, coll_algo a, coll_dtype dt,
                        uint64_t count)
{
    const coll_desc d = desc_of(sh, kind, count, dt == COLL_BF16 ? 2 : 4);
    if (!coll_algo_applies(a, &d))
        return;
    coll_schedule s;
    build_ok(&s, &d, a);
    bufs b = bufs_make(sh->p, count, dt, 1234 + (uint64_t)sh->p);
    run_ok(&s, dt, &b);
    double worst = 0;
    for (int32_t r = 0; r < sh->p; r++) {
        const uint64_t first = kind == SIM_COLL_REDUCESCATTER ? s.out_off[r] : 0;
        const double e = check_sums(&b, dt, r, first, s.out_count[r]);
        worst = e > worst ? e : worst;
    }
    /* run again: the same bits */
    bufs b2 = bufs_make(sh->p, count, dt, 1234 + (uint64_t)sh->p);
    run_ok(&s, dt, &b2);
    for (int32_t r = 0; r < sh->p; r++)
        assert_memory_equal(b.out[r], b2.out[r], s.out_count[r] * (dt == COLL_BF16 ? 2 : 4));
    if (worst > 1)
        fail_msg("%s %s %s p=%d %s n=%llu: max error %.3g x tolerance",
                 sim_coll_kind_name(kind), coll_algo_name(s.algo), sh->name, sh->p,
                 dt == COLL_BF16 ? "bf16" : "fp32", (unsigned long long)count, worst);
    print_message("%-13s %-6s %-14s p=%-2d %s n=%-4llu max error %.3f of tolerance\n",
                  sim_coll_kind_name(kind), coll_algo_name(s.algo), sh->name, sh->p,
                  dt == COLL_BF16 ? "bf16" : "fp32", (unsigned long long)count, worst);
    bufs_free(&b);
    bufs_free(&b2);
    coll_schedule_free(&s);
}

/* reduce_case of kind on every shape, with every reducing algorithm and both dtypes, at the
 * element counts big and small. */
static void reduce_every_shape(sim_coll_kind kind, uint64_t big, uint64_t small)
{
    make_shapes();
    const coll_algo algos[] = {COLL_ALGO_RING, COLL_ALGO_BIRING, COLL_ALGO_TORUS, COLL_ALGO_HD};
    for (int i = 0; i < nshapes_made; i++)
        for (size_t a = 0; a < 4; a++)
            for (int dt = 0; dt < 2; dt++) {
                reduce_case(&shapes[i], kind, algos[a], (coll_dtype)dt, big);
                reduce_case(&shapes[i], kind, algos[a], (coll_dtype)dt, small);
            }
    free_shapes();
}

static void test_coll_allreduce_matches_fp64_sum(void **state)
{
    (void)state;
    reduce_every_shape(SIM_COLL_ALLREDUCE, 301, 5);
}

static void test_coll_reducescatter_matches_fp64_sum(void **state)
{
    (void)state;
    reduce_every_shape(SIM_COLL_REDUCESCATTER, 256, 37);
}

/* hd on a non-power-of-two group falls back to ring (documented). */
static void test_coll_hd_falls_back_to_ring(void **state)
{
    (void)state;
    shape sh = ring_shape(6);
    const coll_desc d = desc_of(&sh, SIM_COLL_ALLREDUCE, 60, 4);
    coll_schedule s;
    build_ok(&s, &d, COLL_ALGO_HD);
    assert_int_equal(s.algo, COLL_ALGO_RING);
    assert_int_equal(s.nsteps, 2 * (6 - 1));
    coll_schedule_free(&s);
    shape sh8 = ring_shape(8);
    const coll_desc d8 = desc_of(&sh8, SIM_COLL_ALLREDUCE, 64, 4);
    build_ok(&s, &d8, COLL_ALGO_HD);
    assert_int_equal(s.algo, COLL_ALGO_HD);
    assert_int_equal(s.nsteps, 2 * 3);
    coll_schedule_free(&s);
    free(sh.cores);
    free(sh8.cores);
}

/* ---- copies ------------------------------------------------------------------------- */

/* Random raw bytes per rank (NaN patterns included): copies must preserve them. */
static unsigned char *random_bytes(size_t n, uint64_t seed)
{
    unsigned char *b = malloc(n + 1);
    assert_non_null(b);
    rng_state rng;
    rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)rng_next_u64(&rng);
    return b;
}

static void copy_case(const shape *sh, sim_coll_kind kind, coll_algo a, coll_dtype dt,
                      uint64_t count)
{
    const size_t esz = dt == COLL_BF16 ? 2 : 4;
    const coll_desc d = desc_of(sh, kind, count, (uint32_t)esz);
    if (!coll_algo_applies(a, &d))
        return;
    coll_schedule s;
    build_ok(&s, &d, a);
    unsigned char *all = random_bytes((size_t)sh->p * count * esz, 99 + (uint64_t)sh->p);
    void **in = calloc((size_t)sh->p, sizeof *in), **out = calloc((size_t)sh->p, sizeof *out);
    assert_true(in && out);
    for (int32_t r = 0; r < sh->p; r++) {
        /* allgather: rank r contributes chunk r of the reference; broadcast: rank 0 all */
        in[r] = all + (kind == SIM_COLL_ALLGATHER ? s.in_off[r] * esz : 0);
        out[r] = calloc(count + 1, esz);
    }
    ss_err err = {0};
    if (coll_run(&s, dt, BF16_DENORMALS_KEEP, (const void *const *)in, out, &err) != SS_OK)
        fail_msg("%s", err.msg);
    for (int32_t r = 0; r < sh->p; r++) {
        assert_int_equal(s.out_count[r], count);
        if (memcmp(out[r], all, count * esz) != 0)
            fail_msg("%s %s %s p=%d: rank %d's output differs", sim_coll_kind_name(kind),
                     coll_algo_name(a), sh->name, sh->p, r);
        free(out[r]);
    }
    free(in);
    free(out);
    free(all);
    coll_schedule_free(&s);
}

static void test_coll_allgather_and_broadcast_copy_exactly(void **state)
{
    (void)state;
    make_shapes();
    const coll_algo algos[] = {COLL_ALGO_RING, COLL_ALGO_BIRING, COLL_ALGO_TORUS, COLL_ALGO_HD,
                               COLL_ALGO_TREE};
    for (int i = 0; i < nshapes_made; i++)
        for (size_t a = 0; a < 5; a++)
            for (int dt = 0; dt < 2; dt++) {
                copy_case(&shapes[i], SIM_COLL_ALLGATHER, algos[a], (coll_dtype)dt, 203);
                copy_case(&shapes[i], SIM_COLL_BROADCAST, algos[a], (coll_dtype)dt, 203);
                copy_case(&shapes[i], SIM_COLL_BROADCAST, algos[a], (coll_dtype)dt, 3);
            }
    free_shapes();
}

/* alltoallv: random counts with zeros, an empty sender and an empty receiver. */
static uint64_t *random_matrix(int32_t p, uint64_t seed)
{
    uint64_t *m = malloc((size_t)p * (size_t)p * sizeof *m);
    assert_non_null(m);
    rng_state rng;
    rng_seed(&rng, seed);
    for (int32_t i = 0; i < p; i++)
        for (int32_t j = 0; j < p; j++) {
            const uint64_t v = rng_below(&rng, 4) == 0 ? 0 : rng_below(&rng, 40);
            m[(size_t)i * p + j] = (p > 2 && (i == 1 || j == p - 1)) ? 0 : v;
        }
    return m;
}

static void a2a_case(const shape *sh, coll_algo a, int v, size_t esz)
{
    uint64_t *m = v ? random_matrix(sh->p, 7 + (uint64_t)sh->p) : NULL;
    coll_desc d = desc_of(sh, v ? SIM_COLL_ALLTOALLV : SIM_COLL_ALLTOALL, 13 * (uint64_t)sh->p + 5,
                          (uint32_t)esz);
    d.matrix = m;
    if (!coll_algo_applies(a, &d)) {
        free(m);
        return;
    }
    coll_schedule s;
    build_ok(&s, &d, a);
    const int32_t p = sh->p;
    unsigned char **in = calloc((size_t)p, sizeof *in), **out = calloc((size_t)p, sizeof *out);
    assert_true(in && out);
    for (int32_t r = 0; r < p; r++) {
        in[r] = random_bytes(s.in_count[r] * esz, 1000 + (uint64_t)r);
        out[r] = malloc(s.out_count[r] * esz + 1);
    }
    ss_err err = {0};
    if (coll_run(&s, esz == 2 ? COLL_BF16 : COLL_FP32, BF16_DENORMALS_KEEP,
                 (const void *const *)in, (void *const *)out, &err) != SS_OK)
        fail_msg("%s", err.msg);
    uint64_t moved = 0;
    for (int32_t t = 0; t < p; t++) {
        uint64_t at = 0;
        for (int32_t o = 0; o < p; o++) { /* block (o, t) from o's send buffer */
            uint64_t from = 0;
            for (int32_t j = 0; j < t; j++)
                from += v ? m[(size_t)o * p + j] : coll_part_len(d.count, p, j);
            const uint64_t n = v ? m[(size_t)o * p + t] : coll_part_len(d.count, p, t);
            if (memcmp(out[t] + at * esz, in[o] + from * esz, n * esz) != 0)
                fail_msg("%s %s p=%d: block %d -> %d differs", coll_algo_name(a), sh->name, p, o,
                         t);
            at += n;
            moved += n;
        }
        assert_int_equal(at, s.out_count[t]);
    }
    for (int32_t r = 0; r < p; r++) {
        free(in[r]);
        free(out[r]);
    }
    print_message("alltoall%s %-8s %-14s p=%-2d: %llu elements moved exactly\n", v ? "v" : " ",
                  coll_algo_name(a), sh->name, p, (unsigned long long)moved);
    free(in);
    free(out);
    free(m);
    coll_schedule_free(&s);
}

static void test_coll_alltoallv_moves_every_byte(void **state)
{
    (void)state;
    make_shapes();
    for (int i = 0; i < nshapes_made; i++)
        for (int v = 0; v < 2; v++)
            for (size_t esz = 2; esz <= 4; esz += 2) {
                a2a_case(&shapes[i], COLL_ALGO_DIRECT, v, esz);
                a2a_case(&shapes[i], COLL_ALGO_DIMORDER, v, esz);
            }
    free_shapes();
}

/* ---- schedule invariants ------------------------------------------------------------ */

static uint64_t network_elems(const coll_schedule *s)
{
    return coll_schedule_bytes(s) / s->elem_bytes;
}

static void test_coll_schedules_count_every_chunk(void **state)
{
    (void)state;
    make_shapes();
    for (int i = 0; i < nshapes_made; i++) {
        const shape *sh = &shapes[i];
        const uint64_t n = 64 * (uint64_t)sh->p, p = (uint64_t)sh->p;
        for (int a = 1; a < COLL_ALGO_COUNT; a++) {
            for (int k = 0; k < SIM_COLL_KIND_COUNT; k++) {
                if (k == SIM_COLL_ALLTOALLV)
                    continue;
                const coll_desc d = desc_of(sh, (sim_coll_kind)k, n, 4);
                if (!coll_algo_applies((coll_algo)a, &d))
                    continue;
                coll_schedule s;
                build_ok(&s, &d, (coll_algo)a);
                for (size_t x = 0; x < s.nx; x++) /* no core sends to itself */
                    assert_true(s.x[x].src != s.x[x].dst || k == SIM_COLL_ALLTOALL);
                const uint64_t got = network_elems(&s);
                /* bandwidth-optimal algorithms move exactly the textbook volume */
                uint64_t want = got;
                if (k == SIM_COLL_ALLREDUCE && a != COLL_ALGO_TORUS)
                    want = 2 * (p - 1) * n;
                else if (k == SIM_COLL_REDUCESCATTER || k == SIM_COLL_ALLGATHER)
                    want = a == COLL_ALGO_TORUS ? got : (p - 1) * n;
                else if (k == SIM_COLL_ALLTOALL && a == COLL_ALGO_DIRECT)
                    want = (p - 1) * n;
                else if (k == SIM_COLL_BROADCAST)
                    want = (p - 1) * n;
                if (got != want)
                    fail_msg("%s %s %s p=%d: %llu elements on the network, want %llu",
                             sim_coll_kind_name((sim_coll_kind)k), coll_algo_name(s.algo),
                             sh->name, sh->p, (unsigned long long)got, (unsigned long long)want);
                coll_schedule_free(&s);
            }
        }
    }
    free_shapes();
}

static void test_coll_torus_and_barrier_step_counts(void **state)
{
    (void)state;
    shape t = {"torus 4x4", make_topo(2, 4, 4, 1, 1), 16, iota(16, 0, 1)};
    coll_schedule s;
    const coll_desc d = desc_of(&t, SIM_COLL_ALLREDUCE, 1 << 12, 4);
    build_ok(&s, &d, COLL_ALGO_TORUS);
    assert_int_equal(s.nsteps, 4 * (4 - 1)); /* RS y, RS x, AG x, AG y */
    /* torus all-reduce moves 2(p-1)/p n per rank, like a ring */
    assert_int_equal(network_elems(&s), 2 * 15 * (1 << 12));
    coll_schedule_free(&s);
    const coll_desc b = desc_of(&t, SIM_COLL_BARRIER, 0, 4);
    build_ok(&s, &b, COLL_ALGO_DISSEM);
    assert_int_equal(s.nsteps, 4);
    assert_int_equal(s.nx, 16 * 4);
    coll_schedule_free(&s);
    const coll_desc a2a = desc_of(&t, SIM_COLL_ALLTOALL, 16 * 10, 4);
    build_ok(&s, &a2a, COLL_ALGO_DIMORDER);
    assert_int_equal(s.nsteps, 2);
    coll_schedule_free(&s);
    free(t.cores);
}

static void test_coll_errors(void **state)
{
    (void)state;
    shape sh = ring_shape(4);
    int32_t odd[4] = {0, 2, 1, 3}; /* not row-major: no torus */
    coll_desc d = desc_of(&sh, SIM_COLL_ALLREDUCE, 100, 4);
    d.cores = odd;
    coll_schedule s;
    ss_err err = {0};
    assert_int_equal(coll_schedule_build(&s, &d, COLL_ALGO_TORUS, &err), SS_ERR_RANGE);
    assert_non_null(strstr(err.msg, "box of chips"));
    d.cores = sh.cores;
    assert_int_equal(coll_schedule_build(&s, &d, COLL_ALGO_TREE, &err), SS_ERR_RANGE);
    assert_non_null(strstr(err.msg, "tree"));
    d.elem_bytes = 3;
    assert_int_equal(coll_schedule_build(&s, &d, COLL_ALGO_RING, &err), SS_ERR_RANGE);
    coll_algo a;
    assert_int_equal(coll_algo_parse("bogus", &a), -1);
    assert_int_equal(coll_algo_parse("", &a), 0);
    assert_int_equal(a, COLL_ALGO_AUTO);
    free(sh.cores);
}

/* ---- groups ------------------------------------------------------------------------- */

static void expect_group(const sim_topo *t, const char *spec, const int32_t *want, int32_t n)
{
    int32_t *c, got;
    ss_err err = {0};
    if (coll_group_parse(spec, t, &c, &got, &err) != SS_OK)
        fail_msg("%s: %s", spec, err.msg);
    assert_int_equal(got, n);
    assert_memory_equal(c, want, (size_t)n * sizeof *c);
    free(c);
}

static void test_coll_group_specs(void **state)
{
    (void)state;
    const sim_topo t = make_topo(2, 4, 4, 1, 1);
    expect_group(&t, "0-2,8", (int32_t[]){0, 1, 2, 8}, 4);
    expect_group(&t, "row:1", (int32_t[]){4, 5, 6, 7}, 4);
    expect_group(&t, "col:2", (int32_t[]){2, 6, 10, 14}, 4);
    const sim_topo t3 = make_topo(3, 2, 2, 2, 2);
    expect_group(&t3, "plane:z=1", (int32_t[]){8, 9, 10, 11, 12, 13, 14, 15}, 8);
    int32_t *c, n;
    ss_err err = {0};
    assert_int_equal(coll_group_parse("all", &t, &c, &n, &err), SS_OK);
    assert_int_equal(n, 16);
    int ext[COLL_GRID_DIMS];
    assert_true(coll_group_grid(&t, c, n, ext));
    assert_int_equal(ext[0] * 1000 + ext[1] * 100 + ext[2] * 10 + ext[3], 1441);
    free(c);
    /* both cores of every chip of plane z=1 of a 2x2x2 torus: a box with c = 2 */
    assert_int_equal(coll_group_parse("plane:z=1", &t3, &c, &n, &err), SS_OK);
    assert_true(coll_group_grid(&t3, c, n, ext));
    assert_int_equal(ext[0] * 1000 + ext[1] * 100 + ext[2] * 10 + ext[3], 2221);
    c[0] = 9; /* not chip-major any more */
    c[1] = 8;
    assert_true(coll_group_grid(&t3, c, n, ext));
    c[1] = 10; /* chip 4 has one core, chip 5 three */
    c[2] = 8;
    assert_false(coll_group_grid(&t3, c, n, ext));
    free(c);
    const char *bad[] = {"3-1", "0,0", "row:9", "foo", "1,", "16", "plane:w=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (coll_group_parse(bad[i], &t, &c, &n, &err) == SS_OK)
            fail_msg("group '%s' should fail", bad[i]);
        print_message("group '%s': %s\n", bad[i], err.msg);
    }
}

/* ---- auto --------------------------------------------------------------------------- */

static void test_coll_auto_picks_the_fastest_prediction(void **state)
{
    (void)state;
    shape t = {"torus 4x4", make_topo(2, 4, 4, 1, 1), 16, iota(16, 0, 1)};
    const uint64_t sizes[] = {256, 1 << 24};
    for (size_t i = 0; i < 2; i++) {
        const coll_desc d = desc_of(&t, SIM_COLL_ALLREDUCE, sizes[i], 4);
        coll_schedule best;
        build_ok(&best, &d, COLL_ALGO_AUTO);
        const double tb = predict(&best, &d);
        for (int a = 1; a < COLL_ALGO_COUNT; a++) {
            if (!coll_algo_applies((coll_algo)a, &d))
                continue;
            coll_schedule s;
            build_ok(&s, &d, (coll_algo)a);
            const double ts = predict(&s, &d);
            print_message("allreduce %llu B: %-6s predicted %.3e s%s\n",
                          (unsigned long long)sizes[i] * 4, coll_algo_name((coll_algo)a), ts,
                          s.algo == best.algo ? " (auto)" : "");
            assert_true(tb <= ts);
            coll_schedule_free(&s);
        }
        /* small: latency-bound: 12 hops of alpha (torus: 4 x 3 steps of 1 hop; hd: 8 steps
         * of 1 or 2 hops) beat the rings' 30 */
        if (i == 0)
            assert_true(best.algo == COLL_ALGO_HD || best.algo == COLL_ALGO_TORUS);
        coll_schedule_free(&best);
    }
    free(t.cores);
}

/* ---- lowering and engines ----------------------------------------------------------- */

static int have_systemc(void)
{
    return SWITCHSIM_HAVE_SYSTEMC;
}

static sim_result run_engine(sim_engine_kind k, const sim_program *p, const sim_chip *chip,
                             const sim_topo *t, int record)
{
    const sim_engine_cfg cfg = {chip, t, PKT, record, 0};
    return test_pod_run(k, p, &cfg);
}

/* A program with a matmul, an all-reduce (hint), a barrier, an alltoallv (auto) and a matmul
 * after each on 8 cores of a 2x4 torus; lowered, validated and run on both engines. */
static void test_coll_program_lowering_runs_on_both_engines(void **state)
{
    (void)state;
    const sim_topo t = make_topo(2, 4, 2, 1, 1);
    const sim_chip chip = test_pod_chip("test-chip", 1);
    sim_program in, out;
    ss_err err = {0};
    assert_int_equal(sim_program_init(&in, 8, &err), SS_OK);
    int32_t all[8], half[4] = {0, 1, 2, 3};
    for (int i = 0; i < 8; i++)
        all[i] = i;
    const int32_t g = sim_program_add_group(&in, all, 8), gh = sim_program_add_group(&in, half, 4);
    uint64_t *m = random_matrix(4, 5);
    for (int i = 0; i < 16; i++)
        m[i] *= 1000;
    const int32_t mat = sim_program_add_matrix(&in, m, 4);
    const int32_t ring = sim_program_intern(&in, "ring");
    for (int32_t c = 0; c < 8; c++) {
        const int32_t mm =
            sim_program_add_matmul(&in, c, 0, 128, 128, 128, SIM_OPERANDS_BF16, NULL, 0);
        const sim_prog_coll ar = {1 << 20, 0, g, SIM_PROG_NONE, ring, SIM_COLL_ALLREDUCE};
        const int32_t a = sim_program_add_collective(&in, c, 0, &ar, &mm, 1);
        const sim_prog_coll b = {0, 1, g, SIM_PROG_NONE, 0, SIM_COLL_BARRIER};
        int32_t last = sim_program_add_collective(&in, c, 0, &b, &a, 1);
        if (c < 4) {
            const sim_prog_coll v = {0, 2, gh, mat, 0, SIM_COLL_ALLTOALLV};
            last = sim_program_add_collective(&in, c, 0, &v, &last, 1);
        } else { /* a group of one: no message, an empty hbm op joins */
            const sim_prog_coll one = {4096, 3 + c, sim_program_add_group(&in, &c, 1),
                                       SIM_PROG_NONE, 0, SIM_COLL_ALLREDUCE};
            last = sim_program_add_collective(&in, c, 0, &one, &last, 1);
        }
        sim_program_add_matmul(&in, c, 0, 256, 256, 256, SIM_OPERANDS_BF16, &last, 1);
    }
    assert_int_equal(sim_program_validate(&in, &err), SS_OK);
    const coll_cost cost = test_cost();
    if (coll_program_lower(&in, &t, &cost, &out, &err) != SS_OK)
        fail_msg("lower: %s", err.msg);
    if (sim_program_validate(&out, &err) != SS_OK)
        fail_msg("validate: %s", err.msg);
    int joins = 0;
    for (int32_t i = 0; i < out.nops; i++) {
        const sim_prog_op *op = sim_program_op(&out, i);
        assert_int_not_equal(op->kind, SIM_OP_COLLECTIVE);
        joins += op->kind == SIM_OP_HBM && op->core >= 4;
    }
    assert_int_equal(joins, 4);
    const int nengines = have_systemc() ? 2 : 1;
    double ms[2] = {0, 0};
    for (int e = 0; e < nengines; e++) {
        sim_result r = run_engine((sim_engine_kind)e, &out, &chip, &t, 1);
        /* the last matmul of each core starts after every message of its core */
        for (int32_t c = 0; c < 8; c++) {
            int32_t n;
            const int32_t *ops = sim_program_core_ops(&out, c, &n);
            const int32_t last_mm = ops[n - 1];
            assert_int_equal(sim_program_op(&out, last_mm)->kind, SIM_OP_MATMUL);
            for (int32_t k = 0; k + 1 < n; k++)
                assert_true(r.op_end_s[ops[k]] <= r.op_start_s[last_mm]);
        }
        ms[e] = r.makespan_s;
        sim_result_free(&r);
    }
    print_message("lowered program: %d ops, makespan analytic %.4e s, systemc %.4e s%s\n",
                  out.nops, ms[0], ms[1], have_systemc() ? "" : " (no SystemC: skipped)");
    sim_program_free(&out);
    /* a hint that does not apply names the op */
    sim_program bad;
    assert_int_equal(sim_program_init(&bad, 2, &err), SS_OK);
    const int32_t g2 = sim_program_add_group(&bad, all, 2);
    const sim_prog_coll tb = {64, 0, g2, SIM_PROG_NONE, sim_program_intern(&bad, "tree"),
                              SIM_COLL_ALLREDUCE};
    sim_program_add_collective(&bad, 0, 0, &tb, NULL, 0);
    sim_program_add_collective(&bad, 1, 0, &tb, NULL, 0);
    assert_int_equal(coll_program_lower(&bad, &t, &cost, &out, &err), SS_ERR_RANGE);
    print_message("bad hint: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "collective 0"));
    sim_program_free(&bad);
    /* the program's own messages must not use the collectives' tags */
    assert_int_equal(sim_program_init(&bad, 2, &err), SS_OK);
    const sim_prog_coll ok = {64, 0, sim_program_add_group(&bad, all, 2), SIM_PROG_NONE, 0,
                              SIM_COLL_ALLREDUCE};
    sim_program_add_send(&bad, 0, 0, 1, 8, COLL_TAG_BASE, NULL, 0);
    sim_program_add_recv(&bad, 1, 0, 0, 8, COLL_TAG_BASE, NULL, 0);
    sim_program_add_collective(&bad, 0, 0, &ok, NULL, SIM_DEPS_PREV);
    sim_program_add_collective(&bad, 1, 0, &ok, NULL, SIM_DEPS_PREV);
    assert_int_equal(coll_program_lower(&bad, &t, &cost, &out, &err), SS_ERR_RANGE);
    print_message("reserved tag: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "reserved"));
    sim_program_free(&bad);
    sim_program_free(&in);
    free(m);
}

/* Two equal auto collectives lower to the same messages, those of the algorithm auto picks
 * for the collective alone (the lowering remembers the choice per signature). */
static void test_coll_program_lowering_repeats_auto_choice(void **state)
{
    (void)state;
    const sim_topo t = make_topo(2, 4, 4, 1, 1);
    int32_t *all = iota(16, 0, 1);
    const coll_desc d = {SIM_COLL_ALLREDUCE, 16, 1 << 16, NULL, 1, &t, all};
    coll_schedule s;
    build_ok(&s, &d, COLL_ALGO_AUTO);
    sim_program in, out;
    ss_err err = {0};
    assert_int_equal(sim_program_init(&in, 16, &err), SS_OK);
    const int32_t g = sim_program_add_group(&in, all, 16);
    for (int32_t c = 0; c < 16; c++)
        for (int32_t id = 0; id < 2; id++) {
            const sim_prog_coll ar = {1 << 16, id, g, SIM_PROG_NONE, 0, SIM_COLL_ALLREDUCE};
            sim_program_add_collective(&in, c, 0, &ar, NULL, SIM_DEPS_PREV);
        }
    const coll_cost cost = test_cost();
    assert_int_equal(coll_program_lower(&in, &t, &cost, &out, &err), SS_OK);
    assert_int_equal(sim_program_validate(&out, &err), SS_OK);
    sim_program alone;
    assert_int_equal(sim_program_init(&alone, 16, &err), SS_OK);
    assert_int_equal(coll_schedule_lower(&s, &alone, all, 0, NULL, NULL, NULL, &err), SS_OK);
    for (int32_t c = 0; c < 16; c++) {
        int32_t n, na;
        const int32_t *ops = sim_program_core_ops(&out, c, &n);
        const int32_t *ref = sim_program_core_ops(&alone, c, &na);
        assert_int_equal(n, 2 * na);
        for (int32_t k = 0; k < n; k++) {
            const sim_prog_op *o = sim_program_op(&out, ops[k]);
            const sim_prog_op *r = sim_program_op(&alone, ref[k % na]);
            assert_int_equal(o->kind, r->kind);
            assert_int_equal(o->xfer.peer, r->xfer.peer);
            assert_int_equal(o->xfer.bytes, r->xfer.bytes);
            assert_int_equal(o->xfer.tag, COLL_TAG_BASE + k / na);
        }
    }
    print_message("auto chose %s for both collectives\n", coll_algo_name(s.algo));
    sim_program_free(&alone);
    sim_program_free(&out);
    sim_program_free(&in);
    coll_schedule_free(&s);
    free(all);
}

/* ---- closed forms ------------------------------------------------------------------- */

/* Lowers one schedule on its own and runs it. */
static sim_result time_schedule(sim_engine_kind k, const coll_schedule *s, const shape *sh,
                                const sim_chip *chip)
{
    sim_program p;
    ss_err err = {0};
    assert_int_equal(sim_program_init(&p, sim_topo_ncores(&sh->topo), &err), SS_OK);
    if (coll_schedule_lower(s, &p, sh->cores, 0, NULL, NULL, NULL, &err) != SS_OK)
        fail_msg("lower: %s", err.msg);
    sim_result r = run_engine(k, &p, chip, &sh->topo, 0);
    sim_program_free(&p);
    return r;
}

static void expect_close(const char *what, double got, double want, double tol)
{
    const double rel = fabs(got - want) / want;
    print_message("%-46s %.4e s, closed form %.4e s, rel diff %.4f\n", what, got, want, rel);
    if (rel > tol)
        fail_msg("%s: %.4e s vs closed form %.4e s (rel %.4f > %.2f)", what, got, want, rel, tol);
}

/* Ring all-reduce of n = 16 MiB over p = 8 and 16 chips of a ring:
 * 2(p-1)/p n/B + 2(p-1) alpha within 3%; the bidirectional ring halves the busiest link's
 * load (its bandwidth term on the links) and, since a core drives its +x and -x ports at once
 * (engine.h) and the lowering lets a step's two sends run together, its makespan too:
 * (2(p-1)/p n/B) / 2 + 2(p-1) alpha (the same steps, so the same latency term) within 3% on
 * both engines, and so is coll_schedule_predict. */
static void test_coll_ring_allreduce_closed_form(void **state)
{
    (void)state;
    const sim_chip chip = test_pod_chip("test-chip", 1);
    const uint64_t n = 16u << 20;
    const int32_t ps[] = {8, 16};
    for (size_t i = 0; i < 2; i++) {
        shape sh = ring_shape(ps[i]);
        const int32_t p = ps[i];
        const coll_desc d = desc_of(&sh, SIM_COLL_ALLREDUCE, n / 4, 4);
        coll_schedule ring, bi;
        build_ok(&ring, &d, COLL_ALGO_RING);
        build_ok(&bi, &d, COLL_ALGO_BIRING);
        const double bw = 2.0 * (p - 1) / p * (double)n / B_PER_S;
        const double want = bw + 2.0 * (p - 1) * ALPHA_S;
        char what[96];
        for (int e = 0; e < (have_systemc() ? 2 : 1); e++) {
            sim_result r = time_schedule((sim_engine_kind)e, &ring, &sh, &chip);
            sim_result rb = time_schedule((sim_engine_kind)e, &bi, &sh, &chip);
            snprintf(what, sizeof what, "ring allreduce p=%d 16MiB %s", p,
                     sim_engine_name((sim_engine_kind)e));
            expect_close(what, r.makespan_s, want, 0.03);
            snprintf(what, sizeof what, "biring busiest link p=%d %s", p,
                     sim_engine_name((sim_engine_kind)e));
            expect_close(what, rb.link_bound_s, bw / 2, 0.03);
            snprintf(what, sizeof what, "biring allreduce p=%d 16MiB %s", p,
                     sim_engine_name((sim_engine_kind)e));
            expect_close(what, rb.makespan_s, bw / 2 + 2.0 * (p - 1) * ALPHA_S, 0.03);
            print_message("biring/ring makespan ratio p=%d %s: %.3f (both ports at once)\n", p,
                          sim_engine_name((sim_engine_kind)e), rb.makespan_s / r.makespan_s);
            sim_result_free(&r);
            sim_result_free(&rb);
        }
        snprintf(what, sizeof what, "ring allreduce p=%d predicted", p);
        expect_close(what, predict(&ring, &d), want, 0.01);
        snprintf(what, sizeof what, "biring allreduce p=%d predicted", p);
        expect_close(what, predict(&bi, &d), bw / 2 + 2.0 * (p - 1) * ALPHA_S, 0.01);
        coll_schedule_free(&ring);
        coll_schedule_free(&bi);
        free(sh.cores);
    }
}

/* 2-D torus all-reduce on k x k tori (k = 4, 8), n = 16 MiB: bandwidth term
 * 2 (k^2 - 1)/k^2 n/B (reduce-scatter along y moves (k-1)/k n, along x (k-1)/k n/k, the
 * all-gathers the same), latency term 4(k-1) alpha: within 3%. */
static void test_coll_torus_allreduce_closed_form(void **state)
{
    (void)state;
    const sim_chip chip = test_pod_chip("test-chip", 1);
    const uint64_t n = 16u << 20;
    for (int k = 4; k <= 8; k += 4) {
        shape sh = {"torus", make_topo(2, k, k, 1, 1), k * k, iota(k * k, 0, 1)};
        const coll_desc d = desc_of(&sh, SIM_COLL_ALLREDUCE, n / 4, 4);
        coll_schedule s;
        build_ok(&s, &d, COLL_ALGO_TORUS);
        const double want =
            2.0 * (k * k - 1) / (k * k) * (double)n / B_PER_S + 4.0 * (k - 1) * ALPHA_S;
        for (int e = 0; e < (have_systemc() ? 2 : 1); e++) {
            sim_result r = time_schedule((sim_engine_kind)e, &s, &sh, &chip);
            char what[96];
            snprintf(what, sizeof what, "torus allreduce %dx%d 16MiB %s", k, k,
                     sim_engine_name((sim_engine_kind)e));
            expect_close(what, r.makespan_s, want, 0.03);
            sim_result_free(&r);
        }
        coll_schedule_free(&s);
        free(sh.cores);
    }
}

/* Uniform all-to-all on k x k tori (k = 4, 8) with m = 64 KiB per pair: the bisection bound
 * (p/2)^2 m / (links crossing the cut one way x B) is a lower bound of the SystemC makespan
 * and of the analytic engine's link bound (its makespan ignores contention); the test prints
 * the ratios. */
static void test_coll_alltoall_bisection_bound(void **state)
{
    (void)state;
    const sim_chip chip = test_pod_chip("test-chip", 1);
    const uint64_t m = 64u << 10;
    for (int k = 4; k <= 8; k += 4) {
        shape sh = {"torus", make_topo(2, k, k, 1, 1), k * k, iota(k * k, 0, 1)};
        const int32_t p = k * k;
        const coll_desc d = desc_of(&sh, SIM_COLL_ALLTOALL, m * (uint64_t)p, 1);
        const double cut = sim_topo_bisection_links(&sh.topo) / 2.0;
        const double bound = (double)(p / 2) * (p / 2) * (double)m / (cut * B_PER_S);
        for (int a = COLL_ALGO_DIRECT; a <= COLL_ALGO_DIMORDER; a++) {
            coll_schedule s;
            build_ok(&s, &d, (coll_algo)a);
            sim_result r = time_schedule(SIM_ENGINE_ANALYTIC, &s, &sh, &chip);
            print_message("alltoall %dx%d %-8s analytic: link bound / bisection bound %.3f, "
                          "makespan / bisection %.3f\n",
                          k, k, coll_algo_name((coll_algo)a), r.link_bound_s / bound,
                          r.makespan_s / bound);
            assert_true(r.link_bound_s >= bound * (1 - 1e-9));
            sim_result_free(&r);
            if (have_systemc()) {
                r = time_schedule(SIM_ENGINE_SYSTEMC, &s, &sh, &chip);
                print_message("alltoall %dx%d %-8s systemc: makespan / bisection bound %.3f\n",
                              k, k, coll_algo_name((coll_algo)a), r.makespan_s / bound);
                assert_true(r.makespan_s >= bound * (1 - 1e-9));
                sim_result_free(&r);
            }
            coll_schedule_free(&s);
        }
        free(sh.cores);
    }
}

/* Two ring all-reduces over the same 8 links at once (core 0 and core 1 of every chip of a
 * ring of 8 chips, 2 cores a chip): every message is one hop, so the two rings share each
 * chip's +x port, which both engines queue (engine.h): both take well over one alone, and
 * the engines agree within 5%. */
static void test_coll_shared_ports_queue_in_both_engines(void **state)
{
    (void)state;
    const sim_chip chip = test_pod_chip("test-chip", 2);
    const sim_topo t = make_topo(1, 8, 1, 1, 2);
    int32_t *ga = iota(8, 0, 2), *gb = iota(8, 1, 2);
    const coll_desc d = {SIM_COLL_ALLREDUCE, 8, 1u << 20, NULL, 4, &t, ga};
    coll_schedule s;
    build_ok(&s, &d, COLL_ALGO_RING);
    double alone[2] = {0, 0}, both[2] = {0, 0};
    for (int e = 0; e < (have_systemc() ? 2 : 1); e++) {
        for (int two = 0; two < 2; two++) {
            sim_program p;
            ss_err err = {0};
            assert_int_equal(sim_program_init(&p, 16, &err), SS_OK);
            assert_int_equal(coll_schedule_lower(&s, &p, ga, 0, NULL, NULL, NULL, &err), SS_OK);
            if (two)
                assert_int_equal(coll_schedule_lower(&s, &p, gb, 1, NULL, NULL, NULL, &err),
                                 SS_OK);
            sim_result r = run_engine((sim_engine_kind)e, &p, &chip, &t, 0);
            (two ? both : alone)[e] = r.makespan_s;
            sim_result_free(&r);
            sim_program_free(&p);
        }
        print_message("two concurrent allreduces / one alone, %s: %.3f\n",
                      sim_engine_name((sim_engine_kind)e), both[e] / alone[e]);
    }
    assert_true(both[0] > 1.5 * alone[0]);
    if (have_systemc()) {
        assert_true(both[1] > 1.5 * alone[1]);
        assert_true(fabs(both[1] / both[0] - 1) < 0.05);
    }
    coll_schedule_free(&s);
    free(ga);
    free(gb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coll_allreduce_matches_fp64_sum),
        cmocka_unit_test(test_coll_reducescatter_matches_fp64_sum),
        cmocka_unit_test(test_coll_hd_falls_back_to_ring),
        cmocka_unit_test(test_coll_allgather_and_broadcast_copy_exactly),
        cmocka_unit_test(test_coll_alltoallv_moves_every_byte),
        cmocka_unit_test(test_coll_schedules_count_every_chunk),
        cmocka_unit_test(test_coll_torus_and_barrier_step_counts),
        cmocka_unit_test(test_coll_errors),
        cmocka_unit_test(test_coll_group_specs),
        cmocka_unit_test(test_coll_auto_picks_the_fastest_prediction),
        cmocka_unit_test(test_coll_program_lowering_runs_on_both_engines),
        cmocka_unit_test(test_coll_program_lowering_repeats_auto_choice),
        cmocka_unit_test(test_coll_ring_allreduce_closed_form),
        cmocka_unit_test(test_coll_torus_allreduce_closed_form),
        cmocka_unit_test(test_coll_alltoall_bisection_bound),
        cmocka_unit_test(test_coll_shared_ports_queue_in_both_engines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
