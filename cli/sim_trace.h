/* This file declares the Chrome trace-event writer of a timing-engine run (a step program, its
 * pod topology and the engine's recorded result), shared by `switchsim sim` and `switchsim
 * estimate`, and the trace options both commands take (--trace-chips, --trace-layers,
 * --trace-bins) with their one parser.
 *
 * Trace layout: one process per chip; per core, threads 'core C mxu', 'core C vector',
 * 'core C dma' (in-order units: their slices never overlap) and 'core C net', 'core C net 2',
 * ... (sends, recvs and priced collectives, which overlap: each goes to the first lane free at
 * its start, so every thread stays properly nested, as Perfetto requires); per outgoing link a
 * thread 'link ...' of busy windows (overlapping windows merged into one slice that counts its
 * messages) and a counter 'util ...' (busy fraction of the link in each of --trace-bins equal
 * bins of the step, merged windows, so 0..1; written only where it changes); flow arrows
 * "dispatch" from every message that delivers tokens to a Switch layer's experts (a send whose
 * recv is followed, on the receiving core, by a matmul labelled *expert* of the same layer with
 * no other matmul between; or an unlowered all-to-all collective followed so) to that expert
 * matmul, both ends at the middle of their slices ("f" with "bp":"e", bound to the enclosing
 * slice).
 * Selection: --trace-chips keeps the processes (ops and links) of those chips; --trace-layers
 * keeps the ops of those layers and cuts the link slices and counters to the time span of the
 * kept ops; a flow needs both ends kept.
 *
 * Invariants: the result was recorded with record_ops set (record_links for link tracks);
 * the trace is streamed (each core's ops are written as they are walked; memory is O(ops) for
 * the lane and flow tables plus an 8-byte index per link window, never the JSON); on
 * success the trace is closed (written), on failure aborted (the destination untouched).
 */
#ifndef SWITCHSIM_CLI_SIM_TRACE_H
#define SWITCHSIM_CLI_SIM_TRACE_H

#include <stdint.h>

#include "sim/engine.h"
#include "sim/program.h"
#include "sim/topo.h"
#include "traces/chrome_trace.h"

/* The trace options as given on the command line. */
typedef struct {
    const char *chips;  /* --trace-chips LIST, NULL: every chip */
    const char *layers; /* --trace-layers LIST, NULL: every op */
    long bins;          /* --trace-bins N; the command presets CLI_TRACE_BINS_DEFAULT */
} cli_trace_opts;

enum { CLI_TRACE_BINS_DEFAULT = 200, CLI_TRACE_BINS_MAX = 1000000 };

/* The cli_opt entries of the trace options (for a subcommand's options table). */
#define CLI_TRACE_OPTIONS(o)                                                                \
    {"trace-chips", CLI_OPT_STR, &(o)->chips, "LIST",                                       \
     "with --trace: only these chips, e.g. 0-3,17", NULL, 0, 0, 0},                         \
    {"trace-layers", CLI_OPT_STR, &(o)->layers, "LIST",                                     \
     "with --trace: only ops of these layers: indices and ranges (0-2,5) or label "         \
     "prefixes (enc.3,dec.0.moe)", NULL, 0, 0, 0},                                          \
    {"trace-bins", CLI_OPT_INT, &(o)->bins, "N",                                            \
     "with --trace: time bins of the link-utilisation counters", NULL, 1,                   \
     CLI_TRACE_BINS_MAX, 0}

/* The parsed selection. */
typedef struct {
    int32_t (*chips)[2];  /* [nchips] inclusive chip ranges; NULL: every chip */
    int nchips;
    int32_t (*layers)[2]; /* [nlayers] inclusive layer-index ranges */
    int nlayers;
    char **prefixes;      /* [nprefixes] label prefixes (a label equal to one, or starting
                             with it and a '.', selects its op) */
    int nprefixes;
    int by_layer;         /* 1 when --trace-layers was given */
    long bins;            /* >= 1 */
} cli_trace_select;

/* Parses the options into *s (zeroed first). A list item is N or N-M (decimal, N <= M); for
 * --trace-layers an item that does not start with a digit is a label prefix. Options given
 * without --trace (trace_path NULL; --trace-bins counts when not the default), an empty list
 * or item, or a bad range are usage errors:
 * prints "switchsim: <who>: message" and returns -1 (s left freed). */
int cli_trace_select_parse(cli_trace_select *s, const cli_trace_opts *o, const char *trace_path,
                           const char *who);
void cli_trace_select_free(cli_trace_select *s);
/* Whether s selects chip, and the op (by its layer and label). */
int cli_trace_select_chip(const cli_trace_select *s, int chip);
int cli_trace_select_op(const cli_trace_select *s, int32_t layer, const char *label);

/* Writes the run (restricted to sel; NULL selects everything) into the open trace tr and
 * closes it; a chip of --trace-chips outside the pod, a failed allocation or write prints
 * "switchsim: <who>: message" and returns -1 (the trace is then aborted or failed). */
int cli_trace_write(chrome_trace *tr, const sim_topo *topo, const sim_program *prog,
                    const sim_result *res, const cli_trace_select *sel, const char *who);

#endif
