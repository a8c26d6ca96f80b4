/* User-supplied strings quoted for error messages: escaped, and cut to a readable length so that a
 * 100 MB argument never ends up in a message in full. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The longest part of a value echoed in a message, in characters. */
#define I2V_QUOTE_MAX 80

/* s in double quotes, C-escaped, cut after I2V_QUOTE_MAX characters with "…" (and the total
 * length in bytes) when longer; "(none)" for NULL. Invalid UTF-8 is shown escaped. Newly
 * allocated (g_free). */
char *i2v_quote_value(const char *s);

G_END_DECLS
