// `faultline replay`: recorded reports in, the findings stream out, the same bytes whatever the
// order of the input lines; bad lines named by file and line.

import Engine
@testable import FaultlineCLI
import FleetModel
import Foundation
import Policy
import QuantileSketch
import Store
import Testing

@Suite("replay")
struct ReplayCommandTests {
    let directory: URL
    let topologyPath: String
    let reportLines: [String]

    /// Four nodes on one leaf, one rail each; every endpoint probes every endpoint (itself
    /// included) for 8 windows; gpu-0002/0 stops answering from window 2 on.
    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "replay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let topology = try Topology.railOptimized(.init(nodes: 4, rails: 1, nodesPerLeaf: 4, spines: 1))
        topologyPath = directory.appendingPathComponent("topology.json").path
        try topology.jsonData().write(to: URL(fileURLWithPath: topologyPath))
        let dead = EndpointID("gpu-0002/0")!
        var lines: [String] = []
        for window in 0..<8 {
            for node in topology.nodes {
                let src = node.rails[0].endpoint
                let pairs = try topology.endpoints.map { dst -> Report.Pair in
                    let failing = window >= 2 && (src == dead || dst == dead)
                    var sketch = try QuantileSketch()
                    for i in 0..<20 { try sketch.add(src == dst ? 2 + Double(i) / 100 : 5 + Double(i) / 50) }
                    return Report.Pair(
                        src: src, dst: dst, sent: 20, lost: failing ? 20 : 0,
                        rttMicros: failing ? nil : .bytes(sketch.encoded()))
                }
                let report = Report(
                    node: node.name,
                    windowStart: Timestamp(secondsSinceEpoch: 1_800_000_000 + Int64(window) * 10),
                    windowSeconds: 10, agentVersion: "test", transport: .udp, pairs: pairs)
                lines.append(report.jsonLine)
            }
        }
        reportLines = lines
    }

    func write(_ lines: [String], name: String) throws -> String {
        let path = directory.appendingPathComponent(name).path
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("a dead endpoint is found; the output is the same bytes for any order of the input")
    func findingsAreByteIdentical() throws {
        let ordered = try write(reportLines, name: "ordered.ndjson")
        let (status, out, err) = run(["replay", "--topology", topologyPath, "--input", ordered, "--json"])
        #expect(status == .success, "\(err)")
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        // The finding, then the policy's decision: quarantine the node of the dead rail.
        let decision = try #require(JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any])
        #expect(decision["decision"] as? String == "quarantine")
        #expect(decision["node"] as? String == "gpu-0002")
        #expect(decision["class"] as? String == "gpu.down")
        let object = try #require(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(object["component"] as? String == "gpu-0002/0")
        #expect(object["kind"] as? String == "gpu")
        #expect(object["class"] as? String == "gpu.down")
        #expect(object["event"] as? String == "opened")
        #expect(object["window"] as? String == Timestamp(secondsSinceEpoch: 1_800_000_030).description)
        #expect(
            Set(object.keys) == ["window", "event", "component", "kind", "class", "confidence", "evidence"])

        var generator = SystemRandomNumberGenerator()
        for round in 0..<3 {
            let shuffled = try write(
                reportLines.shuffled(using: &generator), name: "shuffled-\(round).ndjson")
            let again = run(["replay", "--topology", topologyPath, "--input", shuffled, "--json"])
            #expect(again.out == out)
        }
    }

    @Test("a bad report stops the replay naming the file and line")
    func badLinesAreNamed() throws {
        var lines = reportLines
        lines[5] = lines[5].replacingOccurrences(of: "\"lost\": 0", with: "\"lost\": 99")
        let path = try write(lines, name: "bad.ndjson")
        let (status, out, err) = run(["replay", "--topology", topologyPath, "--input", path, "--json"])
        #expect(status == .dataError)
        #expect(out == "")
        #expect(err.contains("bad.ndjson:6: pairs[0].lost: 99 is outside 0...sent (20)"), "\(err)")
    }

    @Test("required options and missing files")
    func usage() throws {
        #expect(run(["replay", "--input", "x"]).0 == .usage)
        #expect(run(["replay", "--topology", topologyPath]).0 == .usage)
        #expect(run(["replay", "--topology", topologyPath, "--input", "/nonexistent.ndjson"]).0 == .noInput)
        #expect(run(["replay", "--topology", topologyPath, "--input", "x", "--compare"]).0 == .usage)
        #expect(run(["replay", "--db", "x.db", "--input", "x"]).0 == .usage)
        #expect(run(["replay", "--db", "/nonexistent.db"]).0 == .noInput)
        #expect(run(["replay", "--db", "x.db", "--from", "yesterday"]).0 == .usage)
        #expect(
            run(["replay", "--db", "x.db", "--from", "2027-01-01T00:00:00Z", "--to", "2027-01-01T00:00:00Z"]).0
                == .usage)
    }

    @Test("--from and --to print only their windows; the engine still runs over what came before")
    func windowRange() throws {
        let path = try write(reportLines, name: "ordered.ndjson")
        func replay(_ range: [String]) -> [String] {
            let (status, out, err) = run(["replay", "--topology", topologyPath, "--input", path, "--json"] + range)
            #expect(status == .success, "\(err)")
            return out.split(separator: "\n").map(String.init)
        }
        let window3 = Timestamp(secondsSinceEpoch: 1_800_000_030).description
        let window4 = Timestamp(secondsSinceEpoch: 1_800_000_040).description
        // The dead endpoint is found in window 3, with its quarantine.
        let inRange = replay(["--from", window3, "--to", window4])
        #expect(inRange.count == 2 && inRange.allSatisfy { $0.contains(window3) }, "\(inRange)")
        #expect(replay(["--from", window4]).isEmpty)
        #expect(replay(["--to", window3]).isEmpty)
    }

    /// A store holding the fixture's reports and topology, nothing recorded live.
    func makeStore(_ name: String) throws -> (path: String, store: Store, reports: [Report]) {
        let path = directory.appendingPathComponent(name).path
        let store = try Store(path: path)
        let reports = try reportLines.map { try Report(json: Data($0.utf8)) }
        _ = try store.append(contentsOf: reports, receivedAt: Timestamp(secondsSinceEpoch: 1_800_000_100))
        try store.recordConfiguration(
            .topology, text: try String(contentsOfFile: topologyPath, encoding: .utf8),
            effectiveFrom: Timestamp(secondsSinceEpoch: 1_800_000_000))
        return (path, store, reports)
    }

    /// Records the replay's findings and decisions as the service and its executor would have: each
    /// decision written when its window closed, two windows after it (its own and the grace).
    func recordAsLive(_ store: Store, _ reports: [Report]) throws {
        let topology = try Topology(json: Data(contentsOf: URL(fileURLWithPath: topologyPath)))
        let replayed = Replay.run(reports, topology: topology, rules: .defaults)
        try store.record(findings: replayed.events)
        for decision in replayed.decisions {
            try store.appendAudit(
                at: decision.time.adding(seconds: 20), actor: "executor",
                entry: "{\"event\": \"intent\", \"decision\": \(decision.jsonLine), \"outcome\": null, \"action\": \"dry-run\"}")
        }
    }

    @Test("incident bundles: the whole store or a range replay as live did; import checks the audit chain")
    func incidentBundles() throws {
        let (path, store, reports) = try makeStore("live.db")
        try recordAsLive(store, reports)
        let whole = directory.appendingPathComponent("whole.db").path
        let export = run(["incident", "export", "--db", path, "-o", whole])
        #expect(export.0 == .success, "\(export.2)")
        #expect(export.1 == "wrote \(whole): the whole store: 32 reports, 1 finding events, 1 audit entries\n")
        #expect(run(["replay", "--db", whole, "--compare"]).0 == .success)
        #expect(run(["incident", "export", "--db", path, "-o", whole]).0 == .cannotCreate)

        // Windows 3 and 4 with one window of warm-up: reports of windows 2...4, the finding of 3.
        let (from, to) = ("2027-01-15T08:00:30Z", "2027-01-15T08:00:50Z")
        let part = directory.appendingPathComponent("part.db").path
        let partial = run(["incident", "export", "--db", path, "--from", from, "--to", to, "--warmup-windows", "1", "-o", part])
        #expect(partial.0 == .success, "\(partial.2)")
        #expect(partial.1.hasSuffix(": 12 reports, 1 finding events, 1 audit entries\n"), "\(partial.1)")
        let compare = run(["replay", "--db", part, "--from", from, "--to", to, "--compare"])
        #expect(compare.0 == .success, "\(compare.1)\(compare.2)")

        // Imported: a store of its own whose audit chain verifies; the bundle itself is only read
        // (the same bytes, no journal files beside it); a tampered bundle is refused.
        let imported = directory.appendingPathComponent("imported.db").path
        let bundleBytes = try Data(contentsOf: URL(fileURLWithPath: part))
        let taken = run(["incident", "import", part, "--db", imported])
        #expect(taken.0 == .success, "\(taken.2)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: part)) == bundleBytes)
        #expect(!FileManager.default.fileExists(atPath: part + "-wal") && !FileManager.default.fileExists(atPath: part + "-shm"))
        #expect(run(["replay", "--db", imported, "--from", from, "--to", to, "--compare"]).0 == .success)
        let tampered = try Database(path: part, mode: .existing)
        try tampered.execute("DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'someone' WHERE seq = 1")
        let refused = run(["incident", "import", part, "--db", directory.appendingPathComponent("no.db").path])
        #expect(refused.0 == .dataError)
        #expect(refused.2.contains("audit log"), "\(refused.2)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("no.db").path))
        #expect(run(["incident", "export", "--db", path, "--from", from, "-o", "x.db"]).0 == .usage)
    }

    @Test("explain: the blamed endpoint's dead pairs and hysteresis; a neighbour not blamed, and why")
    func explain() throws {
        let (path, store, reports) = try makeStore("explain.db")
        try recordAsLive(store, reports)
        let window3 = "2027-01-15T08:00:30Z"
        let blamed = run(["explain", "gpu-0002/0", "--db", path, "--at", "2027-01-15T08:00:35Z"])
        #expect(blamed.0 == .success, "\(blamed.2)")
        let text = blamed.1
        #expect(text.hasPrefix("gpu-0002/0 (gpu) at \(window3) (window of 10 s)\n"), "\(text)")
        #expect(text.contains("Blamed: gpu.down open (confidence 0.99, last event opened at \(window3))."), "\(text)")
        // Every pair to or from it is dead; it probes itself too (loopback): 7 pairs in all.
        #expect(text.contains("Its pairs in this window: 7; for loss, 7 bad of 7 judged (share 1.00;"), "\(text)")
        #expect(
            text.contains("  gpu-0001/0 -> gpu-0002/0  same-leaf  dead  sent 20 lost 20  p50/p99 -/- µs vs class 5.2/5.3\n"),
            "\(text)")
        #expect(text.contains("  2027-01-15T08:00:20Z  bad  (loss: 7 of 7 pairs)\n"), "\(text)")
        #expect(text.contains("  2027-01-15T08:00:10Z  clean  (loss: 0 of 7 pairs)\n"), "\(text)")
        #expect(text.contains("intent  quarantine"), "the executor's decision on its node: \(text)")

        let neighbour = run(["explain", "gpu-0001/0", "--db", path, "--at", window3, "--json"])
        #expect(neighbour.0 == .success, "\(neighbour.2)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(neighbour.1.utf8)) as? [String: Any])
        #expect(object["blamed"] as? Bool == false)
        #expect(object["symptom"] as? String == "loss")
        // Its pairs with gpu-0002/0 are bad (2 of its 7), far below the share a component needs.
        #expect(object["badPairs"] as? Int == 2 && object["judgedPairs"] as? Int == 7, "\(object)")
        let others = try #require(object["blamedThen"] as? [[String: Any]])
        #expect(others.map { $0["component"] as? String } == ["gpu-0002/0"])

        #expect(run(["explain", "gpu-0099/0", "--db", path, "--at", window3]).0 == .dataError)
        #expect(run(["explain", "gpu-0002/0", "--db", path]).0 == .usage)
    }

    @Test("--db --compare: differences against what the store recorded live, exit 1; identical, exit 0")
    func compareWithTheStore() throws {
        let (path, store, reports) = try makeStore("faultline.db")

        // Nothing recorded live: the replay's finding and quarantine are the differences.
        let before = run(["replay", "--db", path, "--compare"])
        #expect(before.0 == .differences, "\(before.1)\(before.2)")
        #expect(before.1.contains("+ replay  finding: {\"window\": \"2027-01-15T08:00:30Z\", \"event\": \"opened\""))
        #expect(before.1.contains("decisions that change (id: live -> replay):\n  gpu-0002@2027-01-15T08:00:30Z: (none) -> quarantine\n"), "\(before.1)")
        #expect(before.2.contains("2 difference(s)"))

        // Recorded as the service and its executor record them: identical.
        try recordAsLive(store, reports)
        let after = run(["replay", "--db", path, "--compare"])
        #expect(after.0 == .success, "\(after.1)\(after.2)")
        #expect(after.1 == "identical: findings: 1 replayed, 1 recorded live; decisions: 1 replayed, 1 recorded live\n")
        // The timeline: the window the endpoint's 7 pairs turned dead (not again the next window,
        // when they stay dead), then the finding and the quarantine.
        let timeline = run(["replay", "--db", path])
        #expect(
            timeline.1.hasPrefix(
                "== 2027-01-15T08:00:20Z\n  unhealthy  7 pair(s) turned: gpu-0000/0 -> gpu-0002/0 dead, "
                    + "gpu-0001/0 -> gpu-0002/0 dead, gpu-0002/0 -> gpu-0000/0 dead, gpu-0002/0 -> gpu-0001/0 dead, "
                    + "gpu-0002/0 -> gpu-0002/0 dead, gpu-0002/0 -> gpu-0003/0 dead, and 1 more\n"
                    + "== 2027-01-15T08:00:30Z\n  opened   gpu.down "), "\(timeline.1)")
    }
}

@Suite("reading ahead on a second thread")
struct ReadAheadTests {
    private struct Stop: Error, Equatable {}

    @Test("everything the producer yields is consumed in order, in batches or not")
    func order() throws {
        for count in [0, 1, 63, 64, 65, 5_000] {
            var consumed: [Int] = []
            try readingAhead(batchSize: 64, depth: 2, produce: { yield in for n in 0..<count { yield(n) } }) { consumed.append($0) }
            #expect(consumed == Array(0..<count))
        }
    }

    @Test("what the producer throws reaches the caller after what it yielded before")
    func failure() throws {
        var consumed: [Int] = []
        #expect(throws: Stop.self) {
            try readingAhead(batchSize: 8, depth: 1, produce: { yield in
                for n in 0..<20 { yield(n) }
                throw Stop()
            }) { consumed.append($0) }
        }
        #expect(consumed == Array(0..<20))
    }
}
