/* This file implements the tests of the SystemC discrete-event engine (sim/sc/engine_sc.cc),
 * run through sim_engine_run(SIM_ENGINE_SYSTEMC, ...): a single transfer over 1..5 hops against
 * the closed form of sim/engine.h (latency * h + serialisation of the first packet * h + the
 * rest / bandwidth), link statistics and merged busy intervals; two flows sharing a link take
 * twice as long as one (contention the analytic engine does not model); the tie rule on a link
 * (same arrival time: lower message id first, also when the lower one arrives in a later delta
 * cycle); a dependency chain of matmuls against the sum of sim_matmul_time; agreement with the
 * analytic engine on contention-free programs (op ends, busy times, link intervals), one of
 * them with every core driving four ports at once; the network interface (sends to two ports
 * take the max of the two transfers, sends sharing a port serialise on it, a recv posted early
 * blocks nothing); invariants on random contended programs (never earlier than the
 * contention-free time, disjoint link intervals adding up to the busy time); repeated calls in
 * one process giving identical results; messages inside a chip, empty messages, idle cores,
 * empty programs; priced collectives (engine.h) against the analytic engine, including a
 * translated group; nothing written to stdout and a caller that ignores SIGCHLD; errors
 * (collective ops, a dependency cycle, an unmatched send, a simulation process killed by a
 * signal); and a 1024-chip 32x32 torus with 10,000 random messages (wall time and events/s
 * printed as information, never asserted). Skips (exit 77) when the build has no SystemC.
 *
 * Test chip: 100 GB/s links (a 4 KiB packet serialises in 40.96 ns, a whole number of ps),
 * 1000 ns hop latency, HBM 1000 GB/s per chip, TPU v3-like cores.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <math.h>

#include "sim/engine.h"
#include "switchsim_config.h"
#include "test_pod.h"

static const double LINK_BPS = TEST_POD_LINK_GBPS * 1e9; /* bytes/s */
static const double LAT_S = TEST_POD_LINK_LATENCY_NS / 1e9; /* per hop */
enum { PKT = TEST_POD_PACKET_BYTES };

/* The default test chip with HBM at 1000 GB/s. */
static sim_chip sc_chip(int cores_per_chip)
{
    sim_chip c = test_pod_chip("sc-test", cores_per_chip);
    c.hbm_gbps = 1000;
    return c;
}

/* A pod of sc_chip, recording everything. */
static void pod_init(test_pod *d, int ndims, const int *dims, const int *wrap, int cores_per_chip)
{
    test_pod_init(d, sc_chip(cores_per_chip), test_pod_topo(ndims, dims, wrap, cores_per_chip),
                  1);
}

static void line_pod(test_pod *d, int chips, int cores_per_chip)
{
    const int dims[1] = {chips}, wrap[1] = {0};
    pod_init(d, 1, dims, wrap, cores_per_chip);
}

static void check_built(const sim_program *p)
{
    ss_err err = {0};
    if (sim_program_validate(p, &err) != SS_OK)
        fail_msg("program: %s", err.msg);
}

static sim_result run(sim_engine_kind kind, const sim_program *p, const test_pod *d)
{
    return test_pod_run(kind, p, &d->cfg);
}

static double rel(double got, double want)
{
    return fabs(got - want) / fabs(want);
}

/* Closed form of an uncontended message (sim/engine.h), written out independently. */
static double transfer_s(uint64_t bytes, int hops)
{
    const double first = (double)(bytes < PKT ? bytes : PKT);
    return hops * (LAT_S + first / LINK_BPS) + ((double)bytes - first) / LINK_BPS;
}

/* ---- single transfer ---------------------------------------------------------------------- */

static void test_engine_sc_single_transfer_hops(void **state)
{
    (void)state;
    const uint64_t bytes = 1000 * PKT + 123; /* a short last packet */
    const uint64_t packets = 1001;
    double worst = 0;
    test_pod d;
    line_pod(&d, 6, 1);
    for (int h = 1; h <= 5; h++) {
        sim_program p = test_pod_program(6);
        const int32_t s = sim_program_add_send(&p, 0, 0, h, bytes, 0, NULL, 0);
        const int32_t r = sim_program_add_recv(&p, h, 0, 0, bytes, 0, NULL, 0);
        check_built(&p);
        sim_result res = run(SIM_ENGINE_SYSTEMC, &p, &d);
        const double want = transfer_s(bytes, h);
        const double e = rel(res.op_end_s[r], want);
        worst = e > worst ? e : worst;
        assert_true(e < 0.01);
        assert_true(rel(res.makespan_s, want) < 0.01);
        /* the send ends when its last packet has left the source chip */
        assert_true(rel(res.op_end_s[s], (double)bytes / LINK_BPS) < 1e-6);
        assert_true(res.events > 0);
        /* every link of the route: all bytes and packets, one merged busy interval starting
         * k * (latency + first packet) after the send */
        assert_int_equal(res.nlink_intervals, h);
        for (size_t i = 0; i < res.nlink_intervals; i++) {
            const sim_link_interval *iv = &res.link_intervals[i];
            const int k = (int)i; /* a line's +x link id is its source chip: route order */
            assert_int_equal(iv->link, k);
            assert_true(res.link_bytes[k] == bytes);
            assert_true(res.link_packets[k] == packets);
            assert_true(rel(res.link_busy_s[k], (double)bytes / LINK_BPS) < 1e-6);
            const double want_start = k * (LAT_S + PKT / LINK_BPS);
            assert_true(k == 0 ? iv->start_s == 0 : rel(iv->start_s, want_start) < 1e-6);
            assert_true(rel(iv->end_s - iv->start_s, (double)bytes / LINK_BPS) < 1e-6);
            /* all packets wait at the first link; later links see at most the short last one */
            assert_true(k == 0 ? res.link_peak_queue[k] == packets - 1
                               : res.link_peak_queue[k] <= 1);
        }
        assert_true(rel(res.link_bound_s, (double)bytes / LINK_BPS) < 1e-6);
        sim_result_free(&res);
        sim_program_free(&p);
    }
    print_message("single transfer, 1..5 hops: max relative difference to the closed form %.3g\n",
                  worst);
}

/* ---- contention --------------------------------------------------------------------------- */

/* Line 0-1-2: flow A 0 -> 2 and (when both) flow B 1 -> 2 share link 1 -> 2. */
static double flows_makespan(sim_engine_kind kind, int both, uint64_t bytes)
{
    test_pod d;
    line_pod(&d, 3, 1);
    sim_program p = test_pod_program(3);
    sim_program_add_send(&p, 0, 0, 2, bytes, 0, NULL, 0);
    sim_program_add_recv(&p, 2, 0, 0, bytes, 0, NULL, 0);
    if (both) {
        sim_program_add_send(&p, 1, 0, 2, bytes, 0, NULL, 0);
        sim_program_add_recv(&p, 2, 0, 1, bytes, 0, NULL, 0);
    }
    check_built(&p);
    sim_result r = run(kind, &p, &d);
    const double m = r.makespan_s;
    if (both && kind == SIM_ENGINE_SYSTEMC) {
        const int shared = 1; /* +x link of chip 1 */
        assert_true(r.link_bytes[shared] == 2 * bytes);
        assert_true(rel(r.link_busy_s[shared], 2.0 * (double)bytes / LINK_BPS) < 1e-6);
        assert_true(r.link_peak_queue[shared] >= bytes / PKT - 1);
    }
    sim_result_free(&r);
    sim_program_free(&p);
    return m;
}

