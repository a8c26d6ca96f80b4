/* The data folder of the service. */
#include "job_files.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "job.h"

static gboolean make_dir(const char *path, GError **error) {
  if (g_mkdir_with_parents(path, 0700) == 0) return TRUE;
  int e = errno;
  g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot create the data folder %s: %s",
              path, g_strerror(e));
  return FALSE;
}

/* Removes every plain file of dir (what a crash left half-written). */
static void empty_dir(const char *dir) {
  GDir *d = g_dir_open(dir, 0, NULL);
  if (d == NULL) return;
  const char *name;
  while ((name = g_dir_read_name(d)) != NULL) {
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_unlink(path);
  }
  g_dir_close(d);
}

JobFiles *job_files_open(const char *root, const char *node, GError **error) {
  g_autoptr(JobFiles) f = g_new0(JobFiles, 1);
  f->root = g_strdup(root);
  f->uploads = g_build_filename(root, "uploads", NULL);
  f->videos = g_build_filename(root, "videos", NULL);
  f->tmp = g_build_filename(root, "tmp", node, NULL);
  if (!make_dir(f->uploads, error) || !make_dir(f->videos, error) || !make_dir(f->tmp, error))
    return NULL;
  empty_dir(f->tmp);
  return g_steal_pointer(&f);
}

gboolean job_files_node_valid(const char *name) {
  if (name == NULL || name[0] == '\0' || name[0] == '.' || strlen(name) > 200) return FALSE;
  for (const char *c = name; *c != '\0'; c++)
    if (!g_ascii_isalnum(*c) && *c != '.' && *c != '_' && *c != '-') return FALSE;
  return TRUE;
}

char *job_files_node_name(void) {
  char *name = g_strdup_printf("%s-%d", g_get_host_name(), (int)getpid());
  for (char *c = name; *c != '\0'; c++)
    if (!g_ascii_isalnum(*c) && *c != '.' && *c != '_' && *c != '-') *c = '-';
  if (name[0] == '.') name[0] = '-';
  return name;
}

void job_files_free(JobFiles *f) {
  if (f == NULL) return;
  g_free(f->root);
  g_free(f->uploads);
  g_free(f->videos);
  g_free(f->tmp);
  g_free(f);
}

char *job_files_input(const JobFiles *f, const char *id) {
  g_return_val_if_fail(job_id_valid(id), NULL);
  return g_build_filename(f->uploads, id, NULL);
}

char *job_files_video(const JobFiles *f, const char *id) {
  g_return_val_if_fail(job_id_valid(id), NULL);
  g_autofree char *name = g_strconcat(id, ".mp4", NULL);
  return g_build_filename(f->videos, name, NULL);
}

char *job_files_thumbnail(const JobFiles *f, const char *id) {
  g_return_val_if_fail(job_id_valid(id), NULL);
  g_autofree char *name = g_strconcat(id, ".png", NULL);
  return g_build_filename(f->videos, name, NULL);
}

char *job_files_temp(const JobFiles *f, const char *suffix) {
  char id[JOB_ID_LEN + 1];
  job_id_new(id);
  g_autofree char *name = g_strconcat(id, suffix, NULL);
  return g_build_filename(f->tmp, name, NULL);
}

gboolean job_files_commit(const char *path, const char *dest, GError **error) {
  int fd = g_open(path, O_RDONLY | O_CLOEXEC, 0);
  gboolean ok = fd >= 0 && fsync(fd) == 0;
  int e = errno;
  if (fd >= 0) close(fd);
  if (ok && g_rename(path, dest) != 0) {
    ok = FALSE;
    e = errno;
  }
  if (!ok)
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot move %s to %s: %s", path, dest,
                g_strerror(e));
  return ok;
}

void job_files_remove_input(const JobFiles *f, const char *id) {
  g_autofree char *input = job_files_input(f, id);
  g_unlink(input);
}

void job_files_remove(const JobFiles *f, const char *id) {
  g_autofree char *video = job_files_video(f, id);
  g_autofree char *thumb = job_files_thumbnail(f, id);
  job_files_remove_input(f, id);
  g_unlink(video);
  g_unlink(thumb);
}
