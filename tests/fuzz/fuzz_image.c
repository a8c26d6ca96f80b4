/* libFuzzer target: the image decoding path (engine/image/image.c): format sniffing, the header
 * size check against the pixel limit (1 megapixel here, to keep runs fast) and the PNG / JPEG
 * decode. A decoded image has the size its header promised and fits the limit. */
#include <stdint.h>

#include "fuzz_common.h"
#include "image_limit.h"
#include <i2v/image.h>

#define LIMIT ((guint64)1 << 20)

static FuzzFile file;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  fuzz_quiet();
  fuzz_file_init(&file, "fuzz-image");
  i2v_image_set_max_pixels(LIMIT);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_file_set(&file, data, size);
  I2vImage img;
  GError *err = NULL;
  if (i2v_image_load(file.path, &img, &err)) {
    g_assert(img.width > 0 && img.height > 0 && (guint64)img.width * img.height <= LIMIT);
    i2v_image_clear(&img);
  } else {
    g_assert(err != NULL && img.rgb == NULL);
    g_error_free(err);
  }
  return 0;
}
