/*
 * errors: bad handles and bad inputs through the C API must come back as error codes,
 * never as a crash, and good calls must still work afterwards.
 *
 *   errors MODEL.albq
 *
 * Exits 0 when every check passes; prints each failing check otherwise.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "albert.h"

static int failures, checks;

#define EXPECT(call, want)                                                                           \
  do {                                                                                               \
    int32_t got_ = (call);                                                                           \
    checks++;                                                                                        \
    if (got_ != (want)) {                                                                            \
      failures++;                                                                                    \
      fprintf(stderr, "FAIL line %d: %s\n  returned %s, expected %s\n", __LINE__, #call,              \
              albert_status_name(got_), albert_status_name(want));                                   \
    }                                                                                                \
  } while (0)

#define TRUE(cond)                                                                                   \
  do {                                                                                               \
    checks++;                                                                                        \
    if (!(cond)) {                                                                                   \
      failures++;                                                                                    \
      fprintf(stderr, "FAIL line %d: %s\n", __LINE__, #cond);                                        \
    }                                                                                                \
  } while (0)

static AlbertModel good, bad, never;

static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "errors: %s: %s\n", path, strerror(errno));
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  /* 8 spare bytes so a misaligned copy fits. */
  unsigned char *buf = aligned_alloc(64, ((size_t)n + 8 + 63) / 64 * 64);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) exit(1);
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static int message_contains(const AlbertModel *m, const char *needle) {
  char msg[512];
  size_t len = 0;
  if (albert_last_error(m, msg, sizeof msg, &len) != ALBERT_OK) return 0;
  return len > 0 && strstr(msg, needle) != NULL;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: errors MODEL.albq\n");
    return 2;
  }
  size_t len;
  unsigned char *blob = read_file(argv[1], &len);
  const char *text = "The function returns a [MASK] of integers.";
  size_t text_len = strlen(text);
  AlbertFillMaskCandidate out[8];
  char strings[1024];
  size_t count, used;

  /* ---- library ---- */
  TRUE(albert_abi_version() == ALBERT_ABI_VERSION);
  TRUE(albert_model_storage_size() == sizeof(AlbertModel));
  for (int32_t c = 0; c >= -12; c--) TRUE(albert_status_name(c) != NULL);

  /* ---- opening: NULL pointers, misaligned, truncated, corrupted, missing ---- */
  EXPECT(albert_model_open_bytes(NULL, blob, len), ALBERT_ERR_NULL);
  EXPECT(albert_model_open_bytes(&bad, NULL, len), ALBERT_ERR_NULL);
  {
    uint64_t five = 0;
    EXPECT(albert_model_open_bytes(&bad, (const uint8_t *)&five, 5), ALBERT_ERR_BAD_MODEL);
    EXPECT(albert_model_close(&bad), ALBERT_OK);
    EXPECT(albert_model_open_bytes(&bad, (const uint8_t *)&five, 0), ALBERT_ERR_BAD_MODEL);
    EXPECT(albert_model_close(&bad), ALBERT_OK);
  }
  {
    uint64_t tiny[2] = {0, 0};
    EXPECT(albert_model_open_bytes(&bad, (const uint8_t *)tiny, sizeof tiny), ALBERT_ERR_BAD_MODEL);
    TRUE(message_contains(&bad, "magic") || message_contains(&bad, "truncated"));
    EXPECT(albert_model_close(&bad), ALBERT_OK);
  }
  EXPECT(albert_model_open_bytes(&bad, blob, 40), ALBERT_ERR_BAD_MODEL); /* truncated */
  EXPECT(albert_model_close(&bad), ALBERT_OK);
  {
    unsigned char *shifted = blob + 1; /* misaligned: copy the blob one byte further */
    memmove(shifted, blob, len);
    EXPECT(albert_model_open_bytes(&bad, shifted, len), ALBERT_ERR_ALIGNMENT);
    memmove(blob, shifted, len);
    EXPECT(albert_model_close(&bad), ALBERT_OK);
  }
  {
    unsigned char saved = blob[len / 2];
    blob[len / 2] ^= 0x5a; /* one corrupted byte in the middle: the checksum catches it */
    EXPECT(albert_model_open_bytes(&bad, blob, len), ALBERT_ERR_BAD_MODEL);
    TRUE(message_contains(&bad, "checksum"));
    /* The failed handle refuses work but gives its message and closes. */
    EXPECT(albert_fill_mask(&bad, text, text_len, 5, NULL, 0, out, 8, &count, strings, sizeof strings, &used),
           ALBERT_ERR_BAD_HANDLE);
    EXPECT(albert_model_close(&bad), ALBERT_OK);
    blob[len / 2] = saved;
    memcpy(blob, "NOTALBQ!", 8); /* bad magic */
    EXPECT(albert_model_open_bytes(&bad, blob, len), ALBERT_ERR_BAD_MODEL);
    TRUE(message_contains(&bad, "magic"));
    EXPECT(albert_model_close(&bad), ALBERT_OK);
    free(blob);
    blob = read_file(argv[1], &len);
  }
  EXPECT(albert_model_open_path(&bad, NULL), ALBERT_ERR_NULL);
  EXPECT(albert_model_open_path(&bad, "/nonexistent/model.albq"), ALBERT_ERR_IO);
  TRUE(message_contains(&bad, "/nonexistent/model.albq"));
  EXPECT(albert_model_close(&bad), ALBERT_OK);

  /* ---- bad handles: NULL, never opened, closed, closed twice ---- */
  AlbertModelInfo info;
  size_t bytes;
  EXPECT(albert_model_info(NULL, &info), ALBERT_ERR_NULL);
  TRUE(message_contains(NULL, "NULL")); /* the thread's last error */
  EXPECT(albert_model_info(&never, &info), ALBERT_ERR_BAD_HANDLE);
  memset(&never, 0xa5, sizeof never);
  EXPECT(albert_scratch_bytes(&never, 8, 1, &bytes), ALBERT_ERR_BAD_HANDLE);
  EXPECT(albert_model_info((const AlbertModel *)((char *)&never + 4), &info), ALBERT_ERR_BAD_HANDLE);
  EXPECT(albert_model_close(&never), ALBERT_ERR_BAD_HANDLE);
  EXPECT(albert_model_close(NULL), ALBERT_ERR_NULL);
  EXPECT(albert_model_open_bytes(&bad, blob, len), ALBERT_OK);
  EXPECT(albert_model_close(&bad), ALBERT_OK);
  EXPECT(albert_model_info(&bad, &info), ALBERT_ERR_BAD_HANDLE);
  EXPECT(albert_model_close(&bad), ALBERT_ERR_BAD_HANDLE);

  /* ---- a good handle, bad arguments ---- */
  EXPECT(albert_model_open_bytes(&good, blob, len), ALBERT_OK);
  EXPECT(albert_model_info(&good, NULL), ALBERT_ERR_NULL);
  EXPECT(albert_model_info(&good, &info), ALBERT_OK);
  TRUE(info.has_tokenizer == 1 && info.mask_token_id != UINT32_MAX && info.hidden_size > 0);

  size_t scratch_len;
  EXPECT(albert_fill_mask_scratch_bytes(&good, text_len, NULL), ALBERT_ERR_NULL);
  EXPECT(albert_fill_mask_scratch_bytes(&good, text_len, &scratch_len), ALBERT_OK);
  unsigned char *scratch = malloc(scratch_len);
  EXPECT(albert_fill_mask(&good, NULL, text_len, 5, scratch, scratch_len, out, 8, &count, strings, sizeof strings,
                          &used),
         ALBERT_ERR_NULL);
  EXPECT(albert_fill_mask(&good, text, text_len, 5, NULL, scratch_len, out, 8, &count, strings, sizeof strings,
                          &used),
         ALBERT_ERR_NULL);
  EXPECT(albert_fill_mask(&good, text, text_len, 5, scratch, 100, out, 8, &count, strings, sizeof strings, &used),
         ALBERT_ERR_BUFFER_TOO_SMALL);
  TRUE(message_contains(&good, "scratch"));
  EXPECT(albert_fill_mask(&good, "no mask here", 12, 5, scratch, scratch_len, out, 8, &count, strings,
                          sizeof strings, &used),
         ALBERT_ERR_BAD_INPUT);
  EXPECT(albert_fill_mask(&good, "bad \xff utf-8 [MASK]", 19, 5, scratch, scratch_len, out, 8, &count, strings,
                          sizeof strings, &used),
         ALBERT_ERR_BAD_INPUT);
  TRUE(message_contains(&good, "UTF-8"));
  /* Too few candidate slots, then too few string bytes: the call says what suffices. */
  EXPECT(albert_fill_mask(&good, text, text_len, 5, scratch, scratch_len, out, 3, &count, strings, sizeof strings,
                          &used),
         ALBERT_ERR_BUFFER_TOO_SMALL);
  TRUE(count == 5);
  EXPECT(albert_fill_mask(&good, text, text_len, 5, scratch, scratch_len, out, 8, &count, strings, 10, &used),
         ALBERT_ERR_BUFFER_TOO_SMALL);
  TRUE(used > 10 && used <= sizeof strings);
  EXPECT(albert_fill_mask(&good, text, text_len, 5, scratch, scratch_len, out, 8, &count, strings, used, &used),
         ALBERT_OK);
  TRUE(count == 5 && out[0].token_str != NULL && out[0].sequence != NULL && out[0].score >= out[4].score);
  TRUE(strlen(out[4].sequence) == out[4].sequence_len);

  /* ---- tokenize ---- */
  uint32_t ids[64], type_ids[64], mask[64], offsets[128];
  size_t n = 0, tok_scratch_len;
  EXPECT(albert_tokenize_scratch_bytes(&good, text_len, 64, &tok_scratch_len), ALBERT_OK);
  unsigned char *tok_scratch = malloc(tok_scratch_len);
  EXPECT(albert_tokenize(&good, text, text_len, NULL, 0, NULL, tok_scratch, tok_scratch_len, ids, type_ids, mask,
                         offsets, 64, &n),
         ALBERT_OK);
  TRUE(n > 3 && ids[0] != ids[1] && mask[0] == 1);
  size_t full = n;
  EXPECT(albert_tokenize(&good, text, text_len, NULL, 0, NULL, tok_scratch, tok_scratch_len, ids, NULL, NULL, NULL,
                         3, &n),
         ALBERT_ERR_BUFFER_TOO_SMALL);
  TRUE(n == full);
  EXPECT(albert_tokenize(&good, text, text_len, NULL, 0, NULL, tok_scratch, tok_scratch_len, NULL, NULL, NULL, NULL,
                         64, &n),
         ALBERT_ERR_NULL);
  EXPECT(albert_tokenize(&good, text, text_len, NULL, 0, NULL, tok_scratch, tok_scratch_len, ids, NULL, NULL, NULL,
                         64, NULL),
         ALBERT_ERR_NULL);
  AlbertEncodeOptions opts = {1, 6, 99, 0};
  EXPECT(albert_tokenize(&good, text, text_len, NULL, 0, &opts, tok_scratch, tok_scratch_len, ids, NULL, NULL, NULL,
                         64, &n),
         ALBERT_ERR_INVALID_ARGUMENT);
  opts.truncation = ALBERT_TRUNCATION_LONGEST_FIRST;
  opts.pad_to_max_length = 1;
  EXPECT(albert_tokenize(&good, text, text_len, NULL, 0, &opts, tok_scratch, tok_scratch_len, ids, NULL, NULL, NULL,
                         64, &n),
         ALBERT_OK);
  TRUE(n == 6);
  EXPECT(albert_tokenize(&good, text, text_len, NULL, 0, NULL, tok_scratch, 16, ids, NULL, NULL, NULL, 64, &n),
         ALBERT_ERR_BUFFER_TOO_SMALL);

  /* ---- tensors: forward, embed, classify ---- */
  size_t seq = full, h = info.hidden_size;
  EXPECT(albert_tokenize(&good, text, text_len, NULL, 0, NULL, tok_scratch, tok_scratch_len, ids, type_ids, mask,
                         offsets, 64, &n),
         ALBERT_OK);
  AlbertInputs in = {ids, type_ids, mask, 1, seq};
  size_t fwd_len;
  EXPECT(albert_scratch_bytes(&good, seq, 1, &fwd_len), ALBERT_OK);
  unsigned char *fwd = malloc(fwd_len);
  float *hidden = malloc(seq * h * sizeof(float));
  EXPECT(albert_forward(&good, NULL, fwd, fwd_len, hidden, seq * h), ALBERT_ERR_NULL);
  EXPECT(albert_forward(&good, &in, fwd, fwd_len, hidden, seq * h - 1), ALBERT_ERR_BUFFER_TOO_SMALL);
  EXPECT(albert_forward(&good, &in, fwd, fwd_len - 64, hidden, seq * h), ALBERT_ERR_BUFFER_TOO_SMALL);
  EXPECT(albert_forward(&good, &in, fwd, fwd_len, NULL, seq * h), ALBERT_ERR_NULL);
  EXPECT(albert_forward(&good, &in, fwd, fwd_len, (float *)((char *)hidden + 1), seq * h - 1),
         ALBERT_ERR_INVALID_ARGUMENT);
  AlbertInputs empty = {ids, NULL, NULL, 1, 0};
  EXPECT(albert_forward(&good, &empty, fwd, fwd_len, hidden, seq * h), ALBERT_ERR_BAD_INPUT);
  AlbertInputs no_ids = {NULL, NULL, NULL, 1, seq};
  EXPECT(albert_forward(&good, &no_ids, fwd, fwd_len, hidden, seq * h), ALBERT_ERR_NULL);
  AlbertInputs huge = {ids, NULL, NULL, SIZE_MAX / 2, 4};
  EXPECT(albert_forward(&good, &huge, fwd, fwd_len, hidden, seq * h), ALBERT_ERR_INVALID_ARGUMENT);
  uint32_t saved = ids[1];
  ids[1] = info.vocab_size; /* an id out of range */
  EXPECT(albert_forward(&good, &in, fwd, fwd_len, hidden, seq * h), ALBERT_ERR_BAD_INPUT);
  ids[1] = saved;
  type_ids[1] = info.type_vocab_size;
  EXPECT(albert_forward(&good, &in, fwd, fwd_len, hidden, seq * h), ALBERT_ERR_BAD_INPUT);
  type_ids[1] = 0;
  EXPECT(albert_forward(&good, &in, fwd, fwd_len, hidden, seq * h), ALBERT_OK);
  int finite = 1;
  for (size_t i = 0; i < seq * h; i++) finite &= isfinite(hidden[i]);
  TRUE(finite);
  float pooled[4096], mean[4096];
  EXPECT(albert_embed(&good, &in, 7, fwd, fwd_len, pooled, h), ALBERT_ERR_INVALID_ARGUMENT);
  if (h <= 4096) {
    EXPECT(albert_embed(&good, &in, ALBERT_EMBED_POOLER_OUTPUT, fwd, fwd_len, pooled, h),
           (info.heads & ALBERT_HEAD_POOLER) ? ALBERT_OK : ALBERT_ERR_UNSUPPORTED);
    EXPECT(albert_embed(&good, &in, ALBERT_EMBED_MEAN, fwd, fwd_len, mean, h), ALBERT_OK);
    float m0 = 0;
    for (size_t p = 0; p < seq; p++) m0 += hidden[p * h];
    TRUE(fabsf(m0 / (float)seq - mean[0]) < 1e-4f * (1 + fabsf(mean[0])));
  }
  float logits[64];
  EXPECT(albert_classify(&good, &in, fwd, fwd_len, logits, 64),
         (info.heads & ALBERT_HEAD_SEQUENCE_CLASSIFICATION) ? ALBERT_OK : ALBERT_ERR_UNSUPPORTED);
  char label[64];
  EXPECT(albert_label(&good, 1000000, label, sizeof label, NULL), ALBERT_ERR_BAD_INPUT);

  /* ---- messages ---- */
  char tiny[4];
  size_t mlen = 0;
  EXPECT(albert_last_error(&good, tiny, sizeof tiny, &mlen), ALBERT_OK);
  TRUE(strlen(tiny) <= 3 && mlen > 3);
  EXPECT(albert_last_error(&good, NULL, 0, &mlen), ALBERT_OK);
  EXPECT(albert_last_error(&good, NULL, 8, &mlen), ALBERT_ERR_NULL);

  /* ---- still works after all that ---- */
  EXPECT(albert_fill_mask(&good, text, text_len, 5, scratch, scratch_len, out, 8, &count, strings, sizeof strings,
                          &used),
         ALBERT_OK);
  EXPECT(albert_model_close(&good), ALBERT_OK);

  free(scratch);
  free(tok_scratch);
  free(fwd);
  free(hidden);
  free(blob);
  if (failures) {
    fprintf(stderr, "errors: %d of %d checks failed\n", failures, checks);
    return 1;
  }
  printf("errors: all %d checks passed\n", checks);
  return 0;
}
