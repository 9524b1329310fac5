/* This file tests the Chakra execution traces: the file framing of traces/chakra.c (records
 * written and read back, and the errors of malformed files: a truncated length varint, a
 * truncated record, an unknown node type, each naming the file), and `switchsim chakra
 * export|import` run as a subprocess: round trips of a hand-made program with every op kind
 * and of the program estimate generates for a run (the imported text equals the exported
 * program's sim_program_write text), the Chakra fields other simulators read, the import of a
 * foreign trace, and the command's failures. Without protobuf-c the executable exits 77.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli_child.h"
#include "switchsim_config.h"

#if SWITCHSIM_HAVE_CHAKRA

#include "common/fileio.h"
#include "sim/program.h"
#include "test_scratch.h"
#include "traces/chakra.h"

#define POD "configs/pods/tpu-v3-8.yaml"
#define ALL_KINDS "tests/chakra/programs/all_kinds.prog"
#define DISPATCH "tests/traces/programs/dispatch.prog"

/* A fresh temporary directory per test, removed afterwards. */
static int setup_dir(void **state)
{
    enum { CAP = 64 };
    char *dir = malloc(CAP);
    if (!dir || test_scratch_make(dir, CAP, "switchsim-chakra") != 0) {
        free(dir);
        return -1;
    }
    *state = dir;
    return cli_child_enter_source_root();
}

static int teardown_dir(void **state)
{
    const int rc = test_scratch_remove(*state);
    free(*state);
    return rc;
}

static char *read_text(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    ss_err err = {0};
    if (file_read_all(path, (size_t)1 << 30, &data, &len, &err) != SS_OK) {
        print_error("%s\n", err.msg);
        return NULL;
    }
    return data;
}

