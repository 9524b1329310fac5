/* This file implements the tests of sim/topo: chip and core numbering, dense directed-link
 * ids against coordinate arithmetic, link counts, link names, every route of several small
 * shapes against a brute-force BFS over the link graph, the tie-breaking rule, all-to-all
 * load balance, diameter, bisection counts (closed forms and a brute-force count of links
 * across the cut) and init errors.
 *
 * Bisection closed forms: the cut between coordinates < n/2 and >= n/2 of a dimension of size
 * n crosses P/n lines of that dimension; a mesh line is cut once (one cable, two directions:
 * 2 directed links), a wrapped line twice (the middle and the wraparound cable, or the two
 * parallel cables when n = 2: 4 directed links). So a k x k mesh has 2k, a k x k torus 4k and
 * a ring 4.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim/topo.h"

typedef struct {
    const char *name;
    int ndims;
    int dims[3];
    int wrap[3];
} shape;

/* Shapes the exhaustive checks run on: tori with odd and even sizes, meshes, a ring, size-2
 * and size-1 dimensions, mixed wraparound. */
static const shape small_shapes[] = {
    {"torus 5x3", 2, {5, 3, 1}, {1, 1, 0}},
    {"mesh 4x4", 2, {4, 4, 1}, {0, 0, 0}},
    {"torus 3x3x3", 3, {3, 3, 3}, {1, 1, 1}},
    {"ring 7", 1, {7, 1, 1}, {1, 0, 0}},
    {"torus 4x4", 2, {4, 4, 1}, {1, 1, 0}},
    {"torus 2x2", 2, {2, 2, 1}, {1, 1, 0}},
    {"ring 2", 1, {2, 1, 1}, {1, 0, 0}},
    {"ring 1", 1, {1, 1, 1}, {1, 0, 0}},
    {"mesh 3x1", 2, {3, 1, 1}, {0, 0, 0}},
    {"torus 5x1x3", 3, {5, 1, 3}, {1, 1, 1}},
    {"x-wrapped 4x3x2", 3, {4, 3, 2}, {1, 0, 1}},
    {"mesh 2x3x4", 3, {2, 3, 4}, {0, 0, 0}},
    {"torus 4x4x4", 3, {4, 4, 4}, {1, 1, 1}},
    {"torus 6x4", 2, {6, 4, 1}, {1, 1, 0}},
};
enum { NSMALL = sizeof small_shapes / sizeof small_shapes[0] };

static sim_topo make(const shape *s, int cores_per_chip)
{
    sim_topo t;
    ss_err err = {0};
    ss_status st = sim_topo_init(&t, s->ndims, s->dims, s->wrap, cores_per_chip, &err);
    if (st != SS_OK)
        fail_msg("%s: %s", s->name, err.msg);
    return t;
}

/* Independent per-dimension distance: |delta| on a mesh, the shorter way round on a ring. */
static int dim_distance(int n, int wrap, int a, int b)
{
    int d = abs(a - b);
    return (wrap && n - d < d) ? n - d : d;
}

static int expected_hops(const sim_topo *t, int src, int dst)
{
    int a[3], b[3], hops = 0;
    sim_topo_coords(t, src, a);
    sim_topo_coords(t, dst, b);
    for (int d = 0; d < 3; d++)
        hops += dim_distance(t->dims[d], t->wrap[d], a[d], b[d]);
    return hops;
}

/* Breadth-first search over the directed link graph (links from sim_topo_link_get). */
static void bfs(const sim_topo *t, int src, int *dist)
{
    int P = t->nchips, *queue = malloc((size_t)P * sizeof *queue), head = 0, tail = 0;
    assert_non_null(queue);
    for (int i = 0; i < P; i++)
        dist[i] = -1;
    dist[src] = 0;
    queue[tail++] = src;
    while (head < tail) {
        int u = queue[head++];
        for (int l = 0; l < t->nlinks; l++) {
            sim_topo_link k = sim_topo_link_get(t, l);
            if (k.src_chip == u && dist[k.dst_chip] < 0) {
                dist[k.dst_chip] = dist[u] + 1;
                queue[tail++] = k.dst_chip;
            }
        }
    }
    free(queue);
}

