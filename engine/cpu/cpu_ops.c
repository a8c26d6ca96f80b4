/* The CPU op table, assembled from the per-family files (linear.c, conv.c, norm.c, attention.c,
 * elementwise.c), and the threading rule they share. */
#include <cblas.h>
#include <omp.h>

#include "cpu_ops.h"

const I2vOps i2v_cpu_ops = {
    .linear = i2v_cpu_linear,
    .conv2d = i2v_cpu_conv2d,
    .conv_frames = i2v_cpu_conv_frames,
    .group_norm = i2v_cpu_group_norm,
    .layer_norm = i2v_cpu_layer_norm,
    .attention = i2v_cpu_attention,
    .unary = i2v_cpu_unary,
    .geglu = i2v_cpu_geglu,
    .add = i2v_cpu_add,
    .add_rows = i2v_cpu_add_rows,
    .axpby = i2v_cpu_axpby,
    .concat_last = i2v_cpu_concat_last,
    .upsample_nearest = i2v_cpu_upsample_nearest,
    .adaptive_avg_pool = i2v_cpu_adaptive_avg_pool,
    .permute = i2v_cpu_permute,
    .gather_rows = i2v_cpu_gather_rows,
    .fill = i2v_cpu_fill,
    .copy = i2v_cpu_copy,
};

int i2v_cpu_threads(const I2vStream *st) {
  const int *threads = st->be->priv;
  return *threads > 0 ? *threads : omp_get_max_threads();
}

gboolean i2v_cpu_blas_in_threads(void) {
  /* OpenBLAS's OpenMP build runs a call from inside a parallel region on one thread by itself */
  return openblas_get_parallel() != 1 || openblas_get_num_threads() == 1;
}
