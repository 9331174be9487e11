// The committed scenarios (scenarios/*.json, not scenarios/large/) through the simulator and the
// engine: each runs, its reports are valid wire reports, its result holds together, two runs give
// the same bytes, and the fault-free noisy fleet gives no findings. The whole suite's score must
// meet the engine's targets: precision ≥ 0.99 and recall ≥ 0.97 per kind, median time to detect
// ≤ 2 windows for hard faults and ≤ 3 for gray ones, no finding in fault-free windows.

import Engine
import FleetModel
import Foundation
import Testing

@testable import Simulation

/// The repository's scenarios folder, found from this file's place in the source tree.
private let scenariosDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scenarios")

/// The file names of the small suite, sorted.
private let suiteFiles: [String] = {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: scenariosDirectory.path)) ?? []
    return names.filter { $0.hasSuffix(".json") }.sorted()
}()

private func loadSimulator(_ file: String) throws -> FleetSimulator {
    let data = try Data(contentsOf: scenariosDirectory.appendingPathComponent(file))
    let scenario = try Scenario(json: data)
    return try FleetSimulator(
        scenario: scenario, topology: scenario.loadTopology(relativeTo: scenariosDirectory))
}

/// What the suite test keeps of a scenario's run: all of the first, the bytes of the second.
private struct Outcome: Sendable {
    let file: String
    let topology: Topology
    let result: SimulationResult
    let reportProblems: [String]
}

/// Runs one scenario from its file and checks every report on the way.
private func runChecked(_ file: String) throws -> Outcome {
    let simulator = try loadSimulator(file)
    let topology = simulator.topology
    var problems: [String] = []
    let result = simulator.run { window, reports in
        let start = simulator.windowStart(window)
        for (a, b) in zip(reports, reports.dropFirst()) where !(a.node < b.node) {
            problems.append("window \(window): \(a.node) before \(b.node)")
        }
        // The first two windows' reports go through the wire format and back, checked against the
        // topology as the correlator would.
        for report in reports {
            if report.windowStart != start { problems.append("\(report.node): window \(report.windowStart)") }
            if window < 2 {
                do {
                    let parsed = try Report(json: Data(report.jsonLine.utf8), topology: topology)
                    if parsed != report { problems.append("\(report.node): changed through its JSON line") }
                } catch {
                    problems.append("\(report.node): \(error)")
                }
            }
            for pair in report.pairs {
                let local = pair.src == pair.dst || pair.src.node == pair.dst.node
                let probes = local ? simulator.scenario.probesPerLocalPair : simulator.scenario.probesPerPair
                if pair.sent != probes || pair.lost < 0 || pair.lost > pair.sent
                    || (pair.rttMicros == nil) != (pair.lost == pair.sent)
                {
                    problems.append(
                        "\(pair.src) -> \(pair.dst) in window \(window): sent \(pair.sent), lost \(pair.lost)"
                    )
                }
            }
        }
    }
    return Outcome(file: file, topology: topology, result: result, reportProblems: Array(problems.prefix(5)))
}

/// The findings of a run as the bytes the engine wrote.
private func findingBytes(_ result: SimulationResult) -> String {
    result.findings.map(\.jsonLine).joined(separator: "\n")
}

