// The weekly fleet health report's figures, built from a store: summary, latency per path class
// against the week before, leaf × leaf p99 and loss (the week and its worst hour), top and repeat
// offenders, findings still open, the quarantine log. Pure over what the store returns: the same
// store and period give the same report, whatever the machine. Rendered by ReportRendering.swift.

import Engine
import FleetModel
import Foundation
import Policy
import QuantileSketch
import Store

public struct WeeklyReport: Sendable {
    public var period: Period
    /// The latency series' step: an hour for a week, shorter for a short period (at least 10 s).
    public var bucketSeconds: Int64
    public var summary: Summary
    /// By path class, in class order.
    public var latency: [ClassLatency]
    public var heatmaps: LeafHeatmaps
    public var topOffenders: [Offender]
    public var repeatOffenders: [RepeatOffender]
    public var openAtEnd: [OpenFinding]
    public var quarantines: [QuarantineEntry]
    /// What the reader should know about the data: gaps, a missing week before, caps applied.
    public var notes: [String]

    public struct Period: Sendable, Equatable {
        public var from: Timestamp
        public var to: Timestamp
        /// `2026-W47` for an ISO week, else `FROM – TO`.
        public var label: String
    }

    public struct Summary: Sendable {
        public var nodes: Int
        public var endpoints: Int
        /// Endpoint-hours not under a finding that takes the endpoint out, over all endpoint-hours
        /// of the period the store has windows for; nil without data.
        public var availability: Double?
        public var unhealthyEndpointHours: Double
        /// Findings opened in the period, by kind and by class (sorted by name).
        public var findingsByKind: [(name: String, count: Int)]
        public var findingsByClass: [(name: String, count: Int)]
        public var findingsOpened: Int
        public var quarantines: Int
        public var quarantinesFailed: Int
        public var releases: Int
        /// Mean seconds from a fault's estimated start to the close of the window that opened its
        /// finding; nil without findings.
        public var meanTimeToDetect: Double?
        /// Mean seconds from quarantine to release, over quarantines released in the period.
        public var meanTimeToRelease: Double?
        /// Reports that arrived over those expected (every node, every window of the covered span).
        public var coverage: Double?
        public var reportsArrived: Int
        public var reportsExpected: Int
    }

    public struct ClassLatency: Sendable {
        public var pathClass: PathClass
        public var week: Figures
        public var previousWeek: Figures?
        /// Per bucket of the period that has data (`WeeklyReport.bucketSeconds`): (bucket start,
        /// p50, p99) in µs.
        public var series: [(start: Timestamp, p50: Double, p99: Double)]
    }

    public struct Figures: Sendable, Equatable {
        public var p50: Double?
        public var p99: Double?
        public var sent: Int
        public var lost: Int
        public var lossRate: Double? { sent > 0 ? Double(lost) / Double(sent) : nil }

        init(_ aggregate: PairAggregate) {
            p50 = try? aggregate.sketch?.quantile(0.5)
            p99 = try? aggregate.sketch?.quantile(0.99)
            sent = aggregate.sent
            lost = aggregate.lost
        }
    }

    public struct LeafHeatmaps: Sendable {
        /// Source leaves (rows) and destination leaves (columns), sorted.
        public var leaves: [String]
        /// [row][column]; nil where no pair was probed.
        public var weekP99: [[Double?]]
        public var weekLoss: [[Double?]]
        /// The hour whose cross-leaf pairs had the highest merged p99.
        public var worstHour: Timestamp?
        public var worstHourP99: [[Double?]]
        public var worstHourLoss: [[Double?]]
    }

    public struct Offender: Sendable, Equatable {
        public var component: String
        public var kind: String
        /// Windows in the period under any of its findings.
        public var unhealthyWindows: Int
        public var findings: Int
        public var classes: [String]
    }

    public struct RepeatOffender: Sendable, Equatable {
        public var node: String
        public var quarantines: Int
        public var classes: [String]
    }

