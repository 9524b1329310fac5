/* This file implements `switchsim model`: the parameter count, active parameters per token and
 * forward/training FLOPs per sequence of a model config (model/count.h), with the breakdown
 * per component and per layer kind, and optionally every forward matrix product's shape.
 *
 * Invariants: the output depends only on the config and the options; `params` and
 * `flops_per_seq` are Table 9's conventions (count.h explains them) and the other figures sit
 * next to them, so nothing the model holds or computes is hidden: params_norms_and_biases and
 * matmul_flops_per_seq. Exit status: 0 ok, 1 the config cannot be loaded or counted, 2 usage.
 */
#include <stdio.h>

#include <jansson.h>

#include "cli.h"
#include "model/count.h"
#include "model/model_cfg.h"

typedef struct {
    const char *model;
    long input_len, target_len;
    int matmuls, format;
} model_opts;

/* ---- options ------------------------------------------------------------------------ */

static int parse_opts(model_opts *o, int argc, char **argv)
{
    cli_opt opts[] = {
        {"model", CLI_OPT_STR, &o->model, "FILE", "model config (kind: model)", NULL, 0, 0, 1},
        {"input-length", CLI_OPT_INT, &o->input_len, "TI",
         "encoder tokens per sequence (Ti)", NULL, 1, MODEL_COUNT_MAX_LEN, 0},
        {"target-length", CLI_OPT_INT, &o->target_len, "TT",
         "decoder tokens per sequence (Tt)", NULL, 1, MODEL_COUNT_MAX_LEN, 0},
        {"matmuls", CLI_OPT_FLAG, &o->matmuls, NULL,
         "also list every forward matrix product of each layer kind, with its shape", NULL, 0,
         0, 0},
        {"format", CLI_OPT_CHOICE, &o->format, NULL, "output format", cli_format_choices, 0, 0,
         0},
    };
    cli_spec spec = {
        "switchsim model --model FILE [OPTIONS]",
        "Counts the parameters and forward FLOPs per sequence of a T5 / Switch Transformer\n"
        "model, in the conventions of the Switch Transformer paper's Table 9:\n"
        "  params: every weight matrix (embedding once when tied, output layer when untied,\n"
        "    attention q/k/v/o, dense FFNs, all experts, routers), but NOT the RMSNorm scales\n"
        "    and relative position biases: those are params_norms_and_biases, and params_all\n"
        "    is the sum (every stored weight). With this rule Switch-Base-128 has exactly\n"
        "    7,415,169,024 and Switch-C-2048 1,571,308,810,240, as published.\n"
        "  active_params: params with only top_k of the E experts of each Switch layer.\n"
        "  flops_per_seq: Kaplan et al.'s count per stack: 2 FLOPs per multiply-add of the\n"
        "    active weights (routers excluded) per token of their stack (Ti inputs through the\n"
        "    encoder, Tt targets through the decoder, cross-attention k/v included), plus one\n"
        "    2 n_ctx d_attn attention term per token and layer (QK^T; n_ctx = Ti for encoder and\n"
        "    cross-attention, Tt for decoder self-attention, full square), plus the output\n"
        "    layer 2 d_model V per target token. It reproduces Table 9 within 1%.\n"
        "  matmul_flops_per_seq: every product the matrix units execute, 2 m k n each: adds\n"
        "    the routers, the attention-probability x value products and cross-attention k/v\n"
        "    over the Ti encoder outputs (11-23% more for the Table 9 models).\n"
        "  train_*: 3 x forward (the backward pass is 2 x forward).\n"
        "Norms, softmax, activations and the embedding lookup are vector work, in neither\n"
        "FLOP count. 'components' breaks every figure down; 'layers' gives each layer kind's\n"
        "count and per-layer figures; --matmuls lists the products (m rows x k -> n columns,\n"
        "batch = heads; expert rows are top_k x tokens spread over E experts).",
        opts,
        (int)(sizeof opts / sizeof opts[0]),
        0,
        0,
        "examples:\n"
        "  switchsim model --model configs/models/switch-base-128.yaml\n"
        "  switchsim model --model configs/models/switch-c-2048.yaml --format json\n"
        "  switchsim model --model configs/models/t5-base.yaml --input-length 1024 --matmuls",
    };
    char *pos[argc]; /* cli_parse stores positional arguments before rejecting them */
    int npos = 0;
    return cli_parse(&spec, argc, argv, pos, &npos);
}

/* ---- output ------------------------------------------------------------------------- */

static void set_int(json_t *o, const char *key, int64_t v)
{
    json_object_set_new(o, key, json_integer((json_int_t)v));
}

