#!/usr/bin/env bash
# Prepares, on a machine WITHOUT a GPU, what tools/device-check.sh needs on a GPU machine that
# cannot build the project itself (no GLib/json-glib/OpenBLAS development files there, no network):
#   .device/bundle.tar.xz = bin/ (i2vgen, test-cuda-ops, test-cuda-pipeline built here with
#                           -Dcuda=enabled),
#                           lib/ (their shared libraries except the C library itself),
#                           tiny/ (the tiny fixture model and its input image),
#                           fixtures/ (each set's model/ and the golden files the pipeline tests
#                           read: manifest, tolerances, pipeline cases, input image).
# .device/ ignores itself (.device/.gitignore); carry it with the device run (carry: [".device"]).
# device-check.sh unpacks and uses the bundle when the project cannot be configured there.
#
# Usage: tools/device-bundle.sh [cuda-arch (default sm_90: H100/H200)]
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-sm_90}
build=build-device
fixtures=${I2V_FIXTURES:-../shared/fixtures}

[ -d "$build" ] || meson setup "$build" -Dcuda=enabled -Dcuda-arch="$arch" -Dbuildtype=release
ninja -C "$build" tools/i2vgen tests/test-cuda-ops tests/test-cuda-pipeline

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$stage/tiny"
cp "$build/tools/i2vgen" "$build/tests/test-cuda-ops" "$build/tests/test-cuda-pipeline" \
  "$stage/bin/"
# every shared library they load, except glibc's own (the GPU machine's is newer and compatible)
ldd "$stage"/bin/* | awk '$3 ~ /^\// {print $3}' | sort -u |
  grep -vE '/(libc|libm|libpthread|libdl|librt|ld-linux-x86-64)\.so' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
cp -r "$fixtures/tiny-i2vgen-xl/model" "$stage/tiny/model"
cp "$fixtures/tiny-i2vgen-xl/golden/input_image.png" "$stage/tiny/"
for set in "$fixtures"/*/; do
  [ -f "$set/golden/manifest.json" ] || continue
  name=$(basename "$set")
  mkdir -p "$stage/fixtures/$name/golden"
  cp -r "$set/model" "$stage/fixtures/$name/"
  cp "$set"/golden/{manifest.json,tolerances.json,pipeline_*.safetensors,input_image.png} \
    "$stage/fixtures/$name/golden/"
done
git rev-parse HEAD >"$stage/COMMIT"
mkdir -p .device
echo '*' >.device/.gitignore
tar -C "$stage" -cJf .device/bundle.tar.xz .
ls -l .device/bundle.tar.xz
echo "carry: [\".device\"]; on the device: OUT=\$OUT tools/device-check.sh"
