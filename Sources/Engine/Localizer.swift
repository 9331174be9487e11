// Localization: the fewest components that explain a window's bad pairs, with the healthy pairs
// through a component as the evidence that clears it. See docs/localization.md for why this shape.
//
// First, stalled prober hosts (own control pairs slow, peers reach them at full speed) are left out
// of latency. Every other judged pair votes for the components on its route, for latency and for
// loss in the same sweep: a bad pair (slow; or for loss, any probe lost) against, a healthy pair
// for. Then per symptom, greedily, the component whose still-unexplained bad pairs best justify it
// is blamed, scored by those pairs times its bad share (squared for latency), until none is
// justified. Justified means: evidence from its own node or from enough independent reporters, and
// either a bad share of at least `minBadShare`, or, for gray faults that touch few pairs, far more
// lost probes (or, for links and switches, slow pairs) than the window's background could give;
// the background leaves out what the share test alone explains. A component blamed only with dead
// pairs needs nearly all its pairs dead. Rails of one node blamed together become the node.
// Components that explain the same pairs equally well are named as ambiguous. The work runs on
// component numbers (ComponentTable) and arrays, not on names and dictionaries, and each sweep over
// the window's pairs serves both symptoms: a window of a 100k-GPU fleet has millions of pairs.

import FleetModel
import Foundation

/// One blamed component in one window.
struct Blame: Sendable {
    let component: Component
    let symptom: Symptom
    /// The pairs it explains.
    let explained: [JudgedPair]
    let badPairs: Int
    let healthyPairs: Int
    let reporters: Int
    /// Components that explained exactly the same pairs just as well, sorted: the window could not
    /// tell them from this one.
    var ambiguousWith: [Component] = []
    var share: Double { Double(badPairs) / Double(badPairs + healthyPairs) }
}

/// What a window's pairs show without a fault, for the gray-fault tests: each value from the pairs
/// that count for its symptom (not already explained by the share test, not a stalled prober's).
/// Tallied in localization's one sweep over the pairs (`count`), the pairs the share test explains
/// taken back out (`uncount`): whole numbers, so the same whatever the order.
struct Background {
    /// One reporting endpoint's counted pairs: probes sent and lost (loss), judged and slow pairs
    /// (latency).
    private struct SourceTally {
        var sent = 0
        var lost = 0
        var judged: Int32 = 0
        var slow: Int32 = 0
    }
    /// By component number (endpoints only).
    private var sources: [SourceTally]
    private var judged = 0
    private var slowAtMedian = 0

    init(table: ComponentTable) {
        sources = [SourceTally](repeating: SourceTally(), count: table.count)
    }

    /// Counts a pair for the symptoms it counts for.
    @inline(__always)
    mutating func count(_ pair: JudgedPair, forLatency: Bool, forLoss: Bool, rules: Rules) {
        tally(pair, forLatency: forLatency, forLoss: forLoss, rules: rules, by: 1)
    }

    /// Takes a counted pair back out of one symptom's values.
    mutating func uncount(_ pair: JudgedPair, _ symptom: Symptom, rules: Rules) {
        tally(pair, forLatency: symptom == .latency, forLoss: symptom == .loss, rules: rules, by: -1)
    }

    @inline(__always)
    private mutating func tally(_ pair: JudgedPair, forLatency: Bool, forLoss: Bool, rules: Rules, by step: Int) {
        let observation = pair.observation
        let source = Int(observation.srcNumber)
        if forLoss && pair.verdict != .dead && observation.sent > 0 {
            sources[source].sent += step * Int(observation.sent)
            sources[source].lost += step * Int(observation.lost)
        }
        if forLatency && observation.samples >= rules.minSamples {
            sources[source].judged += Int32(step)
            judged += step
            if pair.verdict == .slow { sources[source].slow += Int32(step) }
            if pair.isSlowAtMedian { slowAtMedian += step }
        }
    }

