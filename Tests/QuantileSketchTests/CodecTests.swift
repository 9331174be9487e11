// The protobuf codec: round trips, the forms a reader must accept, what it must reject (with the
// field and offset), a seeded mutation fuzz, and interop with DataDog's Python ddsketch fixtures.

import Foundation
import Simulation
import Testing

@testable import QuantileSketch

/// A minimal protobuf writer for building test inputs by hand (map form, odd orders, bad types).
struct ProtoBytes {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }
    mutating func tag(_ field: UInt64, _ wireType: UInt64) { varint(field << 3 | wireType) }
    mutating func double(_ field: UInt64, _ value: Double) {
        tag(field, 1)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
    }
    mutating func message(_ field: UInt64, _ build: (inout ProtoBytes) -> Void) {
        var inner = ProtoBytes()
        build(&inner)
        tag(field, 2)
        varint(UInt64(inner.bytes.count))
        bytes += inner.bytes
    }
    mutating func sint32(_ field: UInt64, _ value: Int32) {
        tag(field, 0)
        varint(UInt64(UInt32(bitPattern: (value << 1) ^ (value >> 31))))
    }
    mutating func packedDoubles(_ field: UInt64, _ values: [Double]) {
        tag(field, 2)
        varint(UInt64(values.count * 8))
        for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 } }
    }
    mutating func mapping(gamma: Double = 1.02 / 0.98, interpolation: UInt64 = 0) {
        message(1) { m in
            m.double(1, gamma)
            if interpolation != 0 {
                m.tag(3, 0)
                m.varint(interpolation)
            }
        }
    }
}

/// Expects decoding to fail with a message that contains every fragment.
func expectRejected(
    _ bytes: [UInt8], _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation
) {
    do {
        let sketch = try QuantileSketch(decoding: bytes)
        Issue.record(
            "decoded \(sketch.count) values; expected an error with \(fragments)",
            sourceLocation: sourceLocation)
    } catch {
        for fragment in fragments {
            #expect(
                error.description.contains(fragment), "\(error.description)", sourceLocation: sourceLocation)
        }
    }
}

struct CodecRoundTripTests {
    @Test(arguments: 0..<6)
    func roundTripKeepsBinsAndReencodesIdentically(seed: Int) throws {
        for values in [
            mixedValues(3000, seed: UInt64(seed)),
            LatencyDistribution.lognormal(median: 8, sigma: 0.1).samples(1000, seed: UInt64(seed)),
        ] {
            let original = try sketch(of: values)
            let wire = original.encoded()
            let decoded = try QuantileSketch(decoding: wire)
            #expect(decoded.count == original.count)
            #expect(decoded.zeroCount == original.zeroCount)
            #expect(decoded.encoded() == wire)
            #expect(decoded.min == nil && decoded.max == nil && decoded.sum == nil)
            // Answers agree except where the original clamps to its known min and max.
            let sorted = values.sorted()
            for (q, answer) in zip(testQuantiles, try #require(try decoded.quantiles(testQuantiles))) {
                #expect(isWithin(0.01, answer, of: exactLowerQuantile(sorted, q)))
            }
        }
    }

    @Test func emptySketchRoundTrips() throws {
        let wire = try QuantileSketch().encoded()
        let decoded = try QuantileSketch(decoding: wire)
        #expect(decoded.isEmpty)
        #expect(try decoded.quantile(0.5) == nil)
        #expect(decoded.encoded() == wire)
    }

    @Test func narrowLognormalFitsInFourHundredBytes() throws {
        for seed in 0..<20 {
            let values = LatencyDistribution.lognormal(median: 8, sigma: 0.1).samples(
                1000, seed: UInt64(seed))
            #expect(try sketch(of: values).encoded().count <= 400)
        }
    }

    @Test func decodedSketchesMergeWithLocalOnes() throws {
        let a = try sketch(of: [1, 2, 3, 4])
        var b = try QuantileSketch(decoding: try sketch(of: [5, 6]).encoded())
        try b.merge(a)
        #expect(b.count == 6)
        #expect(b.max == nil)  // one side's extremes are unknown
        #expect(b.encoded() == (try sketch(of: [1, 2, 3, 4, 5, 6])).encoded())
    }
}

