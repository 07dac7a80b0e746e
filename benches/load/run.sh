#!/usr/bin/env bash
# Load benchmark of `tally serve` ingest on this machine: wrk posts pageviews for a while while
# probe.py measures how soon after its 202 an event is visible (p50/p99/max, unfiltered and
# filtered queries); then the script waits until every acknowledged event is queryable.
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
# The probe polls two queries every 50 ms with one key, and wrk sends every pageview from one
# client to one site: lift the rate limits where the build has them (older builds, measured side
# by side, do not).
limits=()
if "$bin" serve --help | grep -q -- --query-rate-per-hour; then limits=(--query-rate-per-hour 0); fi
if "$bin" serve --help | grep -q -- --ingest-rate-per-client; then
  limits+=(--ingest-rate-per-client 0 --ingest-rate-per-site 0)
fi
TALLY_LOG=warn "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir/data" --trust-proxy "${limits[@]}" >"$out" &
pid=$!
for _ in $(seq 50); do grep -q listening "$out" 2>/dev/null && break; sleep 0.1; done
addr="$(sed -n 's/^listening on //p' "$out")"
python3 benches/load/probe.py --addr "$addr" --key "$key" --seconds "$secs" >"$dir/probe.txt" 2>&1 &
probe=$!
wrk -t2 -c"$conns" -d"${secs}s" -s benches/load/pageview.lua "$addr" | tee "$dir/wrk.txt"
probe_ok=0; wait "$probe" || probe_ok=$?
cat "$dir/probe.txt"
sent_at=$(date +%s.%N)
accepted=$(curl -s "$addr/api/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["log_head"])')
# Visible in both tiers: unfiltered (rollups) and with a filter every event passes (segments).
rollups='{"site_id":"bench.example","metrics":["pageviews"],"date_range":"day"}'
segments='{"site_id":"bench.example","metrics":["pageviews"],"date_range":"day","filters":[["is_not","visit:country",["ZZ"]]]}'
count() {
  curl -s -X POST "$addr/api/v2/query" -H "Authorization: Bearer $key" -d "$1" |
    python3 -c 'import json,sys; a=json.load(sys.stdin); print(a["results"][0]["metrics"][0], a.get("meta",{}).get("tier","-"))'
}
rollups_at=""; segments_at=""
while [ -z "$rollups_at" ] || [ -z "$segments_at" ]; do
  now=$(date +%s.%N)
  read -r got tier <<<"$(count "$rollups")"
  [ -z "$rollups_at" ] && [ "$got" -ge "$accepted" ] && rollups_at=$now && echo "rollups ($tier): $got"
  read -r got tier <<<"$(count "$segments")"
  [ -z "$segments_at" ] && [ "$got" -ge "$accepted" ] && segments_at=$now && echo "segments ($tier): $got"
  sleep 0.05
done
echo "acknowledged events: $accepted"
[ "$probe_ok" -eq 0 ] || echo "some probes never became visible"
echo "time from last send to all queryable: rollups $(python3 -c "print(round($rollups_at - $sent_at, 2))") s, segments $(python3 -c "print(round($segments_at - $sent_at, 2))") s"
