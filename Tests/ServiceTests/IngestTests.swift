// POST /v1/reports through the router: every status of wire-v1 §3 (202, 400 naming the field, 401,
// 403, 409, 413, and 202 again for an identical duplicate), NDJSON bodies, 415, and a seeded fuzz of
// report JSON and sketch bytes that only ever gives 400 or 202.

import Engine
import FleetModel
import Foundation
import Net
import QuantileSketch
import Simulation
import Store
import Testing

@testable import Service

@Suite("POST /v1/reports")
struct IngestTests {
    @Test("202 stores the report; the same report again is 202 (a duplicate); different content is 409")
    func storedDuplicateConflict() throws {
        let fixture = try ServiceFixture()
        let report = fixture.simulator.reports(window: 0)[0]
        let first = fixture.post(report)
        #expect(first.status == 202)
        #expect(try object(first)["stored"] as? Int == 1)
        let again = fixture.post(report)
        #expect(again.status == 202)
        #expect(try object(again)["duplicates"] as? Int == 1)
        var changed = report
        changed.pairs[0].lost += 1
        changed.pairs[0].sent += 1
        let conflict = fixture.post(changed)
        #expect(conflict.status == 409, "\(text(conflict))")
        #expect(try object(conflict)["field"] as? String == "windowStart")
        let store = try Store(path: fixture.databasePath, mode: .existing, migrate: false)
        #expect(try store.reports() == [report])
        let counters = fixture.correlator.counterSnapshot
        #expect(counters.reportRequestsByStatus == [202: 2, 409: 1])
        #expect(counters.reportsByOutcome == ["stored": 1, "duplicate-same": 1, "conflict": 1])
    }

    @Test("401 without a token or with an unknown one, with WWW-Authenticate; nothing stored")
    func unauthorized() throws {
        let fixture = try ServiceFixture()
        let body = Array(fixture.simulator.reports(window: 0)[0].jsonLine.utf8)
        for token in [nil, "not-a-known-token-at-all", adminToken + "x", String(adminToken.dropLast())] {
            let response = fixture.post(body, token: token)
            #expect(response.status == 401)
            #expect(response.headers["WWW-Authenticate"] == "Bearer")
            #expect(try object(response)["field"] as? String == "Authorization")
        }
        let basic = fixture.call(
            "POST", "/v1/reports", headers: ["Authorization": "Basic \(adminToken)"], body: body)
        #expect(basic.status == 401)
        #expect(fixture.correlator.counterSnapshot.reportsByOutcome.isEmpty)
    }

