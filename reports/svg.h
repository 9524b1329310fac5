/* This file declares switchsim's SVG charts: stacked bars (step-time breakdown, expert-load
 * histogram with a capacity line), heatmaps (link utilisation on a torus slice), line charts on
 * linear or log axes (scaling curves) and roofline plots. Each chart is drawn by our own code as
 * one self-contained <svg> element (no script, no fonts, no external references) so that a
 * report can inline it in HTML or save it as a .svg file.
 *
 * Invariants: every function either appends exactly one complete, well-formed
 * <svg xmlns="http://www.w3.org/2000/svg" ...>...</svg> element to out and returns SS_OK, or
 * leaves out unchanged and returns an error with a message in err. Text is XML-escaped (and
 * invalid UTF-8 replaced by U+FFFD). Every data mark carries its exact input value:
 * data-value="%.17g" (bar segments, heatmap cells; "NaN" for an empty cell) or data-x/data-y
 * (line and roofline points), plus a <title> tooltip with the value formatted for humans, 3
 * significant digits with the unit taken from a trailing "(...)" of the axis or value label:
 * SI units take the prefix ("12.3 ms", "1.2 GB/s"), other units follow a prefixed number
 * ("1.5k tokens", "0.45 fraction of step"), "%" takes none ("45.3%"). Axis ticks carry
 * data-tick="%.17g" with class "tick major" or "tick minor". Output is deterministic (the same
 * spec appended at the same offset gives the same bytes) and does not depend on the locale.
 * Element ids start with a prefix ("ss" + 8 hex digits) derived from the chart's content and
 * from out->len, so several charts can live in one HTML page. Charts size themselves (760 px
 * wide by default, wider for very many bars or a long title).
 */
#ifndef SWITCHSIM_REPORTS_SVG_H
#define SWITCHSIM_REPORTS_SVG_H

#include <stddef.h>

#include "common/status.h"

/* Growable NUL-terminated text; a zeroed svg_buf is empty and valid. failed is set when an
 * allocation failed; the chart functions then return SS_ERR_NOMEM and append nothing more. */
typedef struct {
    char *data;    /* [cap] bytes, data[len] == '\0' once anything was appended; NULL when empty */
    size_t len;    /* bytes of text, excluding the NUL */
    size_t cap;    /* bytes allocated */
    int failed;    /* 1 after an allocation failure */
} svg_buf;

/* Frees the text and zeroes the buffer (safe on a zeroed buffer). */
void svg_buf_free(svg_buf *b);

/* Stacked bars (series > 1, with a legend) or plain bars / a histogram (series == 1). */
typedef struct {
    const char *title, *x_label, *y_label;  /* y_label carries the unit: "time per step (s)" */
    int bars, series;                       /* >= 1 each */
    const char *const *bar_names;           /* [bars]; NULL: indices are printed */
    const char *const *series_names;        /* [series]: legend (omitted when series == 1) */
    const double *values;                   /* [bars * series], bar-major, finite and >= 0 */
    double ref_line;                        /* dashed horizontal line at this y (e.g. expert
                                               capacity), finite and >= 0; NaN = none */
    const char *ref_label;                  /* its label; may be NULL */
} svg_bars_spec;

/* A rows x cols grid of coloured cells with a colour-scale legend. */
typedef struct {
    const char *title, *x_label, *y_label;
    const char *value_label;                /* colour-scale legend incl. unit: "utilisation (%)" */
    int rows, cols;                         /* >= 1 each */
    const double *values;                   /* [rows * cols] row-major; NaN = no cell (hatched);
                                               other values finite; clamped to [vmin, vmax] */
    const char *const *row_names;           /* [rows]; NULL: indices are printed */
    const char *const *col_names;           /* [cols]; NULL: indices are printed */
    double vmin, vmax;                      /* colour-scale range; vmin == vmax: the data's range */
} svg_heatmap_spec;

/* One or more series of (x, y) points joined by lines, on linear or log axes. */
typedef struct {
    const char *title, *x_label, *y_label;  /* labels carry units: "link bandwidth (B/s)" */
    int log_x, log_y;                       /* 1: decade axis; the data must then be > 0 */
    int series;                             /* >= 1 */
    const char *const *series_names;        /* [series]: legend */
    const int *points;                      /* [series]: points per series, >= 0, 1 in total */
    const double *const *x, *const *y;      /* [series][points[s]], finite */
} svg_lines_spec;

/* A roofline: performance ceiling min(peak, bandwidth * intensity) on log-log axes, with
 * labelled measured points. */
typedef struct {
    const char *title;
    double peak_flops;                      /* FLOP/s ceiling, finite and > 0 */
    double bandwidth_bytes_per_s;           /* memory-bandwidth slope, finite and > 0 */
    int points;                             /* >= 0 */
    const char *const *names;               /* [points]; NULL: indices are printed */
    const double *intensity;                /* [points] FLOP/byte, finite and > 0 */
    const double *flops_per_s;              /* [points] FLOP/s, finite and > 0 */
} svg_roofline_spec;

ss_status svg_stacked_bars(svg_buf *out, const svg_bars_spec *s, ss_err *err);
ss_status svg_heatmap(svg_buf *out, const svg_heatmap_spec *s, ss_err *err);
ss_status svg_lines(svg_buf *out, const svg_lines_spec *s, ss_err *err);
ss_status svg_roofline(svg_buf *out, const svg_roofline_spec *s, ss_err *err);

#endif
