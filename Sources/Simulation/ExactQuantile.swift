// The exact quantile in the sketch's rank convention, for checking answers in tests, the demo and
// benchmarks.

/// The q-quantile of sorted values in the lower rank convention of DataDog's sketches: the element
/// at 0-based index ⌊q·(n−1)⌋.
public func exactLowerQuantile(_ sorted: [Double], _ q: Double) -> Double {
    precondition(!sorted.isEmpty && q >= 0 && q <= 1, "a quantile of an empty list or outside [0, 1]")
    return sorted[Int((q * Double(sorted.count - 1)).rounded(.down))]
}
