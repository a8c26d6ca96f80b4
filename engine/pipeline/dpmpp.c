/* DPM-Solver++ 2M: diffusers' DPMSolverMultistepScheduler arithmetic (v0.27.2) in the same
 * precisions — σ and the step's scalars as float32 0-d tensors, the update in float32 on backend
 * tensors, one rounding per PyTorch operation. */
#include "dpmpp.h"

#include "ops.h"

#include <math.h>
#include <string.h>

#include <i2v/error.h>

struct I2vDpmpp {
  int num_train;
  float *alphas_cumprod; /* the DDIM schedule's, ᾱ[T−1] clamped under zero terminal SNR */
  I2vPrediction prediction;
  I2vSpacing spacing;
  int64_t steps_offset;
  int max_steps;
};

/* Whether n steps give distinct timesteps inside [0, T−1] (set_timesteps of each spacing). */
static gboolean steps_fit(const I2vDpmpp *s, int n) {
  int T = s->num_train;
  switch (s->spacing) {
  case I2V_SPACING_LEADING: { /* n·(T // (n+1)) + offset is the first */
    int64_t ratio = T / (n + 1);
    return ratio >= 1 && n * ratio + s->steps_offset <= T - 1;
  }
  case I2V_SPACING_TRAILING:
    return n <= T;
  case I2V_SPACING_LINSPACE:
    return n <= MAX(1, T - 1);
  }
  return FALSE;
}

I2vDpmpp *i2v_dpmpp_new(const I2vDdim *ddim) {
  I2vDpmpp *s = g_new0(I2vDpmpp, 1);
  s->num_train = i2v_ddim_num_train_timesteps(ddim);
  s->alphas_cumprod = g_memdup2(i2v_ddim_alphas_cumprod(ddim), s->num_train * sizeof(float));
  /* The zero-SNR rescale ends at ᾱ = 0 (σ = ∞); diffusers clamps it to 2^-24 when it rescales.
   * A schedule that ends at 0 has been rescaled (no computed schedule reaches 0 otherwise). */
  if (s->alphas_cumprod[s->num_train - 1] == 0.0f) s->alphas_cumprod[s->num_train - 1] = 0x1p-24f;
  s->prediction = i2v_ddim_prediction(ddim);
  s->spacing = i2v_ddim_spacing(ddim);
  s->steps_offset = i2v_ddim_steps_offset(ddim);
  for (s->max_steps = s->num_train; s->max_steps > 1 && !steps_fit(s, s->max_steps);)
    s->max_steps--;
  return s;
}

void i2v_dpmpp_free(I2vDpmpp *s) {
  if (s == NULL) return;
  g_free(s->alphas_cumprod);
  g_free(s);
}

int i2v_dpmpp_max_steps(const I2vDpmpp *s) {
  return s->max_steps;
}

static gboolean check_steps(const I2vDpmpp *s, int n, GError **error) {
  if (n >= 1 && n <= s->max_steps) return TRUE;
  g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
              "steps %d is out of range for the dpmpp-2m sampler (expected 1..%d with the "
              "scheduler's num_train_timesteps %d)",
              n, s->max_steps, s->num_train);
  return FALSE;
}

gboolean i2v_dpmpp_timesteps(const I2vDpmpp *s, int n, int64_t *out, GError **error) {
  if (!check_steps(s, n, error)) return FALSE;
  int T = s->num_train;
  for (int k = 0; k < n; k++) {
    switch (s->spacing) {
    case I2V_SPACING_LEADING: /* arange(n+1)·(T // (n+1)), reversed, last dropped, + offset */
      out[k] = (int64_t)(n - k) * (T / (n + 1)) + s->steps_offset;
      break;
    case I2V_SPACING_TRAILING: /* round(arange(T, 0, -T/n)) − 1 */
      out[k] = (int64_t)nearbyint((double)T + k * -((double)T / n)) - 1;
      break;
    case I2V_SPACING_LINSPACE: { /* round(linspace(0, T−1, n+1)), reversed, last dropped */
      int i = n - k;
      out[k] = (int64_t)nearbyint(i == n ? T - 1.0 : i * ((T - 1.0) / n));
      break;
    }
    }
  }
  return TRUE;
}

gboolean i2v_dpmpp_sigmas(const I2vDpmpp *s, int n, float *out, GError **error) {
  if (!check_steps(s, n, error)) return FALSE;
  int64_t *t = g_new(int64_t, n);
  i2v_dpmpp_timesteps(s, n, t, NULL);
  for (int k = 0; k < n; k++) {
    float abar = s->alphas_cumprod[t[k]];
    out[k] = sqrtf((1.0f - abar) / abar);
  }
  out[n] = 0.0f; /* final_sigmas_type "zero" */
  g_free(t);
  return TRUE;
}

