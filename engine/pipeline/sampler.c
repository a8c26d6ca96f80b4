/* The sampler interface (sampler.h) over DDIM and DPM-Solver++ 2M, and the public sampler names
 * (i2v.h). Each kind is a table of functions; a run holds the kind's state between steps. */
#include "sampler.h"

#include <math.h>

#include "dpmpp.h"
#include "echo.h"
#include "ops.h"
#include <i2v/error.h>

typedef struct {
  int (*max_steps)(const I2vSampler *s);
  gboolean (*timesteps)(const I2vSampler *s, int n, int64_t *out, GError **error);
  gboolean (*start)(I2vSamplerRun *r, int ndim, const int64_t *shape, GError **error);
  void (*start_levels)(const I2vSamplerRun *r, double *signal, double *noise);
  const I2vTensor *(*step)(I2vSamplerRun *r, const I2vTensor *model_output, I2vTensor *sample);
  void (*clear)(I2vSamplerRun *r);
} SamplerOps;

struct I2vSampler {
  const SamplerOps *ops;
  const I2vDdim *ddim;
  I2vDpmpp *dpmpp; /* DPM-Solver++ only */
};

struct I2vSamplerRun {
  const I2vSampler *s;
  I2vStream *st;
  int n, index;       /* step count, next step */
  int64_t *timesteps; /* [n] */
  I2vTensor x0;       /* DDIM's x̂0 */
  I2vDpmppRun dpmpp;  /* DPM-Solver++'s state */
};

/* ---- DDIM: stateless; the run only counts steps ---- */

static int ddim_max_steps(const I2vSampler *s) {
  return i2v_ddim_max_steps(s->ddim);
}

static gboolean ddim_timesteps(const I2vSampler *s, int n, int64_t *out, GError **error) {
  return i2v_ddim_timesteps(s->ddim, n, out, error);
}

static gboolean ddim_start(I2vSamplerRun *r, int ndim, const int64_t *shape, GError **error) {
  (void)error;
  r->x0 = i2v_scratch_tensor(r->st, ndim, shape);
  return TRUE;
}

static void ddim_start_levels(const I2vSamplerRun *r, double *signal, double *noise) {
  double abar = i2v_ddim_alphas_cumprod(r->s->ddim)[r->timesteps[r->index]];
  *signal = sqrt(abar);
  *noise = sqrt(1 - abar);
}

static const I2vTensor *ddim_step(I2vSamplerRun *r, const I2vTensor *model_output,
                                  I2vTensor *sample) {
  i2v_ddim_step(r->s->ddim, r->st, r->n, r->timesteps[r->index], model_output, sample, &r->x0,
                sample);
  return &r->x0;
}

static void ddim_clear(I2vSamplerRun *r) {
  (void)r;
}

static const SamplerOps ddim_ops = {ddim_max_steps,    ddim_timesteps, ddim_start,
                                    ddim_start_levels, ddim_step,      ddim_clear};

/* ---- DPM-Solver++ 2M: the run keeps the previous x̂0 ---- */

static int dpmpp_max_steps(const I2vSampler *s) {
  return i2v_dpmpp_max_steps(s->dpmpp);
}

static gboolean dpmpp_timesteps(const I2vSampler *s, int n, int64_t *out, GError **error) {
  return i2v_dpmpp_timesteps(s->dpmpp, n, out, error);
}

static gboolean dpmpp_start(I2vSamplerRun *r, int ndim, const int64_t *shape, GError **error) {
  return i2v_dpmpp_run_init(&r->dpmpp, r->s->dpmpp, r->st, r->n, r->index, ndim, shape, error);
}

static void dpmpp_start_levels(const I2vSamplerRun *r, double *signal, double *noise) {
  float alpha, sigma;
  i2v_dpmpp_alpha_sigma(r->dpmpp.sigmas[r->index], &alpha, &sigma);
  *signal = alpha;
  *noise = sigma;
}

static const I2vTensor *dpmpp_step(I2vSamplerRun *r, const I2vTensor *model_output,
                                   I2vTensor *sample) {
  i2v_dpmpp_step(&r->dpmpp, r->st, model_output, sample);
  return &r->dpmpp.x0;
}