    /// The rates the tallies make.
    func rates() -> BackgroundRates {
        // Per reporting endpoint (the order does not matter: the trimmed mean sorts).
        var lossRates: [Double] = []
        var slowShares: [Double] = []
        for tally in sources {
            if tally.sent > 0 { lossRates.append(Double(tally.lost) / Double(tally.sent)) }
            if tally.judged > 0 { slowShares.append(Double(tally.slow) / Double(tally.judged)) }
        }
        return BackgroundRates(
            lossRate: max(1e-5, trimmedMean(lossRates)), slowShare: max(1e-3, trimmedMean(slowShares)),
            slowAtMedianShare: max(1e-3, judged == 0 ? 0 : Double(slowAtMedian) / Double(judged)))
    }
}

/// What a window's pairs show without a fault (`Background`).
struct BackgroundRates {
    /// The fleet's background loss rate: the mean loss rate of the reporting endpoints (over their
    /// pairs that are not dead), leaving out the lossiest tenth so that the faults being looked for
    /// do not raise their own bar. At least 1e-5, so that one lost probe in a lossless fleet is not
    /// significant.
    let lossRate: Double
    /// The share of judged pairs that are slow without a fault: the mean over reporting endpoints
    /// of the slow share of their pairs, leaving out the slowest tenth; at least 1e-3.
    let slowShare: Double
    /// The share of judged pairs that are slow at their median, over all of them; at least 1e-3.
    /// Not trimmed per source like the tail's: a pair slow at its median without a fault is one
    /// whose path is persistently slower than its class (a longer cable, a busier host), spread
    /// thinly over the fleet; with a dozen pairs per source, leaving out the sources that have one
    /// would leave out most of them, and the same pairs would look like a fault every window.
    let slowAtMedianShare: Double
}

/// The mean of the values without their largest tenth; 0 for none.
private func trimmedMean(_ values: [Double]) -> Double {
    let kept = values.sorted().prefix(max(1, values.count - values.count / 10))
    return kept.isEmpty ? 0 : kept.reduce(0, +) / Double(kept.count)
}

/// P(X ≥ k) for X ~ Poisson(mean): how likely background loss alone is to lose `k` probes.
func poissonTail(atLeast k: Int, mean: Double) -> Double {
    guard k > 0 else { return 1 }
    guard mean > 0 else { return 0 }
    // 1 − P(X < k), summing the terms in log space; exact enough for the tiny tails we test.
    var term = exp(-mean)  // P(X = 0)
    var below = term
    for i in 1..<k {
        term *= mean / Double(i)
        below += term
        if term < 1e-300 { break }
    }
    return max(0, 1 - below)
}

/// Reporters whose own measurements are not to be trusted on latency in this window: a node whose
/// control pairs (its loopbacks and intra-host pairs) are mostly slow while the pairs other nodes
/// probe *toward* it are mostly healthy. That is the prober's host stalling (a CPU hiccup, a noisy
/// neighbour, its agent descheduled), not its NIC or the fabric: a slow NIC or node slows probes in
/// both directions. Its latency pairs are left out of the window's localization (R-Pingmesh's
/// false positives from host noise); its loss pairs still count. Tallied as the window's pairs are
/// judged (`add`), so that it needs no sweep of its own over them.
struct StalledProbers {
    /// One node's judged and slow pairs: its own control pairs, and the pairs toward it.
    private struct Tally {
        var controlJudged: Int32 = 0
        var controlSlow: Int32 = 0
        var incomingJudged: Int32 = 0
        var incomingSlow: Int32 = 0
    }

    /// By component number (nodes only).
    private var tallies: [Tally]
    /// The nodes with control pairs judged.
    private var reporters: [Int32] = []

    init(table: ComponentTable) {
        tallies = [Tally](repeating: Tally(), count: table.count)
    }

    mutating func add(_ pair: JudgedPair, rules: Rules) {
        let observation = pair.observation
        guard observation.samples >= rules.minSamples else { return }
        let slow: Int32 = pair.verdict == .slow ? 1 : 0
        switch observation.pathClass {
        case .loopback, .intraHost:
            let node = Int(observation.reporterNumber)
            if tallies[node].controlJudged == 0 { reporters.append(observation.reporterNumber) }
            tallies[node].controlJudged += 1
            tallies[node].controlSlow += slow
        case .sameLeaf, .crossLeaf:
            tallies[Int(observation.dstNodeNumber)].incomingJudged += 1
            tallies[Int(observation.dstNodeNumber)].incomingSlow += slow
        }
    }

