/* This file implements groups of cores for the collectives (coll.h): the group spec of the
 * command line and of layouts (all, lists and ranges, rows, columns, planes of the torus) and
 * the recognition of a group as a box of the topology, which the torus and dimension-ordered
 * algorithms need.
 *
 * Invariants: a parsed group has 1..ncores distinct cores in the order the spec gives; a slice
 * lists chips in row-major order (x fastest) and every core of each chip, chip-major.
 */
#include "collectives/coll.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Parses a non-negative decimal integer at *s; advances *s. Returns -1 if none. */
static long number(const char **s)
{
    if (**s < '0' || **s > '9')
        return -1;
    errno = 0;
    char *end;
    const long v = strtol(*s, &end, 10);
    if (errno || v > SIM_PROG_MAX_CORES)
        return -1;
    *s = end;
    return v;
}

static ss_status add_core(int32_t *cores, int32_t *n, unsigned char *seen, long c, int32_t max,
                          const char *spec, ss_err *err)
{
    if (c < 0 || c >= max)
        return ss_err_set(err, SS_ERR_RANGE, "group '%s': core %ld is outside 0..%d", spec, c,
                          max - 1);
    if (seen[c])
        return ss_err_set(err, SS_ERR_RANGE, "group '%s': core %ld is listed twice", spec, c);
    seen[c] = 1;
    cores[(*n)++] = (int32_t)c;
    return SS_OK;
}

static ss_status parse_list(const char *spec, int32_t max, int32_t *cores, int32_t *n,
                            ss_err *err)
{
    unsigned char *seen = calloc((size_t)max, 1);
    if (!seen)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory");
    const char *s = spec;
    ss_status st = SS_OK;
    while (st == SS_OK) {
        const long lo = number(&s);
        long hi = lo;
        if (lo >= 0 && *s == '-') {
            s++;
            hi = number(&s);
        }
        if (lo < 0 || hi < lo) {
            st = ss_err_set(err, SS_ERR_USAGE,
                            "group '%s': expected a core or a range LO-HI (LO <= HI) at '%s'",
                            spec, s);
            break;
        }
        for (long c = lo; c <= hi && st == SS_OK; c++)
            st = add_core(cores, n, seen, c, max, spec, err);
        if (st != SS_OK || *s == '\0')
            break;
        if (*s != ',')
            st = ss_err_set(err, SS_ERR_USAGE, "group '%s': expected ',' at '%s'", spec, s);
        s++;
    }
    free(seen);
    return st;
}

/* A slice: fix[d] >= 0 pins coordinate d; every core of every matching chip. */
static ss_status parse_slice(const sim_topo *t, const int fix[3], const char *spec,
                             int32_t *cores, int32_t *n, ss_err *err)
{
    for (int d = 0; d < 3; d++)
        if (fix[d] >= t->dims[d])
            return ss_err_set(err, SS_ERR_RANGE,
                              "group '%s': coordinate %d is outside 0..%d of dimension %c", spec,
                              fix[d], t->dims[d] - 1, "xyz"[d]);
    for (int chip = 0; chip < sim_topo_nchips(t); chip++) {
        int xyz[3];
        sim_topo_coords(t, chip, xyz);
        if ((fix[0] >= 0 && xyz[0] != fix[0]) || (fix[1] >= 0 && xyz[1] != fix[1]) ||
            (fix[2] >= 0 && xyz[2] != fix[2]))
            continue;
        for (int l = 0; l < t->cores_per_chip; l++)
            cores[(*n)++] = sim_topo_core_id(t, chip, l);
    }
    return SS_OK;
}

