/* The CLIP encoder layer and config sizes shared by clip_text.c and clip_vision.c. */
#include "clip_layer.h"

#include <math.h>
#include <string.h>

#include <i2v/error.h>

/* A required positive integer key that fits an int. */
static gboolean read_positive(JsonObject *cfg, const char *file, const char *key, int *out,
                              GError **error) {
  gint64 v;
  if (!i2v_config_int(cfg, file, key, &v, error)) return FALSE;
  if (v <= 0 || v > G_MAXINT32) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "%s: %s is %" G_GINT64_FORMAT ", expected a positive integer", file, key, v);
    return FALSE;
  }
  *out = (int)v;
  return TRUE;
}

gboolean i2v_clip_dims_read(JsonObject *cfg, const char *file, I2vClipDims *d, GError **error) {
  if (!read_positive(cfg, file, "hidden_size", &d->hidden, error) ||
      !read_positive(cfg, file, "num_hidden_layers", &d->layers, error) ||
      !read_positive(cfg, file, "num_attention_heads", &d->heads, error) ||
      !read_positive(cfg, file, "intermediate_size", &d->intermediate, error))
    return FALSE;
  if (d->hidden % d->heads != 0) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "%s: hidden_size %d is not divisible by num_attention_heads %d", file, d->hidden,
                d->heads);
    return FALSE;
  }
  /* transformers' CLIP configs default to quick_gelu when the key is absent */
  const char *act = i2v_config_string_or(cfg, "hidden_act", "quick_gelu");
  if (!i2v_act_from_name(act, &d->act)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "%s: hidden_act \"%s\" is not a known activation (expected gelu, quick_gelu or "
                "silu)",
                file, act);
    return FALSE;
  }
  double eps;
  if (!i2v_config_double(cfg, file, "layer_norm_eps", &eps, error)) return FALSE;
  if (!(eps > 0)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG, "%s: layer_norm_eps is %g, expected > 0", file,
                eps);
    return FALSE;
  }
  d->eps = (float)eps;
  return TRUE;
}

gboolean i2v_clip_norm_load(I2vWeights *w, I2vBackend *be, const char *prefix, int64_t n,
                            I2vTensor *gamma, I2vTensor *beta, GError **error) {
  char *wname = g_strconcat(prefix, ".weight", NULL);
  char *bname = g_strconcat(prefix, ".bias", NULL);
  gboolean ok = i2v_weights_load_1d(w, be, wname, n, gamma, error) &&
                i2v_weights_load_1d(w, be, bname, n, beta, error);
  g_free(wname);
  g_free(bname);
  return ok;
}

/* Loads "<prefix><name>.weight" [out, in] and "<prefix><name>.bias" [out]. */
static gboolean load_linear(I2vWeights *w, I2vBackend *be, const char *prefix, const char *name,
                            int64_t out, int64_t in, I2vTensor *weight, I2vTensor *bias,
                            GError **error) {
  char *wname = g_strconcat(prefix, name, ".weight", NULL);
  char *bname = g_strconcat(prefix, name, ".bias", NULL);
  gboolean ok = i2v_weights_load_2d(w, be, wname, out, in, weight, error) &&
                i2v_weights_load_1d(w, be, bname, out, bias, error);
  g_free(wname);
  g_free(bname);
  return ok;
}

/* Loads q_proj, k_proj, v_proj stacked into rows [0,C), [C,2C), [2C,3C) of one packed
 * projection, so the attention reads q, k, v out of a single GEMM result. */