/* The canonical text (sim_program_write) of a program file. */
static char *canonical(const char *path)
{
    sim_program p;
    ss_err err = {0};
    if (sim_program_parse_file(&p, path, &err) != SS_OK) {
        print_error("%s\n", err.msg);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    const ss_status st = f ? sim_program_write(&p, f, &err) : SS_ERR_IO;
    if (f)
        fclose(f);
    sim_program_free(&p);
    if (st != SS_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Prints the first differing line of two texts; 1 when they are equal. */
static int same_text(const char *want, const char *got)
{
    if (strcmp(want, got) == 0)
        return 1;
    int line = 1;
    size_t i = 0, start = 0;
    for (; want[i] && want[i] == got[i]; i++)
        if (want[i] == '\n') {
            line++;
            start = i + 1;
        }
    print_error("texts differ at line %d:\n  want: %.*s\n  got:  %.*s\n", line,
                (int)strcspn(want + start, "\n"), want + start, (int)strcspn(got + start, "\n"),
                got + start);
    return 0;
}

/* ---- framing ------------------------------------------------------------------------------ */

static void write_meta(chakra_writer *w, const char *path)
{
    chakra_meta meta = CHAKRA_PROTO_MSG__GLOBAL_METADATA__INIT;
    meta.version = (char *)CHAKRA_ET_VERSION;
    ss_err err = {0};
    assert_int_equal(chakra_writer_open(w, path, &meta, &err), SS_OK);
}

static void write_node(chakra_writer *w, uint64_t id, int type, uint64_t *deps, size_t ndeps,
                       chakra_attr **attrs, size_t nattrs)
{
    chakra_node n = CHAKRA_PROTO_MSG__NODE__INIT;
    n.id = id;
    n.name = (char *)"node";
    n.type = (ChakraProtoMsg__NodeType)type;
    n.data_deps = deps;
    n.n_data_deps = ndeps;
    n.attr = attrs;
    n.n_attr = nattrs;
    ss_err err = {0};
    assert_int_equal(chakra_writer_node(w, &n, &err), SS_OK);
}

static void test_chakra_framing_roundtrip(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/t.0.et", (char *)*state);
    chakra_writer w;
    write_meta(&w, path);
    chakra_attr a[3];
    chakra_attr *ap[3] = {&a[0], &a[1], &a[2]};
    ChakraProtoMsg__Int32List list;
    int32_t vals[3] = {4, -5, 6};
    chakra_attr_int(&a[0], "num_ops", INT64_C(1) << 40);
    chakra_attr_str(&a[1], "ss_label", "enc.0.attn");
    chakra_attr_i32_list(&a[2], &list, "ss_group", vals, 3);
    uint64_t deps[2] = {0, 1};
    write_node(&w, 0, CHAKRA_PROTO_MSG__NODE_TYPE__COMP_NODE, NULL, 0, ap, 3);
    write_node(&w, 1, CHAKRA_PROTO_MSG__NODE_TYPE__MEM_LOAD_NODE, deps, 1, NULL, 0);
    write_node(&w, 300, CHAKRA_PROTO_MSG__NODE_TYPE__COMM_SEND_NODE, deps, 2, ap + 1, 1);
    ss_err err = {0};
    assert_int_equal(chakra_writer_close(&w, &err), SS_OK);

    chakra_reader r;
    chakra_meta *meta = NULL;
    assert_int_equal(chakra_reader_open(&r, path, &meta, &err), SS_OK);
    assert_string_equal(meta->version, CHAKRA_ET_VERSION);
    chakra_meta_free(meta);
    chakra_node *n[4] = {NULL};
    for (int i = 0; i < 4; i++)
        assert_int_equal(chakra_reader_next(&r, &n[i], &err), SS_OK);
    assert_null(n[3]); /* end of file */
    assert_int_equal(n[0]->type, CHAKRA_PROTO_MSG__NODE_TYPE__COMP_NODE);
    int64_t v = 0;
    assert_true(chakra_attr_get_int(chakra_attr_find(n[0]->attr, n[0]->n_attr, "num_ops"), &v));
    assert_int_equal(v, INT64_C(1) << 40);
    assert_string_equal(chakra_attr_get_str(chakra_attr_find(n[0]->attr, n[0]->n_attr,
                                                             "ss_label")),
                        "enc.0.attn");
    int64_t *lv = NULL;
    size_t ln = 0;
    assert_true(chakra_attr_get_list(chakra_attr_find(n[0]->attr, n[0]->n_attr, "ss_group"),
                                     &lv, &ln));
    assert_int_equal(ln, 3);
    assert_int_equal(lv[1], -5);
    free(lv);
    assert_int_equal(n[1]->n_data_deps, 1);
    assert_int_equal(n[2]->id, 300);
    assert_int_equal(n[2]->n_data_deps, 2);
    assert_int_equal(n[2]->data_deps[1], 1);
    assert_null(chakra_attr_find(n[1]->attr, n[1]->n_attr, "num_ops"));
    for (int i = 0; i < 3; i++)
        chakra_node_free(n[i]);
    chakra_reader_close(&r);
}

/* A file holding a valid metadata record followed by raw bytes. */
static void write_with_tail(const char *path, const unsigned char *tail, size_t n)
{
    chakra_writer w;
    write_meta(&w, path);
    fwrite(tail, 1, n, w.file.f);
    ss_err err = {0};
    assert_int_equal(chakra_writer_close(&w, &err), SS_OK);
}

/* Reads path to the end; the error message of the first failure ("" if none). */
static void read_error(const char *path, ss_err *err)
{
    chakra_reader r;
    chakra_meta *meta = NULL;
    err->msg[0] = '\0';
    ss_status st = chakra_reader_open(&r, path, &meta, err);
    chakra_meta_free(meta);
    for (chakra_node *n = NULL; st == SS_OK;) {
        st = chakra_reader_next(&r, &n, err);
        if (!n)
            break;
        chakra_node_free(n);
    }
    if (st == SS_OK)
        err->msg[0] = '\0';
    chakra_reader_close(&r);
}

static void test_chakra_malformed_files(void **state)
{
    char path[512];
    ss_err err = {0};
    snprintf(path, sizeof path, "%s/bad.0.et", (char *)*state);
    const unsigned char varint[] = {0x85, 0x80}; /* continuation bits, then end of file */
    write_with_tail(path, varint, sizeof varint);
    read_error(path, &err);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "record 2: truncated length varint"));

    const unsigned char shortrec[] = {50, 1, 2, 3}; /* 50 bytes announced, 3 present */
    write_with_tail(path, shortrec, sizeof shortrec);
    read_error(path, &err);
    assert_non_null(strstr(err.msg, "record 2: truncated (50 bytes announced)"));

    const unsigned char longvar[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1};
    write_with_tail(path, longvar, sizeof longvar);
    read_error(path, &err);
    assert_non_null(strstr(err.msg, "longer than 10 bytes"));

    chakra_writer w; /* node 7 with type 42 */
    write_meta(&w, path);
    write_node(&w, 7, 42, NULL, 0, NULL, 0);
    assert_int_equal(chakra_writer_close(&w, &err), SS_OK);
    read_error(path, &err);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "node 7 has unknown node type 42"));

    FILE *f = fopen(path, "wb"); /* empty */
    assert_non_null(f);
    fclose(f);
    read_error(path, &err);
    assert_non_null(strstr(err.msg, "empty file"));
}

