// The request parser on its own: valid requests split at every byte boundary and at seeded random
// points, pipelining, each refusal with its status, and seeded garbage that must never crash it.

import Foundation
import Testing

@testable import Net

/// SplitMix64: a small repeatable generator for seeded tests.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private let samples: [(text: String, method: String, target: String, body: String)] = [
    ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/", ""),
    (
        "POST /v1/reports HTTP/1.1\r\nHost: c:7070\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"version\":1}",
        "POST", "/v1/reports", "{\"version\":1}"
    ),
    (
        "GET /v1/pinglist/gpu-a017?window=10&x=%41+b HTTP/1.0\r\nAccept:  */*  \r\n\r\n", "GET",
        "/v1/pinglist/gpu-a017?window=10&x=%41+b", ""
    ),
    ("\r\nPUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nX-Empty:\r\n\r\n", "PUT", "/x", ""),
    (
        "DELETE http://example:80/a/b?q HTTP/1.1\r\nHost: example\r\nContent-Length: 3, 3\r\n\r\nabc",
        "DELETE", "/a/b?q", "abc"
    ),
]

/// Feeds `bytes` in the given pieces and collects the requests (or the failure).
private func parse(
    _ pieces: [ArraySlice<UInt8>], parser: HTTPRequestParser = HTTPRequestParser()
) -> (
    [HTTPRequest], HTTPError?
) {
    var parser = parser
    var requests: [HTTPRequest] = []
    for piece in pieces {
        parser.feed(piece)
        drain: while true {
            switch parser.next() {
            case .request(let request): requests.append(request)
            case .needMore: break drain
            case .failed(let error): return (requests, error)
            }
        }
    }
    return (requests, nil)
}

private func parseWhole(
    _ text: String, parser: HTTPRequestParser = HTTPRequestParser()
) -> ([HTTPRequest], HTTPError?) {
    parse([Array(text.utf8)[...]], parser: parser)
}

@Suite struct ParserTests {
    @Test func eachSampleParses() {
        for sample in samples {
            let (requests, error) = parseWhole(sample.text)
            #expect(error == nil, "\(sample.text)")
            #expect(requests.count == 1)
            #expect(requests.first?.method == sample.method)
            #expect(requests.first?.target == sample.target)
            #expect(requests.first.map { String(decoding: $0.body, as: UTF8.self) } == sample.body)
        }
        let (requests, _) = parseWhole(samples[2].text)
        #expect(requests[0].version == .http10)
        #expect(requests[0].headers["accept"] == "*/*")
        #expect(requests[0].keepAlive == false)
    }

    @Test func everySplitPointGivesTheSameRequests() {
        let stream = Array(samples.map(\.text).joined().utf8)
        let (expected, error) = parse([stream[...]])
        #expect(error == nil)
        #expect(expected.count == samples.count)
        for split in 0...stream.count {
            let (requests, error) = parse([stream[..<split], stream[split...]])
            #expect(error == nil)
            #expect(requests == expected, "split at \(split)")
        }
        // One byte at a time.
        let (byByte, _) = parse(stream.indices.map { stream[$0..<$0 + 1] })
        #expect(byByte == expected)
    }

    @Test func seededRandomSplitsGiveTheSameRequests() {
        let stream = Array(samples.map(\.text).joined().utf8)
        let (expected, _) = parse([stream[...]])
        for seed in 0..<200 as Range<UInt64> {
            var random = SeededGenerator(seed: seed)
            var pieces: [ArraySlice<UInt8>] = []
            var start = 0
            while start < stream.count {
                let end = min(stream.count, start + Int.random(in: 0...40, using: &random))
                pieces.append(stream[start..<end])
                start = end
            }
            let (requests, error) = parse(pieces)
            #expect(error == nil, "seed \(seed)")
            #expect(requests == expected, "seed \(seed)")
        }
    }

