/* This file implements `switchsim collective KIND`: it builds one collective (collectives/
 * coll.h) over a group of a pod's cores, lowers its schedule to a step program, prices it
 * with the analytic or SystemC engine and prints the time, the algorithm and bus bandwidths
 * (nccl-tests conventions), the alpha-beta prediction, the bytes per link and the busiest
 * link.
 *
 * Invariants: see cli.h for exit statuses: bad options, an unknown kind or algorithm, a group
 * spec that does not parse or an algorithm that does not apply are usage errors (2); a pod
 * that cannot be loaded or an engine failure is a failure (1). The output depends only on the
 * inputs, so runs are reproducible byte for byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "collectives/coll.h"
#include "sim/engine.h"
#include "sim/pod.h"

static const char *const engine_choices[] = {"analytic", "systemc", NULL}; /* kind order */
static const char *const dtype_choices[] = {"fp32", "bf16", NULL};

typedef struct {
    const char *pod_path, *algo, *group;
    uint64_t bytes, packet_bytes;
    int engine, format, dtype;
    sim_coll_kind kind;
} coll_opts;

typedef struct {
    sim_pod pod;
    sim_topo topo;
    int32_t *cores;
    int32_t p;
    coll_desc desc;
    coll_cost cost;
    coll_schedule sched;
    sim_program prog;
    sim_result res;
    double predicted_s;
} coll_run_state;

static int parse_opts(coll_opts *o, int argc, char **argv)
{
    cli_opt opts[] = {
        {"pod", CLI_OPT_STR, &o->pod_path, "FILE", "pod config (configs/pods/*.yaml)", NULL, 0,
         0, 1},
        {"bytes", CLI_OPT_U64, &o->bytes, "N",
         "per-core buffer size in bytes (see SIZES); a multiple of the element size", NULL, 0,
         (double)SIM_PROG_MAX_SIZE, 0},
        {"algo", CLI_OPT_STR, &o->algo, "NAME",
         "auto (default), ring, biring, torus, hd, tree, direct, dimorder, dissem", NULL, 0, 0,
         0},
        {"group", CLI_OPT_STR, &o->group, "SPEC", "the cores taking part (default all)", NULL,
         0, 0, 0},
        {"engine", CLI_OPT_CHOICE, &o->engine, NULL,
         "analytic: contention-free links; systemc: discrete events, FIFO links",
         engine_choices, 0, 0, 0},
        {"dtype", CLI_OPT_CHOICE, &o->dtype, NULL, "element type on the wire", dtype_choices, 0,
         0, 0},
        {"packet-bytes", CLI_OPT_U64, &o->packet_bytes, "N", "packet size messages are cut into",
         NULL, 1, 1 << 30, 0},
        {"format", CLI_OPT_CHOICE, &o->format, NULL, "output format", cli_format_choices, 0, 0,
         0},
    };
    cli_spec spec = {
        "switchsim collective KIND --pod FILE --bytes N [OPTIONS]",
        "Times one collective on a pod: builds its transfer schedule over the group, lowers it\n"
        "to send/recv ops and runs a timing engine. KIND: allreduce, reducescatter, allgather,\n"
        "alltoall, broadcast (root: the group's first core), barrier.\n\n"
        "SIZES (nccl-tests): --bytes is each core's full buffer: the all-reduce buffer, the\n"
        "all-gather output, the reduce-scatter input, the all-to-all send buffer, the broadcast\n"
        "buffer; barrier ignores it (reported as 0).\n"
        "  algbw_GBps = bytes / seconds / 1e9\n"
        "  busbw_GBps = algbw x factor: allreduce 2(p-1)/p, reducescatter, allgather and\n"
        "               alltoall (p-1)/p, broadcast 1 (p = group size)\n"
        "predicted_s is the alpha-beta model (alpha = hop latency, B = one link, one direction,\n"
        "per step max(most bytes a core injects, most bytes on a link) / B + hops x alpha);\n"
        "auto picks the algorithm with the lowest prediction. Links: bytes_per_link is the mean\n"
        "over the links that carried traffic; the busiest link is the one busy longest.\n\n"
        "GROUP SPEC: 'all'; a list of cores and ranges '0-15,32'; 'row:Y' (chips with y = Y,\n"
        "z = 0), 'col:X' (x = X, z = 0), 'plane:z=Z' (also plane:x=X, plane:y=Y). Slices take\n"
        "every core of each chip, chip-major. torus and dimorder need a box group: the same\n"
        "cores of every chip of a box of chips, chip-major, chips in row-major order (all\n"
        "slices are; the cores of a chip count as one more, on-chip dimension).",
        opts,
        (int)(sizeof opts / sizeof opts[0]),
        1,
        1,
        "example:\n"
        "  switchsim collective allreduce --pod configs/pods/tpu-v3-32.yaml --bytes 67108864\n"
        "  switchsim collective alltoall --pod configs/pods/hypo-256-16x16.yaml \\\n"
        "      --bytes 1048576 --algo dimorder --group row:0 --engine systemc --format json",
    };
    o->engine = SIM_ENGINE_ANALYTIC;
    o->format = EMIT_TABLE;
    o->packet_bytes = SIM_PACKET_BYTES_DEFAULT;
    o->group = "all";
    o->algo = "auto";
    char *pos[argc];
    int npos = 0;
    const int rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc != CLI_PARSE_OK)
        return rc;
    if (coll_kind_parse(pos[0], &o->kind) != 0 || o->kind == SIM_COLL_ALLTOALLV) {
        cli_error("collective", "unknown kind '%s' (allreduce, reducescatter, allgather, "
                                "alltoall, broadcast, barrier)",
                  pos[0]);
        return CLI_PARSE_ERROR;
    }
    const unsigned esz = o->dtype ? 2 : 4;
    if (o->bytes % esz != 0) {
        cli_error("collective", "--bytes %llu is not a multiple of the %s element (%u bytes)",
                  (unsigned long long)o->bytes, dtype_choices[o->dtype], esz);
        return CLI_PARSE_ERROR;
    }
    return CLI_PARSE_OK;
}

