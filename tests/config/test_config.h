/* This file declares what the test files of the config system share: paths into the source
 * tree, loading a file with the loader its kind names, and the test functions each file
 * defines (test_config.c runs them).
 */
#ifndef SWITCHSIM_TESTS_CONFIG_TEST_CONFIG_H
#define SWITCHSIM_TESTS_CONFIG_TEST_CONFIG_H

#include <stddef.h>

#include "common/cfg.h"
#include "common/status.h"

enum { TC_PATH = 1024, TC_MAX_FILES = 256 };

/* $SWITCHSIM_SOURCE_ROOT/rel (fails the test when the variable is not set). */
void tc_source_path(char *out, size_t n, const char *rel);
/* The *.yaml files directly in dir, sorted by name, as full paths; returns their count. */
size_t tc_list_yaml(const char *dir, char (*paths)[TC_PATH], size_t max);
/* Loads path with the public loader of the kind its `kind:` names (sim_chip_load,
 * sim_pod_load, model_cfg_load, run_cfg_load); *kind is that kind, or NULL when the file has
 * no usable kind. */
ss_status tc_load_any(const char *path, const char **kind, ss_err *err);
/* Whether s contains "NAME.yaml:LINE:COL: " (a position). */
int tc_has_position(const char *s);

/* test_config_decode.c: the YAML tree and the schema decoder on a test schema */
void test_config_tree_positions(void **state);
void test_config_scalar_types_decode(void **state);
void test_config_scalar_type_errors(void **state);
void test_config_bytes_parse(void **state);
void test_config_edit_distance(void **state);
void test_config_schema_json(void **state);

/* test_config_kinds.c: chip, pod, model, run, presets, includes, malformed files */
void test_config_presets_load(void **state);
void test_config_chip_peak(void **state);
void test_config_pod_derived(void **state);
void test_config_defaults_applied(void **state);
void test_config_include_override(void **state);
void test_config_include_positions(void **state);
void test_config_good_files_load(void **state);
void test_config_bad_files_report(void **state);

/* test_config_cli.c: the switchsim check command ($SWITCHSIM) */
void test_config_check_presets(void **state);
void test_config_check_invalid_exit_1(void **state);
void test_config_check_usage(void **state);

#endif
