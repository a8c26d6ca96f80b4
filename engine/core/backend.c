/* The device side of every backend: names, persistent tensors and their byte counts. */
#include <string.h>

#include "backend_impl.h"

#include <i2v/error.h>

void i2v_backend_free(I2vBackend *be) {
  if (be != NULL) be->iface->destroy(be);
}

const char *i2v_backend_name(const I2vBackend *be) {
  return be->name;
}

I2vDType i2v_backend_act_dtype(const I2vBackend *be) {
  return be->act_dtype;
}

I2vDType i2v_backend_weight_dtype(const I2vBackend *be) {
  return be->weight_dtype;
}

gboolean i2v_backend_counts_only(const I2vBackend *be) {
  return be->iface->counts_only;
}

size_t i2v_backend_persistent(const I2vBackend *be) {
  return __atomic_load_n(&be->persistent_bytes, __ATOMIC_RELAXED);
}

size_t i2v_backend_persistent_peak(const I2vBackend *be) {
  return __atomic_load_n(&be->persistent_peak, __ATOMIC_RELAXED);
}

void i2v_backend_persistent_peak_reset(I2vBackend *be) {
  __atomic_store_n(&be->persistent_peak, i2v_backend_persistent(be), __ATOMIC_RELAXED);
}

void i2v_backend_device_memory(I2vBackend *be, size_t *used, size_t *total) {
  be->iface->device_memory(be, used, total);
}

gboolean i2v_tensor_alloc(I2vBackend *be, I2vTensor *t, I2vDType dtype, int ndim,
                          const int64_t *shape, GError **error) {
  memset(t, 0, sizeof(*t));
  i2v_tensor_set_shape(t, dtype, ndim, shape);
  t->backend = be;
  if (!be->iface->alloc(be, t, error)) {
    t->backend = NULL;
    return FALSE;
  }
  /* the peak: raise it to the new total unless another thread raised it further */
  size_t now = __atomic_add_fetch(&be->persistent_bytes, i2v_tensor_nbytes(t), __ATOMIC_RELAXED);
  size_t peak = __atomic_load_n(&be->persistent_peak, __ATOMIC_RELAXED);
  while (peak < now && !__atomic_compare_exchange_n(&be->persistent_peak, &peak, now, TRUE,
                                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return TRUE;
}

void i2v_tensor_free(I2vTensor *t) {
  if (t->data != NULL && t->backend != NULL) {
    __atomic_sub_fetch(&t->backend->persistent_bytes, i2v_tensor_nbytes(t), __ATOMIC_RELAXED);
    t->backend->iface->free(t->backend, t);
  }
  memset(t, 0, sizeof(*t));
}

gboolean i2v_tensor_write(I2vTensor *t, const void *host, GError **error) {
  return t->backend->iface->write(t->backend, t, host, error);
}

/* host float32 values as t's dtype: host itself for F32, else a new buffer (*tmp, g_free). */
const void *i2v_f32_as_dtype(const I2vTensor *t, const float *host, uint16_t **tmp) {
  *tmp = NULL;
  if (t->dtype == I2V_DTYPE_F32) return host;
  int64_t n = i2v_tensor_numel(t);
  *tmp = g_new(uint16_t, MAX(n, 1));
  for (int64_t i = 0; i < n; i++)
    (*tmp)[i] = t->dtype == I2V_DTYPE_F16 ? i2v_f32_to_f16(host[i]) : i2v_f32_to_bf16(host[i]);
  return *tmp;
}

gboolean i2v_tensor_write_f32(I2vTensor *t, const float *host, GError **error) {
  uint16_t *tmp;
  const void *data = i2v_f32_as_dtype(t, host, &tmp);
  gboolean ok = i2v_tensor_write(t, data, error);
  g_free(tmp);
  return ok;
}
