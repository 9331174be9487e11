// The agent's log: one JSON object per line on stderr, {"time", "level", "message", ...fields}.
// Secrets never go in: the token is read from its file and only ever put in the Authorization header.

import FleetModel
import Foundation
import Glibc

public struct AgentLog: Sendable {
    public enum Level: String, Sendable { case debug, info, warning, error }

    private let sink: @Sendable (String) -> Void

    /// Lines to `sink` (tests); the default writes them to stderr.
    public init(sink: @escaping @Sendable (String) -> Void = AgentLog.standardError) {
        self.sink = sink
    }

    public static let standardError: @Sendable (String) -> Void = { line in
        var line = line
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }

    public func callAsFunction(_ level: Level, _ message: String, _ fields: [String: String] = [:]) {
        var line =
            "{\"time\": \(jsonText(Self.now())), \"level\": \"\(level.rawValue)\", \"message\": \(jsonText(message))"
        for key in fields.keys.sorted() { line += ", \(jsonText(key)): \(jsonText(fields[key]!))" }
        sink(line + "}\n")
    }

    static func now() -> String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        var parts = tm()
        var seconds = time.tv_sec
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = String(Int(time.tv_nsec) / 1_000_000 + 1000).dropFirst()
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(millis)Z"
    }
}

/// A JSON string literal, written as every other JSON of the project is.
private func jsonText(_ text: String) -> String { JSONValue.string(text).jsonText }
