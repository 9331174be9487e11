// Everything the policy remembers, as plain values: what `faultline serve` saves with each step's
// intents, so that a restart forgets neither a quarantine nor an open breaker, a hold, a waiting
// quarantine, an open finding (which would let a node go back early) nor a ladder step taken.

import FleetModel

/// The policy's memory, Codable; lists sorted, so the same state gives the same bytes.
public struct PolicyState: Codable, Sendable, Equatable {
    public struct Out: Codable, Sendable, Equatable {
        var node: String
        var id: String
        var since: Int64
        var component: String
        var faultClass: String
        var cleanWindows: Int
        var parked: Bool
        var steps: Int
    }
    public struct Waiting: Codable, Sendable, Equatable {
        var id: String
        var node: String
        var created: Int64
        var component: String
        var faultClass: String
        var confidence: Double
        /// `held`, `retry`, `awaiting-approval` or `approved`.
        var state: String
        var approvedUntil: Int64?
    }
    public struct OpenFinding: Codable, Sendable, Equatable {
        var component: String
        var faultClass: String
        /// For fabric notifications: when, and the ladder steps taken.
        var since: Int64?
        var steps: Int?
    }

    var quarantined: [Out] = []
    var pending: [Waiting] = []
    var breaker: String?
    var onHold: [String] = []
    var openFindings: [OpenFinding] = []
    var notified: [OpenFinding] = []
    var tokens: Double = 0
    var tokensAt: Int64?
    var lastQuarantineOfLeaf: [String: Int64] = [:]
    var quarantineTimes: [String: [Int64]] = [:]
    /// The last window stepped (absent in states saved before it was kept).
    var lastWindow: Int64?
}

extension Policy {
    /// The policy's memory now.
    public var state: PolicyState {
        var state = PolicyState()
        state.quarantined = quarantined.keys.sorted().map { node in
            let q = quarantined[node]!
            return .init(
                node: node.rawValue, id: q.id, since: q.since.secondsSinceEpoch, component: q.component,
                faultClass: q.faultClass, cleanWindows: q.cleanWindows, parked: q.parked, steps: q.steps)
        }
        state.pending = pending.keys.sorted().map { id in
            let p = pending[id]!
            var name = "held"
            var until: Int64?
            switch p.state {
            case .held: name = "held"
            case .retry: name = "retry"
            case .awaitingApproval: name = "awaiting-approval"
            case .approved(let time):
                name = "approved"
                until = time.secondsSinceEpoch
            }
            return .init(
                id: p.id, node: p.node.rawValue, created: p.created.secondsSinceEpoch, component: p.component,
                faultClass: p.faultClass, confidence: p.confidence, state: name, approvedUntil: until)
        }
        state.breaker = breaker
        state.onHold = onHold.sorted().map(\.rawValue)
        state.openFindings = openFindingKeys.sorted().map {
            .init(component: $0.component.description, faultClass: $0.faultClass)
        }
        state.notified = notifiedSteps.sorted { $0.key < $1.key }.map {
            .init(
                component: $0.key.component.description, faultClass: $0.key.faultClass,
                since: $0.value.since.secondsSinceEpoch, steps: $0.value.steps)
        }
        state.tokens = tokensLeft
        state.tokensAt = tokensRefilledAt?.secondsSinceEpoch
        state.lastQuarantineOfLeaf = Dictionary(
            uniqueKeysWithValues: leafQuarantines.map { ($0.key.rawValue, $0.value.secondsSinceEpoch) })
        state.quarantineTimes = Dictionary(
            uniqueKeysWithValues: nodeQuarantineTimes.map { ($0.key.rawValue, $0.value.map(\.secondsSinceEpoch)) })
        state.lastWindow = lastSteppedWindow?.secondsSinceEpoch
        return state
    }

    /// Takes back a saved memory. What no longer fits the topology (a node or component gone) is left
    /// out; everything else is as it was.
    public mutating func restore(_ saved: PolicyState) {
        func node(_ name: String) -> NodeName? { NodeName(name).flatMap { topology.node($0) != nil ? $0 : nil } }
        func time(_ seconds: Int64) -> Timestamp { Timestamp(secondsSinceEpoch: seconds) }
        var restored = Policy(topology: topology, settings: settings, manualRelease: manualRelease, ladders: ladders)
        for out in saved.quarantined {
            guard let name = node(out.node) else { continue }
            restored.quarantined[name] = Quarantine(
                id: out.id, since: time(out.since), component: out.component, faultClass: out.faultClass,
                cleanWindows: out.cleanWindows, parked: out.parked, steps: out.steps)
        }
        for waiting in saved.pending {
            guard let name = node(waiting.node) else { continue }
            let state: Pending.State
            switch waiting.state {
            case "retry": state = .retry
            case "awaiting-approval": state = .awaitingApproval
            case "approved": state = .approved(until: time(waiting.approvedUntil ?? waiting.created))
            default: state = .held
            }
            restored.pending[waiting.id] = Pending(
                id: waiting.id, node: name, created: time(waiting.created), component: waiting.component,
                faultClass: waiting.faultClass, confidence: waiting.confidence, state: state)
        }
        restored.breaker = saved.breaker
        restored.onHold = Set(saved.onHold.compactMap(node))
        for open in saved.openFindings {
            guard let component = topology.component(named: open.component), let owner = self.node(of: component) else {
                continue
            }
            restored.openFindingsByNode[owner, default: []].insert(
                FindingKey(component: component, faultClass: open.faultClass))
        }
        for open in saved.notified {
            guard let component = topology.component(named: open.component) else { continue }
            restored.notifiedSteps[FindingKey(component: component, faultClass: open.faultClass)] = (
                time(open.since ?? 0), open.steps ?? 1
            )
        }
        restored.tokensLeft = saved.tokens
        restored.tokensRefilledAt = saved.tokensAt.map(time)
        for (leaf, seconds) in saved.lastQuarantineOfLeaf {
            guard let name = SwitchName(leaf), topology.tier(of: name) != nil else { continue }
            restored.leafQuarantines[name] = time(seconds)
        }
        for (name, times) in saved.quarantineTimes {
            guard let name = node(name) else { continue }
            restored.nodeQuarantineTimes[name] = times.map(time)
        }
        restored.lastSteppedWindow = saved.lastWindow.map(time)
        self = restored
    }
}
