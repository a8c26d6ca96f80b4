/* LoRA files: parsing the usual key layouts into modules, and merging them into weights as they
 * load (see lora.h). */
#include "lora.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include <i2v/error.h>
#include "echo.h"
#include "safetensors.h"

/* One low-rank pair of one file, and where it goes. */
typedef struct {
  char *file;         /* the LoRA file, for messages */
  char *module;       /* the module as the file names it, for messages */
  char *component;    /* "unet" or "text_encoder" */
  char *target;       /* the weight name it targets ("mid_block....to_q.weight"), or for kohya files
                         that name with '_' for '.' and without ".weight" */
  I2vTensor down, up; /* host float32: [r, ...] and [out, r, ...] */
  gboolean have_down, have_up, have_alpha;
  double alpha, scale;
  gboolean applied;
} LoraModule;

struct I2vLora {
  GPtrArray *modules;    /* LoraModule *, owned */
  GHashTable *by_target; /* "component\ntarget" → GPtrArray of LoraModule * (borrowed) */
};

typedef enum { ROLE_DOWN, ROLE_UP, ROLE_ALPHA } Role;

/* Key endings of the three layouts (lora.h); "_lora.down.weight" is the attention processors'
 * "to_q_lora.down.weight" of older diffusers files. */
static const struct {
  const char *suffix;
  Role role;
} suffixes[] = {
    {".lora_A.weight", ROLE_DOWN},    {".lora_B.weight", ROLE_UP},
    {".lora.down.weight", ROLE_DOWN}, {".lora.up.weight", ROLE_UP},
    {".lora_down.weight", ROLE_DOWN}, {".lora_up.weight", ROLE_UP},
    {"_lora.down.weight", ROLE_DOWN}, {"_lora.up.weight", ROLE_UP},
    {".alpha", ROLE_ALPHA},
};

/* Module prefixes: the component, and whether names are kohya's underscore form. */
static const struct {
  const char *prefix;
  const char *component;
  gboolean kohya;
} prefixes[] = {
    {"unet.", "unet", FALSE},
    {"text_encoder.", "text_encoder", FALSE},
    {"lora_unet_", "unet", TRUE},
    {"lora_te_", "text_encoder", TRUE},
    {"lora_te1_", "text_encoder", TRUE},
};

static void module_free(LoraModule *m) {
  if (m->have_down) i2v_host_tensor_free(&m->down);
  if (m->have_up) i2v_host_tensor_free(&m->up);
  g_free(m->file);
  g_free(m->module);
  g_free(m->component);
  g_free(m->target);
  g_free(m);
}

void i2v_lora_free(I2vLora *lora) {
  if (lora == NULL) return;
  g_hash_table_unref(lora->by_target);
  g_ptr_array_unref(lora->modules);
  g_free(lora);
}

/* The weight a module targets: its name without the layout's prefix, ".weight" added (kohya:
 * left in underscore form, matched against the underscore form of the weights asked for). Older
 * diffusers processors name "attn.processor.to_q" for "attn.to_q" and to_out for to_out.0. */
static char *target_of(const char *module, size_t prefix_len, gboolean kohya) {
  const char *rest = module + prefix_len;
  if (kohya) return g_strdup(rest);
  GString *t = g_string_new(rest);
  const char *proc = strstr(t->str, ".processor.");
  if (proc != NULL) {
    g_string_erase(t, proc - t->str, strlen(".processor"));
    if (g_str_has_suffix(t->str, ".to_out")) g_string_append(t, ".0");
  }
  g_string_append(t, ".weight");
  return g_string_free(t, FALSE);
}

/* kohya's form of weight name: ".weight" dropped, '.' → '_'. */
static char *kohya_form(const char *name) {
  char *k = g_strdup(name);
  if (g_str_has_suffix(k, ".weight")) k[strlen(k) - strlen(".weight")] = '\0';
  g_strdelimit(k, ".", '_');
  return k;
}

/* The module of file `file` named by tensor `key`, created on first sight; NULL with error when the
 * key fits none of the layouts. */
