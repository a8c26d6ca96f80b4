#!/usr/bin/env bash
# A short bounded run of one libFuzzer target, as a TAP test (meson suite "fuzz", build-fuzz/):
#   run_fuzz.sh FUZZER NAME SECONDS
# Seeds come from make_corpus.py (fixtures: $I2V_FIXTURES); new inputs, the log and any crash or
# leak input stay in work-NAME/ next to the fuzzer. FUZZ_SECONDS overrides SECONDS. The test fails
# on a crash, a leak, a timeout (10 s for one input) or an out-of-memory (2 GB).
set -u
fuzzer=$1 name=$2 seconds=${FUZZ_SECONDS:-$3}
# a sanitizer report is a finding: stop there (UBSan would only print and go on)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
here=$(cd "$(dirname "$0")" && pwd)
work=$(dirname "$fuzzer")/work-$name
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
echo "1..1"
if ! python3 "$here/make_corpus.py" "$name" "$I2V_FIXTURES" "$work/seeds" >"$work/log" 2>&1; then
  echo "not ok 1 - $name: make_corpus.py failed"
  sed 's/^/# /' "$work/log"
  exit 0
fi
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" "$work/seeds" >"$work/log" 2>&1
status=$?
runs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$work/log")
found=$(ls "$work/artifacts" | wc -l)
if [ "$status" -eq 0 ] && [ "$found" -eq 0 ]; then
  echo "ok 1 - $name: ${runs:-?} executions in ${seconds} s, $(ls "$work/corpus" | wc -l) new inputs kept, no crash or leak"
else
  echo "not ok 1 - $name: exit $status, $found input(s) in $work/artifacts (rerun one: $fuzzer FILE)"
  grep -E 'ERROR|SUMMARY|#[0-9]+ ' "$work/log" | head -40 | sed 's/^/# /'
fi
