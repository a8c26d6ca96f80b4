/* The whole pipeline (i2v.h) against every pipeline_*.safetensors case of every fixture set
 * (manifest.json → files.pipeline[]): the recorded noise in, every dumped intermediate and the
 * frames out. Plus cancellation, parameter and device errors, prompt truncation, the model
 * cache, seeded noise and the CLI. Formula-weight (real-size) sets run under /pipeline/realcfg
 * only (the slow suite). */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <sys/wait.h>

#include "cuda_backend.h"
#include "ddim.h"
#include "dpmpp.h"
#include "golden_case.h"
#include <i2v/i2v.h>
#include "noise.h"

/* What the callbacks saw during one generation. */
typedef struct {
  GHashTable *dumps; /* name → host I2vTensor* copy */
  int progress_calls, frame_calls;
  int last_step, last_frame;
  gboolean in_order;
  guint8 *rgb; /* frames [F, H, W, 3] as handed to the frame callback */
  GCancellable *cancel;
  int cancel_at_step; /* cancel from the progress callback after this step (0: never) */
  int stop_at_frame;  /* return FALSE from the frame callback at this frame (0: never) */
  GHashTable *stages; /* stage name → count */
  double step_flops;
} Capture;

static void free_tensor(gpointer t) {
  i2v_host_tensor_free(t);
  g_free(t);
}

static void capture_init(Capture *c) {
  memset(c, 0, sizeof(*c));
  c->dumps = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, free_tensor);
  c->in_order = TRUE;
  c->stages = g_hash_table_new(g_str_hash, g_str_equal);
}

static void capture_clear(Capture *c) {
  g_hash_table_unref(c->dumps);
  g_hash_table_unref(c->stages);
  g_free(c->rgb);
}

static void on_dump(const char *name, const I2vTensorView *t, void *user) {
  Capture *c = user;
  I2vTensor *copy = g_new(I2vTensor, 1);
  *copy = i2v_host_tensor(I2V_DTYPE_F32, t->ndim, t->shape);
  memcpy(copy->data, t->data, i2v_tensor_nbytes(copy));
  g_hash_table_replace(c->dumps, g_strdup(name), copy);
}

static void on_progress(const I2vProgress *p, void *user) {
  Capture *c = user;
  c->progress_calls++;
  /* steps come first (frame 0), then frames with step == steps, each counting up by one */
  if (p->frame == 0)
    c->in_order = c->in_order && p->step == c->last_step + 1 && c->last_frame == 0;
  else
    c->in_order = c->in_order && p->step == p->steps && p->frame == c->last_frame + 1;
  c->in_order = c->in_order && p->elapsed_us >= 0 && p->eta_us >= 0;
  c->last_step = p->step;
  c->last_frame = p->frame;
  if (c->cancel_at_step > 0 && p->step == c->cancel_at_step && p->frame == 0)
    g_cancellable_cancel(c->cancel);
}

static gboolean on_frame(const I2vFrame *f, void *user) {
  Capture *c = user;
  const I2vImage *img = f->image;
  size_t bytes = (size_t)img->width * img->height * 3;
  if (c->rgb == NULL) c->rgb = g_malloc0(bytes * f->count);
  c->in_order = c->in_order && f->index == c->frame_calls;
  memcpy(c->rgb + bytes * f->index, img->rgb, bytes);
  c->frame_calls++;
  return c->stop_at_frame == 0 || c->frame_calls < c->stop_at_frame;
}

static void on_stage(const I2vStage *s, void *user) {
  Capture *c = user;
  int n = GPOINTER_TO_INT(g_hash_table_lookup(c->stages, s->name));
  g_hash_table_insert(c->stages, (gpointer)s->name, GINT_TO_POINTER(n + 1));
  g_assert_cmpint(s->us, >=, 0);
  if (strcmp(s->name, "unet_step") == 0) c->step_flops += s->flops;
}

static int stage_count(const Capture *c, const char *name) {
  return GPOINTER_TO_INT(g_hash_table_lookup(c->stages, name));
}

/* The capturing callbacks (dumps only when with_dump). */
static I2vCallbacks capture_callbacks(Capture *c, gboolean with_dump) {
  return (I2vCallbacks){.progress = on_progress,
                        .frame = on_frame,
                        .dump = with_dump ? on_dump : NULL,
                        .stage = on_stage,
                        .user = c};
}

/* Runs a generation on a session of its own with the capturing callbacks. */
static gboolean generate(I2vModel *m, const I2vImage *image, const I2vParams *p, Capture *c,
                         gboolean with_dump, GError **error) {
  I2vCallbacks cb = capture_callbacks(c, with_dump);
  return i2v_model_generate(m, image, p, &cb, c->cancel, error);
}

static I2vModel *load_model(const I2vModelOptions *mo) {
  GError *err = NULL;
  I2vModel *m = i2v_model_load(mo, &err);
  g_assert_no_error(err);
  return m;
}

/* Compares dumped tensor name with the golden one (golden_case_check). */
static void check_dump(const GoldenCase *k, const Capture *c, const char *name, double *worst) {
  golden_case_check(k, name, g_hash_table_lookup(c->dumps, name), worst);
}

/* The RGB8 frames handed to the callback are round-half-even(frames·255) of the golden frames,
 * up to the frames tolerance. */
static void check_rgb(const GoldenCase *k, const Capture *c) {
  I2vTensor ref;
  GError *err = NULL;
  g_assert_true(i2v_safetensors_read_f32(k->st, "frames", &ref, &err));
  const float *r = ref.data;
  double worst = 0, slack = 0.5 + 255 * golden_case_atol(k, "frames") + 1e-3;
  for (int64_t i = 0; i < i2v_tensor_numel(&ref); i++)
    worst = MAX(worst, fabs(c->rgb[i] - (double)r[i] * 255));
  g_test_message("%s: rgb8 frames max |u8 - 255·frames| %.3g (allowed %.3g)", k->name, worst,
                 slack);
  g_assert_cmpfloat(worst, <=, slack);
  i2v_host_tensor_free(&ref);
}

/* Runs one golden case: every dumped intermediate within tolerance, the RGB8 frames, callback
 * order and counts. */
