/* Loading a network's weights by name: the one loader every network uses. It keeps the first
 * error (later loads are skipped, so a network's loader is a plain list of loads with one check at
 * the end) and every tensor it made, so a half-loaded network is freed in one call. */
#pragma once

#include "model_dir.h"

G_BEGIN_DECLS

/* A weight with an optional bias (Linear, Conv2d, temporal Conv3d); b.data is NULL without
 * bias. Convolution weights are stored [Co, kh, kw, Ci] (ops.h). */
typedef struct {
  I2vTensor w, b;
} I2vLinear;

/* The affine parameters of a GroupNorm / LayerNorm. */
typedef struct {
  I2vTensor gamma, beta;
} I2vNorm;

typedef struct {
  I2vWeights *w;
  I2vBackend *be;
  GPtrArray *params; /* I2vTensor * of every loaded weight (the network's fields) */
  GError *error;     /* the first failure, or NULL */
} I2vLoader;

/* A loader over weights w onto be, recording into params (a network's array). */
I2vLoader i2v_loader(I2vWeights *w, I2vBackend *be, GPtrArray *params);

/* Moves the loader's error into error: TRUE when every load succeeded. */
gboolean i2v_loader_finish(I2vLoader *ld, GError **error);

/* The number of parameters in params (the elements of its tensors). */
gint64 i2v_params_count(const GPtrArray *params);

/* Frees every tensor in params and the array (NULL allowed). */
void i2v_params_free(GPtrArray *params);

/* Loads tensor "<prefix>.<name>" ("<prefix>" when name is NULL) of the given PyTorch shape. */
void i2v_load_tensor(I2vLoader *ld, I2vTensor *t, const char *prefix, const char *name, int ndim,
                     const int64_t *shape, I2vLayout layout);

/* Loads "<prefix>.<name>.weight" [out, in] and, with bias, "....bias" [out]. */
void i2v_load_linear(I2vLoader *ld, I2vLinear *l, const char *prefix, const char *name, int64_t out,
                     int64_t in, gboolean bias);

/* Loads a k×k Conv2d "<prefix>.<name>.weight" [out, in, k, k] (rearranged for the op table) and
 * its bias [out] (with bias). */
void i2v_load_conv(I2vLoader *ld, I2vLinear *l, const char *prefix, const char *name, int64_t out,
                   int64_t in, int64_t k, gboolean bias);

/* Loads a norm's "<prefix>.<name>.weight" and ".bias" of c channels. */
void i2v_load_norm(I2vLoader *ld, I2vNorm *n, const char *prefix, const char *name, int64_t c);

/* Loads "<prefix>.<names[i]>.<suffix>" (i < count), each of shape, stacked along dim 0 into t (q,
 * k and v projections packed for one GEMM). */
void i2v_load_stacked(I2vLoader *ld, I2vTensor *t, const char *prefix, const char *const *names,
                      int count, const char *suffix, int ndim, const int64_t *shape);

/* Loads a network's weights from md's component: opens them, runs load(ld, net) with a loader
 * onto be recording into params, and returns the first failure; logs the file's tensors no load
 * asked for. */
gboolean i2v_load_component(I2vModelDir *md, const char *component, I2vBackend *be,
                            GPtrArray *params, void (*load)(I2vLoader *ld, void *net), void *net,
                            GError **error);

/* l's bias, or NULL when it has none (for the ops' optional bias). */
const I2vTensor *i2v_linear_bias(const I2vLinear *l);

G_END_DECLS
