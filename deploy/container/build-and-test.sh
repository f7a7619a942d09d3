#!/usr/bin/env bash
# Builds the Dockerfile, unchanged, with buildah and smoke-tests the image, on a machine that reaches
# no container registry (CI's kind). `.ci/run` calls it; it also runs alone on a fresh machine:
#
#   deploy/container/build-and-test.sh
#
# The two base images the Dockerfile names are made locally, under those exact names, as stand-ins
# (a CI device: elsewhere `docker build` pulls the real ones):
#   - the builder, `rust:<version>-slim-bookworm`: a Debian bookworm rootfs (mmdebstrap, minbase, with
#     gcc, libc6-dev, ca-certificates, pkg-config) with this machine's Rust toolchain, which must be the
#     version the Dockerfile names, laid out as the official image (RUSTUP_HOME, CARGO_HOME, PATH);
#   - the runtime, `gcr.io/distroless/cc-debian12:nonroot`: the files of the Debian packages
#     distroless/cc carries, no shell, and the `nonroot` user 65532.
# Then it checks: `--demo --once` as 65532, `--version` carrying the revision, no shell in the image,
# the entrypoint serving the demo on 9877 as 65532, the OCI labels, the exposed port, and the image
# size against IMAGE_BUDGET_BYTES (recorded in BENCHMARKS.md). Environment: PORT (default 9877).
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${PORT:-9877}
# The image measured 32.1 MB (see BENCHMARKS.md); the budget leaves room for the binary to grow.
IMAGE_BUDGET_BYTES=${IMAGE_BUDGET_BYTES:-40000000}
IMAGE=localhost/kraken_exporter:ci

need=()
for tool in buildah podman mmdebstrap; do command -v "$tool" >/dev/null || need+=("$tool"); done
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" uidmap >/dev/null
fi

# The base image names, from the Dockerfile (the one place they are written).
BUILDER=$(sed -n 's/^FROM \([^ ]*\) AS build$/\1/p' Dockerfile)
RUNTIME=$(sed -n 's/^FROM \([^ ]*\)$/\1/p' Dockerfile | tail -1)
RUST_VERSION=$(sed -n 's/^rust:\([0-9.]*\)-slim-bookworm$/\1/p' <<<"$BUILDER")
[ -n "$RUST_VERSION" ] && [ -n "$RUNTIME" ] || { echo "cannot read the base images from the Dockerfile" >&2; exit 1; }
HOST_RUST=$(rustc --version | awk '{print $2}')
case "$HOST_RUST" in
  "$RUST_VERSION" | "$RUST_VERSION".*) ;;
  *) echo "the Dockerfile builds with Rust $RUST_VERSION but this machine has $HOST_RUST; the stand-in copies the machine's toolchain" >&2; exit 1 ;;
esac
TOOLCHAIN=$(rustc --print sysroot)
REVISION=$(git rev-parse --short=12 HEAD)

WORK=$(mktemp -d /tmp/kraken-image.XXXXXX)
CONTAINER=""
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
  [ -n "$CONTAINER" ] && buildah rm "$CONTAINER" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "--- builder stand-in: docker.io/library/$BUILDER (Rust $HOST_RUST)"
