// The DDSketch protobuf (wire-v1.md §4), encoded and decoded by hand.
//
// The writer emits the contiguous form only (DataDog's Python package reads nothing else), with
// proto3's defaults left out, so the same sketch always gives the same bytes. The reader takes the
// map form, the contiguous form and any mix (a bin named twice adds up), skips unknown fields, and
// rejects anything malformed with the field path and byte offset: it never traps and its work is
// linear in the input.

// Field numbers of the messages in wire-v1.md §4.
private enum Field {
    enum Sketch {
        static let mapping: UInt64 = 1
        static let positiveValues: UInt64 = 2
        static let negativeValues: UInt64 = 3
        static let zeroCount: UInt64 = 4
    }
    enum Mapping {
        static let gamma: UInt64 = 1
        static let indexOffset: UInt64 = 2
        static let interpolation: UInt64 = 3
    }
    enum Store {
        static let binCounts: UInt64 = 1
        static let contiguousBinCounts: UInt64 = 2
        static let contiguousBinIndexOffset: UInt64 = 3
    }
    enum MapEntry {
        static let key: UInt64 = 1
        static let value: UInt64 = 2
    }
}

enum WireType: UInt64 {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case startGroup = 3
    case endGroup = 4
    case fixed32 = 5
}

/// A count must be a whole number a double carries exactly: at most 2^53 (`QuantileSketch.maxCount`).
/// Computed, not stored: a stored global is initialized lazily and checked on every use.
var maxExactCount: Double { 9_007_199_254_740_992 }

// MARK: - Encoding

extension QuantileSketch {
    /// The sketch as DDSketch protobuf bytes (contiguous bins, proto3 defaults omitted).
    public func encoded() -> [UInt8] {
        let interpolation = UInt64(mapping.interpolation.rawValue)
        let mappingSize =
            9 + (mapping.indexOffset != 0 ? 9 : 0) + (interpolation != 0 ? 1 + varintSize(interpolation) : 0)
        let positiveSize = positive.encodedSize
        let negativeSize = negative.encodedSize
        func fieldSize(_ size: Int) -> Int { size == 0 ? 0 : 1 + varintSize(UInt64(size)) + size }
        let total =
            fieldSize(mappingSize) + fieldSize(positiveSize) + fieldSize(negativeSize)
            + (zeroCount != 0 ? 9 : 0)
        return [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            var writer = ProtobufWriter(buffer: buffer)
            writer.writeTag(Field.Sketch.mapping, .lengthDelimited)
            writer.writeVarint(UInt64(mappingSize))
            writer.writeTag(Field.Mapping.gamma, .fixed64)
            writer.writeDouble(mapping.gamma)
            if mapping.indexOffset != 0 {
                writer.writeTag(Field.Mapping.indexOffset, .fixed64)
                writer.writeDouble(mapping.indexOffset)
            }
            if interpolation != 0 {
                writer.writeTag(Field.Mapping.interpolation, .varint)
                writer.writeVarint(interpolation)
            }
            positive.write(as: Field.Sketch.positiveValues, size: positiveSize, to: &writer)
            negative.write(as: Field.Sketch.negativeValues, size: negativeSize, to: &writer)
            if zeroCount != 0 {
                writer.writeTag(Field.Sketch.zeroCount, .fixed64)
                writer.writeDouble(Double(zeroCount))
            }
            precondition(writer.position == total, "encoded size must match its computation")
            initialized = total
        }
    }
}

extension BinStore {
    /// The size of the Store message: packed contiguous counts and their first key; 0 when empty.
    fileprivate var encodedSize: Int {
        guard !isEmpty else { return 0 }
        let packed = (maxKey - minKey + 1) * 8
        let offset = minKey != 0 ? 1 + varintSize(zigzag(minKey)) : 0
        return 1 + varintSize(UInt64(packed)) + packed + offset
    }

