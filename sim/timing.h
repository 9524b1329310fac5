/* This file declares the per-operation timing models of one core of a chip: a matrix multiply
 * on the core's weight-stationary systolic matrix units (MXUs) and a vector-unit operation
 * (elementwise, reduction, softmax, norm), each overlapped with its HBM traffic. They are pure
 * functions of a sim_chip and an operation description; the engines and step programs call
 * them per op. The formulas are written out at the top of sim/timing.c.
 *
 * Invariants: a successful call fills every field of the result; cycles >= every component
 * (compute, memory, fill/drain, startup); seconds == cycles / clock; utilisations lie in
 * [0, 1]; a failed call (zero or oversized shape, bad option, chip field out of range)
 * returns SS_ERR_RANGE with a message naming the field and leaves the result untouched.
 * reference: SCALE-Sim weight-stationary dataflow (Samajdar et al., arXiv 1811.02883);
 * REFERENCE.md section 6 (TPU figures).
 */
#ifndef SWITCHSIM_SIM_TIMING_H
#define SWITCHSIM_SIM_TIMING_H

#include <stdint.h>

#include "common/status.h"
#include "sim/chip.h"
#include "sim/mxu_gemm.h"

/* Which resource sets an operation's time. */
typedef enum {
    SIM_BOUND_COMPUTE = 0, /* the MXU sequence (or the vector unit) is the longer path */
    SIM_BOUND_MEMORY = 1   /* HBM traffic is the longer path (roofline memory side) */
} sim_bound;

const char *sim_bound_name(sim_bound b);

/* fp32 operands on a bf16 MXU: the number of bf16 matmul passes (a = a1+a2+a3 split into bf16
 * parts, likewise b; products of parts). 1 = operands rounded to bf16 (one pass, XLA's
 * DEFAULT precision), 3 = bf16_3x (HIGH), 6 = bf16_6x (HIGHEST, fp32-faithful). */
enum { SIM_FP32_PASSES_DEFAULT = 6 };

/* C[M,N] = A[M,K] x B[K,N] on one core; B is the stationary (weight) operand. */
typedef struct {
    uint64_t M, K, N;      /* rows of A and C; contraction; columns of B and C; each >= 1 */
    sim_operands operands; /* element type of A and B in HBM (bf16: 2 bytes, fp32: 4); C is
                              always fp32 (4 bytes) */
    int double_buffer;     /* 1: the next weight tile loads while the current one streams */
    int fp32_passes;       /* 1, 3 or 6 bf16 passes for fp32 operands; ignored for bf16 */
} sim_matmul_op;

/* bf16 operands, double buffering on, SIM_FP32_PASSES_DEFAULT. */
sim_matmul_op sim_matmul_op_default(uint64_t M, uint64_t K, uint64_t N);

typedef struct {
    uint64_t cycles;            /* core clock cycles from first load to last result */
    double seconds;             /* cycles / clock */
    uint64_t flops;             /* useful FLOPs: 2*M*K*N (padding not counted) */
    double mxu_utilization;     /* M*K*N / (mxu_per_core*rows*cols * cycles), in [0, 1] */
    double compute_utilization; /* M*K*N / (mxu_per_core*rows*cols * compute_cycles): the
                                   array's utilisation while it computes (padding, fill/drain,
                                   idle MXUs, extra passes), ignoring memory stalls */
    uint64_t compute_cycles;    /* busiest MXU's load/stream sequence incl. fill/drain */
    uint64_t memory_cycles;     /* (bytes_read + bytes_written) / HBM bytes per core cycle */
    uint64_t fill_drain_cycles; /* rows + cols - 2: the part never overlapped with memory */
    uint64_t bytes_read;        /* HBM bytes of A and B, with re-reads (see timing.c) */
    uint64_t bytes_written;     /* HBM bytes of C (fp32, written once) */
    sim_bound bound;
    uint64_t tiles;             /* weight tiles: tiles_k * tiles_n (partial tiles padded) */
    uint64_t tiles_k, tiles_n;  /* ceil(K / rows), ceil(N / cols) */
    uint64_t tiles_per_mxu;     /* ceil(tiles / mxu_per_core): the busiest MXU's share */
    int passes;                 /* bf16 passes: 1 for bf16, fp32_passes for fp32 */
    uint64_t weight_loads;      /* weight-tile loads on the busiest MXU, all passes */
} sim_matmul_timing;

/* Times op on one core of chip. Errors: SS_ERR_RANGE for a zero dimension, fp32_passes not in
 * {1, 3, 6}, a shape whose counts overflow 64 bits, or a chip field out of range. */
ss_status sim_matmul_time(sim_matmul_timing *out, const sim_chip *chip, const sim_matmul_op *op,
                          ss_err *err);

typedef enum {
    SIM_VECTOR_ELEMENTWISE = 0, /* y = a (op) b: 1 flop, reads 2, writes 1 per element */
    SIM_VECTOR_REDUCTION,       /* sum along rows: 1 flop, reads 1 per element, writes 1 per row */
    SIM_VECTOR_SOFTMAX,         /* max, sub, exp, sum, scale: 5 flops, reads 1, writes 1 */
    SIM_VECTOR_NORM,            /* RMSNorm: square, sum, scale, gain: 4 flops, reads 1, writes 1 */
    SIM_VECTOR_KIND_COUNT
} sim_vector_kind;

/* Cycles the vector unit needs before its first result, paid once per op and never hidden. */
enum { SIM_VECTOR_STARTUP_CYC = 64 };

typedef struct {
    sim_vector_kind kind;
    uint64_t elements;  /* elements of the (first) input tensor, >= 1 */
    uint64_t row_len;   /* elements per row for reduction (0: the whole tensor is one row);
                           must divide elements */
    sim_operands dtype; /* element type in HBM (bf16: 2 bytes, fp32: 4); math is fp32 */
} sim_vector_op;

typedef struct {
    uint64_t cycles;         /* max(compute, memory) + startup */
    double seconds;          /* cycles / clock */
    uint64_t flops;          /* flops per element (see sim_vector_kind) * elements */
    double utilization;      /* flops / (vector_flops_per_cycle * cycles), in [0, 1] */
    uint64_t compute_cycles; /* ceil(flops / vector_flops_per_cycle) */
    uint64_t memory_cycles;  /* ceil((bytes_read + bytes_written) / HBM bytes per cycle) */
    uint64_t startup_cycles; /* SIM_VECTOR_STARTUP_CYC */
    uint64_t bytes_read, bytes_written;
    sim_bound bound;
} sim_vector_timing;

/* Times op on the vector unit of one core of chip. Errors: SS_ERR_RANGE for zero elements, a
 * row_len that does not divide elements, an unknown kind, overflow, or a bad chip field. */
ss_status sim_vector_time(sim_vector_timing *out, const sim_chip *chip, const sim_vector_op *op,
                          ss_err *err);

/* FLOPs per element of a kind (the figures in sim_vector_kind's comments). */
int sim_vector_flops_per_element(sim_vector_kind kind);
/* "elementwise", "reduction", "softmax", "norm"; parse returns 0 on success, -1 otherwise. */
const char *sim_vector_kind_name(sim_vector_kind kind);
int sim_vector_kind_parse(const char *s, sim_vector_kind *out);

/* HBM bandwidth of one core in bytes/s: hbm_gbps * 1e9 / cores_per_chip (the cores of a chip
 * share its HBM equally). */
double sim_timing_core_hbm_bytes_per_s(const sim_chip *chip);

#endif
