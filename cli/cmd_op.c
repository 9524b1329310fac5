/* This file implements `switchsim op`, which times one operation on one core of a chip with
 * the models of sim/timing.c and prints a per-op report: `op gemm` (a matrix multiply on the
 * core's systolic matrix units) and `op vector` (an elementwise, reduction, softmax or norm op
 * on the vector unit).
 *
 * Invariants: see cli.h for exit statuses: a bad option or an impossible shape is a usage
 * error (2); a chip file that cannot be loaded is a failure (1) reported with the loader's
 * message. The JSON form carries every figure; the table and CSV forms show the same scalars.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "sim/chip.h"
#include "sim/timing.h"

static const char *const dtype_choices[] = {"bf16", "fp32", NULL}; /* sim_operands order */
static const char *const on_off_choices[] = {"on", "off", NULL};
static const char *const pass_choices[] = {"1", "3", "6", NULL};
static const int pass_values[] = {1, 3, 6};

/* Index of SIM_FP32_PASSES_DEFAULT in pass_choices. */
static int default_pass_choice(void)
{
    for (int i = 0; pass_choices[i]; i++)
        if (pass_values[i] == SIM_FP32_PASSES_DEFAULT)
            return i;
    SS_ASSERT(!"SIM_FP32_PASSES_DEFAULT is one of pass_choices");
    return 0;
}

/* Loads the chip file; on failure prints the loader's message. */
/* Parses spec's options, then loads the chip that --chip named (*chip_path, which the parse
 * fills). Returns -1 when the tool goes on with *chip, else the exit status to return now:
 * 0 after --help, 2 for a usage error, 1 when the chip file does not load. */
