/* This file tests `switchsim report` and the detail `switchsim estimate --results` writes for
 * it, end to end through the built binary: real estimates (Switch-Tiny on a 2-D TPU v3-8 and
 * on a 3-D TPU v4 4x4x4 pod) are written as results.json, reports are generated from them, and
 * the outputs are parsed with libxml2 (every SVG and report.html must be well-formed XML) and
 * compared with the JSON: the data-value / data-x / data-y numbers of the charts, the CSV
 * tables, the scaling curves of a multi-result report with a sweep file, and the errors for
 * bad input.
 *
 * Invariants: every comparison of numbers is exact (the report copies JSON numbers with 17
 * significant digits), except sums of the breakdown, which are compared with a relative
 * tolerance and print their largest difference.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "common/fileio.h"
#include "reports/report.h"
#include "tests/support/cli_child.h"
#include "tests/support/test_scratch.h"

static char tmp[256];  /* this run's scratch directory */
static char tiny[512]; /* results of Switch-Tiny on tpu-v3-8 */
static char v4[512];   /* results of Switch-Tiny on tpu-v4-4x4x4 */

/* ---- helpers ------------------------------------------------------------------------------ */

static void path_in(char *buf, size_t n, const char *rel)
{
    snprintf(buf, n, "%s/%s", tmp, rel);
}

/* Runs switchsim and requires exit 0 (printing stderr otherwise). */
static void run_ok(const char *fmt, ...)
{
    cli_child_result r;
    va_list ap;
    va_start(ap, fmt);
    cli_child_vrun(&r, fmt, ap);
    va_end(ap);
    if (r.status != 0)
        fprintf(stderr, "switchsim %s: status %d %s\n%s", r.args, r.status, r.why, r.err);
    const int status = r.status;
    cli_child_free(&r);
    assert_int_equal(status, 0);
}

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        fprintf(stderr, "%s: %s\n", path, je.text);
    assert_non_null(j);
    return j;
}

static double num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fprintf(stderr, "missing number %s\n", key);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

/* The XML document at path; fails the test when it is not well-formed. */
static xmlDocPtr parse_xml(const char *path)
{
    xmlDocPtr doc = xmlReadFile(path, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR);
    if (!doc)
        fprintf(stderr, "%s is not well-formed XML\n", path);
    assert_non_null(doc);
    return doc;
}

/* The values of attribute attr over the document, in document order (malloc'd). */
static double *attr_values(xmlDocPtr doc, const char *attr, size_t *n)
{
    char expr[64];
    snprintf(expr, sizeof expr, "//@%s", attr);
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    xmlXPathObjectPtr res = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
    assert_non_null(res);
    const int k = res->nodesetval ? res->nodesetval->nodeNr : 0;
    double *v = malloc(sizeof(double) * ((size_t)k + 1));
    assert_non_null(v);
    for (int i = 0; i < k; i++) {
        xmlChar *s = xmlNodeGetContent(res->nodesetval->nodeTab[i]);
        v[i] = strcmp((const char *)s, "NaN") == 0 ? NAN : strtod((const char *)s, NULL);
        xmlFree(s);
    }
    xmlXPathFreeObject(res);
    xmlXPathFreeContext(ctx);
    *n = (size_t)k;
    return v;
}

static double *svg_attr(const char *rel, const char *attr, size_t *n)
{
    char path[600];
    path_in(path, sizeof path, rel);
    xmlDocPtr doc = parse_xml(path);
    double *v = attr_values(doc, attr, n);
    xmlFreeDoc(doc);
    return v;
}

/* Exact equality of got[0..n) and want[0..n) (NaN equals NaN); prints the largest difference. */
static void assert_same(const char *what, const double *got, size_t ngot, const double *want,
                        size_t nwant)
{
    if (ngot != nwant)
        fprintf(stderr, "%s: %zu values in the chart, %zu in the JSON\n", what, ngot, nwant);
    assert_int_equal(ngot, nwant);
    double maxdiff = 0;
    size_t bad = 0;
    for (size_t i = 0; i < ngot; i++) {
        if (isnan(got[i]) && isnan(want[i]))
            continue;
        const double d = fabs(got[i] - want[i]);
        if (!(d == 0)) {
            bad++;
            maxdiff = isnan(d) || d > maxdiff ? d : maxdiff;
        }
    }
    printf("%s: %zu values, max difference %g\n", what, ngot, maxdiff);
    assert_int_equal(bad, 0);
}

static char *read_text(const char *rel)
{
    char path[600], *text = NULL;
    size_t len = 0;
    ss_err err = {0};
    path_in(path, sizeof path, rel);
    if (file_read_all(path, 1 << 28, &text, &len, &err) != SS_OK)
        fprintf(stderr, "%s\n", err.msg);
    assert_non_null(text);
    return text;
}

/* Field col of CSV line `line` (0 = header), unquoted fields only (what these tables hold
 * in their numeric columns); "" when absent. */
