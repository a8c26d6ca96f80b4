/* The op wrappers: shape checks, the sticky error, dispatch to the backend's table. A shape
 * mismatch here is a bug in a model file, reported as a backend error naming the op and shapes
 * rather than a crash. */
#include "backend_impl.h"

#include <stdarg.h>
#include <string.h>

#include <i2v/error.h>

gboolean i2v_act_from_name(const char *name, I2vAct *act) {
  static const struct {
    const char *name;
    I2vAct act;
  } acts[] = {{"gelu", I2V_ACT_GELU},
              {"quick_gelu", I2V_ACT_QUICK_GELU},
              {"silu", I2V_ACT_SILU},
              {"swish", I2V_ACT_SILU}};
  for (guint i = 0; i < G_N_ELEMENTS(acts); i++) {
    if (strcmp(name, acts[i].name) == 0) {
      *act = acts[i].act;
      return TRUE;
    }
  }
  return FALSE;
}

/* ---- checks shared by the wrappers ---- */

static int64_t last_dim(const I2vTensor *t) {
  return t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
}

static int64_t rows_of(const I2vTensor *t) {
  int64_t l = last_dim(t);
  return l ? i2v_tensor_numel(t) / l : 0;
}

/* FALSE (and no dispatch) when a previous op failed or a tensor has no memory. */
static gboolean ready(I2vStream *st, const char *op, int n, ...) {
  if (st->error != NULL) return FALSE;
  va_list ap;
  va_start(ap, n);
  gboolean ok = TRUE;
  for (int i = 0; i < n && ok; i++) {
    const I2vTensor *t = va_arg(ap, const I2vTensor *);
    if (t != NULL && t->data == NULL) {
      i2v_stream_failf(st, "%s: operand %d has no memory", op, i);
      ok = FALSE;
    }
  }
  va_end(ap);
  return ok;
}

static gboolean expect(I2vStream *st, gboolean cond, const char *op, const char *what,
                       const I2vTensor *t) {
  if (cond) return TRUE;
  char buf[96];
  i2v_stream_failf(st, "%s: %s (got shape %s)", op, what,
                   t ? i2v_shape_format(t->ndim, t->shape, buf, sizeof buf) : "-");
  return FALSE;
}

void i2v_op_linear(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                   const I2vTensor *b, I2vAct act, gboolean accumulate) {
  if (!ready(st, "linear", 4, y, x, w, b)) return;
  int64_t K = last_dim(x), N = w->shape[0];
  if (!expect(st, w->ndim == 2 && w->shape[1] == K, "linear", "weight must be [N, K]", w) ||
      !expect(st, last_dim(y) == N && rows_of(y) == rows_of(x), "linear", "output rows/N", y) ||
      !expect(st, b == NULL || i2v_tensor_numel(b) == N, "linear", "bias must be [N]", b) ||
      !expect(st, !accumulate || act == I2V_ACT_NONE, "linear", "accumulate needs no act", y))
    return;
  st->flops += 2.0 * (double)rows_of(x) * (double)N * (double)K;
  st->be->ops->linear(st, y, x, w, b, act, accumulate);
}