static LoraModule *module_for_key(I2vLora *lora, GHashTable *of_file, const char *file,
                                  const char *key, Role *role, GError **error) {
  I2vEcho shown; /* a name or spec entry as messages repeat it */
  size_t len = strlen(key);
  for (guint i = 0; i < G_N_ELEMENTS(suffixes); i++) {
    if (!g_str_has_suffix(key, suffixes[i].suffix)) continue;
    char *module = g_strndup(key, len - strlen(suffixes[i].suffix));
    for (guint j = 0; j < G_N_ELEMENTS(prefixes); j++) {
      if (!g_str_has_prefix(module, prefixes[j].prefix)) continue;
      *role = suffixes[i].role;
      LoraModule *m = g_hash_table_lookup(of_file, module);
      if (m == NULL) {
        m = g_new0(LoraModule, 1);
        m->file = g_strdup(file);
        m->module = module;
        m->component = g_strdup(prefixes[j].component);
        m->target = target_of(module, strlen(prefixes[j].prefix), prefixes[j].kohya);
        g_ptr_array_add(lora->modules, m);
        g_hash_table_insert(of_file, m->module, m);
      } else {
        g_free(module);
      }
      return m;
    }
    g_free(module);
  }
  g_set_error(error, I2V_ERROR, I2V_ERROR_LORA,
              "LoRA %s: tensor '%s' is not a LoRA tensor of the UNet or the text encoder "
              "(expected unet.<module>.lora_A.weight / lora_B.weight, lora_unet_<module>.lora_down."
              "weight / lora_up.weight / alpha, or the text_encoder / lora_te_ equivalents)",
              file, i2v_echo(key, &shown));
  return NULL;
}

static int64_t numel(const I2vTensor *t) {
  return i2v_tensor_numel(t);
}

/* Reads one tensor of the file into module m in its role. */
static gboolean read_part(I2vSafetensors *st, const char *file, const char *key, LoraModule *m,
                          Role role, GError **error) {
  I2vEcho shown;
  I2vTensor t;
  GError *err = NULL;
  static const char *const role_names[] = {"down (lora_A / lora_down)", "up (lora_B / lora_up)",
                                           "alpha"};
  gboolean given = role == ROLE_DOWN ? m->have_down : role == ROLE_UP ? m->have_up : m->have_alpha;
  if (given) { /* two spellings of one part, e.g. "m.lora_A.weight" and "m_lora.down.weight" */
    g_set_error(error, I2V_ERROR, I2V_ERROR_LORA,
                "LoRA %s: '%s' gives the %s of module '%s' again (another tensor of the file "
                "already did)",
                file, i2v_echo(key, &shown), role_names[role], m->module);
    return FALSE;
  }
  if (!i2v_safetensors_check_finite(i2v_safetensors_find(st, key), &err) ||
      !i2v_safetensors_read_f32(st, key, &t, &err)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_LORA, "LoRA %s", err->message);
    g_error_free(err);
    return FALSE;
  }
  if (role == ROLE_ALPHA) {
    gboolean scalar = numel(&t) == 1;
    if (scalar) m->alpha = ((const float *)t.data)[0];
    i2v_host_tensor_free(&t);
    if (!scalar || !isfinite(m->alpha) || m->alpha <= 0) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_LORA,
                  "LoRA %s: '%s' must be one positive number (the module's alpha)", file,
                  i2v_echo(key, &shown));
      return FALSE;
    }
    m->have_alpha = TRUE;
    return TRUE;
  }
  if (t.ndim < 2) {
    i2v_host_tensor_free(&t);
    g_set_error(error, I2V_ERROR, I2V_ERROR_LORA,
                "LoRA %s: '%s' has %d dimension(s), expected a matrix or conv kernel", file,
                i2v_echo(key, &shown), t.ndim);
    return FALSE;
  }
  if (role == ROLE_DOWN) {
    m->down = t;
    m->have_down = TRUE;
  } else {
    m->up = t;
    m->have_up = TRUE;
  }
  return TRUE;
}

