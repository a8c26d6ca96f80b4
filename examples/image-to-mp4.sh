#!/usr/bin/env bash
# Image → MP4: one still image (PNG or JPEG) becomes an H.264 clip in an MP4 file.
#
#   I2VGEN_MODEL=/models/i2vgen-xl examples/image-to-mp4.sh IMAGE OUT.mp4 [i2vgen property=value ...]
#   e.g. examples/image-to-mp4.sh examples/sunset.png sunset.mp4 preset=fast prompt="clouds drifting at sunset"
#
# The model is the directory in I2VGEN_MODEL (or pass model-path=DIR). Properties after OUT go to the
# i2vgen element as they are (see docs/user-guide.md); one argument per property, spaces allowed.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n 4,5p "$0" >&2
  exit 2
fi
image=$1 out=$2
shift 2
# I420 so that x264enc makes a High-profile stream every player reads (RGB would give High 4:4:4).
exec gst-launch-1.0 -e filesrc location="$image" ! decodebin ! videoconvert ! \
  i2vgen "$@" ! videoconvert ! video/x-raw,format=I420 ! x264enc ! mp4mux ! filesink location="$out"
