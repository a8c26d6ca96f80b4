/* The CLIP encoder layer and config sizes shared by clip_text.c and clip_vision.c. */
#include "clip_layer.h"

#include <math.h>
#include <string.h>

#include <i2v/error.h>

gboolean i2v_clip_dims_read(const I2vConfig *c, I2vClipDims *d, GError **error) {
  static const char *const acts[] = {"gelu", "quick_gelu", "silu", "swish", NULL};
  int act;
  double eps;
  if (!i2v_config_int(c, "hidden_size", 1, 16384, &d->hidden, error) ||
      !i2v_config_int(c, "num_hidden_layers", 1, 256, &d->layers, error) ||
      !i2v_config_int(c, "num_attention_heads", 1, 256, &d->heads, error) ||
      !i2v_config_int(c, "intermediate_size", 1, 65536, &d->intermediate, error) ||
      /* transformers' CLIP configs default to quick_gelu when the key is absent */
      !i2v_config_choice(c, "hidden_act", "quick_gelu", acts, &act, error) ||
      !i2v_config_double(c, "layer_norm_eps", 1e-12, 1, &eps, error))
    return FALSE;
  if (d->hidden % d->heads != 0) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "%s: hidden_size %d is not divisible by num_attention_heads %d", c->file, d->hidden,
                d->heads);
    return FALSE;
  }
  i2v_act_from_name(acts[act], &d->act);
  d->eps = (float)eps;
  return TRUE;
}

/* One layer "<prefix>.layer_norm1", "<prefix>.self_attn.q_proj", ... with the shapes d implies;
 * q, k and v stacked into rows [0,C), [C,2C), [2C,3C) of one packed projection, so the attention
 * reads them out of a single GEMM result. */
static void load_layer(I2vLoader *ld, I2vClipLayer *l, const char *prefix, const I2vClipDims *d) {
  static const char *const qkv[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
  int64_t c = d->hidden, f = d->intermediate, ws[2] = {c, c};
  i2v_load_norm(ld, &l->ln1, prefix, "layer_norm1", c);
  i2v_load_stacked(ld, &l->qkv_w, prefix, qkv, 3, "weight", 2, ws);
  i2v_load_stacked(ld, &l->qkv_b, prefix, qkv, 3, "bias", 1, ws);
  i2v_load_linear(ld, &l->out, prefix, "self_attn.out_proj", c, c, TRUE);
  i2v_load_norm(ld, &l->ln2, prefix, "layer_norm2", c);
  i2v_load_linear(ld, &l->fc1, prefix, "mlp.fc1", f, c, TRUE);
  i2v_load_linear(ld, &l->fc2, prefix, "mlp.fc2", c, f, TRUE);
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

  i2v_op_layer_norm(st, &h, x, &l->ln1.gamma, &l->ln1.beta, d->eps);
  i2v_op_linear(st, &qkv, &h, &l->qkv_w, &l->qkv_b, I2V_ACT_NONE, FALSE);
  self_attention(st, &h, &qkv, d, causal); /* h is free again once qkv exists */
  i2v_op_linear(st, x, &h, &l->out.w, &l->out.b, I2V_ACT_NONE, TRUE); /* residual */

  I2vTensor m = i2v_scratch_tensor(st, 3, mshape);
  i2v_op_layer_norm(st, &h, x, &l->ln2.gamma, &l->ln2.beta, d->eps);
  i2v_op_linear(st, &m, &h, &l->fc1.w, &l->fc1.b, d->act, FALSE);
  i2v_op_linear(st, x, &m, &l->fc2.w, &l->fc2.b, I2V_ACT_NONE, TRUE); /* residual */
  i2v_scratch_release(st, mark);
}

void i2v_clip_layer_load(I2vLoader *ld, I2vClipLayer *layer, const char *tower, int index,
                         const I2vClipDims *d) {
  char *prefix = g_strdup_printf("%s.encoder.layers.%d", tower, index);
  load_layer(ld, layer, prefix, d);
  g_free(prefix);
}

I2vClipLayer *i2v_clip_layers_load(I2vLoader *ld, const char *tower, const I2vClipDims *d) {
  I2vClipLayer *layers = g_new0(I2vClipLayer, d->layers);
  for (int i = 0; i < d->layers; i++) i2v_clip_layer_load(ld, &layers[i], tower, i, d);
  return layers;
}

gboolean i2v_clip_layer_run_streamed(I2vWeights *w, I2vBackend *be, I2vStream *st,
                                     const char *tower, int index, const I2vClipDims *d,
                                     gboolean causal, I2vTensor *x, GError **error) {
  GPtrArray *params = g_ptr_array_new();
  I2vLoader ld = i2v_loader(w, be, params);
  I2vClipLayer layer;
  i2v_clip_layer_load(&ld, &layer, tower, index, d);
  gboolean ok = i2v_loader_finish(&ld, error);
  if (ok) i2v_clip_layer_forward(st, &layer, d, x, causal);
  ok = ok && i2v_stream_check(st, error); /* the kernels that read the weights are done */
  i2v_params_free(params);
  return ok;
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
