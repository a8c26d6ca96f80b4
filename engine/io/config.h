/* Reading a config.json: the one set of accessors every network, the scheduler and the feature
 * extractor use. Every value has a range (docs/model.md lists them, key by key): a value that is
 * missing, of the wrong type, outside its range or too large for the engine's int is an
 * I2V_ERROR_CONFIG error naming the file, the key, the value found and what was expected — never
 * a default silently substituted, never a 64-bit value silently truncated. */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* A parsed config and the name messages give it ("unet/config.json"). */
typedef struct {
  JsonObject *json;
  char file[96];
} I2vConfig;

/* Releases c's object (a zeroed config is fine). */
void i2v_config_clear(I2vConfig *c);

/* An integer in [lo, hi] (lo, hi within int's range). */
gboolean i2v_config_int(const I2vConfig *c, const char *key, gint64 lo, gint64 hi, int *out,
                        GError **error);

/* The same, def when the key is absent or null. */
gboolean i2v_config_int_or(const I2vConfig *c, const char *key, gint64 lo, gint64 hi, int def,
                           int *out, GError **error);

/* A finite number in [lo, hi] (an integer is accepted as a number). */
gboolean i2v_config_double(const I2vConfig *c, const char *key, double lo, double hi, double *out,
                           GError **error);

/* The same, def when the key is absent or null. */
gboolean i2v_config_double_or(const I2vConfig *c, const char *key, double lo, double hi, double def,
                              double *out, GError **error);

/* An array of 1..max_n integers each in [lo, hi]: *out is newly allocated (g_free), *n its
 * length. */
gboolean i2v_config_ints(const I2vConfig *c, const char *key, int max_n, gint64 lo, gint64 hi,
                         int **out, int *n, GError **error);

/* An array of exactly n finite numbers each in [lo, hi], into out[0..n-1]. */
gboolean i2v_config_doubles(const I2vConfig *c, const char *key, int n, double lo, double hi,
                            double *out, GError **error);

/* A string (owned by the config). */
gboolean i2v_config_string(const I2vConfig *c, const char *key, const char **out, GError **error);

/* An array of exactly n strings (any length when n < 0): a NULL-terminated g_strv
 * (g_strfreev). */
gboolean i2v_config_strings(const I2vConfig *c, const char *key, int n, char ***out,
                            GError **error);

/* A boolean, def when the key is absent or null. */
gboolean i2v_config_bool_or(const I2vConfig *c, const char *key, gboolean def, gboolean *out,
                            GError **error);

/* One of the NULL-terminated choices: *index is its position. def (one of the choices) is taken
 * when the key is absent or null; with def NULL the key is required. */
gboolean i2v_config_choice(const I2vConfig *c, const char *key, const char *def,
                           const char *const *choices, int *index, GError **error);

G_END_DECLS
