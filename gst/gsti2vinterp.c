/**
 * SECTION:element-i2vinterp
 * @title: i2vinterp
 *
 * Raises the frame rate of a video by an integer `factor` (default 3: 8 → 24 fps) with
 * motion-compensated in-between frames: for each pair of input frames it estimates where every
 * 8×8 block of the in-between frame comes from in both (bilateral block matching over a pyramid)
 * and blends the two motion-shifted frames (frame_interp.h). Unlike videorate, which repeats
 * frames, motion stays smooth. The output has factor × the input's frame rate and the same
 * duration: the last input frame is held for its whole duration (repeated).
 *
 * No frames are made across a cut: where i2vgen starts a new clip (its GST_I2VGEN_CLIP_START
 * event) or a buffer is flagged DISCONT, the held frame is repeated instead, as at the end.
 *
 * The input needs a fixed frame rate above 0. Timestamps come from the input buffers (or, where
 * they have none, from the frame rate). The element holds one frame: it adds one input frame of
 * latency.
 *
 * ## Example
 * |[
 * gst-launch-1.0 filesrc location=cat.png ! decodebin ! videoconvert ! \
 *     i2vgen prompt="a cat" fps=8 ! i2vinterp factor=3 ! videoconvert ! \
 *     video/x-raw,format=I420 ! x264enc ! mp4mux ! filesink location=cat-24fps.mp4
 * ]|
 */
#include "gsti2vinterp.h"

#include "clip_start.h"

GST_DEBUG_CATEGORY_STATIC(gst_i2vinterp_debug);
#define GST_CAT_DEFAULT gst_i2vinterp_debug

/* packed 8-bit formats: every byte of a pixel is one channel */
#define FORMATS "{ RGB, BGR, RGBA, BGRA, ARGB, ABGR, RGBx, BGRx, xRGB, xBGR, GRAY8 }"

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE(FORMATS)));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE(FORMATS)));

enum { PROP_0, PROP_FACTOR };
#define DEFAULT_FACTOR 3
#define MAX_FACTOR 16

G_DEFINE_TYPE(GstI2vinterp, gst_i2vinterp, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE(i2vinterp, "i2vinterp", GST_RANK_NONE, GST_TYPE_I2VINTERP);

/* Forgets the held frame and restarts the output count (flush, stop). */
static void reset(GstI2vinterp *self) {
  gst_clear_buffer(&self->held);
  self->out_offset = 0;
}

/* One input frame's duration from the caps. */
static GstClockTime frame_duration(const GstVideoInfo *info) {
  return gst_util_uint64_scale(GST_SECOND, GST_VIDEO_INFO_FPS_D(info), GST_VIDEO_INFO_FPS_N(info));
}

/* Where the held frame starts and ends: its timestamp (or the running count where the input has
 * none) to the next frame's timestamp (or its own duration, or the caps' frame duration). */
static void held_interval(GstI2vinterp *self, GstBuffer *next, GstClockTime *start,
                          GstClockTime *end) {
  GstBuffer *h = self->held;
  *start = GST_BUFFER_PTS_IS_VALID(h) ? GST_BUFFER_PTS(h) : self->next_ts;
  if (next != NULL && GST_BUFFER_PTS_IS_VALID(next) && GST_BUFFER_PTS(next) > *start)
    *end = GST_BUFFER_PTS(next);
  else if (GST_BUFFER_DURATION_IS_VALID(h) && GST_BUFFER_DURATION(h) > 0)
    *end = *start + GST_BUFFER_DURATION(h);
  else
    *end = *start + frame_duration(&self->in_info);
}

/* A new output buffer of the output size, or NULL (error posted). */
static GstBuffer *new_frame_buffer(GstI2vinterp *self) {
  GstBuffer *out = gst_buffer_new_allocate(NULL, GST_VIDEO_INFO_SIZE(&self->out_info), NULL);
  if (out == NULL)
    GST_ELEMENT_ERROR(self, RESOURCE, NO_SPACE_LEFT,
                      ("i2vinterp: could not allocate a %" G_GSIZE_FORMAT "-byte video frame",
                       GST_VIDEO_INFO_SIZE(&self->out_info)),
                      (NULL));
  return out;
}

/* Maps input buffer buf for reading; FALSE (error posted) when it does not fit the caps. */
static gboolean map_input(GstI2vinterp *self, GstVideoFrame *frame, GstBuffer *buf) {
  if (gst_video_frame_map(frame, &self->in_info, buf, GST_MAP_READ)) return TRUE;
  GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("i2vinterp: could not map an input frame"),
                    ("buffer of %" G_GSIZE_FORMAT " bytes for caps of %" G_GSIZE_FORMAT,
                     gst_buffer_get_size(buf), GST_VIDEO_INFO_SIZE(&self->in_info)));
  return FALSE;
}