static void csv_field(const char *text, int line, int col, char *out, size_t n)
{
    const char *p = text;
    for (int l = 0; l < line && p; l++) {
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    out[0] = '\0';
    if (!p)
        return;
    for (int c = 0; c < col; c++) {
        int quoted = 0;
        while (*p && *p != '\n' && (quoted || *p != ',')) {
            if (*p == '"')
                quoted = !quoted;
            p++;
        }
        if (*p != ',')
            return;
        p++;
    }
    size_t k = 0;
    while (p[k] && p[k] != ',' && p[k] != '\n' && k + 1 < n) {
        out[k] = p[k];
        k++;
    }
    out[k] = '\0';
}

static int csv_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

static int csv_col(const char *text, const char *name)
{
    char f[128];
    for (int c = 0; c < 64; c++) {
        csv_field(text, 0, c, f, sizeof f);
        if (strcmp(f, name) == 0)
            return c;
    }
    fprintf(stderr, "no CSV column %s\n", name);
    fail();
    return -1;
}

static int exists(const char *rel)
{
    char path[600];
    struct stat st;
    path_in(path, sizeof path, rel);
    return stat(path, &st) == 0;
}

/* ---- fixtures ----------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    if (test_scratch_make(tmp, sizeof tmp, "switchsim-test-report") != 0 || !cli_child_binary() ||
        !cli_child_source_root())
        return -1;
    path_in(tiny, sizeof tiny, "tiny.json");
    path_in(v4, sizeof v4, "v4.json");
    cli_child_result r;
    int bad = cli_child_run(&r, "estimate --run configs/runs/switch-tiny-v3-8.yaml "
                                "--results '%s'", tiny) != 0;
    if (bad)
        fprintf(stderr, "%s\n", r.err);
    cli_child_free(&r);
    bad |= cli_child_run(&r, "estimate --model configs/models/switch-tiny.yaml --pod "
                             "configs/pods/tpu-v4-4x4x4.yaml --data 128 --batch 256 "
                             "--input-length 64 --target-length 16 --results '%s' --format json",
                         v4) != 0;
    if (bad)
        fprintf(stderr, "%s\n", r.err);
    cli_child_free(&r);
    bad |= cli_child_run(&r, "report '%s' -o '%s/r1'", tiny, tmp) != 0;
    cli_child_free(&r);
    bad |= cli_child_run(&r, "report '%s' -o '%s/r3' --title '3-D pod'", v4, tmp) != 0;
    cli_child_free(&r);
    return bad ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    test_scratch_remove(tmp); /* kept when SWITCHSIM_KEEP_TMP is set */
    return 0;
}

/* ---- detail ------------------------------------------------------------------------------- */

static double group_sum(const json_t *part, const char *group)
{
    const char *k;
    json_t *v;
    double s = 0;
    json_object_foreach(json_object_get(part, group), k, v)
        s += json_number_value(v);
    return s;
}

/* The breakdown sums to the step time and agrees with time_split; layers sum to the total. */
static void test_report_detail_breakdown_sums(void **state)
{
    (void)state;
    char iso[600];
    path_in(iso, sizeof iso, "iso.json");
    /* collectives kept as ops and priced in isolation, instead of lowered to sends/recvs */
    run_ok("estimate --run configs/runs/switch-tiny-v3-8.yaml --comm isolated --results '%s'",
           iso);
    const char *files[] = {tiny, v4, iso};
    for (int f = 0; f < 3; f++) {
        json_t *r = load_json(files[f]);
        const json_t *b = json_object_get(json_object_get(r, "detail"), "breakdown");
        const json_t *tot = json_object_get(b, "total"), *ts = json_object_get(r, "time_split");
        const double step = num(r, "step_seconds");
        const double comp = group_sum(tot, "compute"), comm = group_sum(tot, "exposed_comm");
        const double idle = num(tot, "idle");
        const double d1 = fabs(comp + comm + idle - step) / step;
        const double d2 = fabs(comp - num(ts, "compute_s")) / step;
        const double d3 = fabs(comm - num(ts, "exposed_comm_s")) / step;
        double d4 = 0;
        const json_t *layers = json_object_get(b, "layers");
        double lc = 0, lx = 0;
        size_t i;
        json_t *l;
        json_array_foreach(layers, i, l) {
            lc += group_sum(l, "compute");
            lx += group_sum(l, "exposed_comm");
        }
        d4 = fmax(fabs(lc - comp), fabs(lx - comm)) / step;
        printf("%s: relative differences: sum-step %g, compute %g, comm %g, layers %g\n",
               files[f], d1, d2, d3, d4);
        assert_true(d1 < 1e-9 && d2 < 1e-9 && d3 < 1e-9 && d4 < 1e-9);
        assert_true(comp > 0);
        /* every exposed instant is attributed to a collective kind: the step program has no
         * sends of its own */
        assert_true(num(json_object_get(tot, "exposed_comm"), "p2p") == 0);
        assert_true(comm > 0);
        assert_int_equal(num(json_object_get(r, "detail"), "critical_core"),
                         num(ts, "critical_core"));
        /* every layer is listed: encoder + decoder + other */
        assert_int_equal(json_array_size(layers), 2 + 2 + 1);
        json_decref(r);
    }
}

