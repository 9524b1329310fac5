/* This file implements `switchsim check`: it validates config files of every kind (chip, pod,
 * model, run), dispatching on each file's `kind:`, and prints what each valid file describes —
 * its decoded fields with defaults applied, plus derived figures (peak rates, core counts,
 * links, layer counts, the resolved parallel plan). `--schema KIND` prints a kind's fields,
 * types, defaults and ranges instead.
 *
 * Invariants: every file is checked even after a failure; each invalid file's error goes to
 * stderr as one "FILE:LINE:COL: field 'PATH': message" line; the exit status is 0 when every
 * file is valid, 1 otherwise, 2 for usage errors. JSON output is one object with an array
 * "configs" (invalid files appear there with "valid": false and their error); table and CSV
 * print one block per valid file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli/sweep.h"
#include "common/cfg.h"
#include "model/model_cfg.h"
#include "model/run_cfg.h"
#include "sim/chip.h"
#include "sim/pod.h"

/* Adds a kind's derived figures to out. */
typedef void (*derive_fn)(json_t *out, const void *obj);

static void set_real(json_t *o, const char *key, double v)
{
    json_object_set_new(o, key, json_real(v));
}

static void set_int(json_t *o, const char *key, long long v)
{
    json_object_set_new(o, key, json_integer(v));
}

static void set_bytes(json_t *o, const char *key, uint64_t v)
{
    char buf[48];
    cfg_bytes_format(buf, sizeof buf, v);
    json_object_set_new(o, key, json_string(buf));
}

static void derive_chip(json_t *out, const void *obj)
{
    const sim_chip *c = obj;
    set_real(out, "peak_bf16_tflops_per_core", sim_chip_core_peak_flops(c) / 1e12);
    set_real(out, "peak_bf16_tflops_per_chip", sim_chip_peak_flops(c) / 1e12);
    set_real(out, "vector_fp32_gflops_per_core", sim_chip_core_vector_flops(c) / 1e9);
    set_bytes(out, "hbm", c->hbm_bytes);
    set_bytes(out, "vmem", c->vmem_bytes);
    /* FLOPs per HBM byte at which a kernel stops being bandwidth-bound */
    set_real(out, "ridge_flops_per_hbm_byte", sim_chip_peak_flops(c) / (c->hbm_gbps * 1e9));
}

static void derive_pod(json_t *out, const void *obj)
{
    const sim_pod *p = obj;
    set_int(out, "chips", p->chips);
    set_int(out, "cores", p->cores);
    set_real(out, "peak_bf16_pflops", sim_pod_peak_flops(p) / 1e15);
    set_real(out, "hbm_total_tib", (double)p->chips * (double)p->chip.hbm_bytes / 0x1p40);
    set_int(out, "ici_links", sim_pod_links(p));
    set_int(out, "bisection_links", sim_pod_bisection_links(p));
    set_real(out, "bisection_tbps_one_way",
             (double)sim_pod_bisection_links(p) * p->chip.link_gbps / 1e3);
    set_int(out, "diameter_hops", sim_pod_diameter_hops(p));
}

static void derive_model(json_t *out, const void *obj)
{
    const model_cfg *m = obj;
    json_object_set_new(out, "type", json_string(m->has_switch ? "switch" : "dense"));
    set_int(out, "attention_inner_dim", (long long)m->num_heads * m->d_kv);
    set_int(out, "switch_layers_encoder", model_cfg_switch_layers(m, m->encoder_layers));
    set_int(out, "switch_layers_decoder", model_cfg_switch_layers(m, m->decoder_layers));
}

static void derive_run(json_t *out, const void *obj)
{
    const run_cfg *r = obj;
    json_object_set_new(out, "chip", json_string(r->pod.chip.name));
    set_int(out, "cores", r->pod.cores);
    set_int(out, "sequences_per_data_way", r->batch / r->plan.data);
    set_int(out, "target_tokens_per_step", (long long)r->batch * r->target_length);
    set_real(out, "peak_bf16_pflops", sim_pod_peak_flops(&r->pod) / 1e15);
}

typedef struct {
    const cfg_schema *schema;
    derive_fn derive;
} kind_entry;

