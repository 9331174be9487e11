// Merging (exact, commutative, associative, same mapping only), determinism, and the bin limit:
// collapsing keeps memory bounded, keeps the high quantiles accurate and counts what it moved.

import Simulation
import Testing

@testable import QuantileSketch

func sketch(
    of values: [Double], accuracy: Double = 0.01, maxBins: Int = QuantileSketch.defaultMaxBins
)
    throws -> QuantileSketch
{
    var sketch = try QuantileSketch(relativeAccuracy: accuracy, maxBins: maxBins)
    try sketch.add(contentsOf: values)
    return sketch
}

/// Splits values into `parts` chunks of pseudo-random sizes.
func chunks(of values: [Double], parts: Int, seed: UInt64) -> [[Double]] {
    var generator = SeededGenerator(seed: seed)
    var cuts = (0..<(parts - 1)).map { _ in Int(generator.next() % UInt64(values.count + 1)) }.sorted()
    cuts = [0] + cuts + [values.count]
    return (0..<parts).map { Array(values[cuts[$0]..<cuts[$0 + 1]]) }
}

struct MergeTests {
    @Test(arguments: 0..<8)
    func mergeIsExactOnBins(seed: Int) throws {
        let values = mixedValues(4000, seed: UInt64(seed))
        let parts = try chunks(of: values, parts: 5, seed: UInt64(seed)).map { try sketch(of: $0) }
        var merged = try QuantileSketch()
        for part in parts { try merged.merge(part) }
        let whole = try sketch(of: values)
        #expect(merged.encoded() == whole.encoded())
        #expect(merged.count == whole.count)
        #expect(merged.min == whole.min && merged.max == whole.max)
        #expect(try merged.quantiles(testQuantiles) == whole.quantiles(testQuantiles))
    }

    @Test(arguments: 0..<8)
    func mergeIsCommutativeAndAssociative(seed: Int) throws {
        let distributions = LatencyDistribution.benchmarkSet.map(\.distribution)
        let (a, b, c) = try (
            sketch(of: distributions[0].samples(500, seed: UInt64(seed))),
            sketch(of: distributions[1].samples(700, seed: UInt64(seed) + 50)),
            sketch(of: mixedValues(300, seed: UInt64(seed) + 99))
        )
        func merge(_ x: QuantileSketch, _ y: QuantileSketch) throws -> QuantileSketch {
            var result = x
            try result.merge(y)
            return result
        }
        #expect(try merge(a, b).encoded() == merge(b, a).encoded())
        #expect(try merge(merge(a, b), c).encoded() == merge(a, merge(b, c)).encoded())
        #expect(try merge(merge(a, c), b).encoded() == merge(c, merge(b, a)).encoded())
    }

    @Test func mergingAnEmptySketchChangesNothing() throws {
        var a = try sketch(of: [1, 2, 3])
        let before = a
        try a.merge(try QuantileSketch())
        #expect(a == before)
        var empty = try QuantileSketch()
        try empty.merge(before)
        #expect(empty == before)
    }

    @Test func mergeAcrossMappingsIsRefusedNamingBothGammas() throws {
        var a = try sketch(of: [1, 2, 3], accuracy: 0.01)
        let b = try sketch(of: [4, 5], accuracy: 0.02)
        let before = a
        do {
            try a.merge(b)
            Issue.record("merge across mappings must fail")
        } catch {
            #expect(error.description.contains("\(a.mapping.gamma)"))
            #expect(error.description.contains("\(b.mapping.gamma)"))
        }
        #expect(a == before)
    }

    @Test func mergeAcrossBinLimitsIsRefused() throws {
        var a = try sketch(of: Array(stride(from: 1.0, through: 10, by: 1)), maxBins: 4)
        let b = try sketch(of: [0.5], maxBins: 100)
        let before = a
        #expect(throws: SketchError.incompatibleBinLimits(4, 100)) { try a.merge(b) }
        #expect(a == before)
    }

    @Test func nearlyEqualGammasMergeToTheSameBytesInEitherOrder() throws {
        let plain = try QuantileSketch()
        let other = try IndexMapping(gamma: plain.mapping.gamma.nextUp, indexOffset: 0, interpolation: .none)
        var a = try QuantileSketch(mapping: other)
        try a.add(contentsOf: [1, 2, 3])
        var b = plain
        try b.add(contentsOf: [4, 5])
        var ab = a
        try ab.merge(b)
        var ba = b
        try ba.merge(a)
        #expect(ab.encoded() == ba.encoded())
        #expect(ab.mapping.gamma == plain.mapping.gamma)  // the smaller gamma wins
    }

