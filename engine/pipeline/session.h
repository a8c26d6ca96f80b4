/* Inside of the public I2vSession (i2v.h): one run's state on a model — whisper_state to the
 * model's whisper_context. Shared by session.c (lifecycle, memory) and pipeline.c (generation). */
#pragma once

#include "model.h"

G_BEGIN_DECLS

struct I2vSession {
  I2vModel *m;        /* a reference */
  I2vStream *st;      /* the scratch arena, sticky error, FLOP count, tap; CUDA stream + handles */
  gint running;       /* 1 while a generation runs (atomic: one at a time per session) */
  size_t device_peak; /* largest device_used sampled at this session's stage ends (atomic) */
  size_t reserve;     /* i2v_session_reserve's bytes (0: none), applied at the UNet's preparation */
};

/* Samples the device memory into s's and its model's peaks (stage ends). */
void i2v_session_sample_device_memory(I2vSession *s);

G_END_DECLS
