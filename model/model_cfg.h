/* This file declares the description of a T5 / Switch Transformer model, as read from a
 * `kind: model` config (configs/models/): the dense encoder-decoder dimensions and, when a
 * `switch:` mapping is given, the Switch (mixture-of-experts) layer settings.
 *
 * Invariants: after model_cfg_load succeeds every field is within its schema range;
 * encoder_layers and decoder_layers are resolved (num_layers unless overridden) and at least
 * one is >= 1; has_switch says whether the `switch:` mapping was given (0: a dense T5 model,
 * sw is all zero); with has_switch, top_k <= num_experts and every stack with layers has at
 * least one Switch layer (every <= its layers). d_model need not equal num_heads * d_kv (T5
 * fixes d_kv = 64).
 * reference: REFERENCE.md sections 1-3 (Switch layer math, T5 architecture, model table).
 */
#ifndef SWITCHSIM_MODEL_MODEL_CFG_H
#define SWITCHSIM_MODEL_MODEL_CFG_H

#include "common/cfg.h"
#include "common/status.h"

typedef enum { MODEL_FFN_RELU = 0, MODEL_FFN_GEGLU } model_ffn;
typedef enum { MODEL_CAPACITY_ROUND = 0, MODEL_CAPACITY_TRUNCATE } model_capacity_rounding;
typedef enum { MODEL_DROP_TOKEN_ORDER = 0, MODEL_DROP_BATCH_PRIORITIZED } model_drop_priority;
typedef enum { MODEL_JITTER_INPUT = 0, MODEL_JITTER_LOGITS, MODEL_JITTER_OFF } model_jitter;
typedef enum { MODEL_ROUTER_FP32 = 0, MODEL_ROUTER_BF16 } model_router_dtype;

/* The Switch layer: a router over E experts replacing every `every`-th FFN. */
typedef struct {
    int num_experts;                /* E */
    int every;                      /* 1: every FFN is a Switch layer; 2: every other one */
    int top_k;                      /* experts per token: 1 (Switch) or 2 (MoE baseline) */
    double capacity_factor_train;   /* cf: capacity = max(cf * tokens_per_group / E, min) */
    double capacity_factor_eval;
    int min_capacity;               /* tokens per expert per group, at least */
    int group_size;                 /* tokens per routing group; 0: the tokens of one core */
    model_capacity_rounding capacity_rounding; /* round ([FF]) or truncate ([MTF]) */
    model_drop_priority drop_priority;         /* which tokens keep their expert slot */
    model_jitter jitter;            /* multiplicative noise on router input or logits, or off */
    double jitter_eps;              /* noise U(1-eps, 1+eps), training only */
    model_router_dtype router_dtype;/* router precision (fp32: "selective precision") */
    double aux_loss_alpha;          /* load-balancing loss coefficient */
    double z_loss_coef;             /* router z-loss coefficient (ST-MoE: 1e-3) */
    double init_scale;              /* s in truncated-normal std = sqrt(s / fan_in) */
    double expert_dropout;          /* dropout on the expert FFN's hidden activation */
} model_switch_cfg;

typedef struct {
    char name[64];
    int d_model;                    /* C */
    int d_ff;                       /* F: FFN hidden width (per expert) */
    int d_kv;                       /* per-head key/value width */
    int num_heads;                  /* H */
    int num_layers;                 /* L: layers per stack, as given */
    int encoder_layers;             /* resolved: num_layers unless overridden */
    int decoder_layers;
    int vocab_size;                 /* V */
    model_ffn ffn;
    int tied_embeddings;            /* 1: the output layer reuses the input embedding */
    int relative_attention_num_buckets;
    int relative_attention_max_distance;
    double dropout;
    int has_switch;                 /* the `switch:` mapping was given */
    model_switch_cfg sw;            /* YAML `switch:`; zero for a dense model */
} model_cfg;

/* The fields of a `kind: model` config. */
extern const cfg_schema model_cfg_schema;

ss_status model_cfg_load(model_cfg *out, const char *path, ss_err *err);
/* Decodes a model from an already-loaded config node (a mapping with kind: model). */
ss_status model_cfg_decode(model_cfg *out, const cfg_node *node, ss_err *err);

/* Switch layers in a stack of `layers` layers (0 for a dense model). */
int model_cfg_switch_layers(const model_cfg *m, int layers);
const char *model_ffn_name(model_ffn f);

#endif
