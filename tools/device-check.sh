#!/usr/bin/env bash
# The one script for a GPU machine (DESIGN.md "Tests and truth"): build with CUDA, run the CUDA
# op tests, compare the whole tiny pipeline on CUDA with the CPU, run the golden pipeline cases
# on CUDA against the golden files, benchmark the real config.
# Everything it writes that matters lands in $OUT (default ./out), at most 8 files:
#   device-check.log (every command, timestamped), info.txt (GPU, driver, toolkit, the NVIDIA
#   libraries found), test-cuda.log (op tests and pipeline/golden/memory tests), pipeline-compare.txt,
#   bench.txt, dmon.txt (nvidia-smi samples during the benchmark), summary.txt (one line per step).
# Sized for < 8 minutes on one H100: each step has its own timeout and a failed step does not
# stop the next one; the exit status is the number of failed steps.
#
# Build: with meson, ninja and the development packages present it configures build-cuda with
# -Dcuda=enabled for this GPU's architecture. Otherwise (the lent GPU machines have no GLib or
# OpenBLAS development files and no network) it unpacks .device/bundle.tar.xz, made beforehand on
# a build machine by tools/device-bundle.sh and carried along (I2V_USE_BUNDLE=1 forces that).
#
# Uses i2vgen generate --dump and i2vgen compare (tiny pipeline, CUDA vs CPU per precision) and
# i2vgen bench --formula-weights (the real configuration's formula weights, made on the fly: the
# same values `i2vgen mkmodel --config i2vgen-xl --init hash` writes, without 5 GB on disk).
set -u -o pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
OUT=${OUT:-$SRC/out}
WORK=${I2V_WORK:-/tmp/i2v-device-check}
mkdir -p "$OUT" "$WORK"
LOG=$OUT/device-check.log
SUMMARY=$OUT/summary.txt
: >"$LOG"
: >"$SUMMARY"
failed=0

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$LOG" >&2; }

# step NAME TIMEOUT CMD...: runs CMD with a timeout, output appended to the log, one summary line.
step() {
  local name=$1 limit=$2
  shift 2
  log "== $name: $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  local msg="$name: rc=$rc in $((SECONDS - t0)) s"
  [ $rc -eq 124 ] && msg="$msg (TIMEOUT after $limit s)"
  log "$msg"
  echo "$msg" >>"$SUMMARY"
  [ $rc -eq 0 ] || failed=$((failed + 1))
  return $rc
}

note() {
  log "NOTE: $*"
  echo "NOTE: $*" >>"$SUMMARY"
}

# find_nvidia_libs: the directories holding cuBLAS, cuBLASLt and cuDNN (dlopen()ed by the CUDA
# backend), prepended to LD_LIBRARY_PATH. Looks in the linker cache, then /usr/local/cuda*/lib*,
# then python3's site-packages/nvidia/**/lib (the nvidia-cublas, nvidia-cudnn-cu13 and
# nvidia-cuda-runtime wheels, which is where the lent GPU machines have them). Logs to info.txt.
find_nvidia_libs() {
  local lib dir found dirs=()
  local site
  site=$(python3 -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null)
  for lib in libcublas.so.13 libcublasLt.so.13 libcudnn.so.9; do
    found=$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l {print $NF; exit}')
    [ -n "$found" ] || found=$(ls /usr/local/cuda*/lib*/"$lib" 2>/dev/null | head -1)
    if [ -z "$found" ]; then
      for dir in $site; do
        [ -d "$dir/nvidia" ] || continue
        found=$(find "$dir/nvidia" -path '*/lib/*' -name "$lib" 2>/dev/null | head -1)
        [ -n "$found" ] && break
      done
    fi
    if [ -n "$found" ]; then
      echo "nvidia library $lib: $found" >>"$OUT/info.txt"
      dir=$(dirname "$found")
      case " ${dirs[*]} " in *" $dir "*) ;; *) dirs+=("$dir") ;; esac
    else
      echo "nvidia library $lib: NOT FOUND (ldconfig, /usr/local/cuda*/lib*, python3 site-packages/nvidia)" >>"$OUT/info.txt"
    fi
  done
  for dir in "${dirs[@]}"; do
    LD_LIBRARY_PATH=$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  done
  export LD_LIBRARY_PATH
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" >>"$OUT/info.txt"
}

