// What can go wrong with a sketch: bad parameters, values it will not hold, merges across
// mappings, and malformed protobuf bytes (with the field path and byte offset of the fault).

/// An error from building, filling, merging or decoding a sketch.
public enum SketchError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The relative accuracy is not in (0, 1).
    case invalidRelativeAccuracy(Double)
    /// Gamma is not finite, not > 1, or so close to 1 that keys would overflow 32 bits.
    case invalidGamma(Double)
    case invalidIndexOffset(Double)
    /// The interpolation is QUADRATIC or a number the protobuf does not define.
    case unsupportedInterpolation(Int)
    case invalidBinLimit(Int)
    /// NaN and ±infinity never enter a sketch.
    case nonFiniteValue(Double)
    /// A quantile outside [0, 1].
    case invalidQuantile(Double)
    /// Merging sketches whose mappings bin values differently.
    case incompatibleMappings(IndexMapping, IndexMapping)
    /// Merging sketches with different bin limits.
    case incompatibleBinLimits(Int, Int)
    /// The total count would exceed 2^53, what a sketch (and its wire format) counts exactly.
    case countOverflow
    /// Malformed protobuf bytes.
    case malformed(field: String, offset: Int, reason: String)

    public var description: String {
        switch self {
        case .invalidRelativeAccuracy(let a):
            "relative accuracy must be in (0, 1) and at least about 3.6e-7 (finer would overflow 32-bit bin keys), got \(a)"
        case .invalidGamma(let gamma):
            "gamma must be finite and > 1 (and not so close to 1 that bin keys overflow 32 bits), got \(gamma)"
        case .invalidIndexOffset(let offset):
            "index offset must be finite and within ±\(Int(IndexMapping.maxKeyMagnitude / 2)), got \(offset)"
        case .unsupportedInterpolation(let value):
            "unsupported interpolation \(IndexMapping.Interpolation(rawValue: value)?.description ?? String(value)) "
                + "(NONE, LINEAR and CUBIC are supported)"
        case .invalidBinLimit(let limit):
            "bin limit must be at least 1, got \(limit)"
        case .nonFiniteValue(let value):
            "value \(value) is not finite: NaN and infinities never enter a sketch"
        case .invalidQuantile(let q):
            "quantile must be in [0, 1], got \(q)"
        case .incompatibleMappings(let a, let b):
            "cannot merge sketches with different mappings: gamma \(a.gamma) (offset \(a.indexOffset), "
                + "\(a.interpolation)) and gamma \(b.gamma) (offset \(b.indexOffset), \(b.interpolation))"
        case .incompatibleBinLimits(let a, let b):
            "cannot merge sketches with different bin limits: \(a) and \(b) bins"
        case .countOverflow:
            "the total count would exceed 2^53, the most a sketch counts exactly"
        case .malformed(let field, let offset, let reason):
            "malformed sketch at byte \(offset) (\(field)): \(reason)"
        }
    }
}

extension SketchError {
    /// The same error with `prefix` in front of its field path (for errors inside a nested message).
    func withFieldPrefix(_ prefix: String) -> SketchError {
        guard case .malformed(let field, let offset, let reason) = self else { return self }
        return .malformed(field: prefix + field, offset: offset, reason: reason)
    }
}
