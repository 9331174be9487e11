// The remediation policy: findings and operator commands in, decisions out. Pure and deterministic
// (no clock, no I/O: time is the window it is given), so the live service, dry-run and replay take
// the very same decisions from the same events. docs/remediation.md explains each rule.
//
// Node-scoped findings (an endpoint, a node, a node's own access link) ask for their node's
// quarantine; fabric-scoped ones (a switch, a leaf–spine link) only notify: never drain every node
// behind a switch. A quarantine passes, in order: the breaker (closed), the fleet caps (at most
// `maxQuarantined` nodes and `maxQuarantinedShare` of the fleet), the token bucket; a guard that
// trips opens the breaker and the quarantine is `held` until an operator resets it. Then approval:
// a finding below the confidence threshold, a second new quarantine in one leaf within the leaf
// period, or one leaving too many nodes of a leaf out waits for `approve`. A node goes back after
// `releaseCleanWindows` clean windows and `releaseDelaySeconds`; one quarantined `parkAfter` times
// in the park period, or whose runbook says `release: manual`, stays out for a human. The runbook
// ladder's later steps come due as `escalate` decisions. `PolicyState` is its memory, saved and
// taken back across restarts.

import Engine
import FleetModel

public struct Policy: Sendable {
    public let settings: PolicyRules
    /// Fault classes whose runbook says `release: manual`: their nodes are parked, not released.
    public let manualRelease: Set<String>
    /// Each class's runbook ladder (runbooks/README.md); its steps after the first are escalations.
    public let ladders: [String: [RunbookHeader.Step]]
    let topology: Topology
    /// The fleet cap: the lower of the count and the share of the fleet's nodes (one at least).
    public let quarantineCap: Int

    /// Nodes Faultline quarantined, and what for.
    public internal(set) var quarantined: [NodeName: Quarantine] = [:]
    /// Quarantines not yet taken: held by a guard or waiting for approval, by id.
    public internal(set) var pending: [String: Pending] = [:]
    /// Open while a guard has tripped, until an operator resets it; the guard that tripped it.
    public internal(set) var breaker: String?
    /// The last window `step` took: after a crash, the windows recorded since are the ones to step.
    public internal(set) var lastSteppedWindow: Timestamp?
    /// Nodes an operator put on hold: no automatic quarantine or release.
    public internal(set) var onHold: Set<NodeName> = []

    /// The node-scoped findings open per node (component and class).
    var openFindingsByNode: [NodeName: Set<FindingKey>] = [:]
    /// Fabric findings notified: when, and how many ladder steps were taken (an update of the same
    /// class does not notify again).
    var notifiedSteps: [FindingKey: (since: Timestamp, steps: Int)] = [:]
    var tokensLeft: Double
    var tokensRefilledAt: Timestamp?
    /// The last new quarantine per leaf.
    var leafQuarantines: [SwitchName: Timestamp] = [:]
    /// When each node was quarantined, within the park period.
    var nodeQuarantineTimes: [NodeName: [Timestamp]] = [:]
    /// Every node-scoped open finding (for the saved state).
    var openFindingKeys: [FindingKey] { openFindingsByNode.values.flatMap { $0 } }

    public struct Quarantine: Sendable, Equatable {
        public let id: String
        public let since: Timestamp
        public let component: String
        public let faultClass: String
        /// Windows in a row without an open finding on the node.
        public var cleanWindows = 0
        /// Kept out for a human: no automatic release.
        public var parked = false
        /// Ladder steps taken: 1 once quarantined (the first step).
        public var steps = 1
    }

    public struct Pending: Sendable, Equatable {
        public enum State: Sendable, Equatable {
            case held
            /// Released from a guard by a breaker reset: through every guard again next window.
            case retry
            case awaitingApproval
            case approved(until: Timestamp)
        }
        public let id: String
        public let node: NodeName
        public let created: Timestamp
        public var component: String
        public var faultClass: String
        public var confidence: Double
        public var state: State
    }

    struct FindingKey: Hashable, Comparable {
        let component: Component
        let faultClass: String
        static func < (lhs: FindingKey, rhs: FindingKey) -> Bool {
            (lhs.component, lhs.faultClass) < (rhs.component, rhs.faultClass)
        }
    }

