/* SplitMix64 + Box–Muller: see noise.h for the normative description. */
#include "noise.h"

#include <math.h>

static guint64 splitmix64_next(guint64 *state) {
  guint64 z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void i2v_noise_normal(guint64 seed, guint64 stream, float *out, int64_t n) {
  guint64 state = seed ^ (stream * 0xD1B54A32D192ED03ull);
  for (int64_t i = 0; i < n; i += 2) {
    double u1 = (double)((splitmix64_next(&state) >> 11) + 1) * 0x1p-53;
    double u2 = (double)(splitmix64_next(&state) >> 11) * 0x1p-53;
    double r = sqrt(-2.0 * log(u1));
    out[i] = (float)(r * cos(2.0 * M_PI * u2));
    if (i + 1 < n) out[i + 1] = (float)(r * sin(2.0 * M_PI * u2));
  }
}
