/* The CPU op table against naive double-precision loops written here, at odd and real-ish shapes
 * (every path of every op: im2col blocks, 1×1 GEMMs, scalar and GEMM attention, ...), the op
 * wrappers' shape checks and sticky error, and the scratch arena's reuse. */
#include <math.h>
#include <string.h>

#include "arena.h"
#include "cpu_backend.h"
#include "ops.h"
#include <i2v/error.h>

#define RTOL 1e-5

static I2vBackend *be;
static I2vStream *st;
static GRand *rng;

/* ---- helpers ---- */

static float *random_floats(int64_t n) {
  float *v = g_new(float, MAX(n, 1));
  for (int64_t i = 0; i < n; i++) v[i] = (float)g_rand_double_range(rng, -1, 1);
  return v;
}

/* A backend tensor holding host (or zeros when host is NULL). */
static I2vTensor tensor_from(int ndim, const int64_t *shape, const float *host) {
  I2vTensor t;
  GError *err = NULL;
  g_assert_true(i2v_tensor_alloc(be, &t, I2V_DTYPE_F32, ndim, shape, &err));
  g_assert_no_error(err);
  if (host != NULL) g_assert_true(i2v_tensor_upload_f32(st, &t, host, &err));
  return t;
}

/* A backend tensor of random values; *host gets a copy (g_free) unless host is NULL. */
static I2vTensor random_tensor(int ndim, const int64_t *shape, float **host) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  float *h = random_floats(n);
  I2vTensor t = tensor_from(ndim, shape, h);
  if (host != NULL)
    *host = h;
  else
    g_free(h);
  return t;
}

static float *download(const I2vTensor *t) {
  float *h = g_new(float, MAX(i2v_tensor_numel(t), 1));
  GError *err = NULL;
  g_assert_true(i2v_tensor_download_f32(st, t, h, &err));
  g_assert_no_error(err);
  return h;
}

/* Asserts max |got - want| <= RTOL · max |want| (want computed in double by a naive loop). */
static void assert_close(const float *got, const double *want, int64_t n, const char *what) {
  double max_ref = 1e-30, max_err = 0;
  int64_t worst = 0;
  for (int64_t i = 0; i < n; i++) {
    max_ref = MAX(max_ref, fabs(want[i]));
    double e = fabs(got[i] - want[i]);
    if (!(e <= max_err)) { /* also catches NaN */
      max_err = isnan(e) ? INFINITY : e;
      worst = i;
    }
  }
  if (max_err > RTOL * max_ref)
    g_error("%s: max error %g at %" G_GINT64_FORMAT " (got %g, want %g, max |want| %g)", what,
            max_err, worst, got[worst], want[worst], max_ref);
}

/* Downloads t and compares it with want. */
static void assert_tensor(const I2vTensor *t, const double *want, const char *what) {
  g_assert_true(i2v_stream_check(st, NULL));
  float *got = download(t);
  assert_close(got, want, i2v_tensor_numel(t), what);
  g_free(got);
}

static double act_ref(double x, I2vAct act) {
  switch (act) {
  case I2V_ACT_SILU:
    return x / (1 + exp(-x));
  case I2V_ACT_GELU:
    return 0.5 * x * (1 + erf(x / sqrt(2.0)));
  case I2V_ACT_QUICK_GELU:
    return x / (1 + exp(-1.702 * x));
  default:
    return x;
  }
}

/* ---- linear ---- */

static void check_linear(int64_t M, int64_t K, int64_t N, gboolean bias, I2vAct act,
                         gboolean accumulate) {
  float *xh, *wh, *bh = NULL, *yh;
  int64_t xs[] = {M, K}, ws[] = {N, K}, bs[] = {N}, ys[] = {M, N};
  I2vTensor x = random_tensor(2, xs, &xh), w = random_tensor(2, ws, &wh);
  I2vTensor b = bias ? random_tensor(1, bs, &bh) : (I2vTensor){0};
  I2vTensor y = random_tensor(2, ys, &yh);
  i2v_op_linear(st, &y, &x, &w, bias ? &b : NULL, act, accumulate);
  double *want = g_new(double, M *N);
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double s = bias ? bh[n] : 0;
      for (int64_t k = 0; k < K; k++) s += (double)xh[m * K + k] * wh[n * K + k];
      want[m * N + n] = accumulate ? yh[m * N + n] + s : act_ref(s, act);
    }
  char what[96];
  g_snprintf(what, sizeof what,
             "linear M%" G_GINT64_FORMAT " K%" G_GINT64_FORMAT " N%" G_GINT64_FORMAT
             " bias%d act%d acc%d",
             M, K, N, bias, act, accumulate);
  assert_tensor(&y, want, what);
  i2v_tensor_free(&x), i2v_tensor_free(&w), i2v_tensor_free(&b), i2v_tensor_free(&y);
  g_free(xh), g_free(wh), g_free(bh), g_free(yh), g_free(want);
}

static void test_linear(void) {
  check_linear(1, 3, 5, TRUE, I2V_ACT_NONE, FALSE);
  check_linear(7, 33, 17, FALSE, I2V_ACT_NONE, FALSE);
  check_linear(130, 64, 31, TRUE, I2V_ACT_GELU, FALSE);
  check_linear(5, 9, 6, TRUE, I2V_ACT_SILU, FALSE);
  check_linear(4, 10, 3, FALSE, I2V_ACT_QUICK_GELU, FALSE);
  check_linear(9, 21, 11, TRUE, I2V_ACT_NONE, TRUE);
  check_linear(3, 8, 5, FALSE, I2V_ACT_NONE, TRUE);
}

/* A 3-D x is [rows, K] to a linear layer. */
static void test_linear_3d(void) {
  int64_t xs[] = {2, 3, 4}, ws[] = {5, 4}, ys[] = {2, 3, 5};
  float *xh, *wh;
  I2vTensor x = random_tensor(3, xs, &xh), w = random_tensor(2, ws, &wh);
  I2vTensor y = tensor_from(3, ys, NULL);
  i2v_op_linear(st, &y, &x, &w, NULL, I2V_ACT_NONE, FALSE);
  double want[30];
  for (int m = 0; m < 6; m++)
    for (int n = 0; n < 5; n++) {
      want[m * 5 + n] = 0;
      for (int k = 0; k < 4; k++) want[m * 5 + n] += (double)xh[m * 4 + k] * wh[n * 4 + k];
    }
  assert_tensor(&y, want, "linear 3-D");
  i2v_tensor_free(&x), i2v_tensor_free(&w), i2v_tensor_free(&y);
  g_free(xh), g_free(wh);
}

/* ---- conv2d ---- */

typedef struct {
  int64_t n, h, w, ci, co, kh, kw;
  I2vConvParams p;
  gboolean bias, accumulate;
} ConvCase;

