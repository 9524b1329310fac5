/* This file implements the per-operation timing models of timing.h: a weight-stationary
 * systolic matrix multiply on the MXUs of one core and a vector-unit operation, each overlapped
 * with its HBM traffic (a roofline with the systolic array's real shape on the compute side).
 *
 * Matmul model. C[M,N] = A[M,K] x B[K,N]; B is stationary. One core has P = mxu_per_core
 * arrays of R = mxu_rows (the K extent of a weight tile) x Q = mxu_cols (the N extent);
 * f = clock_ghz * 1e9.
 *   tiling     tiles_k = ceil(K/R), tiles_n = ceil(N/Q), tiles = tiles_k * tiles_n. A partial
 *              tile is padded: it costs as much as a full one (K = 129, R = 128: 2 K tiles).
 *   split      whole tiles are dealt round-robin over the P MXUs (N tiles first, then K tiles;
 *              partial sums of a K split meet in the shared fp32 accumulators at no modelled
 *              cost); the busiest MXU has t = ceil(tiles / P) tiles and sets the time.
 *   passes     bf16 operands: 1 pass. fp32 operands (p = fp32_passes, default 6) are split on
 *              chip into bf16 parts a = a1+a2+a3, b = b1+b2+b3 and the kept part products are
 *              run grouped by weight part, so each tile loads S weight parts, part j serving
 *              s_j LHS streams: p = 1: s = (1); p = 3 (a1b1+a2b1+a1b2): s = (2, 1);
 *              p = 6 (+a3b1+a2b2+a1b3): s = (3, 2, 1). sum_j s_j = p. Splitting is not timed.
 *   load       a weight part fills the array one row per cycle: R cycles.
 *   stream     the LHS enters one row vector per cycle: s_j * M cycles for part j.
 *   fill/drain F = R + Q - 2: the last row's partial sums leave the last column R + Q - 2
 *              cycles after it entered (skewed wavefront: element (m, k) meets column n at
 *              cycle m + k + n).
 *   double-buffered (default): the next part loads into the shadow buffer while the current
 *              one streams, and the array swaps weights with the wavefront, so consecutive
 *              streams run back to back and fill/drain is paid once per MXU sequence:
 *                compute = R + t * sum_j max(s_j*M, R) - max(M, R) + M + F
 *              (first load exposed; the last part of the last tile streams M rows, not
 *              max(M, R)). One tile: 2R + Q + M - 2, SCALE-Sim's cycles per fold.
 *   single-buffered: each part loads, streams and drains before the next load (SCALE-Sim's
 *              weight-stationary fold, 2R + Q + T - 2 with T = s_j*M):
 *                compute = t * (S * (R + F) + p * M)
 *   HBM        bytes of A and B per element: 2 (bf16) or 4 (fp32); C is fp32 and written once
 *              (K is never blocked, so partial sums never leave the core). Reuse: half of
 *              VMEM, V = vmem_bytes / 2, holds the resident operand (the other half
 *              double-buffers the streamed one and the results). If A (M*K) or B (K*N) fits in
 *              V, both are read once. Otherwise the cheaper of two blockings is used:
 *                A panels of floor(V / (K*e)) rows (>= 1): A once, B once per A panel;
 *                B panels of floor(V / (K*e*Q)) tile columns (>= 1): B once, A once per panel
 *              (re-streaming A once per N tile is the B-panel case when V holds only one
 *              K x Q tile column of B).
 *              Per-core bandwidth = hbm_gbps * 1e9 / cores_per_chip (cores share HBM equally);
 *                memory = ceil((bytes_read + bytes_written) / (bandwidth / f)).
 *   calibration compute = ceil(compute / mxu_efficiency) with the chip's efficiency in (0, 1]
 *              (1 = uncalibrated, the default: no change). It is the chip preset's one free
 *              parameter, fitted by `switchsim estimate --fit` to a published training
 *              throughput (configs/chips/tpu-v3.yaml cites the fit); it stands for what the
 *              model leaves out (XLA op scheduling, layout changes, pipeline bubbles).
 *   total      loads, streams and HBM transfers overlap; only the final fill/drain is never
 *              overlapped (the last data must arrive before it can drain):
 *                cycles = max(compute - F, memory) + F
 *              bound = memory when memory > compute - F (then seconds ~= bytes / bandwidth,
 *              the roofline's memory side), else compute.
 *   utilisation useful MACs M*K*N over peak bf16 MACs P*R*Q per cycle times cycles (fp32
 *              operands therefore reach at most about 1/p of it).
 *
 * Vector model. flops = flops_per_element(kind) * elements (elementwise 1, reduction 1,
 * softmax 5 counting exp as one op of the transcendental unit, RMSNorm 4; per-row scalars such
 * as the softmax reciprocal and the norm's rsqrt and gain vector are neglected); bytes read =
 * inputs(kind) * elements * e, bytes written = outputs * e (one output per element, or one per
 * row for a reduction); cycles = max(ceil(flops / vector_flops_per_cycle),
 * ceil(bytes / (bandwidth / f))) + SIM_VECTOR_STARTUP_CYC, a fixed 64 cycles for the vector
 * pipeline and the first DMA descriptor (HBM access latency is not modelled, as for matmul).
 * Operands and results are held in the op's dtype in HBM; the arithmetic is fp32.
 *
 * Invariants: every count is computed in checked 64-bit arithmetic (overflow is an error, never
 * a wrap); the result struct is written only after every check passed.
 * reference: SCALE-Sim (Samajdar et al., "SCALE-Sim: Systolic CNN Accelerator Simulator",
 * arXiv 1811.02883), weight-stationary dataflow, cycles per fold 2*Sr + Sc + T - 2;
 * bf16_3x/bf16_6x passes: Henry, Tang, Heinecke, "Leveraging the bfloat16 artificial
 * intelligence datatype for higher-precision computations" (ARITH 2019, arXiv 1904.06376).
 */
