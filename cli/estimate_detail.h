/* This file declares the detail of an estimate: the figures `switchsim report` draws, computed
 * from the lowered step program, the engine's recorded result (per-op start/end, per-link
 * statistics), the topology, the plan and the routing model. `switchsim estimate` adds it to
 * its JSON result as key "detail" (JSON format and --results only), next to the scaling keys
 * cli_detail_add_scaling adds at the top level.
 *
 * Schema of "detail" (times in seconds, sizes in bytes, rates per second):
 *   "critical_core": C        the core the breakdown is taken on (time_split.critical_core)
 *   "breakdown": {
 *     "step_seconds": T,
 *     "total": {"compute": {"matmul": s, "vector": s, "hbm": s},
 *               "exposed_comm": {"allreduce": s, "reducescatter": s, "allgather": s,
 *                                "alltoall": s, "alltoallv": s, "broadcast": s,
 *                                "barrier": s, "p2p": s},
 *               "idle": s},
 *     "layers": [{"layer": L, "name": "enc.0" | "dec.3" | "other", "switch": 0|1,
 *                 "compute": {...}, "exposed_comm": {...}}, ...]   (same keys as total)
 *   }
 *     Every instant of [0, T) on the critical core is exactly one of: compute (some matmul,
 *     vector or hbm op runs: the instant is shared equally by the compute ops running then,
 *     each credited to its kind and its layer), exposed communication (no compute op runs but
 *     sends/recvs (or, with estimate --comm isolated, collective ops) are in flight: shared
 *     equally by them, each credited to the kind of its collective, "p2p" for the program's
 *     own sends, and to its layer) or
 *     idle (nothing runs; no layer). So the compute classes sum to time_split.compute_s, the
 *     collective kinds to time_split.exposed_comm_s, and total compute + exposed_comm + idle
 *     = T; each class of "total" is the sum of that class over "layers" (up to rounding).
 *     Layers: 0..Le-1 encoder ("enc.i"), Le..Le+Ld-1 decoder ("dec.j"), then "other" (layer
 *     -1: embedding, output layer, optimizer), in that order, all of them listed.
 *   "topology": {"dims": [x, y, z], "wrap": [0|1, ...], "cores_per_chip": c, "chips": P,
 *                "link_bandwidth_bytes_per_s": b}
 *   "links": [{"id": l, "src": [x, y, z], "dst": [x, y, z], "dim": "x"|"y"|"z",
 *              "dir": "+"|"-", "bytes": n, "busy_s": s, "utilization": busy_s / T}, ...]
 *     every directed link of the pod in sim_topo id order.
 *   "expert_load": {"num_experts": E, "top_k": k, "layers": [{"switch_layer": i, "layer": L,
 *       "name": "enc.1", "group_tokens": S, "routed": k*S, "capacity": K,
 *       "tokens_per_expert": [E counts], "kept_per_expert": [E counts],
 *       "dropped_fraction": (routed - kept) / routed}, ...]}
 *     per Switch layer in model order, for ONE routing group (every group of a step gets the
 *     same counts from the routing model, model_routing_counts); absent for a dense model.
 *   "roofline": {"core_peak_flops": F, "core_hbm_bytes_per_s": B, "chip_peak_flops": .,
 *                "chip_hbm_bytes_per_s": ., "mxu_efficiency": e,
 *                "points": [{"name": "matmul attn.q.dx", "kind": "matmul"|"vector", "ops": n,
 *                            "flops": f, "bytes": b, "seconds": s, "intensity": f / b,
 *                            "flops_per_s": f / s}, ...]}
 *     the critical core's matmul and vector ops grouped by label stem (the label without its
 *     "enc.N." / "dec.N." prefix and ".remat" suffix); flops and HBM bytes from the timing
 *     models (sim/timing.h, as the engines price them), seconds the summed engine durations.
 *     Ops with no label are grouped as "unlabelled". Points in order of first appearance.
 *
 * Invariants: the result was recorded with record_ops; the detail depends only on its inputs.
 */
#ifndef SWITCHSIM_CLI_ESTIMATE_DETAIL_H
#define SWITCHSIM_CLI_ESTIMATE_DETAIL_H

#include <stdint.h>

#include <jansson.h>

#include "common/status.h"
#include "model/plan.h"
#include "model/run_cfg.h"
#include "model/stepgen.h"
#include "sim/engine.h"
#include "sim/program.h"
#include "sim/topo.h"

/* The kind of every collective instance of a program before lowering: kind[id] is the
 * sim_coll_kind of collective id (-1 for an id no op uses). Lowered sends/recvs carry tag
 * COLL_TAG_BASE + id, which is how the breakdown finds their kind. */
typedef struct {
    int8_t *kind; /* [n] */
    int32_t n;
} cli_coll_kinds;

ss_status cli_detail_coll_kinds(cli_coll_kinds *t, const sim_program *generated, ss_err *err);
void cli_detail_coll_kinds_free(cli_coll_kinds *t);

typedef struct {
    const sim_program *prog;      /* lowered */
    const sim_result *res;        /* recorded with record_ops */
    const sim_topo *topo;
    const run_cfg *run;           /* model, pod (chip) */
    const model_plan *plan;
    const model_routing *routing;
    const cli_coll_kinds *coll;   /* may be NULL: every send/recv counts as p2p */
    int32_t critical_core;
} cli_detail_in;

/* The "detail" object above into *out (new reference). */
ss_status cli_detail_json(json_t **out, const cli_detail_in *in, ss_err *err);

/* Adds the top-level keys scaling curves need, when missing: "num_experts" (E, 0 dense),
 * "chips", "link_bandwidth_bytes_per_s" (one link, one direction), "hbm_bandwidth_bytes_per_s"
 * (per chip), "chip_peak_flops". */
void cli_detail_add_scaling(json_t *result, const run_cfg *run, const model_plan *plan,
                            const sim_topo *topo);

#endif
