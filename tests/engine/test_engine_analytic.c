/* This file implements the tests of the analytic timing engine (sim/engine_analytic.c) and of
 * the helpers shared by both engines (sim/engine.c): message pricing against a naive
 * packet-by-packet store-and-forward reference, intra-chip transfers, unit scheduling, the
 * network interface (concurrent sends to different ports, sends sharing a port queued FIFO,
 * recvs that hold nothing, the busy time as a union), link statistics, send/recv pairing, and
 * priced collectives (an instance begins when its last member is posted and lasts its price;
 * link loads added once per instance and moved with a translated group), and the errors
 * (collectives without prices, a priced instance missing a member, core counts, a dependency
 * cycle).
 *
 * Invariants: chips and topologies are built in code (a TPU-v3-like chip with round link
 * figures), so the tests do not depend on config files; every comparison of times prints the
 * values and their relative difference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "switchsim_config.h"
#include "common/rng.h"
#include "sim/engine.h"
#include "sim/timing.h"
#include "test_pod.h"

enum { PKT = 4096 };

static sim_chip test_chip(int cores_per_chip)
{
    return test_pod_chip("test-chip", cores_per_chip);
}

/* An ndims-dimensional (1 or 2) x [x y] grid, every dimension wrapped or none. */
static sim_topo make_topo(int ndims, int x, int y, int wrap, int cores_per_chip)
{
    return test_pod_grid(ndims, x, y, 1, wrap, cores_per_chip);
}

/* Runs p on the analytic engine; fails the test on an error. */
static sim_result run_ok(const sim_program *p, const sim_chip *chip, const sim_topo *t,
                         int record)
{
    const sim_engine_cfg cfg = {chip, t, PKT, record, record};
    return test_pod_run(SIM_ENGINE_ANALYTIC, p, &cfg);
}

/* Runs p and expects a failure whose message contains every needle (NULL-terminated). */
static void run_fails(const sim_program *p, const sim_chip *chip, const sim_topo *t, ...)
{
    const sim_engine_cfg cfg = {chip, t, PKT, 0, 0};
    sim_result r;
    ss_err err = {0};
    ss_status st = sim_engine_run(SIM_ENGINE_ANALYTIC, p, &cfg, &r, &err);
    printf("  error: %s\n", err.msg);
    assert_int_not_equal(st, SS_OK);
    assert_null(r.unit_busy_s); /* zeroed on error */
    va_list ap;
    va_start(ap, t);
    for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *))
        if (!strstr(err.msg, n))
            fail_msg("message lacks '%s'", n);
    va_end(ap);
}

static void assert_rel(const char *what, double got, double want, double tol)
{
    const double rel = want != 0 ? fabs(got - want) / fabs(want) : fabs(got);
    printf("  %s: got %.17g want %.17g rel diff %.3g\n", what, got, want, rel);
    assert_true(rel <= tol);
}

/* Naive reference: packets of one message pushed hop by hop, store-and-forward, each link
 * FIFO; returns when the last packet has arrived. */
static double store_and_forward(uint64_t bytes, int hops, double bw, double lat)
{
    double link_free[8] = {0};
    double done = 0;
    assert_true(hops <= 8);
    uint64_t left = bytes;
    do {
        const uint64_t b = left < PKT ? left : PKT;
        double t = 0; /* the packet is ready at the source at time 0 */
        for (int k = 0; k < hops; k++) {
            const double s = t > link_free[k] ? t : link_free[k];
            link_free[k] = s + (double)b / bw;
            t = link_free[k] + lat;
        }
        done = t;
        left -= b;
    } while (left > 0);
    return done;
}

/* One send over a route of h hops; checks recv end against the reference and the send's own
 * duration (injection). */
static void check_transfer(const sim_topo *t, int32_t dst_core, int hops, uint64_t bytes)
{
    const sim_chip chip = test_chip(t->cores_per_chip);
    sim_program p = test_pod_program(sim_topo_ncores(t));
    const int32_t s = sim_program_add_send(&p, 0, 0, dst_core, bytes, 0, NULL, 0);
    const int32_t r = sim_program_add_recv(&p, dst_core, 0, 0, bytes, 0, NULL, 0);
    assert_int_equal(sim_topo_hops(t, 0, sim_topo_core_chip(t, dst_core)), hops);
    sim_result res = run_ok(&p, &chip, t, 1);
    const double bw = chip.link_gbps * 1e9, lat = chip.link_latency_ns * 1e-9;
    printf(" %d hops, %llu bytes\n", hops, (unsigned long long)bytes);
    assert_rel("recv end", res.op_end_s[r], store_and_forward(bytes, hops, bw, lat), 1e-9);
    assert_rel("makespan", res.makespan_s, res.op_end_s[r], 0);
    assert_rel("send end", res.op_end_s[s], (double)bytes / bw, 1e-12);
    assert_rel("net busy core 0", res.unit_busy_s[SIM_UNIT_NET], (double)bytes / bw, 1e-12);
    sim_result_free(&res);
    sim_program_free(&p);
}

static void test_engine_analytic_hops_ring(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 12, 1, 1, 1);
    const uint64_t sizes[] = {1, PKT, 3 * PKT, 10000, 1 << 20};
    for (int h = 1; h <= 5; h++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            check_transfer(&t, h, h, sizes[i]);
}

