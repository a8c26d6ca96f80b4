/* The safetensors reader and writer: every fixture file of every set opens and matches its
 * manifest, fp16 model files are the fp32 ones rounded to half, the writer round-trips, a sharded
 * index works; and each kind of malformed file fails with a message naming file and tensor. */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <i2v/error.h>
#include "golden.h"

/* ---- helpers ---- */

/* The manifest's dtype spelling ("float32", "int64", ...) as an engine dtype. */
static I2vDType manifest_dtype(const char *name) {
  static const struct {
    const char *name;
    I2vDType dtype;
  } map[] = {{"float32", I2V_DTYPE_F32},
             {"float16", I2V_DTYPE_F16},
             {"bfloat16", I2V_DTYPE_BF16},
             {"int64", I2V_DTYPE_I64},
             {"uint8", I2V_DTYPE_U8}};
  for (guint i = 0; i < G_N_ELEMENTS(map); i++)
    if (strcmp(name, map[i].name) == 0) return map[i].dtype;
  g_error("manifest dtype %s unknown to the test", name);
}

/* Checks that st holds exactly the tensors of a manifest "tensors" object (dtype and shape). */
static void check_against_manifest(const I2vSafetensors *st, JsonObject *tensors) {
  g_assert_cmpuint(i2v_safetensors_count(st), ==, json_object_get_size(tensors));
  GList *names = json_object_get_members(tensors);
  for (GList *l = names; l != NULL; l = l->next) {
    JsonObject *want = json_object_get_object_member(tensors, l->data);
    const I2vSafetensorsEntry *e = i2v_safetensors_find(st, l->data);
    g_assert_nonnull(e);
    g_assert_cmpint(e->dtype, ==, manifest_dtype(json_object_get_string_member(want, "dtype")));
    JsonArray *shape = json_object_get_array_member(want, "shape");
    g_assert_cmpint(e->ndim, ==, json_array_get_length(shape));
    for (int d = 0; d < e->ndim; d++)
      g_assert_cmpint(e->shape[d], ==, json_array_get_int_element(shape, d));
  }
  g_list_free(names);
  for (guint i = 0; i < i2v_safetensors_count(st); i++) {
    const I2vSafetensorsEntry *e = i2v_safetensors_entry(st, i);
    I2vTensor t = {0};
    i2v_tensor_set_shape(&t, e->dtype, e->ndim, e->shape);
    g_assert_cmpuint(e->nbytes, ==, i2v_tensor_nbytes(&t));
    if (i > 0) g_assert_cmpint(strcmp(i2v_safetensors_entry(st, i - 1)->name, e->name), <, 0);
  }
}

/* Writes a raw file: little-endian header_len (as given, may lie), the header text, data_len
 * zero bytes. Returns the path (g_free). */
static char *write_raw(const char *dir, const char *file, guint64 header_len, const char *header,
                       gsize data_len) {
  char *path = g_build_filename(dir, file, NULL);
  GByteArray *b = g_byte_array_new();
  guint8 len_le[8];
  for (int i = 0; i < 8; i++) len_le[i] = (guint8)(header_len >> (8 * i));
  g_byte_array_append(b, len_le, 8);
  g_byte_array_append(b, (const guint8 *)header, (guint)strlen(header));
  guint8 *zeros = g_malloc0(data_len + 1);
  g_byte_array_append(b, zeros, (guint)data_len);
  g_free(zeros);
  g_assert_true(g_file_set_contents(path, (const char *)b->data, b->len, NULL));
  g_byte_array_unref(b);
  return path;
}

/* A file whose header is exactly header (correct length) followed by data_len bytes. */
static char *write_header(const char *dir, const char *file, const char *header, gsize data_len) {
  return write_raw(dir, file, strlen(header), header, data_len);
}

/* Opening path must fail with code and a message containing every string of needles. */
static void expect_open_error(const char *path, int code, const char *const *needles) {
  GError *err = NULL;
  I2vSafetensors *st = i2v_safetensors_open(path, &err);
  g_assert_null(st);
  golden_assert_error(&err, code, needles);
}

/* The model weight files of a set's component: fp32 and fp16 paths (either may not exist). */
static void model_files(const char *set, const char *component, char **fp32, char **fp16) {
  const char *base = g_str_has_suffix(component, "_encoder") ? "model" : "diffusion_pytorch_model";
  char *f32 = g_strdup_printf("%s.safetensors", base),
       *f16 = g_strdup_printf("%s.fp16.safetensors", base);
  *fp32 = g_build_filename(set, "model", component, f32, NULL);
  *fp16 = g_build_filename(set, "model", component, f16, NULL);
  g_free(f32);
  g_free(f16);
}

static const char *const weight_components[] = {"unet", "vae", "text_encoder", "image_encoder"};

/* The tiny model's weight file of a set with weight files (fp32 unet), or NULL. */
static char *any_model_file(void) {
  char **sets = golden_sets_with("manifest.json");
  char *found = NULL;
  for (char **s = sets; *s != NULL && found == NULL; s++) {
    char *fp32, *fp16;
    model_files(*s, "unet", &fp32, &fp16);
    if (g_file_test(fp32, G_FILE_TEST_EXISTS)) found = g_strdup(fp32);
    g_free(fp32);
    g_free(fp16);
  }
  g_strfreev(sets);
  if (found == NULL) g_test_skip("no fixture set has model weight files");
  return found;
}