    /// Writes the Store message as field `field` of the sketch (nothing when empty).
    fileprivate func write(as field: UInt64, size: Int, to writer: inout ProtobufWriter) {
        guard !isEmpty else { return }
        writer.writeTag(field, .lengthDelimited)
        writer.writeVarint(UInt64(size))
        writer.writeTag(Field.Store.contiguousBinCounts, .lengthDelimited)
        writer.writeVarint(UInt64((maxKey - minKey + 1) * 8))
        bins.withUnsafeBufferPointer { bins in
            // Counts are at most 2^53 (maxCount): the signed conversion is exact and fast.
            for index in (minKey - base)...(maxKey - base) {
                writer.writeDouble(Double(Int64(bitPattern: bins[index])))
            }
        }
        if minKey != 0 {
            writer.writeTag(Field.Store.contiguousBinIndexOffset, .varint)
            writer.writeVarint(zigzag(minKey))
        }
    }
}

/// The zigzag form of a sint32 (keys always fit 32 bits: IndexMapping guarantees it).
private func zigzag(_ key: Int) -> UInt64 {
    let value = Int32(truncatingIfNeeded: key)
    return UInt64(UInt32(bitPattern: (value << 1) ^ (value >> 31)))
}

private func varintSize(_ value: UInt64) -> Int {
    (64 - value.leadingZeroBitCount + 6) / 7 + (value == 0 ? 1 : 0)
}

/// Writes into a buffer sized beforehand.
private struct ProtobufWriter {
    let buffer: UnsafeMutableBufferPointer<UInt8>
    var position = 0

    init(buffer: UnsafeMutableBufferPointer<UInt8>) { self.buffer = buffer }

    mutating func writeVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            buffer[position] = UInt8(truncatingIfNeeded: value) | 0x80
            position += 1
            value >>= 7
        }
        buffer[position] = UInt8(value)
        position += 1
    }

    mutating func writeTag(_ field: UInt64, _ wireType: WireType) {
        writeVarint(field << 3 | wireType.rawValue)
    }

    mutating func writeDouble(_ value: Double) {
        precondition(position + 8 <= buffer.count)
        UnsafeMutableRawPointer(buffer.baseAddress! + position).storeBytes(
            of: value.bitPattern.littleEndian, as: UInt64.self)
        position += 8
    }
}

// MARK: - Decoding

extension QuantileSketch {
    /// Decodes DDSketch protobuf bytes. Throws ``SketchError/malformed(field:offset:reason:)`` for
    /// anything that is not a valid sketch: truncation, a wire type that does not match its field,
    /// a gamma that is not finite and > 1, counts that are negative, fractional, non-finite or
    /// above 2^53, and bins that span more than `maxBins` keys on either sign.
    @inlinable
    public init(decoding bytes: some Collection<UInt8>, maxBins: Int = defaultMaxBins) throws(SketchError) {
        // Specialized in the caller; the work happens in one non-generic function.
        let decoded = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(SketchError) in try QuantileSketch(decodingBuffer: buffer, maxBins: maxBins) }
        }
        if let decoded {
            self = try decoded.get()
        } else {
            self = try Array(bytes).withUnsafeBufferPointer { buffer in
                Result { () throws(SketchError) in
                    try QuantileSketch(decodingBuffer: buffer, maxBins: maxBins)
                }
            }.get()
        }
    }

    @usableFromInline
    init(decodingBuffer buffer: UnsafeBufferPointer<UInt8>, maxBins: Int) throws(SketchError) {
        guard maxBins >= 1 else { throw SketchError.invalidBinLimit(maxBins) }
        self = try SketchDecoder(buffer: buffer, maxBins: maxBins).decode()
    }
}

/// A cursor over one message's bytes (the compaction's reader too).
struct ProtobufReader {
    let buffer: UnsafeBufferPointer<UInt8>
    var position: Int
    let end: Int
    /// Whether a varint read so far was written otherwise than minimally (with trailing zero
    /// groups): its value would not re-encode to the same bytes (SketchCompaction refuses those).
    private(set) var sawNonMinimalVarint = false

    init(buffer: UnsafeBufferPointer<UInt8>, start: Int, end: Int) {
        self.buffer = buffer
        self.position = start
        self.end = end
    }

    var isAtEnd: Bool { position >= end }