if ! buildah inspect --type image "docker.io/library/$BUILDER" >/dev/null 2>&1; then
  mmdebstrap --quiet --variant=minbase --include=gcc,libc6-dev,ca-certificates,pkg-config \
    bookworm "$WORK/builder" /etc/apt/sources.list.d/debian.sources 2>/dev/null \
    || mmdebstrap --quiet --variant=minbase --include=gcc,libc6-dev,ca-certificates,pkg-config \
      bookworm "$WORK/builder"
  mkdir -p "$WORK/builder/usr/local/rustup/toolchains/$HOST_RUST-x86_64-unknown-linux-gnu" "$WORK/builder/usr/local/cargo/bin"
  # The toolchain without its HTML docs.
  tar -C "$TOOLCHAIN" --exclude=./share/doc -cf - . \
    | tar -C "$WORK/builder/usr/local/rustup/toolchains/$HOST_RUST-x86_64-unknown-linux-gnu" -xf -
  printf 'default_toolchain = "%s-x86_64-unknown-linux-gnu"\nprofile = "minimal"\nversion = "12"\n' "$HOST_RUST" \
    >"$WORK/builder/usr/local/rustup/settings.toml"
  install -m 0755 "$(command -v rustup)" "$WORK/builder/usr/local/cargo/bin/rustup"
  for proxy in cargo rustc rustdoc cargo-clippy clippy-driver rustfmt cargo-fmt rust-gdb rust-lldb; do
    ln -sf rustup "$WORK/builder/usr/local/cargo/bin/$proxy"
  done
  # cargo inside the build must trust what this machine trusts (crates.io through its proxy).
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$WORK/builder/usr/local/share/ca-certificates/"
    chroot "$WORK/builder" update-ca-certificates >/dev/null
  fi
  tar -C "$WORK/builder" -cf - . | podman import \
    --change 'ENV=RUSTUP_HOME=/usr/local/rustup' --change 'ENV=CARGO_HOME=/usr/local/cargo' \
    --change 'ENV=PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV=RUST_VERSION=$HOST_RUST" \
    - "docker.io/library/$BUILDER" >/dev/null
  rm -rf "$WORK/builder"
fi

