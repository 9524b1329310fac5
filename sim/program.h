/* This file declares the step program: the intermediate form between a workload and the
 * hardware. A program is, per core, an ordered list of ops (matmul, vector, HBM transfer,
 * send, recv, collective) with dependencies on earlier ops of the same core; cross-core
 * ordering comes only from send/recv pairs and collectives. Generators build it through the
 * C builder below; people write small ones in the text form described here; the timing
 * engines read it through the accessors.
 *
 * Storage is flat: one op array (48 bytes an op), the dependencies in CSR form (dep_start[i]
 * .. dep_start[i+1] index one int32 array), per-core op lists, and three interning pools
 * (label strings, core groups, alltoallv byte matrices). Arrays grow by doubling, so building
 * N ops costs O(log N) reallocations, never one allocation per op.
 *
 * Invariants:
 *  - op ids are 0..nops-1 in append order, and every dependency of op i is an op j < i on the
 *    same core, so ids are a topological order of each core's graph; a core's op list is
 *    ascending in id;
 *  - every size (matmul dims, elements, bytes, matrix entries) is <= SIM_PROG_MAX_SIZE = 2^53,
 *    so it converts to double exactly; dims and elements are >= 1;
 *  - a collective op's core is a member of its group; an alltoallv op references a matrix of
 *    size group_size x group_size and its bytes field is its core's row sum;
 *  - a builder error is sticky: it is recorded in the program, every later builder call returns
 *    -1 and changes nothing, and sim_program_status/validate/write report it;
 *  - pointers returned by accessors stay valid until the next builder call.
 * Validation (sim_program_validate) adds the cross-core invariants: the k-th send from core s
 * to core d with tag t pairs with the k-th recv on d from s with tag t and both give the same
 * bytes; every member of a collective's group has exactly one op with that collective id and
 * all of them agree on kind, group (same rank order), bytes (not alltoallv), matrix and
 * algorithm hint; and the graph of dependencies plus send->recv edges plus collectives (each
 * instance one node) has no cycle, i.e. the program cannot deadlock. The check takes sends as
 * eager (a send never waits for its recv), the weakest rule: a cycle under it deadlocks under
 * any rule an engine may use.
 *
 * ---- Text form, version 1 ----------------------------------------------------------------
 * Line-oriented ASCII. '#' starts a comment that runs to the end of the line; blank lines are
 * ignored; tokens are separated by spaces or tabs; indentation is free. Statements:
 *
 *   cores N                 the first statement: cores 0..N-1 (1 <= N <= 65536)
 *   core C:                 the op lines that follow belong to core C; a core may have
 *                           several blocks, each appends
 *   NAME: KIND FIELD=VALUE ...
 *                           one op of the current core. NAME is [A-Za-z_][A-Za-z0-9_.-]*,
 *                           unique within its core (names are not kept in the program)
 *   matrix NAME RxR:        an alltoallv byte matrix (R = group size), followed by R lines
 *                           of R integers each: row i holds the bytes group rank i sends to
 *                           ranks 0..R-1. Names are global; declare before use. A matrix
 *                           ends the current core block.
 *
 * Op kinds and their fields (all required unless in brackets):
 *   matmul      m=M k=K n=N dtype=bf16|fp32             C[M,N] = A[M,K] x B[K,N]
 *   vector      kind=elementwise|reduction|softmax|norm elements=E dtype=bf16|fp32
 *               [row_len=R]                              R divides E; 0 (default) = one row
 *   hbm         read=BYTES write=BYTES
 *   send        to=CORE bytes=BYTES [tag=T]              T defaults to 0
 *   recv        from=CORE bytes=BYTES [tag=T]
 *   collective  id=I kind=allreduce|reducescatter|allgather|alltoall|broadcast|barrier
 *               group=CORES bytes=BYTES [algo=HINT]
 *   collective  id=I kind=alltoallv group=CORES matrix=NAME [algo=HINT]
 * and on every op: [label=TEXT] [layer=L] [phase=forward|backward|optimizer] [after=A,B,...]
 *
 * Values: integers are plain decimal (sizes 0..2^53, m/k/n/elements >= 1; ids, tags and
 * layers 0..2^31-1). CORES is a comma-separated list of cores and inclusive ranges in rank
 * order, without repeats: 0-3,8,10-11. TEXT and HINT are 1..255 printable ASCII characters
 * without '#' (labels name layers in reports: enc.3.ffn.wi). after= names earlier ops of the
 * same core.
 * Semantics: bytes of a collective is the size of each core's full buffer (the nccl-tests
 * convention): the allreduce buffer, the allgather output, the reducescatter input, the
 * alltoall send buffer, the broadcast buffer (the root is the group's first member); a
 * barrier has bytes=0. The algorithm hint is passed through to the collectives module.
 *
 * Errors name FILE:LINE:COLUMN (1-based, a tab counts as one column) and what was expected;
 * validation errors (unmatched send/recv, inconsistent collectives, deadlock) point at the
 * line of the offending op. sim_program_write prints the canonical form: this header comment,
 * `cores`, the matrices as mat0, mat1, ... in id order, then each non-empty core in ascending
 * order with its ops named o0, o1, ... (their index in the core) and the fields in the order
 * above, omitting defaults (tag=0 is always written; label, layer, phase, algo, after only
 * when set). write -> parse -> write reproduces the text byte for byte.
 *
 *   # switchsim step program v1
 *   cores 2
 *   core 0:
 *     a: matmul m=128 k=128 n=128 dtype=bf16 label=enc.0.attn.q layer=0 phase=forward
 *     b: vector kind=softmax elements=16384 dtype=fp32 after=a
 *     s: send to=1 bytes=32768 after=b
 *     c: collective id=0 kind=allreduce group=0-1 bytes=4096 after=s
 *   core 1:
 *     r: recv from=0 bytes=32768
 *     c: collective id=0 kind=allreduce group=0-1 bytes=4096 after=r
 */
