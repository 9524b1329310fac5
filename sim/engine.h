/* This file declares the interface shared by switchsim's two timing engines, which execute a
 * step program (sim/program.h) on a pod (a chip description plus a topology) without
 * computing any values:
 *   - the analytic engine (sim/engine_analytic.c): list scheduling in op order — an op starts
 *     when its dependencies have finished and (matmul, vector, hbm) its unit of its core is
 *     free — with each chip port's sends queued FIFO and transfers otherwise priced
 *     contention-free (hops * latency + bytes / bandwidth + packetisation), and the per-link
 *     load reported as a lower bound on the makespan;
 *   - the SystemC engine (sim/sc/): discrete events, one module per chip, links as modules
 *     that serialise packets FIFO per direction, so flows that share a link share its
 *     bandwidth.
 *
 * Units of a core: the matrix units (matmul ops), the vector unit (vector ops), the DMA engine
 * (hbm ops) and the network interface (send/recv ops). Ops of the MXU, vector and DMA units of
 * one core run one at a time in program order; ops on different units overlap when their
 * dependencies allow. The network interface is not an in-order unit: like a TPU chip's ICI
 * ports, each with its own DMA engines, it runs any number of sends and recvs at once:
 *   - a send is issued as soon as its dependencies have finished (its start); it injects its
 *     message into the first link of its route, i.e. the chip's port in that direction. Sends
 *     to different first links proceed concurrently; sends that share a first link (from one
 *     core or from several cores of the chip) queue on it, served FIFO by issue time, then op
 *     id, packet by packet like every other packet offered to that link (below). A send ends
 *     when its last packet has left the source chip, i.e. finished serialising on the first
 *     link; a send between two cores of one chip (0 hops) ends when it starts and costs
 *     nothing;
 *   - a recv occupies nothing: it starts when its dependencies have finished and ends at
 *     max(start, arrival of its message's last packet), so a recv posted early delays no
 *     other op of its core.
 * Consequently a program deadlocks only through a cycle of explicit dependencies and
 * send -> recv edges (e.g. two cores that each make their send depend on their recv), which
 * is what sim_program_validate rejects; the engines still report such a cycle in an
 * unvalidated program as an error naming an op that never finished.
 * Busy time (sim_result.unit_busy_s): for MXU, vector and DMA the sum of their ops' durations;
 * for SIM_UNIT_NET the time during which at least one send or recv of the core was in flight
 * (the union of the ops' [start, end) windows, so a recv's wait for its message counts, and
 * concurrent transfers count once).
 * Both engines queue the sends of a port as above; beyond the port, the analytic engine prices
 * each message contention-free (flows sharing a later link overlap there; link_bound_s counts
 * every link's whole load) while the SystemC engine queues packets on every link. The two
 * therefore agree on programs in which no link is wanted at once by a message injected into it
 * and another one forwarded into it or crossing it as a later hop (up to picosecond rounding,
 * and the order of empty messages, which take no link time, among same-instant sends).
 * Where multi-hop messages share later links, the analytic makespan can fall far below the
 * links' load; the isolated pricing of collectives therefore raises an analytic price to its
 * schedule's step-wise link-load bound (collectives/coll_price.h).
 *
 * Link model: a message of B bytes is cut into P = ceil(B / packet_bytes) packets; a packet
 * crosses one hop in its serialisation time (its bytes / link bandwidth) followed by the hop
 * latency, and is forwarded to the next hop once fully received (store-and-forward per
 * packet). An uncontended message over h hops therefore takes
 *   h * (latency + t_first) + (bytes - first packet bytes) / bandwidth
 * where t_first is the first packet's serialisation time. A message between two cores of the
 * same chip takes no link time (it is priced as zero hops). Each directed link serialises the
 * packets offered to it in arrival order (FIFO); ties in arrival time are broken by message
 * (op) id, then packet index, so results are deterministic.
 *
 * Invariants: results are deterministic for a given program and configuration; times are in
 * seconds (double); per-op arrays are indexed by op id, per-link arrays by sim_topo link id.
 */
#ifndef SWITCHSIM_SIM_ENGINE_H
#define SWITCHSIM_SIM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "sim/chip.h"
#include "sim/pod.h"
#include "sim/program.h"
#include "sim/topo.h"

typedef enum { SIM_ENGINE_ANALYTIC = 0, SIM_ENGINE_SYSTEMC = 1 } sim_engine_kind;

typedef enum {
    SIM_UNIT_MXU = 0,
    SIM_UNIT_VECTOR,
    SIM_UNIT_DMA,
    SIM_UNIT_NET,
    SIM_UNIT_COUNT
} sim_unit;

typedef struct {
    int32_t link;
    double start_s, end_s;
} sim_link_interval;

