/* DDIM scheduler: diffusers' DDIMScheduler arithmetic (v0.27.2) reproduced in the same
 * precisions — betas in double then float32, the zero-SNR rescale in float32, cumprod with a
 * double accumulator (PyTorch's CPU cumprod), the step in float32 on backend tensors. */
#include "ddim.h"

#include "ops.h"

#include <math.h>
#include <string.h>

#include <i2v/error.h>

struct I2vDdim {
  int num_train;
  float *betas;
  float *alphas_cumprod;
  float final_alpha_cumprod;
  I2vPrediction prediction;
  I2vSpacing spacing;
  int64_t steps_offset;
  int max_steps; /* the most steps whose timesteps all lie in [0, num_train) */
};

/* squaredcos_cap_v2: ᾱ(τ) = cos²((τ + 0.008)/1.008 · π/2), β_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T),
 * 0.999), evaluated in double and stored as float32 (diffusers betas_for_alpha_bar). */
static void betas_cosine(float *betas, int n) {
  for (int i = 0; i < n; i++) {
    double t1 = (double)i / n, t2 = (double)(i + 1) / n;
    double a1 = cos((t1 + 0.008) / 1.008 * M_PI / 2), a2 = cos((t2 + 0.008) / 1.008 * M_PI / 2);
    betas[i] = (float)fmin(1.0 - (a2 * a2) / (a1 * a1), 0.999);
  }
}

/* torch.linspace(start, end, n, dtype=float32) as PyTorch's CPU kernel computes it: a float32
 * step, the first half counted up from start and the second half down from end. */
static void linspace_f32(float *out, int n, float start, float end) {
  if (n == 1) {
    out[0] = start;
    return;
  }
  float step = (end - start) / (float)(n - 1);
  for (int i = 0; i < n; i++)
    out[i] = i < n / 2 ? start + step * (float)i : end - step * (float)(n - 1 - i);
}

/* rescale_zero_terminal_snr (Lin et al. 2023, Alg. 1) in float32 as diffusers runs it: shift
 * √ᾱ so the last is 0, scale so the first is kept, and turn ᾱ back into betas. */
static void rescale_zero_terminal_snr(float *betas, int n) {
  g_return_if_fail(n > 0); /* num_train_timesteps is checked at load */
  float *sqrt_ab = g_new(float, (gsize)n);
  double acc = 1.0;
  for (int i = 0; i < n; i++) {
    acc *= (float)(1.0f - betas[i]);
    sqrt_ab[i] = sqrtf((float)acc);
  }
  float first = sqrt_ab[0], last = sqrt_ab[n - 1];
  float scale = first / (first - last);
  for (int i = 0; i < n; i++) {
    float s = (sqrt_ab[i] - last) * scale;
    sqrt_ab[i] = s * s; /* now ᾱ' */
  }
  betas[0] = 1.0f - sqrt_ab[0];
  for (int i = 1; i < n; i++) betas[i] = 1.0f - sqrt_ab[i] / sqrt_ab[i - 1];
  g_free(sqrt_ab);
}

/* Fills s->betas from the beta_schedule keys of c (diffusers' defaults when absent). */
static gboolean make_betas(I2vDdim *s, const I2vConfig *c, GError **error) {
  static const char *const schedules[] = {"squaredcos_cap_v2", "linear", "scaled_linear", NULL};
  int schedule;
  double start, end;
  if (!i2v_config_choice(c, "beta_schedule", "linear", schedules, &schedule, error) ||
      !i2v_config_double_or(c, "beta_start", 1e-8, 0.5, 0.0001, &start, error) ||
      !i2v_config_double_or(c, "beta_end", 1e-8, 0.999, 0.02, &end, error))
    return FALSE;
  if (schedule == 0) {
    betas_cosine(s->betas, s->num_train);
  } else if (schedule == 1) {
    linspace_f32(s->betas, s->num_train, (float)start, (float)end);
  } else {
    linspace_f32(s->betas, s->num_train, (float)sqrt(start), (float)sqrt(end));
    for (int i = 0; i < s->num_train; i++) s->betas[i] *= s->betas[i];
  }
  return TRUE;
}

