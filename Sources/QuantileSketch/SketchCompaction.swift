// A lossless re-encoding of DDSketch protobuf bytes for the event log: the bin counts, which the wire
// carries as packed doubles (8 bytes each, wire-v1 §4), are whole numbers, so they are stored as
// varints (1–2 bytes each) and expanded back to the very same protobuf bytes on read. Everything
// else in the message is copied as it is. `compact` only answers when `expand` gives back the
// input byte for byte, which it ensures piece by piece (every varint as written minimally, every
// count the double its value makes); otherwise the caller stores the protobuf bytes raw.
// Expansion writes into a buffer the caller keeps: a replay expands millions of sketches.

/// Compacts and expands DDSketch protobuf messages (wire-v1 §4) without changing a byte of them.
///
/// Compact form: a sequence of the message's top-level fields, each its tag (as a varint) then
/// - a `Store` (fields 2 and 3, length-delimited): the number of its fields, then each field's tag and
///   - `contiguousBinCounts` (field 2, packed doubles): the number of counts, each as a varint;
///   - any other field: its value as the wire carried it (varint, 8 or 4 bytes, or length + bytes);
/// - any other field: its value as the wire carried it.
public enum SketchCompaction {
    private static let storeCountsTag: UInt64 = 2 << 3 | WireType.lengthDelimited.rawValue
    /// Counts up to 2^53 are exact in a double.
    private static let maxExactCount: UInt64 = 1 << 53
    private static let what = "compact sketch"

    /// The compact form, or nil when the message is not one this form can reproduce exactly.
    public static func compact(_ message: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        return compact(message, appendingTo: &out) == nil ? nil : out
    }

    /// Appends the compact form to `out` and returns how many bytes that took; nil, with `out` as it
    /// was, when the message is not one this form can reproduce exactly. Reads the message in place.
    public static func compact(_ message: [UInt8], appendingTo out: inout [UInt8]) -> Int? {
        let start = out.count
        out.reserveCapacity(start + message.count / 2 + 8)
        let complete = message.withUnsafeBufferPointer { buffer -> Bool in
            var reader = ProtobufReader(buffer: buffer, start: 0, end: buffer.count)
            do {
                while !reader.isAtEnd {
                    let tag = try reader.readVarint(what)
                    appendVarint(tag, to: &out)
                    if isStore(tag) {
                        var store = try reader.readLengthDelimited(what)
                        guard appendVarintPrefixed(to: &out, { compactStore(&store, appendingTo: &$0) }),
                            !store.sawNonMinimalVarint
                        else { return false }
                    } else {
                        try copyValue(tag: tag, from: &reader) { out.append(contentsOf: $0) }
                    }
                }
            } catch {
                return false
            }
            // Only a form that gives back exactly these bytes is kept: expanding writes every
            // varint minimal (a store's length too, which then equals the original's), and every
            // count as the double of its value (so -0.0 and fractions were refused above).
            return !reader.sawNonMinimalVarint
        }
        guard complete else {
            out.removeSubrange(start...)
            return nil
        }
        assert((try? expand(Array(out[start...]))) == message, "compaction must round-trip")
        return out.count - start
    }

    /// The protobuf bytes back from the compact form.
    public static func expand(_ compact: [UInt8]) throws(SketchError) -> [UInt8] {
        var out: [UInt8] = []
        let length = try compact.withUnsafeBufferPointer { (buffer) throws(SketchError) in
            try expand(buffer, into: &out)
        }
        return Array(out[..<length])
    }

