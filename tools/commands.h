/* The subcommands of the i2vgen tool: each parses its own options (GOptionContext) and returns
 * the process exit status (0 ok, 1 failure with a message on stderr, 2 bad usage). */
#pragma once

#include <glib.h>
#include <i2v/i2v.h>

typedef struct {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
} I2vCommand;

/* Prints "i2vgen NAME: message" for err on stderr, frees err and returns 1. */
int cmd_fail(const char *name, GError *err);

/* Parses an unsigned 64-bit integer in decimal or 0x-hex (seeds); the error names option. */
gboolean cmd_parse_u64(const char *text, const char *option, guint64 *out, GError **error);

/* Parses --sampler (NULL: the default, ddim); the error names the option, the value and the
 * samplers there are. */
gboolean cmd_parse_sampler(const char *text, I2vSamplerKind *out, GError **error);

/* TRUE when the parse left no positional argument (argv[0] aside); else an error naming it. */
gboolean cmd_no_arguments(int argc, char **argv, GError **error);

/* TRUE when value (NULL allowed) is valid UTF-8; else an error naming option and the byte. */
gboolean cmd_check_text(const char *option, const char *value, GError **error);

/* Adds the memory-saving options (--sequential-guidance, --attention-chunk, --decode-tile,
 * --decode-tile-overlap; I2vParams) writing into p to ctx's main group; p must outlive the
 * parse. */
void cmd_add_memory_options(GOptionContext *ctx, I2vParams *p);

/* Writes every config file and the tokenizer into out_dir (cmd_mkmodel.c). config is "tiny",
 * "i2vgen-xl" or a model directory whose configs (and tokenizer, when it has one) are copied. */
gboolean cmd_write_configs(const char *config, const char *out_dir, GError **error);

/* Removes dir and everything under it (best effort: a temporary directory of the tool's own). */
void cmd_remove_tree(const char *dir);
