// The correlator's store: typed methods over one `Database` for the report event log (append with
// duplicate detection, replay reader), windows, unhealthy-pair statistics, per-class aggregates,
// findings with their history, node states, and the rules and topology in force.

import Engine
import FleetModel
import Foundation
import QuantileSketch

/// A store-level failure that is not SQLite's own.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file records migrations this build does not know (a newer Faultline wrote it).
    case unknownMigrations(path: String, [String])
    /// The file lacks migrations this build needs; `faultline db migrate` applies them.
    case pendingMigrations(path: String, [String])
    /// A stored row could not be read back.
    case corruptRow(path: String, table: String, rowID: Int64, reason: String)

    public var description: String {
        switch self {
        case .unknownMigrations(let path, let names):
            "\(path): records migrations this build does not know: \(names.joined(separator: ", ")) (written by a newer Faultline?)"
        case .pendingMigrations(let path, let names):
            "\(path): needs migrations \(names.joined(separator: ", ")); run `faultline db migrate --db \(path)`"
        case .corruptRow(let path, let table, let rowID, let reason):
            "\(path): \(table) row \(rowID) cannot be read: \(reason)"
        }
    }
}

/// What `append` did with a report (wire-v1 §3).
public enum AppendOutcome: String, Sendable, Equatable {
    /// New: stored (and committed) before `append` returned.
    case stored
    /// The same node and window with identical content was already stored: accepted again (HTTP 202).
    case duplicateSame = "duplicate-same"
    /// The same node and window with different content is stored: refused, the first stays (HTTP 409).
    case conflict
}

/// A window the correlator has seen.
public struct WindowRecord: Sendable, Equatable {
    public let start: Timestamp
    public let seconds: Int
    public let reportCount: Int
    /// When it was closed (the engine's tick), nil while open.
    public let closedAt: Timestamp?
}

/// A pair the engine judged unhealthy in one window, with the numbers it judged on.
public struct UnhealthyPairRecord: Sendable, Equatable {
    public var window: Timestamp
    public var src: EndpointID
    public var dst: EndpointID
    /// e.g. `slow`, `lossy`, `dead`.
    public var verdict: String
    public var sent: Int
    public var lost: Int
    public var p50Micros: Double?
    public var p99Micros: Double?
    public var baselineP50Micros: Double?
    public var baselineP99Micros: Double?

    public init(
        window: Timestamp, src: EndpointID, dst: EndpointID, verdict: String, sent: Int, lost: Int,
        p50Micros: Double? = nil, p99Micros: Double? = nil, baselineP50Micros: Double? = nil,
        baselineP99Micros: Double? = nil
    ) {
        self.window = window
        self.src = src
        self.dst = dst
        self.verdict = verdict
        self.sent = sent
        self.lost = lost
        self.p50Micros = p50Micros
        self.p99Micros = p99Micros
        self.baselineP50Micros = baselineP50Micros
        self.baselineP99Micros = baselineP99Micros
    }
}

/// The fleet's aggregate for one path class in one window.
public struct ClassAggregate: Sendable, Equatable {
    public var window: Timestamp
    public var pathClass: PathClass
    public var pairCount: Int
    public var sent: Int
    public var lost: Int
    /// The merge of the class's pair sketches.
    public var sketch: QuantileSketch?

    public init(
        window: Timestamp, pathClass: PathClass, pairCount: Int, sent: Int, lost: Int, sketch: QuantileSketch?
    ) {
        self.window = window
        self.pathClass = pathClass
        self.pairCount = pairCount
        self.sent = sent
        self.lost = lost
        self.sketch = sketch
    }
}

/// What the correlator believes about one node.
public struct NodeState: Sendable, Equatable {
    public var node: NodeName
    /// e.g. `healthy`, `suspect`, `quarantined`, `silent`.
    public var state: String
    public var since: Timestamp
    public var lastReportWindow: Timestamp?
    public var reason: String?

    public init(
        node: NodeName, state: String, since: Timestamp, lastReportWindow: Timestamp? = nil,
        reason: String? = nil
    ) {
        self.node = node
        self.state = state
        self.since = since
        self.lastReportWindow = lastReportWindow
        self.reason = reason
    }
}

/// Rules or topology text in force from a window on.
public struct ConfigurationRecord: Sendable, Equatable {
    public enum Kind: String, Sendable { case rules, topology }
    public let kind: Kind
    public let effectiveFrom: Timestamp
    /// SHA-256 of the text's UTF-8, lowercase hex.
    public let sha256: String
    public let text: String
}

