#!/usr/bin/env bash
# Memory under the audit's probes, with the shipped defaults: the exporter's peak resident memory
# (VmHWM) and its resident memory after the probe, against the Kubernetes limit of 64 MiB.
#
# 1. 576 connections from 9 loopback addresses, each sending request headers that never end
#    (399 KB of one header line), held until the exporter closes them (bench/header_flood.py).
# 2. An upstream BalanceEx answer of 120,000 assets (about 7.0 MB, under the 8 MiB size cap): refused
#    by max_assets (5,000 by default) as a decode error, the last values kept.
#
# 3. Answers naming 5,000 assets never seen before on every poll (56 to 61 characters, under the
#    64-character bound): each poll replaces the last, and the warn-once sets stop at 1,000 names,
#    so neither memory nor the log grows with the polls.
# 4. The same with 900-character keys, and one answer with a single 7 MB key: refused by the
#    64-character bound on names as decode errors, so no name is multiplied into series and pages.
# 5. 32 parallel GETs of the status page while the exporter polls a refused answer.
#
#   bench/memory.sh          # prints a Markdown table (see BENCHMARKS.md); fails above 64 MiB
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT_KIB=$((64 * 1024))
WORK=$(mktemp -d /tmp/kraken-memory.XXXXXX)
# shellcheck source=bench/common.sh
. bench/common.sh
status_kib() { awk -v key="$2:" '$1 == key {print $2}' "/proc/$1/status"; }

echo "building release..." >&2
cargo build --release --quiet --bin kraken_exporter --example simulated_kraken

start() { # name assets port [simulator options] -> sets PID, PORT
  local dir="$WORK/$1"
  mkdir -p "$dir"
  target/release/examples/simulated_kraken --accounts 1 --assets "$2" --poll-interval 5s --dir "$dir" "${@:4}" \
    >"$dir/simulator.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 600); do [ -f "$dir/kraken_exporter.toml" ] && break; sleep 0.1; done
  PORT=$3
  RUST_LOG=warn target/release/kraken_exporter --config "$dir/kraken_exporter.toml" \
    --web.listen-address "127.0.0.1:$PORT" >"$dir/exporter.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
}

# Waits up to 120 s for PATTERN in probe NAME's exporter log; fails the run saying WHAT otherwise.
until_logged() { # name pattern what
  for _ in $(seq 1 600); do
    grep -q "$2" "$WORK/$1/exporter.log" 2>/dev/null && return
    sleep 0.2
  done
  echo "$3" >&2
  cat "$WORK/$1/exporter.log" >&2
  exit 1
}

failed=0
echo "machine: $(nproc) cores; exporter $(git rev-parse --short HEAD 2>/dev/null || echo unknown); limit $LIMIT_KIB KiB"
echo
echo "| probe | before (KiB) | peak VmHWM (KiB) | after (KiB) | result |"
echo "|---|---:|---:|---:|---|"

# 1. Header flood against an exporter with 1,000 assets.
start headers 1000 19895
wait_http "http://127.0.0.1:$PORT/ready" 900
curl -s "http://127.0.0.1:$PORT/metrics" >/dev/null
before=$(status_kib "$PID" VmRSS)
read -r opened closed < <(python3 bench/header_flood.py "$PORT")
sleep 1
after=$(status_kib "$PID" VmRSS)
peak=$(status_kib "$PID" VmHWM)
(( peak > LIMIT_KIB )) && failed=1
echo "| 576 connections x 399 KB of unfinished headers, 9 addresses ($opened opened, $closed closed by the exporter) | $before | $peak | $after | $([ "$peak" -le $LIMIT_KIB ] && echo under 64 MiB || echo OVER) |"

# 2. A 150,000-asset answer.
# Two decimal places keep 120,000 rows (about 7.0 MB) under the 8 MiB cap, like the audit's 7.5 MB answer.
start rows 120000 19896 --decimals 2
until_logged rows 'more than max_assets' "the 150,000-row answer was not refused"
sleep 6  # and a second poll of it
size=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$PORT/metrics")
peak=$(status_kib "$PID" VmHWM)
after=$(status_kib "$PID" VmRSS)
(( peak > LIMIT_KIB )) && failed=1
echo "| BalanceEx answer of 120,000 assets (7.0 MB), refused by max_assets (/metrics stays $size bytes) | - | $peak | $after | $([ "$peak" -le $LIMIT_KIB ] && echo under 64 MiB || echo OVER) |"
# 3. New names on every poll.
start churn 5000 19897 --name-length 56 --churn --no-futures
wait_http "http://127.0.0.1:$PORT/ready" 900
before=$(status_kib "$PID" VmRSS)
sleep 60
size=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$PORT/metrics")
peak=$(status_kib "$PID" VmHWM)
after=$(status_kib "$PID" VmRSS)
log=$(wc -c <"$WORK/churn/exporter.log")
(( peak > LIMIT_KIB )) && failed=1
echo "| 60 s of answers naming 5,000 new 56- to 61-character assets every second (a poll every 5 s) (/metrics $size bytes, log $log bytes) | $before | $peak | $after | $([ "$peak" -le $LIMIT_KIB ] && echo under 64 MiB || echo OVER) |"

# 4. Names past the bound: 5,000 new 900-character keys every second, then one 7 MB key.
start long 5000 19898 --name-length 900 --churn --no-futures
until_logged long 'longer than the 64' "the long names were not refused"
sleep 20
# 5. The status page, 32 at once, while the refused answers keep coming.
pages=()
for _ in $(seq 1 32); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" & pages+=($!); done
wait "${pages[@]}"
page=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$PORT/")
peak=$(status_kib "$PID" VmHWM)
after=$(status_kib "$PID" VmRSS)
log=$(wc -c <"$WORK/long/exporter.log")
(( peak > LIMIT_KIB )) && failed=1
echo "| 20 s of answers naming 5,000 new 900-character assets every second, refused; then 32 parallel GETs of / ($page bytes; log $log bytes) | - | $peak | $after | $([ "$peak" -le $LIMIT_KIB ] && echo under 64 MiB || echo OVER) |"
start huge 1 19899 --name-length 7000000 --no-futures
until_logged huge 'longer than the 64' "the 7 MB name was not refused"
sleep 5
page=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$PORT/")
size=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$PORT/metrics")
peak=$(status_kib "$PID" VmHWM)
after=$(status_kib "$PID" VmRSS)
(( peak > LIMIT_KIB )) && failed=1
echo "| one asset key of 7 MB, refused at each poll for 5 s (/ $page bytes, /metrics $size bytes) | - | $peak | $after | $([ "$peak" -le $LIMIT_KIB ] && echo under 64 MiB || echo OVER) |"
exit $failed
