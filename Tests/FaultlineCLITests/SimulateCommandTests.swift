// `faultline simulate`: a committed scenario through the command, its score as a table and as JSON,
// and its emitted reports replayed by `faultline replay` into exactly the findings the simulation
// printed (the live path and replay run the same engine). Bad scenarios are named errors.

import FaultlineCLI
import FleetModel
import Foundation
import Testing

/// The repository's scenarios folder, found from this file's place in the source tree.
private let scenariosDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scenarios")

@Suite("simulate")
struct SimulateCommandTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("simulate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    @Test("the score table, the JSON, and the emitted reports replay to the same findings")
    func simulateThenReplay() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let scenario = scenariosDirectory.appendingPathComponent("small-16.json").path
        let table = run(["simulate", "--scenario", scenario])
        #expect(table.0 == .success, "\(table.err)")
        #expect(table.out.contains("scenario small-16: 16 nodes, 64 endpoints"))
        #expect(table.out.contains("kind     findings  right  precision   faults  found  recall"))

        let emitted = directory.appendingPathComponent("reports.ndjson").path
        let json = run(["simulate", "--scenario", scenario, "--emit", emitted, "--json"])
        #expect(json.0 == .success, "\(json.err)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any])
        #expect(object["scenario"] as? String == "small-16")
        let windows = try #require(object["windows"] as? Int)
        #expect(object["reports"] as? Int == 16 * windows)
        let findings = try #require(object["findings"] as? [[String: Any]])
        #expect(!findings.isEmpty)

        // Every emitted line is a valid report of the scenario's fleet.
        let topology = try Topology.railOptimized(.init(nodes: 16, rails: 4, nodesPerLeaf: 8, spines: 2))
        let topologyPath = directory.appendingPathComponent("topology.json").path
        try topology.jsonData().write(to: URL(fileURLWithPath: topologyPath))
        let reports = try Report.parseLines(Data(contentsOf: URL(fileURLWithPath: emitted)), name: emitted, topology: topology)
        #expect(reports.count == 16 * windows)

        // Replayed, they give the findings the simulation printed, line for line.
        let replay = run(["replay", "--topology", topologyPath, "--input", emitted, "--json"])
        #expect(replay.0 == .success, "\(replay.err)")
        let printed = json.out.split(separator: "\n").filter { $0.hasPrefix("  {\"window\"") }.map {
            String($0.dropFirst(2).trimmingSuffix(","))
        }
        // (The decisions follow the findings: only the findings are compared.)
        #expect(replay.out.split(separator: "\n").filter { $0.hasPrefix("{\"window\"") }.map(String.init) == printed)
    }

    @Test("a bad scenario is a data error naming the field; a missing one names the file")
    func badScenarios() throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let bad = directory.appendingPathComponent("bad.json")
        try Data(#"{"name": "bad", "seed": 1, "topology": {"nodes": 0, "rails": 1, "nodesPerLeaf": 1, "spines": 1}, "windows": 2}"#.utf8).write(to: bad)
        let result = run(["simulate", "--scenario", bad.path])
        #expect(result.0 == .dataError)
        #expect(result.err.contains("topology.nodes"), "\(result.err)")
        let missing = run(["simulate", "--scenario", directory.appendingPathComponent("none.json").path])
        #expect(missing.0 == .noInput)
        #expect(missing.err.contains("none.json"))
    }
}

extension Substring {
    fileprivate func trimmingSuffix(_ suffix: String) -> Substring {
        hasSuffix(suffix) ? dropLast(suffix.count) : self
    }
}
