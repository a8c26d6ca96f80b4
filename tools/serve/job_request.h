/* The fields of POST /v1/videos turned into a job's parameters: the preset (the request's or the
 * server's default) gives the starting values, the request's fields replace them, and every
 * value is checked against the catalog's ranges. `seconds` and `num_frames`/`fps` are
 * reconciled: num_frames wins when given (and a seconds that disagrees with it by more than half
 * a frame is an error); otherwise seconds gives num_frames = round(seconds × fps); otherwise the
 * preset's num_frames. Interpolation does not change the duration. */
#pragma once

#include "api_error.h"
#include "catalog.h"
#include "job.h"

G_BEGIN_DECLS

/* The text fields a create request may carry (besides the image), NULL-terminated. */
extern const char *const job_request_fields[];

/* Fills out from fields (field name → text value; unknown names are errors). On error *err
 * names the field and the accepted values (HTTP 400) and out is cleared. */
gboolean job_request_parse(const ServeCatalog *c, GHashTable *fields, JobParams *out,
                           ApiError **err);

G_END_DECLS
