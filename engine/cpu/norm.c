/* Normalisations on the CPU: two-pass statistics (mean, then biased variance) accumulated in
 * double, then one streaming pass that normalises, applies the affine and the activation. */
#include <omp.h>
#include <string.h>

#include "cpu_ops.h"

/* Per-sample workspace of a group norm: C doubles of per-channel sums, C floats each of the
 * per-channel mean and scale (rstd of the channel's group times gamma). */
typedef struct {
  double *acc;
  float *mean, *scale;
} GroupNormWork;

/* Sums acc[c] of x[t, c] (squares of x[t, c] - mean[c] when mean is given) over the T rows of
 * one sample, over all threads when parallel. */
static void channel_sums(const float *xs, int64_t T, int64_t C, const float *mean, double *acc,
                         int nt) {
  memset(acc, 0, (size_t)C * sizeof(double));
#pragma omp parallel for if (nt > 1) schedule(static) reduction(+ : acc[:C]) num_threads(nt)
  for (int64_t t = 0; t < T; t++) {
    const float *row = xs + t * C;
    if (mean == NULL) {
#pragma omp simd
      for (int64_t c = 0; c < C; c++) acc[c] += row[c];
    } else {
#pragma omp simd
      for (int64_t c = 0; c < C; c++) {
        double d = (double)row[c] - mean[c];
        acc[c] += d * d;
      }
    }
  }
}

/* Adds acc over the channels of each group, divided by count: one value per group, stored for
 * each of its channels in out. */
static void group_average(const double *acc, int64_t C, int groups, double count, float *out,
                          double *avg) {
  int64_t cg = C / groups;
  for (int g = 0; g < groups; g++) {
    double s = 0;
    for (int64_t c = g * cg; c < (g + 1) * cg; c++) s += acc[c];
    avg[g] = s / count;
    if (out != NULL)
      for (int64_t c = g * cg; c < (g + 1) * cg; c++) out[c] = (float)avg[g];
  }
}

static void group_norm_sample(float *ys, const float *xs, int64_t T, int64_t C, int groups,
                              const float *gamma, const float *beta, float eps, I2vAct act,
                              GroupNormWork *w, int nt) {
  double count = (double)T * (double)(C / groups), avg[groups];
  channel_sums(xs, T, C, NULL, w->acc, nt);
  group_average(w->acc, C, groups, count, w->mean, avg);
  channel_sums(xs, T, C, w->mean, w->acc, nt);
  group_average(w->acc, C, groups, count, NULL, avg);
  for (int64_t c = 0; c < C; c++)
    w->scale[c] = (float)(1.0 / sqrt(avg[c / (C / groups)] + eps)) * gamma[c];
  const float *mean = w->mean, *scale = w->scale;
#pragma omp parallel for if (nt > 1) schedule(static) num_threads(nt)
  for (int64_t t = 0; t < T; t++) {
    const float *xr = xs + t * C;
    float *yr = ys + t * C;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - mean[c]) * scale[c] + beta[c];
    i2v_cpu_act_row(yr, yr, C, act);
  }
}

void i2v_cpu_group_norm(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                        const I2vTensor *beta, int64_t samples, int groups, float eps, I2vAct act) {
  int64_t C = x->shape[x->ndim - 1], T = i2v_tensor_numel(x) / C / samples;
  const float *xd = x->data;
  float *yd = y->data;
  /* many samples (frames): a thread per sample; few (a video): all threads on each sample */
  int threads = i2v_cpu_threads(st);
  gboolean per_sample = samples % threads == 0 || samples >= 4 * threads;
  size_t per_thread = (size_t)C * (sizeof(double) + 2 * sizeof(float));
  size_t mark = i2v_scratch_mark(st);
  char *work = i2v_scratch_bytes(st, per_thread * (size_t)threads);
  if (work == NULL) return;
#pragma omp parallel for if (per_sample) schedule(static) num_threads(threads)
  for (int64_t s = 0; s < samples; s++) {
    char *mine = work + per_thread * (size_t)omp_get_thread_num();
    GroupNormWork w = {(double *)mine, (float *)(mine + C * sizeof(double)),
                       (float *)(mine + C * sizeof(double)) + C};
    group_norm_sample(yd + s * T * C, xd + s * T * C, T, C, groups, gamma->data, beta->data, eps,
                      act, &w, per_sample ? 1 : threads);
  }
  i2v_scratch_release(st, mark);
}

void i2v_cpu_layer_norm(I2vStream *st, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                        const I2vTensor *beta, float eps) {
  int nt = i2v_cpu_threads(st);
  int64_t C = x->shape[x->ndim - 1], rows = C ? i2v_tensor_numel(x) / C : 0;
  const float *xd = x->data, *gd = gamma->data, *bd = beta->data;
  float *yd = y->data;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = xd + r * C;
    float *yr = yd + r * C;
    double sum = 0, var = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < C; c++) sum += xr[c];
    double mean = sum / C;
#pragma omp simd reduction(+ : var)
    for (int64_t c = 0; c < C; c++) var += (xr[c] - mean) * (xr[c] - mean);
    float m = (float)mean, rstd = (float)(1.0 / sqrt(var / C + eps));
#pragma omp simd
    for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - m) * rstd * gd[c] + bd[c];
  }
}
