// The incremental HTTP/1.1 request parser: bytes in, in any pieces; whole requests (head and
// Content-Length body) out, or a precise error with the status to answer. Pure: no I/O, no clock.

/// An error answered to the client: its status and a JSON body `{"error": message, "field": field}`.
public struct HTTPError: Error, Hashable, Sendable, CustomStringConvertible {
    public var status: Int
    public var message: String
    /// What the error is about: a header name, `request-line`, a query parameter, a JSON field path.
    public var field: String?
    /// Extra response headers, e.g. `Allow` for 405 or `Retry-After` for 503.
    public var headers: HTTPHeaders

    public init(_ status: Int, _ message: String, field: String? = nil, headers: HTTPHeaders = [:]) {
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers
    }

    public var description: String { "\(status) \(message)" + (field.map { " (\($0))" } ?? "") }
}

/// Parses requests from a byte stream. Feed what arrives, then call `next()` until it says
/// `.needMore`. After a `.failed` step the stream cannot be resynchronized: answer and close.
///
/// Chunked request bodies are not decoded: `Transfer-Encoding: chunked` is answered 411 Length
/// Required (send `Content-Length`), any other transfer coding 501, and both headers together 400.
public struct HTTPRequestParser: Sendable {
    public enum Step: Sendable, Hashable {
        case request(HTTPRequest)
        case needMore
        case failed(HTTPError)
    }

    public let maxHeaderBytes: Int
    public let maxHeaderCount: Int
    public let maxBodyBytes: Int

    private var buffer: [UInt8] = []
    /// First byte not yet consumed.
    private var start = 0
    /// Where the search for the end of the head goes on (bytes before it hold no end).
    private var scanned = 0
    /// Whether the request line's end has been seen (bytes before it are checked as they come).
    private var sawFirstLineEnd = false
    /// A parsed head waiting for `bodyLength` bytes of body.
    private var head: HTTPRequest?
    private var bodyLength = 0
    private var failure: HTTPError?