/* ---- priced collectives --------------------------------------------------------------
 * A program may keep its collective ops unlowered when the caller gives their prices
 * (sim_engine_run_priced): what one instance costs when it runs ALONE on the pod, found
 * by whoever fills the table (the cli simulates every distinct collective once, lowered to
 * send/recv, with the same engine: collectives/coll_price.h). Such an op is a network op of
 * its core (SIM_UNIT_NET: it holds no in-order unit); it is posted (its start) when its
 * dependencies have ended; the instance begins at t0 = the latest start of its members (every
 * member of the group must have one op with that id) and every member ends at t0 + seconds.
 * The instance adds the price's per-link bytes, packets and busy time once (not per member) to
 * the result, its peak queues as a max, and with record_links its busy intervals shifted by
 * t0. A price was measured on one group (its `origin_chip` = the chip of the group's first
 * member); an instance whose first member sits on another chip (a translated copy of that
 * group on a torus) gets the price's links moved by the same translation. A cycle through
 * collective instances (each instance one node, as sim_program_validate sees them) never
 * finishes and is reported like any other deadlock.
 * What this ignores: contention between concurrent collectives and with other traffic
 * (each instance is priced as if it had the pod to itself), and the skew of members that
 * start late inside a lowered schedule (a lowered collective lets early ranks begin). */
typedef struct {
    int32_t link;
    uint64_t bytes, packets;
    double busy_s;
    uint32_t peak_queue;
} sim_coll_link_load;

typedef struct {
    double seconds;                    /* duration once every member is ready */
    int32_t origin_chip;               /* chip of the first member of the measured group */
    const sim_coll_link_load *links;   /* [nlinks] the links it loads (sparse) */
    int32_t nlinks;
    const sim_link_interval *intervals; /* [nintervals] busy windows, start 0 = t0 */
    size_t nintervals;
} sim_coll_price;

typedef struct {
    int32_t nids;                  /* collective ids 0 .. nids-1 */
    const int32_t *price_of;       /* [nids] index into prices, -1 = not priced */
    const int32_t *origin_of;      /* [nids] chip of the instance's first member */
    const sim_coll_price *prices;  /* [nprices] */
    int32_t nprices;
} sim_coll_prices;

typedef struct {
    const sim_chip *chip;  /* every chip of the pod is this chip */
    const sim_topo *topo;  /* cores = topo chips * chip cores_per_chip */
    uint32_t packet_bytes; /* messages are split into packets of this size (last may be short) */
    int record_ops;        /* fill op_start_s/op_end_s */
    int record_links;      /* fill link_intervals (busy intervals of every link) */
} sim_engine_cfg;

/* Default packet size of ICI messages. */
enum { SIM_PACKET_BYTES_DEFAULT = 4096 };

typedef struct {
    double makespan_s;           /* end of the last op */
    double link_bound_s;         /* max over links of busy time: a lower bound on the makespan */
    int32_t nops, ncores, nlinks;
    double *op_start_s, *op_end_s; /* [nops] when record_ops, else NULL */
    double *unit_busy_s;         /* [ncores * SIM_UNIT_COUNT]: time each unit was busy (net:
                                    time with at least one send or recv in flight) */
    uint64_t *link_bytes;        /* [nlinks] payload bytes carried */
    uint64_t *link_packets;      /* [nlinks] packets carried */
    double *link_busy_s;         /* [nlinks] serialisation time of those packets */
    uint32_t *link_peak_queue;   /* [nlinks] most packets waiting for the link at once */
    sim_link_interval *link_intervals; /* [nlink_intervals] when record_links, else NULL */
    size_t nlink_intervals;
    uint64_t events;             /* events processed (0 for the analytic engine) */
    size_t link_intervals_cap;   /* allocated entries of link_intervals (engine.c's helper) */
} sim_result;

/* Runs program p on the engine; *out is owned by the caller (free with sim_result_free) and is
 * zeroed on error. Fails with a message for programs the engine cannot price (e.g. collective
 * ops before the collectives module lowers them) and for inconsistent configurations. */
ss_status sim_engine_run(sim_engine_kind kind, const sim_program *p, const sim_engine_cfg *cfg,
                         sim_result *out, ss_err *err);
/* The same for a program whose collective ops are priced by table (see "priced collectives"
 * above; prices NULL is sim_engine_run). Every collective id must have a price. */
ss_status sim_engine_run_priced(sim_engine_kind kind, const sim_program *p,
                                const sim_engine_cfg *cfg, const sim_coll_prices *prices,
                                sim_result *out, ss_err *err);
void sim_result_free(sim_result *r);
const char *sim_engine_name(sim_engine_kind kind);
int sim_engine_parse(const char *s, sim_engine_kind *out);
const char *sim_unit_name(sim_unit u);

/* ---- helpers shared by both engines (sim/engine.c) ----------------------------------- */

/* The analytic engine (sim/engine_analytic.c); sim_engine_run(_priced) checks cfg, p and
 * prices (may be NULL) with sim_engine_check first. */
ss_status sim_analytic_engine_run(const sim_program *p, const sim_engine_cfg *cfg,
                                  const sim_coll_prices *prices, sim_result *out, ss_err *err);

