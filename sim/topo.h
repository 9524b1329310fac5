/* This file declares the interconnect topology of a pod: where each chip sits on a 1-, 2- or
 * 3-dimensional ring/mesh/torus, which directed inter-chip links exist, and which links a
 * message crosses under dimension-ordered routing. It is pure arithmetic on plain values (no
 * allocation, no engine); the timing engines call it to route every message and index their
 * per-link arrays by the dense link ids it hands out.
 *
 * Numbering:
 *  - chips 0..P-1 in row-major order over (x, y, z) with x fastest:
 *    chip = x + dims[0] * (y + dims[1] * z); dimensions beyond ndims have size 1;
 *  - cores 0..P*cores_per_chip-1: core = chip * cores_per_chip + local; a core's traffic
 *    leaves through its chip's links (two cores of one chip are 0 hops apart);
 *  - directed links 0..L-1 in blocks (x+, x-, y+, y-, z+, z-); inside a block the links are
 *    ordered by their source chip in row-major order (so the ids of x+ links of a torus equal
 *    the chip ids).
 * Links: a dimension of size 1 has no links. On a mesh (wrap = 0) dimension a chip at the
 * low edge has no '-' link and one at the high edge no '+' link. On a wrapped dimension of
 * size >= 2 every chip has both. Size 2 with wrap: a chip's '+' and '-' links both reach the
 * other chip and are two distinct physical links: each chip has one port per direction per
 * dimension (4 ports on a 2-D TPU v2/v3, 6 on a 3-D v4) and the wraparound cable that closes
 * a ring is a cable of its own, so a wrapped pair is joined by two cables (double bandwidth)
 * and every chip of a torus keeps 2 * (dimensions of size >= 2) outgoing links.
 * Routing: dimension-ordered, x then y then z. On a mesh dimension the route moves straight
 * towards the destination; on a wrapped one it takes the shorter way round. A tie (distance
 * exactly n/2 on an even ring) goes '+' when src[d] + sum over the other dimensions e of
 * (src[e] + dst[e]) is even, else '-'. Along one ring this alternates with the start
 * coordinate, so an all-to-all loads both directions equally; the other coordinates flip it,
 * so on a size-2 dimension different rows use both parallel cables. An all-to-all then loads
 * all links of a dimension equally on every torus except a lone ring of size n = 2 mod 4,
 * where no per-pair rule can (ring 6: loads 4..5; ring 2: 0..1). The rule depends only on
 * the message's endpoints: routes are deterministic.
 * Invariants: after sim_topo_init succeeds, 1 <= P <= SIM_TOPO_MAX_CHIPS, every link id maps
 * to exactly one (chip, dim, dir) and back, a route is contiguous, starts at src, ends at dst,
 * and has sim_topo_hops links, which is a shortest path in the link graph. Passing an
 * out-of-range chip, core, link, dim or dir is a caller bug and trips SS_ASSERT.
 * reference: REFERENCE.md section 6 (TPU ICI topologies; v4 slices smaller than a full
 * dimension have no wraparound).
 */
#ifndef SWITCHSIM_SIM_TOPO_H
#define SWITCHSIM_SIM_TOPO_H

#include <stddef.h>

#include "common/status.h"

enum {
    SIM_TOPO_MAX_DIMS = 3,
    SIM_TOPO_MAX_CHIPS = 65536,          /* limit on P = dims[0] * dims[1] * dims[2] */
    SIM_TOPO_MAX_CORES_PER_CHIP = 1024,
    SIM_TOPO_NAME_MAX = 64               /* buffer that always holds a link name */
};

/* Direction of a link along its dimension; also an index (0, 1) for per-direction arrays. */
typedef enum { SIM_TOPO_PLUS = 0, SIM_TOPO_MINUS = 1 } sim_topo_dir;

typedef struct {
    int ndims;                 /* dimensions the caller gave, 1..3 */
    int dims[SIM_TOPO_MAX_DIMS];  /* chips along x, y, z; 1 beyond ndims */
    int wrap[SIM_TOPO_MAX_DIMS];  /* 1 = wraparound links on that dimension (none if size 1) */
    int cores_per_chip;        /* cores per chip, 1..SIM_TOPO_MAX_CORES_PER_CHIP */
    int nchips;                /* P = dims[0] * dims[1] * dims[2] */
    int nlinks;                /* L, directed links */
    int link_base[SIM_TOPO_MAX_DIMS][2];  /* [dim][dir]: first id of that block */
    int link_count[SIM_TOPO_MAX_DIMS][2]; /* [dim][dir]: links in that block */
} sim_topo;

