/* This file implements the conversion between step programs and Chakra execution traces
 * described in cli/chakra_program.h: export walks each core's ops and writes their nodes
 * through traces/chakra.h's writer; import reads the files twice, streaming: a first pass
 * gathers the all-to-allv matrices from the cores' rows, the second adds each core's ops as
 * their nodes arrive (memory: the program, one op's nodes and a node-id map of one core).
 *
 * Invariants: node ids of an exported file are 0..n-1 in write order and the nodes of one op
 * are consecutive, so a node's op is recovered from ss_op (ours) or is the node itself
 * (foreign); all-to-allv schedules are built once per (group, matrix) and kept until the
 * export ends.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chakra_program.h"
#include "collectives/coll.h"
#include "sim/engine.h"
#include "traces/chakra.h"

#define FORMAT_NAME "switchsim-step-program"
enum { MAX_ATTRS = 32, MXU_DIM = 128 };

typedef ChakraProtoMsg__NodeType node_type;

/* ---- names ------------------------------------------------------------------------------- */

static const int coll_comm_type[SIM_COLL_KIND_COUNT] = {
    [SIM_COLL_ALLREDUCE] = CHAKRA_PROTO_MSG__COLLECTIVE_COMM_TYPE__ALL_REDUCE,
    [SIM_COLL_REDUCESCATTER] = CHAKRA_PROTO_MSG__COLLECTIVE_COMM_TYPE__REDUCE_SCATTER,
    [SIM_COLL_ALLGATHER] = CHAKRA_PROTO_MSG__COLLECTIVE_COMM_TYPE__ALL_GATHER,
    [SIM_COLL_ALLTOALL] = CHAKRA_PROTO_MSG__COLLECTIVE_COMM_TYPE__ALL_TO_ALL,
    [SIM_COLL_ALLTOALLV] = -1,
    [SIM_COLL_BROADCAST] = CHAKRA_PROTO_MSG__COLLECTIVE_COMM_TYPE__BROADCAST,
    [SIM_COLL_BARRIER] = CHAKRA_PROTO_MSG__COLLECTIVE_COMM_TYPE__BARRIER,
};

static int coll_from_comm_type(int64_t t, sim_coll_kind *k)
{
    for (int i = 0; i < SIM_COLL_KIND_COUNT; i++)
        if (coll_comm_type[i] == t) {
            *k = (sim_coll_kind)i;
            return 0;
        }
    return -1;
}

static int parse_dtype(const char *s, sim_operands *d)
{
    for (int i = SIM_OPERANDS_BF16; i <= SIM_OPERANDS_F32; i++)
        if (s && strcmp(s, sim_prog_dtype_name((sim_operands)i)) == 0) {
            *d = (sim_operands)i;
            return 0;
        }
    return -1;
}

static int parse_phase(const char *s, sim_phase *ph)
{
    for (int i = 0; i < SIM_PHASE_COUNT; i++)
        if (strcmp(s ? s : "", sim_phase_name((sim_phase)i)) == 0) {
            *ph = (sim_phase)i;
            return 0;
        }
    return -1;
}

static int parse_kind(const char *s, sim_op_kind *k)
{
    for (int i = 0; i < SIM_OP_KIND_COUNT; i++)
        if (s && strcmp(s, sim_op_kind_name((sim_op_kind)i)) == 0) {
            *k = (sim_op_kind)i;
            return 0;
        }
    return -1;
}

static void file_name(char *buf, size_t n, const char *dir, const char *prefix, int32_t core)
{
    snprintf(buf, n, "%s/%s.%" PRId32 ".et", dir, prefix, core);
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    return b && a > INT64_MAX / b ? INT64_MAX : a * b;
}

static uint64_t dtype_bytes(sim_operands d)
{
    return d == SIM_OPERANDS_BF16 ? 2 : 4;
}

/* ============================== export ===================================================== */

/* A built all-to-allv schedule, by (group, matrix). */
typedef struct {
    int32_t group, matrix;
    coll_schedule s;
} a2av_entry;

typedef struct {
    const sim_program *p;
    uint64_t *first;     /* [nops] first node id of each exported op of the current core */
    uint32_t *count;     /* [nops] its node count */
    uint64_t *deps;      /* data_deps scratch */
    size_t deps_cap;
    a2av_entry *a2av;
    int32_t na2av;
    chakra_writer w;
    uint64_t next_id;    /* next node id of the current file */
} exporter;

/* One node being built: its attributes live here until it is written. */
typedef struct {
    chakra_node n;
    chakra_attr a[MAX_ATTRS];
    chakra_attr *ap[MAX_ATTRS];
    ChakraProtoMsg__Int32List group_list;
    ChakraProtoMsg__Uint64List row_list;
} node_buf;

static chakra_attr *next_attr(node_buf *b)
{
    SS_ASSERT(b->n.n_attr < MAX_ATTRS);
    b->ap[b->n.n_attr] = &b->a[b->n.n_attr];
    return b->ap[b->n.n_attr++];
}

/* The attributes every node of op id carries (the op's own only on its first node). */
static void common_attrs(node_buf *b, const sim_program *p, int32_t id, int32_t index,
                         int first)
{
    const sim_prog_op *op = sim_program_op(p, id);
    const sim_op_kind kind = (sim_op_kind)op->kind;
    const sim_unit unit = kind == SIM_OP_COLLECTIVE ? SIM_UNIT_NET : sim_engine_op_unit(kind);
    chakra_attr_bool(next_attr(b), "is_cpu_op", 0);
    chakra_attr_int(next_attr(b), "ss_op", index);
    chakra_attr_str(next_attr(b), "ss_kind", sim_op_kind_name(kind));
    if (!first)
        return;
    chakra_attr_str(next_attr(b), "ss_unit", sim_unit_name(unit));
    if (op->label)
        chakra_attr_str(next_attr(b), "ss_label", sim_program_string(p, op->label));
    if (op->layer >= 0)
        chakra_attr_int(next_attr(b), "ss_layer", op->layer);
    if (op->phase != SIM_PHASE_NONE)
        chakra_attr_str(next_attr(b), "ss_phase", sim_phase_name((sim_phase)op->phase));
}

