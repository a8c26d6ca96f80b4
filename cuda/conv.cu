// im2col for conv2d as GEMM: one thread per element of the column block. Row m of the column
// matrix is output pixel (n, oh, ow) and holds the [kh, kw, Ci] input patch under it, i.e. the
// layout of the [Co, kh, kw, Ci] weight, so the conv is col · wᵀ.
#include "device.cuh"

__global__ void im2col_kernel(CuBuf col, CuBuf x, CuConvShape s, int64_t m0, int64_t rows) {
  int64_t K = s.kh * s.kw * s.Ci;
  CU_GRID_LOOP(i, rows * K) {
    int64_t r = i / K, k = i % K, m = m0 + r;
    int64_t ow = m % s.Wo, oh = (m / s.Wo) % s.Ho, n = m / (s.Wo * s.Ho);
    int64_t c = k % s.Ci, j = (k / s.Ci) % s.kw, kr = k / (s.Ci * s.kw);
    int64_t ih = oh * s.stride - s.pad_top + kr, iw = ow * s.stride - s.pad_left + j;
    float v = 0;
    if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
      v = ld(x, ((n * s.H + ih) * s.W + iw) * s.Ci + c);
    st(col, i, v);
  }
}

extern "C" cudaError_t i2v_cu_im2col(cudaStream_t st, CuBuf col, CuBuf x, const CuConvShape *s,
                                     int64_t m0, int64_t rows) {
  CU_LAUNCH(im2col_kernel, cu_blocks(rows * s->kh * s->kw * s->Ci), CU_THREADS, 0, st)
  (col, x, *s, m0, rows);
  return cudaGetLastError();
}
