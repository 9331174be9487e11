// `faultline db check | migrate | prune | stats | import | export` in process: a fresh temporary
// store per test, JSON output parsed, and the exit statuses for a missing file (66), a file that is
// not SQLite (65), unknown migrations (65) and bad options (64); replay through the store gives the
// same findings; and, with the built binary, reports acknowledged by an import killed with SIGKILL
// are all in the store.

import FleetModel
import Foundation
import QuantileSketch
import Simulation
import Store
import Testing

@testable import FaultlineCLI

#if canImport(Glibc)
import Glibc
#endif

/// A fresh temporary directory with a database path in it; `remove()` deletes both.
private struct DbDirectory {
    let directory: String
    var path: String { directory + "/faultline.db" }

    init() throws {
        directory =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("faultline-db-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

/// A small valid report of `node` for the window at `start` (seconds since the epoch).
private func report(_ node: String, _ start: Int64) throws -> Report {
    var sketch = try QuantileSketch()
    try sketch.add(contentsOf: [5, 6, 7, 8])
    let src = EndpointID("\(node)/0")!
    return Report(
        node: NodeName(node)!, windowStart: Timestamp(secondsSinceEpoch: start), windowSeconds: 10,
        agentVersion: "0.3.0", transport: .udp,
        pairs: [
            .init(
                src: src, dst: src, sent: 4, lost: 0, rttMicros: .bytes(sketch.encoded()))
        ])
}

/// The one JSON object of `text` (exactly one line).
private func jsonObject(_ text: String) throws -> [String: Any] {
    #expect(text.hasSuffix("\n") && text.dropLast().firstIndex(of: "\n") == nil, "one line: \(text)")
    return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

@Suite("db commands")
struct DbCommandTests {
    @Test("db migrate creates a new store with every migration, and a second run does nothing")
    func migrateNewFile() throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        let first = run(["db", "migrate", "--db", temporary.path])
        #expect(first.0 == .success)
        #expect(first.err == "")
        #expect(
            first.out
                == "\(temporary.path): applied \(Migrations.all.map(\.name).joined(separator: ", ")) (\(Migrations.all.count) migrations)\n"
        )
        let second = run(["db", "migrate", "--db", temporary.path, "--json"])
        #expect(second.0 == .success)
        let object = try jsonObject(second.out)
        #expect(object["applied"] as? [String] == [])
        #expect(object["migrations"] as? Int == Migrations.all.count)
        let check = run(["db", "check", "--db", temporary.path, "--json"])
        #expect(check.0 == .success)
        let status = try jsonObject(check.out)
        #expect(status["integrity"] as? [String] == ["ok"])
        #expect(status["applied"] as? [String] == Migrations.all.map(\.name))
        #expect(status["pending"] as? [String] == [])
        #expect(status["ok"] as? Bool == true)
    }

    @Test("db migrate also migrates an existing empty SQLite file")
    func migrateEmptyFile() throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        _ = FileManager.default.createFile(atPath: temporary.path, contents: Data())
        let before = run(["db", "check", "--db", temporary.path])
        #expect(before.0 == .success)
        #expect(before.out.contains("migrations: 0 applied, \(Migrations.all.count) pending\n"))
        #expect(run(["db", "migrate", "--db", temporary.path]).0 == .success)
        #expect(
            try Migrations.applied(in: Database(path: temporary.path, mode: .existing))
                == Migrations.all.map(\.name))
    }

