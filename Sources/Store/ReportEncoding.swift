// The compact binary form of a report's pairs in the event log (docs/store.md, "Event log
// encoding"): a table of the names used, then each pair as varints, with its sketch as protobuf
// bytes rather than base64, and its bin counts as varints rather than doubles. Decoding validates
// everything and gives back the very `Report.Pair`s that were encoded, so replay from the store sees
// what the agent sent (a compact sketch kept compact for the engine is checked when it is read).

import Engine
import FleetModel
import Foundation
import QuantileSketch

/// Encodes and decodes `[Report.Pair]` as the event log stores them.
///
/// Layout (all integers unsigned LEB128 varints unless said otherwise):
/// ```
/// format            1 byte, = 1
/// names             count, then each: byte length, UTF-8   (nodes of src/dst, switches of paths)
/// pairs             count, then each:
///   src             name index, rail
///   dst             name index, rail
///   sent, lost, errors   zigzag varints
///   flags           1 byte: 8 = sketch in SketchCompaction's form (bin counts as varints),
///                   1 = sketch as raw protobuf bytes (when compaction cannot reproduce them),
///                   2 = sketch as text (kept verbatim when its base64 is not canonical);
///                   at most one of 8, 1, 2; and 4 = path present
///   sketch          length, bytes                 (when flag 8, 1 or 2)
///   path            count, name indexes           (when flag 4)
/// ```
/// Names are numbered in order of first use, so the encoding of a report is a function of the report.
public enum PairsEncoding {
    static let formatVersion: UInt8 = 1
    static let flagRawSketch: UInt8 = 1
    static let flagTextSketch: UInt8 = 2
    static let flagPath: UInt8 = 4
    static let flagCompactSketch: UInt8 = 8
    static let sketchFlags = flagRawSketch | flagTextSketch | flagCompactSketch

    /// The pairs' compact bytes.
    public static func encode(_ pairs: [Report.Pair]) -> [UInt8] {
        var names: [String] = []
        var nameIndex: [String: Int] = [:]
        func index(_ name: String) -> Int {
            if let known = nameIndex[name] { return known }
            nameIndex[name] = names.count
            names.append(name)
            return names.count - 1
        }
        var body: [UInt8] = []
        body.reserveCapacity(pairs.count * 80)
        appendVarint(UInt64(pairs.count), to: &body)
        for pair in pairs {
            appendVarint(UInt64(index(pair.src.node.rawValue)), to: &body)
            appendVarint(UInt64(pair.src.rail), to: &body)
            appendVarint(UInt64(index(pair.dst.node.rawValue)), to: &body)
            appendVarint(UInt64(pair.dst.rail), to: &body)
            appendZigzag(Int64(pair.sent), to: &body)
            appendZigzag(Int64(pair.lost), to: &body)
            appendZigzag(Int64(pair.errors), to: &body)
            // The flags say how the sketch that follows them is stored: set once it is.
            var flags: UInt8 = pair.path == nil ? 0 : flagPath
            let flagsAt = body.count
            body.append(0)
            // A compact form (read back for the engine) is stored as the bytes it stands for, so the
            // encoding stays a function of the report; one that does not expand, as it is (the
            // damage it came with, not a guess).
            var sketch = pair.rttMicros
            if case .compact(let compact)? = sketch {
                if let bytes = sketch?.decodedBytes {
                    sketch = .bytes(bytes)
                } else {
                    flags |= flagCompactSketch
                    appendVarint(UInt64(compact.count), to: &body)
                    body += compact
                }
            }
            switch sketch {
            case .bytes(let raw)?:
                if appendVarintPrefixed(
                    to: &body, { SketchCompaction.compact(raw, appendingTo: &$0).map(UInt64.init) })
                {
                    flags |= flagCompactSketch
                } else {
                    flags |= flagRawSketch
                    appendVarint(UInt64(raw.count), to: &body)
                    body += raw
                }
            case .text(let text)?:
                // Not strict base64: kept as the text that came.
                flags |= flagTextSketch
                appendVarint(UInt64(text.utf8.count), to: &body)
                body += text.utf8
            case .compact?, nil: break
            }
            body[flagsAt] = flags
            if let path = pair.path {
                appendVarint(UInt64(path.count), to: &body)
                for name in path { appendVarint(UInt64(index(name.rawValue)), to: &body) }
            }
        }
        var out: [UInt8] = [formatVersion]
        appendVarint(UInt64(names.count), to: &out)
        for name in names {
            let bytes = Array(name.utf8)
            appendVarint(UInt64(bytes.count), to: &out)
            out += bytes
        }
        return out + body
    }

