/* This file declares switchsim's collectives: all-reduce, reduce-scatter, all-gather,
 * all-to-all, all-to-allv, broadcast and barrier over any group of cores. Each collective is
 * built once as a transfer SCHEDULE, which serves two purposes:
 *   - the data executor (coll_schedule_execute, coll_run) applies it to real per-core
 *     buffers of fp32 or bf16 values (functional training);
 *   - the lowering (coll_schedule_lower, coll_program_lower) turns it into send/recv ops of a
 *     step program (sim/program.h) that either timing engine prices on the torus.
 *
 * Schedule. A schedule for a group of p ranks (rank i = the group's i-th core) is a list of
 * steps; a step is a list of transfers {src, dst, src_off, dst_off, count, reduce}: rank src
 * sends elements [src_off, src_off + count) of its workspace to rank dst, which copies them to
 * [dst_off, ...) or, when reduce is set, adds them there. A transfer with src == dst is a local
 * copy (all-to-all moves a core's own block that way): it is never a message. Every rank owns a
 * workspace of work[rank] elements laid out per kind (in_off/in_count: where the input goes,
 * out_off/out_count: where the result is read):
 *   allreduce      work = count; in and out = [0, count)
 *   reducescatter  work = count; in = [0, count); out = chunk r of the balanced split of count
 *                  into p parts (the first count % p parts have one element more)
 *   allgather      work = count (the output size); in = chunk r; out = [0, count)
 *   broadcast      work = count; root = rank 0 (in = [0, count) there, empty elsewhere)
 *   alltoall(v)    work = S_r + R_r + staging: send buffer [0, S_r) with the blocks for ranks
 *                  0..p-1 in rank order, receive buffer [S_r, S_r + R_r) with the blocks from
 *                  ranks 0..p-1 in rank order, then staging areas of the dimension-ordered
 *                  algorithm; alltoall = alltoallv with matrix[i][j] = chunk j of count
 *   barrier        no data; every step carries 0-element messages
 * Step semantics: all transfers of a step read their sources as they were before the step
 * (the executor stages them first), then they are applied in list order. That order is fixed
 * by the algorithm, so every reduction has a fixed order and results are bit-reproducible.
 *
 * Numerics. Reductions run in fp32. bf16 buffers are widened into an fp32 workspace, every
 * partial sum stays in fp32 and the result is rounded to bf16 ONCE at the end (round to
 * nearest even, the given denormal policy): the executor models partial sums that travel in
 * fp32, while the schedule prices the wire at elem_bytes (2 for bf16). Copy-only kinds
 * (all-gather, all-to-all(v), broadcast) move raw element bytes, so every bit arrives intact.
 *
 * Algorithms (coll_algo):
 *   ring     unidirectional ring in group rank order; p - 1 steps per reduce-scatter or
 *            all-gather phase (all-reduce = both, 2(p - 1) steps); broadcast: a pipelined
 *            chain 0 -> 1 -> ... -> p-1 of p - 1 chunks (2p - 3 steps for p >= 2)
 *   biring   bidirectional ring: every chunk is split in two halves, one reduced/gathered
 *            clockwise and one counter-clockwise in the same steps
 *   torus    dimension-wise: a reduce-scatter along each grid dimension in turn, each on the
 *            part the previous phase left, then all-gathers back in the reverse order. Needs
 *            a box group (coll_group_grid: the same cores of every chip of a box of chips, as
 *            `all`, rows, columns and planes are); the cores of a chip are one more
 *            dimension (on-chip, free). Reduce-scatter and all-gather go from the slowest
 *            rank coordinate (z) to the fastest (the cores of a chip), so rank r ends with
 *            chunk r; all-reduce goes the other way (on-chip first, so the links carry 1/c
 *            of the buffer with c cores a chip). Rings along a dimension follow the
 *            coordinate order, so wrapped dimensions give 1-hop rings
 *   hd       recursive halving (reduce-scatter) and doubling (all-gather); p must be a power
 *            of two, otherwise the schedule FALLS BACK to ring (schedule.algo says ring)
 *   tree     broadcast: binomial tree from rank 0, ceil(log2 p) steps of the whole buffer
 *   direct   all-to-all(v): one step, every rank sends every peer its block, routed by the
 *            network; a rank's sends go to rank + 1, rank + 2, ... (rotated)
 *   dimorder all-to-all(v) over a box group: exchange among the cores of a chip, then along
 *            x, then y, then z (each phase an all-to-all among the ranks of a line,
 *            forwarding blocks towards their destination's coordinate), as TPU systems do
 *   dissem   barrier: dissemination, ceil(log2 p) steps of 0-byte messages to rank + 2^k
 *   auto     the applicable algorithm with the lowest coll_schedule_predict (ties: the
 *            order above)
 *
 * Invariants: a built schedule's transfers stay inside both workspaces; every element of a
 * reduce-scatter/all-reduce output is the sum of all p inputs; no step is empty (a
 * collective with nothing to move, p = 1 or count 0, has no steps; a barrier's messages
 * carry 0 elements); reductions only go between distinct ranks.
 *
 * Timing: both engines give a core a network interface that drives every port of its chip
 * at once (sim/engine.h): sends to different first links run concurrently, sends that share
 * one queue on it, and a recv holds nothing. The lowering lets the messages of one step run
 * together, so algorithms that send on several links at once (biring, direct all-to-all) gain
 * on the makespan as on the links' load.
 */