    /// An empty policy with its runbooks already read (`restore` starts from one).
    init(topology: Topology, settings: PolicyRules, manualRelease: Set<String>, ladders: [String: [RunbookHeader.Step]]) {
        self.topology = topology
        self.settings = settings
        self.manualRelease = manualRelease
        self.ladders = ladders
        // The share rounds down, but allows one node at least: a small fleet still gets a quarantine.
        let shareCap = max(1, Int((settings.maxQuarantinedShare * Double(topology.nodes.count)).rounded(.down)))
        self.quarantineCap = min(settings.maxQuarantined, shareCap)
        self.tokensLeft = Double(settings.rateBurst)
    }

    /// `runbooks`: the headers of the runbooks in force (release policy and ladder per class);
    /// without them every class is released automatically and nothing escalates.
    public init(topology: Topology, settings: PolicyRules, runbooks: [RunbookHeader] = []) {
        self.init(
            topology: topology, settings: settings,
            manualRelease: Set(runbooks.filter { $0.release == .manual }.map(\.faultClass)),
            ladders: Dictionary(runbooks.map { ($0.faultClass, $0.ladder) }, uniquingKeysWith: { first, _ in first }))
    }

    /// The guards' state as the audit records it with each decision: nodes out and the cap, tokens
    /// left in the bucket, the breaker, what waits.
    public var guardState: JSONValue {
        .object([
            "quarantined": .number(Double(quarantined.count)), "cap": .number(Double(quarantineCap)),
            "tokens": .number((tokensLeft * 100).rounded(.down) / 100),
            "breaker": breaker.map { .string($0) } ?? .null, "pending": .number(Double(pending.count)),
        ])
    }

    /// The node a finding's component asks to quarantine; nil for fabric components.
    public func node(of component: Component) -> NodeName? {
        switch component {
        case .endpoint(let endpoint): return endpoint.node
        case .node(let node): return node
        case .link(let id):
            guard let link = topology.link(id) else { return nil }
            for end in [link.a, link.b] { if case .endpoint(let endpoint) = end { return endpoint.node } }
            return nil
        case .switch: return nil
        }
    }

    /// One closed window: its findings events in, the window's decisions out. Call it for every
    /// closed window in order, with or without findings (clean windows count towards release).
    public mutating func step(window: Timestamp, findings: [Finding]) -> [Decision] {
        lastSteppedWindow = window
        var decisions: [Decision] = []
        refillTokens(at: window)
        // Findings first, in a fixed order: the stream's own order is the engine's, already sorted.
        var candidates: [(node: NodeName, finding: Finding)] = []
        for finding in findings {
            let key = FindingKey(component: finding.component, faultClass: finding.faultClass)
            guard let node = node(of: finding.component) else {
                // One notification per component and class: a class change (loss to down) is news.
                notifiedSteps = notifiedSteps.filter { $0.key.component != finding.component || $0.key == key }
                if finding.event == .closed {
                    notifiedSteps[key] = nil
                } else if notifiedSteps[key] == nil {
                    notifiedSteps[key] = (window, 1)
                    decisions.append(
                        Decision(
                            time: window, kind: .notify, id: "\(finding.component)@\(window)", node: nil,
                            component: finding.component.description, faultClass: finding.faultClass,
                            reason: "fabric component: no node is drained"))
                }
                continue
            }
            switch finding.event {
            case .opened, .updated:
                // An update changes the class: the old key goes (the component's other findings stay).
                // Events recorded before updates named their previous class: all of the component's.
                if let previous = finding.previousClass {
                    openFindingsByNode[node]?.remove(FindingKey(component: finding.component, faultClass: previous))
                } else if finding.event == .updated {
                    openFindingsByNode[node] = openFindingsByNode[node]?.filter { $0.component != finding.component }
                }
                openFindingsByNode[node, default: []].insert(key)
                if finding.event == .opened { candidates.append((node, finding)) }
            case .closed:
                openFindingsByNode[node]?.remove(key)
                if openFindingsByNode[node]?.isEmpty == true { openFindingsByNode[node] = nil }
            }
        }
        // Waiting quarantines whose node is clean again are stale.
        for id in pending.keys.sorted() {
            guard let waiting = pending[id] else { continue }
            if openFindingsByNode[waiting.node] == nil {
                pending[id] = nil
                decisions.append(decision(.dropped, waiting, at: window, reason: "its finding closed"))
            } else if case .awaitingApproval = waiting.state,
                window.secondsSinceEpoch - waiting.created.secondsSinceEpoch >= Int64(settings.approvalExpirySeconds)
            {
                pending[id] = nil
                decisions.append(decision(.dropped, waiting, at: window, reason: "not approved in time"))
            } else if case .approved(let until) = waiting.state, window > until {
                pending[id] = nil
                decisions.append(decision(.dropped, waiting, at: window, reason: "approval expired"))
            }
        }
        // Approved quarantines, then new ones, each through the guards.
        for id in pending.keys.sorted() {
            guard let waiting = pending[id] else { continue }
            switch waiting.state {
            case .approved, .retry: decisions += consider(waiting, at: window)
            case .held, .awaitingApproval: continue
            }
        }
        // A node with several findings opened in the window is judged on its most confident one
        // (a lossy link at 0.9 and its node at 0.25 must not wait for approval on the 0.25).
        let byNodeMostConfidentFirst = candidates.sorted {
            ($0.node, -$0.finding.confidence, $0.finding.component) < ($1.node, -$1.finding.confidence, $1.finding.component)
        }
        for (node, finding) in byNodeMostConfidentFirst where quarantined[node] == nil && !onHold.contains(node) {
            if let waiting = pending.values.first(where: { $0.node == node }) {
                // Waiting for approval, and now a more confident finding on the node: judged again
                // on it (it may no longer need the approval). Held ones wait for the breaker.
                guard waiting.state == .awaitingApproval, finding.confidence > waiting.confidence else { continue }
                var stronger = waiting
                stronger.component = finding.component.description
                stronger.faultClass = finding.faultClass
                stronger.confidence = finding.confidence
                decisions += consider(stronger, at: window)
                continue
            }
            let waiting = Pending(
                id: "\(node)@\(window)", node: node, created: window, component: finding.component.description,
                faultClass: finding.faultClass, confidence: finding.confidence, state: .awaitingApproval)
            decisions += consider(waiting, at: window)
        }
        decisions += releases(at: window)
        decisions += escalations(at: window)
        return decisions
    }

