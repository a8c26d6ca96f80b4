#!/usr/bin/env bash
# Installs the Debian packages this project needs that are missing (scripts/packages.txt), then
# configures and builds into build/ (and, with --asan, build-asan/ under ASan+UBSan).
set -euo pipefail
cd "$(dirname "$0")/.."

want=$(grep -v '^#' scripts/packages.txt | grep -v '^$')
missing=()
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

configure() { # dir, extra meson args...
  local dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@"
  fi
  ninja -C "$dir"
}

configure build
if [ "${1:-}" = "--asan" ]; then
  # kernels for one architecture only: build/ compiles them for every one, and the sanitized
  # tests run no GPU code (nvcc took 75 of its 137 s on two cores for all four)
  configure build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized \
    -Dcuda-arch=sm_90
fi
