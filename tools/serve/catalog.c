/* The server's catalog: presets and limits from the elements and the options. */
#include "catalog.h"

#include <gst/gst.h>
#include <json-glib/json-glib.h>
#include <string.h>

static void preset_free(ServePreset *p) {
  g_free(p->name);
  g_free(p->description);
  g_free(p);
}

/* The values an i2vgen element has after loading preset name onto its defaults. */
static ServePreset *read_preset(const char *name) {
  GstElement *e = gst_object_ref_sink(gst_element_factory_make("i2vgen", NULL));
  ServePreset *p = g_new0(ServePreset, 1);
  p->name = g_strdup(name);
  gst_preset_load_preset(GST_PRESET(e), name);
  gst_preset_get_meta(GST_PRESET(e), name, "comment", &p->description);
  g_object_get(e, "width", &p->width, "height", &p->height, "num-frames", &p->num_frames, "fps",
               &p->fps, "steps", &p->steps, "guidance-scale", &p->guidance_scale, "motion-strength",
               &p->motion_strength, "sampler", &p->sampler, NULL);
  gst_object_unref(e);
  return p;
}

/* The range of an unsigned property of e, its maximum lowered to limit (0: no limit). */
static UintRange uint_range(GstElement *e, const char *property, guint limit) {
  GParamSpecUInt *ps =
      G_PARAM_SPEC_UINT(g_object_class_find_property(G_OBJECT_GET_CLASS(e), property));
  UintRange r = {ps->minimum, ps->maximum};
  if (limit > 0 && limit < r.max) r.max = limit;
  return r;
}

static DoubleRange double_range(GstElement *e, const char *property) {
  GParamSpecDouble *ps =
      G_PARAM_SPEC_DOUBLE(g_object_class_find_property(G_OBJECT_GET_CLASS(e), property));
  return (DoubleRange){ps->minimum, ps->maximum};
}

ServeCatalog *serve_catalog_new(const ServeLimits *limits, GError **error) {
  g_autoptr(ServeCatalog) c = g_new0(ServeCatalog, 1);
  c->model_name = g_strdup(limits->model_name);
  c->lora_dir = g_strdup(limits->lora_dir);
  c->default_preset = g_strdup(limits->default_preset);
  c->presets = g_ptr_array_new_with_free_func((GDestroyNotify)preset_free);
  GstElement *gen = gst_element_factory_make("i2vgen", NULL);
  GstElement *interp = gst_element_factory_make("i2vinterp", NULL);
  if (gen == NULL || interp == NULL) {
    g_set_error(error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
                "the i2vgen plugin is not found (set GST_PLUGIN_PATH to build/gst or install it)");
    g_clear_pointer(&gen, gst_object_unref);
    g_clear_pointer(&interp, gst_object_unref);
    return NULL;
  }
  gst_object_ref_sink(gen);
  gst_object_ref_sink(interp);
  g_auto(GStrv) names = gst_preset_get_preset_names(GST_PRESET(gen));
  for (char **n = names; n != NULL && *n != NULL; n++) g_ptr_array_add(c->presets, read_preset(*n));
  /* the clips are H.264 4:2:0 in MP4: x264enc refuses odd sides and mp4mux sides under 16, so
   * the server asks for even sides from 16 up (the real model's multiple of 8 already is) */
  guint multiple = MAX(limits->size_multiple, 1);
  c->size_multiple = multiple % 2 == 0 ? multiple : 2 * multiple;
  c->size = uint_range(gen, "width", limits->max_size);
  c->size.min = MAX(c->size.min, 16);
  c->num_frames = uint_range(gen, "num-frames", limits->max_frames);
  c->fps = uint_range(gen, "fps", 0);
  c->steps = uint_range(gen, "steps", limits->max_steps);
  c->interpolate = uint_range(interp, "factor", 0);
  c->guidance_scale = double_range(gen, "guidance-scale");
  c->motion_strength = double_range(gen, "motion-strength");
  c->lora_scale = (DoubleRange){0, 2};
  c->max_pixels = limits->max_pixels;
  c->max_upload = limits->max_upload;
  c->max_prompt_bytes = 2000; /* CLIP reads 75 tokens; this bounds what a request may carry */
  c->max_queued = limits->max_queued;
  gst_object_unref(gen);
  gst_object_unref(interp);
  if (serve_catalog_preset(c, c->default_preset) == NULL) {
    g_autofree char *list = g_strjoinv(", ", names);
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                "--default-preset '%s': no such preset of the i2vgen element (presets: %s)",
                c->default_preset, names ? list : "none installed; set GST_PRESET_PATH");
    return NULL;
  }
  return g_steal_pointer(&c);
}

void serve_catalog_free(ServeCatalog *c) {
  if (c == NULL) return;
  g_free(c->model_name);
  g_free(c->lora_dir);
  g_free(c->default_preset);
  if (c->presets != NULL) g_ptr_array_unref(c->presets);
  g_free(c);
}

const ServePreset *serve_catalog_preset(const ServeCatalog *c, const char *name) {
  for (guint i = 0; i < c->presets->len; i++) {
    const ServePreset *p = g_ptr_array_index(c->presets, i);
    if (g_strcmp0(p->name, name) == 0) return p;
  }
  return NULL;
}

/* A LoRA name is a plain file name: letters, digits, '.', '_', '-', not starting with '.'. */
static gboolean lora_name_ok(const char *name) {
  if (*name == '\0' || *name == '.') return FALSE;
  for (const char *c = name; *c; c++)
    if (!g_ascii_isalnum(*c) && *c != '.' && *c != '_' && *c != '-') return FALSE;
  return TRUE;
}

