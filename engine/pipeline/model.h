/* Inside of the public I2vModel (i2v.h): the loaded components of one model directory on one
 * backend, read-only once loaded and shared by every session (session.c) on it. Only the CLIP
 * encoders of a release_encoders model change after load: loaded when the first session needs
 * them and freed when the last one is done (a count per encoder, under a lock that is never held
 * across a callback). */
#pragma once

#include <i2v/i2v.h>

#include "clip_text.h"
#include "clip_vision.h"
#include "conditioning.h"
#include "ddim.h"
#include "sampler.h"
#include "tokenizer.h"
#include "unet3d.h"
#include "vae.h"
#include "ops.h"

G_BEGIN_DECLS

/* A CLIP encoder that a release_encoders model frees between its users. */
typedef struct {
  void *net; /* I2vClipText / I2vClipVision, NULL while released */
  int users; /* sessions between acquire and release */
} I2vEncoderSlot;

struct I2vModel {
  int refcount; /* guarded by the process-wide cache lock (model.c) */
  char *key;    /* cache key (model.c) */
  I2vBackend *be;
  I2vModelDir *md;
  I2vLora *lora; /* NULL, or the LoRA set merged into the weights (kept: encoders may reload) */
  I2vTokenizer *tokenizer;
  gboolean release_encoders;
  GMutex encoder_lock; /* guards text and vision */
  I2vEncoderSlot text, vision;
  I2vVae *vae;
  I2vUnet *unet;
  I2vDdim *ddim;                           /* the schedule of scheduler_config.json */
  I2vSampler *samplers[I2V_SAMPLER_COUNT]; /* on ddim's schedule, by I2vSamplerKind */
  I2vClipPreprocess clip_pp;               /* feature_extractor: CLIP input side, mean, std */
  size_t device_peak;                      /* largest device_used seen at a stage end (atomic) */
  GMutex sessions_lock;                    /* guards sessions */
  GPtrArray *sessions; /* the live I2vSession * on this model (for i2v_model_memory) */
};

/* i2v_model_load without the process-wide cache: a model of the caller's own, never shared (a
 * memory plan loads its own copy even where the process runs the same model on that device);
 * i2v_model_unref frees it. */
I2vModel *i2v_model_load_uncached(const I2vModelOptions *opts, GError **error);

/* m's text / vision encoder for one use, loaded again from m's directory if it was released;
 * NULL with error when that load fails. Pair every success with a release. */
const I2vClipText *i2v_model_text_encoder_acquire(I2vModel *m, GError **error);
const I2vClipVision *i2v_model_vision_encoder_acquire(I2vModel *m, GError **error);

/* Ends one use of m's text / vision encoder; the last user of a release_encoders model frees
 * its weights (after sampling the device memory, so the peak counts them). */
void i2v_model_text_encoder_release(I2vModel *m);
void i2v_model_vision_encoder_release(I2vModel *m);

/* Samples the device's used memory into m->device_peak and returns it (0 on the CPU). */
size_t i2v_model_sample_device_memory(I2vModel *m);

/* Adds / removes a live session of m (for i2v_model_memory). */
void i2v_model_add_session(I2vModel *m, I2vSession *s);
void i2v_model_remove_session(I2vModel *m, I2vSession *s);

/* Device bytes a session holds (its scratch arena and workspaces); any thread. */
size_t i2v_session_scratch(const I2vSession *s);

G_END_DECLS
