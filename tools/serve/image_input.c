/* Input images: header probes, bounded decoding (GdkPixbuf), data: URLs and fetching. */
#include "image_input.h"

#include <gdk-pixbuf/gdk-pixbuf.h>
#include <libsoup/soup.h>
#include <string.h>

G_DEFINE_QUARK(i2vgen - image - input - error - quark, image_input_error)

const char *image_format_mime(ImageFormat format) {
  static const char *const mimes[] = {"image/png", "image/jpeg", "image/webp"};
  return mimes[format];
}

static guint be16(const guint8 *p) {
  return (guint)p[0] << 8 | p[1];
}

static guint be32(const guint8 *p) {
  return (guint)p[0] << 24 | (guint)p[1] << 16 | (guint)p[2] << 8 | p[3];
}

static guint32 le32(const guint8 *p) {
  return (guint32)p[3] << 24 | (guint32)p[2] << 16 | (guint32)p[1] << 8 | p[0];
}

static guint le16(const guint8 *p) {
  return (guint)p[1] << 8 | p[0];
}

static guint le24(const guint8 *p) {
  return (guint)p[2] << 16 | (guint)p[1] << 8 | p[0];
}

static gboolean corrupt(GError **error, const char *format, const char *what) {
  g_set_error(error, IMAGE_INPUT_ERROR, IMAGE_INPUT_ERROR_UNSUPPORTED,
              "input_reference: a %s file with %s", format, what);
  return FALSE;
}

/* JPEG: the frame size is in the first start-of-frame segment (SOF0..SOF15 but DHT, JPG, DAC). */
static gboolean probe_jpeg(const guint8 *d, gsize n, guint *w, guint *h, gsize *sof,
                           GError **error) {
  gsize i = 2;
  while (i + 4 <= n) {
    if (d[i] != 0xff) return corrupt(error, "JPEG", "a broken segment structure");
    guint8 m = d[i + 1];
    if (m == 0xff) { /* fill byte */
      i++;
      continue;
    }
    if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) { /* markers without a length */
      i += 2;
      continue;
    }
    if (m == 0xd9 || m == 0xda) break; /* end of image, start of scan: no frame header before */
    guint len = be16(d + i + 2);
    if (len < 2) return corrupt(error, "JPEG", "a segment shorter than its length field");
    if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
      if (i + 9 > n) break;
      *h = be16(d + i + 5);
      *w = be16(d + i + 7);
      *sof = i;
      return TRUE;
    }
    i += 2 + len;
  }
  return corrupt(error, "JPEG", "no frame header (SOF) before the image data");
}

/* WebP: RIFF container; the size is in the VP8X canvas, or the VP8 / VP8L bitstream header. */
static gboolean probe_webp(const guint8 *d, gsize n, guint *w, guint *h, GError **error) {
  if (n < 30) return corrupt(error, "WebP", "a truncated header");
  if (memcmp(d + 12, "VP8X", 4) == 0) {
    *w = le24(d + 24) + 1;
    *h = le24(d + 27) + 1;
  } else if (memcmp(d + 12, "VP8 ", 4) == 0) {
    if (d[23] != 0x9d || d[24] != 0x01 || d[25] != 0x2a)
      return corrupt(error, "WebP", "a VP8 frame without its start code");
    *w = le16(d + 26) & 0x3fff;
    *h = le16(d + 28) & 0x3fff;
  } else if (memcmp(d + 12, "VP8L", 4) == 0) {
    if (d[20] != 0x2f) return corrupt(error, "WebP", "a VP8L stream without its signature");
    guint32 bits =
        (guint32)d[21] | (guint32)d[22] << 8 | (guint32)d[23] << 16 | (guint32)d[24] << 24;
    *w = (bits & 0x3fff) + 1;
    *h = ((bits >> 14) & 0x3fff) + 1;
  } else {
    return corrupt(error, "WebP", "an unknown first chunk");
  }
  return TRUE;
}

/* Decoders fill a truncated file's missing rows with black instead of failing, so the file's own
 * structure must be complete: PNG chunks up to IEND, a JPEG end-of-image marker after the frame
 * header, a WebP RIFF size within the file. */
static gboolean png_complete(const guint8 *d, gsize n) {
  gsize i = 8;
  while (i + 12 <= n) {
    guint32 len = be32(d + i);
    if (len > n - i - 12) return FALSE;
    if (memcmp(d + i + 4, "IEND", 4) == 0) return TRUE;
    i += 12 + (gsize)len;
  }
  return FALSE;
}

