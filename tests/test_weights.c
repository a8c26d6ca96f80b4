/* Weight sources and loading: the README-realcfg formula against every tensor of
 * weights_manifest.json (first values of all, sha256 of most), loading from the fixture model
 * files into a backend (values, layouts, dtype conversion, bookkeeping) and the load errors. */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#include <i2v/error.h>
#include "cpu_backend.h"
#include "stream.h"
#include "golden.h"
#include "backend_impl.h" /* to keep weights in other dtypes on the CPU */
#include "weights.h"

/* The CPU backend with weights kept in weight_dtype: its memory side copies bytes whatever the
 * dtype, which is all loading needs (no op runs on F16/BF16 weights here). */
static I2vBackend *weights_backend(I2vDType weight_dtype) {
  I2vBackend *be = i2v_cpu_backend_new(0);
  be->weight_dtype = weight_dtype;
  return be;
}

/* ---- helpers ---- */

static guint64 parse_seed_hex(const char *hex) {
  char *end = NULL;
  guint64 seed = g_ascii_strtoull(hex, &end, 16); /* accepts the 0x prefix */
  g_assert_true(end != NULL && *end == '\0' && end != hex);
  return seed;
}

static char *sha256_f32(const float *v, int64_t n) {
  GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
  /* the manifest hashes little-endian float32: the host layout on every supported machine */
  G_STATIC_ASSERT(G_BYTE_ORDER == G_LITTLE_ENDIAN);
  const int64_t chunk = (int64_t)1 << 26;
  for (int64_t i = 0; i < n; i += chunk)
    g_checksum_update(c, (const guchar *)(v + i), (gssize)(MIN(chunk, n - i) * 4));
  char *hex = g_strdup(g_checksum_get_string(c));
  g_checksum_free(c);
  return hex;
}

static guint32 f32_bits(float f) {
  guint32 b;
  memcpy(&b, &f, 4);
  return b;
}

/* Tensors up to this many elements get a full sha256 check (the rest: first values only, plus
 * the largest tensor of each component): 2M covers 0.78 G of the 2.5 G values, ~9 s on one
 * core; all of them would take ~30 s. */
#define FULL_HASH_MAX_ELEMENTS ((int64_t)2 << 20)

/* ---- formula ---- */

/* Every tensor of every formula set's weights_manifest.json: flat elements 0 and 1 exactly (value
 * and bits), and the sha256 of all values for small tensors and each component's largest. */
