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
    /// `mapping.value(ofKey:)` of the keys from `firstTabledKey` on, computed once: every latency
    /// from a picosecond to days (the walk would otherwise call exp2 for every answer).
    private let values: [Double]
    private let firstTabledKey: Int
    /// The decoded protobuf bytes of the last sketch read in place (with StrictBase64's slack).
    private var bytes: [UInt8] = []
    /// The counts of the last compact sketch read in place whose counts were not one byte each
    /// (1,024 once the first is read; one-byte counts are read where they lie).
    private var compactCounts: [Int32] = []
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
        let mapping = self.mapping
        firstTabledKey = mapping.key(0x1p-20)
        values = (firstTabledKey...mapping.key(0x1p40)).map { mapping.value(ofKey: $0) }
    }

    /// Reads a sketch carried as base64 (RFC 4648, with padding), as a report's `rttMicros` does.
    /// Returns false when the text is not base64; throws what decoding the bytes would throw.
    public mutating func read(base64 text: String) throws(SketchError) -> Bool {
        let needed = StrictBase64.outputCapacity(forLength: text.utf8.count)
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

    /// Reads a sketch in the event log's compact form (`SketchCompaction`): the canonical form's
    /// counts read from their varints in place; anything else expanded and read as its protobuf
    /// bytes. Throws what expanding or decoding would throw.
    public mutating func read(compact buffer: UnsafeBufferPointer<UInt8>) throws(SketchError) {
        if readCompactCanonical(buffer) { return }
        var expanded: [UInt8] = []
        let length = try SketchCompaction.expand(buffer, into: &expanded)
        try readInFull(Array(expanded[..<length]))
    }

    private mutating func readInFull(_ bytes: [UInt8]) throws(SketchError) {
        let sketch = try QuantileSketch(decoding: bytes, maxBins: maxBins)
        count = sketch.count
        guard let all = try sketch.quantiles(quantiles) else { return }
        for index in all.indices { answers[index] = all[index] }
    }

    /// Reads the canonical form in place; false, with nothing changed, when the bytes are anything
    /// else, when anything about them would make the full decoder throw, or when the count is 2^31
    /// or more (the full decoder answers those alike, only slower).
    private mutating func readCanonical(_ buffer: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let sketch = CanonicalSketch(buffer, maxBins: maxBins),
            let total = sketch.total(), total < 1 << 31
        else { return false }
        answer(total: total, zeroCount: sketch.zeroCount, firstKey: sketch.firstKey, sketch.binsNotExceeding)
        return true
    }

    /// `readCanonical` for the canonical form's compact form: the mapping as it is; the positive
    /// store as its number of fields (1, or 2 with the index offset), then its counts as varints
    /// (each below 2^28 here: larger ones, which the full path takes, are for sketches of far more
    /// values than probes), then the index offset; the zero count as it is.
    private mutating func readCompactCanonical(_ buffer: UnsafeBufferPointer<UInt8>) -> Bool {
        let end = buffer.count
        guard end >= 11, let address = buffer.baseAddress else { return false }
        let base = UnsafeRawPointer(address)
        guard buffer[0] == 0x0A, buffer[1] == 9, buffer[2] == 0x09,
            Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 3, as: UInt64.self)))
                == IndexMapping.defaultGamma
        else { return false }
        var position = 11
        var bins = 0
        var firstKey = 0
        var total: UInt64 = 0
        /// Where the counts are, when each is one byte.
        var countBytesAt: Int?
        if position < end && buffer[position] == 0x12 {
            position += 1
            guard let fields = CanonicalSketch.varint(buffer, &position), fields == 1 || fields == 2,
                position < end, buffer[position] == 0x12
            else { return false }
            position += 1
            guard let count = CanonicalSketch.varint(buffer, &position), count <= min(maxBins, 1024) else { return false }
            // Counts below 128 (probes' sketches: nearly always) are one byte each, their own
            // varints: read where they are. Others are decoded into `compactCounts`.
            if count <= end - position, let sum = OneByteCounts.sum(base + position, count) {
                countBytesAt = position
                total = sum
                position += count
            } else {
                guard let sum = readMultiByteCounts(buffer, &position, count) else { return false }
                total = sum
            }
            bins = count
            if fields == 2 {
                guard position < end, buffer[position] == 0x18 else { return false }
                position += 1
                guard let zigzag = CanonicalSketch.varint(buffer, &position) else { return false }
                let bits = UInt32(zigzag)
                firstKey = Int(Int32(bitPattern: (bits >> 1) ^ (0 &- (bits & 1))))
            }
            guard firstKey + bins - 1 <= Int(Int32.max) else { return false }
        }
        var zeroCount: UInt64 = 0
        if position < end && buffer[position] == 0x21 {
            guard end - position >= 9 else { return false }
            let bits = base.loadUnaligned(fromByteOffset: position + 1, as: UInt64.self)
            guard let value = SmallCount.value(UInt64(littleEndian: bits)) else { return false }
            zeroCount = value
            position += 9
        }
        total &+= zeroCount
        guard position == end, total < 1 << 31 else { return false }
        if let start = countBytesAt {
            answer(total: total, zeroCount: zeroCount, firstKey: firstKey, oneByteCounts: base + start, bins: bins)
            return true
        }
        let counts = compactCounts
        answer(total: total, zeroCount: zeroCount, firstKey: firstKey) { ranks, zeros in
            counts.withUnsafeBufferPointer { counts in
                countBinsNotExceeding(ranks, after: zeros, bins: bins) { counts[$0] }
            }
        }
        return true
    }

    /// Decodes `count` varint counts at `position` into `compactCounts`, moving past them; their sum,
    /// or nil when one is not a varint of at most 4 bytes.
    private mutating func readMultiByteCounts(
        _ buffer: UnsafeBufferPointer<UInt8>, _ position: inout Int, _ count: Int
    ) -> UInt64? {
        if compactCounts.isEmpty { compactCounts = [Int32](repeating: 0, count: 1024) }
        var sum: UInt64 = 0
        let valid = compactCounts.withUnsafeMutableBufferPointer { counts -> Bool in
            for index in 0..<count {
                guard let value = CanonicalSketch.varint(buffer, &position) else { return false }
                counts[index] = Int32(truncatingIfNeeded: value)
                sum &+= UInt64(value)
            }
            return true
        }
        return valid ? sum : nil
    }

    /// Sets `count` and `answers` for a sketch of `total` values (below 2^31) whose `bins` counts are
    /// one byte each at `counts`: the same answers as `answer(total:zeroCount:firstKey:_:)`, found by
    /// one walk up the counts for all quantiles in increasing order, eight counts at a time until
    /// the next would pass a quantile's rank, then one at a time.
    @inline(__always)
    private mutating func answer(
        total: UInt64, zeroCount: UInt64, firstKey: Int, oneByteCounts counts: UnsafeRawPointer, bins: Int
    ) {
        count = total
        guard total > 0 else { return }
        let last = Double(total - 1)
        var seen = zeroCount  // the values in the zeros and in the bins before `index`
        var index = 0
        // Indexed, not zipped: iterators would retain the reader's arrays, for every sketch.
        for step in 0..<ascending.count {
            let rank = UInt64(ascending[step] * last)
            guard zeroCount <= rank else {
                answers[order[step]] = 0
                continue
            }
            // `seen` does not exceed this rank (nor did it the last, which was no higher); the
            // answer is the first bin after which it would.
            while index &+ 8 <= bins {
                let eight = OneByteCounts.sumOfEight(counts.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                guard seen &+ eight <= rank else { break }
                seen &+= eight
                index &+= 8
            }
            while index < bins {
                let next = UInt64(counts.load(fromByteOffset: index, as: UInt8.self))
                guard seen &+ next <= rank else { break }
                seen &+= next
                index &+= 1
            }
            answers[order[step]] = value(ofKey: firstKey &+ index)
        }
    }

    /// Sets `count` and `answers` for a sketch of `total` values (below 2^31), given how many of its
    /// bins come before each of four ranks is exceeded.
    @inline(__always)
    private mutating func answer(
        total: UInt64, zeroCount: UInt64, firstKey: Int,
        _ binsNotExceeding: (_ ranks: SIMD4<Int32>, _ zeros: Int32) -> SIMD4<Int32>
    ) {
        count = total
        guard total > 0 else { return }
        // The same answers as QuantileSketch.quantiles, whose walk takes the zeros first, then the
        // positive bins by key, and answers a quantile q with the first bin where the values seen
        // so far exceed q·(count − 1). As the values seen are whole, exceeding that rank is
        // exceeding its whole part: each quantile's bin is the number of bins where the values
        // seen do not exceed its whole rank. Counted for four quantiles at once, without a branch
        // (which bin a quantile falls in is a coin toss per sketch).
        let last = Double(total - 1)
        var group = 0
        while group < order.count {
            var ranks = SIMD4<Int32>(repeating: .max)
            for lane in 0..<min(4, order.count - group) { ranks[lane] = Int32(ascending[group + lane] * last) }
            let zeros = Int32(zeroCount)
            let binsBefore = binsNotExceeding(ranks, zeros)
            for lane in 0..<min(4, order.count - group) {
                answers[order[group + lane]] = zeros > ranks[lane] ? 0 : value(ofKey: firstKey &+ Int(binsBefore[lane]))
            }
            group += 4
        }
    }

    @inline(__always)
    private func value(ofKey key: Int) -> Double {
        let place = key &- firstTabledKey
        return place >= 0 && place < values.count ? values[place] : mapping.value(ofKey: key)
    }
}

