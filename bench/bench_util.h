/* This file declares what the benchmarks share: a monotonic clock, and running a command as a
 * child process while measuring it (wall time, CPU time of it and the children it waited for,
 * peak resident memory) with an optional timeout that kills its whole process group.
 *
 * Invariants: nothing here prints or exits; a child's stdout is captured whole into a
 * malloc'd string; its stderr is left to the caller's (or the command's own redirection).
 */
#ifndef BENCH_BENCH_UTIL_H
#define BENCH_BENCH_UTIL_H

/* Seconds on CLOCK_MONOTONIC (an arbitrary origin: only differences mean anything). */
double bench_now_s(void);

typedef struct {
    double wall_s;     /* from fork to reaping */
    double cpu_s;      /* user + system of the child and the processes it waited for */
    double maxrss_mib; /* wait4's ru_maxrss: the largest of the child and those processes */
    int status;        /* exit status 0..255; -1 killed (timeout or signal) */
    char *out;         /* the child's whole stdout, NUL-terminated, malloc'd; NULL if unreadable */
} bench_child;

/* Runs argv (argv[0] a path, execv) in a process group of its own with stdout to an unlinked
 * temporary file, and fills *r. timeout_s > 0: polls every 20 ms and kills the group once
 * timeout_s has passed; timeout_s <= 0: waits without polling (the wall time exact to the
 * clock). Returns 0, or -1 (errno set) when the child could not be started; free r->out. */
int bench_child_run(char *const argv[], double timeout_s, bench_child *r);

#endif
