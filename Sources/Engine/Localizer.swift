// Localization: the fewest components that explain a window's bad pairs, with the healthy pairs
// through a component as the evidence that clears it. See docs/localization.md for why this shape.
//
// Per symptom (latency, loss), every judged pair votes for the components on its route: a bad pair
// against, a healthy pair for. A component is a candidate when at least `minBadShare` of its votes
// are bad, and when its bad evidence comes from its own node or from enough independent reporters.
// Then greedily, the candidate that explains the most still-unexplained bad pairs is blamed, until
// none explains any. A node that explains its eight rails wins over eight endpoints (it covers more);
// an endpoint whose loopback and intra-host pairs are healthy loses to its access link (it has
// healthy votes the link does not); a link loses to the switch beside it only when the switch's
// other links carry bad pairs too.

import FleetModel

/// One blamed component in one window.
struct Blame: Sendable {
    let component: Component
    let symptom: Symptom
    /// The pairs it explains.
    let explained: [JudgedPair]
    let badPairs: Int
    let healthyPairs: Int
    let reporters: Int
    var share: Double { Double(badPairs) / Double(badPairs + healthyPairs) }
}

private struct Votes {
    var bad: [Int] = []  // indexes of bad pairs
    var healthy = 0
    var remoteReporters: Set<NodeName> = []
    var ownEvidence = false
}

/// Whether `component` belongs to the node that reported a pair (its endpoints or itself).
private func isOwn(_ component: Component, of reporter: NodeName) -> Bool {
    switch component {
    case .endpoint(let endpoint): endpoint.node == reporter
    case .node(let node): node == reporter
    case .link, .switch: false
    }
}

/// The blamed components for one symptom, most explanatory first.
func localize(_ pairs: [JudgedPair], symptom: Symptom, rules: Rules, topology: Topology) -> [Blame] {
    var votes: [Component: Votes] = [:]
    var badIndexes: [Int] = []
    for (index, pair) in pairs.enumerated() {
        let bad = pair.isBad(for: symptom)
        guard bad || pair.isHealthy(for: symptom, rules: rules) else { continue }
        if bad { badIndexes.append(index) }
        // Only components the pair surely crossed vote: an unknown ECMP spine gets no evidence.
        for component in pair.observation.path.components {
            if bad {
                votes[component, default: Votes()].bad.append(index)
                if isOwn(component, of: pair.observation.reporter) {
                    votes[component]!.ownEvidence = true
                } else {
                    votes[component]!.remoteReporters.insert(pair.observation.reporter)
                }
            } else {
                votes[component, default: Votes()].healthy += 1
            }
        }
    }
    guard !badIndexes.isEmpty else { return [] }

    let candidates = votes.keys.sorted().filter { component in
        let vote = votes[component]!
        guard !vote.bad.isEmpty else { return false }
        let share = Double(vote.bad.count) / Double(vote.bad.count + vote.healthy)
        guard share >= rules.minBadShare else { return false }
        return vote.ownEvidence || vote.remoteReporters.count >= rules.minIndependentReporters
    }
    var unexplained = Set(badIndexes)
    var blamed: [Blame] = []
    var remaining = candidates
    while !unexplained.isEmpty {
        var best: (component: Component, covered: [Int], share: Double)?
        for component in remaining {
            let vote = votes[component]!
            let covered = vote.bad.filter { unexplained.contains($0) }
            guard !covered.isEmpty else { continue }
            let share = Double(vote.bad.count) / Double(vote.bad.count + vote.healthy)
            if let current = best {
                // More explained; then the stronger evidence; then the smaller kind, the name.
                if covered.count < current.covered.count { continue }
                if covered.count == current.covered.count {
                    if share < current.share { continue }
                    if share == current.share && !(component < current.component) { continue }
                }
            }
            best = (component, covered, share)
        }
        guard let chosen = best else { break }
        let vote = votes[chosen.component]!
        blamed.append(
            Blame(
                component: chosen.component, symptom: symptom, explained: chosen.covered.map { pairs[$0] },
                badPairs: vote.bad.count, healthyPairs: vote.healthy,
                reporters: vote.remoteReporters.count + (vote.ownEvidence ? 1 : 0)))
        unexplained.subtract(chosen.covered)
        remaining.removeAll { $0 == chosen.component }
    }
    return mergingEndpointsIntoNodes(blamed, topology: topology)
}

/// Several rails of one node failing together is the node failing (architecture note 1: one node,
/// not its eight rails). At least half its rails, and at least two, turn into one node blame.
private func mergingEndpointsIntoNodes(_ blamed: [Blame], topology: Topology) -> [Blame] {
    var byNode: [NodeName: [Blame]] = [:]
    for blame in blamed {
        if case .endpoint(let endpoint) = blame.component { byNode[endpoint.node, default: []].append(blame) }
    }
    var merged: [NodeName: Blame] = [:]
    for (node, endpoints) in byNode {
        let rails = topology.node(node)?.rails.count ?? 0
        guard endpoints.count >= 2, 2 * endpoints.count >= rails else { continue }
        let ownBlame = blamed.first { $0.component == .node(node) }
        let parts = endpoints + (ownBlame.map { [$0] } ?? [])
        merged[node] = Blame(
            component: .node(node), symptom: endpoints[0].symptom, explained: parts.flatMap(\.explained),
            badPairs: parts.map(\.badPairs).reduce(0, +),
            healthyPairs: parts.map(\.healthyPairs).reduce(0, +),
            reporters: parts.map(\.reporters).max() ?? 0)
    }
    var result: [Blame] = []
    for blame in blamed {
        switch blame.component {
        case .endpoint(let endpoint) where merged[endpoint.node] != nil:
            continue
        case .node(let node) where merged[node] != nil:
            continue
        default:
            result.append(blame)
        }
    }
    return result + merged.keys.sorted().map { merged[$0]! }
}
