/* The I2VGen-XL UNet's TemporalConvLayer on video feature maps [B·F, h, w, C]: four
 * GroupNorm → SiLU → temporal Conv3d (kernel 3 over frames) sub-blocks, added to the input. */
#pragma once

#include "loader.h"
#include "ops.h"

G_BEGIN_DECLS

typedef struct {
  I2vNorm norm[4];
  I2vLinear conv[4]; /* temporal convs [C, 3, C] */
} I2vTemporalConv;

/* Loads "<prefix>.conv1" … "<prefix>.conv4" on c channels. */
void i2v_load_temporal_conv(I2vLoader *ld, I2vTemporalConv *t, const char *prefix, int64_t c);

/* x [B·F, h, w, C] += the four sub-blocks of x (in place); the GroupNorms take statistics per
 * video over all its frames. */
void i2v_temporal_conv_forward(I2vStream *st, const I2vTemporalConv *t, int64_t batch,
                               int64_t frames, int groups, I2vTensor *x);

G_END_DECLS
