/* The i2vgen element: one still image in, a generated video clip out (I2VGen-XL). */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

#include <i2v/i2v.h>

G_BEGIN_DECLS

#define GST_TYPE_I2VGEN (gst_i2vgen_get_type())

/* The custom downstream event i2vgen sends before the first frame of each clip (structure name;
 * field "job": the job's index). The clips follow each other on one continuous time line; this
 * tells downstream elements that look across frames (i2vinterp) where one clip ends. */
#define GST_I2VGEN_CLIP_START "i2vgen-clip-start"
G_DECLARE_FINAL_TYPE(GstI2vgen, gst_i2vgen, GST, I2VGEN, GstElement)

/* A queued job: the input image converted to RGB8, or the EOS marker (image.rgb NULL). */
typedef struct {
  I2vImage image;
} GstI2vgenJob;

/* Generation settings copied from the properties when a job starts. */
typedef struct {
  char *prompt, *negative_prompt;
  guint steps, num_frames, fps, width, height, decode_chunk_size;
  double guidance, motion_strength;
  guint64 seed;
} GstI2vgenSettings;

struct _GstI2vgen {
  GstElement parent;
  GstPad *sinkpad, *srcpad;

  /* properties, under the object lock */
  char *model_path, *variant, *device, *precision, *lora, *preset;
  gboolean release_encoders;
  GstI2vgenSettings props;
  guint max_queued_jobs;

  I2vModel *model; /* loaded on READY→PAUSED; set under the object lock */

  /* the job queue, under lock */
  GMutex lock;
  GCond cond;
  GQueue jobs;               /* GstI2vgenJob* */
  gboolean flushing;         /* FLUSH_START / PAUSED→READY: refuse and cancel */
  GCancellable *cancellable; /* of the running job, NULL when idle */

  /* input format, set from CAPS events (streaming thread of upstream) */
  GstVideoInfo in_info;
  gboolean have_in_info;

  /* output state, src task only */
  gboolean sent_stream_start, need_segment, discont;
  GstCaps *out_caps;
  GstVideoFormat out_format;
  guint64 frames_out;      /* OFFSET of the next buffer */
  GstClockTime job_base;   /* PTS of the first frame of the running job */
  guint job_index;         /* jobs started since READY→PAUSED */
  GstFlowReturn last_flow; /* of the last push, to stop a job downstream refused */
  gint64 job_started_us;
};

GST_ELEMENT_REGISTER_DECLARE(i2vgen);

G_END_DECLS
