/* This file implements the tests of sim/program: the builder's CSR layout and its rejection
 * of forward, cross-core and repeated dependencies and of out-of-range arguments; validation
 * of send/recv matching, collective consistency and deadlocks; the text form (sample program,
 * malformed programs with their exact FILE:LINE:COL messages, write -> parse -> write round
 * trips, fuzzed inputs that must never crash); and a 1,000,000-op build whose buffer growth
 * must stay logarithmic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim/program.h"

#define BF16 SIM_OPERANDS_BF16
#define FP32 SIM_OPERANDS_F32

/* ---- helpers ---- */

static const char *programs_dir(void)
{
    static char dir[4096];
    const char *root = getenv("SWITCHSIM_SOURCE_ROOT");
    snprintf(dir, sizeof dir, "%s/tests/program/programs", root ? root : ".");
    return dir;
}

static void program_path(char *out, size_t cap, const char *file)
{
    snprintf(out, cap, "%s/%s", programs_dir(), file);
}

/* The canonical text of p (malloc'd). */
static char *write_text(const sim_program *p)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    ss_err err;
    ss_status st = sim_program_write(p, f, &err);
    fclose(f);
    if (st != SS_OK)
        fail_msg("write failed: %s", err.msg);
    return buf;
}

static ss_status parse_text(sim_program *p, const char *text, size_t len, const char *name,
                            ss_err *err)
{
    char *copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, text, len);
    FILE *f = len ? fmemopen(copy, len, "r") : fopen("/dev/null", "r");
    assert_non_null(f);
    ss_status st = sim_program_parse_stream(p, f, name, err);
    fclose(f);
    free(copy);
    return st;
}

static void assert_contains(const char *haystack, const char *needle)
{
    assert_non_null(haystack);
    if (!strstr(haystack, needle))
        fail_msg("expected '%s' in: %s", needle, haystack ? haystack : "(null)");
}

/* Asserts that p's sticky error contains needle and that p takes no more ops. */
static void assert_sticky(sim_program *p, const char *needle)
{
    ss_err err;
    assert_int_not_equal(sim_program_status(p, &err), SS_OK);
    assert_contains(err.msg, needle);
    int32_t n = p->nops;
    assert_int_equal(sim_program_add_hbm(p, 0, 0, 1, 1, NULL, 0), -1);
    assert_int_equal(p->nops, n);
    assert_int_not_equal(sim_program_validate(p, &err), SS_OK);
}

static void init_program(sim_program *p, int32_t ncores)
{
    ss_err err;
    if (sim_program_init(p, ncores, &err) != SS_OK)
        fail_msg("init: %s", err.msg);
}

static void assert_valid(const sim_program *p)
{
    ss_err err;
    if (sim_program_validate(p, &err) != SS_OK)
        fail_msg("validate: %s", err.msg);
}

static void assert_invalid(const sim_program *p, const char *needle)
{
    ss_err err;
    assert_int_equal(sim_program_validate(p, &err), SS_ERR_CONFIG);
    assert_contains(err.msg, needle);
}

/* ---- builder ---- */

static void test_program_builder_csr(void **state)
{
    (void)state;
    sim_program p;
    init_program(&p, 2);
    int32_t lq = sim_program_intern(&p, "enc.0.attn.q");
    int32_t lq2 = sim_program_intern(&p, "enc.0.attn.q");
    assert_int_equal(lq, lq2); /* interned once */
    assert_int_equal(sim_program_intern(&p, ""), 0);

    sim_program_set_scope(&p, 3, SIM_PHASE_BACKWARD);
    int32_t a = sim_program_add_matmul(&p, 0, lq, 128, 256, 512, BF16, NULL, 0);
    int32_t b = sim_program_add_hbm(&p, 1, 0, 10, 20, NULL, SIM_DEPS_PREV); /* first of core 1 */
    int32_t c = sim_program_add_vector(&p, 0, 0, SIM_VECTOR_SOFTMAX, 1024, 0, FP32, NULL,
                                       SIM_DEPS_PREV);
    sim_program_set_scope(&p, SIM_PROG_NONE, SIM_PHASE_NONE);
    int32_t d0[] = {c, a};
    int32_t d = sim_program_add_send(&p, 0, 0, 1, 4096, 0, d0, 2);
    int32_t e = sim_program_add_recv(&p, 1, 0, 0, 4096, 0, &b, 1);
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);
    assert_int_equal(c, 2);
    assert_int_equal(d, 3);
    assert_int_equal(e, 4);
    assert_int_equal(p.nops, 5);

    const uint32_t want_start[] = {0, 0, 0, 1, 3, 4};
    const int32_t want_deps[] = {0, 2, 0, 1};
    assert_int_equal(p.ndeps, 4);
    assert_memory_equal(p.dep_start, want_start, sizeof want_start);
    assert_memory_equal(p.deps, want_deps, sizeof want_deps);
    int32_t nd;
    const int32_t *dd = sim_program_deps(&p, d, &nd);
    assert_int_equal(nd, 2);
    assert_int_equal(dd[0], c);
    assert_int_equal(dd[1], a);

    int32_t n0, n1;
    const int32_t *c0 = sim_program_core_ops(&p, 0, &n0);
    const int32_t *c1 = sim_program_core_ops(&p, 1, &n1);
    assert_int_equal(n0, 3);
    assert_int_equal(n1, 2);
    assert_int_equal(c0[0], a);
    assert_int_equal(c0[1], c);
    assert_int_equal(c0[2], d);
    assert_int_equal(c1[0], b);
    assert_int_equal(c1[1], e);

    const sim_prog_op *op = sim_program_op(&p, a);
    assert_int_equal(op->kind, SIM_OP_MATMUL);
    assert_int_equal(op->matmul.m, 128);
    assert_int_equal(op->matmul.k, 256);
    assert_int_equal(op->matmul.n, 512);
    assert_int_equal(op->layer, 3);
    assert_int_equal(op->phase, SIM_PHASE_BACKWARD);
    assert_string_equal(sim_program_string(&p, op->label), "enc.0.attn.q");
    assert_int_equal(sim_program_op(&p, c)->vector.kind, SIM_VECTOR_SOFTMAX);
    assert_int_equal(sim_program_op(&p, d)->layer, SIM_PROG_NONE);
    assert_int_equal(sim_program_op(&p, d)->xfer.peer, 1);
    assert_int_equal(sim_program_op(&p, e)->xfer.bytes, 4096);
    assert_int_equal(sizeof(sim_prog_op), 48);
    assert_valid(&p);
    sim_program_free(&p);
}