    /// The ladder steps after the first that came due: for quarantined nodes (not released yet) and
    /// fabric findings still open, counted from the quarantine or the notification.
    private mutating func escalations(at time: Timestamp) -> [Decision] {
        var decisions: [Decision] = []
        func due(_ faultClass: String, since: Timestamp, taken: Int) -> ArraySlice<RunbookHeader.Step> {
            let ladder = ladders[faultClass] ?? []
            guard taken < ladder.count else { return [] }
            let elapsed = time.secondsSinceEpoch - since.secondsSinceEpoch
            return ladder[taken...].prefix { Int64($0.afterSeconds) <= elapsed }
        }
        for node in quarantined.keys.sorted() {
            guard var quarantine = quarantined[node] else { continue }
            for step in due(quarantine.faultClass, since: quarantine.since, taken: quarantine.steps) {
                decisions.append(
                    Decision(
                        time: time, kind: .escalate, id: quarantine.id, node: node, component: quarantine.component,
                        faultClass: quarantine.faultClass, reason: step.action))
                quarantine.steps += 1
            }
            quarantined[node] = quarantine
        }
        for key in notifiedSteps.keys.sorted() {
            guard let (since, taken) = notifiedSteps[key] else { continue }
            let steps = due(key.faultClass, since: since, taken: taken)
            for step in steps {
                decisions.append(
                    Decision(
                        time: time, kind: .escalate, id: "\(key.component)@\(since)", node: nil,
                        component: key.component.description, faultClass: key.faultClass, reason: step.action))
            }
            notifiedSteps[key] = (since, taken + steps.count)
        }
        return decisions
    }

    /// A quarantine through the guards: taken, held, or left waiting for approval.
    private mutating func consider(_ candidate: Pending, at time: Timestamp) -> [Decision] {
        var waiting = candidate
        let isApproved: Bool
        if case .approved = waiting.state { isApproved = true } else { isApproved = false }
        if let breaker {
            let wasHeld = waiting.state == .held
            waiting.state = .held
            pending[waiting.id] = waiting
            return wasHeld ? [] : [decision(.held, waiting, at: time, reason: "breaker open: \(breaker)")]
        }
        if let tripped = trippedGuard() {
            breaker = tripped
            waiting.state = .held
            pending[waiting.id] = waiting
            return [decision(.held, waiting, at: time, reason: tripped)]
        }
        if !isApproved, let why = approvalNeeded(for: waiting, at: time) {
            waiting.state = .awaitingApproval
            pending[waiting.id] = waiting
            return [decision(.awaitingApproval, waiting, at: time, reason: why)]
        }
        pending[waiting.id] = nil
        tokensLeft -= 1
        for leaf in leaves(of: waiting.node) { leafQuarantines[leaf] = time }
        let period = Int64(settings.parkPeriodSeconds)
        nodeQuarantineTimes[waiting.node, default: []].removeAll { time.secondsSinceEpoch - $0.secondsSinceEpoch >= period }
        nodeQuarantineTimes[waiting.node, default: []].append(time)
        quarantined[waiting.node] = Quarantine(
            id: waiting.id, since: time, component: waiting.component, faultClass: waiting.faultClass)
        let reason = isApproved ? "approved" : "confidence \(JSONValue.number((waiting.confidence * 100).rounded() / 100).jsonText)"
        return [decision(.quarantine, waiting, at: time, reason: reason)]
    }

