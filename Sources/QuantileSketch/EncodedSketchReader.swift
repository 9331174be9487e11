// Count and quantiles read straight from an encoded sketch, without building one: the
// correlator's hot path (one sketch per probed pair per window, millions in a window of a large
// fleet). The canonical form that agents write — the default mapping, one contiguous run of
// positive counts, an optional zero count — is read in place from the base64 text; anything else
// (map-form bins, negative values, other mappings, repeated fields, and every malformed input) is
// decoded in full by `QuantileSketch(decoding:)`. Either way the answers and the errors are
// exactly those of decoding the sketch and asking it for its quantiles.

import Foundation

/// Reads encoded sketches one after another, reusing its buffers.
public struct EncodedSketchReader: Sendable {
    /// The quantiles asked of every sketch, in the order the answers come.
    public let quantiles: [Double]
    /// The quantiles in increasing order, and where each one's answer goes.
    private let ascending: [Double]
    private let order: [Int]
    private let maxBins: Int
    private let mapping = IndexMapping.default
    /// The decoded protobuf bytes of the last sketch read in place (one byte of slack at the end).
    private var bytes: [UInt8] = []
    /// The last sketch's count of values.
    public private(set) var count: UInt64 = 0
    /// The last sketch's answers, in the order of `quantiles`; meaningless when `count` is 0.
    public private(set) var answers: [Double]

    /// The last sketch's answer to `quantiles[index]`.
    public func answer(_ index: Int) -> Double { answers[index] }

    public init(quantiles: [Double], maxBins: Int = QuantileSketch.defaultMaxBins) throws(SketchError) {
        for q in quantiles where !(q >= 0 && q <= 1) { throw SketchError.invalidQuantile(q) }
        guard maxBins >= 1 else { throw SketchError.invalidBinLimit(maxBins) }
        self.quantiles = quantiles
        self.order = quantiles.indices.sorted { quantiles[$0] < quantiles[$1] }
        self.ascending = order.map { quantiles[$0] }
        self.maxBins = maxBins
        self.answers = [Double](repeating: 0, count: quantiles.count)
    }

    /// Reads a sketch carried as base64 (RFC 4648, with padding), as a report's `rttMicros` does.
    /// Returns false when the text is not base64; throws what decoding the bytes would throw.
    public mutating func read(base64 text: String) throws(SketchError) -> Bool {
        let needed = text.utf8.count / 4 * 3 + 1
        if bytes.count < needed { bytes = [UInt8](repeating: 0, count: max(needed, 2 * bytes.count)) }
        let length = text.utf8.withContiguousStorageIfAvailable { utf8 in
            bytes.withUnsafeMutableBufferPointer { StrictBase64.decode(utf8, into: $0) }
        }
        if let length = length ?? nil {
            let inPlace = bytes.withUnsafeBufferPointer { readCanonical(UnsafeBufferPointer(rebasing: $0[..<length])) }
            if !inPlace { try readInFull(Array(bytes[..<length])) }
            return true
        }
        // Not strict base64 (or not contiguous): Foundation's decoder has the last word.
        guard let data = Data(base64Encoded: text) else { return false }
        try readInFull(Array(data))
        return true
    }

    /// Reads a sketch's protobuf bytes.
    public mutating func read(bytes: UnsafeBufferPointer<UInt8>) throws(SketchError) {
        if readCanonical(bytes) { return }
        try readInFull(Array(bytes))
    }

    private mutating func readInFull(_ bytes: [UInt8]) throws(SketchError) {
        let sketch = try QuantileSketch(decoding: bytes, maxBins: maxBins)
        count = sketch.count
        guard let all = try sketch.quantiles(quantiles) else { return }
        for index in all.indices { answers[index] = all[index] }
    }