void i2v_op_conv2d(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                   const I2vTensor *b, const I2vConvParams *p, gboolean accumulate) {
  if (!ready(st, "conv2d", 4, y, x, w, b)) return;
  if (!expect(st, x->ndim == 4 && y->ndim == 4 && w->ndim == 4, "conv2d", "needs 4-D NHWC", x))
    return;
  if (p->stride < 1 || p->pad_top < 0 || p->pad_left < 0 || p->pad_bottom < 0 || p->pad_right < 0) {
    i2v_stream_failf(st, "conv2d: stride %d must be >= 1 and paddings %d %d %d %d >= 0", p->stride,
                     p->pad_top, p->pad_left, p->pad_bottom, p->pad_right);
    return;
  }
  int64_t kh = w->shape[1], kw = w->shape[2];
  int64_t ho = (x->shape[1] + p->pad_top + p->pad_bottom - kh) / p->stride + 1;
  int64_t wo = (x->shape[2] + p->pad_left + p->pad_right - kw) / p->stride + 1;
  if (!expect(st, w->shape[3] == x->shape[3], "conv2d", "weight Cin must match x", w) ||
      !expect(st,
              y->shape[0] == x->shape[0] && y->shape[1] == ho && y->shape[2] == wo &&
                  y->shape[3] == w->shape[0],
              "conv2d", "output must be [N, Ho, Wo, Co]", y) ||
      !expect(st, b == NULL || i2v_tensor_numel(b) == w->shape[0], "conv2d", "bias [Co]", b))
    return;
  st->flops += 2.0 * (double)i2v_tensor_numel(y) * (double)(kh * kw * w->shape[3]);
  st->be->ops->conv2d(st, y, x, w, b, p, accumulate);
}

void i2v_op_conv_frames(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                        const I2vTensor *b, gboolean accumulate) {
  if (!ready(st, "conv_frames", 4, y, x, w, b)) return;
  if (!expect(st,
              x->ndim == 4 && y->ndim == 4 && w->ndim == 3 && w->shape[1] == 3 &&
                  w->shape[2] == x->shape[3],
              "conv_frames", "x [B,F,T,Ci], w [Co,3,Ci]", w) ||
      !expect(st,
              y->shape[0] == x->shape[0] && y->shape[1] == x->shape[1] &&
                  y->shape[2] == x->shape[2] && y->shape[3] == w->shape[0],
              "conv_frames", "y must be [B,F,T,Co]", y) ||
      !expect(st, y->data != x->data, "conv_frames", "y must not alias x", y))
    return;
  st->flops += 2.0 * 3.0 * (double)i2v_tensor_numel(y) * (double)x->shape[3];
  st->be->ops->conv_frames(st, y, x, w, b, accumulate);
}

void i2v_op_group_norm(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                       const I2vTensor *beta, int64_t samples, int groups, float eps, I2vAct act) {
  if (!ready(st, "group_norm", 4, y, x, gamma, beta)) return;
  int64_t C = last_dim(x);
  if (!expect(st, samples > 0 && rows_of(x) % samples == 0, "group_norm", "rows % samples", x) ||
      !expect(st, groups > 0 && C % groups == 0, "group_norm", "C % groups", x) ||
      !expect(st, i2v_tensor_numel(y) == i2v_tensor_numel(x), "group_norm", "y numel", y) ||
      !expect(st, i2v_tensor_numel(gamma) == C && i2v_tensor_numel(beta) == C, "group_norm",
              "gamma/beta [C]", gamma))
    return;
  st->be->ops->group_norm(st, y, x, gamma, beta, samples, groups, eps, act);
}

void i2v_op_layer_norm(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                       const I2vTensor *beta, float eps) {
  if (!ready(st, "layer_norm", 4, y, x, gamma, beta)) return;
  int64_t C = last_dim(x);
  if (!expect(st, i2v_tensor_numel(y) == i2v_tensor_numel(x), "layer_norm", "y numel", y) ||
      !expect(st, i2v_tensor_numel(gamma) == C && i2v_tensor_numel(beta) == C, "layer_norm",
              "gamma/beta [C]", gamma))
    return;
  st->be->ops->layer_norm(st, y, x, gamma, beta, eps);
}

/* The furthest element a view addresses must lie inside its tensor. */
static gboolean view_fits(I2vStream *st, const I2vSeqView *v, int64_t n_outer, int64_t n_inner,
                          int64_t len, int64_t width, const char *what) {
  int64_t last = v->offset + (n_outer - 1) * v->outer_stride + (n_inner - 1) * v->inner_stride +
                 (len - 1) * v->token_stride + width;
  if (v->t->data != NULL && v->offset >= 0 && last <= i2v_tensor_numel(v->t)) return TRUE;
  i2v_stream_failf(st,
                   "attention: %s view reaches element %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT,
                   what, last, i2v_tensor_numel(v->t));
  return FALSE;
}