static void run_case(const char *set, JsonNode *manifest, JsonObject *c, void *user) {
  (void)user;
  GoldenCase k;
  golden_case_open(&k, set, manifest, c);
  I2vModel *m = load_model(&k.mo);
  Capture cap;
  capture_init(&cap);
  GError *err = NULL;
  gint64 t0 = g_get_monotonic_time();
  g_assert_true(generate(m, &k.image, &k.p, &cap, TRUE, &err));
  g_assert_no_error(err);
  g_test_message("TIME %s %.2f s", k.name, (g_get_monotonic_time() - t0) / 1e6);
  g_assert_true(cap.in_order);
  g_assert_cmpint(cap.frame_calls, ==, k.p.frames);
  g_assert_cmpint(cap.progress_calls, ==, k.p.steps + k.p.frames);

  /* The tensors the pipeline must reproduce, then every other golden float tensor it dumps. */
  double worst = 0;
  for (const char *const *r = golden_pipeline_required; *r != NULL; r++)
    check_dump(&k, &cap, *r, &worst);
  for (int i = 0; i < k.p.steps; i++) {
    char name[64];
    g_snprintf(name, sizeof(name), "step%d.latents", i);
    check_dump(&k, &cap, name, &worst);
  }
  for (guint i = 0; i < i2v_safetensors_count(k.st); i++) {
    const I2vSafetensorsEntry *e = i2v_safetensors_entry(k.st, i);
    gboolean is_required = g_str_has_suffix(e->name, ".latents");
    for (const char *const *r = golden_pipeline_required; *r != NULL; r++)
      is_required = is_required || strcmp(e->name, *r) == 0;
    if (!is_required && e->dtype == I2V_DTYPE_F32 && g_hash_table_contains(cap.dumps, e->name))
      check_dump(&k, &cap, e->name, &worst);
  }
  g_test_message("WORST %s error/atol %.3g", k.name, worst);
  check_rgb(&k, &cap);
  capture_clear(&cap);
  i2v_model_unref(m);
  golden_case_close(&k);
}

static void test_goldens(void) {
  g_assert_cmpint(golden_for_each_case(FALSE, run_case, NULL), >, 0);
}

/* The pipeline cases of the other samplers (schedulers.json): DPM-Solver++ 2M. */
static void test_sampler_goldens(void) {
  g_assert_cmpint(golden_for_each_sampler_case(run_case, NULL), >, 0);
}

/* A real-size case, plus the width check of i2v_params_validate (a no-op for the tiny sets'
 * VAE factor of 1). The extra reference keeps the model in the cache between both. */
