/* The files of the service's jobs under the --data folder:
 *
 *   uploads/ID       the input image as received (until the job ends)
 *   videos/ID.mp4    the finished clip
 *   videos/ID.png    its first frame (the thumbnail)
 *   tmp/[NODE/]      request bodies and outputs being written; emptied at start
 *
 * The folder may be shared by the processes of a cluster (a network file system): each then
 * writes under a tmp/NODE/ of its own, so that emptying it at start touches no one else's.
 *
 * Outputs are written under tmp/ and renamed into videos/ when complete (same file system), so
 * a reader or a crash never meets a half-written file. Ids are checked (job_id_valid) before
 * they become paths. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  char *root, *uploads, *videos, *tmp;
} JobFiles;

/* Creates the folders under root when missing and empties the temporary folder (tmp/, or
 * tmp/NODE/ when node is not NULL); NULL with an error naming the folder. */
JobFiles *job_files_open(const char *root, const char *node, GError **error);

/* TRUE when name can be a node's folder under tmp/ (and a worker's name in Redis and in metric
 * labels): letters, digits, '.', '_' and '-', not starting with '.'. */
gboolean job_files_node_valid(const char *name);

/* This process's default node name: the host name and the process id, "HOST-PID" (characters
 * job_files_node_valid refuses become '-'); a new string (g_free). */
char *job_files_node_name(void);

/* Frees files (NULL allowed). */
void job_files_free(JobFiles *files);

/* The path of a job's input image; a new string (g_free). */
char *job_files_input(const JobFiles *files, const char *id);

/* The path of a job's MP4; a new string (g_free). */
char *job_files_video(const JobFiles *files, const char *id);

/* The path of a job's thumbnail PNG; a new string (g_free). */
char *job_files_thumbnail(const JobFiles *files, const char *id);

/* A new unique path under tmp/ ending in suffix (nothing is created); g_free. */
char *job_files_temp(const JobFiles *files, const char *suffix);

/* Flushes path to disk and renames it to dest (atomic within the file system). */
gboolean job_files_commit(const char *path, const char *dest, GError **error);

/* Removes the input and the outputs of a job (those that exist). */
void job_files_remove(const JobFiles *files, const char *id);

/* Removes the input of a job (it is not needed once the job has ended). */
void job_files_remove_input(const JobFiles *files, const char *id);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(JobFiles, job_files_free)

G_END_DECLS