/* ---- the command ----------------------------------------------------------------------------- */

/* export ARGS to dir (with --save-program dir/saved.prog), import back to dir/back.prog; the
 * two texts must be equal, and equal to want (the canonical input) when given. */
static void roundtrip(const char *dir, const char *export_args, const char *want)
{
    cli_child_result r = {0};
    json_t *j = cli_child_json(&r, "chakra export %s -o %s/et --save-program %s/saved.prog "
                                   "--format json",
                               export_args, dir, dir);
    if (!j)
        cli_child_print(&r, stderr, 2000);
    assert_non_null(j);
    const json_int_t files = json_integer_value(json_object_get(j, "files"));
    assert_int_equal(files, json_integer_value(json_object_get(j, "cores")));
    json_decref(j);
    cli_child_rerun(&r, "chakra import %s/et -o %s/back.prog", dir, dir);
    assert_true(cli_child_expect_status(&r, 0));
    cli_child_free(&r);
    char saved[512], back[512];
    snprintf(saved, sizeof saved, "%s/saved.prog", dir);
    snprintf(back, sizeof back, "%s/back.prog", dir);
    char *a = read_text(saved), *b = read_text(back);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(same_text(a, b));
    if (want)
        assert_true(same_text(want, b));
    free(a);
    free(b);
}

static void test_chakra_roundtrip_handmade(void **state)
{
    char *want = canonical(ALL_KINDS);
    assert_non_null(want);
    roundtrip(*state, "--program " ALL_KINDS " --pod " POD, want);
    free(want);
    want = canonical(DISPATCH);
    assert_non_null(want);
    roundtrip(*state, "--program " DISPATCH " --pod " POD, want);
    free(want);
}

static void test_chakra_roundtrip_generated(void **state)
{
    roundtrip(*state, "--run configs/runs/switch-tiny-v3-8.yaml", NULL);
    /* the saved program is the generated one: it has the Switch layers' all-to-allv */
    char saved[512];
    snprintf(saved, sizeof saved, "%s/saved.prog", (char *)*state);
    char *a = read_text(saved);
    assert_non_null(a);
    assert_non_null(strstr(a, "kind=alltoallv"));
    assert_non_null(strstr(a, "moe.expert"));
    free(a);
}

/* The node of core file path whose name is name (the first), or NULL. */
static chakra_node *find_node(const char *path, const char *name, int type)
{
    chakra_reader r;
    chakra_meta *meta = NULL;
    ss_err err = {0};
    if (chakra_reader_open(&r, path, &meta, &err) != SS_OK)
        return NULL;
    chakra_meta_free(meta);
    chakra_node *hit = NULL;
    for (chakra_node *n = NULL; !hit && chakra_reader_next(&r, &n, &err) == SS_OK && n;) {
        if (strcmp(n->name, name) == 0 && (int)n->type == type)
            hit = n;
        else
            chakra_node_free(n);
    }
    chakra_reader_close(&r);
    return hit;
}

