// `faultline-bench --serve HOST:PORT`: a concurrent load generator for a running `faultline serve`.
// Several threads, each with its own keep-alive HTTPClient, post reports of 64 pairs (8 rails × 8
// peers, each with an RTT sketch) for a fleet of `gpu-NNNN` nodes, window after window from the
// current one, never a window before its start (as a fleet would: N nodes offer at most N reports
// a window); one more thread reads GET /v1/findings meanwhile. Prints reports/s and latency
// percentiles of both. ci/load-serve starts the service and runs this against it.

import Dispatch
import FleetModel
import Foundation
import Net
import QuantileSketch

struct ServeLoadOptions {
    var address = ""
    var nodes = 1_000
    var threads = 16
    var seconds = 15.0
    var windowSeconds = 10
    var adminToken = ""
}

/// The token `ci/load-serve` writes for a node.
func benchToken(_ node: String) -> String { "bench-token-\(node)-0123456789" }

private final class LoadResults: Sendable {
    let state = Locked<(latencies: [Double], statuses: [Int: Int], findings: [Double], failures: Int)>(
        ([], [:], [], 0))
}

func runServeLoad(_ options: ServeLoadOptions) throws {
    let address = try SocketAddress.parse(options.address)
    // One sketch per pair position, reused: the server's work does not depend on the values.
    var sketches: [String] = []
    for index in 0..<64 {
        var sketch = try QuantileSketch()
        try sketch.add(contentsOf: (0..<20).map { 3.0 + Double(($0 * 7 + index) % 13) * 0.25 })
        sketches.append(Data(sketch.encoded()).base64EncodedString())
    }
    let names = (0..<options.nodes).map { String(format: "gpu-%04d", $0) }
    let sketchTexts = sketches
    let windowSeconds = options.windowSeconds
    // Each node's body is built once, around its window start; a request only splices the time in,
    // so the generator spends little of the machine's CPU that the service could use.
    let templates = (0..<names.count).map { node -> (prefix: [UInt8], suffix: [UInt8]) in
        let name = names[node]
        var pairs: [String] = []
        pairs.reserveCapacity(64)
        for rail in 0..<8 {
            for peer in 1...8 {
                let other = names[(node + peer) % names.count]
                pairs.append(
                    "{\"src\": \"\(name)/\(rail)\", \"dst\": \"\(other)/\(rail)\", \"sent\": 20, \"lost\": 0, "
                        + "\"rttMicros\": \"\(sketchTexts[rail * 8 + peer - 1])\"}")
            }
        }
        return (
            Array("{\"version\": 1, \"node\": \"\(name)\", \"windowStart\": \"".utf8),
            Array(
                ("\", \"windowSeconds\": \(windowSeconds), \"agent\": {\"version\": \"bench\", \"transport\": \"udp\"}, "
                    + "\"pairs\": [\(pairs.joined(separator: ", "))]}").utf8)
        )
    }
    @Sendable func body(node: Int, window: Int64) -> [UInt8] {
        templates[node].prefix + Array(Timestamp(secondsSinceEpoch: window).description.utf8)
            + templates[node].suffix
    }

    let length = Int64(options.windowSeconds)
    let firstWindow = Int64(Date().timeIntervalSince1970) / length * length
    let next = Locked(0)
    let results = LoadResults()
    let deadline = ContinuousClock.now + .milliseconds(Int(options.seconds * 1000))
    let group = DispatchGroup()
    let nodes = options.nodes
    for _ in 0..<options.threads {
        group.enter()
        Thread {
            defer { group.leave() }
            guard let client = try? HTTPClient(connectingTo: address, timeout: .seconds(30)) else {
                results.state.withLock { $0.failures += 1 }
                return
            }
            var latencies: [Double] = []
            var statuses: [Int: Int] = [:]
            while ContinuousClock.now < deadline {
                let index = next.withLock { value -> Int in
                    defer { value += 1 }
                    return value
                }
                let node = index % nodes
                let window = firstWindow + Int64(index / nodes) * length
                // Paced to the clock: a window's reports go once it has begun.
                let wait = Double(window) - Date().timeIntervalSince1970
                if wait > 0 {
                    guard ContinuousClock.now + .milliseconds(Int(wait * 1000)) < deadline else { break }
                    usleep(UInt32(wait * 1_000_000))
                }
                let payload = body(node: node, window: window)
                let started = ContinuousClock.now
                guard
                    let response = try? client.send(
                        "POST", "/v1/reports",
                        headers: [
                            "Authorization": "Bearer \(benchToken(names[node]))",
                            "Content-Type": "application/json",
                        ], body: payload)
                else {
                    results.state.withLock { $0.failures += 1 }
                    return
                }
                latencies.append((ContinuousClock.now - started) / .milliseconds(1))
                statuses[response.status, default: 0] += 1
            }
            let mine = (latencies, statuses)
            results.state.withLock { state in
                state.latencies += mine.0
                for (status, count) in mine.1 { state.statuses[status, default: 0] += count }
            }
        }.start()
    }
    group.enter()
    let admin = options.adminToken
    Thread {
        defer { group.leave() }
        guard let client = try? HTTPClient(connectingTo: address, timeout: .seconds(30)) else { return }
        var latencies: [Double] = []
        while ContinuousClock.now < deadline {
            let started = ContinuousClock.now
            guard
                let response = try? client.send(
                    "GET", "/v1/findings?state=open", headers: ["Authorization": "Bearer \(admin)"]),
                response.status == 200
            else {
                results.state.withLock { $0.failures += 1 }
                return
            }
            latencies.append((ContinuousClock.now - started) / .milliseconds(1))
            usleep(50_000)
        }
        let mine = latencies
        results.state.withLock { $0.findings += mine }
    }.start()
    let began = ContinuousClock.now
    group.wait()
    let elapsed = (ContinuousClock.now - began) / .seconds(1)
    let final = results.state.withLock { $0 }
    func percentile(_ values: [Double], _ q: Double) -> String {
        guard !values.isEmpty else { return "-" }
        let sorted = values.sorted()
        return String(format: "%.1f", sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))])
    }
    let accepted = final.statuses[202] ?? 0
    // Where the generator ended against the clock: behind when the service could not keep up.
    let lastWindow = firstWindow + Int64(max(0, next.withLock { $0 } - 1) / nodes) * length
    let behind = Int64(Date().timeIntervalSince1970) / length * length - lastWindow
    print(
        "serve load: \(options.threads) threads, \(options.nodes) nodes, 64 pairs a report, \(String(format: "%.1f", elapsed)) s"
    )
    print(
        "  statuses: \(final.statuses.keys.sorted().map { "\($0): \(final.statuses[$0]!)" }.joined(separator: ", "))"
    )
    print(
        "  accepted: \(accepted) reports, \(String(format: "%.0f", Double(accepted) / elapsed)) reports/s "
            + "(offered at most \(String(format: "%.0f", Double(nodes) / Double(length))) a second; "
            + "the last window posted was \(behind) s behind the clock)")
    print(
        "  POST /v1/reports latency ms: p50 \(percentile(final.latencies, 0.5)), p99 \(percentile(final.latencies, 0.99)), max \(percentile(final.latencies, 1))"
    )
    print(
        "  GET /v1/findings latency ms (\(final.findings.count) requests): p50 \(percentile(final.findings, 0.5)), p99 \(percentile(final.findings, 0.99))"
    )
    if final.failures > 0 { print("  client failures: \(final.failures)") }
}
