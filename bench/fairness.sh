#!/usr/bin/env bash
# Same-address fairness: kraken_exporter, nginx and Prometheus each get the same flood of idle
# connections from 127.0.0.1 (bench/fairness.py: RATE new connections a second, each held until the
# server closes it) while a scraper on 127.0.0.1 and one on 127.0.0.2 each try SCRAPES GETs on new
# connections. Each server has a table of 64 connections for the flooded address: the exporter's
# per-address share (MAX_PER_ADDRESS), nginx with one worker of 64 worker_connections, Prometheus
# with --web.max-connections=64. Prints a Markdown table (see BENCHMARKS.md).
#
#   bench/fairness.sh        # installs nginx and prometheus if missing (Debian)
#
# Environment: RATE (default 20), SCRAPES (default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-20}
SCRAPES=${SCRAPES:-100}
WORK=$(mktemp -d /tmp/kraken-fairness.XXXXXX)
# shellcheck source=bench/common.sh
. bench/common.sh

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v prometheus >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "building release..." >&2
cargo build --release --quiet --bin kraken_exporter
RUST_LOG=warn target/release/kraken_exporter --demo --web.listen-address 127.0.0.1:19890 >"$WORK/exporter.log" 2>&1 &
PIDS+=($!)
wait_http http://127.0.0.1:19890/metrics
curl -s http://127.0.0.1:19890/metrics >"$WORK/metrics"

serve_with_nginx "$WORK/metrics" 19891 1 64

cat >"$WORK/prometheus.yml" <<PROM
global:
  scrape_interval: 1h
PROM
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus-data" \
  --web.listen-address=127.0.0.1:19892 --web.max-connections=64 >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
wait_http http://127.0.0.1:19892/metrics

echo "machine: $(nproc) cores; flood $RATE idle connections/s from 127.0.0.1; $SCRAPES scrapes per address, one every 0.1 s; exporter $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo
echo "| server (64 connections for the flooded address) | scrapes served from 127.0.0.1 (flooded) | from 127.0.0.2 | idle connections still open at the end |"
echo "|---|---:|---:|---:|"
for row in "kraken_exporter|19890" "nginx 1.22 (1 worker, 64 worker_connections)|19891" "Prometheus (--web.max-connections=64)|19892"; do
  name=${row%|*}
  port=${row#*|}
  read -r same other open < <(python3 bench/fairness.py "$port" /metrics --rate "$RATE" --scrapes "$SCRAPES")
  echo "| $name | $same/$SCRAPES | $other/$SCRAPES | $open |"
done

# The third audit's flood over TLS: 64 connections from the scraper's address, each asking for
# /health every 5 s (so they count as served) and reconnecting at once when closed; the scraper's
# new TLS connections must not be the ones pushed out while they shake hands.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
  -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
printf 'tls_server_config:\n  cert_file: %s\n  key_file: %s\n' "$WORK/tls.crt" "$WORK/tls.key" >"$WORK/web.yml"
RUST_LOG=warn target/release/kraken_exporter --demo --web.listen-address 127.0.0.1:19893 \
  --web.config.file "$WORK/web.yml" >"$WORK/exporter-tls.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -skf https://127.0.0.1:19893/health >/dev/null && break; sleep 0.1; done
read -r same other open < <(python3 bench/fairness.py 19893 /metrics --tls --reconnecting 64 --health-every 5 --scrapes "$SCRAPES")
echo "| kraken_exporter over TLS, against 64 served connections that reconnect at once (the third audit's flood) | $same/$SCRAPES | $other/$SCRAPES | $open |"
