/* The CPU op table, assembled from the per-family files (linear.c, conv.c, norm.c, attention.c,
 * elementwise.c), and the workspace helper they share. */
#include "cpu_ops.h"

const I2vOps i2v_cpu_ops = {
    .linear = cpu_linear,
    .conv2d = cpu_conv2d,
    .conv_frames = cpu_conv_frames,
    .group_norm = cpu_group_norm,
    .layer_norm = cpu_layer_norm,
    .attention = cpu_attention,
    .unary = cpu_unary,
    .geglu = cpu_geglu,
    .add = cpu_add,
    .add_rows = cpu_add_rows,
    .axpby = cpu_axpby,
    .concat_last = cpu_concat_last,
    .upsample_nearest = cpu_upsample_nearest,
    .adaptive_avg_pool = cpu_adaptive_avg_pool,
    .permute = cpu_permute,
    .gather_rows = cpu_gather_rows,
    .fill = cpu_fill,
    .copy = cpu_copy,
};

void *cpu_scratch(I2vBackend *be, size_t bytes) {
  GError *err = NULL;
  void *ptr = be->mem->scratch_alloc(be, bytes, &err);
  if (ptr == NULL) i2v_backend_fail(be, err);
  return ptr;
}