#include "timing.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* ---- checked arithmetic: any overflow sets *ovf and the caller reports it once ---- */

static uint64_t mul(uint64_t a, uint64_t b, int *ovf)
{
    if (a != 0 && b > UINT64_MAX / a) {
        *ovf = 1;
        return 0;
    }
    return a * b;
}

static uint64_t add(uint64_t a, uint64_t b, int *ovf)
{
    if (b > UINT64_MAX - a) {
        *ovf = 1;
        return 0;
    }
    return a + b;
}

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* ceil(x) as a cycle count; x >= 0 and finite. */
static uint64_t ceil_cycles(double x, int *ovf)
{
    double c = ceil(x);
    if (!(c < 18446744073709551616.0)) {
        *ovf = 1;
        return 0;
    }
    return (uint64_t)c;
}

static uint64_t dtype_bytes(sim_operands t)
{
    return t == SIM_OPERANDS_F32 ? 4 : 2;
}

/* ---- chip checks ---- */

static int positive(double x)
{
    return isfinite(x) && x > 0;
}

static ss_status check_chip_memory(const sim_chip *c, ss_err *err)
{
    if (c->cores_per_chip < 1)
        return ss_err_set(err, SS_ERR_RANGE, "chip '%s': cores_per_chip must be >= 1, got %d",
                          c->name, c->cores_per_chip);
    if (!positive(c->hbm_gbps))
        return ss_err_set(err, SS_ERR_RANGE, "chip '%s': hbm_gbps must be > 0, got %g",
                          c->name, c->hbm_gbps);
    if (!positive(c->clock_ghz))
        return ss_err_set(err, SS_ERR_RANGE, "chip '%s': clock_ghz must be > 0, got %g",
                          c->name, c->clock_ghz);
    return SS_OK;
}

static ss_status check_chip_mxu(const sim_chip *c, ss_err *err)
{
    const double eff = sim_chip_mxu_efficiency(c);
    if (!(eff > 0 && eff <= 1))
        return ss_err_set(err, SS_ERR_RANGE, "chip '%s': mxu_efficiency must be in (0, 1], got %g",
                          c->name, c->mxu_efficiency);
    if (c->mxu_per_core < 1)
        return ss_err_set(err, SS_ERR_RANGE, "chip '%s': mxu_per_core must be >= 1, got %d",
                          c->name, c->mxu_per_core);
    if (c->mxu_rows < 1 || c->mxu_cols < 1)
        return ss_err_set(err, SS_ERR_RANGE,
                          "chip '%s': mxu_rows and mxu_cols must be >= 1, got %d x %d", c->name,
                          c->mxu_rows, c->mxu_cols);
    return check_chip_memory(c, err);
}

double sim_timing_core_hbm_bytes_per_s(const sim_chip *chip)
{
    return chip->hbm_gbps * 1e9 / chip->cores_per_chip;
}

