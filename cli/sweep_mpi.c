/* This file implements the distribution of a sweep over MPI ranks (`mpirun -np R switchsim
 * sweep ...`): detection of an MPI launch, the gathering of every point's result at rank 0,
 * and the shared exit status. Point i belongs to rank i % R; each rank runs its own points
 * (cli/sweep_pool.c) into its own OUT/points, then rank 0 receives, in point order, each
 * other rank's .json or .error text for its points and writes it into rank 0's OUT/points,
 * so ranks on machines that do not share OUT still end in one merged result.
 *
 * Invariants: MPI_Init is called only when the environment says a launcher started this
 * process (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK), so a plain run never touches MPI; in
 * a build without MPI a launch with more than one rank is an error (every rank would run
 * every point); messages per point are [index, state, length] then the text (length bytes),
 * sent and received in point order, so they match without tags; every wait is a test-and-
 * sleep loop (wait_request), never MPI's busy polling, so that ranks which wait (rank 0 for
 * the others' results, the others for rank 0's merge) leave the CPUs to the workers: the
 * ranks of a sweep usually share a machine's cores with the estimate processes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/sweep.h"
#include "common/fileio.h"
#include "switchsim_config.h"

#if SWITCHSIM_HAVE_MPI
#include <mpi.h>
#endif

enum { TEXT_MAX = 1 << 28 };

#if !SWITCHSIM_HAVE_MPI
static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : def;
}
#endif

static int launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

ss_status sweep_mpi_start(sweep_mpi *m, ss_err *err)
{
    memset(m, 0, sizeof *m);
    m->size = 1;
    m->local_size = 1;
    if (!launched())
        return SS_OK;
#if SWITCHSIM_HAVE_MPI
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS)
        return ss_err_set(err, SS_ERR_IO, "MPI_Init failed");
    m->active = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &m->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &m->size);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) ==
        MPI_SUCCESS) {
        MPI_Comm_size(local, &m->local_size);
        MPI_Comm_free(&local);
    }
    return SS_OK;
#else
    int size = env_int("OMPI_COMM_WORLD_SIZE", env_int("PMI_SIZE", 1));
    if (size > 1)
        return ss_err_set(err, SS_ERR_USAGE,
                          "started by an MPI launcher with %d ranks, but this switchsim was "
                          "built without MPI (meson option -Dmpi=enabled); run the sweep "
                          "without mpirun",
                          size);
    return SS_OK;
#endif
}

#if SWITCHSIM_HAVE_MPI
/* Waits for a non-blocking operation, sleeping 1 ms between tests. */
static int wait_request(MPI_Request *r)
{
    for (;;) {
        int done = 0;
        if (MPI_Test(r, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return MPI_ERR_OTHER;
        if (done)
            return MPI_SUCCESS;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
}

static int send_idle(const void *buf, int count, MPI_Datatype type, int to)
{
    MPI_Request r;
    int rc = MPI_Isend(buf, count, type, to, 0, MPI_COMM_WORLD, &r);
    return rc == MPI_SUCCESS ? wait_request(&r) : rc;
}

static int recv_idle(void *buf, int count, MPI_Datatype type, int from)
{
    MPI_Request r;
    int rc = MPI_Irecv(buf, count, type, from, 0, MPI_COMM_WORLD, &r);
    return rc == MPI_SUCCESS ? wait_request(&r) : rc;
}

/* The text a rank sends for one of its jobs: the .json of a finished point, else the .error
 * (or a message saying why there is none). */
static char *job_text(const sweep_job *j, int *state)
{
    char *text = NULL;
    size_t len = 0;
    ss_err e;
    if ((j->state == SWEEP_OK || j->state == SWEEP_RESUMED) &&
        file_read_all(j->json, TEXT_MAX, &text, &len, &e) == SS_OK) {
        *state = j->state;
        return text;
    }
    *state = SWEEP_FAILED;
    if (file_read_all(j->error, TEXT_MAX, &text, &len, &e) == SS_OK)
        return text;
    char msg[256];
    snprintf(msg, sizeof msg, "not run: the rank that owned the point stopped early\n");
    return strdup(msg);
}

static ss_status send_jobs(const sweep_mpi *m, const sweep_job *jobs, size_t njobs, ss_err *err)
{
    for (size_t i = (size_t)m->rank; i < njobs; i += (size_t)m->size) {
        int state;
        char *text = job_text(&jobs[i], &state);
        if (!text)
            return ss_err_set(err, SS_ERR_NOMEM, "out of memory");
        int hdr[3] = {(int)i, state, (int)strlen(text)};
        int rc = send_idle(hdr, 3, MPI_INT, 0);
        if (rc == MPI_SUCCESS)
            rc = send_idle(text, hdr[2], MPI_CHAR, 0);
        free(text);
        if (rc != MPI_SUCCESS)
            return ss_err_set(err, SS_ERR_IO, "rank %d: sending point %zu failed", m->rank,
                              i);
    }
    return SS_OK;
}

static ss_status recv_job(sweep_job *j, int from, ss_err *err)
{
    int hdr[3];
    if (recv_idle(hdr, 3, MPI_INT, from) != MPI_SUCCESS)
        return ss_err_set(err, SS_ERR_IO, "MPI_Recv from rank %d failed", from);
    SS_ASSERT((size_t)hdr[0] == j->index && hdr[2] >= 0);
    char *text = malloc((size_t)hdr[2] + 1);
    if (!text)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for point %zu", j->index);
    if (recv_idle(text, hdr[2], MPI_CHAR, from) != MPI_SUCCESS) {
        free(text);
        return ss_err_set(err, SS_ERR_IO, "MPI_Recv from rank %d failed", from);
    }
    int ok = hdr[1] == SWEEP_OK || hdr[1] == SWEEP_RESUMED;
    ss_status st = file_write_atomic(ok ? j->json : j->error, text, (size_t)hdr[2], err);
    if (st == SS_OK && ok)
        unlink(j->error);
    free(text);
    j->state = (sweep_state)hdr[1];
    return st;
}
#endif

ss_status sweep_mpi_gather(const sweep_mpi *m, sweep_job *jobs, size_t njobs, ss_err *err)
{
    if (m->size <= 1)
        return SS_OK;
#if SWITCHSIM_HAVE_MPI
    if (m->rank != 0)
        return send_jobs(m, jobs, njobs, err);
    ss_status first = SS_OK;
    for (size_t i = 0; i < njobs; i++) {
        int owner = (int)(i % (size_t)m->size);
        if (owner == 0)
            continue;
        ss_status st = recv_job(&jobs[i], owner, err); /* keep receiving: senders block */
        if (st != SS_OK && first == SS_OK)
            first = st;
    }
    return first;
#else
    (void)jobs;
    (void)njobs;
    return ss_err_set(err, SS_ERR_USAGE, "MPI sweep in a build without MPI");
#endif
}

int sweep_mpi_all(const sweep_mpi *m, int ok)
{
#if SWITCHSIM_HAVE_MPI
    if (m->active && m->size > 1) {
        int all = 0;
        MPI_Request r;
        if (MPI_Iallreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD, &r) != MPI_SUCCESS ||
            wait_request(&r) != MPI_SUCCESS)
            return 0;
        return all;
    }
#else
    (void)m;
#endif
    return ok;
}

int sweep_mpi_share_status(const sweep_mpi *m, int status)
{
#if SWITCHSIM_HAVE_MPI
    if (m->active && m->size > 1) {
        MPI_Request r;
        if (MPI_Ibcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD, &r) != MPI_SUCCESS ||
            wait_request(&r) != MPI_SUCCESS)
            status = 1;
    }
#else
    (void)m;
#endif
    return status;
}

void sweep_mpi_finish(sweep_mpi *m)
{
#if SWITCHSIM_HAVE_MPI
    if (m->active)
        MPI_Finalize();
#endif
    m->active = 0;
}
