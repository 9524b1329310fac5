/* This file implements the pod description of pod.h: the schema of a `kind: pod` config, the
 * consistency checks between topology, dims, wraparound and the chip's ICI ports, and the
 * pod's derived figures.
 *
 * Invariants: see pod.h. Links, bisection and diameter are read off the pod's sim_topo, so the
 * figures `check` prints are those the engines route on. A chip needs one ICI port per link
 * it drives: per dimension 0 (size 1), 1 (size 2 without wraparound) or 2 (otherwise: both
 * neighbours, or the two parallel cables of a wrapped size-2 dimension).
 * reference: REFERENCE.md section 6: a TPU v3 pod (32x32 torus, 4 ports per chip) has
 * 32 * 2 = 64 bisection links, 6.4 TB/s at 100 GB/s per link and direction.
 */
#include "sim/pod.h"

#include <stddef.h>
#include <stdint.h>

/* Indexed by sim_topology. */
static const char *const topology_names[] = {"ring", "mesh2d", "torus2d", "mesh3d", "torus3d",
                                             NULL};
static const int topology_dims[] = {1, 2, 2, 3, 3};
static const int topology_wraps[] = {1, 0, 1, 0, 1};

static ss_status pod_check(void *obj, const cfg_node *map, const char *path, ss_err *err);

static const cfg_field pod_fields[] = {
    CFG_STRING(sim_pod, name, CFG_REQUIRED, NULL, "pod name, e.g. tpu-v3-32"),
    CFG_REF(sim_pod, chip, &sim_chip_schema, CFG_REQUIRED,
            "the chip: a path to a chip config (relative to this file) or an inline mapping"),
    CFG_ENUM(sim_pod, topology, CFG_REQUIRED, NULL, topology_names,
             "how the chips are linked (ring: 1-D; mesh2d/torus2d: 2-D; mesh3d/torus3d: 3-D)"),
    CFG_INT_LIST(sim_pod, dims, ndims, 1, CFG_REQUIRED, 1, 4096,
                 "chips along each dimension: 1 value for a ring, 2 for 2-D, 3 for 3-D"),
    CFG_BOOL_LIST(sim_pod, wraparound, nwrap, 1, CFG_OPTIONAL,
                  "per dimension, whether it has wraparound links (default: true for ring and "
                  "torus, false for mesh)"),
};

const cfg_schema sim_pod_schema = {
    .kind = "pod",
    .summary = "a ring, mesh or torus of identical chips",
    .size = sizeof(sim_pod),
    .fields = pod_fields,
    .nfields = sizeof pod_fields / sizeof pod_fields[0],
    .check = pod_check,
};

const char *sim_topology_name(sim_topology t)
{
    return topology_names[t];
}

int sim_topology_ndims(sim_topology t)
{
    return topology_dims[t];
}

/* wraparound: given (one value per dimension, none on a mesh) or the topology's default */
static ss_status check_wraparound(sim_pod *p, const cfg_node *map, const char *path,
                                  ss_err *err)
{
    int wraps = topology_wraps[p->topology];
    if (!cfg_map_get(map, "wraparound")) {
        p->nwrap = p->ndims;
        for (int d = 0; d < p->ndims; d++)
            p->wraparound[d] = wraps;
        return SS_OK;
    }
    if (p->nwrap != p->ndims)
        return cfg_check_error(err, map, path, "wraparound",
                               "expected %d value%s (one per dimension of dims), got %d",
                               p->ndims, p->ndims == 1 ? "" : "s", p->nwrap);
    for (int d = 0; d < p->ndims; d++)
        if (p->wraparound[d] && !wraps)
            return cfg_check_error(err, map, path, "wraparound",
                                   "a %s has no wraparound links (dimension %d says true); "
                                   "use topology %s",
                                   topology_names[p->topology], d,
                                   p->ndims == 2 ? "torus2d" : "torus3d");
    return SS_OK;
}

/* ICI ports one chip needs: the links it drives in the pod's topology (see the header). */
static int ports_needed(const sim_pod *p)
{
    int ports = 0;
    for (int d = 0; d < p->ndims; d++)
        if (p->dims[d] >= 2)
            ports += (p->dims[d] == 2 && !p->wraparound[d]) ? 1 : 2;
    return ports;
}

static ss_status pod_check(void *obj, const cfg_node *map, const char *path, ss_err *err)
{
    sim_pod *p = obj;
    int want = topology_dims[p->topology];
    if (p->ndims != want) {
        const cfg_node *t = cfg_map_get(map, "topology");
        return cfg_check_error(err, map, path, "dims",
                               "topology %s (%s:%d:%d) needs %d dimension%s, got a list of %d",
                               topology_names[p->topology], t->file, t->line, t->col, want,
                               want == 1 ? "" : "s", p->ndims);
    }
    ss_status st = check_wraparound(p, map, path, err);
    if (st != SS_OK)
        return st;
    int64_t chips = 1;
    for (int d = 0; d < p->ndims; d++)
        chips *= p->dims[d];
    if (chips > SIM_POD_MAX_CHIPS)
        return cfg_check_error(err, map, path, "dims",
                               "%lld chips is more than the %d a pod may have",
                               (long long)chips, SIM_POD_MAX_CHIPS);
    if (ports_needed(p) > p->chip.ici_ports)
        return cfg_check_error(err, map, path, "dims",
                               "this %s needs %d ICI ports per chip, but chip '%s' has %d",
                               topology_names[p->topology], ports_needed(p), p->chip.name,
                               p->chip.ici_ports);
    p->chips = (int)chips;
    p->cores = p->chips * p->chip.cores_per_chip;
    return SS_OK;
}

ss_status sim_pod_load(sim_pod *out, const char *path, ss_err *err)
{
    return cfg_load(&sim_pod_schema, out, path, err);
}

ss_status sim_pod_decode(sim_pod *out, const cfg_node *node, ss_err *err)
{
    return cfg_decode(&sim_pod_schema, out, node, "", err);
}

double sim_pod_peak_flops(const sim_pod *p)
{
    return p->chips * sim_chip_peak_flops(&p->chip);
}

ss_status sim_pod_topo(const sim_pod *p, sim_topo *t, ss_err *err)
{
    ss_status st = sim_topo_init(t, p->ndims, p->dims, p->wraparound, p->chip.cores_per_chip, err);
    if (st != SS_OK)
        ss_err_prefix(err, "pod %s", p->name);
    return st;
}

/* The topology of a pod that sim_pod_load accepted (which guarantees a valid one). */
static sim_topo valid_topo(const sim_pod *p)
{
    sim_topo t;
    ss_err err;
    ss_status st = sim_pod_topo(p, &t, &err);
    SS_ASSERT(st == SS_OK);
    return t;
}

long sim_pod_links(const sim_pod *p)
{
    sim_topo t = valid_topo(p);
    return sim_topo_nlinks(&t) / 2;
}

long sim_pod_bisection_links(const sim_pod *p)
{
    sim_topo t = valid_topo(p);
    return sim_topo_bisection_links(&t) / 2;
}

int sim_pod_diameter_hops(const sim_pod *p)
{
    sim_topo t = valid_topo(p);
    return sim_topo_diameter(&t);
}
