/* Safetensors reader (mmap'd, every header field validated) and writer.
 *
 * File layout: 8-byte little-endian u64 N, N bytes of JSON header
 * {"__metadata__": {...}, "<name>": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}, ...},
 * then the data area; offsets are relative to the start of the data area. A checkpoint may also be
 * split into shards listed by a "*.safetensors.index.json" whose "weight_map" maps each tensor
 * name to the shard file (next to the index) that holds it. */
#include "safetensors.h"

#include <errno.h>
#include <math.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#include <i2v/error.h>
#include "echo.h"
#include "input_file.h"
#include "json_load.h"

/* safetensors' own limit: a larger header is a corrupt length field, not a real header. */
#define MAX_HEADER_BYTES ((guint64)100 << 20)

/* One mapped file of the reader. */
typedef struct {
  char *path;
  GMappedFile *map;
  const guint8 *data_area; /* first byte after the header */
  guint64 data_size;
} StFile;

/* An entry plus its offsets (kept for the overlap check). */
typedef struct {
  I2vSafetensorsEntry e;
  guint64 begin, end;
} Entry;

struct I2vSafetensors {
  char *path;
  GPtrArray *files;    /* StFile*, owned */
  GPtrArray *entries;  /* Entry*, owned, sorted by name */
  GHashTable *by_name; /* name → Entry* (not owned) */
};

static void entry_free(gpointer p) {
  Entry *en = p;
  g_free((char *)en->e.name);
  g_free(en);
}

static void st_file_free(gpointer p) {
  StFile *f = p;
  if (f->map != NULL) g_mapped_file_unref(f->map);
  g_free(f->path);
  g_free(f);
}

/* ---- header parsing ---- */

/* Reads a JSON integer (no fractions, no strings) into *out. */
static gboolean json_int(JsonNode *node, gint64 *out) {
  if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
      json_node_get_value_type(node) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int(node);
  return TRUE;
}

/* Parses one header entry {"dtype", "shape", "data_offsets"} of file f into a new Entry, checking
 * everything that concerns this tensor alone (overlaps are checked later, across entries). */
