/* The config accessors (io/config.h) on hand-written configs — types, ranges, arrays, choices,
 * the shape of every message — and, on copies of the tiny model, that every network, the scheduler
 * and the feature extractor refuse out-of-range values at load with an error naming the file, the
 * key, the value and the range: values that used to divide by zero, abort on a huge allocation,
 * overflow, be truncated to 32 bits or spend minutes before an unrelated error. */
#include <string.h>

#include "config.h"
#include "golden.h"
#include <i2v/i2v.h>

static JsonParser *parser;

/* A config over the JSON text json, labelled "c.json". */
static I2vConfig config_of(const char *json) {
  if (parser != NULL) g_object_unref(parser);
  parser = json_parser_new();
  g_assert_true(json_parser_load_from_data(parser, json, -1, NULL));
  return (I2vConfig){json_node_get_object(json_parser_get_root(parser)), "c.json"};
}

static void test_values(void) {
  I2vConfig c =
      config_of("{\"i\": 3, \"f\": 2.0, \"d\": 0.5, \"s\": \"gelu\", \"b\": true,"
                " \"n\": null, \"ia\": [1, 2, 3], \"sa\": [\"A\", \"B\"], \"da\": [0.5, 1]}");
  int i;
  double d;
  const char *s;
  gboolean b;
  g_assert_true(i2v_config_int(&c, "i", 1, 10, &i, NULL) && i == 3);
  g_assert_true(i2v_config_int(&c, "f", 1, 10, &i, NULL) && i == 2);       /* an integral float */
  g_assert_true(i2v_config_int_or(&c, "n", 1, 10, 7, &i, NULL) && i == 7); /* null */
  g_assert_true(i2v_config_int_or(&c, "absent", 1, 10, 7, &i, NULL) && i == 7); /* absent */
  g_assert_true(i2v_config_double(&c, "d", 0, 1, &d, NULL) && d == 0.5);
  g_assert_true(i2v_config_double(&c, "i", 0, 10, &d, NULL) && d == 3.0);
  g_assert_true(i2v_config_double_or(&c, "absent", 0, 1, 0.25, &d, NULL) && d == 0.25);
  g_assert_true(i2v_config_string(&c, "s", &s, NULL));
  g_assert_cmpstr(s, ==, "gelu");
  g_assert_true(i2v_config_bool_or(&c, "b", FALSE, &b, NULL) && b);
  g_assert_true(i2v_config_bool_or(&c, "absent", TRUE, &b, NULL) && b);
  int *ia, n;
  g_assert_true(i2v_config_ints(&c, "ia", 8, 1, 3, &ia, &n, NULL));
  g_assert_cmpint(n, ==, 3);
  g_assert_cmpint(ia[2], ==, 3);
  g_free(ia);
  char **sa;
  g_assert_true(i2v_config_strings(&c, "sa", 2, &sa, NULL));
  g_assert_cmpstr(sa[1], ==, "B");
  g_strfreev(sa);
  double da[2];
  g_assert_true(i2v_config_doubles(&c, "da", 2, 0, 1, da, NULL) && da[1] == 1.0);
  static const char *const acts[] = {"silu", "gelu", NULL};
  int act;
  g_assert_true(i2v_config_choice(&c, "s", NULL, acts, &act, NULL) && act == 1);
  g_assert_true(i2v_config_choice(&c, "absent", "silu", acts, &act, NULL) && act == 0);
}