static void comm_attrs(node_buf *b, int32_t src, int32_t dst, uint64_t bytes, int32_t tag)
{
    chakra_attr_i32(next_attr(b), "comm_src", src);
    chakra_attr_i32(next_attr(b), "comm_dst", dst);
    chakra_attr_int(next_attr(b), "comm_size", (int64_t)bytes);
    chakra_attr_i32(next_attr(b), "comm_tag", tag);
}

/* The collective's own attributes (ss_group's list points into the program). */
static void coll_attrs(node_buf *b, const sim_program *p, const sim_prog_coll *c)
{
    int32_t n = 0;
    const int32_t *g = sim_program_group(p, c->group, &n);
    chakra_attr_int(next_attr(b), "ss_coll_id", c->id);
    chakra_attr_str(next_attr(b), "ss_coll_kind", sim_coll_kind_name(c->kind));
    chakra_attr_i32_list(next_attr(b), &b->group_list, "ss_group", (int32_t *)g, (size_t)n);
    if (c->algo)
        chakra_attr_str(next_attr(b), "ss_algo", sim_program_string(p, c->algo));
}

static ss_status write_node(exporter *x, node_buf *b, const char *name, node_type type,
                            int32_t id, ss_err *err)
{
    int32_t nd = 0;
    const int32_t *deps = sim_program_deps(x->p, id, &nd);
    size_t k = 0;
    for (int32_t i = 0; i < nd; i++)
        k += x->count[deps[i]];
    if (k > x->deps_cap) {
        uint64_t *d = realloc(x->deps, k * sizeof *d);
        if (!d)
            return ss_err_set(err, SS_ERR_NOMEM, "out of memory exporting dependencies");
        x->deps = d;
        x->deps_cap = k;
    }
    k = 0;
    for (int32_t i = 0; i < nd; i++)
        for (uint32_t j = 0; j < x->count[deps[i]]; j++)
            x->deps[k++] = x->first[deps[i]] + j;
    b->n.id = x->next_id++;
    b->n.name = (char *)name;
    b->n.type = type;
    b->n.n_data_deps = k;
    b->n.data_deps = x->deps;
    b->n.attr = b->ap;
    return chakra_writer_node(&x->w, &b->n, err);
}

static void node_begin(node_buf *b, const sim_program *p, int32_t id, int32_t index, int first)
{
    chakra_proto_msg__node__init(&b->n);
    common_attrs(b, p, id, index, first);
}

static const char *op_name(const sim_program *p, const sim_prog_op *op)
{
    const char *l = sim_program_string(p, op->label);
    return l[0] ? l : sim_op_kind_name((sim_op_kind)op->kind);
}

static ss_status export_matmul(exporter *x, node_buf *b, int32_t id, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(x->p, id);
    const sim_prog_matmul *m = &op->matmul;
    const uint64_t e = dtype_bytes(m->dtype);
    chakra_attr_int(next_attr(b), "num_ops", (int64_t)sat_mul(2 * m->m, sat_mul(m->k, m->n)));
    chakra_attr_u64(next_attr(b), "tensor_size",
                    sat_mul(e, sat_mul(m->m, m->k) + sat_mul(m->k, m->n) + sat_mul(m->m, m->n)));
    chakra_attr_u64(next_attr(b), "ss_m", m->m);
    chakra_attr_u64(next_attr(b), "ss_k", m->k);
    chakra_attr_u64(next_attr(b), "ss_n", m->n);
    chakra_attr_str(next_attr(b), "ss_dtype", sim_prog_dtype_name(m->dtype));
    return write_node(x, b, op_name(x->p, op), CHAKRA_PROTO_MSG__NODE_TYPE__COMP_NODE, id, err);
}

static ss_status export_vector(exporter *x, node_buf *b, int32_t id, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(x->p, id);
    const sim_prog_vector *v = &op->vector;
    chakra_attr_int(next_attr(b), "num_ops",
                    (int64_t)sat_mul(v->elements, (uint64_t)sim_vector_flops_per_element(v->kind)));
    chakra_attr_u64(next_attr(b), "tensor_size", sat_mul(v->elements, dtype_bytes(v->dtype)));
    chakra_attr_str(next_attr(b), "ss_vector", sim_vector_kind_name(v->kind));
    chakra_attr_u64(next_attr(b), "ss_elements", v->elements);
    chakra_attr_u64(next_attr(b), "ss_row_len", v->row_len);
    chakra_attr_str(next_attr(b), "ss_dtype", sim_prog_dtype_name(v->dtype));
    return write_node(x, b, op_name(x->p, op), CHAKRA_PROTO_MSG__NODE_TYPE__COMP_NODE, id, err);
}

static ss_status export_hbm(exporter *x, int32_t id, int32_t index, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(x->p, id);
    const uint64_t size[2] = {op->hbm.read_bytes, op->hbm.write_bytes};
    const node_type type[2] = {CHAKRA_PROTO_MSG__NODE_TYPE__MEM_LOAD_NODE,
                               CHAKRA_PROTO_MSG__NODE_TYPE__MEM_STORE_NODE};
    ss_status st = SS_OK;
    for (int i = 0; i < 2 && st == SS_OK; i++) {
        if (size[i] == 0 && (i == 1 || size[1] > 0))
            continue;
        node_buf b;
        const int first = x->next_id == x->first[id];
        node_begin(&b, x->p, id, index, first);
        chakra_attr_u64(next_attr(&b), "tensor_size", size[i]);
        if (first) {
            chakra_attr_u64(next_attr(&b), "ss_read", size[0]);
            chakra_attr_u64(next_attr(&b), "ss_write", size[1]);
        }
        st = write_node(x, &b, op_name(x->p, op), type[i], id, err);
    }
    return st;
}

static ss_status export_xfer(exporter *x, node_buf *b, int32_t id, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(x->p, id);
    const int send = op->kind == SIM_OP_SEND;
    comm_attrs(b, send ? op->core : op->xfer.peer, send ? op->xfer.peer : op->core,
               op->xfer.bytes, op->xfer.tag);
    return write_node(x, b, op_name(x->p, op),
                      send ? CHAKRA_PROTO_MSG__NODE_TYPE__COMM_SEND_NODE
                           : CHAKRA_PROTO_MSG__NODE_TYPE__COMM_RECV_NODE,
                      id, err);
}

