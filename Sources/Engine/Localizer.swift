// Localization: the fewest components that explain a window's bad pairs, with the healthy pairs
// through a component as the evidence that clears it. See docs/localization.md for why this shape.
//
// First, stalled prober hosts (own control pairs slow, peers reach them at full speed) are left out
// of latency. Per symptom (latency, loss), every other judged pair votes for the components on its
// route: a bad pair (slow; or for loss, any probe lost) against, a healthy pair for. Then greedily,
// the component whose still-unexplained bad pairs best justify it is blamed, scored by those pairs
// times its bad share (squared for latency), until none is justified. Justified means: evidence
// from its own node or from enough independent reporters, and either a bad share of at least
// `minBadShare`, or, for gray faults that touch few pairs, far more lost probes (or, for links and
// switches, slow pairs) than the window's background could give; the background leaves out what
// the share test alone explains. A component blamed only with dead pairs needs nearly all its pairs
// dead. Rails of one node blamed together become the node. Components that explain the same pairs
// equally well are named as ambiguous. The work runs on component numbers (ComponentTable) and
// arrays, not on names and dictionaries: a window of a 100k-GPU fleet has millions of pairs.

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

/// The fleet's background loss rate in a window: the mean loss rate of the reporting endpoints
/// (over their `counted` pairs that are not dead), leaving out the lossiest tenth so that the
/// faults being looked for do not raise their own bar. At least 1e-5, so that one lost probe in a
/// lossless fleet is not significant.
func backgroundLossRate(_ pairs: [JudgedPair], counted: [Bool], table: ComponentTable) -> Double {
    var sent = [Int](repeating: 0, count: table.count)
    var lost = [Int](repeating: 0, count: table.count)
    var sources: [Int32] = []
    for index in pairs.indices where counted[index] {
        let observation = pairs[index].observation
        guard pairs[index].verdict != .dead, observation.sent > 0 else { continue }
        let source = Int(observation.srcNumber)
        if sent[source] == 0 { sources.append(observation.srcNumber) }
        sent[source] += Int(observation.sent)
        lost[source] += Int(observation.lost)
    }
    let rates = sources.map { Double(lost[Int($0)]) / Double(sent[Int($0)]) }
    return max(1e-5, trimmedMean(rates))
}

/// The share of a window's judged pairs that are slow without a fault (`isSlow` says which count):
/// the mean over reporting endpoints of the slow share of their `counted` pairs, leaving out the
/// slowest tenth; at least 1e-3.
func backgroundSlowShare(
    _ pairs: [JudgedPair], counted: [Bool], rules: Rules, table: ComponentTable,
    isSlow: (JudgedPair) -> Bool
) -> Double {
    var judged = [Int32](repeating: 0, count: table.count)
    var slow = [Int32](repeating: 0, count: table.count)
    var sources: [Int32] = []
    for index in pairs.indices where counted[index] && pairs[index].observation.samples >= rules.minSamples {
        let source = Int(pairs[index].observation.srcNumber)
        if judged[source] == 0 { sources.append(pairs[index].observation.srcNumber) }
        judged[source] += 1
        if isSlow(pairs[index]) { slow[source] += 1 }
    }
    let shares = sources.map { Double(slow[Int($0)]) / Double(judged[Int($0)]) }
    return max(1e-3, trimmedMean(shares))
}

