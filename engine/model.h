/* Inside of the public I2vModel (i2v.h): the loaded components of one model directory on one
 * backend. Shared by model.c (loading, cache, refcount) and pipeline.c (generation). */
#pragma once

#include "clip_text.h"
#include "clip_vision.h"
#include "conditioning.h"
#include "ddim.h"
#include "i2v.h"
#include "tokenizer.h"
#include "unet3d.h"
#include "vae.h"

G_BEGIN_DECLS

struct I2vModel {
  int refcount; /* guarded by the process-wide cache lock (model.c) */
  char *key;    /* cache key: path|variant|device|precision|weights */
  char *device;
  GMutex lock; /* one generation at a time: the backend's scratch arena is not shareable */
  I2vBackend *be;
  I2vModelDir *md;
  I2vLora *lora; /* NULL, or the LoRA set merged into the weights (kept: encoders may reload) */
  I2vTokenizer *tokenizer;
  I2vClipText *text;
  I2vClipVision *vision;
  I2vVae *vae;
  I2vUnet *unet;
  I2vDdim *ddim;
  I2vClipPreprocess clip_pp; /* feature_extractor: CLIP input side, mean, std */
};

G_END_DECLS