/* The factor − 1 in-between frames of the pair set on the interpolator into out[], one time
 * point per thread (they are independent). GST_FLOW_ERROR (error posted) when a frame buffer
 * cannot be had, GST_FLOW_FLUSHING when a flush or a state change stopped the work (a pair of
 * large frames takes tens of seconds: it must not hold the streaming thread); out[] is left
 * empty unless GST_FLOW_OK. */
static GstFlowReturn interpolate_all(GstI2vinterp *self, GstBuffer **out) {
  int n = (int)self->active_factor - 1, ready = 0, complete = 0;
  GstVideoFrame *frames = g_new0(GstVideoFrame, n);
  for (; ready < n; ready++) {
    if ((out[ready] = new_frame_buffer(self)) == NULL) break;
    if (!gst_video_frame_map(&frames[ready], &self->out_info, out[ready], GST_MAP_WRITE)) {
      GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("i2vinterp: could not map an output frame"),
                        (NULL));
      gst_clear_buffer(&out[ready]);
      break;
    }
  }
  if (ready == n) {
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : complete)
    for (int k = 0; k < n; k++)
      complete +=
          gst_frame_interp_run(self->interp, (double)(k + 1) / self->active_factor,
                               GST_VIDEO_FRAME_PLANE_DATA(&frames[k], 0),
                               GST_VIDEO_FRAME_PLANE_STRIDE(&frames[k], 0), &self->stopping);
  }
  GstFlowReturn ret = ready < n ? GST_FLOW_ERROR : complete < n ? GST_FLOW_FLUSHING : GST_FLOW_OK;
  for (int k = 0; k < ready; k++) {
    gst_video_frame_unmap(&frames[k]);
    if (ret != GST_FLOW_OK) gst_clear_buffer(&out[k]);
  }
  g_free(frames);
  if (ret == GST_FLOW_FLUSHING)
    GST_DEBUG_OBJECT(self, "stopped: %d of %d frames made", complete, n);
  return ret;
}

/* Pushes the held frame and the factor − 1 frames between it and next (next NULL: the held frame
 * repeated, at the end of the stream or a cut), evenly over the held frame's interval. */
static GstFlowReturn push_interval(GstI2vinterp *self, GstBuffer *next) {
  GstClockTime start, end;
  held_interval(self, next, &start, &end);
  guint factor = self->active_factor;
  GstBuffer **between = NULL; /* the in-between frames, when there is a pair */
  if (next != NULL && factor > 1) {
    GstVideoFrame a, b;
    if (!map_input(self, &a, self->held)) return GST_FLOW_ERROR;
    if (!map_input(self, &b, next)) {
      gst_video_frame_unmap(&a);
      return GST_FLOW_ERROR;
    }
    gst_frame_interp_set_pair(
        self->interp, GST_VIDEO_FRAME_PLANE_DATA(&a, 0), GST_VIDEO_FRAME_PLANE_STRIDE(&a, 0),
        GST_VIDEO_FRAME_PLANE_DATA(&b, 0), GST_VIDEO_FRAME_PLANE_STRIDE(&b, 0));
    between = g_new0(GstBuffer *, factor - 1);
    GstFlowReturn made = interpolate_all(self, between);
    gst_video_frame_unmap(&b);
    gst_video_frame_unmap(&a);
    if (made != GST_FLOW_OK) {
      g_free(between);
      return made;
    }
  }
  GstFlowReturn ret = GST_FLOW_OK;
  for (guint k = 0; k < factor && ret == GST_FLOW_OK; k++) {
    GstBuffer *out =
        k == 0 || between == NULL ? gst_buffer_copy(self->held) : g_steal_pointer(&between[k - 1]);
    GstClockTime ts = start + gst_util_uint64_scale(k, end - start, factor);
    GstClockTime ts_end = start + gst_util_uint64_scale(k + 1, end - start, factor);
    if (k > 0) GST_BUFFER_FLAG_UNSET(out, GST_BUFFER_FLAG_DISCONT);
    GST_BUFFER_PTS(out) = ts;
    GST_BUFFER_DTS(out) = GST_CLOCK_TIME_NONE;
    GST_BUFFER_DURATION(out) = ts_end - ts;
    GST_BUFFER_OFFSET(out) = self->out_offset;
    GST_BUFFER_OFFSET_END(out) = ++self->out_offset;
    ret = gst_pad_push(self->srcpad, out);
  }
  for (guint k = 0; between != NULL && k + 1 < factor; k++) gst_clear_buffer(&between[k]);
  g_free(between);
  self->next_ts = end;
  return ret;
}

