/* Device and precision strings (one parser for the engine, the element and the CLI) and the
 * backend they select. */
#include "device.h"

#include <stdlib.h>
#include <string.h>

#include "cpu_backend.h"
#include "cuda_backend.h"
#include "plan_device.h"
#include <i2v/error.h>

#include "echo.h"

#ifndef I2V_HAVE_CUDA
/* Without CUDA in the build the CUDA entry points exist and say so. */
I2vBackend *i2v_cuda_backend_new(int device, I2vDType act_dtype, GError **error) {
  (void)act_dtype;
  g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND,
              "cuda:%d: this libi2v was built without CUDA (meson option -Dcuda=enabled)", device);
  return NULL;
}

I2vBackend *i2v_plan_cuda_backend_new(int device, I2vDType act_dtype, GError **error) {
  (void)device, (void)act_dtype;
  g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND,
              "plan:cuda: this libi2v was built without CUDA, whose headers the planning device "
              "needs (meson option -Dcuda=enabled)");
  return NULL;
}

int i2v_cuda_device_count(void) {
  return 0;
}

/* no planning device either: nothing is ever counted */
void i2v_plan_device_reset(size_t bytes) {
  (void)bytes;
}

size_t i2v_plan_device_used(void) {
  return 0;
}

size_t i2v_plan_device_peak(gboolean reset) {
  (void)reset;
  return 0;
}
#endif

gboolean i2v_device_parse(const char *device, I2vDeviceKind *kind, int *index, GError **error) {
  *index = 0;
  if (device == NULL || *device == '\0' || g_ascii_strcasecmp(device, "auto") == 0) {
    *kind = I2V_DEVICE_AUTO;
    return TRUE;
  }
  if (g_ascii_strcasecmp(device, "cpu") == 0) {
    *kind = I2V_DEVICE_CPU;
    return TRUE;
  }
  if (g_ascii_strcasecmp(device, "plan:cuda") == 0) {
    *kind = I2V_DEVICE_PLAN_CUDA;
    return TRUE;
  }
  *kind = I2V_DEVICE_CUDA;
  if (g_ascii_strcasecmp(device, "cuda") == 0) return TRUE;
  guint64 n = 0;
  if (g_ascii_strncasecmp(device, "cuda:", 5) == 0 && g_ascii_isdigit(device[5]) &&
      g_ascii_string_to_unsigned(device + 5, 10, 0, I2V_MAX_CUDA_DEVICE, &n, NULL)) {
    *index = (int)n;
    return TRUE;
  }
  char *shown = i2v_quote_value(device);
  g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
              "unknown device %s (expected auto, cpu, cuda, cuda:N with N in 0..%d, or plan:cuda)",
              shown, I2V_MAX_CUDA_DEVICE);
  g_free(shown);
  return FALSE;
}

gboolean i2v_precision_parse(const char *name, I2vPrecision *out, GError **error) {
  for (int p = I2V_PRECISION_DEFAULT; p <= I2V_PRECISION_BF16; p++) {
    if (g_ascii_strcasecmp(name != NULL && *name != '\0' ? name : "default",
                           i2v_precision_name(p)) == 0) {
      *out = p;
      return TRUE;
    }
  }
  char *shown = i2v_quote_value(name);
  g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
              "unknown precision %s (expected default, fp32, fp16 or bf16)", shown);
  g_free(shown);
  return FALSE;
}

const char *i2v_precision_name(I2vPrecision p) {
  static const char *const names[] = {"default", "fp32", "fp16", "bf16"};
  return p >= I2V_PRECISION_DEFAULT && p <= I2V_PRECISION_BF16 ? names[p] : "invalid";
}

/* The dtype of a precision on a device whose default is dflt. */
static I2vDType precision_dtype(I2vPrecision p, I2vDType dflt) {
  return p == I2V_PRECISION_FP32   ? I2V_DTYPE_F32
         : p == I2V_PRECISION_FP16 ? I2V_DTYPE_F16
         : p == I2V_PRECISION_BF16 ? I2V_DTYPE_BF16
                                   : dflt;
}

static I2vBackend *cpu_backend(I2vPrecision precision, int threads, GError **error) {
  if (precision == I2V_PRECISION_FP16 || precision == I2V_PRECISION_BF16) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND,
                "precision %s is not available on device \"cpu\": the CPU backend computes in "
                "fp32 only (use precision fp32, or a CUDA device)",
                i2v_precision_name(precision));
    return NULL;
  }
  return i2v_cpu_backend_new(threads);
}

I2vBackend *i2v_backend_new_for_device(const char *device, const char *precision, int threads,
                                       GError **error) {
  I2vDeviceKind kind;
  int index;
  I2vPrecision prec;
  if (!i2v_precision_parse(precision, &prec, error) ||
      !i2v_device_parse(device, &kind, &index, error))
    return NULL;
  /* fp16 is the CUDA default: what the fp16 reference pipeline runs */
  I2vDType cuda_dtype = precision_dtype(prec, I2V_DTYPE_F16);
  if (kind == I2V_DEVICE_CPU) return cpu_backend(prec, threads, error);
  if (kind == I2V_DEVICE_CUDA) return i2v_cuda_backend_new(index, cuda_dtype, error);
  if (kind == I2V_DEVICE_PLAN_CUDA) return i2v_plan_cuda_backend_new(index, cuda_dtype, error);

  /* auto, resolved here and nowhere else: CUDA device 0 when a backend can be made on it */
  GError *cuda_err = NULL;
  I2vBackend *be = i2v_cuda_backend_new(0, cuda_dtype, &cuda_err);
  if (be != NULL) {
    g_info("device auto: using %s (%s)", i2v_backend_name(be),
           i2v_dtype_name(i2v_backend_act_dtype(be)));
    return be;
  }
  if (prec == I2V_PRECISION_FP16 || prec == I2V_PRECISION_BF16) { /* the CPU cannot honour it */
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND,
                "device auto: precision %s needs a CUDA device, and none is usable: %s",
                i2v_precision_name(prec), cuda_err->message);
    g_error_free(cuda_err);
    return NULL;
  }
  g_info("device auto: using the CPU (%s)", cuda_err->message);
  g_error_free(cuda_err);
  return i2v_cpu_backend_new(threads);
}