    public struct OpenFinding: Sendable, Equatable {
        public var component: String
        public var kind: String
        public var faultClass: String
        public var opened: Timestamp
        public var confidence: Double
        public var runbook: String
    }

    public struct QuarantineEntry: Sendable, Equatable {
        public var node: String
        public var decided: Timestamp
        public var component: String
        public var faultClass: String
        public var reason: String
        public var runbook: String
        /// `done`, `failed`, `pending`.
        public var state: String
        public var outcome: String
        /// Seconds until the release, nil while out of service at the period's end.
        public var duration: Double?
        public var approvedBy: String?
        public var releasedBy: String?
    }
}

extension WeeklyReport {
    /// Leaves drawn at most in a heatmap; beyond, the leaves of the worst pairs.
    public static let maxHeatmapLeaves = 48
    public static let topOffenderCount = 10

    /// The report of `from..<to` from `store`. `runbookBase` prefixes runbook paths in links.
    public static func build(
        store: Store, from: Timestamp, to: Timestamp, label: String? = nil, runbookBase: String = ""
    ) throws -> WeeklyReport {
        precondition(from < to, "an empty period")
        var notes: [String] = []
        let topology = try store.configuration(.topology, at: to.adding(seconds: -1)).flatMap {
            try? Topology(json: Data($0.text.utf8))
        }
        if topology == nil { notes.append("The store records no topology in force: fleet size and availability are unknown.") }
        let rules = try store.configuration(.rules, at: to.adding(seconds: -1)).flatMap { try? RulesParser.parse($0.text, file: "recorded rules") }
            ?? Rules.defaults

        // Windows and coverage: the span the store has windows for, inside the period.
        let windows = try store.windows(from: from, to: to)
        let windowSeconds = Int64(windows.first?.seconds ?? 10)
        let covered: (from: Timestamp, to: Timestamp)? = windows.first.map {
            ($0.start, windows.last!.start.adding(seconds: windowSeconds))
        }
        let nodeCount = topology?.nodes.count ?? 0
        let endpointCount = topology?.nodes.reduce(0) { $0 + $1.rails.count } ?? 0
        let arrived = windows.reduce(0) { $0 + $1.reportCount }
        var expected = 0
        if let covered {
            expected = nodeCount * Int((covered.to.secondsSinceEpoch - covered.from.secondsSinceEpoch) / windowSeconds)
            // A few windows short at either end is the clock, not a gap (a period up to now ends
            // where windows are still open).
            let slack = 3 * windowSeconds
            if covered.from.secondsSinceEpoch > from.secondsSinceEpoch + slack || covered.to.secondsSinceEpoch < to.secondsSinceEpoch - slack {
                notes.append("Data covers \(covered.from) to \(covered.to) of the period only.")
            }
        } else {
            notes.append("The store has no windows in this period: no data.")
        }

        // Findings: those open at some time in the period.
        let spans = try store.findingSpans(from: from, to: to)
        let opened = spans.filter { $0.opened >= from }
        func clipped(_ span: FindingSpan) -> (Int64, Int64) {
            let start = max(span.opened.secondsSinceEpoch, from.secondsSinceEpoch, (covered?.from ?? from).secondsSinceEpoch)
            let end = min((span.closed ?? to).secondsSinceEpoch, (covered?.to ?? to).secondsSinceEpoch, to.secondsSinceEpoch)
            return (start, max(start, end))
        }
        let outOfService = topology.map { EndpointsOut(topology: $0) }
        var intervals: [EndpointID: [(Int64, Int64)]] = [:]
        for span in spans {
            guard let outOfService, let component = Store.component(kind: span.kind, name: span.component) else { continue }
            for endpoint in outOfService.endpoints(component) { intervals[endpoint, default: []].append(clipped(span)) }
        }
        let unhealthySeconds = intervals.values.reduce(0) { $0 + unionLength($1) }
        let coveredSeconds = covered.map { Double($0.to.secondsSinceEpoch - $0.from.secondsSinceEpoch) } ?? 0
        let availability: Double? =
            endpointCount > 0 && coveredSeconds > 0
            ? max(0, 1 - Double(unhealthySeconds) / (Double(endpointCount) * coveredSeconds)) : nil

        // Time to detect: from the first window of the run the hysteresis needed, to the close of
        // the window that opened the finding (hard faults need the fewest windows: a lower bound).
        let closedAt = Dictionary(windows.compactMap { w in w.closedAt.map { (w.start, $0) } }, uniquingKeysWith: { a, _ in a })
        let runWindows = Int64(max(1, min(rules.hardFault.openWindows, rules.grayFault.openWindows)))
        let detectTimes = opened.map { span -> Double in
            let start = span.opened.secondsSinceEpoch - (runWindows - 1) * windowSeconds
            let detected = closedAt[span.opened]?.secondsSinceEpoch ?? (span.opened.secondsSinceEpoch + windowSeconds)
            return Double(detected - start)
        }

        // Quarantines and their releases.
        let intents = try store.allIntents()
        let audit = try store.auditEntries()
        let quarantineLog = quarantineEntries(
            intents: intents, audit: audit, from: from, to: to, runbookBase: runbookBase)
        let released = quarantineLog.compactMap(\.duration)
        var byNode: [String: [QuarantineEntry]] = [:]
        for entry in quarantineLog where entry.state == "done" { byNode[entry.node, default: []].append(entry) }
        let repeatOffenders = byNode.keys.sorted().compactMap { node -> RepeatOffender? in
            let entries = byNode[node]!
            guard entries.count >= 2 else { return nil }
            return RepeatOffender(node: node, quarantines: entries.count, classes: Array(Set(entries.map(\.faultClass))).sorted())
        }.sorted { ($0.quarantines, $1.node) > ($1.quarantines, $0.node) }

        // Top offenders: windows under findings, per component.
        var offenderWindows: [String: (kind: String, seconds: [(Int64, Int64)], findings: Int, classes: Set<String>)] = [:]
        for span in spans {
            var entry = offenderWindows[span.component] ?? (span.kind, [], 0, [])
            entry.seconds.append(clipped(span))
            entry.findings += 1
            entry.classes.insert(span.faultClass)
            offenderWindows[span.component] = entry
        }
        let topOffenders = offenderWindows.map { component, entry in
            Offender(
                component: component, kind: entry.kind,
                unhealthyWindows: Int((Double(unionLength(entry.seconds)) / Double(windowSeconds)).rounded(.up)),
                findings: entry.findings, classes: entry.classes.sorted())
        }
        .filter { $0.unhealthyWindows > 0 }
        .sorted { ($0.unhealthyWindows, $1.component) > ($1.unhealthyWindows, $0.component) }
        .prefix(topOffenderCount)

        let openAtEnd = spans.filter { $0.closed.map { $0 >= to } ?? true }.map {
            OpenFinding(
                component: $0.component, kind: $0.kind, faultClass: $0.faultClass, opened: $0.opened,
                confidence: $0.confidence, runbook: runbookBase + runbookPath(of: $0.faultClass))
        }

        func counted(_ key: (FindingSpan) -> String) -> [(name: String, count: Int)] {
            var counts: [String: Int] = [:]
            for span in opened { counts[key(span), default: 0] += 1 }
            return counts.keys.sorted().map { ($0, counts[$0]!) }
        }
        let summary = Summary(
            nodes: nodeCount, endpoints: endpointCount, availability: availability,
            unhealthyEndpointHours: Double(unhealthySeconds) / 3600, findingsByKind: counted(\.kind),
            findingsByClass: counted(\.faultClass), findingsOpened: opened.count,
            quarantines: quarantineLog.filter { $0.state == "done" }.count,
            quarantinesFailed: quarantineLog.filter { $0.state == "failed" }.count, releases: released.count,
            meanTimeToDetect: mean(detectTimes), meanTimeToRelease: mean(released),
            coverage: expected > 0 ? min(1, Double(arrived) / Double(expected)) : nil, reportsArrived: arrived,
            reportsExpected: expected)

        // Latency per class, this period against the one before it.
        let length = to.secondsSinceEpoch - from.secondsSinceEpoch
        let previousFrom = from.adding(seconds: -length)
        let bucket = bucketSeconds(period: length)
        let latency = try classLatency(store: store, from: from, to: to, previousFrom: previousFrom, bucket: bucket)
        if !latency.isEmpty, latency.allSatisfy({ $0.previousWeek == nil }) {
            notes.append("The period before (from \(previousFrom)) has no latency data to compare with.")
        }

        let heatmaps = try leafHeatmaps(store: store, from: from, to: to, leafCount: topology?.leaves.count, notes: &notes)
        return WeeklyReport(
            period: Period(from: from, to: to, label: label ?? "\(from) – \(to)"), bucketSeconds: bucket, summary: summary,
            latency: latency, heatmaps: heatmaps, topOffenders: Array(topOffenders),
            repeatOffenders: repeatOffenders, openAtEnd: openAtEnd, quarantines: quarantineLog, notes: notes)
    }

