/* The i2vgen GStreamer plugin. */
#include "gsti2vgen.h"
#include "gsti2vinterp.h"

static gboolean plugin_init(GstPlugin *plugin) {
  return GST_ELEMENT_REGISTER(i2vgen, plugin) && GST_ELEMENT_REGISTER(i2vinterp, plugin);
}

#ifndef PACKAGE
#define PACKAGE "i2vgen"
#endif

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, i2vgen,
                  "Image-to-video generation with I2VGen-XL, and frame interpolation", plugin_init,
                  I2VGEN_VERSION, "LGPL", "i2vgen", "i2vgen")
