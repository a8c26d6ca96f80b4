/* Jobs as GStreamer pipelines (see job_runner.h). */
#include "job_runner.h"

#include <gdk-pixbuf/gdk-pixbuf.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>
#include <string.h>

#include "image_input.h"

struct JobRunner {
  RunnerModel model;  /* strings owned */
  GstElement *holder; /* pipeline with one i2vgen in PAUSED: holds the model */
  GstElement *holder_gen;
};

/* The elements a job needs, and the Debian package of each. */
static const struct {
  const char *element, *package;
} needed[] = {
    {"appsrc", "gstreamer1.0-plugins-base"},
    {"i2vgen", "this project's plugin (GST_PLUGIN_PATH=build/gst, or meson install)"},
    {"i2vinterp", "this project's plugin (GST_PLUGIN_PATH=build/gst, or meson install)"},
    {"videoconvert", "gstreamer1.0-plugins-base"},
    {"x264enc", "gstreamer1.0-plugins-ugly"},
    {"mp4mux", "gstreamer1.0-plugins-good"},
    {"filesink", "gstreamer1.0 core"},
};

/* The first ERROR message on bus as a GError (its message, and the debug text after a colon). */
static void take_bus_error(GstBus *bus, const char *what, GError **error) {
  GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  GError *err = NULL;
  g_autofree char *debug = NULL;
  if (msg != NULL) gst_message_parse_error(msg, &err, &debug);
  g_set_error(error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED, "%s: %s", what,
              err ? err->message : "the pipeline failed without an error message");
  g_clear_error(&err);
  gst_clear_message(&msg);
}

/* Sets the model properties on an i2vgen element (the model cache key). */
static void set_model(GstElement *gen, const RunnerModel *m) {
  g_object_set(gen, "model-path", m->path, NULL);
  if (m->variant != NULL) g_object_set(gen, "variant", m->variant, NULL);
  if (m->device != NULL) g_object_set(gen, "device", m->device, NULL);
  if (m->precision != NULL) g_object_set(gen, "precision", m->precision, NULL);
}

JobRunner *job_runner_new(const RunnerModel *model, GError **error) {
  for (gsize i = 0; i < G_N_ELEMENTS(needed); i++) {
    GstElementFactory *f = gst_element_factory_find(needed[i].element);
    if (f == NULL) {
      g_set_error(error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
                  "the GStreamer element %s is missing: install %s", needed[i].element,
                  needed[i].package);
      return NULL;
    }
    gst_object_unref(f);
  }
  JobRunner *r = g_new0(JobRunner, 1);
  r->model.path = g_strdup(model->path);
  r->model.variant = g_strdup(model->variant);
  r->model.device = g_strdup(model->device);
  r->model.precision = g_strdup(model->precision);
  r->holder = gst_pipeline_new("model");
  r->holder_gen = gst_element_factory_make("i2vgen", NULL);
  set_model(r->holder_gen, &r->model);
  gst_bin_add(GST_BIN(r->holder), r->holder_gen);
  if (gst_element_set_state(r->holder, GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE) {
    GstBus *bus = gst_element_get_bus(r->holder);
    take_bus_error(bus, "cannot load the model", error);
    gst_object_unref(bus);
    job_runner_free(r);
    return NULL;
  }
  return r;
}

void job_runner_free(JobRunner *r) {
  if (r == NULL) return;
  gst_element_set_state(r->holder, GST_STATE_NULL);
  gst_object_unref(r->holder);
  g_free((char *)r->model.path);
  g_free((char *)r->model.variant);
  g_free((char *)r->model.device);
  g_free((char *)r->model.precision);
  g_free(r);
}

GstStructure *job_runner_model_info(JobRunner *r) {
  GstStructure *info = NULL;
  g_object_get(r->holder_gen, "model-info", &info, NULL); /* never waits for a generation */
  return info;
}

/* ---- one job ---- */

/* The first frame, copied by the probe on i2vgen's src pad (streaming thread) and read after the
 * pipeline went to NULL (which joins that thread). */
typedef struct {
  GdkPixbuf *first;
} Thumbnail;

/* Copies the first video frame that leaves i2vgen (RGB or RGBA) into a GdkPixbuf. */
static GstPadProbeReturn keep_first_frame(GstPad *pad, GstPadProbeInfo *info, Thumbnail *t) {
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
  GstCaps *caps = gst_pad_get_current_caps(pad);
  GstVideoInfo vi;
  GstVideoFrame frame;
  if (caps != NULL && gst_video_info_from_caps(&vi, caps) &&
      gst_video_frame_map(&frame, &vi, buf, GST_MAP_READ)) {
    gboolean alpha = GST_VIDEO_INFO_FORMAT(&vi) == GST_VIDEO_FORMAT_RGBA;
    int w = GST_VIDEO_INFO_WIDTH(&vi), h = GST_VIDEO_INFO_HEIGHT(&vi);
    GdkPixbuf *pb = gdk_pixbuf_new(GDK_COLORSPACE_RGB, alpha, 8, w, h);
    const guint8 *src = GST_VIDEO_FRAME_PLANE_DATA(&frame, 0);
    int src_stride = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0);
    for (int y = 0; y < h; y++)
      memcpy(gdk_pixbuf_get_pixels(pb) + (gsize)y * gdk_pixbuf_get_rowstride(pb),
             src + (gsize)y * src_stride, (gsize)w * (alpha ? 4 : 3));
    gst_video_frame_unmap(&frame);
    t->first = pb;
  }
  if (caps != NULL) gst_caps_unref(caps);
  return GST_PAD_PROBE_REMOVE;
}

