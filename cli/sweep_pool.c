/* This file implements the worker pool of `switchsim sweep`: one child process per point,
 * `switchsim estimate --run POINT.yaml --format json ...` (the same binary, fork + exec), at
 * most N at a time, each with a wall-clock limit; stdout goes to a temporary file that becomes
 * the point's .json when the child exits 0 with a JSON object, anything else (a non-zero exit,
 * a signal, the time limit, output that is not JSON) becomes the point's .error: a summary
 * line and then the child's stderr. Progress goes to stderr: a bar redrawn in place on a
 * terminal, else one line per finished point.
 *
 * States of a job:
 *
 *   PENDING --(.json exists and parses: sweep_pool_resume)--> RESUMED
 *      |
 *      +--fork/exec--> running --exit 0, JSON--> OK     (.json written, old .error removed)
 *                         |
 *                         +--exit != 0 / signal / timeout / not JSON--> FAILED (.error written)
 *
 * Invariants: a point's .json only ever appears complete (rename of a finished temporary);
 * the pool never leaves a child behind (a timed-out child is killed and reaped); the children
 * inherit no blocked signals and read /dev/null.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/sweep.h"
#include "common/fileio.h"

enum { MAX_WORKERS = 1024, ERR_TEXT_MAX = 1 << 20 };

typedef struct {
    pid_t pid;         /* 0: slot free */
    sweep_job *job;
    double start;      /* monotonic seconds */
    int timed_out;
    char out_tmp[4200], err_tmp[4200];
} slot;

typedef struct {
    size_t total, done, failed, resumed, running;
    double start;
} progress;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int json_file_ok(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    int ok = json_is_object(j);
    json_decref(j);
    return ok;
}

size_t sweep_pool_resume(sweep_job *jobs, size_t njobs)
{
    size_t n = 0;
    for (size_t i = 0; i < njobs; i++)
        if (jobs[i].state == SWEEP_PENDING && access(jobs[i].json, F_OK) == 0 &&
            json_file_ok(jobs[i].json)) {
            jobs[i].state = SWEEP_RESUMED;
            n++;
        }
    return n;
}

/* ---- one child ---------------------------------------------------------------------------- */

