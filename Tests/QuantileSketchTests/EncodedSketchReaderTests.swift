// EncodedSketchReader must answer exactly as decoding the sketch and asking it would: the same
// count, the same quantiles bit for bit, and an error whenever decoding throws, for the canonical
// form it reads in place and for every other form and every malformed input it hands on.

import Foundation
import Simulation
import Testing

@testable import QuantileSketch

/// What the full decoder says about `bytes`: its count and answers, or nil when it throws.
private func decodedAnswers(_ bytes: [UInt8], _ qs: [Double]) -> (count: UInt64, answers: [Double])? {
    guard let sketch = try? QuantileSketch(decoding: bytes) else { return nil }
    return (sketch.count, (try? sketch.quantiles(qs)) ?? [])
}

/// What the reader says about `bytes`, in the same shape.
private func readerAnswers(_ reader: inout EncodedSketchReader, _ bytes: [UInt8]) -> (count: UInt64, answers: [Double])? {
    do {
        try bytes.withUnsafeBufferPointer { buffer throws(SketchError) in try reader.read(bytes: buffer) }
    } catch {
        return nil
    }
    return (reader.count, reader.count == 0 ? [] : reader.answers)
}

private func expectSameAnswers(
    _ bytes: [UInt8], _ reader: inout EncodedSketchReader, sourceLocation: SourceLocation = #_sourceLocation
) {
    let expected = decodedAnswers(bytes, reader.quantiles)
    let actual = readerAnswers(&reader, bytes)
    #expect(expected?.count == actual?.count, sourceLocation: sourceLocation)
    #expect(expected?.answers == actual?.answers, sourceLocation: sourceLocation)
    // And through base64, as reports carry it.
    let text = Data(bytes).base64EncodedString()
    let viaText: (count: UInt64, answers: [Double])? =
        (try? reader.read(base64: text)) == true ? (reader.count, reader.count == 0 ? [] : reader.answers) : nil
    #expect(expected?.count == viaText?.count, sourceLocation: sourceLocation)
    #expect(expected?.answers == viaText?.answers, sourceLocation: sourceLocation)
    // And in the event log's compact form, whenever compaction takes the bytes.
    if let compact = SketchCompaction.compact(bytes) {
        let viaCompact = compactReaderAnswers(&reader, compact)
        #expect(expected?.count == viaCompact?.count, sourceLocation: sourceLocation)
        #expect(expected?.answers == viaCompact?.answers, sourceLocation: sourceLocation)
    }
}

/// `bytes` with one to three seeded mutations: a bit flipped, a byte replaced, one from `inserting`
/// inserted (a small one unless told otherwise), a byte removed, or the rest cut off.
func mutated(
    _ original: [UInt8], _ generator: inout SeededGenerator,
    inserting: (inout SeededGenerator) -> UInt8 = { UInt8(truncatingIfNeeded: $0.next() % 40) }
) -> [UInt8] {
    var bytes = original
    for _ in 0...(generator.next() % 3) {
        let position = Int(generator.next() % UInt64(bytes.count + 1))
        switch generator.next() % 5 {
        case 0 where position < bytes.count: bytes[position] ^= UInt8(1 << (generator.next() % 8))
        case 1 where position < bytes.count: bytes[position] = UInt8(truncatingIfNeeded: generator.next())
        case 2: bytes.insert(inserting(&generator), at: position)
        case 3 where position < bytes.count: bytes.remove(at: position)
        default: bytes = Array(bytes.prefix(position))
        }
    }
    return bytes
}

/// What the reader says about a compact form, in the same shape.
private func compactReaderAnswers(_ reader: inout EncodedSketchReader, _ compact: [UInt8]) -> (count: UInt64, answers: [Double])? {
    do {
        try compact.withUnsafeBufferPointer { buffer throws(SketchError) in try reader.read(compact: buffer) }
    } catch {
        return nil
    }
    return (reader.count, reader.count == 0 ? [] : reader.answers)
}