    /// Reads the canonical form in place; false, with nothing changed, when the bytes are anything
    /// else or anything about them would make the full decoder throw.
    private mutating func readCanonical(_ buffer: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let sketch = CanonicalSketch(buffer, maxBins: maxBins) else { return false }
        count = sketch.count
        guard sketch.count > 0, !order.isEmpty else { return true }
        // The same walk as QuantileSketch.quantiles: zeros first, then the positive bins by key.
        let counts = UnsafeRawPointer(buffer.baseAddress!) + sketch.countsOffset
        let last = Double(sketch.count - 1)
        let wanted = order.count
        answers.withUnsafeMutableBufferPointer { answers in
            var next = 0
            var rank = ascending[0] * last
            var seen = sketch.zeroCount
            while next < wanted, Double(seen) > rank {
                answers[order[next]] = 0
                next += 1
                if next < wanted { rank = ascending[next] * last }
            }
            var element = 0
            // The counts add up to the sketch's count and the last rank is below it: the walk ends.
            while next < wanted {
                let bits = counts.loadUnaligned(fromByteOffset: 8 &* element, as: UInt64.self)
                seen &+= SmallCount.value(UInt64(littleEndian: bits))!  // CanonicalSketch checked it
                if Double(seen) > rank {
                    let value = mapping.value(ofKey: sketch.firstKey &+ element)
                    repeat {
                        answers[order[next]] = value
                        next += 1
                        if next < wanted { rank = ascending[next] * last }
                    } while next < wanted && Double(seen) > rank
                }
                element &+= 1
            }
        }
        return true
    }
}

/// Where the parts of a canonically encoded sketch lie, every count checked as the full decoder
/// checks it.
private struct CanonicalSketch {
    var countsOffset = 0
    var firstKey = 0
    var zeroCount: UInt64 = 0
    var count: UInt64 = 0

    /// Nil unless the bytes are, in this order: the mapping message holding exactly the default
    /// gamma; optionally the positive store holding one packed run of at most `maxBins` (and 1,024)
    /// counts and optionally its index offset; optionally the zero count. Every count a whole
    /// number below 2^52 (`SmallCount`), at most 2^53 in all.
    init?(_ buffer: UnsafeBufferPointer<UInt8>, maxBins: Int) {
        let base = UnsafeRawPointer(buffer.baseAddress!)
        let end = buffer.count
        // The mapping: tag, length 9, gamma's tag, gamma.
        guard end >= 11, buffer[0] == 0x0A, buffer[1] == 9, buffer[2] == 0x09,
            Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 3, as: UInt64.self)))
                == IndexMapping.defaultGamma
        else { return nil }
        var position = 11
        var positive: UInt64 = 0
        if position < end && buffer[position] == 0x12 {
            position += 1
            guard let length = Self.varint(buffer, &position), length <= end - position else { return nil }
            let storeEnd = position + length
            guard position < storeEnd, buffer[position] == 0x12 else { return nil }
            position += 1
            guard let packed = Self.varint(buffer, &position), packed <= storeEnd - position, packed % 8 == 0
            else { return nil }
            let elements = packed / 8
            // At most 1,024 counts of at most 2^53: the sum cannot wrap before the check below.
            guard elements <= min(maxBins, 1024) else { return nil }
            countsOffset = position
            for element in 0..<elements {
                let bits = base.loadUnaligned(fromByteOffset: position &+ 8 &* element, as: UInt64.self)
                guard let binCount = SmallCount.value(UInt64(littleEndian: bits)) else { return nil }
                positive &+= binCount
            }
            position += packed
            if position < storeEnd {
                guard buffer[position] == 0x18 else { return nil }
                position += 1
                guard let zigzag = Self.varint(buffer, &position), position == storeEnd else { return nil }
                let bits = UInt32(zigzag)
                firstKey = Int(Int32(bitPattern: (bits >> 1) ^ (0 &- (bits & 1))))
            }
            // Every key of the run fits 32 bits (the decoder checks the last non-zero one).
            guard firstKey + elements - 1 <= Int(Int32.max) else { return nil }
        }
        if position < end && buffer[position] == 0x21 {
            guard end - position >= 9 else { return nil }
            let bits = base.loadUnaligned(fromByteOffset: position + 1, as: UInt64.self)
            guard let value = SmallCount.value(UInt64(littleEndian: bits)) else { return nil }
            zeroCount = value
            position += 9
        }
        guard position == end, positive <= QuantileSketch.maxCount else { return nil }
        count = positive + zeroCount
        guard count <= QuantileSketch.maxCount else { return nil }
    }

    /// A varint of at most 4 bytes (lengths and keys of a canonical sketch); nil otherwise.
    private static func varint(_ buffer: UnsafeBufferPointer<UInt8>, _ position: inout Int) -> Int? {
        var result = 0
        var shift = 0
        while position < buffer.count && shift < 28 {
            let byte = buffer[position]
            position += 1
            result |= Int(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
        }
        return nil
    }
}

