// Round-trip-time distributions for synthetic probes: what healthy fabrics look like (lognormal),
// a path with two modes (a slow route or a retransmit), and heavy tails (Pareto).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A distribution of round-trip times in microseconds, sampled with a seeded generator.
public enum LatencyDistribution: Sendable, Hashable {
    /// exp(N(ln median, sigma²)).
    case lognormal(median: Double, sigma: Double)
    /// A `fastShare` of samples near `fast`, the rest near `slow`, each lognormal with `sigma`.
    case bimodal(fast: Double, slow: Double, fastShare: Double, sigma: Double)
    /// Pareto with scale (minimum) `scale` and shape `alpha`: heavy tails for alpha near 1.
    case pareto(scale: Double, alpha: Double)

    /// The distributions the benchmarks and accuracy tests use, by name.
    public static let benchmarkSet: [(name: String, distribution: LatencyDistribution)] = [
        ("lognormal", .lognormal(median: 8, sigma: 0.45)),
        ("bimodal", .bimodal(fast: 2, slow: 50, fastShare: 0.95, sigma: 0.05)),
        ("pareto", .pareto(scale: 2, alpha: 1.1)),
    ]

    public func sample(using generator: inout SeededGenerator) -> Double {
        switch self {
        case .lognormal(let median, let sigma):
            return median * exp(sigma * Self.standardNormal(using: &generator))
        case .bimodal(let fast, let slow, let fastShare, let sigma):
            let center = generator.nextUnit() < fastShare ? fast : slow
            return center * exp(sigma * Self.standardNormal(using: &generator))
        case .pareto(let scale, let alpha):
            // Inverse CDF; 1 - u is in (0, 1], so the result is finite.
            return scale / pow(1 - generator.nextUnit(), 1 / alpha)
        }
    }

    /// `count` samples from a generator seeded with `seed`.
    public func samples(_ count: Int, seed: UInt64) -> [Double] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { _ in sample(using: &generator) }
    }

    /// Box–Muller; uses two uniforms per sample for simplicity and determinism.
    static func standardNormal(using generator: inout SeededGenerator) -> Double {
        let u1 = 1 - generator.nextUnit()  // (0, 1]
        let u2 = generator.nextUnit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}
