/* This file implements the schedule container of the collectives (coll.h): names and parsing
 * of kinds and algorithms, which algorithm applies to which group, building (dispatch to the
 * algorithm families, auto selection), the invariant check, the byte count and the
 * alpha-beta cost model that auto minimises.
 *
 * Invariants: a schedule is either fully built or freed; auto is deterministic (candidates in
 * enum order, strict improvement needed to replace the best).
 * reference: alpha-beta model of collectives: Thakur, Rabenseifner, Gropp, "Optimization of
 * Collective Communication Operations in MPICH", IJHPCA 19(1), 2005.
 */
#include "collectives/coll_impl.h"

#include <stdlib.h>
#include <string.h>

static const char *const algo_names[COLL_ALGO_COUNT] = {
    "auto", "ring", "biring", "torus", "hd", "tree", "direct", "dimorder", "dissem"};

const char *coll_algo_name(coll_algo a)
{
    SS_ASSERT(a >= 0 && a < COLL_ALGO_COUNT);
    return algo_names[a];
}

int coll_algo_parse(const char *s, coll_algo *out)
{
    if (!s || !s[0]) {
        *out = COLL_ALGO_AUTO;
        return 0;
    }
    for (int a = 0; a < COLL_ALGO_COUNT; a++)
        if (strcmp(s, algo_names[a]) == 0) {
            *out = (coll_algo)a;
            return 0;
        }
    return -1;
}

int coll_kind_parse(const char *s, sim_coll_kind *out)
{
    for (int k = 0; k < SIM_COLL_KIND_COUNT; k++)
        if (strcmp(s, sim_coll_kind_name((sim_coll_kind)k)) == 0) {
            *out = (sim_coll_kind)k;
            return 0;
        }
    return -1;
}

uint64_t coll_part_off(uint64_t n, int32_t p, int32_t i)
{
    const uint64_t q = n / (uint64_t)p, r = n % (uint64_t)p, ui = (uint64_t)i;
    return ui * q + (ui < r ? ui : r);
}

uint64_t coll_part_len(uint64_t n, int32_t p, int32_t i)
{
    return n / (uint64_t)p + ((uint64_t)i < n % (uint64_t)p ? 1 : 0);
}

coll_cost coll_cost_of_chip(const sim_chip *chip, uint32_t packet_bytes)
{
    return (coll_cost){chip->link_gbps * 1e9, chip->link_latency_ns * 1e-9, packet_bytes};
}

static int is_reduce_kind(sim_coll_kind k)
{
    return k == SIM_COLL_ALLREDUCE || k == SIM_COLL_REDUCESCATTER;
}

static int is_a2a_kind(sim_coll_kind k)
{
    return k == SIM_COLL_ALLTOALL || k == SIM_COLL_ALLTOALLV;
}

static int has_grid(const coll_desc *d)
{
    int ext[COLL_GRID_DIMS];
    return d->topo && d->cores && coll_group_grid(d->topo, d->cores, d->p, ext);
}

/* Whether algorithm a builds kind k at all (grid needs aside). */
static int implements(coll_algo a, sim_coll_kind k)
{
    const int rs_ag = is_reduce_kind(k) || k == SIM_COLL_ALLGATHER;
    switch (a) {
    case COLL_ALGO_AUTO:
        return 1;
    case COLL_ALGO_RING:
        return rs_ag || k == SIM_COLL_BROADCAST;
    case COLL_ALGO_BIRING:
    case COLL_ALGO_TORUS:
    case COLL_ALGO_HD:
        return rs_ag;
    case COLL_ALGO_TREE:
        return k == SIM_COLL_BROADCAST;
    case COLL_ALGO_DIRECT:
    case COLL_ALGO_DIMORDER:
        return is_a2a_kind(k);
    case COLL_ALGO_DISSEM:
        return k == SIM_COLL_BARRIER;
    default:
        return 0;
    }
}

static int needs_grid(coll_algo a)
{
    return a == COLL_ALGO_TORUS || a == COLL_ALGO_DIMORDER;
}

int coll_algo_applies(coll_algo a, const coll_desc *d)
{
    return implements(a, d->kind) && (!needs_grid(a) || has_grid(d));
}

