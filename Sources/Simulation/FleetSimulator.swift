// The fleet simulator: turns a scenario into the probe reports its agents would send, window by
// window (sketches through the real codec), and runs them through the engine. Every node-window's
// randomness comes from streams derived from the seed, the window and the pair, so the reports do
// not depend on the order anything is generated in. See docs/simulator.md.

import Engine
import FleetModel
import Foundation
import QuantileSketch

/// A scenario's fault resolved against the topology.
public struct InjectedFault: Sendable, Equatable {
    /// Its position in the scenario's `faults`.
    public let index: Int
    public let fault: Scenario.Fault
    /// The component a finding must name; nil for a silent agent (nothing to find).
    public let component: Component?
    /// The node a silent agent or a dead node stops reporting for.
    public let silencedNode: NodeName?

    /// Dead: every probe through it lost. Slow and lossy faults are gray.
    public var isHard: Bool { fault.effect == .dead }

    /// `fabricLink leaf-s0-r1~spine-01 slow ×3 (50% of flows)`.
    public var label: String {
        var text = "\(fault.kind.rawValue) \(component?.description ?? fault.target)"
        switch fault.effect {
        case .slow: text += " slow ×\(shortNumber(fault.factor))"
        case .lossy: text += " lossy \(shortNumber(fault.loss * 100))%"
        case .dead: text += " dead"
        case nil: break
        }
        if fault.fraction < 1 { text += " (\(shortNumber(fault.fraction * 100))% of flows)" }
        return text
    }
}

/// What one run of a scenario gave: the findings stream, the engine's counters and the score.
public struct SimulationResult: Sendable {
    public let scenario: Scenario
    public let nodes: Int
    public let endpoints: Int
    public let plannedPairs: Int
    public let reports: Int
    public let findings: [Finding]
    public let counters: EngineCounters
    public let scorecard: Scorecard
}

public struct FleetSimulator: Sendable {
    public let scenario: Scenario
    public let topology: Topology
    public let pinglist: Pinglist
    public let faults: [InjectedFault]

    /// One planned pair with everything a window needs to sample it.
    struct SimulatedPair: Sendable {
        let src: EndpointID
        let dst: EndpointID
        let route: [SwitchName]?
        let isLocal: Bool
        /// The pair's healthy median (its class's, times its lasting offset) and spread.
        let median: Double
        let sigma: Double
        /// The seed of its per-window streams.
        let seed: UInt64
    }

    /// What the active faults do to one pair in one window.
    struct PairEffect: Sendable {
        var factor = 1.0
        /// The chance a probe survives the faults (background loss aside).
        var survival = 1.0
        var dead = false
    }

    /// Nodes sorted by name; a node's index is its place here.
    let nodeNames: [NodeName]
    /// The planned pairs, grouped by the source's node in `nodeNames` order.
    let pairs: [SimulatedPair]
    let nodePairs: [Range<Int>]
    /// Per fault: the indexes in `pairs` it affects.
    let affectedPairs: [[Int]]
    /// Per fault: the node (index) that stops reporting, if any.
    let silencedNodes: [Int?]