static Entry *parse_entry(const StFile *f, const char *name, JsonNode *node, GError **error) {
  const char *path = f->path;
  I2vEcho shown, shown_dtype;
  const char *tensor = i2v_echo(name, &shown); /* the name as messages repeat it */
  if (!JSON_NODE_HOLDS_OBJECT(node)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "%s: tensor '%s': header entry is not a JSON object", path, tensor);
    return NULL;
  }
  JsonObject *o = json_node_get_object(node);
  static const char *const keys[] = {"dtype", "shape", "data_offsets"};
  for (guint k = 0; k < G_N_ELEMENTS(keys); k++) {
    if (!json_object_has_member(o, keys[k])) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT, "%s: tensor '%s': header entry has no '%s'",
                  path, tensor, keys[k]);
      return NULL;
    }
  }
  JsonNode *dtype_node = json_object_get_member(o, "dtype");
  const char *dtype_name =
      JSON_NODE_HOLDS_VALUE(dtype_node) && json_node_get_value_type(dtype_node) == G_TYPE_STRING
          ? json_node_get_string(dtype_node)
          : NULL;
  I2vDType dtype;
  if (dtype_name == NULL) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT, "%s: tensor '%s': 'dtype' is not a string",
                path, tensor);
    return NULL;
  }
  if (!i2v_dtype_from_name(dtype_name, &dtype)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "%s: tensor '%s': unknown dtype '%s' (this engine reads F32, F16, BF16, I64, U8)",
                path, tensor, i2v_echo(dtype_name, &shown_dtype));
    return NULL;
  }

  JsonNode *shape_node = json_object_get_member(o, "shape");
  if (!JSON_NODE_HOLDS_ARRAY(shape_node)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT, "%s: tensor '%s': 'shape' is not an array",
                path, tensor);
    return NULL;
  }
  JsonArray *shape = json_node_get_array(shape_node);
  guint ndim = json_array_get_length(shape);
  if (ndim > I2V_MAX_DIMS) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "%s: tensor '%s': rank %u exceeds the maximum of %d dimensions", path, tensor, ndim,
                I2V_MAX_DIMS);
    return NULL;
  }
  Entry *en = g_new0(Entry, 1);
  en->e.name = g_strdup(name);
  en->e.dtype = dtype;
  en->e.ndim = (int)ndim;
  en->e.file = f->path;
  guint64 numel = 1;
  gboolean numel_overflow = FALSE;
  for (guint d = 0; d < ndim; d++) {
    gint64 dim;
    if (!json_int(json_array_get_element(shape, d), &dim) || dim < 0) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                  "%s: tensor '%s': shape dimension %u is not a non-negative integer", path, tensor,
                  d);
      entry_free(en);
      return NULL;
    }
    en->e.shape[d] = dim;
    if (dim != 0 && numel > G_MAXINT64 / (guint64)dim) numel_overflow = TRUE;
    numel *= (guint64)dim;
  }
  for (int d = (int)ndim; d < I2V_MAX_DIMS; d++) en->e.shape[d] = 1;

  JsonNode *off_node = json_object_get_member(o, "data_offsets");
  JsonArray *off = JSON_NODE_HOLDS_ARRAY(off_node) ? json_node_get_array(off_node) : NULL;
  gint64 begin, end;
  if (off == NULL || json_array_get_length(off) != 2 ||
      !json_int(json_array_get_element(off, 0), &begin) ||
      !json_int(json_array_get_element(off, 1), &end) || begin < 0 || end < begin) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "%s: tensor '%s': 'data_offsets' is not a pair [begin, end] of integers with "
                "0 <= begin <= end",
                path, tensor);
    entry_free(en);
    return NULL;
  }
  guint64 dsize = i2v_dtype_size(dtype);
  char shape_text[128];
  i2v_shape_format((int)ndim, en->e.shape, shape_text, sizeof shape_text);
  if (numel_overflow || numel > G_MAXINT64 / dsize) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT, "%s: tensor '%s': shape %s is too large", path,
                tensor, shape_text);
    entry_free(en);
    return NULL;
  }
  if (numel * dsize != (guint64)(end - begin)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "%s: tensor '%s': shape %s of %s needs %" G_GUINT64_FORMAT
                " bytes but data_offsets [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                "] span %" G_GINT64_FORMAT " bytes",
                path, tensor, shape_text, i2v_dtype_name(dtype), numel * dsize, begin, end,
                end - begin);
    entry_free(en);
    return NULL;
  }
  if ((guint64)end > f->data_size) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "%s: tensor '%s': data_offsets [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                "] lie outside the data area of %" G_GUINT64_FORMAT " bytes",
                path, tensor, begin, end, f->data_size);
    entry_free(en);
    return NULL;
  }
  en->begin = (guint64)begin;
  en->end = (guint64)end;
  en->e.data = f->data_area + begin;
  en->e.nbytes = (size_t)(end - begin);
  return en;
}

static gint entry_cmp_offset(gconstpointer a, gconstpointer b) {
  const Entry *x = *(Entry *const *)a, *y = *(Entry *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static gint entry_cmp_name(gconstpointer a, gconstpointer b) {
  return strcmp((*(Entry *const *)a)->e.name, (*(Entry *const *)b)->e.name);
}

/* The safetensors rule (as the reference implementation checks it): sorted by offset, each
 * tensor begins where the previous one ends, the first at 0, and the last ends at the end of the
 * data area. Tensors that overlap (two names for the same bytes), gaps (bytes no tensor owns:
 * hidden data) and trailing bytes are all refused. Sorts entries by offset. */
static gboolean check_tiling(const StFile *f, GPtrArray *entries, GError **error) {
  g_ptr_array_sort(entries, entry_cmp_offset);
  guint64 expected = 0;
  const Entry *prev = NULL;
  for (guint i = 0; i < entries->len; i++) {
    const Entry *en = g_ptr_array_index(entries, i);
    if (en->begin != expected) {
      I2vEcho a, b;
      if (prev == NULL)
        g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                    "%s: the first tensor '%s' begins at byte %" G_GUINT64_FORMAT
                    " of the data area, not at 0 (tensors must tile the data area)",
                    f->path, i2v_echo(en->e.name, &a), en->begin);
      else
        g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                    "%s: tensors '%s' [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
                    ") and '%s' [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
                    ") %s (tensors must tile the data area)",
                    f->path, i2v_echo(prev->e.name, &a), prev->begin, prev->end,
                    i2v_echo(en->e.name, &b), en->begin, en->end,
                    en->begin < expected ? "overlap" : "leave a gap between them");
      return FALSE;
    }
    expected = en->end;
    prev = en;
  }
  if (expected != f->data_size) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "%s: the tensors end at byte %" G_GUINT64_FORMAT
                " but the data area has %" G_GUINT64_FORMAT
                " bytes (tensors must tile the data area: truncated file or trailing data)",
                f->path, expected, f->data_size);
    return FALSE;
  }
  return TRUE;
}

