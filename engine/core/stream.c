/* Streams (stream.h): the per-run state every op writes, and the functions models use on it. */
#include <stdarg.h>

#include "backend_impl.h"

#include <i2v/error.h>

I2vStream *i2v_stream_new(I2vBackend *be, GError **error) {
  I2vStream *st = g_new0(I2vStream, 1);
  st->be = be;
  const I2vBackendIface *f = be->iface;
  i2v_arena_init(&st->arena, f->chunk_align, f->min_chunk, f->chunk_alloc, f->chunk_free, be);
  if (!f->stream_init(st, error)) {
    i2v_arena_destroy(&st->arena);
    g_free(st);
    return NULL;
  }
  return st;
}

void i2v_stream_free(I2vStream *st) {
  if (st == NULL) return;
  st->be->iface->stream_fini(st); /* waits for queued work before the arena goes */
  i2v_arena_destroy(&st->arena);
  g_clear_error(&st->error);
  g_free(st);
}

I2vBackend *i2v_stream_backend(const I2vStream *st) {
  return st->be;
}

void i2v_stream_fail(I2vStream *st, GError *err) {
  if (st->error == NULL)
    st->error = err; /* reported by i2v_stream_check to whoever runs the stream */
  else
    g_error_free(err);
}

void i2v_stream_failf(I2vStream *st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  i2v_stream_fail(st, g_error_new_literal(I2V_ERROR, I2V_ERROR_BACKEND, msg));
  g_free(msg);
}

gboolean i2v_stream_check(I2vStream *st, GError **error) {
  GError *sync_error = NULL;
  if (st->error == NULL && !st->be->iface->sync(st, &sync_error)) st->error = sync_error;
  if (st->error == NULL) return TRUE;
  g_propagate_error(error, st->error);
  st->error = NULL;
  return FALSE;
}

double i2v_stream_flops(const I2vStream *st) {
  return st->flops;
}

size_t i2v_stream_scratch_capacity(const I2vStream *st) {
  return i2v_arena_capacity(&st->arena) + st->reserved;
}

gboolean i2v_stream_reserve(I2vStream *st, size_t bytes, GError **error) {
  return i2v_arena_reserve(&st->arena, bytes, error);
}

void i2v_stream_memory(I2vStream *st, gboolean reset, size_t *arena_high, size_t *arena_capacity,
                       size_t *reserved) {
  i2v_arena_highs(&st->arena, reset, arena_high, arena_capacity);
  *reserved = st->reserved;
}

void *i2v_scratch_bytes(I2vStream *st, size_t bytes) {
  if (st->error != NULL) return NULL;
  GError *err = NULL;
  void *ptr = i2v_arena_alloc(&st->arena, bytes, &err);
  if (ptr == NULL) i2v_stream_fail(st, err);
  return ptr;
}

I2vTensor i2v_scratch_tensor(I2vStream *st, int ndim, const int64_t *shape) {
  I2vTensor t = {0};
  i2v_tensor_set_shape(&t, st->be->act_dtype, ndim, shape);
  t.backend = st->be;
  t.data = i2v_scratch_bytes(st, i2v_tensor_nbytes(&t));
  return t;
}

size_t i2v_scratch_mark(I2vStream *st) {
  return i2v_arena_mark(&st->arena);
}

void i2v_scratch_release(I2vStream *st, size_t mark) {
  /* no sync needed: the stream orders every later use of the memory after earlier ones */
  i2v_arena_release(&st->arena, mark);
}

gboolean i2v_tensor_upload_f32(I2vStream *st, I2vTensor *t, const float *host, GError **error) {
  if (!i2v_stream_check(st, error)) return FALSE;
  uint16_t *tmp;
  const void *data = i2v_f32_as_dtype(t, host, &tmp);
  gboolean ok = st->be->iface->copy_in(st, t, data, error);
  g_free(tmp);
  return ok;
}

gboolean i2v_tensor_download_f32(I2vStream *st, const I2vTensor *t, float *host, GError **error) {
  if (!i2v_stream_check(st, error)) return FALSE;
  if (t->dtype == I2V_DTYPE_F32) return st->be->iface->copy_out(st, t, host, error);
  int64_t n = i2v_tensor_numel(t);
  uint16_t *tmp = g_new(uint16_t, MAX(n, 1));
  gboolean ok = st->be->iface->copy_out(st, t, tmp, error);
  if (ok) i2v_convert_to_f32(host, tmp, t->dtype, n);
  g_free(tmp);
  return ok;
}

void i2v_stream_set_tap(I2vStream *st, I2vTapFn fn, void *user) {
  st->tap = fn;
  st->tap_user = user;
}

gboolean i2v_stream_tapping(const I2vStream *st) {
  return st->tap != NULL;
}

void i2v_tap(I2vStream *st, const char *name, const I2vTensor *t) {
  if (st->tap != NULL && st->error == NULL) st->tap(st, name, t, st->tap_user);
}

I2vDType i2v_stream_act_dtype(const I2vStream *st) {
  return st->be->act_dtype;
}
