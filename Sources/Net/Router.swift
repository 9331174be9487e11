// Routing: method + path patterns like `/v1/pinglist/{node}` to handlers, 404 and 405 (with Allow),
// HEAD served by GET routes, percent-decoded path parameters and a validated, decoded query.

/// A handler: runs on the connection's thread (or on a `WorkQueue`), may block, returns a response or
/// throws an `HTTPError` (answered as JSON; any other error is a 500).
public typealias HTTPHandler = @Sendable (HTTPRequest) throws -> HTTPResponse

/// Where a route's handler runs.
public enum HandlerExecution: Sendable {
    /// On the connection's own thread (the default).
    case connectionThread
    /// On a bounded work queue; when it is full the server answers 503 with Retry-After itself.
    case workQueue(WorkQueue)
}

/// Routes by method and path pattern. Literal segments match exactly (after percent-decoding);
/// `{name}` matches any one non-empty segment and lands in `request.pathParameters[name]`.
public struct Router: Sendable {
    struct Route: Sendable {
        let method: String
        let segments: [Segment]
        let execution: HandlerExecution
        let handler: HTTPHandler
    }

    enum Segment: Sendable, Hashable {
        case literal(String)
        case parameter(String)
    }

    /// What routing a request found.
    public enum Resolution: Sendable {
        case handler(HTTPRequest, HandlerExecution, HTTPHandler)
        case failed(HTTPError)
    }

    private var routes: [Route] = []

    public init() {}

    /// Adds a route. `pattern` starts with `/`; a malformed pattern is a programming error.
    public mutating func add(
        _ method: String, _ pattern: String, on execution: HandlerExecution = .connectionThread,
        _ handler: @escaping HTTPHandler
    ) {
        precondition(pattern.hasPrefix("/"), "route pattern must start with '/': \(pattern)")
        let segments = pattern.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            part -> Segment in
            if part.hasPrefix("{") && part.hasSuffix("}") && part.count > 2 {
                return .parameter(String(part.dropFirst().dropLast()))
            }
            precondition(
                !part.contains("{") && !part.contains("}"), "malformed route segment '\(part)' in \(pattern)")
            return .literal(String(part))
        }
        routes.append(Route(method: method, segments: segments, execution: execution, handler: handler))
    }

    public mutating func get(
        _ pattern: String, on execution: HandlerExecution = .connectionThread,
        _ handler: @escaping HTTPHandler
    ) {
        add("GET", pattern, on: execution, handler)
    }

    public mutating func post(
        _ pattern: String, on execution: HandlerExecution = .connectionThread,
        _ handler: @escaping HTTPHandler
    ) {
        add("POST", pattern, on: execution, handler)
    }

    /// The handler for `request` with its parameters and query filled in, or 400 (bad encoding in
    /// path or query), 404 (no route has the path) or 405 (the path exists for other methods; the
    /// error carries `Allow`).
    public func resolve(_ request: HTTPRequest) -> Resolution {
        var request = request
        let segments: [String]
        do throws(HTTPError) {
            segments = try request.path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
                .map {
                    (segment) throws(HTTPError) -> String in
                    try percentDecode(segment, plusIsSpace: false, field: "path")
                }
            request.query =
                try request.rawQuery.map { (raw) throws(HTTPError) in try HTTPQuery.parse(raw) }
                ?? HTTPQuery()
        } catch {
            return .failed(error)
        }
        var allowed: Set<String> = []
        var fallback: (Route, [String: String])?
        for route in routes {
            guard let parameters = Self.match(route.segments, segments) else { continue }
            allowed.insert(route.method)
            if route.method == request.method {
                request.pathParameters = parameters
                return .handler(request, route.execution, route.handler)
            }
            if request.method == "HEAD" && route.method == "GET" && fallback == nil {
                fallback = (route, parameters)
            }
        }
        if let (route, parameters) = fallback {
            request.pathParameters = parameters
            return .handler(request, route.execution, route.handler)
        }
        if allowed.isEmpty { return .failed(HTTPError(404, "no such resource", field: "path")) }
        if allowed.contains("GET") { allowed.insert("HEAD") }
        return .failed(
            HTTPError(
                405, "method \(request.method) not allowed here", field: "method",
                headers: ["Allow": allowed.sorted().joined(separator: ", ")]))
    }

    static func match(_ pattern: [Segment], _ segments: [String]) -> [String: String]? {
        guard pattern.count == segments.count else { return nil }
        var parameters: [String: String] = [:]
        for (part, segment) in zip(pattern, segments) {
            switch part {
            case .literal(let text): if text != segment { return nil }
            case .parameter(let name):
                if segment.isEmpty { return nil }
                parameters[name] = segment
            }
        }
        return parameters
    }
}

/// A decoded query string: `name=value` items in order, `+` as space, `%XX` decoded, UTF-8 checked.
public struct HTTPQuery: Sendable, Hashable {
    public struct Item: Sendable, Hashable {
        public var name: String
        public var value: String
    }

    public private(set) var items: [Item] = []

    public init(_ items: [Item] = []) { self.items = items }

    /// Parses the text after `?`. Refuses bad `%` escapes, bytes that are not UTF-8 once decoded,
    /// and NUL, naming the parameter.
    public static func parse(_ raw: some StringProtocol) throws(HTTPError) -> HTTPQuery {
        var query = HTTPQuery()
        for pair in raw.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = try percentDecode(parts[0], plusIsSpace: true, field: "query")
            let value =
                parts.count > 1 ? try percentDecode(parts[1], plusIsSpace: true, field: "query.\(name)") : ""
            query.items.append(Item(name: name, value: value))
        }
        return query
    }

    /// The first value of `name`.
    public subscript(_ name: String) -> String? { items.first { $0.name == name }?.value }

    public func values(_ name: String) -> [String] { items.filter { $0.name == name }.map(\.value) }
}

/// Decodes `%XX` escapes (and `+` when `plusIsSpace`); the result must be UTF-8 without NUL.
func percentDecode(_ text: some StringProtocol, plusIsSpace: Bool, field: String) throws(HTTPError) -> String
{
    let utf8 = Array(text.utf8)
    guard utf8.contains(where: { $0 == 37 || (plusIsSpace && $0 == 43) }) else {
        if utf8.contains(0) { throw HTTPError(400, "NUL in a decoded value", field: field) }
        return String(text)
    }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(utf8.count)
    var index = 0
    func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 48...57: byte - 48
        case 65...70: byte - 55
        case 97...102: byte - 87
        default: nil
        }
    }
    while index < utf8.count {
        let byte = utf8[index]
        if byte == 37 {
            guard index + 2 < utf8.count, let high = hex(utf8[index + 1]), let low = hex(utf8[index + 2])
            else {
                throw HTTPError(400, "malformed percent-escape", field: field)
            }
            bytes.append(high << 4 | low)
            index += 3
        } else {
            bytes.append(plusIsSpace && byte == 43 ? 32 : byte)
            index += 1
        }
    }
    guard let decoded = String(validating: bytes, as: UTF8.self) else {
        throw HTTPError(400, "percent-escapes do not decode to UTF-8", field: field)
    }
    if bytes.contains(0) { throw HTTPError(400, "NUL in a decoded value", field: field) }
    return decoded
}
