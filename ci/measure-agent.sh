#!/bin/sh
# Measures one agent's CPU and memory probing 64 peers x 8 rails at the default rates while
# answering as many, then the floor: the same datagrams exchanged by two bare loops
# (ci/udp-floor.swift). docs/agent.md, "Cost". usage: ci/measure-agent.sh [BINARY] [SECONDS]
# Loopback only: agents on 127.0.2.1 and 127.0.2.2, a trivial correlator on 127.0.0.1:18081.
set -eu
B=${1:-.build/release/faultline}
T=${2:-60}
B=$(cd "$(dirname "$B")" && pwd)/$(basename "$B")
HERE=$(cd "$(dirname "$0")" && pwd)
D=$(mktemp -d)
trap 'for f in "$D"/m.log "$D"/r.log; do tail -n 5 "$f" >&2; done; rm -rf "$D"' EXIT
cd "$D"
python3 - <<'PY'
import json
pairs = [{"src": f"m/{r}", "dst": f"m/{r}", "class": "loopback"} for r in range(8)]
pairs += [{"src": f"m/{r}", "dst": f"p{n:02d}/{r}", "class": "crossLeaf", "path": ["l0", "s0", "l1"]}
          for r in range(8) for n in range(64)]
json.dump({"node": "m", "pairs": pairs, "addresses": {f"p{n:02d}": "127.0.2.2:17500" for n in range(64)}},
          open("m.json", "w"))
pairs = [{"src": f"r/{r}", "dst": f"q{n:02d}/{r}", "class": "crossLeaf"} for r in range(8) for n in range(64)]
json.dump({"node": "r", "pairs": pairs, "addresses": {f"q{n:02d}": "127.0.2.1:17500" for n in range(64)}},
          open("r.json", "w"))
PY
cat > corr.py <<'PY'
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(202); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 18081), H).serve_forever()
PY
echo token > token
python3 corr.py & C=$!
"$B" agent --node r --listen 127.0.2.2:17500 --correlator http://127.0.0.1:18081 --token-file token \
    --pinglist r.json --spool spr 2> r.log & R=$!
"$B" agent --node m --listen 127.0.2.1:17500 --correlator http://127.0.0.1:18081 --token-file token \
    --pinglist m.json --spool spm --metrics 127.0.0.1:19465 2> m.log & M=$!
sleep 12
kill -0 $M 2>/dev/null || { status=0; wait $M || status=$?; echo "agent m ended early: status $status" >&2; kill $R $C; exit 1; }
u0=$(awk '{print $14}' /proc/$M/stat); k0=$(awk '{print $15}' /proc/$M/stat); s0=$(date +%s.%N)
sleep "$T"
u1=$(awk '{print $14}' /proc/$M/stat); k1=$(awk '{print $15}' /proc/$M/stat); s1=$(date +%s.%N)
share() { echo "scale=4; ($1)/$(getconf CLK_TCK)/($s1-$s0)" | bc -l; }
echo "cpu (fraction of one core): $(share "$u1-$u0+$k1-$k0") (user $(share "$u1-$u0"), system $(share "$k1-$k0"))"
echo "context switches: $(cat /proc/$M/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}') over the run"
grep -E "VmRSS|VmHWM" /proc/$M/status
curl -s 127.0.0.1:19465/metrics | grep -E "^faultline_agent_(probes_sent|probes_lost|responder_answered)"
kill -TERM $M $R 2>/dev/null || true; wait $M $R || true; kill $C

# The floor: ci/udp-floor.swift, two bare loops exchanging the same 1,104 probes/s each way.
swiftc -O "$HERE/udp-floor.swift" -o udp-floor 2>/dev/null || { echo "no floor: swiftc failed" >&2; exit 0; }
./udp-floor 127.0.2.2 17600 127.0.2.1 17600 1104 $((T + 8)) > /dev/null & FB=$!
./udp-floor 127.0.2.1 17600 127.0.2.2 17600 1104 $((T + 8)) > /dev/null & FA=$!
sleep 3
u0=$(awk '{print $14}' /proc/$FA/stat); k0=$(awk '{print $15}' /proc/$FA/stat); s0=$(date +%s.%N)
sleep "$T"
u1=$(awk '{print $14}' /proc/$FA/stat); k1=$(awk '{print $15}' /proc/$FA/stat); s1=$(date +%s.%N)
echo "floor, the same datagrams with no agent work: $(share "$u1-$u0+$k1-$k0") (user $(share "$u1-$u0"), system $(share "$k1-$k0"))"
wait $FA $FB