static void test_engine_sc_two_flows_share_link(void **state)
{
    (void)state;
    const uint64_t bytes = 64ull << 20;
    const double one = flows_makespan(SIM_ENGINE_SYSTEMC, 0, bytes);
    const double two = flows_makespan(SIM_ENGINE_SYSTEMC, 1, bytes);
    const double analytic = flows_makespan(SIM_ENGINE_ANALYTIC, 1, bytes);
    print_message("one flow %.6g s, two flows %.6g s (ratio %.5f, want 2 within 1%%); analytic "
                  "engine, two flows: %.6g s\n",
                  one, two, two / one, analytic);
    assert_true(rel(two, 2 * one) < 0.01);
    assert_true(rel(one, transfer_s(bytes, 2)) < 0.01);
}

/* Line 0-1-2, link 1 -> 2. Message X: chip 0 -> chip 2, sent at 0; its first packet reaches
 * link 1 -> 2 at t = packet + latency = 1040.96 ns. Message Y: chip 1 -> chip 2, whose send
 * depends on a send W to chip 0 whose last packet leaves at exactly t (W's bytes serialise in
 * t), so both are offered to link 1 -> 2 at t, Y in a later delta cycle than X (W's end
 * reaches chip 1 through link 1 -> 0): when Y has the lower id the link must revise the choice
 * it made at t. Returns the arrival of Y's last packet minus t. */
static double tie_y_after_t(int y_first)
{
    test_pod d;
    line_pod(&d, 3, 1);
    const double t = PKT / LINK_BPS + LAT_S;
    const uint64_t wb = (uint64_t)llround(t * LINK_BPS); /* 104096 bytes */
    const uint64_t xb = 8 * PKT, yb = 2 * PKT;
    sim_program p = test_pod_program(3);
    if (!y_first)
        sim_program_add_send(&p, 0, 0, 2, xb, 0, NULL, 0);
    const int32_t w = sim_program_add_send(&p, 1, 0, 0, wb, 0, NULL, 0);
    sim_program_add_send(&p, 1, 0, 2, yb, 0, &w, 1); /* issued when W has left */
    if (y_first)
        sim_program_add_send(&p, 0, 0, 2, xb, 0, NULL, 0);
    sim_program_add_recv(&p, 0, 0, 1, wb, 0, NULL, 0);
    const int32_t yrecv = sim_program_add_recv(&p, 2, 0, 1, yb, 0, NULL, 0); /* ends on arrival */
    sim_program_add_recv(&p, 2, 0, 0, xb, 0, NULL, 0);
    check_built(&p);
    sim_result r = run(SIM_ENGINE_SYSTEMC, &p, &d);
    const double y = r.op_end_s[yrecv] - t;
    sim_result_free(&r);
    sim_program_free(&p);
    return y;
}

static void test_engine_sc_tie_broken_by_message_id(void **state)
{
    (void)state;
    const double alone = 2 * PKT / LINK_BPS + LAT_S; /* Y uncontended: 1 hop */
    const double y_first = tie_y_after_t(1), y_second = tie_y_after_t(0);
    print_message("Y after the tie: %.6g s with the lower id, %.6g s with the higher (alone "
                  "%.6g s)\n",
                  y_first, y_second, alone);
    /* lower id: Y's packets go before X's first one */
    assert_true(fabs(y_first - alone) < 2e-12);
    /* higher id: X's first packet goes first, then Y's (X's next ones arrive later) */
    assert_true(fabs(y_second - (alone + PKT / LINK_BPS)) < 2e-12);
}

/* ---- ops ---------------------------------------------------------------------------------- */

static void test_engine_sc_matmul_chain(void **state)
{
    (void)state;
    static const uint64_t shapes[][3] = {
        {128, 128, 128}, {1024, 512, 2048}, {1, 4096, 4096}, {4096, 1024, 1}, {333, 777, 129}};
    enum { N = sizeof shapes / sizeof shapes[0] };
    test_pod d;
    line_pod(&d, 1, 1);
    sim_program p = test_pod_program(1);
    double sum = 0;
    for (int i = 0; i < N; i++) {
        sim_program_add_matmul(&p, 0, 0, shapes[i][0], shapes[i][1], shapes[i][2],
                               SIM_OPERANDS_BF16, NULL, SIM_DEPS_PREV);
        sim_matmul_op op = sim_matmul_op_default(shapes[i][0], shapes[i][1], shapes[i][2]);
        sim_matmul_timing t;
        ss_err err = {0};
        assert_int_equal(sim_matmul_time(&t, &d.chip, &op, &err), SS_OK);
        sum += t.seconds;
    }
    check_built(&p);
    sim_result r = run(SIM_ENGINE_SYSTEMC, &p, &d);
    print_message("matmul chain: %.9g s, sum of sim_matmul_time %.9g s (diff %.3g s)\n",
                  r.makespan_s, sum, r.makespan_s - sum);
    assert_true(fabs(r.makespan_s - sum) <= N * 0.5e-12 + 1e-15); /* ps rounding per op */
    assert_true(fabs(r.unit_busy_s[SIM_UNIT_MXU] - sum) <= N * 0.5e-12 + 1e-15);
    for (int i = 1; i < N; i++)
        assert_true(r.op_start_s[i] == r.op_end_s[i - 1]);
    sim_result_free(&r);
    sim_program_free(&p);
}

/* ---- agreement with the analytic engine --------------------------------------------------- */

/* 4x4 torus, 2 cores per chip. Each core: hbm load, matmul, vector, then a ring shift: it
 * sends to the same local core of the +x neighbour chip, receives from the -x neighbour, and
 * runs a final matmul. The two cores of a chip share its +x link; core 1's matmul is 4 times
 * longer, so their messages never overlap in time. */
static void build_contention_free(sim_program *p, const sim_topo *t)
{
    const int cpc = t->cores_per_chip;
    for (int chip = 0; chip < sim_topo_nchips(t); chip++) {
        const int next = sim_topo_neighbor(t, chip, 0, SIM_TOPO_PLUS);
        const int prev = sim_topo_neighbor(t, chip, 0, SIM_TOPO_MINUS);
        for (int l = 0; l < cpc; l++) {
            const int32_t c = sim_topo_core_id(t, chip, l);
            sim_program_add_hbm(p, c, 0, 1u << 20, 1u << 18, NULL, 0);
            sim_program_add_matmul(p, c, 0, 2048u << (2 * l), 1024, 1024, SIM_OPERANDS_BF16,
                                   NULL, SIM_DEPS_PREV);
            sim_program_add_vector(p, c, 0, SIM_VECTOR_SOFTMAX, 1u << 20, 0, SIM_OPERANDS_F32,
                                   NULL, SIM_DEPS_PREV);
            sim_program_add_send(p, c, 0, sim_topo_core_id(t, next, l), (256u << 10) + 77u * l,
                                 0, NULL, SIM_DEPS_PREV);
            const int32_t rc = sim_program_add_recv(p, c, 0, sim_topo_core_id(t, prev, l),
                                                    (256u << 10) + 77u * l, 0, NULL, 0);
            sim_program_add_matmul(p, c, 0, 512, 1024, 1024, SIM_OPERANDS_F32, &rc, 1);
        }
    }
}

