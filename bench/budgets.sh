#!/usr/bin/env bash
# Instruction budgets: counts the instructions of the operations in examples/budgets.rs with callgrind
# (exact and repeatable whatever else the machine does) and fails when one exceeds its budget in
# bench/budgets.txt. Prints a Markdown table.
#
#   bench/budgets.sh            # check (CI runs this)
#   bench/budgets.sh --measure  # print the counts and the budgets they would give (+12 %)
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGETS=bench/budgets.txt
HEADROOM_PERCENT=12

if ! command -v valgrind >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi
cargo build --profile budgets --quiet --example budgets
BIN=${CARGO_TARGET_DIR:-target}/budgets/examples/budgets
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

count() { # operation -> instructions inside measured_<operation>
  local out="$WORK/$1.out"
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect="*measured_$1*" \
    "$BIN" "$1" >"$WORK/$1.log" 2>&1 || { cat "$WORK/$1.log" >&2; return 1; }
  awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

failed=0
printf '| operation | instructions | budget | of budget |\n|---|---:|---:|---:|\n'
while read -r name budget _; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  used=$(count "$name")
  if [[ -z "$used" || "$used" == 0 ]]; then
    echo "budgets: no instructions counted for $name (is measured_$name in the binary?)" >&2
    exit 1
  fi
  if [[ "${1:-}" == --measure ]]; then
    printf '| %s | %d | %d (suggested) | |\n' "$name" "$used" $((used * (100 + HEADROOM_PERCENT) / 100))
    continue
  fi
  printf '| %s | %d | %d | %d %% |\n' "$name" "$used" "$budget" $((used * 100 / budget))
  if (( used > budget )); then
    echo "budgets: $name used $used instructions, over its budget of $budget" >&2
    failed=1
  fi
done < "$BUDGETS"
exit $failed
