/* This file implements the schedules of the reduce family (coll.h): all-reduce,
 * reduce-scatter and all-gather with ring, bidirectional ring, dimension-wise torus and
 * recursive halving-doubling; broadcast with a pipelined chain (ring) and a binomial tree;
 * barrier by dissemination.
 *
 * Chunks: the buffer of count elements is split into p final chunks (coll_part_*); rank r
 * owns final chunk r after a reduce-scatter. Every phase works on contiguous ranges of final
 * chunks, so outputs land where the nccl convention puts them.
 * Ring phase over m positions (member[i] = rank at position i, chunk[i] = its range):
 *   reduce-scatter step k = 0..m-2: position i sends chunk[(i - k - 1) mod m] to position
 *   i + 1, which adds it; afterwards position i holds the full sum of chunk[i], accumulated
 *   in the order i+1, i+2, ..., i (fixed, so bit-reproducible);
 *   all-gather step k: position i sends chunk[(i - k) mod m] to position i + 1 (copy).
 * Several rings of one phase (the lines of a torus dimension, the two directions of a
 * bidirectional ring) advance in the same steps. Zero-element chunks send nothing.
 * Torus: a box group (coll_group_grid) has coordinates (core of the chip, x, y, z), rank =
 * mixed radix of them, fastest first. The reduce-scatter phases go through the dimensions in
 * a fixed order, each splitting the range of chunk indices a rank owns by its coordinate of
 * that dimension (a contiguous range: a rank's chunk index is its coordinates in mixed radix
 * with the first phase's dimension most significant); the all-gathers go back in reverse.
 * Reduce-scatter/all-gather: slowest dimension first, so chunk index = rank; all-reduce:
 * fastest (on-chip) first.
 * Halving-doubling (p a power of two): reduce-scatter with distance p/2, p/4, ..., 1 (rank r
 * keeps the half of its range that contains chunk r and sends the other half to r ^ d, which
 * adds it), all-gather with distance 1, 2, ..., p/2.
 *
 * Invariants: see coll.h; every schedule here has at most one message per (src, dst) per step
 * and none from a rank to itself.
 * reference: Thakur, Rabenseifner, Gropp, IJHPCA 19(1), 2005 (ring, recursive halving and
 * doubling, binomial broadcast); Hensgen, Finkel, Manber 1988 (dissemination barrier);
 * Ying et al., "Image classification at supercomputer scale", arXiv 1811.06992 (2-D torus
 * all-reduce by dimension).
 */
#include "collectives/coll_impl.h"

#include <stdlib.h>

typedef struct {
    int32_t m;               /* positions */
    const int32_t *member;   /* [m] rank at each position */
    const uint64_t *off;     /* [m] chunk of each position: element offset */
    const uint64_t *len;     /* [m] and length */
} ring;

typedef enum { PHASE_RS, PHASE_AG } phase_kind;