/* Rejects config features this scheduler does not implement (they change the step). */
static gboolean check_unsupported(const I2vConfig *c, GError **error) {
  JsonNode *trained = json_object_get_member(c->json, "trained_betas");
  if (trained != NULL && !JSON_NODE_HOLDS_NULL(trained)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                "%s: trained_betas is set; only computed beta schedules are supported (expected "
                "null)",
                c->file);
    return FALSE;
  }
  static const char *const off_keys[] = {"clip_sample", "thresholding"};
  static const gboolean defaults[] = {TRUE, FALSE}; /* diffusers defaults */
  for (guint i = 0; i < G_N_ELEMENTS(off_keys); i++) {
    gboolean on;
    if (!i2v_config_bool_or(c, off_keys[i], defaults[i], &on, error)) return FALSE;
    if (on) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_CONFIG,
                  "%s: %s is true; not supported (expected false)", c->file, off_keys[i]);
      return FALSE;
    }
  }
  return TRUE;
}

I2vDdim *i2v_ddim_new(const I2vConfig *c, GError **error) {
  static const char *const predictions[] = {"epsilon", "v_prediction", NULL};
  static const char *const spacings[] = {"leading", "trailing", "linspace", NULL};
  int num_train, prediction, spacing, offset;
  gboolean rescale, alpha_to_one;
  if (!i2v_config_int(c, "num_train_timesteps", 1, I2V_DDIM_MAX_TRAIN_TIMESTEPS, &num_train,
                      error) ||
      !check_unsupported(c, error) ||
      !i2v_config_choice(c, "prediction_type", "epsilon", predictions, &prediction, error) ||
      !i2v_config_choice(c, "timestep_spacing", "leading", spacings, &spacing, error) ||
      !i2v_config_bool_or(c, "rescale_betas_zero_snr", FALSE, &rescale, error) ||
      !i2v_config_bool_or(c, "set_alpha_to_one", TRUE, &alpha_to_one, error) ||
      /* a timestep is a step's index plus the offset: both must stay in the schedule */
      !i2v_config_int_or(c, "steps_offset", 0, num_train - 1, 0, &offset, error))
    return NULL;

  I2vDdim *s = g_new0(I2vDdim, 1);
  s->num_train = num_train;
  s->prediction = prediction == 0 ? I2V_PREDICTION_EPSILON : I2V_PREDICTION_V;
  s->spacing = (I2vSpacing)spacing;
  s->steps_offset = offset;
  /* "leading" puts the first timestep at (n−1)·(T // n) + offset, which passes T − 1 for n
   * near T (1000 steps with offset 1 would start at timestep 1000) */
  s->max_steps = num_train;
  while (s->spacing == I2V_SPACING_LEADING && s->max_steps > 1 &&
         (int64_t)(s->max_steps - 1) * (num_train / s->max_steps) + offset > num_train - 1)
    s->max_steps--;
  s->betas = g_new(float, s->num_train);
  s->alphas_cumprod = g_new(float, s->num_train);
  if (!make_betas(s, c, error)) {
    i2v_ddim_free(s);
    return NULL;
  }
  if (rescale) rescale_zero_terminal_snr(s->betas, s->num_train);
  double acc = 1.0; /* torch.cumprod on the CPU accumulates float32 in double */
  for (int i = 0; i < s->num_train; i++) {
    acc *= (float)(1.0f - s->betas[i]);
    s->alphas_cumprod[i] = (float)acc;
  }
  s->final_alpha_cumprod = alpha_to_one ? 1.0f : s->alphas_cumprod[0];
  return s;
}

I2vDdim *i2v_ddim_load(I2vModelDir *md, GError **error) {
  I2vConfig c;
  if (!i2v_model_dir_config(md, "scheduler", &c, error)) return NULL;
  I2vDdim *s = i2v_ddim_new(&c, error);
  i2v_config_clear(&c);
  return s;
}

void i2v_ddim_free(I2vDdim *s) {
  if (s == NULL) return;
  g_free(s->betas);
  g_free(s->alphas_cumprod);
  g_free(s);
}

int i2v_ddim_num_train_timesteps(const I2vDdim *s) {
  return s->num_train;
}

const float *i2v_ddim_betas(const I2vDdim *s) {
  return s->betas;
}

const float *i2v_ddim_alphas_cumprod(const I2vDdim *s) {
  return s->alphas_cumprod;
}

I2vPrediction i2v_ddim_prediction(const I2vDdim *s) {
  return s->prediction;
}

I2vSpacing i2v_ddim_spacing(const I2vDdim *s) {
  return s->spacing;
}

int i2v_ddim_max_steps(const I2vDdim *s) {
  return s->max_steps;
}