/// Merges encoded sketches one after another without building each: the canonical form's bins are
/// added in place into one store (`CanonicalSketch`, as `EncodedSketchReader` reads them); anything
/// else is decoded in full and merged. `sketch()` equals the merge of every sketch decoded (the
/// rollups of a window of millions of pairs: decoding each would cost five times the window's
/// judging).
public struct EncodedSketchAccumulator: Sendable {
    private let maxBins: Int
    private var positive: BinStore
    private var zeroCount: UInt64 = 0
    private var count: UInt64 = 0
    /// Sketches not in the canonical form, decoded and merged.
    private var others: QuantileSketch?

    /// Nothing added yet (or only empty sketches).
    public var isEmpty: Bool { count == 0 && (others?.isEmpty ?? true) }

    public init(maxBins: Int = QuantileSketch.defaultMaxBins) {
        self.maxBins = maxBins
        positive = BinStore(maxBins: maxBins, collapsingEnd: .lowestKeys)
    }

    /// Adds a sketch's protobuf bytes.
    public mutating func add(bytes buffer: UnsafeBufferPointer<UInt8>) throws(SketchError) {
        if let sketch = CanonicalSketch(buffer, maxBins: maxBins), let total = sketch.total() {
            guard total <= QuantileSketch.maxCount - count else { throw SketchError.countOverflow }
            for index in 0..<sketch.bins {
                let binCount = sketch.bin(index)
                if binCount > 0 { positive.add(key: sketch.firstKey &+ index, count: binCount) }
            }
            zeroCount &+= sketch.zeroCount
            count += total
            return
        }
        let sketch = try QuantileSketch(decoding: buffer, maxBins: maxBins)
        if others == nil { others = sketch } else { try others!.merge(sketch) }
    }

