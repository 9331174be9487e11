// Reports whose sketches are in the event log's compact form (a replay's, read from the store) are
// judged exactly as the same reports with protobuf bytes (the live service's): the same findings,
// rollups, captured verdicts and counters; a compact sketch that does not expand is counted as an
// invalid sketch, as an undecodable one is live.

import Engine
import FleetModel
import Foundation
import QuantileSketch
import Simulation
import Testing

private let scenarios = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("scenarios")

@Suite("engine: compact sketches")
struct CompactSketchTests {
    /// The report with every sketch in compact form, as `PairsEncoding.decode(_:sketches: .compact)` gives.
    private func compacted(_ report: Report) throws -> Report {
        var report = report
        for index in report.pairs.indices {
            guard case .bytes(let bytes)? = report.pairs[index].rttMicros else { continue }
            let compact = try #require(SketchCompaction.compact(bytes))
            // A slice of a larger buffer, as the store's rows are.
            report.pairs[index].rttMicros = .compact(([0xEE] + compact + [0xEE])[1...compact.count])
        }
        return report
    }

    private func run(_ reports: [[Report]], topology: Topology) -> (Engine, [Finding]) {
        var engine = Engine(topology: topology, rules: .defaults, windowSeconds: 10)
        engine.rollUp = true
        engine.captureFrom = Timestamp(secondsSinceEpoch: 0)
        var findings: [Finding] = []
        for window in reports {
            for report in window { findings += engine.replay(report).findings }
        }
        findings += engine.finish()
        return (engine, findings)
    }

    @Test("compact and protobuf sketches give the same findings, rollups, verdicts and counters")
    func sameJudgement() throws {
        let scenario = try Scenario(json: Data(contentsOf: scenarios.appendingPathComponent("access-link-faults.json")))
        let topology = try scenario.loadTopology(relativeTo: scenarios)
        let simulator = try FleetSimulator(scenario: scenario, topology: topology)
        let windows = (0..<6).map { simulator.reports(window: $0) }
        let compactWindows = try windows.map { try $0.map(compacted) }
        #expect(compactWindows.flatMap { $0.flatMap(\.pairs) }.contains { if case .compact? = $0.rttMicros { true } else { false } })

        var (live, liveFindings) = run(windows, topology: topology)
        var (replayed, replayedFindings) = run(compactWindows, topology: topology)
        #expect(!liveFindings.isEmpty)
        #expect(replayedFindings == liveFindings)
        #expect(replayed.counters == live.counters && live.counters.pairsInvalidSketch == 0)
        #expect(replayed.takeRollups() == live.takeRollups())
        let liveVerdicts = live.takeCaptured().map(\.verdicts)
        #expect(replayed.takeCaptured().map(\.verdicts) == liveVerdicts && liveVerdicts.count == 6)
    }

    @Test("a compact sketch that does not expand invalidates its pair only")
    func damagedCompactSketch() throws {
        let scenario = try Scenario(json: Data(contentsOf: scenarios.appendingPathComponent("access-link-faults.json")))
        let topology = try scenario.loadTopology(relativeTo: scenarios)
        let simulator = try FleetSimulator(scenario: scenario, topology: topology)
        var window = try simulator.reports(window: 0).map(compacted)
        let pair = try #require(window[0].pairs.firstIndex { $0.rttMicros != nil })
        guard case .compact(let compact)? = window[0].pairs[pair].rttMicros else {
            Issue.record("the pair's sketch is not compact")
            return
        }
        window[0].pairs[pair].rttMicros = .compact(compact.prefix(compact.count - 3))  // truncated
        let (engine, _) = run([window], topology: topology)
        #expect(engine.counters.pairsInvalidSketch == 1)
        #expect(engine.counters.pairsJudged == window.reduce(0) { $0 + $1.pairs.count } - 1)
    }
}