/* The input image as one RGB buffer with its caps (still image: framerate 0/1). */
static GstBuffer *input_buffer(const RunnerJob *job, GstCaps **caps, GError **error) {
  g_autoptr(GMappedFile) file = g_mapped_file_new(job->input, FALSE, error);
  if (file == NULL) return NULL;
  g_autoptr(GBytes) bytes = g_mapped_file_get_bytes(file);
  I2vImage img;
  if (!image_input_decode(bytes, job->max_pixels, &img, error)) return NULL;
  GstVideoInfo vi;
  gst_video_info_set_format(&vi, GST_VIDEO_FORMAT_RGB, img.width, img.height);
  GST_VIDEO_INFO_FPS_N(&vi) = 0;
  GST_VIDEO_INFO_FPS_D(&vi) = 1;
  GstBuffer *buf = gst_buffer_new_allocate(NULL, GST_VIDEO_INFO_SIZE(&vi), NULL);
  GstMapInfo map;
  gst_buffer_map(buf, &map, GST_MAP_WRITE);
  for (int y = 0; y < img.height; y++)
    memcpy(map.data + (gsize)y * GST_VIDEO_INFO_PLANE_STRIDE(&vi, 0),
           img.rgb + (gsize)y * img.width * 3, (gsize)img.width * 3);
  gst_buffer_unmap(buf, &map);
  i2v_image_clear(&img);
  *caps = gst_video_info_to_caps(&vi);
  return buf;
}

/* Makes element factory (NULL name) and adds it to bin. */
static GstElement *add(GstElement *bin, const char *factory) {
  GstElement *e = gst_element_factory_make(factory, NULL);
  gst_bin_add(GST_BIN(bin), e);
  return e;
}

/* The job's pipeline; *gen gets its i2vgen element. */
static GstElement *build_pipeline(JobRunner *r, const RunnerJob *job, GstBuffer *image,
                                  GstCaps *caps, GstElement **gen) {
  const JobParams *p = job->params;
  GstElement *pipe = gst_pipeline_new("job");
  GstElement *src = add(pipe, "appsrc");
  g_object_set(src, "caps", caps, "format", GST_FORMAT_TIME, NULL);
  *gen = add(pipe, "i2vgen");
  set_model(*gen, &r->model);
  if (job->lora != NULL) g_object_set(*gen, "lora", job->lora, NULL);
  g_object_set(*gen, "prompt", p->prompt, "negative-prompt", p->negative_prompt, "steps", p->steps,
               "sampler", p->sampler, "guidance-scale", p->guidance_scale, "motion-strength",
               p->motion_strength, "seed", p->seed, "num-frames", p->num_frames, "fps", p->fps,
               "width", p->width, "height", p->height, NULL);
  GstElement *last = *gen;
  gst_element_link(src, *gen);
  if (p->interpolate > 1) {
    GstElement *interp = add(pipe, "i2vinterp");
    g_object_set(interp, "factor", p->interpolate, NULL);
    gst_element_link(last, interp);
    last = interp;
  }
  GstElement *convert = add(pipe, "videoconvert");
  GstElement *enc = add(pipe, "x264enc");
  GstElement *mux = add(pipe, "mp4mux");
  GstElement *sink = add(pipe, "filesink");
  g_object_set(mux, "faststart", TRUE, NULL);
  g_object_set(sink, "location", job->video_out, NULL);
  /* I420: fed RGB, x264enc picks High 4:4:4, which most players cannot decode */
  GstCaps *i420 = gst_caps_from_string("video/x-raw,format=I420");
  gst_element_link(last, convert);
  gst_element_link_filtered(convert, enc, i420);
  gst_caps_unref(i420);
  gst_element_link_many(enc, mux, sink, NULL);
  gst_app_src_push_buffer(GST_APP_SRC(src), image);
  gst_app_src_end_of_stream(GST_APP_SRC(src));
  return pipe;
}

