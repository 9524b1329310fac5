/* This file implements the tests of the isolated pricing of collectives
 * (collectives/coll_price.h) together with the engines' priced collective ops (sim/engine.h):
 * a collective priced alone takes exactly the makespan and link load of its lowered schedule
 * run alone; groups that are translations of each other on a torus share one price (even
 * translations only along wrapped dimensions of even size; none along a mesh dimension); and
 * a program of concurrent collectives on disjoint rows, priced, gives the lowered program's
 * makespan and every link's bytes exactly (the translated loads land on the right links),
 * on both engines when SystemC is built in; and the automatic algorithm choice, which skips
 * building ring and biring schedules that provably lose, equals the exhaustive choice. A
 * dimension-ordered all-to-all on a ring of 32 pins the engines' difference on multi-hop
 * traffic: the analytic makespan (port queue, later hops contention-free) falls below the
 * link-load bound and the analytic price is raised to it, the SystemC price (its makespan)
 * respects it, and both load the links alike; on an 8 x 4 torus the analytic price is the
 * sum of its two steps' busiest links, and a torus all-reduce (makespan above its bound)
 * keeps its makespan.
 *
 * Invariants: topologies and chips are built in code; comparisons print both figures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "collectives/coll.h"
#include "collectives/coll_price.h"
#include "sim/engine.h"
#include "switchsim_config.h"
#include "test_pod.h"

/* The default test chip with 4 link ports, on an x by y grid (both dimensions wrapped or
 * neither), not recording. */
static void pod_init(test_pod *d, int x, int y, int wrap, int cores_per_chip)
{
    sim_chip c = test_pod_chip("price-test", cores_per_chip);
    c.ici_ports = 4;
    test_pod_init(d, c, test_pod_grid(2, x, y, 1, wrap, cores_per_chip), 0);
}

/* The alpha-beta cost of d's chip and packets. */
static coll_cost cost_of(const test_pod *d)
{
    return coll_cost_of_chip(&d->chip, d->cfg.packet_bytes);
}

/* Collective id (an all-reduce of bytes) over cores[0..n), each member after its previous op. */
static void add_allreduce(sim_program *p, int32_t id, const int32_t *cores, int32_t n,
                          uint64_t bytes)
{
    const sim_prog_coll c = {.bytes = bytes, .id = id, .group = sim_program_add_group(p, cores, n),
                             .matrix = SIM_PROG_NONE, .kind = SIM_COLL_ALLREDUCE};
    for (int32_t k = 0; k < n; k++)
        assert_true(sim_program_add_collective(p, cores[k], 0, &c, NULL, SIM_DEPS_PREV) >= 0);
}

/* The cores of row y of an x-wide grid with one core a chip. */
static void row(int32_t *cores, int x, int y)
{
    for (int k = 0; k < x; k++)
        cores[k] = y * x + k;
}

static coll_prices price(const sim_program *p, const test_pod *d, sim_engine_kind kind)
{
    const coll_cost cost = cost_of(d);
    coll_prices pr;
    ss_err err = {0};
    if (coll_prices_build(&pr, p, &d->topo, &cost, kind, &d->cfg, &err) != SS_OK)
        fail_msg("coll_prices_build: %s", err.msg);
    return pr;
}

/* The lowered program run alone. */
static sim_result run_lowered(const sim_program *p, const test_pod *d, sim_engine_kind kind)
{
    const coll_cost cost = cost_of(d);
    sim_program low;
    sim_result r;
    ss_err err = {0};
    if (coll_program_lower(p, &d->topo, &cost, &low, &err) != SS_OK ||
        sim_engine_run(kind, &low, &d->cfg, &r, &err) != SS_OK)
        fail_msg("lowered run: %s", err.msg);
    sim_program_free(&low);
    return r;
}

/* An all-reduce over the whole 4x4 torus (2 cores a chip) priced alone: the price is the
 * lowered run's makespan and link load, exactly. */
