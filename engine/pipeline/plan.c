/* Memory plans (i2v_plan_memory): a job run on the planning device plan:cuda, its counters read
 * at the end of the model load and of every stage. */
#include <string.h>

#include "plan_device.h"
#include <i2v/error.h>
#include "session.h"
#include "stream.h"

/* A plan in progress: the stage callback's state. */
typedef struct {
  I2vMemoryPlan *plan;
  I2vSession *s;
  size_t base; /* bytes on the fake device before the plan (a model a process runs on it) */
} Planning;

/* The entry for stage `name` (a static string), added on its first run. */
static I2vPlanStage *stage_entry(I2vMemoryPlan *plan, const char *name) {
  for (int i = 0; i < plan->n_stages; i++)
    if (strcmp(plan->stages[i].name, name) == 0) return &plan->stages[i];
  g_assert(plan->n_stages < I2V_PLAN_MAX_STAGES);
  I2vPlanStage *e = &plan->stages[plan->n_stages++];
  *e = (I2vPlanStage){.name = name};
  return e;
}

/* Reads the counters since the last record into the entry of `name`, keeping its largest run,
 * and starts every high-water mark again. */
static void record(I2vMemoryPlan *plan, size_t base, const char *name, I2vBackend *be,
                   I2vStream *st) {
  I2vPlanStage run = {.name = name, .total = i2v_plan_device_peak(TRUE) - base};
  run.weights = i2v_backend_persistent_peak(be);
  i2v_backend_persistent_peak_reset(be);
  if (st != NULL) i2v_stream_memory(st, TRUE, &run.arena_used, &run.arena, &run.workspaces);
  I2vPlanStage *e = stage_entry(plan, name);
  run.runs = e->runs + 1;
  if (run.total >= e->total) *e = run;
  e->runs = run.runs;
  plan->peak = MAX(plan->peak, run.total);
}

static void on_stage(const I2vStage *stage, void *user) {
  Planning *pl = user;
  record(pl->plan, pl->base, stage->name, pl->s->m->be, pl->s->st);
}

/* One run of p's job on the planning device, the session's arena reserved to `reserve` bytes
 * first (0: grown on demand). */
static gboolean plan_run(const I2vModelOptions *opts, const I2vParams *p, size_t reserve,
                         I2vMemoryPlan *plan, GError **error) {
  memset(plan, 0, sizeof *plan);
  I2vModelOptions o = *opts;
  o.device = "plan:cuda";
  i2v_plan_device_reset(I2V_PLAN_DEVICE_BYTES);
  size_t base = i2v_plan_device_used();
  I2vModel *m = i2v_model_load_uncached(&o, error);
  I2vSession *s = NULL;
  gboolean ok = m != NULL;
  if (ok) {
    record(plan, base, "load", m->be, NULL);
    ok = (s = i2v_session_new(m, error)) != NULL;
  }
  if (ok) i2v_session_reserve(s, reserve);
  if (ok) {
    I2vImage image = i2v_image_new(p->width, p->height);
    Planning pl = {plan, s, base};
    I2vCallbacks cb = {.stage = on_stage, .user = &pl};
    ok = i2v_generate(s, &image, p, &cb, NULL, error);
    i2v_image_clear(&image);
  }
  i2v_session_free(s);
  i2v_model_unref(m);
  return ok;
}

/* What a plan depends on: the model's shapes (directory or formula, variant, precision, LoRA,
 * released encoders) and every parameter that sizes a buffer. Prompts (always padded to the
 * tokenizer's length), seed and fps size nothing. A new string. */
static char *plan_key(const I2vModelOptions *o, const I2vParams *p) {
  return g_strdup_printf("%s|%s|%s|%d|%s|%d|%dx%dx%d|%d|%d|%d|%g|%g|%d|%d|%d|%d|%d",
                         o->path ? o->path : "", o->variant ? o->variant : "",
                         o->precision ? o->precision : "", o->formula_weights,
                         o->lora ? o->lora : "", o->release_encoders, p->width, p->height,
                         p->frames, p->steps, (int)p->sampler, p->decode_chunk_size, p->guidance,
                         p->motion_strength, p->sequential_guidance, p->attention_chunk,
                         p->decode_tile, p->decode_tile_overlap, p->init_latents != NULL);
}

/* Plans already made in this process, by plan_key: a service or an element plans every job, and
 * most jobs repeat a few sizes; a plan takes seconds at real sizes. Bounded: emptied when full. */
#define PLAN_MEMO_MAX 64