static ss_status export_coll(exporter *x, node_buf *b, int32_t id, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(x->p, id);
    chakra_attr_int(next_attr(b), "comm_type", coll_comm_type[op->coll.kind]);
    chakra_attr_int(next_attr(b), "comm_size", (int64_t)op->coll.bytes);
    coll_attrs(b, x->p, &op->coll);
    return write_node(x, b, op_name(x->p, op), CHAKRA_PROTO_MSG__NODE_TYPE__COMM_COLL_NODE, id,
                      err);
}

/* The direct schedule of an all-to-allv over (group, matrix), built on first use. */
static const coll_schedule *a2av_schedule(exporter *x, const sim_prog_coll *c, ss_err *err)
{
    for (int32_t i = 0; i < x->na2av; i++)
        if (x->a2av[i].group == c->group && x->a2av[i].matrix == c->matrix)
            return &x->a2av[i].s;
    a2av_entry *e = realloc(x->a2av, ((size_t)x->na2av + 1) * sizeof *e);
    if (!e) {
        ss_err_set(err, SS_ERR_NOMEM, "out of memory building an all-to-allv schedule");
        return NULL;
    }
    x->a2av = e;
    int32_t r = 0;
    const uint64_t *m = sim_program_matrix(x->p, c->matrix, &r);
    const coll_desc d = {.kind = SIM_COLL_ALLTOALLV, .p = r, .matrix = m, .elem_bytes = 1};
    a2av_entry *n = &x->a2av[x->na2av];
    n->group = c->group;
    n->matrix = c->matrix;
    if (coll_schedule_build(&n->s, &d, COLL_ALGO_DIRECT, err) != SS_OK)
        return NULL;
    x->na2av++;
    return &n->s;
}

/* The op attributes of an all-to-allv: the collective's, its matrix id and this core's row. */
static void a2av_attrs(node_buf *b, const sim_program *p, const sim_prog_coll *c,
                       const uint64_t *row, int32_t r)
{
    coll_attrs(b, p, c);
    chakra_attr_int(next_attr(b), "ss_matrix", c->matrix);
    chakra_attr_u64_list(next_attr(b), &b->row_list, "ss_matrix_row", (uint64_t *)row,
                         (size_t)r);
}

/* The rank's messages of a direct all-to-allv (sends first, then recvs), each a node; an
 * op without messages is one empty COMP_NODE. The first node carries the matrix row. */
static ss_status export_a2av(exporter *x, int32_t id, int32_t index, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(x->p, id);
    const coll_schedule *s = a2av_schedule(x, &op->coll, err);
    if (!s)
        return err->code;
    int32_t n = 0, r = 0;
    const int32_t *g = sim_program_group(x->p, op->coll.group, &n);
    const int32_t rank = sim_program_group_rank(x->p, op->coll.group, op->core);
    const uint64_t *m = sim_program_matrix(x->p, op->coll.matrix, &r);
    const int32_t tag = COLL_TAG_BASE + op->coll.id;
    int written = 0;
    ss_status st = SS_OK;
    for (int pass = 0; pass < 2 && st == SS_OK; pass++)
        for (size_t i = 0; i < s->nx && st == SS_OK; i++) {
            const coll_xfer *t = &s->x[i];
            if (t->src == t->dst || t->count == 0 || (pass == 0 ? t->src : t->dst) != rank)
                continue;
            node_buf b;
            node_begin(&b, x->p, id, index, !written);
            if (!written)
                a2av_attrs(&b, x->p, &op->coll, m + (size_t)rank * (size_t)r, r);
            comm_attrs(&b, g[t->src], g[t->dst], t->count, tag);
            st = write_node(x, &b, op_name(x->p, op),
                            pass == 0 ? CHAKRA_PROTO_MSG__NODE_TYPE__COMM_SEND_NODE
                                      : CHAKRA_PROTO_MSG__NODE_TYPE__COMM_RECV_NODE,
                            id, err);
            written++;
        }
    if (st == SS_OK && !written) {
        node_buf b;
        node_begin(&b, x->p, id, index, 1);
        a2av_attrs(&b, x->p, &op->coll, m + (size_t)rank * (size_t)r, r);
        chakra_attr_int(next_attr(&b), "num_ops", 0);
        st = write_node(x, &b, op_name(x->p, op), CHAKRA_PROTO_MSG__NODE_TYPE__COMP_NODE, id,
                        err);
    }
    return st;
}

static ss_status export_op(exporter *x, int32_t id, int32_t index, ss_err *err)
{
    const sim_prog_op *op = sim_program_op(x->p, id);
    x->first[id] = x->next_id;
    node_buf b;
    ss_status st = SS_OK;
    switch ((sim_op_kind)op->kind) {
    case SIM_OP_HBM: st = export_hbm(x, id, index, err); break;
    case SIM_OP_COLLECTIVE:
        if (op->coll.kind == SIM_COLL_ALLTOALLV) {
            st = export_a2av(x, id, index, err);
            break;
        }
        node_begin(&b, x->p, id, index, 1);
        st = export_coll(x, &b, id, err);
        break;
    case SIM_OP_MATMUL:
        node_begin(&b, x->p, id, index, 1);
        st = export_matmul(x, &b, id, err);
        break;
    case SIM_OP_VECTOR:
        node_begin(&b, x->p, id, index, 1);
        st = export_vector(x, &b, id, err);
        break;
    case SIM_OP_SEND:
    case SIM_OP_RECV:
        node_begin(&b, x->p, id, index, 1);
        st = export_xfer(x, &b, id, err);
        break;
    case SIM_OP_KIND_COUNT: SS_ASSERT(0 && "unknown op kind");
    }
    x->count[id] = (uint32_t)(x->next_id - x->first[id]);
    return st;
}

