/* This file declares training checkpoints: a versioned little-endian binary file holding
 * everything a training run needs to continue bit for bit (parameters, optimizer state, step,
 * seed, data position, the training rng stream) plus what identifies the run it belongs to
 * (model name and config hash, a hash of the other trajectory-deciding settings), closed by a
 * checksum.
 *
 * Format, version 1 (every integer little-endian; floats IEEE-754 bit patterns, LE):
 *
 *   offset  bytes  field
 *        0      8  magic "SWSIMCKP"
 *        8      4  version (MODEL_CKPT_VERSION)
 *       12      4  header bytes (MODEL_CKPT_HEADER_BYTES = 256)
 *       16     64  model name, NUL-padded
 *       80      8  model config hash (model_ckpt_model_hash)
 *       88      8  settings hash (the trainer's: numerics, optimizer, schedule, batch,
 *                  lengths, data; see model/train.h)
 *       96      8  nparams: floats of parameters
 *      104      4  optimizer (run_optimizer: 0 adafactor, 1 adamw)
 *      108      4  rng has_spare (0 or 1)
 *      112      8  optimizer state size, floats
 *      120      8  step: updates applied
 *      128      8  seed
 *      136      8  data position: training examples consumed (step * batch)
 *      144      8  tokens: non-pad target tokens trained on so far
 *      152      8  wall seconds of training so far (binary64)
 *      160     32  rng state s[0..3] (xoshiro256**, common/rng.h)
 *      192      8  rng spare normal deviate (binary64)
 *      200     56  zero
 *      256  4 * nparams          parameters (binary32)
 *        .  4 * state size       optimizer state (binary32, optim.h's layout)
 *        .      8  checksum: FNV-1a 64 of every byte before it
 *
 * Reading checks, in this order, and fails with SS_ERR_DATA and the message
 * "PATH: CHECK check failed: ..." stating what was expected and what was found, CHECK being one
 * of: magic, version, header size, size (a truncated or overlong file), checksum; then against
 * the caller's expectation (SS_ERR_DATA too): model (name and config hash), nparams,
 * optimizer, state size, seed, settings. The checksum is verified before any field is compared
 * with the caller's run, so damage reads as a size failure when the file's length disagrees
 * with its header (truncation) and as a checksum failure otherwise, never as a wrong model.
 * FNV-1a changes on any single-byte change (each step is a bijection of the running hash).
 *
 * Invariants: a checkpoint is written atomically (common/fileio.h: temporary file in the
 * same directory, fsync, rename), so PATH holds either the old checkpoint or the new one and
 * no temporary is left behind; reading never modifies the file.
 * reference: G. Fowler, L. C. Noll, K.-P. Vo, FNV hash (FNV-1a, 64-bit offset basis
 * 0xcbf29ce484222325, prime 0x100000001b3).
 */
#ifndef SWITCHSIM_MODEL_CHECKPOINT_H
#define SWITCHSIM_MODEL_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"
#include "common/status.h"
#include "model/model_cfg.h"

#define MODEL_CKPT_MAGIC "SWSIMCKP"
#define MODEL_CKPT_VERSION 1u
#define MODEL_CKPT_HEADER_BYTES 256u
#define MODEL_CKPT_FNV_OFFSET UINT64_C(0xcbf29ce484222325)

typedef struct {
    char model_name[64];     /* the model config's name */
    uint64_t model_hash;     /* model_ckpt_model_hash of the model config */
    uint64_t settings_hash;  /* the trainer's hash of the other settings deciding the run */
    uint64_t nparams;        /* floats of parameters */
    uint32_t optimizer;      /* run_optimizer */
    uint64_t opt_state_size; /* floats of optimizer state */
    uint64_t step;           /* updates applied */
    uint64_t seed;
    uint64_t data_position;  /* training examples consumed */
    uint64_t tokens;         /* non-pad target tokens trained on */
    double wall_seconds;     /* training wall time so far (informational, not compared) */
    rng_state rng;           /* the training rng stream, as the next step will use it */
} model_ckpt_header;

/* FNV-1a 64 of bytes p[0..n) continuing from h (start from MODEL_CKPT_FNV_OFFSET). */
uint64_t model_ckpt_fnv1a(uint64_t h, const void *p, size_t n);
/* FNV-1a 64 of the model config's canonical JSON (cfg_to_json, keys sorted, compact). */
uint64_t model_ckpt_model_hash(const model_cfg *cfg);
/* Bytes of a checkpoint with these array sizes (SIZE_MAX on overflow). */
size_t model_ckpt_file_bytes(uint64_t nparams, uint64_t opt_state_size);

/* Writes h, params[h->nparams] and opt_state[h->opt_state_size] to path atomically. */
ss_status model_ckpt_write(const char *path, const model_ckpt_header *h, const float *params,
                           const float *opt_state, ss_err *err);
/* Reads and verifies path's header (magic, version, header size, size, checksum). */
ss_status model_ckpt_read_header(const char *path, model_ckpt_header *h, ss_err *err);
/* Compares a verified header with the one the caller's run would write (model, nparams,
 * optimizer, state size, seed, settings); the message names path. */
ss_status model_ckpt_match(const char *path, const model_ckpt_header *got,
                           const model_ckpt_header *want, ss_err *err);
/* model_ckpt_read_header + model_ckpt_match(want), then reads the arrays into params
 * [want->nparams] and opt_state [want->opt_state_size]; *got receives the header. On error the
 * arrays may be partly written. */
ss_status model_ckpt_read(const char *path, const model_ckpt_header *want,
                          model_ckpt_header *got, float *params, float *opt_state, ss_err *err);

#endif
