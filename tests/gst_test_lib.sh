# Shared by the shell tests of the plugin (test_pipelines.sh, test_examples.sh): TAP output, the
# tiny fixture model, and reading media files back with gst-discoverer-1.0 and a decoder.
# shellcheck shell=bash disable=SC2034  # RC, LOG, WHY, DISCOVERED are read by the callers

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
TAP_N=0
TAP_FAILED=0

# ok NAME: one passed test; not_ok NAME WHY...: one failed test, with the reason as a TAP comment.
ok() {
  TAP_N=$((TAP_N + 1))
  echo "ok $TAP_N - $1"
}
not_ok() {
  TAP_N=$((TAP_N + 1))
  TAP_FAILED=$((TAP_FAILED + 1))
  echo "not ok $TAP_N - $1"
  shift
  printf '%s\n' "$@" | sed 's/^/# /'
}
skip() {
  TAP_N=$((TAP_N + 1))
  echo "ok $TAP_N - $1 # SKIP $2"
}
tap_done() {
  echo "1..$TAP_N"
  [ "$TAP_FAILED" -eq 0 ]
}

# check NAME CONDITION-COMMAND...: ok when the command succeeds, else not_ok with $WHY.
check() {
  local name=$1
  shift
  if "$@"; then ok "$name"; else not_ok "$name" "${WHY:-$*}"; fi
}

# The model directory of the first tiny fixture set (a set whose golden/ has tokenizer.json:
# the sets with real weight files), as tests/golden.c discovers them.
tiny_model() {
  local root=${I2V_FIXTURES:-$I2V_DEFAULT_FIXTURES} set
  for set in "$root"/*/; do
    if [ -f "$set/golden/tokenizer.json" ] && [ -d "$set/model" ]; then
      echo "${set%/}/model"
      return 0
    fi
  done
  echo "no fixture set with golden/tokenizer.json under $root" >&2
  return 1
}

# An input image of W×H for the tests, as PNG: a fixed test pattern.
make_png() { # out, width, height, [pattern]
  gst-launch-1.0 -q videotestsrc num-buffers=1 pattern="${4:-smpte}" ! \
    "video/x-raw,width=$2,height=$3" ! videoconvert ! pngenc ! filesink location="$1"
}

# discover FILE: gst-discoverer-1.0 -v output into $DISCOVERED (empty when it failed).
discover() {
  DISCOVERED=$(gst-discoverer-1.0 -v "$1" 2>&1) || DISCOVERED=""
}

# The duration gst-discoverer reported, in milliseconds ("Duration: 0:00:00.500000000").
discovered_duration_ms() {
  echo "$DISCOVERED" | awk '/^  Duration:/ {split($2, t, ":"); printf "%d\n", (t[1] * 3600 + t[2] * 60 + t[3]) * 1000 + 0.5}'
}

# discovered_video_field NAME: a field of the first video stream's caps (width, height, framerate).
discovered_video_field() {
  echo "$DISCOVERED" | grep -m1 -E '^ +video #' | grep -oE "$1=\(([a-z]+)\)[^,]+" | sed 's/.*)//'
}

# decoded_frames FILE: the number of raw frames a full decode of FILE yields.
decoded_frames() {
  gst-launch-1.0 filesrc location="$1" ! decodebin ! video/x-raw ! fakesink silent=false -v 2>&1 |
    grep -c 'last-message = chain'
}

# expect_media FILE CODEC-CAPS WIDTH HEIGHT FPS FRAMES: checks what gst-discoverer reports (caps,
# size, frame rate, duration = FRAMES/FPS within a frame) and the decoded frame count. Sets WHY.
expect_media() {
  local file=$1 codec=$2 w=$3 h=$4 fps=$5 frames=$6
  WHY=""
  [ -s "$file" ] || { WHY="$file missing or empty"; return 1; }
  discover "$file"
  [ -n "$DISCOVERED" ] || { WHY="gst-discoverer-1.0 could not read $file"; return 1; }
  local got_codec got_w got_h got_fps dur want_ms got_frames
  got_codec=$(echo "$DISCOVERED" | grep -m1 -E '^ +video #' | sed -E 's/^ +video #[0-9]+: ([^,]+).*/\1/')
  got_w=$(discovered_video_field width)
  got_h=$(discovered_video_field height)
  got_fps=$(discovered_video_field framerate)
  dur=$(discovered_duration_ms)
  want_ms=$((frames * 1000 / fps))
  got_frames=$(decoded_frames "$file")
  echo "# $file: $got_codec ${got_w}x${got_h} @ $got_fps fps, ${dur} ms, $got_frames decoded frames"
  [ "$got_codec" = "$codec" ] || WHY="$WHY codec $got_codec, expected $codec;"
  [ "$got_w" = "$w" ] && [ "$got_h" = "$h" ] || WHY="$WHY size ${got_w}x${got_h}, expected ${w}x${h};"
  [ "$got_fps" = "$fps/1" ] || WHY="$WHY framerate $got_fps, expected $fps/1;"
  [ -n "$dur" ] && [ $((dur - want_ms)) -le $((1000 / fps)) ] && [ $((want_ms - dur)) -le $((1000 / fps)) ] ||
    WHY="$WHY duration ${dur} ms, expected ${want_ms} ms;"
  [ "$got_frames" = "$frames" ] || WHY="$WHY $got_frames decoded frames, expected $frames;"
  [ -z "$WHY" ]
}

# run_captured NAME CMD...: runs CMD with stdout+stderr into $TMP/NAME.log and its status in $RC.
run_captured() {
  local name=$1
  shift
  RC=0
  "$@" >"$TMP/$name.log" 2>&1 || RC=$?
  LOG="$TMP/$name.log"
}

# log_has TEXT: the last captured log contains TEXT (fixed string). Sets WHY.
log_has() {
  grep -qF -- "$1" "$LOG" && return 0
  WHY="output lacks '$1': $(tail -c 600 "$LOG" | tr '\n' ' ')"
  return 1
}
