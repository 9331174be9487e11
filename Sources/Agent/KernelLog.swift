// The kernel log as the health collector reads it for NVIDIA XID events: the lines logged since the
// previous read. Live it is /dev/kmsg (each open file has its own position in the kernel's ring
// buffer, so reading to EAGAIN gives exactly what is new); tests pass lines of their own.

import Glibc

/// Kernel log lines, each read once.
public protocol KernelLogSource: Sendable {
    /// The message text of the lines logged since the previous call that contain `marker` (the first
    /// call: those the kernel's buffer still holds), oldest first, at most `limit`; `skipped` counts
    /// matching lines beyond the limit and records the kernel overwrote before they were read.
    func newLines(containing marker: String, limit: Int) throws(AgentError) -> (lines: [String], skipped: Int)
}

/// `/dev/kmsg`, opened once, read without blocking. Opening it needs CAP_SYSLOG where
/// `kernel.dmesg_restrict` is 1 (deploy/faultline-agent.service grants it to the agent's user).
public final class KernelMessageDevice: KernelLogSource {
    public let path: String
    private let descriptor: Int32
    /// The most records read per call, matching or not: a bound on one call's work.
    public static let maxRecordsPerCall = 65_536

    /// Opens `path`; an error names it and the errno text.
    public init(path: String = "/dev/kmsg") throws(AgentError) {
        self.path = path
        descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw AgentError("\(path): open: \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(descriptor) }

    public func newLines(
        containing marker: String, limit: Int
    ) throws(AgentError) -> (
        lines: [String], skipped: Int
    ) {
        var lines: [String] = []
        var skipped = 0
        // One record per read(2); a record is at most about 1 KiB of text plus its dictionary.
        var buffer = [UInt8](repeating: 0, count: 8192)
        for _ in 0..<Self.maxRecordsPerCall {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                switch errno {
                case EINTR: continue
                case EAGAIN: return (lines, skipped)
                case EPIPE:  // records were overwritten before we read them; reading goes on after them
                    skipped += 1
                    continue
                case let code: throw AgentError("\(path): read: \(String(cString: strerror(code)))")
                }
            }
            if count == 0 { break }
            // "6,1234,5678901,-;NVRM: Xid (PCI:0000:3b:00): 79, ...\n SUBSYSTEM=..."
            let record = buffer[..<count]
            guard let start = record.firstIndex(of: UInt8(ascii: ";")) else { continue }
            let end = record[start...].firstIndex(of: UInt8(ascii: "\n")) ?? record.endIndex
            let message = String(decoding: record[(start + 1)..<end], as: UTF8.self)
            guard message.contains(marker) else { continue }
            if lines.count < limit { lines.append(message) } else { skipped += 1 }
        }
        return (lines, skipped)
    }
}
