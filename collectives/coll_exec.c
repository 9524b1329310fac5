/* This file implements the data executor of the collectives (coll.h): it applies a schedule
 * to real per-core workspaces, and runs a collective on user buffers of fp32 or bf16.
 *
 * Step semantics: the sources of all transfers of a step are first copied into one staging
 * buffer (so a transfer reads its source as it was before the step), then the transfers are
 * applied in list order: copy, or dst[i] = dst[i] + src[i] in fp32 (compiled with
 * -ffp-contract=off, so no fused multiply-add changes the rounding). The order of the
 * additions is therefore the algorithm's and results are bit-reproducible.
 * bf16: reduce kinds widen the inputs into fp32 workspaces and round the outputs once
 * (coll.h); copy-only kinds move the bf16 bytes untouched.
 *
 * Invariants: nothing is written outside a workspace (coll_schedule_check's ranges).
 */
#include "collectives/coll.h"

#include <stdlib.h>
#include <string.h>

static void apply(const coll_xfer *x, const unsigned char *src, void *const *work,
                  size_t elem_size)
{
    unsigned char *dst = (unsigned char *)work[x->dst] + x->dst_off * elem_size;
    if (!x->reduce) {
        memcpy(dst, src, x->count * elem_size);
        return;
    }
    SS_ASSERT(elem_size == sizeof(float));
    float *d = (float *)(void *)dst;
    const float *s = (const float *)(const void *)src;
    for (uint64_t i = 0; i < x->count; i++)
        d[i] = d[i] + s[i];
}

static size_t largest_step(const coll_schedule *s)
{
    size_t most = 0;
    for (int32_t st = 0; st < s->nsteps; st++) {
        size_t n = 0;
        for (size_t i = s->step_start[st]; i < s->step_start[st + 1]; i++)
            n += s->x[i].count;
        most = n > most ? n : most;
    }
    return most;
}

ss_status coll_schedule_execute(const coll_schedule *s, void *const *work, size_t elem_size,
                                ss_err *err)
{
    size_t bytes;
    if (ss_mul_size(largest_step(s), elem_size, &bytes) != 0)
        return ss_err_set(err, SS_ERR_NOMEM, "a step of the schedule is too large");
    unsigned char *stage = malloc(bytes ? bytes : 1);
    if (!stage)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory staging %zu bytes", bytes);
    for (int32_t st = 0; st < s->nsteps; st++) {
        size_t at = 0;
        for (size_t i = s->step_start[st]; i < s->step_start[st + 1]; i++) {
            const coll_xfer *x = &s->x[i];
            memcpy(stage + at, (const unsigned char *)work[x->src] + x->src_off * elem_size,
                   x->count * elem_size);
            at += x->count * elem_size;
        }
        at = 0;
        for (size_t i = s->step_start[st]; i < s->step_start[st + 1]; i++) {
            apply(&s->x[i], stage + at, work, elem_size);
            at += s->x[i].count * elem_size;
        }
    }
    free(stage);
    return SS_OK;
}

static void free_work(void **w, int32_t p)
{
    for (int32_t r = 0; w && r < p; r++)
        free(w[r]);
    free(w);
}

/* Copies (widening bf16 when wide) the inputs into fresh workspaces, zero elsewhere. */
static ss_status load_inputs(const coll_schedule *s, coll_dtype dt, int wide, size_t esz,
                             const void *const *in, void ***work_out, ss_err *err)
{
    void **w = calloc((size_t)s->p, sizeof *w);
    if (!w)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory");
    for (int32_t r = 0; r < s->p; r++) {
        w[r] = calloc(s->work[r] ? s->work[r] : 1, esz);
        if (!w[r]) {
            free_work(w, s->p);
            return ss_err_set(err, SS_ERR_NOMEM, "out of memory for rank %d's workspace", r);
        }
        if (s->in_count[r] == 0)
            continue;
        unsigned char *dst = (unsigned char *)w[r] + s->in_off[r] * esz;
        if (wide && dt == COLL_BF16)
            bf16_to_f32_array((float *)(void *)dst, in[r], s->in_count[r]);
        else
            memcpy(dst, in[r], s->in_count[r] * esz);
    }
    *work_out = w;
    return SS_OK;
}

static void store_outputs(const coll_schedule *s, coll_dtype dt, int wide, size_t esz,
                          bf16_denormals pol, void *const *work, void *const *out)
{
    for (int32_t r = 0; r < s->p; r++) {
        if (s->out_count[r] == 0)
            continue;
        const unsigned char *src = (const unsigned char *)work[r] + s->out_off[r] * esz;
        if (wide && dt == COLL_BF16)
            bf16_from_f32_array(out[r], (const float *)(const void *)src, s->out_count[r], pol);
        else
            memcpy(out[r], src, s->out_count[r] * esz);
    }
}

ss_status coll_run(const coll_schedule *s, coll_dtype dtype, bf16_denormals pol,
                   const void *const *in, void *const *out, ss_err *err)
{
    const int wide = s->kind == SIM_COLL_ALLREDUCE || s->kind == SIM_COLL_REDUCESCATTER;
    const size_t esz = wide || dtype == COLL_FP32 ? sizeof(float) : sizeof(bf16);
    void **work = NULL;
    ss_status st = load_inputs(s, dtype, wide, esz, in, &work, err);
    if (st != SS_OK)
        return st;
    st = coll_schedule_execute(s, work, esz, err);
    if (st == SS_OK)
        store_outputs(s, dtype, wide, esz, pol, work, out);
    free_work(work, s->p);
    return st;
}
