// The windows' rollups in the store, what the weekly report reads instead of the raw log: per window
// and path class in `class_aggregates`; per leaf pair, merged as windows close, into its hour
// (`leaf_hours`: numbers, and the sketch only while the hour is the newest) and its day
// (`leaf_days`, with sketches).

import Engine
import FleetModel
import QuantileSketch

/// One hour's or day's latency and loss from one leaf to another. For a sealed hour (a later hour
/// has started) `aggregate.sketch` is nil and `p50`/`p99` hold what it said.
public struct LeafRollup: Sendable, Equatable {
    public var start: Timestamp
    public var src: SwitchName
    public var dst: SwitchName
    public var aggregate: PairAggregate
    public var p50: Double?
    public var p99: Double?

    public init(start: Timestamp, src: SwitchName, dst: SwitchName, aggregate: PairAggregate, p50: Double?, p99: Double?) {
        self.start = start
        self.src = src
        self.dst = dst
        self.aggregate = aggregate
        self.p50 = p50
        self.p99 = p99
    }
}

extension Store {
    /// Records closed windows' rollups: each class's aggregate as its window's row (replacing one
    /// recorded before, so recording a window again changes nothing), each leaf pair merged into
    /// its hour and its day; hours before the newest window's lose their sketches. One transaction.
    public func record(rollups: [WindowRollup]) throws {
        guard !rollups.isEmpty else { return }
        try database.transaction {
            for rollup in rollups {
                let recorded = try database.singleInt(
                    "SELECT count(*) FROM class_aggregates WHERE window_start = ?",
                    [.integer(rollup.window.secondsSinceEpoch)])
                for (pathClass, aggregate) in rollup.classes {
                    try database.run(
                        """
                        INSERT OR REPLACE INTO class_aggregates (window_start, path_class, pair_count, sent, lost, sketch)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """,
                        [
                            .integer(rollup.window.secondsSinceEpoch), .text(pathClass.rawValue),
                            .int(aggregate.pairCount), .int(aggregate.sent), .int(aggregate.lost),
                            aggregate.sketch.map { .blob($0.encoded()) } ?? .null,
                        ])
                }
                // A window whose classes are already recorded had its leaf pairs merged then too.
                guard recorded == 0 else { continue }
                let window = rollup.window.secondsSinceEpoch
                let hour = window - window % 3_600
                let day = window - window % 86_400
                let newest = try database.singleInt("SELECT max(hour_start) FROM leaf_hours")
                // An hour before the newest is sealed: a late window adds its counts only.
                let sealed = newest.map { hour < $0 } ?? false
                for (leaves, aggregate) in rollup.leafPairs {
                    try merge(aggregate, into: "leaf_hours", key: "hour_start", start: hour, leaves: leaves, sealed: sealed)
                    try merge(aggregate, into: "leaf_days", key: "day_start", start: day, leaves: leaves, sealed: nil)
                }
                if let newest, newest < hour, !rollup.leafPairs.isEmpty {
                    // A new hour: the hours since the last one sealed give up their sketches.
                    try database.run(
                        "UPDATE leaf_hours SET sketch = NULL WHERE hour_start >= ? AND hour_start < ? AND sketch IS NOT NULL",
                        [.integer(newest), .integer(hour)])
                }
            }
        }
    }

