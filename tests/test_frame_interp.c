/* Motion-compensated interpolation (gst/frame_interp.c) on rendered scenes whose in-between frames
 * are known exactly: a textured disc moving over a textured background, a whole-frame pan and a
 * still scene. The interpolated frames must be close to the true in-between frames and much
 * closer than a cross-fade of the two inputs (what interpolation without motion gives). */
#include <math.h>
#include <string.h>

#include "frame_interp.h"

#define W 96
#define H 64

/* The scene at time t: background texture, and a disc of radius 14 whose centre moves by
 * (dx, dy) per unit of time, carrying its own texture; pan moves everything. 4×4 supersampled.
 * channels 3 or 4 (the 4th, when present, is a constant 200: alpha). */
typedef struct {
  float dx, dy;
  gboolean pan, disc;
} Scene;

/* Smooth-ish colour textures with detail at several scales; the disc is darker than the
 * background, as objects usually differ from what is behind them. */
static float texture(int c, float x, float y, gboolean fg) {
  float k = fg ? 0.45f : 0.23f, base = fg ? 80.0f : 150.0f;
  return base + 45.0f * sinf(k * x + 0.17f * y + (float)c) +
         30.0f * sinf(0.11f * x * (c + 1) - k * 0.9f * y) * cosf(0.05f * (x + y));
}

static void render(const Scene *s, float t, int channels, int stride, guint8 *out) {
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int c = 0; c < channels; c++) {
        float sum = 0;
        for (int sy = 0; sy < 4; sy++)
          for (int sx = 0; sx < 4; sx++) {
            float px = (float)x + (sx + 0.5f) / 4, py = (float)y + (sy + 0.5f) / 4;
            if (s->pan) {
              px -= t * s->dx;
              py -= t * s->dy;
            }
            float cx = 40 + t * s->dx - px, cy = 30 + t * s->dy - py;
            gboolean in = s->disc && cx * cx + cy * cy < 14 * 14;
            sum += in ? texture(c, -cx, -cy, TRUE) : texture(c, px, py, FALSE);
          }
        out[y * stride + x * channels + c] = c == 3 ? 200 : (guint8)lrintf(sum / 16);
      }
}

/* PSNR of f against ref over the colour channels, 4 pixels in from the border (where a pan brings
 * in content neither input has). */
static double psnr(const guint8 *f, const guint8 *ref, int channels, int stride) {
  double se = 0;
  int n = 0;
  for (int y = 4; y < H - 4; y++)
    for (int x = 4; x < W - 4; x++)
      for (int c = 0; c < MIN(channels, 3); c++, n++) {
        double d = (double)f[y * stride + x * channels + c] - ref[y * stride + x * channels + c];
        se += d * d;
      }
  return 10 * log10(255.0 * 255.0 / MAX(se / n, 1e-10));
}

static void cross_fade(const guint8 *a, const guint8 *b, double t, gsize n, guint8 *out) {
  for (gsize i = 0; i < n; i++) out[i] = (guint8)lrint((1 - t) * a[i] + t * b[i]);
}

/* Interpolates scene s at t = 1/3 and 2/3 (as 8 → 24 fps does) and checks both frames. */
static void check_scene(const Scene *s, int channels, double min_psnr, double min_gain) {
  int stride = W * channels + 5; /* rows with padding, as video frames may have */
  gsize n = (gsize)stride * H;
  guint8 *a = g_malloc0(n), *b = g_malloc0(n), *truth = g_malloc0(n), *out = g_malloc0(n),
         *fade = g_malloc0(n);
  render(s, 0, channels, stride, a);
  render(s, 1, channels, stride, b);
  FrameInterp *fi = gst_frame_interp_new(W, H, channels, channels == 4 ? 3 : -1);
  gst_frame_interp_set_pair(fi, a, stride, b, stride);
  for (int k = 1; k <= 2; k++) {
    double t = k / 3.0;
    render(s, (float)t, channels, stride, truth);
    g_assert_true(gst_frame_interp_run(fi, t, out, stride, NULL));
    cross_fade(a, b, t, n, fade);
    double p = psnr(out, truth, channels, stride), pf = psnr(fade, truth, channels, stride);
    g_test_message("t=%.2f: interpolated %.1f dB, cross-fade %.1f dB", t, p, pf);
    g_assert_cmpfloat(p, >=, min_psnr);
    g_assert_cmpfloat(p - pf, >=, min_gain);
    if (channels == 4)
      for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) g_assert_cmpuint(out[y * stride + x * 4 + 3], ==, 200);
  }
  gst_frame_interp_free(fi);
  g_free(a);
  g_free(b);
  g_free(truth);
  g_free(out);
  g_free(fade);
}

