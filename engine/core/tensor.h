/* Tensors: a dtype, up to five dimensions (row-major, last one fastest) and a pointer into the
 * memory of the backend that owns them (host memory for the CPU backend, device memory for CUDA).
 * A tensor is a plain value: copying the struct copies the view, not the data. */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

#define I2V_MAX_DIMS 5

typedef enum {
  I2V_DTYPE_F32,
  I2V_DTYPE_F16,
  I2V_DTYPE_BF16,
  I2V_DTYPE_I64,
  I2V_DTYPE_U8,
} I2vDType;

typedef struct I2vBackend I2vBackend; /* a device and its memory (backend.h) */
typedef struct I2vStream I2vStream;   /* one run's work on a backend (stream.h) */

typedef struct {
  I2vDType dtype;
  int ndim;
  int64_t shape[I2V_MAX_DIMS];
  void *data;          /* backend memory; NULL for an unallocated tensor */
  I2vBackend *backend; /* who owns data (NULL for plain host tensors made by i2v_host_tensor) */
} I2vTensor;

/* Size in bytes of one element of dtype. */
size_t i2v_dtype_size(I2vDType dtype);

/* The safetensors name of dtype ("F32", "F16", "BF16", "I64", "U8"); static string. */
const char *i2v_dtype_name(I2vDType dtype);

/* Parses a safetensors dtype name; returns FALSE for a name this engine does not know. */
gboolean i2v_dtype_from_name(const char *name, I2vDType *dtype);

/* Number of elements (product of the shape; 1 for ndim 0). */
int64_t i2v_tensor_numel(const I2vTensor *t);

/* Number of bytes of the data. */
size_t i2v_tensor_nbytes(const I2vTensor *t);

/* Fills shape/ndim/dtype of t (data and backend untouched). */
void i2v_tensor_set_shape(I2vTensor *t, I2vDType dtype, int ndim, const int64_t *shape);

/* Writes "[2, 4, 32, 32]" into buf (at most size bytes); returns buf. */
char *i2v_shape_format(int ndim, const int64_t *shape, char *buf, size_t size);

/* TRUE when both shapes have the same rank and sizes. */
gboolean i2v_shape_equal(int ndim_a, const int64_t *a, int ndim_b, const int64_t *b);

/* A host tensor with g_malloc0'd data (backend NULL); free with i2v_host_tensor_free. */
I2vTensor i2v_host_tensor(I2vDType dtype, int ndim, const int64_t *shape);

/* Frees the data of a host tensor made by i2v_host_tensor and clears it. */
void i2v_host_tensor_free(I2vTensor *t);

/* Element conversions (round to nearest even for the narrowing ones). */
float i2v_f16_to_f32(uint16_t h);
uint16_t i2v_f32_to_f16(float f);
float i2v_bf16_to_f32(uint16_t h);
uint16_t i2v_f32_to_bf16(float f);

/* A view of t with another shape of the same numel (no copy). */
I2vTensor i2v_tensor_view(const I2vTensor *t, int ndim, const int64_t *shape);

/* A view of rows [first, first+count) of dim 0 of t (no copy). */
I2vTensor i2v_tensor_rows(const I2vTensor *t, int64_t first, int64_t count);

/* Converts n elements of src (dtype src_dtype: F32, F16 or BF16) to float32 into dst. */
void i2v_convert_to_f32(float *dst, const void *src, I2vDType src_dtype, int64_t n);

G_END_DECLS
