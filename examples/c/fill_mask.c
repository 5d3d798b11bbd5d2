/*
 * fill_mask: transformers' fill-mask pipeline from C, through include/albert.h.
 *
 *   fill_mask [--mmap] [--top-k K] MODEL.albq TEXT...
 *
 * For each TEXT prints one line, byte for byte what `albert fill-mask --json TEXT` prints:
 * a JSON list of {"score","token","token_str","sequence"} objects (a list of such lists
 * when the text has several [MASK]s). The model is read into 8-byte aligned memory and
 * opened with albert_model_open_bytes, as firmware would with a blob in flash; --mmap
 * opens it with albert_model_open_path instead. All memory is the caller's: the handle,
 * the blob, the scratch, the candidates and their strings.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "albert.h"

static AlbertModel model; /* 24 KiB: static storage rather than the stack */

static void die(const char *what, int32_t status) {
  char msg[512];
  albert_last_error(&model, msg, sizeof msg, NULL);
  fprintf(stderr, "fill_mask: %s: %s: %s\n", what, albert_status_name(status), msg);
  exit(1);
}

/* A JSON string as serde_json writes it: ", \ and control characters escaped, the rest raw. */
static void print_json_string(const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  putchar('"');
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"': fputs("\\\"", stdout); break;
    case '\\': fputs("\\\\", stdout); break;
    case '\b': fputs("\\b", stdout); break;
    case '\f': fputs("\\f", stdout); break;
    case '\n': fputs("\\n", stdout); break;
    case '\r': fputs("\\r", stdout); break;
    case '\t': fputs("\\t", stdout); break;
    default:
      if (c < 0x20) {
        printf("\\u00%c%c", hex[c >> 4], hex[c & 15]);
      } else {
        putchar(c);
      }
    }
  }
  putchar('"');
}

/*
 * An f32 as serde_json writes it (ryu): the shortest digits that read back as the same
 * float, then plain notation when 10^(kk-1) <= |v| < 10^kk for kk in (-6, 13], else scientific.
 */
static void print_json_f32(float v) {
  char buf[40], digits[16];
  int prec, len = 0, exp10;
  if (v != v || v - v != 0) { /* NaN or infinite: serde_json writes null */
    fputs("null", stdout);
    return;
  }
  if (v == 0) {
    fputs(signbit(v) ? "-0.0" : "0.0", stdout);
    return;
  }
  for (prec = 1; prec <= 9; prec++) {
    snprintf(buf, sizeof buf, "%.*e", prec - 1, (double)v);
    if (strtof(buf, NULL) == v) break;
  }
  const char *p = buf;
  if (*p == '-') {
    putchar('-');
    p++;
  }
  for (; *p != 'e'; p++) {
    if (*p != '.') digits[len++] = *p;
  }
  exp10 = atoi(p + 1);
  while (len > 1 && digits[len - 1] == '0') len--; /* never happens for shortest digits */
  int kk = exp10 + 1;      /* v = 0.DIGITS × 10^kk */
  int k = kk - len;        /* v = DIGITS × 10^k */
  if (k >= 0 && kk <= 13) { /* 1234e7 -> 12340000000.0 */
    printf("%.*s", len, digits);
    for (int i = 0; i < k; i++) putchar('0');
    fputs(".0", stdout);
  } else if (kk > 0 && kk <= 13) { /* 1234e-2 -> 12.34 */
    printf("%.*s.%.*s", kk, digits, len - kk, digits + kk);
  } else if (kk > -6 && kk <= 0) { /* 1234e-6 -> 0.001234 */
    fputs("0.", stdout);
    for (int i = 0; i < -kk; i++) putchar('0');
    printf("%.*s", len, digits);
  } else if (len == 1) { /* 1e30 */
    printf("%ce%d", digits[0], kk - 1);
  } else { /* 1234e30 -> 1.234e33 */
    printf("%c.%.*se%d", digits[0], len - 1, digits + 1, kk - 1);
  }
}

