/* This file declares the one piece of `switchsim estimate`'s pipeline that other subcommands
 * reuse: the step program of a run config as estimate generates it (load the run, lay out the
 * plan, count, generate; collectives not lowered). `switchsim chakra export --run` uses it, so
 * an exported trace is exactly the workload estimate prices. Defined in cli/cmd_estimate.c.
 *
 * Invariants: the program is the one `switchsim estimate --run FILE` builds with its default
 * options (uniform routing, padded expert buffers, fp32 gradient reduction overlapped with the
 * backward pass); failures print "switchsim: estimate: ..." like estimate does.
 */
#ifndef SWITCHSIM_CLI_ESTIMATE_PROGRAM_H
#define SWITCHSIM_CLI_ESTIMATE_PROGRAM_H

#include "sim/program.h"

/* *out = the run's generated step program (caller frees with sim_program_free); 0, or -1
 * after a message on stderr (out is then left freed). */
int cli_estimate_program(const char *run_path, sim_program *out);

#endif