static gboolean jpeg_complete(const guint8 *d, gsize n, gsize sof) {
  for (gsize i = n; i >= sof + 2; i--) /* entropy-coded data never holds FF D9 (FF is stuffed) */
    if (d[i - 2] == 0xff && d[i - 1] == 0xd9) return TRUE;
  return FALSE;
}

gboolean image_input_probe(const guint8 *d, gsize n, ImageFormat *format, guint *width,
                           guint *height, GError **error) {
  static const guint8 png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  gboolean ok;
  *width = *height = 0;
  if (n >= 8 && memcmp(d, png_sig, 8) == 0) {
    *format = IMAGE_PNG;
    ok = n >= 24 && memcmp(d + 12, "IHDR", 4) == 0;
    if (!ok) return corrupt(error, "PNG", "no IHDR chunk first");
    *width = be32(d + 16);
    *height = be32(d + 20);
    if (!png_complete(d, n)) return corrupt(error, "PNG", "its chunks cut short (truncated)");
  } else if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) {
    *format = IMAGE_JPEG;
    gsize sof = 0;
    ok = probe_jpeg(d, n, width, height, &sof, error);
    if (ok && !jpeg_complete(d, n, sof))
      return corrupt(error, "JPEG", "no end-of-image marker (truncated)");
  } else if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) {
    *format = IMAGE_WEBP;
    ok = probe_webp(d, n, width, height, error);
    if (ok && (gsize)le32(d + 4) > n - 8)
      return corrupt(error, "WebP", "a RIFF size beyond the end of the file (truncated)");
  } else {
    g_set_error(error, IMAGE_INPUT_ERROR, IMAGE_INPUT_ERROR_UNSUPPORTED,
                "input_reference: not a PNG, JPEG or WebP image (%" G_GSIZE_FORMAT " bytes)", n);
    return FALSE;
  }
  if (ok && (*width == 0 || *height == 0))
    return corrupt(error, image_format_mime(*format) + 6, "a width or height of 0");
  return ok;
}

typedef struct {
  guint width, height;
  gboolean mismatch;
} Expected;

/* The decoder's own idea of the size must be the header's: a file that says one thing to the
 * probe and another to the decoder is refused before the decoder allocates the pixels. */
static void on_size_prepared(GdkPixbufLoader *loader, int width, int height, Expected *want) {
  if ((guint)width == want->width && (guint)height == want->height) return;
  want->mismatch = TRUE;
  gdk_pixbuf_loader_set_size(loader, 1, 1);
}

gboolean image_input_decode(GBytes *data, guint64 max_pixels, I2vImage *out, GError **error) {
  gsize n;
  const guint8 *d = g_bytes_get_data(data, &n);
  ImageFormat format;
  Expected want = {0};
  if (!image_input_probe(d, n, &format, &want.width, &want.height, error)) return FALSE;
  if ((guint64)want.width * want.height > max_pixels) {
    g_set_error(error, IMAGE_INPUT_ERROR, IMAGE_INPUT_ERROR_TOO_LARGE,
                "input_reference: the image is %ux%u (%" G_GUINT64_FORMAT
                " pixels); this server decodes at most %" G_GUINT64_FORMAT " pixels",
                want.width, want.height, (guint64)want.width * want.height, max_pixels);
    return FALSE;
  }
  GError *err = NULL;
  GdkPixbufLoader *loader = gdk_pixbuf_loader_new_with_mime_type(image_format_mime(format), &err);
  if (loader == NULL) {
    g_set_error(error, IMAGE_INPUT_ERROR, IMAGE_INPUT_ERROR_UNSUPPORTED,
                "input_reference: this server cannot decode %s (%s)", image_format_mime(format),
                err->message);
    g_error_free(err);
    return FALSE;
  }
  g_signal_connect(loader, "size-prepared", G_CALLBACK(on_size_prepared), &want);
  gboolean ok = gdk_pixbuf_loader_write_bytes(loader, data, &err);
  ok = gdk_pixbuf_loader_close(loader, ok ? &err : NULL) && ok;
  GdkPixbuf *pb = ok && !want.mismatch ? gdk_pixbuf_loader_get_pixbuf(loader) : NULL;
  if (pb == NULL || gdk_pixbuf_get_bits_per_sample(pb) != 8) {
    if (want.mismatch)
      g_set_error(error, IMAGE_INPUT_ERROR, IMAGE_INPUT_ERROR_UNSUPPORTED,
                  "input_reference: the %s header says %ux%u but the image data disagrees",
                  image_format_mime(format), want.width, want.height);
    else
      g_set_error(error, IMAGE_INPUT_ERROR, IMAGE_INPUT_ERROR_UNSUPPORTED,
                  "input_reference: cannot decode the %s image: %s", image_format_mime(format),
                  err ? err->message : "no 8-bit pixels");
    g_clear_error(&err);
    g_object_unref(loader);
    return FALSE;
  }
  int w = gdk_pixbuf_get_width(pb), h = gdk_pixbuf_get_height(pb);
  int channels = gdk_pixbuf_get_n_channels(pb), stride = gdk_pixbuf_get_rowstride(pb);
  const guint8 *px = gdk_pixbuf_read_pixels(pb);
  *out = i2v_image_new(w, h);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      memcpy(out->rgb + ((gsize)y * w + x) * 3, px + (gsize)y * stride + (gsize)x * channels, 3);
  g_object_unref(loader);
  return TRUE;
}