static void test_program_builder_rejects_forward_dep(void **state)
{
    (void)state;
    sim_program p;
    init_program(&p, 2);
    int32_t a = sim_program_add_hbm(&p, 0, 0, 1, 1, NULL, 0);
    int32_t self = a + 1; /* the op being added, i.e. a forward reference */
    assert_int_equal(sim_program_add_hbm(&p, 0, 0, 1, 1, &self, 1), -1);
    assert_sticky(&p, "dependency 1 is not an earlier op");
    assert_int_equal(p.nops, 1);
    sim_program_free(&p);

    init_program(&p, 2);
    a = sim_program_add_hbm(&p, 0, 0, 1, 1, NULL, 0);
    assert_int_equal(sim_program_add_hbm(&p, 1, 0, 1, 1, &a, 1), -1);
    assert_sticky(&p, "dependency 0 is on core 0");
    sim_program_free(&p);

    init_program(&p, 2);
    a = sim_program_add_hbm(&p, 0, 0, 1, 1, NULL, 0);
    int32_t twice[] = {a, a};
    assert_int_equal(sim_program_add_hbm(&p, 0, 0, 1, 1, twice, 2), -1);
    assert_sticky(&p, "dependency 0 is listed twice");
    sim_program_free(&p);

    init_program(&p, 2); /* the long-list path of the repeat check */
    int32_t many[100];
    for (int i = 0; i < 100; i++)
        many[i] = sim_program_add_hbm(&p, 0, 0, 1, 1, NULL, 0);
    assert_int_not_equal(sim_program_add_hbm(&p, 0, 0, 1, 1, many, 100), -1);
    many[99] = many[5];
    assert_int_equal(sim_program_add_hbm(&p, 0, 0, 1, 1, many, 100), -1);
    assert_sticky(&p, "dependency 5 is listed twice");
    sim_program_free(&p);

    init_program(&p, 2);
    int32_t neg = -3;
    assert_int_equal(sim_program_add_hbm(&p, 0, 0, 1, 1, &neg, 1), -1);
    assert_sticky(&p, "dependency -3 is not an earlier op");
    sim_program_free(&p);
}

static void test_program_builder_rejects_bad_args(void **state)
{
    (void)state;
    static const uint64_t m2[] = {0, 1, 2, 0};
    sim_program p;

    init_program(&p, 4);
    assert_int_equal(sim_program_add_send(&p, 0, 0, 4, 8, 0, NULL, 0), -1);
    assert_sticky(&p, "peer core 4 is out of range: the program has 4 cores (0..3)");
    sim_program_free(&p);

    init_program(&p, 4);
    assert_int_equal(sim_program_add_recv(&p, 2, 0, 2, 8, 0, NULL, 0), -1);
    assert_sticky(&p, "recv on core 2: the peer is the op's own core");
    sim_program_free(&p);

    init_program(&p, 4);
    assert_int_equal(sim_program_add_send(&p, 0, 0, 1, 8, -1, NULL, 0), -1);
    assert_sticky(&p, "tag -1 is negative");
    sim_program_free(&p);

    init_program(&p, 4);
    assert_int_equal(sim_program_add_matmul(&p, 0, 0, 1, 0, 1, BF16, NULL, 0), -1);
    assert_sticky(&p, "matmul on core 0: k = 0 is out of range (1..9007199254740992)");
    sim_program_free(&p);

    init_program(&p, 4);
    assert_int_equal(sim_program_add_hbm(&p, 0, 0, SIM_PROG_MAX_SIZE + 1, 0, NULL, 0), -1);
    assert_sticky(&p, "read = 9007199254740993 is out of range");
    sim_program_free(&p);

    init_program(&p, 4);
    assert_int_equal(sim_program_add_hbm(&p, 4, 0, 1, 1, NULL, 0), -1);
    assert_sticky(&p, "hbm: core 4 is out of range");
    sim_program_free(&p);

    init_program(&p, 4);
    assert_int_equal(sim_program_add_hbm(&p, 0, 7, 1, 1, NULL, 0), -1);
    assert_sticky(&p, "label id 7 is not an interned string");
    sim_program_free(&p);

    init_program(&p, 4);
    assert_int_equal(sim_program_add_vector(&p, 0, 0, SIM_VECTOR_REDUCTION, 100, 7, FP32,
                                            NULL, 0), -1);
    assert_sticky(&p, "row_len 7 does not divide elements 100");
    sim_program_free(&p);

    init_program(&p, 4);
    assert_int_equal(sim_program_intern(&p, "has space"), -1);
    assert_sticky(&p, "has a space");
    sim_program_free(&p);

    init_program(&p, 4);
    int32_t dup[] = {0, 1, 0};
    assert_int_equal(sim_program_add_group(&p, dup, 3), -1);
    assert_sticky(&p, "core 0 appears twice in a group");
    sim_program_free(&p);

    init_program(&p, 4);
    int32_t out[] = {0, 4};
    assert_int_equal(sim_program_add_group(&p, out, 2), -1);
    assert_sticky(&p, "group member 4 (rank 1) is out of range");
    sim_program_free(&p);

    init_program(&p, 4); /* collective on a core outside its group */
    int32_t g01[] = {0, 1};
    sim_prog_coll c = {.id = 0, .kind = SIM_COLL_ALLREDUCE, .group = 0, .bytes = 64,
                       .matrix = SIM_PROG_NONE};
    assert_int_equal(sim_program_add_group(&p, g01, 2), 0);
    assert_int_equal(sim_program_add_collective(&p, 2, 0, &c, NULL, 0), -1);
    assert_sticky(&p, "collective 0 on core 2: the core is not a member of its group 0-1");
    sim_program_free(&p);

    init_program(&p, 4); /* barrier with bytes */
    assert_int_equal(sim_program_add_group(&p, g01, 2), 0);
    c.kind = SIM_COLL_BARRIER;
    assert_int_equal(sim_program_add_collective(&p, 0, 0, &c, NULL, 0), -1);
    assert_sticky(&p, "a barrier moves no data");
    sim_program_free(&p);

    init_program(&p, 4); /* alltoallv whose matrix does not fit the group */
    int32_t g012[] = {0, 1, 2};
    assert_int_equal(sim_program_add_group(&p, g012, 3), 0);
    assert_int_equal(sim_program_add_matrix(&p, m2, 2), 0);
    c = (sim_prog_coll){.id = 0, .kind = SIM_COLL_ALLTOALLV, .group = 0, .matrix = 0};
    assert_int_equal(sim_program_add_collective(&p, 0, 0, &c, NULL, 0), -1);
    assert_sticky(&p, "the matrix is 2x2 but the group has 3 cores");
    sim_program_free(&p);

    init_program(&p, 4); /* a matrix on a kind other than alltoallv */
    assert_int_equal(sim_program_add_group(&p, g01, 2), 0);
    assert_int_equal(sim_program_add_matrix(&p, m2, 2), 0);
    c = (sim_prog_coll){.id = 0, .kind = SIM_COLL_ALLGATHER, .group = 0, .matrix = 0};
    assert_int_equal(sim_program_add_collective(&p, 0, 0, &c, NULL, 0), -1);
    assert_sticky(&p, "a matrix applies only to alltoallv, not allgather");
    sim_program_free(&p);

    init_program(&p, 4);
    sim_program_set_scope(&p, -2, SIM_PHASE_FORWARD);
    assert_sticky(&p, "scope: layer -2 or phase 1 out of range");
    sim_program_free(&p);

    ss_err err;
    assert_int_equal(sim_program_init(&p, 0, &err), SS_ERR_RANGE);
    assert_contains(err.msg, "0 cores is out of range (1..65536)");
    sim_program_free(&p); /* freeing a failed init is harmless */
}

