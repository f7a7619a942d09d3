# Shared by the bench scripts; source it after setting WORK (a fresh directory). Processes started by
# a script go into PIDS and are stopped on exit, with the nginx serve_with_nginx started.

PIDS=()
bench_cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap bench_cleanup EXIT

wait_http() { # url [tries, 0.1 s apart; default 600]
  for _ in $(seq 1 "${2:-600}"); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ]; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2
  return 1
}

# Serves FILE as /metrics with nginx (the script installs it) on 127.0.0.1:PORT with WORKERS worker
# processes of CONNECTIONS worker_connections each; with GZIP_FILE, that file is served as is to
# clients that accept gzip (gzip_static: the same compressed bytes the exporter sends). Returns once it
# answers.
serve_with_nginx() { # file port workers connections [gzip_file]
  local nginx
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  chmod 755 "$WORK"  # nginx workers run as another user
  mkdir -p "$WORK/nginx/root"
  cp "$1" "$WORK/nginx/root/metrics"
  local precompressed="gzip_static off;"
  if [ -n "${5:-}" ]; then
    cp "$5" "$WORK/nginx/root/metrics.gz"
    precompressed="gzip_static on;"
  fi
  cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes $3;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections $4; }
http {
  access_log off;
  default_type text/plain;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx;
  scgi_temp_path $WORK/nginx;
  server {
    listen 127.0.0.1:$2;
    root $WORK/nginx/root;
    $precompressed
  }
}
NGINX
  "$nginx" -c "$WORK/nginx/nginx.conf"
  wait_http "http://127.0.0.1:$2/metrics"
}

# A wrk duration (850.00us, 1.20ms, 2.01s) in milliseconds.
to_ms() {
  awk -v d="$1" 'BEGIN {
    if (d ~ /us$/) { sub(/us$/, "", d); printf "%.3f", d / 1000 }
    else if (d ~ /ms$/) { sub(/ms$/, "", d); printf "%.3f", d }
    else if (d ~ /s$/) { sub(/s$/, "", d); printf "%.3f", d * 1000 }
    else printf "%s", d }'
}
