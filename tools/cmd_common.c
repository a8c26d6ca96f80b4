/* Helpers shared by the i2vgen subcommands. */
#include <stdio.h>

#include <glib/gstdio.h>

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

gboolean cmd_parse_sampler(const char *text, I2vSamplerKind *out, GError **error) {
  if (i2v_sampler_parse(text, out, error)) return TRUE;
  g_prefix_error(error, "--sampler: ");
  return FALSE;
}

gboolean cmd_no_arguments(int argc, char **argv, GError **error) {
  if (argc <= 1) return TRUE;
  g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
              "unexpected argument '%s' (this command takes options only)", argv[1]);
  return FALSE;
}

gboolean cmd_check_text(const char *option, const char *value, GError **error) {
  const char *end;
  if (value == NULL || g_utf8_validate(value, -1, &end)) return TRUE;
  g_set_error(error, I2V_ERROR, I2V_ERROR_INVALID,
              "%s: not valid UTF-8 (byte 0x%02x at offset %d); give the text in UTF-8", option,
              (unsigned char)*end, (int)(end - value));
  return FALSE;
}

void cmd_add_memory_options(GOptionContext *ctx, I2vParams *p) {
  const GOptionEntry entries[] = {
      {"sequential-guidance", 0, 0, G_OPTION_ARG_NONE, &p->sequential_guidance,
       "run the two guidance branches one after the other: half the UNet activations", NULL},
      {"attention-chunk", 0, 0, G_OPTION_ARG_INT, &p->attention_chunk,
       "UNet transformers on at most N frames at a time (0: all)", "N"},
      {"decode-tile", 0, 0, G_OPTION_ARG_INT, &p->decode_tile,
       "VAE decode in tiles of N latent pixels (0: automatic above 768 pixels, -1: never)", "N"},
      {"decode-tile-overlap", 0, 0, G_OPTION_ARG_INT, &p->decode_tile_overlap,
       "latent pixels neighbouring decode tiles share (8)", "N"},
      G_OPTION_ENTRY_NULL};
  g_option_context_add_main_entries(ctx, entries, NULL);
}

void cmd_remove_tree(const char *dir) {
  GDir *d = g_dir_open(dir, 0, NULL);
  for (const char *name; d != NULL && (name = g_dir_read_name(d)) != NULL;) {
    char *path = g_build_filename(dir, name, NULL);
    if (g_file_test(path, G_FILE_TEST_IS_DIR) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK))
      cmd_remove_tree(path);
    else
      g_unlink(path);
    g_free(path);
  }
  if (d != NULL) g_dir_close(d);
  g_rmdir(dir);
}