/* any_model_file opened: the reader, or NULL (the caller returns) when there is none; *path
 * gets the file's path (g_free). */
static I2vSafetensors *open_any_model_file(char **path) {
  *path = any_model_file();
  if (*path == NULL) return NULL;
  GError *err = NULL;
  I2vSafetensors *st = i2v_safetensors_open(*path, &err);
  g_assert_no_error(err);
  return st;
}

/* ---- positive ---- */

/* Every golden safetensors file of every set opens and has the manifest's tensors. */
static void test_golden_files(void) {
  char **sets = golden_sets_with("manifest.json");
  guint files = 0;
  for (char **s = sets; *s != NULL; s++) {
    JsonNode *root = golden_json(*s, "manifest.json");
    JsonObject *tf = json_object_get_object_member(
        json_object_get_object_member(json_node_get_object(root), "files"), "_tensor_files");
    GList *groups = json_object_get_members(tf);
    for (GList *l = groups; l != NULL; l = l->next) {
      JsonObject *g = json_object_get_object_member(tf, l->data);
      I2vSafetensors *st = golden_open(*s, json_object_get_string_member(g, "file"));
      check_against_manifest(st, json_object_get_object_member(g, "tensors"));
      /* every float tensor converts; integer tensors are rejected by name */
      for (guint i = 0; i < i2v_safetensors_count(st); i++) {
        const I2vSafetensorsEntry *e = i2v_safetensors_entry(st, i);
        I2vTensor t;
        GError *err = NULL;
        gboolean ok = i2v_safetensors_read_f32(st, e->name, &t, &err);
        if (e->dtype == I2V_DTYPE_I64 || e->dtype == I2V_DTYPE_U8) {
          g_assert_false(ok);
          g_assert_nonnull(strstr(err->message, e->name));
          g_assert_nonnull(strstr(err->message, i2v_dtype_name(e->dtype)));
          g_clear_error(&err);
        } else {
          g_assert_no_error(err);
          if (e->dtype == I2V_DTYPE_F32) g_assert_cmpmem(t.data, e->nbytes, e->data, e->nbytes);
          i2v_host_tensor_free(&t);
        }
      }
      i2v_safetensors_close(st);
      files++;
    }
    g_list_free(groups);
    json_node_unref(root);
  }
  g_strfreev(sets);
  g_test_message("%u golden files", files);
  g_assert_cmpuint(files, >, 0);
}

/* Model weight files: counts and parameters as the manifest says; the fp16 file holds exactly
 * the fp32 values rounded to half. */
static void test_model_files(void) {
  char **sets = golden_sets_with("manifest.json");
  guint checked = 0;
  for (char **s = sets; *s != NULL; s++) {
    JsonNode *root = golden_json(*s, "manifest.json");
    JsonObject *comps = json_object_get_object_member(
        json_object_get_object_member(json_node_get_object(root), "model"), "components");
    for (guint c = 0; c < G_N_ELEMENTS(weight_components); c++) {
      char *fp32, *fp16;
      model_files(*s, weight_components[c], &fp32, &fp16);
      if (!g_file_test(fp32, G_FILE_TEST_EXISTS)) { /* formula-weight sets ship none */
        g_assert_false(g_file_test(fp16, G_FILE_TEST_EXISTS));
        g_free(fp32);
        g_free(fp16);
        continue;
      }
      GError *err = NULL;
      I2vSafetensors *a = i2v_safetensors_open(fp32, &err);
      g_assert_no_error(err);
      I2vSafetensors *h = i2v_safetensors_open(fp16, &err);
      g_assert_no_error(err);
      JsonObject *want = json_object_get_object_member(comps, weight_components[c]);
      g_assert_cmpint(i2v_safetensors_count(a), ==, json_object_get_int_member(want, "tensors"));
      g_assert_cmpint(i2v_safetensors_count(h), ==, i2v_safetensors_count(a));
      gint64 params = 0;
      for (guint i = 0; i < i2v_safetensors_count(a); i++) {
        const I2vSafetensorsEntry *e = i2v_safetensors_entry(a, i);
        const I2vSafetensorsEntry *e16 = i2v_safetensors_find(h, e->name);
        g_assert_nonnull(e16);
        g_assert_cmpint(e->dtype, ==, I2V_DTYPE_F32);
        g_assert_cmpint(e16->dtype, ==, I2V_DTYPE_F16);
        g_assert_true(i2v_shape_equal(e->ndim, e->shape, e16->ndim, e16->shape));
        I2vTensor t32, t16;
        g_assert_true(i2v_safetensors_read_f32(a, e->name, &t32, NULL));
        g_assert_true(i2v_safetensors_read_f32(h, e->name, &t16, NULL));
        int64_t n = i2v_tensor_numel(&t32);
        const float *v32 = t32.data, *v16 = t16.data;
        for (int64_t k = 0; k < n; k++) {
          if (i2v_f32_to_f16(v32[k]) != i2v_f32_to_f16(v16[k]) ||
              v16[k] != i2v_f16_to_f32(i2v_f32_to_f16(v32[k])))
            g_error("%s: %s[%" G_GINT64_FORMAT "] fp16 %g is not fp32 %g rounded to half", fp16,
                    e->name, k, v16[k], v32[k]);
        }
        params += n;
        i2v_host_tensor_free(&t32);
        i2v_host_tensor_free(&t16);
      }
      g_assert_cmpint(params, ==, json_object_get_int_member(want, "params"));
      i2v_safetensors_close(a);
      i2v_safetensors_close(h);
      g_free(fp32);
      g_free(fp16);
      checked++;
    }
    json_node_unref(root);
  }
  g_strfreev(sets);
  g_test_message("%u fp32/fp16 component pairs", checked);
  if (checked == 0) g_test_skip("no fixture set has model weight files");
}

