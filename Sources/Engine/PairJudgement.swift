// One window's pairs: their statistics from the sketches, the fleet-relative baselines of each path
// class, and each pair's verdict (healthy, slow, lossy, dead) with a score.

import FleetModel
import QuantileSketch

/// What the engine knows of one probed pair in one window.
struct PairObservation: Sendable {
    let src: EndpointID
    let dst: EndpointID
    /// The node that reported it (the source's node).
    let reporter: NodeName
    let path: ProbePath
    let sent: Int
    let lost: Int
    /// Quantiles of the returned probes' RTTs (µs); nil without samples.
    let p50: Double?
    let p90: Double?
    let p99: Double?
    let p999: Double?
    var samples: Int { sent - lost }
    var lossRate: Double { sent > 0 ? Double(lost) / Double(sent) : 0 }
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
    let verdict: Verdict
    /// How far past its threshold: 1 means just at it (0 for healthy pairs).
    let score: Double
    /// Slow at its median, not only in its tail: what a pair's own lane or port being slow does,
    /// and what a probe's rare spike (its p99 of 20 samples is its slowest one) does not.
    var isSlowAtMedian = false

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

func median(_ values: [Double]) -> Double? {
    guard !values.isEmpty else { return nil }
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// Baselines per path class, from the pairs with enough samples.
func baselines(_ observations: [PairObservation], rules: Rules) -> [PathClass: ClassBaseline] {
    var result: [PathClass: ClassBaseline] = [:]
    for pathClass in PathClass.allCases {
        let members = observations.filter { $0.path.pathClass == pathClass && $0.samples >= rules.minSamples }
        guard let p50 = median(members.compactMap(\.p50)), let p99 = median(members.compactMap(\.p99)) else {
            continue
        }
        result[pathClass] = ClassBaseline(medianP50: p50, medianP99: p99, pairs: members.count)
    }
    return result
}

/// The verdict on one pair against its class's baseline, its own history and the rules' floors.
func judge(
    _ pair: PairObservation, baseline: ClassBaseline?, ownP50: Double?, rules: Rules
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
    let classRules = rules.pathClasses[pair.path.pathClass]!
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
    if let ownP50, let baseline, p50 > baseline.medianP50 {
        medianScore = max(
            medianScore, p50 / max(ownP50 * classRules.slowP50Ratio, ownP50 + classRules.minExcessMicros))
    }
    if classRules.ceilingP50Micros > 0 { medianScore = max(medianScore, p50 / classRules.ceilingP50Micros) }
    if classRules.ceilingP99Micros > 0 { tailScore = max(tailScore, p99 / classRules.ceilingP99Micros) }
    let score = max(medianScore, tailScore)
    var judged = JudgedPair(observation: pair, verdict: score > 1 ? .slow : .healthy, score: score > 1 ? score : 0)
    judged.isSlowAtMedian = medianScore > 1
    return judged
}
