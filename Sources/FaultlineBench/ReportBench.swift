// The report path's speed (wire-v1.md §3): one 64-pair report as ci/load-serve posts it, parsed and
// validated by `Report(json:topology:)` against the load test's 1,000-node topology: the CPU each
// POST /v1/reports costs the service before the store and the engine see it.

import FleetModel
import Foundation
import QuantileSketch

/// The benchmarks' fleet: 1,000 nodes of 8 rails, 32 nodes a leaf, 16 spines (ci/load-serve's).
func benchTopology() throws -> Topology {
    try Topology.railOptimized(.init(nodes: 1_000, rails: 8, nodesPerLeaf: 32, spines: 16))
}

/// A report body of the benchmarks' fleet: `gpu-NNNN` (node `node`) reports 8 rails × 8 peers for
/// the window starting `windowStart`, each pair with a 20-value sketch, as `faultline-bench --serve`
/// builds them.
func benchReportBody(node: Int = 0, windowStart: String = "2026-11-21T10:00:00Z") throws -> Data {
    var pairs: [String] = []
    let nodeName = String(format: "gpu-%04d", node)
    for rail in 0..<8 {
        for peer in 1...8 {
            var sketch = try QuantileSketch()
            let offset = rail * 8 + peer
            let values: [Double] = (0..<20).map { 3.0 + Double(($0 * 7 + offset) % 13) * 0.25 }
            try sketch.add(contentsOf: values)
            let sketchText = Data(sketch.encoded()).base64EncodedString()
            let peerName = String(format: "gpu-%04d", (node + peer) % 1_000)
            let source = "\"src\": \"\(nodeName)/\(rail)\", \"dst\": \"\(peerName)/\(rail)\""
            pairs.append("{\(source), \"sent\": 20, \"lost\": 0, \"rttMicros\": \"\(sketchText)\"}")
        }
    }
    let body =
        "{\"version\": 1, \"node\": \"\(nodeName)\", \"windowStart\": \"\(windowStart)\", \"windowSeconds\": 10, "
        + "\"agent\": {\"version\": \"bench\", \"transport\": \"udp\"}, \"pairs\": [\(pairs.joined(separator: ", "))]}"
    return Data(body.utf8)
}

/// `gpu-0000`'s report and the fleet.
func benchReport() throws -> (body: Data, topology: Topology) {
    (try benchReportBody(), try benchTopology())
}

/// Parses and validates the report `count` times.
func parseReports(_ body: Data, topology: Topology, count: Int) throws {
    for _ in 0..<count {
        let report = try Report(json: body, topology: topology)
        sink &+= UInt64(report.pairs.count)
    }
}
