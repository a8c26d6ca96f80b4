/* The i2vinterp element: raises a video's frame rate by an integer factor with motion-compensated
 * in-between frames (frame_interp.h), e.g. i2vgen's 8 fps to 24 fps. */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

#include "frame_interp.h"

G_BEGIN_DECLS

#define GST_TYPE_I2VINTERP (gst_i2vinterp_get_type())
G_DECLARE_FINAL_TYPE(GstI2vinterp, gst_i2vinterp, GST, I2VINTERP, GstElement)

struct _GstI2vinterp {
  GstElement parent;
  GstPad *sinkpad, *srcpad;

  guint factor; /* property: output frames per input frame */

  /* streaming state, on the streaming thread */
  guint active_factor; /* the factor of the current caps (the property may change meanwhile) */
  GstVideoInfo in_info, out_info;
  gboolean have_caps;
  GstBuffer *held;      /* the last input frame, waiting for the next one */
  GstClockTime next_ts; /* where the held frame starts when the input has no timestamps */
  guint64 out_offset;   /* frames pushed since the start or the last flush */
  FrameInterp *interp;
  gint stopping; /* atomic: a flush or a state change to READY wants the streaming thread back */
};

GST_ELEMENT_REGISTER_DECLARE(i2vinterp);

G_END_DECLS
