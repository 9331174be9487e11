// An incident as one HTML page, in the weekly report's look (`faultline incident html`): the
// findings' events and the remediation's decisions and outcomes in time order, the cross-leaf
// latency window by window, and leaf × leaf p99 and loss of the leaves the incident touched over
// its window, merged from the raw reports (an incident is short; its reports are kept).

import Charts
import Engine
import FleetModel
import Foundation
import QuantileSketch
import Store

public struct IncidentReport: Sendable {
    public var from: Timestamp
    public var to: Timestamp
    /// Time order; each row: time, what, subject, class, detail.
    public var timeline: [[String]]
    /// Per window: (start, cross-leaf p50, cross-leaf p99).
    public var crossLeaf: [(start: Timestamp, p50: Double, p99: Double)]
    /// Leaves of the incident's components, and the leaves they exchanged probes with.
    public var leaves: [String]
    public var p99: [[Double?]]
    public var loss: [[Double?]]
    public var notes: [String]

    /// The incident `from..<to` in `store`.
    public static func build(store: Store, from: Timestamp, to: Timestamp, runbookBase: String = "") throws -> IncidentReport {
        precondition(from < to, "an empty incident")
        var notes: [String] = []
        guard let record = try store.configuration(.topology, at: to.adding(seconds: -1)),
            let topology = try? Topology(json: Data(record.text.utf8))
        else {
            throw StoreError.corruptRow(path: store.path, table: "configurations", rowID: 0, reason: "no topology recorded before \(to)")
        }
        var rows: [(time: Timestamp, order: Int, cells: [String])] = []
        var touched: Set<SwitchName> = []
        for finding in try store.findingEvents(from: from, to: to) {
            rows.append((
                finding.window, rows.count,
                [
                    "\(finding.window)", "finding \(finding.event.rawValue)", "\(finding.component)", finding.faultClass,
                    "confidence \(String(format: "%.2f", finding.confidence)) · \(runbookBase)\(runbookPath(of: finding.faultClass))",
                ]
            ))
            touched.formUnion(leaves(of: finding.component, in: topology))
        }
        for intent in try store.allIntents() where intent.decidedAt >= from && intent.decidedAt < to {
            let decision = (try? JSONSerialization.jsonObject(with: Data(intent.decision.utf8))) as? [String: Any] ?? [:]
            rows.append((
                intent.decidedAt, rows.count,
                [
                    "\(intent.decidedAt)", "\(intent.kind.rawValue) (\(intent.state.rawValue))", intent.node,
                    decision["class"] as? String ?? "", [decision["reason"] as? String, intent.outcome].compactMap { $0 }.joined(separator: " · "),
                ]
            ))
        }
        for entry in try store.auditEntries() where entry.at >= from && entry.at < to && entry.actor != "executor" {
            let object = (try? JSONSerialization.jsonObject(with: Data(entry.entry.utf8))) as? [String: Any] ?? [:]
            rows.append((entry.at, rows.count, ["\(entry.at)", "operator", entry.actor, "", object["command"] as? String ?? entry.entry]))
        }
        let timeline = rows.sorted { ($0.time, $0.order) < ($1.time, $1.order) }.map(\.cells)

        var crossLeaf: [(Timestamp, Double, Double)] = []
        for aggregate in try store.classAggregates(from: from, to: to) where aggregate.pathClass == .crossLeaf {
            if let p50 = (try? aggregate.sketch?.quantile(0.5)) ?? nil, let p99 = (try? aggregate.sketch?.quantile(0.99)) ?? nil {
                crossLeaf.append((aggregate.window, p50, p99))
            }
        }

        // The incident's leaf pairs, from its raw reports window by window.
        var byWindow: [Timestamp: [Report]] = [:]
        try store.forEachReport(from: from, to: to) { byWindow[$0.windowStart, default: []].append($0) }
        var merged: [WindowRollup.LeafPair: PairAggregate] = [:]
        for window in byWindow.keys.sorted() {
            let rollup = WindowRollup.make(window: window, reports: byWindow[window]!, topology: topology)
            if rollup.leafPairsOmitted {
                notes.append("No leaf × leaf maps: the fleet has more than \(WindowRollup.maxLeaves) leaves.")
                break
            }
            for (leaves, aggregate) in rollup.leafPairs where touched.contains(leaves.src) || touched.contains(leaves.dst) {
                merged[leaves, default: PairAggregate()].add(aggregate)
            }
        }
        if byWindow.isEmpty { notes.append("The store holds no reports of this window (retention?): no leaf × leaf maps.") }
        var leaves = Array(Set(merged.keys.flatMap { [$0.src.rawValue, $0.dst.rawValue] })).sorted()
        if leaves.count > WeeklyReport.maxHeatmapLeaves {
            let kept = Set(touched.map(\.rawValue))
            leaves = leaves.filter { kept.contains($0) }
            notes.append("The maps show the incident's own leaves only (\(leaves.count)): with their peers they were too many.")
        }
        let figures = Dictionary(uniqueKeysWithValues: merged.map { ("\($0.key.src)>\($0.key.dst)", WeeklyReport.Figures($0.value)) })
        func grid(_ value: (WeeklyReport.Figures) -> Double?) -> [[Double?]] {
            leaves.map { src in leaves.map { dst in figures["\(src)>\(dst)"].flatMap(value) } }
        }
        return IncidentReport(
            from: from, to: to, timeline: timeline, crossLeaf: crossLeaf.map { (start: $0.0, p50: $0.1, p99: $0.2) },
            leaves: leaves, p99: grid(\.p99), loss: grid { $0.lossRate.map { $0 * 100 } }, notes: notes)
    }

