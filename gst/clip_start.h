/* The custom downstream event i2vgen sends before the first frame of each clip (structure name;
 * field "job": the job's index). The clips follow each other on one continuous time line; this
 * tells downstream elements that look across frames (i2vinterp) where one clip ends. A header of
 * its own so that such elements need nothing else of i2vgen (nor the engine). */
#pragma once

#define GST_I2VGEN_CLIP_START "i2vgen-clip-start"
