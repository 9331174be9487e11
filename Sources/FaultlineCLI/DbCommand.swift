// `faultline db check | migrate | prune | stats | import | export`: look after the correlator's
// SQLite store from the command line — integrity and migrations, applying migrations, pruning by
// retention, counts, and moving reports between NDJSON files and the event log.

import CSQLite3
import FleetModel
import Foundation
import Store

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The options every `db` command shares: the file and `--json`.
private struct DbOptions {
    let path: String
    let json: Bool
}

/// A missing file is exit 66 with a clear message (the store is never created by a read-only command).
func requireExistingFile(_ path: String) throws(CommandError) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw CommandError.noInput("cannot open \(path): no such file")
    }
    guard !isDirectory.boolValue else { throw CommandError.noInput("cannot open \(path): it is a directory") }
}

/// Maps the store's errors to exit statuses: not a database or corrupt → 65, cannot open → 66
/// (or 73 when creating), migrations this build cannot use → 65, anything else → 74.
func commandError(_ error: any Error, creating: Bool = false) -> CommandError {
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
func withStoreErrors<T>(creating: Bool = false, _ body: () throws -> T) throws(CommandError) -> T {
    do {
        return try body()
    } catch let error as CommandError {
        throw error
    } catch {
        throw commandError(error, creating: creating)
    }
}

private func jsonStrings(_ names: [String]) -> String {
    "[" + names.map(jsonString).joined(separator: ", ") + "]"
}

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
                "\(options.path) records migrations this build does not know: \(status.unknown.joined(separator: ", "))"
            )
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
                "{\"path\": \(jsonString(options.path)), \"applied\": \(jsonStrings(applied)), \"migrations\": \(total)}\n"
            )
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
            arguments, valued: ["db", "raw-retention", "aggregate-retention", "now", "batch"], flags: ["json"]
        )
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
                throw CommandError.usage(
                    "--now must be RFC 3339 UTC like 2026-11-21T10:00:00Z, got '\(text)'")
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
            var text =
                "\(options.path): removed \(result.totalRows) rows in \(result.transactions) transactions (now \(now))\n"
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

struct DbImportCommand: Command {
    static let name = "db import"
    static let summary = "append a file of reports (NDJSON) to a store's event log"
    static let usage = "db import --db FILE --input REPORTS.ndjson [--acknowledge] [--json]"
    static let help = """
        Validates each report (wire-v1.md §3) and appends it to the store's event log the way the
        service does: one transaction per report, committed before the next is read. A report whose
        node and window are stored already is a duplicate: accepted again when its content is the same,
        a conflict (the stored one stays) when not. The store is created and migrated when needed.
        Invalid reports and conflicts are printed on stderr as FILE:LINE: reason and make the status
        65 once the rest are in.

        options:
          --db FILE        the store (created if missing)
          --input FILE     the reports, one JSON object per line
          --acknowledge    print "OUTCOME NODE WINDOW" for each report once it is committed
          --json           a summary object: {"stored", "duplicates", "conflicts", "invalid"}
        """

    /// A report line longer than this is refused (a report of the largest realistic fleet is far smaller).
    static let maxLineBytes = 64 << 20

    private let options: DbOptions
    let inputPath: String
    let acknowledge: Bool

    init(arguments: [String]) throws(CommandError) {
        let parsed = try OptionParser(arguments, valued: ["db", "input"], flags: ["acknowledge", "json"])
        options = DbOptions(path: try parsed.required("db"), json: parsed.flag("json"))
        inputPath = try parsed.required("input")
        acknowledge = parsed.flag("acknowledge")
    }

    func run(io: some CommandIO) throws(CommandError) {
        try requireExistingFile(inputPath)
        guard let file = fopen(inputPath, "r") else {
            throw CommandError.noInput("cannot open \(inputPath): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        let store = try withStoreErrors(creating: true) { try Store(path: options.path, mode: .create) }
        var counts = (stored: 0, duplicates: 0, conflicts: 0, invalid: 0)
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        var lineNumber = 0
        while true {
            let length = getline(&line, &capacity, file)
            if length < 0 {
                if ferror(file) != 0 {
                    throw CommandError.io("cannot read \(inputPath): \(String(cString: strerror(errno)))")
                }
                break
            }
            lineNumber += 1
            guard length <= DbImportCommand.maxLineBytes else {
                io.writeError(
                    "\(inputPath):\(lineNumber): longer than \(DbImportCommand.maxLineBytes) bytes\n")
                counts.invalid += 1
                continue
            }
            let bytes = Data(bytes: line!, count: length)
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A }) { continue }
            let report: Report
            do {
                report = try Report(json: bytes)
            } catch {
                io.writeError("\(inputPath):\(lineNumber): \(error)\n")
                counts.invalid += 1
                continue
            }
            // The wall clock, read here at the edge: when the report was received.
            let now = Timestamp(secondsSinceEpoch: Int64(Date().timeIntervalSince1970))
            let outcome = try withStoreErrors { try store.append(report, receivedAt: now) }
            switch outcome {
            case .stored: counts.stored += 1
            case .duplicateSame: counts.duplicates += 1
            case .conflict:
                counts.conflicts += 1
                io.writeError(
                    "\(inputPath):\(lineNumber): conflict: \(report.node) already reported \(report.windowStart) with different content\n"
                )
            }
            if acknowledge { io.write("\(outcome.rawValue) \(report.node) \(report.windowStart)\n") }
        }
        if options.json {
            io.write(
                "{\"stored\": \(counts.stored), \"duplicates\": \(counts.duplicates), \"conflicts\": \(counts.conflicts), \"invalid\": \(counts.invalid)}\n"
            )
        } else if !acknowledge {
            io.write(
                "\(options.path): \(counts.stored) stored, \(counts.duplicates) duplicates, \(counts.conflicts) conflicts, \(counts.invalid) invalid\n"
            )
        }
        if counts.conflicts + counts.invalid > 0 {
            throw CommandError.data(
                "\(counts.invalid) invalid reports and \(counts.conflicts) conflicts in \(inputPath)")
        }
    }
}

struct DbExportCommand: Command {
    static let name = "db export"
    static let summary = "print a store's reports as NDJSON, in (window, node) order, for replay"
    static let usage = "db export --db FILE [--from TIME] [--to TIME]"
    static let help = """
        Prints the stored reports as wire-v1 JSON lines, ordered by window start, then node: the input
        `faultline replay --input -` reads. --from and --to (RFC 3339 UTC) keep the windows that start
        in [from, to).

        options:
          --db FILE     the store (must exist and be migrated)
          --from TIME   the first window start to print
          --to TIME     print windows that start before this
        """

    private let options: DbOptions
    let from: Timestamp?
    let to: Timestamp?

    init(arguments: [String]) throws(CommandError) {
        let parsed = try OptionParser(arguments, valued: ["db", "from", "to"])
        options = DbOptions(path: try parsed.required("db"), json: false)
        from = try parsed.timestamp("from")
        to = try parsed.timestamp("to")
    }

    func run(io: some CommandIO) throws(CommandError) {
        try requireExistingFile(options.path)
        try withStoreErrors {
            let store = try Store(path: options.path, mode: .existing, migrate: false)
            try store.forEachReportLine(from: from, to: to) { io.write($0 + "\n") }
        }
    }
}