/* Maps path and validates its header; returns the file and its entries (new array of Entry*,
 * owning them) or NULL with error. No message repeats bytes of the file: it may be anything
 * (a shard index can name any file), so the length field's value is not printed either. */
static StFile *open_file(const char *path, GPtrArray **entries_out, GError **error) {
  StFile *f = g_new0(StFile, 1);
  f->path = g_strdup(path);
  f->map = i2v_input_map(path, error);
  if (f->map == NULL) {
    st_file_free(f);
    return NULL;
  }
  const guint8 *bytes = (const guint8 *)g_mapped_file_get_contents(f->map);
  guint64 size = g_mapped_file_get_length(f->map);
  if (size < 8) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "%s: file is %" G_GUINT64_FORMAT " bytes, shorter than the 8-byte header length",
                path, size);
    st_file_free(f);
    return NULL;
  }
  guint64 header_len = 0;
  for (int i = 7; i >= 0; i--) header_len = header_len << 8 | bytes[i];
  if (header_len > MAX_HEADER_BYTES || header_len > size - 8) {
    g_set_error(
        error, I2V_ERROR, I2V_ERROR_FORMAT,
        "%s: the header length field (the first 8 bytes) points beyond %s (%" G_GUINT64_FORMAT
        " bytes): not a safetensors file, or a truncated one",
        path, header_len > MAX_HEADER_BYTES ? "the format's limit" : "the end of the file",
        header_len > MAX_HEADER_BYTES ? MAX_HEADER_BYTES : size);
    st_file_free(f);
    return NULL;
  }
  f->data_area = bytes + 8 + header_len;
  f->data_size = size - 8 - header_len;

  char *label = g_strdup_printf("%s: header", path);
  JsonObject *root = i2v_json_parse_object((const char *)bytes + 8, header_len, label, error);
  g_free(label);
  GPtrArray *entries = g_ptr_array_new_with_free_func(entry_free);
  gboolean ok = root != NULL;
  if (ok) {
    GList *names = json_object_get_members(root);
    for (GList *l = names; l != NULL && ok; l = l->next) {
      const char *name = l->data;
      if (strcmp(name, "__metadata__") == 0) continue;
      Entry *en = parse_entry(f, name, json_object_get_member(root, name), error);
      if (en == NULL)
        ok = FALSE;
      else
        g_ptr_array_add(entries, en);
    }
    g_list_free(names);
    ok = ok && check_tiling(f, entries, error);
    json_object_unref(root);
  }
  if (!ok) {
    g_ptr_array_unref(entries);
    st_file_free(f);
    return NULL;
  }
  *entries_out = entries;
  return f;
}

/* ---- reader ---- */

static I2vSafetensors *reader_new(const char *path) {
  I2vSafetensors *st = g_new0(I2vSafetensors, 1);
  st->path = g_strdup(path);
  st->files = g_ptr_array_new_with_free_func(st_file_free);
  st->entries = g_ptr_array_new_with_free_func(entry_free);
  st->by_name = g_hash_table_new(g_str_hash, g_str_equal);
  return st;
}

/* Sorts the entries by name and indexes them. */
static void reader_finish(I2vSafetensors *st) {
  g_ptr_array_sort(st->entries, entry_cmp_name);
  for (guint i = 0; i < st->entries->len; i++) {
    Entry *en = g_ptr_array_index(st->entries, i);
    g_hash_table_insert(st->by_name, (gpointer)en->e.name, en);
  }
}

