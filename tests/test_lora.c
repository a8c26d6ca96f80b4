/* LoRA styles (engine/io/lora.c): each file layout merges W + scale·alpha/r·B·A into the weights it
 * targets (checked against a plain loop), in plain, conv and stacked loads; every malformed file
 * or spec is refused naming the culprit; on the tiny model a LoRA changes the clip, scale 0 leaves
 * it bit-identical, and a LoRA for another model is an error. */
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "device.h"
#include "stream.h"
#include "golden.h"
#include <i2v/i2v.h>
#include "lora.h"
#include "safetensors.h"
#include "weights.h"

static char *tmpdir;

/* Deterministic test values in [-1, 1). */
static float *values(int64_t n, guint seed) {
  float *v = g_new(float, n);
  for (int64_t i = 0; i < n; i++) v[i] = (float)(((i * 7919 + seed * 104729) % 2000) - 1000) / 1000;
  return v;
}

typedef struct {
  const char *name;
  int ndim;
  int64_t shape[4];
  guint seed;
  float scalar; /* for a 0-d "alpha" tensor */
} Part;

/* Saves and frees w as tmpdir/file; returns the path (g_free). */
static char *save(I2vSafetensorsWriter *w, const char *file) {
  char *path = g_build_filename(tmpdir, file, NULL);
  GError *err = NULL;
  g_assert_true(i2v_safetensors_writer_save(w, path, &err));
  g_assert_no_error(err);
  i2v_safetensors_writer_free(w);
  return path;
}

/* Writes parts (random-ish values from their seeds, or the scalar for ndim 0) to tmpdir/file. */
static char *write_file(const char *file, const Part *parts, int n) {
  I2vSafetensorsWriter *w = i2v_safetensors_writer_new();
  for (int i = 0; i < n; i++) {
    int64_t numel = 1;
    for (int d = 0; d < parts[i].ndim; d++) numel *= parts[i].shape[d];
    float *v = parts[i].ndim == 0 ? g_memdup2(&parts[i].scalar, sizeof(float))
                                  : values(numel, parts[i].seed);
    i2v_safetensors_writer_add(w, parts[i].name, I2V_DTYPE_F32, parts[i].ndim, parts[i].shape, v);
    g_free(v);
  }
  return save(w, file);
}

/* The base "model": a linear weight, two stacked ones and a 3×3 conv. */
static const Part base_parts[] = {
    {"blk.attn.to_q.weight", 2, {6, 4}, 1, 0},
    {"blk.attn.to_k.weight", 2, {6, 4}, 2, 0},
    {"blk.attn.to_out.0.weight", 2, {4, 6}, 3, 0},
    {"conv.weight", 4, {5, 3, 3, 3}, 4, 0},
};

/* W + coeff · up[out, r] · down[r, K] by a plain loop (PyTorch layout). */
static float *expected(const Part *w, const Part *down, const Part *up, double coeff) {
  int64_t out = w->shape[0], K = 1, r = down->shape[0];
  for (int d = 1; d < w->ndim; d++) K *= w->shape[d];
  float *base = values(out * K, w->seed), *a = values(r * K, down->seed),
        *b = values(out * r, up->seed);
  for (int64_t o = 0; o < out; o++)
    for (int64_t k = 0; k < K; k++) {
      double s = 0;
      for (int64_t j = 0; j < r; j++) s += (double)b[o * r + j] * a[j * K + k];
      base[o * K + k] += (float)(coeff * s);
    }
  g_free(a);
  g_free(b);
  return base;
}

/* Loads name from the base file with the LoRA of spec through a CPU backend (layout as given). */
static I2vTensor load_with(const char *base, const char *spec, const Part *w, I2vLayout layout,
                           I2vBackend *be) {
  GError *err = NULL;
  I2vLora *lora = i2v_lora_open(spec, &err);
  g_assert_no_error(err);
  I2vWeights *ws = i2v_weights_new_safetensors(i2v_safetensors_open(base, &err), "unet");
  g_assert_no_error(err);
  i2v_weights_set_lora(ws, lora);
  I2vTensor t;
  g_assert_true(i2v_weights_load(ws, be, w->name, w->ndim, w->shape, layout, &t, &err));
  g_assert_no_error(err);
  g_assert_true(i2v_lora_check_applied(lora, &err));
  g_assert_no_error(err);
  i2v_weights_free(ws);
  i2v_lora_free(lora);
  return t;
}

