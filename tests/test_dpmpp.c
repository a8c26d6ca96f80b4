/* DPM-Solver++ 2M vs schedulers.json and scheduler_dpmpp.safetensors of every fixture set: the
 * variant's config against the model's scheduler config, the timesteps and sigmas of every
 * recorded step count, every recorded step sequence run through the sampler interface (the solver
 * keeps the previous x̂0 between steps, so a sequence is the unit), step-count errors and the
 * other spacings. Pipeline cases run in test_pipeline.c (/pipeline/sampler-goldens). */
#include <math.h>
#include <string.h>

#include "cpu_backend.h"
#include "dpmpp.h"
#include "golden_case.h"
#include "sampler.h"
#include "stream.h"
#include <i2v/error.h>

/* One fixture set's DPM-Solver++ material. */
typedef struct {
  const char *set;
  JsonNode *json; /* schedulers.json */
  JsonObject *root;
  I2vSafetensors *st; /* scheduler_dpmpp.safetensors */
  I2vDdim *ddim;
  I2vDpmpp *dpmpp;
} Fixture;

static void fixture_open(Fixture *f, const char *set) {
  memset(f, 0, sizeof(*f));
  f->set = set;
  f->json = golden_json(set, "schedulers.json");
  f->root = json_node_get_object(f->json);
  f->st = golden_open(set, "scheduler_dpmpp.safetensors");
  GError *err = NULL;
  I2vModelDir *md = golden_open_model(set, NULL);
  f->ddim = i2v_ddim_load(md, &err);
  g_assert_no_error(err);
  i2v_model_dir_free(md);
  f->dpmpp = i2v_dpmpp_new(f->ddim);
}

static void fixture_close(Fixture *f) {
  i2v_dpmpp_free(f->dpmpp);
  i2v_ddim_free(f->ddim);
  i2v_safetensors_close(f->st);
  json_node_unref(f->json);
}

/* Calls fn on every set with schedulers.json (at least one). */
static void for_each_fixture(void (*fn)(Fixture *f)) {
  char **sets = golden_sets_with("schedulers.json");
  g_assert_nonnull(sets[0]);
  for (char **set = sets; *set != NULL; set++) {
    Fixture f;
    fixture_open(&f, *set);
    fn(&f);
    fixture_close(&f);
  }
  g_strfreev(sets);
}

static JsonObject *member(JsonObject *o, const char *key) {
  g_assert_true(json_object_has_member(o, key));
  return json_object_get_object_member(o, key);
}

/* The variants are solvers the engine has, on the schedule of the model's config: the keys the
 * schedule reads agree with what the DDIM loader read from model/scheduler. */
static void check_config(Fixture *f) {
  JsonObject *variants = member(f->root, "variants");
  GList *names = json_object_get_members(variants);
  for (GList *l = names; l != NULL; l = l->next) {
    JsonObject *v = member(variants, l->data);
    g_assert_cmpint(golden_sampler_of(f->json, l->data), ==, I2V_SAMPLER_DPMPP_2M);
    const char *prediction = json_object_get_string_member(v, "prediction_type");
    const char *spacing = json_object_get_string_member(v, "timestep_spacing");
    g_assert_cmpint(i2v_ddim_prediction(f->ddim), ==,
                    strcmp(prediction, "v_prediction") == 0 ? I2V_PREDICTION_V
                                                            : I2V_PREDICTION_EPSILON);
    static const char *const spacings[] = {"leading", "trailing", "linspace"};
    g_assert_cmpstr(spacing, ==, spacings[i2v_ddim_spacing(f->ddim)]);
    g_assert_cmpint(json_object_get_int_member(v, "steps_offset"), ==,
                    i2v_ddim_steps_offset(f->ddim));
    g_assert_cmpint(json_object_get_int_member(v, "num_train_timesteps"), ==,
                    i2v_ddim_num_train_timesteps(f->ddim));
  }
  g_list_free(names);
}

static void test_config(void) {
  for_each_fixture(check_config);
}

/* Every schedules.<variant>.<N>: timesteps exactly (json and tensor), sigmas within the
 * scheduler tolerance relative to their size. */
