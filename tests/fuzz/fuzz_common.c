/* Helpers of the fuzz targets (see fuzz_common.h). */
#include "fuzz_common.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "golden.h"

void fuzz_file_init(FuzzFile *f, const char *name) {
  f->fd = memfd_create(name, MFD_CLOEXEC);
  if (f->fd < 0) g_error("memfd_create: %s", g_strerror(errno));
  g_snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

void fuzz_file_set(FuzzFile *f, const guint8 *data, size_t size) {
  if (ftruncate(f->fd, 0) != 0 || (size > 0 && pwrite(f->fd, data, size, 0) != (ssize_t)size))
    g_error("writing the memory file: %s", g_strerror(errno));
}

static GPtrArray *tmp_dirs; /* removed at exit */

static void remove_tmp_dirs(void) {
  for (guint i = 0; i < tmp_dirs->len; i++) golden_tree_remove(g_ptr_array_index(tmp_dirs, i));
  g_ptr_array_unref(tmp_dirs);
}

char *fuzz_tmp_dir(void) {
  GError *err = NULL;
  char *dir = g_dir_make_tmp("i2v-fuzz-XXXXXX", &err);
  if (dir == NULL) g_error("%s", err->message);
  if (tmp_dirs == NULL) {
    tmp_dirs = g_ptr_array_new_with_free_func(g_free);
    atexit(remove_tmp_dirs);
  }
  g_ptr_array_add(tmp_dirs, g_strdup(dir));
  return dir;
}

void fuzz_link(const char *dir, const char *name, const char *target) {
  char *path = g_build_filename(dir, name, NULL), *parent = g_path_get_dirname(path);
  if (g_mkdir_with_parents(parent, 0700) != 0 || symlink(target, path) != 0)
    g_error("%s: %s", path, g_strerror(errno));
  g_free(parent);
  g_free(path);
}

static GLogWriterOutput drop_log(GLogLevelFlags level, const GLogField *fields, gsize n,
                                 gpointer user) {
  if (level & (G_LOG_FLAG_FATAL | G_LOG_LEVEL_ERROR))
    return g_log_writer_standard_streams(level, fields, n, user);
  return G_LOG_WRITER_HANDLED;
}

void fuzz_quiet(void) {
  g_log_set_writer_func(drop_log, NULL, NULL);
  g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL); /* a critical is a bug found */
}
