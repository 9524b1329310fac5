/* This file implements the pricing of collectives in isolation (coll_price.h): the program's
 * collective instances are grouped by signature, the first instance of each signature is
 * copied alone into a program of the same cores, lowered and simulated, and every instance
 * points at its signature's price.
 *
 * Signature: an int32 key [kind, matrix id, algorithm hint id, bytes (two words), p, box flag,
 * box extents (COLL_GRID_DIMS), then per rank its core after the translation that brings the
 * first member's chip to the canonical origin] (see coll_price.h for which translations). Two
 * instances with equal keys run the same schedule on translated cores and routes, so they
 * take the same time and load translated links (sim_result_add_collective moves the links).
 * Keys are compared after a 64-bit FNV-1a hash.
 *
 * Parallelism: the signatures are priced by up to PRICE_THREADS threads (no more than the
 * online CPUs), each taking the next unpriced signature; every price is computed alone, so the
 * result does not depend on the threads. On failure the error of the lowest failing signature
 * is reported. (The SystemC engine forks from a worker thread; glibc's fork keeps malloc and
 * stdio usable in the child.)
 *
 * Step-wise bound (analytic engine only): the representative's schedule is built again as the
 * lowering builds it (same desc, hint or auto choice), every message of a step is routed and
 * its bytes added to the links it crosses, and the bound is the sum over steps of the busiest
 * link's bytes / link bandwidth (the engines' link model has no per-packet overhead, so this
 * equals the step's largest per-link busy time). The price becomes max(makespan, bound); the
 * link loads stay the simulated ones.
 *
 * Invariants: every collective id of the program gets a price and the origin chip of its
 * group's first member; prices are in order of first appearance (by collective id); an
 * analytic price is never below its step-wise bound.
 */
#include "collectives/coll_price.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { PRICE_THREADS = 8 };

/* A distinct signature: its key, hash and the price index. */
typedef struct {
    int32_t *key;
    size_t nkey;
    uint64_t hash;
} signature;

typedef struct {
    const sim_program *p;
    const sim_topo *topo;
    signature *sig; /* [nprices] */
    int32_t *rep;   /* [nprices] representative op of each signature */
    int32_t *key;   /* scratch key of the instance being classified */
    size_t key_cap;
} classifier;

enum { KEY_HEAD = 7 + COLL_GRID_DIMS };