static void test_engine_analytic_hops_torus(void **state)
{
    (void)state;
    const sim_topo t = make_topo(2, 8, 8, 1, 2);
    /* chip (h - h/2, h/2) is h hops away; the message goes to its second core */
    for (int h = 1; h <= 5; h++) {
        const int xyz[3] = {h - h / 2, h / 2, 0};
        check_transfer(&t, sim_topo_core_id(&t, sim_topo_chip(&t, xyz), 1), h, 10000);
    }
}

static void test_engine_analytic_zero_bytes(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 12, 1, 1, 1);
    check_transfer(&t, 3, 3, 0); /* one empty packet: 3 latencies */
    sim_msg m;
    const sim_chip chip = test_chip(1);
    sim_msg_init(&m, &chip, 0, PKT);
    assert_int_equal(m.packets, 1);
    assert_rel("0-byte latency", sim_msg_latency_s(&m, 3), 3e-6, 1e-12);
}

static void test_engine_analytic_intra_chip(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 4, 1, 1, 2);
    const sim_chip chip = test_chip(2);
    sim_program p = test_pod_program(8);
    const int32_t mm = sim_program_add_matmul(&p, 0, 0, 256, 256, 256, SIM_OPERANDS_BF16, NULL, 0);
    const int32_t s = sim_program_add_send(&p, 0, 0, 1, 1 << 20, 0, &mm, 1);
    const int32_t r = sim_program_add_recv(&p, 1, 0, 0, 1 << 20, 0, NULL, 0);
    sim_result res = run_ok(&p, &chip, &t, 1);
    assert_rel("send duration", res.op_end_s[s] - res.op_start_s[s], 0, 0);
    assert_rel("recv end = matmul end", res.op_end_s[r], res.op_end_s[mm], 0);
    for (int32_t l = 0; l < res.nlinks; l++) {
        assert_int_equal(res.link_bytes[l], 0);
        assert_int_equal(res.link_packets[l], 0);
    }
    assert_int_equal(res.nlink_intervals, 0);
    assert_rel("link bound", res.link_bound_s, 0, 0);
    sim_result_free(&res);
    sim_program_free(&p);
}

static void test_engine_analytic_matmul_chain(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 1, 1, 0, 1);
    const sim_chip chip = test_chip(1);
    const uint64_t shapes[][3] = {{128, 128, 128}, {1024, 4096, 1024}, {7, 300, 129},
                                  {4096, 512, 2048}, {1, 1, 1}, {512, 512, 512}};
    const sim_operands dtype[] = {SIM_OPERANDS_BF16, SIM_OPERANDS_BF16, SIM_OPERANDS_F32,
                                  SIM_OPERANDS_BF16, SIM_OPERANDS_BF16, SIM_OPERANDS_F32};
    sim_program p = test_pod_program(1);
    double sum = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        sim_program_add_matmul(&p, 0, 0, shapes[i][0], shapes[i][1], shapes[i][2], dtype[i],
                               NULL, SIM_DEPS_PREV);
        sim_matmul_op op = sim_matmul_op_default(shapes[i][0], shapes[i][1], shapes[i][2]);
        op.operands = dtype[i];
        sim_matmul_timing tm;
        assert_int_equal(sim_matmul_time(&tm, &chip, &op, NULL), SS_OK);
        sum += tm.seconds;
    }
    sim_result res = run_ok(&p, &chip, &t, 0);
    assert_null(res.op_start_s);
    assert_null(res.link_intervals);
    assert_rel("makespan", res.makespan_s, sum, 1e-12);
    assert_rel("mxu busy", res.unit_busy_s[SIM_UNIT_MXU], sum, 1e-12);
    assert_int_equal(res.events, 0);
    sim_result_free(&res);
    sim_program_free(&p);
}

/* Independent ops on different units of one core start together. */
static void test_engine_analytic_units_overlap(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 1, 1, 0, 1);
    const sim_chip chip = test_chip(1);
    sim_program p = test_pod_program(1);
    const int32_t a =
        sim_program_add_matmul(&p, 0, 0, 1024, 1024, 1024, SIM_OPERANDS_BF16, NULL, 0);
    const int32_t b = sim_program_add_vector(&p, 0, 0, SIM_VECTOR_SOFTMAX, 1 << 20, 0,
                                             SIM_OPERANDS_F32, NULL, 0);
    const int32_t c = sim_program_add_hbm(&p, 0, 0, 1 << 24, 1 << 20, NULL, 0);
    sim_result res = run_ok(&p, &chip, &t, 1);
    double longest = 0;
    for (int32_t i = a; i <= c; i++) {
        assert_rel("start", res.op_start_s[i], 0, 0);
        longest = fmax(longest, res.op_end_s[i]);
    }
    assert_rel("hbm", res.op_end_s[c], (double)((1 << 24) + (1 << 20)) / (900e9), 1e-12);
    const sim_vector_op vop = {SIM_VECTOR_SOFTMAX, 1 << 20, 0, SIM_OPERANDS_F32};
    sim_vector_timing vt;
    assert_int_equal(sim_vector_time(&vt, &chip, &vop, NULL), SS_OK);
    assert_rel("vector", res.op_end_s[b], vt.seconds, 0);
    assert_rel("makespan = longest op", res.makespan_s, longest, 0);
    assert_true(res.makespan_s < res.op_end_s[a] + res.op_end_s[b] + res.op_end_s[c]);
    sim_result_free(&res);
    sim_program_free(&p);
}

