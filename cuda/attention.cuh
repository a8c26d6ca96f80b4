// What the two attention kernels share: their argument block, the view arithmetic, and the
// entry point of the tensor-core kernel (attention_mma.cu) that i2v_cu_attention tries first.
#pragma once

#include "device.cuh"

struct AttnArgs {
  CuSeqView out, q, k, v;
  CuAttnShape s;
  float scale_log2;   // scale · log2(e): softmax in base 2 (exp2f is one MUFU instruction)
  int64_t q_tiles;    // query tiles per (sequence, head)
  int rows_per_block; // queries per block
};

// Element offset of token 0, dim 0 of head h in sequence (outer, inner) of view v.
__device__ __forceinline__ int64_t head_base(const CuSeqView &v, int64_t outer, int64_t inner,
                                             int h, int head_dim) {
  return v.offset + outer * v.outer + inner * v.inner + (int64_t)h * head_dim;
}

// Whether the tensor-core kernel takes these arguments (F16 or BF16 operands of one dtype,
// 16 ≤ head_dim ≤ 128, at least 32 queries per sequence).
bool i2v_cu_attention_mma_fits(const AttnArgs *a);

// Runs the tensor-core kernel; cudaErrorNotSupported (nothing launched, no error left pending)
// when the device cannot give it the shared memory it needs.
cudaError_t i2v_cu_attention_mma(cudaStream_t st, AttnArgs a);
