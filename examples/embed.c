/* Embedding the i2vgen element in an application: builds image → i2vgen → MP4 (or a window),
 * sets the element's properties from the command line and prints the generation progress that
 * the element posts on the bus (i2vgen-progress element messages, model-loading progress).
 *
 *   embed [--model DIR] [--prompt TEXT] [--output OUT.mp4] [--headless] [--set PROP=VALUE]... IMAGE
 *
 * Without --output the frames go to a window (to fakesink with --headless). The model defaults to
 * the I2VGEN_MODEL environment variable, as for the element itself. */
#include <gst/gst.h>
#include <glib-unix.h>
#include <stdio.h>

typedef struct {
  GMainLoop *loop;
  GstElement *pipeline;
  int status; /* exit status: 1 after an error */
  guint frames;
} App;

/* Prints one i2vgen-progress message: a denoising step, or a decoded frame. */
static void print_generation_progress(const GstStructure *s) {
  guint job;
  int step, steps, frame, frames;
  guint64 elapsed_ms, eta_ms;
  if (!gst_structure_get(s, "job", G_TYPE_UINT, &job, "step", G_TYPE_INT, &step, "steps",
                         G_TYPE_INT, &steps, "frame", G_TYPE_INT, &frame, "frames", G_TYPE_INT,
                         &frames, "elapsed-ms", G_TYPE_UINT64, &elapsed_ms, "eta-ms", G_TYPE_UINT64,
                         &eta_ms, NULL))
    return;
  if (frame == 0)
    printf("job %u: step %d/%d, %.1f s elapsed, about %.1f s left\n", job, step, steps,
           elapsed_ms / 1000.0, eta_ms / 1000.0);
  else
    printf("job %u: frame %d/%d decoded, %.1f s elapsed\n", job, frame, frames,
           elapsed_ms / 1000.0);
  fflush(stdout);
}

static gboolean on_bus_message(GstBus *bus, GstMessage *msg, gpointer user) {
  App *app = user;
  (void)bus;
  switch (GST_MESSAGE_TYPE(msg)) {
  case GST_MESSAGE_ELEMENT: {
    const GstStructure *s = gst_message_get_structure(msg);
    if (gst_structure_has_name(s, "i2vgen-progress")) print_generation_progress(s);
    break;
  }
  case GST_MESSAGE_PROGRESS: { /* the element loading its model */
    GstProgressType type;
    char *code, *text;
    gst_message_parse_progress(msg, &type, &code, &text);
    printf("%s: %s\n", code, text);
    g_free(code);
    g_free(text);
    break;
  }
  case GST_MESSAGE_ERROR: {
    GError *err;
    char *debug;
    gst_message_parse_error(msg, &err, &debug);
    fprintf(stderr, "error from %s: %s\n", GST_OBJECT_NAME(msg->src), err->message);
    if (debug) fprintf(stderr, "  (%s)\n", debug);
    g_error_free(err);
    g_free(debug);
    app->status = 1;
    g_main_loop_quit(app->loop);
    break;
  }
  case GST_MESSAGE_EOS:
    g_main_loop_quit(app->loop);
    break;
  default:
    break;
  }
  return G_SOURCE_CONTINUE;
}

/* Ctrl-C: finish the file properly (EOS lets mp4mux write its index) instead of dying. */
static gboolean on_sigint(gpointer user) {
  App *app = user;
  fprintf(stderr, "interrupted: finishing the output\n");
  gst_element_send_event(app->pipeline, gst_event_new_eos());
  return G_SOURCE_REMOVE;
}

/* Counts the frames the element pushes. */
static GstPadProbeReturn count_frame(GstPad *pad, GstPadProbeInfo *info, gpointer user) {
  App *app = user;
  (void)pad;
  (void)info;
  app->frames++;
  return GST_PAD_PROBE_OK;
}