/// A count carried as a double, converted without the checks of `Int64(_:)` (traps that are never
/// taken cost a dozen instructions per count on the hot path): a whole number in [+0, 2^52), whose
/// bits order as the numbers do. Anything else (-0, larger counts, fractions, NaN) is nil: the full
/// decoder judges it.
enum SmallCount {
    private static let twoToThe52Bits: UInt64 = 0x4330_0000_0000_0000

    @inline(__always)
    static func value(_ bits: UInt64) -> UInt64? {
        guard bits < twoToThe52Bits else { return nil }
        // Adding 2^52 leaves a double whose ulp is 1: a whole number survives the round trip, and
        // its low bits are then the number itself.
        let shifted = Double(bitPattern: bits) + 4_503_599_627_370_496.0
        guard shifted - 4_503_599_627_370_496.0 == Double(bitPattern: bits) else { return nil }
        return shifted.bitPattern &- twoToThe52Bits
    }
}

/// Strict RFC 4648 base64 with padding: the length a multiple of 4, the standard alphabet, one or
/// two `=` at the end only, unused bits zero. Anything else is refused (and left to Foundation).
/// Strict is canonical: what it accepts is exactly what encoding the decoded bytes gives back.
public enum StrictBase64 {
    /// The bytes of strict base64 `text`; nil for anything else.
    public static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { utf8 -> [UInt8]? in
            var output = [UInt8](repeating: 0, count: utf8.count / 4 * 3 + 1)
            guard let length = output.withUnsafeMutableBufferPointer({ decode(utf8, into: $0) }) else { return nil }
            output.removeLast(output.count - length)
            return output
        }
    }

    /// Four tables of 256 entries, one per character of a quad: each character's 6 bits already
    /// in their place of the quad's 24, or 0x0100_0000 and up for a character outside the alphabet.
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0xFF00_0000, count: 1024)
        for (value, character) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            for position in 0..<4 {
                tables[position * 256 + Int(character)] = UInt32(value) << (18 - 6 * position)
            }
        }
        return tables
    }()

    /// Decodes `text` into `output`, which has room for `text.count / 4 * 3 + 1` bytes; the decoded
    /// length, or nil when the text is not strict base64.
    static func decode(_ text: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableBufferPointer<UInt8>) -> Int? {
        guard text.count % 4 == 0 else { return nil }
        guard !text.isEmpty else { return 0 }
        precondition(output.count >= text.count / 4 * 3 + 1)
        let padding = text[text.count - 1] != UInt8(ascii: "=") ? 0 : text[text.count - 2] != UInt8(ascii: "=") ? 1 : 2
        let quads = text.count / 4
        return tables.withUnsafeBufferPointer { tables -> Int? in
            let t = tables.baseAddress!
            let input = text.baseAddress!
            let out = UnsafeMutableRawPointer(output.baseAddress!)
            var bad: UInt32 = 0
            // Every quad but a padded last one: 24 bits out, written as 4 bytes (one of slack).
            let full = padding == 0 ? quads : quads - 1
            for quad in 0..<full {
                let at = input + 4 &* quad
                let word = t[Int(at[0])] | t[256 &+ Int(at[1])] | t[512 &+ Int(at[2])] | t[768 &+ Int(at[3])]
                bad |= word
                out.storeBytes(of: (word << 8).bigEndian, toByteOffset: 3 &* quad, as: UInt32.self)
            }
            guard bad < 0x0100_0000 else { return nil }
            guard padding > 0 else { return 3 * quads }
            let at = input + 4 * (quads - 1)
            var word = t[Int(at[0])] | t[256 + Int(at[1])]
            if padding == 1 { word |= t[512 + Int(at[2])] }
            // The unused bits of the last character must be zero.
            guard word < 0x0100_0000, word & (padding == 2 ? 0xFFFF : 0xFF) == 0 else { return nil }
            out.storeBytes(of: (word << 8).bigEndian, toByteOffset: 3 * (quads - 1), as: UInt32.self)
            return 3 * quads - padding
        }
    }
}
