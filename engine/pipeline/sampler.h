/* The sampler interface the denoising loop calls: the timesteps of an n-step run, the noise
 * level a later start (motion_strength < 1) begins at, and one step from the model output. What
 * a sampler keeps between steps (DPM-Solver++'s previous x̂0) lives in a run, one per
 * generation; the sampler itself is read-only and shared by every session of a model.
 *
 * Samplers: DDIM (ddim.h, the reference) and DPM-Solver++ 2M (dpmpp.h), both on the schedule
 * of the model's scheduler config. */
#pragma once

#include <i2v/i2v.h>

#include "ddim.h"

G_BEGIN_DECLS

typedef struct I2vSampler I2vSampler;
typedef struct I2vSamplerRun I2vSamplerRun;

/* The sampler of kind on the schedule of ddim (borrowed: it must outlive the sampler). New
 * object (i2v_sampler_free). */
I2vSampler *i2v_sampler_new(I2vSamplerKind kind, const I2vDdim *ddim);

/* Frees the sampler (NULL allowed). */
void i2v_sampler_free(I2vSampler *s);

/* The largest step count the sampler allows with this schedule. */
int i2v_sampler_max_steps(const I2vSampler *s);

/* The descending timesteps of an n-step run into out[n]; FALSE with an I2V_ERROR_INVALID
 * error naming n when it is out of range. */
gboolean i2v_sampler_timesteps(const I2vSampler *s, int n, int64_t *out, GError **error);

/* Starts a run of n steps at step first (0, or later below full motion strength) for samples of
 * the given shape. Its tensors are taken from st's scratch arena (the caller's scratch mark
 * releases them). New run (i2v_sampler_run_free) or NULL with I2V_ERROR_INVALID. */
I2vSamplerRun *i2v_sampler_start(const I2vSampler *s, I2vStream *st, int n, int first, int ndim,
                                 const int64_t *shape, GError **error);

/* Frees a run's host memory (NULL allowed). */
void i2v_sampler_run_free(I2vSamplerRun *r);

/* The scales add_noise mixes a clean latent z with noise at the run's first step:
 * signal·z + noise·ε (√ᾱ and √(1−ᾱ) for DDIM, α_σ and σ·α_σ for DPM-Solver++). */
void i2v_sampler_start_levels(const I2vSamplerRun *r, double *signal, double *noise);

/* One step of the run from the (guided) model output: sample is overwritten with the next, less
 * noisy sample. Returns the step's x̂0 (owned by the run, valid until its next step), or NULL
 * past the run's last step. Failures go to the stream's sticky error. */
const I2vTensor *i2v_sampler_step(I2vSamplerRun *r, const I2vTensor *model_output,
                                  I2vTensor *sample);

G_END_DECLS
