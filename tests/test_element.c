/* The i2vgen element under GstHarness, on the tiny fixture model: caps, timestamps across jobs,
 * EOS, flushing within a step, state cycles, properties, presets, errors and the shared model. */
#include <glib/gstdio.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "golden.h"
#include "gsti2vgen.h"

#define W 32
#define H 24

/* A fresh i2vgen on the tiny model making W×H frames. */
static GstElement *tiny_element(void) {
  GstElement *e = gst_element_factory_make("i2vgen", NULL);
  g_assert_nonnull(e);
  char *model = golden_model_with("tokenizer.json");
  g_object_set(e, "model-path", model, "width", W, "height", H, NULL);
  g_free(model);
  return e;
}

/* A harness around e (which it plays: the model loads then, so set model-path before). */
static GstHarness *harness_on(GstElement *e) {
  GstHarness *h = gst_harness_new_with_element(e, "sink", "src");
  gst_object_unref(e);
  return h;
}

/* A harness around a fresh i2vgen on the tiny model making `frames` frames in `steps` steps. */
static GstHarness *make_harness(int frames, int steps, const char *in_format) {
  GstElement *e = tiny_element();
  g_object_set(e, "num-frames", frames, "steps", steps, "fps", 8, "prompt", "a test", NULL);
  GstHarness *h = harness_on(e);
  char *caps = g_strdup_printf("video/x-raw,format=%s,width=20,height=14,framerate=0/1", in_format);
  gst_harness_set_src_caps_str(h, caps);
  g_free(caps);
  return h;
}

/* A still image buffer of the harness's input caps, filled with a gradient. */
static GstBuffer *make_image(GstHarness *h) {
  GstCaps *caps = gst_pad_get_current_caps(h->srcpad);
  GstVideoInfo info;
  g_assert_true(gst_video_info_from_caps(&info, caps));
  gst_caps_unref(caps);
  GstBuffer *buf = gst_buffer_new_allocate(NULL, GST_VIDEO_INFO_SIZE(&info), NULL);
  GstMapInfo map;
  gst_buffer_map(buf, &map, GST_MAP_WRITE);
  for (gsize i = 0; i < map.size; i++) map.data[i] = (guint8)(i * 7);
  gst_buffer_unmap(buf, &map);
  return buf;
}

static void test_caps_and_timestamps(void) {
  const int frames = 3;
  GstHarness *h = make_harness(frames, 2, "RGB");
  gst_harness_set_sink_caps_str(h, "video/x-raw,format={RGB,RGBA}");
  g_assert_cmpint(gst_harness_push(h, make_image(h)), ==, GST_FLOW_OK);
  GstClockTime expect_pts = 0;
  for (int i = 0; i < frames; i++) {
    GstBuffer *buf = gst_harness_pull(h);
    g_assert_nonnull(buf);
    GstClockTime end = gst_util_uint64_scale(i + 1, GST_SECOND, 8);
    g_assert_cmpuint(GST_BUFFER_PTS(buf), ==, expect_pts);
    g_assert_cmpuint(GST_BUFFER_DURATION(buf), ==, end - expect_pts);
    g_assert_cmpuint(GST_BUFFER_OFFSET(buf), ==, i);
    g_assert_cmpuint(GST_BUFFER_OFFSET_END(buf), ==, i + 1);
    g_assert_cmpint(GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DISCONT), ==, i == 0);
    g_assert_cmpuint(gst_buffer_get_size(buf), ==, W * H * 3);
    expect_pts = end;
    gst_buffer_unref(buf);
  }
  GstCaps *caps = gst_pad_get_current_caps(h->sinkpad);
  GstStructure *s = gst_caps_get_structure(caps, 0);
  int w, hh, num, den;
  g_assert_true(gst_structure_get_int(s, "width", &w) && gst_structure_get_int(s, "height", &hh));
  g_assert_true(gst_structure_get_fraction(s, "framerate", &num, &den));
  g_assert_cmpint(w, ==, W);
  g_assert_cmpint(hh, ==, H);
  g_assert_cmpint(num, ==, 8);
  g_assert_cmpint(den, ==, 1);
  g_assert_cmpstr(gst_structure_get_string(s, "format"), ==, "RGB");
  gst_caps_unref(caps);
  gst_harness_teardown(h);
}