/* Worst relative difference of two arrays of non-negative values, over entries where either
 * is non-zero (so a value that one engine leaves at 0 counts as a difference of 1). */
static double worst_rel(const double *x, const double *y, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double m = fmax(x[i], y[i]);
        const double e = m > 0 ? fabs(x[i] - y[i]) / m : 0;
        worst = e > worst ? e : worst;
    }
    return worst;
}

static int cmp_interval(const void *a, const void *b)
{
    const sim_link_interval *x = a, *y = b;
    if (x->link != y->link)
        return x->link < y->link ? -1 : 1;
    return (x->start_s > y->start_s) - (x->start_s < y->start_s);
}

/* Largest difference between the busy intervals of two results (same count required), both
 * sorted by link and start, relative to scale. */
static double worst_interval(sim_result *x, sim_result *y, double scale)
{
    assert_int_equal(x->nlink_intervals, y->nlink_intervals);
    qsort(x->link_intervals, x->nlink_intervals, sizeof *x->link_intervals, cmp_interval);
    qsort(y->link_intervals, y->nlink_intervals, sizeof *y->link_intervals, cmp_interval);
    double worst = 0;
    for (size_t i = 0; i < x->nlink_intervals; i++) {
        const sim_link_interval *a = &x->link_intervals[i], *b = &y->link_intervals[i];
        assert_int_equal(a->link, b->link);
        const double e = fmax(fabs(a->start_s - b->start_s), fabs(a->end_s - b->end_s)) / scale;
        worst = e > worst ? e : worst;
    }
    return worst;
}

/* Runs p on both engines and checks that they agree within 5% on the makespan, every op's end,
 * every link's and unit's busy time and every link busy interval (relative to the makespan),
 * and exactly on link bytes and packets. */
static void compare_engines(const sim_program *p, const test_pod *d, const char *what)
{
    sim_result a = run(SIM_ENGINE_ANALYTIC, p, d);
    sim_result s = run(SIM_ENGINE_SYSTEMC, p, d);
    assert_int_equal(s.ncores, a.ncores);
    assert_int_equal(s.nlinks, a.nlinks);
    const double end = worst_rel(s.op_end_s, a.op_end_s, (size_t)p->nops);
    const double link = worst_rel(s.link_busy_s, a.link_busy_s, (size_t)s.nlinks);
    const double unit = worst_rel(s.unit_busy_s, a.unit_busy_s,
                                  (size_t)s.ncores * SIM_UNIT_COUNT);
    const double iv = worst_interval(&s, &a, a.makespan_s);
    print_message("%s, systemc vs analytic: makespan %.9g vs %.9g s; max relative difference: "
                  "op end %.3g, link busy %.3g, unit busy %.3g; %zu link intervals, max "
                  "difference %.3g of the makespan\n",
                  what, s.makespan_s, a.makespan_s, end, link, unit, s.nlink_intervals, iv);
    assert_true(iv < 0.05);
    assert_true(rel(s.makespan_s, a.makespan_s) < 0.05);
    assert_true(end < 0.05);
    assert_true(link < 0.05);
    assert_true(unit < 0.05);
    assert_memory_equal(s.link_bytes, a.link_bytes, (size_t)s.nlinks * sizeof(uint64_t));
    assert_memory_equal(s.link_packets, a.link_packets, (size_t)s.nlinks * sizeof(uint64_t));
    sim_result_free(&a);
    sim_result_free(&s);
}

/* Line of 6 chips, 2 cores each: core 0 computes and sends to core 10 (5 hops), which computes
 * and sends back over the '-' links, three rounds; each round also hands a buffer to the
 * chip's other core (0 hops). Sizes leave short last packets. Strictly sequential, so no two
 * messages ever share a link at the same time. */
static void build_ping_pong(sim_program *p)
{
    int32_t prev0 = -1;
    for (int round = 0; round < 3; round++) {
        const uint64_t bytes = 300000 + 4097u * (uint64_t)round;
        const int32_t m0 = sim_program_add_matmul(p, 0, 0, 1024, 1024, 1024, SIM_OPERANDS_BF16,
                                                  prev0 < 0 ? NULL : &prev0, prev0 < 0 ? 0 : 1);
        const int32_t s0 = sim_program_add_send(p, 0, 0, 10, bytes, round, &m0, 1);
        sim_program_add_send(p, 0, 0, 1, bytes / 3, round, &m0, 1);
        sim_program_add_recv(p, 1, 0, 0, bytes / 3, round, NULL, 0);
        const int32_t r10 = sim_program_add_recv(p, 10, 0, 0, bytes, round, NULL, 0);
        const int32_t v10 = sim_program_add_vector(p, 10, 0, SIM_VECTOR_NORM, bytes / 2, 0,
                                                   SIM_OPERANDS_BF16, &r10, 1);
        sim_program_add_send(p, 10, 0, 0, bytes + 1, round, &v10, 1);
        prev0 = sim_program_add_recv(p, 0, 0, 10, bytes + 1, round, &s0, 1);
    }
}

/* 4x4 torus, 1 core per chip, two rounds: every core sends to its four neighbours at once
 * (one message per port, a different size per direction, short last packets), receives the
 * four messages, and runs a vector op on them that the next round's sends depend on. Every
 * link carries one message per round and a round's messages leave before the next round
 * starts, so no two messages ever want one link at the same time: contention-free, but each
 * core drives four ports concurrently. */
static void build_neighbour_exchange(sim_program *p, const sim_topo *t)
{
    static const int dir[4][2] = {{0, SIM_TOPO_PLUS}, {0, SIM_TOPO_MINUS}, {1, SIM_TOPO_PLUS},
                                  {1, SIM_TOPO_MINUS}};
    int32_t join[16];
    for (int round = 0; round < 2; round++)
        for (int chip = 0; chip < sim_topo_nchips(t); chip++) {
            int32_t ops[8];
            for (int k = 0; k < 4; k++) {
                const int to = sim_topo_neighbor(t, chip, dir[k][0], dir[k][1]);
                ops[k] = sim_program_add_send(p, chip, 0, to,
                                              (64u << 10) * (k + 1) + 1000u * round, round,
                                              round ? &join[chip] : NULL, round);
            }
            for (int k = 0; k < 4; k++) {
                const int from = sim_topo_neighbor(t, chip, dir[k][0], 1 - dir[k][1]);
                ops[4 + k] = sim_program_add_recv(p, chip, 0, from,
                                                  (64u << 10) * (k + 1) + 1000u * round, round,
                                                  round ? &join[chip] : NULL, round);
            }
            join[chip] = sim_program_add_vector(p, chip, 0, SIM_VECTOR_ELEMENTWISE, 1u << 16, 0,
                                                SIM_OPERANDS_BF16, ops, 8);
        }
}

