/* Safetensors files: a validated, memory-mapped reader (single files and sharded
 * "*.safetensors.index.json" sets) and a small writer for tool output. */
#pragma once

#include "tensor.h"

G_BEGIN_DECLS

typedef struct I2vSafetensors I2vSafetensors;

/* One tensor of an opened file: data points into the mapping (valid while the file is open). */
typedef struct {
  const char *name;
  I2vDType dtype;
  int ndim;
  int64_t shape[I2V_MAX_DIMS];
  const void *data;
  size_t nbytes;
  const char *file; /* path of the file holding it (shards differ) */
} I2vSafetensorsEntry;

/* Opens and validates path: a ".safetensors" file, or a ".safetensors.index.json" whose
 * "weight_map" names the shards (resolved next to it). Validation: header length within the
 * file, well-formed JSON object, known dtype, rank ≤ 5, non-negative dims, shape × dtype size =
 * byte span, offsets inside the data area and not overlapping. Errors name the file and tensor.
 * Returns a new reader (free with i2v_safetensors_close) or NULL with error set. */
I2vSafetensors *i2v_safetensors_open(const char *path, GError **error);

/* Closes a reader and unmaps its files (NULL allowed). */
void i2v_safetensors_close(I2vSafetensors *st);

/* The path the reader was opened with (owned by the reader). */
const char *i2v_safetensors_path(const I2vSafetensors *st);

/* Looks a tensor up by name; NULL if absent. The entry is owned by the reader. */
const I2vSafetensorsEntry *i2v_safetensors_find(const I2vSafetensors *st, const char *name);

/* Number of tensors and the i-th one in file order of names sorted (stable, for listing). */
guint i2v_safetensors_count(const I2vSafetensors *st);
const I2vSafetensorsEntry *i2v_safetensors_entry(const I2vSafetensors *st, guint i);

/* Looks name up and converts it to a new host float32 tensor (F32/F16/BF16 sources; free with
 * i2v_host_tensor_free). Fails with a message naming file and tensor when absent or not float. */
gboolean i2v_safetensors_read_f32(const I2vSafetensors *st, const char *name, I2vTensor *out,
                                  GError **error);

/* Fails with an I2V_ERROR_FORMAT error naming the file, the tensor and the first bad element
 * when a float tensor (F32, F16, BF16) holds a NaN or an infinity: weights that are not finite
 * make garbage frames without a word, so loads check them. Other dtypes pass. */
gboolean i2v_safetensors_check_finite(const I2vSafetensorsEntry *e, GError **error);

/* Writer: collects host tensors (copied) and writes one file with sorted names. */
typedef struct I2vSafetensorsWriter I2vSafetensorsWriter;

/* A new empty writer; free with i2v_safetensors_writer_free. */
I2vSafetensorsWriter *i2v_safetensors_writer_new(void);
void i2v_safetensors_writer_free(I2vSafetensorsWriter *w);

/* Adds a copy of nbytes of data under name (replacing an earlier tensor of that name). */
void i2v_safetensors_writer_add(I2vSafetensorsWriter *w, const char *name, I2vDType dtype, int ndim,
                                const int64_t *shape, const void *data);

/* Fills dst (n elements of the tensor's dtype) when the writer reaches a lazy tensor. */
typedef void (*I2vTensorFillFn)(void *dst, int64_t n, void *user);

/* Adds a tensor whose data fill produces while the file is written (one tensor in memory at a
 * time: for multi-gigabyte files). user must stay valid until save. */
void i2v_safetensors_writer_add_lazy(I2vSafetensorsWriter *w, const char *name, I2vDType dtype,
                                     int ndim, const int64_t *shape, I2vTensorFillFn fill,
                                     void *user);

/* Writes the collected tensors to path (header padded to a multiple of 8, metadata
 * {"format":"pt"}). */
gboolean i2v_safetensors_writer_save(I2vSafetensorsWriter *w, const char *path, GError **error);

G_END_DECLS
