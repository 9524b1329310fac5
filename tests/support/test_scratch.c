/* This file implements the scratch directories of the tests (test_scratch.h): mkdtemp under
 * /tmp to make one, file_remove_tree to remove it.
 *
 * Invariants: no assertion and no exit; a failed make leaves buf empty, so a teardown that
 * removes it anyway touches nothing.
 */
#include "test_scratch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"

int test_scratch_make(char *buf, size_t cap, const char *prefix)
{
    const int n = snprintf(buf, cap, "/tmp/%s-XXXXXX", prefix);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "test_scratch: /tmp/%s-XXXXXX does not fit in %zu bytes\n", prefix,
                cap);
        if (cap > 0)
            buf[0] = '\0';
        return -1;
    }
    if (!mkdtemp(buf)) {
        fprintf(stderr, "test_scratch: mkdtemp %s: %s\n", buf, strerror(errno));
        buf[0] = '\0';
        return -1;
    }
    return 0;
}

int test_scratch_remove(const char *dir)
{
    if (!dir || !*dir)
        return 0;
    const char *keep = getenv("SWITCHSIM_KEEP_TMP");
    if (keep && *keep) {
        fprintf(stderr, "test_scratch: kept %s (SWITCHSIM_KEEP_TMP is set)\n", dir);
        return 0;
    }
    if (file_remove_tree(dir) != 0) {
        fprintf(stderr, "test_scratch: could not remove %s\n", dir);
        return -1;
    }
    return 0;
}
