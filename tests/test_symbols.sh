#!/usr/bin/env bash
# The plugin's dynamic symbol table holds its registration entry points and libi2v's public API
# (the I2V_API functions of engine/include/i2v) and nothing else of the engine, the plugin or the
# static CUDA runtime; and every C function libi2v defines for the linker carries the i2v_ prefix
# (C++-mangled kernel symbols and AddressSanitizer's __odr_asan.* markers aside), so a static link cannot collide with a host's names. TAP.
set -u
PLUGIN=$1 LIBI2V=$2 INCLUDE=$3
n=0 failed=0
check() { # description, then a command that succeeds when the check holds
  local what=$1
  shift
  n=$((n + 1))
  if "$@"; then echo "ok $n - $what"; else echo "not ok $n - $what"; failed=$((failed + 1)); fi
}

public=$(grep -ho 'I2V_API[^(]*\bi2v_[a-z0-9_]*(' "$INCLUDE"/*.h | grep -o 'i2v_[a-z0-9_]*' | sort -u)
exported=$(nm -D --defined-only "$PLUGIN" | awk '{print $3}' | sort -u)
unexpected=$(comm -23 <(echo "$exported") \
  <(printf '%s\n' $public gst_plugin_i2vgen_get_desc gst_plugin_i2vgen_register | sort -u))
missing=$(comm -13 <(echo "$exported") <(echo "$public"))

has_none() { [ -z "$1" ] || { echo "# $2: $(echo $1 | head -c 600)"; return 1; }; }
check "the plugin exports nothing but its entry points and libi2v's public API" \
  has_none "$unexpected" "unexpected exports"
check "the plugin exports every public libi2v function" has_none "$missing" "not exported"
check "the public API is not empty ($(echo "$public" | wc -w) functions)" [ -n "$public" ]

unprefixed=$(nm --defined-only -g "$LIBI2V" 2>/dev/null | awk 'NF == 3 && $2 ~ /[TDRB]/ {print $3}' |
  grep -v '^i2v_' | grep -v '^_Z' | grep -v '^__odr_asan\.' | sort -u)
check "libi2v defines only i2v_-prefixed C symbols" has_none "$unprefixed" "unprefixed"

echo "1..$n"
[ "$failed" -eq 0 ]