    public init(maxHeaderBytes: Int = 16 * 1024, maxHeaderCount: Int = 100, maxBodyBytes: Int = 8 << 20) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxBodyBytes = maxBodyBytes
    }

    public init(limits: HTTPServer.Limits) {
        self.init(
            maxHeaderBytes: limits.maxHeaderBytes, maxHeaderCount: limits.maxHeaderCount,
            maxBodyBytes: limits.maxBodyBytes)
    }

    /// True between requests: nothing of a next request has arrived.
    public var isAtRequestBoundary: Bool { head == nil && start == buffer.count }

    /// The head of a request whose body is still arriving (for `Expect: 100-continue`).
    public var headAwaitingBody: HTTPRequest? { head }

    public mutating func feed(_ bytes: some Sequence<UInt8>) {
        guard failure == nil else { return }
        buffer.append(contentsOf: bytes)
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        guard failure == nil else { return }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete request, or what stands in its way.
    public mutating func next() -> Step {
        if let failure { return .failed(failure) }
        do throws(HTTPError) {
            if head == nil {
                guard let end = try findHeadEnd() else { return .needMore }
                let parsed = try parseHead(buffer[start..<end - 4])
                start = end
                scanned = start
                sawFirstLineEnd = false
                head = parsed.request
                bodyLength = parsed.bodyLength
            }
            guard buffer.count - start >= bodyLength, var request = head else { return .needMore }
            request.body = Array(buffer[start..<start + bodyLength])
            start += bodyLength
            head = nil
            bodyLength = 0
            compact()
            return .request(request)
        } catch {
            failure = error
            buffer = []
            start = 0
            return .failed(error)
        }
    }

    private mutating func compact() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 64 * 1024)
            start = 0
            scanned = 0
        } else if start > 64 * 1024 && start > buffer.count / 2 {
            buffer.removeFirst(start)
            scanned -= start
            start = 0
        }
    }

    private static let cr: UInt8 = 13
    private static let lf: UInt8 = 10

    /// The index after the head's closing CRLF CRLF, nil while it has not arrived. Skips empty lines
    /// before a request line; refuses bare LF, bytes that cannot be in a request line, and heads
    /// over the limit as soon as they show.
    private mutating func findHeadEnd() throws(HTTPError) -> Int? {
        // Empty lines before a request are ignored (RFC 9112 §2.2).
        while !sawFirstLineEnd, buffer.count - start >= 2, buffer[start] == Self.cr,
            buffer[start + 1] == Self.lf
        {
            start += 2
            scanned = max(scanned, start)
        }
        if start == buffer.count { compact() }
        var index = max(scanned, start)
        while index < buffer.count {
            let byte = buffer[index]
            if byte == Self.lf {
                guard index > start, buffer[index - 1] == Self.cr else {
                    throw HTTPError(
                        400, "line ending without CR", field: sawFirstLineEnd ? "header" : "request-line")
                }
                sawFirstLineEnd = true
                if index - start >= 3, buffer[index - 2] == Self.lf {
                    let end = index + 1
                    if end - start > maxHeaderBytes { throw headTooLarge }
                    return end
                }
            } else if !sawFirstLineEnd, !(byte == 32 || (33...126).contains(byte) || byte == Self.cr) {
                throw HTTPError(400, "byte \(byte) cannot appear in a request line", field: "request-line")
            }
            index += 1
        }
        scanned = index
        if buffer.count - start > maxHeaderBytes { throw headTooLarge }
        return nil
    }

    private var headTooLarge: HTTPError {
        HTTPError(431, "request head over \(maxHeaderBytes) bytes", field: "header")
    }

    private func parseHead(
        _ bytes: ArraySlice<UInt8>
    ) throws(HTTPError) -> (request: HTTPRequest, bodyLength: Int) {
        var lines = splitLines(bytes)
        let requestLine = lines.removeFirst()
        let parts = requestLine.split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw HTTPError(400, "request line is not METHOD SP TARGET SP VERSION", field: "request-line")
        }
        guard !parts[0].isEmpty, parts[0].allSatisfy(Self.isTokenByte) else {
            throw HTTPError(400, "malformed method", field: "request-line")
        }
        let method = String(decoding: parts[0], as: UTF8.self)
        let target = try parseTarget(parts[1], method: method)
        let version = try parseVersion(parts[2])

        if lines.count > maxHeaderCount {
            throw HTTPError(431, "more than \(maxHeaderCount) header fields", field: "header")
        }
        var headers = HTTPHeaders()
        for line in lines {
            guard let first = line.first else { continue }
            if first == 32 || first == 9 {
                throw HTTPError(400, "folded header lines are not accepted", field: "header")
            }
            guard let colon = line.firstIndex(of: 58) else {
                throw HTTPError(400, "header line without a colon", field: "header")
            }
            let name = line[line.startIndex..<colon]
            guard !name.isEmpty, name.allSatisfy(Self.isTokenByte) else {
                throw HTTPError(400, "malformed header name", field: "header")
            }
            let nameText = String(decoding: name, as: UTF8.self)
            var value = line[(colon + 1)...]
            while let byte = value.first, byte == 32 || byte == 9 { value.removeFirst() }
            while let byte = value.last, byte == 32 || byte == 9 { value.removeLast() }
            guard value.allSatisfy({ $0 == 9 || $0 >= 32 && $0 != 127 }) else {
                throw HTTPError(400, "control character in a header value", field: nameText)
            }
            headers.add(nameText, String(decoding: value, as: UTF8.self))
        }

        let hosts = headers.values("Host")
        if hosts.count > 1 { throw HTTPError(400, "more than one Host header", field: "Host") }
        if version == .http11 && hosts.isEmpty {
            throw HTTPError(400, "HTTP/1.1 request without a Host header", field: "Host")
        }

        let lengths = headers.values("Content-Length")
        let codings = headers.tokens("Transfer-Encoding")
        if !headers.values("Transfer-Encoding").isEmpty {
            if !lengths.isEmpty {
                throw HTTPError(400, "both Transfer-Encoding and Content-Length", field: "Transfer-Encoding")
            }
            if codings.last == "chunked" {
                throw HTTPError(
                    411, "chunked request bodies are not accepted; send Content-Length",
                    field: "Transfer-Encoding")
            }
            throw HTTPError(501, "transfer coding not implemented", field: "Transfer-Encoding")
        }
        var bodyLength = 0
        if !lengths.isEmpty {
            var seen: Int?
            for item in lengths.flatMap({ $0.split(separator: ",", omittingEmptySubsequences: false) }) {
                let digits = item.trimmingASCIIWhitespace()
                guard !digits.isEmpty, digits.utf8.allSatisfy({ (48...57).contains($0) }) else {
                    throw HTTPError(400, "Content-Length is not a number", field: "Content-Length")
                }
                // More digits than any allowed body has: too large, whatever the exact number.
                let value = digits.utf8.count > 15 ? Int.max : Int(digits)!
                if let seen, seen != value {
                    throw HTTPError(400, "conflicting Content-Length values", field: "Content-Length")
                }
                seen = value
            }
            bodyLength = seen ?? 0
            if bodyLength > maxBodyBytes {
                throw HTTPError(413, "body over \(maxBodyBytes) bytes", field: "Content-Length")
            }
        }
        return (HTTPRequest(method: method, target: target, version: version, headers: headers), bodyLength)
    }

    private func splitLines(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var lineStart = bytes.startIndex
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == Self.cr && index + 1 < bytes.endIndex && bytes[index + 1] == Self.lf {
                lines.append(bytes[lineStart..<index])
                index += 2
                lineStart = index
            } else {
                index += 1
            }
        }
        lines.append(bytes[lineStart..<bytes.endIndex])
        return lines
    }

    private func parseTarget(_ bytes: ArraySlice<UInt8>, method: String) throws(HTTPError) -> String {
        guard !bytes.isEmpty, bytes.allSatisfy({ (33...126).contains($0) }) else {
            throw HTTPError(400, "malformed request target", field: "request-line")
        }
        let text = String(decoding: bytes, as: UTF8.self)
        if text.hasPrefix("/") { return text }
        if text == "*" && method == "OPTIONS" { return text }
        // absolute-form (RFC 9112 §3.2.2): keep the path and query.
        for scheme in ["http://", "https://"] where text.lowercased().hasPrefix(scheme) {
            let rest = text.dropFirst(scheme.count)
            guard let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
            let tail = rest[slash...]
            return tail.hasPrefix("/") ? String(tail) : "/" + tail
        }
        throw HTTPError(400, "request target must start with '/'", field: "request-line")
    }

    private func parseVersion(_ bytes: ArraySlice<UInt8>) throws(HTTPError) -> HTTPVersion {
        let text = Array(bytes)
        guard text.count == 8, text.starts(with: Array("HTTP/".utf8)), (48...57).contains(text[5]),
            text[6] == 46,
            (48...57).contains(text[7])
        else { throw HTTPError(400, "malformed HTTP version", field: "request-line") }
        let major = Int(text[5] - 48)
        let minor = Int(text[7] - 48)
        guard major == 1 else { throw HTTPError(505, "HTTP version not supported", field: "request-line") }
        return minor == 0 ? .http10 : .http11
    }

    /// tchar of RFC 9110 §5.6.2.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 48...57, 65...90, 97...122: true
        case 33, 35, 36, 37, 38, 39, 42, 43, 45, 46, 94, 95, 96, 124, 126: true
        default: false
        }
    }
}