    @Test(
        "403 for a report of another node (spoofed), also inside NDJSON; the admin token may report for any node"
    )
    func spoofed() throws {
        let fixture = try ServiceFixture()
        let reports = fixture.simulator.reports(window: 0)
        let response = fixture.post(
            Array(reports[1].jsonLine.utf8), token: nodeToken(reports[0].node.rawValue))
        #expect(response.status == 403)
        #expect(try object(response)["field"] as? String == "node")
        let lines = Array((reports[0].jsonLine + "\n" + reports[1].jsonLine + "\n").utf8)
        let batch = fixture.post(
            lines, token: nodeToken(reports[0].node.rawValue), contentType: "application/x-ndjson")
        #expect(batch.status == 403)
        #expect((try object(batch)["error"] as? String)?.hasPrefix("line 2: ") == true)
        #expect(
            fixture.correlator.counterSnapshot.reportsByOutcome.isEmpty, "nothing of a refused body is stored"
        )
        #expect(fixture.post(reports[1], token: adminToken).status == 202)
    }

    @Test(
        "400 names the field of an invalid report",
        arguments: [
            ("{", "body"),
            ("[]", "body"),
            ("VERSION2", "version"),
            ("VERSION1", "node"),
            ("LOST", "pairs[0].lost"),
            ("SRC", "pairs[0].src"),
            ("WINDOW", "windowStart"),
            ("TRANSPORT", "agent.transport"),
            ("NOSKETCH", "pairs[0].rttMicros"),
            ("SENTTYPE", "pairs[0].sent"),
        ])
    func invalid(body: String, field: String) throws {
        let fixture = try ServiceFixture()
        let report = fixture.simulator.reports(window: 0)[0]
        let line = report.jsonLine
        let node = report.node.rawValue
        let text: String
        switch body {
        case "VERSION1":
            text = line.replacingOccurrences(of: "\"node\": \"\(node)\"", with: "\"node\": \"no-such-node\"")
        case "VERSION2": text = line.replacingOccurrences(of: "\"version\": 1", with: "\"version\": 2")
        case "LOST": text = line.replacingOccurrences(of: "\"lost\": 0", with: "\"lost\": -1")
        case "SRC":
            text = line.replacingOccurrences(of: "\"src\": \"\(node)/0\"", with: "\"src\": \"gpu-9999/0\"")
        case "WINDOW": text = line.replacingOccurrences(of: ":00Z\"", with: ":03Z\"")
        case "TRANSPORT":
            text = line.replacingOccurrences(of: "\"transport\": \"", with: "\"transport\": \"x")
        case "NOSKETCH":
            text = line.replacingOccurrences(
                of: #", "rttMicros": "[^"]*""#, with: "", options: .regularExpression)
        case "SENTTYPE":
            text = line.replacingOccurrences(of: "\"sent\": ", with: "\"sent\": \"many\", \"x\": ")
        default: text = body
        }
        let response = fixture.post(Array(text.utf8), token: nodeToken(node))
        #expect(response.status == 400, "\(body): \(String(decoding: response.body, as: UTF8.self))")
        #expect(try object(response)["field"] as? String == field, "\(body)")
    }

    @Test(
        "NDJSON: several reports in one body are 202; a bad line is 400 naming it; too many lines 413; other media 415"
    )
    func ndjson() throws {
        var settings = Correlator.Settings()
        settings.maxReportsPerRequest = 3
        let fixture = try ServiceFixture(settings: settings)
        let report = fixture.simulator.reports(window: 0)[0]
        let token = nodeToken(report.node.rawValue)
        let later = fixture.simulator.reports(window: 1)[0]
        let good = fixture.post(
            Array((report.jsonLine + "\n\n" + later.jsonLine + "\n").utf8), token: token,
            contentType: "application/x-ndjson")
        #expect(good.status == 202)
        #expect(try object(good)["stored"] as? Int == 2)
        let bad = fixture.post(
            Array((report.jsonLine + "\n{\"version\": 1}\n").utf8), token: token,
            contentType: "application/x-ndjson")
        #expect(bad.status == 400)
        #expect(try object(bad)["error"] as? String == "line 2: missing")
        #expect(try object(bad)["field"] as? String == "node")
        let many = fixture.post(
            Array(String(repeating: report.jsonLine + "\n", count: 4).utf8), token: token,
            contentType: "application/x-ndjson")
        #expect(many.status == 413)
        let empty = fixture.post([], token: token, contentType: "application/x-ndjson")
        #expect(empty.status == 400)
        let other = fixture.post(Array(report.jsonLine.utf8), token: token, contentType: "text/plain")
        #expect(other.status == 415)
    }

    @Test("a late report (its window closed) is stored, answered 202 and counted late by the engine")
    func late() throws {
        let fixture = try ServiceFixture()
        let reports = fixture.simulator.reports(window: 0)
        #expect(fixture.post(reports[0]).status == 202)
        fixture.clock.set(fixture.simulator.windowStart(5))
        fixture.correlator.tick()
        #expect(fixture.post(reports[1]).status == 202)
        fixture.correlator.waitForEngine()
        #expect(fixture.correlator.counterSnapshot.engine.reportsLate == 1)
    }

    @Test("seeded mutations of report JSON never crash and give 400 or 202 (409 only for a real conflict)")
    func fuzzReports() throws {
        let fixture = try ServiceFixture()
        var generator = SeededGenerator(seed: 4242)
        let reports = (0..<3).flatMap { fixture.simulator.reports(window: $0) }
        var seen: Set<String> = []
        let alphabet = Array("{}[]\":,0123456789-.eE truefalsnl\\u/ZT".utf8)
        for iteration in 0..<400 {
            let report = reports[iteration % reports.count]
            var bytes = Array(report.jsonLine.utf8)
            for _ in 0..<(1 + Int(generator.next() % 4)) {
                let position = Int(generator.next() % UInt64(bytes.count))
                switch generator.next() % 4 {
                case 0: bytes[position] = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                case 1: bytes.remove(at: position)
                case 2: bytes.insert(alphabet[Int(generator.next() % UInt64(alphabet.count))], at: position)
                default: bytes = Array(bytes[..<position])
                }
            }
            let parsed = try? Report(json: Data(bytes), topology: fixture.simulator.topology)
            let key = parsed.map { "\($0.node) \($0.windowStart)" }
            let response = fixture.post(bytes, token: adminToken)
            if response.status == 409 {
                #expect(key.map { seen.contains($0) } == true, "409 without an earlier report of that window")
            } else {
                #expect([202, 400].contains(response.status), "\(String(decoding: bytes, as: UTF8.self))")
                #expect((parsed != nil) == (response.status == 202))
            }
            if response.status == 202, let key { seen.insert(key) }
        }
        fixture.finish()
    }

    @Test("seeded mutations of sketch bytes are stored (202) and the engine counts what it cannot decode")
    func fuzzSketches() throws {
        let fixture = try ServiceFixture()
        var generator = SeededGenerator(seed: 77)
        var reports = fixture.simulator.reports(window: 0)
        for index in reports.indices {
            for pairIndex in reports[index].pairs.indices where generator.next() % 3 == 0 {
                guard var bytes = reports[index].pairs[pairIndex].rttMicros?.decodedBytes else { continue }
                let position = Int(generator.next() % UInt64(bytes.count))
                bytes[position] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
                if generator.next() % 4 == 0 { bytes = Array(bytes.prefix(position)) }
                reports[index].pairs[pairIndex].rttMicros = .bytes(bytes)
            }
            #expect(fixture.post(reports[index]).status == 202)
        }
        fixture.finish()
        let engine = fixture.correlator.counterSnapshot.engine
        #expect(engine.pairsInvalidSketch > 0)
        #expect(engine.windowsClosed >= 1)
    }

    @Test("an empty file as the store is migrated at start, then takes reports")
    func migratesEmptyFile() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/empty.db"
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        let topology = smallSimulator.topology
        let inputs = CorrelatorInputs(
            topology: topology, topologyText: String(decoding: topology.jsonData(), as: UTF8.self),
            rules: .defaults,
            tokens: try Tokens(text: tokensText(topology), file: "tokens"))
        let correlator = try Correlator(
            databasePath: path, inputs: inputs, clock: ManualClock(smallSimulator.windowStart(0)))
        defer { correlator.close() }
        let report = smallSimulator.reports(window: 0)[0]
        let result = try correlator.ingest(
            body: Array(report.jsonLine.utf8), contentType: "application/json",
            authorization: "Bearer \(nodeToken(report.node.rawValue))")
        #expect(result.stored == 1)
        let store = try Store(path: path, mode: .existing, migrate: false)
        #expect(try store.reports() == [report])
        #expect(try store.configuration(.topology, at: smallSimulator.windowStart(0)) != nil)
    }
}
