// `faultline serve` as a real process: it refuses a tokens file others can read and a config file with
// a bad line (file:line); killed with SIGKILL while an agent is posting, every report it answered 202
// is in the store; restarted on the same store it is ready, knows the nodes, accepts the stream again
// (the acknowledged ones as duplicates) and stops cleanly on SIGTERM.

import FleetModel
import Foundation
import Net
import Simulation
import Store
import Testing

@testable import FaultlineCLI

#if canImport(Glibc)
import Glibc
#endif

/// A temporary directory with the small-16 topology and a 0600 tokens file.
private struct ServeFiles {
    let directory: String
    let simulator: FleetSimulator
    var database: String { directory + "/faultline.db" }
    var topology: String { directory + "/topology.json" }
    var tokens: String { directory + "/tokens" }
    static let admin = "admin-token-0123456789"

    init() throws {
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent(
                "faultline-serve-\(UUID().uuidString)"
            )
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        let scenarios = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scenarios")
        let scenario = try Scenario(json: Data(contentsOf: scenarios.appendingPathComponent("small-16.json")))
        simulator = try FleetSimulator(
            scenario: scenario, topology: scenario.loadTopology(relativeTo: scenarios))
        try simulator.topology.jsonData().write(to: URL(fileURLWithPath: topology))
        let lines =
            "@admin \(Self.admin)\n"
            + simulator.topology.nodes.map { "\($0.name) \(Self.token($0.name.rawValue))\n" }.joined()
        try Data(lines.utf8).write(to: URL(fileURLWithPath: tokens))
        chmod(tokens, 0o600)
    }

    static func token(_ node: String) -> String { "agent-token-\(node)-0123456789" }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

/// A running `faultline serve` and the address it printed.
private final class ServeProcess {
    let process = Process()
    let address: SocketAddress
    let errors = Pipe()

    init(_ files: ServeFiles, extra: [String] = []) throws {
        process.executableURL = try faultlineExecutable()
        process.arguments =
            [
                "serve", "--db", files.database, "--topology", files.topology, "--tokens", files.tokens,
                "--listen",
                "127.0.0.1:0", "--tick-milliseconds", "100",
            ] + extra
        let output = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("listening ") else {
            process.waitUntilExit()
            let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw ServeDidNotStart(output: text, errors: stderr)
        }
        address = try SocketAddress.parse(String(text.dropFirst("listening ".count)))
    }
}

private struct ServeDidNotStart: Error, CustomStringConvertible {
    let output: String
    let errors: String
    var description: String { "faultline serve did not start: \(output) \(errors)" }
}

/// Runs the binary to its end; (status, stderr).
private func runToEnd(_ arguments: [String]) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = try faultlineExecutable()
    process.arguments = arguments
    let errors = Pipe()
    process.standardError = errors
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, text)
}

private func post(_ client: HTTPClient, _ report: Report) throws -> HTTPClient.Response {
    try client.send(
        "POST", "/v1/reports",
        headers: [
            "Authorization": "Bearer \(ServeFiles.token(report.node.rawValue))",
            "Content-Type": "application/json",
        ],
        body: Array(report.jsonLine.utf8))
}

@Suite("faultline serve")
struct ServeCommandTests {
    @Test(
        "a tokens file readable by others, or a config file with a bad line, stops it with 65 naming the place"
    )
    func refusesToStart() throws {
        let files = try ServeFiles()
        defer { files.remove() }
        chmod(files.tokens, 0o644)
        let (status, errors) = try runToEnd([
            "serve", "--db", files.database, "--topology", files.topology, "--tokens", files.tokens,
        ])
        #expect(status == 65)
        #expect(errors.contains("\(files.tokens): readable by group or others"), "\(errors)")
        #expect(!errors.contains("agent-token"))
        chmod(files.tokens, 0o600)
        let config = files.directory + "/serve.conf"
        try Data("db = \(files.database)\nwindow-seconds = ten\n".utf8).write(
            to: URL(fileURLWithPath: config))
        let (badStatus, badErrors) = try runToEnd(["serve", "--config", config])
        #expect(badStatus == 65)
        #expect(badErrors.contains("\(config):2: window-seconds: expected an integer"), "\(badErrors)")
        let (usage, usageErrors) = try runToEnd(["serve", "--db", files.database])
        #expect(usage == 64)
        #expect(usageErrors.contains("--topology is required"))
    }