int64_t i2v_ddim_steps_offset(const I2vDdim *s) {
  return s->steps_offset;
}

float i2v_ddim_final_alpha_cumprod(const I2vDdim *s) {
  return s->final_alpha_cumprod;
}

static gboolean check_steps(const I2vDdim *s, int n, GError **error) {
  if (n >= 1 && n <= s->max_steps) return TRUE;
  g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
              "steps %d is out of range (expected 1..%d with the scheduler's num_train_timesteps "
              "%d and steps_offset %" G_GINT64_FORMAT ")",
              n, s->max_steps, s->num_train, s->steps_offset);
  return FALSE;
}

/* set_timesteps: NumPy's arange/linspace in double, rounded half to even (np.round). */
gboolean i2v_ddim_timesteps(const I2vDdim *s, int n, int64_t *out, GError **error) {
  if (!check_steps(s, n, error)) return FALSE;
  int T = s->num_train;
  for (int k = 0; k < n; k++) {
    switch (s->spacing) {
    case I2V_SPACING_LEADING: /* arange(n)·(T // n), reversed, + steps_offset */
      out[k] = (int64_t)(n - 1 - k) * (T / n) + s->steps_offset;
      break;
    case I2V_SPACING_TRAILING: /* round(arange(T, 0, -T/n)) − 1 */
      out[k] = (int64_t)nearbyint((double)T + k * -((double)T / n)) - 1;
      break;
    case I2V_SPACING_LINSPACE: { /* round(linspace(0, T−1, n)), reversed */
      int i = n - 1 - k;
      double v = n == 1 ? 0.0 : (i == n - 1 ? T - 1.0 : i * ((T - 1.0) / (n - 1)));
      out[k] = (int64_t)nearbyint(v);
      break;
    }
    }
  }
  return TRUE;
}

gboolean i2v_ddim_step_info(const I2vDdim *s, int n, int64_t t, I2vDdimStepInfo *info,
                            GError **error) {
  if (!check_steps(s, n, error)) return FALSE;
  if (t < 0 || t >= s->num_train) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "timestep %" G_GINT64_FORMAT " is out of range (expected 0..%d)", t,
                s->num_train - 1);
    return FALSE;
  }
  info->timestep = t;
  info->prev_timestep = t - s->num_train / n;
  info->alpha_prod_t = s->alphas_cumprod[t];
  info->alpha_prod_t_prev =
      info->prev_timestep >= 0 ? s->alphas_cumprod[info->prev_timestep] : s->final_alpha_cumprod;
  return TRUE;
}

void i2v_ddim_step(const I2vDdim *s, I2vStream *st, int n, int64_t t, const I2vTensor *model_output,
                   const I2vTensor *sample, I2vTensor *pred_original_sample,
                   I2vTensor *prev_sample) {
  I2vDdimStepInfo info;
  GError *err = NULL;
  if (!i2v_ddim_step_info(s, n, t, &info, &err)) {
    i2v_stream_fail(st, err);
    return;
  }
  /* The 0-d float32 tensors of diffusers: √ᾱ, √(1−ᾱ) for t and prev. */
  float sa = sqrtf(info.alpha_prod_t), sb = sqrtf(1.0f - info.alpha_prod_t);
  float sa_prev = sqrtf(info.alpha_prod_t_prev), sb_prev = sqrtf(1.0f - info.alpha_prod_t_prev);
  const I2vTensor *eps = model_output;
  if (s->prediction == I2V_PREDICTION_V) {
    /* x̂0 = √ᾱ·x − √(1−ᾱ)·v, then ε̂ = √ᾱ·v + √(1−ᾱ)·x straight into prev_sample (x is not
     * read again, so prev_sample may be sample itself). */
    i2v_op_axpby(st, pred_original_sample, sa, sample, -sb, model_output);
    i2v_op_axpby(st, prev_sample, sa, model_output, sb, sample);
    eps = prev_sample;
  } else {
    /* x̂0 = (x − √(1−ᾱ)·ε)/√ᾱ, with the division folded into the coefficients. */
    i2v_op_axpby(st, pred_original_sample, 1.0f / sa, sample, -sb / sa, model_output);
  }
  /* x_prev = √ᾱ_prev·x̂0 + √(1−ᾱ_prev)·ε̂ (the σ_t term is 0 with eta = 0). */
  i2v_op_axpby(st, prev_sample, sa_prev, pred_original_sample, sb_prev, eps);
}
