/* The i2vinterp element under GstHarness: frame rate and timestamps, held and drained frames,
 * streams without timestamps, alpha, flushing, caps negotiation and the errors it names. The
 * quality of the in-between frames is tested on known scenes in test_frame_interp.c. */
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <string.h>

#include "gsti2vgen.h"

#define W 48
#define H 32
#define FRAME (GST_SECOND / 8)

static GstHarness *make_harness(const char *format, guint factor, int fps_n) {
  GstElement *e = gst_element_factory_make("i2vinterp", NULL);
  g_assert_nonnull(e);
  g_object_set(e, "factor", factor, NULL);
  GstHarness *h = gst_harness_new_with_element(e, "sink", "src");
  gst_object_unref(e);
  char *caps = g_strdup_printf("video/x-raw,format=%s,width=%d,height=%d,framerate=%d/1", format, W,
                               H, fps_n);
  gst_harness_set_src_caps_str(h, caps);
  g_free(caps);
  return h;
}

/* A frame of bpp bytes per pixel: a diagonal pattern shifted by `shift` pixels, alpha (the 4th
 * byte) 255. */
static GstBuffer *make_frame(int bpp, int shift, GstClockTime pts) {
  GstBuffer *buf = gst_buffer_new_allocate(NULL, W * H * bpp, NULL);
  GstMapInfo map;
  gst_buffer_map(buf, &map, GST_MAP_WRITE);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int c = 0; c < bpp; c++)
        map.data[(y * W + x) * bpp + c] =
            c == 3 ? 255 : (guint8)(((x - shift) * 9 + y * 5 + c * 40) & 0xff);
  gst_buffer_unmap(buf, &map);
  GST_BUFFER_PTS(buf) = pts;
  GST_BUFFER_DURATION(buf) = GST_CLOCK_TIME_IS_VALID(pts) ? FRAME : GST_CLOCK_TIME_NONE;
  return buf;
}

static gboolean same_bytes(GstBuffer *a, GstBuffer *b) {
  GstMapInfo ma, mb;
  gst_buffer_map(a, &ma, GST_MAP_READ);
  gst_buffer_map(b, &mb, GST_MAP_READ);
  gboolean same = ma.size == mb.size && memcmp(ma.data, mb.data, ma.size) == 0;
  gst_buffer_unmap(a, &ma);
  gst_buffer_unmap(b, &mb);
  return same;
}

/* Pulls n buffers and checks they tile time evenly from start at `factor` per input frame. */
static GstBuffer **pull_frames(GstHarness *h, int n, guint factor, GstClockTime start) {
  GstBuffer **out = g_new(GstBuffer *, n);
  for (int i = 0; i < n; i++) {
    out[i] = gst_harness_pull(h);
    g_assert_nonnull(out[i]);
    GstClockTime ts =
        start + (i / factor) * FRAME + gst_util_uint64_scale(i % factor, FRAME, factor);
    g_assert_cmpuint(GST_BUFFER_PTS(out[i]), ==, ts);
    g_assert_cmpuint(GST_BUFFER_OFFSET(out[i]), ==, i);
    g_assert_cmpuint(GST_BUFFER_OFFSET_END(out[i]), ==, i + 1);
    g_assert_cmpuint(GST_BUFFER_DURATION(out[i]), >, 0);
    if (i > 0)
      g_assert_cmpuint(GST_BUFFER_PTS(out[i - 1]) + GST_BUFFER_DURATION(out[i - 1]), ==, ts);
  }
  return out;
}

static void free_frames(GstBuffer **b, int n) {
  for (int i = 0; i < n; i++) gst_buffer_unref(b[i]);
  g_free(b);
}

/* 8 fps in, 24 out: each input frame is followed by two in-between frames; the first frame of each
 * triple is the input itself; the last input is held for its whole duration at EOS. */