static ss_status ring_step(coll_schedule *s, const ring *g, phase_kind ph, int32_t k,
                           ss_err *err)
{
    for (int32_t i = 0; i < g->m; i++) {
        const int32_t shift = ph == PHASE_RS ? k + 1 : k;
        const int32_t c = (int32_t)(((int64_t)i - shift) % g->m + g->m) % g->m;
        if (g->len[c] == 0)
            continue;
        ss_status st = coll_sched_add(s, g->member[i], g->member[(i + 1) % g->m], g->off[c],
                                 g->off[c], g->len[c], ph == PHASE_RS, err);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

/* One phase of nrings rings of m positions each (rings[j] laid out consecutively). */
static ss_status ring_phase(coll_schedule *s, const ring *rings, int32_t nrings, phase_kind ph,
                            ss_err *err)
{
    const int32_t m = nrings ? rings[0].m : 0;
    for (int32_t k = 0; k + 1 < m; k++) {
        for (int32_t j = 0; j < nrings; j++) {
            ss_status st = ring_step(s, &rings[j], ph, k, err);
            if (st != SS_OK)
                return st;
        }
        ss_status st = coll_sched_end_step(s, err);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

/* Storage of the rings of one phase: nrings x m members and chunks. */
typedef struct {
    ring *rings;
    int32_t *member;
    uint64_t *off, *len;
    int32_t nrings, m;
} ring_set;

static void ring_set_free(ring_set *r)
{
    free(r->rings);
    free(r->member);
    free(r->off);
    free(r->len);
}

static ss_status ring_set_alloc(ring_set *r, int32_t nrings, int32_t m, ss_err *err)
{
    const size_t n = (size_t)nrings * (size_t)m;
    r->nrings = nrings;
    r->m = m;
    r->rings = calloc((size_t)nrings, sizeof *r->rings);
    r->member = calloc(n, sizeof *r->member);
    r->off = calloc(n, sizeof *r->off);
    r->len = calloc(n, sizeof *r->len);
    if (!r->rings || !r->member || !r->off || !r->len) {
        ring_set_free(r);
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for %d rings", nrings);
    }
    for (int32_t j = 0; j < nrings; j++)
        r->rings[j] = (ring){m, r->member + (size_t)j * m, r->off + (size_t)j * m,
                             r->len + (size_t)j * m};
    return SS_OK;
}

/* Elements of final chunks [first, first + n). */
static void chunk_range(const coll_schedule *s, int32_t first, int32_t n, uint64_t *off,
                        uint64_t *len)
{
    *off = coll_part_off(s->count, s->p, first);
    *len = coll_part_off(s->count, s->p, first + n - 1) +
           coll_part_len(s->count, s->p, first + n - 1) - *off;
}

/* ---- ring and bidirectional ring ---------------------------------------------------- */

/* dir 0: positions = ranks 0..p-1; dir 1: ranks 0, p-1, ..., 1. half: -1 whole final chunk,
 * 0 its first (larger) half, 1 its second half. */
static void fill_ring(const coll_schedule *s, ring_set *rs, int32_t j, int dir, int half)
{
    for (int32_t i = 0; i < s->p; i++) {
        const int32_t r = dir == 0 ? i : (s->p - i) % s->p;
        uint64_t off, len;
        chunk_range(s, r, 1, &off, &len);
        const uint64_t first = len - len / 2;
        if (half == 1)
            off += first;
        if (half >= 0)
            len = half == 0 ? first : len / 2;
        const size_t at = (size_t)j * s->p + (size_t)i;
        rs->member[at] = r;
        rs->off[at] = off;
        rs->len[at] = len;
    }
}

static ss_status ring_phases(coll_schedule *s, int bidir, int do_rs, int do_ag, ss_err *err)
{
    ring_set rs = {0};
    ss_status st = ring_set_alloc(&rs, bidir ? 2 : 1, s->p, err);
    if (st != SS_OK)
        return st;
    fill_ring(s, &rs, 0, 0, bidir ? 0 : -1);
    if (bidir)
        fill_ring(s, &rs, 1, 1, 1);
    if (do_rs)
        st = ring_phase(s, rs.rings, rs.nrings, PHASE_RS, err);
    if (st == SS_OK && do_ag)
        st = ring_phase(s, rs.rings, rs.nrings, PHASE_AG, err);
    ring_set_free(&rs);
    return st;
}

/* ---- torus -------------------------------------------------------------------------- */

/* The grid of a box group: its dimensions of extent >= 2 in rank-stride order (cores of a
 * chip, x, y, z), and the order of the reduce-scatter phases with the chunk weight of each:
 * a rank's chunk index is sum_j coord(rank, ord[j]) * w[j], the first phase's dimension most
 * significant. */
typedef struct {
    int nd;
    int32_t ext[COLL_GRID_DIMS], stride[COLL_GRID_DIMS];
    int ord[COLL_GRID_DIMS];
    int32_t w[COLL_GRID_DIMS];
    int32_t cores_per_chip; /* of the group (grid dimension 0 when >= 2) */
} grid;

static void grid_of(grid *g, const coll_desc *d, int minor_first)
{
    int e[COLL_GRID_DIMS];
    SS_ASSERT(coll_group_grid(d->topo, d->cores, d->p, e));
    g->cores_per_chip = e[0];
    int32_t stride = 1;
    g->nd = 0;
    for (int k = 0; k < COLL_GRID_DIMS; k++) {
        if (e[k] >= 2) {
            g->ext[g->nd] = e[k];
            g->stride[g->nd] = stride;
            g->nd++;
        }
        stride *= e[k];
    }
    for (int j = 0; j < g->nd; j++)
        g->ord[j] = minor_first ? j : g->nd - 1 - j;
    int32_t w = 1;
    for (int j = g->nd - 1; j >= 0; j--) {
        g->w[j] = w;
        w *= g->ext[g->ord[j]];
    }
}

static int32_t grid_coord(const grid *g, int32_t r, int k)
{
    return r / g->stride[k] % g->ext[k];
}

/* The rings of phase j: one per line along dimension ord[j]; position i = the rank with
 * coordinate i (coordinate -i mod m on the lines of odd on-chip cores along a chip dimension:
 * the cores of a chip then drive opposite directions of its links); a position's chunk =
 * chunk indices [base + coord * w[j], + w[j]) where base comes from the line's coordinates
 * of the earlier phases. */
static ss_status grid_rings(const coll_schedule *s, const grid *g, int j, ring_set *rs,
                            ss_err *err)
{
    const int k = g->ord[j];
    const int32_t m = g->ext[k];
    ss_status st = ring_set_alloc(rs, s->p / m, m, err);
    if (st != SS_OK)
        return st;
    int32_t line = 0;
    for (int32_t r = 0; r < s->p; r++) {
        if (grid_coord(g, r, k) != 0)
            continue; /* r starts a line */
        int32_t base = 0;
        for (int jj = 0; jj < j; jj++)
            base += grid_coord(g, r, g->ord[jj]) * g->w[jj];
        const int reverse = g->cores_per_chip >= 2 && g->stride[k] >= g->cores_per_chip &&
                            r % g->cores_per_chip % 2 == 1;
        for (int32_t i = 0; i < m; i++) {
            const size_t at = (size_t)line * m + (size_t)i;
            const int32_t c = reverse ? (m - i) % m : i;
            rs->member[at] = r + c * g->stride[k];
            chunk_range(s, base + c * g->w[j], g->w[j], &rs->off[at], &rs->len[at]);
        }
        line++;
    }
    SS_ASSERT(line == rs->nrings);
    return SS_OK;
}

static ss_status grid_phase(coll_schedule *s, const grid *g, int j, phase_kind ph, ss_err *err)
{
    ring_set rs = {0};
    ss_status st = grid_rings(s, g, j, &rs, err);
    if (st == SS_OK)
        st = ring_phase(s, rs.rings, rs.nrings, ph, err);
    ring_set_free(&rs);
    return st;
}

/* All-reduce: on-chip (fastest coordinate) first; reduce-scatter / all-gather: slowest
 * first, so that rank r's chunk index is r (coll.h). */
static ss_status torus_phases(coll_schedule *s, const coll_desc *d, int do_rs, int do_ag,
                              ss_err *err)
{
    grid g;
    grid_of(&g, d, d->kind == SIM_COLL_ALLREDUCE);
    ss_status st = SS_OK;
    for (int j = 0; do_rs && st == SS_OK && j < g.nd; j++)
        st = grid_phase(s, &g, j, PHASE_RS, err);
    for (int j = g.nd - 1; do_ag && st == SS_OK && j >= 0; j--)
        st = grid_phase(s, &g, j, PHASE_AG, err);
    return st;
}

/* ---- halving-doubling --------------------------------------------------------------- */

static ss_status hd_phases(coll_schedule *s, int do_rs, int do_ag, ss_err *err)
{
    const int32_t p = s->p;
    ss_status st = SS_OK;
    for (int32_t d = p / 2; do_rs && st == SS_OK && d >= 1; d /= 2) {
        for (int32_t r = 0; r < p && st == SS_OK; r++) {
            const int32_t lo = r & ~(2 * d - 1), give = (r & d) ? lo : lo + d;
            uint64_t off, len;
            chunk_range(s, give, d, &off, &len);
            if (len)
                st = coll_sched_add(s, r, r ^ d, off, off, len, 1, err);
        }
        if (st == SS_OK)
            st = coll_sched_end_step(s, err);
    }
    for (int32_t d = 1; do_ag && st == SS_OK && d < p; d *= 2) {
        for (int32_t r = 0; r < p && st == SS_OK; r++) {
            uint64_t off, len;
            chunk_range(s, r & ~(d - 1), d, &off, &len);
            if (len)
                st = coll_sched_add(s, r, r ^ d, off, off, len, 0, err);
        }
        if (st == SS_OK)
            st = coll_sched_end_step(s, err);
    }
    return st;
}

static int power_of_two(int32_t p)
{
    return p > 0 && (p & (p - 1)) == 0;
}

/* ---- broadcast and barrier ---------------------------------------------------------- */

/* Chain 0 -> 1 -> ... -> p-1 pipelining K = p - 1 chunks: at step t position i sends chunk
 * t - i to i + 1. */
static ss_status chain_broadcast(coll_schedule *s, ss_err *err)
{
    const int32_t p = s->p, K = p - 1;
    ss_status st = SS_OK;
    for (int32_t t = 0; t < p - 1 + K - 1 && st == SS_OK; t++) {
        for (int32_t i = 0; i + 1 < p && st == SS_OK; i++) {
            const int32_t c = t - i;
            if (c < 0 || c >= K)
                continue;
            const uint64_t off = coll_part_off(s->count, K, c), len = coll_part_len(s->count, K, c);
            if (len)
                st = coll_sched_add(s, i, i + 1, off, off, len, 0, err);
        }
        if (st == SS_OK)
            st = coll_sched_end_step(s, err);
    }
    return st;
}

static ss_status tree_broadcast(coll_schedule *s, ss_err *err)
{
    ss_status st = SS_OK;
    for (int32_t d = 1; d < s->p && st == SS_OK; d *= 2) {
        for (int32_t r = 0; r < d && r + d < s->p && st == SS_OK; r++)
            if (s->count)
                st = coll_sched_add(s, r, r + d, 0, 0, s->count, 0, err);
        if (st == SS_OK)
            st = coll_sched_end_step(s, err);
    }
    return st;
}

static ss_status dissemination(coll_schedule *s, ss_err *err)
{
    ss_status st = SS_OK;
    for (int32_t d = 1; d < s->p && st == SS_OK; d *= 2) {
        for (int32_t r = 0; r < s->p && st == SS_OK; r++)
            st = coll_sched_add(s, r, (r + d) % s->p, 0, 0, 0, 0, err);
        if (st == SS_OK)
            st = coll_sched_end_step(s, err);
    }
    return st;
}

/* ---- layout and dispatch ------------------------------------------------------------ */

static void set_layout(coll_schedule *s)
{
    for (int32_t r = 0; r < s->p; r++) {
        const uint64_t c_off = coll_part_off(s->count, s->p, r);
        const uint64_t c_len = coll_part_len(s->count, s->p, r);
        const int bcast = s->kind == SIM_COLL_BROADCAST;
        s->work[r] = s->kind == SIM_COLL_BARRIER ? 0 : s->count;
        s->in_count[r] = s->work[r];
        s->out_count[r] = s->work[r];
        if (s->kind == SIM_COLL_ALLGATHER) {
            s->in_off[r] = c_off;
            s->in_count[r] = c_len;
        } else if (s->kind == SIM_COLL_REDUCESCATTER) {
            s->out_off[r] = c_off;
            s->out_count[r] = c_len;
        } else if (bcast && r > 0) {
            s->in_count[r] = 0;
        }
    }
}

ss_status coll_build_reduce_family(coll_schedule *s, const coll_desc *d, coll_algo a,
                                   ss_err *err)
{
    if (a == COLL_ALGO_HD && !power_of_two(d->p))
        a = COLL_ALGO_RING; /* the documented fallback */
    ss_status st = coll_sched_init(s, d, a, err);
    if (st != SS_OK)
        return st;
    if (d->kind == SIM_COLL_BARRIER)
        s->count = 0;
    set_layout(s);
    const int do_rs = d->kind != SIM_COLL_ALLGATHER;
    const int do_ag = d->kind != SIM_COLL_REDUCESCATTER;
    switch (d->kind == SIM_COLL_BROADCAST || d->kind == SIM_COLL_BARRIER ? COLL_ALGO_AUTO : a) {
    case COLL_ALGO_RING:
        return ring_phases(s, 0, do_rs, do_ag, err);
    case COLL_ALGO_BIRING:
        return ring_phases(s, 1, do_rs, do_ag, err);
    case COLL_ALGO_TORUS:
        return torus_phases(s, d, do_rs, do_ag, err);
    case COLL_ALGO_HD:
        return hd_phases(s, do_rs, do_ag, err);
    default:
        break;
    }
    if (d->kind == SIM_COLL_BARRIER)
        return dissemination(s, err);
    return a == COLL_ALGO_TREE ? tree_broadcast(s, err) : chain_broadcast(s, err);
}
