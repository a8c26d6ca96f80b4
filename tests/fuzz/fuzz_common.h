/* Shared by the libFuzzer targets (tests/fuzz/README.md): inputs become files the engine's
 * readers open by path, without touching the disk, and the engine's log messages are dropped. */
#pragma once

#include <glib.h>

/* A memory file (memfd) reachable by a path: /proc/self/fd/N opens as a regular file, as the
 * engine's readers require. */
typedef struct {
  int fd;
  char path[64];
} FuzzFile;

/* Creates an empty memory file (name shows in /proc, for debugging); aborts on failure. */
void fuzz_file_init(FuzzFile *f, const char *name);

/* Replaces the contents of f by size bytes of data. */
void fuzz_file_set(FuzzFile *f, const guint8 *data, size_t size);

/* A new temporary directory (g_free the path), removed with what it holds when the process
 * exits normally. */
char *fuzz_tmp_dir(void);

/* Makes dir/name a symlink to target, creating the folders between; aborts on failure. */
void fuzz_link(const char *dir, const char *name, const char *target);

/* Drops every log message but fatal ones (the config accessors warn about wrong types, which a
 * fuzzer produces millions of) and makes criticals fatal (a failed g_return_if_fail is a bug the
 * fuzzer found). Call once, first. */
void fuzz_quiet(void);
