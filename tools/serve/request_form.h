/* The body of POST /v1/videos: multipart/form-data (what the OpenAI SDKs send: text fields and
 * the input_reference file) or a JSON object with the same fields, input_reference then being
 * {"image_url": URL} or a URL string. Text fields are collected by name for job_request. */
#pragma once

#include "api_error.h"

G_BEGIN_DECLS

typedef struct {
  GHashTable *fields; /* field name → text value */
  GBytes *image;      /* the input_reference file, or NULL */
  char *image_url;    /* input_reference[image_url] (data:, http:, https:), or NULL */
} RequestForm;

/* Parses body of the given Content-Type into out (cleared first). Errors: 400 for a malformed
 * body or a repeated field, 415 for another content type. */
gboolean request_form_parse(const char *content_type, GBytes *body, RequestForm *out,
                            ApiError **err);

/* Frees what out holds and zeroes it. */
void request_form_clear(RequestForm *form);

G_END_DECLS
