/* This file implements svg.h: stacked-bar, heatmap, line and roofline charts written as
 * self-contained SVG text by our own layout code.
 *
 * Each public function validates its spec, then renders the chart twice into a scratch
 * buffer: once with a placeholder id prefix, whose FNV-1a hash (mixed with out->len) becomes
 * the real prefix, and once with that prefix; the second rendering is appended to out. So the
 * output is a pure function of (spec, out->len), and two different charts, or the same chart
 * appended twice to one buffer, get different ids.
 *
 * Invariants: numbers are written by helpers that never depend on the locale: coordinates
 * with at most two decimals (px), exact values as %.17g (exact), and values for people with
 * three significant digits and an SI prefix (human: on the unit for SI units, "12.3 ms",
 * "1.2 GB/s"; on the number otherwise, "1.5k tokens"). All user text goes through put_text
 * (escaping, UTF-8 repair). Text widths are estimated (0.62 em per character) since no font
 * is embedded; layout sizes margins, legends and label thinning from those estimates. Linear
 * axes use 1-2-5 tick steps starting on a multiple of the step; log axes use decades (every
 * 3k-th when there are many) with minor ticks 2..9 when there are few. Validation happens
 * before any rendering, so the renderers may assume finite values within [-1e300, 1e300].
 * reference: viridis colour map polynomial fit by Matt Zucker (CC0,
 * https://www.shadertoy.com/view/WlfXRN); Okabe & Ito colour-blind-safe palette (2008);
 * Williams, Waterman & Patterson, "Roofline", CACM 52(4), 2009.
 */
#include "reports/svg.h"

#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MARKS (1 << 20)   /* data marks per chart */
#define MAX_SERIES 256
#define MAX_LABELS 4096       /* roofline points (each has a placed label) */
#define MAX_TICKS 64
#define CHAR_EM 0.62          /* estimated glyph advance, in em */
#define FONT 12.0             /* body text */
#define FONT_SMALL 11.0       /* tick labels */
#define FONT_TITLE 15.0
#define INK "#222"
#define GRID "#e6e6e6"
#define GRID_MINOR "#f3f3f3"
#define PI 3.14159265358979323846

/* ---------------------------------------------------------------- growable text */

