// The bins of one sign of a sketch: counts in a dense window of keys, never wider than the bin
// limit. When a key would stretch the non-empty span past the limit, the bins at the end that
// matters least collapse into the last bin kept, and the values moved are counted.

/// Counts per bin key over a bounded, dense window.
struct BinStore: Sendable {
    /// Which end of the key range gives way when the span would exceed the bin limit.
    enum CollapsingEnd: Sendable {
        /// Positive values: small keys are the low quantiles, so they collapse first.
        case lowestKeys
        /// Negative values (keyed by magnitude): large keys are the low quantiles.
        case highestKeys
    }

    let maxBins: Int
    let collapsingEnd: CollapsingEnd

    /// `bins[i]` counts key `base + i`. Every non-zero bin lies in `minKey...maxKey`.
    private(set) var bins: [UInt64] = []
    private(set) var base = 0
    private(set) var minKey = Int.max
    private(set) var maxKey = Int.min
    private(set) var total: UInt64 = 0
    /// Values held in a bin other than their own. They all sit in the bin at the collapsing end.
    private(set) var collapsedCount: UInt64 = 0

    /// Bins added to a window when it must grow, so that a stream of new keys reallocates rarely.
    private static let growthSlack = 64

    init(maxBins: Int, collapsingEnd: CollapsingEnd) {
        self.maxBins = maxBins
        self.collapsingEnd = collapsingEnd
    }

    /// A store holding `counts` for the keys from `firstKey` on; the first and last counts are
    /// non-zero, there are at most `maxBins`, and they add up to `total`.
    init(maxBins: Int, collapsingEnd: CollapsingEnd, firstKey: Int, counts: [UInt64], total: UInt64) {
        precondition(!counts.isEmpty && counts.count <= maxBins && counts.first != 0 && counts.last != 0)
        self.init(maxBins: maxBins, collapsingEnd: collapsingEnd)
        self.bins = counts
        self.base = firstKey
        self.minKey = firstKey
        self.maxKey = firstKey + counts.count - 1
        self.total = total
    }

    var isEmpty: Bool { total == 0 }

    /// Adds `count` values to the bin `key`. The caller has checked that the sketch's total does not
    /// overflow, and a store's total never exceeds it.
    @inline(__always)
    mutating func add(key: Int, count: UInt64) {
        let index = key &- base
        if index >= 0 && index < bins.count {
            bins[index] &+= count
            if key < minKey { minKey = key }
            if key > maxKey { maxKey = key }
            total &+= count
        } else {
            addOutsideWindow(key: key, count: count)
        }
    }

    /// Adds every bin of `other`. Exact: the result does not depend on the order of merges.
    mutating func merge(_ other: BinStore) {
        guard !other.isEmpty else { return }
        if other.minKey >= base && other.maxKey < base + bins.count {
            other.bins.withUnsafeBufferPointer { source in
                bins.withUnsafeMutableBufferPointer { target in
                    let from = source.baseAddress! + (other.minKey - other.base)
                    let to = target.baseAddress! + (other.minKey - base)
                    for i in 0..<(other.maxKey - other.minKey + 1) { to[i] &+= from[i] }
                }
            }
            minKey = Swift.min(minKey, other.minKey)
            maxKey = Swift.max(maxKey, other.maxKey)
            total &+= other.total
            collapsedCount &+= other.collapsedCount
            return
        }
        // Make the window cover both stores (within the bin limit) once, then add every bin of
        // `other`, collapsing what falls beyond the limit into the bin at its edge.
        let (low, high) = keptRange(Swift.min(minKey, other.minKey), Swift.max(maxKey, other.maxKey))
        if isEmpty || windowMustChange(low, high) {
            rebuildWindow(low: low, high: high, growingUp: isEmpty || other.maxKey > maxKey)
        }
        // Only the bin at `other`'s collapsing end carries values collapsed there already.
        let carryingKey = collapsingEnd == .lowestKeys ? other.minKey : other.maxKey
        var moved: UInt64 = 0
        for key in other.minKey...other.maxKey {
            let count = other.bins[key - other.base]
            guard count != 0 else { continue }
            let target = Swift.min(Swift.max(key, low), high)
            bins[target - base] &+= count
            if target != key { moved &+= count - (key == carryingKey ? other.collapsedCount : 0) }
        }
        collapsedCount &+= other.collapsedCount &+ moved
        minKey = Swift.min(minKey, Swift.min(Swift.max(other.minKey, low), high))
        maxKey = Swift.max(maxKey, Swift.min(Swift.max(other.maxKey, low), high))
        total &+= other.total
    }