@Suite("scenario suite")
struct ScenarioSuiteTests {
    @Test("the suite covers every fault kind and effect, and sizes from 16 to 512 nodes")
    func coverage() throws {
        // The scenarios and their fleets only: planning the pinglists is not needed here.
        let fleets = try suiteFiles.map { file in
            let scenario = try Scenario(
                json: Data(contentsOf: scenariosDirectory.appendingPathComponent(file)))
            return (scenario: scenario, topology: try scenario.loadTopology(relativeTo: scenariosDirectory))
        }
        let faults = fleets.flatMap(\.scenario.faults)
        var seen = Set<String>()
        for fault in faults { seen.insert("\(fault.kind.rawValue) \(fault.effect?.rawValue ?? "-")") }
        for wanted in [
            "endpoint slow", "endpoint lossy", "endpoint dead", "accessLink slow", "accessLink lossy",
            "fabricLink slow", "fabricLink lossy", "switch slow", "switch lossy", "node slow", "node dead",
            "agentSilent -",
        ] {
            #expect(seen.contains(wanted), "no scenario has a fault '\(wanted)'")
        }
        #expect(faults.contains { $0.kind == .fabricLink && $0.fraction == 0.5 })
        let switchTiers = Set(
            fleets.flatMap { fleet in
                fleet.scenario.faults.compactMap { fault -> Topology.Tier? in
                    guard fault.kind == .switch, let name = SwitchName(fault.target) else { return nil }
                    return fleet.topology.tier(of: name)
                }
            })
        #expect(switchTiers == [.leaf, .spine])
        #expect(
            fleets.contains { fleet in
                (0..<fleet.scenario.windows).contains { window in
                    fleet.scenario.faults.filter { $0.start <= window && window < $0.end }.count >= 10
                }
            }, "no scenario has 10 simultaneous faults")
        #expect(
            fleets.contains {
                if case .generated(let shape) = $0.scenario.topology { return shape.nodesPerLeaf == 2 }
                return false
            }, "no scenario has leaves of 2 endpoints")
        let sizes = fleets.map { $0.topology.nodes.count }
        #expect(sizes.min() == 16)
        #expect(sizes.max() == 512)
        #expect(suiteFiles.contains("noisy-fault-free.json"))
    }

    @Test("every scenario runs through the engine, twice, with the same bytes")
    func suite() async throws {
        try #require(!suiteFiles.isEmpty, "no scenarios in \(scenariosDirectory.path)")
        // Both runs of every scenario as separate tasks, the largest fleets first, so that the
        // cores stay busy to the end.
        let sizes = try suiteFiles.map { file in
            // Planned pairs grow with endpoints and rails per node; the scenario alone says enough.
            let scenario = try Scenario(
                json: Data(contentsOf: scenariosDirectory.appendingPathComponent(file)))
            guard case .generated(let shape) = scenario.topology else { return (file, 0) }
            return (file, scenario.windows * shape.nodes * shape.rails * (shape.rails + 8))
        }
        let order = sizes.sorted { ($0.1, $1.0) > ($1.1, $0.0) }.map(\.0)
        let (outcomes, seconds) = try await withThrowingTaskGroup(
            of: (Outcome?, (String, SimulationResult)?).self
        ) {
            group in
            for file in order {
                group.addTask { (try runChecked(file), nil) }
                group.addTask { (nil, (file, try loadSimulator(file).run())) }
            }
            var outcomes: [Outcome] = []
            var seconds: [String: SimulationResult] = [:]
            for try await (outcome, second) in group {
                if let outcome { outcomes.append(outcome) }
                if let (file, result) = second { seconds[file] = result }
            }
            return (outcomes.sorted { $0.file < $1.file }, seconds)
        }
        for outcome in outcomes {
            let result = outcome.result
            let scenario = result.scenario
            let name = outcome.file
            #expect(scenario.name + ".json" == name, "a scenario's name is its file's")
            #expect(outcome.reportProblems.isEmpty, "\(name): \(outcome.reportProblems)")

            // Determinism: the same findings and the same full output, byte for byte.
            let second = try #require(seconds[name])
            #expect(findingBytes(result) == findingBytes(second), "\(name): findings differ between runs")
            #expect(result.jsonText == second.jsonText, "\(name): output differs between runs")

            // Every node reports every window, except silent agents and dead nodes while they last.
            let quietNodeWindows = (0..<scenario.windows).reduce(0) { sum, window in
                sum
                    + Set(
                        result.scorecard.faults.compactMap { outcome -> NodeName? in
                            let fault = outcome.fault
                            return fault.fault.start <= window && window < fault.fault.end
                                ? fault.silencedNode : nil
                        }
                    ).count
            }
            #expect(result.reports == scenario.windows * result.nodes - quietNodeWindows, "\(name)")
            let counters = result.counters
            #expect(counters.reportsAccepted == result.reports, "\(name)")
            #expect(
                counters.reportsLate + counters.reportsDuplicate + counters.reportsWrongWindowLength == 0,
                "\(name)")
            #expect(
                counters.pairsInvalidSketch + counters.pairsInvalidPath + counters.pairsUnknownEndpoint == 0,
                "\(name)")
            #expect(counters.windowsClosed == scenario.windows, "\(name)")

            // The score holds together.
            let card = result.scorecard
            let opened = result.findings.filter { $0.event == .opened }
            #expect(card.findings.count == opened.count, "\(name)")
            #expect(card.findings.allSatisfy { (0..<scenario.windows).contains($0.window) }, "\(name)")
            #expect(card.findings.allSatisfy { $0.isCorrect == ($0.mistake == nil) }, "\(name)")
            #expect(card.faults.map(\.fault.index) == Array(scenario.faults.indices), "\(name)")
            let total = card.score.total
            #expect(total.findings == opened.count, "\(name)")
            #expect(total.correct == card.findings.filter(\.isCorrect).count, "\(name)")
            #expect(total.faults == card.faults.filter(\.isFindable).count, "\(name)")
            #expect(
                card.score.hardDetectionTimes.count + card.score.grayDetectionTimes.count == total.detected,
                "\(name)")
            #expect(
                (card.score.hardDetectionTimes + card.score.grayDetectionTimes).allSatisfy { $0 >= 1 },
                "\(name)")

            // A silent agent is not a fault: nothing of its node may be named while it is silent.
            let neighbourhood = Neighbourhood(outcome.topology)
            for silent in card.faults where silent.fault.fault.kind == .agentSilent {
                let node = silent.fault.silencedNode!
                let named = card.findings.filter { scored in
                    silent.fault.fault.start <= scored.window
                        && scored.window < silent.fault.fault.end + Scorecard.lateWindows
                        && neighbourhood.isPart(scored.finding.component, of: .node(node))
                }
                #expect(
                    named.isEmpty,
                    "\(name): the silent agent's node was blamed: \(named.map(\.finding.jsonLine))")
            }

            if name == "noisy-fault-free.json" {
                #expect(result.findings.isEmpty, "\(name): \(result.findings.map(\.jsonLine))")
            }
            print("\n" + result.text)
        }
        let merged = Score.merged(outcomes.map(\.result.scorecard.score))
        print("\nthe whole suite (\(outcomes.count) scenarios):\n" + SimulationResult.scoreTable(merged))

        // The issue's targets, held by the suite as a whole (docs/localization.md has the figures).
        for kind in merged.kinds {
            #expect(kind.faults > 0, "the suite has no \(kind.kind) fault")
            #expect((kind.precision ?? 1) >= 0.99, "\(kind.kind): precision \(kind.precision ?? 1)")
            #expect((kind.recall ?? 0) >= 0.97, "\(kind.kind): recall \(kind.recall ?? 0)")
        }
        func median(_ values: [Int]) -> Double {
            let sorted = values.sorted()
            guard !sorted.isEmpty else { return .infinity }
            let middle = sorted.count / 2
            return sorted.count % 2 == 1 ? Double(sorted[middle]) : Double(sorted[middle - 1] + sorted[middle]) / 2
        }
        #expect(merged.hardDetectionTimes.count == merged.hardFaults, "every hard fault found")
        #expect(median(merged.hardDetectionTimes) <= 2, "hard faults: \(merged.hardDetectionTimes)")
        #expect(median(merged.grayDetectionTimes) <= 3, "gray faults: \(merged.grayDetectionTimes)")
        #expect(merged.faultFreeFindings == 0, "findings in fault-free windows")
    }
}

