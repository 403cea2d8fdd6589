#!/usr/bin/env bash
# The API document against the server it describes: `siyu serve` on a
# free port with a fresh data dir; /openapi.json validated
# (openapi-spec-validator), then schemathesis runs every check over every
# operation (schemathesis.toml; a bounded number of examples, fixed seed)
# and fails on any failure; then a Python client generated from the live
# document (openapi-python-client, into a temp dir, never committed) sends
# events and reads the person back (client_test.py).
# Builds `siyu` (unless SIYU_BIN is given) and installs the pinned tools
# into ./.venv (requirements.txt) when missing or different.
set -euo pipefail
cd "$(dirname "$0")"
. ../lib/siyu_and_venv.sh
EXAMPLES="${SIYU_API_EXAMPLES:-10}"
TOKEN=api-test-admin-token-0123456789
work=$(mktemp -d)
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SIYU_ADMIN_TOKEN=$TOKEN RUST_LOG="${RUST_LOG:-warn}" "$SIYU_BIN" serve --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
url="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$url/openapi.json" >"$work/openapi.json"
.venv/bin/openapi-spec-validator "$work/openapi.json"
status=0
# Every check is on by default; no `--checks all`, which would override
# the per-route settings in schemathesis.toml.
# One worker: with two, hypothesis parses lambda sources on two threads at
# once, which CPython 3.11's parser can fail at ("AST constructor recursion
# depth mismatch", cpython#106905): a tool error, not an API fault.
.venv/bin/schemathesis --config-file schemathesis.toml run "$url/openapi.json" \
  -H "Authorization: Bearer $TOKEN" --max-examples "$EXAMPLES" \
  --seed 1 --workers 1 --no-color || status=$?
if grep -q panicked "$work/serve.log"; then
  echo "siyu panicked during the schemathesis run:"; grep -A3 panicked "$work/serve.log"; status=1
fi
[ "$status" = 0 ] || { echo "schemathesis: failures (see above)"; exit "$status"; }
(cd "$work" && "$OLDPWD/.venv/bin/openapi-python-client" generate --path openapi.json \
  --meta none --output-path siyu_client --overwrite >/dev/null)
PYTHONPATH="$work" .venv/bin/python client_test.py "$url" "$TOKEN"