static void assert_close(const float *got, const float *want, int64_t n) {
  double d = golden_max_abs_diff(got, want, n);
  g_assert_cmpfloat(d, <, 1e-5);
}

static I2vBackend *cpu(void) {
  GError *err = NULL;
  I2vBackend *be = i2v_backend_new_for_device("cpu", NULL, 0, &err);
  g_assert_no_error(err);
  return be;
}

/* diffusers/PEFT layout on a linear weight, alpha = rank, with a scale from the spec. */
static void test_peft_linear(void) {
  char *base = write_file("base.safetensors", base_parts, G_N_ELEMENTS(base_parts));
  Part lora_parts[] = {{"unet.blk.attn.to_q.lora_A.weight", 2, {2, 4}, 11, 0},
                       {"unet.blk.attn.to_q.lora_B.weight", 2, {6, 2}, 12, 0}};
  char *file = write_file("peft.safetensors", lora_parts, 2);
  char *spec = g_strdup_printf("%s:0.75", file);
  I2vBackend *be = cpu();
  I2vTensor t = load_with(base, spec, &base_parts[0], I2V_LAYOUT_AS_IS, be);
  float *want = expected(&base_parts[0], &lora_parts[0], &lora_parts[1], 0.75);
  assert_close(t.data, want, 24);
  g_free(want);
  i2v_tensor_free(&t);
  i2v_backend_free(be);
  g_free(spec);
  g_free(file);
  g_free(base);
}

/* kohya layout on a 3×3 conv (down [r, Ci, 3, 3], up [Co, r, 1, 1], alpha), loaded with the
 * conv layout change [Co, kh, kw, Ci]; two files add up. */
static void test_kohya_conv_two_files(void) {
  char *base = write_file("base.safetensors", base_parts, G_N_ELEMENTS(base_parts));
  Part k1[] = {{"lora_unet_conv.lora_down.weight", 4, {2, 3, 3, 3}, 21, 0},
               {"lora_unet_conv.lora_up.weight", 4, {5, 2, 1, 1}, 22, 0},
               {"lora_unet_conv.alpha", 0, {0}, 0, 1.0f}};
  Part k2[] = {{"lora_unet_conv.lora_down.weight", 4, {1, 3, 3, 3}, 31, 0},
               {"lora_unet_conv.lora_up.weight", 4, {5, 1, 1, 1}, 32, 0}};
  char *f1 = write_file("k1.safetensors", k1, 3), *f2 = write_file("k2.safetensors", k2, 2);
  char *spec = g_strdup_printf("%s, %s:-2", f1, f2);
  I2vBackend *be = cpu();
  I2vTensor t = load_with(base, spec, &base_parts[3], I2V_LAYOUT_CONV2D, be);
  float *once = expected(&base_parts[3], &k1[0], &k1[1], 1.0 / 2); /* alpha 1, rank 2 */
  float *twice = expected(&base_parts[3], &k2[0], &k2[1], -2.0);
  float *base_v = values(5 * 27, base_parts[3].seed), want[5 * 27];
  for (int i = 0; i < 5 * 27; i++) twice[i] += once[i] - base_v[i]; /* both deltas on the base */
  for (int o = 0; o < 5; o++) /* [Co, Ci, kh, kw] → [Co, kh, kw, Ci] */
    for (int c = 0; c < 3; c++)
      for (int k = 0; k < 9; k++) want[o * 27 + k * 3 + c] = twice[o * 27 + c * 9 + k];
  assert_close(t.data, want, 5 * 27);
  g_free(once);
  g_free(twice);
  g_free(base_v);
  i2v_tensor_free(&t);
  i2v_backend_free(be);
  g_free(spec);
  g_free(f1);
  g_free(f2);
  g_free(base);
}

