/* The whole pipeline on CUDA, each test in fp32, fp16 and bf16:
 *
 * /cuda/pipeline: for every fixture set with model files, the first pipeline case of its manifest
 * (prompt, size, frames, steps, guidance read from there; noise from the seed) runs through
 * i2v_generate on "cpu" and on "cuda:0", and every intermediate the dump callback hands out is
 * compared by relative L2 error.
 * /cuda/goldens and /cuda/realcfg: every pipeline case of the tiny sets (model files) and of the
 * README-realcfg sets (formula weights, real sizes) runs on "cuda:0" with the noise recorded in
 * its golden file and is compared with the golden file itself, as the CPU test does: fp32 within
 * the goldens' own atol for every dumped tensor (tolerances.json: 20× the measured float32 vs
 * float64 gap; CUDA's fp32 path sums in another order but computes in fp32 throughout, so it is one
 * more float32 implementation the atol is meant for), fp16/bf16 by relative L2.
 *
 * Relative L2 bounds, asserted on the final latents and the decoded video (the other tensors are
 * reported): fp32 1e-4 (op errors of ~1e-6 grow through the denoising steps and the VAE),
 * fp16 3e-2, bf16 1e-1 (the whole pipeline in 16-bit storage, as diffusers' fp16 run).
 *
 * /cuda/sessions-concurrent: two sessions (two streams) of one model in two threads give what one
 * session gives alone, bit for bit.
 *
 * /cuda/memory-stable: 20 successive jobs on one session (encoders kept, then released): the
 * device's used memory (cudaMemGetInfo) after every job equals its level after the first, and the
 * persistent bytes are back to their level before the job; releasing the encoders holds exactly
 * their fp16 weights fewer.
 *
 * /cuda/sampler-goldens: the pipeline cases of the other samplers (schedulers.json: DPM-Solver++
 * 2M) the same way.
 *
 * /cuda/memory-strategies: the smallest CFG golden case the same way with every memory-saving
 * strategy of I2vParams forced on.
 *
 * Every test skips, with the reason, without a CUDA device. Also built against tests/cudasim
 * (test-cuda-sim-pipeline, slow suite), where a tiny case takes ~20 s: there only /cuda/pipeline in
 * fp16, /cuda/goldens in fp32 on the first tiny case, /cuda/sampler-goldens in fp16 on the
 * smallest DPM-Solver++ case, /cuda/memory-strategies in fp16 on the smallest case (2 steps, 2
 * frames) and the memory test with 2 small one-step jobs. */
#include <string.h>

#include "backend.h"
#include "cuda_backend.h"
#include "golden_case.h"

typedef struct {
  const char *name;
  I2vDType dtype;
  double tol;
} Precision;

static const Precision precisions[] = {
    {"fp32", I2V_DTYPE_F32, 1e-4},
    {"fp16", I2V_DTYPE_F16, 3e-2},
    {"bf16", I2V_DTYPE_BF16, 1e-1},
};

#ifdef I2V_CUDA_SIM
#define MEMORY_JOBS 2 /* the simulator takes about 1.5 s per small job */
#else
#define MEMORY_JOBS 20
#endif

/* TRUE when cuda:0 works; else marks the test skipped with the reason. */
static gboolean have_cuda(void) {
  GError *err = NULL;
  I2vBackend *probe = i2v_cuda_backend_new(0, I2V_DTYPE_F32, &err);
  if (probe == NULL) {
    g_test_skip(err->message);
    g_error_free(err);
    return FALSE;
  }
  i2v_backend_free(probe);
  return TRUE;
}

static void free_tensor(gpointer t) {
  i2v_host_tensor_free(t);
  g_free(t);
}

/* name → host I2vTensor copy of every dumped tensor. */
static void on_dump(const char *name, const I2vTensorView *t, void *user) {
  I2vTensor *copy = g_new(I2vTensor, 1);
  *copy = i2v_host_tensor(I2V_DTYPE_F32, t->ndim, t->shape);
  memcpy(copy->data, t->data, i2v_tensor_nbytes(copy));
  g_hash_table_replace(user, g_strdup(name), copy);
}

static I2vModel *load(const I2vModelOptions *mo) {
  GError *err = NULL;
  I2vModel *m = i2v_model_load(mo, &err);
  g_assert_no_error(err);
  return m;
}

