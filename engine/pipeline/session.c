/* Sessions (i2v.h): making one on a model, its memory statistics, and the one-clip convenience. */
#include "session.h"

#include <i2v/error.h>

I2vSession *i2v_session_new(I2vModel *m, GError **error) {
  I2vStream *st = i2v_stream_new(m->be, error);
  if (st == NULL) return NULL;
  I2vSession *s = g_new0(I2vSession, 1);
  s->m = i2v_model_ref(m);
  s->st = st;
  i2v_model_add_session(m, s);
  return s;
}

void i2v_session_free(I2vSession *s) {
  if (s == NULL) return;
  g_return_if_fail(!g_atomic_int_get(&s->running));
  i2v_model_remove_session(s->m, s);
  i2v_stream_free(s->st);
  i2v_model_unref(s->m);
  g_free(s);
}

I2vModel *i2v_session_model(const I2vSession *s) {
  return s->m;
}

size_t i2v_session_scratch(const I2vSession *s) {
  return i2v_stream_scratch_capacity(s->st);
}

void i2v_session_sample_device_memory(I2vSession *s) {
  size_t used = i2v_model_sample_device_memory(s->m);
  size_t peak = __atomic_load_n(&s->device_peak, __ATOMIC_RELAXED);
  while (peak < used && !__atomic_compare_exchange_n(&s->device_peak, &peak, used, TRUE,
                                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

void i2v_session_memory(I2vSession *s, I2vMemoryStats *out) {
  out->persistent = i2v_backend_persistent(s->m->be);
  out->persistent_peak = i2v_backend_persistent_peak(s->m->be);
  out->scratch = i2v_session_scratch(s);
  i2v_backend_device_memory(s->m->be, &out->device_used, &out->device_total);
  out->device_peak = MAX(__atomic_load_n(&s->device_peak, __ATOMIC_RELAXED), out->device_used);
}

gboolean i2v_model_generate(I2vModel *m, const I2vImage *image, const I2vParams *p,
                            const I2vCallbacks *cb, GCancellable *cancellable, GError **error) {
  g_return_val_if_fail(m != NULL, FALSE);
  I2vSession *s = i2v_session_new(m, error);
  if (s == NULL) return FALSE;
  gboolean ok = i2v_generate(s, image, p, cb, cancellable, error);
  i2v_session_free(s);
  return ok;
}

void i2v_session_reserve(I2vSession *s, size_t bytes) {
  s->reserve = bytes;
}