/* Independent ops on one unit run one after the other in program order. */
static void test_engine_analytic_unit_serialises(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 1, 1, 0, 1);
    const sim_chip chip = test_chip(1);
    sim_program p = test_pod_program(1);
    const int32_t a = sim_program_add_matmul(&p, 0, 0, 512, 512, 512, SIM_OPERANDS_BF16, NULL, 0);
    const int32_t v = sim_program_add_vector(&p, 0, 0, SIM_VECTOR_NORM, 4096, 0,
                                             SIM_OPERANDS_BF16, NULL, 0);
    const int32_t b = sim_program_add_matmul(&p, 0, 0, 256, 256, 256, SIM_OPERANDS_BF16, NULL, 0);
    const int32_t c = sim_program_add_matmul(&p, 0, 0, 128, 128, 128, SIM_OPERANDS_BF16, NULL, 0);
    sim_result res = run_ok(&p, &chip, &t, 1);
    assert_rel("vector starts at 0", res.op_start_s[v], 0, 0);
    assert_rel("b after a", res.op_start_s[b], res.op_end_s[a], 0);
    assert_rel("c after b", res.op_start_s[c], res.op_end_s[b], 0);
    assert_rel("mxu busy = makespan", res.unit_busy_s[SIM_UNIT_MXU], res.makespan_s, 1e-12);
    sim_result_free(&res);
    sim_program_free(&p);
}

/* Two flows on a line 0-1-2 that share link 1 -> 2: flow A (chip 0 -> chip 2) crosses it as
 * its second hop, flow B (chip 1 -> chip 2) injects into it. The analytic engine models no
 * contention beyond a port's injection queue, so each flow is priced alone and the makespan
 * equals the longer flow's, while link_bound_s doubles (and here even exceeds the makespan). */
static void test_engine_analytic_shared_link(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 3, 1, 0, 1);
    const sim_chip chip = test_chip(1);
    const uint64_t bytes = 1 << 20;
    sim_program one = test_pod_program(3), two = test_pod_program(3);
    for (int32_t f = 0; f < 2; f++) {
        sim_program *p = f == 0 ? &one : &two;
        for (int32_t src = 0; src <= f; src++) {
            sim_program_add_send(p, src, 0, 2, bytes, 0, NULL, 0);
            sim_program_add_recv(p, 2, 0, src, bytes, 0, NULL, 0);
        }
    }
    sim_result r1 = run_ok(&one, &chip, &t, 0), r2 = run_ok(&two, &chip, &t, 0);
    const int link = sim_topo_link_id(&t, 1, 0, SIM_TOPO_PLUS);
    assert_rel("one flow: link bound", r1.link_bound_s, (double)bytes / 100e9, 1e-12);
    assert_rel("two flows: link bound", r2.link_bound_s, 2 * r1.link_bound_s, 1e-12);
    assert_rel("two flows: link busy", r2.link_busy_s[link], r2.link_bound_s, 0);
    assert_int_equal(r2.link_bytes[link], 2 * bytes);
    assert_int_equal(r2.link_peak_queue[link], 0); /* not modelled */
    assert_rel("makespan (no contention modelled)", r2.makespan_s, r1.makespan_s, 0);
    printf("  makespan %.6g s < link bound %.6g s\n", r2.makespan_s, r2.link_bound_s);
    assert_true(r2.makespan_s < r2.link_bound_s);
    sim_result_free(&r1);
    sim_result_free(&r2);
    sim_program_free(&one);
    sim_program_free(&two);
}

/* Two cores of chip 0 send to chip 1 at once: both need chip 0's +x port, which injects them
 * one after the other (FIFO, the lower op id first), so the second send ends after both
 * messages' bytes and its recv a latency later; a third send, to -x, is not delayed. */
static void test_engine_analytic_port_queue(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 4, 1, 1, 2);
    const sim_chip chip = test_chip(2);
    const uint64_t a = 1 << 20, b = 3 << 19;
    sim_program p = test_pod_program(8);
    const int32_t sa = sim_program_add_send(&p, 1, 0, 2, a, 0, NULL, 0);
    const int32_t sb = sim_program_add_send(&p, 0, 0, 3, b, 0, NULL, 0);
    const int32_t sm = sim_program_add_send(&p, 0, 0, 6, b, 0, NULL, 0);
    const int32_t ra = sim_program_add_recv(&p, 2, 0, 1, a, 0, NULL, 0);
    const int32_t rb = sim_program_add_recv(&p, 3, 0, 0, b, 0, NULL, 0);
    sim_program_add_recv(&p, 6, 0, 0, b, 0, NULL, 0);
    sim_result res = run_ok(&p, &chip, &t, 1);
    const double bw = 100e9, lat = 1e-6;
    assert_rel("first send (lower id) ends", res.op_end_s[sa], (double)a / bw, 1e-12);
    assert_rel("second send waits for it", res.op_end_s[sb], (double)(a + b) / bw, 1e-12);
    assert_rel("first recv", res.op_end_s[ra], store_and_forward(a, 1, bw, lat), 1e-9);
    assert_rel("second recv", res.op_end_s[rb], (double)(a + b) / bw + lat, 1e-9);
    assert_rel("the -x send is not delayed", res.op_end_s[sm], (double)b / bw, 1e-12);
    assert_rel("net busy core 0 = its +x send's window", res.unit_busy_s[SIM_UNIT_NET],
               (double)(a + b) / bw, 1e-12);
    sim_result_free(&res);
    sim_program_free(&p);
}

