/* i2vgen generate: one clip from an image and a prompt through the public API (i2v.h). Frames
 * go to PNG files as soon as they are decoded (--out), intermediates to a safetensors file under
 * the golden names (--dump), progress to stderr. --noise replays recorded noise (a pipeline
 * golden file's init_latents and vae_posterior_noise) instead of the seed's. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "model_options.h"
#include <i2v/i2v.h>
#include "echo.h"
#include "safetensors.h"

typedef struct {
  const char *out_pattern; /* printf pattern with one %d, or NULL */
  GError *save_error;      /* why the frame callback stopped the generation */
  I2vSafetensorsWriter *dump;
  int frames_written;
} Sink;

/* An --out pattern must hold exactly one %d conversion (flags and width allowed, e.g. %03d) and
 * otherwise only %% escapes, so it is safe to hand to printf. */
static gboolean check_pattern(const char *pattern, GError **error) {
  int conversions = 0;
  for (const char *s = pattern; *s; s++) {
    if (*s != '%') continue;
    if (s[1] == '%') {
      s++;
      continue;
    }
    s++;
    while (*s == '0' || *s == '-' || *s == '+' || *s == ' ') s++;
    while (g_ascii_isdigit(*s)) s++;
    if (*s != 'd') conversions = 99;
    if (*s == '\0') break;
    conversions++;
  }
  if (conversions == 1) return TRUE;
  I2vEcho shown;
  g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
              "--out '%s': expected a file pattern with exactly one %%d (e.g. out/frame-%%03d.png)",
              i2v_echo(pattern, &shown));
  return FALSE;
}

static gboolean save_frame(const I2vFrame *f, void *user) {
  Sink *sink = user;
  if (sink->out_pattern == NULL) return TRUE;
  char *path = g_strdup_printf(sink->out_pattern, f->index); /* checked by check_pattern */
  char *dir = g_path_get_dirname(path);
  gboolean ok = g_mkdir_with_parents(dir, 0755) == 0;
  if (!ok)
    g_set_error(&sink->save_error, I2V_ERROR, I2V_ERROR_IO, "cannot create folder %s: %s", dir,
                g_strerror(errno));
  ok = ok && i2v_image_save_png(f->image, path, &sink->save_error);
  if (ok) sink->frames_written++;
  g_free(dir);
  g_free(path);
  return ok;
}

static void print_progress(const I2vProgress *p, void *user) {
  (void)user;
  if (p->frame == 0)
    fprintf(stderr, "step %d/%d, elapsed %.1f s, eta %.1f s\n", p->step, p->steps,
            p->elapsed_us / 1e6, p->eta_us / 1e6);
  else
    fprintf(stderr, "frame %d/%d, elapsed %.1f s, eta %.1f s\n", p->frame, p->frames,
            p->elapsed_us / 1e6, p->eta_us / 1e6);
}

static void dump_tensor(const char *name, const I2vTensorView *t, void *user) {
  Sink *sink = user;
  i2v_safetensors_writer_add(sink->dump, name, I2V_DTYPE_F32, t->ndim, t->shape, t->data);
}

/* Reads float tensor name of st into *out (g_free) after checking it has n elements. */
static gboolean read_noise(I2vSafetensors *st, const char *name, int64_t n, float **out,
                           GError **error) {
  I2vTensor t;
  if (!i2v_safetensors_read_f32(st, name, &t, error)) return FALSE;
  if (i2v_tensor_numel(&t) != n) {
    char shape[64];
    g_set_error(error, I2V_ERROR, I2V_ERROR_SHAPE,
                "%s: tensor %s has shape %s (%" G_GINT64_FORMAT
                " values) but these parameters need %" G_GINT64_FORMAT,
                i2v_safetensors_path(st), name, i2v_shape_format(t.ndim, t.shape, shape, 64),
                i2v_tensor_numel(&t), n);
    i2v_host_tensor_free(&t);
    return FALSE;
  }
  *out = t.data; /* a host tensor's data is a g_malloc'd buffer */
  return TRUE;
}

/* Loads the image, the model and the noise, runs the generation and writes the dump. */
static gboolean generate(const I2vModelOptions *mo, const char *image_path, I2vParams *p,
                         const char *noise_path, const char *dump_path, Sink *sink,
                         GError **error) {
  I2vImage image = {0};
  float *init_latents = NULL, *posterior = NULL;
  I2vModel *m = NULL;
  gboolean ok = i2v_image_load(image_path, &image, error) && (m = i2v_model_load(mo, error)) &&
                i2v_params_validate(m, p, error);
  if (ok && noise_path != NULL) {
    I2vSafetensors *st = i2v_safetensors_open(noise_path, error);
    int64_t s = i2v_model_size_multiple(m), c = i2v_model_latent_channels(m);
    int64_t frame = c * (p->height / s) * (p->width / s);
    ok = st != NULL && read_noise(st, "init_latents", frame * p->frames, &init_latents, error) &&
         read_noise(st, "vae_posterior_noise", frame, &posterior, error);
    i2v_safetensors_close(st);
    p->init_latents = init_latents;
    p->vae_posterior_noise = posterior;
  }
  if (ok) {
    I2vCallbacks cb = {.progress = print_progress, .frame = save_frame, .user = sink};
    if (dump_path != NULL) {
      sink->dump = i2v_safetensors_writer_new();
      cb.dump = dump_tensor;
    }
    ok = i2v_model_generate(m, &image, p, &cb, NULL, error);
    if (!ok && sink->save_error != NULL) {
      g_clear_error(error);
      g_propagate_error(error, g_steal_pointer(&sink->save_error));
    }
    ok = ok && (sink->dump == NULL || i2v_safetensors_writer_save(sink->dump, dump_path, error));
  }
  i2v_safetensors_writer_free(sink->dump);
  g_free(init_latents);
  g_free(posterior);
  i2v_image_clear(&image);
  i2v_model_unref(m);
  return ok;
}