struct CodecReaderTests {
    @Test func mapFormContiguousFormAndMixesAddUp() throws {
        var proto = ProtoBytes()
        proto.mapping()
        proto.message(2) { store in
            for (key, count) in [(Int32(10), 2.0), (12, 1), (10, 3)] {  // key 10 named twice
                store.message(1) { entry in
                    entry.sint32(1, key)
                    entry.double(2, count)
                }
            }
            store.packedDoubles(2, [1, 0, 4])  // keys 11, 12, 13 once the offset below applies
            store.sint32(3, 11)
        }
        proto.message(3) { store in store.packedDoubles(2, [2]) }  // negative key 0: -0.99
        proto.double(4, 5)
        let decoded = try QuantileSketch(decoding: proto.bytes)
        #expect(decoded.count == 5 + 1 + 4 + 1 + 2 + 5)
        #expect(decoded.zeroCount == 5)
        var expected: [Int: UInt64] = [:]
        decoded.positive.forEachBin { key, count in expected[key] = count }
        #expect(expected == [10: 5, 11: 1, 12: 1, 13: 4])
        #expect(decoded.negative.total == 2)
    }

    @Test func unknownFieldsAreSkipped() throws {
        var proto = ProtoBytes()
        proto.tag(9, 0)
        proto.varint(12345)
        proto.mapping()
        proto.tag(10, 5)
        proto.bytes += [1, 2, 3, 4]
        proto.message(11) { $0.bytes = [0xFF, 0xFF] }  // unknown length-delimited: skipped unparsed
        proto.message(2) { store in
            store.packedDoubles(2, [3])
            store.tag(7, 1)
            store.bytes += Array(repeating: 0, count: 8)
        }
        #expect(try QuantileSketch(decoding: proto.bytes).count == 3)
    }

    @Test func unpackedRepeatedDoublesAreAccepted() throws {
        var proto = ProtoBytes()
        proto.mapping()
        proto.message(2) { store in
            store.double(2, 1)
            store.double(2, 2)
        }
        #expect(try QuantileSketch(decoding: proto.bytes).count == 3)
    }

    @Test func interpolatedMappingsAreRead() throws {
        for interpolation: UInt64 in [1, 3] {
            var proto = ProtoBytes()
            proto.mapping(interpolation: interpolation)
            proto.message(2) { $0.packedDoubles(2, [1]) }
            let decoded = try QuantileSketch(decoding: proto.bytes)
            #expect(decoded.mapping.interpolation.rawValue == Int(interpolation))
        }
    }

    @Test func malformedInputIsRejectedWithItsPlace() {
        var missingMapping = ProtoBytes()
        missingMapping.message(2) { $0.packedDoubles(2, [1]) }
        expectRejected(missingMapping.bytes, "mapping", "gamma")

        for gamma in [1.0, 0.5, -2, .nan, .infinity, 1 + 1e-12, 0x1p54, 1e300, .greatestFiniteMagnitude] {
            var proto = ProtoBytes()
            proto.mapping(gamma: gamma)
            expectRejected(proto.bytes, "mapping", "gamma")
        }
        for (interpolation, name) in [(UInt64(2), "QUADRATIC"), (7, "7")] {
            var proto = ProtoBytes()
            proto.mapping(interpolation: interpolation)
            expectRejected(proto.bytes, "interpolation", name)
        }
        for (count, reason) in [
            (-1.0, "negative"), (.nan, "not finite"), (.infinity, "not finite"), (0.5, "whole"),
            (1e17, "2^53"),
        ] {
            var packed = ProtoBytes()
            packed.mapping()
            packed.message(2) { $0.packedDoubles(2, [1, count]) }
            expectRejected(packed.bytes, "positiveValues.contiguousBinCounts[1]", reason)
            var map = ProtoBytes()
            map.mapping()
            map.message(3) { store in
                store.message(1) { entry in
                    entry.sint32(1, 4)
                    entry.double(2, count)
                }
            }
            expectRejected(map.bytes, "negativeValues.binCounts[0].value", reason)
            var zero = ProtoBytes()
            zero.mapping()
            zero.double(4, count)
            expectRejected(zero.bytes, "zeroCount", reason)
        }
        var wrongType = ProtoBytes()
        wrongType.message(1) { m in
            m.tag(1, 0)  // gamma as a varint
            m.varint(3)
        }
        expectRejected(wrongType.bytes, "mapping", "wire type")

        var storeAsDouble = ProtoBytes()
        storeAsDouble.mapping()
        storeAsDouble.double(2, 1)
        expectRejected(storeAsDouble.bytes, "DDSketch", "wire type")

        var oddPacked = ProtoBytes()
        oddPacked.mapping()
        oddPacked.message(2) { store in
            store.tag(2, 2)
            store.varint(7)
            store.bytes += Array(repeating: 0, count: 7)
        }
        expectRejected(oddPacked.bytes, "contiguousBinCounts", "multiple of 8")

        var group = ProtoBytes()
        group.tag(5, 3)
        expectRejected(group.bytes, "wire type 3")

        expectRejected([0x0A, 0x80], "truncated")  // mapping's length varint runs out
        expectRejected([0x0A, 0x05, 0x09, 0x00], "past the end")
        // An unknown field 9 is skipped, but its varint runs past 64 bits.
        expectRejected([0x48] + Array(repeating: 0xFF, count: 10) + [0x01], "varint overflows")
        expectRejected([0x00], "field number 0")
    }

