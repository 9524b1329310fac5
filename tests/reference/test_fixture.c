/* This file implements the tests of model/fixture.c and `switchsim check-fixture`: every
 * committed PyTorch reference fixture in tests/reference/fixtures/ (found at test time) must
 * pass with its per-tensor tolerances (the max errors are printed), routing decisions
 * exactly; the reader must reject malformed files (truncated, bad magic, version, checksum,
 * trailing bytes, bad fields) and the runner unrunnable ones (unknown kind, missing tensor or
 * parameter, misshapen input, unknown output) with clear messages; a perturbed expected value
 * must fail its row; and the command must exit 0 / 1 / 2 accordingly.
 *
 * Invariants: fixtures are read from $SWITCHSIM_SOURCE_ROOT; malformed images are built in
 * memory by a small writer of the format (fixture.h), independent of the Python generator;
 * scratch files live in a mkdtemp directory, removed at the end.
 */
#include <dirent.h>
#include <math.h>
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
#include "common/fileio.h"
#include "model/fixture.h"
#include "test_scratch.h"

#define FIXTURE_DIR "tests/reference/fixtures"
#define SWITCH_FIXTURE FIXTURE_DIR "/switch_top1_fp32.bin"
#define T5_FIXTURE FIXTURE_DIR "/t5_switch_tied_fp32.bin"

static void source_path(char *out, size_t n, const char *rel)
{
    if (cli_child_source_path(out, n, rel) != 0)
        fail();
}

/* ---- a writer of the format, for malformed images -------------------------------------- */

typedef struct {
    uint8_t b[1 << 14];
    size_t n;
} image;

static void put(image *im, const void *p, size_t n)
{
    assert_true(im->n + n <= sizeof im->b);
    memcpy(im->b + im->n, p, n);
    im->n += n;
}

static void put_u32(image *im, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(im, b, 4);
}

static void put_str(image *im, const char *s)
{
    put_u32(im, (uint32_t)strlen(s));
    put(im, s, strlen(s));
}

static void put_header(image *im, const char *kind, const char *params, uint32_t ntensors)
{
    im->n = 0;
    put(im, "SWFX", 4);
    put_u32(im, 1);
    put_str(im, kind);
    put_str(im, params);
    put_u32(im, ntensors);
}

/* One tensor record; data holds count 4-byte values (float or int32). */
static void put_tensor(image *im, const char *name, int role, int dtype, int rank,
                       const uint32_t *dims, float tol, const void *data)
{
    uint8_t hdr[4] = {(uint8_t)role, (uint8_t)dtype, (uint8_t)rank, 0};
    size_t count = 1;
    put_str(im, name);
    put(im, hdr, 4);
    for (int i = 0; i < rank; i++) {
        put_u32(im, dims[i]);
        count *= dims[i];
    }
    uint32_t tb;
    memcpy(&tb, &tol, 4);
    put_u32(im, tb);
    const uint8_t *d = data;
    for (size_t i = 0; i < count; i++) {
        uint32_t v;
        memcpy(&v, d + 4 * i, 4);
        put_u32(im, v);
    }
}

static void put_crc(image *im)
{
    put_u32(im, model_fixture_crc32(im->b, im->n));
}

/* A valid two-tensor image: input x [2,3] f32 and output y [2] i32, then the checksum. */
static void valid_image(image *im)
{
    const float x[6] = {1, 2, 3, 4, 5, 6.5f};
    const int32_t y[2] = {-1, 7};
    const uint32_t dx[2] = {2, 3}, dy[1] = {2};
    put_header(im, "switch_layer", "N=2\nflag=on\n", 2);
    put_tensor(im, "x", 0, 0, 2, dx, 0.0f, x);
    put_tensor(im, "y", 1, 1, 1, dy, 0.0f, y);
    put_crc(im);
}

/* Parses and expects SS_ERR_DATA with `needle` in the message. */
static void expect_reject(const uint8_t *b, size_t n, const char *needle)
{
    model_fixture fx;
    ss_err err = {0};
    ss_status st = model_fixture_parse(&fx, b, n, "mem", &err);
    printf("  rejected (%zu bytes): %s\n", n, err.msg);
    assert_int_equal(st, SS_ERR_DATA);
    assert_non_null(strstr(err.msg, needle));
    assert_int_equal(fx.ntensors, 0);
}