static int parse_and_load_chip(const cli_spec *spec, int argc, char **argv,
                               const char *const *chip_path, sim_chip *chip, const char *who)
{
    char *pos[argc];
    int npos = 0;
    const int pr = cli_parse(spec, argc, argv, pos, &npos);
    if (pr != CLI_PARSE_OK)
        return pr == CLI_PARSE_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    ss_err err = {0};
    if (sim_chip_load(chip, *chip_path, &err) != SS_OK) {
        cli_error(who, "%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    return -1;
}

static int print_result(json_t *obj, int format)
{
    int rc = emit_result(stdout, obj, (emit_format)format) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    json_decref(obj);
    if (rc != CLI_EXIT_OK)
        cli_error("op", "cannot write the result to stdout");
    return rc;
}

static json_t *jint(uint64_t v)
{
    return json_integer((json_int_t)v);
}

/* Adds what both ops report of their HBM traffic and of the compute/memory split: bytes read,
 * written and moved, the HBM rate achieved (bytes moved / seconds) and the core's share of
 * HBM, compute and memory cycles. */
static void add_traffic(json_t *o, const sim_chip *chip, uint64_t read, uint64_t written,
                        double seconds, uint64_t compute_cycles, uint64_t memory_cycles)
{
    const uint64_t moved = read + written;
    json_object_set_new(o, "bytes_read", jint(read));
    json_object_set_new(o, "bytes_written", jint(written));
    json_object_set_new(o, "bytes_moved", jint(moved));
    json_object_set_new(o, "hbm_gbps", json_real((double)moved / seconds / 1e9));
    json_object_set_new(o, "hbm_gbps_per_core",
                        json_real(sim_timing_core_hbm_bytes_per_s(chip) / 1e9));
    json_object_set_new(o, "compute_cycles", jint(compute_cycles));
    json_object_set_new(o, "memory_cycles", jint(memory_cycles));
}

/* ---- op gemm ---- */

static json_t *gemm_json(const sim_chip *chip, const sim_matmul_op *op,
                         const sim_matmul_timing *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "op", json_string("gemm"));
    json_object_set_new(o, "chip", json_string(chip->name));
    json_object_set_new(o, "m", jint(op->M));
    json_object_set_new(o, "k", jint(op->K));
    json_object_set_new(o, "n", jint(op->N));
    json_object_set_new(o, "dtype", json_string(dtype_choices[op->operands]));
    json_object_set_new(o, "double_buffer", json_boolean(op->double_buffer));
    json_object_set_new(o, "passes", json_integer(t->passes));
    json_object_set_new(o, "cycles", jint(t->cycles));
    json_object_set_new(o, "seconds", json_real(t->seconds));
    json_object_set_new(o, "tflops", json_real((double)t->flops / t->seconds / 1e12));
    json_object_set_new(o, "peak_tflops", json_real(sim_chip_core_peak_flops(chip) / 1e12));
    json_object_set_new(o, "utilization", json_real(t->mxu_utilization));
    json_object_set_new(o, "compute_utilization", json_real(t->compute_utilization));
    json_object_set_new(o, "bound", json_string(sim_bound_name(t->bound)));
    json_object_set_new(o, "flops", jint(t->flops));
    add_traffic(o, chip, t->bytes_read, t->bytes_written, t->seconds, t->compute_cycles,
                t->memory_cycles);
    json_object_set_new(o, "fill_drain_cycles", jint(t->fill_drain_cycles));
    json_object_set_new(o, "tiles", jint(t->tiles));
    json_object_set_new(o, "tiles_k", jint(t->tiles_k));
    json_object_set_new(o, "tiles_n", jint(t->tiles_n));
    json_object_set_new(o, "tiles_per_mxu", jint(t->tiles_per_mxu));
    json_object_set_new(o, "weight_loads", jint(t->weight_loads));
    return o;
}

static int op_gemm(int argc, char **argv)
{
    const char *chip_path = NULL;
    uint64_t M = 0, K = 0, N = 0;
    int dtype = SIM_OPERANDS_BF16, db = 0, passes = default_pass_choice(), format = EMIT_TABLE;
    cli_opt opts[] = {
        {"chip", CLI_OPT_STR, &chip_path, "FILE", "chip config (configs/chips/*.yaml)", NULL, 0,
         0, 1},
        {"m", CLI_OPT_U64, &M, "M", "rows of A and C (tokens)", NULL, 1, 1e12, 1},
        {"k", CLI_OPT_U64, &K, "K", "contraction dimension (rows of B)", NULL, 1, 1e12, 1},
        {"n", CLI_OPT_U64, &N, "N", "columns of B and C", NULL, 1, 1e12, 1},
        {"dtype", CLI_OPT_CHOICE, &dtype, NULL, "element type of A and B in HBM; C is fp32",
         dtype_choices, 0, 0, 0},
        {"double-buffer", CLI_OPT_CHOICE, &db, NULL,
         "load the next weight tile while the current one streams", on_off_choices, 0, 0, 0},
        {"fp32-passes", CLI_OPT_CHOICE, &passes, NULL,
         "bf16 passes per fp32 product (1 = bf16 rounding, 3 = bf16_3x, 6 = bf16_6x)",
         pass_choices, 0, 0, 0},
        {"format", CLI_OPT_CHOICE, &format, NULL, "output format", cli_format_choices, 0, 0, 0},
    };
    cli_spec spec = {
        "switchsim op gemm --chip FILE --m M --k K --n N [OPTIONS]",
        "Times C[M,N] = A[M,K] x B[K,N] on one core of the chip. Model (weight-stationary\n"
        "systolic array, after SCALE-Sim): B is cut into mxu_rows x mxu_cols weight tiles\n"
        "(partial tiles padded, so K = 129 on 128 rows costs two tiles), dealt round-robin over\n"
        "the core's MXUs; a tile loads in mxu_rows cycles (hidden behind the previous tile's\n"
        "stream when double-buffered), the M rows of A stream through one per cycle, and the\n"
        "array fills and drains in rows + cols - 2 cycles. HBM traffic (A and B, re-read when\n"
        "neither fits in half of VMEM; C written once in fp32) moves at hbm_gbps /\n"
        "cores_per_chip and overlaps the compute: time = max(compute, memory) + fill/drain.\n"
        "fp32 operands run 1, 3 or 6 bf16 passes. Utilisation is useful MACs over the core's\n"
        "peak bf16 MACs in that time.",
        opts,
        (int)(sizeof opts / sizeof opts[0]),
        0,
        0,
        "examples:\n"
        "  switchsim op gemm --chip configs/chips/tpu-v3.yaml --m 8192 --k 4096 --n 4096\n"
        "  switchsim op gemm --chip configs/chips/tpu-v3.yaml --m 1 --k 8192 --n 8192 \\\n"
        "      --dtype fp32 --fp32-passes 3 --format json\n\n"
        "fields: cycles and seconds of the op; tflops achieved and the core's peak_tflops;\n"
        "utilization (whole op) and compute_utilization (array busy time only); bound; bytes\n"
        "read, written and moved, and the HBM rate achieved; compute, memory and fill/drain\n"
        "cycles; weight tiles (K x N), tiles on the busiest MXU and its weight loads.",
    };
    sim_chip chip;
    const int rc = parse_and_load_chip(&spec, argc, argv, &chip_path, &chip, "op gemm");
    if (rc >= 0)
        return rc;
    sim_matmul_op op = sim_matmul_op_default(M, K, N);
    op.operands = (sim_operands)dtype;
    op.double_buffer = db == 0;
    op.fp32_passes = pass_values[passes];
    sim_matmul_timing t;
    ss_err err = {0};
    if (sim_matmul_time(&t, &chip, &op, &err) != SS_OK) {
        cli_error("usage", "%s", err.msg);
        return CLI_EXIT_USAGE;
    }
    return print_result(gemm_json(&chip, &op, &t), format);
}

/* ---- op vector ---- */

static json_t *vector_json(const sim_chip *chip, const sim_vector_op *op,
                           const sim_vector_timing *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "op", json_string("vector"));
    json_object_set_new(o, "chip", json_string(chip->name));
    json_object_set_new(o, "kind", json_string(sim_vector_kind_name(op->kind)));
    json_object_set_new(o, "elements", jint(op->elements));
    json_object_set_new(o, "row_len", jint(op->row_len ? op->row_len : op->elements));
    json_object_set_new(o, "dtype", json_string(dtype_choices[op->dtype]));
    json_object_set_new(o, "cycles", jint(t->cycles));
    json_object_set_new(o, "seconds", json_real(t->seconds));
    json_object_set_new(o, "gflops", json_real((double)t->flops / t->seconds / 1e9));
    json_object_set_new(o, "utilization", json_real(t->utilization));
    json_object_set_new(o, "bound", json_string(sim_bound_name(t->bound)));
    json_object_set_new(o, "flops", jint(t->flops));
    json_object_set_new(o, "flops_per_element",
                        json_integer(sim_vector_flops_per_element(op->kind)));
    add_traffic(o, chip, t->bytes_read, t->bytes_written, t->seconds, t->compute_cycles,
                t->memory_cycles);
    json_object_set_new(o, "startup_cycles", jint(t->startup_cycles));
    return o;
}