/* ---- container ---------------------------------------------------------------------- */

void coll_schedule_free(coll_schedule *s)
{
    free(s->work);
    free(s->in_off);
    free(s->in_count);
    free(s->out_off);
    free(s->out_count);
    free(s->step_start);
    free(s->x);
    memset(s, 0, sizeof *s);
}

ss_status coll_sched_init(coll_schedule *s, const coll_desc *d, coll_algo a, ss_err *err)
{
    memset(s, 0, sizeof *s);
    const size_t p = (size_t)d->p;
    s->kind = d->kind;
    s->algo = a;
    s->p = d->p;
    s->elem_bytes = d->elem_bytes;
    s->count = d->count;
    s->work = calloc(p, sizeof *s->work);
    s->in_off = calloc(p, sizeof *s->in_off);
    s->in_count = calloc(p, sizeof *s->in_count);
    s->out_off = calloc(p, sizeof *s->out_off);
    s->out_count = calloc(p, sizeof *s->out_count);
    s->step_cap = 16;
    s->step_start = calloc(s->step_cap, sizeof *s->step_start);
    if (s->work && s->in_off && s->in_count && s->out_off && s->out_count && s->step_start)
        return SS_OK;
    coll_schedule_free(s);
    return ss_err_set(err, SS_ERR_NOMEM, "out of memory for a schedule of %d ranks", d->p);
}

ss_status coll_sched_add(coll_schedule *s, int32_t src, int32_t dst, uint64_t src_off,
                    uint64_t dst_off, uint64_t count, int reduce, ss_err *err)
{
    SS_ASSERT(src >= 0 && src < s->p && dst >= 0 && dst < s->p);
    if (s->nx == s->x_cap) {
        const size_t cap = s->x_cap ? 2 * s->x_cap : 64;
        coll_xfer *x = realloc(s->x, cap * sizeof *x);
        if (!x)
            return ss_err_set(err, SS_ERR_NOMEM, "out of memory for %zu transfers", cap);
        s->x = x;
        s->x_cap = cap;
    }
    s->x[s->nx++] = (coll_xfer){src_off, dst_off, count, src, dst, reduce};
    return SS_OK;
}

ss_status coll_sched_end_step(coll_schedule *s, ss_err *err)
{
    if (s->nx == s->step_start[s->nsteps])
        return SS_OK; /* empty: nothing to close */
    if ((size_t)s->nsteps + 2 > s->step_cap) {
        size_t *n = realloc(s->step_start, 2 * s->step_cap * sizeof *n);
        if (!n)
            return ss_err_set(err, SS_ERR_NOMEM, "out of memory for schedule steps");
        s->step_start = n;
        s->step_cap *= 2;
    }
    s->step_start[++s->nsteps] = s->nx;
    return SS_OK;
}

/* ---- building ----------------------------------------------------------------------- */

static ss_status check_desc(const coll_desc *d, ss_err *err)
{
    if (d->p < 1 || d->p > SIM_PROG_MAX_CORES)
        return ss_err_set(err, SS_ERR_RANGE, "group of %d ranks: need 1..%d", d->p,
                          (int)SIM_PROG_MAX_CORES);
    if (d->elem_bytes != 1 && d->elem_bytes != 2 && d->elem_bytes != 4)
        return ss_err_set(err, SS_ERR_RANGE, "element size %u bytes: need 1, 2 or 4",
                          d->elem_bytes);
    if (d->kind == SIM_COLL_ALLTOALLV && !d->matrix)
        return ss_err_set(err, SS_ERR_RANGE, "alltoallv needs a byte matrix");
    if (d->topo && !d->cores)
        return ss_err_set(err, SS_ERR_RANGE, "a topology needs the group's cores");
    return SS_OK;
}

