/* This file implements the detail of an estimate (cli/estimate_detail.h): the step-time
 * breakdown of the critical core by op class, collective kind and layer (a sweep over the
 * core's op windows), every link's load with chip coordinates, the expert load of each Switch
 * layer from the routing model, and roofline points of the critical core's ops.
 *
 * Breakdown sweep: the core's ops give start/end events; between two consecutive event times
 * the running compute ops (matmul, vector, hbm) share the interval equally, or, when none
 * runs, the running sends/recvs do, or it is idle. Shares are credited to (class, layer).
 * Zero-length ops are skipped (they hold no time).
 *
 * Invariants: the schema in the header; the detail depends only on its inputs.
 */
#include "cli/estimate_detail.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/coll.h"
#include "sim/timing.h"

enum {
    CLS_MATMUL = 0,
    CLS_VECTOR,
    CLS_HBM,
    CLS_COMM0,                                  /* + sim_coll_kind */
    CLS_P2P = CLS_COMM0 + SIM_COLL_KIND_COUNT,  /* the program's own sends/recvs */
    CLS_COUNT
};
static const char *const compute_names[] = {"matmul", "vector", "hbm"};

/* ---- collective kinds ------------------------------------------------------------------- */

ss_status cli_detail_coll_kinds(cli_coll_kinds *t, const sim_program *generated, ss_err *err)
{
    memset(t, 0, sizeof *t);
    int32_t maxid = -1;
    for (int32_t i = 0; i < generated->nops; i++) {
        const sim_prog_op *op = sim_program_op(generated, i);
        if (op->kind == SIM_OP_COLLECTIVE && op->coll.id > maxid)
            maxid = op->coll.id;
    }
    t->n = maxid + 1;
    t->kind = malloc((size_t)t->n + 1);
    if (!t->kind)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for %d collective kinds", t->n);
    memset(t->kind, -1, (size_t)t->n + 1);
    for (int32_t i = 0; i < generated->nops; i++) {
        const sim_prog_op *op = sim_program_op(generated, i);
        if (op->kind == SIM_OP_COLLECTIVE)
            t->kind[op->coll.id] = (int8_t)op->coll.kind;
    }
    return SS_OK;
}

void cli_detail_coll_kinds_free(cli_coll_kinds *t)
{
    free(t->kind);
    memset(t, 0, sizeof *t);
}

/* ---- helpers ----------------------------------------------------------------------------- */

static void set_real(json_t *o, const char *key, double v)
{
    json_object_set_new(o, key, json_real(v));
}

static void set_int(json_t *o, const char *key, long long v)
{
    json_object_set_new(o, key, json_integer((json_int_t)v));
}

static int nlayers_of(const cli_detail_in *in)
{
    return in->run->model.encoder_layers + in->run->model.decoder_layers;
}

/* Slot of an op's layer in the per-layer arrays: the layer, or nlayers for "other". */
static int layer_slot(const cli_detail_in *in, int32_t layer)
{
    const int nl = nlayers_of(in);
    return layer >= 0 && layer < nl ? layer : nl;
}

/* As model/stepgen.c: block b of a stack is a Switch layer when b % every == every - 1. */
static int is_switch_block(const model_cfg *mc, int block)
{
    return mc->has_switch && mc->sw.every > 0 && block % mc->sw.every == mc->sw.every - 1;
}

/* "enc.3", "dec.0" or "other" for slot (a layer index or nlayers). */
static void layer_name(const cli_detail_in *in, int slot, char *buf, size_t cap, int *sw)
{
    const int le = in->run->model.encoder_layers;
    *sw = 0;
    if (slot >= nlayers_of(in)) {
        snprintf(buf, cap, "other");
        return;
    }
    const int dec = slot >= le, block = dec ? slot - le : slot;
    *sw = is_switch_block(&in->run->model, block);
    snprintf(buf, cap, "%s.%d", dec ? "dec" : "enc", block);
}

