#!/usr/bin/env bash
# Runs deploy/nginx.conf in front of three local `siyu serve` nodes on one
# fresh PostgreSQL database, as compose.yaml does with containers, and
# checks the example's promises: events sent through the proxy are on every
# node, a killed node is routed around with no failed request, and rate
# limits count the client behind the proxy, not the proxy.
#
# Needs nginx, curl, python3, PostgreSQL on 127.0.0.1:5432 with trust auth
# (the database siyu_try_local is dropped and made anew) and a built siyu:
#   cargo build -p siyu && deploy/try-local.sh    # or SIYU_BIN=…/siyu
# Not part of scripts/test.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${SIYU_BIN:-${CARGO_TARGET_DIR:-target}/debug/siyu}
DB=siyu_try_local
URL=postgres://postgres@127.0.0.1:5432/$DB
PROXY=http://127.0.0.1:18080
TOKEN=try-local-admin-token
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "logs in $DIR" >&2; exit 1; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

dropdb -h 127.0.0.1 -U postgres --if-exists "$DB"
createdb -h 127.0.0.1 -U postgres "$DB"

# Three nodes, started at once on the empty database.
for i in 1 2 3; do
  SIYU_ADMIN_TOKEN=$TOKEN SIYU_PUBLIC_URL=$PROXY SIYU_TRUSTED_PROXIES=127.0.0.1 \
    "$BIN" serve --listen 127.0.0.1:1808$i --database-url "$URL" \
    --data-dir "$DIR/node$i" >"$DIR/node$i.log" 2>&1 &
  PIDS+=($!)
done
NODE2_PID=${PIDS[1]}

# nginx.conf as compose mounts it, with local addresses and log path.
sed -e 's/172\.28\.0\.1\([1-3]\):8080/127.0.0.1:1808\1/' \
    -e 's/listen 80;/listen 127.0.0.1:18080;/' \
    -e "s#/var/log/nginx/access.log#$DIR/access.log#" \
    deploy/nginx.conf >"$DIR/siyu.conf"
cat >"$DIR/main.conf" <<EOF
user $(id -un) $(id -gn);
pid $DIR/nginx.pid;
error_log $DIR/error.log;
events {}
http {
  client_body_temp_path $DIR/tmp-body;
  proxy_temp_path $DIR/tmp-proxy;
  include $DIR/siyu.conf;
}
EOF
nginx -e "$DIR/error.log" -t -q -c "$DIR/main.conf"
nginx -e "$DIR/error.log" -c "$DIR/main.conf" -g 'daemon off;' &
PIDS+=($!)

for i in 1 2 3; do
  for _ in $(seq 1 120); do
    curl -sf "127.0.0.1:1808$i/healthz" >/dev/null && break
    sleep 0.5
  done
  curl -sf "127.0.0.1:1808$i/healthz" >/dev/null || fail "node$i did not start (see $DIR/node$i.log)"
done
echo "3 nodes and nginx up (started at once on an empty database)"

KEY=$(curl -sf -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  "$PROXY/v1/admin/keys" -d '{"name":"try-local"}' | json "['key']")
AUTH=(-H "Authorization: Bearer $KEY" -H 'content-type: application/json')
# A key made on one node is in force on the others within a second.
for i in 1 2 3; do
  for _ in $(seq 1 20); do
    curl -sf "${AUTH[@]}" "127.0.0.1:1808$i/v1/workspace" >/dev/null && break
    sleep 0.1
  done
  curl -sf "${AUTH[@]}" "127.0.0.1:1808$i/v1/workspace" >/dev/null || fail "the key does not work on node$i"
done

