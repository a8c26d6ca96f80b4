/* The planning device (plan:cuda): the CUDA backend's own host code compiled a second time with
 * this header force-included (cuda/meson.build), so that its allocations, arena chunking,
 * workspaces and library queries run unchanged against the counting runtime of plan_runtime.c
 * instead of a GPU. Every CUDA runtime call, dlopen/dlsym of the NVIDIA libraries and kernel
 * launch goes there; the backend's own symbols get an i2v_plan_ prefix so that both copies link
 * into libi2v. */
#pragma once

#define I2V_CUDA_PLAN 1

/* the CUDA runtime: counted memory, no device */
#define cudaMalloc i2v_plan_cudaMalloc
#define cudaFree i2v_plan_cudaFree
#define cudaMemGetInfo i2v_plan_cudaMemGetInfo
#define cudaMemset i2v_plan_cudaMemset
#define cudaMemcpy i2v_plan_cudaMemcpy
#define cudaMemcpyAsync i2v_plan_cudaMemcpyAsync
#define cudaMemset2DAsync i2v_plan_cudaMemset2DAsync
#define cudaSetDevice i2v_plan_cudaSetDevice
#define cudaGetDeviceCount i2v_plan_cudaGetDeviceCount
#define cudaGetLastError i2v_plan_cudaGetLastError
#define cudaGetErrorString i2v_plan_cudaGetErrorString
#define cudaGetErrorName i2v_plan_cudaGetErrorName
#define cudaStreamCreateWithFlags i2v_plan_cudaStreamCreateWithFlags
#define cudaStreamSynchronize i2v_plan_cudaStreamSynchronize
#define cudaStreamDestroy i2v_plan_cudaStreamDestroy

/* cuBLAS, cuBLASLt and cuDNN: plan_runtime.c's stand-ins answer the queries, skip the work */
#define dlopen i2v_plan_dlopen
#define dlsym i2v_plan_dlsym

/* kernels (kernels.h): launches skipped */
#define i2v_cu_act i2v_plan_cu_act
#define i2v_cu_bias_act i2v_plan_cu_bias_act
#define i2v_cu_geglu i2v_plan_cu_geglu
#define i2v_cu_axpby i2v_plan_cu_axpby
#define i2v_cu_add_rows i2v_plan_cu_add_rows
#define i2v_cu_concat_last i2v_plan_cu_concat_last
#define i2v_cu_upsample_nearest i2v_plan_cu_upsample_nearest
#define i2v_cu_adaptive_avg_pool i2v_plan_cu_adaptive_avg_pool
#define i2v_cu_permute i2v_plan_cu_permute
#define i2v_cu_gather_rows i2v_plan_cu_gather_rows
#define i2v_cu_fill i2v_plan_cu_fill
#define i2v_cu_convert i2v_plan_cu_convert
#define i2v_cu_im2col i2v_plan_cu_im2col
#define i2v_cu_group_norm i2v_plan_cu_group_norm
#define i2v_cu_layer_norm i2v_plan_cu_layer_norm
#define i2v_cu_attention i2v_plan_cu_attention
#define i2v_cu_softmax_rows i2v_plan_cu_softmax_rows

/* the backend's own symbols */
#define i2v_cuda_backend_new i2v_plan_cuda_backend_new
#define i2v_cuda_device_count i2v_plan_cuda_device_count
#define i2v_cuda_check i2v_plan_cuda_check
#define i2v_cublas_check i2v_plan_cublas_check
#define i2v_cuda_enter i2v_plan_cuda_enter
#define i2v_cuda_cudnn_api i2v_plan_cuda_cudnn_api
#define i2v_cuda_plan_cache_new i2v_plan_cuda_plan_cache_new
#define i2v_cuda_plan_lookup i2v_plan_cuda_plan_lookup
#define i2v_cuda_plan_insert i2v_plan_cuda_plan_insert
#define i2v_cuda_operand_as i2v_plan_cuda_operand_as
#define i2v_cuda_gemm_xwt i2v_plan_cuda_gemm_xwt
#define i2v_cuda_gemm_plans_new i2v_plan_cuda_gemm_plans_new
#define i2v_cuda_linear i2v_plan_cuda_linear
#define i2v_cuda_conv_init i2v_plan_cuda_conv_init
#define i2v_cuda_conv_fini i2v_plan_cuda_conv_fini
#define i2v_cuda_conv2d i2v_plan_cuda_conv2d
#define i2v_cuda_conv_frames i2v_plan_cuda_conv_frames
#define i2v_cuda_attention i2v_plan_cuda_attention
#define i2v_cuda_ops i2v_plan_cuda_ops