static const kind_entry kinds[] = {
    {&sim_chip_schema, derive_chip},
    {&sim_pod_schema, derive_pod},
    {&model_cfg_schema, derive_model},
    {&run_cfg_schema, derive_run},
};
enum { NKINDS = sizeof kinds / sizeof kinds[0] };

static const kind_entry *kind_for(const cfg_schema *s)
{
    for (int i = 0; i < NKINDS; i++)
        if (kinds[i].schema == s)
            return &kinds[i];
    return NULL;
}

/* Validates a sweep file (cli/sweep.h: its keys, values and base run); on success *desc
 * describes it: name, base run, swept keys and the number of points. */
static ss_status check_sweep(const char *path, json_t **desc, ss_err *err)
{
    sweep_spec sw;
    ss_status st = sweep_spec_load(&sw, path, err);
    if (st != SS_OK)
        return st;
    json_t *d = json_object(), *keys = json_array();
    json_object_set_new(d, "file", json_string(path));
    json_object_set_new(d, "valid", json_true());
    json_object_set_new(d, "kind", json_string("sweep"));
    json_object_set_new(d, "name", json_string(sw.name));
    json_object_set_new(d, "run", json_string(sw.run_path));
    for (int k = 0; k < sw.nkeys; k++)
        json_array_append_new(keys, json_string(sw.keys[k].key));
    json_object_set_new(d, "keys", keys);
    json_object_set_new(d, "points", json_integer((json_int_t)sw.npoints));
    sweep_spec_free(&sw);
    *desc = d;
    return SS_OK;
}

static int is_sweep(const cfg_doc *doc)
{
    const cfg_node *k = cfg_map_get(cfg_doc_root(doc), "kind");
    return k && k->kind == CFG_SCALAR && strcmp(k->text, "sweep") == 0;
}

/* Validates one file; on success *desc describes it (file, kind, fields, derived). */
static ss_status check_file(const char *path, json_t **desc, ss_err *err)
{
    const cfg_schema *schemas[NKINDS];
    for (int i = 0; i < NKINDS; i++)
        schemas[i] = kinds[i].schema;
    cfg_doc *doc = NULL;
    ss_status st = cfg_doc_load(&doc, path, err);
    if (st != SS_OK)
        return st;
    if (is_sweep(doc)) {
        cfg_doc_free(doc);
        return check_sweep(path, desc, err);
    }
    const cfg_schema *s = cfg_schema_find(schemas, NKINDS, doc, err);
    void *obj = s ? calloc(1, s->size) : NULL;
    if (!s)
        st = SS_ERR_CONFIG;
    else if (!obj)
        st = ss_err_set(err, SS_ERR_NOMEM, "out of memory");
    else
        st = cfg_decode(s, obj, cfg_doc_root(doc), "", err);
    if (st == SS_OK) {
        json_t *d = json_object();
        json_object_set_new(d, "file", json_string(path));
        json_object_set_new(d, "valid", json_true());
        json_object_set_new(d, "kind", json_string(s->kind));
        json_t *fields = cfg_to_json(s, obj);
        json_object_update(d, fields);
        json_decref(fields);
        json_t *derived = json_object();
        kind_for(s)->derive(derived, obj);
        json_object_set_new(d, "derived", derived);
        *desc = d;
    }
    free(obj);
    cfg_doc_free(doc);
    return st;
}

static int print_schema(const char *kind, emit_format fmt)
{
    for (int i = 0; i < NKINDS; i++) {
        const cfg_schema *s = kinds[i].schema;
        if (strcmp(s->kind, kind) != 0)
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "kind", json_string(s->kind));
        json_object_set_new(o, "summary", json_string(s->summary));
        json_object_set_new(o, "fields", cfg_schema_to_json(s));
        int rc = emit_result(stdout, o, fmt) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
        json_decref(o);
        return rc;
    }
    cli_error("usage", "--schema: unknown kind '%s' (chip, pod, model or run)", kind);
    return CLI_EXIT_USAGE;
}

/* Prints the descriptions of valid files: one object per file (table, CSV) or one object with
 * an array "configs" (JSON). */
