// `faultline explain` (docs/replay.md): why a component was or was not blamed at a time. The engine
// replays the store's reports up to that window (as live ran it) and keeps the verdicts of the last
// windows: the probed pairs through the component with their verdicts against the class baselines,
// its share of bad pairs and localization score beside the components blamed, the hysteresis over
// the last windows; with its findings and the policy's decisions about its node as recorded.

import Engine
import FleetModel
import Foundation
import Store

struct ExplainCommand: Command {
    static let name = "explain"
    static let summary = "why a component was or was not blamed at a time, from the store"
    static let usage = "explain COMPONENT --db FILE --at T [--json]"
    static let help = """
        COMPONENT is an endpoint (gpu-0002/3), a node (gpu-0002), a link (gpu-0002/3~leaf-s1-r3,
        leaf-s1-r3~spine-00) or a switch. T (RFC 3339 UTC) picks the window that contains it. From
        the store, with the topology and rules recorded as in force at T:

          - its findings: open at T or not, and their recent events with confidence;
          - every probed pair through it in that window: its class, sent and lost, p50/p99 against
            the class baseline, and the verdict the engine gave it (slow, lossy, dead, healthy);
          - its share of bad pairs and its localization score (bad pairs times the share, squared
            for latency), against the rules' minimum share, beside the components blamed then;
          - the hysteresis: bad or clean in each of the last windows, against the windows a finding
            needs to open and to close;
          - the remediation policy's decisions about its node up to T (guards, approvals).

        options:
          --db FILE   the service's store
          --at T      the time to explain
          --json      one JSON object instead of text
        """

    let target: String
    let path: String
    let at: Timestamp
    let json: Bool

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["db", "at"], flags: ["json"], positionals: 1)
        guard let first = options.positionals.first else { throw CommandError.usage("give the component to explain") }
        target = first
        path = try options.required("db")
        guard let time = try options.timestamp("at") else { throw CommandError.usage("--at is required") }
        at = time
        json = options.flag("json")
    }

    func run(io: some CommandIO) throws(CommandError) {
        try requireExistingFile(path)
        let explanation = try withStoreErrors { () throws -> Explanation in
            let store = try Store(path: path, mode: .readOnly, migrate: false)
            guard let record = try store.configuration(.topology, at: at) else {
                throw CommandError.data("\(path): no topology recorded at \(at)")
            }
            let topology = try Topology(json: Data(record.text.utf8))
            let rules = try store.configuration(.rules, at: at).map {
                try RulesParser.parse($0.text, file: "recorded rules \($0.sha256.prefix(12))")
            } ?? .defaults
            guard let component = Self.component(target, in: topology) else {
                throw CommandError.data("'\(target)' is not an endpoint, node, link or switch of the topology recorded at \(at)")
            }
            return try Explanation(component: component, at: at, store: store, topology: topology, rules: rules)
        }
        io.write(json ? explanation.json.jsonText + "\n" : explanation.text)
    }

    /// The topology's component named `text`.
    static func component(_ text: String, in topology: Topology) -> Component? {
        if text.contains("~") {
            guard let id = LinkID(text), topology.link(id) != nil else { return nil }
            return .link(id)
        }
        if text.contains("/") {
            guard let id = EndpointID(text), topology.rail(id) != nil else { return nil }
            return .endpoint(id)
        }
        if let node = NodeName(text), topology.node(node) != nil { return .node(node) }
        if let name = SwitchName(text), topology.switches.contains(where: { $0.name == name }) { return .switch(name) }
        return nil
    }
}

/// What `explain` found, for text and JSON alike.
struct Explanation {
    struct Pair {
        var src: EndpointID
        var dst: EndpointID
        var pathClass: PathClass
        var sent: Int
        var lost: Int
        var verdict: String
        var p50: Double?
        var p99: Double?
        var baselineP50: Double?
        var baselineP99: Double?
    }