# ---- 1. the machine ----
{
  date -u
  uname -a
  nvidia-smi || echo "nvidia-smi failed"
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm,power.limit \
    --format=csv || true
  nvcc --version || echo "no nvcc"
  # cuBLAS and cuDNN are dlopen()ed: without libcudnn.so.9 convolutions take the GEMM paths
  ldconfig -p | grep -E 'libcudnn\.so\.9|libcublas\.so\.13' || echo "no libcudnn.so.9/libcublas.so.13 in the loader cache"
  nproc
} >"$OUT/info.txt" 2>&1
find_nvidia_libs
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
arch=sm_${cap:-90}
log "GPU architecture $arch"

# ---- 2. build (or unpack the bundle) ----
BIN=
TINY=
if [ -z "${I2V_USE_BUNDLE:-}" ] && command -v meson >/dev/null && command -v ninja >/dev/null &&
  pkg-config --exists glib-2.0 json-glib-1.0 gdk-pixbuf-2.0 openblas 2>/dev/null; then
  if [ ! -f build-cuda/build.ninja ]; then
    step configure 120 meson setup build-cuda -Dcuda=enabled -Dcuda-arch="$arch" \
      -Dbuildtype=release
  fi
  step build 300 ninja -C build-cuda
  BIN=$SRC/build-cuda
  TEST_CUDA=$BIN/tests/test-cuda-ops
  TEST_CUDA_PIPELINE=$BIN/tests/test-cuda-pipeline
  FIXTURES=${I2V_FIXTURES:-$SRC/../shared/fixtures}
  I2VGEN=$BIN/tools/i2vgen
  TINY_MODEL=${I2V_FIXTURES:-$SRC/../shared/fixtures}/tiny-i2vgen-xl/model
  TINY_IMAGE=${I2V_FIXTURES:-$SRC/../shared/fixtures}/tiny-i2vgen-xl/golden/input_image.png
  REAL_MODEL=$WORK/xl
  step xl-configs 30 "$I2VGEN" mkmodel --config i2vgen-xl --configs-only --out "$REAL_MODEL"
elif [ -f .device/bundle.tar.xz ]; then
  note "no build environment here: using .device/bundle.tar.xz (built elsewhere, commit $(tar -xJOf .device/bundle.tar.xz ./COMMIT 2>/dev/null))"
  rm -rf "$WORK/bundle" && mkdir -p "$WORK/bundle"
  step unpack 60 tar -C "$WORK/bundle" -xJf .device/bundle.tar.xz
  # after the NVIDIA libraries: the bundle's own libraries (GLib, OpenBLAS, ...) come first
  export LD_LIBRARY_PATH=$WORK/bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  TEST_CUDA=$WORK/bundle/bin/test-cuda-ops
  TEST_CUDA_PIPELINE=$WORK/bundle/bin/test-cuda-pipeline
  FIXTURES=$WORK/bundle/fixtures
  I2VGEN=$WORK/bundle/bin/i2vgen
  TINY_MODEL=$WORK/bundle/tiny/model
  TINY_IMAGE=$WORK/bundle/tiny/input_image.png
  REAL_MODEL=$WORK/xl
  step xl-configs 30 "$I2VGEN" mkmodel --config i2vgen-xl --configs-only --out "$REAL_MODEL"
else
  note "cannot build here and no .device/bundle.tar.xz: run tools/device-bundle.sh on a build machine and carry .device"
  echo "failed steps: 1" >>"$SUMMARY"
  exit 1
fi

# ---- 3. the CUDA op tests (CUDA vs CPU, every op, fp32/fp16/bf16) ----
G_DEBUG=fatal-criticals OMP_NUM_THREADS=8 step test-cuda 240 \
  bash -c "'$TEST_CUDA' --tap -m slow >'$OUT/test-cuda.log' 2>&1"
grep -E '^(not ok|ok .*SKIP)' "$OUT/test-cuda.log" | head -20 | tee -a "$SUMMARY"
# the same with the scalar attention kernel only (tells a tensor-core kernel failure apart)
I2V_CUDA_ATTENTION=scalar G_DEBUG=fatal-criticals OMP_NUM_THREADS=8 step test-cuda-scalar-attn 120 \
  bash -c "'$TEST_CUDA' --tap -p /cuda/fp16/attention -p /cuda/bf16/attention >>'$OUT/test-cuda.log' 2>&1"
grep -cE '^ok' "$OUT/test-cuda.log" | sed 's/^/test-cuda ok lines: /' >>"$SUMMARY"
if nvidia-smi -L >/dev/null 2>&1 && grep -q 'SKIP no CUDA backend' "$OUT/test-cuda.log"; then
  note "a GPU is present but the CUDA backend did not start (see test-cuda.log)"
  failed=$((failed + 1))