/* Random messages on a 4x4 torus: every link statistic adds up to the per-message sums. */
static void test_engine_analytic_link_stats(void **state)
{
    (void)state;
    const sim_topo t = make_topo(2, 4, 4, 1, 2);
    const sim_chip chip = test_chip(2);
    const int32_t ncores = sim_topo_ncores(&t);
    sim_program p = test_pod_program(ncores);
    rng_state rng;
    rng_seed(&rng, 42);
    uint64_t want_bytes = 0, want_packets = 0, want_hops = 0;
    double want_busy = 0;
    for (int i = 0; i < 500; i++) {
        const int32_t s = (int32_t)rng_below(&rng, (uint64_t)ncores);
        int32_t d = (int32_t)rng_below(&rng, (uint64_t)ncores - 1);
        d += d >= s;
        const uint64_t bytes = rng_below(&rng, 100000);
        sim_program_add_send(&p, s, 0, d, bytes, 0, NULL, SIM_DEPS_PREV);
        sim_program_add_recv(&p, d, 0, s, bytes, 0, NULL, SIM_DEPS_PREV);
        const int h = sim_topo_hops(&t, sim_topo_core_chip(&t, s), sim_topo_core_chip(&t, d));
        sim_msg m;
        sim_msg_init(&m, &chip, bytes, PKT);
        want_bytes += bytes * (uint64_t)h;
        want_packets += m.packets * (uint64_t)h;
        want_busy += m.ser_s * h;
        want_hops += (uint64_t)(h > 0 && bytes > 0) * (uint64_t)h;
    }
    ss_err err = {0};
    assert_int_equal(sim_program_validate(&p, &err), SS_OK);
    sim_result res = run_ok(&p, &chip, &t, 1);
    uint64_t bytes = 0, packets = 0;
    double busy = 0, bound = 0;
    for (int32_t l = 0; l < res.nlinks; l++) {
        bytes += res.link_bytes[l];
        packets += res.link_packets[l];
        busy += res.link_busy_s[l];
        bound = fmax(bound, res.link_busy_s[l]);
    }
    printf("  bytes %llu want %llu, packets %llu want %llu\n", (unsigned long long)bytes,
           (unsigned long long)want_bytes, (unsigned long long)packets,
           (unsigned long long)want_packets);
    assert_int_equal(bytes, want_bytes);
    assert_int_equal(packets, want_packets);
    assert_rel("sum of link busy", busy, want_busy, 1e-12);
    assert_rel("link bound = max busy", res.link_bound_s, bound, 0);
    /* one busy window per non-empty message and hop, each as long as the message's
     * serialisation, and the windows of each link add up to its busy time */
    assert_int_equal(res.nlink_intervals, want_hops);
    double win = 0;
    for (size_t i = 0; i < res.nlink_intervals; i++) {
        assert_true(res.link_intervals[i].end_s > res.link_intervals[i].start_s);
        win += res.link_intervals[i].end_s - res.link_intervals[i].start_s;
    }
    assert_rel("sum of windows", win, want_busy, 1e-9);
    sim_result_free(&res);
    sim_program_free(&p);
}

/* A recv may come before its send in id order; it still waits for the message. */
static void test_engine_analytic_recv_before_send(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 4, 1, 1, 1);
    const sim_chip chip = test_chip(1);
    sim_program p = test_pod_program(4);
    const int32_t r = sim_program_add_recv(&p, 0, 0, 1, 8192, 0, NULL, 0);
    const int32_t mm =
        sim_program_add_matmul(&p, 1, 0, 2048, 2048, 2048, SIM_OPERANDS_BF16, NULL, 0);
    const int32_t s = sim_program_add_send(&p, 1, 0, 0, 8192, 0, &mm, 1);
    const int32_t after = sim_program_add_vector(&p, 0, 0, SIM_VECTOR_ELEMENTWISE, 1024, 0,
                                                 SIM_OPERANDS_BF16, &r, 1);
    sim_result res = run_ok(&p, &chip, &t, 1);
    assert_rel("send starts after the matmul", res.op_start_s[s], res.op_end_s[mm], 0);
    assert_rel("recv end", res.op_end_s[r],
               res.op_start_s[s] + store_and_forward(8192, 1, 100e9, 1e-6), 1e-9);
    assert_rel("dependent op starts at recv end", res.op_start_s[after], res.op_end_s[r], 0);
    /* the recv was in flight from 0 until its message was in: that is core 0's net time */
    assert_rel("net busy of core 0 (the recv's wait)", res.unit_busy_s[SIM_UNIT_NET],
               res.op_end_s[r], 1e-12);
    sim_result_free(&res);
    sim_program_free(&p);
}

/* A core sends to its +x and -x neighbours at once (different ports, different sizes): both
 * sends start at 0 and the core is done after the LONGER transfer, not the sum of the two; its
 * net busy time is the union of the two windows. Before the multi-port network interface the
 * second send waited for the first one's injection. */
