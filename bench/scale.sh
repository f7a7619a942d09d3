#!/usr/bin/env bash
# Scale benchmark: 100, 300 and 1,000 accounts, each with a Kraken Futures key and 50 assets, polled
# against the simulator (examples/simulated_kraken.rs) on this machine. Per size: the exporter's CPU per
# poll round (a quiet window of ROUNDS rounds, nothing scraping but this script), calls made against
# calls due in that window (counted at the simulator: BalanceEx and the futures wallets of every
# account each round), /metrics p50/p99 while polling, and again while 16 clients load the status page
# /, each plain and with gzip (as Prometheus asks), and the exporter's resident memory. Prints a Markdown table (see BENCHMARKS.md).
#
#   bench/scale.sh                      # SIZES="100 300 1000" INTERVAL=10 ROUNDS=3 LOAD_SECONDS=10 PAGE_GZIP=1
#
# The simulator shares the machine's cores with the exporter and wrk: the figures are an upper bound
# of what the exporter needs.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"100 300 1000"}
INTERVAL=${INTERVAL:-10}
ROUNDS=${ROUNDS:-3}
LOAD_SECONDS=${LOAD_SECONDS:-10}
# The 16 clients on / ask for gzip as browsers do; PAGE_GZIP=0 loads the plain page (runs before
# the page was compressed).
PAGE_GZIP=${PAGE_GZIP:-1}
FLOOR=${FLOOR:-1}
ASSETS=50
WORK=$(mktemp -d /tmp/kraken-scale.XXXXXX)
# shellcheck source=bench/common.sh
. bench/common.sh

command -v wrk >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
}
echo "building release..." >&2
cargo build --release --quiet --bin kraken_exporter --example simulated_kraken --example call_floor
EXPORTER=target/release/kraken_exporter
SIMULATOR=target/release/examples/simulated_kraken
CALL_FLOOR=target/release/examples/call_floor
HZ=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
received() { awk '{print $1}' "$1/requests"; }
now() { date +%s.%N; }

# Runs wrk on a URL (with gzip, "Accept-Encoding: gzip" as Prometheus sends); prints "p50_ms p99_ms".
latency() { # url seconds connections [gzip]
  local out
  if [ -n "${4:-}" ]; then
    out=$(wrk -t1 -c"$3" -d"$2"s --latency -H 'Accept-Encoding: gzip' "$1")
  else
    out=$(wrk -t1 -c"$3" -d"$2"s --latency "$1")
  fi
  printf '%s %s\n' "$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")" \
    "$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
}


echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "exporter $(git rev-parse --short HEAD 2>/dev/null || echo unknown); poll_interval ${INTERVAL}s, $ASSETS assets and a futures key per account, quote_currencies [USD]; / loaded with gzip: $PAGE_GZIP"
echo
echo "| accounts | CPU per poll round (ms) | floor: the same calls, reqwest alone (ms) | calls made / due | /metrics p50 / p99 while polling (ms) | p50 / p99 while / is loaded (ms) | gzip p50 / p99 while polling (ms) | gzip p50 / p99 while / is loaded (ms) | /metrics bytes (gzip) | RSS (KiB) | peak RSS (KiB) |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
port=19950
for accounts in $SIZES; do
  port=$((port + 1))
  dir="$WORK/a$accounts"
  mkdir -p "$dir"
  "$SIMULATOR" --accounts "$accounts" --assets "$ASSETS" --poll-interval "${INTERVAL}s" \
    --rate-limit-tier pro --dir "$dir" >"$dir/simulator.log" 2>&1 &
  sim=$!
  PIDS+=("$sim")
  for _ in $(seq 1 600); do [ -f "$dir/kraken_exporter.toml" ] && [ -f "$dir/requests" ] && break; sleep 0.1; done
  RUST_LOG=warn "$EXPORTER" --config "$dir/kraken_exporter.toml" --web.listen-address "127.0.0.1:$port" \
    >"$dir/exporter.log" 2>&1 &
  exporter=$!
  PIDS+=("$exporter")
  floor=""
  if [ "$FLOOR" = 1 ]; then
    mkdir -p "$dir/floor"
    "$SIMULATOR" --accounts "$accounts" --assets "$ASSETS" --poll-interval "${INTERVAL}s" \
      --rate-limit-tier pro --dir "$dir/floor" >"$dir/floor/simulator.log" 2>&1 &
    floor_sim=$!
    PIDS+=("$floor_sim")
    for _ in $(seq 1 600); do [ -f "$dir/floor/kraken_exporter.toml" ] && break; sleep 0.1; done
    "$CALL_FLOOR" --config "$dir/floor/kraken_exporter.toml" --interval "$INTERVAL" \
      >"$dir/floor/call_floor.log" 2>&1 &
    floor=$!
    PIDS+=("$floor")
  fi
  # Every account's first poll is spread over one interval: ready within a couple of intervals.
  wait_http "http://127.0.0.1:$port/ready" $((INTERVAL * 40 + 600))
  sleep "$INTERVAL"

  # Quiet window: polling only.
  window=$((INTERVAL * ROUNDS))
  c0=$(received "$dir"); t0=$(cpu_ticks "$exporter"); s0=$(now)
  [ -n "$floor" ] && f0=$(cpu_ticks "$floor")
  sleep "$window"
  c1=$(received "$dir"); t1=$(cpu_ticks "$exporter"); s1=$(now)
  floor_ms="-"
  if [ -n "$floor" ]; then
    f1=$(cpu_ticks "$floor")
    floor_ms=$(awk -v t=$((f1 - f0)) -v hz="$HZ" -v s0="$s0" -v s1="$s1" -v i="$INTERVAL" \
      'BEGIN {printf "%.1f", t / hz * 1000 / ((s1 - s0) / i)}')
    if grep -q refused "$dir/floor/call_floor.log"; then floor_ms="$floor_ms (calls refused: see $dir/floor)"; fi
    kill "$floor" "$floor_sim" 2>/dev/null || true
    wait "$floor" "$floor_sim" 2>/dev/null || true
  fi
  read -r cpu_ms made due < <(awk -v t=$((t1 - t0)) -v hz="$HZ" -v s0="$s0" -v s1="$s1" -v i="$INTERVAL" \
    -v a="$accounts" -v c=$((c1 - c0)) 'BEGIN {
      rounds = (s1 - s0) / i
      printf "%.1f %d %d\n", t / hz * 1000 / rounds, c, a * 2 * rounds }')

  read -r p50 p99 < <(latency "http://127.0.0.1:$port/metrics" "$LOAD_SECONDS" 2)
  # Prometheus asks for gzip on every scrape, so the members of what did not change since its last
  # scrape are compressed already: one gzip scrape first (the first compresses every account's text).
  curl -s -o /dev/null -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/metrics"
  read -r gp50 gp99 < <(latency "http://127.0.0.1:$port/metrics" "$LOAD_SECONDS" 2 gzip)
  if [ "$PAGE_GZIP" = 1 ]; then
    wrk -t1 -c16 -d"$((2 * LOAD_SECONDS + 2))"s -H 'Accept-Encoding: gzip, deflate' "http://127.0.0.1:$port/" >/dev/null &
  else
    wrk -t1 -c16 -d"$((2 * LOAD_SECONDS + 2))"s "http://127.0.0.1:$port/" >/dev/null &
  fi
  page=$!
  sleep 1
  read -r lp50 lp99 < <(latency "http://127.0.0.1:$port/metrics" "$LOAD_SECONDS" 2)
  read -r lgp50 lgp99 < <(latency "http://127.0.0.1:$port/metrics" "$LOAD_SECONDS" 2 gzip)
  wait "$page" || true
  bytes=$(curl -s "http://127.0.0.1:$port/metrics" | wc -c)
  gzip_bytes=$(curl -s -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/metrics" | wc -c)
  echo "| $accounts | $cpu_ms | $floor_ms | $made / $due ($(awk -v m="$made" -v d="$due" 'BEGIN {printf "%.1f %%", 100 * m / d}')) | $p50 / $p99 | $lp50 / $lp99 | $gp50 / $gp99 | $lgp50 / $lgp99 | $bytes ($gzip_bytes) | $(status_kib "$exporter" VmRSS) | $(status_kib "$exporter" VmHWM) |"
  kill "$exporter" "$sim" 2>/dev/null || true
  wait "$exporter" "$sim" 2>/dev/null || true
done
