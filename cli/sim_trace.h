/* This file declares the Chrome trace-event writer of a timing-engine run (a step program, its
 * pod topology and the engine's recorded result), shared by `switchsim sim` and `switchsim
 * estimate`.
 *
 * Invariants: the result was recorded with record_ops set (record_links for link tracks);
 * on success the trace is closed (written), on failure aborted (the destination untouched).
 */
#ifndef SWITCHSIM_CLI_SIM_TRACE_H
#define SWITCHSIM_CLI_SIM_TRACE_H

#include "sim/engine.h"
#include "sim/program.h"
#include "sim/topo.h"
#include "traces/chrome_trace.h"

/* Writes the run into the open trace tr and closes it; on failure prints
 * "switchsim: <who>: message" and returns -1 (the trace is then aborted or failed). */
int cli_trace_write(chrome_trace *tr, const sim_topo *topo, const sim_program *prog,
                    const sim_result *res, const char *who);

#endif