    @Test func garbageNeverCrashesAndFailsWithAClientStatus() {
        let allowed: Set<Int> = [400, 411, 413, 431, 501, 505]
        for seed in 0..<300 as Range<UInt64> {
            var random = SeededGenerator(seed: seed)
            var bytes: [UInt8]
            switch seed % 3 {
            case 0:  // pure noise
                bytes = (0..<Int.random(in: 1...3000, using: &random)).map { _ in
                    UInt8.random(in: 0...255, using: &random)
                }
            case 1:  // a valid request with some bytes flipped
                bytes = Array(samples[Int(seed / 3) % samples.count].text.utf8)
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(
                        in: 0...255, using: &random)
                }
            default:  // printable junk with line breaks
                let alphabet = Array(" :\r\n\tGETPOST/HTTP1.0aZ-%".utf8)
                bytes = (0..<Int.random(in: 1...600, using: &random)).map { _ in
                    alphabet.randomElement(using: &random)!
                }
            }
            let (_, error) = parse(
                [bytes[...]], parser: HTTPRequestParser(maxHeaderBytes: 1024, maxBodyBytes: 4096))
            if let error { #expect(allowed.contains(error.status), "seed \(seed): \(error)") }
        }
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 411, "Transfer-Encoding"),
        ("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "Transfer-Encoding"),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", 400,
            "Transfer-Encoding"
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400,
            "Content-Length"
        ),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, "Content-Length"),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413,
            "Content-Length"
        ),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n", 413, "Content-Length"),
        ("GET / HTTP/1.1\r\n\r\n", 400, "Host"),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Host"),
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "request-line"),
        ("GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n", 400, "request-line"),
        ("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request-line"),
        ("GET nopath HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request-line"),
        ("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request-line"),
        ("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "request-line"),
        ("GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400, "header"),
        ("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400, "header"),
        ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "header"),
        ("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400, "header"),
        ("GET / HTTP/1.1\r\nHost: a\r\nX: a\u{01}b\r\n\r\n", 400, "X"),
        ("\u{16}\u{03}\u{01}", 400, "request-line"),
    ])
    func refusals(text: String, status: Int, field: String) {
        let (requests, error) = parseWhole(
            text, parser: HTTPRequestParser(maxHeaderBytes: 1024, maxBodyBytes: 4096))
        #expect(requests.isEmpty)
        #expect(error?.status == status, "\(text.debugDescription): \(String(describing: error))")
        #expect(error?.field == field)
    }

    @Test func headLimitIsEnforcedBeforeTheHeadEnds() {
        var parser = HTTPRequestParser(maxHeaderBytes: 1024, maxHeaderCount: 5)
        parser.feed(Array("GET / HTTP/1.1\r\nHost: a\r\nX: ".utf8) + [UInt8](repeating: 97, count: 1100))
        #expect(parser.next() == .failed(HTTPError(431, "request head over 1024 bytes", field: "header")))
        // Still failed afterwards, whatever comes.
        parser.feed(Array("\r\n\r\n".utf8))
        if case .failed(let error) = parser.next() {
            #expect(error.status == 431)
        } else {
            Issue.record("recovered")
        }

        let many = "GET / HTTP/1.1\r\nHost: a\r\n" + (0..<6).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        #expect(parseWhole(many, parser: HTTPRequestParser(maxHeaderCount: 5)).1?.status == 431)
    }

    @Test func bodyLimitAnswersAtTheHeadWithoutTheBody() {
        var parser = HTTPRequestParser(maxBodyBytes: 10)
        parser.feed(Array("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n".utf8))
        guard case .failed(let error) = parser.next() else { Issue.record("no failure"); return }
        #expect(error.status == 413)
    }

    @Test func boundaryAndAwaitingBody() {
        var parser = HTTPRequestParser()
        #expect(parser.isAtRequestBoundary)
        parser.feed(
            Array("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n".utf8))
        #expect(parser.next() == .needMore)
        #expect(!parser.isAtRequestBoundary)
        #expect(parser.headAwaitingBody?.headers["Expect"] == "100-continue")
        parser.feed(Array("ok".utf8))
        guard case .request(let request) = parser.next() else { Issue.record("no request"); return }
        #expect(request.body == Array("ok".utf8))
        #expect(parser.isAtRequestBoundary)
        #expect(parser.next() == .needMore)
    }

    @Test func connectionSemantics() {
        func keepAlive(_ version: String, _ connection: String?) -> Bool {
            let head =
                "GET / \(version)\r\nHost: a\r\n" + (connection.map { "Connection: \($0)\r\n" } ?? "")
                + "\r\n"
            return parseWhole(head).0.first!.keepAlive
        }
        #expect(keepAlive("HTTP/1.1", nil))
        #expect(!keepAlive("HTTP/1.1", "close"))
        #expect(!keepAlive("HTTP/1.1", "Upgrade, CLOSE"))
        #expect(!keepAlive("HTTP/1.0", nil))
        #expect(keepAlive("HTTP/1.0", "Keep-Alive"))
    }
}

