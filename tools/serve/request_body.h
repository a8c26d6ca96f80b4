/* A request body streamed to a file as it arrives, with a size limit enforced while reading: a
 * body above the limit is never stored past it. The file is read back mapped, not copied. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct RequestBody RequestBody;

/* A body to be written to path (created on the first chunk) holding at most limit bytes. */
RequestBody *request_body_new(const char *path, gsize limit);

/* Appends a chunk; FALSE when it would pass the limit (the file is then removed and later
 * chunks are dropped) or cannot be written, with an error saying which. */
gboolean request_body_write(RequestBody *body, const void *data, gsize size, GError **error);

/* TRUE once a chunk passed the limit. */
gboolean request_body_too_large(const RequestBody *body);

/* Closes the file and returns its contents, mapped (empty for no body); a new GBytes. */
GBytes *request_body_finish(RequestBody *body, GError **error);

/* Frees body and removes its file (NULL allowed). */
void request_body_free(RequestBody *body);

G_END_DECLS