static void test_topo_chip_coords_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < NSMALL; i++) {
        const shape *s = &small_shapes[i];
        sim_topo t = make(s, 1);
        int id = 0;
        for (int z = 0; z < s->dims[2]; z++)
            for (int y = 0; y < s->dims[1]; y++)
                for (int x = 0; x < s->dims[0]; x++, id++) {
                    int want[3] = {x, y, z}, got[3];
                    sim_topo_coords(&t, id, got);
                    if (memcmp(want, got, sizeof want) != 0 || sim_topo_chip(&t, want) != id)
                        fail_msg("%s: chip %d is (%d,%d,%d), want (%d,%d,%d)", s->name, id,
                                 got[0], got[1], got[2], x, y, z);
                }
        assert_int_equal(sim_topo_nchips(&t), id);
    }
}

static void test_topo_core_numbering(void **state)
{
    (void)state;
    shape s = {"torus 4x4", 2, {4, 4}, {1, 1}};
    sim_topo t = make(&s, 2);
    assert_int_equal(sim_topo_ncores(&t), 32);
    assert_int_equal(sim_topo_core_chip(&t, 5), 2);
    assert_int_equal(sim_topo_core_local(&t, 5), 1);
    for (int chip = 0; chip < 16; chip++)
        for (int local = 0; local < 2; local++) {
            int core = sim_topo_core_id(&t, chip, local);
            assert_int_equal(core, chip * 2 + local);
            assert_int_equal(sim_topo_core_chip(&t, core), chip);
            assert_int_equal(sim_topo_core_local(&t, core), local);
        }
    /* two cores of one chip are 0 hops apart */
    assert_int_equal(sim_topo_hops(&t, sim_topo_core_chip(&t, 6), sim_topo_core_chip(&t, 7)), 0);
}

/* Checks one (chip, dim, dir) against coordinate arithmetic; marks its link id as seen. */
static void check_link_slot(const sim_topo *t, const shape *s, int chip, int d, int dir,
                            unsigned char *seen)
{
    int c[3];
    sim_topo_coords(t, chip, c);
    int n = t->dims[d], plus = dir == SIM_TOPO_PLUS;
    int exists = n >= 2 && (t->wrap[d] || (plus ? c[d] < n - 1 : c[d] > 0));
    int id = sim_topo_link_id(t, chip, d, (sim_topo_dir)dir);
    int nb = sim_topo_neighbor(t, chip, d, (sim_topo_dir)dir);
    if (!exists) {
        if (id != -1 || nb != -1)
            fail_msg("%s: chip %d dim %d dir %d should have no link, got id %d neighbour %d",
                     s->name, chip, d, dir, id, nb);
        return;
    }
    if (id < 0 || id >= t->nlinks || seen[id])
        fail_msg("%s: chip %d dim %d dir %d has id %d (L = %d, seen %d)", s->name, chip, d, dir,
                 id, t->nlinks, id >= 0 && id < t->nlinks ? seen[id] : -1);
    seen[id] = 1;
    c[d] = (c[d] + (plus ? 1 : n - 1)) % n;
    int want_dst = sim_topo_chip(t, c);
    sim_topo_link l = sim_topo_link_get(t, id);
    if (l.src_chip != chip || l.dim != d || (int)l.dir != dir || l.dst_chip != want_dst ||
        nb != want_dst)
        fail_msg("%s: link %d = (%d, %d, %d) -> %d, want (%d, %d, %d) -> %d (neighbour %d)",
                 s->name, id, l.src_chip, l.dim, (int)l.dir, l.dst_chip, chip, d, dir, want_dst,
                 nb);
}