    @Test func totalsAboveTwoToTheFiftyThreeAreRejectedWithoutWrapping() {
        let big = Double(QuantileSketch.maxCount)
        // 2048 × 2^53 is exactly 2^64: a wrapping sum would see 0 and accept an empty sketch.
        var wrapping = ProtoBytes()
        wrapping.mapping()
        wrapping.message(2) { $0.packedDoubles(2, Array(repeating: big, count: 2048)) }
        wrapping.double(4, 5)
        expectRejected(wrapping.bytes, "positiveValues", "above 2^53")
        var two = ProtoBytes()
        two.mapping()
        two.message(2) { $0.packedDoubles(2, [big, 1]) }
        expectRejected(two.bytes, "above 2^53")
        var acrossSigns = ProtoBytes()
        acrossSigns.mapping()
        acrossSigns.message(2) { $0.packedDoubles(2, [big]) }
        acrossSigns.message(3) { $0.packedDoubles(2, [big]) }
        expectRejected(acrossSigns.bytes, "above 2^53")
        var manyStores = ProtoBytes()
        manyStores.mapping()
        for _ in 0..<3 { manyStores.message(2) { $0.packedDoubles(2, [big]) } }
        expectRejected(manyStores.bytes, "above 2^53")
    }

    @Test func errorsGiveTheByteOffset() {
        var proto = ProtoBytes()
        proto.mapping()  // 11 bytes: tag, length, tag, 8 bytes of gamma
        proto.message(2) { $0.packedDoubles(2, [1, -1]) }  // tag, length, tag, length, 8, 8
        do {
            _ = try QuantileSketch(decoding: proto.bytes)
            Issue.record("a negative count must be refused")
        } catch {
            #expect(
                error
                    == .malformed(
                        field: "positiveValues.contiguousBinCounts[1]", offset: 11 + 4 + 8,
                        reason: "count -1.0 is negative"))
        }
    }

    @Test func binsBeyondTheLimitAreRejected() {
        var wide = ProtoBytes()
        wide.mapping()
        wide.message(2) { store in
            for key: Int32 in [-1500, 1500] {
                store.message(1) { entry in
                    entry.sint32(1, key)
                    entry.double(2, 1)
                }
            }
        }
        expectRejected(wide.bytes, "positiveValues", "bin limit")
        var overflowingKeys = ProtoBytes()
        overflowingKeys.mapping()
        overflowingKeys.message(2) { store in
            store.packedDoubles(2, [0, 1])
            store.sint32(3, Int32.max)
        }
        expectRejected(overflowingKeys.bytes, "32 bits")
    }

    @Test func everyTruncationOfAValidSketchIsHandled() throws {
        let values =
            mixedValues(40, seed: 5)
            + LatencyDistribution.lognormal(median: 8, sigma: 0.1).samples(260, seed: 5)
        let wire = try sketch(of: values).encoded()
        for length in 0..<wire.count {
            // A prefix may end on a field boundary and be a valid (smaller) sketch; otherwise it
            // must be rejected. Either way: no trap, and a decoded prefix never holds more.
            if let prefix = try? QuantileSketch(decoding: wire[0..<length]) {
                #expect(prefix.count <= 300)
            }
        }
    }
}

