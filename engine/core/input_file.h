/* Opening the engine's input files (weights, JSON configs, tokenizer files, LoRA files, images)
 * so that no path can hang or confuse a load: only regular files are read. A FIFO would block
 * open() until a writer comes, a device or a socket would be read or mapped as if it were data,
 * a directory gives mmap()'s "No such device"; each is refused with an error naming the path and
 * what it is. Errors: I2V_ERROR_MISSING when nothing exists at path, I2V_ERROR_IO otherwise. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Opens path read-only if it is a regular file: opened with O_NONBLOCK (a FIFO without a writer
 * cannot block), fstat()ed, refused unless regular ("is a directory", "is a FIFO", "is a
 * symlink loop", ...), then switched back to blocking reads. Returns the descriptor (the caller
 * closes it) or -1 with error. */
int i2v_input_open(const char *path, GError **error);

/* Checks that path opens as a regular file (i2v_input_open, then closed): for checking a path
 * given by a user before expensive work. */
gboolean i2v_input_check(const char *path, GError **error);

/* Maps the regular file path read-only (g_mapped_file_unref), or NULL with error. */
GMappedFile *i2v_input_map(const char *path, GError **error);

/* Reads the whole regular file path, refusing one of more than max_bytes (I2V_ERROR_FORMAT).
 * Returns new bytes (g_bytes_unref) or NULL with error. */
GBytes *i2v_input_read(const char *path, gsize max_bytes, GError **error);

G_END_DECLS
