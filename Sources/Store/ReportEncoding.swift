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
        var layout: [UInt32] = []
        var numbers: [(sent: Int, lost: Int, errors: Int, sketch: WireSketch?)] = []
        let names = try bytes.withUnsafeBufferPointer { (buffer) throws(EncodingError) -> StoredNames in
            let table = try scan(buffer, layout: &layout) { stored throws(EncodingError) in
                var rttMicros: WireSketch?
                if let range = stored.sketch { rttMicros = try sketch(bytes[range], flags: stored.flags, form: sketches) }
                numbers.append((stored.sent, stored.lost, stored.errors, rttMicros))
            }
            return try StoredNames(buffer, table: table.bytes, count: table.count)
        }
        let routes = try routes(layout, names: names)
        return zip(routes, numbers).map { route, numbers in
            Report.Pair(
                src: route.src, dst: route.dst, sent: numbers.sent, lost: numbers.lost, errors: numbers.errors,
                rttMicros: numbers.sketch, path: route.path)
        }
    }

    /// The pairs of `node`'s row back from `bytes` as a replay's engine takes them: their routes,
    /// and their numbers with their sketches read instead of kept. A compact sketch is read where it
    /// lies, and one that does not expand is damage (the log holds only what compaction made): it
    /// fails the row, as it does when expanded. While the node's rows name the same pairs and
    /// routes, they share one roster (`StoredReportReader`).
    /// `bytes` need only last the call: a replay passes SQLite's own buffer, not a copy.
    public static func decode(
        _ bytes: UnsafeBufferPointer<UInt8>, of node: NodeName, reading reader: inout StoredReportReader
    ) throws(EncodingError) -> (roster: PairRoster, measures: [PairMeasure]) {
        let last = reader.lastRows[node]
        var measures: [PairMeasure] = []
        // As many as the node's last row had, nearly always: one allocation, not one per doubling.
        measures.reserveCapacity(last?.roster.routes.count ?? 0)
        var layout: [UInt32] = []
        swap(&layout, &reader.layout)
        defer { swap(&layout, &reader.layout) }
        layout.removeAll(keepingCapacity: true)
        let table = try scan(bytes, layout: &layout) { stored throws(EncodingError) in
            let returned = stored.sent > stored.lost
            var reading = SketchReading.none
            if let range = stored.sketch, stored.flags & sketchFlags == flagCompactSketch {
                if returned { reading = reader.sketches.read(compact: UnsafeBufferPointer(rebasing: bytes[range])) }
                // A sketch that reads is whole; any other (and one no probe needed) must expand.
                if !reading.isValid {
                    do {
                        var scratch: [UInt8] = []
                        _ = try SketchCompaction.expand(UnsafeBufferPointer(rebasing: bytes[range]), into: &scratch)
                    } catch {
                        throw EncodingError("sketch: \(error)")
                    }
                }
            } else if let range = stored.sketch, returned {
                reading = reader.sketches.read(try sketch(Array(bytes[range])[...], flags: stored.flags, form: .expanded))
            }
            measures.append(PairMeasure(sent: stored.sent, lost: stored.lost, sketch: reading))
        }
        let namesTable = UnsafeBufferPointer(rebasing: bytes[table.bytes])
        let sameNames = last.map { equalBytes($0.namesTable, namesTable) } ?? false
        if let last, sameNames, last.layout.withUnsafeBufferPointer({ equalBytes(layout, $0) }) {
            return (last.roster, measures)
        }
        let names = sameNames ? last!.names : try StoredNames(bytes, table: table.bytes, count: table.count)
        let roster = PairRoster(try routes(layout, names: names))
        reader.lastRows[node] = RowMemory(namesTable: Array(namesTable), names: names, layout: layout, roster: roster)
        layout = []  // now the node's: the next row gets a buffer of its own
        return (roster, measures)
    }

    /// `decode(_:of:reading:)` of bytes held in an array.
    public static func decode(
        _ bytes: [UInt8], of node: NodeName, reading reader: inout StoredReportReader
    ) throws(EncodingError) -> (roster: PairRoster, measures: [PairMeasure]) {
        try bytes.withUnsafeBufferPointer { (buffer) throws(EncodingError) in
            try decode(buffer, of: node, reading: &reader)
        }
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

    /// A pair as stored, but for its names: its probe counts, and how and where its sketch is.
    private struct StoredNumbers {
        let sent: Int
        let lost: Int
        let errors: Int
        let flags: UInt8
        let sketch: Range<Int>?
    }

    /// Walks the encoding and checks it. Each pair's names, as indexes into the names table, and
    /// its rails go to `layout` (source name and rail, destination name and rail, then its path's
    /// switch count plus one, 0 for none, and the switches); its numbers go to `body`. Returns
    /// where the names table lies and how many names it has.
    private static func scan(
        _ bytes: UnsafeBufferPointer<UInt8>, layout: inout [UInt32],
        _ body: (StoredNumbers) throws(EncodingError) -> Void
    ) throws(EncodingError) -> (bytes: Range<Int>, count: Int) {
        var reader = ByteReader(bytes)
        guard try reader.byte() == formatVersion else {
            throw EncodingError("unknown pairs format \(bytes[0])")
        }
        let nameCount = try reader.count(limit: bytes.count)
        let namesStart = reader.offset
        for _ in 0..<nameCount { _ = try reader.skip(try reader.count(limit: StoredNames.maxLength + 1)) }
        let namesEnd = reader.offset
        let pairCount = try reader.count(limit: Report.maxPairs + 1)
        layout.reserveCapacity(layout.count + pairCount * 8)
        for _ in 0..<pairCount {
            for _ in 0..<2 {  // source, destination
                layout.append(UInt32(try reader.count(limit: nameCount)))
                layout.append(UInt32(try reader.count(limit: EndpointID.rails.upperBound + 1)))
            }
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
            var sketch: Range<Int>?
            if flags & sketchFlags != 0 {
                let length = try reader.count(limit: bytes.count)
                sketch = try reader.skip(length)
            }
            try body(StoredNumbers(sent: sent, lost: lost, errors: errors, flags: flags, sketch: sketch))
            if flags & flagPath != 0 {
                let count = try reader.count(limit: 9)  // at most 8 switches, as report validation allows
                layout.append(UInt32(count + 1))
                for _ in 0..<count { layout.append(UInt32(try reader.count(limit: nameCount))) }
            } else {
                layout.append(0)
            }
        }
        guard reader.isAtEnd else {
            throw EncodingError("\(bytes.count - reader.offset) bytes after the last pair")
        }
        return (namesStart..<namesEnd, nameCount)
    }

    /// The routes a layout (`scan`) names.
    private static func routes(_ layout: [UInt32], names: StoredNames) throws(EncodingError) -> [PairRoster.Route] {
        var routes: [PairRoster.Route] = []
        var at = 0
        func endpoint() throws(EncodingError) -> EndpointID {
            let (index, rail) = (Int(layout[at]), Int(layout[at + 1]))
            at += 2
            guard let node = names.nodes[index], let id = EndpointID(node: node, rail: rail) else {
                throw EncodingError("'\(names.texts[index])/\(rail)' is not an endpoint id")
            }
            return id
        }
        while at < layout.count {
            let src = try endpoint()
            let dst = try endpoint()
            let switchesPlusOne = Int(layout[at])
            at += 1
            var path: [SwitchName]?
            if switchesPlusOne > 0 {
                var switches: [SwitchName] = []
                switches.reserveCapacity(switchesPlusOne - 1)
                for _ in 1..<switchesPlusOne {
                    let index = Int(layout[at])
                    at += 1
                    guard let name = names.switches[index] else {
                        throw EncodingError("'\(names.texts[index])' is not a switch name")
                    }
                    switches.append(name)
                }
                path = switches
            }
            routes.append(PairRoster.Route(src: src, dst: dst, path: path))
        }
        return routes
    }
}