static void test_engine_analytic_ports_run_concurrently(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 8, 1, 1, 1);
    const sim_chip chip = test_chip(1);
    const uint64_t big = 3u << 20, small = 1u << 20;
    sim_program p = test_pod_program(8);
    const int32_t sp = sim_program_add_send(&p, 0, 0, 1, big, 0, NULL, 0);
    const int32_t sm = sim_program_add_send(&p, 0, 0, 7, small, 0, NULL, 0);
    const int32_t rp = sim_program_add_recv(&p, 1, 0, 0, big, 0, NULL, 0);
    const int32_t rm = sim_program_add_recv(&p, 7, 0, 0, small, 0, NULL, 0);
    const int32_t join = sim_program_add_vector(&p, 0, 0, SIM_VECTOR_ELEMENTWISE, 1024, 0,
                                                SIM_OPERANDS_BF16, (const int32_t[]){sp, sm}, 2);
    ss_err err = {0};
    assert_int_equal(sim_program_validate(&p, &err), SS_OK);
    sim_result res = run_ok(&p, &chip, &t, 1);
    const double bw = 100e9, lat = 1e-6;
    const double tb = store_and_forward(big, 1, bw, lat), ts = store_and_forward(small, 1, bw, lat);
    assert_rel("send -x starts at 0", res.op_start_s[sm], 0, 0);
    assert_rel("+x recv end", res.op_end_s[rp], tb, 1e-9);
    assert_rel("-x recv end", res.op_end_s[rm], ts, 1e-9);
    assert_rel("core 0 done after the longer injection", res.op_start_s[join],
               (double)big / bw, 1e-12);
    assert_rel("makespan = max of the transfers", res.makespan_s, fmax(tb, ts), 1e-9);
    printf("  max %.6g s, sum %.6g s\n", fmax(tb, ts), tb + ts);
    assert_true(res.makespan_s < 0.8 * (tb + ts));
    assert_rel("net busy core 0 = union of the send windows", res.unit_busy_s[SIM_UNIT_NET],
               (double)big / bw, 1e-12);
    sim_result_free(&res);
    sim_program_free(&p);
}

/* A recv posted first (its message comes late) does not hold back a later, independent send
 * of the same core, nor a later recv whose message is already in. */
static void test_engine_analytic_early_recv_blocks_nothing(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 4, 1, 1, 1);
    const sim_chip chip = test_chip(1);
    sim_program p = test_pod_program(4);
    const int32_t late = sim_program_add_recv(&p, 0, 0, 1, 4096, 0, NULL, 0);
    const int32_t s = sim_program_add_send(&p, 0, 0, 3, 1u << 20, 0, NULL, 0);
    const int32_t early = sim_program_add_recv(&p, 0, 0, 2, 4096, 0, NULL, 0);
    const int32_t mm =
        sim_program_add_matmul(&p, 1, 0, 2048, 2048, 2048, SIM_OPERANDS_BF16, NULL, 0);
    sim_program_add_send(&p, 1, 0, 0, 4096, 0, &mm, 1);
    sim_program_add_send(&p, 2, 0, 0, 4096, 0, NULL, 0);
    sim_program_add_recv(&p, 3, 0, 0, 1u << 20, 0, NULL, 0);
    ss_err err = {0};
    assert_int_equal(sim_program_validate(&p, &err), SS_OK);
    sim_result res = run_ok(&p, &chip, &t, 1);
    const double two_hops = store_and_forward(4096, 2, 100e9, 1e-6);
    assert_rel("send starts at 0", res.op_start_s[s], 0, 0);
    assert_rel("send ends after its injection", res.op_end_s[s], (double)(1u << 20) / 100e9,
               1e-12);
    assert_rel("second recv ends on its arrival", res.op_end_s[early], two_hops, 1e-9);
    assert_true(res.op_end_s[late] > res.op_end_s[mm]);
    assert_rel("net busy core 0 = the late recv's window", res.unit_busy_s[SIM_UNIT_NET],
               res.op_end_s[late], 1e-12);
    sim_result_free(&res);
    sim_program_free(&p);
}

/* Independent recv-then-send on two cores no longer deadlocks (nothing holds a unit); making
 * each send depend on the core's recv does: a cycle, which validation rejects and the engine
 * reports naming an op. */
static void test_engine_analytic_deadlock_needs_a_cycle(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 2, 1, 0, 1);
    const sim_chip chip = test_chip(1);
    for (int cycle = 0; cycle < 2; cycle++) {
        sim_program p = test_pod_program(2);
        for (int32_t c = 0; c < 2; c++) {
            const int32_t r = sim_program_add_recv(&p, c, 0, 1 - c, 64, 0, NULL, 0);
            sim_program_add_send(&p, c, 0, 1 - c, 64, 0, &r, cycle);
        }
        ss_err err = {0};
        if (!cycle) {
            assert_int_equal(sim_program_validate(&p, &err), SS_OK);
            sim_result res = run_ok(&p, &chip, &t, 1);
            assert_rel("exchange", res.makespan_s, store_and_forward(64, 1, 100e9, 1e-6), 1e-9);
            sim_result_free(&res);
        } else {
            assert_int_not_equal(sim_program_validate(&p, &err), SS_OK);
            printf("  validate: %s\n", err.msg);
            run_fails(&p, &chip, &t, "deadlock", "op 0 (core 0, recv)", "cycle",
                      (const char *)NULL);
        }
        sim_program_free(&p);
    }
}