/* Links with coordinates; expert loads sum to the routed tokens; scaling keys present. */
static void test_report_detail_links_experts(void **state)
{
    (void)state;
    json_t *r = load_json(v4);
    const json_t *d = json_object_get(r, "detail");
    const json_t *links = json_object_get(d, "links");
    /* 4x4x4 torus: 64 chips x 6 directed links */
    assert_int_equal(json_array_size(links), 64 * 6);
    uint64_t bytes = 0;
    size_t i;
    json_t *l;
    json_array_foreach(links, i, l) {
        bytes += (uint64_t)num(l, "bytes");
        const double u = num(l, "utilization");
        assert_true(u >= 0 && u <= 1);
        assert_int_equal(json_array_size(json_object_get(l, "src")), 3);
    }
    assert_true((double)bytes == num(json_object_get(r, "comm_bytes"), "links"));
    const json_t *el = json_object_get(d, "expert_load");
    assert_int_equal(num(el, "num_experts"), 8);
    const json_t *layers = json_object_get(el, "layers");
    assert_int_equal(json_array_size(layers), 2); /* one Switch layer per stack */
    double dropped = 0;
    json_array_foreach(layers, i, l) {
        double routed = 0, kept = 0;
        size_t e;
        json_t *v;
        json_array_foreach(json_object_get(l, "tokens_per_expert"), e, v)
            routed += json_number_value(v);
        json_array_foreach(json_object_get(l, "kept_per_expert"), e, v) {
            kept += json_number_value(v);
            assert_true(json_number_value(v) <= num(l, "capacity"));
        }
        assert_true(routed == num(l, "routed"));
        assert_true(fabs(num(l, "dropped_fraction") - (routed - kept) / routed) < 1e-15);
        dropped += num(l, "dropped_fraction") / 2;
    }
    printf("dropped: detail %.17g, result %.17g\n", dropped, num(r, "dropped_token_fraction"));
    assert_true(fabs(dropped - num(r, "dropped_token_fraction")) < 1e-12);
    assert_int_equal(num(r, "num_experts"), 8);
    assert_int_equal(num(r, "chips"), 64);
    assert_true(num(r, "link_bandwidth_bytes_per_s") == 50e9);
    const json_t *rf = json_object_get(d, "roofline");
    assert_true(num(rf, "core_peak_flops") > 0);
    assert_true(json_array_size(json_object_get(rf, "points")) > 4);
    json_decref(r);
}

/* The table format stays readable: no detail; JSON has it. */
static void test_report_detail_only_in_json(void **state)
{
    (void)state;
    cli_child_result r;
    assert_int_equal(cli_child_run(&r, "estimate --run configs/runs/switch-tiny-v3-8.yaml"), 0);
    assert_null(strstr(r.out, "tokens_per_expert"));
    assert_null(strstr(r.out, "breakdown"));
    assert_non_null(strstr(r.out, "num_experts"));
    cli_child_free(&r);
    json_t *j = cli_child_json(&r, "estimate --run configs/runs/switch-tiny-v3-8.yaml "
                                   "--format json");
    assert_non_null(j);
    assert_non_null(json_object_get(json_object_get(j, "detail"), "breakdown"));
    json_decref(j);
    cli_child_free(&r);
}

/* ---- single-result report ----------------------------------------------------------------- */

static void breakdown_values(const json_t *part, const char *const *cls, int n, int idle,
                             double *out)
{
    for (int c = 0; c < n; c++) {
        const char *dot = strchr(cls[c], '.');
        char group[32];
        snprintf(group, sizeof group, "%.*s", (int)(dot - cls[c]), cls[c]);
        out[c] = num(json_object_get(part, group), dot + 1);
    }
    if (idle)
        out[n] = num(part, "idle");
}

/* The breakdown charts carry the JSON's values, in bar-major order. */
static void test_report_breakdown_chart_values(void **state)
{
    (void)state;
    json_t *r = load_json(tiny);
    const json_t *b = json_object_get(json_object_get(r, "detail"), "breakdown");
    const json_t *tot = json_object_get(b, "total");
    /* the classes the report draws: those with a nonzero total, in schema order */
    const char *cls[16];
    int n = 0;
    const char *groups[] = {"compute", "exposed_comm"};
    for (int g = 0; g < 2; g++) {
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(tot, groups[g]), k, v) {
            if (json_number_value(v) > 0) {
                char *s = malloc(64);
                snprintf(s, 64, "%s.%s", groups[g], k);
                cls[n++] = s;
            }
        }
    }
    double want[17];
    breakdown_values(tot, cls, n, 1, want);
    size_t got_n = 0;
    double *got = svg_attr("r1/breakdown_total.svg", "data-value", &got_n);
    assert_same("breakdown_total.svg", got, got_n, want, (size_t)n + 1);
    free(got);
    const json_t *layers = json_object_get(b, "layers");
    const size_t nl = json_array_size(layers);
    double *lw = malloc(sizeof(double) * nl * (size_t)n);
    for (size_t i = 0; i < nl; i++)
        breakdown_values(json_array_get(layers, i), cls, n, 0, lw + i * (size_t)n);
    got = svg_attr("r1/breakdown_layers.svg", "data-value", &got_n);
    assert_same("breakdown_layers.svg", got, got_n, lw, nl * (size_t)n);
    free(got);
    free(lw);
    for (int c = 0; c < n; c++)
        free((char *)cls[c]);
    json_decref(r);
}