    private static func mean(_ values: [Double]) -> Double? {
        values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }

    /// The length of the union of half-open intervals.
    static func unionLength(_ intervals: [(Int64, Int64)]) -> Int64 {
        var total: Int64 = 0
        var current: (Int64, Int64)?
        for (start, end) in intervals.sorted(by: { $0 < $1 }) where end > start {
            if let open = current, start <= open.1 {
                current = (open.0, max(open.1, end))
            } else {
                if let open = current { total += open.1 - open.0 }
                current = (start, end)
            }
        }
        if let open = current { total += open.1 - open.0 }
        return total
    }

    /// The series' step for a period: the shortest of 10 s, 1, 5, 15 min, 1, 6 h and a day that
    /// leaves at most about 200 points (an hour for a week).
    static func bucketSeconds(period: Int64) -> Int64 {
        [10, 60, 300, 900, 3_600, 21_600, 86_400].first { period / $0 <= 200 } ?? 86_400
    }

    private static func classLatency(
        store: Store, from: Timestamp, to: Timestamp, previousFrom: Timestamp, bucket: Int64
    ) throws -> [ClassLatency] {
        var week: [PathClass: PairAggregate] = [:]
        var buckets: [PathClass: [Int64: PairAggregate]] = [:]
        for aggregate in try store.classAggregates(from: from, to: to) {
            let one = PairAggregate(
                pairCount: aggregate.pairCount, sent: aggregate.sent, lost: aggregate.lost, sketch: aggregate.sketch)
            week[aggregate.pathClass, default: PairAggregate()].add(one)
            let start = aggregate.window.secondsSinceEpoch - aggregate.window.secondsSinceEpoch % bucket
            buckets[aggregate.pathClass, default: [:]][start, default: PairAggregate()].add(one)
        }
        var previous: [PathClass: PairAggregate] = [:]
        for aggregate in try store.classAggregates(from: previousFrom, to: from) {
            previous[aggregate.pathClass, default: PairAggregate()].add(
                PairAggregate(pairCount: aggregate.pairCount, sent: aggregate.sent, lost: aggregate.lost, sketch: aggregate.sketch))
        }
        return PathClass.allCases.compactMap { pathClass in
            guard let aggregate = week[pathClass] else { return nil }
            let series = (buckets[pathClass] ?? [:]).keys.sorted().compactMap { start -> (Timestamp, Double, Double)? in
                let figures = Figures(buckets[pathClass]![start]!)
                guard let p50 = figures.p50, let p99 = figures.p99 else { return nil }
                return (Timestamp(secondsSinceEpoch: start), p50, p99)
            }
            return ClassLatency(
                pathClass: pathClass, week: Figures(aggregate), previousWeek: previous[pathClass].map(Figures.init),
                series: series.map { (start: $0.0, p50: $0.1, p99: $0.2) })
        }
    }

