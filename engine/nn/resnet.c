/* ResnetBlock2D (resnet.h). */
#include "resnet.h"

void i2v_load_resnet(I2vLoader *ld, I2vResnet *r, const char *prefix, int64_t cin, int64_t cout,
                     int64_t temb_dim) {
  r->cin = cin;
  r->cout = cout;
  i2v_load_norm(ld, &r->norm1, prefix, "norm1", cin);
  i2v_load_conv(ld, &r->conv1, prefix, "conv1", cout, cin, 3, TRUE);
  if (temb_dim > 0)
    i2v_load_linear(ld, &r->time_emb_proj, prefix, "time_emb_proj", cout, temb_dim, TRUE);
  i2v_load_norm(ld, &r->norm2, prefix, "norm2", cout);
  i2v_load_conv(ld, &r->conv2, prefix, "conv2", cout, cout, 3, TRUE);
  if (cin != cout) i2v_load_conv(ld, &r->shortcut, prefix, "conv_shortcut", cout, cin, 1, TRUE);
}

static void conv3x3(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vLinear *c,
                    gboolean accumulate) {
  const I2vConvParams p = {
      .stride = 1, .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1};
  i2v_op_conv2d(st, y, x, &c->w, i2v_linear_bias(c), &p, accumulate);
}

void i2v_resnet_time_proj(I2vStream *st, const I2vResnet *r, const I2vTensor *temb_act,
                          I2vTensor *proj) {
  i2v_op_linear(st, proj, temb_act, &r->time_emb_proj.w, &r->time_emb_proj.b, I2V_ACT_NONE, FALSE);
}

void i2v_resnet_forward_projected(I2vStream *st, const I2vResnet *r, const I2vTensor *x,
                                  gboolean x_scratch, const I2vTensor *temb_proj, int groups,
                                  float eps, I2vTensor *out) {
  int64_t n = x->shape[0], h = x->shape[1], w = x->shape[2];
  size_t mark = i2v_scratch_mark(st);
  /* the residual first, so that x may then be normalised in place */
  if (r->shortcut.w.data != NULL) {
    const I2vConvParams p1 = {.stride = 1};
    i2v_op_conv2d(st, out, x, &r->shortcut.w, i2v_linear_bias(&r->shortcut), &p1, FALSE);
  } else {
    i2v_op_copy(st, out, x);
  }
  I2vTensor t = x_scratch ? *x : i2v_scratch_tensor(st, 4, x->shape);
  i2v_op_group_norm(st, &t, x, &r->norm1.gamma, &r->norm1.beta, n, groups, eps, I2V_ACT_SILU);
  int64_t hs[4] = {n, h, w, r->cout};
  I2vTensor h1 = i2v_scratch_tensor(st, 4, hs);
  conv3x3(st, &h1, &t, &r->conv1, FALSE);
  if (temb_proj != NULL) {
    /* one row per video, broadcast over its frames × pixels */
    int64_t b = temb_proj->shape[0], vs[3] = {b, n / b * h * w, r->cout};
    I2vTensor h1v = i2v_tensor_view(&h1, 3, vs);
    i2v_op_add_rows(st, &h1v, temb_proj);
  }
  i2v_op_group_norm(st, &h1, &h1, &r->norm2.gamma, &r->norm2.beta, n, groups, eps, I2V_ACT_SILU);
  conv3x3(st, out, &h1, &r->conv2, TRUE);
  i2v_scratch_release(st, mark);
}

void i2v_resnet_forward(I2vStream *st, const I2vResnet *r, const I2vTensor *x, gboolean x_scratch,
                        const I2vTensor *temb_act, int groups, float eps, I2vTensor *out) {
  size_t mark = i2v_scratch_mark(st);
  I2vTensor proj;
  if (temb_act != NULL) {
    int64_t ts[2] = {temb_act->shape[0], r->cout};
    proj = i2v_scratch_tensor(st, 2, ts);
    i2v_resnet_time_proj(st, r, temb_act, &proj);
  }
  i2v_resnet_forward_projected(st, r, x, x_scratch, temb_act != NULL ? &proj : NULL, groups, eps,
                               out);
  i2v_scratch_release(st, mark);
}
