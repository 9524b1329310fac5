/* This file tests the Chrome traces of `switchsim sim --trace` and `switchsim estimate
 * --trace` (cli/sim_trace.h), run as a subprocess and read back with jansson: the op slices,
 * proper nesting of every thread (network lanes included), the dispatch flows (every "s" has
 * one "f" with the same name, cat and id, "bp":"e", each end mid-slice of its op, from a send
 * to the expert matmul of the core it sends to), the link-utilisation counters (within
 * [0, 1], ending at 0, and integrating to the link's busy time), --trace-chips and
 * --trace-layers (which also cuts the links to the selected ops' time span), and the
 * options' errors.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "cli_child.h"
#include "test_scratch.h"

#define POD "configs/pods/tpu-v3-8.yaml"
#define PROG "tests/traces/programs/dispatch.prog"
#define TOL_US 2e-6 /* the trace writes microseconds with 6 decimals */

typedef struct {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || test_scratch_make(f->dir, sizeof f->dir, "switchsim-trace") != 0) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/t.json", f->dir);
    *state = f;
    return cli_child_enter_source_root();
}

static int teardown(void **state)
{
    fixture *f = *state;
    const int rc = test_scratch_remove(f->dir);
    free(f);
    return rc;
}

/* Runs "switchsim ARGS" (which writes the trace to f->path), checks exit 0 and returns the
 * traceEvents array (the caller json_decref's the document via *doc). */
static json_t *trace_of(const fixture *f, json_t **doc, const char *args)
{
    cli_child_result r = {0};
    cli_child_run(&r, "%s --trace %s", args, f->path);
    assert_true(cli_child_expect_status(&r, 0));
    cli_child_free(&r);
    json_error_t je;
    *doc = json_load_file(f->path, 0, &je);
    if (!*doc)
        print_error("%s:%d: %s\n", f->path, je.line, je.text);
    assert_non_null(*doc);
    json_t *ev = json_object_get(*doc, "traceEvents");
    assert_true(json_is_array(ev));
    assert_string_equal(json_string_value(json_object_get(*doc, "displayTimeUnit")), "ns");
    return ev;
}

static const char *ph(const json_t *e)
{
    return json_string_value(json_object_get(e, "ph"));
}

static int is_ph(const json_t *e, const char *p)
{
    return strcmp(ph(e), p) == 0;
}

static double num(const json_t *e, const char *key)
{
    return json_number_value(json_object_get(e, key));
}

static double arg(const json_t *e, const char *key)
{
    return json_number_value(json_object_get(json_object_get(e, "args"), key));
}

static const char *str(const json_t *e, const char *key)
{
    const char *s = json_string_value(json_object_get(e, key));
    return s ? s : "";
}

static size_t count_ph(const json_t *ev, const char *p)
{
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(ev, i, e) n += is_ph(e, p);
    return n;
}

/* The X event on (pid, tid) whose [ts, ts + dur] holds t, the one whose middle is closest to
 * t when several touch it, or NULL. */
static json_t *slice_at(const json_t *ev, double pid, double tid, double t)
{
    size_t i;
    json_t *e, *best = NULL;
    double gap = INFINITY;
    json_array_foreach(ev, i, e)
    {
        if (is_ph(e, "X") && num(e, "pid") == pid && num(e, "tid") == tid &&
            num(e, "ts") <= t + TOL_US && t <= num(e, "ts") + num(e, "dur") + TOL_US &&
            fabs(num(e, "ts") + 0.5 * num(e, "dur") - t) < gap) {
            best = e;
            gap = fabs(num(e, "ts") + 0.5 * num(e, "dur") - t);
        }
    }
    return best;
}

/* The "f" event of flow id, or NULL. */
static json_t *flow_finish(const json_t *ev, double id)
{
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e)
    {
        if (is_ph(e, "f") && num(e, "id") == id)
            return e;
    }
    return NULL;
}

