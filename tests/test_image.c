/* Image decoding / PNG writing and the pipeline's preprocessing, bit-exact against the goldens of
 * every fixture set: PNG decode, Pillow BOX / BILINEAR resizes, _center_crop_wide arithmetic and
 * crops, CLIP / VAE normalisation (image_preprocess, pil_resize, center_crop_wide, image_encoder
 * and pipeline_* files). Sizes, cases and normalisation constants are read from the fixtures. */
#include <errno.h>
#include <gdk-pixbuf/gdk-pixbuf.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <i2v/error.h>
#include "golden.h"
#include "image_limit.h"
#include "preprocess.h"

/* ---- helpers ---- */

/* set/golden/name as a new path (g_free). */
static char *golden_path(const char *set, const char *name) {
  return g_build_filename(set, "golden", name, NULL);
}

/* set/golden/name when it exists, else NULL (a set need not have every file). */
static I2vSafetensors *golden_open_if_present(const char *set, const char *name) {
  char *path = golden_path(set, name);
  gboolean present = g_file_test(path, G_FILE_TEST_EXISTS);
  g_free(path);
  return present ? golden_open(set, name) : NULL;
}

/* Decodes set/golden/input_image.png; fails the test if it cannot. */
static I2vImage load_input_image(const char *set) {
  char *path = golden_path(set, "input_image.png");
  I2vImage img;
  GError *err = NULL;
  if (!i2v_image_load(path, &img, &err)) g_error("%s", err->message);
  g_free(path);
  return img;
}

/* The U8 [H,W,3] tensor name of st as a new image; an empty one (with a message) when absent or
 * not an RGB8 image. */
static I2vImage tensor_image(const I2vSafetensors *st, const char *name) {
  const I2vSafetensorsEntry *e = i2v_safetensors_find(st, name);
  if (e == NULL || e->dtype != I2V_DTYPE_U8 || e->ndim != 3 || e->shape[2] != 3) {
    g_test_message("%s: %s is missing or not U8 [H,W,3]", i2v_safetensors_path(st), name);
    return i2v_image_new(0, 0);
  }
  I2vImage img = i2v_image_new((int)e->shape[1], (int)e->shape[0]);
  memcpy(img.rgb, e->data, e->nbytes);
  return img;
}

/* TRUE when got equals the U8 tensor name of st exactly (size and every byte). Reports the
 * number of differing bytes and the first one. */
static gboolean image_equals_tensor(const I2vSafetensors *st, const char *name, const I2vImage *got,
                                    const char *label) {
  I2vImage ref = tensor_image(st, name);
  gboolean ok = ref.rgb != NULL && ref.width == got->width && ref.height == got->height;
  if (ref.rgb != NULL && !ok)
    g_test_message("%s %s: size %dx%d, reference %dx%d  FAIL", label, name, got->width, got->height,
                   ref.width, ref.height);
  if (ok) {
    size_t n = (size_t)ref.width * ref.height * 3, bad = 0, first = 0;
    for (size_t i = n; i-- > 0;)
      if (got->rgb[i] != ref.rgb[i]) bad++, first = i;
    ok = bad == 0;
    if (!ok)
      g_test_message("%s %s: %zu of %zu bytes differ, first at %zu (got %u ref %u)  FAIL", label,
                     name, bad, n, first, got->rgb[first], ref.rgb[first]);
  }
  i2v_image_clear(&ref);
  return ok;
}

/* TRUE when the n floats of got equal the F32 tensor name of st bit for bit. */
static gboolean floats_equal_tensor(const I2vSafetensors *st, const char *name, const float *got,
                                    size_t n, const char *label) {
  const I2vSafetensorsEntry *e = i2v_safetensors_find(st, name);
  if (e == NULL || e->dtype != I2V_DTYPE_F32 || e->nbytes != n * sizeof(float)) {
    g_test_message("%s: %s is missing or not F32 with %zu elements  FAIL", label, name, n);
    return FALSE;
  }
  const float *ref = e->data;
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) bad += memcmp(&got[i], &ref[i], sizeof(float)) != 0;
  if (bad != 0)
    g_test_message("%s %s: %zu of %zu floats differ, max abs diff %.3g  FAIL", label, name, bad, n,
                   golden_max_abs_diff(got, ref, (int64_t)n));
  return bad == 0;
}

/* The CLIP feature extractor settings of a set: crop size and normalisation, read from
 * model/feature_extractor/preprocessor_config.json. */
typedef struct {
  int crop_w, crop_h;
  float mean[3], std[3];
} ClipSettings;