/* Runs one generation on m and returns its dump (g_hash_table_unref). */
static GHashTable *run(I2vModel *m, const I2vImage *image, const I2vParams *p) {
  GHashTable *dumps = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, free_tensor);
  I2vCallbacks cb = {.dump = on_dump, .user = dumps};
  GError *err = NULL;
  g_assert_true(i2v_model_generate(m, image, p, &cb, NULL, &err));
  g_assert_no_error(err);
  return dumps;
}

/* Relative L2 error of tensor name, reported; asserted against prec's bound for the final
 * latents and the video. Returns 1 when it was asserted. */
static int check_rel_l2(const Precision *prec, const char *label, const char *name,
                        const I2vTensor *got, const float *ref) {
  double rel = golden_rel_l2(got->data, ref, i2v_tensor_numel(got));
  g_test_message("%s %s %s: relative L2 error %.3g", prec->name, label, name, rel);
  if (strcmp(name, "latents_final") != 0 && strcmp(name, "video") != 0) return 0;
  if (!(rel <= prec->tol))
    g_error("%s %s %s: relative L2 error %.3g > %.3g", prec->name, label, name, rel, prec->tol);
  return 1;
}

/* The manifest's first pipeline call with the set's input image, seeded noise (seed 7). FALSE
 * when the set has no pipeline case. */
static gboolean first_call(const char *set, JsonNode *manifest, I2vParams *p, I2vImage *image) {
  JsonObject *files = json_object_get_object_member(json_node_get_object(manifest), "files");
  JsonArray *cases = files != NULL && json_object_has_member(files, "pipeline")
                         ? json_object_get_array_member(files, "pipeline")
                         : NULL;
  if (cases == NULL || json_array_get_length(cases) == 0) return FALSE;
  JsonObject *call = json_object_get_object_member(json_array_get_object_element(cases, 0), "call");
  i2v_params_init(p);
  p->prompt = json_object_get_string_member(call, "prompt");
  p->height = (int)json_object_get_int_member(call, "height");
  p->width = (int)json_object_get_int_member(call, "width");
  p->frames = (int)json_object_get_int_member(call, "num_frames");
  p->steps = (int)json_object_get_int_member(call, "num_inference_steps");
  p->guidance = json_object_get_double_member(call, "guidance_scale");
  p->fps = (int)json_object_get_int_member(call, "target_fps");
  p->seed = 7;
  char *png = g_build_filename(set, "golden", golden_input_png(manifest), NULL);
  GError *err = NULL;
  g_assert_true(i2v_image_load(png, image, &err));
  g_assert_no_error(err);
  g_free(png);
  return TRUE;
}

/* CUDA against the CPU, seeded noise, first case of every file-weight set. */
static void test_pipeline(gconstpointer data) {
  const Precision *prec = data;
  if (!have_cuda()) return;
  char **sets = golden_sets_with("manifest.json");
  int ran = 0;
  for (char **set = sets; *set != NULL; set++) {
    guint64 seed;
    if (golden_formula_seed(*set, &seed)) continue; /* real-size sets: /cuda/realcfg */
    JsonNode *manifest = golden_json(*set, "manifest.json");
    I2vParams p;
    I2vImage image;
    if (first_call(*set, manifest, &p, &image)) {
      char *model = g_build_filename(*set, "model", NULL);
      I2vModelOptions mo = {.path = model, .device = "cpu"};
      I2vModel *cpu = load(&mo);
      mo.device = "cuda:0";
      mo.precision = prec->name;
      I2vModel *cuda = load(&mo);
      GHashTable *ref = run(cpu, &image, &p), *got = run(cuda, &image, &p);
      GHashTableIter it;
      gpointer name, r;
      int checked = 0;
      g_hash_table_iter_init(&it, ref);
      while (g_hash_table_iter_next(&it, &name, &r)) {
        const I2vTensor *g = g_hash_table_lookup(got, name);
        g_assert_nonnull(g);
        checked += check_rel_l2(prec, "vs cpu", name, g, ((I2vTensor *)r)->data);
      }
      g_assert_cmpint(checked, ==, 2);
      g_hash_table_unref(ref);
      g_hash_table_unref(got);
      i2v_model_unref(cuda);
      i2v_model_unref(cpu);
      i2v_image_clear(&image);
      g_free(model);
      ran++;
    }
    json_node_unref(manifest);
  }
  g_strfreev(sets);
  g_assert_cmpint(ran, >, 0);
}

