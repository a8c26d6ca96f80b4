/* Inside of the public I2vModel (i2v.h): the loaded components of one model directory on one
 * backend. Shared by model.c (loading, cache, refcount) and pipeline.c (generation). */
#pragma once

#include "clip_text.h"
#include "clip_vision.h"
#include "conditioning.h"
#include "ddim.h"
#include <i2v/i2v.h>
#include "tokenizer.h"
#include "unet3d.h"
#include "vae.h"

G_BEGIN_DECLS

struct I2vModel {
  int refcount; /* guarded by the process-wide cache lock (model.c) */
  char *key;    /* cache key: path|variant|device|precision|weights|encoders */
  char *device;
  GMutex lock; /* one generation at a time: the backend's scratch arena is not shareable */
  I2vBackend *be;
  I2vModelDir *md;
  I2vLora *lora; /* NULL, or the LoRA set merged into the weights (kept: encoders may reload) */
  I2vTokenizer *tokenizer;
  gboolean release_encoders; /* text and vision are NULL between jobs (I2vModelOptions) */
  I2vClipText *text;         /* NULL while released: i2v_model_text_encoder loads it */
  I2vClipVision *vision;     /* NULL while released: i2v_model_vision_encoder loads it */
  I2vVae *vae;
  I2vUnet *unet;
  I2vDdim *ddim;
  I2vClipPreprocess clip_pp; /* feature_extractor: CLIP input side, mean, std */
  size_t device_peak;        /* largest device_used seen at a stage end (I2vMemoryStats) */
};

/* m's text / vision encoder, loaded again from m's directory if a job released it; NULL with
 * error when that load fails. Owned by m. Call with m->lock held. */
I2vClipText *i2v_model_text_encoder(I2vModel *m, GError **error);
I2vClipVision *i2v_model_vision_encoder(I2vModel *m, GError **error);

/* Frees m's text and vision encoders when m was loaded with release_encoders (else nothing),
 * sampling the device memory first. */
void i2v_model_release_encoders(I2vModel *m);

/* Samples the device's used memory into m->device_peak (no-op on the CPU). */
void i2v_model_sample_device_memory(I2vModel *m);

G_END_DECLS
