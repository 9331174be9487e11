// The store's behaviour: the event log round-trips reports exactly, duplicates are told apart by
// content, transactions roll back on throw, migrations apply from an empty file and are recorded,
// errors keep code, message and SQL, and non-SQLite files fail with their name.

import CSQLite3
import Engine
import FleetModel
import Foundation
import QuantileSketch
import Simulation
import Store
import Testing

@Suite("store")
struct StoreTests {
    @Test("a report goes through the log and comes back equal: sketches, path, errors, health")
    func roundTrip() throws {
        try withStore { store, _ in
            let report = try sampleReport()
            #expect(
                try store.append(report, receivedAt: Timestamp(secondsSinceEpoch: 1_795_000_011)) == .stored)
            let back = try store.reports()
            #expect(back == [report])
            #expect(back.first?.jsonLine == report.jsonLine)
            // The sketches decode to the same sketch.
            for (a, b) in zip(back[0].pairs, report.pairs) where a.rttMicros != nil {
                let left = try QuantileSketch(decoding: a.rttMicros!.decodedBytes!)
                let right = try QuantileSketch(decoding: b.rttMicros!.decodedBytes!)
                #expect(left == right)
            }
        }
    }

    @Test(
        "the log stores sketches as bytes with varint counts: smaller than the protobuf, let alone its base64"
    )
    func compactEncoding() throws {
        let report = try sampleReport()
        let encoded = PairsEncoding.encode(report.pairs)
        let base64Bytes = report.pairs.compactMap(\.rttMicros).reduce(0) { $0 + $1.base64.utf8.count }
        let rawBytes = report.pairs.compactMap(\.rttMicros).reduce(0) { $0 + $1.decodedBytes!.count }
        #expect(encoded.count < base64Bytes)
        #expect(encoded.count < rawBytes)  // bin counts as varints, not doubles
        #expect(try PairsEncoding.decode(encoded) == report.pairs)
    }

    @Test("pairs decoded for the engine keep their sketches compact, sharing the row; they equal the expanded ones")
    func compactSketchForm() throws {
        let report = try sampleReport()
        let encoded = PairsEncoding.encode(report.pairs)
        let compact = try PairsEncoding.decode(encoded, sketches: .compact)
        #expect(compact == report.pairs)  // a compact form equals the bytes it expands to
        #expect(compact.filter { if case .compact? = $0.rttMicros { true } else { false } }.count == 3)
        for (pair, original) in zip(compact, report.pairs) {
            #expect(pair.rttMicros?.base64 == original.rttMicros?.base64)
            #expect(pair.rttMicros.map(\.hashValue) == original.rttMicros.map(\.hashValue))
            var scratch: [UInt8] = [9, 9, 9]  // reused, and longer or shorter than a sketch
            #expect(pair.rttMicros?.withProtobufBytes(scratch: &scratch) { Array($0) } == original.rttMicros?.decodedBytes)
        }
        // Stored again, a compact form encodes as the bytes it stands for.
        #expect(PairsEncoding.encode(compact) == encoded)
        // From the store: the same reports either way.
        try withStore { store, _ in
            _ = try store.append(report, receivedAt: report.windowStart)
            var read: [Report] = []
            try store.forEachReport(sketches: .compact) { read.append($0) }
            #expect(read == [report])
        }
    }

    @Test("a damaged compact sketch fails its row when expanded or read as decoded; kept compact, the engine counts it")
    func damagedCompactSketch() throws {
        let report = try sampleReport()
        var encoded = PairsEncoding.encode(report.pairs)
        // The first pair's sketch: past the names, counts and flags; its compact bytes follow their length.
        let sketch = try #require(SketchCompaction.compact(report.pairs[0].rttMicros!.decodedBytes!))
        let at = try #require(encoded.indices.first { encoded[$0...].starts(with: sketch) })
        // The positive store's field count (after the mapping's 11 bytes and the store's tag) made
        // larger than the bytes left.
        encoded[at + 12] = 0x7F
        #expect(throws: EncodingError.self) { try PairsEncoding.decode(encoded) }
        // Read as it is decoded (replay, explain), it fails the row too: the log holds only what
        // compaction made, so a compact sketch that does not expand is damage.
        var stored = StoredReportReader()
        #expect(throws: EncodingError.self) { try PairsEncoding.decode(encoded, of: report.node, reading: &stored) }
        // Kept compact for the engine (the service's rebuild), it is counted when read, as live.
        let pairs = try PairsEncoding.decode(encoded, sketches: .compact)
        #expect(pairs[0].rttMicros?.decodedBytes == nil)
        var scratch: [UInt8] = []
        #expect(pairs[0].rttMicros?.withProtobufBytes(scratch: &scratch) { _ in true } == nil)
        #expect(pairs[0].rttMicros?.base64 == "")
        #expect(pairs[1...] == report.pairs[1...])
        // Stored again, it stays the damage it was, not a guess.
        #expect(PairsEncoding.encode(pairs) == encoded)
    }

    @Test("a sketch compaction cannot reproduce is stored as its raw bytes and comes back exactly as sent")
    func uncompactableSketch() throws {
        // A Store (field 2) with contiguousBinCounts holding 1.5: not a whole number.
        let fractional: [UInt8] =
            [0x12, 0x0A, 0x12, 0x08] + withUnsafeBytes(of: (1.5).bitPattern.littleEndian, Array.init)
        #expect(SketchCompaction.compact(fractional) == nil)
        var report = try sampleReport()
        report.pairs[0].rttMicros = .bytes(fractional)
        #expect(try PairsEncoding.decode(PairsEncoding.encode(report.pairs)) == report.pairs)
    }

    @Test("a sketch whose base64 is not canonical is kept verbatim; a bad one too")
    func nonCanonicalSketchText() throws {
        var report = try sampleReport()
        report.pairs[0].rttMicros = WireSketch(base64: "not base64!")
        let unpadded = String(report.pairs[1].rttMicros!.base64.dropLast())  // padding missing
        report.pairs[1].rttMicros = WireSketch(base64: unpadded)
        #expect(report.pairs[1].rttMicros == .text(unpadded))
        try withStore { store, _ in
            _ = try store.append(report, receivedAt: report.windowStart)
            #expect(try store.reports() == [report])
        }
    }

    @Test("truncated or garbled pair bytes fail to decode with a reason, never trap")
    func decodeRejectsGarbage() throws {
        let encoded = PairsEncoding.encode(try sampleReport().pairs)
        for cut in [0, 1, 5, encoded.count / 2, encoded.count - 1] {
            #expect(throws: EncodingError.self) { try PairsEncoding.decode(Array(encoded.prefix(cut))) }
        }
        #expect(throws: EncodingError.self) { try PairsEncoding.decode(encoded + [0]) }
        var badVersion = encoded
        badVersion[0] = 9
        #expect(throws: EncodingError.self) { try PairsEncoding.decode(badVersion) }
        // Counts a report could not have had (the engine relies on validation's bounds).
        let pair = try sampleReport().pairs[0]
        for (sent, lost) in [(Report.maxProbesPerPair + 1, 0), (-1, 0), (10, 11), (10, -1)] {
            var damaged = pair
            damaged.sent = sent
            damaged.lost = lost
            #expect(throws: EncodingError.self) { try PairsEncoding.decode(PairsEncoding.encode([damaged])) }
        }
        #expect(try PairsEncoding.decode(PairsEncoding.encode([pair])) == [pair])
    }

    @Test("same node and window: identical content is duplicate-same, different content a conflict")
    func duplicates() throws {
        try withStore { store, _ in
            let report = try sampleReport()
            let received = Timestamp(secondsSinceEpoch: 1_795_000_011)
            #expect(try store.append(report, receivedAt: received) == .stored)
            #expect(try store.append(report, receivedAt: received.adding(seconds: 5)) == .duplicateSame)
            var changed = report
            changed.pairs[1].lost = 2
            #expect(try store.append(changed, receivedAt: received) == .conflict)
            var otherHealth = report
            otherHealth.health["pcie"] = .null
            #expect(try store.append(otherHealth, receivedAt: received) == .conflict)
            // Every part of the content counts: each column compared, none left out.
            var noHealth = report
            noHealth.health = [:]
            var otherVersion = report
            otherVersion.agentVersion += "-rc1"
            var otherTransport = report
            otherTransport.transport = report.transport == .udp ? .verbsUD : .udp
            var otherLength = report
            otherLength.windowSeconds = report.windowSeconds / 2
            var otherSketch = report
            otherSketch.pairs[0].rttMicros = nil
            for variant in [noHealth, otherVersion, otherTransport, otherLength, otherSketch] {
                #expect(variant != report)
                #expect(try store.append(variant, receivedAt: received) == .conflict)
            }
            // The first one stays; another node or window is new.
            #expect(try store.reports() == [report])
            #expect(try store.append(try sampleReport(node: "gpu-a002"), receivedAt: received) == .stored)
            #expect(try store.append(try sampleReport(start: 1_795_000_010), receivedAt: received) == .stored)
            #expect(try store.statistics().reports == 3)
            #expect(try store.windows().map(\.reportCount) == [2, 1])
        }
    }

    @Test("the reader yields (windowStart, node) order, within a half-open time range, and wire lines")
    func readerOrderAndRange() throws {
        try withStore { store, _ in
            let starts: [Int64] = [1_795_000_020, 1_795_000_000, 1_795_000_010]
            for start in starts {
                for node in ["gpu-c", "gpu-a", "gpu-b"] {
                    _ = try store.append(
                        try sampleReport(node: node, start: start),
                        receivedAt: Timestamp(secondsSinceEpoch: start))
                }
            }
            let all = try store.reports()
            #expect(
                all.map { "\($0.windowStart.secondsSinceEpoch % 100) \($0.node)" } == [
                    "0 gpu-a", "0 gpu-b", "0 gpu-c", "10 gpu-a", "10 gpu-b", "10 gpu-c", "20 gpu-a",
                    "20 gpu-b", "20 gpu-c",
                ])
            let middle = try store.reports(
                from: Timestamp(secondsSinceEpoch: 1_795_000_010),
                to: Timestamp(secondsSinceEpoch: 1_795_000_020))
            #expect(middle.map(\.node.rawValue) == ["gpu-a", "gpu-b", "gpu-c"])
            var lines: [String] = []
            try store.forEachReportLine(from: Timestamp(secondsSinceEpoch: 1_795_000_020)) {
                lines.append($0)
            }
            #expect(lines.count == 3)
            let reparsed = try Report.parseLines(Data(lines.joined(separator: "\n").utf8), name: "store")
            #expect(reparsed == Array(all.suffix(3)))
        }
    }

    @Test("a transaction that throws leaves nothing behind; one that returns commits")
    func rollbackOnThrow() throws {
        struct Abort: Error {}
        try withStore { store, _ in
            let database = store.database
            try database.execute("CREATE TABLE t (x INTEGER)")
            #expect(throws: Abort.self) {
                try database.transaction {
                    try database.run("INSERT INTO t VALUES (1)")
                    throw Abort()
                }
            }
            #expect(!database.isInTransaction)
            #expect(try database.singleInt("SELECT count(*) FROM t") == 0)
            try database.transaction { try database.run("INSERT INTO t VALUES (2)") }
            #expect(try database.singleInt("SELECT sum(x) FROM t") == 2)
            // A failing statement inside a transaction rolls the whole of it back too.
            #expect(throws: DatabaseError.self) {
                try database.transaction {
                    try database.run("INSERT INTO t VALUES (3)")
                    try database.run("INSERT INTO missing VALUES (4)")
                }
            }
            #expect(try database.singleInt("SELECT sum(x) FROM t") == 2)
        }
    }

    @Test("an append that fails half-way stores nothing")
    func appendIsAtomic() throws {
        try withStore { store, _ in
            // Sabotage the second statement of append (the windows upsert).
            try store.database.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON windows BEGIN SELECT RAISE(ABORT, 'no windows today'); END"
            )
            #expect(throws: DatabaseError.self) {
                try store.append(try sampleReport(), receivedAt: Timestamp(secondsSinceEpoch: 0))
            }
            #expect(try store.statistics().reports == 0)
        }
    }

    @Test("errors keep the result code, SQLite's message, the SQL and the file")
    func errorsCarrySQLAndCode() throws {
        try withStore { store, temporary in
            let sql = "SELECT nope FROM reports"
            do {
                _ = try store.database.prepare(sql)
                Issue.record("prepare succeeded")
            } catch let error as DatabaseError {
                #expect(error.resultCode == SQLITE_ERROR)
                #expect(error.sql == sql)
                #expect(error.message.contains("no such column: nope"))
                #expect(error.function == "sqlite3_prepare_v3")
                #expect(error.path == temporary.path)
                #expect(error.description.contains(sql))
            }
            try store.database.execute("CREATE TABLE u (x INTEGER UNIQUE)")
            try store.database.run("INSERT INTO u VALUES (1)")
            do {
                try store.database.run("INSERT INTO u VALUES (?)", [.integer(1)])
                Issue.record("insert succeeded")
            } catch let error as DatabaseError {
                #expect(error.resultCode == SQLITE_CONSTRAINT)
                // SQLITE_CONSTRAINT_UNIQUE, a macro Swift cannot import.
                #expect(error.extendedResultCode == 2067)
                #expect(error.sql == "INSERT INTO u VALUES (?)")
                #expect(error.codeName == "SQLITE_CONSTRAINT")
            }
        }
    }

    @Test("a file that is not SQLite fails on open with an error naming the file")
    func notADatabase() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: temporary.path))
        do {
            _ = try Database(path: temporary.path, mode: .existing)
            Issue.record("opened a text file as a database")
        } catch {
            #expect(error.resultCode == SQLITE_NOTADB)
            #expect(error.description.contains(temporary.path))
            #expect(error.description.contains("not an SQLite database"))
        }
    }

    @Test("opening a missing file without create fails with SQLITE_CANTOPEN and creates nothing")
    func missingFile() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        #expect(throws: DatabaseError.self) { _ = try Database(path: temporary.path, mode: .existing) }
        #expect(!FileManager.default.fileExists(atPath: temporary.path))
    }

    @Test("migrations apply to an empty file in order, are recorded by name, and re-running does nothing")
    func migrations() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let names = Migrations.all.map(\.name)
        do {
            let database = try Database(path: temporary.path)
            #expect(try Migrations.status(of: database).pending == names)
            #expect(try Migrations.migrate(database) == names)
            #expect(try Migrations.applied(in: database) == names)
            #expect(try Migrations.migrate(database) == [])
            #expect(try database.singleText("PRAGMA journal_mode") == "wal")
        }
        // A new connection sees the same; a store opens without migrating.
        let store = try Store(path: temporary.path, mode: .existing, migrate: false)
        #expect(
            try Migrations.status(of: store.database)
                == Migrations.Status(applied: names, pending: [], unknown: []))
        let statistics = try store.statistics()
        #expect(statistics.reports == 0 && statistics.windows == 0 && statistics.findings == 0)
        #expect(statistics.bytes > 0)
    }

    @Test("0005 drops the content hash from a log that has reports: they stay, and duplicates are still told")
    func contentHashMigration() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let report = try sampleReport()
        let pairs = PairsEncoding.encode(report.pairs)
        do {
            // A store as the release before 0005 left it, with one report in its log.
            let database = try Database(path: temporary.path)
            let before = Migrations.all.prefix { $0.name != "0005-reports-without-content-hash" }
            #expect(before.map(\.name).last == "0004-remediation")
            for migration in before {
                try database.execute(
                    "CREATE TABLE IF NOT EXISTS faultline_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
                try database.execute(migration.sql)
                try database.run("INSERT INTO faultline_migrations (name) VALUES (?)", [.text(migration.name)])
            }
            try database.run(
                """
                INSERT INTO reports (window_start, node, window_seconds, agent_version, transport, pair_count,
                    pairs, health, content_hash, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .integer(report.windowStart.secondsSinceEpoch), .text(report.node.rawValue),
                    .int(report.windowSeconds), .text(report.agentVersion), .text(report.transport.rawValue),
                    .int(report.pairs.count), .blob(pairs),
                    .optionalText(report.health.isEmpty ? nil : JSONValue.object(report.health).jsonText),
                    .blob([UInt8](repeating: 7, count: 32)), .integer(1_795_000_011),
                ])
        }
        let store = try Store(path: temporary.path)
        #expect(try Migrations.applied(in: store.database) == Migrations.all.map(\.name))
        let columns = try store.database.prepare("SELECT name FROM pragma_table_info('reports')")
        var names: [String] = []
        while try columns.step() { names.append(columns.string(0) ?? "") }
        #expect(!names.contains("content_hash") && names.contains("pairs"))
        #expect(try store.reports() == [report])
        let received = Timestamp(secondsSinceEpoch: 1_795_000_020)
        #expect(try store.append(report, receivedAt: received) == .duplicateSame)
        var changed = report
        changed.pairs[0].sent += 1
        #expect(try store.append(changed, receivedAt: received) == .conflict)
    }

    @Test("a file that lacks migrations is refused without migrate; one with unknown migrations always")
    func migrationMismatch() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        do { _ = try Database(path: temporary.path) }  // an empty, valid SQLite file
        #expect(throws: StoreError.pendingMigrations(path: temporary.path, Migrations.all.map(\.name))) {
            _ = try Store(path: temporary.path, mode: .existing, migrate: false)
        }
        do {
            let store = try Store(path: temporary.path)
            try store.database.run("INSERT INTO faultline_migrations (name) VALUES ('9999-from-the-future')")
        }
        #expect(throws: StoreError.unknownMigrations(path: temporary.path, ["9999-from-the-future"])) {
            _ = try Store(path: temporary.path)
        }
    }

    @Test("a migration that fails rolls back alone: earlier ones stay recorded")
    func failingMigrationRollsBack() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        let database = try Database(path: temporary.path)
        // Make the second migration fail: a table it creates already exists.
        try database.execute("CREATE TABLE windows (x INTEGER)")
        #expect(throws: DatabaseError.self) { try Migrations.migrate(database) }
        #expect(try Migrations.applied(in: database) == [Migrations.all[0].name])
        #expect(
            try database.singleInt("SELECT count(*) FROM sqlite_schema WHERE name = 'unhealthy_pairs'") == 0)
    }

    @Test("a stored report is committed when append returns: another connection sees it")
    func committedBeforeReturn() throws {
        try withStore { store, temporary in
            let report = try sampleReport()
            _ = try store.append(report, receivedAt: report.windowStart)
            let other = try Store(path: temporary.path, mode: .existing, migrate: false)
            #expect(try other.reports() == [report])
        }
    }

    @Test("SHA-256 matches the FIPS 180-4 test vectors")
    func sha256() {
        #expect(
            SHA256.hex(Array("".utf8)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            SHA256.hex(Array("abc".utf8))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(
            SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

@Suite("store: connection lifetime")
struct ConnectionLifetimeTests {
    @Test("a dropped store closes its connection: nothing keeps it alive, and the WAL is checkpointed away")
    func closesOnDeinit() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        weak var weakDatabase: Database?
        do {
            let store = try Store(path: temporary.path)
            weakDatabase = store.database
            _ = try store.append(try sampleReport(), receivedAt: Timestamp(secondsSinceEpoch: 0))
            _ = try store.reports()  // cached and uncached statements both used
            #expect(FileManager.default.fileExists(atPath: temporary.path + "-wal"))
        }
        #expect(weakDatabase == nil)
        #expect(!FileManager.default.fileExists(atPath: temporary.path + "-wal"))
        #expect(try Store(path: temporary.path, mode: .existing, migrate: false).reports().count == 1)
    }

    @Test("a statement that outlives its database stays usable until it goes")
    func statementOutlivesDatabase() throws {
        let temporary = try TemporaryDatabase()
        defer { temporary.remove() }
        var database: Database? = try Database(path: temporary.path)
        let statement = try database!.prepare("SELECT 40 + 2")
        database = nil
        #expect(try statement.step())
        #expect(statement.int(0) == 42)
    }
}

@Suite("store: batches")
struct BatchAppendTests {
    @Test("a batch is stored in one transaction; duplicates within it and against the store are told apart")
    func batch() throws {
        try withStore { store, _ in
            let a = try sampleReport(node: "gpu-a")
            let b = try sampleReport(node: "gpu-b")
            var conflicting = b
            conflicting.agentVersion = "0.3.1"
            let received = Timestamp(secondsSinceEpoch: 1_795_000_011)
            #expect(try store.append(a, receivedAt: received) == .stored)
            let outcomes = try store.append(contentsOf: [a, b, b, conflicting], receivedAt: received)
            #expect(outcomes == [.duplicateSame, .stored, .duplicateSame, .conflict])
            #expect(try store.reports() == [a, b])
            #expect(try store.windows().map(\.reportCount) == [2])
        }
    }

    @Test("a batch that fails part-way stores none of it")
    func batchIsAtomic() throws {
        try withStore { store, _ in
            try store.database.execute(
                """
                CREATE TRIGGER refuse_c BEFORE INSERT ON reports WHEN NEW.node = 'gpu-c'
                BEGIN SELECT RAISE(ABORT, 'not gpu-c'); END
                """)
            let reports = try ["gpu-a", "gpu-b", "gpu-c"].map { try sampleReport(node: $0) }
            #expect(throws: DatabaseError.self) {
                _ = try store.append(contentsOf: reports, receivedAt: Timestamp(secondsSinceEpoch: 0))
            }
            #expect(try store.statistics().reports == 0)
            #expect(try store.windows().isEmpty)
        }
    }

    @Test("the connection runs in WAL mode with NORMAL sync, foreign keys on and a bounded WAL")
    func pragmas() throws {
        try withStore { store, _ throws in
            let database = store.database
            #expect(try database.singleText("PRAGMA journal_mode") == "wal")
            #expect(try database.singleInt("PRAGMA synchronous") == 1)  // NORMAL
            #expect(try database.singleInt("PRAGMA foreign_keys") == 1)
            #expect(try database.singleInt("PRAGMA journal_size_limit") == Int64(Database.walSizeLimitBytes))
            #expect(try database.singleInt("PRAGMA busy_timeout") == 5000)
        }
    }
}

@Suite("store: reports measured as they are read")
struct MeasuredReportTests {
    private static let scenarios = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scenarios")

    @Test("pairs decoded with their sketches read: the pairs' routes, their counts and the readings of their sketches")
    func decodeReading() throws {
        var report = try sampleReport()
        report.pairs[0].rttMicros = .text("not base64!")  // reads as nothing
        let encoded = PairsEncoding.encode(report.pairs)
        var stored = StoredReportReader()
        let decoded = try PairsEncoding.decode(encoded, of: report.node, reading: &stored)
        var reader = PairSketchReader()
        #expect(decoded.roster.routes == PairRoster(pairs: report.pairs).routes)
        #expect(decoded.measures.map(\.sent) == report.pairs.map(\.sent))
        #expect(decoded.measures.map(\.lost) == report.pairs.map(\.lost))
        let expected = report.pairs.map { $0.sent > $0.lost ? reader.read($0.rttMicros) : .none }
        #expect(decoded.measures.map(\.sketch) == expected)
        #expect(expected.map(\.isValid) == [false, true, true, false])
        #expect(expected[2].count == 20 && expected[2].p50 > 8 && expected[2].p50 < 10)
        // As the engine takes the report itself: the same measures.
        #expect(MeasuredReport(report, reader: &reader).measures == decoded.measures)

        // The node's next row with the same routes shares its roster; a changed route is a new one.
        let again = try PairsEncoding.decode(encoded, of: report.node, reading: &stored)
        #expect(again.roster === decoded.roster && again.measures == decoded.measures)
        // The same layout with another name in the table (a peer renamed) is other routes.
        var renamed = report
        renamed.pairs[2].dst = EndpointID(node: NodeName("gpu-z998")!, rail: 3)!
        let third = try PairsEncoding.decode(PairsEncoding.encode(renamed.pairs), of: report.node, reading: &stored)
        #expect(third.roster !== decoded.roster && third.roster.routes == PairRoster(pairs: renamed.pairs).routes)
        var rerouted = report
        rerouted.pairs[2].path![1] = SwitchName("spine-05")!
        let fourth = try PairsEncoding.decode(PairsEncoding.encode(rerouted.pairs), of: report.node, reading: &stored)
        #expect(fourth.roster.routes == PairRoster(pairs: rerouted.pairs).routes)
        // Back to the first routes: a roster of its own again, equal to the first.
        let fifth = try PairsEncoding.decode(encoded, of: report.node, reading: &stored)
        #expect(fifth.roster !== decoded.roster && fifth.roster.routes == decoded.roster.routes)
        // Another node's row starts with nothing to share.
        let other = try PairsEncoding.decode(encoded, of: NodeName("gpu-z999")!, reading: &stored)
        #expect(other.roster !== decoded.roster && other.roster.routes == decoded.roster.routes)
    }

    @Test("a replay from reports measured as they are read finds what one from the reports does, counters and all")
    func replayFromMeasuredReports() throws {
        let scenario = try Scenario(json: Data(contentsOf: Self.scenarios.appendingPathComponent("access-link-faults.json")))
        let topology = try scenario.loadTopology(relativeTo: Self.scenarios)
        let simulator = try FleetSimulator(scenario: scenario, topology: topology)
        try withStore { store, _ in
            for window in 0..<scenario.windows {
                _ = try store.append(contentsOf: simulator.reports(window: window), receivedAt: simulator.windowStart(window))
            }
            var fromReports = Engine(topology: topology, rules: .defaults, windowSeconds: scenario.windowSeconds)
            var findings: [Finding] = []
            try store.forEachReport { findings += fromReports.replay($0).findings }
            findings += fromReports.finish()
            var fromMeasured = Engine(topology: topology, rules: .defaults, windowSeconds: scenario.windowSeconds)
            var measuredFindings: [Finding] = []
            var reader = StoredReportReader()
            try store.forEachMeasuredReport(reader: &reader) { measured in
                #expect(!measured.keepsSketches)
                measuredFindings += fromMeasured.replay(measured).findings
            }
            measuredFindings += fromMeasured.finish()
            #expect(!findings.isEmpty)
            #expect(measuredFindings == findings)
            #expect(fromMeasured.counters == fromReports.counters)
        }
    }
}
