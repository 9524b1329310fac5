/* This file implements the tests of reports/svg: every chart kind is parsed back with libxml2
 * (well-formed XML in the SVG namespace), its data marks must carry the input values exactly,
 * axes must pick 1-2-5 / decade ticks with SI-prefixed labels, user text must be escaped, bad
 * specs must fail with a message and leave the output untouched, and output must be
 * deterministic with page-unique ids. `test_svg --sample PAGE.html` writes one page with every
 * chart kind (the sample data of these tests) for a look in a browser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <locale.h>

#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "reports/svg.h"
#include "test_scratch.h"

#define SVG_NS "http://www.w3.org/2000/svg"

/* ---------------------------------------------------------------- allocation failures */

/* The test links with -Wl,--wrap=malloc,--wrap=realloc: while alloc_budget >= 0, that many
 * more allocations succeed and the next ones fail (reports/svg.c is linked statically, so its
 * calls come here; libxml2 and cmocka keep the real ones). */
static long alloc_budget = -1;
void *__real_malloc(size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_realloc(void *p, size_t n);

static int alloc_allowed(void)
{
    if (alloc_budget == 0)
        return 0;
    if (alloc_budget > 0)
        alloc_budget--;
    return 1;
}

void *__wrap_malloc(size_t n)
{
    return alloc_allowed() ? __real_malloc(n) : NULL;
}

void *__wrap_realloc(void *p, size_t n)
{
    return alloc_allowed() ? __real_realloc(p, n) : NULL;
}

/* ---------------------------------------------------------------- sample charts */

static const char *const layer_names[] = {"enc.0", "enc.1 (switch)", "enc.2", "enc.3 (switch)",
                                          "dec.0", "dec.1 (switch)", "dec.2", "dec.3 (switch)",
                                          "total / 8"};
static const char *const part_names[] = {"attention", "dense FFN / experts", "router",
                                         "all-to-all", "all-reduce"};
static double step_values[9 * 5];

static svg_bars_spec step_spec(void)
{
    for (int b = 0; b < 9; b++)
        for (int k = 0; k < 5; k++) {
            int sw = b % 2 == 1;
            double v = (k == 0) ? 0.0041 + 0.0002 * b
                     : (k == 1) ? (sw ? 0.0062 : 0.0055)
                     : (k == 2) ? (sw ? 0.00031 : 0)
                     : (k == 3) ? (sw ? 0.0038 + 0.0001 * b : 0)
                                : 0.0009;
            step_values[b * 5 + k] = v;
        }
    return (svg_bars_spec){.title = "Step time by layer (Switch-Base, 32 cores)",
                           .x_label = "layer",
                           .y_label = "time per step (s)",
                           .bars = 9,
                           .series = 5,
                           .bar_names = layer_names,
                           .series_names = part_names,
                           .values = step_values,
                           .ref_line = NAN};
}

#define EXPERTS 64
static double expert_load[EXPERTS];

static svg_bars_spec load_spec(void)
{
    for (int e = 0; e < EXPERTS; e++)
        expert_load[e] = 512 + 400 * sin(e * 0.7) * sin(e * 0.13) + (e == 17 ? 700 : 0);
    return (svg_bars_spec){.title = "Expert load, layer enc.1 (tokens routed per expert)",
                           .x_label = "expert",
                           .y_label = "tokens",
                           .bars = EXPERTS,
                           .series = 1,
                           .values = expert_load,
                           .ref_line = 640,
                           .ref_label = "capacity (factor 1.25)"};
}

#define HR 8
#define HC 16
static double link_util[HR * HC];

static svg_heatmap_spec heat_spec(void)
{
    for (int r = 0; r < HR; r++)
        for (int c = 0; c < HC; c++)
            link_util[r * HC + c] = 35 + 30 * sin(r * 0.9) * cos(c * 0.4) + (r == 3 ? 25 : 0);
    link_util[2 * HC + 5] = NAN;
    link_util[6 * HC + 11] = NAN;
    return (svg_heatmap_spec){.title = "Link utilisation, torus 8x16, x+ links",
                              .x_label = "torus x",
                              .y_label = "torus y",
                              .value_label = "utilisation (%)",
                              .rows = HR,
                              .cols = HC,
                              .values = link_util,
                              .vmin = 0,
                              .vmax = 100};
}

static const char *const scaling_names[] = {"Switch-Base 128 experts", "Switch-Large",
                                            "T5-Base (dense)"};
static const int scaling_points[] = {7, 6, 7};
static double scaling_x[3][7], scaling_y[3][7];
static const double *scaling_xp[3], *scaling_yp[3];

static svg_lines_spec scaling_spec(void)
{
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < scaling_points[s]; i++) {
            double cores = 8.0 * pow(2, i);
            scaling_x[s][i] = cores;
            scaling_y[s][i] = (s == 0 ? 21000 : s == 1 ? 6500 : 30000) * cores *
                              pow(0.93, i * (s + 1));
        }
        scaling_xp[s] = scaling_x[s];
        scaling_yp[s] = scaling_y[s];
    }
    return (svg_lines_spec){.title = "Throughput vs cores",
                            .x_label = "cores",
                            .y_label = "throughput (tokens/s)",
                            .log_x = 1,
                            .log_y = 1,
                            .series = 3,
                            .series_names = scaling_names,
                            .points = scaling_points,
                            .x = scaling_xp,
                            .y = scaling_yp};
}

static const char *const roof_names[] = {"expert FFN", "attention QK^T", "router softmax",
                                         "layer norm", "dense FFN", "embedding"};
static const double roof_intensity[] = {310, 48, 1.9, 0.8, 280, 0.25};
static const double roof_flops[] = {98e12, 31e12, 1.2e12, 0.55e12, 101e12, 0.2e12};

static svg_roofline_spec roof_spec(void)
{
    return (svg_roofline_spec){.title = "Roofline, TPU v3 core",
                               .peak_flops = 123e12,
                               .bandwidth_bytes_per_s = 900e9,
                               .points = 6,
                               .names = roof_names,
                               .intensity = roof_intensity,
                               .flops_per_s = roof_flops};
}

/* Appends every sample chart to out. */
static void all_charts(svg_buf *out)
{
    ss_err err = {0};
    svg_bars_spec st = step_spec(), ld = load_spec();
    svg_heatmap_spec hm = heat_spec();
    svg_lines_spec ln = scaling_spec();
    svg_roofline_spec rf = roof_spec();
    assert_int_equal(svg_stacked_bars(out, &st, &err), SS_OK);
    assert_int_equal(svg_stacked_bars(out, &ld, &err), SS_OK);
    assert_int_equal(svg_heatmap(out, &hm, &err), SS_OK);
    assert_int_equal(svg_lines(out, &ln, &err), SS_OK);
    assert_int_equal(svg_roofline(out, &rf, &err), SS_OK);
}

/* ---------------------------------------------------------------- XML helpers */

static void xml_error(void *ctx, const char *msg, ...)
{
    (void)ctx;
    va_list ap;
    va_start(ap, msg);
    vfprintf(stderr, msg, ap);
    va_end(ap);
}

/* Parses text (well-formedness is asserted) and returns the document. */
static xmlDocPtr parse(const char *text, size_t len)
{
    xmlSetGenericErrorFunc(NULL, xml_error);
    xmlDocPtr doc = xmlReadMemory(text, (int)len, "chart.svg", "UTF-8", XML_PARSE_NONET);
    if (!doc)
        fprintf(stderr, "not well-formed XML:\n%.*s\n", (int)(len > 4000 ? 4000 : len), text);
    assert_non_null(doc);
    return doc;
}

