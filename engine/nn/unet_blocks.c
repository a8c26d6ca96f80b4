/* I2VGen-XL UNet building blocks: ResnetBlock2D, TemporalConvLayer, Transformer2DModel and
 * TransformerTemporalModel (reference §3.3.5–3.3.8), written against the op table. */
#include "unet_blocks.h"

#include <math.h>

/* Epsilons (reference P-4). */
#define RESNET_EPS 1e-5f
#define TEMP_CONV_EPS 1e-5f
#define TRANSFORMER_GN_EPS 1e-6f
#define LAYER_NORM_EPS 1e-5f

/* The GEGLU feed-forward widens rows 8× (4× after the gate); it runs over row chunks so its
 * scratch stays bounded at real video sizes. */
#define FF_CHUNK_ROWS 16384

/* ---- weights ---- */

/* Loads tensor "<prefix>.<name><suffix>" ("<prefix><suffix>" when name is NULL). */
static void load_tensor(UnetLoader *ld, I2vTensor *t, I2vLayout layout, int ndim,
                        const int64_t *shape, const char *prefix, const char *name,
                        const char *suffix) {
  if (ld->error != NULL) return;
  char *full = name != NULL ? g_strconcat(prefix, ".", name, suffix, NULL)
                            : g_strconcat(prefix, suffix, NULL);
  if (i2v_weights_load(ld->w, ld->be, full, ndim, shape, layout, t, &ld->error))
    g_ptr_array_add(ld->tensors, t);
  g_free(full);
}

void unet_load_linear(UnetLoader *ld, UnetLinear *l, const char *prefix, const char *name,
                      int64_t out, int64_t in, gboolean bias) {
  int64_t ws[2] = {out, in};
  load_tensor(ld, &l->w, I2V_LAYOUT_AS_IS, 2, ws, prefix, name, ".weight");
  if (bias) load_tensor(ld, &l->b, I2V_LAYOUT_AS_IS, 1, &out, prefix, name, ".bias");
}

void unet_load_conv(UnetLoader *ld, UnetLinear *l, const char *prefix, const char *name,
                    int64_t out, int64_t in, int64_t k) {
  int64_t ws[4] = {out, in, k, k};
  load_tensor(ld, &l->w, I2V_LAYOUT_CONV2D, 4, ws, prefix, name, ".weight");
  load_tensor(ld, &l->b, I2V_LAYOUT_AS_IS, 1, &out, prefix, name, ".bias");
}

void unet_load_norm(UnetLoader *ld, UnetNorm *n, const char *prefix, const char *name, int64_t c) {
  load_tensor(ld, &n->gamma, I2V_LAYOUT_AS_IS, 1, &c, prefix, name, ".weight");
  load_tensor(ld, &n->beta, I2V_LAYOUT_AS_IS, 1, &c, prefix, name, ".bias");
}

void unet_load_resnet(UnetLoader *ld, UnetResnet *r, const char *prefix, int64_t cin, int64_t cout,
                      int64_t temb_dim) {
  r->cin = cin;
  r->cout = cout;
  unet_load_norm(ld, &r->norm1, prefix, "norm1", cin);
  unet_load_conv(ld, &r->conv1, prefix, "conv1", cout, cin, 3);
  unet_load_linear(ld, &r->time_emb_proj, prefix, "time_emb_proj", cout, temb_dim, TRUE);
  unet_load_norm(ld, &r->norm2, prefix, "norm2", cout);
  unet_load_conv(ld, &r->conv2, prefix, "conv2", cout, cout, 3);
  if (cin != cout) unet_load_conv(ld, &r->shortcut, prefix, "conv_shortcut", cout, cin, 1);
}

void unet_load_temp_conv(UnetLoader *ld, UnetTempConv *t, const char *prefix, int64_t c) {
  /* nn.Sequential indices: conv1 = (GN, SiLU, Conv3d), conv2..4 = (GN, SiLU, Dropout, Conv3d). */
  int64_t ws[5] = {c, c, 3, 1, 1};
  for (int k = 0; k < 4; k++) {
    char norm[16], conv[16];
    g_snprintf(norm, sizeof norm, "conv%d.0", k + 1);
    g_snprintf(conv, sizeof conv, "conv%d.%d", k + 1, k == 0 ? 2 : 3);
    unet_load_norm(ld, &t->norm[k], prefix, norm, c);
    load_tensor(ld, &t->conv[k].w, I2V_LAYOUT_CONV_FRAMES, 5, ws, prefix, conv, ".weight");
    load_tensor(ld, &t->conv[k].b, I2V_LAYOUT_AS_IS, 1, &c, prefix, conv, ".bias");
  }
}