void i2v_op_attention(I2vStream *st, const I2vSeqView *out, const I2vSeqView *q,
                      const I2vSeqView *k, const I2vSeqView *v, const I2vAttnShape *s) {
  if (st->error != NULL) return;
  int64_t width = (int64_t)s->heads * s->head_dim;
  int64_t kv_outer = (s->n_outer + s->kv_outer_div - 1) / MAX(s->kv_outer_div, 1);
  if (s->kv_outer_div < 1 || s->n_outer % s->kv_outer_div != 0) {
    i2v_stream_failf(st,
                     "attention: n_outer %" G_GINT64_FORMAT " not divisible by %" G_GINT64_FORMAT,
                     s->n_outer, s->kv_outer_div);
    return;
  }
  if (!view_fits(st, out, s->n_outer, s->n_inner, s->q_len, width, "out") ||
      !view_fits(st, q, s->n_outer, s->n_inner, s->q_len, width, "q") ||
      !view_fits(st, k, kv_outer, s->n_inner, s->kv_len, width, "k") ||
      !view_fits(st, v, kv_outer, s->n_inner, s->kv_len, width, "v"))
    return;
  /* q·kᵀ and p·v: 2 multiply-adds per (query, key, channel) */
  st->flops += 4.0 * (double)(s->n_outer * s->n_inner) * (double)s->q_len * (double)s->kv_len *
               (double)width;
  st->be->ops->attention(st, out, q, k, v, s);
}

void i2v_op_unary(I2vStream *st, I2vTensor *y, const I2vTensor *x, I2vAct act) {
  if (!ready(st, "unary", 2, y, x)) return;
  if (!expect(st, i2v_tensor_numel(y) == i2v_tensor_numel(x), "unary", "y numel", y)) return;
  st->be->ops->unary(st, y, x, act);
}

void i2v_op_geglu(I2vStream *st, I2vTensor *y, const I2vTensor *x) {
  if (!ready(st, "geglu", 2, y, x)) return;
  if (!expect(st, last_dim(x) == 2 * last_dim(y) && rows_of(x) == rows_of(y), "geglu",
              "x must be [M, 2F] for y [M, F]", x))
    return;
  st->be->ops->geglu(st, y, x);
}

void i2v_op_add(I2vStream *st, I2vTensor *y, const I2vTensor *a, const I2vTensor *b) {
  if (!ready(st, "add", 3, y, a, b)) return;
  int64_t n = i2v_tensor_numel(y);
  if (!expect(st, i2v_tensor_numel(a) == n && i2v_tensor_numel(b) == n, "add", "same numel", a))
    return;
  st->be->ops->add(st, y, a, b);
}

void i2v_op_add_rows(I2vStream *st, I2vTensor *x, const I2vTensor *v) {
  if (!ready(st, "add_rows", 2, x, v)) return;
  int64_t C = last_dim(x), S = v->ndim == 2 ? v->shape[0] : 0;
  if (!expect(st, v->ndim == 2 && v->shape[1] == C && S > 0 && rows_of(x) % S == 0, "add_rows",
              "v must be [S, C] with S dividing x's rows", v))
    return;
  st->be->ops->add_rows(st, x, v);
}

void i2v_op_axpby(I2vStream *st, I2vTensor *y, float alpha, const I2vTensor *a, float beta,
                  const I2vTensor *b) {
  if (!ready(st, "axpby", 3, y, a, b)) return;
  int64_t n = i2v_tensor_numel(y);
  if (!expect(st, i2v_tensor_numel(a) == n && i2v_tensor_numel(b) == n, "axpby", "same numel", a))
    return;
  st->be->ops->axpby(st, y, alpha, a, beta, b);
}

