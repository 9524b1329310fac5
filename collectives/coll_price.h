/* This file declares the pricing of a step program's collectives in isolation: every DISTINCT
 * collective of a program (same kind, bytes, alltoallv matrix and algorithm hint, and a group
 * that is the same list of cores up to a translation of the torus) is lowered to send/recv
 * (coll_program_lower) and simulated ONCE, alone on the pod, with the engine the caller
 * chooses; its makespan and per-link load become the price every instance of it gets from
 * sim_engine_run_priced (sim/engine.h, "priced collectives"). A step program of 2048 cores then
 * runs its collectives as one op per member instead of ~10^5 messages per instance.
 *
 * Translations: a group moved by a vector t of chip coordinates is priced by its
 * representative when t is zero along every dimension without wraparound (a mesh edge breaks
 * the symmetry) and even along every wrapped dimension of even size (the routing's tie rule
 * for half-way-round messages depends on the parity of the coordinates, sim/topo.h); the core
 * within a chip is not moved. Whether the group is a box (coll_group_grid) is part of the
 * signature, so a translated box that wraps the torus edge is priced on its own.
 *
 * Step-wise bound (analytic engine only). The analytic engine queues a message only at its
 * sending chip's port and prices its later hops contention-free (sim/engine.h), so a
 * collective whose multi-hop messages share later links (a dimension-ordered or direct
 * all-to-all on a large torus) can finish far below its links' load. Its price is therefore
 *   max(makespan, sum over the schedule's steps of the step's busiest directed link's
 *       bytes / link bandwidth)
 * where a step is one step of the schedule coll_program_lower lowers (a rank's step s + 1
 * waits for its step s, so steps do not overlap) and a link's bytes are those of the step's
 * messages routed over it (the link model has no per-packet overhead). The price's link
 * loads (bytes, packets, busy time, intervals) stay the simulated ones. The SystemC engine
 * queues on every link and already respects the bound: its prices are its makespans.
 * The sum is a strict lower bound only when the steps do not overlap across ranks; a rank
 * that finishes step s early may start step s + 1 on links others no longer need, so a
 * packet-level run can beat it by that overlap (measured: Switch-C-2048's dimension-ordered
 * all-to-all, SystemC 0.06% below; Switch-Base-128's torus all-reduces over 2 cores a chip,
 * 0.4 to 5.4%; Switch-XXL's strided 128-rank all-reduces, 2.7%). coll_prices.raised and
 * nraised say which prices are their bound.
 *
 * What isolation ignores: contention between collectives that overlap in time and between a
 * collective and other traffic, and members that join late (the instance begins when its
 * last member is ready; lowered, early members could start their first messages sooner).
 *
 * Invariants: the prices depend only on the program, the topology, the cost figures and the
 * engine configuration (deterministic); a program without collectives gets an empty table.
 */
#ifndef SWITCHSIM_COLLECTIVES_COLL_PRICE_H
#define SWITCHSIM_COLLECTIVES_COLL_PRICE_H

#include <stdint.h>

#include "collectives/coll.h"
#include "common/status.h"
#include "sim/engine.h"
#include "sim/program.h"
#include "sim/topo.h"

typedef struct {
    sim_coll_prices table;        /* what sim_engine_run_priced reads (points into the below) */
    int32_t *price_of, *origin_of; /* [table.nids] */
    sim_coll_price *prices;       /* [nprices]; links and intervals malloc'd per price */
    int32_t nprices;
    int64_t lowered_ops;          /* ops of the isolated programs simulated, all together */
    double *bound_s;              /* [nprices] step-wise link-load bound, s (analytic; else 0) */
    uint8_t *raised;              /* [nprices] 1 = the price is its bound, above the makespan */
    int32_t nraised;              /* prices raised to their bound */
} coll_prices;

/* Prices every collective of p (see above) on engine kind under cfg (record_ops is ignored;
 * record_links keeps each price's busy intervals; analytic prices are raised to their
 * step-wise bound). cost is what coll_program_lower needs to
 * choose "auto" algorithms. *out is owned by the caller (coll_prices_free), zeroed on error;
 * errors of the lowering or the engine name the collective. */
ss_status coll_prices_build(coll_prices *out, const sim_program *p, const sim_topo *topo,
                            const coll_cost *cost, sim_engine_kind kind,
                            const sim_engine_cfg *cfg, ss_err *err);
void coll_prices_free(coll_prices *c);

#endif