/* Older diffusers attention processors (to_q_lora, to_out_lora → to_out.0), in a stacked load. */
static void test_processor_layout_stacked(void) {
  char *base = write_file("base.safetensors", base_parts, G_N_ELEMENTS(base_parts));
  Part parts[] = {{"unet.blk.attn.processor.to_k_lora.down.weight", 2, {3, 4}, 41, 0},
                  {"unet.blk.attn.processor.to_k_lora.up.weight", 2, {6, 3}, 42, 0},
                  {"unet.blk.attn.processor.to_out_lora.down.weight", 2, {1, 6}, 43, 0},
                  {"unet.blk.attn.processor.to_out_lora.up.weight", 2, {4, 1}, 44, 0}};
  char *file = write_file("proc.safetensors", parts, 4);
  GError *err = NULL;
  I2vLora *lora = i2v_lora_open(file, &err);
  g_assert_no_error(err);
  I2vWeights *ws = i2v_weights_new_safetensors(i2v_safetensors_open(base, &err), "unet");
  i2v_weights_set_lora(ws, lora);
  I2vBackend *be = cpu();
  const char *names[] = {"blk.attn.to_q.weight", "blk.attn.to_k.weight"};
  I2vTensor qk, o;
  g_assert_true(i2v_weights_load_stacked(ws, be, names, 2, 2, base_parts[0].shape, &qk, &err));
  /* to_out.0 is still missing: not all applied */
  g_assert_false(i2v_lora_check_applied(lora, &err));
  golden_assert_error(&err, I2V_ERROR_LORA,
                      (const char *const[]){file, "unet.blk.attn.processor.to_out", NULL});
  g_assert_true(i2v_weights_load(ws, be, base_parts[2].name, 2, base_parts[2].shape,
                                 I2V_LAYOUT_AS_IS, &o, &err));
  g_assert_true(i2v_lora_check_applied(lora, &err));
  g_assert_no_error(err);
  float *q = values(24, base_parts[0].seed), *k = expected(&base_parts[1], &parts[0], &parts[1], 1);
  float *out = expected(&base_parts[2], &parts[2], &parts[3], 1);
  assert_close(qk.data, q, 24); /* no LoRA on to_q */
  assert_close((float *)qk.data + 24, k, 24);
  assert_close(o.data, out, 24);
  g_free(q);
  g_free(k);
  g_free(out);
  i2v_tensor_free(&qk);
  i2v_tensor_free(&o);
  i2v_backend_free(be);
  i2v_weights_free(ws);
  i2v_lora_free(lora);
  g_free(file);
  g_free(base);
}

/* Opens spec and expects an error of code naming each needle. */
static void expect_open_error(const char *spec, int code, const char *const *needles) {
  GError *err = NULL;
  g_assert_null(i2v_lora_open(spec, &err));
  golden_assert_error(&err, code, needles);
}

