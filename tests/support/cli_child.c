/* This file implements running the built switchsim binary as a child process for the tests
 * (cli_child.h): the child's stdout and stderr go to two unlinked temporary files, read back
 * whole into growable buffers once it has exited, so that neither pipe can fill and block it.
 *
 * Invariants: no assertion and no exit; out, err and args are always malloc'd strings after a
 * run (empty when nothing was captured), so callers may print them unconditionally.
 */
#include "cli_child.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *env_var(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "cli_child: %s is not set; run this test through `meson test`, which "
                        "sets it\n", name);
        return NULL;
    }
    return v;
}

const char *cli_child_source_root(void)
{
    return env_var("SWITCHSIM_SOURCE_ROOT");
}

const char *cli_child_binary(void)
{
    return env_var("SWITCHSIM");
}

int cli_child_enter_source_root(void)
{
    const char *root = cli_child_source_root();
    if (!root || !cli_child_binary())
        return -1;
    if (chdir(root) != 0) {
        fprintf(stderr, "cli_child: cannot enter %s: %s\n", root, strerror(errno));
        return -1;
    }
    return 0;
}

int cli_child_source_path(char *buf, size_t n, const char *rel)
{
    const char *root = cli_child_source_root();
    buf[0] = '\0';
    if (!root)
        return -1;
    const int len = snprintf(buf, n, "%s/%s", root, rel);
    if (len < 0 || (size_t)len >= n) {
        fprintf(stderr, "cli_child: path %s/%s is longer than %zu bytes\n", root, rel, n - 1);
        buf[0] = '\0';
        return -1;
    }
    return 0;
}

/* A malloc'd vsnprintf; NULL when out of memory. */
static char *format(const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    const int len = vsnprintf(NULL, 0, fmt, ap);
    char *s = len < 0 ? NULL : malloc((size_t)len + 1);
    if (s)
        vsnprintf(s, (size_t)len + 1, fmt, again);
    va_end(again);
    return s;
}