static void test_topo_link_ids_dense_and_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < NSMALL; i++) {
        const shape *s = &small_shapes[i];
        sim_topo t = make(s, 1);
        unsigned char *seen = calloc((size_t)t.nlinks + 1, 1);
        assert_non_null(seen);
        for (int chip = 0; chip < t.nchips; chip++)
            for (int d = 0; d < 3; d++)
                for (int dir = 0; dir < 2; dir++)
                    check_link_slot(&t, s, chip, d, dir, seen);
        int count = 0;
        for (int l = 0; l < t.nlinks; l++)
            count += seen[l];
        if (count != t.nlinks)
            fail_msg("%s: %d of %d link ids reached from (chip, dim, dir)", s->name, count,
                     t.nlinks);
        free(seen);
    }
}

static void test_topo_link_counts(void **state)
{
    (void)state;
    static const struct {
        shape s;
        int links;
    } cases[] = {
        {{"ring 8", 1, {8}, {1}}, 16},
        {{"mesh 4x4", 2, {4, 4}, {0, 0}}, 48},
        {{"torus 4x4", 2, {4, 4}, {1, 1}}, 64},
        {{"torus 2x2", 2, {2, 2}, {1, 1}}, 16},
        {{"torus 4x4x4", 3, {4, 4, 4}, {1, 1, 1}}, 384},
        {{"mesh 3x1", 2, {3, 1}, {0, 0}}, 4},
        {{"ring 2", 1, {2}, {1}}, 4},
        {{"ring 1", 1, {1}, {1}}, 0},
        {{"mesh 2x2x2", 3, {2, 2, 2}, {0, 0, 0}}, 24},
        {{"torus 16x16x16", 3, {16, 16, 16}, {1, 1, 1}}, 24576},
        {{"torus 4x1x4", 3, {4, 1, 4}, {1, 1, 1}}, 64},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sim_topo t = make(&cases[i].s, 1);
        printf("%-16s %d directed links\n", cases[i].s.name, sim_topo_nlinks(&t));
        if (sim_topo_nlinks(&t) != cases[i].links)
            fail_msg("%s: %d links, want %d", cases[i].s.name, sim_topo_nlinks(&t),
                     cases[i].links);
    }
}

static void test_topo_size2_wrap_has_two_parallel_links(void **state)
{
    (void)state;
    shape s = {"ring 2", 1, {2}, {1}};
    sim_topo t = make(&s, 1);
    int plus = sim_topo_link_id(&t, 0, 0, SIM_TOPO_PLUS);
    int minus = sim_topo_link_id(&t, 0, 0, SIM_TOPO_MINUS);
    assert_true(plus >= 0 && minus >= 0 && plus != minus);
    assert_int_equal(sim_topo_neighbor(&t, 0, 0, SIM_TOPO_PLUS), 1);
    assert_int_equal(sim_topo_neighbor(&t, 0, 0, SIM_TOPO_MINUS), 1);
    char a[SIM_TOPO_NAME_MAX], b[SIM_TOPO_NAME_MAX];
    sim_topo_link_name(&t, plus, a, sizeof a);
    sim_topo_link_name(&t, minus, b, sizeof b);
    assert_string_equal(a, "chip (0,0,0) +x -> (1,0,0)");
    assert_string_equal(b, "chip (0,0,0) -x -> (1,0,0)");
    /* the same shape as a mesh has one cable: one link each way */
    shape m = {"mesh 2", 1, {2}, {0}};
    sim_topo tm = make(&m, 1);
    assert_int_equal(sim_topo_nlinks(&tm), 2);
    assert_int_equal(sim_topo_link_id(&tm, 0, 0, SIM_TOPO_MINUS), -1);
}

static int name_of(const sim_topo *t, int chip, int dim, sim_topo_dir dir, char *buf)
{
    int id = sim_topo_link_id(t, chip, dim, dir);
    assert_true(id >= 0);
    return sim_topo_link_name(t, id, buf, SIM_TOPO_NAME_MAX);
}