/* Writer → reader round trip with every dtype, an empty tensor and a replaced name; the file is
 * laid out as the format says (padded header, metadata, sorted names, consecutive data). */
static void test_writer_roundtrip(void) {
  char *dir = golden_tmp_dir("i2v-st");
  char *path = g_build_filename(dir, "out.safetensors", NULL);
  I2vSafetensorsWriter *w = i2v_safetensors_writer_new();
  float f32[6] = {1.5f, -2, 3, 0.25f, -0.0f, 1e-30f};
  uint16_t f16[3] = {0x3c00, 0xc000, 0x0001}, bf16[2] = {0x3f80, 0xbf40};
  int64_t i64[2] = {-7, G_MAXINT64};
  uint8_t u8[5] = {0, 1, 127, 128, 255};
  int64_t s23[] = {2, 3}, s3[] = {3}, s2[] = {1, 2}, s5[] = {5, 1, 1, 1, 1}, s0[] = {0, 4};
  i2v_safetensors_writer_add(w, "z.f32", I2V_DTYPE_F32, 2, s23, f32);
  i2v_safetensors_writer_add(w, "a.f16", I2V_DTYPE_F16, 1, s3, f16);
  i2v_safetensors_writer_add(w, "m.bf16", I2V_DTYPE_BF16, 2, s2, bf16);
  i2v_safetensors_writer_add(w, "m.bf16", I2V_DTYPE_BF16, 1, s2 + 1, bf16); /* replaces */
  i2v_safetensors_writer_add(w, "ids \"quoted\" é", I2V_DTYPE_I64, 2, s2, i64);
  i2v_safetensors_writer_add(w, "u8", I2V_DTYPE_U8, 5, s5, u8);
  i2v_safetensors_writer_add(w, "v.f16", I2V_DTYPE_F16, 1, s3, f16); /* at an odd offset */
  i2v_safetensors_writer_add(w, "empty", I2V_DTYPE_F32, 2, s0, f32);
  GError *err = NULL;
  g_assert_true(i2v_safetensors_writer_save(w, path, &err));
  g_assert_no_error(err);
  i2v_safetensors_writer_free(w);

  char *bytes;
  gsize len;
  g_assert_true(g_file_get_contents(path, &bytes, &len, NULL));
  guint64 hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (guint8)bytes[i];
  g_assert_cmpuint(hlen % 8, ==, 0);
  g_assert_cmpuint(len, ==,
                   8 + hlen + sizeof f32 + 2 * sizeof f16 + 2 * 2 + sizeof i64 + sizeof u8);
  char *header = g_strndup(bytes + 8, hlen);
  g_assert_true(g_str_has_prefix(header, "{\"__metadata__\":{\"format\":\"pt\"}"));
  /* names appear in sorted order */
  const char *order[] = {"\"a.f16\"",  "\"empty\"", "\"ids \\\"quoted\\\" é\"",
                         "\"m.bf16\"", "\"u8\"",    "\"v.f16\"",
                         "\"z.f32\""};
  const char *prev = header;
  for (guint i = 0; i < G_N_ELEMENTS(order); i++) {
    const char *at = strstr(header, order[i]);
    g_assert_nonnull(at);
    g_assert_true(at > prev);
    prev = at;
  }
  g_free(header);
  g_free(bytes);

  I2vSafetensors *st = i2v_safetensors_open(path, &err);
  g_assert_no_error(err);
  g_assert_cmpuint(i2v_safetensors_count(st), ==, 7);
  const I2vSafetensorsEntry *e = i2v_safetensors_find(st, "z.f32");
  g_assert_cmpmem(e->data, e->nbytes, f32, sizeof f32);
  g_assert_cmpint(e->shape[1], ==, 3);
  e = i2v_safetensors_find(st, "m.bf16");
  g_assert_cmpint(e->ndim, ==, 1);
  g_assert_cmpmem(e->data, e->nbytes, bf16, sizeof bf16);
  e = i2v_safetensors_find(st, "ids \"quoted\" é");
  g_assert_cmpint(e->dtype, ==, I2V_DTYPE_I64);
  g_assert_cmpmem(e->data, e->nbytes, i64, sizeof i64);
  e = i2v_safetensors_find(st, "u8");
  g_assert_cmpint(e->ndim, ==, 5);
  g_assert_cmpmem(e->data, e->nbytes, u8, sizeof u8);
  g_assert_cmpuint(i2v_safetensors_find(st, "empty")->nbytes, ==, 0);
  g_assert_null(i2v_safetensors_find(st, "missing"));

  I2vTensor t;
  g_assert_true(i2v_safetensors_read_f32(st, "a.f16", &t, &err));
  g_assert_cmpfloat(((float *)t.data)[0], ==, 1.0f);
  g_assert_cmpfloat(((float *)t.data)[1], ==, -2.0f);
  g_assert_cmpfloat(((float *)t.data)[2], ==, i2v_f16_to_f32(1));
  i2v_host_tensor_free(&t);
  g_assert_true(((uintptr_t)i2v_safetensors_find(st, "v.f16")->data & 1) != 0);
  g_assert_true(i2v_safetensors_read_f32(st, "v.f16", &t, &err));
  g_assert_cmpfloat(((float *)t.data)[1], ==, -2.0f);
  g_assert_cmpfloat(((float *)t.data)[2], ==, i2v_f16_to_f32(1));
  i2v_host_tensor_free(&t);
  g_assert_true(i2v_safetensors_read_f32(st, "m.bf16", &t, &err));
  g_assert_cmpfloat(((float *)t.data)[1], ==, -0.75f);
  i2v_host_tensor_free(&t);
  i2v_safetensors_close(st);
  g_free(path);
  golden_tree_remove(dir);
  g_free(dir);
}