@Suite("emitted reports")
struct EmittedReportTests {
    @Test("the reports written as NDJSON, read back in any order, give the engine the same findings")
    func replayGivesTheSameFindings() throws {
        let simulator = try loadSimulator("endpoint-faults.json")
        var text = ""
        let result = simulator.run { _, reports in
            for report in reports { text += report.jsonLine + "\n" }
        }
        #expect(!result.findings.isEmpty)
        let parsed = try Report.parseLines(Data(text.utf8), name: "emitted", topology: simulator.topology)
        #expect(parsed.count == result.reports)
        // As a replay would: every report first (newest first here), then the windows close.
        var engine = Engine(
            topology: simulator.topology, rules: .defaults, windowSeconds: simulator.scenario.windowSeconds)
        for report in parsed.reversed() { #expect(engine.ingest(report) == .accepted) }
        let replayed = engine.finish()
        #expect(replayed.map(\.jsonLine) == result.findings.map(\.jsonLine))
    }

    @Test("a window's reports do not depend on the order nodes or windows are generated in")
    func orderIndependence() throws {
        let simulator = try loadSimulator("ten-faults.json")
        let forward = (0..<simulator.scenario.windows).map { simulator.reports(window: $0) }
        for window in (0..<simulator.scenario.windows).reversed() {
            #expect(simulator.reports(window: window) == forward[window], "window \(window)")
        }
        let effects = simulator.pairEffects(window: 5)
        let oneByOne = (0..<simulator.nodeNames.count).reversed().map {
            simulator.report(node: $0, window: 5, effects: effects)
        }
        let silent = Set(forward[5].map(\.node))
        #expect(oneByOne.reversed().filter { silent.contains($0.node) } == forward[5])
    }
}
