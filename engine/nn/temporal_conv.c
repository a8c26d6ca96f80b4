/* TemporalConvLayer (temporal_conv.h). */
#include "temporal_conv.h"

#define TEMP_CONV_EPS 1e-5f

void i2v_load_temporal_conv(I2vLoader *ld, I2vTemporalConv *t, const char *prefix, int64_t c) {
  /* nn.Sequential indices: conv1 = (GN, SiLU, Conv3d), conv2..4 = (GN, SiLU, Dropout, Conv3d). */
  int64_t ws[5] = {c, c, 3, 1, 1};
  for (int k = 0; k < 4; k++) {
    char norm[16], conv[16];
    g_snprintf(norm, sizeof norm, "conv%d.0", k + 1);
    g_snprintf(conv, sizeof conv, "conv%d.%d", k + 1, k == 0 ? 2 : 3);
    char *w = g_strconcat(conv, ".weight", NULL), *b = g_strconcat(conv, ".bias", NULL);
    i2v_load_norm(ld, &t->norm[k], prefix, norm, c);
    i2v_load_tensor(ld, &t->conv[k].w, prefix, w, 5, ws, I2V_LAYOUT_CONV_FRAMES);
    i2v_load_tensor(ld, &t->conv[k].b, prefix, b, 1, &c, I2V_LAYOUT_AS_IS);
    g_free(w);
    g_free(b);
  }
}

void i2v_temporal_conv_forward(I2vStream *st, const I2vTemporalConv *t, int64_t batch,
                               int64_t frames, int groups, I2vTensor *x) {
  /* Frames of a video are consecutive rows: [B·F, h, w, C] is [B, F, h·w, C]; the GroupNorms
   * take statistics per video over all its frames. */
  int64_t vs[4] = {batch, frames, x->shape[1] * x->shape[2], x->shape[3]};
  I2vTensor v = i2v_tensor_view(x, 4, vs);
  size_t mark = i2v_scratch_mark(st);
  I2vTensor a = i2v_scratch_tensor(st, 4, vs), b = i2v_scratch_tensor(st, 4, vs);
  i2v_op_group_norm(st, &a, &v, &t->norm[0].gamma, &t->norm[0].beta, batch, groups, TEMP_CONV_EPS,
                    I2V_ACT_SILU);
  for (int k = 0; k < 3; k++) {
    i2v_op_conv_frames(st, &b, &a, &t->conv[k].w, &t->conv[k].b, FALSE);
    i2v_op_group_norm(st, &a, &b, &t->norm[k + 1].gamma, &t->norm[k + 1].beta, batch, groups,
                      TEMP_CONV_EPS, I2V_ACT_SILU);
  }
  i2v_op_conv_frames(st, &v, &a, &t->conv[3].w, &t->conv[3].b, TRUE);
  i2v_scratch_release(st, mark);
}
