/* Golden pipeline cases shared by the CPU and CUDA pipeline tests. */
#include "golden_case.h"

#include <math.h>
#include <string.h>

#include "cpu_backend.h"
#include "clip_text.h"
#include "clip_vision.h"

static JsonObject *member_object(JsonObject *o, const char *key) {
  return o != NULL && json_object_has_member(o, key) ? json_object_get_object_member(o, key) : NULL;
}

/* The manifest's pipeline cases (NULL if the set has none). */
static JsonArray *pipeline_cases(JsonNode *manifest) {
  JsonObject *files = member_object(json_node_get_object(manifest), "files");
  return files != NULL && json_object_has_member(files, "pipeline")
             ? json_object_get_array_member(files, "pipeline")
             : NULL;
}

const char *golden_input_png(JsonNode *manifest) {
  JsonObject *files = member_object(json_node_get_object(manifest), "files");
  JsonObject *img = member_object(files, "input_image");
  if (img == NULL) img = member_object(member_object(files, "image_preprocess"), "image");
  g_assert_nonnull(img);
  return json_object_get_string_member(img, "png");
}

void golden_case_open(GoldenCase *k, const char *set, JsonNode *manifest, JsonObject *c) {
  memset(k, 0, sizeof(*k));
  k->set = set;
  k->name = json_object_get_string_member(c, "name");
  k->group = g_strdup_printf("pipeline_%s", k->name);
  char *file = g_strdup_printf("%s.safetensors", k->group);
  k->st = golden_open(set, json_object_get_string_member_with_default(c, "file", file));
  g_free(file);
  k->model_dir = g_build_filename(set, "model", NULL);
  k->mo.path = k->model_dir;
  k->mo.formula_weights = golden_formula_seed(set, &k->mo.formula_seed);
  if (!k->mo.formula_weights && strstr(json_object_get_string_member(c, "weights"), "fp16"))
    k->mo.variant = "fp16";

  JsonObject *call = json_object_get_object_member(c, "call");
  i2v_params_init(&k->p);
  k->p.prompt = json_object_get_string_member(call, "prompt");
  k->p.negative_prompt = json_object_get_null_member(call, "negative_prompt")
                             ? NULL
                             : json_object_get_string_member(call, "negative_prompt");
  k->p.height = (int)json_object_get_int_member(call, "height");
  k->p.width = (int)json_object_get_int_member(call, "width");
  k->p.frames = (int)json_object_get_int_member(call, "num_frames");
  k->p.steps = (int)json_object_get_int_member(call, "num_inference_steps");
  k->p.guidance = json_object_get_double_member(call, "guidance_scale");
  k->p.fps = (int)json_object_get_int_member(call, "target_fps");
  if (json_object_has_member(c, "scheduler")) {
    k->schedulers = golden_json(set, "schedulers.json");
    k->p.sampler = golden_sampler_of(k->schedulers, json_object_get_string_member(c, "scheduler"));
  }
  if (json_object_has_member(call, "decode_chunk_size"))
    k->p.decode_chunk_size = (int)json_object_get_int_member(call, "decode_chunk_size");

  GError *err = NULL;
  g_assert_true(i2v_safetensors_read_f32(k->st, "init_latents", &k->init_latents, &err));
  g_assert_true(i2v_safetensors_read_f32(k->st, "vae_posterior_noise", &k->posterior, &err));
  g_assert_no_error(err);
  k->p.init_latents = k->init_latents.data;
  k->p.vae_posterior_noise = k->posterior.data;
  char *png = g_build_filename(set, "golden", golden_input_png(manifest), NULL);
  g_assert_true(i2v_image_load(png, &k->image, &err));
  g_assert_no_error(err);
  g_free(png);
}

void golden_case_close(GoldenCase *k) {
  i2v_safetensors_close(k->st);
  i2v_host_tensor_free(&k->init_latents);
  i2v_host_tensor_free(&k->posterior);
  i2v_image_clear(&k->image);
  g_free(k->model_dir);
  g_free(k->group);
  if (k->schedulers != NULL) json_node_unref(k->schedulers);
}

I2vSamplerKind golden_sampler_of(JsonNode *schedulers, const char *variant) {
  JsonObject *variants =
      json_object_get_object_member(json_node_get_object(schedulers), "variants");
  JsonObject *v = json_object_get_object_member(variants, variant);
  g_assert_nonnull(v);
  /* DPM-Solver++ 2M as dpmpp.c implements it; anything else is a sampler the engine lacks */
  const struct {
    const char *key, *value;
  } dpmpp[] = {{"_class_name", "DPMSolverMultistepScheduler"},
               {"algorithm_type", "dpmsolver++"},
               {"solver_type", "midpoint"},
               {"final_sigmas_type", "zero"}};
  for (guint i = 0; i < G_N_ELEMENTS(dpmpp); i++)
    g_assert_cmpstr(json_object_get_string_member(v, dpmpp[i].key), ==, dpmpp[i].value);
  g_assert_cmpint(json_object_get_int_member(v, "solver_order"), ==, 2);
  g_assert_true(json_object_get_boolean_member(v, "lower_order_final"));
  g_assert_false(json_object_get_boolean_member(v, "use_karras_sigmas"));
  g_assert_false(json_object_get_boolean_member(v, "use_lu_lambdas"));
  g_assert_false(json_object_get_boolean_member(v, "euler_at_final"));
  return I2V_SAMPLER_DPMPP_2M;
}