static void test_program_groups_and_matrices(void **state)
{
    (void)state;
    sim_program p;
    init_program(&p, 8);
    int32_t ga[] = {5, 1, 7, 0};
    int32_t gb[] = {0, 1, 2, 3};
    int32_t g1 = sim_program_add_group(&p, ga, 4);
    int32_t g2 = sim_program_add_group(&p, gb, 4);
    assert_int_equal(sim_program_add_group(&p, ga, 4), g1); /* interned */
    assert_int_not_equal(g1, g2);
    assert_int_equal(sim_program_ngroups(&p), 2);
    for (int32_t r = 0; r < 4; r++)
        assert_int_equal(sim_program_group_rank(&p, g1, ga[r]), r);
    assert_int_equal(sim_program_group_rank(&p, g1, 2), -1);
    assert_int_equal(sim_program_group_rank(&p, g1, 6), -1);
    int32_t n;
    const int32_t *m = sim_program_group(&p, g1, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(m, ga, sizeof ga);

    /* alltoallv: each member's bytes is its row sum, rows by rank */
    const uint64_t route[16] = {0, 1, 2, 3, 10, 0, 20, 30, 100, 200, 0, 300, 7, 7, 7, 0};
    int32_t mid = sim_program_add_matrix(&p, route, 4);
    assert_int_equal(sim_program_add_matrix(&p, route, 4), mid);
    int32_t r;
    const uint64_t *mv = sim_program_matrix(&p, mid, &r);
    assert_int_equal(r, 4);
    assert_memory_equal(mv, route, sizeof route);
    const uint64_t want[4] = {6, 60, 600, 21};
    for (int32_t k = 0; k < 4; k++) {
        sim_prog_coll c = {.id = 9, .kind = SIM_COLL_ALLTOALLV, .group = g1, .matrix = mid,
                           .bytes = 12345 /* ignored */};
        int32_t id = sim_program_add_collective(&p, ga[k], 0, &c, NULL, 0);
        assert_int_equal(sim_program_op(&p, id)->coll.bytes, want[k]);
    }
    assert_valid(&p);
    sim_program_free(&p);
}

static void test_program_reserve_avoids_growth(void **state)
{
    (void)state;
    sim_program p;
    init_program(&p, 1);
    assert_int_equal(sim_program_reserve(&p, 5000, 5000), SS_OK);
    size_t before = p.nreallocs;
    for (int i = 0; i < 5000; i++)
        sim_program_add_hbm(&p, 0, 0, 1, 1, NULL, SIM_DEPS_PREV);
    /* only the core's op list grows: 16, 32, ..., 8192 */
    size_t grew = p.nreallocs - before;
    printf("reserve: %zu growths for 5000 ops after reserve\n", grew);
    assert_true(grew <= 10);
    assert_int_equal(p.nops, 5000);
    assert_int_equal(p.ndeps, 4999);
    sim_program_free(&p);
}

/* ---- validation ---- */

static void test_program_validate_pairs_transfers_in_order(void **state)
{
    (void)state;
    sim_program p;
    init_program(&p, 3);
    /* two transfers 0 -> 1 with the same tag pair in program order */
    sim_program_add_send(&p, 0, 0, 1, 100, 0, NULL, 0);
    sim_program_add_send(&p, 0, 0, 1, 200, 0, NULL, SIM_DEPS_PREV);
    sim_program_add_recv(&p, 1, 0, 0, 100, 0, NULL, 0);
    sim_program_add_recv(&p, 1, 0, 0, 200, 0, NULL, SIM_DEPS_PREV);
    sim_program_add_send(&p, 2, 0, 1, 5, 9, NULL, 0);
    sim_program_add_recv(&p, 1, 0, 2, 5, 9, NULL, 0);
    assert_valid(&p);
    sim_program_free(&p);

    init_program(&p, 2); /* swapped sizes: the first recv expects the first send's size */
    sim_program_add_send(&p, 0, 0, 1, 100, 0, NULL, 0);
    sim_program_add_send(&p, 0, 0, 1, 200, 0, NULL, SIM_DEPS_PREV);
    sim_program_add_recv(&p, 1, 0, 0, 200, 0, NULL, 0);
    sim_program_add_recv(&p, 1, 0, 0, 100, 0, NULL, SIM_DEPS_PREV);
    assert_invalid(&p, "recv op 2 (core 1): recv from core 0 with tag 0 expects 200 bytes but "
                       "its matching send, op 0 (core 0), sends 100");
    sim_program_free(&p);
}

static void test_program_validate_unmatched(void **state)
{
    (void)state;
    sim_program p;
    init_program(&p, 2);
    int32_t l = sim_program_intern(&p, "x.y");
    sim_program_add_send(&p, 0, l, 1, 64, 3, NULL, 0);
    sim_program_add_recv(&p, 1, 0, 0, 64, 4, NULL, 0); /* other tag */
    assert_invalid(&p, "send op 0 (core 0, 'x.y'): send to core 1 with tag 3 (64 bytes) has "
                       "no matching recv: core 0 sends 1 message to core 1 with tag 3, core 1 "
                       "receives 0; 2 unmatched sends/recvs in all");
    sim_program_free(&p);

    init_program(&p, 2);
    sim_program_add_recv(&p, 0, 0, 1, 64, 0, NULL, 0);
    assert_invalid(&p, "recv op 0 (core 0): recv from core 1 with tag 0 (64 bytes) has no "
                       "matching send: core 1 sends 0 messages to core 0 with tag 0, core 0 "
                       "receives 1");
    sim_program_free(&p);
}

/* Adds one collective op per listed core with the given group id. */
static void add_coll(sim_program *p, int32_t id, sim_coll_kind kind, int32_t group,
                     uint64_t bytes, const int32_t *cores, int n)
{
    for (int i = 0; i < n; i++) {
        sim_prog_coll c = {.id = id, .kind = kind, .group = group, .bytes = bytes,
                           .matrix = SIM_PROG_NONE};
        assert_int_not_equal(sim_program_add_collective(p, cores[i], 0, &c, NULL,
                                                        SIM_DEPS_PREV), -1);
    }
}

static void test_program_validate_collectives(void **state)
{
    (void)state;
    int32_t all[] = {0, 1, 2, 3}, low[] = {0, 1}, three[] = {0, 1, 2};
    sim_program p;

    init_program(&p, 4);
    int32_t g = sim_program_add_group(&p, all, 4);
    add_coll(&p, 0, SIM_COLL_ALLREDUCE, g, 1024, all, 4);
    add_coll(&p, 1, SIM_COLL_BARRIER, g, 0, all, 4);
    assert_valid(&p);
    sim_program_free(&p);

    init_program(&p, 4); /* mismatched groups for one collective id */
    g = sim_program_add_group(&p, all, 4);
    int32_t gl = sim_program_add_group(&p, low, 2);
    add_coll(&p, 5, SIM_COLL_ALLREDUCE, g, 1024, all, 1);
    add_coll(&p, 5, SIM_COLL_ALLREDUCE, gl, 1024, all + 1, 1);
    assert_invalid(&p, "collective op 1 (core 1): collective 5: group 0-1 here but 0-3 at op 0 "
                       "(core 0)");
    sim_program_free(&p);

    init_program(&p, 4); /* a member without its op */
    g = sim_program_add_group(&p, all, 4);
    add_coll(&p, 2, SIM_COLL_ALLGATHER, g, 4096, three, 3);
    assert_invalid(&p, "collective 2 (allgather over group 0-3) has no op on core 3 (3 of 4 "
                       "members have one)");
    sim_program_free(&p);

    init_program(&p, 4); /* kind and size disagree */
    g = sim_program_add_group(&p, all, 4);
    add_coll(&p, 0, SIM_COLL_ALLREDUCE, g, 1024, all, 3);
    add_coll(&p, 0, SIM_COLL_REDUCESCATTER, g, 1024, all + 3, 1);
    assert_invalid(&p, "collective 0: kind reducescatter here but allreduce at op 0");
    sim_program_free(&p);

    init_program(&p, 4);
    g = sim_program_add_group(&p, all, 4);
    add_coll(&p, 0, SIM_COLL_ALLREDUCE, g, 1024, all, 3);
    add_coll(&p, 0, SIM_COLL_ALLREDUCE, g, 2048, all + 3, 1);
    assert_invalid(&p, "collective 0: 2048 bytes here but 1024 at op 0");
    sim_program_free(&p);

    init_program(&p, 4); /* the same collective twice on one core */
    g = sim_program_add_group(&p, low, 2);
    add_coll(&p, 0, SIM_COLL_ALLREDUCE, g, 8, low, 2);
    add_coll(&p, 0, SIM_COLL_ALLREDUCE, g, 8, low, 1);
    assert_invalid(&p, "collective op 2 (core 0): collective 0 appears twice on core 0 (also "
                       "at op 0 (core 0))");
    sim_program_free(&p);
}

static void test_program_validate_deadlock(void **state)
{
    (void)state;
    sim_program p;
    init_program(&p, 2); /* each core receives before it sends */
    sim_program_add_recv(&p, 0, 0, 1, 8, 0, NULL, 0);
    sim_program_add_send(&p, 0, 0, 1, 8, 0, NULL, SIM_DEPS_PREV);
    sim_program_add_recv(&p, 1, 0, 0, 8, 0, NULL, 0);
    sim_program_add_send(&p, 1, 0, 0, 8, 0, NULL, SIM_DEPS_PREV);
    assert_invalid(&p, "recv op 0 (core 0): deadlock: ops wait for each other in a cycle");
    assert_invalid(&p, "recv op 0 (core 0) -> send op 1 (core 0) -> recv op 2 (core 1) -> "
                       "send op 3 (core 1)");
    sim_program_free(&p);

    init_program(&p, 2); /* without the dependency there is no cycle */
    sim_program_add_recv(&p, 0, 0, 1, 8, 0, NULL, 0);
    sim_program_add_send(&p, 0, 0, 1, 8, 0, NULL, 0);
    sim_program_add_recv(&p, 1, 0, 0, 8, 0, NULL, 0);
    sim_program_add_send(&p, 1, 0, 0, 8, 0, NULL, SIM_DEPS_PREV);
    assert_valid(&p);
    sim_program_free(&p);

    /* two collectives entered in opposite orders */
    int32_t both[] = {0, 1};
    init_program(&p, 2);
    int32_t g = sim_program_add_group(&p, both, 2);
    add_coll(&p, 0, SIM_COLL_ALLREDUCE, g, 8, both, 1);
    add_coll(&p, 1, SIM_COLL_ALLREDUCE, g, 8, both, 1);
    add_coll(&p, 1, SIM_COLL_ALLREDUCE, g, 8, both + 1, 1);
    add_coll(&p, 0, SIM_COLL_ALLREDUCE, g, 8, both + 1, 1);
    assert_invalid(&p, "deadlock");
    assert_invalid(&p, "collective op 0 (core 0) -> collective op 1 (core 0)");
    sim_program_free(&p);
}

/* ---- text form ---- */

static void test_program_parse_sample(void **state)
{
    (void)state;
    char path[4200];
    program_path(path, sizeof path, "sample.prog");
    sim_program p;
    ss_err err;
    if (sim_program_parse_file(&p, path, &err) != SS_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(p.ncores, 4);
    assert_int_equal(p.nops, 18);
    int32_t n;
    const int32_t *c0 = sim_program_core_ops(&p, 0, &n);
    assert_int_equal(n, 7);
    const sim_prog_op *q = sim_program_op(&p, c0[1]);
    assert_int_equal(q->kind, SIM_OP_MATMUL);
    assert_int_equal(q->matmul.m, 128);
    assert_int_equal(q->matmul.k, 512);
    assert_int_equal(q->matmul.n, 512);
    assert_int_equal(q->matmul.dtype, BF16);
    assert_int_equal(q->layer, 0);
    assert_int_equal(q->phase, SIM_PHASE_FORWARD);
    assert_string_equal(sim_program_string(&p, q->label), "enc.0.attn.q");
    const int32_t *d = sim_program_deps(&p, c0[1], &n);
    assert_int_equal(n, 1);
    assert_int_equal(d[0], c0[0]);

    const sim_prog_op *ar = sim_program_op(&p, c0[5]);
    assert_int_equal(ar->kind, SIM_OP_COLLECTIVE);
    assert_int_equal(ar->coll.kind, SIM_COLL_ALLREDUCE);
    assert_int_equal(ar->coll.bytes, 4194304);
    assert_string_equal(sim_program_string(&p, ar->coll.algo), "ring");
    d = sim_program_deps(&p, c0[5], &n);
    assert_int_equal(n, 2);
    assert_int_equal(d[0], c0[4]); /* after=s2,q keeps the order given */
    assert_int_equal(d[1], c0[1]);
    const int32_t *g = sim_program_group(&p, ar->coll.group, &n);
    assert_int_equal(n, 4);
    assert_int_equal(g[3], 3);

    const sim_prog_op *a2a = sim_program_op(&p, c0[6]);
    assert_int_equal(a2a->coll.kind, SIM_COLL_ALLTOALLV);
    assert_int_equal(a2a->coll.bytes, 600); /* row 0 of route */

    const int32_t *c2 = sim_program_core_ops(&p, 2, &n);
    assert_int_equal(n, 4); /* two blocks of core 2 */
    const sim_prog_op *red = sim_program_op(&p, c2[0]);
    assert_int_equal(red->vector.kind, SIM_VECTOR_REDUCTION);
    assert_int_equal(red->vector.row_len, 512);
    assert_int_equal(red->phase, SIM_PHASE_BACKWARD);
    assert_int_equal(red->layer, SIM_PROG_NONE);
    const sim_prog_op *bar = sim_program_op(&p, c2[3]);
    g = sim_program_group(&p, bar->coll.group, &n);
    assert_int_equal(n, 2);
    assert_int_equal(g[0], 3); /* rank order as written: 3,2 */
    assert_int_equal(g[1], 2);
    assert_int_equal(sim_program_op(&p, sim_program_core_ops(&p, 1, &n)[1])->xfer.peer, 0);
    sim_program_free(&p);
}

static void assert_round_trip(const char *text)
{
    sim_program p, q;
    ss_err err;
    if (parse_text(&p, text, strlen(text), "first", &err) != SS_OK)
        fail_msg("parse of written text: %s\n%s", err.msg, text);
    char *again = write_text(&p);
    if (strcmp(again, text) != 0)
        fail_msg("round trip differs:\n--- first\n%s--- second\n%s", text, again);
    if (parse_text(&q, again, strlen(again), "second", &err) != SS_OK)
        fail_msg("second parse: %s", err.msg);
    assert_int_equal(p.nops, q.nops);
    assert_memory_equal(p.dep_start, q.dep_start, ((size_t)p.nops + 1) * sizeof *p.dep_start);
    free(again);
    sim_program_free(&p);
    sim_program_free(&q);
}

static void test_program_round_trip_sample(void **state)
{
    (void)state;
    char path[4200];
    program_path(path, sizeof path, "sample.prog");
    sim_program p;
    ss_err err;
    assert_int_equal(sim_program_parse_file(&p, path, &err), SS_OK);
    char *text = write_text(&p);
    assert_contains(text, "# switchsim step program v1\ncores 4\nmatrix mat0 4x4:\n");
    assert_contains(text, "  o5: collective id=0 kind=allreduce group=0-3 bytes=4194304 "
                          "algo=ring after=o4,o1\n");
    assert_contains(text, "  o2: collective id=2 kind=barrier group=3,2 bytes=0 label=sync "
                          "after=o1\n");
    assert_round_trip(text);
    free(text);
    sim_program_free(&p);
}

/* The position of op id in its core's list. */
static int32_t index_in_core(const sim_program *p, int32_t id)
{
    int32_t n;
    const int32_t *ops = sim_program_core_ops(p, sim_program_op(p, id)->core, &n);
    for (int32_t k = 0; k < n; k++)
        if (ops[k] == id)
            return k;
    fail_msg("op %d missing from its core", id);
    return -1;
}

static void assert_same_coll(const sim_program *a, const sim_prog_coll *x,
                             const sim_program *b, const sim_prog_coll *y)
{
    assert_int_equal(x->id, y->id);
    assert_int_equal(x->kind, y->kind);
    assert_int_equal(x->bytes, y->bytes);
    assert_string_equal(sim_program_string(a, x->algo), sim_program_string(b, y->algo));
    int32_t na, nb;
    const int32_t *ga = sim_program_group(a, x->group, &na);
    const int32_t *gb = sim_program_group(b, y->group, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ga, gb, (size_t)na * sizeof *ga);
    assert_int_equal(x->matrix == SIM_PROG_NONE, y->matrix == SIM_PROG_NONE);
    if (x->matrix != SIM_PROG_NONE) {
        const uint64_t *ma = sim_program_matrix(a, x->matrix, &na);
        const uint64_t *mb = sim_program_matrix(b, y->matrix, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(ma, mb, (size_t)na * (size_t)na * sizeof *ma);
    }
}

/* Compares the kind-specific fields of two non-collective ops of the same kind. */
static void assert_same_fields(const sim_prog_op *x, const sim_prog_op *y)
{
    switch ((sim_op_kind)x->kind) {
    case SIM_OP_MATMUL:
        assert_int_equal(x->matmul.m, y->matmul.m);
        assert_int_equal(x->matmul.k, y->matmul.k);
        assert_int_equal(x->matmul.n, y->matmul.n);
        assert_int_equal(x->matmul.dtype, y->matmul.dtype);
        break;
    case SIM_OP_VECTOR:
        assert_int_equal(x->vector.kind, y->vector.kind);
        assert_int_equal(x->vector.elements, y->vector.elements);
        assert_int_equal(x->vector.row_len, y->vector.row_len);
        assert_int_equal(x->vector.dtype, y->vector.dtype);
        break;
    case SIM_OP_HBM:
        assert_int_equal(x->hbm.read_bytes, y->hbm.read_bytes);
        assert_int_equal(x->hbm.write_bytes, y->hbm.write_bytes);
        break;
    case SIM_OP_SEND:
    case SIM_OP_RECV:
        assert_int_equal(x->xfer.peer, y->xfer.peer);
        assert_int_equal(x->xfer.bytes, y->xfer.bytes);
        assert_int_equal(x->xfer.tag, y->xfer.tag);
        break;
    default:
        fail_msg("unexpected kind %d", x->kind);
    }
}

/* a and b hold the same ops per core (ids, string, group and matrix ids may differ). */
static void assert_same_program(const sim_program *a, const sim_program *b)
{
    assert_int_equal(a->ncores, b->ncores);
    assert_int_equal(a->nops, b->nops);
    for (int32_t c = 0; c < a->ncores; c++) {
        int32_t na, nb;
        const int32_t *oa = sim_program_core_ops(a, c, &na);
        const int32_t *ob = sim_program_core_ops(b, c, &nb);
        assert_int_equal(na, nb);
        for (int32_t k = 0; k < na; k++) {
            const sim_prog_op *x = sim_program_op(a, oa[k]), *y = sim_program_op(b, ob[k]);
            assert_int_equal(x->kind, y->kind);
            assert_int_equal(x->core, y->core);
            assert_int_equal(x->layer, y->layer);
            assert_int_equal(x->phase, y->phase);
            assert_string_equal(sim_program_string(a, x->label),
                                sim_program_string(b, y->label));
            if (x->kind == SIM_OP_COLLECTIVE)
                assert_same_coll(a, &x->coll, b, &y->coll);
            else
                assert_same_fields(x, y);
            int32_t da, db;
            const int32_t *depa = sim_program_deps(a, oa[k], &da);
            const int32_t *depb = sim_program_deps(b, ob[k], &db);
            assert_int_equal(da, db);
            for (int32_t i = 0; i < da; i++)
                assert_int_equal(index_in_core(a, depa[i]), index_in_core(b, depb[i]));
        }
    }
}

static void test_program_round_trip_built(void **state)
{
    (void)state;
    sim_program p;
    init_program(&p, 6);
    int32_t grp[] = {4, 0, 1, 2, 5}, g = sim_program_add_group(&p, grp, 5);
    uint64_t mat[25];
    for (int i = 0; i < 25; i++)
        mat[i] = (uint64_t)(i % 5 == i / 5 ? 0 : 1000 + 37 * i);
    int32_t m = sim_program_add_matrix(&p, mat, 5);
    uint64_t unused[4] = {1, 2, 3, 4};
    sim_program_add_matrix(&p, unused, 2);
    int32_t algo = sim_program_intern(&p, "hierarchical-2d");
    for (int32_t layer = 0; layer < 3; layer++) {
        sim_program_set_scope(&p, layer, (sim_phase)(1 + layer % 3));
        char name[64];
        snprintf(name, sizeof name, "dec.%d.ffn.wi", layer);
        int32_t l = sim_program_intern(&p, name);
        for (int32_t k = 0; k < 5; k++) {
            int32_t c = grp[k];
            int32_t a = sim_program_add_matmul(&p, c, l, 64 + c, 128, 256, layer ? FP32 : BF16,
                                               NULL, SIM_DEPS_PREV);
            int32_t v = sim_program_add_vector(&p, c, 0, SIM_VECTOR_NORM, 4096, 64, BF16,
                                               &a, 1);
            sim_prog_coll cc = {.id = 2 * layer, .kind = SIM_COLL_ALLTOALLV, .group = g,
                                .matrix = m, .algo = algo};
            int32_t deps[] = {v, a};
            sim_program_add_collective(&p, c, l, &cc, deps, 2);
            cc = (sim_prog_coll){.id = 2 * layer + 1, .kind = SIM_COLL_BROADCAST, .group = g,
                                 .bytes = 777, .matrix = SIM_PROG_NONE};
            sim_program_add_collective(&p, c, 0, &cc, NULL, SIM_DEPS_PREV);
        }
        sim_program_add_send(&p, 3, l, 0, 99, layer, NULL, SIM_DEPS_PREV);
        sim_program_add_recv(&p, 0, l, 3, 99, layer, NULL, SIM_DEPS_PREV);
        sim_program_add_hbm(&p, 3, 0, 0, 12, NULL, 0);
    }
    assert_valid(&p);
    char *text = write_text(&p);
    assert_contains(text, "group=4,0-2,5 matrix=mat0 algo=hierarchical-2d");
    assert_contains(text, "matrix mat1 2x2:\n  1 2\n  3 4\n");
    assert_contains(text, "phase=optimizer");
    assert_round_trip(text);
    sim_program q;
    ss_err err;
    if (parse_text(&q, text, strlen(text), "built", &err) != SS_OK)
        fail_msg("%s", err.msg);
    assert_same_program(&p, &q);
    sim_program_free(&q);
    free(text);
    sim_program_free(&p);
}

typedef struct {
    const char *file;
    const char *where_and_what; /* the message after the path */
} bad_case;

static const bad_case bad_cases[] = {
    {"bad_kind.prog", ":3:6: unknown op kind 'matmal' (expected matmul, vector, hbm, send, "
                      "recv or collective)"},
    {"bad_number.prog", ":3:21: bad number '12x8' for field 'k' (expected a decimal integer)"},
    {"bad_huge.prog", ":3:15: field 'read' = 99999999999999999999999999 is out of range "
                      "(0..9007199254740992)"},
    {"bad_dep_unknown.prog", ":4:53: unknown op name 'qq' in after= (no op of core 0 has that "
                             "name)"},
    {"bad_dep_forward.prog", ":3:42: forward dependency on 'b' (defined later, at line 4): "
                             "after= may only name earlier ops of the core"},
    {"bad_peer.prog", ":3:14: peer core 9 is out of range: the program has 4 cores (0..3)"},
    {"bad_missing.prog", ":3:6: matmul 'a' is missing fields k, n"},
    {"bad_truncated.prog", ":3:5: expected an op kind after 'a:' (matmul, vector, hbm, send, "
                           "recv or collective)"},
    {"bad_unmatched.prog", ":4:3: send to core 1 with tag 3 (64 bytes) has no matching recv: "
                           "core 0 sends 2 messages to core 1 with tag 3, core 1 receives 1"},
    {"bad_group.prog", ":5:3: collective 7: group 0-1 here but 0-3 at line 3 ('c' on core 0)"},
    {"bad_deadlock.prog", ":3:3: deadlock: ops wait for each other in a cycle through send/recv "
                          "or collectives (each waits for the one before it, the first for the "
                          "last): recv line 3 ('r' on core 0) -> send line 4 ('s' on core 0) "
                          "-> recv line 6 ('r' on core 1) -> send line 7 ('s' on core 1)"},
    {"bad_field.prog", ":3:48: unknown field 'rows' for vector (expected kind, elements, dtype, "
                       "row_len, label, layer, phase, after)"},
    {"bad_outside.prog", ":2:3: op 'a' is outside a core block: expected 'core N:' first"},
    {"bad_matrix.prog", ":4:3: row 1 of matrix 't': expected 2 numbers, got 1"},
    {"bad_no_cores.prog", ":2:1: expected 'cores N' before anything else, got 'core'"},
    {"bad_empty.prog", ":1:1: empty program: expected 'cores N'"},
    {"bad_binary.prog", ":3:16: unexpected NUL byte (the text form is ASCII)"},
    {"bad_self.prog", ":3:6: send on core 1: the peer is the op's own core"},
};

static void test_program_parse_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        char path[4200], want[8400];
        program_path(path, sizeof path, bad_cases[i].file);
        snprintf(want, sizeof want, "%s%s", path, bad_cases[i].where_and_what);
        sim_program p;
        ss_err err;
        ss_status st = sim_program_parse_file(&p, path, &err);
        if (st == SS_OK)
            fail_msg("%s parsed without error", bad_cases[i].file);
        if (strcmp(err.msg, want) != 0)
            fail_msg("%s:\n got: %s\nwant: %s", bad_cases[i].file, err.msg, want);
        assert_int_equal(st, SS_ERR_CONFIG);
        assert_null(p.ops); /* left freed */
        assert_int_equal(p.ncores, 0);
        sim_program_free(&p);
    }
}

typedef struct {
    const char *text;
    const char *msg; /* after "inline" */
} inline_case;

/* More malformed inputs, in memory. */
static const inline_case inline_cases[] = {
    {"cores 99999999999999999999999999999\n",
     ":1:7: the number of cores = 99999999999999999999999999999 is out of range (1..65536)"},
    {"cores\n", ":1:6: expected the number of cores after 'cores'"},
    {"cores 2\ncore 0\n", ":2:7: expected ':' after the core number (core N:)"},
    {"cores 2\ncore 2:\n", ":2:6: core 2 is out of range: the program has 2 cores (0..1)"},
    {"cores 2\ncores 2\n", ":2:1: 'cores' is given twice"},
    {"cores 2\ncore 0:\n  a: hbm read=1 write=2\n  a: hbm read=1 write=2\n",
     ":4:3: op name 'a' is already used on core 0 (line 3)"},
    {"cores 2\ncore 0:\n  a: hbm read=1 write\n", ":3:17: expected FIELD=VALUE, got 'write'"},
    {"cores 2\ncore 0:\n  a: hbm read= write=2\n", ":3:15: missing value for field 'read'"},
    {"cores 2\ncore 0:\n  a: hbm read=1 read=2 write=2\n", ":3:17: field 'read' is given twice"},
    {"cores 2\ncore 0:\n  a: matmul m=1 k=1 n=1 dtype=bf8\n",
     ":3:31: bad value 'bf8' for field 'dtype' (expected bf16 or fp32)"},
    {"cores 2\ncore 0:\n  a: vector kind=gelu elements=1 dtype=bf16\n",
     ":3:18: bad value 'gelu' for field 'kind' (expected elementwise, reduction, softmax or "
     "norm)"},
    {"cores 2\ncore 0:\n  matmul m=1\n", ":3:3: expected an op name before 'matmul' (NAME: "
                                        "matmul ...)"},
    {"cores 2\ncore 0:\n  9a: hbm read=1 write=1\n", ":3:3: bad op name '9a' (letters, digits, "
                                                    "'_', '.' and '-', starting with a letter "
                                                    "or '_')"},
    {"cores 4\ncore 0:\n  c: collective id=0 kind=allreduce group=0-2,1 bytes=8\n",
     ":3:47: core 1 is listed twice in the group"},
    {"cores 4\ncore 0:\n  c: collective id=0 kind=allreduce group=3-1 bytes=8\n",
     ":3:43: bad range 3-1 in group (expected low-high)"},
    {"cores 4\ncore 0:\n  c: collective id=0 kind=allreduce group=0,,1 bytes=8\n",
     ":3:45: expected a core or a range a-b in group"},
    {"cores 4\ncore 0:\n  c: collective id=0 kind=alltoallv group=0-1 bytes=8\n",
     ":3:47: field 'bytes' does not apply to alltoallv (the sizes come from matrix=)"},
    {"cores 4\ncore 0:\n  c: collective id=0 kind=alltoallv group=0-1 matrix=q\n",
     ":3:54: unknown matrix 'q' (declare it first with 'matrix q RxR:')"},
    {"cores 4\ncore 0:\n  c: collective id=0 kind=allgather group=0-1\n",
     ":3:6: collective allgather is missing field bytes"},
    {"cores 4\ncore 0:\n  c: collective id=0 kind=barrier group=0-1 bytes=4\n",
     ":3:6: collective 0 on core 0: a barrier moves no data (bytes must be 0, got 4)"},
    {"cores 4\nmatrix m 2x3:\n", ":2:10: matrix must be square (RxR with R the group size), "
                                 "got 2x3"},
    {"cores 2\nmatrix m 2x2:\n 1 2\n", ":2:1: end of file inside matrix 'm': 1 more rows of 2 "
                                       "numbers expected"},
    {"cores 2\nmatrix m 2x2:\n 1 2\ncore 0:\n", ":4:1: expected row 1 of matrix 'm' (1 more "
                                                "rows of 2 numbers), got 'core'"},
    {"cores 2\ncore 0:\n  a: hbm read=1 write=1 label=\x7f\n",
     ":3:31: unexpected byte 0x7f (the text form is ASCII; comments start with '#')"},
    {"cores 2\ncore 0:\n  a: hbm read=1 write=1 after=a\n",
     ":3:31: op 'a' depends on itself"},
    {"cores 2\ncore 0:\n  a: hbm read=1 write=1\n  b: hbm read=1 write=1 after=a,a\n",
     ":4:33: 'a' is listed twice in after="},
    {"cores 2\nhello\n", ":2:1: unexpected 'hello': expected 'core N:', 'matrix NAME RxR:' or "
                         "an op 'NAME: KIND FIELD=VALUE ...'"},
    {"cores 2\ncore 0:\n  a: hbm read=1 write=1 after=q\n  b: matmul m=x\n",
     ":3:31: unknown op name 'q' in after= (no op of core 0 has that name)"},
};

static void test_program_parse_malformed_inline(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof inline_cases / sizeof inline_cases[0]; i++) {
        sim_program p;
        ss_err err;
        const char *t = inline_cases[i].text;
        ss_status st = parse_text(&p, t, strlen(t), "inline", &err);
        if (st == SS_OK)
            fail_msg("case %zu parsed without error:\n%s", i, t);
        char want[1200];
        snprintf(want, sizeof want, "inline%s", inline_cases[i].msg);
        if (strcmp(err.msg, want) != 0)
            fail_msg("case %zu:\n got: %s\nwant: %s", i, err.msg, want);
        sim_program_free(&p);
    }
    sim_program p;
    ss_err err;
    assert_int_equal(sim_program_parse_file(&p, "/nonexistent/x.prog", &err), SS_ERR_IO);
    assert_contains(err.msg, "/nonexistent/x.prog: cannot open");
}

