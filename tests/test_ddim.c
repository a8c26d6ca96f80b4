/* DDIM scheduler vs scheduler.safetensors of every fixture set: schedule, timesteps of every
 * recorded step count, every recorded step case (also with prev_sample aliasing sample, as the
 * pipeline calls it), and config errors naming file, key and value. */
#include <string.h>

#include "cpu_backend.h"
#include "stream.h"
#include "ddim.h"
#include <i2v/error.h>
#include "golden.h"

/* Opens set/model and builds its scheduler (fails the test on error). */
static I2vDdim *load_set_scheduler(const char *set) {
  char *dir = g_build_filename(set, "model", NULL);
  GError *err = NULL;
  I2vModelDir *md = i2v_model_dir_open(dir, NULL, &err);
  g_assert_no_error(err);
  I2vDdim *s = i2v_ddim_load(md, &err);
  g_assert_no_error(err);
  i2v_model_dir_free(md);
  g_free(dir);
  return s;
}

static void test_schedule(void) {
  char **sets = golden_sets_with("scheduler.safetensors");
  g_assert_nonnull(sets[0]);
  for (char **set = sets; *set != NULL; set++) {
    I2vDdim *s = load_set_scheduler(*set);
    I2vSafetensors *st = golden_open(*set, "scheduler.safetensors");
    int n = i2v_ddim_num_train_timesteps(s);
    g_assert_true(golden_check(st, "betas", i2v_ddim_betas(s), n,
                               golden_atol(*set, "scheduler", "betas"), *set));
    g_assert_true(golden_check(st, "alphas_cumprod", i2v_ddim_alphas_cumprod(s), n,
                               golden_atol(*set, "scheduler", "alphas_cumprod"), *set));
    float final = i2v_ddim_final_alpha_cumprod(s);
    g_assert_true(golden_check(st, "final_alpha_cumprod", &final, 1, 0, *set));
    i2v_safetensors_close(st);
    i2v_ddim_free(s);
  }
  g_strfreev(sets);
}

/* Every "timesteps.n{N}" tensor of the file, exactly. */
static void test_timesteps(void) {
  char **sets = golden_sets_with("scheduler.safetensors");
  for (char **set = sets; *set != NULL; set++) {
    I2vDdim *s = load_set_scheduler(*set);
    I2vSafetensors *st = golden_open(*set, "scheduler.safetensors");
    int checked = 0;
    for (guint i = 0; i < i2v_safetensors_count(st); i++) {
      const I2vSafetensorsEntry *e = i2v_safetensors_entry(st, i);
      if (!g_str_has_prefix(e->name, "timesteps.n")) continue;
      g_assert_cmpint(e->dtype, ==, I2V_DTYPE_I64);
      int n = (int)g_ascii_strtoll(e->name + strlen("timesteps.n"), NULL, 10);
      g_assert_cmpint(e->shape[0], ==, n);
      int64_t *got = g_new(int64_t, n);
      GError *err = NULL;
      g_assert_true(i2v_ddim_timesteps(s, n, got, &err));
      g_assert_no_error(err);
      g_assert_cmpmem(got, n * sizeof(int64_t), e->data, e->nbytes);
      g_free(got);
      checked++;
    }
    g_test_message("%s: %d timestep lists", *set, checked);
    g_assert_cmpint(checked, >, 0);
    i2v_safetensors_close(st);
    i2v_ddim_free(s);
  }
  g_strfreev(sets);
}

/* Downloads t and compares it with golden name (atol from the "scheduler" group). */
static gboolean check_tensor(I2vStream *stream, const char *set, const I2vSafetensors *st,
                             const I2vTensor *t, const char *name, const char *label) {
  int64_t n = i2v_tensor_numel(t);
  float *got = g_new(float, n);
  GError *err = NULL;
  g_assert_true(i2v_tensor_download_f32(stream, t, got, &err));
  g_assert_no_error(err);
  gboolean ok = golden_check(st, name, got, n, golden_atol(set, "scheduler", name), label);
  g_free(got);
  return ok;
}

/* One manifest step case: its scalars and the step on the CPU backend, out of place and with
 * prev_sample aliasing sample. */
