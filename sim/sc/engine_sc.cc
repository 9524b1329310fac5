// This file implements the SystemC discrete-event timing engine declared in engine_sc.h under
// the model of sim/engine.h: one module per chip runs its cores' units (MXU, vector, DMA) and
// network interfaces, one module per directed link serialises the packets offered to it.
//
// Process. sim_sc_engine_run prepares a plan in the calling process (checks, op durations,
// send/recv pairing, routes, packet sizes), then forks. The child builds the modules, runs
// sc_start() until no event is left, and writes the results through a pipe; the parent reads
// them, reaps the child and converts them into a sim_result. A SystemC kernel can elaborate
// and run one simulation per process, so the fork gives every call a fresh one; a crash or an
// exception in the child becomes an error message in the parent. A pipe rather than a shared
// mapping carries the results because the number of link intervals is only known at the end.
//
// Time. Every time is an integer number of picoseconds (the kernel's resolution, SC_PS); each
// duration (op time, a packet's serialisation, the hop latency) is rounded to the nearest ps
// once, so a message of P packets is off by at most P/2 ps (with 4 KiB packets at 100 GB/s,
// about 1e-5 relative).
//
// Units. The MXU, vector and DMA units of a core run their ops in program order, one at a
// time:
//
//     idle --(head op's deps all ended)--> running --(start + duration)--> idle, next op is
//     the head
//
// Priced collectives (engine.h): a member is a network op posted when its dependencies have
// ended; the last member's post begins the instance, which posts the end of every member
// (begin + the price, in ps) to the member's chip; the child sends each instance's begin
// back, and the parent adds the price's link load (and shifted intervals) with
// sim_result_add_collective.
//
// The network interface is no such unit (engine.h): a send or recv starts the moment its
// dependencies have ended, however many others of its core are in flight. A send then offers
// all its packets to the first link of its route, whose FIFO serialises them among the other
// packets offered to it (sends of the same chip to the same port, forwarded traffic), and ends
// when its last packet has finished serialising there (at its start, when the peer is on the
// same chip). A recv ends at max(start, arrival of the message's last packet): it is a
// completion event, holding nothing. The network's busy time counts the instants with at least
// one of the core's sends or recvs in flight (a counter per core).
//
// Links. A packet offered to a link at time t (by a send starting at t, or by the previous hop
// at its serialisation end + latency) waits in the link's queue; the link serialises one
// packet at a time, choosing the smallest (arrival time, message id, packet index), where the
// message id is the send op's id. A choice made at time t is revised if a smaller key offered
// at the same time t arrives in a later delta cycle (nothing has observed it yet), so the
// result does not depend on the order in which SystemC runs processes within a time step.
// Zero-byte packets take no link time and are the one exception: they may leave before a
// same-time packet with a smaller key, which changes nothing but their own order.
//
//     link: idle --(queue non-empty)--> serialising --(bytes / bandwidth)--> idle
//           a finished packet enters the next link's queue latency later (or, after the last
//           hop, counts as arrived at the destination chip latency later).
//
// The peak queue of a link is the most packets that were waiting (offered, arrived, not yet
// serialising) at one instant; it is sampled at every dispatch, just before and just after,
// which sees every maximum because the queue only grows between two dispatches.
//
// Processes. Each module has one sc_event and one SC_METHOD (no threads, so no coroutines):
// a chip keeps a heap of timed entries (an op ends, a send's last packet left the chip, a
// message's last packet arrived), a link its sorted queues; the event is notified for the
// earliest time the module must act (sc_event keeps the earliest pending notification, and a
// method that wakes early just re-arms itself). out->events counts the method activations.
//
// Invariants: an MXU, vector or DMA unit runs at most one op; an op starts only after every
// dependency has ended and (those units) every earlier op of its unit has ended; a link
// serialises at most one packet; packets of one message cross each link in index order; every
// op ends unless dependencies and send -> recv pairs form a cycle, which is reported as an
// error naming an op that never finished.
#include "sim/sc/engine_sc.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <new>
#include <vector>

#include <systemc>

namespace {

using ps_t = uint64_t;
constexpr ps_t NEVER = ~ps_t(0);
constexpr double MAX_PS = 4.0e18; // longest single duration (~46 days); 2^64 ps ~ 213 days

// ---- plan: everything the simulation needs, prepared before the fork -----------------------

struct Message {
    int32_t send, recv;      // op ids
    int32_t src_chip, dst_chip;
    uint64_t bytes, packets; // packets >= 1
    ps_t last_ser_ps;        // serialisation of the last packet (the others: Plan::full_ser_ps)
    uint32_t route_off;      // route in Plan::route[route_off .. + hops)
    int32_t hops;
};

struct Plan {
    const sim_program *p;
    const sim_engine_cfg *cfg;
    const sim_coll_prices *prices; // NULL: no collective op
    int32_t nops, ncores, nchips, nlinks, cores_per_chip;
    std::vector<uint8_t> unit;         // [nops] sim_unit of each op
    std::vector<ps_t> dur_ps;          // [nops] matmul/vector/hbm duration
    std::vector<int32_t> msg_of;       // [nops] message index of a send or recv, else -1
    std::vector<Message> msgs;         // in send-op id order, so index order = id order
    std::vector<int32_t> route;        // concatenated routes (link ids)
    std::vector<uint32_t> ndeps;       // [nops]
    std::vector<uint32_t> succ_start;  // [nops + 1] CSR of the ops that depend on each op
    std::vector<int32_t> succ;
    std::vector<uint32_t> uops_start;  // [ncores * SIM_UNIT_COUNT + 1] CSR: ops of each unit
    std::vector<int32_t> uops;
    uint64_t packet_bytes;
    ps_t full_ser_ps, latency_ps;
    sim_coll_index ix{};               // priced collectives (engine.h); freed by ~Plan
    std::vector<ps_t> coll_ps;         // [ix.ninst] duration of each instance