static void post_cancel(GCancellable *cancel, GstBus *bus) {
  (void)cancel;
  gst_bus_post(bus, gst_message_new_application(NULL, gst_structure_new_empty("cancel")));
}

/* Waits for the end of the pipeline on bus, handing progress messages to job->progress. */
static gboolean wait_for_end(GstBus *bus, const RunnerJob *job, GError **error) {
  for (;;) {
    GstMessage *msg = gst_bus_timed_pop_filtered(bus, GST_CLOCK_TIME_NONE,
                                                 GST_MESSAGE_EOS | GST_MESSAGE_ERROR |
                                                     GST_MESSAGE_ELEMENT | GST_MESSAGE_APPLICATION);
    gboolean done = TRUE, ok = FALSE;
    const GstStructure *s = gst_message_get_structure(msg);
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS) {
      ok = TRUE;
    } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
      GError *err = NULL;
      gst_message_parse_error(msg, &err, NULL);
      g_propagate_error(error, err);
    } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_APPLICATION) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "cancelled");
    } else {
      done = FALSE;
      RunnerProgress p = {0};
      guint64 elapsed = 0, eta = 0;
      if (gst_structure_has_name(s, "i2vgen-progress") && job->progress != NULL &&
          gst_structure_get(s, "step", G_TYPE_INT, &p.step, "steps", G_TYPE_INT, &p.steps, "frame",
                            G_TYPE_INT, &p.frame, "frames", G_TYPE_INT, &p.frames, "elapsed-ms",
                            G_TYPE_UINT64, &elapsed, "eta-ms", G_TYPE_UINT64, &eta, NULL)) {
        p.elapsed_ms = (gint64)elapsed;
        p.eta_ms = (gint64)eta;
        job->progress(&p, job->user);
      }
    }
    gst_message_unref(msg);
    if (done) return ok;
  }
}

static gboolean save_thumbnail(Thumbnail *t, const char *path, GError **error) {
  if (t->first == NULL) {
    g_set_error(error, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED,
                "the pipeline ended without a frame");
    return FALSE;
  }
  return gdk_pixbuf_save(t->first, path, "png", error, NULL);
}

gboolean job_runner_run(JobRunner *r, const RunnerJob *job, GCancellable *cancel, GError **error) {
  GstCaps *caps = NULL;
  GstBuffer *image = input_buffer(job, &caps, error);
  if (image == NULL) return FALSE;
  GstElement *gen;
  GstElement *pipe = build_pipeline(r, job, image, caps, &gen);
  gst_caps_unref(caps);
  Thumbnail thumb = {0};
  GstPad *pad = gst_element_get_static_pad(gen, "src");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, (GstPadProbeCallback)keep_first_frame, &thumb,
                    NULL);
  gst_object_unref(pad);
  GstBus *bus = gst_element_get_bus(pipe);
  gulong handler = g_cancellable_connect(cancel, G_CALLBACK(post_cancel), bus, NULL);
  gboolean ok;
  if (gst_element_set_state(pipe, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    take_bus_error(bus, "cannot start the pipeline", error);
    ok = FALSE;
  } else {
    ok = wait_for_end(bus, job, error);
  }
  /* to NULL: a running generation stops within one step; filesink closes the file */
  gst_element_set_state(pipe, GST_STATE_NULL);
  g_cancellable_disconnect(cancel, handler);
  ok = ok && save_thumbnail(&thumb, job->thumbnail_out, error);
  g_clear_object(&thumb.first);
  gst_object_unref(bus);
  gst_object_unref(pipe);
  return ok;
}