/* The cases a golden test runs, and in which precision. */
typedef struct {
  const Precision *prec;
  int done;
  char *only; /* the one case to run by name; NULL: every case (on the simulator: the first) */
  gboolean memsave; /* with every memory-saving strategy forced on (test_memory_strategies) */
} CaseFilter;

/* One golden case on cuda:0 in the filter's precision against its golden file. */
static void run_golden_case(const char *set, JsonNode *manifest, JsonObject *c, void *user) {
  CaseFilter *filter = user;
  const Precision *prec = filter->prec;
  if (filter->only != NULL && strcmp(filter->only, json_object_get_string_member(c, "name")) != 0)
    return;
#ifdef I2V_CUDA_SIM /* ~20 s per case: the first case only */
  if (filter->done > 0) return;
#endif
  filter->done++;
  GoldenCase k;
  golden_case_open(&k, set, manifest, c);
  k.mo.device = "cuda:0";
  k.mo.precision = prec->name;
  if (filter->memsave) {
    /* chunks small enough that each strategy really splits the work on the smallest case
     * (24×48 latent, 2 frames): one frame per transformer call, two decode tiles across */
    k.p.sequential_guidance = TRUE;
    k.p.attention_chunk = 1;
    k.p.decode_tile = 40;
    k.p.decode_tile_overlap = 8;
  }
  I2vModel *m = load(&k.mo);
  gint64 t0 = g_get_monotonic_time();
  GHashTable *got = run(m, &k.image, &k.p);
  g_test_message("TIME %s %s %.2f s", prec->name, k.name, (g_get_monotonic_time() - t0) / 1e6);
  for (const char *const *r = golden_pipeline_required; *r != NULL; r++)
    g_assert_true(g_hash_table_contains(got, *r));
  double worst = 0;
  int asserted = 0;
  for (guint i = 0; i < i2v_safetensors_count(k.st); i++) {
    const I2vSafetensorsEntry *e = i2v_safetensors_entry(k.st, i);
    const I2vTensor *t = g_hash_table_lookup(got, e->name);
    if (e->dtype != I2V_DTYPE_F32 || t == NULL) continue; /* not an output the engine dumps */
    if (prec->dtype == I2V_DTYPE_F32) {
      golden_case_check(&k, e->name, t, &worst);
    } else {
      I2vTensor ref;
      GError *err = NULL;
      g_assert_true(i2v_safetensors_read_f32(k.st, e->name, &ref, &err));
      g_assert_cmpint(i2v_tensor_numel(&ref), ==, i2v_tensor_numel(t));
      asserted += check_rel_l2(prec, k.name, e->name, t, ref.data);
      i2v_host_tensor_free(&ref);
    }
  }
  if (prec->dtype == I2V_DTYPE_F32)
    g_test_message("WORST %s error/atol %.3g", k.name, worst);
  else
    g_assert_cmpint(asserted, ==, 2);
  g_hash_table_unref(got);
  i2v_model_unref(m);
  golden_case_close(&k);
}

static void test_goldens(gconstpointer data) {
  CaseFilter filter = {data, 0, NULL, FALSE};
  if (have_cuda()) golden_for_each_case(FALSE, run_golden_case, &filter);
  if (have_cuda()) g_assert_cmpint(filter.done, >, 0);
}

#ifndef I2V_CUDA_SIM /* real sizes: hours in the simulator */
static void test_realcfg(gconstpointer data) {
  CaseFilter filter = {data, 0, NULL, FALSE};
  if (have_cuda()) golden_for_each_case(TRUE, run_golden_case, &filter);
  if (have_cuda()) g_assert_cmpint(filter.done, >, 0);
}
#endif

/* The name of the case with classifier-free guidance with the least work (pixels × frames ×
 * steps) so far. */
typedef struct {
  char *name;
  gint64 work;
} Smallest;

static void pick_smallest(const char *set, JsonNode *manifest, JsonObject *c, void *user) {
  (void)set, (void)manifest;
  Smallest *smallest = user;
  JsonObject *call = json_object_get_object_member(c, "call");
  if (json_object_get_double_member(call, "guidance_scale") <= 1) return;
  gint64 work = json_object_get_int_member(call, "height") *
                json_object_get_int_member(call, "width") *
                json_object_get_int_member(call, "num_frames") *
                json_object_get_int_member(call, "num_inference_steps");
  if (smallest->name == NULL || work < smallest->work) {
    g_free(smallest->name);
    smallest->name = g_strdup(json_object_get_string_member(c, "name"));
    smallest->work = work;
  }
}