static void test_engine_sc_agrees_with_analytic(void **state)
{
    (void)state;
    const int dims[2] = {4, 4}, wrap[2] = {1, 1};
    test_pod d;
    pod_init(&d, 2, dims, wrap, 2);
    sim_program p = test_pod_program(sim_topo_ncores(&d.topo));
    build_contention_free(&p, &d.topo);
    check_built(&p);
    compare_engines(&p, &d, "4x4 torus ring shift");
    sim_program_free(&p);
    line_pod(&d, 6, 2);
    p = test_pod_program(12);
    build_ping_pong(&p);
    check_built(&p);
    compare_engines(&p, &d, "6-chip line ping-pong");
    sim_program_free(&p);
    pod_init(&d, 2, dims, wrap, 1);
    p = test_pod_program(sim_topo_ncores(&d.topo));
    build_neighbour_exchange(&p, &d.topo);
    check_built(&p);
    compare_engines(&p, &d, "4x4 torus, four ports at once");
    sim_program_free(&p);
}

/* ---- the network interface ---------------------------------------------------------------- */

/* Ring of 8 chips: core 0 sends 3 MiB to its +x neighbour and 1 MiB to its -x neighbour at
 * once. Both engines: the two messages leave on different ports concurrently, so core 0 is
 * done after the longer transfer (the max of the two closed forms, not their sum), and its
 * net busy time is the longer send's window. */
static void test_engine_sc_ports_run_concurrently(void **state)
{
    (void)state;
    const int dims[1] = {8}, wrap[1] = {1};
    const uint64_t big = 3u << 20, small = 1u << 20;
    test_pod d;
    pod_init(&d, 1, dims, wrap, 1);
    sim_program p = test_pod_program(8);
    const int32_t sp = sim_program_add_send(&p, 0, 0, 1, big, 0, NULL, 0);
    const int32_t sm = sim_program_add_send(&p, 0, 0, 7, small, 0, NULL, 0);
    const int32_t rp = sim_program_add_recv(&p, 1, 0, 0, big, 0, NULL, 0);
    const int32_t rm = sim_program_add_recv(&p, 7, 0, 0, small, 0, NULL, 0);
    check_built(&p);
    const double tb = transfer_s(big, 1), ts = transfer_s(small, 1);
    for (int e = 0; e < 2; e++) {
        sim_result r = run((sim_engine_kind)e, &p, &d);
        print_message("%s: +x %.6g s (closed form %.6g), -x %.6g s (%.6g), makespan %.6g s; "
                      "max %.6g s, sum %.6g s\n",
                      sim_engine_name((sim_engine_kind)e), r.op_end_s[rp], tb, r.op_end_s[rm], ts,
                      r.makespan_s, fmax(tb, ts), tb + ts);
        assert_true(r.op_start_s[sm] == 0 && r.op_start_s[sp] == 0);
        assert_true(rel(r.op_end_s[rp], tb) < 1e-6);
        assert_true(rel(r.op_end_s[rm], ts) < 1e-6);
        assert_true(rel(r.makespan_s, fmax(tb, ts)) < 1e-6);
        assert_true(rel(r.unit_busy_s[SIM_UNIT_NET], (double)big / LINK_BPS) < 1e-6);
        sim_result_free(&r);
    }
    sim_program_free(&p);
}

/* Line of 2 chips with 2 cores each; every message goes over link 0 -> 1, chip 0's +x port.
 * Core 0 sends A then B (independent, both issued at 0), core 1 sends C, issued later (after
 * an hbm op). The link serialises them: A first (lower id), then B, then C, so B's send ends
 * when A's and B's bytes have left, and C waits for both; a recv ends latency after its last
 * packet left. The analytic engine queues a port's sends the same way: both engines give
 * these times. */
static void test_engine_sc_shared_port_serialises(void **state)
{
    (void)state;
    test_pod d;
    line_pod(&d, 2, 2);
    const uint64_t a = 40 * PKT, b = 24 * PKT + 100, c = 8 * PKT;
    sim_program p = test_pod_program(4);
    const int32_t sa = sim_program_add_send(&p, 0, 0, 2, a, 0, NULL, 0);
    const int32_t sb = sim_program_add_send(&p, 0, 0, 3, b, 0, NULL, 0);
    const int32_t h = sim_program_add_hbm(&p, 1, 0, 1000, 0, NULL, 0); /* 2 ns */
    const int32_t sc = sim_program_add_send(&p, 1, 0, 2, c, 1, &h, 1);
    const int32_t ra = sim_program_add_recv(&p, 2, 0, 0, a, 0, NULL, 0);
    const int32_t rb = sim_program_add_recv(&p, 3, 0, 0, b, 0, NULL, 0);
    const int32_t rc = sim_program_add_recv(&p, 2, 0, 1, c, 1, NULL, 0);
    check_built(&p);
    const double ta = (double)a / LINK_BPS, tab = (double)(a + b) / LINK_BPS;
    const double tabc = (double)(a + b + c) / LINK_BPS;
    for (int e = 0; e < 2; e++) {
        sim_result r = run((sim_engine_kind)e, &p, &d);
        print_message("%s: send ends A %.6g B %.6g C %.6g s (want %.6g %.6g %.6g); C issued at "
                      "%.6g s\n",
                      sim_engine_name((sim_engine_kind)e), r.op_end_s[sa], r.op_end_s[sb],
                      r.op_end_s[sc], ta, tab, tabc, r.op_start_s[sc]);
        assert_true(r.op_start_s[sb] == 0 && r.op_start_s[sc] > 0);
        assert_true(rel(r.op_end_s[sa], ta) < 1e-6);
        assert_true(rel(r.op_end_s[sb], tab) < 1e-6);
        assert_true(rel(r.op_end_s[sc], tabc) < 1e-6);
        assert_true(rel(r.op_end_s[ra], ta + LAT_S) < 1e-6);
        assert_true(rel(r.op_end_s[rb], tab + LAT_S) < 1e-6);
        assert_true(rel(r.op_end_s[rc], tabc + LAT_S) < 1e-6);
        assert_true(rel(r.makespan_s, tabc + LAT_S) < 1e-6);
        assert_true(rel(r.link_bound_s, tabc) < 1e-6);
        sim_result_free(&r);
    }
    sim_program_free(&p);
}

/* Line of 2 chips with 2 cores each. Core 1 runs an hbm op H that ends at t, then sends X to
 * chip 1 and S to core 0 (same chip: arrives at t); core 0's send Y to chip 1 depends on its
 * recv of S. X and Y reach chip 0's +x port at the same instant t, X first in both engines'
 * evaluation, but Y has the lower op id, so the FIFO tie rule puts Y first in both. */
static void test_engine_sc_port_tie_by_op_id(void **state)
{
    (void)state;
    test_pod d;
    line_pod(&d, 2, 2);
    const uint64_t yb = 10 * PKT, xb = 6 * PKT;
    sim_program p = test_pod_program(4);
    const int32_t r0 = sim_program_add_recv(&p, 0, 0, 1, 64, 0, NULL, 0);
    const int32_t y = sim_program_add_send(&p, 0, 0, 2, yb, 0, &r0, 1);
    const int32_t h = sim_program_add_hbm(&p, 1, 0, 1u << 20, 0, NULL, 0);
    const int32_t x = sim_program_add_send(&p, 1, 0, 3, xb, 0, &h, 1);
    sim_program_add_send(&p, 1, 0, 0, 64, 0, &h, 1);
    sim_program_add_recv(&p, 2, 0, 0, yb, 0, NULL, 0);
    sim_program_add_recv(&p, 3, 0, 1, xb, 0, NULL, 0);
    check_built(&p);
    for (int e = 0; e < 2; e++) {
        sim_result r = run((sim_engine_kind)e, &p, &d);
        const double t = r.op_end_s[h];
        print_message("%s: X and Y issued at %.6g and %.6g s; Y ends %.6g s after, X %.6g s\n",
                      sim_engine_name((sim_engine_kind)e), r.op_start_s[x], r.op_start_s[y],
                      r.op_end_s[y] - t, r.op_end_s[x] - t);
        assert_true(r.op_start_s[x] == t && r.op_start_s[y] == t);
        assert_true(fabs(r.op_end_s[y] - t - (double)yb / LINK_BPS) < 1e-12);
        assert_true(fabs(r.op_end_s[x] - t - (double)(yb + xb) / LINK_BPS) < 1e-12);
        sim_result_free(&r);
    }
    sim_program_free(&p);
}

