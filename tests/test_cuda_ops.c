/* The CUDA op table against the CPU reference backend, op by op, on random inputs at odd and
 * real-ish shapes (every path: im2col blocks, 1×1 GEMMs, each attention kernel instance and view
 * layout, multi-chunk GroupNorm, ...), in each precision; plus device selection
 * (i2v_backend_new_for_device), which also runs without a GPU.
 *
 * Inputs are drawn once, rounded to the CUDA precision, and given to both backends, so the
 * difference measured is the CUDA computation alone. Bound on ‖cuda − cpu‖₂ / ‖cpu‖₂:
 *   fp32 1e-5 (cuBLAS in true fp32, no TF32; fp32 reductions in another order),
 *   fp16 2e-3 (fp32 accumulation; one to three fp16 roundings of the output, ~3e-4 each),
 *   bf16 1e-2 (the same with bf16's 8-bit mantissa, ~2.3e-3 per rounding).
 * Outputs are poisoned with NaN on the GPU before ops that overwrite them, so an element a kernel
 * forgets to write fails the comparison. Without a usable CUDA device every op test is skipped
 * with the reason. */
#include <math.h>
#include <string.h>
#ifdef I2V_CUDA_SIM
#include <cudnn_graph.h>
#include <dlfcn.h>
#endif

#include "cpu_backend.h"
#include "cuda_backend.h"
#include "device.h"
#include "ops.h"
#include <i2v/error.h>

typedef struct {
  const char *name;
  I2vDType dtype;
  double tol;
} Precision;

/* The long attention case: shorter when this test runs the kernels in the CPU simulator
 * (tests/cudasim: one host thread per CUDA thread, slow), still several tiles of queries and keys.
 */
#ifdef I2V_CUDA_SIM
#define LONG_SEQ 200
#else
#define LONG_SEQ 1000
#endif

static const Precision precisions[] = {
    {"fp32", I2V_DTYPE_F32, 1e-5},
    {"fp16", I2V_DTYPE_F16, 2e-3},
    {"bf16", I2V_DTYPE_BF16, 1e-2},
};

static I2vBackend *cpu;
static I2vStream *cpu_st;
static I2vBackend *gpu[G_N_ELEMENTS(precisions)];
static char *gpu_missing; /* why there is no CUDA backend, or NULL */
static GRand *rng;

/* The GPU backend, its stream and the bound of the running test. */
static I2vBackend *g;
static I2vStream *gs;
static const Precision *prec;

/* Selects the precision of a test (a new stream on its backend, given back by end()); FALSE (test
 * skipped) without a CUDA device. */
static gboolean begin(gconstpointer data) {
  prec = data;
  g = gpu[prec - precisions];
  if (g == NULL) {
    g_test_skip(gpu_missing);
    return FALSE;
  }
  GError *err = NULL;
  gs = i2v_stream_new(g, &err);
  g_assert_no_error(err);
  g_test_queue_destroy((GDestroyNotify)i2v_stream_free, gs);
  return TRUE;
}

/* The stream a tensor's copies go through: the CPU's or the running test's GPU stream. */
static I2vStream *stream_of(const I2vTensor *t) {
  return t->backend == cpu ? cpu_st : gs;
}

/* ---- tensor pairs: the same values on the CPU (f32) and on the GPU ---- */

typedef struct {
  I2vTensor c, g;
  int64_t n;
} Pair;

static float round_to(float v, I2vDType dt) {
  if (dt == I2V_DTYPE_F16) return i2v_f16_to_f32(i2v_f32_to_f16(v));
  if (dt == I2V_DTYPE_BF16) return i2v_bf16_to_f32(i2v_f32_to_bf16(v));
  return v;
}

static void upload(I2vTensor *t, const float *host) {
  GError *err = NULL;
  g_assert_true(i2v_tensor_upload_f32(stream_of(t), t, host, &err));
  g_assert_no_error(err);
}

/* A pair of gpu dtype dt holding values drawn from [lo, hi) (rounded to dt), or NaN on the GPU and
 * zeros on the CPU when poison is set (an output). */
static Pair pair_of(I2vDType dt, int ndim, const int64_t *shape, double lo, double hi,
                    gboolean poison) {
  Pair p;
  GError *err = NULL;
  g_assert_true(i2v_tensor_alloc(cpu, &p.c, I2V_DTYPE_F32, ndim, shape, &err));
  g_assert_true(i2v_tensor_alloc(g, &p.g, dt, ndim, shape, &err));
  g_assert_no_error(err);
  p.n = i2v_tensor_numel(&p.c);
  float *h = g_new(float, MAX(p.n, 1));
  for (int64_t i = 0; i < p.n; i++) h[i] = round_to((float)g_rand_double_range(rng, lo, hi), dt);
  if (!poison) upload(&p.c, h);
  if (poison)
    for (int64_t i = 0; i < p.n; i++) h[i] = NAN;
  upload(&p.g, h);
  g_free(h);
  return p;
}

/* A random input in [-1, 1) in the backend's activation dtype. */
static Pair rnd(int ndim, const int64_t *shape) {
  return pair_of(i2v_backend_act_dtype(g), ndim, shape, -1, 1, FALSE);
}

/* An output: random (for ops that accumulate into it) or poisoned. */
static Pair out(int ndim, const int64_t *shape, gboolean accumulate) {
  return pair_of(i2v_backend_act_dtype(g), ndim, shape, -1, 1, !accumulate);
}

static void pair_free(Pair *p) {
  i2v_tensor_free(&p->c);
  i2v_tensor_free(&p->g);
}

static float *download(const I2vTensor *t) {
  float *h = g_new(float, MAX(i2v_tensor_numel(t), 1));
  GError *err = NULL;
  g_assert_true(i2v_tensor_download_f32(stream_of(t), t, h, &err));
  g_assert_no_error(err);
  return h;
}

