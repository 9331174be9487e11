// A DDSketch: a mergeable quantile sketch whose answers are within a relative error of the exact
// quantile. Probes put every round-trip time into one per pair and window; the correlator merges
// them. Bounded memory: at most `maxBins` bins per sign.

/// A relative-error quantile sketch with DDSketch semantics (see docs/sketch.md).
///
/// - Quantiles use the *lower* rank convention of DataDog's libraries: the q-quantile of n values is
///   the element at 0-based index ⌊q·(n−1)⌋ of the sorted values; the answer is within
///   `relativeAccuracy` of it (exact for 0).
/// - NaN and ±infinity are rejected with ``SketchError/nonFiniteValue(_:)``; nothing is added.
/// - Positive values beyond `maxBins` bins collapse from the lowest bin up, negative values from the
///   most negative down, so the high quantiles stay accurate; ``collapsedCount`` says how many values
///   were moved.
/// - Same values in, same bins and same bytes out; merging is exact, commutative and associative.
public struct QuantileSketch: Sendable, Equatable {
    public static let defaultMaxBins = 2048
    /// The most values a sketch holds: counts travel as doubles, which carry whole numbers exactly
    /// up to 2^53.
    public static let maxCount: UInt64 = 1 << 53

    /// Changes only in a merge, to the smaller of two compatible gammas (so merge order does not matter).
    public private(set) var mapping: IndexMapping
    var positive: BinStore
    var negative: BinStore
    /// Values whose magnitude is too small for a bin of their own (including 0).
    public private(set) var zeroCount: UInt64 = 0
    /// How many values the sketch holds.
    public private(set) var count: UInt64 = 0

    /// Sum, minimum and maximum of the values added, exact while every value entered through
    /// `add` or a merge of sketches that know theirs; unknown after decoding (the protobuf does not
    /// carry them).
    private var summaryIsKnown = true
    private var exactSum = 0.0
    private var exactMin = Double.infinity
    private var exactMax = -Double.infinity

    /// An empty sketch with the logarithmic mapping for `relativeAccuracy`.
    public init(
        relativeAccuracy: Double = IndexMapping.defaultRelativeAccuracy, maxBins: Int = defaultMaxBins
    ) throws(SketchError) {
        let mapping =
            relativeAccuracy == IndexMapping.defaultRelativeAccuracy
            ? IndexMapping.default : try IndexMapping(relativeAccuracy: relativeAccuracy)
        try self.init(mapping: mapping, maxBins: maxBins)
    }

    /// An empty sketch over a given mapping, with at most `maxBins` bins per sign.
    public init(mapping: IndexMapping, maxBins: Int = defaultMaxBins) throws(SketchError) {
        guard maxBins >= 1 else { throw SketchError.invalidBinLimit(maxBins) }
        self.mapping = mapping
        self.positive = BinStore(maxBins: maxBins, collapsingEnd: .lowestKeys)
        self.negative = BinStore(maxBins: maxBins, collapsingEnd: .highestKeys)
    }

    public var maxBins: Int { positive.maxBins }
    public var relativeAccuracy: Double { mapping.relativeAccuracy }
    public var isEmpty: Bool { count == 0 }
    /// Values moved out of their own bin by the bin limit; their answers may exceed the accuracy.
    public var collapsedCount: UInt64 { positive.collapsedCount + negative.collapsedCount }
    /// Non-empty bins, both signs.
    public var binCount: Int {
        var bins = 0
        positive.forEachBin { _, _ in bins += 1 }
        negative.forEachBin { _, _ in bins += 1 }
        return bins
    }

    /// The sum of the values; nil when empty, unknown (decoded) or beyond the double range.
    public var sum: Double? { summaryIsKnown && count > 0 && exactSum.isFinite ? exactSum : nil }
    /// The smallest value added; nil when empty or unknown.
    public var min: Double? { summaryIsKnown && count > 0 ? exactMin : nil }
    /// The largest value added; nil when empty or unknown.
    public var max: Double? { summaryIsKnown && count > 0 ? exactMax : nil }

    /// Adds `count` copies of a finite value. A count of 0 changes nothing.
    @inline(__always)
    public mutating func add(_ value: Double, count: UInt64 = 1) throws(SketchError) {
        guard value.isFinite else { throw SketchError.nonFiniteValue(value) }
        guard count != 0 else { return }
        guard count <= Self.maxCount - self.count else { throw SketchError.countOverflow }
        self.count += count
        if value > mapping.minIndexableMagnitude {
            positive.add(key: mapping.key(value), count: count)
        } else if value < -mapping.minIndexableMagnitude {
            negative.add(key: mapping.key(-value), count: count)
        } else {
            zeroCount &+= count
        }
        exactSum += count == 1 ? value : value * Double(count)
        if value < exactMin { exactMin = value }
        if value > exactMax { exactMax = value }
    }