static void check_step_case(const char *set, I2vDdim *s, I2vStream *stream,
                            const I2vSafetensors *st, JsonObject *c) {
  const char *key = json_object_get_string_member(c, "key");
  int n = (int)json_object_get_int_member(c, "num_inference_steps");
  int k = (int)json_object_get_int_member(c, "step_index");
  int64_t t = json_object_get_int_member(c, "timestep");
  GError *err = NULL;
  int64_t *ts = g_new(int64_t, n);
  g_assert_true(i2v_ddim_timesteps(s, n, ts, &err));
  g_assert_cmpint(ts[k], ==, t);
  g_free(ts);

  I2vDdimStepInfo info;
  g_assert_true(i2v_ddim_step_info(s, n, t, &info, &err));
  g_assert_no_error(err);
  g_assert_cmpint(info.prev_timestep, ==, json_object_get_int_member(c, "prev_timestep"));
  double atol = golden_atol(set, "scheduler", "alphas_cumprod");
  g_assert_cmpfloat_with_epsilon(info.alpha_prod_t,
                                 json_object_get_double_member(c, "alpha_prod_t"), atol);
  g_assert_cmpfloat_with_epsilon(info.alpha_prod_t_prev,
                                 json_object_get_double_member(c, "alpha_prod_t_prev"), atol);

  char *mo_name = g_strdup_printf("%s.model_output", key);
  char *x_name = g_strdup_printf("%s.sample", key);
  char *prev_name = g_strdup_printf("%s.prev_sample", key);
  char *x0_name = g_strdup_printf("%s.pred_original_sample", key);
  size_t mark = i2v_scratch_mark(stream);
  I2vTensor mo = golden_upload(stream, st, mo_name), x = golden_upload(stream, st, x_name);
  I2vTensor x0 = i2v_scratch_tensor(stream, x.ndim, x.shape);
  I2vTensor prev = i2v_scratch_tensor(stream, x.ndim, x.shape);

  i2v_ddim_step(s, stream, n, t, &mo, &x, &x0, &prev);
  g_assert_true(i2v_stream_check(stream, &err));
  g_assert_no_error(err);
  g_assert_true(check_tensor(stream, set, st, &prev, prev_name, key));
  g_assert_true(check_tensor(stream, set, st, &x0, x0_name, key));

  i2v_ddim_step(s, stream, n, t, &mo, &x, &x0, &x); /* in place, as the pipeline steps */
  g_assert_true(i2v_stream_check(stream, &err));
  g_assert_true(check_tensor(stream, set, st, &x, prev_name, "in place"));

  i2v_scratch_release(stream, mark);
  g_free(mo_name);
  g_free(x_name);
  g_free(prev_name);
  g_free(x0_name);
}

static void test_steps(void) {
  char **sets = golden_sets_with("scheduler.safetensors");
  for (char **set = sets; *set != NULL; set++) {
    I2vDdim *s = load_set_scheduler(*set);
    I2vSafetensors *st = golden_open(*set, "scheduler.safetensors");
    JsonNode *manifest = golden_json(*set, "manifest.json");
    JsonObject *sched = json_object_get_object_member(
        json_object_get_object_member(json_node_get_object(manifest), "files"), "scheduler");
    JsonArray *cases = json_object_get_array_member(sched, "step_cases");
    g_assert_cmpint(json_array_get_length(cases), >, 0);
    I2vBackend *be = i2v_cpu_backend_new(0);
    I2vStream *stream = i2v_stream_new(be, NULL);
    for (guint i = 0; i < json_array_get_length(cases); i++)
      check_step_case(*set, s, stream, st, json_array_get_object_element(cases, i));
    i2v_stream_free(stream);
    i2v_backend_free(be);
    json_node_unref(manifest);
    i2v_safetensors_close(st);
    i2v_ddim_free(s);
  }
  g_strfreev(sets);
}

/* The set's scheduler config with key replaced by a string value (new object). */
static JsonObject *config_with(const char *set, const char *key, const char *value) {
  char *path = g_build_filename(set, "model", "scheduler", "scheduler_config.json", NULL);
  JsonParser *p = json_parser_new();
  GError *err = NULL;
  g_assert_true(json_parser_load_from_file(p, path, &err));
  JsonObject *cfg = json_object_ref(json_node_get_object(json_parser_get_root(p)));
  g_object_unref(p);
  g_free(path);
  if (key != NULL) json_object_set_string_member(cfg, key, value);
  return cfg;
}

/* An unsupported value of key fails with I2V_ERROR_CONFIG naming the file, key and value. */
static void expect_config_error(const char *set, const char *key, const char *value) {
  JsonObject *cfg = config_with(set, key, value);
  GError *err = NULL;
  I2vDdim *s = i2v_ddim_new(&(I2vConfig){cfg, "sched.json"}, &err);
  g_assert_null(s);
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"sched.json", key, value, NULL});
  json_object_unref(cfg);
}

