/* This file implements the all-to-all(v) schedules (coll.h): direct and dimension-ordered,
 * as one algorithm over a "shape" of nd dimensions (direct: one dimension of p ranks;
 * dimorder: the box group's dimensions of extent >= 2: the cores of a chip, then x, y, z).
 *
 * Blocks. Block (o, t) is what rank o sends rank t: matrix[o][t] elements. Before phase k
 * (k = 0..nd-1) a rank c holds "level k-1": the blocks whose origin o agrees with c on the
 * dimensions >= k and whose destination t agrees with c on the dimensions < k; phase k sends
 * each block to the rank that agrees with c except that its coordinate k is t's, so after the
 * last phase c holds exactly the blocks (o, c). Every level holds p blocks per rank, stored in
 * the canonical order idx = ti * n_o + oi, where oi enumerates o's free coordinates (dims <=
 * level) and ti t's free coordinates (dims > level), x fastest. Level -1 is then the send
 * buffer (blocks in destination order), level nd-1 the receive buffer (origin order) and the
 * levels in between staging areas behind them.
 * Order within a phase: a rank sends to the coordinates c_k + 1, c_k + 2, ... (rotated, so
 * that the ranks of a line do not all send to the same peer first) and copies its own blocks
 * last (local copies, src == dst, not messages). Zero-element blocks are skipped, so empty
 * peers exchange no message.
 *
 * Invariants: every block moves exactly once per phase and ends at its destination's receive
 * buffer at the offset of its origin; each phase is one step.
 * reference: the dimension-ordered all-to-all of TPU pods: Lepikhin et al., "GShard",
 * arXiv 2006.16668, section 3.3 / appendix (all-to-all on the 2-D torus).
 */
#include "collectives/coll_impl.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int nd;
    int32_t ext[COLL_GRID_DIMS], stride[COLL_GRID_DIMS]; /* extent and rank stride */
    int32_t p;
    const uint64_t *m;         /* [p * p] */
    uint64_t *off;             /* [(nd + 1) * p * (p + 1)]: level L+1, rank c, idx */
    uint64_t *base;            /* [(nd + 1) * p]: where level L+1 starts in rank c's work */
} shape;

static int32_t coord(const shape *sh, int32_t r, int k)
{
    return r / sh->stride[k] % sh->ext[k];
}

static int32_t n_o(const shape *sh, int level)
{
    int32_t n = 1;
    for (int k = 0; k <= level; k++)
        n *= sh->ext[k];
    return n;
}

/* The block at index idx of level `level` of rank c. */
static void block_at(const shape *sh, int32_t c, int level, int32_t idx, int32_t *o, int32_t *t)
{
    const int32_t no = n_o(sh, level);
    int32_t oi = idx % no, ti = idx / no;
    *o = *t = 0;
    for (int k = 0; k < sh->nd; k++) {
        const int32_t ck = coord(sh, c, k) * sh->stride[k];
        if (k <= level) {
            *o += oi % sh->ext[k] * sh->stride[k];
            oi /= sh->ext[k];
            *t += ck;
        } else {
            *t += ti % sh->ext[k] * sh->stride[k];
            ti /= sh->ext[k];
            *o += ck;
        }
    }
}

/* The index of block (o, t) at level `level` (of the rank that holds it). */
static int32_t index_of(const shape *sh, int level, int32_t o, int32_t t)
{
    int32_t oi = 0, ti = 0, om = 1, tm = 1;
    for (int k = 0; k < sh->nd; k++) {
        if (k <= level) {
            oi += coord(sh, o, k) * om;
            om *= sh->ext[k];
        } else {
            ti += coord(sh, t, k) * tm;
            tm *= sh->ext[k];
        }
    }
    return ti * om + oi;
}

static uint64_t *level_off(const shape *sh, int level, int32_t c)
{
    return sh->off + ((size_t)(level + 1) * (size_t)sh->p + (size_t)c) * ((size_t)sh->p + 1);
}

static uint64_t level_base(const shape *sh, int level, int32_t c)
{
    return sh->base[(size_t)(level + 1) * (size_t)sh->p + (size_t)c];
}

