/* libFuzzer target: LoRA key names (engine/io/lora.c). Each input line is a tensor name; the
 * target writes a LoRA file of small float tensors under those names (shapes drawn from the name,
 * alpha tensors as scalars), opens it, and merges it into weights named after the keys. Every
 * step succeeds or fails with an error. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "lora.h"
#include "safetensors.h"

static FuzzFile file;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_quiet();
  fuzz_file_init(&file, "fuzz-lora.safetensors");
  return 0;
}

/* The weight name a key may target: prefix and LoRA suffix dropped, ".weight" added. */
static char *weight_name(const char *key) {
  const char *dot = strstr(key, ".lora");
  const char *start = strchr(key, '.');
  if (dot == NULL || start == NULL || start >= dot) return g_strdup(key);
  return g_strdup_printf("%.*s.weight", (int)(dot - start - 1), start + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = g_strndup((const char *)data, size);
  char **keys = g_strsplit(text, "\n", 64);
  I2vSafetensorsWriter *w = i2v_safetensors_writer_new();
  float values[16];
  for (int i = 0; i < 16; i++) values[i] = (float)(i % 5) - 2.0f;
  for (char **k = keys; *k != NULL; k++) {
    if (**k == '\0') continue;
    guint h = g_str_hash(*k);
    int64_t shape[2] = {1 + h % 4, 1 + (h / 4) % 4};
    gboolean alpha = g_str_has_suffix(*k, ".alpha");
    i2v_safetensors_writer_add(w, *k, I2V_DTYPE_F32, alpha ? 0 : 2, shape, values);
  }
  GError *err = NULL;
  if (!i2v_safetensors_writer_save(w, file.path, &err)) g_error("%s", err->message);
  i2v_safetensors_writer_free(w);
  I2vLora *lora = i2v_lora_open(file.path, &err);
  if (lora != NULL) {
    for (char **k = keys; *k != NULL; k++) {
      char *name = weight_name(*k);
      const char *component =
          g_str_has_prefix(*k, "text_encoder") || g_str_has_prefix(*k, "lora_te") ? "text_encoder"
                                                                                  : "unet";
      int64_t shape[2] = {1 + g_str_hash(name) % 4, 4};
      float weight[16] = {0};
      if (i2v_lora_targets(lora, component, name) &&
          !i2v_lora_apply(lora, component, name, 2, shape, weight, &err))
        g_clear_error(&err);
      g_free(name);
    }
    if (!i2v_lora_check_applied(lora, &err)) g_clear_error(&err);
    i2v_lora_free(lora);
  } else {
    g_assert(err != NULL && g_str_has_prefix(err->message, "LoRA"));
    g_clear_error(&err);
  }
  g_strfreev(keys);
  g_free(text);
  return 0;
}
