/* Weight sources (a safetensors set or the README-realcfg integer formula) and loading a tensor
 * into a backend: name and shape check, dtype conversion, layout change, bookkeeping. */
#include "weights.h"

#include <math.h>
#include <string.h>

#include <i2v/error.h>

struct I2vWeights {
  char *component;           /* "unet", for messages */
  I2vSafetensors *st;        /* NULL for formula weights */
  guint64 seed;              /* formula set seed */
  GHashTable *used;          /* names asked for (owned strings) */
  I2vWeightsRecordFn record; /* recording source: report and allocate nothing */
  void *record_user;
  gint64 loaded_params;
  I2vLora *lora; /* merged into the weights it targets (borrowed) */
};

static I2vWeights *weights_new(const char *component) {
  I2vWeights *w = g_new0(I2vWeights, 1);
  w->component = g_strdup(component);
  w->used = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  return w;
}

I2vWeights *i2v_weights_new_safetensors(I2vSafetensors *st, const char *component) {
  I2vWeights *w = weights_new(component);
  w->st = st;
  return w;
}

I2vWeights *i2v_weights_new_formula(guint64 seed, const char *component) {
  I2vWeights *w = weights_new(component);
  w->seed = seed;
  return w;
}

I2vWeights *i2v_weights_new_recorder(const char *component, I2vWeightsRecordFn fn, void *user) {
  I2vWeights *w = weights_new(component);
  w->record = fn;
  w->record_user = user;
  return w;
}

void i2v_weights_free(I2vWeights *w) {
  if (w == NULL) return;
  i2v_safetensors_close(w->st);
  g_hash_table_unref(w->used);
  g_free(w->component);
  g_free(w);
}

void i2v_weights_set_lora(I2vWeights *w, I2vLora *lora) {
  w->lora = lora;
}

/* ---- the formula of README-realcfg.md section 2 ---- */

static guint64 fnv1a64(const char *s) {
  guint64 h = 0xcbf29ce484222325ULL;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    h ^= *p;
    h *= 0x100000001b3ULL;
  }
  return h;
}

/* Output number i (0-based) of the SplitMix64 stream whose state starts at key. */
static inline guint64 splitmix64_at(guint64 key, guint64 i) {
  guint64 z = key + (i + 1) * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double i2v_formula_scale(const char *name, int ndim, const int64_t *shape, gboolean *norm) {
  int64_t fan_in = 1;
  for (int d = 1; d < ndim; d++) fan_in *= shape[d];
  /* the rules of section 2.3, first match wins */
  *norm = FALSE;
  if (ndim == 2 && (g_str_has_suffix(name, "token_embedding.weight") ||
                    g_str_has_suffix(name, "position_embedding.weight")))
    return 0x1p-6; /* R1 embedding table */
  if (ndim == 2 &&
      (g_str_has_suffix(name, "to_q.weight") || g_str_has_suffix(name, "to_k.weight") ||
       g_str_has_suffix(name, "q_proj.weight") || g_str_has_suffix(name, "k_proj.weight")))
    return 2.0 / sqrt((double)fan_in);              /* R2q attention query/key */
  if (ndim >= 2) return 1.0 / sqrt((double)fan_in); /* R2 matrix / kernel */
  if (g_str_has_suffix(name, ".weight")) {
    *norm = TRUE; /* R3 norm scale: 1 + u/8 */
    return 0x1p-3;
  }
  return 0x1p-6; /* R4 bias, R5 other */
}

void i2v_formula_fill(const char *name, int ndim, const int64_t *shape, guint64 seed, float *out) {
  guint64 key = fnv1a64(name) ^ seed;
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  gboolean norm;
  double s = i2v_formula_scale(name, ndim, shape, &norm);
  double offset = norm ? 1.0 : 0.0; /* 1 + u·s and 0 + u·s are both exact sums */
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    double u = (double)(splitmix64_at(key, (guint64)i) >> 40) * 0x1p-23 - 1.0;
    out[i] = (float)(offset + u * s);
  }
}

/* ---- loading ---- */

/* [a, b, S] → [a, S, b] (S = product of the trailing dims): moves PyTorch's input-channel dim of
 * a conv kernel last, the channels-last layout the op table wants. */
static void move_dim1_last(float *dst, const float *src, int64_t a, int64_t b, int64_t s) {
#pragma omp parallel for schedule(static) if (a * b * s > 65536)
  for (int64_t o = 0; o < a; o++)
    for (int64_t i = 0; i < b; i++)
      for (int64_t k = 0; k < s; k++) dst[(o * s + k) * b + i] = src[(o * b + i) * s + k];
}

/* The shape the op table sees for a PyTorch shape under layout; FALSE if the layout does not fit
 * the shape (a bug in the calling network, reported as an error). */