static void test_bad_files_and_specs(void) {
  Part unknown[] = {{"unet.blk.attn.to_q.weight", 2, {6, 4}, 1, 0}};
  char *f = write_file("unknown.safetensors", unknown, 1);
  expect_open_error(f, I2V_ERROR_LORA, (const char *const[]){f, "unet.blk.attn.to_q.weight", NULL});
  g_free(f);
  Part half[] = {{"unet.blk.attn.to_q.lora_A.weight", 2, {2, 4}, 1, 0}};
  f = write_file("half.safetensors", half, 1);
  expect_open_error(f, I2V_ERROR_LORA, (const char *const[]){f, "unet.blk.attn.to_q", "up", NULL});
  g_free(f);
  Part rank[] = {{"unet.x.lora_A.weight", 2, {2, 4}, 1, 0},
                 {"unet.x.lora_B.weight", 2, {6, 3}, 2, 0}};
  f = write_file("rank.safetensors", rank, 2);
  expect_open_error(f, I2V_ERROR_LORA, (const char *const[]){f, "unet.x", "[6, 3]", NULL});
  g_free(f);
  /* two spellings of one part (peft and the processors' layout): refused, the first not leaked */
  Part twice[] = {{"unet.x.lora_A.weight", 2, {2, 4}, 1, 0},
                  {"unet.x_lora.down.weight", 2, {2, 4}, 2, 0},
                  {"unet.x.lora_B.weight", 2, {6, 2}, 3, 0}};
  f = write_file("twice.safetensors", twice, 3);
  expect_open_error(f, I2V_ERROR_LORA, (const char *const[]){f, "again", "unet.x", NULL});
  g_free(f);
  Part alpha[] = {{"lora_unet_x.lora_down.weight", 2, {2, 4}, 1, 0},
                  {"lora_unet_x.lora_up.weight", 2, {6, 2}, 2, 0},
                  {"lora_unet_x.alpha", 1, {2}, 3, 0}};
  f = write_file("alpha.safetensors", alpha, 3);
  expect_open_error(f, I2V_ERROR_LORA, (const char *const[]){f, "lora_unet_x.alpha", NULL});
  char *spec = g_strdup_printf("%s:strong", f);
  expect_open_error(spec, I2V_ERROR_LORA, (const char *const[]){spec, "scale", NULL});
  g_free(spec);
  g_free(f);
  expect_open_error(
      "/nonexistent/style.safetensors", I2V_ERROR_LORA,
      (const char *const[]){"LoRA file /nonexistent/style.safetensors not found", NULL});
  expect_open_error(" , ", I2V_ERROR_LORA, (const char *const[]){"no file", NULL});

  /* a delta of another shape than the weight: the load fails naming both */
  char *base = write_file("base.safetensors", base_parts, G_N_ELEMENTS(base_parts));
  Part wide[] = {{"unet.blk.attn.to_q.lora_A.weight", 2, {2, 5}, 1, 0},
                 {"unet.blk.attn.to_q.lora_B.weight", 2, {6, 2}, 2, 0}};
  f = write_file("wide.safetensors", wide, 2);
  GError *err = NULL;
  I2vLora *lora = i2v_lora_open(f, &err);
  g_assert_no_error(err);
  I2vWeights *ws = i2v_weights_new_safetensors(i2v_safetensors_open(base, &err), "unet");
  i2v_weights_set_lora(ws, lora);
  I2vBackend *be = cpu();
  I2vTensor t;
  g_assert_false(i2v_weights_load(ws, be, base_parts[0].name, 2, base_parts[0].shape,
                                  I2V_LAYOUT_AS_IS, &t, &err));
  golden_assert_error(&err, I2V_ERROR_LORA,
                      (const char *const[]){f, "blk.attn.to_q.weight", "[6, 4]", "[2, 5]", NULL});
  i2v_backend_free(be);
  i2v_weights_free(ws);
  i2v_lora_free(lora);
  g_free(f);
  g_free(base);
}

/* ---- on the tiny model ---- */

/* A rank-2 PEFT LoRA for the first self-attention query of the UNet and the first text encoder
 * layer's query, shapes read from the model's own files. */