    /// A window's pairs through the component, counted as the localizer counts them for each
    /// symptom: bad (latency: slow; loss: lossy, dead or any probe lost) and judged (bad, or
    /// healthy for the symptom: enough samples and not slow; enough probes and none lost).
    struct Tally {
        var window: Timestamp
        var latency = (bad: 0, judged: 0)
        var loss = (bad: 0, judged: 0)

        mutating func add(_ verdict: PairVerdict, rules: Rules) {
            let samples = verdict.sent - verdict.lost
            if verdict.verdict == "slow" {
                latency.bad += 1
                latency.judged += 1
            } else if samples >= rules.minSamples {
                latency.judged += 1
            }
            if verdict.verdict == "lossy" || verdict.verdict == "dead" || verdict.lost > 0 {
                loss.bad += 1
                loss.judged += 1
            } else if verdict.sent >= rules.minProbesForDead {
                loss.judged += 1
            }
        }

        static func share(_ counts: (bad: Int, judged: Int)) -> Double {
            counts.judged == 0 ? 0 : Double(counts.bad) / Double(counts.judged)
        }

        /// The localizer's greedy score: bad pairs times the share (squared for latency).
        var latencyScore: Double { Double(latency.bad) * Self.share(latency) * Self.share(latency) }
        var lossScore: Double { Double(loss.bad) * Self.share(loss) }
        /// The symptom with the higher score.
        var worst: (symptom: String, bad: Int, judged: Int, share: Double, score: Double) {
            latencyScore > lossScore
                ? ("latency", latency.bad, latency.judged, Self.share(latency), latencyScore)
                : ("loss", loss.bad, loss.judged, Self.share(loss), lossScore)
        }
    }

    let component: Component
    let window: Timestamp
    let windowSeconds: Int64
    let pairs: [Pair]
    let tallies: [Tally]
    let rules: Rules
    let findings: [Finding]
    let blamedThen: [Finding]
    let decisions: [String]

    init(component: Component, at: Timestamp, store: Store, topology: Topology, rules: Rules) throws {
        self.component = component
        self.rules = rules
        windowSeconds =
            try store.database.singleInt(
                "SELECT window_seconds FROM reports WHERE window_start <= ? ORDER BY window_start DESC LIMIT 1",
                [.integer(at.secondsSinceEpoch)]) ?? 10
        let start = at.secondsSinceEpoch - ((at.secondsSinceEpoch % windowSeconds) + windowSeconds) % windowSeconds
        window = Timestamp(secondsSinceEpoch: start)
        let lookback = max(rules.hardFault.lookbackWindows, rules.grayFault.lookbackWindows, 1)
        let firstWindow = window.adding(seconds: -Int64(lookback - 1) * windowSeconds)
        // The engine over every stored report up to the window's end, as live ran it, keeping the
        // verdicts of the last windows.
        var engine = Engine(topology: topology, rules: rules, windowSeconds: Int(windowSeconds))
        engine.captureFrom = firstWindow
        var reader = StoredReportReader()
        try store.forEachMeasuredReport(to: window.adding(seconds: windowSeconds), reader: &reader) { _ = engine.replay($0) }
        _ = engine.finish()
        var tallies: [Tally] = []
        var pairs: [Pair] = []
        for (windowStart, verdicts) in engine.captured where windowStart <= window {
            var tally = Tally(window: windowStart)
            for verdict in verdicts {
                guard let path = try? topology.path(from: verdict.src, to: verdict.dst),
                    Self.crosses(path, pair: (verdict.src, verdict.dst), component: component)
                else { continue }
                tally.add(verdict, rules: rules)
                if windowStart == window {
                    pairs.append(
                        Pair(
                            src: verdict.src, dst: verdict.dst, pathClass: verdict.pathClass, sent: verdict.sent,
                            lost: verdict.lost, verdict: verdict.verdict, p50: verdict.p50, p99: verdict.p99,
                            baselineP50: verdict.classP50, baselineP99: verdict.classP99))
                }
            }
            tallies.append(tally)
        }
        // Bad pairs first, then by name.
        self.pairs = pairs.sorted { ($0.verdict == "healthy" ? 1 : 0, $0.src, $0.dst) < ($1.verdict == "healthy" ? 1 : 0, $1.src, $1.dst) }
        self.tallies = tallies
        let events = try store.findingEvents(to: window.adding(seconds: windowSeconds))
        findings = events.filter { $0.component == component }
        // The findings open at the window's end, of any component: who was blamed instead, or too.
        var open: [String: Finding] = [:]
        for event in events {
            let key = "\(event.component) \(event.faultClass)"
            if event.event == .closed { open[key] = nil } else { open[key] = event }
        }
        blamedThen = open.values.sorted { ($0.component, $0.faultClass) < ($1.component, $1.faultClass) }
        let node: NodeName? =
            switch component {
            case .endpoint(let id): id.node
            case .node(let name): name
            case .link(let id): topology.link(id).flatMap { link in
                [link.a, link.b].compactMap { end -> NodeName? in
                    if case .endpoint(let endpoint) = end { return endpoint.node }
                    return nil
                }.first }
            case .switch: nil
            }
        var decisions: [String] = []
        if let node {
            // By the decision's own window (an entry is written when its window closes, later).
            for entry in try store.auditEntries() {
                guard let object = try? JSONSerialization.jsonObject(with: Data(entry.entry.utf8)) as? [String: Any],
                    let decision = object["decision"] as? [String: Any], decision["node"] as? String == node.rawValue,
                    let time = (decision["time"] as? String).flatMap(Timestamp.init(rfc3339:)), time <= window,
                    ["decision", "intent", "outcome"].contains(object["event"] as? String ?? "")
                else { continue }
                let outcome = (object["outcome"] as? String).map { " -> \($0)" } ?? ""
                decisions.append(
                    "\(decision["time"] as? String ?? "")  \(object["event"] as? String ?? "")  "
                        + "\(decision["decision"] as? String ?? "")  \(decision["reason"] as? String ?? "")\(outcome)")
            }
        }
        self.decisions = Array(decisions.suffix(10))
    }

