/* This file implements `switchsim chakra export|import`: the step program as MLCommons Chakra
 * execution traces (one file per core, DIR/PREFIX.CORE.et, the naming ASTRA-sim reads), so
 * other simulators can run switchsim's workload, and Chakra traces back as a step program.
 * The mapping is cli/chakra_program.h's; the file format traces/chakra.h's.
 *
 * Invariants: exit statuses as cli.h (bad options 2; a program, run or trace that cannot be
 * read, converted or written 1, with the message naming the file). A build without protobuf-c
 * (meson option chakra) still has the subcommand: it fails with a message saying so. The
 * result printed is the list of files written or the program's size, never wall-clock time.
 */
#include <stdio.h>

#include <jansson.h>

#include "cli.h"
#include "switchsim_config.h"

#if SWITCHSIM_HAVE_CHAKRA
#include "chakra_program.h"
#include "estimate_program.h"
#include "sim/pod.h"
#include "sim/program.h"
#endif

#define DEFAULT_PREFIX "switchsim"

#if SWITCHSIM_HAVE_CHAKRA

static int emit(json_t *j, int format, const char *who)
{
    const int bad = emit_result(stdout, j, (emit_format)format) != 0;
    json_decref(j);
    if (bad) {
        cli_error(who, "cannot write the result to stdout");
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

static json_t *program_json(const sim_program *p)
{
    json_t *j = json_object();
    json_object_set_new(j, "cores", json_integer(p->ncores));
    json_object_set_new(j, "ops", json_integer(p->nops));
    int32_t kinds[SIM_OP_KIND_COUNT] = {0};
    for (int32_t i = 0; i < p->nops; i++)
        kinds[sim_program_op(p, i)->kind]++;
    for (int k = 0; k < SIM_OP_KIND_COUNT; k++)
        json_object_set_new(j, sim_op_kind_name((sim_op_kind)k), json_integer(kinds[k]));
    return j;
}

/* The program of --program (checked against --pod's core count) or of --run. */
static int load_program(sim_program *p, const char *run, const char *program, const char *pod)
{
    ss_err err = {0};
    if (run)
        return cli_estimate_program(run, p);
    sim_pod pd;
    if (sim_pod_load(&pd, pod, &err) != SS_OK) {
        cli_error("chakra export", "%s", err.msg);
        return -1;
    }
    if (sim_program_parse_file(p, program, &err) != SS_OK) {
        cli_error("chakra export", "%s", err.msg);
        return -1;
    }
    if (p->ncores > pd.cores) {
        cli_error("chakra export", "%s: %d cores, more than the %d of pod %s", program,
                  (int)p->ncores, (int)pd.cores, pd.name);
        sim_program_free(p);
        return -1;
    }
    return 0;
}

static int write_program(const sim_program *p, const char *path, const char *who)
{
    ss_err err = {0};
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_error(who, "%s: cannot write", path);
        return -1;
    }
    const ss_status st = sim_program_write(p, f, &err);
    if (fclose(f) != 0 || st != SS_OK) {
        cli_error(who, "%s: %s", path, st != SS_OK ? err.msg : "write error");
        return -1;
    }
    return 0;
}

static int cmd_export(int argc, char **argv)
{
    const char *run = NULL, *program = NULL, *pod = NULL, *dir = NULL, *save = NULL;
    const char *prefix = DEFAULT_PREFIX;
    int format = EMIT_TABLE;
    cli_opt opts[] = {
        {"run", CLI_OPT_STR, &run, "FILE", "run config: export the step program estimate builds",
         NULL, 0, 0, 0},
        {"program", CLI_OPT_STR, &program, "FILE", "step program (text form), with --pod", NULL,
         0, 0, 0},
        {"pod", CLI_OPT_STR, &pod, "FILE", "pod the program runs on (checks its core count)",
         NULL, 0, 0, 0},
        {"output", CLI_OPT_STR, &dir, "DIR",
         "(or -o) directory of the trace files (created if missing)",
         NULL, 0, 0, 1},
        {"prefix", CLI_OPT_STR, &prefix, "NAME", "file names NAME.CORE.et",
         NULL, 0, 0, 0},
        {"save-program", CLI_OPT_STR, &save, "FILE",
         "also write the exported step program in text form", NULL, 0, 0, 0},
        {"format", CLI_OPT_CHOICE, &format, NULL, "output format", cli_format_choices, 0, 0, 0},
    };
    cli_spec spec = {
        "switchsim chakra export (--run FILE | --program FILE --pod FILE) --output DIR",
        "Writes the step program as MLCommons Chakra execution traces, one file per core\n"
        "(DIR/PREFIX.CORE.et: a varint-framed GlobalMetadata, then the core's nodes): matmul\n"
        "and vector ops as COMP_NODE (num_ops = FLOPs, tensor_size), hbm as MEM_LOAD/STORE,\n"
        "send/recv as COMM_SEND/RECV (comm_src, comm_dst, comm_size, comm_tag), collectives\n"
        "as COMM_COLL_NODE (comm_type, comm_size); all-to-allv, which Chakra lacks, as the\n"
        "send/recv pairs of the direct algorithm. ss_* attributes keep every field, so\n"
        "'switchsim chakra import' gives the same program back. With --run the program is the\n"
        "one 'switchsim estimate --run' generates (collectives not lowered).",
        opts, (int)(sizeof opts / sizeof opts[0]), 0, 0,
        "examples (from the source tree):\n"
        "  switchsim chakra export --run configs/runs/switch-base-128-v3-32.yaml -o et/\n"
        "  switchsim chakra export --program tests/engine/programs/allreduce.prog \\\n"
        "      --pod configs/pods/tpu-v3-8.yaml -o et/ --prefix allreduce",
    };
    cli_short_output(argc, argv);
    char *pos[argc > 0 ? argc : 1];
    int npos = 0;
    const int prc = cli_parse(&spec, argc, argv, pos, &npos);
    if (prc == CLI_PARSE_HELP)
        return CLI_EXIT_OK;
    if (prc != CLI_PARSE_OK)
        return CLI_EXIT_USAGE;
    if (!run == !program || (program && !pod) || (run && pod)) {
        cli_error("chakra export", "give --run FILE, or --program FILE with --pod FILE");
        fprintf(stderr, "Try 'switchsim chakra export --help'.\n");
        return CLI_EXIT_USAGE;
    }
    sim_program p;
    if (load_program(&p, run, program, pod) != 0)
        return CLI_EXIT_FAIL;
    ss_err err = {0};
    int32_t files = 0;
    const ss_status st = cli_chakra_export(&p, dir, prefix, &files, &err);
    if (st != SS_OK) {
        sim_program_free(&p);
        cli_error("chakra export", "%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    const int saved = save ? write_program(&p, save, "chakra export") : 0;
    json_t *j = saved == 0 ? program_json(&p) : NULL;
    sim_program_free(&p);
    if (saved != 0)
        return CLI_EXIT_FAIL;
    json_object_set_new(j, "files", json_integer(files));
    json_object_set_new(j, "directory", json_string(dir));
    json_object_set_new(j, "prefix", json_string(prefix));
    return emit(j, format, "chakra export");
}

static int cmd_import(int argc, char **argv)
{
    const char *out = NULL, *prefix = DEFAULT_PREFIX;
    int format = EMIT_TABLE;
    cli_opt opts[] = {
        {"output", CLI_OPT_STR, &out, "FILE", "(or -o) step program to write (text form)", NULL,
         0, 0, 1},
        {"prefix", CLI_OPT_STR, &prefix, "NAME", "read DIR/NAME.*.et", NULL,
         0, 0, 0},
        {"format", CLI_OPT_CHOICE, &format, NULL, "output format", cli_format_choices, 0, 0, 0},
    };
    cli_spec spec = {
        "switchsim chakra import DIR --output FILE",
        "Reads the Chakra execution traces DIR/PREFIX.*.et (one per core, 0..N-1) into a step\n"
        "program and writes its text form. Traces written by 'switchsim chakra export' give\n"
        "the exported program back exactly; traces of other tools map node by node (COMP_NODE\n"
        "-> a matmul of num_ops FLOPs, MEM_LOAD/STORE -> hbm, COMM_SEND/RECV -> send/recv,\n"
        "COMM_COLL_NODE -> a collective over every core; METADATA_NODE skipped).",
        opts, (int)(sizeof opts / sizeof opts[0]), 1, 1,
        "example:\n"
        "  switchsim chakra import et/ -o step.prog && switchsim sim --pod POD --program step.prog",
    };
    cli_short_output(argc, argv);
    char *pos[argc > 0 ? argc : 1];
    int npos = 0;
    const int prc = cli_parse(&spec, argc, argv, pos, &npos);
    if (prc == CLI_PARSE_HELP)
        return CLI_EXIT_OK;
    if (prc != CLI_PARSE_OK)
        return CLI_EXIT_USAGE;
    sim_program p;
    ss_err err = {0};
    if (cli_chakra_import(&p, pos[0], prefix, &err) != SS_OK) {
        cli_error("chakra import", "%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    const int rc = write_program(&p, out, "chakra import");
    json_t *j = rc == 0 ? program_json(&p) : NULL;
    sim_program_free(&p);
    if (rc != 0)
        return CLI_EXIT_FAIL;
    json_object_set_new(j, "program", json_string(out));
    return emit(j, format, "chakra import");
}

#else /* !SWITCHSIM_HAVE_CHAKRA */

static int unavailable(int argc, char **argv)
{
    (void)argc;
    cli_error("chakra", "%s: this switchsim was built without protobuf-c (meson option "
                        "-Dchakra=enabled needs libprotobuf-c-dev and protobuf-c-compiler)",
              argv[0]);
    return CLI_EXIT_FAIL;
}

#define cmd_export unavailable
#define cmd_import unavailable

#endif

int cmd_chakra(int argc, char **argv)
{
    static const cli_cmd tools[] = {
        {"export", "write a step program as Chakra execution traces (one file per core)",
         cmd_export},
        {"import", "read Chakra execution traces into a step program", cmd_import},
    };
    const cli_group g = {"chakra", "tool",
                         "MLCommons Chakra execution traces (https://github.com/mlcommons/chakra)",
                         tools, (int)(sizeof tools / sizeof tools[0])};
    return cli_dispatch(&g, argc, argv);
}
