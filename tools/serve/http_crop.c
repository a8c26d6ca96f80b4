/* /v1/crop: the engine's own resize-and-crop arithmetic for an input image, so that clients (the
 * web page's preview) show the part of the image the model will see without repeating the
 * rule, whose Python float floor division they could not reproduce exactly. */
#include "http_routes.h"

#include "preprocess.h"

/* The largest side either size may have: a resized side is at most the product of two sides,
 * and 46340² < 2³¹ keeps it an int. */
#define CROP_MAX_SIDE 46340

/* Parses the query parameter name as "WxH"; FALSE after responding 400. */
static gboolean query_size(SoupServerMessage *msg, GHashTable *query, const char *name, int *w,
                           int *h) {
  const char *v = query ? g_hash_table_lookup(query, name) : NULL;
  g_auto(GStrv) parts = g_strsplit_set(v ? v : "", "xX", 3);
  guint64 a, b;
  if (g_strv_length(parts) == 2 &&
      g_ascii_string_to_unsigned(parts[0], 10, 1, CROP_MAX_SIDE, &a, NULL) &&
      g_ascii_string_to_unsigned(parts[1], 10, 1, CROP_MAX_SIDE, &b, NULL)) {
    *w = (int)a;
    *h = (int)b;
    return TRUE;
  }
  http_fail(msg, 400, v ? "invalid_value" : "missing_field", name,
            "%s '%s': expected WIDTHxHEIGHT with each side from 1 to %d", name, v ? v : "",
            CROP_MAX_SIDE);
  return FALSE;
}

void http_crop(SoupServerMessage *msg, GHashTable *query) {
  int src_w, src_h, w, h, resized_w, resized_h, x, y;
  if (!query_size(msg, query, "image", &src_w, &src_h) || !query_size(msg, query, "size", &w, &h))
    return;
  i2v_center_crop_wide_size(src_w, src_h, w, h, &resized_w, &resized_h, &x, &y);
  /* the crop in the input image's pixels, for drawing on it; may reach outside it by a fraction
   * of a pixel where the resized image is one pixel short (the engine fills that with zeros),
   * which with a side of 1 can make it 0 */
  double sx = (double)src_w / MAX(resized_w, 1), sy = (double)src_h / MAX(resized_h, 1);
  char num[4][G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_formatd(num[0], sizeof(num[0]), "%.6g", x * sx);
  g_ascii_formatd(num[1], sizeof(num[1]), "%.6g", y * sy);
  g_ascii_formatd(num[2], sizeof(num[2]), "%.6g", w * sx);
  g_ascii_formatd(num[3], sizeof(num[3]), "%.6g", h * sy);
  http_send_json(msg, 200,
                 g_strdup_printf("{\"object\":\"crop\",\"image\":\"%dx%d\",\"size\":\"%dx%d\","
                                 "\"resized\":\"%dx%d\",\"x\":%d,\"y\":%d,"
                                 "\"image_crop\":{\"x\":%s,\"y\":%s,\"width\":%s,\"height\":%s}}",
                                 src_w, src_h, w, h, resized_w, resized_h, x, y, num[0], num[1],
                                 num[2], num[3]));
}