static uint64_t fnv(const int32_t *k, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint32_t)k[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The canonical shift of each dimension for a group whose first member's chip has coordinates
 * first: the whole coordinate along wrapped dimensions of odd size, its even part along
 * wrapped dimensions of even size, nothing along dimensions without wraparound. */
static void origin_shift(const sim_topo *t, const int first[SIM_TOPO_MAX_DIMS],
                         int shift[SIM_TOPO_MAX_DIMS])
{
    for (int d = 0; d < SIM_TOPO_MAX_DIMS; d++) {
        const int wraps = t->wrap[d] && t->dims[d] >= 2;
        shift[d] = !wraps ? 0 : t->dims[d] % 2 ? first[d] : first[d] - first[d] % 2;
    }
}

/* Fills L->key with op's signature key; returns its length, or 0 out of memory. */
static size_t make_key(classifier *L, const sim_prog_op *op)
{
    int32_t n = 0;
    const int32_t *cores = sim_program_group(L->p, op->coll.group, &n);
    const size_t len = KEY_HEAD + (size_t)n;
    if (len > L->key_cap) {
        int32_t *k = realloc(L->key, len * sizeof *k);
        if (!k)
            return 0;
        L->key = k;
        L->key_cap = len;
    }
    const sim_topo *t = L->topo;
    int ext[COLL_GRID_DIMS] = {0}, first[SIM_TOPO_MAX_DIMS], shift[SIM_TOPO_MAX_DIMS];
    const int box = coll_group_grid(t, cores, n, ext);
    int32_t *k = L->key;
    k[0] = op->coll.kind;
    k[1] = op->coll.matrix;
    k[2] = op->coll.algo;
    k[3] = (int32_t)(uint32_t)op->coll.bytes;
    k[4] = (int32_t)(uint32_t)(op->coll.bytes >> 32);
    k[5] = n;
    k[6] = box;
    for (int d = 0; d < COLL_GRID_DIMS; d++)
        k[7 + d] = box ? ext[d] : 0;
    sim_topo_coords(t, sim_topo_core_chip(t, cores[0]), first);
    origin_shift(t, first, shift);
    for (int32_t r = 0; r < n; r++) {
        int c[SIM_TOPO_MAX_DIMS];
        sim_topo_coords(t, sim_topo_core_chip(t, cores[r]), c);
        for (int d = 0; d < SIM_TOPO_MAX_DIMS; d++)
            c[d] = (c[d] - shift[d] + t->dims[d]) % t->dims[d];
        k[KEY_HEAD + r] =
            sim_topo_core_id(t, sim_topo_chip(t, c), sim_topo_core_local(t, cores[r]));
    }
    return len;
}

/* The price index of op's signature, adding a new signature (with op as its representative)
 * when it is the first; -1 out of memory. */
static int32_t classify(classifier *L, coll_prices *out, int32_t opid)
{
    const size_t len = make_key(L, sim_program_op(L->p, opid));
    if (len == 0)
        return -1;
    const uint64_t h = fnv(L->key, len);
    for (int32_t i = 0; i < out->nprices; i++)
        if (L->sig[i].hash == h && L->sig[i].nkey == len &&
            memcmp(L->sig[i].key, L->key, len * sizeof *L->key) == 0)
            return i;
    const int32_t i = out->nprices;
    int32_t *copy = malloc(len * sizeof *copy);
    if (!copy)
        return -1;
    memcpy(copy, L->key, len * sizeof *copy);
    L->sig[i] = (signature){copy, len, h};
    L->rep[i] = opid;
    out->nprices++;
    return i;
}

/* Sizes the per-id tables: nids = largest collective id + 1. */
static ss_status alloc_tables(coll_prices *out, const sim_program *p, ss_err *err)
{
    int32_t nids = 0;
    for (int32_t i = 0; i < p->nops; i++) {
        const sim_prog_op *op = sim_program_op(p, i);
        if (op->kind == SIM_OP_COLLECTIVE)
            nids = op->coll.id + 1 > nids ? op->coll.id + 1 : nids;
    }
    out->table.nids = nids;
    out->price_of = malloc(((size_t)nids + 1) * sizeof *out->price_of);
    out->origin_of = malloc(((size_t)nids + 1) * sizeof *out->origin_of);
    out->prices = calloc((size_t)nids + 1, sizeof *out->prices); /* distinct <= ids */
    out->bound_s = calloc((size_t)nids + 1, sizeof *out->bound_s);
    out->raised = calloc((size_t)nids + 1, sizeof *out->raised);
    if (!out->price_of || !out->origin_of || !out->prices || !out->bound_s || !out->raised)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory pricing %d collectives", (int)nids);
    for (int32_t k = 0; k < nids; k++)
        out->price_of[k] = out->origin_of[k] = -1;
    return SS_OK;
}

/* price_of and origin_of of every collective id; L->rep lists the representatives. */
static ss_status classify_all(classifier *L, coll_prices *out, ss_err *err)
{
    const sim_program *p = L->p;
    for (int32_t i = 0; i < p->nops; i++) {
        const sim_prog_op *op = sim_program_op(p, i);
        if (op->kind != SIM_OP_COLLECTIVE || out->price_of[op->coll.id] >= 0)
            continue;
        int32_t n = 0;
        const int32_t *cores = sim_program_group(p, op->coll.group, &n);
        for (int32_t r = 0; r < n; r++)
            if (cores[r] >= sim_topo_ncores(L->topo))
                return ss_err_set(err, SS_ERR_RANGE,
                                  "op %d: collective %d: core %d is outside the pod's %d cores",
                                  (int)i, (int)op->coll.id, (int)cores[r],
                                  sim_topo_ncores(L->topo));
        const int32_t k = classify(L, out, i);
        if (k < 0)
            return ss_err_set(err, SS_ERR_NOMEM, "out of memory classifying collectives");
        out->price_of[op->coll.id] = k;
        out->origin_of[op->coll.id] = sim_topo_core_chip(L->topo, cores[0]);
    }
    return SS_OK;
}

/* A program of p's cores holding only collective op rep (one op per member, no deps). */
static ss_status isolate(sim_program *iso, const sim_program *p, int32_t rep, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(p, rep);
    ss_status st = sim_program_init(iso, p->ncores, err);
    if (st != SS_OK)
        return st;
    int32_t n = 0, r = 0;
    const int32_t *cores = sim_program_group(p, op->coll.group, &n);
    sim_prog_coll c = op->coll;
    c.id = 0;
    c.group = sim_program_add_group(iso, cores, n);
    c.algo = sim_program_intern(iso, sim_program_string(p, op->coll.algo));
    if (op->coll.matrix >= 0) {
        const uint64_t *m = sim_program_matrix(p, op->coll.matrix, &r);
        c.matrix = sim_program_add_matrix(iso, m, r);
    }
    for (int32_t k = 0; k < n; k++)
        sim_program_add_collective(iso, cores[k], 0, &c, NULL, 0);
    st = sim_program_status(iso, err);
    if (st != SS_OK)
        sim_program_free(iso);
    return st;
}

/* The sparse link loads (and, if recorded, the busy intervals) of an isolated run. */
static ss_status keep_loads(sim_coll_price *pr, const sim_result *r, ss_err *err)
{
    int32_t used = 0;
    for (int32_t l = 0; l < r->nlinks; l++)
        used += r->link_packets[l] > 0;
    sim_coll_link_load *loads = malloc(((size_t)used + 1) * sizeof *loads);
    sim_link_interval *iv = malloc((r->nlink_intervals + 1) * sizeof *iv);
    if (!loads || !iv) {
        free(loads);
        free(iv);
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory keeping a collective's link loads");
    }
    used = 0;
    for (int32_t l = 0; l < r->nlinks; l++)
        if (r->link_packets[l] > 0)
            loads[used++] = (sim_coll_link_load){l, r->link_bytes[l], r->link_packets[l],
                                                 r->link_busy_s[l], r->link_peak_queue[l]};
    if (r->nlink_intervals)
        memcpy(iv, r->link_intervals, r->nlink_intervals * sizeof *iv);
    pr->links = loads;
    pr->nlinks = used;
    pr->intervals = iv;
    pr->nintervals = r->nlink_intervals;
    pr->seconds = r->makespan_s;
    return SS_OK;
}

/* The representative op's schedule, built as coll_program_lower builds it. */
static ss_status rebuild_schedule(coll_schedule *s, const sim_program *p, int32_t rep,
                                  const sim_topo *topo, const coll_cost *cost, ss_err *err)
{
    const sim_prog_coll *c = &sim_program_op(p, rep)->coll;
    int32_t n = 0, r = 0;
    const int32_t *cores = sim_program_group(p, c->group, &n);
    const uint64_t *matrix = c->matrix >= 0 ? sim_program_matrix(p, c->matrix, &r) : NULL;
    const coll_desc d = {(sim_coll_kind)c->kind, n, c->bytes, matrix, 1, topo, cores};
    coll_algo a;
    if (coll_algo_parse(sim_program_string(p, c->algo), &a) != 0)
        return ss_err_set(err, SS_ERR_RANGE, "unknown algorithm hint '%s'",
                          sim_program_string(p, c->algo));
    return a == COLL_ALGO_AUTO ? coll_schedule_build_auto(s, &d, cost, err)
                               : coll_schedule_build(s, &d, a, err);
}

/* Largest bytes one link carries in step st of s (ranks on cores); load[nlinks] is zero on
 * entry and on return, touched[nlinks] and route[diameter] are scratch. */
static uint64_t step_peak_bytes(const coll_schedule *s, int32_t st, const int32_t *cores,
                                const sim_topo *topo, uint64_t *load, int32_t *touched,
                                int *route)
{
    int32_t ntouched = 0;
    for (size_t i = s->step_start[st]; i < s->step_start[st + 1]; i++) {
        const coll_xfer *x = &s->x[i];
        const uint64_t bytes = x->count * s->elem_bytes;
        if (x->src == x->dst || bytes == 0)
            continue;
        const int src = sim_topo_core_chip(topo, cores[x->src]);
        const int dst = sim_topo_core_chip(topo, cores[x->dst]);
        const int hops = sim_topo_route(topo, src, dst, route, sim_topo_diameter(topo));
        for (int h = 0; h < hops; h++) {
            if (load[route[h]] == 0)
                touched[ntouched++] = route[h];
            load[route[h]] += bytes;
        }
    }
    uint64_t peak = 0;
    for (int32_t k = 0; k < ntouched; k++) {
        peak = load[touched[k]] > peak ? load[touched[k]] : peak;
        load[touched[k]] = 0;
    }
    return peak;
}

/* The step-wise link-load bound of the representative op rep (see the header comment):
 * sum over its schedule's steps of the busiest link's bytes / link bandwidth. */
static ss_status step_bound(const sim_program *p, int32_t rep, const sim_topo *topo,
                            const coll_cost *cost, const sim_engine_cfg *cfg, double *bound,
                            ss_err *err)
{
    *bound = 0;
    coll_schedule s;
    ss_status st = rebuild_schedule(&s, p, rep, topo, cost, err);
    if (st != SS_OK)
        return st;
    const int nlinks = sim_topo_nlinks(topo);
    uint64_t *load = calloc((size_t)nlinks + 1, sizeof *load);
    int32_t *touched = malloc(((size_t)nlinks + 1) * sizeof *touched);
    int *route = malloc(((size_t)sim_topo_diameter(topo) + 1) * sizeof *route);
    if (!load || !touched || !route)
        st = ss_err_set(err, SS_ERR_NOMEM, "out of memory bounding a collective's links");
    int32_t n = 0;
    const int32_t *cores = sim_program_group(p, sim_program_op(p, rep)->coll.group, &n);
    sim_msg m;
    sim_msg_init(&m, cfg->chip, 0, cfg->packet_bytes);
    for (int32_t k = 0; st == SS_OK && k < s.nsteps; k++)
        *bound += (double)step_peak_bytes(&s, k, cores, topo, load, touched, route) /
                  m.bytes_per_s;
    free(load);
    free(touched);
    free(route);
    coll_schedule_free(&s);
    return st;
}

/* Analytic engine: raises price k to its step-wise bound when the makespan is below it. */
static ss_status apply_bound(coll_prices *out, const classifier *L, int32_t k,
                             const coll_cost *cost, const sim_engine_cfg *cfg, ss_err *err)
{
    ss_status st = step_bound(L->p, L->rep[k], L->topo, cost, cfg, &out->bound_s[k], err);
    if (st == SS_OK && out->bound_s[k] > out->prices[k].seconds) {
        out->prices[k].seconds = out->bound_s[k];
        out->raised[k] = 1;
    }
    return st;
}

/* Lowers and simulates signature k's representative alone; *lowered_ops = the ops it ran. */
static ss_status price_one(coll_prices *out, const classifier *L, int32_t k,
                           const coll_cost *cost, sim_engine_kind kind,
                           const sim_engine_cfg *cfg, int64_t *lowered_ops, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(L->p, L->rep[k]);
    sim_program iso, low;
    ss_status st = isolate(&iso, L->p, L->rep[k], err);
    if (st != SS_OK)
        return st;
    st = coll_program_lower(&iso, L->topo, cost, &low, err);
    sim_program_free(&iso);
    if (st != SS_OK)
        return st;
    *lowered_ops = low.nops;
    sim_engine_cfg c = *cfg;
    c.record_ops = 0;
    sim_result r;
    st = sim_engine_run(kind, &low, &c, &r, err);
    sim_program_free(&low);
    if (st == SS_OK) {
        st = keep_loads(&out->prices[k], &r, err);
        sim_result_free(&r);
    }
    if (st == SS_OK && kind == SIM_ENGINE_ANALYTIC)
        st = apply_bound(out, L, k, cost, cfg, err);
    int32_t n = 0;
    const int32_t *cores = sim_program_group(L->p, op->coll.group, &n);
    out->prices[k].origin_chip = sim_topo_core_chip(L->topo, cores[0]);
    if (st != SS_OK)
        ss_err_prefix(err, "pricing collective %d (op %d, core %d, %s over %d cores)",
                      (int)op->coll.id, (int)L->rep[k], (int)op->core,
                      sim_coll_kind_name((sim_coll_kind)op->coll.kind), (int)n);
    return st;
}

/* The work shared by the pricing threads. */
typedef struct {
    coll_prices *out;
    const classifier *L;
    const coll_cost *cost;
    sim_engine_kind kind;
    const sim_engine_cfg *cfg;
    pthread_mutex_t lock;
    int32_t next;          /* next signature to price */
    ss_status *st;         /* [nprices] */
    ss_err *err;           /* [nprices] */
    int64_t *ops;          /* [nprices] */
} pricing;

static void *price_worker(void *arg)
{
    pricing *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        const int32_t k = w->next++;
        pthread_mutex_unlock(&w->lock);
        if (k >= w->out->nprices)
            return NULL;
        w->st[k] = price_one(w->out, w->L, k, w->cost, w->kind, w->cfg, &w->ops[k], &w->err[k]);
    }
}