fi

# ---- 4. the whole tiny pipeline: CUDA (each precision) against the CPU ----
gen="generate --model $TINY_MODEL --image $TINY_IMAGE --prompt 'a red ball' --width 40 --height 24 --frames 4 --steps 3 --seed 7"
step tiny-cpu 120 bash -c "'$I2VGEN' $gen --device cpu --dump '$WORK/tiny-cpu.safetensors'"
: >"$OUT/pipeline-compare.txt"
# bounds: cuda/NOTES.md (fp32 tight; fp16/bf16 relative L2 of the whole pipeline)
for pb in fp32:1e-4 fp16:3e-2 bf16:6e-2; do
  p=${pb%%:*} bound=${pb#*:}
  step tiny-cuda-$p 120 bash -c "'$I2VGEN' $gen --device cuda:0 --precision $p --dump '$WORK/tiny-cuda-$p.safetensors'" &&
    step compare-$p 60 bash -c "'$I2VGEN' compare --max-rel-l2 $bound '$WORK/tiny-cpu.safetensors' '$WORK/tiny-cuda-$p.safetensors' >>'$OUT/pipeline-compare.txt' 2>&1"
done
# fp16 again with the convolutions on the GEMM paths instead of cuDNN: tells a cuDNN failure (or
# cuDNN's share of the error) apart from the rest of the pipeline
step tiny-cuda-fp16-im2col 120 bash -c "I2V_CUDA_CONV=im2col '$I2VGEN' $gen --device cuda:0 --precision fp16 --dump '$WORK/tiny-cuda-fp16-im2col.safetensors'" &&
  step compare-fp16-im2col 60 bash -c "'$I2VGEN' compare --max-rel-l2 3e-2 '$WORK/tiny-cpu.safetensors' '$WORK/tiny-cuda-fp16-im2col.safetensors' >>'$OUT/pipeline-compare.txt' 2>&1"
# WORST lines in step order (fp32, fp16, bf16, fp16 with im2col convolutions; none for a step that failed)
grep WORST "$OUT/pipeline-compare.txt" | tee -a "$SUMMARY"

# ---- 5. benchmark at the real configuration (before the long golden runs: if the lease runs
# short, the numbers are what must come back): formula ("hash") weights in fp16, no file ----
nvidia-smi dmon -s pucm -d 1 >"$OUT/dmon.txt" 2>&1 &
dmon=$!
for size in 512x512 1280x704; do
  w=${size%x*} h=${size#*x}
  steps=3
  [ "$w" -gt 512 ] && steps=2
  step bench-$size 180 bash -c "'$I2VGEN' bench --model '$REAL_MODEL' --formula-weights 0 --device cuda:0 --precision fp16 --width $w --height $h --frames 16 --steps $steps --peak-tflops 790 >>'$OUT/bench.txt' 2>&1"
done
kill "$dmon" 2>/dev/null
tail -n 30 "$OUT/bench.txt" >>"$SUMMARY"


# ---- 6. the golden pipeline cases on CUDA against the golden files (fp32 within the goldens'
# atol, fp16/bf16 by relative L2), CUDA vs CPU on seeded noise, 20 jobs without memory growth;
# then the real-size (formula weight) golden cases ----
export I2V_FIXTURES=$FIXTURES
G_DEBUG=fatal-criticals OMP_NUM_THREADS=8 step test-cuda-goldens 120 \
  bash -c "'$TEST_CUDA_PIPELINE' --tap --verbose -s /cuda/realcfg/fp32 -s /cuda/realcfg/fp16 -s /cuda/realcfg/bf16 >>'$OUT/test-cuda.log' 2>&1"
G_DEBUG=fatal-criticals OMP_NUM_THREADS=8 step test-cuda-realcfg 120 \
  bash -c "'$TEST_CUDA_PIPELINE' --tap --verbose -p /cuda/realcfg/fp32 -p /cuda/realcfg/fp16 -p /cuda/realcfg/bf16 >>'$OUT/test-cuda.log' 2>&1"
grep -E '^(not ok|ok .*SKIP)|WORST|latents_final: relative|device used' "$OUT/test-cuda.log" | tail -40 >>"$SUMMARY"

echo "failed steps: $failed" >>"$SUMMARY"
log "done: $failed failed step(s); summary:"
cat "$SUMMARY" >&2
exit "$failed"
