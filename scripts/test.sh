#!/usr/bin/env bash
# Sets up and builds (plain and ASan+UBSan), checks formatting, runs every test in both builds
# (the slow real-size suite and the browser test only in the plain one), builds without CUDA
# when build/ has it and runs the element and tool tests there (build-nocuda/), runs each fuzz
# target for 20 s when clang is installed (build-fuzz/) and ends with
# "N passed, N failed[, N skipped]".
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --asan || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0 skipped=0

# One .clang-format for the whole project.
files=$(git ls-files '*.c' '*.h' '*.cu' '*.cuh' 2>/dev/null)
if [ -z "$files" ] || clang-format --dry-run --Werror $files >/tmp/i2v-format.log 2>&1; then
  echo "format: OK"
  passed=$((passed + 1))
else
  echo "format: FAIL (clang-format -i the files below)"
  grep -o '^[^:]*\.[ch]:' /tmp/i2v-format.log | sort -u
  failed=$((failed + 1))
fi

# Runs meson test in dir with extra args and adds its counts.
run_suite() {
  local dir=$1 t0=$SECONDS
  shift
  meson test -C "$dir" --num-processes 2 --print-errorlogs "$@"
  local log="$dir/meson-logs/testlog.txt"
  local ok fail skip
  ok=$(awk '/^Ok:/ {print $2}' "$log" | tail -1)
  fail=$(awk '/^(Fail|Unexpected Pass|Timeout):/ {s += $NF} END {print s + 0}' "$log")
  skip=$(awk '/^Skipped:/ {print $2}' "$log" | tail -1)
  passed=$((passed + ${ok:-0}))
  failed=$((failed + ${fail:-0}))
  skipped=$((skipped + ${skip:-0}))
  [ -n "$ok" ] || failed=$((failed + 1)) # meson itself failed
  echo "($dir: tests took $((SECONDS - t0)) s)"
}

echo "== tests (build/) =="
run_suite build
echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/) =="
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan --no-suite slow --no-suite browser

# The same tree without CUDA: a machine without the toolkit builds -Dcuda=disabled, so when
# build/ has the CUDA backend, build-nocuda/ checks that everything still links without it and
# runs the element and tool tests, where CUDA-only features (plan:cuda, max-memory) show.
if grep -q "^Message: CUDA backend: yes" build/meson-logs/meson-log.txt 2>/dev/null; then
  echo "== without CUDA (build-nocuda/) =="
  [ -f build-nocuda/build.ninja ] || meson setup build-nocuda -Dcuda=disabled >/dev/null
  if ninja -C build-nocuda >/tmp/i2v-nocuda-build.log 2>&1; then
    run_suite build-nocuda --suite gst --suite tools --no-rebuild
  else
    echo "build without CUDA: FAIL (see /tmp/i2v-nocuda-build.log)"
    grep -E "error|undefined" /tmp/i2v-nocuda-build.log | head -20
    failed=$((failed + 1))
  fi
fi

# Slow tier, part 2: a short bounded run of every fuzz target (tests/fuzz/README.md), 20 s each,
# two at a time, in build-fuzz/ (clang, ASan + UBSan, libFuzzer); only the fuzzers are built.
if command -v clang >/dev/null; then
  echo "== fuzz targets (build-fuzz/) =="
  if [ ! -f build-fuzz/build.ninja ]; then
    CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined \
      -Db_lundef=false -Dcuda=disabled >/dev/null
  fi
  if ninja -C build-fuzz fuzzers >/tmp/i2v-fuzz-build.log 2>&1; then
    run_suite build-fuzz --suite fuzz --no-rebuild
    grep -h "executions in" build-fuzz/meson-logs/testlog.txt | sed 's/^/  /'
  else
    echo "fuzz: build failed (see /tmp/i2v-fuzz-build.log)"
    tail -20 /tmp/i2v-fuzz-build.log
    failed=$((failed + 1))
  fi
else
  echo "fuzz: skipped (clang is not installed)"
fi

echo "(scripts/test.sh: $SECONDS s in all, setup and builds included)"
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