static int op_vector(int argc, char **argv)
{
    const char *kinds[SIM_VECTOR_KIND_COUNT + 1];
    for (int k = 0; k < SIM_VECTOR_KIND_COUNT; k++)
        kinds[k] = sim_vector_kind_name((sim_vector_kind)k);
    kinds[SIM_VECTOR_KIND_COUNT] = NULL;

    const char *chip_path = NULL;
    uint64_t elements = 0, row_len = 0;
    int kind = 0, dtype = SIM_OPERANDS_BF16, format = EMIT_TABLE;
    cli_opt opts[] = {
        {"chip", CLI_OPT_STR, &chip_path, "FILE", "chip config (configs/chips/*.yaml)", NULL, 0,
         0, 1},
        {"kind", CLI_OPT_CHOICE, &kind, "KIND", "elementwise, reduction, softmax or norm", kinds, 0,
         0, 1},
        {"elements", CLI_OPT_U64, &elements, "N", "elements of the input tensor", NULL, 1, 1e15,
         1},
        {"row-len", CLI_OPT_U64, &row_len, "L",
         "elements per row of a reduction (0: one row); must divide --elements", NULL, 0, 0, 0},
        {"dtype", CLI_OPT_CHOICE, &dtype, NULL, "element type in HBM (math is fp32)",
         dtype_choices, 0, 0, 0},
        {"format", CLI_OPT_CHOICE, &format, NULL, "output format", cli_format_choices, 0, 0, 0},
    };
    cli_spec spec = {
        "switchsim op vector --chip FILE --kind KIND --elements N [OPTIONS]",
        "Times one vector-unit operation on one core of the chip. Model: flops = per-element\n"
        "flops x elements (elementwise a op b: 1, reading 2 inputs; reduction: 1, writing one\n"
        "value per row; softmax: 5; RMS norm: 4); bytes = inputs read + outputs written in the\n"
        "given dtype; time = max(flops / vector_flops_per_cycle, bytes / (hbm_gbps /\n"
        "cores_per_chip)) + 64 startup cycles.",
        opts,
        (int)(sizeof opts / sizeof opts[0]),
        0,
        0,
        "examples:\n"
        "  switchsim op vector --chip configs/chips/tpu-v3.yaml --kind softmax --elements 1048576\n"
        "  switchsim op vector --chip configs/chips/tpu-v3.yaml --kind reduction \\\n"
        "      --elements 1048576 --row-len 1024 --dtype fp32 --format json",
    };
    sim_chip chip;
    const int rc = parse_and_load_chip(&spec, argc, argv, &chip_path, &chip, "op vector");
    if (rc >= 0)
        return rc;
    sim_vector_op op = {(sim_vector_kind)kind, elements, row_len, (sim_operands)dtype};
    sim_vector_timing t;
    ss_err err = {0};
    if (sim_vector_time(&t, &chip, &op, &err) != SS_OK) {
        cli_error("usage", "%s", err.msg);
        return CLI_EXIT_USAGE;
    }
    return print_result(vector_json(&chip, &op, &t), format);
}

int cmd_op(int argc, char **argv)
{
    static const cli_cmd tools[] = {
        {"gemm", "C[M,N] = A[M,K] x B[K,N] on the core's weight-stationary systolic matrix "
                 "units", op_gemm},
        {"vector", "an elementwise, reduction, softmax or norm op on the core's vector unit",
         op_vector},
    };
    static const cli_group g = {
        "op", "operation",
        "Times one operation on one core of a chip (no engine, no other ops) and prints "
        "cycles, seconds,\nachieved rate, utilisation, the bound (compute or memory) and the "
        "bytes moved.",
        tools, 2};
    return cli_dispatch(&g, argc, argv);
}
