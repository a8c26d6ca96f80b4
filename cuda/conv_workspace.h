/* The cuDNN workspace model shared by the planning device (plan_runtime.c) and the simulator's
 * cuDNN stand-in (tests/cudasim/cudnn_sim.cpp), so that a plan and a simulated run take the same
 * scratch for a convolution. */
#pragma once

#include <stddef.h>

/* Bytes of workspace cuDNN's implicit-precomputed GEMM takes for a kh×kw filter over c input
 * channels: its table of precomputed input offsets, one int per filter tap. Real cuDNN may rank
 * another algorithm first; the backend takes any up to CONV_WORKSPACE_BYTES (cuda_conv.c), the
 * bound a plan reports beside its numbers. */
static inline size_t i2v_conv_precomp_workspace(int kh, int kw, int c) {
  return sizeof(int) * (size_t)kh * (size_t)kw * (size_t)c;
}