int cmd_generate(int argc, char **argv) {
  I2vParams p;
  i2v_params_init(&p);
  CmdModelArgs ma = {0};
  char *image = NULL, *prompt = NULL, *negative = NULL, *seed = NULL, *noise = NULL, *out = NULL,
       *dump_path = NULL, *sampler = NULL;
  GOptionEntry entries[] = {
      {"image", 0, 0, G_OPTION_ARG_FILENAME, &image, "input image (PNG or JPEG)", "FILE"},
      /* FILENAME: the bytes as given, checked as UTF-8 below with the option named */
      {"prompt", 0, 0, G_OPTION_ARG_FILENAME, &prompt, "text prompt", "TEXT"},
      {"negative-prompt", 0, 0, G_OPTION_ARG_FILENAME, &negative, "negative prompt (\"\")", "TEXT"},
      {"steps", 0, 0, G_OPTION_ARG_INT, &p.steps, "denoising steps (50)", "N"},
      {"sampler", 0, 0, G_OPTION_ARG_STRING, &sampler,
       "ddim (default) or dpmpp-2m (DPM-Solver++: DDIM's quality in about half the steps)", "NAME"},
      {"guidance", 0, 0, G_OPTION_ARG_DOUBLE, &p.guidance, "guidance scale (9.0)", "G"},
      {"motion-strength", 0, 0, G_OPTION_ARG_DOUBLE, &p.motion_strength,
       "how far the clip may move from the image, (0, 1] (1: full motion)", "S"},
      {"frames", 0, 0, G_OPTION_ARG_INT, &p.frames, "frames (16)", "F"},
      {"fps", 0, 0, G_OPTION_ARG_INT, &p.fps, "fps conditioning (16)", "R"},
      {"width", 0, 0, G_OPTION_ARG_INT, &p.width, "width (1280)", "W"},
      {"height", 0, 0, G_OPTION_ARG_INT, &p.height, "height (704)", "H"},
      {"decode-chunk-size", 0, 0, G_OPTION_ARG_INT, &p.decode_chunk_size,
       "frames per VAE decode (1)", "N"},
      {"seed", 0, 0, G_OPTION_ARG_STRING, &seed, "noise seed (0)", "S"},
      {"noise", 0, 0, G_OPTION_ARG_FILENAME, &noise,
       "take init_latents and vae_posterior_noise from this safetensors file", "FILE"},
      {"out", 0, 0, G_OPTION_ARG_FILENAME, &out, "PNG frame pattern, e.g. out/frame-%03d.png",
       "PATTERN"},
      {"dump", 0, 0, G_OPTION_ARG_FILENAME, &dump_path,
       "write intermediates (golden names) to this safetensors file", "FILE"},
      G_OPTION_ENTRY_NULL};
  GOptionContext *ctx = g_option_context_new("- generate a video clip from an image and a prompt");
  cmd_model_add_options(ctx, &ma, CMD_MODEL_ALL);
  g_option_context_add_main_entries(ctx, entries, NULL);
  cmd_add_memory_options(ctx, &p);
  GError *err = NULL;
  int status = 0;
  I2vModelOptions mo;
  /* everything that can be checked without the model is, before it loads (minutes at real
   * size) */
  if (!g_option_context_parse(ctx, &argc, &argv, &err) || !cmd_no_arguments(argc, argv, &err) ||
      !cmd_model_args_check(&ma, &mo, &err) || !cmd_check_text("--prompt", prompt, &err) ||
      !cmd_check_text("--negative-prompt", negative, &err)) {
    status = 2;
  } else if (image == NULL || prompt == NULL) {
    err = g_error_new(I2V_ERROR, I2V_ERROR_INVALID, "--image and --prompt are required");
    status = 2;
  } else if ((seed != NULL && !cmd_parse_u64(seed, "--seed", &p.seed, &err)) ||
             !cmd_parse_sampler(sampler, &p.sampler, &err) ||
             (out != NULL && !check_pattern(out, &err))) {
    status = 2;
  } else {
    p.prompt = prompt;
    p.negative_prompt = negative;
    if (!i2v_params_validate(NULL, &p, &err)) status = 2;
  }
  if (status == 0) {
    Sink sink = {.out_pattern = out};
    if (!generate(&mo, image, &p, noise, dump_path, &sink, &err)) status = 1;
    g_clear_error(&sink.save_error);
    if (status == 0 && out != NULL)
      fprintf(stderr, "wrote %d frames to %s\n", sink.frames_written, out);
  }
  if (status != 0) cmd_fail("generate", err);
  g_option_context_free(ctx);
  cmd_model_args_clear(&ma);
  char *strings[] = {image, prompt, negative, seed, noise, out, dump_path, sampler};
  for (guint i = 0; i < G_N_ELEMENTS(strings); i++) g_free(strings[i]);
  return status;
}