/* Core 0 posts a recv whose message comes late (its sender computes first), then an
 * independent send: the send starts at 0 in both engines, which agree on the whole program. */
static void test_engine_sc_early_recv_blocks_nothing(void **state)
{
    (void)state;
    test_pod d;
    line_pod(&d, 3, 1);
    sim_program p = test_pod_program(3);
    const int32_t late = sim_program_add_recv(&p, 0, 0, 1, 5000, 0, NULL, 0);
    const int32_t s = sim_program_add_send(&p, 0, 0, 2, 1u << 20, 0, NULL, 0);
    sim_program_add_vector(&p, 0, 0, SIM_VECTOR_NORM, 4096, 0, SIM_OPERANDS_BF16, &late, 1);
    const int32_t mm =
        sim_program_add_matmul(&p, 1, 0, 2048, 2048, 2048, SIM_OPERANDS_BF16, NULL, 0);
    sim_program_add_send(&p, 1, 0, 0, 5000, 0, &mm, 1);
    sim_program_add_recv(&p, 2, 0, 0, 1u << 20, 0, NULL, 0);
    check_built(&p);
    sim_result r = run(SIM_ENGINE_SYSTEMC, &p, &d);
    print_message("send: %.6g .. %.6g s; the early recv ends at %.6g s\n", r.op_start_s[s],
                  r.op_end_s[s], r.op_end_s[late]);
    assert_true(r.op_start_s[s] == 0);
    assert_true(rel(r.op_end_s[s], (double)(1u << 20) / LINK_BPS) < 1e-6);
    assert_true(r.op_end_s[late] > r.op_end_s[mm]);
    assert_true(rel(r.unit_busy_s[SIM_UNIT_NET], r.op_end_s[late]) < 1e-9);
    sim_result_free(&r);
    compare_engines(&p, &d, "early recv, later send");
    sim_program_free(&p);
}

/* ---- contention: invariants on random programs ------------------------------------------ */

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Every core: a random compute op or none, then 1..4 sends to random cores (sizes 0 .. 40 KiB,
 * so empty messages, short last packets and contention on shared links all occur), then its
 * recvs, then a vector op after the last recv. Sends never wait for recvs: no deadlock. */
static void build_random_traffic(sim_program *p, int ncores, uint64_t seed)
{
    enum { MAXMSG = 4 * 32 };
    int32_t src[MAXMSG], dst[MAXMSG];
    uint64_t bytes[MAXMSG];
    int n = 0;
    for (int32_t c = 0; c < ncores; c++) {
        if (lcg(&seed) % 2)
            sim_program_add_hbm(p, c, 0, lcg(&seed) % (1u << 20), 0, NULL, 0);
        const int k = 1 + (int)(lcg(&seed) % 4);
        for (int j = 0; j < k && n < MAXMSG; j++, n++) {
            src[n] = c;
            do
                dst[n] = (int32_t)(lcg(&seed) % (uint64_t)ncores);
            while (dst[n] == c);
            bytes[n] = lcg(&seed) % 8 == 0 ? 0 : lcg(&seed) % (40u << 10);
            sim_program_add_send(p, c, 0, dst[n], bytes[n], 0, NULL, SIM_DEPS_PREV);
        }
    }
    for (int32_t c = 0; c < ncores; c++) {
        for (int i = 0; i < n; i++)
            if (dst[i] == c)
                sim_program_add_recv(p, c, 0, src[i], bytes[i], 0, NULL, 0);
        sim_program_add_vector(p, c, 0, SIM_VECTOR_ELEMENTWISE, 4096, 0, SIM_OPERANDS_BF16, NULL,
                               SIM_DEPS_PREV);
    }
}

/* How far the SystemC result r of p breaks causality at worst (seconds; <= 0: not at all): an
 * op starts after its dependencies end, a send between chips lasts at least its bytes'
 * serialisation, a recv ends no earlier than its send's start plus the contention-free
 * transfer time. */
static double worst_causality(const sim_program *p, const test_pod *d, const sim_result *r)
{
    int32_t *partner = malloc((size_t)p->nops * sizeof *partner);
    assert_non_null(partner);
    ss_err err = {0};
    assert_int_equal(sim_program_pair_xfers(p, partner, &err), SS_OK);
    double worst = -INFINITY;
    for (int32_t i = 0; i < p->nops; i++) {
        int32_t nd;
        const int32_t *dep = sim_program_deps(p, i, &nd);
        for (int32_t k = 0; k < nd; k++)
            worst = fmax(worst, r->op_end_s[dep[k]] - r->op_start_s[i]);
        const sim_prog_op *op = sim_program_op(p, i);
        if (op->kind != SIM_OP_SEND)
            continue;
        const int hops = sim_topo_hops(&d->topo, sim_topo_core_chip(&d->topo, op->core),
                                       sim_topo_core_chip(&d->topo, op->xfer.peer));
        sim_msg m;
        sim_msg_init(&m, &d->chip, op->xfer.bytes, PKT);
        if (hops > 0)
            worst = fmax(worst, r->op_start_s[i] + m.ser_s - r->op_end_s[i]);
        worst = fmax(worst, r->op_start_s[i] + sim_msg_latency_s(&m, hops) -
                                r->op_end_s[partner[i]]);
    }
    free(partner);
    return worst;
}

/* Under contention the engines differ, but: every op of the SystemC run respects causality
 * (worst_causality, within 1 ns of picosecond rounding); each link's merged busy intervals are
 * disjoint and add up to its busy time; both engines count the same bytes and packets on every
 * link; the makespan is at least the busiest link's time. The analytic engine is no per-op
 * lower bound: it queues a port's sends in its own issue order, and when contention elsewhere
 * delays a send in SystemC another may overtake it there; the makespan ratio is printed and
 * the programs must contend (SystemC slower somewhere). */
