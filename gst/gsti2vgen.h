/* The i2vgen element: one still image in, a generated video clip out (I2VGen-XL). */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

#include <i2v/i2v.h>

#include "clip_start.h"

G_BEGIN_DECLS

#define GST_TYPE_I2VGEN (gst_i2vgen_get_type())

/* The precision property: the engine's I2vPrecision values (i2v.h). */
#define GST_TYPE_I2VGEN_PRECISION (gst_i2vgen_precision_get_type())
GType gst_i2vgen_precision_get_type(void);

/* The sampler property: the engine's I2vSamplerKind values (i2v.h). */
#define GST_TYPE_I2VGEN_SAMPLER (gst_i2vgen_sampler_get_type())
GType gst_i2vgen_sampler_get_type(void);

/* The variant property: which weight files a model directory is read from. */
typedef enum {
  GST_I2VGEN_VARIANT_DEFAULT, /* *.safetensors */
  GST_I2VGEN_VARIANT_FP16,    /* *.fp16.safetensors */
} GstI2vgenVariant;
#define GST_TYPE_I2VGEN_VARIANT (gst_i2vgen_variant_get_type())
GType gst_i2vgen_variant_get_type(void);

G_DECLARE_FINAL_TYPE(GstI2vgen, gst_i2vgen, GST, I2VGEN, GstElement)

/* A queued job: the input image converted to RGB8, or the EOS marker (image.rgb NULL). */
typedef struct {
  I2vImage image;
} GstI2vgenJob;

/* Generation settings copied from the properties when a job starts. */
typedef struct {
  char *prompt, *negative_prompt;
  guint steps, num_frames, fps, width, height, decode_chunk_size;
  /* memory-saving strategies (I2vParams) */
  gboolean sequential_guidance;
  guint attention_chunk, decode_tile_overlap;
  gint decode_tile;
  I2vSamplerKind sampler;
  double guidance, motion_strength;
  guint64 seed;
} GstI2vgenSettings;

struct _GstI2vgen {
  GstElement parent;
  GstPad *sinkpad, *srcpad;

  /* properties, under the object lock */
  char *model_path, *device, *lora, *preset;
  GstI2vgenVariant variant;
  I2vPrecision precision;
  gboolean release_encoders;
  guint64 max_memory; /* device bytes a job may use (0: the device's free memory) */
  GstI2vgenSettings props;
  guint max_queued_jobs;

  I2vSession *session; /* on the model the properties name, made on READY→PAUSED; set under the
                         object lock (model-info reads it from any thread) */

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