    /// Leaf × leaf over the period (from whole days: `leaf_days` keeps sketches) and in its worst
    /// hour: the hour whose pairs between leaves (the cross-leaf class) had the highest p99.
    private static func leafHeatmaps(
        store: Store, from: Timestamp, to: Timestamp, leafCount: Int?, notes: inout [String]
    ) throws -> LeafHeatmaps {
        struct Key: Hashable, Comparable {
            var src: String
            var dst: String
            static func < (a: Key, b: Key) -> Bool { (a.src, a.dst) < (b.src, b.dst) }
        }
        let firstDay = from.secondsSinceEpoch - from.secondsSinceEpoch % 86_400
        var week: [Key: PairAggregate] = [:]
        for row in try store.leafDays(from: Timestamp(secondsSinceEpoch: firstDay), to: to) {
            week[Key(src: row.src.rawValue, dst: row.dst.rawValue), default: PairAggregate()].add(row.aggregate)
        }
        if week.isEmpty, let leafCount, leafCount > WindowRollup.maxLeaves {
            notes.append(
                "No leaf × leaf maps: the fleet has \(leafCount) leaves, more than the \(WindowRollup.maxLeaves) the service rolls up by leaf pair.")
        }
        if !week.isEmpty, firstDay != from.secondsSinceEpoch || to.secondsSinceEpoch % 86_400 != 0 {
            notes.append("The leaf × leaf figures are of whole days (UTC): the period's first and last days count whole.")
        }
        var byHour: [Int64: PairAggregate] = [:]
        for aggregate in try store.classAggregates(from: from, to: to) where aggregate.pathClass == .crossLeaf {
            byHour[aggregate.window.secondsSinceEpoch - aggregate.window.secondsSinceEpoch % 3_600, default: PairAggregate()]
                .add(PairAggregate(pairCount: aggregate.pairCount, sent: aggregate.sent, lost: aggregate.lost, sketch: aggregate.sketch))
        }
        var worst: (hour: Int64, p99: Double)?
        for hour in byHour.keys.sorted() {
            guard let p99 = (try? byHour[hour]!.sketch?.quantile(0.99)) ?? nil else { continue }
            if worst.map({ p99 > $0.p99 }) ?? true { worst = (hour, p99) }
        }
        var worstCells: [Key: (p99: Double?, loss: Double?)] = [:]
        if let worst {
            for row in try store.leafHours(
                from: Timestamp(secondsSinceEpoch: worst.hour), to: Timestamp(secondsSinceEpoch: worst.hour + 3_600))
            {
                worstCells[Key(src: row.src.rawValue, dst: row.dst.rawValue)] = (row.p99, Figures(row.aggregate).lossRate)
            }
        }
        let weekFigures = week.mapValues { Figures($0) }
        var leaves = Array(Set(week.keys.flatMap { [$0.src, $0.dst] })).sorted()
        if leaves.count > maxHeatmapLeaves {
            // The leaves of the worst pairs by p99, until the cap.
            var kept: [String] = []
            let ranked = weekFigures.keys.sorted().sorted { (weekFigures[$0]!.p99 ?? 0) > (weekFigures[$1]!.p99 ?? 0) }
            for key in ranked {
                for leaf in [key.src, key.dst] where !kept.contains(leaf) && kept.count < maxHeatmapLeaves { kept.append(leaf) }
                if kept.count == maxHeatmapLeaves { break }
            }
            notes.append("The heatmaps show \(maxHeatmapLeaves) of \(leaves.count) leaves: those of the worst pairs by p99.")
            leaves = kept.sorted()
        }
        func grid(_ value: (Key) -> Double?) -> [[Double?]] {
            leaves.map { src in leaves.map { dst in value(Key(src: src, dst: dst)) } }
        }
        return LeafHeatmaps(
            leaves: leaves, weekP99: grid { weekFigures[$0]?.p99 }, weekLoss: grid { weekFigures[$0]?.lossRate },
            worstHour: worst.map { Timestamp(secondsSinceEpoch: $0.hour) }, worstHourP99: grid { worstCells[$0]?.p99 ?? nil },
            worstHourLoss: grid { worstCells[$0]?.loss ?? nil })
    }

