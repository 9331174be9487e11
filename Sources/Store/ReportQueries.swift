// What the weekly report reads beside the rollups: findings that were open during a period, and
// the windows of a period with how many reports each got.

import FleetModel

/// One finding's life, as the `findings` table keeps it (times are window starts).
public struct FindingSpan: Sendable, Equatable {
    public var id: Int64
    /// The component as the findings stream names it, and its kind (`endpoint`, `node`, `link`, ...).
    public var component: String
    public var kind: String
    public var faultClass: String
    public var opened: Timestamp
    public var last: Timestamp
    public var closed: Timestamp?
    public var confidence: Double

    public init(
        id: Int64, component: String, kind: String, faultClass: String, opened: Timestamp, last: Timestamp,
        closed: Timestamp?, confidence: Double
    ) {
        self.id = id
        self.component = component
        self.kind = kind
        self.faultClass = faultClass
        self.opened = opened
        self.last = last
        self.closed = closed
        self.confidence = confidence
    }
}

extension Store {
    /// Findings open at some time in `from..<to` (opened before `to`, not closed before `from`),
    /// by opening window and id. `confidence` is the latest event's.
    public func findingSpans(from: Timestamp, to: Timestamp) throws -> [FindingSpan] {
        let statement = try database.cachedStatement(
            """
            SELECT f.id, f.component, f.kind, f.class, f.opened_window, f.last_window, f.closed_window,
                coalesce((SELECT e.confidence FROM finding_events e WHERE e.finding_id = f.id ORDER BY e.id DESC LIMIT 1),
                    f.confidence)
            FROM findings f
            WHERE f.opened_window < ? AND (f.closed_window IS NULL OR f.closed_window >= ?)
            ORDER BY f.opened_window, f.id
            """)
        try statement.bind([.integer(to.secondsSinceEpoch), .integer(from.secondsSinceEpoch)])
        defer { statement.reset() }
        var spans: [FindingSpan] = []
        while try statement.step() {
            spans.append(
                FindingSpan(
                    id: statement.int64(0), component: statement.string(1) ?? "", kind: statement.string(2) ?? "",
                    faultClass: statement.string(3) ?? "", opened: Timestamp(secondsSinceEpoch: statement.int64(4)),
                    last: Timestamp(secondsSinceEpoch: statement.int64(5)),
                    closed: statement.int64OrNil(6).map { Timestamp(secondsSinceEpoch: $0) },
                    confidence: statement.doubleOrNil(7) ?? 0))
        }
        return spans
    }

    /// The windows starting in `from..<to`, oldest first.
    public func windows(from: Timestamp, to: Timestamp) throws -> [WindowRecord] {
        let statement = try database.cachedStatement(
            """
            SELECT window_start, window_seconds, report_count, closed_at FROM windows
            WHERE window_start >= ? AND window_start < ? ORDER BY window_start
            """)
        try statement.bind([.integer(from.secondsSinceEpoch), .integer(to.secondsSinceEpoch)])
        defer { statement.reset() }
        var windows: [WindowRecord] = []
        while try statement.step() {
            windows.append(
                WindowRecord(
                    start: Timestamp(secondsSinceEpoch: statement.int64(0)), seconds: statement.int(1),
                    reportCount: statement.int(2),
                    closedAt: statement.int64OrNil(3).map { Timestamp(secondsSinceEpoch: $0) }))
        }
        return windows
    }
}
