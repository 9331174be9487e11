// Quantile answers against exact quantiles over many seeds, distributions, sizes and accuracies.

import Foundation
import Simulation
import Testing

@testable import QuantileSketch

/// True when `answer` is within relative error `accuracy` of `exact` (exact 0 must answer 0).
/// The slack covers the last bits of floating point at bin edges, not a looser guarantee.
func isWithin(_ accuracy: Double, _ answer: Double, of exact: Double) -> Bool {
    if exact == 0 { return answer == 0 }
    return abs(answer - exact) <= accuracy * abs(exact) * (1 + 1e-9)
}

let testQuantiles = [0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1]

/// Values with positives, negatives and zeros, spread over many orders of magnitude.
func mixedValues(_ count: Int, seed: UInt64) -> [Double] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in
        let u = generator.nextUnit()
        if u < 0.1 { return 0 }
        let magnitude = exp((generator.nextUnit() - 0.5) * 40)  // e^-20 ... e^20
        return u < 0.4 ? -magnitude : magnitude
    }
}

struct AccuracyTests {
    static let distributions: [(String, LatencyDistribution)] =
        LatencyDistribution.benchmarkSet.map { ($0.name, $0.distribution) } + [
            ("narrow", .lognormal(median: 3, sigma: 0.1)), ("wide", .lognormal(median: 100, sigma: 3)),
        ]

    @Test(arguments: 0..<5, [1, 2, 10, 1000, 20000])
    func latencyDistributionsAnswerWithinAccuracy(seed: Int, count: Int) throws {
        for (name, distribution) in Self.distributions {
            let values = distribution.samples(count, seed: UInt64(seed))
            var sketch = try QuantileSketch()
            try sketch.add(contentsOf: values)
            let sorted = values.sorted()
            let answers = try #require(try sketch.quantiles(testQuantiles))
            for (q, answer) in zip(testQuantiles, answers) {
                let exact = exactLowerQuantile(sorted, q)
                #expect(
                    isWithin(0.01, answer, of: exact),
                    "\(name) seed \(seed) n \(count) q \(q): \(answer) vs \(exact)")
            }
        }
    }

    @Test(arguments: [0.05, 0.01, 0.001], 0..<4)
    func mixedSignsAndZerosAnswerWithinAccuracy(accuracy: Double, seed: Int) throws {
        let values = mixedValues(5000, seed: UInt64(seed) + 100)
        // e^±20 at accuracy 0.001 needs 20,000 bins: raise the limit, which BinLimitTests cover.
        var sketch = try QuantileSketch(relativeAccuracy: accuracy, maxBins: 1 << 15)
        try sketch.add(contentsOf: values)
        let sorted = values.sorted()
        for q in testQuantiles + stride(from: 0.0, through: 1.0, by: 0.0125).map({ $0 }) {
            let answer = try #require(try sketch.quantile(q))
            let exact = exactLowerQuantile(sorted, q)
            #expect(
                isWithin(accuracy, answer, of: exact),
                "a \(accuracy) seed \(seed) q \(q): \(answer) vs \(exact)")
        }
        #expect(sketch.count == UInt64(values.count))
        #expect(sketch.zeroCount == UInt64(values.filter { $0 == 0 }.count))
    }

    @Test func summaryIsExact() throws {
        let values = mixedValues(1000, seed: 7)
        var sketch = try QuantileSketch()
        try sketch.add(contentsOf: values)
        #expect(sketch.min == values.min())
        #expect(sketch.max == values.max())
        let sum = try #require(sketch.sum)
        #expect(abs(sum - values.reduce(0, +)) <= 1e-9 * values.map(abs).reduce(0, +))
        // Answers never leave the range of what was seen.
        for answer in try #require(try sketch.quantiles(testQuantiles)) {
            #expect(answer >= values.min()! && answer <= values.max()!)
        }
    }

    @Test func emptySketchAnswersNil() throws {
        let sketch = try QuantileSketch()
        #expect(sketch.isEmpty)
        #expect(try sketch.quantile(0.5) == nil)
        #expect(try sketch.quantiles([0, 0.5, 1]) == nil)
        #expect(sketch.min == nil)
        #expect(sketch.max == nil)
        #expect(sketch.sum == nil)
    }

    @Test(arguments: [-0.1, 1.1, Double.nan, Double.infinity])
    func quantileOutsideUnitIntervalIsRejected(q: Double) throws {
        var sketch = try QuantileSketch()
        try sketch.add(1)
        #expect(throws: SketchError.self) { try sketch.quantile(q) }
        #expect(throws: SketchError.self) { try sketch.quantiles([0.5, q]) }
    }

    @Test func manyQuantilesAtOnceMatchOneAtATime() throws {
        var sketch = try QuantileSketch()
        try sketch.add(
            contentsOf: LatencyDistribution.lognormal(median: 8, sigma: 0.5).samples(3000, seed: 3))
        let unordered = [0.99, 0.1, 0.5, 1, 0, 0.5, 0.999]
        let together = try #require(try sketch.quantiles(unordered))
        for (q, answer) in zip(unordered, together) {
            #expect(try sketch.quantile(q) == answer)
        }
    }

    @Test func nonFiniteValuesAreRejectedAndChangeNothing() throws {
        var sketch = try QuantileSketch()
        try sketch.add(contentsOf: [1, 2, 3])
        let before = sketch.encoded()
        for bad in [Double.nan, .infinity, -.infinity, .signalingNaN] {
            #expect(throws: SketchError.self) { try sketch.add(bad) }
            #expect(throws: SketchError.self) { try sketch.add(bad, count: 3) }
        }
        #expect(sketch.count == 3)
        #expect(sketch.encoded() == before)
        #expect(sketch.max == 3)
    }

    @Test func addingWithACountEqualsAddingRepeatedly() throws {
        var weighted = try QuantileSketch()
        var repeated = try QuantileSketch()
        for (value, count) in [(2.5, 4), (-1.0, 3), (0.0, 2), (1e6, 1)] {
            try weighted.add(value, count: UInt64(count))
            for _ in 0..<count { try repeated.add(value) }
        }
        try weighted.add(42, count: 0)  // no-op
        #expect(weighted.encoded() == repeated.encoded())
        #expect(weighted.count == 10)
        #expect(weighted.max == 1e6)
        #expect(try weighted.quantiles(testQuantiles) == repeated.quantiles(testQuantiles))
    }

    @Test func countOverflowIsAnError() throws {
        var sketch = try QuantileSketch()
        try sketch.add(1, count: QuantileSketch.maxCount - 1)
        #expect(throws: SketchError.countOverflow) { try sketch.add(2, count: 2) }
        #expect(throws: SketchError.countOverflow) { try sketch.add(2, count: UInt64.max) }
        #expect(sketch.count == QuantileSketch.maxCount - 1)
        // At the limit the sketch still encodes exactly and decodes back.
        try sketch.add(2)
        #expect(try QuantileSketch(decoding: sketch.encoded()).count == QuantileSketch.maxCount)
        var other = try QuantileSketch()
        try other.add(3, count: 5)
        #expect(throws: SketchError.countOverflow) { try sketch.merge(other) }
    }

    @Test func tinyMagnitudesCountAsZero() throws {
        var sketch = try QuantileSketch()
        try sketch.add(contentsOf: [.leastNonzeroMagnitude, -Double.leastNormalMagnitude / 64, 0, -0.0])
        #expect(sketch.zeroCount == 4)
        #expect(try sketch.quantile(0.5) == 0)
    }
}
