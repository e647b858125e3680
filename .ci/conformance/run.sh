#!/usr/bin/env bash
# SCIM conformance: runs scim2-tester and scim-sanity (pinned in requirements.txt, installed in
# a fresh virtualenv) against `idpsync serve` on a free loopback port with a fresh data
# directory and a token from `idpsync token create`. Fails if either suite reports a failed
# check.
#
# Usage: .ci/conformance/run.sh path/to/idpsync
set -euo pipefail
binary="$(realpath "$1")"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../lib/server.sh
source "$here/../lib/server.sh"
work="$(mktemp -d)"
trap 'stop_server; rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"

port="$(free_port)"
data="$work/data"
base="http://127.0.0.1:$port/scim/v2"
token="$("$binary" --data-dir "$data" token create --tenant conformance --name conformance | tail -n 1)"
start_server "$binary" "$data" "$port" "$work/server.log"

status=0
echo "--- scim2-tester against $base"
"$work/venv/bin/python" "$here/scim2_tester_check.py" "$base" "$token" | tail -n 3 || status=1
echo "--- scim-sanity probe against $base"
"$work/venv/bin/scim-sanity" probe "$base" --token "$token" --i-accept-side-effects --strict > "$work/sanity.txt" 2>&1 || status=1
grep -E '\[(FAIL|ERROR)\]' "$work/sanity.txt" || true
sanity_passed="$(grep -oE '[0-9]+ passed' "$work/sanity.txt" | tail -n 1 | cut -d' ' -f1 || true)"
sanity_failed="$(grep -oE '[0-9]+ failed' "$work/sanity.txt" | tail -n 1 | cut -d' ' -f1 || true)"
echo "scim-sanity: ${sanity_passed:-0} passed, ${sanity_failed:-0} failed"
if [ "$status" -ne 0 ]; then
    echo "conformance failed; server log:" >&2
    tail -n 50 "$work/server.log" >&2
fi
exit "$status"