    /// The stalled probers' node numbers, ascending.
    func nodes(rules: Rules) -> [Int32] {
        reporters.sorted().filter { number in
            let tally = tallies[Int(number)]
            guard tally.incomingJudged >= rules.minIndependentReporters + 1,
                Double(tally.controlSlow) >= rules.minBadShare * Double(tally.controlJudged)
            else { return false }
            // Incoming pairs no worse than a quarter slow: the node answers its peers at full speed.
            return 4 * tally.incomingSlow <= tally.incomingJudged
        }
    }
}

/// The blamed components for latency, then for loss, most explanatory first within each symptom.
/// `routes`: the component numbers the pairs' `route` ranges point into.
/// `stalledProbers`: numbers of the nodes whose latency pairs do not vote (`StalledProbers`).
func localize(
    _ pairs: [JudgedPair], routes: [Int32], rules: Rules, topology: Topology, table: ComponentTable,
    stalledProbers: [Int32]
) -> [Blame] {
    // Healthy votes per component number, both symptoms side by side (one visit per component of
    // a route); bad pairs listed per symptom, in pair order. Pairs counted for the background: all
    // but the stalled probers' (latency), until the share test below leaves out more.
    var votes = [HealthyVotes](repeating: HealthyVotes(), count: table.count)
    var isStalled = [Bool](repeating: false, count: table.count)
    for number in stalledProbers { isStalled[Int(number)] = true }
    var background = Background(table: table)
    var badForLatency: [Int] = []
    var badForLoss: [Int] = []
    for index in pairs.indices {
        let pair = pairs[index]
        let stalled = isStalled[Int(pair.observation.reporterNumber)]
        background.count(pair, forLatency: !stalled, forLoss: true, rules: rules)
        // 1 for a healthy vote, 0 for none.
        var healthyForLatency: Int32 = 0
        if stalled {
            // Not counted for latency (above).
        } else if pair.isBad(for: .latency) {
            badForLatency.append(index)
        } else if pair.isHealthy(for: .latency, rules: rules) {
            healthyForLatency = 1
        }
        var healthyForLoss: Int32 = 0
        if pair.isBad(for: .loss) {
            badForLoss.append(index)
        } else if pair.isHealthy(for: .loss, rules: rules) {
            healthyForLoss = 1
        }
        guard healthyForLatency | healthyForLoss != 0 else { continue }
        let sent = healthyForLoss == 1 ? Int(pair.observation.sent) : 0
        // Only components the pair surely crossed vote: an unknown ECMP spine gets no evidence.
        for place in pair.observation.route {
            votes[Int(routes[place])].add(latency: healthyForLatency, loss: healthyForLoss, sent: sent)
        }
    }
    guard !badForLatency.isEmpty || !badForLoss.isEmpty else { return [] }
    let latency = BadPairs(badForLatency, routes: routes, pairs: pairs, table: table)
    let loss = BadPairs(badForLoss, routes: routes, pairs: pairs, table: table)

    /// Whether the bad pairs (ordinals) come from the component's own node (for its endpoints and
    /// itself) or from enough reporting nodes.
    func enoughWitnesses(_ component: Int32, _ ordinals: some Collection<Int32>, of bad: BadPairs) -> Bool {
        let ownNode = table.nodeOf[Int(component)]
        var reporters: Set<Int32> = []
        for ordinal in ordinals {
            let reporter = bad.facts[Int(ordinal)].reporter
            if reporter == ownNode { return true }
            reporters.insert(reporter)
            if reporters.count >= rules.minIndependentReporters { return true }
        }
        return reporters.count >= rules.minIndependentReporters
    }

    // The background is what the window's pairs show without a fault: leave out the stalled
    // probers (above), and the bad pairs of every component that the share test alone would blame
    // (its own node or enough reporters, and most of its pairs bad), so that a fully broken link
    // does not raise the bar that a partly broken one must clear. A pair bad through several such
    // components is taken out once.
    func leaveOutShareBlamed(_ symptom: Symptom, _ bad: BadPairs) {
        var leftOut = [Bool](repeating: false, count: bad.count)
        for component in bad.candidates {
            let badVotes = bad[component].count
            let share = Double(badVotes) / Double(badVotes + Int(votes[Int(component)].healthy(for: symptom)))
            guard share >= rules.minBadShare, enoughWitnesses(component, bad[component], of: bad) else { continue }
            // (No stalled prober's pair is bad for latency: none was counted for it.)
            for ordinal in bad[component] where !leftOut[Int(ordinal)] {
                leftOut[Int(ordinal)] = true
                background.uncount(pairs[bad.indexes[Int(ordinal)]], symptom, rules: rules)
            }
        }
    }
    leaveOutShareBlamed(.latency, latency)
    leaveOutShareBlamed(.loss, loss)
    let backgroundRates = background.rates()

    /// Whether the still-unexplained bad pairs (ordinals) through a component justify blaming it:
    /// enough of its votes bad, or (loss) its probes losing far more than background loss could;
    /// and the evidence from its own node or from enough independent reporters. Returns the bad
    /// share.
    func justification(_ component: Int32, covered: [Int32], symptom: Symptom, of bad: BadPairs) -> Double? {
        guard enoughWitnesses(component, covered, of: bad) else { return nil }
        let healthyVotes = Int(votes[Int(component)].healthy(for: symptom))
        let share = Double(covered.count) / Double(covered.count + healthyVotes)
        // A component that is down drops every pair through it: healthy pairs through it clear
        // it of being down, though not of being lossy.
        let allDead = covered.allSatisfy { bad.facts[Int($0)].isDead }
        if allDead && share < 0.9 { return nil }
        if share >= rules.minBadShare { return share }
        if symptom == .latency {
            // Partial slowness is the network's way of failing: a link's bad lane slows the ECMP
            // flows hashed onto it, a switch's bad ASIC port group or buffer some of the flows it
            // carries. A host slows everything, and its own pairs say so (the share test above).
            guard table.isLinkOrSwitch(component) else { return nil }
            // Such a fault leaves the share low: blame it anyway when its slow pairs are far more
            // than background noise makes. The greedy score (covered × share²) still prefers a
            // fully slow link over the switch that carries it among many healthy flows.
            // Counted twice: all slow pairs against the background's, and the pairs slow at their
            // median against the background's of those, which spikes and tail noise hardly touch:
            // three of a link's eight flows three times slower stand out there, not in the first.
            let judged = Double(covered.count + healthyVotes)
            let slowAtMedian = covered.count { bad.facts[Int($0)].isSlowAtMedian }
            let significant = [
                (covered.count, backgroundRates.slowShare), (slowAtMedian, backgroundRates.slowAtMedianShare),
            ]
            .contains { count, rate in
                count >= rules.minLostProbes && poissonTail(atLeast: count, mean: rate * judged) < 1e-6
            }
            return significant ? share : nil
        }
        // Gray loss (1–5%) leaves most pairs of 20 probes without a loss, so the share test misses
        // it: judge the probes in aggregate instead, against the background.
        // Dead pairs are the share test's business: a dead peer seen by a single reporter must
        // not make that reporter's own rail look lossy.
        let partial = covered.lazy.map { bad.facts[Int($0)] }.filter { !$0.isDead }
        let lost = partial.reduce(0) { $0 + Int($1.lost) }
        let sent = partial.reduce(votes[Int(component)].lossSent) { $0 + Int($1.sent) }
        guard sent > 0, lost >= rules.minLostProbes, Double(lost) / Double(sent) >= rules.lossyRate / 2,
            poissonTail(atLeast: lost, mean: backgroundRates.lossRate * Double(sent)) < 1e-6
        else { return nil }
        return share
    }

    /// The greedy explanation of one symptom's bad pairs.
    func explain(_ symptom: Symptom, _ bad: BadPairs) -> [Blame] {
        var unexplained = [Bool](repeating: true, count: bad.count)
        var unexplainedCount = bad.count
        /// A component's still-unexplained bad pairs and its score, when they justify blaming it.
        func assessment(of component: Int32) -> Assessment? {
            let covered = bad[component].filter { unexplained[Int($0)] }
            guard !covered.isEmpty, let share = justification(component, covered: covered, symptom: symptom, of: bad)
            else { return nil }
            // The most explained, weighted by how concentrated the evidence is: a link's lossy
            // flows beat the spine that carries them among many healthy ones. For latency, by
            // the square of it: two slow access links (all their flows slow) beat the leaf
            // between them (half of its flows slow), while a switch slow on half of all its
            // flows still beats each of its links. Not for loss: a lossy pair is a draw (5%
            // loss leaves a third of 20-probe pairs clean), and squaring that noise would let
            // an access link's luckier share beat the lossy endpoint whose loopback it lacks.
            let score = Double(covered.count) * (symptom == .latency ? share * share : share)
            return Assessment(covered: covered, score: score)
        }
        // Ascending numbers: sorted components. An assessment holds until one of the candidate's
        // pairs is explained: only then is it made again.
        var remaining = bad.candidates.map { (component: $0, assessment: assessment(of: $0)) }
        var isTouched = [Bool](repeating: false, count: table.count)
        var blamed: [Blame] = []
        while unexplainedCount > 0 {
            // The highest score; then the smaller component (kind, then name: the numbers' order).
            var best: (place: Int, assessment: Assessment)?
            var tied: [Int32] = []
            for place in remaining.indices {
                guard let candidate = remaining[place].assessment else { continue }
                if let current = best?.assessment, candidate.score <= current.score {
                    // Another component that explains exactly the same pairs as well: nothing in
                    // this window can tell them apart (links in series), so the finding says so.
                    if candidate.score == current.score && candidate.covered == current.covered {
                        tied.append(remaining[place].component)
                    }
                    continue
                }
                best = (place, candidate)
                tied = []
            }
            guard let (place, chosen) = best else { break }
            let component = remaining.remove(at: place).component
            var reporters: Set<Int32> = []
            for ordinal in chosen.covered {
                reporters.insert(bad.facts[Int(ordinal)].reporter)
                unexplained[Int(ordinal)] = false
                for routePlace in pairs[bad.indexes[Int(ordinal)]].observation.route {
                    isTouched[Int(routes[routePlace])] = true
                }
            }
            unexplainedCount -= chosen.covered.count
            blamed.append(
                Blame(
                    component: table.components[Int(component)], symptom: symptom,
                    explained: chosen.covered.map { pairs[bad.indexes[Int($0)]] }, badPairs: chosen.covered.count,
                    healthyPairs: Int(votes[Int(component)].healthy(for: symptom)), reporters: reporters.count,
                    ambiguousWith: tied.map { table.components[Int($0)] }))
            // The candidates on the routes of the pairs just explained have fewer left to explain.
            isTouched[Int(component)] = false
            for place in remaining.indices where isTouched[Int(remaining[place].component)] {
                isTouched[Int(remaining[place].component)] = false
                remaining[place].assessment = assessment(of: remaining[place].component)
            }
        }
        return mergingEndpointsIntoNodes(blamed, topology: topology)
    }

    return explain(.latency, latency) + explain(.loss, loss)
}

