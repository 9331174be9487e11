// The server over real loopback sockets: keep-alive, pipelining, Connection: close and HTTP/1.0, each
// limit (431, 413, 411, 503 over the connection cap and for a full work queue), slowloris and idle
// timeouts, 404/405, and a graceful stop that finishes a running handler.

import Dispatch
import Foundation
import Testing

@testable import Net

/// Small limits. Timeouts are long enough that a loaded machine does not hit them by accident; the
/// tests of timeouts use `shortTimeouts()`.
private func testLimits() -> HTTPServer.Limits {
    var limits = HTTPServer.Limits()
    limits.maxHeaderBytes = 1024
    limits.maxBodyBytes = 4096
    limits.maxConnections = 8
    limits.readTimeout = .seconds(5)
    limits.idleTimeout = .seconds(5)
    limits.writeTimeout = .seconds(5)
    limits.lingerTimeout = .milliseconds(200)
    return limits
}

/// Read and idle timeouts of 400 ms, for the tests that wait for them.
private func shortTimeouts() -> HTTPServer.Limits {
    var limits = testLimits()
    limits.readTimeout = .milliseconds(400)
    limits.idleTimeout = .milliseconds(400)
    return limits
}

/// Signals a test can wait on from a handler's thread.
private final class Gate: Sendable {
    let entered = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
}

private func testRouter(gate: Gate = Gate(), queue: WorkQueue? = nil) -> Router {
    var router = Router()
    router.get("/hello") { _ in .text(200, "hello") }
    router.post("/echo") { request in HTTPResponse(status: 200, body: request.body) }
    router.get("/v1/pinglist/{node}") { request in
        .json(200, bytes: Array("{\"node\":\"\(request.pathParameters["node"]!)\"}".utf8))
    }
    router.get("/gate") { _ in
        gate.entered.signal()
        gate.release.wait()
        return .text(200, "released")
    }
    router.get("/big") { _ in HTTPResponse(status: 200, body: [UInt8](repeating: 42, count: 32 << 20)) }
    router.get("/refuse") { _ in throw HTTPError(422, "node is not in the topology", field: "node") }
    router.get("/crash") { _ in throw CocoaError(.fileNoSuchFile) }
    if let queue {
        router.post("/ingest", on: .workQueue(queue)) { _ in
            gate.entered.signal()
            gate.release.wait()
            return .text(202, "stored")
        }
    }
    return router
}

private func withServer(
    limits: HTTPServer.Limits = testLimits(), router: Router = testRouter(),
    _ body: (HTTPServer, SocketAddress) throws -> Void
) throws {
    let server = try HTTPServer(configuration: .init(limits: limits, sendsDate: false), router: router)
    let address = try server.start()
    defer { server.stop() }
    try body(server, address)
}

private func jsonObject(_ response: HTTPClient.Response) -> [String: String] {
    (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: String] ?? [:]
}

/// Runs `body` on a new thread (blocking work the test must not wait for yet).
private func onThread(_ body: @escaping @Sendable () -> Void) {
    Thread(block: body).start()
}

/// Waits until `condition` holds, up to `limit`; whether it did.
private func eventually(within limit: Duration = .seconds(3), _ condition: () -> Bool) -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

@Suite(.serialized) struct ServerTests {
    @Test func boundPortIsReported() throws {
        try withServer { server, address in
            #expect(address.host == "127.0.0.1")
            #expect(address.port != 0)
            #expect(server.boundAddress == address)
        }
    }

    @Test func aPortInUseIsABindErrorWithItsErrno() throws {
        try withServer { _, address in
            let second = try HTTPServer(configuration: .init(address: address), router: testRouter())
            #expect(throws: SystemCallError("bind", .addressInUse)) { try second.start() }
            second.stop()
        }
    }

