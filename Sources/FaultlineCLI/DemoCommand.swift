// `faultline demo`: until the fleet demo lands (agents on loopback, the correlator, quarantine),
// it shows the two pieces everything else rests on: probe RTTs sketched per pair and window, shipped
// as protobuf bytes and decoded at the correlator; then a simulated fleet with injected faults
// through the engine, which names the broken components.

import Engine
import Policy
import Foundation
import QuantileSketch
import Simulation

struct DemoCommand: Command {
    static let name = "demo"
    static let summary = "a window of synthetic probe RTTs through the sketch (the fleet demo is to come)"
    static let usage = "demo [--seed N] [--samples N]"
    static let help = """
        Generates one window of round-trip times for a few probe pairs (a healthy loopback, intra-host
        and cross-leaf pair, and a cross-leaf pair through a congested link), sketches each pair as an
        agent would, encodes and decodes the sketch as the correlator would, and prints each pair's
        quantiles beside the exact ones, the bytes on the wire, and the fleet view merged from all pairs.

        options:
          --seed N       seed of the synthetic data (default 1)
          --samples N    probes per pair in the window (default 2000, at most 10000000)
        """

    /// The pairs of the demo window: what a healthy fabric and one bad link look like.
    static let pairs: [(name: String, distribution: LatencyDistribution)] = [
        ("gpu-a001/0 -> gpu-a001/0  loopback", .lognormal(median: 2.1, sigma: 0.05)),
        ("gpu-a001/0 -> gpu-a001/3  intra-host", .lognormal(median: 3.4, sigma: 0.08)),
        ("gpu-a001/0 -> gpu-b007/0  cross-leaf", .lognormal(median: 6.8, sigma: 0.12)),
        (
            "gpu-a001/1 -> gpu-b007/1  congested link",
            .bimodal(fast: 6.9, slow: 48, fastShare: 0.9, sigma: 0.15)
        ),
    ]

    let seed: UInt64
    let samples: Int

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["seed", "samples"])
        seed = UInt64(try options.integer("seed", default: 1, in: 0...Int.max))
        samples = try options.integer("samples", default: 2000, in: 1...10_000_000)
    }

    func run(io: some CommandIO) throws(CommandError) {
        let quantiles = [0.5, 0.99, 0.999]
        io.write("One \(samples)-probe window per pair; RTTs in µs; sketch answer (exact answer).\n\n")
        io.write(
            "pair".padding(toLength: 42) + quantiles.map { "p\(label($0))".padding(toLength: 20) }.joined()
                + "wire bytes\n")
        do {
            var fleet = try QuantileSketch()
            var worstError = 0.0
            for (index, pair) in Self.pairs.enumerated() {
                let rtts = pair.distribution.samples(samples, seed: seed &+ UInt64(index))
                var agentSketch = try QuantileSketch()
                try agentSketch.add(contentsOf: rtts)
                let wire = agentSketch.encoded()
                let received = try QuantileSketch(decoding: wire)
                try fleet.merge(received)
                let sorted = rtts.sorted()
                let answers = try received.quantiles(quantiles) ?? []
                var row = pair.name.padding(toLength: 42)
                for (q, answer) in zip(quantiles, answers) {
                    let exact = exactLowerQuantile(sorted, q)
                    worstError = max(worstError, abs(answer - exact) / exact)
                    row += "\(format(answer)) (\(format(exact)))".padding(toLength: 20)
                }
                io.write(row + "\(wire.count)\n")
            }
            let fleetAnswers = try fleet.quantiles(quantiles) ?? []
            io.write(
                "fleet view (merged)".padding(toLength: 42)
                    + fleetAnswers.map { format($0).padding(toLength: 20) }.joined()
                    + "\(fleet.encoded().count)\n")
            io.write(
                "\nworst relative error \(format(worstError * 100))% (guarantee: \(format(fleet.relativeAccuracy * 100))%)\n"
            )
        } catch {
            throw CommandError.data(error.description)
        }
        try runFleet(io: io)
        io.write(
            """

            This is the sketch, the engine and the remediation policy on a simulated fleet. The full
            demo (agents on loopback addresses, the correlator service, quarantines as they happen) is
            still to come.

            """)
    }

    /// A 16-node fleet with three injected faults, window by window through the engine.
    static let fleetScenario = """
        {"name": "demo", "seed": 7,
         "topology": {"nodes": 16, "rails": 4, "nodesPerLeaf": 4, "spines": 2},
         "windowSeconds": 10, "windows": 10, "probesPerPair": 20,
         "noise": {"pairOffsetSigma": 0.1, "spikeProbability": 0.002, "spikeFactor": 5,
                   "hostNoise": {"probability": 0.005, "factor": 3, "share": 0.3}, "backgroundLoss": 0.0001},
         "faults": [
           {"kind": "endpoint", "target": "gpu-0005/2", "effect": "dead", "start": 2, "end": 10},
           {"kind": "accessLink", "target": "gpu-0009/1~leaf-s2-r1", "effect": "lossy", "loss": 0.05, "start": 2, "end": 10},
           {"kind": "fabricLink", "target": "leaf-s1-r3~spine-01", "effect": "slow", "factor": 3, "start": 3, "end": 10}
         ]}
        """

    private func runFleet(io: some CommandIO) throws(CommandError) {
        io.write("\nA simulated fleet: 16 nodes × 4 rails, 10 windows of 10 s, three faults injected.\n\n")
        let result: SimulationResult
        let simulator: FleetSimulator
        do {
            let scenario = try Scenario(json: Data(Self.fleetScenario.utf8))
            simulator = try FleetSimulator(scenario: scenario, topology: scenario.loadTopology(relativeTo: nil))
            result = simulator.run()
        } catch {
            throw CommandError.data("the demo scenario: \(error)")
        }
        io.write(result.text)
        // What the remediation policy decides on the same reports (the default rules; dry-run).
        let reports = (0..<simulator.scenario.windows).flatMap { simulator.reports(window: $0) }
        let replayed = Replay.run(reports, topology: simulator.topology, rules: .defaults)
        let cap = Policy(topology: simulator.topology, settings: Rules.defaults.policy).quarantineCap
        io.write("\nremediation decisions (dry-run; the default guards let \(cap) node(s) of this fleet out at once):\n")
        for decision in replayed.decisions { io.write("  " + decision.textLine + "\n") }
    }

    private func label(_ q: Double) -> String {
        let text = "\(q * 100)"
        return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
    }

    private func format(_ value: Double) -> String {
        let scaled = (value * 100).rounded() / 100
        return "\(scaled)"
    }
}