static void run_realcfg_case(const char *set, JsonNode *manifest, JsonObject *c, void *user) {
  GoldenCase k;
  golden_case_open(&k, set, manifest, c);
  I2vModel *m = load_model(&k.mo);
  run_case(set, manifest, c, user);
  int s = i2v_model_size_multiple(m);
  g_assert_cmpint(s, >, 1);
  k.p.width += s / 2;
  GError *err = NULL;
  g_assert_false(i2v_params_validate(m, &k.p, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_INVALID);
  char *value = g_strdup_printf("width %d", k.p.width);
  g_assert_nonnull(strstr(err->message, value));
  g_test_message("%s", err->message);
  g_free(value);
  g_error_free(err);
  i2v_model_unref(m);
  golden_case_close(&k);
}

static void test_realcfg(void) {
  g_assert_cmpint(golden_for_each_case(TRUE, run_realcfg_case, NULL), >, 0);
}

/* The first file-weight pipeline case with classifier-free guidance (cancellation, parameter
 * and CLI tests start from it). */
static JsonObject *first_case;
static char *first_set;
static JsonNode *first_manifest;

static void pick_first(const char *set, JsonNode *manifest, JsonObject *c, void *user) {
  (void)user;
  if (first_case != NULL || json_object_get_double_member(json_object_get_object_member(c, "call"),
                                                          "guidance_scale") <= 1)
    return;
  first_set = g_strdup(set);
  first_manifest = json_node_ref(manifest);
  first_case = c;
}

static void open_first(GoldenCase *k) {
  if (first_case == NULL) golden_for_each_case(FALSE, pick_first, NULL);
  g_assert_nonnull(first_case);
  golden_case_open(k, first_set, first_manifest, first_case);
}

static void test_cancel(void) {
  GoldenCase k;
  open_first(&k);
  g_assert_cmpint(k.p.steps, >=, 2);
  I2vModel *m = load_model(&k.mo);
  GError *err = NULL;

  Capture cap;
  capture_init(&cap);
  cap.cancel = g_cancellable_new();
  cap.cancel_at_step = 1;
  g_assert_false(generate(m, &k.image, &k.p, &cap, TRUE, &err));
  g_assert_error(err, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error(&err);
  g_assert_cmpint(cap.progress_calls, ==, 1);
  g_assert_cmpint(cap.frame_calls, ==, 0);
  g_object_unref(cap.cancel);
  capture_clear(&cap);

  /* Returning FALSE from the frame callback stops the decode. */
  capture_init(&cap);
  cap.stop_at_frame = 1;
  g_assert_false(generate(m, &k.image, &k.p, &cap, FALSE, &err));
  g_assert_error(err, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error(&err);
  g_assert_cmpint(cap.frame_calls, ==, 1);
  capture_clear(&cap);

  /* The model is reusable after both: a full run gives the golden final latents. */
  capture_init(&cap);
  g_assert_true(generate(m, &k.image, &k.p, &cap, TRUE, &err));
  g_assert_no_error(err);
  double worst = 0;
  check_dump(&k, &cap, "latents_final", &worst);
  capture_clear(&cap);
  i2v_model_unref(m);
  golden_case_close(&k);
}

/* p with one field changed must fail validation naming field and value. */
static void expect_invalid(I2vModel *m, const I2vParams *p, const char *needle) {
  GError *err = NULL;
  g_assert_false(i2v_params_validate(m, p, &err));
  golden_assert_error(&err, I2V_ERROR_INVALID, (const char *[]){needle, NULL});
}

static void test_bad_params(void) {
  GoldenCase k;
  open_first(&k);
  I2vModel *m = load_model(&k.mo);
  GError *err = NULL;
  g_assert_true(i2v_params_validate(m, &k.p, &err));
  I2vParams p = k.p;
  p.frames = 0;
  expect_invalid(m, &p, "frames 0");
  p = k.p;
  p.steps = 0;
  expect_invalid(m, &p, "steps 0");
  p = k.p;
  p.guidance = -1;
  expect_invalid(m, &p, "guidance -1");
  p.guidance = NAN;
  expect_invalid(m, &p, "guidance");
  p.guidance = 1e308; /* finite but far above the element's 0..100: black frames once */
  expect_invalid(m, &p, "guidance 1e+308");
  p = k.p;
  p.width = 0;
  expect_invalid(m, &p, "width 0");
  p = k.p;
  p.height = -8;
  expect_invalid(m, &p, "height -8");
  p = k.p;
  p.fps = 0;
  expect_invalid(m, &p, "fps 0");
  p = k.p;
  p.decode_chunk_size = 0;
  expect_invalid(m, &p, "decode_chunk_size 0");
  p = k.p;
  p.attention_chunk = -1;
  expect_invalid(m, &p, "attention_chunk -1");
  p = k.p;
  p.decode_tile = -2;
  expect_invalid(m, &p, "decode_tile -2");
  p = k.p;
  p.decode_tile = 8;
  p.decode_tile_overlap = 8;
  expect_invalid(m, &p, "decode_tile_overlap 8 is not smaller than the decode tile of 8");
  p = k.p;
  p.prompt = "\xff\xfe";
  expect_invalid(m, &p, "prompt");
  p = k.p;
  p.sampler = (I2vSamplerKind)I2V_SAMPLER_COUNT;
  expect_invalid(m, &p, "sampler 2");
  /* DPM-Solver++'s "leading" timesteps leave the schedule before DDIM's: its own bound */
  p = k.p;
  p.sampler = I2V_SAMPLER_DPMPP_2M;
  I2vModelDir *md = golden_open_model(k.set, NULL);
  I2vDdim *ddim = i2v_ddim_load(md, &err);
  g_assert_no_error(err);
  I2vDpmpp *dpmpp = i2v_dpmpp_new(ddim);
  p.steps = i2v_dpmpp_max_steps(dpmpp);
  g_assert_true(i2v_params_validate(m, &p, &err));
  p.steps++;
  char *needle = g_strdup_printf("steps %d", p.steps);
  expect_invalid(m, &p, needle);
  g_free(needle);
  i2v_dpmpp_free(dpmpp);
  i2v_ddim_free(ddim);
  i2v_model_dir_free(md);

  /* i2v_generate validates too, and rejects an empty image. */
  p = k.p;
  p.frames = 0;
  Capture cap;
  capture_init(&cap);
  g_assert_false(generate(m, &k.image, &p, &cap, FALSE, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_INVALID);
  g_clear_error(&err);
  I2vImage empty = {0};
  g_assert_false(generate(m, &empty, &k.p, &cap, FALSE, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_INVALID);
  g_assert_nonnull(strstr(err->message, "0×0"));
  g_clear_error(&err);
  /* the largest job the bounds allow needs ~0.5 TB of latents: a NO_MEMORY error before any
   * work, not an abort in g_new (the run's buffers use the failable path) */
  p = k.p;
  p.width = p.height = I2V_MAX_SIDE;
  p.frames = I2V_MAX_FRAMES;
  g_assert_true(i2v_params_validate(m, &p, NULL));
  g_assert_false(generate(m, &k.image, &p, &cap, FALSE, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_NO_MEMORY);
  g_test_message("expected error: %s", err->message);
  g_clear_error(&err);
  g_assert_cmpint(cap.progress_calls + cap.frame_calls, ==, 0);
  capture_clear(&cap);
  i2v_model_unref(m);
  golden_case_close(&k);
}

/* The text context of prompt in a cheap run (1 step, 1 frame, no CFG): new host tensor. */
static I2vTensor prompt_context(I2vModel *m, const GoldenCase *k, const char *prompt) {
  I2vParams p = k->p;
  p.prompt = prompt;
  p.guidance = 1.0;
  p.steps = 1;
  p.frames = 1;
  p.init_latents = NULL; /* seeded noise: only the text context matters here */
  p.vae_posterior_noise = NULL;
  Capture cap;
  capture_init(&cap);
  GError *err = NULL;
  g_assert_true(generate(m, &k->image, &p, &cap, TRUE, &err));
  g_assert_no_error(err);
  I2vTensor *t = g_hash_table_lookup(cap.dumps, "encoder_hidden_states");
  g_assert_nonnull(t);
  I2vTensor copy = i2v_host_tensor(I2V_DTYPE_F32, t->ndim, t->shape);
  memcpy(copy.data, t->data, i2v_tensor_nbytes(t));
  capture_clear(&cap);
  return copy;
}

/* "a a a ..." with n words: one BPE token each. */
static char *repeated_words(int n) {
  GString *s = g_string_new(NULL);
  for (int i = 0; i < n; i++) g_string_append(s, i ? " a" : "a");
  return g_string_free(s, FALSE);
}

static void test_long_prompt(void) {
  GoldenCase k;
  open_first(&k);
  I2vModel *m = load_model(&k.mo);
  I2vTensor probe = prompt_context(m, &k, "a");
  int tokens = (int)probe.shape[1]; /* the tokenizer's max length */
  i2v_host_tensor_free(&probe);
  char *longer = repeated_words(tokens + 20), *fitting = repeated_words(tokens - 2),
       *shorter = repeated_words(tokens - 3);
  I2vTensor a = prompt_context(m, &k, longer), b = prompt_context(m, &k, fitting),
            c = prompt_context(m, &k, shorter);
  int64_t n = i2v_tensor_numel(&a);
  g_assert_cmpfloat(golden_max_abs_diff(a.data, b.data, n), ==, 0);
  g_assert_cmpfloat(golden_max_abs_diff(a.data, c.data, n), >, 0);
  i2v_host_tensor_free(&a);
  i2v_host_tensor_free(&b);
  i2v_host_tensor_free(&c);
  g_free(longer);
  g_free(fitting);
  g_free(shorter);
  i2v_model_unref(m);
  golden_case_close(&k);
}

static void expect_load_error(const I2vModelOptions *mo, int code, const char *needle) {
  GError *err = NULL;
  g_assert_null(i2v_model_load(mo, &err));
  golden_assert_error(&err, code, (const char *[]){needle, NULL});
}

static void test_model_cache(void) {
  GoldenCase k;
  open_first(&k);
  gboolean have_gpu = i2v_cuda_device_count() > 0;
  I2vModelOptions mo = k.mo;
  I2vModel *a = load_model(&mo);
  I2vModel *b = load_model(&mo);
  g_assert_true(a == b);
  /* "auto" is CUDA when a device is present, else the CPU, and shares that model */
  g_assert_cmpstr(i2v_model_device(a), ==, have_gpu ? "cuda:0" : "cpu");
  mo.device = have_gpu ? "cuda:0" : "cpu";
  I2vModel *c = load_model(&mo);
  g_assert_true(c == a);
  i2v_model_unref(c);
  mo.release_encoders = TRUE; /* another memory behaviour: another model */
  I2vModel *r = load_model(&mo);
  g_assert_true(r != a);
  i2v_model_unref(r);
  mo.release_encoders = FALSE;
  mo.variant = "fp16";
  I2vModel *d = load_model(&mo);
  g_assert_true(d != a);
  i2v_model_unref(d);
  i2v_model_unref(b);
  i2v_model_unref(a);

  mo = k.mo;
  if (!have_gpu) { /* no driver or device here: a clear backend error, not a crash */
    mo.device = "cuda:0";
    expect_load_error(&mo, I2V_ERROR_BACKEND, "cuda:0");
  }
  mo.device = "cuda:99";
  expect_load_error(&mo, I2V_ERROR_BACKEND, "cuda:99");
  mo.device = "tpu";
  expect_load_error(&mo, I2V_ERROR_INVALID, "tpu");
  mo.device = "cpu"; /* the CPU backend is fp32 only */
  mo.precision = "fp16";
  expect_load_error(&mo, I2V_ERROR_BACKEND, "fp16");
  golden_case_close(&k);
}

/* The generator of noise.h against values computed independently from its description. */
static void test_noise(void) {
  static const struct {
    guint64 seed, stream;
    float v[3];
  } vectors[] = {
      {0, 0, {-0.45275774598121643f, 0.20776604115962982f, 2.6506059169769287f}},
      {42, 1, {0.08186130225658417f, 0.6916474103927612f, 1.5828430652618408f}},
      {G_MAXUINT64, 0, {0.4038981795310974f, -0.24716992676258087f, -1.5578114986419678f}},
  };
  for (guint i = 0; i < G_N_ELEMENTS(vectors); i++) {
    float got[3];
    i2v_noise_normal(vectors[i].seed, vectors[i].stream, got, 3);
    for (int j = 0; j < 3; j++) g_assert_cmpfloat_with_epsilon(got[j], vectors[i].v[j], 1e-6);
  }
  enum { N = 100000 };
  float *x = g_new(float, N);
  i2v_noise_normal(7, 0, x, N);
  double sum = 0, sq = 0;
  for (int i = 0; i < N; i++) sum += x[i], sq += (double)x[i] * x[i];
  g_assert_cmpfloat(fabs(sum / N), <, 0.02);
  g_assert_cmpfloat(fabs(sq / N - 1), <, 0.02);
  g_free(x);
}

/* A seed gives the same clip twice and another seed another clip. */
static void test_seeded(void) {
  GoldenCase k;
  open_first(&k);
  I2vModel *m = load_model(&k.mo);
  I2vParams p = k.p;
  p.init_latents = NULL;
  p.vae_posterior_noise = NULL;
  size_t bytes = (size_t)p.width * p.height * 3 * p.frames;
  guint8 *clips[3];
  for (int i = 0; i < 3; i++) {
    p.seed = i < 2 ? 1234 : 1235;
    Capture cap;
    capture_init(&cap);
    GError *err = NULL;
    g_assert_true(generate(m, &k.image, &p, &cap, FALSE, &err));
    g_assert_no_error(err);
    clips[i] = g_steal_pointer(&cap.rgb);
    capture_clear(&cap);
  }
  g_assert_cmpmem(clips[0], bytes, clips[1], bytes);
  g_assert_true(memcmp(clips[0], clips[2], bytes) != 0);
  for (int i = 0; i < 3; i++) g_free(clips[i]);
  i2v_model_unref(m);
  golden_case_close(&k);
}

/* One generation on a session of its own, for a thread. */
typedef struct {
  I2vSession *s;
  const GoldenCase *k;
  Capture cap;
  gint64 end_us;
} SessionJob;

static gpointer run_session_job(gpointer data) {
  SessionJob *j = data;
  I2vCallbacks cb = capture_callbacks(&j->cap, TRUE);
  GError *err = NULL;
  g_assert_true(i2v_generate(j->s, &j->k->image, &j->k->p, &cb, NULL, &err));
  g_assert_no_error(err);
  j->end_us = g_get_monotonic_time();
  return NULL;
}

/* Every dump and frame of b is bit-identical to a's. */
static void assert_same_run(const Capture *a, const Capture *b, size_t rgb_bytes) {
  g_assert_cmpmem(a->rgb, rgb_bytes, b->rgb, rgb_bytes);
  g_assert_cmpuint(g_hash_table_size(a->dumps), ==, g_hash_table_size(b->dumps));
  GHashTableIter it;
  gpointer name, t;
  g_hash_table_iter_init(&it, a->dumps);
  while (g_hash_table_iter_next(&it, &name, &t)) {
    const I2vTensor *u = g_hash_table_lookup(b->dumps, name);
    g_assert_nonnull(u);
    g_assert_cmpmem(((I2vTensor *)t)->data, i2v_tensor_nbytes(t), u->data, i2v_tensor_nbytes(u));
  }
}

/* Two sessions on one model generate at the same time in two threads (the model is read-only and
 * shared; each session has its own arena): each result is bit-identical to the same job run alone,
 * and within the golden tolerances. Wall times of the two runs together vs one after the other
 * are reported. */
static void test_sessions_concurrent(void) {
  GoldenCase k;
  open_first(&k);
  I2vModel *m = load_model(&k.mo);
  GError *err = NULL;
  SessionJob jobs[4];
  for (int i = 0; i < 4; i++) {
    jobs[i] = (SessionJob){.s = i2v_session_new(m, &err), .k = &k};
    g_assert_no_error(err);
    capture_init(&jobs[i].cap);
  }
  /* alone, one after the other: jobs 0 and 1 */
  gint64 t0 = g_get_monotonic_time();
  run_session_job(&jobs[0]);
  run_session_job(&jobs[1]);
  double serial_s = (g_get_monotonic_time() - t0) / 1e6;
  /* together: jobs 2 and 3 */
  t0 = g_get_monotonic_time();
  GThread *a = g_thread_new("session-a", run_session_job, &jobs[2]);
  GThread *b = g_thread_new("session-b", run_session_job, &jobs[3]);
  g_thread_join(a);
  g_thread_join(b);
  double together_s = (g_get_monotonic_time() - t0) / 1e6;
  g_test_message("two %s jobs on one model: %.2f s one after the other, %.2f s at once", k.name,
                 serial_s, together_s);
  size_t rgb_bytes = (size_t)k.p.width * k.p.height * 3 * k.p.frames;
  for (int i = 1; i < 4; i++) assert_same_run(&jobs[0].cap, &jobs[i].cap, rgb_bytes);
  double worst = 0;
  for (const char *const *r = golden_pipeline_required; *r != NULL; r++)
    check_dump(&k, &jobs[3].cap, *r, &worst);
  g_test_message("%s, concurrent: worst error/atol %.3g", k.name, worst);
  /* the model counts both sessions' memory while they live */
  I2vMemoryStats ms, ss;
  i2v_model_memory(m, &ms);
  size_t sum = 0;
  for (int i = 0; i < 4; i++) {
    i2v_session_memory(jobs[i].s, &ss);
    sum += ss.scratch;
  }
  g_assert_cmpuint(ms.scratch, ==, sum);
  for (int i = 0; i < 4; i++) {
    i2v_session_free(jobs[i].s);
    capture_clear(&jobs[i].cap);
  }
  i2v_model_unref(m);
  golden_case_close(&k);
}

/* A session refuses a second generation while one runs (the arena is the session's). */
typedef struct {
  I2vSession *s;
  const GoldenCase *k;
  gboolean tried;
  GError *second;
} Reentry;

static void try_second(const I2vProgress *p, void *user) {
  (void)p;
  Reentry *r = user;
  if (r->tried) return;
  r->tried = TRUE;
  g_assert_false(i2v_generate(r->s, &r->k->image, &r->k->p, NULL, NULL, &r->second));
}

static void test_session_busy(void) {
  GoldenCase k;
  open_first(&k);
  I2vModel *m = load_model(&k.mo);
  GError *err = NULL;
  I2vSession *s = i2v_session_new(m, &err);
  g_assert_no_error(err);
  Reentry r = {.s = s, .k = &k};
  I2vCallbacks cb = {.progress = try_second, .user = &r};
  g_assert_true(i2v_generate(s, &k.image, &k.p, &cb, NULL, &err));
  g_assert_no_error(err);
  golden_assert_error(&r.second, I2V_ERROR_INVALID,
                      (const char *const[]){"already generating", "another session", NULL});
  i2v_session_free(s);
  i2v_model_unref(m);
  golden_case_close(&k);
}

/* Loads of one model from several threads at once load it once. */
static gpointer load_in_thread(gpointer mo) {
  return load_model(mo);
}

static void test_model_cache_threads(void) {
  GoldenCase k;
  open_first(&k);
  GThread *threads[4];
  for (int i = 0; i < 4; i++) threads[i] = g_thread_new("load", load_in_thread, &k.mo);
  I2vModel *models[4];
  for (int i = 0; i < 4; i++) models[i] = g_thread_join(threads[i]);
  for (int i = 1; i < 4; i++) g_assert_true(models[i] == models[0]);
  for (int i = 0; i < 4; i++) i2v_model_unref(models[i]);
  golden_case_close(&k);
}

/* Jobs a memory test runs on one model: the counters compared are exact, so a leak or arena growth
 * shows on the second job; 8 leave room for a cache that grows every few jobs (20 took 22 s of
 * the sanitized run). */
#define MEMORY_JOBS 8

/* No memory creeps up across MEMORY_JOBS runs of one session, with the encoders kept and
 * released: after every generation the persistent memory is back to what the loaded model holds
 * (a job allocates nothing persistent: its conditioning lives in the session's arena) and its peak
 * to the first job's, and the session's scratch arena made by the first job is reused, not grown;
 * the model's scratch is that of its one live session. One denoising step per job keeps the jobs
 * cheap (memory does not depend on the number of steps). */
static void test_memory_stable(void) {
  GoldenCase k;
  open_first(&k);
  k.p.steps = 1;
  for (int release = 0; release < 2; release++) {
    k.mo.release_encoders = release;
    I2vModel *m = load_model(&k.mo);
    I2vMemoryStats loaded, first, now, model;
    i2v_model_memory(m, &loaded);
    GError *err = NULL;
    I2vSession *s = i2v_session_new(m, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(loaded.persistent, >, 0);
    g_assert_cmpuint(loaded.device_used + loaded.device_total + loaded.device_peak, ==,
                     0); /* CPU */
    for (int i = 0; i < MEMORY_JOBS; i++) {
      Capture cap;
      capture_init(&cap);
      I2vCallbacks cb = capture_callbacks(&cap, FALSE);
      g_assert_true(i2v_generate(s, &k.image, &k.p, &cb, NULL, &err));
      g_assert_no_error(err);
      capture_clear(&cap);
      I2vMemoryStats *st = i == 0 ? &first : &now;
      i2v_session_memory(s, st);
      i2v_model_memory(m, &model);
      g_assert_cmpuint(model.scratch, ==, st->scratch);
      if (i == 0 || i == MEMORY_JOBS - 1)
        g_test_message("release_encoders %d run %d: persistent %zu (peak %zu), scratch %zu",
                       release, i, st->persistent, st->persistent_peak, st->scratch);
      g_assert_cmpuint(st->persistent, ==, loaded.persistent);
      /* a released model loads its encoders apart from the UNet (model.c), so its first job,
       * with an encoder beside the UNet, raises the peak above the load's; later jobs keep it */
      if (!release)
        g_assert_cmpuint(st->persistent_peak, ==, loaded.persistent_peak);
      else if (i == 0)
        g_assert_cmpuint(st->persistent_peak, >, loaded.persistent_peak);
      else
        g_assert_cmpuint(st->persistent_peak, ==, first.persistent_peak);
      if (i > 0) g_assert_cmpuint(now.scratch, ==, first.scratch);
    }
    g_assert_cmpuint(first.scratch, >, 0);
    i2v_session_free(s);
    i2v_model_memory(m, &model);
    g_assert_cmpuint(model.scratch, ==, 0);
    i2v_model_unref(m);
  }
  golden_case_close(&k);
}

/* release_encoders changes memory, not results: the same frames and intermediates bit for bit,
 * and between jobs the model holds exactly the encoders' weights less. */
static void test_release_encoders(void) {
  GoldenCase k;
  open_first(&k);
  Capture caps[2];
  size_t persistent[2];
  for (int release = 0; release < 2; release++) {
    k.mo.release_encoders = release;
    I2vModel *m = load_model(&k.mo);
    capture_init(&caps[release]);
    GError *err = NULL;
    g_assert_true(generate(m, &k.image, &k.p, &caps[release], TRUE, &err));
    g_assert_no_error(err);
    I2vMemoryStats st;
    i2v_model_memory(m, &st);
    persistent[release] = st.persistent;
    i2v_model_unref(m);
  }
  size_t bytes = (size_t)(k.p.width * k.p.height * 3) * k.p.frames;
  g_assert_cmpmem(caps[0].rgb, bytes, caps[1].rgb, bytes);
  GHashTableIter it;
  gpointer name, kept;
  int compared = 0;
  g_hash_table_iter_init(&it, caps[0].dumps);
  while (g_hash_table_iter_next(&it, &name, &kept)) {
    const I2vTensor *released = g_hash_table_lookup(caps[1].dumps, name);
    g_assert_nonnull(released);
    g_assert_cmpmem(((I2vTensor *)kept)->data, i2v_tensor_nbytes(kept), released->data,
                    i2v_tensor_nbytes(released));
    compared++;
  }
  g_assert_cmpint(compared, >, 0);
  gint64 params = golden_encoder_params(&k.mo);
  g_test_message("persistent after a job: %zu kept, %zu released; encoders %" G_GINT64_FORMAT
                 " float32 parameters",
                 persistent[0], persistent[1], params);
  g_assert_cmpuint(persistent[0] - persistent[1], ==, (size_t)params * sizeof(float));
  capture_clear(&caps[0]);
  capture_clear(&caps[1]);
  golden_case_close(&k);
}

/* Decoding several frames per VAE call gives the same clip; the stage callback sees every stage
 * once (steps and decode calls once each) with the UNet's FLOPs. */
static void test_chunks_and_stages(void) {
  GoldenCase k;
  open_first(&k);
  g_assert_cmpint(k.p.frames, >=, 3);
  I2vModel *m = load_model(&k.mo);
  k.p.decode_chunk_size = k.p.frames - 1; /* one full chunk and a partial one */
  Capture cap;
  capture_init(&cap);
  GError *err = NULL;
  g_assert_true(generate(m, &k.image, &k.p, &cap, TRUE, &err));
  g_assert_no_error(err);
  g_assert_cmpint(cap.frame_calls, ==, k.p.frames);
  g_assert_true(cap.in_order);
  double worst = 0;
  check_dump(&k, &cap, "video", &worst);
  check_dump(&k, &cap, "frames", &worst);
  static const char *const once[] = {"text_encoder", "image_encoder", "vae_encoder",
                                     "unet_prepare"};
  for (guint i = 0; i < G_N_ELEMENTS(once); i++) g_assert_cmpint(stage_count(&cap, once[i]), ==, 1);
  g_assert_cmpint(stage_count(&cap, "unet_step"), ==, k.p.steps);
  g_assert_cmpint(stage_count(&cap, "vae_decode_frame"), ==, 2);
  g_assert_cmpfloat(cap.step_flops, >, 0);
  capture_clear(&cap);
  i2v_model_unref(m);
  golden_case_close(&k);
}

/* Relative L2 difference of tensor name between two runs' dumps (b against a). */
static double dump_rel_l2(const Capture *a, const Capture *b, const char *name) {
  const I2vTensor *x = g_hash_table_lookup(a->dumps, name),
                  *y = g_hash_table_lookup(b->dumps, name);
  g_assert_nonnull(x);
  g_assert_nonnull(y);
  g_assert_cmpint(i2v_tensor_numel(x), ==, i2v_tensor_numel(y));
  return golden_rel_l2(y->data, x->data, i2v_tensor_numel(x));
}

/* The memory-saving strategies against the default run of the first CFG case (one step):
 * sequential guidance and attention chunks of 1 frame (every transformer chunked) compute the
 * same clip within float32 rounding at the same FLOP count; decode tiles of 24 latent pixels
 * (2×2 tiles of the 32×32 latent, sharing 16) stay within TILE_REL_L2 of the untiled video
 * (measured 0.027: the tiny model's random decoder on a noise latent is the worst case for the
 * per-tile GroupNorm statistics, docs/PERFORMANCE.md "VAE tiles"), and a tile as large as the
 * latent is the untiled decode bit for bit. */
#define FP32_REL_L2 1e-5
#define TILE_REL_L2 0.035
static void test_memory_strategies(void) {
  GoldenCase k;
  open_first(&k);
  g_assert_cmpint(k.p.width, ==, 32); /* the tile sizes below are for a 32×32 latent */
  k.p.steps = 1;
  I2vModel *m = load_model(&k.mo);
  Capture base, cap;
  capture_init(&base);
  GError *err = NULL;
  g_assert_true(generate(m, &k.image, &k.p, &base, TRUE, &err));
  g_assert_no_error(err);
  struct {
    const char *what;
    gboolean sequential;
    int chunk, tile;
    double tol;
  } runs[] = {
      {"sequential guidance + attention chunks of 1 frame", TRUE, 1, -1, FP32_REL_L2},
      {"decode tile 32 (the whole latent)", FALSE, 0, 32, 0},
      {"decode tiles 24 (2×2 tiles, overlap 16)", FALSE, 0, 24, TILE_REL_L2},
  };
  for (guint i = 0; i < G_N_ELEMENTS(runs); i++) {
    I2vParams p = k.p;
    p.sequential_guidance = runs[i].sequential;
    p.attention_chunk = runs[i].chunk;
    p.decode_tile = runs[i].tile;
    capture_init(&cap);
    g_assert_true(generate(m, &k.image, &p, &cap, TRUE, &err));
    g_assert_no_error(err);
    double lat = dump_rel_l2(&base, &cap, "latents_final");
    double video = dump_rel_l2(&base, &cap, "video");
    g_test_message("%s: relative L2 difference to the default: final latents %.3g, video %.3g",
                   runs[i].what, lat, video);
    g_assert_cmpfloat(video, <=, runs[i].tol);
    if (runs[i].tile < 0) { /* the UNet strategies: same latents, same FLOPs */
      g_assert_cmpfloat(lat, <=, runs[i].tol);
      g_assert_cmpfloat(cap.step_flops, ==, base.step_flops);
    } else {
      g_assert_cmpfloat(lat, ==, 0);
      if (runs[i].tol > 0) g_assert_cmpfloat(video, >, 0); /* it did tile */
    }
    capture_clear(&cap);
  }
  capture_clear(&base);
  i2v_model_unref(m);
  golden_case_close(&k);
}

/* Mean |difference| of consecutive frames of an RGB8 clip [F, H, W, 3]: how much it moves. */
static double clip_motion(const guint8 *rgb, int frames, size_t frame_bytes) {
  double sum = 0;
  for (int f = 1; f < frames; f++)
    for (size_t i = 0; i < frame_bytes; i++)
      sum += abs((int)rgb[f * frame_bytes + i] - (int)rgb[(f - 1) * frame_bytes + i]);
  return sum / ((double)(frames - 1) * frame_bytes);
}

/* The RGB8 clip of p (seeded noise), and its stage count of UNet steps. */
static guint8 *clip_of(I2vModel *m, const GoldenCase *k, const I2vParams *p, int *unet_steps) {
  Capture cap;
  capture_init(&cap);
  GError *err = NULL;
  g_assert_true(generate(m, &k->image, p, &cap, FALSE, &err));
  g_assert_no_error(err);
  *unet_steps = stage_count(&cap, "unet_step");
  guint8 *rgb = g_steal_pointer(&cap.rgb);
  capture_clear(&cap);
  return rgb;
}

/* The signal and noise scales of step k of a 10-step run of sampler kind on the model's
 * schedule, from their definitions: √ᾱ_t and √(1−ᾱ_t) (DDIM), 1/√(σ_k²+1) and σ_k/√(σ_k²+1)
 * (DPM-Solver++). */
static void start_levels(const GoldenCase *k, I2vSamplerKind kind, int step, double *signal,
                         double *noise) {
  GError *err = NULL;
  I2vModelDir *md = golden_open_model(k->set, NULL);
  I2vDdim *ddim = i2v_ddim_load(md, &err);
  g_assert_no_error(err);
  if (kind == I2V_SAMPLER_DDIM) {
    int64_t ts[10];
    g_assert_true(i2v_ddim_timesteps(ddim, 10, ts, &err));
    double abar = i2v_ddim_alphas_cumprod(ddim)[ts[step]];
    *signal = sqrt(abar);
    *noise = sqrt(1 - abar);
  } else {
    I2vDpmpp *dpmpp = i2v_dpmpp_new(ddim);
    float sigmas[11];
    g_assert_true(i2v_dpmpp_sigmas(dpmpp, 10, sigmas, &err));
    *signal = 1 / sqrt((double)sigmas[step] * sigmas[step] + 1);
    *noise = sigmas[step] * *signal;
    i2v_dpmpp_free(dpmpp);
  }
  i2v_ddim_free(ddim);
  i2v_model_dir_free(md);
}

/* motion_strength s < 1 with sampler kind: the loop starts from the image's latent on every
 * frame, noised to the level of step n − ⌊s·n⌋ (signal·z + noise·ε), and runs only the last
 * ⌊s·n⌋ steps; the clip then moves less than at full strength. Out-of-range values are refused. */
static void motion_strength_with(I2vSamplerKind kind) {
  GoldenCase k;
  open_first(&k);
  g_assert_cmpint(k.p.frames, >=, 2);
  I2vModel *m = load_model(&k.mo);
  k.p.sampler = kind;
  I2vParams p = k.p;
  p.steps = 10;
  p.motion_strength = 0.35;
  Capture cap;
  capture_init(&cap);
  GError *err = NULL;
  g_assert_true(generate(m, &k.image, &p, &cap, TRUE, &err));
  g_assert_no_error(err);
  g_assert_cmpint(stage_count(&cap, "unet_step"), ==, 3);
  g_assert_cmpint(cap.progress_calls, ==, 3 + p.frames);
  g_assert_true(cap.in_order);
  g_assert_nonnull(g_hash_table_lookup(cap.dumps, "step7.latents"));
  g_assert_null(g_hash_table_lookup(cap.dumps, "step6.latents"));

  double signal, noise_level;
  start_levels(&k, kind, 7, &signal, &noise_level);
  const I2vTensor *start = g_hash_table_lookup(cap.dumps, "start_latents"),
                  *z = g_hash_table_lookup(cap.dumps, "image_latents"),
                  *noise = g_hash_table_lookup(cap.dumps, "init_latents");
  g_assert_true(start != NULL && z != NULL && noise != NULL);
  int64_t C = start->shape[1], F = start->shape[2], hw = start->shape[3] * start->shape[4];
  double worst = 0;
  for (int64_t c = 0; c < C; c++)
    for (int64_t f = 0; f < F; f++)
      for (int64_t i = 0; i < hw; i++) {
        int64_t at = (c * F + f) * hw;
        double want = signal * ((float *)z->data)[c * F * hw + i] +
                      noise_level * ((float *)noise->data)[at + i];
        worst = MAX(worst, fabs(((float *)start->data)[at + i] - want));
      }
  g_assert_cmpfloat(worst, <, 1e-5);
  capture_clear(&cap);

  /* nearly no strength: one step from the image, far less motion than from pure noise */
  p = k.p;
  p.init_latents = NULL;
  p.vae_posterior_noise = NULL;
  p.steps = 10;
  p.seed = 99;
  int full_steps, low_steps;
  guint8 *full = clip_of(m, &k, &p, &full_steps);
  p.motion_strength = 0.1;
  guint8 *low = clip_of(m, &k, &p, &low_steps);
  size_t frame_bytes = (size_t)p.width * p.height * 3;
  double full_motion = clip_motion(full, p.frames, frame_bytes),
         low_motion = clip_motion(low, p.frames, frame_bytes);
  g_test_message("motion per frame: strength 1 %.2f, strength 0.1 %.2f (of 255)", full_motion,
                 low_motion);
  g_assert_cmpint(full_steps, ==, 10);
  g_assert_cmpint(low_steps, ==, 1);
  /* DPM-Solver++'s last timestep with "leading" spacing is T/(n+1) + offset (σ ≈ 0.16 at 10
   * steps), not DDIM's 1: its one step starts from visibly more noise, which the tiny random
   * UNet does not remove, so only "less motion" holds for it. */
  g_assert_cmpfloat(low_motion, <, (kind == I2V_SAMPLER_DDIM ? 0.5 : 0.9) * full_motion);
  g_free(full);
  g_free(low);

  p = k.p;
  p.motion_strength = 0;
  expect_invalid(m, &p, "motion_strength 0");
  p.motion_strength = 1.5;
  expect_invalid(m, &p, "motion_strength 1.5");
  p.motion_strength = NAN;
  expect_invalid(m, &p, "motion_strength");
  i2v_model_unref(m);
  golden_case_close(&k);
}

static void test_motion_strength(void) {
  motion_strength_with(I2V_SAMPLER_DDIM);
}

static void test_motion_strength_dpmpp(void) {
  motion_strength_with(I2V_SAMPLER_DPMPP_2M);
}

/* Runs the i2vgen tool; returns its exit status, stderr in *err_text (g_free). */
static int run_cli(char **args, char **err_text) {
  GError *err = NULL;
  int status = -1;
  g_assert_true(
      g_spawn_sync(NULL, args, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, err_text, &status, &err));
  g_assert_no_error(err);
  return g_spawn_check_wait_status(status, NULL) ? 0 : WEXITSTATUS(status);
}

static void test_cli(void) {
  char *tool = (char *)g_getenv("I2VGEN_TOOL"); /* the built i2vgen (meson sets it) */
  if (tool == NULL) {
    g_test_skip("I2VGEN_TOOL is not set");
    return;
  }
  GoldenCase k;
  open_first(&k);
  char *tmp = g_dir_make_tmp("i2vgen-cli-XXXXXX", NULL);
  char *missing = g_build_filename(tmp, "no-such-image.png", NULL);
  char *err_text = NULL;
  char *bad[] = {tool,    "generate", "--model", k.model_dir, "--image",
                 missing, "--prompt", "x",       NULL};
  g_assert_cmpint(run_cli(bad, &err_text), ==, 1);
  g_assert_nonnull(strstr(err_text, missing));
  g_free(err_text);
  /* --lora reaches the model: a missing LoRA file is named */
  char *png = g_build_filename(first_set, "golden", golden_input_png(first_manifest), NULL);
  char *no_lora[] = {tool, "generate", "--model", k.model_dir, "--image",
                     png,  "--prompt", "x",       "--lora",    "/nonexistent/style.safetensors:0.5",
                     NULL};
  g_assert_cmpint(run_cli(no_lora, &err_text), ==, 1);
  g_assert_nonnull(strstr(err_text, "LoRA file /nonexistent/style.safetensors not found"));
  g_free(err_text);

  /* The golden case through the CLI: recorded noise in, PNG frames and a dump out. */
  char *noise = g_strdup(i2v_safetensors_path(k.st));
  char *pattern = g_build_filename(tmp, "frames", "f-%03d.png", NULL);
  char *dump_path = g_build_filename(tmp, "dump.safetensors", NULL);
  char *args[32] = {tool,    "generate", "--model",          k.model_dir, "--image",
                    png,     "--prompt", (char *)k.p.prompt, "--noise",   noise,
                    "--out", pattern,    "--dump",           dump_path};
  int n = 14;
  char *nums[6] = {g_strdup_printf("%d", k.p.steps),  g_strdup_printf("%g", k.p.guidance),
                   g_strdup_printf("%d", k.p.frames), g_strdup_printf("%d", k.p.fps),
                   g_strdup_printf("%d", k.p.width),  g_strdup_printf("%d", k.p.height)};
  const char *opts[6] = {"--steps", "--guidance", "--frames", "--fps", "--width", "--height"};
  for (int i = 0; i < 6; i++) args[n++] = (char *)opts[i], args[n++] = nums[i];
  if (k.p.negative_prompt) args[n++] = "--negative-prompt", args[n++] = (char *)k.p.negative_prompt;
  if (k.mo.variant) args[n++] = "--variant", args[n++] = (char *)k.mo.variant;
  g_assert_cmpint(run_cli(args, &err_text), ==, 0);
  g_assert_nonnull(strstr(err_text, "step 1/"));
  g_free(err_text);

  I2vSafetensors *dump = i2v_safetensors_open(dump_path, NULL);
  g_assert_nonnull(dump);
  static const char *const names[] = {"latents_final", "frames", "encoder_hidden_states"};
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    I2vTensor t;
    g_assert_true(i2v_safetensors_read_f32(dump, names[i], &t, NULL));
    g_assert_true(golden_check(k.st, names[i], t.data, i2v_tensor_numel(&t),
                               golden_atol(k.set, k.group, names[i]), "cli"));
    i2v_host_tensor_free(&t);
  }
  i2v_safetensors_close(dump);
  for (int f = 0; f < k.p.frames; f++) {
    char *frame = g_strdup_printf(pattern, f);
    I2vImage img;
    g_assert_true(i2v_image_load(frame, &img, NULL));
    g_assert_cmpint(img.width, ==, k.p.width);
    i2v_image_clear(&img);
    g_remove(frame);
    g_free(frame);
  }
  char *frames_dir = g_path_get_dirname(pattern);
  g_rmdir(frames_dir);
  g_remove(dump_path);
  g_rmdir(tmp);
  for (int i = 0; i < 6; i++) g_free(nums[i]);
  g_free(frames_dir);
  g_free(png);
  g_free(noise);
  g_free(pattern);
  g_free(dump_path);
  g_free(missing);
  g_free(tmp);
  golden_case_close(&k);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/pipeline/noise", test_noise);
  g_test_add_func("/pipeline/goldens", test_goldens);
  g_test_add_func("/pipeline/sampler-goldens", test_sampler_goldens);
  g_test_add_func("/pipeline/cancel", test_cancel);
  g_test_add_func("/pipeline/bad-params", test_bad_params);
  g_test_add_func("/pipeline/long-prompt", test_long_prompt);
  g_test_add_func("/pipeline/model-cache", test_model_cache);
  g_test_add_func("/pipeline/model-cache-threads", test_model_cache_threads);
  g_test_add_func("/pipeline/sessions-concurrent", test_sessions_concurrent);
  g_test_add_func("/pipeline/session-busy", test_session_busy);
  g_test_add_func("/pipeline/seeded", test_seeded);
  g_test_add_func("/pipeline/memory-stable", test_memory_stable);
  g_test_add_func("/pipeline/release-encoders", test_release_encoders);
  g_test_add_func("/pipeline/chunks-and-stages", test_chunks_and_stages);
  g_test_add_func("/pipeline/memory-strategies", test_memory_strategies);
  g_test_add_func("/pipeline/motion-strength", test_motion_strength);
  g_test_add_func("/pipeline/motion-strength-dpmpp", test_motion_strength_dpmpp);
  g_test_add_func("/pipeline/cli", test_cli);
  g_test_add_func("/pipeline/realcfg", test_realcfg);
  int rc = g_test_run();
  if (first_manifest != NULL) json_node_unref(first_manifest);
  g_free(first_set);
  return rc;
}
