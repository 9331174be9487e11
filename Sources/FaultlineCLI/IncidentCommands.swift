// `faultline incident export|import|html` (docs/replay.md): a store, or the part of it around an
// incident, as one self-contained SQLite bundle that `faultline replay --db` replays on any machine;
// a bundle checked (schema, integrity, audit chain) and taken in as a store of its own; an incident
// as one HTML page in the weekly report's look.

import FleetModel
import Foundation
import Glibc
import Reports
import Store

struct IncidentExportCommand: Command {
    static let name = "incident export"
    static let summary = "write a store, or an incident's part of it, as a self-contained bundle"
    static let usage = "incident export --db FILE [--from T --to T] [--warmup-windows N] -o|--output BUNDLE.db"
    static let help = """
        Writes BUNDLE.db, an SQLite store of the same schema holding what a replay of the incident
        needs: the raw reports, the topology and rules recorded as in force (with their hashes), the
        findings stream, the windows' records, the executor's intents and its audit log (the hash
        chain kept whole: every entry up to the range's end). Without --from/--to: the whole store,
        compacted (SQLite's VACUUM INTO); `faultline replay --db BUNDLE.db --compare` then says
        identical, as it does on the store itself.

        With --from T --to T (RFC 3339 UTC): the reports of the range and of the --warmup-windows
        windows before it (default 16, what the service itself rebuilds from at a restart), so that
        baselines and open findings are back when the range starts; the findings of the range. Replay
        and compare that range: faultline replay --db BUNDLE.db --from T --to T --compare.

        options:
          --db FILE              the service's store (not written to)
          --from T, --to T       the incident's windows, [from, to)
          --warmup-windows N     windows of reports before --from, 0...10000 (default 16)
          -o, --output FILE      the bundle; it must not exist
        """

    let path: String
    let output: String
    let range: (from: Timestamp, to: Timestamp)?
    let warmupWindows: Int

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(
            arguments, valued: ["db", "from", "to", "warmup-windows", "output"], aliases: ["o": "output"])
        path = try options.required("db")
        output = try options.required("output")
        switch (try options.timestamp("from"), try options.timestamp("to")) {
        case (nil, nil): range = nil
        case (let from?, let to?):
            guard from < to else { throw CommandError.usage("--to must be after --from") }
            range = (from, to)
        default: throw CommandError.usage("give both --from and --to, or neither (the whole store)")
        }
        let warmup = options.value("warmup-windows") ?? "16"
        guard let windows = Int(warmup), (0...10_000).contains(windows) else {
            throw CommandError.usage("--warmup-windows must be an integer in 0...10000, got '\(warmup)'")
        }
        warmupWindows = windows
    }

    func run(io: some CommandIO) throws(CommandError) {
        try requireExistingFile(path)
        guard !FileManager.default.fileExists(atPath: output) else {
            throw CommandError.cannotCreate("\(output) exists: a bundle is written to a new file")
        }
        let summary = try withStoreErrors(creating: true) { () throws -> String in
            let source = try Database(path: path, mode: .readOnly)
            let status = try Migrations.status(of: source)
            guard status.pending.isEmpty, status.unknown.isEmpty else {
                throw CommandError.data(
                    "\(path): its schema is not this build's (run faultline db check; faultline db migrate applies pending migrations)")
            }
            // Written under a temporary name and renamed when whole: a failed export leaves nothing.
            let partial = output + ".partial"
            for suffix in ["", "-wal", "-shm"] { unlink(partial + suffix) }
            defer { for suffix in ["", "-wal", "-shm"] { unlink(partial + suffix) } }
            let summary: String
            if let range {
                summary = try exportRange(range, from: source, into: partial)
            } else {
                try source.run("VACUUM INTO ?", [.text(partial)])
                summary = "the whole store"
            }
            guard rename(partial, output) == 0 else {
                throw CommandError.cannotCreate("cannot rename \(partial) to \(output): \(String(cString: strerror(errno)))")
            }
            return summary
        }
        let counts = try withStoreErrors { () throws -> String in
            let bundle = try Store(path: output, mode: .readOnly, migrate: false)
            let statistics = try bundle.statistics()
            return "\(statistics.reports) reports, \(try bundle.findingEvents().count) finding events, \(try bundle.auditEntries().count) audit entries"
        }
        io.write("wrote \(output): \(summary): \(counts)\n")
    }

    /// Copies the range (and its warm-up) into a new store of the current schema, table by table,
    /// through an ATTACHed connection, in one transaction.
    private func exportRange(
        _ range: (from: Timestamp, to: Timestamp), from source: Database, into file: String
    ) throws -> String {
        let windowSeconds = try source.singleInt("SELECT window_seconds FROM reports ORDER BY window_start LIMIT 1") ?? 0
        let warmStart = range.from.secondsSinceEpoch - Int64(warmupWindows) * windowSeconds
        let (from, to) = (range.from.secondsSinceEpoch, range.to.secondsSinceEpoch)
        let bundle = try Store(path: file, mode: .create)
        let database = bundle.database
        // One file: no write-ahead log left beside the bundle when it is renamed.
        try database.execute("PRAGMA journal_mode = DELETE")
        try database.run("ATTACH DATABASE ? AS source", [.text(path)])
        defer { _ = try? database.run("DETACH DATABASE source") }
        try database.transaction {
            func copy(_ table: String, where condition: String, _ arguments: [SQLValue]) throws {
                try database.run("INSERT INTO main.\(table) SELECT * FROM source.\(table) WHERE \(condition)", arguments)
            }
            let warm: [SQLValue] = [.integer(warmStart), .integer(to)]
            let inRange: [SQLValue] = [.integer(from), .integer(to)]
            try copy("reports", where: "window_start >= ? AND window_start < ?", warm)
            try copy("windows", where: "window_start >= ? AND window_start < ?", warm)
            try copy("unhealthy_pairs", where: "window_start >= ? AND window_start < ?", warm)
            try copy("class_aggregates", where: "window_start >= ? AND window_start < ?", warm)
            try copy(
                "findings",
                where: "id IN (SELECT finding_id FROM source.finding_events WHERE window_start >= ? AND window_start < ?)",
                inRange)
            try copy("finding_events", where: "window_start >= ? AND window_start < ?", inRange)
            try copy("configurations", where: "effective_from < ?", [.integer(to)])
            try copy("intents", where: "decided_at >= ? AND decided_at < ?", inRange)
            // The audit log whole up to its last entry about the range (entries are written when
            // their window closes, after it: by the decision's own time), so that the hash chain
            // verifies in the bundle.
            try copy(
                "audit",
                where: """
                    seq <= (SELECT COALESCE(MAX(seq), 0) FROM source.audit
                            WHERE at < ? OR json_extract(entry, '$.decision.time') < ?)
                    """,
                [.integer(to), .text(range.to.description)])
        }
        return "windows \(range.from) to \(range.to), with \(warmupWindows) windows before"
    }
}

