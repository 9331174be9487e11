// A lossless re-encoding of DDSketch protobuf bytes for the event log: the bin counts, which the wire
// carries as packed doubles (8 bytes each, wire-v1 §4), are whole numbers, so they are stored as
// varints (1–2 bytes each) and expanded back to the very same protobuf bytes on read. Everything
// else in the message is copied as it is. `compact` only answers when `expand` gives back the
// input byte for byte, which it ensures piece by piece (every varint as `appendVarint` writes it,
// every count the double its value makes); otherwise the caller stores the protobuf bytes raw.

/// Compacts and expands DDSketch protobuf messages (wire-v1 §4) without changing a byte of them.
///
/// Compact form: a sequence of the message's top-level fields, each its tag (as a varint) then
/// - a `Store` (fields 2 and 3, length-delimited): the number of its fields, then each field's tag and
///   - `contiguousBinCounts` (field 2, packed doubles): the number of counts, each as a varint;
///   - any other field: its value as the wire carried it (varint, 8 or 4 bytes, or length + bytes);
/// - any other field: its value as the wire carried it.
enum SketchCompaction {
    private static let wireVarint: UInt64 = 0
    private static let wireFixed64: UInt64 = 1
    private static let wireLengthDelimited: UInt64 = 2
    private static let wireFixed32: UInt64 = 5
    /// Counts up to 2^53 are exact in a double.
    private static let maxExactCount = Double(1 << 53)

    /// The compact form, or nil when the message is not one this form can reproduce exactly.
    static func compact(_ message: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        return compact(message, appendingTo: &out) == nil ? nil : out
    }

    /// Appends the compact form to `out` and returns how many bytes that took; nil, with `out` as it
    /// was, when the message is not one this form can reproduce exactly. Reads the message in place.
    static func compact(_ message: [UInt8], appendingTo out: inout [UInt8]) -> Int? {
        let start = out.count
        var reader = ByteReader(message)
        out.reserveCapacity(start + message.count / 2 + 8)
        do {
            while !reader.isAtEnd {
                let tag = try reader.varint()
                appendVarint(tag, to: &out)
                let field = tag >> 3
                let wireType = tag & 7
                if wireType == wireLengthDelimited, field == 2 || field == 3 {
                    let length = try reader.count(limit: message.count + 1)
                    let storeStart = reader.offset
                    _ = try reader.bytes(length)
                    var store = ByteReader(message, in: storeStart..<reader.offset)
                    guard
                        appendVarintPrefixed(to: &out, { try? compactStore(&store, appendingTo: &$0) }),
                        !store.sawNonMinimalVarint
                    else {
                        out.removeSubrange(start...)
                        return nil
                    }
                } else {
                    try copyValue(wireType: wireType, from: &reader, to: &out)
                }
            }
        } catch {
            out.removeSubrange(start...)
            return nil
        }
        // Only a form that gives back exactly these bytes is kept: expanding writes every varint
        // minimal (a store's length too, which then equals the original's), and every count as
        // the double of its value (so -0.0 and fractions were refused above). Checked in full
        // where assertions run (the tests).
        guard !reader.sawNonMinimalVarint else {
            out.removeSubrange(start...)
            return nil
        }
        assert((try? expand(Array(out[start...]))) == message, "compaction must round-trip")
        return out.count - start
    }

    /// The protobuf bytes back from the compact form.
    static func expand(_ compact: [UInt8]) throws(EncodingError) -> [UInt8] {
        var reader = ByteReader(compact)
        var out: [UInt8] = []
        out.reserveCapacity(compact.count * 3)
        while !reader.isAtEnd {
            let tag = try reader.varint()
            appendVarint(tag, to: &out)
            let field = tag >> 3
            let wireType = tag & 7
            if wireType == wireLengthDelimited, field == 2 || field == 3 {
                let store = try expandStore(&reader, limit: compact.count)
                appendVarint(UInt64(store.count), to: &out)
                out += store
            } else {
                try copyValue(wireType: wireType, from: &reader, to: &out)
            }
        }
        return out
    }

