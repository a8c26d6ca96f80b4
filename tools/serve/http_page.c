/* The web page: its files are a GResource (web.gresource.xml) looked up in the resource
 * itself rather than the global registry, so that the static library's constructor need not
 * be linked in. */
#include "http_page.h"

#include <string.h>

#include "web-resources.h"

#define PAGE_PREFIX "/org/i2vgen/serve/web"

static const struct {
  const char *path, *file, *content_type;
} page_files[] = {
    {"/", "/index.html", "text/html; charset=utf-8"},
    {"/style.css", "/style.css", "text/css; charset=utf-8"},
    {"/app.js", "/app.js", "text/javascript; charset=utf-8"},
};

static int page_file(const char *path) {
  for (gsize i = 0; i < G_N_ELEMENTS(page_files); i++)
    if (strcmp(path, page_files[i].path) == 0) return (int)i;
  return -1;
}

gboolean http_page_has(const char *path) {
  return page_file(path) >= 0;
}

void http_page_send(SoupServerMessage *msg, const char *path) {
  int i = page_file(path);
  g_autofree char *name = g_strconcat(PAGE_PREFIX, page_files[i].file, NULL);
  /* compiled in by the build: a lookup can only fail if the build is broken */
  g_autoptr(GBytes) data = g_resource_lookup_data(serve_web_get_resource(), name, 0, NULL);
  g_return_if_fail(data != NULL);
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  /* the page loads nothing from elsewhere; clips and previews are blob: URLs it makes itself */
  soup_message_headers_replace(h, "Content-Security-Policy",
                               "default-src 'self'; img-src 'self' blob: data:; "
                               "media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'");
  soup_message_headers_replace(h, "X-Content-Type-Options", "nosniff");
  soup_message_headers_replace(h, "Cache-Control", "no-cache");
  soup_server_message_set_status(msg, 200, NULL);
  soup_server_message_set_response(msg, page_files[i].content_type, SOUP_MEMORY_COPY,
                                   g_bytes_get_data(data, NULL), g_bytes_get_size(data));
}
