/* The DDIM scheduler (diffusers DDIMScheduler, eta = 0) configured by
 * scheduler/scheduler_config.json: the noise schedule (betas, the optional zero-terminal-SNR
 * rescale, alphas_cumprod), the timesteps of an n-step run and the step update on backend
 * tensors (docs/model.md §6).
 *
 * Supported config values: beta_schedule "squaredcos_cap_v2", "linear", "scaled_linear";
 * prediction_type "v_prediction", "epsilon"; timestep_spacing "leading", "trailing",
 * "linspace". clip_sample, thresholding and trained_betas must be off. Anything else is an
 * I2V_ERROR_CONFIG error naming the file, the key and the value. */
#pragma once

#include "model_dir.h"

G_BEGIN_DECLS

typedef struct I2vDdim I2vDdim;

/* What the model predicts (prediction_type) and how n timesteps are spread (timestep_spacing):
 * config values DPM-Solver++ (dpmpp.h) reads from the same schedule. */
typedef enum { I2V_PREDICTION_EPSILON, I2V_PREDICTION_V } I2vPrediction;
typedef enum { I2V_SPACING_LEADING, I2V_SPACING_TRAILING, I2V_SPACING_LINSPACE } I2vSpacing;

/* The largest num_train_timesteps a config may have (the real model's is 1000). */
#define I2V_DDIM_MAX_TRAIN_TIMESTEPS 100000

/* Builds the scheduler from a parsed scheduler config (ranges: docs/model.md). Returns a new
 * scheduler (i2v_ddim_free) or NULL with an I2V_ERROR_CONFIG error naming the file and key. */
I2vDdim *i2v_ddim_new(const I2vConfig *c, GError **error);

/* Reads md's scheduler/scheduler_config.json and builds the scheduler (as i2v_ddim_new). */
I2vDdim *i2v_ddim_load(I2vModelDir *md, GError **error);

/* Frees the scheduler (NULL allowed). */
void i2v_ddim_free(I2vDdim *s);

/* num_train_timesteps of the config (1000). */
int i2v_ddim_num_train_timesteps(const I2vDdim *s);

/* The most steps a run may have: every timestep of it inside [0, num_train_timesteps). */
int i2v_ddim_max_steps(const I2vDdim *s);

/* The float32 schedule as diffusers holds it, num_train_timesteps values (owned by s). */
const float *i2v_ddim_betas(const I2vDdim *s);
const float *i2v_ddim_alphas_cumprod(const I2vDdim *s);

/* The config's prediction_type, timestep_spacing and steps_offset. */
I2vPrediction i2v_ddim_prediction(const I2vDdim *s);
I2vSpacing i2v_ddim_spacing(const I2vDdim *s);
int64_t i2v_ddim_steps_offset(const I2vDdim *s);

/* ᾱ used after the last step: 1 with set_alpha_to_one, else alphas_cumprod[0]. */
float i2v_ddim_final_alpha_cumprod(const I2vDdim *s);

/* The descending timesteps of an n-step run (set_timesteps) into out[n]. FALSE with an
 * I2V_ERROR_INVALID error when n is not in [1, num_train_timesteps]. */
gboolean i2v_ddim_timesteps(const I2vDdim *s, int n, int64_t *out, GError **error);

/* The scalars of one step of an n-step run at timestep t. */
typedef struct {
  int64_t timestep, prev_timestep; /* prev = t − num_train_timesteps / n (may be negative) */
  float alpha_prod_t, alpha_prod_t_prev;
} I2vDdimStepInfo;

/* Fills info for timestep t of an n-step run; FALSE with I2V_ERROR_INVALID when t is outside
 * [0, num_train_timesteps) or n < 1. */
gboolean i2v_ddim_step_info(const I2vDdim *s, int n, int64_t t, I2vDdimStepInfo *info,
                            GError **error);

/* One DDIM step (eta = 0) of an n-step run at timestep t on backend tensors of the same numel:
 * pred_original_sample = x̂0, prev_sample = √ᾱ_prev·x̂0 + √(1−ᾱ_prev)·ε̂, with x̂0/ε̂ from
 * model_output and sample by the prediction type, all in float32 as diffusers computes them.
 * prev_sample may alias sample or model_output; pred_original_sample must alias neither.
 * Scratch memory used inside is released before returning. Failures (bad t, backend errors) go
 * to the stream's sticky error (check with i2v_stream_check). */
void i2v_ddim_step(const I2vDdim *s, I2vStream *st, int n, int64_t t, const I2vTensor *model_output,
                   const I2vTensor *sample, I2vTensor *pred_original_sample,
                   I2vTensor *prev_sample);

G_END_DECLS