    /// The guard that stops one more quarantine now, if any.
    private func trippedGuard() -> String? {
        if quarantined.count + 1 > quarantineCap {
            return "fleet cap: \(quarantined.count) of at most \(quarantineCap) nodes quarantined"
        }
        if tokensLeft < 1 {
            return "rate limit: \(settings.rateBurst) at once, \(settings.ratePerHour) an hour"
        }
        return nil
    }

    /// Why a quarantine needs an operator's approval, if it does.
    private func approvalNeeded(for waiting: Pending, at time: Timestamp) -> String? {
        if waiting.confidence < settings.approvalBelowConfidence {
            return "confidence below \(JSONValue.number(settings.approvalBelowConfidence).jsonText)"
        }
        for leaf in leaves(of: waiting.node) {
            if let last = leafQuarantines[leaf],
                time.secondsSinceEpoch - last.secondsSinceEpoch < Int64(settings.leafPeriodSeconds)
            {
                return "another quarantine under \(leaf) since \(last)"
            }
            let out = quarantined.keys.count { leaves(of: $0).contains(leaf) }
            if out + 1 > settings.approvalAboveLeafQuarantined {
                return "\(out + 1) nodes under \(leaf) would be out"
            }
        }
        return nil
    }

    /// Quarantined nodes that have been clean long enough go back, unless parked or on hold.
    private mutating func releases(at time: Timestamp) -> [Decision] {
        var decisions: [Decision] = []
        for node in quarantined.keys.sorted() {
            guard var quarantine = quarantined[node] else { continue }
            quarantine.cleanWindows = openFindingsByNode[node] == nil ? quarantine.cleanWindows + 1 : 0
            quarantined[node] = quarantine
            guard !quarantine.parked, !onHold.contains(node), quarantine.cleanWindows >= settings.releaseCleanWindows,
                time.secondsSinceEpoch - quarantine.since.secondsSinceEpoch >= Int64(settings.releaseDelaySeconds)
            else { continue }
            let recent = nodeQuarantineTimes[node, default: []].count {
                time.secondsSinceEpoch - $0.secondsSinceEpoch < Int64(settings.parkPeriodSeconds)
            }
            let parkedBecause =
                manualRelease.contains(quarantine.faultClass)
                ? "its runbook says a human releases it"
                : recent >= settings.parkAfterQuarantines
                    ? "quarantined \(recent) times in \(settings.parkPeriodSeconds / 3600) h: a human releases it" : nil
            if let parkedBecause {
                quarantine.parked = true
                quarantined[node] = quarantine
                decisions.append(
                    Decision(
                        time: time, kind: .parked, id: quarantine.id, node: node, component: quarantine.component,
                        faultClass: quarantine.faultClass, reason: parkedBecause))
                continue
            }
            quarantined[node] = nil
            decisions.append(
                Decision(
                    time: time, kind: .release, id: quarantine.id, node: node, component: quarantine.component,
                    faultClass: quarantine.faultClass, reason: "\(quarantine.cleanWindows) clean windows"))
        }
        return decisions
    }

    private mutating func refillTokens(at time: Timestamp) {
        if let last = tokensRefilledAt, time > last {
            let elapsed = Double(time.secondsSinceEpoch - last.secondsSinceEpoch)
            tokensLeft = min(Double(settings.rateBurst), tokensLeft + elapsed * Double(settings.ratePerHour) / 3600)
        }
        tokensRefilledAt = max(tokensRefilledAt ?? time, time)
    }