/* Bounds: about 3 dB under what the method reaches on each scene (the cross-fade is 20-28 dB). */
static void test_moving_disc(void) {
  Scene s = {9, 4, FALSE, TRUE};
  check_scene(&s, 3, 27, 6);
}

static void test_fast_disc(void) {
  Scene s = {14, -6, FALSE, TRUE};
  check_scene(&s, 3, 24, 4);
}

static void test_pan(void) {
  Scene s = {7.5f, -3, TRUE, FALSE};
  check_scene(&s, 4, 36, 10);
}

static void test_pan_and_disc(void) {
  Scene s = {-6, 5, TRUE, TRUE};
  check_scene(&s, 3, 29, 8);
}

/* Nothing moves: every in-between frame is the input itself, exactly. */
static void test_still(void) {
  Scene s = {0, 0, FALSE, TRUE};
  guint8 a[W * H * 3], out[W * H * 3];
  render(&s, 0, 3, W * 3, a);
  FrameInterp *fi = gst_frame_interp_new(W, H, 3, -1);
  gst_frame_interp_set_pair(fi, a, W * 3, a, W * 3);
  g_assert_true(gst_frame_interp_run(fi, 0.5, out, W * 3, NULL));
  g_assert_cmpmem(out, sizeof out, a, sizeof a);
  gst_frame_interp_free(fi);
}

/* Sizes smaller than a block and odd sizes run, and bad sizes are refused. */
static void test_sizes(void) {
  g_assert_null(gst_frame_interp_new(0, 10, 3, -1));
  g_assert_null(gst_frame_interp_new(10, 10, 5, -1));
  int sizes[][2] = {{1, 1}, {5, 3}, {17, 9}, {33, 130}};
  for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
    int w = sizes[i][0], h = sizes[i][1];
    guint8 *a = g_malloc(w * h), *b = g_malloc(w * h), *out = g_malloc(w * h);
    for (int j = 0; j < w * h; j++) {
      a[j] = (guint8)(j * 13);
      b[j] = (guint8)(j * 13 + 40);
    }
    FrameInterp *fi = gst_frame_interp_new(w, h, 1, -1);
    g_assert_nonnull(fi);
    gst_frame_interp_set_pair(fi, a, w, b, w);
    g_assert_true(gst_frame_interp_run(fi, 0.25, out, w, NULL));
    gst_frame_interp_free(fi);
    g_free(a);
    g_free(b);
    g_free(out);
  }
}

/* Sets the stop flag of a run after a short wait (from another thread). */
static gpointer stop_soon(gpointer stop) {
  g_usleep(20000);
  g_atomic_int_set((gint *)stop, 1);
  return NULL;
}

/* A run stops when asked: at once when the flag is already set (the output untouched), and
 * part-way when it is set while a large frame (~1 s of work) is being made. */
static void test_stop(void) {
  int w = 1536, h = 1536;
  guint8 *a = g_malloc(w * h), *b = g_malloc(w * h), *out = g_malloc(w * h);
  for (int j = 0; j < w * h; j++) {
    a[j] = (guint8)(j * 13 + j / w * 7);
    b[j] = (guint8)((j + 5) * 13 + j / w * 7);
  }
  FrameInterp *fi = gst_frame_interp_new(w, h, 1, -1);
  gst_frame_interp_set_pair(fi, a, w, b, w);
  gint stop = 1;
  memset(out, 0xA5, w * h);
  g_assert_false(gst_frame_interp_run(fi, 0.5, out, w, &stop));
  for (int j = 0; j < w * h; j++) g_assert_cmpuint(out[j], ==, 0xA5);
  stop = 0;
  GThread *stopper = g_thread_new("stop-soon", stop_soon, &stop);
  g_assert_false(gst_frame_interp_run(fi, 0.5, out, w, &stop));
  g_thread_join(stopper);
  gst_frame_interp_free(fi);
  g_free(a);
  g_free(b);
  g_free(out);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/frame-interp/moving-disc", test_moving_disc);
  g_test_add_func("/frame-interp/fast-disc", test_fast_disc);
  g_test_add_func("/frame-interp/pan", test_pan);
  g_test_add_func("/frame-interp/pan-and-disc", test_pan_and_disc);
  g_test_add_func("/frame-interp/still", test_still);
  g_test_add_func("/frame-interp/sizes", test_sizes);
  g_test_add_func("/frame-interp/stop", test_stop);
  return g_test_run();
}
