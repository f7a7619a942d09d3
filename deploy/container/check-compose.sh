#!/usr/bin/env bash
# Checks deploy/docker-compose.yml against the Compose schema with docker-compose 1.29.2 (PyPI), in a
# virtual environment of its own: its pinned dependencies (jsonschema 3) would break other tools.
# `podman-compose config` accepts unknown keys, so it proves nothing; this refuses them.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${COMPOSE_VENV:-/tmp/kraken-compose-venv}
if [ ! -x "$VENV/bin/docker-compose" ]; then
  python3 -m venv "$VENV"
  # PyYAML 6 first: docker-compose's own pin (<6) does not build on current Python.
  "$VENV/bin/pip" install -q --disable-pip-version-check "PyYAML==6.0.2" distro docopt "jsonschema<4" \
    texttable dockerpty "docker<7" python-dotenv requests "websocket-client<1"
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps docker-compose==1.29.2
fi
"$VENV/bin/docker-compose" -f deploy/docker-compose.yml config -q
rendered=$(BUILD_GIT_REVISION=0123456789ab "$VENV/bin/docker-compose" -f deploy/docker-compose.yml config)
grep -q 'BUILD_GIT_REVISION: 0123456789ab' <<<"$rendered" || { echo "compose does not pass BUILD_GIT_REVISION to the build" >&2; exit 1; }
echo "compose file OK"