/* Every failure names the file, the key, what was found and what was expected. */
static void test_errors(void) {
  I2vConfig c =
      config_of("{\"str\": \"2\", \"frac\": 2.5, \"n\": null, \"big\": 4294967297, \"neg\": -1,"
                " \"huge\": 4611686018427387904, \"arr\": [1], \"inf\": 1e999, \"flag\": \"yes\","
                " \"ch\": [320, \"640\"], \"empty\": [], \"long\": [1, 2, 3, 4, 5, 6, 7, 8, 9],"
                " \"act\": \"gelu_fancy\"}");
  GError *err = NULL;
  int i, *ia, n;
  double d;
  gboolean b;
  const char *s;
  static const char *const acts[] = {"silu", "gelu", NULL};
  g_assert_false(i2v_config_int(&c, "str", 1, 10, &i, &err));
  golden_assert_error(
      &err, I2V_ERROR_CONFIG,
      (const char *[]){"c.json: str is a string \"2\"", "an integer in 1..10", NULL});
  g_assert_false(i2v_config_int(&c, "absent", 1, 10, &i, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"absent is missing", NULL});
  g_assert_false(i2v_config_int(&c, "frac", 1, 10, &i, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"frac is the number 2.5", NULL});
  g_assert_false(i2v_config_int(&c, "n", 1, 10, &i, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"n is missing", NULL});
  /* never truncated: 2^32 + 1 is not 1 */
  g_assert_false(i2v_config_int(&c, "big", 1, 1024, &i, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG,
                      (const char *[]){"big is the integer 4294967297", "1..1024", NULL});
  g_assert_false(i2v_config_int(&c, "huge", 1, 16384, &i, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"4611686018427387904", NULL});
  g_assert_false(i2v_config_int(&c, "neg", 0, 9, &i, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"neg is the integer -1", NULL});
  /* a present value of the wrong type is an error even where a default exists */
  g_assert_false(i2v_config_int_or(&c, "str", 1, 10, 5, &i, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"str is a string", NULL});
  g_assert_false(i2v_config_double_or(&c, "arr", 0, 1, 0.5, &d, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"arr is an array", NULL});
  g_assert_false(i2v_config_bool_or(&c, "flag", FALSE, &b, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"flag is a string", NULL});
  g_assert_false(i2v_config_choice(&c, "big", "silu", acts, &i, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"big is the integer", NULL});
  g_assert_false(i2v_config_double(&c, "inf", 0, 1e300, &d, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"inf is the number", NULL});
  g_assert_false(i2v_config_ints(&c, "ch", 8, 1, 16384, &ia, &n, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"ch[1] is a string \"640\"", NULL});
  g_assert_false(i2v_config_ints(&c, "empty", 8, 1, 16384, &ia, &n, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"empty has 0 entries", NULL});
  g_assert_false(i2v_config_ints(&c, "long", 8, 1, 16384, &ia, &n, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"long has 9 entries", "1..8", NULL});
  g_assert_false(i2v_config_string(&c, "neg", &s, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"neg is the integer -1", NULL});
  g_assert_false(i2v_config_choice(&c, "act", NULL, acts, &i, &err));
  golden_assert_error(
      &err, I2V_ERROR_CONFIG,
      (const char *[]){"act is a string \"gelu_fancy\"", "\"silu\", \"gelu\"", NULL});
}

/* A value of any length is echoed cut to a readable length. */
static void test_long_value(void) {
  GString *json = g_string_new("{\"s\": \"");
  for (int i = 0; i < 100000; i++) g_string_append_c(json, 'x');
  g_string_append(json, "\"}");
  I2vConfig c = config_of(json->str);
  g_string_free(json, TRUE);
  GError *err = NULL;
  int i;
  g_assert_false(i2v_config_int(&c, "s", 1, 2, &i, &err));
  g_assert_cmpuint(strlen(err->message), <, 400);
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"…\" (100000 bytes)", NULL});
}

/* ---- out-of-range values in a real model directory ---- */

typedef struct {
  const char *component, *file, *key, *value;
  const char *const *needles; /* what the load error must name */
} BadValue;

/* Loading a copy of the tiny model with component/file's key set to value fails with an
 * I2V_ERROR_CONFIG error naming every needle (file, key, value, range), before any weight. */