static void test_formula_manifest(void) {
  char **sets = golden_sets_with("weights_manifest.json");
  guint tensors = 0, hashed = 0;
  gint64 hashed_values = 0;
  for (char **s = sets; *s != NULL; s++) {
    guint64 seed;
    g_assert_true(golden_formula_seed(*s, &seed));
    JsonNode *root = golden_json(*s, "weights_manifest.json");
    JsonObject *comps = json_object_get_object_member(json_node_get_object(root), "components");
    GList *names = json_object_get_members(comps);
    for (GList *l = names; l != NULL; l = l->next) {
      JsonArray *list =
          json_object_get_array_member(json_object_get_object_member(comps, l->data), "list");
      guint n_list = json_array_get_length(list);
      /* the largest tensor of the component also gets the full hash */
      guint largest = 0;
      int64_t largest_n = -1;
      for (guint i = 0; i < n_list; i++) {
        JsonArray *shape =
            json_object_get_array_member(json_array_get_object_element(list, i), "shape");
        int64_t n = 1;
        for (guint d = 0; d < json_array_get_length(shape); d++)
          n *= json_array_get_int_element(shape, d);
        if (n > largest_n) largest_n = n, largest = i;
      }
      for (guint i = 0; i < n_list; i++) {
        JsonObject *t = json_array_get_object_element(list, i);
        const char *name = json_object_get_string_member(t, "name");
        JsonArray *shape_arr = json_object_get_array_member(t, "shape");
        int ndim = (int)json_array_get_length(shape_arr);
        int64_t shape[I2V_MAX_DIMS], n = 1;
        for (int d = 0; d < ndim; d++) n *= shape[d] = json_array_get_int_element(shape_arr, d);
        gboolean full = ndim < 2 || n <= FULL_HASH_MAX_ELEMENTS || i == largest;
        /* element i depends on the flat index and fan_in only: a first row of [1, rest...] gives
         * the first values of a big tensor without computing all of it */
        int64_t head_shape[I2V_MAX_DIMS];
        memcpy(head_shape, shape, sizeof(int64_t) * ndim);
        if (!full && ndim >= 2) head_shape[0] = 1;
        int64_t head_n = full ? n : n / shape[0];
        float *v = g_new(float, MAX(head_n, 2));
        i2v_formula_fill(name, ndim, full ? shape : head_shape, seed, v);
        JsonArray *first = json_object_get_array_member(t, "first");
        JsonArray *bits = json_object_get_array_member(t, "first_bits");
        for (guint k = 0; k < json_array_get_length(first) && k < head_n; k++) {
          guint32 want_bits = (guint32)parse_seed_hex(json_array_get_string_element(bits, k));
          if (f32_bits(v[k]) != want_bits || v[k] != (float)json_array_get_double_element(first, k))
            g_error("%s %s[%u]: formula gives %.9g (0x%08x), manifest %.9g (0x%08x)", *s, name, k,
                    v[k], f32_bits(v[k]), json_array_get_double_element(first, k), want_bits);
        }
        if (full) {
          char *hex = sha256_f32(v, n);
          if (strcmp(hex, json_object_get_string_member(t, "sha256")) != 0)
            g_error("%s %s: sha256 of the formula values %s, manifest %s", *s, name, hex,
                    json_object_get_string_member(t, "sha256"));
          g_free(hex);
          hashed++;
          hashed_values += n;
        }
        g_free(v);
        tensors++;
      }
    }
    g_list_free(names);
    json_node_unref(root);
  }
  g_strfreev(sets);
  g_test_message("formula: %u tensors' first values, %u full hashes (%" G_GINT64_FORMAT " values)",
                 tensors, hashed, hashed_values);
  if (tensors == 0) g_test_skip("no formula fixture set");
}

/* Loading from a formula source gives the formula values in the requested layout; every name
 * exists and nothing is left unused. */
static void test_formula_load(void) {
  I2vBackend *be = weights_backend(I2V_DTYPE_F32);
  I2vWeights *w = i2v_weights_new_formula(G_GUINT64_CONSTANT(0x8000000000000001), "unet");
  g_assert_true(i2v_weights_has(w, "anything.at.all"));
  int64_t shape[5] = {6, 5, 3, 1, 1};
  I2vTensor t;
  GError *err = NULL;
  g_assert_true(
      i2v_weights_load(w, be, "temp.conv1.1.weight", 5, shape, I2V_LAYOUT_CONV_FRAMES, &t, &err));
  g_assert_no_error(err);
  g_assert_cmpint(t.ndim, ==, 3);
  g_assert_cmpint(t.shape[1], ==, 3);
  g_assert_cmpint(t.shape[2], ==, 5);
  float ref[90];
  i2v_formula_fill("temp.conv1.1.weight", 5, shape, G_GUINT64_CONSTANT(0x8000000000000001), ref);
  const float *got = t.data;
  for (int o = 0; o < 6; o++)
    for (int i = 0; i < 5; i++)
      for (int k = 0; k < 3; k++)
        g_assert_cmpfloat(got[(o * 3 + k) * 5 + i], ==, ref[(o * 5 + i) * 3 + k]);
  i2v_tensor_free(&t);
  g_assert_true(i2v_weights_load_1d(w, be, "norm.weight", 7, &t, &err));
  for (int k = 0; k < 7; k++) g_assert_cmpfloat(fabsf(((float *)t.data)[k] - 1.0f), <=, 0.125f);
  i2v_tensor_free(&t);
  g_assert_cmpint(i2v_weights_loaded_params(w), ==, 90 + 7);
  g_assert_cmpuint(i2v_weights_log_unused(w), ==, 0);
  i2v_weights_free(w);
  i2v_backend_free(be);
}

/* ---- loading from files ---- */

