// The service's ingest path without HTTP, for an instruction counter: `Correlator.ingest` of 64-pair
// reports (token lookup, parsing and validation, the store's encoding and commit, the engine taking
// them) on a temporary store, as `POST /v1/reports` runs it after the request is read.

import Engine
import FleetModel
import Foundation
import Service

/// A clock stopped inside the reports' first window, so no window closes while reports arrive.
private struct StoppedClock: ServiceClock {
    let time: Timestamp
    func now() -> Timestamp { time }
}

/// Prepared once, whatever the repeats: bodies of 100 nodes for `windows` windows, their tokens, and
/// a correlator over a new store in a temporary directory.
struct IngestWorkload {
    static let nodes = 100
    let bodies: [[[UInt8]]]
    let authorizations: [String]
    let correlator: Correlator
    let directory: String

    init(windows: Int) throws {
        let topology = try benchTopology()
        let tokens = (0..<Self.nodes).map { String(format: "bench-token-gpu-%04d-0123456789", $0) }
        let tokensText = (0..<Self.nodes).map { String(format: "gpu-%04d ", $0) + tokens[$0] }
            .joined(separator: "\n")
        let first = Timestamp(rfc3339: "2026-11-21T10:00:00Z")!
        bodies = try (0..<windows).map { window in
            let start = Timestamp(secondsSinceEpoch: first.secondsSinceEpoch + 10 * Int64(window))
            return try (0..<Self.nodes).map { Array(try benchReportBody(node: $0, windowStart: "\(start)")) }
        }
        authorizations = tokens.map { "Bearer " + $0 }
        directory = NSTemporaryDirectory() + "faultline-bench-ingest-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let inputs = CorrelatorInputs(
            topology: topology, topologyText: String(decoding: topology.jsonData(), as: UTF8.self),
            rules: .defaults, tokens: try Tokens(text: tokensText, file: "tokens"))
        correlator = try Correlator(
            databasePath: directory + "/faultline.db", inputs: inputs, clock: StoppedClock(time: first))
    }

    /// Ingests window `window`'s reports, one request each; returns how many were stored.
    func ingest(window: Int) throws -> Int {
        var stored = 0
        for (node, body) in bodies[window].enumerated() {
            stored += try correlator.ingest(
                body: body, contentType: "application/json", authorization: authorizations[node]
            ).stored
        }
        correlator.waitForEngine()
        return stored
    }

    func remove() {
        correlator.close()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
