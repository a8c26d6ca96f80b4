#!/usr/bin/env bash
# gst-launch-1.0 pipelines through the i2vgen element on the tiny fixture model: MP4 and WebM
# outputs read back with gst-discoverer-1.0 and decoded, presets from a launch line, and the errors
# and warnings a user sees for a missing model, bad property values and impossible caps. TAP.
set -u
# WHY is read by check() in the library
# shellcheck disable=SC2034
# shellcheck source=tests/gst_test_lib.sh
. "$(dirname "$0")/gst_test_lib.sh"

MODEL=$(tiny_model) || { echo "Bail out! no tiny fixture model"; exit 1; }
W=32 H=24 FRAMES=3 FPS=8
GEN=(i2vgen model-path="$MODEL" "prompt=a test" "width=$W" "height=$H" "num-frames=$FRAMES" steps=2 "fps=$FPS")
make_png "$TMP/in.png" 40 30

# filesrc of the test image, decoded, into i2vgen with the settings above
# Every gst-launch-1.0 run is bounded: gst-launch 1.22 quits its main loop from the bus's sync
# handler, so an error posted before the loop starts running (an element refusing the very first
# caps) is lost and gst-launch waits forever, after printing the error (about 1 run in 15 of the
# still-image case below on this machine). A timed-out run exits 124, non-zero like a failed one.
# Runs that must fail take a second or two, so they get a shorter bound: a lost error costs
# QUICK seconds, not the minutes a generating run may need under load.
SLOW=120 QUICK=30
launch() { # extra i2vgen properties and the rest of the pipeline, as gst-launch words
  timeout "${LAUNCH_TIMEOUT:-$SLOW}" gst-launch-1.0 -e filesrc location="$TMP/in.png" ! pngdec ! \
    videoconvert ! "$@"
}

# ---- positive ----

run_captured mp4 launch "${GEN[@]}" ! videoconvert ! video/x-raw,format=I420 ! x264enc ! mp4mux ! \
  filesink location="$TMP/out.mp4"
WHY="gst-launch exit $RC: $(tail -c 400 "$LOG")"
check "image to MP4 (x264enc + mp4mux): exit 0" [ "$RC" -eq 0 ]
check "MP4 read back: H.264 ${W}x$H, $FPS/1 fps, $FRAMES frames" \
  expect_media "$TMP/out.mp4" video/x-h264 $W $H $FPS $FRAMES

run_captured webm launch "${GEN[@]}" ! videoconvert ! vp8enc deadline=1 ! webmmux ! \
  filesink location="$TMP/out.webm"
WHY="gst-launch exit $RC: $(tail -c 400 "$LOG")"
check "image to WebM (vp8enc + webmmux): exit 0" [ "$RC" -eq 0 ]
check "WebM read back: VP8 ${W}x$H, $FPS/1 fps, $FRAMES frames" \
  expect_media "$TMP/out.webm" video/x-vp8 $W $H $FPS $FRAMES

# i2vinterp after i2vgen: 8 fps → 24 fps with motion-compensated in-between frames, the same
# duration (the last frame held): 3·F frames
run_captured interp launch "${GEN[@]}" ! i2vinterp factor=3 ! videoconvert ! \
  video/x-raw,format=I420 ! x264enc ! mp4mux ! filesink location="$TMP/interp.mp4"
WHY="gst-launch exit $RC: $(tail -c 400 "$LOG")"
check "i2vgen ! i2vinterp factor=3 to MP4: exit 0" [ "$RC" -eq 0 ]
check "MP4 read back: $((3 * FPS))/1 fps, $((3 * FRAMES)) frames" \
  expect_media "$TMP/interp.mp4" video/x-h264 $W $H $((3 * FPS)) $((3 * FRAMES))

# a preset from the launch line, then properties after it override its fields: "fast" sets 8
# frames (the default is 16) and 512x512, which width/height/steps then bring back down
run_captured preset launch i2vgen model-path="$MODEL" preset=fast width=$W height=$H steps=1 \
  fps=$FPS ! videoconvert ! video/x-raw,format=I420 ! x264enc ! mp4mux ! \
  filesink location="$TMP/preset.mp4"
WHY="gst-launch exit $RC: $(tail -c 400 "$LOG")"
check "preset=fast on the launch line gives its 8 frames" \
  expect_media "$TMP/preset.mp4" video/x-h264 $W $H $FPS 8

# two i2vgen elements sharing one model behind a tee, each before a sink that blocks the first
# frame until the whole pipeline has prerolled: each element generates on a session of its own and
# no engine lock is held while a frame goes downstream (with one lock per model this deadlocked)
run_captured shared timeout $SLOW gst-launch-1.0 -e filesrc location="$TMP/in.png" ! pngdec ! \
  videoconvert ! tee name=t t. ! queue ! "${GEN[@]}" ! fakesink sync=true \
  t. ! queue ! "${GEN[@]}" seed=7 ! fakesink sync=true
