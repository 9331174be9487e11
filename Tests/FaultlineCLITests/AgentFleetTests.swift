// Three real `faultline agent` processes on 127.0.1.1..3 probing each other over UDP, reporting to
// a fake correlator (a Net.HTTPServer in the test). n2's responder delays every probe by 2 ms and
// n3's drops 30%: the reports must show that RTT (p50 within 10% + 100 µs) and that loss, and
// nothing else. Windows of 1 s, 100 probes/s per pair; SIGTERM ends each agent after it reported
// the window it was in.

import FleetModel
import Foundation
import Net
import QuantileSketch
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Collects POSTed reports; answers 202 (identical duplicates too), 409 for a different one.
private final class CollectingCorrelator: Sendable {
    let reports = Locked<[String: Report]>([:])
    let tokens = Locked<Set<String>>([])
    /// Reports refused for differing from the one stored for their window.
    let conflicts = Locked(0)

    func start(on address: SocketAddress? = nil) throws -> HTTPServer {
        var router = Router()
        router.post("/v1/reports") { [reports, tokens, conflicts] request in
            tokens.withLock { _ = $0.insert(request.headers["Authorization"] ?? "") }
            let report: Report
            do { report = try Report(json: Data(request.body)) } catch { return .error(400, "\(error)") }
            let key = "\(report.node) \(report.windowStart)"
            return reports.withLock { reports -> HTTPResponse in
                if let old = reports[key], old != report {
                    conflicts.withLock { $0 += 1 }
                    return .error(409, "duplicate \(key)")
                }
                reports[key] = report
                return HTTPResponse(status: 202)
            }
        }
        let address = try address ?? SocketAddress.parse("127.0.0.1:0")
        let server = try HTTPServer(configuration: .init(address: address), router: router)
        try server.start()
        return server
    }

    /// The windows `node` reported, in order.
    func windows(_ node: String) -> [Int64] {
        let all: [Report] = reports.withLock { Array($0.values) }
        return all.filter { $0.node.rawValue == node }.map { $0.windowStart.secondsSinceEpoch }.sorted()
    }

    func report(_ node: String, _ window: Int64) -> Report? {
        let key = "\(node) \(Timestamp(secondsSinceEpoch: window))"
        return reports.withLock { $0[key] }
    }
}

/// A test's own temporary directory, and files written into it.
private struct Scratch {
    let directory: URL