    mutating func readVarint(_ field: String) throws(SketchError) -> UInt64 {
        if position < end, buffer[position] < 0x80 {  // one byte: tags, lengths, small values
            position += 1
            return UInt64(buffer[position - 1])
        }
        let start = position
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw malformed(field, start, "truncated varint") }
            let byte = buffer[position]
            position += 1
            if shift == 63 && byte > 1 { throw malformed(field, start, "varint overflows 64 bits") }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 {
                if byte == 0 { sawNonMinimalVarint = true }  // past the first byte: a trailing zero group
                return result
            }
            shift += 7
        }
    }

    mutating func readDouble(_ field: String) throws(SketchError) -> Double {
        guard end - position >= 8 else { throw malformed(field, position, "truncated 64-bit value") }
        return readDoubleInBounds()
    }

    /// A little-endian double; the caller has checked that 8 bytes remain.
    mutating func readDoubleInBounds() -> Double {
        let bits = UnsafeRawPointer(buffer.baseAddress! + position).loadUnaligned(as: UInt64.self)
        position += 8
        return Double(bitPattern: UInt64(littleEndian: bits))
    }

    /// The reader for a length-delimited payload, which this reader then skips.
    mutating func readLengthDelimited(_ field: String) throws(SketchError) -> ProtobufReader {
        let start = position
        let length = try readVarint(field)
        guard length <= UInt64(end - position) else {
            throw malformed(field, start, "length \(length) runs past the end of its message")
        }
        let payload = ProtobufReader(buffer: buffer, start: position, end: position + Int(length))
        position += Int(length)
        return payload
    }

    /// Reads a tag: the field number and its wire type.
    mutating func readTag(
        _ message: String
    ) throws(SketchError) -> (field: UInt64, wireType: WireType, at: Int) {
        let start = position
        let tag = try readVarint(message)
        guard let wireType = WireType(rawValue: tag & 7), wireType != .startGroup, wireType != .endGroup
        else {
            throw malformed(message, start, "unsupported wire type \(tag & 7)")
        }
        let field = tag >> 3
        guard field != 0 else { throw malformed(message, start, "field number 0") }
        return (field, wireType, start)
    }

    /// Skips a field this reader does not know (forward compatibility).
    mutating func skip(_ wireType: WireType, _ field: String) throws(SketchError) {
        switch wireType {
        case .varint: _ = try readVarint(field)
        case .fixed64: _ = try readDouble(field)
        case .lengthDelimited: _ = try readLengthDelimited(field)
        case .fixed32:
            guard end - position >= 4 else { throw malformed(field, position, "truncated 32-bit value") }
            position += 4
        case .startGroup, .endGroup: throw malformed(field, position, "groups are not supported")
        }
    }
}

func malformed(_ field: String, _ offset: Int, _ reason: String) -> SketchError {
    SketchError.malformed(field: field, offset: offset, reason: reason)
}

/// Decodes the sketch message in two passes per sign: the first validates every count and notes
/// where the bins are; the second, once the span of keys is known to fit, places them in a store
/// sized exactly. No per-bin allocation: decoding is the correlator's hot path.
private struct SketchDecoder {
    /// What one Store message holds: where its contiguous counts lie in the input, the key of the
    /// first, and any map-form bins.
    struct StoreParts {
        /// The contiguous counts in order, validated and converted.
        var contiguousCounts: [UInt64] = []
        var firstIndex: Int32 = 0
        /// Element indexes (not keys: the offset may come last) of the first and last non-zero count.
        var nonZeroElements: ClosedRange<Int>?
        var contiguousTotal: UInt64 = 0
        var mapBins: [(key: Int32, count: UInt64)] = []
    }

    let buffer: UnsafeBufferPointer<UInt8>
    let maxBins: Int

    init(buffer: UnsafeBufferPointer<UInt8>, maxBins: Int) {
        self.buffer = buffer
        self.maxBins = maxBins
    }

