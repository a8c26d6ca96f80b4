/* Shortened user strings for error messages (see echo.h). */
#include "echo.h"

#include <string.h>

/* How many bytes of s (len bytes) a message repeats: all, or I2V_ECHO_MAX cut back to the start
 * of a UTF-8 character. */
static gsize echo_length(const char *s, gsize len) {
  if (len <= I2V_ECHO_MAX) return len;
  gsize cut = I2V_ECHO_MAX;
  while (cut > 0 && ((guchar)s[cut] & 0xC0) == 0x80) cut--; /* not inside a UTF-8 sequence */
  return cut;
}

const char *i2v_echo(const char *s, I2vEcho *buf) {
  gsize len = strlen(s), cut = echo_length(s, len);
  if (cut == len) return s;
  g_snprintf(buf->text, sizeof buf->text, "%.*s… (%" G_GSIZE_FORMAT " bytes)", (int)cut, s, len);
  return buf->text;
}

char *i2v_quote_value(const char *s) {
  if (s == NULL) return g_strdup("(none)");
  gsize len = strlen(s), cut = echo_length(s, len);
  char *head = g_strndup(s, cut);
  /* keep valid UTF-8 readable: every byte >= 0x80 is an exception to the escaping */
  char high[129];
  for (int i = 0; i < 128; i++) high[i] = (char)(0x80 + i);
  high[128] = '\0';
  char *esc = g_strescape(head, g_utf8_validate(head, -1, NULL) ? high : NULL);
  char *out = cut < len ? g_strdup_printf("\"%s…\" (%" G_GSIZE_FORMAT " bytes)", esc, len)
                        : g_strdup_printf("\"%s\"", esc);
  g_free(esc);
  g_free(head);
  return out;
}