/* Asserts ‖gpu − cpu‖ / ‖cpu‖ ≤ the precision's bound (NaN anywhere fails). */
static void assert_pair(const Pair *p, const char *what) {
  GError *err = NULL;
  g_assert_true(i2v_stream_check(cpu_st, &err));
  if (!i2v_stream_check(gs, &err)) g_error("%s: %s", what, err->message);
  float *c = download(&p->c), *gv = download(&p->g);
  double num = 0, den = 0;
  int64_t bad = -1;
  for (int64_t i = 0; i < p->n; i++) {
    double d = (double)gv[i] - c[i];
    if (!isfinite(gv[i]) && bad < 0) bad = i;
    num += d * d;
    den += (double)c[i] * c[i];
  }
  double rel = sqrt(num) / MAX(sqrt(den), 1e-30);
  if (bad >= 0)
    g_error("%s (%s): element %" G_GINT64_FORMAT " is %g on the GPU (cpu %g)", what, prec->name,
            bad, gv[bad], c[bad]);
  if (!(rel <= prec->tol))
    g_error("%s (%s): relative L2 error %.3g > %.3g", what, prec->name, rel, prec->tol);
  g_test_message("%s (%s): relative L2 error %.3g", what, prec->name, rel);
  g_free(c);
  g_free(gv);
}

/* ---- GEMM ops ---- */

typedef struct {
  int64_t M, K, N;
  gboolean bias;
  I2vAct act;
  gboolean accumulate;
  gboolean f32_x, f32_y; /* x / y in F32 whatever the precision (converted x, mixed output) */
} LinearCase;

static void check_linear(const LinearCase *c) {
  int64_t xs[] = {c->M, c->K}, ws[] = {c->N, c->K}, bs[] = {c->N}, ys[] = {c->M, c->N};
  I2vDType x_dtype = c->f32_x ? I2V_DTYPE_F32 : i2v_backend_act_dtype(g);
  I2vDType y_dtype = c->f32_y ? I2V_DTYPE_F32 : i2v_backend_act_dtype(g);
  Pair x = pair_of(x_dtype, 2, xs, -1, 1, FALSE), w = rnd(2, ws), b = rnd(1, bs);
  Pair y = pair_of(y_dtype, 2, ys, -1, 1, !c->accumulate);
  i2v_op_linear(cpu_st, &y.c, &x.c, &w.c, c->bias ? &b.c : NULL, c->act, c->accumulate);
  i2v_op_linear(gs, &y.g, &x.g, &w.g, c->bias ? &b.g : NULL, c->act, c->accumulate);
  char *what = g_strdup_printf("linear %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                               " bias %d act %d acc %d x %s y %s",
                               c->M, c->K, c->N, c->bias, c->act, c->accumulate,
                               i2v_dtype_name(x_dtype), i2v_dtype_name(y_dtype));
  assert_pair(&y, what);
  g_free(what);
  pair_free(&x), pair_free(&w), pair_free(&b), pair_free(&y);
}

/* One GEMM shape with six different bias tensors in turn, as a UNet runs its layers: the cached
 * cuBLASLt plan of the shape (keyed by pointer alignment, of which there are five classes up to
 * 256 bytes, so at least two biases share a plan) must take each call's bias, not its first one. */
static void check_linear_bias_per_call(int64_t M, int64_t K, int64_t N) {
  int64_t xs[] = {M, K}, ws[] = {N, K}, bs[] = {N}, ys[] = {M, N};
  Pair x = rnd(2, xs), w = rnd(2, ws), y = out(2, ys, FALSE), b[6];
  for (guint i = 0; i < G_N_ELEMENTS(b); i++) b[i] = rnd(1, bs);
  for (guint i = 0; i < G_N_ELEMENTS(b); i++) {
    i2v_op_linear(cpu_st, &y.c, &x.c, &w.c, &b[i].c, I2V_ACT_NONE, FALSE);
    i2v_op_linear(gs, &y.g, &x.g, &w.g, &b[i].g, I2V_ACT_NONE, FALSE);
    assert_pair(&y, "linear, same shape, another bias");
  }
  for (guint i = 0; i < G_N_ELEMENTS(b); i++) pair_free(&b[i]);
  pair_free(&x), pair_free(&w), pair_free(&y);
}

/* The simulated cuBLASLt (tests/cudasim/cublaslt_sim.cpp) has an algorithm only when every leading
 * dimension and pointer is 16-byte aligned: K and N multiples of 8 take the cuBLASLt path with the
 * bias fused into its epilogue, odd ones the cublasGemmEx fallback with the bias in the epilogue
 * kernel; both are covered with each activation. */
static void test_linear(gconstpointer data) {
  if (!begin(data)) return;
  const LinearCase cases[] = {
      {37, 23, 19, TRUE, I2V_ACT_NONE, FALSE, FALSE, FALSE},
      {1, 7, 5, FALSE, I2V_ACT_GELU, FALSE, FALSE, FALSE},
      {300, 320, 64, TRUE, I2V_ACT_SILU, FALSE, FALSE, FALSE},
      {77, 64, 96, TRUE, I2V_ACT_QUICK_GELU, FALSE, FALSE, FALSE},
      {40, 32, 48, TRUE, I2V_ACT_GELU, FALSE, FALSE, FALSE},
      {33, 21, 13, TRUE, I2V_ACT_SILU, FALSE, FALSE, FALSE}, /* fallback + each activation */
      {33, 21, 13, TRUE, I2V_ACT_GELU, FALSE, FALSE, FALSE},
      {33, 21, 13, TRUE, I2V_ACT_QUICK_GELU, FALSE, FALSE, FALSE},
      {50, 33, 17, TRUE, I2V_ACT_NONE, TRUE, FALSE, FALSE}, /* bias + accumulate, fallback */
      {64, 64, 32, TRUE, I2V_ACT_NONE, TRUE, FALSE, FALSE}, /* bias + accumulate, fused */
      {64, 1280, 40, FALSE, I2V_ACT_NONE, TRUE, FALSE, FALSE},
      {9, 16, 12, TRUE, I2V_ACT_NONE, FALSE, TRUE, FALSE},  /* F32 x, converted */
      {24, 32, 16, TRUE, I2V_ACT_SILU, FALSE, FALSE, TRUE}, /* F32 y: bias type is not D's */
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) check_linear(&cases[i]);
  check_linear_bias_per_call(16, 32, 64);
}

