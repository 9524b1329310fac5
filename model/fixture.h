/* This file declares the reference fixtures that check the C model's numerics against an
 * independent PyTorch implementation (tests/reference/gen_fixtures.py): the binary fixture
 * format, its reader, and the runner that rebuilds a fixture's inputs, runs the C code path
 * the fixture names, and compares every expected output tensor with the C result.
 *
 * FIXTURE FORMAT, version 1. All integers are unsigned little-endian, floats IEEE-754
 * binary32 little-endian; there is no padding anywhere.
 *
 *   offset  size  field
 *   0       4     magic "SWFX"
 *   4       4     u32 version (1)
 *   8       4     u32 kind_len (1 .. 31), then kind_len bytes of the kind ([A-Za-z0-9_]):
 *                 which C code path to run ("switch_layer", "attention", "optimizer",
 *                 "t5_model"; see below)
 *   .       4     u32 params_len (0 .. 8192), then params_len bytes of parameters: ASCII
 *                 lines "key=value\n" (key [A-Za-z0-9_]{1,47}, value printable, at most 127
 *                 bytes, no '=' in the key; every line ends with '\n'; keys are unique)
 *   .       4     u32 ntensors (1 .. 256), then ntensors tensor records:
 *                   u32 name_len (1 .. 95), name bytes ([A-Za-z0-9_.], unique)
 *                   u8  role: 0 input (given to the C code), 1 output (the expected result)
 *                   u8  dtype: 0 f32, 1 i32
 *                   u8  rank (0 .. 4; rank 0 is a scalar of one element)
 *                   u8  reserved, 0
 *                   u32 dims[rank] (each >= 1; at most 2^24 elements in all)
 *                   f32 tolerance: outputs of dtype f32: the largest normwise relative
 *                       error accepted, max_i |c_i - r_i| / max_i |r_i| (0 < tol < 1);
 *                       i32 outputs and inputs: 0 (i32 outputs must match EXACTLY)
 *                   data: count * 4 bytes, row-major (last dimension contiguous)
 *   end-4   4     u32 checksum: CRC-32 (IEEE 802.3, zlib.crc32) of every byte before it
 *
 * Nothing may follow the checksum. A reader rejects (SS_ERR_DATA, message naming the file, the
 * byte offset and the field) a wrong magic or version, a truncated file, trailing bytes, a
 * checksum mismatch, out-of-range lengths, ranks, dims or tolerances, unknown roles or dtypes,
 * non-finite f32 data, and malformed or duplicate parameters or names. The runner then
 * rejects an unknown kind, a missing or misshapen input, a missing or unparsable parameter,
 * and an expected output the kind does not produce.
 *
 * KINDS (parameters; inputs; outputs the runner can compare; a fixture lists a subset of the
 * outputs, at least one). Every kind takes numerics=fp32|bf16 (model_numerics_fp32 or
 * model_numerics_bf16) and denormals=keep|flush (default keep: torch's bf16 conversion keeps
 * denormals). Gradients are those of the scalar loss sum(out * dout) (+ the kind's losses;
 * t5_model: the model's total loss). The generator's tolerances: fp32 1e-5 for forward values,
 * 2e-5 for gradients and optimizer results; bf16 numerics 1e-2 and 2e-2 (one bf16 rounding
 * that flips because a libm function differs in its last bit moves a value by 2^-8).
 *   switch_layer  model/switch_layer.h in training mode with jitter off and no expert dropout.
 *     N C F E top_k ffn=relu|geglu capacity_factor min_capacity group_size
 *     capacity_rounding=round|truncate drop_priority=token_order|batch_prioritized
 *     router_dtype=fp32|bf16 renormalize=0|1 aux_count_all=0|1 aux_alpha z_coef
 *     in:  x [N,C], wr [C,E], wi [E,C,FI], wo [E,F,C], dout [N,C]   (FI = F or 2F for geglu)
 *     out: out [N,C], probs [N,E], gate [N,k], expert [N,k] i32, slot [N,k] i32 (-1 dropped),
 *          capacity [] i32, aux_loss [], z_loss [], dx [N,C], dwr [C,E], dwi [E,C,FI],
 *          dwo [E,F,C] (loss = sum(out * dout) + aux_loss + z_loss: daux = dz = 1)
 *   attention     model/layers.h multi-head attention, one call.
 *     B T S C H D causal=0|1 self=0|1 (self: keys are the queries' input, S == T)
 *     bias=0|1 (relative position bias from `table`) bidirectional=0|1 num_buckets
 *     max_distance
 *     in:  xq [B,T,C], xkv [B,S,C] (cross only), wq wk wv [C,H*D], wo [H*D,C],
 *          table [NB,H] (bias only), key_mask [B,S] i32 (optional; 0 = padding), dout [B,T,C]
 *     out: out [B,T,C], att [B,H,T,S], dxq [B,T,C] (self: the whole input gradient),
 *          dxkv [B,S,C] (cross only), dwq, dwk, dwv, dwo, dtable [NB,H]
 *   optimizer     model/optim.h: `steps` consecutive updates (step counter from `step0`)
 *     optimizer=adafactor|adamw lr steps step0 tensors=name:count:rows:cols,... (the
 *     model_tensor list, offsets packed from 0); adafactor: factored min_dim_size_to_factor
 *     factor_stacks decay_rate epsilon1 epsilon2 clipping_threshold
 *     multiply_by_parameter_scale max_parameter_scale beta1 weight_decay; adamw: beta1 beta2
 *     eps weight_decay (each optional: model_adafactor_cfg_t5x / model_adamw_cfg_default)
 *     in:  params [P], grads [steps, P] (the gradient of each update)
 *     out: params_out [P], state_out [state floats] (optim.h's state layout)
 *   t5_model      model/t5.h: one training-mode forward (dropout 0, jitter off) and backward
 *     of the whole encoder-decoder, then one Adafactor (T5X defaults: only matrices with both
 *     sides >= 128 and expert stacks are factored) and one AdamW (torch defaults) update at
 *     step 0 of copies of the parameters from those gradients.
 *     B T_in T_out C F D H Le Ld V ffn tied num_buckets max_distance pad_id lr switch=0|1 and,
 *     with switch, E every top_k capacity_factor min_capacity group_size capacity_rounding
 *     drop_priority router_dtype aux_alpha z_coef (as in switch_layer; gates are not
 *     renormalised and f counts choice 0, model/t5.h's Switch layers)
 *     in:  params [nparams] (model/t5.h's flat layout), inputs [B,T_in] i32,
 *          decoder_inputs [B,T_out] i32, targets [B,T_out] i32
 *     out: loss, aux_loss, z_loss, total [] (the metrics), expert_choice [sum of tokens*k]
 *          i32 (model_t5_metrics.expert_choice: -1 dropped), and per parameter tensor NAME
 *          of the model's tensor list: grad.NAME, adafactor.NAME, adamw.NAME [its elements]
 *
 * Invariants: a loaded fixture owns all its memory (model_fixture_free releases it); tensor
 * data is host-endian after loading; the runner never modifies the fixture. The runner
 * compares f32 outputs normwise (errors of matrix-product sums scale with the magnitude of the
 * whole tensor, not of one element) and reports the largest elementwise relative error too.
 * reference: tests/reference/gen_fixtures.py (the generator, PyTorch 1.13).
 */
