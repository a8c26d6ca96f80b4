/* Request bodies on disk. */
#include "request_body.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdio.h>

struct RequestBody {
  char *path;
  FILE *file; /* NULL before the first chunk and after finish */
  gsize size, limit;
  gboolean too_large, failed;
};

static gboolean store_failed(RequestBody *b, int e, GError **error) {
  b->failed = TRUE;
  g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e),
              "cannot store the request body in %s: %s", b->path, g_strerror(e));
  return FALSE;
}

RequestBody *request_body_new(const char *path, gsize limit) {
  RequestBody *b = g_new0(RequestBody, 1);
  b->path = g_strdup(path);
  b->limit = limit;
  return b;
}

gboolean request_body_write(RequestBody *b, const void *data, gsize size, GError **error) {
  if (b->too_large || b->failed) return FALSE;
  if (size > b->limit - b->size) {
    b->too_large = TRUE;
    if (b->file != NULL) fclose(b->file);
    b->file = NULL;
    g_unlink(b->path);
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                "the request body is above this server's limit of %" G_GSIZE_FORMAT " bytes "
                "(--max-upload-mb)",
                b->limit);
    return FALSE;
  }
  if (b->file == NULL) b->file = g_fopen(b->path, "wbx");
  if (b->file == NULL || fwrite(data, 1, size, b->file) != size)
    return store_failed(b, errno, error);
  b->size += size;
  return TRUE;
}

gboolean request_body_too_large(const RequestBody *b) {
  return b->too_large;
}

GBytes *request_body_finish(RequestBody *b, GError **error) {
  if (b->file == NULL) return g_bytes_new(NULL, 0);
  gboolean ok = fclose(b->file) == 0;
  b->file = NULL;
  if (!ok) {
    store_failed(b, errno, error);
    return NULL;
  }
  GMappedFile *m = g_mapped_file_new(b->path, FALSE, error);
  if (m == NULL) return NULL;
  GBytes *bytes = g_mapped_file_get_bytes(m);
  g_mapped_file_unref(m);
  return bytes;
}

void request_body_free(RequestBody *b) {
  if (b == NULL) return;
  if (b->file != NULL) fclose(b->file);
  g_unlink(b->path); /* a mapping made by finish stays valid */
  g_free(b->path);
  g_free(b);
}