    public init(scenario: Scenario, topology: Topology) throws(ScenarioError) {
        self.scenario = scenario
        self.topology = topology
        pinglist = topology.pinglist(scenario.pinglist)

        var endpointIndex: [EndpointID: UInt64] = [:]
        for (i, endpoint) in topology.endpoints.sorted().enumerated() { endpointIndex[endpoint] = UInt64(i) }
        nodeNames = topology.nodes.map(\.name).sorted()
        var nodeIndex: [NodeName: Int] = [:]
        for (i, name) in nodeNames.enumerated() { nodeIndex[name] = i }

        var pairs: [SimulatedPair] = []
        var components: [[Component]] = []
        var nodePairs: [Range<Int>] = []
        pairs.reserveCapacity(pinglist.pairs.count)
        for name in nodeNames {
            let first = pairs.count
            for planned in pinglist.pairs(from: name) {
                let route = topology.route(of: planned)
                let path: ProbePath
                do {
                    path = try topology.path(from: planned.src, to: planned.dst, route: route)
                } catch {
                    throw ScenarioError(
                        "pinglist", "planned pair \(planned) does not fit the topology: \(error)")
                }
                let noise = scenario.noise.rtt[path.pathClass]!
                let pairSeed = mix(scenario.seed, endpointIndex[planned.src]!, endpointIndex[planned.dst]!)
                var offsetStream = SeededGenerator(seed: mix(pairSeed, 0x6f66_6673_6574))  // "offset"
                let offset = exp(
                    scenario.noise.pairOffsetSigma * LatencyDistribution.standardNormal(using: &offsetStream))
                pairs.append(
                    SimulatedPair(
                        src: planned.src, dst: planned.dst, route: route,
                        isLocal: path.pathClass == .loopback || path.pathClass == .intraHost,
                        median: noise.median * offset, sigma: noise.sigma, seed: pairSeed))
                var crossed = path.components
                if !path.spineChoices.isEmpty {
                    // A cross-leaf pair planned without a spine: ECMP hashes it onto one. The probes
                    // cross it (the truth), but the report cannot say which (no `path`).
                    var chooser = SeededGenerator(seed: mix(pairSeed, 0x6563_6d70))  // "ecmp"
                    let choice = path.spineChoices[Int(chooser.next() % UInt64(path.spineChoices.count))]
                    crossed += [.switch(choice.spine)] + choice.links.map { .link($0) }
                }
                components.append(crossed)
            }
            nodePairs.append(first..<pairs.count)
        }

        var faults: [InjectedFault] = []
        var affected: [[Int]] = []
        var silenced: [Int?] = []
        for (i, fault) in scenario.faults.enumerated() {
            let resolved = try Self.resolve(fault, index: i, topology: topology)
            faults.append(resolved)
            silenced.append(resolved.silencedNode.map { nodeIndex[$0]! })
            var members: [Int] = []
            if resolved.fault.kind != .agentSilent {
                for (p, pair) in pairs.enumerated() {
                    let touches: Bool
                    switch resolved.component! {
                    case .node(let name): touches = pair.src.node == name || pair.dst.node == name
                    default: touches = components[p].contains(resolved.component!)
                    }
                    guard touches else { continue }
                    if fault.fraction < 1 {
                        var chooser = SeededGenerator(seed: mix(pair.seed, 0x6672_6163, UInt64(i)))  // "frac"
                        guard chooser.nextUnit() < fault.fraction else { continue }
                    }
                    members.append(p)
                }
            }
            affected.append(members)
        }
        self.pairs = pairs
        self.nodePairs = nodePairs
        self.faults = faults
        self.affectedPairs = affected
        self.silencedNodes = silenced
    }

    /// The start of window `window` (0-based).
    public func windowStart(_ window: Int) -> Timestamp {
        scenario.start.adding(seconds: Int64(window) * Int64(scenario.windowSeconds))
    }

    /// The reports of one window, sorted by node: every node except the silent and the dead.
    public func reports(window: Int) -> [Report] {
        let effects = pairEffects(window: window)
        var quiet = Set<Int>()
        for (fault, node) in zip(faults, silencedNodes) where node != nil && isActive(fault, window) {
            quiet.insert(node!)
        }
        return nodeNames.indices.compactMap { node in
            quiet.contains(node) ? nil : report(node: node, window: window, effects: effects)
        }
    }

