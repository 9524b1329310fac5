/* This file implements the pod interconnect topology declared in sim/topo.h: chip and core
 * numbering, dense directed-link ids, dimension-ordered shortest routes, diameter and
 * bisection counts.
 *
 * Link ids: block (d, dir) holds the links leaving chips in direction dir of dimension d and
 * starts at link_base[d][dir]; blocks are laid out x+, x-, y+, y-, z+, z-. Inside a block a
 * link's index is the row-major index of its source chip over a reduced box in which
 * dimension d has n (wrapped) or n-1 (mesh) positions: a mesh '+' link's source sits at
 * coordinates 0..n-2, a mesh '-' link's at 1..n-1 (stored shifted down by one). Both mappings
 * are O(1) and need no table.
 * Invariants: sum of link_count == nlinks; every route step follows an existing link; the
 * coordinates tracked along a route stay inside the box.
 * reference: REFERENCE.md section 6 (TPU ICI topologies).
 */
#include "sim/topo.h"

#include <stdio.h>
#include <stdlib.h>

static const char dim_letter[SIM_TOPO_MAX_DIMS] = {'x', 'y', 'z'};

/* One dimension's part of a route: how many hops and which way. */
typedef struct {
    int hops;
    sim_topo_dir dir;
} dim_leg;

static int has_links(const sim_topo *t, int d)
{
    return t->dims[d] >= 2;
}

static int link_exists_at(const sim_topo *t, const int c[SIM_TOPO_MAX_DIMS], int d,
                          sim_topo_dir dir)
{
    if (!has_links(t, d))
        return 0;
    if (t->wrap[d])
        return 1;
    return dir == SIM_TOPO_PLUS ? c[d] < t->dims[d] - 1 : c[d] > 0;
}

/* Positions of dimension d in the reduced box of block (d, dir), and the shift from a
 * source coordinate to its reduced coordinate. */
static int reduced_size(const sim_topo *t, int d)
{
    return t->wrap[d] ? t->dims[d] : t->dims[d] - 1;
}

static int reduced_shift(const sim_topo *t, int d, sim_topo_dir dir)
{
    return (!t->wrap[d] && dir == SIM_TOPO_MINUS) ? 1 : 0;
}

static int link_id_at(const sim_topo *t, const int c[SIM_TOPO_MAX_DIMS], int d, sim_topo_dir dir)
{
    if (!link_exists_at(t, c, d, dir))
        return -1;
    int idx = 0, mult = 1;
    for (int e = 0; e < SIM_TOPO_MAX_DIMS; e++) {
        int size = e == d ? reduced_size(t, d) : t->dims[e];
        int coord = e == d ? c[e] - reduced_shift(t, d, dir) : c[e];
        idx += coord * mult;
        mult *= size;
    }
    return t->link_base[d][dir] + idx;
}

/* Moves coordinate c[d] one step in direction dir (wrapping on a torus). */
static void step(const sim_topo *t, int c[SIM_TOPO_MAX_DIMS], int d, sim_topo_dir dir)
{
    int n = t->dims[d];
    c[d] = (c[d] + (dir == SIM_TOPO_PLUS ? 1 : n - 1)) % n;
}

static int chip_of(const sim_topo *t, const int c[SIM_TOPO_MAX_DIMS])
{
    return c[0] + t->dims[0] * (c[1] + t->dims[1] * c[2]);
}

static void check_chip(const sim_topo *t, int chip)
{
    SS_ASSERT(chip >= 0 && chip < t->nchips);
}

static void check_dim_dir(int dim, sim_topo_dir dir)
{
    SS_ASSERT(dim >= 0 && dim < SIM_TOPO_MAX_DIMS);
    SS_ASSERT(dir == SIM_TOPO_PLUS || dir == SIM_TOPO_MINUS);
}

static ss_status check_args(int ndims, const int *dims, const int *wrap, int cores_per_chip,
                            ss_err *err)
{
    if (ndims < 1 || ndims > SIM_TOPO_MAX_DIMS)
        return ss_err_set(err, SS_ERR_RANGE,
                          "topology: ndims = %d, must be 1, 2 or 3 (ring, 2-D, 3-D)", ndims);
    double chips = 1; /* exact below 2^53, enough to report any product of three ints */
    for (int d = 0; d < ndims; d++) {
        if (dims[d] < 1)
            return ss_err_set(err, SS_ERR_RANGE,
                              "topology: dims[%d] (%c) = %d, every dimension needs >= 1 chip", d,
                              dim_letter[d], dims[d]);
        if (wrap && wrap[d] != 0 && wrap[d] != 1)
            return ss_err_set(err, SS_ERR_RANGE, "topology: wrap[%d] (%c) = %d, must be 0 or 1",
                              d, dim_letter[d], wrap[d]);
        chips *= dims[d];
    }
    if (chips > SIM_TOPO_MAX_CHIPS) {
        char shape[64];
        int at = 0;
        for (int d = 0; d < ndims; d++)
            at += snprintf(shape + at, sizeof shape - (size_t)at, "%s%d", d ? " x " : "", dims[d]);
        return ss_err_set(err, SS_ERR_RANGE,
                          "topology: %s = %.0f chips, more than the limit of %d", shape, chips,
                          SIM_TOPO_MAX_CHIPS);
    }
    if (cores_per_chip < 1 || cores_per_chip > SIM_TOPO_MAX_CORES_PER_CHIP)
        return ss_err_set(err, SS_ERR_RANGE, "topology: cores_per_chip = %d, must be 1..%d",
                          cores_per_chip, SIM_TOPO_MAX_CORES_PER_CHIP);
    return SS_OK;
}

