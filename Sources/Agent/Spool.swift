// The on-disk spool of reports waiting for the correlator: one file per report, named by a
// sequence number so that they go out in order, written atomically (temp file, fsync, rename, fsync
// of the directory) so that it survives a crash or restart of the agent. Bounded by count, bytes and
// age; past a bound the oldest reports are dropped first, and counted.

import Foundation
import Glibc

public struct SpoolLimits: Hashable, Sendable {
    public var maxReports: Int
    public var maxBytes: Int
    /// A report whose window started longer ago than this is dropped (the correlator would no
    /// longer use it).
    public var maxAgeSeconds: Int

    public init(maxReports: Int = 8640, maxBytes: Int = 64 << 20, maxAgeSeconds: Int = 86_400) {
        self.maxReports = maxReports
        self.maxBytes = maxBytes
        self.maxAgeSeconds = maxAgeSeconds
    }
}

/// One spooled report: its file, its order, and its window's start (seconds since the epoch).
public struct SpooledReport: Hashable, Sendable {
    public var sequence: UInt64
    public var windowStart: Int64
    public var bytes: Int
    var fileName: String { Spool.fileName(sequence: sequence, windowStart: windowStart) }
}

/// A value with one owner (the agent keeps it behind a lock); its files are its state on disk.
public struct Spool: Sendable {
    public let directory: String
    public var limits: SpoolLimits
    public private(set) var entries: [SpooledReport] = []
    /// Reports dropped for a limit, since start.
    public private(set) var droppedForLimits = 0
    private var nextSequence: UInt64 = 1

    /// Opens (creating) the directory and takes over what an earlier run left: spooled reports in
    /// order; stray temporary files are removed.
    public init(directory: String, limits: SpoolLimits) throws {
        self.directory = directory
        self.limits = limits
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw AgentError("spool \(directory): cannot create: \(error.localizedDescription)")
        }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw AgentError("spool \(directory): cannot list: \(error.localizedDescription)")
        }
        for name in names {
            if name.hasPrefix(".tmp-") {
                unlink(path(name))
                continue
            }
            guard let entry = Self.parse(name) else { continue }  // not ours: left alone
            var info = stat()
            guard stat(path(name), &info) == 0 else { continue }
            entries.append(SpooledReport(sequence: entry.0, windowStart: entry.1, bytes: Int(info.st_size)))
        }
        entries.sort { $0.sequence < $1.sequence }
        nextSequence = (entries.last?.sequence ?? 0) + 1
    }

    public var count: Int { entries.count }
    public var totalBytes: Int { entries.reduce(0) { $0 + $1.bytes } }

    static func fileName(sequence: UInt64, windowStart: Int64) -> String {
        let digits = String(sequence)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + "-\(windowStart).json"
    }

    static func parse(_ name: String) -> (UInt64, Int64)? {
        guard name.hasSuffix(".json") else { return nil }
        let parts = name.dropLast(5).split(separator: "-", maxSplits: 1)
        guard parts.count == 2, parts[0].count == 20, let sequence = UInt64(parts[0]),
            let window = Int64(parts[1])
        else { return nil }
        return (sequence, window)
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    /// Writes one report (its JSON line) as the newest entry, then applies the limits. Returns how
    /// many old reports the limits dropped.
    @discardableResult
    public mutating func append(_ text: String, windowStart: Int64, now: Int64) throws -> Int {
        let entry = SpooledReport(
            sequence: nextSequence, windowStart: windowStart, bytes: text.utf8.count + 1)
        nextSequence += 1
        try writeAtomically(Array((text + "\n").utf8), to: entry.fileName)
        entries.append(entry)
        return enforceLimits(now: now)
    }

    /// The oldest report's JSON (without its line end), or nil when the spool is empty. An unreadable
    /// file is dropped (and counted) and the next is tried.
    public mutating func oldest() -> (SpooledReport, [UInt8])? {
        while let first = entries.first {
            if let data = FileManager.default.contents(atPath: path(first.fileName)) {
                var bytes = [UInt8](data)
                while let last = bytes.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") {
                    bytes.removeLast()
                }
                return (first, bytes)
            }
            entries.removeFirst()
            droppedForLimits += 1
        }
        return nil
    }

    /// Removes a report once it was delivered (or refused for good).
    public mutating func remove(_ entry: SpooledReport) {
        unlink(path(entry.fileName))
        entries.removeAll { $0.sequence == entry.sequence }
    }

    /// Drops the oldest reports until count, bytes and age are within the limits.
    @discardableResult
    public mutating func enforceLimits(now: Int64) -> Int {
        var dropped = 0
        var bytes = totalBytes
        while let first = entries.first,
            entries.count > limits.maxReports || bytes > limits.maxBytes
                || now - first.windowStart > Int64(limits.maxAgeSeconds)
        {
            unlink(path(first.fileName))
            entries.removeFirst()
            bytes -= first.bytes
            dropped += 1
        }
        droppedForLimits += dropped
        return dropped
    }

    /// temp file + write + fsync + rename + fsync(directory): after a crash the file is either
    /// whole or absent.
    private func writeAtomically(_ bytes: [UInt8], to name: String) throws {
        let temporary = path(".tmp-" + name)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw AgentError("spool: open \(temporary): \(String(cString: strerror(errno)))")
        }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw AgentError("spool: write \(temporary): \(reason)")
            }
            offset += written
        }
        if fsync(fd) != 0 {
            let reason = String(cString: strerror(errno))
            close(fd)
            unlink(temporary)
            throw AgentError("spool: fsync \(temporary): \(reason)")
        }
        close(fd)
        guard rename(temporary, path(name)) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw AgentError("spool: rename \(temporary): \(reason)")
        }
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }
}
