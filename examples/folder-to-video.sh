#!/usr/bin/env bash
# A folder of images → one continuous video: every image (PNG or JPEG, in name order) becomes a
# clip and the clips follow each other on one time line in a single MP4.
#
#   I2VGEN_MODEL=/models/i2vgen-xl examples/folder-to-video.sh DIR OUT.mp4 [i2vgen property=value ...]
#
# multifilesrc reads numbered files, so the images are linked as 00000.png, 00001.png, ... in a
# temporary folder first. All images of the folder must share one format (PNG or JPEG).
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n 5p "$0" >&2
  exit 2
fi
dir=$1 out=$2
shift 2
mapfile -t images < <(find "$dir" -maxdepth 1 -type f \
  \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \) | LC_ALL=C sort)
if [ ${#images[@]} -eq 0 ]; then
  echo "folder-to-video: no PNG or JPEG images in $dir" >&2
  exit 1
fi
case ${images[0],,} in
*.png) ext=png caps=image/png decoder=pngdec ;;
*) ext=jpg caps=image/jpeg decoder=jpegdec ;;
esac
seq_dir=$(mktemp -d)
trap 'rm -rf "$seq_dir"' EXIT
for i in "${!images[@]}"; do
  ln -s "$(realpath "${images[$i]}")" "$seq_dir/$(printf %05d "$i").$ext"
done
echo "folder-to-video: ${#images[@]} images from $dir"
gst-launch-1.0 -e multifilesrc location="$seq_dir/%05d.$ext" caps="$caps,framerate=1/1" ! \
  $decoder ! videoconvert ! i2vgen "$@" ! videoconvert ! video/x-raw,format=I420 ! x264enc ! \
  mp4mux ! filesink location="$out"
