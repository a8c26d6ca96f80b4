/* Regular-file-only input (see input_file.h). */
#include "input_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <i2v/error.h>
#include "echo.h"

/* What a non-regular file is, for "PATH: is a FIFO, expected a regular file". */
static const char *file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "is a directory";
  if (S_ISFIFO(mode)) return "is a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "is a socket";
  if (S_ISCHR(mode)) return "is a character device";
  if (S_ISBLK(mode)) return "is a block device";
  return "is not a regular file";
}

/* The error for path, which is not a regular file (mode from stat). */
static void set_kind_error(const char *path, mode_t mode, GError **error) {
  I2vEcho shown;
  g_set_error(error, I2V_ERROR, I2V_ERROR_IO, "%s: %s, expected a regular file",
              i2v_echo(path, &shown), file_kind(mode));
}

/* The error of a failed open() of path: what is there when that says more than errno (a socket
 * gives ENXIO, "No such device or address"). */
static void set_open_error(const char *path, int err, GError **error) {
  I2vEcho shown;
  struct stat st;
  if (err == ENOENT)
    g_set_error(error, I2V_ERROR, I2V_ERROR_MISSING, "%s: file not found", i2v_echo(path, &shown));
  else if (err == ELOOP)
    g_set_error(error, I2V_ERROR, I2V_ERROR_IO,
                "%s: is a symlink loop (too many levels of symbolic links), expected a regular "
                "file",
                i2v_echo(path, &shown));
  else if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
    set_kind_error(path, st.st_mode, error);
  else
    g_set_error(error, I2V_ERROR, I2V_ERROR_IO, "%s: cannot open the file: %s",
                i2v_echo(path, &shown), g_strerror(err));
}

int i2v_input_open(const char *path, GError **error) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    set_open_error(path, errno, error);
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    g_set_error(error, I2V_ERROR, I2V_ERROR_IO, "%s: cannot stat the file: %s", path,
                g_strerror(err));
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    set_kind_error(path, st.st_mode, error);
    return -1;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    int err = errno;
    close(fd);
    g_set_error(error, I2V_ERROR, I2V_ERROR_IO, "%s: cannot set up the file: %s", path,
                g_strerror(err));
    return -1;
  }
  return fd;
}

gboolean i2v_input_check(const char *path, GError **error) {
  int fd = i2v_input_open(path, error);
  if (fd < 0) return FALSE;
  close(fd);
  return TRUE;
}

GMappedFile *i2v_input_map(const char *path, GError **error) {
  int fd = i2v_input_open(path, error);
  if (fd < 0) return NULL;
  GError *err = NULL;
  GMappedFile *map = g_mapped_file_new_from_fd(fd, FALSE, &err);
  close(fd);
  if (map == NULL) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_IO, "%s: cannot map the file: %s", path, err->message);
    g_error_free(err);
  }
  return map;
}

GBytes *i2v_input_read(const char *path, gsize max_bytes, GError **error) {
  int fd = i2v_input_open(path, error);
  if (fd < 0) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0 || (guint64)st.st_size > max_bytes) {
    g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                "%s: the file is %" G_GUINT64_FORMAT " bytes, more than the %" G_GSIZE_FORMAT
                " bytes a file of this kind may have",
                path, (guint64)st.st_size, max_bytes);
    close(fd);
    return NULL;
  }
  /* read up to the size fstat gave (plus one byte, to see a file that grew past the limit) */
  gsize cap = (gsize)st.st_size + 1, len = 0;
  char *buf = g_malloc(cap);
  for (;;) {
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      g_set_error(error, I2V_ERROR, I2V_ERROR_IO, "%s: cannot read the file: %s", path,
                  g_strerror(errno));
      g_free(buf);
      close(fd);
      return NULL;
    }
    if (n == 0) break;
    len += (gsize)n;
    if (len == cap) {
      if (cap > max_bytes) {
        g_set_error(error, I2V_ERROR, I2V_ERROR_FORMAT,
                    "%s: the file grew past the %" G_GSIZE_FORMAT
                    " bytes a file of this kind may have while it was read",
                    path, max_bytes);
        g_free(buf);
        close(fd);
        return NULL;
      }
      cap = MIN(cap * 2, max_bytes + 1);
      buf = g_realloc(buf, cap);
    }
  }
  close(fd);
  return g_bytes_new_take(buf, len);
}
