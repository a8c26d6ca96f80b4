/* Test helpers for the golden fixtures (../shared/fixtures, or $I2V_FIXTURES): finding fixture
 * sets, opening their files, reading recommended tolerances and comparing tensors. Nothing about
 * a particular set is hard-coded: sets are discovered, sizes and cases read from the files. */
#pragma once

#include <json-glib/json-glib.h>

#include "model_dir.h"
#include "safetensors.h"
#include "stream.h"

G_BEGIN_DECLS

/* The fixtures root (env I2V_FIXTURES, else the build-time default). Static string. */
const char *golden_root(void);

/* Fixture sets under the root whose golden/ holds file (e.g. "tokenizer.json",
 * "weights_manifest.json"): a NULL-terminated strv of set directory paths (g_strfreev).
 * Fails the test (g_test_fail + message) if the root itself is missing: CI has it. */
char **golden_sets_with(const char *file);

/* Opens set/golden/name (a .safetensors file); aborts the test with a message if it fails. */
I2vSafetensors *golden_open(const char *set, const char *name);

/* Parses set/golden/name as JSON (manifest.json, tolerances.json, ...): new root node
 * (json_node_unref). Aborts the test on failure. */
JsonNode *golden_json(const char *set, const char *name);

/* recommended_atol of tolerances.json → tensors → group → tensor; 0 (exact) when the entry is
 * absent, as the README says for u8 / id / timestep tensors. */
double golden_atol(const char *set, const char *group, const char *tensor);

/* Compares n float32 values got against the float tensor name of st (any float dtype; shape
 * must have n elements): max |got - ref| <= atol. Prints the max error and its index with the
 * label; returns TRUE when within tolerance (the caller asserts). */
gboolean golden_check(const I2vSafetensors *st, const char *name, const float *got, int64_t n,
                      double atol, const char *label);

/* TRUE and the set seed when the set's manifest names formula weights (weights.seed_hex, an
 * unsigned 64-bit hex string; README-realcfg), FALSE for sets with weight files. */
gboolean golden_formula_seed(const char *set, guint64 *seed);

/* Whether the environment's I2V_TEST_WEIGHTS selects the set: "files" the sets with weight
 * files (the tiny model), "formula" those with formula weights (the real-size sets, meson suite
 * "slow"); unset or empty selects every set. */
gboolean golden_set_selected(const char *set);

/* Opens set/model with variant (NULL or "fp16"), switched to formula weights when the set names
 * a seed; aborts the test on failure. Free with i2v_model_dir_free. */
I2vModelDir *golden_open_model(const char *set, const char *variant);

/* The model directory of the first set with golden/file (e.g. "tokenizer.json": a tiny-layout
 * set): new string (g_free); aborts the test when there is none. */
char *golden_model_with(const char *file);

/* A copy of set's model/ directory (one folder level deep) in a new temporary directory;
 * newly allocated path, remove with golden_model_remove. */
char *golden_model_copy(const char *set);

/* Deletes a copy made by golden_model_copy and frees dir. */
void golden_model_remove(char *dir);

/* Deletes a test's temporary tree dir: files, FIFOs, sockets, symlinks (not followed), folders. */
void golden_tree_remove(const char *dir);

/* Sets key of component/file in model dir to the JSON text value (any JSON: "4294967296",
 * "\"gelu\"", "[1, 2]"), or removes it (value NULL). */
void golden_config_set(const char *dir, const char *component, const char *file, const char *key,
                       const char *value);

/* Asserts *err is an I2V_ERROR error of code (any code when code < 0) whose message contains every
 * needle (NULL-terminated list), printing the message; frees it and sets *err to NULL. */
void golden_assert_error(GError **err, int code, const char *const *needles);

/* A new empty temporary directory "prefix-XXXXXX" (g_free the path); aborts the test on failure. */
char *golden_tmp_dir(const char *prefix);

/* Uploads tensor name of st (any float dtype) into a new float32 tensor in stream's scratch
 * arena; aborts the test on failure. */
I2vTensor golden_upload(I2vStream *stream, const I2vSafetensors *st, const char *name);

/* The max |a - b| over n values. */
double golden_max_abs_diff(const float *a, const float *b, int64_t n);

/* Relative L2 error ‖got − ref‖ / ‖ref‖ over n values. */
double golden_rel_l2(const float *got, const float *ref, int64_t n);

/* Permutes an NHWC float buffer [N,H,W,C] to NCHW (new buffer, g_free). */
float *golden_nhwc_to_nchw(const float *x, int64_t n, int64_t h, int64_t w, int64_t c);

G_END_DECLS
