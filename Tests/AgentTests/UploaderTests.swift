// The uploader against a real Net.HTTPServer standing in for the correlator: it goes down and comes
// back (nothing lost, nothing stored twice, order kept), answers 503 after storing (the retry is an
// identical duplicate, accepted once), refuses a report (409: dropped, counted).

import FleetModel
import Foundation
import Net
import Testing

@testable import Agent

/// A correlator that stores reports by (node, window): an identical duplicate is accepted again,
/// a different one is 409. `failNext` answers 503 after storing.
final class FakeCorrelator: Sendable {
    struct State: Sendable {
        var stored: [String: String] = [:]
        var order: [String] = []
        var posts = 0
        var failNextAfterStoring = 0
        var tokens: Set<String> = []
        /// What GET /v1/pinglist/{node} answers (the planner's JSON); nil for 404.
        var pinglist: String?
        var pinglistRequests: [String] = []
    }
    let state = Locked(State())

    var router: Router {
        var router = Router()
        router.post("/v1/reports") { [state] request in
            let text = String(decoding: request.body, as: UTF8.self)
            let report: Report
            do { report = try Report(json: Data(request.body)) } catch {
                return .error(400, "\(error)")
            }
            let key = "\(report.node) \(report.windowStart)"
            return state.withLock { state -> HTTPResponse in
                state.posts += 1
                state.tokens.insert(request.headers["Authorization"] ?? "")
                if let existing = state.stored[key] {
                    if existing != text { return .error(409, "different report for \(key)") }
                } else {
                    state.stored[key] = text
                    state.order.append(key)
                }
                if state.failNextAfterStoring > 0 {
                    state.failNextAfterStoring -= 1
                    return .error(503, "busy")
                }
                return HTTPResponse(status: 202)
            }
        }
        router.get("/v1/pinglist/{node}") { [state] request in
            state.withLock { state -> HTTPResponse in
                state.pinglistRequests.append(
                    "\(request.pathParameters["node"] ?? "") \(request.headers["Authorization"] ?? "")")
                guard let pinglist = state.pinglist else { return .error(404, "no pinglist") }
                return HTTPResponse(status: 200, headers: ["Content-Type": "application/json"], body: Array(pinglist.utf8))
            }
        }
        return router
    }

    func start(on address: SocketAddress) throws -> HTTPServer {
        let server = try HTTPServer(configuration: .init(address: address, sendsDate: false), router: router)
        try server.start()
        return server
    }
}

/// Recent windows (the spool drops reports older than a day).
let baseWindow = Int64(Date().timeIntervalSince1970) / 100 * 100

func key(_ window: Int) -> String { "n1 \(Timestamp(secondsSinceEpoch: baseWindow + Int64(window)))" }

func report(window: Int64, sent: Int = 10) -> Report {
    Report(
        node: NodeName("n1")!, windowStart: Timestamp(secondsSinceEpoch: baseWindow + window),
        windowSeconds: 1,
        agentVersion: "test", transport: .udp,
        pairs: [
            Report.Pair(
                src: EndpointID("n1/0")!, dst: EndpointID("n1/0")!, sent: sent, lost: sent, rttMicros: nil)
        ])
}

func eventually(within seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.02)
    }
    return condition()
}

/// A free TCP port on 127.0.0.1 (bound and released).
func freePort() throws -> UInt16 {
    let server = try HTTPServer(
        configuration: .init(address: try SocketAddress.parse("127.0.0.1:0")), router: Router())
    let port = try server.start().port
    server.stop()
    return port
}

