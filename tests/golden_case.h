/* The pipeline cases of the golden fixtures (manifest.json → files.pipeline[]): opening one (model
 * options, call parameters, the recorded noise, the input image), walking every case of every
 * set, and checking a generated tensor against the case's golden file. Shared by the CPU pipeline
 * test and the CUDA one, which run the same cases on different devices. */
#pragma once

#include "golden.h"
#include <i2v/i2v.h>

G_BEGIN_DECLS

/* One pipeline case of a set. */
typedef struct {
  const char *set;
  const char *name;
  char *group; /* "pipeline_<name>" in tolerances.json (schedulers.json for sampler cases) */
  JsonNode *schedulers; /* schedulers.json of a sampler case, else NULL */
  I2vSafetensors *st;
  I2vModelOptions mo; /* path, variant, formula weights; device and precision left NULL */
  I2vParams p;        /* the call, with the recorded init_latents and VAE posterior noise */
  I2vTensor init_latents, posterior;
  I2vImage image;
  char *model_dir;
} GoldenCase;

/* Opens case c (an element of manifest.json files.pipeline[], or of schedulers.json pipelines[]
 * with its "scheduler" variant setting p.sampler) of set; aborts the test on a missing file or
 * a variant this engine has no sampler for. Release with golden_case_close. */
void golden_case_open(GoldenCase *k, const char *set, JsonNode *manifest, JsonObject *c);
void golden_case_close(GoldenCase *k);

/* The input image's file name from the manifest (files.input_image or image_preprocess.image);
 * owned by manifest. */
const char *golden_input_png(JsonNode *manifest);

/* Receives one pipeline case of a set (c is owned by manifest). */
/* The tensors every pipeline run must dump and reproduce (NULL-terminated; the per-step latents
 * too, by name "step{i}.latents"). */
extern const char *const golden_pipeline_required[];

typedef void (*GoldenCaseFn)(const char *set, JsonNode *manifest, JsonObject *c, void *user);

/* Calls fn on every pipeline case of every set whose weight source is (formula ? the README-
 * realcfg formula : files). Returns the number of cases. */
int golden_for_each_case(gboolean formula, GoldenCaseFn fn, void *user);

/* Calls fn on every pipeline case of schedulers.json (other samplers than DDIM) of every set with
 * one, with the set's manifest.json. Returns the number of cases. */
int golden_for_each_sampler_case(GoldenCaseFn fn, void *user);

/* The sampler of a schedulers.json variant (its config: algorithm, order, solver type, final
 * sigma); aborts the test when no sampler of the engine runs it. */
I2vSamplerKind golden_sampler_of(JsonNode *schedulers, const char *variant);

/* recommended_atol of tensor name in k's tolerances (tolerances.json or schedulers.json). */
double golden_case_atol(const GoldenCase *k, const char *name);

/* Max |got − golden| of tensor name of k against its tolerances.json atol: prints a MAXERR line
 * and marks the test failed (g_test_fail) when over; raises *worst to the error/atol ratio.
 * got NULL (not dumped) fails too. */
void golden_case_check(const GoldenCase *k, const char *name, const I2vTensor *got, double *worst);

/* Parameters of the CLIP text and vision encoders of the model mo names, from the tensors their
 * loaders ask for (a recording load: nothing is read or allocated). */
gint64 golden_encoder_params(const I2vModelOptions *mo);

G_END_DECLS