/* The breakdown class of op id. */
static int class_of(const cli_detail_in *in, const sim_prog_op *op)
{
    switch ((sim_op_kind)op->kind) {
    case SIM_OP_MATMUL: return CLS_MATMUL;
    case SIM_OP_VECTOR: return CLS_VECTOR;
    case SIM_OP_HBM: return CLS_HBM;
    case SIM_OP_SEND:
    case SIM_OP_RECV: {
        const int64_t id = (int64_t)op->xfer.tag - COLL_TAG_BASE;
        if (in->coll && id >= 0 && id < in->coll->n && in->coll->kind[id] >= 0)
            return CLS_COMM0 + in->coll->kind[id];
        return CLS_P2P;
    }
    case SIM_OP_COLLECTIVE: /* kept by estimate --comm isolated: priced as one op */
        return CLS_COMM0 + (int)op->coll.kind;
    default: return CLS_P2P;
    }
}

/* ---- breakdown --------------------------------------------------------------------------- */

typedef struct {
    double t;
    int32_t op; /* index into the core's op list */
    int start;  /* 1 start, 0 end */
} event;

static int cmp_event(const void *a, const void *b)
{
    const event *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    if (x->start != y->start)
        return x->start - y->start; /* ends first */
    return (x->op > y->op) - (x->op < y->op);
}

/* A set of running ops with O(1) insert and remove (pos[] holds each op's index). */
typedef struct {
    int32_t *v, n;
} opset;

static void opset_add(opset *s, int32_t *pos, int32_t op)
{
    pos[op] = s->n;
    s->v[s->n++] = op;
}

static void opset_remove(opset *s, int32_t *pos, int32_t op)
{
    const int32_t i = pos[op], last = s->v[--s->n];
    s->v[i] = last;
    pos[last] = i;
}

typedef struct {
    double *acc; /* [(nlayers + 1) * CLS_COUNT] */
    double idle;
} tally;

/* Credits dt equally to the ops of s. */
static void credit(tally *ty, const opset *s, const int *cls, const int *slot, double dt)
{
    const double share = dt / s->n;
    for (int32_t i = 0; i < s->n; i++) {
        const int32_t o = s->v[i];
        ty->acc[(size_t)slot[o] * CLS_COUNT + (size_t)cls[o]] += share;
    }
}

static ss_status sweep(tally *ty, const cli_detail_in *in, ss_err *err)
{
    int32_t n = 0;
    const int32_t *ops = sim_program_core_ops(in->prog, in->critical_core, &n);
    event *ev = malloc(sizeof *ev * (2 * (size_t)n + 1));
    int *cls = malloc(sizeof *cls * ((size_t)n + 1));
    int *slot = malloc(sizeof *slot * ((size_t)n + 1));
    int32_t *pos = malloc(sizeof *pos * ((size_t)n + 1));
    opset comp = {malloc(sizeof(int32_t) * ((size_t)n + 1)), 0};
    opset xfer = {malloc(sizeof(int32_t) * ((size_t)n + 1)), 0};
    ss_status st = SS_OK;
    if (!ev || !cls || !slot || !pos || !comp.v || !xfer.v) {
        st = ss_err_set(err, SS_ERR_NOMEM, "out of memory for the time breakdown");
        goto done;
    }
    size_t ne = 0;
    for (int32_t i = 0; i < n; i++) {
        const sim_prog_op *op = sim_program_op(in->prog, ops[i]);
        const double s = in->res->op_start_s[ops[i]], e = in->res->op_end_s[ops[i]];
        cls[i] = class_of(in, op);
        slot[i] = layer_slot(in, op->layer);
        if (e > s) {
            ev[ne++] = (event){s, i, 1};
            ev[ne++] = (event){e, i, 0};
        }
    }
    qsort(ev, ne, sizeof *ev, cmp_event);
    double t = 0;
    for (size_t k = 0; k < ne; k++) {
        const double dt = ev[k].t - t;
        if (dt > 0) {
            if (comp.n > 0)
                credit(ty, &comp, cls, slot, dt);
            else if (xfer.n > 0)
                credit(ty, &xfer, cls, slot, dt);
            else
                ty->idle += dt;
            t = ev[k].t;
        }
        opset *s = cls[ev[k].op] < CLS_COMM0 ? &comp : &xfer;
        if (ev[k].start)
            opset_add(s, pos, ev[k].op);
        else
            opset_remove(s, pos, ev[k].op);
    }
    if (in->res->makespan_s > t)
        ty->idle += in->res->makespan_s - t;
done:
    free(ev);
    free(cls);
    free(slot);
    free(pos);
    free(comp.v);
    free(xfer.v);
    return st;
}