/* Heatmap cells: the largest utilisation of each chip's outgoing links, per z slice. */
static void check_heatmap(const char *results, const char *dir)
{
    json_t *r = load_json(results);
    const json_t *d = json_object_get(r, "detail");
    const json_t *dims = json_object_get(json_object_get(d, "topology"), "dims");
    const int X = (int)json_integer_value(json_array_get(dims, 0));
    const int Y = (int)json_integer_value(json_array_get(dims, 1));
    const int Z = (int)json_integer_value(json_array_get(dims, 2));
    double *want = malloc(sizeof(double) * (size_t)(X * Y * Z));
    for (int i = 0; i < X * Y * Z; i++)
        want[i] = NAN;
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(d, "links"), i, l) {
        const json_t *s = json_object_get(l, "src");
        const int x = (int)json_integer_value(json_array_get(s, 0));
        const int y = (int)json_integer_value(json_array_get(s, 1));
        const int z = (int)json_integer_value(json_array_get(s, 2));
        double *c = &want[(z * Y + y) * X + x];
        const double u = num(l, "utilization");
        if (isnan(*c) || u > *c)
            *c = u;
    }
    for (int z = 0; z < Z; z++) {
        char rel[128];
        if (Z > 1)
            snprintf(rel, sizeof rel, "%s/links_z%d.svg", dir, z);
        else
            snprintf(rel, sizeof rel, "%s/links.svg", dir);
        size_t n = 0;
        double *got = svg_attr(rel, "data-value", &n);
        assert_same(rel, got, n, want + (size_t)z * (size_t)(X * Y), (size_t)(X * Y));
        free(got);
    }
    free(want);
    json_decref(r);
}

static void test_report_heatmap_2d_values(void **state)
{
    (void)state;
    check_heatmap(tiny, "r1");
}

static void test_report_heatmap_3d_slices(void **state)
{
    (void)state;
    check_heatmap(v4, "r3");
    assert_true(exists("r3/links_z3.svg"));
    assert_false(exists("r3/links_z4.svg"));
}

/* Expert-load charts: tokens per expert of the layer, and the capacity line. */
static void test_report_expert_chart_values(void **state)
{
    (void)state;
    json_t *r = load_json(tiny);
    const json_t *layers =
        json_object_get(json_object_get(json_object_get(r, "detail"), "expert_load"), "layers");
    const json_t *l0 = json_array_get(layers, 0);
    const json_t *tok = json_object_get(l0, "tokens_per_expert");
    double want[64];
    const size_t E = json_array_size(tok);
    for (size_t e = 0; e < E; e++)
        want[e] = json_number_value(json_array_get(tok, e));
    size_t n = 0;
    double *got = svg_attr("r1/experts_0.svg", "data-value", &n);
    assert_same("experts_0.svg", got, n, want, E);
    free(got);
    got = svg_attr("r1/experts_0.svg", "data-ref", &n);
    double cap = num(l0, "capacity");
    assert_same("experts_0.svg capacity", got, n, &cap, 1);
    free(got);
    json_decref(r);
}

static int cmp_seconds(const void *a, const void *b)
{
    const double x = json_number_value(json_object_get(*(json_t *const *)a, "seconds"));
    const double y = json_number_value(json_object_get(*(json_t *const *)b, "seconds"));
    return (x < y) - (x > y);
}

/* Roofline: the longest op groups' intensity and FLOP/s, and the roof. */
static void test_report_roofline_values(void **state)
{
    (void)state;
    json_t *r = load_json(tiny);
    const json_t *rf = json_object_get(json_object_get(r, "detail"), "roofline");
    const json_t *pts = json_object_get(rf, "points");
    size_t n = json_array_size(pts);
    json_t **p = malloc(sizeof *p * n);
    for (size_t i = 0; i < n; i++)
        p[i] = json_array_get(pts, i);
    qsort(p, n, sizeof *p, cmp_seconds);
    const size_t top = n < 12 ? n : 12;
    double *wx = malloc(sizeof(double) * top), *wy = malloc(sizeof(double) * top);
    for (size_t i = 0; i < top; i++) {
        wx[i] = num(p[i], "intensity");
        wy[i] = num(p[i], "flops_per_s");
    }
    size_t gn = 0;
    double *gx = svg_attr("r1/roofline.svg", "data-x", &gn);
    assert_same("roofline.svg x", gx, gn, wx, top);
    free(gx);
    double *gy = svg_attr("r1/roofline.svg", "data-y", &gn);
    assert_same("roofline.svg y", gy, gn, wy, top);
    free(gy);
    double peak = num(rf, "core_peak_flops");
    gy = svg_attr("r1/roofline.svg", "data-peak", &gn);
    assert_same("roofline.svg peak", gy, gn, &peak, 1);
    free(gy);
    free(wx);
    free(wy);
    free(p);
    json_decref(r);
}

