/* The largest image the engine decodes. A PNG of 1 MB can say 20000 × 20000 pixels (2.3 GB
 * decoded) and a 100-byte header 65535 × 65535 (12 GB): the size is read from the header and the
 * image refused before any pixel memory is taken. The limit is far above what the pipeline uses
 * (it resizes to at most a few megapixels) and below what a worker can afford per job. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* 64 megapixels (8192 × 8192: 192 MB of RGB8, 256 MB while decoding RGBA). */
#define I2V_IMAGE_DEFAULT_MAX_PIXELS ((guint64)64 << 20)

/* The limit in force: the last i2v_image_set_max_pixels value, else the environment variable
 * I2V_MAX_IMAGE_PIXELS (a positive integer), else I2V_IMAGE_DEFAULT_MAX_PIXELS. */
guint64 i2v_image_max_pixels(void);

/* Sets the limit for every later decode in the process (0: back to the environment / default).
 * Thread-safe. */
void i2v_image_set_max_pixels(guint64 max_pixels);

G_END_DECLS