/* {"compute": {...}, "exposed_comm": {...}} of one row of acc. */
static void classes_json(json_t *o, const double *row)
{
    json_t *c = json_object(), *x = json_object();
    for (int k = CLS_MATMUL; k < CLS_COMM0; k++)
        set_real(c, compute_names[k], row[k]);
    for (int k = 0; k < SIM_COLL_KIND_COUNT; k++)
        set_real(x, sim_coll_kind_name((sim_coll_kind)k), row[CLS_COMM0 + k]);
    set_real(x, "p2p", row[CLS_P2P]);
    json_object_set_new(o, "compute", c);
    json_object_set_new(o, "exposed_comm", x);
}

static ss_status breakdown_json(json_t **out, const cli_detail_in *in, ss_err *err)
{
    const int slots = nlayers_of(in) + 1;
    tally ty = {calloc((size_t)slots * CLS_COUNT, sizeof(double)), 0};
    if (!ty.acc)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the time breakdown");
    ss_status st = sweep(&ty, in, err);
    if (st != SS_OK) {
        free(ty.acc);
        return st;
    }
    double total[CLS_COUNT] = {0};
    json_t *layers = json_array();
    for (int s = 0; s < slots; s++) {
        const double *row = ty.acc + (size_t)s * CLS_COUNT;
        for (int k = 0; k < CLS_COUNT; k++)
            total[k] += row[k];
        char name[32];
        int sw = 0;
        layer_name(in, s, name, sizeof name, &sw);
        json_t *l = json_object();
        set_int(l, "layer", s < slots - 1 ? s : -1);
        json_object_set_new(l, "name", json_string(name));
        set_int(l, "switch", sw);
        classes_json(l, row);
        json_array_append_new(layers, l);
    }
    json_t *tot = json_object();
    classes_json(tot, total);
    set_real(tot, "idle", ty.idle);
    json_t *b = json_object();
    set_real(b, "step_seconds", in->res->makespan_s);
    json_object_set_new(b, "total", tot);
    json_object_set_new(b, "layers", layers);
    free(ty.acc);
    *out = b;
    return SS_OK;
}

/* ---- links ------------------------------------------------------------------------------- */

static json_t *coords_json(const sim_topo *t, int chip)
{
    int c[SIM_TOPO_MAX_DIMS];
    sim_topo_coords(t, chip, c);
    json_t *a = json_array();
    for (int d = 0; d < SIM_TOPO_MAX_DIMS; d++)
        json_array_append_new(a, json_integer(c[d]));
    return a;
}

static json_t *topology_json(const cli_detail_in *in)
{
    const sim_topo *t = in->topo;
    json_t *o = json_object(), *dims = json_array(), *wrap = json_array();
    for (int d = 0; d < SIM_TOPO_MAX_DIMS; d++) {
        json_array_append_new(dims, json_integer(t->dims[d]));
        json_array_append_new(wrap, json_integer(t->wrap[d]));
    }
    json_object_set_new(o, "dims", dims);
    json_object_set_new(o, "wrap", wrap);
    set_int(o, "cores_per_chip", t->cores_per_chip);
    set_int(o, "chips", t->nchips);
    set_real(o, "link_bandwidth_bytes_per_s", in->run->pod.chip.link_gbps * 1e9);
    return o;
}

