/* A diffusers model directory (the Hugging Face layout of ali-vilab/i2vgen-xl): model_index.json,
 * one folder per component with its config.json and weights, the tokenizer files and the
 * scheduler / feature-extractor configs. Also the JSON config accessors every network uses. */
#pragma once

#include <json-glib/json-glib.h>

#include "config.h"
#include "weights.h"

G_BEGIN_DECLS

typedef struct I2vModelDir I2vModelDir;

/* Opens dir: reads model_index.json (must name every component of I2VGenXLPipeline: unet, vae,
 * text_encoder, image_encoder, tokenizer, scheduler, feature_extractor) and checks each component
 * folder exists. variant is NULL or "fp16" (weights "*.fp16.safetensors"). When seed_formula is
 * set, weights come from the README-realcfg formula with that seed instead of files.
 * Returns a new handle (free with i2v_model_dir_free) or NULL with error. */
I2vModelDir *i2v_model_dir_open(const char *dir, const char *variant, GError **error);

/* Switches weight loading to formula weights of the given set seed (no weight file is read). */
void i2v_model_dir_use_formula(I2vModelDir *md, guint64 seed);

/* Makes every weight source a recorder reporting to fn (see i2v_weights_new_recorder): loading
 * a network then lists its tensors without reading or allocating any weight. */
void i2v_model_dir_record(I2vModelDir *md, I2vWeightsRecordFn fn, void *user);

/* Makes every weight source merge lora (borrowed: it must outlive md's weight sources). */
void i2v_model_dir_use_lora(I2vModelDir *md, I2vLora *lora);

/* Frees the handle (NULL allowed). */
void i2v_model_dir_free(I2vModelDir *md);

/* The directory path (owned by md). */
const char *i2v_model_dir_path(const I2vModelDir *md);

/* Path of a file inside a component folder; newly allocated (g_free). */
char *i2v_model_dir_file(const I2vModelDir *md, const char *component, const char *file);

/* Parses component/config.json (scheduler: scheduler_config.json; feature_extractor:
 * preprocessor_config.json; tokenizer: tokenizer_config.json) under the rules of json_load.h
 * (regular file, bounded nesting, no key twice, an object) into c, labelled
 * "<component>/<file>" for messages; free with i2v_config_clear. FALSE with an error naming the
 * file. */
gboolean i2v_model_dir_config(const I2vModelDir *md, const char *component, I2vConfig *c,
                              GError **error);

/* Opens the weights of a component: with a variant "<base>.<variant>.safetensors", else
 * "<base>.safetensors", or the ".safetensors.index.json" shard index of either; base is
 * "diffusion_pytorch_model" for diffusers components and "model" for transformers ones. If none
 * exists the error names every candidate. Formula weights when i2v_model_dir_use_formula was
 * called. Returns a new source (i2v_weights_free) or NULL. */
I2vWeights *i2v_model_dir_weights(const I2vModelDir *md, const char *component, GError **error);

/* The single-file weight path of component for md's variant ("<dir>/unet/diffusion_pytorch_model
 * .fp16.safetensors"), whether or not it exists: new string (g_free), NULL with error when the
 * component has no weights. */
char *i2v_model_dir_weight_path(const I2vModelDir *md, const char *component, GError **error);

G_END_DECLS