static void test_rate_and_timestamps(void) {
  GstHarness *h = make_harness("RGB", 3, 8);
  GstBuffer *in[3] = {make_frame(3, 0, 0), make_frame(3, 0, FRAME), make_frame(3, 4, 2 * FRAME)};
  for (int i = 0; i < 3; i++)
    g_assert_cmpint(gst_harness_push(h, gst_buffer_ref(in[i])), ==, GST_FLOW_OK);
  /* one frame is held back until EOS */
  g_assert_cmpuint(gst_harness_buffers_in_queue(h), ==, 6);
  g_assert_true(gst_harness_push_event(h, gst_event_new_eos()));
  GstBuffer **out = pull_frames(h, 9, 3, 0);
  g_assert_cmpuint(GST_BUFFER_PTS(out[8]) + GST_BUFFER_DURATION(out[8]), ==, 3 * FRAME);
  for (int i = 0; i < 3; i++) g_assert_true(same_bytes(out[3 * i], in[i]));
  /* between two equal frames nothing moves: the in-betweens are that frame */
  g_assert_true(same_bytes(out[1], in[0]) && same_bytes(out[2], in[0]));
  /* between different ones they are new frames */
  g_assert_false(same_bytes(out[4], in[1]) || same_bytes(out[4], in[2]));
  g_assert_false(same_bytes(out[5], in[1]) || same_bytes(out[5], in[2]) ||
                 same_bytes(out[4], out[5]));
  /* the held last frame, repeated */
  g_assert_true(same_bytes(out[7], in[2]) && same_bytes(out[8], in[2]));
  GstCaps *caps = gst_pad_get_current_caps(h->sinkpad);
  GstStructure *s = gst_caps_get_structure(caps, 0);
  int n, d;
  g_assert_true(gst_structure_get_fraction(s, "framerate", &n, &d));
  g_assert_cmpint(n, ==, 24);
  g_assert_cmpint(d, ==, 1);
  gst_caps_unref(caps);
  g_assert_cmpuint(gst_harness_buffers_in_queue(h), ==, 0);
  free_frames(out, 9);
  for (int i = 0; i < 3; i++) gst_buffer_unref(in[i]);
  gst_harness_teardown(h);
}

/* A cut (i2vgen's clip-start event, or a DISCONT buffer) between B and C: B is held for its
 * duration, no frame morphs from one clip into the next; C starts a new pair. */
static void check_cut(gboolean by_event) {
  GstHarness *h = make_harness("RGB", 3, 8);
  GstBuffer *in[4] = {make_frame(3, 0, 0), make_frame(3, 2, FRAME), make_frame(3, 9, 2 * FRAME),
                      make_frame(3, 11, 3 * FRAME)};
  for (int i = 0; i < 4; i++) {
    if (i == 2 && by_event)
      g_assert_true(gst_harness_push_event(
          h, gst_event_new_custom(
                 GST_EVENT_CUSTOM_DOWNSTREAM,
                 gst_structure_new(GST_I2VGEN_CLIP_START, "job", G_TYPE_UINT, 1, NULL))));
    GstBuffer *b = gst_buffer_ref(in[i]);
    if (i == 2 && !by_event) {
      b = gst_buffer_make_writable(b);
      GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DISCONT);
    }
    g_assert_cmpint(gst_harness_push(h, b), ==, GST_FLOW_OK);
  }
  gst_harness_push_event(h, gst_event_new_eos());
  GstBuffer **out = pull_frames(h, 12, 3, 0);
  g_assert_false(same_bytes(out[1], in[0]) || same_bytes(out[1], in[1])); /* A → B: moves */
  for (int k = 3; k < 6; k++) g_assert_true(same_bytes(out[k], in[1]));   /* B held: the cut */
  g_assert_true(same_bytes(out[6], in[2]));
  g_assert_false(same_bytes(out[7], in[2]) || same_bytes(out[7], in[3])); /* C → D: moves */
  free_frames(out, 12);
  for (int i = 0; i < 4; i++) gst_buffer_unref(in[i]);
  gst_harness_teardown(h);
}

static void test_cut_by_clip_event(void) {
  check_cut(TRUE);
}

static void test_cut_by_discont(void) {
  check_cut(FALSE);
}

/* Input without timestamps: they come from the frame rate, from the segment's start. */
static void test_no_timestamps(void) {
  GstHarness *h = make_harness("BGRx", 2, 8);
  for (int i = 0; i < 3; i++) gst_harness_push(h, make_frame(4, i * 2, GST_CLOCK_TIME_NONE));
  gst_harness_push_event(h, gst_event_new_eos());
  free_frames(pull_frames(h, 6, 2, 0), 6);
  gst_harness_teardown(h);
}

/* RGBA: alpha is interpolated too (here constant), and the colours change. */
static void test_alpha(void) {
  GstHarness *h = make_harness("RGBA", 4, 8);
  gst_harness_push(h, make_frame(4, 0, 0));
  gst_harness_push(h, make_frame(4, 5, FRAME));
  GstBuffer **out = pull_frames(h, 4, 4, 0);
  for (int i = 1; i < 4; i++) {
    GstMapInfo map;
    gst_buffer_map(out[i], &map, GST_MAP_READ);
    g_assert_cmpuint(map.size, ==, W * H * 4);
    for (int p = 0; p < W * H; p++) g_assert_cmpuint(map.data[4 * p + 3], ==, 255);
    gst_buffer_unmap(out[i], &map);
  }
  free_frames(out, 4);
  gst_harness_teardown(h);
}

