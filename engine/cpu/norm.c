/* Normalisations on the CPU: two-pass statistics (mean, then biased variance) in double. */
#include "cpu_ops.h"

void cpu_group_norm(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                    const I2vTensor *beta, int64_t samples, int groups, float eps, I2vAct act) {
  (void)be;
  int64_t C = x->shape[x->ndim - 1], T = i2v_tensor_numel(x) / C / samples, cg = C / groups;
  const float *xd = x->data, *gd = gamma->data, *bd = beta->data;
  float *yd = y->data;
  double count = (double)T * (double)cg;
  /* one (sample, group) per task: it reads T strided runs of cg channels, writes the same */
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t s = 0; s < samples; s++) {
    for (int g = 0; g < groups; g++) {
      const float *xs = xd + s * T * C + g * cg;
      float *ys = yd + s * T * C + g * cg;
      double sum = 0;
      for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < cg; c++) sum += xs[t * C + c];
      double mean = sum / count, var = 0;
      for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < cg; c++) {
          double d = xs[t * C + c] - mean;
          var += d * d;
        }
      float m = (float)mean, rstd = (float)(1.0 / sqrt(var / count + eps));
      const float *gg = gd + g * cg, *bg = bd + g * cg;
      for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < cg; c++)
          ys[t * C + c] = cpu_act1((xs[t * C + c] - m) * rstd * gg[c] + bg[c], act);
    }
  }
}

void cpu_layer_norm(I2vBackend *be, I2vTensor *y, const I2vTensor *x, const I2vTensor *gamma,
                    const I2vTensor *beta, float eps) {
  (void)be;
  int64_t C = x->shape[x->ndim - 1], rows = C ? i2v_tensor_numel(x) / C : 0;
  const float *xd = x->data, *gd = gamma->data, *bd = beta->data;
  float *yd = y->data;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = xd + r * C;
    float *yr = yd + r * C;
    double sum = 0, var = 0;
    for (int64_t c = 0; c < C; c++) sum += xr[c];
    double mean = sum / C;
    for (int64_t c = 0; c < C; c++) var += (xr[c] - mean) * (xr[c] - mean);
    float m = (float)mean, rstd = (float)(1.0 / sqrt(var / C + eps));
    for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - m) * rstd * gd[c] + bd[c];
  }
}