static void test_engine_analytic_collective_error(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 2, 1, 0, 1);
    const sim_chip chip = test_chip(1);
    sim_program p = test_pod_program(2);
    const int32_t members[2] = {0, 1};
    const int32_t g = sim_program_add_group(&p, members, 2);
    for (int32_t c = 0; c < 2; c++) {
        const sim_prog_coll coll = {.bytes = 4096, .id = 0, .group = g, .matrix = SIM_PROG_NONE,
                                    .kind = SIM_COLL_ALLREDUCE};
        assert_true(sim_program_add_collective(&p, c, 0, &coll, NULL, 0) >= 0);
    }
    run_fails(&p, &chip, &t, "collectives module", "coll_program_lower",
              (const char *)NULL);
    sim_program_free(&p);
}

static void test_engine_analytic_core_mismatch(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 4, 1, 1, 2); /* 8 cores */
    const sim_chip chip2 = test_chip(2), chip1 = test_chip(1);
    sim_program big = test_pod_program(9);
    sim_program_add_hbm(&big, 8, 0, 4096, 0, NULL, 0);
    run_fails(&big, &chip2, &t, "9 cores", "only 8", (const char *)NULL);
    /* fewer cores than the pod: fine, the rest idle */
    sim_program small = test_pod_program(3);
    sim_program_add_hbm(&small, 2, 0, 4096, 0, NULL, 0);
    sim_result res = run_ok(&small, &chip2, &t, 0);
    assert_int_equal(res.ncores, 8);
    assert_rel("idle core", res.unit_busy_s[7 * SIM_UNIT_COUNT + SIM_UNIT_DMA], 0, 0);
    assert_true(res.unit_busy_s[2 * SIM_UNIT_COUNT + SIM_UNIT_DMA] > 0);
    sim_result_free(&res);
    /* the chip's cores per chip must match the topology's */
    run_fails(&small, &chip1, &t, "1 cores per chip", "topology has 2", (const char *)NULL);
    sim_program_free(&big);
    sim_program_free(&small);
}

static void test_engine_pair_xfers(void **state)
{
    (void)state;
    sim_program p = test_pod_program(3);
    const int32_t s0 = sim_program_add_send(&p, 0, 0, 1, 10, 5, NULL, 0);
    const int32_t s1 = sim_program_add_send(&p, 0, 0, 1, 20, 0, NULL, 0);
    const int32_t s2 = sim_program_add_send(&p, 0, 0, 1, 30, 5, NULL, 0);
    const int32_t r0 = sim_program_add_recv(&p, 1, 0, 0, 20, 0, NULL, 0);
    const int32_t r1 = sim_program_add_recv(&p, 1, 0, 0, 10, 5, NULL, 0);
    const int32_t r2 = sim_program_add_recv(&p, 1, 0, 0, 30, 5, NULL, 0);
    const int32_t x = sim_program_add_hbm(&p, 2, 0, 1, 0, NULL, 0);
    int32_t partner[7];
    ss_err err = {0};
    assert_int_equal(sim_program_pair_xfers(&p, partner, &err), SS_OK);
    assert_int_equal(partner[s0], r1);
    assert_int_equal(partner[r1], s0);
    assert_int_equal(partner[s1], r0);
    assert_int_equal(partner[s2], r2);
    assert_int_equal(partner[r2], s2);
    assert_int_equal(partner[x], -1);
    sim_program_add_send(&p, 2, 0, 1, 10, 0, NULL, 0); /* unmatched */
    int32_t partner2[8];
    assert_int_not_equal(sim_program_pair_xfers(&p, partner2, &err), SS_OK);
    printf("  error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "op 7 (core 2): send to core 1 with tag 0"));
    assert_non_null(strstr(err.msg, "has no matching recv"));
    sim_program_free(&p);
}

static void test_engine_names(void **state)
{
    (void)state;
    sim_engine_kind k;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sim_engine_parse(sim_engine_name((sim_engine_kind)i), &k), 0);
        assert_int_equal(k, i);
    }
    assert_int_equal(sim_engine_parse("discrete", &k), -1);
    assert_string_equal(sim_unit_name(SIM_UNIT_MXU), "mxu");
    assert_string_equal(sim_unit_name(SIM_UNIT_NET), "net");
    assert_int_equal(sim_engine_op_unit(SIM_OP_RECV), SIM_UNIT_NET);
    assert_int_equal(sim_engine_op_unit(SIM_OP_HBM), SIM_UNIT_DMA);
    assert_int_equal(sim_engine_op_unit(SIM_OP_COLLECTIVE), SIM_UNIT_NET); /* when priced */
}

/* sim_engine_run checks before it dispatches, for either engine; without SystemC the systemc
 * engine is an error that says so. */
