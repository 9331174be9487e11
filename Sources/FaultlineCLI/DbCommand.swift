// `faultline db check | migrate | prune | stats`: look after the correlator's SQLite store from the
// command line — integrity and migrations, applying migrations, pruning by retention, and counts.

import CSQLite3
import FleetModel
import Foundation
import Store

/// The options every `db` command shares: the file and `--json`.
private struct DbOptions {
    let path: String
    let json: Bool
}

/// A missing file is exit 66 with a clear message (the store is never created by a read-only command).
private func requireExistingFile(_ path: String) throws(CommandError) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw CommandError.noInput("cannot open \(path): no such file")
    }
    guard !isDirectory.boolValue else { throw CommandError.noInput("cannot open \(path): it is a directory") }
}

/// Maps the store's errors to exit statuses: not a database or corrupt → 65, cannot open → 66
/// (or 73 when creating), migrations this build cannot use → 65, anything else → 74.
private func commandError(_ error: any Error, creating: Bool = false) -> CommandError {
    if let error = error as? DatabaseError {
        switch error.resultCode {
        case SQLITE_NOTADB, SQLITE_CORRUPT: return .data("\(error)")
        case SQLITE_CANTOPEN: return creating ? .cannotCreate("\(error)") : .noInput("\(error)")
        default: return .io("\(error)")
        }
    }
    if let error = error as? StoreError { return .data("\(error)") }
    return .io("\(error)")
}

/// Runs `body`, turning any store error into a `CommandError`.
private func withStoreErrors<T>(creating: Bool = false, _ body: () throws -> T) throws(CommandError) -> T {
    do {
        return try body()
    } catch let error as CommandError {
        throw error
    } catch {
        throw commandError(error, creating: creating)
    }
}

private func jsonStrings(_ names: [String]) -> String { "[" + names.map(jsonString).joined(separator: ", ") + "]" }

struct DbCheckCommand: Command {
    static let name = "db check"
    static let summary = "check a store's integrity and that its migrations are known"
    static let usage = "db check --db FILE [--json]"
    static let help = """
        Runs SQLite's integrity_check on the store and compares the migrations recorded in the file
        with the ones this build knows. Pending migrations are reported (faultline db migrate applies
        them); migrations this build does not know, or a failed integrity check, make the status 65.
        A missing file is 66; a file that is not an SQLite database is 65.

        options:
          --db FILE   the store
          --json      one JSON object: {"path", "integrity", "applied", "pending", "unknown", "ok"}
        """

    private let options: DbOptions

    init(arguments: [String]) throws(CommandError) {
        let parsed = try OptionParser(arguments, valued: ["db"], flags: ["json"])
        options = DbOptions(path: try parsed.required("db"), json: parsed.flag("json"))
    }

    func run(io: some CommandIO) throws(CommandError) {
        try requireExistingFile(options.path)
        let (problems, status) = try withStoreErrors { () throws -> ([String], Migrations.Status) in
            let database = try Database(path: options.path, mode: .existing)
            let statement = try database.prepare("PRAGMA integrity_check")
            var problems: [String] = []
            while try statement.step() { problems.append(statement.string(0) ?? "") }
            if problems == ["ok"] { problems = [] }
            return (problems, try Migrations.status(of: database))
        }
        let ok = problems.isEmpty && status.isConsistent
        if options.json {
            io.write(
                "{\"path\": \(jsonString(options.path)), \"integrity\": \(jsonStrings(problems.isEmpty ? ["ok"] : problems)), "
                    + "\"applied\": \(jsonStrings(status.applied)), \"pending\": \(jsonStrings(status.pending)), "
                    + "\"unknown\": \(jsonStrings(status.unknown)), \"ok\": \(ok)}\n")
        } else {
            var text = "\(options.path): integrity \(problems.isEmpty ? "ok" : "FAILED")\n"
            for problem in problems { text += "  \(problem)\n" }
            text += "migrations: \(status.applied.count) applied, \(status.pending.count) pending"
            text += status.unknown.isEmpty ? "\n" : ", \(status.unknown.count) unknown\n"
            for name in status.pending { text += "  pending: \(name)\n" }
            for name in status.unknown { text += "  unknown: \(name) (written by a newer Faultline?)\n" }
            io.write(text)
        }
        if !problems.isEmpty {
            throw CommandError.data("\(options.path) failed its integrity check")
        }
        if !status.isConsistent {
            throw CommandError.data(
                "\(options.path) records migrations this build does not know: \(status.unknown.joined(separator: ", "))")
        }
    }
}

struct DbMigrateCommand: Command {
    static let name = "db migrate"
    static let summary = "create a store or bring its schema up to date"
    static let usage = "db migrate --db FILE [--json]"
    static let help = """
        Applies every pending migration, each in its own transaction, recording its name in the file.
        A missing file is created. Running it again does nothing. A file with migrations this build does
        not know is refused (65).

        options:
          --db FILE   the store (created if missing)
          --json      one JSON object: {"path", "applied", "migrations"}
        """

    private let options: DbOptions

    init(arguments: [String]) throws(CommandError) {
        let parsed = try OptionParser(arguments, valued: ["db"], flags: ["json"])
        options = DbOptions(path: try parsed.required("db"), json: parsed.flag("json"))
    }

