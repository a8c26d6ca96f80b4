/* DPM-Solver++ 2M (Lu et al. 2022, "DPM-Solver++", Alg. 2: the second-order multistep solver in
 * data-prediction form), as diffusers v0.27.2 DPMSolverMultistepScheduler runs it when built
 * from_config of the model's DDIM config: algorithm dpmsolver++, solver_order 2, midpoint,
 * lower_order_final, final sigma 0, no Karras sigmas (docs/model.md §6).
 *
 * The noise schedule (betas, zero-terminal-SNR rescale, alphas_cumprod), prediction_type,
 * timestep_spacing and steps_offset are the DDIM schedule's (ddim.h); with the rescale, ᾱ[T−1]
 * is clamped to 2^-24 as diffusers does, so that σ = √((1−ᾱ)/ᾱ) stays finite. */
#pragma once

#include "ddim.h"

G_BEGIN_DECLS

typedef struct I2vDpmpp I2vDpmpp;

/* The solver on the schedule of ddim (copied: ddim may be freed first). New object
 * (i2v_dpmpp_free). */
I2vDpmpp *i2v_dpmpp_new(const I2vDdim *ddim);

/* Frees the solver (NULL allowed). */
void i2v_dpmpp_free(I2vDpmpp *s);

/* The largest step count whose timesteps stay distinct and inside the schedule. */
int i2v_dpmpp_max_steps(const I2vDpmpp *s);

/* The descending timesteps of an n-step run (set_timesteps) into out[n]; FALSE with an
 * I2V_ERROR_INVALID error naming n when it is not in 1..i2v_dpmpp_max_steps. */
gboolean i2v_dpmpp_timesteps(const I2vDpmpp *s, int n, int64_t *out, GError **error);

/* σ_k = √((1−ᾱ)/ᾱ) at each of the n timesteps in float32, then σ_n = 0: out[n + 1]. FALSE as
 * i2v_dpmpp_timesteps. */
gboolean i2v_dpmpp_sigmas(const I2vDpmpp *s, int n, float *out, GError **error);

/* The signal and noise scales of σ, α_σ = 1/√(σ²+1) and σ·α_σ (diffusers _sigma_to_alpha_sigma_t,
 * float32): add_noise mixes an image latent to the level of a step with them. */
void i2v_dpmpp_alpha_sigma(float sigma, float *alpha, float *sigma_t);

/* One run of the solver: what it keeps between steps. The tensors live in the stream's scratch
 * arena (released by the caller's scratch mark, not by i2v_dpmpp_run_clear). */
typedef struct {
  const I2vDpmpp *s;
  int n;                 /* the run's step count */
  int index;             /* the next step */
  int lower_order_nums;  /* steps done so far, up to the order (2) */
  float *sigmas;         /* [n + 1] */
  I2vTensor x0, x0_prev; /* this step's and the previous step's data prediction x̂0 */
} I2vDpmppRun;

/* Starts a run of n steps at step first (motion_strength < 1 starts later) for samples of the
 * given shape; FALSE with I2V_ERROR_INVALID when n or first is out of range. */
gboolean i2v_dpmpp_run_init(I2vDpmppRun *r, const I2vDpmpp *s, I2vStream *st, int n, int first,
                            int ndim, const int64_t *shape, GError **error);

/* Frees the run's host memory. */
void i2v_dpmpp_run_clear(I2vDpmppRun *r);

/* One step on backend tensors in float32, as diffusers computes it: x̂0 from model_output and
 * sample by the prediction type into r->x0, then the first-order update (the run's first step
 * and its last, to σ = 0) or the second-order midpoint update with the previous x̂0, written
 * over sample. Failures go to the stream's sticky error. */
void i2v_dpmpp_step(I2vDpmppRun *r, I2vStream *st, const I2vTensor *model_output,
                    I2vTensor *sample);

G_END_DECLS