/// The share of a window's `counted` judged pairs that are slow at their median, over all of them;
/// at least 1e-3. Not trimmed per source like the tail's: a pair slow at its median without a
/// fault is one whose path is persistently slower than its class (a longer cable, a busier
/// host), spread thinly over the fleet; with a dozen pairs per source, leaving out the sources
/// that have one would leave out most of them, and the same pairs would look like a fault every
/// window.
func overallSlowAtMedianShare(_ pairs: [JudgedPair], counted: [Bool], rules: Rules) -> Double {
    var judged = 0
    var slow = 0
    for index in pairs.indices where counted[index] && pairs[index].observation.samples >= rules.minSamples {
        judged += 1
        if pairs[index].isSlowAtMedian { slow += 1 }
    }
    return max(1e-3, judged == 0 ? 0 : Double(slow) / Double(judged))
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
/// false positives from host noise); its loss pairs still count.
func noisyReporters(_ pairs: [JudgedPair], rules: Rules, table: ComponentTable) -> [Int32] {
    var controlJudged = [Int32](repeating: 0, count: table.count)
    var controlSlow = [Int32](repeating: 0, count: table.count)
    var incomingJudged = [Int32](repeating: 0, count: table.count)
    var incomingSlow = [Int32](repeating: 0, count: table.count)
    var reporters: [Int32] = []
    for pair in pairs where pair.observation.samples >= rules.minSamples {
        let observation = pair.observation
        let slow: Int32 = pair.verdict == .slow ? 1 : 0
        switch observation.pathClass {
        case .loopback, .intraHost:
            let node = Int(observation.reporterNumber)
            if controlJudged[node] == 0 { reporters.append(observation.reporterNumber) }
            controlJudged[node] += 1
            controlSlow[node] += slow
        case .sameLeaf, .crossLeaf:
            incomingJudged[Int(observation.dstNodeNumber)] += 1
            incomingSlow[Int(observation.dstNodeNumber)] += slow
        }
    }
    return reporters.sorted().filter { number in
        let node = Int(number)
        guard incomingJudged[node] >= rules.minIndependentReporters + 1,
            Double(controlSlow[node]) >= rules.minBadShare * Double(controlJudged[node])
        else { return false }
        // Incoming pairs no worse than a quarter slow: the node answers its peers at full speed.
        return 4 * incomingSlow[node] <= incomingJudged[node]
    }
}

/// The blamed components for one symptom, most explanatory first.
/// `routes`: the component numbers the pairs' `route` ranges point into.
/// `ignoredReporters`: numbers of the nodes whose pairs do not vote (`noisyReporters` for latency).
func localize(
    _ pairs: [JudgedPair], routes: [Int32], symptom: Symptom, rules: Rules, topology: Topology, table: ComponentTable,
    ignoredReporters: [Int32] = []
) -> [Blame] {
    // Votes per component number: healthy pairs counted (and their probes, for the aggregate loss
    // test); bad pairs listed, in pair order, as one flat array cut per component.
    var healthy = [Int32](repeating: 0, count: table.count)
    var healthySent = [Int](repeating: 0, count: table.count)
    var badCount = [Int32](repeating: 0, count: table.count)
    var counted = [Bool](repeating: true, count: pairs.count)
    var isIgnored = [Bool](repeating: false, count: table.count)
    for number in ignoredReporters { isIgnored[Int(number)] = true }
    var badIndexes: [Int] = []
    for index in pairs.indices {
        let pair = pairs[index]
        if isIgnored[Int(pair.observation.reporterNumber)] {
            counted[index] = false
            continue
        }
        // Only components the pair surely crossed vote: an unknown ECMP spine gets no evidence.
        if pair.isBad(for: symptom) {
            badIndexes.append(index)
            for place in pair.observation.route { badCount[Int(routes[place])] += 1 }
        } else if pair.isHealthy(for: symptom, rules: rules) {
            for place in pair.observation.route {
                let component = routes[place]
                healthy[Int(component)] += 1
                healthySent[Int(component)] += Int(pair.observation.sent)
            }
        }
    }
    guard !badIndexes.isEmpty else { return [] }
    var badStart = [Int](repeating: 0, count: table.count + 1)
    for number in 0..<table.count { badStart[number + 1] = badStart[number] + Int(badCount[number]) }
    var badPairs = [Int](repeating: 0, count: badStart[table.count])
    var fill = badStart
    for index in badIndexes {
        for place in pairs[index].observation.route {
            let component = routes[place]
            badPairs[fill[Int(component)]] = index
            fill[Int(component)] += 1
        }
    }
    func bad(_ component: Int32) -> ArraySlice<Int> {
        badPairs[badStart[Int(component)]..<badStart[Int(component) + 1]]
    }
    /// Whether a pair's reporter is the component's own node (for its endpoints and itself).
    func isOwn(_ component: Int32, _ index: Int) -> Bool {
        table.nodeOf[Int(component)] == pairs[index].observation.reporterNumber
    }
    /// Whether the pairs come from the component's own node or from enough reporting nodes.
    func enoughWitnesses(_ component: Int32, _ indexes: some Collection<Int>) -> Bool {
        var reporters: Set<Int32> = []
        for index in indexes {
            if isOwn(component, index) { return true }
            reporters.insert(pairs[index].observation.reporterNumber)
        }
        return reporters.count >= rules.minIndependentReporters
    }
    let candidates = (0..<Int32(table.count)).filter { badCount[Int($0)] > 0 }

    // The background is what the window's pairs show without a fault: leave out the ignored
    // reporters, and the bad pairs of every component that the share test alone would blame (its
    // own node or enough reporters, and most of its pairs bad), so that a fully broken link does
    // not raise the bar that a partly broken one must clear.
    for component in candidates {
        let badVotes = Int(badCount[Int(component)])
        let share = Double(badVotes) / Double(badVotes + Int(healthy[Int(component)]))
        guard share >= rules.minBadShare, enoughWitnesses(component, bad(component)) else { continue }
        for index in bad(component) { counted[index] = false }
    }
    let background = backgroundLossRate(pairs, counted: counted, table: table)
    let backgroundSlow = backgroundSlowShare(pairs, counted: counted, rules: rules, table: table) {
        $0.verdict == .slow
    }
    let backgroundSlowAtMedian = overallSlowAtMedianShare(pairs, counted: counted, rules: rules)

    /// Whether the still-unexplained bad pairs through a component justify blaming it: enough of
    /// its votes bad, or (loss) its probes losing far more than background loss could; and the
    /// evidence from its own node or from enough independent reporters. Returns the bad share.
    func justification(_ component: Int32, covered: [Int]) -> Double? {
        guard enoughWitnesses(component, covered) else { return nil }
        let healthyVotes = Int(healthy[Int(component)])
        let share = Double(covered.count) / Double(covered.count + healthyVotes)
        // A component that is down drops every pair through it: healthy pairs through it clear
        // it of being down, though not of being lossy.
        let allDead = covered.allSatisfy { pairs[$0].verdict == .dead }
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
            let slowAtMedian = covered.count { pairs[$0].isSlowAtMedian }
            let significant = [(covered.count, backgroundSlow), (slowAtMedian, backgroundSlowAtMedian)]
                .contains { count, rate in
                    count >= rules.minLostProbes && poissonTail(atLeast: count, mean: rate * judged) < 1e-6
                }
            return significant ? share : nil
        }
        // Gray loss (1–5%) leaves most pairs of 20 probes without a loss, so the share test misses
        // it: judge the probes in aggregate instead, against the background.
        // Dead pairs are the share test's business: a dead peer seen by a single reporter must
        // not make that reporter's own rail look lossy.
        let partial = covered.filter { pairs[$0].verdict != .dead }
        let lost = partial.reduce(0) { $0 + Int(pairs[$1].observation.lost) }
        let sent = partial.reduce(healthySent[Int(component)]) { $0 + Int(pairs[$1].observation.sent) }
        guard sent > 0, lost >= rules.minLostProbes, Double(lost) / Double(sent) >= rules.lossyRate / 2,
            poissonTail(atLeast: lost, mean: background * Double(sent)) < 1e-6
        else { return nil }
        return share
    }

    var unexplained = [Bool](repeating: false, count: pairs.count)
    for index in badIndexes { unexplained[index] = true }
    var unexplainedCount = badIndexes.count
    var blamed: [Blame] = []
    var remaining = candidates  // ascending numbers: sorted components
    while unexplainedCount > 0 {
        var best: (component: Int32, covered: [Int], share: Double, score: Double)?
        var tied: [Int32] = []
        for component in remaining {
            let covered = bad(component).filter { unexplained[$0] }
            guard !covered.isEmpty, let share = justification(component, covered: covered) else { continue }
            // The most explained, weighted by how concentrated the evidence is: a link's lossy
            // flows beat the spine that carries them among many healthy ones. For latency, by the
            // square of it: two slow access links (all their flows slow) beat the leaf between
            // them (half of its flows slow), while a switch slow on half of all its flows still
            // beats each of its links. Not for loss: a lossy pair is a draw (5% loss leaves a
            // third of 20-probe pairs clean), and squaring that noise would let an access link's
            // luckier share beat the lossy endpoint whose loopback it lacks. Then the smaller
            // component (kind, then name: the numbers' order).
            let score = Double(covered.count) * (symptom == .latency ? share * share : share)
            if let current = best, score <= current.score {
                // Another component that explains exactly the same pairs as well: nothing in
                // this window can tell them apart (links in series), so the finding says so.
                if score == current.score && covered == current.covered { tied.append(component) }
                continue
            }
            best = (component, covered, share, score)
            tied = []
        }
        guard let chosen = best else { break }
        var reporters: Set<Int32> = []
        for index in chosen.covered {
            reporters.insert(pairs[index].observation.reporterNumber)
            unexplained[index] = false
        }
        unexplainedCount -= chosen.covered.count
        blamed.append(
            Blame(
                component: table.components[Int(chosen.component)], symptom: symptom,
                explained: chosen.covered.map { pairs[$0] }, badPairs: chosen.covered.count,
                healthyPairs: Int(healthy[Int(chosen.component)]), reporters: reporters.count,
                ambiguousWith: tied.map { table.components[Int($0)] }))
        remaining.removeAll { $0 == chosen.component }
    }
    return mergingEndpointsIntoNodes(blamed, topology: topology)
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
