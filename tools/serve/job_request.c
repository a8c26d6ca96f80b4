/* Request fields → job parameters, checked against the catalog. */
#include "job_request.h"

#include <math.h>
#include <string.h>
#include <sys/random.h>

const char *const job_request_fields[] = {
    "prompt", "negative_prompt", "model",          "seconds", "size",
    "preset", "steps",           "guidance_scale", "seed",    "num_frames",
    "fps",    "motion_strength", "interpolate",    "lora",    "sampler",
    NULL,
};

static gboolean bad_value(ApiError **err, const char *field, const char *value,
                          const char *expected) {
  api_error_set(err, 400, "invalid_value", field, "%s '%s': expected %s", field, value, expected);
  return FALSE;
}

/* An integer field within r; *out unchanged when the field is absent. */
static gboolean parse_uint(GHashTable *fields, const char *name, UintRange r, guint *out,
                           ApiError **err) {
  const char *v = g_hash_table_lookup(fields, name);
  if (v == NULL) return TRUE;
  guint64 n;
  if (!g_ascii_string_to_unsigned(v, 10, r.min, r.max, &n, NULL)) {
    g_autofree char *range =
        g_strdup_printf("an integer from %u to %u (this server's range)", r.min, r.max);
    return bad_value(err, name, v, range);
  }
  *out = (guint)n;
  return TRUE;
}

/* A finite decimal number (text); FALSE when v is not one. */
static gboolean to_double(const char *v, double *out) {
  char *end;
  *out = g_ascii_strtod(v, &end);
  return *v != '\0' && *end == '\0' && isfinite(*out);
}

static gboolean parse_double(GHashTable *fields, const char *name, DoubleRange r, double *out,
                             ApiError **err) {
  const char *v = g_hash_table_lookup(fields, name);
  if (v == NULL) return TRUE;
  double d;
  if (!to_double(v, &d) || d < r.min || d > r.max) {
    g_autofree char *range = g_strdup_printf("a number from %g to %g", r.min, r.max);
    return bad_value(err, name, v, range);
  }
  *out = d;
  return TRUE;
}

/* size "WxH": each side within the catalog's range and a multiple of its size factor. */
static gboolean check_size(const ServeCatalog *c, guint w, guint h, const char *text,
                           ApiError **err) {
  if (w >= c->size.min && w <= c->size.max && h >= c->size.min && h <= c->size.max &&
      w % c->size_multiple == 0 && h % c->size_multiple == 0)
    return TRUE;
  g_autofree char *expected = g_strdup_printf(
      "WIDTHxHEIGHT with each side from %u to %u and a multiple of %u (the model's size "
      "factor, even for the H.264 encoder)",
      c->size.min, c->size.max, c->size_multiple);
  return bad_value(err, "size", text, expected);
}

static gboolean parse_size(const ServeCatalog *c, GHashTable *fields, JobParams *p,
                           ApiError **err) {
  const char *v = g_hash_table_lookup(fields, "size");
  if (v == NULL) {
    g_autofree char *text =
        g_strdup_printf("%ux%u (from preset %s)", p->width, p->height, p->preset);
    return check_size(c, p->width, p->height, text, err);
  }
  g_auto(GStrv) parts = g_strsplit_set(v, "xX", 3);
  guint64 w, h;
  if (g_strv_length(parts) != 2 ||
      !g_ascii_string_to_unsigned(parts[0], 10, 1, G_MAXUINT, &w, NULL) ||
      !g_ascii_string_to_unsigned(parts[1], 10, 1, G_MAXUINT, &h, NULL))
    return check_size(c, 0, 0, v, err);
  p->width = (guint)w;
  p->height = (guint)h;
  return check_size(c, p->width, p->height, v, err);
}

