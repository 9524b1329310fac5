/* This file declares switchsim's performance reports: from one or more estimate results (the
 * JSON `switchsim estimate --results FILE` writes, or a sweep file of them) it writes a
 * directory with report.md, a self-contained report.html (inline CSS and inline SVG charts,
 * no script, no external reference), one CSV per table and one standalone SVG per chart
 * (referenced from report.md as images).
 *
 * What a report holds:
 *  - always: a summary table (model, pod, plan, parameters, FLOPs per sequence, step time,
 *    examples/s, MFU, memory per core; one row per result) and the results' "note" lines:
 *    every figure of an estimate is a prediction and the report says so at the top;
 *  - one result with "detail" (cli/estimate_detail.h): the step-time breakdown of the critical
 *    core (stacked bars: total, and per layer) by op class, exposed communication by collective
 *    kind, and idle; the link-utilisation heatmap of the torus (a chip's cell is the largest
 *    utilisation of its outgoing links; a 3-D torus gives one heatmap per z slice); the expert
 *    load of each Switch layer (tokens per expert of one routing group with the capacity as a
 *    reference line; layers with identical loads share one chart) and the dropped fractions;
 *    a roofline of the critical core's op groups; the busiest links;
 *  - several results: the breakdown of each result's step as one stacked bar, and scaling
 *    curves of throughput (examples/s) against each of cores, experts and link bandwidth
 *    (log axes): a curve joins results that differ in that quantity only (see scaling in
 *    report.c for which inputs are compared); a lone point is not drawn;
 *  - sweep points that failed, with their errors.
 * Every number a chart carries (data-value, data-x, data-y) is the JSON number of the result,
 * unchanged; the CSVs carry them with 17 significant digits.
 *
 * Input formats: an estimate result is a JSON object with at least "model", "pod", "cores",
 * "step_seconds" and "examples_per_second"; a sweep file is {"sweep": NAME, "points": [{"point":
 * {...}, "status": "ok", "result": {...}} | {"point": {...}, "status": "failed", "error":
 * "..."}]}.
 *
 * Invariants: report_write writes every file atomically (a new directory is built under a
 * temporary name and renamed; in an existing directory each file is replaced atomically), so
 * an interrupted run leaves no half-written file; the output depends only on the inputs.
 */
#ifndef SWITCHSIM_REPORTS_REPORT_H
#define SWITCHSIM_REPORTS_REPORT_H

#include <stddef.h>

#include <jansson.h>

#include "common/status.h"

/* The results of a report, in the order added. */
typedef struct {
    json_t **results;   /* [n] owned references */
    char **names;       /* [n] display names: the run, or "<sweep> #i (k=v, ...)" */
    json_t **points;    /* [n] the sweep point ({"key": value}) of a sweep's result, else NULL */
    int n, cap;
    char **failed;      /* [nfailed] "<sweep> #i (k=v, ...)" of failed sweep points */
    char **errors;      /* [nfailed] their error messages */
    int nfailed, failed_cap;
} report_set;

/* Largest input file report_set_add_file reads. */
enum { REPORT_MAX_INPUT_BYTES = 1 << 30 };

/* Reads path (an estimate result or a sweep file) and adds its results; errors name the file
 * (unreadable, not JSON, neither a result nor a sweep, a malformed sweep point). On failure
 * the set is unchanged. */
ss_status report_set_add_file(report_set *s, const char *path, ss_err *err);
/* Adds a parsed document (result or sweep); name prefixes messages and display names. */
ss_status report_set_add_json(report_set *s, const json_t *doc, const char *name, ss_err *err);
void report_set_free(report_set *s);

typedef struct {
    const char *title; /* NULL: "switchsim performance report" */
} report_opts;

/* One file of a rendered report. */
typedef struct {
    char name[64]; /* file name inside the directory */
    char *data;    /* [len] bytes */
    size_t len;
} report_file;

typedef struct {
    report_file *files; /* [n]: report.md, report.html, then the CSVs and SVGs */
    int n, cap;
} report_files;

/* Renders the report of s (n >= 1) into memory. */
ss_status report_render(report_files *out, const report_set *s, const report_opts *o,
                        ss_err *err);
void report_files_free(report_files *f);

/* Renders and writes the report into directory dir (created when absent, with its parent
 * existing). */
ss_status report_write(const report_set *s, const report_opts *o, const char *dir, ss_err *err);

#endif
