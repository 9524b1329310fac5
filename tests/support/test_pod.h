/* This file declares the test support for building a small pod in code: a default test chip
 * (TPU-v3-like cores with round link figures), a ring/mesh/torus topology, the engine
 * configuration over both, an empty step program and an engine run, so that the engine,
 * SystemC and collectives tests do not depend on config files and do not each repeat them.
 *
 * Invariants: every function fails the calling CMocka test (fail_msg) on an error instead of
 * returning it, so only CMocka tests use this file; a test_pod's cfg points at its own chip
 * and topo, so a test_pod is initialised in place and never copied.
 */
#ifndef TESTS_SUPPORT_TEST_POD_H
#define TESTS_SUPPORT_TEST_POD_H

#include <stdint.h>

#include "sim/engine.h"

/* The default test chip's links and the packet size of a test_pod's engine configuration. */
enum {
    TEST_POD_LINK_GBPS = 100,          /* GB/s per link and direction (a 4 KiB packet: 40.96 ns) */
    TEST_POD_LINK_LATENCY_NS = 1000,   /* per hop */
    TEST_POD_HBM_GBPS = 900,           /* per chip */
    TEST_POD_ICI_PORTS = 6,
    TEST_POD_PACKET_BYTES = SIM_PACKET_BYTES_DEFAULT
};

/* A chip, its topology and an engine configuration over both. */
typedef struct {
    sim_chip chip;
    sim_topo topo;
    sim_engine_cfg cfg; /* {&chip, &topo, TEST_POD_PACKET_BYTES, record, record} */
} test_pod;

/* The default test chip named name: cores_per_chip TPU-v3-like cores (2 MXUs of 128x128 at
 * 0.94 GHz, 1024 vector flops a cycle, 16 MiB vmem), HBM 32 GiB at TEST_POD_HBM_GBPS,
 * TEST_POD_ICI_PORTS links of TEST_POD_LINK_GBPS with TEST_POD_LINK_LATENCY_NS a hop.
 * A test that needs other figures changes the fields of the returned chip. */
sim_chip test_pod_chip(const char *name, int cores_per_chip);

/* The topology of a dims[0] x ... x dims[ndims-1] pod (sim_topo_init's arguments). */
sim_topo test_pod_topo(int ndims, const int *dims, const int *wraps, int cores_per_chip);

/* The x [x y [x z]] grid of ndims (1..3) dimensions, every dimension wrapped when wrap is 1
 * (a ring or torus) or none when 0 (a line or mesh), with cores_per_chip cores a chip;
 * dimensions beyond ndims are ignored. */
sim_topo test_pod_grid(int ndims, int x, int y, int z, int wrap, int cores_per_chip);

/* Makes *d the pod of chip on topo, its cfg recording op times and link intervals when record
 * is 1. The chip's and the topology's cores per chip must agree. */
void test_pod_init(test_pod *d, sim_chip chip, sim_topo topo, int record);

/* An empty step program of ncores cores. */
sim_program test_pod_program(int32_t ncores);

/* Runs p on the engine kind with cfg and returns the result (the caller frees it). */
sim_result test_pod_run(sim_engine_kind kind, const sim_program *p, const sim_engine_cfg *cfg);

#endif
