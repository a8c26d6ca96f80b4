/* What this server offers, read once at start: the i2vgen element's presets (GstPreset, from
 * presets/ and the user's own) with the values they set, the range of every request field (the
 * element's property ranges narrowed by the server's limits), the model's size multiple, and
 * the LoRA allow-list folder. GET /v1/capabilities serves it so that clients (the web page)
 * take presets and limits from the server instead of repeating them. Read-only after creation:
 * safe from any thread. */
#pragma once

#include <glib.h>
#include <i2v/i2v.h>

G_BEGIN_DECLS

typedef struct {
  char *name, *description;
  guint width, height, num_frames, fps, steps;
  I2vSamplerKind sampler;
  double guidance_scale, motion_strength;
} ServePreset;

typedef struct {
  guint min, max;
} UintRange;

typedef struct {
  double min, max;
} DoubleRange;

/* The server's own limits and choices (command-line options). */
typedef struct {
  guint max_size, max_frames, max_steps; /* per side; per clip; per job */
  guint64 max_pixels;                    /* of a decoded input image */
  gsize max_upload;                      /* bytes of a request body */
  guint max_queued;
  const char *default_preset;
  const char *lora_dir; /* NULL: no LoRA offered */
  const char *model_name;
  guint size_multiple; /* of the loaded model */
} ServeLimits;

typedef struct {
  char *model_name, *lora_dir, *default_preset;
  GPtrArray *presets;  /* ServePreset*, by name */
  guint size_multiple; /* the model's, made even for the H.264 encoder */
  UintRange size, num_frames, fps, steps, interpolate;
  DoubleRange guidance_scale, motion_strength, lora_scale;
  guint64 max_pixels;
  gsize max_upload, max_prompt_bytes;
  guint max_queued;
} ServeCatalog;

/* Reads the presets and property ranges of the i2vgen and i2vinterp elements and applies the
 * limits; an error when the default preset does not exist (naming those that do). */
ServeCatalog *serve_catalog_new(const ServeLimits *limits, GError **error);

/* Frees c (NULL allowed). */
void serve_catalog_free(ServeCatalog *c);

/* The preset called name, or NULL; owned by c. */
const ServePreset *serve_catalog_preset(const ServeCatalog *c, const char *name);

/* The names of the allow-list folder's LoRA files (NAME.safetensors), sorted; read at each call
 * so files can be added while the server runs. A new NULL-terminated array (g_strfreev). */
char **serve_catalog_loras(const ServeCatalog *c);

/* The capabilities document (model, presets, samplers, limits, LoRA names, image formats);
 * g_free. */
char *serve_catalog_to_json(const ServeCatalog *c);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ServeCatalog, serve_catalog_free)

G_END_DECLS
