#!/usr/bin/env bash
# Runs every example of examples/ headless on the tiny fixture model and checks what it made:
# the gst-launch scripts (read back with gst-discoverer-1.0 and decoded), the C program and the
# Python script (their progress lines and output files), and their answers to bad input. TAP.
# EXAMPLES_DIR and EMBED (the built examples/embed) come from meson.
set -u
# WHY is read by check() in the library
# shellcheck disable=SC2034
# shellcheck source=tests/gst_test_lib.sh
. "$(dirname "$0")/gst_test_lib.sh"

MODEL=$(tiny_model) || { echo "Bail out! no tiny fixture model"; exit 1; }
export I2VGEN_MODEL=$MODEL
EX=$EXAMPLES_DIR
W=32 H=32 FRAMES=3 FPS=8
SMALL=("width=$W" "height=$H" "num-frames=$FRAMES" steps=2 "fps=$FPS")
# the gst-launch scripts run bounded: gst-launch 1.22 can miss an error posted before its main loop
# runs and wait forever (see test_pipelines.sh); failing runs get the short bound
SLOW=120 QUICK=30

# image-to-mp4.sh on the shipped example image
run_captured image-to-mp4 timeout $SLOW "$EX/image-to-mp4.sh" "$EX/sunset.png" "$TMP/sunset.mp4" "${SMALL[@]}" \
  "prompt=clouds drifting at sunset"
WHY="exit $RC: $(tail -c 400 "$LOG")"
check "image-to-mp4.sh: exit 0" [ "$RC" -eq 0 ]
check "image-to-mp4.sh: H.264 MP4 ${W}x$H, $FPS fps, $FRAMES frames" \
  expect_media "$TMP/sunset.mp4" video/x-h264 $W $H $FPS $FRAMES
run_captured image-to-mp4-missing timeout $QUICK "$EX/image-to-mp4.sh" "$TMP/none.png" "$TMP/none.mp4" "${SMALL[@]}"
WHY="exit $RC: $(tail -c 400 "$LOG")"
check "image-to-mp4.sh on a missing image: non-zero, names the file" \
  bash -c "[ $RC -ne 0 ] && grep -qF '$TMP/none.png' '$LOG'"

# preview.sh headless: each frame as a PNG file instead of a window
run_captured preview timeout $SLOW env I2VGEN_SINK="pngenc ! multifilesink location=$TMP/preview-%02d.png" \
  "$EX/preview.sh" "$EX/sunset.png" "${SMALL[@]}"
n=$(find "$TMP" -name 'preview-*.png' | wc -l)
WHY="exit $RC, $n frames: $(tail -c 400 "$LOG")"
check "preview.sh (I2VGEN_SINK=pngenc ! multifilesink): $FRAMES frames" \
  bash -c "[ $RC -eq 0 ] && [ $n -eq $FRAMES ]"

# folder-to-video.sh: two images of different sizes become one continuous video
mkdir "$TMP/folder"
cp "$EX/sunset.png" "$TMP/folder/a.png"
make_png "$TMP/folder/b.png" 48 40 ball
run_captured folder timeout $SLOW "$EX/folder-to-video.sh" "$TMP/folder" "$TMP/folder.mp4" "${SMALL[@]}"
WHY="exit $RC: $(tail -c 400 "$LOG")"
check "folder-to-video.sh: exit 0" [ "$RC" -eq 0 ]
check "folder-to-video.sh: one MP4 with 2 × $FRAMES frames on one time line" \
  expect_media "$TMP/folder.mp4" video/x-h264 $W $H $FPS $((2 * FRAMES))
mkdir "$TMP/empty"
run_captured folder-empty timeout $QUICK "$EX/folder-to-video.sh" "$TMP/empty" "$TMP/empty.mp4"
check "folder-to-video.sh on an empty folder: non-zero, says why" \
  bash -c "[ $RC -ne 0 ] && grep -qF 'no PNG or JPEG images in $TMP/empty' '$LOG'"

# smooth-24fps.sh: 8 fps from the model, 24 fps out of i2vinterp (two in-between frames after each,
# the last frame held: 3·F frames)
run_captured smooth timeout $SLOW "$EX/smooth-24fps.sh" "$EX/sunset.png" "$TMP/smooth.mp4" width=$W height=$H \
  num-frames=$FRAMES steps=2
WHY="exit $RC: $(tail -c 400 "$LOG")"
check "smooth-24fps.sh: exit 0" [ "$RC" -eq 0 ]
check "smooth-24fps.sh: 24 fps, $((3 * FRAMES)) frames" \
  expect_media "$TMP/smooth.mp4" video/x-h264 $W $H 24 $((3 * FRAMES))

# the C program and the Python script: same options, same output
embed_checks() { # name, command...
  local name=$1
  shift
  run_captured "$name" "$@" --prompt "a test" --output "$TMP/$name.mp4" --set width=$W \
    --set height=$H --set num-frames=$FRAMES --set steps=2 --set fps=$FPS "$EX/sunset.png"
  WHY="exit $RC: $(tail -c 400 "$LOG")"
  check "$name: exit 0, progress printed for every step and frame" \
    bash -c "[ $RC -eq 0 ] && grep -qF 'job 0: step 2/2' '$LOG' && grep -qF 'job 0: frame $FRAMES/$FRAMES decoded' '$LOG'"
  check "$name: reports $FRAMES frames written" log_has "$FRAMES frames generated, written to $TMP/$name.mp4"
  check "$name: the MP4 holds them" expect_media "$TMP/$name.mp4" video/x-h264 $W $H $FPS $FRAMES
  run_captured "$name-headless" "$@" --headless --set width=$W --set height=$H --set num-frames=1 \
    --set steps=1 "$EX/sunset.png"
  WHY="exit $RC: $(tail -c 400 "$LOG")"
  check "$name --headless: 1 frame to fakesink" log_has "1 frames generated"
  run_captured "$name-no-model" "$@" --model /nonexistent/i2vgen-model --headless "$EX/sunset.png"
  WHY="exit $RC: $(tail -c 400 "$LOG")"
  check "$name with a missing model: non-zero, names the path" \
    bash -c "[ $RC -ne 0 ] && grep -qF /nonexistent/i2vgen-model '$LOG'"
  run_captured "$name-bad-set" "$@" --headless --set stepz=3 "$EX/sunset.png"
  WHY="exit $RC: $(tail -c 400 "$LOG")"
  check "$name --set stepz=3: non-zero, names it" \
    bash -c "[ $RC -ne 0 ] && grep -qF stepz '$LOG'"
}
embed_checks embed-c "$EMBED"

# Debian's python3-gi serves /usr/bin/python3; another python3 first in PATH may lack it
PY=""
for p in /usr/bin/python3 python3; do
  if "$p" -c 'import gi; gi.require_version("Gst", "1.0")' 2>/dev/null; then
    PY=$p
    break
  fi
done
if [ -n "$PY" ]; then
  embed_checks embed-py "$PY" "$EX/embed.py"
else
  for i in 1 2 3 4 5 6; do skip "embed.py check $i" "no python3 with python3-gi (scripts/setup.sh installs it)"; done
fi

tap_done