/* Offsets of every level (prefix sums in canonical order) and the workspace layout. */
static void layout(shape *sh, coll_schedule *s)
{
    for (int level = -1; level < sh->nd; level++)
        for (int32_t c = 0; c < sh->p; c++) {
            uint64_t *off = level_off(sh, level, c);
            off[0] = 0;
            for (int32_t idx = 0; idx < sh->p; idx++) {
                int32_t o, t;
                block_at(sh, c, level, idx, &o, &t);
                off[idx + 1] = off[idx] + sh->m[(size_t)o * sh->p + t];
            }
        }
    for (int32_t c = 0; c < sh->p; c++) {
        const uint64_t send = level_off(sh, -1, c)[sh->p];
        const uint64_t recv = level_off(sh, sh->nd - 1, c)[sh->p];
        uint64_t at = send + recv;
        sh->base[c] = 0;
        sh->base[(size_t)sh->nd * sh->p + c] = send;
        for (int level = 0; level + 1 < sh->nd; level++) {
            sh->base[(size_t)(level + 1) * sh->p + c] = at;
            at += level_off(sh, level, c)[sh->p];
        }
        s->work[c] = at;
        s->in_off[c] = 0;
        s->in_count[c] = send;
        s->out_off[c] = send;
        s->out_count[c] = recv;
        if (send > s->count)
            s->count = send;
    }
}

/* Rank c's transfers of phase k: to coordinates c_k + 1, ..., then its own (j = 0). */
static ss_status phase_rank(coll_schedule *s, const shape *sh, int k, int32_t c, ss_err *err)
{
    const int32_t e = sh->ext[k], no = n_o(sh, k - 1), nt = sh->p / no;
    const uint64_t *from = level_off(sh, k - 1, c);
    for (int32_t j = 1; j <= e; j++) {
        const int32_t v = (coord(sh, c, k) + j) % e;
        const int32_t dst = c + (v - coord(sh, c, k)) * sh->stride[k];
        const uint64_t *to = level_off(sh, k, dst);
        for (int32_t rest = 0; rest < nt / e; rest++)
            for (int32_t oi = 0; oi < no; oi++) {
                const int32_t idx = (v + e * rest) * no + oi;
                int32_t o, t;
                block_at(sh, c, k - 1, idx, &o, &t);
                const uint64_t n = sh->m[(size_t)o * sh->p + t];
                if (n == 0)
                    continue;
                ss_status st = coll_sched_add(s, c, dst, level_base(sh, k - 1, c) + from[idx],
                                         level_base(sh, k, dst) + to[index_of(sh, k, o, t)], n,
                                         0, err);
                if (st != SS_OK)
                    return st;
            }
    }
    return SS_OK;
}

static ss_status phases(coll_schedule *s, const shape *sh, ss_err *err)
{
    for (int k = 0; k < sh->nd; k++) {
        for (int32_t c = 0; c < sh->p; c++) {
            ss_status st = phase_rank(s, sh, k, c, err);
            if (st != SS_OK)
                return st;
        }
        ss_status st = coll_sched_end_step(s, err);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

static void shape_of(shape *sh, const coll_desc *d, coll_algo a)
{
    sh->p = d->p;
    sh->nd = 0;
    int e[COLL_GRID_DIMS] = {d->p, 1, 1, 1};
    if (a == COLL_ALGO_DIMORDER)
        SS_ASSERT(coll_group_grid(d->topo, d->cores, d->p, e));
    int32_t stride = 1;
    for (int k = 0; k < COLL_GRID_DIMS; k++) {
        if (e[k] >= 2) {
            sh->ext[sh->nd] = e[k];
            sh->stride[sh->nd] = stride;
            sh->nd++;
        }
        stride *= e[k];
    }
    if (sh->nd == 0) { /* p = 1: one dimension of one rank */
        sh->ext[0] = 1;
        sh->stride[0] = 1;
        sh->nd = 1;
    }
}

/* The alltoall matrix: rank i sends rank j chunk j of count. */
static uint64_t *equal_matrix(const coll_desc *d)
{
    uint64_t *m = malloc((size_t)d->p * (size_t)d->p * sizeof *m);
    for (int32_t i = 0; m && i < d->p; i++)
        for (int32_t j = 0; j < d->p; j++)
            m[(size_t)i * d->p + j] = coll_part_len(d->count, d->p, j);
    return m;
}

ss_status coll_build_alltoall(coll_schedule *s, const coll_desc *d, coll_algo a, ss_err *err)
{
    ss_status st = coll_sched_init(s, d, a, err);
    if (st != SS_OK)
        return st;
    s->count = 0;
    shape sh;
    memset(&sh, 0, sizeof sh);
    shape_of(&sh, d, a);
    uint64_t *own = d->kind == SIM_COLL_ALLTOALL ? equal_matrix(d) : NULL;
    sh.m = own ? own : d->matrix;
    const size_t levels = (size_t)sh.nd + 1, p = (size_t)d->p;
    sh.off = malloc(levels * p * (p + 1) * sizeof *sh.off);
    sh.base = calloc(levels * p, sizeof *sh.base);
    if (!sh.m || !sh.off || !sh.base) {
        st = ss_err_set(err, SS_ERR_NOMEM, "out of memory for an all-to-all of %d ranks", d->p);
    } else {
        layout(&sh, s);
        st = phases(s, &sh, err);
    }
    free(own);
    free(sh.off);
    free(sh.base);
    return st;
}