void i2v_op_concat_last(I2vStream *st, I2vTensor *y, const I2vTensor *a, const I2vTensor *b) {
  if (!ready(st, "concat_last", 3, y, a, b)) return;
  if (!expect(st,
              last_dim(y) == last_dim(a) + last_dim(b) && rows_of(a) == rows_of(y) &&
                  rows_of(b) == rows_of(y),
              "concat_last", "y must be [rows, Ca + Cb]", y))
    return;
  st->be->ops->concat_last(st, y, a, b);
}

static gboolean same_nc(I2vStream *st, const char *op, const I2vTensor *y, const I2vTensor *x) {
  return expect(st,
                x->ndim == 4 && y->ndim == 4 && y->shape[0] == x->shape[0] &&
                    y->shape[3] == x->shape[3] && y->shape[1] > 0 && y->shape[2] > 0,
                op, "x, y must be [N, H, W, C] with equal N and C", y);
}

void i2v_op_upsample_nearest(I2vStream *st, I2vTensor *y, const I2vTensor *x) {
  if (!ready(st, "upsample_nearest", 2, y, x) || !same_nc(st, "upsample_nearest", y, x)) return;
  st->be->ops->upsample_nearest(st, y, x);
}

void i2v_op_adaptive_avg_pool(I2vStream *st, I2vTensor *y, const I2vTensor *x) {
  if (!ready(st, "adaptive_avg_pool", 2, y, x) || !same_nc(st, "adaptive_avg_pool", y, x)) return;
  st->be->ops->adaptive_avg_pool(st, y, x);
}

void i2v_permute_plan(const I2vTensor *y, const I2vTensor *x, const int *perm, int64_t shape[5],
                      int64_t stride[5]) {
  int64_t xst[I2V_MAX_DIMS];
  int nd = x->ndim, pad = 5 - nd;
  int64_t acc = 1;
  for (int d = nd - 1; d >= 0; d--) {
    xst[d] = acc;
    acc *= x->shape[d];
  }
  for (int d = 0; d < 5; d++) {
    shape[d] = d < pad ? 1 : y->shape[d - pad];
    stride[d] = d < pad ? 0 : xst[perm[d - pad]];
  }
}

void i2v_op_permute(I2vStream *st, I2vTensor *y, const I2vTensor *x, const int *perm) {
  if (!ready(st, "permute", 2, y, x)) return;
  gboolean ok = y->ndim == x->ndim;
  guint seen = 0;
  for (int d = 0; ok && d < x->ndim; d++) {
    ok = perm[d] >= 0 && perm[d] < x->ndim && !(seen & (1u << perm[d])) &&
         y->shape[d] == x->shape[perm[d]];
    seen |= 1u << perm[d];
  }
  if (!expect(st, ok, "permute", "y.shape[d] must be x.shape[perm[d]]", y)) return;
  st->be->ops->permute(st, y, x, perm);
}

void i2v_op_gather_rows(I2vStream *st, I2vTensor *y, const I2vTensor *table, const int64_t *ids) {
  if (!ready(st, "gather_rows", 2, y, table)) return;
  if (!expect(st, table->ndim == 2 && last_dim(y) == table->shape[1], "gather_rows",
              "table [V, D], y [n, D]", y))
    return;
  for (int64_t i = 0; i < rows_of(y); i++) {
    if (ids[i] < 0 || ids[i] >= table->shape[0]) {
      i2v_stream_failf(
          st, "gather_rows: id %" G_GINT64_FORMAT " outside the table of %" G_GINT64_FORMAT " rows",
          ids[i], table->shape[0]);
      return;
    }
  }
  st->be->ops->gather_rows(st, y, table, ids);
}

void i2v_op_fill(I2vStream *st, I2vTensor *y, float value) {
  if (!ready(st, "fill", 1, y)) return;
  st->be->ops->fill(st, y, value);
}

void i2v_op_copy(I2vStream *st, I2vTensor *y, const I2vTensor *x) {
  if (!ready(st, "copy", 2, y, x)) return;
  if (!expect(st, i2v_tensor_numel(y) == i2v_tensor_numel(x), "copy", "same numel", y)) return;
  st->be->ops->copy(st, y, x);
}