struct EncodedSketchReaderTests {
    /// The canonical form: sketches as agents write them, small and large, with zeros.
    @Test(arguments: 0..<6)
    func canonicalSketchesAnswerAsDecoded(seed: Int) throws {
        var reader = try EncodedSketchReader(quantiles: testQuantiles)
        var generator = SeededGenerator(seed: UInt64(seed) + 404)
        for size in [1, 2, 5, 20, 100, 1000] {
            var sketch = try QuantileSketch()
            let values = LatencyDistribution.lognormal(median: 8, sigma: 0.2 + 0.3 * generator.nextUnit())
                .samples(size, seed: generator.next())
            try sketch.add(contentsOf: values)
            if seed % 2 == 0 { try sketch.add(0, count: UInt64(seed + 1)) }
            expectSameAnswers(sketch.encoded(), &reader)
        }
        expectSameAnswers(try QuantileSketch().encoded(), &reader)  // empty: count 0
    }

    /// Runs of bins whose counts are each below 128 (stored one byte each in the compact form, and
    /// walked eight at a time): runs of every length across the word boundaries, empty bins
    /// among them, heavy bins at either end, with and without zeros, against the full decoder.
    @Test(arguments: 0..<4)
    func oneByteCountsAnswerAsDecoded(seed: Int) throws {
        var reader = try EncodedSketchReader(quantiles: testQuantiles)
        var generator = SeededGenerator(seed: UInt64(seed) &* 6_151 &+ 3)
        let mapping = IndexMapping.default
        for bins in 1...120 {
            var sketch = try QuantileSketch()
            let firstKey = mapping.key(2) + Int(generator.next() % 200)
            for offset in 0..<bins {
                let count: UInt64
                switch generator.next() % 4 {
                case 0: count = 0
                case 1: count = 100 + generator.next() % 28  // heavy: 100 to 127
                default: count = generator.next() % 8
                }
                if count > 0 || offset == 0 || offset == bins - 1 {
                    try sketch.add(mapping.value(ofKey: firstKey + offset), count: max(count, 1))
                }
            }
            if generator.next() % 3 == 0 { try sketch.add(0, count: 1 + generator.next() % 200) }
            let compact = try #require(SketchCompaction.compact(sketch.encoded()))
            let expected = decodedAnswers(sketch.encoded(), reader.quantiles)
            let actual = compactReaderAnswers(&reader, compact)
            #expect(actual != nil && expected?.count == actual?.count, "\(bins) bins")
            #expect(expected?.answers == actual?.answers, "\(bins) bins")
        }
    }

    /// An empty compact form with no address at all (an empty blob's, as SQLite gives it) reads as
    /// decoding empty bytes does, and never traps.
    @Test func emptyCompactFormReadsAsEmptyBytes() throws {
        var reader = try EncodedSketchReader(quantiles: [0.5, 0.99])
        let expected = decodedAnswers([], reader.quantiles)
        let actual: (count: UInt64, answers: [Double])?
        do {
            try reader.read(compact: UnsafeBufferPointer(start: nil, count: 0))
            actual = (reader.count, reader.count == 0 ? [] : reader.answers)
        } catch {
            actual = nil
        }
        #expect(expected?.count == actual?.count)
        #expect(expected?.answers == actual?.answers)
    }

    /// Counts on both sides of 2^31 (where the in-place walk hands over to the full decoder), with
    /// and without zeros, and bins so heavy that a quantile's rank falls in their middle.
    @Test func largeCountsAnswerAsDecoded() throws {
        var reader = try EncodedSketchReader(quantiles: testQuantiles)
        let limit: UInt64 = 1 << 31
        for (heavy, zeros) in [(limit - 3, UInt64(2)), (limit - 2, 2), (limit - 1, 0), (limit, 0), (limit / 2, limit / 2)] {
            var sketch = try QuantileSketch()
            try sketch.add(12.5, count: heavy)
            try sketch.add(contentsOf: [3, 40, 900])
            if zeros > 0 { try sketch.add(0, count: zeros) }
            expectSameAnswers(sketch.encoded(), &reader)
        }
    }