static void test_topo_link_name(void **state)
{
    (void)state;
    shape s = {"torus 4x4", 2, {4, 4}, {1, 1}};
    sim_topo t = make(&s, 1);
    char buf[SIM_TOPO_NAME_MAX];
    int n = name_of(&t, sim_topo_chip(&t, (int[3]){1, 2, 0}), 0, SIM_TOPO_PLUS, buf);
    assert_string_equal(buf, "chip (1,2,0) +x -> (2,2,0)");
    assert_int_equal(n, (int)strlen(buf));
    name_of(&t, sim_topo_chip(&t, (int[3]){3, 2, 0}), 0, SIM_TOPO_PLUS, buf);
    assert_string_equal(buf, "chip (3,2,0) +x -> (0,2,0)");
    name_of(&t, sim_topo_chip(&t, (int[3]){1, 0, 0}), 1, SIM_TOPO_MINUS, buf);
    assert_string_equal(buf, "chip (1,0,0) -y -> (1,3,0)");
    shape c = {"mesh 16x16x16", 3, {16, 16, 16}, {0, 0, 0}};
    sim_topo tc = make(&c, 1);
    name_of(&tc, sim_topo_chip(&tc, (int[3]){15, 14, 15}), 2, SIM_TOPO_MINUS, buf);
    assert_string_equal(buf, "chip (15,14,15) -z -> (15,14,14)");
    /* truncates like snprintf and still returns the full length */
    char small[8];
    int full = sim_topo_link_name(&t, 0, small, sizeof small);
    assert_int_equal(full, (int)strlen("chip (0,0,0) +x -> (1,0,0)"));
    assert_string_equal(small, "chip (0");
}

/* Checks one route: contiguous from src to dst, dimension-ordered, one direction per
 * dimension, hop count equal to the BFS distance and to the per-dimension formula. */
static void check_route(const sim_topo *t, const shape *s, int src, int dst, int bfs_dist,
                        int *links)
{
    int hops = sim_topo_route(t, src, dst, links, sim_topo_diameter(t));
    int want = expected_hops(t, src, dst);
    if (hops != bfs_dist || hops != want || hops != sim_topo_hops(t, src, dst))
        fail_msg("%s: %d -> %d: route %d hops, hops() %d, BFS %d, formula %d", s->name, src,
                 dst, hops, sim_topo_hops(t, src, dst), bfs_dist, want);
    int at = src, last_dim = -1, last_dir = -1;
    for (int h = 0; h < hops; h++) {
        sim_topo_link l = sim_topo_link_get(t, links[h]);
        if (l.src_chip != at)
            fail_msg("%s: %d -> %d: hop %d leaves chip %d, route is at %d", s->name, src, dst,
                     h, l.src_chip, at);
        if (l.dim < last_dim || (l.dim == last_dim && (int)l.dir != last_dir))
            fail_msg("%s: %d -> %d: hop %d goes dim %d dir %d after dim %d dir %d", s->name,
                     src, dst, h, l.dim, (int)l.dir, last_dim, last_dir);
        at = l.dst_chip;
        last_dim = l.dim;
        last_dir = (int)l.dir;
    }
    if (at != dst)
        fail_msg("%s: %d -> %d: route ends at %d", s->name, src, dst, at);
}

static void test_topo_route_all_pairs_match_bfs(void **state)
{
    (void)state;
    for (int i = 0; i < NSMALL; i++) {
        const shape *s = &small_shapes[i];
        sim_topo t = make(s, 1);
        int P = t.nchips, *dist = malloc((size_t)P * sizeof *dist);
        int *links = malloc(((size_t)sim_topo_diameter(&t) + 1) * sizeof *links);
        assert_non_null(dist);
        assert_non_null(links);
        int ecc = 0;
        for (int src = 0; src < P; src++) {
            bfs(&t, src, dist);
            for (int dst = 0; dst < P; dst++) {
                if (dist[dst] < 0)
                    fail_msg("%s: %d unreachable from %d", s->name, dst, src);
                check_route(&t, s, src, dst, dist[dst], links);
                ecc = dist[dst] > ecc ? dist[dst] : ecc;
            }
        }
        printf("%-16s %5d pairs, diameter %d (BFS %d)\n", s->name, P * P, sim_topo_diameter(&t),
               ecc);
        if (ecc != sim_topo_diameter(&t))
            fail_msg("%s: diameter %d, BFS eccentricity max %d", s->name, sim_topo_diameter(&t),
                     ecc);
        free(dist);
        free(links);
    }
}

