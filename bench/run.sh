#!/usr/bin/env bash
# Load benchmark of /metrics: kraken_exporter against nginx serving the identical bytes and against
# Python's prometheus_client serving the same series, on this machine, with the same wrk load; then how
# cost grows with assets and accounts. Prints Markdown tables (see BENCHMARKS.md).
#
#   bench/run.sh            # installs wrk, nginx and prometheus_client if missing (Debian, PyPI)
#
# Environment: DURATION (wrk seconds, default 10), SCALE_DURATION (default 5), CONNECTIONS (default 32),
# SCALING=0 to skip the scaling table.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
SCALE_DURATION=${SCALE_DURATION:-5}
CONNECTIONS=${CONNECTIONS:-32}
WORK=$(mktemp -d /tmp/kraken-bench.XXXXXX)
# shellcheck source=bench/common.sh
. bench/common.sh

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -c 'import prometheus_client' 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore prometheus_client

echo "building release..." >&2
cargo build --release --quiet --bin kraken_exporter --example simulated_kraken
EXPORTER=target/release/kraken_exporter
SIMULATOR=target/release/examples/simulated_kraken

# Runs wrk; prints "requests_per_second p99_ms".
load() { # url seconds [header]
  local out
  if [ -n "${3:-}" ]; then
    out=$(wrk -t2 -c"$CONNECTIONS" -d"$2"s --latency -H "$3" "$1")
  else
    out=$(wrk -t2 -c"$CONNECTIONS" -d"$2"s --latency "$1")
  fi
  local rps p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  echo "$rps $(to_ms "$p99")"
}


rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Starts the simulator and the exporter; sets EXPORTER_PID and PORT.
start_exporter() { # accounts assets port
  local dir="$WORK/a$1-n$2"
  mkdir -p "$dir"
  "$SIMULATOR" --accounts "$1" --assets "$2" --poll-interval 5s --ledger --dir "$dir" >"$dir/simulator.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do [ -f "$dir/kraken_exporter.toml" ] && break; sleep 0.1; done
  # The largest scaling rows go past the default max_assets (5,000 rows per answer).
  KRAKEN_EXPORTER_MAX_ASSETS=100000 RUST_LOG=warn "$EXPORTER" --config "$dir/kraken_exporter.toml" \
    --web.listen-address "127.0.0.1:$3" \
    >"$dir/exporter.log" 2>&1 &
  EXPORTER_PID=$!
  PIDS+=("$EXPORTER_PID")
  wait_http "http://127.0.0.1:$3/ready"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "wrk -t2 -c$CONNECTIONS -d${DURATION}s; exporter $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo

# --- Main comparison: 3 accounts x 1,000 assets.
start_exporter 3 1000 19877
curl -s http://127.0.0.1:19877/metrics >"$WORK/metrics.txt"
curl -s -H 'Accept-Encoding: gzip' http://127.0.0.1:19877/metrics >"$WORK/metrics.txt.gz"
serve_with_nginx "$WORK/metrics.txt" 19878 auto 1024 "$WORK/metrics.txt.gz"
python3 bench/python_peer.py "$WORK/metrics.txt" 19879 >"$WORK/python.log" 2>&1 &
PIDS+=($!)
wait_http http://127.0.0.1:19879/metrics

series=$(grep -c '^kraken_balance' "$WORK/metrics.txt")
echo "### /metrics, 3 accounts x 1,000 assets ($series balance series, $(wc -c <"$WORK/metrics.txt") bytes, gzip $(wc -c <"$WORK/metrics.txt.gz") bytes)"
echo
echo "| server | requests/s | p99 latency (ms) | vs nginx (req/s) |"
echo "|---|---:|---:|---:|"
read -r nginx_rps nginx_p99 < <(load http://127.0.0.1:19878/metrics "$DURATION")
read -r ngz_rps ngz_p99 < <(load http://127.0.0.1:19878/metrics "$DURATION" "Accept-Encoding: gzip")
read -r exp_rps exp_p99 < <(load http://127.0.0.1:19877/metrics "$DURATION")
read -r gz_rps gz_p99 < <(load http://127.0.0.1:19877/metrics "$DURATION" "Accept-Encoding: gzip")
read -r py_rps py_p99 < <(load http://127.0.0.1:19879/metrics "$DURATION")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3fx", a / b }'; }
echo "| nginx (same bytes, static file) | $nginx_rps | $nginx_p99 | 1.000x |"
echo "| kraken_exporter | $exp_rps | $exp_p99 | $(ratio "$exp_rps" "$nginx_rps") |"
echo "| nginx, gzip (the exporter's gzip bytes, gzip_static) | $ngz_rps | $ngz_p99 | $(ratio "$ngz_rps" "$nginx_rps") |"
echo "| kraken_exporter, gzip | $gz_rps | $gz_p99 | $(ratio "$gz_rps" "$nginx_rps") ($(ratio "$gz_rps" "$ngz_rps") of nginx gzip_static) |"
echo "| Python prometheus_client (same series) | $py_rps | $py_p99 | $(ratio "$py_rps" "$nginx_rps") |"
echo
echo "Exporter resident memory after the load runs: $(rss_kib "$EXPORTER_PID") KiB; release binary: $(stat -c %s "$EXPORTER") bytes."
echo
kill "$EXPORTER_PID"; kill "$(cat "$WORK/nginx.pid")"; rm -f "$WORK/nginx.pid"

# --- Scaling.
[ "${SCALING:-1}" = 0 ] && exit 0
echo "### How cost grows (wrk ${SCALE_DURATION}s per row)"
echo
echo "| accounts | assets per account | body bytes | requests/s | p99 (ms) | RSS after load (KiB) |"
echo "|---:|---:|---:|---:|---:|---:|"
port=19900
for shape in "1 10" "1 100" "1 1000" "1 10000" "10 100" "100 100"; do
  read -r accounts assets <<<"$shape"
  port=$((port + 1))
  start_exporter "$accounts" "$assets" "$port"
  bytes=$(curl -s "http://127.0.0.1:$port/metrics" | wc -c)
  read -r rps p99 < <(load "http://127.0.0.1:$port/metrics" "$SCALE_DURATION")
  echo "| $accounts | $assets | $bytes | $rps | $p99 | $(rss_kib "$EXPORTER_PID") |"
  kill "$EXPORTER_PID"
done