/* Reads all of fd from its start into a malloc'd NUL-terminated string; NULL on failure. */
static char *read_whole(int fd, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf || lseek(fd, 0, SEEK_SET) != 0) {
        free(buf);
        return NULL;
    }
    for (;;) {
        if (n + 1 == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
        const ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            free(buf);
            return NULL;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* An unlinked temporary file open for reading and writing, or -1. */
static int scratch_fd(void)
{
    char path[] = "/tmp/switchsim-cli-child-XXXXXX";
    const int fd = mkstemp(path);
    if (fd >= 0)
        unlink(path);
    return fd;
}

/* In the child: wires stdin/stdout/stderr, enters root and execs the shell; never returns. */
static void exec_child(const char *root, const char *cmd, int out_fd, int err_fd)
{
    const int in_fd = open("/dev/null", O_RDONLY);
    if (in_fd < 0 || dup2(in_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
        dup2(err_fd, STDERR_FILENO) < 0 || chdir(root) != 0)
        _exit(127);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
}

/* Runs cmd in root with the output files; returns the wait status, or -1 with r->why set. */
static int spawn_and_wait(cli_child_result *r, const char *root, const char *cmd, int out_fd,
                          int err_fd)
{
    fflush(NULL); /* the child must not inherit and re-flush the parent's buffers */
    const pid_t pid = fork();
    if (pid < 0) {
        snprintf(r->why, sizeof r->why, "fork failed: %s", strerror(errno));
        return -1;
    }
    if (pid == 0)
        exec_child(root, cmd, out_fd, err_fd);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            snprintf(r->why, sizeof r->why, "waitpid failed: %s", strerror(errno));
            return -1;
        }
    return st;
}

/* Runs "$SWITCHSIM args" and fills r; r->args is already set. */
static void run_args(cli_child_result *r)
{
    const char *root = cli_child_source_root(), *bin = cli_child_binary();
    if (!root || !bin) {
        snprintf(r->why, sizeof r->why, "SWITCHSIM_SOURCE_ROOT or SWITCHSIM is not set (run "
                                        "through meson test)");
        return;
    }
    char *cmd = malloc(strlen(bin) + strlen(r->args) + 16);
    const int out_fd = scratch_fd(), err_fd = scratch_fd();
    if (!cmd || out_fd < 0 || err_fd < 0)
        snprintf(r->why, sizeof r->why, "cannot set up the run: %s", strerror(errno));
    else {
        sprintf(cmd, "exec '%s' %s", bin, r->args);
        const int st = spawn_and_wait(r, root, cmd, out_fd, err_fd);
        if (st != -1 && WIFEXITED(st))
            r->status = WEXITSTATUS(st);
        else if (st != -1)
            snprintf(r->why, sizeof r->why, "switchsim %s did not exit normally", r->args);
        char *out = read_whole(out_fd, &r->out_len), *err = read_whole(err_fd, &r->err_len);
        if (out && err) {
            free(r->out);
            free(r->err);
            r->out = out;
            r->err = err;
        } else {
            free(out);
            free(err);
            snprintf(r->why, sizeof r->why, "cannot read back the output of switchsim %s",
                     r->args);
        }
    }
    free(cmd);
    if (out_fd >= 0)
        close(out_fd);
    if (err_fd >= 0)
        close(err_fd);
}

/* Resets r to an empty result for the formatted args; 0, or -1 when out of memory. */
static int start(cli_child_result *r, const char *fmt, va_list ap)
{
    memset(r, 0, sizeof *r);
    r->status = -1;
    r->args = format(fmt, ap);
    r->out = calloc(1, 1);
    r->err = calloc(1, 1);
    if (!r->args || !r->out || !r->err) {
        snprintf(r->why, sizeof r->why, "out of memory");
        return -1;
    }
    return 0;
}

int cli_child_vrun(cli_child_result *r, const char *fmt, va_list ap)
{
    if (start(r, fmt, ap) == 0)
        run_args(r);
    return r->status;
}

int cli_child_run(cli_child_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_child_vrun(r, fmt, ap);
    va_end(ap);
    return r->status;
}

int cli_child_rerun(cli_child_result *r, const char *fmt, ...)
{
    cli_child_free(r);
    va_list ap;
    va_start(ap, fmt);
    cli_child_vrun(r, fmt, ap);
    va_end(ap);
    return r->status;
}

static json_t *vjson(cli_child_result *r, const char *fmt, va_list ap)
{
    if (start(r, fmt, ap) != 0)
        return NULL;
    run_args(r);
    if (r->why[0])
        return NULL;
    if (r->status != 0) {
        snprintf(r->why, sizeof r->why, "switchsim %s: exit status %d, expected 0", r->args,
                 r->status);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loads(r->out, 0, &jerr);
    if (!doc)
        snprintf(r->why, sizeof r->why, "switchsim %s: stdout is not JSON: %s (line %d)",
                 r->args, jerr.text, jerr.line);
    return doc;
}

json_t *cli_child_json(cli_child_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *doc = vjson(r, fmt, ap);
    va_end(ap);
    return doc;
}

json_t *cli_child_json_shown(size_t max_out, const char *fmt, ...)
{
    cli_child_result r;
    va_list ap;
    va_start(ap, fmt);
    json_t *doc = vjson(&r, fmt, ap);
    va_end(ap);
    cli_child_print(&r, stdout, max_out);
    if (!doc)
        fprintf(stderr, "%s\n", r.why);
    cli_child_free(&r);
    return doc;
}

void cli_child_print(const cli_child_result *r, FILE *f, size_t max_out)
{
    fprintf(f, "$ switchsim %s\n  -> exit %d\n%.*s%s", r->args ? r->args : "", r->status,
            (int)(r->out_len < max_out ? r->out_len : max_out), r->out ? r->out : "",
            r->err ? r->err : "");
    if (r->why[0])
        fprintf(f, "  (%s)\n", r->why);
}

int cli_child_expect_status(const cli_child_result *r, int want)
{
    if (r->status == want)
        return 1;
    fprintf(stderr, "exit status %d, expected %d\n", r->status, want);
    cli_child_print(r, stderr, r->out_len);
    return 0;
}

int cli_child_expect_text(const char *text, const char *needle)
{
    if (strstr(text, needle))
        return 1;
    fprintf(stderr, "expected '%s' in:\n%s\n", needle, text);
    return 0;
}

void cli_child_free(cli_child_result *r)
{
    free(r->args);
    free(r->out);
    free(r->err);
    r->args = r->out = r->err = NULL;
    r->out_len = r->err_len = 0;
}
