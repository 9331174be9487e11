// The schema as a list of named migrations, applied in order, each in its own transaction, and
// recorded by name in the file (`faultline_migrations`), so a store knows what it holds and a newer
// or foreign file is recognized rather than written to. docs/store.md explains each table.

/// One named schema step. Names are never reused or edited once released: add a new migration instead.
public struct Migration: Sendable {
    public let name: String
    public let sql: String

    public init(name: String, sql: String) {
        self.name = name
        self.sql = sql
    }
}

/// Applies and checks the store's migrations.
public enum Migrations {
    /// The table recording applied migrations.
    static let ledgerTable = "faultline_migrations"

    /// Every migration, in the order applied.
    public static let all: [Migration] = [
        Migration(
            name: "0001-event-log",
            sql: """
                -- The raw report event log: what replay reads. Header fields in columns, the pairs in
                -- the compact encoding of PairsEncoding, health as sorted-key JSON (NULL when empty).
                CREATE TABLE reports (
                    id INTEGER PRIMARY KEY,
                    window_start INTEGER NOT NULL,      -- seconds since the Unix epoch
                    node TEXT NOT NULL,
                    window_seconds INTEGER NOT NULL,
                    agent_version TEXT NOT NULL,
                    transport TEXT NOT NULL,
                    pair_count INTEGER NOT NULL,
                    pairs BLOB NOT NULL,
                    health TEXT,
                    content_hash BLOB NOT NULL,         -- SHA-256 of the content, for duplicates
                    received_at INTEGER NOT NULL,       -- seconds since the epoch, the ingest clock
                    UNIQUE (window_start, node)         -- one report per node and window; replay's order
                );
                """),
        Migration(
            name: "0002-windows-and-aggregates",
            sql: """
                -- Every window the correlator has seen, and when it closed (NULL while open).
                CREATE TABLE windows (
                    window_start INTEGER PRIMARY KEY,
                    window_seconds INTEGER NOT NULL,
                    report_count INTEGER NOT NULL DEFAULT 0,
                    closed_at INTEGER
                );
                -- Per window, the pairs the engine judged unhealthy, with the numbers it judged on.
                CREATE TABLE unhealthy_pairs (
                    window_start INTEGER NOT NULL,
                    src TEXT NOT NULL,
                    dst TEXT NOT NULL,
                    verdict TEXT NOT NULL,
                    sent INTEGER NOT NULL,
                    lost INTEGER NOT NULL,
                    p50_micros REAL,
                    p99_micros REAL,
                    baseline_p50_micros REAL,
                    baseline_p99_micros REAL,
                    PRIMARY KEY (window_start, src, dst)
                ) WITHOUT ROWID;
                -- Per window and path class, the fleet's merged RTT sketch (DDSketch protobuf) and counts.
                CREATE TABLE class_aggregates (
                    window_start INTEGER NOT NULL,
                    path_class TEXT NOT NULL,
                    pair_count INTEGER NOT NULL,
                    sent INTEGER NOT NULL,
                    lost INTEGER NOT NULL,
                    sketch BLOB,
                    PRIMARY KEY (window_start, path_class)
                ) WITHOUT ROWID;
                """),
        Migration(
            name: "0003-findings-nodes-config",
            sql: """
                -- A finding from its opening to its closing (closed_window NULL while open).
                CREATE TABLE findings (
                    id INTEGER PRIMARY KEY,
                    component TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    class TEXT NOT NULL,
                    opened_window INTEGER NOT NULL,
                    last_window INTEGER NOT NULL,
                    closed_window INTEGER,
                    confidence REAL NOT NULL
                );
                CREATE UNIQUE INDEX findings_open ON findings (component, class) WHERE closed_window IS NULL;
                CREATE INDEX findings_by_last_window ON findings (last_window);
                -- Every event of the findings stream (wire-v1 §5), in the order the engine gave them.
                CREATE TABLE finding_events (
                    id INTEGER PRIMARY KEY,
                    finding_id INTEGER NOT NULL REFERENCES findings (id) ON DELETE CASCADE,
                    window_start INTEGER NOT NULL,
                    event TEXT NOT NULL,
                    confidence REAL NOT NULL,
                    evidence TEXT NOT NULL
                );
                CREATE INDEX finding_events_by_finding ON finding_events (finding_id);
                CREATE INDEX finding_events_by_window ON finding_events (window_start);
                -- What the correlator believes about each node now.
                CREATE TABLE node_states (
                    node TEXT PRIMARY KEY,
                    state TEXT NOT NULL,
                    since_window INTEGER NOT NULL,
                    last_report_window INTEGER,
                    reason TEXT
                ) WITHOUT ROWID;
                -- The rules and topology in force, from the window they took effect.
                CREATE TABLE configurations (
                    id INTEGER PRIMARY KEY,
                    kind TEXT NOT NULL CHECK (kind IN ('rules', 'topology')),
                    effective_from INTEGER NOT NULL,
                    sha256 TEXT NOT NULL,
                    text TEXT NOT NULL
                );
                CREATE INDEX configurations_by_kind ON configurations (kind, effective_from);
                """),
        Migration(
            name: "0004-remediation",
            sql: """
                -- The executor's intent log: written before acting, finished after the state was
                -- read back; a pending row at start is reconciled against the scheduler.
                CREATE TABLE intents (
                    id TEXT PRIMARY KEY,
                    kind TEXT NOT NULL CHECK (kind IN ('quarantine', 'release', 'escalate')),
                    node TEXT NOT NULL,
                    decided_at INTEGER NOT NULL,
                    decision TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
                    attempts INTEGER NOT NULL,
                    outcome TEXT,
                    updated_at INTEGER NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX intents_pending ON intents (state) WHERE state = 'pending';
                -- Append-only and hash-chained: each entry carries the SHA-256 of the one before.
                CREATE TABLE audit (
                    seq INTEGER PRIMARY KEY,
                    at INTEGER NOT NULL,
                    actor TEXT NOT NULL,
                    entry TEXT NOT NULL,
                    previous TEXT NOT NULL,
                    hash TEXT NOT NULL
                );
                CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
                    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
                CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
                    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
                -- The remediation policy's memory (breaker, holds, waiting quarantines, open findings),
                -- saved with each step's intents: one row.
                CREATE TABLE policy_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    saved_at INTEGER NOT NULL,
                    state TEXT NOT NULL
                );
                """),
        Migration(
            name: "0005-reports-without-content-hash",
            sql: """
                -- A duplicate is now told from a conflict by comparing the stored columns themselves,
                -- which only a duplicate pays for, instead of hashing every report (5% of ingest).
                -- SQLite rewrites the table to drop a column: once, in time proportional to the log.
                ALTER TABLE reports DROP COLUMN content_hash;
                """),
        Migration(
            name: "0006-leaf-rollups",
            sql: """
                -- Latency and loss between leaves (pairs between endpoints on different nodes), merged
                -- from the windows' rollups as they close: the weekly report's heatmaps. An hour keeps
                -- its merged sketch only while it is the newest (it is merged into); once a later hour
                -- starts, only its numbers stay (a week of 8,192 leaf pairs is 1.4 million hour rows).
                CREATE TABLE leaf_hours (
                    hour_start INTEGER NOT NULL,
                    src_leaf TEXT NOT NULL,
                    dst_leaf TEXT NOT NULL,
                    pair_count INTEGER NOT NULL,        -- pair-windows merged
                    sent INTEGER NOT NULL,
                    lost INTEGER NOT NULL,
                    p50_micros REAL,
                    p99_micros REAL,
                    sketch BLOB,                        -- NULL once a later hour started
                    PRIMARY KEY (hour_start, src_leaf, dst_leaf)
                ) WITHOUT ROWID;
                -- Days keep their sketches, so that any run of days merges exactly.
                CREATE TABLE leaf_days (
                    day_start INTEGER NOT NULL,
                    src_leaf TEXT NOT NULL,
                    dst_leaf TEXT NOT NULL,
                    pair_count INTEGER NOT NULL,
                    sent INTEGER NOT NULL,
                    lost INTEGER NOT NULL,
                    sketch BLOB,
                    PRIMARY KEY (day_start, src_leaf, dst_leaf)
                ) WITHOUT ROWID;
                """),
    ]