    @Test func servesIPv6LoopbackWhenTheMachineHasIt() throws {
        let server = try HTTPServer(
            configuration: .init(address: try SocketAddress.parse("[::1]:0"), sendsDate: false),
            router: testRouter())
        let address: SocketAddress
        do {
            address = try server.start()
        } catch {
            // No IPv6 here (EADDRNOTAVAIL or EAFNOSUPPORT): nothing to test.
            #expect(error.call == "bind" || error.call == "socket")
            return
        }
        defer { server.stop() }
        #expect(address.host == "::1")
        #expect(try HTTPClient(connectingTo: address).send("GET", "/hello").text == "hello")
    }

    @Test func clientConnectErrorsKeepTheirErrno() throws {
        // A port nobody listens on: the kernel's choice for a server that is stopped at once.
        let server = try HTTPServer(router: testRouter())
        let address = try server.start()
        server.stop()
        #expect(throws: HTTPClientError.system(SystemCallError("connect", .connectionRefused))) {
            try HTTPClient(connectingTo: address, timeout: .seconds(2))
        }
    }

    @Test func keepAliveServesSeveralRequestsOnOneConnection() throws {
        try withServer { server, address in
            let client = try HTTPClient(connectingTo: address)
            for round in 0..<5 {
                let response = try client.send("POST", "/echo", body: Array("round \(round)".utf8))
                #expect(response.status == 200)
                #expect(response.text == "round \(round)")
                #expect(response.headers["Connection"] == nil)
                #expect(response.headers["Content-Length"] == "\("round \(round)".utf8.count)")
            }
            let node = try client.send("GET", "/v1/pinglist/gpu-a017")
            #expect(node.text == #"{"node":"gpu-a017"}"#)
            #expect(node.headers["Content-Type"] == "application/json")
            #expect(server.counters.connectionsAccepted == 1)
            #expect(server.counters.responsesByStatus[200] == 6)
        }
    }

    @Test func concurrentClientsAreEachAnsweredCorrectly() throws {
        try withServer { server, address in
            let clients = 8
            let rounds = 25
            let wrong = Locked(0)
            let done = DispatchGroup()
            for index in 0..<clients {
                done.enter()
                onThread {
                    defer { done.leave() }
                    guard let client = try? HTTPClient(connectingTo: address) else {
                        wrong.withLock { $0 += rounds }
                        return
                    }
                    for round in 0..<rounds {
                        let body = Array("client \(index) round \(round)".utf8)
                        if (try? client.send("POST", "/echo", body: body))?.body != body {
                            wrong.withLock { $0 += 1 }
                        }
                    }
                }
            }
            #expect(done.wait(timeout: .now() + 20) == .success)
            #expect(wrong.withLock { $0 } == 0)
            #expect(server.counters.connectionsAccepted == clients)
            #expect(server.counters.responsesByStatus[200] == clients * rounds)
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        try withServer { _, address in
            let client = try HTTPClient(connectingTo: address)
            let requests = (0..<4).map { "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\np\($0)" }
                .joined()
            try client.write(requests + "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            for index in 0..<4 { #expect(try client.readResponse().text == "p\(index)") }
            let last = try client.readResponse()
            #expect(last.text == "hello")
            #expect(last.headers["Connection"] == "close")
            #expect(try client.waitForClose(within: .seconds(2)))
        }
    }

    @Test func connectionCloseAndHTTP10() throws {
        try withServer { _, address in
            let closing = try HTTPClient(connectingTo: address)
            let response = try closing.send("GET", "/hello", headers: ["Connection": "close"])
            #expect(response.headers["Connection"] == "close")
            #expect(closing.serverWillClose)
            #expect(try closing.waitForClose(within: .seconds(2)))

            let old = try HTTPClient(connectingTo: address)
            try old.write("GET /hello HTTP/1.0\r\n\r\n")
            #expect(try old.readResponse().headers["Connection"] == "close")
            #expect(try old.waitForClose(within: .seconds(2)))

            let oldKeepAlive = try HTTPClient(connectingTo: address)
            for _ in 0..<2 {
                try oldKeepAlive.write("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                let answer = try oldKeepAlive.readResponse()
                #expect(answer.status == 200)
                #expect(answer.headers["Connection"] == "keep-alive")
                #expect(!oldKeepAlive.serverWillClose)
            }
        }
    }

    @Test func headRequestsGetHeadersOnly() throws {
        try withServer { _, address in
            let client = try HTTPClient(connectingTo: address)
            let head = try client.send("HEAD", "/hello")
            #expect(head.status == 200)
            #expect(head.headers["Content-Length"] == "5")
            #expect(head.body.isEmpty)
            #expect(try client.send("GET", "/hello").text == "hello")  // nothing stray left on the stream
        }
    }

    @Test func headerTooLargeIs431() throws {
        try withServer { server, address in
            let client = try HTTPClient(connectingTo: address)
            try client.write(
                "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: " + String(repeating: "a", count: 2000) + "\r\n\r\n"
            )
            let response = try client.readResponse()
            #expect(response.status == 431)
            #expect(jsonObject(response)["field"] == "header")
            #expect(response.headers["Connection"] == "close")
            #expect(try client.waitForClose(within: .seconds(2)))
            #expect(server.counters.parseErrors == 1)
        }
    }

    @Test func bodyTooLargeIs413BeforeTheBodyIsSent() throws {
        try withServer { _, address in
            let client = try HTTPClient(connectingTo: address)
            // Announces 10 MB, sends 100 bytes, then waits: the answer must come without the rest.
            try client.write(
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n"
                    + String(repeating: "x", count: 100))
            let started = ContinuousClock.now
            let response = try client.readResponse()
            #expect(response.status == 413)
            #expect(jsonObject(response)["field"] == "Content-Length")
            #expect(ContinuousClock.now - started < .seconds(2))
            #expect(try client.waitForClose(within: .seconds(2)))
        }
    }

    @Test func chunkedBodiesAre411() throws {
        try withServer { _, address in
            let client = try HTTPClient(connectingTo: address)
            try client.write(
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
            let response = try client.readResponse()
            #expect(response.status == 411)
            #expect(jsonObject(response)["field"] == "Transfer-Encoding")
            #expect(try client.waitForClose(within: .seconds(2)))
        }
    }

    @Test func badRequestLineIs400JSON() throws {
        try withServer { _, address in
            let client = try HTTPClient(connectingTo: address)
            try client.write("HELLO\r\n\r\n")
            let response = try client.readResponse()
            #expect(response.status == 400)
            #expect(response.headers["Content-Type"] == "application/json")
            #expect(jsonObject(response)["field"] == "request-line")
            #expect(jsonObject(response)["error"] != nil)
            #expect(try client.waitForClose(within: .seconds(2)))
        }
    }

    @Test func unknownRouteIs404AndWrongMethodIs405WithAllow() throws {
        try withServer { _, address in
            let client = try HTTPClient(connectingTo: address)
            let missing = try client.send("GET", "/nope")
            #expect(missing.status == 404)
            #expect(jsonObject(missing)["error"] != nil)
            let wrong = try client.send("DELETE", "/echo")
            #expect(wrong.status == 405)
            #expect(wrong.headers["Allow"] == "POST")
            #expect(try client.send("GET", "/hello").status == 200)  // the connection stays usable
        }
    }

    @Test func slowlorisIsCutOffWhileOthersAreServed() throws {
        try withServer(limits: shortTimeouts()) { server, address in
            let slow = try HTTPClient(connectingTo: address)
            try slow.write("GET /hello HTTP/1.1\r\nHost: t\r\n")
            let started = ContinuousClock.now
            var closed = false
            var served = 0
            // Trickle one header byte every 50 ms; each step also checks the connection and serves
            // another client.
            let trickle = Array(
                "X-Slow: abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz".utf8)
            for byte in trickle {
                do { try slow.write([byte]) } catch { closed = true }
                if closed { break }
                if try slow.waitForClose(within: .milliseconds(50)) {
                    closed = true
                    break
                }
                let other = try HTTPClient(connectingTo: address, timeout: .seconds(2))
                if try other.send("GET", "/hello").status == 200 { served += 1 }
            }
            #expect(closed, "the trickling client kept its connection")
            #expect(ContinuousClock.now - started < .seconds(3))
            #expect(served >= 2)
            #expect(server.counters.readTimeouts == 1)
            #expect(server.counters.responsesByStatus[408] == 1)
        }
    }

    @Test func slowBodyIsCutOff() throws {
        try withServer(limits: shortTimeouts()) { server, address in
            let slow = try HTTPClient(connectingTo: address)
            try slow.write("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly-part")
            let response = try slow.readResponse()
            #expect(response.status == 408)
            #expect(try slow.waitForClose(within: .seconds(2)))
            #expect(server.counters.readTimeouts == 1)
        }
    }

    @Test func idleKeepAliveConnectionIsClosed() throws {
        try withServer(limits: shortTimeouts()) { server, address in
            let client = try HTTPClient(connectingTo: address)
            #expect(try client.send("GET", "/hello").status == 200)
            let started = ContinuousClock.now
            #expect(try client.waitForClose(within: .seconds(3)))
            #expect(ContinuousClock.now - started >= .milliseconds(300))
            #expect(server.counters.idleTimeouts == 1)
        }
    }

    @Test func connectionsOverTheCapAre503() throws {
        var limits = testLimits()
        limits.maxConnections = 2
        limits.idleTimeout = .seconds(10)
        try withServer(limits: limits) { server, address in
            let first = try HTTPClient(connectingTo: address)
            let second = try HTTPClient(connectingTo: address)
            #expect(try first.send("GET", "/hello").status == 200)
            #expect(try second.send("GET", "/hello").status == 200)
            let third = try HTTPClient(connectingTo: address)
            let refused = try third.readResponse()
            #expect(refused.status == 503)
            #expect(refused.headers["Retry-After"] == "1")
            #expect(try third.waitForClose(within: .seconds(2)))
            #expect(server.counters.connectionsRejected == 1)
            // Room again once one leaves.
            _ = consume first
            #expect(eventually { server.counters.connectionsOpen == 1 })
            let fourth = try HTTPClient(connectingTo: address)
            #expect(try fourth.send("GET", "/hello").status == 200)
        }
    }

    @Test func fullWorkQueueIs503WithRetryAfter() throws {
        let gate = Gate()
        let queue = WorkQueue(label: "test-ingest", capacity: 1, retryAfterSeconds: 2)
        try withServer(router: testRouter(gate: gate, queue: queue)) { server, address in
            let busy = try HTTPClient(connectingTo: address)
            try busy.write("POST /ingest HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
            #expect(gate.entered.wait(timeout: .now() + 3) == .success)

            let refused = try HTTPClient(connectingTo: address).send("POST", "/ingest")
            #expect(refused.status == 503)
            #expect(refused.headers["Retry-After"] == "2")
            #expect(jsonObject(refused)["error"] != nil)
            #expect(server.counters.queueRejections == 1)
            #expect(queue.refused == 1)

            gate.release.signal()
            #expect(try busy.readResponse().status == 202)
            #expect(queue.pending == 0)
            gate.release.signal()  // for the next request to pass at once
            #expect(try busy.send("POST", "/ingest").status == 202)
        }
    }

    @Test func gracefulStopFinishesTheRunningHandler() throws {
        let gate = Gate()
        var limits = testLimits()
        limits.idleTimeout = .seconds(10)
        let server = try HTTPServer(
            configuration: .init(limits: limits, sendsDate: false), router: testRouter(gate: gate))
        let address = try server.start()

        let idle = try HTTPClient(connectingTo: address)
        #expect(try idle.send("GET", "/hello").status == 200)
        let running = try HTTPClient(connectingTo: address)
        try running.write("GET /gate HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(gate.entered.wait(timeout: .now() + 3) == .success)

        let stopped = DispatchSemaphore(value: 0)
        onThread {
            server.stop()
            stopped.signal()
        }
        // The idle connection closes at once; stop waits for the handler.
        #expect(try idle.waitForClose(within: .seconds(2)))
        #expect(stopped.wait(timeout: .now() + 0.3) == .timedOut)
        gate.release.signal()
        let response = try running.readResponse()
        #expect(response.status == 200)
        #expect(response.text == "released")
        #expect(response.headers["Connection"] == "close")
        #expect(stopped.wait(timeout: .now() + 3) == .success)
        #expect(server.counters.connectionsOpen == 0)
        #expect(throws: HTTPClientError.self) { try HTTPClient(connectingTo: address) }
    }

    @Test func gracefulStopFinishesARequestStillArriving() throws {
        var limits = testLimits()
        limits.readTimeout = .seconds(5)
        let server = try HTTPServer(
            configuration: .init(limits: limits, sendsDate: false), router: testRouter())
        let address = try server.start()
        let client = try HTTPClient(connectingTo: address)
        try client.write("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf-")
        #expect(eventually { server.counters.bytesIn > 0 })
        let stopped = DispatchSemaphore(value: 0)
        onThread {
            server.stop()
            stopped.signal()
        }
        #expect(stopped.wait(timeout: .now() + 0.3) == .timedOut)
        try client.write("done!")
        let response = try client.readResponse()
        #expect(response.text == "half-done!")
        #expect(response.headers["Connection"] == "close")
        #expect(stopped.wait(timeout: .now() + 3) == .success)
    }

    @Test func garbageGetsAnErrorAndTheServerCarriesOn() throws {
        try withServer { server, address in
            for seed in 0..<40 as Range<UInt64> {
                var random = SeededGenerator(seed: seed)
                let length = Int.random(in: 1...3000, using: &random)
                var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
                bytes += Array("\r\n\r\n".utf8)
                let client = try HTTPClient(connectingTo: address, timeout: .seconds(3))
                try client.write(bytes)
                let response = try client.readResponse()
                #expect((400...505).contains(response.status), "seed \(seed)")
                #expect(jsonObject(response)["error"] != nil, "seed \(seed)")
            }
            #expect(try HTTPClient(connectingTo: address).send("GET", "/hello").status == 200)
            #expect(server.counters.parseErrors == 40)
        }
    }

    @Test func handlerErrorsAreJSON() throws {
        try withServer { server, address in
            let client = try HTTPClient(connectingTo: address)
            let refused = try client.send("GET", "/refuse")
            #expect(refused.status == 422)
            #expect(jsonObject(refused) == ["error": "node is not in the topology", "field": "node"])
            let crashed = try client.send("GET", "/crash")
            #expect(crashed.status == 500)
            #expect(jsonObject(crashed) == ["error": "internal error"])
            #expect(server.counters.handlerErrors == 1)
            #expect(try client.send("GET", "/hello").status == 200)
        }
    }

    @Test func bodyAtTheLimitIsAcceptedAndBytesAreCounted() throws {
        try withServer { server, address in
            let client = try HTTPClient(connectingTo: address)
            let body = (0..<4096).map { UInt8($0 % 251) }
            let response = try client.send("POST", "/echo", body: body)
            #expect(response.body == body)
            #expect(server.counters.bytesIn > 4096)
            #expect(eventually { server.counters.bytesOut > 4096 })
        }
    }

    @Test func clientThatDoesNotReadIsCutOffAfterTheWriteTimeout() throws {
        var limits = testLimits()
        limits.writeTimeout = .milliseconds(300)
        try withServer(limits: limits) { server, address in
            let client = try HTTPClient(connectingTo: address)
            try client.write("GET /big HTTP/1.1\r\nHost: t\r\n\r\n")  // 32 MiB that nobody reads
            #expect(eventually(within: .seconds(5)) { server.counters.writeTimeouts == 1 })
            #expect(eventually { server.counters.connectionsOpen == 0 })
        }
    }

    @Test func expectContinueGetsAnInterimResponse() throws {
        try withServer { _, address in
            let client = try HTTPClient(connectingTo: address)
            try client.write(
                "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
            // Only the interim answer comes before the body is sent.
            client.timeout = .milliseconds(300)
            #expect(throws: HTTPClientError.timedOut) { try client.readResponse() }
            #expect(client.interimResponses.map(\.status) == [100])
            client.timeout = .seconds(5)
            try client.write("body")
            #expect(try client.readResponse().text == "body")
        }
    }
}