#ifndef SWITCHSIM_MODEL_FIXTURE_H
#define SWITCHSIM_MODEL_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define MODEL_FIXTURE_VERSION 1u
#define MODEL_FIXTURE_MAX_RANK 4
#define MODEL_FIXTURE_MAX_NAME 95
#define MODEL_FIXTURE_MAX_KIND 31
#define MODEL_FIXTURE_MAX_PARAMS_LEN 8192u
#define MODEL_FIXTURE_MAX_TENSORS 256u
#define MODEL_FIXTURE_MAX_ELEMS (1u << 24)
#define MODEL_FIXTURE_MAX_FILE ((size_t)256 << 20)

typedef enum { MODEL_FIXTURE_F32 = 0, MODEL_FIXTURE_I32 = 1 } model_fixture_dtype;
typedef enum { MODEL_FIXTURE_INPUT = 0, MODEL_FIXTURE_OUTPUT = 1 } model_fixture_role;

typedef struct {
    char name[MODEL_FIXTURE_MAX_NAME + 1];
    model_fixture_role role;
    model_fixture_dtype dtype;
    int rank;                            /* 0 .. MODEL_FIXTURE_MAX_RANK */
    size_t dims[MODEL_FIXTURE_MAX_RANK]; /* [rank]; unused entries 1 */
    size_t count;                        /* product of dims (1 for rank 0) */
    float tol;                           /* f32 outputs: normwise relative tolerance */
    float *f32;                          /* [count] when dtype is F32, else NULL */
    int32_t *i32;                        /* [count] when dtype is I32, else NULL */
} model_fixture_tensor;

