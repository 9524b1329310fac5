/* This file implements the model description of model_cfg.h: the schemas of a `kind: model`
 * config and of its `switch:` mapping, and the checks across fields (layer counts, top_k
 * against the expert count, Switch frequency against the stack depth, relative-position
 * buckets against their maximum distance).
 *
 * Invariants: see model_cfg.h. Defaults are those of the Switch Transformer paper and its
 * Mesh-TensorFlow / Flaxformer implementations: d_kv 64, vocab 32128, 32 relative-attention
 * buckets up to distance 128, dropout 0.1; capacity factor 1.0 (train) / 2.0 (eval), minimum
 * capacity 4, rounding as Flaxformer, earlier tokens first, router input jitter 1e-2, fp32
 * router, aux loss 1e-2, no z-loss, init scale 0.1, expert dropout 0.1.
 * reference: REFERENCE.md sections 1 (Switch layer), 2 (T5 architecture), 3 (model table).
 */
#include "model/model_cfg.h"

#include <stddef.h>

static const char *const ffn_names[] = {"relu", "geglu", NULL};
static const char *const rounding_names[] = {"round", "truncate", NULL};
static const char *const priority_names[] = {"token_order", "batch_prioritized", NULL};
static const char *const jitter_names[] = {"input", "logits", "off", NULL};
static const char *const dtype_names[] = {"fp32", "bf16", NULL};

static const cfg_field switch_fields[] = {
    CFG_INT(model_switch_cfg, num_experts, CFG_REQUIRED, NULL, 1, 65536,
            "experts per Switch layer (E)"),
    CFG_INT(model_switch_cfg, every, CFG_OPTIONAL, "2", 1, 1000,
            "Switch layer frequency: 1 = every FFN, 2 = every other FFN"),
    CFG_INT(model_switch_cfg, top_k, CFG_OPTIONAL, "1", 1, 64,
            "experts per token: 1 = Switch, 2 = MoE top-2 baseline"),
    CFG_DOUBLE(model_switch_cfg, capacity_factor_train, CFG_MIN_OPEN, "1.0", 0, 64,
               "capacity factor in training: capacity = cf * tokens per group / E"),
    CFG_DOUBLE(model_switch_cfg, capacity_factor_eval, CFG_MIN_OPEN, "2.0", 0, 64,
               "capacity factor in evaluation"),
    CFG_INT(model_switch_cfg, min_capacity, CFG_OPTIONAL, "4", 1, 1 << 20,
            "smallest expert capacity, tokens per group"),
    CFG_INT(model_switch_cfg, group_size, CFG_OPTIONAL, "0", 0, 1 << 30,
            "tokens per routing group; 0 = all tokens of one core"),
    CFG_ENUM(model_switch_cfg, capacity_rounding, CFG_OPTIONAL, "round", rounding_names,
             "capacity rounding: round (Flaxformer) or truncate (Mesh-TensorFlow)"),
    CFG_ENUM(model_switch_cfg, drop_priority, CFG_OPTIONAL, "token_order", priority_names,
             "which tokens keep a full expert's slots: earlier tokens, or most confident"),
    CFG_ENUM(model_switch_cfg, jitter, CFG_OPTIONAL, "input", jitter_names,
             "multiplicative router noise on the input (MTF), the logits (paper), or off"),
    CFG_DOUBLE(model_switch_cfg, jitter_eps, CFG_OPTIONAL, "1e-2", 0, 1,
               "jitter noise U(1-eps, 1+eps), training only"),
    CFG_ENUM(model_switch_cfg, router_dtype, CFG_OPTIONAL, "fp32", dtype_names,
             "router precision (fp32 = selective precision)"),
    CFG_DOUBLE(model_switch_cfg, aux_loss_alpha, CFG_OPTIONAL, "1e-2", 0, 10,
               "load-balancing loss coefficient alpha"),
    CFG_DOUBLE(model_switch_cfg, z_loss_coef, CFG_OPTIONAL, "0", 0, 10,
               "router z-loss coefficient (ST-MoE uses 1e-3)"),
    CFG_DOUBLE(model_switch_cfg, init_scale, CFG_MIN_OPEN, "0.1", 0, 100,
               "weight init: truncated normal with std sqrt(scale / fan_in)"),
    CFG_DOUBLE(model_switch_cfg, expert_dropout, CFG_OPTIONAL, "0.1", 0, 0.99,
               "dropout on the expert FFN hidden activation"),
};

static const cfg_schema switch_schema = {
    .kind = NULL,
    .summary = "Switch (mixture-of-experts) layer settings",
    .size = sizeof(model_switch_cfg),
    .fields = switch_fields,
    .nfields = sizeof switch_fields / sizeof switch_fields[0],
    .check = NULL,
};

static ss_status model_check(void *obj, const cfg_node *map, const char *path, ss_err *err);

