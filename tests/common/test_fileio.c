/* This file implements the tests of common/fileio and common/status: atomic writes keep the
 * old content until commit and leave no temporary behind, bounded reads, error messages, and
 * overflow-checked sizes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fileio.h"
#include "common/status.h"

static char dir[256];

static int make_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/switchsim-fileio-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *read_text(const char *path)
{
    char *data;
    size_t len;
    ss_err err;
    assert_int_equal(file_read_all(path, 1 << 20, &data, &len, &err), SS_OK);
    return data;
}

static void test_fileio_atomic_write_replaces(void **state)
{
    (void)state;
    char path[300];
    ss_err err;
    snprintf(path, sizeof path, "%s/a.txt", dir);
    assert_int_equal(file_write_atomic(path, "first", 5, &err), SS_OK);
    assert_int_equal(file_write_atomic(path, "second", 6, &err), SS_OK);
    char *t = read_text(path);
    assert_string_equal(t, "second");
    free(t);
}

static void test_fileio_abort_keeps_old_content(void **state)
{
    (void)state;
    char path[300];
    ss_err err;
    snprintf(path, sizeof path, "%s/b.txt", dir);
    assert_int_equal(file_write_atomic(path, "old", 3, &err), SS_OK);
    file_atomic a;
    assert_int_equal(file_atomic_open(&a, path, &err), SS_OK);
    fputs("new but interrupted", a.f);
    /* Before commit, the destination still has the old content. */
    char *t = read_text(path);
    assert_string_equal(t, "old");
    free(t);
    char tmp[sizeof a.tmp];
    strcpy(tmp, a.tmp);
    file_atomic_abort(&a);
    assert_int_not_equal(access(tmp, F_OK), 0);
    t = read_text(path);
    assert_string_equal(t, "old");
    free(t);
}

static void test_fileio_commit_leaves_no_temporary(void **state)
{
    (void)state;
    char path[300];
    ss_err err;
    snprintf(path, sizeof path, "%s/c.txt", dir);
    file_atomic a;
    assert_int_equal(file_atomic_open(&a, path, &err), SS_OK);
    fputs("done", a.f);
    char tmp[sizeof a.tmp];
    strcpy(tmp, a.tmp);
    assert_int_equal(file_atomic_commit(&a, &err), SS_OK);
    assert_int_not_equal(access(tmp, F_OK), 0);
    char *t = read_text(path);
    assert_string_equal(t, "done");
    free(t);
}

static void test_fileio_errors_name_the_path(void **state)
{
    (void)state;
    ss_err err;
    char *data;
    size_t len;
    assert_int_equal(file_write_atomic("/nonexistent-dir/x.json", "x", 1, &err), SS_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.json"));
    assert_int_equal(file_read_all("/nonexistent-file", 100, &data, &len, &err), SS_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent-file"));
    assert_null(data);
}

static void test_fileio_read_limit(void **state)
{
    (void)state;
    char path[300];
    ss_err err;
    snprintf(path, sizeof path, "%s/big.txt", dir);
    char buf[10000];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(file_write_atomic(path, buf, sizeof buf, &err), SS_OK);
    char *data;
    size_t len;
    assert_int_equal(file_read_all(path, 9999, &data, &len, &err), SS_ERR_IO);
    assert_non_null(strstr(err.msg, "limit"));
    assert_int_equal(file_read_all(path, 10000, &data, &len, &err), SS_OK);
    assert_int_equal(len, 10000);
    assert_int_equal(data[len], '\0');
    free(data);
}

static void test_fileio_remove_tree(void **state)
{
    (void)state;
    char top[300], sub[320], file[340];
    ss_err err;
    snprintf(top, sizeof top, "%s/tree", dir);
    snprintf(sub, sizeof sub, "%s/sub", top);
    snprintf(file, sizeof file, "%s/leaf.txt", sub);
    assert_int_equal(mkdir(top, 0700), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(file_write_atomic(file, "x", 1, &err), SS_OK);
    assert_int_equal(file_remove_tree(top), 0);
    assert_int_not_equal(access(top, F_OK), 0);
    assert_int_equal(file_remove_tree(top), 0); /* already gone */
    snprintf(file, sizeof file, "%s/single.txt", dir);
    assert_int_equal(file_write_atomic(file, "y", 1, &err), SS_OK);
    assert_int_equal(file_remove_tree(file), 0);
    assert_int_not_equal(access(file, F_OK), 0);
}

static void test_status_prefix_and_truncation(void **state)
{
    (void)state;
    ss_err err;
    assert_int_equal(ss_err_set(&err, SS_ERR_CONFIG, "field '%s' bad", "x"), SS_ERR_CONFIG);
    ss_err_prefix(&err, "%s:%d", "f.yaml", 3);
    assert_string_equal(err.msg, "f.yaml:3: field 'x' bad");
    assert_int_equal(err.code, SS_ERR_CONFIG);
    char longs[3000];
    memset(longs, 'y', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    ss_err_set(&err, SS_ERR_IO, "%s", longs);
    ss_err_prefix(&err, "p");
    assert_int_equal(strlen(err.msg), sizeof err.msg - 1);
    assert_memory_equal(err.msg, "p: yyy", 6);
    assert_int_equal(ss_err_set(NULL, SS_ERR_IO, "ignored"), SS_ERR_IO);
}

static void test_status_mul_size_overflow(void **state)
{
    (void)state;
    size_t out = 7;
    assert_int_equal(ss_mul_size(SIZE_MAX / 2 + 1, 2, &out), -1);
    assert_int_equal(out, 7);
    assert_int_equal(ss_mul_size(123456, 1000, &out), 0);
    assert_int_equal(out, 123456000);
    assert_int_equal(ss_mul_size(0, SIZE_MAX, &out), 0);
    assert_int_equal(out, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fileio_atomic_write_replaces),
        cmocka_unit_test(test_fileio_abort_keeps_old_content),
        cmocka_unit_test(test_fileio_commit_leaves_no_temporary),
        cmocka_unit_test(test_fileio_errors_name_the_path),
        cmocka_unit_test(test_fileio_read_limit),
        cmocka_unit_test(test_fileio_remove_tree),
        cmocka_unit_test(test_status_prefix_and_truncation),
        cmocka_unit_test(test_status_mul_size_overflow),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