/* The smallest CFG case with every memory-saving strategy forced on (sequential guidance,
 * attention chunks of one frame, decode tiles) against its golden file, within the same bounds
 * as without them: the strategies compute the same arithmetic in smaller pieces (the tiles
 * blend at their seams, docs/PERFORMANCE.md "VAE tiles"). */
static void test_memory_strategies(gconstpointer data) {
  if (!have_cuda()) return;
  Smallest smallest = {NULL, 0};
  golden_for_each_case(FALSE, pick_smallest, &smallest);
  g_assert_nonnull(smallest.name);
  CaseFilter filter = {data, 0, smallest.name, TRUE};
  golden_for_each_case(FALSE, run_golden_case, &filter);
  g_assert_cmpint(filter.done, ==, 1);
  g_free(smallest.name);
}

static void test_sampler_goldens(gconstpointer data) {
  if (!have_cuda()) return;
  CaseFilter filter = {data, 0, NULL, FALSE};
#ifdef I2V_CUDA_SIM
  Smallest smallest = {NULL, 0};
  golden_for_each_sampler_case(pick_smallest, &smallest);
  filter.only = smallest.name;
#endif
  golden_for_each_sampler_case(run_golden_case, &filter);
  g_assert_cmpint(filter.done, >, 0);
  g_free(filter.only);
}

/* MEMORY_JOBS jobs of the first case of the first tiny set on one model; see the file comment. */
static void memory_jobs(const char *set, JsonNode *manifest, JsonObject *c, void *user) {
  int *done = user;
  if ((*done)++ > 0) return;
  GoldenCase k;
  golden_case_open(&k, set, manifest, c);
  k.mo.device = "cuda:0";
  k.mo.precision = "fp16";
  k.p.steps = 1; /* memory does not depend on the number of steps */
#ifdef I2V_CUDA_SIM
  /* a smaller clip, with seeded noise of its size */
  k.p.width = k.p.height = 16;
  k.p.frames = 2;
  k.p.init_latents = k.p.vae_posterior_noise = NULL;
#endif
  size_t persistent[2];
  for (int release = 0; release < 2; release++) {
    k.mo.release_encoders = release;
    I2vModel *m = load(&k.mo);
    GError *err = NULL;
    I2vSession *s = i2v_session_new(m, &err);
    g_assert_no_error(err);
    I2vMemoryStats before, first, now;
    for (int i = 0; i < MEMORY_JOBS; i++) {
      i2v_session_memory(s, &before);
      g_assert_true(i2v_generate(s, &k.image, &k.p, NULL, NULL, &err));
      g_assert_no_error(err);
      I2vMemoryStats *st = i == 0 ? &first : &now;
      i2v_session_memory(s, st);
      g_test_message("release_encoders %d job %d: device used %zu (peak %zu) of %zu, persistent "
                     "%zu, scratch %zu",
                     release, i, st->device_used, st->device_peak, st->device_total, st->persistent,
                     st->scratch);
      g_assert_cmpuint(st->device_total, >, 0);
      g_assert_cmpuint(st->device_used, >=, st->persistent + st->scratch);
      g_assert_cmpuint(st->device_peak, >=, st->device_used);
      g_assert_cmpuint(st->persistent, ==, before.persistent);
      if (i > 0) {
        g_assert_cmpuint(now.device_used, ==, first.device_used);
        g_assert_cmpuint(now.scratch, ==, first.scratch);
      }
    }
    persistent[release] = first.persistent;
    i2v_session_free(s);
    i2v_model_unref(m);
  }
  /* released: exactly the encoders' fp16 weights fewer between jobs */
  g_assert_cmpuint(persistent[0] - persistent[1], ==,
                   (size_t)golden_encoder_params(&k.mo) * i2v_dtype_size(I2V_DTYPE_F16));
  golden_case_close(&k);
}

static void test_memory_stable(void) {
  if (!have_cuda()) return;
  int done = 0;
  golden_for_each_case(FALSE, memory_jobs, &done);
  g_assert_cmpint(done, >, 0);
}

/* One generation on its own session, for a thread: the video dump. */
typedef struct {
  I2vSession *s;
  const GoldenCase *k;
  GHashTable *dumps;
} StreamJob;