/* A fixture model file rewritten by the writer reads back with identical tensors. */
static void test_writer_copies_fixture(void) {
  char *src;
  I2vSafetensors *a = open_any_model_file(&src);
  if (a == NULL) return;
  GError *err = NULL;
  I2vSafetensorsWriter *w = i2v_safetensors_writer_new();
  for (guint i = 0; i < i2v_safetensors_count(a); i++) {
    const I2vSafetensorsEntry *e = i2v_safetensors_entry(a, i);
    i2v_safetensors_writer_add(w, e->name, e->dtype, e->ndim, e->shape, e->data);
  }
  char *dir = golden_tmp_dir("i2v-st");
  char *path = g_build_filename(dir, "copy.safetensors", NULL);
  g_assert_true(i2v_safetensors_writer_save(w, path, &err));
  i2v_safetensors_writer_free(w);
  I2vSafetensors *b = i2v_safetensors_open(path, &err);
  g_assert_no_error(err);
  g_assert_cmpuint(i2v_safetensors_count(b), ==, i2v_safetensors_count(a));
  for (guint i = 0; i < i2v_safetensors_count(a); i++) {
    const I2vSafetensorsEntry *x = i2v_safetensors_entry(a, i), *y = i2v_safetensors_entry(b, i);
    g_assert_cmpstr(x->name, ==, y->name);
    g_assert_cmpint(x->dtype, ==, y->dtype);
    g_assert_true(i2v_shape_equal(x->ndim, x->shape, y->ndim, y->shape));
    g_assert_cmpmem(x->data, x->nbytes, y->data, y->nbytes);
  }
  i2v_safetensors_close(a);
  i2v_safetensors_close(b);
  g_free(path);
  g_free(src);
  golden_tree_remove(dir);
  g_free(dir);
}

/* Splits a fixture file over three shards with an index (tensors in round-robin order) and
 * writes the index, optionally naming one more tensor (extra_name → extra_shard). Returns the
 * index path. */
static char *write_sharded(const I2vSafetensors *a, const char *dir, const char *extra_name,
                           const char *extra_shard) {
  enum { N_SHARDS = 3 };
  I2vSafetensorsWriter *w[N_SHARDS];
  for (int k = 0; k < N_SHARDS; k++) w[k] = i2v_safetensors_writer_new();
  JsonBuilder *b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "metadata");
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "total_size");
  json_builder_add_int_value(b, 0);
  json_builder_end_object(b);
  json_builder_set_member_name(b, "weight_map");
  json_builder_begin_object(b);
  for (guint i = 0; i < i2v_safetensors_count(a); i++) {
    const I2vSafetensorsEntry *e = i2v_safetensors_entry(a, i);
    i2v_safetensors_writer_add(w[i % N_SHARDS], e->name, e->dtype, e->ndim, e->shape, e->data);
    char *shard = g_strdup_printf("model-%05u-of-%05d.safetensors", i % N_SHARDS + 1, N_SHARDS);
    json_builder_set_member_name(b, e->name);
    json_builder_add_string_value(b, shard);
    g_free(shard);
  }
  if (extra_name != NULL) {
    json_builder_set_member_name(b, extra_name);
    json_builder_add_string_value(b, extra_shard);
  }
  json_builder_end_object(b);
  json_builder_end_object(b);
  for (int k = 0; k < N_SHARDS; k++) {
    char *shard = g_strdup_printf("%s/model-%05d-of-%05d.safetensors", dir, k + 1, N_SHARDS);
    g_assert_true(i2v_safetensors_writer_save(w[k], shard, NULL));
    i2v_safetensors_writer_free(w[k]);
    g_free(shard);
  }
  JsonGenerator *gen = json_generator_new();
  JsonNode *root = json_builder_get_root(b);
  json_generator_set_root(gen, root);
  char *index = g_build_filename(dir, "model.safetensors.index.json", NULL);
  g_assert_true(json_generator_to_file(gen, index, NULL));
  json_node_unref(root);
  g_object_unref(gen);
  g_object_unref(b);
  return index;
}