static void check_conv2d(const ConvCase *c) {
  int64_t ho = (c->h + c->p.pad_top + c->p.pad_bottom - c->kh) / c->p.stride + 1;
  int64_t wo = (c->w + c->p.pad_left + c->p.pad_right - c->kw) / c->p.stride + 1;
  int64_t xs[] = {c->n, c->h, c->w, c->ci}, ws[] = {c->co, c->kh, c->kw, c->ci}, bs[] = {c->co};
  int64_t ys[] = {c->n, ho, wo, c->co};
  float *xh, *wh, *bh = NULL, *yh;
  I2vTensor x = random_tensor(4, xs, &xh), w = random_tensor(4, ws, &wh);
  I2vTensor b = c->bias ? random_tensor(1, bs, &bh) : (I2vTensor){0};
  I2vTensor y = random_tensor(4, ys, &yh);
  size_t mark = i2v_scratch_mark(st);
  i2v_op_conv2d(st, &y, &x, &w, c->bias ? &b : NULL, &c->p, c->accumulate);
  g_assert_cmpuint(i2v_scratch_mark(st), ==, mark); /* the im2col workspace is given back */
  double *want = g_new(double, c->n *ho *wo * c->co);
  for (int64_t n = 0; n < c->n; n++)
    for (int64_t oh = 0; oh < ho; oh++)
      for (int64_t ow = 0; ow < wo; ow++)
        for (int64_t co = 0; co < c->co; co++) {
          double s = c->bias ? bh[co] : 0;
          for (int64_t i = 0; i < c->kh; i++)
            for (int64_t j = 0; j < c->kw; j++) {
              int64_t ih = oh * c->p.stride - c->p.pad_top + i;
              int64_t iw = ow * c->p.stride - c->p.pad_left + j;
              if (ih < 0 || ih >= c->h || iw < 0 || iw >= c->w) continue;
              for (int64_t ci = 0; ci < c->ci; ci++)
                s += (double)xh[((n * c->h + ih) * c->w + iw) * c->ci + ci] *
                     wh[((co * c->kh + i) * c->kw + j) * c->ci + ci];
            }
          int64_t o = ((n * ho + oh) * wo + ow) * c->co + co;
          want[o] = c->accumulate ? yh[o] + s : s;
        }
  char what[128];
  g_snprintf(what, sizeof what, "conv2d %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " s%d pad %d%d%d%d",
             c->kh, c->kw, c->p.stride, c->p.pad_top, c->p.pad_left, c->p.pad_bottom,
             c->p.pad_right);
  assert_tensor(&y, want, what);
  i2v_tensor_free(&x), i2v_tensor_free(&w), i2v_tensor_free(&b), i2v_tensor_free(&y);
  g_free(xh), g_free(wh), g_free(bh), g_free(yh), g_free(want);
}

static void test_conv2d(void) {
  static const ConvCase cases[] = {
      /* 1×1 stride 1: the plain-GEMM path */
      {2, 5, 3, 7, 5, 1, 1, {1, 0, 0, 0, 0}, TRUE, FALSE},
      {1, 1, 1, 3, 2, 1, 1, {1, 0, 0, 0, 0}, FALSE, TRUE},
      /* 3×3 pad 1 stride 1 (the usual conv), odd sizes, C not a multiple of 4 */
      {2, 6, 7, 5, 6, 3, 3, {1, 1, 1, 1, 1}, TRUE, FALSE},
      {1, 1, 1, 3, 5, 3, 3, {1, 1, 1, 1, 1}, TRUE, FALSE},
      /* UNet down-sampler: 3×3 stride 2 symmetric pad 1, odd and even inputs */
      {2, 7, 8, 6, 3, 3, 3, {2, 1, 1, 1, 1}, TRUE, FALSE},
      {1, 9, 5, 4, 4, 3, 3, {2, 1, 1, 1, 1}, FALSE, FALSE},
      /* VAE down-sampler: pad only bottom/right by 1, stride 2 */
      {2, 8, 6, 5, 7, 3, 3, {2, 0, 0, 1, 1}, TRUE, FALSE},
      {1, 7, 9, 3, 2, 3, 3, {2, 0, 0, 1, 1}, TRUE, FALSE},
      /* 14×14 stride 14 patch embedding (CLIP vision), no padding */
      {1, 28, 42, 3, 4, 14, 14, {14, 0, 0, 0, 0}, FALSE, FALSE},
      /* 1×1 with stride or padding goes through im2col; unpadded 3×3; accumulate */
      {1, 5, 6, 3, 4, 1, 1, {2, 0, 0, 0, 0}, TRUE, FALSE},
      {1, 4, 4, 2, 3, 1, 1, {1, 1, 0, 0, 1}, TRUE, FALSE},
      {2, 5, 6, 4, 3, 3, 3, {1, 0, 0, 0, 0}, TRUE, TRUE},
      /* asymmetric everything */
      {1, 6, 5, 3, 2, 2, 3, {1, 2, 0, 1, 3}, TRUE, FALSE},
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) check_conv2d(&cases[i]);
}

/* Enough rows that the im2col workspace is filled in several blocks. */
static void test_conv2d_blocks(void) {
  ConvCase c = {1, 128, 130, 64, 3, 3, 3, {1, 1, 1, 1, 1}, TRUE, FALSE};
  check_conv2d(&c);
}

/* ---- conv_frames ---- */

static void check_conv_frames(int64_t B, int64_t F, int64_t T, int64_t ci, int64_t co,
                              gboolean bias, gboolean accumulate) {
  int64_t xs[] = {B, F, T, ci}, ws[] = {co, 3, ci}, bs[] = {co}, ys[] = {B, F, T, co};
  float *xh, *wh, *bh = NULL, *yh;
  I2vTensor x = random_tensor(4, xs, &xh), w = random_tensor(3, ws, &wh);
  I2vTensor b = bias ? random_tensor(1, bs, &bh) : (I2vTensor){0};
  I2vTensor y = random_tensor(4, ys, &yh);
  i2v_op_conv_frames(st, &y, &x, &w, bias ? &b : NULL, accumulate);
  double *want = g_new(double, B *F *T *co);
  for (int64_t bi = 0; bi < B; bi++)
    for (int64_t f = 0; f < F; f++)
      for (int64_t t = 0; t < T; t++)
        for (int64_t o = 0; o < co; o++) {
          double s = bias ? bh[o] : 0;
          for (int64_t k = 0; k < 3; k++) {
            int64_t fi = f + k - 1;
            if (fi < 0 || fi >= F) continue;
            for (int64_t c = 0; c < ci; c++)
              s += (double)xh[((bi * F + fi) * T + t) * ci + c] * wh[(o * 3 + k) * ci + c];
          }
          int64_t at = ((bi * F + f) * T + t) * co + o;
          want[at] = accumulate ? yh[at] + s : s;
        }
  assert_tensor(&y, want, "conv_frames");
  i2v_tensor_free(&x), i2v_tensor_free(&w), i2v_tensor_free(&b), i2v_tensor_free(&y);
  g_free(xh), g_free(wh), g_free(bh), g_free(yh), g_free(want);
}

