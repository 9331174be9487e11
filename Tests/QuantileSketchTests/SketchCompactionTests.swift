// The event log's sketch compaction: bin counts as varints instead of doubles, expanded back to the
// very same protobuf bytes — for our own sketches over many seeds and sizes, for sketches DataDog's
// Python ddsketch wrote, and refused (so the raw bytes are kept) for anything it cannot reproduce.

import Foundation
import Simulation
import Testing

@testable import QuantileSketch

@Suite("sketch compaction")
struct SketchCompactionTests {
    @Test("our sketches, 0 to 5,000 samples over many seeds, compact and expand to the same bytes")
    func ownSketches() throws {
        for seed in UInt64(1)...60 {
            var generator = SeededGenerator(seed: seed)
            let count = [0, 1, 2, 20, 64, 100, 1000, 5000][Int(seed % 8)]
            var sketch = try QuantileSketch()
            for _ in 0..<count {
                let value = 3 * exp(0.6 * (generator.nextUnit() - 0.5) * 4)
                try sketch.add(seed % 5 == 0 ? -value : value)
            }
            if seed % 7 == 0 { try sketch.add(0, count: 3) }  // zero counts
            if seed % 11 == 0 { try sketch.add(12, count: 1 << 40) }  // a huge bin
            let bytes = sketch.encoded()
            let compact = try #require(SketchCompaction.compact(bytes), "seed \(seed)")
            #expect(try SketchCompaction.expand(compact) == bytes, "seed \(seed)")
            if count >= 20 {
                #expect(compact.count * 2 < bytes.count, "seed \(seed): \(compact.count) of \(bytes.count)")
            }
        }
    }

    @Test("sketches DataDog's Python ddsketch wrote compact and expand to the same bytes")
    func foreignSketches() throws {
        let fixtures = PythonInteropTests.fixtures
        #expect(!fixtures.isEmpty)
        for fixture in fixtures {
            let bytes = try #require(Data(base64Encoded: fixture.base64).map(Array.init), "\(fixture.name)")
            let compact = try #require(SketchCompaction.compact(bytes), "\(fixture.name)")
            #expect(try SketchCompaction.expand(compact) == bytes, "\(fixture.name)")
        }
    }

    @Test("what compaction cannot reproduce is refused (the event log then keeps the raw bytes)")
    func refusals() throws {
        // A Store (field 2) with contiguousBinCounts holding 1.5: not a whole number.
        let fractional: [UInt8] =
            [0x12, 0x0A, 0x12, 0x08] + withUnsafeBytes(of: (1.5).bitPattern.littleEndian, Array.init)
        #expect(SketchCompaction.compact(fractional) == nil)
        // -0.0 is a whole number but would come back as +0.0.
        let negativeZero: [UInt8] =
            [0x12, 0x0A, 0x12, 0x08] + withUnsafeBytes(of: (-0.0).bitPattern.littleEndian, Array.init)
        #expect(SketchCompaction.compact(negativeZero) == nil)
        // A non-minimal varint (field 4 zeroCount is fixed64; use field 5 varint 1 written in two bytes).
        #expect(SketchCompaction.compact([0x28, 0x81, 0x00]) == nil)
        // Truncated and garbage input.
        #expect(SketchCompaction.compact([0x12, 0x05, 0x01]) == nil)
        #expect(SketchCompaction.compact([0x0F]) == nil)
    }

    /// Compaction no longer expands what it made to compare (it checks as it goes); mutated
    /// sketches, most of them no valid sketch at all, hold it to the round trip: whatever it
    /// takes comes back byte for byte. Also non-minimal varints (a length, a tag, a count's field)
    /// and a 10-byte varint with bits past 64.
    @Test("whatever compaction takes, of thousands of mutated sketches, expands to the same bytes")
    func mutatedSketchesRoundTripOrAreRefused() throws {
        var generator = SeededGenerator(seed: 2026)
        var sketch = try QuantileSketch()
        for _ in 0..<40 { try sketch.add(3 * exp(2 * generator.nextUnit())) }
        try sketch.add(0, count: 2)
        let original = sketch.encoded()
        var taken = 0
        for _ in 0..<5000 {
            // Inserted bytes 0x80 and 0x00 make varints non-minimal, which compaction must refuse.
            let bytes = mutated(original, &generator) { $0.next() % 2 == 0 ? 0x80 : 0x00 }
            guard let compact = SketchCompaction.compact(bytes) else { continue }
            taken += 1
            #expect(try SketchCompaction.expand(compact) == bytes)
        }
        #expect(taken > 30)  // the test reaches the accepting side too (64 of these 5,000)
        // A store's length written in two bytes; a count of 1 in a non-minimal zero-count field;
        // a 10-byte varint whose last byte carries bits past 64.
        #expect(SketchCompaction.compact([0x12, 0x8A, 0x00, 0x12, 0x08] + withUnsafeBytes(of: (1.0).bitPattern.littleEndian, Array.init)) == nil)
        #expect(SketchCompaction.compact([0x28, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]) == nil)
        #expect(SketchCompaction.compact([0x28, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]) != nil)
    }

    @Test("a count's double is read from its bits exactly as floating point would judge it")
    func wholeCountFromBits() {
        // The definition: a double from 0 to 2^53 whose value is whole, and not -0.0.
        func byFloatingPoint(_ bits: UInt64) -> UInt64? {
            let count = Double(bitPattern: bits)
            guard count >= 0, count <= Double(1 << 53), count == count.rounded(.towardZero),
                Double(UInt64(count)).bitPattern == bits
            else { return nil }
            return UInt64(count)
        }
        var special: [Double] = [
            0, -0.0, 1, -1, 0.5, 1.5, 2, 3, 127, 128, 1e15, 1e16, 4503599627370495.5,
            Double(1 << 52), Double(1 << 53), Double(1 << 53) + 2, Double(1 << 53).nextDown, Double(1 << 54),
            .infinity, -.infinity, .nan, .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude,
        ]
        special += (0...64).map { Double(UInt64(1) << min($0, 63)) }
        var cases = special.map(\.bitPattern) + special.map { $0.bitPattern ^ 1 }
        var generator = SeededGenerator(seed: 42)
        for _ in 0..<200_000 {
            // Random bits, and random whole numbers of every magnitude (the accepted ones).
            cases.append(generator.next())
            cases.append(Double(generator.next() >> (generator.next() % 64)).bitPattern)
        }
        var accepted = 0
        for bits in cases {
            #expect(SketchCompaction.wholeCount(bits: bits) == byFloatingPoint(bits), "bits \(bits)")
            if byFloatingPoint(bits) != nil { accepted += 1 }
        }
        #expect(accepted > 100_000)
    }

    @Test("expanding garbage fails with a reason, never traps")
    func expandGarbage() throws {
        let compact = try #require(
            SketchCompaction.compact(try QuantileSketch(relativeAccuracy: 0.01).encoded() + [0x20, 0x05]))
        for cut in 0..<compact.count {
            _ = try? SketchCompaction.expand(Array(compact.prefix(cut)))
        }
        #expect(throws: SketchError.self) { try SketchCompaction.expand([0x12, 0x01, 0x12, 0x05]) }
    }
}