echo "--- runtime stand-in: $RUNTIME"
if ! buildah inspect --type image "$RUNTIME" >/dev/null 2>&1; then
  mkdir -p "$WORK/debs" "$WORK/runtime"
  (cd "$WORK/debs" && apt-get download -qq base-files netbase tzdata libc6 libgcc-s1 libgomp1 libstdc++6 libssl3 ca-certificates >/dev/null)
  for deb in "$WORK"/debs/*.deb; do dpkg-deb -x "$deb" "$WORK/runtime"; done
  # What ca-certificates' postinst would generate: the bundle of Debian's CA list.
  mkdir -p "$WORK/runtime/etc/ssl/certs"
  find "$WORK/runtime/usr/share/ca-certificates" -name '*.crt' -print0 | sort -z | xargs -0 cat \
    >"$WORK/runtime/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    >"$WORK/runtime/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$WORK/runtime/etc/group"
  mkdir -p "$WORK/runtime/home/nonroot" "$WORK/runtime/tmp"
  chown 65532:65532 "$WORK/runtime/home/nonroot"
  chmod 1777 "$WORK/runtime/tmp"
  # distroless has no shell; neither may the stand-in.
  for shell in bin/sh bin/bash bin/dash usr/bin/sh usr/bin/bash usr/bin/dash; do
    if [ -e "$WORK/runtime/$shell" ]; then echo "the runtime stand-in has a shell: /$shell" >&2; exit 1; fi
  done
  tar -C "$WORK/runtime" -cf - . | podman import --change 'USER=65532' --change 'WORKDIR=/home/nonroot' \
    --change 'ENV=PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$RUNTIME" >/dev/null
  rm -rf "$WORK/runtime" "$WORK/debs"
fi

echo "--- buildah build (the Dockerfile unchanged), revision $REVISION"
started=$(date +%s)
buildah build --quiet --isolation chroot --pull=never --layers \
  --build-arg "BUILD_GIT_REVISION=$REVISION" -t "$IMAGE" -f Dockerfile . >"$WORK/build.log" 2>&1 \
  || { tail -60 "$WORK/build.log" >&2; echo "buildah build failed" >&2; exit 1; }
echo "built in $(( $(date +%s) - started )) s"

fail() { echo "image check failed: $*" >&2; exit 1; }
# One field of the image's OCI configuration, as JSON (buildah's templates have no json function).
config() {
  buildah inspect --type image "$IMAGE" \
    | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["OCIv1"]["config"].get(sys.argv[1])))' "$1"
}

echo "--- image metadata"
[ "$(config User)" = '"65532:65532"' ] || fail "USER is $(config User), not 65532:65532"
grep -q '"9877/tcp"' <<<"$(config ExposedPorts)" || fail "port 9877 is not exposed: $(config ExposedPorts)"
labels=$(config Labels)
for label in "\"org.opencontainers.image.revision\": \"$REVISION\"" '"org.opencontainers.image.title": "kraken_exporter"' \
    '"org.opencontainers.image.licenses": "Apache-2.0"' '"org.opencontainers.image.version": "'; do
  grep -qF "$label" <<<"$labels" || fail "label $label missing from $labels"
done
[ "$(config Entrypoint)" = '["/usr/local/bin/kraken_exporter"]' ] || fail "entrypoint is $(config Entrypoint)"
[ "$(config Cmd)" = '["--web.listen-address=0.0.0.0:9877"]' ] || fail "CMD is $(config Cmd)"
bytes=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image size: $bytes bytes (budget $IMAGE_BUDGET_BYTES)"
(( bytes <= IMAGE_BUDGET_BYTES )) || fail "the image is $bytes bytes, over its budget of $IMAGE_BUDGET_BYTES"

CONTAINER=$(buildah from --pull=never "$IMAGE")
run() { buildah run --isolation chroot "$CONTAINER" -- "$@"; }

echo "--- no shell"
mount=$(buildah mount "$CONTAINER")
for shell in bin/sh bin/bash bin/dash usr/bin/sh usr/bin/bash usr/bin/dash busybox bin/busybox; do
  [ ! -e "$mount/$shell" ] || fail "the image has a shell: /$shell"
done
if run /bin/sh -c true 2>/dev/null; then fail "/bin/sh ran in the image"; fi
buildah umount "$CONTAINER" >/dev/null

echo "--- --version and --demo --once as 65532"
version=$(run /usr/local/bin/kraken_exporter --version)
grep -q "$REVISION" <<<"$version" || fail "--version does not carry the revision $REVISION: $version"
echo "$version"
once=$(buildah run --isolation chroot --user 65532:65532 "$CONTAINER" -- /usr/local/bin/kraken_exporter --demo --once 2>/dev/null)
grep -q '^kraken_up{account="treasury"} 1$' <<<"$once" || fail "--demo --once did not poll the treasury account"
grep -q '^kraken_exporter_build_info{.*revision="'"$REVISION"'"' <<<"$once" || fail "build info lacks the revision"

echo "--- the entrypoint serving the demo on $PORT"
listen="--web.listen-address=0.0.0.0:$PORT"
# buildah run does not apply ENTRYPOINT and CMD: run exactly what they say, as the image's user.
run /usr/local/bin/kraken_exporter "$listen" --demo >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
# Each body is read whole before it is searched: `curl | grep -q` under pipefail fails whenever grep
# finds its line and exits while curl is still writing (curl exit 23), and /metrics is large.
get() { curl -fsS "http://127.0.0.1:$PORT$1" 2>&1 || true; }
health=$(get /health)
[ -n "$health" ] || fail "/health did not answer: $(cat "$WORK/server.log")"
ready=$(get /ready)
grep -q '^ready' <<<"$ready" || fail "/ready is not ready: $ready $(cat "$WORK/server.log")"
metrics=$(get /metrics)
grep -q '^kraken_up{account="treasury"} 1$' <<<"$metrics" || fail "/metrics lacks the demo: $(head -c 2000 <<<"$metrics")"
pid=$(pgrep -f -n "kraken_exporter $listen --demo") || fail "the server process is not found"
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
[ "$uid" = 65532 ] || fail "the server runs as uid $uid, not 65532"
kill "$pid" "$SERVER" 2>/dev/null || true
wait "$SERVER" 2>/dev/null || true
SERVER=""

echo "container image OK: $IMAGE, $bytes bytes, revision $REVISION"