    func run(io: some CommandIO) throws(CommandError) {
        let (applied, total) = try withStoreErrors(creating: true) { () throws -> ([String], Int) in
            let database = try Database(path: options.path, mode: .create)
            let applied = try Migrations.migrate(database)
            return (applied, try Migrations.applied(in: database).count)
        }
        if options.json {
            io.write(
                "{\"path\": \(jsonString(options.path)), \"applied\": \(jsonStrings(applied)), \"migrations\": \(total)}\n")
        } else if applied.isEmpty {
            io.write("\(options.path): up to date (\(total) migrations)\n")
        } else {
            io.write("\(options.path): applied \(applied.joined(separator: ", ")) (\(total) migrations)\n")
        }
    }
}

struct DbPruneCommand: Command {
    static let name = "db prune"
    static let summary = "remove raw reports and aggregates older than their retention"
    static let usage =
        "db prune --db FILE [--raw-retention DURATION] [--aggregate-retention DURATION] [--now TIME] [--batch N] [--json]"
    static let help = """
        Removes raw reports whose window started more than the raw retention before now, and windows,
        pair statistics, class aggregates and closed findings older than the aggregate retention. Each
        transaction removes at most --batch rows, so a running service is held up only briefly.

        options:
          --db FILE                        the store (must exist and be migrated)
          --raw-retention DURATION         default 72h; a whole number and s, m, h or d
          --aggregate-retention DURATION   default 90d
          --now TIME                       RFC 3339 UTC (2026-11-21T10:00:00Z); default the wall clock
          --batch N                        rows per transaction, 1...100000 (default \(Store.defaultPruneBatch))
          --json                           one JSON object: rows removed per table, and transactions
        """

    private let options: DbOptions
    let retention: Retention
    let now: Timestamp
    let batch: Int

    init(arguments: [String]) throws(CommandError) {
        let parsed = try OptionParser(
            arguments, valued: ["db", "raw-retention", "aggregate-retention", "now", "batch"], flags: ["json"])
        options = DbOptions(path: try parsed.required("db"), json: parsed.flag("json"))
        func duration(_ name: String, default value: Int64) throws(CommandError) -> Int64 {
            guard let text = parsed.value(name) else { return value }
            guard let seconds = Retention.seconds(text) else {
                throw CommandError.usage("--\(name) must be a duration like 72h or 90d, got '\(text)'")
            }
            return seconds
        }
        retention = Retention(
            rawSeconds: try duration("raw-retention", default: Retention.defaultRawSeconds),
            aggregateSeconds: try duration("aggregate-retention", default: Retention.defaultAggregateSeconds))
        if let text = parsed.value("now") {
            guard let time = Timestamp(rfc3339: text) else {
                throw CommandError.usage("--now must be RFC 3339 UTC like 2026-11-21T10:00:00Z, got '\(text)'")
            }
            now = time
        } else {
            // The wall clock, read here at the edge only.
            now = Timestamp(secondsSinceEpoch: Int64(Date().timeIntervalSince1970))
        }
        batch = try parsed.integer("batch", default: Store.defaultPruneBatch, in: 1...100_000)
    }

    func run(io: some CommandIO) throws(CommandError) {
        try requireExistingFile(options.path)
        let result = try withStoreErrors {
            try Store(path: options.path, mode: .existing, migrate: false).prune(
                retention: retention, now: now, batchSize: batch)
        }
        if options.json {
            let fields = result.removed.map { "\(jsonString($0.table)): \($0.rows)" }
            io.write("{\(fields.joined(separator: ", ")), \"transactions\": \(result.transactions)}\n")
        } else {
            var text = "\(options.path): removed \(result.totalRows) rows in \(result.transactions) transactions (now \(now))\n"
            for (table, rows) in result.removed { text += "  \(table.padding(toLength: 16))  \(rows)\n" }
            io.write(text)
        }
    }
}

struct DbStatsCommand: Command {
    static let name = "db stats"
    static let summary = "count a store's reports, windows and findings, and its size"
    static let usage = "db stats --db FILE [--json]"
    static let help = """
        Prints how many raw reports, windows and findings the store holds and its size on disk in bytes
        (the database file and its write-ahead log).

        options:
          --db FILE   the store (must exist and be migrated)
          --json      one JSON object: {"reports": N, "windows": N, "findings": N, "bytes": N}
        """

    private let options: DbOptions

    init(arguments: [String]) throws(CommandError) {
        let parsed = try OptionParser(arguments, valued: ["db"], flags: ["json"])
        options = DbOptions(path: try parsed.required("db"), json: parsed.flag("json"))
    }

    func run(io: some CommandIO) throws(CommandError) {
        try requireExistingFile(options.path)
        let statistics = try withStoreErrors {
            try Store(path: options.path, mode: .existing, migrate: false).statistics()
        }
        if options.json {
            io.write(
                "{\"reports\": \(statistics.reports), \"windows\": \(statistics.windows), "
                    + "\"findings\": \(statistics.findings), \"bytes\": \(statistics.bytes)}\n")
        } else {
            io.write(
                """
                \(options.path):
                  reports   \(statistics.reports)
                  windows   \(statistics.windows)
                  findings  \(statistics.findings)
                  bytes     \(statistics.bytes)

                """)
        }
    }
}
