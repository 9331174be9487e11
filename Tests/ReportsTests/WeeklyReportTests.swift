// The weekly report's figures against a fixture store whose content is known: every figure below
// is worked out by hand from what the fixture writes (see the comments), then the HTML, Markdown
// and JSON are checked to carry them; an empty store gives a report that says so; ISO weeks.

import Engine
import FleetModel
import Foundation
import QuantileSketch
import Reports
import Store
import Testing

/// A 2-hour period starting a day (UTC); the period before it has latency data too.
private let from: Int64 = 1_794_960_000
private let to: Int64 = from + 7_200
private func at(_ offset: Int64) -> Timestamp { Timestamp(secondsSinceEpoch: from + offset) }

/// gpu-0000..gpu-0003, two rails, two nodes per leaf: 8 endpoints on leaf-s{0,1}-r{0,1}.
private let topology = try! Topology.railOptimized(.init(nodes: 4, rails: 2, nodesPerLeaf: 2, spines: 2))

/// A sketch of `count` samples around `median` (±5%, evenly spread: no randomness).
private func sketch(_ median: Double, count: Int) throws -> WireSketch {
    var sketch = try QuantileSketch()
    for i in 0..<count { try sketch.add(median * (0.95 + 0.1 * Double(i) / Double(max(1, count - 1)))) }
    return .bytes(sketch.encoded())
}

private func report(_ start: Timestamp, crossLeafMedian: Double, samples: Int, lost: Int) throws -> Report {
    Report(
        node: NodeName("gpu-0000")!, windowStart: start, windowSeconds: 10, agentVersion: "test", transport: .udp,
        pairs: [
            .init(src: EndpointID("gpu-0000/0")!, dst: EndpointID("gpu-0000/0")!, sent: 50, lost: 0, rttMicros: try sketch(4, count: 50)),
            .init(
                src: EndpointID("gpu-0000/0")!, dst: EndpointID("gpu-0002/0")!, sent: samples + lost, lost: lost,
                rttMicros: try sketch(crossLeafMedian, count: samples)),
        ],
        health: [:])
}

private func finding(_ store: Store, _ id: Int, _ component: String, _ kind: String, _ faultClass: String, opened: Int64, closed: Int64?) throws {
    try store.database.run(
        """
        INSERT INTO findings (id, component, kind, class, opened_window, last_window, closed_window, confidence)
        VALUES (?, ?, ?, ?, ?, ?, ?, 0.9)
        """,
        [.int(id), .text(component), .text(kind), .text(faultClass), .integer(from + opened), .integer(from + (closed ?? 7_190)),
         closed.map { .integer(from + $0) } ?? .null])
}

private func intent(_ store: Store, node: String, kind: IntentRecord.Kind, decided: Int64, id: String, reason: String, faultClass: String) throws {
    let decision = """
        {"time": "\(at(decided))", "decision": "\(kind.rawValue)", "id": "\(id)", "node": "\(node)", "component": "\(node)/1", "class": "\(faultClass)", "reason": "\(reason)"}
        """
    try store.record(
        intent: IntentRecord(
            id: "\(id):\(kind.rawValue)", kind: kind, node: node, decidedAt: at(decided), decision: decision, state: .done,
            attempts: 1, outcome: "done", updatedAt: at(decided + 1)),
        audit: "executor", entry: "{\"event\": \"outcome\"}")
}

