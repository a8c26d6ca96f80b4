/* Listing the weight tensors a model directory's networks read, without reading any weight. */
#pragma once

#include "model_dir.h"

G_BEGIN_DECLS

/* The networks with weights, in model_index.json names: "unet", "vae", "text_encoder",
 * "image_encoder" (NULL-terminated, static). */
extern const char *const i2v_weight_components[];

/* Runs the loader of component's network (its config from md) against a recording source and
 * reports every tensor it reads to fn (PyTorch name and shape). FALSE with error when the config
 * is unusable or component has no weights. */
gboolean i2v_model_dir_list_tensors(const char *dir, const char *component, I2vWeightsRecordFn fn,
                                    void *user, GError **error);

G_END_DECLS