static ClipSettings clip_settings(const char *set) {
  char *path =
      g_build_filename(set, "model", "feature_extractor", "preprocessor_config.json", NULL);
  JsonParser *p = json_parser_new();
  GError *err = NULL;
  if (!json_parser_load_from_file(p, path, &err)) g_error("%s: %s", path, err->message);
  JsonObject *cfg = json_node_get_object(json_parser_get_root(p));
  JsonObject *crop = json_object_get_object_member(cfg, "crop_size");
  JsonArray *mean = json_object_get_array_member(cfg, "image_mean");
  JsonArray *std = json_object_get_array_member(cfg, "image_std");
  g_assert_cmpuint(json_array_get_length(mean), ==, 3);
  g_assert_cmpuint(json_array_get_length(std), ==, 3);
  ClipSettings s;
  s.crop_w = (int)json_object_get_int_member(crop, "width");
  s.crop_h = (int)json_object_get_int_member(crop, "height");
  for (int c = 0; c < 3; c++) {
    s.mean[c] = (float)json_array_get_double_element(mean, c);
    s.std[c] = (float)json_array_get_double_element(std, c);
  }
  g_object_unref(p);
  g_free(path);
  return s;
}

/* The manifest's files.<name> object of a set, or NULL (borrowed from root). */
static JsonObject *manifest_files_member(JsonNode *root, const char *name) {
  JsonObject *files = json_object_get_object_member(json_node_get_object(root), "files");
  return json_object_has_member(files, name) ? json_object_get_object_member(files, name) : NULL;
}

/* Checks one _center_crop_wide arithmetic case ({src_w, src_h, target_w, target_h, resized_w,
 * resized_h, crop_x1, crop_y1}, as in center_crop_wide.json and the manifests). */
static gboolean crop_case_matches(JsonObject *c, const char *label) {
  int sw = (int)json_object_get_int_member(c, "src_w"),
      sh = (int)json_object_get_int_member(c, "src_h");
  int tw = (int)json_object_get_int_member(c, "target_w");
  int th = (int)json_object_get_int_member(c, "target_h");
  int rw, rh, x1, y1;
  i2v_center_crop_wide_size(sw, sh, tw, th, &rw, &rh, &x1, &y1);
  gboolean ok = rw == json_object_get_int_member(c, "resized_w") &&
                rh == json_object_get_int_member(c, "resized_h") &&
                x1 == json_object_get_int_member(c, "crop_x1") &&
                y1 == json_object_get_int_member(c, "crop_y1");
  if (!ok)
    g_test_message(
        "%s: %dx%d → %dx%d gave resized %dx%d crop (%d, %d), expected %" G_GINT64_FORMAT
        "x%" G_GINT64_FORMAT " (%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ")  FAIL",
        label, sw, sh, tw, th, rw, rh, x1, y1, json_object_get_int_member(c, "resized_w"),
        json_object_get_int_member(c, "resized_h"), json_object_get_int_member(c, "crop_x1"),
        json_object_get_int_member(c, "crop_y1"));
  return ok;
}

/* The pipeline's CLIP branch: _center_crop_wide to a width × width square, then BILINEAR to the
 * feature extractor's crop size. Returns the resized image; cropped/box_resized may be NULL. */
static I2vImage clip_branch(const I2vImage *src, int width, const ClipSettings *cs,
                            I2vImage *box_resized, I2vImage *cropped) {
  I2vImage crop = i2v_image_center_crop_wide(src, width, width, box_resized);
  I2vImage resized = i2v_image_resize(&crop, cs->crop_w, cs->crop_h, I2V_RESAMPLE_BILINEAR);
  if (cropped != NULL)
    *cropped = crop;
  else
    i2v_image_clear(&crop);
  return resized;
}

/* CLIP pixel values of img compared bit for bit with tensor name. */
static gboolean clip_pixels_match(const I2vSafetensors *st, const char *name, const I2vImage *img,
                                  const ClipSettings *cs, const char *label) {
  size_t n = (size_t)img->width * img->height * 3;
  float *px = g_new(float, n);
  i2v_image_to_clip_pixels(img, cs->mean, cs->std, px);
  gboolean ok = floats_equal_tensor(st, name, px, n, label);
  g_free(px);
  return ok;
}

/* VAE input of img compared bit for bit with tensor name. */
static gboolean vae_input_matches(const I2vSafetensors *st, const char *name, const I2vImage *img,
                                  const char *label) {
  size_t n = (size_t)img->width * img->height * 3;
  float *x = g_new(float, n);
  i2v_image_to_vae_input(img, x);
  gboolean ok = floats_equal_tensor(st, name, x, n, label);
  g_free(x);
  return ok;
}

/* ---- golden comparisons ---- */

/* Decoding input_image.png gives exactly the stored input_image_u8 (in whichever files of the
 * set hold it). */
