/* RGB8 images: GdkPixbuf decoding / PNG writing, and the bit-exact preprocessing of the pipeline:
 * Pillow 9.4's fixed-point separable resampling, diffusers' _center_crop_wide and the CLIP / VAE
 * normalisations. */
#include "preprocess.h"

#include <errno.h>
#include <gdk-pixbuf/gdk-pixbuf.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <i2v/error.h>
#include "image_limit.h"
#include "input_file.h"

I2vImage i2v_image_new(int width, int height) {
  I2vImage img = {0};
  if (width <= 0 || height <= 0) return img; /* an empty image: no pixels */
  img.width = width;
  img.height = height;
  img.rgb = g_malloc0((size_t)width * height * 3);
  return img;
}

void i2v_image_clear(I2vImage *img) {
  g_free(img->rgb);
  memset(img, 0, sizeof(*img));
}

/* Copies the RGB bytes of a pixbuf into a packed image, dropping an alpha channel as PIL's
 * convert("RGB") does (no compositing: the colour values are kept as stored). */
static I2vImage image_from_pixbuf(GdkPixbuf *pb) {
  int w = gdk_pixbuf_get_width(pb), h = gdk_pixbuf_get_height(pb);
  int channels = gdk_pixbuf_get_n_channels(pb), stride = gdk_pixbuf_get_rowstride(pb);
  const guint8 *src = gdk_pixbuf_read_pixels(pb);
  I2vImage img = i2v_image_new(w, h);
  for (int y = 0; y < h; y++) {
    const guint8 *row = src + (size_t)y * stride;
    guint8 *dst = img.rgb + (size_t)y * w * 3;
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++) dst[x * 3 + c] = row[x * channels + c];
  }
  return img;
}

/* ---- decoding ---- */

static _Atomic guint64 max_pixels_set; /* i2v_image_set_max_pixels (0: not set) */

guint64 i2v_image_max_pixels(void) {
  guint64 set = atomic_load(&max_pixels_set);
  if (set > 0) return set;
  const char *env = g_getenv("I2V_MAX_IMAGE_PIXELS");
  guint64 v;
  if (env != NULL && g_ascii_string_to_unsigned(env, 10, 1, G_MAXUINT64, &v, NULL)) return v;
  return I2V_IMAGE_DEFAULT_MAX_PIXELS;
}

void i2v_image_set_max_pixels(guint64 max_pixels) {
  atomic_store(&max_pixels_set, max_pixels);
}

/* Bytes read at a time while looking for the image header. */
#define READ_CHUNK 65536

/* The gdk-pixbuf loader of the file's format from its first bytes: PNG and JPEG only. gdk-pixbuf
 * would also take SVG, TGA, ICO, XPM, ... whose loaders are more code to trust and none of which
 * the pipeline needs. NULL for anything else. */
static const char *image_format(const guint8 *head, gsize n) {
  if (n >= 8 && memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0) return "png";
  if (n >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF) return "jpeg";
  return NULL;
}

/* The size the header announces (-1 until it has been read). */
typedef struct {
  int width, height;
} HeaderSize;

/* "size-prepared": the header has been read, no pixel memory taken. Asking for 0 × 0 pixels
 * makes the PNG and JPEG loaders stop there (gdk_pixbuf_get_file_info does the same). */
static void on_size_prepared(GdkPixbufLoader *loader, int width, int height, gpointer user) {
  HeaderSize *size = user;
  size->width = width;
  size->height = height;
  gdk_pixbuf_loader_set_size(loader, 0, 0);
}

/* Reads up to n bytes of fd into buf (fewer only at the end of the file); -1 on error. */
static gssize read_chunk(int fd, guint8 *buf, gsize n) {
  gsize got = 0;
  while (got < n) {
    gssize r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += (gsize)r;
  }
  return (gssize)got;
}

/* Reads the header of the open file fd of path (a PNG or JPEG) for the image size, without
 * decoding pixels. FALSE with error when the file is neither format or has no readable header. */