/* num_frames, or seconds × fps, or the preset's; see job_request.h. */
static gboolean reconcile_frames(const ServeCatalog *c, GHashTable *fields, JobParams *p,
                                 ApiError **err) {
  const char *seconds = g_hash_table_lookup(fields, "seconds");
  gboolean have_frames = g_hash_table_contains(fields, "num_frames");
  if (!parse_uint(fields, "num_frames", c->num_frames, &p->num_frames, err)) return FALSE;
  double s = 0;
  if (seconds != NULL && (!to_double(seconds, &s) || s <= 0))
    return bad_value(err, "seconds", seconds, "a positive number of seconds");
  if (seconds != NULL && have_frames) {
    if (fabs(s * p->fps - p->num_frames) > 0.5) {
      api_error_set(err, 400, "invalid_value", "seconds",
                    "seconds '%s' disagrees with num_frames %u at fps %u (%g s): give one of them, "
                    "or both consistent",
                    seconds, p->num_frames, p->fps, (double)p->num_frames / p->fps);
      return FALSE;
    }
  } else if (seconds != NULL) {
    double frames = round(s * p->fps);
    if (frames < c->num_frames.min || frames > c->num_frames.max) {
      g_autofree char *expected = g_strdup_printf(
          "from %g to %g seconds at fps %u (%u to %u frames)", (double)c->num_frames.min / p->fps,
          (double)c->num_frames.max / p->fps, p->fps, c->num_frames.min, c->num_frames.max);
      return bad_value(err, "seconds", seconds, expected);
    }
    p->num_frames = (guint)frames;
  } else if (p->num_frames > c->num_frames.max) {
    g_autofree char *text = g_strdup_printf("%u (from preset %s)", p->num_frames, p->preset);
    g_autofree char *expected =
        g_strdup_printf("from %u to %u frames", c->num_frames.min, c->num_frames.max);
    return bad_value(err, "num_frames", text, expected);
  }
  return TRUE;
}

static gboolean parse_lora(const ServeCatalog *c, GHashTable *fields, JobParams *p,
                           ApiError **err) {
  const char *v = g_hash_table_lookup(fields, "lora");
  if (v == NULL || *v == '\0') return TRUE;
  g_auto(GStrv) parts = g_strsplit(v, ":", 2);
  g_auto(GStrv) names = serve_catalog_loras(c);
  if (!g_strv_contains((const char *const *)names, parts[0])) {
    g_autofree char *list = g_strjoinv(", ", names);
    g_autofree char *expected =
        g_strdup_printf("NAME or NAME:SCALE with a NAME of this server's LoRA folder (%s)",
                        c->lora_dir == NULL ? "none: the server has no --lora-dir"
                        : *names            ? list
                                            : "empty");
    return bad_value(err, "lora", v, expected);
  }
  p->lora = g_strdup(parts[0]);
  p->lora_scale = 1;
  if (parts[1] != NULL) {
    double s;
    if (!to_double(parts[1], &s) || s < c->lora_scale.min || s > c->lora_scale.max) {
      g_autofree char *expected =
          g_strdup_printf("a scale after ':' from %g to %g", c->lora_scale.min, c->lora_scale.max);
      return bad_value(err, "lora", v, expected);
    }
    p->lora_scale = s;
  }
  return TRUE;
}

/* Text fields: valid UTF-8 up to the catalog's length. */
static gboolean parse_text(const ServeCatalog *c, GHashTable *fields, const char *name,
                           gboolean required, char **out, ApiError **err) {
  const char *v = g_hash_table_lookup(fields, name);
  if (v == NULL && required) {
    api_error_set(err, 400, "missing_field", name, "%s is required: what the video should show",
                  name);
    return FALSE;
  }
  if (v == NULL) return TRUE;
  if (!g_utf8_validate(v, -1, NULL) || strlen(v) > c->max_prompt_bytes) {
    g_autofree char *expected =
        g_strdup_printf("UTF-8 text of at most %" G_GSIZE_FORMAT " bytes", c->max_prompt_bytes);
    api_error_set(err, 400, "invalid_value", name, "%s: expected %s", name, expected);
    return FALSE;
  }
  *out = g_strdup(v);
  return TRUE;
}