struct CodecFuzzTests {
    /// Random mutations of valid encodings: each input decodes to a self-consistent sketch or
    /// throws a SketchError; nothing traps or hangs.
    @Test(arguments: 0..<8)
    func mutatedInputsNeverTrap(seed: Int) throws {
        var generator = SeededGenerator(seed: UInt64(seed) &* 7919)
        let seeds = try [
            sketch(of: mixedValues(200, seed: UInt64(seed))).encoded(),
            sketch(of: LatencyDistribution.lognormal(median: 8, sigma: 0.3).samples(500, seed: UInt64(seed)))
                .encoded(),
            QuantileSketch().encoded(),
        ]
        var accepted = 0
        for _ in 0..<3000 {
            var bytes = seeds[Int(generator.next() % UInt64(seeds.count))]
            for _ in 0...(generator.next() % 4) {
                let position = bytes.isEmpty ? 0 : Int(generator.next() % UInt64(bytes.count))
                switch generator.next() % 6 {
                case 0 where !bytes.isEmpty: bytes[position] ^= UInt8(1 << (generator.next() % 8))
                case 1 where !bytes.isEmpty: bytes[position] = UInt8(truncatingIfNeeded: generator.next())
                case 2: bytes.insert(UInt8(truncatingIfNeeded: generator.next()), at: position)
                case 3 where !bytes.isEmpty: bytes.remove(at: position)
                case 4: bytes = Array(bytes.prefix(position))
                default:
                    let other = seeds[Int(generator.next() % UInt64(seeds.count))]
                    bytes += other.prefix(Int(generator.next() % UInt64(other.count + 1)))
                }
            }
            guard let decoded = try? QuantileSketch(decoding: bytes) else { continue }
            accepted += 1
            // Whatever was accepted is a real sketch: its bins add up to its count, it answers
            // within the values it holds, and it survives its own round trip unchanged.
            var binned: UInt64 = decoded.zeroCount
            decoded.positive.forEachBin { _, count in binned += count }
            decoded.negative.forEachBin { _, count in binned += count }
            #expect(binned == decoded.count)
            #expect(decoded.count <= QuantileSketch.maxCount)
            if let answers = try decoded.quantiles(testQuantiles) {
                #expect(answers.allSatisfy { $0.isFinite })
                #expect(answers == answers.sorted())
            }
            let reencoded = decoded.encoded()
            #expect(try QuantileSketch(decoding: reencoded).encoded() == reencoded)
            #expect(
                decoded.positive.bins.count <= decoded.maxBins
                    && decoded.negative.bins.count <= decoded.maxBins)
        }
        #expect(accepted > 0)  // mutations that keep a valid message exist: the fuzz reaches past the header
    }

    /// Random bodies behind a valid mapping, so the fuzz reaches the stores, not just the header.
    @Test(arguments: 0..<4)
    func randomStoresNeverTrap(seed: Int) {
        var generator = SeededGenerator(seed: UInt64(seed) + 31337)
        var header = ProtoBytes()
        header.mapping()
        var accepted = 0
        for _ in 0..<3000 {
            let body = (0..<Int(generator.next() % 96)).map { _ in
                UInt8(truncatingIfNeeded: generator.next() % 40)
            }
            if let sketch = try? QuantileSketch(decoding: header.bytes + body) {
                accepted += 1
                #expect(sketch.count <= QuantileSketch.maxCount)
            }
        }
        #expect(accepted > 0)
    }
}

/// Sketches written by DataDog's Python ddsketch (ci/make-ddsketch-fixtures.py).
struct PythonInteropTests {
    struct Fixture: Decodable {
        let name: String
        let interpolation: String
        let relativeAccuracy: Double
        let count: Int
        let base64: String
        let ddsketchQuantiles: [String: Double?]
        let exactQuantiles: [String: Double?]
        let expectError: String?
    }
    struct FixtureFile: Decodable {
        let fixtures: [Fixture]
    }

    static let fixtures: [Fixture] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/ddsketch-python.json")
        guard let data = try? Data(contentsOf: url),
            let file = try? JSONDecoder().decode(FixtureFile.self, from: data)
        else { return [] }
        return file.fixtures
    }()

    @Test func fixturesArePresent() {
        #expect(Self.fixtures.count >= 10)
        #expect(Self.fixtures.contains { $0.expectError != nil })
        #expect(Set(Self.fixtures.map(\.interpolation)) == ["NONE", "LINEAR", "CUBIC"])
    }

    @Test(arguments: fixtures.map(\.name))
    func decodesWhatPythonWroteAndAnswersAlike(name: String) throws {
        let fixture = try #require(Self.fixtures.first { $0.name == name })
        let bytes = try #require(Data(base64Encoded: fixture.base64))
        if let fragment = fixture.expectError {
            expectRejected([UInt8](bytes), fragment)
            return
        }
        let decoded = try QuantileSketch(decoding: bytes)
        #expect(decoded.count == UInt64(fixture.count))
        #expect(abs(decoded.relativeAccuracy - fixture.relativeAccuracy) < 1e-12)
        for (label, theirs) in fixture.ddsketchQuantiles {
            let q = try #require(Double(label))
            let ours = try decoded.quantile(q)
            guard let theirs else {
                #expect(ours == nil)
                continue
            }
            let answer = try #require(ours)
            #expect(
                abs(answer - theirs) <= 1e-9 * abs(theirs),
                "\(name) q \(label): ours \(answer), ddsketch \(theirs)")
            if let exact = fixture.exactQuantiles[label] ?? nil {
                #expect(isWithin(fixture.relativeAccuracy, answer, of: exact), "\(name) q \(label)")
            }
        }
    }
}
