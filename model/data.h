/* This file declares the training data pipeline: an English corpus read from Debian's
 * `fortunes` package, a byte-level vocabulary with T5's 100 sentinels, T5 span corruption
 * (random_spans_noise_mask + noise_span_to_unique_sentinel), a held-out split, deterministic
 * shuffling and batching.
 *
 * Vocabulary (V = MODEL_DATA_VOCAB_SIZE = 384, a multiple of 128 like T5's 32128):
 *   0 .. 255    the bytes of the text (token id = byte value)
 *   256 .. 355  sentinels; <extra_id_k> = 355 - k, so they count down from the top of the
 *               used ids as T5's do (<extra_id_0> = vocab_size - 1 of the vocabulary)
 *   356         pad (also the decoder's start token, as in T5)
 *   357         eos
 *   358 .. 383  never produced: embedding rows that pad V to a multiple of 128
 *
 * Corpus and examples: fortunes (texts between lines holding only "%") are packed into one
 * byte stream, each fortune ending with '\n' and fortunes separated by one more '\n' (a blank
 * line). T5 packs documents without separators; a blank line keeps fortunes apart without a
 * token the model must learn to ignore. The stream is cut into chunks of R raw tokens (R from
 * model_data_span_lengths, 568 for input_length 512); the trailing partial chunk is dropped.
 * A fixed permutation drawn from split_seed holds out round(heldout_fraction * chunks) chunks
 * (at least one when the fraction is > 0) for evaluation; they never appear in training, and
 * the split does not depend on the training seed. Training example g (g = step * B + b) lives
 * in epoch e = g / n_train at position j = g % n_train of that epoch's order, a Fisher-Yates
 * permutation of the training chunks seeded from (seed, e); its noise mask comes from its own
 * rng stream seeded from (seed, e, j). Held-out example g is held-out chunk g % n_heldout in
 * index order with a stream from (split_seed, j): the evaluation set is the same on every pass
 * and for every training seed. Every example is therefore a pure function of (corpus, cfg,
 * split, g): a batch for step s built by a fresh dataset equals batch s of a sequential run.
 *
 * Span corruption follows t5.data.preprocessors.span_corruption: num_noise_tokens =
 * round(R * density), num_noise_spans = round(num_noise_tokens / mean_span) (rounding half to
 * even in binary32, as TensorFlow does), noise and non-noise span lengths by random
 * segmentation (a shuffled 0/1 indicator array), spans interleaved starting with non-noise
 * (so the mask ends with noise). Inputs: non-noise tokens with each noise span replaced by the
 * next sentinel, then eos. Targets: each sentinel followed by its noise span, then eos.
 * Replacing each sentinel of the inputs by its span from the targets gives back the chunk.
 * random_spans_helper rounds in binary64 (Python) but the mask in binary32 (TensorFlow); for
 * 18 input lengths up to the sentinel limit (the first is 172: R = 190, 190 * 0.15 is below a
 * half in binary64 and above it in binary32) the mask has one more noise token and span than
 * the helper says: inputs are still exactly input_length, targets are 2 longer. T5 truncates
 * such targets to the helper's length; here T_out defaults to the mask's count (span_targets).
 *
 * Invariants: rows are pad-filled past eos; decoder inputs are the targets shifted right by
 * one with pad as the start token; loss code ignores target positions holding pad. All
 * randomness comes from common/rng.h, so everything is bit-reproducible from the seeds.
 * reference: C. Raffel et al., "Exploring the Limits of Transfer Learning with a Unified
 * Text-to-Text Transformer", JMLR 21, 2020, section 3.1.4 and t5/data/preprocessors.py
 * (random_spans_helper, random_spans_noise_mask, noise_span_to_unique_sentinel); L. Xue et
 * al., "ByT5", TACL 2022 (byte vocabulary padded to 384).
 */
#ifndef SWITCHSIM_MODEL_DATA_H
#define SWITCHSIM_MODEL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"
#include "common/status.h"