static void check_schedules(Fixture *f) {
  JsonObject *schedules = member(member(f->root, "schedules"), "dpmpp_2m");
  double atol = golden_atol(f->set, "scheduler", "alphas_cumprod"), worst = 0, worst_ratio = 0;
  GList *counts = json_object_get_members(schedules);
  int checked = 0;
  for (GList *l = counts; l != NULL; l = l->next, checked++) {
    int n = (int)g_ascii_strtoll(l->data, NULL, 10);
    JsonArray *want_t = json_object_get_array_member(member(schedules, l->data), "timesteps");
    g_assert_cmpint(json_array_get_length(want_t), ==, n);
    int64_t *got_t = g_new(int64_t, n);
    float *sigmas = g_new(float, n + 1);
    GError *err = NULL;
    g_assert_true(i2v_dpmpp_timesteps(f->dpmpp, n, got_t, &err));
    g_assert_true(i2v_dpmpp_sigmas(f->dpmpp, n, sigmas, &err));
    g_assert_no_error(err);
    for (int k = 0; k < n; k++)
      g_assert_cmpint(got_t[k], ==, json_array_get_int_element(want_t, k));
    char *t_name = g_strdup_printf("dpmpp_2m.timesteps.n%d", n);
    char *s_name = g_strdup_printf("dpmpp_2m.sigmas.n%d", n);
    const I2vSafetensorsEntry *e = i2v_safetensors_find(f->st, t_name);
    g_assert_nonnull(e);
    g_assert_cmpmem(got_t, n * sizeof(int64_t), e->data, e->nbytes);
    I2vTensor ref;
    g_assert_true(i2v_safetensors_read_f32(f->st, s_name, &ref, &err));
    g_assert_cmpint(i2v_tensor_numel(&ref), ==, n + 1);
    for (int k = 0; k <= n; k++) {
      double r = ((float *)ref.data)[k], e_abs = fabs(sigmas[k] - r);
      double allowed = atol * MAX(1.0, fabs(r));
      worst = MAX(worst, e_abs);
      worst_ratio = MAX(worst_ratio, e_abs / allowed);
      g_assert_cmpfloat(e_abs, <=, allowed);
    }
    g_assert_cmpfloat(sigmas[n], ==, 0);
    i2v_host_tensor_free(&ref);
    g_free(t_name);
    g_free(s_name);
    g_free(got_t);
    g_free(sigmas);
  }
  g_list_free(counts);
  g_assert_cmpint(checked, >, 0);
  g_test_message("MAXERR %s schedules: %d step counts, sigma max abs err %.3g, err/atol %.3g",
                 f->set, checked, worst, worst_ratio);
}

static void test_schedules(void) {
  for_each_fixture(check_schedules);
}

/* A whole sequence through the sampler interface: sample0, then each step fed the recorded
 * model output and compared with the recorded prev_sample (atol per tensor from the json). */
static void check_sequence(Fixture *f, I2vStream *stream, JsonObject *seq, double *worst_ratio) {
  const char *key = json_object_get_string_member(seq, "key");
  int n = (int)json_object_get_int_member(seq, "num_inference_steps");
  I2vSamplerKind kind = golden_sampler_of(f->json, json_object_get_string_member(seq, "scheduler"));
  JsonObject *tol = member(member(f->root, "tolerances"), "scheduler_dpmpp");
  I2vSampler *sampler = i2v_sampler_new(kind, f->ddim);
  size_t mark = i2v_scratch_mark(stream);
  char name[128];
  g_snprintf(name, sizeof(name), "%s.sample0", key);
  I2vTensor x = golden_upload(stream, f->st, name);
  GError *err = NULL;
  I2vSamplerRun *run = i2v_sampler_start(sampler, stream, n, 0, x.ndim, x.shape, &err);
  g_assert_no_error(err);
  double worst = 0;
  int64_t numel = i2v_tensor_numel(&x);
  float *got = g_new(float, numel);
  for (int i = 0; i < n; i++) {
    size_t step_mark = i2v_scratch_mark(stream);
    g_snprintf(name, sizeof(name), "%s.model_output%d", key, i);
    I2vTensor mo = golden_upload(stream, f->st, name);
    i2v_sampler_step(run, &mo, &x);
    g_assert_true(i2v_stream_check(stream, &err));
    g_assert_true(i2v_tensor_download_f32(stream, &x, got, &err));
    g_assert_no_error(err);
    g_snprintf(name, sizeof(name), "%s.prev_sample%d", key, i);
    double atol = json_object_get_double_member(member(tol, name), "recommended_atol");
    I2vTensor ref;
    g_assert_true(i2v_safetensors_read_f32(f->st, name, &ref, &err));
    double e = golden_max_abs_diff(got, ref.data, numel);
    worst = MAX(worst, e);
    *worst_ratio = MAX(*worst_ratio, e / atol);
    if (!(e <= atol)) {
      g_test_message("%s: max abs err %.3g over atol %.3g", name, e, atol);
      g_test_fail();
    }
    i2v_host_tensor_free(&ref);
    i2v_scratch_release(stream, step_mark);
  }
  /* a step past the run's end is an error on the stream, not a read past the schedule */
  g_assert_null(i2v_sampler_step(run, &x, &x));
  g_assert_false(i2v_stream_check(stream, &err));
  golden_assert_error(&err, I2V_ERROR_INVALID, (const char *[]){"of a", "-step run", NULL});
  g_test_message("MAXERR %s %s: %d steps, max abs err %.3g", f->set, key, n, worst);
  g_free(got);
  i2v_sampler_run_free(run);
  i2v_scratch_release(stream, mark);
  i2v_sampler_free(sampler);
}