static void test_rgba_downstream(void) {
  GstHarness *h = make_harness(1, 1, "I420");
  gst_harness_set_sink_caps_str(h, "video/x-raw,format=RGBA");
  gst_harness_push(h, make_image(h));
  GstBuffer *buf = gst_harness_pull(h);
  g_assert_cmpuint(gst_buffer_get_size(buf), ==, W * H * 4);
  GstMapInfo map;
  gst_buffer_map(buf, &map, GST_MAP_READ);
  for (int i = 0; i < W * H; i++) g_assert_cmpuint(map.data[4 * i + 3], ==, 255);
  gst_buffer_unmap(buf, &map);
  gst_buffer_unref(buf);
  gst_harness_teardown(h);
}

/* A video input (25 fps, not a still-image 0/1): each buffer still becomes one clip. */
static void test_input_with_framerate(void) {
  GstHarness *h = make_harness(1, 1, "I420");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=I420,width=20,height=14,framerate=25/1");
  g_assert_cmpint(gst_harness_push(h, make_image(h)), ==, GST_FLOW_OK);
  GstBuffer *buf = gst_harness_pull(h);
  g_assert_nonnull(buf);
  g_assert_cmpuint(gst_buffer_get_size(buf), ==, W * H * 3);
  gst_buffer_unref(buf);
  gst_harness_teardown(h);
}

/* Two images: 2N buffers with one continuous time line, then EOS after the last job. */
static void test_two_jobs_then_eos(void) {
  const int frames = 2;
  GstHarness *h = make_harness(frames, 1, "BGRx");
  gst_harness_push(h, make_image(h));
  gst_harness_push(h, make_image(h));
  g_assert_true(gst_harness_push_event(h, gst_event_new_eos()));
  GstClockTime expect_pts = 0;
  for (int i = 0; i < 2 * frames; i++) {
    GstBuffer *buf = gst_harness_pull(h);
    g_assert_cmpuint(GST_BUFFER_PTS(buf), ==, expect_pts);
    g_assert_cmpuint(GST_BUFFER_OFFSET(buf), ==, i);
    expect_pts += GST_BUFFER_DURATION(buf);
    gst_buffer_unref(buf);
  }
  g_assert_cmpuint(expect_pts, ==, gst_util_uint64_scale(2 * frames, GST_SECOND, 8));
  /* events in order: stream-start, caps, segment, ..., eos */
  GstEventType want[] = {GST_EVENT_STREAM_START, GST_EVENT_CAPS, GST_EVENT_SEGMENT};
  for (guint i = 0; i < G_N_ELEMENTS(want); i++) {
    GstEvent *ev = gst_harness_pull_event(h);
    g_assert_cmpint(GST_EVENT_TYPE(ev), ==, want[i]);
    gst_event_unref(ev);
  }
  /* then one clip-start event per job (before its first frame), then EOS */
  GstEvent *ev;
  gboolean eos = FALSE;
  guint clips = 0;
  while (!eos && (ev = gst_harness_pull_event(h)) != NULL) {
    eos = GST_EVENT_TYPE(ev) == GST_EVENT_EOS;
    if (gst_event_has_name(ev, GST_I2VGEN_CLIP_START)) {
      guint job = G_MAXUINT;
      gst_structure_get_uint(gst_event_get_structure(ev), "job", &job);
      g_assert_cmpuint(job, ==, clips);
      clips++;
    }
    gst_event_unref(ev);
  }
  g_assert_true(eos);
  g_assert_cmpuint(clips, ==, 2);
  gst_harness_teardown(h);
}

/* Highest "step" of the i2vgen-progress messages on bus so far (-1 if none). */
static int drain_progress(GstBus *bus, int highest) {
  GstMessage *m;
  while ((m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) != NULL) {
    const GstStructure *s = gst_message_get_structure(m);
    int step;
    if (gst_structure_has_name(s, "i2vgen-progress") && gst_structure_get_int(s, "step", &step))
      highest = MAX(highest, step);
    gst_message_unref(m);
  }
  return highest;
}

