// The store's derived tables and retention: windows and their closing, unhealthy pairs, per-class
// aggregates with merged sketches, findings with their history, node states, rules and topology in
// force, statistics, and pruning exactly what retention drops, in bounded transactions.

import Engine
import FleetModel
import Foundation
import QuantileSketch
import Store
import Testing

private let base: Int64 = 1_795_000_000

private func at(_ offset: Int64) -> Timestamp { Timestamp(secondsSinceEpoch: base + offset) }
private func endpoint(_ text: String) -> EndpointID { EndpointID(text)! }

@Suite("store: derived tables and retention")
struct DerivedTablesTests {
    @Test("windows are counted on append and closed with their tick")
    func windowsClose() throws {
        try withStore { store, _ in
            _ = try store.append(try sampleReport(node: "gpu-a", start: base), receivedAt: at(1))
            _ = try store.append(try sampleReport(node: "gpu-b", start: base), receivedAt: at(2))
            try store.closeWindow(start: at(0), seconds: 10, closedAt: at(30))
            try store.closeWindow(start: at(10), seconds: 10, closedAt: at(40))  // a window nobody reported
            let windows = try store.windows()
            #expect(windows.map(\.start) == [at(0), at(10)])
            #expect(windows.map(\.reportCount) == [2, 0])
            #expect(windows.map(\.closedAt) == [at(30), at(40)])
        }
    }

    @Test("unhealthy pairs and class aggregates come back as recorded, sketches merged exactly")
    func statisticsTables() throws {
        try withStore { store, _ in
            let pairs = [
                UnhealthyPairRecord(
                    window: at(0), src: endpoint("gpu-a/1"), dst: endpoint("gpu-b/1"), verdict: "slow",
                    sent: 20,
                    lost: 0, p50Micros: 30, p99Micros: 80, baselineP50Micros: 9, baselineP99Micros: 14),
                UnhealthyPairRecord(
                    window: at(0), src: endpoint("gpu-a/2"), dst: endpoint("gpu-c/2"), verdict: "dead",
                    sent: 20, lost: 20),
            ]
            try store.record(unhealthyPairs: pairs)
            #expect(try store.unhealthyPairs(from: at(0), to: at(10)) == pairs)
            #expect(try store.unhealthyPairs(from: at(10), to: at(20)) == [])

            var merged = try QuantileSketch()
            for seed in 1...3 {
                let sketch = try sketchBytes(count: 50, median: 10, seed: UInt64(seed))
                try merged.merge(try QuantileSketch(decoding: sketch.decodedBytes!))
            }
            let aggregates = [
                ClassAggregate(
                    window: at(0), pathClass: .crossLeaf, pairCount: 3, sent: 150, lost: 0, sketch: merged),
                ClassAggregate(
                    window: at(0), pathClass: .loopback, pairCount: 0, sent: 0, lost: 0, sketch: nil),
            ]
            try store.record(classAggregates: aggregates)
            let back = try store.classAggregates(from: at(0), to: at(10))
            #expect(back.count == 2)
            #expect(Set(back.map(\.pathClass)) == [.crossLeaf, .loopback])
            let crossLeaf = try #require(back.first { $0.pathClass == .crossLeaf })
            #expect(crossLeaf.sketch?.count == 150)
            #expect(try crossLeaf.sketch?.quantiles([0.5, 0.99]) == merged.quantiles([0.5, 0.99]))
        }
    }