/* The weight files (fp32 and fp16) of the fixture sets that ship them. */
static GPtrArray *model_weight_files(void) {
  GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
  char **sets = golden_sets_with("manifest.json");
  const char *rel[] = {"unet/diffusion_pytorch_model", "vae/diffusion_pytorch_model",
                       "text_encoder/model", "image_encoder/model"};
  for (char **s = sets; *s != NULL; s++) {
    for (guint i = 0; i < 2 * G_N_ELEMENTS(rel); i++) {
      char *file = g_strconcat(rel[i / 2], i % 2 ? ".fp16.safetensors" : ".safetensors", NULL);
      char *p = g_build_filename(*s, "model", file, NULL);
      g_free(file);
      if (g_file_test(p, G_FILE_TEST_EXISTS))
        g_ptr_array_add(files, p);
      else
        g_free(p);
    }
  }
  g_strfreev(sets);
  return files;
}

/* Loads every tensor of every model file, fp32 and fp16 (4-D as CONV2D, [.,.,3,1,1] as CONV_FRAMES,
 * others as is) into backends of weight dtype F32 and F16 and checks each value against the file.
 */
static void check_load_all(I2vDType weight_dtype) {
  GPtrArray *files = model_weight_files();
  if (files->len == 0) g_test_skip("no fixture set has model weight files");
  I2vBackend *be = weights_backend(weight_dtype);
  I2vStream *stream = i2v_stream_new(be, NULL);
  guint layouts[3] = {0};
  for (guint f = 0; f < files->len; f++) {
    const char *path = g_ptr_array_index(files, f);
    GError *err = NULL;
    I2vSafetensors *ref = i2v_safetensors_open(path, &err);
    g_assert_no_error(err);
    I2vWeights *w = i2v_weights_new_safetensors(i2v_safetensors_open(path, &err), "component");
    g_assert_no_error(err);
    guint count = i2v_safetensors_count(ref);
    gint64 params = 0;
    for (guint i = 0; i < count; i++) {
      const I2vSafetensorsEntry *e = i2v_safetensors_entry(ref, i);
      I2vLayout layout = I2V_LAYOUT_AS_IS;
      if (e->ndim == 4) layout = I2V_LAYOUT_CONV2D;
      if (e->ndim == 5 && e->shape[2] == 3 && e->shape[3] == 1 && e->shape[4] == 1)
        layout = I2V_LAYOUT_CONV_FRAMES;
      layouts[layout]++;
      g_assert_true(i2v_weights_has(w, e->name));
      I2vTensor t, v;
      if (!i2v_weights_load(w, be, e->name, e->ndim, e->shape, layout, &t, &err))
        g_error("%s", err->message);
      g_assert_true(i2v_safetensors_read_f32(ref, e->name, &v, NULL));
      g_assert_cmpint(t.dtype, ==, weight_dtype);
      int64_t n = i2v_tensor_numel(&v), co = e->ndim ? e->shape[0] : 1;
      int64_t ci = e->ndim > 1 ? e->shape[1] : 1, sp = n / MAX(co * ci, 1);
      g_assert_cmpint(i2v_tensor_numel(&t), ==, n);
      float *got = g_new(float, MAX(n, 1));
      g_assert_true(i2v_tensor_download_f32(stream, &t, got, NULL));
      const float *want = v.data;
      for (int64_t o = 0; o < co; o++)
        for (int64_t c = 0; c < ci; c++)
          for (int64_t k = 0; k < sp; k++) {
            int64_t src = (o * ci + c) * sp + k;
            int64_t dst = layout == I2V_LAYOUT_AS_IS ? src : (o * sp + k) * ci + c;
            float expect = weight_dtype == I2V_DTYPE_F16 ? i2v_f16_to_f32(i2v_f32_to_f16(want[src]))
                                                         : want[src];
            if (f32_bits(got[dst]) != f32_bits(expect))
              g_error("%s %s: element %" G_GINT64_FORMAT " loaded as %g, file has %g", path,
                      e->name, src, got[dst], want[src]);
          }
      params += n;
      g_free(got);
      i2v_host_tensor_free(&v);
      i2v_tensor_free(&t);
      /* after each load exactly the remaining tensors are unused */
      if (i == 0 || i + 1 == count) g_assert_cmpuint(i2v_weights_log_unused(w), ==, count - i - 1);
    }
    g_assert_cmpint(i2v_weights_loaded_params(w), ==, params);
    i2v_weights_free(w);
    i2v_safetensors_close(ref);
  }
  g_test_message("layouts: %u as is, %u conv2d, %u conv frames", layouts[0], layouts[1],
                 layouts[2]);
  if (files->len > 0) g_assert_cmpuint(layouts[1] * layouts[2], >, 0);
  i2v_stream_free(stream);
  i2v_backend_free(be);
  g_ptr_array_unref(files);
}