static void test_coll_price_matches_lowered(void **state)
{
    (void)state;
    test_pod d;
    pod_init(&d, 4, 4, 1, 2);
    sim_program p = test_pod_program(32);
    int32_t all[32];
    for (int32_t k = 0; k < 32; k++)
        all[k] = k;
    add_allreduce(&p, 0, all, 32, 1 << 20);
    coll_prices pr = price(&p, &d, SIM_ENGINE_ANALYTIC);
    sim_result r = run_lowered(&p, &d, SIM_ENGINE_ANALYTIC);
    assert_int_equal(pr.nprices, 1);
    printf("price %.12g s, lowered alone %.12g s; %lld lowered ops\n", pr.prices[0].seconds,
           r.makespan_s, (long long)pr.lowered_ops);
    assert_true(pr.prices[0].seconds == r.makespan_s);
    uint64_t priced = 0, lowered = 0;
    for (int32_t k = 0; k < pr.prices[0].nlinks; k++) {
        const sim_coll_link_load *l = &pr.prices[0].links[k];
        assert_int_equal(l->bytes, r.link_bytes[l->link]);
        priced += l->bytes;
    }
    for (int32_t l = 0; l < r.nlinks; l++)
        lowered += r.link_bytes[l];
    printf("link bytes: priced %llu, lowered %llu\n", (unsigned long long)priced,
           (unsigned long long)lowered);
    assert_true(priced == lowered && priced > 0);
    /* one-hop messages queue at their port: the makespan already exceeds the step-wise bound,
     * so the price is not raised */
    printf("step-wise bound %.12g s < price %.12g s\n", pr.bound_s[0], pr.prices[0].seconds);
    assert_true(pr.bound_s[0] > 0 && pr.bound_s[0] < r.makespan_s);
    assert_int_equal(pr.nraised, 0);
    assert_int_equal(pr.raised[0], 0);
    sim_result_free(&r);
    coll_prices_free(&pr);
    sim_program_free(&p);
}

/* Rows of a 4x4 torus: rows 0 and 2 (an even move along y) share a price, rows 1 and 3
 * another; on a mesh every row has its own. */
static void test_coll_price_translations(void **state)
{
    (void)state;
    for (int wrap = 1; wrap >= 0; wrap--) {
        test_pod d;
        pod_init(&d, 4, 4, wrap, 1);
        sim_program p = test_pod_program(16);
        for (int y = 0; y < 4; y++) {
            int32_t cores[4];
            row(cores, 4, y);
            add_allreduce(&p, y, cores, 4, 1 << 16);
        }
        coll_prices pr = price(&p, &d, SIM_ENGINE_ANALYTIC);
        printf("%s: %d prices for 4 rows; price of row y: %d %d %d %d\n",
               wrap ? "torus" : "mesh", (int)pr.nprices, (int)pr.price_of[0],
               (int)pr.price_of[1], (int)pr.price_of[2], (int)pr.price_of[3]);
        if (wrap) {
            assert_int_equal(pr.nprices, 2);
            assert_int_equal(pr.price_of[0], pr.price_of[2]);
            assert_int_equal(pr.price_of[1], pr.price_of[3]);
            assert_int_not_equal(pr.price_of[0], pr.price_of[1]);
        } else {
            assert_int_equal(pr.nprices, 4);
        }
        for (int y = 0; y < 4; y++)
            assert_int_equal(pr.origin_of[y], 4 * y);
        coll_prices_free(&pr);
        sim_program_free(&p);
    }
}

/* Concurrent row all-reduces (disjoint links, so no contention) priced vs lowered: the same
 * makespan and the same bytes on every link, on each engine. */
static void check_rows_agree(sim_engine_kind kind)
{
    test_pod d;
    pod_init(&d, 4, 4, 1, 1);
    sim_program p = test_pod_program(16);
    for (int y = 0; y < 4; y++) {
        int32_t cores[4];
        row(cores, 4, y);
        for (int k = 0; k < 4; k++) /* rows become ready at different times */
            sim_program_add_hbm(&p, cores[k], 0, (uint64_t)(y + 1) << 20, 0, NULL, 0);
        add_allreduce(&p, y, cores, 4, 1 << 18);
    }
    coll_prices pr = price(&p, &d, kind);
    sim_result low = run_lowered(&p, &d, kind), iso;
    ss_err err = {0};
    if (sim_engine_run_priced(kind, &p, &d.cfg, &pr.table, &iso, &err) != SS_OK)
        fail_msg("priced run: %s", err.msg);
    const double diff = fabs(iso.makespan_s - low.makespan_s) / low.makespan_s;
    printf("%s: priced %.12g s, lowered %.12g s, relative difference %.3g\n",
           sim_engine_name(kind), iso.makespan_s, low.makespan_s, diff);
    assert_true(diff < 1e-9);
    for (int32_t l = 0; l < low.nlinks; l++)
        if (iso.link_bytes[l] != low.link_bytes[l])
            fail_msg("link %d: priced %llu bytes, lowered %llu", (int)l,
                     (unsigned long long)iso.link_bytes[l],
                     (unsigned long long)low.link_bytes[l]);
    sim_result_free(&iso);
    sim_result_free(&low);
    coll_prices_free(&pr);
    sim_program_free(&p);
}

