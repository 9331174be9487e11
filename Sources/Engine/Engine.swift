// The correlator's engine: reports in, findings out. Pure and deterministic: time is an input (the
// window ticks), nothing reads a clock or a file, and every output is in a sorted order, so the live
// service and replay give the same bytes for the same reports.

import FleetModel
import Foundation
import QuantileSketch

/// What happened to one ingested report.
public enum IngestOutcome: String, Sendable {
    case accepted
    /// Its window had already closed: counted, not applied.
    case late
    /// The node already reported this window: the first report stands.
    case duplicate
    /// Its window length differs from the engine's.
    case wrongWindowLength
    /// Its node is not in the topology.
    case unknownNode
    /// Its window is more than `Engine.maxOpenWindows` past the oldest open one.
    case tooFarAhead
}

/// Everything the engine counted rather than applied; exported on /metrics by the service.
public struct EngineCounters: Sendable, Equatable {
    public var reportsAccepted = 0
    public var reportsLate = 0
    public var reportsDuplicate = 0
    public var reportsWrongWindowLength = 0
    public var reportsUnknownNode = 0
    /// Reports for a window too far past the oldest open one (a clock gone wrong, or a flood).
    public var reportsTooFarAhead = 0
    /// Pairs toward an endpoint the topology does not know.
    public var pairsUnknownEndpoint = 0
    /// Pairs whose `path` disagrees with the topology.
    public var pairsInvalidPath = 0
    /// Pairs whose sketch did not decode, or whose count disagreed with `sent - lost`.
    public var pairsInvalidSketch = 0
    /// Pairs a report listed again (the same source and destination): the first one counts.
    public var pairsRepeated = 0
    public var pairsJudged = 0
    /// Reporters whose latency pairs a window left out: their own control pairs slow while their
    /// peers reached them at full speed (a stalled prober host, `StalledProbers`).
    public var noisyReporterWindows = 0
    public var windowsClosed = 0

    public init() {}
}

public struct Engine: Sendable {
    public let topology: Topology
    public let rules: Rules
    public let windowSeconds: Int
    public private(set) var counters = EngineCounters()

    /// Reports of windows not yet closed, by window start (seconds) and node.
    private var pending: [Int64: [NodeName: MeasuredReport]] = [:]
    /// The start of the next window to close once one has closed; before that, windows close from
    /// the earliest one that has reports (reports may arrive in any order until then).
    private var nextToClose: Int64?
    private var closingStarts: Int64? { nextToClose ?? pending.keys.min() }
    /// What the engine keeps of each node's pairs: their routes and their recent healthy p50s.
    private var nodePairs: [NodeName: NodePairs] = [:]
    private let table: ComponentTable
    private var tracker = FindingTracker()
    /// Reads the sketches of reports ingested unmeasured: every pair's p50 and p99, what pairs are
    /// judged on (the component API shows a pair's p90 and p99.9 too, from the stored report).
    private var sketchReader = PairSketchReader()
    /// Where compact sketches are expanded for the rollups (`WireSketch.withProtobufBytes`).
    private var sketchScratch: [UInt8] = []
    /// The closing window's arrays, kept from one window to the next: a window of a large fleet has
    /// millions of pairs, and fresh arrays every time cost more in page faults than the work does.
    private var buffers = WindowBuffers()

    /// Windows that may be open at once: state stays bounded whatever reporters claim.
    public static let maxOpenWindows: Int64 = 64

    /// When set, every window from this one on keeps its judged pairs in `captured` as it closes
    /// (`faultline explain` and the replay's timeline; the service never sets it). With
    /// `captureUnhealthyOnly`, only the pairs judged slow, lossy or dead.
    public var captureFrom: Timestamp?
    public var captureUnhealthyOnly = false
    public private(set) var captured: [(window: Timestamp, verdicts: [PairVerdict])] = []

    /// When set, every window keeps its rollup (latency and loss by path class and by leaf pair) in
    /// `rollups` as it closes: the service stores them for the weekly report. Made of the pairs
    /// the window judges, as they are read.
    public var rollUp = false
    public private(set) var rollups: [WindowRollup] = []
    private let emptyRollup: WindowRollup.Builder
    /// For an endpoint's component number, its leaf's place in `emptyRollup.leaves`; -1 otherwise.
    private let leafPlaceOf: [Int32]

    /// Hands over the rollups made so far and forgets them.
    public mutating func takeRollups() -> [WindowRollup] {
        defer { rollups = [] }
        return rollups
    }