#ifndef SWITCHSIM_SIM_PROGRAM_H
#define SWITCHSIM_SIM_PROGRAM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/status.h"
#include "sim/mxu_gemm.h"
#include "sim/timing.h"

#define SIM_PROG_MAX_SIZE (UINT64_C(1) << 53) /* largest size, byte count or matrix entry */
enum {
    SIM_PROG_MAX_CORES = 65536, /* largest ncores */
    SIM_PROG_MAX_TEXT = 255,    /* longest label or algorithm hint, in bytes */
    SIM_PROG_NONE = -1,         /* no layer / no matrix */
    SIM_DEPS_PREV = -1          /* as ndeps (deps NULL): depend on the core's previous op */
};

typedef enum {
    SIM_OP_MATMUL = 0,
    SIM_OP_VECTOR,
    SIM_OP_HBM,
    SIM_OP_SEND,
    SIM_OP_RECV,
    SIM_OP_COLLECTIVE,
    SIM_OP_KIND_COUNT
} sim_op_kind;

typedef enum {
    SIM_COLL_ALLREDUCE = 0,
    SIM_COLL_REDUCESCATTER,
    SIM_COLL_ALLGATHER,
    SIM_COLL_ALLTOALL,
    SIM_COLL_ALLTOALLV, /* per-peer sizes from a matrix */
    SIM_COLL_BROADCAST, /* root: the group's first member */
    SIM_COLL_BARRIER,   /* bytes 0 */
    SIM_COLL_KIND_COUNT
} sim_coll_kind;

typedef enum {
    SIM_PHASE_NONE = 0,
    SIM_PHASE_FORWARD,
    SIM_PHASE_BACKWARD,
    SIM_PHASE_OPTIMIZER,
    SIM_PHASE_COUNT
} sim_phase;

typedef struct {
    uint64_t m, k, n;     /* C[m,n] = A[m,k] x B[k,n]; each 1..2^53 */
    sim_operands dtype;   /* operand type of A and B */
} sim_prog_matmul;

typedef struct {
    uint64_t elements;    /* elements of the (first) input, 1..2^53 */
    uint64_t row_len;     /* elements per row (reduction); 0 = one row; divides elements */
    sim_vector_kind kind;
    sim_operands dtype;   /* element type in HBM */
} sim_prog_vector;

typedef struct {
    uint64_t read_bytes, write_bytes; /* HBM traffic, 0..2^53 each */
} sim_prog_hbm;

typedef struct {
    uint64_t bytes;       /* message size, 0..2^53 */
    int32_t peer;         /* send: destination core; recv: source core; != own core */
    int32_t tag;          /* >= 0; pairs repeated transfers of one (src, dst) in order */
} sim_prog_xfer;