static gpointer run_stream_job(gpointer data) {
  StreamJob *j = data;
  j->dumps = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, free_tensor);
  I2vCallbacks cb = {.dump = on_dump, .user = j->dumps};
  GError *err = NULL;
  g_assert_true(i2v_generate(j->s, &j->k->image, &j->k->p, &cb, NULL, &err));
  g_assert_no_error(err);
  return NULL;
}

/* Two sessions on one CUDA model run at the same time on two streams from two threads: the final
 * latents and video of each are bit-identical to the same job run alone (no kernel uses atomics,
 * and each stream has its own handles, workspace and plans). A small seeded job: on the simulator
 * each run takes about a second. */
typedef struct {
  const Precision *prec;
  int done;
} FirstCase;

static void concurrent_jobs(const char *set, JsonNode *manifest, JsonObject *c, void *user) {
  FirstCase *first = user;
  const Precision *prec = first->prec;
  if (first->done++ > 0) return;
  GoldenCase k;
  golden_case_open(&k, set, manifest, c);
  k.mo.device = "cuda:0";
  k.mo.precision = prec->name;
  k.p.steps = 1;
  k.p.width = k.p.height = 16;
  k.p.frames = 2;
  k.p.init_latents = k.p.vae_posterior_noise = NULL;
  I2vModel *m = load(&k.mo);
  StreamJob jobs[3];
  for (int i = 0; i < 3; i++) {
    GError *err = NULL;
    jobs[i] = (StreamJob){.s = i2v_session_new(m, &err), .k = &k};
    g_assert_no_error(err);
  }
  run_stream_job(&jobs[0]);
  GThread *a = g_thread_new("stream-a", run_stream_job, &jobs[1]);
  GThread *b = g_thread_new("stream-b", run_stream_job, &jobs[2]);
  g_thread_join(a);
  g_thread_join(b);
  const char *names[] = {"latents_final", "video"};
  for (int i = 1; i < 3; i++) {
    for (guint n = 0; n < G_N_ELEMENTS(names); n++) {
      const I2vTensor *alone = g_hash_table_lookup(jobs[0].dumps, names[n]);
      const I2vTensor *with = g_hash_table_lookup(jobs[i].dumps, names[n]);
      g_assert_nonnull(alone);
      g_assert_nonnull(with);
      g_assert_cmpmem(alone->data, i2v_tensor_nbytes(alone), with->data, i2v_tensor_nbytes(with));
    }
  }
  for (int i = 0; i < 3; i++) {
    g_hash_table_unref(jobs[i].dumps);
    i2v_session_free(jobs[i].s);
  }
  i2v_model_unref(m);
  golden_case_close(&k);
}

static void test_concurrent(gconstpointer data) {
  FirstCase first = {data, 0};
  if (have_cuda()) golden_for_each_case(FALSE, concurrent_jobs, &first);
  if (have_cuda()) g_assert_cmpint(first.done, >, 0);
}

/* Registers test fn as /cuda/<what>/<precision> for every precision, or for precision only
 * when it is not NULL (the simulator's time budget). */
static void add_per_precision(const char *what, GTestDataFunc fn, const char *only) {
  for (guint i = 0; i < G_N_ELEMENTS(precisions); i++) {
    if (only != NULL && strcmp(precisions[i].name, only) != 0) continue;
    char *path = g_strdup_printf("/cuda/%s/%s", what, precisions[i].name);
    g_test_add_data_func(path, &precisions[i], fn);
    g_free(path);
  }
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
#ifdef I2V_CUDA_SIM
  /* fp16 (the default) against the CPU, fp32 (the tight check) against the goldens */
  add_per_precision("pipeline", test_pipeline, "fp16");
  add_per_precision("goldens", test_goldens, "fp32");
  add_per_precision("sampler-goldens", test_sampler_goldens, "fp16");
  add_per_precision("sessions-concurrent", test_concurrent, "fp16");
  add_per_precision("memory-strategies", test_memory_strategies, "fp16");
#else
  add_per_precision("sessions-concurrent", test_concurrent, NULL);
  add_per_precision("pipeline", test_pipeline, NULL);
  add_per_precision("goldens", test_goldens, NULL);
  add_per_precision("sampler-goldens", test_sampler_goldens, NULL);
  add_per_precision("realcfg", test_realcfg, NULL);
  add_per_precision("memory-strategies", test_memory_strategies, NULL);
#endif
  g_test_add_func("/cuda/memory-stable", test_memory_stable);
  return g_test_run();
}
