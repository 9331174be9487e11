// What the correlator service needs of the store beyond the event log's basics: reports encoded off
// its queue (`PreparedReport`), a window's close recorded in one transaction with its findings and
// node states, the open findings' latest events, a node's latest report, and the rebuild's ranges.

import Engine
import FleetModel
import Foundation

/// A report in the form the log stores (pairs blob, health JSON), computed before the transaction and
/// on any thread: encoding is most of `append`'s cost.
public struct PreparedReport: Sendable {
    public let report: Report
    let pairs: [UInt8]
    let health: String?

    public init(_ report: Report) {
        self.report = report
        pairs = PairsEncoding.encode(report.pairs)
        health = report.health.isEmpty ? nil : JSONValue.object(report.health).jsonText
    }
}

extension Store {
    /// Records closed windows in one transaction: each window's findings events (in order), its
    /// `closed_at`, and the node states that changed. A crash leaves all of it or none.
    public func recordWindowsClosed(
        _ windows: [(start: Timestamp, findings: [Finding])], seconds: Int, closedAt: Timestamp,
        nodeStates: [NodeState]
    ) throws {
        try database.transaction {
            for window in windows {
                try insert(findings: window.findings)
                try database.run(
                    """
                    INSERT INTO windows (window_start, window_seconds, closed_at) VALUES (?, ?, ?)
                    ON CONFLICT (window_start) DO UPDATE SET closed_at = excluded.closed_at
                    """,
                    [
                        .integer(window.start.secondsSinceEpoch), .int(seconds),
                        .integer(closedAt.secondsSinceEpoch),
                    ])
            }
            for state in nodeStates {
                try database.run(
                    "INSERT OR REPLACE INTO node_states (node, state, since_window, last_report_window, reason) VALUES (?, ?, ?, ?, ?)",
                    [
                        .text(state.node.rawValue), .text(state.state),
                        .integer(state.since.secondsSinceEpoch),
                        .optionalInt(state.lastReportWindow?.secondsSinceEpoch), .optionalText(state.reason),
                    ])
            }
        }
    }

    /// The latest window start in the event log, nil when it is empty.
    public func latestReportWindow() throws -> Timestamp? {
        try database.singleInt("SELECT max(window_start) FROM reports").map {
            Timestamp(secondsSinceEpoch: $0)
        }
    }

    /// Each node's latest report window among reports of windows from `from` on, by node.
    public func lastReportWindows(from: Timestamp) throws -> [(node: NodeName, window: Timestamp)] {
        let statement = try database.cachedStatement(
            "SELECT node, max(window_start) FROM reports WHERE window_start >= ? GROUP BY node ORDER BY node")
        try statement.bind([.integer(from.secondsSinceEpoch)])
        defer { statement.reset() }
        var result: [(node: NodeName, window: Timestamp)] = []
        while try statement.step() {
            guard let node = NodeName(statement.string(0) ?? "") else { continue }
            result.append((node, Timestamp(secondsSinceEpoch: statement.int64(1))))
        }
        return result
    }

    /// Starts of the windows closed at or after `from`, oldest first.
    public func closedWindowStarts(from: Timestamp) throws -> [Timestamp] {
        let statement = try database.cachedStatement(
            "SELECT window_start FROM windows WHERE window_start >= ? AND closed_at IS NOT NULL ORDER BY window_start"
        )
        try statement.bind([.integer(from.secondsSinceEpoch)])
        defer { statement.reset() }
        var starts: [Timestamp] = []
        while try statement.step() { starts.append(Timestamp(secondsSinceEpoch: statement.int64(0))) }
        return starts
    }

    /// Each open finding's latest event, by component then class.
    public func openFindingsLatestEvents() throws -> [Finding] {
        let statement = try database.cachedStatement(
            """
            SELECT e.id, e.window_start, e.event, f.component, f.kind, f.class, e.confidence, e.evidence
            FROM findings f JOIN finding_events e
              ON e.id = (SELECT max(id) FROM finding_events WHERE finding_id = f.id)
            WHERE f.closed_window IS NULL ORDER BY f.component, f.class
            """)
        defer { statement.reset() }
        return try findings(from: statement)
    }

    /// The findings events of one component, newest last, at most `limit` (the latest ones).
    public func findingEvents(component: Component, limit: Int) throws -> [Finding] {
        let statement = try database.cachedStatement(
            """
            SELECT * FROM (
              SELECT e.id, e.window_start, e.event, f.component, f.kind, f.class, e.confidence, e.evidence
              FROM finding_events e JOIN findings f ON f.id = e.finding_id
              WHERE f.component = ? AND f.kind = ? ORDER BY e.id DESC LIMIT ?
            ) ORDER BY id
            """)
        try statement.bind([.text(component.description), .text(component.kind), .int(limit)])
        defer { statement.reset() }
        return try findings(from: statement)
    }

    /// The latest stored report of `node`, nil if it never reported (or it was pruned).
    public func latestReport(node: NodeName) throws -> Report? {
        let statement = try database.cachedStatement(
            """
            SELECT id, window_start, node, window_seconds, agent_version, transport, pairs, health
            FROM reports WHERE node = ? ORDER BY window_start DESC LIMIT 1
            """)
        try statement.bind([.text(node.rawValue)])
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return try report(from: statement)
    }

    /// Findings from rows of (id, window_start, event, component, kind, class, confidence, evidence).
    func findings(from statement: Statement) throws -> [Finding] {
        var findings: [Finding] = []
        while try statement.step() {
            func corrupt(_ reason: String) -> StoreError {
                .corruptRow(path: path, table: "finding_events", rowID: statement.int64(0), reason: reason)
            }
            guard let event = Finding.Event(rawValue: statement.string(2) ?? "") else {
                throw corrupt("bad event")
            }
            guard
                let component = Self.component(
                    kind: statement.string(4) ?? "", name: statement.string(3) ?? "")
            else { throw corrupt("bad component") }
            guard
                let evidence = try? JSONDecoder().decode(
                    [String: JSONValue].self, from: Data((statement.string(7) ?? "").utf8))
            else { throw corrupt("evidence is not a JSON object") }
            findings.append(
                Finding(
                    window: Timestamp(secondsSinceEpoch: statement.int64(1)), event: event,
                    component: component,
                    faultClass: statement.string(5) ?? "", confidence: statement.double(6), evidence: evidence
                ))
        }
        return findings
    }
}