static void test_load_f32(void) {
  check_load_all(I2V_DTYPE_F32);
}

static void test_load_f16(void) {
  check_load_all(I2V_DTYPE_F16);
}

/* ---- load errors ---- */

static void expect_load_error(I2vWeights *w, I2vBackend *be, const char *name, int ndim,
                              const int64_t *shape, I2vLayout layout, int code,
                              const char *const *needles) {
  I2vTensor t;
  GError *err = NULL;
  g_assert_false(i2v_weights_load(w, be, name, ndim, shape, layout, &t, &err));
  g_assert_null(t.data);
  golden_assert_error(&err, code, needles);
}

/* A small file with a float, an integer and a 4-D tensor, in a temp dir. */
static char *write_small_file(char **dir_out) {
  GError *err = NULL;
  char *dir = g_dir_make_tmp("i2v-w-XXXXXX", &err);
  g_assert_no_error(err);
  char *path = g_build_filename(dir, "small.safetensors", NULL);
  I2vSafetensorsWriter *wr = i2v_safetensors_writer_new();
  float f[24] = {0};
  int64_t ids[3] = {1, 2, 3}, s_lin[] = {4, 6}, s_ids[] = {3}, s_conv[] = {2, 3, 2, 2},
          s_pos[] = {5};
  i2v_safetensors_writer_add(wr, "lin.weight", I2V_DTYPE_F32, 2, s_lin, f);
  i2v_safetensors_writer_add(wr, "conv.weight", I2V_DTYPE_F32, 4, s_conv, f);
  i2v_safetensors_writer_add(wr, "ids.buffer", I2V_DTYPE_I64, 1, s_ids, ids);
  i2v_safetensors_writer_add(wr, "text_model.embeddings.position_ids", I2V_DTYPE_I64, 1, s_pos, f);
  g_assert_true(i2v_safetensors_writer_save(wr, path, NULL));
  i2v_safetensors_writer_free(wr);
  *dir_out = dir;
  return path;
}

static void test_load_errors(void) {
  char *dir;
  char *path = write_small_file(&dir);
  GError *err = NULL;
  I2vWeights *w = i2v_weights_new_safetensors(i2v_safetensors_open(path, &err), "unet");
  g_assert_no_error(err);
  I2vBackend *be = weights_backend(I2V_DTYPE_F32);
  int64_t s46[] = {4, 6}, s64[] = {6, 4}, s3[] = {3}, s4d[] = {2, 3, 2, 2};
  g_assert_false(i2v_weights_has(w, "absent.weight"));
  expect_load_error(w, be, "absent.weight", 2, s46, I2V_LAYOUT_AS_IS, I2V_ERROR_MISSING,
                    (const char *[]){"unet: tensor 'absent.weight' missing from ", path, NULL});
  expect_load_error(w, be, "lin.weight", 2, s64, I2V_LAYOUT_AS_IS, I2V_ERROR_SHAPE,
                    (const char *[]){"unet: tensor 'lin.weight' in ", path,
                                     "has shape [4, 6], expected [6, 4]", NULL});
  expect_load_error(w, be, "lin.weight", 1, s3, I2V_LAYOUT_AS_IS, I2V_ERROR_SHAPE,
                    (const char *[]){"'lin.weight'", "[4, 6]", "expected [3]", NULL});
  expect_load_error(w, be, "ids.buffer", 1, s3, I2V_LAYOUT_AS_IS, I2V_ERROR_SHAPE,
                    (const char *[]){"unet: tensor 'ids.buffer'", path, "I64", NULL});
  expect_load_error(w, be, "lin.weight", 2, s46, I2V_LAYOUT_CONV2D, I2V_ERROR_INVALID,
                    (const char *[]){"'lin.weight'", "[4, 6]", NULL});
  expect_load_error(w, be, "conv.weight", 4, s4d, I2V_LAYOUT_CONV_FRAMES, I2V_ERROR_INVALID,
                    (const char *[]){"'conv.weight'", NULL});
  g_assert_cmpint(i2v_weights_loaded_params(w), ==, 0);
  /* failed loads mark nothing; position_ids buffers are never reported */
  g_assert_cmpuint(i2v_weights_log_unused(w), ==, 3);
  I2vTensor t;
  g_assert_true(i2v_weights_load_conv(w, be, "conv.weight", 2, 3, 2, &t, &err));
  g_assert_cmpint(t.shape[3], ==, 3);
  i2v_tensor_free(&t);
  g_assert_true(i2v_weights_load_2d(w, be, "lin.weight", 4, 6, &t, &err));
  i2v_tensor_free(&t);
  g_assert_cmpuint(i2v_weights_log_unused(w), ==, 1);
  g_assert_cmpint(i2v_weights_loaded_params(w), ==, 48);
  i2v_weights_free(w);
  i2v_backend_free(be);
  g_unlink(path);
  g_rmdir(dir);
  g_free(path);
  g_free(dir);
}