static void *read_aligned(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "fill_mask: %s: %s\n", path, strerror(errno));
    exit(1);
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  /* The blob must start at an 8-byte aligned address; malloc's is (64 is nicer for SIMD). */
  void *buf = aligned_alloc(64, ((size_t)n + 63) / 64 * 64);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fprintf(stderr, "fill_mask: cannot read %s\n", path);
    exit(1);
  }
  fclose(f);
  *len = (size_t)n;
  return buf;
}

int main(int argc, char **argv) {
  int use_mmap = 0, arg = 1;
  size_t top_k = 5;
  for (; arg < argc && strncmp(argv[arg], "--", 2) == 0; arg++) {
    if (strcmp(argv[arg], "--mmap") == 0) {
      use_mmap = 1;
    } else if (strcmp(argv[arg], "--top-k") == 0 && arg + 1 < argc) {
      top_k = (size_t)strtoul(argv[++arg], NULL, 10);
      if (top_k == 0) {
        fprintf(stderr, "fill_mask: --top-k must be at least 1\n");
        return 2;
      }
    } else {
      break;
    }
  }
  if (argc - arg < 2) {
    fprintf(stderr, "usage: fill_mask [--mmap] [--top-k K] MODEL.albq TEXT...\n");
    return 2;
  }
  if (albert_abi_version() != ALBERT_ABI_VERSION || albert_model_storage_size() != sizeof(AlbertModel)) {
    fprintf(stderr, "fill_mask: albert.h does not match the library\n");
    return 1;
  }
  const char *path = argv[arg++];
  void *blob = NULL;
  int32_t st;
  if (use_mmap) {
    st = albert_model_open_path(&model, path);
  } else {
    size_t len;
    blob = read_aligned(path, &len);
    st = albert_model_open_bytes(&model, blob, len);
  }
  if (st != ALBERT_OK) die("open", st);

  AlbertModelInfo info;
  if ((st = albert_model_info(&model, &info)) != ALBERT_OK) die("info", st);
  if (!(info.heads & ALBERT_HEAD_MASKED_LM)) {
    fprintf(stderr, "fill_mask: this model has no masked-LM head\n");
    return 1;
  }

  for (; arg < argc; arg++) {
    const char *text = argv[arg];
    size_t text_len = strlen(text), scratch_len;
    if ((st = albert_fill_mask_scratch_bytes(&model, text_len, &scratch_len)) != ALBERT_OK) die("scratch size", st);
    void *scratch = malloc(scratch_len);
    /* A first guess at the output sizes; the call says what suffices when they are short. */
    size_t cap = top_k, count = 0, strings_len = 256, used = 0;
    AlbertFillMaskCandidate *out = NULL;
    char *strings = NULL;
    for (;;) {
      out = realloc(out, (cap ? cap : 1) * sizeof *out);
      strings = realloc(strings, strings_len);
      st = albert_fill_mask(&model, text, text_len, top_k, scratch, scratch_len, out, cap, &count, strings,
                            strings_len, &used);
      if (st != ALBERT_ERR_BUFFER_TOO_SMALL || (count <= cap && used <= strings_len)) break;
      if (count > cap) cap = count;
      if (used > strings_len) strings_len = used;
    }
    if (st != ALBERT_OK) die("fill-mask", st);

    int several = count > 0 && out[count - 1].mask_index > 0;
    if (several) putchar('[');
    for (size_t i = 0; i < count; i++) {
      const AlbertFillMaskCandidate *c = &out[i];
      int first_of_mask = i == 0 || out[i - 1].mask_index != c->mask_index;
      if (first_of_mask) fputs(i == 0 ? "[" : "],[", stdout);
      else putchar(',');
      fputs("{\"score\":", stdout);
      print_json_f32(c->score);
      printf(",\"token\":%u,\"token_str\":", (unsigned)c->token);
      print_json_string(c->token_str, c->token_str_len);
      fputs(",\"sequence\":", stdout);
      print_json_string(c->sequence, c->sequence_len);
      putchar('}');
    }
    putchar(']');
    if (several) putchar(']');
    putchar('\n');
    free(out);
    free(strings);
    free(scratch);
  }
  albert_model_close(&model);
  free(blob);
  return 0;
}
