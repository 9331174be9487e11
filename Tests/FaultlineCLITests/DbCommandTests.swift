// `faultline db check | migrate | prune | stats` in process: a fresh temporary store per test, JSON
// output parsed, and the exit statuses for a missing file (66), a file that is not SQLite (65),
// unknown migrations (65) and bad options (64).

import FleetModel
import Foundation
import QuantileSketch
import Store
import Testing

@testable import FaultlineCLI

/// A fresh temporary directory with a database path in it; `remove()` deletes both.
private struct DbDirectory {
    let directory: String
    var path: String { directory + "/faultline.db" }

    init() throws {
        directory = FileManager.default.temporaryDirectory
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
        pairs: [.init(src: src, dst: src, sent: 4, lost: 0, rttMicros: Data(sketch.encoded()).base64EncodedString())])
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
        #expect(first.out == "\(temporary.path): applied \(Migrations.all.map(\.name).joined(separator: ", ")) (\(Migrations.all.count) migrations)\n")
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
        #expect(try Migrations.applied(in: Database(path: temporary.path, mode: .existing)) == Migrations.all.map(\.name))
    }

    @Test("db stats --json counts reports, windows and findings and gives the size")
    func statsJSON() throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        do {
            let store = try Store(path: temporary.path)
            for (node, start) in [("gpu-a", 1_795_000_000), ("gpu-b", 1_795_000_000), ("gpu-a", 1_795_000_010)] {
                _ = try store.append(try report(node, Int64(start)), receivedAt: Timestamp(secondsSinceEpoch: 0))
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
                _ = try store.append(try report("gpu-a", 1_795_000_000 + Int64(window) * 3600), receivedAt: Timestamp(secondsSinceEpoch: 0))
            }
        }
        // now = first window + 5 h; raw retention 2 h: the windows at +0 h, +1 h and +2 h go
        // (+3 h is exactly at the cutoff and stays).
        let now = Timestamp(secondsSinceEpoch: 1_795_000_000 + 5 * 3600).description
        let (status, out, err) = run([
            "db", "prune", "--db", temporary.path, "--raw-retention", "2h", "--aggregate-retention", "90d", "--now", now,
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

    @Test("db prune rejects a bad duration or time with status 64", arguments: [
        ["--raw-retention", "72"], ["--aggregate-retention", "3w"], ["--now", "yesterday"], ["--batch", "0"],
    ])
    func pruneUsage(options: [String]) {
        let (status, out, err) = run(["db", "prune", "--db", "/nonexistent/x.db"] + options)
        #expect(status == .usage)
        #expect(out == "")
        #expect(err.contains("--\(options[0].dropFirst(2))"), "\(err)")
    }

    @Test("check, stats and prune on a missing file exit 66 and create nothing", arguments: ["check", "stats", "prune"])
    func missingFile(command: String) throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        let (status, out, err) = run(["db", command, "--db", temporary.path])
        #expect(status == .noInput)
        #expect(out == "")
        #expect(err == "faultline db \(command): cannot open \(temporary.path): no such file\n")
        #expect(!FileManager.default.fileExists(atPath: temporary.path))
    }

    @Test("a file that is not SQLite is a clear error naming the file, status 65", arguments: ["check", "stats", "migrate", "prune"])
    func notSQLite(command: String) throws {
        let temporary = try DbDirectory()
        defer { temporary.remove() }
        let text = Data(String(repeating: "this is a text file, not a database\n", count: 200).utf8)
        try text.write(to: URL(fileURLWithPath: temporary.path))
        let (status, out, err) = run(["db", command, "--db", temporary.path])
        #expect(status == .dataError)
        #expect(out == "")
        #expect(err.hasPrefix("faultline db \(command): \(temporary.path) is not an SQLite database"), "\(err)")
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
