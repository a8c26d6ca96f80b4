// Elementwise, broadcast, resize and data-movement kernels: one grid-stride loop each, one
// output element per iteration, float32 arithmetic between typed loads and stores.
#include "device.cuh"

__global__ void act_kernel(CuBuf y, CuBuf x, int64_t n, int act) {
  CU_GRID_LOOP(i, n) st(y, i, act1(ld(x, i), act));
}

__global__ void bias_act_kernel(CuBuf y, int64_t ldy, CuBuf b, int64_t M, int64_t N, int act) {
  CU_GRID_LOOP(i, M * N) {
    int64_t m = i / N, n = i % N, at = m * ldy + n;
    float v = ld(y, at);
    if (b.p != nullptr) v += ld(b, n);
    st(y, at, act1(v, act));
  }
}

__global__ void geglu_kernel(CuBuf y, CuBuf x, int64_t rows, int64_t F) {
  CU_GRID_LOOP(i, rows * F) {
    int64_t m = i / F, f = i % F;
    float value = ld(x, m * 2 * F + f), gate = ld(x, m * 2 * F + F + f);
    st(y, i, value * act1(gate, CU_ACT_GELU));
  }
}

__global__ void axpby_kernel(CuBuf y, float alpha, CuBuf a, float beta, CuBuf b, int64_t n) {
  CU_GRID_LOOP(i, n) st(y, i, alpha * ld(a, i) + beta * ld(b, i));
}

__global__ void add_rows_kernel(CuBuf x, CuBuf v, int64_t rows, int64_t T, int64_t C) {
  CU_GRID_LOOP(i, rows * C) {
    int64_t r = i / C, c = i % C;
    st(x, i, ld(x, i) + ld(v, (r / T) * C + c));
  }
}

__global__ void concat_last_kernel(CuBuf y, CuBuf a, CuBuf b, int64_t rows, int64_t Ca,
                                   int64_t Cb) {
  int64_t C = Ca + Cb;
  CU_GRID_LOOP(i, rows * C) {
    int64_t r = i / C, c = i % C;
    st(y, i, c < Ca ? ld(a, r * Ca + c) : ld(b, r * Cb + (c - Ca)));
  }
}

// PyTorch's "nearest" source index: the ratio in/out and its product with dst in float32.
__device__ __forceinline__ int64_t nearest_src(int64_t dst, int64_t in, int64_t out) {
  float ratio = __fdiv_rn((float)in, (float)out);
  int64_t s = (int64_t)floorf(__fmul_rn((float)dst, ratio));
  return s < in - 1 ? s : in - 1;
}

__global__ void upsample_nearest_kernel(CuBuf y, CuBuf x, int64_t N, int64_t H, int64_t W,
                                        int64_t C, int64_t Ho, int64_t Wo) {
  CU_GRID_LOOP(i, N * Ho * Wo * C) {
    int64_t c = i % C, ow = (i / C) % Wo, oh = (i / (C * Wo)) % Ho, n = i / (C * Wo * Ho);
    int64_t ih = nearest_src(oh, H, Ho), iw = nearest_src(ow, W, Wo);
    st(y, i, ld(x, ((n * H + ih) * W + iw) * C + c));
  }
}

__global__ void adaptive_avg_pool_kernel(CuBuf y, CuBuf x, int64_t N, int64_t H, int64_t W,
                                         int64_t C, int64_t Ho, int64_t Wo) {
  CU_GRID_LOOP(i, N * Ho * Wo * C) {
    int64_t c = i % C, ow = (i / C) % Wo, oh = (i / (C * Wo)) % Ho, n = i / (C * Wo * Ho);
    // window [floor(o·in/out), ceil((o+1)·in/out)) in exact integer arithmetic
    int64_t h0 = oh * H / Ho, h1 = ((oh + 1) * H + Ho - 1) / Ho;
    int64_t w0 = ow * W / Wo, w1 = ((ow + 1) * W + Wo - 1) / Wo;
    float sum = 0;
    for (int64_t ih = h0; ih < h1; ih++)
      for (int64_t iw = w0; iw < w1; iw++) sum += ld(x, ((n * H + ih) * W + iw) * C + c);
    st(y, i, sum / (float)((h1 - h0) * (w1 - w0)));
  }
}

struct Dims5 {
  int64_t v[5];
};

__global__ void permute_kernel(CuBuf y, CuBuf x, Dims5 sh, Dims5 stride, int64_t n) {
  CU_GRID_LOOP(i, n) {
    int64_t rest = i, src = 0;
    for (int d = 4; d >= 0; d--) {
      src += (rest % sh.v[d]) * stride.v[d];
      rest /= sh.v[d];
    }
    st(y, i, ld(x, src));
  }
}

__global__ void gather_rows_kernel(CuBuf y, CuBuf table, const int64_t *ids, int64_t rows,
                                   int64_t D) {
  CU_GRID_LOOP(i, rows * D) st(y, i, ld(table, ids[i / D] * D + i % D));
}