struct IncidentImportCommand: Command {
    static let name = "incident import"
    static let summary = "check a bundle and take it in as a store of its own"
    static let usage = "incident import BUNDLE.db --db FILE"
    static let help = """
        Checks BUNDLE.db (written by faultline incident export, here or elsewhere): SQLite's integrity
        check, a schema this build knows, an unbroken audit hash chain. Then writes it as the store
        FILE (which must not exist), for faultline replay --db FILE, db stats and the other commands
        that read a store. A bundle that fails a check is not taken in (exit 65).

        options:
          --db FILE   the store to create
        """

    let bundle: String
    let path: String

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["db"], positionals: 1)
        guard let first = options.positionals.first else { throw CommandError.usage("give the bundle to import") }
        bundle = first
        path = try options.required("db")
    }

    func run(io: some CommandIO) throws(CommandError) {
        try requireExistingFile(bundle)
        guard !FileManager.default.fileExists(atPath: path) else {
            throw CommandError.cannotCreate("\(path) exists: a bundle is imported into a new store")
        }
        let entries = try withStoreErrors(creating: true) { () throws -> Int in
            let database = try Database(path: bundle, mode: .readOnly)
            let integrity = try database.singleText("PRAGMA integrity_check")
            guard integrity == "ok" else { throw CommandError.data("\(bundle): integrity check: \(integrity ?? "failed")") }
            let status = try Migrations.status(of: database)
            guard status.isConsistent else {
                throw CommandError.data("\(bundle): migrations this build does not know: \(status.unknown.joined(separator: ", "))")
            }
            let store = try Store(path: bundle, mode: .readOnly, migrate: false)
            let entries: Int
            do { entries = try store.verifyAudit() } catch {
                throw CommandError.data("\(bundle): audit log: \(error)")
            }
            try database.run("VACUUM INTO ?", [.text(path)])
            return entries
        }
        io.write("imported \(bundle) as \(path): integrity ok, audit chain of \(entries) entries verified\n")
    }
}

struct IncidentHTMLCommand: Command {
    static let name = "incident html"
    static let summary = "an incident as one HTML page in the weekly report's look"
    static let usage = "incident html --db FILE --from T --to T [-o|--output FILE] [--runbook-base URL]"
    static let help = """
        Writes one self-contained HTML page (inline CSS and SVG; light, dark and print) of the
        incident [from, to): a timeline of the findings' events, the remediation's decisions with
        their outcomes and the operators' commands, in time order; the cross-leaf p50 and p99 window
        by window; and leaf × leaf p99 and loss over the incident between the leaves its findings
        touched and the leaves they probed, merged from the store's raw reports (docs/replay.md).

        options:
          --db FILE            the service's store (read only), or an incident bundle
          --from T, --to T     the incident (RFC 3339 UTC)
          -o, --output FILE    where to write (default: standard output)
          --runbook-base URL   prefix of runbook links
        """

    let path: String
    let from: Timestamp
    let to: Timestamp
    let output: String?
    let runbookBase: String

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(
            arguments, valued: ["db", "from", "to", "output", "runbook-base"], aliases: ["o": "output"])
        path = try options.required("db")
        guard let from = try options.timestamp("from"), let to = try options.timestamp("to") else {
            throw CommandError.usage("--from and --to are required")
        }
        guard from < to else { throw CommandError.usage("--to must be after --from") }
        self.from = from
        self.to = to
        output = options.value("output")
        runbookBase = options.value("runbook-base") ?? ""
    }

    func run(io: some CommandIO) throws(CommandError) {
        try requireExistingFile(path)
        let html = try withStoreErrors { () throws -> String in
            let store = try Store(path: path, mode: .readOnly, migrate: false)
            return try IncidentReport.build(store: store, from: from, to: to, runbookBase: runbookBase).html
        }
        try writeOutput(Data(html.utf8), to: output, io: io)
    }
}