/// Counts for `faultline db stats`.
public struct StoreStatistics: Sendable, Equatable {
    public let reports: Int
    public let windows: Int
    public let findings: Int
    /// The database file plus its WAL, in bytes.
    public let bytes: Int64
}

/// The correlator's SQLite store.
///
/// Not `Sendable`, not thread-safe: the service owns one `Store` and uses it from one serial queue;
/// replay and the CLI own their own. Every write method commits before it returns.
public final class Store {
    /// The connection (for `faultline db check` and tests).
    public let database: Database
    public var path: String { database.path }

    /// Opens (or with `.create`, creates) the store at `path`. With `migrate`, pending migrations are
    /// applied first; without, a file that lacks some fails with `StoreError.pendingMigrations`.
    public init(path: String, mode: Database.OpenMode = .create, migrate: Bool = true) throws {
        database = try Database(path: path, mode: mode)
        if migrate {
            try Migrations.migrate(database)
        } else {
            let status = try Migrations.status(of: database)
            guard status.isConsistent else { throw StoreError.unknownMigrations(path: path, status.unknown) }
            guard status.pending.isEmpty else {
                throw StoreError.pendingMigrations(path: path, status.pending)
            }
        }
    }

    // MARK: The event log

    /// Stores one report, unless its node and window are stored already: then the outcome says
    /// whether the content is the same (accept again) or not (conflict; the first one stays).
    /// A `.stored` report is committed when this returns: it survives the process being killed.
    public func append(_ report: Report, receivedAt: Timestamp) throws -> AppendOutcome {
        let encoded = PreparedReport(report)
        return try database.transaction { try insert(encoded, receivedAt: receivedAt) }
    }

    /// Stores several reports in one transaction (an agent's spool flush, one NDJSON body): one
    /// commit for all, so cheaper per report than `append` one by one. The outcomes are in the
    /// reports' order; a report whose node and window came earlier in the same batch is a duplicate
    /// or conflict of that one. All are committed when this returns; if it throws, none is stored.
    public func append(contentsOf reports: [Report], receivedAt: Timestamp) throws -> [AppendOutcome] {
        try append(prepared: reports.map(PreparedReport.init), receivedAt: receivedAt)
    }

    /// `append(contentsOf:)` for reports already encoded (by `PreparedReport`, on any thread): the
    /// service encodes on its connection threads and keeps only the transaction on its one queue.
    public func append(prepared reports: [PreparedReport], receivedAt: Timestamp) throws -> [AppendOutcome] {
        try database.transaction { try reports.map { try insert($0, receivedAt: receivedAt) } }
    }