static gboolean layout_shape(I2vLayout layout, int ndim, const int64_t *shape, int *out_ndim,
                             int64_t *out_shape) {
  switch (layout) {
  case I2V_LAYOUT_AS_IS:
    *out_ndim = ndim;
    memcpy(out_shape, shape, sizeof(int64_t) * ndim);
    return TRUE;
  case I2V_LAYOUT_CONV2D:
    if (ndim != 4) return FALSE;
    *out_ndim = 4;
    out_shape[0] = shape[0], out_shape[1] = shape[2], out_shape[2] = shape[3];
    out_shape[3] = shape[1];
    return TRUE;
  case I2V_LAYOUT_CONV_FRAMES:
    if (ndim != 5 || shape[3] != 1 || shape[4] != 1) return FALSE;
    *out_ndim = 3;
    out_shape[0] = shape[0], out_shape[1] = shape[2], out_shape[2] = shape[1];
    return TRUE;
  }
  return FALSE;
}

/* Checks name's presence, shape and dtype in the file and that its values are finite (one pass
 * over the mapped bytes before they are converted or uploaded); returns its entry or NULL with
 * error. */
static const I2vSafetensorsEntry *find_checked(I2vWeights *w, const char *name, int ndim,
                                               const int64_t *shape, GError **error) {
  const I2vSafetensorsEntry *e = i2v_safetensors_find(w->st, name);
  if (e == NULL) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_MISSING, "%s: tensor '%s' missing from %s",
                w->component, name, i2v_safetensors_path(w->st));
    return NULL;
  }
  if (!i2v_shape_equal(e->ndim, e->shape, ndim, shape)) {
    char found[128], expected[128];
    g_set_error(error, I2V_ERROR, I2V_ERROR_SHAPE,
                "%s: tensor '%s' in %s has shape %s, expected %s", w->component, name, e->file,
                i2v_shape_format(e->ndim, e->shape, found, sizeof found),
                i2v_shape_format(ndim, shape, expected, sizeof expected));
    return NULL;
  }
  if (e->dtype != I2V_DTYPE_F32 && e->dtype != I2V_DTYPE_F16 && e->dtype != I2V_DTYPE_BF16) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_SHAPE,
                "%s: tensor '%s' in %s has dtype %s, expected a float dtype (F32, F16 or BF16)",
                w->component, name, e->file, i2v_dtype_name(e->dtype));
    return NULL;
  }
  GError *err = NULL;
  if (!i2v_safetensors_check_finite(e, &err)) {
    g_set_error(error, err->domain, err->code, "%s: %s", w->component, err->message);
    g_error_free(err);
    return NULL;
  }
  return e;
}

/* The float32 values of name in PyTorch layout (new buffer, g_free): from the file when it has
 * an entry, else from the formula. */
static float *source_values(I2vWeights *w, const I2vSafetensorsEntry *e, const char *name, int ndim,
                            const int64_t *shape, int64_t n) {
  if (e != NULL) {
    I2vTensor t;
    gboolean ok = i2v_safetensors_read_f32(w->st, name, &t, NULL);
    g_assert(ok); /* find_checked saw the entry and its float dtype */
    return t.data;
  }
  float *values = g_new(float, MAX(n, 1));
  i2v_formula_fill(name, ndim, shape, w->seed, values);
  return values;
}

gboolean i2v_weights_load(I2vWeights *w, I2vBackend *be, const char *name, int ndim,
                          const int64_t *shape, I2vLayout layout, I2vTensor *out, GError **error) {
  memset(out, 0, sizeof(*out));
  int out_ndim;
  int64_t out_shape[I2V_MAX_DIMS];
  if (!layout_shape(layout, ndim, shape, &out_ndim, out_shape)) {
    char buf[128];
    g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
                "%s: tensor '%s': layout %d does not apply to shape %s", w->component, name,
                (int)layout, i2v_shape_format(ndim, shape, buf, sizeof buf));
    return FALSE;
  }
  if (w->record != NULL) { /* listing only: the shape, no memory */
    w->record(w->component, name, ndim, shape, w->record_user);
    i2v_tensor_set_shape(out, i2v_backend_weight_dtype(be), out_ndim, out_shape);
    if (g_hash_table_add(w->used, g_strdup(name))) w->loaded_params += i2v_tensor_numel(out);
    return TRUE;
  }
  const I2vSafetensorsEntry *e = NULL;
  if (w->st != NULL && (e = find_checked(w, name, ndim, shape, error)) == NULL) return FALSE;
  if (!i2v_tensor_alloc(be, out, i2v_backend_weight_dtype(be), out_ndim, out_shape, error))
    return FALSE;

  int64_t n = i2v_tensor_numel(out);
  if (i2v_backend_counts_only(be)) { /* a plan: the memory, not the values */
    if (g_hash_table_add(w->used, g_strdup(name))) w->loaded_params += n;
    return TRUE;
  }
  gboolean ok;
  gboolean lora = i2v_lora_targets(w->lora, w->component, name);
  if (e != NULL && layout == I2V_LAYOUT_AS_IS && e->dtype == i2v_backend_weight_dtype(be) &&
      !lora) {
    ok = i2v_tensor_write(out, e->data, error); /* straight from the mapping */
  } else {
    float *values = source_values(w, e, name, ndim, shape, n);
    if (lora && !i2v_lora_apply(w->lora, w->component, name, ndim, shape, values, error)) {
      g_free(values);
      i2v_tensor_free(out);
      return FALSE;
    }
    if (layout != I2V_LAYOUT_AS_IS) {
      float *moved = g_new(float, MAX(n, 1));
      move_dim1_last(moved, values, shape[0], shape[1], n / MAX(shape[0] * shape[1], 1));
      g_free(values);
      values = moved;
    }
    ok = i2v_tensor_write_f32(out, values, error);
    g_free(values);
  }
  if (!ok) {
    i2v_tensor_free(out);
    return FALSE;
  }
  if (g_hash_table_add(w->used, g_strdup(name))) w->loaded_params += n;
  return TRUE;
}