static gboolean read_header_size(int fd, const char *path, HeaderSize *size, GError **error) {
  guint8 *buf = g_malloc(READ_CHUNK);
  gssize n = read_chunk(fd, buf, READ_CHUNK);
  const char *format = n > 0 ? image_format(buf, (gsize)n) : NULL;
  GError *err = NULL;
  GdkPixbufLoader *loader = format != NULL ? gdk_pixbuf_loader_new_with_type(format, &err) : NULL;
  *size = (HeaderSize){-1, -1};
  if (loader != NULL) {
    g_signal_connect(loader, "size-prepared", G_CALLBACK(on_size_prepared), size);
    while (n > 0 && size->width < 0 && gdk_pixbuf_loader_write(loader, buf, (gsize)n, &err))
      n = read_chunk(fd, buf, READ_CHUNK);
    gdk_pixbuf_loader_close(loader, NULL); /* stopped on purpose: its complaint is expected */
    g_object_unref(loader);
  }
  g_free(buf);
  if (size->width >= 0) {
    g_clear_error(&err);
    return TRUE;
  }
  if (n < 0)
    g_set_error(error, I2V_ERROR, I2V_ERROR_IO, "image %s: cannot read the file: %s", path,
                g_strerror(errno));
  else
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT, "image %s: cannot decode it as PNG or JPEG: %s",
                path,
                err != NULL                ? err->message
                : n == 0 && format == NULL ? "the file is empty"
                : format == NULL           ? "it starts with neither signature"
                                           : "the file ends before the image header");
  g_clear_error(&err);
  return FALSE;
}

/* Decodes the open regular file fd of path, refusing images over the pixel limit from their
 * header first. Returns a new pixbuf or NULL with error. The decode reopens fd through
 * /proc/self/fd (the same file, whatever happens to path meanwhile), because gdk-pixbuf's
 * incremental loader, the only one that takes bytes, accepts a truncated PNG without a word. */
static GdkPixbuf *decode_file(int fd, const char *path, GError **error) {
  HeaderSize size;
  if (!read_header_size(fd, path, &size, error)) return NULL;
  guint64 limit = i2v_image_max_pixels();
  if ((guint64)size.width * (guint64)size.height > limit) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "image %s: %d x %d is %" G_GUINT64_FORMAT
                " pixels, more than the limit of %" G_GUINT64_FORMAT
                " (%.1f megapixels; I2V_MAX_IMAGE_PIXELS changes it)",
                path, size.width, size.height, (guint64)size.width * (guint64)size.height, limit,
                (double)limit / 1e6);
    return NULL;
  }
  char *same_file = g_strdup_printf("/proc/self/fd/%d", fd);
  GError *err = NULL;
  GdkPixbuf *pb = gdk_pixbuf_new_from_file(same_file, &err);
  if (pb == NULL || err != NULL) {
    /* unreadable files come as G_FILE_ERROR; anything else means the bytes are not a decodable
     * PNG/JPEG (truncated, corrupt). gdk-pixbuf's message names the file it opened. */
    int code = err != NULL && err->domain == G_FILE_ERROR ? I2V_ERROR_IO : I2V_ERROR_FORMAT;
    GString *why = g_string_new(err != NULL ? err->message : "unknown error");
    g_string_replace(why, same_file, path, 0);
    g_set_error(error, I2V_ERROR, code, "image %s: cannot %s: %s", path,
                code == I2V_ERROR_IO ? "read the file" : "decode it as PNG or JPEG", why->str);
    g_string_free(why, TRUE);
    g_clear_error(&err);
    g_clear_object(&pb);
  } else if (gdk_pixbuf_get_width(pb) != size.width || gdk_pixbuf_get_height(pb) != size.height) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "image %s: the header says %d x %d, the image decoded as %d x %d (the file "
                "changed while it was read?)",
                path, size.width, size.height, gdk_pixbuf_get_width(pb), gdk_pixbuf_get_height(pb));
    g_clear_object(&pb);
  }
  g_free(same_file);
  return pb;
}