ss_status coll_schedule_build(coll_schedule *s, const coll_desc *d, coll_algo a, ss_err *err)
{
    memset(s, 0, sizeof *s);
    ss_status st = check_desc(d, err);
    if (st != SS_OK)
        return st;
    if (a == COLL_ALGO_AUTO)
        return ss_err_set(err, SS_ERR_RANGE, "auto needs link figures: use "
                                             "coll_schedule_build_auto");
    if (!coll_algo_applies(a, d))
        return ss_err_set(err, SS_ERR_RANGE, "algorithm %s cannot build %s over %d ranks: %s",
                          coll_algo_name(a), sim_coll_kind_name(d->kind), d->p,
                          implements(a, d->kind)
                              ? "it needs a box group (the same cores of every chip of a "
                                "box of chips, chip-major, chips in row-major order)"
                              : "it does not implement this kind");
    st = is_a2a_kind(d->kind) ? coll_build_alltoall(s, d, a, err)
                              : coll_build_reduce_family(s, d, a, err);
    if (st != SS_OK)
        coll_schedule_free(s);
    return st;
}

/* A lower bound on what coll_schedule_predict gives algorithm a for d, found without building
 * the schedule, or 0 when none is known. Only ring and biring of the reduce family over ranks
 * on two chips or more: every step of theirs (2(p - 1) for all-reduce, p - 1 for
 * reduce-scatter and all-gather) has every rank send its chunk to its ring neighbour, and some
 * neighbour pair crosses chips, so each step costs at least one hop's latency plus, for ring,
 * the smallest chunk (count / p elements, when that is >= 1) over the link bandwidth. For
 * biring (chunks split in two directions) only the latency counts, and only with count >= 2p
 * (both halves non-empty). On groups of thousands of ranks these schedules have millions of
 * transfers, and the bound spares building them when another algorithm is already faster. */
static double predict_floor(coll_algo a, const coll_desc *d, const coll_cost *c)
{
    if ((a != COLL_ALGO_RING && a != COLL_ALGO_BIRING) || !d->topo || d->p < 2)
        return 0;
    double steps;
    if (d->kind == SIM_COLL_ALLREDUCE)
        steps = 2.0 * (d->p - 1);
    else if (d->kind == SIM_COLL_REDUCESCATTER || d->kind == SIM_COLL_ALLGATHER)
        steps = d->p - 1;
    else
        return 0;
    const uint64_t per_rank = d->count / (uint64_t)d->p;
    if (per_rank < (a == COLL_ALGO_BIRING ? 2u : 1u))
        return 0;
    const int chip0 = sim_topo_core_chip(d->topo, d->cores[0]);
    int chips = 0;
    for (int32_t r = 1; r < d->p && !chips; r++)
        chips = sim_topo_core_chip(d->topo, d->cores[r]) != chip0;
    if (!chips)
        return 0;
    const double chunk = a == COLL_ALGO_RING ? (double)per_rank * d->elem_bytes : 0;
    return steps * (c->latency_s + chunk / c->bytes_per_s) * (1 - 1e-9); /* margin: rounding */
}

/* Builds and predicts algorithm a; keeps it in *best when it beats *best_s (ties: the lower
 * algorithm, i.e. the order of coll_algo). */
static ss_status try_algo(coll_schedule *best, double *best_s, int *best_a, coll_algo a,
                          const coll_desc *d, const coll_cost *c, ss_err *err)
{
    coll_schedule cand;
    ss_status st = coll_schedule_build(&cand, d, a, err);
    if (st != SS_OK)
        return st;
    double t = 0;
    st = coll_schedule_predict(&cand, d, c, &t, err);
    if (st == SS_OK && (*best_a < 0 || t < *best_s || (t == *best_s && (int)a < *best_a))) {
        if (*best_a >= 0)
            coll_schedule_free(best);
        *best = cand;
        *best_s = t;
        *best_a = (int)a;
    } else {
        coll_schedule_free(&cand);
    }
    return st;
}

ss_status coll_schedule_build_auto(coll_schedule *s, const coll_desc *d, const coll_cost *c,
                                   ss_err *err)
{
    memset(s, 0, sizeof *s);
    double best_s = 0;
    int best_a = -1;
    ss_status st = SS_OK;
    /* first the algorithms without a floor, then those with one unless it already loses */
    for (int pass = 0; pass < 2 && st == SS_OK; pass++)
        for (int a = COLL_ALGO_AUTO + 1; a < COLL_ALGO_COUNT && st == SS_OK; a++) {
            if (!coll_algo_applies((coll_algo)a, d))
                continue;
            const double floor = predict_floor((coll_algo)a, d, c);
            if ((floor > 0) != pass || (pass && best_a >= 0 && floor > best_s))
                continue;
            st = try_algo(s, &best_s, &best_a, (coll_algo)a, d, c, err);
        }
    if (st != SS_OK) {
        if (best_a >= 0)
            coll_schedule_free(s);
        return st;
    }
    if (best_a < 0)
        return ss_err_set(err, SS_ERR_RANGE, "no algorithm implements %s",
                          sim_coll_kind_name(d->kind));
    return SS_OK;
}