static int compare_names(gconstpointer a, gconstpointer b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

char **serve_catalog_loras(const ServeCatalog *c) {
  g_autoptr(GPtrArray) names = g_ptr_array_new();
  GDir *dir = c->lora_dir ? g_dir_open(c->lora_dir, 0, NULL) : NULL;
  const char *file;
  while (dir != NULL && (file = g_dir_read_name(dir)) != NULL) {
    if (!g_str_has_suffix(file, ".safetensors")) continue;
    char *name = g_strndup(file, strlen(file) - strlen(".safetensors"));
    if (lora_name_ok(name))
      g_ptr_array_add(names, name);
    else
      g_free(name);
  }
  if (dir != NULL) g_dir_close(dir);
  g_ptr_array_sort(names, compare_names);
  g_ptr_array_add(names, NULL);
  return (char **)g_ptr_array_free(g_steal_pointer(&names), FALSE);
}

/* {"min": min, "max": max}: integers for the integer fields, numbers for the others. */
static void add_range(JsonBuilder *b, const char *name, double min, double max, gboolean integer) {
  const char *ends[2] = {"min", "max"};
  double values[2] = {min, max};
  json_builder_set_member_name(b, name);
  json_builder_begin_object(b);
  for (int i = 0; i < 2; i++) {
    json_builder_set_member_name(b, ends[i]);
    if (integer)
      json_builder_add_int_value(b, (gint64)values[i]);
    else
      json_builder_add_double_value(b, values[i]);
  }
  json_builder_end_object(b);
}

static void add_uint_range(JsonBuilder *b, const char *name, UintRange r) {
  add_range(b, name, r.min, r.max, TRUE);
}

static void add_double_range(JsonBuilder *b, const char *name, DoubleRange r) {
  add_range(b, name, r.min, r.max, FALSE);
}

static void add_int(JsonBuilder *b, const char *name, gint64 v) {
  json_builder_set_member_name(b, name);
  json_builder_add_int_value(b, v);
}

static void add_preset(JsonBuilder *b, const ServePreset *p, const ServeCatalog *c) {
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "name");
  json_builder_add_string_value(b, p->name);
  json_builder_set_member_name(b, "description");
  json_builder_add_string_value(b, p->description ? p->description : "");
  g_autofree char *size = g_strdup_printf("%ux%u", p->width, p->height);
  json_builder_set_member_name(b, "size");
  json_builder_add_string_value(b, size);
  add_int(b, "num_frames", p->num_frames);
  add_int(b, "fps", p->fps);
  add_int(b, "steps", p->steps);
  json_builder_set_member_name(b, "sampler");
  json_builder_add_string_value(b, i2v_sampler_name(p->sampler));
  json_builder_set_member_name(b, "guidance_scale");
  json_builder_add_double_value(b, p->guidance_scale);
  json_builder_set_member_name(b, "motion_strength");
  json_builder_add_double_value(b, p->motion_strength);
  /* a preset above this server's limits is listed, but requests using it need smaller values */
  json_builder_set_member_name(b, "within_limits");
  json_builder_add_boolean_value(b, MAX(p->width, p->height) <= c->size.max &&
                                        p->num_frames <= c->num_frames.max &&
                                        p->steps <= c->steps.max);
  json_builder_end_object(b);
}

char *serve_catalog_to_json(const ServeCatalog *c) {
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "object");
  json_builder_add_string_value(b, "capabilities");
  json_builder_set_member_name(b, "model");
  json_builder_add_string_value(b, c->model_name);
  json_builder_set_member_name(b, "default_preset");
  json_builder_add_string_value(b, c->default_preset);
  json_builder_set_member_name(b, "presets");
  json_builder_begin_array(b);
  for (guint i = 0; i < c->presets->len; i++) add_preset(b, g_ptr_array_index(c->presets, i), c);
  json_builder_end_array(b);
  json_builder_set_member_name(b, "samplers"); /* the values of a request's sampler field */
  json_builder_begin_array(b);
  for (int k = 0; k < I2V_SAMPLER_COUNT; k++) json_builder_add_string_value(b, i2v_sampler_name(k));
  json_builder_end_array(b);
  json_builder_set_member_name(b, "limits");
  json_builder_begin_object(b);
  add_uint_range(b, "size", c->size); /* each of width and height */
  add_int(b, "size_multiple", c->size_multiple);
  add_uint_range(b, "num_frames", c->num_frames);
  add_uint_range(b, "fps", c->fps);
  add_uint_range(b, "steps", c->steps);
  add_uint_range(b, "interpolate", c->interpolate);
  add_double_range(b, "guidance_scale", c->guidance_scale);
  add_double_range(b, "motion_strength", c->motion_strength);
  add_double_range(b, "lora_scale", c->lora_scale);
  add_int(b, "prompt_bytes", (gint64)c->max_prompt_bytes);
  add_int(b, "upload_bytes", (gint64)c->max_upload);
  add_int(b, "image_pixels", (gint64)c->max_pixels);
  add_int(b, "max_queued", c->max_queued);
  json_builder_end_object(b);
  json_builder_set_member_name(b, "loras");
  json_builder_begin_array(b);
  g_auto(GStrv) loras = serve_catalog_loras(c);
  for (char **n = loras; *n != NULL; n++) json_builder_add_string_value(b, *n);
  json_builder_end_array(b);
  json_builder_set_member_name(b, "image_formats");
  json_builder_begin_array(b);
  json_builder_add_string_value(b, "image/png");
  json_builder_add_string_value(b, "image/jpeg");
  json_builder_add_string_value(b, "image/webp");
  json_builder_end_array(b);
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  return json_to_string(root, TRUE);
}