    init(_ prefix: String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// Writes `text` to `name` in the directory; returns its path.
    func write(_ name: String, _ text: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

/// Running totals per destination and a merged RTT sketch per pair.
private struct FleetTotals {
    var sent: [String: Int] = [:]
    var lost: [String: Int] = [:]
    var rtt: [String: QuantileSketch] = [:]

    func lossRate(_ dst: String) -> Double {
        let total = Double(max(1, sent[dst] ?? 0))
        return Double(lost[dst] ?? 0) / total
    }

    func median(_ pair: String) throws -> Double? {
        guard let sketch = rtt[pair] else { return nil }
        return try sketch.quantile(0.5)
    }
}

@Suite("agents on loopback", .serialized)
struct AgentFleetTests {
    @Test("three agents: 2 ms injected delay and 30% injected drop show in their peers' reports")
    func threeAgents() async throws {
        let scratch = try Scratch("faultline-fleet")
        defer { scratch.remove() }
        let (directory, write) = (scratch.directory, scratch.write)
        let correlator = CollectingCorrelator()
        let server = try correlator.start()
        defer { server.stop() }
        // One UDP port for all three addresses (each node has its own 127.0.1.N).
        let port: UInt16 = try UDPSocket.bound(to: try SocketAddress.parse("127.0.1.1:0")).localAddress().port
        let nodes = ["n1", "n2", "n3"]
        var addressItems: [String] = []
        for (index, node) in nodes.enumerated() {
            addressItems.append("\"\(node)\": \"127.0.1.\(index + 1):\(port)\"")
        }
        let addresses = addressItems.joined(separator: ", ")
        let token = try write("token", "fleet-token\n")
        let config = try write(
            "config.json", #"{"loopbackRate": 100, "peerRate": 100, "jitter": 0.2, "timeoutMillis": 300}"#)
        let faults: [String: String] = [
            "n2": try write("faults-n2.json", #"{"rules": [{"delayMicros": 2000}]}"#),
            "n3": try write("faults-n3.json", #"{"seed": 11, "rules": [{"drop": 0.3}]}"#),
        ]
        let correlatorURL = "http://\(server.boundAddress!)"
        var processes: [Process] = []
        var logs: [URL] = []
        for (index, node) in nodes.enumerated() {
            var pairs: [String] = []
            for dst in nodes {
                let path = dst == node ? "" : #", "path": ["leaf-a", "spine-1", "leaf-b"]"#
                pairs.append(#"{"src": "\#(node)/0", "dst": "\#(dst)/0", "class": "x"\#(path)}"#)
            }
            let pinglistText =
                #"{"node": "\#(node)", "pairs": ["# + pairs.joined(separator: ", ") + #"], "addresses": {"#
                + addresses + "}}"
            let pinglist = try write("pinglist-\(node).json", pinglistText)
            var arguments: [String] = [
                "agent", "--node", node, "--listen", "127.0.1.\(index + 1):\(port)", "--correlator",
                correlatorURL,
                "--token-file", token, "--window-seconds", "1", "--pinglist", pinglist,
                "--spool", directory.appendingPathComponent("spool-\(node)").path, "--config", config,
            ]
            if let file = faults[node] { arguments += ["--faults", file] }
            let process = Process()
            process.executableURL = try faultlineExecutable()
            process.arguments = arguments
            let log = directory.appendingPathComponent("\(node).log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            process.standardError = try FileHandle(forWritingTo: log)
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            processes.append(process)
            logs.append(log)
        }
        defer { for process in processes where process.isRunning { process.terminate() } }

        // Wait for three whole windows from every node after its first (partial) one.
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, !nodes.allSatisfy({ correlator.windows($0).count >= 4 }) {
            try await Task.sleep(for: .milliseconds(100))
        }
        let stoppedAt = Int64(Date().timeIntervalSince1970)
        for process in processes { kill(process.processIdentifier, SIGTERM) }
        let exitDeadline = Date().addingTimeInterval(15)
        while Date() < exitDeadline, processes.contains(where: { $0.isRunning }) {
            try await Task.sleep(for: .milliseconds(50))
        }
        var logText = ""
        for log in logs { logText += try String(contentsOf: log, encoding: .utf8) }
        for process in processes {
            #expect(!process.isRunning, "agent still running after SIGTERM")
            if !process.isRunning { #expect(process.terminationStatus == 0, "\(logText)") }
        }
        #expect(correlator.tokens.withLock { $0 } == ["Bearer fleet-token"])
        #expect(!logText.contains("fleet-token"))

        // Per destination, over every window but each node's first: counts and a merged sketch.
        let crossPath: [SwitchName] = ["leaf-a", "spine-1", "leaf-b"].compactMap { SwitchName($0) }
        var totals = FleetTotals()
        for node in nodes {
            let all = correlator.windows(node)
            #expect(all.count >= 4, "\(node) reported windows \(all)\n\(logText)")
            let last: Int64 = all.last ?? 0
            #expect(last >= stoppedAt - 1, "the window SIGTERM came in was reported")
            for window in all.dropFirst() {
                let report = try #require(correlator.report(node, window))
                #expect(report.transport == .udp)
                #expect(report.windowSeconds == 1)
                #expect(report.pairs.count == 3)
                for pair in report.pairs {
                    let key = "\(pair.src)->\(pair.dst)"
                    let dst = pair.dst.description
                    #expect(pair.sent >= 50, "\(key) sent \(pair.sent) in window \(window)")
                    #expect(pair.errors == 0)
                    let expectedPath: [SwitchName]? = pair.src.node == pair.dst.node ? nil : crossPath
                    #expect(pair.path == expectedPath)
                    totals.sent[dst, default: 0] += pair.sent
                    totals.lost[dst, default: 0] += pair.lost
                    guard let sketchBytes = pair.rttMicros else { continue }
                    let bytes = try #require(sketchBytes.decodedBytes)
                    let sketch = try QuantileSketch(decoding: bytes)
                    #expect(Int(sketch.count) == pair.sent - pair.lost)
                    var merged: QuantileSketch = try totals.rtt[key] ?? QuantileSketch()
                    try merged.merge(sketch)
                    totals.rtt[key] = merged
                }
            }
        }
        let toN1 = totals.lossRate("n1/0")
        let toN2 = totals.lossRate("n2/0")
        let toN3 = totals.lossRate("n3/0")
        print("agent fleet: loss to n3 (30% drop) \(toN3) of \(totals.sent["n3/0"] ?? 0) probes")
        #expect(toN1 <= 0.01, "n1 has no fault: loss \(toN1)")
        #expect(toN2 <= 0.01, "n2 delays, does not drop: loss \(toN2)")
        #expect(toN3 >= 0.2 && toN3 <= 0.4, "n3 drops 30%: loss \(toN3)")
        // The delay: p50 of every pair towards n2 within 10% + 100 µs of 2 ms, over what the same
        // source measures towards n1 (no fault): the path's own RTT, a few hundred µs at most here.
        for src in nodes {
            let delayed: Double = try #require(try totals.median("\(src)/0->n2/0"))
            let undelayed: Double = try #require(try totals.median("\(src)/0->n1/0"))
            print(
                "agent fleet: \(src)/0 p50 to n2 (2 ms delay) \(Int(delayed)) µs, to n1 \(Int(undelayed)) µs")
            #expect(undelayed < 1000, "\(src)/0 -> n1/0 p50 \(undelayed) µs")
            let excess: Double = delayed - undelayed - 2000
            #expect(abs(excess) <= 300, "\(src)/0 -> n2/0 p50 \(delayed) µs, -> n1/0 \(undelayed) µs")
        }
    }

    @Test("an agent killed while the correlator is down sends its spool after a restart, once, in order")
    func spoolSurvivesAKilledAgent() async throws {
        let scratch = try Scratch("faultline-spool")
        defer { scratch.remove() }
        let (directory, write) = (scratch.directory, scratch.write)
        // The correlator's address, taken now and served only later.
        let probe = try HTTPServer(
            configuration: .init(address: try SocketAddress.parse("127.0.0.1:0")), router: Router())
        try probe.start()
        let correlatorAddress = try #require(probe.boundAddress)
        probe.stop()
        let port: UInt16 = try UDPSocket.bound(to: try SocketAddress.parse("127.0.1.7:0")).localAddress().port
        let spool = directory.appendingPathComponent("spool").path
        let pinglist = try write(
            "pinglist.json", #"{"node": "n7", "pairs": [{"src": "n7/0", "dst": "n7/0", "class": "loopback"}]}"#)
        let arguments = [
            "agent", "--node", "n7", "--listen", "127.0.1.7:\(port)", "--correlator", "http://\(correlatorAddress)",
            "--token-file", try write("token", "t\n"), "--window-seconds", "1", "--pinglist", pinglist,
            "--spool", spool, "--config", try write("config.json", #"{"backoff": {"initialMillis": 50, "maxMillis": 500}}"#),
        ]
        func startAgent(_ log: String) throws -> Process {
            let process = Process()
            process.executableURL = try faultlineExecutable()
            process.arguments = arguments
            let url = directory.appendingPathComponent(log)
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
            process.standardError = try FileHandle(forWritingTo: url)
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            return process
        }
        /// The windows in the spool, from the file names (`SEQUENCE-WINDOWSTART.json`).
        func spooled() -> [Int64] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []
            return names.filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
                .compactMap { Int64($0.dropLast(5).split(separator: "-").last ?? "") }.sorted()
        }
        func waitFor(_ seconds: Double, _ condition: () -> Bool) async throws -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline, !condition() { try await Task.sleep(for: .milliseconds(100)) }
            return condition()
        }

        // The first run reports into the void until three windows wait in its spool; then kill -9.
        let first = try startAgent("first.log")
        #expect(try await waitFor(15) { spooled().count >= 3 })
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let left = spooled()
        #expect(left.count >= 3)

        // The second run starts with them; then the correlator comes up.
        let second = try startAgent("second.log")
        defer { if second.isRunning { second.terminate() } }
        try await Task.sleep(for: .seconds(1))
        let correlator = CollectingCorrelator()
        let server = try correlator.start(on: correlatorAddress)
        defer { server.stop() }
        let newest = left.last ?? 0
        #expect(try await waitFor(15) { (correlator.windows("n7").last ?? 0) >= newest + 2 })
        kill(second.processIdentifier, SIGTERM)
        second.waitUntilExit()
        #expect(second.terminationStatus == 0)

        let delivered = correlator.windows("n7")
        #expect(Set(left).isSubset(of: Set(delivered)), "spooled \(left), delivered \(delivered)")
        #expect(delivered == Array(Set(delivered)).sorted(), "each window once, in order")
        #expect(correlator.conflicts.withLock { $0 } == 0)
        #expect(spooled().isEmpty)
        for window in left {
            let report = try #require(correlator.report("n7", window))
            #expect(report.pairs.count == 1 && report.pairs[0].sent > 0)
        }
    }
}
