#!/usr/bin/env bash
# Runs every fuzz target for a bounded time on the stable toolchain (libFuzzer through cargo-fuzz,
# RUSTC_BOOTSTRAP for its unstable flags, no sanitizer). Seeds come from fuzz/corpus/<target> (read
# only); new inputs go to a temporary directory. A crash fails the run, and its reproducer stays in
# fuzz/artifacts/<target>/ and is printed (base64) so it survives in the CI log.
#
#   fuzz/run.sh                 # every target, FUZZ_SECONDS each (default 30)
#   fuzz/run.sh decode_public   # one target
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${FUZZ_SECONDS:-30}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^kraken_exporter-fuzz$')
fi
cargo fuzz build -s none
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failed=0
for target in "${targets[@]}"; do
  mkdir -p "$WORK/$target" "corpus/$target"
  if cargo fuzz run -s none "$target" "$WORK/$target" "corpus/$target" -- \
      -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$WORK/$target.log" 2>&1; then
    echo "fuzz $target: $(grep -m1 -o 'Done [0-9]* runs in [0-9]* second(s)' "$WORK/$target.log")"
  else
    failed=1
    echo "fuzz $target: FAILED" >&2
    tail -40 "$WORK/$target.log" >&2
    for artifact in artifacts/"$target"/*; do
      [ -f "$artifact" ] || continue
      echo "reproducer $artifact (base64):" >&2
      base64 "$artifact" >&2
    done
  fi
done
exit $failed
