/* The UNet's transformers (transformer.h). */
#include "transformer.h"

/* Epsilons of the transformers' norms (diffusers' defaults for these modules). */
#define TRANSFORMER_GN_EPS 1e-6f
#define LAYER_NORM_EPS 1e-5f

/* The GEGLU feed-forward widens rows 8× (4× after the gate); it runs over row chunks so its
 * scratch stays bounded at real video sizes. */
#define FF_CHUNK_ROWS 16384

static void load_tblock(I2vLoader *ld, I2vTransformerBlock *b, const char *prefix, int heads,
                        int head_dim, int64_t ctx_dim) {
  int64_t d = (int64_t)heads * head_dim, kv_in = ctx_dim > 0 ? ctx_dim : d;
  b->dim = d;
  b->heads = heads;
  b->head_dim = head_dim;
  b->cross = ctx_dim > 0;
  struct {
    I2vLinear *l;
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
    i2v_load_linear(ld, lin[i].l, prefix, lin[i].name, lin[i].out, lin[i].in, lin[i].bias);
  i2v_load_norm(ld, &b->norm1, prefix, "norm1", d);
  i2v_load_norm(ld, &b->norm2, prefix, "norm2", d);
  i2v_load_norm(ld, &b->norm3, prefix, "norm3", d);
}

void i2v_load_transformer(I2vLoader *ld, I2vTransformer *t, const char *prefix, int64_t c,
                          int heads, int head_dim, int64_t ctx_dim) {
  t->channels = c;
  t->inner = (int64_t)heads * head_dim;
  t->temporal = ctx_dim == 0;
  i2v_load_norm(ld, &t->norm, prefix, "norm", c);
  i2v_load_linear(ld, &t->proj_in, prefix, "proj_in", t->inner, c, TRUE);
  char *block = g_strconcat(prefix, ".transformer_blocks.0", NULL);
  load_tblock(ld, &t->block, block, heads, head_dim, ctx_dim);
  g_free(block);
  i2v_load_linear(ld, &t->proj_out, prefix, "proj_out", c, t->inner, TRUE);
}

/* a += to_out(attention(to_q(n), K, V)): K/V from n (self-attention) or the precomputed
 * context K/V of this transformer (cross-attention, shared by the F frames of a video). */
static void attention_layer(const I2vUnetRun *run, const I2vTransformerBlock *b,
                            const I2vLinear *wq, const I2vLinear *wk, const I2vLinear *wv,
                            const I2vLinear *wo, I2vTensor *a, const I2vTensor *n,
                            const I2vSeqs *seqs, const I2vTensor *ctx_k, const I2vTensor *ctx_v) {
  I2vStream *st = run->st;
  size_t mark = i2v_scratch_mark(st);
  I2vTensor q = i2v_scratch_tensor(st, 2, a->shape), o = i2v_scratch_tensor(st, 2, a->shape);
  i2v_op_linear(st, &q, n, &wq->w, NULL, I2V_ACT_NONE, FALSE);
  if (ctx_k == NULL) {
    I2vTensor k = i2v_scratch_tensor(st, 2, a->shape), v = i2v_scratch_tensor(st, 2, a->shape);
    i2v_op_linear(st, &k, n, &wk->w, NULL, I2V_ACT_NONE, FALSE);
    i2v_op_linear(st, &v, n, &wv->w, NULL, I2V_ACT_NONE, FALSE);
    i2v_attention(st, &o, &q, &k, &v, seqs, seqs, 1, b->heads, b->head_dim);
  } else {
    I2vSeqs ctx = i2v_seqs_context(run->batch, run->ctx_len);
    i2v_attention(st, &o, &q, ctx_k, ctx_v, seqs, &ctx, run->frames, b->heads, b->head_dim);
  }
  i2v_op_linear(st, a, &o, &wo->w, &wo->b, I2V_ACT_NONE, TRUE);
  i2v_scratch_release(st, mark);
}

/* a += ff.net.2(GEGLU(ff.net.0.proj(n))), in row chunks. */
static void feed_forward(I2vStream *st, const I2vTransformerBlock *b, I2vTensor *a,
                         const I2vTensor *n) {
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
static void tblock_forward(const I2vUnetRun *run, const I2vTransformerBlock *b, I2vTensor *a,
                           const I2vSeqs *seqs, const I2vTensor *ctx_k, const I2vTensor *ctx_v) {
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

void i2v_transformer_forward(const I2vUnetRun *run, const I2vTransformer *t, I2vTensor *x) {
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
  I2vSeqs seqs =
      t->temporal ? i2v_seqs_temporal(run->batch, run->frames, hw) : i2v_seqs_spatial(n, hw);
  const I2vTensor *ctx_k = t->temporal ? NULL : &run->kv[2 * t->kv_slot];
  const I2vTensor *ctx_v = t->temporal ? NULL : &run->kv[2 * t->kv_slot + 1];
  tblock_forward(run, &t->block, &a, &seqs, ctx_k, ctx_v);
  i2v_op_linear(st, x, &a, &t->proj_out.w, &t->proj_out.b, I2V_ACT_NONE, TRUE);
  i2v_scratch_release(st, mark);
}