    /// How decoded pairs carry their sketches.
    public enum SketchForm: Sendable {
        /// Protobuf bytes, every compact sketch expanded and so checked: the reports as they came.
        case expanded
        /// Compact sketches as `WireSketch.compact`, slices of the stored bytes, checked when read:
        /// for the engine, which reads them as they are (a replay reads millions).
        case compact
    }

    /// The pairs back from `bytes`; throws a reason (for the caller to place) when they are not a
    /// valid encoding.
    public static func decode(_ bytes: [UInt8], sketches: SketchForm = .expanded) throws(EncodingError) -> [Report.Pair] {
        var noMemory: RowMemory?
        return try decode(bytes, memory: &noMemory) { flags, range, _ throws(EncodingError) in
            try range.map { range throws(EncodingError) in try sketch(bytes[range], flags: flags, form: sketches) }
        }
    }

    /// The pairs of `node`'s row back from `bytes` with their sketches read instead of kept (their
    /// `rttMicros` nil), and what each says, in the pairs' order: a replay's engine needs nothing
    /// more of them. A compact sketch is read where it lies, and one that does not expand is damage
    /// (the log holds only what compaction made): it fails the row, as it does when expanded. The
    /// names and paths the node's last row had are that row's where they are the same
    /// (`StoredReportReader`).
    public static func decode(
        _ bytes: [UInt8], of node: NodeName, reading reader: inout StoredReportReader
    ) throws(EncodingError) -> (pairs: [Report.Pair], readings: [SketchReading]) {
        var readings: [SketchReading] = []
        var memory: RowMemory? = reader.lastRows.removeValue(forKey: node) ?? RowMemory()
        defer { reader.lastRows[node] = memory }
        let pairs = try decode(bytes, memory: &memory) { flags, range, returned throws(EncodingError) in
            var reading = SketchReading.none
            if let range, flags & sketchFlags == flagCompactSketch {
                if returned {
                    reading = bytes.withUnsafeBufferPointer {
                        reader.sketches.read(compact: UnsafeBufferPointer(rebasing: $0[range]))
                    }
                }
                // A sketch that reads is whole; any other (and one no probe needed) must expand.
                if !reading.isValid {
                    do {
                        var scratch: [UInt8] = []
                        _ = try bytes.withUnsafeBufferPointer { (buffer) throws(SketchError) in
                            try SketchCompaction.expand(UnsafeBufferPointer(rebasing: buffer[range]), into: &scratch)
                        }
                    } catch {
                        throw EncodingError("sketch: \(error)")
                    }
                }
            } else if let range, returned {
                reading = reader.sketches.read(try sketch(bytes[range], flags: flags, form: .expanded))
            }
            readings.append(reading)
            return nil
        }
        return (pairs, readings)
    }

    /// A stored sketch as a pair carries it.
    private static func sketch(_ stored: ArraySlice<UInt8>, flags: UInt8, form: SketchForm) throws(EncodingError) -> WireSketch {
        switch flags & sketchFlags {
        case flagCompactSketch:
            switch form {
            case .compact: return .compact(stored)
            case .expanded:
                do { return .bytes(try SketchCompaction.expand(Array(stored))) } catch {
                    throw EncodingError("sketch: \(error)")
                }
            }
        case flagRawSketch: return .bytes(Array(stored))
        default: return .text(String(decoding: stored, as: UTF8.self))
        }
    }

