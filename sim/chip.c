/* This file implements the chip description of chip.h: the schema of a `kind: chip` config
 * (one table row per field: type, range, default, meaning) and the chip's derived peak rates.
 *
 * Invariants: every count is >= 1 (ICI ports >= 0), every rate > 0, as the table's ranges
 * state; denormals default to flush (TPUs flush bf16 denormals) and MXU accumulation to the
 * exact systolic order. Peak figures are derived, never configured. The calibration fields
 * (mxu_efficiency in (0, 1], default 1, and its provenance note) are the preset's only free
 * parameter, fitted by `switchsim estimate --fit` (see the chip configs' comments).
 * reference: REFERENCE.md section 6 (TPU hardware figures): peak bf16 FLOP/s =
 * cores * MXUs * rows * cols * 2 FLOPs per MAC * clock, e.g. TPU v3 2*2*128*128*2*0.94 GHz =
 * 123.21 TFLOP/s per chip.
 */
#include "sim/chip.h"

#include <stddef.h>

/* Enum names, indexed by the C enum value. */
_Static_assert(BF16_DENORMALS_KEEP == 0 && BF16_DENORMALS_FLUSH == 1, "denormal_names order");
static const char *const denormal_names[] = {"keep", "flush", NULL};
_Static_assert(SIM_GEMM_EXACT == 0 && SIM_GEMM_FAST == 1, "accumulation_names order");
static const char *const accumulation_names[] = {"exact", "fast", NULL};

#define KIB 1024.0
#define MIB (KIB * KIB)
#define TIB (MIB * MIB)

static const cfg_field chip_fields[] = {
    CFG_STRING(sim_chip, name, CFG_REQUIRED, NULL, "chip name, e.g. tpu-v3"),
    CFG_INT(sim_chip, cores_per_chip, CFG_REQUIRED, NULL, 1, 64, "TensorCores per chip"),
    CFG_INT(sim_chip, mxu_per_core, CFG_REQUIRED, NULL, 1, 64, "matrix units (MXUs) per core"),
    CFG_INT(sim_chip, mxu_rows, CFG_REQUIRED, NULL, 1, 4096,
            "systolic array rows: the K extent of one weight tile"),
    CFG_INT(sim_chip, mxu_cols, CFG_REQUIRED, NULL, 1, 4096,
            "systolic array columns: the N extent of one weight tile"),
    CFG_DOUBLE(sim_chip, clock_ghz, CFG_REQUIRED | CFG_MIN_OPEN, NULL, 0, 10, "core clock, GHz"),
    CFG_DOUBLE(sim_chip, vector_flops_per_cycle, CFG_REQUIRED | CFG_MIN_OPEN, NULL, 0, 1e6,
               "fp32 vector-unit FLOPs per cycle per core"),
    CFG_BYTES(sim_chip, vmem_bytes, CFG_REQUIRED, NULL, KIB, TIB,
              "on-chip vector memory (VMEM) per core"),
    CFG_BYTES(sim_chip, hbm_bytes, CFG_REQUIRED, NULL, MIB, 1024 * TIB, "HBM capacity per chip"),
    CFG_DOUBLE(sim_chip, hbm_gbps, CFG_REQUIRED | CFG_MIN_OPEN, NULL, 0, 1e6,
               "HBM bandwidth per chip, GB/s (1e9 bytes/s)"),
    CFG_INT(sim_chip, ici_ports, CFG_REQUIRED, NULL, 0, 64,
            "inter-chip interconnect (ICI) ports per chip"),
    CFG_DOUBLE(sim_chip, link_gbps, CFG_REQUIRED | CFG_MIN_OPEN, NULL, 0, 1e6,
               "bandwidth of one ICI link in one direction, GB/s"),
    CFG_DOUBLE(sim_chip, link_latency_ns, CFG_REQUIRED, NULL, 0, 1e9,
               "latency of one ICI hop, ns"),
    CFG_ENUM(sim_chip, denormals, CFG_OPTIONAL, "flush", denormal_names,
             "bf16 denormals: flush to zero (TPU) or keep"),
    CFG_ENUM(sim_chip, mxu_accumulation, CFG_OPTIONAL, "exact", accumulation_names,
             "functional GEMM sums: exact (systolic order) or fast (BLAS order)"),
    CFG_DOUBLE(sim_chip, mxu_efficiency, CFG_OPTIONAL | CFG_MIN_OPEN, "1", 0, 1,
               "calibration: fraction of the modelled MXU rate a real step achieves"),
    CFG_STRING(sim_chip, calibration, CFG_OPTIONAL, NULL,
               "calibration: where mxu_efficiency comes from (empty: uncalibrated)"),
};

const cfg_schema sim_chip_schema = {
    .kind = "chip",
    .summary = "one TPU-style chip: cores, matrix units, memories and links",
    .size = sizeof(sim_chip),
    .fields = chip_fields,
    .nfields = sizeof chip_fields / sizeof chip_fields[0],
    .check = NULL, /* the field ranges are the whole contract */
};

ss_status sim_chip_load(sim_chip *out, const char *path, ss_err *err)
{
    return cfg_load(&sim_chip_schema, out, path, err);
}

ss_status sim_chip_decode(sim_chip *out, const cfg_node *node, ss_err *err)
{
    return cfg_decode(&sim_chip_schema, out, node, "", err);
}

double sim_chip_core_peak_flops(const sim_chip *c)
{
    return (double)c->mxu_per_core * c->mxu_rows * c->mxu_cols * 2.0 * c->clock_ghz * 1e9;
}

double sim_chip_peak_flops(const sim_chip *c)
{
    return c->cores_per_chip * sim_chip_core_peak_flops(c);
}

double sim_chip_mxu_efficiency(const sim_chip *c)
{
    return c->mxu_efficiency == 0 ? 1.0 : c->mxu_efficiency;
}

int sim_chip_is_calibrated(const sim_chip *c)
{
    return sim_chip_mxu_efficiency(c) != 1.0 || c->calibration[0] != '\0';
}

double sim_chip_core_vector_flops(const sim_chip *c)
{
    return c->vector_flops_per_cycle * c->clock_ghz * 1e9;
}