#ifndef SWITCHSIM_COLLECTIVES_COLL_H
#define SWITCHSIM_COLLECTIVES_COLL_H

#include <stddef.h>
#include <stdint.h>

#include "common/bf16.h"
#include "common/status.h"
#include "sim/chip.h"
#include "sim/program.h"
#include "sim/topo.h"

typedef enum {
    COLL_ALGO_AUTO = 0,
    COLL_ALGO_RING,
    COLL_ALGO_BIRING,
    COLL_ALGO_TORUS,
    COLL_ALGO_HD,
    COLL_ALGO_TREE,
    COLL_ALGO_DIRECT,
    COLL_ALGO_DIMORDER,
    COLL_ALGO_DISSEM,
    COLL_ALGO_COUNT
} coll_algo;

typedef enum { COLL_FP32 = 0, COLL_BF16 = 1 } coll_dtype;

/* One transfer of a step (element offsets into the two ranks' workspaces). */
typedef struct {
    uint64_t src_off, dst_off; /* elements */
    uint64_t count;            /* elements, may be 0 (barrier) */
    int32_t src, dst;          /* ranks 0..p-1; equal: a local copy, not a message */
    int32_t reduce;            /* 1: dst += src (fp32), 0: copy */
} coll_xfer;

/* What to build: a collective over a group of p ranks. */
typedef struct {
    sim_coll_kind kind;
    int32_t p;               /* ranks, >= 1 */
    uint64_t count;          /* elements of the per-core buffer (program.h convention);
                                ignored for alltoallv and barrier */
    const uint64_t *matrix;  /* alltoallv: [p * p] elements rank i sends rank j; else NULL */
    uint32_t elem_bytes;     /* bytes of one element on the wire (1, 2 or 4) */
    const sim_topo *topo;    /* may be NULL: then torus and dimorder do not apply */
    const int32_t *cores;    /* [p] topology core of each rank (needed with topo) */
} coll_desc;

typedef struct {
    sim_coll_kind kind;
    coll_algo algo;          /* the algorithm used (after any fallback) */
    int32_t p;
    uint32_t elem_bytes;
    uint64_t count;          /* as in the desc (alltoallv: largest row sum) */
    uint64_t *work;          /* [p] workspace elements of each rank */
    uint64_t *in_off, *in_count, *out_off, *out_count; /* [p] each */
    int32_t nsteps;
    size_t *step_start;      /* [nsteps + 1] into x */
    coll_xfer *x;            /* [nx] transfers, step by step */
    size_t nx, x_cap, step_cap;
} coll_schedule;

/* Link figures the cost model and auto use: alpha = latency_s per hop, B = bytes_per_s of
 * one link in one direction, packets of packet_bytes (store-and-forward per hop, as the
 * engines do: each hop after the first adds one packet's serialisation). There is no other
 * per-message overhead (the engines have none). */
typedef struct {
    double bytes_per_s;
    double latency_s;
    uint32_t packet_bytes;
} coll_cost;

/* ---- names ---- */
const char *coll_algo_name(coll_algo a);
/* Parses an algorithm name; "" and "auto" give COLL_ALGO_AUTO. Returns 0, or -1. */
int coll_algo_parse(const char *s, coll_algo *out);
/* Parses allreduce|reducescatter|allgather|alltoall|alltoallv|broadcast|barrier. */
int coll_kind_parse(const char *s, sim_coll_kind *out);
/* Whether algo can build kind for this desc (auto: always). */
int coll_algo_applies(coll_algo a, const coll_desc *d);
/* The link figures of a chip: B = link_gbps * 1e9, alpha = link_latency_ns * 1e-9. */
coll_cost coll_cost_of_chip(const sim_chip *chip, uint32_t packet_bytes);

/* ---- schedules (coll.c, coll_algos.c, coll_a2a.c) ---- */
/* Builds s for d with algorithm a (not auto); SS_ERR_RANGE when a does not apply to d (the
 * message says why). On failure s is left freed. */
ss_status coll_schedule_build(coll_schedule *s, const coll_desc *d, coll_algo a, ss_err *err);
/* Builds every applicable algorithm and keeps the one with the lowest predicted time. */
ss_status coll_schedule_build_auto(coll_schedule *s, const coll_desc *d, const coll_cost *c,
                                   ss_err *err);
void coll_schedule_free(coll_schedule *s);
/* Checks the invariants (ranks and ranges, reduce only onto distinct ranks, no reduce on
 * copy-only kinds); used by the tests. */