    /// Decodes the pairs, handing each pair's stored sketch (its flags, where its bytes lie, and
    /// whether any probe returned) to `sketch`, which says what the pair carries. With `memory`
    /// (the node's last row's), the names are that row's when their table is the same bytes, and a
    /// path equal to the last one at its place is that array; `memory` is then this row's.
    private static func decode(
        _ bytes: [UInt8], memory: inout RowMemory?,
        sketch: (_ flags: UInt8, _ stored: Range<Int>?, _ returned: Bool) throws(EncodingError) -> WireSketch?
    ) throws(EncodingError) -> [Report.Pair] {
        var reader = ByteReader(bytes)
        guard try reader.byte() == formatVersion else {
            throw EncodingError("unknown pairs format \(bytes[0])")
        }
        let nameCount = try reader.count(limit: bytes.count)
        let namesStart = reader.offset
        for _ in 0..<nameCount { _ = try reader.skip(try reader.count(limit: 64)) }
        let namesTable = bytes[namesStart..<reader.offset]
        let names: [String]
        let nodeNames: [NodeName?]
        let switchNames: [SwitchName?]
        if let memory, memory.namesTable.elementsEqual(namesTable) {
            (names, nodeNames, switchNames) = (memory.names, memory.nodeNames, memory.switchNames)
        } else {
            var table = ByteReader(bytes, in: namesStart..<reader.offset)
            var read: [String] = []
            read.reserveCapacity(nameCount)
            for _ in 0..<nameCount {
                let length = try table.count(limit: 64)
                read.append(String(decoding: try table.bytes(length), as: UTF8.self))
            }
            names = read
            // Each name checked as a node and a switch name once, not once per pair that names it.
            nodeNames = names.map(NodeName.init)
            switchNames = names.map(SwitchName.init)
            if memory != nil {
                memory = RowMemory(
                    namesTable: Array(namesTable), names: names, nodeNames: nodeNames, switchNames: switchNames, paths: [])
            }
        }
        func endpoint() throws(EncodingError) -> EndpointID {
            let index = try reader.count(limit: names.count)
            let rail = try reader.count(limit: EndpointID.rails.upperBound + 1)
            guard let nodeName = nodeNames[index], let id = EndpointID(node: nodeName, rail: rail) else {
                throw EncodingError("'\(names[index])/\(rail)' is not an endpoint id")
            }
            return id
        }
        let pairCount = try reader.count(limit: Report.maxPairs + 1)
        var pairs: [Report.Pair] = []
        pairs.reserveCapacity(pairCount)
        let lastPaths = memory?.paths
        var rowPaths: [[SwitchName]?] = []
        if memory != nil { rowPaths.reserveCapacity(pairCount) }
        defer { memory?.paths = rowPaths }
        for pairIndex in 0..<pairCount {
            let src = try endpoint()
            let dst = try endpoint()
            let sent = try reader.zigzag()
            let lost = try reader.zigzag()
            let errors = try reader.zigzag()
            // What report validation allows (the engine relies on it); anything else is damage.
            guard (0...Report.maxProbesPerPair).contains(sent), (0...sent).contains(lost), errors >= 0 else {
                throw EncodingError("probe counts sent \(sent), lost \(lost), errors \(errors) out of range")
            }
            let flags = try reader.byte()
            guard flags & ~(sketchFlags | flagPath) == 0, (flags & sketchFlags).nonzeroBitCount <= 1 else {
                throw EncodingError("bad pair flags \(flags)")
            }
            var stored: Range<Int>?
            if flags & sketchFlags != 0 {
                let length = try reader.count(limit: bytes.count)
                stored = try reader.skip(length)
            }
            let rttMicros = try sketch(flags, stored, sent > lost)
            var path: [SwitchName]?
            if flags & flagPath != 0 {
                let count = try reader.count(limit: 9)
                let last = lastPaths.flatMap { pairIndex < $0.count ? $0[pairIndex] : nil }
                var same = last?.count == count
                var switches: [SwitchName] = []
                for place in 0..<count {
                    let index = try reader.count(limit: names.count)
                    guard let switchName = switchNames[index] else {
                        throw EncodingError("'\(names[index])' is not a switch name")
                    }
                    if same, let last, last[place] == switchName { continue }
                    if same, let last {  // differs here: the new array starts with what agreed
                        same = false
                        switches = Array(last[..<place])
                    }
                    switches.reserveCapacity(count)
                    switches.append(switchName)
                }
                path = same ? last : switches
            }
            if memory != nil { rowPaths.append(path) }
            pairs.append(
                Report.Pair(
                    src: src, dst: dst, sent: sent, lost: lost, errors: errors, rttMicros: rttMicros, path: path)
            )
        }
        guard reader.isAtEnd else {
            throw EncodingError("\(bytes.count - reader.offset) bytes after the last pair")
        }
        return pairs
    }
}