static void test_engine_dispatch(void **state)
{
    (void)state;
    const sim_topo t = make_topo(1, 2, 1, 0, 1);
    const sim_chip chip = test_chip(1);
    sim_program big = test_pod_program(3);
    sim_program_add_hbm(&big, 2, 0, 64, 0, NULL, 0);
    const sim_engine_cfg cfg = {&chip, &t, PKT, 0, 0};
    sim_result r;
    ss_err err = {0};
    assert_int_not_equal(sim_engine_run(SIM_ENGINE_SYSTEMC, &big, &cfg, &r, &err), SS_OK);
    printf("  systemc, 3 cores on 2: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "3 cores but the pod has only 2"));
    assert_null(r.unit_busy_s);
    const sim_engine_cfg no_packets = {&chip, &t, 0, 0, 0};
    assert_int_not_equal(sim_engine_run(SIM_ENGINE_ANALYTIC, &big, &no_packets, &r, &err), SS_OK);
    assert_non_null(strstr(err.msg, "packet_bytes"));
#if !SWITCHSIM_HAVE_SYSTEMC
    sim_program ok = test_pod_program(2);
    sim_program_add_hbm(&ok, 1, 0, 64, 0, NULL, 0);
    assert_int_not_equal(sim_engine_run(SIM_ENGINE_SYSTEMC, &ok, &cfg, &r, &err), SS_OK);
    printf("  systemc without SystemC: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "built without SystemC"));
    sim_program_free(&ok);
#endif
    sim_program_free(&big);
}

/* ---- priced collectives (engine.h) ------------------------------------------------------ */

/* A 4-chip ring (wrap, one core a chip). Price 0: 1 ms, 1000 bytes on chip 0's x+ link, busy
 * [0.1 ms, 0.6 ms) after the instance begins; measured on a group whose first member is on
 * chip 0. */
typedef struct {
    sim_topo t;
    sim_chip chip;
    sim_coll_link_load load;
    sim_link_interval iv;
    sim_coll_price price;
    int32_t price_of[2], origin_of[2];
    sim_coll_prices table;
} priced_fixture;

static void priced_init(priced_fixture *f)
{
    f->t = make_topo(1, 4, 1, 1, 1);
    f->chip = test_chip(1);
    const int32_t link = sim_topo_link_id(&f->t, 0, 0, SIM_TOPO_PLUS);
    f->load = (sim_coll_link_load){link, 1000, 1, 1000 / 100e9, 3};
    f->iv = (sim_link_interval){link, 1e-4, 6e-4};
    f->price = (sim_coll_price){1e-3, 0, &f->load, 1, &f->iv, 1};
    f->price_of[0] = f->price_of[1] = 0;
    f->origin_of[0] = 0;
    f->origin_of[1] = 2;
    f->table = (sim_coll_prices){2, f->price_of, f->origin_of, &f->price, 1};
}

/* Adds collective id over cores [first, first + n) on each member after its previous op. */
static void add_coll(sim_program *p, int32_t id, int32_t first, int32_t n)
{
    int32_t cores[4];
    for (int32_t k = 0; k < n; k++)
        cores[k] = first + k;
    const sim_prog_coll c = {.bytes = 4096, .id = id, .group = sim_program_add_group(p, cores, n),
                             .matrix = SIM_PROG_NONE, .kind = SIM_COLL_ALLREDUCE};
    for (int32_t k = 0; k < n; k++)
        assert_true(sim_program_add_collective(p, first + k, 0, &c, NULL, SIM_DEPS_PREV) >= 0);
}

static sim_result run_priced(const sim_program *p, const priced_fixture *f, ss_err *err,
                             ss_status *st)
{
    const sim_engine_cfg cfg = {&f->chip, &f->t, PKT, 1, 1};
    sim_result r;
    *st = sim_engine_run_priced(SIM_ENGINE_ANALYTIC, p, &cfg, &f->table, &r, err);
    return r;
}

/* Members posted at different times: the instance begins at the latest post and every member
 * ends 1 ms later; successors follow; the price's link load is added once; the network busy
 * time of a member runs from its post to the end. */
static void test_engine_analytic_priced_collective(void **state)
{
    (void)state;
    priced_fixture f;
    priced_init(&f);
    sim_program p = test_pod_program(4);
    for (int32_t c = 0; c < 4; c++)
        sim_program_add_hbm(&p, c, 0, (uint64_t)(c + 1) << 20, 0, NULL, 0);
    add_coll(&p, 0, 0, 4);
    for (int32_t c = 0; c < 4; c++)
        sim_program_add_hbm(&p, c, 0, 1 << 20, 0, NULL, SIM_DEPS_PREV);
    ss_err err = {0};
    ss_status st;
    sim_result r = run_priced(&p, &f, &err, &st);
    if (st != SS_OK)
        fail_msg("engine: %s", err.msg);
    const double hbm = (double)(1 << 20) / sim_timing_core_hbm_bytes_per_s(&f.chip);
    const double t0 = 4 * hbm, end = t0 + 1e-3;
    for (int32_t c = 0; c < 4; c++) {
        const int32_t coll = 4 + c, after = 8 + c;
        assert_rel("member post", r.op_start_s[coll], (c + 1) * hbm, 1e-12);
        assert_rel("member end", r.op_end_s[coll], end, 1e-12);
        assert_rel("successor start", r.op_start_s[after], end, 1e-12);
        assert_rel("net busy", r.unit_busy_s[c * SIM_UNIT_COUNT + SIM_UNIT_NET],
                   end - (c + 1) * hbm, 1e-12);
    }
    assert_rel("makespan", r.makespan_s, end + hbm, 1e-12);
    assert_int_equal(r.link_bytes[f.load.link], 1000);
    assert_int_equal(r.link_packets[f.load.link], 1);
    assert_int_equal(r.link_peak_queue[f.load.link], 3);
    assert_rel("link bound", r.link_bound_s, f.load.busy_s, 1e-12);
    assert_int_equal(r.nlink_intervals, 1);
    assert_rel("interval start", r.link_intervals[0].start_s, t0 + 1e-4, 1e-12);
    assert_rel("interval end", r.link_intervals[0].end_s, t0 + 6e-4, 1e-12);
    sim_result_free(&r);
    sim_program_free(&p);
}

/* Two instances of one price on translated groups {0,1} and {2,3}: the second one's load and
 * interval land on the link moved by the same translation (chip 2's x+). */
static void test_engine_analytic_priced_translation(void **state)
{
    (void)state;
    priced_fixture f;
    priced_init(&f);
    sim_program p = test_pod_program(4);
    add_coll(&p, 0, 0, 2);
    add_coll(&p, 1, 2, 2);
    ss_err err = {0};
    ss_status st;
    sim_result r = run_priced(&p, &f, &err, &st);
    if (st != SS_OK)
        fail_msg("engine: %s", err.msg);
    const int32_t moved = sim_topo_link_id(&f.t, 2, 0, SIM_TOPO_PLUS);
    uint64_t total = 0;
    for (int32_t l = 0; l < r.nlinks; l++)
        total += r.link_bytes[l];
    printf("  link %d: %llu bytes, moved link %d: %llu bytes, all links %llu\n", f.load.link,
           (unsigned long long)r.link_bytes[f.load.link], moved,
           (unsigned long long)r.link_bytes[moved], (unsigned long long)total);
    assert_int_equal(r.link_bytes[f.load.link], 1000);
    assert_int_equal(r.link_bytes[moved], 1000);
    assert_int_equal(total, 2000);
    assert_int_equal(r.nlink_intervals, 2);
    assert_true(r.link_intervals[0].link != r.link_intervals[1].link);
    assert_rel("makespan", r.makespan_s, 1e-3, 1e-12);
    sim_result_free(&r);
    sim_program_free(&p);
}

/* A collective id without a price, and an instance missing a member, are errors. */
static void test_engine_analytic_priced_errors(void **state)
{
    (void)state;
    priced_fixture f;
    priced_init(&f);
    f.price_of[1] = -1;
    sim_program p = test_pod_program(4);
    add_coll(&p, 1, 0, 2);
    ss_err err = {0};
    ss_status st;
    sim_result r = run_priced(&p, &f, &err, &st);
    printf("  unpriced: %s\n", err.msg);
    assert_int_not_equal(st, SS_OK);
    assert_non_null(strstr(err.msg, "collective 1 has no price"));
    assert_null(r.unit_busy_s);
    sim_program_free(&p);

    priced_init(&f);
    p = test_pod_program(4);
    int32_t both[2] = {0, 1};
    const sim_prog_coll c = {.id = 0, .group = sim_program_add_group(&p, both, 2),
                             .matrix = SIM_PROG_NONE, .kind = SIM_COLL_BARRIER};
    assert_true(sim_program_add_collective(&p, 0, 0, &c, NULL, 0) >= 0); /* core 1 lacks it */
    r = run_priced(&p, &f, &err, &st);
    printf("  missing member: %s\n", err.msg);
    assert_int_not_equal(st, SS_OK);
    assert_non_null(strstr(err.msg, "collective 0 has 1 ops but its group has 2 members"));
    sim_program_free(&p);

    /* core 0 joins collective 0 then 1, core 1 joins 1 then 0: a cycle of instances */
    p = test_pod_program(4);
    const int32_t g = sim_program_add_group(&p, both, 2);
    for (int32_t c = 0; c < 2; c++)
        for (int32_t k = 0; k < 2; k++) {
            const sim_prog_coll ck = {.id = c == 0 ? k : 1 - k, .group = g,
                                      .matrix = SIM_PROG_NONE, .kind = SIM_COLL_BARRIER};
            assert_true(sim_program_add_collective(&p, c, 0, &ck, NULL, SIM_DEPS_PREV) >= 0);
        }
    r = run_priced(&p, &f, &err, &st);
    printf("  crossed collectives: %s\n", err.msg);
    assert_int_not_equal(st, SS_OK);
    assert_non_null(strstr(err.msg, "deadlocks"));
    sim_program_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_analytic_hops_ring),
        cmocka_unit_test(test_engine_analytic_hops_torus),
        cmocka_unit_test(test_engine_analytic_zero_bytes),
        cmocka_unit_test(test_engine_analytic_intra_chip),
        cmocka_unit_test(test_engine_analytic_matmul_chain),
        cmocka_unit_test(test_engine_analytic_units_overlap),
        cmocka_unit_test(test_engine_analytic_unit_serialises),
        cmocka_unit_test(test_engine_analytic_shared_link),
        cmocka_unit_test(test_engine_analytic_port_queue),
        cmocka_unit_test(test_engine_analytic_link_stats),
        cmocka_unit_test(test_engine_analytic_recv_before_send),
        cmocka_unit_test(test_engine_analytic_ports_run_concurrently),
        cmocka_unit_test(test_engine_analytic_early_recv_blocks_nothing),
        cmocka_unit_test(test_engine_analytic_deadlock_needs_a_cycle),
        cmocka_unit_test(test_engine_analytic_collective_error),
        cmocka_unit_test(test_engine_analytic_priced_collective),
        cmocka_unit_test(test_engine_analytic_priced_translation),
        cmocka_unit_test(test_engine_analytic_priced_errors),
        cmocka_unit_test(test_engine_analytic_core_mismatch),
        cmocka_unit_test(test_engine_pair_xfers),
        cmocka_unit_test(test_engine_names),
        cmocka_unit_test(test_engine_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
