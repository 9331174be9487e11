// Retention: how long raw reports and aggregates are kept, and pruning in small transactions
// (a bounded number of rows each) so it can run beside ingest without holding the write lock long.

import FleetModel

/// How long the store keeps what, in seconds.
public struct Retention: Sendable, Equatable {
    /// Raw reports (the event log replay reads). Default 72 hours.
    public var rawSeconds: Int64
    /// Windows, unhealthy pairs, class aggregates, leaf hours and days, and findings closed that long ago. Default 90 days.
    public var aggregateSeconds: Int64

    public static let defaultRawSeconds: Int64 = 72 * 3600
    public static let defaultAggregateSeconds: Int64 = 90 * 86_400

    public init(rawSeconds: Int64 = defaultRawSeconds, aggregateSeconds: Int64 = defaultAggregateSeconds) {
        self.rawSeconds = rawSeconds
        self.aggregateSeconds = aggregateSeconds
    }

    /// Parses a duration like `72h`, `90d`, `30m`, `45s` (a whole number and one unit) into seconds.
    public static func seconds(_ text: String) -> Int64? {
        guard let unit = text.last, let number = Int64(text.dropLast()), number >= 0 else { return nil }
        let scale: Int64
        switch unit {
        case "s": scale = 1
        case "m": scale = 60
        case "h": scale = 3600
        case "d": scale = 86_400
        default: return nil
        }
        let (seconds, overflow) = number.multipliedReportingOverflow(by: scale)
        return overflow ? nil : seconds
    }
}

/// What one `prune` removed.
public struct PruneResult: Sendable, Equatable {
    /// Rows removed per table, tables in a fixed order.
    public var removed: [(table: String, rows: Int)] = []
    /// Transactions committed.
    public var transactions = 0
    /// The most rows removed by one transaction.
    public var largestTransaction = 0

    public var totalRows: Int { removed.reduce(0) { $0 + $1.rows } }

    public func rows(_ table: String) -> Int { removed.first { $0.table == table }?.rows ?? 0 }

    public static func == (lhs: PruneResult, rhs: PruneResult) -> Bool {
        lhs.removed.map(\.table) == rhs.removed.map(\.table)
            && lhs.removed.map(\.rows) == rhs.removed.map(\.rows)
            && lhs.transactions == rhs.transactions && lhs.largestTransaction == rhs.largestTransaction
    }
}

extension Store {
    /// The default rows per pruning transaction: small enough that ingest waits milliseconds.
    public static let defaultPruneBatch = 500

    /// Removes what `retention` no longer keeps at `now`: rows whose window starts before
    /// `now − retention`. Each transaction removes at most `batchSize` rows of one table, so a
    /// concurrent writer (another connection) waits at most one small transaction; the service calls
    /// this on its own queue between ingests.
    @discardableResult
    public func prune(
        retention: Retention, now: Timestamp, batchSize: Int = defaultPruneBatch
    ) throws -> PruneResult {
        precondition(batchSize > 0, "batchSize must be positive")
        let rawCutoff = now.secondsSinceEpoch - retention.rawSeconds
        let aggregateCutoff = now.secondsSinceEpoch - retention.aggregateSeconds
        var result = PruneResult()
        // Each step deletes one batch of one table's rows, chosen by a rowid/key subquery.
        let steps: [(table: String, cutoff: Int64, sql: String)] = [
            (
                "reports", rawCutoff,
                "DELETE FROM reports WHERE id IN (SELECT id FROM reports WHERE window_start < ? ORDER BY window_start LIMIT ?)"
            ),
            (
                "unhealthy_pairs", aggregateCutoff,
                """
                DELETE FROM unhealthy_pairs WHERE (window_start, src, dst) IN (SELECT window_start, src, dst
                FROM unhealthy_pairs WHERE window_start < ? ORDER BY window_start LIMIT ?)
                """
            ),
            (
                "class_aggregates", aggregateCutoff,
                """
                DELETE FROM class_aggregates WHERE (window_start, path_class) IN (SELECT window_start, path_class
                FROM class_aggregates WHERE window_start < ? ORDER BY window_start LIMIT ?)
                """
            ),
            (
                "leaf_hours", aggregateCutoff,
                """
                DELETE FROM leaf_hours WHERE (hour_start, src_leaf, dst_leaf) IN (SELECT hour_start, src_leaf, dst_leaf
                FROM leaf_hours WHERE hour_start < ? ORDER BY hour_start LIMIT ?)
                """
            ),
            (
                "leaf_days", aggregateCutoff,
                """
                DELETE FROM leaf_days WHERE (day_start, src_leaf, dst_leaf) IN (SELECT day_start, src_leaf, dst_leaf
                FROM leaf_days WHERE day_start < ? ORDER BY day_start LIMIT ?)
                """
            ),
            (
                "finding_events", aggregateCutoff,
                """
                DELETE FROM finding_events WHERE id IN (SELECT e.id FROM finding_events e
                JOIN findings f ON f.id = e.finding_id WHERE f.closed_window < ? LIMIT ?)
                """
            ),
            (
                "findings", aggregateCutoff,
                "DELETE FROM findings WHERE id IN (SELECT id FROM findings WHERE closed_window < ? LIMIT ?)"
            ),
            (
                "windows", aggregateCutoff,
                "DELETE FROM windows WHERE window_start IN (SELECT window_start FROM windows WHERE window_start < ? ORDER BY window_start LIMIT ?)"
            ),
        ]
        for step in steps {
            var removed = 0
            while true {
                let rows = try database.transaction {
                    try database.run(step.sql, [.integer(step.cutoff), .int(batchSize)])
                }
                guard rows > 0 else { break }
                removed += rows
                result.transactions += 1
                result.largestTransaction = max(result.largestTransaction, rows)
                if rows < batchSize { break }
            }
            result.removed.append((step.table, removed))
        }
        return result
    }
}