/* Parses one chart and checks the root is an <svg> in the SVG namespace with a size. */
static xmlDocPtr parse_chart(const svg_buf *b)
{
    assert_non_null(b->data);
    assert_int_equal(strlen(b->data), b->len);
    xmlDocPtr doc = parse(b->data, b->len);
    xmlNodePtr root = xmlDocGetRootElement(doc);
    assert_string_equal((const char *)root->name, "svg");
    assert_non_null(root->ns);
    assert_string_equal((const char *)root->ns->href, SVG_NS);
    for (const char *a = "width"; a; a = strcmp(a, "width") == 0 ? "height"
                                      : strcmp(a, "height") == 0 ? "viewBox"
                                                                 : NULL) {
        xmlChar *v = xmlGetProp(root, (const xmlChar *)a);
        assert_non_null(v);
        xmlFree(v);
    }
    return doc;
}

typedef struct {
    int n;
    xmlNodePtr node[4096];
} nodes;

/* The nodes matching an XPath expression in which "s:" is the SVG namespace. */
static void select_nodes(xmlDocPtr doc, const char *expr, nodes *out)
{
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    assert_non_null(ctx);
    xmlXPathRegisterNs(ctx, (const xmlChar *)"s", (const xmlChar *)SVG_NS);
    xmlXPathObjectPtr r = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
    assert_non_null(r);
    out->n = 0;
    if (r->nodesetval)
        for (int i = 0; i < r->nodesetval->nodeNr && out->n < 4096; i++)
            out->node[out->n++] = r->nodesetval->nodeTab[i];
    xmlXPathFreeObject(r);
    xmlXPathFreeContext(ctx);
}

static double attr_double(xmlNodePtr n, const char *name)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    assert_non_null(v);
    char *end;
    double d = strtod((const char *)v, &end);
    assert_true(end != (char *)v && *end == '\0');
    xmlFree(v);
    return d;
}

/* attr(name) == want, freeing the libxml string. */
static void assert_attr(xmlNodePtr n, const char *name, const char *want)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    assert_non_null(v);
    assert_string_equal((const char *)v, want);
    xmlFree(v);
}

static char *attr_dup(xmlNodePtr n, const char *name)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    assert_non_null(v);
    char *s = strdup((const char *)v);
    xmlFree(v);
    return s;
}

/* Text content of the first <title> child of n. */
static char *title_of(xmlNodePtr n)
{
    for (xmlNodePtr c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, "title") == 0) {
            xmlChar *t = xmlNodeGetContent(c);
            char *s = strdup((const char *)t);
            xmlFree(t);
            return s;
        }
    fail_msg("mark without a <title> tooltip");
    return NULL;
}

/* Values of attribute attr on the matches of expr equal want[0..n) exactly (NaN == NaN);
 * prints the max difference. */
static void assert_values_equal(xmlDocPtr doc, const char *expr, const char *attr,
                                const double *want, int n)
{
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, expr, ns);
    assert_int_equal(ns->n, n);
    double maxdiff = 0;
    int mismatches = 0;
    for (int i = 0; i < n; i++) {
        double got = attr_double(ns->node[i], attr);
        if (isnan(want[i]) && isnan(got))
            continue;
        double d = fabs(got - want[i]);
        if (!(d <= maxdiff))
            maxdiff = d;
        if (got != want[i])
            mismatches++;
    }
    printf("%s/@%s: %d values, max |svg - input| = %.3g, %d mismatches\n", expr, attr, n, maxdiff,
           mismatches);
    assert_int_equal(mismatches, 0);
    free(ns);
}

/* Major tick values (data-tick) and label texts of the axis with class cls ("axis x"...). */
static int axis_ticks(xmlDocPtr doc, const char *cls, const char *kind, double *v, char **labels,
                      int max)
{
    char expr[200];
    snprintf(expr, sizeof expr, "//s:g[@class='%s']/s:g[@class='tick %s']", cls, kind);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, expr, ns);
    int n = ns->n < max ? ns->n : max;
    for (int i = 0; i < n; i++) {
        v[i] = attr_double(ns->node[i], "data-tick");
        if (labels) {
            labels[i] = NULL;
            for (xmlNodePtr c = ns->node[i]->children; c; c = c->next)
                if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, "text") == 0) {
                    xmlChar *t = xmlNodeGetContent(c);
                    labels[i] = strdup((const char *)t);
                    xmlFree(t);
                }
        }
    }
    free(ns);
    return n;
}

static void free_labels(char **labels, int n)
{
    for (int i = 0; i < n; i++)
        free(labels[i]);
}

/* ---------------------------------------------------------------- tests: values */