static int64_t int_attr(const chakra_node *n, const char *name)
{
    int64_t v = -1;
    assert_true(chakra_attr_get_int(chakra_attr_find(n->attr, n->n_attr, name), &v));
    return v;
}

/* The standard fields ASTRA-sim reads, and all-to-allv as send/recv. */
static void test_chakra_export_fields(void **state)
{
    const char *dir = *state;
    cli_child_result r = {0};
    cli_child_run(&r, "chakra export --program " ALL_KINDS " --pod " POD " -o %s --prefix ak",
                  dir);
    assert_true(cli_child_expect_status(&r, 0));
    cli_child_free(&r);
    char path[512];
    snprintf(path, sizeof path, "%s/ak.0.et", dir);
    chakra_node *n = find_node(path, "enc.0.attn.q", CHAKRA_PROTO_MSG__NODE_TYPE__COMP_NODE);
    assert_non_null(n);
    assert_int_equal(int_attr(n, "num_ops"), 2 * 128 * 256 * 512);
    assert_int_equal(int_attr(n, "tensor_size"), 2 * (128 * 256 + 256 * 512 + 128 * 512));
    assert_int_equal(int_attr(n, "is_cpu_op"), 0);
    chakra_node_free(n);
    n = find_node(path, "collective", CHAKRA_PROTO_MSG__NODE_TYPE__COMM_COLL_NODE);
    assert_non_null(n); /* the all-reduce */
    assert_int_equal(int_attr(n, "comm_type"), CHAKRA_PROTO_MSG__COLLECTIVE_COMM_TYPE__ALL_REDUCE);
    assert_int_equal(int_attr(n, "comm_size"), 8192);
    chakra_node_free(n);
    n = find_node(path, "enc.0.moe.dispatch", CHAKRA_PROTO_MSG__NODE_TYPE__COMM_COLL_NODE);
    assert_null(n); /* all-to-allv is no collective node ... */
    n = find_node(path, "enc.0.moe.dispatch", CHAKRA_PROTO_MSG__NODE_TYPE__COMM_SEND_NODE);
    assert_non_null(n); /* ... but send/recv pairs */
    assert_int_equal(int_attr(n, "comm_src"), 0);
    assert_int_equal(int_attr(n, "comm_dst"), 1);
    assert_int_equal(int_attr(n, "comm_size"), 100);
    chakra_node_free(n);
    snprintf(path, sizeof path, "%s/ak.1.et", dir);
    n = find_node(path, "enc.0.moe.dispatch", CHAKRA_PROTO_MSG__NODE_TYPE__COMM_RECV_NODE);
    assert_non_null(n);
    assert_int_equal(int_attr(n, "comm_src"), 0);
    assert_int_equal(int_attr(n, "comm_dst"), 1);
    assert_int_equal(int_attr(n, "comm_size"), 100);
    chakra_node_free(n);
}

