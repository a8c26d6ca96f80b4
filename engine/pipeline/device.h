/* Choosing a backend from the user's device and precision strings (the element's `device` and
 * `precision` properties, the CLI's --device/--precision, I2vModelOptions); the parsers are public
 * (i2v.h). */
#pragma once

#include <i2v/i2v.h>

#include "backend.h"

G_BEGIN_DECLS

/* A backend for device (i2v_device_parse; "auto" is resolved here: CUDA device 0 when a backend
 * can be made on it, else the CPU) storing weights and activations in precision
 * (i2v_precision_parse; default: fp16 on CUDA, fp32 on the CPU); a CPU backend runs on `threads`
 * threads (0: all). Free with i2v_backend_free. NULL with an error naming the device or precision:
 * I2V_ERROR_INVALID for an unknown name, I2V_ERROR_BACKEND when it is not built in, not present,
 * or not supported by that device (the CPU backend is fp32 only). */
I2vBackend *i2v_backend_new_for_device(const char *device, const char *precision, int threads,
                                       GError **error);

G_END_DECLS