static void test_conv_frames(void) {
  check_conv_frames(2, 5, 3, 6, 4, TRUE, FALSE);
  check_conv_frames(1, 1, 4, 3, 5, TRUE, FALSE);
  check_conv_frames(1, 2, 1, 7, 2, FALSE, FALSE);
  check_conv_frames(3, 4, 5, 5, 3, TRUE, TRUE);
  check_conv_frames(1, 16, 9, 32, 32, FALSE, TRUE);
}

/* ---- norms ---- */

static void check_group_norm(int64_t S, int64_t T, int64_t C, int groups, I2vAct act,
                             gboolean in_place) {
  int64_t xs[] = {S, T, C}, cs[] = {C};
  float *xh, *gh, *bh;
  I2vTensor x = random_tensor(3, xs, &xh), g = random_tensor(1, cs, &gh);
  I2vTensor b = random_tensor(1, cs, &bh);
  for (int64_t i = 0; i < S * T * C; i++) xh[i] = xh[i] * 3 + 5; /* a mean far from 0 */
  GError *err = NULL;
  g_assert_true(i2v_tensor_upload_f32(st, &x, xh, &err));
  I2vTensor y = in_place ? x : tensor_from(3, xs, NULL);
  i2v_op_group_norm(st, &y, &x, &g, &b, S, groups, 1e-5f, act);
  double *want = g_new(double, S *T *C);
  int64_t cg = C / groups;
  for (int64_t s = 0; s < S; s++)
    for (int gi = 0; gi < groups; gi++) {
      double sum = 0, var = 0, n = (double)T * cg;
      for (int64_t t = 0; t < T; t++)
        for (int64_t c = gi * cg; c < (gi + 1) * cg; c++) sum += xh[(s * T + t) * C + c];
      for (int64_t t = 0; t < T; t++)
        for (int64_t c = gi * cg; c < (gi + 1) * cg; c++)
          var += pow(xh[(s * T + t) * C + c] - sum / n, 2);
      for (int64_t t = 0; t < T; t++)
        for (int64_t c = gi * cg; c < (gi + 1) * cg; c++) {
          int64_t at = (s * T + t) * C + c;
          want[at] = act_ref((xh[at] - sum / n) / sqrt(var / n + 1e-5) * gh[c] + bh[c], act);
        }
    }
  assert_tensor(&y, want, "group_norm");
  if (!in_place) i2v_tensor_free(&y);
  i2v_tensor_free(&x), i2v_tensor_free(&g), i2v_tensor_free(&b);
  g_free(xh), g_free(gh), g_free(bh), g_free(want);
}

static void test_group_norm(void) {
  check_group_norm(1, 40, 12, 4, I2V_ACT_NONE, FALSE); /* temporal: all frames one sample */
  check_group_norm(3, 7, 12, 4, I2V_ACT_SILU, FALSE);  /* per frame */
  check_group_norm(2, 1, 6, 3, I2V_ACT_NONE, TRUE);    /* one token, in place */
  check_group_norm(4, 9, 64, 32, I2V_ACT_SILU, TRUE);  /* 2 channels per group, in place */
  check_group_norm(1, 5, 7, 1, I2V_ACT_SILU, FALSE);   /* one group, odd C */
}

static void check_layer_norm(int64_t rows, int64_t C, gboolean in_place) {
  int64_t xs[] = {rows, C}, cs[] = {C};
  float *xh, *gh, *bh;
  I2vTensor x = random_tensor(2, xs, &xh), g = random_tensor(1, cs, &gh);
  I2vTensor b = random_tensor(1, cs, &bh);
  I2vTensor y = in_place ? x : tensor_from(2, xs, NULL);
  i2v_op_layer_norm(st, &y, &x, &g, &b, 1e-5f);
  double *want = g_new(double, rows *C);
  for (int64_t r = 0; r < rows; r++) {
    double sum = 0, var = 0;
    for (int64_t c = 0; c < C; c++) sum += xh[r * C + c];
    for (int64_t c = 0; c < C; c++) var += pow(xh[r * C + c] - sum / C, 2);
    for (int64_t c = 0; c < C; c++)
      want[r * C + c] = (xh[r * C + c] - sum / C) / sqrt(var / C + 1e-5) * gh[c] + bh[c];
  }
  assert_tensor(&y, want, "layer_norm");
  if (!in_place) i2v_tensor_free(&y);
  i2v_tensor_free(&x), i2v_tensor_free(&g), i2v_tensor_free(&b);
  g_free(xh), g_free(gh), g_free(bh), g_free(want);
}

static void test_layer_norm(void) {
  check_layer_norm(1, 7, FALSE);
  check_layer_norm(5, 64, FALSE);
  check_layer_norm(33, 5, TRUE);
}

/* ---- attention ---- */

/* A view's element for sequence (o, i), token j, channel c. */
static int64_t view_at(const I2vSeqView *v, int64_t o, int64_t i, int64_t j, int64_t c) {
  return v->offset + o * v->outer_stride + i * v->inner_stride + j * v->token_stride + c;
}

/* Runs attention and compares with a naive double softmax; q/k/v/out views are over tensors
 * whose host copies are qh/kh/vh (the out tensor's prior content is outh, kept outside views). */
static void check_attention(const I2vSeqView *out, const I2vSeqView *q, const I2vSeqView *k,
                            const I2vSeqView *v, const float *qh, const float *kh, const float *vh,
                            const float *outh, const I2vAttnShape *s, const char *what) {
  i2v_op_attention(st, out, q, k, v, s);
  int64_t n = i2v_tensor_numel(out->t), width = (int64_t)s->heads * s->head_dim;
  double *want = g_new(double, n), *p = g_new(double, s->kv_len);
  for (int64_t e = 0; e < n; e++) want[e] = outh[e];
  for (int64_t o = 0; o < s->n_outer; o++)
    for (int64_t i = 0; i < s->n_inner; i++)
      for (int h = 0; h < s->heads; h++)
        for (int64_t a = 0; a < s->q_len; a++) {
          int64_t visible = s->causal ? MIN(a + 1, s->kv_len) : s->kv_len, ko = o / s->kv_outer_div;
          double mx = -INFINITY, sum = 0;
          for (int64_t j = 0; j < visible; j++) {
            double d = 0;
            for (int c = 0; c < s->head_dim; c++)
              d += (double)qh[view_at(q, o, i, a, h * s->head_dim + c)] *
                   kh[view_at(k, ko, i, j, h * s->head_dim + c)];
            p[j] = d * s->scale;
            mx = MAX(mx, p[j]);
          }
          for (int64_t j = 0; j < visible; j++) sum += p[j] = exp(p[j] - mx);
          for (int c = 0; c < s->head_dim; c++) {
            double acc = 0;
            for (int64_t j = 0; j < visible; j++)
              acc += p[j] * vh[view_at(v, ko, i, j, h * s->head_dim + c)];
            want[view_at(out, o, i, a, h * s->head_dim + c)] = acc / sum;
          }
        }
  (void)width;
  assert_tensor(out->t, want, what);
  g_free(want), g_free(p);
}