    @Test func sameValuesInAnyOrderGiveTheSameBytes() throws {
        var values = mixedValues(2000, seed: 11)
        let reference = try sketch(of: values).encoded()
        var generator = SeededGenerator(seed: 12)
        for _ in 0..<5 {
            values.shuffle(using: &generator)
            #expect(try sketch(of: values).encoded() == reference)
        }
    }
}

struct BinLimitTests {
    /// Values whose own key lies below the lowest key a limit of `maxBins` can keep.
    func expectedCollapsed(
        _ values: [Double], maxBins: Int, mapping: IndexMapping
    ) -> (positive: Int, negative: Int) {
        let positiveKeys = values.filter { $0 > mapping.minIndexableMagnitude }.map { mapping.key($0) }
        let negativeKeys = values.filter { $0 < -mapping.minIndexableMagnitude }.map { mapping.key(-$0) }
        let floor = (positiveKeys.max() ?? 0) - maxBins + 1
        let ceiling = (negativeKeys.min() ?? 0) + maxBins - 1
        return (positiveKeys.filter { $0 < floor }.count, negativeKeys.filter { $0 > ceiling }.count)
    }

    @Test func extremeValuesDoNotBlowMemoryUp() throws {
        var sketch = try QuantileSketch()
        try sketch.add(contentsOf: [1e-300, 1e300, -1e-300, -1e300, 5, 7])
        #expect(sketch.positive.bins.count <= sketch.maxBins)
        #expect(sketch.negative.bins.count <= sketch.maxBins)
        #expect(sketch.binCount <= 2 * sketch.maxBins)
        #expect(sketch.collapsedCount == 4)  // 1e-300, 5 and 7 below the kept range; -1e300 beyond it
        // The top is still right: the largest value is answered within the accuracy.
        #expect(isWithin(0.01, try #require(try sketch.quantile(1)), of: 1e300))
    }

    @Test(arguments: [16, 64, 300])
    func collapsingKeepsHighQuantilesAndCountsWhatMoved(maxBins: Int) throws {
        for seed in 0..<4 {
            let values = mixedValues(3000, seed: UInt64(seed) + 500)
            let limited = try sketch(of: values, maxBins: maxBins)
            let expected = expectedCollapsed(values, maxBins: maxBins, mapping: limited.mapping)
            #expect(limited.positive.collapsedCount == UInt64(expected.positive), "seed \(seed)")
            #expect(limited.negative.collapsedCount == UInt64(expected.negative), "seed \(seed)")
            #expect(limited.positive.bins.count <= maxBins && limited.negative.bins.count <= maxBins)
            // Quantiles whose exact value keeps its own bin are still within the accuracy.
            let sorted = values.sorted()
            let floorValue = limited.mapping.value(ofKey: limited.positive.minKey)
            for q in [0.9, 0.95, 0.99, 0.999, 1] {
                let exact = exactLowerQuantile(sorted, q)
                guard exact > floorValue * 1.03 else { continue }
                #expect(isWithin(0.01, try #require(try limited.quantile(q)), of: exact), "q \(q)")
            }
        }
    }

    @Test(arguments: 0..<6)
    func collapsingMergesAreOrderFreeAndMatchOneSketch(seed: Int) throws {
        let maxBins = 40
        let values = mixedValues(2000, seed: UInt64(seed) + 900)
        var parts = try chunks(of: values, parts: 6, seed: UInt64(seed)).map {
            try sketch(of: $0, maxBins: maxBins)
        }
        let whole = try sketch(of: values, maxBins: maxBins)
        var generator = SeededGenerator(seed: UInt64(seed))
        for _ in 0..<3 {
            parts.shuffle(using: &generator)
            var merged = try QuantileSketch(maxBins: maxBins)
            for part in parts { try merged.merge(part) }
            #expect(merged.encoded() == whole.encoded())
            #expect(merged.collapsedCount == whole.collapsedCount)
        }
    }

    @Test func ascendingKeysAtTheLimitStayBounded() throws {
        var sketch = try QuantileSketch(maxBins: 32)
        var value = 1e-200
        var count = 0
        while value < 1e200 {
            try sketch.add(value)
            count += 1
            value *= 1.5
        }
        #expect(sketch.positive.bins.count <= 32)
        #expect(sketch.binCount <= 32)
        #expect(sketch.count == UInt64(count))
        #expect(isWithin(0.01, try #require(try sketch.quantile(1)), of: value / 1.5))
    }

    @Test func binLimitMustBePositive() {
        #expect(throws: SketchError.invalidBinLimit(0)) { try QuantileSketch(maxBins: 0) }
    }
}
