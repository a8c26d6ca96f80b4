/* The UNet's transformers (transformer.h). */
#include "transformer.h"

/* Epsilons of the transformers' norms (diffusers' defaults for these modules). */
#define TRANSFORMER_GN_EPS 1e-6f
#define LAYER_NORM_EPS 1e-5f

/* The GEGLU feed-forward widens rows 8× (4× after the gate); it runs over row chunks of at most
 * FF_CHUNK_ROWS rows and FF_CHUNK_ELEMENTS elements of its 12·dim-wide buffers, so its scratch
 * stays bounded at every width (32 MiB in 16-bit: 4369 rows of the real UNet's 320 channels,
 * 1092 of its 1280). */
#define FF_CHUNK_ROWS 16384
#define FF_CHUNK_ELEMENTS ((int64_t)1 << 24)

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

/* The rows of the residual stream one block call works on: their attention sequences and, for a
 * spatial transformer, the context K/V of their videos (kv_outer_div frames per context). */
typedef struct {
  I2vSeqs seqs;
  const I2vTensor *ctx_k, *ctx_v; /* NULL: the second attention is self-attention (temporal) */
  I2vSeqs ctx;
  int64_t kv_outer_div;
} Part;

/* a += to_out(attention(to_q(n), K, V)): K/V from n (self-attention) or the part's precomputed
 * context K/V (cross-attention, shared by the frames of a video). */
static void attention_layer(I2vStream *st, const I2vTransformerBlock *b, const I2vLinear *wq,
                            const I2vLinear *wk, const I2vLinear *wv, const I2vLinear *wo,
                            I2vTensor *a, const I2vTensor *n, const Part *part, gboolean cross) {
  size_t mark = i2v_scratch_mark(st);
  I2vTensor q = i2v_scratch_tensor(st, 2, a->shape), o = i2v_scratch_tensor(st, 2, a->shape);
  i2v_op_linear(st, &q, n, &wq->w, NULL, I2V_ACT_NONE, FALSE);
  if (!cross) {
    I2vTensor k = i2v_scratch_tensor(st, 2, a->shape), v = i2v_scratch_tensor(st, 2, a->shape);
    i2v_op_linear(st, &k, n, &wk->w, NULL, I2V_ACT_NONE, FALSE);
    i2v_op_linear(st, &v, n, &wv->w, NULL, I2V_ACT_NONE, FALSE);
    i2v_attention(st, &o, &q, &k, &v, &part->seqs, &part->seqs, 1, b->heads, b->head_dim);
  } else {
    i2v_attention(st, &o, &q, part->ctx_k, part->ctx_v, &part->seqs, &part->ctx, part->kv_outer_div,
                  b->heads, b->head_dim);
  }
  i2v_op_linear(st, a, &o, &wo->w, &wo->b, I2V_ACT_NONE, TRUE);
  i2v_scratch_release(st, mark);
}