#define MODEL_DATA_NUM_BYTES 256
#define MODEL_DATA_NUM_SENTINELS 100
#define MODEL_DATA_SENTINEL_FIRST 256 /* lowest sentinel id: <extra_id_99> */
#define MODEL_DATA_PAD_ID 356
#define MODEL_DATA_EOS_ID 357
#define MODEL_DATA_VOCAB_USED 358     /* ids below this are ever produced */
#define MODEL_DATA_VOCAB_SIZE 384     /* V: VOCAB_USED rounded up to a multiple of 128 */

/* Where Debian's `fortunes` package puts its English fortune files. */
#define MODEL_DATA_FORTUNES_DIR "/usr/share/games/fortunes"

/* The id of <extra_id_k>, k in [0, 100): 355 - k. */
int32_t model_data_sentinel(int k);
/* k when id is <extra_id_k>, else -1. */
int model_data_sentinel_index(int32_t id);

/* ---- corpus ------------------------------------------------------------------------------ */

typedef struct {
    uint8_t *text;      /* [n_bytes] packed fortunes, each ending '\n', separated by "\n" */
    size_t n_bytes;
    size_t n_files;     /* fortune files read */
    size_t n_fortunes;  /* non-empty fortunes packed */
} model_data_corpus;

/* Reads fortune files into one packed text. Each path is a fortune file or a directory; a
 * directory contributes its regular files in name order, skipping hidden files, the binary
 * indexes (*.dat), the *.u8 links (duplicates of the plain files) and every subdirectory (off/
 * holds the offensive fortunes, others hold other languages). A file holding a NUL byte is
 * rejected as binary. A missing path or a corpus without fortunes is an error whose message
 * says to install the Debian package fortunes when the path is the package's directory. */
ss_status model_data_corpus_load(model_data_corpus *c, const char *const *paths, size_t n_paths,
                                 ss_err *err);
void model_data_corpus_free(model_data_corpus *c);

/* ---- span corruption --------------------------------------------------------------------- */

/* random_spans_helper: the raw length R that span corruption turns into input_length tokens
 * (eos included) and the targets length it yields (eos included); 512 -> R 568, targets 114;
 * 128 -> R 141, targets 29. density in (0, 0.5], mean_span >= 1, input_length >= 2. */
ss_status model_data_span_lengths(int *raw_length, int *targets_length, int input_length,
                                  double density, double mean_span, ss_err *err);

typedef struct {
    size_t noise_tokens;  /* tokens replaced in the inputs (predicted in the targets) */
    size_t noise_spans;   /* = non-noise spans = sentinels per example */
} model_data_span_counts;

/* The counts random_spans_noise_mask uses for n tokens (binary32 rounding, at least one noise
 * and one non-noise token and one span; n < 2 is counted as 2). density 0: no noise. */
model_data_span_counts model_data_noise_counts(size_t n, double density, double mean_span);

/* Scratch entries model_data_noise_mask needs for n tokens. */
#define MODEL_DATA_MASK_SCRATCH(n) (2 * (size_t)(n) + 4)

/* mask[n] = random_spans_noise_mask(n): 1 = noise. scratch has MODEL_DATA_MASK_SCRATCH(n)
 * entries. Draws from r: the noise segmentation's shuffle, then the non-noise one's. */
void model_data_noise_mask(uint8_t *mask, uint32_t *scratch, size_t n, double density,
                           double mean_span, rng_state *r);

/* inputs[T_in], targets[T_out] from tokens[n] and mask[n]: inputs = noise spans replaced by
 * <extra_id_0>, <extra_id_1>, ... then eos; targets = non-noise spans replaced by sentinels in
 * the same way, then eos (for a mask that starts with non-noise and ends with noise, as
 * noise_mask's do: each sentinel followed by its noise span). Rows are pad-filled. Fails with
 * SS_ERR_RANGE when a row needs more than 100 sentinels or does not fit. */
