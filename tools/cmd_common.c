/* Helpers shared by the i2vgen subcommands. */
#include <stdio.h>

#include "commands.h"
#include <i2v/error.h>

int cmd_fail(const char *name, GError *err) {
  fprintf(stderr, "i2vgen %s: %s\n", name, err ? err->message : "failed");
  g_clear_error(&err);
  return 1;
}

gboolean cmd_parse_u64(const char *text, const char *option, guint64 *out, GError **error) {
  gboolean hex = g_str_has_prefix(text, "0x") || g_str_has_prefix(text, "0X");
  if (g_ascii_string_to_unsigned(hex ? text + 2 : text, hex ? 16 : 10, 0, G_MAXUINT64, out, NULL))
    return TRUE;
  g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
              "%s '%s': expected an unsigned 64-bit integer (decimal or 0x-hex)", option, text);
  return FALSE;
}
