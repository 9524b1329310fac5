/* This file declares the description of a pod: a 1-D, 2-D or 3-D ring/mesh/torus of identical
 * chips, as read from a `kind: pod` config (configs/pods/), and its derived figures (chips,
 * cores, peak rate, ICI links, bisection, diameter).
 *
 * Invariants: after sim_pod_load succeeds, ndims == nwrap == the topology's dimension count,
 * every dims[d] >= 1, chips == product of dims, cores == chips * chip.cores_per_chip, a mesh
 * has no wraparound link and the chip has enough ICI ports for the topology. Links, routes,
 * bisection and diameter come from the pod's sim_topo (sim/topo.h), the one description of
 * the interconnect: a dimension of k chips has k-1 links per line, plus a wraparound link
 * when it wraps (for k == 2 the wraparound is a second, parallel cable, as topo.h explains).
 * reference: REFERENCE.md section 6 (pod shapes; TPU v3 pod 32x32 2-D torus, v4 16x16x16).
 */
#ifndef SWITCHSIM_SIM_POD_H
#define SWITCHSIM_SIM_POD_H

#include "common/cfg.h"
#include "common/status.h"
#include "sim/chip.h"
#include "sim/topo.h"

typedef enum {
    SIM_TOPO_RING = 0, /* 1-D, wraps */
    SIM_TOPO_MESH2D,   /* 2-D, no wraparound */
    SIM_TOPO_TORUS2D,  /* 2-D, wraps (per dimension, see wraparound) */
    SIM_TOPO_MESH3D,
    SIM_TOPO_TORUS3D
} sim_topology;

enum { SIM_POD_MAX_DIMS = SIM_TOPO_MAX_DIMS, SIM_POD_MAX_CHIPS = SIM_TOPO_MAX_CHIPS };

typedef struct {
    char name[64];
    sim_chip chip;                      /* every chip of the pod */
    sim_topology topology;
    int ndims;                          /* 1 (ring), 2 or 3 */
    int dims[SIM_POD_MAX_DIMS];         /* [ndims] chips along each dimension */
    int nwrap;                          /* == ndims once decoded */
    int wraparound[SIM_POD_MAX_DIMS];   /* [ndims] 1: dimension d has wraparound links */
    int chips;                          /* derived: product of dims */
    int cores;                          /* derived: chips * chip.cores_per_chip */
} sim_pod;

/* The fields of a `kind: pod` config. */
extern const cfg_schema sim_pod_schema;

/* Loads and validates a pod config; the chip may be a path (relative to the pod file) or an
 * inline mapping. Errors name file, line, column and field. */
ss_status sim_pod_load(sim_pod *out, const char *path, ss_err *err);
/* Decodes a pod from an already-loaded config node (a mapping with kind: pod). */
ss_status sim_pod_decode(sim_pod *out, const cfg_node *node, ss_err *err);

const char *sim_topology_name(sim_topology t);
/* Dimensions the topology has: 1, 2 or 3. */
int sim_topology_ndims(sim_topology t);

/* The pod's interconnect: chips placed on its dims, with its wraparound and cores per chip.
 * Cannot fail for a pod that sim_pod_load accepted. */
ss_status sim_pod_topo(const sim_pod *p, sim_topo *t, ss_err *err);

/* Peak bf16 FLOP/s of the whole pod. */
double sim_pod_peak_flops(const sim_pod *p);
/* ICI links in the pod (each bidirectional link counted once). */
long sim_pod_links(const sim_pod *p);
/* Links cut by the cheapest cut of the pod into two halves across one dimension (each
 * bidirectional link counted once: the links that carry one direction across the cut). */
long sim_pod_bisection_links(const sim_pod *p);
/* Most hops between two chips (dimension-order routing, shortest way round a wraparound). */
int sim_pod_diameter_hops(const sim_pod *p);

#endif