void svg_buf_free(svg_buf *b)
{
    if (!b)
        return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

static int reserve(svg_buf *b, size_t extra)
{
    if (b->failed)
        return -1;
    if (extra > SIZE_MAX - 1 - b->len) {
        b->failed = 1;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

static void put_n(svg_buf *b, const char *s, size_t n)
{
    if (reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void put(svg_buf *b, const char *s)
{
    put_n(b, s, strlen(s));
}

/* printf into b; only for %s/%d/%c arguments (numbers go through px/exact/si first). */
static void putf(svg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(svg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ---------------------------------------------------------------- numbers */

typedef struct {
    char s[112];
} numstr;

/* Replaces the locale's decimal point (if not '.') by '.'. */
static void c_decimal_point(char *s)
{
    const char *dp = localeconv()->decimal_point;
    if (!dp || !dp[0] || (dp[0] == '.' && !dp[1]))
        return;
    size_t n = strlen(dp);
    char *p = strstr(s, dp);
    if (p) {
        *p = '.';
        memmove(p + 1, p + n, strlen(p + n) + 1);
    }
}

/* The exact value: %.17g, "NaN" for NaN. */
static numstr exact(double v)
{
    numstr r;
    if (isnan(v))
        snprintf(r.s, sizeof r.s, "NaN");
    else if (isinf(v))
        snprintf(r.s, sizeof r.s, v > 0 ? "INF" : "-INF");
    else {
        snprintf(r.s, sizeof r.s, "%.17g", v);
        c_decimal_point(r.s);
    }
    return r;
}

/* A coordinate with at most two decimals, trailing zeros dropped. */
static numstr px(double v)
{
    numstr r;
    if (!isfinite(v) || fabs(v) > 1e15)
        v = 0;
    long long q = llround(v * 100.0);
    const char *sign = q < 0 ? "-" : "";
    if (q < 0)
        q = -q;
    long long whole = q / 100, frac = q % 100;
    if (frac == 0)
        snprintf(r.s, sizeof r.s, "%s%lld", q ? sign : "", whole);
    else if (frac % 10 == 0)
        snprintf(r.s, sizeof r.s, "%s%lld.%lld", sign, whole, frac / 10);
    else
        snprintf(r.s, sizeof r.s, "%s%lld.%02lld", sign, whole, frac);
    return r;
}

static const char *const si_prefixes[] = {"n", "\xC2\xB5", "m", "", "k", "M", "G", "T", "P"};
#define SI_MIN_EXP (-9)
#define SI_MAX_EXP 15

/* v / 10^e3 printed with sig significant digits; "0" for zero (also -0). */
static void mantissa(char *out, size_t n, double v, int e3, int sig)
{
    if (v == 0) {
        snprintf(out, n, "0");
        return;
    }
    snprintf(out, n, "%.*g", sig, v / pow(10.0, e3));
    c_decimal_point(out);
    if (strcmp(out, "-0") == 0)
        snprintf(out, n, "0");
}

/* The SI exponent (multiple of 3) for magnitude a: 0 inside [1e-2, 1e3) unless small_prefix
 * and a < 1; INT_MIN when a lies outside the n..P prefixes. */
static int si_exponent(double a, int small_prefix)
{
    if (!isfinite(a))
        return INT_MIN;
    if (a == 0 || (a >= 1e-2 && a < 1e3 && !(small_prefix && a < 1)))
        return 0;
    int e3 = (int)floor(log10(a) / 3.0) * 3;
    if (pow(10.0, e3) > a) /* log10 rounding just below a power of ten */
        e3 -= 3;
    return e3 < SI_MIN_EXP || e3 > SI_MAX_EXP ? INT_MIN : e3;
}

/* v rounded to 3 significant digits, so that 999.7 becomes 1000 before the prefix is chosen. */
static double round_sig3(double v)
{
    if (v == 0 || !isfinite(v))
        return v;
    int e = (int)floor(log10(fabs(v)));
    double scale = pow(10.0, 2 - e);
    double r = round(v * scale) / scale;
    return isfinite(r) ? r : v;
}

/* How a unit takes an SI prefix. */
typedef enum {
    UNIT_NONE,    /* "" or a word: "1.5k tokens", "0.45 fraction of step" */
    UNIT_PERCENT, /* "%": never a prefix, "45.3%" */
    UNIT_SI,      /* s, B, FLOP, Hz, W, J, bit (alone or "X/..."): "1.23 GB/s" */
    UNIT_SI_SMALL /* s, W, J: also m, µ, n below 1: "12.3 ms" */
} unit_kind;

static unit_kind classify_unit(const char *unit)
{
    static const char *const si[] = {"s", "W", "J", "B", "FLOP", "Hz", "bit", "b"};
    enum { SMALL_OK = 3 }; /* the first SMALL_OK entries take prefixes below 1 */
    if (!unit || !unit[0])
        return UNIT_NONE;
    if (strcmp(unit, "%") == 0)
        return UNIT_PERCENT;
    size_t head = strcspn(unit, "/");
    for (size_t i = 0; i < sizeof si / sizeof si[0]; i++)
        if (strlen(si[i]) == head && strncmp(unit, si[i], head) == 0)
            return i < SMALL_OK ? UNIT_SI_SMALL : UNIT_SI;
    return UNIT_NONE;
}

/* Human form of v with 3 significant digits and unit: "12.3 ms", "1.23 GB/s", "45.3%",
 * "1.5k tokens", "1.5k" (no unit). */
static numstr human(double v, const char *unit)
{
    numstr r;
    char m[40];
    unit_kind kind = classify_unit(unit);
    double rv = round_sig3(v);
    int e3 = kind == UNIT_PERCENT ? 0 : si_exponent(fabs(rv), kind == UNIT_SI_SMALL);
    if (e3 == INT_MIN) {
        snprintf(m, sizeof m, "%.3g", v);
        c_decimal_point(m);
        e3 = 0;
    } else
        mantissa(m, sizeof m, rv, e3, 3);
    const char *prefix = si_prefixes[(e3 - SI_MIN_EXP) / 3];
    if (kind == UNIT_SI || kind == UNIT_SI_SMALL)
        snprintf(r.s, sizeof r.s, "%s %s%.60s", m, prefix, unit);
    else if (kind == UNIT_PERCENT)
        snprintf(r.s, sizeof r.s, "%s%%", m);
    else
        snprintf(r.s, sizeof r.s, "%s%s%s%.60s", m, prefix, unit && unit[0] ? " " : "",
                 unit ? unit : "");
    return r;
}

/* ---------------------------------------------------------------- text */

/* Length of the valid, XML-allowed UTF-8 sequence at p, or 0. */
static int utf8_seq(const unsigned char *p)
{
    unsigned c = p[0];
    int n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    if (c == 0xEF && p[1] == 0xBF && (p[2] == 0xBE || p[2] == 0xBF)) /* U+FFFE, U+FFFF */
        return 0;
    return n;
}

/* Appends s as XML character data / attribute text; NULL appends nothing. At most max_chars
 * characters are written (then "…"); max_chars <= 0: no limit. */
static void put_text_clipped(svg_buf *b, const char *s, int max_chars)
{
    static const char replacement[] = "\xEF\xBF\xBD";
    if (!s)
        return;
    const unsigned char *p = (const unsigned char *)s;
    int chars = 0;
    while (*p) {
        if (max_chars > 0 && chars == max_chars) {
            put(b, "\xE2\x80\xA6");
            return;
        }
        chars++;
        unsigned c = *p;
        if (c >= 0x80) {
            int n = utf8_seq(p);
            put_n(b, n ? (const char *)p : replacement, n ? (size_t)n : 3);
            p += n ? n : 1;
            continue;
        }
        p++;
        switch (c) {
        case '&': put(b, "&amp;"); break;
        case '<': put(b, "&lt;"); break;
        case '>': put(b, "&gt;"); break;
        case '"': put(b, "&quot;"); break;
        case '\'': put(b, "&#39;"); break;
        case '\t':
        case '\n':
        case '\r': put(b, " "); break;
        default:
            if (c < 0x20)
                put(b, replacement);
            else
                put_n(b, (const char *)p - 1, 1);
        }
    }
}

static void put_text(svg_buf *b, const char *s)
{
    put_text_clipped(b, s, 0);
}

/* Characters (code points) in s, counting at most max_chars (+1 for the ellipsis). */
static int char_count(const char *s, int max_chars)
{
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
        if ((*p & 0xC0) != 0x80)
            n++;
    return max_chars > 0 && n > max_chars ? max_chars + 1 : n;
}

static double text_width(const char *s, double size, int max_chars)
{
    return char_count(s, max_chars) * size * CHAR_EM;
}

/* Splits an axis label "name (unit)" into its name and unit; a label without a trailing
 * "(...)" is all name. name falls back to fallback when empty. */
static void split_label(const char *label, char *name, size_t nn, char *unit, size_t un,
                        const char *fallback)
{
    size_t len = label ? strlen(label) : 0, name_len = len;
    const char *u = "";
    size_t ulen = 0;
    while (len && label[len - 1] == ' ')
        len--;
    if (len && label[len - 1] == ')') {
        const char *open = NULL;
        for (size_t i = 0; i + 1 < len; i++)
            if (label[i] == '(')
                open = label + i;
        if (open) {
            u = open + 1;
            ulen = (size_t)(label + len - 1 - u);
            name_len = (size_t)(open - label);
            while (name_len && label[name_len - 1] == ' ')
                name_len--;
        }
    }
    if (name) {
        if (name_len)
            snprintf(name, nn, "%.*s", (int)(name_len < nn ? name_len : nn - 1), label);
        else
            snprintf(name, nn, "%s", fallback);
    }
    if (unit)
        snprintf(unit, un, "%.*s", (int)(ulen < un ? ulen : un - 1), u);
}

static void label_unit(char *out, size_t n, const char *label)
{
    split_label(label, NULL, 0, out, n, "");
}

/* ---------------------------------------------------------------- colours */

static const char *const okabe_ito[8] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7",
                                         "#56B4E9", "#D55E00", "#F0E442", "#000000"};

typedef struct {
    char s[8];
} colour;

/* Series colour: Okabe-Ito, lightened towards white on each further cycle. */
static colour series_colour(int i)
{
    colour c;
    const char *base = okabe_ito[i % 8];
    double mix = 1.0 - pow(0.6, i / 8);
    unsigned rgb = (unsigned)strtoul(base + 1, NULL, 16);
    int ch[3] = {(int)(rgb >> 16) & 255, (int)(rgb >> 8) & 255, (int)rgb & 255};
    for (int k = 0; k < 3; k++)
        ch[k] = (int)lround(ch[k] + (255 - ch[k]) * mix);
    snprintf(c.s, sizeof c.s, "#%02X%02X%02X", ch[0] & 255, ch[1] & 255, ch[2] & 255);
    return c;
}

static double clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* viridis(t) for t in [0, 1]. */
static colour viridis(double t)
{
    static const double k[7][3] = {
        {0.2777273272234177, 0.005407344544966578, 0.3340998053353061},
        {0.1050930431085774, 1.404613529898575, 1.384590162594685},
        {-0.3308618287255563, 0.214847559468213, 0.09509516302823659},
        {-4.634230498983486, -5.799100973351585, -19.33244095627987},
        {6.228269936347081, 14.17993336680509, 56.69055260068105},
        {4.776384997670288, -13.74514537774601, -65.35303263337234},
        {-5.435455855934631, 4.645852612178535, 26.3124352495832},
    };
    colour c;
    int ch[3];
    t = clamp(t, 0, 1);
    for (int j = 0; j < 3; j++) {
        double v = k[6][j];
        for (int i = 5; i >= 0; i--)
            v = k[i][j] + t * v;
        ch[j] = (int)lround(clamp(v, 0, 1) * 255.0);
    }
    snprintf(c.s, sizeof c.s, "#%02X%02X%02X", ch[0], ch[1], ch[2]);
    return c;
}

/* ---------------------------------------------------------------- chart frame */

typedef struct {
    svg_buf *b;
    char id[16]; /* id prefix: "ss" + 8 hex digits */
} chart;

typedef struct {
    double x0, y0, x1, y1; /* left, top, right, bottom */
} box;

typedef struct {
    const char *cls;    /* class attribute or NULL */
    const char *anchor; /* "start", "middle", "end" */
    double size;        /* font size */
    double rotate;      /* degrees about (x, y); 0: none */
    int bold, halo;     /* halo: white outline so the text reads over marks */
    const char *fill;   /* NULL: INK */
} text_style;

static void svg_open(chart *c, double w, double h, const char *title)
{
    svg_buf *b = c->b;
    w = ceil(w);
    h = ceil(h);
    putf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"%s\" class=\"switchsim-chart\" "
            "width=\"%s\" height=\"%s\" viewBox=\"0 0 %s %s\" font-family=\"sans-serif\" "
            "font-size=\"%s\" role=\"img\"",
         c->id, px(w).s, px(h).s, px(w).s, px(h).s, px(FONT).s);
    if (title)
        putf(b, " aria-labelledby=\"%s-title\"", c->id);
    put(b, ">\n");
    if (title) {
        putf(b, "<title id=\"%s-title\">", c->id);
        put_text(b, title);
        put(b, "</title>\n");
    }
    putf(b, "<rect class=\"background\" width=\"%s\" height=\"%s\" fill=\"#fff\"/>\n", px(w).s,
         px(h).s);
}

static void svg_close(chart *c)
{
    put(c->b, "</svg>\n");
}

static void draw_text_clipped(chart *c, double x, double y, const text_style *st, const char *s,
                              int max_chars)
{
    svg_buf *b = c->b;
    put(b, "<text");
    if (st->cls)
        putf(b, " class=\"%s\"", st->cls);
    putf(b, " x=\"%s\" y=\"%s\"", px(x).s, px(y).s);
    if (st->anchor && strcmp(st->anchor, "start") != 0)
        putf(b, " text-anchor=\"%s\"", st->anchor);
    if (st->size != FONT)
        putf(b, " font-size=\"%s\"", px(st->size).s);
    if (st->bold)
        put(b, " font-weight=\"bold\"");
    putf(b, " fill=\"%s\"", st->fill ? st->fill : INK);
    if (st->halo)
        put(b, " stroke=\"#fff\" stroke-width=\"3\" stroke-linejoin=\"round\" "
               "paint-order=\"stroke\"");
    if (st->rotate != 0)
        putf(b, " transform=\"rotate(%s %s %s)\"", px(st->rotate).s, px(x).s, px(y).s);
    put(b, ">");
    put_text_clipped(b, s, max_chars);
    put(b, "</text>\n");
}

static void draw_text(chart *c, double x, double y, const text_style *st, const char *s)
{
    draw_text_clipped(c, x, y, st, s, 0);
}

static void draw_line(chart *c, const char *cls, double x1, double y1, double x2, double y2,
                      const char *stroke, double width, const char *dash)
{
    putf(c->b, "<line");
    if (cls)
        putf(c->b, " class=\"%s\"", cls);
    putf(c->b, " x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\"", px(x1).s, px(y1).s,
         px(x2).s, px(y2).s, stroke);
    if (width != 1)
        putf(c->b, " stroke-width=\"%s\"", px(width).s);
    if (dash)
        putf(c->b, " stroke-dasharray=\"%s\"", dash);
    put(c->b, "/>\n");
}

/* "<title>text</title>" for the mark being written. */
static void put_tooltip_open(chart *c)
{
    put(c->b, "><title>");
}

static void draw_title(chart *c, const char *title)
{
    if (!title)
        return;
    text_style st = {.cls = "title", .size = FONT_TITLE, .bold = 1};
    draw_text(c, 12, 22, &st, title);
}

static double title_height(const char *title)
{
    return title ? 40 : 14;
}

/* Width the title needs (0 without one). */
static double title_width(const char *title)
{
    return title ? text_width(title, FONT_TITLE, 0) + 24 : 0;
}

#define CHART_WIDTH 760.0 /* default width of bar, line and roofline charts */

/* An axis title centred at (x, y), rotated to read upwards when vertical, clipped to room
 * pixels (0: no limit); NULL: none. */
static void draw_axis_title(chart *c, double x, double y, int vertical, double room,
                            const char *label)
{
    text_style st = {.cls = "axis-title", .anchor = "middle", .size = FONT,
                     .rotate = vertical ? -90 : 0};
    int max_chars = room > 0 ? (int)fmax(1, floor(room / (FONT * CHAR_EM)) - 1) : 0;
    if (label)
        draw_text_clipped(c, x, y, &st, label, max_chars);
}

/* ---------------------------------------------------------------- axes */

typedef struct {
    int log;
    double lo, hi;            /* shown range; log: > 0 */
    double p0, p1;            /* pixel of lo and of hi */
    int n;                    /* ticks */
    double v[MAX_TICKS];      /* [n] tick values, increasing */
    unsigned char major[MAX_TICKS], labelled[MAX_TICKS];
    int e3;                   /* linear: shared SI exponent of the labels; INT_MIN: per tick */
} axis;

static void add_tick(axis *a, double v, int major, int labelled)
{
    if (a->n == MAX_TICKS)
        return;
    a->v[a->n] = v;
    a->major[a->n] = (unsigned char)major;
    a->labelled[a->n] = (unsigned char)labelled;
    a->n++;
}

/* i * m * 10^e, rounded once (so 3 * 1e-1 gives 0.3, not 0.30000000000000004). */
static double step_multiple(long long i, int m, int e)
{
    return e >= 0 ? (double)(i * m) * pow(10.0, e) : (double)(i * m) / pow(10.0, -e);
}

/* The smallest of 1, 2, 5, 10, 20, 50, ... that is >= x (x >= 1, a count). */
static int nice_count(double x)
{
    int n = 1;
    for (int k = 0; n < x && n < INT_MAX / 10; k++)
        n = (k % 3 == 1) ? n / 2 * 5 : n * 2;
    return n;
}

/* Linear axis over [lo, hi] (lo <= hi, finite) with about target intervals on a 1-2-5 step
 * (the step nearest to range/target in log terms); the shown range is extended to whole
 * steps. reference: d3-array tickIncrement (thresholds sqrt(50), sqrt(10), sqrt(2)). */
static void axis_linear(axis *a, double lo, double hi, int target)
{
    memset(a, 0, sizeof *a);
    if (hi == lo) {
        double d = lo == 0 ? 1 : fabs(lo) * 0.1;
        lo = lo == 0 ? 0 : lo - d;
        hi += d;
    }
    double raw = (hi - lo) / target;
    int e = (int)floor(log10(raw));
    double r = raw / pow(10.0, e);
    int m = r >= sqrt(50.0) ? 10 : r >= sqrt(10.0) ? 5 : r >= sqrt(2.0) ? 2 : 1;
    if (m == 10) {
        m = 1;
        e++;
    }
    double step = m * pow(10.0, e);
    long long i0 = (long long)floor(lo / step + 1e-9), i1 = (long long)ceil(hi / step - 1e-9);
    for (long long i = i0; i <= i1 && a->n < MAX_TICKS; i++)
        add_tick(a, step_multiple(i, m, e), 1, 1);
    a->lo = a->v[0];
    a->hi = a->v[a->n - 1];
    double top = fmax(fabs(a->lo), fabs(a->hi));
    a->e3 = top >= 1e3 && top < 1e4 ? 0 : si_exponent(top, 0); /* "1500", not "1.5k" */
}

/* Log axis over [lo, hi] (0 < lo <= hi): whole decades. Up to 10 decades every decade is
 * labelled, with minor ticks 2..9 up to 6 decades (and 2 and 5 labelled up to 2); beyond,
 * every 3rd decade (one per SI prefix) or every 3k-th, the others as minor ticks. */
static void axis_log(axis *a, double lo, double hi)
{
    memset(a, 0, sizeof *a);
    int e0 = (int)floor(log10(lo)), e1 = (int)ceil(log10(hi));
    if (pow(10.0, e0) > lo)
        e0--;
    if (pow(10.0, e1) < hi)
        e1++;
    if (e1 == e0 && e1 < 300)
        e1++;
    else if (e1 == e0)
        e0--;
    int decades = e1 - e0;
    int every = decades <= 10 ? 1 : 3 * (int)ceil(decades / 24.0);
    /* align to multiples of every, staying within doubles' normal range */
    e0 = (int)fmax(floor((double)e0 / every) * every, -300);
    e1 = (int)fmin(ceil((double)e1 / every) * every, 300);
    decades = e1 - e0;
    int minors = every == 1 && decades <= 6;
    for (int e = e0; e <= e1; e++) {
        int major = (e - e0) % every == 0 || e == e1;
        if (major || decades <= MAX_TICKS / 2)
            add_tick(a, pow(10.0, e), major, major);
        if (minors && e < e1)
            for (int k = 2; k <= 9; k++)
                add_tick(a, k * pow(10.0, e), 0, decades <= 2 && (k == 2 || k == 5));
    }
    a->log = 1;
    a->lo = pow(10.0, e0);
    a->hi = pow(10.0, e1);
    a->e3 = INT_MIN;
}

static double axis_frac(const axis *a, double v)
{
    if (a->log)
        return (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
    return (v - a->lo) / (a->hi - a->lo);
}

static double axis_px(const axis *a, double v)
{
    return a->p0 + axis_frac(a, v) * (a->p1 - a->p0);
}

static numstr tick_label(const axis *a, int i)
{
    numstr r;
    double v = a->v[i];
    if (a->e3 == INT_MIN)
        return human(v, NULL);
    char m[40];
    mantissa(m, sizeof m, v, a->e3, 6);
    snprintf(r.s, sizeof r.s, "%s%s", m, v == 0 ? "" : si_prefixes[(a->e3 - SI_MIN_EXP) / 3]);
    return r;
}

static double tick_label_width(const axis *a)
{
    double w = 0;
    for (int i = 0; i < a->n; i++)
        if (a->labelled[i])
            w = fmax(w, text_width(tick_label(a, i).s, FONT_SMALL, 0));
    return w;
}

static void open_tick(chart *c, const axis *a, int i)
{
    putf(c->b, "<g class=\"tick %s\" data-tick=\"%s\">\n", a->major[i] ? "major" : "minor",
         exact(a->v[i]).s);
}

/* Grid lines, tick marks and labels of a horizontal axis below plot p, and its title. */
static void draw_axis_x(chart *c, const axis *a, box p, const char *label)
{
    text_style st = {.anchor = "middle", .size = FONT_SMALL};
    putf(c->b, "<g class=\"axis x\">\n");
    for (int i = 0; i < a->n; i++) {
        double x = axis_px(a, a->v[i]);
        open_tick(c, a, i);
        draw_line(c, "grid", x, p.y0, x, p.y1, a->major[i] ? GRID : GRID_MINOR, 1, NULL);
        draw_line(c, NULL, x, p.y1, x, p.y1 + (a->major[i] ? 5 : 3), INK, 1, NULL);
        if (a->labelled[i])
            draw_text(c, x, p.y1 + 18, &st, tick_label(a, i).s);
        put(c->b, "</g>\n");
    }
    draw_axis_title(c, (p.x0 + p.x1) / 2, p.y1 + 38, 0, 0, label);
    put(c->b, "</g>\n");
}

/* Grid lines, tick marks and labels of a vertical axis left of plot p, and its title. */
static void draw_axis_y(chart *c, const axis *a, box p, const char *label)
{
    text_style st = {.anchor = "end", .size = FONT_SMALL};
    putf(c->b, "<g class=\"axis y\">\n");
    for (int i = 0; i < a->n; i++) {
        double y = axis_px(a, a->v[i]);
        open_tick(c, a, i);
        draw_line(c, "grid", p.x0, y, p.x1, y, a->major[i] ? GRID : GRID_MINOR, 1, NULL);
        draw_line(c, NULL, p.x0 - (a->major[i] ? 5 : 3), y, p.x0, y, INK, 1, NULL);
        if (a->labelled[i])
            draw_text(c, p.x0 - 8, y + 4, &st, tick_label(a, i).s);
        put(c->b, "</g>\n");
    }
    draw_axis_title(c, 18, (p.y0 + p.y1) / 2, 1, p.y1 - p.y0 + 30, label);
    put(c->b, "</g>\n");
}

/* The left and bottom axis lines, drawn over the marks. */
static void draw_frame(chart *c, box p)
{
    put(c->b, "<g class=\"frame\">\n");
    draw_line(c, NULL, p.x0, p.y0, p.x0, p.y1, INK, 1, NULL);
    draw_line(c, NULL, p.x0, p.y1, p.x1, p.y1, INK, 1, NULL);
    put(c->b, "</g>\n");
}

/* Left margin for a y axis with these tick labels and an optional title. */
static double y_axis_margin(const axis *a, const char *label)
{
    return (label ? 30 : 8) + tick_label_width(a) + 10;
}

/* ---------------------------------------------------------------- categorical labels */

#define LABEL_CHARS 24  /* category labels longer than this are clipped with "…" */
#define LEGEND_CHARS 32
#define REF_CHARS 48

typedef struct {
    int rotate;    /* 1: labels at -45 degrees */
    int every;     /* label every k-th category */
    double height; /* space they take below the axis */
} label_plan;

/* How to label categories slot pixels apart whose widest label is maxw pixels: all of them
 * level; every k-th level (short labels); or every k-th at -45 degrees. */
static label_plan plan_labels(double slot, double maxw)
{
    label_plan lp = {0, 1, FONT_SMALL + 8};
    if (maxw <= slot - 4)
        return lp;
    if (maxw <= 48) {
        lp.every = nice_count(ceil((maxw + 8) / slot));
        return lp;
    }
    lp.rotate = 1;
    lp.every = nice_count(ceil(FONT_SMALL * 1.6 / slot));
    lp.height = maxw * 0.7072 + 14;
    return lp;
}

/* names[i] or the index i as text. */
static const char *category_name(const char *const *names, int i, char *tmp, size_t n)
{
    if (names && names[i])
        return names[i];
    snprintf(tmp, n, "%d", i);
    return tmp;
}

static double max_name_width(const char *const *names, int n, int max_chars)
{
    char tmp[16];
    double w = 0;
    for (int i = 0; i < n; i++)
        w = fmax(w, text_width(category_name(names, i, tmp, sizeof tmp), FONT_SMALL, max_chars));
    return w;
}

/* Category labels under the slots centred at x0 + (i + 0.5) * slot, top at y. */
static void draw_category_labels(chart *c, const char *cls, const char *const *names, int n,
                                 double x0, double slot, double y, label_plan lp)
{
    char tmp[16];
    text_style st = {.anchor = lp.rotate ? "end" : "middle", .size = FONT_SMALL,
                     .rotate = lp.rotate ? -45 : 0};
    putf(c->b, "<g class=\"%s\">\n", cls);
    for (int i = 0; i < n; i += lp.every) {
        double x = x0 + (i + 0.5) * slot;
        draw_line(c, NULL, x, y, x, y + 4, INK, 1, NULL);
        const char *name = category_name(names, i, tmp, sizeof tmp);
        if (lp.rotate)
            draw_text_clipped(c, x + 3, y + 10, &st, name, LABEL_CHARS);
        else
            draw_text_clipped(c, x, y + 16, &st, name, LABEL_CHARS);
    }
    put(c->b, "</g>\n");
}

/* ---------------------------------------------------------------- legend */

typedef enum { SWATCH_BOX, SWATCH_LINE } swatch;

typedef enum { SHAPE_CIRCLE, SHAPE_SQUARE, SHAPE_DIAMOND, SHAPE_TRIANGLE, SHAPE_TRIANGLE_DOWN,
               SHAPES } shape;

static const char *const dashes[4] = {NULL, "7 3", "2 3", "9 3 2 3"};

static double legend_width(const char *const *names, int n)
{
    char tmp[16];
    double w = 0;
    for (int i = 0; i < n; i++)
        w = fmax(w, text_width(category_name(names, i, tmp, sizeof tmp), FONT, LEGEND_CHARS));
    return 30 + w;
}

static double legend_height(int n)
{
    return n * 20.0;
}

/* Opens a marker element of the given shape at (x, y); the caller adds attributes and closes
 * it with the returned element name. */
static const char *open_marker(chart *c, shape sh, double x, double y, double r, const char *fill)
{
    svg_buf *b = c->b;
    if (sh == SHAPE_CIRCLE) {
        putf(b, "<circle cx=\"%s\" cy=\"%s\" r=\"%s\"", px(x).s, px(y).s, px(r).s);
    } else if (sh == SHAPE_SQUARE) {
        double h = r * 0.9;
        putf(b, "<path d=\"M%s %sh%sv%sh%sz\"", px(x - h).s, px(y - h).s, px(2 * h).s,
             px(2 * h).s, px(-2 * h).s);
    } else if (sh == SHAPE_DIAMOND) {
        double h = r * 1.25;
        putf(b, "<path d=\"M%s %sL%s %sL%s %sL%s %sz\"", px(x).s, px(y - h).s, px(x + h).s,
             px(y).s, px(x).s, px(y + h).s, px(x - h).s, px(y).s);
    } else {
        double h = r * 1.3, s = sh == SHAPE_TRIANGLE ? 1 : -1;
        putf(b, "<path d=\"M%s %sL%s %sL%s %sz\"", px(x).s, px(y - s * h).s, px(x + h).s,
             px(y + s * h * 0.8).s, px(x - h).s, px(y + s * h * 0.8).s);
    }
    putf(b, " fill=\"%s\" stroke=\"#fff\" stroke-width=\"1\"", fill);
    return sh == SHAPE_CIRCLE ? "circle" : "path";
}

/* A legend column with its top-left corner at (x, y); reversed: the last series on top (as
 * in a stack of bars). */
static void draw_legend(chart *c, double x, double y, const char *const *names, int n, swatch sw,
                        int reversed)
{
    char tmp[16];
    text_style st = {.size = FONT};
    put(c->b, "<g class=\"legend\">\n");
    for (int i = 0; i < n; i++) {
        double cy = y + (reversed ? n - 1 - i : i) * 20 + 10;
        colour col = series_colour(i);
        const char *name = category_name(names, i, tmp, sizeof tmp);
        put(c->b, "<g class=\"legend-entry\">");
        if (char_count(name, 0) > LEGEND_CHARS) {
            put(c->b, "<title>");
            put_text(c->b, name);
            put(c->b, "</title>");
        }
        put(c->b, "\n");
        if (sw == SWATCH_BOX) {
            putf(c->b, "<rect x=\"%s\" y=\"%s\" width=\"14\" height=\"14\" fill=\"%s\"/>\n",
                 px(x).s, px(cy - 7).s, col.s);
        } else {
            draw_line(c, NULL, x - 2, cy, x + 20, cy, col.s, 2, dashes[i % 4]);
            open_marker(c, (shape)(i % SHAPES), x + 9, cy, 4, col.s);
            put(c->b, "/>\n");
        }
        draw_text_clipped(c, x + 26, cy + 4, &st, name, LEGEND_CHARS);
        put(c->b, "</g>\n");
    }
    put(c->b, "</g>\n");
}

/* ---------------------------------------------------------------- validation helpers */

static ss_status check_count(ss_err *err, const char *chart_kind, const char *what, long long n,
                             long long lo, long long hi)
{
    if (n < lo || n > hi)
        return ss_err_set(err, SS_ERR_RANGE, "svg %s: %s is %lld, must be in [%lld, %lld]",
                          chart_kind, what, n, lo, hi);
    return SS_OK;
}

static ss_status check_array(ss_err *err, const char *chart_kind, const char *what,
                             const void *p, long long n)
{
    if (n > 0 && !p)
        return ss_err_set(err, SS_ERR_RANGE, "svg %s: %s is NULL but must hold %lld entries",
                          chart_kind, what, n);
    return SS_OK;
}

/* What a value must be: finite with magnitude <= 1e300 (so sums and spans stay finite), and
 * >= 0, or within [1e-300, 1e300] for a log axis. */
typedef enum { ANY_FINITE, NON_NEGATIVE, POSITIVE } value_rule;
#define MAX_MAGNITUDE 1e300
#define MIN_POSITIVE 1e-300

static int value_ok(double x, value_rule rule)
{
    if (!isfinite(x) || fabs(x) > MAX_MAGNITUDE)
        return 0;
    return rule == ANY_FINITE || (rule == NON_NEGATIVE ? x >= 0 : x >= MIN_POSITIVE);
}

/* v[0..n) must follow rule (NaN allowed where allow_nan). */
static ss_status check_values(ss_err *err, const char *chart_kind, const char *what,
                              const double *v, long long n, value_rule rule, int allow_nan)
{
    static const char *const rule_text[] = {
        "finite with magnitude <= 1e300", "finite, >= 0 and <= 1e300",
        "> 0 (log axis), within [1e-300, 1e300]"};
    for (long long i = 0; i < n; i++) {
        if (allow_nan && isnan(v[i]))
            continue;
        if (!value_ok(v[i], rule))
            return ss_err_set(err, SS_ERR_RANGE, "svg %s: %s[%lld] is %s, must be %s%s",
                              chart_kind, what, i, exact(v[i]).s, rule_text[rule],
                              allow_nan ? " (or NaN for no data)" : "");
    }
    return SS_OK;
}

/* ---------------------------------------------------------------- emitting a chart */

typedef void (*render_fn)(chart *c, const void *spec);

static uint32_t fnv1a(uint32_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

static ss_status emit_chart(svg_buf *out, render_fn render, const void *spec, ss_err *err,
                            const char *chart_kind)
{
    svg_buf tmp = {0};
    chart c = {.b = &tmp};
    snprintf(c.id, sizeof c.id, "ss00000000");
    render(&c, spec);
    if (!tmp.failed) {
        char at[32];
        snprintf(at, sizeof at, "@%zu", out->len);
        uint32_t h = fnv1a(2166136261u, tmp.data, tmp.len);
        h = fnv1a(h, at, strlen(at));
        snprintf(c.id, sizeof c.id, "ss%08x", (unsigned)h);
        tmp.len = 0;
        render(&c, spec);
    }
    if (!tmp.failed)
        put_n(out, tmp.data, tmp.len);
    int failed = tmp.failed || out->failed;
    svg_buf_free(&tmp);
    if (failed)
        return ss_err_set(err, SS_ERR_NOMEM, "svg %s: out of memory while writing the chart",
                          chart_kind);
    return SS_OK;
}

static ss_status check_common(svg_buf *out, const void *spec, ss_err *err, const char *kind)
{
    if (!out || !spec)
        return ss_err_set(err, SS_ERR_RANGE, "svg %s: %s is NULL", kind,
                          out ? "the spec" : "the output buffer");
    if (out->failed)
        return ss_err_set(err, SS_ERR_NOMEM,
                          "svg %s: the output buffer had a failed allocation", kind);
    return SS_OK;
}

/* ---------------------------------------------------------------- stacked bars */

static double bar_total(const svg_bars_spec *s, int i)
{
    double t = 0;
    for (int k = 0; k < s->series; k++)
        t += s->values[(size_t)i * (size_t)s->series + (size_t)k];
    return t;
}

typedef struct {
    double w, h;
    box p;          /* plot area */
    axis ay;
    double slot;    /* pixels per bar */
    label_plan lp;
} bars_layout;

static bars_layout layout_bars(const svg_bars_spec *s)
{
    bars_layout L;
    double top = 0;
    for (int i = 0; i < s->bars; i++)
        top = fmax(top, bar_total(s, i));
    if (!isnan(s->ref_line))
        top = fmax(top, s->ref_line);
    axis_linear(&L.ay, 0, top, 5);
    double left = y_axis_margin(&L.ay, s->y_label);
    double legend = s->series > 1 ? legend_width(s->series_names, s->series) + 24 : 0;
    double right = 20 + legend;
    L.w = fmax(CHART_WIDTH, title_width(s->title));
    double plot_w = L.w - left - right;
    if (plot_w < s->bars * 1.0) {
        plot_w = s->bars * 1.0;
        L.w = left + right + plot_w;
    }
    L.slot = plot_w / s->bars;
    L.lp = plan_labels(L.slot, max_name_width(s->bar_names, s->bars, LABEL_CHARS));
    double plot_h = fmax(280, s->series > 1 ? legend_height(s->series) : 0);
    double top_m = title_height(s->title);
    L.p = (box){left, top_m, left + plot_w, top_m + plot_h};
    L.h = L.p.y1 + 6 + L.lp.height + (s->x_label ? 24 : 0) + 10;
    L.ay.p0 = L.p.y1;
    L.ay.p1 = L.p.y0;
    return L;
}

static void draw_bar_segments(chart *c, const svg_bars_spec *s, const bars_layout *L, int i,
                              const char *unit)
{
    char tmp[16];
    double bw = L->slot >= 4 ? fmin(L->slot * 0.72, 64) : L->slot;
    double x = L->p.x0 + (i + 0.5) * L->slot - bw / 2, base = 0;
    const char *bar = category_name(s->bar_names, i, tmp, sizeof tmp);
    for (int k = 0; k < s->series; k++) {
        double v = s->values[(size_t)i * (size_t)s->series + (size_t)k];
        double y0 = axis_px(&L->ay, base), y1 = axis_px(&L->ay, base + v);
        base += v;
        putf(c->b, "<rect class=\"mark\" x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" "
                   "fill=\"%s\" data-value=\"%s\"",
             px(x).s, px(y1).s, px(bw).s, px(y0 - y1).s, series_colour(k).s, exact(v).s);
        put_tooltip_open(c);
        put_text(c->b, bar);
        if (s->series > 1) {
            char stmp[16];
            put(c->b, " \xC2\xB7 ");
            put_text(c->b, category_name(s->series_names, k, stmp, sizeof stmp));
        }
        putf(c->b, ": ");
        put_text(c->b, human(v, unit).s);
        put(c->b, "</title></rect>\n");
    }
    /* "204 µs" for SI units; a plain count otherwise (the unit is on the axis) */
    unit_kind kind = classify_unit(unit);
    numstr total = human(base, kind == UNIT_SI || kind == UNIT_SI_SMALL ? unit : NULL);
    if (text_width(total.s, FONT_SMALL, 0) > L->slot - 2)
        total = human(base, NULL);
    if (L->lp.every == 1 && text_width(total.s, FONT_SMALL, 0) <= L->slot - 2) {
        text_style st = {.cls = "bar-total", .anchor = "middle", .size = FONT_SMALL,
                         .fill = "#555"};
        draw_text(c, x + bw / 2, axis_px(&L->ay, base) - 4, &st, total.s);
    }
}

static void draw_ref_line(chart *c, const svg_bars_spec *s, const bars_layout *L,
                          const char *unit)
{
    double y = axis_px(&L->ay, s->ref_line);
    putf(c->b, "<g class=\"ref-line\" data-ref=\"%s\">\n", exact(s->ref_line).s);
    draw_line(c, NULL, L->p.x0, y, L->p.x1, y, INK, 1.5, "6 4");
    svg_buf label = {0};
    if (s->ref_label) {
        put(&label, s->ref_label); /* raw text; escaped by draw_text */
        put(&label, " = ");
    }
    put(&label, human(s->ref_line, unit).s);
    const char *text = label.failed ? "" : label.data;
    /* on a translucent plate above the line (below it when the line is near the top) */
    double w = text_width(text, FONT_SMALL, REF_CHARS) + 8;
    double base = y - 18 < L->p.y0 ? y + 16 : y - 6;
    putf(c->b, "<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"16\" rx=\"2\" fill=\"#fff\" "
               "fill-opacity=\"0.85\"/>\n",
         px(L->p.x1 - 2 - w).s, px(base - 12).s, px(w).s);
    text_style st = {.anchor = "end", .size = FONT_SMALL};
    draw_text_clipped(c, L->p.x1 - 6, base, &st, text, REF_CHARS);
    if (label.failed)
        c->b->failed = 1;
    svg_buf_free(&label);
    put(c->b, "</g>\n");
}

static void render_bars(chart *c, const void *spec)
{
    const svg_bars_spec *s = spec;
    bars_layout L = layout_bars(s);
    char unit[64];
    label_unit(unit, sizeof unit, s->y_label);
    svg_open(c, L.w, L.h, s->title);
    draw_title(c, s->title);
    draw_axis_y(c, &L.ay, L.p, s->y_label);
    put(c->b, "<g class=\"marks\">\n");
    for (int i = 0; i < s->bars; i++)
        draw_bar_segments(c, s, &L, i, unit);
    put(c->b, "</g>\n");
    draw_frame(c, L.p);
    draw_category_labels(c, "axis x", s->bar_names, s->bars, L.p.x0, L.slot, L.p.y1, L.lp);
    draw_axis_title(c, (L.p.x0 + L.p.x1) / 2, L.p.y1 + 6 + L.lp.height + 14, 0, 0, s->x_label);
    if (!isnan(s->ref_line))
        draw_ref_line(c, s, &L, unit);
    if (s->series > 1)
        draw_legend(c, L.p.x1 + 24, L.p.y0, s->series_names, s->series, SWATCH_BOX, 1);
    svg_close(c);
}

static ss_status check_bars(const svg_bars_spec *s, ss_err *err)
{
    const char *k = "stacked bars";
    ss_status st;
    if ((st = check_count(err, k, "bars", s->bars, 1, MAX_MARKS)) ||
        (st = check_count(err, k, "series", s->series, 1, MAX_SERIES)) ||
        (st = check_count(err, k, "bars * series", (long long)s->bars * s->series, 1,
                          MAX_MARKS)) ||
        (st = check_array(err, k, "values", s->values, (long long)s->bars * s->series)) ||
        (st = check_values(err, k, "values", s->values, (long long)s->bars * s->series,
                           NON_NEGATIVE, 0)))
        return st;
    if (!isnan(s->ref_line) && !value_ok(s->ref_line, NON_NEGATIVE))
        return ss_err_set(err, SS_ERR_RANGE,
                          "svg %s: ref_line is %s, must be finite, >= 0 and <= 1e300 (or NaN "
                          "for none)", k,
                          exact(s->ref_line).s);
    return SS_OK;
}

ss_status svg_stacked_bars(svg_buf *out, const svg_bars_spec *s, ss_err *err)
{
    ss_status st = check_common(out, s, err, "stacked bars");
    if (st || (st = check_bars(s, err)))
        return st;
    return emit_chart(out, render_bars, s, err, "stacked bars");
}

/* ---------------------------------------------------------------- heatmap */

typedef struct {
    double w, h;
    box g;                    /* the grid */
    double cell;              /* cell side in pixels */
    double lo, hi;            /* colour-scale range */
    int has_nan;
    axis scale;               /* legend ticks (inside [lo, hi]) */
    double legend_x;          /* left of the colour bar */
    box bar;                  /* the colour bar */
    label_plan cols_lp;
    int rows_every;
    double y_title_mid;       /* centre of the rotated row-axis title */
} heatmap_layout;

static void heatmap_range(const svg_heatmap_spec *s, heatmap_layout *L)
{
    size_t n = (size_t)s->rows * (size_t)s->cols;
    double lo = INFINITY, hi = -INFINITY;
    L->has_nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(s->values[i])) {
            L->has_nan = 1;
            continue;
        }
        lo = fmin(lo, s->values[i]);
        hi = fmax(hi, s->values[i]);
    }
    if (s->vmin != s->vmax) {
        lo = s->vmin;
        hi = s->vmax;
    } else if (lo > hi) { /* no data at all */
        lo = 0;
        hi = 1;
    } else if (lo == hi) {
        double d = lo == 0 ? 1 : fabs(lo) * 0.5;
        lo = lo == 0 ? 0 : lo - d;
        hi += d;
    }
    L->lo = lo;
    L->hi = hi;
}

/* Legend ticks: the 1-2-5 ticks of [lo, hi] that lie inside it, or lo and hi themselves. */
static void heatmap_scale_ticks(heatmap_layout *L)
{
    axis full;
    axis_linear(&full, L->lo, L->hi, 4);
    axis *a = &L->scale;
    memset(a, 0, sizeof *a);
    double eps = (L->hi - L->lo) * 1e-9;
    for (int i = 0; i < full.n; i++)
        if (full.v[i] >= L->lo - eps && full.v[i] <= L->hi + eps)
            add_tick(a, full.v[i], 1, 1);
    if (a->n < 2) {
        a->n = 0;
        add_tick(a, L->lo, 1, 1);
        add_tick(a, L->hi, 1, 1);
    }
    a->lo = L->lo;
    a->hi = L->hi;
    a->e3 = full.e3;
}

static heatmap_layout layout_heatmap(const svg_heatmap_spec *s)
{
    heatmap_layout L;
    heatmap_range(s, &L);
    heatmap_scale_ticks(&L);
    L.cell = clamp(fmin(560.0 / s->cols, 440.0 / s->rows), 2, 48);
    double row_w = max_name_width(s->row_names, s->rows, LABEL_CHARS);
    L.rows_every = nice_count(ceil((FONT_SMALL + 2) / L.cell));
    L.cols_lp = plan_labels(L.cell, max_name_width(s->col_names, s->cols, LABEL_CHARS));
    double left = (s->y_label ? 30 : 8) + row_w + 12;
    double top = title_height(s->title);
    double gw = L.cell * s->cols, gh = L.cell * s->rows;
    L.g = (box){left, top, left + gw, top + gh};
    /* the rotated value and row titles need as much height as they are long */
    double bar_h = fmax(fmax(gh, 160), text_width(s->value_label, FONT, 0) + 8);
    L.y_title_mid = fmax(top + gh / 2, top + text_width(s->y_label, FONT, 0) / 2 + 4);
    L.legend_x = L.g.x1 + 28;
    L.bar = (box){L.legend_x, top, L.legend_x + 14, top + bar_h};
    double legend_w = 14 + 8 + tick_label_width(&L.scale) + (s->value_label ? 30 : 8);
    L.w = fmax(L.legend_x + legend_w + 10, title_width(s->title));
    double below_grid = fmax(L.g.y1 + 6 + L.cols_lp.height + (s->x_label ? 24 : 0),
                             L.y_title_mid + text_width(s->y_label, FONT, 0) / 2);
    double below_bar = L.bar.y1 + (L.has_nan ? 34 : 0);
    L.h = fmax(below_grid, below_bar) + 12;
    L.scale.p0 = L.bar.y1;
    L.scale.p1 = L.bar.y0;
    return L;
}

static double heatmap_t(const heatmap_layout *L, double v)
{
    return clamp((v - L->lo) / (L->hi - L->lo), 0, 1);
}

static void put_cell_tooltip(chart *c, const svg_heatmap_spec *s, int r, int k, const char *unit)
{
    char axis_name[128];
    put_tooltip_open(c);
    if (s->row_names && s->row_names[r])
        put_text(c->b, s->row_names[r]);
    else {
        split_label(s->y_label, axis_name, sizeof axis_name, NULL, 0, "row");
        put_text(c->b, axis_name);
        putf(c->b, " %d", r);
    }
    put(c->b, ", ");
    if (s->col_names && s->col_names[k])
        put_text(c->b, s->col_names[k]);
    else {
        split_label(s->x_label, axis_name, sizeof axis_name, NULL, 0, "column");
        put_text(c->b, axis_name);
        putf(c->b, " %d", k);
    }
    put(c->b, ": ");
    double v = s->values[(size_t)r * (size_t)s->cols + (size_t)k];
    put_text(c->b, isnan(v) ? "no data" : human(v, unit).s);
    put(c->b, "</title></rect>\n");
}

static void draw_cells(chart *c, const svg_heatmap_spec *s, const heatmap_layout *L,
                       const char *unit)
{
    const char *gap = L->cell >= 8 ? " stroke=\"#fff\" stroke-width=\"1\"" : "";
    text_style st = {.cls = "cell-label", .anchor = "middle", .size = 10};
    put(c->b, "<g class=\"marks\">\n");
    for (int r = 0; r < s->rows; r++)
        for (int k = 0; k < s->cols; k++) {
            double v = s->values[(size_t)r * (size_t)s->cols + (size_t)k];
            double x = L->g.x0 + k * L->cell, y = L->g.y0 + r * L->cell;
            char fill[32];
            if (isnan(v))
                snprintf(fill, sizeof fill, "url(#%s-nan)", c->id);
            else
                snprintf(fill, sizeof fill, "%s", viridis(heatmap_t(L, v)).s);
            putf(c->b, "<rect class=\"mark cell\" x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" "
                       "fill=\"%s\"%s data-value=\"%s\"",
                 px(x).s, px(y).s, px(L->cell).s, px(L->cell).s, fill, gap, exact(v).s);
            put_cell_tooltip(c, s, r, k, unit);
            numstr label = human(v, NULL);
            if (!isnan(v) && L->cell >= 30 && text_width(label.s, 10, 0) <= L->cell - 4) {
                st.fill = heatmap_t(L, v) < 0.6 ? "#fff" : "#111";
                draw_text(c, x + L->cell / 2, y + L->cell / 2 + 3.5, &st, label.s);
            }
        }
    put(c->b, "</g>\n");
}

static void draw_row_labels(chart *c, const svg_heatmap_spec *s, const heatmap_layout *L)
{
    char tmp[16];
    text_style st = {.anchor = "end", .size = FONT_SMALL};
    put(c->b, "<g class=\"axis y\">\n");
    for (int r = 0; r < s->rows; r += L->rows_every) {
        double y = L->g.y0 + (r + 0.5) * L->cell;
        draw_line(c, NULL, L->g.x0 - 4, y, L->g.x0, y, INK, 1, NULL);
        draw_text_clipped(c, L->g.x0 - 7, y + 4, &st,
                          category_name(s->row_names, r, tmp, sizeof tmp), LABEL_CHARS);
    }
    put(c->b, "</g>\n");
    draw_axis_title(c, 18, L->y_title_mid, 1, 0, s->y_label);
}

static void put_nan_pattern(chart *c)
{
    putf(c->b, "<pattern id=\"%s-nan\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
               "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#e4e4e4\"/>"
               "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#a0a0a0\" "
               "stroke-width=\"2\"/></pattern>\n",
         c->id);
}

static void put_scale_gradient(chart *c)
{
    putf(c->b, "<linearGradient id=\"%s-scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">", c->id);
    for (int i = 0; i <= 16; i++)
        putf(c->b, "<stop offset=\"%s\" stop-color=\"%s\"/>", px(i / 16.0).s,
             viridis(i / 16.0).s);
    put(c->b, "</linearGradient>\n");
}

static void draw_scale_legend(chart *c, const svg_heatmap_spec *s, const heatmap_layout *L)
{
    const box *b = &L->bar;
    text_style st = {.size = FONT_SMALL};
    putf(c->b, "<g class=\"colour-scale\" data-min=\"%s\" data-max=\"%s\">\n", exact(L->lo).s,
         exact(L->hi).s);
    putf(c->b, "<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" fill=\"url(#%s-scale)\" "
               "stroke=\"%s\"/>\n",
         px(b->x0).s, px(b->y0).s, px(b->x1 - b->x0).s, px(b->y1 - b->y0).s, c->id, INK);
    for (int i = 0; i < L->scale.n; i++) {
        double y = axis_px(&L->scale, L->scale.v[i]);
        open_tick(c, &L->scale, i);
        draw_line(c, NULL, b->x1, y, b->x1 + 4, y, INK, 1, NULL);
        draw_text(c, b->x1 + 7, y + 4, &st, tick_label(&L->scale, i).s);
        put(c->b, "</g>\n");
    }
    draw_axis_title(c, b->x1 + 24 + tick_label_width(&L->scale), (b->y0 + b->y1) / 2, 1, 0,
                    s->value_label);
    if (L->has_nan) {
        putf(c->b, "<rect x=\"%s\" y=\"%s\" width=\"14\" height=\"14\" fill=\"url(#%s-nan)\" "
                   "stroke=\"%s\"/>\n",
             px(b->x0).s, px(b->y1 + 14).s, c->id, INK);
        draw_text(c, b->x1 + 7, b->y1 + 25, &st, "no data");
    }
    put(c->b, "</g>\n");
}

static void render_heatmap(chart *c, const void *spec)
{
    const svg_heatmap_spec *s = spec;
    heatmap_layout L = layout_heatmap(s);
    char unit[64];
    label_unit(unit, sizeof unit, s->value_label);
    svg_open(c, L.w, L.h, s->title);
    put(c->b, "<defs>\n");
    put_nan_pattern(c);
    put_scale_gradient(c);
    put(c->b, "</defs>\n");
    draw_title(c, s->title);
    draw_cells(c, s, &L, unit);
    draw_row_labels(c, s, &L);
    draw_category_labels(c, "axis x", s->col_names, s->cols, L.g.x0, L.cell, L.g.y1 + 2,
                         L.cols_lp);
    draw_axis_title(c, (L.g.x0 + L.g.x1) / 2, L.g.y1 + 8 + L.cols_lp.height + 14, 0, 0,
                    s->x_label);
    draw_scale_legend(c, s, &L);
    svg_close(c);
}

static ss_status check_heatmap(const svg_heatmap_spec *s, ss_err *err)
{
    const char *k = "heatmap";
    ss_status st;
    long long n = (long long)s->rows * s->cols;
    if ((st = check_count(err, k, "rows", s->rows, 1, 4096)) ||
        (st = check_count(err, k, "cols", s->cols, 1, 4096)) ||
        (st = check_count(err, k, "rows * cols", n, 1, MAX_MARKS)) ||
        (st = check_array(err, k, "values", s->values, n)) ||
        (st = check_values(err, k, "values", s->values, n, ANY_FINITE, 1)))
        return st;
    if (!value_ok(s->vmin, ANY_FINITE) || !value_ok(s->vmax, ANY_FINITE) || s->vmin > s->vmax)
        return ss_err_set(err, SS_ERR_RANGE,
                          "svg heatmap: colour range [vmin, vmax] = [%s, %s] must be finite with "
                          "vmin <= vmax (vmin == vmax: the data's range)",
                          exact(s->vmin).s, exact(s->vmax).s);
    return SS_OK;
}

ss_status svg_heatmap(svg_buf *out, const svg_heatmap_spec *s, ss_err *err)
{
    ss_status st = check_common(out, s, err, "heatmap");
    if (st || (st = check_heatmap(s, err)))
        return st;
    return emit_chart(out, render_heatmap, s, err, "heatmap");
}

/* ---------------------------------------------------------------- x-y plots */

/* Axis over the values of all series: decades (log) or 1-2-5 steps (linear; with
 * include_zero, a non-negative range starts at 0). */
static void axis_for_data(axis *a, double lo, double hi, int log, int include_zero)
{
    if (log)
        axis_log(a, lo, hi);
    else
        axis_linear(a, include_zero && lo >= 0 ? 0 : lo, hi, 5);
}

typedef struct {
    double w, h;
    box p;
    axis ax, ay;
} xy_layout;

/* Plot box and pixel ranges for axes ax, ay, with room on the right. */
static void layout_xy(xy_layout *L, const char *title, const char *x_label, const char *y_label,
                      double right, double plot_h)
{
    double left = y_axis_margin(&L->ay, y_label);
    double top = title_height(title);
    L->w = fmax(CHART_WIDTH, title_width(title));
    L->p = (box){left, top, L->w - right, top + plot_h};
    L->h = L->p.y1 + 28 + (x_label ? 22 : 0) + 8;
    L->ax.p0 = L->p.x0;
    L->ax.p1 = L->p.x1;
    L->ay.p0 = L->p.y1;
    L->ay.p1 = L->p.y0;
}

/* "name: x = 64 cores, y = 1.23 Mtokens/s" tooltip of a point. */
static void put_point_tooltip(chart *c, const char *name, const char *x_label, double x,
                              const char *y_label, double y)
{
    char xn[128], yn[128], xu[64], yu[64];
    split_label(x_label, xn, sizeof xn, xu, sizeof xu, "x");
    split_label(y_label, yn, sizeof yn, yu, sizeof yu, "y");
    put_tooltip_open(c);
    put_text(c->b, name);
    put(c->b, ": ");
    put_text(c->b, xn);
    put(c->b, " = ");
    put_text(c->b, human(x, xu).s);
    put(c->b, ", ");
    put_text(c->b, yn);
    put(c->b, " = ");
    put_text(c->b, human(y, yu).s);
}

static void lines_extent(const svg_lines_spec *s, double *xlo, double *xhi, double *ylo,
                         double *yhi)
{
    *xlo = *ylo = INFINITY;
    *xhi = *yhi = -INFINITY;
    for (int k = 0; k < s->series; k++)
        for (int i = 0; i < s->points[k]; i++) {
            *xlo = fmin(*xlo, s->x[k][i]);
            *xhi = fmax(*xhi, s->x[k][i]);
            *ylo = fmin(*ylo, s->y[k][i]);
            *yhi = fmax(*yhi, s->y[k][i]);
        }
}

static void draw_series(chart *c, const svg_lines_spec *s, const xy_layout *L, int k)
{
    char tmp[16];
    colour col = series_colour(k);
    const char *name = category_name(s->series_names, k, tmp, sizeof tmp);
    putf(c->b, "<g class=\"series\">\n");
    if (s->points[k] > 1) {
        putf(c->b, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                   "stroke-linejoin=\"round\"",
             col.s);
        if (dashes[k % 4])
            putf(c->b, " stroke-dasharray=\"%s\"", dashes[k % 4]);
        put(c->b, " d=\"");
        for (int i = 0; i < s->points[k]; i++)
            putf(c->b, "%c%s %s", i ? 'L' : 'M', px(axis_px(&L->ax, s->x[k][i])).s,
                 px(axis_px(&L->ay, s->y[k][i])).s);
        put(c->b, "\"/>\n");
    }
    for (int i = 0; i < s->points[k]; i++) {
        double x = s->x[k][i], y = s->y[k][i];
        const char *el = open_marker(c, (shape)(k % SHAPES), axis_px(&L->ax, x),
                                     axis_px(&L->ay, y), 4.5, col.s);
        putf(c->b, " class=\"mark\" data-x=\"%s\" data-y=\"%s\"", exact(x).s, exact(y).s);
        put_point_tooltip(c, name, s->x_label, x, s->y_label, y);
        putf(c->b, "</title></%s>\n", el);
    }
    put(c->b, "</g>\n");
}

static void render_lines(chart *c, const void *spec)
{
    const svg_lines_spec *s = spec;
    xy_layout L;
    double xlo, xhi, ylo, yhi;
    lines_extent(s, &xlo, &xhi, &ylo, &yhi);
    axis_for_data(&L.ax, xlo, xhi, s->log_x, 0);
    axis_for_data(&L.ay, ylo, yhi, s->log_y, 1);
    double legend = legend_width(s->series_names, s->series);
    layout_xy(&L, s->title, s->x_label, s->y_label, legend + 44,
              fmax(300, legend_height(s->series)));
    svg_open(c, L.w, L.h, s->title);
    draw_title(c, s->title);
    draw_axis_x(c, &L.ax, L.p, s->x_label);
    draw_axis_y(c, &L.ay, L.p, s->y_label);
    put(c->b, "<g class=\"marks\">\n");
    for (int k = 0; k < s->series; k++)
        draw_series(c, s, &L, k);
    put(c->b, "</g>\n");
    draw_frame(c, L.p);
    draw_legend(c, L.p.x1 + 24, L.p.y0, s->series_names, s->series, SWATCH_LINE, 0);
    svg_close(c);
}

static ss_status check_lines(const svg_lines_spec *s, ss_err *err)
{
    const char *k = "lines";
    ss_status st;
    if ((st = check_count(err, k, "series", s->series, 1, MAX_SERIES)) ||
        (st = check_array(err, k, "points", s->points, s->series)) ||
        (st = check_array(err, k, "x", s->x, s->series)) ||
        (st = check_array(err, k, "y", s->y, s->series)))
        return st;
    long long total = 0;
    for (int i = 0; i < s->series; i++) {
        char what[48];
        snprintf(what, sizeof what, "points[%d]", i);
        if ((st = check_count(err, k, what, s->points[i], 0, MAX_MARKS)))
            return st;
        total += s->points[i];
        snprintf(what, sizeof what, "x[%d]", i);
        if ((st = check_array(err, k, what, s->x[i], s->points[i])) ||
            (st = check_values(err, k, what, s->x[i], s->points[i],
                               s->log_x ? POSITIVE : ANY_FINITE, 0)))
            return st;
        snprintf(what, sizeof what, "y[%d]", i);
        if ((st = check_array(err, k, what, s->y[i], s->points[i])) ||
            (st = check_values(err, k, what, s->y[i], s->points[i],
                               s->log_y ? POSITIVE : ANY_FINITE, 0)))
            return st;
    }
    return check_count(err, k, "the total number of points", total, 1, MAX_MARKS);
}

ss_status svg_lines(svg_buf *out, const svg_lines_spec *s, ss_err *err)
{
    ss_status st = check_common(out, s, err, "lines");
    if (st || (st = check_lines(s, err)))
        return st;
    return emit_chart(out, render_lines, s, err, "lines");
}

/* ---------------------------------------------------------------- roofline */

#define ROOF_X_LABEL "arithmetic intensity (FLOP/byte)"
#define ROOF_Y_LABEL "performance (FLOP/s)"

/* min(peak, bandwidth * intensity), kept >= 1e-300 so that it has a logarithm. */
static double roof_at(const svg_roofline_spec *s, double intensity)
{
    return fmax(fmin(s->peak_flops, s->bandwidth_bytes_per_s * intensity), MIN_POSITIVE);
}

static void layout_roofline(const svg_roofline_spec *s, xy_layout *L)
{
    double ridge = s->peak_flops / s->bandwidth_bytes_per_s;
    double xlo = ridge / 8, xhi = ridge * 8, ylo = INFINITY, yhi = s->peak_flops * 1.5;
    for (int i = 0; i < s->points; i++) {
        xlo = fmin(xlo, s->intensity[i]);
        xhi = fmax(xhi, s->intensity[i]);
        ylo = fmin(ylo, s->flops_per_s[i]);
        yhi = fmax(yhi, s->flops_per_s[i]);
    }
    axis_log(&L->ax, xlo, xhi);
    ylo = fmin(ylo, roof_at(s, L->ax.lo));
    axis_log(&L->ay, ylo, yhi);
    layout_xy(L, s->title, ROOF_X_LABEL, ROOF_Y_LABEL, 24, 340);
}

static void peak_label(char *out, size_t n, const svg_roofline_spec *s)
{
    snprintf(out, n, "peak %s", human(s->peak_flops, "FLOP/s").s);
}

static void draw_roof(chart *c, const svg_roofline_spec *s, const xy_layout *L)
{
    double ridge = s->peak_flops / s->bandwidth_bytes_per_s;
    double x0 = L->ax.lo, x1 = L->ax.hi;
    double rx = clamp(ridge, x0, x1);
    putf(c->b, "<g class=\"roof\" data-peak=\"%s\" data-bandwidth=\"%s\">\n",
         exact(s->peak_flops).s, exact(s->bandwidth_bytes_per_s).s);
    putf(c->b, "<path fill=\"#0072B2\" fill-opacity=\"0.06\" stroke=\"none\" "
               "d=\"M%s %sL%s %sL%s %sL%s %sL%s %sz\"/>\n",
         px(axis_px(&L->ax, x0)).s, px(L->p.y1).s, px(axis_px(&L->ax, x0)).s,
         px(axis_px(&L->ay, roof_at(s, x0))).s, px(axis_px(&L->ax, rx)).s,
         px(axis_px(&L->ay, roof_at(s, rx))).s, px(axis_px(&L->ax, x1)).s,
         px(axis_px(&L->ay, roof_at(s, x1))).s, px(axis_px(&L->ax, x1)).s, px(L->p.y1).s);
    putf(c->b, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\" d=\"M%s %sL%s %sL%s %s\"/>\n",
         INK, px(axis_px(&L->ax, x0)).s, px(axis_px(&L->ay, roof_at(s, x0))).s,
         px(axis_px(&L->ax, rx)).s, px(axis_px(&L->ay, roof_at(s, rx))).s,
         px(axis_px(&L->ax, x1)).s, px(axis_px(&L->ay, roof_at(s, x1))).s);

    char label[160];
    text_style st = {.cls = "roof-label", .anchor = "end", .size = FONT_SMALL, .halo = 1};
    peak_label(label, sizeof label, s);
    draw_text(c, L->p.x1 - 6, axis_px(&L->ay, s->peak_flops) - 7, &st, label);
    /* bandwidth label along the slope, centred between the left edge and the ridge */
    double ax0 = axis_px(&L->ax, x0), ay0 = axis_px(&L->ay, roof_at(s, x0));
    double ax1 = axis_px(&L->ax, rx), ay1 = axis_px(&L->ay, roof_at(s, rx));
    double angle = atan2(ay1 - ay0, ax1 - ax0) * 180.0 / PI;
    snprintf(label, sizeof label, "memory %s", human(s->bandwidth_bytes_per_s, "B/s").s);
    st.anchor = "middle";
    st.rotate = angle;
    double mx = ax0 + (ax1 - ax0) * 0.55, my = ay0 + (ay1 - ay0) * 0.55;
    double nx = sin(angle * PI / 180.0) * 7, ny = -cos(angle * PI / 180.0) * 7;
    draw_text(c, mx + nx, my + ny, &st, label);
    put(c->b, "</g>\n");
}

/* Whether box a overlaps any of boxes[0..n). */
static int overlaps(box a, const box *boxes, int n)
{
    for (int i = 0; i < n; i++)
        if (a.x0 < boxes[i].x1 && boxes[i].x0 < a.x1 && a.y0 < boxes[i].y1 &&
            boxes[i].y0 < a.y1)
            return 1;
    return 0;
}

/* Places label near the marker at (x, y) where it overlaps no box in taken and stays in the
 * plot: right, left, above, below or diagonal, first close, then 2.4 times as far with a
 * leader line; falls back to the right side. Appends its box to taken. */
static void place_point_label(chart *c, const xy_layout *L, double x, double y,
                              const char *label, box *taken, int *ntaken)
{
    static const struct {
        double dx, dy;
        const char *anchor;
    } spots[] = {{8, 4, "start"},  {-8, 4, "end"},    {0, -10, "middle"}, {0, 17, "middle"},
                 {7, -8, "start"}, {7, 15, "start"},  {-7, -8, "end"},    {-7, 15, "end"}};
    enum { SPOTS = sizeof spots / sizeof spots[0] };
    static const double reach[] = {1.0, 2.4};
    double w = text_width(label, FONT_SMALL, 0), h = FONT_SMALL;
    int pick = 0;
    double scale = 1, lx = x + spots[0].dx, ly = y + spots[0].dy;
    box chosen = {lx, ly - h + 2, lx + w, ly + 3};
    for (int r = 0; r < 2; r++)
        for (int k = 0; k < SPOTS; k++) {
            double tx = x + spots[k].dx * reach[r], ty = y + (spots[k].dy - 4) * reach[r] + 4;
            char a = spots[k].anchor[0];
            double bx0 = a == 's' ? tx : a == 'e' ? tx - w : tx - w / 2;
            box b = {bx0, ty - h + 2, bx0 + w, ty + 3};
            int inside = b.x0 >= L->p.x0 && b.x1 <= L->p.x1 + 20 && b.y0 >= L->p.y0 - 10 &&
                         b.y1 <= L->p.y1;
            if (inside && !overlaps(b, taken, *ntaken)) {
                pick = k;
                scale = reach[r];
                lx = tx;
                ly = ty;
                chosen = b;
                r = 2;
                break;
            }
        }
    taken[(*ntaken)++] = chosen;
    if (scale > 1)
        draw_line(c, "leader", x, y, clamp(x, chosen.x0, chosen.x1),
                  clamp(y, chosen.y0, chosen.y1), "#888", 0.8, NULL);
    text_style st = {.cls = "point-label", .anchor = spots[pick].anchor, .size = FONT_SMALL,
                     .halo = 1};
    draw_text(c, lx, ly, &st, label);
}

/* The label of a roofline point: its name clipped to LABEL_CHARS, plus " +k" when k later
 * points sit on the same spot (their labels are left out; their tooltips remain). */
static void point_label(svg_buf *out, const char *name, int others)
{
    int chars = 0;
    for (const char *p = name; *p; p++) {
        if ((*p & 0xC0) != 0x80 && chars++ == LABEL_CHARS) {
            put(out, "\xE2\x80\xA6");
            break;
        }
        put_n(out, p, 1);
    }
    if (others)
        putf(out, " +%d", others);
}

/* Boxes around the roof line (samples of them, 6 px apart) and the peak label, which point
 * labels must avoid; returns how many were written. */
static int roof_obstacles(const svg_roofline_spec *s, const xy_layout *L, box *out, int samples)
{
    int n = 0;
    double l0 = log10(L->ax.lo), l1 = log10(L->ax.hi);
    for (int i = 0; i < samples; i++) {
        double x = L->p.x0 + i * 6.0;
        double v = pow(10.0, l0 + (x - L->p.x0) / (L->p.x1 - L->p.x0) * (l1 - l0));
        double y = axis_px(&L->ay, roof_at(s, v));
        out[n++] = (box){x - 3, y - 3, x + 3, y + 3};
    }
    char label[160];
    peak_label(label, sizeof label, s);
    double w = text_width(label, FONT_SMALL, 0), y = axis_px(&L->ay, s->peak_flops) - 7;
    out[n++] = (box){L->p.x1 - 6 - w, y - FONT_SMALL, L->p.x1 - 6, y + 3};
    return n;
}

/* owner[i]: the first point drawn within 3 px of point i (i itself when none); others[i]:
 * how many later points share point i's spot. */
static void find_coincident_points(const svg_roofline_spec *s, const xy_layout *L, int *owner,
                                   int *others)
{
    for (int i = 0; i < s->points; i++) {
        double xi = axis_px(&L->ax, s->intensity[i]), yi = axis_px(&L->ay, s->flops_per_s[i]);
        owner[i] = i;
        others[i] = 0;
        for (int j = 0; j < i; j++)
            if (owner[j] == j && fabs(axis_px(&L->ax, s->intensity[j]) - xi) < 3 &&
                fabs(axis_px(&L->ay, s->flops_per_s[j]) - yi) < 3) {
                owner[i] = j;
                others[j]++;
                break;
            }
    }
}

static void draw_roof_point(chart *c, const svg_roofline_spec *s, const xy_layout *L, int i,
                            const char *name)
{
    double xi = s->intensity[i], yi = s->flops_per_s[i];
    const char *el = open_marker(c, (shape)(i % SHAPES), axis_px(&L->ax, xi),
                                 axis_px(&L->ay, yi), 5, series_colour(i).s);
    putf(c->b, " class=\"mark\" data-x=\"%s\" data-y=\"%s\"", exact(xi).s, exact(yi).s);
    put_point_tooltip(c, name, ROOF_X_LABEL, xi, ROOF_Y_LABEL, yi);
    put(c->b, " (");
    put_text(c->b, human(100.0 * yi / roof_at(s, xi), "%").s);
    putf(c->b, " of the roof)</title></%s>\n", el);
}

static void draw_roof_points(chart *c, const svg_roofline_spec *s, const xy_layout *L)
{
    int samples = (int)((L->p.x1 - L->p.x0) / 6) + 1;
    box *taken = malloc(sizeof *taken * (size_t)(2 * s->points + samples + 1));
    int *owner = malloc(sizeof *owner * (size_t)(2 * s->points + 1));
    if (!taken || !owner) {
        free(taken);
        free(owner);
        c->b->failed = 1;
        return;
    }
    int *others = owner + s->points;
    find_coincident_points(s, L, owner, others);
    int ntaken = roof_obstacles(s, L, taken, samples);
    for (int i = 0; i < s->points; i++) {
        double x = axis_px(&L->ax, s->intensity[i]), y = axis_px(&L->ay, s->flops_per_s[i]);
        taken[ntaken++] = (box){x - 6, y - 6, x + 6, y + 6};
    }
    char tmp[16];
    svg_buf label = {0};
    put(c->b, "<g class=\"marks\">\n");
    for (int i = 0; i < s->points; i++) {
        const char *name = category_name(s->names, i, tmp, sizeof tmp);
        put(c->b, "<g class=\"point\">\n");
        draw_roof_point(c, s, L, i, name);
        if (owner[i] == i) {
            label.len = 0;
            put(&label, ""); /* NUL-terminates an emptied buffer */
            point_label(&label, name, others[i]);
            place_point_label(c, L, axis_px(&L->ax, s->intensity[i]),
                              axis_px(&L->ay, s->flops_per_s[i]),
                              label.failed || !label.data ? "" : label.data, taken, &ntaken);
        }
        put(c->b, "</g>\n");
    }
    put(c->b, "</g>\n");
    if (label.failed)
        c->b->failed = 1;
    svg_buf_free(&label);
    free(taken);
    free(owner);
}

static void render_roofline(chart *c, const void *spec)
{
    const svg_roofline_spec *s = spec;
    xy_layout L;
    layout_roofline(s, &L);
    svg_open(c, L.w, L.h, s->title);
    draw_title(c, s->title);
    draw_axis_x(c, &L.ax, L.p, ROOF_X_LABEL);
    draw_axis_y(c, &L.ay, L.p, ROOF_Y_LABEL);
    draw_roof(c, s, &L);
    draw_roof_points(c, s, &L);
    draw_frame(c, L.p);
    svg_close(c);
}

static ss_status check_roofline(const svg_roofline_spec *s, ss_err *err)
{
    const char *k = "roofline";
    ss_status st;
    double ridge = s->peak_flops / s->bandwidth_bytes_per_s;
    if (!value_ok(s->peak_flops, POSITIVE) || !value_ok(s->bandwidth_bytes_per_s, POSITIVE) ||
        !(ridge >= 1e-290 && ridge <= 1e290))
        return ss_err_set(err, SS_ERR_RANGE,
                          "svg roofline: peak_flops (%s) and bandwidth_bytes_per_s (%s) must be "
                          "> 0 with a ridge point peak/bandwidth within [1e-290, 1e290] FLOP/byte",
                          exact(s->peak_flops).s, exact(s->bandwidth_bytes_per_s).s);
    if ((st = check_count(err, k, "points", s->points, 0, MAX_LABELS)) ||
        (st = check_array(err, k, "intensity", s->intensity, s->points)) ||
        (st = check_array(err, k, "flops_per_s", s->flops_per_s, s->points)) ||
        (st = check_values(err, k, "intensity", s->intensity, s->points, POSITIVE, 0)) ||
        (st = check_values(err, k, "flops_per_s", s->flops_per_s, s->points, POSITIVE, 0)))
        return st;
    return SS_OK;
}

ss_status svg_roofline(svg_buf *out, const svg_roofline_spec *s, ss_err *err)
{
    ss_status st = check_common(out, s, err, "roofline");
    if (st || (st = check_roofline(s, err)))
        return st;
    return emit_chart(out, render_roofline, s, err, "roofline");
}
