/* This file declares the description of one TPU-style chip, as read from a `kind: chip`
 * config (configs/chips/), and its derived figures.
 *
 * Invariants: after sim_chip_load succeeds every field is within the ranges its schema states
 * (all counts >= 1, all rates > 0); derived peak figures are computed, never configured.
 * reference: REFERENCE.md section 6 (TPU hardware figures).
 */
#ifndef SWITCHSIM_SIM_CHIP_H
#define SWITCHSIM_SIM_CHIP_H

#include <stdint.h>

#include "common/bf16.h"
#include "common/cfg.h"
#include "common/status.h"
#include "sim/mxu_gemm.h"

typedef struct {
    char name[64];
    /* per chip */
    int cores_per_chip;           /* TensorCores per chip */
    uint64_t hbm_bytes;           /* HBM capacity per chip */
    double hbm_gbps;              /* HBM bandwidth per chip, GB/s (1e9 B/s) */
    int ici_ports;                /* inter-chip link ports */
    double link_gbps;             /* bandwidth of one link, one direction, GB/s */
    double link_latency_ns;       /* per-hop latency of a link */
    /* per core */
    int mxu_per_core;             /* matrix units per core */
    int mxu_rows, mxu_cols;       /* systolic array shape (K rows x N columns) */
    double clock_ghz;             /* core clock */
    double vector_flops_per_cycle;/* fp32 vector-unit ops per cycle per core */
    uint64_t vmem_bytes;          /* on-chip vector memory per core */
    /* numerics */
    bf16_denormals denormals;     /* how the chip's bf16 conversions treat denormals */
    sim_gemm_mode mxu_accumulation; /* accumulation order used by functional runs */
    /* calibration: the one free parameter of a chip preset (switchsim estimate --fit) */
    double mxu_efficiency;        /* in (0, 1]: fraction of the modelled MXU compute rate that a
                                     real training step achieves (sim_matmul_time divides the
                                     MXU cycles by it); 1 = uncalibrated; 0 (a struct built in
                                     code rather than loaded) also means 1 */
    char calibration[160];        /* where mxu_efficiency comes from; "" = uncalibrated */
} sim_chip;

/* The fields of a `kind: chip` config (name, type, default, range, help). */
extern const cfg_schema sim_chip_schema;

/* Loads and validates a chip config (or the `chip:` value of a pod); errors name file, line,
 * column and field. */
ss_status sim_chip_load(sim_chip *out, const char *path, ss_err *err);
/* Decodes a chip from an already-loaded config node (a mapping with kind: chip). */
ss_status sim_chip_decode(sim_chip *out, const cfg_node *node, ss_err *err);

/* Peak bf16 FLOP/s of one core and of the whole chip (2 FLOPs per MAC). */
double sim_chip_core_peak_flops(const sim_chip *c);
double sim_chip_peak_flops(const sim_chip *c);
/* The MXU efficiency the timing models apply: mxu_efficiency, or 1 when it is 0 (unset). */
double sim_chip_mxu_efficiency(const sim_chip *c);
/* Whether the chip carries a calibration (mxu_efficiency other than 1, or a calibration note). */
int sim_chip_is_calibrated(const sim_chip *c);
/* Peak fp32 FLOP/s of one core's vector unit. */
double sim_chip_core_vector_flops(const sim_chip *c);

#endif