/* Both halves present and of one rank. */
static gboolean check_module(const LoraModule *m, GError **error) {
  I2vEcho shown;
  if (!m->have_down || !m->have_up) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_LORA, "LoRA %s: module '%s' has no %s matrix", m->file,
                i2v_echo(m->module, &shown),
                m->have_down ? "up (lora_B / lora_up)" : "down (lora_A / lora_down)");
    return FALSE;
  }
  int64_t r = m->down.shape[0];
  if (m->up.shape[1] != r || numel(&m->up) != m->up.shape[0] * r) {
    char d[96], u[96];
    g_set_error(error, I2V_ERROR, I2V_ERROR_LORA,
                "LoRA %s: module '%s': up matrix %s does not match the rank %" G_GINT64_FORMAT
                " of its down matrix %s",
                m->file, i2v_echo(m->module, &shown),
                i2v_shape_format(m->up.ndim, m->up.shape, u, sizeof u), r,
                i2v_shape_format(m->down.ndim, m->down.shape, d, sizeof d));
    return FALSE;
  }
  return TRUE;
}

static char *target_key(const char *component, const char *target) {
  return g_strconcat(component, "\n", target, NULL);
}

/* Reads one LoRA file with its scale into lora. */
static gboolean read_file(I2vLora *lora, const char *path, double scale, GError **error) {
  GError *err = NULL;
  I2vSafetensors *st = i2v_safetensors_open(path, &err);
  if (st == NULL) { /* a LoRA error like the others, whatever the file's fault */
    if (g_error_matches(err, I2V_ERROR, I2V_ERROR_MISSING))
      g_set_error(error, I2V_ERROR, I2V_ERROR_LORA, "LoRA file %s not found", path);
    else
      g_set_error(error, I2V_ERROR, I2V_ERROR_LORA, "LoRA file %s", err->message);
    g_error_free(err);
    return FALSE;
  }
  GHashTable *of_file = g_hash_table_new(g_str_hash, g_str_equal); /* module → LoraModule */
  guint first = lora->modules->len;
  gboolean ok = i2v_safetensors_count(st) > 0;
  if (!ok)
    g_set_error(error, I2V_ERROR, I2V_ERROR_LORA, "LoRA %s: the file holds no tensors", path);
  for (guint i = 0; ok && i < i2v_safetensors_count(st); i++) {
    const char *key = i2v_safetensors_entry(st, i)->name;
    Role role;
    LoraModule *m = module_for_key(lora, of_file, path, key, &role, error);
    ok = m != NULL && read_part(st, path, key, m, role, error);
  }
  for (guint i = first; ok && i < lora->modules->len; i++) {
    LoraModule *m = g_ptr_array_index(lora->modules, i);
    m->scale = scale;
    if (!(ok = check_module(m, error))) break;
    char *key = target_key(m->component, m->target);
    GPtrArray *list = g_hash_table_lookup(lora->by_target, key);
    if (list == NULL) {
      list = g_ptr_array_new();
      g_hash_table_insert(lora->by_target, key, list);
    } else {
      g_free(key);
    }
    g_ptr_array_add(list, m);
  }
  g_hash_table_unref(of_file);
  i2v_safetensors_close(st);
  return ok;
}

/* Splits one spec entry "path[:scale]" (a ':' followed by a path is part of the path). */
static gboolean parse_entry(const char *entry, char **path, double *scale, GError **error) {
  I2vEcho shown;
  const char *colon = strrchr(entry, ':');
  *scale = 1.0;
  if (colon == NULL || strchr(colon, '/') != NULL) {
    *path = g_strdup(entry);
  } else {
    char *end = NULL;
    *scale = g_ascii_strtod(colon + 1, &end);
    if (colon[1] == '\0' || end == NULL || *end != '\0' || !isfinite(*scale)) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_LORA,
                  "LoRA '%s': the scale after ':' must be a number (e.g. style.safetensors:0.8)",
                  i2v_echo(entry, &shown));
      return FALSE;
    }
    *path = g_strndup(entry, colon - entry);
  }
  if (**path == '\0') {
    g_set_error(error, I2V_ERROR, I2V_ERROR_LORA, "LoRA '%s': no file name",
                i2v_echo(entry, &shown));
    g_free(*path);
    return FALSE;
  }
  return TRUE;
}

