/* i2vgen bench: times one generation stage by stage (model load, each encoder, every UNet step,
 * VAE decode per frame), counts the FLOPs the op table executed, and prints a table on stderr
 * and one JSON line on stdout. Weights come from a model directory, or from the README-realcfg
 * formula (--formula-weights SEED) so real-size runs need no weight file: cost does not depend on
 * the values. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "commands.h"
#include "model_options.h"
#include <i2v/i2v.h>

#define MAX_STAGES 4096

typedef struct {
  I2vStage stages[MAX_STAGES];
  int n;
} Recorder;

static void record_stage(const I2vStage *s, void *user) {
  Recorder *r = user;
  if (r->n < MAX_STAGES) {
    r->stages[r->n] = *s;
    r->stages[r->n].name = g_intern_string(s->name);
    r->n++;
  }
}

typedef struct {
  int count;
  double sum_s, sum2_s, min_s, max_s, flops;
} Summary;

/* Sums the stages named name (interned) of r. */
static Summary summarize(const Recorder *r, const char *name) {
  Summary s = {.min_s = INFINITY};
  const char *interned = g_intern_string(name);
  for (int i = 0; i < r->n; i++) {
    if (r->stages[i].name != interned) continue;
    double t = r->stages[i].us * 1e-6;
    s.count++;
    s.sum_s += t;
    s.sum2_s += t * t;
    s.min_s = MIN(s.min_s, t);
    s.max_s = MAX(s.max_s, t);
    s.flops += r->stages[i].flops;
  }
  if (s.count == 0) s.min_s = 0;
  return s;
}

static double mean(const Summary *s) {
  return s->count ? s->sum_s / s->count : 0;
}

static double spread(const Summary *s) {
  if (s->count < 2) return 0;
  double m = mean(s);
  return sqrt(MAX(0.0, s->sum2_s / s->count - m * m));
}

static const char *const stage_names[] = {"text_encoder", "image_encoder", "vae_encoder",
                                          "unet_prepare", "unet_step",     "vae_decode_frame"};

static gboolean frame_sink(const I2vFrame *f, void *user) {
  (void)f, (void)user;
  return TRUE;
}

