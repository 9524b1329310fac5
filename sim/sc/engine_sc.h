/* This file declares the SystemC discrete-event timing engine (sim/sc/engine_sc.cc): it runs
 * a step program on a pod with one SystemC module per chip (its cores' MXU, vector and DMA
 * units and network interfaces) and one module per directed link that serialises packets FIFO
 * (so sends of a chip that share a port queue there), under the model of sim/engine.h.
 * sim_engine_run (sim/engine.c) dispatches SIM_ENGINE_SYSTEMC here.
 *
 * Invariants: callable from C any number of times per process (each call simulates in a
 * forked child process with a fresh SystemC kernel, so nothing of one run survives into the
 * next); no C++ exception crosses this interface; nothing is written to stdout.
 */
#ifndef SWITCHSIM_SIM_SC_ENGINE_SC_H
#define SWITCHSIM_SIM_SC_ENGINE_SC_H

#ifdef __cplusplus
extern "C" { /* the C headers below have no C++ guards of their own */
#endif

#include "common/status.h"
#include "sim/engine.h"
#include "sim/program.h"

/* Runs p under cfg on the SystemC engine, its collective ops priced by prices (NULL: none;
 * engine.h, "priced collectives"). *out is zeroed first and on error, and owned by the
 * caller (sim_result_free) on success. Fails with a message on what sim_engine_check rejects,
 * unpaired transfers, a program that deadlocks (a cycle of dependencies and send -> recv
 * pairs), or a failed simulation
 * (the child process crashed or SystemC reported an error). out->events counts SystemC process
 * activations (every run of a chip or link method). */
ss_status sim_sc_engine_run(const sim_program *p, const sim_engine_cfg *cfg,
                            const sim_coll_prices *prices, sim_result *out, ss_err *err);

#ifdef __cplusplus
}
#endif

#endif