void i2v_dpmpp_alpha_sigma(float sigma, float *alpha, float *sigma_t) {
  *alpha = 1.0f / sqrtf(sigma * sigma + 1.0f);
  *sigma_t = sigma * *alpha;
}

gboolean i2v_dpmpp_run_init(I2vDpmppRun *r, const I2vDpmpp *s, I2vStream *st, int n, int first,
                            int ndim, const int64_t *shape, GError **error) {
  memset(r, 0, sizeof(*r));
  if (!check_steps(s, n, error)) return FALSE;
  if (first < 0 || first >= n) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "first step %d is out of range (expected 0..%d)", first, n - 1);
    return FALSE;
  }
  r->sigmas = g_new(float, n + 1);
  i2v_dpmpp_sigmas(s, n, r->sigmas, NULL);
  r->s = s;
  r->n = n;
  r->index = first; /* a later start is a fresh solver: its first step is first order */
  r->x0 = i2v_scratch_tensor(st, ndim, shape);
  r->x0_prev = i2v_scratch_tensor(st, ndim, shape);
  return TRUE;
}

void i2v_dpmpp_run_clear(I2vDpmppRun *r) {
  g_clear_pointer(&r->sigmas, g_free);
}

/* λ = log α − log σ of a noise level (half the log-SNR), float32. */
static float lambda_of(float sigma) {
  float alpha, sigma_t;
  i2v_dpmpp_alpha_sigma(sigma, &alpha, &sigma_t);
  return logf(alpha) - logf(sigma_t);
}

void i2v_dpmpp_step(I2vDpmppRun *r, I2vStream *st, const I2vTensor *model_output,
                    I2vTensor *sample) {
  if (r->index >= r->n) {
    i2v_stream_fail(st, g_error_new(I2V_ERROR, I2V_ERROR_INVALID,
                                    "dpmpp-2m: step %d of a %d-step run", r->index + 1, r->n));
    return;
  }
  I2vTensor previous = r->x0; /* the last step's x̂0 becomes m1; its buffer takes the new one */
  r->x0 = r->x0_prev;
  r->x0_prev = previous;

  float sigma_s0 = r->sigmas[r->index], sigma_next = r->sigmas[r->index + 1];
  float alpha_s0, scaled_s0;
  i2v_dpmpp_alpha_sigma(sigma_s0, &alpha_s0, &scaled_s0);
  if (r->s->prediction == I2V_PREDICTION_V) /* x̂0 = α·x − σ·v */
    i2v_op_axpby(st, &r->x0, alpha_s0, sample, -scaled_s0, model_output);
  else /* x̂0 = (x − σ·ε)/α, the division folded into the coefficients */
    i2v_op_axpby(st, &r->x0, 1.0f / alpha_s0, sample, -scaled_s0 / alpha_s0, model_output);

  if (sigma_next == 0.0f) {
    /* The last step is first order (lower_order_final) to σ = 0, where α = 1 and e^{−h} = 0:
     * (σ_t/σ_s)·x − α_t·(e^{−h} − 1)·x̂0 is x̂0 itself. */
    i2v_op_copy(st, sample, &r->x0);
  } else {
    float alpha_t, scaled_t;
    i2v_dpmpp_alpha_sigma(sigma_next, &alpha_t, &scaled_t);
    float lambda_s0 = lambda_of(sigma_s0), h = lambda_of(sigma_next) - lambda_s0;
    float decay = alpha_t * (expf(-h) - 1.0f);
    /* x_t = (σ_t/σ_s0)·x − α_t(e^{−h} − 1)·D0, D0 = x̂0 */
    i2v_op_axpby(st, sample, scaled_t / scaled_s0, sample, -decay, &r->x0);
    if (r->lower_order_nums >= 1) {
      /* midpoint second order: − ½·α_t(e^{−h} − 1)·D1, D1 = (m0 − m1)/r0, r0 = h_0/h */
      float h0 = lambda_s0 - lambda_of(r->sigmas[r->index - 1]);
      float inv_r0 = 1.0f / (h0 / h);
      i2v_op_axpby(st, &r->x0_prev, 1.0f, &r->x0, -1.0f, &r->x0_prev);
      i2v_op_axpby(st, &r->x0_prev, inv_r0, &r->x0_prev, 0.0f, &r->x0_prev);
      i2v_op_axpby(st, sample, 1.0f, sample, -(0.5f * decay), &r->x0_prev);
    }
  }
  r->lower_order_nums = MIN(r->lower_order_nums + 1, 2);
  r->index++;
}
