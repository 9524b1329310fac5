/* This file declares a streaming writer of the Chrome trace-event JSON format (the "JSON
 * Object Format" of the Trace Event Format document, read by chrome://tracing and Perfetto):
 *   {"traceEvents":[ event, event, ... ],"displayTimeUnit":"ns"}
 * with these event phases: "X" complete events (a named span on one thread: ts and dur),
 * "M" metadata events naming a process or a thread (process_name, thread_name), "C" counter
 * events (one or more named series of one counter at a time), and flow events "s" (start)
 * and "f" (finish, with "bp":"e") that draw an arrow from the slice enclosing the start to
 * the slice enclosing the finish; the two ends of one flow share name, cat and id. pid and
 * tid are plain integers chosen by the caller (the simulator uses pid = chip, tid = unit or
 * link).
 *
 * Invariants: times are given in seconds and written in microseconds (the format's unit) with
 * six decimals, i.e. to the picosecond; names and string arguments are JSON-escaped
 * (quote, backslash and control characters; other bytes pass through, so they must be UTF-8);
 * every event is written as it is added (never held in memory); the file goes through
 * common/fileio.h's atomic writer, so the destination only ever holds a complete trace: until
 * chrome_trace_close succeeds it keeps its old content (or stays absent), and an aborted or
 * failed trace leaves no file behind.
 * reference: Trace Event Format, https://docs.google.com/document/d/
 * 1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNKlog
 */
#ifndef SWITCHSIM_TRACES_CHROME_TRACE_H
#define SWITCHSIM_TRACES_CHROME_TRACE_H

#include <stdint.h>

#include "common/fileio.h"
#include "common/status.h"

typedef struct {
    file_atomic file;
    uint64_t events; /* events written so far */
} chrome_trace;

/* One "args" entry of an event: a string when str is not NULL, else the number num (written
 * so that it reads back exactly; a NaN or infinity is written as null). */
typedef struct {
    const char *key;
    const char *str;
    double num;
} chrome_trace_arg;

/* Starts a trace that will replace path when closed. */
ss_status chrome_trace_open(chrome_trace *t, const char *path, ss_err *err);
/* "M" events: the name shown for process pid, and for thread tid of process pid. */
void chrome_trace_process_name(chrome_trace *t, int pid, const char *name);
void chrome_trace_thread_name(chrome_trace *t, int pid, int tid, const char *name);
/* An "M" thread_sort_index event: viewers order the threads of a process by it (ascending). */
void chrome_trace_thread_sort(chrome_trace *t, int pid, int tid, int index);
/* An "X" event: name (category cat, may be NULL) on thread tid of process pid from start_s
 * for dur_s >= 0 seconds, with nargs arguments (args may be NULL when nargs is 0). */
void chrome_trace_complete(chrome_trace *t, const char *name, const char *cat, int pid, int tid,
                           double start_s, double dur_s, const chrome_trace_arg *args,
                           int nargs);
/* A "C" event: counter name of process pid at time_s; each of the nseries (>= 1) entries is
 * one series (its key) and its value (num). */
void chrome_trace_counter(chrome_trace *t, const char *name, int pid, double time_s,
                          const chrome_trace_arg *series, int nseries);
/* The two ends of flow id (name and cat as given, the same at both ends): "s" at time_s on
 * thread tid of pid, bound to the slice of that thread enclosing time_s; "f" likewise, with
 * binding point "e" (the enclosing slice, which Perfetto needs to attach the arrow to a slice
 * that starts exactly at time_s). */
void chrome_trace_flow_start(chrome_trace *t, const char *name, const char *cat, uint64_t id,
                             int pid, int tid, double time_s);
void chrome_trace_flow_finish(chrome_trace *t, const char *name, const char *cat, uint64_t id,
                              int pid, int tid, double time_s);
/* Finishes the JSON and moves the file into place. SS_ERR_IO when any write failed (the
 * destination is then untouched). Either close or abort must be called once. */
ss_status chrome_trace_close(chrome_trace *t, ss_err *err);
/* Discards the trace: the destination is untouched. */
void chrome_trace_abort(chrome_trace *t);

#endif