    /// Hands over what was captured so far and forgets it (a long replay keeps only the unread).
    public mutating func takeCaptured() -> [(window: Timestamp, verdicts: [PairVerdict])] {
        defer { captured = [] }
        return captured
    }

    public init(topology: Topology, rules: Rules, windowSeconds: Int) {
        self.topology = topology
        self.rules = rules
        self.windowSeconds = windowSeconds
        self.table = ComponentTable(topology: topology)
        emptyRollup = WindowRollup.Builder(topology: topology)
        let place = Dictionary(uniqueKeysWithValues: (emptyRollup.leaves ?? []).enumerated().map { ($1, Int32($0)) })
        leafPlaceOf = table.components.map { component in
            guard case .endpoint(let endpoint) = component, let rail = topology.rail(endpoint) else { return -1 }
            return place[rail.leaf] ?? -1
        }
    }

    /// Components with an open finding and its class, sorted.
    public var openFindings: [(component: Component, faultClass: String)] {
        tracker.openFindings.map { ($0.key.component, $0.faultClass) }
    }

    /// The start of the next window `advance` will close: the earliest window with reports until one
    /// has closed, nil before any report. Windows from an earlier value up to a later one have closed.
    public var nextWindowToClose: Timestamp? { closingStarts.map { Timestamp(secondsSinceEpoch: $0) } }

    /// One step of a replay over reports in (window, node) order: windows close once a report of a
    /// window past their grace period arrives, as they would live; then the report is ingested.
    /// `faultline replay` and the service's rebuild from its store both use this.
    public mutating func replay(_ report: Report) -> (findings: [Finding], outcome: IngestOutcome) {
        replay(MeasuredReport(report, reader: &sketchReader))
    }

    /// `replay` of a report whose sketches were read already (on another thread).
    public mutating func replay(_ measured: MeasuredReport) -> (findings: [Finding], outcome: IngestOutcome) {
        let findings = advance(to: measured.windowStart)
        return (findings, ingest(measured))
    }

    /// Takes one validated report into its window.
    @discardableResult
    public mutating func ingest(_ report: Report) -> IngestOutcome {
        ingest(MeasuredReport(report, reader: &sketchReader))
    }

    /// Takes one validated report, its sketches read already, into its window. A report whose
    /// sketches were not kept cannot feed rollups (`rollUp`).
    @discardableResult
    public mutating func ingest(_ measured: MeasuredReport) -> IngestOutcome {
        precondition(!rollUp || measured.keepsSketches, "rollups are made of sketches: keep them in the report")
        guard measured.windowSeconds == windowSeconds else {
            counters.reportsWrongWindowLength += 1
            return .wrongWindowLength
        }
        guard topology.node(measured.node) != nil else {
            counters.reportsUnknownNode += 1
            return .unknownNode
        }
        let start = measured.windowStart.secondsSinceEpoch
        if let next = nextToClose, start < next {
            counters.reportsLate += 1
            return .late
        }
        if let first = closingStarts, start >= first + Self.maxOpenWindows * Int64(windowSeconds) {
            counters.reportsTooFarAhead += 1
            return .tooFarAhead
        }
        guard pending[start, default: [:]][measured.node] == nil else {
            counters.reportsDuplicate += 1
            return .duplicate
        }
        pending[start, default: [:]][measured.node] = measured
        counters.reportsAccepted += 1
        return .accepted
    }

    /// Closes every window whose end plus the grace period is at or before `now`, oldest first, and
    /// returns the findings they caused. Windows without any report close too (silence is evidence).
    public mutating func advance(to now: Timestamp) -> [Finding] {
        guard var next = closingStarts else { return [] }
        let length = Int64(windowSeconds)
        var events: [Finding] = []
        while next + length * Int64(1 + rules.graceWindows) <= now.secondsSinceEpoch {
            events += closeWindow(start: next)
            next += length
            nextToClose = next
        }
        return events
    }

    /// Closes every window that has reports (the end of a replay).
    public mutating func finish() -> [Finding] {
        guard let last = pending.keys.max() else { return [] }
        return advance(
            to: Timestamp(secondsSinceEpoch: last + Int64(windowSeconds) * Int64(1 + rules.graceWindows)))
    }