typedef struct {
    char key[48];
    char value[128];
} model_fixture_param;

typedef struct {
    char path[512];                      /* for messages */
    char kind[MODEL_FIXTURE_MAX_KIND + 1];
    model_fixture_param *params;         /* [nparams] in file order */
    size_t nparams;
    model_fixture_tensor *tensors;       /* [ntensors] in file order */
    size_t ntensors;
} model_fixture;

/* One compared output. */
typedef struct {
    char name[MODEL_FIXTURE_MAX_NAME + 1];
    model_fixture_dtype dtype;
    int rank;
    size_t dims[MODEL_FIXTURE_MAX_RANK];
    double max_abs_err;   /* max |c - r| (i32: as integers) */
    double max_rel_err;   /* f32: max |c - r| / max |r| (normwise; max_abs_err when r == 0);
                           * i32: 0 or 1 (any mismatch) */
    double max_elem_rel;  /* f32: max |c - r| / |r| over elements with r != 0 */
    size_t mismatches;    /* i32: elements that differ; f32: non-finite C values */
    double tol;           /* f32: the fixture's tolerance; i32: 0 */
    int pass;
} model_fixture_row;

typedef struct {
    model_fixture_row *rows; /* [nrows], in the fixture's output order */
    size_t nrows;
    int pass;                /* every row passes */
} model_fixture_report;

/* Parses a fixture image of n bytes; `what` names it in messages (a path). On error *fx is
 * left empty (nothing to free). */
ss_status model_fixture_parse(model_fixture *fx, const uint8_t *buf, size_t n, const char *what,
                              ss_err *err);
/* Reads and parses a fixture file. */
ss_status model_fixture_load(model_fixture *fx, const char *path, ss_err *err);
void model_fixture_free(model_fixture *fx);

/* The tensor called name, or NULL. */
const model_fixture_tensor *model_fixture_find(const model_fixture *fx, const char *name);
/* The value of parameter key, or NULL. */
const char *model_fixture_param_str(const model_fixture *fx, const char *key);

/* CRC-32 (IEEE, reflected, polynomial 0xEDB88320; zlib.crc32) of n bytes, from crc 0. */
uint32_t model_fixture_crc32(const uint8_t *buf, size_t n);

/* Runs the fixture's kind on its inputs and compares every output tensor. SS_ERR_DATA (with
 * a message naming the fixture) when the fixture cannot be run: unknown kind, missing or
 * misshapen tensors, bad parameters, or an output the kind does not produce; a numerical
 * mismatch is not an error: it is a failing row of *rep. err must not be NULL. Free *rep
 * with model_fixture_report_free. */
ss_status model_fixture_run(model_fixture_report *rep, const model_fixture *fx, ss_err *err);
void model_fixture_report_free(model_fixture_report *rep);

#endif