@Suite struct ResponseTests {
    @Test func serializedBytesAreExact() {
        let response = HTTPResponse.text(200, "hi")
        let text = String(decoding: response.serialized(), as: UTF8.self)
        #expect(
            text
                == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nhi"
        )
        let head = String(decoding: response.serialized(connection: "close", omitBody: true), as: UTF8.self)
        #expect(head.hasSuffix("Connection: close\r\nContent-Length: 2\r\n\r\n"))
    }

    @Test func errorBodiesAreJSON() {
        let response = HTTPResponse.error(400, "bad \"quote\"\n", field: "pairs[0].src")
        #expect(
            String(decoding: response.body, as: UTF8.self)
                == #"{"error":"bad \"quote\"\n","field":"pairs[0].src"}"#)
        #expect(response.headers["Content-Type"] == "application/json")
        #expect(String(decoding: HTTPResponse.error(404, "x").body, as: UTF8.self) == #"{"error":"x"}"#)
    }

    @Test func handlersCannotSplitHeaders() {
        let response = HTTPResponse(status: 200, headers: ["X": "a\r\nSet-Cookie: evil"])
        let text = String(decoding: response.serialized(), as: UTF8.self)
        #expect(text.contains("X: aSet-Cookie: evil\r\n"))
    }

    @Test func dateIsIMFFixdate() {
        #expect(
            HTTPResponse.httpDate(Date(timeIntervalSince1970: 784_111_777)) == "Sun, 06 Nov 1994 08:49:37 GMT"
        )
    }
}

@Suite struct RouterAndAddressTests {
    private var router: Router {
        var router = Router()
        router.get("/v1/pinglist/{node}") { request in .text(200, request.pathParameters["node"]!) }
        router.post("/v1/reports") { _ in .text(202, "") }
        router.add("PUT", "/v1/reports") { _ in .text(200, "") }
        return router
    }

    private func resolve(_ method: String, _ target: String) -> Router.Resolution {
        router.resolve(HTTPRequest(method: method, target: target))
    }

    @Test func parametersAndQuery() throws {
        guard
            case .handler(let request, _, let handler) = resolve(
                "GET", "/v1/pinglist/gpu%2Da017?window=10&tag=a+b%26c&flag")
        else { Issue.record("no route"); return }
        #expect(request.pathParameters == ["node": "gpu-a017"])
        #expect(request.query["window"] == "10")
        #expect(request.query["tag"] == "a b&c")
        #expect(request.query["flag"] == "")
        #expect(try handler(request).body == Array("gpu-a017".utf8))
    }

    @Test func notFoundMethodNotAllowedAndBadEncoding() {
        guard case .failed(let missing) = resolve("GET", "/v1/nothing") else {
            Issue.record("routed"); return
        }
        #expect(missing.status == 404)
        guard case .failed(let method) = resolve("DELETE", "/v1/reports") else {
            Issue.record("routed"); return
        }
        #expect(method.status == 405)
        #expect(method.headers["Allow"] == "POST, PUT")
        guard case .failed(let getOnly) = resolve("POST", "/v1/pinglist/a") else {
            Issue.record("routed"); return
        }
        #expect(getOnly.headers["Allow"] == "GET, HEAD")
        guard case .failed(let escape) = resolve("GET", "/v1/pinglist/a?x=%G1") else {
            Issue.record("routed"); return
        }
        #expect(escape.status == 400)
        #expect(escape.field == "query.x")
        guard case .failed(let utf8) = resolve("GET", "/v1/pinglist/%FF") else {
            Issue.record("routed"); return
        }
        #expect(utf8.status == 400)
        #expect(utf8.field == "path")
        guard case .failed(let empty) = resolve("GET", "/v1/pinglist/") else {
            Issue.record("routed"); return
        }
        #expect(empty.status == 404)
        guard case .handler = resolve("HEAD", "/v1/pinglist/a") else {
            Issue.record("HEAD not served by GET"); return
        }
    }

    @Test func addresses() throws {
        #expect(try SocketAddress.parse("127.0.0.1:8080") == SocketAddress(host: "127.0.0.1", port: 8080))
        #expect(try SocketAddress.parse("[::1]:0").host == "::1")
        #expect(try SocketAddress.parse("[::1]:7").description == "[::1]:7")
        #expect(try SocketAddress.parse("localhost:9").host == "127.0.0.1")
        #expect(SocketAddress.defaultListen.description == "127.0.0.1:0")
        for bad in [
            "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "host.example:80", ":80", "::1:80",
            "[::1]80", "[::1:80", "1.2.3:80", "127.0.0.1:8O",
        ] {
            #expect(throws: AddressError.self, "\(bad)") { try SocketAddress.parse(bad) }
        }
        #expect(throws: AddressError.badPort("65536")) { try SocketAddress.parse("127.0.0.1:65536") }
    }
}
