/* libFuzzer target: a safetensors file (header length, JSON header, data area). Whatever the
 * bytes, opening gives a reader or an error; every entry of a reader lies inside the file (its
 * values are read: a bad offset would fault) and converts or fails cleanly. */
#include <stdint.h>

#include "fuzz_common.h"
#include "safetensors.h"

static FuzzFile file;
static volatile guint8
    touched; /* the data bytes read, so that reading them is not optimised away */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_quiet();
  fuzz_file_init(&file, "fuzz.safetensors");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_file_set(&file, data, size);
  GError *err = NULL;
  I2vSafetensors *st = i2v_safetensors_open(file.path, &err);
  if (st == NULL) {
    g_assert(err != NULL && err->message[0] != '\0');
    g_error_free(err);
    return 0;
  }
  for (guint i = 0; i < i2v_safetensors_count(st); i++) {
    const I2vSafetensorsEntry *e = i2v_safetensors_entry(st, i);
    g_assert(i2v_safetensors_find(st, e->name) == e);
    if (!i2v_safetensors_check_finite(e, &err)) g_clear_error(&err);
    if (e->nbytes > (1 << 20)) continue; /* enough to see the data is there */
    for (size_t j = 0; j < e->nbytes; j++) touched ^= ((const guint8 *)e->data)[j];
    I2vTensor t;
    if (i2v_safetensors_read_f32(st, e->name, &t, &err))
      i2v_host_tensor_free(&t);
    else
      g_clear_error(&err);
  }
  i2v_safetensors_close(st);
  return 0;
}
