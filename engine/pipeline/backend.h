/* Choosing a backend from the user's device and precision strings (the element's `device` and
 * `precision` properties, the CLI's --device/--precision, I2vModelOptions). */
#pragma once

#include "ops.h"

G_BEGIN_DECLS

/* A backend for device "auto" (NULL too: CUDA device 0 when one works, else the CPU), "cpu",
 * "cuda" or "cuda:N", storing weights and activations in precision NULL (the device's default:
 * fp16 on CUDA, fp32 on the CPU), "fp32", "fp16" or "bf16". Free with i2v_backend_free. NULL
 * with an error naming the device or precision: I2V_ERROR_INVALID for an unknown name,
 * I2V_ERROR_BACKEND when it is not built in, not present, or not supported by that device (the
 * CPU backend is fp32 only). */
I2vBackend *i2v_backend_new_for_device(const char *device, const char *precision, GError **error);

G_END_DECLS
