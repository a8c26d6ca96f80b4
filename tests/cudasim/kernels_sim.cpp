// The CUDA kernels of cuda/*.cu compiled as C++ for the CPU simulator (cudasim.h is included
// first by the build).
#include "attention.cu"
#include "attention_mma.cu"
#include "conv.cu"
#include "elementwise.cu"
#include "norm.cu"
#include "softmax.cu"
