// The agent runtime in-process: inputs that are wrong (and verbs without RDMA) are named at start; a reload picks up a new
// faults file; /metrics answers; a stop reports the window it was in and returns; without a pinglist
// file, the pinglist is fetched from the correlator (retried until it answers) and refreshed.

import Dispatch
import FleetModel
import Foundation
import Net
import Testing

@testable import Agent

@Suite(.serialized) struct NodeAgentTests {
    func options(_ directory: String, correlator: SocketAddress) throws -> AgentOptions {
        var options = AgentOptions(
            node: NodeName("n1")!, listen: try SocketAddress.parse("127.0.1.1:0"), correlator: correlator,
            tokenFile: directory + "/token", spoolDirectory: directory + "/spool", agentVersion: "test")
        options.windowSeconds = 1
        return options
    }

    @Test func inputsThatAreWrongAreNamedAtStart() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = try options(directory, correlator: try SocketAddress.parse("127.0.0.1:9"))
        #expect(throws: AgentError("--token-file \(directory)/token: cannot read")) {
            try NodeAgent(options: options, log: AgentLog { _ in })
        }
        try Data("t0ken\n".utf8).write(to: URL(fileURLWithPath: directory + "/token"))
        try Data(#"{"node": "n2", "pairs": []}"#.utf8).write(to: URL(fileURLWithPath: directory + "/p.json"))
        options.pinglistFile = directory + "/p.json"
        #expect(throws: AgentError("\(directory)/p.json: node: the pinglist is for 'n2', this agent is 'n1'"))
        {
            try NodeAgent(options: options, log: AgentLog { _ in })
        }
        try Data(#"{"node": "n1", "pairs": [{"src": "n2/0", "dst": "n1/0"}]}"#.utf8).write(
            to: URL(fileURLWithPath: directory + "/p.json"))
        #expect(throws: AgentError("\(directory)/p.json: pairs[0].src: 'n2/0' is not an endpoint of n1")) {
            try NodeAgent(options: options, log: AgentLog { _ in })
        }
        options.pinglistFile = nil
        options.transport = .verbsUD
        // This machine has no kernel RDMA: the verbs transport names the call that says so.
        #expect(throws: AgentError("no RDMA devices: ibv_get_device_list: Function not implemented")) {
            try NodeAgent(options: options, log: AgentLog { _ in })
        }
    }

    @Test func withoutAPinglistFileTheAgentFetchesItsOwnAndKeepsItFresh() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let correlator = FakeCorrelator()
        // Not there at first: the agent keeps asking (every 5 s while it fails).
        let server = try correlator.start(on: try SocketAddress.parse("127.0.0.1:0"))
        defer { server.stop() }
        var options = try options(directory, correlator: server.boundAddress!)
        try Data("t0ken".utf8).write(to: URL(fileURLWithPath: directory + "/token"))
        try Data(#"{"loopbackRate": 100, "timeoutMillis": 200, "pinglistRefreshSeconds": 1}"#.utf8).write(
            to: URL(fileURLWithPath: directory + "/config.json"))
        options.configFile = directory + "/config.json"
        let agent = try NodeAgent(options: options, log: AgentLog { _ in })
        let done = DispatchSemaphore(value: 0)
        try spawnThread {
            try? agent.run()
            done.signal()
        }
        defer {
            agent.requestStop()
            _ = done.wait(timeout: .now() + 10)
        }
        func probedPairs() -> Set<String> {
            correlator.state.withLock { state in
                Set(
                    state.order.compactMap { state.stored[$0] }.compactMap { try? Report(json: Data($0.utf8)) }
                        .flatMap { $0.pairs.filter { $0.sent > 0 }.map { "\($0.src)>\($0.dst)" } })
            }
        }
        #expect(eventually { !correlator.state.withLock { $0.pinglistRequests }.isEmpty })
        #expect(correlator.state.withLock { $0.pinglistRequests.first } == "n1 Bearer t0ken")
        // Served: the agent probes what it says...
        correlator.state.withLock {
            $0.pinglist = #"{"node": "n1", "pairs": [{"src": "n1/0", "dst": "n1/0", "class": "loopback"}]}"#
        }
        #expect(eventually(within: 20) { probedPairs().contains("n1/0>n1/0") })
        // ...and a new plan is picked up at the next refresh.
        correlator.state.withLock {
            $0.pinglist = #"{"node": "n1", "pairs": [{"src": "n1/1", "dst": "n1/1", "class": "loopback"}]}"#
        }
        #expect(eventually(within: 20) { probedPairs().contains("n1/1>n1/1") })
    }

    @Test func reloadPicksUpFaultsAndStopReportsTheLastWindow() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let correlator = FakeCorrelator()
        let server = try correlator.start(on: try SocketAddress.parse("127.0.0.1:0"))
        defer { server.stop() }
        var options = try options(directory, correlator: server.boundAddress!)
        try Data("t0ken".utf8).write(to: URL(fileURLWithPath: directory + "/token"))
        try Data(#"{"node": "n1", "pairs": [{"src": "n1/0", "dst": "n1/0", "class": "loopback"}]}"#.utf8)
            .write(
                to: URL(fileURLWithPath: directory + "/p.json"))
        try Data(#"{"loopbackRate": 100, "timeoutMillis": 200}"#.utf8).write(
            to: URL(fileURLWithPath: directory + "/config.json"))
        try Data(#"{"rules": []}"#.utf8).write(to: URL(fileURLWithPath: directory + "/faults.json"))
        options.pinglistFile = directory + "/p.json"
        options.configFile = directory + "/config.json"
        options.faultsFile = directory + "/faults.json"
        options.metrics = try SocketAddress.parse("127.0.0.1:0")
        let lines = Locked<[String]>([])
        let agent = try NodeAgent(
            options: options, log: AgentLog { line in lines.withLock { $0.append(line) } })
        let done = DispatchSemaphore(value: 0)
        try spawnThread {
            try? agent.run()
            done.signal()
        }
        func reports() -> [Report] {
            correlator.state.withLock { state in
                state.order.compactMap { state.stored[$0] }.compactMap { try? Report(json: Data($0.utf8)) }
            }
        }
        // Two windows: the first is partial, the second whole and without loss.
        #expect(eventually { reports().count >= 2 })
        #expect(reports().dropFirst().allSatisfy { $0.pairs[0].lost == 0 && $0.pairs[0].sent >= 50 })
        let client = try HTTPClient(connectingTo: agent.metricsBoundAddress!)
        let metrics = try client.send("GET", "/metrics").text
        #expect(metrics.contains("# TYPE faultline_agent_probes_sent_total counter"))
        #expect(metrics.contains("faultline_agent_uploads_total "))
        // Drop everything from now on, reload.
        try Data(#"{"rules": [{"drop": 1}]}"#.utf8).write(
            to: URL(fileURLWithPath: directory + "/faults.json"))
        agent.requestReload()
        #expect(
            eventually { reports().contains { $0.pairs[0].sent > 0 && $0.pairs[0].lost == $0.pairs[0].sent } }
        )
        let before = reports().count
        agent.requestStop()
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(reports().count == before + 1 || reports().count == before + 2)
        let logged = lines.withLock { $0 }
        #expect(logged.contains { $0.contains("\"message\": \"reloaded\"") })
        #expect(logged.last?.contains("agent stopped") == true)
        #expect(!logged.joined().contains("t0ken"))
    }
}
