// A minimal blocking HTTP/1.1 client over one connection: send a request (or raw bytes), read one
// response (Content-Length or until close), everything within a timeout. For tests and the agent's
// uploader; never call it from Swift concurrency's cooperative pool.

import Foundation

/// One connection to an HTTP server. Not `Sendable`: one thread uses it at a time.
public final class HTTPClient {
    /// A response as read.
    public struct Response: Sendable, Hashable {
        public var status: Int
        public var reason: String
        /// As the status line says, e.g. `HTTP/1.1`.
        public var version: String
        public var headers: HTTPHeaders
        public var body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public let address: SocketAddress
    /// Time allowed for each call: a whole write, or a whole response.
    public var timeout: Duration
    /// Largest response body accepted.
    public var maxBodyBytes = 64 << 20
    private let socket: Socket
    private var buffer: [UInt8] = []
    /// Interim (1xx) responses read so far, which `readResponse` skips.
    public private(set) var interimResponses: [Response] = []
    /// Whether the last response said `Connection: close` (or was HTTP/1.0 without keep-alive): the
    /// server closes after it, so the next request needs a new client.
    public private(set) var serverWillClose = false
    /// Whether the server has closed its side (end of stream was read).
    public private(set) var peerClosed = false

    /// Connects within `timeout` (else `.system` with ETIMEDOUT, or ECONNREFUSED when nobody listens).
    public init(connectingTo address: SocketAddress, timeout: Duration = .seconds(10)) throws(HTTPClientError)
    {
        self.address = address
        self.timeout = timeout
        do { socket = try Socket.connected(to: address, deadline: .now + timeout) } catch {
            throw .system(error)
        }
    }

    /// Sends one request and reads its response. Adds `Host` and `Content-Length` (when there is a
    /// body, or for POST and PUT) unless given.
    public func send(
        _ method: String, _ target: String, headers: HTTPHeaders = [:], body: [UInt8] = []
    ) throws(HTTPClientError) -> Response {
        var head = "\(method) \(target) HTTP/1.1\r\n"
        if headers["Host"] == nil { head += "Host: \(address)\r\n" }
        if headers["Content-Length"] == nil && headers["Transfer-Encoding"] == nil
            && (!body.isEmpty || method == "POST" || method == "PUT")
        {
            head += "Content-Length: \(body.count)\r\n"
        }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        try write(Array(head.utf8) + body)
        return try readResponse(toHead: method == "HEAD")
    }

    /// Writes bytes as they are (for tests of malformed input, pipelining, slow clients).
    public func write(_ bytes: [UInt8]) throws(HTTPClientError) {
        do {
            guard try socket.writeAll(bytes, until: .now + timeout) else { throw HTTPClientError.timedOut }
        } catch let error as SystemCallError {
            throw .system(error)
        } catch {
            throw error as! HTTPClientError
        }
    }

    public func write(_ text: String) throws(HTTPClientError) { try write(Array(text.utf8)) }

    /// Reads one response; skips `1xx` interim responses. `toHead`: the request was HEAD (no body).
    public func readResponse(toHead: Bool = false) throws(HTTPClientError) -> Response {
        let deadline = ContinuousClock.now + timeout
        while true {
            let headEnd = try fill(until: deadline) { buffer in Self.headEnd(in: buffer) }
            var response = try Self.parseHead(buffer[..<(headEnd - 4)])
            buffer.removeFirst(headEnd)
            if (100...199).contains(response.status) {
                interimResponses.append(response)
                continue
            }
            let tokens = response.headers.tokens("Connection")
            serverWillClose =
                tokens.contains("close") || (response.version == "HTTP/1.0" && !tokens.contains("keep-alive"))
            if toHead || response.status == 204 || response.status == 304 { return response }
            if let lengthText = response.headers["Content-Length"] {
                guard let length = Int(lengthText), length >= 0 else {
                    throw .malformedResponse("Content-Length '\(lengthText)'")
                }
                if length > maxBodyBytes { throw .responseTooLarge }
                _ = try fill(until: deadline) { buffer in buffer.count >= length ? length : nil }
                response.body = Array(buffer[..<length])
                buffer.removeFirst(length)
            } else {
                response.body = try readToEnd(until: deadline)
            }
            return response
        }
    }