@Suite(.serialized) struct UploaderTests {
    @Test func correlatorDownThenBackLosesNothingAndStoresNothingTwice() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let address = try SocketAddress.parse("127.0.0.1:\(try freePort())")
        let correlator = FakeCorrelator()
        var server: HTTPServer? = try correlator.start(on: address)
        let uploader = Uploader(
            settings: UploadSettings(
                correlator: address, initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(300)),
            spool: try Spool(directory: directory, limits: SpoolLimits()), token: "secret",
            log: AgentLog { _ in })
        try uploader.start()
        uploader.enqueue(report(window: 1))
        #expect(eventually { correlator.state.withLock { $0.order.count } == 1 })
        server?.stop()
        server = nil
        for window in 2...6 { uploader.enqueue(report(window: Int64(window))) }
        #expect(eventually { uploader.counters.failures >= 2 })
        #expect(uploader.spoolDepth.reports == 5)
        // Back, and the first answer after storing is a 503: the retry is an identical duplicate.
        correlator.state.withLock { $0.failNextAfterStoring = 1 }
        server = try correlator.start(on: address)
        #expect(eventually { uploader.spoolDepth.reports == 0 })
        uploader.stop(flushWithin: .seconds(1))
        server?.stop()
        let state = correlator.state.withLock { $0 }
        #expect(state.order == (1...6).map(key))
        #expect(state.stored.count == 6)
        #expect(state.posts == 7)  // six reports and one retry of a stored one
        #expect(state.tokens == ["Bearer secret"])
        #expect(uploader.counters.delivered == 6 && uploader.counters.rejected == 0)
    }

    @Test func refusedReportsAreDroppedAndCounted() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let correlator = FakeCorrelator()
        let server = try correlator.start(on: try SocketAddress.parse("127.0.0.1:0"))
        defer { server.stop() }
        let lines = Locked<[String]>([])
        let uploader = Uploader(
            settings: UploadSettings(correlator: server.boundAddress!),
            spool: try Spool(directory: directory, limits: SpoolLimits()), token: "t",
            log: AgentLog { line in lines.withLock { $0.append(line) } })
        try uploader.start()
        uploader.enqueue(report(window: 1, sent: 10))
        uploader.enqueue(report(window: 1, sent: 11))  // same window, other content: 409
        uploader.enqueue(report(window: 2))
        #expect(eventually { uploader.counters.delivered == 2 && uploader.counters.rejected == 1 })
        uploader.stop(flushWithin: .seconds(1))
        #expect(uploader.spoolDepth.reports == 0)
        let logged = lines.withLock { $0 }
        #expect(logged.contains { $0.contains("\"status\": \"409\"") && $0.contains("refused") })
        #expect(!logged.contains { $0.contains("Bearer") })
    }

    @Test func whatIsLeftAtStopStaysForTheNextRun() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let nobody = try SocketAddress.parse("127.0.0.1:\(try freePort())")
        let first = Uploader(
            settings: UploadSettings(correlator: nobody, initialBackoff: .milliseconds(20)),
            spool: try Spool(directory: directory, limits: SpoolLimits()), token: "t", log: AgentLog { _ in })
        try first.start()
        for window in 1...3 { first.enqueue(report(window: Int64(window))) }
        first.stop(flushWithin: .milliseconds(200))
        #expect(first.spoolDepth.reports == 3)
        let correlator = FakeCorrelator()
        let server = try correlator.start(on: nobody)
        defer { server.stop() }
        let second = Uploader(
            settings: UploadSettings(correlator: nobody),
            spool: try Spool(directory: directory, limits: SpoolLimits()),
            token: "t", log: AgentLog { _ in })
        try second.start()
        #expect(eventually { correlator.state.withLock { $0.order.count } == 3 })
        second.stop(flushWithin: .seconds(1))
        #expect(correlator.state.withLock { $0.order } == (1...3).map(key))
    }

    @Test func backoffDoublesToItsCapWithJitter() {
        let initial = Duration.milliseconds(500)
        let cap = Duration.seconds(30)
        #expect(backoff(failures: 0, initial: initial, max: cap, unit: 0.5) == .zero)
        #expect(backoff(failures: 1, initial: initial, max: cap, unit: 1) == .milliseconds(500))
        #expect(backoff(failures: 1, initial: initial, max: cap, unit: 0) == .milliseconds(250))
        #expect(backoff(failures: 4, initial: initial, max: cap, unit: 1) == .seconds(4))
        #expect(backoff(failures: 30, initial: initial, max: cap, unit: 1) == .seconds(30))
        #expect(UploadOutcome(status: 202) == .delivered)
        #expect(UploadOutcome(status: 409) == .rejected && UploadOutcome(status: 400) == .rejected)
        #expect(UploadOutcome(status: 503) == .retry && UploadOutcome(status: 401) == .retry)
    }

    @Test func correlatorURLs() throws {
        #expect(
            try UploadSettings.parseURL("http://127.0.0.1:8080/") == SocketAddress.parse("127.0.0.1:8080"))
        #expect(try UploadSettings.parseURL("http://localhost") == SocketAddress.parse("127.0.0.1:80"))
        #expect(throws: (any Error).self) { try UploadSettings.parseURL("https://127.0.0.1:1") }
        #expect(throws: (any Error).self) { try UploadSettings.parseURL("http://127.0.0.1:1/v1") }
    }
}
