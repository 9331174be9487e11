#!/bin/sh
# Measures the store's disk use per report (docs/store.md, "Disk use"): simulates a 1,000-node,
# 8-rail fleet (scenarios/large/store-1000.json: 3 windows of realistic reports with real sketches),
# imports the reports into a fresh store the way the service appends them (one transaction each),
# and prints the sizes. Usage: ci/measure-store.sh [path/to/faultline]   (default: the debug build)
set -eu
faultline=${1:-.build/debug/faultline}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$faultline" simulate --scenario scenarios/large/store-1000.json --emit "$work/reports.ndjson" >/dev/null
"$faultline" db migrate --db "$work/empty.db" >/dev/null
start=$(date +%s.%N)
"$faultline" db import --db "$work/store.db" --input "$work/reports.ndjson" >/dev/null
end=$(date +%s.%N)
"$faultline" db export --db "$work/store.db" | cmp -s - "$work/reports.ndjson" || { echo "export differs from the input" >&2; exit 1; }

reports=$(wc -l < "$work/reports.ndjson")
pairs=$(grep -o '"src"' "$work/reports.ndjson" | wc -l)
ndjson=$(stat -c %s "$work/reports.ndjson")
empty=$(stat -c %s "$work/empty.db")
store=$(stat -c %s "$work/store.db")   # the WAL is checkpointed into the file when import closes it
awk -v r="$reports" -v p="$pairs" -v n="$ndjson" -v e="$empty" -v s="$store" -v t0="$start" -v t1="$end" 'BEGIN {
    per = (s - e) / r
    printf "reports %d, pairs %d (%.1f per report)\n", r, p, p / r
    printf "NDJSON %d bytes: %.0f per report\n", n, n / r
    printf "store %d bytes (empty %d): %.0f per report, %.1f per pair\n", s, e, per, (s - e) / p
    printf "import %.1f s: %.2f ms per report (JSON parsing and validation included)\n", t1 - t0, (t1 - t0) * 1000 / r
    printf "1,000 nodes, 10 s windows: %.1f GB per day, %.0f GB for 72 h of raw reports\n", per * 1000 * 8640 / 1e9, per * 1000 * 8640 * 3 / 1e9
}'