static void test_decode_input_image(void) {
  static const char *holders[] = {"image_preprocess.safetensors", "pil_resize.safetensors",
                                  "image_encoder.safetensors"};
  char **sets = golden_sets_with("input_image.png");
  int compared = 0;
  for (char **set = sets; *set != NULL; set++) {
    I2vImage img = load_input_image(*set);
    int in_set = 0;
    for (size_t f = 0; f < G_N_ELEMENTS(holders); f++) {
      I2vSafetensors *st = golden_open_if_present(*set, holders[f]);
      if (st != NULL && i2v_safetensors_find(st, "input_image_u8") != NULL) {
        g_assert_true(image_equals_tensor(st, "input_image_u8", &img, *set));
        in_set++;
      }
      i2v_safetensors_close(st);
    }
    g_test_message("%s: input_image.png %dx%d equals input_image_u8 of %d file(s)", *set, img.width,
                   img.height, in_set);
    compared += in_set;
    i2v_image_clear(&img);
  }
  g_strfreev(sets);
  if (compared == 0) g_test_skip("no fixture set stores input_image_u8");
}

/* Parses "box_WxH" / "bilinear_WxH"; FALSE for other names. */
static gboolean parse_resize_name(const char *name, I2vResample *filter, int *w, int *h) {
  const char *dims;
  if (g_str_has_prefix(name, "box_"))
    *filter = I2V_RESAMPLE_BOX, dims = name + 4;
  else if (g_str_has_prefix(name, "bilinear_"))
    *filter = I2V_RESAMPLE_BILINEAR, dims = name + 9;
  else
    return FALSE;
  char end;
  return sscanf(dims, "%dx%d%c", w, h, &end) == 2;
}

/* Every box_WxH / bilinear_WxH Pillow resize of the test image, exactly. */
static void test_pil_resize(void) {
  char **sets = golden_sets_with("pil_resize.safetensors");
  if (sets[0] == NULL) g_test_skip("no fixture set has pil_resize.safetensors");
  for (char **set = sets; *set != NULL; set++) {
    I2vSafetensors *st = golden_open(*set, "pil_resize.safetensors");
    I2vImage src = tensor_image(st, "input_image_u8");
    g_assert_nonnull(src.rgb);
    int cases = 0, failed = 0;
    for (guint i = 0; i < i2v_safetensors_count(st); i++) {
      const char *name = i2v_safetensors_entry(st, i)->name;
      I2vResample filter;
      int w, h;
      if (!parse_resize_name(name, &filter, &w, &h)) continue;
      I2vImage got = i2v_image_resize(&src, w, h, filter);
      failed += !image_equals_tensor(st, name, &got, *set);
      cases++;
      i2v_image_clear(&got);
    }
    g_test_message("%s: %d Pillow resizes, %d differ", *set, cases, failed);
    g_assert_cmpint(cases, >, 0);
    g_assert_cmpint(failed, ==, 0);
    i2v_image_clear(&src);
    i2v_safetensors_close(st);
  }
  g_strfreev(sets);
}

/* The size arithmetic of every center_crop_wide.json case (quirky float floor division and
 * negative crop origins included). */
static void test_center_crop_wide_cases(void) {
  char **sets = golden_sets_with("center_crop_wide.json");
  if (sets[0] == NULL) g_test_skip("no fixture set has center_crop_wide.json");
  for (char **set = sets; *set != NULL; set++) {
    JsonNode *root = golden_json(*set, "center_crop_wide.json");
    JsonArray *cases = json_object_get_array_member(json_node_get_object(root), "cases");
    guint n = json_array_get_length(cases), failed = 0;
    for (guint i = 0; i < n; i++)
      failed += !crop_case_matches(json_array_get_object_element(cases, i), *set);
    g_test_message("%s: %u crop cases, %u differ", *set, n, failed);
    g_assert_cmpuint(n, >, 0);
    g_assert_cmpuint(failed, ==, 0);
    json_node_unref(root);
  }
  g_strfreev(sets);
}

/* Both image branches of image_preprocess.safetensors for every manifest size: BOX resize, crop,
 * CLIP BILINEAR resize, pixel values, VAE input. */
