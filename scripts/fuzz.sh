#!/usr/bin/env bash
# Build the codec fuzz targets with libFuzzer coverage instrumentation on the stable
# toolchain (no nightly, no cargo-fuzz needed) and run each for FUZZ_SECONDS (default 60).
# Usage: scripts/fuzz.sh [target…]     FUZZ_SECONDS=600 scripts/fuzz.sh mqtt_decode
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
fi
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR=../target/fuzz
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros.
host="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --locked --bins --target "$host"
for t in "${targets[@]}"; do
  corpus="../target/fuzz/corpus/$t"
  mkdir -p "$corpus"
  echo "== fuzzing $t for ${seconds}s"
  "../target/fuzz/$host/release/$t" -max_total_time="$seconds" -max_len=4096 "$corpus" 2>&1 | tail -n 3
done
