// Responses and their bytes: status, headers, body; the serializer (Content-Length always, Date only
// when asked, for deterministic tests); JSON bodies and the one error shape {"error", "field"}.

import Foundation

/// A response to one request.
public struct HTTPResponse: Sendable, Hashable {
    public var status: Int
    /// Headers besides Content-Length, Connection and Date, which the server writes.
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A `text/plain; charset=utf-8` response.
    public static func text(_ status: Int, _ text: String) -> HTTPResponse {
        HTTPResponse(
            status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: Array(text.utf8))
    }

    /// An `application/json` response with `value` encoded with sorted keys (stable bytes).
    public static func json(_ status: Int, _ value: some Encodable) throws -> HTTPResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return HTTPResponse(
            status: status, headers: ["Content-Type": "application/json"],
            body: Array(try encoder.encode(value)))
    }

    /// A JSON body already in bytes.
    public static func json(_ status: Int, bytes: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: bytes)
    }

    /// The error shape every failure uses: `{"error":"...","field":"..."}` (`field` only when known).
    public static func error(_ error: HTTPError) -> HTTPResponse {
        var body = "{\"error\":" + jsonString(error.message)
        if let field = error.field { body += ",\"field\":" + jsonString(field) }
        body += "}"
        var response = HTTPResponse.json(error.status, bytes: Array(body.utf8))
        for (name, value) in error.headers { response.headers.add(name, value) }
        return response
    }

    public static func error(_ status: Int, _ message: String, field: String? = nil) -> HTTPResponse {
        error(HTTPError(status, message, field: field))
    }

    /// The head and body as sent: status line, headers, `Content-Length` (always, the body's count,
    /// also for HEAD), `Connection: close` or `keep-alive` when given, `Date` when given, then the
    /// body unless `omitBody` (HEAD, and statuses that have none).
    public func serialized(connection: String? = nil, date: Date? = nil, omitBody: Bool = false) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
        for (name, value) in headers
        where !HTTPHeaders.same(name, "Content-Length") && !HTTPHeaders.same(name, "Connection")
            && !HTTPHeaders.same(name, "Date") && !HTTPHeaders.same(name, "Transfer-Encoding")
        {
            head += "\(Self.clean(name)): \(Self.clean(value))\r\n"
        }
        if let date { head += "Date: \(Self.httpDate(date))\r\n" }
        if let connection { head += "Connection: \(connection)\r\n" }
        let hasBody = !(100...199).contains(status) && status != 204 && status != 304
        if hasBody { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        var bytes = Array(head.utf8)
        if hasBody && !omitBody { bytes += body }
        return bytes
    }

    /// Header text without CR or LF, so a handler cannot split the response.
    private static func clean(_ text: String) -> String {
        text.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" })
            ? String(text.unicodeScalars.filter { $0 != "\r" && $0 != "\n" }.map(Character.init)) : text
    }

    /// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    static func httpDate(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents(
            [.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int?) -> String { let n = n ?? 0; return n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[(parts.weekday ?? 1) - 1]), \(two(parts.day)) \(months[(parts.month ?? 1) - 1]) "
            + "\(parts.year ?? 1970) \(two(parts.hour)):\(two(parts.minute)):\(two(parts.second)) GMT"
    }

    /// A JSON string literal for `text`.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// The reason phrase for a status; "Status" for ones not listed.
    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 417: "Expectation Failed"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Status"
        }
    }
}