/// The healthy pairs through one component, for both symptoms side by side: the voting sweep
/// visits each component of a pair's route once for both. (Its bad pairs are listed: BadPairs.)
private struct HealthyVotes {
    var latency: Int32 = 0
    var loss: Int32 = 0
    /// The probes the pairs healthy for loss sent (for the aggregate loss test).
    var lossSent = 0

    func healthy(for symptom: Symptom) -> Int32 { symptom == .latency ? latency : loss }

    /// Adds one pair's votes: 1 or 0 for each symptom, and its probes when healthy for loss.
    mutating func add(latency pairLatency: Int32, loss pairLoss: Int32, sent: Int) {
        latency += pairLatency
        loss += pairLoss
        lossSent += sent
    }
}

/// One symptom's bad pairs, and those through each component (one flat array cut per component
/// number). A bad pair is known by its ordinal, its place among them; what the tests need of it is
/// kept by ordinal too, in a small array, where reading it from the window's pairs (hundreds of
/// megabytes, in no useful order) cost more than the tests themselves.
private struct BadPairs {
    /// The bad pairs' indexes into the window's pairs, ascending.
    let indexes: [Int]
    let facts: [BadPairFacts]
    /// The components with at least one bad pair, ascending.
    let candidates: [Int32]
    private let start: [Int]
    private let byComponent: [Int32]