/* A sharded index reads as the single file it was made from. */
static void test_sharded(void) {
  char *src;
  I2vSafetensors *a = open_any_model_file(&src);
  if (a == NULL) return;
  GError *err = NULL;
  char *dir = golden_tmp_dir("i2v-st");
  char *index = write_sharded(a, dir, NULL, NULL);
  I2vSafetensors *b = i2v_safetensors_open(index, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(i2v_safetensors_path(b), ==, index);
  g_assert_cmpuint(i2v_safetensors_count(b), ==, i2v_safetensors_count(a));
  GHashTable *files = g_hash_table_new(g_str_hash, g_str_equal);
  for (guint i = 0; i < i2v_safetensors_count(a); i++) {
    const I2vSafetensorsEntry *x = i2v_safetensors_entry(a, i);
    const I2vSafetensorsEntry *y = i2v_safetensors_find(b, x->name);
    g_assert_nonnull(y);
    g_assert_true(g_str_has_prefix(y->file, dir));
    g_hash_table_add(files, (gpointer)y->file);
    g_assert_true(i2v_shape_equal(x->ndim, x->shape, y->ndim, y->shape));
    g_assert_cmpmem(x->data, x->nbytes, y->data, y->nbytes);
  }
  g_assert_cmpuint(g_hash_table_size(files), ==, 3); /* one path per shard: opened once */
  g_hash_table_unref(files);
  i2v_safetensors_close(b);

  /* a tensor the index names but its shard lacks */
  char *bad = write_sharded(a, dir, "not.in.shard", "model-00002-of-00003.safetensors");
  expect_open_error(bad, I2V_ERROR_MISSING,
                    (const char *[]){"not.in.shard", "model-00002-of-00003.safetensors", NULL});
  g_free(bad);
  /* a shard file that does not exist */
  bad = write_sharded(a, dir, "lost.weight", "model-00009-of-00009.safetensors");
  expect_open_error(bad, I2V_ERROR_MISSING,
                    (const char *[]){"model-00009-of-00009.safetensors", "lost.weight", NULL});
  g_free(bad);
  i2v_safetensors_close(a);
  g_free(index);
  g_free(src);
  golden_tree_remove(dir);
  g_free(dir);
}

/* ---- negative: one crafted file per failure ---- */

typedef struct {
  const char *label;
  const char *header; /* NULL: raw bytes below */
  gsize data_len;
  int code;
  const char *needles[3];
} BadHeader;

static const BadHeader bad_headers[] = {
    {"json-garbage", "{\"a\": {\"dtype\": \"F32\", ", 0, I2V_ERROR_FORMAT, {"invalid JSON"}},
    {"not-object", "[1, 2, 3]", 0, I2V_ERROR_FORMAT, {"expected a JSON object", "found an array"}},
    {"entry-not-object", "{\"w.bias\": [1]}", 0, I2V_ERROR_FORMAT, {"w.bias", "not a JSON object"}},
    {"no-dtype",
     "{\"w.bias\": {\"shape\": [1], \"data_offsets\": [0, 4]}}",
     4,
     I2V_ERROR_FORMAT,
     {"w.bias", "'dtype'"}},
    {"no-shape",
     "{\"w.bias\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}",
     4,
     I2V_ERROR_FORMAT,
     {"w.bias", "'shape'"}},
    {"no-offsets",
     "{\"w.bias\": {\"dtype\": \"F32\", \"shape\": [1]}}",
     4,
     I2V_ERROR_FORMAT,
     {"w.bias", "'data_offsets'"}},
    {"unknown-dtype",
     "{\"w.bias\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}}",
     8,
     I2V_ERROR_FORMAT,
     {"w.bias", "unknown dtype 'F64'"}},
    {"rank-6",
     "{\"x.w\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1], \"data_offsets\": [0, 1]}}",
     1,
     I2V_ERROR_FORMAT,
     {"x.w", "rank 6"}},
    {"negative-dim",
     "{\"x.w\": {\"dtype\": \"F32\", \"shape\": [2, -1], \"data_offsets\": [0, 8]}}",
     8,
     I2V_ERROR_FORMAT,
     {"x.w", "dimension 1"}},
    {"fractional-dim",
     "{\"x.w\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 8]}}",
     8,
     I2V_ERROR_FORMAT,
     {"x.w", "dimension 0"}},
    {"span-mismatch",
     "{\"x.w\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}}",
     24,
     I2V_ERROR_FORMAT,
     {"x.w", "24 bytes", "span 20"}},
    {"huge-shape",
     "{\"x.w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, "
     "0]}}",
     0,
     I2V_ERROR_FORMAT,
     {"x.w", "[4294967296, 4294967296] is too large"}},
    {"outside-data",
     "{\"x.w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}",
     16,
     I2V_ERROR_FORMAT,
     {"x.w", "outside the data area of 16 bytes"}},
    {"reversed-offsets",
     "{\"x.w\": {\"dtype\": \"U8\", \"shape\": [0], \"data_offsets\": [4, 2]}}",
     8,
     I2V_ERROR_FORMAT,
     {"x.w", "data_offsets"}},
    {"overlap",
     "{\"first.w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
     " \"second.b\": {\"dtype\": \"F16\", \"shape\": [4], \"data_offsets\": [12, 20]}}",
     24,
     I2V_ERROR_FORMAT,
     {"'first.w'", "'second.b'", "overlap"}},
    {"duplicate-name",
     "{\"w.bias\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
     " \"w.bias\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
     8,
     I2V_ERROR_FORMAT,
     {"'w.bias'", "twice"}},
    {"duplicate-field",
     "{\"x.w\": {\"dtype\": \"F32\", \"dtype\": \"F16\", \"shape\": [1], \"data_offsets\": [0, "
     "4]}}",
     4,
     I2V_ERROR_FORMAT,
     {"'dtype'", "twice"}},
    {"gap",
     "{\"first.w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
     " \"second.b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}",
     12,
     I2V_ERROR_FORMAT,
     {"'first.w'", "'second.b'", "gap"}},
    {"not-at-zero",
     "{\"x.w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
     8,
     I2V_ERROR_FORMAT,
     {"'x.w'", "begins at byte 4"}},
    {"trailing-bytes",
     "{\"x.w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
     12,
     I2V_ERROR_FORMAT,
     {"end at byte 4", "12 bytes"}},
    {"same-bytes-twice",
     "{\"a.w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
     " \"b.w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
     4,
     I2V_ERROR_FORMAT,
     {"'a.w'", "'b.w'", "overlap"}},
    {"comment",
     "{\"x.w\": {\"dtype\": \"U8\", /* [[ */ \"shape\": [1], \"data_offsets\": [0, 1]}}",
     1,
     I2V_ERROR_FORMAT,
     {"comment"}},
    {"dtype-not-string",
     "{\"x.w\": {\"dtype\": 7, \"shape\": [1], \"data_offsets\": [0, 4]}}",
     4,
     I2V_ERROR_FORMAT,
     {"x.w", "'dtype'"}},
};

static void test_bad_header(gconstpointer data) {
  const BadHeader *b = data;
  char *dir = golden_tmp_dir("i2v-st");
  char *file = g_strdup_printf("%s.safetensors", b->label);
  char *path = write_header(dir, file, b->header, b->data_len);
  const char *needles[5] = {file, b->needles[0], b->needles[1], b->needles[2], NULL};
  expect_open_error(path, b->code, needles);
  g_free(path);
  g_free(file);
  golden_tree_remove(dir);
  g_free(dir);
}

/* Files shorter than the length field, a length past the end and an absurd length. */
static void test_bad_length(void) {
  char *dir = golden_tmp_dir("i2v-st");
  char *path = g_build_filename(dir, "short.safetensors", NULL);
  g_assert_true(g_file_set_contents(path, "\x10\0\0", 3, NULL));
  expect_open_error(path, I2V_ERROR_FORMAT,
                    (const char *[]){"short.safetensors", "3 bytes", "shorter", NULL});
  g_free(path);
  path = g_build_filename(dir, "empty.safetensors", NULL);
  g_assert_true(g_file_set_contents(path, "", 0, NULL));
  expect_open_error(path, I2V_ERROR_FORMAT, (const char *[]){"empty.safetensors", "0 bytes", NULL});
  g_free(path);
  path = write_raw(dir, "past.safetensors", 4096, "{}      ", 8);
  expect_open_error(path, I2V_ERROR_FORMAT,
                    (const char *[]){"past.safetensors", "header length",
                                     "beyond the end of the file (24 bytes)", NULL});
  g_free(path);
  path = write_raw(dir, "absurd.safetensors", G_MAXUINT64 - 3, "{}      ", 0);
  expect_open_error(path, I2V_ERROR_FORMAT,
                    (const char *[]){"absurd.safetensors", "header length",
                                     "beyond the format's limit (104857600 bytes)", NULL});
  g_free(path);
  path = g_build_filename(dir, "nonexistent.safetensors", NULL);
  expect_open_error(path, I2V_ERROR_MISSING,
                    (const char *[]){"nonexistent.safetensors", "not found", NULL});
  g_free(path);
  /* an index that is no index */
  path = g_build_filename(dir, "x.safetensors.index.json", NULL);
  g_assert_true(g_file_set_contents(path, "{\"metadata\": {}}", -1, NULL));
  expect_open_error(path, I2V_ERROR_FORMAT,
                    (const char *[]){"x.safetensors.index.json", "weight_map", NULL});
  g_assert_true(g_file_set_contents(path, "{\"weight_map\": {\"a.w\": 3}}", -1, NULL));
  expect_open_error(path, I2V_ERROR_FORMAT,
                    (const char *[]){"x.safetensors.index.json", "'a.w'", NULL});
  g_assert_true(g_file_set_contents(path, "{\"weight_map\": ", -1, NULL));
  expect_open_error(path, I2V_ERROR_FORMAT, (const char *[]){"x.safetensors.index.json", NULL});
  g_free(path);
  golden_tree_remove(dir);
  g_free(dir);
}

/* A header of deeply nested JSON (a 400 KB header of [ x 200000 ] x 200000 crashed json-glib's
 * parser by stack overflow), in the metadata and as a tensor entry of nested objects. */
static void test_deep_header(void) {
  char *dir = golden_tmp_dir("i2v-st");
  const struct {
    const char *file, *open, *close;
    int n;
  } cases[] = {{"arrays.safetensors", "[", "]", 200000},
               {"objects.safetensors", "{\"a\":", "}", 30000}};
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    GString *h = g_string_new("{\"__metadata__\": ");
    for (int k = 0; k < cases[i].n; k++) g_string_append(h, cases[i].open);
    g_string_append(h, "1");
    for (int k = 0; k < cases[i].n; k++) g_string_append(h, cases[i].close);
    g_string_append(h, "}");
    char *path = write_header(dir, cases[i].file, h->str, 0);
    expect_open_error(path, I2V_ERROR_FORMAT,
                      (const char *[]){cases[i].file, "header", "nested deeper than 64", NULL});
    g_free(path);
    g_string_free(h, TRUE);
  }
  golden_tree_remove(dir);
  g_free(dir);
}