static double hbm_bytes_per_cycle(const sim_chip *chip)
{
    return sim_timing_core_hbm_bytes_per_s(chip) / (chip->clock_ghz * 1e9);
}

static double cycles_to_seconds(const sim_chip *chip, uint64_t cycles)
{
    return (double)cycles / (chip->clock_ghz * 1e9);
}

const char *sim_bound_name(sim_bound b)
{
    return b == SIM_BOUND_MEMORY ? "memory" : "compute";
}

/* ---- matmul ---- */

/* How one tile's weight parts are loaded and streamed for a number of bf16 passes. */
typedef struct {
    int passes;
    int parts;      /* S: weight parts loaded per tile */
    int streams[3]; /* s_j: LHS streams per part, last one 1 */
} pass_plan;

static const pass_plan pass_plans[] = {
    {1, 1, {1, 0, 0}},
    {3, 2, {2, 1, 0}},
    {6, 3, {3, 2, 1}},
};

static const pass_plan *find_plan(int passes)
{
    for (size_t i = 0; i < sizeof pass_plans / sizeof pass_plans[0]; i++)
        if (pass_plans[i].passes == passes)
            return &pass_plans[i];
    return NULL;
}

sim_matmul_op sim_matmul_op_default(uint64_t M, uint64_t K, uint64_t N)
{
    sim_matmul_op op = {M, K, N, SIM_OPERANDS_BF16, 1, SIM_FP32_PASSES_DEFAULT};
    return op;
}

/* The busiest MXU's sequence of t tiles, including the first load and the final fill/drain. */
static uint64_t mxu_sequence_cycles(uint64_t t, const pass_plan *pl, uint64_t M, uint64_t R,
                                    uint64_t F, int double_buffer, int *ovf)
{
    if (!double_buffer) {
        uint64_t per_tile = add(mul((uint64_t)pl->parts, R + F, ovf),
                                mul((uint64_t)pl->passes, M, ovf), ovf);
        return mul(t, per_tile, ovf);
    }
    uint64_t per_tile = 0;
    for (int j = 0; j < pl->parts; j++)
        per_tile = add(per_tile, max_u64(mul((uint64_t)pl->streams[j], M, ovf), R), ovf);
    SS_ASSERT(pl->streams[pl->parts - 1] == 1);
    uint64_t seq = add(R, mul(t, per_tile, ovf), ovf);
    /* the last part streams M rows and then drains instead of waiting for a next load */
    return add(seq - max_u64(M, R), add(M, F, ovf), ovf);
}

/* HBM bytes read for A (M x K) and B (K x N) of e bytes each, under the reuse rule above. */
static uint64_t operand_read_bytes(uint64_t M, uint64_t K, uint64_t N, uint64_t e, uint64_t Q,
                                   uint64_t vmem_half, int *ovf)
{
    uint64_t a = mul(mul(M, K, ovf), e, ovf);
    uint64_t b = mul(mul(K, N, ovf), e, ovf);
    if (a <= vmem_half || b <= vmem_half)
        return add(a, b, ovf);
    uint64_t row_bytes = mul(K, e, ovf);
    uint64_t a_panel_rows = max_u64(1, vmem_half / row_bytes);
    uint64_t by_a_panels = add(a, mul(b, ceil_div(M, a_panel_rows), ovf), ovf);
    uint64_t tile_col_bytes = mul(row_bytes, Q, ovf);
    uint64_t b_panel_cols = mul(max_u64(1, vmem_half / tile_col_bytes), Q, ovf);
    uint64_t by_b_panels = add(mul(a, ceil_div(N, b_panel_cols), ovf), b, ovf);
    return by_a_panels < by_b_panels ? by_a_panels : by_b_panels;
}

/* The calibrated MXU sequence: cycles / mxu_efficiency, rounded up (exactly `cycles` for an
 * efficiency of 1), and never below the fill/drain F it includes. */
static uint64_t derate(uint64_t cycles, uint64_t F, double eff, int *ovf)
{
    if (eff == 1.0)
        return cycles;
    return max_u64(ceil_cycles((double)cycles / eff, ovf), F);
}