/* Pushes out the held frame, if any (end of stream, new caps). */
static GstFlowReturn drain(GstI2vinterp *self) {
  if (self->held == NULL) return GST_FLOW_OK;
  GstFlowReturn ret = push_interval(self, NULL);
  gst_clear_buffer(&self->held);
  return ret;
}

/* The byte of a 4-byte pixel that is neither R, G nor B (alpha or padding), or -1. */
static int extra_channel(const GstVideoInfo *info) {
  if (GST_VIDEO_INFO_COMP_PSTRIDE(info, 0) != 4) return -1;
  for (int byte = 0; byte < 4; byte++) {
    gboolean colour = FALSE;
    for (int c = 0; c < 3; c++) colour |= (int)GST_VIDEO_INFO_COMP_POFFSET(info, c) == byte;
    if (!colour) return byte;
  }
  return -1;
}

static gboolean set_caps(GstI2vinterp *self, GstCaps *caps) {
  GstVideoInfo info;
  if (!gst_video_info_from_caps(&info, caps)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("i2vinterp: invalid video caps"),
                      ("%" GST_PTR_FORMAT, caps));
    return FALSE;
  }
  int n = GST_VIDEO_INFO_FPS_N(&info), d = GST_VIDEO_INFO_FPS_D(&info), out_n, out_d;
  if (n <= 0 || d <= 0) {
    GST_ELEMENT_ERROR(
        self, CORE, NEGOTIATION,
        ("i2vinterp needs a fixed frame rate above 0 on its input, got framerate=%d/%d "
         "(a still image? put videorate or a capsfilter with a framerate before it)",
         n, d),
        ("%" GST_PTR_FORMAT, caps));
    return FALSE;
  }
  GST_OBJECT_LOCK(self);
  guint factor = self->factor;
  GST_OBJECT_UNLOCK(self);
  if (!gst_util_fraction_multiply(n, d, (int)factor, 1, &out_n, &out_d)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                      ("i2vinterp: framerate=%d/%d times factor %u overflows", n, d, factor),
                      (NULL));
    return FALSE;
  }
  if (self->have_caps && drain(self) != GST_FLOW_OK) return FALSE;
  GstVideoInfo out = info;
  GST_VIDEO_INFO_FPS_N(&out) = out_n;
  GST_VIDEO_INFO_FPS_D(&out) = out_d;
  GstCaps *out_caps = gst_video_info_to_caps(&out);
  gboolean ok = gst_pad_push_event(self->srcpad, gst_event_new_caps(out_caps));
  gst_caps_unref(out_caps);
  if (!ok) return FALSE;
  gst_frame_interp_free(self->interp);
  self->interp = gst_frame_interp_new(GST_VIDEO_INFO_WIDTH(&info), GST_VIDEO_INFO_HEIGHT(&info),
                                      GST_VIDEO_INFO_COMP_PSTRIDE(&info, 0), extra_channel(&info));
  self->in_info = info;
  self->out_info = out;
  self->active_factor = factor;
  self->have_caps = TRUE;
  GST_DEBUG_OBJECT(self, "%d/%d fps in, %d/%d out", n, d, out_n, out_d);
  return TRUE;
}

