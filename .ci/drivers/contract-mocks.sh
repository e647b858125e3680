#!/usr/bin/env bash
# Every driver against a mock generated from its vendor's OpenAPI contract (Stoplight Prism):
# the mocks serve plain http on loopback, hence `allow_insecure_http = true` on each integration.
# `idpsync sync --once --dry-run` must succeed for each of the eight IdPs, and Prism must log no
# request that breaks the contract (paths, query parameters, credentials).
# Usage: .ci/drivers/contract-mocks.sh path/to/idpsync
# Needs npm (Prism is installed into a scratch folder), python3 (with PyYAML, installed if
# missing, to merge the Zitadel operations kept in drivers/tests/contracts) and
# ../shared/idp-contracts beside the repository;
# without npm or the contracts it says so and stops (and fails when CI=true).
set -euo pipefail
BIN=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CONTRACTS="$ROOT/../shared/idp-contracts"
missing() {
  echo "contract mocks: $1"
  if [ "${CI:-}" = true ]; then exit 1; fi
  exit 0
}
[ -d "$CONTRACTS" ] || missing "no contracts at $CONTRACTS"
command -v npm > /dev/null || missing "npm is not installed"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2> /dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
(cd "$WORK" && npm install --silent --no-audit --no-fund @stoplight/prism-cli@5 > npm.log 2>&1) \
  || { cat "$WORK/npm.log"; exit 1; }
PRISM="$WORK/node_modules/.bin/prism"

# PyYAML, in a scratch virtual environment of its own if the machine's python3 lacks it.
PYTHON=python3
if ! python3 -c 'import yaml' 2> /dev/null; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet --disable-pip-version-check pyyaml
  PYTHON="$WORK/venv/bin/python"
fi

# Zitadel's mock serves the shared contract with the operations the repository keeps beside its
# tests (drivers/tests/contracts: the v2 AuthorizationService), as drivers/tests/contract.rs does.
"$PYTHON" - "$CONTRACTS/zitadel.openapi.yaml" "$ROOT/drivers/tests/contracts/zitadel-authorization-v2.openapi.yaml" \
  "$WORK/zitadel.openapi.json" << 'PY'
import json, sys, yaml
shared = yaml.safe_load(open(sys.argv[1]))
kept = yaml.safe_load(open(sys.argv[2]))
for section, into in (("paths", shared["paths"]), ("schemas", shared["components"]["schemas"])):
    items = kept["paths"] if section == "paths" else kept["components"]["schemas"]
    clash = sorted(set(items) & set(into))
    if clash:
        sys.exit(f"kept beside the tests and in the shared contract alike: {clash}")
    into.update(items)
json.dump(shared, open(sys.argv[3], "w"), default=str)
PY

port=4400
declare -A PORT
for file in msgraph okta google-directory jumpcloud keycloak auth0 authentik zitadel; do
  port=$((port + 1))
  PORT[$file]=$port
  spec="$CONTRACTS/$file.openapi.yaml"
  if [ "$file" = zitadel ]; then spec="$WORK/zitadel.openapi.json"; fi
  "$PRISM" mock -h 127.0.0.1 -p "$port" "$spec" > "$WORK/$file.log" 2>&1 &
  PIDS+=($!)
done
for file in "${!PORT[@]}"; do
  for _ in $(seq 1 120); do grep -q "Prism is listening" "$WORK/$file.log" && break; sleep 0.5; done
  grep -q "Prism is listening" "$WORK/$file.log" || { cat "$WORK/$file.log"; exit 1; }
done

python3 - "$ROOT/drivers/src/fake/test_key.pem" "$WORK/service-account.json" << 'PY'
import json, sys
key = open(sys.argv[1]).read()
json.dump({"client_email": "sync@example.iam.gserviceaccount.com", "private_key_id": "k1", "private_key": key}, open(sys.argv[2], "w"))
PY
cat > "$WORK/idpsync.toml" << TOML
[[tenant]]
id = "acme"
[[tenant.integration]]
name = "entra"
provider = "entra"
allow_insecure_http = true
base_url = "http://127.0.0.1:${PORT[msgraph]}"
token_url = "http://127.0.0.1:${PORT[msgraph]}/contoso/oauth2/v2.0/token"
client_id = "client"
client_secret = "secret"
[[tenant.integration]]
name = "okta"
provider = "okta"
allow_insecure_http = true
base_url = "http://127.0.0.1:${PORT[okta]}"
api_token = "token"
[[tenant.integration]]
name = "google"
provider = "google"
allow_insecure_http = true
base_url = "http://127.0.0.1:${PORT[google-directory]}"
token_url = "http://127.0.0.1:${PORT[google-directory]}/token"
service_account_key = "file:$WORK/service-account.json"
subject = "admin@example.com"
[[tenant.integration]]
name = "jumpcloud"
provider = "jumpcloud"
allow_insecure_http = true
base_url = "http://127.0.0.1:${PORT[jumpcloud]}"
api_key = "key"
[[tenant.integration]]
name = "keycloak"
provider = "keycloak"
allow_insecure_http = true
base_url = "http://127.0.0.1:${PORT[keycloak]}"
realm = "acme"
client_id = "client"
client_secret = "secret"
[[tenant.integration]]
name = "auth0"
provider = "auth0"
allow_insecure_http = true
base_url = "http://127.0.0.1:${PORT[auth0]}"
token_url = "http://127.0.0.1:${PORT[auth0]}/oauth/token"
client_id = "client"
client_secret = "secret"
groups = "both"
[[tenant.integration]]
name = "authentik"
provider = "authentik"
allow_insecure_http = true
base_url = "http://127.0.0.1:${PORT[authentik]}"
api_token = "token"
[[tenant.integration]]
name = "zitadel"
provider = "zitadel"
allow_insecure_http = true
base_url = "http://127.0.0.1:${PORT[zitadel]}"
pat = "token"
TOML

failed=0
for integration in entra okta google jumpcloud keycloak auth0 authentik zitadel; do
  if IDPSYNC_LOG=warn "$BIN" --config "$WORK/idpsync.toml" --data-dir "$WORK/data" \
      sync --tenant acme --integration "$integration" --once --dry-run > "$WORK/$integration.out" 2>&1; then
    echo "$integration: $(tail -n 1 "$WORK/$integration.out")"
  else
    echo "$integration: FAILED"; cat "$WORK/$integration.out"; failed=1
  fi
done
if grep -a "Violation: request" "$WORK"/*.log; then
  echo "requests broke a vendor contract"; failed=1
fi
if grep -a -E "responding with .?4(00|01|04|22)" -i "$WORK"/*.log; then
  echo "a mock refused a request"; failed=1
fi
exit $failed
