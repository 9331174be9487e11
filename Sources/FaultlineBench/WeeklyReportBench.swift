// The weekly report's speed (docs/reports.md, "Speed"): a store holding a week of a 1,000-node
// fleet's rollups as the service leaves them (10 s windows: 241,920 class rows with sketches,
// 1.4 million sealed leaf hours, 57,344 leaf days with sketches), some findings and quarantines;
// then `WeeklyReport.build` and the HTML, timed. `--weekly-report DB` makes DB once and reuses it.

import Engine
import FleetModel
import Foundation
import QuantileSketch
import Reports
import Store

func runWeeklyReportBench(databasePath: String) throws {
    let week = ISOWeek.period("2026-W46")!
    if !FileManager.default.fileExists(atPath: databasePath) {
        let clock = ContinuousClock()
        let made = try clock.measure { try makeWeekStore(path: databasePath, from: week.from) }
        print("made \(databasePath) in \(made)")
    }
    let size = (try? FileManager.default.attributesOfItem(atPath: databasePath)[.size] as? Int) ?? 0
    print("store: \(size / 1_048_576) MiB")
    let clock = ContinuousClock()
    var samples: [Duration] = []
    var report: WeeklyReport?
    for _ in 0..<3 {
        samples.append(
            try clock.measure {
                let store = try Store(path: databasePath, mode: .readOnly, migrate: false)
                let built = try WeeklyReport.build(store: store, from: week.from, to: week.to, label: "2026-W46")
                sink &+= UInt64(built.html.utf8.count)
                report = built
            })
    }
    let sorted = samples.sorted()
    print("weekly report of 1,000 nodes (build + HTML), 3 runs: median \(sorted[1]), min \(sorted[0]), max \(sorted[2])")
    if let report {
        print(
            "  \(report.summary.nodes) nodes, availability \(report.summary.availability ?? -1), \(report.latency.count) classes, "
                + "\(report.heatmaps.leaves.count) leaves drawn, \(report.quarantines.count) quarantines, HTML \(report.html.utf8.count / 1024) KiB")
    }
}

/// Writes what a week of the service would leave for 1,000 nodes × 8 rails (32 nodes a leaf:
/// 256 leaves, rail-matched pinglists: 8,192 leaf pairs).
private func makeWeekStore(path: String, from: Timestamp) throws {
    let topology = try benchTopology()
    let store = try Store(path: path)
    try store.recordConfiguration(
        .topology, text: String(decoding: topology.jsonData(), as: UTF8.self), effectiveFrom: from.adding(seconds: -86_400))
    // A few sketches to cycle through: healthy cross-leaf windows, and a bad hour's.
    var generator = SplitMix64(seed: 46)
    func sketch(median: Double, spread: Double, count: Int) throws -> [UInt8] {
        var sketch = try QuantileSketch()
        for _ in 0..<count {
            let u = Double(generator.next() >> 11) / Double(1 << 53)
            try sketch.add(median * exp(spread * (u - 0.5)))
        }
        return sketch.encoded()
    }
    let classSketches = try (0..<8).map { try sketch(median: 8 + Double($0), spread: 0.6, count: 40_000) }
    let daySketches = try (0..<8).map { try sketch(median: 9 + Double($0), spread: 0.5, count: 5_000) }
    let windows = 7 * 86_400 / 10
    let leaves = (0..<8).map { rail in (0..<32).map { "leaf-s\($0)-r\(rail)" } }
    try store.database.transaction {
        let window = try store.database.cachedStatement(
            "INSERT INTO windows (window_start, window_seconds, report_count, closed_at) VALUES (?, 10, ?, ?)")
        let classRow = try store.database.cachedStatement(
            "INSERT INTO class_aggregates (window_start, path_class, pair_count, sent, lost, sketch) VALUES (?, ?, ?, ?, ?, ?)")
        for w in 0..<windows {
            let start = from.secondsSinceEpoch + Int64(w) * 10
            try window.bind([.integer(start), .int(w % 97 == 0 ? 998 : 1_000), .integer(start + 25)])
            _ = try window.step()
            window.reset()
            for (c, pathClass) in PathClass.allCases.enumerated() {
                try classRow.bind([
                    .integer(start), .text(pathClass.rawValue), .int(8_000), .int(16_000), .int(w % 500 == 0 ? 12 : 0),
                    .blob(classSketches[(w + c) % classSketches.count]),
                ])
                _ = try classRow.step()
                classRow.reset()
            }
        }
        let hour = try store.database.cachedStatement(
            """
            INSERT INTO leaf_hours (hour_start, src_leaf, dst_leaf, pair_count, sent, lost, p50_micros, p99_micros, sketch)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)
            """)
        let day = try store.database.cachedStatement(
            "INSERT INTO leaf_days (day_start, src_leaf, dst_leaf, pair_count, sent, lost, sketch) VALUES (?, ?, ?, ?, ?, ?, ?)")
        for rail in 0..<8 {
            for (i, src) in leaves[rail].enumerated() {
                for (j, dst) in leaves[rail].enumerated() {
                    for h in 0..<168 {
                        try hour.bind([
                            .integer(from.secondsSinceEpoch + Int64(h) * 3_600), .text(src), .text(dst), .int(360), .int(720),
                            .int((i + j + h) % 211 == 0 ? 9 : 0), .real(9 + Double((i + h) % 5)), .real(20 + Double((j + h) % 13)),
                        ])
                        _ = try hour.step()
                        hour.reset()
                    }
                    for d in 0..<7 {
                        try day.bind([
                            .integer(from.secondsSinceEpoch + Int64(d) * 86_400), .text(src), .text(dst), .int(8_640),
                            .int(17_280), .int((i * j + d) % 7), .blob(daySketches[(i + j + d) % daySketches.count]),
                        ])
                        _ = try day.step()
                        day.reset()
                    }
                }
            }
        }
        // Findings on 1% of the nodes, a quarantine for most of them.
        for n in stride(from: 7, to: 1_000, by: 97) {
            let opened = from.secondsSinceEpoch + Int64(n) * 600
            try store.database.run(
                """
                INSERT INTO findings (component, kind, class, opened_window, last_window, closed_window, confidence)
                VALUES (?, 'gpu', 'gpu.slow', ?, ?, ?, 0.9)
                """,
                [.text(String(format: "gpu-%04d/3", n)), .integer(opened), .integer(opened + 1_800), .integer(opened + 1_800)])
            let node = String(format: "gpu-%04d", n)
            let id = "\(node)@\(Timestamp(secondsSinceEpoch: opened + 30))"
            let decision = """
                {"time": "\(Timestamp(secondsSinceEpoch: opened + 30))", "decision": "quarantine", "id": "\(id)", "node": "\(node)", "component": "\(node)/3", "class": "gpu.slow", "reason": "confidence 0.9"}
                """
            try store.writeIntent(
                IntentRecord(
                    id: id + ":quarantine", kind: .quarantine, node: node, decidedAt: Timestamp(secondsSinceEpoch: opened + 30),
                    decision: decision, state: .done, attempts: 1, outcome: "drained", updatedAt: Timestamp(secondsSinceEpoch: opened + 31)),
                audit: "executor", entry: "{\"event\": \"outcome\"}")
        }
    }
}