/// The fixture: windows with report counts, findings, quarantines and releases, operator commands,
/// and rollups of three windows (one in the period before).
private func fixture(_ store: Store) throws {
    try store.recordConfiguration(.topology, text: String(decoding: topology.jsonData(), as: UTF8.self), effectiveFrom: at(-7_200))
    // 720 windows of 10 s, each closed 15 s after it starts; 4 reports each but 72 with 3:
    // arrived 2,808 of 2,880 expected (4 nodes x 720 windows): coverage 0.975.
    try store.database.transaction {
        for w in 0..<720 {
            try store.database.run(
                "INSERT INTO windows (window_start, window_seconds, report_count, closed_at) VALUES (?, 10, ?, ?)",
                [.integer(from + Int64(w) * 10), .int(w % 10 == 0 ? 3 : 4), .integer(from + Int64(w) * 10 + 15)])
        }
    }
    // Endpoint gpu-0001/1 under a finding [600, 1200) and its access link's [900, 1500): 900 s.
    // Node gpu-0003 (2 endpoints) from 1800 to the end: 2 x 5,400 s. Total 11,700 endpoint-seconds
    // of 8 x 7,200: availability 1 - 11,700/57,600 = 0.796875. A spine link's finding from before
    // the period to 300 takes no endpoint out but counts 30 windows for the link.
    try finding(store, 1, "gpu-0001/1", "gpu", "gpu.slow", opened: 600, closed: 1_200)
    try finding(store, 2, "gpu-0003", "node", "node.unreachable", opened: 1_800, closed: nil)
    try finding(store, 3, "gpu-0001/1~leaf-s0-r1", "link", "link.loss", opened: 900, closed: 1_500)
    try finding(store, 4, "leaf-s0-r0~spine-00", "link", "link.loss", opened: -600, closed: 300)
    // gpu-0001 quarantined twice (released by the policy after 680 s, by alice after 400 s; the
    // second approved by bob), gpu-0003 once and still out. Mean time to release: 540 s.
    try intent(store, node: "gpu-0001", kind: .quarantine, decided: 620, id: "gpu-0001@a", reason: "confidence 0.9", faultClass: "gpu.slow")
    try intent(store, node: "gpu-0001", kind: .release, decided: 1_300, id: "gpu-0001@a", reason: "4 clean windows", faultClass: "gpu.slow")
    // Another node's release meanwhile (gpu-00011's name holds gpu-0001's): not gpu-0001's.
    try store.appendAudit(at: at(1_250), actor: "operator:mallory", entry: "{\"event\": \"command\", \"command\": \"release(gpu-00011)\"}")
    try store.appendAudit(at: at(1_990), actor: "operator:bob", entry: "{\"event\": \"command\", \"command\": \"approve(id: \\\"gpu-0001@b\\\")\"}")
    try intent(store, node: "gpu-0001", kind: .quarantine, decided: 2_000, id: "gpu-0001@b", reason: "approved", faultClass: "link.loss")
    try store.appendAudit(at: at(2_390), actor: "operator:alice", entry: "{\"event\": \"command\", \"command\": \"release(gpu-0001)\"}")
    try intent(store, node: "gpu-0001", kind: .release, decided: 2_400, id: "gpu-0001@b", reason: "operator", faultClass: "link.loss")
    try intent(store, node: "gpu-0003", kind: .quarantine, decided: 1_830, id: "gpu-0003@c", reason: "confidence 1", faultClass: "node.unreachable")
    // Cross-leaf (leaf-s0-r0 -> leaf-s1-r0) around 10 µs in the first hour, 50 µs (5 of 25 lost)
    // in the second: the worst hour; around 8 µs in the period before.
    try store.record(rollups: [
        WindowRollup.make(window: at(-7_200), reports: [try report(at(-7_200), crossLeafMedian: 8, samples: 100, lost: 0)], topology: topology),
        WindowRollup.make(window: at(0), reports: [try report(at(0), crossLeafMedian: 10, samples: 100, lost: 0)], topology: topology),
        WindowRollup.make(window: at(3_600), reports: [try report(at(3_600), crossLeafMedian: 50, samples: 20, lost: 5)], topology: topology),
    ])
}

private func withFixture<T>(_ body: (Store, String) throws -> T) throws -> T {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let store = try Store(path: directory + "/store.db")
    return try body(store, directory)
}

private func near(_ value: Double?, _ expected: Double, within fraction: Double = 0.03) -> Bool {
    guard let value else { return false }
    return abs(value - expected) <= expected * fraction
}