/* ---- checks and figures ------------------------------------------------------------- */

ss_status coll_schedule_check(const coll_schedule *s, ss_err *err)
{
    const int copy_only = !is_reduce_kind(s->kind);
    for (int32_t st = 0; st < s->nsteps; st++) {
        if (s->step_start[st] >= s->step_start[st + 1])
            return ss_err_set(err, SS_ERR_DATA, "step %d is empty", st);
        for (size_t i = s->step_start[st]; i < s->step_start[st + 1]; i++) {
            const coll_xfer *x = &s->x[i];
            if (x->src < 0 || x->src >= s->p || x->dst < 0 || x->dst >= s->p)
                return ss_err_set(err, SS_ERR_DATA, "step %d transfer %zu: rank out of range",
                                  st, i);
            if (x->src_off + x->count > s->work[x->src] ||
                x->dst_off + x->count > s->work[x->dst])
                return ss_err_set(err, SS_ERR_DATA,
                                  "step %d transfer %zu (%d -> %d): range outside a workspace",
                                  st, i, x->src, x->dst);
            if (x->reduce && (copy_only || x->src == x->dst))
                return ss_err_set(err, SS_ERR_DATA,
                                  "step %d transfer %zu: a reduction onto itself or in a "
                                  "copy-only collective",
                                  st, i);
        }
    }
    for (int32_t r = 0; r < s->p; r++)
        if (s->in_off[r] + s->in_count[r] > s->work[r] ||
            s->out_off[r] + s->out_count[r] > s->work[r])
            return ss_err_set(err, SS_ERR_DATA, "rank %d: input or output outside its workspace",
                              r);
    return SS_OK;
}

uint64_t coll_schedule_bytes(const coll_schedule *s)
{
    uint64_t b = 0;
    for (size_t i = 0; i < s->nx; i++)
        if (s->x[i].src != s->x[i].dst)
            b += s->x[i].count * s->elem_bytes;
    return b;
}

/* A message's bytes between an ordered pair of ranks (the model without a topology). */
typedef struct {
    int32_t src, dst;
    double bytes;
} pair_bytes;

static int cmp_pair_bytes(const void *a, const void *b)
{
    const pair_bytes *x = a, *y = b;
    if (x->src != y->src)
        return x->src < y->src ? -1 : 1;
    return (x->dst > y->dst) - (x->dst < y->dst);
}

/* Largest total bytes of one ordered pair among pb[0..n) (sorted in place). */
static double busiest_pair(pair_bytes *pb, size_t n)
{
    qsort(pb, n, sizeof *pb, cmp_pair_bytes);
    double most = 0, run = 0;
    for (size_t i = 0; i < n; i++) {
        const int same = i && pb[i].src == pb[i - 1].src && pb[i].dst == pb[i - 1].dst;
        run = same ? run + pb[i].bytes : pb[i].bytes;
        most = run > most ? run : most;
    }
    return most;
}

/* The routes of recent chip pairs: a schedule repeats the same pairs step after step (a ring
 * of p ranks: 2(p - 1) steps over the same p pairs), and routing is most of the prediction's
 * cost on large groups. Direct-mapped by (src, dst); a miss routes and replaces the entry. */
enum { ROUTE_CACHE = 4096 };
typedef struct {
    int64_t *key;  /* [ROUTE_CACHE] src * nchips + dst, -1 = empty */
    int *hops;     /* [ROUTE_CACHE] */
    int *links;    /* [ROUTE_CACHE * diameter] */
    int diameter;
} route_cache;

