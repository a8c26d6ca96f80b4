/* The parts of the job queue interface every implementation shares. */
#include "job_queue.h"

G_DEFINE_QUARK(i2vgen - job - queue - error - quark, job_queue_error)

void job_queue_free(JobQueue *q) {
  if (q != NULL) q->ops->free(q);
}