    func decode() throws(SketchError) -> QuantileSketch {
        var reader = ProtobufReader(buffer: buffer, start: 0, end: buffer.count)
        var gamma = 0.0
        var indexOffset = 0.0
        var interpolation: UInt64 = 0
        var mappingOffset = 0
        var zeroCount: UInt64 = 0
        var positiveParts: [StoreParts] = []
        var negativeParts: [StoreParts] = []
        while !reader.isAtEnd {
            let (field, wireType, at) = try reader.readTag("DDSketch")
            switch (field, wireType) {
            case (Field.Sketch.mapping, .lengthDelimited):
                mappingOffset = at
                var mapping = try reader.readLengthDelimited("mapping")
                while !mapping.isAtEnd {
                    let (field, wireType, at) = try mapping.readTag("mapping")
                    switch (field, wireType) {
                    case (Field.Mapping.gamma, .fixed64): gamma = try mapping.readDouble("mapping.gamma")
                    case (Field.Mapping.indexOffset, .fixed64):
                        indexOffset = try mapping.readDouble("mapping.indexOffset")
                    case (Field.Mapping.interpolation, .varint):
                        interpolation = try mapping.readVarint("mapping.interpolation")
                    case (Field.Mapping.gamma, _), (Field.Mapping.indexOffset, _),
                        (Field.Mapping.interpolation, _):
                        throw malformed("mapping", at, "field \(field) has wire type \(wireType.rawValue)")
                    default: try mapping.skip(wireType, "mapping")
                    }
                }
            case (Field.Sketch.positiveValues, .lengthDelimited):
                var store = try reader.readLengthDelimited("positiveValues")
                positiveParts.append(try decodeStore(&store, name: "positiveValues"))
            case (Field.Sketch.negativeValues, .lengthDelimited):
                var store = try reader.readLengthDelimited("negativeValues")
                negativeParts.append(try decodeStore(&store, name: "negativeValues"))
            case (Field.Sketch.zeroCount, .fixed64):
                let start = reader.position
                // proto3: the last value of a scalar field wins.
                zeroCount = try wholeCount(reader.readDouble("zeroCount"), "zeroCount", start)
            case (Field.Sketch.mapping, _), (Field.Sketch.positiveValues, _),
                (Field.Sketch.negativeValues, _),
                (Field.Sketch.zeroCount, _):
                throw malformed("DDSketch", at, "field \(field) has wire type \(wireType.rawValue)")
            default:
                try reader.skip(wireType, "DDSketch")
            }
        }
        guard interpolation <= UInt64(Int.max),
            let kind = IndexMapping.Interpolation(rawValue: Int(interpolation))
        else {
            throw malformed("mapping.interpolation", mappingOffset, "unknown interpolation \(interpolation)")
        }
        let mapping: IndexMapping
        do {
            let isDefault = gamma == IndexMapping.defaultGamma && indexOffset == 0 && kind == .none
            mapping =
                try isDefault
                ? .default : IndexMapping(gamma: gamma, indexOffset: indexOffset, interpolation: kind)
        } catch {
            throw malformed("mapping", mappingOffset, error.description)
        }
        let positive = try store(from: positiveParts, end: .lowestKeys, name: "positiveValues")
        let negative = try store(from: negativeParts, end: .highestKeys, name: "negativeValues")
        let count = positive.total + negative.total + zeroCount  // each at most 2^53: no overflow
        guard count <= QuantileSketch.maxCount else {
            throw malformed("DDSketch", 0, "total count \(count) is above 2^53")
        }
        return QuantileSketch(
            mapping: mapping, zeroCount: zeroCount, positive: positive, negative: negative,
            count: count)
    }

