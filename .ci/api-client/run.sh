#!/usr/bin/env bash
# The management API's typed client smoke test: generates a Python client from the committed
# OpenAPI document (src/api/openapi.json) with openapi-python-client (pinned in
# requirements.txt, installed in a fresh virtualenv), then drives `idpsync serve` with it on a
# free loopback port with a fresh data directory (smoke.py). Fails if the generator rejects the
# document, if a call answers other than documented, or if an answer carries a field the
# document does not describe.
#
# Usage: .ci/api-client/run.sh path/to/idpsync
set -euo pipefail
binary="$(realpath "$1")"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=../lib/server.sh
source "$here/../lib/server.sh"
work="$(mktemp -d)"
trap 'stop_server; rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

echo "--- generating the client from src/api/openapi.json"
PATH="$work/venv/bin:$PATH" "$work/venv/bin/openapi-python-client" generate \
    --path "$repo/src/api/openapi.json" \
    --config "$here/config.yaml" \
    --output-path "$work/idpsync_client" \
    --meta none \
    --fail-on-warning

port="$(free_port)"
data="$work/data"
scim_token="$("$binary" --data-dir "$data" token create --tenant acme --name smoke-scim | tail -n 1)"
admin_token="$("$binary" --data-dir "$data" token create --admin --tenant acme --name smoke-admin | tail -n 1)"
start_server "$binary" "$data" "$port" "$work/server.log"

echo "--- driving idpsync serve with the generated client"
status=0
PYTHONPATH="$work" "$work/venv/bin/python" "$here/smoke.py" \
    "http://127.0.0.1:$port" acme "$admin_token" "$scim_token" || status=1
if [ "$status" -ne 0 ]; then
    echo "the typed client smoke test failed; server log:" >&2
    tail -n 50 "$work/server.log" >&2
fi
exit "$status"
