// Bin keys by table lookup for the default mapping: exact and without a logarithm.
//
// Every octave [2^e, 2^(e+1)) is cut into 256 slices by the top 8 bits of the mantissa. A slice is
// narrower than a bin (1 + 1/256 < γ for a ≥ 0.002), so at most one bin boundary γ^k falls inside
// it: a slice stores the key its first value falls in and that boundary, and a value's key is the
// stored key, plus one when the value lies above the boundary. The boundaries are computed once
// with libm, so keys are exactly ceil(log_γ(x)) up to libm's last bit. Outside the table's
// octaves the mapping falls back to `FastLog2`.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A view of an immortal table: plain pointers, so that the hot path does no reference counting.
struct KeyTable: @unchecked Sendable {  // immutable after init, never freed
    private struct Slice {
        /// The key of the slice's first value.
        var key: Int
        /// The largest value with that key (γ^key); values above it take the next key.
        var boundary: Double
    }

    private static let sliceBits: UInt64 = 8
    /// Octaves covered: 2^-20 (a picosecond, in µs) to 2^40 (about 13 days, in µs).
    private static let exponents = -20..<40

    /// The table for Faultline's default relative accuracy, built on first use and kept for the
    /// life of the process (about 240 KB).
    static let forDefaultAccuracy = KeyTable(gamma: IndexMapping.defaultGamma)

    private let slices: UnsafePointer<Slice>
    private let sliceCount: UInt64
    /// `bits >> (52 - sliceBits)` of the first slice's first value, 2^-20.
    private let firstIndex: UInt64

    private init(gamma: Double) {
        let lnGamma = log(gamma)
        let slicesPerOctave = 1 << Int(Self.sliceBits)
        let count = Self.exponents.count * slicesPerOctave
        let slices = UnsafeMutablePointer<Slice>.allocate(capacity: count)
        /// γ^k, from one formula everywhere so that the boundaries are monotonic.
        func boundary(_ key: Int) -> Double { exp(Double(key) * lnGamma) }
        var index = 0
        for exponent in Self.exponents {
            for slice in 0..<slicesPerOctave {
                let start = scalbn(1 + Double(slice) / Double(slicesPerOctave), Int32(exponent))
                // The smallest key whose boundary is at or above the slice's first value.
                var key = Int((log(start) / lnGamma).rounded(.up))
                while boundary(key - 1) >= start { key -= 1 }
                while boundary(key) < start { key += 1 }
                (slices + index).initialize(to: Slice(key: key, boundary: boundary(key)))
                index += 1
            }
        }
        self.slices = UnsafePointer(slices)
        self.sliceCount = UInt64(count)
        self.firstIndex = UInt64(Self.exponents.lowerBound + 1023) << Self.sliceBits
    }

    /// The key of a positive normal value, or nil when the value lies outside the table's octaves.
    @inline(__always)
    func key(_ value: Double) -> Int? {
        let index = (value.bitPattern >> (52 - Self.sliceBits)) &- firstIndex
        guard index < sliceCount else { return nil }
        let slice = slices[Int(truncatingIfNeeded: index)]
        return slice.key &+ Int(unsafeBitCast(value > slice.boundary, to: UInt8.self))
    }
}