# send FIRST LAST: events FIRST..LAST, one request each, through the proxy;
# every answer must be 200 with the event accepted.
send() {
  for n in $(seq "$1" "$2"); do
    body="[{\"id\":\"ev-$n\",\"ts\":\"2026-10-31T08:00:00Z\",\"identity\":\"try:p$((n % 5))\",\"type\":\"touch\"}]"
    answer=$(curl -s -w ' %{http_code}' "${AUTH[@]}" "$PROXY/v1/events" -d "$body")
    [[ $answer == *'"accepted":1'*' 200' ]] || fail "event $n: $answer"
  done
}
# events_on PORT: the events node PORT's engine holds.
events_on() { curl -sf "127.0.0.1:$1/healthz" | json "['events']"; }
# converged N PORT…: every listed node holds N events within 2 s.
converged() {
  local want=$1; shift
  for _ in $(seq 1 20); do
    local ok=1
    for port in "$@"; do [ "$(events_on "$port")" = "$want" ] || ok=0; done
    [ $ok = 1 ] && return 0
    sleep 0.1
  done
  for port in "$@"; do echo "node :$port holds $(events_on "$port")" >&2; done
  fail "nodes did not converge on $want events"
}

send 1 30
converged 30 18081 18082 18083
for port in 18081 18082 18083; do
  echo "  node :$port answered $(grep '/v1/events' "$DIR/access.log" | grep -c "upstream=127.0.0.1:$port ")/30 posts"
done
for k in 0 1 2 3 4; do
  for _ in 1 2 3; do  # round robin: each person read from each node
    got=$(curl -sf "${AUTH[@]}" "$PROXY/v1/persons/try:p$k/timeline" | grep -o '"ev-[0-9]*"' | wc -l)
    [ "$got" = 6 ] || fail "try:p$k: $got of 6 events through the proxy"
  done
done
echo "30 events posted through the proxy: on all 3 nodes; each person's 6 read back 3 times"

# The same batch again, straight to another node: nothing new (this is why
# nginx.conf may retry /v1/events after a node has stored it).
answer=$(curl -sf "${AUTH[@]}" 127.0.0.1:18083/v1/events -d \
  '[{"id":"ev-1","ts":"2026-10-31T08:00:00Z","identity":"try:p1","type":"touch"}]')
[ "$(echo "$answer" | json "['duplicates']")" = 1 ] || fail "resend: $answer"
converged 30 18081 18082 18083
echo "a resent event on another node is a duplicate: still 30 everywhere"

kill -KILL "$NODE2_PID"
wait "$NODE2_PID" 2>/dev/null || true
lines_before=$(wc -l <"$DIR/access.log")
send 31 60
converged 60 18081 18083
after=$(tail -n +$((lines_before + 1)) "$DIR/access.log")
echo "node2 killed (SIGKILL); 30 more events through the proxy, all 200, on nodes 1 and 3"
echo "  requests nginx tried on node2 first, then passed on: $(echo "$after" | grep -c 'upstream=127.0.0.1:18082, ')"
echo "  requests answered by node2: $(echo "$after" | grep -c 'upstream=127.0.0.1:18082 ')"

# Rate limits behind the proxy: public links allow a burst of 40 per
# client address on each node. 127.0.0.2 spends its budget on both live
# nodes; 127.0.0.3 still has its own, and 127.0.0.2 naming another
# address in X-Forwarded-For does not get a fresh one.
codes() { # codes SOURCE COUNT [HEADER…]: the statuses of COUNT link requests
  local src=$1 count=$2; shift 2
  local urls=(); for _ in $(seq 1 "$count"); do urls+=("$PROXY/l/no-such-code"); done
  curl -s --interface "$src" "$@" -o /dev/null -w '%{http_code}\n' "${urls[@]}"
}
spent=$(codes 127.0.0.2 150 | grep -c 429 || true)
other=$(codes 127.0.0.3 10 | grep -c 429 || true)
spoof=$(codes 127.0.0.2 10 -H 'X-Forwarded-For: 203.0.113.9' | grep -c 429 || true)
echo "public link, 150 requests from 127.0.0.2: $spent answered 429"
echo "  then 10 from 127.0.0.3: $other answered 429; 10 from 127.0.0.2 claiming another address: $spoof answered 429"
[ "$spent" -gt 0 ] && [ "$other" = 0 ] && [ "$spoof" -gt 0 ] || fail "client addresses are not told apart behind the proxy"
echo "OK (logs in $DIR)"
