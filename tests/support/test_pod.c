/* This file implements the test support for building a small pod in code (test_pod.h): the
 * default test chip, grid topologies, the engine configuration over both, empty programs and
 * engine runs, each failing the calling CMocka test on an error.
 *
 * Invariants: the default chip's figures are the enum constants of test_pod.h, so a test that
 * derives a closed form from those constants stays in step with the chip it runs on.
 */
#include "test_pod.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

sim_chip test_pod_chip(const char *name, int cores_per_chip)
{
    sim_chip c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name);
    c.cores_per_chip = cores_per_chip;
    c.hbm_bytes = 32ull << 30;
    c.hbm_gbps = TEST_POD_HBM_GBPS;
    c.ici_ports = TEST_POD_ICI_PORTS;
    c.link_gbps = TEST_POD_LINK_GBPS;
    c.link_latency_ns = TEST_POD_LINK_LATENCY_NS;
    c.mxu_per_core = 2;
    c.mxu_rows = 128;
    c.mxu_cols = 128;
    c.clock_ghz = 0.94;
    c.vector_flops_per_cycle = 1024;
    c.vmem_bytes = 16ull << 20;
    return c;
}

sim_topo test_pod_topo(int ndims, const int *dims, const int *wraps, int cores_per_chip)
{
    sim_topo t;
    ss_err err = {0};
    if (sim_topo_init(&t, ndims, dims, wraps, cores_per_chip, &err) != SS_OK)
        fail_msg("sim_topo_init: %s", err.msg);
    return t;
}

sim_topo test_pod_grid(int ndims, int x, int y, int z, int wrap, int cores_per_chip)
{
    const int dims[3] = {x, y, z}, wraps[3] = {wrap, wrap, wrap};
    return test_pod_topo(ndims, dims, wraps, cores_per_chip);
}

void test_pod_init(test_pod *d, sim_chip chip, sim_topo topo, int record)
{
    if (chip.cores_per_chip != topo.cores_per_chip)
        fail_msg("test pod: chip has %d cores per chip, topology %d", chip.cores_per_chip,
                 topo.cores_per_chip);
    d->chip = chip;
    d->topo = topo;
    d->cfg = (sim_engine_cfg){&d->chip, &d->topo, TEST_POD_PACKET_BYTES, record, record};
}

sim_program test_pod_program(int32_t ncores)
{
    sim_program p;
    ss_err err = {0};
    if (sim_program_init(&p, ncores, &err) != SS_OK)
        fail_msg("sim_program_init: %s", err.msg);
    return p;
}

sim_result test_pod_run(sim_engine_kind kind, const sim_program *p, const sim_engine_cfg *cfg)
{
    sim_result r;
    ss_err err = {0};
    if (sim_engine_run(kind, p, cfg, &r, &err) != SS_OK)
        fail_msg("%s engine: %s", sim_engine_name(kind), err.msg);
    return r;
}