/* factor 1 passes frames through at the same rate. */
static void test_factor_one(void) {
  GstHarness *h = make_harness("RGB", 1, 8);
  GstBuffer *in = make_frame(3, 0, 0);
  gst_harness_push(h, gst_buffer_ref(in));
  gst_harness_push(h, make_frame(3, 3, FRAME));
  gst_harness_push_event(h, gst_event_new_eos());
  GstBuffer **out = pull_frames(h, 2, 1, 0);
  g_assert_true(same_bytes(out[0], in));
  gst_buffer_unref(in);
  free_frames(out, 2);
  gst_harness_teardown(h);
}

/* A flush drops the held frame: the frames after it start a new time line. */
static void test_flush(void) {
  GstHarness *h = make_harness("RGB", 3, 8);
  gst_harness_push(h, make_frame(3, 0, 0));
  g_assert_true(gst_harness_push_event(h, gst_event_new_flush_start()));
  g_assert_true(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  g_assert_true(gst_harness_push_event(h, gst_event_new_segment(&segment)));
  gst_harness_push(h, make_frame(3, 1, 0));
  gst_harness_push(h, make_frame(3, 2, FRAME));
  gst_harness_push_event(h, gst_event_new_eos());
  free_frames(pull_frames(h, 6, 3, 0), 6);
  g_assert_cmpuint(gst_harness_buffers_in_queue(h), ==, 0);
  gst_harness_teardown(h);
}

/* The caps query answers what downstream takes, whatever the rate. */
static void test_caps_query(void) {
  GstElement *e = gst_element_factory_make("i2vinterp", NULL);
  GstHarness *h = gst_harness_new_with_element(e, "sink", "src");
  gst_object_unref(e);
  gst_harness_set_sink_caps_str(h, "video/x-raw,format=BGRx,framerate=24/1");
  GstCaps *caps = gst_pad_peer_query_caps(h->srcpad, NULL);
  g_assert_false(gst_caps_is_empty(caps));
  for (guint i = 0; i < gst_caps_get_size(caps); i++) {
    GstStructure *s = gst_caps_get_structure(caps, i);
    g_assert_cmpstr(gst_structure_get_string(s, "format"), ==, "BGRx");
  }
  GstCaps *eight = gst_caps_from_string("video/x-raw,format=BGRx,width=8,height=8,framerate=8/1");
  g_assert_true(gst_caps_can_intersect(caps, eight));
  gst_caps_unref(eight);
  gst_caps_unref(caps);
  gst_harness_teardown(h);
}

/* A still image (framerate 0/1) is refused with an error that names the frame rate. */
static void test_zero_framerate(void) {
  GstHarness *h = make_harness("RGB", 3, 8);
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=48,height=32,framerate=0/1");
  g_assert_cmpint(gst_harness_push(h, make_frame(3, 0, 0)), !=, GST_FLOW_OK);
  GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  g_assert_nonnull(msg);
  GError *err = NULL;
  gst_message_parse_error(msg, &err, NULL);
  g_assert_nonnull(strstr(err->message, "framerate=0/1"));
  g_error_free(err);
  gst_message_unref(msg);
  gst_element_set_bus(h->element, NULL);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

/* Caps of no width or height are refused with an error that names them (not only upstream's
 * "Internal data stream error"). */
static void check_sizeless_caps(const char *caps, const char *size) {
  GstHarness *h = make_harness("RGB", 3, 8);
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  gst_harness_set_src_caps_str(h, caps);
  g_assert_cmpint(gst_harness_push(h, make_frame(3, 0, 0)), ==, GST_FLOW_NOT_NEGOTIATED);
  GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  g_assert_nonnull(msg);
  GError *err = NULL;
  gst_message_parse_error(msg, &err, NULL);
  g_test_message("%s", err->message);
  g_assert_nonnull(strstr(err->message, size));
  g_assert_nonnull(strstr(err->message, "video/x-raw"));
  g_error_free(err);
  gst_message_unref(msg);
  gst_element_set_bus(h->element, NULL);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

static void test_zero_width(void) {
  check_sizeless_caps("video/x-raw,format=RGB,width=0,height=32,framerate=8/1", "0 x 32");
}

static void test_zero_height(void) {
  check_sizeless_caps("video/x-raw,format=RGB,width=48,height=0,framerate=8/1", "48 x 0");
}

/* A frame pair of BIG × BIG gray pixels at factor 16: 15 in-between frames, about 20 s of work on
 * two cores (more under sanitizers). */
#define BIG 3072

typedef struct {
  GstHarness *h;
  GstFlowReturn ret;
} Push;

static gpointer push_second_frame(gpointer data) {
  Push *p = data;
  GstBuffer *buf = gst_buffer_new_allocate(NULL, BIG * BIG, NULL);
  gst_buffer_memset(buf, 0, 90, BIG * BIG);
  GST_BUFFER_PTS(buf) = FRAME;
  p->ret = gst_harness_push(p->h, buf);
  return NULL;
}

/* While the pair is being interpolated, stop(h) (a state change to NULL or a flush) must get the
 * streaming thread back at once: the chain call returns FLUSHING with nothing pushed. Without
 * the stop the pair would hold the thread (and the state change) for its whole ~20 s; 5 s is a
 * bound on a hang, not a measure of speed. */
static void check_stop_during_pair(void (*stop)(GstHarness *h)) {
  GstElement *e = gst_element_factory_make("i2vinterp", NULL);
  g_object_set(e, "factor", 16, NULL);
  GstHarness *h = gst_harness_new_with_element(e, "sink", "src");
  gst_object_unref(e);
  char *caps =
      g_strdup_printf("video/x-raw,format=GRAY8,width=%d,height=%d,framerate=8/1", BIG, BIG);
  gst_harness_set_src_caps_str(h, caps);
  g_free(caps);
  GstBuffer *first = gst_buffer_new_allocate(NULL, BIG * BIG, NULL);
  gst_buffer_memset(first, 0, 30, BIG * BIG);
  GST_BUFFER_PTS(first) = 0;
  g_assert_cmpint(gst_harness_push(h, first), ==, GST_FLOW_OK); /* held */
  Push p = {h, GST_FLOW_OK};
  GThread *pusher = g_thread_new("push", push_second_frame, &p);
  g_usleep(200000); /* let the pair start (stopping before it starts is fine too) */
  gint64 start = g_get_monotonic_time();
  stop(h);
  g_thread_join(pusher);
  double seconds = (g_get_monotonic_time() - start) / 1e6;
  g_test_message("stopped after %.3f s", seconds);
  g_assert_cmpfloat(seconds, <, 5.0);
  g_assert_cmpint(p.ret, ==, GST_FLOW_FLUSHING);
  g_assert_cmpuint(gst_harness_buffers_received(h), ==, 0);
  gst_harness_teardown(h);
}

static void stop_by_state_change(GstHarness *h) {
  g_assert_cmpint(gst_element_set_state(h->element, GST_STATE_NULL), ==, GST_STATE_CHANGE_SUCCESS);
}

static void stop_by_flush(GstHarness *h) {
  g_assert_true(gst_harness_push_event(h, gst_event_new_flush_start()));
}

static void test_stop_by_state_change(void) {
  check_stop_during_pair(stop_by_state_change);
}

static void test_stop_by_flush(void) {
  check_stop_during_pair(stop_by_flush);
}

static void test_factor_range(void) {
  GstElement *e = gst_element_factory_make("i2vinterp", NULL);
  GParamSpecUInt *spec =
      G_PARAM_SPEC_UINT(g_object_class_find_property(G_OBJECT_GET_CLASS(e), "factor"));
  g_assert_cmpuint(spec->minimum, ==, 1);
  g_assert_cmpuint(spec->default_value, ==, 3);
  guint factor;
  g_object_get(e, "factor", &factor, NULL);
  g_assert_cmpuint(factor, ==, 3);
  gst_object_unref(e);
}

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/i2vinterp/rate-and-timestamps", test_rate_and_timestamps);
  g_test_add_func("/i2vinterp/no-timestamps", test_no_timestamps);
  g_test_add_func("/i2vinterp/cut-by-clip-event", test_cut_by_clip_event);
  g_test_add_func("/i2vinterp/cut-by-discont", test_cut_by_discont);
  g_test_add_func("/i2vinterp/alpha", test_alpha);
  g_test_add_func("/i2vinterp/factor-one", test_factor_one);
  g_test_add_func("/i2vinterp/flush", test_flush);
  g_test_add_func("/i2vinterp/caps-query", test_caps_query);
  g_test_add_func("/i2vinterp/zero-framerate", test_zero_framerate);
  g_test_add_func("/i2vinterp/factor-range", test_factor_range);
  g_test_add_func("/i2vinterp/zero-width", test_zero_width);
  g_test_add_func("/i2vinterp/zero-height", test_zero_height);
  g_test_add_func("/i2vinterp/stop-by-state-change", test_stop_by_state_change);
  g_test_add_func("/i2vinterp/stop-by-flush", test_stop_by_flush);
  return g_test_run();
}