static void test_image_preprocess(void) {
  char **sets = golden_sets_with("image_preprocess.safetensors");
  if (sets[0] == NULL) g_test_skip("no fixture set has image_preprocess.safetensors");
  for (char **set = sets; *set != NULL; set++) {
    I2vSafetensors *st = golden_open(*set, "image_preprocess.safetensors");
    JsonNode *manifest = golden_json(*set, "manifest.json");
    JsonObject *pre = manifest_files_member(manifest, "image_preprocess");
    g_assert_nonnull(pre);
    JsonArray *sizes = json_object_get_array_member(pre, "sizes");
    ClipSettings cs = clip_settings(*set);
    I2vImage src = tensor_image(st, "input_image_u8");
    g_assert_nonnull(src.rgb);
    guint n = json_array_get_length(sizes);
    g_assert_cmpuint(n, >, 0);
    for (guint i = 0; i < n; i++) {
      JsonObject *size = json_array_get_object_element(sizes, i);
      const char *key = json_object_get_string_member(size, "key");
      int w = (int)json_object_get_int_member(size, "width");
      int h = (int)json_object_get_int_member(size, "height");
      char *label = g_strdup_printf("%s %s", *set, key);
      g_assert_true(crop_case_matches(json_object_get_object_member(size, "clip_crop"), label));
      g_assert_true(crop_case_matches(json_object_get_object_member(size, "vae_crop"), label));
#define NAME(suffix) (g_snprintf(name, sizeof name, "%s." suffix, key), name)
      char name[128];
      I2vImage box, crop;
      I2vImage clip = clip_branch(&src, w, &cs, &box, &crop);
      gboolean ok = image_equals_tensor(st, NAME("clip.box_resized_u8"), &box, label);
      ok &= image_equals_tensor(st, NAME("clip.cropped_u8"), &crop, label);
      ok &= image_equals_tensor(st, NAME("clip.resized_u8"), &clip, label);
      ok &= clip_pixels_match(st, NAME("clip.pixel_values"), &clip, &cs, label);
      i2v_image_clear(&box);
      i2v_image_clear(&crop);
      i2v_image_clear(&clip);
      crop = i2v_image_center_crop_wide(&src, w, h, &box);
      ok &= image_equals_tensor(st, NAME("vae.box_resized_u8"), &box, label);
      ok &= image_equals_tensor(st, NAME("vae.cropped_u8"), &crop, label);
      ok &= vae_input_matches(st, NAME("vae.input"), &crop, label);
#undef NAME
      g_test_message("%s: 7 preprocessing tensors %s", label, ok ? "exact" : "DIFFER");
      g_assert_true(ok);
      i2v_image_clear(&box);
      i2v_image_clear(&crop);
      g_free(label);
    }
    i2v_image_clear(&src);
    json_node_unref(manifest);
    i2v_safetensors_close(st);
  }
  g_strfreev(sets);
}

/* The CLIP branch recorded in image_encoder.safetensors (real-size sets: the crop target and its
 * arithmetic in manifest files.image_encoder.clip_crop). */
static void test_image_encoder_clip_branch(void) {
  char **sets = golden_sets_with("image_encoder.safetensors");
  int compared = 0;
  for (char **set = sets; *set != NULL; set++) {
    I2vSafetensors *st = golden_open(*set, "image_encoder.safetensors");
    JsonNode *manifest = golden_json(*set, "manifest.json");
    JsonObject *enc = manifest_files_member(manifest, "image_encoder");
    if (i2v_safetensors_find(st, "clip.cropped_u8") != NULL && enc != NULL &&
        json_object_has_member(enc, "clip_crop")) {
      JsonObject *crop_case = json_object_get_object_member(enc, "clip_crop");
      g_assert_true(crop_case_matches(crop_case, *set));
      int width = (int)json_object_get_int_member(crop_case, "target_w");
      ClipSettings cs = clip_settings(*set);
      I2vImage src = load_input_image(*set), box, crop;
      I2vImage clip = clip_branch(&src, width, &cs, &box, &crop);
      gboolean ok = image_equals_tensor(st, "clip.box_resized_u8", &box, *set);
      ok &= image_equals_tensor(st, "clip.cropped_u8", &crop, *set);
      ok &= image_equals_tensor(st, "clip.resized_u8", &clip, *set);
      ok &= clip_pixels_match(st, "pixel_values", &clip, &cs, *set);
      g_test_message("%s: CLIP branch at width %d → %dx%d %s", *set, width, cs.crop_w, cs.crop_h,
                     ok ? "exact" : "DIFFERS");
      g_assert_true(ok);
      compared++;
      i2v_image_clear(&src);
      i2v_image_clear(&box);
      i2v_image_clear(&crop);
      i2v_image_clear(&clip);
    }
    json_node_unref(manifest);
    i2v_safetensors_close(st);
  }
  g_strfreev(sets);
  if (compared == 0) g_test_skip("no image_encoder.safetensors records the CLIP branch");
}

/* clip_input_u8, clip_pixel_values, vae_input_u8 and vae_input of every pipeline run, from the
 * decoded input_image.png at the run's height × width. */