/* Weights that are not finite (a corrupt or badly converted file) are refused at load, naming the
 * component, the file and the tensor: in a float32 file, in an fp16 file loaded as is (the
 * mapped bytes go straight to the backend) or converted, and in a stacked load. */
static void test_non_finite(void) {
  GError *err = NULL;
  char *dir = g_dir_make_tmp("i2v-w-XXXXXX", &err);
  g_assert_no_error(err);
  char *path = g_build_filename(dir, "nan.safetensors", NULL);
  I2vSafetensorsWriter *wr = i2v_safetensors_writer_new();
  float f32[4] = {1, 2, INFINITY, 4}, ok[4] = {1, 2, 3, 4};
  guint16 f16[4] = {0x3c00, 0x7e00, 0x3c00, 0x3c00}; /* 1, NaN, 1, 1 */
  int64_t s22[] = {2, 2};
  i2v_safetensors_writer_add(wr, "inf.weight", I2V_DTYPE_F32, 2, s22, f32);
  i2v_safetensors_writer_add(wr, "nan.weight", I2V_DTYPE_F16, 2, s22, f16);
  i2v_safetensors_writer_add(wr, "ok.weight", I2V_DTYPE_F32, 2, s22, ok);
  g_assert_true(i2v_safetensors_writer_save(wr, path, NULL));
  i2v_safetensors_writer_free(wr);
  I2vWeights *w = i2v_weights_new_safetensors(i2v_safetensors_open(path, &err), "vae");
  g_assert_no_error(err);
  I2vDType dtypes[] = {I2V_DTYPE_F32, I2V_DTYPE_F16};
  for (guint i = 0; i < G_N_ELEMENTS(dtypes); i++) {
    I2vBackend *be = weights_backend(dtypes[i]);
    expect_load_error(
        w, be, "inf.weight", 2, s22, I2V_LAYOUT_AS_IS, I2V_ERROR_FORMAT,
        (const char *[]){"vae: ", path, "'inf.weight'", "infinity at element 2", NULL});
    expect_load_error(w, be, "nan.weight", 2, s22, I2V_LAYOUT_AS_IS, I2V_ERROR_FORMAT,
                      (const char *[]){"vae: ", path, "'nan.weight'", "NaN at element 1", NULL});
    const char *names[] = {"ok.weight", "nan.weight"};
    I2vTensor t;
    g_assert_false(i2v_weights_load_stacked(w, be, names, 2, 2, s22, &t, &err));
    golden_assert_error(&err, I2V_ERROR_FORMAT, (const char *[]){"vae: ", "'nan.weight'", NULL});
    g_assert_true(i2v_weights_load_2d(w, be, "ok.weight", 2, 2, &t, &err));
    g_assert_no_error(err);
    i2v_tensor_free(&t);
    i2v_backend_free(be);
  }
  i2v_weights_free(w);
  g_unlink(path);
  g_rmdir(dir);
  g_free(path);
  g_free(dir);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/weights/formula-manifest", test_formula_manifest);
  g_test_add_func("/weights/formula-load", test_formula_load);
  g_test_add_func("/weights/load-f32", test_load_f32);
  g_test_add_func("/weights/load-f16", test_load_f16);
  g_test_add_func("/weights/load-errors", test_load_errors);
  g_test_add_func("/weights/non-finite", test_non_finite);
  return g_test_run();
}