typedef struct {
    uint64_t bytes;       /* per-core full buffer (see the text form); alltoallv: the core's
                             matrix row sum, filled in by the builder; barrier: 0 */
    int32_t id;           /* collective instance, >= 0; same on every member */
    int32_t group;        /* group id from sim_program_add_group */
    int32_t matrix;       /* alltoallv: matrix id from sim_program_add_matrix; else NONE */
    int32_t algo;         /* algorithm hint string id, 0 = none */
    sim_coll_kind kind;
} sim_prog_coll;

typedef struct {
    uint8_t kind;         /* sim_op_kind */
    uint8_t phase;        /* sim_phase */
    int32_t core;         /* 0..ncores-1 */
    int32_t label;        /* string id, 0 = no label */
    int32_t layer;        /* layer index >= 0, or SIM_PROG_NONE */
    union {               /* by kind */
        sim_prog_matmul matmul;
        sim_prog_vector vector;
        sim_prog_hbm hbm;
        sim_prog_xfer xfer;  /* SIM_OP_SEND and SIM_OP_RECV */
        sim_prog_coll coll;
    };
} sim_prog_op;

/* An interning pool of byte strings (internal to program.c; fields are private). */
typedef struct {
    unsigned char *data;  /* blobs, each [uint64 length][bytes][>= 1 NUL, pad to 8] */
    size_t len, cap;
    size_t *off;          /* [n]: byte offset of blob id's bytes in data */
    size_t off_cap;
    int32_t n;
    int32_t *slots;       /* [nslots] open-addressing hash table of ids, -1 = empty */
    size_t nslots;
    size_t ngrow;         /* reallocations so far */
} sim_prog_pool;

typedef struct {
    int32_t *ops;         /* [n] op ids of one core, ascending */
    int32_t n;
    size_t cap;
} sim_prog_core;

/* Fields are read-only outside program.c; prefer the accessors. */
typedef struct {
    int32_t ncores;
    int32_t nops;
    sim_prog_op *ops;     /* [nops] */
    uint32_t *dep_start;  /* [nops + 1]: CSR offsets into deps */
    int32_t *deps;        /* [ndeps] op ids */
    size_t ndeps;
    sim_prog_core *core;  /* [ncores] */
    sim_prog_pool strings; /* label and hint text; id 0 = "" */
    sim_prog_pool groups;  /* int32 member lists in rank order */
    sim_prog_pool matrices; /* [uint64 R][R*R uint64] row-major */
    int32_t *gsorted;     /* per group: its ranks sorted by core (for rank lookup) */
    size_t *gsorted_off;  /* [ngroups] offset of a group's ranks in gsorted */
    size_t ops_cap, dep_start_cap, deps_cap, gsorted_len, gsorted_cap, gsorted_off_cap;
    int32_t scope_layer;  /* layer and phase given to new ops (sim_program_set_scope) */
    sim_phase scope_phase;
    ss_err err;           /* the sticky builder error (err.code == SS_OK: none) */
    size_t nreallocs;     /* buffer growths of the op, dep and core arrays so far */
} sim_program;

/* ---- lifetime ---- */
/* An empty program of ncores (1..SIM_PROG_MAX_CORES) cores. On failure p is left freed. */
ss_status sim_program_init(sim_program *p, int32_t ncores, ss_err *err);
/* Frees everything; p may be zeroed or already freed. */
void sim_program_free(sim_program *p);
/* Reserves room for nops ops and ndeps dependencies in total (optional; avoids growth). */
ss_status sim_program_reserve(sim_program *p, size_t nops, size_t ndeps);
/* The sticky builder error: SS_OK, or the first failure (copied into err). */
ss_status sim_program_status(const sim_program *p, ss_err *err);

/* ---- side tables (each returns an id >= 0, or -1 with the sticky error set) ---- */
/* Interns a label or hint: 1..255 printable ASCII characters without '#' (or "" -> 0). */
int32_t sim_program_intern(sim_program *p, const char *text);
/* Interns a group of n >= 1 distinct cores in rank order; equal lists get the same id. */
int32_t sim_program_add_group(sim_program *p, const int32_t *cores, int32_t n);
/* Interns an r x r alltoallv matrix (row-major; [i*r+j] = bytes rank i sends to rank j),
 * 1 <= r <= ncores, entries and row sums <= SIM_PROG_MAX_SIZE. Equal matrices share an id. */
int32_t sim_program_add_matrix(sim_program *p, const uint64_t *bytes, int32_t r);