static void load_tblock(UnetLoader *ld, UnetTBlock *b, const char *prefix, int heads, int head_dim,
                        int64_t ctx_dim) {
  int64_t d = (int64_t)heads * head_dim, kv_in = ctx_dim > 0 ? ctx_dim : d;
  b->dim = d;
  b->heads = heads;
  b->head_dim = head_dim;
  b->cross = ctx_dim > 0;
  struct {
    UnetLinear *l;
    const char *name;
    int64_t out, in;
    gboolean bias;
  } lin[] = {
      {&b->q1, "attn1.to_q", d, d, FALSE},          {&b->k1, "attn1.to_k", d, d, FALSE},
      {&b->v1, "attn1.to_v", d, d, FALSE},          {&b->out1, "attn1.to_out.0", d, d, TRUE},
      {&b->q2, "attn2.to_q", d, d, FALSE},          {&b->k2, "attn2.to_k", d, kv_in, FALSE},
      {&b->v2, "attn2.to_v", d, kv_in, FALSE},      {&b->out2, "attn2.to_out.0", d, d, TRUE},
      {&b->ff_in, "ff.net.0.proj", 8 * d, d, TRUE}, {&b->ff_out, "ff.net.2", d, 4 * d, TRUE},
  };
  for (guint i = 0; i < G_N_ELEMENTS(lin); i++)
    unet_load_linear(ld, lin[i].l, prefix, lin[i].name, lin[i].out, lin[i].in, lin[i].bias);
  unet_load_norm(ld, &b->norm1, prefix, "norm1", d);
  unet_load_norm(ld, &b->norm2, prefix, "norm2", d);
  unet_load_norm(ld, &b->norm3, prefix, "norm3", d);
}

void unet_load_transformer(UnetLoader *ld, UnetTransformer *t, const char *prefix, int64_t c,
                           int heads, int head_dim, int64_t ctx_dim) {
  t->channels = c;
  t->inner = (int64_t)heads * head_dim;
  t->temporal = ctx_dim == 0;
  unet_load_norm(ld, &t->norm, prefix, "norm", c);
  unet_load_linear(ld, &t->proj_in, prefix, "proj_in", t->inner, c, TRUE);
  char *block = g_strconcat(prefix, ".transformer_blocks.0", NULL);
  load_tblock(ld, &t->block, block, heads, head_dim, ctx_dim);
  g_free(block);
  unet_load_linear(ld, &t->proj_out, prefix, "proj_out", c, t->inner, TRUE);
}

/* ---- attention helpers ---- */

UnetSeqs unet_spatial_seqs(int64_t n, int64_t hw) {
  return (UnetSeqs){.n_outer = n, .n_inner = 1, .len = hw, .outer = hw, .inner = 0, .token = 1};
}

UnetSeqs unet_temporal_seqs(int64_t batch, int64_t frames, int64_t hw) {
  return (UnetSeqs){.n_outer = batch,
                    .n_inner = hw,
                    .len = frames,
                    .outer = frames * hw,
                    .inner = 1,
                    .token = hw};
}

static I2vSeqView seq_view(const I2vTensor *t, const UnetSeqs *s, int64_t width) {
  return (I2vSeqView){.t = t,
                      .offset = 0,
                      .outer_stride = s->outer * width,
                      .inner_stride = s->inner * width,
                      .token_stride = s->token * width};
}

void unet_attention(I2vStream *st, I2vTensor *out, const I2vTensor *q, const I2vTensor *k,
                    const I2vTensor *v, const UnetSeqs *qs, const UnetSeqs *kvs,
                    int64_t kv_outer_div, int heads, int head_dim) {
  int64_t width = (int64_t)heads * head_dim;
  I2vSeqView vo = seq_view(out, qs, width), vq = seq_view(q, qs, width);
  I2vSeqView vk = seq_view(k, kvs, width), vv = seq_view(v, kvs, width);
  I2vAttnShape shape = {.n_outer = qs->n_outer,
                        .n_inner = qs->n_inner,
                        .kv_outer_div = kv_outer_div,
                        .q_len = qs->len,
                        .kv_len = kvs->len,
                        .heads = heads,
                        .head_dim = head_dim,
                        .scale = (float)(1.0 / sqrt((double)head_dim)),
                        .causal = FALSE};
  i2v_op_attention(st, &vo, &vq, &vk, &vv, &shape);
}

/* ---- blocks ---- */

static const I2vTensor *bias_of(const UnetLinear *l) {
  return l->b.data != NULL ? &l->b : NULL;
}

static void conv3x3(I2vStream *st, I2vTensor *y, const I2vTensor *x, const UnetLinear *c,
                    gboolean accumulate) {
  const I2vConvParams p = {
      .stride = 1, .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1};
  i2v_op_conv2d(st, y, x, &c->w, bias_of(c), &p, accumulate);
}