    /// Simulates every window, feeding each window's reports to the engine as a correlator would
    /// (ingest, then a tick past the window's end plus the grace), and scores the findings.
    /// `onWindow` sees each window's reports (for `--emit`).
    public func run(
        rules: Rules = .defaults, onWindow: (_ window: Int, _ reports: [Report]) -> Void = { _, _ in }
    ) -> SimulationResult {
        var engine = Engine(topology: topology, rules: rules, windowSeconds: scenario.windowSeconds)
        var findings: [Finding] = []
        var reportCount = 0
        let closeDelay = Int64(scenario.windowSeconds) * Int64(1 + rules.graceWindows)
        for window in 0..<scenario.windows {
            let reports = reports(window: window)
            onWindow(window, reports)
            reportCount += reports.count
            for report in reports { engine.ingest(report) }
            findings += engine.advance(to: windowStart(window).adding(seconds: closeDelay))
        }
        findings += engine.finish()
        let scorecard = Scorecard(
            findings: findings, faults: faults, topology: topology, start: scenario.start,
            windowSeconds: scenario.windowSeconds, windows: scenario.windows)
        return SimulationResult(
            scenario: scenario, nodes: topology.nodes.count, endpoints: topology.endpointCount,
            plannedPairs: pairs.count, reports: reportCount, findings: findings, counters: engine.counters,
            scorecard: scorecard)
    }

    // MARK: Windows

    private func isActive(_ fault: InjectedFault, _ window: Int) -> Bool {
        fault.fault.start <= window && window < fault.fault.end
    }

    /// The combined effect of the window's active faults on each pair they touch.
    func pairEffects(window: Int) -> [Int: PairEffect] {
        var effects: [Int: PairEffect] = [:]
        for (fault, members) in zip(faults, affectedPairs) where isActive(fault, window) {
            for p in members {
                var effect = effects[p] ?? PairEffect()
                switch fault.fault.effect {
                case .slow: effect.factor *= fault.fault.factor
                case .lossy: effect.survival *= 1 - fault.fault.loss
                case .dead: effect.dead = true
                case nil: break
                }
                effects[p] = effect
            }
        }
        return effects
    }

    /// One node's report, built as its agent would: per planned pair, the probes' fate and a sketch
    /// of the RTTs of those that returned.
    func report(node: Int, window: Int, effects: [Int: PairEffect]) -> Report {
        let noise = scenario.noise
        // 0x686f_7374 is "host": the stream of the node's host noise, apart from its pairs'.
        var hostStream = SeededGenerator(seed: mix(scenario.seed, 0x686f_7374, UInt64(node), UInt64(window)))
        let noisy = noise.hostNoise.probability > 0 && hostStream.nextUnit() < noise.hostNoise.probability
        var reportPairs: [Report.Pair] = []
        reportPairs.reserveCapacity(nodePairs[node].count)
        var rtts: [Double] = []
        for p in nodePairs[node] {
            let pair = pairs[p]
            let probes = pair.isLocal ? scenario.probesPerLocalPair : scenario.probesPerPair
            let effect = effects[p] ?? PairEffect()
            if effect.dead {
                reportPairs.append(
                    Report.Pair(
                        src: pair.src, dst: pair.dst, sent: probes, lost: probes, rttMicros: nil,
                        path: pair.route))
                continue
            }
            let lossChance = 1 - (1 - noise.backgroundLoss) * effect.survival
            var stream = SeededGenerator(seed: mix(pair.seed, UInt64(window)))
            rtts.removeAll(keepingCapacity: true)
            var lost = 0
            var spareNormal: Double?
            for _ in 0..<probes {
                // Which draws a probe takes depends on the scenario's noise alone, never on the
                // faults, so that a fault changes only what it touches and not the noise after it.
                let lossDraw = stream.nextUnit()
                let spikeDraw = stream.nextUnit()
                let normal: Double
                if let spare = spareNormal {
                    normal = spare
                    spareNormal = nil
                } else {
                    let normals = normalPair(&stream)
                    normal = normals.0
                    spareNormal = normals.1
                }
                var noiseFactor = 1.0
                if spikeDraw < noise.spikeProbability {
                    // Pareto with shape 2 and scale spikeFactor, capped.
                    noiseFactor = min(
                        noise.spikeFactor / (1 - stream.nextUnit()).squareRoot(), 20 * noise.spikeFactor)
                }
                if noisy && stream.nextUnit() < noise.hostNoise.share {
                    noiseFactor *= noise.hostNoise.factor
                }
                if lossDraw < lossChance {
                    lost += 1
                    continue
                }
                rtts.append(pair.median * exp(pair.sigma * normal) * noiseFactor * effect.factor)
            }
            var sketchBytes: WireSketch?
            if !rtts.isEmpty {
                do {
                    var sketch = try QuantileSketch()
                    try sketch.add(contentsOf: rtts)
                    sketchBytes = .bytes(sketch.encoded())
                } catch {
                    preconditionFailure("simulated RTTs are finite and positive: \(error)")
                }
            }
            reportPairs.append(
                Report.Pair(
                    src: pair.src, dst: pair.dst, sent: probes, lost: lost, rttMicros: sketchBytes,
                    path: pair.route))
        }
        return Report(
            node: nodeNames[node], windowStart: windowStart(window), windowSeconds: scenario.windowSeconds,
            agentVersion: "faultline-simulate", transport: .verbsRC, pairs: reportPairs)
    }