    private mutating func closeWindow(start: Int64) -> [Finding] {
        var reportOfNode = pending.removeValue(forKey: start) ?? [:]
        counters.windowsClosed += 1
        // The reports in node order, moved out of the dictionary rather than copied (each copy of
        // a report counts references to its fields); each node's pairs in its report's order,
        // with where its state keeps them.
        let nodes = reportOfNode.keys.sorted()
        let reports = nodes.map { reportOfNode.removeValue(forKey: $0)! }
        var rollup = rollUp ? emptyRollup : nil
        var states = nodes.map { nodePairs.removeValue(forKey: $0) ?? NodePairs() }
        var window = WindowBuffers()
        swap(&window, &buffers)  // uniquely referenced while in use: no copy on write
        defer {
            window.removeAll()
            swap(&window, &buffers)
        }
        for n in nodes.indices {
            observe(reports[n], state: &states[n], into: &window, node: Int32(n), rollup: &rollup)
        }
        if let rollup { rollups.append(rollup.finish(window: Timestamp(secondsSinceEpoch: start))) }
        let classBaselines = baselines(p50s: &window.classP50s, p99s: &window.classP99s)
        // By class ordinal: a dictionary keyed by class would hash its name for each pair.
        var baselineOfClass = [ClassBaseline?](repeating: nil, count: PathClass.allCases.count)
        var rulesOfClass = [PathClassRules](repeating: rules.pathClasses[.loopback]!, count: PathClass.allCases.count)
        for pathClass in PathClass.allCases {
            baselineOfClass[pathClass.ordinal] = classBaselines[pathClass]
            rulesOfClass[pathClass.ordinal] = rules.pathClasses[pathClass]!  // Rules has every class
        }
        // Node by node (the pairs are in node order), each state borrowed once.
        var stalledProbers = StalledProbers(table: table)
        var index = 0
        for node in states.indices {
            let owned = window.owners[index...].prefix { $0.node == Int32(node) }.count
            judgeNode(
                &window.judged, index..<(index + owned), owners: window.owners, state: &states[node],
                baselines: baselineOfClass, rulesOfClass: rulesOfClass, stalledProbers: &stalledProbers)
            index += owned
        }
        for (n, node) in nodes.enumerated() { nodePairs[node] = states[n] }
        counters.pairsJudged += window.judged.count
        if let captureFrom, start >= captureFrom.secondsSinceEpoch {
            let kept = captureUnhealthyOnly
                ? window.judged.filter { $0.verdict != .healthy && $0.verdict != .unjudged } : window.judged
            let verdicts = kept.map { judged in
                let observation = judged.observation
                let baseline = classBaselines[observation.pathClass]
                guard case .endpoint(let src) = table.components[Int(observation.srcNumber)],
                    case .endpoint(let dst) = table.components[Int(observation.dstNumber)]
                else { preconditionFailure("a pair's ends are endpoints") }
                return PairVerdict(
                    src: src, dst: dst, pathClass: observation.pathClass, verdict: judged.verdict.rawValue,
                    sent: Int(observation.sent), lost: Int(observation.lost), p50: observation.p50,
                    p99: observation.p99, classP50: baseline?.medianP50, classP99: baseline?.medianP99)
            }
            captured.append((Timestamp(secondsSinceEpoch: start), verdicts))
        }

        let stalled = stalledProbers.nodes(rules: rules)
        counters.noisyReporterWindows += stalled.count
        var blamed: [FindingTracker.Key: FindingTracker.Observation] = [:]
        for blame in localize(
            window.judged, routes: window.routes, rules: rules, topology: topology, table: table, stalledProbers: stalled)
        {
            let key = FindingTracker.Key(component: blame.component, symptom: blame.symptom)
            blamed[key] = observation(of: blame, baselines: classBaselines)
        }
        for n in reports.indices where !reports[n].health.isEmpty {  // by index: no copy of the report
            for signal in healthSignals(node: reports[n].node, health: reports[n].health, topology: topology) {
                let key = FindingTracker.Key(component: .endpoint(signal.endpoint), symptom: .health)
                // One health finding per endpoint per window: the first class in sorted order.
                if blamed[key] == nil {
                    blamed[key] = FindingTracker.Observation(
                        faultClass: signal.faultClass, isHard: true, confidence: 1, evidence: signal.evidence)
                }
            }
        }
        return tracker.advance(
            window: Timestamp(secondsSinceEpoch: start), observations: blamed, rules: rules)
    }