    /// The names recorded in the file, in the order applied; empty for a new file.
    public static func applied(in database: Database) throws(DatabaseError) -> [String] {
        let exists = try database.singleInt(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", [.text(ledgerTable)])
        guard exists == 1 else { return [] }
        let statement = try database.cachedStatement("SELECT name FROM \(ledgerTable) ORDER BY id")
        defer { statement.reset() }
        var names: [String] = []
        while try statement.step() { names.append(statement.string(0) ?? "") }
        return names
    }

    /// What the file's migrations are compared with the known list.
    public struct Status: Sendable, Equatable {
        public let applied: [String]
        /// Known migrations not yet applied, in order.
        public let pending: [String]
        /// Recorded migrations this build does not know (a newer Faultline wrote the file).
        public let unknown: [String]
        /// Whether the recorded ones are a prefix of the known list, in order.
        public init(applied: [String], pending: [String], unknown: [String]) {
            self.applied = applied
            self.pending = pending
            self.unknown = unknown
        }

        public var isConsistent: Bool {
            unknown.isEmpty && Array(all.prefix(applied.count).map(\.name)) == applied
        }
    }

    public static func status(of database: Database) throws(DatabaseError) -> Status {
        let applied = try applied(in: database)
        let known = all.map(\.name)
        return Status(
            applied: applied, pending: known.filter { !applied.contains($0) },
            unknown: applied.filter { !known.contains($0) })
    }

    /// Applies every pending migration, each in its own transaction with its name recorded; returns
    /// the names applied (none when up to date). Refuses a file with migrations it does not know.
    @discardableResult
    public static func migrate(_ database: Database) throws -> [String] {
        let status = try status(of: database)
        guard status.isConsistent else {
            throw StoreError.unknownMigrations(path: database.path, status.unknown)
        }
        var done: [String] = []
        for migration in all where status.pending.contains(migration.name) {
            try database.transaction {
                try database.execute(
                    "CREATE TABLE IF NOT EXISTS \(ledgerTable) (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)"
                )
                try database.execute(migration.sql)
                try database.run("INSERT INTO \(ledgerTable) (name) VALUES (?)", [.text(migration.name)])
            }
            done.append(migration.name)
        }
        return done
    }
}