static json_t *links_json(const cli_detail_in *in)
{
    static const char *const dim_names[] = {"x", "y", "z"};
    const sim_result *r = in->res;
    json_t *a = json_array();
    for (int32_t l = 0; l < r->nlinks; l++) {
        const sim_topo_link k = sim_topo_link_get(in->topo, l);
        json_t *o = json_object();
        set_int(o, "id", l);
        json_object_set_new(o, "src", coords_json(in->topo, k.src_chip));
        json_object_set_new(o, "dst", coords_json(in->topo, k.dst_chip));
        json_object_set_new(o, "dim", json_string(dim_names[k.dim]));
        json_object_set_new(o, "dir", json_string(k.dir == SIM_TOPO_PLUS ? "+" : "-"));
        set_int(o, "bytes", (long long)r->link_bytes[l]);
        set_real(o, "busy_s", r->link_busy_s[l]);
        set_real(o, "utilization", r->makespan_s > 0 ? r->link_busy_s[l] / r->makespan_s : 0);
        json_array_append_new(a, o);
    }
    return a;
}

/* ---- expert load ------------------------------------------------------------------------- */

static json_t *counts_json(const int64_t *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_integer((json_int_t)v[i]));
    return a;
}

/* One Switch layer's entry; slot is its layer index. */
static ss_status switch_layer_json(json_t *layers, const cli_detail_in *in, int swi, int slot,
                                   int64_t *counts, int64_t *kept, ss_err *err)
{
    const model_plan *p = in->plan;
    const int E = p->num_experts, dec = slot >= in->run->model.encoder_layers;
    const int64_t S = dec ? p->group_tokens_dec : p->group_tokens_enc;
    const int64_t K = dec ? p->capacity_dec : p->capacity_enc;
    const int64_t routed = (int64_t)in->run->model.sw.top_k * S;
    ss_status st = model_routing_counts(in->routing, swi, E, routed, K, counts, kept, err);
    if (st != SS_OK)
        return st;
    int64_t k_sum = 0;
    for (int e = 0; e < E; e++)
        k_sum += kept[e];
    char name[32];
    int sw = 0;
    layer_name(in, slot, name, sizeof name, &sw);
    json_t *o = json_object();
    set_int(o, "switch_layer", swi);
    set_int(o, "layer", slot);
    json_object_set_new(o, "name", json_string(name));
    set_int(o, "group_tokens", S);
    set_int(o, "routed", routed);
    set_int(o, "capacity", K);
    json_object_set_new(o, "tokens_per_expert", counts_json(counts, E));
    json_object_set_new(o, "kept_per_expert", counts_json(kept, E));
    set_real(o, "dropped_fraction", routed > 0 ? (double)(routed - k_sum) / (double)routed : 0);
    json_array_append_new(layers, o);
    return SS_OK;
}

static ss_status expert_load_json(json_t **out, const cli_detail_in *in, ss_err *err)
{
    *out = NULL;
    const int E = in->plan->num_experts;
    if (E <= 0 || !in->run->model.has_switch)
        return SS_OK;
    int64_t *counts = malloc(sizeof(int64_t) * 2 * (size_t)E);
    if (!counts)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for %d expert counts", E);
    json_t *layers = json_array();
    ss_status st = SS_OK;
    const int le = in->run->model.encoder_layers;
    for (int slot = 0, swi = 0; slot < nlayers_of(in) && st == SS_OK; slot++) {
        if (!is_switch_block(&in->run->model, slot >= le ? slot - le : slot))
            continue;
        st = switch_layer_json(layers, in, swi++, slot, counts, counts + E, err);
    }
    free(counts);
    if (st != SS_OK) {
        json_decref(layers);
        return st;
    }
    json_t *o = json_object();
    set_int(o, "num_experts", E);
    set_int(o, "top_k", in->run->model.sw.top_k);
    json_object_set_new(o, "layers", layers);
    *out = o;
    return SS_OK;
}

/* ---- roofline ---------------------------------------------------------------------------- */