    /// The value of a bin count's double when it is a whole number from 0 to 2^53 (and not -0.0):
    /// the doubles that `Double(value)` gives back bit for bit. Read from the bits, without
    /// floating point: this runs for every bin of every sketch stored.
    @inline(__always)
    static func wholeCount(bits: UInt64) -> UInt64? {
        if bits == 0 { return 0 }
        if bits == maxExactCount.bitPattern { return 1 << 53 }
        // The sign bit makes the exponent over 1023 + 52 too, as do infinities and NaNs; a
        // subnormal's is below 0.
        let exponent = Int(bits >> 52) - 1023
        guard (0...52).contains(exponent) else { return nil }
        let fractionBits = UInt64(52 - exponent)
        let mantissa = bits & (1 << 52 - 1)
        guard mantissa & (1 << fractionBits - 1) == 0 else { return nil }
        return (mantissa | 1 << 52) >> fractionBits
    }

    /// Appends a store's fields in compact form; returns their number (the form's prefix), or nil
    /// when a field cannot be reproduced exactly (the caller then drops what was appended).
    private static func compactStore(
        _ reader: inout ByteReader, appendingTo out: inout [UInt8]
    ) throws(EncodingError) -> UInt64? {
        var fieldCount: UInt64 = 0
        while !reader.isAtEnd {
            let tag = try reader.varint()
            appendVarint(tag, to: &out)
            fieldCount += 1
            guard tag == (2 << 3 | wireLengthDelimited) else {
                try copyValue(wireType: tag & 7, from: &reader, to: &out)
                continue
            }
            let length = try reader.count(limit: Int(Int32.max))
            guard length % 8 == 0 else { return nil }
            let packed = try reader.bytes(length)
            appendVarint(UInt64(length / 8), to: &out)
            // The counts' varints are written into a scratch buffer (at most 8 bytes each, since a
            // count is at most 2^53) and appended at once.
            let valid = packed.withUnsafeBytes { raw -> Bool in
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: raw.count) { scratch -> Bool in
                    var written = 0
                    for offset in stride(from: 0, to: raw.count, by: 8) {
                        let bits = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                        guard var rest = wholeCount(bits: bits) else { return false }
                        while rest >= 0x80 {
                            scratch[written] = UInt8(truncatingIfNeeded: rest) | 0x80
                            written &+= 1
                            rest >>= 7
                        }
                        scratch[written] = UInt8(rest)
                        written &+= 1
                    }
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[..<written]))
                    return true
                }
            }
            guard valid else { return nil }
        }
        return fieldCount
    }

    private static func expandStore(_ reader: inout ByteReader, limit: Int) throws(EncodingError) -> [UInt8] {
        let fieldCount = try reader.count(limit: limit + 1)
        var out: [UInt8] = []
        out.reserveCapacity(limit * 8)  // a count's byte back to its double: at most 8 times as long
        for _ in 0..<fieldCount {
            let tag = try reader.varint()
            appendVarint(tag, to: &out)
            if tag == (2 << 3 | wireLengthDelimited) {
                let count = try reader.count(limit: limit + 1)
                appendVarint(UInt64(count) * 8, to: &out)
                for _ in 0..<count {
                    let value = try reader.varint()
                    guard value <= UInt64(maxExactCount) else {
                        throw EncodingError("bin count \(value) over 2^53")
                    }
                    withUnsafeBytes(of: Double(value).bitPattern.littleEndian) { out.append(contentsOf: $0) }
                }
            } else {
                try copyValue(wireType: tag & 7, from: &reader, to: &out)
            }
        }
        return out
    }

    /// Copies one field's value as the wire carries it.
    private static func copyValue(
        wireType: UInt64, from reader: inout ByteReader, to out: inout [UInt8]
    ) throws(EncodingError) {
        switch wireType {
        case wireVarint: appendVarint(try reader.varint(), to: &out)
        case wireFixed64: out += try reader.bytes(8)
        case wireFixed32: out += try reader.bytes(4)
        case wireLengthDelimited:
            let length = try reader.count(limit: Int(Int32.max))
            appendVarint(UInt64(length), to: &out)
            out += try reader.bytes(length)
        default: throw EncodingError("protobuf wire type \(wireType)")
        }
    }
}