/* ---- convolutions: cuDNN, and the GEMM paths it falls back to ---- */

/* Whether the running test's backend sends convolutions to cuDNN (the simulated backends do:
 * tests/cudasim has a stand-in libcudnn.so.9). */
static gboolean cudnn_on = TRUE;

#ifdef I2V_CUDA_SIM
/* A function of the stand-in libcudnn.so.9 (simulator only), loaded by the backends. */
static void *cudnn_sim_symbol(const char *name) {
  void *lib = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_NOLOAD);
  g_assert_nonnull(lib);
  void *fn = dlsym(lib, name);
  g_assert_nonnull(fn);
  dlclose(lib);
  return fn;
}

/* How many cudnnConvolutionForward calls ran so far. */
static long cudnn_calls(void) {
  long (*count)(void) = (long (*)(void))cudnn_sim_symbol("cudnnsim_forward_count");
  return count();
}
#else
static long cudnn_calls(void) {
  return 0; /* unknown on a GPU: the path is not checked there */
}
#endif

/* Asserts that an op ran through cuDNN (the call count grew since `before`) or not. */
static void assert_path(long before, gboolean via_cudnn, const char *what) {
#ifdef I2V_CUDA_SIM
  long calls = cudnn_calls() - before;
  if (via_cudnn ? calls == 0 : calls != 0)
    g_error("%s (%s): expected %s, made %ld cuDNN calls", what, prec->name,
            via_cudnn ? "cuDNN" : "the GEMM path", calls);
#else
  (void)before, (void)via_cudnn, (void)what;
#endif
}

typedef struct {
  int64_t N, H, W, Ci, Co, k;
  I2vConvParams p;
  gboolean bias, accumulate;
} ConvCase;

static const ConvCase conv_cases[] = {
    {2, 7, 9, 5, 6, 3, {1, 1, 1, 1, 1}, TRUE, FALSE},    /* resnet 3×3, odd sizes */
    {1, 9, 8, 4, 3, 3, {2, 1, 1, 1, 1}, TRUE, FALSE},    /* UNet downsampler */
    {1, 9, 8, 4, 3, 3, {2, 0, 0, 1, 1}, FALSE, FALSE},   /* VAE downsampler (asymmetric: GEMM) */
    {1, 8, 10, 4, 5, 3, {2, 0, 0, 1, 1}, TRUE, TRUE},    /* the same, bias + accumulate */
    {2, 9, 7, 6, 5, 3, {2, 1, 1, 1, 1}, TRUE, TRUE},     /* stride 2, bias + accumulate */
    {1, 7, 6, 3, 4, 3, {1, 2, 0, 2, 0}, FALSE, TRUE},    /* padding over rows only */
    {1, 6, 5, 3, 1, 3, {1, 1, 1, 1, 1}, TRUE, FALSE},    /* RGB in, one channel out */
    {2, 5, 6, 4, 3, 1, {1, 1, 1, 1, 1}, TRUE, FALSE},    /* 1×1 with padding: not a plain GEMM */
    {3, 5, 5, 8, 7, 1, {1, 0, 0, 0, 0}, TRUE, TRUE},     /* 1×1 shortcut, accumulating */
    {2, 32, 24, 32, 40, 3, {1, 1, 1, 1, 1}, TRUE, TRUE}, /* bigger, accumulating */
    {1, 1, 1, 3, 2, 3, {1, 1, 1, 1, 1}, TRUE, FALSE},    /* 1×1 image, all padding */
};

/* Whether the CUDA backend runs case c through cuDNN: not a 1×1 GEMM, symmetric padding. */
static gboolean conv_via_cudnn(const ConvCase *c) {
  const I2vConvParams *p = &c->p;
  gboolean plain_gemm =
      c->k == 1 && p->stride == 1 && !p->pad_top && !p->pad_left && !p->pad_bottom && !p->pad_right;
  return cudnn_on && !plain_gemm && p->pad_top == p->pad_bottom && p->pad_left == p->pad_right;
}

static void check_conv2d(const ConvCase *c) {
  int64_t Ho = (c->H + c->p.pad_top + c->p.pad_bottom - c->k) / c->p.stride + 1;
  int64_t Wo = (c->W + c->p.pad_left + c->p.pad_right - c->k) / c->p.stride + 1;
  int64_t xs[] = {c->N, c->H, c->W, c->Ci}, ws[] = {c->Co, c->k, c->k, c->Ci}, bs[] = {c->Co};
  int64_t ys[] = {c->N, Ho, Wo, c->Co};
  Pair x = rnd(4, xs), w = rnd(4, ws), b = rnd(1, bs), y = out(4, ys, c->accumulate);
  i2v_op_conv2d(cpu_st, &y.c, &x.c, &w.c, c->bias ? &b.c : NULL, &c->p, c->accumulate);
  long before = cudnn_calls();
  i2v_op_conv2d(gs, &y.g, &x.g, &w.g, c->bias ? &b.g : NULL, &c->p, c->accumulate);
  char *what = g_strdup_printf("conv2d %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                               "x%" G_GINT64_FORMAT " k%" G_GINT64_FORMAT " s%d pad %d,%d,%d,%d",
                               c->N, c->H, c->W, c->Ci, c->k, c->p.stride, c->p.pad_top,
                               c->p.pad_left, c->p.pad_bottom, c->p.pad_right);
  assert_pair(&y, what);
  assert_path(before, conv_via_cudnn(c), what);
  g_free(what);
  pair_free(&x), pair_free(&w), pair_free(&b), pair_free(&y);
}

