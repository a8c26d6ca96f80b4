/* Multi-head attention over laid-out sequences (attention.h). */
#include "attention.h"

#include <math.h>

I2vSeqs i2v_seqs_spatial(int64_t n, int64_t hw) {
  return (I2vSeqs){.n_outer = n, .n_inner = 1, .len = hw, .outer = hw, .inner = 0, .token = 1};
}

I2vSeqs i2v_seqs_temporal(int64_t batch, int64_t frames, int64_t hw) {
  return (I2vSeqs){.n_outer = batch,
                   .n_inner = hw,
                   .len = frames,
                   .outer = frames * hw,
                   .inner = 1,
                   .token = hw};
}

I2vSeqs i2v_seqs_context(int64_t batch, int64_t len) {
  return (I2vSeqs){
      .n_outer = batch, .n_inner = 1, .len = len, .outer = len, .inner = 0, .token = 1};
}

static I2vSeqView seq_view(const I2vTensor *t, const I2vSeqs *s, int64_t width) {
  return (I2vSeqView){.t = t,
                      .offset = 0,
                      .outer_stride = s->outer * width,
                      .inner_stride = s->inner * width,
                      .token_stride = s->token * width};
}

void i2v_attention(I2vStream *st, I2vTensor *out, const I2vTensor *q, const I2vTensor *k,
                   const I2vTensor *v, const I2vSeqs *qs, const I2vSeqs *kvs, int64_t kv_outer_div,
                   int heads, int head_dim) {
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
