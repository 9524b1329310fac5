/* This file implements the streaming Chrome trace-event writer of chrome_trace.h. Each event
 * is one line of the traceEvents array, written with stdio as it is added; the header is
 * written by open and the footer by close, so a trace costs O(1) memory.
 *
 * Invariants: after open the file holds `{"traceEvents":[` followed by t->events events
 * separated by ",\n"; close appends `],"displayTimeUnit":"ns"}` and commits atomically. Write
 * errors stick in the stream (ferror) and are reported once, by close.
 * reference: Trace Event Format (see chrome_trace.h).
 */
#include "traces/chrome_trace.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>

static const char header[] = "{\"traceEvents\":[\n";
static const char footer[] = "\n],\"displayTimeUnit\":\"ns\"}\n";

/* Writes s as a JSON string literal (with its quotes). */
static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            if (*c < 0x20)
                fprintf(f, "\\u%04x", *c);
            else
                fputc(*c, f);
        }
    }
    fputc('"', f);
}

/* A number that reads back to the same double; JSON has no NaN or infinity. */
static void put_number(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

static void put_args(FILE *f, const chrome_trace_arg *args, int n)
{
    fputs("{", f);
    for (int i = 0; i < n; i++) {
        if (i)
            fputc(',', f);
        put_string(f, args[i].key);
        fputc(':', f);
        if (args[i].str)
            put_string(f, args[i].str);
        else
            put_number(f, args[i].num);
    }
    fputs("}", f);
}

/* Starts an event: separator, then {"name":...,"ph":"P","pid":N */
static FILE *begin(chrome_trace *t, const char *name, char phase, int pid)
{
    FILE *f = t->file.f;
    SS_ASSERT(f);
    if (t->events++)
        fputs(",\n", f);
    fputs("{\"name\":", f);
    put_string(f, name);
    fprintf(f, ",\"ph\":\"%c\",\"pid\":%d", phase, pid);
    return f;
}

/* Seconds as the format's microseconds, to the picosecond. */
static void put_time(FILE *f, const char *key, double s)
{
    fprintf(f, ",\"%s\":%.6f", key, s * 1e6);
}

ss_status chrome_trace_open(chrome_trace *t, const char *path, ss_err *err)
{
    t->events = 0;
    ss_status st = file_atomic_open(&t->file, path, err);
    if (st == SS_OK)
        fputs(header, t->file.f);
    return st;
}

static void metadata(chrome_trace *t, const char *what, int pid, const int *tid,
                     const char *name)
{
    FILE *f = begin(t, what, 'M', pid);
    if (tid)
        fprintf(f, ",\"tid\":%d", *tid);
    const chrome_trace_arg arg = {"name", name, 0};
    fputs(",\"args\":", f);
    put_args(f, &arg, 1);
    fputc('}', f);
}

void chrome_trace_process_name(chrome_trace *t, int pid, const char *name)
{
    metadata(t, "process_name", pid, NULL, name);
}

void chrome_trace_thread_name(chrome_trace *t, int pid, int tid, const char *name)
{
    metadata(t, "thread_name", pid, &tid, name);
}

void chrome_trace_thread_sort(chrome_trace *t, int pid, int tid, int index)
{
    FILE *f = begin(t, "thread_sort_index", 'M', pid);
    fprintf(f, ",\"tid\":%d,\"args\":{\"sort_index\":%d}}", tid, index);
}

void chrome_trace_complete(chrome_trace *t, const char *name, const char *cat, int pid, int tid,
                           double start_s, double dur_s, const chrome_trace_arg *args,
                           int nargs)
{
    SS_ASSERT(dur_s >= 0 && nargs >= 0);
    FILE *f = begin(t, name, 'X', pid);
    fprintf(f, ",\"tid\":%d", tid);
    if (cat) {
        fputs(",\"cat\":", f);
        put_string(f, cat);
    }
    put_time(f, "ts", start_s);
    put_time(f, "dur", dur_s);
    if (nargs > 0) {
        fputs(",\"args\":", f);
        put_args(f, args, nargs);
    }
    fputc('}', f);
}

void chrome_trace_counter(chrome_trace *t, const char *name, int pid, double time_s,
                          const chrome_trace_arg *series, int nseries)
{
    SS_ASSERT(nseries >= 1);
    FILE *f = begin(t, name, 'C', pid);
    put_time(f, "ts", time_s);
    fputs(",\"args\":", f);
    put_args(f, series, nseries);
    fputc('}', f);
}

static void flow(chrome_trace *t, char phase, const char *name, const char *cat, uint64_t id,
                 int pid, int tid, double time_s)
{
    FILE *f = begin(t, name, phase, pid);
    fprintf(f, ",\"tid\":%d,\"cat\":", tid);
    put_string(f, cat);
    fprintf(f, ",\"id\":%" PRIu64, id);
    put_time(f, "ts", time_s);
    if (phase == 'f')
        fputs(",\"bp\":\"e\"", f);
    fputc('}', f);
}

void chrome_trace_flow_start(chrome_trace *t, const char *name, const char *cat, uint64_t id,
                             int pid, int tid, double time_s)
{
    flow(t, 's', name, cat, id, pid, tid, time_s);
}

void chrome_trace_flow_finish(chrome_trace *t, const char *name, const char *cat, uint64_t id,
                              int pid, int tid, double time_s)
{
    flow(t, 'f', name, cat, id, pid, tid, time_s);
}

ss_status chrome_trace_close(chrome_trace *t, ss_err *err)
{
    fputs(footer, t->file.f);
    return file_atomic_commit(&t->file, err);
}

void chrome_trace_abort(chrome_trace *t)
{
    file_atomic_abort(&t->file);
}