    init(_ indexes: [Int], routes: [Int32], pairs: [JudgedPair], table: ComponentTable) {
        var count = [Int](repeating: 0, count: table.count)
        for index in indexes {
            for place in pairs[index].observation.route { count[Int(routes[place])] += 1 }
        }
        var start = [Int](repeating: 0, count: table.count + 1)
        for number in 0..<table.count { start[number + 1] = start[number] + count[number] }
        var byComponent = [Int32](repeating: 0, count: start[table.count])
        var fill = start
        for (ordinal, index) in indexes.enumerated() {
            for place in pairs[index].observation.route {
                let component = Int(routes[place])
                byComponent[fill[component]] = Int32(ordinal)
                fill[component] += 1
            }
        }
        self.indexes = indexes
        self.facts = indexes.map { BadPairFacts(pairs[$0]) }
        self.candidates = (0..<Int32(table.count)).filter { count[Int($0)] > 0 }
        self.start = start
        self.byComponent = byComponent
    }

    var count: Int { indexes.count }

    /// The ordinals of the bad pairs through a component, ascending.
    subscript(component: Int32) -> ArraySlice<Int32> {
        byComponent[start[Int(component)]..<start[Int(component) + 1]]
    }
}

/// What the justification of a blame reads of a bad pair.
private struct BadPairFacts {
    let reporter: Int32
    let sent: Int32
    let lost: Int32
    let isDead: Bool
    let isSlowAtMedian: Bool

