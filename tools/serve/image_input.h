/* The input image of a job, as strangers send it: PNG, JPEG or WebP bytes (a file part, a data:
 * URL, or a remote URL when the server allows fetching). The header is read first and the
 * dimensions bounded before any decoder runs (decompression bombs), then the image is decoded
 * with the one decoder of its format. */
#pragma once

#include <gio/gio.h>

#include <i2v/image.h>

G_BEGIN_DECLS

#define IMAGE_INPUT_ERROR (image_input_error_quark())

typedef enum {
  IMAGE_INPUT_ERROR_UNSUPPORTED, /* not PNG, JPEG or WebP, or not decodable (HTTP 415) */
  IMAGE_INPUT_ERROR_TOO_LARGE,   /* more pixels than allowed, or a file above the limit (413) */
  IMAGE_INPUT_ERROR_BAD_URL,     /* a malformed data: URL, a refused or failed fetch (400) */
} ImageInputErrorCode;

/* The GQuark of the IMAGE_INPUT_ERROR domain. */
GQuark image_input_error_quark(void);

typedef enum { IMAGE_PNG, IMAGE_JPEG, IMAGE_WEBP } ImageFormat;

/* The MIME type of a format ("image/png", ...); static. */
const char *image_format_mime(ImageFormat format);

/* Reads the format and dimensions from the first bytes of an image file without decoding it. */
gboolean image_input_probe(const guint8 *data, gsize size, ImageFormat *format, guint *width,
                           guint *height, GError **error);

/* Decodes data to RGB8 (alpha dropped, as the engine does) after checking its header, refusing
 * images of more than max_pixels pixels. Free out with i2v_image_clear. */
gboolean image_input_decode(GBytes *data, guint64 max_pixels, I2vImage *out, GError **error);

/* The bytes of a base64 "data:" URL (at most max_bytes once decoded); a new GBytes. */
GBytes *image_input_from_data_url(const char *url, gsize max_bytes, GError **error);

/* Fetches an http(s) URL (at most max_bytes, 30 s); a new GBytes. Blocks: call it from a
 * worker thread. */
GBytes *image_input_fetch(const char *url, gsize max_bytes, GError **error);

G_END_DECLS