    /// The leaves a node's rails hang off: its failure domains.
    private func leaves(of node: NodeName) -> [SwitchName] {
        guard let rails = topology.node(node)?.rails else { return [] }
        return Array(Set(rails.map(\.leaf))).sorted()
    }

    private func decision(_ kind: Decision.Kind, _ waiting: Pending, at time: Timestamp, reason: String) -> Decision {
        Decision(
            time: time, kind: kind, id: waiting.id, node: waiting.node, component: waiting.component,
            faultClass: waiting.faultClass, reason: reason)
    }
}

// MARK: - Operator commands

/// What an operator can tell the policy (`faultline quarantine ...`).
public enum OperatorCommand: Sendable, Equatable {
    case approve(id: String)
    case resetBreaker
    /// Release a node Faultline quarantined (parked ones included).
    case release(NodeName)
    /// No automatic quarantine or release of the node until `unhold`.
    case hold(NodeName)
    case unhold(NodeName)
}

extension OperatorCommand {
    /// The command's verbs, as the API's paths and the audit name them.
    public static let verbs = ["approve", "release", "hold", "unhold", "reset-breaker"]

    /// The command a verb and its target (a quarantine id, a node name; none for reset-breaker)
    /// name; nil when they name none.
    public init?(verb: String, target: String) {
        switch verb {
        case "approve" where !target.isEmpty: self = .approve(id: target)
        case "reset-breaker" where target.isEmpty: self = .resetBreaker
        case "release", "hold", "unhold":
            guard let node = NodeName(target) else { return nil }
            self = verb == "release" ? .release(node) : verb == "hold" ? .hold(node) : .unhold(node)
        default: return nil
        }
    }

    public var verb: String {
        switch self {
        case .approve: "approve"
        case .resetBreaker: "reset-breaker"
        case .release: "release"
        case .hold: "hold"
        case .unhold: "unhold"
        }
    }

    /// The quarantine id or node the command is about; empty for reset-breaker.
    public var target: String {
        switch self {
        case .approve(let id): id
        case .resetBreaker: ""
        case .release(let node), .hold(let node), .unhold(let node): node.rawValue
        }
    }
}

/// Why a command was refused.
public struct PolicyCommandError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

extension Policy {
    /// Applies an operator's command at `time`; the decisions it causes (an approval runs at the
    /// next window, through the guards).
    public mutating func apply(_ command: OperatorCommand, at time: Timestamp) throws(PolicyCommandError) -> [Decision] {
        switch command {
        case .approve(let id):
            guard var waiting = pending[id] else { throw PolicyCommandError(message: "no waiting quarantine \(id)") }
            guard waiting.state == .awaitingApproval else {
                throw PolicyCommandError(message: "\(id) is held by a guard, not waiting for approval: reset the breaker")
            }
            waiting.state = .approved(until: time.adding(seconds: Int64(settings.approvalExpirySeconds)))
            pending[id] = waiting
            return [decision(.approved, waiting, at: time, reason: "approved by an operator")]
        case .resetBreaker:
            breaker = nil
            var decisions = [
                Decision(
                    time: time, kind: .breakerReset, id: "breaker@\(time)", node: nil, component: "", faultClass: "",
                    reason: "reset by an operator")
            ]
            // Held quarantines gone stale are dropped, not replayed into the fleet (NVSentinel #450);
            // the others wait for the next window, through the guards again.
            for id in pending.keys.sorted() {
                guard var waiting = pending[id], waiting.state == .held else { continue }
                if time.secondsSinceEpoch - waiting.created.secondsSinceEpoch >= Int64(settings.approvalExpirySeconds) {
                    pending[id] = nil
                    decisions.append(decision(.dropped, waiting, at: time, reason: "stale when the breaker was reset"))
                } else {
                    waiting.state = .retry
                    pending[id] = waiting
                }
            }
            return decisions
        case .release(let node):
            guard let quarantine = quarantined[node] else {
                throw PolicyCommandError(message: "\(node) is not quarantined by Faultline")
            }
            quarantined[node] = nil
            return [
                Decision(
                    time: time, kind: .release, id: quarantine.id, node: node, component: quarantine.component,
                    faultClass: quarantine.faultClass, reason: "released by an operator")
            ]
        case .hold(let node):
            guard topology.node(node) != nil else { throw PolicyCommandError(message: "unknown node \(node)") }
            onHold.insert(node)
            return []
        case .unhold(let node):
            onHold.remove(node)
            return []
        }
    }
}