static char *tiny_lora(const char *model, const char *file, const char *extra_module) {
  char *paths[2] = {g_build_filename(model, "unet", "diffusion_pytorch_model.safetensors", NULL),
                    g_build_filename(model, "text_encoder", "model.safetensors", NULL)};
  const char *prefixes[2] = {"unet.", "text_encoder."};
  const char *suffixes[2] = {"attn1.to_q.weight", "layers.0.self_attn.q_proj.weight"};
  I2vSafetensorsWriter *w = i2v_safetensors_writer_new();
  for (int c = 0; c < 2; c++) {
    GError *err = NULL;
    I2vSafetensors *st = i2v_safetensors_open(paths[c], &err);
    g_assert_no_error(err);
    const I2vSafetensorsEntry *e = NULL;
    for (guint i = 0; i < i2v_safetensors_count(st) && e == NULL; i++)
      if (g_str_has_suffix(i2v_safetensors_entry(st, i)->name, suffixes[c]))
        e = i2v_safetensors_entry(st, i);
    g_assert_nonnull(e);
    char *module = g_strndup(e->name, strlen(e->name) - strlen(".weight"));
    int64_t down[2] = {2, e->shape[1]}, up[2] = {e->shape[0], 2};
    float *a = values(down[0] * down[1], 5 + c), *b = values(up[0] * up[1], 7 + c);
    char *an = g_strconcat(prefixes[c], module, ".lora_A.weight", NULL);
    char *bn = g_strconcat(prefixes[c], module, ".lora_B.weight", NULL);
    i2v_safetensors_writer_add(w, an, I2V_DTYPE_F32, 2, down, a);
    i2v_safetensors_writer_add(w, bn, I2V_DTYPE_F32, 2, up, b);
    if (extra_module != NULL && c == 0) {
      char *xa = g_strconcat("unet.", extra_module, ".lora_A.weight", NULL);
      char *xb = g_strconcat("unet.", extra_module, ".lora_B.weight", NULL);
      i2v_safetensors_writer_add(w, xa, I2V_DTYPE_F32, 2, down, a);
      i2v_safetensors_writer_add(w, xb, I2V_DTYPE_F32, 2, up, b);
      g_free(xa);
      g_free(xb);
    }
    g_free(an);
    g_free(bn);
    g_free(a);
    g_free(b);
    g_free(module);
    i2v_safetensors_close(st);
    g_free(paths[c]);
  }
  return save(w, file);
}

static gboolean keep_frame(const I2vFrame *f, void *user) {
  GByteArray *clip = user;
  g_byte_array_append(clip, f->image->rgb, f->image->width * f->image->height * 3);
  return TRUE;
}

/* The RGB bytes of a small clip of the model with lora (NULL: none), the encoders kept or
 * released (then streamed layer by layer, the LoRA applied to each layer as it loads). */
static GByteArray *clip_with(const char *model, const char *lora, gboolean release) {
  I2vModelOptions mo = {.path = model, .device = "cpu", .lora = lora, .release_encoders = release};
  GError *err = NULL;
  I2vModel *m = i2v_model_load(&mo, &err);
  g_assert_no_error(err);
  I2vParams p;
  i2v_params_init(&p);
  p.prompt = "a red ball";
  p.width = 32;
  p.height = 24;
  p.frames = 2;
  p.steps = 2;
  p.seed = 3;
  I2vImage img = i2v_image_new(40, 30);
  for (int i = 0; i < 40 * 30 * 3; i++) img.rgb[i] = (guint8)(i * 11);
  GByteArray *clip = g_byte_array_new();
  I2vCallbacks cb = {.frame = keep_frame, .user = clip};
  g_assert_true(i2v_model_generate(m, &img, &p, &cb, NULL, &err));
  g_assert_no_error(err);
  i2v_image_clear(&img);
  i2v_model_unref(m);
  return clip;
}

/* The LoRA changes the clip, at scale 0 it does not, a model with released (streamed) encoders
 * makes the same clip with it bit for bit, and a module the model lacks is named. */
static void test_tiny_model(void) {
  char *model = golden_model_with("tokenizer.json");
  char *file = tiny_lora(model, "tiny-style.safetensors", NULL);
  char *off = g_strdup_printf("%s:0", file);
  GByteArray *base = clip_with(model, NULL, FALSE), *styled = clip_with(model, file, FALSE),
             *zero = clip_with(model, off, FALSE), *released = clip_with(model, file, TRUE);
  g_assert_cmpuint(base->len, ==, styled->len);
  g_assert_cmpmem(base->data, base->len, zero->data, zero->len);
  g_assert_true(memcmp(base->data, styled->data, base->len) != 0);
  g_assert_cmpmem(styled->data, styled->len, released->data, released->len);
  g_byte_array_unref(base);
  g_byte_array_unref(styled);
  g_byte_array_unref(zero);
  g_byte_array_unref(released);

  /* a module the model does not have: loading fails naming it */
  char *other = tiny_lora(model, "other-model.safetensors", "down_blocks.9.attentions.0.proj_in");
  I2vModelOptions mo = {.path = model, .device = "cpu", .lora = other};
  GError *err = NULL;
  g_assert_null(i2v_model_load(&mo, &err));
  golden_assert_error(
      &err, I2V_ERROR_LORA,
      (const char *const[]){other, "unet.down_blocks.9.attentions.0.proj_in", NULL});
  g_free(other);
  g_free(off);
  g_free(file);
  g_free(model);
}