/* FLUSH_START in the middle of a long job stops it within one denoising step. */
static void test_flush_cancels_within_a_step(void) {
  GstHarness *h = make_harness(2, 200, "RGB");
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  gst_harness_push(h, make_image(h));
  int step = -1;
  while ((step = drain_progress(bus, step)) < 2) g_usleep(1000);
  g_assert_true(gst_harness_push_event(h, gst_event_new_flush_start()));
  /* the task has paused: no step beyond the one running when the flush came */
  int after = drain_progress(bus, step);
  g_assert_cmpint(after, <=, step + 1);
  g_assert_cmpint(after, <, 200);
  g_assert_cmpuint(gst_harness_buffers_in_queue(h), ==, 0);
  g_assert_true(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  GstSegment segment; /* the flush reset the time: upstream starts a new segment */
  gst_segment_init(&segment, GST_FORMAT_TIME);
  g_assert_true(gst_harness_push_event(h, gst_event_new_segment(&segment)));
  /* after the flush the element works again */
  g_object_set(h->element, "steps", 1, NULL);
  gst_harness_push(h, make_image(h));
  GstBuffer *buf = gst_harness_pull(h);
  g_assert_true(GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DISCONT));
  gst_buffer_unref(buf);
  gst_element_set_bus(h->element, NULL);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

/* 20 PLAYING→NULL cycles with a job running: no deadlock; ASan checks leaks. */
static void test_state_cycles(void) {
  GstHarness *h = make_harness(2, 50, "RGB");
  for (int i = 0; i < 20; i++) {
    gst_harness_play(h);
    gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=20,height=14,framerate=0/1");
    gst_harness_push(h, make_image(h));
    g_usleep(2000);
    g_assert_cmpint(gst_element_set_state(h->element, GST_STATE_NULL), ==,
                    GST_STATE_CHANGE_SUCCESS);
  }
  gst_harness_teardown(h);
}

static void test_properties(void) {
  GstElement *e = gst_element_factory_make("i2vgen", NULL);
  guint steps;
  g_object_get(e, "steps", &steps, NULL);
  g_assert_cmpuint(steps, ==, 50);
  g_object_set(e, "steps", 30, NULL);
  g_object_get(e, "steps", &steps, NULL);
  g_assert_cmpuint(steps, ==, 30);
  /* out of range: GObject refuses with a warning naming the property, value unchanged */
  g_test_expect_message("GLib-GObject", G_LOG_LEVEL_WARNING, "*steps*");
  g_object_set(e, "steps", 0, NULL);
  g_test_assert_expected_messages();
  g_object_get(e, "steps", &steps, NULL);
  g_assert_cmpuint(steps, ==, 30);
  char *device;
  g_test_expect_message("i2vgen", G_LOG_LEVEL_WARNING, "*'gpu0'*'device'*cuda:N*");
  g_object_set(e, "device", "gpu0", NULL);
  g_test_assert_expected_messages();
  g_object_get(e, "device", &device, NULL);
  g_assert_cmpstr(device, ==, "auto");
  g_free(device);
  g_object_set(e, "device", "cuda:1", NULL);
  g_object_get(e, "device", &device, NULL);
  g_assert_cmpstr(device, ==, "cuda:1");
  g_free(device);
  /* the device is parsed by the engine's one parser: any case, cuda alone is device 0 */
  g_object_set(e, "device", "CUDA", NULL);
  g_object_get(e, "device", &device, NULL);
  g_assert_cmpstr(device, ==, "CUDA");
  g_free(device);
  /* precision and variant are enums: the nicks gst-launch reads, nothing else */
  int precision, variant;
  gst_util_set_object_arg(G_OBJECT(e), "precision", "fp16");
  g_object_get(e, "precision", &precision, NULL);
  g_assert_cmpint(precision, ==, I2V_PRECISION_FP16);
  gst_util_set_object_arg(G_OBJECT(e), "precision", "fp64");
  g_object_get(e, "precision", &precision, NULL);
  g_assert_cmpint(precision, ==, I2V_PRECISION_FP16);
  int sampler;
  g_object_get(e, "sampler", &sampler, NULL);
  g_assert_cmpint(sampler, ==, I2V_SAMPLER_DDIM);
  gst_util_set_object_arg(G_OBJECT(e), "sampler", "dpmpp-2m");
  g_object_get(e, "sampler", &sampler, NULL);
  g_assert_cmpint(sampler, ==, I2V_SAMPLER_DPMPP_2M);
  gst_util_set_object_arg(G_OBJECT(e), "sampler", "euler");
  g_object_get(e, "sampler", &sampler, NULL);
  g_assert_cmpint(sampler, ==, I2V_SAMPLER_DPMPP_2M);
  /* the nicks are the engine's names, so the element, the CLI and the service take the same */
  GEnumClass *samplers = g_type_class_ref(g_type_from_name("GstI2vgenSampler"));
  g_assert_cmpuint(samplers->n_values, ==, I2V_SAMPLER_COUNT);
  for (guint k = 0; k < samplers->n_values; k++)
    g_assert_cmpstr(samplers->values[k].value_nick, ==,
                    i2v_sampler_name(samplers->values[k].value));
  g_type_class_unref(samplers);
  gst_util_set_object_arg(G_OBJECT(e), "variant", "int8");
  g_object_get(e, "variant", &variant, NULL);
  g_assert_cmpint(variant, ==, GST_I2VGEN_VARIANT_DEFAULT);
  gst_util_set_object_arg(G_OBJECT(e), "variant", "fp16");
  g_object_get(e, "variant", &variant, NULL);
  g_assert_cmpint(variant, ==, GST_I2VGEN_VARIANT_FP16);
  gboolean release = TRUE;
  g_object_get(e, "release-encoders", &release, NULL);
  g_assert_false(release); /* encoders stay loaded unless asked */
  g_object_set(e, "release-encoders", TRUE, NULL);
  g_object_get(e, "release-encoders", &release, NULL);
  g_assert_true(release);
  gst_object_unref(e);
}

/* The first output frame of a 3-step job with sampler (a new buffer). */
static GstBuffer *first_frame_with(const char *sampler) {
  GstHarness *h = make_harness(1, 3, "RGB");
  gst_util_set_object_arg(G_OBJECT(h->element), "sampler", sampler);
  gst_harness_push(h, make_image(h));
  GstBuffer *out = gst_harness_pull(h);
  gst_harness_teardown(h);
  return out;
}

/* The sampler reaches the job: the same seed gives another clip with DPM-Solver++. */
static void test_sampler(void) {
  GstBuffer *ddim = first_frame_with("ddim"), *again = first_frame_with("ddim"),
            *dpmpp = first_frame_with("dpmpp-2m");
  GstMapInfo a, b, c;
  gst_buffer_map(ddim, &a, GST_MAP_READ);
  gst_buffer_map(again, &b, GST_MAP_READ);
  gst_buffer_map(dpmpp, &c, GST_MAP_READ);
  g_assert_cmpmem(a.data, a.size, b.data, b.size);
  g_assert_cmpuint(a.size, ==, c.size);
  g_assert_true(memcmp(a.data, c.data, a.size) != 0);
  gst_buffer_unmap(ddim, &a);
  gst_buffer_unmap(again, &b);
  gst_buffer_unmap(dpmpp, &c);
  gst_buffer_unref(ddim);
  gst_buffer_unref(again);
  gst_buffer_unref(dpmpp);
}

/* motion-strength reaches the job: 0.5 of 4 steps runs 2, as the progress messages count them. */
static void test_motion_strength(void) {
  GstHarness *h = make_harness(1, 4, "RGB");
  g_object_set(h->element, "motion-strength", 0.5, NULL);
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  gst_harness_push(h, make_image(h));
  gst_buffer_unref(gst_harness_pull(h));
  int steps = -1, max_step = -1;
  for (GstMessage *m; (m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) != NULL;
       gst_message_unref(m)) {
    const GstStructure *s = gst_message_get_structure(m);
    int step;
    if (gst_structure_has_name(s, "i2vgen-progress") && gst_structure_get_int(s, "step", &step) &&
        gst_structure_get_int(s, "steps", &steps))
      max_step = MAX(max_step, step);
  }
  g_assert_cmpint(steps, ==, 2);
  g_assert_cmpint(max_step, ==, 2);
  gst_element_set_bus(h->element, NULL);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

static void test_presets(void) {
  GstElement *e = gst_element_factory_make("i2vgen", NULL);
  char **names = gst_preset_get_preset_names(GST_PRESET(e));
  const char *want[] = {"fast",     "fast-ddim", "standard",     "high",
                        "creative", "subtle",    "model-default"};
  for (guint i = 0; i < G_N_ELEMENTS(want); i++)
    g_assert_true(names && g_strv_contains((const char *const *)names, want[i]));
  g_strfreev(names);
  g_object_set(e, "preset", "high", NULL);
  guint w, frames, steps;
  double g;
  g_object_get(e, "width", &w, "num-frames", &frames, "steps", &steps, "guidance-scale", &g, NULL);
  g_assert_cmpuint(w, ==, 768);
  g_assert_cmpuint(frames, ==, 24);
  g_assert_cmpuint(steps, ==, 80);
  g_assert_cmpfloat(g, ==, 10.0);
  /* fast samples with DPM-Solver++ in fewer steps; every other preset names its sampler, so
   * applying one after fast does not keep DPM-Solver++ */
  int sampler;
  g_object_set(e, "preset", "fast", NULL);
  g_object_get(e, "sampler", &sampler, "steps", &steps, NULL);
  g_assert_cmpint(sampler, ==, I2V_SAMPLER_DPMPP_2M);
  g_assert_cmpuint(steps, <, 30);
  g_object_set(e, "preset", "fast-ddim", NULL);
  g_object_get(e, "sampler", &sampler, "steps", &steps, NULL);
  g_assert_cmpint(sampler, ==, I2V_SAMPLER_DDIM);
  g_assert_cmpuint(steps, ==, 30);
  g_object_set(e, "preset", "fast", NULL);
  g_object_set(e, "preset", "high", NULL);
  g_object_get(e, "sampler", &sampler, NULL);
  g_assert_cmpint(sampler, ==, I2V_SAMPLER_DDIM);
  g_test_expect_message("i2vgen", G_LOG_LEVEL_WARNING, "*'turbo'*'preset'*fast*");
  g_object_set(e, "preset", "turbo", NULL);
  g_test_assert_expected_messages();
  g_object_get(e, "width", &w, NULL);
  g_assert_cmpuint(w, ==, 768);
  gst_object_unref(e);
}

/* Waits (≤ 10 s) for an error message on bus: its domain/code must match and its text contain
 * every needle. */
static void expect_bus_error(GstBus *bus, GQuark domain, int code, const char *const *needles) {
  GstMessage *m = gst_bus_timed_pop_filtered(bus, 10 * GST_SECOND, GST_MESSAGE_ERROR);
  g_assert_nonnull(m);
  GError *err;
  gst_message_parse_error(m, &err, NULL);
  g_test_message("error: %s", err->message);
  g_assert_true(g_error_matches(err, domain, code));
  for (const char *const *n = needles; *n != NULL; n++) g_assert_nonnull(strstr(err->message, *n));
  g_error_free(err);
  gst_message_unref(m);
}

/* A fresh element with model-path (NULL: unset) fails to go to PAUSED with a RESOURCE error
 * whose text has every needle. */
static void expect_load_failure(const char *model_path, int code, const char *const *needles) {
  GstElement *e = gst_element_factory_make("i2vgen", NULL);
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(e, bus);
  if (model_path != NULL) g_object_set(e, "model-path", model_path, NULL);
  g_assert_cmpint(gst_element_set_state(e, GST_STATE_PAUSED), ==, GST_STATE_CHANGE_FAILURE);
  expect_bus_error(bus, GST_RESOURCE_ERROR, code, needles);
  gst_element_set_state(e, GST_STATE_NULL);
  gst_element_set_bus(e, NULL);
  gst_object_unref(bus);
  gst_object_unref(e);
}

/* Pushes an image into h: the job fails with an error of domain/code naming every needle, and
 * no frame comes out. */
static void expect_job_error(GstHarness *h, GQuark domain, int code, const char *const *needles) {
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  gst_harness_push(h, make_image(h));
  expect_bus_error(bus, domain, code, needles);
  g_assert_cmpuint(gst_harness_buffers_in_queue(h), ==, 0);
  gst_element_set_bus(h->element, NULL);
  gst_object_unref(bus);
}

/* A LoRA file that is not there: the model does not load, and the error names the property and
 * the file (not the model, which is fine). */
static void test_missing_lora(void) {
  GstElement *e = tiny_element();
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(e, bus);
  g_object_set(e, "lora", "/nonexistent/style.safetensors:0.7", NULL);
  g_assert_cmpint(gst_element_set_state(e, GST_STATE_PAUSED), ==, GST_STATE_CHANGE_FAILURE);
  const char *needles[] = {"property lora", "LoRA file /nonexistent/style.safetensors not found",
                           NULL};
  expect_bus_error(bus, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS, needles);
  gst_element_set_state(e, GST_STATE_NULL);
  gst_element_set_bus(e, NULL);
  gst_object_unref(bus);
  gst_object_unref(e);
}

/* A missing model directory: the state change fails with an error naming the path. */
static void test_missing_model(void) {
  const char *needles[] = {"/nonexistent/i2vgen-model", "i2vgen-xl", NULL};
  expect_load_failure("/nonexistent/i2vgen-model", GST_RESOURCE_ERROR_NOT_FOUND, needles);
}

/* No model-path and no I2VGEN_MODEL: the error says how to set one. */
static void test_no_model_configured(void) {
  g_unsetenv("I2VGEN_MODEL");
  const char *needles[] = {"model-path", "I2VGEN_MODEL", NULL};
  expect_load_failure(NULL, GST_RESOURCE_ERROR_NOT_FOUND, needles);
}

/* Downstream that takes neither RGB nor RGBA: a not-negotiated error that says why. */
static void test_not_negotiated(void) {
  GstHarness *h = make_harness(1, 1, "RGB");
  gst_harness_set_sink_caps_str(h, "video/x-raw,format=I420");
  const char *needles[] = {"RGB or RGBA", NULL};
  expect_job_error(h, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION, needles);
  gst_harness_teardown(h);
}

/* The memory-saving properties reach the job: with all of them on (tiles of 16 latent pixels on
 * the 32×24 latent) it makes its frame; a tile overlap as large as the tile is the engine's
 * settings error naming it. */
static void test_memory_strategies(void) {
  GstHarness *h = make_harness(1, 1, "RGB");
  g_object_set(h->element, "sequential-guidance", TRUE, "attention-chunk", 1, "decode-tile", 16,
               "decode-tile-overlap", 4, NULL);
  gst_harness_push(h, make_image(h));
  GstBuffer *out = gst_harness_pull(h);
  g_assert_cmpuint(gst_buffer_get_size(out), ==, W * H * 3);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
  h = make_harness(1, 1, "RGB");
  g_object_set(h->element, "decode-tile", 8, "decode-tile-overlap", 8, NULL);
  const char *needles[] = {"decode_tile_overlap 8", NULL};
  expect_job_error(h, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_SETTINGS, needles);
  gst_harness_teardown(h);
}

/* A prompt the engine refuses (not UTF-8): a settings error on the bus, no crash, no frames. */
static void test_invalid_prompt_error(void) {
  GstHarness *h = make_harness(1, 1, "RGB");
  g_object_set(h->element, "prompt", "caf\xe9 au lait", NULL);
  const char *needles[] = {"UTF-8", NULL};
  expect_job_error(h, GST_LIBRARY_ERROR, GST_LIBRARY_ERROR_SETTINGS, needles);
  gst_harness_teardown(h);
}

/* An image buffer before any caps: not-negotiated, with an error that says so. */
static void test_buffer_without_caps(void) {
  GstHarness *h = harness_on(tiny_element());
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  g_assert_true(gst_harness_push_event(h, gst_event_new_stream_start("no-caps")));
  g_assert_true(gst_harness_push_event(h, gst_event_new_segment(&segment)));
  g_assert_cmpint(gst_harness_push(h, gst_buffer_new_allocate(NULL, 64, NULL)), ==,
                  GST_FLOW_NOT_NEGOTIATED);
  const char *needles[] = {"caps", NULL};
  expect_bus_error(bus, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION, needles);
  gst_element_set_bus(h->element, NULL);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

/* A model directory whose UNet has a config but no weights: the state change fails and the
 * error names the folder that lacks them. */
static void test_model_without_weights(void) {
  char *model = golden_model_with("tokenizer.json");
  char *dir = g_dir_make_tmp("i2vgen-broken-XXXXXX", NULL);
  g_assert_nonnull(dir);
  GDir *d = g_dir_open(model, 0, NULL);
  const char *name;
  while ((name = g_dir_read_name(d)) != NULL) {
    char *from = g_build_filename(model, name, NULL), *to = g_build_filename(dir, name, NULL);
    if (strcmp(name, "unet") == 0) {
      char *config = g_build_filename(from, "config.json", NULL), *text;
      gsize len;
      g_assert_true(g_file_get_contents(config, &text, &len, NULL));
      g_assert_cmpint(g_mkdir(to, 0755), ==, 0);
      char *copy = g_build_filename(to, "config.json", NULL);
      g_assert_true(g_file_set_contents(copy, text, len, NULL));
      g_free(copy);
      g_free(text);
      g_free(config);
    } else {
      g_assert_cmpint(symlink(from, to), ==, 0);
    }
    g_free(from);
    g_free(to);
  }
  g_dir_close(d);
  char *unet = g_build_filename(dir, "unet", NULL);
  const char *needles[] = {unet, NULL};
  expect_load_failure(dir, GST_RESOURCE_ERROR_NOT_FOUND, needles);
  g_free(unet);
  char *rm = g_strdup_printf("rm -rf '%s'", dir);
  g_assert_cmpint(system(rm), ==, 0);
  g_free(rm);
  g_free(dir);
  g_free(model);
}

/* model-info: NULL before the model loads, then the model's device, size multiple and memory. */
static void test_model_info(void) {
  GstElement *e = tiny_element();
  g_object_set(e, "device", "cpu", NULL);
  GstStructure *info = NULL;
  g_object_get(e, "model-info", &info, NULL);
  g_assert_null(info);
  GstHarness *h = harness_on(e);
  gst_harness_play(h);
  g_object_get(h->element, "model-info", &info, NULL);
  g_assert_nonnull(info);
  g_assert_cmpstr(gst_structure_get_string(info, "device"), ==, "cpu");
  guint multiple = 0;
  guint64 persistent = 0, device_total = 1;
  g_assert_true(gst_structure_get_uint(info, "size-multiple", &multiple));
  g_assert_cmpuint(multiple, >=, 1);
  g_assert_true(gst_structure_get_uint64(info, "persistent-bytes", &persistent));
  g_assert_cmpuint(persistent, >, 0); /* the tiny model's weights */
  g_assert_true(gst_structure_get_uint64(info, "device-total-bytes", &device_total));
  g_assert_cmpuint(device_total, ==, 0); /* CPU: no device memory */
  gst_structure_free(info);
  gst_harness_teardown(h);
}

/* Two elements with the same model settings share one loaded model, each with a session of its
 * own. */
static void test_shared_model(void) {
  GstHarness *a = make_harness(1, 1, "RGB"), *b = make_harness(1, 1, "RGB");
  /* the plugin has its own copy of the type: plain casts, the layout is gsti2vgen.h's */
  GstI2vgen *ea = (GstI2vgen *)a->element, *eb = (GstI2vgen *)b->element;
  g_assert_nonnull(ea->session);
  g_assert_true(ea->session != eb->session);
  g_assert_true(i2v_session_model(ea->session) == i2v_session_model(eb->session));
  gst_harness_teardown(a);
  gst_harness_teardown(b);
}

#ifdef I2V_HAVE_CUDA /* the planning device plan:cuda is built with the CUDA backend */
/* The plan of the job make_harness(1, 1, ...) runs on the tiny model (encoders kept or released).
 */
static size_t tiny_job_peak(gboolean release) {
  char *model = golden_model_with("tokenizer.json");
  I2vModelOptions mo = {.path = model, .release_encoders = release};
  I2vParams p;
  i2v_params_init(&p);
  p.prompt = "a test", p.width = W, p.height = H, p.frames = 1, p.steps = 1, p.fps = 8;
  I2vMemoryPlan plan;
  GError *err = NULL;
  g_assert_true(i2v_plan_memory(&mo, &p, &plan, &err));
  g_assert_no_error(err);
  g_free(model);
  return plan.peak;
}

static guint64 persistent_bytes(GstElement *e) {
  GstStructure *info = NULL;
  guint64 bytes = 0;
  g_object_get(e, "model-info", &info, NULL);
  g_assert_true(gst_structure_get_uint64(info, "persistent-bytes", &bytes));
  gst_structure_free(info);
  return bytes;
}

/* Keeps the element's "job planned" log lines (GST_INFO in category i2vgen) in user, a GPtrArray
 * of strings. */
static void keep_plan_lines(GstDebugCategory *category, GstDebugLevel level, const gchar *file,
                            const gchar *function, gint line, GObject *object,
                            GstDebugMessage *message, gpointer user) {
  (void)level, (void)file, (void)function, (void)line, (void)object;
  const char *text = gst_debug_message_get(message);
  if (strcmp(gst_debug_category_get_name(category), "i2vgen") == 0 &&
      g_str_has_prefix(text, "job planned"))
    g_ptr_array_add(user, g_strdup(text));
}

/* On a CUDA model (here the planning device plan:cuda, which needs no GPU) each job is planned
 * against max-memory first: below what the job needs with every saving it is refused with an
 * error naming the need and the property; between the released and the kept need the element
 * releases the encoders itself and the job runs; with the default (the device's free memory) it
 * runs as asked. */
static void test_max_memory(void) {
  size_t kept = tiny_job_peak(FALSE), released = tiny_job_peak(TRUE);
  g_assert_cmpuint(released, <, kept);
  GstHarness *h = make_harness(1, 1, "RGB");
  gst_harness_set_sink_caps_str(h, "video/x-raw,format=RGB");
  g_object_set(h->element, "device", "plan:cuda", NULL); /* takes effect on the next READY→PAUSED */
  gst_harness_play(h);
  gst_element_set_state(h->element, GST_STATE_READY);
  gst_harness_play(h);
  guint64 kept_weights = persistent_bytes(h->element);

  g_object_set(h->element, "max-memory", (guint64)released - 1, NULL);
  char need[64];
  g_snprintf(need, sizeof need, "needs %zu bytes", released);
  const char *needles[] = {need, "property max-memory", NULL};
  expect_job_error(h, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NO_SPACE_LEFT, needles);
  gst_harness_teardown(h);

  h = make_harness(1, 1, "RGB");
  gst_harness_set_sink_caps_str(h, "video/x-raw,format=RGB");
  g_object_set(h->element, "device", "plan:cuda", "max-memory", (guint64)released, NULL);
  gst_element_set_state(h->element, GST_STATE_READY);
  gst_harness_play(h);
  g_assert_cmpint(gst_harness_push(h, make_image(h)), ==, GST_FLOW_OK);
  gst_buffer_unref(gst_harness_pull(h));
  g_assert_cmpuint(persistent_bytes(h->element), <, kept_weights); /* encoders released */
  /* the next job is planned on the released model: nothing to add, the session stays */
  GPtrArray *plans = g_ptr_array_new_with_free_func(g_free);
  GstDebugLevel threshold = gst_debug_get_default_threshold();
  gboolean active = gst_debug_is_active();
  gst_debug_set_active(TRUE);
  gst_debug_set_threshold_for_name("i2vgen", GST_LEVEL_INFO);
  gst_debug_add_log_function(keep_plan_lines, plans, NULL);
  g_assert_cmpint(gst_harness_push(h, make_image(h)), ==, GST_FLOW_OK);
  gst_buffer_unref(gst_harness_pull(h));
  gst_debug_remove_log_function(keep_plan_lines);
  gst_debug_unset_threshold_for_name("i2vgen");
  gst_debug_set_default_threshold(threshold);
  gst_debug_set_active(active);
  g_assert_cmpuint(plans->len, ==, 1);
  g_assert_null(strstr(g_ptr_array_index(plans, 0), "release-encoders"));
  g_ptr_array_unref(plans);

  g_object_set(h->element, "max-memory", (guint64)0, NULL);
  g_assert_cmpint(gst_harness_push(h, make_image(h)), ==, GST_FLOW_OK);
  gst_buffer_unref(gst_harness_pull(h));
  gst_harness_teardown(h);
}
#endif

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/element/caps-and-timestamps", test_caps_and_timestamps);
  g_test_add_func("/element/rgba-downstream", test_rgba_downstream);
  g_test_add_func("/element/input-with-framerate", test_input_with_framerate);
  g_test_add_func("/element/two-jobs-then-eos", test_two_jobs_then_eos);
  g_test_add_func("/element/flush-cancels-within-a-step", test_flush_cancels_within_a_step);
  g_test_add_func("/element/state-cycles", test_state_cycles);
  g_test_add_func("/element/shared-model", test_shared_model);
  g_test_add_func("/element/model-info", test_model_info);
  g_test_add_func("/element/properties", test_properties);
  g_test_add_func("/element/presets", test_presets);
  g_test_add_func("/element/motion-strength", test_motion_strength);
  g_test_add_func("/element/sampler", test_sampler);
#ifdef I2V_HAVE_CUDA
  g_test_add_func("/element/max-memory", test_max_memory);
#endif
  g_test_add_func("/element/memory-strategies", test_memory_strategies);
  g_test_add_func("/element/missing-model", test_missing_model);
  g_test_add_func("/element/missing-lora", test_missing_lora);
  g_test_add_func("/element/no-model-configured", test_no_model_configured);
  g_test_add_func("/element/not-negotiated", test_not_negotiated);
  g_test_add_func("/element/invalid-prompt-error", test_invalid_prompt_error);
  g_test_add_func("/element/buffer-without-caps", test_buffer_without_caps);
  g_test_add_func("/element/model-without-weights", test_model_without_weights);
  return g_test_run();
}