/// A row's names table read: each name as text, and checked once as a node and as a switch name
/// (not once per pair that names it).
struct StoredNames {
    static let maxLength = 63
    let texts: [String]
    let nodes: [NodeName?]
    let switches: [SwitchName?]

    /// Reads `count` names from where `table` lies in `bytes` (`scan` checked their lengths).
    init(_ bytes: UnsafeBufferPointer<UInt8>, table: Range<Int>, count: Int) throws(EncodingError) {
        var reader = ByteReader(bytes, in: table)
        var texts: [String] = []
        texts.reserveCapacity(count)
        for _ in 0..<count {
            let length = try reader.count(limit: Self.maxLength + 1)
            texts.append(String(decoding: try reader.bytes(length), as: UTF8.self))
        }
        self.texts = texts
        nodes = texts.map(NodeName.init)
        switches = texts.map(SwitchName.init)
    }
}

/// What decoding a replay's rows keeps from one row to the next (one per thread): the sketch
/// reader, and each node's names and routes from its last row. A node reports the same peers and
/// routes every window: its next row that names them alike gets the same roster, with no names
/// read and checked again, no route built, and the engine, which matches a report's routes
/// against the last one's, knows it at once.
public struct StoredReportReader {
    public var sketches = PairSketchReader()
    /// What each node's last row left.
    var lastRows: [NodeName: RowMemory] = [:]
    /// The layout (`PairsEncoding.scan`) of the row being decoded, its capacity kept between rows.
    var layout: [UInt32] = []