gboolean i2v_image_load(const char *path, I2vImage *out, GError **error) {
  memset(out, 0, sizeof(*out));
  GError *err = NULL;
  int fd = i2v_input_open(path, &err);
  if (fd < 0) {
    g_set_error(error, err->domain, err->code, "image %s", err->message);
    g_error_free(err);
    return FALSE;
  }
  GdkPixbuf *pb = decode_file(fd, path, error);
  close(fd);
  if (pb == NULL) return FALSE;
  int w = gdk_pixbuf_get_width(pb), h = gdk_pixbuf_get_height(pb);
  int channels = gdk_pixbuf_get_n_channels(pb);
  if (w <= 0 || h <= 0 || gdk_pixbuf_get_bits_per_sample(pb) != 8 ||
      gdk_pixbuf_get_colorspace(pb) != GDK_COLORSPACE_RGB || (channels != 3 && channels != 4)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "image %s: decoded as %dx%d with %d channels of %d bits; expected a non-empty "
                "8-bit RGB or RGBA image",
                path, w, h, channels, gdk_pixbuf_get_bits_per_sample(pb));
    g_object_unref(pb);
    return FALSE;
  }
  *out = image_from_pixbuf(pb);
  g_object_unref(pb);
  return TRUE;
}

gboolean i2v_image_save_png(const I2vImage *img, const char *path, GError **error) {
  if (img->width <= 0 || img->height <= 0 || img->rgb == NULL) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "image %s: cannot save an empty %dx%d image as PNG", path, img->width, img->height);
    return FALSE;
  }
  GdkPixbuf *pb = gdk_pixbuf_new_from_data(img->rgb, GDK_COLORSPACE_RGB, FALSE, 8, img->width,
                                           img->height, img->width * 3, NULL, NULL);
  GError *err = NULL;
  gboolean ok = gdk_pixbuf_save(pb, path, "png", &err, NULL);
  g_object_unref(pb);
  if (!ok) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_IO, "image %s: cannot write PNG: %s", path,
                err->message);
    g_error_free(err);
  }
  return ok;
}

/* ---- Pillow 9.4 resampling (libImaging/Resample.c, 8 bits per channel) ---- */

/* Fixed-point precision of the 8-bit path: 32 - 8 (pixel) - 2 (headroom) bits. */
enum { PRECISION_BITS = 22 };

static double box_kernel(double x) {
  return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
}