    init(_ pair: JudgedPair) {
        reporter = pair.observation.reporterNumber
        sent = pair.observation.sent
        lost = pair.observation.lost
        isDead = pair.verdict == .dead
        isSlowAtMedian = pair.isSlowAtMedian
    }
}

/// A candidate's still-unexplained bad pairs (ordinals) and its greedy score, when they justify
/// blaming it.
private struct Assessment {
    let covered: [Int32]
    let score: Double
}

/// Several rails of one node failing together is the node failing (architecture note 1: one node,
/// not its eight rails): more than half its rails, and at least two, blamed through their
/// endpoints or their access links, turn into one node blame.
private func mergingEndpointsIntoNodes(_ blamed: [Blame], topology: Topology) -> [Blame] {
    func railNode(_ component: Component) -> NodeName? {
        switch component {
        case .endpoint(let endpoint): return endpoint.node
        case .link(let id):
            guard let link = topology.link(id) else { return nil }
            for end in [link.a, link.b] { if case .endpoint(let endpoint) = end { return endpoint.node } }
            return nil
        case .node, .switch: return nil
        }
    }
    var byNode: [NodeName: [Blame]] = [:]
    for blame in blamed {
        if let node = railNode(blame.component) { byNode[node, default: []].append(blame) }
    }
    var merged: [NodeName: Blame] = [:]
    for (node, rails) in byNode {
        let railCount = topology.node(node)?.rails.count ?? 0
        guard rails.count >= 2, 2 * rails.count > railCount else { continue }
        let ownBlame = blamed.first { $0.component == .node(node) }
        let parts = rails + (ownBlame.map { [$0] } ?? [])
        merged[node] = Blame(
            component: .node(node), symptom: rails[0].symptom, explained: parts.flatMap(\.explained),
            badPairs: parts.map(\.badPairs).reduce(0, +),
            healthyPairs: parts.map(\.healthyPairs).reduce(0, +),
            reporters: parts.map(\.reporters).max() ?? 0)
    }
    var result: [Blame] = []
    for blame in blamed {
        if let node = railNode(blame.component), merged[node] != nil { continue }
        if case .node(let node) = blame.component, merged[node] != nil { continue }
        result.append(blame)
    }
    return result + merged.keys.sorted().map { merged[$0]! }
}