    /// Everything else goes through the full decoder and still answers alike: negative values,
    /// other accuracies and interpolations, map-form bins, repeated stores.
    @Test func otherFormsAnswerAsDecoded() throws {
        var reader = try EncodedSketchReader(quantiles: [0.5, 0.9, 0.99, 0.999])
        for seed in 0..<4 {
            var mixed = try QuantileSketch(relativeAccuracy: seed % 2 == 0 ? 0.01 : 0.02)
            try mixed.add(contentsOf: mixedValues(300, seed: UInt64(seed)))
            expectSameAnswers(mixed.encoded(), &reader)
        }
        var proto = ProtoBytes()
        proto.mapping()
        proto.message(2) { store in
            store.message(1) { entry in
                entry.sint32(1, 120)
                entry.double(2, 3)
            }
            store.packedDoubles(2, [1, 0, 2])
            store.sint32(3, 100)
        }
        proto.message(2) { store in store.packedDoubles(2, [5]) }
        expectSameAnswers(proto.bytes, &reader)
        var interpolated = ProtoBytes()
        interpolated.mapping(gamma: 1.05, interpolation: 3)
        interpolated.message(2) { store in store.packedDoubles(2, [1, 2, 3]) }
        expectSameAnswers(interpolated.bytes, &reader)
    }

    /// Mutated encodings: the reader accepts exactly what the decoder accepts, and agrees with it.
    @Test(arguments: 0..<4)
    func mutatedEncodingsAgreeWithTheDecoder(seed: Int) throws {
        var reader = try EncodedSketchReader(quantiles: [0.5, 0.9, 0.99, 0.999])
        var generator = SeededGenerator(seed: UInt64(seed) &* 104_729)
        var small = try QuantileSketch()
        try small.add(contentsOf: LatencyDistribution.lognormal(median: 8, sigma: 0.3).samples(20, seed: UInt64(seed)))
        try small.add(0, count: 2)
        let originals = [small.encoded()]
        var accepted = 0
        for _ in 0..<3000 {
            let bytes = mutated(originals[0], &generator)
            if decodedAnswers(bytes, reader.quantiles) != nil { accepted += 1 }
            expectSameAnswers(bytes, &reader)
        }
        #expect(accepted > 0)
    }

    /// Mutated compact forms: read in place or not, the answers are those of decoding what they
    /// expand to, and an error when they do not expand or that does not decode.
    @Test(arguments: 0..<4)
    func mutatedCompactFormsAgreeWithTheDecoder(seed: Int) throws {
        var reader = try EncodedSketchReader(quantiles: [0.5, 0.99])
        var generator = SeededGenerator(seed: UInt64(seed) &* 7_919)
        var sketch = try QuantileSketch()
        try sketch.add(contentsOf: LatencyDistribution.lognormal(median: 8, sigma: 0.4).samples(100, seed: UInt64(seed)))
        if seed % 2 == 1 { try sketch.add(0, count: 3) }
        let original = try #require(SketchCompaction.compact(sketch.encoded()))
        var agreed = 0
        for _ in 0..<3000 {
            let compact = mutated(original, &generator)
            let expected = (try? SketchCompaction.expand(compact)).flatMap { decodedAnswers($0, reader.quantiles) }
            let actual = compactReaderAnswers(&reader, compact)
            #expect(expected?.count == actual?.count)
            #expect(expected?.answers == actual?.answers)
            if expected != nil { agreed += 1 }
        }
        #expect(agreed > 100)
    }