    /// Whether a pair's probes cross the component (for a node: any pair of its endpoints; for a
    /// cross-leaf pair without a route: any spine ECMP may have chosen).
    static func crosses(_ path: ProbePath, pair: (src: EndpointID, dst: EndpointID), component: Component) -> Bool {
        if case .node(let node) = component { return pair.src.node == node || pair.dst.node == node }
        if path.components.contains(component) { return true }
        return path.spineChoices.contains { choice in
            component == .switch(choice.spine) || choice.links.contains { component == .link($0) }
        }
    }

    private var current: Tally { tallies.last ?? Tally(window: window) }

    private var openFinding: Finding? {
        guard let last = findings.last, last.event != .closed else { return nil }
        return last
    }

    var text: String {
        func micros(_ value: Double?) -> String { value.map { String(format: "%.1f", $0) } ?? "-" }
        var out = "\(component) (\(component.kind)) at \(window) (window of \(windowSeconds) s)\n\n"
        if let open = openFinding {
            out += "Blamed: \(open.faultClass) open (confidence \(String(format: "%.2f", open.confidence)), last event \(open.event.rawValue) at \(open.window)).\n"
        } else {
            out += "Not blamed: no finding on it open at the end of this window.\n"
        }
        for event in findings.suffix(6) {
            out += "  \(event.window)  \(event.event.rawValue)  \(event.faultClass)  confidence \(String(format: "%.2f", event.confidence))\n"
        }
        let worst = current.worst
        out += "\nIts pairs in this window: \(pairs.count); for \(worst.symptom), \(worst.bad) bad of \(worst.judged) judged "
        out += "(share \(String(format: "%.2f", worst.share)); a component is blamed from a share of "
        out += "\(String(format: "%.2f", rules.minBadShare)) on). Latency: \(current.latency.bad) of \(current.latency.judged); "
        out += "loss: \(current.loss.bad) of \(current.loss.judged).\n"
        for pair in pairs.prefix(20) {
            out += "  \(pair.src) -> \(pair.dst)  \(pair.pathClass.rawValue)  \(pair.verdict)  sent \(pair.sent) lost \(pair.lost)"
            if pair.p50 != nil || pair.baselineP50 != nil {
                out += "  p50/p99 \(micros(pair.p50))/\(micros(pair.p99)) µs vs class \(micros(pair.baselineP50))/\(micros(pair.baselineP99))"
            }
            out += "\n"
        }
        if pairs.count > 20 { out += "  ... and \(pairs.count - 20) more\n" }
        out += "\nLocalization score: \(String(format: "%.2f", worst.score)) (\(worst.symptom): bad pairs x share\(worst.symptom == "latency" ? " squared" : "")).\n"
        let others = blamedThen.filter { $0.component != component }
        if others.isEmpty {
            out += "No other component was blamed at the end of this window.\n"
        } else {
            out += "Blamed at the end of this window:\n"
            for finding in others {
                let bad = finding.evidence["badPairs"].map(\.jsonText) ?? "-"
                let share = finding.evidence["badShare"].map(\.jsonText) ?? "-"
                out += "  \(finding.component)  \(finding.faultClass)  confidence \(String(format: "%.2f", finding.confidence))  bad pairs \(bad), share \(share)\n"
            }
        }
        out += "\nHysteresis (hard faults open after \(rules.hardFault.openWindows), gray after \(rules.grayFault.openWindows) bad windows in \(rules.grayFault.lookbackWindows); close after \(rules.grayFault.closeAfterClean) clean):\n"
        for tally in tallies {
            let worst = tally.worst
            let state = worst.bad == 0 ? "clean" : worst.share >= rules.minBadShare ? "bad" : "below the share"
            out += "  \(tally.window)  \(state)  (\(worst.symptom): \(worst.bad) of \(worst.judged) pairs)\n"
        }
        if !decisions.isEmpty {
            out += "\nRemediation of its node up to then:\n"
            for line in decisions { out += "  \(line)\n" }
        }
        return out
    }

