/* This file implements what the benchmarks share (bench_util.h): the monotonic clock and
 * running a measured child process.
 *
 * Invariants: the child runs in a process group of its own, so that a timeout also kills what
 * it started (SystemC simulation children, MPI ranks); its stdout file is unlinked before the
 * fork, so nothing is left behind whatever happens.
 */
#define _DEFAULT_SOURCE /* wait4 */
#include "bench_util.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reaps pid, killing its group once timeout_s (> 0) has passed since t0; the pid reaped (or
 * -1) with its wait status and resource usage. */
static pid_t reap(pid_t pid, double t0, double timeout_s, int *st, struct rusage *ru)
{
    if (timeout_s <= 0)
        return wait4(pid, st, 0, ru);
    pid_t got;
    while ((got = wait4(pid, st, WNOHANG, ru)) == 0) {
        if (bench_now_s() - t0 > timeout_s)
            kill(-pid, SIGKILL);
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    return got;
}

/* The whole of fd (from its start) as a NUL-terminated malloc'd string, or NULL. */
static char *read_whole(int fd)
{
    const off_t size = lseek(fd, 0, SEEK_END);
    char *s = size >= 0 ? malloc((size_t)size + 1) : NULL;
    ssize_t n = 0;
    if (s && lseek(fd, 0, SEEK_SET) == 0)
        for (ssize_t k; n < size && (k = read(fd, s + n, (size_t)(size - n))) > 0;)
            n += k;
    if (s)
        s[n] = '\0';
    return s;
}

static double seconds(struct timeval tv)
{
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

int bench_child_run(char *const argv[], double timeout_s, bench_child *r)
{
    char path[] = "/tmp/bench_child_XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    unlink(path);
    const double t0 = bench_now_s();
    const pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0); /* its own group: a timeout kills its children too */
        dup2(fd, STDOUT_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    struct rusage ru;
    int st = 0;
    const pid_t got = reap(pid, t0, timeout_s, &st, &ru);
    r->wall_s = bench_now_s() - t0;
    r->maxrss_mib = got == pid ? (double)ru.ru_maxrss / 1024.0 : 0;
    r->cpu_s = got == pid ? seconds(ru.ru_utime) + seconds(ru.ru_stime) : 0;
    r->status = got == pid && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r->out = read_whole(fd);
    close(fd);
    return 0;
}
