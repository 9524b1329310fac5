/* This file declares switchsim's file helpers: whole-file reads with size limits, and atomic
 * writes (write to a temporary name in the same directory, flush, fsync, rename), so an
 * interrupted run never leaves a half-written checkpoint, result or report behind.
 *
 * Invariants: until file_atomic_commit succeeds, the destination path keeps its old content
 * (or stays absent); a failed or aborted write removes its temporary file.
 */
#ifndef SWITCHSIM_COMMON_FILEIO_H
#define SWITCHSIM_COMMON_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "common/status.h"

typedef struct {
    FILE *f;        /* write here */
    char path[4096];
    char tmp[4096 + 32];
} file_atomic;

/* Opens a temporary file next to path for writing. */
ss_status file_atomic_open(file_atomic *a, const char *path, ss_err *err);
/* Flushes, fsyncs and renames the temporary onto the destination. Closes in all cases. */
ss_status file_atomic_commit(file_atomic *a, ss_err *err);
/* Closes and removes the temporary; the destination is untouched. */
void file_atomic_abort(file_atomic *a);

/* Writes len bytes to path atomically. */
ss_status file_write_atomic(const char *path, const void *data, size_t len, ss_err *err);
/* Removes path: a file, or a directory with everything under it (symbolic links are removed,
 * not followed). Best effort: returns 0 when path no longer exists, -1 otherwise. */
int file_remove_tree(const char *path);

/* Reads the whole of path (at most max_bytes) into a NUL-terminated malloc'd buffer. */
ss_status file_read_all(const char *path, size_t max_bytes, char **data, size_t *len,
                        ss_err *err);

#endif