/* Moves every entry of a single file into st. */
static gboolean open_single(I2vSafetensors *st, GError **error) {
  GPtrArray *entries;
  StFile *f = open_file(st->path, &entries, error);
  if (f == NULL) return FALSE;
  g_ptr_array_add(st->files, f);
  g_ptr_array_extend_and_steal(st->entries, entries);
  return TRUE;
}

/* A shard of an index: its file and its entries by name (the index picks from them). */
typedef struct {
  StFile *file;
  GPtrArray *entries;
  GHashTable *by_name;
} Shard;

static void shard_free(gpointer p) {
  Shard *s = p;
  g_hash_table_unref(s->by_name);
  if (s->entries != NULL) g_ptr_array_unref(s->entries);
  g_free(s);
}

/* Whether a shard name of an index stays in the index's folder: a relative path without ".."
 * components. (Checked on the name rather than with realpath(): a Hugging Face cache folder
 * holds symlinks into its blobs/ folder, which realpath() would see as leaving it; a symlink is
 * put there by whoever made the folder, a name comes from the file.) */
static gboolean shard_name_inside(const char *name) {
  if (name[0] == '\0' || g_path_is_absolute(name)) return FALSE;
  char **parts = g_strsplit(name, G_DIR_SEPARATOR_S, -1);
  gboolean inside = !g_strv_contains((const char *const *)parts, "..");
  g_strfreev(parts);
  return inside;
}

/* Opens the shard named by the index once (cached in shards) and returns it, or NULL. */
static Shard *get_shard(I2vSafetensors *st, GHashTable *shards, const char *dir,
                        const char *shard_name, const char *tensor, GError **error) {
  Shard *s = g_hash_table_lookup(shards, shard_name);
  if (s != NULL) return s;
  I2vEcho shown_shard, shown_tensor;
  if (!shard_name_inside(shard_name)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "%s: shard '%s' (holding tensor '%s') is not a file name inside the index's "
                "folder (absolute paths and '..' are refused)",
                st->path, i2v_echo(shard_name, &shown_shard), i2v_echo(tensor, &shown_tensor));
    return NULL;
  }
  char *shard_path = g_build_filename(dir, shard_name, NULL);
  GPtrArray *entries = NULL;
  GError *err = NULL;
  StFile *f = open_file(shard_path, &entries, &err);
  g_free(shard_path);
  if (f == NULL) {
    g_set_error(error, err->domain, err->code, "%s: shard '%s' (holding tensor '%s'): %s", st->path,
                i2v_echo(shard_name, &shown_shard), i2v_echo(tensor, &shown_tensor), err->message);
    g_error_free(err);
    return NULL;
  }
  g_ptr_array_add(st->files, f);
  s = g_new0(Shard, 1);
  s->file = f;
  s->entries = entries;
  s->by_name = g_hash_table_new(g_str_hash, g_str_equal);
  for (guint i = 0; i < entries->len; i++) {
    Entry *en = g_ptr_array_index(entries, i);
    g_hash_table_insert(s->by_name, (gpointer)en->e.name, en);
  }
  g_hash_table_insert(shards, g_strdup(shard_name), s);
  return s;
}

