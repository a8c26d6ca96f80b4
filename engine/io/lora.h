/* LoRA styles: low-rank weight deltas merged into the UNet and the CLIP text encoder at load time.
 *
 * A LoRA file holds, for some weight W [out, in, ...] of the model, a pair down A [r, in, ...] and
 * up B [out, r, ...] (and optionally alpha); loading W then gives W + scale · (alpha / r) · B · A
 * (A flattened to [r, in·...]; alpha defaults to r). Files in the usual layouts are read:
 *   diffusers / PEFT  unet.<module>.lora_A.weight, unet.<module>.lora_B.weight
 *                     (text_encoder.<module>... for the text encoder)
 *   older diffusers   <prefix>.<module>.lora.down.weight / .lora.up.weight, and attention
 *                     processors' <attn>.processor.to_q_lora.down.weight (to_out_lora: to_out.0)
 *   kohya             lora_unet_<module with _ for .>.lora_down.weight / .lora_up.weight /
 *                     .alpha (lora_te_ for the text encoder)
 * Every tensor of a file must be understood and every module must reach a weight of the model:
 * a LoRA for another model is an error naming the module, never silently half-applied. */
#pragma once

#include "tensor.h"

G_BEGIN_DECLS

typedef struct I2vLora I2vLora;

/* Reads the LoRA files of spec: "path[:scale]" entries separated by commas (scale 1 when
 * omitted; any real number, 0 turns a file off). Returns a new set (i2v_lora_free) or NULL with an
 * error naming the file, tensor or spec entry at fault. */
I2vLora *i2v_lora_open(const char *spec, GError **error);

/* Frees the set (NULL allowed). */
void i2v_lora_free(I2vLora *lora);

/* TRUE if some module of the set targets weight name of component ("unet", "text_encoder"). */
gboolean i2v_lora_targets(const I2vLora *lora, const char *component, const char *name);

/* Adds the deltas of every module targeting (component, name) to values, the weight's float32
 * values in PyTorch layout and shape; marks those modules applied. FALSE with an error naming the
 * LoRA file, module and both shapes when they do not fit. */
gboolean i2v_lora_apply(I2vLora *lora, const char *component, const char *name, int ndim,
                        const int64_t *shape, float *values, GError **error);

/* FALSE with an error naming the first module no weight load has applied (a LoRA for another
 * model, or for a part this engine does not load). */
gboolean i2v_lora_check_applied(const I2vLora *lora, GError **error);

G_END_DECLS
