/* This file declares the conversion between step programs (sim/program.h) and MLCommons Chakra
 * execution traces (traces/chakra.h), used by `switchsim chakra export|import`.
 *
 * Export writes one file per core, DIR/PREFIX.CORE.et (cores 0..ncores-1, empty ones too),
 * each a GlobalMetadata (version, attrs ss_format = "switchsim-step-program", ss_ncores,
 * ss_core) and the core's ops in program order as nodes with ids 0, 1, ...:
 *   matmul      COMP_NODE       num_ops = 2 m k n (FLOPs), tensor_size = bytes of A, B and C
 *   vector      COMP_NODE       num_ops = elements x FLOPs per element, tensor_size = bytes in
 *   hbm         MEM_LOAD_NODE (tensor_size = read bytes) and/or MEM_STORE_NODE (write bytes);
 *               a 0/0 transfer is one MEM_LOAD_NODE of 0 bytes
 *   send, recv  COMM_SEND_NODE / COMM_RECV_NODE: comm_src, comm_dst (cores), comm_size (bytes),
 *               comm_tag
 *   collective  COMM_COLL_NODE: comm_type (CollectiveCommType), comm_size (the per-core
 *               buffer bytes, program.h convention)
 *   alltoallv   (Chakra has no all-to-allv) the core's messages of the collectives module's
 *               direct schedule: a COMM_SEND_NODE per peer it sends bytes to, then a
 *               COMM_RECV_NODE per peer it receives from, tag COLL_TAG_BASE + the collective
 *               id; an instance with no message for this core is one COMP_NODE of 0 ops.
 * Every node also has is_cpu_op = false, ss_op (the op's index in its core: the nodes of one
 * op are consecutive) and ss_kind; the op's first node carries the rest of what makes the
 * conversion lossless: ss_label, ss_layer, ss_phase, ss_unit, and per kind ss_m/ss_k/ss_n/
 * ss_dtype, ss_vector/ss_elements/ss_row_len/ss_dtype, ss_read/ss_write,
 * ss_coll_id/ss_coll_kind/ss_group/ss_algo (alltoallv also ss_matrix, the matrix id, and
 * ss_matrix_row, the core's row). data_deps of every node of an op are all nodes of each of
 * the op's dependencies, in dependency order.
 *
 * Import reads DIR/PREFIX.*.et back: files carrying ss_* attributes give back the exact
 * program (sim_program_write text equal); nodes without them (traces from other tools) map
 * one node to one op: COMP_NODE -> matmul of num_ops FLOPs (m = ceil(num_ops / 2 / 128^2),
 * k = n = 128, bf16) or, with num_ops < 2, an elementwise vector op over tensor_size / 2
 * elements; MEM_LOAD/STORE -> hbm read/write of tensor_size; COMM_SEND/RECV -> send/recv;
 * COMM_COLL_NODE -> the collective of comm_type over every core, numbered by its order on the
 * core; METADATA_NODE is skipped. Dependencies (data and control) must point to earlier nodes
 * of the same file.
 *
 * Invariants: export needs a program that validates; import validates what it built. Errors
 * name the file (and the record or node) that caused them.
 */
#ifndef SWITCHSIM_CLI_CHAKRA_PROGRAM_H
#define SWITCHSIM_CLI_CHAKRA_PROGRAM_H

#include "common/status.h"
#include "sim/program.h"

/* Writes p as DIR/PREFIX.CORE.et (creating DIR if missing); *files receives the count. */
ss_status cli_chakra_export(const sim_program *p, const char *dir, const char *prefix,
                            int32_t *files, ss_err *err);
/* Reads DIR/PREFIX.*.et into out (not initialised; left freed on failure). */
ss_status cli_chakra_import(sim_program *out, const char *dir, const char *prefix, ss_err *err);

#endif