    @Test("db stats --json counts reports, windows and findings and gives the size")
    func statsJSON() throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        do {
            let store = try Store(path: temporary.path)
            for (node, start) in [
                ("gpu-a", 1_795_000_000), ("gpu-b", 1_795_000_000), ("gpu-a", 1_795_000_010),
            ] {
                _ = try store.append(
                    try report(node, Int64(start)), receivedAt: Timestamp(secondsSinceEpoch: 0))
            }
        }
        let (status, out, err) = run(["db", "stats", "--db", temporary.path, "--json"])
        #expect(status == .success)
        #expect(err == "")
        #expect(out.hasPrefix("{\"reports\": 3, \"windows\": 2, \"findings\": 0, \"bytes\": "))
        let object = try jsonObject(out)
        #expect(Set(object.keys) == ["reports", "windows", "findings", "bytes"])
        let bytes = try #require(object["bytes"] as? Int)
        #expect(bytes >= 4096)
        let text = run(["db", "stats", "--db", temporary.path])
        #expect(text.out.contains("  reports   3\n"))
    }

    @Test("db prune removes what is older than retention at --now, and reports the rows per table")
    func prune() throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        do {
            let store = try Store(path: temporary.path)
            for window in 0..<6 {
                _ = try store.append(
                    try report("gpu-a", 1_795_000_000 + Int64(window) * 3600),
                    receivedAt: Timestamp(secondsSinceEpoch: 0))
            }
        }
        // now = first window + 5 h; raw retention 2 h: the windows at +0 h, +1 h and +2 h go
        // (+3 h is exactly at the cutoff and stays).
        let now = Timestamp(secondsSinceEpoch: 1_795_000_000 + 5 * 3600).description
        let (status, out, err) = run([
            "db", "prune", "--db", temporary.path, "--raw-retention", "2h", "--aggregate-retention", "90d",
            "--now", now,
            "--batch", "2", "--json",
        ])
        #expect(status == .success, "\(err)")
        let object = try jsonObject(out)
        #expect(object["reports"] as? Int == 3)
        #expect(object["windows"] as? Int == 0)
        #expect(object["transactions"] as? Int == 2)
        let stats = try jsonObject(run(["db", "stats", "--db", temporary.path, "--json"]).out)
        #expect(stats["reports"] as? Int == 3)
        #expect(stats["windows"] as? Int == 6)
    }

    @Test(
        "db prune rejects a bad duration or time with status 64",
        arguments: [
            ["--raw-retention", "72"], ["--aggregate-retention", "3w"], ["--now", "yesterday"],
            ["--batch", "0"],
        ])
    func pruneUsage(options: [String]) {
        let (status, out, err) = run(["db", "prune", "--db", "/nonexistent/x.db"] + options)
        #expect(status == .usage)
        #expect(out == "")
        #expect(err.contains("--\(options[0].dropFirst(2))"), "\(err)")
    }

    @Test(
        "check, stats and prune on a missing file exit 66 and create nothing",
        arguments: ["check", "stats", "prune"])
    func missingFile(command: String) throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        let (status, out, err) = run(["db", command, "--db", temporary.path])
        #expect(status == .noInput)
        #expect(out == "")
        #expect(err == "faultline db \(command): cannot open \(temporary.path): no such file\n")
        #expect(!FileManager.default.fileExists(atPath: temporary.path))
    }

    @Test(
        "a file that is not SQLite is a clear error naming the file, status 65",
        arguments: ["check", "stats", "migrate", "prune"])
    func notSQLite(command: String) throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        let text = Data(String(repeating: "this is a text file, not a database\n", count: 200).utf8)
        try text.write(to: URL(fileURLWithPath: temporary.path))
        let (status, out, err) = run(["db", command, "--db", temporary.path])
        #expect(status == .dataError)
        #expect(out == "")
        #expect(
            err.hasPrefix("faultline db \(command): \(temporary.path) is not an SQLite database"), "\(err)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: temporary.path)) == text)  // left as it was
    }

    @Test("stats on a store that lacks migrations says to migrate, status 65")
    func statsUnmigrated() throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        _ = FileManager.default.createFile(atPath: temporary.path, contents: Data())
        let (status, _, err) = run(["db", "stats", "--db", temporary.path])
        #expect(status == .dataError)
        #expect(err.contains("run `faultline db migrate --db \(temporary.path)`"), "\(err)")
    }

    @Test("check and migrate refuse a store with migrations this build does not know, status 65")
    func unknownMigration() throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        do {
            let store = try Store(path: temporary.path)
            try store.database.run("INSERT INTO faultline_migrations (name) VALUES ('9999-future')")
        }
        let check = run(["db", "check", "--db", temporary.path])
        #expect(check.0 == .dataError)
        #expect(check.out.contains("  unknown: 9999-future"))
        #expect(check.err.contains("does not know: 9999-future"))
        let migrate = run(["db", "migrate", "--db", temporary.path])
        #expect(migrate.0 == .dataError)
        #expect(migrate.err.contains("9999-future"))
    }

    @Test("db migrate into a directory that does not exist exits 73")
    func migrateCannotCreate() {
        let (status, _, err) = run(["db", "migrate", "--db", "/nonexistent-faultline-dir/x.db"])
        #expect(status == .cannotCreate)
        #expect(err.contains("/nonexistent-faultline-dir/x.db"))
    }

    @Test("--db is required", arguments: ["check", "migrate", "prune", "stats"])
    func dbRequired(command: String) {
        let (status, _, err) = run(["db", command])
        #expect(status == .usage)
        #expect(err.contains("--db is required"))
    }
}