    @Test("findings keep their history: opened, updated, closed, and open again later")
    func findingsHistory() throws {
        let link = Component.link(LinkID("gpu-a/3~leaf-1")!)
        func finding(_ offset: Int64, _ event: Finding.Event, _ confidence: Double) -> Finding {
            Finding(
                window: at(offset), event: event, component: link, faultClass: "link.loss",
                confidence: confidence,
                evidence: ["pairs": .array([.string("gpu-a/3 -> gpu-b/3")]), "loss": .number(0.25)])
        }
        let stream = [
            finding(0, .opened, 0.9), finding(10, .updated, 0.95), finding(20, .closed, 0.95),
            finding(40, .opened, 0.8),
        ]
        try withStore { store, _ in
            try store.record(findings: Array(stream.prefix(2)))
            #expect(try store.openFindingCount() == 1)
            try store.record(findings: Array(stream.dropFirst(2)))
            #expect(try store.findingEvents() == stream)
            #expect(try store.findingEvents(from: at(10), to: at(40)).map(\.event) == [.updated, .closed])
            #expect(try store.findingEvents().map(\.jsonLine) == stream.map(\.jsonLine))
            #expect(try store.openFindingCount() == 1)
            #expect(try store.statistics().findings == 2)  // two findings, four events
        }
    }

    @Test("a finding whose class changes (down to loss) leaves no record of the old class open")
    func findingClassChange() throws {
        let link = Component.link(LinkID("gpu-a/3~leaf-1")!)
        func finding(_ offset: Int64, _ event: Finding.Event, _ faultClass: String, previous: String? = nil) -> Finding {
            var evidence: [String: JSONValue] = ["runbook": .string(runbookPath(of: faultClass))]
            if let previous { evidence["previousClass"] = .string(previous) }
            return Finding(
                window: at(offset), event: event, component: link, faultClass: faultClass, confidence: 0.9,
                evidence: evidence)
        }
        let stream = [
            finding(0, .opened, "link.down"), finding(10, .updated, "link.loss", previous: "link.down"),
        ]
        #expect(stream[1].previousClass == "link.down" && stream[0].previousClass == nil)
        try withStore { store, _ in
            try store.record(findings: stream)
            #expect(try store.openFindingsLatestEvents() == [stream[1]])
            try store.record(findings: [finding(20, .closed, "link.loss")])
            #expect(try store.openFindingsLatestEvents().isEmpty)
            #expect(try store.openFindingCount() == 0)
            // The history keeps each event's class.
            #expect(try store.findingEvents().map(\.faultClass) == ["link.down", "link.loss", "link.loss"])
        }
    }

    @Test("node states and the rules and topology in force")
    func nodeStatesAndConfiguration() throws {
        try withStore { store, _ in
            let a = NodeState(
                node: NodeName("gpu-b")!, state: "quarantined", since: at(0), lastReportWindow: at(10),
                reason: "node.unreachable")
            let b = NodeState(node: NodeName("gpu-a")!, state: "healthy", since: at(0))
            try store.setNodeState(a)
            try store.setNodeState(b)
            #expect(try store.nodeStates() == [b, a])
            var released = a
            released.state = "healthy"
            try store.setNodeState(released)
            #expect(try store.nodeStates() == [b, released])

            let first = try store.recordConfiguration(
                .rules, text: "[grace]\nwindows = 1\n", effectiveFrom: at(0))
            #expect(first == SHA256.hex(Array("[grace]\nwindows = 1\n".utf8)))
            // The same text again: kept once.
            try store.recordConfiguration(.rules, text: "[grace]\nwindows = 1\n", effectiveFrom: at(50))
            try store.recordConfiguration(.rules, text: "[grace]\nwindows = 2\n", effectiveFrom: at(100))
            try store.recordConfiguration(.topology, text: "{\"version\": 1}", effectiveFrom: at(0))
            #expect(try store.configuration(.rules, at: at(-1)) == nil)
            #expect(try store.configuration(.rules, at: at(99))?.sha256 == first)
            #expect(try store.configuration(.rules, at: at(99))?.effectiveFrom == at(0))
            #expect(try store.configuration(.rules, at: at(100))?.text == "[grace]\nwindows = 2\n")
            #expect(try store.configuration(.topology, at: at(100))?.text == "{\"version\": 1}")
            #expect(try store.database.singleInt("SELECT count(*) FROM configurations") == 3)
        }
    }