/* Sets the layer (>= 0, or SIM_PROG_NONE) and phase that ops added from now on carry. */
void sim_program_set_scope(sim_program *p, int32_t layer, sim_phase phase);

/* ---- ops (each returns the new op id, or -1 with the sticky error set) ----
 * label: a string id (0 = none). deps[0..ndeps): earlier ops of the same core, no repeats;
 * or deps NULL with ndeps SIM_DEPS_PREV for "after the core's previous op" (none if the core
 * is empty). The op takes the layer and phase of the current scope. */
int32_t sim_program_add_matmul(sim_program *p, int32_t core, int32_t label, uint64_t m,
                               uint64_t k, uint64_t n, sim_operands dtype,
                               const int32_t *deps, int32_t ndeps);
int32_t sim_program_add_vector(sim_program *p, int32_t core, int32_t label,
                               sim_vector_kind kind, uint64_t elements, uint64_t row_len,
                               sim_operands dtype, const int32_t *deps, int32_t ndeps);
int32_t sim_program_add_hbm(sim_program *p, int32_t core, int32_t label, uint64_t read_bytes,
                            uint64_t write_bytes, const int32_t *deps, int32_t ndeps);
int32_t sim_program_add_send(sim_program *p, int32_t core, int32_t label, int32_t dst,
                             uint64_t bytes, int32_t tag, const int32_t *deps, int32_t ndeps);
int32_t sim_program_add_recv(sim_program *p, int32_t core, int32_t label, int32_t src,
                             uint64_t bytes, int32_t tag, const int32_t *deps, int32_t ndeps);
/* c->bytes is ignored for alltoallv (the core's matrix row sum is stored). */
int32_t sim_program_add_collective(sim_program *p, int32_t core, int32_t label,
                                   const sim_prog_coll *c, const int32_t *deps, int32_t ndeps);

/* ---- accessors (ids must be in range; SS_ASSERT otherwise) ---- */
const sim_prog_op *sim_program_op(const sim_program *p, int32_t id);
const int32_t *sim_program_deps(const sim_program *p, int32_t id, int32_t *ndeps);
const int32_t *sim_program_core_ops(const sim_program *p, int32_t core, int32_t *nops);
const char *sim_program_string(const sim_program *p, int32_t id);
int32_t sim_program_nstrings(const sim_program *p);
const int32_t *sim_program_group(const sim_program *p, int32_t id, int32_t *n);
int32_t sim_program_ngroups(const sim_program *p);
/* The rank of core in group id, or -1 if it is not a member (O(log n)). */
int32_t sim_program_group_rank(const sim_program *p, int32_t id, int32_t core);
const uint64_t *sim_program_matrix(const sim_program *p, int32_t id, int32_t *r);
int32_t sim_program_nmatrices(const sim_program *p);
/* Bytes allocated by the program (capacity, not use). */
size_t sim_program_memory_bytes(const sim_program *p);

const char *sim_op_kind_name(sim_op_kind kind);
const char *sim_coll_kind_name(sim_coll_kind kind);
const char *sim_phase_name(sim_phase phase);       /* "" for SIM_PHASE_NONE */
const char *sim_prog_dtype_name(sim_operands dtype); /* "bf16" or "fp32" */

/* ---- validation and text form ---- */
/* Checks the cross-core invariants listed above; the message names the offending op. */
/* Pairs every send with its recv as validation does: the k-th send from core s to core d with
 * tag t with the k-th recv on d from s with tag t. partner[nops] receives, for a send its
 * recv's id, for a recv its send's id, and -1 for other ops. Fails (naming the op) on an
 * unmatched send or recv or a byte-count mismatch, which a validated program never has. */
ss_status sim_program_pair_xfers(const sim_program *p, int32_t *partner, ss_err *err);
ss_status sim_program_validate(const sim_program *p, ss_err *err);
/* Parses and validates a text program into p (which need not be initialised). On failure p
 * is left freed and err holds "FILE:LINE:COL: message". name is used in messages. */
ss_status sim_program_parse_file(sim_program *p, const char *path, ss_err *err);
ss_status sim_program_parse_stream(sim_program *p, FILE *f, const char *name, ss_err *err);
/* Writes the canonical text form; SS_ERR_IO on a write error. */
ss_status sim_program_write(const sim_program *p, FILE *f, ss_err *err);

#endif