typedef struct {
    double pid, tid, ts, end;
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_trace_slices_nest(void **state)
{
    json_t *doc = NULL;
    json_t *ev = trace_of(*state, &doc, "sim --pod " POD " --program " PROG);
    size_t ops = 0, n = 0, i;
    json_t *e;
    span *s = calloc(json_array_size(ev), sizeof *s);
    assert_non_null(s);
    json_array_foreach(ev, i, e)
    {
        if (!is_ph(e, "X"))
            continue;
        ops += strcmp(str(e, "cat"), "link") != 0;
        s[n++] = (span){num(e, "pid"), num(e, "tid"), num(e, "ts"), num(e, "ts") + num(e, "dur")};
    }
    assert_int_equal(ops, 40); /* 16 matmuls, 12 sends, 12 recvs */
    qsort(s, n, sizeof *s, cmp_span);
    double worst = 0;
    for (size_t k = 1; k < n; k++)
        if (s[k].pid == s[k - 1].pid && s[k].tid == s[k - 1].tid)
            worst = fmax(worst, s[k - 1].end - s[k].ts);
    print_message("largest overlap of two slices of one thread: %g us\n", worst);
    assert_true(worst <= TOL_US);
    free(s);
    json_decref(doc);
}

/* The metadata event `what` of thread tid of pid, or NULL. */
static json_t *thread_meta(const json_t *ev, double pid, double tid, const char *what)
{
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e)
    {
        if (is_ph(e, "M") && num(e, "pid") == pid && num(e, "tid") == tid &&
            strcmp(str(e, "name"), what) == 0)
            return e;
    }
    return NULL;
}

/* The sort index of the thread of pid called name (-1 if none). */
static double thread_sort(const json_t *ev, double pid, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e)
    {
        const json_t *args = json_object_get(e, "args");
        if (!is_ph(e, "M") || num(e, "pid") != pid || strcmp(str(e, "name"), "thread_name") ||
            strcmp(str(args, "name"), name))
            continue;
        const json_t *sort = thread_meta(ev, pid, num(e, "tid"), "thread_sort_index");
        return sort ? arg(sort, "sort_index") : -1;
    }
    return -1;
}

/* Network lanes sort with their core, links after the cores. */
static void test_trace_thread_order(void **state)
{
    json_t *doc = NULL;
    json_t *ev = trace_of(*state, &doc, "sim --pod " POD " --program " PROG);
    const double net = thread_sort(ev, 0, "core 0 net"), net2 = thread_sort(ev, 0, "core 0 net 2");
    const double next = thread_sort(ev, 0, "core 1 mxu");
    const double link = thread_sort(ev, 0, "link chip (0,0,0) +x -> (1,0,0)");
    print_message("sort: core 0 net %g, net 2 %g, core 1 mxu %g, link %g\n", net, net2, next,
                  link);
    assert_true(net >= 0 && net < net2 && net2 < next && next < link);
    json_decref(doc);
}

static void test_trace_dispatch_flows(void **state)
{
    json_t *doc = NULL;
    json_t *ev = trace_of(*state, &doc, "sim --pod " POD " --program " PROG);
    assert_int_equal(count_ph(ev, "s"), 12);
    assert_int_equal(count_ph(ev, "f"), 12);
    size_t i, j;
    json_t *s, *f;
    json_array_foreach(ev, i, s)
    {
        if (!is_ph(s, "s"))
            continue;
        int finishes = 0;
        json_array_foreach(ev, j, f)
        {
            if (!is_ph(f, "f") || num(f, "id") != num(s, "id"))
                continue;
            finishes++;
            assert_string_equal(str(f, "name"), str(s, "name"));
            assert_string_equal(str(f, "cat"), str(s, "cat"));
            assert_string_equal(str(f, "bp"), "e");
            const json_t *from = slice_at(ev, num(s, "pid"), num(s, "tid"), num(s, "ts"));
            const json_t *to = slice_at(ev, num(f, "pid"), num(f, "tid"), num(f, "ts"));
            assert_non_null(from);
            assert_non_null(to);
            assert_string_equal(str(from, "cat"), "send");
            assert_string_equal(str(to, "name"), "enc.1.moe.expert.wi");
            /* both ends at the middle of their slices */
            assert_true(fabs(num(from, "ts") + 0.5 * num(from, "dur") - num(s, "ts")) <= TOL_US);
            assert_true(fabs(num(to, "ts") + 0.5 * num(to, "dur") - num(f, "ts")) <= TOL_US);
            assert_int_equal((int)arg(to, "core"), (int)arg(from, "to"));
        }
        assert_int_equal(finishes, 1);
    }
    json_decref(doc);
}

/* Per util counter: values in [0, 1], the last one 0, and sum(value x interval) equal to the
 * union of the link's busy slices. */
