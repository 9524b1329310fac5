/* This file implements the runner of the config system's tests and the helpers they share:
 * paths into the source tree, listing a folder's YAML files, and loading a file with the
 * public loader its `kind:` names. `test_config` runs the library tests; `test_config cli`
 * runs the tests of the switchsim check command (they need the built binary).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>

#include "model/run_cfg.h"
#include "test_config.h"

void tc_source_path(char *out, size_t n, const char *rel)
{
    const char *root = getenv("SWITCHSIM_SOURCE_ROOT");
    if (!root)
        fail_msg("SWITCHSIM_SOURCE_ROOT is not set (run the tests with meson test)");
    snprintf(out, n, "%s/%s", root, rel);
}

static int by_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

size_t tc_list_yaml(const char *dir, char (*paths)[TC_PATH], size_t max)
{
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open folder %s", dir);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        assert_true(n < max);
        snprintf(paths[n++], TC_PATH, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(paths, n, sizeof paths[0], by_name);
    return n;
}

static ss_status load_chip(void *o, const char *p, ss_err *e) { return sim_chip_load(o, p, e); }
static ss_status load_pod(void *o, const char *p, ss_err *e) { return sim_pod_load(o, p, e); }
static ss_status load_model(void *o, const char *p, ss_err *e) { return model_cfg_load(o, p, e); }
static ss_status load_run(void *o, const char *p, ss_err *e) { return run_cfg_load(o, p, e); }

static const struct {
    const cfg_schema *schema;
    ss_status (*load)(void *out, const char *path, ss_err *err);
} loaders[] = {
    {&sim_chip_schema, load_chip},
    {&sim_pod_schema, load_pod},
    {&model_cfg_schema, load_model},
    {&run_cfg_schema, load_run},
};
enum { NLOADERS = sizeof loaders / sizeof loaders[0] };

ss_status tc_load_any(const char *path, const char **kind, ss_err *err)
{
    *kind = NULL;
    cfg_doc *doc = NULL;
    ss_status st = cfg_doc_load(&doc, path, err);
    if (st != SS_OK)
        return st;
    const cfg_schema *schemas[NLOADERS];
    for (int i = 0; i < NLOADERS; i++)
        schemas[i] = loaders[i].schema;
    const cfg_schema *s = cfg_schema_find(schemas, NLOADERS, doc, err);
    cfg_doc_free(doc);
    if (!s)
        return SS_ERR_CONFIG;
    *kind = s->kind;
    void *obj = calloc(1, s->size);
    assert_non_null(obj);
    st = SS_ERR_CONFIG;
    for (int i = 0; i < NLOADERS; i++)
        if (loaders[i].schema == s)
            st = loaders[i].load(obj, path, err);
    free(obj);
    return st;
}

int tc_has_position(const char *s)
{
    for (const char *p = strstr(s, ".yaml:"); p; p = strstr(p + 1, ".yaml:")) {
        int line, col, used = 0;
        if (sscanf(p, ".yaml:%d:%d: %n", &line, &col, &used) == 2 && used > 0 && line > 0 &&
            col > 0)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest lib[] = {
        cmocka_unit_test(test_config_tree_positions),
        cmocka_unit_test(test_config_scalar_types_decode),
        cmocka_unit_test(test_config_scalar_type_errors),
        cmocka_unit_test(test_config_bytes_parse),
        cmocka_unit_test(test_config_edit_distance),
        cmocka_unit_test(test_config_schema_json),
        cmocka_unit_test(test_config_presets_load),
        cmocka_unit_test(test_config_chip_peak),
        cmocka_unit_test(test_config_pod_derived),
        cmocka_unit_test(test_config_defaults_applied),
        cmocka_unit_test(test_config_include_override),
        cmocka_unit_test(test_config_include_positions),
        cmocka_unit_test(test_config_good_files_load),
        cmocka_unit_test(test_config_bad_files_report),
    };
    const struct CMUnitTest cli[] = {
        cmocka_unit_test(test_config_check_presets),
        cmocka_unit_test(test_config_check_invalid_exit_1),
        cmocka_unit_test(test_config_check_usage),
    };
    if (argc > 1 && strcmp(argv[1], "cli") == 0)
        return cmocka_run_group_tests_name("config_cli", cli, NULL, NULL);
    return cmocka_run_group_tests_name("config", lib, NULL, NULL);
}
