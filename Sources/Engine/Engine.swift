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
    public var pairsJudged = 0
    /// Reporters whose latency pairs a window left out: their own control pairs slow while their
    /// peers reached them at full speed (a stalled prober host, `noisyReporters`).
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
    private var pending: [Int64: [NodeName: Report]] = [:]
    /// The start of the next window to close once one has closed; before that, windows close from
    /// the earliest one that has reports (reports may arrive in any order until then).
    private var nextToClose: Int64?
    private var closingStarts: Int64? { nextToClose ?? pending.keys.min() }
    /// Each pair's recent healthy p50s, newest last (at most `historyLength`).
    private var pairHistory: [PairKey: [Double]] = [:]
    /// Each pair's route through the topology, as last reported: recomputing it every window was a
    /// quarter of the engine's time. One entry per pair, so it grows with pairs, not with time.
    private var pathCache: [PairKey: (route: [SwitchName]?, path: ProbePath)] = [:]
    private var tracker = FindingTracker()

    private static let historyLength = 8
    /// Windows that may be open at once: state stays bounded whatever reporters claim.
    public static let maxOpenWindows: Int64 = 64

    struct PairKey: Hashable {
        let src: EndpointID
        let dst: EndpointID
    }

    public init(topology: Topology, rules: Rules, windowSeconds: Int) {
        self.topology = topology
        self.rules = rules
        self.windowSeconds = windowSeconds
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
        let findings = advance(to: report.windowStart)
        return (findings, ingest(report))
    }

    /// Takes one validated report into its window.
    @discardableResult
    public mutating func ingest(_ report: Report) -> IngestOutcome {
        guard report.windowSeconds == windowSeconds else {
            counters.reportsWrongWindowLength += 1
            return .wrongWindowLength
        }
        guard topology.node(report.node) != nil else {
            counters.reportsUnknownNode += 1
            return .unknownNode
        }
        let start = report.windowStart.secondsSinceEpoch
        if let next = nextToClose, start < next {
            counters.reportsLate += 1
            return .late
        }
        if let first = closingStarts, start >= first + Self.maxOpenWindows * Int64(windowSeconds) {
            counters.reportsTooFarAhead += 1
            return .tooFarAhead
        }
        guard pending[start, default: [:]][report.node] == nil else {
            counters.reportsDuplicate += 1
            return .duplicate
        }
        pending[start, default: [:]][report.node] = report
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
        let reports = pending.removeValue(forKey: start) ?? [:]
        counters.windowsClosed += 1
        let observations = reports.keys.sorted().flatMap { observe(reports[$0]!) }
        let classBaselines = baselines(observations, rules: rules)
        var judged: [JudgedPair] = []
        judged.reserveCapacity(observations.count)
        for observation in observations {
            let key = PairKey(src: observation.src, dst: observation.dst)
            let own = median(pairHistory[key] ?? [])
            let verdict = judge(
                observation, baseline: classBaselines[observation.path.pathClass], ownP50: own, rules: rules)
            judged.append(verdict)
            if verdict.verdict == .healthy, let p50 = observation.p50, observation.samples >= rules.minSamples
            {
                var history = pairHistory[key] ?? []
                history.append(p50)
                if history.count > Self.historyLength { history.removeFirst() }
                pairHistory[key] = history
            }
        }
        counters.pairsJudged += judged.count

        let noisy = noisyReporters(judged, rules: rules)
        counters.noisyReporterWindows += noisy.count
        var blamed: [FindingTracker.Key: FindingTracker.Observation] = [:]
        for symptom in [Symptom.latency, .loss] {
            for blame in localize(
                judged, symptom: symptom, rules: rules, topology: topology,
                ignoredReporters: symptom == .latency ? noisy : [])
            {
                let key = FindingTracker.Key(component: blame.component, symptom: symptom)
                blamed[key] = observation(of: blame, baselines: classBaselines)
            }
        }
        for node in reports.keys.sorted() {
            for signal in healthSignals(reports[node]!, topology: topology) {
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

    /// A report's pairs as observations; pairs the engine cannot use are counted and dropped.
    private mutating func observe(_ report: Report) -> [PairObservation] {
        var result: [PairObservation] = []
        for pair in report.pairs {
            guard topology.rail(pair.dst) != nil, topology.rail(pair.src) != nil else {
                counters.pairsUnknownEndpoint += 1
                continue
            }
            let key = PairKey(src: pair.src, dst: pair.dst)
            let path: ProbePath
            if let cached = pathCache[key], cached.route == pair.path {
                path = cached.path
            } else {
                do {
                    path = try topology.path(from: pair.src, to: pair.dst, route: pair.path)
                } catch {
                    counters.pairsInvalidPath += 1
                    continue
                }
                pathCache[key] = (pair.path, path)
            }
            var quantiles: [Double]?
            if pair.sent > pair.lost {
                guard let text = pair.rttMicros, let bytes = Data(base64Encoded: text),
                    let sketch = try? QuantileSketch(decoding: bytes),
                    sketch.count == UInt64(pair.sent - pair.lost),
                    let answers = try? sketch.quantiles([0.5, 0.9, 0.99, 0.999])
                else {
                    counters.pairsInvalidSketch += 1
                    continue
                }
                quantiles = answers
            }
            result.append(
                PairObservation(
                    src: pair.src, dst: pair.dst, reporter: report.node, path: path, sent: pair.sent,
                    lost: pair.lost,
                    p50: quantiles?[0], p90: quantiles?[1], p99: quantiles?[2], p999: quantiles?[3]))
        }
        return result
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
            let ownPairs = blame.explained.contains { .node($0.observation.reporter) == blame.component }
            symptomName =
                !dead ? "loss" : blame.component.kind != "node" ? "down" : ownPairs ? "loss" : "unreachable"
        case .health: preconditionFailure("health signals are not localized")
        }
        let faultClass = "\(blame.component.kind).\(symptomName)"
        let strength = 1 - pow(0.5, Double(blame.explained.count))
        let confidence = min(1, max(0, blame.share * strength))
        func rounded(_ value: Double) -> JSONValue { .number((value * 1000).rounded() / 1000) }
        let examples = blame.explained.sorted {
            ($0.score, $0.observation.src, $0.observation.dst) > (
                $1.score, $1.observation.src, $1.observation.dst
            )
        }
        .prefix(3).map { pair -> JSONValue in
            let o = pair.observation
            var entry: [String: JSONValue] = [
                "src": .string(o.src.description), "dst": .string(o.dst.description),
                "class": .string(o.path.pathClass.rawValue), "verdict": .string(pair.verdict.rawValue),
                "sent": .number(Double(o.sent)), "lost": .number(Double(o.lost)),
            ]
            if let p50 = o.p50 { entry["p50"] = rounded(p50) }
            if let p99 = o.p99 { entry["p99"] = rounded(p99) }
            if let baseline = baselines[o.path.pathClass] {
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
