/* The planning device against the simulator (test-cuda-sim-plan, built only against
 * tests/cudasim): for a few small jobs (sizes, frame counts, fp32/fp16, encoders kept/released,
 * both samplers) on the first tiny golden model, i2v_plan_memory's per-stage peaks equal, byte for
 * byte, the peaks the simulator's cudaMalloc counts while the same job really runs on the
 * simulated CUDA backend (cudasim_device_peak read at the same points: after the model load and
 * at every stage end), the session's arena reserved to the plan's need as the element does; and
 * the arena's high-water mark of every stage (the activations) is the same. The plan runs the
 * backend's own code on a counting runtime, so any difference is an allocation one of them makes
 * and the other does not. */
#include <string.h>

#include "golden_case.h"
#include "session.h"
#include "stream.h"

size_t cudasim_device_peak(int reset); /* tests/cudasim/cudart_sim.cpp */

typedef struct {
  int width, height, frames;
  const char *precision;
  gboolean release_encoders;
  I2vSamplerKind sampler;
} Job;

static const Job jobs[] = {
    {16, 16, 2, "fp32", FALSE, I2V_SAMPLER_DDIM},
    {24, 16, 3, "fp16", TRUE, I2V_SAMPLER_DDIM},
    {32, 24, 2, "fp16", FALSE, I2V_SAMPLER_DPMPP_2M},
};

/* The simulator's largest peak and arena high-water mark of a stage's runs. */
typedef struct {
  size_t total, arena_used;
} SimStage;

typedef struct {
  GHashTable *stages; /* name → SimStage (g_free) */
  I2vSession *s;
} Sim;

static void sim_record(Sim *sim, const char *name) {
  SimStage *e = g_hash_table_lookup(sim->stages, name), run = {cudasim_device_peak(1), 0};
  if (sim->s != NULL) {
    size_t capacity, reserved;
    i2v_stream_memory(sim->s->st, TRUE, &run.arena_used, &capacity, &reserved);
  }
  if (e == NULL) g_hash_table_insert(sim->stages, (gpointer)name, e = g_new0(SimStage, 1));
  if (run.total >= e->total) *e = run;
}

static void on_stage(const I2vStage *s, void *user) {
  sim_record(user, s->name);
}

/* The job on the simulated cuda:0, the arena reserved to `reserve` bytes: stage → SimStage
 * ("load" included). */
static GHashTable *simulate(const I2vModelOptions *mo, const I2vImage *image, const I2vParams *p,
                            size_t reserve) {
  Sim sim = {g_hash_table_new_full(g_str_hash, g_str_equal, NULL, g_free), NULL};
  GError *err = NULL;
  cudasim_device_peak(1);
  I2vModel *m = i2v_model_load(mo, &err);
  g_assert_no_error(err);
  sim_record(&sim, "load");
  sim.s = i2v_session_new(m, &err);
  g_assert_no_error(err);
  i2v_session_reserve(sim.s, reserve);
  I2vCallbacks cb = {.stage = on_stage, .user = &sim};
  g_assert_true(i2v_generate(sim.s, image, p, &cb, NULL, &err));
  g_assert_no_error(err);
  i2v_session_free(sim.s);
  i2v_model_unref(m);
  return sim.stages;
}

static void compare_jobs(const char *set, JsonNode *manifest, JsonObject *c, void *user) {
  int *done = user;
  if ((*done)++ > 0) return;
  GoldenCase k;
  golden_case_open(&k, set, manifest, c);
  k.mo.device = "cuda:0";
  k.p.steps = 2;
  k.p.init_latents = k.p.vae_posterior_noise = NULL; /* seeded noise of each job's size */
  for (guint j = 0; j < G_N_ELEMENTS(jobs); j++) {
    const Job *job = &jobs[j];
    k.mo.precision = job->precision;
    k.mo.release_encoders = job->release_encoders;
    k.p.width = job->width, k.p.height = job->height, k.p.frames = job->frames;
    k.p.sampler = job->sampler;
    I2vMemoryPlan plan;
    GError *err = NULL;
    g_assert_true(i2v_plan_memory(&k.mo, &k.p, &plan, &err));
    g_assert_no_error(err);
    GHashTable *sim = simulate(&k.mo, &k.image, &k.p, plan.arena_need);
    g_assert_cmpint(plan.n_stages, ==, g_hash_table_size(sim));
    size_t peak = 0;
    for (int i = 0; i < plan.n_stages; i++) {
      const I2vPlanStage *e = &plan.stages[i];
      const SimStage *got = g_hash_table_lookup(sim, e->name);
      g_assert_nonnull(got);
      g_test_message("%dx%dx%d %s%s %s: %s planned %zu, simulated %zu; activations planned %zu, "
                     "simulated %zu (weights %zu, arena %zu, workspaces %zu)",
                     job->width, job->height, job->frames, job->precision,
                     job->release_encoders ? " released" : "", i2v_sampler_name(job->sampler),
                     e->name, e->total, got->total, e->arena_used, got->arena_used, e->weights,
                     e->arena, e->workspaces);
      g_assert_cmpuint(e->total, ==, got->total);
      g_assert_cmpuint(e->arena_used, ==, got->arena_used);
      g_assert_cmpuint(e->total, >, 0);
      peak = MAX(peak, e->total);
    }
    g_assert_cmpuint(plan.peak, ==, peak);
    g_hash_table_unref(sim);
  }
  golden_case_close(&k);
}

static void test_plan_equals_simulator(void) {
  int done = 0;
  golden_for_each_case(FALSE, compare_jobs, &done);
  g_assert_cmpint(done, >, 0);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/cuda/plan/equals-simulator", test_plan_equals_simulator);
  return g_test_run();
}