static void test_topo_route_truncates_like_snprintf(void **state)
{
    (void)state;
    shape s = {"ring 8", 1, {8}, {1}};
    sim_topo t = make(&s, 1);
    int links[4] = {-7, -7, -7, -7};
    assert_int_equal(sim_topo_route(&t, 0, 3, links, 2), 3);
    assert_int_equal(links[0], sim_topo_link_id(&t, 0, 0, SIM_TOPO_PLUS));
    assert_int_equal(links[1], sim_topo_link_id(&t, 1, 0, SIM_TOPO_PLUS));
    assert_int_equal(links[2], -7);
    assert_int_equal(sim_topo_route(&t, 0, 3, NULL, 0), 3);
    assert_int_equal(sim_topo_route(&t, 5, 5, links, 4), 0);
}

/* Route of (sx,sy) -> (dx,dy) on t must be exactly the listed (chip coords, dim, dir) hops. */
typedef struct {
    int x, y, dim;
    sim_topo_dir dir;
} hop;

static void expect_route(const sim_topo *t, const int s[3], const int d[3], const hop *want,
                         int n)
{
    int links[16], again[16];
    int hops = sim_topo_route(t, sim_topo_chip(t, s), sim_topo_chip(t, d), links, 16);
    assert_int_equal(hops, n);
    for (int i = 0; i < n; i++) {
        int id = sim_topo_link_id(t, sim_topo_chip(t, (int[3]){want[i].x, want[i].y, 0}),
                                  want[i].dim, want[i].dir);
        if (links[i] != id) {
            char got[SIM_TOPO_NAME_MAX], exp[SIM_TOPO_NAME_MAX];
            sim_topo_link_name(t, links[i], got, sizeof got);
            sim_topo_link_name(t, id, exp, sizeof exp);
            fail_msg("(%d,%d) -> (%d,%d) hop %d: %s, want %s", s[0], s[1], d[0], d[1], i, got,
                     exp);
        }
    }
    /* deterministic: the same call gives the same links */
    assert_int_equal(sim_topo_route(t, sim_topo_chip(t, s), sim_topo_chip(t, d), again, 16), n);
    assert_memory_equal(links, again, (size_t)n * sizeof *links);
}

static void test_topo_route_tie_break_rule(void **state)
{
    (void)state;
    const sim_topo_dir P = SIM_TOPO_PLUS, M = SIM_TOPO_MINUS;
    shape r = {"ring 4", 1, {4}, {1}};
    sim_topo ring = make(&r, 1);
    /* 1-D: '+' when the source coordinate is even */
    expect_route(&ring, (int[3]){0}, (int[3]){2}, (hop[]){{0, 0, 0, P}, {1, 0, 0, P}}, 2);
    expect_route(&ring, (int[3]){1}, (int[3]){3}, (hop[]){{1, 0, 0, M}, {0, 0, 0, M}}, 2);
    expect_route(&ring, (int[3]){2}, (int[3]){0}, (hop[]){{2, 0, 0, P}, {3, 0, 0, P}}, 2);
    expect_route(&ring, (int[3]){3}, (int[3]){1}, (hop[]){{3, 0, 0, M}, {2, 0, 0, M}}, 2);
    shape s = {"torus 4x4", 2, {4, 4}, {1, 1}};
    sim_topo t = make(&s, 1);
    /* x tie: 0 + (1 + 3) even -> +x; y tie from (2,1): 1 + (0 + 2) odd -> -y */
    expect_route(&t, (int[3]){0, 1}, (int[3]){2, 3},
                 (hop[]){{0, 1, 0, P}, {1, 1, 0, P}, {2, 1, 1, M}, {2, 0, 1, M}}, 4);
    /* x tie: 0 + (1 + 2) odd -> -x; y: 1 -> 2 is one hop, no tie */
    expect_route(&t, (int[3]){0, 1}, (int[3]){2, 2},
                 (hop[]){{0, 1, 0, M}, {3, 1, 0, M}, {2, 1, 1, P}}, 3);
    shape q = {"torus 2x2", 2, {2, 2}, {1, 1}};
    sim_topo t2 = make(&q, 1);
    /* size 2: the other coordinates pick which of the two parallel cables is used */
    expect_route(&t2, (int[3]){0, 0}, (int[3]){1, 0}, (hop[]){{0, 0, 0, P}}, 1);
    expect_route(&t2, (int[3]){0, 0}, (int[3]){1, 1}, (hop[]){{0, 0, 0, M}, {1, 0, 1, M}}, 2);
    expect_route(&t2, (int[3]){0, 1}, (int[3]){1, 0}, (hop[]){{0, 1, 0, M}, {1, 1, 1, P}}, 2);
    /* a mesh has no ties: it always moves straight towards the destination */
    shape m = {"mesh 4x4", 2, {4, 4}, {0, 0}};
    sim_topo tm = make(&m, 1);
    expect_route(&tm, (int[3]){3, 0}, (int[3]){1, 2},
                 (hop[]){{3, 0, 0, M}, {2, 0, 0, M}, {1, 0, 1, P}, {1, 1, 1, P}}, 4);
}

