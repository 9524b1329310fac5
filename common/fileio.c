/* This file implements fileio.h: atomic writes through a temporary file and rename(2), and
 * bounded whole-file reads.
 *
 * Invariants: the temporary lives in the destination's directory (rename is atomic only
 * within one file system) and is named "<path>.tmp.<pid>"; errors name the path and errno.
 */
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

ss_status file_atomic_open(file_atomic *a, const char *path, ss_err *err)
{
    memset(a, 0, sizeof *a);
    if (strlen(path) >= sizeof a->path)
        return ss_err_set(err, SS_ERR_IO, "%.64s...: path too long", path);
    strcpy(a->path, path);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f)
        return ss_err_set(err, SS_ERR_IO, "%s: cannot create temporary file %s: %s", path,
                          a->tmp, strerror(errno));
    return SS_OK;
}

ss_status file_atomic_commit(file_atomic *a, ss_err *err)
{
    SS_ASSERT(a->f);
    int bad = ferror(a->f) || fflush(a->f) != 0 || fsync(fileno(a->f)) != 0;
    int saved = errno;
    if (fclose(a->f) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    a->f = NULL;
    if (bad) {
        remove(a->tmp);
        return ss_err_set(err, SS_ERR_IO, "%s: write failed: %s", a->path, strerror(saved));
    }
    if (rename(a->tmp, a->path) != 0) {
        saved = errno;
        remove(a->tmp);
        return ss_err_set(err, SS_ERR_IO, "%s: cannot rename %s into place: %s", a->path,
                          a->tmp, strerror(saved));
    }
    return SS_OK;
}

void file_atomic_abort(file_atomic *a)
{
    if (a->f) {
        fclose(a->f);
        a->f = NULL;
        remove(a->tmp);
    }
}

ss_status file_write_atomic(const char *path, const void *data, size_t len, ss_err *err)
{
    file_atomic a;
    ss_status st = file_atomic_open(&a, path, err);
    if (st != SS_OK)
        return st;
    if (len && fwrite(data, 1, len, a.f) != len) {
        int saved = errno;
        file_atomic_abort(&a);
        return ss_err_set(err, SS_ERR_IO, "%s: write failed: %s", path, strerror(saved));
    }
    return file_atomic_commit(&a, err);
}

ss_status file_read_all(const char *path, size_t max_bytes, char **data, size_t *len,
                        ss_err *err)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ss_err_set(err, SS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            if (cap > max_bytes) {
                free(buf);
                fclose(f);
                return ss_err_set(err, SS_ERR_IO, "%s: larger than the limit of %zu bytes",
                                  path, max_bytes);
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (!buf) {
        fclose(f);
        return ss_err_set(err, SS_ERR_NOMEM, "%s: out of memory reading the file", path);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return ss_err_set(err, SS_ERR_IO, "%s: read error", path);
    }
    if (n > max_bytes) {
        free(buf);
        return ss_err_set(err, SS_ERR_IO, "%s: larger than the limit of %zu bytes", path,
                          max_bytes);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return SS_OK;
}

int file_remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return errno == ENOENT ? 0 : -1;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            char child[4096];
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) <
                    (int)sizeof child)
                    file_remove_tree(child);
            }
            closedir(d);
        }
        return rmdir(path) == 0 ? 0 : -1;
    }
    return remove(path) == 0 ? 0 : -1;
}
