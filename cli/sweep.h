/* This file declares the pieces of `switchsim sweep` (cli/cmd_sweep.c): the sweep file
 * (cli/sweep_cfg.c: `kind: sweep`, a base run plus a product or a list of overrides, expanded
 * into points and written out as generated run configs), the worker pool that runs one
 * `switchsim estimate` child per point (cli/sweep_pool.c), and the distribution of points over
 * MPI ranks (cli/sweep_mpi.c, built only with the `mpi` feature).
 *
 * Invariants: points are numbered 0..npoints-1 in a stable order (product: the first key varies
 * slowest, like nested loops in file order; list: file order); a point's id is its index and a
 * hash of its generated run config and estimate options, so a changed point never reuses the
 * result of an earlier one; every override key is a dotted path of run-config fields checked
 * against the run schema when the sweep is loaded, and every value is decoded with that field's
 * rules, so bad sweep files fail with "FILE:LINE:COL: field 'PATH': MESSAGE" before any point
 * runs.
 */
#ifndef SWITCHSIM_CLI_SWEEP_H
#define SWITCHSIM_CLI_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/cfg.h"
#include "common/status.h"

enum { SWEEP_MAX_POINTS = 100000, SWEEP_MAX_KEYS = 32 };

/* How each point is estimated (YAML `estimate:`): passed to `switchsim estimate`. */
typedef struct {
    int engine;            /* 0 analytic, 1 systemc */
    char routing[256];     /* uniform | skew:S | hist:FILE (FILE relative to the sweep file) */
    int remat, exact_counts, grad_bf16, no_overlap; /* 0/1 flags */
    uint64_t packet_bytes; /* 0: estimate's default */
    double timeout_s;      /* per point wall-clock limit; 0: none */
} sweep_estimate_cfg;

/* One override column: a dotted run-config path and the schema field it ends at. */
typedef struct {
    char key[256];             /* "plan.data", "model.switch.num_experts", "pod" */
    const cfg_field *field;    /* the leaf field in run_cfg_schema's tree */
} sweep_key;

typedef struct {
    char path[4096];        /* the sweep file, as given */
    char name[41];          /* sweep name; points are named "<name>-<index>" */
    char run_path[4096];    /* the base run config, absolute */
    sweep_estimate_cfg est;
    int nkeys;
    sweep_key keys[SWEEP_MAX_KEYS]; /* [nkeys] in order of first appearance */
    size_t npoints;
    const cfg_node **values; /* [npoints * nkeys]: point i's value of key k, NULL if unset */
    cfg_doc *doc;            /* the sweep document (owns the value nodes) */
} sweep_spec;

/* Loads and validates a sweep file (and its base run). */
ss_status sweep_spec_load(sweep_spec *s, const char *path, ss_err *err);
void sweep_spec_free(sweep_spec *s);

/* The generated run config of point i (malloc'd YAML text): `include:` of the base run plus
 * the point's overrides as nested mappings; paths absolute. */
ss_status sweep_point_yaml(char **text, const sweep_spec *s, size_t i, ss_err *err);
/* {"key": value, ...} for the keys point i sets; values typed by their field (integers,
 * reals, booleans, strings as written, lists as arrays). */
json_t *sweep_point_json(const sweep_spec *s, size_t i);
/* The value of key k for point i as CSV/text ("" if unset; a list's items joined by 'x', as
 * "4x4" for pod.dims); buf of n bytes. */
void sweep_point_text(char *buf, size_t n, const sweep_spec *s, size_t i, int k);
/* The estimate options as command-line arguments (static strings or into store; a
 * NULL-terminated list of at most 16 entries, after "estimate --run FILE --format json"). */
int sweep_estimate_args(const char **argv, int max, char *store, size_t nstore,
                        const sweep_spec *s);

/* ---- worker pool ---------------------------------------------------------------------- */

typedef enum { SWEEP_PENDING = 0, SWEEP_OK, SWEEP_FAILED, SWEEP_RESUMED } sweep_state;

/* One point to run: `exe estimate --run yaml --format json ARGS`. */
typedef struct {
    size_t index;
    char id[64];              /* "0007-1a2b3c4d" */
    char yaml[4096];          /* OUT/points/<id>.yaml */
    char json[4096];          /* OUT/points/<id>.json: the result, written on success */
    char error[4096];         /* OUT/points/<id>.error: the failure, written on failure */
    sweep_state state;
    double seconds;           /* wall time of the worker */
} sweep_job;

typedef struct {
    const char *exe;          /* the switchsim binary */
    const char *const *args;  /* NULL-terminated estimate options */
    int workers;              /* concurrent children */
    double timeout_s;         /* 0: none */
    int tty;                  /* progress bar (1) or one line per point (0) */
    const char *tag;          /* prefix of progress lines ("rank 1/4: ") or "" */
} sweep_pool_cfg;

/* Marks jobs whose .json already holds a JSON object as SWEEP_RESUMED; returns their count. */
size_t sweep_pool_resume(sweep_job *jobs, size_t njobs);
/* Runs every SWEEP_PENDING job with at most cfg->workers children at a time; each ends
 * SWEEP_OK (.json written, stale .error removed) or SWEEP_FAILED (.error written: a summary
 * line, then the worker's stderr). Fails only when a child cannot be started or a file
 * cannot be written. */
ss_status sweep_pool_run(sweep_job *jobs, size_t njobs, const sweep_pool_cfg *cfg, ss_err *err);
/* The error message recorded for a failed job (malloc'd): the .error file, trimmed, with its
 * lines joined by "; ". */
char *sweep_job_error_text(const sweep_job *job);

/* ---- MPI (cli/sweep_mpi.c) ------------------------------------------------------------- */

/* Rank and size of this process: 0 and 1 unless built with MPI and started by mpirun (the
 * launcher's environment, OMPI_COMM_WORLD_SIZE / PMI_SIZE / PMIX_RANK, decides, before any
 * MPI call; a plain run never initialises MPI). */
typedef struct {
    int rank, size;
    int local_size; /* ranks on this machine (for the default -j) */
    int active;     /* MPI_Init was called */
} sweep_mpi;

ss_status sweep_mpi_start(sweep_mpi *m, ss_err *err);
/* Rank 0 receives, for every job another rank owned (index % size == rank), the .json or
 * .error text from that rank and writes it to its own OUT/points; the other ranks send theirs.
 * A no-op for size 1. */
ss_status sweep_mpi_gather(const sweep_mpi *m, sweep_job *jobs, size_t njobs, ss_err *err);
/* 1 when ok is true on every rank (a collective call: every rank must make it), else 0; so
 * that a rank that cannot load the sweep stops them all instead of leaving rank 0 waiting. */
int sweep_mpi_all(const sweep_mpi *m, int ok);
/* Rank 0's exit status to every rank; returns it. */
int sweep_mpi_share_status(const sweep_mpi *m, int status);
void sweep_mpi_finish(sweep_mpi *m);

#endif