/* In the child: redirect, unblock, exec; never returns. */
static void exec_worker(const sweep_pool_cfg *cfg, const sweep_job *job, const slot *sl)
{
    int in = open("/dev/null", O_RDONLY);
    int out = open(sl->out_tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int er = open(sl->err_tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || er < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(er, 2) < 0)
        _exit(126);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* run in OUT/points with the config's bare name, so that messages do not depend on
     * where OUT is (the merged results of one sweep are the same wherever they are made) */
    char dir[4096];
    const char *base = strrchr(job->yaml, '/');
    snprintf(dir, sizeof dir, "%.*s", base ? (int)(base - job->yaml) : 1, base ? job->yaml : ".");
    if (chdir(dir) != 0)
        _exit(126);
    const char *argv[48];
    int n = 0;
    argv[n++] = "switchsim";
    argv[n++] = "estimate";
    argv[n++] = "--run";
    argv[n++] = base ? base + 1 : job->yaml;
    argv[n++] = "--format";
    argv[n++] = "json";
    for (int i = 0; cfg->args[i] && n < 47; i++)
        argv[n++] = cfg->args[i];
    argv[n] = NULL;
    execv(cfg->exe, (char *const *)argv);
    fprintf(stderr, "cannot run %s: %s\n", cfg->exe, strerror(errno));
    _exit(127);
}

static ss_status start_job(slot *sl, sweep_job *job, const sweep_pool_cfg *cfg, ss_err *err)
{
    snprintf(sl->out_tmp, sizeof sl->out_tmp, "%s.tmp.out", job->json);
    snprintf(sl->err_tmp, sizeof sl->err_tmp, "%s.tmp.err", job->json);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return ss_err_set(err, SS_ERR_IO, "cannot start a worker: fork: %s", strerror(errno));
    if (pid == 0)
        exec_worker(cfg, job, sl);
    sl->pid = pid;
    sl->job = job;
    sl->start = now_s();
    sl->timed_out = 0;
    return SS_OK;
}

/* The summary line of a finished child. */
static void describe_exit(char *buf, size_t n, int status, const slot *sl, double timeout_s)
{
    if (sl->timed_out)
        snprintf(buf, n, "timed out after %g s (worker killed)", timeout_s);
    else if (WIFSIGNALED(status))
        snprintf(buf, n, "worker killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        snprintf(buf, n, "estimate exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, n, "estimate printed no JSON object");
}

/* Writes the .error file: summary, then the worker's stderr. */
static ss_status write_error(const sweep_job *job, const char *summary, const char *err_tmp,
                             ss_err *err)
{
    char *text = NULL;
    size_t len = 0;
    ss_err ignored;
    if (file_read_all(err_tmp, ERR_TEXT_MAX, &text, &len, &ignored) != SS_OK)
        text = NULL;
    file_atomic a;
    ss_status st = file_atomic_open(&a, job->error, err);
    if (st != SS_OK) {
        free(text);
        return st;
    }
    fprintf(a.f, "%s\n%s", summary, text ? text : "");
    free(text);
    return file_atomic_commit(&a, err);
}

/* Records the outcome of a reaped child and frees its slot. */
static ss_status finish_job(slot *sl, int status, const sweep_pool_cfg *cfg, ss_err *err)
{
    sweep_job *job = sl->job;
    job->seconds = now_s() - sl->start;
    ss_status st = SS_OK;
    int ok = !sl->timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
             json_file_ok(sl->out_tmp);
    if (ok) {
        if (rename(sl->out_tmp, job->json) != 0)
            st = ss_err_set(err, SS_ERR_IO, "cannot write %s: %s", job->json, strerror(errno));
        unlink(job->error);
        job->state = st == SS_OK ? SWEEP_OK : SWEEP_FAILED;
    } else {
        char summary[256];
        describe_exit(summary, sizeof summary, status, sl, cfg->timeout_s);
        st = write_error(job, summary, sl->err_tmp, err);
        job->state = SWEEP_FAILED;
    }
    unlink(sl->out_tmp);
    unlink(sl->err_tmp);
    sl->pid = 0;
    sl->job = NULL;
    return st;
}

/* ---- progress ----------------------------------------------------------------------------- */

static void show_bar(const progress *p, const sweep_pool_cfg *cfg)
{
    enum { WIDTH = 30 };
    size_t fin = p->done + p->resumed;
    int fill = p->total ? (int)(WIDTH * fin / p->total) : WIDTH;
    double el = now_s() - p->start;
    char eta[32] = "";
    if (p->done > 0 && fin < p->total)
        snprintf(eta, sizeof eta, ", ~%.0fs left",
                 el / (double)p->done * (double)(p->total - fin));
    fprintf(stderr, "\r%s[%.*s%*s] %zu/%zu  %zu failed  %zu resumed  %zu running  %.0fs%s   ",
            cfg->tag, fill, "##############################", WIDTH - fill, "", fin, p->total,
            p->failed, p->resumed, p->running, el, eta);
    fflush(stderr);
}

static void show_line(const progress *p, const sweep_pool_cfg *cfg, const sweep_job *job)
{
    char *why = job->state == SWEEP_FAILED ? sweep_job_error_text(job) : NULL;
    fprintf(stderr, "switchsim: sweep: %s[%zu/%zu] %s %s %.2fs%s%s\n", cfg->tag,
            p->done + p->resumed, p->total, job->id, job->state == SWEEP_OK ? "ok" : "FAILED",
            job->seconds, why ? ": " : "", why ? why : "");
    free(why);
}

/* ---- the pool ------------------------------------------------------------------------------ */

/* Reaps every finished child (and kills the overdue ones); returns how many finished. */
static ss_status reap(slot *slots, int n, progress *p, const sweep_pool_cfg *cfg, size_t *fin,
                      ss_err *err)
{
    *fin = 0;
    double t = now_s();
    for (int i = 0; i < n; i++) {
        if (!slots[i].pid)
            continue;
        int status;
        pid_t r = waitpid(slots[i].pid, &status, WNOHANG);
        if (r == 0) {
            if (cfg->timeout_s > 0 && !slots[i].timed_out &&
                t - slots[i].start > cfg->timeout_s) {
                kill(slots[i].pid, SIGKILL);
                slots[i].timed_out = 1;
            }
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            status = 127 << 8; /* cannot happen for our own child; recorded as a failure */
        sweep_job *job = slots[i].job;
        ss_status st = finish_job(&slots[i], status, cfg, err);
        p->running--;
        p->done++;
        if (job->state == SWEEP_FAILED)
            p->failed++;
        (*fin)++;
        if (!cfg->tty)
            show_line(p, cfg, job);
        if (st != SS_OK)
            return st;
    }
    return SS_OK;
}

/* Kills and reaps every running child (after an error). */
static void stop_all(slot *slots, int n)
{
    for (int i = 0; i < n; i++)
        if (slots[i].pid) {
            kill(slots[i].pid, SIGKILL);
            waitpid(slots[i].pid, NULL, 0);
            unlink(slots[i].out_tmp);
            unlink(slots[i].err_tmp);
            slots[i].pid = 0;
        }
}

ss_status sweep_pool_run(sweep_job *jobs, size_t njobs, const sweep_pool_cfg *cfg, ss_err *err)
{
    int n = cfg->workers < 1 ? 1 : cfg->workers > MAX_WORKERS ? MAX_WORKERS : cfg->workers;
    slot *slots = calloc((size_t)n, sizeof *slots);
    if (!slots)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory");
    progress p = {.total = njobs, .start = now_s()};
    for (size_t i = 0; i < njobs; i++)
        p.resumed += jobs[i].state == SWEEP_RESUMED;
    size_t next = 0;
    ss_status st = SS_OK;
    double last_draw = 0;
    int dirty = 1;
    for (;;) {
        while (next < njobs && jobs[next].state != SWEEP_PENDING)
            next++;
        int free_slot = -1;
        for (int i = 0; i < n && free_slot < 0; i++)
            if (!slots[i].pid)
                free_slot = i;
        if (next < njobs && free_slot >= 0) {
            if ((st = start_job(&slots[free_slot], &jobs[next], cfg, err)) != SS_OK)
                break;
            p.running++;
            next++;
            continue;
        }
        if (p.running == 0)
            break;
        if (cfg->tty && (dirty || now_s() - last_draw > 0.5)) { /* after refilling the slots */
            show_bar(&p, cfg);
            last_draw = now_s();
        }
        size_t fin;
        if ((st = reap(slots, n, &p, cfg, &fin, err)) != SS_OK)
            break;
        dirty = fin > 0;
        if (!fin)
            nanosleep(&(struct timespec){0, 2000000}, NULL); /* 2 ms */
    }
    stop_all(slots, n);
    if (cfg->tty) {
        show_bar(&p, cfg);
        fputc('\n', stderr);
    }
    free(slots);
    return st;
}

char *sweep_job_error_text(const sweep_job *job)
{
    char *text = NULL;
    size_t len = 0;
    ss_err e;
    if (file_read_all(job->error, ERR_TEXT_MAX, &text, &len, &e) != SS_OK)
        return strdup("no .error file was written");
    /* join lines with "; ", dropping empty ones and the trailing newline */
    char *out = malloc(len * 2 + 1);
    if (!out)
        return text;
    size_t o = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!*line)
            continue;
        if (o)
            o += (size_t)sprintf(out + o, "; ");
        o += (size_t)sprintf(out + o, "%s", line);
    }
    out[o] = '\0';
    free(text);
    return out;
}
