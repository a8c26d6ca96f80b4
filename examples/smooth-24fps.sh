#!/usr/bin/env bash
# Image → smooth 24 fps MP4: the model makes few frames at 8 fps (its motion is trained on low frame
# rates), i2vinterp adds two motion-compensated frames between each pair (24 fps), and x264enc
# encodes it.
#
#   I2VGEN_MODEL=/models/i2vgen-xl examples/smooth-24fps.sh IMAGE OUT.mp4 [i2vgen property=value ...]
#
# fps=8 is set here; a later fps=... among the properties overrides it (the output is then 3× that
# rate). F model frames give 3·F frames: the last one is held for its duration.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n 5p "$0" >&2
  exit 2
fi
image=$1 out=$2
shift 2
exec gst-launch-1.0 -e filesrc location="$image" ! decodebin ! videoconvert ! \
  i2vgen fps=8 "$@" ! i2vinterp factor=3 ! videoconvert ! \
  video/x-raw,format=I420 ! x264enc ! mp4mux ! filesink location="$out"