    /// The merge of everything added; nil when nothing was.
    public func sketch() throws(SketchError) -> QuantileSketch? {
        guard count > 0 || others != nil else { return nil }
        var merged = QuantileSketch(
            mapping: .default, zeroCount: zeroCount, positive: positive,
            negative: BinStore(maxBins: maxBins, collapsingEnd: .highestKeys), count: count)
        if let others { try merged.merge(others) }
        return merged
    }
}

/// Where the parts of a canonically encoded sketch lie, its layout checked as the full decoder
/// checks it; `total()` checks the counts.
private struct CanonicalSketch {
    let base: UnsafeRawPointer
    var countsOffset = 0
    var bins = 0
    var firstKey = 0
    var zeroCount: UInt64 = 0

    /// Nil unless the bytes are, in this order: the mapping message holding exactly the default
    /// gamma; optionally the positive store holding one packed run of at most `maxBins` (and 1,024)
    /// counts and optionally its index offset; optionally the zero count.
    init?(_ buffer: UnsafeBufferPointer<UInt8>, maxBins: Int) {
        base = UnsafeRawPointer(buffer.baseAddress!)
        let end = buffer.count
        // The mapping: tag, length 9, gamma's tag, gamma.
        guard end >= 11, buffer[0] == 0x0A, buffer[1] == 9, buffer[2] == 0x09,
            Double(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 3, as: UInt64.self)))
                == IndexMapping.defaultGamma
        else { return nil }
        var position = 11
        if position < end && buffer[position] == 0x12 {
            position += 1
            guard let length = Self.varint(buffer, &position), length <= end - position else { return nil }
            let storeEnd = position + length
            guard position < storeEnd, buffer[position] == 0x12 else { return nil }
            position += 1
            guard let packed = Self.varint(buffer, &position), packed <= storeEnd - position, packed % 8 == 0
            else { return nil }
            bins = packed / 8
            // At most 1,024 counts of less than 2^52: their sum cannot wrap.
            guard bins <= min(maxBins, 1024) else { return nil }
            countsOffset = position
            position += packed
            if position < storeEnd {
                guard buffer[position] == 0x18 else { return nil }
                position += 1
                guard let zigzag = Self.varint(buffer, &position), position == storeEnd else { return nil }
                let bits = UInt32(zigzag)
                firstKey = Int(Int32(bitPattern: (bits >> 1) ^ (0 &- (bits & 1))))
            }
            // Every key of the run fits 32 bits (the decoder checks the last non-zero one).
            guard firstKey + bins - 1 <= Int(Int32.max) else { return nil }
        }
        if position < end && buffer[position] == 0x21 {
            guard end - position >= 9 else { return nil }
            let bits = base.loadUnaligned(fromByteOffset: position + 1, as: UInt64.self)
            guard let value = SmallCount.value(UInt64(littleEndian: bits)) else { return nil }
            zeroCount = value
            position += 9
        }
        guard position == end else { return nil }
    }

    /// The count of a bin, which `total()` has checked.
    @inline(__always)
    func bin(_ index: Int) -> UInt64 {
        SmallCount.unchecked(UInt64(littleEndian: base.loadUnaligned(fromByteOffset: countsOffset &+ 8 &* index, as: UInt64.self)))
    }

    /// The sketch's count of values; nil unless every bin's count is a whole number below 2^52
    /// (`SmallCount`) and all of them, with the zeros, at most 2^53.
    func total() -> UInt64? {
        var sum = zeroCount
        var valid: UInt8 = 1
        for index in 0..<bins {
            let bits = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: countsOffset &+ 8 &* index, as: UInt64.self))
            valid &= unsafeBitCast(SmallCount.isValid(bits), to: UInt8.self)  // no branch per bin
            sum &+= SmallCount.unchecked(bits)
        }
        return valid == 0 || sum > QuantileSketch.maxCount ? nil : sum
    }

    func binsNotExceeding(_ ranks: SIMD4<Int32>, after zeros: Int32) -> SIMD4<Int32> {
        countBinsNotExceeding(ranks, after: zeros, bins: bins) { Int32(truncatingIfNeeded: bin($0)) }
    }

    /// A varint of at most 4 bytes (lengths, keys and counts of a canonical sketch); nil otherwise.
    static func varint(_ buffer: UnsafeBufferPointer<UInt8>, _ position: inout Int) -> Int? {
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

/// For each lane, how many of `bins` bins there are before the values seen (`zeros`, then each
/// bin's count) exceed the lane's rank. The total must be below 2^31.
@inline(__always)
private func countBinsNotExceeding(
    _ ranks: SIMD4<Int32>, after zeros: Int32, bins: Int, _ count: (Int) -> Int32
) -> SIMD4<Int32> {
    var seen = zeros
    var notExceeding = SIMD4<Int32>.zero
    for index in 0..<bins {
        seen &+= count(index)
        notExceeding[0] &+= Int32(unsafeBitCast(seen <= ranks[0], to: UInt8.self))
        notExceeding[1] &+= Int32(unsafeBitCast(seen <= ranks[1], to: UInt8.self))
        notExceeding[2] &+= Int32(unsafeBitCast(seen <= ranks[2], to: UInt8.self))
        notExceeding[3] &+= Int32(unsafeBitCast(seen <= ranks[3], to: UInt8.self))
    }
    return notExceeding
}

/// A count carried as a double, converted without the checks of `Int64(_:)` (traps that are never
/// taken cost a dozen instructions per count on the hot path): a whole number in [+0, 2^52), whose
/// bits order as the numbers do. Anything else (-0, larger counts, fractions, NaN) is nil: the full
/// decoder judges it.
enum SmallCount {
    private static let twoToThe52Bits: UInt64 = 0x4330_0000_0000_0000
    private static let twoToThe52 = 4_503_599_627_370_496.0

    @inline(__always)
    static func value(_ bits: UInt64) -> UInt64? {
        isValid(bits) ? unchecked(bits) : nil
    }

    /// Whether `bits` are a whole number in [+0, 2^52), decided without a branch: adding 2^52
    /// leaves a double whose ulp is 1, so a whole number survives the round trip.
    @inline(__always)
    static func isValid(_ bits: UInt64) -> Bool {
        let shifted = Double(bitPattern: bits) + twoToThe52
        let inRange = unsafeBitCast(bits < twoToThe52Bits, to: UInt8.self)
        let whole = unsafeBitCast(shifted - twoToThe52 == Double(bitPattern: bits), to: UInt8.self)
        return inRange & whole != 0
    }

    /// The number, when `isValid(bits)`: the low bits of the shifted double; garbage otherwise.
    @inline(__always)
    static func unchecked(_ bits: UInt64) -> UInt64 {
        (Double(bitPattern: bits) + twoToThe52).bitPattern &- twoToThe52Bits
    }
}

/// Counts stored one byte each (the event log's compact sketches, when every count is below 128):
/// summed eight at a time, within a 64-bit word.
enum OneByteCounts {
    /// The sum of `count` bytes at `bytes`, or nil when one of them is 128 or more (a longer varint).
    @inline(__always)
    static func sum(_ bytes: UnsafeRawPointer, _ count: Int) -> UInt64? {
        var sum: UInt64 = 0
        var highBits: UInt64 = 0
        var index = 0
        while index &+ 8 <= count {
            let eight = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            highBits |= eight
            sum &+= sumOfEight(eight)
            index &+= 8
        }
        while index < count {
            let byte = UInt64(bytes.load(fromByteOffset: index, as: UInt8.self))
            highBits |= byte
            sum &+= byte
            index &+= 1
        }
        return highBits & 0x8080_8080_8080_8080 == 0 ? sum : nil
    }

    /// The sum of a word's eight bytes: added in pairs into four 16-bit lanes (each at most 510),
    /// which one multiplication adds into the top lane (at most 2,040).
    @inline(__always)
    static func sumOfEight(_ word: UInt64) -> UInt64 {
        let lanes: UInt64 = 0x00FF_00FF_00FF_00FF
        let pairs = (word & lanes) &+ (word >> 8 & lanes)
        return (pairs &* 0x0001_0001_0001_0001) >> 48
    }
}

/// Strict RFC 4648 base64 with padding: the length a multiple of 4, the standard alphabet, one or
/// two `=` at the end only, unused bits zero. Anything else is refused (and left to Foundation).
/// Strict is canonical: what it accepts is exactly what encoding the decoded bytes gives back.
public enum StrictBase64 {
    /// The bytes of strict base64 `text`; nil for anything else.
    public static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { decode($0) }
    }

    /// The bytes of strict base64 `text` (its UTF-8 bytes, as a JSON reader holds them); nil for
    /// anything else.
    public static func decode(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var valid = true
        let output = [UInt8](unsafeUninitializedCapacity: outputCapacity(forLength: text.count)) { buffer, count in
            if let length = decode(text, into: buffer) { count = length } else { valid = false }
        }
        return valid ? output : nil
    }

    /// Four tables of 256 entries, one per character of a quad: each character's 6 bits already
    /// in their place of the quad's 24, or 0x0100_0000 and up for a character outside the alphabet.
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0xFF00_0000, count: 1024)
        for (value, character) in alphabet.enumerated() {
            for position in 0..<4 {
                tables[position * 256 + Int(character)] = UInt32(value) << (18 - 6 * position)
            }
        }
        return tables
    }()

    /// Two characters at once, indexed by their bytes as a little-endian UInt16: their 12 bits, or
    /// 0xF000 for a pair with a character outside the alphabet. 128 KB, of which the pairs of
    /// alphabet characters, the only ones read often, touch about 12 KB.
    private static let pairTable: [UInt16] = {
        var table = [UInt16](repeating: 0xF000, count: 65536)
        for (high, first) in alphabet.enumerated() {
            for (low, second) in alphabet.enumerated() {
                table[Int(first) | Int(second) << 8] = UInt16(high << 6 | low)
            }
        }
        return table
    }()

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The room `decode(_:into:)` needs for text of `length` characters: the decoded bytes and the
    /// slack its 8-byte stores write past them.
    public static func outputCapacity(forLength length: Int) -> Int { length / 4 * 3 + 2 }

    /// Decodes `text` into `output`, which has `outputCapacity(forLength: text.count)` bytes; the
    /// decoded length, or nil when the text is not strict base64.
    static func decode(_ text: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableBufferPointer<UInt8>) -> Int? {
        guard text.count % 4 == 0 else { return nil }
        guard !text.isEmpty else { return 0 }
        precondition(output.count >= outputCapacity(forLength: text.count))
        let padding = text[text.count - 1] != UInt8(ascii: "=") ? 0 : text[text.count - 2] != UInt8(ascii: "=") ? 1 : 2
        let quads = text.count / 4
        return tables.withUnsafeBufferPointer { tables -> Int? in
            let t = tables.baseAddress!
            let input = UnsafeRawPointer(text.baseAddress!)
            let out = UnsafeMutableRawPointer(output.baseAddress!)
            var bad: UInt32 = 0
            // Every quad but a padded last one, two at a time: 8 characters read at once, four
            // pairs looked up, their 48 bits written as 8 bytes (two of slack).
            let full = padding == 0 ? quads : quads - 1
            var quad = 0
            pairTable.withUnsafeBufferPointer { pairs in
                let p = pairs.baseAddress!
                var pairsBad: UInt16 = 0
                while quad &+ 2 <= full {
                    let eight = UInt64(littleEndian: input.loadUnaligned(fromByteOffset: 4 &* quad, as: UInt64.self))
                    let a = p[Int(eight & 0xFFFF)]
                    let b = p[Int(eight >> 16 & 0xFFFF)]
                    let c = p[Int(eight >> 32 & 0xFFFF)]
                    let d = p[Int(eight >> 48)]
                    pairsBad |= a | b | c | d
                    let bits = UInt64(a) << 52 | UInt64(b) << 40 | UInt64(c) << 28 | UInt64(d) << 16
                    out.storeBytes(of: bits.bigEndian, toByteOffset: 3 &* quad, as: UInt64.self)
                    quad &+= 2
                }
                bad = UInt32(pairsBad & 0xF000) << 12  // a bad pair makes the quads' check fail
            }
            if quad < full {
                let at = text.baseAddress! + 4 &* quad
                let word = t[Int(at[0])] | t[256 &+ Int(at[1])] | t[512 &+ Int(at[2])] | t[768 &+ Int(at[3])]
                bad |= word
                out.storeBytes(of: (word << 8).bigEndian, toByteOffset: 3 &* quad, as: UInt32.self)
            }
            guard bad < 0x0100_0000 else { return nil }
            guard padding > 0 else { return 3 * quads }
            let at = text.baseAddress! + 4 * (quads - 1)
            var word = t[Int(at[0])] | t[256 + Int(at[1])]
            if padding == 1 { word |= t[512 + Int(at[2])] }
            // The unused bits of the last character must be zero.
            guard word < 0x0100_0000, word & (padding == 2 ? 0xFFFF : 0xFF) == 0 else { return nil }
            out.storeBytes(of: (word << 8).bigEndian, toByteOffset: 3 * (quads - 1), as: UInt32.self)
            return 3 * quads - padding
        }
    }
}
