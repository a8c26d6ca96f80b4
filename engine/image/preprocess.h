/* The pipeline's bit-exact image preprocessing: Pillow 9.4's fixed-point BOX/BILINEAR resampling,
 * diffusers' _center_crop_wide with Python's float floor division, and the CLIP / VAE
 * normalisations. */
#pragma once

#include <i2v/image.h>

G_BEGIN_DECLS

typedef enum { I2V_RESAMPLE_BOX, I2V_RESAMPLE_BILINEAR } I2vResample;

/* Pillow-exact resize to width × height (a copy when the size is unchanged). New image. */
I2vImage i2v_image_resize(const I2vImage *src, int width, int height, I2vResample filter);

/* The size arithmetic of _center_crop_wide(src → target): resized size (Python float floor
 * division) and the crop origin (floor division, may be negative). */
void i2v_center_crop_wide_size(int src_w, int src_h, int target_w, int target_h, int *resized_w,
                               int *resized_h, int *x1, int *y1);

/* _center_crop_wide: BOX resize then a target_w × target_h crop, zero outside. New image.
 * When box_resized is not NULL it receives the intermediate BOX-resized image. */
I2vImage i2v_image_center_crop_wide(const I2vImage *src, int target_w, int target_h,
                                    I2vImage *box_resized);

/* CLIP pixel values [1,3,H,W]: (u8/255 - mean[c]) / std[c] in float32. out holds 3·W·H floats. */
void i2v_image_to_clip_pixels(const I2vImage *img, const float mean[3], const float std[3],
                              float *out);

/* VAE input [1,3,H,W]: 2·(u8/255) - 1 in float32. */
void i2v_image_to_vae_input(const I2vImage *img, float *out);

G_END_DECLS