static void check_sequences(Fixture *f) {
  JsonArray *seqs = json_object_get_array_member(f->root, "sequences");
  g_assert_cmpint(json_array_get_length(seqs), >, 0);
  I2vBackend *be = i2v_cpu_backend_new(0);
  I2vStream *stream = i2v_stream_new(be, NULL);
  double worst_ratio = 0;
  for (guint i = 0; i < json_array_get_length(seqs); i++)
    check_sequence(f, stream, json_array_get_object_element(seqs, i), &worst_ratio);
  g_test_message("WORST %s sequences err/atol %.3g", f->set, worst_ratio);
  i2v_stream_free(stream);
  i2v_backend_free(be);
}

static void test_sequences(void) {
  for_each_fixture(check_sequences);
}

/* Step counts whose timesteps would leave the schedule are errors naming the count and range;
 * the largest allowed one still stays inside. */
static void check_step_range(Fixture *f) {
  int max = i2v_dpmpp_max_steps(f->dpmpp), T = i2v_ddim_num_train_timesteps(f->ddim);
  g_assert_cmpint(max, >=, 1);
  g_assert_cmpint(max, <=, T);
  int64_t *t = g_new(int64_t, T + 1);
  GError *err = NULL;
  g_assert_true(i2v_dpmpp_timesteps(f->dpmpp, max, t, &err));
  for (int k = 0; k < max; k++) {
    g_assert_cmpint(t[k], >=, 0);
    g_assert_cmpint(t[k], <, T);
    if (k > 0) g_assert_cmpint(t[k], <, t[k - 1]);
  }
  int bad[] = {0, max + 1};
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_assert_false(i2v_dpmpp_timesteps(f->dpmpp, bad[i], t, &err));
    char *needle = g_strdup_printf("steps %d", bad[i]);
    golden_assert_error(&err, I2V_ERROR_INVALID, (const char *[]){needle, "dpmpp-2m", NULL});
    g_free(needle);
  }
  g_free(t);
}

static void test_step_range(void) {
  for_each_fixture(check_step_range);
}

/* The other spacings on the first set's config, T = 1000, 10 steps: "trailing" is
 * round(arange(1000, 0, −100)) − 1; "linspace" is round(linspace(0, 999, 11)) without its 0,
 * descending from 999 to round(99.9) = 100. */
static void test_other_spacings(void) {
  char **sets = golden_sets_with("schedulers.json");
  char *path = g_build_filename(sets[0], "model", "scheduler", "scheduler_config.json", NULL);
  JsonParser *p = json_parser_new();
  GError *err = NULL;
  g_assert_true(json_parser_load_from_file(p, path, &err));
  JsonObject *cfg = json_object_ref(json_node_get_object(json_parser_get_root(p)));
  json_object_set_int_member(cfg, "num_train_timesteps", 1000);
  static const char *const spacings[] = {"trailing", "linspace"};
  int64_t got[10];
  for (guint i = 0; i < G_N_ELEMENTS(spacings); i++) {
    json_object_set_string_member(cfg, "timestep_spacing", spacings[i]);
    I2vDdim *ddim = i2v_ddim_new(&(I2vConfig){cfg, "sched.json"}, &err);
    g_assert_no_error(err);
    I2vDpmpp *s = i2v_dpmpp_new(ddim);
    g_assert_true(i2v_dpmpp_timesteps(s, 10, got, &err));
    for (int k = 0; k < 10; k++) {
      if (i == 0) g_assert_cmpint(got[k], ==, 999 - 100 * k);
      if (k > 0) g_assert_cmpint(got[k], <, got[k - 1]);
    }
    if (i == 1) g_assert_cmpint(got[0] * 1000 + got[9], ==, 999 * 1000 + 100);
    i2v_dpmpp_free(s);
    i2v_ddim_free(ddim);
  }
  json_object_unref(cfg);
  g_object_unref(p);
  g_free(path);
  g_strfreev(sets);
}

/* Sampler names: both parse (any case, "" and NULL are ddim); anything else names the value
 * and the accepted names. */
static void test_names(void) {
  for (int k = 0; k < I2V_SAMPLER_COUNT; k++) {
    I2vSamplerKind got;
    char *upper = g_ascii_strup(i2v_sampler_name(k), -1);
    g_assert_true(i2v_sampler_parse(upper, &got, NULL));
    g_assert_cmpint(got, ==, k);
    g_free(upper);
  }
  I2vSamplerKind got = I2V_SAMPLER_DPMPP_2M;
  g_assert_true(i2v_sampler_parse(NULL, &got, NULL));
  g_assert_cmpint(got, ==, I2V_SAMPLER_DDIM);
  GError *err = NULL;
  g_assert_false(i2v_sampler_parse("euler-a", &got, &err));
  golden_assert_error(&err, I2V_ERROR_INVALID,
                      (const char *[]){"euler-a", "ddim", "dpmpp-2m", NULL});
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/dpmpp/config", test_config);
  g_test_add_func("/dpmpp/schedules", test_schedules);
  g_test_add_func("/dpmpp/sequences", test_sequences);
  g_test_add_func("/dpmpp/step-range", test_step_range);
  g_test_add_func("/dpmpp/other-spacings", test_other_spacings);
  g_test_add_func("/dpmpp/names", test_names);
  return g_test_run();
}
