#!/usr/bin/env bash
# Live preview: shows each generated frame in a window as soon as the model has decoded it.
#
#   I2VGEN_MODEL=/models/i2vgen-xl examples/preview.sh IMAGE [i2vgen property=value ...]
#
# I2VGEN_SINK replaces the window (headless machines, tests), e.g.
#   I2VGEN_SINK=fakesink examples/preview.sh ...                       (discard the frames)
#   I2VGEN_SINK="pngenc ! multifilesink location=f-%02d.png" examples/preview.sh ...
# The sink does not sync to the clock: the frames come out of the diffusion model long after the
# pipeline started, so a synchronised sink would drop them all as late.
set -euo pipefail
if [ $# -lt 1 ]; then
  sed -n 4p "$0" >&2
  exit 2
fi
image=$1
shift
sink=${I2VGEN_SINK:-autovideosink sync=false}
# $sink is split into words on purpose: it is a piece of pipeline
# shellcheck disable=SC2086
exec gst-launch-1.0 filesrc location="$image" ! decodebin ! videoconvert ! i2vgen "$@" ! \
  videoconvert ! $sink