/* Threads to use for n signatures: min(n, online CPUs, PRICE_THREADS), at least 1. */
static int thread_count(int32_t n)
{
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long t = cpus > 0 ? cpus : 1;
    t = t < PRICE_THREADS ? t : PRICE_THREADS;
    return (int)(t < n ? t : n > 0 ? n : 1);
}

/* Prices every signature (see "Parallelism" above). */
static ss_status price_all(coll_prices *out, const classifier *L, const coll_cost *cost,
                           sim_engine_kind kind, const sim_engine_cfg *cfg, ss_err *err)
{
    const size_t n = (size_t)out->nprices + 1;
    pricing w = {out, L, cost, kind, cfg, PTHREAD_MUTEX_INITIALIZER, 0,
                 calloc(n, sizeof *w.st), calloc(n, sizeof *w.err), calloc(n, sizeof *w.ops)};
    ss_status st = SS_OK;
    if (!w.st || !w.err || !w.ops)
        st = ss_err_set(err, SS_ERR_NOMEM, "out of memory pricing collectives");
    pthread_t tid[PRICE_THREADS];
    int started = 0;
    const int want = thread_count(out->nprices);
    for (; st == SS_OK && started + 1 < want; started++)
        if (pthread_create(&tid[started], NULL, price_worker, &w) != 0)
            break; /* fewer threads: the calling one still does the rest */
    if (st == SS_OK)
        price_worker(&w);
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    for (int32_t k = 0; st == SS_OK && k < out->nprices; k++) {
        if (w.st[k] != SS_OK) {
            *err = w.err[k];
            st = w.st[k];
        }
        out->lowered_ops += w.ops[k];
        out->nraised += out->raised[k];
    }
    pthread_mutex_destroy(&w.lock);
    free(w.st);
    free(w.err);
    free(w.ops);
    return st;
}