static json_t *components_json(const model_counts *c)
{
    json_t *a = json_array();
    for (int i = 0; i < MODEL_COMP_COUNT; i++) {
        json_t *r = json_object();
        json_object_set_new(r, "component", json_string(model_comp_name((model_comp)i)));
        set_int(r, "params", c->params_comp[i]);
        json_object_set_new(r, "in_params", json_boolean(model_comp_in_params((model_comp)i)));
        set_int(r, "flops_per_seq", c->flops_comp[i]);
        set_int(r, "matmul_flops_per_seq", c->matmul_flops_comp[i]);
        json_array_append_new(a, r);
    }
    return a;
}

/* The layer kinds the model has. */
static json_t *layers_json(const model_counts *c)
{
    json_t *a = json_array();
    for (int k = 0; k < MODEL_LAYER_KINDS; k++) {
        const model_layer_counts *l = &c->layer[k];
        if (l->layers == 0)
            continue;
        json_t *r = json_object();
        json_object_set_new(r, "layer", json_string(model_layer_kind_name((model_layer_kind)k)));
        set_int(r, "count", l->layers);
        set_int(r, "tokens", l->tokens);
        set_int(r, "params_per_layer", l->params);
        set_int(r, "norm_params_per_layer", l->params_norms);
        set_int(r, "flops_per_layer", l->table9_flops);
        set_int(r, "matmul_flops_per_layer", l->matmul_flops);
        json_array_append_new(a, r);
    }
    return a;
}

static json_t *matmul_json(const char *layer, const model_matmul *mm)
{
    static const char *const kinds[] = {"weight", "scores", "values"};
    json_t *r = json_object();
    json_object_set_new(r, "layer", json_string(layer));
    json_object_set_new(r, "op", json_string(mm->name));
    json_object_set_new(r, "component", json_string(model_comp_name(mm->comp)));
    json_object_set_new(r, "kind", json_string(kinds[mm->kind]));
    set_int(r, "batch", mm->batch);
    set_int(r, "m", mm->m);
    set_int(r, "k", mm->k);
    set_int(r, "n", mm->n);
    set_int(r, "experts", mm->experts);
    set_int(r, "flops", mm->flops);
    set_int(r, "table9_flops", mm->table9_flops);
    return r;
}

/* The products of every layer kind the model has, then the output layer. */
static json_t *matmuls_json(const model_counts *c)
{
    json_t *a = json_array();
    for (int k = 0; k < MODEL_LAYER_KINDS; k++) {
        const model_layer_counts *l = &c->layer[k];
        for (int i = 0; i < l->nmatmul; i++)
            json_array_append_new(
                a, matmul_json(model_layer_kind_name((model_layer_kind)k), &l->mm[i]));
    }
    json_array_append_new(a, matmul_json("model", &c->head));
    return a;
}

static json_t *result_json(const model_cfg *m, const model_counts *c, int with_matmuls)
{
    json_t *j = json_object();
    json_object_set_new(j, "model", json_string(m->name));
    set_int(j, "input_length", c->input_len);
    set_int(j, "target_length", c->target_len);
    set_int(j, "params", c->params);
    set_int(j, "params_norms_and_biases", c->params_norms_and_biases);
    set_int(j, "params_all", c->params_all);
    set_int(j, "active_params", c->active_params);
    set_int(j, "flops_per_seq", c->flops_per_seq);
    set_int(j, "train_flops_per_seq", c->train_flops_per_seq);
    set_int(j, "matmul_flops_per_seq", c->matmul_flops_per_seq);
    set_int(j, "train_matmul_flops_per_seq", c->train_matmul_flops_per_seq);
    json_object_set_new(j, "components", components_json(c));
    json_object_set_new(j, "layers", layers_json(c));
    if (with_matmuls)
        json_object_set_new(j, "matmuls", matmuls_json(c));
    return j;
}

int cmd_model(int argc, char **argv)
{
    model_opts o = {NULL, 512, 114, 0, EMIT_TABLE};
    const int p = parse_opts(&o, argc, argv);
    if (p == CLI_PARSE_HELP)
        return CLI_EXIT_OK;
    if (p != CLI_PARSE_OK)
        return CLI_EXIT_USAGE;
    model_cfg m;
    model_counts c;
    ss_err err = {0};
    if (model_cfg_load(&m, o.model, &err) != SS_OK ||
        model_count(&m, o.input_len, o.target_len, &c, &err) != SS_OK) {
        cli_error("model", "%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    json_t *j = result_json(&m, &c, o.matmuls);
    const int wrote = emit_result(stdout, j, (emit_format)o.format);
    json_decref(j);
    if (wrote != 0) {
        cli_error("model", "cannot write the result to stdout");
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}