static ss_status check_matmul_op(const sim_matmul_op *op, ss_err *err)
{
    if (op->M == 0 || op->K == 0 || op->N == 0)
        return ss_err_set(err, SS_ERR_RANGE,
                          "matmul: M, K and N must be >= 1, got M=%llu K=%llu N=%llu",
                          (unsigned long long)op->M, (unsigned long long)op->K,
                          (unsigned long long)op->N);
    if (op->operands != SIM_OPERANDS_BF16 && op->operands != SIM_OPERANDS_F32)
        return ss_err_set(err, SS_ERR_RANGE, "matmul: unknown operand type %d",
                          (int)op->operands);
    if (op->operands == SIM_OPERANDS_F32 && !find_plan(op->fp32_passes))
        return ss_err_set(err, SS_ERR_RANGE,
                          "matmul: fp32_passes must be 1, 3 or 6 bf16 passes, got %d",
                          op->fp32_passes);
    return SS_OK;
}

ss_status sim_matmul_time(sim_matmul_timing *out, const sim_chip *chip, const sim_matmul_op *op,
                          ss_err *err)
{
    ss_status st = check_chip_mxu(chip, err);
    if (st == SS_OK)
        st = check_matmul_op(op, err);
    if (st != SS_OK)
        return st;

    int ovf = 0;
    const uint64_t R = (uint64_t)chip->mxu_rows, Q = (uint64_t)chip->mxu_cols;
    const uint64_t P = (uint64_t)chip->mxu_per_core, F = R + Q - 2;
    const pass_plan *pl = find_plan(op->operands == SIM_OPERANDS_F32 ? op->fp32_passes : 1);
    const uint64_t e = dtype_bytes(op->operands);

    sim_matmul_timing r;
    memset(&r, 0, sizeof r);
    r.tiles_k = ceil_div(op->K, R);
    r.tiles_n = ceil_div(op->N, Q);
    r.tiles = mul(r.tiles_k, r.tiles_n, &ovf);
    r.tiles_per_mxu = ceil_div(r.tiles, P);
    r.passes = pl->passes;
    r.weight_loads = mul(r.tiles_per_mxu, (uint64_t)pl->parts, &ovf);
    r.fill_drain_cycles = F;
    r.compute_cycles = mxu_sequence_cycles(r.tiles_per_mxu, pl, op->M, R, F, op->double_buffer,
                                           &ovf);
    r.compute_cycles = derate(r.compute_cycles, F, sim_chip_mxu_efficiency(chip), &ovf);

    uint64_t macs = mul(mul(op->M, op->K, &ovf), op->N, &ovf);
    r.flops = mul(2, macs, &ovf);
    r.bytes_read = operand_read_bytes(op->M, op->K, op->N, e, Q, chip->vmem_bytes / 2, &ovf);
    r.bytes_written = mul(mul(op->M, op->N, &ovf), 4, &ovf);
    uint64_t bytes = add(r.bytes_read, r.bytes_written, &ovf);
    r.memory_cycles = ceil_cycles((double)bytes / hbm_bytes_per_cycle(chip), &ovf);

    uint64_t body = r.compute_cycles - F;
    r.bound = r.memory_cycles > body ? SIM_BOUND_MEMORY : SIM_BOUND_COMPUTE;
    r.cycles = add(max_u64(body, r.memory_cycles), F, &ovf);
    double peak_macs_per_cycle = (double)mul(mul(P, R, &ovf), Q, &ovf);
    if (ovf)
        return ss_err_set(err, SS_ERR_RANGE,
                          "matmul: shape M=%llu K=%llu N=%llu is too large (a count overflows "
                          "64 bits)",
                          (unsigned long long)op->M, (unsigned long long)op->K,
                          (unsigned long long)op->N);

    r.seconds = cycles_to_seconds(chip, r.cycles);
    r.mxu_utilization = (double)macs / (peak_macs_per_cycle * (double)r.cycles);
    r.compute_utilization = (double)macs / (peak_macs_per_cycle * (double)r.compute_cycles);
    *out = r;
    return SS_OK;
}

/* ---- vector ops ---- */

typedef struct {
    const char *name;
    int flops;  /* per element */
    int inputs; /* tensors of `elements` elements read */
    int per_row_output; /* 1: one output per row (reduction); 0: one per element */
} vector_kind_info;

static const vector_kind_info vector_kinds[SIM_VECTOR_KIND_COUNT] = {
    [SIM_VECTOR_ELEMENTWISE] = {"elementwise", 1, 2, 0},
    [SIM_VECTOR_REDUCTION] = {"reduction", 1, 1, 1},
    [SIM_VECTOR_SOFTMAX] = {"softmax", 5, 1, 0},
    [SIM_VECTOR_NORM] = {"norm", 4, 1, 0},
};