/* row:Y, col:X, plane:A=V: the pinned coordinates, or -1 with an error. */
static int slice_fix(const char *spec, int fix[3], ss_err *err)
{
    fix[0] = fix[1] = fix[2] = -1;
    const char *s;
    long v = -1;
    if (strncmp(spec, "row:", 4) == 0) {
        s = spec + 4;
        fix[1] = (int)(v = number(&s));
        fix[2] = 0;
    } else if (strncmp(spec, "col:", 4) == 0) {
        s = spec + 4;
        fix[0] = (int)(v = number(&s));
        fix[2] = 0;
    } else if (strncmp(spec, "plane:", 6) == 0 && spec[6] >= 'x' && spec[6] <= 'z' &&
               spec[7] == '=') {
        s = spec + 8;
        fix[spec[6] - 'x'] = (int)(v = number(&s));
    } else {
        return 0; /* not a slice */
    }
    if (v < 0 || *s != '\0') {
        ss_err_set(err, SS_ERR_USAGE,
                   "group '%s': expected row:Y, col:X or plane:z=Z (x=, y= too) with a "
                   "non-negative integer",
                   spec);
        return -1;
    }
    return 1;
}

ss_status coll_group_parse(const char *spec, const sim_topo *t, int32_t **cores, int32_t *n,
                           ss_err *err)
{
    const int32_t max = sim_topo_ncores(t);
    *n = 0;
    *cores = malloc((size_t)max * sizeof **cores);
    if (!*cores)
        return ss_err_set(err, SS_ERR_NOMEM, "out of memory for a group of %d cores", max);
    int fix[3];
    const int slice = slice_fix(spec, fix, err);
    ss_status st = SS_OK;
    if (slice < 0)
        st = SS_ERR_USAGE;
    else if (strcmp(spec, "all") == 0)
        for (int32_t c = 0; c < max; c++)
            (*cores)[(*n)++] = c;
    else if (slice)
        st = parse_slice(t, fix, spec, *cores, n, err);
    else
        st = parse_list(spec, max, *cores, n, err);
    if (st == SS_OK && *n == 0)
        st = ss_err_set(err, SS_ERR_RANGE, "group '%s' is empty", spec);
    if (st != SS_OK) {
        free(*cores);
        *cores = NULL;
        *n = 0;
    }
    return st;
}

/* c: how many leading ranks share rank 0's chip; 0 if the ranks do not come in runs of c
 * cores of one chip. */
static int32_t cores_per_run(const sim_topo *t, const int32_t *cores, int32_t p)
{
    const int chip0 = sim_topo_core_chip(t, cores[0]);
    int32_t c = 1;
    while (c < p && sim_topo_core_chip(t, cores[c]) == chip0)
        c++;
    if (p % c != 0)
        return 0;
    for (int32_t r = 0; r < p; r++)
        if (sim_topo_core_chip(t, cores[r]) != sim_topo_core_chip(t, cores[r - r % c]))
            return 0;
    return c;
}

int coll_group_grid(const sim_topo *t, const int32_t *cores, int32_t p,
                    int ext[COLL_GRID_DIMS])
{
    for (int32_t r = 0; r < p; r++)
        if (cores[r] < 0 || cores[r] >= sim_topo_ncores(t))
            return 0;
    const int32_t c = cores_per_run(t, cores, p);
    if (c == 0)
        return 0;
    int lo[3], hi[3];
    for (int d = 0; d < 3; d++) {
        lo[d] = 1 << 30;
        hi[d] = -1;
    }
    for (int32_t r = 0; r < p; r += c) {
        int xyz[3];
        sim_topo_coords(t, sim_topo_core_chip(t, cores[r]), xyz);
        for (int d = 0; d < 3; d++) {
            lo[d] = xyz[d] < lo[d] ? xyz[d] : lo[d];
            hi[d] = xyz[d] > hi[d] ? xyz[d] : hi[d];
        }
    }
    ext[0] = c;
    for (int d = 0; d < 3; d++)
        ext[d + 1] = hi[d] - lo[d] + 1;
    if ((int64_t)ext[1] * ext[2] * ext[3] * c != p)
        return 0;
    for (int32_t q = 0; q < p / c; q++) { /* chips in row-major order inside the box */
        const int want[3] = {lo[0] + q % ext[1], lo[1] + q / ext[1] % ext[2],
                             lo[2] + q / (ext[1] * ext[2])};
        if (sim_topo_core_chip(t, cores[q * c]) != sim_topo_chip(t, want))
            return 0;
    }
    return 1;
}
