// The map between values and bin keys that gives a DDSketch its relative-error guarantee.
//
// A value x > 0 falls in bin `key = ceil(logγ(x)) + indexOffset`: bin k holds (γ^(k-1), γ^k]
// (offset aside), and answers with the point 2γ^k/(1+γ), which is within relative error
// a = (γ-1)/(γ+1) of everything in the bin. This is the convention of wire-v1.md §4 and of
// DataDog's Python `ddsketch` package. LINEAR and CUBIC interpolation replace logγ with a cheaper
// piecewise approximation of log2 whose bins are never wider than the logarithmic ones; they follow
// the Python package's reading of the protobuf's gamma (see docs/sketch.md for how DataDog's Java
// and Go libraries differ).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How a sketch maps values to bin keys: the protobuf's `IndexMapping` message.
public struct IndexMapping: Sendable, Hashable, CustomStringConvertible {
    /// The protobuf's `IndexMapping.Interpolation`.
    public enum Interpolation: Int, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        case none = 0
        case linear = 1
        case quadratic = 2
        case cubic = 3

        public var description: String {
            switch self {
            case .none: "NONE"
            case .linear: "LINEAR"
            case .quadratic: "QUADRATIC"
            case .cubic: "CUBIC"
            }
        }
    }

    /// Faultline's default relative accuracy.
    public static let defaultRelativeAccuracy = 0.01
    static let defaultGamma = 1 + 2 * defaultRelativeAccuracy / (1 - defaultRelativeAccuracy)
    /// The mapping most sketches use, built once (decoding and new sketches reuse it).
    static let `default`: IndexMapping = {
        do {
            return try IndexMapping(relativeAccuracy: defaultRelativeAccuracy)
        } catch {
            preconditionFailure("the default relative accuracy must be valid: \(error)")
        }
    }()

    /// The base of the bins, as carried on the wire.
    public let gamma: Double
    /// Shifts every key; 0 for sketches Faultline writes.
    public let indexOffset: Double
    public let interpolation: Interpolation
    /// Every answer is within this relative error of the exact value: (γ-1)/(γ+1).
    public let relativeAccuracy: Double

    /// Keys per unit of (approximate) log2 of a value.
    private let multiplier: Double
    /// Magnitudes at or below this go to the zero bin (DataDog's `min_possible`).
    let minIndexableMagnitude: Double
    private let fastLog2 = FastLog2.shared
    /// Exact keys without a logarithm, for the default mapping (most sketches).
    private let keyTable: KeyTable?

    /// Cubic interpolation's coefficients: log2(1+s) ≈ A s³ + B s² + C s on [0, 1).
    private static let cubicA = 6.0 / 35.0
    private static let cubicB = -3.0 / 5.0
    private static let cubicC = 10.0 / 7.0
    /// Keys must fit the wire's sint32 with room to spare, whatever the value.
    static let maxKeyMagnitude = Double(Int32.max / 2)

    /// The logarithmic mapping (interpolation NONE) for a relative accuracy in (0, 1).
    public init(relativeAccuracy: Double) throws(SketchError) {
        guard relativeAccuracy.isFinite, relativeAccuracy > 0, relativeAccuracy < 1 else {
            throw SketchError.invalidRelativeAccuracy(relativeAccuracy)
        }
        do {
            try self.init(
                gamma: 1 + 2 * relativeAccuracy / (1 - relativeAccuracy), indexOffset: 0, interpolation: .none
            )
        } catch {
            throw SketchError.invalidRelativeAccuracy(relativeAccuracy)  // too fine: keys would overflow
        }
    }

    /// A mapping as a protobuf describes it. Rejects a gamma that is not finite and > 1, a
    /// non-finite offset, QUADRATIC interpolation (no DataDog library defines it), and any
    /// combination whose keys could overflow the wire's 32-bit bin index.
    public init(gamma: Double, indexOffset: Double, interpolation: Interpolation) throws(SketchError) {
        guard gamma.isFinite, gamma > 1 else { throw SketchError.invalidGamma(gamma) }
        guard indexOffset.isFinite, abs(indexOffset) <= Self.maxKeyMagnitude / 2 else {
            throw SketchError.invalidIndexOffset(indexOffset)
        }
        // Like DataDog's Python package, derive everything from the relative accuracy that gamma
        // stands for, so that a sketch it wrote and one we wrote bin values identically.
        let accuracy = (gamma - 1) / (gamma + 1)
        let gammaMantissa = 2 * accuracy / (1 - accuracy)
        let lnGamma = log1p(gammaMantissa)
        var multiplier = 1 / lnGamma
        switch interpolation {
        case .none: multiplier *= M_LN2
        case .linear: break
        case .cubic: multiplier /= Self.cubicC
        case .quadratic: throw SketchError.unsupportedInterpolation(interpolation.rawValue)
        }
        // A gamma so large that (γ-1)/(γ+1) rounds to 1 leaves no usable mapping; and log2 of any
        // finite double lies in [-1075, 1024]: keep every key well inside Int32.
        let minIndexable = Double.leastNormalMagnitude * (1 + gammaMantissa)
        guard accuracy < 1, multiplier.isFinite, multiplier > 0, minIndexable.isFinite,
            1100 * multiplier + abs(indexOffset) < Self.maxKeyMagnitude
        else {
            throw SketchError.invalidGamma(gamma)
        }
        self.gamma = gamma
        self.indexOffset = indexOffset
        self.interpolation = interpolation
        self.relativeAccuracy = accuracy
        self.multiplier = multiplier
        self.minIndexableMagnitude = minIndexable
        let isDefault = interpolation == .none && indexOffset == 0 && gamma == Self.defaultGamma
        self.keyTable = isDefault ? KeyTable.forDefaultAccuracy : nil
    }

    /// Equal when they are the same on the wire: gamma, offset and interpolation.
    public static func == (lhs: IndexMapping, rhs: IndexMapping) -> Bool {
        lhs.gamma == rhs.gamma && lhs.indexOffset == rhs.indexOffset && lhs.interpolation == rhs.interpolation
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(gamma)
        hasher.combine(indexOffset)
        hasher.combine(interpolation)
    }

    public var description: String {
        "IndexMapping(gamma: \(gamma), indexOffset: \(indexOffset), interpolation: \(interpolation))"
    }

    /// Two mappings put every value in the same bin: merging their bins is exact.
    /// Gammas may differ in the last bits (a writer that derives gamma from the accuracy by
    /// another formula), so they are compared to 1e-12 relative.
    public func isCompatible(with other: IndexMapping) -> Bool {
        interpolation == other.interpolation && indexOffset == other.indexOffset
            && abs(gamma - other.gamma) <= 1e-12 * gamma
    }

    /// The key of the bin for a magnitude above `minIndexableMagnitude`.
    @inline(__always)
    func key(_ magnitude: Double) -> Int {
        let logGamma: Double
        switch interpolation {
        case .none:
            if let keyTable, let key = keyTable.key(magnitude) { return key }
            logGamma = fastLog2.evaluate(magnitude) * multiplier
        case .linear: logGamma = Self.linearLog2(magnitude) * multiplier
        case .cubic: logGamma = Self.cubicLog2(magnitude) * multiplier
        case .quadratic: preconditionFailure("rejected at init")
        }
        // ceil without a libm call (the baseline x86-64 target has no rounding instruction) and
        // without a branch (which way it goes is a coin toss per value); |logGamma| < 2^31, so the
        // conversion cannot trap.
        let truncated = Int(logGamma)
        let ceiling = truncated &+ Int(unsafeBitCast(Double(truncated) < logGamma, to: UInt8.self))
        guard indexOffset != 0 else { return ceiling }
        return Int(Double(ceiling) + indexOffset)
    }

    /// The value a bin answers with: within `relativeAccuracy` of everything in the bin.
    /// Never infinite: the last bins of the double range answer with the largest finite double.
    func value(ofKey key: Int) -> Double {
        let exponent = (Double(key) - indexOffset) / multiplier
        let upperBound: Double
        switch interpolation {
        case .none: upperBound = exp2(exponent)
        case .linear: upperBound = Self.linearExp2(exponent)
        case .cubic: upperBound = Self.cubicExp2(exponent)
        case .quadratic: preconditionFailure("rejected at init")
        }
        let value = upperBound * (2 / (1 + gamma))
        return value.isFinite ? value : Double.greatestFiniteMagnitude
    }

    /// Splits a positive finite double into significand s in [0, 1) and exponent e: x = (1+s)·2^e.
    @inline(__always)
    private static func split(_ x: Double) -> (significand: Double, exponent: Double) {
        let fraction = frexp(x)  // x = m·2^e with m in [0.5, 1)
        return (2 * fraction.0 - 1, Double(fraction.1 - 1))
    }

    @inline(__always)
    private static func linearLog2(_ x: Double) -> Double {
        let (s, e) = split(x)
        return s + e
    }

    @inline(__always)
    private static func cubicLog2(_ x: Double) -> Double {
        let (s, e) = split(x)
        return ((cubicA * s + cubicB) * s + cubicC) * s + e
    }

    private static func linearExp2(_ y: Double) -> Double {
        let exponent = y.rounded(.down) + 1
        let mantissa = (y - exponent + 2) / 2
        return scalbn(mantissa, Int32(clamping: Int(exponent)))
    }

    /// The inverse of `cubicLog2`, by Cardano's formula.
    private static func cubicExp2(_ y: Double) -> Double {
        let exponent = y.rounded(.down)
        let (a, b, c) = (cubicA, cubicB, cubicC)
        let delta0 = b * b - 3 * a * c
        let delta1 = 2 * b * b * b - 9 * a * b * c - 27 * a * a * (y - exponent)
        let cardano = cbrt((delta1 - (delta1 * delta1 - 4 * delta0 * delta0 * delta0).squareRoot()) / 2)
        let significandPlusOne = -(b + cardano + delta0 / cardano) / (3 * a) + 1
        return scalbn(significandPlusOne / 2, Int32(clamping: Int(exponent) + 1))
    }
}
