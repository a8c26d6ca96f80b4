/* Weight sources and loading weights into a backend.
 *
 * A network asks for each tensor by its checkpoint name and the shape its config implies. The
 * source is either a safetensors file set (the real Hugging Face layout) or the integer formula of
 * the realcfg fixtures' README (real-size models without a weight file). Loading checks the name
 * and the shape (first mismatch reported as name, expected shape, found shape), converts to the
 * backend's weight dtype and applies the layout change the op table wants. */
#pragma once

#include "backend.h"
#include "lora.h"
#include "safetensors.h"

G_BEGIN_DECLS

typedef struct I2vWeights I2vWeights;

/* How a tensor is laid out for the op table. */
typedef enum {
  I2V_LAYOUT_AS_IS,      /* linear [out,in], norms, biases, embeddings */
  I2V_LAYOUT_CONV2D,     /* PyTorch [Co,Ci,kh,kw] → [Co,kh,kw,Ci] */
  I2V_LAYOUT_CONV_FRAMES /* PyTorch Conv3d [Co,Ci,3,1,1] → [Co,3,Ci] */
} I2vLayout;

/* Weights from a safetensors file or shard index (takes ownership of st). component names the
 * model part in messages ("unet"). Free with i2v_weights_free. */
I2vWeights *i2v_weights_new_safetensors(I2vSafetensors *st, const char *component);

/* Weights from the README-realcfg formula with the given 64-bit set seed. */
I2vWeights *i2v_weights_new_formula(guint64 seed, const char *component);

/* Receives each tensor a network loader asks a recording source for (PyTorch name and shape). */
typedef void (*I2vWeightsRecordFn)(const char *component, const char *name, int ndim,
                                   const int64_t *shape, void *user);

/* A recording source: every load reports (name, shape) to fn and returns a tensor with that
 * shape and no memory. Running a network's loader against it lists the tensors the network
 * reads (i2vgen mkmodel writes exactly those). */
I2vWeights *i2v_weights_new_recorder(const char *component, I2vWeightsRecordFn fn, void *user);

/* Frees the source (NULL allowed). */
void i2v_weights_free(I2vWeights *w);

/* Merges lora (borrowed: it must outlive w) into every weight w loads that one of its modules
 * targets (lora.h). */
void i2v_weights_set_lora(I2vWeights *w, I2vLora *lora);

/* The scale s of the formula rule that applies to tensor name (values u·s, or 1 + u·s for a norm
 * scale, which sets *norm). */
double i2v_formula_scale(const char *name, int ndim, const int64_t *shape, gboolean *norm);

/* Fills out (float32, row-major) with the formula values of tensor name of the given shape. */
void i2v_formula_fill(const char *name, int ndim, const int64_t *shape, guint64 seed, float *out);

/* Loads tensor name of the expected PyTorch shape into a new backend tensor (dtype
 * be->weight_dtype, layout applied, LoRA deltas merged). Errors: missing tensor, wrong shape,
 * non-float dtype, a NaN or infinity in the file, a LoRA delta of another shape — each naming the
 * component, the file and the tensor. Marks the tensor used. */
gboolean i2v_weights_load(I2vWeights *w, I2vBackend *be, const char *name, int ndim,
                          const int64_t *shape, I2vLayout layout, I2vTensor *out, GError **error);

/* Loads count tensors of the same PyTorch shape (names[i], layout AS_IS) stacked along dim 0
 * into one new backend tensor [count·shape[0], ...] — e.g. q, k and v projections packed for a
 * single GEMM. Same checks and errors as i2v_weights_load. */
gboolean i2v_weights_load_stacked(I2vWeights *w, I2vBackend *be, const char *const *names,
                                  int count, int ndim, const int64_t *shape, I2vTensor *out,
                                  GError **error);

/* Convenience forms of i2v_weights_load for 1-D ([n]) and 2-D ([a,b]) tensors. */
gboolean i2v_weights_load_1d(I2vWeights *w, I2vBackend *be, const char *name, int64_t n,
                             I2vTensor *out, GError **error);
gboolean i2v_weights_load_2d(I2vWeights *w, I2vBackend *be, const char *name, int64_t a, int64_t b,
                             I2vTensor *out, GError **error);

/* Conv2d weight [co,ci,k,k] with layout CONV2D. */
gboolean i2v_weights_load_conv(I2vWeights *w, I2vBackend *be, const char *name, int64_t co,
                               int64_t ci, int64_t k, I2vTensor *out, GError **error);

/* TRUE if the source has tensor name (always TRUE for formula weights). */
gboolean i2v_weights_has(I2vWeights *w, const char *name);

/* Logs (g_info, domain "i2v") every tensor of the file that no load asked for; returns the count.
 */
guint i2v_weights_log_unused(I2vWeights *w);

/* Number of parameters loaded so far (for the parameter-count checks). */
gint64 i2v_weights_loaded_params(const I2vWeights *w);

G_END_DECLS