typedef struct {
    char name[SIM_PROG_MAX_TEXT + 16];
    int kind; /* SIM_OP_MATMUL or SIM_OP_VECTOR */
    long long ops;
    double flops, bytes, seconds;
} rpoint;

/* The label without "enc.N." / "dec.N." and ".remat" into buf. */
static void label_stem(const char *label, char *buf, size_t cap)
{
    const char *s = label;
    if ((strncmp(s, "enc.", 4) == 0 || strncmp(s, "dec.", 4) == 0)) {
        const char *p = s + 4;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p > s + 4 && *p == '.')
            s = p + 1;
    }
    snprintf(buf, cap, "%s", *s ? s : "unlabelled");
    char *r = strstr(buf, ".remat");
    if (r)
        memmove(r, r + 6, strlen(r + 6) + 1);
}

/* FLOPs and HBM bytes of a matmul or vector op, as the timing models price them. */
static ss_status op_cost(const sim_prog_op *op, const sim_chip *chip, double *flops,
                         double *bytes, ss_err *err)
{
    if (op->kind == SIM_OP_MATMUL) {
        sim_matmul_op m = sim_matmul_op_default(op->matmul.m, op->matmul.k, op->matmul.n);
        m.operands = op->matmul.dtype;
        sim_matmul_timing t;
        ss_status st = sim_matmul_time(&t, chip, &m, err);
        *flops = (double)t.flops;
        *bytes = (double)t.bytes_read + (double)t.bytes_written;
        return st;
    }
    const sim_vector_op v = {op->vector.kind, op->vector.elements, op->vector.row_len,
                             op->vector.dtype};
    sim_vector_timing t;
    ss_status st = sim_vector_time(&t, chip, &v, err);
    *flops = (double)t.flops;
    *bytes = (double)t.bytes_read + (double)t.bytes_written;
    return st;
}

