// One window's pairs: their statistics from the sketches, the fleet-relative baselines of each path
// class, and each pair's verdict (healthy, slow, lossy, dead) with a score.

import FleetModel
import QuantileSketch

/// What the engine knows of one probed pair in one window. Numbers only (ComponentTable), no
/// names: millions are built, copied and judged per window, and none of them costs a reference
/// count. Small, too (48 bytes; a `JudgedPair` 56): the window's passes stream over millions of
/// them, so the fields are laid out largest first and no wider than their values need.
struct PairObservation: Sendable {
    /// The p50 and p99 of the returned probes' RTTs (µs), read through `p50` and `p99`: NaN when
    /// no probe returned (`samples` is 0), so that no optional doubles the size of either.
    private let p50Micros: Double
    private let p99Micros: Double
    /// Where the numbers of the components every probe of the pair crossed (ascending) lie in the
    /// window's route array (one array of component numbers for all the window's pairs).
    let routeStart: Int32
    /// The numbers of the source and destination endpoints, of the reporting node (the source's
    /// node) and of the destination's node.
    let srcNumber: Int32
    let dstNumber: Int32
    let reporterNumber: Int32
    let dstNodeNumber: Int32
    /// Probes sent and lost. Report validation keeps both in 0...Report.maxProbesPerPair
    /// (Int32.max), so the engine's conversion from the report's Int cannot trap.
    let sent: Int32
    let lost: Int32
    /// How many component numbers the route has: at most 9 (two endpoints, their access links and
    /// leaves, a spine and its two links; ProbePath).
    let routeCount: UInt8
    let pathClass: PathClass

    init(
        pathClass: PathClass, routeStart: Int32, routeCount: UInt8, srcNumber: Int32, dstNumber: Int32,
        reporterNumber: Int32, dstNodeNumber: Int32, sent: Int32, lost: Int32, p50: Double?, p99: Double?
    ) {
        self.p50Micros = p50 ?? .nan
        self.p99Micros = p99 ?? .nan
        self.routeStart = routeStart
        self.srcNumber = srcNumber
        self.dstNumber = dstNumber
        self.reporterNumber = reporterNumber
        self.dstNodeNumber = dstNodeNumber
        self.sent = sent
        self.lost = lost
        self.routeCount = routeCount
        self.pathClass = pathClass
    }

    /// Returned probes (in Int: no Int32 arithmetic can overflow).
    var samples: Int { Int(sent) - Int(lost) }
    /// Quantiles of the returned probes' RTTs (µs); nil without samples.
    var p50: Double? { samples > 0 ? p50Micros : nil }
    var p99: Double? { samples > 0 ? p99Micros : nil }
    var lossRate: Double { sent > 0 ? Double(lost) / Double(sent) : 0 }
    /// The pair's place in the window's route array.
    var route: Range<Int> { Int(routeStart)..<Int(routeStart) + Int(routeCount) }
}

enum Verdict: String, Sendable {
    case healthy
    case slow
    case lossy
    case dead
    /// Too few probes to say.
    case unjudged
}

/// Symptoms are localized apart: latency and loss need different evidence (architecture note 4).
enum Symptom: String, Sendable, CaseIterable, Comparable {
    case latency
    case loss
    /// What the node says of itself (HealthSignals); not localized, taken as reported.
    case health

    static func < (lhs: Symptom, rhs: Symptom) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The robust centre of a path class's pairs in one window.
struct ClassBaseline: Sendable {
    let medianP50: Double
    let medianP99: Double
    let pairs: Int
}

struct JudgedPair: Sendable {
    let observation: PairObservation
    /// (The two one-byte fields before `score` fill the observation's tail: 56 bytes, not 64.)
    let verdict: Verdict
    /// Slow at its median, not only in its tail: what a pair's own lane or port being slow does,
    /// and what a probe's rare spike (its p99 of 20 samples is its slowest one) does not.
    var isSlowAtMedian = false
    /// How far past its threshold: 1 means just at it (0 for healthy pairs).
    let score: Double

    /// Whether the pair counts for a symptom at all: bad for it, healthy for it, or neither.
    func isBad(for symptom: Symptom) -> Bool {
        switch symptom {
        case .latency: verdict == .slow
        // Any lost probe counts against the route: light loss is judged on the component's
        // aggregate below (Localizer), not on 20 probes of one pair.
        case .loss: verdict == .lossy || verdict == .dead || observation.lost > 0
        case .health: false
        }
    }