/* Plain [N, T, C] tensors for q, k/v (per-video context when kv_outer_div > 1) and out. */
/* sharpness multiplies the usual 1/√head_dim scale (large: rows whose exps underflow). */
static void check_attention_plain(int64_t N, int64_t T, int64_t L, int heads, int hd,
                                  int64_t kv_div, gboolean causal, float sharpness,
                                  const char *what) {
  int64_t C = (int64_t)heads * hd, qs[] = {N, T, C}, ks[] = {N / kv_div, L, C};
  float *qh, *kh, *vh, *oh;
  I2vTensor q = random_tensor(3, qs, &qh), k = random_tensor(3, ks, &kh);
  I2vTensor v = random_tensor(3, ks, &vh), out = random_tensor(3, qs, &oh);
  I2vSeqView qv = {&q, 0, T * C, 0, C}, kv = {&k, 0, L * C, 0, C}, vv = {&v, 0, L * C, 0, C};
  I2vSeqView ov = {&out, 0, T * C, 0, C};
  I2vAttnShape s = {N, 1, kv_div, T, L, heads, hd, sharpness / sqrtf((float)hd), causal};
  check_attention(&ov, &qv, &kv, &vv, qh, kh, vh, oh, &s, what);
  i2v_tensor_free(&q), i2v_tensor_free(&k), i2v_tensor_free(&v), i2v_tensor_free(&out);
  g_free(qh), g_free(kh), g_free(vh), g_free(oh);
}

static void test_attention_plain(void) {
  check_attention_plain(2, 9, 9, 2, 4, 1, FALSE, 1, "attention plain hd4");
  check_attention_plain(1, 1, 1, 1, 4, 1, FALSE, 1, "attention one token");
  check_attention_plain(3, 5, 7, 3, 64, 1, FALSE, 1, "attention hd64 q≠kv");
  check_attention_plain(2, 77, 77, 2, 80, 1, TRUE, 1, "attention causal hd80 (gemm)");
  check_attention_plain(1, 13, 13, 2, 8, 1, TRUE, 1, "attention causal (scalar)");
  check_attention_plain(6, 10, 7, 2, 4, 3, FALSE, 1, "attention cross kv_outer_div 3");
  check_attention_plain(2, 9, 11, 2, 16, 1, FALSE, 200, "attention peaked (scalar)");
}

static void test_attention_long(void) {
  check_attention_plain(1, 600, 600, 2, 64, 1, FALSE, 1, "attention 600 tokens");
  check_attention_plain(1, 600, 600, 1, 4, 1, TRUE, 1, "attention 600 tokens causal hd4");
  check_attention_plain(4, 300, 77, 2, 80, 2, FALSE, 1, "attention 300 × 77 cross div 2");
  check_attention_plain(1, 70, 90, 2, 16, 1, TRUE, 200, "attention peaked causal (gemm)");
}

/* Packed QKV: one [N, T, 3C] tensor, q/k/v at channel offsets 0, C, 2C. */
static void check_attention_packed(int64_t N, int64_t T, int heads, int hd) {
  int64_t C = (int64_t)heads * hd, ps[] = {N, T, 3 * C}, os[] = {N, T, C};
  float *ph, *oh;
  I2vTensor p = random_tensor(3, ps, &ph), out = random_tensor(3, os, &oh);
  I2vSeqView qv = {&p, 0, T * 3 * C, 0, 3 * C}, kv = {&p, C, T * 3 * C, 0, 3 * C};
  I2vSeqView vv = {&p, 2 * C, T * 3 * C, 0, 3 * C}, ov = {&out, 0, T * C, 0, C};
  I2vAttnShape s = {N, 1, 1, T, T, heads, hd, 0.125f, FALSE};
  check_attention(&ov, &qv, &kv, &vv, ph, ph, ph, oh, &s, "attention packed qkv");
  i2v_tensor_free(&p), i2v_tensor_free(&out);
  g_free(ph), g_free(oh);
}

static void test_attention_packed(void) {
  check_attention_packed(2, 6, 2, 4);
  check_attention_packed(1, 100, 3, 64); /* GEMM path with lda = 3C */
}

/* Temporal attention over frames of [B, F, HW, C] without a transpose. */
static void check_attention_temporal(int64_t B, int64_t F, int64_t HW, int heads, int hd) {
  int64_t C = (int64_t)heads * hd, xs[] = {B, F, HW, C};
  float *qh, *kh, *vh, *oh;
  I2vTensor q = random_tensor(4, xs, &qh), k = random_tensor(4, xs, &kh);
  I2vTensor v = random_tensor(4, xs, &vh), out = random_tensor(4, xs, &oh);
  I2vSeqView qv = {&q, 0, F * HW * C, C, HW * C}, kv = {&k, 0, F * HW * C, C, HW * C};
  I2vSeqView vv = {&v, 0, F * HW * C, C, HW * C}, ov = {&out, 0, F * HW * C, C, HW * C};
  I2vAttnShape s = {B, HW, 1, F, F, heads, hd, 1.0f / sqrtf((float)hd), FALSE};
  check_attention(&ov, &qv, &kv, &vv, qh, kh, vh, oh, &s, "attention temporal");
  i2v_tensor_free(&q), i2v_tensor_free(&k), i2v_tensor_free(&v), i2v_tensor_free(&out);
  g_free(qh), g_free(kh), g_free(vh), g_free(oh);
}

static void test_attention_temporal(void) {
  check_attention_temporal(2, 5, 6, 2, 4);
  check_attention_temporal(1, 16, 3, 1, 64);
  check_attention_temporal(1, 70, 2, 1, 8); /* long enough for the GEMM path */
}

/* ---- elementwise ---- */

static void test_unary(void) {
  static const I2vAct acts[] = {I2V_ACT_NONE, I2V_ACT_SILU, I2V_ACT_GELU, I2V_ACT_QUICK_GELU};
  int64_t shape[] = {3, 37};
  for (guint a = 0; a < G_N_ELEMENTS(acts); a++)
    for (int in_place = 0; in_place < 2; in_place++) {
      float *xh;
      I2vTensor x = random_tensor(2, shape, &xh);
      for (int i = 0; i < 111; i++) xh[i] *= 8; /* reach the tails of the curves */
      g_assert_true(i2v_tensor_upload_f32(st, &x, xh, NULL));
      I2vTensor y = in_place ? x : tensor_from(2, shape, NULL);
      i2v_op_unary(st, &y, &x, acts[a]);
      double want[111];
      for (int i = 0; i < 111; i++) want[i] = act_ref(xh[i], acts[a]);
      assert_tensor(&y, want, "unary");
      if (!in_place) i2v_tensor_free(&y);
      i2v_tensor_free(&x);
      g_free(xh);
    }
}