ss_status coll_schedule_check(const coll_schedule *s, ss_err *err);
/* Network bytes the schedule sends in total (local copies excluded). */
uint64_t coll_schedule_bytes(const coll_schedule *s);
/* The alpha-beta time of the schedule on topo (ranks on d->cores): for every step,
 *   largest bytes a link carries / B
 *   + largest over its messages of hops * alpha + (hops - 1) * first packet / B,
 * summed over steps. A rank's injection is no separate bound: its sends to different first
 * links run concurrently and those sharing one add up on that link (engine.h), and messages
 * between two cores of one chip are free. Without a topology every ordered pair of ranks has
 * its own link (the step costs its largest message). It approximates the engines when steps
 * do not overlap (queueing beyond a link's total load is not modelled). */
ss_status coll_schedule_predict(const coll_schedule *s, const coll_desc *d, const coll_cost *c,
                               double *seconds, ss_err *err);

/* ---- data (coll_exec.c) ---- */
/* Applies s to workspaces work[p] (work[r] holds s->work[r] elements of elem_size bytes;
 * elem_size must be 4 (fp32) if s reduces). */
ss_status coll_schedule_execute(const coll_schedule *s, void *const *work, size_t elem_size,
                                ss_err *err);
/* Runs s on user buffers: in[r] holds in_count[r] elements of dtype, out[r] receives
 * out_count[r] (NULL allowed where the count is 0). Reductions in fp32, bf16 rounded once
 * with pol. */
ss_status coll_run(const coll_schedule *s, coll_dtype dtype, bf16_denormals pol,
                   const void *const *in, void *const *out, ss_err *err);

/* ---- lowering to step programs (coll_lower.c) ---- */
/* Appends the schedule's messages to program p: rank r runs on core cores[r]; every
 * aggregated message of a step (all transfers from one rank to another in that step) is one
 * send/recv pair with the given tag, sized count * elem_bytes. Per rank and step: its sends
 * (in the order the schedule lists them), then its recvs (ordered by the position of the
 * matching send in its sender's list, then sender); every op of a step depends on the rank's
 * previous step's last op (the first step's on deps[r][0..ndeps[r]), deps/ndeps may be NULL)
 * and the step's last op also on its other ops, so a step's messages run concurrently. No
 * vector op is added for reductions: the collective is priced as communication only.
 * last[r] (may be NULL) receives the rank's last op, or -1 if it has none. */
ss_status coll_schedule_lower(const coll_schedule *s, sim_program *p, const int32_t *cores,
                              int32_t tag, const int32_t *const *deps, const int32_t *ndeps,
                              int32_t *last, ss_err *err);
/* Replaces every collective op of in by its schedule (algorithm from the op's hint, "auto"
 * or none = auto with c; a hint that does not apply is an error naming the op). Every member
 * of collective id I gets its rank's messages, tagged COLL_TAG_BASE + I, whose first op
 * takes the collective's dependencies; ops that depended on the collective depend on the
 * core's last op of it (a member with no message gets one empty hbm op as the join). Other
 * ops are copied with their labels, layers and phases; the program's own sends and recvs
 * must use tags below COLL_TAG_BASE = 2^30. out must not be initialised; it is left freed on
 * failure. */
enum { COLL_TAG_BASE = 1 << 30 };
ss_status coll_program_lower(const sim_program *in, const sim_topo *topo, const coll_cost *c,
                             sim_program *out, ss_err *err);

/* ---- groups (coll_group.c) ---- */
/* Parses a group spec into cores[] (malloc'd, *n entries):
 *   all             every core of the topology
 *   0-15,32         a list of cores and inclusive ranges, in that order, no repeats
 *   row:Y           the chips with y = Y (and z = 0), x ascending
 *   col:X           the chips with x = X (and z = 0), y ascending
 *   plane:z=Z       the chips with z = Z, row-major (also plane:y=Y, plane:x=X)
 * Slices take every core of each chip (chip-major). */
ss_status coll_group_parse(const char *spec, const sim_topo *t, int32_t **cores, int32_t *n,
                           ss_err *err);
/* The group as a box of the topology: 1 when cores[p] are the same number c >= 1 of cores
 * of every chip of a box of chips, chip-major (a chip's c cores consecutive) with the chips in
 * row-major order (x fastest). ext receives {c, x, y, z extents} (1 for unused dimensions):
 * rank = local + c * (x + ex * (y + ey * z)), the local index being the fastest coordinate
 * (its links are on-chip: free). */
enum { COLL_GRID_DIMS = 4 };
int coll_group_grid(const sim_topo *t, const int32_t *cores, int32_t p,
                    int ext[COLL_GRID_DIMS]);

/* The balanced split of n into p parts: offset and size of part i. */
uint64_t coll_part_off(uint64_t n, int32_t p, int32_t i);
uint64_t coll_part_len(uint64_t n, int32_t p, int32_t i);

#endif
