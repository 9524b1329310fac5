/* This file implements the step program of program.h: flat storage and the builder, the
 * interning pools (labels, groups, matrices), validation of the cross-core invariants
 * (send/recv matching, collective consistency, deadlock freedom), and the text form's parser
 * and canonical writer.
 *
 * Storage: ops[] in append order; dependencies in CSR form (dep_start[], deps[]); one op list
 * per core; every array grows by doubling through grown(), which counts growths in
 * p->nreallocs (tests check that this stays logarithmic). Pools intern byte strings with an
 * open-addressing hash table (FNV-1a); a blob is stored as [uint64 length][bytes][NUL pad to
 * 8], so strings are NUL-terminated and int32/uint64 payloads aligned.
 * Validation sorts sends and recvs by (src, dst, tag, op id) and pairs them run by run (op ids
 * follow program order within a core, so the k-th send pairs with the k-th recv); sorts
 * collective ops by (collective id, op id) and checks each instance against its first op; then
 * runs Kahn's algorithm on the graph of dependencies and send->recv edges with each collective
 * instance contracted to one node, and on failure walks unprocessed predecessors backwards
 * until a node repeats, which yields one cycle to report.
 * The parser reads line by line (getline, so lines may be long and may hold NUL bytes, which
 * are rejected), splits tokens in place, and keeps per-op source positions so validation
 * errors point at lines. An unknown name in after= is remembered and reported once the rest
 * of the file has been read up to the next error or its end, so that a forward reference can
 * be told apart from a typo.
 *
 * Invariants: a builder call either appends one complete op (all arrays grown first) or
 * records the sticky error and changes nothing; parse failures leave the program freed.
 */
#include "sim/program.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================================== */
/* growable arrays and interning pools                                                       */
/* ======================================================================================== */

/* Returns buf enlarged to hold at least need (>= 1) elements of elem bytes (capacity doubles
 * from 16), updating *cap and counting the growth in *grows; NULL on overflow or allocation
 * failure (buf and *cap untouched). */
static void *grown(void *buf, size_t *cap, size_t need, size_t elem, size_t *grows)
{
    SS_ASSERT(need >= 1);
    if (need <= *cap)
        return buf;
    size_t ncap = *cap ? *cap : 16, bytes;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return NULL;
        ncap *= 2;
    }
    if (ss_mul_size(ncap, elem, &bytes))
        return NULL;
    void *nb = realloc(buf, bytes);
    if (!nb)
        return NULL;
    *cap = ncap;
    if (grows)
        (*grows)++;
    return nb;
}

static uint64_t hash_bytes(const void *key, size_t len)
{
    const unsigned char *s = key;
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < len; i++)
        h = (h ^ s[i]) * UINT64_C(1099511628211);
    return h;
}

static const unsigned char *pool_blob(const sim_prog_pool *pl, int32_t id, size_t *len)
{
    const unsigned char *b = pl->data + pl->off[id];
    uint64_t n;
    memcpy(&n, b - 8, sizeof n);
    *len = (size_t)n;
    return b;
}

/* The id of key in pl, or -1; *slot receives the slot where it is or would go. */
static int32_t pool_lookup(const sim_prog_pool *pl, const void *key, size_t len, size_t *slot)
{
    size_t mask = pl->nslots - 1;
    for (size_t i = hash_bytes(key, len) & mask;; i = (i + 1) & mask) {
        int32_t id = pl->slots[i];
        size_t blen;
        const unsigned char *b = id >= 0 ? pool_blob(pl, id, &blen) : NULL;
        if (!b || (blen == len && memcmp(b, key, len) == 0)) {
            *slot = i;
            return id;
        }
    }
}

static int32_t pool_find(const sim_prog_pool *pl, const void *key, size_t len)
{
    size_t slot;
    return pl->nslots ? pool_lookup(pl, key, len, &slot) : -1;
}

static int pool_rehash(sim_prog_pool *pl, size_t nslots)
{
    int32_t *slots = malloc(nslots * sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < nslots; i++)
        slots[i] = -1;
    free(pl->slots);
    pl->slots = slots;
    pl->nslots = nslots;
    pl->ngrow++;
    for (int32_t id = 0; id < pl->n; id++) {
        size_t len, slot;
        const unsigned char *b = pool_blob(pl, id, &len);
        pool_lookup(pl, b, len, &slot);
        pl->slots[slot] = id;
    }
    return 0;
}

/* Interns key: *id is its (new or existing) id, *added says which. 0, or -1 when out of
 * memory or out of ids (the pool is unchanged then). */
static int pool_add(sim_prog_pool *pl, const void *key, size_t len, int32_t *id, int *added)
{
    if (pl->n == INT32_MAX)
        return -1;
    if ((size_t)pl->n * 2 + 2 > pl->nslots &&
        pool_rehash(pl, pl->nslots ? pl->nslots * 2 : 64) != 0)
        return -1;
    size_t slot;
    *id = pool_lookup(pl, key, len, &slot);
    *added = *id < 0;
    if (!*added)
        return 0;
    size_t blob = 8 + ((len + 8) & ~(size_t)7); /* header, bytes, >= 1 NUL, pad to 8 */
    if (len > SIZE_MAX / 2 || pl->len > SIZE_MAX - blob)
        return -1;
    unsigned char *data = grown(pl->data, &pl->cap, pl->len + blob, 1, &pl->ngrow);
    if (!data)
        return -1;
    pl->data = data;
    size_t *off = grown(pl->off, &pl->off_cap, (size_t)pl->n + 1, sizeof *off, &pl->ngrow);
    if (!off)
        return -1;
    pl->off = off;
    uint64_t n64 = len;
    memcpy(data + pl->len, &n64, 8);
    memcpy(data + pl->len + 8, key, len);
    memset(data + pl->len + 8 + len, 0, blob - 8 - len);
    off[pl->n] = pl->len + 8;
    pl->len += blob;
    pl->slots[slot] = pl->n;
    *id = pl->n++;
    return 0;
}

static void pool_free(sim_prog_pool *pl)
{
    free(pl->data);
    free(pl->off);
    free(pl->slots);
    memset(pl, 0, sizeof *pl);
}

static size_t pool_bytes(const sim_prog_pool *pl)
{
    return pl->cap + pl->off_cap * sizeof *pl->off + pl->nslots * sizeof *pl->slots;
}

/* ======================================================================================== */
/* names                                                                                     */
/* ======================================================================================== */

static const char *const op_kind_names[SIM_OP_KIND_COUNT] = {
    "matmul", "vector", "hbm", "send", "recv", "collective"};
static const char *const coll_kind_names[SIM_COLL_KIND_COUNT] = {
    "allreduce", "reducescatter", "allgather", "alltoall", "alltoallv", "broadcast", "barrier"};
static const char *const phase_names[SIM_PHASE_COUNT] = {"", "forward", "backward",
                                                         "optimizer"};

const char *sim_op_kind_name(sim_op_kind kind)
{
    return (unsigned)kind < SIM_OP_KIND_COUNT ? op_kind_names[kind] : "unknown";
}

const char *sim_coll_kind_name(sim_coll_kind kind)
{
    return (unsigned)kind < SIM_COLL_KIND_COUNT ? coll_kind_names[kind] : "unknown";
}

const char *sim_phase_name(sim_phase phase)
{
    return (unsigned)phase < SIM_PHASE_COUNT ? phase_names[phase] : "unknown";
}

const char *sim_prog_dtype_name(sim_operands dtype)
{
    switch (dtype) {
    case SIM_OPERANDS_BF16: return "bf16";
    case SIM_OPERANDS_F32: return "fp32";
    }
    return "unknown";
}

/* ======================================================================================== */
/* lifetime and the sticky error                                                             */
/* ======================================================================================== */

