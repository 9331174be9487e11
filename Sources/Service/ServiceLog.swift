// Logs: one JSON object per line (`{"event": ..., ...}` with sorted keys) on standard error, or into
// whatever sink a test passes. Callers pass fields explicitly; nothing logs a request's headers, so
// tokens never reach a log.

import FleetModel
import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A JSON-lines logger.
public struct ServiceLog: Sendable {
    private let sink: @Sendable (String) -> Void
    private let clock: @Sendable () -> Date

    /// Logs into `sink`, one line (with its newline) per call.
    public init(
        sink: @escaping @Sendable (String) -> Void, clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.sink = sink
        self.clock = clock
    }

    /// Logs to standard error.
    public static let standardError = ServiceLog(sink: { line in
        var text = line
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    })

    /// Discards everything.
    public static let silent = ServiceLog(sink: { _ in })

    /// One line: `{"event": event, "time": RFC 3339, ...fields}`.
    public func log(_ event: String, _ fields: [String: JSONValue] = [:]) {
        var entries = fields
        entries["event"] = .string(event)
        let seconds = clock().timeIntervalSince1970
        let stamp = Timestamp(secondsSinceEpoch: Int64(seconds.rounded(.down)))
        entries["time"] = .string(stamp.description)
        sink(JSONValue.object(entries).jsonText + "\n")
    }
}
