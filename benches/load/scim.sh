#!/usr/bin/env bash
# The SCIM load run: the release binary, a fresh data directory seeded with 100,000 users, and
# wrk on the same machine. Prints each figure; benches/README.md ("SCIM") keeps the results.
#
# Usage: benches/load/scim.sh [path/to/idpsync] [runs]
#   needs wrk (Debian: apt-get install wrk) and python3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary="$(realpath "${1:-$here/../../target/release/idpsync}")"
runs="${2:-3}"
duration="${DURATION:-20s}"
# shellcheck source=../../.ci/lib/server.sh
source "$here/../../.ci/lib/server.sh"
work="$(mktemp -d)"
trap 'stop_server; rm -rf "$work"' EXIT

data="$work/data"
echo "== seeding 100,000 users, 100 groups, 1,000 memberships"
"$binary" --data-dir "$data" dev seed --users 100000 --groups 100 --memberships 1000 | tail -n 1
token="$("$binary" --data-dir "$data" token create --name load | tail -n 1)"
port="$(free_port)"
start_server "$binary" "$data" "$port" "$work/server.log"
base="http://127.0.0.1:$port/scim/v2"
read -r user_id user_name < <(python3 "$here/scim_load.py" pick "$base" "$token")
echo "== user $user_id ($user_name); $(nproc) cores; wrk $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f2)"

run_wrk() {
    local label="$1"
    shift
    for run in $(seq "$runs"); do
        local output
        output="$(RUN="$label-$run-$$" wrk -t2 -d"$duration" --latency "$@")"
        local rate
        rate="$(echo "$output" | awk '/Requests\/sec/ {print $2}')"
        local errors
        errors="$(echo "$output" | awk '/Non-2xx/ {print $5}')"
        local p50
        p50="$(echo "$output" | awk '$1 == "50%" {print $2}')"
        local p99
        p99="$(echo "$output" | awk '$1 == "99%" {print $2}')"
        echo "$label run $run: $rate req/s, p50 $p50, p99 $p99, non-2xx ${errors:-0}"
    done
}

auth=(-H "Authorization: Bearer $token")
echo "== GET /Users/{id}"
run_wrk "get-by-id" -c64 "${auth[@]}" "$base/Users/$user_id"
echo "== GET /Users?filter=userName eq \"…\""
filter="$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "userName eq \"$user_name\"")"
run_wrk "filter-userName" -c64 "${auth[@]}" "$base/Users?filter=$filter"
echo "== POST /Users (durable: acknowledged after fsync)"
TOKEN="$token" run_wrk "post-user" -c64 -s "$here/post_user.lua" "$base/Users"
echo "== PATCH adding 1,000 members"
python3 "$here/scim_load.py" patch-members "$base" "$token" 50
echo "== Entra-style flow, 2,000 users"
python3 "$here/scim_load.py" entra-flow "$base" "$token" 2000 16
echo "== state at the end (users, groups)"
python3 "$here/scim_load.py" count "$base" "$token"