/* Reads the weight_map of the index and takes each listed tensor from its shard. */
static gboolean open_index(I2vSafetensors *st, GError **error) {
  JsonObject *root = i2v_json_load_object(st->path, error);
  if (root == NULL) return FALSE;
  JsonNode *map_node = json_object_get_member(root, "weight_map");
  if (map_node == NULL || !JSON_NODE_HOLDS_OBJECT(map_node)) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "%s: not a shard index (expected a JSON object with a 'weight_map' object)",
                st->path);
    json_object_unref(root);
    return FALSE;
  }
  JsonObject *map = json_node_get_object(map_node);
  char *dir = g_path_get_dirname(st->path);
  GHashTable *shards = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, shard_free);
  GList *names = json_object_get_members(map);
  gboolean ok = TRUE;
  for (GList *l = names; l != NULL && ok; l = l->next) {
    const char *tensor = l->data;
    JsonNode *v = json_object_get_member(map, tensor);
    I2vEcho shown;
    if (!JSON_NODE_HOLDS_VALUE(v) || json_node_get_value_type(v) != G_TYPE_STRING) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                  "%s: weight_map entry of tensor '%s' is not a file name string", st->path,
                  i2v_echo(tensor, &shown));
      ok = FALSE;
      break;
    }
    const char *shard_name = json_node_get_string(v);
    Shard *s = get_shard(st, shards, dir, shard_name, tensor, error);
    Entry *en = s != NULL ? g_hash_table_lookup(s->by_name, tensor) : NULL;
    if (s == NULL) {
      ok = FALSE;
    } else if (en == NULL) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_MISSING,
                  "%s: tensor '%s' is listed in the weight_map but absent from its shard %s",
                  st->path, i2v_echo(tensor, &shown), s->file->path);
      ok = FALSE;
    } else {
      /* move the entry from the shard to the reader */
      guint index = 0;
      g_ptr_array_find(s->entries, en, &index);
      g_hash_table_remove(s->by_name, tensor);
      g_ptr_array_add(st->entries, g_ptr_array_steal_index_fast(s->entries, index));
    }
  }
  g_list_free(names);
  g_hash_table_unref(shards);
  g_free(dir);
  json_object_unref(root);
  return ok;
}

I2vSafetensors *i2v_safetensors_open(const char *path, GError **error) {
  I2vSafetensors *st = reader_new(path);
  gboolean ok = g_str_has_suffix(path, ".json") ? open_index(st, error) : open_single(st, error);
  if (!ok) {
    i2v_safetensors_close(st);
    return NULL;
  }
  reader_finish(st);
  return st;
}

void i2v_safetensors_close(I2vSafetensors *st) {
  if (st == NULL) return;
  g_hash_table_unref(st->by_name);
  g_ptr_array_unref(st->entries);
  g_ptr_array_unref(st->files);
  g_free(st->path);
  g_free(st);
}

const char *i2v_safetensors_path(const I2vSafetensors *st) {
  return st->path;
}

const I2vSafetensorsEntry *i2v_safetensors_find(const I2vSafetensors *st, const char *name) {
  Entry *en = g_hash_table_lookup(st->by_name, name);
  return en != NULL ? &en->e : NULL;
}

guint i2v_safetensors_count(const I2vSafetensors *st) {
  return st->entries->len;
}

const I2vSafetensorsEntry *i2v_safetensors_entry(const I2vSafetensors *st, guint i) {
  g_return_val_if_fail(i < st->entries->len, NULL);
  return &((Entry *)g_ptr_array_index(st->entries, i))->e;
}

gboolean i2v_safetensors_read_f32(const I2vSafetensors *st, const char *name, I2vTensor *out,
                                  GError **error) {
  memset(out, 0, sizeof(*out));
  const I2vSafetensorsEntry *e = i2v_safetensors_find(st, name);
  if (e == NULL) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_MISSING, "%s: no tensor '%s'", st->path, name);
    return FALSE;
  }
  if (e->dtype != I2V_DTYPE_F32 && e->dtype != I2V_DTYPE_F16 && e->dtype != I2V_DTYPE_BF16) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_SHAPE,
                "%s: tensor '%s' has dtype %s, expected a float dtype (F32, F16 or BF16)", e->file,
                name, i2v_dtype_name(e->dtype));
    return FALSE;
  }
  *out = i2v_host_tensor(I2V_DTYPE_F32, e->ndim, e->shape);
  int64_t n = i2v_tensor_numel(out);
  if (e->dtype != I2V_DTYPE_F32 && ((uintptr_t)e->data & 1) != 0) {
    /* 16-bit values at an odd offset: copy to aligned memory before converting */
    void *aligned = g_memdup2(e->data, e->nbytes);
    i2v_convert_to_f32(out->data, aligned, e->dtype, n);
    g_free(aligned);
  } else {
    i2v_convert_to_f32(out->data, e->data, e->dtype, n);
  }
  return TRUE;
}

