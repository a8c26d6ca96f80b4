/* Tensor bookkeeping and dtype conversions. */
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

size_t i2v_dtype_size(I2vDType dtype) {
  switch (dtype) {
  case I2V_DTYPE_F32:
    return 4;
  case I2V_DTYPE_F16:
  case I2V_DTYPE_BF16:
    return 2;
  case I2V_DTYPE_I64:
    return 8;
  case I2V_DTYPE_U8:
    return 1;
  }
  return 0;
}

static const char *const dtype_names[] = {"F32", "F16", "BF16", "I64", "U8"};

const char *i2v_dtype_name(I2vDType dtype) {
  return (unsigned)dtype < G_N_ELEMENTS(dtype_names) ? dtype_names[dtype] : "?";
}

gboolean i2v_dtype_from_name(const char *name, I2vDType *dtype) {
  for (guint i = 0; i < G_N_ELEMENTS(dtype_names); i++) {
    if (strcmp(name, dtype_names[i]) == 0) {
      *dtype = (I2vDType)i;
      return TRUE;
    }
  }
  return FALSE;
}

int64_t i2v_tensor_numel(const I2vTensor *t) {
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
  return n;
}

size_t i2v_tensor_nbytes(const I2vTensor *t) {
  return (size_t)i2v_tensor_numel(t) * i2v_dtype_size(t->dtype);
}

void i2v_tensor_set_shape(I2vTensor *t, I2vDType dtype, int ndim, const int64_t *shape) {
  g_return_if_fail(ndim >= 0 && ndim <= I2V_MAX_DIMS);
  t->dtype = dtype;
  t->ndim = ndim;
  for (int d = 0; d < I2V_MAX_DIMS; d++) t->shape[d] = d < ndim ? shape[d] : 1;
}

char *i2v_shape_format(int ndim, const int64_t *shape, char *buf, size_t size) {
  size_t n = 0;
  buf[0] = '\0';
  n += snprintf(buf + n, size - n, "[");
  for (int d = 0; d < ndim && n < size; d++)
    n += snprintf(buf + n, size - n, d ? ", %" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, shape[d]);
  if (n < size) snprintf(buf + n, size - n, "]");
  return buf;
}

gboolean i2v_shape_equal(int ndim_a, const int64_t *a, int ndim_b, const int64_t *b) {
  if (ndim_a != ndim_b) return FALSE;
  for (int d = 0; d < ndim_a; d++)
    if (a[d] != b[d]) return FALSE;
  return TRUE;
}

I2vTensor i2v_host_tensor(I2vDType dtype, int ndim, const int64_t *shape) {
  I2vTensor t = {0};
  i2v_tensor_set_shape(&t, dtype, ndim, shape);
  t.data = g_malloc0(MAX(i2v_tensor_nbytes(&t), 1));
  return t;
}

void i2v_host_tensor_free(I2vTensor *t) {
  g_free(t->data);
  memset(t, 0, sizeof(*t));
}

/* IEEE half <-> single, round to nearest even; handles subnormals, inf and NaN. */
float i2v_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else { /* subnormal: renormalise */
    int e = -1;
    do {
      e++;
      man <<= 1;
    } while (!(man & 0x400));
    bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t i2v_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffff;
  if (absx >= 0x7f800000u) /* inf or nan */
    return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 | ((absx >> 13) & 0x3ff) : 0));
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
  if (absx < 0x38800000u) {                                  /* result is subnormal or zero */
    if (absx < 0x33000000u) return (uint16_t)sign;           /* < 2^-25: rounds to 0 */
    uint32_t man = (absx & 0x7fffff) | 0x800000;
    int shift = 126 - (int)(absx >> 23); /* 14..24 */
    uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t r = absx + 0xfff + ((absx >> 13) & 1); /* round to nearest even on bit 13 */
  return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

float i2v_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t i2v_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
  return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

void i2v_convert_to_f32(float *dst, const void *src, I2vDType src_dtype, int64_t n) {
  switch (src_dtype) {
  case I2V_DTYPE_F32:
    memcpy(dst, src, (size_t)n * 4);
    break;
  case I2V_DTYPE_F16:
    for (int64_t i = 0; i < n; i++) dst[i] = i2v_f16_to_f32(((const uint16_t *)src)[i]);
    break;
  case I2V_DTYPE_BF16:
    for (int64_t i = 0; i < n; i++) dst[i] = i2v_bf16_to_f32(((const uint16_t *)src)[i]);
    break;
  default:
    g_return_if_reached();
  }
}

I2vTensor i2v_tensor_view(const I2vTensor *t, int ndim, const int64_t *shape) {
  I2vTensor v = *t;
  i2v_tensor_set_shape(&v, t->dtype, ndim, shape);
  g_return_val_if_fail(i2v_tensor_numel(&v) == i2v_tensor_numel(t), *t);
  return v;
}

I2vTensor i2v_tensor_rows(const I2vTensor *t, int64_t first, int64_t count) {
  I2vTensor v = *t;
  g_return_val_if_fail(first >= 0 && count >= 0 && first + count <= t->shape[0], *t);
  int64_t row = i2v_tensor_numel(t) / MAX(t->shape[0], 1);
  v.shape[0] = count;
  if (t->data != NULL) v.data = (char *)t->data + (size_t)(first * row) * i2v_dtype_size(t->dtype);
  return v;
}