@Suite("weekly report")
struct WeeklyReportTests {
    @Test("the figures of a fixture store with known content")
    func figures() throws {
        try withFixture { store, _ in
            try fixture(store)
            let report = try WeeklyReport.build(store: store, from: at(0), to: at(7_200), runbookBase: "https://wiki/")
            let s = report.summary
            #expect(s.nodes == 4 && s.endpoints == 8)
            #expect(s.availability == 0.796875)
            #expect(s.unhealthyEndpointHours == 3.25)
            #expect(s.findingsOpened == 3)
            #expect(s.findingsByKind.map(\.name) == ["gpu", "link", "node"] && s.findingsByKind.map(\.count) == [1, 1, 1])
            #expect(s.findingsByClass.map(\.name) == ["gpu.slow", "link.loss", "node.unreachable"])
            #expect(s.quarantines == 3 && s.releases == 2 && s.quarantinesFailed == 0)
            #expect(s.meanTimeToRelease == 540)
            // Two windows of hysteresis (the default rules' hard faults) before the opening window,
            // which closed 15 s after its start: 10 + 15 s for each finding opened in the period.
            #expect(s.meanTimeToDetect == 25)
            #expect(s.coverage == 0.975 && s.reportsArrived == 2_808 && s.reportsExpected == 2_880)

            #expect(report.latency.map(\.pathClass) == [.loopback, .crossLeaf])
            let cross = try #require(report.latency.last)
            #expect(near(cross.week.p50, 10) && near(cross.week.p99, 50, within: 0.06))
            #expect(near(cross.previousWeek?.p50, 8))
            #expect(cross.week.sent == 125 && cross.week.lost == 5)
            // Two hours: a point every minute, where there is data.
            #expect(report.bucketSeconds == 60)
            #expect(cross.series.map(\.start) == [at(0), at(3_600)])
            #expect(near(cross.series.first?.p50, 10) && near(cross.series.last?.p50, 50))

            let heatmaps = report.heatmaps
            #expect(heatmaps.leaves == ["leaf-s0-r0", "leaf-s1-r0"])
            #expect(heatmaps.worstHour == at(3_600))
            #expect(near(heatmaps.weekP99[0][1] ?? nil, 50, within: 0.06) && heatmaps.weekP99[1][0] == nil)
            #expect(heatmaps.weekLoss[0][1] == 0.04)  // 5 of 125
            #expect(heatmaps.worstHourLoss[0][1] == 0.2)  // 5 of 25

            #expect(report.topOffenders.map(\.component) == ["gpu-0003", "gpu-0001/1", "gpu-0001/1~leaf-s0-r1", "leaf-s0-r0~spine-00"])
            #expect(report.topOffenders.map(\.unhealthyWindows) == [540, 60, 60, 30])
            #expect(report.repeatOffenders.map(\.node) == ["gpu-0001"] && report.repeatOffenders.map(\.quarantines) == [2])
            #expect(report.repeatOffenders.first?.classes == ["gpu.slow", "link.loss"])
            #expect(report.openAtEnd.map(\.component) == ["gpu-0003"])
            #expect(report.openAtEnd.first?.runbook == "https://wiki/runbooks/node.unreachable.md")

            #expect(report.quarantines.map(\.node) == ["gpu-0001", "gpu-0003", "gpu-0001"])
            #expect(report.quarantines.map(\.duration) == [680, nil, 400])
            #expect(report.quarantines.map(\.approvedBy) == [nil, nil, "operator:bob"])
            #expect(report.quarantines.map(\.releasedBy) == ["faultline (4 clean windows)", nil, "operator:alice"])
            // The leaf × leaf figures come from whole days: this 2-hour period's day.
            #expect(report.notes == ["The leaf × leaf figures are of whole days (UTC): the period's first and last days count whole."])
        }
    }