static double bilinear_kernel(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

/* Integer filter taps of one axis: output index i reads n[i] input samples from first[i] with
 * weights k[i * ksize + 0 .. n[i]-1] (sum ≈ 2^22). */
typedef struct {
  int ksize;
  int *first, *n;
  int32_t *k;
} ResampleTaps;

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for in_size → out_size samples. The
 * operation order is Pillow's so the double weights, and hence the rounded integers, match. */
static ResampleTaps resample_taps(int in_size, int out_size, I2vResample filter) {
  double (*kernel)(double) = filter == I2V_RESAMPLE_BOX ? box_kernel : bilinear_kernel;
  double kernel_support = filter == I2V_RESAMPLE_BOX ? 0.5 : 1.0;
  double scale = (double)in_size / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale; /* widen the kernel when shrinking */
  double support = kernel_support * filterscale;
  double ss = 1.0 / filterscale;
  ResampleTaps t;
  t.ksize = (int)ceil(support) * 2 + 1;
  t.first = g_new(int, out_size);
  t.n = g_new(int, out_size);
  t.k = g_new0(int32_t, (size_t)out_size * t.ksize);
  double *w = g_new(double, t.ksize);
  for (int i = 0; i < out_size; i++) {
    double center = (i + 0.5) * scale;
    int xmin = (int)(center - support + 0.5); /* C truncation, as Pillow */
    if (xmin < 0) xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    int n = xmax - xmin;
    double sum = 0.0;
    for (int x = 0; x < n; x++) {
      w[x] = kernel((x + xmin - center + 0.5) * ss);
      sum += w[x];
    }
    for (int x = 0; x < n; x++) {
      double wx = sum != 0.0 ? w[x] / sum : w[x];
      double scaled = wx * (1 << PRECISION_BITS);
      t.k[(size_t)i * t.ksize + x] = wx < 0 ? (int32_t)(-0.5 + scaled) : (int32_t)(0.5 + scaled);
    }
    t.first[i] = xmin;
    t.n[i] = n;
  }
  g_free(w);
  return t;
}

static void resample_taps_free(ResampleTaps *t) {
  g_free(t->first);
  g_free(t->n);
  g_free(t->k);
}

/* Rounds an accumulator (which started at 2^21, i.e. +0.5) back to a clamped 8-bit value. */
static guint8 clip8(int32_t acc) {
  if (acc <= 0) return 0;
  if (acc >= (int32_t)255 << PRECISION_BITS) return 255;
  return (guint8)(acc >> PRECISION_BITS);
}

/* One separable pass: for each of `lines` lines, out sample o = Σ_x in[first[o] + x] · k[o][x]
 * per channel. Consecutive samples of a line are *_step bytes apart, consecutive lines
 * *_line_stride bytes (rows for the horizontal pass, columns for the vertical one). */
static void resample_pass(const guint8 *in, guint8 *out, int lines, int out_size,
                          size_t in_line_stride, size_t in_step, size_t out_line_stride,
                          size_t out_step, const ResampleTaps *t) {
  for (int l = 0; l < lines; l++) {
    const guint8 *src = in + l * in_line_stride;
    guint8 *dst = out + l * out_line_stride;
    for (int o = 0; o < out_size; o++) {
      const int32_t *k = t->k + (size_t)o * t->ksize;
      const guint8 *s = src + t->first[o] * in_step;
      for (int c = 0; c < 3; c++) {
        int32_t acc = 1 << (PRECISION_BITS - 1);
        for (int x = 0; x < t->n[o]; x++) acc += s[x * in_step + c] * k[x];
        dst[o * out_step + c] = clip8(acc);
      }
    }
  }
}

/* Resizes the width only: every row independently. */
static I2vImage resample_horizontal(const I2vImage *src, int width, I2vResample filter) {
  I2vImage out = i2v_image_new(width, src->height);
  ResampleTaps t = resample_taps(src->width, width, filter);
  resample_pass(src->rgb, out.rgb, src->height, width, (size_t)src->width * 3, 3, (size_t)width * 3,
                3, &t);
  resample_taps_free(&t);
  return out;
}

/* Resizes the height only: every column independently. */
static I2vImage resample_vertical(const I2vImage *src, int height, I2vResample filter) {
  I2vImage out = i2v_image_new(src->width, height);
  ResampleTaps t = resample_taps(src->height, height, filter);
  resample_pass(src->rgb, out.rgb, src->width, height, 3, (size_t)src->width * 3, 3,
                (size_t)src->width * 3, &t);
  resample_taps_free(&t);
  return out;
}

static I2vImage image_copy(const I2vImage *src) {
  I2vImage out = i2v_image_new(src->width, src->height);
  if (out.rgb != NULL) memcpy(out.rgb, src->rgb, (size_t)src->width * src->height * 3);
  return out;
}

I2vImage i2v_image_resize(const I2vImage *src, int width, int height, I2vResample filter) {
  if (width <= 0 || height <= 0 || src->rgb == NULL) return i2v_image_new(0, 0);
  /* Pillow: horizontal pass first, each pass only when that size changes; the intermediate
   * image is 8-bit (rounded and clamped). */
  I2vImage cur = image_copy(src);
  if (width != cur.width) {
    I2vImage next = resample_horizontal(&cur, width, filter);
    i2v_image_clear(&cur);
    cur = next;
  }
  if (height != cur.height) {
    I2vImage next = resample_vertical(&cur, height, filter);
    i2v_image_clear(&cur);
    cur = next;
  }
  return cur;
}

/* ---- diffusers' _center_crop_wide ---- */

/* Python's float a // b (CPython float_floor_div): floor of the fmod-exact quotient, corrected
 * upwards when the division rounded below an integer. Differs from floor(a / b), e.g.
 * 1024 // 0.8 == 1279. */
static double python_float_floordiv(double a, double b) {
  double mod = fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0.0 && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div == 0.0) return copysign(0.0, a / b);
  double floordiv = floor(div);
  if (div - floordiv > 0.5) floordiv += 1.0;
  return floordiv;
}