/* report.html: well-formed, self-contained, says the figures are estimates, inlines every
 * chart. */
static void test_report_html_self_contained(void **state)
{
    (void)state;
    char path[600];
    path_in(path, sizeof path, "r1/report.html");
    xmlDocPtr doc = parse_xml(path);
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    xmlXPathRegisterNs(ctx, (const xmlChar *)"s", (const xmlChar *)"http://www.w3.org/2000/svg");
    xmlXPathObjectPtr svgs = xmlXPathEvalExpression((const xmlChar *)"//s:svg", ctx);
    xmlXPathObjectPtr bad = xmlXPathEvalExpression(
        (const xmlChar *)"//script | //*[@src] | //link | //@href[not(starts-with(., '#'))]",
        ctx);
    const int nsvg = svgs->nodesetval ? svgs->nodesetval->nodeNr : 0;
    const int nbad = bad->nodesetval ? bad->nodesetval->nodeNr : 0;
    printf("report.html: %d inline charts, %d external references or scripts\n", nsvg, nbad);
    /* breakdown total + layers, links, 2 expert charts (encoder, decoder), roofline */
    assert_int_equal(nsvg, 6);
    assert_int_equal(nbad, 0);
    xmlXPathFreeObject(svgs);
    xmlXPathFreeObject(bad);
    xmlXPathFreeContext(ctx);
    xmlFreeDoc(doc);
    char *html = read_text("r1/report.html");
    json_t *r = load_json(tiny);
    assert_non_null(strstr(html, "Every figure in this report is an estimate"));
    assert_non_null(strstr(html, json_string_value(json_object_get(r, "note"))));
    free(html);
    /* a chart saved on its own still says its figures are estimates */
    const char *charts[] = {"r1/breakdown_total.svg", "r1/breakdown_layers.svg", "r1/links.svg",
                            "r1/experts_0.svg", "r1/experts_1.svg", "r1/roofline.svg"};
    for (size_t i = 0; i < sizeof charts / sizeof charts[0]; i++) {
        char *svg = read_text(charts[i]);
        if (!strstr(svg, "estimate)"))
            fprintf(stderr, "%s does not say it shows estimates\n", charts[i]);
        assert_non_null(strstr(svg, "estimate)"));
        free(svg);
    }
    char *md = read_text("r1/report.md");
    assert_non_null(strstr(md, "Every figure in this report is an estimate"));
    assert_non_null(strstr(md, "![breakdown_layers.svg](breakdown_layers.svg)"));
    free(md);
    json_decref(r);
}

/* CSVs: the summary row equals the JSON, the breakdown total row sums to the step, one line
 * per link. */
static void test_report_csv_contents(void **state)
{
    (void)state;
    json_t *r = load_json(tiny);
    char *sum = read_text("r1/summary.csv");
    char f[128];
    assert_int_equal(csv_lines(sum), 2);
    csv_field(sum, 1, csv_col(sum, "step_seconds"), f, sizeof f);
    assert_true(strtod(f, NULL) == num(r, "step_seconds"));
    csv_field(sum, 1, csv_col(sum, "examples_per_second"), f, sizeof f);
    assert_true(strtod(f, NULL) == num(r, "examples_per_second"));
    csv_field(sum, 1, csv_col(sum, "mfu"), f, sizeof f);
    assert_true(strtod(f, NULL) == num(r, "mfu"));
    csv_field(sum, 1, csv_col(sum, "params"), f, sizeof f);
    assert_true(strtod(f, NULL) == num(r, "params"));
    free(sum);
    char *bd = read_text("r1/breakdown.csv");
    csv_field(bd, 1, 0, f, sizeof f);
    assert_string_equal(f, "total");
    csv_field(bd, 1, csv_col(bd, "sum_s"), f, sizeof f);
    const double d = fabs(strtod(f, NULL) - num(r, "step_seconds")) / num(r, "step_seconds");
    printf("breakdown.csv total: relative difference to step_seconds %g\n", d);
    assert_true(d < 1e-9);
    assert_int_equal(csv_lines(bd), 1 + 1 + 5); /* header, total, 4 layers + other */
    free(bd);
    char *links = read_text("r1/links.csv");
    const json_t *jl = json_object_get(json_object_get(r, "detail"), "links");
    assert_int_equal(csv_lines(links), 1 + (int)json_array_size(jl));
    csv_field(links, 1, csv_col(links, "utilization"), f, sizeof f);
    assert_true(strtod(f, NULL) == num(json_array_get(jl, 0), "utilization"));
    free(links);
    char *el = read_text("r1/expert_load.csv");
    assert_int_equal(csv_lines(el), 1 + 2 * 8); /* 2 Switch layers x 8 experts */
    free(el);
    json_decref(r);
}

/* ---- several results ---------------------------------------------------------------------- */