static ss_status export_core(exporter *x, const char *path, int32_t core, ss_err *err)
{
    chakra_meta meta = CHAKRA_PROTO_MSG__GLOBAL_METADATA__INIT;
    chakra_attr a[3];
    chakra_attr *ap[3] = {&a[0], &a[1], &a[2]};
    chakra_attr_str(&a[0], "ss_format", FORMAT_NAME);
    chakra_attr_int(&a[1], "ss_ncores", x->p->ncores);
    chakra_attr_int(&a[2], "ss_core", core);
    meta.version = (char *)CHAKRA_ET_VERSION;
    meta.n_attr = 3;
    meta.attr = ap;
    ss_status st = chakra_writer_open(&x->w, path, &meta, err);
    if (st != SS_OK)
        return st;
    x->next_id = 0;
    int32_t n = 0;
    const int32_t *ops = sim_program_core_ops(x->p, core, &n);
    for (int32_t i = 0; i < n && st == SS_OK; i++)
        st = export_op(x, ops[i], i, err);
    if (st != SS_OK) {
        chakra_writer_abort(&x->w);
        ss_err_prefix(err, "%s", path);
        return st;
    }
    return chakra_writer_close(&x->w, err);
}

static ss_status make_dir(const char *dir, ss_err *err)
{
    if (mkdir(dir, 0777) == 0 || errno == EEXIST)
        return SS_OK;
    return ss_err_set(err, SS_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
}

ss_status cli_chakra_export(const sim_program *p, const char *dir, const char *prefix,
                            int32_t *files, ss_err *err)
{
    *files = 0;
    ss_status st = sim_program_validate(p, err);
    if (st == SS_OK)
        st = make_dir(dir, err);
    if (st != SS_OK)
        return st;
    const size_t n = (size_t)p->nops + 1;
    exporter x = {.p = p,
                  .first = malloc(n * sizeof(uint64_t)),
                  .count = malloc(n * sizeof(uint32_t))};
    if (!x.first || !x.count)
        st = ss_err_set(err, SS_ERR_NOMEM, "out of memory exporting the program");
    char path[2048];
    for (int32_t c = 0; c < p->ncores && st == SS_OK; c++) {
        file_name(path, sizeof path, dir, prefix, c);
        st = export_core(&x, path, c, err);
        *files += st == SS_OK;
    }
    for (int32_t i = 0; i < x.na2av; i++)
        coll_schedule_free(&x.a2av[i].s);
    free(x.a2av);
    free(x.first);
    free(x.count);
    free(x.deps);
    return st;
}

/* ============================== import ===================================================== */

/* One core's file. */
typedef struct {
    char path[2048];
} core_file;

/* An all-to-allv matrix gathered from the cores' ss_matrix_row attributes. */
typedef struct {
    int64_t id;      /* ss_matrix of the exporting program */
    int32_t r;
    uint64_t *m;     /* [r * r] */
    uint8_t *have;   /* [r] rows seen */
    int32_t new_id;
} mat_entry;

/* Node id -> index of the op it belongs to: open addressing, linear probing. */
typedef struct {
    uint64_t *key;
    int32_t *val;    /* -1: empty slot */
    size_t cap, n;   /* cap: a power of two, or 0 */
} id_map;

/* The nodes of the op being read and where the core stands. */
typedef struct {
    const core_file *f;
    int32_t core;
    chakra_node **pend;  /* [npend] nodes of the current op */
    size_t npend, pend_cap;
    int64_t pend_op;     /* ss_op of the current op, -1 for a foreign node */
    int32_t k;           /* op index of the current op */
    id_map ids;
    int32_t *newid;      /* [op index] new op id, -1 for a skipped node */
    size_t newid_cap;
} core_state;

typedef struct {
    sim_program *out;
    core_file *files;
    int32_t ncores;
    mat_entry *mats;
    int32_t nmats;
    int32_t *deps;   /* dependency scratch */
    size_t deps_cap;
    int64_t ncoll;   /* collectives of the current core so far (foreign traces) */
} importer;

static const chakra_attr *attr(const chakra_node *n, const char *name)
{
    return chakra_attr_find(n->attr, n->n_attr, name);
}

static int is_ours(const chakra_node *n)
{
    return attr(n, "ss_kind") != NULL;
}

/* An integer attribute in [lo, hi]; a missing one is an error unless def is given. */
static ss_status get_int(const core_file *f, const chakra_node *n, const char *name, int64_t lo,
                         int64_t hi, const int64_t *def, int64_t *v, ss_err *err)
{
    const chakra_attr *a = attr(n, name);
    if (!a && def) {
        *v = *def;
        return SS_OK;
    }
    if (!chakra_attr_get_int(a, v) || *v < lo || *v > hi)
        return ss_err_set(err, SS_ERR_DATA, "%s: node %" PRIu64 ": %s attribute '%s'", f->path,
                          n->id, a ? "out-of-range or non-integer" : "missing", name);
    return SS_OK;
}

static ss_status get_size(const core_file *f, const chakra_node *n, const char *name,
                          uint64_t *v, ss_err *err)
{
    int64_t x = 0;
    ss_status st = get_int(f, n, name, 0, (int64_t)SIM_PROG_MAX_SIZE, NULL, &x, err);
    *v = (uint64_t)x;
    return st;
}

static ss_status bad(const core_file *f, const chakra_node *n, const char *what, ss_err *err)
{
    return ss_err_set(err, SS_ERR_DATA, "%s: node %" PRIu64 " (%s): %s", f->path, n->id,
                      chakra_node_type_name(n->type), what);
}

/* ---- reading the files ---- */

/* The core number of a file name "PREFIX.N.et", or -1. */
static long core_of(const char *name, const char *prefix)
{
    const size_t lp = strlen(prefix), ln = strlen(name);
    if (ln < lp + 5 || strncmp(name, prefix, lp) != 0 || name[lp] != '.' ||
        strcmp(name + ln - 3, ".et") != 0)
        return -1;
    long v = 0;
    for (size_t i = lp + 1; i < ln - 3; i++) {
        if (name[i] < '0' || name[i] > '9' || v > SIM_PROG_MAX_CORES)
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static ss_status count_files(const char *dir, const char *prefix, int32_t *ncores, ss_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return ss_err_set(err, SS_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    long most = -1, found = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const long c = core_of(e->d_name, prefix);
        if (c >= 0) {
            found++;
            most = c > most ? c : most;
        }
    }
    closedir(d);
    if (found == 0)
        return ss_err_set(err, SS_ERR_IO, "%s: no %s.*.et files", dir, prefix);
    if (most >= SIM_PROG_MAX_CORES)
        return ss_err_set(err, SS_ERR_DATA, "%s: core %ld exceeds %d cores", dir, most,
                          SIM_PROG_MAX_CORES);
    *ncores = (int32_t)most + 1;
    return SS_OK;
}

/* The metadata must not contradict the file set: ss_ncores, when present, is the count. */
static ss_status check_meta(const core_file *f, const chakra_meta *m, int32_t ncores,
                            ss_err *err)
{
    const chakra_attr *a = chakra_attr_find(m->attr, m->n_attr, "ss_ncores");
    int64_t n = 0;
    if (a && (!chakra_attr_get_int(a, &n) || n != ncores))
        return ss_err_set(err, SS_ERR_DATA,
                          "%s: metadata says %" PRId64 " cores, the directory has files for %d",
                          f->path, n, (int)ncores);
    return SS_OK;
}

/* Reads f's metadata; the nodes are then read with chakra_reader_next. */
static ss_status open_file(chakra_reader *r, const core_file *f, int32_t ncores, ss_err *err)
{
    chakra_meta *meta = NULL;
    ss_status st = chakra_reader_open(r, f->path, &meta, err);
    if (st == SS_OK)
        st = check_meta(f, meta, ncores, err);
    chakra_meta_free(meta);
    if (st != SS_OK)
        chakra_reader_close(r);
    return st;
}

/* ---- all-to-allv matrices ---- */

static mat_entry *find_mat(importer *im, int64_t id)
{
    for (int32_t i = 0; i < im->nmats; i++)
        if (im->mats[i].id == id)
            return &im->mats[i];
    return NULL;
}

static mat_entry *add_mat(importer *im, int64_t id, int32_t r)
{
    mat_entry *v = realloc(im->mats, ((size_t)im->nmats + 1) * sizeof *v);
    if (!v)
        return NULL;
    im->mats = v;
    mat_entry *e = &v[im->nmats];
    *e = (mat_entry){id, r, calloc((size_t)r * (size_t)r, sizeof(uint64_t)), calloc((size_t)r, 1), -1};
    if (!e->m || !e->have) {
        free(e->m);
        free(e->have);
        return NULL;
    }
    im->nmats++;
    return e;
}

/* Records the row a node's ss_matrix_row gives its core. */
static ss_status take_row(importer *im, const core_file *f, const chakra_node *n, int32_t core,
                          ss_err *err)
{
    int64_t id = 0, *row = NULL, *grp = NULL;
    size_t nr = 0, ng = 0;
    ss_status st = get_int(f, n, "ss_matrix", 0, INT32_MAX, NULL, &id, err);
    if (st != SS_OK)
        return st;
    if (!chakra_attr_get_list(attr(n, "ss_matrix_row"), &row, &nr) ||
        !chakra_attr_get_list(attr(n, "ss_group"), &grp, &ng) || nr != ng || nr == 0) {
        free(row);
        free(grp);
        return bad(f, n, "ss_matrix_row and ss_group must be lists of one length", err);
    }
    int32_t rank = -1;
    for (size_t i = 0; i < ng; i++)
        rank = grp[i] == core ? (int32_t)i : rank;
    mat_entry *e = find_mat(im, id);
    if (!e)
        e = add_mat(im, id, (int32_t)nr);
    if (!e)
        st = ss_err_set(err, SS_ERR_NOMEM, "out of memory reading all-to-allv matrices");
    else if (rank < 0 || e->r != (int32_t)nr)
        st = bad(f, n, "all-to-allv row does not fit its group or matrix", err);
    for (size_t j = 0; st == SS_OK && j < nr; j++) {
        if (row[j] < 0 || (uint64_t)row[j] > SIM_PROG_MAX_SIZE)
            st = bad(f, n, "all-to-allv entry out of range", err);
        else
            e->m[(size_t)rank * nr + j] = (uint64_t)row[j];
    }
    if (st == SS_OK)
        e->have[rank] = 1;
    free(row);
    free(grp);
    return st;
}

static int cmp_mat(const void *a, const void *b)
{
    const mat_entry *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Gathers every matrix row (a first pass over the files), then interns the matrices in their
 * original id order. */
static ss_status build_matrices(importer *im, ss_err *err)
{
    ss_status st = SS_OK;
    for (int32_t c = 0; c < im->ncores && st == SS_OK; c++) {
        chakra_reader r;
        if ((st = open_file(&r, &im->files[c], im->ncores, err)) != SS_OK)
            break;
        for (chakra_node *n = NULL; st == SS_OK;) {
            if ((st = chakra_reader_next(&r, &n, err)) != SS_OK || !n)
                break;
            if (attr(n, "ss_matrix_row"))
                st = take_row(im, &im->files[c], n, c, err);
            chakra_node_free(n);
        }
        chakra_reader_close(&r);
    }
    if (st != SS_OK)
        return st;
    qsort(im->mats, (size_t)im->nmats, sizeof *im->mats, cmp_mat);
    for (int32_t i = 0; i < im->nmats; i++) {
        for (int32_t r = 0; r < im->mats[i].r; r++)
            if (!im->mats[i].have[r])
                return ss_err_set(err, SS_ERR_DATA,
                                  "all-to-allv matrix %" PRId64 ": no file gives row %d",
                                  im->mats[i].id, (int)r);
        im->mats[i].new_id = sim_program_add_matrix(im->out, im->mats[i].m, im->mats[i].r);
    }
    return sim_program_status(im->out, err);
}

/* ---- ops ---- */

/* The group of a collective node (ss_group, or every core for foreign nodes). */
static int32_t node_group(importer *im, const core_file *f, const chakra_node *n, ss_err *err)
{
    int64_t *g = NULL;
    size_t k = 0;
    int32_t id = -1;
    if (!is_ours(n)) {
        int32_t *all = malloc((size_t)im->ncores * sizeof *all);
        for (int32_t i = 0; all && i < im->ncores; i++)
            all[i] = i;
        id = all ? sim_program_add_group(im->out, all, im->ncores) : -1;
        free(all);
    } else if (chakra_attr_get_list(attr(n, "ss_group"), &g, &k) && k > 0) {
        int32_t *v = malloc(k * sizeof *v);
        for (size_t i = 0; v && i < k; i++)
            v[i] = g[i] >= 0 && g[i] < im->ncores ? (int32_t)g[i] : -1;
        id = v ? sim_program_add_group(im->out, v, (int32_t)k) : -1;
        free(v);
    }
    free(g);
    if (id < 0 && sim_program_status(im->out, err) == SS_OK)
        bad(f, n, "missing or malformed ss_group", err);
    return id;
}

static int32_t add_collective(importer *im, const core_file *f, const chakra_node *n,
                              int32_t core, int32_t label, const int32_t *deps, int32_t nd,
                              ss_err *err)
{
    sim_prog_coll c = {.matrix = SIM_PROG_NONE};
    int64_t v = 0;
    const int64_t zero = 0;
    if (is_ours(n)) {
        if (coll_kind_parse(chakra_attr_get_str(attr(n, "ss_coll_kind")), &c.kind) != 0)
            return bad(f, n, "missing or unknown ss_coll_kind", err), -1;
        if (get_int(f, n, "ss_coll_id", 0, INT32_MAX, NULL, &v, err) != SS_OK)
            return -1;
        c.id = (int32_t)v;
        const char *algo = chakra_attr_get_str(attr(n, "ss_algo"));
        c.algo = algo ? sim_program_intern(im->out, algo) : 0;
    } else {
        if (get_int(f, n, "comm_type", 0, INT32_MAX, NULL, &v, err) != SS_OK)
            return -1;
        if (coll_from_comm_type(v, &c.kind) != 0)
            return bad(f, n, "comm_type without a switchsim collective (reduce, gather, "
                             "scatter, reduce_scatter_block)", err), -1;
        c.id = (int32_t)im->ncoll;
    }
    im->ncoll++;
    if (c.kind == SIM_COLL_ALLTOALLV) {
        if (get_int(f, n, "ss_matrix", 0, INT32_MAX, NULL, &v, err) != SS_OK)
            return -1;
        const mat_entry *e = find_mat(im, v);
        if (!e)
            return bad(f, n, "ss_matrix names no matrix given by ss_matrix_row", err), -1;
        c.matrix = e->new_id;
    } else if (get_int(f, n, "comm_size", 0, (int64_t)SIM_PROG_MAX_SIZE,
                       c.kind == SIM_COLL_BARRIER ? &zero : NULL, &v, err) != SS_OK) {
        return -1;
    }
    c.bytes = (uint64_t)v;
    if ((c.group = node_group(im, f, n, err)) < 0)
        return -1;
    return sim_program_add_collective(im->out, core, label, &c, deps, nd);
}

static int32_t add_xfer(importer *im, const core_file *f, const chakra_node *n, int32_t core,
                        int send, int32_t label, const int32_t *deps, int32_t nd, ss_err *err)
{
    int64_t peer = 0, tag = 0;
    uint64_t bytes = 0;
    const int64_t zero = 0;
    if (get_int(f, n, send ? "comm_dst" : "comm_src", 0, im->ncores - 1, NULL, &peer, err) ||
        get_size(f, n, "comm_size", &bytes, err) ||
        get_int(f, n, "comm_tag", 0, INT32_MAX, &zero, &tag, err))
        return -1;
    return send ? sim_program_add_send(im->out, core, label, (int32_t)peer, bytes, (int32_t)tag,
                                       deps, nd)
                : sim_program_add_recv(im->out, core, label, (int32_t)peer, bytes, (int32_t)tag,
                                       deps, nd);
}

/* A switchsim op from its first node's ss_* attributes. */
static int32_t add_ours(importer *im, const core_file *f, const chakra_node *n, int32_t core,
                        int32_t label, const int32_t *deps, int32_t nd, ss_err *err)
{
    sim_op_kind kind;
    if (parse_kind(chakra_attr_get_str(attr(n, "ss_kind")), &kind) != 0)
        return bad(f, n, "unknown ss_kind", err), -1;
    uint64_t a = 0, b = 0, c = 0;
    sim_operands dt = SIM_OPERANDS_BF16;
    sim_vector_kind vk = SIM_VECTOR_ELEMENTWISE;
    switch (kind) {
    case SIM_OP_MATMUL:
        if (get_size(f, n, "ss_m", &a, err) || get_size(f, n, "ss_k", &b, err) ||
            get_size(f, n, "ss_n", &c, err))
            return -1;
        if (parse_dtype(chakra_attr_get_str(attr(n, "ss_dtype")), &dt) != 0)
            return bad(f, n, "missing or unknown ss_dtype", err), -1;
        return sim_program_add_matmul(im->out, core, label, a, b, c, dt, deps, nd);
    case SIM_OP_VECTOR:
        if (get_size(f, n, "ss_elements", &a, err) || get_size(f, n, "ss_row_len", &b, err))
            return -1;
        if (parse_dtype(chakra_attr_get_str(attr(n, "ss_dtype")), &dt) != 0 ||
            sim_vector_kind_parse(chakra_attr_get_str(attr(n, "ss_vector")), &vk) != 0)
            return bad(f, n, "missing or unknown ss_dtype or ss_vector", err), -1;
        return sim_program_add_vector(im->out, core, label, vk, a, b, dt, deps, nd);
    case SIM_OP_HBM:
        if (get_size(f, n, "ss_read", &a, err) || get_size(f, n, "ss_write", &b, err))
            return -1;
        return sim_program_add_hbm(im->out, core, label, a, b, deps, nd);
    case SIM_OP_SEND:
    case SIM_OP_RECV:
        return add_xfer(im, f, n, core, kind == SIM_OP_SEND, label, deps, nd, err);
    case SIM_OP_COLLECTIVE:
        return add_collective(im, f, n, core, label, deps, nd, err);
    case SIM_OP_KIND_COUNT: break;
    }
    return bad(f, n, "unknown ss_kind", err), -1;
}

/* An op from a node of another tool (see chakra_program.h). */
static int32_t add_foreign(importer *im, const core_file *f, const chakra_node *n, int32_t core,
                           int32_t label, const int32_t *deps, int32_t nd, ss_err *err)
{
    const int64_t zero = 0;
    int64_t ops = 0;
    uint64_t size = 0;
    switch (n->type) {
    case CHAKRA_PROTO_MSG__NODE_TYPE__COMP_NODE:
        if (get_int(f, n, "num_ops", 0, INT64_MAX, &zero, &ops, err) != SS_OK)
            return -1;
        if (ops >= 2) {
            const uint64_t tile = 2 * MXU_DIM * MXU_DIM;
            return sim_program_add_matmul(im->out, core, label,
                                          ((uint64_t)ops + tile - 1) / tile, MXU_DIM, MXU_DIM,
                                          SIM_OPERANDS_BF16, deps, nd);
        }
        if (attr(n, "tensor_size") && get_size(f, n, "tensor_size", &size, err) != SS_OK)
            return -1;
        return sim_program_add_vector(im->out, core, label, SIM_VECTOR_ELEMENTWISE,
                                      size / 2 ? size / 2 : 1, 0, SIM_OPERANDS_BF16, deps, nd);
    case CHAKRA_PROTO_MSG__NODE_TYPE__MEM_LOAD_NODE:
    case CHAKRA_PROTO_MSG__NODE_TYPE__MEM_STORE_NODE:
        if (get_size(f, n, "tensor_size", &size, err) != SS_OK)
            return -1;
        return n->type == CHAKRA_PROTO_MSG__NODE_TYPE__MEM_LOAD_NODE
                   ? sim_program_add_hbm(im->out, core, label, size, 0, deps, nd)
                   : sim_program_add_hbm(im->out, core, label, 0, size, deps, nd);
    case CHAKRA_PROTO_MSG__NODE_TYPE__COMM_SEND_NODE:
    case CHAKRA_PROTO_MSG__NODE_TYPE__COMM_RECV_NODE:
        return add_xfer(im, f, n, core, n->type == CHAKRA_PROTO_MSG__NODE_TYPE__COMM_SEND_NODE,
                        label, deps, nd, err);
    case CHAKRA_PROTO_MSG__NODE_TYPE__COMM_COLL_NODE:
        return add_collective(im, f, n, core, label, deps, nd, err);
    default: break;
    }
    return bad(f, n, "node type switchsim cannot import", err), -1;
}

static size_t slot_of(const id_map *m, uint64_t key)
{
    return (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 17) & (m->cap - 1);
}

/* The op index of node key, or -1. */
static int32_t map_get(const id_map *m, uint64_t key)
{
    if (!m->cap)
        return -1;
    for (size_t i = slot_of(m, key);; i = (i + 1) & (m->cap - 1)) {
        if (m->val[i] < 0)
            return -1;
        if (m->key[i] == key)
            return m->val[i];
    }
}

static int map_grow(id_map *m)
{
    id_map g = {0};
    g.cap = m->cap ? 2 * m->cap : 1024;
    g.key = malloc(g.cap * sizeof *g.key);
    g.val = malloc(g.cap * sizeof *g.val);
    if (!g.key || !g.val) {
        free(g.key);
        free(g.val);
        return -1;
    }
    for (size_t i = 0; i < g.cap; i++)
        g.val[i] = -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->val[i] >= 0) {
            size_t j = slot_of(&g, m->key[i]);
            while (g.val[j] >= 0)
                j = (j + 1) & (g.cap - 1);
            g.key[j] = m->key[i];
            g.val[j] = m->val[i];
        }
    g.n = m->n;
    free(m->key);
    free(m->val);
    *m = g;
    return 0;
}

/* 0, 1 when key is already there, -1 out of memory. */
static int map_put(id_map *m, uint64_t key, int32_t val)
{
    if (map_get(m, key) >= 0)
        return 1;
    if (2 * (m->n + 1) > m->cap && map_grow(m) != 0)
        return -1;
    size_t i = slot_of(m, key);
    while (m->val[i] >= 0)
        i = (i + 1) & (m->cap - 1);
    m->key[i] = key;
    m->val[i] = val;
    m->n++;
    return 0;
}

/* Appends dependency op index d (deduplicated) to im->deps[0..*nd). */
static int push_dep(importer *im, int32_t *nd, int32_t d)
{
    for (int32_t i = 0; i < *nd; i++)
        if (im->deps[i] == d)
            return 0;
    if ((size_t)*nd == im->deps_cap) {
        const size_t cap = im->deps_cap ? 2 * im->deps_cap : 64;
        int32_t *v = realloc(im->deps, cap * sizeof *v);
        if (!v)
            return -1;
        im->deps = v;
        im->deps_cap = cap;
    }
    im->deps[(*nd)++] = d;
    return 0;
}

/* The dependencies of the current op (all its nodes' data and control deps) as new op ids. */
static ss_status op_deps(importer *im, const core_state *cs, int32_t *nd, ss_err *err)
{
    *nd = 0;
    for (size_t i = 0; i < cs->npend; i++) {
        const chakra_node *n = cs->pend[i];
        for (size_t j = 0; j < n->n_data_deps + n->n_ctrl_deps; j++) {
            const uint64_t dep = j < n->n_data_deps ? n->data_deps[j]
                                                    : n->ctrl_deps[j - n->n_data_deps];
            const int32_t d = map_get(&cs->ids, dep);
            if (d == cs->k)
                continue;
            if (d < 0)
                return ss_err_set(err, SS_ERR_DATA,
                                  "%s: node %" PRIu64 " depends on node %" PRIu64
                                  ", which is not an earlier node of the file",
                                  cs->f->path, n->id, dep);
            if (cs->newid[d] < 0) /* a skipped metadata node */
                continue;
            if (push_dep(im, nd, d) != 0)
                return ss_err_set(err, SS_ERR_NOMEM, "out of memory importing dependencies");
        }
    }
    for (int32_t i = 0; i < *nd; i++)
        im->deps[i] = cs->newid[im->deps[i]];
    return SS_OK;
}

/* Adds the current op (cs->pend) to the program. */
static ss_status import_op(importer *im, core_state *cs, ss_err *err)
{
    const core_file *f = cs->f;
    const chakra_node *n = cs->pend[0];
    int32_t *newid = &cs->newid[cs->k];
    *newid = -1;
    if (n->type == CHAKRA_PROTO_MSG__NODE_TYPE__METADATA_NODE && !is_ours(n))
        return SS_OK;
    int32_t nd = 0;
    ss_status st = op_deps(im, cs, &nd, err);
    if (st != SS_OK)
        return st;
    int64_t layer = SIM_PROG_NONE;
    const int64_t none = SIM_PROG_NONE;
    sim_phase phase = SIM_PHASE_NONE;
    if (get_int(f, n, "ss_layer", 0, INT32_MAX, &none, &layer, err) != SS_OK)
        return err->code;
    if (parse_phase(chakra_attr_get_str(attr(n, "ss_phase")), &phase) != 0)
        return bad(f, n, "unknown ss_phase", err);
    const char *text = chakra_attr_get_str(attr(n, "ss_label"));
    const int32_t label = text ? sim_program_intern(im->out, text) : 0;
    sim_program_set_scope(im->out, (int32_t)layer, phase);
    err->code = SS_OK;
    *newid = is_ours(n) ? add_ours(im, f, n, cs->core, label, im->deps, nd, err)
                        : add_foreign(im, f, n, cs->core, label, im->deps, nd, err);
    if (*newid >= 0)
        return SS_OK;
    if (err->code != SS_OK) /* our own message */
        return err->code;
    st = sim_program_status(im->out, err);
    ss_err_prefix(err, "%s: node %" PRIu64, f->path, n->id);
    return st;
}

static void drop_pending(core_state *cs)
{
    for (size_t i = 0; i < cs->npend; i++)
        chakra_node_free(cs->pend[i]);
    cs->npend = 0;
}

/* Imports the pending op, if any, and empties the list. */
static ss_status flush(importer *im, core_state *cs, ss_err *err)
{
    ss_status st = cs->npend ? import_op(im, cs, err) : SS_OK;
    drop_pending(cs);
    return st;
}

/* Room for op index k in newid and one more pending node; 0 or -1. */
static int grow_state(core_state *cs)
{
    if ((size_t)cs->k + 1 >= cs->newid_cap) {
        const size_t cap = cs->newid_cap ? 2 * cs->newid_cap : 256;
        int32_t *v = realloc(cs->newid, cap * sizeof *v);
        if (!v)
            return -1;
        cs->newid = v;
        cs->newid_cap = cap;
    }
    if (cs->npend == cs->pend_cap) {
        const size_t cap = cs->pend_cap ? 2 * cs->pend_cap : 16;
        chakra_node **v = realloc(cs->pend, cap * sizeof *v);
        if (!v)
            return -1;
        cs->pend = v;
        cs->pend_cap = cap;
    }
    return 0;
}

/* One node read from the file: it joins the current op (same ss_op) or starts the next. */
static ss_status take_node(importer *im, core_state *cs, chakra_node *n, ss_err *err)
{
    int64_t op = -1;
    const int ours = is_ours(n) && chakra_attr_get_int(attr(n, "ss_op"), &op) && op >= 0;
    ss_status st = SS_OK;
    if (!(ours && cs->npend && op == cs->pend_op)) {
        st = flush(im, cs, err);
        cs->k++;
    }
    cs->pend_op = ours ? op : -1;
    if (st == SS_OK && grow_state(cs) != 0)
        st = ss_err_set(err, SS_ERR_NOMEM, "%s: out of memory", cs->f->path);
    const int put = st == SS_OK ? map_put(&cs->ids, n->id, cs->k) : 0;
    if (st == SS_OK && put != 0)
        st = put < 0 ? ss_err_set(err, SS_ERR_NOMEM, "%s: out of memory", cs->f->path)
                     : ss_err_set(err, SS_ERR_DATA, "%s: node id %" PRIu64 " appears twice",
                                  cs->f->path, n->id);
    if (st != SS_OK) {
        chakra_node_free(n);
        return st;
    }
    cs->pend[cs->npend++] = n;
    return SS_OK;
}

static ss_status import_core(importer *im, int32_t core, ss_err *err)
{
    core_state cs = {.f = &im->files[core], .core = core, .pend_op = -1, .k = -1};
    chakra_reader r;
    ss_status st = open_file(&r, cs.f, im->ncores, err);
    if (st != SS_OK)
        return st;
    im->ncoll = 0;
    for (chakra_node *n = NULL; st == SS_OK;) {
        if ((st = chakra_reader_next(&r, &n, err)) != SS_OK || !n)
            break;
        st = take_node(im, &cs, n, err);
    }
    if (st == SS_OK)
        st = flush(im, &cs, err);
    drop_pending(&cs);
    chakra_reader_close(&r);
    free(cs.pend);
    free(cs.newid);
    free(cs.ids.key);
    free(cs.ids.val);
    return st;
}

static void importer_free(importer *im)
{
    free(im->files);
    for (int32_t i = 0; i < im->nmats; i++) {
        free(im->mats[i].m);
        free(im->mats[i].have);
    }
    free(im->mats);
    free(im->deps);
}

/* The file set: PREFIX.0.et .. PREFIX.N-1.et, all present. */
static ss_status find_files(importer *im, const char *dir, const char *prefix, ss_err *err)
{
    ss_status st = count_files(dir, prefix, &im->ncores, err);
    if (st != SS_OK)
        return st;
    im->files = calloc((size_t)im->ncores, sizeof *im->files);
    if (!im->files)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory reading %s", dir);
    for (int32_t c = 0; c < im->ncores; c++) {
        struct stat sb;
        file_name(im->files[c].path, sizeof im->files[c].path, dir, prefix, c);
        if (stat(im->files[c].path, &sb) != 0)
            return ss_err_set(err, SS_ERR_IO, "%s: missing (files for cores 0-%d expected)",
                              im->files[c].path, (int)im->ncores - 1);
    }
    return SS_OK;
}

ss_status cli_chakra_import(sim_program *out, const char *dir, const char *prefix, ss_err *err)
{
    importer im = {.out = out};
    memset(out, 0, sizeof *out);
    ss_status st = find_files(&im, dir, prefix, err);
    if (st == SS_OK)
        st = sim_program_init(out, im.ncores, err);
    if (st == SS_OK)
        st = build_matrices(&im, err);
    for (int32_t c = 0; c < im.ncores && st == SS_OK; c++)
        st = import_core(&im, c, err);
    if (st == SS_OK)
        st = sim_program_status(out, err);
    if (st == SS_OK) {
        st = sim_program_validate(out, err);
        if (st != SS_OK)
            ss_err_prefix(err, "%s/%s.*.et", dir, prefix);
    }
    importer_free(&im);
    if (st != SS_OK)
        sim_program_free(out);
    return st;
}