/* A two-rank trace as another tool writes it: no ss_* attributes. */
static void test_chakra_import_foreign(void **state)
{
    const char *dir = *state;
    char path[512];
    chakra_attr a[6];
    chakra_attr *ap[6] = {&a[0], &a[1], &a[2], &a[3], &a[4], &a[5]};
    uint64_t dep0 = 0, dep1 = 1;
    for (int rank = 0; rank < 2; rank++) {
        snprintf(path, sizeof path, "%s/fx.%d.et", dir, rank);
        chakra_writer w;
        write_meta(&w, path);
        write_node(&w, 10, CHAKRA_PROTO_MSG__NODE_TYPE__METADATA_NODE, NULL, 0, NULL, 0);
        chakra_attr_int(&a[0], "num_ops", 2 * 128 * 128 * 5); /* 5 MXU tiles of FLOPs */
        write_node(&w, 0, CHAKRA_PROTO_MSG__NODE_TYPE__COMP_NODE, &dep0, 0, ap, 1);
        chakra_attr_i32(&a[0], "comm_src", 0);
        chakra_attr_i32(&a[1], "comm_dst", 1);
        chakra_attr_int(&a[2], "comm_size", 4096);
        write_node(&w, 1,
                   rank == 0 ? CHAKRA_PROTO_MSG__NODE_TYPE__COMM_SEND_NODE
                             : CHAKRA_PROTO_MSG__NODE_TYPE__COMM_RECV_NODE,
                   &dep0, 1, ap, 3);
        chakra_attr_int(&a[0], "comm_type", CHAKRA_PROTO_MSG__COLLECTIVE_COMM_TYPE__ALL_GATHER);
        chakra_attr_int(&a[1], "comm_size", 1 << 20);
        write_node(&w, 2, CHAKRA_PROTO_MSG__NODE_TYPE__COMM_COLL_NODE, &dep1, 1, ap, 2);
        ss_err err = {0};
        assert_int_equal(chakra_writer_close(&w, &err), SS_OK);
    }
    cli_child_result r = {0};
    cli_child_run(&r, "chakra import %s --prefix fx -o %s/fx.prog", dir, dir);
    assert_true(cli_child_expect_status(&r, 0));
    cli_child_free(&r);
    snprintf(path, sizeof path, "%s/fx.prog", dir);
    char *got = read_text(path);
    assert_non_null(got);
    const char *want = "core 0:\n"
                       "  o0: matmul m=5 k=128 n=128 dtype=bf16\n"
                       "  o1: send to=1 bytes=4096 tag=0 after=o0\n"
                       "  o2: collective id=0 kind=allgather group=0-1 bytes=1048576 after=o1\n"
                       "core 1:\n"
                       "  o0: matmul m=5 k=128 n=128 dtype=bf16\n"
                       "  o1: recv from=0 bytes=4096 tag=0 after=o0\n"
                       "  o2: collective id=0 kind=allgather group=0-1 bytes=1048576 after=o1\n";
    assert_non_null(strstr(got, "cores 2\n"));
    assert_true(same_text(want, strstr(got, "core 0:")));
    free(got);
}

static void test_chakra_command_failures(void **state)
{
    const char *dir = *state;
    cli_child_result r = {0};
    cli_child_run(&r, "chakra export --program " ALL_KINDS " -o %s", dir); /* no --pod */
    assert_true(cli_child_expect_status(&r, 2));
    cli_child_rerun(&r, "chakra export --run x.yaml --program y.prog -o %s", dir);
    assert_true(cli_child_expect_status(&r, 2));
    cli_child_rerun(&r, "chakra import %s -o %s/x.prog", dir, dir); /* no files */
    assert_true(cli_child_expect_status(&r, 1));
    assert_true(cli_child_expect_text(r.err, "no switchsim.*.et files"));

    /* a truncated node in core 1's file: the message names that file */
    cli_child_rerun(&r, "chakra export --program " DISPATCH " --pod " POD " -o %s", dir);
    assert_true(cli_child_expect_status(&r, 0));
    char path[512];
    snprintf(path, sizeof path, "%s/switchsim.1.et", dir);
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    fputc(0x90, f); /* a length varint cut short */
    fclose(f);
    cli_child_rerun(&r, "chakra import %s -o %s/x.prog", dir, dir);
    assert_true(cli_child_expect_status(&r, 1));
    assert_true(cli_child_expect_text(r.err, path));
    assert_true(cli_child_expect_text(r.err, "truncated length varint"));

    /* a missing core file */
    snprintf(path, sizeof path, "%s/switchsim.2.et", dir);
    assert_int_equal(unlink(path), 0);
    cli_child_rerun(&r, "chakra import %s -o %s/x.prog", dir, dir);
    assert_true(cli_child_expect_status(&r, 1));
    assert_true(cli_child_expect_text(r.err, "switchsim.2.et: missing"));
    cli_child_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chakra_framing_roundtrip, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_chakra_malformed_files, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_chakra_roundtrip_handmade, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_chakra_roundtrip_generated, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_chakra_export_fields, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_chakra_import_foreign, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_chakra_command_failures, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

int main(void)
{
    fprintf(stderr, "switchsim was built without protobuf-c: Chakra tests skipped\n");
    return 77;
}

#endif