/* All-to-all (one message per ordered pair) link loads; returns min and max per dimension. */
static void alltoall_loads(const sim_topo *t, int lo[3], int hi[3])
{
    int *load = calloc((size_t)t->nlinks + 1, sizeof *load);
    int *links = malloc(((size_t)sim_topo_diameter(t) + 1) * sizeof *links);
    assert_non_null(load);
    assert_non_null(links);
    for (int src = 0; src < t->nchips; src++)
        for (int dst = 0; dst < t->nchips; dst++) {
            int n = sim_topo_route(t, src, dst, links, sim_topo_diameter(t));
            for (int h = 0; h < n; h++)
                load[links[h]]++;
        }
    for (int d = 0; d < 3; d++) {
        lo[d] = 1 << 30;
        hi[d] = 0;
    }
    for (int l = 0; l < t->nlinks; l++) {
        int d = sim_topo_link_get(t, l).dim;
        lo[d] = load[l] < lo[d] ? load[l] : lo[d];
        hi[d] = load[l] > hi[d] ? load[l] : hi[d];
    }
    free(load);
    free(links);
}

/* The tie rule balances all-to-all: on every torus below the links of one dimension carry
 * equal loads, except where no per-pair rule can: a lone ring with n = 2 mod 4 has n/2 tie
 * messages per direction of n/2 hops each, n^2/4 link-hops that n links cannot share evenly
 * (ring 6: 4.5 per link, so 4..5), and ring 2 has one message each way over 4 links (0..1).
 * In 2-D and 3-D the other coordinates flip the rule, which evens these out (torus 6x4). */