static void test_pipeline_inputs(void) {
  char **sets = golden_sets_with("manifest.json");
  int runs = 0;
  for (char **set = sets; *set != NULL; set++) {
    JsonNode *manifest = golden_json(*set, "manifest.json");
    JsonObject *files = json_object_get_object_member(json_node_get_object(manifest), "files");
    JsonArray *pipes = json_object_has_member(files, "pipeline")
                           ? json_object_get_array_member(files, "pipeline")
                           : NULL;
    guint n = pipes != NULL ? json_array_get_length(pipes) : 0;
    I2vImage src = n > 0 ? load_input_image(*set) : i2v_image_new(0, 0);
    ClipSettings cs = n > 0 ? clip_settings(*set) : (ClipSettings){0};
    for (guint i = 0; i < n; i++) {
      JsonObject *run = json_array_get_object_element(pipes, i);
      JsonObject *call = json_object_get_object_member(run, "call");
      int w = (int)json_object_get_int_member(call, "width");
      int h = (int)json_object_get_int_member(call, "height");
      char *file =
          g_strdup_printf("pipeline_%s.safetensors", json_object_get_string_member(run, "name"));
      char *label = g_strdup_printf("%s %s", *set, file);
      I2vSafetensors *st = golden_open(*set, file);
      I2vImage clip = clip_branch(&src, w, &cs, NULL, NULL);
      I2vImage vae = i2v_image_center_crop_wide(&src, w, h, NULL);
      gboolean ok = image_equals_tensor(st, "clip_input_u8", &clip, label);
      ok &= clip_pixels_match(st, "clip_pixel_values", &clip, &cs, label);
      ok &= image_equals_tensor(st, "vae_input_u8", &vae, label);
      ok &= vae_input_matches(st, "vae_input", &vae, label);
      g_test_message("%s: %dx%d image inputs %s", label, w, h, ok ? "exact" : "DIFFER");
      g_assert_true(ok);
      runs++;
      i2v_image_clear(&clip);
      i2v_image_clear(&vae);
      i2v_safetensors_close(st);
      g_free(label);
      g_free(file);
    }
    i2v_image_clear(&src);
    json_node_unref(manifest);
  }
  g_strfreev(sets);
  if (runs == 0) g_test_skip("no fixture set lists pipeline runs");
}

/* ---- file round trips and errors (on a temporary directory) ---- */

/* The first decodable test image of the fixtures (skips the test when there is none). */
static gboolean first_test_image(I2vImage *img) {
  char **sets = golden_sets_with("input_image.png");
  gboolean found = sets[0] != NULL;
  if (found)
    *img = load_input_image(sets[0]);
  else
    g_test_skip("no fixture set has input_image.png");
  g_strfreev(sets);
  return found;
}

/* Saving as PNG and loading back is lossless. */
static void test_png_roundtrip(void) {
  I2vImage img, back;
  if (!first_test_image(&img)) return;
  char *dir = golden_tmp_dir("test-image");
  char *path = g_build_filename(dir, "roundtrip.png", NULL);
  GError *err = NULL;
  g_assert_true(i2v_image_save_png(&img, path, &err));
  g_assert_no_error(err);
  g_assert_true(i2v_image_load(path, &back, &err));
  g_assert_no_error(err);
  g_assert_cmpint(back.width, ==, img.width);
  g_assert_cmpint(back.height, ==, img.height);
  g_assert_cmpmem(back.rgb, (gsize)img.width * img.height * 3, img.rgb,
                  (gsize)img.width * img.height * 3);
  i2v_image_clear(&back);
  i2v_image_clear(&img);
  g_free(path);
  golden_tree_remove(dir);
  g_free(dir);
}

/* Luma (BT.601 weights) of pixel (x, y) of img, reading its channels rotated by rot. */
static double luma(const I2vImage *img, int x, int y, int rot) {
  const guint8 *p = img->rgb + ((size_t)y * img->width + x) * 3;
  return 0.299 * p[rot % 3] + 0.587 * p[(rot + 1) % 3] + 0.114 * p[(rot + 2) % 3];
}

/* Mean |luma(a) - luma(b)| for images of equal size, b read with its columns shifted by dx
 * (clamped at the border) and its channels rotated by rot. */
static double mean_luma_diff(const I2vImage *a, const I2vImage *b, int dx, int rot) {
  double sum = 0;
  for (int y = 0; y < a->height; y++)
    for (int x = 0; x < a->width; x++)
      sum += fabs(luma(a, x, y, 0) - luma(b, CLAMP(x + dx, 0, b->width - 1), y, rot));
  return sum / ((double)a->width * a->height);
}

/* A JPEG written by gdk-pixbuf (quality 95) decodes to the right size and close pixels. Luma is
 * compared because 4:2:0 chroma subsampling blurs the colours of this synthetic image a lot; the
 * error must be small and well below the error of a one-pixel shift or rotated channels (what a
 * layout bug would make). */
