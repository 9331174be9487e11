// The rollups the engine makes while it judges a window (the service's weekly-report data) equal
// those `WindowRollup.make` makes of the same reports, and the service-side options hold: no leaf
// pairs past `maxLeaves`, nothing made unless asked.

import Engine
import FleetModel
import Foundation
import Simulation
import Testing

private let scenarios = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("scenarios")

@Suite("window rollups")
struct WindowRollupTests {
    @Test("the engine's rollups are WindowRollup.make's of the same reports")
    func engineAgreesWithMake() throws {
        let scenario = try Scenario(json: Data(contentsOf: scenarios.appendingPathComponent("access-link-faults.json")))
        let topology = try scenario.loadTopology(relativeTo: scenarios)
        let simulator = try FleetSimulator(scenario: scenario, topology: topology)
        var engine = Engine(topology: topology, rules: .defaults, windowSeconds: scenario.windowSeconds)
        engine.rollUp = true
        var expected: [WindowRollup] = []
        for window in 0..<6 {
            let reports = simulator.reports(window: window)
            expected.append(WindowRollup.make(window: simulator.windowStart(window), reports: reports, topology: topology))
            for report in reports { engine.ingest(report) }
        }
        _ = engine.finish()
        let made = engine.takeRollups()
        #expect(made.count == 6 && engine.takeRollups().isEmpty)
        #expect(made == expected)
        // Every class, and leaf pairs with the lossy link's loss in them.
        let first = try #require(made.first)
        #expect(first.classes.map(\.pathClass) == PathClass.allCases && !first.leafPairsOmitted)
        #expect(made[2].leafPairs.contains { $0.aggregate.lost > 0 })
        #expect(made.allSatisfy { $0.classes.allSatisfy { $0.aggregate.sketch != nil } })

        var quiet = Engine(topology: topology, rules: .defaults, windowSeconds: scenario.windowSeconds)
        for report in simulator.reports(window: 0) { quiet.ingest(report) }
        _ = quiet.finish()
        #expect(quiet.takeRollups().isEmpty)
    }

    @Test("past maxLeaves leaves, classes only")
    func manyLeaves() throws {
        let topology = try Topology.railOptimized(.init(nodes: 520, rails: 2, nodesPerLeaf: 2, spines: 2))  // 520 leaves
        let pair = Report.Pair(src: EndpointID("gpu-0000/0")!, dst: EndpointID("gpu-0002/0")!, sent: 4, lost: 1, rttMicros: nil)
        let report = Report(
            node: NodeName("gpu-0000")!, windowStart: Timestamp(secondsSinceEpoch: 0), windowSeconds: 10, agentVersion: "t",
            transport: .udp, pairs: [pair], health: [:])
        let rollup = WindowRollup.make(window: report.windowStart, reports: [report], topology: topology)
        #expect(rollup.leafPairsOmitted && rollup.leafPairs.isEmpty)
        #expect(rollup.classes.map(\.pathClass) == [.crossLeaf] && rollup.classes.first?.aggregate.lost == 1)
    }
}