static gboolean check_known(const ServeCatalog *c, GHashTable *fields, ApiError **err) {
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init(&it, fields);
  while (g_hash_table_iter_next(&it, &key, &value))
    if (!g_strv_contains(job_request_fields, key)) {
      g_autofree char *list = g_strjoinv(", ", (char **)job_request_fields);
      api_error_set(err, 400, "unknown_field", key,
                    "unknown field '%s': expected input_reference and any of %s", (char *)key,
                    list);
      return FALSE;
    }
  const char *model = g_hash_table_lookup(fields, "model");
  if (model != NULL && strcmp(model, c->model_name) != 0) {
    api_error_set(err, 400, "invalid_value", "model", "model '%s': this server generates with '%s'",
                  model, c->model_name);
    return FALSE;
  }
  return TRUE;
}

/* sampler: a name i2v_sampler_parse reads; *out unchanged when the field is absent. */
static gboolean parse_sampler(GHashTable *fields, I2vSamplerKind *out, ApiError **err) {
  const char *v = g_hash_table_lookup(fields, "sampler");
  if (v == NULL || i2v_sampler_parse(v, out, NULL)) return TRUE;
  GString *names = g_string_new("one of ");
  for (int k = 0; k < I2V_SAMPLER_COUNT; k++)
    g_string_append_printf(names, "%s%s", k ? ", " : "", i2v_sampler_name(k));
  gboolean ok = bad_value(err, "sampler", v, names->str);
  g_string_free(names, TRUE);
  return ok;
}

gboolean job_request_parse(const ServeCatalog *c, GHashTable *fields, JobParams *p,
                           ApiError **err) {
  memset(p, 0, sizeof(*p));
  if (!check_known(c, fields, err)) return FALSE;
  const char *name = g_hash_table_lookup(fields, "preset");
  const ServePreset *preset = serve_catalog_preset(c, name ? name : c->default_preset);
  if (preset == NULL) {
    GString *list = g_string_new(NULL);
    for (guint i = 0; i < c->presets->len; i++)
      g_string_append_printf(list, "%s%s", i ? ", " : "",
                             ((ServePreset *)g_ptr_array_index(c->presets, i))->name);
    g_autofree char *expected = g_strdup_printf("one of %s", list->str);
    g_string_free(list, TRUE);
    return bad_value(err, "preset", name, expected);
  }
  p->preset = g_strdup(preset->name);
  p->width = preset->width;
  p->height = preset->height;
  p->num_frames = preset->num_frames;
  p->fps = preset->fps;
  p->steps = preset->steps;
  p->sampler = preset->sampler;
  p->guidance_scale = preset->guidance_scale;
  p->motion_strength = preset->motion_strength;
  p->interpolate = 1;
  guint64 seed;
  if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) seed = g_get_real_time();
  p->seed = seed; /* kept with the job: a retry makes the same clip */
  const char *seed_text = g_hash_table_lookup(fields, "seed");
  gboolean ok =
      parse_text(c, fields, "prompt", TRUE, &p->prompt, err) &&
      parse_text(c, fields, "negative_prompt", FALSE, &p->negative_prompt, err) &&
      parse_size(c, fields, p, err) && parse_uint(fields, "fps", c->fps, &p->fps, err) &&
      parse_uint(fields, "interpolate", c->interpolate, &p->interpolate, err) &&
      parse_double(fields, "guidance_scale", c->guidance_scale, &p->guidance_scale, err) &&
      parse_double(fields, "motion_strength", c->motion_strength, &p->motion_strength, err) &&
      reconcile_frames(c, fields, p, err) && parse_lora(c, fields, p, err) &&
      parse_sampler(fields, &p->sampler, err);
  if (ok && !parse_uint(fields, "steps", c->steps, &p->steps, err)) ok = FALSE;
  if (ok && !g_hash_table_contains(fields, "steps") && p->steps > c->steps.max) {
    g_autofree char *text = g_strdup_printf("%u (from preset %s)", p->steps, p->preset);
    g_autofree char *expected = g_strdup_printf("from %u to %u", c->steps.min, c->steps.max);
    ok = bad_value(err, "steps", text, expected);
  }
  if (ok && seed_text != NULL &&
      !g_ascii_string_to_unsigned(seed_text, 10, 0, G_MAXUINT64, &p->seed, NULL))
    ok = bad_value(err, "seed", seed_text, "an integer from 0 to 18446744073709551615");
  if (!ok) job_params_clear(p);
  return ok;
}