/* A sweep file with one ok point (the v4 result) and one failed point. */
static void write_sweep(const char *path)
{
    json_t *res = load_json(v4);
    json_t *doc = json_pack("{s:s, s:[{s:{s:i}, s:s, s:o}, {s:{s:i}, s:s, s:s}]}", "sweep",
                            "pods", "points", "point", "data", 128, "status", "ok", "result",
                            res, "point", "data", 3, "status", "failed", "error",
                            "impossible layout: 3 data ways do not divide 8 experts");
    assert_non_null(doc);
    assert_int_equal(json_dump_file(doc, path, 0), 0);
    json_decref(doc);
}

/* A copy of the tpu-v3 chip with link_gbps 200 and a tpu-v3-8 pod of it, in the scratch
 * directory: the same run with twice the link bandwidth. */
static void write_fast_pod(char *pod, size_t n)
{
    char chip[600], src[600];
    path_in(chip, sizeof chip, "fast-chip.yaml");
    snprintf(pod, n, "%s/fast-pod.yaml", tmp);
    assert_int_equal(cli_child_source_path(src, sizeof src, "configs/chips/tpu-v3.yaml"), 0);
    char cmd[2000];
    snprintf(cmd, sizeof cmd,
             "sed -e 's/^link_gbps:.*/link_gbps: 200/' -e 's/^name:.*/name: tpu-v3-fast/' "
             "'%s' > '%s' && printf 'kind: pod\nname: tpu-v3-8-fast\nchip: fast-chip.yaml\n"
             "topology: mesh2d\ndims: [2, 2]\n' > '%s'",
             src, chip, pod);
    assert_int_equal(system(cmd), 0);
}

static void test_report_multi_scaling(void **state)
{
    (void)state;
    char a[600], fast[600], sweep[600], pod[600];
    path_in(a, sizeof a, "tiny32.json");
    path_in(fast, sizeof fast, "tinyfast.json");
    path_in(sweep, sizeof sweep, "sweep.json");
    write_fast_pod(pod, sizeof pod);
    run_ok("estimate --model configs/models/switch-tiny.yaml --pod configs/pods/tpu-v3-32.yaml "
           "--data 32 --batch 64 --microbatches 2 --input-length 128 --target-length 32 "
           "--results '%s'",
           a);
    run_ok("estimate --model configs/models/switch-tiny.yaml --pod '%s' --data 8 --batch 64 "
           "--microbatches 2 --input-length 128 --target-length 32 --results '%s'",
           pod, fast);
    write_sweep(sweep);
    run_ok("report '%s' '%s' '%s' '%s' -o '%s/multi'", tiny, a, fast, sweep, tmp);
    json_t *r[4] = {load_json(tiny), load_json(a), load_json(fast), load_json(v4)};
    /* cores: tiny (8) and a (32) differ in cores only: one curve; fast and v4 stand alone */
    size_t n = 0;
    double *gx = svg_attr("multi/scaling_cores.svg", "data-x", &n);
    double *gy = svg_attr("multi/scaling_cores.svg", "data-y", &n);
    double wx[2] = {num(r[0], "cores"), num(r[1], "cores")};
    double wy[2] = {num(r[0], "examples_per_second"), num(r[1], "examples_per_second")};
    assert_same("scaling_cores.svg x", gx, n, wx, 2);
    assert_same("scaling_cores.svg y", gy, n, wy, 2);
    free(gx);
    free(gy);
    /* link bandwidth: tiny (100 GB/s) and fast (200 GB/s) */
    gx = svg_attr("multi/scaling_link_bandwidth.svg", "data-x", &n);
    gy = svg_attr("multi/scaling_link_bandwidth.svg", "data-y", &n);
    double lx[2] = {num(r[0], "link_bandwidth_bytes_per_s"),
                    num(r[2], "link_bandwidth_bytes_per_s")};
    double ly[2] = {num(r[0], "examples_per_second"), num(r[2], "examples_per_second")};
    assert_true(lx[1] == 2 * lx[0]);
    assert_same("scaling_link_bandwidth.svg x", gx, n, lx, 2);
    assert_same("scaling_link_bandwidth.svg y", gy, n, ly, 2);
    free(gx);
    free(gy);
    assert_false(exists("multi/scaling_experts.svg")); /* every result has 8 experts */
    char *sum = read_text("multi/summary.csv");
    assert_int_equal(csv_lines(sum), 5);
    assert_non_null(strstr(sum, "pods #0 (data=128)"));
    assert_non_null(strstr(sum, "switch-tiny on tpu-v3-32")); /* a --model/--pod run's name */
    free(sum);
    char *sc = read_text("multi/scaling.csv");
    assert_int_equal(csv_lines(sc), 5);
    free(sc);
    char *failed = read_text("multi/failed.csv");
    assert_non_null(strstr(failed, "3 data ways do not divide 8 experts"));
    free(failed);
    char *md = read_text("multi/report.md");
    assert_non_null(strstr(md, "## Failed points"));
    assert_non_null(strstr(md, "![scaling_cores.svg](scaling_cores.svg)"));
    free(md);
    size_t nb = 0;
    double *bv = svg_attr("multi/breakdown.svg", "data-value", &nb);
    assert_true(nb % 4 == 0 && nb > 0); /* four bars of the same classes */
    free(bv);
    for (int i = 0; i < 4; i++)
        json_decref(r[i]);
}