static GstFlowReturn gst_i2vinterp_chain(GstPad *pad, GstObject *parent, GstBuffer *buf) {
  GstI2vinterp *self = GST_I2VINTERP(parent);
  (void)pad;
  if (!self->have_caps) {
    gst_buffer_unref(buf);
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("i2vinterp: a buffer came before the caps"),
                      (NULL));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (self->held != NULL && GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DISCONT)) {
    GstFlowReturn ret = drain(self); /* a break in the stream: nothing to move between */
    if (ret != GST_FLOW_OK) {
      gst_buffer_unref(buf);
      return ret;
    }
  }
  if (self->held == NULL) { /* the first frame (of the stream, or after a cut): wait for the next */
    self->held = buf;
    return GST_FLOW_OK;
  }
  GstFlowReturn ret = push_interval(self, buf);
  gst_buffer_unref(self->held);
  self->held = buf;
  return ret;
}

static gboolean gst_i2vinterp_sink_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  GstI2vinterp *self = GST_I2VINTERP(parent);
  switch (GST_EVENT_TYPE(event)) {
  case GST_EVENT_CAPS: {
    GstCaps *caps;
    gst_event_parse_caps(event, &caps);
    gboolean ok = set_caps(self, caps);
    gst_event_unref(event);
    return ok;
  }
  case GST_EVENT_SEGMENT: {
    const GstSegment *segment;
    gst_event_parse_segment(event, &segment);
    if (segment->format == GST_FORMAT_TIME) self->next_ts = segment->start;
    break;
  }
  case GST_EVENT_EOS:
    drain(self);
    break;
  case GST_EVENT_CUSTOM_DOWNSTREAM: /* a new clip of i2vgen: no frames across the cut */
    if (gst_event_has_name(event, GST_I2VGEN_CLIP_START)) drain(self);
    break;
  case GST_EVENT_FLUSH_START: /* let a running pair go: the chain call then returns FLUSHING */
    g_atomic_int_set(&self->stopping, 1);
    break;
  case GST_EVENT_FLUSH_STOP:
    reset(self);
    g_atomic_int_set(&self->stopping, 0);
    break;
  default:
    break;
  }
  return gst_pad_event_default(pad, parent, event);
}

/* caps without their framerate: the two pads agree on everything else, the rates differ by the
 * factor and are set when the input's is known */
static GstCaps *without_framerate(GstCaps *caps) {
  caps = gst_caps_make_writable(caps);
  for (guint i = 0; i < gst_caps_get_size(caps); i++)
    gst_structure_remove_field(gst_caps_get_structure(caps, i), "framerate");
  return caps;
}

/* Posts an error naming caps when they are fixed video caps with a width or height below 1. The
 * accept-caps check refuses them before any event function sees them, and upstream would report
 * only "Internal data stream error" (not-negotiated). Other refused caps are a normal part of
 * negotiation (a peer trying what it could send) and pass in silence. */
static void report_sizeless_caps(GstI2vinterp *self, GstCaps *caps) {
  if (!gst_caps_is_fixed(caps)) return;
  GstStructure *s = gst_caps_get_structure(caps, 0);
  int width, height;
  if (!gst_structure_has_name(s, "video/x-raw") || !gst_structure_get_int(s, "width", &width) ||
      !gst_structure_get_int(s, "height", &height) || (width > 0 && height > 0))
    return;
  GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                    ("i2vinterp cannot take video of %d x %d pixels (caps %" GST_PTR_FORMAT
                     "): width and height must be at least 1",
                     width, height, caps),
                    (NULL));
}