    /// First pass over one Store message: validates its counts and notes where they are.
    /// Field paths with an index are built only on the error path.
    private func decodeStore(_ reader: inout ProtobufReader, name: String) throws(SketchError) -> StoreParts {
        var parts = StoreParts()
        while !reader.isAtEnd {
            let (field, wireType, at) = try reader.readTag(name)
            switch (field, wireType) {
            case (Field.Store.binCounts, .lengthDelimited):
                do {
                    var entry = try reader.readLengthDelimited("")
                    let bin = try decodeMapEntry(&entry)
                    if bin.count != 0 { parts.mapBins.append(bin) }
                } catch {
                    throw error.withFieldPrefix("\(name).binCounts[\(parts.mapBins.count)]")
                }
            case (Field.Store.contiguousBinCounts, .lengthDelimited):
                let packed: ProtobufReader
                do {
                    packed = try reader.readLengthDelimited("")
                } catch {
                    throw error.withFieldPrefix("\(name).contiguousBinCounts")
                }
                guard (packed.end - packed.position) % 8 == 0 else {
                    throw malformed(
                        "\(name).contiguousBinCounts", at, "packed doubles length is not a multiple of 8")
                }
                try validateCounts(packed.position..<packed.end, name: name, into: &parts)
            case (Field.Store.contiguousBinCounts, .fixed64):  // the unpacked encoding of a repeated double
                let start = reader.position
                guard reader.end - start >= 8 else {
                    throw malformed("\(name).contiguousBinCounts", start, "truncated 64-bit value")
                }
                try validateCounts(start..<(start + 8), name: name, into: &parts)
                reader.position += 8
            case (Field.Store.contiguousBinIndexOffset, .varint):
                do {
                    parts.firstIndex = try readSInt32(&reader, "")
                } catch {
                    throw error.withFieldPrefix("\(name).contiguousBinIndexOffset")
                }
            case (Field.Store.binCounts, _), (Field.Store.contiguousBinCounts, _),
                (Field.Store.contiguousBinIndexOffset, _):
                throw malformed(name, at, "field \(field) has wire type \(wireType.rawValue)")
            default:
                try reader.skip(wireType, name)
            }
        }
        return parts
    }

    /// Checks that every double in `range` is a valid count and appends the run to `parts`.
    private func validateCounts(
        _ range: Range<Int>, name: String, into parts: inout StoreParts
    ) throws(SketchError) {
        let base = UnsafeRawPointer(buffer.baseAddress!)
        let firstElement = parts.contiguousCounts.count
        let elements = range.count / 8
        var total = parts.contiguousTotal
        var first = parts.nonZeroElements?.lowerBound ?? -1
        var last = parts.nonZeroElements?.upperBound ?? -1
        var failure: (value: Double, index: Int, offset: Int)?
        var totalExceededAt: Int?
        let run = [UInt64](unsafeUninitializedCapacity: elements) { run, initialized in
            for i in 0..<elements {
                let offset = range.lowerBound &+ 8 &* i
                let bits = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                let value = Double(bitPattern: bits)
                // Whole, non-negative, at most 2^53; NaN fails the first test. Signed conversions
                // only: x86-64 has no unsigned ones, and this is the hot path.
                guard value >= 0, value <= maxExactCount, value == Double(Int64(value)) else {
                    failure = (value, firstElement + i, offset)
                    break
                }
                let count = UInt64(Int64(value))
                run[i] = count
                initialized = i + 1
                if count != 0 {
                    // Both at most 2^53 before the addition: it cannot wrap, and the check stops
                    // the total from ever growing past 2^53.
                    total += count
                    guard total <= QuantileSketch.maxCount else {
                        totalExceededAt = offset
                        break
                    }
                    if first < 0 { first = firstElement &+ i }
                    last = firstElement &+ i
                }
            }
        }
        if let failure {
            _ = try wholeCount(failure.value, "\(name).contiguousBinCounts[\(failure.index)]", failure.offset)
            preconditionFailure("wholeCount must reject what the fast test rejected")
        }
        if let totalExceededAt {
            throw malformed(name, totalExceededAt, "total count \(total) is above 2^53")
        }
        if parts.contiguousCounts.isEmpty {
            parts.contiguousCounts = run
        } else {
            parts.contiguousCounts += run
        }
        parts.contiguousTotal = total
        parts.nonZeroElements = first < 0 ? nil : first...last
    }

