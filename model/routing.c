/* This file implements the routing models of model/stepgen.h: the per-expert token counts of
 * one routing group in estimate mode (uniform, Zipf skew, or a histogram recorded by a
 * functional run) and the reader of histogram files.
 *
 * Invariants: counts always sum to the routed choices exactly (largest-remainder rounding of
 * the shares, ties to the lower expert index); kept[e] = min(counts[e], K); a loaded
 * histogram has layers >= 1 rows of experts >= 1 non-negative fractions that sum to 1.
 * reference: Zipf shares as in the issue ("expert i's share proportional to 1/(i+1)^s").
 */
#include "model/stepgen.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {"uniform", "skew", "histogram"};

const char *model_routing_kind_name(model_routing_kind k)
{
    SS_ASSERT(k >= MODEL_ROUTING_UNIFORM && k <= MODEL_ROUTING_HISTOGRAM);
    return kind_names[k];
}

void model_routing_free(model_routing *r)
{
    if (!r)
        return;
    free(r->fractions);
    r->fractions = NULL;
    r->layers = r->experts = 0;
}

/* Reads one row of the "layers" array into out[E] (normalised); E fixed by the first row. */
static ss_status read_row(const json_t *row, int i, int E, double *out, const char *path,
                          ss_err *err)
{
    if (!json_is_array(row) || (int)json_array_size(row) != E)
        return ss_err_set(err, SS_ERR_DATA,
                          "%s: layers[%d] must be an array of %d numbers (the experts of "
                          "layers[0])",
                          path, i, E);
    double sum = 0;
    for (int e = 0; e < E; e++) {
        const json_t *v = json_array_get(row, (size_t)e);
        if (!json_is_number(v) || !(json_number_value(v) >= 0) ||
            !isfinite(json_number_value(v)))
            return ss_err_set(err, SS_ERR_DATA,
                              "%s: layers[%d][%d] must be a finite number >= 0", path, i, e);
        out[e] = json_number_value(v);
        sum += out[e];
    }
    if (!(sum > 0))
        return ss_err_set(err, SS_ERR_DATA, "%s: layers[%d] sums to 0 (no routed tokens)",
                          path, i);
    for (int e = 0; e < E; e++)
        out[e] /= sum;
    return SS_OK;
}

ss_status model_routing_load(model_routing *r, const char *path, ss_err *err)
{
    SS_ASSERT(r && path);
    memset(r, 0, sizeof *r);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return ss_err_set(err, SS_ERR_IO, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    ss_status st = SS_OK;
    const json_t *layers = json_object_get(root, "layers");
    if (!json_is_object(root) || !json_is_array(layers) || json_array_size(layers) == 0 ||
        !json_is_array(json_array_get(layers, 0)) ||
        json_array_size(json_array_get(layers, 0)) == 0) {
        st = ss_err_set(err, SS_ERR_DATA,
                        "%s: expected {\"layers\": [[f_0, ..., f_{E-1}], ...]} with at least "
                        "one non-empty row",
                        path);
        goto done;
    }
    r->kind = MODEL_ROUTING_HISTOGRAM;
    r->layers = (int)json_array_size(layers);
    r->experts = (int)json_array_size(json_array_get(layers, 0));
    r->fractions = malloc(sizeof(double) * (size_t)r->layers * (size_t)r->experts);
    if (!r->fractions) {
        st = ss_err_set(err, SS_ERR_NOMEM, "%s: out of memory for %d x %d fractions", path,
                        r->layers, r->experts);
        goto done;
    }
    for (int i = 0; i < r->layers && st == SS_OK; i++)
        st = read_row(json_array_get(layers, (size_t)i), i, r->experts,
                      r->fractions + (size_t)i * (size_t)r->experts, path, err);
done:
    json_decref(root);
    if (st != SS_OK)
        model_routing_free(r);
    return st;
}

/* The layer's share of each expert (before capacity), summing to 1. */
static ss_status shares_of(const model_routing *r, int layer, int E, double *share, ss_err *err)
{
    const model_routing_kind kind = r ? r->kind : MODEL_ROUTING_UNIFORM;
    if (kind == MODEL_ROUTING_HISTOGRAM) {
        if (r->experts != E || layer >= r->layers)
            return ss_err_set(err, SS_ERR_CONFIG,
                              "routing histogram has %d layers of %d experts; the model needs "
                              "Switch layer %d of %d experts",
                              r->layers, r->experts, layer, E);
        memcpy(share, r->fractions + (size_t)layer * (size_t)E, sizeof(double) * (size_t)E);
        return SS_OK;
    }
    if (kind == MODEL_ROUTING_SKEW && !(r->zipf >= 0 && isfinite(r->zipf)))
        return ss_err_set(err, SS_ERR_RANGE, "routing skew: the Zipf exponent must be >= 0, "
                                             "got %g", r->zipf);
    double sum = 0;
    for (int e = 0; e < E; e++) {
        share[e] = kind == MODEL_ROUTING_SKEW ? pow(e + 1.0, -r->zipf) : 1.0;
        sum += share[e];
    }
    for (int e = 0; e < E; e++)
        share[e] /= sum;
    return SS_OK;
}

ss_status model_routing_counts(const model_routing *r, int switch_layer, int E, int64_t routed,
                               int64_t K, int64_t *counts, int64_t *kept, ss_err *err)
{
    SS_ASSERT(E >= 1 && routed >= 0 && K >= 0 && counts && kept);
    double *share = malloc(sizeof(double) * 2 * (size_t)E);
    if (!share)
        return ss_err_set(err, SS_ERR_NOMEM, "routing: out of memory for %d experts", E);
    double *rem = share + E;
    ss_status st = shares_of(r, switch_layer, E, share, err);
    if (st == SS_OK) {
        int64_t given = 0;
        for (int e = 0; e < E; e++) {
            const double exact = share[e] * (double)routed;
            counts[e] = (int64_t)floor(exact);
            rem[e] = exact - (double)counts[e];
            given += counts[e];
        }
        /* Rounding of the shares may overshoot by a choice: take it back from the smallest
         * remainder that has one. */
        while (given > routed) {
            int worst = -1;
            for (int e = 0; e < E; e++)
                if (counts[e] > 0 && (worst < 0 || rem[e] < rem[worst]))
                    worst = e;
            counts[worst]--;
            rem[worst] = 2;
            given--;
        }
        /* Largest remainders get the leftover choices (stable: the lower index wins ties). */
        for (int64_t left = routed - given; left > 0; left--) {
            int best = 0;
            for (int e = 1; e < E; e++)
                if (rem[e] > rem[best])
                    best = e;
            counts[best]++;
            rem[best] = -1;
        }
        for (int e = 0; e < E; e++)
            kept[e] = counts[e] < K ? counts[e] : K;
    }
    free(share);
    return st;
}