/* a += ff.net.2(GEGLU(ff.net.0.proj(n))), in row chunks. */
static void feed_forward(I2vStream *st, const I2vTransformerBlock *b, I2vTensor *a,
                         const I2vTensor *n) {
  int64_t rows = a->shape[0], chunk = CLAMP(FF_CHUNK_ELEMENTS / (12 * b->dim), 1, FF_CHUNK_ROWS);
  for (int64_t first = 0; first < rows; first += chunk) {
    int64_t count = MIN(chunk, rows - first);
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
static void tblock_forward(I2vStream *st, const I2vTransformerBlock *b, I2vTensor *a,
                           const Part *part) {
  size_t mark = i2v_scratch_mark(st);
  I2vTensor n = i2v_scratch_tensor(st, 2, a->shape);
  i2v_op_layer_norm(st, &n, a, &b->norm1.gamma, &b->norm1.beta, LAYER_NORM_EPS);
  attention_layer(st, b, &b->q1, &b->k1, &b->v1, &b->out1, a, &n, part, FALSE);
  i2v_op_layer_norm(st, &n, a, &b->norm2.gamma, &b->norm2.beta, LAYER_NORM_EPS);
  attention_layer(st, b, &b->q2, &b->k2, &b->v2, &b->out2, a, &n, part, b->cross);
  i2v_op_layer_norm(st, &n, a, &b->norm3.gamma, &b->norm3.beta, LAYER_NORM_EPS);
  feed_forward(st, b, a, &n);
  i2v_scratch_release(st, mark);
}

/* out (+)= proj_out(block(proj_in(norm))) on the rows [rows, C] of one part. */
static void block_rows(I2vStream *st, const I2vTransformer *t, const I2vTensor *norm,
                       I2vTensor *out, gboolean accumulate, const Part *part) {
  size_t mark = i2v_scratch_mark(st);
  int64_t as[2] = {norm->shape[0], t->inner};
  I2vTensor a = i2v_scratch_tensor(st, 2, as);
  i2v_op_linear(st, &a, norm, &t->proj_in.w, &t->proj_in.b, I2V_ACT_NONE, FALSE);
  tblock_forward(st, &t->block, &a, part);
  i2v_op_linear(st, out, &a, &t->proj_out.w, &t->proj_out.b, I2V_ACT_NONE, accumulate);
  i2v_scratch_release(st, mark);
}

/* The spatial transformer on frames [first, first + rows) of x, which belong to videos
 * [video, video + videos): GroupNorm per frame, sequences over the h·w tokens of a frame,
 * cross-attention to the context of the frame's video. */
static void spatial_rows(const I2vUnetRun *run, const I2vTransformer *t, const I2vTensor *x,
                         int64_t first, int64_t rows, int64_t video, int64_t videos) {
  I2vStream *st = run->st;
  int64_t hw = x->shape[1] * x->shape[2];
  I2vTensor xr = i2v_tensor_rows(x, first, rows);
  I2vTensor k = i2v_tensor_rows(&run->kv[2 * t->kv_slot], video, videos);
  I2vTensor v = i2v_tensor_rows(&run->kv[2 * t->kv_slot + 1], video, videos);
  Part part = {.seqs = i2v_seqs_spatial(rows, hw),
               .ctx_k = &k,
               .ctx_v = &v,
               .ctx = i2v_seqs_context(videos, run->ctx_len),
               .kv_outer_div = rows / videos};
  size_t mark = i2v_scratch_mark(st);
  I2vTensor norm = i2v_scratch_tensor(st, 4, xr.shape);
  i2v_op_group_norm(st, &norm, &xr, &t->norm.gamma, &t->norm.beta, rows, run->groups,
                    TRANSFORMER_GN_EPS, I2V_ACT_NONE);
  int64_t ts[2] = {rows * hw, t->channels};
  I2vTensor norm2 = i2v_tensor_view(&norm, 2, ts), x2 = i2v_tensor_view(&xr, 2, ts);
  block_rows(st, t, &norm2, &x2, TRUE, &part);
  i2v_scratch_release(st, mark);
}

/* Spatial: every frame is independent, so chunks of chunk_frames frames of one video at a time
 * compute exactly what the whole batch does. */
static void spatial_forward(const I2vUnetRun *run, const I2vTransformer *t, const I2vTensor *x) {
  int64_t F = run->frames, chunk = run->chunk_frames;
  if (chunk <= 0 || chunk >= run->batch * F) {
    spatial_rows(run, t, x, 0, run->batch * F, 0, run->batch);
    return;
  }
  for (int64_t b = 0; b < run->batch; b++)
    for (int64_t f = 0; f < F; f += chunk)
      spatial_rows(run, t, x, b * F + f, MIN(chunk, F - f), b, 1);
}

/* Temporal: GroupNorm per video over all its frames, sequences over the F frames of a pixel.
 * Chunked, the normalised video is first laid out pixel-major ([B, hw, F, C]: each pixel's
 * frames in consecutive rows), chunks of pixels go through the block in place, and the result
 * is laid back out and added to x. */
static void temporal_forward(const I2vUnetRun *run, const I2vTransformer *t, I2vTensor *x) {
  I2vStream *st = run->st;
  int64_t B = run->batch, F = run->frames, hw = x->shape[1] * x->shape[2], C = t->channels;
  size_t mark = i2v_scratch_mark(st);
  I2vTensor norm = i2v_scratch_tensor(st, 4, x->shape);
  i2v_op_group_norm(st, &norm, x, &t->norm.gamma, &t->norm.beta, B, run->groups, TRANSFORMER_GN_EPS,
                    I2V_ACT_NONE);
  int64_t ts[2] = {B * F * hw, C};
  I2vTensor norm2 = i2v_tensor_view(&norm, 2, ts), x2 = i2v_tensor_view(x, 2, ts);
  /* rows per chunk as a spatial chunk of chunk_frames frames: that many pixels' F frames */
  int64_t pixels = MAX(1, run->chunk_frames * hw / F);
  if (run->chunk_frames <= 0 || pixels >= B * hw) {
    Part part = {.seqs = i2v_seqs_temporal(B, F, hw)};
    block_rows(st, t, &norm2, &x2, TRUE, &part);
    i2v_scratch_release(st, mark);
    return;
  }
  static const int swap[4] = {0, 2, 1, 3};
  int64_t vs[4] = {B, F, hw, C}, ps[4] = {B, hw, F, C};
  I2vTensor video = i2v_tensor_view(&norm, 4, vs), seq = i2v_scratch_tensor(st, 4, ps);
  i2v_op_permute(st, &seq, &video, swap);
  I2vTensor seq2 = i2v_tensor_view(&seq, 2, ts);
  for (int64_t p = 0; p < B * hw; p += pixels) {
    int64_t n = MIN(pixels, B * hw - p);
    I2vTensor rows = i2v_tensor_rows(&seq2, p * F, n * F);
    Part part = {.seqs = i2v_seqs_spatial(n, F)}; /* n sequences of F consecutive rows */
    block_rows(st, t, &rows, &rows, FALSE, &part);
  }
  i2v_op_permute(st, &video, &seq, swap);
  i2v_op_add(st, &x2, &x2, &norm2);
  i2v_scratch_release(st, mark);
}

void i2v_transformer_forward(const I2vUnetRun *run, const I2vTransformer *t, I2vTensor *x) {
  if (t->temporal)
    temporal_forward(run, t, x);
  else
    spatial_forward(run, t, x);
}