/* Far tails, where exp over- or underflows: each value within 1e-5 relative (1e-30 absolute). */
static void test_unary_tails(void) {
  static const float xs[] = {-1000, -100, -88.5f, -87.5f, -20, 20, 87.5f, 88.5f, 100, 1000};
  static const I2vAct acts[] = {I2V_ACT_SILU, I2V_ACT_GELU, I2V_ACT_QUICK_GELU};
  int64_t n = G_N_ELEMENTS(xs);
  I2vTensor x = tensor_from(1, &n, xs), y = tensor_from(1, &n, NULL);
  for (guint a = 0; a < G_N_ELEMENTS(acts); a++) {
    i2v_op_unary(st, &y, &x, acts[a]);
    float *got = download(&y);
    for (int64_t i = 0; i < n; i++) {
      double want = act_ref(xs[i], acts[a]);
      if (!(fabs(got[i] - want) <= 1e-5 * fabs(want) + 1e-30))
        g_error("unary act %d at %g: got %g, want %g", acts[a], xs[i], got[i], want);
    }
    g_free(got);
  }
  i2v_tensor_free(&x), i2v_tensor_free(&y);
}

static void test_geglu(void) {
  int64_t xs[] = {5, 2, 14}, ys[] = {5, 2, 7};
  float *xh;
  I2vTensor x = random_tensor(3, xs, &xh), y = tensor_from(3, ys, NULL);
  i2v_op_geglu(st, &y, &x);
  double want[70];
  for (int m = 0; m < 10; m++)
    for (int f = 0; f < 7; f++)
      want[m * 7 + f] = xh[m * 14 + f] * act_ref(xh[m * 14 + 7 + f], I2V_ACT_GELU);
  assert_tensor(&y, want, "geglu");
  i2v_tensor_free(&x), i2v_tensor_free(&y);
  g_free(xh);
}

static void test_add_axpby(void) {
  int64_t shape[] = {7, 9};
  for (int alias = 0; alias < 3; alias++) { /* y separate, y = a, y = b */
    float *ah, *bh;
    I2vTensor a = random_tensor(2, shape, &ah), b = random_tensor(2, shape, &bh);
    I2vTensor sep = tensor_from(2, shape, NULL);
    I2vTensor *y = alias == 0 ? &sep : alias == 1 ? &a : &b;
    double want[63];
    i2v_op_add(st, y, &a, &b);
    for (int i = 0; i < 63; i++) want[i] = (double)ah[i] + bh[i];
    assert_tensor(y, want, "add");
    g_assert_true(i2v_tensor_upload_f32(st, &a, ah, NULL) &&
                  i2v_tensor_upload_f32(st, &b, bh, NULL));
    i2v_op_axpby(st, y, 0.75f, &a, -1.5f, &b);
    for (int i = 0; i < 63; i++) want[i] = 0.75 * ah[i] - 1.5 * bh[i];
    assert_tensor(y, want, "axpby");
    i2v_tensor_free(&a), i2v_tensor_free(&b), i2v_tensor_free(&sep);
    g_free(ah), g_free(bh);
  }
}

static void test_add_rows(void) {
  static const int64_t cases[][3] = {{1, 5, 3}, {4, 6, 7}, {3, 1, 10}}; /* S, T, C */
  for (guint k = 0; k < G_N_ELEMENTS(cases); k++) {
    int64_t S = cases[k][0], T = cases[k][1], C = cases[k][2];
    int64_t xs[] = {S, T, C}, vs[] = {S, C};
    float *xh, *vh;
    I2vTensor x = random_tensor(3, xs, &xh), v = random_tensor(2, vs, &vh);
    i2v_op_add_rows(st, &x, &v);
    double *want = g_new(double, S *T *C);
    for (int64_t i = 0; i < S * T * C; i++) want[i] = (double)xh[i] + vh[(i / (T * C)) * C + i % C];
    assert_tensor(&x, want, "add_rows");
    i2v_tensor_free(&x), i2v_tensor_free(&v);
    g_free(xh), g_free(vh), g_free(want);
  }
}

static void test_concat_last(void) {
  int64_t as[] = {2, 3, 5}, bs[] = {2, 3, 2}, ys[] = {2, 3, 7};
  float *ah, *bh;
  I2vTensor a = random_tensor(3, as, &ah), b = random_tensor(3, bs, &bh);
  I2vTensor y = tensor_from(3, ys, NULL);
  i2v_op_concat_last(st, &y, &a, &b);
  double want[42];
  for (int r = 0; r < 6; r++)
    for (int c = 0; c < 7; c++) want[r * 7 + c] = c < 5 ? ah[r * 5 + c] : bh[r * 2 + c - 5];
  assert_tensor(&y, want, "concat_last");
  i2v_tensor_free(&a), i2v_tensor_free(&b), i2v_tensor_free(&y);
  g_free(ah), g_free(bh);
}

/* Resizes [N, H, W, C] → [N, Ho, Wo, C] and checks each output against want_at(). */
typedef double (*ResizeRef)(const float *x, int64_t H, int64_t W, int64_t C, int64_t oh, int64_t ow,
                            int64_t c, int64_t Ho, int64_t Wo);

static void check_resize(gboolean pool, int64_t N, int64_t H, int64_t W, int64_t C, int64_t Ho,
                         int64_t Wo, ResizeRef ref) {
  int64_t xs[] = {N, H, W, C}, ys[] = {N, Ho, Wo, C};
  float *xh;
  I2vTensor x = random_tensor(4, xs, &xh), y = tensor_from(4, ys, NULL);
  if (pool)
    i2v_op_adaptive_avg_pool(st, &y, &x);
  else
    i2v_op_upsample_nearest(st, &y, &x);
  double *want = g_new(double, N *Ho *Wo *C);
  for (int64_t n = 0; n < N; n++)
    for (int64_t oh = 0; oh < Ho; oh++)
      for (int64_t ow = 0; ow < Wo; ow++)
        for (int64_t c = 0; c < C; c++)
          want[((n * Ho + oh) * Wo + ow) * C + c] =
              ref(xh + n * H * W * C, H, W, C, oh, ow, c, Ho, Wo);
  char what[96];
  g_snprintf(what, sizeof what,
             "%s %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " -> %" G_GINT64_FORMAT
             "x%" G_GINT64_FORMAT,
             pool ? "adaptive_avg_pool" : "upsample_nearest", H, W, Ho, Wo);
  assert_tensor(&y, want, what);
  i2v_tensor_free(&x), i2v_tensor_free(&y);
  g_free(xh), g_free(want);
}

/* PyTorch nearest: src = min(floor(dst · (float)(in/out)), in - 1) in float32. */
static int64_t nearest_ref(int64_t dst, int64_t in, int64_t out) {
  volatile float ratio = (float)in / (float)out, prod = (float)dst * ratio;
  return MIN((int64_t)floorf(prod), in - 1);
}

static double nearest_at(const float *x, int64_t H, int64_t W, int64_t C, int64_t oh, int64_t ow,
                         int64_t c, int64_t Ho, int64_t Wo) {
  return x[(nearest_ref(oh, H, Ho) * W + nearest_ref(ow, W, Wo)) * C + c];
}