    @Test(
        "prune removes exactly the reports older than raw retention, in transactions of at most the batch size"
    )
    func pruneRawReports() throws {
        try withStore { store, _ in
            // 30 windows of 10 s × 3 nodes: window starts base … base+290.
            for window in 0..<30 {
                for node in ["gpu-a", "gpu-b", "gpu-c"] {
                    _ = try store.append(
                        try sampleReport(node: node, start: base + Int64(window) * 10), receivedAt: at(0))
                }
            }
            // Retention 100 s at now = base+255: the cutoff is base+155, so windows 0…15 (16 × 3 reports) go.
            let result = try store.prune(
                retention: Retention(rawSeconds: 100, aggregateSeconds: 1_000_000), now: at(255), batchSize: 7
            )
            #expect(result.rows("reports") == 48)
            #expect(result.transactions == 7)  // ⌈48 / 7⌉
            #expect(result.largestTransaction == 7)
            let left = try store.reports()
            #expect(left.count == 42)
            #expect(left.first?.windowStart == at(160))
            #expect(left.allSatisfy { $0.windowStart.secondsSinceEpoch >= base + 155 })
            #expect(try store.windows().count == 30)  // aggregates are kept longer
            // Pruning again at the same time removes nothing.
            #expect(
                try store.prune(
                    retention: Retention(rawSeconds: 100, aggregateSeconds: 1_000_000), now: at(255)
                ).totalRows == 0)
        }
    }

    @Test("prune removes aggregates and closed findings older than aggregate retention, and keeps open ones")
    func pruneAggregates() throws {
        try withStore { store, _ in
            for window in Int64(0)..<10 {
                try store.closeWindow(start: at(window * 10), seconds: 10, closedAt: at(window * 10 + 20))
                try store.record(classAggregates: [
                    ClassAggregate(
                        window: at(window * 10), pathClass: .sameLeaf, pairCount: 1, sent: 20, lost: 0,
                        sketch: nil)
                ])
                try store.record(unhealthyPairs: [
                    UnhealthyPairRecord(
                        window: at(window * 10), src: endpoint("gpu-a/1"), dst: endpoint("gpu-b/1"),
                        verdict: "slow", sent: 20, lost: 0)
                ])
            }
            let old = Component.node(NodeName("gpu-old")!)
            let open = Component.node(NodeName("gpu-open")!)
            try store.record(findings: [
                Finding(
                    window: at(0), event: .opened, component: old, faultClass: "node.unreachable",
                    confidence: 1, evidence: [:]),
                Finding(
                    window: at(0), event: .opened, component: open, faultClass: "node.unreachable",
                    confidence: 1, evidence: [:]),
                Finding(
                    window: at(20), event: .closed, component: old, faultClass: "node.unreachable",
                    confidence: 1, evidence: [:]),
            ])
            // Aggregate retention 50 s at now = base+100: cutoff base+50, windows 0…40 go (5 of 10).
            let result = try store.prune(
                retention: Retention(rawSeconds: 10, aggregateSeconds: 50), now: at(100), batchSize: 2)
            #expect(result.rows("windows") == 5)
            #expect(result.rows("class_aggregates") == 5)
            #expect(result.rows("unhealthy_pairs") == 5)
            #expect(result.rows("findings") == 1)
            #expect(result.rows("finding_events") == 2)
            #expect(result.largestTransaction <= 2)
            #expect(try store.windows().map(\.start) == (5..<10).map { at(Int64($0) * 10) })
            #expect(try store.classAggregates(from: at(0), to: at(1000)).count == 5)
            #expect(try store.findingEvents().map(\.component) == [open])
            #expect(try store.statistics().findings == 1)
        }
    }

    @Test("durations parse as a whole number and one unit")
    func durations() {
        #expect(Retention.seconds("72h") == 259_200)
        #expect(Retention.seconds("90d") == 7_776_000)
        #expect(Retention.seconds("30m") == 1800)
        #expect(Retention.seconds("45s") == 45)
        for bad in ["", "h", "72", "7.5h", "-1h", "72 h", "1w", "99999999999999999d"] {
            #expect(Retention.seconds(bad) == nil, "\(bad)")
        }
    }
}