static void test_engine_sc_random_contention_invariants(void **state)
{
    (void)state;
    const int dims[2] = {4, 4}, wrap[2] = {1, 1};
    test_pod d;
    pod_init(&d, 2, dims, wrap, 2);
    double worst_cause = -INFINITY, worst_gap = 0, slowest = 0, fastest = INFINITY;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        sim_program p = test_pod_program(sim_topo_ncores(&d.topo));
        build_random_traffic(&p, sim_topo_ncores(&d.topo), seed);
        check_built(&p);
        sim_result a = run(SIM_ENGINE_ANALYTIC, &p, &d);
        sim_result s = run(SIM_ENGINE_SYSTEMC, &p, &d);
        for (int32_t i = 0; i < p.nops; i++)
            assert_true(s.op_start_s[i] <= s.op_end_s[i]);
        worst_cause = fmax(worst_cause, worst_causality(&p, &d, &s));
        assert_memory_equal(s.link_bytes, a.link_bytes, (size_t)s.nlinks * sizeof(uint64_t));
        assert_memory_equal(s.link_packets, a.link_packets, (size_t)s.nlinks * sizeof(uint64_t));
        assert_true(s.makespan_s >= s.link_bound_s);
        double *covered = calloc((size_t)s.nlinks, sizeof *covered);
        assert_non_null(covered);
        for (size_t i = 0; i < s.nlink_intervals; i++) {
            const sim_link_interval *iv = &s.link_intervals[i];
            assert_true(iv->end_s > iv->start_s);
            if (i > 0 && s.link_intervals[i - 1].link == iv->link)
                assert_true(s.link_intervals[i - 1].end_s <= iv->start_s); /* sorted, disjoint */
            covered[iv->link] += iv->end_s - iv->start_s;
        }
        for (int32_t l = 0; l < s.nlinks; l++) {
            const double gap = fabs(covered[l] - s.link_busy_s[l]) / s.makespan_s;
            worst_gap = gap > worst_gap ? gap : worst_gap;
        }
        free(covered);
        slowest = fmax(slowest, s.makespan_s / a.makespan_s);
        fastest = fmin(fastest, s.makespan_s / a.makespan_s);
        sim_result_free(&a);
        sim_result_free(&s);
        sim_program_free(&p);
    }
    print_message("8 random programs: systemc makespan %.3f .. %.3f x the analytic one; worst "
                  "causality violation %.3g s (<= 0: none); worst interval/busy mismatch %.3g of "
                  "the makespan\n",
                  fastest, slowest, worst_cause, worst_gap);
    assert_true(worst_cause <= 1e-9);
    assert_true(worst_gap < 1e-9);
    assert_true(slowest > 1.01); /* the programs do contend */
}

/* ---- repeated calls ----------------------------------------------------------------------- */

static void assert_same(const sim_result *x, const sim_result *y)
{
    assert_true(x->makespan_s == y->makespan_s);
    assert_true(x->events == y->events);
    assert_true(x->nlink_intervals == y->nlink_intervals);
    assert_memory_equal(x->op_start_s, y->op_start_s, (size_t)x->nops * sizeof(double));
    assert_memory_equal(x->op_end_s, y->op_end_s, (size_t)x->nops * sizeof(double));
    assert_memory_equal(x->unit_busy_s, y->unit_busy_s,
                        (size_t)x->ncores * SIM_UNIT_COUNT * sizeof(double));
    assert_memory_equal(x->link_peak_queue, y->link_peak_queue,
                        (size_t)x->nlinks * sizeof(uint32_t));
    assert_memory_equal(x->link_intervals, y->link_intervals,
                        x->nlink_intervals * sizeof(sim_link_interval));
}

static void test_engine_sc_repeated_calls(void **state)
{
    (void)state;
    const int dims[2] = {4, 4}, wrap[2] = {1, 1};
    test_pod d;
    pod_init(&d, 2, dims, wrap, 2);
    sim_program p = test_pod_program(sim_topo_ncores(&d.topo));
    build_contention_free(&p, &d.topo);
    check_built(&p);
    sim_result first = run(SIM_ENGINE_SYSTEMC, &p, &d);
    for (int i = 0; i < 3; i++) {
        sim_result again = run(SIM_ENGINE_SYSTEMC, &p, &d);
        assert_same(&first, &again);
        sim_result_free(&again);
    }
    /* without recording, the totals are the same and the optional arrays are absent */
    d.cfg.record_ops = d.cfg.record_links = 0;
    sim_result bare = run(SIM_ENGINE_SYSTEMC, &p, &d);
    assert_null(bare.op_start_s);
    assert_null(bare.link_intervals);
    assert_true(bare.makespan_s == first.makespan_s);
    assert_memory_equal(bare.link_busy_s, first.link_busy_s, (size_t)first.nlinks * sizeof(double));
    sim_result_free(&bare);
    sim_result_free(&first);
    sim_program_free(&p);
}

/* ---- messages inside a chip, empty messages, idle cores, empty programs ---------------- */

static void test_engine_sc_local_and_empty_messages(void **state)
{
    (void)state;
    test_pod d;
    line_pod(&d, 4, 2); /* 8 cores; the program uses 6, chip 3 stays idle */
    sim_program p = test_pod_program(6);
    const int32_t h = sim_program_add_hbm(&p, 0, 0, 1u << 20, 0, NULL, 0);
    const int32_t s = sim_program_add_send(&p, 0, 0, 1, 1u << 20, 0, &h, 1); /* same chip */
    const int32_t r = sim_program_add_recv(&p, 1, 0, 0, 1u << 20, 0, NULL, 0);
    sim_program_add_send(&p, 2, 0, 5, 0, 0, NULL, 0); /* 0 bytes, chip 1 -> chip 2: 1 hop */
    const int32_t r0 = sim_program_add_recv(&p, 5, 0, 2, 0, 0, NULL, 0);
    check_built(&p);
    sim_result res = run(SIM_ENGINE_SYSTEMC, &p, &d);
    const double hbm_s = (double)(1u << 20) / (1000e9 / 2); /* two cores share the HBM */
    /* a message inside a chip takes no time and no link */
    assert_true(fabs(res.op_start_s[s] - hbm_s) < 1e-12);
    assert_true(res.op_end_s[s] == res.op_start_s[s]);
    assert_true(res.op_end_s[r] == res.op_start_s[s]);
    /* an empty message is one empty packet: latency only, counted on its link, no interval */
    assert_true(fabs(res.op_end_s[r0] - LAT_S) < 1e-12);
    assert_true(res.link_packets[1] == 1 && res.link_bytes[1] == 0);
    assert_int_equal(res.nlink_intervals, 0);
    assert_int_equal(res.ncores, 8);
    for (int u = 6 * SIM_UNIT_COUNT; u < 8 * SIM_UNIT_COUNT; u++)
        assert_true(res.unit_busy_s[u] == 0);
    assert_true(fabs(res.unit_busy_s[0 * SIM_UNIT_COUNT + SIM_UNIT_DMA] - hbm_s) < 1e-12);
    sim_result_free(&res);
    sim_program_free(&p);
    /* an empty program */
    p = test_pod_program(2);
    res = run(SIM_ENGINE_SYSTEMC, &p, &d);
    assert_true(res.makespan_s == 0);
    assert_int_equal(res.nops, 0);
    sim_result_free(&res);
    sim_program_free(&p);
}

/* ---- the caller's process: stdout untouched, SIGCHLD ignored ------------------------------ */