/* Lays out the link blocks x+, x-, y+, y-, z+, z-. */
static void layout_links(sim_topo *t)
{
    int next = 0;
    for (int d = 0; d < SIM_TOPO_MAX_DIMS; d++)
        for (int dir = 0; dir < 2; dir++) {
            int count = has_links(t, d) ? t->nchips / t->dims[d] * reduced_size(t, d) : 0;
            t->link_base[d][dir] = next;
            t->link_count[d][dir] = count;
            next += count;
        }
    t->nlinks = next;
}

ss_status sim_topo_init(sim_topo *t, int ndims, const int *dims, const int *wrap,
                        int cores_per_chip, ss_err *err)
{
    SS_ASSERT(t != NULL && dims != NULL);
    ss_status st = check_args(ndims, dims, wrap, cores_per_chip, err);
    if (st != SS_OK)
        return st;
    sim_topo n = {.ndims = ndims, .cores_per_chip = cores_per_chip, .nchips = 1};
    for (int d = 0; d < SIM_TOPO_MAX_DIMS; d++) {
        n.dims[d] = d < ndims ? dims[d] : 1;
        n.wrap[d] = (d < ndims && wrap) ? wrap[d] : 0;
        n.nchips *= n.dims[d];
    }
    layout_links(&n);
    *t = n;
    return SS_OK;
}

int sim_topo_nchips(const sim_topo *t)
{
    return t->nchips;
}

int sim_topo_ncores(const sim_topo *t)
{
    return t->nchips * t->cores_per_chip;
}

int sim_topo_nlinks(const sim_topo *t)
{
    return t->nlinks;
}

void sim_topo_coords(const sim_topo *t, int chip, int coord[SIM_TOPO_MAX_DIMS])
{
    check_chip(t, chip);
    for (int d = 0; d < SIM_TOPO_MAX_DIMS; d++) {
        coord[d] = chip % t->dims[d];
        chip /= t->dims[d];
    }
}

int sim_topo_chip(const sim_topo *t, const int coord[SIM_TOPO_MAX_DIMS])
{
    for (int d = 0; d < SIM_TOPO_MAX_DIMS; d++)
        SS_ASSERT(coord[d] >= 0 && coord[d] < t->dims[d]);
    return chip_of(t, coord);
}

int sim_topo_core_id(const sim_topo *t, int chip, int local)
{
    check_chip(t, chip);
    SS_ASSERT(local >= 0 && local < t->cores_per_chip);
    return chip * t->cores_per_chip + local;
}

int sim_topo_core_chip(const sim_topo *t, int core)
{
    SS_ASSERT(core >= 0 && core < sim_topo_ncores(t));
    return core / t->cores_per_chip;
}

int sim_topo_core_local(const sim_topo *t, int core)
{
    SS_ASSERT(core >= 0 && core < sim_topo_ncores(t));
    return core % t->cores_per_chip;
}

int sim_topo_link_id(const sim_topo *t, int chip, int dim, sim_topo_dir dir)
{
    check_dim_dir(dim, dir);
    int c[SIM_TOPO_MAX_DIMS];
    sim_topo_coords(t, chip, c);
    return link_id_at(t, c, dim, dir);
}

sim_topo_link sim_topo_link_get(const sim_topo *t, int link)
{
    SS_ASSERT(link >= 0 && link < t->nlinks);
    int d = 0, dir = 0;
    while (link >= t->link_base[d][dir] + t->link_count[d][dir]) {
        dir ^= 1;
        d += dir == 0;
    }
    int idx = link - t->link_base[d][dir];
    int c[SIM_TOPO_MAX_DIMS];
    for (int e = 0; e < SIM_TOPO_MAX_DIMS; e++) {
        int size = e == d ? reduced_size(t, d) : t->dims[e];
        c[e] = idx % size;
        idx /= size;
    }
    c[d] += reduced_shift(t, d, (sim_topo_dir)dir);
    sim_topo_link l = {.src_chip = chip_of(t, c), .dim = d, .dir = (sim_topo_dir)dir};
    step(t, c, d, l.dir);
    l.dst_chip = chip_of(t, c);
    return l;
}

