/* The exact prompt of a golden tokenizer case, shared by the tokenizer and CLI tests. */
#pragma once

#include <json-glib/json-glib.h>
#include <string.h>

/* The prompt of a golden case from its exact bytes (prompt_utf8_hex), less any NUL bytes: a C
 * string or a process argument cannot hold them, and the tokenizer drops U+0000 anyway.
 * New string (g_free). */
static inline char *golden_case_prompt(JsonObject *c) {
  const char *hex = json_object_get_string_member(c, "prompt_utf8_hex");
  gsize n = 0;
  char *text = g_malloc(strlen(hex) / 2 + 1);
  for (const char *h = hex; h[0] != '\0' && h[1] != '\0'; h += 2) {
    char byte = (char)(g_ascii_xdigit_value(h[0]) << 4 | g_ascii_xdigit_value(h[1]));
    if (byte != '\0') text[n++] = byte;
  }
  text[n] = '\0';
  return text;
}