/* Paths that are no regular file: a directory, a FIFO (open() used to block forever), a symlink
 * loop (reported as one, not as a missing file). */
static void test_not_regular(void) {
  char *dir = golden_tmp_dir("i2v-st");
  expect_open_error(dir, I2V_ERROR_IO, (const char *[]){dir, "is a directory", NULL});
  char *fifo = g_build_filename(dir, "fifo.safetensors", NULL);
  g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
  expect_open_error(fifo, I2V_ERROR_IO, (const char *[]){fifo, "is a FIFO", NULL});
  char *index = g_build_filename(dir, "x.safetensors.index.json", NULL);
  g_assert_cmpint(mkfifo(index, 0600), ==, 0);
  expect_open_error(index, I2V_ERROR_IO, (const char *[]){index, "is a FIFO", NULL});
  char *loop = g_build_filename(dir, "loop.safetensors", NULL);
  g_assert_cmpint(symlink(loop, loop), ==, 0);
  expect_open_error(loop, I2V_ERROR_IO, (const char *[]){loop, "symlink loop", NULL});
  g_free(loop);
  g_free(index);
  g_free(fifo);
  golden_tree_remove(dir);
  g_free(dir);
}

/* A shard index naming files outside its folder (as ../../../../etc/passwd, which was opened and
 * its first bytes printed) is refused before anything is opened; a shard inside the folder that
 * is no safetensors file fails without its bytes in the message. */
