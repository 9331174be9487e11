#!/bin/sh
# Measures `faultline replay --db` (docs/replay.md, "Speed"): simulates 30 windows of a 1,000-node,
# 8-rail fleet (scenarios/large/replay-1000.json, two faults), imports them into a store and replays
# it, best of five runs each: the whole store, and its first window only (what a replay costs
# before its windows: the topology, the first reports' routes). The target is 24 h of that fleet at
# 10 s windows (8,640 windows) within 5 minutes: the fixed cost once, plus 8,640 times the cost of
# a window past the first. Usage: ci/measure-replay.sh [path/to/faultline]   (default: release)
set -eu
faultline=${1:-.build/release/faultline}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$faultline" simulate --scenario scenarios/large/replay-1000.json --emit "$work/reports.ndjson" >/dev/null
"$faultline" topology generate --nodes 1000 --rails 8 --nodes-per-leaf 32 --spines 16 -o "$work/topology.json"
"$faultline" db import --db "$work/store.db" --input "$work/reports.ndjson" >/dev/null
reports=$(wc -l < "$work/reports.ndjson")

# One replay, its wall time in seconds and peak RSS (KiB) appended to $work/$1; its output to
# $work/replayed.ndjson. A replay that fails stops the measurement.
run() {
    times=$1
    shift
    /usr/bin/time -f "%e %M" -a -o "$work/$times" "$faultline" replay --db "$work/store.db" \
        --topology "$work/topology.json" --json "$@" > "$work/replayed.ndjson" 2>"$work/stderr" \
        || { cat "$work/stderr" >&2; exit 1; }
}
# The best time of a file's runs, and the largest peak RSS.
best() { awk 'NR == 1 || $1 < t { t = $1 } $2 > m { m = $2 } END { print t, m }' "$work/$1"; }
# The end of the first window: its start, from the first report, plus the window's length.
start=$(head -1 "$work/reports.ndjson" | sed -n 's/.*"windowStart": *"\([^"]*\)".*/\1/p')
seconds=$(head -1 "$work/reports.ndjson" | sed -n 's/.*"windowSeconds": *\([0-9]*\).*/\1/p')
firstEnd=$(date -u -d "$start + $seconds seconds" +%Y-%m-%dT%H:%M:%SZ)
# The first window alone and the whole store, taken in turns (this VM's speed drifts by half from
# minute to minute: taken in turns, both bests come from the same stretches of it); the whole
# store last, so that its output is what is counted below.
for _ in 1 2 3 4 5; do
    run first --to "$firstEnd"
    run whole
done
first=$(best first)
whole=$(best whole)
findings=$(grep -c '"event"' "$work/replayed.ndjson" || true)
echo "$first $whole" | awk -v r="$reports" -v f="$findings" '{
    fixed = $1; t = $3; rss = $4; window = (t - fixed) / 29
    printf "replayed %d reports (30 windows of 1,000 nodes) in %.2f s (best of 5): %.0f reports/s, peak RSS %.0f MiB, %d finding events\n", r, t, r / t, rss / 1024, f
    printf "the first window alone: %.2f s; each window after it: %.1f ms\n", fixed, window * 1000
    printf "24 h of 1,000 nodes at 10 s windows (8,640 windows): %.1f minutes (target: 5)\n", (fixed + 8639 * window) / 60
}'