/* One directed link: it leaves src_chip in direction dir of dimension dim and enters
 * dst_chip. */
typedef struct {
    int src_chip, dst_chip; /* chip ids, 0..P-1 */
    int dim;                /* 0 = x, 1 = y, 2 = z */
    sim_topo_dir dir;
} sim_topo_link;

/* Builds the topology of a dims[0] x ... x dims[ndims-1] pod. A ring is ndims = 1 with wrap,
 * a mesh has no wrap, a torus wraps every dimension; wrap may be NULL (no wraparound); only
 * the first ndims entries of dims and wrap are read. Fails with SS_ERR_RANGE (message names
 * the field) on ndims outside 1..3, a dimension < 1, a wrap flag other than 0/1, more than
 * SIM_TOPO_MAX_CHIPS chips, or cores_per_chip outside 1..SIM_TOPO_MAX_CORES_PER_CHIP; on
 * failure *t is untouched. */
ss_status sim_topo_init(sim_topo *t, int ndims, const int *dims, const int *wrap,
                        int cores_per_chip, ss_err *err);

int sim_topo_nchips(const sim_topo *t);
int sim_topo_ncores(const sim_topo *t);
int sim_topo_nlinks(const sim_topo *t);

/* Chip id <-> coordinates (coord[3], x first; unused dimensions are 0). */
void sim_topo_coords(const sim_topo *t, int chip, int coord[SIM_TOPO_MAX_DIMS]);
int sim_topo_chip(const sim_topo *t, const int coord[SIM_TOPO_MAX_DIMS]);

/* Core numbering: core = chip * cores_per_chip + local. */
int sim_topo_core_id(const sim_topo *t, int chip, int local);
int sim_topo_core_chip(const sim_topo *t, int core);
int sim_topo_core_local(const sim_topo *t, int core);

/* The id of the link leaving chip in direction dir of dimension dim, or -1 if there is none
 * (mesh edge, dimension of size 1). */
int sim_topo_link_id(const sim_topo *t, int chip, int dim, sim_topo_dir dir);
/* The link with id 0 <= link < L. */
sim_topo_link sim_topo_link_get(const sim_topo *t, int link);
/* The chip that link (chip, dim, dir) reaches, or -1 if that link does not exist. */
int sim_topo_neighbor(const sim_topo *t, int chip, int dim, sim_topo_dir dir);

/* Links a message from src_chip to dst_chip crosses (0 when src == dst). */
int sim_topo_hops(const sim_topo *t, int src_chip, int dst_chip);
/* Writes the ids of the first min(hops, max) links of the route, in order, into links_out
 * (may be NULL when max == 0) and returns the hop count, like snprintf: a buffer of
 * sim_topo_diameter(t) entries always suffices. */
int sim_topo_route(const sim_topo *t, int src_chip, int dst_chip, int *links_out, int max);
/* Largest hop count over all pairs: sum over dimensions of n/2 (wrapped) or n-1 (mesh). */
int sim_topo_diameter(const sim_topo *t);

/* The dimension the bisection cuts: the largest one; among equally large ones the one whose
 * cut crosses fewer links (mesh before torus), then the lowest. -1 for a single chip. */
int sim_topo_bisection_dim(const sim_topo *t);
/* Directed links crossing the cut between coordinates < n/2 and >= n/2 of that dimension,
 * both directions: 2 * P/n on a mesh dimension, 4 * P/n on a wrapped one (the wraparound
 * cut too; for n = 2 the two parallel cables), 0 for a single chip. E.g. k x k mesh: 2k,
 * k x k torus: 4k, ring: 4. For odd n the halves differ by P/n chips. */
int sim_topo_bisection_links(const sim_topo *t);

/* "chip (1,2,0) +x -> (2,2,0)" (always three coordinates). Returns what snprintf returns;
 * SIM_TOPO_NAME_MAX bytes always suffice. */
int sim_topo_link_name(const sim_topo *t, int link, char *buf, size_t size);

#endif
