#!/bin/sh
# Measures `faultline replay --db` (docs/replay.md, "Speed"): simulates 30 windows of a 1,000-node,
# 8-rail fleet (scenarios/large/replay-1000.json, two faults), imports them into a store, replays the
# store, and extrapolates to the target: 24 h of that fleet at 10 s windows (8,640 windows) within
# 5 minutes. Usage: ci/measure-replay.sh [path/to/faultline]   (default: the release build)
set -eu
faultline=${1:-.build/release/faultline}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$faultline" simulate --scenario scenarios/large/replay-1000.json --emit "$work/reports.ndjson" >/dev/null
"$faultline" topology generate --nodes 1000 --rails 8 --nodes-per-leaf 32 --spines 16 -o "$work/topology.json"
"$faultline" db import --db "$work/store.db" --input "$work/reports.ndjson" >/dev/null
reports=$(wc -l < "$work/reports.ndjson")
start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$work/rss" "$faultline" replay --db "$work/store.db" --topology "$work/topology.json" --json \
    > "$work/replayed.ndjson" 2>/dev/null || true
end=$(date +%s.%N)
findings=$(grep -c '"event"' "$work/replayed.ndjson" || true)
awk -v r="$reports" -v f="$findings" -v t0="$start" -v t1="$end" -v rss="$(cat "$work/rss")" 'BEGIN {
    t = t1 - t0
    printf "replayed %d reports (30 windows of 1,000 nodes) in %.1f s: %.0f reports/s, peak RSS %.0f MiB, %d finding events\n", r, t, r / t, rss / 1024, f
    printf "24 h of 1,000 nodes at 10 s windows (8,640,000 reports): %.1f minutes at this rate (target: 5)\n", 8640000 / (r / t) / 60
}'