/* A sweep point of result r with the swept keys cf and link, its throughput scaled. */
static json_t *sweep_point(const json_t *r, double cf, int link, double scale)
{
    json_t *res = json_deep_copy(r);
    const double rate = json_number_value(json_object_get(r, "examples_per_second"));
    json_object_set_new(res, "examples_per_second", json_real(scale * rate));
    return json_pack("{s:{s:f, s:i}, s:s, s:o}", "point", "model.switch.capacity_factor_train",
                     cf, "pod.chip.link_gbps", link, "status", "ok", "result", res);
}

/* Sweep results that differ in a swept key the results do not carry (the capacity factor)
 * are not joined into one curve: one line per capacity factor, labelled with it. */
static void test_report_sweep_series(void **state)
{
    (void)state;
    char fast[600], pod[600], sweep[600];
    path_in(fast, sizeof fast, "tinyfast2.json");
    path_in(sweep, sizeof sweep, "cf-sweep.json");
    write_fast_pod(pod, sizeof pod);
    run_ok("estimate --model configs/models/switch-tiny.yaml --pod '%s' --data 8 --batch 64 "
           "--microbatches 2 --input-length 128 --target-length 32 --results '%s'",
           pod, fast);
    json_t *slow = load_json(tiny), *quick = load_json(fast);
    json_t *pts = json_array();
    json_array_append_new(pts, sweep_point(slow, 1.0, 100, 1.0));
    json_array_append_new(pts, sweep_point(quick, 1.0, 200, 1.0));
    json_array_append_new(pts, sweep_point(slow, 2.0, 100, 0.5));
    json_array_append_new(pts, sweep_point(quick, 2.0, 200, 0.5));
    json_t *doc = json_pack("{s:s, s:o}", "sweep", "cf", "points", pts);
    assert_int_equal(json_dump_file(doc, sweep, 0), 0);
    run_ok("report '%s' -o '%s/cf'", sweep, tmp);
    size_t n = 0;
    double *gy = svg_attr("cf/scaling_link_bandwidth.svg", "data-y", &n);
    const double a = num(slow, "examples_per_second"), b = num(quick, "examples_per_second");
    double want[4] = {a, b, 0.5 * a, 0.5 * b}; /* series cf=1, then cf=2; x ascending */
    assert_same("scaling_link_bandwidth.svg y (two series)", gy, n, want, 4);
    free(gy);
    char *svg = read_text("cf/scaling_link_bandwidth.svg");
    assert_non_null(strstr(svg, "capacity_factor_train=1"));
    assert_non_null(strstr(svg, "capacity_factor_train=2"));
    free(svg);
    json_decref(doc);
    json_decref(slow);
    json_decref(quick);
}

/* ---- errors ------------------------------------------------------------------------------- */

static void expect_fail(int status, const char *needle, const char *fmt, ...)
{
    cli_child_result r;
    va_list ap;
    va_start(ap, fmt);
    cli_child_vrun(&r, fmt, ap);
    va_end(ap);
    if (r.status != status || !strstr(r.err, needle))
        fprintf(stderr, "switchsim %s: status %d, stderr:\n%s(wanted %d and '%s')\n", r.args,
                r.status, r.err, status, needle);
    assert_int_equal(r.status, status);
    assert_non_null(strstr(r.err, needle));
    cli_child_free(&r);
}

static void test_report_bad_input(void **state)
{
    (void)state;
    char bad[600], notres[600], badsweep[600];
    path_in(bad, sizeof bad, "bad.json");
    path_in(notres, sizeof notres, "notres.json");
    path_in(badsweep, sizeof badsweep, "badsweep.json");
    FILE *f = fopen(bad, "w");
    fputs("{\"step_seconds\": 1,\n  oops", f);
    fclose(f);
    f = fopen(notres, "w");
    fputs("{\"hello\": 1}", f);
    fclose(f);
    f = fopen(badsweep, "w");
    fputs("{\"sweep\": \"s\", \"points\": [{\"status\": \"maybe\"}]}", f);
    fclose(f);
    expect_fail(1, "missing.json", "report '%s/missing.json' -o '%s/e1'", tmp, tmp);
    expect_fail(1, "bad.json:2", "report '%s' -o '%s/e1'", bad, tmp);
    expect_fail(1, "not valid JSON", "report '%s' -o '%s/e1'", bad, tmp);
    expect_fail(1, "notres.json: neither an estimate result", "report '%s' '%s' -o '%s/e1'",
                tiny, notres, tmp);
    expect_fail(1, "sweep point 0", "report '%s' -o '%s/e1'", badsweep, tmp);
    assert_false(exists("e1")); /* nothing written when an input fails */
    expect_fail(2, "output", "report '%s'", tiny);
    expect_fail(2, "report", "report -o '%s/e1'", tmp);
    expect_fail(1, "not a directory", "report '%s' -o '%s'", tiny, tiny);
    /* estimate --results into a directory that does not exist: a failure naming the option */
    expect_fail(1, "--results", "estimate --run configs/runs/switch-tiny-v3-8.yaml --results "
                                "'%s/no-such-dir/r.json'", tmp);
}

