/* The web page of `i2vgen serve` (tools/serve/web/, compiled in as a GResource): GET /, /app.js
 * and /style.css, a client of the public /v1 API only. */
#pragma once

#include <libsoup/soup.h>

G_BEGIN_DECLS

/* TRUE when path is one of the page's files (served without the API key: they hold no data). */
gboolean http_page_has(const char *path);

/* Responds with the page file at path (http_page_has(path) must hold). */
void http_page_send(SoupServerMessage *msg, const char *path);

G_END_DECLS