static void test_trace_link_utilisation(void **state)
{
    json_t *doc = NULL;
    json_t *ev = trace_of(*state, &doc, "sim --pod " POD " --program " PROG " --trace-bins 50");
    json_t *area = json_object(), *last = json_object(), *busy = json_object();
    size_t i;
    json_t *e;
    double worst = 0, peak = 0;
    size_t points = 0;
    json_array_foreach(ev, i, e)
    {
        if (is_ph(e, "C")) {
            points++;
            const char *name = str(e, "name");
            assert_true(strncmp(name, "util link ", 10) == 0);
            const double v = arg(e, "busy_fraction");
            assert_true(v >= 0 && v <= 1);
            peak = fmax(peak, v);
            json_t *prev = json_object_get(last, name); /* [ts, value] of the previous point */
            if (prev) {
                const double a = json_number_value(json_object_get(area, name));
                const double t0 = json_number_value(json_array_get(prev, 0));
                const double v0 = json_number_value(json_array_get(prev, 1));
                json_object_set_new(area, name, json_real(a + v0 * (num(e, "ts") - t0)));
            }
            json_object_set_new(last, name, json_pack("[ff]", num(e, "ts"), v));
        } else if (is_ph(e, "X") && strcmp(str(e, "cat"), "link") == 0) {
            char key[128]; /* merged slices never overlap: their sum is the union */
            snprintf(key, sizeof key, "%d/%d", (int)num(e, "pid"), (int)num(e, "tid"));
            json_object_set_new(busy, key, json_real(json_number_value(json_object_get(busy, key)) +
                                                     num(e, "dur")));
        }
    }
    assert_true(peak > 0);
    const char *name;
    json_t *v;
    double total_area = 0, total_busy = 0;
    json_object_foreach(last, name, v)
    {
        assert_true(json_number_value(json_array_get(v, 1)) == 0); /* ends idle */
        total_area += json_number_value(json_object_get(area, name));
    }
    json_object_foreach(busy, name, v) total_busy += json_number_value(v);
    worst = fabs(total_area - total_busy);
    print_message("links: busy %.6f us, counters integrate to %.6f us (diff %g)\n", total_busy,
                  total_area, worst);
    assert_true(json_object_size(last) == json_object_size(busy));
    assert_true(worst <= 1e-9 * total_busy + TOL_US * (double)points); /* ts rounding */
    json_decref(area);
    json_decref(last);
    json_decref(busy);
    json_decref(doc);
}

static void test_trace_chip_filter(void **state)
{
    json_t *doc = NULL;
    json_t *ev = trace_of(*state, &doc, "sim --pod " POD " --program " PROG " --trace-chips 1");
    size_t i, x = 0;
    json_t *e;
    json_array_foreach(ev, i, e)
    {
        assert_int_equal((int)num(e, "pid"), 1);
        x += is_ph(e, "X") && strcmp(str(e, "cat"), "link") != 0;
    }
    assert_int_equal(x, 20);                 /* cores 2 and 3 */
    assert_int_equal(count_ph(ev, "s"), 2);  /* 2 -> 3 and 3 -> 2 */
    assert_int_equal(count_ph(ev, "f"), 2);
    json_decref(doc);
    ev = trace_of(*state, &doc, "sim --pod " POD " --program " PROG " --trace-chips 0-1,3");
    assert_int_equal(count_ph(ev, "s"), 12);
    json_decref(doc);
}

/* Ops of the selected layers only (links are kept). */
static size_t op_slices(const json_t *ev, const char *name_prefix)
{
    size_t i, n = 0;
    json_t *e;
    json_array_foreach(ev, i, e)
    {
        if (!is_ph(e, "X") || strcmp(str(e, "cat"), "link") == 0)
            continue;
        assert_true(strncmp(str(e, "name"), name_prefix, strlen(name_prefix)) == 0);
        n++;
    }
    return n;
}