/* A directory or a FIFO given as a LoRA file was "not found" (or blocked in open()): each is named
 * for what it is; every LoRA error has the code I2V_ERROR_LORA and starts with "LoRA", also for
 * a file that is no safetensors; NaN deltas are refused naming the tensor; a huge spec entry is
 * repeated shortened. */
static void test_hostile_files(void) {
  char *dir = g_build_filename(tmpdir, "folder.safetensors", NULL);
  g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);
  expect_open_error(dir, I2V_ERROR_LORA,
                    (const char *const[]){"LoRA file", dir, "is a directory", NULL});
  char *fifo = g_build_filename(tmpdir, "pipe.safetensors", NULL);
  g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
  expect_open_error(fifo, I2V_ERROR_LORA,
                    (const char *const[]){"LoRA file", fifo, "is a FIFO", NULL});
  char *text = g_build_filename(tmpdir, "text.safetensors", NULL);
  g_assert_true(g_file_set_contents(text, "{\"not\": \"a safetensors file\"}", -1, NULL));
  GError *err = NULL;
  g_assert_null(i2v_lora_open(text, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_LORA);
  g_assert_true(g_str_has_prefix(err->message, "LoRA file "));
  g_clear_error(&err);
  Part nan[] = {{"unet.x.lora_A.weight", 2, {2, 4}, 1, 0},
                {"unet.x.lora_B.weight", 2, {6, 2}, 2, 0}};
  I2vSafetensorsWriter *w = i2v_safetensors_writer_new();
  float down[8] = {0}, up[12] = {0};
  up[7] = NAN;
  i2v_safetensors_writer_add(w, nan[0].name, I2V_DTYPE_F32, 2, nan[0].shape, down);
  i2v_safetensors_writer_add(w, nan[1].name, I2V_DTYPE_F32, 2, nan[1].shape, up);
  char *f = save(w, "nan.safetensors");
  expect_open_error(
      f, I2V_ERROR_LORA,
      (const char *const[]){"LoRA ", f, "'unet.x.lora_B.weight'", "NaN at element 7", NULL});
  GString *spec = g_string_new(NULL);
  for (int i = 0; i < 100000; i++) g_string_append(spec, "style/");
  g_string_append(spec, "x.safetensors:strong");
  g_assert_null(i2v_lora_open(spec->str, &err));
  g_assert_nonnull(err);
  g_assert_cmpuint(strlen(err->message), <, 1000);
  g_assert_nonnull(strstr(err->message, "bytes)"));
  g_clear_error(&err);
  g_string_free(spec, TRUE);
  g_free(f);
  g_free(text);
  g_free(fifo);
  g_free(dir);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp("i2v-lora-XXXXXX", NULL);
  g_test_add_func("/lora/peft-linear", test_peft_linear);
  g_test_add_func("/lora/kohya-conv-two-files", test_kohya_conv_two_files);
  g_test_add_func("/lora/processor-layout-stacked", test_processor_layout_stacked);
  g_test_add_func("/lora/bad-files-and-specs", test_bad_files_and_specs);
  g_test_add_func("/lora/tiny-model", test_tiny_model);
  g_test_add_func("/lora/hostile-files", test_hostile_files);
  int rc = g_test_run();
  GDir *dir = g_dir_open(tmpdir, 0, NULL);
  for (const char *f; dir != NULL && (f = g_dir_read_name(dir)) != NULL;) {
    char *path = g_build_filename(tmpdir, f, NULL);
    g_remove(path);
    g_free(path);
  }
  if (dir != NULL) g_dir_close(dir);
  g_rmdir(tmpdir);
  g_free(tmpdir);
  return rc;
}