static double pool_at(const float *x, int64_t H, int64_t W, int64_t C, int64_t oh, int64_t ow,
                      int64_t c, int64_t Ho, int64_t Wo) {
  int64_t h0 = (int64_t)floor((double)oh * H / Ho), h1 = (int64_t)ceil((double)(oh + 1) * H / Ho);
  int64_t w0 = (int64_t)floor((double)ow * W / Wo), w1 = (int64_t)ceil((double)(ow + 1) * W / Wo);
  double s = 0;
  for (int64_t i = h0; i < h1; i++)
    for (int64_t j = w0; j < w1; j++) s += x[(i * W + j) * C + c];
  return s / ((h1 - h0) * (w1 - w0));
}

static void test_upsample_nearest(void) {
  check_resize(FALSE, 2, 3, 4, 3, 5, 8, nearest_at);    /* 3→5 odd, 4→8 exact ×2 */
  check_resize(FALSE, 1, 11, 7, 5, 22, 13, nearest_at); /* 11→22, 7→13 */
  check_resize(FALSE, 1, 5, 6, 2, 3, 6, nearest_at);    /* shrink and identity */
  check_resize(FALSE, 1, 1, 1, 4, 3, 2, nearest_at);
  /* the float32 rule differs from exact arithmetic for some sizes (26 → 44 at dst 22: float32
   * gives 12, exact 22·26/44 = 13): the reference must reproduce it, the op must match it */
  g_assert_cmpint(nearest_ref(22, 26, 44), ==, 12);
  check_resize(FALSE, 1, 26, 3, 2, 44, 5, nearest_at);
}

static void test_adaptive_avg_pool(void) {
  check_resize(TRUE, 1, 88, 88, 3, 32, 32, pool_at); /* 704-px latents: overlapping windows */
  check_resize(TRUE, 2, 8, 8, 4, 32, 32, pool_at);   /* up-sampling: windows of one */
  check_resize(TRUE, 1, 11, 9, 5, 4, 3, pool_at);
  check_resize(TRUE, 1, 7, 5, 2, 7, 5, pool_at); /* identity */
}

static void check_permute(int ndim, const int64_t *xs, const int *perm) {
  int64_t ys[I2V_MAX_DIMS], n = 1, xst[I2V_MAX_DIMS];
  for (int d = 0; d < ndim; d++) ys[d] = xs[perm[d]], n *= xs[d];
  for (int d = ndim - 1, acc = 1; d >= 0; acc *= (int)xs[d], d--) xst[d] = acc;
  float *xh;
  I2vTensor x = random_tensor(ndim, xs, &xh), y = tensor_from(ndim, ys, NULL);
  i2v_op_permute(st, &y, &x, perm);
  double *want = g_new(double, n);
  for (int64_t e = 0; e < n; e++) { /* decode y index, gather from x */
    int64_t rest = e, src = 0;
    for (int d = ndim - 1; d >= 0; d--) {
      src += (rest % ys[d]) * xst[perm[d]];
      rest /= ys[d];
    }
    want[e] = xh[src];
  }
  assert_tensor(&y, want, "permute");
  i2v_tensor_free(&x), i2v_tensor_free(&y);
  g_free(xh), g_free(want);
}

static void test_permute(void) {
  int64_t s5[] = {2, 3, 4, 5, 6}, s4[] = {2, 3, 5, 7}, s3[] = {3, 1, 4}, s2[] = {5, 3};
  check_permute(5, s5, (const int[]){0, 2, 3, 1, 4}); /* [B,C,F,H,W] → [B,F,H,C,W] */
  check_permute(5, s5, (const int[]){4, 3, 2, 1, 0});
  check_permute(5, s5, (const int[]){0, 1, 2, 3, 4});
  check_permute(4, s4, (const int[]){0, 2, 3, 1}); /* NCHW → NHWC */
  check_permute(3, s3, (const int[]){2, 0, 1});
  check_permute(2, s2, (const int[]){1, 0});
}

static void test_gather_fill_copy(void) {
  int64_t ts[] = {6, 5}, ys[] = {4, 5};
  float *th;
  I2vTensor table = random_tensor(2, ts, &th), y = tensor_from(2, ys, NULL);
  const int64_t ids[] = {5, 0, 5, 2};
  i2v_op_gather_rows(st, &y, &table, ids);
  double want[30];
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 5; c++) want[r * 5 + c] = th[ids[r] * 5 + c];
  assert_tensor(&y, want, "gather_rows");
  i2v_op_fill(st, &y, -2.5f);
  for (int i = 0; i < 20; i++) want[i] = -2.5;
  assert_tensor(&y, want, "fill");
  int64_t flat[] = {30};
  I2vTensor z = tensor_from(1, flat, NULL);
  i2v_op_copy(st, &z, &table); /* any shapes of equal numel */
  for (int i = 0; i < 30; i++) want[i] = th[i];
  assert_tensor(&z, want, "copy");
  i2v_op_copy(st, &z, &z); /* copy onto itself is a no-op */
  assert_tensor(&z, want, "copy in place");
  i2v_tensor_free(&table), i2v_tensor_free(&y), i2v_tensor_free(&z);
  g_free(th);
}

/* ---- wrapper errors: the message names the op; later ops are skipped; check clears ---- */

/* Expects the sticky error to name op. */
static void expect_error(const char *op, const char *fragment) {
  GError *err = NULL;
  g_assert_false(i2v_stream_check(st, &err));
  g_assert_error(err, I2V_ERROR, I2V_ERROR_BACKEND);
  if (!g_str_has_prefix(err->message, op) || strstr(err->message, fragment) == NULL)
    g_error("error \"%s\" should start with %s and mention %s", err->message, op, fragment);
  g_error_free(err);
  g_assert_true(i2v_stream_check(st, NULL)); /* cleared */
}

/* The library logs nothing for a failed op: the GError is the report (a warning would abort a
 * host running with G_DEBUG=fatal-warnings). This writer counts the engine's (domain "i2v")
 * warnings and criticals, which the bad calls below must not produce. */
static int engine_warnings;

static GLogWriterOutput count_engine_warnings(GLogLevelFlags level, const GLogField *fields,
                                              gsize n, gpointer user) {
  for (gsize i = 0; i < n; i++)
    if (strcmp(fields[i].key, "GLIB_DOMAIN") == 0 && g_strcmp0(fields[i].value, "i2v") == 0 &&
        (level & (G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL)))
      engine_warnings++;
  return g_log_writer_default(level, fields, n, user);
}

/* Runs op (a callback that makes a bad call), expecting no log message and an error naming op. */
static void expect_failure(void (*bad_call)(void), const char *op, const char *fragment) {
  int seen = engine_warnings;
  bad_call();
  g_assert_cmpint(engine_warnings, ==, seen);
  expect_error(op, fragment);
}

/* Operands shared by the bad calls (allocated in main). */
static I2vTensor e_x, e_y, e_w, e_b, e_x4, e_y4, e_w4, e_none;

