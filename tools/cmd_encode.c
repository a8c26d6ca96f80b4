/* i2vgen encode: the pipeline's conditioning tensors for one prompt and one image (text
 * embeddings with clip_skip 1, the CLIP image embedding, the VAE posterior of the cropped image)
 * and, with --decode, the frame-by-frame VAE decode of given latents. Tensors are written under
 * the names and layouts of the golden pipeline files (the reference implementation's), so any stage
 * can be compared with the reference. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "model_options.h"
#include "conditioning.h"
#include "cpu_backend.h"
#include "stream.h"
#include <i2v/error.h>
#include "input_file.h"

/* The reference pipeline's default video size. */
#define DEFAULT_HEIGHT 704
#define DEFAULT_WIDTH 1280

typedef struct {
  I2vModelDir *md;
  I2vBackend *be;
  I2vStream *st;
  I2vVae *vae; /* loaded on first use */
  I2vSafetensorsWriter *out;
} Encoder;

static void add_f32(Encoder *e, const char *name, int ndim, const int64_t *shape,
                    const float *data) {
  i2v_safetensors_writer_add(e->out, name, I2V_DTYPE_F32, ndim, shape, data);
}

/* An RGB8 image as the golden u8 tensors hold it: [H, W, 3]. */
static void add_u8_image(Encoder *e, const char *name, const I2vImage *img) {
  int64_t shape[3] = {img->height, img->width, 3};
  i2v_safetensors_writer_add(e->out, name, I2V_DTYPE_U8, 3, shape, img->rgb);
}

static I2vVae *encoder_vae(Encoder *e, GError **error) {
  if (e->vae == NULL) e->vae = i2v_vae_load(e->md, e->be, error);
  return e->vae;
}

/* prompt_embeds [1, max_length, hidden]: the penultimate encoder layer plus the final LayerNorm
 * (the pipeline's clip_skip = 1). */
static gboolean encode_prompt(Encoder *e, const char *prompt, GError **error) {
  char *dir = g_build_filename(i2v_model_dir_path(e->md), "tokenizer", NULL);
  I2vTokenizer *tok = i2v_tokenizer_load(dir, error);
  g_free(dir);
  I2vClipText *text = tok ? i2v_clip_text_load(e->md, e->be, error) : NULL;
  gboolean ok = text != NULL;
  if (ok) {
    int len = i2v_tokenizer_max_length(tok), hidden = i2v_clip_text_hidden_size(text);
    float *embeds = g_new(float, (gsize)len *hidden);
    ok = i2v_encode_prompts(tok, text, e->st, &prompt, 1, embeds, error);
    int64_t shape[3] = {1, len, hidden};
    if (ok) add_f32(e, "prompt_embeds", 3, shape, embeds);
    g_free(embeds);
  }
  i2v_clip_text_free(text);
  i2v_tokenizer_free(tok);
  return ok;
}

/* The global image embedding: _center_crop_wide to a width × width square, BILINEAR resize to
 * the CLIP input size, normalise, CLIP vision with projection. */
static gboolean encode_clip_image(Encoder *e, const I2vImage *img, int width, GError **error) {
  I2vClipVision *vision = i2v_clip_vision_load(e->md, e->be, error);
  I2vClipPreprocess pp;
  gboolean ok = vision != NULL &&
                i2v_clip_preprocess_load(e->md, i2v_clip_vision_image_size(vision), &pp, error);
  if (ok) {
    int proj = i2v_clip_vision_projection_dim(vision);
    float *pixels = g_new(float, 3 * pp.size * pp.size), *embeds = g_new(float, proj);
    I2vImage clip_in = {0};
    ok = i2v_encode_image_clip(vision, e->st, &pp, img, width, &clip_in, pixels, embeds, error);
    if (ok) {
      int64_t pshape[4] = {1, 3, pp.size, pp.size}, eshape[2] = {1, proj};
      add_u8_image(e, "clip_input_u8", &clip_in);
      add_f32(e, "clip_pixel_values", 4, pshape, pixels);
      add_f32(e, "image_embeds", 2, eshape, embeds);
    }
    i2v_image_clear(&clip_in);
    g_free(pixels);
    g_free(embeds);
  }
  i2v_clip_vision_free(vision);
  return ok;
}