/* Python's integer a // b (floor, also for negative a). */
static int floor_div_int(int a, int b) {
  int q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

void i2v_center_crop_wide_size(int src_w, int src_h, int target_w, int target_h, int *resized_w,
                               int *resized_h, int *x1, int *y1) {
  double sx = (double)src_w / target_w, sy = (double)src_h / target_h;
  double scale = sy < sx ? sy : sx; /* Python min() */
  *resized_w = (int)python_float_floordiv(src_w, scale);
  *resized_h = (int)python_float_floordiv(src_h, scale);
  *x1 = floor_div_int(*resized_w - target_w, 2);
  *y1 = floor_div_int(*resized_h - target_h, 2);
}

/* PIL crop of the box (x1, y1, x1 + w, y1 + h): pixels outside the source stay zero. */
static I2vImage image_crop(const I2vImage *src, int x1, int y1, int w, int h) {
  I2vImage out = i2v_image_new(w, h);
  int x_lo = MAX(x1, 0), x_hi = MIN(x1 + w, src->width);
  if (out.rgb == NULL || x_hi <= x_lo) return out;
  for (int y = MAX(y1, 0); y < MIN(y1 + h, src->height); y++)
    memcpy(out.rgb + ((size_t)(y - y1) * w + (x_lo - x1)) * 3,
           src->rgb + ((size_t)y * src->width + x_lo) * 3, (size_t)(x_hi - x_lo) * 3);
  return out;
}

I2vImage i2v_image_center_crop_wide(const I2vImage *src, int target_w, int target_h,
                                    I2vImage *box_resized) {
  int rw, rh, x1, y1;
  i2v_center_crop_wide_size(src->width, src->height, target_w, target_h, &rw, &rh, &x1, &y1);
  I2vImage resized = i2v_image_resize(src, rw, rh, I2V_RESAMPLE_BOX);
  I2vImage out = image_crop(&resized, x1, y1, target_w, target_h);
  if (box_resized != NULL)
    *box_resized = resized;
  else
    i2v_image_clear(&resized);
  return out;
}

/* ---- normalisation to float32 [1,3,H,W], bit-exact with numpy / torch float32 ----
 * Safe under FMA contraction (checked with -march=native -ffp-contract=fast): the CLIP step has
 * no multiply-add, and 2x - 1 is the same fused or not because 2x is exact. The same holds for
 * the resampling weights (w · 2^22 is exact). */

void i2v_image_to_clip_pixels(const I2vImage *img, const float mean[3], const float std[3],
                              float *out) {
  size_t plane = (size_t)img->width * img->height;
  for (int c = 0; c < 3; c++)
    for (size_t p = 0; p < plane; p++) {
      float x = (float)img->rgb[p * 3 + c] / 255.0f;
      out[c * plane + p] = (x - mean[c]) / std[c];
    }
}

void i2v_image_to_vae_input(const I2vImage *img, float *out) {
  size_t plane = (size_t)img->width * img->height;
  for (int c = 0; c < 3; c++)
    for (size_t p = 0; p < plane; p++) {
      float x = (float)img->rgb[p * 3 + c] / 255.0f;
      out[c * plane + p] = 2.0f * x - 1.0f;
    }
}
