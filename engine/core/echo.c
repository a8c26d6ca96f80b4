/* Shortened user strings for error messages (see echo.h). */
#include "echo.h"

#include <string.h>

const char *i2v_echo(const char *s, I2vEcho *buf) {
  gsize len = strlen(s);
  if (len <= I2V_ECHO_MAX) return s;
  gsize cut = I2V_ECHO_MAX;
  while (cut > 0 && ((guchar)s[cut] & 0xC0) == 0x80) cut--; /* not inside a UTF-8 sequence */
  g_snprintf(buf->text, sizeof buf->text, "%.*s… (%" G_GSIZE_FORMAT " bytes)", (int)cut, s, len);
  return buf->text;
}