    /// Every quarantine decided in the period, with its release and who approved or released it.
    private static func quarantineEntries(
        intents: [IntentRecord], audit: [AuditEntry], from: Timestamp, to: Timestamp, runbookBase: String
    ) -> [QuarantineEntry] {
        func decision(_ intent: IntentRecord) -> [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(intent.decision.utf8))) as? [String: Any] ?? [:]
        }
        // Releases within the period: a past period's report stays what it was.
        let releases = intents.filter { $0.kind == .release && $0.state == .done && $0.decidedAt < to }
        // Operator commands from the audit: (time, actor, command text).
        let commands: [(at: Timestamp, actor: String, command: String)] = audit.compactMap { entry in
            guard entry.actor != "executor",
                let object = (try? JSONSerialization.jsonObject(with: Data(entry.entry.utf8))) as? [String: Any],
                object["event"] as? String == "command", let command = object["command"] as? String
            else { return nil }
            return (entry.at, entry.actor, command)
        }
        return intents.filter { $0.kind == .quarantine && $0.decidedAt >= from && $0.decidedAt < to }
            .sorted { ($0.decidedAt, $0.id) < ($1.decidedAt, $1.id) }
            .map { intent in
                let fields = decision(intent)
                let decisionID = fields["id"] as? String ?? intent.id
                let faultClass = fields["class"] as? String ?? ""
                let release = releases.first { decision($0)["id"] as? String == decisionID }
                // The audit holds commands as the service writes them: "\(OperatorCommand)".
                let approve = "\(OperatorCommand.approve(id: decisionID))"
                let releaseCommand = NodeName(intent.node).map { "\(OperatorCommand.release($0))" }
                let approvedBy = commands.first { $0.command == approve }?.actor
                let releasedBy: String? = release.map { release in
                    commands.last { $0.command == releaseCommand && $0.at <= release.decidedAt && $0.at >= intent.decidedAt }?
                        .actor ?? "faultline (\(decision(release)["reason"] as? String ?? "policy"))"
                }
                return QuarantineEntry(
                    node: intent.node, decided: intent.decidedAt, component: fields["component"] as? String ?? "",
                    faultClass: faultClass, reason: fields["reason"] as? String ?? "",
                    runbook: faultClass.isEmpty ? "" : runbookBase + runbookPath(of: faultClass),
                    state: intent.state.rawValue, outcome: intent.outcome ?? "",
                    duration: release.map { Double($0.decidedAt.secondsSinceEpoch - intent.decidedAt.secondsSinceEpoch) },
                    approvedBy: approvedBy, releasedBy: releasedBy)
            }
    }
}

/// The endpoints a finding takes out of service: an endpoint itself, its access link, a node's
/// endpoints, a leaf's endpoints. Spines and leaf–spine links take none out (ECMP routes around
/// them: capacity drops, every endpoint still reaches every other).
struct EndpointsOut {
    private var ofLink: [LinkID: EndpointID] = [:]
    private var ofNode: [NodeName: [EndpointID]] = [:]
    private var ofLeaf: [SwitchName: [EndpointID]] = [:]

    init(topology: Topology) {
        for node in topology.nodes {
            ofNode[node.name] = node.rails.map(\.endpoint)
            for rail in node.rails {
                ofLeaf[rail.leaf, default: []].append(rail.endpoint)
                if let link = topology.accessLink(of: rail.endpoint) { ofLink[link] = rail.endpoint }
            }
        }
    }

    func endpoints(_ component: Component) -> [EndpointID] {
        switch component {
        case .endpoint(let endpoint): [endpoint]
        case .node(let node): ofNode[node] ?? []
        case .link(let link): ofLink[link].map { [$0] } ?? []
        case .switch(let name): ofLeaf[name] ?? []
        }
    }
}