static void test_engine_sc_quiet_and_sigchld_ignored(void **state)
{
    (void)state;
    test_pod d;
    line_pod(&d, 2, 1);
    sim_program p = test_pod_program(2);
    sim_program_add_send(&p, 0, 0, 1, 3 * PKT, 0, NULL, 0);
    const int32_t r = sim_program_add_recv(&p, 1, 0, 0, 3 * PKT, 0, NULL, 0);
    check_built(&p);
    /* nothing may reach stdout (the child sends SystemC's reports to stderr and disables its
     * banner; the variable is unset here so that the child's own setting is what counts) */
    unsetenv("SC_COPYRIGHT_MESSAGE");
    FILE *cap = tmpfile();
    assert_non_null(cap);
    fflush(stdout);
    const int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(cap), STDOUT_FILENO) >= 0);
    /* a caller that ignores SIGCHLD has its children reaped automatically */
    struct sigaction ign, old;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGCHLD, &ign, &old);
    sim_result res;
    ss_err err = {0};
    const ss_status st = sim_engine_run(SIM_ENGINE_SYSTEMC, &p, &d.cfg, &res, &err);
    sigaction(SIGCHLD, &old, NULL);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    fseek(cap, 0, SEEK_END);
    const long written = ftell(cap);
    fclose(cap);
    if (st != SS_OK)
        fail_msg("with SIGCHLD ignored: %s", err.msg);
    print_message("bytes written to stdout during a run: %ld\n", written);
    assert_int_equal(written, 0);
    assert_true(rel(res.op_end_s[r], transfer_s(3 * PKT, 1)) < 1e-9);
    sim_result_free(&res);
    sim_program_free(&p);
}

/* ---- errors ------------------------------------------------------------------------------- */