static void test_svg_bars_values_round_trip(void **state)
{
    (void)state;
    const double v[] = {0.1, 1.0 / 3, 1e-7, 0, 12345.678901234567, 2.5e-3, 7, 0.30000000000000004};
    const char *const bars[] = {"a", "b", "c", "d"};
    const char *const series[] = {"x", "y"};
    svg_bars_spec s = {.title = "t", .y_label = "time (s)", .bars = 4, .series = 2,
                       .bar_names = bars, .series_names = series, .values = v, .ref_line = NAN};
    svg_buf b = {0};
    ss_err err = {0};
    assert_int_equal(svg_stacked_bars(&b, &s, &err), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    assert_values_equal(doc, "//*[@data-value]", "data-value", v, 8);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_svg_bars_tooltips_carry_names_value_and_unit(void **state)
{
    (void)state;
    const double v[] = {0.0123, 2.5e-6, 1500, 0};
    const char *const bars[] = {"layer 0", "layer 1"};
    const char *const series[] = {"compute", "all-to-all"};
    svg_bars_spec s = {.y_label = "time per step (s)", .bars = 2, .series = 2,
                       .bar_names = bars, .series_names = series, .values = v, .ref_line = NAN};
    svg_buf b = {0};
    assert_int_equal(svg_stacked_bars(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//*[@data-value]", ns);
    assert_int_equal(ns->n, 4);
    const char *want[] = {"layer 0 \xC2\xB7 compute: 12.3 ms",
                          "layer 0 \xC2\xB7 all-to-all: 2.5 \xC2\xB5s",
                          "layer 1 \xC2\xB7 compute: 1.5 ks", "layer 1 \xC2\xB7 all-to-all: 0 s"};
    for (int i = 0; i < 4; i++) {
        char *t = title_of(ns->node[i]);
        assert_string_equal(t, want[i]);
        free(t);
    }
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
}

static void test_svg_bars_ref_line_and_unnamed_bars(void **state)
{
    (void)state;
    const double v[] = {10, 30, 20};
    svg_bars_spec s = {.y_label = "tokens", .bars = 3, .series = 1, .values = v,
                       .ref_line = 37.5, .ref_label = "capacity"};
    svg_buf b = {0};
    assert_int_equal(svg_stacked_bars(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//s:g[@class='ref-line']", ns);
    assert_int_equal(ns->n, 1);
    assert_true(attr_double(ns->node[0], "data-ref") == 37.5);
    xmlChar *t = xmlNodeGetContent(ns->node[0]);
    assert_non_null(strstr((const char *)t, "capacity = 37.5"));
    xmlFree(t);
    /* the y axis reaches the reference line; unnamed bars are labelled by index */
    double ticks[64];
    int n = axis_ticks(doc, "axis y", "major", ticks, NULL, 64);
    assert_true(n >= 2 && ticks[n - 1] >= 37.5);
    select_nodes(doc, "//s:g[@class='axis x']/s:text", ns);
    assert_int_equal(ns->n, 3);
    for (int i = 0; i < 3; i++) {
        xmlChar *l = xmlNodeGetContent(ns->node[i]);
        char want[8];
        snprintf(want, sizeof want, "%d", i);
        assert_string_equal((const char *)l, want);
        xmlFree(l);
    }
    /* single series: no legend */
    select_nodes(doc, "//s:g[@class='legend']", ns);
    assert_int_equal(ns->n, 0);
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
}

static void test_svg_bars_many_bars_thin_out_labels(void **state)
{
    (void)state;
    enum { N = 2048 };
    double *v = malloc(sizeof(double) * N);
    for (int i = 0; i < N; i++)
        v[i] = (i * 37) % 101;
    svg_bars_spec s = {.x_label = "expert", .y_label = "tokens", .bars = N, .series = 1,
                       .values = v, .ref_line = NAN};
    svg_buf b = {0};
    assert_int_equal(svg_stacked_bars(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//s:g[@class='axis x']/s:text", ns);
    printf("2048 bars: %d category labels\n", ns->n);
    assert_true(ns->n >= 4 && ns->n <= 64);
    free(ns);
    assert_values_equal(doc, "//*[@data-value]", "data-value", v, N);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
    free(v);
}

static void test_svg_heatmap_values_round_trip_with_nan_cells(void **state)
{
    (void)state;
    const double v[] = {0.25, NAN, 0.5, 1.0 / 7, 0.75, 0.125, NAN, 1e-3, 0.99, 0, 0.6, 0.4};
    svg_heatmap_spec s = {.title = "util", .value_label = "utilisation", .rows = 3, .cols = 4,
                          .values = v};
    svg_buf b = {0};
    assert_int_equal(svg_heatmap(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    assert_values_equal(doc, "//*[@data-value]", "data-value", v, 12);

    char *id = attr_dup(xmlDocGetRootElement(doc), "id");
    char nan_fill[64];
    snprintf(nan_fill, sizeof nan_fill, "url(#%s-nan)", id);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//*[@data-value='NaN']", ns);
    assert_int_equal(ns->n, 2);
    for (int i = 0; i < 2; i++) {
        assert_attr(ns->node[i], "fill", nan_fill);
        char *t = title_of(ns->node[i]);
        assert_non_null(strstr(t, "no data"));
        free(t);
    }
    /* the pattern they use exists; the legend shows it */
    char expr[128];
    snprintf(expr, sizeof expr, "//s:pattern[@id='%s-nan']", id);
    select_nodes(doc, expr, ns);
    assert_int_equal(ns->n, 1);
    select_nodes(doc, "//s:g[@class='colour-scale']//s:text[.='no data']", ns);
    assert_int_equal(ns->n, 1);
    /* data range colour scale: the min cell has the first gradient colour, the max the last */
    select_nodes(doc, "//s:g[@class='colour-scale']", ns);
    assert_true(attr_double(ns->node[0], "data-min") == 0);
    assert_true(attr_double(ns->node[0], "data-max") == 0.99);
    select_nodes(doc, "//s:linearGradient/s:stop", ns);
    assert_int_equal(ns->n, 17);
    char *first = attr_dup(ns->node[0], "stop-color"), *last = attr_dup(ns->node[16], "stop-color");
    select_nodes(doc, "//*[@data-value='0']", ns);
    assert_attr(ns->node[0], "fill", first);
    select_nodes(doc, "//*[@data-value='0.98999999999999999']", ns);
    assert_int_equal(ns->n, 1);
    assert_attr(ns->node[0], "fill", last);
    printf("viridis ends: %s .. %s\n", first, last);
    assert_string_not_equal(first, last);
    free(first);
    free(last);
    free(id);
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
}

static void test_svg_heatmap_fixed_range_clamps_and_labels_cells(void **state)
{
    (void)state;
    const double v[] = {-5, 50, 100, 150};
    const char *const rows[] = {"y=0", "y=1"};
    const char *const cols[] = {"x=0", "x=1"};
    svg_heatmap_spec s = {.x_label = "torus x", .y_label = "torus y",
                          .value_label = "utilisation (%)", .rows = 2, .cols = 2, .values = v,
                          .row_names = rows, .col_names = cols, .vmin = 0, .vmax = 100};
    svg_buf b = {0};
    assert_int_equal(svg_heatmap(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//*[@data-value]", ns);
    assert_int_equal(ns->n, 4);
    char *c0 = attr_dup(ns->node[0], "fill"), *c2 = attr_dup(ns->node[2], "fill");
    assert_attr(ns->node[3], "fill", c2); /* 150 clamps to vmax */
    assert_string_not_equal(c0, c2);
    char *t = title_of(ns->node[1]);
    assert_string_equal(t, "y=0, x=1: 50%");
    free(t);
    t = title_of(ns->node[0]);
    assert_string_equal(t, "y=0, x=0: -5%");
    free(t);
    free(c0);
    free(c2);
    select_nodes(doc, "//s:g[@class='colour-scale']", ns);
    assert_true(attr_double(ns->node[0], "data-min") == 0);
    assert_true(attr_double(ns->node[0], "data-max") == 100);
    /* legend ticks stay inside the range */
    double ticks[64];
    select_nodes(doc, "//s:g[@class='colour-scale']/s:g[@class='tick major']", ns);
    assert_true(ns->n >= 2);
    for (int i = 0; i < ns->n; i++) {
        ticks[i] = attr_double(ns->node[i], "data-tick");
        assert_true(ticks[i] >= 0 && ticks[i] <= 100);
    }
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
}

static void test_svg_heatmap_unnamed_cells_print_indices(void **state)
{
    (void)state;
    const double v[] = {1, 2, 3};
    svg_heatmap_spec s = {.x_label = "link (index)", .rows = 1, .cols = 3, .values = v};
    svg_buf b = {0};
    assert_int_equal(svg_heatmap(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//*[@data-value]", ns);
    assert_int_equal(ns->n, 3);
    char *t = title_of(ns->node[2]);
    assert_string_equal(t, "row 0, link 2: 3");
    free(t);
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
}

static void test_svg_lines_points_round_trip(void **state)
{
    (void)state;
    svg_lines_spec s = scaling_spec();
    svg_buf b = {0};
    assert_int_equal(svg_lines(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    double xs[20], ys[20];
    int n = 0;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < scaling_points[k]; i++, n++) {
            xs[n] = scaling_x[k][i];
            ys[n] = scaling_y[k][i];
        }
    assert_values_equal(doc, "//*[@data-x]", "data-x", xs, n);
    assert_values_equal(doc, "//*[@data-y]", "data-y", ys, n);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//s:g[@class='series']/s:path[@fill='none']", ns);
    assert_int_equal(ns->n, 3);
    select_nodes(doc, "//s:g[@class='legend-entry']", ns);
    assert_int_equal(ns->n, 3);
    select_nodes(doc, "//*[@data-x]", ns);
    char *t = title_of(ns->node[0]);
    assert_string_equal(t, "Switch-Base 128 experts: cores = 8, throughput = 168k tokens/s");
    free(t);
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
}

static void test_svg_roofline_points_round_trip_and_are_labelled(void **state)
{
    (void)state;
    svg_roofline_spec s = roof_spec();
    svg_buf b = {0};
    assert_int_equal(svg_roofline(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    assert_values_equal(doc, "//*[@data-x]", "data-x", roof_intensity, 6);
    assert_values_equal(doc, "//*[@data-y]", "data-y", roof_flops, 6);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//s:g[@class='roof']", ns);
    assert_int_equal(ns->n, 1);
    assert_true(attr_double(ns->node[0], "data-peak") == 123e12);
    assert_true(attr_double(ns->node[0], "data-bandwidth") == 900e9);
    xmlChar *roof_text = xmlNodeGetContent(ns->node[0]);
    assert_non_null(strstr((const char *)roof_text, "peak 123 TFLOP/s"));
    assert_non_null(strstr((const char *)roof_text, "900 GB/s"));
    xmlFree(roof_text);
    select_nodes(doc, "//s:text[@class='point-label']", ns);
    assert_int_equal(ns->n, 6);
    for (int i = 0; i < 6; i++) {
        xmlChar *l = xmlNodeGetContent(ns->node[i]);
        assert_string_equal((const char *)l, roof_names[i]);
        xmlFree(l);
    }
    select_nodes(doc, "//*[@data-x]", ns);
    char *t = title_of(ns->node[0]);
    /* 98 TFLOP/s against a roof of min(123T, 900G * 310) = 123 TFLOP/s: 79.7 % */
    assert_string_equal(t, "expert FFN: arithmetic intensity = 310 FLOP/byte, performance = "
                           "98 TFLOP/s (79.7% of the roof)");
    free(t);
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
}

static void test_svg_roofline_merges_labels_of_coincident_points(void **state)
{
    (void)state;
    const char *const names[] = {"vector a", "vector b", "matmul", "vector c"};
    const double in[] = {0.5, 0.5, 200, 0.5000001}, fl[] = {2e11, 2e11, 5e13, 2e11};
    svg_roofline_spec s = {.peak_flops = 1e14, .bandwidth_bytes_per_s = 1e12, .points = 4,
                           .names = names, .intensity = in, .flops_per_s = fl};
    svg_buf b = {0};
    assert_int_equal(svg_roofline(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    assert_values_equal(doc, "//*[@data-x]", "data-x", in, 4);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//s:text[@class='point-label']", ns);
    assert_int_equal(ns->n, 2);
    xmlChar *t = xmlNodeGetContent(ns->node[0]);
    assert_string_equal((const char *)t, "vector a +2");
    xmlFree(t);
    t = xmlNodeGetContent(ns->node[1]);
    assert_string_equal((const char *)t, "matmul");
    xmlFree(t);
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
}

static void test_svg_roofline_without_points(void **state)
{
    (void)state;
    svg_roofline_spec s = {.peak_flops = 1e15, .bandwidth_bytes_per_s = 2e12};
    svg_buf b = {0};
    assert_int_equal(svg_roofline(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//*[@data-x]", ns);
    assert_int_equal(ns->n, 0);
    /* the ridge point (500 FLOP/byte) lies inside the x axis */
    double ticks[64];
    int n = axis_ticks(doc, "axis x", "major", ticks, NULL, 64);
    assert_true(n >= 2 && ticks[0] < 500 && ticks[n - 1] > 500);
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
}

/* ---------------------------------------------------------------- tests: axes */

/* Renders one bar of height top and returns the y-axis major ticks. */
static int bar_axis_ticks(double top, double *ticks, char **labels)
{
    svg_bars_spec s = {.y_label = "v", .bars = 1, .series = 1, .values = &top, .ref_line = NAN};
    svg_buf b = {0};
    assert_int_equal(svg_stacked_bars(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    int n = axis_ticks(doc, "axis y", "major", ticks, labels, 64);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
    return n;
}

static void test_svg_linear_ticks_use_1_2_5_steps(void **state)
{
    (void)state;
    const double tops[] = {0.7, 1, 3.3, 47, 1234, 9.9e6, 2.5e-5, 0, 123456789, 0.031};
    for (size_t t = 0; t < sizeof tops / sizeof tops[0]; t++) {
        double ticks[64];
        int n = bar_axis_ticks(tops[t], ticks, NULL);
        double step = ticks[1] - ticks[0];
        double mant = step / pow(10, floor(log10(step) + 1e-9));
        printf("max %g: %d ticks, 0 .. %g step %g\n", tops[t], n, ticks[n - 1], step);
        assert_true(n >= 3 && n <= 11);
        assert_true(ticks[0] == 0);
        assert_true(fabs(mant - 1) < 1e-9 || fabs(mant - 2) < 1e-9 || fabs(mant - 5) < 1e-9);
        for (int i = 1; i < n; i++)
            assert_true(fabs((ticks[i] - ticks[i - 1]) - step) <= 1e-9 * step);
        assert_true(ticks[n - 1] >= tops[t]);
        assert_true(ticks[n - 1] - step < tops[t] || tops[t] == 0);
    }
}

static void test_svg_linear_tick_labels_use_si_prefixes(void **state)
{
    (void)state;
    struct {
        double top;
        const char *want; /* labels joined by ' ' */
    } cases[] = {
        {3e9, "0 0.5G 1G 1.5G 2G 2.5G 3G"},
        {0.7, "0 0.1 0.2 0.3 0.4 0.5 0.6 0.7"},
        {4.2e-6, "0 1\xC2\xB5 2\xC2\xB5 3\xC2\xB5 4\xC2\xB5 5\xC2\xB5"},
        {1800, "0 500 1000 1500 2000"},
        {18000, "0 5k 10k 15k 20k"},
        {45, "0 10 20 30 40 50"},
        {2.2e15, "0 0.5P 1P 1.5P 2P 2.5P"},
        {8e-9, "0 2n 4n 6n 8n"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double ticks[64];
        char *labels[64];
        int n = bar_axis_ticks(cases[c].top, ticks, labels);
        char joined[512] = "";
        for (int i = 0; i < n; i++) {
            assert_non_null(labels[i]);
            strcat(joined, i ? " " : "");
            strcat(joined, labels[i]);
        }
        printf("max %g: %s\n", cases[c].top, joined);
        assert_string_equal(joined, cases[c].want);
        free_labels(labels, n);
    }
}

/* Renders one series with x (log) from lo to hi and returns the x-axis ticks of a kind. */
static int log_axis_ticks(double lo, double hi, const char *kind, double *ticks, char **labels)
{
    const double x[] = {lo, hi}, y[] = {1, 2};
    const double *xp[] = {x}, *yp[] = {y};
    const int np[] = {2};
    const char *const names[] = {"s"};
    svg_lines_spec s = {.x_label = "bandwidth (B/s)", .y_label = "y", .log_x = 1, .series = 1,
                        .series_names = names, .points = np, .x = xp, .y = yp};
    svg_buf b = {0};
    assert_int_equal(svg_lines(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    int n = axis_ticks(doc, "axis x", kind, ticks, labels, 64);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
    return n;
}

static void test_svg_log_ticks_are_decades_with_minor_ticks(void **state)
{
    (void)state;
    double ticks[64];
    char *labels[64];
    int n = log_axis_ticks(3, 45000, "major", ticks, labels);
    const char *want[] = {"1", "10", "100", "1k", "10k", "100k"};
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++) {
        assert_true(ticks[i] == pow(10, i));
        assert_string_equal(labels[i], want[i]);
    }
    free_labels(labels, n);
    n = log_axis_ticks(3, 45000, "minor", ticks, NULL);
    assert_int_equal(n, 5 * 8);
    assert_true(ticks[0] == 2 && ticks[7] == 9 && ticks[8] == 20);

    /* few decades: 2 and 5 are labelled too */
    n = log_axis_ticks(0.002, 0.03, "minor", ticks, labels);
    int labelled = 0;
    for (int i = 0; i < n; i++)
        if (labels[i]) {
            labelled++;
            assert_true(strchr(labels[i], '2') || strchr(labels[i], '5'));
        }
    assert_int_equal(labelled, 4);
    free_labels(labels, n);
    n = log_axis_ticks(0.002, 0.03, "major", ticks, labels);
    assert_int_equal(n, 3);
    assert_string_equal(labels[0], "1m");
    assert_string_equal(labels[1], "0.01");
    assert_string_equal(labels[2], "0.1");
    free_labels(labels, n);

    /* many decades: every 3rd decade, one per SI prefix, the others minor */
    n = log_axis_ticks(1e-6, 1e12, "major", ticks, labels);
    char joined[256] = "";
    for (int i = 0; i < n; i++) {
        strcat(joined, i ? " " : "");
        strcat(joined, labels[i]);
    }
    printf("1e-6 .. 1e12: %s\n", joined);
    assert_string_equal(joined, "1\xC2\xB5 1m 1 1k 1M 1G 1T");
    for (int i = 0; i < n; i++)
        assert_true(ticks[i] == pow(10, 3 * i - 6));
    free_labels(labels, n);
    n = log_axis_ticks(1e-6, 1e12, "minor", ticks, NULL);
    assert_int_equal(n, 12);
}

static void test_svg_lines_linear_axes_start_y_at_zero_only(void **state)
{
    (void)state;
    const double x[] = {100, 140, 180}, y[] = {3.5e9, 4.1e9, 4.4e9};
    const double x1[] = {120}, y1[] = {4e9};
    const double *xp[] = {x, x1}, *yp[] = {y, y1};
    const int np[] = {3, 1};
    const char *const names[] = {"measured", "target"};
    svg_lines_spec s = {.x_label = "experts", .y_label = "throughput (FLOP/s)", .series = 2,
                        .series_names = names, .points = np, .x = xp, .y = yp};
    svg_buf b = {0};
    assert_int_equal(svg_lines(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    double xt[64], yt[64];
    char *yl[64];
    int nx = axis_ticks(doc, "axis x", "major", xt, NULL, 64);
    int ny = axis_ticks(doc, "axis y", "major", yt, yl, 64);
    printf("x ticks %g .. %g, y ticks %g .. %g (%s .. %s)\n", xt[0], xt[nx - 1], yt[0],
           yt[ny - 1], yl[0], yl[ny - 1]);
    assert_true(xt[0] >= 80 && xt[0] <= 100 && xt[nx - 1] >= 180 && xt[nx - 1] <= 200);
    assert_true(yt[0] == 0 && yt[ny - 1] >= 4.4e9);
    assert_string_equal(yl[ny - 1], "5G");
    free_labels(yl, ny);
    /* a series of one point draws a marker but no line */
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//s:g[@class='series']/s:path[@fill='none']", ns);
    assert_int_equal(ns->n, 1);
    select_nodes(doc, "//*[@data-x]", ns);
    assert_int_equal(ns->n, 4);
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
}

static void test_svg_many_series_get_distinct_colours_and_fit(void **state)
{
    (void)state;
    enum { S = 20 };
    double v[2 * S];
    const char *names[S];
    char name_buf[S][64];
    for (int k = 0; k < S; k++) {
        v[k] = v[S + k] = k + 1;
        snprintf(name_buf[k], sizeof name_buf[k], "component %d with a rather long name indeed", k);
        names[k] = name_buf[k];
    }
    svg_bars_spec s = {.y_label = "time (s)", .bars = 2, .series = S, .series_names = names,
                       .values = v, .ref_line = NAN};
    svg_buf b = {0};
    assert_int_equal(svg_stacked_bars(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//s:g[@class='legend-entry']/s:rect", ns);
    assert_int_equal(ns->n, S);
    char *fills[S];
    for (int k = 0; k < S; k++)
        fills[k] = attr_dup(ns->node[k], "fill");
    for (int i = 0; i < S; i++)
        for (int j = i + 1; j < S; j++)
            if (strcmp(fills[i], fills[j]) == 0)
                fail_msg("series %d and %d share colour %s", i, j, fills[i]);
    for (int k = 0; k < S; k++)
        free(fills[k]);
    /* the legend fits inside the chart; long names are clipped and keep a tooltip */
    double height = attr_double(xmlDocGetRootElement(doc), "height");
    select_nodes(doc, "//s:g[@class='legend-entry']/s:text", ns);
    for (int k = 0; k < ns->n; k++)
        assert_true(attr_double(ns->node[k], "y") < height);
    xmlChar *t = xmlNodeGetContent(ns->node[0]);
    assert_non_null(strstr((const char *)t, "\xE2\x80\xA6"));
    xmlFree(t);
    select_nodes(doc, "//s:g[@class='legend-entry']/s:title", ns);
    assert_int_equal(ns->n, S);
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
}

static void test_svg_large_heatmap_thins_labels(void **state)
{
    (void)state;
    enum { N = 64 };
    double *v = malloc(sizeof(double) * N * N);
    for (int i = 0; i < N * N; i++)
        v[i] = (i * 7919) % 1000 / 10.0;
    svg_heatmap_spec s = {.x_label = "x", .y_label = "y", .value_label = "utilisation (%)",
                          .rows = N, .cols = N, .values = v, .vmin = 0, .vmax = 100};
    svg_buf b = {0};
    assert_int_equal(svg_heatmap(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    assert_values_equal(doc, "//*[@data-value]", "data-value", v, N * N);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//s:g[@class='axis y']/s:text", ns);
    int rows = ns->n;
    select_nodes(doc, "//s:g[@class='axis x']/s:text", ns);
    int cols = ns->n;
    select_nodes(doc, "//s:text[@class='cell-label']", ns);
    printf("64x64 heatmap: %d row labels, %d column labels, %d cell labels\n", rows, cols,
           ns->n);
    assert_true(rows >= 4 && rows < N && cols >= 4 && cols < N);
    assert_int_equal(ns->n, 0);
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
    free(v);
}

static void test_svg_ids_differ_between_charts_in_separate_buffers(void **state)
{
    (void)state;
    svg_heatmap_spec h1 = heat_spec(), h2 = heat_spec();
    const double v[] = {1, 2};
    h2.rows = 1;
    h2.cols = 2;
    h2.values = v;
    svg_buf a = {0}, b = {0};
    assert_int_equal(svg_heatmap(&a, &h1, NULL), SS_OK);
    assert_int_equal(svg_heatmap(&b, &h2, NULL), SS_OK);
    xmlDocPtr da = parse_chart(&a), db = parse_chart(&b);
    char *ia = attr_dup(xmlDocGetRootElement(da), "id");
    char *ib = attr_dup(xmlDocGetRootElement(db), "id");
    printf("ids %s, %s\n", ia, ib);
    assert_string_not_equal(ia, ib);
    free(ia);
    free(ib);
    xmlFreeDoc(da);
    xmlFreeDoc(db);
    svg_buf_free(&a);
    svg_buf_free(&b);
}

/* Geometry of a mark: its position and size attributes joined. */
static char *mark_geometry(xmlNodePtr n)
{
    static const char *const attrs[] = {"x", "y", "width", "height", "cx", "cy", "d"};
    char *out = calloc(1, 1024);
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        xmlChar *v = xmlGetProp(n, (const xmlChar *)attrs[i]);
        if (v) {
            strncat(out, (const char *)v, 1023 - strlen(out));
            strncat(out, ";", 1023 - strlen(out));
            xmlFree(v);
        }
    }
    return out;
}

/* The chart is well-formed, no number in it printed as nan/inf, and (distinct) its first and
 * last marks are drawn at different places, i.e. coordinates did not collapse to 0. */
static void assert_sane_geometry(const svg_buf *b, int distinct)
{
    static const char *const bad[] = {"\"nan", "\"-nan", "\"inf", "\"-inf", ">nan", ">inf",
                                      " nan", " inf", "=nan", "=inf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (strstr(b->data, bad[i]))
            fail_msg("chart contains %s: %.200s", bad[i], strstr(b->data, bad[i]));
    xmlDocPtr doc = parse_chart(b);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//*[@data-value or @data-x]", ns);
    assert_true(ns->n >= 2);
    char *g0 = mark_geometry(ns->node[0]), *g1 = mark_geometry(ns->node[ns->n - 1]);
    if (distinct)
        assert_string_not_equal(g0, g1);
    free(g0);
    free(g1);
    free(ns);
    xmlFreeDoc(doc);
}

static void test_svg_extreme_values_draw_without_crashing(void **state)
{
    (void)state;
    const double big[] = {1e300, 5e299}, tiny_big[] = {1e-300, 1e300}, same[] = {1e300, 1e300};
    const double *xp[] = {tiny_big}, *yp[] = {tiny_big}, *sp[] = {same};
    const int np[] = {2};
    const char *const names[] = {"s"};
    svg_buf b = {0};
    ss_err err = {0};

    svg_bars_spec bars = {.bars = 2, .series = 1, .values = big, .ref_line = 1e300};
    assert_int_equal(svg_stacked_bars(&b, &bars, &err), SS_OK);
    assert_sane_geometry(&b, 1);
    svg_buf_free(&b);

    const double hv[] = {-1e300, 1e300, NAN, 0};
    svg_heatmap_spec heat = {.rows = 2, .cols = 2, .values = hv};
    assert_int_equal(svg_heatmap(&b, &heat, &err), SS_OK);
    assert_sane_geometry(&b, 1);
    svg_buf_free(&b);

    const double all_nan[] = {NAN, NAN};
    heat = (svg_heatmap_spec){.rows = 1, .cols = 2, .values = all_nan};
    assert_int_equal(svg_heatmap(&b, &heat, &err), SS_OK);
    assert_sane_geometry(&b, 1);
    svg_buf_free(&b);

    for (int logs = 0; logs < 4; logs++) {
        svg_lines_spec ln = {.log_x = logs & 1, .log_y = logs >> 1, .series = 1,
                             .series_names = names, .points = np, .x = xp, .y = yp};
        assert_int_equal(svg_lines(&b, &ln, &err), SS_OK);
        assert_sane_geometry(&b, 1);
        svg_buf_free(&b);
        ln.x = sp;
        ln.y = sp;
        assert_int_equal(svg_lines(&b, &ln, &err), SS_OK);
        assert_sane_geometry(&b, 0);
        svg_buf_free(&b);
    }

    svg_roofline_spec rf = {.peak_flops = 1e150, .bandwidth_bytes_per_s = 1e-139, .points = 2,
                            .names = NULL, .intensity = tiny_big, .flops_per_s = tiny_big};
    ss_status st = svg_roofline(&b, &rf, &err);
    printf("roofline with ridge 1e289: %s %s\n", ss_status_name(st), err.msg);
    assert_int_equal(st, SS_OK);
    assert_sane_geometry(&b, 1);
    svg_buf_free(&b);
}

/* The tooltip value of a 1x1 heatmap of v with this value label ("row 0, column 0: X"). */
static char *tooltip_value(double v, const char *value_label)
{
    svg_heatmap_spec s = {.value_label = value_label, .rows = 1, .cols = 1, .values = &v};
    svg_buf b = {0};
    assert_int_equal(svg_heatmap(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//*[@data-value]", ns);
    assert_int_equal(ns->n, 1);
    char *t = title_of(ns->node[0]);
    const char *prefix = "row 0, column 0: ";
    assert_true(strncmp(t, prefix, strlen(prefix)) == 0);
    memmove(t, t + strlen(prefix), strlen(t) - strlen(prefix) + 1);
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
    return t;
}

static void test_svg_tooltips_format_values_with_units(void **state)
{
    (void)state;
    const struct {
        double v;
        const char *label, *want;
    } cases[] = {
        {0.45, "link utilisation (fraction of step)", "0.45 fraction of step"},
        {1500, "load (tokens)", "1.5k tokens"},
        {1.2e9, "bandwidth (B/s)", "1.2 GB/s"},
        {2e-4, "time (s)", "200 \xC2\xB5s"},
        {999.7, "time (s)", "1 ks"},
        {0.25, "intensity (FLOP/byte)", "0.25 FLOP/byte"},
        {45.25, "utilisation (%)", "45.3%"},
        {0.001, "ratio", "1m"},
        {-0.5, NULL, "-0.5"},
        {123456, NULL, "123k"},
        {1e20, NULL, "1e+20"},
        {3.3e-12, "time (s)", "3.3e-12 s"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = tooltip_value(cases[i].v, cases[i].label);
        printf("%g with \"%s\" -> %s\n", cases[i].v, cases[i].label ? cases[i].label : "",
               t);
        assert_string_equal(t, cases[i].want);
        free(t);
    }
}

/* ---------------------------------------------------------------- tests: text */

static void test_svg_escapes_markup_in_labels(void **state)
{
    (void)state;
    const char *evil = "<b>&amp; \"q\" 'a' </svg>";
    const double v[] = {1, 2};
    const char *const bars[] = {evil, "x<y"};
    const char *const series[] = {"s&1"};
    svg_bars_spec s = {.title = evil, .x_label = "a<b", .y_label = "c&d (\"u\")", .bars = 2,
                       .series = 1, .bar_names = bars, .series_names = series, .values = v,
                       .ref_line = 1.5, .ref_label = "<cap>"};
    svg_buf b = {0};
    assert_int_equal(svg_stacked_bars(&b, &s, NULL), SS_OK);
    assert_null(strstr(b.data, "<b>"));
    assert_null(strstr(b.data, "</svg><")); /* only the final closing tag */
    xmlDocPtr doc = parse_chart(&b);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "//s:text[@class='title']", ns);
    assert_int_equal(ns->n, 1);
    xmlChar *t = xmlNodeGetContent(ns->node[0]);
    assert_string_equal((const char *)t, evil);
    xmlFree(t);
    select_nodes(doc, "/s:svg/s:title", ns);
    t = xmlNodeGetContent(ns->node[0]);
    assert_string_equal((const char *)t, evil);
    xmlFree(t);
    select_nodes(doc, "//*[@data-value]", ns);
    char *tip = title_of(ns->node[1]);
    assert_string_equal(tip, "x<y: 2 \"u\"");
    free(tip);
    select_nodes(doc, "//s:g[@class='ref-line']", ns);
    t = xmlNodeGetContent(ns->node[0]);
    assert_non_null(strstr((const char *)t, "<cap> = 1.5 \"u\""));
    xmlFree(t);
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
}

static void test_svg_repairs_invalid_utf8_and_control_chars(void **state)
{
    (void)state;
    const char *bad = "caf\xC3\xA9 \xFF\xC3(\x01\x1B \xED\xA0\x80 ok \xF0\x9F\x98\x80";
    const double v[] = {1};
    const char *const names[] = {"p"};
    svg_roofline_spec s = {.title = bad, .peak_flops = 1e12, .bandwidth_bytes_per_s = 1e11,
                           .points = 1, .names = names, .intensity = v, .flops_per_s = v};
    svg_buf b = {0};
    assert_int_equal(svg_roofline(&b, &s, NULL), SS_OK);
    xmlDocPtr doc = parse_chart(&b);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "/s:svg/s:title", ns);
    xmlChar *t = xmlNodeGetContent(ns->node[0]);
    const char *want = "caf\xC3\xA9 \xEF\xBF\xBD\xEF\xBF\xBD(\xEF\xBF\xBD\xEF\xBF\xBD "
                       "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD ok \xF0\x9F\x98\x80";
    assert_string_equal((const char *)t, want);
    xmlFree(t);
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
}

/* ---------------------------------------------------------------- tests: errors */

typedef enum { K_BARS, K_HEAT, K_LINES, K_ROOF } kind;

typedef struct {
    const char *what;
    kind k;
    svg_bars_spec bars;
    svg_heatmap_spec heat;
    svg_lines_spec lines;
    svg_roofline_spec roof;
    const char *want; /* substring of the message */
} bad_case;

static ss_status render_case(svg_buf *b, const bad_case *c, ss_err *err)
{
    switch (c->k) {
    case K_BARS: return svg_stacked_bars(b, &c->bars, err);
    case K_HEAT: return svg_heatmap(b, &c->heat, err);
    case K_LINES: return svg_lines(b, &c->lines, err);
    case K_ROOF: return svg_roofline(b, &c->roof, err);
    }
    return SS_OK;
}

static void test_svg_rejects_bad_specs(void **state)
{
    (void)state;
    static const double ok2[] = {1, 2}, neg[] = {1, -1}, nan2[] = {NAN, 1}, inf2[] = {1, INFINITY};
    static const double zero2[] = {0, 1}, huge[] = {1e301, 1};
    static const double *xp_ok[] = {ok2}, *xp_zero[] = {zero2}, *xp_neg[] = {neg},
                        *xp_null[] = {NULL}, *xp_nan[] = {nan2};
    static const int np2[] = {2}, np0[] = {0}, npneg[] = {-1};
    const svg_bars_spec bars = {.bars = 2, .series = 1, .values = ok2, .ref_line = NAN};
    const svg_heatmap_spec heat = {.rows = 1, .cols = 2, .values = ok2};
    const svg_lines_spec lines = {.series = 1, .points = np2, .x = xp_ok, .y = xp_ok};
    const svg_roofline_spec roof = {.peak_flops = 1e12, .bandwidth_bytes_per_s = 1e11,
                                    .points = 2, .intensity = ok2, .flops_per_s = ok2};
    bad_case cases[32];
    int n = 0;
#define BARS(w, field, val, msg)                                                               \
    do {                                                                                       \
        cases[n] = (bad_case){.what = w, .k = K_BARS, .bars = bars, .want = msg};              \
        cases[n].bars.field = val;                                                             \
        n++;                                                                                   \
    } while (0)
#define HEAT(w, field, val, msg)                                                               \
    do {                                                                                       \
        cases[n] = (bad_case){.what = w, .k = K_HEAT, .heat = heat, .want = msg};              \
        cases[n].heat.field = val;                                                             \
        n++;                                                                                   \
    } while (0)
#define LINES(w, field, val, msg)                                                              \
    do {                                                                                       \
        cases[n] = (bad_case){.what = w, .k = K_LINES, .lines = lines, .want = msg};           \
        cases[n].lines.field = val;                                                            \
        n++;                                                                                   \
    } while (0)
#define ROOF(w, field, val, msg)                                                               \
    do {                                                                                       \
        cases[n] = (bad_case){.what = w, .k = K_ROOF, .roof = roof, .want = msg};              \
        cases[n].roof.field = val;                                                             \
        n++;                                                                                   \
    } while (0)
    BARS("zero bars", bars, 0, "bars is 0");
    BARS("zero series", series, 0, "series is 0");
    BARS("negative value", values, neg, "values[1] is -1, must be finite, >= 0");
    BARS("NaN value", values, nan2, "values[0] is NaN");
    BARS("infinite value", values, inf2, "values[1] is INF");
    BARS("huge value", values, huge, "values[0] is 1.0000000000000001e+301");
    BARS("no values", values, NULL, "values is NULL but must hold 2 entries");
    BARS("negative capacity", ref_line, -3, "ref_line is -3");
    BARS("too many marks", bars, (1 << 20) + 1, "bars is 1048577");
    HEAT("zero rows", rows, 0, "rows is 0");
    HEAT("negative cols", cols, -2, "cols is -2");
    HEAT("infinite cell", values, inf2, "values[1] is INF, must be finite with magnitude <= "
                                        "1e300 (or NaN for no data)");
    HEAT("vmin > vmax", vmin, 5, "[vmin, vmax] = [5, 0]");
    HEAT("NaN vmax", vmax, NAN, "[vmin, vmax] = [0, NaN]");
    LINES("zero series", series, 0, "series is 0");
    LINES("points NULL", points, NULL, "points is NULL");
    LINES("x NULL", x, NULL, "x is NULL");
    LINES("x[0] NULL", x, xp_null, "x[0] is NULL but must hold 2 entries");
    LINES("negative count", points, npneg, "points[0] is -1");
    LINES("no points at all", points, np0, "the total number of points is 0");
    LINES("NaN y", y, xp_nan, "y[0][0] is NaN");
    ROOF("zero peak", peak_flops, 0, "peak_flops (0)");
    ROOF("NaN bandwidth", bandwidth_bytes_per_s, NAN, "bandwidth_bytes_per_s (NaN)");
    ROOF("negative intensity", intensity, neg, "intensity[1] is -1");
    ROOF("zero performance", flops_per_s, zero2, "flops_per_s[0] is 0");
    ROOF("no intensities", intensity, NULL, "intensity is NULL but must hold 2 entries");
    ROOF("negative count", points, -1, "points is -1");
#undef BARS
#undef HEAT
#undef LINES
#undef ROOF
    /* log y with a negative value */
    cases[n] = (bad_case){.what = "log y with -1", .k = K_LINES, .lines = lines,
                          .want = "y[0][1] is -1, must be > 0 (log axis)"};
    cases[n].lines.log_y = 1;
    cases[n].lines.y = xp_neg;
    n++;
    cases[n] = (bad_case){.what = "log x with 0", .k = K_LINES, .lines = lines,
                          .want = "x[0][0] is 0, must be > 0 (log axis)"};
    cases[n].lines.log_x = 1;
    cases[n].lines.x = xp_zero;
    n++;
    for (int i = 0; i < n; i++) {
        svg_buf b = {0};
        b.data = strdup("keep");
        b.len = b.cap = 4;
        b.cap = 5;
        ss_err err = {0};
        ss_status st = render_case(&b, &cases[i], &err);
        printf("%-20s -> %s: %s\n", cases[i].what, ss_status_name(st), err.msg);
        assert_int_equal(st, SS_ERR_RANGE);
        assert_int_equal(err.code, SS_ERR_RANGE);
        assert_true(strncmp(err.msg, "svg ", 4) == 0);
        if (!strstr(err.msg, cases[i].want))
            fail_msg("%s: message \"%s\" lacks \"%s\"", cases[i].what, err.msg, cases[i].want);
        assert_int_equal(b.len, 4);
        assert_string_equal(b.data, "keep");
        assert_int_equal(b.failed, 0);
        svg_buf_free(&b);
    }
}

static void test_svg_rejects_null_arguments_and_failed_buffers(void **state)
{
    (void)state;
    svg_bars_spec bars = step_spec();
    ss_err err = {0};
    assert_int_equal(svg_stacked_bars(NULL, &bars, &err), SS_ERR_RANGE);
    assert_non_null(strstr(err.msg, "output buffer is NULL"));
    svg_buf b = {0};
    assert_int_equal(svg_heatmap(&b, NULL, &err), SS_ERR_RANGE);
    assert_non_null(strstr(err.msg, "spec is NULL"));
    assert_int_equal(svg_lines(&b, NULL, NULL), SS_ERR_RANGE); /* err may be NULL */
    b.failed = 1;
    assert_int_equal(svg_stacked_bars(&b, &bars, &err), SS_ERR_NOMEM);
    assert_non_null(strstr(err.msg, "failed allocation"));
    assert_int_equal(b.len, 0);
    svg_buf_free(&b);
    svg_buf_free(NULL);
}

static void test_svg_allocation_failures_leave_output_unchanged(void **state)
{
    (void)state;
    svg_bars_spec bars = step_spec();
    svg_heatmap_spec heat = heat_spec();
    svg_lines_spec lines = scaling_spec();
    svg_roofline_spec roof = roof_spec();
    for (int k = 0; k < 4; k++) {
        int failures = 0;
        for (long budget = 0;; budget++) {
            svg_buf b = {0};
            b.data = strdup("keep");
            b.len = 4;
            b.cap = 5;
            ss_err err = {0};
            alloc_budget = budget;
            ss_status st = k == 0   ? svg_stacked_bars(&b, &bars, &err)
                           : k == 1 ? svg_heatmap(&b, &heat, &err)
                           : k == 2 ? svg_lines(&b, &lines, &err)
                                    : svg_roofline(&b, &roof, &err);
            alloc_budget = -1;
            if (st == SS_OK) {
                assert_true(b.len > 4 && strncmp(b.data, "keep<svg ", 9) == 0);
                svg_buf_free(&b);
                break;
            }
            failures++;
            assert_int_equal(st, SS_ERR_NOMEM);
            assert_non_null(strstr(err.msg, "out of memory"));
            assert_int_equal(b.len, 4);
            assert_string_equal(b.data, "keep");
            svg_buf_free(&b);
            assert_true(budget < 1000);
        }
        printf("chart kind %d: %d allocation-failure points, each reported as SS_ERR_NOMEM\n",
               k, failures);
        assert_true(failures >= 3);
    }
}

/* ---------------------------------------------------------------- tests: determinism, ids */

static void test_svg_output_is_deterministic(void **state)
{
    (void)state;
    svg_buf a = {0}, b = {0};
    all_charts(&a);
    all_charts(&b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    printf("all sample charts: %zu bytes\n", a.len);
    svg_buf_free(&a);
    svg_buf_free(&b);
}

/* Switches LC_NUMERIC to a locale whose decimal point is ',' (an installed one, or one built
 * with localedef into dir, found through LOCPATH); returns 0 when none can be had. */
static int comma_locale(const char *dir)
{
    static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "nl_NL.UTF-8"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (setlocale(LC_NUMERIC, names[i]) && strcmp(localeconv()->decimal_point, ",") == 0)
            return 1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 '%s/de_DE.UTF-8' >/dev/null 2>&1",
             dir);
    if (system(cmd) != 0)
        return 0;
    setenv("LOCPATH", dir, 1);
    int ok = setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL &&
             strcmp(localeconv()->decimal_point, ",") == 0;
    unsetenv("LOCPATH");
    return ok;
}

static void test_svg_output_does_not_depend_on_locale(void **state)
{
    (void)state;
    svg_buf c_locale = {0}, comma = {0};
    all_charts(&c_locale);
    char dir[64];
    assert_int_equal(test_scratch_make(dir, sizeof dir, "switchsim-test-svg"), 0);
    int have = comma_locale(dir);
    if (have) {
        all_charts(&comma);
        setlocale(LC_NUMERIC, "C");
    }
    assert_int_equal(test_scratch_remove(dir), 0); /* before any assertion can fail */
    if (have) {
        printf("with decimal point ',': %zu bytes, C locale: %zu bytes\n", comma.len,
               c_locale.len);
        assert_int_equal(comma.len, c_locale.len);
        assert_memory_equal(comma.data, c_locale.data, c_locale.len);
    } else {
        printf("no locale with a ',' decimal point could be set or built; compared nothing\n");
    }
    svg_buf_free(&c_locale);
    svg_buf_free(&comma);
}

/* Wraps charts in one root element so several <svg> can be parsed as one document. */
static xmlDocPtr parse_page(const svg_buf *charts)
{
    svg_buf page = {0};
    size_t n = charts->len + 64;
    page.data = malloc(n);
    page.len = (size_t)snprintf(page.data, n, "<page>%s</page>", charts->data);
    xmlDocPtr doc = parse(page.data, page.len);
    free(page.data);
    return doc;
}

static void test_svg_ids_are_unique_across_charts_in_one_page(void **state)
{
    (void)state;
    svg_buf b = {0};
    all_charts(&b);
    svg_heatmap_spec hm = heat_spec();
    assert_int_equal(svg_heatmap(&b, &hm, NULL), SS_OK); /* the same chart twice */
    xmlDocPtr doc = parse_page(&b);
    nodes *ns = malloc(sizeof *ns);
    select_nodes(doc, "/page/s:svg", ns);
    assert_int_equal(ns->n, 6);
    select_nodes(doc, "//*[@id]", ns);
    int n = ns->n;
    char **ids = calloc((size_t)n, sizeof *ids);
    for (int i = 0; i < n; i++)
        ids[i] = attr_dup(ns->node[i], "id");
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(ids[i], ids[j]) == 0)
                fail_msg("duplicate id %s", ids[i]);
    printf("%d ids, all distinct\n", n);
    /* every url(#...) reference names an id inside its own <svg> */
    select_nodes(doc, "//*[starts-with(@fill, 'url(#')]", ns);
    assert_true(ns->n >= 3);
    for (int i = 0; i < ns->n; i++) {
        char *fill = attr_dup(ns->node[i], "fill");
        xmlNodePtr root = ns->node[i];
        while (root->parent && root->parent->type == XML_ELEMENT_NODE &&
               strcmp((const char *)root->name, "svg") != 0)
            root = root->parent;
        char *root_id = attr_dup(root, "id");
        assert_true(strncmp(fill + 5, root_id, strlen(root_id)) == 0);
        free(root_id);
        free(fill);
    }
    for (int i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    free(ns);
    xmlFreeDoc(doc);
    svg_buf_free(&b);
}

/* ---------------------------------------------------------------- sample page */

static void write_page(FILE *f, const svg_buf *charts)
{
    fputs("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head>"
          "<meta charset=\"utf-8\"/><title>switchsim charts</title>"
          "<style>body{font-family:sans-serif;margin:16px;background:#fafafa}"
          "svg{display:block;margin:0 0 16px 0;background:#fff;border:1px solid #ddd}"
          "</style></head>\n<body>\n",
          f);
    fwrite(charts->data, 1, charts->len, f);
    fputs("</body></html>\n", f);
}

static void test_svg_sample_page_is_well_formed_xhtml(void **state)
{
    (void)state;
    svg_buf b = {0};
    all_charts(&b);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    write_page(f, &b);
    fclose(f);
    const char *body = strstr(text, "<html");
    xmlDocPtr doc = parse(body, len - (size_t)(body - text));
    xmlFreeDoc(doc);
    free(text);
    svg_buf_free(&b);
}

static int write_sample(const char *path)
{
    svg_buf b = {0};
    all_charts(&b);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    write_page(f, &b);
    fclose(f);
    svg_buf_free(&b);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--sample") == 0)
        return write_sample(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svg_bars_values_round_trip),
        cmocka_unit_test(test_svg_bars_tooltips_carry_names_value_and_unit),
        cmocka_unit_test(test_svg_bars_ref_line_and_unnamed_bars),
        cmocka_unit_test(test_svg_bars_many_bars_thin_out_labels),
        cmocka_unit_test(test_svg_heatmap_values_round_trip_with_nan_cells),
        cmocka_unit_test(test_svg_heatmap_fixed_range_clamps_and_labels_cells),
        cmocka_unit_test(test_svg_heatmap_unnamed_cells_print_indices),
        cmocka_unit_test(test_svg_lines_points_round_trip),
        cmocka_unit_test(test_svg_roofline_points_round_trip_and_are_labelled),
        cmocka_unit_test(test_svg_roofline_merges_labels_of_coincident_points),
        cmocka_unit_test(test_svg_roofline_without_points),
        cmocka_unit_test(test_svg_linear_ticks_use_1_2_5_steps),
        cmocka_unit_test(test_svg_linear_tick_labels_use_si_prefixes),
        cmocka_unit_test(test_svg_log_ticks_are_decades_with_minor_ticks),
        cmocka_unit_test(test_svg_lines_linear_axes_start_y_at_zero_only),
        cmocka_unit_test(test_svg_many_series_get_distinct_colours_and_fit),
        cmocka_unit_test(test_svg_large_heatmap_thins_labels),
        cmocka_unit_test(test_svg_ids_differ_between_charts_in_separate_buffers),
        cmocka_unit_test(test_svg_extreme_values_draw_without_crashing),
        cmocka_unit_test(test_svg_tooltips_format_values_with_units),
        cmocka_unit_test(test_svg_escapes_markup_in_labels),
        cmocka_unit_test(test_svg_repairs_invalid_utf8_and_control_chars),
        cmocka_unit_test(test_svg_rejects_bad_specs),
        cmocka_unit_test(test_svg_rejects_null_arguments_and_failed_buffers),
        cmocka_unit_test(test_svg_allocation_failures_leave_output_unchanged),
        cmocka_unit_test(test_svg_output_is_deterministic),
        cmocka_unit_test(test_svg_output_does_not_depend_on_locale),
        cmocka_unit_test(test_svg_ids_are_unique_across_charts_in_one_page),
        cmocka_unit_test(test_svg_sample_page_is_well_formed_xhtml),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    xmlCleanupParser();
    return rc;
}
