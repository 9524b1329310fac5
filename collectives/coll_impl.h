/* This file declares the internals shared by the files of collectives/: growing a schedule
 * transfer by transfer and step by step, and the per-family builders that coll.c dispatches
 * to. Not part of the public API (coll.h).
 *
 * Invariants: coll_sched_add appends to the current (open) step; coll_sched_end_step closes
 * it unless it is empty (so no step is empty); a builder error is returned and the caller
 * frees s.
 */
#ifndef SWITCHSIM_COLLECTIVES_COLL_IMPL_H
#define SWITCHSIM_COLLECTIVES_COLL_IMPL_H

#include "collectives/coll.h"

/* Allocates the per-rank layout arrays of s (zeroed) and an empty step list. */
ss_status coll_sched_init(coll_schedule *s, const coll_desc *d, coll_algo a, ss_err *err);
ss_status coll_sched_add(coll_schedule *s, int32_t src, int32_t dst, uint64_t src_off,
                    uint64_t dst_off, uint64_t count, int reduce, ss_err *err);
ss_status coll_sched_end_step(coll_schedule *s, ss_err *err);

/* Reduce family (coll_algos.c): allreduce, reducescatter, allgather, broadcast, barrier with
 * ring, biring, torus, hd, tree, dissem. */
ss_status coll_build_reduce_family(coll_schedule *s, const coll_desc *d, coll_algo a,
                                   ss_err *err);
/* alltoall and alltoallv with direct or dimorder (coll_a2a.c). */
ss_status coll_build_alltoall(coll_schedule *s, const coll_desc *d, coll_algo a, ss_err *err);

#endif