/* Parses text; it must succeed (then write -> parse -> write must agree) or fail with a
 * positioned message and a freed program. Returns whether it parsed. */
static int parse_never_crashes(const char *text, size_t len)
{
    sim_program p;
    ss_err err;
    ss_status st = parse_text(&p, text, len, "fuzz", &err);
    if (st != SS_OK) {
        if (strncmp(err.msg, "fuzz:", 5) != 0)
            fail_msg("unpositioned message: %s", err.msg);
        assert_null(p.ops);
        return 0;
    }
    char *w = write_text(&p);
    assert_round_trip(w);
    free(w);
    sim_program_free(&p);
    return 1;
}

static char *read_sample(size_t *len)
{
    char path[4200];
    program_path(path, sizeof path, "sample.prog");
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

static void test_program_parse_fuzz(void **state)
{
    (void)state;
    size_t len, ok = 0, runs = 0;
    char *sample = read_sample(&len);
    assert_true(parse_never_crashes(sample, len));
    /* every truncation */
    for (size_t cut = 0; cut < len; cut++, runs++)
        ok += (size_t)parse_never_crashes(sample, cut);
    /* every byte replaced by a few troublesome ones */
    static const char junk[] = {'\0', '\xff', '9', '=', ',', ':', ' ', '\n', '#', '-'};
    char *m = malloc(len);
    assert_non_null(m);
    for (size_t pos = 0; pos < len; pos++)
        for (size_t j = 0; j < sizeof junk; j++, runs++) {
            memcpy(m, sample, len);
            m[pos] = junk[j];
            ok += (size_t)parse_never_crashes(m, len);
        }
    /* binary junk and huge numbers */
    char bin[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof bin; i++) {
        x = x * 1664525u + 1013904223u;
        bin[i] = (char)(x >> 24);
    }
    assert_false(parse_never_crashes(bin, sizeof bin));
    const char *huge = "cores 3\ncore 0:\n a: matmul m=18446744073709551616 k=1 n=1 "
                       "dtype=bf16\n";
    assert_false(parse_never_crashes(huge, strlen(huge)));
    const char *huge2 = "cores 3\nmatrix m 4294967297x4294967297:\n";
    assert_false(parse_never_crashes(huge2, strlen(huge2)));
    printf("fuzz: %zu mutated/truncated inputs, %zu parsed cleanly\n", runs, ok);
    assert_true(ok > 0 && ok < runs); /* some pass, most fail */
    free(m);
    free(sample);
}

static void test_program_write_reports_io_error(void **state)
{
    (void)state;
    sim_program p;
    init_program(&p, 1);
    sim_program_add_hbm(&p, 0, 0, 1, 1, NULL, 0);
    FILE *f = fopen("/dev/null", "r"); /* writes fail */
    assert_non_null(f);
    ss_err err;
    assert_int_equal(sim_program_write(&p, f, &err), SS_ERR_IO);
    assert_contains(err.msg, "write failed");
    fclose(f);
    sim_program_free(&p);
}

/* ---- scale ---- */

static void test_program_million_ops_amortised(void **state)
{
    (void)state;
    enum { CORES = 16, NOPS = 1000000, ROUND = 1000 };
    sim_program p;
    init_program(&p, CORES);
    int32_t label = sim_program_intern(&p, "big.layer");
    int32_t ops_per_core = NOPS / CORES;
    for (int32_t i = 0; i < ops_per_core; i++)
        for (int32_t c = 0; c < CORES; c++) {
            int32_t id;
            if (i % ROUND == ROUND - 2)
                id = sim_program_add_send(&p, c, label, (c + 1) % CORES, 4096, i, NULL,
                                          SIM_DEPS_PREV);
            else if (i % ROUND == ROUND - 1)
                id = sim_program_add_recv(&p, c, label, (c + CORES - 1) % CORES, 4096, i - 1,
                                          NULL, SIM_DEPS_PREV);
            else
                id = sim_program_add_matmul(&p, c, label, 128, 128, 128, BF16, NULL,
                                            SIM_DEPS_PREV);
            if (id < 0)
                fail_msg("%s", p.err.msg);
        }
    assert_int_equal(p.nops, NOPS);
    assert_int_equal(p.ndeps, NOPS - CORES);
    int32_t n;
    const int32_t *last = sim_program_core_ops(&p, CORES - 1, &n);
    assert_int_equal(n, ops_per_core);
    const int32_t *d = sim_program_deps(&p, last[n - 1], &n);
    assert_int_equal(n, 1);
    assert_int_equal(sim_program_op(&p, d[0])->core, CORES - 1);
    /* doubling: about log2(NOPS/16) growths per array, never one per op */
    size_t bound = 3 * 20 + CORES * 16;
    printf("1M ops: %zu buffer growths (bound %zu), %zu bytes allocated, %.1f bytes/op\n",
           p.nreallocs, bound, sim_program_memory_bytes(&p),
           (double)sim_program_memory_bytes(&p) / NOPS);
    assert_true(p.nreallocs <= bound);
    assert_true(sim_program_memory_bytes(&p) < (size_t)NOPS * 128);
    assert_valid(&p);
    sim_program_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_program_builder_csr),
        cmocka_unit_test(test_program_builder_rejects_forward_dep),
        cmocka_unit_test(test_program_builder_rejects_bad_args),
        cmocka_unit_test(test_program_groups_and_matrices),
        cmocka_unit_test(test_program_reserve_avoids_growth),
        cmocka_unit_test(test_program_validate_pairs_transfers_in_order),
        cmocka_unit_test(test_program_validate_unmatched),
        cmocka_unit_test(test_program_validate_collectives),
        cmocka_unit_test(test_program_validate_deadlock),
        cmocka_unit_test(test_program_parse_sample),
        cmocka_unit_test(test_program_round_trip_sample),
        cmocka_unit_test(test_program_round_trip_built),
        cmocka_unit_test(test_program_parse_malformed),
        cmocka_unit_test(test_program_parse_malformed_inline),
        cmocka_unit_test(test_program_parse_fuzz),
        cmocka_unit_test(test_program_write_reports_io_error),
        cmocka_unit_test(test_program_million_ops_amortised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