static void dpmpp_clear(I2vSamplerRun *r) {
  i2v_dpmpp_run_clear(&r->dpmpp);
}

static const SamplerOps dpmpp_ops = {dpmpp_max_steps,    dpmpp_timesteps, dpmpp_start,
                                     dpmpp_start_levels, dpmpp_step,      dpmpp_clear};

/* ---- the interface ---- */

I2vSampler *i2v_sampler_new(I2vSamplerKind kind, const I2vDdim *ddim) {
  I2vSampler *s = g_new0(I2vSampler, 1);
  s->ddim = ddim;
  s->ops = &ddim_ops;
  if (kind == I2V_SAMPLER_DPMPP_2M) {
    s->ops = &dpmpp_ops;
    s->dpmpp = i2v_dpmpp_new(ddim);
  }
  return s;
}

void i2v_sampler_free(I2vSampler *s) {
  if (s == NULL) return;
  i2v_dpmpp_free(s->dpmpp);
  g_free(s);
}

int i2v_sampler_max_steps(const I2vSampler *s) {
  return s->ops->max_steps(s);
}

gboolean i2v_sampler_timesteps(const I2vSampler *s, int n, int64_t *out, GError **error) {
  return s->ops->timesteps(s, n, out, error);
}

I2vSamplerRun *i2v_sampler_start(const I2vSampler *s, I2vStream *st, int n, int first, int ndim,
                                 const int64_t *shape, GError **error) {
  if (n < 1 || n > i2v_sampler_max_steps(s) || first < 0 || first >= n) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "a run of %d steps from step %d is out of range (expected 1..%d steps)", n, first,
                i2v_sampler_max_steps(s));
    return NULL;
  }
  I2vSamplerRun *r = g_new0(I2vSamplerRun, 1);
  r->s = s;
  r->st = st;
  r->n = n;
  r->index = first;
  r->timesteps = g_new(int64_t, n);
  if (!i2v_sampler_timesteps(s, n, r->timesteps, error) || !s->ops->start(r, ndim, shape, error)) {
    i2v_sampler_run_free(r);
    return NULL;
  }
  return r;
}

void i2v_sampler_run_free(I2vSamplerRun *r) {
  if (r == NULL) return;
  r->s->ops->clear(r);
  g_free(r->timesteps);
  g_free(r);
}

void i2v_sampler_start_levels(const I2vSamplerRun *r, double *signal, double *noise) {
  r->s->ops->start_levels(r, signal, noise);
}

const I2vTensor *i2v_sampler_step(I2vSamplerRun *r, const I2vTensor *model_output,
                                  I2vTensor *sample) {
  if (r->index >= r->n) {
    i2v_stream_fail(r->st, g_error_new(I2V_ERROR, I2V_ERROR_INVALID,
                                       "sampler step %d of a %d-step run", r->index + 1, r->n));
    return NULL;
  }
  const I2vTensor *x0 = r->s->ops->step(r, model_output, sample);
  r->index++;
  return x0;
}

/* ---- names ---- */

static const char *const sampler_names[I2V_SAMPLER_COUNT] = {"ddim", "dpmpp-2m"};

gboolean i2v_sampler_parse(const char *name, I2vSamplerKind *out, GError **error) {
  const char *wanted = name != NULL && *name != '\0' ? name : "ddim";
  for (int k = 0; k < I2V_SAMPLER_COUNT; k++) {
    if (g_ascii_strcasecmp(wanted, sampler_names[k]) == 0) {
      *out = (I2vSamplerKind)k;
      return TRUE;
    }
  }
  char *shown = i2v_quote_value(name);
  g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID, "unknown sampler %s (expected ddim or dpmpp-2m)",
              shown);
  g_free(shown);
  return FALSE;
}

const char *i2v_sampler_name(I2vSamplerKind k) {
  return k >= 0 && k < I2V_SAMPLER_COUNT ? sampler_names[k] : "invalid";
}