static void bad_linear_k(void) {
  i2v_op_linear(st, &e_y, &e_x, &e_w4, NULL, I2V_ACT_NONE, FALSE);
}
static void bad_linear_n(void) {
  i2v_op_linear(st, &e_x, &e_x, &e_w, NULL, I2V_ACT_NONE, FALSE);
}
static void bad_linear_bias(void) {
  i2v_op_linear(st, &e_y, &e_x, &e_w, &e_x, I2V_ACT_NONE, FALSE);
}
static void bad_linear_acc_act(void) {
  i2v_op_linear(st, &e_y, &e_x, &e_w, NULL, I2V_ACT_GELU, TRUE);
}
static void bad_no_memory(void) {
  i2v_op_add(st, &e_y, &e_none, &e_y);
}
static void bad_conv_out(void) {
  I2vConvParams p = {1, 1, 1, 1, 1};
  i2v_op_conv2d(st, &e_y4, &e_x4, &e_w4, NULL, &p, FALSE);
}
static void bad_conv_cin(void) {
  I2vConvParams p = {1, 1, 1, 1, 1};
  i2v_op_conv2d(st, &e_x4, &e_x4, &e_y4, NULL, &p, FALSE);
}
static void bad_conv_stride(void) {
  I2vConvParams p = {0, 1, 1, 1, 1};
  i2v_op_conv2d(st, &e_x4, &e_x4, &e_w4, NULL, &p, FALSE);
}
static void bad_conv_frames_alias(void) {
  int64_t ws[] = {3, 3, 3}; /* [Co, 3, Ci] from the first 27 weights of e_w4 */
  I2vTensor first = i2v_tensor_rows(&e_w4, 0, 1), w = i2v_tensor_view(&first, 3, ws);
  i2v_op_conv_frames(st, &e_x4, &e_x4, &w, NULL, FALSE);
}
static void bad_group_norm_groups(void) {
  i2v_op_group_norm(st, &e_x, &e_x, &e_b, &e_b, 1, 3, 1e-5f, I2V_ACT_NONE);
}
static void bad_group_norm_samples(void) {
  i2v_op_group_norm(st, &e_x, &e_x, &e_b, &e_b, 5, 2, 1e-5f, I2V_ACT_NONE);
}
static void bad_attention_view(void) {
  /* k claims 4 tokens of a 3-token sequence */
  I2vSeqView q = {&e_x, 0, 12, 0, 4}, k = {&e_x, 1, 12, 0, 4};
  I2vAttnShape s = {1, 1, 1, 3, 3, 1, 4, 1.0f, FALSE};
  i2v_op_attention(st, &q, &q, &k, &q, &s);
}
static void bad_attention_div(void) {
  I2vSeqView q = {&e_x, 0, 4, 0, 4};
  I2vAttnShape s = {3, 1, 2, 1, 1, 1, 4, 1.0f, FALSE};
  i2v_op_attention(st, &q, &q, &q, &q, &s);
}
static void bad_gather_id(void) {
  const int64_t ids[] = {0, 3, 1};
  i2v_op_gather_rows(st, &e_x, &e_x, ids);
}
static void bad_permute_twice(void) {
  i2v_op_permute(st, &e_x4, &e_x4, (const int[]){0, 1, 1, 3});
}
static void bad_add_numel(void) {
  i2v_op_add(st, &e_x, &e_x, &e_y);
}
static void bad_concat(void) {
  i2v_op_concat_last(st, &e_x, &e_x, &e_y);
}
static void bad_geglu(void) {
  i2v_op_geglu(st, &e_y, &e_x);
}
static void bad_add_rows(void) {
  i2v_op_add_rows(st, &e_x, &e_y);
}
static void bad_upsample_channels(void) {
  i2v_op_upsample_nearest(st, &e_y4, &e_x4);
}

static void test_errors(void) {
  expect_failure(bad_linear_k, "linear:", "weight must be [N, K]");
  expect_failure(bad_linear_n, "linear:", "output rows/N");
  expect_failure(bad_linear_bias, "linear:", "bias must be [N]");
  expect_failure(bad_linear_acc_act, "linear:", "accumulate");
  expect_failure(bad_no_memory, "add:", "operand 1 has no memory");
  expect_failure(bad_conv_out, "conv2d:", "[N, Ho, Wo, Co]");
  expect_failure(bad_conv_cin, "conv2d:", "Cin");
  expect_failure(bad_conv_stride, "conv2d:", "stride 0 must be >= 1");
  expect_failure(bad_conv_frames_alias, "conv_frames:", "alias");
  expect_failure(bad_group_norm_groups, "group_norm:", "C % groups");
  expect_failure(bad_group_norm_samples, "group_norm:", "rows % samples");
  expect_failure(bad_attention_view, "attention:", "k view");
  expect_failure(bad_attention_div, "attention:", "not divisible by 2");
  expect_failure(bad_gather_id, "gather_rows:", "id 3 outside the table of 3 rows");
  expect_failure(bad_permute_twice, "permute:", "perm");
  expect_failure(bad_add_numel, "add:", "same numel");
  expect_failure(bad_concat, "concat_last:", "Ca + Cb");
  expect_failure(bad_geglu, "geglu:", "[M, 2F]");
  expect_failure(bad_add_rows, "add_rows:", "[S, C]");
  expect_failure(bad_upsample_channels, "upsample_nearest:", "equal N and C");
}

/* After a failure, later ops do nothing until the error is taken by i2v_stream_check. */
static void test_error_sticky(void) {
  float *before = g_memdup2(e_y.data, i2v_tensor_nbytes(&e_y));
  int seen = engine_warnings;
  bad_linear_k();
  i2v_op_fill(st, &e_y, 42.0f); /* skipped */
  bad_conv_out();               /* skipped: the first error stays */
  g_assert_cmpint(engine_warnings, ==, seen);
  g_assert_cmpmem(e_y.data, i2v_tensor_nbytes(&e_y), before, i2v_tensor_nbytes(&e_y));
  I2vTensor s = i2v_scratch_tensor(st, 1, (int64_t[]){4}); /* no scratch while failed */
  g_assert_null(s.data);
  expect_error("linear:", "weight");
  i2v_op_fill(st, &e_y, 42.0f); /* runs again */
  g_assert_cmpfloat(((float *)e_y.data)[0], ==, 42.0f);
  g_assert_true(i2v_stream_check(st, NULL));
  g_free(before);
}

/* ---- scratch arena ---- */