/* Index of the first of n little-endian floats of size bytes at data (2: F16, BF16; 4: F32)
 * whose exponent bits are all set, i.e. a NaN or an infinity; -1 when there is none. The exponent
 * lies in the top 16 bits of every one of these formats (mask: its bits there), read with memcpy:
 * 16-bit data may sit at an odd offset. One pass, limited by memory bandwidth (~1.5 GB/s on the
 * 2-core test machine, the speed of the plainest loop over the same bytes). */
static int64_t first_nonfinite(const guint8 *data, int64_t n, int size, guint16 mask) {
  const guint8 *top = data + size - 2;
  gboolean any = FALSE;
#pragma omp parallel for reduction(| : any) schedule(static) if (n > (1 << 20))
  for (int64_t i = 0; i < n; i++) {
    guint16 v;
    memcpy(&v, top + i * size, 2);
    any |= (v & mask) == mask;
  }
  for (int64_t i = 0; any && i < n; i++) {
    guint16 v;
    memcpy(&v, top + i * size, 2);
    if ((v & mask) == mask) return i;
  }
  return -1;
}

gboolean i2v_safetensors_check_finite(const I2vSafetensorsEntry *e, GError **error) {
  const guint8 *data = e->data;
  int64_t n = (int64_t)(e->nbytes / MAX(i2v_dtype_size(e->dtype), 1)), bad;
  switch (e->dtype) {
  case I2V_DTYPE_F32:
    bad = first_nonfinite(data, n, 4, 0x7f80);
    break;
  case I2V_DTYPE_F16:
    bad = first_nonfinite(data, n, 2, 0x7c00);
    break;
  case I2V_DTYPE_BF16:
    bad = first_nonfinite(data, n, 2, 0x7f80);
    break;
  default:
    return TRUE;
  }
  if (bad < 0) return TRUE;
  guint32 raw = 0; /* the value, aligned */
  float value;
  memcpy(&raw, data + bad * (int64_t)i2v_dtype_size(e->dtype), i2v_dtype_size(e->dtype));
  i2v_convert_to_f32(&value, &raw, e->dtype, 1);
  I2vEcho shown;
  g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
              "%s: tensor '%s' holds a non-finite value (%s at element %" G_GINT64_FORMAT
              " of %" G_GINT64_FORMAT "): a corrupt or badly converted file",
              e->file, i2v_echo(e->name, &shown), isnan(value) ? "NaN" : "infinity", bad, n);
  return FALSE;
}

/* ---- writer ---- */

typedef struct {
  I2vDType dtype;
  int ndim;
  int64_t shape[I2V_MAX_DIMS];
  size_t nbytes;
  GBytes *data;         /* a copy, or NULL for a lazy tensor */
  I2vTensorFillFn fill; /* lazy tensors: makes the data at save time */
  void *fill_user;
} WriterTensor;

struct I2vSafetensorsWriter {
  GHashTable *tensors; /* name → WriterTensor* (both owned) */
};

static void writer_tensor_free(gpointer p) {
  WriterTensor *t = p;
  if (t->data != NULL) g_bytes_unref(t->data);
  g_free(t);
}

I2vSafetensorsWriter *i2v_safetensors_writer_new(void) {
  I2vSafetensorsWriter *w = g_new0(I2vSafetensorsWriter, 1);
  w->tensors = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, writer_tensor_free);
  return w;
}

void i2v_safetensors_writer_free(I2vSafetensorsWriter *w) {
  if (w == NULL) return;
  g_hash_table_unref(w->tensors);
  g_free(w);
}

static WriterTensor *writer_tensor_new(I2vSafetensorsWriter *w, const char *name, I2vDType dtype,
                                       int ndim, const int64_t *shape) {
  WriterTensor *t = g_new0(WriterTensor, 1);
  I2vTensor view = {0};
  i2v_tensor_set_shape(&view, dtype, ndim, shape);
  t->dtype = dtype;
  t->ndim = ndim;
  memcpy(t->shape, view.shape, sizeof t->shape);
  t->nbytes = i2v_tensor_nbytes(&view);
  g_hash_table_replace(w->tensors, g_strdup(name), t);
  return t;
}