    /// The slow path of `add`: widens (or, at the bin limit, slides) the
    /// window so that the key fits, collapsing what falls out.
    private mutating func addOutsideWindow(key: Int, count: UInt64) {
        var target = key
        if isEmpty {
            let width = Swift.min(maxBins, 2 * Self.growthSlack)
            bins = Array(repeating: 0, count: width)
            base = key - width / 2
            minKey = key
            maxKey = key
        } else {
            let (low, high) = keptRange(Swift.min(minKey, key), Swift.max(maxKey, key))
            target = Swift.min(Swift.max(key, low), high)
            if windowMustChange(low, high) {
                rebuildWindow(low: low, high: high, growingUp: key > maxKey)
            }
        }
        bins[target - base] &+= count
        if target != key { collapsedCount &+= count }
        minKey = Swift.min(minKey, target)
        maxKey = Swift.max(maxKey, target)
        total &+= count
    }

    /// The keys a store spanning `low...high` keeps: all of them, or at the bin limit the
    /// `maxBins` keys at the end that never collapses.
    private func keptRange(_ low: Int, _ high: Int) -> (low: Int, high: Int) {
        guard high - low + 1 > maxBins else { return (low, high) }
        switch collapsingEnd {
        case .lowestKeys: return (high - maxBins + 1, high)
        case .highestKeys: return (low, low + maxBins - 1)
        }
    }

    /// The window must move when it does not cover `low...high`, or when bins it holds now fall
    /// outside that range and must collapse.
    private func windowMustChange(_ low: Int, _ high: Int) -> Bool {
        low < base || high >= base + bins.count || low > minKey || high < maxKey
    }

    /// Moves the counts into a new window that covers `low...high` (at most `maxBins` wide) plus
    /// some slack on the growing side; counts outside `low...high` collapse into its nearer end.
    private mutating func rebuildWindow(low: Int, high: Int, growingUp: Bool) {
        let width = high - low + 1
        let slack = Swift.min(maxBins - width, Swift.max(Self.growthSlack, width / 2))
        let newBase = growingUp ? low : low - slack
        var newBins = [UInt64](repeating: 0, count: width + slack)
        var moved: UInt64 = 0
        var collapsedEndMoved = false
        let collapsedEnd = collapsingEnd == .lowestKeys ? minKey : maxKey
        // A stride, not a range: an empty store's minKey > maxKey walks nothing.
        for key in stride(from: minKey, through: maxKey, by: 1) where bins[key - base] != 0 {
            let count = bins[key - base]
            let target = Swift.min(Swift.max(key, low), high)
            newBins[target - newBase] &+= count
            if target != key {
                moved &+= count
                if key == collapsedEnd { collapsedEndMoved = true }
            }
        }
        // Values collapsed before sat in the bin at the collapsing end; if it moved, do not
        // count them twice.
        collapsedCount = collapsedCount &+ moved &- (collapsedEndMoved ? collapsedCount : 0)
        bins = newBins
        base = newBase
        guard !isEmpty else { return }
        minKey = Swift.min(Swift.max(minKey, low), high)
        maxKey = Swift.min(Swift.max(maxKey, low), high)
    }

    /// The non-empty bins as (key, count), lowest key first.
    func forEachBin(_ body: (_ key: Int, _ count: UInt64) throws -> Void) rethrows {
        guard !isEmpty else { return }
        for key in minKey...maxKey {
            let count = bins[key - base]
            if count != 0 { try body(key, count) }
        }
    }

    /// The counts from `minKey` through `maxKey`, zeros included.
    var contiguousCounts: ArraySlice<UInt64> {
        isEmpty ? [] : bins[(minKey - base)...(maxKey - base)]
    }
}

extension BinStore: Equatable {
    /// Equal when they hold the same counts in the same bins, however their windows lie.
    static func == (lhs: BinStore, rhs: BinStore) -> Bool {
        lhs.total == rhs.total && lhs.collapsedCount == rhs.collapsedCount
            && lhs.maxBins == rhs.maxBins && lhs.collapsingEnd == rhs.collapsingEnd
            && (lhs.isEmpty || (lhs.minKey == rhs.minKey && lhs.contiguousCounts == rhs.contiguousCounts))
    }
}