/* ---- fixtures on disk ---------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .bin files of the fixture folder, sorted; returns how many (names malloc'd). */
static size_t list_fixtures(char **names, size_t max)
{
    char dir[4096];
    source_path(dir, sizeof dir, FIXTURE_DIR);
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s", dir);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".bin") == 0 && n < max) {
            names[n] = malloc(len + sizeof dir + 2);
            assert_non_null(names[n]);
            sprintf(names[n++], "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    return n;
}

static void load(model_fixture *fx, const char *rel)
{
    char path[4096];
    ss_err err = {0};
    source_path(path, sizeof path, rel);
    if (model_fixture_load(fx, path, &err) != SS_OK)
        fail_msg("%s", err.msg);
}

static void print_row(const model_fixture_row *r)
{
    printf("    %-10s %s max_abs %.3g max_rel %.3g (elementwise %.3g) mismatches %zu tol %g "
           "%s\n", r->name, r->dtype == MODEL_FIXTURE_F32 ? "f32" : "i32", r->max_abs_err,
           r->max_rel_err, r->max_elem_rel, r->mismatches, r->tol, r->pass ? "pass" : "FAIL");
}

static const model_fixture_row *find_row(const model_fixture_report *rep, const char *name)
{
    for (size_t i = 0; i < rep->nrows; i++)
        if (strcmp(rep->rows[i].name, name) == 0)
            return &rep->rows[i];
    fail_msg("no row %s", name);
    return NULL;
}

/* ---- tests: checksum and reader ------------------------------------------------------ */

static void test_fixture_crc32_known_values(void **state)
{
    (void)state;
    assert_int_equal(model_fixture_crc32((const uint8_t *)"123456789", 9), 0xCBF43926u);
    assert_int_equal(model_fixture_crc32((const uint8_t *)"", 0), 0u);
    assert_int_equal(model_fixture_crc32((const uint8_t *)"a", 1), 0xE8B7BE43u);
}

static void test_fixture_parse_valid_image(void **state)
{
    (void)state;
    image im;
    model_fixture fx;
    ss_err err = {0};
    valid_image(&im);
    assert_int_equal(model_fixture_parse(&fx, im.b, im.n, "mem", &err), SS_OK);
    assert_string_equal(fx.kind, "switch_layer");
    assert_int_equal(fx.nparams, 2);
    assert_string_equal(model_fixture_param_str(&fx, "N"), "2");
    assert_string_equal(model_fixture_param_str(&fx, "flag"), "on");
    assert_null(model_fixture_param_str(&fx, "absent"));
    const model_fixture_tensor *x = model_fixture_find(&fx, "x");
    const model_fixture_tensor *y = model_fixture_find(&fx, "y");
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(x->role, MODEL_FIXTURE_INPUT);
    assert_int_equal(x->rank, 2);
    assert_int_equal(x->dims[1], 3);
    assert_int_equal(x->count, 6);
    assert_true(x->f32[5] == 6.5f);
    assert_int_equal(y->dtype, MODEL_FIXTURE_I32);
    assert_int_equal(y->i32[0], -1);
    assert_int_equal(y->i32[1], 7);
    assert_null(model_fixture_find(&fx, "z"));
    model_fixture_free(&fx);
}

static void test_fixture_rejects_truncated(void **state)
{
    (void)state;
    image im;
    valid_image(&im);
    /* raw truncation anywhere: the checksum (or the magic) no longer matches */
    for (size_t n = 0; n < im.n; n++) {
        model_fixture fx;
        ss_err err = {0};
        assert_int_equal(model_fixture_parse(&fx, im.b, n, "mem", &err), SS_ERR_DATA);
        assert_true(strstr(err.msg, "checksum") || strstr(err.msg, "magic") ||
                    strstr(err.msg, "truncated"));
    }
    /* a body cut inside the last tensor's data, with a valid checksum of what is left */
    image cut = im;
    cut.n = im.n - 4 - 2;
    put_crc(&cut);
    expect_reject(cut.b, cut.n, "truncated: tensor data");
    cut.n = 8 + 4 + 3; /* inside the kind */
    put_crc(&cut);
    expect_reject(cut.b, cut.n, "truncated: kind");
}

static void test_fixture_rejects_bad_magic_and_version(void **state)
{
    (void)state;
    image im;
    valid_image(&im);
    im.b[3] = 'Y';
    expect_reject(im.b, im.n, "bad magic");
    valid_image(&im);
    im.b[4] = 2; /* version 2 */
    expect_reject(im.b, im.n, "version 2 is not supported");
}

static void test_fixture_rejects_bad_checksum(void **state)
{
    (void)state;
    image im;
    valid_image(&im);
    im.b[im.n - 8] ^= 0x01; /* one bit of the last data value */
    expect_reject(im.b, im.n, "bad checksum");
    valid_image(&im);
    im.b[im.n - 1] ^= 0x80; /* the checksum itself */
    expect_reject(im.b, im.n, "bad checksum");
}

static void test_fixture_rejects_trailing_bytes(void **state)
{
    (void)state;
    image im;
    valid_image(&im);
    im.n -= 4;
    put_u32(&im, 0);
    put_crc(&im);
    expect_reject(im.b, im.n, "unexpected bytes after the last tensor");
}

/* One tensor with a given header, in an otherwise valid image. */
static void one_tensor(image *im, const char *params, const char *name, int role, int dtype,
                       int rank, float tol, float value)
{
    const uint32_t dims[5] = {1, 1, 1, 1, 1};
    put_header(im, "attention", params, 1);
    put_tensor(im, name, role, dtype, rank, dims, tol, &value);
    put_crc(im);
}

static void test_fixture_rejects_bad_fields(void **state)
{
    (void)state;
    image im;
    one_tensor(&im, "", "x", 0, 0, 5, 0.0f, 1.0f);
    expect_reject(im.b, im.n, "rank 5 exceeds 4");
    one_tensor(&im, "", "x", 2, 0, 1, 0.0f, 1.0f);
    expect_reject(im.b, im.n, "unknown role 2");
    one_tensor(&im, "", "x", 0, 3, 1, 0.0f, 1.0f);
    expect_reject(im.b, im.n, "unknown dtype 3");
    one_tensor(&im, "", "x", 1, 0, 1, 0.0f, 1.0f);
    expect_reject(im.b, im.n, "tolerance 0 is not in (0, 1)");
    one_tensor(&im, "", "x", 0, 0, 1, 0.5f, 1.0f);
    expect_reject(im.b, im.n, "tolerance must be 0 for an input");
    one_tensor(&im, "", "x", 0, 0, 1, 0.0f, NAN);
    expect_reject(im.b, im.n, "element 0 is not finite");
    one_tensor(&im, "", "x-y", 0, 0, 1, 0.0f, 1.0f);
    expect_reject(im.b, im.n, "outside [A-Za-z0-9_.]");
    one_tensor(&im, "a=1\na=2\n", "x", 0, 0, 1, 0.0f, 1.0f);
    expect_reject(im.b, im.n, "parameter 'a' is given twice");
    one_tensor(&im, "novalue\n", "x", 0, 0, 1, 0.0f, 1.0f);
    expect_reject(im.b, im.n, "has no '='");
    one_tensor(&im, "a=1", "x", 0, 0, 1, 0.0f, 1.0f);
    expect_reject(im.b, im.n, "does not end with a newline");
    const float v = 1.0f;
    const uint32_t dims[1] = {1}, zero[1] = {0};
    put_header(&im, "attention", "", 2);
    put_tensor(&im, "x", 0, 0, 1, dims, 0.0f, &v);
    put_tensor(&im, "x", 0, 0, 1, dims, 0.0f, &v);
    put_crc(&im);
    expect_reject(im.b, im.n, "tensor 'x' is given twice");
    put_header(&im, "attention", "", 1);
    put_tensor(&im, "x", 0, 0, 1, zero, 0.0f, &v);
    put_crc(&im);
    expect_reject(im.b, im.n, "gives no elements");
    put_header(&im, "attention", "", 0);
    put_crc(&im);
    expect_reject(im.b, im.n, "tensor count 0");
}

static void test_fixture_load_missing_file(void **state)
{
    (void)state;
    model_fixture fx;
    ss_err err = {0};
    assert_int_not_equal(model_fixture_load(&fx, "/nonexistent/fixture.bin", &err), SS_OK);
    printf("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "/nonexistent/fixture.bin"));
}

/* ---- tests: the committed reference fixtures ----------------------------------------- */

static void test_fixture_reference_all_pass(void **state)
{
    (void)state;
    char *names[256];
    const size_t n = list_fixtures(names, 256);
    int kinds[4] = {0, 0, 0, 0}, failed = 0;
    size_t exact_rows = 0;
    printf("  %zu fixtures in %s\n", n, FIXTURE_DIR);
    assert_true(n >= 10);
    for (size_t i = 0; i < n; i++) {
        model_fixture fx;
        model_fixture_report rep;
        ss_err err = {0};
        if (model_fixture_load(&fx, names[i], &err) != SS_OK ||
            model_fixture_run(&rep, &fx, &err) != SS_OK)
            fail_msg("%s", err.msg);
        printf("  %s (%s): %s\n", strrchr(names[i], '/') + 1, fx.kind,
               rep.pass ? "pass" : "FAIL");
        for (size_t r = 0; r < rep.nrows; r++) {
            print_row(&rep.rows[r]);
            exact_rows += rep.rows[r].dtype == MODEL_FIXTURE_I32;
        }
        kinds[0] += strcmp(fx.kind, "switch_layer") == 0;
        kinds[1] += strcmp(fx.kind, "attention") == 0;
        kinds[2] += strcmp(fx.kind, "optimizer") == 0;
        kinds[3] += strcmp(fx.kind, "t5_model") == 0;
        failed += !rep.pass;
        model_fixture_report_free(&rep);
        model_fixture_free(&fx);
        free(names[i]);
    }
    assert_int_equal(failed, 0);
    assert_true(kinds[0] >= 4 && kinds[1] >= 3 && kinds[2] >= 2 && kinds[3] >= 1);
    /* expert, slot, capacity of every Switch fixture; expert_choice of every model */
    assert_true(exact_rows >= 3 * (size_t)kinds[0] + (size_t)kinds[3]);
}

/* Removes tensor `name` from a loaded fixture. */
static void drop_tensor(model_fixture *fx, const char *name)
{
    for (size_t i = 0; i < fx->ntensors; i++)
        if (strcmp(fx->tensors[i].name, name) == 0) {
            free(fx->tensors[i].f32);
            free(fx->tensors[i].i32);
            memmove(&fx->tensors[i], &fx->tensors[i + 1],
                    (fx->ntensors - i - 1) * sizeof fx->tensors[0]);
            fx->ntensors--;
            return;
        }
    fail_msg("no tensor %s", name);
}

static model_fixture_tensor *tensor(model_fixture *fx, const char *name)
{
    model_fixture_tensor *t = (model_fixture_tensor *)model_fixture_find(fx, name);
    assert_non_null(t);
    return t;
}

/* Runs fx and expects SS_ERR_DATA with `needle` in the message. */
static void expect_run_error(model_fixture *fx, const char *needle)
{
    model_fixture_report rep;
    ss_err err = {0};
    ss_status st = model_fixture_run(&rep, fx, &err);
    printf("  %s\n", err.msg);
    assert_int_not_equal(st, SS_OK);
    assert_non_null(strstr(err.msg, needle));
    assert_null(rep.rows);
    model_fixture_free(fx);
}

static void test_fixture_run_rejects_unknown_kind(void **state)
{
    (void)state;
    model_fixture fx;
    load(&fx, SWITCH_FIXTURE);
    snprintf(fx.kind, sizeof fx.kind, "t5_model_v9");
    expect_run_error(&fx, "unknown kind 't5_model_v9'");
}

static void test_fixture_run_rejects_missing_tensor(void **state)
{
    (void)state;
    model_fixture fx;
    load(&fx, SWITCH_FIXTURE);
    drop_tensor(&fx, "wr");
    expect_run_error(&fx, "missing input tensor 'wr'");
    load(&fx, FIXTURE_DIR "/attn_cross_fp32.bin");
    drop_tensor(&fx, "xkv");
    expect_run_error(&fx, "missing input tensor 'xkv'");
    load(&fx, T5_FIXTURE);
    drop_tensor(&fx, "targets");
    expect_run_error(&fx, "missing input tensor 'targets'");
}

static void test_fixture_run_rejects_bad_params(void **state)
{
    (void)state;
    model_fixture fx;
    load(&fx, SWITCH_FIXTURE);
    for (size_t i = 0; i < fx.nparams; i++)
        if (strcmp(fx.params[i].key, "top_k") == 0)
            snprintf(fx.params[i].key, sizeof fx.params[i].key, "topk");
    expect_run_error(&fx, "missing parameter 'top_k'");
    load(&fx, SWITCH_FIXTURE);
    for (size_t i = 0; i < fx.nparams; i++)
        if (strcmp(fx.params[i].key, "router_dtype") == 0)
            snprintf(fx.params[i].value, sizeof fx.params[i].value, "fp16");
    expect_run_error(&fx, "router_dtype=fp16 is not one of fp32|bf16");
    load(&fx, FIXTURE_DIR "/opt_adamw.bin");
    for (size_t i = 0; i < fx.nparams; i++)
        if (strcmp(fx.params[i].key, "tensors") == 0)
            snprintf(fx.params[i].value, sizeof fx.params[i].value, "w:1:12");
    expect_run_error(&fx, "is not name:count:rows:cols");
}

static void test_fixture_run_rejects_misshapen_input(void **state)
{
    (void)state;
    model_fixture fx;
    load(&fx, SWITCH_FIXTURE);
    tensor(&fx, "wo")->dims[1] += 1;
    expect_run_error(&fx, "tensor 'wo' must be an f32 input of shape");
    load(&fx, SWITCH_FIXTURE);
    tensor(&fx, "x")->role = MODEL_FIXTURE_OUTPUT;
    expect_run_error(&fx, "tensor 'x' must be an f32 input");
}

static void test_fixture_run_rejects_unknown_output(void **state)
{
    (void)state;
    model_fixture fx;
    load(&fx, SWITCH_FIXTURE);
    snprintf(tensor(&fx, "gate")->name, sizeof fx.tensors[0].name, "gates");
    expect_run_error(&fx, "output 'gates' is not produced by this kind");
    /* a parameter tensor the model does not have (a layout mismatch) */
    load(&fx, T5_FIXTURE);
    snprintf(tensor(&fx, "grad.shared")->name, sizeof fx.tensors[0].name, "grad.lm_head");
    expect_run_error(&fx, "output 'grad.lm_head' is not produced");
    load(&fx, T5_FIXTURE);
    tensor(&fx, "grad.shared")->count -= 1;
    expect_run_error(&fx, "output 'grad.shared' is f32 with 255 elements; the C code produces "
                          "f32 with 256");
}

/* A wrong expected value fails exactly its row, with the right error figures. */
static void test_fixture_run_detects_perturbation(void **state)
{
    (void)state;
    model_fixture fx;
    model_fixture_report rep;
    ss_err err = {0};
    load(&fx, SWITCH_FIXTURE);
    model_fixture_tensor *out = tensor(&fx, "out");
    float max_ref = 0.0f;
    for (size_t i = 0; i < out->count; i++)
        max_ref = fmaxf(max_ref, fabsf(out->f32[i]));
    out->f32[3] += 1e-3f * max_ref; /* 100 x the tolerance of 1e-5 */
    model_fixture_tensor *dwr = tensor(&fx, "dwr");
    dwr->f32[0] *= 1.0f + 1e-7f; /* well inside 2e-5: still passes */
    model_fixture_tensor *ex = tensor(&fx, "expert");
    ex->i32[5] = (ex->i32[5] + 1) % 4; /* another expert for token 5 */
    assert_int_equal(model_fixture_run(&rep, &fx, &err), SS_OK);
    for (size_t i = 0; i < rep.nrows; i++)
        print_row(&rep.rows[i]);
    assert_false(rep.pass);
    const model_fixture_row *r = find_row(&rep, "out");
    assert_false(r->pass);
    assert_true(fabs(r->max_rel_err - 1e-3) < 1e-5);
    assert_true(find_row(&rep, "dwr")->pass);
    r = find_row(&rep, "expert");
    assert_false(r->pass);
    assert_int_equal(r->mismatches, 1);
    size_t failing = 0;
    for (size_t i = 0; i < rep.nrows; i++)
        failing += !rep.rows[i].pass;
    assert_int_equal(failing, 2);
    model_fixture_report_free(&rep);
    model_fixture_free(&fx);
}

/* ---- tests: the command -------------------------------------------------------------- */

static char scratch[64];

/* Runs "$SWITCHSIM check-fixture args" from the source root into *r (freed by the caller with
 * cli_child_free); prints the command, its exit status and stderr, and returns the status. */
static int run_cli(cli_child_result *r, const char *args)
{
    cli_child_run(r, "check-fixture %s", args);
    printf("  $ switchsim check-fixture %s -> %d\n%s", args, r->status, r->err);
    return r->status;
}

static void test_fixture_cli_exit_status(void **state)
{
    (void)state;
    cli_child_result r;
    char args[512], bad[128];
    assert_int_equal(run_cli(&r, "--format csv " SWITCH_FIXTURE), 0);
    assert_non_null(strstr(r.out, "fixture,kind,tensor,dtype,shape,max_abs_err,max_rel_err"));
    assert_non_null(strstr(r.out, "switch_layer,expert,i32,\"[20,1]\",0,0,-,0,exact,true"));
    cli_child_free(&r);
    /* a corrupt copy: one flipped byte */
    image im;
    valid_image(&im);
    im.b[20] ^= 0x10;
    snprintf(bad, sizeof bad, "%s/bad.bin", scratch);
    ss_err err = {0};
    assert_int_equal(file_write_atomic(bad, im.b, im.n, &err), SS_OK);
    snprintf(args, sizeof args, "%s %s", SWITCH_FIXTURE, bad);
    assert_int_equal(run_cli(&r, args), 1);
    assert_non_null(strstr(r.err, "bad checksum"));
    assert_non_null(strstr(r.out, "errors           1"));
    cli_child_free(&r);
    assert_int_equal(run_cli(&r, ""), 2);
    cli_child_free(&r);
    assert_int_equal(run_cli(&r, "--format yaml " SWITCH_FIXTURE), 2);
    cli_child_free(&r);
    unlink(bad);
}

static int setup(void **state)
{
    (void)state;
    return test_scratch_make(scratch, sizeof scratch, "switchsim-test-fixture");
}

static int teardown(void **state)
{
    (void)state;
    return test_scratch_remove(scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_crc32_known_values),
        cmocka_unit_test(test_fixture_parse_valid_image),
        cmocka_unit_test(test_fixture_rejects_truncated),
        cmocka_unit_test(test_fixture_rejects_bad_magic_and_version),
        cmocka_unit_test(test_fixture_rejects_bad_checksum),
        cmocka_unit_test(test_fixture_rejects_trailing_bytes),
        cmocka_unit_test(test_fixture_rejects_bad_fields),
        cmocka_unit_test(test_fixture_load_missing_file),
        cmocka_unit_test(test_fixture_reference_all_pass),
        cmocka_unit_test(test_fixture_run_rejects_unknown_kind),
        cmocka_unit_test(test_fixture_run_rejects_missing_tensor),
        cmocka_unit_test(test_fixture_run_rejects_bad_params),
        cmocka_unit_test(test_fixture_run_rejects_misshapen_input),
        cmocka_unit_test(test_fixture_run_rejects_unknown_output),
        cmocka_unit_test(test_fixture_run_detects_perturbation),
        cmocka_unit_test(test_fixture_cli_exit_status),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