    public init() {}
}

/// What a node's last decoded row leaves for its next: its names table (the bytes, and the names
/// read), its layout, and the roster they make.
struct RowMemory {
    let namesTable: [UInt8]
    let names: StoredNames
    let layout: [UInt32]
    let roster: PairRoster
}

/// Whether two runs of plain values hold the same bytes (memcmp: the generic comparison goes
/// element by element).
private func equalBytes<T: BitwiseCopyable>(_ a: [T], _ b: UnsafeBufferPointer<T>) -> Bool {
    a.count == b.count
        && a.withUnsafeBytes { a in a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 }
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
    private let bytes: UnsafeBufferPointer<UInt8>
    private(set) var offset: Int
    /// Where reading stops: the end of the bytes, or of the range given.
    private let end: Int

    /// `bytes` must outlast the reader.
    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.init(bytes, in: 0..<bytes.count) }

    /// Reads `range` of `bytes` only (a nested message, in place); offsets stay those of `bytes`.
    init(_ bytes: UnsafeBufferPointer<UInt8>, in range: Range<Int>) {
        self.bytes = bytes
        offset = range.lowerBound
        end = range.upperBound
    }

    var isAtEnd: Bool { offset == end }

    @inline(__always)
    mutating func byte() throws(EncodingError) -> UInt8 {
        guard offset < end else { throw EncodingError("truncated at byte \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    @inline(__always)
    mutating func varint() throws(EncodingError) -> UInt64 {
        // One byte: nearly every value the log holds (indexes, rails, counts, flags, lengths);
        // two: probes sent in a window past 63 (zigzag), sketches past 127 bytes.
        if offset < end, bytes[offset] < 0x80 {
            offset &+= 1
            return UInt64(bytes[offset &- 1])
        }
        if offset &+ 1 < end, bytes[offset &+ 1] < 0x80 {
            offset &+= 2
            return UInt64(bytes[offset &- 2] & 0x7F) | UInt64(bytes[offset &- 1]) << 7
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

    @inline(__always)
    mutating func zigzag() throws(EncodingError) -> Int {
        let raw = try varint()
        let value = Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
        guard let result = Int(exactly: value) else { throw EncodingError("integer out of range") }
        return result
    }

    /// Where the next `count` bytes lie, passed over.
    @inline(__always)
    mutating func skip(_ count: Int) throws(EncodingError) -> Range<Int> {
        guard count <= end - offset else { throw EncodingError("truncated at byte \(offset)") }
        defer { offset += count }
        return offset..<(offset + count)
    }

    mutating func bytes(_ count: Int) throws(EncodingError) -> Slice<UnsafeBufferPointer<UInt8>> {
        guard count <= end - offset else { throw EncodingError("truncated at byte \(offset)") }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }
}