    /// Judges one node's pairs (`range` of `pairs`, observed and not yet judged) in place against
    /// the baselines and their own history, remembers the healthy ones' p50s, and tallies the
    /// verdicts for the stalled probers.
    private func judgeNode(
        _ pairs: inout [JudgedPair], _ range: Range<Int>, owners: [(node: Int32, entry: Int32)],
        state: inout NodePairs, baselines: [ClassBaseline?], rulesOfClass: [PathClassRules],
        stalledProbers: inout StalledProbers
    ) {
        for index in range {
            let observation = pairs[index].observation
            let entry = Int(owners[index].entry)
            let verdict = judge(
                observation, baseline: baselines[observation.pathClass.ordinal],
                classRules: rulesOfClass[observation.pathClass.ordinal],
                ownLowestP50: { state.historyMinimum(entry) }, ownP50: { state.historyMedian(entry) },
                rules: rules)
            pairs[index] = verdict
            stalledProbers.add(verdict, rules: rules)
            if verdict.verdict == .healthy, let p50 = observation.p50, observation.samples >= rules.minSamples {
                state.remember(p50, entry)
            }
        }
    }

    /// A report's pairs as observations, appended unjudged with their places in the node's state; pairs
    /// the engine cannot use are counted and dropped.
    private mutating func observe(
        _ measured: MeasuredReport, state: inout NodePairs, into window: inout WindowBuffers, node: Int32,
        rollup: inout WindowRollup.Builder?
    ) {
        let measures = measured.measures
        // Compact sketches (a replay's, from the store) expand for the rollup into one buffer,
        // swapped out of `self` while it is lent to them.
        var scratch: [UInt8] = []
        swap(&scratch, &sketchScratch)
        defer { swap(&scratch, &sketchScratch) }
        if !state.isResolved(for: measured.roster) { state.rebuild(for: measured.roster, topology: topology, table: table) }
        let reporterNumber = table.number(.node(measured.node))!  // ingest checked the node
        // The node's routes go into the window's route array in one piece, in entry order: a
        // pair's route lies where its entry's does, past `routeBase` (a dropped pair's is unused).
        let routeBase = window.routes.count
        window.routes += state.components
        /// An endpoint's leaf's place in the rollup.
        func leafPlace(_ endpoint: Int32) -> Int { Int(leafPlaceOf[Int(endpoint)]) }
        for entry in measures.indices {
            let sent = measures[entry].sent
            let lost = measures[entry].lost
            let resolved = state.entries[entry]
            switch resolved.problem {
            case .unknownEndpoint?:
                counters.pairsUnknownEndpoint += 1
                continue
            case .invalidPath?:
                counters.pairsInvalidPath += 1
                continue
            case .repeated?:
                counters.pairsRepeated += 1
                continue
            case nil: break
            }
            var quantiles: (p50: Double, p99: Double)?
            if sent > lost {
                let reading = measures[entry].sketch
                guard reading.isValid, reading.count == UInt64(sent - lost) else {
                    counters.pairsInvalidSketch += 1
                    continue
                }
                if rollup != nil {
                    _ = measured.sketches?[entry]?.withProtobufBytes(scratch: &scratch) { buffer in
                        rollup?.add(
                            pathClass: resolved.pathClass, srcLeaf: leafPlace(resolved.srcNumber),
                            dstLeaf: leafPlace(resolved.dstNumber), sent: sent, lost: lost, sketch: buffer)
                    }
                }
                quantiles = (reading.p50, reading.p99)
                // What the class's baselines are the medians of: the pairs with enough samples.
                if sent - lost >= rules.minSamples {
                    window.classP50s[resolved.pathClass.ordinal].append(reading.p50)
                    window.classP99s[resolved.pathClass.ordinal].append(reading.p99)
                }
            } else {
                // (Optional chaining: the leaves are looked up only for a rollup.)
                rollup?.add(
                    pathClass: resolved.pathClass, srcLeaf: leafPlace(resolved.srcNumber),
                    dstLeaf: leafPlace(resolved.dstNumber), sent: sent, lost: lost, sketch: nil)
            }
            let routeStart = Int32(routeBase + resolved.components.lowerBound)
            let observation = PairObservation(
                pathClass: resolved.pathClass, routeStart: routeStart, routeCount: UInt8(resolved.components.count),
                srcNumber: resolved.srcNumber, dstNumber: resolved.dstNumber, reporterNumber: reporterNumber,
                dstNodeNumber: resolved.dstNodeNumber, sent: Int32(sent), lost: Int32(lost), p50: quantiles?.p50,
                p99: quantiles?.p99)
            window.judged.append(JudgedPair(observation: observation, verdict: .unjudged, score: 0))
            window.owners.append((node, Int32(entry)))
        }
    }

