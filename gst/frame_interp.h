/* Motion-compensated frame interpolation between two frames of packed 8-bit video.
 *
 * For a time t between frame a (t = 0) and frame b (t = 1), the motion of every 8×8 block of the
 * frame to be made is estimated by bilateral block matching: the vector v that makes a, sampled
 * at p − t·v, and b, sampled at p + (1 − t)·v, agree best over the block (so every output pixel
 * gets a vector: no holes to fill, as forward projection of a's motion would leave). The search
 * runs coarse to fine over a luma pyramid, vectors are median-filtered at each level and refined
 * to half a pixel at the finest, then interpolated bilinearly between block centres, and each
 * output pixel is (1 − t)·a(p − t·v) + t·b(p + (1 − t)·v). Linear motion between the two frames
 * is assumed; where matching fails the result degrades towards a cross-fade. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct FrameInterp FrameInterp;

/* A new interpolator for width × height frames of `channels` (1..4) interleaved 8-bit channels;
 * channel `skip` (e.g. alpha or padding; -1 for none) is interpolated but not used for matching.
 * NULL if the size is not positive. Free with gst_frame_interp_free. */
FrameInterp *gst_frame_interp_new(int width, int height, int channels, int skip);

void gst_frame_interp_free(FrameInterp *fi);

/* Sets the pair to interpolate between: a (earlier) and b (later), rows of a_stride / b_stride
 * bytes. Both are borrowed until the next gst_frame_interp_set_pair or gst_frame_interp_free. */
void gst_frame_interp_set_pair(FrameInterp *fi, const guint8 *a, int a_stride, const guint8 *b,
                               int b_stride);

/* Writes the frame at time t (0 < t < 1) between the pair into out (rows of out_stride bytes).
 * Runs for different times (and outputs) may go on in parallel on one interpolator. A run of a
 * large frame takes seconds: it stops early, returning FALSE with out partly written, once the
 * int at stop (NULL: never) is non-zero; it looks between pyramid levels and rows of blocks or
 * pixels, so stopping takes milliseconds. TRUE when the frame is complete. */
gboolean gst_frame_interp_run(const FrameInterp *fi, double t, guint8 *out, int out_stride,
                              const gint *stop);

G_END_DECLS