static const cfg_field model_fields[] = {
    CFG_STRING(model_cfg, name, CFG_REQUIRED, NULL, "model name, e.g. switch-base-128"),
    CFG_INT(model_cfg, d_model, CFG_REQUIRED, NULL, 1, 1 << 20, "model width (C)"),
    CFG_INT(model_cfg, d_ff, CFG_REQUIRED, NULL, 1, 1 << 22, "FFN hidden width (F), per expert"),
    CFG_INT(model_cfg, d_kv, CFG_OPTIONAL, "64", 1, 1 << 16, "key/value width per head"),
    CFG_INT(model_cfg, num_heads, CFG_REQUIRED, NULL, 1, 4096, "attention heads (H)"),
    CFG_INT(model_cfg, num_layers, CFG_REQUIRED, NULL, 1, 1000,
            "layers per stack (encoder and decoder)"),
    CFG_INT(model_cfg, encoder_layers, CFG_OPTIONAL, NULL, 0, 1000,
            "encoder layers (default: num_layers)"),
    CFG_INT(model_cfg, decoder_layers, CFG_OPTIONAL, NULL, 0, 1000,
            "decoder layers (default: num_layers)"),
    CFG_INT(model_cfg, vocab_size, CFG_OPTIONAL, "32128", 2, 1 << 24,
            "vocabulary size (V), padded to a multiple of 128 in T5"),
    CFG_ENUM(model_cfg, ffn, CFG_REQUIRED, NULL, ffn_names,
             "FFN: relu (T5, Switch-Base/Large/C) or geglu (T5 v1.1, Switch-XXL)"),
    CFG_BOOL(model_cfg, tied_embeddings, CFG_REQUIRED, NULL,
             "output layer shares the input embedding"),
    CFG_INT(model_cfg, relative_attention_num_buckets, CFG_OPTIONAL, "32", 1, 1024,
            "relative position buckets"),
    CFG_INT(model_cfg, relative_attention_max_distance, CFG_OPTIONAL, "128", 1, 1 << 20,
            "distance of the last relative position bucket"),
    CFG_DOUBLE(model_cfg, dropout, CFG_OPTIONAL, "0.1", 0, 0.99, "dropout rate"),
    CFG_MAPPING_OPT(model_cfg, sw, "switch", has_switch, &switch_schema,
                    "Switch layer settings; absent for a dense model"),
};

const cfg_schema model_cfg_schema = {
    .kind = "model",
    .summary = "a T5 encoder-decoder, dense or with Switch (mixture-of-experts) layers",
    .size = sizeof(model_cfg),
    .fields = model_fields,
    .nfields = sizeof model_fields / sizeof model_fields[0],
    .check = model_check,
};

/* encoder_layers / decoder_layers default to num_layers; one stack may be empty. */
static ss_status check_layers(model_cfg *m, const cfg_node *map, const char *path, ss_err *err)
{
    if (!cfg_map_get(map, "encoder_layers"))
        m->encoder_layers = m->num_layers;
    if (!cfg_map_get(map, "decoder_layers"))
        m->decoder_layers = m->num_layers;
    if (m->encoder_layers == 0 && m->decoder_layers == 0)
        return cfg_check_error(err, map, path, "decoder_layers",
                               "encoder_layers and decoder_layers are both 0: no layers left");
    return SS_OK;
}

static ss_status check_switch(const model_cfg *m, const cfg_node *map, const char *path,
                              ss_err *err)
{
    const model_switch_cfg *s = &m->sw;
    if (s->top_k > s->num_experts)
        return cfg_check_error(err, map, path, "switch.top_k",
                               "top_k %d is more than the %d experts", s->top_k,
                               s->num_experts);
    const int stacks[2] = {m->encoder_layers, m->decoder_layers};
    const char *const names[2] = {"encoder", "decoder"};
    for (int i = 0; i < 2; i++)
        if (stacks[i] > 0 && s->every > stacks[i])
            return cfg_check_error(err, map, path, "switch.every",
                                   "a Switch layer every %d layers leaves the %d-layer %s "
                                   "without one",
                                   s->every, stacks[i], names[i]);
    return SS_OK;
}

static ss_status model_check(void *obj, const cfg_node *map, const char *path, ss_err *err)
{
    model_cfg *m = obj;
    ss_status st = check_layers(m, map, path, err);
    if (st != SS_OK)
        return st;
    /* T5's causal (decoder) buckets: the first num_buckets / 2 are exact offsets, the rest
     * log-spaced from there up to max_distance; log(max_distance / (num_buckets / 2)) divides,
     * so max_distance must lie beyond the exact ones. */
    if (m->relative_attention_max_distance <= m->relative_attention_num_buckets / 2)
        return cfg_check_error(err, map, path, "relative_attention_max_distance",
                               "%d must be more than relative_attention_num_buckets / 2 = %d",
                               m->relative_attention_max_distance,
                               m->relative_attention_num_buckets / 2);
    return m->has_switch ? check_switch(m, map, path, err) : SS_OK;
}

ss_status model_cfg_load(model_cfg *out, const char *path, ss_err *err)
{
    return cfg_load(&model_cfg_schema, out, path, err);
}

ss_status model_cfg_decode(model_cfg *out, const cfg_node *node, ss_err *err)
{
    return cfg_decode(&model_cfg_schema, out, node, "", err);
}

int model_cfg_switch_layers(const model_cfg *m, int layers)
{
    return m->has_switch ? layers / m->sw.every : 0;
}

const char *model_ffn_name(model_ffn f)
{
    return ffn_names[f];
}