static void test_jpeg_load(void) {
  I2vImage img, back;
  if (!first_test_image(&img)) return;
  char *dir = golden_tmp_dir("test-image");
  char *path = g_build_filename(dir, "test.jpg", NULL);
  GdkPixbuf *pb = gdk_pixbuf_new_from_data(img.rgb, GDK_COLORSPACE_RGB, FALSE, 8, img.width,
                                           img.height, img.width * 3, NULL, NULL);
  GError *err = NULL;
  g_assert_true(gdk_pixbuf_save(pb, path, "jpeg", &err, "quality", "95", NULL));
  g_object_unref(pb);
  g_assert_true(i2v_image_load(path, &back, &err));
  g_assert_no_error(err);
  g_assert_cmpint(back.width, ==, img.width);
  g_assert_cmpint(back.height, ==, img.height);
  double jpeg = mean_luma_diff(&back, &img, 0, 0);
  double shifted = mean_luma_diff(&img, &img, 1, 0), rotated = mean_luma_diff(&img, &img, 0, 1);
  g_test_message("JPEG q95 round trip: mean luma diff %.3f (1-pixel shift %.3f, channels "
                 "rotated %.3f)",
                 jpeg, shifted, rotated);
  g_assert_cmpfloat(jpeg, <, 3.0);
  g_assert_cmpfloat(jpeg, <, 0.5 * shifted);
  g_assert_cmpfloat(jpeg, <, 0.5 * rotated);
  i2v_image_clear(&back);
  i2v_image_clear(&img);
  g_free(path);
  golden_tree_remove(dir);
  g_free(dir);
}

/* An RGBA PNG loads as its RGB values with the alpha dropped (not composited), including fully
 * transparent pixels; the odd width exercises the pixbuf rowstride. */
static void test_rgba_png(void) {
  const int w = 7, h = 5;
  GdkPixbuf *pb = gdk_pixbuf_new(GDK_COLORSPACE_RGB, TRUE, 8, w, h);
  guint8 *px = gdk_pixbuf_get_pixels(pb);
  int stride = gdk_pixbuf_get_rowstride(pb);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 4; c++) px[y * stride + x * 4 + c] = (guint8)(37 * x + 101 * y + 59 * c);
  char *dir = golden_tmp_dir("test-image");
  char *path = g_build_filename(dir, "rgba.png", NULL);
  GError *err = NULL;
  g_assert_true(gdk_pixbuf_save(pb, path, "png", &err, NULL));
  I2vImage img;
  g_assert_true(i2v_image_load(path, &img, &err));
  g_assert_no_error(err);
  g_assert_cmpint(img.width, ==, w);
  g_assert_cmpint(img.height, ==, h);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++)
        g_assert_cmpuint(img.rgb[(y * w + x) * 3 + c], ==, px[y * stride + x * 4 + c]);
  i2v_image_clear(&img);
  g_object_unref(pb);
  g_free(path);
  golden_tree_remove(dir);
  g_free(dir);
}

/* Loading path must fail with an error that names it and leave out empty. */
static void assert_load_fails(const char *path, int code) {
  I2vImage img = {.width = -1};
  GError *err = NULL;
  g_assert_false(i2v_image_load(path, &img, &err));
  g_assert_nonnull(err);
  g_test_message("%s", err->message);
  g_assert_error(err, I2V_ERROR, code);
  g_assert_nonnull(strstr(err->message, path));
  g_assert_null(img.rgb);
  g_assert_cmpint(img.width, ==, 0);
  g_error_free(err);
}