void unet_resnet_forward(const UnetRun *run, const UnetResnet *r, const I2vTensor *x,
                         I2vTensor *out) {
  I2vStream *st = run->st;
  int64_t n = x->shape[0], h = x->shape[1], w = x->shape[2];
  size_t mark = i2v_scratch_mark(st);
  I2vTensor t = i2v_scratch_tensor(st, 4, x->shape);
  i2v_op_group_norm(st, &t, x, &r->norm1.gamma, &r->norm1.beta, n, run->groups, RESNET_EPS,
                    I2V_ACT_SILU);
  int64_t hs[4] = {n, h, w, r->cout};
  I2vTensor h1 = i2v_scratch_tensor(st, 4, hs);
  conv3x3(st, &h1, &t, &r->conv1, FALSE);
  /* Time embedding: one row per video, broadcast over its F frames × h·w pixels. */
  int64_t ts[2] = {run->batch, r->cout};
  I2vTensor temb = i2v_scratch_tensor(st, 2, ts);
  i2v_op_linear(st, &temb, &run->emb_act, &r->time_emb_proj.w, &r->time_emb_proj.b, I2V_ACT_NONE,
                FALSE);
  int64_t vs[3] = {run->batch, run->frames * h * w, r->cout};
  I2vTensor h1v = i2v_tensor_view(&h1, 3, vs);
  i2v_op_add_rows(st, &h1v, &temb);
  i2v_op_group_norm(st, &h1, &h1, &r->norm2.gamma, &r->norm2.beta, n, run->groups, RESNET_EPS,
                    I2V_ACT_SILU);
  if (r->shortcut.w.data != NULL) {
    const I2vConvParams p1 = {.stride = 1};
    i2v_op_conv2d(st, out, x, &r->shortcut.w, &r->shortcut.b, &p1, FALSE);
  } else {
    i2v_op_copy(st, out, x);
  }
  conv3x3(st, out, &h1, &r->conv2, TRUE);
  i2v_scratch_release(st, mark);
}

void unet_temp_conv_forward(const UnetRun *run, const UnetTempConv *t, I2vTensor *x) {
  I2vStream *st = run->st;
  /* Frames of a video are consecutive rows: [B·F, h, w, C] is [B, F, h·w, C]; the GroupNorms
   * take statistics per video over all its frames (P-3). */
  int64_t vs[4] = {run->batch, run->frames, x->shape[1] * x->shape[2], x->shape[3]};
  I2vTensor v = i2v_tensor_view(x, 4, vs);
  size_t mark = i2v_scratch_mark(st);
  I2vTensor a = i2v_scratch_tensor(st, 4, vs), b = i2v_scratch_tensor(st, 4, vs);
  i2v_op_group_norm(st, &a, &v, &t->norm[0].gamma, &t->norm[0].beta, run->batch, run->groups,
                    TEMP_CONV_EPS, I2V_ACT_SILU);
  for (int k = 0; k < 3; k++) {
    i2v_op_conv_frames(st, &b, &a, &t->conv[k].w, &t->conv[k].b, FALSE);
    i2v_op_group_norm(st, &a, &b, &t->norm[k + 1].gamma, &t->norm[k + 1].beta, run->batch,
                      run->groups, TEMP_CONV_EPS, I2V_ACT_SILU);
  }
  i2v_op_conv_frames(st, &v, &a, &t->conv[3].w, &t->conv[3].b, TRUE);
  i2v_scratch_release(st, mark);
}

/* a += to_out(attention(to_q(n), K, V)): K/V from n (self-attention) or the precomputed
 * context K/V of this transformer (cross-attention, shared by the F frames of a video). */
static void attention_layer(const UnetRun *run, const UnetTBlock *b, const UnetLinear *wq,
                            const UnetLinear *wk, const UnetLinear *wv, const UnetLinear *wo,
                            I2vTensor *a, const I2vTensor *n, const UnetSeqs *seqs,
                            const I2vTensor *ctx_k, const I2vTensor *ctx_v) {
  I2vStream *st = run->st;
  size_t mark = i2v_scratch_mark(st);
  I2vTensor q = i2v_scratch_tensor(st, 2, a->shape), o = i2v_scratch_tensor(st, 2, a->shape);
  i2v_op_linear(st, &q, n, &wq->w, NULL, I2V_ACT_NONE, FALSE);
  if (ctx_k == NULL) {
    I2vTensor k = i2v_scratch_tensor(st, 2, a->shape), v = i2v_scratch_tensor(st, 2, a->shape);
    i2v_op_linear(st, &k, n, &wk->w, NULL, I2V_ACT_NONE, FALSE);
    i2v_op_linear(st, &v, n, &wv->w, NULL, I2V_ACT_NONE, FALSE);
    unet_attention(st, &o, &q, &k, &v, seqs, seqs, 1, b->heads, b->head_dim);
  } else {
    UnetSeqs ctx = {.n_outer = run->batch,
                    .n_inner = 1,
                    .len = run->ctx_len,
                    .outer = run->ctx_len,
                    .inner = 0,
                    .token = 1};
    unet_attention(st, &o, &q, ctx_k, ctx_v, seqs, &ctx, run->frames, b->heads, b->head_dim);
  }
  i2v_op_linear(st, a, &o, &wo->w, &wo->b, I2V_ACT_NONE, TRUE);
  i2v_scratch_release(st, mark);
}