/// What decoding a replay's rows keeps from one row to the next (one per thread): the sketch
/// reader, and each node's names and paths from its last row, which its next row shares where
/// they are the same (a node reports the same peers and routes every window: no names read and
/// checked again, no array per path per row, and the engine, which matches a report's routes
/// against the last one's, finds the very arrays).
public struct StoredReportReader {
    public var sketches = PairSketchReader()
    /// What each node's last row left.
    var lastRows: [NodeName: RowMemory] = [:]

    public init() {}
}

/// What a node's last decoded row leaves for its next: its names table (the bytes, and the names
/// read and checked) and its paths by pair.
struct RowMemory {
    var namesTable: [UInt8] = []
    var names: [String] = []
    var nodeNames: [NodeName?] = []
    var switchNames: [SwitchName?] = []
    var paths: [[SwitchName]?] = []
}

/// Why stored bytes could not be decoded.
public struct EncodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

func appendZigzag(_ value: Int64, to bytes: inout [UInt8]) {
    appendVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)), to: &bytes)
}

/// Reads varints and byte runs from a buffer, failing (not trapping) on truncation.
struct ByteReader {
    private let bytes: [UInt8]
    private(set) var offset: Int
    /// Where reading stops: the end of the bytes, or of the range given.
    private let end: Int

    init(_ bytes: [UInt8]) { self.init(bytes, in: bytes.indices) }

    /// Reads `range` of `bytes` only (a nested message, in place); offsets stay those of `bytes`.
    init(_ bytes: [UInt8], in range: Range<Int>) {
        self.bytes = bytes
        offset = range.lowerBound
        end = range.upperBound
    }

    var isAtEnd: Bool { offset == end }

    mutating func byte() throws(EncodingError) -> UInt8 {
        guard offset < end else { throw EncodingError("truncated at byte \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    @inline(__always)
    mutating func varint() throws(EncodingError) -> UInt64 {
        // One byte: nearly every value the log holds (indexes, rails, counts, flags, lengths).
        if offset < end, bytes[offset] < 0x80 {
            offset &+= 1
            return UInt64(bytes[offset &- 1])
        }
        return try longVarint()
    }

    private mutating func longVarint() throws(EncodingError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let next = try byte()
            guard shift < 63 || next <= 1 else { throw EncodingError("varint too long at byte \(offset)") }
            value |= UInt64(next & 0x7F) << shift
            if next & 0x80 == 0 { return value }
            shift += 7
        }
    }

    /// A varint that must be below `limit`.
    @inline(__always)
    mutating func count(limit: Int) throws(EncodingError) -> Int {
        let value = try varint()
        guard value < UInt64(limit) else {
            throw EncodingError("value \(value) at byte \(offset) over \(limit - 1)")
        }
        return Int(value)
    }

    mutating func zigzag() throws(EncodingError) -> Int {
        let raw = try varint()
        let value = Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
        guard let result = Int(exactly: value) else { throw EncodingError("integer out of range") }
        return result
    }

    /// Where the next `count` bytes lie, passed over.
    mutating func skip(_ count: Int) throws(EncodingError) -> Range<Int> {
        guard count <= end - offset else { throw EncodingError("truncated at byte \(offset)") }
        defer { offset += count }
        return offset..<(offset + count)
    }

    mutating func bytes(_ count: Int) throws(EncodingError) -> ArraySlice<UInt8> {
        guard count <= end - offset else { throw EncodingError("truncated at byte \(offset)") }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }
}