/* Missing, non-image, truncated and empty files; an unwritable PNG path. */
static void test_load_errors(void) {
  char *dir = golden_tmp_dir("test-image");
  char *missing = g_build_filename(dir, "missing.png", NULL);
  assert_load_fails(missing, I2V_ERROR_MISSING);

  char *text = g_build_filename(dir, "text.png", NULL);
  g_assert_true(g_file_set_contents(text, "this is not an image\n", -1, NULL));
  assert_load_fails(text, I2V_ERROR_FORMAT);

  char *empty = g_build_filename(dir, "empty.png", NULL);
  g_assert_true(g_file_set_contents(empty, "", 0, NULL));
  assert_load_fails(empty, I2V_ERROR_FORMAT);

  /* A valid PNG cut in half (past the header, inside the image data). */
  I2vImage img = i2v_image_new(64, 48);
  for (size_t i = 0; i < 64 * 48 * 3; i++) img.rgb[i] = (guint8)(i * 7919 % 251);
  char *whole = g_build_filename(dir, "whole.png", NULL);
  char *truncated = g_build_filename(dir, "truncated.png", NULL);
  g_assert_true(i2v_image_save_png(&img, whole, NULL));
  char *bytes;
  gsize len;
  g_assert_true(g_file_get_contents(whole, &bytes, &len, NULL));
  g_assert_true(g_file_set_contents(truncated, bytes, (gssize)len / 2, NULL));
  assert_load_fails(truncated, I2V_ERROR_FORMAT);

  char *unwritable = g_build_filename(dir, "no-such-dir", "out.png", NULL);
  GError *err = NULL;
  g_assert_false(i2v_image_save_png(&img, unwritable, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_IO);
  g_assert_nonnull(strstr(err->message, unwritable));
  g_error_free(err);

  g_free(bytes);
  i2v_image_clear(&img);
  g_free(unwritable);
  g_free(truncated);
  g_free(whole);
  g_free(empty);
  g_free(text);
  g_free(missing);
  golden_tree_remove(dir);
  g_free(dir);
}

/* Resizing to the same size is an exact copy (Pillow returns img.copy()). */
static void test_resize_identity(void) {
  I2vImage img = i2v_image_new(5, 3);
  for (int i = 0; i < 5 * 3 * 3; i++) img.rgb[i] = (guint8)(i * 17 + 1);
  for (int f = I2V_RESAMPLE_BOX; f <= I2V_RESAMPLE_BILINEAR; f++) {
    I2vImage same = i2v_image_resize(&img, 5, 3, (I2vResample)f);
    g_assert_true(same.rgb != img.rgb);
    g_assert_cmpmem(same.rgb, 45, img.rgb, 45);
    i2v_image_clear(&same);
  }
  i2v_image_clear(&img);
}

/* ---- hostile files ---- */

/* CRC-32 of PNG chunks (ISO 3309), bit by bit. */
static guint32 png_crc(const guint8 *p, gsize n) {
  guint32 c = 0xffffffffu;
  for (gsize i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
  }
  return c ^ 0xffffffffu;
}

static void put_be32(GByteArray *b, guint32 v) {
  guint8 x[4] = {v >> 24, v >> 16, v >> 8, v};
  g_byte_array_append(b, x, 4);
}

/* A PNG of 57 bytes whose header claims width × height RGB pixels and whose data is a few
 * zero bytes: 65535² would take 12 GB if decoded. */
static char *write_png_header(const char *dir, const char *name, guint32 width, guint32 height) {
  GByteArray *b = g_byte_array_new();
  g_byte_array_append(b, (const guint8 *)"\x89PNG\r\n\x1a\n", 8);
  guint8 ihdr[17] = {'I',
                     'H',
                     'D',
                     'R',
                     width >> 24,
                     width >> 16,
                     width >> 8,
                     width,
                     height >> 24,
                     height >> 16,
                     height >> 8,
                     height,
                     8,
                     2,
                     0,
                     0,
                     0};
  put_be32(b, 13);
  g_byte_array_append(b, ihdr, 17);
  put_be32(b, png_crc(ihdr, 17));
  guint8 idat[] = {'I', 'D', 'A', 'T', 0x78, 0x9c, 0x63, 0, 0, 0, 1, 0, 1};
  put_be32(b, sizeof idat - 4);
  g_byte_array_append(b, idat, sizeof idat);
  put_be32(b, png_crc(idat, sizeof idat));
  char *path = g_build_filename(dir, name, NULL);
  g_assert_true(g_file_set_contents(path, (const char *)b->data, b->len, NULL));
  g_byte_array_unref(b);
  return path;
}

/* A baseline JPEG header (SOI, quantisation and Huffman tables, SOF0 of width × height, SOS) and
 * a little entropy-coded data. */
static char *write_jpeg_header(const char *dir, const char *name, guint16 width, guint16 height) {
  GByteArray *b = g_byte_array_new();
  guint8 soi_dqt[] = {0xff, 0xd8, 0xff, 0xdb, 0, 67, 0};
  g_byte_array_append(b, soi_dqt, sizeof soi_dqt);
  for (int i = 0; i < 64; i++) g_byte_array_append(b, (const guint8 *)"\1", 1);
  guint8 sof[] = {0xff, 0xc0, 0, 17, 8,    height >> 8, height, width >> 8, width, 3,
                  1,    0x22, 0, 2,  0x11, 1,           3,      0x11,       1};
  g_byte_array_append(b, sof, sizeof sof);
  for (int table = 0; table < 2; table++) {
    guint8 dht[22] = {0xff, 0xc4, 0, 20, table << 4, 1};
    g_byte_array_append(b, dht, sizeof dht);
  }
  guint8 sos[] = {0xff, 0xda, 0, 12, 3, 1, 0, 2, 0, 3, 0, 0, 0x3f, 0};
  g_byte_array_append(b, sos, sizeof sos);
  for (int i = 0; i < 64; i++) g_byte_array_append(b, (const guint8 *)"", 1);
  g_byte_array_append(b, (const guint8 *)"\xff\xd9", 2);
  char *path = g_build_filename(dir, name, NULL);
  g_assert_true(g_file_set_contents(path, (const char *)b->data, b->len, NULL));
  g_byte_array_unref(b);
  return path;
}

/* Images over the pixel limit are refused from their header, naming the file, its size and the
 * limit (a 57-byte PNG claiming 65535², a JPEG claiming 20000², both far over 64 megapixels);
 * the limit is the setter's, else I2V_MAX_IMAGE_PIXELS', else the default; an image at the limit
 * decodes. */
static void test_pixel_limit(void) {
  char *dir = golden_tmp_dir("test-image");
  g_assert_cmpuint(i2v_image_max_pixels(), ==, I2V_IMAGE_DEFAULT_MAX_PIXELS);
  char *png = write_png_header(dir, "huge.png", 65535, 65535);
  I2vImage img;
  GError *err = NULL;
  g_assert_false(i2v_image_load(png, &img, &err));
  golden_assert_error(&err, I2V_ERROR_INVALID,
                      (const char *[]){png, "65535 x 65535", "4294836225 pixels",
                                       "limit of 67108864", "67.1 megapixels", NULL});
  char *jpeg = write_jpeg_header(dir, "big.jpg", 20000, 20000);
  g_assert_false(i2v_image_load(jpeg, &img, &err));
  golden_assert_error(&err, I2V_ERROR_INVALID, (const char *[]){jpeg, "20000 x 20000", NULL});
  I2vImage small = i2v_image_new(64, 48);
  char *ok = g_build_filename(dir, "small.png", NULL);
  g_assert_true(i2v_image_save_png(&small, ok, NULL));
  i2v_image_set_max_pixels(64 * 48 - 1);
  g_assert_false(i2v_image_load(ok, &img, &err));
  golden_assert_error(&err, I2V_ERROR_INVALID,
                      (const char *[]){ok, "64 x 48", "3072 pixels", "limit of 3071", NULL});
  i2v_image_set_max_pixels(64 * 48);
  g_assert_true(i2v_image_load(ok, &img, &err));
  g_assert_no_error(err);
  i2v_image_clear(&img);
  i2v_image_set_max_pixels(0);
  g_setenv("I2V_MAX_IMAGE_PIXELS", "100", TRUE);
  g_assert_cmpuint(i2v_image_max_pixels(), ==, 100);
  g_assert_false(i2v_image_load(ok, &img, &err));
  golden_assert_error(&err, I2V_ERROR_INVALID, (const char *[]){ok, "limit of 100", NULL});
  g_unsetenv("I2V_MAX_IMAGE_PIXELS");
  i2v_image_clear(&small);
  g_free(ok);
  g_free(jpeg);
  g_free(png);
  golden_tree_remove(dir);
  g_free(dir);
}

/* A directory or a FIFO as the image is named for what it is (a FIFO blocked in open() before);
 * formats other than PNG and JPEG are refused by their first bytes. */
static void test_hostile_paths(void) {
  char *dir = golden_tmp_dir("test-image");
  char *folder = g_build_filename(dir, "folder.png", NULL);
  g_assert_cmpint(g_mkdir(folder, 0700), ==, 0);
  assert_load_fails(folder, I2V_ERROR_IO);
  char *fifo = g_build_filename(dir, "fifo.jpg", NULL);
  g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
  assert_load_fails(fifo, I2V_ERROR_IO);
  static const char gif[] = "GIF89a\1\0\1\0\0\0\0;", bmp[] = "BM\x3a\0\0\0\0\0\0\0\x36\0\0\0",
                    svg[] = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"99999\"/>";
  const struct {
    const char *bytes;
    gsize len;
  } others[] = {{gif, sizeof gif - 1}, {bmp, sizeof bmp - 1}, {svg, sizeof svg - 1}};
  for (guint i = 0; i < G_N_ELEMENTS(others); i++) {
    char *path = g_strdup_printf("%s/other-%u.png", dir, i);
    g_assert_true(g_file_set_contents(path, others[i].bytes, (gssize)others[i].len, NULL));
    assert_load_fails(path, I2V_ERROR_FORMAT);
    g_free(path);
  }
  g_free(fifo);
  g_free(folder);
  golden_tree_remove(dir);
  g_free(dir);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/image/decode_input_image", test_decode_input_image);
  g_test_add_func("/image/pil_resize", test_pil_resize);
  g_test_add_func("/image/center_crop_wide_cases", test_center_crop_wide_cases);
  g_test_add_func("/image/image_preprocess", test_image_preprocess);
  g_test_add_func("/image/image_encoder_clip_branch", test_image_encoder_clip_branch);
  g_test_add_func("/image/pipeline_inputs", test_pipeline_inputs);
  g_test_add_func("/image/png_roundtrip", test_png_roundtrip);
  g_test_add_func("/image/jpeg_load", test_jpeg_load);
  g_test_add_func("/image/rgba_png", test_rgba_png);
  g_test_add_func("/image/load_errors", test_load_errors);
  g_test_add_func("/image/pixel_limit", test_pixel_limit);
  g_test_add_func("/image/hostile_paths", test_hostile_paths);
  g_test_add_func("/image/resize_identity", test_resize_identity);
  return g_test_run();
}
