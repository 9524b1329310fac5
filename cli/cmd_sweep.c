/* This file implements `switchsim sweep SWEEP.yaml [-j N] [-o DIR]`: a parameter sweep of
 * estimates. The sweep file (cli/sweep_cfg.c) names a base run and a cartesian product or a
 * list of field overrides; every point becomes a run config OUT/points/<id>.yaml and is
 * estimated by a worker process running this binary's `estimate` (cli/sweep_pool.c), N at a
 * time; the results are merged into OUT/results.json and OUT/results.csv, and `switchsim
 * report` (when this build has it) draws the scaling report into OUT/report. Under mpirun (a
 * build with the mpi feature), point i runs on rank i % size and rank 0 gathers and merges
 * (cli/sweep_mpi.c).
 *
 * Output files:
 *   OUT/points/<id>.yaml    the point's run config (<id> = index-hash, see cli/sweep.h)
 *   OUT/points/<id>.json    estimate --format json of a finished point
 *   OUT/points/<id>.error   why a point failed: a summary line, then the worker's stderr
 *   OUT/results.json        {"sweep": NAME, "points": [{"point": {KEY: VALUE...}, "id": ID,
 *                            "status": "ok"|"failed", "result": {...} | "error": "..."}]}
 *   OUT/results.csv         one row per point: id, status, the swept keys, key figures, error
 * Both results files are written atomically; re-running skips points with a .json (counted as
 * resumed) and retries failed ones.
 *
 * Invariants: a failing point never stops the sweep; exit status 0 when every point is ok, 1
 * when any failed (the ok ones are still merged) or the sweep cannot run, 2 usage. The merged
 * files depend only on the sweep and the results, not on -j, the rank count or the order in
 * which points finished.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "cli/sweep.h"
#include "common/fileio.h"

typedef struct {
    const char *out;
    long jobs;
    double timeout_s;
    int no_report, dry_run, format;
} sweep_opts;

/* The figures results.csv and the summary table take from each estimate (dotted JSON paths). */
typedef struct {
    const char *column, *path;
    int summary; /* also in the stdout table */
} figure;

static const figure figures[] = {
    {"step_seconds", "step_seconds", 1},
    {"examples_per_second", "examples_per_second", 1},
    {"tokens_per_second", "tokens_per_second", 0},
    {"mfu", "mfu", 1},
    {"hardware_utilization", "hardware_utilization", 0},
    {"params", "params", 0},
    {"cores", "cores", 0},
    {"data_ways", "data_ways", 0},
    {"model_ways", "model_ways", 0},
    {"experts_per_core", "experts_per_core", 0},
    {"microbatches", "microbatches", 0},
    {"batch", "batch", 0},
    {"compute_s", "time_split.compute_s", 0},
    {"exposed_comm_s", "time_split.exposed_comm_s", 0},
    {"comm_bytes_total", "comm_bytes.total", 0},
    {"comm_bytes_alltoallv", "comm_bytes.alltoallv", 0},
    {"comm_bytes_allreduce", "comm_bytes.allreduce", 0},
    {"comm_bytes_links", "comm_bytes.links", 0},
    {"memory_per_core_bytes", "memory_per_core.total", 1},
    {"dropped_token_fraction", "dropped_token_fraction", 0},
};
enum { NFIGURES = sizeof figures / sizeof figures[0] };

/* ---- options ------------------------------------------------------------------------------ */

/* -j N / -jN / -o DIR as --jobs / --out (cli_parse knows long options only). */
static void translate_short(char **args, int argc, char **argv, char *store, size_t nstore)
{
    size_t used = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        args[i] = argv[i];
        if (strcmp(a, "-j") == 0)
            args[i] = "--jobs";
        else if (strcmp(a, "-o") == 0)
            args[i] = "--out";
        else if (strncmp(a, "-j", 2) == 0 && used + strlen(a) + 8 < nstore) {
            args[i] = store + used;
            used += (size_t)snprintf(store + used, nstore - used, "--jobs=%s", a + 2) + 1;
        }
    }
}