/* The VAE posterior of the image cropped to width × height (the pipeline's image latents before
 * sampling): vae_input_u8, vae_input and vae_mean / vae_logvar / vae_std [1, latent, h, w]. */
static gboolean encode_vae_image(Encoder *e, const I2vImage *img, int height, int width,
                                 GError **error) {
  I2vVae *vae = encoder_vae(e, error);
  if (vae == NULL) return FALSE;
  int s = i2v_vae_downscale(vae), latent = i2v_vae_latent_channels(vae);
  int64_t hw = (int64_t)(height / s) * (width / s);
  float *x = g_new(float, 3 * (size_t)width * height), *moments = g_new(float, 2 * latent * hw);
  I2vImage cropped = {0};
  gboolean ok = i2v_encode_image_vae(vae, e->st, img, width, height, &cropped, x, moments, error);
  if (ok) {
    int64_t xshape[4] = {1, 3, height, width}, shape[4] = {1, latent, height / s, width / s};
    add_u8_image(e, "vae_input_u8", &cropped);
    add_f32(e, "vae_input", 4, xshape, x);
    float *post = g_new(float, 3 * latent * hw);
    i2v_vae_posterior(moments, latent, hw, post, post + latent * hw, post + 2 * latent * hw);
    static const char *const names[] = {"vae_mean", "vae_logvar", "vae_std"};
    for (int i = 0; i < 3; i++) add_f32(e, names[i], 4, shape, post + i * latent * hw);
    g_free(post);
  }
  i2v_image_clear(&cropped);
  g_free(moments);
  g_free(x);
  return ok;
}

static gboolean encode_image(Encoder *e, const char *path, int height, int width, GError **error) {
  I2vImage img;
  if (!i2v_image_load(path, &img, error)) return FALSE;
  gboolean ok =
      encode_clip_image(e, &img, width, error) && encode_vae_image(e, &img, height, width, error);
  i2v_image_clear(&img);
  return ok;
}

/* video [1, 3, F, H, W] from the latents_final [1, latent, F, h, w] of a pipeline file. */
static gboolean decode_file(Encoder *e, const char *path, GError **error) {
  I2vVae *vae = encoder_vae(e, error);
  if (vae == NULL) return FALSE;
  I2vSafetensors *st = i2v_safetensors_open(path, error);
  if (st == NULL) return FALSE;
  I2vTensor lat = {0};
  gboolean ok = i2v_safetensors_read_f32(st, "latents_final", &lat, error);
  i2v_safetensors_close(st);
  if (ok && (lat.ndim != 5 || lat.shape[0] != 1 || lat.shape[1] != i2v_vae_latent_channels(vae))) {
    char buf[96];
    g_set_error(error, I2V_ERROR, I2V_ERROR_SHAPE,
                "%s: latents_final has shape %s, expected [1, %d, frames, h, w]", path,
                i2v_shape_format(lat.ndim, lat.shape, buf, sizeof buf),
                i2v_vae_latent_channels(vae));
    ok = FALSE;
  }
  if (ok) {
    int s = i2v_vae_downscale(vae);
    int64_t shape[5] = {1, 3, lat.shape[2], lat.shape[3] * s, lat.shape[4] * s};
    float *video = g_new(float, shape[1] * shape[2] * shape[3] * shape[4]);
    ok = i2v_vae_decode_video(vae, e->st, lat.data, (int)lat.shape[2], (int)lat.shape[3],
                              (int)lat.shape[4], video, error);
    if (ok) add_f32(e, "video", 5, shape, video);
    g_free(video);
  }
  i2v_host_tensor_free(&lat);
  return ok;
}

