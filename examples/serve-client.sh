#!/usr/bin/env bash
# A client of `i2vgen serve` with curl: submits an image, prints the progress the server streams
# (Server-Sent Events), and downloads the finished MP4.
#
#   examples/serve-client.sh IMAGE OUT.mp4 PROMPT [FIELD=VALUE ...]
#   e.g. examples/serve-client.sh examples/sunset.png sunset.mp4 "clouds drifting" preset=fast
#
# The server is I2VGEN_URL (default http://127.0.0.1:8000); I2VGEN_API_KEY is sent when set.
# FIELD=VALUE pairs are more request fields (docs/service.md): steps=30, size=512x512, seed=7, ...
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n 5,6p "$0" >&2
  exit 2
fi
image=$1 out=$2 prompt=$3
shift 3
url=${I2VGEN_URL:-http://127.0.0.1:8000}
url=${url%/}
auth=()
[ -z "${I2VGEN_API_KEY:-}" ] || auth=(-H "Authorization: Bearer $I2VGEN_API_KEY")
fields=()
for f in "$@"; do fields+=(-F "$f"); done

# the value of a string member of a one-line JSON object
member() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

video=$(curl -sS --fail-with-body "${auth[@]}" -F "prompt=$prompt" -F "input_reference=@$image" \
  "${fields[@]}" "$url/v1/videos") || { echo "$video" >&2; exit 1; }
id=$(member id <<<"$video")
echo "$id queued"
# the events end with completed, failed or deleted; progress lines print as they come
curl -sSN "${auth[@]}" "$url/v1/videos/$id/events" | while IFS= read -r line; do
  case $line in
  "event: "*) event=${line#event: } ;;
  "data: "*)
    if [ "$event" = progress ]; then
      sed -E 's/.*"progress":([0-9]+),"step":([0-9]+),"steps":([0-9]+),"frame":([0-9]+),"frames":([0-9]+).*/\1% (step \2\/\3, frame \4\/\5)/' <<<"${line#data: }"
    else
      echo "$event"
    fi
    ;;
  esac
done
status=$(curl -sS "${auth[@]}" "$url/v1/videos/$id" | member status)
if [ "$status" != completed ]; then
  echo "$id $status: $(curl -sS "${auth[@]}" "$url/v1/videos/$id" | member message)" >&2
  exit 1
fi
curl -sS --fail-with-body "${auth[@]}" -o "$out" "$url/v1/videos/$id/content"
echo "wrote $out"