static int valid_kind(sim_vector_kind kind)
{
    return (int)kind >= 0 && kind < SIM_VECTOR_KIND_COUNT;
}

const char *sim_vector_kind_name(sim_vector_kind kind)
{
    return valid_kind(kind) ? vector_kinds[kind].name : "unknown";
}

int sim_vector_kind_parse(const char *s, sim_vector_kind *out)
{
    for (int k = 0; k < SIM_VECTOR_KIND_COUNT; k++) {
        if (strcmp(s, vector_kinds[k].name) == 0) {
            *out = (sim_vector_kind)k;
            return 0;
        }
    }
    return -1;
}

int sim_vector_flops_per_element(sim_vector_kind kind)
{
    SS_ASSERT(valid_kind(kind));
    return vector_kinds[kind].flops;
}

static ss_status check_vector_op(const sim_vector_op *op, ss_err *err)
{
    if (!valid_kind(op->kind))
        return ss_err_set(err, SS_ERR_RANGE, "vector op: unknown kind %d", (int)op->kind);
    if (op->elements == 0)
        return ss_err_set(err, SS_ERR_RANGE, "vector op %s: elements must be >= 1, got 0",
                          sim_vector_kind_name(op->kind));
    if (op->dtype != SIM_OPERANDS_BF16 && op->dtype != SIM_OPERANDS_F32)
        return ss_err_set(err, SS_ERR_RANGE, "vector op %s: unknown element type %d",
                          sim_vector_kind_name(op->kind), (int)op->dtype);
    if (op->row_len != 0 && op->elements % op->row_len != 0)
        return ss_err_set(err, SS_ERR_RANGE,
                          "vector op %s: row_len %llu does not divide elements %llu",
                          sim_vector_kind_name(op->kind), (unsigned long long)op->row_len,
                          (unsigned long long)op->elements);
    return SS_OK;
}

ss_status sim_vector_time(sim_vector_timing *out, const sim_chip *chip, const sim_vector_op *op,
                          ss_err *err)
{
    ss_status st = check_chip_memory(chip, err);
    if (st == SS_OK && !positive(chip->vector_flops_per_cycle))
        st = ss_err_set(err, SS_ERR_RANGE, "chip '%s': vector_flops_per_cycle must be > 0, got %g",
                        chip->name, chip->vector_flops_per_cycle);
    if (st == SS_OK)
        st = check_vector_op(op, err);
    if (st != SS_OK)
        return st;

    int ovf = 0;
    const vector_kind_info *k = &vector_kinds[op->kind];
    const uint64_t e = dtype_bytes(op->dtype);
    uint64_t row_len = op->row_len ? op->row_len : op->elements;
    uint64_t outputs = k->per_row_output ? op->elements / row_len : op->elements;

    sim_vector_timing r;
    memset(&r, 0, sizeof r);
    r.flops = mul((uint64_t)k->flops, op->elements, &ovf);
    r.bytes_read = mul(mul((uint64_t)k->inputs, op->elements, &ovf), e, &ovf);
    r.bytes_written = mul(outputs, e, &ovf);
    uint64_t bytes = add(r.bytes_read, r.bytes_written, &ovf);
    r.compute_cycles = ceil_cycles((double)r.flops / chip->vector_flops_per_cycle, &ovf);
    r.memory_cycles = ceil_cycles((double)bytes / hbm_bytes_per_cycle(chip), &ovf);
    r.startup_cycles = SIM_VECTOR_STARTUP_CYC;
    r.bound = r.memory_cycles > r.compute_cycles ? SIM_BOUND_MEMORY : SIM_BOUND_COMPUTE;
    r.cycles = add(max_u64(r.compute_cycles, r.memory_cycles), r.startup_cycles, &ovf);
    if (ovf)
        return ss_err_set(err, SS_ERR_RANGE,
                          "vector op %s: %llu elements is too large (a count overflows 64 bits)",
                          k->name, (unsigned long long)op->elements);
    r.seconds = cycles_to_seconds(chip, r.cycles);
    r.utilization = (double)r.flops / (chip->vector_flops_per_cycle * (double)r.cycles);
    *out = r;
    return SS_OK;
}