static void test_config_errors(void) {
  char **sets = golden_sets_with("scheduler.safetensors");
  const char *set = sets[0];
  g_assert_nonnull(set);
  expect_config_error(set, "beta_schedule", "sigmoid_wiggle");
  expect_config_error(set, "prediction_type", "flow_matching");
  expect_config_error(set, "timestep_spacing", "sideways");

  JsonObject *cfg = config_with(set, NULL, NULL);
  json_object_set_boolean_member(cfg, "clip_sample", TRUE);
  GError *err = NULL;
  g_assert_null(i2v_ddim_new(&(I2vConfig){cfg, "sched.json"}, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_CONFIG);
  g_assert_nonnull(strstr(err->message, "clip_sample"));
  g_clear_error(&err);
  json_object_unref(cfg);

  /* Step counts outside [1, num_train_timesteps] are parameter errors naming the value. */
  I2vDdim *s = load_set_scheduler(set);
  int64_t ts[1];
  g_assert_false(i2v_ddim_timesteps(s, 0, ts, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_INVALID);
  g_assert_nonnull(strstr(err->message, "steps 0"));
  g_clear_error(&err);
  i2v_ddim_free(s);
  g_strfreev(sets);
}

/* The other spacings against the lists of Lin et al. 2023 (Table 2, T = 1000, 10 steps). */
static void test_other_spacings(void) {
  char **sets = golden_sets_with("scheduler.safetensors");
  static const struct {
    const char *spacing;
    int64_t t[10];
  } cases[] = {{"trailing", {999, 899, 799, 699, 599, 499, 399, 299, 199, 99}},
               {"linspace", {999, 888, 777, 666, 555, 444, 333, 222, 111, 0}}};
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    JsonObject *cfg = config_with(sets[0], "timestep_spacing", cases[i].spacing);
    json_object_set_int_member(cfg, "num_train_timesteps", 1000);
    GError *err = NULL;
    I2vDdim *s = i2v_ddim_new(&(I2vConfig){cfg, "sched.json"}, &err);
    g_assert_no_error(err);
    int64_t got[10];
    g_assert_true(i2v_ddim_timesteps(s, 10, got, &err));
    g_assert_cmpmem(got, sizeof(got), cases[i].t, sizeof(cases[i].t));
    i2v_ddim_free(s);
    json_object_unref(cfg);
  }
  g_strfreev(sets);
}

/* Every step count the scheduler accepts gives timesteps inside [0, T) — "leading" with an
 * offset would otherwise start at T for n = T — and the largest accepted count is the limit. */
static void test_steps_fit_schedule(void) {
  char **sets = golden_sets_with("scheduler.safetensors");
  static const char *const spacings[] = {"leading", "trailing", "linspace"};
  const int T = 1000;
  int64_t *ts = g_new(int64_t, T);
  for (guint i = 0; i < G_N_ELEMENTS(spacings); i++) {
    for (int offset = 0; offset <= 1; offset++) {
      JsonObject *cfg = config_with(sets[0], "timestep_spacing", spacings[i]);
      json_object_set_int_member(cfg, "num_train_timesteps", T);
      json_object_set_int_member(cfg, "steps_offset", offset);
      GError *err = NULL;
      I2vDdim *s = i2v_ddim_new(&(I2vConfig){cfg, "sched.json"}, &err);
      g_assert_no_error(err);
      int max = i2v_ddim_max_steps(s), accepted = 0;
      for (int n = 1; n <= T; n++) {
        if (!i2v_ddim_timesteps(s, n, ts, &err)) {
          g_assert_error(err, I2V_ERROR, I2V_ERROR_INVALID);
          g_clear_error(&err);
          continue;
        }
        accepted = n;
        for (int k = 0; k < n; k++) g_assert_true(ts[k] >= 0 && ts[k] < T);
      }
      g_test_message("%s offset %d: max steps %d", spacings[i], offset, max);
      g_assert_cmpint(accepted, ==, max);
      g_assert_cmpint(max, ==, offset == 1 && i == 0 ? T - 1 : T);
      i2v_ddim_free(s);
      json_object_unref(cfg);
    }
  }
  g_free(ts);
  g_strfreev(sets);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/ddim/schedule", test_schedule);
  g_test_add_func("/ddim/timesteps", test_timesteps);
  g_test_add_func("/ddim/steps", test_steps);
  g_test_add_func("/ddim/config-errors", test_config_errors);
  g_test_add_func("/ddim/other-spacings", test_other_spacings);
  g_test_add_func("/ddim/steps-fit-schedule", test_steps_fit_schedule);
  return g_test_run();
}