static int print_results(json_t *configs, emit_format fmt)
{
    int bad_write = 0;
    if (fmt == EMIT_JSON) {
        json_t *o = json_object();
        json_object_set(o, "configs", configs);
        bad_write = emit_result(stdout, o, fmt) != 0;
        json_decref(o);
        return bad_write;
    }
    int first = 1;
    for (size_t i = 0; i < json_array_size(configs); i++) {
        const json_t *c = json_array_get(configs, i);
        if (!json_is_true(json_object_get(c, "valid")))
            continue;
        if (!first)
            fputc('\n', stdout);
        first = 0;
        bad_write |= emit_result(stdout, c, fmt) != 0;
    }
    return bad_write;
}

int cmd_check(int argc, char **argv)
{
    int format = EMIT_TABLE;
    const char *schema_kind = NULL;
    cli_opt opts[] = {
        {"format", CLI_OPT_CHOICE, &format, NULL, "output format", cli_format_choices, 0, 0, 0},
        {"schema", CLI_OPT_STR, &schema_kind, "KIND",
         "print the fields of KIND (chip, pod, model, run): type, default, range, meaning",
         NULL, 0, 0, 0},
    };
    cli_spec spec = {
        .usage = "switchsim check [--format table|csv|json] FILE...\n"
                 "       switchsim check --schema chip|pod|model|run",
        .description =
            "Validates config files (YAML with 'kind: chip|pod|model|run') and prints what each "
            "valid one\ndescribes: its fields with defaults applied and derived figures (peak "
            "FLOP/s, cores, links,\nlayers, the parallel plan). Errors go to stderr as "
            "FILE:LINE:COL: field 'PATH': message.\nA config may say 'include: base.yaml' (or a "
            "list): its own keys override the included\nfile's, nested mappings merge. Paths "
            "are relative to the file that names them. A sweep file ('kind: sweep', see\n"
            "switchsim sweep --help) is checked with its keys, values and base run.",
        .opts = opts,
        .nopts = (int)(sizeof opts / sizeof opts[0]),
        .min_pos = 0,
        .max_pos = -1,
        .epilog = "examples:\n"
                  "  switchsim check configs/chips/tpu-v3.yaml\n"
                  "  switchsim check --format json configs/*/*.yaml\n"
                  "  switchsim check --schema model\n\n"
                  "Exit status: 0 all files valid, 1 some file invalid, 2 usage error. JSON "
                  "output is one object\nwith an array \"configs\"; table and CSV print one "
                  "block per valid file.",
    };
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    if (!pos)
        return CLI_EXIT_FAIL;
    int npos = 0;
    int rc = cli_parse(&spec, argc, argv, pos, &npos);
    if (rc == CLI_PARSE_HELP || rc == CLI_PARSE_ERROR) {
        free(pos);
        return rc == CLI_PARSE_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    if (schema_kind || npos == 0) {
        if (schema_kind && npos == 0)
            rc = print_schema(schema_kind, (emit_format)format);
        else {
            cli_error("usage", "%s",
                      schema_kind ? "--schema takes no FILE arguments"
                                  : "expected at least one FILE");
            fprintf(stderr, "usage: %s\n(see --help)\n", spec.usage);
            rc = CLI_EXIT_USAGE;
        }
        free(pos);
        return rc;
    }
    json_t *configs = json_array();
    int invalid = 0;
    for (int i = 0; i < npos; i++) {
        ss_err err = {0};
        json_t *desc = NULL;
        if (check_file(pos[i], &desc, &err) != SS_OK) {
            fprintf(stderr, "switchsim: %s\n", err.msg);
            invalid++;
            desc = json_object();
            json_object_set_new(desc, "file", json_string(pos[i]));
            json_object_set_new(desc, "valid", json_false());
            json_object_set_new(desc, "error", json_string(err.msg));
        }
        json_array_append_new(configs, desc);
    }
    int bad_write = print_results(configs, (emit_format)format);
    json_decref(configs);
    free(pos);
    if (bad_write) {
        cli_error("check", "cannot write the output");
        return CLI_EXIT_FAIL;
    }
    return invalid ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