void i2v_safetensors_writer_add(I2vSafetensorsWriter *w, const char *name, I2vDType dtype, int ndim,
                                const int64_t *shape, const void *data) {
  g_return_if_fail(ndim >= 0 && ndim <= I2V_MAX_DIMS);
  WriterTensor *t = writer_tensor_new(w, name, dtype, ndim, shape);
  t->data = g_bytes_new(data, t->nbytes);
}

void i2v_safetensors_writer_add_lazy(I2vSafetensorsWriter *w, const char *name, I2vDType dtype,
                                     int ndim, const int64_t *shape, I2vTensorFillFn fill,
                                     void *user) {
  g_return_if_fail(ndim >= 0 && ndim <= I2V_MAX_DIMS);
  WriterTensor *t = writer_tensor_new(w, name, dtype, ndim, shape);
  t->fill = fill;
  t->fill_user = user;
}

static gint name_cmp(gconstpointer a, gconstpointer b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The JSON header for names (sorted) with consecutive offsets, padded with spaces to 8 bytes. */
static GString *writer_header(I2vSafetensorsWriter *w, GPtrArray *names) {
  JsonBuilder *b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "__metadata__");
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "format");
  json_builder_add_string_value(b, "pt");
  json_builder_end_object(b);
  guint64 offset = 0;
  for (guint i = 0; i < names->len; i++) {
    const char *name = g_ptr_array_index(names, i);
    WriterTensor *t = g_hash_table_lookup(w->tensors, name);
    json_builder_set_member_name(b, name);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "dtype");
    json_builder_add_string_value(b, i2v_dtype_name(t->dtype));
    json_builder_set_member_name(b, "shape");
    json_builder_begin_array(b);
    for (int d = 0; d < t->ndim; d++) json_builder_add_int_value(b, t->shape[d]);
    json_builder_end_array(b);
    json_builder_set_member_name(b, "data_offsets");
    json_builder_begin_array(b);
    json_builder_add_int_value(b, (gint64)offset);
    offset += t->nbytes;
    json_builder_add_int_value(b, (gint64)offset);
    json_builder_end_array(b);
    json_builder_end_object(b);
  }
  json_builder_end_object(b);
  JsonGenerator *gen = json_generator_new();
  JsonNode *root = json_builder_get_root(b);
  json_generator_set_root(gen, root);
  char *text = json_generator_to_data(gen, NULL);
  GString *header = g_string_new(text);
  while (header->len % 8 != 0) g_string_append_c(header, ' ');
  g_free(text);
  json_node_unref(root);
  g_object_unref(gen);
  g_object_unref(b);
  return header;
}

gboolean i2v_safetensors_writer_save(I2vSafetensorsWriter *w, const char *path, GError **error) {
  GPtrArray *names = g_ptr_array_new();
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init(&it, w->tensors);
  while (g_hash_table_iter_next(&it, &key, NULL)) g_ptr_array_add(names, key);
  g_ptr_array_sort(names, name_cmp);
  GString *header = writer_header(w, names);
  guint8 len_le[8];
  for (int i = 0; i < 8; i++) len_le[i] = (guint8)((guint64)header->len >> (8 * i));

  gboolean ok = FALSE;
  FILE *fp = fopen(path, "wb");
  if (fp != NULL) {
    ok = fwrite(len_le, 1, 8, fp) == 8 && fwrite(header->str, 1, header->len, fp) == header->len;
    for (guint i = 0; i < names->len && ok; i++) {
      WriterTensor *t = g_hash_table_lookup(w->tensors, g_ptr_array_index(names, i));
      size_t n = t->nbytes;
      void *made = NULL;
      const void *data;
      if (t->data != NULL) {
        data = g_bytes_get_data(t->data, NULL);
      } else {
        data = made = g_malloc(MAX(n, 1));
        t->fill(made, (int64_t)(n / i2v_dtype_size(t->dtype)), t->fill_user);
      }
      ok = n == 0 || fwrite(data, 1, n, fp) == n;
      g_free(made);
    }
    if (fclose(fp) != 0) ok = FALSE;
  }
  if (!ok)
    g_set_error(error, I2V_ERROR, I2V_ERROR_IO, "%s: cannot write the safetensors file: %s", path,
                g_strerror(errno));
  g_string_free(header, TRUE);
  g_ptr_array_unref(names);
  return ok;
}