static void test_arena_reuse(void) {
  size_t base = i2v_scratch_mark(st);
  void *first[3] = {NULL};
  for (int cycle = 0; cycle < 100; cycle++) {
    size_t mark = i2v_scratch_mark(st);
    g_assert_cmpuint(mark, ==, base);
    I2vTensor a = i2v_scratch_tensor(st, 1, (int64_t[]){1000});
    I2vTensor b = i2v_scratch_tensor(st, 2, (int64_t[]){300, 1001});
    size_t inner = i2v_scratch_mark(st);
    I2vTensor c = i2v_scratch_tensor(st, 1, (int64_t[]){17});
    i2v_scratch_release(st, inner);
    I2vTensor c2 = i2v_scratch_tensor(st, 1, (int64_t[]){17});
    g_assert_true(c.data == c2.data); /* stack-like: released memory comes back */
    g_assert_true((uintptr_t)a.data % 64 == 0 && (uintptr_t)b.data % 64 == 0);
    g_assert_true((char *)b.data >= (char *)a.data + 4000); /* no overlap */
    void *now[3] = {a.data, b.data, c.data};
    for (int i = 0; i < 3; i++) {
      if (cycle == 0) first[i] = now[i];
      g_assert_true(now[i] == first[i]); /* the same memory every cycle: no growth */
    }
    memset(b.data, 0, i2v_tensor_nbytes(&b)); /* usable memory */
    i2v_scratch_release(st, mark);
  }
  /* an allocation bigger than a chunk gets its own, and is reused as well */
  size_t mark = i2v_scratch_mark(st);
  void *big = i2v_scratch_tensor(st, 1, (int64_t[]){(int64_t)80 << 20 >> 2}).data;
  i2v_scratch_release(st, mark);
  void *big2 = i2v_scratch_tensor(st, 1, (int64_t[]){(int64_t)80 << 20 >> 2}).data;
  g_assert_true(big != NULL && big == big2);
  i2v_scratch_release(st, mark);
  g_assert_true(i2v_stream_check(st, NULL));
}

static void *host_chunk(size_t bytes, void *user, GError **error) {
  (void)user, (void)error;
  return g_malloc(bytes);
}

static void host_chunk_free(void *base, void *user) {
  (void)user;
  g_free(base);
}

/* Chunks are as large as the request that made them (at least min_chunk), never doubled; the
 * high-water mark counts what was used at once; a reservation makes one chunk of the need. */
static void test_arena_chunks(void) {
  I2vArena a;
  i2v_arena_init(&a, 64, 1000, host_chunk, host_chunk_free, NULL);
  g_assert_nonnull(i2v_arena_alloc(&a, 600, NULL));  /* chunk 1: 1000 */
  g_assert_nonnull(i2v_arena_alloc(&a, 600, NULL));  /* 640 + 640 > 1000: chunk 2, 1000 */
  g_assert_nonnull(i2v_arena_alloc(&a, 5000, NULL)); /* chunk 3: its own 5056 */
  g_assert_nonnull(i2v_arena_alloc(&a, 100, NULL));  /* chunk 4: 1000, not the 7056 doubling */
  g_assert_cmpuint(i2v_arena_capacity(&a), ==, 1000 + 1000 + 5056 + 1000);
  size_t high, cap;
  i2v_arena_highs(&a, TRUE, &high, &cap);
  g_assert_cmpuint(high, ==, 1000 + 1000 + 5056 + 128);
  g_assert_cmpuint(cap, ==, 1000 + 1000 + 5056 + 1000);
  i2v_arena_release(&a, 0);
  i2v_arena_highs(&a, FALSE, &high, &cap);
  g_assert_cmpuint(high, ==, 1000 + 1000 + 5056 + 128); /* kept until a reset */
  g_assert_true(i2v_arena_reserve(&a, 6000, NULL));
  g_assert_cmpuint(i2v_arena_capacity(&a), ==, 6016);
  char *p = i2v_arena_alloc(&a, 600, NULL), *q = i2v_arena_alloc(&a, 5000, NULL);
  g_assert_true(q == p + 640); /* one chunk: no tail skipped */
  g_assert_cmpuint(i2v_arena_capacity(&a), ==, 6016);
  i2v_arena_release(&a, 0);
  g_assert_true(i2v_arena_reserve(&a, 6000, NULL)); /* already so: nothing changes */
  g_assert_true(i2v_arena_alloc(&a, 8, NULL) == p);
  i2v_arena_release(&a, 0);
  g_assert_true(i2v_arena_reserve(&a, 100, NULL)); /* exactly the need: smaller too */
  g_assert_cmpuint(i2v_arena_capacity(&a), ==, 128);
  i2v_arena_highs(&a, FALSE, &high, &cap);
  g_assert_cmpuint(cap, ==, 1000 + 1000 + 5056 + 1000); /* the most it held since the reset */
  i2v_arena_destroy(&a);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  /* g_test_init makes warnings and criticals fatal; the writer also counts the engine's */
  g_log_set_writer_func(count_engine_warnings, NULL, NULL);
  be = i2v_cpu_backend_new(0);
  st = i2v_stream_new(be, NULL);
  rng = g_rand_new_with_seed(1234);
  e_x = tensor_from(2, (int64_t[]){3, 4}, NULL);
  e_y = tensor_from(2, (int64_t[]){3, 5}, NULL);
  e_w = tensor_from(2, (int64_t[]){5, 4}, NULL);
  e_b = tensor_from(1, (int64_t[]){4}, NULL);
  e_x4 = tensor_from(4, (int64_t[]){1, 3, 3, 3}, NULL);
  e_y4 = tensor_from(4, (int64_t[]){1, 3, 3, 2}, NULL);
  e_w4 = tensor_from(4, (int64_t[]){3, 3, 3, 3}, NULL);
  e_none = e_y;
  e_none.data = NULL;

  g_test_add_func("/ops/linear", test_linear);
  g_test_add_func("/ops/linear-3d", test_linear_3d);
  g_test_add_func("/ops/conv2d", test_conv2d);
  g_test_add_func("/ops/conv2d-blocks", test_conv2d_blocks);
  g_test_add_func("/ops/conv-frames", test_conv_frames);
  g_test_add_func("/ops/group-norm", test_group_norm);
  g_test_add_func("/ops/layer-norm", test_layer_norm);
  g_test_add_func("/ops/attention/plain", test_attention_plain);
  g_test_add_func("/ops/attention/long", test_attention_long);
  g_test_add_func("/ops/attention/packed", test_attention_packed);
  g_test_add_func("/ops/attention/temporal", test_attention_temporal);
  g_test_add_func("/ops/unary", test_unary);
  g_test_add_func("/ops/unary-tails", test_unary_tails);
  g_test_add_func("/ops/geglu", test_geglu);
  g_test_add_func("/ops/add-axpby", test_add_axpby);
  g_test_add_func("/ops/add-rows", test_add_rows);
  g_test_add_func("/ops/concat-last", test_concat_last);
  g_test_add_func("/ops/upsample-nearest", test_upsample_nearest);
  g_test_add_func("/ops/adaptive-avg-pool", test_adaptive_avg_pool);
  g_test_add_func("/ops/permute", test_permute);
  g_test_add_func("/ops/gather-fill-copy", test_gather_fill_copy);
  g_test_add_func("/ops/errors", test_errors);
  g_test_add_func("/ops/error-sticky", test_error_sticky);
  g_test_add_func("/ops/arena-reuse", test_arena_reuse);
  g_test_add_func("/ops/arena-chunks", test_arena_chunks);
  int rc = g_test_run();

  I2vTensor *all[] = {&e_x, &e_y, &e_w, &e_b, &e_x4, &e_y4, &e_w4};
  for (guint i = 0; i < G_N_ELEMENTS(all); i++) i2v_tensor_free(all[i]);
  g_rand_free(rng);
  i2v_stream_free(st);
  i2v_backend_free(be);
  return rc;
}
