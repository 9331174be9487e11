// log2 for positive normal doubles, about three times faster than libm's here and within a few
// ulps of it: the sketch takes one per value added, and a probe adds millions.
//
// x = 2^e · m with m in [1, 2). m is scaled by a tabulated 1/c, where c is the start of the
// 1/256-wide slice of [1, 2) that m falls in, so r = m/c - 1 is in [0, 2^-8) and
// log2(m) = log2(c) + log2(1 + r) needs only a short series in r. Powers of two come out exact.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The table and the function. A mapping keeps its own copy (the array's buffer is shared) so that
/// the hot path reads a stored property instead of checking a lazily initialized global per value.
struct FastLog2: Sendable {
    private static let sliceBits = 8
    static let shared = FastLog2()

    /// Interleaved per slice: 1/c, then -log2(1/c) computed from that rounded 1/c by libm.
    private let table: [Double]

    private init() {
        let libmLog2: (Double) -> Double = log2
        let slices = 1 << Self.sliceBits
        var table = [Double](repeating: 0, count: 2 * slices)
        for slice in 0..<slices {
            let inverse = 1 / (1 + Double(slice) / Double(slices))
            table[2 * slice] = inverse
            table[2 * slice + 1] = -libmLog2(inverse)
        }
        self.table = table
    }

    /// log2(x) for a positive, finite, normal x (the caller guarantees it).
    @inline(__always)
    func evaluate(_ x: Double) -> Double {
        let bits = x.bitPattern
        let exponent = Double(Int(truncatingIfNeeded: bits >> 52) - 1023)
        let slice = Int(
            truncatingIfNeeded: (bits >> (52 - UInt64(Self.sliceBits))) & ((1 << UInt64(Self.sliceBits)) - 1))
        let mantissa = Double(bitPattern: (bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000)
        return table.withUnsafeBufferPointer { table in
            let r = mantissa * table[2 * slice] - 1
            // ln(1 + r) to r^6 (the next term is below 2^-58 for r < 2^-8), evaluated in
            // independent pieces (Estrin's scheme) rather than one long chain of dependent steps.
            let r2 = r * r
            let r3 = r2 * r
            let low = r - r2 * (1.0 / 2)
            let middle = r3 * (1.0 / 3 - r * (1.0 / 4))
            let high = r3 * r2 * (1.0 / 5 - r * (1.0 / 6))
            let lnOnePlusR = low + (middle + high)
            return exponent + table[2 * slice + 1] + lnOnePlusR * (1 / M_LN2)
        }
    }
}