static void test_shard_names(void) {
  char *src;
  I2vSafetensors *a = open_any_model_file(&src);
  if (a == NULL) return;
  GError *err = NULL;
  char *dir = golden_tmp_dir("i2v-st");
  const char *outside[] = {"../../../../etc/passwd", "/etc/passwd", "sub/../../x.safetensors",
                           ".."};
  for (guint i = 0; i < G_N_ELEMENTS(outside); i++) {
    char *bad = write_sharded(a, dir, "stolen.weight", outside[i]);
    expect_open_error(
        bad, I2V_ERROR_FORMAT,
        (const char *[]){outside[i], "stolen.weight", "inside the index's folder", NULL});
    g_free(bad);
  }
  char *secret = g_build_filename(dir, "secret.safetensors", NULL);
  g_assert_true(g_file_set_contents(secret, "root:x:0:0:root:/root:/bin/bash\n", -1, NULL));
  char *bad = write_sharded(a, dir, "stolen.weight", "secret.safetensors");
  i2v_safetensors_open(bad, &err);
  g_assert_nonnull(err);
  g_test_message("%s", err->message);
  g_assert_nonnull(strstr(err->message, "secret.safetensors"));
  g_assert_null(strstr(err->message, "root"));
  g_assert_null(strstr(err->message, "bash"));
  g_clear_error(&err);
  g_free(bad);
  g_free(secret);
  i2v_safetensors_close(a);
  g_free(src);
  golden_tree_remove(dir);
  g_free(dir);
}

/* i2v_safetensors_check_finite: a NaN or an infinity in any float dtype is found at its element
 * (16-bit values at an odd offset too); finite values and integer tensors pass. */
