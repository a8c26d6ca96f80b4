/* The engine's GError domain. Every message names the file / tensor / key / value at fault and
 * what was expected, so a user can act on it. Cancellation uses GIO's G_IO_ERROR_CANCELLED. */
#pragma once

#include <i2v/export.h>

#include <glib.h>

G_BEGIN_DECLS

#define I2V_ERROR (i2v_error_quark())

typedef enum {
  I2V_ERROR_IO,      /* a file cannot be opened, read or mapped */
  I2V_ERROR_FORMAT,  /* a file is malformed (safetensors header, JSON, vocab, merges, image) */
  I2V_ERROR_CONFIG,  /* a config.json key is missing or has a bad value */
  I2V_ERROR_MISSING, /* a component, weight file or tensor is missing */
  I2V_ERROR_SHAPE,   /* a tensor has the wrong shape or dtype */
  I2V_ERROR_INVALID, /* a bad parameter (frames, size, steps, guidance, ...) */
  I2V_ERROR_BACKEND, /* a backend failure (allocation, CUDA status, unsupported op) */
  I2V_ERROR_NO_MEMORY,
  I2V_ERROR_LORA, /* a LoRA file cannot be read or does not fit the model */
} I2vErrorCode;

/* The GQuark of the I2V_ERROR domain. */
I2V_API GQuark i2v_error_quark(void);

G_END_DECLS