    Plan() = default;
    Plan(const Plan &) = delete;
    Plan &operator=(const Plan &) = delete;
    ~Plan() { sim_coll_index_free(&ix); }

    uint64_t packet_size(const Message &m, uint64_t k) const
    {
        return k + 1 < m.packets ? packet_bytes : m.bytes - (m.packets - 1) * packet_bytes;
    }
    ps_t packet_ser_ps(const Message &m, uint64_t k) const
    {
        return k + 1 < m.packets ? full_ser_ps : m.last_ser_ps;
    }
    int32_t unit_index(int32_t op) const
    {
        return sim_program_op(p, op)->core * SIM_UNIT_COUNT + unit[(size_t)op];
    }
};

// Rounds a duration in seconds to picoseconds; fails on values the engine cannot hold.
ss_status to_ps(double seconds, ps_t *out, const char *what, ss_err *err)
{
    const double ps = std::nearbyint(seconds * 1e12);
    if (!(ps >= 0 && ps <= MAX_PS))
        return ss_err_set(err, SS_ERR_RANGE,
                          "%s takes %g s, outside the systemc engine's range (0 .. %g s)", what,
                          seconds, MAX_PS * 1e-12);
    *out = (ps_t)ps;
    return SS_OK;
}

// Counting sort into CSR form: item i (0 <= i < nitems) is listed under every bucket that
// buckets_of(i, add) passes to add, in ascending item order within a bucket.
template <class BucketsOf>
void build_csr(size_t nbuckets, int32_t nitems, BucketsOf buckets_of,
               std::vector<uint32_t> &start, std::vector<int32_t> &items)
{
    start.assign(nbuckets + 1, 0);
    for (int32_t i = 0; i < nitems; i++)
        buckets_of(i, [&](size_t b) { start[b + 1]++; });
    for (size_t b = 0; b < nbuckets; b++)
        start[b + 1] += start[b];
    items.resize(start[nbuckets]);
    std::vector<uint32_t> fill(start.begin(), start.end() - 1);
    for (int32_t i = 0; i < nitems; i++)
        buckets_of(i, [&](size_t b) { items[fill[b]++] = i; });
}

// Units and durations of the ops (matmul, vector, hbm priced as sim_engine_op_seconds says).
ss_status plan_durations(Plan &pl, ss_err *err)
{
    pl.unit.resize((size_t)pl.nops);
    pl.dur_ps.assign((size_t)pl.nops, 0);
    for (int32_t i = 0; i < pl.nops; i++) {
        const sim_prog_op *op = sim_program_op(pl.p, i);
        const sim_unit u = sim_engine_op_unit((sim_op_kind)op->kind);
        SS_ASSERT(u != SIM_UNIT_COUNT);
        pl.unit[(size_t)i] = (uint8_t)u;
        if (u == SIM_UNIT_NET)
            continue;
        double s = 0;
        char what[64];
        snprintf(what, sizeof what, "op %d (core %d, %s)", (int)i, (int)op->core,
                 sim_op_kind_name((sim_op_kind)op->kind));
        ss_status st = sim_engine_op_seconds(pl.p, i, pl.cfg->chip, &s, err);
        if (st == SS_OK)
            st = to_ps(s, &pl.dur_ps[(size_t)i], what, err);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

// The dependency counts, the dependents of every op, and the ops of every unit in program
// order (ascending ids).
void plan_graph(Plan &pl)
{
    const sim_program *p = pl.p;
    pl.ndeps.resize((size_t)pl.nops);
    for (int32_t i = 0; i < pl.nops; i++) {
        int32_t nd = 0;
        sim_program_deps(p, i, &nd);
        pl.ndeps[(size_t)i] = (uint32_t)nd;
    }
    build_csr((size_t)pl.nops, pl.nops,
              [p](int32_t i, auto add) {
                  int32_t nd = 0;
                  const int32_t *d = sim_program_deps(p, i, &nd);
                  for (int32_t j = 0; j < nd; j++)
                      add((size_t)d[j]);
              },
              pl.succ_start, pl.succ);
    build_csr((size_t)pl.ncores * SIM_UNIT_COUNT, pl.nops,
              [&pl](int32_t i, auto add) { add((size_t)pl.unit_index(i)); }, pl.uops_start,
              pl.uops);
}

ss_status plan_messages(Plan &pl, ss_err *err)
{
    const sim_program *p = pl.p;
    const sim_topo *topo = pl.cfg->topo;
    std::vector<int32_t> partner((size_t)pl.nops);
    ss_status st = sim_program_pair_xfers(p, partner.data(), err);
    if (st != SS_OK)
        return st;
    pl.msg_of.assign((size_t)pl.nops, -1);
    std::vector<int> hop_buf((size_t)std::max(1, sim_topo_diameter(topo)));
    for (int32_t i = 0; i < pl.nops; i++) {
        const sim_prog_op *op = sim_program_op(p, i);
        if (op->kind != SIM_OP_SEND)
            continue;
        sim_msg sm;
        sim_msg_init(&sm, pl.cfg->chip, op->xfer.bytes, pl.cfg->packet_bytes);
        Message m{};
        m.send = i;
        m.recv = partner[(size_t)i];
        m.src_chip = sim_topo_core_chip(topo, op->core);
        m.dst_chip = sim_topo_core_chip(topo, op->xfer.peer);
        m.bytes = sm.bytes;
        m.packets = sm.packets;
        char what[96];
        snprintf(what, sizeof what, "the last packet of send op %d (core %d)", (int)i,
                 (int)op->core);
        st = to_ps((double)sim_msg_packet_bytes(&sm, sm.packets - 1) / sm.bytes_per_s,
                   &m.last_ser_ps, what, err);
        if (st != SS_OK)
            return st;
        m.hops = sim_topo_route(topo, m.src_chip, m.dst_chip, hop_buf.data(),
                                (int)hop_buf.size());
        SS_ASSERT(m.hops <= (int)hop_buf.size());
        m.route_off = (uint32_t)pl.route.size();
        pl.route.insert(pl.route.end(), hop_buf.begin(), hop_buf.begin() + m.hops);
        pl.msg_of[(size_t)i] = pl.msg_of[(size_t)m.recv] = (int32_t)pl.msgs.size();
        pl.msgs.push_back(m);
    }
    return SS_OK;
}

// The instances of priced collectives and their durations in ps.
ss_status plan_collectives(Plan &pl, ss_err *err)
{
    ss_status st = sim_coll_index_build(&pl.ix, pl.p, pl.prices, err);
    pl.coll_ps.assign((size_t)pl.ix.ninst, 0);
    for (int32_t k = 0; st == SS_OK && k < pl.ix.ninst; k++) {
        char what[64];
        snprintf(what, sizeof what, "collective %d", (int)pl.ix.id[k]);
        st = to_ps(sim_coll_index_price(&pl.ix, pl.prices, k)->seconds, &pl.coll_ps[(size_t)k],
                   what, err);
    }
    return st;
}

ss_status plan_build(Plan &pl, const sim_program *p, const sim_engine_cfg *cfg,
                     const sim_coll_prices *prices, ss_err *err)
{
    pl.p = p;
    pl.cfg = cfg;
    pl.prices = prices;
    pl.nops = p->nops;
    pl.ncores = p->ncores;
    pl.nchips = sim_topo_nchips(cfg->topo);
    pl.nlinks = sim_topo_nlinks(cfg->topo);
    pl.cores_per_chip = cfg->topo->cores_per_chip;
    pl.packet_bytes = cfg->packet_bytes;
    const double bytes_per_s = cfg->chip->link_gbps * 1e9;
    ss_status st = to_ps((double)cfg->packet_bytes / bytes_per_s, &pl.full_ser_ps,
                         "a full packet", err);
    if (st == SS_OK)
        st = to_ps(cfg->chip->link_latency_ns * 1e-9, &pl.latency_ps, "the hop latency", err);
    if (st == SS_OK)
        st = plan_durations(pl, err);
    if (st == SS_OK)
        st = plan_messages(pl, err);
    if (st == SS_OK)
        st = plan_collectives(pl, err);
    if (st == SS_OK)
        plan_graph(pl);
    return st;
}

// ---- the simulation (runs in the child) ---------------------------------------------------

struct Interval {
    int64_t link; // 64 bits: no padding goes down the pipe
    ps_t start, end;
};

// What the child sends back, as fixed-size data; the arrays follow it in the pipe.
struct Header {
    uint64_t magic;
    int32_t status;
    char msg[sizeof(ss_err::msg)];
    uint64_t events;
    ps_t makespan_ps;
    uint64_t nintervals;
};
constexpr uint64_t MAGIC = 0x53534353494d5631ull; // "SSCSIMV1"

class Chip;
class Link;

// The whole model's state; modules index into it by op, unit, message and link id.
struct Sim {
    const Plan &pl;
    std::vector<ps_t> start, end;        // [nops]; NEVER until set
    std::vector<uint32_t> pending;       // [nops] dependencies not yet ended
    std::vector<uint32_t> upos;          // [nunits] index of the unit's next op in its list
    std::vector<int32_t> running;        // [nunits] op running on the unit, -1 = idle (not net)
    std::vector<ps_t> unit_busy;         // [nunits]
    std::vector<uint32_t> net_inflight;  // [ncores] sends and recvs started, not ended
    std::vector<ps_t> net_since;         // [ncores] when net_inflight last became non-zero
    std::vector<uint64_t> left, arrived; // [nmsgs] packets that left hop 0 / reached dst
    std::vector<ps_t> arrival;           // [nmsgs] when the last packet reached dst, or NEVER
    std::vector<uint32_t> coll_posted;   // [ninst] members of a priced collective posted
    std::vector<ps_t> coll_start;        // [ninst] when it began (its last member posted)
    std::vector<uint64_t> link_bytes, link_packets;
    std::vector<ps_t> link_busy;
    std::vector<uint32_t> link_peak;
    std::vector<Interval> intervals;
    std::vector<std::unique_ptr<Chip>> chips; // [nchips]; null for chips without program cores
    std::vector<std::unique_ptr<Link>> links; // [nlinks]
    uint64_t events = 0;

    explicit Sim(const Plan &plan);
    void build();
};

ps_t now_ps()
{
    return sc_core::sc_time_stamp().value();
}

// Notifies ev at absolute time t >= now (an earlier pending notification wins, which is the
// behaviour every caller wants: the method re-arms itself for its next entry when it runs).
void notify_at(sc_core::sc_event &ev, ps_t t)
{
    const ps_t now = now_ps();
    SS_ASSERT(t >= now);
    ev.notify(sc_core::sc_time::from_value(t - now));
}

// A chip: its cores' units. Timed entries: a unit's op ends, a send's last packet left the
// chip, a message's last packet arrived.
class Chip : public sc_core::sc_module {
public:
    enum Kind : uint8_t { UNIT_DONE = 0, SEND_DONE = 1, ARRIVED = 2 };

    SC_HAS_PROCESS(Chip);
    Chip(sc_core::sc_module_name name, Sim &sim, int first_core, int ncores)
        : sc_core::sc_module(name), s(sim), first(first_core), n(ncores)
    {
        SC_METHOD(step);
        sensitive << wake; // runs once at time 0 to start the first ops
        for (int c = first; c < first + n; c++)
            seed(c);
    }

    // Schedules an entry at time t >= now; kind UNIT_DONE and SEND_DONE carry an op id,
    // ARRIVED a message index.
    void post(ps_t t, Kind kind, int32_t id)
    {
        timers.push_back(Entry{t, kind, id});
        std::push_heap(timers.begin(), timers.end(), std::greater<Entry>());
        if (!in_step)
            notify_at(wake, t);
    }

private:
    struct Entry {
        ps_t t;
        Kind kind;
        int32_t id;
        bool operator>(const Entry &o) const
        {
            if (t != o.t)
                return t > o.t;
            if (kind != o.kind)
                return kind > o.kind;
            return id > o.id;
        }
    };

    Sim &s;
    int first, n;                 // cores first .. first + n - 1
    std::vector<Entry> timers;    // min-heap
    std::vector<int32_t> work;    // MXU/vector/DMA units whose head op may be able to start
    std::vector<int32_t> ready;   // sends and recvs whose dependencies have all ended
    sc_core::sc_event wake;
    bool in_step = false;

    void step()
    {
        s.events++;
        in_step = true;
        const ps_t now = now_ps();
        for (;;) {
            while (!timers.empty() && timers.front().t <= now) {
                std::pop_heap(timers.begin(), timers.end(), std::greater<Entry>());
                const Entry e = timers.back();
                timers.pop_back();
                handle(e, now);
            }
            if (!ready.empty()) {
                const int32_t op = ready.back();
                ready.pop_back();
                start_net(op, now);
                continue;
            }
            if (work.empty())
                break;
            const int32_t u = work.back();
            work.pop_back();
            try_start(u, now);
        }
        in_step = false;
        if (!timers.empty())
            notify_at(wake, timers.front().t);
    }

    void handle(const Entry &e, ps_t now)
    {
        if (e.kind != ARRIVED) {
            finish(e.id, now);
            return;
        }
        s.arrival[(size_t)e.id] = now;
        const int32_t recv = s.pl.msgs[(size_t)e.id].recv;
        if (s.start[(size_t)recv] != NEVER) // posted before its message was in: ends now
            finish(recv, now);
    }

    bool is_net(int32_t op) const { return s.pl.unit[(size_t)op] == SIM_UNIT_NET; }

    // What core c can start at time 0: its in-order units (their head ops), and its sends and
    // recvs without dependencies.
    void seed(int c)
    {
        for (int u = 0; u < SIM_UNIT_COUNT; u++)
            if (u != SIM_UNIT_NET)
                work.push_back(c * SIM_UNIT_COUNT + u);
        const size_t net = (size_t)c * SIM_UNIT_COUNT + SIM_UNIT_NET;
        for (uint32_t k = s.pl.uops_start[net]; k < s.pl.uops_start[net + 1]; k++)
            if (s.pl.ndeps[(size_t)s.pl.uops[k]] == 0)
                ready.push_back(s.pl.uops[k]);
    }

    void finish(int32_t op, ps_t now)
    {
        SS_ASSERT(s.end[(size_t)op] == NEVER);
        s.end[(size_t)op] = now;
        if (is_net(op)) {
            net_leave(sim_program_op(s.pl.p, op)->core, now);
        } else {
            const int32_t u = s.pl.unit_index(op);
            SS_ASSERT(s.running[(size_t)u] == op);
            s.running[(size_t)u] = -1;
            s.unit_busy[(size_t)u] += now - s.start[(size_t)op];
            work.push_back(u);
        }
        for (uint32_t k = s.pl.succ_start[(size_t)op]; k < s.pl.succ_start[(size_t)op + 1]; k++) {
            const int32_t d = s.pl.succ[k];
            if (--s.pending[(size_t)d] != 0)
                continue;
            if (is_net(d))
                ready.push_back(d);
            else
                work.push_back(s.pl.unit_index(d));
        }
    }

    // A send or recv whose dependencies have all ended starts now.
    void start_net(int32_t op, ps_t now)
    {
        s.start[(size_t)op] = now;
        net_enter(sim_program_op(s.pl.p, op)->core, now);
        const int32_t m = s.pl.msg_of[(size_t)op];
        const uint8_t kind = sim_program_op(s.pl.p, op)->kind;
        if (kind == SIM_OP_COLLECTIVE)
            post_collective(op, now);
        else if (kind == SIM_OP_SEND)
            launch(m, now);
        else if (s.arrival[(size_t)m] != NEVER) // the message is already in
            post(now, UNIT_DONE, op);
    }

    // A member of a priced collective is posted; the last one begins the instance, and every
    // member's chip gets its end (engine.h).
    void post_collective(int32_t op, ps_t now);

    void net_enter(int32_t core, ps_t now)
    {
        if (s.net_inflight[(size_t)core]++ == 0)
            s.net_since[(size_t)core] = now;
    }

    void net_leave(int32_t core, ps_t now)
    {
        SS_ASSERT(s.net_inflight[(size_t)core] > 0);
        if (--s.net_inflight[(size_t)core] == 0)
            s.unit_busy[(size_t)core * SIM_UNIT_COUNT + SIM_UNIT_NET] +=
                now - s.net_since[(size_t)core];
    }

    void try_start(int32_t u, ps_t now)
    {
        SS_ASSERT(u % SIM_UNIT_COUNT != SIM_UNIT_NET); // sends and recvs go through start_net
        if (s.running[(size_t)u] != -1 || s.upos[(size_t)u] == s.pl.uops_start[(size_t)u + 1])
            return;
        const int32_t op = s.pl.uops[s.upos[(size_t)u]];
        if (s.pending[(size_t)op] != 0)
            return;
        s.upos[(size_t)u]++;
        s.running[(size_t)u] = op;
        s.start[(size_t)op] = now;
        switch (sim_program_op(s.pl.p, op)->kind) {
        case SIM_OP_SEND: launch(s.pl.msg_of[(size_t)op], now); break;
        case SIM_OP_RECV:
            if (s.arrival[(size_t)s.pl.msg_of[(size_t)op]] != NEVER)
                post(now, UNIT_DONE, op);
            break;
        default: post(now + s.pl.dur_ps[(size_t)op], UNIT_DONE, op); break;
        }
    }

    void launch(int32_t m, ps_t now);
};

// `count` consecutive packets pkt .. pkt + count - 1 of message msg, offered at `at` to hop
// `hop` of its route (a send offers all its packets at once, later hops get one at a time).
struct Run {
    ps_t at;
    int32_t msg, hop;
    uint64_t pkt, count;
    bool operator>(const Run &o) const // link order: (arrival, message, packet)
    {
        if (at != o.at)
            return at > o.at;
        if (msg != o.msg)
            return msg > o.msg;
        return pkt > o.pkt;
    }
};

// Runs sorted by link order. Runs are inserted almost always in order (time only moves
// forward and every hop adds the same latency), so insertion searches from the back.
class RunQueue {
public:
    bool empty() const { return q.empty(); }
    const Run &front() const { return q.front(); }
    void insert(const Run &r)
    {
        if (q.empty() || !(q.back() > r)) {
            q.push_back(r);
            return;
        }
        auto it = q.end() - 1;
        while (it != q.begin() && *(it - 1) > r)
            --it;
        q.insert(it, r);
    }
    Run pop_front()
    {
        const Run r = q.front();
        q.pop_front();
        return r;
    }
    // Takes the first packet of the front run. The rest keeps its place: no other run of the
    // same message and arrival time can follow it, so every other run stays greater.
    Run take_packet()
    {
        Run &f = q.front();
        Run one = f;
        one.count = 1;
        if (--f.count == 0)
            q.pop_front();
        else
            f.pkt++;
        return one;
    }

private:
    std::deque<Run> q;
};

// A directed link: packets offered for later times (inbound: forwarded ones, `latency`
// after they left the previous hop; local ones, from sends of this chip), packets waiting,
// and at most one packet serialising. The method wakes when the packet ends or, while the
// link is idle, when the next packet arrives; it never needs to wake for arrivals while busy,
// since the queue only grows until the next dispatch (so the peak queue is sampled there).
class Link : public sc_core::sc_module {
public:
    SC_HAS_PROCESS(Link);
    Link(sc_core::sc_module_name name, Sim &sim, int32_t link_id)
        : sc_core::sc_module(name), s(sim), id(link_id)
    {
        SC_METHOD(step);
        sensitive << wake;
        dont_initialize();
    }

    void offer(const Run &r, bool forwarded)
    {
        (forwarded ? fwd : local).insert(r);
        // a packet offered at the instant the current one started may have to displace it
        if (!busy || r.at <= cur_start)
            notify_at(wake, r.at);
    }

    // Closes the open busy interval (at the end of the simulation).
    void flush()
    {
        if (open.link >= 0)
            s.intervals.push_back(open);
        open.link = -1;
    }

private:
    Sim &s;
    int32_t id;
    RunQueue fwd, local;       // offered, not yet moved to waiting
    RunQueue waiting;          // arrived, waiting for the link
    uint64_t nwaiting = 0;     // packets in waiting
    bool busy = false;
    Run cur{};                 // the packet serialising (count 1)
    ps_t cur_start = 0, cur_end = 0;
    Interval open{-1, 0, 0};   // busy interval being extended
    int32_t open_msg = -1;
    sc_core::sc_event wake;

    // The inbound queue whose front comes first, or null if both are empty.
    RunQueue *next_inbound()
    {
        if (fwd.empty())
            return local.empty() ? nullptr : &local;
        return local.empty() || local.front() > fwd.front() ? &fwd : &local;
    }

    void step()
    {
        s.events++;
        const ps_t now = now_ps();
        if (busy && cur_end <= now) {
            busy = false;
            complete(now);
        }
        uint64_t before = nwaiting; // packets waiting just before now
        for (RunQueue *in; (in = next_inbound()) && in->front().at <= now;) {
            const Run r = in->pop_front();
            before += r.at < now ? r.count : 0;
            nwaiting += r.count;
            waiting.insert(r);
        }
        if (busy && cur_start == now && !waiting.empty() && cur > waiting.front()) {
            busy = false; // a same-time packet with a smaller key arrived in a later delta
            waiting.insert(cur);
            nwaiting++;
        }
        if (!busy && !waiting.empty())
            begin(now);
        const uint64_t peak = std::min<uint64_t>(std::max(before, nwaiting), UINT32_MAX);
        s.link_peak[(size_t)id] = std::max(s.link_peak[(size_t)id], (uint32_t)peak);
        RunQueue *in = next_inbound();
        if (busy)
            notify_at(wake, cur_end);
        else if (in)
            notify_at(wake, in->front().at);
    }

    void begin(ps_t now)
    {
        cur = waiting.take_packet();
        nwaiting--;
        busy = true;
        cur_start = now;
        cur_end = now + s.pl.packet_ser_ps(s.pl.msgs[(size_t)cur.msg], cur.pkt);
    }

    void record(ps_t start, ps_t end, int32_t msg)
    {
        if (open.link >= 0 && open_msg == msg && open.end == start) {
            open.end = end;
            return;
        }
        flush();
        open = Interval{id, start, end};
        open_msg = msg;
    }

    void complete(ps_t now);
};

void Chip::launch(int32_t m, ps_t now)
{
    const Message &msg = s.pl.msgs[(size_t)m];
    if (msg.hops == 0) { // same chip: no link time
        s.chips[(size_t)msg.dst_chip]->post(now, ARRIVED, m);
        post(now, SEND_DONE, msg.send);
        return;
    }
    const int32_t link = s.pl.route[msg.route_off];
    s.links[(size_t)link]->offer(Run{now, m, 0, 0, msg.packets}, false);
}

void Chip::post_collective(int32_t op, ps_t now)
{
    const sim_coll_index &ix = s.pl.ix;
    const int32_t inst = ix.inst_of[(size_t)op];
    const uint32_t first = ix.op_start[inst], n = ix.op_start[inst + 1] - first;
    if (++s.coll_posted[(size_t)inst] < n)
        return;
    s.coll_start[(size_t)inst] = now;
    const ps_t end = now + s.pl.coll_ps[(size_t)inst];
    for (uint32_t k = 0; k < n; k++) {
        const int32_t member = ix.ops[first + k];
        const int32_t core = sim_program_op(s.pl.p, member)->core;
        s.chips[(size_t)(core / s.pl.cores_per_chip)]->post(end, UNIT_DONE, member);
    }
}

void Link::complete(ps_t now)
{
    const Message &m = s.pl.msgs[(size_t)cur.msg];
    s.link_bytes[(size_t)id] += s.pl.packet_size(m, cur.pkt);
    s.link_packets[(size_t)id]++;
    s.link_busy[(size_t)id] += cur_end - cur_start;
    if (s.pl.cfg->record_links && cur_end > cur_start)
        record(cur_start, cur_end, cur.msg);
    if (cur.hop == 0 && ++s.left[(size_t)cur.msg] == m.packets)
        s.chips[(size_t)m.src_chip]->post(now, Chip::SEND_DONE, m.send);
    if (cur.hop + 1 < m.hops) {
        const int32_t next = s.pl.route[m.route_off + (uint32_t)cur.hop + 1];
        s.links[(size_t)next]->offer(Run{now + s.pl.latency_ps, cur.msg, cur.hop + 1, cur.pkt, 1},
                                     true);
    } else if (++s.arrived[(size_t)cur.msg] == m.packets) {
        s.chips[(size_t)m.dst_chip]->post(now + s.pl.latency_ps, Chip::ARRIVED, cur.msg);
    }
}

Sim::Sim(const Plan &plan) : pl(plan)
{
    const size_t nops = (size_t)pl.nops, nunits = (size_t)pl.ncores * SIM_UNIT_COUNT;
    const size_t nmsgs = pl.msgs.size(), nlinks = (size_t)pl.nlinks;
    start.assign(nops, NEVER);
    end.assign(nops, NEVER);
    pending.assign(pl.ndeps.begin(), pl.ndeps.end());
    upos.assign(pl.uops_start.begin(), pl.uops_start.end() - 1);
    running.assign(nunits, -1);
    unit_busy.assign(nunits, 0);
    net_inflight.assign((size_t)pl.ncores, 0);
    net_since.assign((size_t)pl.ncores, 0);
    left.assign(nmsgs, 0);
    arrived.assign(nmsgs, 0);
    arrival.assign(nmsgs, NEVER);
    coll_posted.assign((size_t)pl.ix.ninst, 0);
    coll_start.assign((size_t)pl.ix.ninst, NEVER);
    link_bytes.assign(nlinks, 0);
    link_packets.assign(nlinks, 0);
    link_busy.assign(nlinks, 0);
    link_peak.assign(nlinks, 0);
}

void Sim::build()
{
    char name[32];
    chips.resize((size_t)pl.nchips);
    for (int c = 0; c < pl.nchips; c++) {
        const int first = c * pl.cores_per_chip;
        const int n = std::min(pl.cores_per_chip, pl.ncores - first);
        if (n <= 0)
            break;
        snprintf(name, sizeof name, "chip%d", c);
        chips[(size_t)c].reset(new Chip(name, *this, first, n));
    }
    links.resize((size_t)pl.nlinks);
    for (int l = 0; l < pl.nlinks; l++) {
        snprintf(name, sizeof name, "link%d", l);
        links[(size_t)l].reset(new Link(name, *this, l));
    }
}

// After the run: every op must have ended; otherwise names the first op that did not.
ss_status check_finished(const Sim &sim, ss_err *err)
{
    const Plan &pl = sim.pl;
    for (int32_t i = 0; i < pl.nops; i++) {
        if (sim.end[(size_t)i] != NEVER)
            continue;
        const sim_prog_op *op = sim_program_op(pl.p, i);
        return ss_err_set(err, SS_ERR_DATA,
                          "the program deadlocks: op %d (core %d, %s) never %s, because its "
                          "dependencies and send -> recv pairs form a cycle (e.g. two cores that "
                          "each send only after their recv from the other; sim_program_validate "
                          "rejects such programs)",
                          (int)i, (int)op->core, sim_op_kind_name((sim_op_kind)op->kind),
                          sim.start[(size_t)i] == NEVER ? "started" : "finished");
    }
    return SS_OK;
}

// Inside a catch block: the status and message ("<context>: ...") of the exception being
// handled.
ss_status describe_exception(const char *context, char *msg, size_t size)
{
    try {
        throw;
    } catch (const std::bad_alloc &) {
        snprintf(msg, size, "%s: out of memory", context);
        return SS_ERR_NOMEM;
    } catch (const std::exception &e) {
        snprintf(msg, size, "%s: %s", context, e.what());
    } catch (...) {
        snprintf(msg, size, "%s: unknown exception", context);
    }
    return SS_ERR_DATA;
}

// ---- child side: run and write the results ------------------------------------------------

int write_all(int fd, const void *buf, size_t n)
{
    const char *b = static_cast<const char *>(buf);
    while (n > 0) {
        const ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

template <class T> int write_vec(int fd, const std::vector<T> &v)
{
    return write_all(fd, v.data(), v.size() * sizeof(T));
}

int write_results(int fd, const Sim &sim, Header &h)
{
    const Plan &pl = sim.pl;
    int rc = write_all(fd, &h, sizeof h);
    if (pl.cfg->record_ops)
        rc = rc || write_vec(fd, sim.start) || write_vec(fd, sim.end);
    rc = rc || write_vec(fd, sim.unit_busy) || write_vec(fd, sim.link_bytes) ||
         write_vec(fd, sim.link_packets) || write_vec(fd, sim.link_busy) ||
         write_vec(fd, sim.link_peak) || write_vec(fd, sim.intervals) ||
         write_vec(fd, sim.coll_start);
    return rc ? -1 : 0;
}

// Simulates and fills h (status, message, events, makespan, intervals); returns the model.
std::unique_ptr<Sim> simulate(const Plan &pl, Header &h)
{
    ss_err err{};
    std::unique_ptr<Sim> sim(new Sim(pl));
    sc_core::sc_set_time_resolution(1, sc_core::SC_PS);
    sim->build();
    sc_core::sc_start();
    for (auto &l : sim->links)
        l->flush();
    std::sort(sim->intervals.begin(), sim->intervals.end(),
              [](const Interval &a, const Interval &b) {
                  return a.link != b.link ? a.link < b.link : a.start < b.start;
              });
    h.events = sim->events;
    h.nintervals = sim->intervals.size();
    h.makespan_ps = 0;
    for (ps_t e : sim->end)
        h.makespan_ps = std::max(h.makespan_ps, e);
    h.status = check_finished(*sim, &err);
    std::memcpy(h.msg, err.msg, sizeof h.msg);
    return sim;
}

[[noreturn]] void child_main(const Plan &pl, int fd)
{
    // stdout belongs to the caller's data: anything SystemC prints goes to stderr.
    dup2(STDERR_FILENO, STDOUT_FILENO);
    setenv("SC_COPYRIGHT_MESSAGE", "DISABLE", 1);
    Header h{};
    h.magic = MAGIC;
    int rc = 0;
    try {
        std::unique_ptr<Sim> sim = simulate(pl, h);
        rc = h.status == SS_OK ? write_results(fd, *sim, h) : write_all(fd, &h, sizeof h);
    } catch (...) {
        h.status = describe_exception("systemc simulation", h.msg, sizeof h.msg);
        rc = write_all(fd, &h, sizeof h);
    }
    std::cout.flush(); // SystemC's reports go to std::cout, now stderr; _exit flushes nothing
    _exit(rc == 0 ? 0 : 3);
}

// ---- parent side: read the results ---------------------------------------------------------

// Reads exactly n bytes; returns 0, or -1 on a short read (the child died) or an error.
int read_all(int fd, void *buf, size_t n)
{
    char *b = static_cast<char *>(buf);
    while (n > 0) {
        const ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

double seconds(ps_t ps)
{
    return (double)ps / 1e12;
}

// Reads n picosecond values into dst as seconds.
int read_seconds(int fd, double *dst, size_t n)
{
    std::vector<ps_t> v(n);
    if (read_all(fd, v.data(), n * sizeof(ps_t)) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        dst[i] = seconds(v[i]);
    return 0;
}

// Reads the arrays that follow a successful header into out (already allocated).
ss_status read_arrays(int fd, const Plan &pl, const Header &h, sim_result *out, ss_err *err)
{
    const size_t nops = (size_t)pl.nops, nlinks = (size_t)pl.nlinks;
    int rc = 0;
    if (pl.cfg->record_ops)
        rc = read_seconds(fd, out->op_start_s, nops) || read_seconds(fd, out->op_end_s, nops);
    rc = rc || read_seconds(fd, out->unit_busy_s, (size_t)pl.ncores * SIM_UNIT_COUNT);
    rc = rc || read_all(fd, out->link_bytes, nlinks * sizeof *out->link_bytes);
    rc = rc || read_all(fd, out->link_packets, nlinks * sizeof *out->link_packets);
    rc = rc || read_seconds(fd, out->link_busy_s, nlinks);
    rc = rc || read_all(fd, out->link_peak_queue, nlinks * sizeof *out->link_peak_queue);
    std::vector<Interval> iv(rc ? 0 : h.nintervals);
    rc = rc || read_all(fd, iv.data(), iv.size() * sizeof(Interval));
    std::vector<ps_t> coll_start((size_t)pl.ix.ninst);
    rc = rc || read_all(fd, coll_start.data(), coll_start.size() * sizeof(ps_t));
    if (rc)
        return ss_err_set(err, SS_ERR_IO, "the systemc simulation process sent incomplete "
                                          "results");
    for (const Interval &i : iv) {
        const ss_status st = sim_result_add_interval(out, (int32_t)i.link, seconds(i.start),
                                                     seconds(i.end), err);
        if (st != SS_OK)
            return st;
    }
    for (int32_t k = 0; k < pl.ix.ninst; k++) {
        const ss_status st = sim_result_add_collective(
            out, pl.cfg, sim_coll_index_price(&pl.ix, pl.prices, k),
            pl.prices->origin_of[pl.ix.id[k]], seconds(coll_start[(size_t)k]), err);
        if (st != SS_OK)
            return st;
    }
    out->makespan_s = seconds(h.makespan_ps);
    out->events = h.events;
    for (size_t l = 0; l < nlinks; l++)
        out->link_bound_s = std::max(out->link_bound_s, out->link_busy_s[l]);
    return SS_OK;
}

ss_status read_results(int fd, const Plan &pl, sim_result *out, ss_err *err)
{
    Header h{};
    if (read_all(fd, &h, sizeof h) != 0 || h.magic != MAGIC)
        return ss_err_set(err, SS_ERR_IO, "the systemc simulation process sent no results");
    if (h.status != SS_OK) {
        h.msg[sizeof h.msg - 1] = '\0';
        return ss_err_set(err, (ss_status)h.status, "%s", h.msg);
    }
    // unit_busy_s covers every core of the pod, as in the analytic engine; cores beyond the
    // program's stay 0
    ss_status st = sim_result_alloc(out, pl.nops, sim_topo_ncores(pl.cfg->topo), pl.nlinks,
                                    pl.cfg->record_ops, err);
    return st == SS_OK ? read_arrays(fd, pl, h, out, err) : st;
}

// Waits for the child; turns a crash or a failed exit into an error (keeps an earlier one).
ss_status reap(pid_t pid, ss_status st, ss_err *err)
{
    int ws = 0;
    pid_t r;
    while ((r = waitpid(pid, &ws, 0)) < 0 && errno == EINTR) {
    }
    if (st != SS_OK && st != SS_ERR_IO)
        return st; // the child reported its own error and then exited
    if (r < 0 && errno == ECHILD && st == SS_OK)
        return st; // reaped by the caller's SIGCHLD handling, after sending complete results
    if (r < 0)
        return ss_err_set(err, SS_ERR_IO, "waiting for the systemc simulation process: %s",
                          strerror(errno));
    if (WIFSIGNALED(ws))
        return ss_err_set(err, SS_ERR_DATA, "the systemc simulation process was killed by "
                                            "signal %d (%s)",
                          WTERMSIG(ws), strsignal(WTERMSIG(ws)));
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        return ss_err_set(err, SS_ERR_IO, "the systemc simulation process failed (exit status "
                                          "%d) writing its results",
                          WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
    return st;
}

ss_status run_forked(const Plan &pl, sim_result *out, ss_err *err)
{
    int fds[2];
    if (pipe(fds) != 0)
        return ss_err_set(err, SS_ERR_IO, "pipe for the systemc simulation: %s", strerror(errno));
    fflush(stdout); // nothing buffered may be written twice
    fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) {
        const int e = errno;
        close(fds[0]);
        close(fds[1]);
        return ss_err_set(err, SS_ERR_NOMEM, "fork for the systemc simulation: %s", strerror(e));
    }
    if (pid == 0) {
        close(fds[0]);
        child_main(pl, fds[1]);
    }
    close(fds[1]);
    ss_status st = read_results(fds[0], pl, out, err);
    close(fds[0]); // a child still writing gets EPIPE and exits
    return reap(pid, st, err);
}

} // namespace

extern "C" ss_status sim_sc_engine_run(const sim_program *p, const sim_engine_cfg *cfg,
                                       const sim_coll_prices *prices,
                                       sim_result *out, ss_err *err)
{
    std::memset(out, 0, sizeof *out);
    ss_status st = sim_engine_check(p, cfg, prices, err);
    if (st != SS_OK)
        return st;
    try {
        Plan pl{};
        st = plan_build(pl, p, cfg, prices, err);
        if (st == SS_OK)
            st = run_forked(pl, out, err);
    } catch (...) {
        char msg[sizeof err->msg];
        st = describe_exception("preparing the systemc simulation", msg, sizeof msg);
        ss_err_set(err, st, "%s", msg);
    }
    if (st != SS_OK)
        sim_result_free(out);
    return st;
}
