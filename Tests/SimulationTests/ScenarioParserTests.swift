// The scenario parser: a full scenario reads back as written, defaults fill what is left out, and
// every kind of mistake is rejected with the field path that names it, including fault targets
// that the topology does not have.

import FleetModel
import Foundation
import Testing

@testable import Simulation

private func parse(_ text: String) throws(ScenarioError) -> Scenario {
    try Scenario(json: Data(text.utf8))
}

/// A valid scenario with `extra` spliced into its top-level object (e.g. `"faults": [...]`).
private func scenario(_ extra: String = "") -> String {
    """
    {"name": "t", "seed": 7, "topology": {"nodes": 8, "rails": 2, "nodesPerLeaf": 4, "spines": 2},
     "windows": 10\(extra.isEmpty ? "" : ", " + extra)}
    """
}

/// The field path of the error `text` is rejected with (nil when it is accepted), topology checks
/// included.
private func rejection(_ text: String) -> String? {
    do {
        let scenario = try parse(text)
        _ = try FleetSimulator(scenario: scenario, topology: scenario.loadTopology(relativeTo: nil))
        return nil
    } catch {
        return error.field
    }
}

@Suite("scenario parser")
struct ScenarioParserTests {
    @Test("a full scenario reads back as written")
    func fullScenario() throws {
        let scenario = try parse(
            """
            {"name": "full", "seed": 42, "topology": {"nodes": 8, "rails": 2, "nodesPerLeaf": 4, "spines": 2},
             "start": "2026-01-01T00:00:00Z", "windowSeconds": 5, "windows": 12, "probesPerPair": 30,
             "probesPerLocalPair": 60,
             "pinglist": {"sameLeafPeers": 2, "linkCoverage": 4, "maxCrossLeafPerEndpoint": 6, "seed": 9},
             "noise": {"rtt": {"loopback": {"median": 1.5}, "cross-leaf": {"median": 9, "sigma": 0.2}},
                       "pairOffsetSigma": 0.2, "spikeProbability": 0.01, "spikeFactor": 8,
                       "hostNoise": {"probability": 0.05, "factor": 4, "share": 0.5}, "backgroundLoss": 0.001},
             "faults": [
               {"kind": "endpoint", "target": "gpu-0001/1", "effect": "slow", "factor": 3, "start": 2, "end": 6},
               {"kind": "fabricLink", "target": "leaf-s0-r0~spine-01", "effect": "lossy", "loss": 0.05,
                "fraction": 0.5, "start": 4},
               {"kind": "agentSilent", "target": "gpu-0003", "start": 1, "end": 3}
             ]}
            """)
        #expect(scenario.name == "full")
        #expect(scenario.seed == 42)
        #expect(scenario.topology == .generated(.init(nodes: 8, rails: 2, nodesPerLeaf: 4, spines: 2)))
        #expect(scenario.start == Timestamp(rfc3339: "2026-01-01T00:00:00Z"))
        #expect(scenario.windowSeconds == 5)
        #expect(scenario.windows == 12)
        #expect(scenario.probesPerPair == 30)
        #expect(scenario.probesPerLocalPair == 60)
        #expect(
            scenario.pinglist
                == PinglistOptions(sameLeafPeers: 2, linkCoverage: 4, maxCrossLeafPerEndpoint: 6, seed: 9))
        #expect(scenario.noise.rtt[.loopback] == Scenario.PathNoise(median: 1.5, sigma: 0.05))
        #expect(scenario.noise.rtt[.crossLeaf] == Scenario.PathNoise(median: 9, sigma: 0.2))
        #expect(scenario.noise.rtt[.sameLeaf] == Scenario.Noise.defaults.rtt[.sameLeaf])
        #expect(scenario.noise.hostNoise == Scenario.HostNoise(probability: 0.05, factor: 4, share: 0.5))
        #expect(scenario.noise.backgroundLoss == 0.001)
        #expect(
            scenario.faults == [
                Scenario.Fault(
                    kind: .endpoint, target: "gpu-0001/1", effect: .slow, factor: 3, start: 2, end: 6),
                Scenario.Fault(
                    kind: .fabricLink, target: "leaf-s0-r0~spine-01", effect: .lossy, loss: 0.05,
                    fraction: 0.5,
                    start: 4, end: 12),
                Scenario.Fault(kind: .agentSilent, target: "gpu-0003", effect: nil, start: 1, end: 3),
            ])
    }

    @Test("defaults fill what is left out")
    func defaults() throws {
        let scenario = try parse(scenario())
        #expect(scenario.windowSeconds == 10)
        #expect(scenario.probesPerPair == 20)
        #expect(scenario.probesPerLocalPair == 20)
        #expect(scenario.start == Scenario.defaultStart)
        #expect(scenario.pinglist == PinglistOptions(seed: 7))
        #expect(scenario.noise == .defaults)
        #expect(scenario.faults.isEmpty)
    }

    @Test("fault targets resolve to the components findings must name")
    func targetsResolve() throws {
        let scenario = try parse(
            scenario(
                """
                "faults": [
                  {"kind": "endpoint", "target": "gpu-0001/1", "effect": "dead", "start": 0},
                  {"kind": "accessLink", "target": "gpu-0002/0", "effect": "slow", "factor": 2, "start": 0},
                  {"kind": "accessLink", "target": "gpu-0002/1~leaf-s0-r1", "effect": "slow", "factor": 2, "start": 0},
                  {"kind": "fabricLink", "target": "leaf-s1-r0~spine-00", "effect": "dead", "start": 0},
                  {"kind": "switch", "target": "spine-01", "effect": "lossy", "loss": 0.1, "start": 0},
                  {"kind": "node", "target": "gpu-0005", "effect": "dead", "start": 0},
                  {"kind": "agentSilent", "target": "gpu-0006", "start": 0}
                ]
                """))
        let simulator = try FleetSimulator(
            scenario: scenario, topology: scenario.loadTopology(relativeTo: nil))
        #expect(
            simulator.faults.map { $0.component?.description }
                == [
                    "gpu-0001/1", "gpu-0002/0~leaf-s0-r0", "gpu-0002/1~leaf-s0-r1", "leaf-s1-r0~spine-00",
                    "spine-01",
                    "gpu-0005", nil,
                ])
        #expect(
            simulator.faults.map { $0.silencedNode?.description } == [
                nil, nil, nil, nil, nil, "gpu-0005", "gpu-0006",
            ])
        #expect(simulator.faults.map(\.isHard) == [true, false, false, true, false, true, false])
    }

    @Test(
        "mistakes are rejected with the field path",
        arguments: [
            ("{", ""),
            ("[]", ""),
            (
                #"{"seed": 1, "topology": {"nodes": 1, "rails": 1, "nodesPerLeaf": 1, "spines": 1}, "windows": 1}"#,
                "name"
            ),
            (#"{"name": 3}"#, "name"),
            (scenario().replacingOccurrences(of: #""seed": 7"#, with: #""seed": -1"#), "seed"),
            (scenario().replacingOccurrences(of: #""seed": 7"#, with: #""seed": 1.5"#), "seed"),
            (scenario().replacingOccurrences(of: #""windows": 10"#, with: #""windows": 0"#), "windows"),
            (scenario().replacingOccurrences(of: #""nodes": 8"#, with: #""nodes": "8""#), "topology.nodes"),
            (scenario().replacingOccurrences(of: #""rails": 2"#, with: #""rails": 65"#), "topology.rails"),
            (scenario().replacingOccurrences(of: #", "spines": 2"#, with: ""), "topology.spines"),
            (
                scenario(#""topology": 5"#).replacingOccurrences(of: #""topology": {"#, with: #""x": {"#),
                "topology"
            ),
            (scenario(#""windowSeconds": 0"#), "windowSeconds"),
            (scenario(#""windowSeconds": 7"#), "start"),
            (scenario(#""start": "yesterday""#), "start"),
            (scenario(#""probesPerPair": 0"#), "probesPerPair"),
            (scenario(#""probesPerLocalPair": 1e9"#), "probesPerLocalPair"),
            (scenario(#""colour": "blue""#), "colour"),
            (scenario(#""pinglist": {"sameLeafPeers": -1}"#), "pinglist.sameLeafPeers"),
            (scenario(#""pinglist": {"crossRailFallback": 1}"#), "pinglist.crossRailFallback"),
            (scenario(#""noise": {"rtt": {"loopback": {"median": 0}}}"#), "noise.rtt.loopback.median"),
            (scenario(#""noise": {"rtt": {"cross-leaf": {"sigma": -1}}}"#), "noise.rtt.cross-leaf.sigma"),
            (scenario(#""noise": {"rtt": {"crossLeaf": {"median": 5}}}"#), "noise.rtt.crossLeaf"),
            (scenario(#""noise": {"spikeProbability": 2}"#), "noise.spikeProbability"),
            (scenario(#""noise": {"spikeFactor": 0.5}"#), "noise.spikeFactor"),
            (scenario(#""noise": {"hostNoise": {"factor": 0}}"#), "noise.hostNoise.factor"),
            (scenario(#""noise": {"hostNoise": {"share": 1.5}}"#), "noise.hostNoise.share"),
            (scenario(#""noise": {"backgroundLoss": 1}"#), "noise.backgroundLoss"),
            (scenario(#""noise": {"jitter": 1}"#), "noise.jitter"),
            (scenario(#""faults": {}"#), "faults"),
            (scenario(#""faults": [{"kind": "cable", "target": "x", "start": 0}]"#), "faults[0].kind"),
            (
                scenario(#""faults": [{"kind": "endpoint", "effect": "dead", "start": 0}]"#),
                "faults[0].target"
            ),
            (
                scenario(#""faults": [{"kind": "endpoint", "target": "gpu-0001/1", "start": 0}]"#),
                "faults[0].effect"
            ),
            (
                scenario(
                    #""faults": [{"kind": "endpoint", "target": "gpu-0001/1", "effect": "broken", "start": 0}]"#
                ),
                "faults[0].effect"
            ),
            (
                scenario(
                    #""faults": [{"kind": "endpoint", "target": "gpu-0001/1", "effect": "slow", "start": 0}]"#
                ),
                "faults[0].factor"
            ),
            (
                scenario(
                    #""faults": [{"kind": "endpoint", "target": "gpu-0001/1", "effect": "slow", "factor": 1, "start": 0}]"#
                ),
                "faults[0].factor"
            ),
            (
                scenario(
                    #""faults": [{"kind": "endpoint", "target": "gpu-0001/1", "effect": "lossy", "start": 0}]"#
                ),
                "faults[0].loss"
            ),
            (
                scenario(
                    #""faults": [{"kind": "endpoint", "target": "gpu-0001/1", "effect": "dead", "loss": 0.1, "start": 0}]"#
                ),
                "faults[0].loss"
            ),
            (
                scenario(
                    #""faults": [{"kind": "endpoint", "target": "gpu-0001/1", "effect": "dead", "factor": 2, "start": 0}]"#
                ),
                "faults[0].factor"
            ),
            (
                scenario(
                    #""faults": [{"kind": "switch", "target": "spine-00", "effect": "dead", "fraction": 0, "start": 0}]"#
                ),
                "faults[0].fraction"
            ),
            (
                scenario(
                    #""faults": [{"kind": "node", "target": "gpu-0001", "effect": "dead", "fraction": 0.5, "start": 0}]"#
                ),
                "faults[0].fraction"
            ),
            (
                scenario(
                    #""faults": [{"kind": "agentSilent", "target": "gpu-0001", "effect": "dead", "start": 0}]"#
                ),
                "faults[0].effect"
            ),
            (
                scenario(#""faults": [{"kind": "node", "target": "gpu-0001", "effect": "dead"}]"#),
                "faults[0].start"
            ),
            (
                scenario(
                    #""faults": [{"kind": "node", "target": "gpu-0001", "effect": "dead", "start": 10}]"#),
                "faults[0].start"
            ),
            (
                scenario(
                    #""faults": [{"kind": "node", "target": "gpu-0001", "effect": "dead", "start": 3, "end": 3}]"#
                ),
                "faults[0].end"
            ),
            (
                scenario(
                    #""faults": [{"kind": "node", "target": "gpu-0001", "effect": "dead", "start": 3, "end": 11}]"#
                ),
                "faults[0].end"
            ),
            (
                scenario(
                    #""faults": [{"kind": "node", "target": "gpu-0001", "effect": "dead", "start": 0, "when": 1}]"#
                ),
                "faults[0].when"
            ),
            // Targets the topology does not have, or of the wrong kind.
            (
                scenario(
                    #""faults": [{"kind": "node", "target": "gpu-0001", "effect": "dead", "start": 0}, {"kind": "endpoint", "target": "gpu-0001/2", "effect": "dead", "start": 0}]"#
                ),
                "faults[1].target"
            ),
            (
                scenario(
                    #""faults": [{"kind": "node", "target": "gpu-0099", "effect": "dead", "start": 0}]"#),
                "faults[0].target"
            ),
            (
                scenario(#""faults": [{"kind": "agentSilent", "target": "leaf-s0-r0", "start": 0}]"#),
                "faults[0].target"
            ),
            (
                scenario(
                    #""faults": [{"kind": "switch", "target": "spine-09", "effect": "dead", "start": 0}]"#),
                "faults[0].target"
            ),
            (
                scenario(
                    #""faults": [{"kind": "fabricLink", "target": "gpu-0001/0~leaf-s0-r0", "effect": "dead", "start": 0}]"#
                ),
                "faults[0].target"
            ),
            (
                scenario(
                    #""faults": [{"kind": "accessLink", "target": "leaf-s0-r0~spine-00", "effect": "dead", "start": 0}]"#
                ),
                "faults[0].target"
            ),
        ])
    func rejected(text: String, field: String) {
        #expect(rejection(text) == field, "\(text)")
    }

    @Test("a topology file is read relative to the scenario's folder, and its errors are named")
    func topologyFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "faultline-scenario-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let topology = try Topology.railOptimized(.init(nodes: 4, rails: 2, nodesPerLeaf: 2, spines: 2))
        try topology.jsonData().write(to: directory.appendingPathComponent("fabric.json"))
        try Data(#"{"version": 2, "nodes": [], "switches": [], "links": []}"#.utf8).write(
            to: directory.appendingPathComponent("bad.json"))

        let good = try parse(#"{"name": "f", "seed": 1, "topology": {"file": "fabric.json"}, "windows": 2}"#)
        #expect(good.topology == .file("fabric.json"))
        #expect(try good.loadTopology(relativeTo: directory).endpointCount == 8)

        let missing = try parse(#"{"name": "f", "seed": 1, "topology": {"file": "none.json"}, "windows": 2}"#)
        #expect(throws: ScenarioError.self) { try missing.loadTopology(relativeTo: directory) }
        let bad = try parse(#"{"name": "f", "seed": 1, "topology": {"file": "bad.json"}, "windows": 2}"#)
        do {
            _ = try bad.loadTopology(relativeTo: directory)
            Issue.record("an invalid topology file was accepted")
        } catch {
            #expect(error.field == "topology.file")
            #expect(error.reason.contains("version"))
        }
        #expect(
            rejection(#"{"name": "f", "seed": 1, "topology": {"file": "x.json", "nodes": 3}, "windows": 2}"#)
                == "topology.nodes")
    }
}
