/* Conditioning of a prompt set and an input image, as diffusers' I2VGenXLPipeline computes it. */
#include "conditioning.h"

#include <i2v/error.h>

#define FEATURE_EXTRACTOR_FILE "preprocessor_config.json"

/* Three numbers of array key (image_mean / image_std) into out. */
static gboolean config_float3(JsonObject *cfg, const char *file, const char *key, float out[3],
                              GError **error) {
  JsonNode *node = json_object_get_member(cfg, key);
  JsonArray *arr = node != NULL && JSON_NODE_HOLDS_ARRAY(node) ? json_node_get_array(node) : NULL;
  gboolean ok = arr != NULL && json_array_get_length(arr) == 3;
  for (guint i = 0; ok && i < 3; i++) {
    JsonNode *v = json_array_get_element(arr, i);
    GType type = JSON_NODE_HOLDS_VALUE(v) ? json_node_get_value_type(v) : G_TYPE_INVALID;
    ok = type == G_TYPE_DOUBLE || type == G_TYPE_INT64;
    if (ok) out[i] = (float)json_node_get_double(v);
  }
  if (!ok)
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "%s: %s must be an array of 3 numbers (one per RGB channel)", file, key);
  return ok;
}

gboolean i2v_clip_preprocess_load(I2vModelDir *md, int image_size, I2vClipPreprocess *pp,
                                  GError **error) {
  JsonObject *cfg = i2v_model_dir_config(md, "feature_extractor", error);
  if (cfg == NULL) return FALSE;
  char *file = i2v_model_dir_file(md, "feature_extractor", FEATURE_EXTRACTOR_FILE);
  /* crop_size is an {"height","width"} object in current files, a number in old ones */
  gint64 crop_h = image_size, crop_w = image_size;
  JsonNode *crop = json_object_get_member(cfg, "crop_size");
  if (crop != NULL && JSON_NODE_HOLDS_OBJECT(crop)) {
    crop_h = i2v_config_int_or(json_node_get_object(crop), "height", -1);
    crop_w = i2v_config_int_or(json_node_get_object(crop), "width", -1);
  } else if (crop != NULL && !JSON_NODE_HOLDS_NULL(crop)) {
    crop_h = crop_w = i2v_config_int_or(cfg, "crop_size", -1);
  }
  gboolean ok = config_float3(cfg, file, "image_mean", pp->mean, error) &&
                config_float3(cfg, file, "image_std", pp->std, error);
  if (ok && (crop_h != image_size || crop_w != image_size)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "%s: crop_size %" G_GINT64_FORMAT "×%" G_GINT64_FORMAT
                " does not match image_encoder/config.json image_size %d",
                file, crop_w, crop_h, image_size);
    ok = FALSE;
  }
  pp->size = image_size;
  g_free(file);
  json_object_unref(cfg);
  return ok;
}

gboolean i2v_encode_prompts(const I2vTokenizer *tok, const I2vClipText *text, I2vStream *st,
                            const char *const *texts, int n, float *out, GError **error) {
  int len = i2v_tokenizer_max_length(tok);
  int64_t *ids = g_new(int64_t, (gsize)n * len);
  gboolean ok = TRUE;
  for (int b = 0; ok && b < n; b++) {
    gboolean truncated = FALSE;
    ok = i2v_tokenizer_encode_padded(tok, texts[b], ids + (gsize)b * len, &truncated, error);
    if (ok && truncated) g_info("text %d truncated to %d tokens (the CLIP text limit)", b, len);
  }
  ok = ok && i2v_clip_text_forward(text, st, ids, n, len, i2v_clip_text_num_layers(text) - 1, TRUE,
                                   out, error);
  g_free(ids);
  return ok;
}

gboolean i2v_encode_image_clip(const I2vClipVision *vision, I2vStream *st,
                               const I2vClipPreprocess *pp, const I2vImage *image, int width,
                               I2vImage *clip_input, float *pixel_values, float *embeds,
                               GError **error) {
  /* the square side is the video width, whatever the height (reference §2.3) */
  I2vImage square = i2v_image_center_crop_wide(image, width, width, NULL);
  I2vImage small = i2v_image_resize(&square, pp->size, pp->size, I2V_RESAMPLE_BILINEAR);
  i2v_image_clear(&square);
  float *pixels = pixel_values ? pixel_values : g_new(float, 3 * pp->size * pp->size);
  i2v_image_to_clip_pixels(&small, pp->mean, pp->std, pixels);
  gboolean ok = i2v_clip_vision_forward(vision, st, pixels, 1, embeds, 0, NULL, error);
  if (pixels != pixel_values) g_free(pixels);
  if (clip_input != NULL)
    *clip_input = small;
  else
    i2v_image_clear(&small);
  return ok;
}

gboolean i2v_encode_image_vae(const I2vVae *vae, I2vStream *st, const I2vImage *image, int width,
                              int height, I2vImage *crop, float *input, float *moments,
                              GError **error) {
  I2vImage cropped = i2v_image_center_crop_wide(image, width, height, NULL);
  float *x = input ? input : g_new(float, 3 * (gsize)width * height);
  i2v_image_to_vae_input(&cropped, x);
  gboolean ok = i2v_vae_encode(vae, st, x, height, width, moments, error);
  if (x != input) g_free(x);
  if (crop != NULL)
    *crop = cropped;
  else
    i2v_image_clear(&cropped);
  return ok;
}
