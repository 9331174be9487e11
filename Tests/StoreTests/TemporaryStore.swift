// Test support: a fresh temporary database file per test, removed afterwards, and small reports
// with real sketches.

import FleetModel
import Foundation
import QuantileSketch
import Simulation
import Store

/// A path in a fresh temporary directory; `remove()` deletes the directory (database, WAL, SHM).
struct TemporaryDatabase {
    let directory: String
    let path: String

    init() throws {
        directory =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("faultline-store-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        path = directory + "/store.db"
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

/// Runs `body` with a new migrated store in a temporary file, removed afterwards.
func withStore<T>(_ body: (Store, TemporaryDatabase) throws -> T) throws -> T {
    let temporary = try TemporaryDatabase()
    defer { temporary.remove() }
    let store = try Store(path: temporary.path)
    return try body(store, temporary)
}

/// A DDSketch holding `count` seeded lognormal-ish RTTs around `median` µs, as a report carries it.
func sketchBytes(count: Int, median: Double, seed: UInt64) throws -> WireSketch {
    var generator = SeededGenerator(seed: seed)
    var sketch = try QuantileSketch(relativeAccuracy: 0.01)
    for _ in 0..<count {
        try sketch.add(median * exp(0.2 * (generator.nextUnit() - 0.5)))
    }
    return .bytes(sketch.encoded())
}

/// A report of `node` for the window at `start` with a few pairs: loopback, intra-host, a peer with a
/// path, one whose every probe was lost (no sketch), and health.
func sampleReport(
    node name: String = "gpu-a001", start: Int64 = 1_795_000_000, seed: UInt64 = 1
) throws -> Report {
    let node = NodeName(name)!
    func endpoint(_ node: String, _ rail: Int) -> EndpointID {
        EndpointID(node: NodeName(node)!, rail: rail)!
    }
    return Report(
        node: node, windowStart: Timestamp(secondsSinceEpoch: start), windowSeconds: 10,
        agentVersion: "0.3.0",
        transport: .verbsRC,
        pairs: [
            .init(
                src: endpoint(name, 0), dst: endpoint(name, 0), sent: 100, lost: 0,
                rttMicros: try sketchBytes(count: 100, median: 4, seed: seed)),
            .init(
                src: endpoint(name, 0), dst: endpoint(name, 1), sent: 20, lost: 1, errors: 2,
                rttMicros: try sketchBytes(count: 19, median: 6, seed: seed &+ 1)),
            .init(
                src: endpoint(name, 3), dst: endpoint("gpu-b002", 3), sent: 20, lost: 0,
                rttMicros: try sketchBytes(count: 20, median: 9, seed: seed &+ 2),
                path: [SwitchName("leaf-s1-r3")!, SwitchName("spine-04")!, SwitchName("leaf-s2-r3")!]),
            .init(src: endpoint(name, 3), dst: endpoint("gpu-c003", 3), sent: 20, lost: 20, rttMicros: nil),
        ],
        health: [
            "pcie": .object([
                "aer": .number(3), "one": .number(1), "zero": .number(0), "link": .string("x16"),
            ]),
            "temps": .array([
                .number(41.5), .null, .bool(true), .bool(false), .number(-2.5e-7), .number(1e300),
            ]),
        ])
}
