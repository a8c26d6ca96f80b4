/* The weight loader (loader.h). */
#include "loader.h"

I2vLoader i2v_loader(I2vWeights *w, I2vBackend *be, GPtrArray *params) {
  return (I2vLoader){.w = w, .be = be, .params = params};
}

gboolean i2v_loader_finish(I2vLoader *ld, GError **error) {
  if (ld->error == NULL) return TRUE;
  g_propagate_error(error, ld->error);
  ld->error = NULL;
  return FALSE;
}

gint64 i2v_params_count(const GPtrArray *params) {
  gint64 n = 0;
  for (guint i = 0; i < params->len; i++) n += i2v_tensor_numel(g_ptr_array_index(params, i));
  return n;
}

void i2v_params_free(GPtrArray *params) {
  if (params == NULL) return;
  for (guint i = 0; i < params->len; i++) i2v_tensor_free(g_ptr_array_index(params, i));
  g_ptr_array_unref(params);
}

/* "<prefix>.<name>" or prefix alone (g_free). */
static char *full_name(const char *prefix, const char *name) {
  return name != NULL ? g_strconcat(prefix, ".", name, NULL) : g_strdup(prefix);
}

void i2v_load_tensor(I2vLoader *ld, I2vTensor *t, const char *prefix, const char *name, int ndim,
                     const int64_t *shape, I2vLayout layout) {
  if (ld->error != NULL) return;
  char *full = full_name(prefix, name);
  if (i2v_weights_load(ld->w, ld->be, full, ndim, shape, layout, t, &ld->error))
    g_ptr_array_add(ld->params, t);
  g_free(full);
}

/* "<prefix>.<name>.<part>" (g_free). */
static char *part_name(const char *prefix, const char *name, const char *part) {
  return name != NULL ? g_strconcat(prefix, ".", name, ".", part, NULL)
                      : g_strconcat(prefix, ".", part, NULL);
}

/* Loads the weight of shape ws (ndim) in layout, and the bias [out] when asked. */
static void load_weight_bias(I2vLoader *ld, I2vLinear *l, const char *prefix, const char *name,
                             int ndim, const int64_t *ws, I2vLayout layout, gboolean bias) {
  char *w = part_name(prefix, name, "weight"), *b = part_name(prefix, name, "bias");
  i2v_load_tensor(ld, &l->w, w, NULL, ndim, ws, layout);
  if (bias) i2v_load_tensor(ld, &l->b, b, NULL, 1, ws, I2V_LAYOUT_AS_IS);
  g_free(w);
  g_free(b);
}

void i2v_load_linear(I2vLoader *ld, I2vLinear *l, const char *prefix, const char *name, int64_t out,
                     int64_t in, gboolean bias) {
  int64_t ws[2] = {out, in};
  load_weight_bias(ld, l, prefix, name, 2, ws, I2V_LAYOUT_AS_IS, bias);
}

void i2v_load_conv(I2vLoader *ld, I2vLinear *l, const char *prefix, const char *name, int64_t out,
                   int64_t in, int64_t k, gboolean bias) {
  int64_t ws[4] = {out, in, k, k};
  load_weight_bias(ld, l, prefix, name, 4, ws, I2V_LAYOUT_CONV2D, bias);
}

void i2v_load_norm(I2vLoader *ld, I2vNorm *n, const char *prefix, const char *name, int64_t c) {
  char *w = part_name(prefix, name, "weight"), *b = part_name(prefix, name, "bias");
  i2v_load_tensor(ld, &n->gamma, w, NULL, 1, &c, I2V_LAYOUT_AS_IS);
  i2v_load_tensor(ld, &n->beta, b, NULL, 1, &c, I2V_LAYOUT_AS_IS);
  g_free(w);
  g_free(b);
}

void i2v_load_stacked(I2vLoader *ld, I2vTensor *t, const char *prefix, const char *const *names,
                      int count, const char *suffix, int ndim, const int64_t *shape) {
  if (ld->error != NULL) return;
  char **full = g_new0(char *, count + 1);
  for (int i = 0; i < count; i++) full[i] = part_name(prefix, names[i], suffix);
  if (i2v_weights_load_stacked(ld->w, ld->be, (const char *const *)full, count, ndim, shape, t,
                               &ld->error))
    g_ptr_array_add(ld->params, t);
  g_strfreev(full);
}

const I2vTensor *i2v_linear_bias(const I2vLinear *l) {
  return l->b.data != NULL ? &l->b : NULL;
}

gboolean i2v_load_component(I2vModelDir *md, const char *component, I2vBackend *be,
                            GPtrArray *params, void (*load)(I2vLoader *ld, void *net), void *net,
                            GError **error) {
  I2vWeights *w = i2v_model_dir_weights(md, component, error);
  if (w == NULL) return FALSE;
  I2vLoader ld = i2v_loader(w, be, params);
  load(&ld, net);
  if (ld.error == NULL) i2v_weights_log_unused(w);
  i2v_weights_free(w);
  return i2v_loader_finish(&ld, error);
}
