/* diffusers ResnetBlock2D, written once for the UNet (with a time embedding) and the VAE (without):
 *   h = conv1(SiLU(GroupNorm1(x))) [+ time_emb_proj(temb) per sample]
 *   out = shortcut(x) + conv2(SiLU(GroupNorm2(h)))
 * on channels-last feature maps [N, h, w, C]; GroupNorm statistics per feature map (row of N). */
#pragma once

#include "loader.h"
#include "ops.h"

G_BEGIN_DECLS

typedef struct {
  int64_t cin, cout;
  I2vNorm norm1, norm2;
  I2vLinear conv1, conv2;
  I2vLinear time_emb_proj; /* w.data NULL without a time embedding */
  I2vLinear shortcut;      /* a 1×1 conv iff cin != cout (w.data NULL otherwise) */
} I2vResnet;

/* Loads "<prefix>.norm1", ".conv1", ".norm2", ".conv2", ".conv_shortcut" (when cin != cout) and,
 * with temb_dim > 0, ".time_emb_proj". */
void i2v_load_resnet(I2vLoader *ld, I2vResnet *r, const char *prefix, int64_t cin, int64_t cout,
                     int64_t temb_dim);

/* out [N, h, w, cout] = resnet(x [N, h, w, cin]), out allocated by the caller. temb_act [B,
 * temb_dim] (NULL without a time embedding) is projected and added to the N/B consecutive feature
 * maps of each of its rows. With x_scratch the caller lets the block overwrite x (one temporary
 * less: the VAE's flow buffers); else x is left as it was. */
void i2v_resnet_forward(I2vStream *st, const I2vResnet *r, const I2vTensor *x, gboolean x_scratch,
                        const I2vTensor *temb_act, int groups, float eps, I2vTensor *out);

/* proj [B, cout] = time_emb_proj(temb_act [B, temb_dim]), allocated by the caller: what
 * i2v_resnet_forward_projected adds, computed once for many calls on parts of one batch. */
void i2v_resnet_time_proj(I2vStream *st, const I2vResnet *r, const I2vTensor *temb_act,
                          I2vTensor *proj);

/* i2v_resnet_forward with the time embedding already projected (temb_proj [B, cout], NULL
 * without one), added to the N/B consecutive feature maps of each of its rows. */
void i2v_resnet_forward_projected(I2vStream *st, const I2vResnet *r, const I2vTensor *x,
                                  gboolean x_scratch, const I2vTensor *temb_proj, int groups,
                                  float eps, I2vTensor *out);

G_END_DECLS
