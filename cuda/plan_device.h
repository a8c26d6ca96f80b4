/* The planning device plan:cuda (plan_rename.h, plan_runtime.c): the CUDA backend's code on a
 * counted fake device. One fake device per process; its counters are process-wide. */
#pragma once

#include <glib.h>

#include "backend.h"

G_BEGIN_DECLS

/* The fake device's size when nothing else is set: larger than any card. */
#define I2V_PLAN_DEVICE_BYTES ((size_t)1 << 50)

/* A CUDA backend (cuda_backend.h) on the planning device; free with i2v_backend_free. */
I2vBackend *i2v_plan_cuda_backend_new(int device, I2vDType act_dtype, GError **error);

/* Sets the fake device's size (allocations past it fail as out of memory) and starts a new
 * high-water mark at the bytes in use now. */
void i2v_plan_device_reset(size_t bytes);

/* Bytes allocated on the fake device now. */
size_t i2v_plan_device_used(void);

/* The most bytes allocated at once since the last reset; with reset, the mark starts again at the
 * bytes in use now. */
size_t i2v_plan_device_peak(gboolean reset);

G_END_DECLS