int sim_topo_neighbor(const sim_topo *t, int chip, int dim, sim_topo_dir dir)
{
    check_dim_dir(dim, dir);
    int c[SIM_TOPO_MAX_DIMS];
    sim_topo_coords(t, chip, c);
    if (!link_exists_at(t, c, dim, dir))
        return -1;
    step(t, c, dim, dir);
    return chip_of(t, c);
}

/* The tie rule of sim/topo.h: '+' when src[d] + sum over e != d of (src[e] + dst[e]) is
 * even. */
static sim_topo_dir tie_dir(const int s[SIM_TOPO_MAX_DIMS], const int e[SIM_TOPO_MAX_DIMS], int d)
{
    int parity = s[d];
    for (int k = 0; k < SIM_TOPO_MAX_DIMS; k++)
        if (k != d)
            parity += s[k] + e[k];
    return parity % 2 == 0 ? SIM_TOPO_PLUS : SIM_TOPO_MINUS;
}

/* The leg of a route along dimension d from coordinate s[d] to e[d]. */
static dim_leg plan_leg(const sim_topo *t, const int s[SIM_TOPO_MAX_DIMS],
                        const int e[SIM_TOPO_MAX_DIMS], int d)
{
    int n = t->dims[d], delta = e[d] - s[d];
    if (!t->wrap[d])
        return (dim_leg){abs(delta), delta >= 0 ? SIM_TOPO_PLUS : SIM_TOPO_MINUS};
    int fwd = (delta + n) % n, bwd = (n - fwd) % n;
    if (fwd < bwd || fwd == 0)
        return (dim_leg){fwd, SIM_TOPO_PLUS};
    if (bwd < fwd)
        return (dim_leg){bwd, SIM_TOPO_MINUS};
    return (dim_leg){fwd, tie_dir(s, e, d)};
}

int sim_topo_hops(const sim_topo *t, int src_chip, int dst_chip)
{
    int s[SIM_TOPO_MAX_DIMS], e[SIM_TOPO_MAX_DIMS], hops = 0;
    sim_topo_coords(t, src_chip, s);
    sim_topo_coords(t, dst_chip, e);
    for (int d = 0; d < SIM_TOPO_MAX_DIMS; d++)
        hops += plan_leg(t, s, e, d).hops;
    return hops;
}

int sim_topo_route(const sim_topo *t, int src_chip, int dst_chip, int *links_out, int max)
{
    SS_ASSERT(max >= 0 && (max == 0 || links_out != NULL));
    int s[SIM_TOPO_MAX_DIMS], e[SIM_TOPO_MAX_DIMS], c[SIM_TOPO_MAX_DIMS], n = 0;
    sim_topo_coords(t, src_chip, s);
    sim_topo_coords(t, dst_chip, e);
    sim_topo_coords(t, src_chip, c);
    for (int d = 0; d < SIM_TOPO_MAX_DIMS; d++) {
        dim_leg leg = plan_leg(t, s, e, d);
        for (int h = 0; h < leg.hops; h++, n++) {
            int link = link_id_at(t, c, d, leg.dir);
            SS_ASSERT(link >= 0);
            if (n < max)
                links_out[n] = link;
            step(t, c, d, leg.dir);
        }
        SS_ASSERT(c[d] == e[d]);
    }
    return n;
}

static int dim_diameter(const sim_topo *t, int d)
{
    return t->wrap[d] ? t->dims[d] / 2 : t->dims[d] - 1;
}

int sim_topo_diameter(const sim_topo *t)
{
    int hops = 0;
    for (int d = 0; d < SIM_TOPO_MAX_DIMS; d++)
        hops += dim_diameter(t, d);
    return hops;
}

/* Directed links crossing the middle cut of dimension d (which has links). */
static int cut_links(const sim_topo *t, int d)
{
    return t->nchips / t->dims[d] * (t->wrap[d] ? 4 : 2);
}

int sim_topo_bisection_dim(const sim_topo *t)
{
    int best = -1;
    for (int d = 0; d < SIM_TOPO_MAX_DIMS; d++) {
        if (!has_links(t, d))
            continue;
        if (best < 0 || t->dims[d] > t->dims[best] ||
            (t->dims[d] == t->dims[best] && cut_links(t, d) < cut_links(t, best)))
            best = d;
    }
    return best;
}

int sim_topo_bisection_links(const sim_topo *t)
{
    int d = sim_topo_bisection_dim(t);
    return d < 0 ? 0 : cut_links(t, d);
}

int sim_topo_link_name(const sim_topo *t, int link, char *buf, size_t size)
{
    sim_topo_link l = sim_topo_link_get(t, link);
    int a[SIM_TOPO_MAX_DIMS], b[SIM_TOPO_MAX_DIMS];
    sim_topo_coords(t, l.src_chip, a);
    sim_topo_coords(t, l.dst_chip, b);
    return snprintf(buf, size, "chip (%d,%d,%d) %c%c -> (%d,%d,%d)", a[0], a[1], a[2],
                    l.dir == SIM_TOPO_PLUS ? '+' : '-', dim_letter[l.dim], b[0], b[1], b[2]);
}
