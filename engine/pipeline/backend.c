/* Backend selection: device and precision strings to a backend (CPU or CUDA). */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include <i2v/error.h>

#ifndef I2V_HAVE_CUDA
/* Without CUDA in the build the CUDA entry points exist and say so. */
I2vBackend *i2v_cuda_backend_new(int device, I2vDType act_dtype, GError **error) {
  (void)act_dtype;
  g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND,
              "cuda:%d: this libi2v was built without CUDA (meson option -Dcuda=enabled)", device);
  return NULL;
}

int i2v_cuda_device_count(void) {
  return 0;
}
#endif

/* Parses a precision name; *dtype is untouched for NULL (the device default). */
static gboolean parse_precision(const char *precision, gboolean *given, I2vDType *dtype,
                                GError **error) {
  static const struct {
    const char *name;
    I2vDType dtype;
  } names[] = {{"fp32", I2V_DTYPE_F32}, {"fp16", I2V_DTYPE_F16}, {"bf16", I2V_DTYPE_BF16}};
  *given = precision != NULL && *precision != '\0';
  if (!*given) return TRUE;
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    if (g_ascii_strcasecmp(precision, names[i].name) == 0) {
      *dtype = names[i].dtype;
      return TRUE;
    }
  }
  g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
              "unknown precision \"%s\" (expected fp32, fp16 or bf16)", precision);
  return FALSE;
}

/* Parses "cuda" or "cuda:N" into N; FALSE for anything else. */
static gboolean parse_cuda(const char *device, int *index) {
  if (strcmp(device, "cuda") == 0) {
    *index = 0;
    return TRUE;
  }
  if (strncmp(device, "cuda:", 5) != 0 || !g_ascii_isdigit(device[5])) return FALSE;
  char *end = NULL;
  long n = strtol(device + 5, &end, 10);
  if (*end != '\0' || n > G_MAXINT) return FALSE;
  *index = (int)n;
  return TRUE;
}

static I2vBackend *cpu_backend(const char *device, gboolean given, I2vDType dtype, GError **error) {
  if (given && dtype != I2V_DTYPE_F32) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND,
                "precision %s is not available on device \"%s\": the CPU backend computes in "
                "fp32 only (use precision fp32, or a CUDA device)",
                dtype == I2V_DTYPE_F16 ? "fp16" : "bf16", device);
    return NULL;
  }
  return i2v_cpu_backend_new();
}

I2vBackend *i2v_backend_new_for_device(const char *device, const char *precision, GError **error) {
  gboolean given = FALSE;
  I2vDType dtype = I2V_DTYPE_F16; /* the CUDA default: what the fp16 reference pipeline runs */
  if (!parse_precision(precision, &given, &dtype, error)) return NULL;
  if (device == NULL || *device == '\0') device = "auto";

  int index = 0;
  if (strcmp(device, "cpu") == 0) return cpu_backend(device, given, dtype, error);
  if (parse_cuda(device, &index)) return i2v_cuda_backend_new(index, dtype, error);
  if (strcmp(device, "auto") != 0) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "unknown device \"%s\" (expected auto, cpu, cuda or cuda:N)", device);
    return NULL;
  }

  GError *cuda_err = NULL;
  I2vBackend *be = i2v_cuda_backend_new(0, dtype, &cuda_err);
  if (be != NULL) {
    g_info("device auto: using %s (%s)", be->name, i2v_dtype_name(be->act_dtype));
    return be;
  }
  if (given && dtype != I2V_DTYPE_F32) { /* the CPU cannot honour the precision asked for */
    g_set_error(error, I2V_ERROR, I2V_ERROR_BACKEND,
                "device auto: precision %s needs a CUDA device, and none is usable: %s",
                dtype == I2V_DTYPE_F16 ? "fp16" : "bf16", cuda_err->message);
    g_error_free(cuda_err);
    return NULL;
  }
  g_info("device auto: using the CPU (%s)", cuda_err->message);
  g_error_free(cuda_err);
  return i2v_cpu_backend_new();
}