I2vLora *i2v_lora_open(const char *spec, GError **error) {
  I2vEcho shown;
  I2vLora *lora = g_new0(I2vLora, 1);
  lora->modules = g_ptr_array_new_with_free_func((GDestroyNotify)module_free);
  lora->by_target =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_ptr_array_unref);
  char **entries = g_strsplit(spec != NULL ? spec : "", ",", -1);
  gboolean ok = TRUE, any = FALSE;
  for (char **e = entries; ok && *e != NULL; e++) {
    char *entry = g_strstrip(*e), *path = NULL;
    double scale;
    if (*entry == '\0') continue;
    any = TRUE;
    ok = parse_entry(entry, &path, &scale, error) && read_file(lora, path, scale, error);
    g_free(path);
  }
  g_strfreev(entries);
  if (ok && !any) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_LORA,
                "LoRA '%s': no file given (expected path[:scale][,path[:scale]...])",
                i2v_echo(spec != NULL ? spec : "", &shown));
    ok = FALSE;
  }
  if (!ok) {
    i2v_lora_free(lora);
    return NULL;
  }
  return lora;
}

/* The modules targeting (component, name), by weight name and by its kohya form; NULL if none. */
static void modules_for(const I2vLora *lora, const char *component, const char *name,
                        GPtrArray *out[2]) {
  char *k = kohya_form(name), *plain = target_key(component, name),
       *under = target_key(component, k);
  out[0] = g_hash_table_lookup(lora->by_target, plain);
  out[1] = g_hash_table_lookup(lora->by_target, under);
  g_free(k);
  g_free(plain);
  g_free(under);
}

gboolean i2v_lora_targets(const I2vLora *lora, const char *component, const char *name) {
  if (lora == NULL) return FALSE;
  GPtrArray *found[2];
  modules_for(lora, component, name, found);
  return found[0] != NULL || found[1] != NULL;
}

/* values[out, K] += scale · alpha / r · up[out, r] · down[r, K], after checking the shapes. */
static gboolean apply_module(LoraModule *m, const char *name, int ndim, const int64_t *shape,
                             float *values, GError **error) {
  I2vEcho shown;
  int64_t out = shape[0], total = 1, r = m->down.shape[0];
  for (int d = 0; d < ndim; d++) total *= shape[d];
  int64_t K = out > 0 ? total / out : 0;
  if (ndim < 2 || m->up.shape[0] != out || numel(&m->down) != r * K) {
    char w[96], d[96], u[96];
    g_set_error(error, I2V_ERROR, I2V_ERROR_LORA,
                "LoRA %s: module '%s' (down %s, up %s) does not fit %s weight '%s' of shape %s",
                m->file, i2v_echo(m->module, &shown),
                i2v_shape_format(m->down.ndim, m->down.shape, d, sizeof d),
                i2v_shape_format(m->up.ndim, m->up.shape, u, sizeof u), m->component, name,
                i2v_shape_format(ndim, shape, w, sizeof w));
    return FALSE;
  }
  double coeff = m->scale * (m->have_alpha ? m->alpha : (double)r) / (double)r;
  if (coeff != 0 && out > 0 && K > 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)out, (blasint)K, (blasint)r,
                (float)coeff, m->up.data, (blasint)r, m->down.data, (blasint)K, 1.0f, values,
                (blasint)K);
  m->applied = TRUE;
  return TRUE;
}

gboolean i2v_lora_apply(I2vLora *lora, const char *component, const char *name, int ndim,
                        const int64_t *shape, float *values, GError **error) {
  if (lora == NULL) return TRUE;
  GPtrArray *found[2];
  modules_for(lora, component, name, found);
  for (int f = 0; f < 2; f++)
    for (guint i = 0; found[f] != NULL && i < found[f]->len; i++)
      if (!apply_module(g_ptr_array_index(found[f], i), name, ndim, shape, values, error))
        return FALSE;
  return TRUE;
}

gboolean i2v_lora_check_applied(const I2vLora *lora, GError **error) {
  I2vEcho shown;
  for (guint i = 0; lora != NULL && i < lora->modules->len; i++) {
    const LoraModule *m = g_ptr_array_index(lora->modules, i);
    if (!m->applied) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_LORA,
                  "LoRA %s: module '%s' matches no weight of the model's %s (a LoRA for another "
                  "model?)",
                  m->file, i2v_echo(m->module, &shown), m->component);
      return FALSE;
    }
  }
  return TRUE;
}