    func isHealthy(for symptom: Symptom, rules: Rules) -> Bool {
        switch symptom {
        case .latency: verdict != .slow && observation.samples >= rules.minSamples
        case .loss: observation.lost == 0 && observation.sent >= rules.minProbesForDead
        case .health: false
        }
    }
}

/// The median (the mean of the two middle values for an even count) by selection, in expected
/// linear time, for the window's hundreds of thousands of p50s; nil for none. Reorders `values`.
func selectMedian(_ values: inout [Double]) -> Double? {
    guard !values.isEmpty else { return nil }
    let middle = values.count / 2
    let upper = select(&values, rank: middle)
    guard values.count % 2 == 0 else { return upper }
    // The lower middle is the largest value left of `middle` after the partition.
    var lower = values[0]
    for value in values[..<middle] where value > lower { lower = value }
    return (lower + upper) / 2
}

/// Hoare's selection: puts the value of rank `rank` (0-based, ascending) at that index, smaller or
/// equal values before it and larger or equal after; returns it. Deterministic pivots (middle).
/// Over the array's buffer, its accesses unchecked in release builds (the partition never leaves
/// `low...high`: the pivot stops both scans; debug builds check every access still).
private func select(_ array: inout [Double], rank: Int) -> Double {
    array.withUnsafeMutableBufferPointer { select($0, rank: rank) }
}

private func select(_ values: UnsafeMutableBufferPointer<Double>, rank: Int) -> Double {
    var low = 0
    var high = values.count - 1
    while low < high {
        let pivot = values[low + (high - low) / 2]
        var i = low
        var j = high
        while i <= j {
            while values[i] < pivot { i += 1 }
            while values[j] > pivot { j -= 1 }
            if i <= j {
                values.swapAt(i, j)
                i += 1
                j -= 1
            }
        }
        if rank <= j {
            high = j
        } else if rank >= i {
            low = i
        } else {
            break
        }
    }
    return values[rank]
}

extension PathClass {
    /// The class's place in `allCases`: for arrays indexed by class (a dictionary keyed by the
    /// class would hash its name for each of the window's pairs).
    var ordinal: Int {
        switch self {
        case .loopback: 0
        case .intraHost: 1
        case .sameLeaf: 2
        case .crossLeaf: 3
        }
    }
}

/// Baselines per path class: the medians of the p50s and p99s of the window's pairs with enough
/// samples, one array per class (by ordinal) in `p50s` and `p99s`. The arrays are reordered and
/// left with their values, so that the caller can keep their capacity for the next window
/// (millions of values: WindowBuffers).
func baselines(p50s: inout [[Double]], p99s: inout [[Double]]) -> [PathClass: ClassBaseline] {
    var result: [PathClass: ClassBaseline] = [:]
    for pathClass in PathClass.allCases {
        let pairs = p50s[pathClass.ordinal].count
        guard let p50 = selectMedian(&p50s[pathClass.ordinal]), let p99 = selectMedian(&p99s[pathClass.ordinal])
        else { continue }
        result[pathClass] = ClassBaseline(medianP50: p50, medianP99: p99, pairs: pairs)
    }
    return result
}

/// The verdict on one pair against its class's baseline, its own history and the rules' floors.
/// `ownP50`: the median of the pair's recent healthy p50s, nil before the first; asked only when
/// the pair's p50 is above its class's median and above its own limit at `ownLowestP50`, the
/// lowest of them (the median costs a sort; the lowest, a glance).
func judge(
    _ pair: PairObservation, baseline: ClassBaseline?, classRules: PathClassRules, ownLowestP50: () -> Double?,
    ownP50: () -> Double?, rules: Rules
) -> JudgedPair {
    if pair.sent >= rules.minProbesForDead && pair.lost == pair.sent {
        return JudgedPair(observation: pair, verdict: .dead, score: 1)
    }
    if pair.lost >= rules.minLostProbes && pair.lossRate >= rules.lossyRate {
        return JudgedPair(observation: pair, verdict: .lossy, score: pair.lossRate / rules.lossyRate)
    }
    guard pair.samples >= rules.minSamples, let p50 = pair.p50, let p99 = pair.p99 else {
        let judged = pair.sent >= rules.minProbesForDead
        return JudgedPair(observation: pair, verdict: judged ? .healthy : .unjudged, score: 0)
    }
    var medianScore = 0.0
    var tailScore = 0.0
    if let baseline {
        let p50Limit = max(
            baseline.medianP50 * classRules.slowP50Ratio, baseline.medianP50 + classRules.minExcessMicros)
        let p99Limit = max(
            baseline.medianP99 * classRules.slowP99Ratio, baseline.medianP99 + classRules.minExcessMicros)
        medianScore = p50 / p50Limit
        tailScore = p99 / p99Limit
    }
    // Its own history catches a pair that is slow for itself though still inside its class's band.
    // Only a score past 1 can change the verdict (or the score kept, or being slow at the median),
    // and the limit grows with the p50 it is set from (ratio ≥ 1, excess ≥ 0: the rules' ranges):
    // a p50 within the limit of the history's lowest is within that of its median, so the median
    // need not be found.
    func ownLimit(_ ownP50: Double) -> Double {
        max(ownP50 * classRules.slowP50Ratio, ownP50 + classRules.minExcessMicros)
    }
    if let baseline, p50 > baseline.medianP50, let lowest = ownLowestP50(), p50 > ownLimit(lowest),
        let ownP50 = ownP50()
    {
        medianScore = max(medianScore, p50 / ownLimit(ownP50))
    }
    if classRules.ceilingP50Micros > 0 { medianScore = max(medianScore, p50 / classRules.ceilingP50Micros) }
    if classRules.ceilingP99Micros > 0 { tailScore = max(tailScore, p99 / classRules.ceilingP99Micros) }
    let score = max(medianScore, tailScore)
    var judged = JudgedPair(observation: pair, verdict: score > 1 ? .slow : .healthy, score: score > 1 ? score : 0)
    judged.isSlowAtMedian = medianScore > 1
    return judged
}