    /// The leaves a component sits on or under.
    private static func leaves(of component: Component, in topology: Topology) -> [SwitchName] {
        switch component {
        case .endpoint(let endpoint): return topology.rail(endpoint).map { [$0.leaf] } ?? []
        case .node(let node): return topology.node(node)?.rails.map(\.leaf) ?? []
        case .switch(let name): return topology.tier(of: name) == .leaf ? [name] : []
        case .link(let id):
            guard let link = topology.link(id) else { return [] }
            return [link.a, link.b].flatMap { end -> [SwitchName] in
                switch end {
                case .endpoint(let endpoint): return topology.rail(endpoint).map { [$0.leaf] } ?? []
                case .switch(let name): return topology.tier(of: name) == .leaf ? [name] : []
                }
            }
        }
    }

    public var html: String {
        let start = from.secondsSinceEpoch
        var chart = LineChart(
            title: "cross-leaf latency per window (µs)", yLabel: "µs",
            series: [
                .init(name: "p99", points: crossLeaf.map { (Double($0.start.secondsSinceEpoch - start), $0.p99) }),
                .init(name: "p50", points: crossLeaf.map { (Double($0.start.secondsSinceEpoch - start), $0.p50) }),
            ])
        chart.xTickLabel = { String(Timestamp(secondsSinceEpoch: start + Int64($0.rounded())).description.dropFirst(11).prefix(8)) }
        var body = HTMLPage.table(
            id: "timeline", title: "Timeline", header: ["time", "what", "subject", "class", "detail"], rows: timeline)
        body += "<h2 id=\"latency\">Latency</h2>\n" + HTMLPage.figures([(chart.title, chart.svg)])
        body += "<h2 id=\"leaves\">Leaf × leaf over the incident</h2>\n"
        body += HTMLPage.figures([
            ("p99 (µs) between the incident's leaves and their peers",
             Heatmap(title: "p99 (µs)", unit: "µs", rows: leaves, columns: leaves, values: p99).svg),
            ("loss (%)", Heatmap(title: "loss (%)", unit: "%", rows: leaves, columns: leaves, values: loss).svg),
        ])
        return HTMLPage.page(
            title: "Incident, \(from) to \(to)", subtitle: "written by faultline incident html from the store", notes: notes,
            body: body)
    }
}
