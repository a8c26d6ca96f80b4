/* Convolutions on the CPU as GEMMs: conv2d through im2col in bounded row blocks (a 1×1 stride-1
 * unpadded conv is a plain GEMM), the temporal conv as three GEMMs over frame-shifted rows. */
#include <omp.h>
#include <string.h>

#include "cpu_ops.h"

/* Upper bound of the im2col workspace (all threads' blocks): blocks stay big enough for
 * efficient GEMMs, while a 3×3 conv over 16 frames of 64×64×320 does not need the whole 750 MB
 * column matrix at once. */
#define CONV_COL_BYTES ((size_t)32 << 20)

/* Writes rows [m0, m0 + rows) of the column matrix of x: row m = output pixel (n, oh, ow), holding
 * the [kh, kw, Ci] input patch under it (zeros outside x), i.e. the weight's own layout. */
static void im2col_rows(float *col, const I2vTensor *xt, int64_t kh, int64_t kw,
                        const I2vConvParams *p, int64_t Ho, int64_t Wo, int64_t m0, int64_t rows) {
  const float *x = xt->data;
  int64_t H = xt->shape[1], W = xt->shape[2], Ci = xt->shape[3], K = kh * kw * Ci;
  for (int64_t r = 0; r < rows; r++) {
    int64_t m = m0 + r, ow = m % Wo, oh = (m / Wo) % Ho, n = m / (Wo * Ho);
    int64_t ih0 = oh * p->stride - p->pad_top, iw0 = ow * p->stride - p->pad_left;
    /* the kernel columns that land inside x form one contiguous run of the input row */
    int64_t j0 = MAX(0, -iw0), j1 = MIN(kw, W - iw0);
    float *dst = col + r * K;
    for (int64_t i = 0; i < kh; i++) {
      float *d = dst + i * kw * Ci;
      int64_t ih = ih0 + i;
      if (ih < 0 || ih >= H || j1 <= j0) {
        memset(d, 0, (size_t)(kw * Ci) * sizeof(float));
        continue;
      }
      memset(d, 0, (size_t)(j0 * Ci) * sizeof(float));
      memcpy(d + j0 * Ci, x + ((n * H + ih) * W + iw0 + j0) * Ci,
             (size_t)((j1 - j0) * Ci) * sizeof(float));
      memset(d + j1 * Ci, 0, (size_t)((kw - j1) * Ci) * sizeof(float));
    }
  }
}

void i2v_cpu_conv2d(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                    const I2vTensor *b, const I2vConvParams *p, gboolean accumulate) {
  int64_t Co = w->shape[0], kh = w->shape[1], kw = w->shape[2], Ci = w->shape[3];
  int64_t Ho = y->shape[1], Wo = y->shape[2], M = y->shape[0] * Ho * Wo, K = kh * kw * Ci;
  const float *bias = b ? b->data : NULL;
  float *yd = y->data;
  if (kh == 1 && kw == 1 && p->stride == 1 && !p->pad_top && !p->pad_left && !p->pad_bottom &&
      !p->pad_right) { /* x already is the column matrix */
    i2v_cpu_gemm_xwt(i2v_cpu_threads(st), yd, Co, x->data, Ci, w->data, Ci, M, Co, Ci, bias,
                     accumulate);
    return;
  }
  /* each thread fills its own block of the column matrix and multiplies it (one sgemm); the
   * number of blocks is a multiple of the thread count so the threads finish together */
  gboolean in_threads = i2v_cpu_blas_in_threads(); /* else each block's GEMM is the BLAS's */
  int threads = in_threads ? i2v_cpu_threads(st) : 1;
  int64_t max_block = MAX((int64_t)(CONV_COL_BYTES / sizeof(float)) / threads / MAX(K, 1), 1);
  int64_t n_blocks = (M + max_block - 1) / max_block;
  n_blocks = (n_blocks + threads - 1) / threads * threads;
  int64_t block = MAX((M + n_blocks - 1) / n_blocks, 1);
  size_t mark = i2v_scratch_mark(st);
  float *col = i2v_scratch_bytes(st, (size_t)(threads * block * K) * sizeof(float));
  if (col == NULL) return;
#pragma omp parallel for if (in_threads) schedule(dynamic, 1) num_threads(threads)
  for (int64_t m0 = 0; m0 < M; m0 += block) {
    float *mine = col + omp_get_thread_num() * block * K;
    int64_t rows = MIN(block, M - m0);
    im2col_rows(mine, x, kh, kw, p, Ho, Wo, m0, rows);
    i2v_cpu_gemm_xwt_1(yd + m0 * Co, Co, mine, K, w->data, K, rows, Co, K, bias, accumulate);
  }
  i2v_scratch_release(st, mark);
}

void i2v_cpu_conv_frames(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *w,
                         const I2vTensor *b, gboolean accumulate) {
  int nt = i2v_cpu_threads(st);
  int64_t B = x->shape[0], F = x->shape[1], T = x->shape[2], Ci = x->shape[3], Co = w->shape[0];
  const float *wd = w->data;
  for (int64_t bi = 0; bi < B; bi++) {
    float *yb = (float *)y->data + bi * F * T * Co;
    const float *xb = (const float *)x->data + bi * F * T * Ci;
    /* the centre tap sees every frame and sets up y (bias, accumulate); the two shifted taps add
     * frame f-1 into frames 1.. and frame f+1 into frames ..F-2 (zero padding at the ends) */
    i2v_cpu_gemm_xwt(nt, yb, Co, xb, Ci, wd + Ci, 3 * Ci, F * T, Co, Ci, b ? b->data : NULL,
                     accumulate);
    if (F < 2) continue;
    i2v_cpu_gemm_xwt(nt, yb + T * Co, Co, xb, Ci, wd, 3 * Ci, (F - 1) * T, Co, Ci, NULL, TRUE);
    i2v_cpu_gemm_xwt(nt, yb, Co, xb + T * Ci, Ci, wd + 2 * Ci, 3 * Ci, (F - 1) * T, Co, Ci, NULL,
                     TRUE);
  }
}