GBytes *image_input_from_data_url(const char *url, gsize max_bytes, GError **error) {
  const char *comma = strchr(url, ',');
  if (!g_str_has_prefix(url, "data:") || comma == NULL || comma - url < 12 ||
      memcmp(comma - 7, ";base64", 7) != 0) {
    g_set_error(error, IMAGE_INPUT_ERROR, IMAGE_INPUT_ERROR_BAD_URL,
                "input_reference[image_url]: expected a base64 data URL "
                "(data:image/png;base64,...)");
    return NULL;
  }
  gsize encoded = strlen(comma + 1);
  if (encoded / 4 * 3 > max_bytes) {
    g_set_error(
        error, IMAGE_INPUT_ERROR, IMAGE_INPUT_ERROR_TOO_LARGE,
        "input_reference[image_url]: the image is above the upload limit of %" G_GSIZE_FORMAT
        " bytes",
        max_bytes);
    return NULL;
  }
  for (const char *c = comma + 1; *c; c++)
    if (!g_ascii_isalnum(*c) && *c != '+' && *c != '/' && *c != '=') {
      g_set_error(error, IMAGE_INPUT_ERROR, IMAGE_INPUT_ERROR_BAD_URL,
                  "input_reference[image_url]: the data URL holds a character that is not "
                  "base64 at offset %" G_GSIZE_FORMAT,
                  (gsize)(c - url));
      return NULL;
    }
  gsize n;
  guchar *bytes = g_base64_decode(comma + 1, &n);
  return g_bytes_new_take(bytes, n);
}

GBytes *image_input_fetch(const char *url, gsize max_bytes, GError **error) {
  g_autoptr(GUri) uri = g_uri_parse(url, SOUP_HTTP_URI_FLAGS, NULL);
  if (uri == NULL || (g_strcmp0(g_uri_get_scheme(uri), "http") != 0 &&
                      g_strcmp0(g_uri_get_scheme(uri), "https") != 0)) {
    g_set_error(error, IMAGE_INPUT_ERROR, IMAGE_INPUT_ERROR_BAD_URL,
                "input_reference[image_url]: expected a data:, http: or https: URL");
    return NULL;
  }
  g_autoptr(SoupSession) session =
      soup_session_new_with_options("timeout", 30, "user-agent", "i2vgen-serve", NULL);
  g_autoptr(SoupMessage) msg = soup_message_new_from_uri(SOUP_METHOD_GET, uri);
  GError *err = NULL;
  g_autoptr(GInputStream) in = soup_session_send(session, msg, NULL, &err);
  guint status = soup_message_get_status(msg);
  if (in == NULL || status != SOUP_STATUS_OK) {
    g_set_error(error, IMAGE_INPUT_ERROR, IMAGE_INPUT_ERROR_BAD_URL,
                "input_reference[image_url]: fetching %s failed: %s", url,
                err ? err->message : soup_status_get_phrase(status));
    g_clear_error(&err);
    return NULL;
  }
  g_autoptr(GByteArray) body = g_byte_array_new();
  guint8 buf[65536];
  gssize got;
  while ((got = g_input_stream_read(in, buf, sizeof(buf), NULL, &err)) > 0) {
    if (body->len + (gsize)got > max_bytes) {
      g_set_error(error, IMAGE_INPUT_ERROR, IMAGE_INPUT_ERROR_TOO_LARGE,
                  "input_reference[image_url]: %s is above the upload limit of %" G_GSIZE_FORMAT
                  " bytes",
                  url, max_bytes);
      return NULL;
    }
    g_byte_array_append(body, buf, (guint)got);
  }
  if (got < 0) {
    g_set_error(error, IMAGE_INPUT_ERROR, IMAGE_INPUT_ERROR_BAD_URL,
                "input_reference[image_url]: reading %s failed: %s", url, err->message);
    g_error_free(err);
    return NULL;
  }
  return g_byte_array_free_to_bytes(g_steal_pointer(&body));
}