static void test_coll_price_rows_agree(void **state)
{
    (void)state;
    check_rows_agree(SIM_ENGINE_ANALYTIC);
#if SWITCHSIM_HAVE_SYSTEMC
    check_rows_agree(SIM_ENGINE_SYSTEMC);
#endif
}

/* A program without collectives gets an empty table; a collective on a core outside the pod
 * is an error naming it. */
static void test_coll_price_edges(void **state)
{
    (void)state;
    test_pod d;
    pod_init(&d, 2, 2, 1, 1);
    sim_program p = test_pod_program(4);
    sim_program_add_hbm(&p, 0, 0, 64, 0, NULL, 0);
    coll_prices pr = price(&p, &d, SIM_ENGINE_ANALYTIC);
    assert_int_equal(pr.nprices, 0);
    assert_int_equal(pr.table.nids, 0);
    coll_prices_free(&pr);
    sim_program_free(&p);
    p = test_pod_program(8);
    const int32_t far[2] = {0, 6};
    add_allreduce(&p, 0, far, 2, 64);
    const coll_cost cost = cost_of(&d);
    ss_err err = {0};
    assert_int_not_equal(coll_prices_build(&pr, &p, &d.topo, &cost, SIM_ENGINE_ANALYTIC, &d.cfg,
                                           &err),
                         SS_OK);
    printf("error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "core 6 is outside the pod's 4 cores"));
    assert_null(pr.prices);
    sim_program_free(&p);
}

/* coll_schedule_build_auto skips building ring and biring when a lower bound on their
 * predicted time already loses (collectives/coll.c); its choice must equal the exhaustive one
 * (every applicable algorithm built and predicted; ties: the lower algorithm) on a 128-rank
 * box group of an 8x8 torus with 2 cores a chip, for the reduce family at sizes from below one
 * element per rank to 256 MiB. */
static void test_coll_price_auto_pruning_is_exact(void **state)
{
    (void)state;
    test_pod d;
    pod_init(&d, 8, 8, 1, 2);
    const coll_cost cost = cost_of(&d);
    int32_t cores[128];
    for (int32_t k = 0; k < 128; k++)
        cores[k] = k;
    static const sim_coll_kind kinds[] = {SIM_COLL_ALLREDUCE, SIM_COLL_REDUCESCATTER,
                                          SIM_COLL_ALLGATHER};
    static const uint64_t sizes[] = {64, 4096, 1 << 20, 1 << 28};
    for (size_t ki = 0; ki < 3; ki++)
        for (size_t si = 0; si < 4; si++) {
            const coll_desc desc = {kinds[ki], 128, sizes[si], NULL, 1, &d.topo, cores};
            ss_err err = {0};
            double best = 0, got = 0;
            int best_a = -1;
            for (int a = COLL_ALGO_AUTO + 1; a < COLL_ALGO_COUNT; a++) {
                if (!coll_algo_applies((coll_algo)a, &desc))
                    continue;
                coll_schedule s;
                double t = 0;
                if (coll_schedule_build(&s, &desc, (coll_algo)a, &err) != SS_OK ||
                    coll_schedule_predict(&s, &desc, &cost, &t, &err) != SS_OK)
                    fail_msg("%s: %s", coll_algo_name((coll_algo)a), err.msg);
                if (best_a < 0 || t < best) {
                    best = t;
                    best_a = a;
                }
                coll_schedule_free(&s);
            }
            coll_schedule s;
            if (coll_schedule_build_auto(&s, &desc, &cost, &err) != SS_OK ||
                coll_schedule_predict(&s, &desc, &cost, &got, &err) != SS_OK)
                fail_msg("auto: %s", err.msg);
            printf("%s %llu bytes: auto %s %.6g s, exhaustive %s %.6g s\n",
                   sim_coll_kind_name(kinds[ki]), (unsigned long long)sizes[si],
                   coll_algo_name(s.algo), got, coll_algo_name((coll_algo)best_a), best);
            assert_int_equal(s.algo, best_a);
            assert_true(got == best);
            coll_schedule_free(&s);
        }
}

/* ---- dimension-ordered all-to-all: contention beyond the first hop -------------------- */

/* Every core of pod d (a box of chips) in one uniform alltoall of bytes per core, lowered
 * with the dimension-ordered algorithm, as collective 0 (no dependencies). */
static sim_program dimorder_alltoall(const test_pod *d, uint64_t bytes)
{
    const int32_t n = sim_topo_ncores(&d->topo);
    sim_program p = test_pod_program(n);
    int32_t cores[256];
    assert_true(n <= 256);
    for (int32_t k = 0; k < n; k++)
        cores[k] = k;
    const sim_prog_coll c = {.bytes = bytes, .id = 0, .group = sim_program_add_group(&p, cores, n),
                             .matrix = SIM_PROG_NONE, .kind = SIM_COLL_ALLTOALL,
                             .algo = sim_program_intern(&p, "dimorder")};
    for (int32_t k = 0; k < n; k++)
        assert_true(sim_program_add_collective(&p, k, 0, &c, NULL, 0) >= 0);
    return p;
}

/* The busiest link's busy time of a price: no schedule of its messages can be shorter. */
static double price_link_bound(const sim_coll_price *pr)
{
    double most = 0;
    for (int32_t k = 0; k < pr->nlinks; k++)
        most = pr->links[k].busy_s > most ? pr->links[k].busy_s : most;
    return most;
}

/* A uniform alltoall over a ring of 32 chips (one core a chip), dimension-ordered (one phase):
 * every chip sends 31 messages of 64 KiB, 15 or 16 each way, and every directed link carries
 * 128 of them (1 + ... + 15 hops, plus the half-way ones of half the chips), only 16 or 15 of
 * which enter it as their first hop. The analytic engine queues a message only at its first
 * link (sim/engine.h), so its makespan is the port's queue plus one contention-free 16-hop
 * message, far below the link-load bound; the isolated price is raised to the step-wise
 * bound, here (one step) the busiest link's load. The SystemC engine queues packets on every
 * link, so its price (its makespan) is at least the bound and, the links staying busy, at
 * most one route's pipeline latency above it. Both put the same bytes on every link. This is
 * the mechanism behind the engines' gap on the 2048-core runs (Switch-C's dimension-ordered
 * all-to-alls); a change to either link model or to the bound shows up here. */
static void test_coll_price_dimorder_a2a_link_bound(void **state)
{
    (void)state;
    test_pod d;
    test_pod_init(&d, test_pod_chip("a2a-test", 1), test_pod_grid(1, 32, 1, 1, 1, 1), 0);
    const uint64_t msg = 65536;
    sim_program p = dimorder_alltoall(&d, 32 * msg);
    sim_msg m;
    sim_msg_init(&m, &d.chip, msg, d.cfg.packet_bytes);
    const double bound = 128 * m.ser_s, port = 15 * m.ser_s + sim_msg_latency_s(&m, 16);
    coll_prices pa = price(&p, &d, SIM_ENGINE_ANALYTIC);
    assert_int_equal(pa.nprices, 1);
    const sim_coll_price *a = &pa.prices[0];
    assert_int_equal(a->nlinks, 64);
    for (int32_t k = 0; k < a->nlinks; k++)
        assert_int_equal(a->links[k].bytes, 128 * msg);
    sim_result r = run_lowered(&p, &d, SIM_ENGINE_ANALYTIC);
    printf("link bound %.9g s (reported %.9g s, step-wise %.9g s); analytic makespan %.9g s = "
           "%.3f x bound (port queue + one 16-hop message: %.9g s); price %.9g s (diff %.3g)\n",
           bound, price_link_bound(a), pa.bound_s[0], r.makespan_s, r.makespan_s / bound, port,
           a->seconds, a->seconds - bound);
    assert_true(fabs(price_link_bound(a) - bound) <= 1e-12 * bound);
    assert_true(fabs(r.makespan_s - port) <= 1e-9 * port);
    assert_true(r.makespan_s < 0.5 * bound);
    assert_true(fabs(pa.bound_s[0] - bound) <= 1e-12 * bound);
    assert_true(a->seconds == pa.bound_s[0]);
    assert_int_equal(pa.raised[0], 1);
    assert_int_equal(pa.nraised, 1);
    sim_result_free(&r);
#if SWITCHSIM_HAVE_SYSTEMC
    coll_prices ps = price(&p, &d, SIM_ENGINE_SYSTEMC);
    assert_int_equal(ps.nprices, 1);
    const sim_coll_price *s = &ps.prices[0];
    assert_int_equal(s->nlinks, a->nlinks);
    for (int32_t k = 0; k < a->nlinks; k++) {
        assert_int_equal(s->links[k].link, a->links[k].link);
        assert_int_equal(s->links[k].bytes, a->links[k].bytes);
        assert_int_equal(s->links[k].packets, a->links[k].packets);
    }
    sim_result rs = run_lowered(&p, &d, SIM_ENGINE_SYSTEMC);
    printf("systemc %.9g s = %.3f x bound (lowered alone %.9g s)\n", s->seconds,
           s->seconds / bound, rs.makespan_s);
    assert_true(s->seconds == rs.makespan_s); /* not raised: SystemC prices are makespans */
    assert_int_equal(ps.nraised, 0);
    assert_true(s->seconds >= bound);
    sim_result_free(&rs);
    assert_true(s->seconds <= bound + sim_msg_latency_s(&m, 16));
    coll_prices_free(&ps);
#endif
    coll_prices_free(&pa);
    sim_program_free(&p);
}

/* A uniform alltoall over an 8 x 4 torus (one core a chip), dimension-ordered: an x step
 * (rings of 8: every chip sends 7 messages of 4 blocks; each directed x link carries 8 of them,
 * 1 + 2 + 3 hops from every chip plus the half-way 4 hops from half of them) then a y step
 * (rings of 4: 3 messages of 8 blocks; 2 per directed y link). The analytic price is the sum of
 * the two steps' busiest links, 8 x 4 + 2 x 8 = 48 blocks of serialisation, above both the
 * single busiest link (32 blocks) and the makespan. */
static void test_coll_price_step_bound_sums_steps(void **state)
{
    (void)state;
    test_pod d;
    test_pod_init(&d, test_pod_chip("a2a-test", 1), test_pod_grid(2, 8, 4, 1, 1, 1), 0);
    const uint64_t block = 65536;
    sim_program p = dimorder_alltoall(&d, 32 * block);
    sim_msg m;
    sim_msg_init(&m, &d.chip, block, d.cfg.packet_bytes);
    coll_prices pa = price(&p, &d, SIM_ENGINE_ANALYTIC);
    sim_result r = run_lowered(&p, &d, SIM_ENGINE_ANALYTIC);
    const double want = 48 * m.ser_s;
    printf("step-wise bound %.9g s (want %.9g s, diff %.3g); busiest link %.9g s; makespan "
           "%.9g s; price %.9g s\n",
           pa.bound_s[0], want, pa.bound_s[0] - want, price_link_bound(&pa.prices[0]),
           r.makespan_s, pa.prices[0].seconds);
    assert_true(fabs(pa.bound_s[0] - want) <= 1e-12 * want);
    assert_true(fabs(price_link_bound(&pa.prices[0]) - 32 * m.ser_s) <= 1e-12 * want);
    assert_true(r.makespan_s < want);
    assert_true(pa.prices[0].seconds == pa.bound_s[0]);
    assert_int_equal(pa.nraised, 1);
    sim_result_free(&r);
    coll_prices_free(&pa);
    sim_program_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coll_price_matches_lowered),
        cmocka_unit_test(test_coll_price_translations),
        cmocka_unit_test(test_coll_price_rows_agree),
        cmocka_unit_test(test_coll_price_edges),
        cmocka_unit_test(test_coll_price_auto_pruning_is_exact),
        cmocka_unit_test(test_coll_price_dimorder_a2a_link_bound),
        cmocka_unit_test(test_coll_price_step_bound_sums_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
