/* The whole pipeline on CUDA against the CPU: for every fixture set with model files, the first
 * pipeline case of its manifest (prompt, size, frames, steps, guidance read from there; noise from
 * the seed) runs through i2v_generate on "cpu" and on "cuda:0" in each precision, and every
 * intermediate the dump callback hands out is compared by relative L2 error. The bound applies to
 * the final latents and the decoded video (the other tensors are reported):
 *   fp32 1e-4 (op errors of ~1e-6 grow through the denoising steps and the VAE),
 *   fp16 3e-2, bf16 1e-1 (the whole pipeline in 16-bit storage, as diffusers' fp16 run).
 * Skips without a CUDA device. Also runs on the CPU through tests/cudasim (fp16 only there: a run
 * takes minutes), in the slow suite. */
#include <math.h>
#include <string.h>

#include "backend.h"
#include "cuda_backend.h"
#include "golden.h"
#include "i2v.h"

typedef struct {
  const char *name;
  const char *precision;
  double tol;
} Precision;

static const Precision precisions[] = {
    {"fp32", "fp32", 1e-4},
    {"fp16", "fp16", 3e-2},
    {"bf16", "bf16", 1e-1},
};

static JsonObject *member(JsonObject *o, const char *name) {
  return o != NULL && json_object_has_member(o, name) ? json_object_get_object_member(o, name)
                                                      : NULL;
}

/* name → float array (g_free) of every dumped tensor, with its element count. */
typedef struct {
  GHashTable *data;
  GHashTable *numel;
} Dump;

static void on_dump(const char *name, const I2vTensor *t, void *user) {
  Dump *d = user;
  int64_t n = i2v_tensor_numel(t);
  g_hash_table_insert(d->data, g_strdup(name), g_memdup2(t->data, (gsize)n * sizeof(float)));
  g_hash_table_insert(d->numel, g_strdup(name), g_memdup2(&n, sizeof n));
}

/* Runs one generation on device/precision and returns its dump. */
static Dump run(const char *model, const char *device, const char *precision, const I2vImage *image,
                const I2vParams *p) {
  Dump d = {g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free),
            g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free)};
  I2vModelOptions mo = {.path = model, .device = device, .precision = precision};
  GError *err = NULL;
  I2vModel *m = i2v_model_load(&mo, &err);
  g_assert_no_error(err);
  I2vCallbacks cb = {.dump = on_dump, .user = &d};
  g_assert_true(i2v_generate(m, image, p, &cb, NULL, &err));
  g_assert_no_error(err);
  i2v_model_unref(m);
  return d;
}

static void dump_free(Dump *d) {
  g_hash_table_unref(d->data);
  g_hash_table_unref(d->numel);
}

/* Relative L2 error of every tensor of got against ref; asserts the bound on the final ones. */
static void compare(const Dump *ref, const Dump *got, const Precision *prec) {
  GHashTableIter it;
  gpointer key, value;
  int checked = 0;
  g_hash_table_iter_init(&it, ref->data);
  while (g_hash_table_iter_next(&it, &key, &value)) {
    const float *r = value, *g = g_hash_table_lookup(got->data, key);
    g_assert_nonnull(g);
    int64_t n = *(int64_t *)g_hash_table_lookup(ref->numel, key);
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
      num += ((double)g[i] - r[i]) * ((double)g[i] - r[i]);
      den += (double)r[i] * r[i];
    }
    double rel = sqrt(num) / MAX(sqrt(den), 1e-30);
    g_test_message("%s %s: relative L2 error %.3g", prec->name, (const char *)key, rel);
    if (strcmp(key, "latents_final") == 0 || strcmp(key, "video") == 0) {
      if (!(rel <= prec->tol))
        g_error("%s %s: relative L2 error %.3g > %.3g", prec->name, (const char *)key, rel,
                prec->tol);
      checked++;
    }
  }
  g_assert_cmpint(checked, ==, 2);
}

static void test_pipeline(gconstpointer data) {
  const Precision *prec = data;
  GError *err = NULL;
  I2vBackend *probe = i2v_cuda_backend_new(0, I2V_DTYPE_F32, &err);
  if (probe == NULL) {
    g_test_skip(err->message);
    g_error_free(err);
    return;
  }
  i2v_backend_free(probe);
  char **sets = golden_sets_with("manifest.json");
  int ran = 0;
  for (char **set = sets; *set != NULL; set++) {
    guint64 seed;
    if (golden_formula_seed(*set, &seed)) continue; /* real-size formula sets: too slow here */
    JsonNode *manifest = golden_json(*set, "manifest.json");
    JsonObject *files = member(json_node_get_object(manifest), "files");
    JsonArray *cases = files != NULL && json_object_has_member(files, "pipeline")
                           ? json_object_get_array_member(files, "pipeline")
                           : NULL;
    JsonObject *img = member(files, "input_image");
    if (img == NULL) img = member(member(files, "image_preprocess"), "image");
    if (cases == NULL || img == NULL || json_array_get_length(cases) == 0) {
      json_node_unref(manifest);
      continue;
    }
    JsonObject *call =
        json_object_get_object_member(json_array_get_object_element(cases, 0), "call");
    I2vParams p;
    i2v_params_init(&p);
    p.prompt = json_object_get_string_member(call, "prompt");
    p.height = (int)json_object_get_int_member(call, "height");
    p.width = (int)json_object_get_int_member(call, "width");
    p.frames = (int)json_object_get_int_member(call, "num_frames");
    p.steps = (int)json_object_get_int_member(call, "num_inference_steps");
    p.guidance = json_object_get_double_member(call, "guidance_scale");
    p.fps = (int)json_object_get_int_member(call, "target_fps");
    p.seed = 7;
    char *png = g_build_filename(*set, "golden", json_object_get_string_member(img, "png"), NULL);
    char *model = g_build_filename(*set, "model", NULL);
    I2vImage image;
    g_assert_true(i2v_image_load(png, &image, &err));
    g_assert_no_error(err);

    Dump ref = run(model, "cpu", NULL, &image, &p);
    Dump got = run(model, "cuda:0", prec->precision, &image, &p);
    compare(&ref, &got, prec);
    dump_free(&ref);
    dump_free(&got);
    i2v_image_clear(&image);
    g_free(png);
    g_free(model);
    json_node_unref(manifest);
    ran++;
  }
  g_strfreev(sets);
  g_assert_cmpint(ran, >, 0);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  for (guint i = 0; i < G_N_ELEMENTS(precisions); i++) {
#ifdef I2V_CUDA_SIM /* the simulator takes minutes per run: fp16, the default CUDA precision */
    if (strcmp(precisions[i].name, "fp16") != 0) continue;
#endif
    char *path = g_strdup_printf("/cuda/pipeline/%s", precisions[i].name);
    g_test_add_data_func(path, &precisions[i], test_pipeline);
    g_free(path);
  }
  return g_test_run();
}