    @Test(
        "kill -9 mid-stream loses no report answered 202; a restart resumes from the store and stops on SIGTERM"
    )
    func killNineAndRestart() throws {
        let files = try ServeFiles()
        defer { files.remove() }
        let base = files.simulator.reports(window: 0)
        // The same fleet's reports over many windows: enough that posting is still going on at the kill.
        let reports = (0..<200).flatMap { shift in
            base.map { report -> Report in
                var moved = report
                moved.windowStart = report.windowStart.adding(seconds: Int64(shift) * 10)
                return moved
            }
        }
        let first = try ServeProcess(files)
        let acknowledged = Locked<[Report]>([])
        let finished = DispatchSemaphore(value: 0)
        let address = first.address
        Thread {
            defer { finished.signal() }
            guard let client = try? HTTPClient(connectingTo: address, timeout: .seconds(20)) else { return }
            for report in reports {
                guard let response = try? post(client, report) else { return }
                guard response.status == 202 else { return }
                acknowledged.withLock { $0.append(report) }
            }
        }.start()
        while acknowledged.withLock({ $0.count }) < 300 { usleep(2_000) }
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()
        finished.wait()
        #expect(first.process.terminationReason == .uncaughtSignal)
        let acked = acknowledged.withLock { $0 }
        #expect(acked.count >= 300)
        #expect(acked.count < reports.count, "the stream ended before the kill")
        do {
            let store = try Store(path: files.database, mode: .existing, migrate: false)
            let stored = try store.reports()
            let keys = Set(stored.map { "\($0.node) \($0.windowStart)" })
            #expect(acked.allSatisfy { keys.contains("\($0.node) \($0.windowStart)") })
            #expect(stored.count >= acked.count)
            #expect(try store.database.singleText("PRAGMA integrity_check") == "ok")
        }

        let second = try ServeProcess(files)
        let client = try HTTPClient(connectingTo: second.address, timeout: .seconds(20))
        #expect(try client.send("GET", "/readyz").status == 200)
        let nodes = try client.send(
            "GET", "/v1/nodes", headers: ["Authorization": "Bearer \(ServeFiles.admin)"])
        #expect(nodes.status == 200)
        #expect(nodes.text.contains("\"lastReportWindow\": \"\(acked.last!.windowStart)\""), "\(nodes.text)")
        let again = try post(client, acked.last!)
        #expect(again.status == 202)
        #expect(again.text.contains("\"duplicates\": 1"))
        for report in reports.dropFirst(acked.count).prefix(50) {
            #expect(try post(client, report).status == 202)
        }
        kill(second.process.processIdentifier, SIGTERM)
        second.process.waitUntilExit()
        #expect(second.process.terminationReason == .exit)
        #expect(second.process.terminationStatus == 0)
        let log = String(decoding: second.errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("\"event\": \"stopped\""))
        #expect(!log.contains("agent-token"), "a token in the log")
        let store = try Store(path: files.database, mode: .existing, migrate: false)
        #expect(try store.reports().count >= acked.count + 50)
    }

    @Test(
        "SIGHUP reloads the tokens file: a new token works at once, a bad file is logged and the old tokens kept"
    )
    func hangupReloadsTokens() throws {
        let files = try ServeFiles()
        defer { files.remove() }
        let serve = try ServeProcess(files)
        let client = try HTTPClient(connectingTo: serve.address, timeout: .seconds(20))
        let report = files.simulator.reports(window: 0)[0]
        let newToken = "a-token-issued-after-start-0123"
        func status(_ token: String) throws -> Int {
            try client.send(
                "POST", "/v1/reports",
                headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                body: Array(report.jsonLine.utf8)
            ).status
        }
        #expect(try status(newToken) == 401)
        try Data("@admin \(ServeFiles.admin)\n\(report.node) \(newToken)\n".utf8).write(
            to: URL(fileURLWithPath: files.tokens))
        chmod(files.tokens, 0o600)
        kill(serve.process.processIdentifier, SIGHUP)
        var reloaded = false
        for _ in 0..<100 where !reloaded {
            reloaded = try status(newToken) == 202
            if !reloaded { usleep(50_000) }
        }
        #expect(reloaded)
        #expect(try status(ServeFiles.token(report.node.rawValue)) == 401)
        // A tokens file others can read is refused on reload too; the tokens in force stay.
        chmod(files.tokens, 0o644)
        kill(serve.process.processIdentifier, SIGHUP)
        usleep(300_000)
        #expect(try status(newToken) == 202)
        kill(serve.process.processIdentifier, SIGTERM)
        serve.process.waitUntilExit()
        #expect(serve.process.terminationStatus == 0)
        let log = String(decoding: serve.errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("\"event\": \"reloaded\""))
        #expect(log.contains("\"event\": \"reload-failed\""))
        #expect(!log.contains(newToken))
    }
}