    // MARK: Faults

    private static func resolve(
        _ fault: Scenario.Fault, index: Int, topology: Topology
    ) throws(ScenarioError) -> InjectedFault {
        let field = "faults[\(index)].target"
        let target = fault.target
        func node() throws(ScenarioError) -> NodeName {
            guard let name = NodeName(target), topology.node(name) != nil else {
                throw ScenarioError(field, "no node '\(target)'")
            }
            return name
        }
        func link(fabric: Bool) throws(ScenarioError) -> LinkID {
            guard let id = LinkID(target), let link = topology.links.first(where: { $0.id == id }) else {
                throw ScenarioError(field, "no link '\(target)'")
            }
            let isFabric: Bool
            switch (link.a, link.b) {
            case (.switch, .switch): isFabric = true
            default: isFabric = false
            }
            guard isFabric == fabric else {
                throw ScenarioError(
                    field,
                    "'\(target)' is \(isFabric ? "a leaf–spine" : "an endpoint's access") link, not \(fabric ? "a leaf–spine" : "an access") link"
                )
            }
            return id
        }
        let component: Component?
        var silenced: NodeName?
        switch fault.kind {
        case .endpoint:
            guard let endpoint = EndpointID(target), topology.rail(endpoint) != nil else {
                throw ScenarioError(field, "no endpoint '\(target)'")
            }
            component = .endpoint(endpoint)
        case .accessLink:
            if let endpoint = EndpointID(target), let id = topology.accessLink(of: endpoint) {
                component = .link(id)
            } else {
                component = .link(try link(fabric: false))
            }
        case .fabricLink:
            component = .link(try link(fabric: true))
        case .switch:
            guard let name = SwitchName(target), topology.tier(of: name) != nil else {
                throw ScenarioError(field, "no switch '\(target)'")
            }
            component = .switch(name)
        case .node:
            let name = try node()
            component = .node(name)
            if fault.effect == .dead { silenced = name }
        case .agentSilent:
            component = nil
            silenced = try node()
        }
        return InjectedFault(index: index, fault: fault, component: component, silencedNode: silenced)
    }
}

/// SplitMix64's finalizer over the values in turn: a well-spread seed from a few numbers.
func mix(_ values: UInt64...) -> UInt64 {
    var state: UInt64 = 0x5EED_F417_11E5_0001
    for value in values {
        state = (state ^ value) &+ 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        state = z ^ (z >> 31)
    }
    return state
}

/// Two independent standard normals from two uniforms (Box–Muller).
func normalPair(_ generator: inout SeededGenerator) -> (Double, Double) {
    let radius = (-2 * log(1 - generator.nextUnit())).squareRoot()  // 1 - u is in (0, 1]
    let angle = 2 * Double.pi * generator.nextUnit()
    return (radius * cos(angle), radius * sin(angle))
}

/// A number without a needless `.0`, rounded to at most 3 decimals.
func shortNumber(_ value: Double) -> String {
    let rounded = (value * 1000).rounded() / 1000
    if rounded == rounded.rounded(), abs(rounded) < 1e15 { return String(Int64(rounded)) }
    return "\(rounded)"
}