    /// Everything until the server closes (or the timeout passes: then `.timedOut`).
    public func readToEnd() throws(HTTPClientError) -> [UInt8] {
        try readToEnd(until: .now + timeout)
    }

    /// Waits for the server to close the connection; true if it did within the timeout, false if
    /// the timeout passed. Bytes read meanwhile are dropped.
    public func waitForClose(within limit: Duration) throws(HTTPClientError) -> Bool {
        do {
            _ = try readToEnd(until: .now + limit)
            return true
        } catch .timedOut {
            return false
        } catch .system(let error) where error.errno == .connectionReset {
            return true
        }
    }

    private func readToEnd(until deadline: ContinuousClock.Instant) throws(HTTPClientError) -> [UInt8] {
        while !peerClosed {
            try readSome(until: deadline)
            if buffer.count > maxBodyBytes { throw .responseTooLarge }
        }
        defer { buffer = [] }
        return buffer
    }

    /// Reads until `ready` finds what it needs in the buffer; end of stream first is `.closedByPeer`.
    private func fill(
        until deadline: ContinuousClock.Instant, _ ready: ([UInt8]) -> Int?
    ) throws(HTTPClientError) -> Int {
        while true {
            if let found = ready(buffer) { return found }
            if peerClosed { throw .closedByPeer(received: buffer) }
            if buffer.count > 64 * 1024 + maxBodyBytes { throw .responseTooLarge }
            try readSome(until: deadline)
        }
    }

    private func readSome(until deadline: ContinuousClock.Instant) throws(HTTPClientError) {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let count: Int?
        do {
            count = try Syscall.typed {
                try chunk.withUnsafeMutableBytes { raw in try socket.read(into: raw, until: deadline) }
            }
        } catch {
            throw .system(error)
        }
        guard let count else { throw .timedOut }
        if count == 0 { peerClosed = true }
        buffer += chunk[..<count]
    }

    private static func headEnd(in buffer: [UInt8]) -> Int? {
        guard buffer.count >= 4 else { return nil }
        for index in 3..<buffer.count
        where buffer[index] == 10 && buffer[index - 1] == 13 && buffer[index - 2] == 10
            && buffer[index - 3] == 13
        {
            return index + 1
        }
        return nil
    }

    private static func parseHead(_ bytes: ArraySlice<UInt8>) throws(HTTPClientError) -> Response {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3, let status = Int(parts[1])
        else {
            throw .malformedResponse("status line '\(statusLine)'")
        }
        var headers = HTTPHeaders()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else {
                throw .malformedResponse("header line '\(line)'")
            }
            headers.add(String(line[..<colon]), line[line.index(after: colon)...].trimmingASCIIWhitespace())
        }
        return Response(
            status: status, reason: parts.count > 2 ? String(parts[2]) : "", version: String(parts[0]),
            headers: headers, body: [])
    }
}

@available(*, unavailable)
extension HTTPClient: Sendable {}

/// Why a client call failed.
public enum HTTPClientError: Error, Hashable, Sendable, CustomStringConvertible {
    case system(SystemCallError)
    case timedOut
    /// The server closed the connection before a whole response; what had arrived.
    case closedByPeer(received: [UInt8])
    case malformedResponse(String)
    case responseTooLarge

    public var description: String {
        switch self {
        case .system(let error): "\(error)"
        case .timedOut: "timed out"
        case .closedByPeer(let received): "connection closed by the server after \(received.count) bytes"
        case .malformedResponse(let what): "malformed response: \(what)"
        case .responseTooLarge: "response too large"
        }
    }
}