int cmd_bench(int argc, char **argv) {
  CmdModelArgs ma = {0};
  char *image_path = NULL, *sampler = NULL;
  I2vParams p;
  i2v_params_init(&p);
  p.prompt = "A painting of a squirrel eating a burger";
  p.width = 512, p.height = 512, p.steps = 3;
  double peak_tflops = 0;
  GOptionEntry entries[] = {
      {"image", 0, 0, G_OPTION_ARG_FILENAME, &image_path, "input image (default: a gradient)",
       "FILE"},
      {"width", 0, 0, G_OPTION_ARG_INT, &p.width, "video width (512)", "W"},
      {"height", 0, 0, G_OPTION_ARG_INT, &p.height, "video height (512)", "H"},
      {"frames", 0, 0, G_OPTION_ARG_INT, &p.frames, "frames (16)", "F"},
      {"steps", 0, 0, G_OPTION_ARG_INT, &p.steps, "denoising steps to time (3)", "N"},
      {"sampler", 0, 0, G_OPTION_ARG_STRING, &sampler, "ddim (default) or dpmpp-2m", "NAME"},
      {"guidance", 0, 0, G_OPTION_ARG_DOUBLE, &p.guidance, "guidance scale (9; > 1 = CFG)", "G"},
      {"peak-tflops", 0, 0, G_OPTION_ARG_DOUBLE, &peak_tflops,
       "device peak in TFLOP/s for the FLOP-bound ratio (e.g. 790 for an H100 in fp16)", "T"},
      G_OPTION_ENTRY_NULL};
  GOptionContext *ctx = g_option_context_new("- time a generation stage by stage");
  cmd_model_add_options(ctx, &ma, CMD_MODEL_ALL);
  g_option_context_add_main_entries(ctx, entries, NULL);
  cmd_add_memory_options(ctx, &p);
  GError *err = NULL;
  int status = 0;
  I2vModel *m = NULL;
  I2vSession *session = NULL;
  I2vImage image = {0};
  Recorder *rec = g_new0(Recorder, 1);
  I2vModelOptions o;
  if (!g_option_context_parse(ctx, &argc, &argv, &err) || !cmd_no_arguments(argc, argv, &err) ||
      !cmd_model_args_check(&ma, &o, &err) || !cmd_parse_sampler(sampler, &p.sampler, &err) ||
      !i2v_params_validate(NULL, &p, &err)) {
    status = 2;
  } else if (!(peak_tflops >= 0)) {
    err = g_error_new(I2V_ERROR, I2V_ERROR_INVALID, "--peak-tflops %g: expected a positive number",
                      peak_tflops);
    status = 2;
  }
  if (status == 0 && image_path != NULL && !i2v_image_load(image_path, &image, &err)) status = 1;
  gint64 t0 = g_get_monotonic_time();
  if (status == 0 &&
      ((m = i2v_model_load(&o, &err)) == NULL || (session = i2v_session_new(m, &err)) == NULL))
    status = 1;
  double load_s = (g_get_monotonic_time() - t0) * 1e-6;
  if (status == 0 && image_path == NULL) {
    image = i2v_image_new(p.width, p.height);
    for (int i = 0; i < p.width * p.height * 3; i++) image.rgb[i] = (guint8)(i * 31 / 7);
  }
  int width = p.width, height = p.height, frames = p.frames, steps = p.steps;
  double guidance = p.guidance;
  gboolean release_encoders = ma.release_encoders;
  double total_s = 0;
  if (status == 0) {
    I2vCallbacks cb = {.frame = frame_sink, .stage = record_stage, .user = rec};
    t0 = g_get_monotonic_time();
    if (!i2v_generate(session, &image, &p, &cb, NULL, &err)) status = 1;
    total_s = (g_get_monotonic_time() - t0) * 1e-6;
  }
  if (status == 0) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = ru.ru_maxrss / 1024.0;
    Summary step = summarize(rec, "unet_step"), dec = summarize(rec, "vae_decode_frame");
    fprintf(stderr, "bench: %s, %dx%d, %d frames, %d %s steps, guidance %g\n", i2v_model_device(m),
            width, height, frames, steps, i2v_sampler_name(p.sampler), guidance);
    fprintf(stderr, "  %-18s %9.3f s\n", "model load", load_s);
    GString *json = g_string_new(NULL);
    g_string_append_printf(json,
                           "{\"device\":\"%s\",\"width\":%d,\"height\":%d,\"frames\":%d,"
                           "\"steps\":%d,\"sampler\":\"%s\",\"guidance\":%g,\"load_s\":%.6g",
                           i2v_model_device(m), width, height, frames, steps,
                           i2v_sampler_name(p.sampler), guidance, load_s);
    for (guint i = 0; i < G_N_ELEMENTS(stage_names); i++) {
      Summary s = summarize(rec, stage_names[i]);
      if (s.count == 0) continue;
      double tflops = s.sum_s > 0 ? s.flops / s.sum_s * 1e-12 : 0;
      fprintf(stderr,
              "  %-18s %9.3f s mean (±%.3f, min %.3f, max %.3f, n=%d)  %.4g GFLOP  %.4g TFLOP/s\n",
              stage_names[i], mean(&s), spread(&s), s.min_s, s.max_s, s.count,
              s.flops / MAX(s.count, 1) * 1e-9, tflops);
      g_string_append_printf(json,
                             ",\"%s_s\":%.6g,\"%s_spread_s\":%.6g,\"%s_tflop\":%.6g,\"%s_n\":%d",
                             stage_names[i], mean(&s), stage_names[i], spread(&s), stage_names[i],
                             s.flops / MAX(s.count, 1) * 1e-12, stage_names[i], s.count);
    }
    /* the 50-step job the presets describe, extrapolated from the measured stages */
    Summary pre[4];
    double fixed_s = 0;
    for (int i = 0; i < 4; i++) {
      pre[i] = summarize(rec, stage_names[i]);
      fixed_s += mean(&pre[i]);
    }
    double job50_s = fixed_s + 50 * mean(&step) + frames * mean(&dec);
    double job50_flop =
        50 * step.flops / MAX(step.count, 1) + dec.flops / MAX(dec.count, 1) * frames;
    for (int i = 0; i < 4; i++) job50_flop += pre[i].flops;
    fprintf(stderr, "  %-18s %9.3f s\n", "this run", total_s);
    fprintf(stderr, "  %-18s %9.3f s (%.1f TFLOP)\n", "50-step estimate", job50_s,
            job50_flop * 1e-12);
    fprintf(stderr, "  %-18s %9.1f MB\n", "peak RSS", rss_mb);
    /* the allocator's high-water mark: weights and other persistent tensors at their peak plus
     * the activation arena (on CUDA: the VRAM the engine asked for, short of the CUDA context) */
    I2vMemoryStats mem;
    i2v_session_memory(session, &mem);
    double persistent_mb = mem.persistent_peak / 1048576.0, scratch_mb = mem.scratch / 1048576.0;
    fprintf(stderr, "  %-18s %9.1f MB (persistent peak %.1f MB + activation arena %.1f MB)\n",
            "engine memory", persistent_mb + scratch_mb, persistent_mb, scratch_mb);
    /* what the driver says (cudaMemGetInfo; 0 on the CPU): the whole device, context included */
    double used_mb = mem.device_used / 1048576.0, device_peak_mb = mem.device_peak / 1048576.0,
           total_mb = mem.device_total / 1048576.0;
    if (mem.device_total > 0)
      fprintf(stderr, "  %-18s %9.1f MB now, %.1f MB peak at stage ends, of %.1f MB\n",
              "device used", used_mb, device_peak_mb, total_mb);
    g_string_append_printf(json,
                           ",\"total_s\":%.6g,\"job50_s\":%.6g,\"job50_tflop\":%.6g,"
                           "\"peak_rss_mb\":%.1f,\"persistent_peak_mb\":%.1f,\"scratch_mb\":%.1f,"
                           "\"engine_peak_mb\":%.1f,\"device_used_mb\":%.1f,"
                           "\"device_peak_mb\":%.1f,\"device_total_mb\":%.1f,"
                           "\"release_encoders\":%s,\"sequential_guidance\":%s,"
                           "\"attention_chunk\":%d,\"decode_tile\":%d",
                           total_s, job50_s, job50_flop * 1e-12, rss_mb, persistent_mb, scratch_mb,
                           persistent_mb + scratch_mb, used_mb, device_peak_mb, total_mb,
                           release_encoders ? "true" : "false",
                           p.sequential_guidance ? "true" : "false", p.attention_chunk,
                           p.decode_tile);
    if (peak_tflops > 0) {
      double bound = job50_flop * 1e-12 / peak_tflops;
      fprintf(stderr, "  %-18s %9.3f s at %g TFLOP/s: measured / bound = %.2f\n", "FLOP bound",
              bound, peak_tflops, job50_s / bound);
      g_string_append_printf(json, ",\"flop_bound_s\":%.6g,\"ratio_to_bound\":%.6g", bound,
                             job50_s / bound);
    }
    g_string_append(json, "}");
    printf("%s\n", json->str);
    g_string_free(json, TRUE);
  } else {
    cmd_fail("bench", err);
  }
  i2v_image_clear(&image);
  i2v_session_free(session);
  if (m) i2v_model_unref(m);
  g_free(rec);
  g_option_context_free(ctx);
  cmd_model_args_clear(&ma);
  g_free(image_path);
  g_free(sampler);
  return status;
}