static void expect_error(const sim_program *p, const test_pod *d, const char *needle)
{
    sim_result r;
    ss_err err = {0};
    memset(&r, 0xa5, sizeof r);
    assert_int_not_equal(sim_engine_run(SIM_ENGINE_SYSTEMC, p, &d->cfg, &r, &err), SS_OK);
    print_message("expected error: %s\n", err.msg);
    if (!strstr(err.msg, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err.msg, needle);
    assert_null(r.op_start_s);
    assert_null(r.unit_busy_s);
    assert_int_equal(r.nops, 0);
}

static void test_engine_sc_errors(void **state)
{
    (void)state;
    test_pod d;
    line_pod(&d, 2, 1);
    /* collectives are not priced yet */
    sim_program p = test_pod_program(2);
    const int32_t grp = sim_program_add_group(&p, (const int32_t[]){0, 1}, 2);
    for (int32_t c = 0; c < 2; c++) {
        const sim_prog_coll coll = {4096, 0, grp, SIM_PROG_NONE, 0, SIM_COLL_ALLREDUCE};
        sim_program_add_collective(&p, c, 0, &coll, NULL, 0);
    }
    check_built(&p);
    expect_error(&p, &d, "collective");
    sim_program_free(&p);
    /* both cores send only after their recv: a cycle (validation would reject it) */
    p = test_pod_program(2);
    for (int32_t c = 0; c < 2; c++) {
        const int32_t r = sim_program_add_recv(&p, c, 0, 1 - c, 4096, 0, NULL, 0);
        sim_program_add_send(&p, c, 0, 1 - c, 4096, 0, &r, 1);
    }
    expect_error(&p, &d, "deadlock");
    expect_error(&p, &d, "op 0 (core 0, recv) never finished");
    sim_program_free(&p);
    /* an unmatched send (a program that was never validated) */
    p = test_pod_program(2);
    sim_program_add_send(&p, 0, 0, 1, 4096, 0, NULL, 0);
    expect_error(&p, &d, "no matching recv");
    sim_program_free(&p);
}

/* ---- priced collectives (engine.h) ------------------------------------------------------- */

/* On a 4-chip ring: every core posts collective 0 (all four) at a different time, then a
 * send/recv pair crosses the ring, then collectives 1 ({0,1}) and 2 ({2,3}, the same price
 * moved by two chips). The SystemC engine must give the analytic engine's op times (up to ps
 * rounding), link statistics and link intervals. */
static void test_engine_sc_priced_collectives(void **state)
{
    (void)state;
    test_pod d;
    const int dims[1] = {4}, wrap[1] = {1};
    pod_init(&d, 1, dims, wrap, 1);
    const int32_t link = sim_topo_link_id(&d.topo, 0, 0, SIM_TOPO_PLUS);
    const sim_coll_link_load load = {link, 1000, 1, 1e-8, 2};
    const sim_link_interval iv = {link, 1e-4, 6e-4};
    const sim_coll_price prices[2] = {{1e-3, 0, &load, 1, &iv, 1}, {2e-4, 0, &load, 1, &iv, 1}};
    const int32_t price_of[3] = {0, 1, 1}, origin_of[3] = {0, 0, 2};
    const sim_coll_prices table = {3, price_of, origin_of, prices, 2};
    sim_program p = test_pod_program(4);
    const int32_t all[4] = {0, 1, 2, 3};
    const int32_t g_all = sim_program_add_group(&p, all, 4);
    const int32_t g_lo = sim_program_add_group(&p, all, 2);
    const int32_t g_hi = sim_program_add_group(&p, all + 2, 2);
    for (int32_t c = 0; c < 4; c++) {
        sim_program_add_hbm(&p, c, 0, (uint64_t)(c + 1) << 20, 0, NULL, 0);
        const sim_prog_coll c0 = {4096, 0, g_all, SIM_PROG_NONE, 0, SIM_COLL_ALLREDUCE};
        sim_program_add_collective(&p, c, 0, &c0, NULL, SIM_DEPS_PREV);
        if (c == 0)
            sim_program_add_send(&p, 0, 0, 2, 1 << 20, 0, NULL, SIM_DEPS_PREV);
        if (c == 2)
            sim_program_add_recv(&p, 2, 0, 0, 1 << 20, 0, NULL, SIM_DEPS_PREV);
        const sim_prog_coll c1 = {4096, c < 2 ? 1 : 2, c < 2 ? g_lo : g_hi, SIM_PROG_NONE, 0,
                                  SIM_COLL_ALLREDUCE};
        sim_program_add_collective(&p, c, 0, &c1, NULL, SIM_DEPS_PREV);
    }
    check_built(&p);
    sim_result a, r;
    ss_err err = {0};
    if (sim_engine_run_priced(SIM_ENGINE_ANALYTIC, &p, &d.cfg, &table, &a, &err) != SS_OK ||
        sim_engine_run_priced(SIM_ENGINE_SYSTEMC, &p, &d.cfg, &table, &r, &err) != SS_OK)
        fail_msg("engine: %s", err.msg);
    double worst = 0;
    for (int32_t i = 0; i < p.nops; i++) {
        worst = fmax(worst, fabs(r.op_end_s[i] - a.op_end_s[i]));
        worst = fmax(worst, fabs(r.op_start_s[i] - a.op_start_s[i]));
    }
    print_message("makespan systemc %.12g analytic %.12g, worst op time difference %.3g s\n",
                  r.makespan_s, a.makespan_s, worst);
    assert_true(worst < 1e-11);
    assert_true(a.makespan_s > 1.2e-3);
    for (int32_t l = 0; l < a.nlinks; l++)
        assert_int_equal(r.link_bytes[l], a.link_bytes[l]);
    assert_true(r.link_peak_queue[link] >= load.peak_queue);
    const int32_t moved = sim_topo_link_id(&d.topo, 2, 0, SIM_TOPO_PLUS);
    assert_true(r.link_bytes[moved] >= 1000); /* collective 2 (and maybe the send) */
    assert_int_equal(r.nlink_intervals, a.nlink_intervals);
    sim_result_free(&a);
    sim_result_free(&r);
    sim_program_free(&p);
    /* core 0 joins collective 1 then 2, core 1 joins 2 then 1: a cycle of instances */
    p = test_pod_program(4);
    const int32_t g = sim_program_add_group(&p, all, 2);
    for (int32_t c = 0; c < 2; c++)
        for (int32_t k = 0; k < 2; k++) {
            const sim_prog_coll ck = {0, c == 0 ? 1 + k : 2 - k, g, SIM_PROG_NONE, 0,
                                      SIM_COLL_BARRIER};
            sim_program_add_collective(&p, c, 0, &ck, NULL, SIM_DEPS_PREV);
        }
    const int32_t two_of[3] = {0, 1, 1}, origin2[3] = {0, 0, 0};
    const sim_coll_prices crossed = {3, two_of, origin2, prices, 2};
    const ss_status st = sim_engine_run_priced(SIM_ENGINE_SYSTEMC, &p, &d.cfg, &crossed, &r, &err);
    print_message("crossed collectives: %s\n", err.msg);
    assert_int_not_equal(st, SS_OK);
    assert_non_null(strstr(err.msg, "deadlocks"));
    sim_program_free(&p);
}

/* ---- a crashing simulation process ------------------------------------------------------- */

/* In a helper process with a 1 s CPU-time limit (inherited by the engine's simulation process,
 * which starts counting at 0), a simulation that needs several seconds is killed by SIGXCPU;
 * the engine must return an error naming the signal. The helper exits 0 when it did, 1
 * otherwise. No cmocka call runs in the helper. */
static int crash_helper(void)
{
    const struct rlimit cpu = {1, 30}, core = {0, 0};
    if (setrlimit(RLIMIT_CPU, &cpu) != 0 || setrlimit(RLIMIT_CORE, &core) != 0)
        return 1;
    test_pod d;
    line_pod(&d, 2, 1);
    d.cfg.packet_bytes = 64; /* 64M packets: over ten seconds, were it not killed */
    sim_program p;
    ss_err err = {0};
    if (sim_program_init(&p, 2, &err) != SS_OK)
        return 1;
    for (int i = 0; i < 64; i++)
        sim_program_add_send(&p, 0, 0, 1, 64u << 20, 0, NULL, 0);
    for (int i = 0; i < 64; i++)
        sim_program_add_recv(&p, 1, 0, 0, 64u << 20, 0, NULL, 0);
    sim_result r;
    const ss_status st = sim_engine_run(SIM_ENGINE_SYSTEMC, &p, &d.cfg, &r, &err);
    fprintf(stderr, "crash helper: status %s: %s\n", ss_status_name(st), err.msg);
    const int ok = st != SS_OK && strstr(err.msg, "signal") && r.op_start_s == NULL;
    sim_program_free(&p);
    return ok ? 0 : 1;
}

static void test_engine_sc_child_crash_is_an_error(void **state)
{
    (void)state;
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(crash_helper());
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

/* ---- a 1024-chip pod ---------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 32x32 torus, 1 core per chip, 10,000 random messages of 1 B .. 64 KiB: every core posts its
 * sends (in a random order of destinations) before its recvs, so nothing deadlocks. */
static void test_engine_sc_torus_1024_random(void **state)
{
    (void)state;
    enum { NMSG = 10000 };
    const int dims[2] = {32, 32}, wrap[2] = {1, 1};
    test_pod d;
    pod_init(&d, 2, dims, wrap, 1);
    d.cfg.record_ops = 0;
    const int n = sim_topo_ncores(&d.topo);
    int32_t *src = malloc(NMSG * sizeof *src), *dst = malloc(NMSG * sizeof *dst);
    uint64_t *bytes = malloc(NMSG * sizeof *bytes);
    assert_non_null(src);
    assert_non_null(dst);
    assert_non_null(bytes);
    uint64_t seed = 42, want_bytes = 0, want_packets = 0;
    for (int i = 0; i < NMSG; i++) {
        src[i] = (int32_t)(lcg(&seed) % (uint64_t)n);
        do
            dst[i] = (int32_t)(lcg(&seed) % (uint64_t)n);
        while (dst[i] == src[i]);
        bytes[i] = 1 + lcg(&seed) % (64u << 10);
        const int hops = sim_topo_hops(&d.topo, src[i], dst[i]);
        want_bytes += bytes[i] * (uint64_t)hops;
        want_packets += ((bytes[i] - 1) / PKT + 1) * (uint64_t)hops;
    }
    sim_program p = test_pod_program(n);
    for (int i = 0; i < NMSG; i++)
        sim_program_add_send(&p, src[i], 0, dst[i], bytes[i], i, NULL, 0);
    for (int i = 0; i < NMSG; i++)
        sim_program_add_recv(&p, dst[i], 0, src[i], bytes[i], i, NULL, 0);
    check_built(&p);
    const double t0 = now_s();
    sim_result r = run(SIM_ENGINE_SYSTEMC, &p, &d);
    const double wall = now_s() - t0;
    uint64_t got_bytes = 0, got_packets = 0;
    uint32_t peak = 0;
    for (int32_t l = 0; l < r.nlinks; l++) {
        got_bytes += r.link_bytes[l];
        got_packets += r.link_packets[l];
        peak = r.link_peak_queue[l] > peak ? r.link_peak_queue[l] : peak;
    }
    print_message("32x32 torus, %d messages, %llu packet-hops: makespan %.6g s (link bound %.6g "
                  "s), %llu events in %.3f s wall = %.3g events/s, peak queue %u, %zu link "
                  "intervals\n",
                  NMSG, (unsigned long long)want_packets, r.makespan_s, r.link_bound_s,
                  (unsigned long long)r.events, wall, (double)r.events / wall, (unsigned)peak,
                  r.nlink_intervals);
    assert_true(got_bytes == want_bytes);
    assert_true(got_packets == want_packets);
    assert_true(r.makespan_s >= r.link_bound_s);
    assert_true(r.events >= want_packets);
    sim_result_free(&r);
    sim_program_free(&p);
    free(src);
    free(dst);
    free(bytes);
}

int main(void)
{
    if (!SWITCHSIM_HAVE_SYSTEMC) {
        fprintf(stderr, "test_engine_sc: built without SystemC, skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_sc_single_transfer_hops),
        cmocka_unit_test(test_engine_sc_two_flows_share_link),
        cmocka_unit_test(test_engine_sc_tie_broken_by_message_id),
        cmocka_unit_test(test_engine_sc_matmul_chain),
        cmocka_unit_test(test_engine_sc_agrees_with_analytic),
        cmocka_unit_test(test_engine_sc_ports_run_concurrently),
        cmocka_unit_test(test_engine_sc_shared_port_serialises),
        cmocka_unit_test(test_engine_sc_port_tie_by_op_id),
        cmocka_unit_test(test_engine_sc_early_recv_blocks_nothing),
        cmocka_unit_test(test_engine_sc_random_contention_invariants),
        cmocka_unit_test(test_engine_sc_repeated_calls),
        cmocka_unit_test(test_engine_sc_local_and_empty_messages),
        cmocka_unit_test(test_engine_sc_quiet_and_sigchld_ignored),
        cmocka_unit_test(test_engine_sc_errors),
        cmocka_unit_test(test_engine_sc_priced_collectives),
        cmocka_unit_test(test_engine_sc_child_crash_is_an_error),
        cmocka_unit_test(test_engine_sc_torus_1024_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