/* Checks what both engines need: chip and topo set, chip->cores_per_chip equal to the
 * topology's, packet_bytes >= 1, p->ncores <= the pod's cores (a smaller program leaves the
 * remaining cores idle; a larger one fails naming both numbers), no collective op unless
 * prices (may be NULL) prices its id (otherwise the collectives module lowers them to
 * send/recv first), and a clean builder status. */
ss_status sim_engine_check(const sim_program *p, const sim_engine_cfg *cfg,
                           const sim_coll_prices *prices, ss_err *err);

/* The unit that runs ops of a kind: matmul -> MXU, vector -> VECTOR, hbm -> DMA, send, recv
 * and (priced) collective -> NET (not in-order: see the network interface above); anything
 * else returns SIM_UNIT_COUNT. */
sim_unit sim_engine_op_unit(sim_op_kind kind);

/* Seconds op id of p takes on one core of chip when it runs alone: matmul from
 * sim_matmul_time (bf16/fp32 operands as given, double buffering, SIM_FP32_PASSES_DEFAULT),
 * vector from sim_vector_time, hbm = (read + write bytes) / sim_timing_core_hbm_bytes_per_s.
 * Only for those three kinds (SS_ASSERT); SS_ERR_RANGE from the timing models. */
ss_status sim_engine_op_seconds(const sim_program *p, int32_t id, const sim_chip *chip,
                                double *seconds, ss_err *err);

/* One message under the link model above (bandwidth link_gbps * 1e9 B/s, latency
 * link_latency_ns * 1e-9 s of the chip). A 0-byte message is one empty packet: it pays the
 * hop latencies and no serialisation. */
typedef struct {
    uint64_t bytes;        /* payload */
    uint64_t packets;      /* max(1, ceil(bytes / packet_bytes)) */
    uint32_t packet_bytes; /* size of every packet but the last */
    double bytes_per_s;    /* link bandwidth, one direction */
    double latency_s;      /* per hop */
    double ser_s;          /* bytes / bandwidth: time the message occupies each link it crosses */
    double first_ser_s;    /* serialisation time of the first packet */
} sim_msg;

void sim_msg_init(sim_msg *m, const sim_chip *chip, uint64_t bytes, uint32_t packet_bytes);
/* Bytes of packet i (0 <= i < packets): packet_bytes except for a short last one. */
uint64_t sim_msg_packet_bytes(const sim_msg *m, uint64_t i);
/* Contention-free time from the first packet entering the first link until the last packet
 * has arrived over hops links: hops * (latency + first_ser_s) + (bytes - first packet) /
 * bandwidth; 0 for hops == 0. */
double sim_msg_latency_s(const sim_msg *m, int hops);
/* Contention-free busy window of the k-th link (0-based) of the route, relative to the
 * message's start: [k * (latency + first_ser_s), that + ser_s). */
double sim_msg_link_start_s(const sim_msg *m, int k);

/* Allocates r for nops ops, ncores cores and nlinks links, every counter zero; op times
 * only when record_ops. On failure r is zeroed. */
ss_status sim_result_alloc(sim_result *r, int32_t nops, int32_t ncores, int32_t nlinks,
                           int record_ops, ss_err *err);
/* Adds m to the statistics of every link of route[0..hops): bytes, packets, ser_s. */
void sim_result_add_message(sim_result *r, const int *route, int hops, const sim_msg *m);
/* Appends one busy interval (amortised O(1)). */
ss_status sim_result_add_interval(sim_result *r, int32_t link, double start_s, double end_s,
                                  ss_err *err);

/* The priced collectives of a program: instance k is the k-th distinct collective id in
 * ascending order. Built after sim_engine_check; fails (SS_ERR_DATA) when an instance lacks
 * ops on some members of its group. Empty when prices is NULL. */
typedef struct {
    int32_t ninst;
    int32_t *inst_of;   /* [nops] instance of a collective op, -1 for other ops */
    int32_t *id;        /* [ninst] collective id of each instance */
    uint32_t *op_start; /* [ninst + 1] CSR into ops */
    int32_t *ops;       /* member ops of each instance, ascending */
} sim_coll_index;
ss_status sim_coll_index_build(sim_coll_index *ix, const sim_program *p,
                               const sim_coll_prices *prices, ss_err *err);
void sim_coll_index_free(sim_coll_index *ix);
const sim_coll_price *sim_coll_index_price(const sim_coll_index *ix,
                                           const sim_coll_prices *prices, int32_t inst);
/* Adds one instance of price pr, begun at t0 by a group whose first member is on origin_chip:
 * link statistics (moved by the translation from pr->origin_chip) and, with cfg->record_links,
 * the shifted busy intervals. */
ss_status sim_result_add_collective(sim_result *r, const sim_engine_cfg *cfg,
                                    const sim_coll_price *pr, int32_t origin_chip, double t0,
                                    ss_err *err);

#endif