static void state_free(coll_run_state *r)
{
    free(r->cores);
    coll_schedule_free(&r->sched);
    sim_program_free(&r->prog);
    sim_result_free(&r->res);
}

/* Pod, group and schedule; returns an exit status on failure, -1 on success. */
static int build(coll_run_state *r, const coll_opts *o)
{
    ss_err err = {0};
    if (sim_pod_load(&r->pod, o->pod_path, &err) != SS_OK ||
        sim_pod_topo(&r->pod, &r->topo, &err) != SS_OK) {
        cli_error("collective", "%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    if (coll_group_parse(o->group, &r->topo, &r->cores, &r->p, &err) != SS_OK) {
        cli_error("collective", "%s", err.msg);
        return CLI_EXIT_USAGE;
    }
    coll_algo a;
    if (coll_algo_parse(o->algo, &a) != 0) {
        cli_error("collective", "unknown algorithm '%s' (see --help)", o->algo);
        return CLI_EXIT_USAGE;
    }
    const uint32_t esz = o->dtype ? 2 : 4;
    r->desc = (coll_desc){o->kind, r->p, o->bytes / esz, NULL, esz, &r->topo, r->cores};
    r->cost = coll_cost_of_chip(&r->pod.chip, (uint32_t)o->packet_bytes);
    const ss_status st = a == COLL_ALGO_AUTO
                             ? coll_schedule_build_auto(&r->sched, &r->desc, &r->cost, &err)
                             : coll_schedule_build(&r->sched, &r->desc, a, &err);
    if (st != SS_OK) {
        cli_error("collective", "%s", err.msg);
        return st == SS_ERR_RANGE ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    if (coll_schedule_predict(&r->sched, &r->desc, &r->cost, &r->predicted_s, &err) != SS_OK) {
        cli_error("collective", "%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    return -1;
}

static int simulate(coll_run_state *r, const coll_opts *o)
{
    ss_err err = {0};
    if (sim_program_init(&r->prog, r->pod.cores, &err) != SS_OK ||
        coll_schedule_lower(&r->sched, &r->prog, r->cores, 0, NULL, NULL, NULL, &err) != SS_OK) {
        cli_error("collective", "%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    const sim_engine_cfg cfg = {&r->pod.chip, &r->topo, (uint32_t)o->packet_bytes, 0, 0};
    if (sim_engine_run((sim_engine_kind)o->engine, &r->prog, &cfg, &r->res, &err) != SS_OK) {
        cli_error("collective", "%s engine: %s", engine_choices[o->engine], err.msg);
        return CLI_EXIT_FAIL;
    }
    return -1;
}

static double bus_factor(sim_coll_kind k, int32_t p)
{
    switch (k) {
    case SIM_COLL_ALLREDUCE:
        return 2.0 * (p - 1) / p;
    case SIM_COLL_REDUCESCATTER:
    case SIM_COLL_ALLGATHER:
    case SIM_COLL_ALLTOALL:
    case SIM_COLL_ALLTOALLV:
        return (double)(p - 1) / p;
    case SIM_COLL_BROADCAST:
        return 1;
    default:
        return 0;
    }
}

static void links_json(json_t *j, const coll_run_state *r)
{
    const sim_result *s = &r->res;
    int32_t busiest = -1, used = 0;
    uint64_t total = 0;
    for (int32_t l = 0; l < s->nlinks; l++) {
        if (!s->link_packets[l])
            continue;
        used++;
        total += s->link_bytes[l];
        if (busiest < 0 || s->link_busy_s[l] > s->link_busy_s[busiest])
            busiest = l;
    }
    json_object_set_new(j, "links_used", json_integer(used));
    json_object_set_new(j, "bytes_per_link", json_real(used ? (double)total / used : 0));
    char name[SIM_TOPO_NAME_MAX] = "none";
    if (busiest >= 0)
        sim_topo_link_name(&r->topo, busiest, name, sizeof name);
    json_object_set_new(j, "busiest_link", json_string(name));
    json_object_set_new(j, "busiest_link_bytes",
                        json_integer(busiest >= 0 ? (json_int_t)s->link_bytes[busiest] : 0));
    json_object_set_new(j, "busiest_link_busy_s",
                        json_real(busiest >= 0 ? s->link_busy_s[busiest] : 0));
}

static json_t *result_json(const coll_run_state *r, const coll_opts *o)
{
    const double t = r->res.makespan_s;
    const uint64_t bytes = o->kind == SIM_COLL_BARRIER ? 0 : o->bytes;
    const double algbw = t > 0 ? (double)bytes / t / 1e9 : 0;
    json_t *j = json_object();
    json_object_set_new(j, "kind", json_string(sim_coll_kind_name(o->kind)));
    json_object_set_new(j, "algo", json_string(coll_algo_name(r->sched.algo)));
    json_object_set_new(j, "engine", json_string(engine_choices[o->engine]));
    json_object_set_new(j, "pod", json_string(r->pod.name));
    json_object_set_new(j, "group_size", json_integer(r->p));
    json_object_set_new(j, "bytes", json_integer((json_int_t)bytes));
    json_object_set_new(j, "dtype", json_string(dtype_choices[o->dtype]));
    json_object_set_new(j, "steps", json_integer(r->sched.nsteps));
    json_object_set_new(j, "messages", json_integer(r->prog.nops / 2));
    json_object_set_new(j, "seconds", json_real(t));
    json_object_set_new(j, "algbw_GBps", json_real(algbw));
    json_object_set_new(j, "busbw_GBps", json_real(algbw * bus_factor(o->kind, r->p)));
    json_object_set_new(j, "predicted_s", json_real(r->predicted_s));
    json_object_set_new(j, "link_bound_s", json_real(r->res.link_bound_s));
    json_object_set_new(j, "network_bytes",
                        json_integer((json_int_t)coll_schedule_bytes(&r->sched)));
    links_json(j, r);
    return j;
}

int cmd_collective(int argc, char **argv)
{
    coll_opts o;
    memset(&o, 0, sizeof o);
    const int prc = parse_opts(&o, argc, argv);
    if (prc == CLI_PARSE_HELP)
        return CLI_EXIT_OK;
    if (prc != CLI_PARSE_OK)
        return CLI_EXIT_USAGE;
    coll_run_state r;
    memset(&r, 0, sizeof r);
    int rc = build(&r, &o);
    if (rc < 0)
        rc = simulate(&r, &o);
    if (rc < 0) {
        json_t *j = result_json(&r, &o);
        rc = emit_result(stdout, j, (emit_format)o.format) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
        json_decref(j);
    }
    state_free(&r);
    return rc;
}