static void test_topo_alltoall_loads_every_link_of_a_dim_equally(void **state)
{
    (void)state;
    static const struct {
        shape s;
        int spread; /* max - min link load within a dimension */
    } cases[] = {
        {{"ring 4", 1, {4}, {1}}, 0},
        {{"ring 8", 1, {8}, {1}}, 0},
        {{"ring 6", 1, {6}, {1}}, 1},
        {{"ring 2", 1, {2}, {1}}, 1},
        {{"torus 4x4", 2, {4, 4}, {1, 1}}, 0},
        {{"torus 2x2", 2, {2, 2}, {1, 1}}, 0},
        {{"torus 4x2", 2, {4, 2}, {1, 1}}, 0},
        {{"torus 2x2x2", 3, {2, 2, 2}, {1, 1, 1}}, 0},
        {{"torus 6x4", 2, {6, 4}, {1, 1}}, 0},
        {{"torus 6x6", 2, {6, 6}, {1, 1}}, 0},
        {{"torus 4x4x4", 3, {4, 4, 4}, {1, 1, 1}}, 0},
        {{"torus 5x3", 2, {5, 3}, {1, 1}}, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sim_topo t = make(&cases[i].s, 1);
        int lo[3], hi[3];
        alltoall_loads(&t, lo, hi);
        for (int d = 0; d < 3; d++) {
            if (t.dims[d] < 2)
                continue;
            printf("%-12s dim %d: all-to-all link load min %d max %d\n", cases[i].s.name, d,
                   lo[d], hi[d]);
            if (hi[d] - lo[d] != cases[i].spread)
                fail_msg("%s dim %d: link loads range %d..%d (max difference %d, want %d)",
                         cases[i].s.name, d, lo[d], hi[d], hi[d] - lo[d], cases[i].spread);
        }
    }
}

static void test_topo_diameter(void **state)
{
    (void)state;
    static const struct {
        shape s;
        int diameter;
    } cases[] = {
        {{"ring 8", 1, {8}, {1}}, 4},
        {{"ring 7", 1, {7}, {1}}, 3},
        {{"mesh 4x4", 2, {4, 4}, {0, 0}}, 6},
        {{"torus 4x4", 2, {4, 4}, {1, 1}}, 4},
        {{"torus 5x3", 2, {5, 3}, {1, 1}}, 3},
        {{"torus 16x16x16", 3, {16, 16, 16}, {1, 1, 1}}, 24},
        {{"mesh 3x1", 2, {3, 1}, {0, 0}}, 2},
        {{"ring 1", 1, {1}, {1}}, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sim_topo t = make(&cases[i].s, 1);
        if (sim_topo_diameter(&t) != cases[i].diameter)
            fail_msg("%s: diameter %d, want %d", cases[i].s.name, sim_topo_diameter(&t),
                     cases[i].diameter);
    }
}

/* Directed links whose ends lie on different sides of coordinate n/2 of dimension d. */
static int count_cut(const sim_topo *t, int d)
{
    int count = 0, half = t->dims[d] / 2;
    for (int l = 0; l < t->nlinks; l++) {
        sim_topo_link k = sim_topo_link_get(t, l);
        int a[3], b[3];
        sim_topo_coords(t, k.src_chip, a);
        sim_topo_coords(t, k.dst_chip, b);
        count += (a[d] < half) != (b[d] < half);
    }
    return count;
}

static void check_bisection(const shape *s, int want_dim, int want_links)
{
    sim_topo t = make(s, 1);
    int d = sim_topo_bisection_dim(&t), got = sim_topo_bisection_links(&t);
    int brute = d < 0 ? 0 : count_cut(&t, d);
    printf("%-18s bisection dim %d: %d directed links (brute force %d)\n", s->name, d, got,
           brute);
    if (d != want_dim || got != want_links || brute != want_links)
        fail_msg("%s: bisection dim %d with %d links (brute force %d), want dim %d, %d links",
                 s->name, d, got, brute, want_dim, want_links);
}

static void test_topo_bisection_links(void **state)
{
    (void)state;
    for (int k = 2; k <= 8; k++) {
        char tn[32], mn[32], rn[32];
        snprintf(tn, sizeof tn, "torus %dx%d", k, k);
        snprintf(mn, sizeof mn, "mesh %dx%d", k, k);
        snprintf(rn, sizeof rn, "ring %d", k);
        check_bisection(&(shape){tn, 2, {k, k}, {1, 1}}, 0, 4 * k);
        check_bisection(&(shape){mn, 2, {k, k}, {0, 0}}, 0, 2 * k);
        check_bisection(&(shape){rn, 1, {k}, {1}}, 0, 4);
    }
    check_bisection(&(shape){"line 5", 1, {5}, {0}}, 0, 2);
    check_bisection(&(shape){"torus 4x4x4", 3, {4, 4, 4}, {1, 1, 1}}, 0, 64);
    check_bisection(&(shape){"torus 16x16x16", 3, {16, 16, 16}, {1, 1, 1}}, 0, 1024);
    check_bisection(&(shape){"torus 4x8", 2, {4, 8}, {1, 1}}, 1, 16);
    check_bisection(&(shape){"torus 8 x mesh 8", 2, {8, 8}, {1, 0}}, 1, 16);
    check_bisection(&(shape){"mesh 1x1x6", 3, {1, 1, 6}, {0, 0, 0}}, 2, 2);
    check_bisection(&(shape){"single chip", 1, {1}, {1}}, -1, 0);
}

/* Runs sim_topo_init on bad arguments: it must fail with SS_ERR_RANGE, leave t untouched and
 * say what is wrong (every fragment in want). */
static void expect_init_error(int ndims, const int *dims, const int *wrap, int cores,
                              const char *want1, const char *want2)
{
    sim_topo t, before;
    memset(&t, 0xA5, sizeof t);
    before = t;
    ss_err err = {0};
    assert_int_equal(sim_topo_init(&t, ndims, dims, wrap, cores, &err), SS_ERR_RANGE);
    printf("error: %s\n", err.msg);
    if (!strstr(err.msg, want1) || (want2 && !strstr(err.msg, want2)))
        fail_msg("message '%s' lacks '%s' / '%s'", err.msg, want1, want2 ? want2 : "");
    assert_memory_equal(&t, &before, sizeof t);
}

static void test_topo_init_errors(void **state)
{
    (void)state;
    const int ok[3] = {4, 4, 4}, torus[3] = {1, 1, 1};
    expect_init_error(0, ok, torus, 1, "ndims = 0", "must be 1, 2 or 3");
    expect_init_error(4, (int[4]){2, 2, 2, 2}, NULL, 1, "ndims = 4", "must be 1, 2 or 3");
    expect_init_error(-1, ok, torus, 1, "ndims = -1", NULL);
    expect_init_error(2, (int[3]){4, 0}, torus, 1, "dims[1] (y) = 0", ">= 1 chip");
    expect_init_error(3, (int[3]){4, 4, -3}, torus, 1, "dims[2] (z) = -3", NULL);
    expect_init_error(2, ok, (int[3]){1, 2}, 1, "wrap[1] (y) = 2", "must be 0 or 1");
    expect_init_error(1, (int[3]){65537}, torus, 1, "65537 = 65537 chips", "more than the limit of 65536");
    expect_init_error(2, (int[3]){256, 257}, torus, 1, "256 x 257 = 65792 chips", NULL);
    expect_init_error(3, (int[3]){100000, 100000, 100000}, torus, 1, "100000 x 100000 x 100000 = 1000000000000000 chips", NULL);
    expect_init_error(2, ok, torus, 0, "cores_per_chip = 0", "1..1024");
    expect_init_error(2, ok, torus, 1025, "cores_per_chip = 1025", NULL);
    /* the limits themselves are accepted; wrap may be NULL (a mesh) */
    sim_topo t;
    ss_err err = {0};
    assert_int_equal(sim_topo_init(&t, 2, (int[3]){256, 256}, torus, 1024, &err), SS_OK);
    assert_int_equal(sim_topo_nchips(&t), 65536);
    assert_int_equal(sim_topo_ncores(&t), 65536 * 1024);
    assert_int_equal(sim_topo_init(&t, 1, (int[3]){65536}, NULL, 1, &err), SS_OK);
    assert_int_equal(sim_topo_nlinks(&t), 2 * 65535);
    assert_int_equal(sim_topo_hops(&t, 0, 65535), 65535);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topo_chip_coords_round_trip),
        cmocka_unit_test(test_topo_core_numbering),
        cmocka_unit_test(test_topo_link_ids_dense_and_round_trip),
        cmocka_unit_test(test_topo_link_counts),
        cmocka_unit_test(test_topo_size2_wrap_has_two_parallel_links),
        cmocka_unit_test(test_topo_link_name),
        cmocka_unit_test(test_topo_route_all_pairs_match_bfs),
        cmocka_unit_test(test_topo_route_truncates_like_snprintf),
        cmocka_unit_test(test_topo_route_tie_break_rule),
        cmocka_unit_test(test_topo_alltoall_loads_every_link_of_a_dim_equally),
        cmocka_unit_test(test_topo_diameter),
        cmocka_unit_test(test_topo_bisection_links),
        cmocka_unit_test(test_topo_init_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