void coll_prices_free(coll_prices *c)
{
    for (int32_t k = 0; c->prices && k < c->nprices; k++) {
        free((void *)c->prices[k].links);
        free((void *)c->prices[k].intervals);
    }
    free(c->prices);
    free(c->bound_s);
    free(c->raised);
    free(c->price_of);
    free(c->origin_of);
    memset(c, 0, sizeof *c);
}

ss_status coll_prices_build(coll_prices *out, const sim_program *p, const sim_topo *topo,
                            const coll_cost *cost, sim_engine_kind kind,
                            const sim_engine_cfg *cfg, ss_err *err)
{
    memset(out, 0, sizeof *out);
    classifier L = {.p = p, .topo = topo};
    ss_status st = sim_program_status(p, err);
    if (st == SS_OK)
        st = alloc_tables(out, p, err);
    if (st == SS_OK) {
        const size_t cap = (size_t)out->table.nids + 1;
        L.sig = calloc(cap, sizeof *L.sig);
        L.rep = calloc(cap, sizeof *L.rep);
        if (!L.sig || !L.rep)
            st = ss_err_set(err, SS_ERR_NOMEM, "out of memory pricing collectives");
    }
    if (st == SS_OK)
        st = classify_all(&L, out, err);
    if (st == SS_OK)
        st = price_all(out, &L, cost, kind, cfg, err);
    for (int32_t k = 0; L.sig && k < out->nprices; k++)
        free(L.sig[k].key);
    free(L.sig);
    free(L.rep);
    free(L.key);
    if (st != SS_OK) {
        coll_prices_free(out);
        return st;
    }
    out->table = (sim_coll_prices){out->table.nids, out->price_of, out->origin_of, out->prices,
                                   out->nprices};
    return SS_OK;
}