WHY="gst-launch exit $RC (124: timed out): $(tail -c 400 "$LOG")"
check "two i2vgen on one model behind a tee, prerolling sinks: both finish (no deadlock)" \
  [ "$RC" -eq 0 ]

# gst-inspect-1.0 documents the element: ranges and defaults, and the presets
run_captured inspect gst-inspect-1.0 i2vgen
check "gst-inspect-1.0 i2vgen: steps range and default" log_has "Range: 1 - 1000 Default: 50"
check "gst-inspect-1.0 i2vgen: presets listed" \
  bash -c "grep -q '\"fast\"' '$LOG' && grep -q '\"standard\"' '$LOG' && grep -q '\"model-default\"' '$LOG'"

# ---- negative ----

run_captured missing-model timeout $QUICK gst-launch-1.0 videotestsrc num-buffers=1 ! \
  i2vgen model-path=/nonexistent/i2vgen-model ! fakesink
WHY="exit $RC"
check "missing model path: gst-launch exits non-zero" [ "$RC" -ne 0 ]
check "missing model path: the error names the path" log_has "/nonexistent/i2vgen-model"

LAUNCH_TIMEOUT=$QUICK run_captured interp-still launch i2vinterp ! fakesink
WHY="exit $RC"
check "i2vinterp on a still image (framerate 0/1): gst-launch exits non-zero" [ "$RC" -ne 0 ]
check "i2vinterp on a still image: the error names the frame rate it got" \
  log_has "needs a fixed frame rate above 0 on its input, got framerate=0/1"

run_captured no-model env -u I2VGEN_MODEL timeout $QUICK gst-launch-1.0 videotestsrc num-buffers=1 ! i2vgen ! \
  fakesink
WHY="exit $RC"
check "no model configured: gst-launch exits non-zero" [ "$RC" -ne 0 ]
check "no model configured: the error says to set model-path or I2VGEN_MODEL" \
  bash -c "grep -qF model-path '$LOG' && grep -qF I2VGEN_MODEL '$LOG'"

# a broken model directory: the tiny model without the UNet's weights
mkdir -p "$TMP/broken"
for part in "$MODEL"/*; do ln -s "$part" "$TMP/broken/"; done
rm "$TMP/broken/unet"
mkdir "$TMP/broken/unet"
cp "$MODEL/unet/config.json" "$TMP/broken/unet/"
run_captured broken-model timeout $QUICK gst-launch-1.0 videotestsrc num-buffers=1 ! \
  i2vgen model-path="$TMP/broken" ! fakesink
WHY="exit $RC"
check "model without UNet weights: gst-launch exits non-zero" [ "$RC" -ne 0 ]
check "model without UNet weights: the error names the unet folder" log_has "$TMP/broken/unet"

# bad property values: warnings naming the property and the value (the pipeline then fails on
# the missing model, quickly)
run_captured bad-device timeout $QUICK gst-launch-1.0 videotestsrc num-buffers=1 ! \
  i2vgen device=gpu0 model-path=/nonexistent ! fakesink
check "device=gpu0: warning names the value, the property and what is allowed" \
  log_has "invalid value 'gpu0' for property 'device': expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
run_captured bad-steps timeout $QUICK gst-launch-1.0 videotestsrc num-buffers=1 ! \
  i2vgen steps=0 model-path=/nonexistent ! fakesink
check "steps=0 (out of range): warning names the property" log_has "for property 'steps'"
run_captured bad-preset timeout $QUICK gst-launch-1.0 videotestsrc num-buffers=1 ! \
  i2vgen preset=turbo model-path=/nonexistent ! fakesink
check "preset=turbo: warning names it and lists the presets" \
  log_has "unknown preset 'turbo' for property 'preset': expected one of"
run_captured bad-property timeout $QUICK gst-launch-1.0 videotestsrc num-buffers=1 ! i2vgen stepz=3 ! fakesink
WHY="exit $RC: $(cat "$LOG")"
check "unknown property stepz: gst-launch exits non-zero naming it" \
  bash -c "[ $RC -ne 0 ] && grep -qF stepz '$LOG'"

# downstream that wants another size than the properties give (videoconvert does not scale):
# the element's caps query follows its properties, so gst-launch refuses the link up front
LAUNCH_TIMEOUT=$QUICK run_captured caps launch "${GEN[@]}" ! videoconvert ! video/x-raw,width=64 ! fakesink
WHY="exit $RC"
check "downstream wants width=64: gst-launch exits non-zero" [ "$RC" -ne 0 ]
check "downstream wants width=64: the error names the caps it could not link" \
  log_has "can't handle caps video/x-raw, width=(int)64"

tap_done
