/* Repeating user-given strings in error messages. A message names the value at fault, but a
 * 100 MB --out pattern or tensor name repeated in full makes a 100 MB message (in logs, on the
 * bus, in a service's reply): longer strings are cut, and the cut says how long they were. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Longest string a message repeats in full, in bytes. */
#define I2V_ECHO_MAX 160

/* Room for one shortened string: I2V_ECHO_MAX bytes, "…" and " (N bytes)". */
typedef struct {
  char text[I2V_ECHO_MAX + 48];
} I2vEcho;

/* s as a message may repeat it: s itself when at most I2V_ECHO_MAX bytes, else its first bytes
 * (cut at a UTF-8 character boundary) + "… (N bytes)" written into buf. The result lives as long
 * as s and buf. */
const char *i2v_echo(const char *s, I2vEcho *buf);

/* s cut as i2v_echo cuts it, in double quotes and C-escaped (controls, quotes and backslashes;
 * UTF-8 text stays readable, invalid bytes are shown as octal escapes): for values that may hold
 * anything, such as a config string or a device name. "(none)" for NULL. Newly allocated
 * (g_free). */
char *i2v_quote_value(const char *s);

G_END_DECLS