    @Test("HTML, Markdown and JSON carry the same figures; HTML loads nothing from elsewhere")
    func formats() throws {
        try withFixture { store, _ in
            try fixture(store)
            let report = try WeeklyReport.build(store: store, from: at(0), to: at(7_200), label: "test")
            let html = report.html
            #expect(html.hasPrefix("<!DOCTYPE html>") && html.hasSuffix("</html>\n"))
            #expect(html.contains("prefers-color-scheme: dark") && html.contains("@media print"))
            #expect(html.components(separatedBy: "<svg").count - 1 == 6)
            // Nothing fetched: no scripts, stylesheets, images or fonts; url(...) only to the page's own ids.
            for external in ["<script", "<link", "<img", "src=", "url(http", "url(//", "@import", "@font-face"] {
                #expect(!html.contains(external), "\(external)")
            }
            #expect(html.contains("<td>79.688%</td>") && html.contains("<td>97.50% (2808 of 2880)</td>"))
            #expect(html.contains("<td>operator:bob</td>") && html.contains("href=\"runbooks/node.unreachable.md\""))
            #expect(html == (try WeeklyReport.build(store: store, from: at(0), to: at(7_200), label: "test")).html)

            let markdown = report.markdown(chartPrefix: "week-")
            #expect(markdown.contains("| availability (endpoint-hours healthy) | 79.688% |"))
            #expect(markdown.contains("![p99 by path class (µs, per minute)](week-latency-p99.svg)"))
            #expect(markdown.contains("| gpu-0003 | node | 540 | 1 | node.unreachable |"))
            #expect(report.charts.map(\.name).allSatisfy { markdown.contains("week-\($0)") })

            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(report.json.jsonText.utf8)) as? [String: Any])
            let summary = try #require(object["summary"] as? [String: Any])
            #expect(summary["availability"] as? Double == 0.796875 && summary["coverage"] as? Double == 0.975)
            #expect((object["quarantines"] as? [[String: Any]])?.count == 3)
            #expect(((object["leaves"] as? [String: Any])?["worstHour"] as? String) == "\(at(3_600))")
        }
    }

    @Test("a period without data gives a report that says so")
    func empty() throws {
        try withFixture { store, _ in
            let report = try WeeklyReport.build(store: store, from: at(0), to: at(7_200))
            #expect(report.summary.availability == nil && report.summary.coverage == nil)
            #expect(report.latency.isEmpty && report.heatmaps.leaves.isEmpty && report.quarantines.isEmpty)
            #expect(report.notes.contains { $0.contains("no topology") } && report.notes.contains { $0.contains("no data") })
            #expect(report.html.contains("<td class=\"empty\" colspan=\"5\">none</td>"))
            // Partial data: only the second hour has windows.
            try fixture(store)
            try store.database.run("DELETE FROM windows WHERE window_start < ?", [.integer(from + 3_600)])
            let partial = try WeeklyReport.build(store: store, from: at(0), to: at(7_200))
            #expect(partial.notes.contains { $0.hasPrefix("Data covers \(at(3_600))") })
            #expect(partial.summary.reportsExpected == 1_440)
        }
    }

    @Test("ISO weeks: 2026-W47 is Monday 16 November to Monday 23 November, UTC")
    func isoWeeks() throws {
        let week = try #require(ISOWeek.period("2026-W47"))
        #expect(week.from == Timestamp(rfc3339: "2026-11-16T00:00:00Z") && week.to == Timestamp(rfc3339: "2026-11-23T00:00:00Z"))
        #expect(ISOWeek.label(Timestamp(rfc3339: "2026-11-22T23:59:59Z")!) == "2026-W47")
        #expect(ISOWeek.label(Timestamp(rfc3339: "2021-01-03T12:00:00Z")!) == "2020-W53")  // ISO year 2020
        #expect(ISOWeek.label(Timestamp(rfc3339: "2024-12-30T00:00:00Z")!) == "2025-W01")
        #expect(ISOWeek.period("2026-W53") != nil && ISOWeek.period("2025-W53") == nil)
        #expect(ISOWeek.period("2026-47") == nil && ISOWeek.period("2026-W00") == nil)
    }
}