static int parse_opts(sweep_opts *o, int argc, char **argv, char **pos, int *npos)
{
    cli_opt opts[] = {
        {"jobs", CLI_OPT_INT, &o->jobs, "N",
         "worker processes (-j N; default: CPUs, divided among the MPI ranks of a machine)",
         NULL, 1, 1024, 0},
        {"out", CLI_OPT_STR, &o->out, "DIR", "output folder (-o DIR; default: sweep-NAME)",
         NULL, 0, 0, 0},
        {"timeout", CLI_OPT_DOUBLE, &o->timeout_s, "S",
         "wall-clock limit of one point in seconds; overrides estimate.timeout_s (0: none)",
         NULL, 0, 1e7, 0},
        {"no-report", CLI_OPT_FLAG, &o->no_report, NULL,
         "do not run `switchsim report` on the merged results", NULL, 0, 0, 0},
        {"dry-run", CLI_OPT_FLAG, &o->dry_run, NULL,
         "write the points' run configs and list them; run nothing", NULL, 0, 0, 0},
        {"format", CLI_OPT_CHOICE, &o->format, NULL, "format of the summary on stdout",
         cli_format_choices, 0, 0, 0},
    };
    cli_spec spec = {
        "switchsim sweep SWEEP.yaml [-j N] [-o DIR] [OPTIONS]\n"
        "       mpirun -np R switchsim sweep SWEEP.yaml [-j N] [-o DIR]",
        "Runs `switchsim estimate` over many variants of one run config and merges the\n"
        "results. SWEEP.yaml (kind: sweep) gives a name, the base run (run: FILE, relative to\n"
        "the sweep file), optional estimate settings (estimate: engine analytic|systemc,\n"
        "routing, remat, exact_counts, grad_bf16, no_overlap, packet_bytes, timeout_s) and\n"
        "EITHER product: a mapping of keys to lists of values (the cartesian product; the\n"
        "first key varies slowest) OR points: a list of mappings of keys to values.\n"
        "A key is a dotted path of run-config fields, through mappings and through the\n"
        "configs a run references: plan.data, plan.microbatches, batch, model (a model file),\n"
        "model.switch.num_experts, model.switch.capacity_factor_train, pod (a pod file),\n"
        "pod.dims, pod.chip (a chip file), pod.chip.link_gbps, ... File values are relative\n"
        "to the sweep file. Keys and values are checked before anything runs.\n\n"
        "Each point becomes OUT/points/<index>-<hash>.yaml (the base run included, the swept\n"
        "fields overridden) and is estimated by a worker process; its JSON result is kept in\n"
        "OUT/points/<id>.json, or the failure (exit status, signal or timeout, and the\n"
        "worker's stderr) in OUT/points/<id>.error. A failed point does not stop the sweep.\n"
        "Re-running the same command skips points that have a result (resumed) and retries\n"
        "the failed ones. At the end OUT/results.json ({\"sweep\", \"points\": [{\"point\",\n"
        "\"id\", \"status\", \"result\" | \"error\"}]}) and OUT/results.csv are written and, unless\n"
        "--no-report, `switchsim report OUT/results.json -o OUT/report` draws the scaling\n"
        "curves when this build has the report command. Progress goes to stderr: a bar on a\n"
        "terminal, else one line per point. stdout gets a summary table (--format).\n\n"
        "Under mpirun (builds with the mpi feature) rank r runs the points with\n"
        "index % ranks == r, each with -j workers, and rank 0 gathers every result over MPI\n"
        "and writes the merged files (ranks on other machines need not share OUT).\n"
        "Exit status: 0 every point ok, 1 some point failed or the sweep could not run,\n"
        "2 usage.",
        opts,
        (int)(sizeof opts / sizeof opts[0]),
        1,
        1,
        "examples (from the source tree):\n"
        "  switchsim sweep configs/sweeps/switch-base-experts-v3-32.yaml -j 2\n"
        "  switchsim sweep configs/sweeps/switch-c-pods.yaml -o /tmp/switch-c --timeout 600\n"
        "  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \\\n"
        "    mpirun --oversubscribe -np 4 build/cli/switchsim sweep \\\n"
        "    configs/sweeps/switch-base-experts-v3-32.yaml -j 1\n\n"
        "example sweep file:\n"
        "  kind: sweep\n"
        "  name: experts\n"
        "  run: ../runs/switch-base-128-v3-32.yaml\n"
        "  product:\n"
        "    model.switch.num_experts: [8, 16, 32]\n"
        "    pod.chip.link_gbps: [50, 100]",
    };
    char store[512];
    char *args[argc + 1];
    translate_short(args, argc, argv, store, sizeof store);
    args[argc] = NULL;
    int r = cli_parse(&spec, argc, args, pos, npos);
    /* pos points into args (stack) or store: only argv strings are kept beyond here */
    for (int i = 0; i < *npos; i++)
        for (int j = 0; j < argc; j++)
            if (pos[i] == args[j])
                pos[i] = argv[j];
    return r;
}