ss_status model_data_span_corrupt(int32_t *inputs, int32_t *targets, const int32_t *tokens,
                                  const uint8_t *mask, size_t n, size_t T_in, size_t T_out,
                                  ss_err *err);

/* dec[B, T] = targets[B, T] shifted right by one per row, dec[b, 0] = pad (T5 shift_right). */
void model_data_shift_right(int32_t *dec, const int32_t *targets, size_t B, size_t T);

/* ---- dataset ----------------------------------------------------------------------------- */

typedef enum { MODEL_DATA_TRAIN = 0, MODEL_DATA_HELDOUT } model_data_split;

typedef struct {
    int input_length;        /* T_in: encoder tokens per example, eos included */
    int target_length;       /* T_out: decoder tokens per example; 0: exactly what span
                                corruption produces (114 for T_in 512) */
    double noise_density;    /* fraction of raw tokens corrupted (T5: 0.15) */
    double mean_span;        /* mean noise span length in tokens (T5: 3.0) */
    double heldout_fraction; /* of the chunks, in [0, 0.5] */
    uint64_t seed;           /* training order and noise masks */
    uint64_t split_seed;     /* which chunks are held out, and the held-out noise masks */
} model_data_cfg;

/* T5's span corruption (0.15, 3.0), 5% held out, split_seed MODEL_DATA_SPLIT_SEED. */
#define MODEL_DATA_SPLIT_SEED UINT64_C(0x5eedda7a)
model_data_cfg model_data_cfg_t5(int input_length, int target_length, uint64_t seed);

typedef struct {
    model_data_cfg cfg;      /* target_length resolved (never 0) */
    const uint8_t *text;     /* borrowed from the corpus, which must outlive the dataset */
    int raw_length;          /* R: corpus tokens per example */
    int span_inputs;         /* inputs per example before padding, eos included (<= T_in) */
    int span_targets;        /* targets per example before padding, eos included (<= T_out) */
    model_data_span_counts counts; /* per example (the same for every example) */
    size_t n_chunks;         /* floor(corpus bytes / R) */
    size_t n_train, n_heldout;
    uint32_t *train_chunks;  /* [n_train] chunk indices, ascending */
    uint32_t *heldout_chunks;/* [n_heldout] chunk indices, ascending */
    uint32_t *order;         /* [n_chunks]; the first n_train: epoch order_epoch's order as
                                positions into train_chunks */
    uint64_t order_epoch;    /* UINT64_MAX while order is not filled */
    int32_t *tokens;         /* [R] scratch: the chunk being corrupted */
    uint8_t *mask;           /* [R] scratch */
    uint32_t *seg;           /* [MODEL_DATA_MASK_SCRATCH(R)] scratch */
} model_data;

/* A dataset is not thread-safe: examples share its scratch arrays and epoch-order cache.
 * Checks cfg against the corpus (lengths, sentinel count, at least one training chunk and, with
 * a held-out fraction, one held-out chunk) and draws the split. */
ss_status model_data_init(model_data *ds, const model_data_corpus *corpus,
                          const model_data_cfg *cfg, ss_err *err);
void model_data_free(model_data *ds);

/* The chunk index behind example g of a split (its text starts at byte chunk * R); the split
 * must hold chunks. */
size_t model_data_chunk_of(model_data *ds, model_data_split split, uint64_t g);

/* inputs[T_in], targets[T_out]: example g of a split (epochs wrap around). */
ss_status model_data_example(int32_t *inputs, int32_t *targets, model_data *ds,
                             model_data_split split, uint64_t g, ss_err *err);

/* The batch of step `step`: inputs[B, T_in], targets[B, T_out], decoder_inputs[B, T_out]
 * (targets shifted right, pad first); row b is example step * B + b of the split. */
ss_status model_data_batch(int32_t *inputs, int32_t *targets, int32_t *decoder_inputs,
                           model_data *ds, model_data_split split, uint64_t step, int B,
                           ss_err *err);

#endif
