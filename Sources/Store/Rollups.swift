// The windows' rollups in the store, what the weekly report reads instead of the raw log: per window
// and path class in `class_aggregates`, per hour and leaf pair in `leaf_hours` (merged as windows
// close, so a week of a large fleet is a few hundred thousand rows, not the raw reports).

import Engine
import FleetModel
import QuantileSketch

/// One hour's latency and loss from one leaf to another.
public struct LeafHour: Sendable, Equatable {
    public var hour: Timestamp
    public var src: SwitchName
    public var dst: SwitchName
    public var aggregate: PairAggregate

    public init(hour: Timestamp, src: SwitchName, dst: SwitchName, aggregate: PairAggregate) {
        self.hour = hour
        self.src = src
        self.dst = dst
        self.aggregate = aggregate
    }
}

extension Store {
    /// Records closed windows' rollups: each class's aggregate as its window's row (replacing one
    /// recorded before, so recording a window again changes nothing), each leaf pair's merged into
    /// its hour. All in one transaction.
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
                let hour = rollup.window.secondsSinceEpoch - rollup.window.secondsSinceEpoch % 3600
                for (leaves, aggregate) in rollup.leafPairs {
                    var merged = try leafHour(hour: hour, src: leaves.src, dst: leaves.dst) ?? PairAggregate()
                    merged.add(aggregate)
                    try database.run(
                        """
                        INSERT OR REPLACE INTO leaf_hours (hour_start, src_leaf, dst_leaf, pair_count, sent, lost, sketch)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """,
                        [
                            .integer(hour), .text(leaves.src.rawValue), .text(leaves.dst.rawValue),
                            .int(merged.pairCount), .int(merged.sent), .int(merged.lost),
                            merged.sketch.map { .blob($0.encoded()) } ?? .null,
                        ])
                }
            }
        }
    }

    private func leafHour(hour: Int64, src: SwitchName, dst: SwitchName) throws -> PairAggregate? {
        let statement = try database.cachedStatement(
            "SELECT pair_count, sent, lost, sketch FROM leaf_hours WHERE hour_start = ? AND src_leaf = ? AND dst_leaf = ?")
        try statement.bind([.integer(hour), .text(src.rawValue), .text(dst.rawValue)])
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return PairAggregate(
            pairCount: statement.int(0), sent: statement.int(1), lost: statement.int(2),
            sketch: try statement.bytes(3).map { bytes in
                do { return try QuantileSketch(decoding: bytes) } catch {
                    throw StoreError.corruptRow(path: path, table: "leaf_hours", rowID: hour, reason: "sketch: \(error)")
                }
            })
    }

    /// The leaf hours starting in `from..<to`, by hour, source and destination leaf.
    public func leafHours(from: Timestamp, to: Timestamp) throws -> [LeafHour] {
        let statement = try database.cachedStatement(
            """
            SELECT hour_start, src_leaf, dst_leaf, pair_count, sent, lost, sketch FROM leaf_hours
            WHERE hour_start >= ? AND hour_start < ? ORDER BY hour_start, src_leaf, dst_leaf
            """)
        try statement.bind([.integer(from.secondsSinceEpoch), .integer(to.secondsSinceEpoch)])
        defer { statement.reset() }
        var hours: [LeafHour] = []
        while try statement.step() {
            func corrupt(_ reason: String) -> StoreError {
                .corruptRow(path: path, table: "leaf_hours", rowID: statement.int64(0), reason: reason)
            }
            guard let src = SwitchName(statement.string(1) ?? ""), let dst = SwitchName(statement.string(2) ?? "") else {
                throw corrupt("bad leaf name")
            }
            var sketch: QuantileSketch?
            if let bytes = statement.bytes(6) {
                do { sketch = try QuantileSketch(decoding: bytes) } catch { throw corrupt("sketch: \(error)") }
            }
            hours.append(
                LeafHour(
                    hour: Timestamp(secondsSinceEpoch: statement.int64(0)), src: src, dst: dst,
                    aggregate: PairAggregate(
                        pairCount: statement.int(3), sent: statement.int(4), lost: statement.int(5), sketch: sketch)))
        }
        return hours
    }
}