static gboolean run_encode(const char *model, const char *variant, const char *prompt,
                           const char *image, int height, int width, const char *decode,
                           const char *out, GError **error) {
  Encoder e = {0};
  e.md = i2v_model_dir_open(model, variant, error);
  if (e.md == NULL) return FALSE;
  e.be = i2v_cpu_backend_new(0);
  e.st = i2v_stream_new(e.be, NULL); /* a CPU stream cannot fail */
  e.out = i2v_safetensors_writer_new();
  gboolean ok = (prompt == NULL || encode_prompt(&e, prompt, error)) &&
                (image == NULL || encode_image(&e, image, height, width, error)) &&
                (decode == NULL || decode_file(&e, decode, error)) &&
                i2v_safetensors_writer_save(e.out, out, error);
  i2v_safetensors_writer_free(e.out);
  i2v_vae_free(e.vae);
  i2v_stream_free(e.st);
  i2v_backend_free(e.be);
  i2v_model_dir_free(e.md);
  return ok;
}

int cmd_encode(int argc, char **argv) {
  CmdModelArgs ma = {0};
  I2vModelOptions mo;
  char *prompt = NULL, *image = NULL, *decode = NULL, *out = NULL;
  int height = DEFAULT_HEIGHT, width = DEFAULT_WIDTH;
  GOptionEntry entries[] = {
      /* FILENAME: the bytes as given (the tokenizer checks UTF-8), no locale conversion */
      {"prompt", 'p', 0, G_OPTION_ARG_FILENAME, &prompt, "write prompt_embeds of TEXT", "TEXT"},
      {"image", 'i', 0, G_OPTION_ARG_FILENAME, &image,
       "write the CLIP and VAE conditioning of the PNG/JPEG FILE", "FILE"},
      {"height", 'H', 0, G_OPTION_ARG_INT, &height, "video height (default 704)", "H"},
      {"width", 'W', 0, G_OPTION_ARG_INT, &width, "video width (default 1280)", "W"},
      {"decode", 0, 0, G_OPTION_ARG_FILENAME, &decode,
       "write video: the VAE decode of latents_final of FILE.safetensors", "FILE"},
      {"out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "output .safetensors file", "OUT"},
      G_OPTION_ENTRY_NULL,
  };
  GOptionContext *ctx = g_option_context_new(
      "- write the pipeline's conditioning tensors (golden pipeline file names) to OUT");
  cmd_model_add_options(ctx, &ma, CMD_MODEL_DIR);
  g_option_context_add_main_entries(ctx, entries, NULL);
  GError *err = NULL;
  int status = 0;
  const char *usage = NULL;
  if (!g_option_context_parse(ctx, &argc, &argv, &err) || !cmd_no_arguments(argc, argv, &err) ||
      !cmd_model_args_check(&ma, &mo, &err))
    usage = err->message;
  else if (out == NULL)
    usage = "--out OUT.safetensors is required";
  else if (prompt == NULL && image == NULL && decode == NULL)
    usage = "nothing to do: give --prompt, --image and/or --decode";
  else if (height < 1 || width < 1)
    usage = "--height and --width must be positive";
  if (usage != NULL) {
    fprintf(stderr, "i2vgen encode: %s\n", usage);
    status = 2;
  } else if (image != NULL && !i2v_input_check(image, &err)) { /* before the model loads */
    g_prefix_error(&err, "--image ");
    status = cmd_fail("encode", err);
    err = NULL;
  } else if (!run_encode(mo.path, mo.variant, prompt, image, height, width, decode, out, &err)) {
    status = cmd_fail("encode", err);
    err = NULL;
  }
  g_clear_error(&err);
  g_option_context_free(ctx);
  cmd_model_args_clear(&ma);
  g_free(prompt);
  g_free(image);
  g_free(decode);
  g_free(out);
  return status;
}