    /// Adds `aggregate` to the row of `leaves` starting at `start` in `table`. `sealed`: nil for a
    /// day (sketches always kept); for an hour, whether a later hour has started (then only its
    /// counts change: its sketch is gone, its p50/p99 stay what they were).
    private func merge(
        _ aggregate: PairAggregate, into table: String, key: String, start: Int64, leaves: WindowRollup.LeafPair,
        sealed: Bool?
    ) throws {
        let quantiles = sealed != nil
        let keys: [SQLValue] = [.integer(start), .text(leaves.src.rawValue), .text(leaves.dst.rawValue)]
        let read = try database.cachedStatement(
            "SELECT pair_count, sent, lost, sketch FROM \(table) WHERE \(key) = ? AND src_leaf = ? AND dst_leaf = ?")
        try read.bind(keys)
        var merged = aggregate
        var found = false
        if try read.step() {
            found = true
            var stored = PairAggregate(pairCount: read.int(0), sent: read.int(1), lost: read.int(2))
            if let bytes = read.bytes(3) {
                do { stored.sketch = try QuantileSketch(decoding: bytes) } catch {
                    read.reset()
                    throw StoreError.corruptRow(path: path, table: table, rowID: start, reason: "sketch: \(error)")
                }
            }
            stored.add(aggregate)
            merged = stored
        }
        read.reset()
        if found, sealed == true {
            try database.run(
                "UPDATE \(table) SET pair_count = ?, sent = ?, lost = ? WHERE \(key) = ? AND src_leaf = ? AND dst_leaf = ?",
                [.int(merged.pairCount), .int(merged.sent), .int(merged.lost)] + keys)
            return
        }
        let sketch: SQLValue = merged.sketch.map { .blob($0.encoded()) } ?? .null
        if quantiles {
            let p50 = (try? merged.sketch?.quantile(0.5)) ?? nil
            let p99 = (try? merged.sketch?.quantile(0.99)) ?? nil
            try database.run(
                """
                INSERT OR REPLACE INTO \(table) (\(key), src_leaf, dst_leaf, pair_count, sent, lost, p50_micros, p99_micros, sketch)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                keys + [
                    .int(merged.pairCount), .int(merged.sent), .int(merged.lost), p50.map { .real($0) } ?? .null,
                    p99.map { .real($0) } ?? .null, sketch,
                ])
        } else {
            try database.run(
                "INSERT OR REPLACE INTO \(table) (\(key), src_leaf, dst_leaf, pair_count, sent, lost, sketch) VALUES (?, ?, ?, ?, ?, ?, ?)",
                keys + [.int(merged.pairCount), .int(merged.sent), .int(merged.lost), sketch])
        }
    }

    /// The leaf hours starting in `from..<to`, by hour, source and destination leaf.
    public func leafHours(from: Timestamp, to: Timestamp) throws -> [LeafRollup] {
        try leafRollups(
            """
            SELECT hour_start, src_leaf, dst_leaf, pair_count, sent, lost, sketch, p50_micros, p99_micros FROM leaf_hours
            WHERE hour_start >= ? AND hour_start < ? ORDER BY hour_start, src_leaf, dst_leaf
            """, table: "leaf_hours", from: from, to: to)
    }

    /// The leaf days starting in `from..<to`, by day, source and destination leaf.
    public func leafDays(from: Timestamp, to: Timestamp) throws -> [LeafRollup] {
        try leafRollups(
            """
            SELECT day_start, src_leaf, dst_leaf, pair_count, sent, lost, sketch, NULL, NULL FROM leaf_days
            WHERE day_start >= ? AND day_start < ? ORDER BY day_start, src_leaf, dst_leaf
            """, table: "leaf_days", from: from, to: to)
    }

    private func leafRollups(_ sql: String, table: String, from: Timestamp, to: Timestamp) throws -> [LeafRollup] {
        let statement = try database.cachedStatement(sql)
        try statement.bind([.integer(from.secondsSinceEpoch), .integer(to.secondsSinceEpoch)])
        defer { statement.reset() }
        var rows: [LeafRollup] = []
        while try statement.step() {
            func corrupt(_ reason: String) -> StoreError {
                .corruptRow(path: path, table: table, rowID: statement.int64(0), reason: reason)
            }
            guard let src = SwitchName(statement.string(1) ?? ""), let dst = SwitchName(statement.string(2) ?? "") else {
                throw corrupt("bad leaf name")
            }
            var sketch: QuantileSketch?
            if let bytes = statement.bytes(6) {
                do { sketch = try QuantileSketch(decoding: bytes) } catch { throw corrupt("sketch: \(error)") }
            }
            let aggregate = PairAggregate(
                pairCount: statement.int(3), sent: statement.int(4), lost: statement.int(5), sketch: sketch)
            rows.append(
                LeafRollup(
                    start: Timestamp(secondsSinceEpoch: statement.int64(0)), src: src, dst: dst, aggregate: aggregate,
                    p50: statement.doubleOrNil(7) ?? ((try? sketch?.quantile(0.5)) ?? nil),
                    p99: statement.doubleOrNil(8) ?? ((try? sketch?.quantile(0.99)) ?? nil)))
        }
        return rows
    }
}
