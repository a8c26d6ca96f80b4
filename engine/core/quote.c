/* Quoting user values for messages (quote.h). */
#include "quote.h"

#include <string.h>

char *i2v_quote_value(const char *s) {
  if (s == NULL) return g_strdup("(none)");
  size_t len = strlen(s);
  /* cut at a character boundary when the text is UTF-8; bytes otherwise (g_strescape shows them) */
  size_t cut = len;
  if (g_utf8_validate(s, (gssize)len, NULL) && g_utf8_strlen(s, (gssize)len) > I2V_QUOTE_MAX)
    cut = (size_t)(g_utf8_offset_to_pointer(s, I2V_QUOTE_MAX) - s);
  else if (!g_utf8_validate(s, (gssize)len, NULL) && len > I2V_QUOTE_MAX)
    cut = I2V_QUOTE_MAX;
  char *head = g_strndup(s, cut);
  /* keep UTF-8 readable, escape controls and quotes (the exceptions list: every byte ≥ 0x80) */
  char high[129];
  for (int i = 0; i < 128; i++) high[i] = (char)(0x80 + i);
  high[128] = '\0';
  char *esc = g_strescape(head, g_utf8_validate(s, (gssize)len, NULL) ? high : NULL);
  char *out =
      cut < len ? g_strdup_printf("\"%s…\" (%zu bytes)", esc, len) : g_strdup_printf("\"%s\"", esc);
  g_free(esc);
  g_free(head);
  return out;
}