/* The point of (kind, label) in pts (appending a new one); -1 when pts is full. */
static int point_of(rpoint *pts, int *npts, int cap, int kind, const char *label)
{
    char stem[SIM_PROG_MAX_TEXT + 1];
    label_stem(label, stem, sizeof stem);
    char name[sizeof pts[0].name];
    snprintf(name, sizeof name, "%s %s", kind == SIM_OP_MATMUL ? "matmul" : "vector", stem);
    for (int i = 0; i < *npts; i++)
        if (strcmp(pts[i].name, name) == 0)
            return i;
    if (*npts == cap)
        return -1;
    rpoint *p = &pts[(*npts)++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->kind = kind;
    return *npts - 1;
}

static ss_status gather_points(rpoint *pts, int *npts, int cap, const cli_detail_in *in,
                               ss_err *err)
{
    const int32_t nstr = sim_program_nstrings(in->prog);
    int *cache = malloc(sizeof(int) * 2 * ((size_t)nstr + 1)); /* [label][matmul|vector] */
    if (!cache)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the roofline");
    for (size_t i = 0; i < 2 * ((size_t)nstr + 1); i++)
        cache[i] = -2;
    int32_t n = 0;
    const int32_t *ops = sim_program_core_ops(in->prog, in->critical_core, &n);
    ss_status st = SS_OK;
    for (int32_t i = 0; i < n && st == SS_OK; i++) {
        const sim_prog_op *op = sim_program_op(in->prog, ops[i]);
        if (op->kind != SIM_OP_MATMUL && op->kind != SIM_OP_VECTOR)
            continue;
        int *c = &cache[2 * (size_t)op->label + (op->kind == SIM_OP_VECTOR)];
        if (*c == -2)
            *c = point_of(pts, npts, cap, op->kind, sim_program_string(in->prog, op->label));
        if (*c < 0)
            continue; /* more stems than cap: left out */
        double f = 0, b = 0;
        st = op_cost(op, &in->run->pod.chip, &f, &b, err);
        rpoint *p = &pts[*c];
        p->ops++;
        p->flops += f;
        p->bytes += b;
        p->seconds += in->res->op_end_s[ops[i]] - in->res->op_start_s[ops[i]];
    }
    free(cache);
    return st;
}

enum { ROOFLINE_MAX_POINTS = 256 };

static ss_status roofline_json(json_t **out, const cli_detail_in *in, ss_err *err)
{
    rpoint *pts = malloc(sizeof *pts * ROOFLINE_MAX_POINTS);
    if (!pts)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for the roofline");
    int npts = 0;
    ss_status st = gather_points(pts, &npts, ROOFLINE_MAX_POINTS, in, err);
    if (st != SS_OK) {
        free(pts);
        return st;
    }
    const sim_chip *chip = &in->run->pod.chip;
    json_t *o = json_object(), *a = json_array();
    set_real(o, "core_peak_flops", sim_chip_core_peak_flops(chip));
    set_real(o, "core_hbm_bytes_per_s", sim_timing_core_hbm_bytes_per_s(chip));
    set_real(o, "chip_peak_flops", sim_chip_peak_flops(chip));
    set_real(o, "chip_hbm_bytes_per_s", chip->hbm_gbps * 1e9);
    set_real(o, "mxu_efficiency", sim_chip_mxu_efficiency(chip));
    for (int i = 0; i < npts; i++) {
        const rpoint *p = &pts[i];
        if (!(p->flops > 0 && p->bytes > 0 && p->seconds > 0))
            continue; /* no place on log axes */
        json_t *q = json_object();
        json_object_set_new(q, "name", json_string(p->name));
        json_object_set_new(q, "kind", json_string(p->kind == SIM_OP_MATMUL ? "matmul" : "vector"));
        set_int(q, "ops", p->ops);
        set_real(q, "flops", p->flops);
        set_real(q, "bytes", p->bytes);
        set_real(q, "seconds", p->seconds);
        set_real(q, "intensity", p->flops / p->bytes);
        set_real(q, "flops_per_s", p->flops / p->seconds);
        json_array_append_new(a, q);
    }
    json_object_set_new(o, "points", a);
    free(pts);
    *out = o;
    return SS_OK;
}

/* ---- entry points ------------------------------------------------------------------------ */

ss_status cli_detail_json(json_t **out, const cli_detail_in *in, ss_err *err)
{
    *out = NULL;
    SS_ASSERT(in->res->op_start_s && in->res->op_end_s);
    json_t *d = json_object(), *part = NULL;
    set_int(d, "critical_core", in->critical_core);
    ss_status st = breakdown_json(&part, in, err);
    if (st == SS_OK) {
        json_object_set_new(d, "breakdown", part);
        json_object_set_new(d, "topology", topology_json(in));
        json_object_set_new(d, "links", links_json(in));
        st = expert_load_json(&part, in, err);
    }
    if (st == SS_OK && part)
        json_object_set_new(d, "expert_load", part);
    if (st == SS_OK)
        st = roofline_json(&part, in, err);
    if (st == SS_OK)
        json_object_set_new(d, "roofline", part);
    if (st != SS_OK) {
        json_decref(d);
        return st;
    }
    *out = d;
    return SS_OK;
}

static void set_new_if_missing(json_t *o, const char *key, json_t *v)
{
    if (json_object_get(o, key))
        json_decref(v);
    else
        json_object_set_new(o, key, v);
}

void cli_detail_add_scaling(json_t *result, const run_cfg *run, const model_plan *plan,
                            const sim_topo *topo)
{
    const sim_chip *c = &run->pod.chip;
    set_new_if_missing(result, "num_experts", json_integer(plan->num_experts));
    set_new_if_missing(result, "chips", json_integer(topo->nchips));
    set_new_if_missing(result, "link_bandwidth_bytes_per_s", json_real(c->link_gbps * 1e9));
    set_new_if_missing(result, "hbm_bandwidth_bytes_per_s", json_real(c->hbm_gbps * 1e9));
    set_new_if_missing(result, "chip_peak_flops", json_real(sim_chip_peak_flops(c)));
}
