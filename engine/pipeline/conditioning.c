/* Conditioning of a prompt set and an input image, as diffusers' I2VGenXLPipeline computes it. */
#include "conditioning.h"

#include <i2v/error.h>

gboolean i2v_clip_preprocess_load(I2vModelDir *md, int image_size, I2vClipPreprocess *pp,
                                  GError **error) {
  I2vConfig c;
  if (!i2v_model_dir_config(md, "feature_extractor", &c, error)) return FALSE;
  /* crop_size is an {"height","width"} object in current files, a number in old ones; it must be
   * the encoder's input side */
  int crop_h = image_size, crop_w = image_size;
  JsonNode *crop = json_object_get_member(c.json, "crop_size");
  gboolean ok = TRUE;
  if (crop != NULL && JSON_NODE_HOLDS_OBJECT(crop)) {
    I2vConfig sub = {.json = json_node_get_object(crop)};
    g_snprintf(sub.file, sizeof sub.file, "%s crop_size", c.file);
    ok = i2v_config_int(&sub, "height", image_size, image_size, &crop_h, error) &&
         i2v_config_int(&sub, "width", image_size, image_size, &crop_w, error);
  } else {
    ok = i2v_config_int_or(&c, "crop_size", image_size, image_size, image_size, &crop_h, error);
  }
  double mean[3], std[3];
  ok = ok && i2v_config_doubles(&c, "image_mean", 3, 0, 1, mean, error) &&
       i2v_config_doubles(&c, "image_std", 3, 1e-3, 10, std, error);
  for (int i = 0; ok && i < 3; i++) {
    pp->mean[i] = (float)mean[i];
    pp->std[i] = (float)std[i];
  }
  pp->size = image_size;
  i2v_config_clear(&c);
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
  /* the square side is the video width, whatever the height (docs/model.md §1) */
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