gboolean i2v_weights_load_stacked(I2vWeights *w, I2vBackend *be, const char *const *names,
                                  int count, int ndim, const int64_t *shape, I2vTensor *out,
                                  GError **error) {
  memset(out, 0, sizeof(*out));
  int64_t stacked[I2V_MAX_DIMS], part = 1;
  memcpy(stacked, shape, sizeof(int64_t) * ndim);
  stacked[0] *= count;
  for (int d = 0; d < ndim; d++) part *= shape[d];
  float *values = NULL;
  for (int i = 0; i < count; i++) {
    if (w->record != NULL) {
      w->record(w->component, names[i], ndim, shape, w->record_user);
      continue;
    }
    const I2vSafetensorsEntry *e = NULL;
    if (w->st != NULL && (e = find_checked(w, names[i], ndim, shape, error)) == NULL) {
      g_free(values);
      return FALSE;
    }
    if (i2v_backend_counts_only(be)) continue; /* a plan: the memory, not the values */
    if (values == NULL) values = g_new(float, MAX(part * count, 1));
    float *v = source_values(w, e, names[i], ndim, shape, part);
    memcpy(values + i * part, v, sizeof(float) * part);
    g_free(v);
    if (!i2v_lora_apply(w->lora, w->component, names[i], ndim, shape, values + i * part, error)) {
      g_free(values);
      return FALSE;
    }
  }
  for (int i = 0; i < count; i++)
    if (g_hash_table_add(w->used, g_strdup(names[i]))) w->loaded_params += part;
  if (w->record != NULL) { /* listing only: the shape, no memory */
    i2v_tensor_set_shape(out, i2v_backend_weight_dtype(be), ndim, stacked);
    return TRUE;
  }
  gboolean ok = i2v_tensor_alloc(be, out, i2v_backend_weight_dtype(be), ndim, stacked, error) &&
                (values == NULL || i2v_tensor_write_f32(out, values, error));
  if (!ok) i2v_tensor_free(out);
  g_free(values);
  return ok;
}

gboolean i2v_weights_load_1d(I2vWeights *w, I2vBackend *be, const char *name, int64_t n,
                             I2vTensor *out, GError **error) {
  return i2v_weights_load(w, be, name, 1, &n, I2V_LAYOUT_AS_IS, out, error);
}

gboolean i2v_weights_load_2d(I2vWeights *w, I2vBackend *be, const char *name, int64_t a, int64_t b,
                             I2vTensor *out, GError **error) {
  int64_t shape[2] = {a, b};
  return i2v_weights_load(w, be, name, 2, shape, I2V_LAYOUT_AS_IS, out, error);
}

gboolean i2v_weights_load_conv(I2vWeights *w, I2vBackend *be, const char *name, int64_t co,
                               int64_t ci, int64_t k, I2vTensor *out, GError **error) {
  int64_t shape[4] = {co, ci, k, k};
  return i2v_weights_load(w, be, name, 4, shape, I2V_LAYOUT_CONV2D, out, error);
}

gboolean i2v_weights_has(I2vWeights *w, const char *name) {
  return w->st == NULL || i2v_safetensors_find(w->st, name) != NULL;
}

guint i2v_weights_log_unused(I2vWeights *w) {
  if (w->st == NULL) return 0; /* the formula defines every name: nothing is left over */
  guint unused = 0;
  for (guint i = 0; i < i2v_safetensors_count(w->st); i++) {
    const I2vSafetensorsEntry *e = i2v_safetensors_entry(w->st, i);
    /* transformers checkpoints may carry position_ids buffers that no model reads */
    if (g_hash_table_contains(w->used, e->name) || g_str_has_suffix(e->name, ".position_ids"))
      continue;
    g_info("%s: tensor '%s' of %s is not used by the model", w->component, e->name, e->file);
    unused++;
  }
  return unused;
}

gint64 i2v_weights_loaded_params(const I2vWeights *w) {
  return w->loaded_params;
}
