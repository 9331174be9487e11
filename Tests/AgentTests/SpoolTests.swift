// The spool on disk: order, atomic files, limits by count, bytes and age (oldest first, counted),
// and what a restarted agent finds.

import Foundation
import Testing

@testable import Agent

func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "faultline-agent-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite struct SpoolTests {
    @Test func reportsComeOutInOrderAndSurviveARestart() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var spool = try Spool(directory: directory, limits: SpoolLimits())
        for window in 0..<5 {
            try spool.append("{\"w\": \(window)}", windowStart: Int64(window * 10), now: 50)
        }
        let oldest = spool.oldest()
        let (first, bytes) = try #require(oldest)
        #expect(bytes == Array("{\"w\": 0}".utf8))
        spool.remove(first)
        // A crash mid-write leaves a temporary file: a restart removes it and keeps the rest in order.
        _ = FileManager.default.createFile(
            atPath: directory + "/.tmp-00000000000000000099-0.json", contents: Data("{".utf8))
        _ = FileManager.default.createFile(atPath: directory + "/notes.txt", contents: Data())
        var reopened = try Spool(directory: directory, limits: SpoolLimits())
        #expect(reopened.entries.map(\.windowStart) == [10, 20, 30, 40])
        try reopened.append("{\"w\": 5}", windowStart: 50, now: 50)
        #expect(reopened.entries.last?.sequence == 6)
        var seen: [String] = []
        while let (entry, bytes) = reopened.oldest() {
            seen.append(String(decoding: bytes, as: UTF8.self))
            reopened.remove(entry)
        }
        #expect(seen == (1...5).map { "{\"w\": \($0)}" })
        let left = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(left == ["notes.txt"])
    }

    @Test func limitsDropTheOldestFirstAndCountThem() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var spool = try Spool(
            directory: directory, limits: SpoolLimits(maxReports: 3, maxBytes: 1 << 20, maxAgeSeconds: 100))
        for window in 0..<5 { try spool.append("{\"w\": \(window)}", windowStart: Int64(window), now: 10) }
        #expect(spool.entries.map(\.windowStart) == [2, 3, 4])
        #expect(spool.droppedForLimits == 2)
        // Age: at now = 103, windows 2 is older than 100 s.
        #expect(spool.enforceLimits(now: 103) == 1)
        #expect(spool.entries.map(\.windowStart) == [3, 4])
        // Bytes.
        spool.limits = SpoolLimits(maxReports: 100, maxBytes: 12, maxAgeSeconds: 100)
        #expect(spool.enforceLimits(now: 10) == 1)
        #expect(spool.count == 1 && spool.droppedForLimits == 4)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).count == 1)
    }
}
