// The whole service over real loopback sockets (port 0): reports and reads through HTTPClient, a body
// over the limit (413), too many connections (503), a full ingest queue (503 with Retry-After),
// concurrent agents, and a stop that finishes the request in flight before the store closes.

import Dispatch
import Engine
import FleetModel
import Foundation
import Net
import Simulation
import Store
import Testing

@testable import Service

/// A running service on 127.0.0.1:0 over a temporary store, with the small-16 fleet.
private final class RunningService {
    let directory: TemporaryDirectory
    let service: CorrelatorService
    let address: SocketAddress
    let clock = ManualClock(smallSimulator.windowStart(0))

    init(_ adjust: (inout ServiceConfiguration) -> Void = { _ in }) throws {
        directory = try TemporaryDirectory()
        var configuration = ServiceConfiguration()
        configuration.databasePath = directory.path + "/faultline.db"
        configuration.listen = "127.0.0.1:0"
        configuration.tickMilliseconds = 50
        adjust(&configuration)
        let topology = smallSimulator.topology
        let inputs = CorrelatorInputs(
            topology: topology, topologyText: String(decoding: topology.jsonData(), as: UTF8.self),
            rules: .defaults,
            tokens: try Tokens(text: tokensText(topology), file: "tokens"))
        service = try CorrelatorService(
            configuration: configuration, inputs: inputs, clock: clock, log: .silent, sendsDate: false)
        address = try service.start()
    }

    func client() throws -> HTTPClient { try HTTPClient(connectingTo: address, timeout: .seconds(20)) }

    deinit {
        service.stop()
        directory.remove()
    }
}

private func post(_ client: HTTPClient, _ report: Report, token: String? = nil) throws -> HTTPClient.Response
{
    try client.send(
        "POST", "/v1/reports",
        headers: [
            "Authorization": "Bearer \(token ?? nodeToken(report.node.rawValue))",
            "Content-Type": "application/json",
        ],
        body: Array(report.jsonLine.utf8))
}

@Suite("the service over sockets")
struct ServiceServerTests {
    @Test("reports over one keep-alive connection are 202, findings and metrics are served")
    func endToEnd() throws {
        let running = try RunningService()
        let client = try running.client()
        for window in 0..<6 {
            for report in smallSimulator.reports(window: window) {
                let response = try post(client, report)
                #expect(response.status == 202, "\(response.text)")
            }
            running.clock.set(smallSimulator.windowStart(window + 1))
            running.service.correlator.tick()
        }
        let findings = try client.send(
            "GET", "/v1/findings?state=all", headers: ["Authorization": "Bearer \(adminToken)"])
        #expect(findings.status == 200)
        #expect(!findings.body.isEmpty)
        let metrics = try client.send("GET", "/metrics")
        #expect(
            metrics.text.contains(
                "faultline_http_responses_total{code=\"202\"} \((0..<6).map { smallSimulator.reports(window: $0).count }.reduce(0, +))\n"
            ))
        #expect(metrics.text.contains("faultline_http_received_bytes_total "))
        #expect(try client.send("GET", "/healthz").status == 200)
        #expect(try client.send("GET", "/readyz").status == 200)
    }

    @Test("a body over max-body-bytes is 413 before it is read")
    func bodyTooLarge() throws {
        let running = try RunningService { $0.maxBodyBytes = 4096 }
        let client = try running.client()
        let response = try client.send(
            "POST", "/v1/reports", headers: ["Authorization": "Bearer \(adminToken)"],
            body: [UInt8](repeating: UInt8(ascii: " "), count: 5000))
        #expect(response.status == 413)
        #expect(response.text.hasPrefix("{\"error\":"))
    }

    @Test("past max-connections a connection is answered 503 with Retry-After")
    func tooManyConnections() throws {
        let running = try RunningService { $0.maxConnections = 2 }
        let first = try running.client()
        let second = try running.client()
        #expect(try first.send("GET", "/healthz").status == 200)
        #expect(try second.send("GET", "/healthz").status == 200)
        let third = try running.client()
        let response = try third.readResponse()
        #expect(response.status == 503)
        #expect(response.headers["Retry-After"] == "1")
    }

    @Test("a full ingest queue answers 503 with Retry-After, and the report is not stored")
    func queueFull() throws {
        let running = try RunningService { $0.ingestQueueCapacity = 1 }
        let reports = smallSimulator.reports(window: 0)
        let blocked = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        // Hold the store's queue, then fill the one place of the ingest queue.
        running.service.correlator.storeQueue.async {
            blocked.signal()
            release.wait()
        }
        blocked.wait()
        let firstDone = DispatchSemaphore(value: 0)
        let address = running.address
        let first = reports[0]
        Thread {
            var status: Int?
            if let client = try? HTTPClient(connectingTo: address, timeout: .seconds(20)) {
                status = try? post(client, first).status
            }
            #expect(status == 202)
            firstDone.signal()
        }.start()
        while running.service.correlator.ingestQueue.pending < 1 { usleep(1000) }
        let client = try running.client()
        let refused = try post(client, reports[1])
        #expect(refused.status == 503)
        #expect(refused.headers["Retry-After"] == "1")
        release.signal()
        firstDone.wait()
        #expect(try post(client, reports[1]).status == 202)
        #expect(running.service.correlator.counterSnapshot.ingestQueueRejections == 1)
    }

    @Test("sixteen agents at once, each on its own connection: every report stored once")
    func concurrentAgents() throws {
        let running = try RunningService()
        let group = DispatchGroup()
        let address = running.address
        for report in smallSimulator.reports(window: 0) {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let client = try HTTPClient(connectingTo: address, timeout: .seconds(20))
                    for window in 0..<3 {
                        var mine = smallSimulator.reports(window: window).first { $0.node == report.node }!
                        mine.agentVersion = "0.3.0"
                        #expect(try post(client, mine).status == 202)
                    }
                } catch {
                    Issue.record("\(error)")
                }
            }.start()
        }
        group.wait()
        running.service.stop()
        let store = try Store(path: running.directory.path + "/faultline.db", mode: .existing, migrate: false)
        #expect(try store.reports().count == smallSimulator.reports(window: 0).count * 3)
    }

    @Test("a request head over 16 KiB is 431; a slow client mid-request does not hold up other agents")
    func headerLimitAndSlowClient() throws {
        let running = try RunningService()
        let big = try running.client()
        let response = try big.send(
            "GET", "/healthz", headers: ["X-Padding": String(repeating: "a", count: 20_000)])
        #expect(response.status == 431)
        let slow = try running.client()
        try slow.write("POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"version\"")
        let other = try running.client()
        #expect(try post(other, smallSimulator.reports(window: 0)[0]).status == 202)
        #expect(try other.send("GET", "/healthz").status == 200)
    }
}