static void test_conv2d(gconstpointer data) {
  if (!begin(data)) return;
  for (guint i = 0; i < G_N_ELEMENTS(conv_cases); i++) check_conv2d(&conv_cases[i]);
}

static void check_conv_frames(int64_t B, int64_t F, int64_t T, int64_t ci, int64_t co,
                              gboolean bias, gboolean accumulate) {
  int64_t xs[] = {B, F, T, ci}, ws[] = {co, 3, ci}, bs[] = {co}, ys[] = {B, F, T, co};
  Pair x = rnd(4, xs), w = rnd(3, ws), b = rnd(1, bs), y = out(4, ys, accumulate);
  i2v_op_conv_frames(cpu_st, &y.c, &x.c, &w.c, bias ? &b.c : NULL, accumulate);
  long before = cudnn_calls();
  i2v_op_conv_frames(gs, &y.g, &x.g, &w.g, bias ? &b.g : NULL, accumulate);
  char *what = g_strdup_printf("conv_frames B%" G_GINT64_FORMAT " F%" G_GINT64_FORMAT
                               " T%" G_GINT64_FORMAT " bias %d acc %d",
                               B, F, T, bias, accumulate);
  assert_pair(&y, what);
  assert_path(before, cudnn_on, what);
  g_free(what);
  pair_free(&x), pair_free(&w), pair_free(&b), pair_free(&y);
}

static void check_conv_frames_cases(void) {
  check_conv_frames(1, 1, 6, 5, 4, TRUE, FALSE); /* one frame: centre tap only */
  check_conv_frames(2, 1, 5, 3, 2, TRUE, TRUE);
  check_conv_frames(1, 2, 9, 3, 5, TRUE, TRUE);
  check_conv_frames(2, 5, 7, 6, 9, TRUE, FALSE);
  check_conv_frames(3, 5, 3, 7, 1, TRUE, TRUE); /* odd sizes, one output channel */
  check_conv_frames(1, 16, 12, 32, 32, FALSE, TRUE);
}

static void test_conv_frames(gconstpointer data) {
  if (!begin(data)) return;
  check_conv_frames_cases();
}

/* A stream on the running test's backend made with I2V_CUDA_CONV set to `mode` (NULL: unset): a
 * stream picks its convolution path when it is made. */
static I2vStream *stream_with_conv(const char *mode) {
  if (mode != NULL) g_setenv("I2V_CUDA_CONV", mode, TRUE);
  GError *err = NULL;
  I2vStream *st = i2v_stream_new(g, &err);
  g_unsetenv("I2V_CUDA_CONV");
  g_assert_no_error(err);
  return st;
}

/* I2V_CUDA_CONV=im2col: every conv through the GEMM paths, never cuDNN. */
static void test_conv_im2col(gconstpointer data) {
  if (!begin(data)) return;
  I2vStream *main_stream = gs;
  gs = stream_with_conv("im2col");
  cudnn_on = FALSE;
  for (guint i = 0; i < G_N_ELEMENTS(conv_cases); i++) check_conv2d(&conv_cases[i]);
  check_conv_frames_cases();
  cudnn_on = TRUE;
  i2v_stream_free(gs);
  gs = main_stream;
}

#ifdef I2V_CUDA_SIM
/* Makes the stand-in's next cudnnConvolutionForward return st without running. */
static void cudnn_sim_fail_next(cudnnStatus_t st) {
  void (*fail)(cudnnStatus_t) = (void (*)(cudnnStatus_t))cudnn_sim_symbol("cudnnsim_fail_next");
  fail(st);
}

/* A cuDNN failure is the sticky error naming the call and cuDNN's status; a NOT_SUPPORTED from
 * the run itself falls back to the GEMM path for that shape, correctly and from then on. */