    /// The finding a blame would make: its class, confidence and evidence.
    private func observation(
        of blame: Blame, baselines: [PathClass: ClassBaseline]
    ) -> FindingTracker.Observation {
        let dead = blame.explained.allSatisfy { $0.verdict == .dead }
        let symptomName: String
        switch blame.symptom {
        case .latency: symptomName = "degraded"
        case .loss:
            // A node is unreachable when others cannot reach it; dead pairs it reports itself
            // say it has lost its way out, which is loss from where it stands.
            let ownPairs = blame.explained.contains { table.components[Int($0.observation.reporterNumber)] == blame.component }
            symptomName =
                !dead ? "loss" : blame.component.kind != "node" ? "down" : ownPairs ? "loss" : "unreachable"
        case .health: preconditionFailure("health signals are not localized")
        }
        let faultClass = "\(blame.component.kind).\(symptomName)"
        let strength = 1 - pow(0.5, Double(blame.explained.count))
        let confidence = min(1, max(0, blame.share * strength))
        func rounded(_ value: Double) -> JSONValue { .number((value * 1000).rounded() / 1000) }
        // Endpoint numbers sort as the endpoints do (ComponentTable).
        let examples = blame.explained.sorted {
            ($0.score, $0.observation.srcNumber, $0.observation.dstNumber) > (
                $1.score, $1.observation.srcNumber, $1.observation.dstNumber
            )
        }
        .prefix(3).map { pair -> JSONValue in
            let o = pair.observation
            var entry: [String: JSONValue] = [
                "src": .string(table.components[Int(o.srcNumber)].description),
                "dst": .string(table.components[Int(o.dstNumber)].description),
                "class": .string(o.pathClass.rawValue), "verdict": .string(pair.verdict.rawValue),
                "sent": .number(Double(o.sent)), "lost": .number(Double(o.lost)),
            ]
            if let p50 = o.p50 { entry["p50"] = rounded(p50) }
            if let p99 = o.p99 { entry["p99"] = rounded(p99) }
            if let baseline = baselines[o.pathClass] {
                entry["classP50"] = rounded(baseline.medianP50)
                entry["classP99"] = rounded(baseline.medianP99)
            }
            return .object(entry)
        }
        var evidence: [String: JSONValue] = [
            "symptom": .string(blame.symptom.rawValue), "badPairs": .number(Double(blame.badPairs)),
            "healthyPairs": .number(Double(blame.healthyPairs)),
            "explainedPairs": .number(Double(blame.explained.count)),
            "reporters": .number(Double(blame.reporters)), "badShare": rounded(blame.share),
            "examples": .array(examples),
        ]
        if !blame.ambiguousWith.isEmpty {
            evidence["ambiguousWith"] = .array(blame.ambiguousWith.map { .string($0.description) })
        }
        return FindingTracker.Observation(
            faultClass: faultClass, isHard: blame.symptom == .loss && dead, confidence: confidence,
            evidence: evidence)
    }
}

/// A pair as the engine judged it in one window: its verdict (healthy, slow, lossy, dead,
/// unjudged) against its class's baseline (the medians of the class's p50s and p99s).
public struct PairVerdict: Sendable, Equatable {
    public let src: EndpointID
    public let dst: EndpointID
    public let pathClass: PathClass
    public let verdict: String
    public let sent: Int
    public let lost: Int
    public let p50: Double?
    public let p99: Double?
    public let classP50: Double?
    public let classP99: Double?
}

/// The arrays of the window being closed, in pair order.
private struct WindowBuffers {
    /// The window's pairs: appended as observed (unjudged), then judged in place once the baselines
    /// are known (one array, not one of observations and one of their verdicts: each is written
    /// and read again in the cache lines it already has).
    var judged: [JudgedPair] = []
    /// Each pair's node (its place in the window's sorted nodes) and entry in that node's state.
    var owners: [(node: Int32, entry: Int32)] = []
    /// The component numbers of every node's routes, node after node (NodePairs.components).
    var routes: [Int32] = []
    /// The p50s and p99s the baselines are the medians of, one array per path class (by ordinal).
    var classP50s = [[Double]](repeating: [], count: PathClass.allCases.count)
    var classP99s = [[Double]](repeating: [], count: PathClass.allCases.count)

    mutating func removeAll() {
        judged.removeAll(keepingCapacity: true)
        owners.removeAll(keepingCapacity: true)
        routes.removeAll(keepingCapacity: true)
        for ordinal in classP50s.indices {
            classP50s[ordinal].removeAll(keepingCapacity: true)
            classP99s[ordinal].removeAll(keepingCapacity: true)
        }
    }
}