static void test_trace_layer_filter(void **state)
{
    json_t *doc = NULL;
    json_t *ev = trace_of(*state, &doc, "sim --pod " POD " --program " PROG " --trace-layers 0");
    assert_int_equal(op_slices(ev, "enc.0.attn.q"), 4);
    assert_int_equal(count_ph(ev, "s"), 0);
    size_t i, links = 0;
    json_t *e;
    json_array_foreach(ev, i, e) links += is_ph(e, "X") && strcmp(str(e, "cat"), "link") == 0;
    assert_int_equal(links, 0); /* the messages come after layer 0's ops: cut away */
    json_decref(doc);
    ev = trace_of(*state, &doc,
                  "sim --pod " POD " --program " PROG " --trace-layers enc.1.moe.expert");
    assert_int_equal(op_slices(ev, "enc.1.moe.expert.w"), 8);
    assert_int_equal(count_ph(ev, "s"), 0); /* the sends are not selected */
    json_decref(doc);
    ev = trace_of(*state, &doc, "sim --pod " POD " --program " PROG " --trace-layers 1-1");
    assert_int_equal(op_slices(ev, "enc.1."), 36);
    assert_int_equal(count_ph(ev, "s"), 12);
    json_decref(doc);
}

static void test_trace_option_errors(void **state)
{
    const fixture *f = *state;
    cli_child_result r = {0};
    cli_child_run(&r, "sim --pod " POD " --program " PROG " --trace-chips 0");
    assert_true(cli_child_expect_status(&r, 2));
    assert_true(cli_child_expect_text(r.err, "need --trace FILE"));
    cli_child_rerun(&r, "sim --pod " POD " --program " PROG " --trace %s --trace-layers 3-1",
                    f->path);
    assert_true(cli_child_expect_status(&r, 2));
    assert_true(cli_child_expect_text(r.err, "--trace-layers: '3-1'"));
    cli_child_rerun(&r, "sim --pod " POD " --program " PROG " --trace %s --trace-chips 0,,1",
                    f->path);
    assert_true(cli_child_expect_status(&r, 2));
    cli_child_rerun(&r, "sim --pod " POD " --program " PROG " --trace %s --trace-chips 9",
                    f->path);
    assert_true(cli_child_expect_status(&r, 1));
    assert_true(cli_child_expect_text(r.err, "chip 9 is not in the pod (chips 0-3)"));
    assert_int_equal(access(f->path, F_OK), -1); /* a failed trace leaves no file */
    cli_child_rerun(&r, "estimate --run configs/runs/switch-tiny-v3-8.yaml --trace-layers 1");
    assert_true(cli_child_expect_status(&r, 2));
    cli_child_free(&r);
}

/* A generated step: flows from the lowered dispatch messages, chip filter honoured; and from
 * the unlowered (priced) all-to-alls of --comm isolated. */
static void test_trace_estimate(void **state)
{
    json_t *doc = NULL;
    json_t *ev = trace_of(*state, &doc,
                          "estimate --run configs/runs/switch-tiny-v3-8.yaml --trace-chips 0");
    const size_t flows = count_ph(ev, "s");
    print_message("estimate switch-tiny-v3-8, chip 0: %zu dispatch flows\n", flows);
    assert_true(flows > 0);
    assert_int_equal(count_ph(ev, "f"), flows);
    assert_true(count_ph(ev, "C") > 0);
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e) assert_int_equal((int)num(e, "pid"), 0);
    json_decref(doc);

    /* collectives kept as priced ops: each member's all-to-all slice flows to its own experts */
    ev = trace_of(*state, &doc, "estimate --run configs/runs/switch-tiny-v3-8.yaml --comm isolated");
    size_t coll = 0, n = 0;
    json_array_foreach(ev, i, e)
    {
        coll += is_ph(e, "X") && strcmp(str(e, "cat"), "collective") == 0;
        if (!is_ph(e, "s"))
            continue;
        n++;
        const json_t *from = slice_at(ev, num(e, "pid"), num(e, "tid"), num(e, "ts"));
        assert_non_null(from);
        assert_string_equal(str(from, "cat"), "collective");
        const json_t *f = flow_finish(ev, num(e, "id"));
        assert_non_null(f);
        const json_t *to = slice_at(ev, num(f, "pid"), num(f, "tid"), num(f, "ts"));
        assert_non_null(to);
        assert_non_null(strstr(str(to, "name"), "expert"));
        assert_int_equal((int)arg(to, "core"), (int)arg(from, "core"));
    }
    print_message("estimate --comm isolated: %zu collective slices, %zu flows\n", coll, n);
    assert_true(coll > 0 && n > 0);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_trace_slices_nest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_thread_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_dispatch_flows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_link_utilisation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_chip_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_layer_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_option_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trace_estimate, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