static gboolean load_qkv(I2vClipLayer *l, I2vWeights *w, I2vBackend *be, const char *prefix,
                         int64_t c, GError **error) {
  static const char *const parts[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
  char *wnames[3], *bnames[3];
  for (int i = 0; i < 3; i++) {
    wnames[i] = g_strconcat(prefix, parts[i], ".weight", NULL);
    bnames[i] = g_strconcat(prefix, parts[i], ".bias", NULL);
  }
  int64_t wshape[] = {c, c}, bshape[] = {c};
  gboolean ok =
      i2v_weights_load_stacked(w, be, (const char *const *)wnames, 3, 2, wshape, &l->qkv_w,
                               error) &&
      i2v_weights_load_stacked(w, be, (const char *const *)bnames, 3, 1, bshape, &l->qkv_b, error);
  for (int i = 0; i < 3; i++) {
    g_free(wnames[i]);
    g_free(bnames[i]);
  }
  return ok;
}

gboolean i2v_clip_layer_load(I2vClipLayer *l, I2vWeights *w, I2vBackend *be, const char *prefix,
                             const I2vClipDims *d, GError **error) {
  int64_t c = d->hidden, f = d->intermediate;
  char *ln1 = g_strconcat(prefix, "layer_norm1", NULL);
  char *ln2 = g_strconcat(prefix, "layer_norm2", NULL);
  memset(l, 0, sizeof(*l));
  gboolean ok =
      i2v_clip_norm_load(w, be, ln1, c, &l->ln1_w, &l->ln1_b, error) &&
      load_qkv(l, w, be, prefix, c, error) &&
      load_linear(w, be, prefix, "self_attn.out_proj", c, c, &l->out_w, &l->out_b, error) &&
      i2v_clip_norm_load(w, be, ln2, c, &l->ln2_w, &l->ln2_b, error) &&
      load_linear(w, be, prefix, "mlp.fc1", f, c, &l->fc1_w, &l->fc1_b, error) &&
      load_linear(w, be, prefix, "mlp.fc2", c, f, &l->fc2_w, &l->fc2_b, error);
  g_free(ln1);
  g_free(ln2);
  if (!ok) i2v_clip_layer_free(l);
  return ok;
}

void i2v_clip_layer_free(I2vClipLayer *l) {
  I2vTensor *all[] = {&l->ln1_w, &l->ln1_b, &l->qkv_w, &l->qkv_b, &l->out_w, &l->out_b,
                      &l->ln2_w, &l->ln2_b, &l->fc1_w, &l->fc1_b, &l->fc2_w, &l->fc2_b};
  for (guint i = 0; i < G_N_ELEMENTS(all); i++) i2v_tensor_free(all[i]);
}

/* Multi-head self-attention of LN1(x), already projected into qkv [B, T, 3C], written to
 * out [B, T, C]. */
static void self_attention(I2vStream *st, I2vTensor *out, const I2vTensor *qkv,
                           const I2vClipDims *d, gboolean causal) {
  int64_t b = out->shape[0], t = out->shape[1], c = d->hidden;
  I2vSeqView q = {qkv, 0, t * 3 * c, 0, 3 * c};
  I2vSeqView k = {qkv, c, t * 3 * c, 0, 3 * c};
  I2vSeqView v = {qkv, 2 * c, t * 3 * c, 0, 3 * c};
  I2vSeqView o = {out, 0, t * c, 0, c};
  int head_dim = d->hidden / d->heads;
  I2vAttnShape s = {.n_outer = b,
                    .n_inner = 1,
                    .kv_outer_div = 1,
                    .q_len = t,
                    .kv_len = t,
                    .heads = d->heads,
                    .head_dim = head_dim,
                    .scale = 1.0f / sqrtf((float)head_dim),
                    .causal = causal};
  i2v_op_attention(st, &o, &q, &k, &v, &s);
}

void i2v_clip_layer_forward(I2vStream *st, const I2vClipLayer *l, const I2vClipDims *d,
                            I2vTensor *x, gboolean causal) {
  size_t mark = i2v_scratch_mark(st);
  int64_t b = x->shape[0], t = x->shape[1], c = d->hidden;
  int64_t hshape[] = {b, t, c}, qkvshape[] = {b, t, 3 * c}, mshape[] = {b, t, d->intermediate};
  I2vTensor h = i2v_scratch_tensor(st, 3, hshape);
  I2vTensor qkv = i2v_scratch_tensor(st, 3, qkvshape);

  i2v_op_layer_norm(st, &h, x, &l->ln1_w, &l->ln1_b, d->eps);
  i2v_op_linear(st, &qkv, &h, &l->qkv_w, &l->qkv_b, I2V_ACT_NONE, FALSE);
  self_attention(st, &h, &qkv, d, causal); /* h is free again once qkv exists */
  i2v_op_linear(st, x, &h, &l->out_w, &l->out_b, I2V_ACT_NONE, TRUE); /* residual */

  I2vTensor m = i2v_scratch_tensor(st, 3, mshape);
  i2v_op_layer_norm(st, &h, x, &l->ln2_w, &l->ln2_b, d->eps);
  i2v_op_linear(st, &m, &h, &l->fc1_w, &l->fc1_b, d->act, FALSE);
  i2v_op_linear(st, x, &m, &l->fc2_w, &l->fc2_b, I2V_ACT_NONE, TRUE); /* residual */
  i2v_scratch_release(st, mark);
}

I2vClipLayer *i2v_clip_layers_load(I2vWeights *w, I2vBackend *be, const char *tower,
                                   const I2vClipDims *d, GError **error) {
  I2vClipLayer *layers = g_new0(I2vClipLayer, d->layers);
  for (int i = 0; i < d->layers; i++) {
    char *prefix = g_strdup_printf("%s.encoder.layers.%d.", tower, i);
    gboolean ok = i2v_clip_layer_load(&layers[i], w, be, prefix, d, error);
    g_free(prefix);
    if (!ok) {
      i2v_clip_layers_free(layers, i);
      return NULL;
    }
  }
  return layers;
}

void i2v_clip_layers_free(I2vClipLayer *layers, int n) {
  if (layers == NULL) return;
  for (int i = 0; i < n; i++) i2v_clip_layer_free(&layers[i]);
  g_free(layers);
}

void i2v_clip_add_positions(I2vStream *st, I2vTensor *x, const I2vTensor *table) {
  int64_t b = x->shape[0], t = x->shape[1], c = x->shape[2];
  int64_t *ids = g_new(int64_t, b * t);
  for (int64_t i = 0; i < b * t; i++) ids[i] = i % t;
  size_t mark = i2v_scratch_mark(st);
  int64_t shape[] = {b, t, c};
  I2vTensor pos = i2v_scratch_tensor(st, 3, shape);
  i2v_op_gather_rows(st, &pos, table, ids);
  i2v_op_add(st, x, x, &pos);
  i2v_scratch_release(st, mark);
  g_free(ids);
}

void i2v_clip_tap_hidden(I2vStream *st, int index, const I2vTensor *x) {
  if (!i2v_stream_tapping(st)) return;
  char name[32];
  g_snprintf(name, sizeof name, "hidden_states.%d", index);
  i2v_tap(st, name, x);
}
