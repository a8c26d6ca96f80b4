/* RGB8 images as the engine takes and gives them: decoding (GdkPixbuf) and PNG writing. */
#pragma once

#include <i2v/export.h>

#include <glib.h>

G_BEGIN_DECLS

/* A packed RGB image, rows of width*3 bytes, no padding. */
typedef struct {
  int width, height;
  guint8 *rgb;
} I2vImage;

/* Decodes a PNG or JPEG file (recognised by its first bytes; other formats are refused) to RGB8
 * (alpha dropped as PIL's convert("RGB") does). Only regular files are read; an image whose
 * header announces more pixels than the limit (64 megapixels unless I2V_MAX_IMAGE_PIXELS says
 * otherwise) is refused before it is decoded. Errors name the file. Free out with
 * i2v_image_clear. */
I2V_API gboolean i2v_image_load(const char *path, I2vImage *out, GError **error);

/* Writes img as an 8-bit RGB PNG. */
I2V_API gboolean i2v_image_save_png(const I2vImage *img, const char *path, GError **error);

/* An image of the given size, zero-filled (free with i2v_image_clear). */
I2V_API I2vImage i2v_image_new(int width, int height);

/* Frees the pixels and zeroes the struct. */
I2V_API void i2v_image_clear(I2vImage *img);

G_END_DECLS