static void test_non_finite(void) {
  char *dir = golden_tmp_dir("i2v-st");
  char *path = g_build_filename(dir, "nan.safetensors", NULL);
  I2vSafetensorsWriter *w = i2v_safetensors_writer_new();
  float f32[6] = {0, 1, -2, 3, NAN, 5}, fine[2] = {1e30f, -1e-30f};
  guint16 f16[4] = {0x3c00, 0x0000, 0x7c00, 0x3c00}; /* 1, 0, +inf, 1 */
  guint16 bf16[3] = {0x3f80, 0xffc1, 0x3f80};        /* 1, NaN, 1 */
  guint8 u8[3] = {0xff, 0xff, 0xff}, odd[1] = {7};
  int64_t s6[] = {6}, s4[] = {4}, s3[] = {3}, s2[] = {2}, s1[] = {1};
  i2v_safetensors_writer_add(w, "a.odd", I2V_DTYPE_U8, 1, s1, odd); /* the rest at odd offsets */
  i2v_safetensors_writer_add(w, "b.f32", I2V_DTYPE_F32, 1, s6, f32);
  i2v_safetensors_writer_add(w, "c.f16", I2V_DTYPE_F16, 1, s4, f16);
  i2v_safetensors_writer_add(w, "d.bf16", I2V_DTYPE_BF16, 1, s3, bf16);
  i2v_safetensors_writer_add(w, "e.u8", I2V_DTYPE_U8, 1, s3, u8);
  i2v_safetensors_writer_add(w, "f.fine", I2V_DTYPE_F32, 1, s2, fine);
  g_assert_true(i2v_safetensors_writer_save(w, path, NULL));
  i2v_safetensors_writer_free(w);
  GError *err = NULL;
  I2vSafetensors *st = i2v_safetensors_open(path, &err);
  g_assert_no_error(err);
  const struct {
    const char *name, *what;
  } bad[] = {{"b.f32", "NaN at element 4 of 6"},
             {"c.f16", "infinity at element 2 of 4"},
             {"d.bf16", "NaN at element 1 of 3"}};
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_assert_false(i2v_safetensors_check_finite(i2v_safetensors_find(st, bad[i].name), &err));
    golden_assert_error(&err, I2V_ERROR_FORMAT,
                        (const char *[]){path, bad[i].name, bad[i].what, NULL});
  }
  g_assert_true(i2v_safetensors_check_finite(i2v_safetensors_find(st, "e.u8"), &err));
  g_assert_true(i2v_safetensors_check_finite(i2v_safetensors_find(st, "f.fine"), &err));
  g_assert_no_error(err);
  i2v_safetensors_close(st);
  g_free(path);
  golden_tree_remove(dir);
  g_free(dir);
}

/* The metadata object is skipped, whatever it holds; a valid header with padding opens. */
static void test_metadata_skipped(void) {
  char *dir = golden_tmp_dir("i2v-st");
  char *path =
      write_header(dir, "meta.safetensors",
                   "{\"__metadata__\": {\"format\": \"pt\", \"n\": \"1\"},"
                   " \"b\": {\"dtype\": \"U8\", \"shape\": [3], \"data_offsets\": [4, 7]},"
                   " \"a\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 4]}}  ",
                   7);
  GError *err = NULL;
  I2vSafetensors *st = i2v_safetensors_open(path, &err);
  g_assert_no_error(err);
  g_assert_cmpuint(i2v_safetensors_count(st), ==, 2);
  g_assert_cmpstr(i2v_safetensors_entry(st, 0)->name, ==, "a");
  g_assert_null(i2v_safetensors_find(st, "__metadata__"));
  I2vTensor t;
  g_assert_false(i2v_safetensors_read_f32(st, "b", &t, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_SHAPE);
  g_assert_nonnull(strstr(err->message, "'b'"));
  g_assert_nonnull(strstr(err->message, "U8"));
  g_assert_nonnull(strstr(err->message, "meta.safetensors"));
  g_clear_error(&err);
  g_assert_false(i2v_safetensors_read_f32(st, "zz", &t, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_MISSING);
  g_assert_nonnull(strstr(err->message, "'zz'"));
  g_assert_nonnull(strstr(err->message, "meta.safetensors"));
  g_clear_error(&err);
  i2v_safetensors_close(st);
  g_free(path);
  golden_tree_remove(dir);
  g_free(dir);
}

/* Saving into a folder that does not exist fails naming the path. */
static void test_writer_error(void) {
  I2vSafetensorsWriter *w = i2v_safetensors_writer_new();
  GError *err = NULL;
  g_assert_false(i2v_safetensors_writer_save(w, "/nonexistent-dir/out.safetensors", &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_IO);
  g_assert_nonnull(strstr(err->message, "/nonexistent-dir/out.safetensors"));
  g_error_free(err);
  i2v_safetensors_writer_free(w);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/safetensors/golden-files", test_golden_files);
  g_test_add_func("/safetensors/model-files-fp32-fp16", test_model_files);
  g_test_add_func("/safetensors/writer-roundtrip", test_writer_roundtrip);
  g_test_add_func("/safetensors/writer-copies-fixture", test_writer_copies_fixture);
  g_test_add_func("/safetensors/sharded", test_sharded);
  g_test_add_func("/safetensors/metadata-skipped", test_metadata_skipped);
  for (guint i = 0; i < G_N_ELEMENTS(bad_headers); i++) {
    char *name = g_strdup_printf("/safetensors/bad/%s", bad_headers[i].label);
    g_test_add_data_func(name, &bad_headers[i], test_bad_header);
    g_free(name);
  }
  g_test_add_func("/safetensors/bad/length", test_bad_length);
  g_test_add_func("/safetensors/bad/deep-header", test_deep_header);
  g_test_add_func("/safetensors/bad/not-regular", test_not_regular);
  g_test_add_func("/safetensors/bad/shard-names", test_shard_names);
  g_test_add_func("/safetensors/non-finite", test_non_finite);
  g_test_add_func("/safetensors/bad/writer-path", test_writer_error);
  return g_test_run();
}