gboolean i2v_plan_memory(const I2vModelOptions *opts, const I2vParams *p, I2vMemoryPlan *plan,
                         GError **error) {
  static GMutex one_plan; /* the fake device, its counters and the memo are the process's */
  static GHashTable *memo;
  memset(plan, 0, sizeof *plan);
  if (!i2v_params_validate(NULL, p, error)) return FALSE;
  char *key = plan_key(opts, p);
  g_mutex_lock(&one_plan);
  if (memo == NULL) memo = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  const I2vMemoryPlan *known = g_hash_table_lookup(memo, key);
  if (known != NULL) {
    *plan = *known;
    g_mutex_unlock(&one_plan);
    g_free(key);
    return TRUE;
  }
  /* the need: the arena's high-water mark from the UNet's preparation on (where a reservation
   * applies) in one chunk larger than any job */
  gboolean ok = plan_run(opts, p, I2V_PLAN_DEVICE_BYTES / 4, plan, error);
  size_t need = 0;
  gboolean reserved = FALSE;
  for (int i = 0; ok && i < plan->n_stages; i++) {
    reserved = reserved || strcmp(plan->stages[i].name, "unet_prepare") == 0;
    if (reserved) need = MAX(need, plan->stages[i].arena_used);
  }
  ok = ok && plan_run(opts, p, need, plan, error);
  plan->arena_need = need;
  if (ok) {
    if (g_hash_table_size(memo) >= PLAN_MEMO_MAX) g_hash_table_remove_all(memo);
    g_hash_table_insert(memo, key, g_memdup2(plan, sizeof *plan));
  } else {
    g_free(key);
  }
  g_mutex_unlock(&one_plan);
  return ok;
}

/* The option sets i2v_plan_fit tries: each adds the next option of I2vSaving. */
static const guint saving_sets[] = {
    0,
    I2V_SAVING_RELEASE_ENCODERS,
    I2V_SAVING_RELEASE_ENCODERS | I2V_SAVING_SEQUENTIAL_GUIDANCE,
    I2V_SAVING_RELEASE_ENCODERS | I2V_SAVING_SEQUENTIAL_GUIDANCE | I2V_SAVING_ATTENTION_CHUNK,
    I2V_SAVING_RELEASE_ENCODERS | I2V_SAVING_SEQUENTIAL_GUIDANCE | I2V_SAVING_ATTENTION_CHUNK |
        I2V_SAVING_DECODE_TILE,
};

char *i2v_saving_names(guint saving) {
  static const char *const names[] = {"release-encoders", "sequential-guidance",
                                      "attention-chunk=1",
                                      "decode-tile=" G_STRINGIFY(I2V_DECODE_TILE_AUTO)};
  GString *s = g_string_new(NULL);
  for (guint i = 0; i < G_N_ELEMENTS(names); i++)
    if (saving & (1u << i)) g_string_append_printf(s, "%s%s", s->len ? "," : "", names[i]);
  return g_string_free(s, FALSE);
}

void i2v_saving_apply(guint saving, I2vModelOptions *opts, I2vParams *p) {
  if (saving & I2V_SAVING_RELEASE_ENCODERS) opts->release_encoders = TRUE;
  if (saving & I2V_SAVING_SEQUENTIAL_GUIDANCE) p->sequential_guidance = TRUE;
  if (saving & I2V_SAVING_ATTENTION_CHUNK) p->attention_chunk = 1;
  if ((saving & I2V_SAVING_DECODE_TILE) && p->decode_tile == 0) /* -1: the user said never */
    p->decode_tile = I2V_DECODE_TILE_AUTO;
}

/* The options of I2vSaving that opts and p have on already (as i2v_saving_apply would set them,
 * or as the user chose: tiles never). */
static guint saving_on(const I2vModelOptions *opts, const I2vParams *p) {
  return (opts->release_encoders ? I2V_SAVING_RELEASE_ENCODERS : 0) |
         (p->sequential_guidance ? I2V_SAVING_SEQUENTIAL_GUIDANCE : 0) |
         (p->attention_chunk == 1 ? I2V_SAVING_ATTENTION_CHUNK : 0) |
         (p->decode_tile != 0 ? I2V_SAVING_DECODE_TILE : 0);
}

gboolean i2v_plan_fit(const I2vModelOptions *opts, const I2vParams *p, size_t budget, guint *saving,
                      I2vMemoryPlan *plan, GError **error) {
  I2vMemoryPlan best = {0};
  guint on = saving_on(opts, p), last = G_MAXUINT;
  for (guint i = 0; i < G_N_ELEMENTS(saving_sets); i++) {
    guint added = saving_sets[i] & ~on;
    if (added == last) continue; /* the same job as the set before */
    last = added;
    I2vModelOptions o = *opts;
    I2vParams q = *p;
    i2v_saving_apply(added, &o, &q);
    if (!i2v_plan_memory(&o, &q, plan, error)) return FALSE;
    if (plan->peak <= budget) {
      *saving = added;
      return TRUE;
    }
    if (i == 0 || plan->peak < best.peak) best = *plan;
  }
  *plan = best;
  g_set_error(error, I2V_ERROR, I2V_ERROR_NO_MEMORY,
              "the job needs %zu bytes (%.2f GiB) of device memory at least, with every "
              "memory-saving option, and the budget is %zu bytes (%.2f GiB)",
              best.peak, best.peak / 1073741824.0, budget, budget / 1073741824.0);
  return FALSE;
}
