#!/usr/bin/env bash
# Load benchmark of `tally serve` ingest on this machine: wrk posts pageviews for a while,
# then the script waits until every acknowledged event is queryable and reports both figures.
# Usage: benches/load/run.sh [seconds=20] [connections=64]. Needs wrk (Debian package) and curl.
# TALLY_BIN: a tally binary to measure instead of this checkout's release build (to compare two
# releases side by side).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-20}"; conns="${2:-64}"
if [ -n "${TALLY_BIN:-}" ]; then
  bin="$TALLY_BIN"
else
  cargo build --release -q -p tally-core
  bin="${CARGO_TARGET_DIR:-target}/release/tally"
fi
dir="$(mktemp -d)"; out="$dir/serve.out"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$bin" site add bench.example --data-dir "$dir/data" >/dev/null
key="$("$bin" key create --site bench.example --data-dir "$dir/data" 2>/dev/null)"
TALLY_LOG=warn "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir/data" --trust-proxy >"$out" &
pid=$!
for _ in $(seq 50); do grep -q listening "$out" 2>/dev/null && break; sleep 0.1; done
addr="$(sed -n 's/^listening on //p' "$out")"
wrk -t2 -c"$conns" -d"${secs}s" -s benches/load/pageview.lua "$addr" | tee "$dir/wrk.txt"
sent_at=$(date +%s.%N)
accepted=$(curl -s "$addr/api/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["log_head"])')
query='{"site_id":"bench.example","metrics":["pageviews"],"date_range":"day"}'
while :; do
  got=$(curl -s -X POST "$addr/api/v2/query" -H "Authorization: Bearer $key" -d "$query" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["metrics"][0])')
  [ "$got" -ge "$accepted" ] && break
  sleep 0.05
done
done_at=$(date +%s.%N)
echo "acknowledged events: $accepted; queryable pageviews: $got"
echo "time from last send to all queryable: $(python3 -c "print(round($done_at - $sent_at, 2))") s"