    var json: JSONValue {
        func number(_ value: Double?) -> JSONValue { value.map { .number(($0 * 1000).rounded() / 1000) } ?? .null }
        return .object([
            "component": .string(component.description), "kind": .string(component.kind),
            "window": .string(window.description), "windowSeconds": .number(Double(windowSeconds)),
            "blamed": .bool(openFinding != nil),
            "findings": .array(
                findings.suffix(6).map {
                    .object([
                        "window": .string($0.window.description), "event": .string($0.event.rawValue),
                        "class": .string($0.faultClass), "confidence": number($0.confidence),
                    ])
                }),
            "pairs": .array(
                pairs.map { pair in
                    .object([
                        "src": .string(pair.src.description), "dst": .string(pair.dst.description),
                        "class": .string(pair.pathClass.rawValue), "verdict": .string(pair.verdict),
                        "sent": .number(Double(pair.sent)), "lost": .number(Double(pair.lost)),
                        "p50": number(pair.p50), "p99": number(pair.p99),
                        "classP50": number(pair.baselineP50), "classP99": number(pair.baselineP99),
                    ])
                }),
            "symptom": .string(current.worst.symptom),
            "badPairs": .number(Double(current.worst.bad)), "judgedPairs": .number(Double(current.worst.judged)),
            "badShare": number(current.worst.share), "minBadShare": number(rules.minBadShare),
            "score": number(current.worst.score),
            "blamedThen": .array(
                blamedThen.filter { $0.component != component }.map {
                    .object([
                        "component": .string($0.component.description), "class": .string($0.faultClass),
                        "confidence": number($0.confidence),
                    ])
                }),
            "hysteresis": .array(
                tallies.map {
                    .object([
                        "window": .string($0.window.description), "symptom": .string($0.worst.symptom),
                        "bad": .number(Double($0.worst.bad)), "judged": .number(Double($0.worst.judged)),
                    ])
                }),
            "decisions": .array(decisions.map { .string($0) }),
        ])
    }
}