static void test_conv_cudnn_errors(gconstpointer data) {
  if (!begin(data)) return;
  I2vStream *main_stream = gs;
  gs = stream_with_conv(NULL); /* a fresh plan cache */
  const ConvCase *c = &conv_cases[0];
  cudnn_sim_fail_next(CUDNN_STATUS_NOT_SUPPORTED);
  cudnn_on = FALSE; /* declined at the run: the GEMM path computes it ... */
  check_conv2d(c);
  check_conv2d(c); /* ... and takes that shape from then on */
  cudnn_on = TRUE;
  check_conv_frames(2, 5, 7, 6, 9, TRUE, FALSE); /* other shapes still go to cuDNN */

  cudnn_sim_fail_next(CUDNN_STATUS_EXECUTION_FAILED);
  int64_t xs[] = {1, 4, 4, 2}, ws[] = {3, 3, 3, 2}, ys[] = {1, 4, 4, 3};
  Pair x = rnd(4, xs), w = rnd(4, ws), y = out(4, ys, FALSE);
  I2vConvParams p = {1, 1, 1, 1, 1};
  i2v_op_conv2d(gs, &y.g, &x.g, &w.g, NULL, &p, FALSE); /* no log message: g_test_init makes
                                                          warnings fatal; the error reports it */
  GError *err = NULL;
  g_assert_false(i2v_stream_check(gs, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_BACKEND);
  if (strstr(err->message, "conv_fwd") == NULL ||
      strstr(err->message, "CUDNN_STATUS_EXECUTION_FAILED") == NULL)
    g_error("the error should name the cuDNN call and status: %s", err->message);
  g_clear_error(&err);
  pair_free(&x), pair_free(&w), pair_free(&y);
  i2v_stream_free(gs);
  gs = main_stream;
}
#endif

/* ---- norms ---- */

static void check_group_norm(int64_t S, int64_t T, int64_t C, int groups, I2vAct act, double offset,
                             gboolean in_place) {
  int64_t xs[] = {S * T, C}, cs[] = {C};
  Pair x = pair_of(i2v_backend_act_dtype(g), 2, xs, offset - 1, offset + 1, FALSE);
  Pair gm = rnd(1, cs), bt = rnd(1, cs), y = in_place ? x : out(2, xs, FALSE);
  i2v_op_group_norm(cpu_st, &y.c, &x.c, &gm.c, &bt.c, S, groups, 1e-6f, act);
  i2v_op_group_norm(gs, &y.g, &x.g, &gm.g, &bt.g, S, groups, 1e-6f, act);
  char *what = g_strdup_printf("group_norm S%" G_GINT64_FORMAT " T%" G_GINT64_FORMAT
                               " C%" G_GINT64_FORMAT " G%d offset %g",
                               S, T, C, groups, offset);
  assert_pair(&y, what);
  g_free(what);
  if (!in_place) pair_free(&y);
  pair_free(&x), pair_free(&gm), pair_free(&bt);
}

static void test_group_norm(gconstpointer data) {
  if (!begin(data)) return;
  check_group_norm(4, 35, 64, 8, I2V_ACT_NONE, 0, FALSE);      /* per frame */
  check_group_norm(2, 16 * 25, 32, 8, I2V_ACT_SILU, 0, FALSE); /* per video across frames */
  check_group_norm(1, 20000, 64, 32, I2V_ACT_SILU, 0, TRUE);   /* several chunks per group */
  check_group_norm(3, 50, 40, 4, I2V_ACT_NONE, 10, FALSE);     /* mean far from 0 */
}

static void check_layer_norm(int64_t rows, int64_t C, gboolean in_place) {
  int64_t xs[] = {rows, C}, cs[] = {C};
  Pair x = rnd(2, xs), gm = rnd(1, cs), bt = rnd(1, cs), y = in_place ? x : out(2, xs, FALSE);
  i2v_op_layer_norm(cpu_st, &y.c, &x.c, &gm.c, &bt.c, 1e-5f);
  i2v_op_layer_norm(gs, &y.g, &x.g, &gm.g, &bt.g, 1e-5f);
  assert_pair(&y, "layer_norm");
  if (!in_place) pair_free(&y);
  pair_free(&x), pair_free(&gm), pair_free(&bt);
}

static void test_layer_norm(gconstpointer data) {
  if (!begin(data)) return;
  check_layer_norm(1, 7, FALSE);
  check_layer_norm(77, 1024, FALSE);
  check_layer_norm(301, 37, TRUE);
}

/* ---- attention ---- */

typedef struct {
  int64_t offset, outer, inner, token;
} Strides;

static I2vSeqView view(const I2vTensor *t, Strides s) {
  I2vSeqView v = {t, s.offset, s.outer, s.inner, s.token};
  return v;
}

/* Runs attention on both backends with the same views and compares the output tensor. */
static void run_attention(Pair *o, Strides os, Pair *q, Strides qs, Pair *k, Strides ks, Pair *v,
                          Strides vs, const I2vAttnShape *s, const char *what) {
  I2vSeqView oc = view(&o->c, os), qc = view(&q->c, qs), kc = view(&k->c, ks), vc = view(&v->c, vs);
  I2vSeqView og = view(&o->g, os), qg = view(&q->g, qs), kg = view(&k->g, ks), vg = view(&v->g, vs);
  i2v_op_attention(cpu_st, &oc, &qc, &kc, &vc, s);
  i2v_op_attention(gs, &og, &qg, &kg, &vg, s);
  char *w = g_strdup_printf("attention %s (q %" G_GINT64_FORMAT ", kv %" G_GINT64_FORMAT
                            ", heads %d, head_dim %d, causal %d)",
                            what, s->q_len, s->kv_len, s->heads, s->head_dim, s->causal);
  assert_pair(o, w);
  g_free(w);
}

/* q/out [N, T, C], k/v [N / kv_div, L, C]: self, cross, causal, kv_outer_div. */
static void check_attention_plain(int64_t N, int64_t T, int64_t L, int heads, int hd,
                                  gboolean causal, int64_t kv_div) {
  int64_t C = (int64_t)heads * hd, qsh[] = {N, T, C}, ksh[] = {N / kv_div, L, C};
  Pair q = rnd(3, qsh), k = rnd(3, ksh), v = rnd(3, ksh), o = out(3, qsh, FALSE);
  I2vAttnShape s = {N, 1, kv_div, T, L, heads, hd, 1.0f / sqrtf((float)hd), causal};
  Strides qs = {0, T * C, 0, C}, ks = {0, L * C, 0, C};
  run_attention(&o, qs, &q, qs, &k, ks, &v, ks, &s, kv_div > 1 ? "kv_outer_div" : "plain");
  pair_free(&q), pair_free(&k), pair_free(&v), pair_free(&o);
}

/* q, k, v packed in one [N, T, 3C] tensor (offsets 0, C, 2C). */
static void check_attention_packed(int64_t N, int64_t T, int heads, int hd) {
  int64_t C = (int64_t)heads * hd, psh[] = {N, T, 3 * C}, osh[] = {N, T, C};
  Pair qkv = rnd(3, psh), o = out(3, osh, FALSE);
  I2vAttnShape s = {N, 1, 1, T, T, heads, hd, 0.125f, FALSE};
  Strides qs = {0, T * 3 * C, 0, 3 * C}, ks = qs, vs = qs, os = {0, T * C, 0, C};
  ks.offset = C, vs.offset = 2 * C;
  run_attention(&o, os, &qkv, qs, &qkv, ks, &qkv, vs, &s, "packed qkv");
  pair_free(&qkv), pair_free(&o);
}

/* Temporal: sequences are the pixels of [B, F, HW, C], tokens the frames. */
static void check_attention_temporal(int64_t B, int64_t F, int64_t HW, int heads, int hd) {
  int64_t C = (int64_t)heads * hd, sh[] = {B, F, HW, C};
  Pair q = rnd(4, sh), k = rnd(4, sh), v = rnd(4, sh), o = out(4, sh, FALSE);
  I2vAttnShape s = {B, HW, 1, F, F, heads, hd, 1.0f / sqrtf((float)hd), FALSE};
  Strides st = {0, F * HW * C, C, HW * C};
  run_attention(&o, st, &q, st, &k, st, &v, st, &s, "temporal");
  pair_free(&q), pair_free(&k), pair_free(&v), pair_free(&o);
}

static void test_attention(gconstpointer data) {
  if (!begin(data)) return;
  check_attention_plain(2, 37, 37, 2, 64, FALSE, 1);   /* spatial self, hot head_dim */
  check_attention_plain(2, 77, 77, 3, 64, TRUE, 1);    /* CLIP text, causal */
  check_attention_plain(1, 257, 257, 2, 80, FALSE, 1); /* CLIP vision head_dim */
  check_attention_plain(1, 40, 40, 1, 128, TRUE, 1);
  check_attention_plain(3, 9, 9, 2, 4, FALSE, 1); /* tiny model head_dims */
  check_attention_plain(2, 5, 5, 3, 2, TRUE, 1);
  check_attention_plain(1, 30, 12, 2, 16, TRUE, 1); /* causal with fewer keys than queries */
  check_attention_plain(1, 40, 12, 2, 16, TRUE, 1);
  check_attention_plain(2, 130, 130, 2, 32, TRUE, 1); /* partial query and key tiles */
  check_attention_plain(8, 50, 7, 2, 64, FALSE, 4);   /* cross: 4 frames over one context */
  check_attention_plain(1, LONG_SEQ, LONG_SEQ, 1, 64, FALSE, 1); /* long: many key tiles */
  check_attention_packed(2, 45, 2, 64);
  check_attention_packed(1, 33, 3, 40);
  check_attention_temporal(2, 16, 10, 2, 64);
  check_attention_temporal(1, 1, 6, 2, 8); /* one frame */
  check_attention_temporal(1, 5, 4, 2, 4);
  /* heads wider than the fused kernels take: the GEMM path */
  check_attention_plain(2, 70, 70, 1, 512, FALSE, 1); /* the VAE mid-block's one head */
  check_attention_plain(1, 45, 30, 2, 160, TRUE, 1);  /* causal, fewer keys than queries */
  check_attention_plain(4, 20, 9, 2, 136, FALSE, 2);  /* cross, kv_outer_div */
  check_attention_packed(1, 24, 2, 136);
  check_attention_temporal(1, 6, 3, 1, 160);
}

/* ---- elementwise and data movement ---- */

static void test_unary(gconstpointer data) {
  if (!begin(data)) return;
  int64_t sh[] = {33, 17};
  for (int a = I2V_ACT_NONE; a <= I2V_ACT_QUICK_GELU; a++) {
    Pair x = pair_of(i2v_backend_act_dtype(g), 2, sh, -6, 6, FALSE), y = out(2, sh, FALSE);
    i2v_op_unary(cpu_st, &y.c, &x.c, a);
    i2v_op_unary(gs, &y.g, &x.g, a);
    assert_pair(&y, "unary");
    i2v_op_unary(cpu_st, &x.c, &x.c, a); /* in place */
    i2v_op_unary(gs, &x.g, &x.g, a);
    assert_pair(&x, "unary in place");
    pair_free(&x), pair_free(&y);
  }
}

static void test_geglu(gconstpointer data) {
  if (!begin(data)) return;
  int64_t xs[] = {2, 19, 2 * 13}, ys[] = {2, 19, 13};
  Pair x = pair_of(i2v_backend_act_dtype(g), 3, xs, -4, 4, FALSE), y = out(3, ys, FALSE);
  i2v_op_geglu(cpu_st, &y.c, &x.c);
  i2v_op_geglu(gs, &y.g, &x.g);
  assert_pair(&y, "geglu");
  pair_free(&x), pair_free(&y);
}

static void test_add_axpby(gconstpointer data) {
  if (!begin(data)) return;
  int64_t sh[] = {1001};
  Pair a = rnd(1, sh), b = rnd(1, sh), y = out(1, sh, FALSE);
  i2v_op_add(cpu_st, &y.c, &a.c, &b.c);
  i2v_op_add(gs, &y.g, &a.g, &b.g);
  assert_pair(&y, "add");
  i2v_op_axpby(cpu_st, &a.c, 0.75f, &a.c, -1.5f, &b.c); /* y aliases a */
  i2v_op_axpby(gs, &a.g, 0.75f, &a.g, -1.5f, &b.g);
  assert_pair(&a, "axpby in place");
  /* latents kept in F32 next to activations of the backend's dtype */
  Pair l = pair_of(I2V_DTYPE_F32, 1, sh, -1, 1, FALSE);
  i2v_op_axpby(cpu_st, &l.c, 0.5f, &l.c, 2.0f, &b.c);
  i2v_op_axpby(gs, &l.g, 0.5f, &l.g, 2.0f, &b.g);
  assert_pair(&l, "axpby F32 with activations");
  pair_free(&a), pair_free(&b), pair_free(&y), pair_free(&l);
}

static void test_add_rows(gconstpointer data) {
  if (!begin(data)) return;
  int64_t xs[] = {3, 7, 5, 11}, vs[] = {3, 11};
  Pair x = rnd(4, xs), v = rnd(2, vs);
  i2v_op_add_rows(cpu_st, &x.c, &v.c);
  i2v_op_add_rows(gs, &x.g, &v.g);
  assert_pair(&x, "add_rows");
  pair_free(&x), pair_free(&v);
}

static void test_concat_last(gconstpointer data) {
  if (!begin(data)) return;
  int64_t as[] = {4, 6, 5, 3}, bs[] = {4, 6, 5, 7}, ys[] = {4, 6, 5, 10};
  Pair a = rnd(4, as), b = rnd(4, bs), y = out(4, ys, FALSE);
  i2v_op_concat_last(cpu_st, &y.c, &a.c, &b.c);
  i2v_op_concat_last(gs, &y.g, &a.g, &b.g);
  assert_pair(&y, "concat_last");
  pair_free(&a), pair_free(&b), pair_free(&y);
}

static void check_resize(gboolean pool, int64_t N, int64_t H, int64_t W, int64_t C, int64_t Ho,
                         int64_t Wo) {
  int64_t xs[] = {N, H, W, C}, ys[] = {N, Ho, Wo, C};
  Pair x = rnd(4, xs), y = out(4, ys, FALSE);
  if (pool) {
    i2v_op_adaptive_avg_pool(cpu_st, &y.c, &x.c);
    i2v_op_adaptive_avg_pool(gs, &y.g, &x.g);
  } else {
    i2v_op_upsample_nearest(cpu_st, &y.c, &x.c);
    i2v_op_upsample_nearest(gs, &y.g, &x.g);
  }
  assert_pair(&y, pool ? "adaptive_avg_pool" : "upsample_nearest");
  pair_free(&x), pair_free(&y);
}

static void test_resize(gconstpointer data) {
  if (!begin(data)) return;
  check_resize(FALSE, 2, 5, 7, 3, 10, 14);  /* ×2 */
  check_resize(FALSE, 1, 5, 7, 4, 7, 9);    /* odd ratios */
  check_resize(TRUE, 2, 88, 40, 3, 32, 32); /* overlapping windows */
  check_resize(TRUE, 1, 7, 9, 5, 3, 4);
}

static void check_permute(int ndim, const int64_t *xs, const int *perm) {
  int64_t ys[I2V_MAX_DIMS];
  for (int d = 0; d < ndim; d++) ys[d] = xs[perm[d]];
  Pair x = rnd(ndim, xs), y = out(ndim, ys, FALSE);
  i2v_op_permute(cpu_st, &y.c, &x.c, perm);
  i2v_op_permute(gs, &y.g, &x.g, perm);
  assert_pair(&y, "permute");
  pair_free(&x), pair_free(&y);
}

static void test_permute(gconstpointer data) {
  if (!begin(data)) return;
  const int64_t x5[] = {2, 3, 4, 5, 6}, x4[] = {3, 7, 5, 2}, x2[] = {9, 13};
  const int p5[] = {0, 3, 4, 1, 2}, p4[] = {0, 2, 1, 3}, p2[] = {1, 0};
  check_permute(5, x5, p5);
  check_permute(4, x4, p4);
  check_permute(2, x2, p2);
}

static void test_gather_fill_copy(gconstpointer data) {
  if (!begin(data)) return;
  int64_t ts[] = {50, 24}, ys[] = {2, 7, 24};
  const int64_t ids[] = {3, 0, 49, 49, 17, 8, 1, 2, 3, 4, 5, 6, 7, 8};
  Pair t = rnd(2, ts), y = out(3, ys, FALSE);
  i2v_op_gather_rows(cpu_st, &y.c, &t.c, ids);
  i2v_op_gather_rows(gs, &y.g, &t.g, ids);
  assert_pair(&y, "gather_rows");
  i2v_op_fill(cpu_st, &y.c, -0.375f);
  i2v_op_fill(gs, &y.g, -0.375f);
  assert_pair(&y, "fill");
  int64_t cs[] = {14, 24};
  Pair c = out(2, cs, FALSE), f = pair_of(I2V_DTYPE_F32, 2, cs, -1, 1, FALSE);
  i2v_op_copy(cpu_st, &c.c, &y.c);
  i2v_op_copy(gs, &c.g, &y.g);
  assert_pair(&c, "copy");
  i2v_op_copy(cpu_st, &c.c, &f.c); /* with a dtype conversion on the GPU */
  i2v_op_copy(gs, &c.g, &f.g);
  assert_pair(&c, "copy from F32");
  pair_free(&t), pair_free(&y), pair_free(&c), pair_free(&f);
}

/* The scratch arena survives growth past its first chunk and hands memory back on release. */
static void test_scratch(gconstpointer data) {
  if (!begin(data)) return;
  size_t mark = i2v_scratch_mark(gs);
  int64_t big[] = {(int64_t)(300 << 20) / 4}; /* more than the first chunk */
  I2vTensor a = i2v_scratch_tensor(gs, 1, (int64_t[]){1000});
  I2vTensor b = i2v_scratch_tensor(gs, 1, big);
  g_assert_nonnull(a.data);
  g_assert_nonnull(b.data);
  i2v_op_fill(gs, &b, 1.0f);
  g_assert_true(i2v_stream_check(gs, NULL));
  i2v_scratch_release(gs, mark);
  g_assert_cmpuint(i2v_scratch_mark(gs), ==, mark);
  I2vTensor c = i2v_scratch_tensor(gs, 1, (int64_t[]){1000});
  g_assert_true(c.data == a.data); /* reused, not grown */
  i2v_scratch_release(gs, mark);
}

/* An impossible allocation is an I2V_ERROR_NO_MEMORY error saying how much was asked. */
static void test_no_memory(gconstpointer data) {
  if (!begin(data)) return;
  I2vTensor t;
  GError *err = NULL;
  int64_t sh[] = {(int64_t)1 << 50};
  g_assert_false(i2v_tensor_alloc(g, &t, i2v_backend_act_dtype(g), 1, sh, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_NO_MEMORY);
  g_assert_nonnull(strstr(err->message, "bytes free"));
  g_clear_error(&err);
}

/* ---- device selection (runs everywhere) ---- */

static void expect_no_backend(const char *device, const char *precision, const char *frag) {
  GError *err = NULL;
  I2vBackend *be = i2v_backend_new_for_device(device, precision, 0, &err);
  g_assert_null(be);
  g_assert_nonnull(err);
  g_test_message("%s/%s: %s", device, precision ? precision : "-", err->message);
  if (strstr(err->message, frag) == NULL)
    g_error("error for %s/%s should name %s: %s", device, precision, frag, err->message);
  g_error_free(err);
}

static void test_select_cpu(void) {
  GError *err = NULL;
  I2vBackend *be = i2v_backend_new_for_device("cpu", NULL, 0, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(i2v_backend_name(be), ==, "cpu");
  i2v_backend_free(be);
  be = i2v_backend_new_for_device("cpu", "fp32", 0, &err);
  g_assert_no_error(err);
  i2v_backend_free(be);
  expect_no_backend("cpu", "fp16", "fp16");
  expect_no_backend("cpu", "bf16", "fp32 only");
}

static void test_select_bad_names(void) {
  expect_no_backend("tpu", NULL, "\"tpu\"");
  expect_no_backend("cuda:x", NULL, "\"cuda:x\"");
  expect_no_backend("cuda:", NULL, "\"cuda:\"");
  expect_no_backend("cpu", "fp8", "\"fp8\"");
}

static void test_select_cuda(void) {
  GError *err = NULL;
  I2vBackend *be = i2v_backend_new_for_device("cuda:0", NULL, 0, &err);
  if (i2v_cuda_device_count() == 0) { /* this machine: a clear error, not a crash */
    g_assert_null(be);
    g_assert_error(err, I2V_ERROR, I2V_ERROR_BACKEND);
    g_test_message("cuda:0 without a device: %s", err->message);
    g_assert_nonnull(strstr(err->message, "cuda:0"));
    g_assert_nonnull(strstr(err->message, "CUDA"));
    g_clear_error(&err);
  } else {
    g_assert_no_error(err);
    g_assert_cmpstr(i2v_backend_name(be), ==, "cuda:0");
    g_assert_cmpint(i2v_backend_act_dtype(be), ==, I2V_DTYPE_F16);
    i2v_backend_free(be);
  }
  expect_no_backend("cuda:99", NULL, "cuda:99");
}

static void test_select_auto(void) {
  GError *err = NULL;
  I2vBackend *be = i2v_backend_new_for_device("auto", NULL, 0, &err);
  g_assert_no_error(err);
  g_assert_cmpstr(i2v_backend_name(be), ==, i2v_cuda_device_count() > 0 ? "cuda:0" : "cpu");
  i2v_backend_free(be);
  be = i2v_backend_new_for_device(NULL, "fp32", 0, &err);
  g_assert_no_error(err);
  g_assert_cmpint(i2v_backend_act_dtype(be), ==, I2V_DTYPE_F32);
  i2v_backend_free(be);
  if (i2v_cuda_device_count() == 0) expect_no_backend("auto", "bf16", "bf16");
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  rng = g_rand_new_with_seed(20261127);
  cpu = i2v_cpu_backend_new(0);
  cpu_st = i2v_stream_new(cpu, NULL);
  for (guint i = 0; i < G_N_ELEMENTS(precisions); i++) {
    GError *err = NULL;
    gpu[i] = i2v_cuda_backend_new(0, precisions[i].dtype, &err);
    if (gpu[i] == NULL && gpu_missing == NULL)
      gpu_missing = g_strdup_printf("no CUDA backend: %s", err->message);
    g_clear_error(&err);
  }

  g_test_add_func("/cuda/select/cpu", test_select_cpu);
  g_test_add_func("/cuda/select/bad-names", test_select_bad_names);
  g_test_add_func("/cuda/select/cuda", test_select_cuda);
  g_test_add_func("/cuda/select/auto", test_select_auto);
  static const struct {
    const char *name;
    GTestDataFunc fn;
  } tests[] = {
      {"linear", test_linear},
      {"conv2d", test_conv2d},
      {"conv_frames", test_conv_frames},
      {"conv_im2col", test_conv_im2col},
#ifdef I2V_CUDA_SIM
      {"conv_cudnn_errors", test_conv_cudnn_errors},
#endif
      {"group_norm", test_group_norm},
      {"layer_norm", test_layer_norm},
      {"attention", test_attention},
      {"unary", test_unary},
      {"geglu", test_geglu},
      {"add_axpby", test_add_axpby},
      {"add_rows", test_add_rows},
      {"concat_last", test_concat_last},
      {"resize", test_resize},
      {"permute", test_permute},
      {"gather_fill_copy", test_gather_fill_copy},
      {"scratch", test_scratch},
      {"no_memory", test_no_memory},
  };
  for (guint p = 0; p < G_N_ELEMENTS(precisions); p++) {
    for (guint t = 0; t < G_N_ELEMENTS(tests); t++) {
      char *path = g_strdup_printf("/cuda/%s/%s", precisions[p].name, tests[t].name);
      g_test_add_data_func(path, &precisions[p], tests[t].fn);
      g_free(path);
    }
  }
  int rc = g_test_run();
  for (guint i = 0; i < G_N_ELEMENTS(precisions); i++) i2v_backend_free(gpu[i]);
  i2v_stream_free(cpu_st);
  i2v_backend_free(cpu);
  g_rand_free(rng);
  g_free(gpu_missing);
  return rc;
}