static gboolean gst_i2vinterp_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  GstI2vinterp *self = GST_I2VINTERP(parent);
  switch (GST_QUERY_TYPE(query)) {
  case GST_QUERY_ACCEPT_CAPS: {
    gboolean handled = gst_pad_query_default(pad, parent, query), accepted = FALSE;
    GstCaps *caps;
    gst_query_parse_accept_caps(query, &caps);
    gst_query_parse_accept_caps_result(query, &accepted);
    if (pad == self->sinkpad && !accepted) report_sizeless_caps(self, caps);
    return handled;
  }
  case GST_QUERY_CAPS: {
    GstCaps *filter, *tmpl = gst_pad_get_pad_template_caps(pad);
    gst_query_parse_caps(query, &filter);
    GstPad *other = pad == self->sinkpad ? self->srcpad : self->sinkpad;
    GstCaps *peer = without_framerate(gst_pad_peer_query_caps(other, NULL));
    GstCaps *result = gst_caps_intersect(tmpl, peer);
    gst_caps_unref(peer);
    gst_caps_unref(tmpl);
    if (filter != NULL) {
      GstCaps *filtered = gst_caps_intersect_full(filter, result, GST_CAPS_INTERSECT_FIRST);
      gst_caps_unref(result);
      result = filtered;
    }
    gst_query_set_caps_result(query, result);
    gst_caps_unref(result);
    return TRUE;
  }
  case GST_QUERY_LATENCY: { /* one input frame is held back */
    if (pad != self->srcpad || !gst_pad_peer_query(self->sinkpad, query)) break;
    gboolean live;
    GstClockTime min, max;
    gst_query_parse_latency(query, &live, &min, &max);
    if (self->have_caps && self->active_factor > 1) {
      GstClockTime frame = frame_duration(&self->in_info);
      min += frame;
      if (GST_CLOCK_TIME_IS_VALID(max)) max += frame;
    }
    gst_query_set_latency(query, live, min, max);
    return TRUE;
  }
  default:
    break;
  }
  return gst_pad_query_default(pad, parent, query);
}

static GstStateChangeReturn gst_i2vinterp_change_state(GstElement *element,
                                                       GstStateChange transition) {
  GstI2vinterp *self = GST_I2VINTERP(element);
  /* Deactivating the pads (PAUSED → READY) waits for the chain call to return: stop the work on
   * the current pair first. */
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) g_atomic_int_set(&self->stopping, 1);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) g_atomic_int_set(&self->stopping, 0);
  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_i2vinterp_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY) {
    reset(self);
    self->have_caps = FALSE;
    g_clear_pointer(&self->interp, gst_frame_interp_free);
  }
  return ret;
}

static void gst_i2vinterp_set_property(GObject *object, guint id, const GValue *value,
                                       GParamSpec *pspec) {
  GstI2vinterp *self = GST_I2VINTERP(object);
  switch (id) {
  case PROP_FACTOR:
    GST_OBJECT_LOCK(self);
    self->factor = g_value_get_uint(value);
    GST_OBJECT_UNLOCK(self);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void gst_i2vinterp_get_property(GObject *object, guint id, GValue *value,
                                       GParamSpec *pspec) {
  GstI2vinterp *self = GST_I2VINTERP(object);
  switch (id) {
  case PROP_FACTOR:
    GST_OBJECT_LOCK(self);
    g_value_set_uint(value, self->factor);
    GST_OBJECT_UNLOCK(self);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

static void gst_i2vinterp_finalize(GObject *object) {
  GstI2vinterp *self = GST_I2VINTERP(object);
  gst_clear_buffer(&self->held);
  gst_frame_interp_free(self->interp);
  G_OBJECT_CLASS(gst_i2vinterp_parent_class)->finalize(object);
}

static void gst_i2vinterp_class_init(GstI2vinterpClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property = gst_i2vinterp_set_property;
  gobject_class->get_property = gst_i2vinterp_get_property;
  gobject_class->finalize = gst_i2vinterp_finalize;
  element_class->change_state = gst_i2vinterp_change_state;

  g_object_class_install_property(
      gobject_class, PROP_FACTOR,
      g_param_spec_uint("factor", "Factor",
                        "Output frames per input frame (the output frame rate is the input's times "
                        "this; 1 passes frames through)",
                        1, MAX_FACTOR, DEFAULT_FACTOR,
                        G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Motion-compensated frame interpolation", "Filter/Effect/Video",
      "Raises the frame rate by an integer factor with motion-compensated in-between frames",
      "i2vgen");
  GST_DEBUG_CATEGORY_INIT(gst_i2vinterp_debug, "i2vinterp", 0, "frame interpolation");
}

static void gst_i2vinterp_init(GstI2vinterp *self) {
  self->factor = DEFAULT_FACTOR;
  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_i2vinterp_chain));
  gst_pad_set_event_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_i2vinterp_sink_event));
  gst_pad_set_query_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_i2vinterp_query));
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);
  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_set_query_function(self->srcpad, GST_DEBUG_FUNCPTR(gst_i2vinterp_query));
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);
}
