/* The i2vgen GStreamer plugin. */
#include "gsti2vgen.h"

static gboolean plugin_init(GstPlugin *plugin) {
  return GST_ELEMENT_REGISTER(i2vgen, plugin);
}

#ifndef PACKAGE
#define PACKAGE "i2vgen"
#endif

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, i2vgen,
                  "Image-to-video generation with I2VGen-XL", plugin_init, I2VGEN_VERSION, "LGPL",
                  "i2vgen", "i2vgen")