    /// One `binCounts` map entry: key (sint32) and value (double); absent fields are 0.
    private func decodeMapEntry(
        _ entry: inout ProtobufReader
    ) throws(SketchError) -> (key: Int32, count: UInt64) {
        var key: Int32 = 0
        var count: UInt64 = 0
        while !entry.isAtEnd {
            let (field, wireType, at) = try entry.readTag("")
            switch (field, wireType) {
            case (Field.MapEntry.key, .varint): key = try readSInt32(&entry, ".key")
            case (Field.MapEntry.value, .fixed64):
                let start = entry.position
                count = try wholeCount(entry.readDouble(".value"), ".value", start)
            case (Field.MapEntry.key, _), (Field.MapEntry.value, _):
                throw malformed("", at, "field \(field) has wire type \(wireType.rawValue)")
            default: try entry.skip(wireType, "")
            }
        }
        return (key, count)
    }

    private func readSInt32(_ reader: inout ProtobufReader, _ field: String) throws(SketchError) -> Int32 {
        let start = reader.position
        let raw = try reader.readVarint(field)
        guard raw <= UInt64(UInt32.max) else { throw malformed(field, start, "sint32 out of range") }
        let bits = UInt32(raw)
        return Int32(bitPattern: (bits >> 1) ^ (0 &- (bits & 1)))
    }

    /// A count as a whole number, or the error that says what is wrong with it.
    private func wholeCount(_ value: Double, _ field: String, _ offset: Int) throws(SketchError) -> UInt64 {
        guard value.isFinite else { throw malformed(field, offset, "count \(value) is not finite") }
        guard value >= 0 else { throw malformed(field, offset, "count \(value) is negative") }
        guard value == value.rounded(.towardZero) else {
            throw malformed(field, offset, "count \(value) is not a whole number")
        }
        guard value <= maxExactCount else { throw malformed(field, offset, "count \(value) is above 2^53") }
        return UInt64(value)
    }

    /// Second pass: one sign's bins (a key named twice adds up) in a store, if they fit the bin limit.
    private func store(
        from parts: [StoreParts], end: BinStore.CollapsingEnd, name: String
    ) throws(SketchError) -> BinStore {
        var low = Int.max
        var high = Int.min
        var total: UInt64 = 0
        func note(_ keys: ClosedRange<Int>, _ count: UInt64) throws(SketchError) {
            guard keys.upperBound <= Int(Int32.max) else {
                throw malformed(
                    "\(name).contiguousBinCounts", 0, "bin key \(keys.upperBound) does not fit 32 bits")
            }
            total += count
            guard total <= QuantileSketch.maxCount else {
                throw malformed(name, 0, "total count \(total) is above 2^53")
            }
            low = Swift.min(low, keys.lowerBound)
            high = Swift.max(high, keys.upperBound)
        }
        for part in parts {
            if let elements = part.nonZeroElements {
                let first = Int(part.firstIndex)
                try note((first + elements.lowerBound)...(first + elements.upperBound), part.contiguousTotal)
            }
            for bin in part.mapBins { try note(Int(bin.key)...Int(bin.key), bin.count) }
        }
        guard total > 0 else { return BinStore(maxBins: maxBins, collapsingEnd: end) }
        guard high - low < maxBins else {
            throw malformed(
                name, 0,
                "bins span keys \(low)...\(high) (\(high - low + 1) keys), over the bin limit of \(maxBins)")
        }
        // The usual case: one contiguous run and nothing else. Its non-zero span is the window.
        if parts.count == 1, parts[0].mapBins.isEmpty, let span = parts[0].nonZeroElements {
            return BinStore(
                maxBins: maxBins, collapsingEnd: end, firstKey: low,
                counts: Array(parts[0].contiguousCounts[span]), total: total)
        }
        var counts = [UInt64](repeating: 0, count: high - low + 1)
        for part in parts {
            if let span = part.nonZeroElements {
                let slot = Int(part.firstIndex) - low  // the window slot of element 0
                for element in span { counts[slot + element] += part.contiguousCounts[element] }
            }
            for bin in part.mapBins { counts[Int(bin.key) - low] += bin.count }
        }
        return BinStore(maxBins: maxBins, collapsingEnd: end, firstKey: low, counts: counts, total: total)
    }
}