    /// Text that is not strict base64 is still judged by Foundation's decoder, as before.
    @Test(arguments: 0..<4)
    func base64MatchesFoundation(seed: Int) throws {
        var generator = SeededGenerator(seed: UInt64(seed) + 77)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n -_".utf8)
        for _ in 0..<3000 {
            let bytes = (0..<Int(generator.next() % 40)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            var text = Array(Data(bytes).base64EncodedString().utf8)
            if generator.next() % 2 == 0 && !text.isEmpty {
                text[Int(generator.next() % UInt64(text.count))] = alphabet[Int(generator.next() % UInt64(alphabet.count))]
            }
            var output = [UInt8](repeating: 0, count: StrictBase64.outputCapacity(forLength: text.count))
            let length = text.withUnsafeBufferPointer { text in
                output.withUnsafeMutableBufferPointer { StrictBase64.decode(text, into: $0) }
            }
            let decoded = length.map { Array(output[..<$0]) }
            let foundation = Data(base64Encoded: String(decoding: text, as: UTF8.self))
            if let decoded {
                // What the strict decoder takes, Foundation takes too, with the same bytes.
                #expect(foundation.map(Array.init) == decoded)
            }
            if text == Array(Data(bytes).base64EncodedString().utf8) {
                #expect(decoded == bytes)
            }
            // Strict is canonical: accepted exactly when the decoded bytes encode back to the text.
            let string = String(decoding: text, as: UTF8.self)
            #expect((StrictBase64.decode(string) != nil) == (foundation.map { $0.base64EncodedString() == string } ?? false))
        }
        var reader = try EncodedSketchReader(quantiles: [0.5])
        #expect(try reader.read(base64: "not base64!") == false)
    }

    @Test func quantilesOutsideTheUnitIntervalAreRefused() {
        #expect(throws: SketchError.invalidQuantile(1.5)) { try EncodedSketchReader(quantiles: [0.5, 1.5]) }
    }
}

struct EncodedSketchAccumulatorTests {
    /// The merge of many encoded sketches, canonical and not, equals decoding each and merging.
    @Test(arguments: 0..<4)
    func mergesAsDecodedSketchesDo(seed: Int) throws {
        var generator = SeededGenerator(seed: UInt64(seed) + 77)
        var accumulator = EncodedSketchAccumulator()
        var merged = try QuantileSketch()
        let empty = try accumulator.sketch()
        #expect(accumulator.isEmpty && empty == nil)
        for index in 0..<60 {
            var sketch = try QuantileSketch()
            let values = LatencyDistribution.lognormal(median: 5 + Double(index % 7), sigma: 0.1 + 0.5 * generator.nextUnit())
                .samples(1 + Int(generator.next() % 400), seed: generator.next())
            try sketch.add(contentsOf: values)
            if index % 9 == 0 { try sketch.add(0, count: 3) }
            if index % 13 == 0 { try sketch.add(-2.5) }  // negative values: not the canonical form
            let bytes = sketch.encoded()
            try bytes.withUnsafeBufferPointer { (buffer) throws(SketchError) in try accumulator.add(bytes: buffer) }
            try merged.merge(try QuantileSketch(decoding: bytes))
        }
        let result = try #require(try accumulator.sketch())
        #expect(result.count == merged.count && result.zeroCount == merged.zeroCount && result.binCount == merged.binCount)
        let answers = try result.quantiles(testQuantiles)
        #expect(try answers == merged.quantiles(testQuantiles))
        #expect(result.encoded() == merged.encoded())
    }

    @Test func malformedBytesThrowAndChangeNothing() throws {
        var accumulator = EncodedSketchAccumulator()
        var sketch = try QuantileSketch()
        try sketch.add(contentsOf: [3, 4, 5])
        let good = sketch.encoded()
        try good.withUnsafeBufferPointer { (buffer) throws(SketchError) in try accumulator.add(bytes: buffer) }
        #expect(throws: SketchError.self) {
            try Array(good.dropLast(3)).withUnsafeBufferPointer { (buffer) throws(SketchError) in try accumulator.add(bytes: buffer) }
        }
        let kept = try accumulator.sketch()
        #expect(kept?.count == 3)
    }
}
