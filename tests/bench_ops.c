/* Times the CPU ops that dominate the UNet at real size (3×3 conv 320→320 on 64×64 frames, a
 * 320→320 linear, spatial attention over 4096 tokens) and prints GFLOP/s. Not a test: run by hand
 * (`build/tests/bench-ops [frames]`) when changing engine/cpu/. */
#include <math.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>

#include "cpu_backend.h"
#include "ops.h"

static I2vTensor make(I2vBackend *be, int ndim, const int64_t *shape) {
  I2vTensor t;
  g_assert_true(i2v_tensor_alloc(be, &t, I2V_DTYPE_F32, ndim, shape, NULL));
  float *d = t.data;
  for (int64_t i = 0; i < i2v_tensor_numel(&t); i++)
    d[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
  return t;
}

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs fn once to warm the arena and caches, then best of 3: GFLOP/s of wall time, and per
 * CPU-second of this process (steadier when other processes share the cores). */
static void report(const char *what, double flops, void (*fn)(void *), void *arg) {
  fn(arg);
  double best = INFINITY, best_cpu = INFINITY;
  for (int rep = 0; rep < 3; rep++) {
    double c0 = cpu_seconds();
    gint64 t0 = g_get_monotonic_time();
    fn(arg);
    best = MIN(best, (g_get_monotonic_time() - t0) / 1e6);
    best_cpu = MIN(best_cpu, cpu_seconds() - c0);
  }
  printf("%-48s %7.3f s %7.1f GFLOP/s  (%6.1f GFLOP per CPU-second)\n", what, best,
         flops / best / 1e9, flops / best_cpu / 1e9);
}

typedef struct {
  I2vStream *st;
  I2vTensor x, w, b, y;
  I2vConvParams p;
  I2vSeqView q, k, v, o;
  I2vAttnShape s;
} Bench;

static void run_conv(void *arg) {
  Bench *c = arg;
  i2v_op_conv2d(c->st, &c->y, &c->x, &c->w, &c->b, &c->p, FALSE);
  g_assert_true(i2v_stream_check(c->st, NULL));
}

static void run_linear(void *arg) {
  Bench *c = arg;
  i2v_op_linear(c->st, &c->y, &c->x, &c->w, &c->b, I2V_ACT_NONE, FALSE);
  g_assert_true(i2v_stream_check(c->st, NULL));
}

static void run_attention(void *arg) {
  Bench *c = arg;
  i2v_op_attention(c->st, &c->o, &c->q, &c->k, &c->v, &c->s);
  g_assert_true(i2v_stream_check(c->st, NULL));
}

static void run_group_norm(void *arg) {
  Bench *c = arg;
  i2v_op_group_norm(c->st, &c->y, &c->x, &c->w, &c->b, c->x.shape[0], 32, 1e-5f, I2V_ACT_SILU);
  g_assert_true(i2v_stream_check(c->st, NULL));
}

int main(int argc, char **argv) {
  int64_t frames = argc > 1 ? atoll(argv[1]) : 4, hw = 64, C = 320, T = hw * hw;
  I2vBackend *be = i2v_cpu_backend_new(0);
  I2vStream *stream = i2v_stream_new(be, NULL);
  Bench c = {.st = stream, .p = {1, 1, 1, 1, 1}};
  c.x = make(be, 4, (int64_t[]){frames, hw, hw, C});
  c.y = make(be, 4, (int64_t[]){frames, hw, hw, C});
  c.w = make(be, 4, (int64_t[]){C, 3, 3, C});
  c.b = make(be, 1, (int64_t[]){C});
  char what[96];
  g_snprintf(what, sizeof what,
             "conv2d 3x3 %" G_GINT64_FORMAT "->%" G_GINT64_FORMAT " on %" G_GINT64_FORMAT "x64x64",
             C, C, frames);
  report(what, 2.0 * frames * T * 9 * C * C, run_conv, &c);
  i2v_tensor_free(&c.w);
  c.w = make(be, 2, (int64_t[]){C, C});
  report("linear 320->320 on frames x 4096 rows", 2.0 * frames * T * C * C, run_linear, &c);
  /* spatial self-attention per frame: 5 heads × 64 over 4096 tokens */
  int64_t stride = T * C;
  c.q = (I2vSeqView){&c.x, 0, stride, 0, C};
  c.k = c.q, c.v = c.q;
  c.o = (I2vSeqView){&c.y, 0, stride, 0, C};
  c.s = (I2vAttnShape){frames, 1, 1, T, T, (int)(C / 64), 64, 0.125f, FALSE};
  report("attention 4096 tokens, 5 heads x 64, per frame", 4.0 * frames * T * T * C, run_attention,
         &c);
  /* temporal self-attention over the frames of every pixel: 5 heads × 64, frames tokens */
  c.q = (I2vSeqView){&c.x, 0, frames * stride, C, stride};
  c.k = c.q, c.v = c.q;
  c.o = (I2vSeqView){&c.y, 0, frames * stride, C, stride};
  c.s = (I2vAttnShape){1, T, 1, frames, frames, (int)(C / 64), 64, 0.125f, FALSE};
  report("attention over frames, 4096 pixels x 5 heads", 4.0 * T * frames * frames * C,
         run_attention, &c);
  i2v_tensor_free(&c.w);
  c.w = make(be, 1, (int64_t[]){C}); /* gamma */
  report("group_norm+silu (GFLOP/s = Gelements/s)", (double)frames * T * C, run_group_norm, &c);
  i2v_tensor_free(&c.x), i2v_tensor_free(&c.y), i2v_tensor_free(&c.w), i2v_tensor_free(&c.b);
  i2v_stream_free(stream);
  i2v_backend_free(be);
  return 0;
}