static int route_cache_init(route_cache *rc, const sim_topo *t)
{
    rc->diameter = t ? sim_topo_diameter(t) : 0;
    rc->key = malloc(ROUTE_CACHE * sizeof *rc->key);
    rc->hops = malloc(ROUTE_CACHE * sizeof *rc->hops);
    rc->links = malloc((size_t)ROUTE_CACHE * ((size_t)rc->diameter + 1) * sizeof *rc->links);
    if (!rc->key || !rc->hops || !rc->links)
        return -1;
    for (size_t i = 0; i < ROUTE_CACHE; i++)
        rc->key[i] = -1;
    return 0;
}

static void route_cache_free(route_cache *rc)
{
    free(rc->key);
    free(rc->hops);
    free(rc->links);
}

/* The route from chip src to chip dst (its links in *links), as sim_topo_route gives it. */
static int cached_route(route_cache *rc, const sim_topo *t, int src, int dst, const int **links)
{
    const int64_t key = (int64_t)src * sim_topo_nchips(t) + dst;
    const size_t slot = (size_t)((uint64_t)key * 0x9E3779B97F4A7C15ull >> 52) % ROUTE_CACHE;
    int *l = rc->links + slot * ((size_t)rc->diameter + 1);
    if (rc->key[slot] != key) {
        rc->hops[slot] = sim_topo_route(t, src, dst, l, rc->diameter);
        rc->key[slot] = key;
    }
    *links = l;
    return rc->hops[slot];
}

/* Cost of one step: see coll_schedule_predict. load[nlinks] and pb[step length] are scratch. */
static double step_cost(const coll_schedule *s, int32_t st, const coll_desc *d,
                        const coll_cost *c, double *load, pair_bytes *pb, route_cache *rc)
{
    const sim_topo *t = d->topo;
    const int nlinks = t ? sim_topo_nlinks(t) : 0;
    if (nlinks)
        memset(load, 0, (size_t)nlinks * sizeof *load);
    double most = 0, lat = 0;
    size_t npb = 0;
    for (size_t i = s->step_start[st]; i < s->step_start[st + 1]; i++) {
        const coll_xfer *x = &s->x[i];
        if (x->src == x->dst)
            continue;
        const double bytes = (double)x->count * s->elem_bytes;
        int hops = 1;
        if (t) {
            const int *route;
            hops = cached_route(rc, t, sim_topo_core_chip(t, d->cores[x->src]),
                                sim_topo_core_chip(t, d->cores[x->dst]), &route);
            for (int k = 0; k < hops; k++) {
                load[route[k]] += bytes;
                most = load[route[k]] > most ? load[route[k]] : most;
            }
        } else {
            pb[npb++] = (pair_bytes){x->src, x->dst, bytes};
        }
        if (hops == 0)
            continue; /* two cores of one chip: free */
        const double first = bytes < c->packet_bytes ? bytes : (double)c->packet_bytes;
        const double l = hops * c->latency_s + (hops - 1) * first / c->bytes_per_s;
        lat = l > lat ? l : lat;
    }
    if (!t)
        most = busiest_pair(pb, npb);
    return most / c->bytes_per_s + lat;
}

ss_status coll_schedule_predict(const coll_schedule *s, const coll_desc *d, const coll_cost *c,
                               double *seconds, ss_err *err)
{
    const sim_topo *t = d->topo;
    size_t longest = 1;
    for (int32_t i = 0; i < s->nsteps; i++)
        if (s->step_start[i + 1] - s->step_start[i] > longest)
            longest = s->step_start[i + 1] - s->step_start[i];
    double *load = calloc(t ? (size_t)sim_topo_nlinks(t) + 1 : 1, sizeof *load);
    pair_bytes *pb = t ? NULL : calloc(longest, sizeof *pb);
    route_cache rc;
    const int rc_bad = route_cache_init(&rc, t);
    ss_status st = SS_OK;
    *seconds = 0;
    if (!load || (!t && !pb) || rc_bad)
        st = ss_err_set(err, SS_ERR_NOMEM, "out of memory pricing a schedule of %d ranks", s->p);
    for (int32_t i = 0; st == SS_OK && i < s->nsteps; i++)
        *seconds += step_cost(s, i, d, c, load, pb, &rc);
    free(load);
    free(pb);
    route_cache_free(&rc);
    return st;
}