double golden_case_atol(const GoldenCase *k, const char *name) {
  if (k->schedulers == NULL) return golden_atol(k->set, k->group, name);
  JsonObject *tol =
      json_object_get_object_member(json_node_get_object(k->schedulers), "tolerances");
  JsonObject *group = json_object_get_object_member(tol, k->group);
  g_assert_nonnull(group);
  return json_object_has_member(group, name)
             ? json_object_get_double_member(json_object_get_object_member(group, name),
                                             "recommended_atol")
             : 0;
}

int golden_for_each_sampler_case(GoldenCaseFn fn, void *user) {
  char **sets = golden_sets_with("schedulers.json");
  int count = 0;
  for (char **set = sets; *set != NULL; set++) {
    JsonNode *manifest = golden_json(*set, "manifest.json");
    JsonNode *schedulers = golden_json(*set, "schedulers.json");
    JsonObject *root = json_node_get_object(schedulers);
    JsonArray *cases = json_object_has_member(root, "pipelines")
                           ? json_object_get_array_member(root, "pipelines")
                           : NULL;
    for (guint i = 0; cases != NULL && i < json_array_get_length(cases); i++, count++)
      fn(*set, manifest, json_array_get_object_element(cases, i), user);
    json_node_unref(schedulers);
    json_node_unref(manifest);
  }
  g_strfreev(sets);
  return count;
}

int golden_for_each_case(gboolean formula, GoldenCaseFn fn, void *user) {
  char **sets = golden_sets_with("manifest.json");
  int count = 0;
  for (char **set = sets; *set != NULL; set++) {
    JsonNode *manifest = golden_json(*set, "manifest.json");
    JsonArray *cases = pipeline_cases(manifest);
    guint64 seed;
    if (cases != NULL && golden_formula_seed(*set, &seed) == formula) {
      for (guint i = 0; i < json_array_get_length(cases); i++, count++)
        fn(*set, manifest, json_array_get_object_element(cases, i), user);
    }
    json_node_unref(manifest);
  }
  g_strfreev(sets);
  return count;
}

void golden_case_check(const GoldenCase *k, const char *name, const I2vTensor *got, double *worst) {
  if (got == NULL) {
    g_test_message("%s: %s was not dumped", k->name, name);
    g_test_fail();
    return;
  }
  I2vTensor ref;
  GError *err = NULL;
  g_assert_true(i2v_safetensors_read_f32(k->st, name, &ref, &err));
  g_assert_cmpint(i2v_tensor_numel(&ref), ==, i2v_tensor_numel(got));
  g_assert_true(i2v_shape_equal(ref.ndim, ref.shape, got->ndim, got->shape));
  double atol = golden_case_atol(k, name);
  double e = golden_max_abs_diff(got->data, ref.data, i2v_tensor_numel(got));
  g_test_message("MAXERR %s %s %.3g atol %.3g%s", k->name, name, e, atol,
                 e <= atol ? "" : "  FAIL");
  if (!(e <= atol)) g_test_fail();
  *worst = MAX(*worst, atol > 0 ? e / atol : (e > 0 ? INFINITY : 0));
  i2v_host_tensor_free(&ref);
}

static void count_params(const char *component, const char *name, int ndim, const int64_t *shape,
                         void *user) {
  (void)component, (void)name;
  gint64 n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  *(gint64 *)user += n;
}

gint64 golden_encoder_params(const I2vModelOptions *mo) {
  GError *err = NULL;
  I2vModelDir *md = i2v_model_dir_open(mo->path, mo->variant, &err);
  g_assert_no_error(err);
  gint64 params = 0;
  i2v_model_dir_record(md, count_params, &params);
  I2vBackend *be = i2v_cpu_backend_new(0); /* a recording load allocates nothing on it */
  I2vClipText *text = i2v_clip_text_load(md, be, &err);
  g_assert_no_error(err);
  I2vClipVision *vision = i2v_clip_vision_load(md, be, &err);
  g_assert_no_error(err);
  i2v_clip_vision_free(vision);
  i2v_clip_text_free(text);
  i2v_backend_free(be);
  i2v_model_dir_free(md);
  return params;
}

const char *const golden_pipeline_required[] = {"encoder_hidden_states",
                                                "image_embeddings",
                                                "image_latents",
                                                "latents_final",
                                                "video",
                                                "frames",
                                                NULL};