__global__ void fill_kernel(CuBuf y, int64_t n, float value) {
  CU_GRID_LOOP(i, n) st(y, i, value);
}

__global__ void convert_kernel(CuBuf y, CuBuf x, int64_t n) {
  CU_GRID_LOOP(i, n) st(y, i, ld(x, i));
}

extern "C" {

cudaError_t i2v_cu_act(cudaStream_t st, CuBuf y, CuBuf x, int64_t n, int act) {
  CU_LAUNCH(act_kernel, cu_blocks(n), CU_THREADS, 0, st)(y, x, n, act);
  return cudaGetLastError();
}

cudaError_t i2v_cu_bias_act(cudaStream_t st, CuBuf y, int64_t ldy, CuBuf b, int64_t M, int64_t N,
                            int act) {
  CU_LAUNCH(bias_act_kernel, cu_blocks(M * N), CU_THREADS, 0, st)(y, ldy, b, M, N, act);
  return cudaGetLastError();
}

cudaError_t i2v_cu_geglu(cudaStream_t st, CuBuf y, CuBuf x, int64_t rows, int64_t F) {
  CU_LAUNCH(geglu_kernel, cu_blocks(rows * F), CU_THREADS, 0, st)(y, x, rows, F);
  return cudaGetLastError();
}

cudaError_t i2v_cu_axpby(cudaStream_t st, CuBuf y, float alpha, CuBuf a, float beta, CuBuf b,
                         int64_t n) {
  CU_LAUNCH(axpby_kernel, cu_blocks(n), CU_THREADS, 0, st)(y, alpha, a, beta, b, n);
  return cudaGetLastError();
}

cudaError_t i2v_cu_add_rows(cudaStream_t st, CuBuf x, CuBuf v, int64_t rows, int64_t T, int64_t C) {
  CU_LAUNCH(add_rows_kernel, cu_blocks(rows * C), CU_THREADS, 0, st)(x, v, rows, T, C);
  return cudaGetLastError();
}

cudaError_t i2v_cu_concat_last(cudaStream_t st, CuBuf y, CuBuf a, CuBuf b, int64_t rows, int64_t Ca,
                               int64_t Cb) {
  CU_LAUNCH(concat_last_kernel, cu_blocks(rows * (Ca + Cb)), CU_THREADS, 0, st)
  (y, a, b, rows, Ca, Cb);
  return cudaGetLastError();
}

cudaError_t i2v_cu_upsample_nearest(cudaStream_t st, CuBuf y, CuBuf x, int64_t N, int64_t H,
                                    int64_t W, int64_t C, int64_t Ho, int64_t Wo) {
  CU_LAUNCH(upsample_nearest_kernel, cu_blocks(N * Ho * Wo * C), CU_THREADS, 0, st)
  (y, x, N, H, W, C, Ho, Wo);
  return cudaGetLastError();
}

cudaError_t i2v_cu_adaptive_avg_pool(cudaStream_t st, CuBuf y, CuBuf x, int64_t N, int64_t H,
                                     int64_t W, int64_t C, int64_t Ho, int64_t Wo) {
  CU_LAUNCH(adaptive_avg_pool_kernel, cu_blocks(N * Ho * Wo * C), CU_THREADS, 0, st)
  (y, x, N, H, W, C, Ho, Wo);
  return cudaGetLastError();
}

cudaError_t i2v_cu_permute(cudaStream_t st, CuBuf y, CuBuf x, const int64_t sh[5],
                           const int64_t stride[5]) {
  Dims5 s, t;
  int64_t n = 1;
  for (int d = 0; d < 5; d++) {
    s.v[d] = sh[d];
    t.v[d] = stride[d];
    n *= sh[d];
  }
  if (n == 0) return cudaSuccess;
  CU_LAUNCH(permute_kernel, cu_blocks(n), CU_THREADS, 0, st)(y, x, s, t, n);
  return cudaGetLastError();
}

cudaError_t i2v_cu_gather_rows(cudaStream_t st, CuBuf y, CuBuf table, const int64_t *ids,
                               int64_t rows, int64_t D) {
  CU_LAUNCH(gather_rows_kernel, cu_blocks(rows * D), CU_THREADS, 0, st)(y, table, ids, rows, D);
  return cudaGetLastError();
}

cudaError_t i2v_cu_fill(cudaStream_t st, CuBuf y, int64_t n, float value) {
  CU_LAUNCH(fill_kernel, cu_blocks(n), CU_THREADS, 0, st)(y, n, value);
  return cudaGetLastError();
}

cudaError_t i2v_cu_convert(cudaStream_t st, CuBuf y, CuBuf x, int64_t n) {
  CU_LAUNCH(convert_kernel, cu_blocks(n), CU_THREADS, 0, st)(y, x, n);
  return cudaGetLastError();
}

} // extern "C"