/* ---- jobs --------------------------------------------------------------------------------- */

static uint32_t fnv1a(const char *text, uint32_t h)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static ss_status mkdir_p(const char *path, ss_err *err)
{
    char buf[4200];
    if (strlen(path) >= sizeof buf)
        return ss_err_set(err, SS_ERR_RANGE, "path too long: %s", path);
    memcpy(buf, path, strlen(path) + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return ss_err_set(err, SS_ERR_IO, "cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return ss_err_set(err, SS_ERR_IO, "cannot create %s: %s", buf, strerror(errno));
    return SS_OK;
}

/* Names every point's files; writes the run configs of the points this rank owns. */
static ss_status make_jobs(sweep_job *jobs, const sweep_spec *s, const char *out,
                           const char *const *args, const sweep_mpi *m, ss_err *err)
{
    uint32_t args_hash = 2166136261u;
    for (int a = 0; args[a]; a++)
        args_hash = fnv1a(" ", fnv1a(args[a], args_hash));
    int width = 3;
    for (size_t n = s->npoints; n >= 1000; n /= 10)
        width++;
    for (size_t i = 0; i < s->npoints; i++) {
        char *yaml;
        ss_status st = sweep_point_yaml(&yaml, s, i, err);
        if (st != SS_OK)
            return st;
        sweep_job *j = &jobs[i];
        memset(j, 0, sizeof *j);
        j->index = i;
        int w = snprintf(j->id, sizeof j->id, "%0*zu-%08x", width, i, fnv1a(yaml, args_hash));
        SS_ASSERT(w > 0 && (size_t)w < sizeof j->id);
        if (snprintf(j->yaml, sizeof j->yaml, "%s/points/%s.yaml", out, j->id) >=
                (int)sizeof j->yaml ||
            snprintf(j->json, sizeof j->json, "%s/points/%s.json", out, j->id) >=
                (int)sizeof j->json ||
            snprintf(j->error, sizeof j->error, "%s/points/%s.error", out, j->id) >=
                (int)sizeof j->error)
            st = ss_err_set(err, SS_ERR_RANGE, "output folder name too long: %s", out);
        if (st == SS_OK && (int)(i % (size_t)m->size) == m->rank)
            st = file_write_atomic(j->yaml, yaml, strlen(yaml), err);
        free(yaml);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

static ss_status self_exe(char *buf, size_t n, ss_err *err)
{
    ssize_t len = readlink("/proc/self/exe", buf, n - 1);
    if (len < 0)
        return ss_err_set(err, SS_ERR_IO, "cannot find this program (/proc/self/exe): %s",
                          strerror(errno));
    buf[len] = '\0';
    return SS_OK;
}

static int default_workers(const sweep_mpi *m)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long per = (cpus < 1 ? 1 : cpus) / (m->local_size < 1 ? 1 : m->local_size);
    return per < 1 ? 1 : (int)per;
}

/* Runs this rank's points (index % size == rank) in the pool; copies the outcomes back. */
static ss_status run_owned(sweep_job *jobs, size_t njobs, const sweep_pool_cfg *pc,
                           const sweep_mpi *m, ss_err *err)
{
    size_t n = 0;
    sweep_job *mine = malloc((njobs + 1) * sizeof *mine);
    if (!mine)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory");
    for (size_t i = (size_t)m->rank; i < njobs; i += (size_t)m->size)
        mine[n++] = jobs[i];
    sweep_pool_resume(mine, n);
    ss_status st = sweep_pool_run(mine, n, pc, err);
    for (size_t k = 0; k < n; k++)
        jobs[mine[k].index] = mine[k];
    free(mine);
    return st;
}

/* ---- merging ------------------------------------------------------------------------------ */

static const json_t *json_path(const json_t *obj, const char *path)
{
    char key[128];
    while (obj && *path) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        snprintf(key, sizeof key, "%.*s", (int)len, path);
        obj = json_object_get(obj, key);
        path = dot ? dot + 1 : path + len;
    }
    return obj;
}

/* The merged record of point i, read back from OUT/points (state from the files). */
static json_t *point_record(const sweep_spec *s, sweep_job *j)
{
    json_t *rec = json_object();
    json_object_set_new(rec, "point", sweep_point_json(s, j->index));
    json_object_set_new(rec, "id", json_string(j->id));
    json_error_t e;
    json_t *res = access(j->json, F_OK) == 0 ? json_load_file(j->json, 0, &e) : NULL;
    if (json_is_object(res)) {
        json_object_set_new(rec, "status", json_string("ok"));
        json_object_set_new(rec, "result", res);
        if (j->state != SWEEP_RESUMED)
            j->state = SWEEP_OK;
        return rec;
    }
    json_decref(res);
    j->state = SWEEP_FAILED;
    char *why = access(j->error, F_OK) == 0 ? sweep_job_error_text(j)
                                             : strdup("the point was not run");
    json_object_set_new(rec, "status", json_string("failed"));
    json_object_set_new(rec, "error", json_string(why ? why : "out of memory"));
    free(why);
    return rec;
}

static void csv_field(FILE *f, const char *text)
{
    if (!strpbrk(text, ",\"\n\r")) {
        fputs(text, f);
        return;
    }
    fputc('"', f);
    for (const char *p = text; *p; p++) {
        if (*p == '"')
            fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

static void json_text(char *buf, size_t n, const json_t *v)
{
    if (json_is_integer(v))
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, n, "%.17g", json_real_value(v));
    else if (json_is_string(v))
        snprintf(buf, n, "%s", json_string_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, n, "%s", json_is_true(v) ? "true" : "false");
    else
        buf[0] = '\0';
}

/* Figure c's column name; "result.NAME" when a swept key has the same name (e.g. a sweep over
 * batch: the key column holds the override, the figure column what the estimate used). */
static const char *figure_column(const sweep_spec *s, int c, char *buf, size_t n)
{
    for (int k = 0; k < s->nkeys; k++)
        if (strcmp(s->keys[k].key, figures[c].column) == 0) {
            snprintf(buf, n, "result.%s", figures[c].column);
            return buf;
        }
    return figures[c].column;
}

static void write_csv(FILE *f, const sweep_spec *s, const json_t *points)
{
    char col[128];
    fputs("id,status", f);
    for (int k = 0; k < s->nkeys; k++) {
        fputc(',', f);
        csv_field(f, s->keys[k].key);
    }
    for (int c = 0; c < NFIGURES; c++)
        fprintf(f, ",%s", figure_column(s, c, col, sizeof col));
    fputs(",error\n", f);
    size_t i;
    const json_t *rec;
    json_array_foreach(points, i, rec) {
        char buf[8192];
        csv_field(f, json_string_value(json_object_get(rec, "id")));
        fprintf(f, ",%s", json_string_value(json_object_get(rec, "status")));
        for (int k = 0; k < s->nkeys; k++) {
            sweep_point_text(buf, sizeof buf, s, i, k);
            fputc(',', f);
            csv_field(f, buf);
        }
        const json_t *res = json_object_get(rec, "result");
        for (int c = 0; c < NFIGURES; c++) {
            json_text(buf, sizeof buf, res ? json_path(res, figures[c].path) : NULL);
            fprintf(f, ",%s", buf);
        }
        json_text(buf, sizeof buf, json_object_get(rec, "error"));
        fputc(',', f);
        csv_field(f, buf);
        fputc('\n', f);
    }
}

static ss_status write_results(const char *out, const sweep_spec *s, const json_t *merged,
                               ss_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/results.json", out);
    char *text = json_dumps(merged, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory");
    size_t len = strlen(text);
    text[len] = '\n'; /* json_dumps's NUL becomes the final newline */
    ss_status st = file_write_atomic(path, text, len + 1, err);
    free(text);
    if (st != SS_OK)
        return st;
    snprintf(path, sizeof path, "%s/results.csv", out);
    file_atomic a;
    if ((st = file_atomic_open(&a, path, err)) != SS_OK)
        return st;
    write_csv(a.f, s, json_object_get(merged, "points"));
    return file_atomic_commit(&a, err);
}

/* The stdout summary: counts, where the files are, and one row per point. */
static json_t *summary(const sweep_spec *s, const json_t *points, const char *out,
                       size_t resumed)
{
    json_t *o = json_object(), *rows = json_array();
    size_t ok = 0, i;
    const json_t *rec;
    json_array_foreach(points, i, rec) {
        const json_t *res = json_object_get(rec, "result");
        ok += res != NULL;
        json_t *row = json_object();
        json_object_set(row, "id", json_object_get(rec, "id"));
        json_object_set(row, "status", json_object_get(rec, "status"));
        for (int k = 0; k < s->nkeys; k++) {
            char buf[4096];
            sweep_point_text(buf, sizeof buf, s, i, k);
            json_object_set_new(row, s->keys[k].key, json_string(buf));
        }
        for (int c = 0; c < NFIGURES; c++)
            if (figures[c].summary) {
                char col[128];
                const json_t *v = res ? json_path(res, figures[c].path) : NULL;
                json_object_set_new(row, figure_column(s, c, col, sizeof col),
                                    v ? json_deep_copy(v) : json_null());
            }
        json_array_append_new(rows, row);
    }
    json_object_set_new(o, "sweep", json_string(s->name));
    json_object_set_new(o, "points", json_integer((json_int_t)s->npoints));
    json_object_set_new(o, "ok", json_integer((json_int_t)ok));
    json_object_set_new(o, "failed", json_integer((json_int_t)(s->npoints - ok)));
    json_object_set_new(o, "resumed", json_integer((json_int_t)resumed));
    char path[4200];
    snprintf(path, sizeof path, "%s/results.json", out);
    json_object_set_new(o, "results", json_string(path));
    json_object_set_new(o, "table", rows);
    return o;
}

/* ---- the report ------------------------------------------------------------------------- */

/* `exe report OUT/results.json -o OUT/report` with its stdout on our stderr; exit status or
 * -1. */
static int run_report(const char *exe, const char *out)
{
    char results[4200], dir[4200];
    snprintf(results, sizeof results, "%s/results.json", out);
    snprintf(dir, sizeof dir, "%s/report", out);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        if (in < 0 || dup2(in, 0) < 0 || dup2(2, 1) < 0)
            _exit(126);
        execl(exe, "switchsim", "report", results, "-o", dir, (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void report(const char *exe, const char *out)
{
    int rc = run_report(exe, out);
    if (rc == 0)
        fprintf(stderr, "switchsim: sweep: report in %s/report\n", out);
    else
        fprintf(stderr,
                "switchsim: sweep: note: no report (switchsim report exited %d; this build may "
                "not have it); the merged results are complete\n",
                rc);
}

/* ---- the command -------------------------------------------------------------------------- */

/* Rank 0: merges, writes the results, prints the summary; returns the exit status. */
static int merge(const sweep_spec *s, sweep_job *jobs, const sweep_opts *o, const char *out,
                 const char *exe, size_t resumed)
{
    json_t *merged = json_object(), *points = json_array();
    json_object_set_new(merged, "sweep", json_string(s->name));
    size_t failed = 0;
    for (size_t i = 0; i < s->npoints; i++) {
        json_array_append_new(points, point_record(s, &jobs[i]));
        failed += jobs[i].state == SWEEP_FAILED;
    }
    json_object_set_new(merged, "points", points);
    ss_err err;
    int rc = failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    if (write_results(out, s, merged, &err) != SS_OK) {
        cli_error("sweep", "%s", err.msg);
        json_decref(merged);
        return CLI_EXIT_FAIL;
    }
    fprintf(stderr,
            "switchsim: sweep: %zu point%s: %zu ok (%zu resumed), %zu failed; merged into "
            "%s/results.json and %s/results.csv\n",
            s->npoints, s->npoints == 1 ? "" : "s", s->npoints - failed, resumed, failed, out,
            out);
    if (!o->no_report && failed < s->npoints)
        report(exe, out);
    json_t *sum = summary(s, points, out, resumed);
    if (emit_result(stdout, sum, (emit_format)o->format) != 0)
        rc = CLI_EXIT_FAIL;
    json_decref(sum);
    json_decref(merged);
    return rc;
}

static int dry_run(const sweep_spec *s, const sweep_job *jobs, int format)
{
    json_t *o = json_object(), *rows = json_array();
    for (size_t i = 0; i < s->npoints; i++) {
        json_t *row = json_object();
        json_object_set_new(row, "id", json_string(jobs[i].id));
        json_object_set_new(row, "point", sweep_point_json(s, i));
        json_object_set_new(row, "run", json_string(jobs[i].yaml));
        json_array_append_new(rows, row);
    }
    json_object_set_new(o, "sweep", json_string(s->name));
    json_object_set_new(o, "points", json_integer((json_int_t)s->npoints));
    json_object_set_new(o, "table", rows);
    int rc = emit_result(stdout, o, (emit_format)format) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    json_decref(o);
    return rc;
}

/* Everything after option parsing, on every rank. */
static int sweep_main(const sweep_opts *o, const char *path, const sweep_mpi *m)
{
    ss_err err;
    sweep_spec s;
    int loaded = sweep_spec_load(&s, path, &err) == SS_OK;
    if (!loaded)
        cli_error("sweep", "%s", err.msg);
    if (!sweep_mpi_all(m, loaded)) {
        if (loaded) {
            cli_error("sweep", "rank %d: another rank could not load the sweep", m->rank);
            sweep_spec_free(&s);
        }
        return CLI_EXIT_FAIL;
    }
    char out[4096], exe[4096], store[64];
    snprintf(out, sizeof out, "%s", o->out ? o->out : "");
    if (!o->out)
        snprintf(out, sizeof out, "sweep-%s", s.name);
    const char *args[24];
    sweep_estimate_args(args, 24, store, sizeof store, &s);
    sweep_job *jobs = calloc(s.npoints, sizeof *jobs);
    char points_dir[4200];
    snprintf(points_dir, sizeof points_dir, "%s/points", out);
    int rc = CLI_EXIT_FAIL;
    ss_status st = jobs ? mkdir_p(points_dir, &err)
                        : ss_err_set(&err, SS_ERR_NOMEM, "out of memory");
    if (st == SS_OK)
        st = make_jobs(jobs, &s, out, args, m, &err);
    if (st == SS_OK)
        st = self_exe(exe, sizeof exe, &err);
    if (st != SS_OK)
        cli_error("sweep", "%s", err.msg);
    if (!sweep_mpi_all(m, st == SS_OK))
        goto done;
    if (o->dry_run) {
        rc = m->rank == 0 ? dry_run(&s, jobs, o->format) : CLI_EXIT_OK;
        goto done;
    }
    {
        char tag[64] = "";
        if (m->size > 1)
            snprintf(tag, sizeof tag, "rank %d/%d: ", m->rank, m->size);
        sweep_pool_cfg pc = {exe, args, o->jobs ? (int)o->jobs : default_workers(m),
                             o->timeout_s > 0 ? o->timeout_s : s.est.timeout_s,
                             isatty(2) && m->size == 1, tag};
        st = run_owned(jobs, s.npoints, &pc, m, &err);
    }
    if (st != SS_OK)
        cli_error("sweep", "%s", err.msg); /* the points that ran are still gathered */
    if (sweep_mpi_gather(m, jobs, s.npoints, &err) != SS_OK) {
        cli_error("sweep", "%s", err.msg);
        st = SS_ERR_IO;
    }
    if (m->rank == 0) {
        size_t all_resumed = 0;
        for (size_t i = 0; i < s.npoints; i++)
            all_resumed += jobs[i].state == SWEEP_RESUMED;
        rc = merge(&s, jobs, o, out, exe, all_resumed);
        if (st != SS_OK)
            rc = CLI_EXIT_FAIL;
    } else {
        rc = st == SS_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    }
done:
    free(jobs);
    sweep_spec_free(&s);
    return rc;
}

int cmd_sweep(int argc, char **argv)
{
    sweep_opts o = {0};
    char *pos[argc + 1];
    int npos = 0;
    int r = parse_opts(&o, argc, argv, pos, &npos);
    if (r == CLI_PARSE_HELP)
        return CLI_EXIT_OK;
    if (r != CLI_PARSE_OK)
        return CLI_EXIT_USAGE;
    sweep_mpi m;
    ss_err err;
    if (sweep_mpi_start(&m, &err) != SS_OK) {
        cli_error("sweep", "%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    int rc = sweep_main(&o, pos[0], &m);
    rc = sweep_mpi_share_status(&m, rc);
    sweep_mpi_finish(&m);
    return rc;
}