/// The repository's scenarios/ directory.
private let scenariosDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scenarios")

@Suite("db import and export")
struct DbImportExportTests {
    @Test("reports imported in any order export in (window, node) order, byte for byte, and replay the same")
    func importExportReplay() throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        let scenarioURL = scenariosDirectory.appendingPathComponent("small-16.json")
        let scenario = try Scenario(json: Data(contentsOf: scenarioURL))
        let simulator = try FleetSimulator(
            scenario: scenario, topology: scenario.loadTopology(relativeTo: scenariosDirectory))
        let topologyPath = temporary.directory + "/topology.json"
        try simulator.topology.jsonData().write(to: URL(fileURLWithPath: topologyPath))
        let sorted = (0..<scenario.windows).flatMap { simulator.reports(window: $0) }.map(\.jsonLine)
        var generator = SeededGenerator(seed: 7)
        let shuffled = sorted.shuffled(using: &generator)
        let input = temporary.directory + "/shuffled.ndjson"
        try Data(shuffled.map { $0 + "\n" }.joined().utf8).write(to: URL(fileURLWithPath: input))

        let imported = run(["db", "import", "--db", temporary.path, "--input", input, "--json"])
        #expect(imported.0 == .success, "\(imported.err)")
        #expect(
            imported.out
                == "{\"stored\": \(sorted.count), \"duplicates\": 0, \"conflicts\": 0, \"invalid\": 0}\n")
        let exported = run(["db", "export", "--db", temporary.path])
        #expect(exported.0 == .success)
        #expect(exported.out == sorted.map { $0 + "\n" }.joined())

        let exportPath = temporary.directory + "/exported.ndjson"
        try Data(exported.out.utf8).write(to: URL(fileURLWithPath: exportPath))
        let direct = run(["replay", "--topology", topologyPath, "--input", input, "--json"])
        let viaStore = run(["replay", "--topology", topologyPath, "--input", exportPath, "--json"])
        #expect(direct.0 == .success && viaStore.0 == .success)
        #expect(!direct.out.isEmpty)  // the scenario's faults are found
        #expect(viaStore.out == direct.out)

        // A window range.
        let start = simulator.windowStart(3)
        let middle = run([
            "db", "export", "--db", temporary.path, "--from", start.description, "--to",
            simulator.windowStart(5).description,
        ])
        let expected = (3..<5).flatMap { simulator.reports(window: $0) }.map { $0.jsonLine + "\n" }.joined()
        #expect(middle.out == expected)
    }

    @Test("import accepts a retried report, and names the line of a conflict or an invalid report (65)")
    func importDuplicatesAndConflicts() throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        let first = try report("gpu-a", 1_795_000_000)
        var changed = first
        changed.pairs[0].lost = 1
        let lines = [
            first.jsonLine, first.jsonLine, "", changed.jsonLine, "{\"version\": 2}",
            try report("gpu-b", 1_795_000_000).jsonLine,
        ]
        let input = temporary.directory + "/reports.ndjson"
        try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: input))
        let (status, out, err) = run([
            "db", "import", "--db", temporary.path, "--input", input, "--acknowledge",
        ])
        #expect(status == .dataError)
        #expect(
            out == """
                stored gpu-a 2026-11-18T11:06:40Z
                duplicate-same gpu-a 2026-11-18T11:06:40Z
                conflict gpu-a 2026-11-18T11:06:40Z
                stored gpu-b 2026-11-18T11:06:40Z

                """)
        #expect(
            err.contains(
                "\(input):4: conflict: gpu-a already reported 2026-11-18T11:06:40Z with different content\n"))
        #expect(err.contains("\(input):5: node: missing\n"))
        #expect(
            try Store(path: temporary.path, mode: .existing, migrate: false).reports() == [
                first, try report("gpu-b", 1_795_000_000),
            ])
    }

    @Test("every report acknowledged before an import is killed with SIGKILL is in the store, intact")
    func acknowledgedReportsSurviveKill() async throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        // Enough reports that the import is still running when it is killed.
        let count = 20_000
        let input = temporary.directory + "/reports.ndjson"
        let text = try (0..<count).map { i in
            try report("gpu-\(i % 100)", 1_795_000_000 + Int64(i / 100) * 10).jsonLine + "\n"
        }.joined()
        try Data(text.utf8).write(to: URL(fileURLWithPath: input))

        let process = Process()
        process.executableURL = try faultlineExecutable()
        process.arguments = ["db", "import", "--db", temporary.path, "--input", input, "--acknowledge"]
        let outPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        var received = Data()
        let reader = outPipe.fileHandleForReading
        while received.filter({ $0 == UInt8(ascii: "\n") }).count < 300 {
            let chunk = reader.availableData
            if chunk.isEmpty { break }  // the child finished (or died) first
            received += chunk
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "the import ended before it was killed")
        received += reader.readDataToEndOfFile()

        // Only whole lines are acknowledgements.
        let acknowledged = String(decoding: received, as: UTF8.self).split(
            separator: "\n", omittingEmptySubsequences: false
        )
        .dropLast().map(String.init)
        #expect(acknowledged.count >= 300)
        #expect(acknowledged.count < count)
        let store = try Store(path: temporary.path, mode: .existing, migrate: false)
        let stored = Set(try store.reports().map { "stored \($0.node) \($0.windowStart)" })
        #expect(acknowledged.allSatisfy { stored.contains($0) })
        #expect(stored.count >= acknowledged.count)
        #expect(try store.database.singleText("PRAGMA integrity_check") == "ok")
    }
}

@Suite("db check on a damaged store")
struct DbCorruptionTests {
    @Test("a store with a page overwritten fails check with status 65 and names the file")
    func corruptedPage() throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        do {
            let store = try Store(path: temporary.path)
            for window in 0..<200 {
                _ = try store.append(
                    try report("gpu-\(window % 7)", 1_795_000_000 + Int64(window) * 10),
                    receivedAt: Timestamp(secondsSinceEpoch: 0))
            }
        }  // closed: the WAL is checkpointed into the file
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: temporary.path)))
        #expect(bytes.count > 20 * 4096)
        // Overwrite pages 8 to 15 (b-tree pages of the log and its index) with a pattern.
        for offset in (8 * 4096)..<(16 * 4096) { bytes[offset] = UInt8(truncatingIfNeeded: offset &* 31) }
        try Data(bytes).write(to: URL(fileURLWithPath: temporary.path))
        let (status, _, err) = run(["db", "check", "--db", temporary.path])
        #expect(status == .dataError)
        #expect(err.contains(temporary.path), "\(err)")
    }
}