    private func insert(_ encoded: PreparedReport, receivedAt: Timestamp) throws -> AppendOutcome {
        let report = encoded.report
        let existing = try database.cachedStatement(
            """
            SELECT window_seconds, agent_version, transport, pairs, health FROM reports
            WHERE window_start = ? AND node = ?
            """)
        try existing.bind([.integer(report.windowStart.secondsSinceEpoch), .text(report.node.rawValue)])
        if try existing.step() {
            // Everything but the key. The pairs blob is a function of the report (names numbered by
            // first use), so equal reports have equal blobs.
            let same =
                existing.int(0) == report.windowSeconds && existing.string(1) == report.agentVersion
                && existing.string(2) == report.transport.rawValue && existing.bytes(3) == encoded.pairs
                && existing.string(4) == encoded.health
            existing.reset()
            return same ? .duplicateSame : .conflict
        }
        existing.reset()
        try database.run(
            """
            INSERT INTO reports (window_start, node, window_seconds, agent_version, transport, pair_count,
                pairs, health, received_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .integer(report.windowStart.secondsSinceEpoch), .text(report.node.rawValue),
                .int(report.windowSeconds), .text(report.agentVersion), .text(report.transport.rawValue),
                .int(report.pairs.count), .blob(encoded.pairs), .optionalText(encoded.health),
                .integer(receivedAt.secondsSinceEpoch),
            ])
        try database.run(
            """
            INSERT INTO windows (window_start, window_seconds, report_count) VALUES (?, ?, 1)
            ON CONFLICT (window_start) DO UPDATE SET report_count = report_count + 1
            """, [.integer(report.windowStart.secondsSinceEpoch), .int(report.windowSeconds)])
        return .stored
    }

    /// Calls `body` with each stored report in (window start, node) order, optionally only those
    /// whose window starts in `from..<to`. Reads one row at a time; `body` may use the store. With
    /// `sketches: .compact`, the reports are for the engine: their sketches stay in the log's compact
    /// form (`PairsEncoding.SketchForm`).
    public func forEachReport(
        from: Timestamp? = nil, to: Timestamp? = nil, sketches: PairsEncoding.SketchForm = .expanded,
        _ body: (Report) throws -> Void
    ) throws {
        try forEachReportRow(from: from, to: to) { row in
            try body(
                try report(from: row) { _, bytes throws(EncodingError) in
                    try PairsEncoding.decode(Array(bytes), sketches: sketches)
                })
        }
    }

    /// `forEachReport` for a replay's engine: each report's sketches read by `reader` as the row is
    /// decoded, and not kept, and each node's routes shared from row to row while they stay the
    /// same (`PairsEncoding.decode(_:of:reading:)`); one reader per thread.
    public func forEachMeasuredReport(
        from: Timestamp? = nil, to: Timestamp? = nil, reader: inout StoredReportReader,
        _ body: (MeasuredReport) throws -> Void
    ) throws {
        try forEachReportRow(from: from, to: to) { row in
            var decoded: (roster: PairRoster, measures: [PairMeasure])?
            let report = try report(from: row) { node, bytes throws(EncodingError) in
                decoded = try PairsEncoding.decode(bytes, of: node, reading: &reader)
                return []
            }
            try body(
                MeasuredReport(
                    node: report.node, windowStart: report.windowStart, windowSeconds: report.windowSeconds,
                    health: report.health, roster: decoded!.roster, measures: decoded!.measures))
        }
    }

    /// Steps through the report rows `forEachReport` visits.
    private func forEachReportRow(from: Timestamp?, to: Timestamp?, _ body: (Statement) throws -> Void) throws {
        let statement = try database.prepare(
            """
            SELECT id, window_start, node, window_seconds, agent_version, transport, pairs, health
            FROM reports WHERE window_start >= ? AND window_start < ? ORDER BY window_start, node
            """)
        try statement.bind([
            .integer(from?.secondsSinceEpoch ?? Int64.min), .integer(to?.secondsSinceEpoch ?? Int64.max),
        ])
        while try statement.step() { try body(statement) }
    }

    /// The reports `forEachReport` visits, as wire-v1 JSON lines (no newline).
    public func forEachReportLine(
        from: Timestamp? = nil, to: Timestamp? = nil, _ body: (String) throws -> Void
    ) throws {
        try forEachReport(from: from, to: to) { try body($0.jsonLine) }
    }

    /// Every stored report in (window start, node) order, optionally within `from..<to`.
    public func reports(from: Timestamp? = nil, to: Timestamp? = nil) throws -> [Report] {
        var reports: [Report] = []
        try forEachReport(from: from, to: to) { reports.append($0) }
        return reports
    }

    /// The report of a row of `reports`, its pairs decoded by `decodePairs` (expanded by default)
    /// from the bytes SQLite holds, which last only for that call.
    func report(
        from row: Statement,
        decodingPairs decodePairs: (NodeName, UnsafeBufferPointer<UInt8>) throws(EncodingError) -> [Report.Pair] = {
            _, bytes throws(EncodingError) in try PairsEncoding.decode(Array(bytes))
        }
    ) throws -> Report {
        let id = row.int64(0)
        func corrupt(_ reason: String) -> StoreError {
            .corruptRow(path: path, table: "reports", rowID: id, reason: reason)
        }
        guard let node = NodeName(row.string(2) ?? "") else { throw corrupt("bad node") }
        guard let transport = Report.Transport(rawValue: row.string(5) ?? "") else {
            throw corrupt("bad transport")
        }
        let pairs: [Report.Pair]
        do {
            pairs = try row.withBytes(6) { (bytes) throws(EncodingError) in try decodePairs(node, bytes) }
        } catch {
            throw corrupt("pairs: \(error)")
        }
        var health: [String: JSONValue] = [:]
        if let text = row.string(7) {
            guard let decoded = try? JSONDecoder().decode([String: JSONValue].self, from: Data(text.utf8))
            else {
                throw corrupt("health is not a JSON object")
            }
            health = decoded
        }
        return Report(
            node: node, windowStart: Timestamp(secondsSinceEpoch: row.int64(1)), windowSeconds: row.int(3),
            agentVersion: row.string(4) ?? "", transport: transport, pairs: pairs, health: health)
    }

    // MARK: Windows

    /// Marks the window starting at `start` closed at `closedAt` (created if no report came for it).
    public func closeWindow(start: Timestamp, seconds: Int, closedAt: Timestamp) throws {
        try database.transaction {
            try database.run(
                """
                INSERT INTO windows (window_start, window_seconds, closed_at) VALUES (?, ?, ?)
                ON CONFLICT (window_start) DO UPDATE SET closed_at = excluded.closed_at
                """, [.integer(start.secondsSinceEpoch), .int(seconds), .integer(closedAt.secondsSinceEpoch)])
        }
    }

    /// Every window, oldest first.
    public func windows() throws -> [WindowRecord] {
        try windows(from: Timestamp(secondsSinceEpoch: .min), to: Timestamp(secondsSinceEpoch: .max))
    }

    // MARK: Window statistics

    /// Records one window's unhealthy pairs (replacing any recorded for the same pair and window).
    public func record(unhealthyPairs: [UnhealthyPairRecord]) throws {
        try database.transaction {
            for pair in unhealthyPairs {
                try database.run(
                    """
                    INSERT OR REPLACE INTO unhealthy_pairs (window_start, src, dst, verdict, sent, lost,
                        p50_micros, p99_micros, baseline_p50_micros, baseline_p99_micros)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [
                        .integer(pair.window.secondsSinceEpoch), .text(pair.src.description),
                        .text(pair.dst.description),
                        .text(pair.verdict), .int(pair.sent), .int(pair.lost), real(pair.p50Micros),
                        real(pair.p99Micros), real(pair.baselineP50Micros), real(pair.baselineP99Micros),
                    ])
            }
        }
    }

    /// The unhealthy pairs of windows starting in `from..<to`, by window, src, dst.
    public func unhealthyPairs(from: Timestamp, to: Timestamp) throws -> [UnhealthyPairRecord] {
        let statement = try database.cachedStatement(
            """
            SELECT window_start, src, dst, verdict, sent, lost, p50_micros, p99_micros, baseline_p50_micros,
                baseline_p99_micros
            FROM unhealthy_pairs WHERE window_start >= ? AND window_start < ? ORDER BY window_start, src, dst
            """)
        try statement.bind([.integer(from.secondsSinceEpoch), .integer(to.secondsSinceEpoch)])
        defer { statement.reset() }
        var pairs: [UnhealthyPairRecord] = []
        while try statement.step() {
            guard let src = EndpointID(statement.string(1) ?? ""),
                let dst = EndpointID(statement.string(2) ?? "")
            else {
                throw StoreError.corruptRow(
                    path: path, table: "unhealthy_pairs", rowID: 0, reason: "bad endpoint")
            }
            pairs.append(
                UnhealthyPairRecord(
                    window: Timestamp(secondsSinceEpoch: statement.int64(0)), src: src, dst: dst,
                    verdict: statement.string(3) ?? "", sent: statement.int(4), lost: statement.int(5),
                    p50Micros: statement.doubleOrNil(6), p99Micros: statement.doubleOrNil(7),
                    baselineP50Micros: statement.doubleOrNil(8), baselineP99Micros: statement.doubleOrNil(9)))
        }
        return pairs
    }

    /// Records per-class aggregates (replacing any for the same window and class).
    public func record(classAggregates: [ClassAggregate]) throws {
        try database.transaction {
            for aggregate in classAggregates {
                try database.run(
                    """
                    INSERT OR REPLACE INTO class_aggregates (window_start, path_class, pair_count, sent, lost, sketch)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                    [
                        .integer(aggregate.window.secondsSinceEpoch), .text(aggregate.pathClass.rawValue),
                        .int(aggregate.pairCount), .int(aggregate.sent), .int(aggregate.lost),
                        aggregate.sketch.map { .blob($0.encoded()) } ?? .null,
                    ])
            }
        }
    }

    /// The aggregates of windows starting in `from..<to`, by window and class.
    public func classAggregates(from: Timestamp, to: Timestamp) throws -> [ClassAggregate] {
        let statement = try database.cachedStatement(
            """
            SELECT window_start, path_class, pair_count, sent, lost, sketch FROM class_aggregates
            WHERE window_start >= ? AND window_start < ? ORDER BY window_start, path_class
            """)
        try statement.bind([.integer(from.secondsSinceEpoch), .integer(to.secondsSinceEpoch)])
        defer { statement.reset() }
        var aggregates: [ClassAggregate] = []
        while try statement.step() {
            func corrupt(_ reason: String) -> StoreError {
                .corruptRow(path: path, table: "class_aggregates", rowID: statement.int64(0), reason: reason)
            }
            guard let pathClass = PathClass(rawValue: statement.string(1) ?? "") else {
                throw corrupt("bad path class")
            }
            var sketch: QuantileSketch?
            if let bytes = statement.bytes(5) {
                do {
                    sketch = try QuantileSketch(decoding: bytes)
                } catch {
                    throw corrupt("sketch: \(error)")
                }
            }
            aggregates.append(
                ClassAggregate(
                    window: Timestamp(secondsSinceEpoch: statement.int64(0)), pathClass: pathClass,
                    pairCount: statement.int(2), sent: statement.int(3), lost: statement.int(4),
                    sketch: sketch))
        }
        return aggregates
    }

    // MARK: Findings

    /// Records findings-stream events in order: `opened` starts a finding, `updated` and `closed`
    /// continue the open finding of the same component and class (an orphan one starts a record so
    /// nothing is lost). All in one transaction.
    public func record(findings: [Finding]) throws {
        try database.transaction { try insert(findings: findings) }
    }

    /// `record(findings:)` inside a transaction the caller holds.
    func insert(findings: [Finding]) throws {
        do {
            for finding in findings {
                let window = finding.window.secondsSinceEpoch
                let component = finding.component.description
                var findingID = try database.singleInt(
                    "SELECT id FROM findings WHERE component = ? AND class = ? AND closed_window IS NULL",
                    [.text(component), .text(finding.faultClass)])
                if findingID == nil, let previous = finding.previousClass {
                    // The class changed: the record of the class it had ends here, the new class's
                    // record starts with this event (each record keeps its class and its events).
                    try database.run(
                        "UPDATE findings SET closed_window = ? WHERE component = ? AND class = ? AND closed_window IS NULL",
                        [.integer(window), .text(component), .text(previous)])
                }
                if finding.event == .opened, findingID != nil {
                    // Opened again while open: close the earlier record where the new one starts.
                    try database.run(
                        "UPDATE findings SET closed_window = ? WHERE id = ?",
                        [.integer(window), .optionalInt(findingID)])
                    findingID = nil
                }
                if findingID == nil {
                    try database.run(
                        """
                        INSERT INTO findings (component, kind, class, opened_window, last_window, confidence)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """,
                        [
                            .text(component), .text(finding.component.kind), .text(finding.faultClass),
                            .integer(window), .integer(window), .real(finding.confidence),
                        ])
                    findingID = database.lastInsertedRowID
                }
                try database.run(
                    "UPDATE findings SET last_window = ?, confidence = ?, closed_window = ? WHERE id = ?",
                    [
                        .integer(window), .real(finding.confidence),
                        finding.event == .closed ? .integer(window) : .null, .optionalInt(findingID),
                    ])
                try database.run(
                    "INSERT INTO finding_events (finding_id, window_start, event, confidence, evidence) VALUES (?, ?, ?, ?, ?)",
                    [
                        .optionalInt(findingID), .integer(window), .text(finding.event.rawValue),
                        .real(finding.confidence), .text(JSONValue.object(finding.evidence).jsonText),
                    ])
            }
        }
    }

    /// The findings stream as recorded, optionally for windows starting in `from..<to`, in the order recorded.
    public func findingEvents(from: Timestamp? = nil, to: Timestamp? = nil) throws -> [Finding] {
        let statement = try database.cachedStatement(
            """
            SELECT e.id, e.window_start, e.event, f.component, f.kind, f.class, e.confidence, e.evidence
            FROM finding_events e JOIN findings f ON f.id = e.finding_id
            WHERE e.window_start >= ? AND e.window_start < ? ORDER BY e.id
            """)
        try statement.bind([
            .integer(from?.secondsSinceEpoch ?? Int64.min), .integer(to?.secondsSinceEpoch ?? Int64.max),
        ])
        defer { statement.reset() }
        return try findings(from: statement)
    }

    /// How many findings are open now.
    public func openFindingCount() throws -> Int {
        Int(try database.singleInt("SELECT count(*) FROM findings WHERE closed_window IS NULL") ?? 0)
    }

    public static func component(kind: String, name: String) -> Component? {
        switch kind {
        case "gpu": EndpointID(name).map { .endpoint($0) }
        case "node": NodeName(name).map { .node($0) }
        case "link": LinkID(name).map { .link($0) }
        case "switch": SwitchName(name).map { .switch($0) }
        default: nil
        }
    }

    // MARK: Node states

    /// Sets (or replaces) one node's state.
    public func setNodeState(_ state: NodeState) throws {
        try database.transaction {
            try database.run(
                "INSERT OR REPLACE INTO node_states (node, state, since_window, last_report_window, reason) VALUES (?, ?, ?, ?, ?)",
                [
                    .text(state.node.rawValue), .text(state.state), .integer(state.since.secondsSinceEpoch),
                    .optionalInt(state.lastReportWindow?.secondsSinceEpoch), .optionalText(state.reason),
                ])
        }
    }

    /// Every node's state, by node name.
    public func nodeStates() throws -> [NodeState] {
        let statement = try database.cachedStatement(
            "SELECT node, state, since_window, last_report_window, reason FROM node_states ORDER BY node")
        defer { statement.reset() }
        var states: [NodeState] = []
        while try statement.step() {
            guard let node = NodeName(statement.string(0) ?? "") else {
                throw StoreError.corruptRow(
                    path: path, table: "node_states", rowID: 0, reason: "bad node name")
            }
            states.append(
                NodeState(
                    node: node, state: statement.string(1) ?? "",
                    since: Timestamp(secondsSinceEpoch: statement.int64(2)),
                    lastReportWindow: statement.int64OrNil(3).map { Timestamp(secondsSinceEpoch: $0) },
                    reason: statement.string(4)))
        }
        return states
    }

    // MARK: Rules and topology

    /// Records `text` as the rules or topology in force from `effectiveFrom` on, unless the same text
    /// is already the latest of its kind; returns its SHA-256.
    @discardableResult
    public func recordConfiguration(
        _ kind: ConfigurationRecord.Kind, text: String, effectiveFrom: Timestamp
    ) throws -> String {
        let hash = SHA256.hex(Array(text.utf8))
        try database.transaction {
            let latest = try database.singleText(
                "SELECT sha256 FROM configurations WHERE kind = ? ORDER BY effective_from DESC, id DESC LIMIT 1",
                [.text(kind.rawValue)])
            guard latest != hash else { return }
            try database.run(
                "INSERT INTO configurations (kind, effective_from, sha256, text) VALUES (?, ?, ?, ?)",
                [.text(kind.rawValue), .integer(effectiveFrom.secondsSinceEpoch), .text(hash), .text(text)])
        }
        return hash
    }

    /// The rules or topology in force at `time` (the latest effective at or before it).
    public func configuration(
        _ kind: ConfigurationRecord.Kind, at time: Timestamp
    ) throws -> ConfigurationRecord? {
        let statement = try database.cachedStatement(
            """
            SELECT effective_from, sha256, text FROM configurations WHERE kind = ? AND effective_from <= ?
            ORDER BY effective_from DESC, id DESC LIMIT 1
            """)
        try statement.bind([.text(kind.rawValue), .integer(time.secondsSinceEpoch)])
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return ConfigurationRecord(
            kind: kind, effectiveFrom: Timestamp(secondsSinceEpoch: statement.int64(0)),
            sha256: statement.string(1) ?? "", text: statement.string(2) ?? "")
    }

    // MARK: Statistics

    /// Row counts, and the bytes on disk: the database file plus its write-ahead log (which holds
    /// recent commits until a checkpoint copies them into the file).
    public func statistics() throws -> StoreStatistics {
        func count(_ table: String) throws -> Int {
            Int(try database.singleInt("SELECT count(*) FROM \(table)") ?? 0)
        }
        func size(_ file: String) -> Int64 {
            Int64((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0)
        }
        return StoreStatistics(
            reports: try count("reports"), windows: try count("windows"), findings: try count("findings"),
            bytes: size(path) + size(path + "-wal"))
    }
}

@available(*, unavailable)
extension Store: Sendable {}

private func real(_ value: Double?) -> SQLValue { value.map { .real($0) } ?? .null }