int main(int argc, char **argv) {
  char *model = NULL, *prompt = NULL, *output = NULL;
  char **settings = NULL;
  gboolean headless = FALSE;
  GOptionEntry entries[] = {
      {"model", 'm', 0, G_OPTION_ARG_FILENAME, &model,
       "Diffusers model directory (default: $I2VGEN_MODEL)", "DIR"},
      {"prompt", 'p', 0, G_OPTION_ARG_STRING, &prompt, "What the video should show", "TEXT"},
      {"output", 'o', 0, G_OPTION_ARG_FILENAME, &output,
       "Write an MP4 file instead of showing a window", "OUT.mp4"},
      {"headless", 0, 0, G_OPTION_ARG_NONE, &headless,
       "Without --output: discard the frames instead of showing them", NULL},
      {"set", 's', 0, G_OPTION_ARG_STRING_ARRAY, &settings,
       "Any i2vgen property, e.g. --set steps=30 --set preset=fast", "PROP=VALUE"},
      {NULL}};
  GError *err = NULL;
  GOptionContext *ctx =
      g_option_context_new("IMAGE - generate a video clip from an image with i2vgen");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_add_group(ctx, gst_init_get_option_group());
  if (!g_option_context_parse(ctx, &argc, &argv, &err) || argc != 2) {
    fprintf(stderr, "%s\n", err ? err->message : "expected one IMAGE (see --help)");
    return 2;
  }
  g_option_context_free(ctx);

  const char *sink = output     ? "videoconvert ! video/x-raw,format=I420 ! x264enc ! mp4mux ! "
                                  "filesink name=sink"
                     : headless ? "fakesink name=sink"
                                : "videoconvert ! autovideosink name=sink sync=false";
  char *description =
      g_strdup_printf("filesrc name=src ! decodebin ! videoconvert ! i2vgen name=gen ! %s", sink);
  App app = {.loop = g_main_loop_new(NULL, FALSE)};
  app.pipeline = gst_parse_launch(description, &err);
  g_free(description);
  if (app.pipeline == NULL) {
    fprintf(stderr, "cannot build the pipeline: %s (is the i2vgen plugin in GST_PLUGIN_PATH?)\n",
            err->message);
    return 1;
  }
  GstElement *src = gst_bin_get_by_name(GST_BIN(app.pipeline), "src");
  GstElement *gen = gst_bin_get_by_name(GST_BIN(app.pipeline), "gen");
  GstElement *sink_element = gst_bin_get_by_name(GST_BIN(app.pipeline), "sink");
  g_object_set(src, "location", argv[1], NULL);
  if (output) g_object_set(sink_element, "location", output, NULL);
  if (model) g_object_set(gen, "model-path", model, NULL);
  if (prompt) g_object_set(gen, "prompt", prompt, NULL);
  for (char **s = settings; s && *s; s++) {
    char **kv = g_strsplit(*s, "=", 2);
    if (kv[1] == NULL || g_object_class_find_property(G_OBJECT_GET_CLASS(gen), kv[0]) == NULL) {
      fprintf(stderr,
              "--set %s: expected PROP=VALUE with an i2vgen property (gst-inspect-1.0 i2vgen)\n",
              *s);
      return 2;
    }
    gst_util_set_object_arg(G_OBJECT(gen), kv[0], kv[1]);
    g_strfreev(kv);
  }
  GstPad *gen_src = gst_element_get_static_pad(gen, "src");
  gst_pad_add_probe(gen_src, GST_PAD_PROBE_TYPE_BUFFER, count_frame, &app, NULL);
  gst_object_unref(gen_src);

  GstBus *bus = gst_element_get_bus(app.pipeline);
  gst_bus_add_watch(bus, on_bus_message, &app);
  g_unix_signal_add(SIGINT, on_sigint, &app);
  if (gst_element_set_state(app.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    /* the element posted why (no model, ...) */
    GstMessage *m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    if (m)
      on_bus_message(bus, m, &app);
    else
      fprintf(stderr, "the pipeline did not start\n");
    if (m) gst_message_unref(m);
    app.status = 1;
  } else {
    g_main_loop_run(app.loop);
  }
  gst_element_set_state(app.pipeline, GST_STATE_NULL);
  if (app.status == 0)
    printf("%u frames generated%s%s\n", app.frames, output ? ", written to " : "",
           output ? output : "");

  gst_bus_remove_watch(bus);
  gst_object_unref(bus);
  gst_object_unref(src);
  gst_object_unref(gen);
  gst_object_unref(sink_element);
  gst_object_unref(app.pipeline);
  g_main_loop_unref(app.loop);
  g_strfreev(settings);
  g_free(model);
  g_free(prompt);
  g_free(output);
  return app.status;
}
