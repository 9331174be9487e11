// The event log's varint reader: values of every length read back as written, one after another,
// whichever path (one byte, two bytes, longer) reads them; non-minimal forms read as before;
// truncated and overlong ones refused.

import QuantileSketch
import Simulation
import Testing

@testable import Store

@Suite("byte reader")
struct ByteReaderTests {
    @Test("varints of one to ten bytes read back in sequence, each from where the last ended")
    func varintsReadBackInSequence() throws {
        var values: [UInt64] = [0, 1, 63, 64, 127, 128, 129, 255, 300, 16_383, 16_384, 16_385, 1 << 21, 1 << 35, .max]
        var generator = SeededGenerator(seed: 2_024)
        for _ in 0..<200 { values.append(generator.next() >> (generator.next() % 64)) }
        var bytes: [UInt8] = []
        for value in values { appendVarint(value, to: &bytes) }
        try bytes.withUnsafeBufferPointer { bytes throws in
            var reader = ByteReader(bytes)
            for value in values { #expect(try reader.varint() == value) }
            #expect(reader.isAtEnd)
        }
    }

    @Test("non-minimal varints read as their value; truncated and overlong ones throw")
    func unusualVarints() throws {
        try [UInt8]([0x85, 0x00, 0x80, 0x80, 0x00, 0x81, 0x80, 0x00, 0x07]).withUnsafeBufferPointer { bytes throws in
            var nonMinimal = ByteReader(bytes)
            #expect(try nonMinimal.varint() == 5)
            #expect(try nonMinimal.varint() == 0)
            #expect(try nonMinimal.varint() == 1)
            #expect(try nonMinimal.varint() == 7)
            #expect(nonMinimal.isAtEnd)
        }
        // Truncated; and ten bytes whose last carries more than the 64th bit.
        let refused: [[UInt8]] = [[], [0x80], [0x80, 0x80], [0xFF, 0xFF, 0xFF], [UInt8](repeating: 0xFF, count: 9) + [0x02]]
        for bytes in refused {
            bytes.withUnsafeBufferPointer { bytes in
                var reader = ByteReader(bytes)
                #expect(throws: EncodingError.self) { try reader.varint() }
            }
        }
    }
}