    /// Adds each value once. Stops at the first non-finite value and throws; the values before it
    /// stay added. The fastest way in: values in contiguous storage (an array, a buffer) are added
    /// in one loop inside this module.
    @inlinable
    public mutating func add(contentsOf values: some Sequence<Double>) throws(SketchError) {
        let added = values.withContiguousStorageIfAvailable { buffer in
            Result { () throws(SketchError) in try add(buffer: buffer) }
        }
        if let added { return try added.get() }
        for value in values { try add(value) }
    }

    @usableFromInline
    mutating func add(buffer: UnsafeBufferPointer<Double>) throws(SketchError) {
        for value in buffer { try add(value) }
    }

    /// Adds every value of `other`. Both must use the same mapping.
    public mutating func merge(_ other: QuantileSketch) throws(SketchError) {
        guard mapping.isCompatible(with: other.mapping) else {
            throw SketchError.incompatibleMappings(mapping, other.mapping)
        }
        // Collapsing is only order-free between stores with the same limit.
        guard maxBins == other.maxBins else {
            throw SketchError.incompatibleBinLimits(maxBins, other.maxBins)
        }
        if other.mapping.gamma < mapping.gamma { mapping = other.mapping }
        guard !other.isEmpty else { return }
        guard other.count <= Self.maxCount - count else { throw SketchError.countOverflow }
        count += other.count
        positive.merge(other.positive)
        negative.merge(other.negative)
        zeroCount &+= other.zeroCount
        summaryIsKnown = summaryIsKnown && other.summaryIsKnown
        exactSum += other.exactSum
        exactMin = Swift.min(exactMin, other.exactMin)
        exactMax = Swift.max(exactMax, other.exactMax)
    }

    /// The q-quantile for q in [0, 1]; nil when the sketch is empty.
    public func quantile(_ q: Double) throws(SketchError) -> Double? {
        try quantiles([q])?[0]
    }

    /// Many quantiles in one pass over the bins, in the order asked; nil when the sketch is empty.
    public func quantiles(_ qs: [Double]) throws(SketchError) -> [Double]? {
        for q in qs where !(q >= 0 && q <= 1) { throw SketchError.invalidQuantile(q) }
        guard count > 0 else { return nil }
        // Ranks in increasing order, each remembering where its answer goes.
        let order = qs.indices.sorted { qs[$0] < qs[$1] }
        var answers = [Double](repeating: 0, count: qs.count)
        var next = 0
        var seen: UInt64 = 0
        func answer(upTo cumulative: UInt64, with value: @autoclosure () -> Double) {
            while next < order.count {
                let rank = qs[order[next]] * Double(count - 1)
                guard Double(cumulative) > rank else { return }
                answers[order[next]] = clamped(value())
                next += 1
            }
        }
        // Negative values first, most negative (highest key) first.
        if !negative.isEmpty {
            for key in stride(from: negative.maxKey, through: negative.minKey, by: -1) {
                let binCount = negative.bins[key - negative.base]
                guard binCount != 0 else { continue }
                seen &+= binCount
                answer(upTo: seen, with: -mapping.value(ofKey: key))
                if next == order.count { return answers }
            }
        }
        seen &+= zeroCount
        answer(upTo: seen, with: 0)
        positive.forEachBin { key, binCount in
            guard next < order.count else { return }
            seen &+= binCount
            answer(upTo: seen, with: mapping.value(ofKey: key))
        }
        precondition(next == order.count, "bin counts must add up to the sketch's count")
        return answers
    }

    /// An answer never lies outside the values seen, when they are known.
    private func clamped(_ value: Double) -> Double {
        guard summaryIsKnown else { return value }
        return Swift.min(Swift.max(value, exactMin), exactMax)
    }

    /// A sketch rebuilt from decoded bins; its sum, minimum and maximum are unknown.
    init(
        mapping: IndexMapping, zeroCount: UInt64, positive: BinStore, negative: BinStore, count: UInt64
    ) {
        self.mapping = mapping
        self.positive = positive
        self.negative = negative
        self.zeroCount = zeroCount
        self.count = count
        self.summaryIsKnown = count == 0
    }

    public static func == (lhs: QuantileSketch, rhs: QuantileSketch) -> Bool {
        lhs.mapping == rhs.mapping && lhs.count == rhs.count && lhs.zeroCount == rhs.zeroCount
            && lhs.positive == rhs.positive && lhs.negative == rhs.negative
            && lhs.summaryIsKnown == rhs.summaryIsKnown
            && (!lhs.summaryIsKnown
                || (lhs.exactSum == rhs.exactSum && lhs.exactMin == rhs.exactMin
                    && lhs.exactMax == rhs.exactMax))
    }
}