/* A result without "detail" (e.g. an older --format json output) gives the summary only and
 * says how to get the rest. */
static void test_report_without_detail(void **state)
{
    (void)state;
    char path[600];
    path_in(path, sizeof path, "nodetail.json");
    json_t *r = load_json(tiny);
    json_object_del(r, "detail");
    assert_int_equal(json_dump_file(r, path, 0), 0);
    run_ok("report '%s' -o '%s/nodetail'", path, tmp);
    assert_true(exists("nodetail/summary.csv"));
    assert_false(exists("nodetail/breakdown_total.svg"));
    assert_false(exists("nodetail/links.csv"));
    char *md = read_text("nodetail/report.md");
    assert_non_null(strstr(md, "has no detail"));
    assert_non_null(strstr(md, "--results"));
    assert_non_null(strstr(md, json_string_value(json_object_get(r, "note"))));
    free(md);
    json_decref(r);
}

static const report_file *find_file(const report_files *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->files[i].name, name) == 0)
            return &f->files[i];
    fprintf(stderr, "no file %s in the report\n", name);
    fail();
    return NULL;
}

/* Names with CSV, Markdown and XML metacharacters come out quoted and escaped (through the
 * library: report_set_add_json and report_render). */
static void test_report_escaping(void **state)
{
    (void)state;
    json_t *r = load_json(tiny);
    const char *name = "a,b \"c\" | <d> & e";
    json_object_set_new(r, "run", json_string(name));
    report_set set;
    memset(&set, 0, sizeof set);
    ss_err err = {0};
    assert_int_equal(report_set_add_json(&set, r, "mem", &err), SS_OK);
    report_files out;
    const report_opts o = {"T <1> & \"2\""};
    if (report_render(&out, &set, &o, &err) != SS_OK)
        fprintf(stderr, "%s\n", err.msg);
    const report_file *csv = find_file(&out, "summary.csv");
    const report_file *md = find_file(&out, "report.md");
    const report_file *html = find_file(&out, "report.html");
    assert_non_null(strstr(csv->data, "\n\"a,b \"\"c\"\" | <d> & e\",")); /* RFC 4180 */
    assert_non_null(strstr(md->data, "| a,b \"c\" \\| <d> & e |"));      /* pipe escaped */
    assert_non_null(strstr(html->data, "a,b &quot;c&quot; | &lt;d&gt; &amp; e"));
    assert_non_null(strstr(html->data, "<title>T &lt;1&gt; &amp; &quot;2&quot;</title>"));
    /* the escaped page is still well-formed */
    xmlDocPtr doc = xmlReadMemory(html->data, (int)html->len, "report.html", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR);
    assert_non_null(doc);
    xmlFreeDoc(doc);
    report_files_free(&out);
    report_set_free(&set);
    json_decref(r);
}

/* A second report into an existing directory replaces its files and leaves no temporary. */
static void test_report_rewrite_existing_dir(void **state)
{
    (void)state;
    run_ok("report '%s' -o '%s/again'", tiny, tmp);
    run_ok("report '%s' -o '%s/again' --title 'Second run'", tiny, tmp);
    char *md = read_text("again/report.md");
    assert_non_null(strstr(md, "# Second run"));
    free(md);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls -a '%s' '%s/again' | grep -c tmp- >/dev/null", tmp, tmp);
    assert_int_not_equal(system(cmd), 0); /* grep found no tmp- entry */
    /* the new directory gets the usual mode (0777 less the umask), not mkdtemp's 0700 */
    struct stat st;
    char path[600];
    path_in(path, sizeof path, "again");
    assert_int_equal(stat(path, &st), 0);
    const mode_t mask = umask(0);
    umask(mask);
    printf("mode %o, umask %o\n", (unsigned)(st.st_mode & 0777), (unsigned)mask);
    assert_int_equal(st.st_mode & 0777, 0777 & ~mask);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_detail_breakdown_sums),
        cmocka_unit_test(test_report_detail_links_experts),
        cmocka_unit_test(test_report_detail_only_in_json),
        cmocka_unit_test(test_report_breakdown_chart_values),
        cmocka_unit_test(test_report_heatmap_2d_values),
        cmocka_unit_test(test_report_heatmap_3d_slices),
        cmocka_unit_test(test_report_expert_chart_values),
        cmocka_unit_test(test_report_roofline_values),
        cmocka_unit_test(test_report_html_self_contained),
        cmocka_unit_test(test_report_csv_contents),
        cmocka_unit_test(test_report_multi_scaling),
        cmocka_unit_test(test_report_sweep_series),
        cmocka_unit_test(test_report_bad_input),
        cmocka_unit_test(test_report_without_detail),
        cmocka_unit_test(test_report_escaping),
        cmocka_unit_test(test_report_rewrite_existing_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