static void expect_load_refused(const BadValue *b) {
  char **sets = golden_sets_with("tokenizer.json");
  g_assert_nonnull(sets[0]);
  char *dir = golden_model_copy(sets[0]);
  golden_config_set(dir, b->component, b->file, b->key, b->value);
  I2vModelOptions mo = {.path = dir, .device = "cpu"};
  GError *err = NULL;
  gint64 t0 = g_get_monotonic_time();
  g_assert_null(i2v_model_load(&mo, &err));
  /* checked before any loop sized by the value runs: no minutes of work first */
  g_assert_cmpint(g_get_monotonic_time() - t0, <, 60 * G_USEC_PER_SEC);
  golden_assert_error(&err, I2V_ERROR_CONFIG, b->needles);
  golden_model_remove(dir);
  g_strfreev(sets);
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

static const BadValue bad_values[] = {
    /* divided by zero once cast to int */
    {"unet", "config.json", "norm_num_groups", "4294967296",
     NEEDLES("unet/config.json", "norm_num_groups", "4294967296", "1..1024")},
    /* 2^32 + 1 truncated would run as 1 */
    {"vae", "config.json", "norm_num_groups", "4294967297",
     NEEDLES("vae/config.json", "norm_num_groups", "4294967297")},
    /* aborted on a huge allocation */
    {"unet", "config.json", "layers_per_block", "2147483648",
     NEEDLES("unet/config.json", "layers_per_block", "2147483648", "1..16")},
    {"text_encoder", "config.json", "num_hidden_layers", "2147483647",
     NEEDLES("text_encoder/config.json", "num_hidden_layers", "2147483647")},
    /* ran 52 s of loading before a missing tensor */
    {"unet", "config.json", "layers_per_block", "1000000",
     NEEDLES("unet/config.json", "layers_per_block", "1000000")},
    /* signed overflow */
    {"unet", "config.json", "block_out_channels", "[4, 4611686018427387904]",
     NEEDLES("unet/config.json", "block_out_channels[1]", "4611686018427387904")},
    {"image_encoder", "config.json", "image_size", "2147483647",
     NEEDLES("image_encoder/config.json", "image_size", "2147483647", "1..4096")},
    /* used as given: absurd scheduler, VAE and preprocessor values */
    {"scheduler", "scheduler_config.json", "beta_end", "2",
     NEEDLES("scheduler/scheduler_config.json", "beta_end", "2")},
    {"scheduler", "scheduler_config.json", "beta_start", "-0.5",
     NEEDLES("scheduler/scheduler_config.json", "beta_start", "-0.5")},
    {"scheduler", "scheduler_config.json", "steps_offset", "9223372036854775807",
     NEEDLES("scheduler/scheduler_config.json", "steps_offset", "9223372036854775807")},
    {"vae", "config.json", "scaling_factor", "0",
     NEEDLES("vae/config.json", "scaling_factor", "0")},
    {"feature_extractor", "preprocessor_config.json", "image_std", "[0.26, 0, 0.27]",
     NEEDLES("feature_extractor/preprocessor_config.json", "image_std[1]")},
    /* a value of the wrong type is an error, not a default */
    {"text_encoder", "config.json", "hidden_act", "5",
     NEEDLES("text_encoder/config.json", "hidden_act is the integer 5")},
    {"unet", "config.json", "attention_head_dim", "\"8\"",
     NEEDLES("unet/config.json", "attention_head_dim is a string")},
};

static void test_model_value(gconstpointer data) {
  expect_load_refused(data);
}

/* Integers written as floats far outside int64 (found by fuzz-json: a range check after the cast
 * to int64 is undefined behaviour, which clang's UBSan reports and GCC's does not check) are
 * refused, not cast; an integral float in range is taken. */
static void test_huge_floats(void) {
  I2vConfig c = config_of("{\"a\": 7.7e92, \"b\": -1e300, \"c\": [1, 1e19], \"d\": 3.0}");
  GError *err = NULL;
  int v, *values, n;
  g_assert_false(i2v_config_int(&c, "a", 1, 10, &v, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG,
                      (const char *[]){"a is the number 7.", "1..10", NULL});
  g_assert_false(i2v_config_int(&c, "b", -10, 10, &v, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"b is the number -1", NULL});
  g_assert_false(i2v_config_ints(&c, "c", 4, G_MININT, G_MAXINT, &values, &n, &err));
  golden_assert_error(&err, I2V_ERROR_CONFIG, (const char *[]){"c[1] is the number 1e+19", NULL});
  g_assert_true(i2v_config_int(&c, "d", 1, 10, &v, &err));
  g_assert_cmpint(v, ==, 3);
}

int main(int argc, char **argv) {
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/config/values", test_values);
  g_test_add_func("/config/errors", test_errors);
  g_test_add_func("/config/long-value", test_long_value);
  g_test_add_func("/config/huge-floats", test_huge_floats);
  for (guint i = 0; i < G_N_ELEMENTS(bad_values); i++) {
    char *path = g_strdup_printf("/config/model/%s/%s=%.24s", bad_values[i].component,
                                 bad_values[i].key, bad_values[i].value);
    g_strdelimit(path + 14, "/[]\", ", '_');
    g_test_add_data_func(path, &bad_values[i], test_model_value);
    g_free(path);
  }
  int rc = g_test_run();
  if (parser != NULL) g_object_unref(parser);
  return rc;
}