/* a += ff.net.2(GEGLU(ff.net.0.proj(n))), in row chunks. */
static void feed_forward(I2vStream *st, const UnetTBlock *b, I2vTensor *a, const I2vTensor *n) {
  int64_t rows = a->shape[0];
  for (int64_t first = 0; first < rows; first += FF_CHUNK_ROWS) {
    int64_t count = MIN(FF_CHUNK_ROWS, rows - first);
    size_t mark = i2v_scratch_mark(st);
    I2vTensor nr = i2v_tensor_rows(n, first, count), ar = i2v_tensor_rows(a, first, count);
    int64_t hs[2] = {count, 8 * b->dim}, gs[2] = {count, 4 * b->dim};
    I2vTensor h = i2v_scratch_tensor(st, 2, hs), g = i2v_scratch_tensor(st, 2, gs);
    i2v_op_linear(st, &h, &nr, &b->ff_in.w, &b->ff_in.b, I2V_ACT_NONE, FALSE);
    i2v_op_geglu(st, &g, &h);
    i2v_op_linear(st, &ar, &g, &b->ff_out.w, &b->ff_out.b, I2V_ACT_NONE, TRUE);
    i2v_scratch_release(st, mark);
  }
}

/* BasicTransformerBlock on the residual stream a [rows, dim] (in place). */
static void tblock_forward(const UnetRun *run, const UnetTBlock *b, I2vTensor *a,
                           const UnetSeqs *seqs, const I2vTensor *ctx_k, const I2vTensor *ctx_v) {
  I2vStream *st = run->st;
  size_t mark = i2v_scratch_mark(st);
  I2vTensor n = i2v_scratch_tensor(st, 2, a->shape);
  i2v_op_layer_norm(st, &n, a, &b->norm1.gamma, &b->norm1.beta, LAYER_NORM_EPS);
  attention_layer(run, b, &b->q1, &b->k1, &b->v1, &b->out1, a, &n, seqs, NULL, NULL);
  i2v_op_layer_norm(st, &n, a, &b->norm2.gamma, &b->norm2.beta, LAYER_NORM_EPS);
  attention_layer(run, b, &b->q2, &b->k2, &b->v2, &b->out2, a, &n, seqs, b->cross ? ctx_k : NULL,
                  b->cross ? ctx_v : NULL);
  i2v_op_layer_norm(st, &n, a, &b->norm3.gamma, &b->norm3.beta, LAYER_NORM_EPS);
  feed_forward(st, b, a, &n);
  i2v_scratch_release(st, mark);
}

void unet_transformer_forward(const UnetRun *run, const UnetTransformer *t, I2vTensor *x) {
  I2vStream *st = run->st;
  int64_t n = x->shape[0], hw = x->shape[1] * x->shape[2];
  size_t mark = i2v_scratch_mark(st);
  /* Spatial: GroupNorm per frame, sequences over the h·w tokens of a frame. Temporal:
   * GroupNorm per video over all frames, sequences over the F frames of a pixel. */
  I2vTensor norm = i2v_scratch_tensor(st, 4, x->shape);
  i2v_op_group_norm(st, &norm, x, &t->norm.gamma, &t->norm.beta, t->temporal ? run->batch : n,
                    run->groups, TRANSFORMER_GN_EPS, I2V_ACT_NONE);
  int64_t as[2] = {n * hw, t->inner};
  I2vTensor a = i2v_scratch_tensor(st, 2, as);
  i2v_op_linear(st, &a, &norm, &t->proj_in.w, &t->proj_in.b, I2V_ACT_NONE, FALSE);
  UnetSeqs seqs =
      t->temporal ? unet_temporal_seqs(run->batch, run->frames, hw) : unet_spatial_seqs(n, hw);
  const I2vTensor *ctx_k = t->temporal ? NULL : &run->kv[2 * t->kv_slot];
  const I2vTensor *ctx_v = t->temporal ? NULL : &run->kv[2 * t->kv_slot + 1];
  tblock_forward(run, &t->block, &a, &seqs, ctx_k, ctx_v);
  i2v_op_linear(st, x, &a, &t->proj_out.w, &t->proj_out.b, I2V_ACT_NONE, TRUE);
  i2v_scratch_release(st, mark);
}