    /// Expands `compact` into the start of `out`, which grows when it is too short and is otherwise
    /// reused, and returns the length of the protobuf bytes. Throws, naming the offset, when the
    /// bytes are not the compact form of anything.
    public static func expand(
        _ compact: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]
    ) throws(SketchError) -> Int {
        // Every compact byte stands for at most 8 (a count's one-byte varint for its double; a
        // store's length takes no more bytes than its field count and its counts save).
        let capacity = 8 &* compact.count &+ 16
        if out.count < capacity { out = [UInt8](repeating: 0, count: max(capacity, 2 &* out.count)) }
        return try out.withUnsafeMutableBufferPointer { (buffer) throws(SketchError) -> Int in
            var writer = Writer(buffer: buffer)
            var reader = ProtobufReader(buffer: compact, start: 0, end: compact.count)
            while !reader.isAtEnd {
                let tag = try reader.readVarint(what)
                try writer.varint(tag)
                if isStore(tag) {
                    try expandStore(&reader, into: &writer)
                } else {
                    try copyValue(tag: tag, from: &reader) { (bytes) throws(SketchError) in try writer.bytes(bytes) }
                }
            }
            return writer.count
        }
    }

    /// The value of a bin count's double when it is a whole number from 0 to 2^53 (and not -0.0):
    /// the doubles that `Double(value)` gives back bit for bit. Read from the bits, without
    /// floating point: this runs for every bin of every sketch stored.
    @inline(__always)
    static func wholeCount(bits: UInt64) -> UInt64? {
        if bits == 0 { return 0 }
        if bits == Double(maxExactCount).bitPattern { return maxExactCount }
        // The sign bit makes the exponent over 1023 + 52 too, as do infinities and NaNs; a
        // subnormal's is below 0.
        let exponent = Int(bits >> 52) - 1023
        guard (0...52).contains(exponent) else { return nil }
        let fractionBits = UInt64(52 - exponent)
        let mantissa = bits & (1 << 52 - 1)
        guard mantissa & (1 << fractionBits - 1) == 0 else { return nil }
        return (mantissa | 1 << 52) >> fractionBits
    }

    /// Whether a top-level tag is a store's (positive or negative values, length-delimited).
    private static func isStore(_ tag: UInt64) -> Bool {
        tag & 7 == WireType.lengthDelimited.rawValue && (tag >> 3 == 2 || tag >> 3 == 3)
    }

    /// Appends a store's fields in compact form; returns their number (the form's prefix), or nil
    /// when a field cannot be reproduced exactly (the caller then drops what was appended).
    private static func compactStore(_ reader: inout ProtobufReader, appendingTo out: inout [UInt8]) -> UInt64? {
        var fieldCount: UInt64 = 0
        do {
            while !reader.isAtEnd {
                let tag = try reader.readVarint(what)
                appendVarint(tag, to: &out)
                fieldCount += 1
                guard tag == storeCountsTag else {
                    try copyValue(tag: tag, from: &reader) { out.append(contentsOf: $0) }
                    continue
                }
                let packed = try reader.readLengthDelimited(what)
                let length = packed.end - packed.position
                guard length % 8 == 0 else { return nil }
                appendVarint(UInt64(length / 8), to: &out)
                // The counts' varints are written into a scratch buffer (at most 8 bytes each, since
                // a count is at most 2^53) and appended at once.
                let raw = UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: packed.buffer[packed.position..<packed.end]))
                let valid = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: length) { scratch -> Bool in
                    var writer = Writer(buffer: scratch)
                    for offset in stride(from: 0, to: length, by: 8) {
                        let bits = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                        guard let count = wholeCount(bits: bits) else { return false }
                        writer.putVarint(count)  // room: each count's 8 bytes hold its varint
                    }
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[..<writer.count]))
                    return true
                }
                guard valid else { return nil }
            }
        } catch {
            return nil
        }
        return fieldCount
    }

    /// Expands a store: its protobuf length, then its fields, each count's varint back to its double.
    private static func expandStore(_ reader: inout ProtobufReader, into writer: inout Writer) throws(SketchError) {
        let fieldCount = try reader.readVarint(what)
        guard fieldCount <= UInt64(reader.end - reader.position) else {
            throw malformed(what, reader.position, "\(fieldCount) store fields in \(reader.end - reader.position) bytes")
        }
        // The store's length is known once its fields are written: they go after room for the
        // longest length varint it may take, and move back once it is written.
        let lengthAt = writer.count
        try writer.skip(Writer.maxLengthBytes)
        let fieldsAt = writer.count
        for _ in 0..<fieldCount {
            let tag = try reader.readVarint(what)
            try writer.varint(tag)
            guard tag == storeCountsTag else {
                try copyValue(tag: tag, from: &reader) { (bytes) throws(SketchError) in try writer.bytes(bytes) }
                continue
            }
            let count = try reader.readVarint(what)
            guard count <= UInt64(reader.end - reader.position) else {
                throw malformed(what, reader.position, "\(count) bin counts in \(reader.end - reader.position) bytes")
            }
            try writer.varint(count * 8)
            for _ in 0..<count {
                let value = try reader.readVarint(what)
                guard value <= maxExactCount else { throw malformed(what, reader.position, "bin count \(value) over 2^53") }
                try writer.double(Double(value))
            }
        }
        writer.closeGap(lengthAt: lengthAt, fieldsAt: fieldsAt)
    }

    /// Copies one field's value as the wire carries it.
    private static func copyValue(
        tag: UInt64, from reader: inout ProtobufReader, to write: (UnsafeBufferPointer<UInt8>) throws(SketchError) -> Void
    ) throws(SketchError) {
        let start = reader.position
        guard let wireType = WireType(rawValue: tag & 7), wireType != .startGroup, wireType != .endGroup else {
            throw malformed(what, start, "protobuf wire type \(tag & 7)")
        }
        switch wireType {
        case .lengthDelimited:
            let value = try reader.readLengthDelimited(what)
            // The length as read (it was minimal, or `compact` refuses), then the bytes.
            try write(UnsafeBufferPointer(rebasing: reader.buffer[start..<value.end]))
        default:
            try reader.skip(wireType, what)
            try write(UnsafeBufferPointer(rebasing: reader.buffer[start..<reader.position]))
        }
    }

    /// Writes into a buffer of fixed size, failing rather than running past its end.
    private struct Writer {
        /// A store's length varint never needs more: its expansion is under 2^35 bytes.
        static let maxLengthBytes = 5
        let buffer: UnsafeMutableBufferPointer<UInt8>
        private(set) var count = 0

        init(buffer: UnsafeMutableBufferPointer<UInt8>) { self.buffer = buffer }

        private func room(_ needed: Int) throws(SketchError) {
            guard needed <= buffer.count &- count else {
                throw malformed(what, count, "expands past \(buffer.count) bytes")
            }
        }

        mutating func varint(_ value: UInt64) throws(SketchError) {
            try room(10)
            putVarint(value)
        }

        /// A varint where the caller knows there is room for it (at most 10 bytes; 8 for 2^53).
        mutating func putVarint(_ value: UInt64) {
            var rest = value
            while rest >= 0x80 {
                buffer[count] = UInt8(truncatingIfNeeded: rest) | 0x80
                count &+= 1
                rest >>= 7
            }
            buffer[count] = UInt8(rest)
            count &+= 1
        }

        mutating func double(_ value: Double) throws(SketchError) {
            try room(8)
            UnsafeMutableRawPointer(buffer.baseAddress! + count).storeBytes(
                of: value.bitPattern.littleEndian, as: UInt64.self)
            count &+= 8
        }

        mutating func bytes(_ bytes: UnsafeBufferPointer<UInt8>) throws(SketchError) {
            try room(bytes.count)
            guard !bytes.isEmpty else { return }
            (buffer.baseAddress! + count).update(from: bytes.baseAddress!, count: bytes.count)
            count &+= bytes.count
        }

        mutating func skip(_ bytes: Int) throws(SketchError) {
            try room(bytes)
            count &+= bytes
        }

        /// Writes the length of what follows `fieldsAt` at `lengthAt` and moves it back to follow.
        mutating func closeGap(lengthAt: Int, fieldsAt: Int) {
            let length = count - fieldsAt
            count = lengthAt
            putVarint(UInt64(length))  // into the gap kept for it
            let moved = UnsafeMutableRawPointer(buffer.baseAddress! + count)
            moved.copyMemory(from: buffer.baseAddress! + fieldsAt, byteCount: length)
            count &+= length
        }
    }
}

/// Appends what `write` appends, preceded by the varint it returns (a length or a count, known only
/// once written): one byte is kept for it, widened in place when the value is 128 or more. When
/// `write` returns nil, `out` is left as it was and the answer is false.
public func appendVarintPrefixed(to out: inout [UInt8], _ write: (inout [UInt8]) -> UInt64?) -> Bool {
    let start = out.count
    out.append(0)
    guard let value = write(&out) else {
        out.removeSubrange(start...)
        return false
    }
    if value < 0x80 {
        out[start] = UInt8(value)
    } else {
        var prefix: [UInt8] = []
        appendVarint(value, to: &prefix)
        out.replaceSubrange(start..<start + 1, with: prefix)
    }
    return true
}

/// Appends `value` as an unsigned LEB128 varint, written minimally (protobuf's, and the event log's).
public func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
    var rest = value
    while rest >= 0x80 {
        bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
        rest >>= 7
    }
    bytes.append(UInt8(rest))
}