/* Records the first builder error; returns -1 for the builder to return. */
static int32_t fail(sim_program *p, ss_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int32_t fail(sim_program *p, ss_status code, const char *fmt, ...)
{
    if (p->err.code == SS_OK) {
        va_list ap;
        va_start(ap, fmt);
        ss_err_vset(&p->err, code, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int32_t fail_nomem(sim_program *p)
{
    return fail(p, SS_ERR_NOMEM, "step program: out of memory");
}

ss_status sim_program_init(sim_program *p, int32_t ncores, ss_err *err)
{
    memset(p, 0, sizeof *p);
    if (ncores < 1 || ncores > SIM_PROG_MAX_CORES)
        return ss_err_set(err, SS_ERR_RANGE, "step program: %" PRId32
                          " cores is out of range (1..%d)", ncores, SIM_PROG_MAX_CORES);
    p->ncores = ncores;
    p->scope_layer = SIM_PROG_NONE;
    p->core = calloc((size_t)ncores, sizeof *p->core);
    p->dep_start = grown(NULL, &p->dep_start_cap, 1, sizeof *p->dep_start, &p->nreallocs);
    if (!p->core || !p->dep_start || sim_program_intern(p, "") != 0) {
        sim_program_free(p);
        return ss_err_set(err, SS_ERR_NOMEM, "step program: out of memory");
    }
    p->dep_start[0] = 0;
    return SS_OK;
}

void sim_program_free(sim_program *p)
{
    if (p->core)
        for (int32_t c = 0; c < p->ncores; c++)
            free(p->core[c].ops);
    free(p->core);
    free(p->ops);
    free(p->dep_start);
    free(p->deps);
    free(p->gsorted);
    free(p->gsorted_off);
    pool_free(&p->strings);
    pool_free(&p->groups);
    pool_free(&p->matrices);
    memset(p, 0, sizeof *p);
}

ss_status sim_program_reserve(sim_program *p, size_t nops, size_t ndeps)
{
    if (p->err.code != SS_OK)
        return p->err.code;
    sim_prog_op *ops = grown(p->ops, &p->ops_cap, nops + 1, sizeof *ops, &p->nreallocs);
    if (ops)
        p->ops = ops;
    uint32_t *ds = ops ? grown(p->dep_start, &p->dep_start_cap, nops + 2, sizeof *ds,
                               &p->nreallocs) : NULL;
    if (ds)
        p->dep_start = ds;
    int32_t *deps = ds ? grown(p->deps, &p->deps_cap, ndeps + 1, sizeof *deps, &p->nreallocs)
                       : NULL;
    if (!deps) {
        fail_nomem(p);
        return p->err.code;
    }
    p->deps = deps;
    return SS_OK;
}

ss_status sim_program_status(const sim_program *p, ss_err *err)
{
    if (p->err.code != SS_OK && err)
        *err = p->err;
    return p->err.code;
}

/* ======================================================================================== */
/* side tables: strings, groups, matrices                                                    */
/* ======================================================================================== */

int32_t sim_program_intern(sim_program *p, const char *text)
{
    if (p->err.code != SS_OK)
        return -1;
    size_t len = strlen(text);
    if (len > SIM_PROG_MAX_TEXT)
        return fail(p, SS_ERR_RANGE, "text '%.40s...' is %zu bytes long (at most %d)", text,
                    len, SIM_PROG_MAX_TEXT);
    for (size_t i = 0; i < len; i++)
        if (text[i] <= ' ' || text[i] > '~' || text[i] == '#')
            return fail(p, SS_ERR_RANGE, "text '%.40s' has a space, '#' or a non-printable "
                        "character at offset %zu (labels are printable ASCII without '#')",
                        text, i);
    int32_t id;
    int added;
    if (pool_add(&p->strings, text, len, &id, &added) != 0)
        return fail_nomem(p);
    return id;
}

typedef struct {
    int32_t core, rank;
} core_rank;

static int cmp_core_rank(const void *a, const void *b)
{
    const core_rank *x = a, *y = b;
    return (x->core > y->core) - (x->core < y->core);
}

/* Appends the ranks of the new group gid sorted by core (for sim_program_group_rank). */
static int32_t add_group_index(sim_program *p, int32_t gid, const core_rank *sorted, int32_t n)
{
    int32_t *gs = grown(p->gsorted, &p->gsorted_cap, p->gsorted_len + (size_t)n, sizeof *gs,
                        &p->nreallocs);
    if (!gs)
        return fail_nomem(p);
    p->gsorted = gs;
    size_t *go = grown(p->gsorted_off, &p->gsorted_off_cap, (size_t)gid + 1, sizeof *go,
                       &p->nreallocs);
    if (!go)
        return fail_nomem(p);
    p->gsorted_off = go;
    go[gid] = p->gsorted_len;
    for (int32_t i = 0; i < n; i++)
        gs[p->gsorted_len + (size_t)i] = sorted[i].rank;
    p->gsorted_len += (size_t)n;
    return gid;
}

/* Checks members (range, no repeats), interns them and indexes a new group. */
static int32_t add_new_group(sim_program *p, const int32_t *cores, int32_t n)
{
    core_rank *cr = malloc((size_t)n * sizeof *cr);
    if (!cr)
        return fail_nomem(p);
    int32_t id = -1;
    int added;
    for (int32_t i = 0; i < n; i++) {
        if (cores[i] < 0 || cores[i] >= p->ncores) {
            fail(p, SS_ERR_RANGE, "group member %d (rank %d) is out of range: the program has "
                 "%d cores (0..%d)", cores[i], i, p->ncores, p->ncores - 1);
            goto out;
        }
        cr[i] = (core_rank){cores[i], i};
    }
    qsort(cr, (size_t)n, sizeof *cr, cmp_core_rank);
    for (int32_t i = 1; i < n; i++)
        if (cr[i].core == cr[i - 1].core) {
            fail(p, SS_ERR_RANGE, "core %d appears twice in a group (ranks %d and %d)",
                 cr[i].core, cr[i - 1].rank, cr[i].rank);
            goto out;
        }
    if (pool_add(&p->groups, cores, (size_t)n * sizeof *cores, &id, &added) != 0) {
        id = fail_nomem(p);
        goto out;
    }
    if (added)
        id = add_group_index(p, id, cr, n);
out:
    free(cr);
    return id;
}

int32_t sim_program_add_group(sim_program *p, const int32_t *cores, int32_t n)
{
    if (p->err.code != SS_OK)
        return -1;
    if (n < 1 || n > p->ncores)
        return fail(p, SS_ERR_RANGE, "a group of %d cores is out of range (1..%d)", n,
                    p->ncores);
    int32_t id = pool_find(&p->groups, cores, (size_t)n * sizeof *cores);
    return id >= 0 ? id : add_new_group(p, cores, n);
}

int32_t sim_program_add_matrix(sim_program *p, const uint64_t *bytes, int32_t r)
{
    if (p->err.code != SS_OK)
        return -1;
    if (r < 1 || r > p->ncores)
        return fail(p, SS_ERR_RANGE, "a %dx%d matrix is out of range (1..%d rows)", r, r,
                    p->ncores);
    for (int32_t i = 0; i < r; i++) {
        uint64_t sum = 0;
        for (int32_t j = 0; j < r; j++) {
            uint64_t v = bytes[(size_t)i * (size_t)r + (size_t)j];
            if (v > SIM_PROG_MAX_SIZE - sum)
                return fail(p, SS_ERR_RANGE, "matrix row %d: entry %d (%" PRIu64 " bytes) "
                            "takes the row sum beyond %" PRIu64, i, j, v, SIM_PROG_MAX_SIZE);
            sum += v;
        }
    }
    int32_t id;
    int added;
    if (pool_add(&p->matrices, bytes, (size_t)r * (size_t)r * sizeof *bytes, &id, &added))
        return fail_nomem(p);
    return id;
}

/* ======================================================================================== */
/* accessors                                                                                 */
/* ======================================================================================== */

const sim_prog_op *sim_program_op(const sim_program *p, int32_t id)
{
    SS_ASSERT(id >= 0 && id < p->nops);
    return &p->ops[id];
}

const int32_t *sim_program_deps(const sim_program *p, int32_t id, int32_t *ndeps)
{
    SS_ASSERT(id >= 0 && id < p->nops);
    *ndeps = (int32_t)(p->dep_start[id + 1] - p->dep_start[id]);
    return p->deps + p->dep_start[id];
}

const int32_t *sim_program_core_ops(const sim_program *p, int32_t core, int32_t *nops)
{
    SS_ASSERT(core >= 0 && core < p->ncores);
    *nops = p->core[core].n;
    return p->core[core].ops;
}

const char *sim_program_string(const sim_program *p, int32_t id)
{
    SS_ASSERT(id >= 0 && id < p->strings.n);
    size_t len;
    return (const char *)pool_blob(&p->strings, id, &len);
}

int32_t sim_program_nstrings(const sim_program *p)
{
    return p->strings.n;
}

const int32_t *sim_program_group(const sim_program *p, int32_t id, int32_t *n)
{
    SS_ASSERT(id >= 0 && id < p->groups.n);
    size_t len;
    const unsigned char *b = pool_blob(&p->groups, id, &len);
    *n = (int32_t)(len / sizeof(int32_t));
    return (const int32_t *)(const void *)b;
}

int32_t sim_program_ngroups(const sim_program *p)
{
    return p->groups.n;
}

int32_t sim_program_group_rank(const sim_program *p, int32_t id, int32_t core)
{
    int32_t n;
    const int32_t *members = sim_program_group(p, id, &n);
    const int32_t *ranks = p->gsorted + p->gsorted_off[id];
    int32_t lo = 0, hi = n; /* binary search over members in core order */
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (members[ranks[mid]] < core)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && members[ranks[lo]] == core ? ranks[lo] : -1;
}

const uint64_t *sim_program_matrix(const sim_program *p, int32_t id, int32_t *r)
{
    SS_ASSERT(id >= 0 && id < p->matrices.n);
    size_t len;
    const unsigned char *b = pool_blob(&p->matrices, id, &len);
    uint64_t count = len / sizeof(uint64_t);
    uint64_t side = (uint64_t)sqrt((double)count);
    while (side * side < count)
        side++;
    while (side * side > count)
        side--;
    SS_ASSERT(side * side == count);
    *r = (int32_t)side;
    return (const uint64_t *)(const void *)b;
}

int32_t sim_program_nmatrices(const sim_program *p)
{
    return p->matrices.n;
}

size_t sim_program_memory_bytes(const sim_program *p)
{
    size_t b = p->ops_cap * sizeof *p->ops + p->dep_start_cap * sizeof *p->dep_start +
               p->deps_cap * sizeof *p->deps + (size_t)p->ncores * sizeof *p->core +
               p->gsorted_cap * sizeof *p->gsorted + p->gsorted_off_cap * sizeof(size_t) +
               pool_bytes(&p->strings) + pool_bytes(&p->groups) + pool_bytes(&p->matrices);
    for (int32_t c = 0; c < p->ncores; c++)
        b += p->core[c].cap * sizeof *p->core[c].ops;
    return b;
}

/* ======================================================================================== */
/* builder                                                                                   */
/* ======================================================================================== */

void sim_program_set_scope(sim_program *p, int32_t layer, sim_phase phase)
{
    if (p->err.code != SS_OK)
        return;
    if (layer < SIM_PROG_NONE || (unsigned)phase >= SIM_PHASE_COUNT) {
        fail(p, SS_ERR_RANGE, "scope: layer %d or phase %d out of range", layer, (int)phase);
        return;
    }
    p->scope_layer = layer;
    p->scope_phase = phase;
}

static int has_repeat(const int32_t *v, int32_t n, int32_t *repeated);

/* Checks what every op shares: the core, the label and the dependency list. */
static int check_common(sim_program *p, sim_op_kind kind, int32_t core, int32_t label,
                        const int32_t *deps, int32_t ndeps)
{
    const char *k = op_kind_names[kind];
    if (p->err.code != SS_OK)
        return -1;
    if (core < 0 || core >= p->ncores)
        return fail(p, SS_ERR_RANGE, "%s: core %d is out of range: the program has %d cores "
                    "(0..%d)", k, core, p->ncores, p->ncores - 1);
    if (label < 0 || label >= p->strings.n)
        return fail(p, SS_ERR_RANGE, "%s on core %d: label id %d is not an interned string",
                    k, core, label);
    if (ndeps == SIM_DEPS_PREV && !deps)
        return 0;
    if (ndeps < 0 || (ndeps > 0 && !deps))
        return fail(p, SS_ERR_RANGE, "%s on core %d: bad dependency list (%d entries)", k,
                    core, ndeps);
    for (int32_t i = 0; i < ndeps; i++) {
        int32_t d = deps[i];
        if (d < 0 || d >= p->nops)
            return fail(p, SS_ERR_RANGE, "%s on core %d: dependency %d is not an earlier op "
                        "(ids 0..%d exist; dependencies must point backwards)", k, core, d,
                        p->nops - 1);
        if (p->ops[d].core != core)
            return fail(p, SS_ERR_RANGE, "%s on core %d: dependency %d is on core %d (ops "
                        "depend only on their own core; use send/recv or a collective)", k,
                        core, d, p->ops[d].core);
    }
    int32_t rep;
    int r = has_repeat(deps, ndeps, &rep);
    if (r < 0)
        return fail_nomem(p);
    if (r > 0)
        return fail(p, SS_ERR_RANGE, "%s on core %d: dependency %d is listed twice", k, core,
                    rep);
    return 0;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Whether v[0..n) holds a value twice: 1 (*repeated set), 0, or -1 out of memory. Short lists
 * are compared pairwise, long ones through a sorted copy. */
static int has_repeat(const int32_t *v, int32_t n, int32_t *repeated)
{
    if (n <= 64) {
        for (int32_t i = 1; i < n; i++)
            for (int32_t j = 0; j < i; j++)
                if (v[i] == v[j])
                    return *repeated = v[i], 1;
        return 0;
    }
    int32_t *s = malloc((size_t)n * sizeof *s);
    if (!s)
        return -1;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_i32);
    int found = 0;
    for (int32_t i = 1; i < n && !found; i++)
        if (s[i] == s[i - 1])
            found = 1, *repeated = s[i];
    free(s);
    return found;
}

static int check_size(sim_program *p, sim_op_kind kind, int32_t core, const char *field,
                      uint64_t v, uint64_t min)
{
    if (v >= min && v <= SIM_PROG_MAX_SIZE)
        return 0;
    return fail(p, SS_ERR_RANGE, "%s on core %d: %s = %" PRIu64 " is out of range (%" PRIu64
                "..%" PRIu64 ")", op_kind_names[kind], core, field, v, min, SIM_PROG_MAX_SIZE);
}

static int check_dtype(sim_program *p, sim_op_kind kind, int32_t core, sim_operands dtype)
{
    if (dtype == SIM_OPERANDS_BF16 || dtype == SIM_OPERANDS_F32)
        return 0;
    return fail(p, SS_ERR_RANGE, "%s on core %d: unknown dtype %d", op_kind_names[kind], core,
                (int)dtype);
}

/* Appends op with its dependencies (checked by check_common); grows every array first. */
static int32_t append_op(sim_program *p, const sim_prog_op *op, const int32_t *deps,
                         int32_t ndeps)
{
    sim_prog_core *c = &p->core[op->core];
    int32_t prev = c->n ? c->ops[c->n - 1] : -1;
    if (ndeps == SIM_DEPS_PREV && !deps) {
        deps = &prev;
        ndeps = prev >= 0;
    }
    if (p->nops >= INT32_MAX - 1 || p->ndeps + (size_t)ndeps > UINT32_MAX)
        return fail(p, SS_ERR_RANGE, "step program: more than 2^31 ops or 2^32 dependencies");
    size_t n = (size_t)p->nops;
    sim_prog_op *ops = grown(p->ops, &p->ops_cap, n + 1, sizeof *ops, &p->nreallocs);
    if (!ops)
        return fail_nomem(p);
    p->ops = ops;
    uint32_t *ds = grown(p->dep_start, &p->dep_start_cap, n + 2, sizeof *ds, &p->nreallocs);
    if (!ds)
        return fail_nomem(p);
    p->dep_start = ds;
    if (ndeps > 0) {
        int32_t *dv = grown(p->deps, &p->deps_cap, p->ndeps + (size_t)ndeps, sizeof *dv,
                            &p->nreallocs);
        if (!dv)
            return fail_nomem(p);
        p->deps = dv;
    }
    int32_t *co = grown(c->ops, &c->cap, (size_t)c->n + 1, sizeof *co, &p->nreallocs);
    if (!co)
        return fail_nomem(p);
    c->ops = co;

    ops[n] = *op;
    ops[n].layer = p->scope_layer;
    ops[n].phase = (uint8_t)p->scope_phase;
    if (ndeps > 0)
        memcpy(p->deps + p->ndeps, deps, (size_t)ndeps * sizeof *deps);
    p->ndeps += (size_t)ndeps;
    ds[n + 1] = (uint32_t)p->ndeps;
    co[c->n++] = (int32_t)n;
    return p->nops++;
}

int32_t sim_program_add_matmul(sim_program *p, int32_t core, int32_t label, uint64_t m,
                               uint64_t k, uint64_t n, sim_operands dtype,
                               const int32_t *deps, int32_t ndeps)
{
    const sim_op_kind kind = SIM_OP_MATMUL;
    if (check_common(p, kind, core, label, deps, ndeps) || check_size(p, kind, core, "m", m, 1) ||
        check_size(p, kind, core, "k", k, 1) || check_size(p, kind, core, "n", n, 1) ||
        check_dtype(p, kind, core, dtype))
        return -1;
    sim_prog_op op = {.kind = kind, .core = core, .label = label,
                      .matmul = {.m = m, .k = k, .n = n, .dtype = dtype}};
    return append_op(p, &op, deps, ndeps);
}

int32_t sim_program_add_vector(sim_program *p, int32_t core, int32_t label,
                               sim_vector_kind vkind, uint64_t elements, uint64_t row_len,
                               sim_operands dtype, const int32_t *deps, int32_t ndeps)
{
    const sim_op_kind kind = SIM_OP_VECTOR;
    if (check_common(p, kind, core, label, deps, ndeps) ||
        check_size(p, kind, core, "elements", elements, 1) ||
        check_size(p, kind, core, "row_len", row_len, 0) || check_dtype(p, kind, core, dtype))
        return -1;
    if ((unsigned)vkind >= SIM_VECTOR_KIND_COUNT)
        return fail(p, SS_ERR_RANGE, "vector on core %d: unknown vector kind %d", core,
                    (int)vkind);
    if (row_len != 0 && elements % row_len != 0)
        return fail(p, SS_ERR_RANGE, "vector on core %d: row_len %" PRIu64 " does not divide "
                    "elements %" PRIu64, core, row_len, elements);
    sim_prog_op op = {.kind = kind, .core = core, .label = label,
                      .vector = {.elements = elements, .row_len = row_len, .kind = vkind,
                                 .dtype = dtype}};
    return append_op(p, &op, deps, ndeps);
}

int32_t sim_program_add_hbm(sim_program *p, int32_t core, int32_t label, uint64_t read_bytes,
                            uint64_t write_bytes, const int32_t *deps, int32_t ndeps)
{
    const sim_op_kind kind = SIM_OP_HBM;
    if (check_common(p, kind, core, label, deps, ndeps) ||
        check_size(p, kind, core, "read", read_bytes, 0) ||
        check_size(p, kind, core, "write", write_bytes, 0))
        return -1;
    sim_prog_op op = {.kind = kind, .core = core, .label = label,
                      .hbm = {.read_bytes = read_bytes, .write_bytes = write_bytes}};
    return append_op(p, &op, deps, ndeps);
}

static int32_t add_xfer(sim_program *p, sim_op_kind kind, int32_t core, int32_t label,
                        int32_t peer, uint64_t bytes, int32_t tag, const int32_t *deps,
                        int32_t ndeps)
{
    const char *k = op_kind_names[kind];
    if (check_common(p, kind, core, label, deps, ndeps) ||
        check_size(p, kind, core, "bytes", bytes, 0))
        return -1;
    if (peer < 0 || peer >= p->ncores)
        return fail(p, SS_ERR_RANGE, "%s on core %d: peer core %d is out of range: the "
                    "program has %d cores (0..%d)", k, core, peer, p->ncores, p->ncores - 1);
    if (peer == core)
        return fail(p, SS_ERR_RANGE, "%s on core %d: the peer is the op's own core", k, core);
    if (tag < 0)
        return fail(p, SS_ERR_RANGE, "%s on core %d: tag %d is negative", k, core, tag);
    sim_prog_op op = {.kind = kind, .core = core, .label = label,
                      .xfer = {.bytes = bytes, .peer = peer, .tag = tag}};
    return append_op(p, &op, deps, ndeps);
}

int32_t sim_program_add_send(sim_program *p, int32_t core, int32_t label, int32_t dst,
                             uint64_t bytes, int32_t tag, const int32_t *deps, int32_t ndeps)
{
    return add_xfer(p, SIM_OP_SEND, core, label, dst, bytes, tag, deps, ndeps);
}

int32_t sim_program_add_recv(sim_program *p, int32_t core, int32_t label, int32_t src,
                             uint64_t bytes, int32_t tag, const int32_t *deps, int32_t ndeps)
{
    return add_xfer(p, SIM_OP_RECV, core, label, src, bytes, tag, deps, ndeps);
}

/* The bytes of a collective op: c->bytes, or for alltoallv the core's row sum. -1 (sticky
 * error) when the size fields do not fit the kind. */
static int coll_bytes(sim_program *p, int32_t core, int32_t rank, const sim_prog_coll *c,
                      uint64_t *bytes)
{
    int32_t gn;
    sim_program_group(p, c->group, &gn);
    if (c->kind != SIM_COLL_ALLTOALLV) {
        if (c->matrix != SIM_PROG_NONE)
            return fail(p, SS_ERR_RANGE, "collective %d on core %d: a matrix applies only to "
                        "alltoallv, not %s", c->id, core, coll_kind_names[c->kind]);
        if (c->kind == SIM_COLL_BARRIER && c->bytes != 0)
            return fail(p, SS_ERR_RANGE, "collective %d on core %d: a barrier moves no data "
                        "(bytes must be 0, got %" PRIu64 ")", c->id, core, c->bytes);
        *bytes = c->bytes;
        return check_size(p, SIM_OP_COLLECTIVE, core, "bytes", c->bytes, 0);
    }
    if (c->matrix < 0 || c->matrix >= p->matrices.n)
        return fail(p, SS_ERR_RANGE, "collective %d on core %d: alltoallv needs a matrix id "
                    "(got %d, %d matrices exist)", c->id, core, c->matrix, p->matrices.n);
    int32_t r;
    const uint64_t *m = sim_program_matrix(p, c->matrix, &r);
    if (r != gn)
        return fail(p, SS_ERR_RANGE, "collective %d on core %d: the matrix is %dx%d but the "
                    "group has %d cores", c->id, core, r, r, gn);
    *bytes = 0;
    for (int32_t j = 0; j < r; j++)
        *bytes += m[(size_t)rank * (size_t)r + (size_t)j];
    return 0;
}

typedef struct {
    FILE *f;      /* write here, or */
    char *buf;    /* into buf[cap], truncating with "..." */
    size_t cap, len;
} sink;

static void sink_printf(sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_group(sink *s, const sim_program *p, int32_t gid);

int32_t sim_program_add_collective(sim_program *p, int32_t core, int32_t label,
                                   const sim_prog_coll *c, const int32_t *deps, int32_t ndeps)
{
    const sim_op_kind kind = SIM_OP_COLLECTIVE;
    if (check_common(p, kind, core, label, deps, ndeps))
        return -1;
    if (c->id < 0 || (unsigned)c->kind >= SIM_COLL_KIND_COUNT)
        return fail(p, SS_ERR_RANGE, "collective on core %d: id %d or kind %d out of range",
                    core, c->id, (int)c->kind);
    if (c->group < 0 || c->group >= p->groups.n)
        return fail(p, SS_ERR_RANGE, "collective %d on core %d: group id %d does not exist",
                    c->id, core, c->group);
    if (c->algo < 0 || c->algo >= p->strings.n)
        return fail(p, SS_ERR_RANGE, "collective %d on core %d: algorithm hint id %d is not "
                    "an interned string", c->id, core, c->algo);
    int32_t rank = sim_program_group_rank(p, c->group, core);
    if (rank < 0) {
        char g[96];
        sink s = {.buf = g, .cap = sizeof g};
        write_group(&s, p, c->group);
        return fail(p, SS_ERR_RANGE, "collective %d on core %d: the core is not a member of "
                    "its group %s", c->id, core, g);
    }
    uint64_t bytes = 0;
    if (coll_bytes(p, core, rank, c, &bytes))
        return -1;
    sim_prog_op op = {.kind = kind, .core = core, .label = label, .coll = *c};
    op.coll.bytes = bytes;
    return append_op(p, &op, deps, ndeps);
}

/* ======================================================================================== */
/* sinks and group formatting (shared by the writer and error messages)                     */
/* ======================================================================================== */

static void sink_printf(sink *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (s->f) {
        vfprintf(s->f, fmt, ap);
    } else if (s->len + 1 < s->cap) {
        int n = vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
        if (n >= 0 && s->len + (size_t)n < s->cap) {
            s->len += (size_t)n;
        } else {
            s->len = s->cap - 1;
            if (s->cap >= 4)
                memcpy(s->buf + s->cap - 4, "...", 4);
        }
    }
    va_end(ap);
}

/* Writes the group's members in rank order, runs of consecutive ascending cores as a-b. */
static void write_group(sink *s, const sim_program *p, int32_t gid)
{
    int32_t n;
    const int32_t *m = sim_program_group(p, gid, &n);
    for (int32_t i = 0; i < n;) {
        int32_t j = i;
        while (j + 1 < n && m[j + 1] == m[j] + 1)
            j++;
        sink_printf(s, i ? ",%d" : "%d", m[i]);
        if (j > i)
            sink_printf(s, "-%d", m[j]);
        i = j + 1;
    }
}

/* ======================================================================================== */
/* validation                                                                                */
/* ======================================================================================== */

/* Writes a short description of op into buf (by id for built programs, by line for parsed
 * ones). */
typedef void (*describe_fn)(const sim_program *p, int32_t op, const void *ctx, char *buf,
                            size_t cap);

typedef struct {
    const sim_program *p;
    describe_fn describe;
    const void *ctx;
    ss_err err;     /* the message, without the op's position */
    int32_t bad;    /* the op the message is about */
} checker;

static ss_status check_fail(checker *c, int32_t op, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ss_status check_fail(checker *c, int32_t op, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ss_err_vset(&c->err, SS_ERR_CONFIG, fmt, ap);
    va_end(ap);
    c->bad = op;
    return SS_ERR_CONFIG;
}

static ss_status check_nomem(checker *c)
{
    c->bad = -1;
    return ss_err_set(&c->err, SS_ERR_NOMEM, "step program validation: out of memory");
}

typedef struct {
    int32_t src, dst, tag, op;
} xfer_key;

static int cmp_xfer_route(const xfer_key *x, const xfer_key *y)
{
    if (x->src != y->src)
        return x->src < y->src ? -1 : 1;
    if (x->dst != y->dst)
        return x->dst < y->dst ? -1 : 1;
    return (x->tag > y->tag) - (x->tag < y->tag);
}

static int cmp_xfer(const void *a, const void *b)
{
    const xfer_key *x = a, *y = b;
    int r = cmp_xfer_route(x, y);
    return r ? r : (x->op > y->op) - (x->op < y->op);
}

/* Collects the sends (kind SIM_OP_SEND) or recvs of p as (src, dst, tag, op), sorted. */
static xfer_key *collect_xfers(const sim_program *p, sim_op_kind kind, size_t *n)
{
    size_t cnt = 0;
    for (int32_t i = 0; i < p->nops; i++)
        cnt += p->ops[i].kind == kind;
    xfer_key *v = malloc((cnt ? cnt : 1) * sizeof *v);
    if (!v)
        return NULL;
    size_t k = 0;
    for (int32_t i = 0; i < p->nops; i++) {
        const sim_prog_op *o = &p->ops[i];
        if (o->kind != kind)
            continue;
        int32_t src = kind == SIM_OP_SEND ? o->core : o->xfer.peer;
        int32_t dst = kind == SIM_OP_SEND ? o->xfer.peer : o->core;
        v[k++] = (xfer_key){src, dst, o->xfer.tag, i};
    }
    qsort(v, cnt, sizeof *v, cmp_xfer);
    *n = cnt;
    return v;
}

/* The first problem found while pairing transfers: the smallest op id wins. */
typedef struct {
    int32_t op;              /* -1: none */
    size_t nsend, nrecv;     /* transfers on the op's route and tag */
    int32_t partner;         /* for a size mismatch: the matching send */
} xfer_problem;

static void note_problem(xfer_problem *pr, int32_t op, size_t ns, size_t nr, int32_t partner)
{
    if (pr->op < 0 || op < pr->op)
        *pr = (xfer_problem){op, ns, nr, partner};
}

/* Pairs one run of sends s[0..ns) with recvs r[0..nr) of the same (src, dst, tag). */
static void pair_run(const sim_program *p, const xfer_key *s, size_t ns, const xfer_key *r,
                     size_t nr, int32_t *partner, xfer_problem *unmatched,
                     xfer_problem *mismatch, size_t *nunmatched)
{
    size_t k = ns < nr ? ns : nr;
    for (size_t i = 0; i < k; i++) {
        partner[r[i].op] = s[i].op;
        partner[s[i].op] = r[i].op;
        if (p->ops[s[i].op].xfer.bytes != p->ops[r[i].op].xfer.bytes)
            note_problem(mismatch, r[i].op, ns, nr, s[i].op);
    }
    if (ns > k)
        note_problem(unmatched, s[k].op, ns, nr, -1);
    if (nr > k)
        note_problem(unmatched, r[k].op, ns, nr, -1);
    *nunmatched += (ns - k) + (nr - k);
}

static ss_status report_unmatched(checker *c, const xfer_problem *u, size_t total)
{
    const sim_prog_op *o = &c->p->ops[u->op];
    int send = o->kind == SIM_OP_SEND;
    int32_t src = send ? o->core : o->xfer.peer, dst = send ? o->xfer.peer : o->core;
    char more[64] = "";
    if (total > 1)
        snprintf(more, sizeof more, "; %zu unmatched sends/recvs in all", total);
    return check_fail(c, u->op, "%s %s core %d with tag %d (%" PRIu64 " bytes) has no "
                      "matching %s: core %d sends %zu message%s to core %d with tag %d, "
                      "core %d receives %zu%s", send ? "send" : "recv", send ? "to" : "from",
                      o->xfer.peer, o->xfer.tag, o->xfer.bytes, send ? "recv" : "send", src,
                      u->nsend, u->nsend == 1 ? "" : "s", dst, o->xfer.tag, dst, u->nrecv,
                      more);
}

static ss_status report_mismatch(checker *c, const xfer_problem *m)
{
    const sim_prog_op *r = &c->p->ops[m->op], *s = &c->p->ops[m->partner];
    char d[160];
    c->describe(c->p, m->partner, c->ctx, d, sizeof d);
    return check_fail(c, m->op, "recv from core %d with tag %d expects %" PRIu64 " bytes but "
                      "its matching send, %s, sends %" PRIu64, r->xfer.peer, r->xfer.tag,
                      r->xfer.bytes, d, s->xfer.bytes);
}

/* Pairs every send with its recv (partner[] links them both ways). */
static ss_status check_transfers(checker *c, int32_t *partner)
{
    size_t ns, nr, nunmatched = 0, i = 0, j = 0;
    xfer_key *s = collect_xfers(c->p, SIM_OP_SEND, &ns);
    xfer_key *r = collect_xfers(c->p, SIM_OP_RECV, &nr);
    if (!s || !r) {
        free(s);
        free(r);
        return check_nomem(c);
    }
    xfer_problem unmatched = {.op = -1}, mismatch = {.op = -1};
    while (i < ns || j < nr) {
        const xfer_key *key = j >= nr || (i < ns && cmp_xfer_route(&s[i], &r[j]) <= 0)
                                  ? &s[i] : &r[j];
        size_t a = i, b = j;
        while (i < ns && cmp_xfer_route(&s[i], key) == 0)
            i++;
        while (j < nr && cmp_xfer_route(&r[j], key) == 0)
            j++;
        pair_run(c->p, s + a, i - a, r + b, j - b, partner, &unmatched, &mismatch,
                 &nunmatched);
    }
    free(s);
    free(r);
    if (unmatched.op >= 0)
        return report_unmatched(c, &unmatched, nunmatched);
    if (mismatch.op >= 0)
        return report_mismatch(c, &mismatch);
    return SS_OK;
}

typedef struct {
    int32_t id, op;
} coll_key;

static int cmp_coll(const void *a, const void *b)
{
    const coll_key *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return (x->op > y->op) - (x->op < y->op);
}

/* Compares collective op o with the instance's first op ref; reports the first difference
 * ("what here but what at <ref>"). */
static ss_status check_coll_agrees(checker *c, int32_t o, int32_t ref)
{
    const sim_prog_coll *x = &c->p->ops[o].coll, *y = &c->p->ops[ref].coll;
    char here[128], there[128];
    sink sh = {.buf = here, .cap = sizeof here}, st = {.buf = there, .cap = sizeof there};
    if (x->kind != y->kind) {
        sink_printf(&sh, "kind %s", coll_kind_names[x->kind]);
        sink_printf(&st, "%s", coll_kind_names[y->kind]);
    } else if (x->group != y->group) {
        sink_printf(&sh, "group ");
        write_group(&sh, c->p, x->group);
        write_group(&st, c->p, y->group);
    } else if (x->kind != SIM_COLL_ALLTOALLV && x->bytes != y->bytes) {
        sink_printf(&sh, "%" PRIu64 " bytes", x->bytes);
        sink_printf(&st, "%" PRIu64, y->bytes);
    } else if (x->matrix != y->matrix) {
        sink_printf(&sh, "byte matrix mat%d", x->matrix);
        sink_printf(&st, "mat%d", y->matrix);
    } else if (x->algo != y->algo) {
        sink_printf(&sh, "algorithm hint '%s'", sim_program_string(c->p, x->algo));
        sink_printf(&st, "'%s'", sim_program_string(c->p, y->algo));
    } else {
        return SS_OK;
    }
    char d[160];
    c->describe(c->p, ref, c->ctx, d, sizeof d);
    return check_fail(c, o, "collective %d: %s here but %s at %s", x->id, here, there, d);
}

/* Checks one instance keys[0..n) (sorted by op id); seen[core] marks members with stamp. */
static ss_status check_coll_instance(checker *c, const coll_key *keys, size_t n, int32_t *seen,
                                     int32_t *rep)
{
    const sim_program *p = c->p;
    int32_t ref = keys[0].op;
    for (size_t k = 0; k < n; k++) {
        int32_t o = keys[k].op, core = p->ops[o].core;
        ss_status st = check_coll_agrees(c, o, ref);
        if (st != SS_OK)
            return st;
        if (seen[core] >= 0) {
            char d[160];
            c->describe(p, seen[core], c->ctx, d, sizeof d);
            return check_fail(c, o, "collective %d appears twice on core %d (also at %s)",
                              keys[k].id, core, d);
        }
        seen[core] = o;
        rep[o] = ref;
    }
    int32_t gn;
    const int32_t *members = sim_program_group(p, p->ops[ref].coll.group, &gn);
    ss_status st = SS_OK;
    for (int32_t i = 0; i < gn && st == SS_OK; i++)
        if (seen[members[i]] < 0) {
            char g[96];
            sink s = {.buf = g, .cap = sizeof g};
            write_group(&s, p, p->ops[ref].coll.group);
            st = check_fail(c, ref, "collective %d (%s over group %s) has no op on core %d "
                            "(%zu of %d members have one)", keys[0].id,
                            coll_kind_names[p->ops[ref].coll.kind], g, members[i], n, gn);
        }
    for (size_t k = 0; k < n; k++)
        seen[p->ops[keys[k].op].core] = -1;
    return st;
}

/* Checks every collective instance; rep[op] becomes the instance's first op. */
static ss_status check_collectives(checker *c, int32_t *rep)
{
    const sim_program *p = c->p;
    size_t n = 0;
    for (int32_t i = 0; i < p->nops; i++)
        n += p->ops[i].kind == SIM_OP_COLLECTIVE;
    coll_key *keys = malloc((n ? n : 1) * sizeof *keys);
    int32_t *seen = malloc((size_t)p->ncores * sizeof *seen);
    if (!keys || !seen) {
        free(keys);
        free(seen);
        return check_nomem(c);
    }
    size_t k = 0;
    for (int32_t i = 0; i < p->nops; i++)
        if (p->ops[i].kind == SIM_OP_COLLECTIVE)
            keys[k++] = (coll_key){p->ops[i].coll.id, i};
    qsort(keys, n, sizeof *keys, cmp_coll);
    for (int32_t i = 0; i < p->ncores; i++)
        seen[i] = -1;
    ss_status st = SS_OK;
    for (size_t a = 0, b; a < n && st == SS_OK; a = b) {
        for (b = a + 1; b < n && keys[b].id == keys[a].id; b++)
            ;
        st = check_coll_instance(c, keys + a, b - a, seen, rep);
    }
    free(keys);
    free(seen);
    return st;
}

/* Builds a CSR adjacency of n nodes from m edges (from[e] -> to[e]). */
static int build_csr(int32_t n, const int32_t *from, const int32_t *to, size_t m,
                     size_t **start, int32_t **adj)
{
    *start = calloc((size_t)n + 1, sizeof **start);
    *adj = malloc((m ? m : 1) * sizeof **adj);
    if (!*start || !*adj)
        return -1;
    for (size_t e = 0; e < m; e++)
        (*start)[from[e] + 1]++;
    for (int32_t v = 0; v < n; v++)
        (*start)[v + 1] += (*start)[v];
    size_t *fill = malloc(((size_t)n + 1) * sizeof *fill);
    if (!fill)
        return -1;
    memcpy(fill, *start, ((size_t)n + 1) * sizeof *fill);
    for (size_t e = 0; e < m; e++)
        (*adj)[fill[from[e]]++] = to[e];
    free(fill);
    return 0;
}

/* The edges between representatives: dependencies and send -> recv. */
static size_t collect_edges(const sim_program *p, const int32_t *partner, const int32_t *rep,
                            int32_t *from, int32_t *to)
{
    size_t m = 0;
    for (int32_t i = 0; i < p->nops; i++) {
        for (uint32_t e = p->dep_start[i]; e < p->dep_start[i + 1]; e++) {
            from[m] = rep[p->deps[e]];
            to[m++] = rep[i];
        }
        if (p->ops[i].kind == SIM_OP_RECV) {
            SS_ASSERT(partner[i] >= 0); /* check_transfers paired every recv */
            from[m] = partner[i];
            to[m++] = i;
        }
    }
    return m;
}

/* Kahn's algorithm over representatives; indeg[] ends > 0 exactly on unprocessed nodes.
 * Returns the number of representatives left unprocessed. */
static int32_t topo_leftover(const sim_program *p, const int32_t *rep, const size_t *succ_start,
                             const int32_t *succ, int32_t *indeg, int32_t *queue)
{
    int32_t head = 0, tail = 0, live = 0;
    for (int32_t v = 0; v < p->nops; v++)
        for (size_t e = succ_start[v]; e < succ_start[v + 1]; e++)
            indeg[succ[e]]++;
    for (int32_t v = 0; v < p->nops; v++)
        if (rep[v] == v) {
            live++;
            if (indeg[v] == 0)
                queue[tail++] = v;
        }
    while (head < tail) {
        int32_t v = queue[head++];
        for (size_t e = succ_start[v]; e < succ_start[v + 1]; e++)
            if (--indeg[succ[e]] == 0)
                queue[tail++] = succ[e];
    }
    return live - tail;
}

/* Walks unprocessed predecessors from an unprocessed node until one repeats and reports the
 * cycle found in waiting order, starting at its smallest op id. pos and seq are scratch of
 * nops entries. */
static ss_status report_cycle(checker *c, const int32_t *rep, const size_t *pred_start,
                              const int32_t *pred, const int32_t *indeg, int32_t *pos,
                              int32_t *seq)
{
    const sim_program *p = c->p;
    int32_t v = 0, len = 0;
    while (rep[v] != v || indeg[v] == 0)
        v++;
    for (int32_t i = 0; i < p->nops; i++)
        pos[i] = -1;
    while (pos[v] < 0) {
        pos[v] = len;
        seq[len++] = v;
        size_t e = pred_start[v];
        while (indeg[pred[e]] == 0) /* an unprocessed node has an unprocessed predecessor */
            e++;
        v = pred[e];
    }
    /* seq[pos[v]..len) is the cycle, each entry waiting for the next: reversed, it is in
     * waiting order; cyc(k) = seq[len-1-k]. */
    int32_t n = len - pos[v], start = 0;
    for (int32_t k = 1; k < n; k++)
        if (seq[len - 1 - k] < seq[len - 1 - start])
            start = k;
    char msg[700], d[160];
    sink s = {.buf = msg, .cap = sizeof msg};
    int32_t shown = n < 6 ? n : 6;
    for (int32_t k = 0; k < shown; k++) {
        int32_t o = seq[len - 1 - (start + k) % n];
        c->describe(p, o, c->ctx, d, sizeof d);
        sink_printf(&s, "%s%s %s", k ? " -> " : "", op_kind_names[p->ops[o].kind], d);
    }
    if (n > shown)
        sink_printf(&s, " -> ... (%d ops in all)", n);
    return check_fail(c, seq[len - 1 - start], "deadlock: ops wait for each other in a cycle "
                      "through send/recv or collectives (each waits for the one before it, "
                      "the first for the last): %s", msg);
}

/* Fails when dependencies, send->recv edges and collectives form a cycle. */
static ss_status check_cycles(checker *c, const int32_t *partner, const int32_t *rep)
{
    const sim_program *p = c->p;
    size_t maxe = p->ndeps + (size_t)p->nops, m;
    int32_t *from = malloc((maxe ? maxe : 1) * sizeof *from);
    int32_t *to = malloc((maxe ? maxe : 1) * sizeof *to);
    int32_t *indeg = calloc((size_t)p->nops + 1, sizeof *indeg);
    int32_t *queue = malloc(((size_t)p->nops + 1) * sizeof *queue);
    size_t *ss = NULL, *ps = NULL;
    int32_t *succ = NULL, *pred = NULL;
    ss_status st = SS_OK;
    if (!from || !to || !indeg || !queue) {
        st = check_nomem(c);
        goto out;
    }
    m = collect_edges(p, partner, rep, from, to);
    if (build_csr(p->nops, from, to, m, &ss, &succ) != 0 ||
        build_csr(p->nops, to, from, m, &ps, &pred) != 0) {
        st = check_nomem(c);
        goto out;
    }
    if (topo_leftover(p, rep, ss, succ, indeg, queue) > 0)
        st = report_cycle(c, rep, ps, pred, indeg, from, to); /* reuse from/to as scratch */
out:
    free(from);
    free(to);
    free(indeg);
    free(queue);
    free(ss);
    free(succ);
    free(ps);
    free(pred);
    return st;
}

/* Runs every cross-core check; on failure c->err and c->bad describe the problem. */
static ss_status check_program(checker *c)
{
    const sim_program *p = c->p;
    c->bad = -1;
    if (p->err.code != SS_OK) {
        c->err = p->err;
        return p->err.code;
    }
    int32_t *partner = malloc(((size_t)p->nops + 1) * sizeof *partner);
    int32_t *rep = malloc(((size_t)p->nops + 1) * sizeof *rep);
    ss_status st;
    if (!partner || !rep) {
        st = check_nomem(c);
    } else {
        for (int32_t i = 0; i < p->nops; i++)
            partner[i] = -1, rep[i] = i;
        st = check_transfers(c, partner);
        if (st == SS_OK)
            st = check_collectives(c, rep);
        if (st == SS_OK)
            st = check_cycles(c, partner, rep);
    }
    free(partner);
    free(rep);
    return st;
}

static void describe_by_id(const sim_program *p, int32_t op, const void *ctx, char *buf,
                           size_t cap)
{
    (void)ctx;
    const sim_prog_op *o = &p->ops[op];
    if (o->label)
        snprintf(buf, cap, "op %d (core %d, '%s')", op, o->core,
                 sim_program_string(p, o->label));
    else
        snprintf(buf, cap, "op %d (core %d)", op, o->core);
}

ss_status sim_program_pair_xfers(const sim_program *p, int32_t *partner, ss_err *err)
{
    for (int32_t i = 0; i < p->nops; i++)
        partner[i] = -1;
    checker c = {.p = p, .describe = describe_by_id};
    ss_status st = check_transfers(&c, partner);
    if (st != SS_OK && c.bad >= 0) {
        char d[160];
        describe_by_id(p, c.bad, NULL, d, sizeof d);
        ss_err_prefix(&c.err, "%s %s", op_kind_names[p->ops[c.bad].kind], d);
    }
    if (st != SS_OK && err)
        *err = c.err;
    return st;
}

ss_status sim_program_validate(const sim_program *p, ss_err *err)
{
    checker c = {.p = p, .describe = describe_by_id};
    ss_status st = check_program(&c);
    if (st == SS_OK)
        return SS_OK;
    if (c.bad >= 0) {
        char d[160];
        describe_by_id(p, c.bad, NULL, d, sizeof d);
        ss_err_prefix(&c.err, "%s %s", op_kind_names[p->ops[c.bad].kind], d);
    }
    if (err)
        *err = c.err;
    return st;
}

/* ======================================================================================== */
/* writer                                                                                    */
/* ======================================================================================== */

static void write_matrices(FILE *f, const sim_program *p)
{
    for (int32_t id = 0; id < p->matrices.n; id++) {
        int32_t r;
        const uint64_t *m = sim_program_matrix(p, id, &r);
        fprintf(f, "matrix mat%d %dx%d:\n", id, r, r);
        for (int32_t i = 0; i < r; i++) {
            fputs(" ", f);
            for (int32_t j = 0; j < r; j++)
                fprintf(f, " %" PRIu64, m[(size_t)i * (size_t)r + (size_t)j]);
            fputc('\n', f);
        }
    }
}

static void write_kind_fields(sink *s, const sim_program *p, const sim_prog_op *o)
{
    switch ((sim_op_kind)o->kind) {
    case SIM_OP_MATMUL:
        sink_printf(s, " m=%" PRIu64 " k=%" PRIu64 " n=%" PRIu64 " dtype=%s", o->matmul.m,
                    o->matmul.k, o->matmul.n, sim_prog_dtype_name(o->matmul.dtype));
        break;
    case SIM_OP_VECTOR:
        sink_printf(s, " kind=%s elements=%" PRIu64 " dtype=%s",
                    sim_vector_kind_name(o->vector.kind), o->vector.elements,
                    sim_prog_dtype_name(o->vector.dtype));
        if (o->vector.row_len)
            sink_printf(s, " row_len=%" PRIu64, o->vector.row_len);
        break;
    case SIM_OP_HBM:
        sink_printf(s, " read=%" PRIu64 " write=%" PRIu64, o->hbm.read_bytes,
                    o->hbm.write_bytes);
        break;
    case SIM_OP_SEND:
    case SIM_OP_RECV:
        sink_printf(s, " %s=%d bytes=%" PRIu64 " tag=%d", o->kind == SIM_OP_SEND ? "to" : "from",
                    o->xfer.peer, o->xfer.bytes, o->xfer.tag);
        break;
    case SIM_OP_COLLECTIVE:
        sink_printf(s, " id=%d kind=%s group=", o->coll.id, coll_kind_names[o->coll.kind]);
        write_group(s, p, o->coll.group);
        if (o->coll.kind == SIM_COLL_ALLTOALLV)
            sink_printf(s, " matrix=mat%d", o->coll.matrix);
        else
            sink_printf(s, " bytes=%" PRIu64, o->coll.bytes);
        if (o->coll.algo)
            sink_printf(s, " algo=%s", sim_program_string(p, o->coll.algo));
        break;
    case SIM_OP_KIND_COUNT:
        SS_ASSERT(0);
    }
}

/* One op line; pos[id] is an op's index within its core (its name is o<index>). */
static void write_op(sink *s, const sim_program *p, int32_t id, const int32_t *pos)
{
    const sim_prog_op *o = &p->ops[id];
    sink_printf(s, "  o%d: %s", pos[id], op_kind_names[o->kind]);
    write_kind_fields(s, p, o);
    if (o->label)
        sink_printf(s, " label=%s", sim_program_string(p, o->label));
    if (o->layer != SIM_PROG_NONE)
        sink_printf(s, " layer=%d", o->layer);
    if (o->phase != SIM_PHASE_NONE)
        sink_printf(s, " phase=%s", phase_names[o->phase]);
    int32_t nd;
    const int32_t *d = sim_program_deps(p, id, &nd);
    for (int32_t k = 0; k < nd; k++)
        sink_printf(s, k ? ",o%d" : " after=o%d", pos[d[k]]);
    sink_printf(s, "\n");
}

ss_status sim_program_write(const sim_program *p, FILE *f, ss_err *err)
{
    if (p->err.code != SS_OK)
        return sim_program_status(p, err);
    int32_t *pos = malloc(((size_t)p->nops + 1) * sizeof *pos);
    if (!pos)
        return ss_err_set(err, SS_ERR_NOMEM, "step program: out of memory");
    for (int32_t c = 0; c < p->ncores; c++)
        for (int32_t k = 0; k < p->core[c].n; k++)
            pos[p->core[c].ops[k]] = k;
    fprintf(f, "# switchsim step program v1\ncores %d\n", p->ncores);
    write_matrices(f, p);
    sink s = {.f = f};
    for (int32_t c = 0; c < p->ncores; c++) {
        if (p->core[c].n == 0)
            continue;
        fprintf(f, "core %d:\n", c);
        for (int32_t k = 0; k < p->core[c].n; k++)
            write_op(&s, p, p->core[c].ops[k], pos);
    }
    free(pos);
    if (fflush(f) != 0 || ferror(f))
        return ss_err_set(err, SS_ERR_IO, "step program: write failed");
    return SS_OK;
}

/* ======================================================================================== */
/* parser                                                                                    */
/* ======================================================================================== */

typedef struct {
    int32_t *v;
    size_t n, cap;
} ivec;

static int ivec_push(ivec *a, int32_t x)
{
    int32_t *v = grown(a->v, &a->cap, a->n + 1, sizeof *v, NULL);
    if (!v)
        return -1;
    a->v = v;
    v[a->n++] = x;
    return 0;
}

typedef struct {
    char *s;   /* NUL-terminated in the line buffer */
    int col;   /* 1-based column of its first byte */
} tok;

/* The fields of the text form. */
typedef enum {
    K_M, K_K, K_N, K_DTYPE, K_KIND, K_ELEMENTS, K_ROW_LEN, K_READ, K_WRITE, K_TO, K_FROM,
    K_BYTES, K_TAG, K_ID, K_GROUP, K_MATRIX, K_ALGO, K_LABEL, K_LAYER, K_PHASE, K_AFTER,
    K_COUNT
} field_key;

static const char *const key_names[K_COUNT] = {
    "m", "k", "n", "dtype", "kind", "elements", "row_len", "read", "write", "to", "from",
    "bytes", "tag", "id", "group", "matrix", "algo", "label", "layer", "phase", "after"};

typedef enum {
    V_DIM,    /* 1..2^53 */
    V_SIZE,   /* 0..2^53 */
    V_PEER,   /* a core other than ... (range checked here, self by the builder) */
    V_INT,    /* 0..INT32_MAX */
    V_DTYPE, V_VKIND, V_CKIND, V_PHASE, /* names */
    V_GROUP,  /* core list -> group id */
    V_MATRIX, /* matrix name -> matrix id */
    V_TEXT,   /* interned string id */
    V_AFTER   /* op names of the current core -> the parser's dependency list */
} value_type;

typedef struct {
    field_key key;
    value_type type;
    int required;
} field_spec;

#define SPEC_END {K_COUNT, V_INT, 0}
static const field_spec matmul_spec[] = {
    {K_M, V_DIM, 1}, {K_K, V_DIM, 1}, {K_N, V_DIM, 1}, {K_DTYPE, V_DTYPE, 1}, SPEC_END};
static const field_spec vector_spec[] = {{K_KIND, V_VKIND, 1}, {K_ELEMENTS, V_DIM, 1},
                                         {K_DTYPE, V_DTYPE, 1}, {K_ROW_LEN, V_SIZE, 0},
                                         SPEC_END};
static const field_spec hbm_spec[] = {{K_READ, V_SIZE, 1}, {K_WRITE, V_SIZE, 1}, SPEC_END};
static const field_spec send_spec[] = {
    {K_TO, V_PEER, 1}, {K_BYTES, V_SIZE, 1}, {K_TAG, V_INT, 0}, SPEC_END};
static const field_spec recv_spec[] = {
    {K_FROM, V_PEER, 1}, {K_BYTES, V_SIZE, 1}, {K_TAG, V_INT, 0}, SPEC_END};
static const field_spec coll_spec[] = {
    {K_ID, V_INT, 1}, {K_KIND, V_CKIND, 1}, {K_GROUP, V_GROUP, 1}, {K_BYTES, V_SIZE, 0},
    {K_MATRIX, V_MATRIX, 0}, {K_ALGO, V_TEXT, 0}, SPEC_END};
static const field_spec common_spec[] = {{K_LABEL, V_TEXT, 0}, {K_LAYER, V_INT, 0},
                                         {K_PHASE, V_PHASE, 0}, {K_AFTER, V_AFTER, 0},
                                         SPEC_END};
static const field_spec *const op_specs[SIM_OP_KIND_COUNT] = {
    matmul_spec, vector_spec, hbm_spec, send_spec, recv_spec, coll_spec};

typedef struct {
    uint64_t v[K_COUNT]; /* parsed values (numbers, enum values, ids) */
    int col[K_COUNT];    /* column of each given field's token; 0 = absent */
} op_fields;

typedef struct {
    sim_program *p;
    const char *name;     /* file name for messages */
    int line;
    ss_err err;
    int32_t core;         /* current core block, -1 outside */
    const char *op;       /* name of the op line being parsed */
    tok *toks;
    size_t ntoks, toks_cap;
    sim_prog_pool names;  /* key [int32 scope][name]: scope = core for ops, -1 for matrices */
    int32_t *name_val;    /* [names.n] op id or matrix id */
    int *name_line;       /* [names.n] line of the definition */
    size_t name_cap, name_line_cap;
    int *op_line, *op_col; /* [nops] position of each op's name */
    int32_t *op_name;     /* [nops] name id */
    size_t op_line_cap, op_col_cap, op_name_cap;
    ivec deps;            /* the op's dependencies (after=) */
    ivec members;         /* the group being parsed */
    int32_t *stamp;       /* [ncores] for repeated group members */
    int32_t stamp_gen;
    uint64_t *mat;        /* the matrix being read */
    size_t mat_len, mat_cap;
    int32_t mat_r, mat_rows_left, mat_name;
    int mat_line;
    struct {
        int set, line, col;
        int32_t core;
        char name[SIM_PROG_MAX_TEXT + 1];
    } pending;            /* the first unknown name in after= */
} parser;

static ss_status perr(parser *ps, int col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ss_status perr(parser *ps, int col, const char *fmt, ...)
{
    char msg[sizeof ps->err.msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ss_err_set(&ps->err, SS_ERR_CONFIG, "%s:%d:%d: %.900s", ps->name, ps->line, col, msg);
    return SS_ERR_CONFIG;
}

static ss_status perr_nomem(parser *ps)
{
    return ss_err_set(&ps->err, SS_ERR_NOMEM, "%s:%d: out of memory", ps->name, ps->line);
}

/* A builder call failed: report its sticky message at col. */
static ss_status perr_builder(parser *ps, int col)
{
    if (ps->p->err.code == SS_ERR_NOMEM)
        return perr_nomem(ps);
    return perr(ps, col, "%s", ps->p->err.msg);
}

/* ---- lexical helpers ---- */

/* Parses a decimal integer in [min, max]; 0 ok, -1 not a number, -2 out of range. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!*s)
        return -1;
    uint64_t v = 0;
    int big = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            big = 1;
        else
            v = v * 10 + d;
    }
    if (big || v < min || v > max)
        return -2;
    *out = v;
    return 0;
}

static ss_status parse_number(parser *ps, const char *s, int col, const char *what,
                              uint64_t min, uint64_t max, uint64_t *out)
{
    int r = parse_u64(s, min, max, out);
    if (r == -1)
        return *s ? perr(ps, col, "bad number '%.40s' for %s (expected a decimal integer)", s,
                         what)
                  : perr(ps, col, "missing value for %s", what);
    if (r == -2)
        return perr(ps, col, "%s = %.40s is out of range (%" PRIu64 "..%" PRIu64 ")", what, s,
                    min, max);
    return SS_OK;
}

static ss_status parse_core(parser *ps, const char *s, int col, const char *what,
                            int32_t *out)
{
    uint64_t v;
    int r = parse_u64(s, 0, (uint64_t)ps->p->ncores - 1, &v);
    if (r == -1 && !*s)
        return perr(ps, col, "missing value for %s", what);
    if (r == -1)
        return perr(ps, col, "bad number '%.40s' for %s (expected a decimal integer)", s, what);
    if (r == -2)
        return perr(ps, col, "%s %.40s is out of range: the program has %d cores (0..%d)",
                    what, s, ps->p->ncores, ps->p->ncores - 1);
    *out = (int32_t)v;
    return SS_OK;
}

static int valid_name(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return 0;
    size_t n = 0;
    for (; *s; s++, n++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return 0;
    return n <= SIM_PROG_MAX_TEXT;
}

/* Removes a trailing ':' from t; whether there was one. */
static int strip_colon(tok *t)
{
    size_t n = strlen(t->s);
    if (n == 0 || t->s[n - 1] != ':')
        return 0;
    t->s[n - 1] = '\0';
    return 1;
}

/* ---- the name table ---- */

/* key has room for an int32 and SIM_PROG_MAX_TEXT bytes; name passed valid_name. */
static size_t name_key(unsigned char *key, int32_t scope, const char *name)
{
    size_t n = strlen(name);
    SS_ASSERT(n <= SIM_PROG_MAX_TEXT);
    memcpy(key, &scope, sizeof scope);
    memcpy(key + sizeof scope, name, n);
    return sizeof scope + n;
}

/* The value (op or matrix id) of name in scope, or -1; *line gets its definition line. */
static int32_t name_find(const parser *ps, int32_t scope, const char *name, int *line)
{
    unsigned char key[sizeof(int32_t) + SIM_PROG_MAX_TEXT + 1];
    int32_t id = pool_find(&ps->names, key, name_key(key, scope, name));
    if (id < 0)
        return -1;
    *line = ps->name_line[id];
    return ps->name_val[id];
}

/* Defines name in scope (not defined yet); returns the name id or -1 (out of memory). */
static int32_t name_define(parser *ps, int32_t scope, const char *name, int32_t value)
{
    unsigned char key[sizeof(int32_t) + SIM_PROG_MAX_TEXT + 1];
    int32_t id;
    int added;
    if (pool_add(&ps->names, key, name_key(key, scope, name), &id, &added) != 0)
        return -1;
    int32_t *v = grown(ps->name_val, &ps->name_cap, (size_t)id + 1, sizeof *v, NULL);
    if (!v)
        return -1;
    ps->name_val = v;
    int *l = grown(ps->name_line, &ps->name_line_cap, (size_t)id + 1, sizeof *l, NULL);
    if (!l)
        return -1;
    ps->name_line = l;
    v[id] = value;
    l[id] = ps->line;
    return id;
}

/* ---- field values ---- */

static int enum_count(value_type t)
{
    switch (t) {
    case V_DTYPE: return 2;
    case V_VKIND: return SIM_VECTOR_KIND_COUNT;
    case V_CKIND: return SIM_COLL_KIND_COUNT;
    case V_PHASE: return SIM_PHASE_COUNT;
    default: return 0;
    }
}

/* The name of enum value i of type t, or "" for values with no text form (phase none). */
static const char *enum_name(value_type t, int i)
{
    switch (t) {
    case V_DTYPE: return sim_prog_dtype_name(i ? SIM_OPERANDS_F32 : SIM_OPERANDS_BF16);
    case V_VKIND: return sim_vector_kind_name((sim_vector_kind)i);
    case V_CKIND: return coll_kind_names[i];
    case V_PHASE: return phase_names[i];
    default: return "";
    }
}

static ss_status parse_enum(parser *ps, const char *s, int col, field_key key, value_type t,
                            uint64_t *out)
{
    char expected[200];
    sink e = {.buf = expected, .cap = sizeof expected};
    int n = enum_count(t), shown = 0;
    for (int i = 0; i < n; i++) {
        const char *name = enum_name(t, i);
        if (!*name)
            continue;
        if (strcmp(s, name) == 0) {
            *out = t == V_DTYPE ? (uint64_t)(i ? SIM_OPERANDS_F32 : SIM_OPERANDS_BF16)
                                : (uint64_t)i;
            return SS_OK;
        }
        sink_printf(&e, "%s%s", shown++ ? (i == n - 1 ? " or " : ", ") : "", name);
    }
    return perr(ps, col, "bad value '%.40s' for field '%s' (expected %s)", s, key_names[key],
                expected);
}

/* Parses one group item ("c" or "a-b") and appends its cores. */
static ss_status parse_group_item(parser *ps, char *item, int col)
{
    char *dash = strchr(item, '-');
    int32_t lo, hi;
    if (dash)
        *dash = '\0';
    ss_status st = parse_core(ps, item, col, "group member", &lo);
    if (st == SS_OK)
        hi = lo;
    if (st == SS_OK && dash)
        st = parse_core(ps, dash + 1, col + (int)(dash + 1 - item), "group member", &hi);
    if (st != SS_OK)
        return st;
    if (hi < lo)
        return perr(ps, col, "bad range %d-%d in group (expected low-high)", lo, hi);
    for (int32_t c = lo; c <= hi; c++) {
        if (ps->stamp[c] == ps->stamp_gen)
            return perr(ps, col, "core %d is listed twice in the group", c);
        ps->stamp[c] = ps->stamp_gen;
        if (ivec_push(&ps->members, c) != 0)
            return perr_nomem(ps);
    }
    return SS_OK;
}

static ss_status parse_group(parser *ps, char *s, int col, uint64_t *out)
{
    ps->members.n = 0;
    ps->stamp_gen++;
    for (char *item = s;;) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        int icol = col + (int)(item - s);
        if (!*item)
            return perr(ps, icol, "expected a core or a range a-b in group");
        ss_status st = parse_group_item(ps, item, icol);
        if (st != SS_OK)
            return st;
        if (!comma)
            break;
        item = comma + 1;
    }
    int32_t g = sim_program_add_group(ps->p, ps->members.v, (int32_t)ps->members.n);
    if (g < 0)
        return perr_builder(ps, col);
    *out = (uint64_t)g;
    return SS_OK;
}

/* Resolves after=a,b,... into ps->deps (unknown names become the pending error). */
static ss_status parse_after(parser *ps, char *s, int col)
{
    ps->deps.n = 0;
    for (char *item = s;;) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        int icol = col + (int)(item - s), line;
        if (!*item)
            return perr(ps, icol, "expected an op name in after=");
        if (!valid_name(item))
            return perr(ps, icol, "bad op name '%.40s' in after=", item);
        if (strcmp(item, ps->op) == 0)
            return perr(ps, icol, "op '%s' depends on itself", item);
        int32_t op = name_find(ps, ps->core, item, &line);
        if (op < 0 && !ps->pending.set) {
            ps->pending.set = 1;
            ps->pending.line = ps->line;
            ps->pending.col = icol;
            ps->pending.core = ps->core;
            snprintf(ps->pending.name, sizeof ps->pending.name, "%s", item);
        }
        for (size_t k = 0; op >= 0 && k < ps->deps.n; k++)
            if (ps->deps.v[k] == op)
                return perr(ps, icol, "'%s' is listed twice in after=", item);
        if (op >= 0 && ivec_push(&ps->deps, op) != 0)
            return perr_nomem(ps);
        if (!comma)
            break;
        item = comma + 1;
    }
    return SS_OK;
}

static ss_status parse_value(parser *ps, const field_spec *f, char *v, int col, uint64_t *out)
{
    char what[48];
    snprintf(what, sizeof what, "field '%s'", key_names[f->key]);
    switch (f->type) {
    case V_DIM: return parse_number(ps, v, col, what, 1, SIM_PROG_MAX_SIZE, out);
    case V_SIZE: return parse_number(ps, v, col, what, 0, SIM_PROG_MAX_SIZE, out);
    case V_INT: return parse_number(ps, v, col, what, 0, INT32_MAX, out);
    case V_PEER: {
        int32_t c;
        ss_status st = parse_core(ps, v, col, "peer core", &c);
        *out = (uint64_t)c;
        return st;
    }
    case V_DTYPE:
    case V_VKIND:
    case V_CKIND:
    case V_PHASE: return parse_enum(ps, v, col, f->key, f->type, out);
    case V_GROUP: return parse_group(ps, v, col, out);
    case V_MATRIX: {
        int line;
        int32_t m = valid_name(v) ? name_find(ps, -1, v, &line) : -1;
        if (m < 0)
            return perr(ps, col, "unknown matrix '%.40s' (declare it first with 'matrix "
                        "%.40s RxR:')", v, v);
        *out = (uint64_t)m;
        return SS_OK;
    }
    case V_TEXT: {
        int32_t id = sim_program_intern(ps->p, v);
        if (id < 0)
            return perr_builder(ps, col);
        *out = (uint64_t)id;
        return SS_OK;
    }
    case V_AFTER: return parse_after(ps, v, col);
    }
    return SS_OK;
}

static const field_spec *find_field(const field_spec *spec, const char *key)
{
    for (; spec->key != K_COUNT; spec++)
        if (strcmp(key_names[spec->key], key) == 0)
            return spec;
    return NULL;
}

static void list_fields(sink *s, const field_spec *spec, int *n)
{
    for (; spec->key != K_COUNT; spec++)
        sink_printf(s, "%s%s", (*n)++ ? ", " : "", key_names[spec->key]);
}

/* Parses one FIELD=VALUE token of an op of kind. */
static ss_status parse_field(parser *ps, sim_op_kind kind, tok *t, op_fields *of)
{
    char *eq = strchr(t->s, '=');
    if (!eq)
        return perr(ps, t->col, "expected FIELD=VALUE, got '%.40s'", t->s);
    *eq = '\0';
    const field_spec *f = find_field(op_specs[kind], t->s);
    if (!f)
        f = find_field(common_spec, t->s);
    if (!f) {
        char list[300];
        sink s = {.buf = list, .cap = sizeof list};
        int n = 0;
        list_fields(&s, op_specs[kind], &n);
        list_fields(&s, common_spec, &n);
        return perr(ps, t->col, "unknown field '%.40s' for %s (expected %s)", t->s,
                    op_kind_names[kind], list);
    }
    if (of->col[f->key])
        return perr(ps, t->col, "field '%s' is given twice", key_names[f->key]);
    of->col[f->key] = t->col;
    int vcol = t->col + (int)(eq + 1 - t->s);
    if (!eq[1])
        return perr(ps, vcol, "missing value for field '%s'", key_names[f->key]);
    return parse_value(ps, f, eq + 1, vcol, &of->v[f->key]);
}

/* Reports missing required fields (all of them) at col. */
static ss_status check_required(parser *ps, sim_op_kind kind, const char *name,
                                const op_fields *of, int col)
{
    char list[200];
    sink s = {.buf = list, .cap = sizeof list};
    int n = 0;
    for (const field_spec *f = op_specs[kind]; f->key != K_COUNT; f++)
        if (f->required && !of->col[f->key])
            sink_printf(&s, "%s%s", n++ ? ", " : "", key_names[f->key]);
    if (n)
        return perr(ps, col, "%s '%s' is missing field%s %s", op_kind_names[kind], name,
                    n > 1 ? "s" : "", list);
    return SS_OK;
}

/* bytes= and matrix= depend on the collective kind. */
static ss_status check_coll_sizes(parser *ps, const op_fields *of, int col)
{
    int v = of->v[K_KIND] == SIM_COLL_ALLTOALLV;
    if (v && of->col[K_BYTES])
        return perr(ps, of->col[K_BYTES], "field 'bytes' does not apply to alltoallv (the "
                    "sizes come from matrix=)");
    if (v && !of->col[K_MATRIX])
        return perr(ps, col, "collective alltoallv is missing field matrix");
    if (!v && of->col[K_MATRIX])
        return perr(ps, of->col[K_MATRIX], "field 'matrix' applies only to kind=alltoallv");
    if (!v && !of->col[K_BYTES])
        return perr(ps, col, "collective %s is missing field bytes",
                    coll_kind_names[of->v[K_KIND]]);
    return SS_OK;
}

/* Calls the builder for the parsed fields; the op's deps are in ps->deps. */
static int32_t build_op(parser *ps, sim_op_kind kind, const op_fields *of)
{
    sim_program *p = ps->p;
    const uint64_t *v = of->v;
    int32_t core = ps->core, label = of->col[K_LABEL] ? (int32_t)v[K_LABEL] : 0;
    const int32_t *deps = ps->deps.v;
    int32_t nd = of->col[K_AFTER] ? (int32_t)ps->deps.n : 0;
    sim_program_set_scope(p, of->col[K_LAYER] ? (int32_t)v[K_LAYER] : SIM_PROG_NONE,
                          of->col[K_PHASE] ? (sim_phase)v[K_PHASE] : SIM_PHASE_NONE);
    switch (kind) {
    case SIM_OP_MATMUL:
        return sim_program_add_matmul(p, core, label, v[K_M], v[K_K], v[K_N],
                                      (sim_operands)v[K_DTYPE], deps, nd);
    case SIM_OP_VECTOR:
        return sim_program_add_vector(p, core, label, (sim_vector_kind)v[K_KIND],
                                      v[K_ELEMENTS], v[K_ROW_LEN], (sim_operands)v[K_DTYPE],
                                      deps, nd);
    case SIM_OP_HBM: return sim_program_add_hbm(p, core, label, v[K_READ], v[K_WRITE], deps, nd);
    case SIM_OP_SEND:
        return sim_program_add_send(p, core, label, (int32_t)v[K_TO], v[K_BYTES],
                                    (int32_t)v[K_TAG], deps, nd);
    case SIM_OP_RECV:
        return sim_program_add_recv(p, core, label, (int32_t)v[K_FROM], v[K_BYTES],
                                    (int32_t)v[K_TAG], deps, nd);
    case SIM_OP_COLLECTIVE: {
        sim_prog_coll c = {.id = (int32_t)v[K_ID], .kind = (sim_coll_kind)v[K_KIND],
                           .group = (int32_t)v[K_GROUP], .bytes = v[K_BYTES],
                           .matrix = of->col[K_MATRIX] ? (int32_t)v[K_MATRIX] : SIM_PROG_NONE,
                           .algo = of->col[K_ALGO] ? (int32_t)v[K_ALGO] : 0};
        return sim_program_add_collective(p, core, label, &c, deps, nd);
    }
    case SIM_OP_KIND_COUNT: break;
    }
    SS_ASSERT(0);
    return -1;
}

/* Remembers where op id came from (for validation messages). */
static int record_op(parser *ps, int32_t id, int col, int32_t name_id)
{
    int *l = grown(ps->op_line, &ps->op_line_cap, (size_t)id + 1, sizeof *l, NULL);
    if (!l)
        return -1;
    ps->op_line = l;
    int *c = grown(ps->op_col, &ps->op_col_cap, (size_t)id + 1, sizeof *c, NULL);
    if (!c)
        return -1;
    ps->op_col = c;
    int32_t *n = grown(ps->op_name, &ps->op_name_cap, (size_t)id + 1, sizeof *n, NULL);
    if (!n)
        return -1;
    ps->op_name = n;
    l[id] = ps->line;
    c[id] = col;
    n[id] = name_id;
    return 0;
}

static int op_kind_lookup(const char *s)
{
    for (int k = 0; k < SIM_OP_KIND_COUNT; k++)
        if (strcmp(s, op_kind_names[k]) == 0)
            return k;
    return -1;
}

/* NAME: KIND FIELD=VALUE ... */
static ss_status parse_op(parser *ps)
{
    tok *t = ps->toks;
    const char *name = t[0].s;
    int line;
    if (!*name)
        return perr(ps, t[0].col, "expected an op name before ':'");
    if (!valid_name(name))
        return perr(ps, t[0].col, "bad op name '%.40s' (letters, digits, '_', '.' and '-', "
                    "starting with a letter or '_')", name);
    if (ps->core < 0)
        return perr(ps, t[0].col, "op '%s' is outside a core block: expected 'core N:' first",
                    name);
    if (name_find(ps, ps->core, name, &line) >= 0)
        return perr(ps, t[0].col, "op name '%s' is already used on core %d (line %d)", name,
                    ps->core, line);
    if (ps->ntoks < 2)
        return perr(ps, t[0].col + (int)strlen(name) + 1, "expected an op kind after '%s:' "
                    "(matmul, vector, hbm, send, recv or collective)", name);
    int kind = op_kind_lookup(t[1].s);
    if (kind < 0)
        return perr(ps, t[1].col, "unknown op kind '%.40s' (expected matmul, vector, hbm, "
                    "send, recv or collective)", t[1].s);
    op_fields of;
    memset(&of, 0, sizeof of);
    ps->deps.n = 0;
    ps->op = name;
    for (size_t i = 2; i < ps->ntoks; i++) {
        ss_status st = parse_field(ps, (sim_op_kind)kind, &t[i], &of);
        if (st != SS_OK)
            return st;
    }
    ss_status st = check_required(ps, (sim_op_kind)kind, name, &of, t[1].col);
    if (st == SS_OK && kind == SIM_OP_COLLECTIVE)
        st = check_coll_sizes(ps, &of, t[1].col);
    if (st != SS_OK)
        return st;
    int32_t id = build_op(ps, (sim_op_kind)kind, &of);
    if (id < 0)
        return perr_builder(ps, t[1].col);
    int32_t nid = name_define(ps, ps->core, name, id);
    if (nid < 0 || record_op(ps, id, t[0].col, nid) != 0)
        return perr_nomem(ps);
    return SS_OK;
}

/* cores N */
static ss_status parse_cores(parser *ps)
{
    tok *t = ps->toks;
    if (ps->p->ncores)
        return perr(ps, t[0].col, "'cores' is given twice");
    if (ps->ntoks < 2)
        return perr(ps, t[0].col + 5, "expected the number of cores after 'cores'");
    if (ps->ntoks > 2)
        return perr(ps, t[2].col, "unexpected '%.40s' after 'cores N'", t[2].s);
    uint64_t n;
    ss_status st = parse_number(ps, t[1].s, t[1].col, "the number of cores", 1,
                                SIM_PROG_MAX_CORES, &n);
    if (st != SS_OK)
        return st;
    ss_err e;
    if (sim_program_init(ps->p, (int32_t)n, &e) != SS_OK)
        return perr_nomem(ps);
    ps->stamp = calloc((size_t)n, sizeof *ps->stamp);
    return ps->stamp ? SS_OK : perr_nomem(ps);
}

/* core C: */
static ss_status parse_core_header(parser *ps)
{
    tok *t = ps->toks;
    if (ps->ntoks < 2)
        return perr(ps, t[0].col + 4, "expected a core number after 'core'");
    if (!strip_colon(&t[1]))
        return perr(ps, t[1].col + (int)strlen(t[1].s), "expected ':' after the core number "
                    "(core N:)");
    if (ps->ntoks > 2)
        return perr(ps, t[2].col, "unexpected '%.40s' after 'core N:' (one op per line)",
                    t[2].s);
    return parse_core(ps, t[1].s, t[1].col, "core", &ps->core);
}

/* matrix NAME RxR: */
static ss_status parse_matrix_header(parser *ps)
{
    tok *t = ps->toks;
    int line;
    ps->core = -1;
    if (ps->ntoks < 3)
        return perr(ps, t[0].col, "expected 'matrix NAME RxR:'");
    if (ps->ntoks > 3)
        return perr(ps, t[3].col, "unexpected '%.40s' after 'matrix NAME RxR:'", t[3].s);
    if (!valid_name(t[1].s))
        return perr(ps, t[1].col, "bad matrix name '%.40s' (letters, digits, '_', '.' and "
                    "'-', starting with a letter or '_')", t[1].s);
    if (name_find(ps, -1, t[1].s, &line) >= 0)
        return perr(ps, t[1].col, "matrix '%s' is already declared (line %d)", t[1].s, line);
    if (!strip_colon(&t[2]))
        return perr(ps, t[2].col + (int)strlen(t[2].s), "expected ':' after the matrix size");
    char *x = strchr(t[2].s, 'x');
    if (!x)
        return perr(ps, t[2].col, "expected the matrix size as RxR, got '%.40s'", t[2].s);
    *x = '\0';
    uint64_t r, c, max = (uint64_t)ps->p->ncores;
    ss_status st = parse_number(ps, t[2].s, t[2].col, "matrix rows", 1, max, &r);
    if (st == SS_OK)
        st = parse_number(ps, x + 1, t[2].col + (int)(x + 1 - t[2].s), "matrix columns", 1,
                          max, &c);
    if (st != SS_OK)
        return st;
    if (r != c)
        return perr(ps, t[2].col, "matrix must be square (RxR with R the group size), got "
                    "%" PRIu64 "x%" PRIu64, r, c);
    ps->mat_name = name_define(ps, -1, t[1].s, -1);
    if (ps->mat_name < 0)
        return perr_nomem(ps);
    ps->mat_r = ps->mat_rows_left = (int32_t)r;
    ps->mat_len = 0;
    ps->mat_line = ps->line;
    return SS_OK;
}

static const char *name_text(const parser *ps, int32_t name_id)
{
    size_t len;
    return (const char *)pool_blob(&ps->names, name_id, &len) + sizeof(int32_t);
}

/* One row of the matrix being read; the last row adds the matrix to the program. */
static ss_status parse_matrix_row(parser *ps)
{
    tok *t = ps->toks;
    int32_t row = ps->mat_r - ps->mat_rows_left;
    const char *mname = name_text(ps, ps->mat_name);
    if (t[0].s[0] < '0' || t[0].s[0] > '9')
        return perr(ps, t[0].col, "expected row %d of matrix '%s' (%d more rows of %d "
                    "numbers), got '%.40s'", row, mname, ps->mat_rows_left, ps->mat_r, t[0].s);
    if (ps->ntoks != (size_t)ps->mat_r)
        return perr(ps, ps->ntoks > (size_t)ps->mat_r ? t[ps->mat_r].col : t[0].col,
                    "row %d of matrix '%s': expected %d numbers, got %zu", row, mname,
                    ps->mat_r, ps->ntoks);
    uint64_t *m = grown(ps->mat, &ps->mat_cap, ps->mat_len + ps->ntoks, sizeof *m, NULL);
    if (!m)
        return perr_nomem(ps);
    ps->mat = m;
    for (size_t i = 0; i < ps->ntoks; i++) {
        ss_status st = parse_number(ps, t[i].s, t[i].col, "matrix entry", 0,
                                    SIM_PROG_MAX_SIZE, &m[ps->mat_len++]);
        if (st != SS_OK)
            return st;
    }
    if (--ps->mat_rows_left > 0)
        return SS_OK;
    int32_t id = sim_program_add_matrix(ps->p, ps->mat, ps->mat_r);
    if (id < 0)
        return perr_builder(ps, t[0].col);
    ps->name_val[ps->mat_name] = id;
    return SS_OK;
}

/* Checks the bytes of a line, cuts the comment and splits the rest into tokens. */
static ss_status tokenize(parser *ps, char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    const char *nul = memchr(s, '\0', n);
    if (nul)
        return perr(ps, (int)(nul - s) + 1, "unexpected NUL byte (the text form is ASCII)");
    for (size_t i = 0; i < n && s[i] != '#'; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < ' ' && c != '\t') || c > '~')
            return perr(ps, (int)i + 1, "unexpected byte 0x%02x (the text form is ASCII; "
                        "comments start with '#')", c);
    }
    char *hash = strchr(s, '#');
    if (hash)
        *hash = '\0';
    ps->ntoks = 0;
    for (char *c = s; *c;) {
        while (*c == ' ' || *c == '\t')
            *c++ = '\0';
        if (!*c)
            break;
        tok *tk = grown(ps->toks, &ps->toks_cap, ps->ntoks + 1, sizeof *tk, NULL);
        if (!tk)
            return perr_nomem(ps);
        ps->toks = tk;
        tk[ps->ntoks++] = (tok){c, (int)(c - s) + 1};
        while (*c && *c != ' ' && *c != '\t')
            c++;
    }
    return SS_OK;
}

static ss_status parse_line(parser *ps, char *s, size_t n)
{
    ss_status st = tokenize(ps, s, n);
    if (st != SS_OK || ps->ntoks == 0)
        return st;
    tok *t = ps->toks;
    if (ps->mat_rows_left > 0)
        return parse_matrix_row(ps);
    if (strcmp(t[0].s, "cores") == 0)
        return parse_cores(ps);
    if (!ps->p->ncores)
        return perr(ps, t[0].col, "expected 'cores N' before anything else, got '%.40s'",
                    t[0].s);
    if (strcmp(t[0].s, "core") == 0)
        return parse_core_header(ps);
    if (strcmp(t[0].s, "matrix") == 0)
        return parse_matrix_header(ps);
    if (strip_colon(&t[0]))
        return parse_op(ps);
    if (op_kind_lookup(t[0].s) >= 0)
        return perr(ps, t[0].col, "expected an op name before '%s' (NAME: %s ...)", t[0].s,
                    t[0].s);
    return perr(ps, t[0].col, "unexpected '%.40s': expected 'core N:', 'matrix NAME RxR:' or "
                "an op 'NAME: KIND FIELD=VALUE ...'", t[0].s);
}

/* The unknown name in after= (reported in preference to any later error). */
static ss_status report_pending(parser *ps)
{
    int line;
    int here = ps->line;
    int32_t op = name_find(ps, ps->pending.core, ps->pending.name, &line);
    ps->line = ps->pending.line;
    ss_status st;
    if (op >= 0)
        st = perr(ps, ps->pending.col, "forward dependency on '%s' (defined later, at line "
                  "%d): after= may only name earlier ops of the core", ps->pending.name, line);
    else
        st = perr(ps, ps->pending.col, "unknown op name '%s' in after= (no op of core %d has "
                  "that name)", ps->pending.name, ps->pending.core);
    ps->line = here;
    return st;
}

static void describe_by_line(const sim_program *p, int32_t op, const void *ctx, char *buf,
                             size_t cap)
{
    const parser *ps = ctx;
    snprintf(buf, cap, "line %d ('%s' on core %d)", ps->op_line[op],
             name_text(ps, ps->op_name[op]), p->ops[op].core);
}

/* End of input: open blocks, the pending name, then the cross-core checks. */
static ss_status parse_finish(parser *ps)
{
    if (ps->pending.set)
        return report_pending(ps);
    if (!ps->p->ncores) {
        ps->line = 1;
        return perr(ps, 1, "empty program: expected 'cores N'");
    }
    if (ps->mat_rows_left > 0) {
        ps->line = ps->mat_line;
        return perr(ps, 1, "end of file inside matrix '%s': %d more rows of %d numbers "
                    "expected", name_text(ps, ps->mat_name), ps->mat_rows_left, ps->mat_r);
    }
    checker c = {.p = ps->p, .describe = describe_by_line, .ctx = ps};
    ss_status st = check_program(&c);
    if (st != SS_OK && c.bad >= 0) {
        ps->err = c.err;
        ss_err_prefix(&ps->err, "%s:%d:%d", ps->name, ps->op_line[c.bad], ps->op_col[c.bad]);
    } else if (st != SS_OK) {
        ps->err = c.err;
    }
    return st;
}

static void parser_free(parser *ps)
{
    free(ps->toks);
    pool_free(&ps->names);
    free(ps->name_val);
    free(ps->name_line);
    free(ps->op_line);
    free(ps->op_col);
    free(ps->op_name);
    free(ps->deps.v);
    free(ps->members.v);
    free(ps->stamp);
    free(ps->mat);
}

ss_status sim_program_parse_stream(sim_program *p, FILE *f, const char *name, ss_err *err)
{
    memset(p, 0, sizeof *p);
    parser ps;
    memset(&ps, 0, sizeof ps);
    ps.p = p;
    ps.name = name;
    ps.core = -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    ss_status st = SS_OK;
    while (st == SS_OK && (n = getline(&line, &cap, f)) >= 0) {
        ps.line++;
        st = parse_line(&ps, line, (size_t)n);
    }
    if (st == SS_OK && ferror(f))
        st = ss_err_set(&ps.err, SS_ERR_IO, "%s: read error after line %d", name, ps.line);
    if (st == SS_OK)
        st = parse_finish(&ps);
    else if (ps.pending.set && st != SS_ERR_IO)
        st = report_pending(&ps);
    free(line);
    parser_free(&ps);
    if (st != SS_OK) {
        sim_program_free(p);
        if (err)
            *err = ps.err;
    }
    return st;
}

ss_status sim_program_parse_file(sim_program *p, const char *path, ss_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        memset(p, 0, sizeof *p);
        return ss_err_set(err, SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    ss_status st = sim_program_parse_stream(p, f, path, err);
    fclose(f);
    return st;
}
