/* i2vgen compare: per-tensor agreement of two safetensors files (e.g. `generate --dump` of the
 * CUDA and the CPU backend, or a dump against a golden pipeline file): relative L2 error
 * ‖other − ref‖ / ‖ref‖ and max |other − ref| of every float tensor both files hold, the worst
 * relative error last, and exit status 1 when it exceeds --max-rel-l2. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include <i2v/error.h>
#include "safetensors.h"

static gboolean is_float(I2vDType t) {
  return t == I2V_DTYPE_F32 || t == I2V_DTYPE_F16 || t == I2V_DTYPE_BF16;
}

/* Compares tensor name of both files; returns its relative L2 error (INFINITY on a shape
 * mismatch or a non-finite value). */
static double compare_tensor(const I2vSafetensors *ref, const I2vSafetensors *other,
                             const char *name, double *max_abs, GError **error) {
  I2vTensor r, o;
  if (!i2v_safetensors_read_f32(ref, name, &r, error)) return NAN;
  if (!i2v_safetensors_read_f32(other, name, &o, error)) {
    i2v_host_tensor_free(&r);
    return NAN;
  }
  double rel = INFINITY, num = 0, den = 0;
  *max_abs = INFINITY;
  if (i2v_shape_equal(r.ndim, r.shape, o.ndim, o.shape)) {
    const float *a = r.data, *b = o.data;
    *max_abs = 0;
    for (int64_t i = 0; i < i2v_tensor_numel(&r); i++) {
      double d = (double)b[i] - (double)a[i];
      num += d * d;
      den += (double)a[i] * a[i];
      if (!(fabs(d) <= *max_abs)) *max_abs = fabs(d); /* NaN counts as worst */
    }
    rel = sqrt(num) / MAX(sqrt(den), 1e-30);
    if (!isfinite(*max_abs)) rel = INFINITY;
  }
  i2v_host_tensor_free(&r);
  i2v_host_tensor_free(&o);
  return rel;
}

static gboolean compare_files(const char *ref_path, const char *other_path, double bound,
                              double *worst, GError **error) {
  I2vSafetensors *ref = i2v_safetensors_open(ref_path, error);
  I2vSafetensors *other = ref ? i2v_safetensors_open(other_path, error) : NULL;
  gboolean ok = other != NULL;
  guint compared = 0;
  *worst = 0;
  for (guint i = 0; ok && i < i2v_safetensors_count(ref); i++) {
    const I2vSafetensorsEntry *e = i2v_safetensors_entry(ref, i);
    const I2vSafetensorsEntry *f = i2v_safetensors_find(other, e->name);
    if (f == NULL || !is_float(e->dtype) || !is_float(f->dtype)) continue;
    double max_abs, rel = compare_tensor(ref, other, e->name, &max_abs, error);
    ok = !isnan(rel);
    if (!ok) break;
    printf("%-48s rel_l2 %10.3e  max_abs %10.3e%s\n", e->name, rel, max_abs,
           rel > bound ? "  OVER" : "");
    *worst = MAX(*worst, rel);
    compared++;
  }
  if (ok && compared == 0) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_MISSING, "%s and %s have no float tensor in common",
                ref_path, other_path);
    ok = FALSE;
  }
  if (ok) printf("WORST rel_l2 %.3e over %u tensors (bound %.3g)\n", *worst, compared, bound);
  i2v_safetensors_close(other);
  i2v_safetensors_close(ref);
  return ok;
}

int cmd_compare(int argc, char **argv) {
  double bound = INFINITY;
  GOptionEntry entries[] = {{"max-rel-l2", 0, 0, G_OPTION_ARG_DOUBLE, &bound,
                             "fail (exit 1) when a tensor's relative L2 error exceeds X", "X"},
                            {NULL}};
  GOptionContext *ctx = g_option_context_new("REF.safetensors OTHER.safetensors - compare tensors");
  g_option_context_add_main_entries(ctx, entries, NULL);
  GError *err = NULL;
  int status = 0;
  double worst = 0;
  if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
    status = 2;
  } else if (argc != 3) {
    err = g_error_new(I2V_ERROR, I2V_ERROR_INVALID, "expected two files: REF and OTHER");
    status = 2;
  } else if (!compare_files(argv[1], argv[2], bound, &worst, &err)) {
    status = 1;
  } else if (worst > bound) {
    err = g_error_new(I2V_ERROR, I2V_ERROR_INVALID,
                      "%s differs from %s: worst relative L2 error %.3e > %.3g", argv[2], argv[1],
                      worst, bound);
    status = 1;
  }
  if (err != NULL) cmd_fail("compare", err);
  g_option_context_free(ctx);
  return status;
}
