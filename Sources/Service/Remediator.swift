// The live remediation loop of `faultline serve`: closed windows' findings into the policy, its
// decisions through the executor (intent log, action, verification, audit), operator commands from
// the admin API. All on one serial queue of its own, so a slow or hung action (bounded by its
// timeout) never holds up ingest or the engine. The policy's memory is saved with each step's
// intents; at start it is taken back, and the intents a crash left pending are reconciled.

import Dispatch
import Engine
import FleetModel
import Foundation
import Net
import Policy
import Remediation
import Store

public final class Remediator: Sendable {
    /// What the admin API shows without waiting for the queue.
    public struct Snapshot: Sendable {
        public var quarantined: [NodeName: Policy.Quarantine] = [:]
        public var pending: [Policy.Pending] = []
        public var breaker: String?
        public var onHold: [NodeName] = []
        /// The latest decisions, oldest first (at most `recentLimit`).
        public var recent: [Decision] = []
        public var actionName: String = ""
    }

    static let recentLimit = 200
    private let queue = DispatchQueue(label: "faultline.remediation")
    /// Touched only on `queue`.
    private nonisolated(unsafe) var policy: Policy
    /// The latest evidence of each finding still open, by component and class (for the audit).
    private nonisolated(unsafe) var evidence: [String: [String: JSONValue]] = [:]
    private nonisolated(unsafe) let executor: Executor
    private let published: Locked<Snapshot>
    private let clock: any ServiceClock
    private let log: ServiceLog

    public init(
        databasePath: String, topology: Topology, rules: PolicyRules, runbooks: [RunbookHeader] = [],
        action: any QuarantineAction, escalations: [String: any Escalation] = [:], clock: any ServiceClock,
        log: ServiceLog
    ) throws {
        let store = try Store(path: databasePath)
        self.clock = clock
        self.log = log
        executor = Executor(store: store, action: action, escalations: escalations) { clock.now() }
        var policy = Policy(topology: topology, settings: rules, runbooks: runbooks)
        // The policy's memory as saved with the last step's intents (nothing on a new store).
        if let saved = try store.policyState() {
            guard let state = try? JSONDecoder().decode(PolicyState.self, from: Data(saved.utf8)) else {
                throw StoreError.corruptRow(
                    path: databasePath, table: "policy_state", rowID: 1, reason: "the saved policy state does not decode")
            }
            policy.restore(state)
        }
        self.policy = policy
        published = Locked(Snapshot(actionName: action.name))
        queue.async { [self] in
            do {
                for (intent, outcome) in try executor.reconcile() {
                    log.log("intent-reconciled", ["intent": .string(intent), "outcome": .string("\(outcome)")])
                }
            } catch {
                log.log("store-error", ["operation": .string("reconcile"), "error": .string("\(error)")])
            }
            publish()
        }
    }

    /// Closed windows, in order, with the findings events the engine gave for them.
    public func windowsClosed(_ windows: [Timestamp], findings: [Finding]) {
        queue.async { [self] in
            var decisions: [Decision] = []
            for window in windows {
                let events = findings.filter { $0.window == window }
                for finding in events {
                    let key = "\(finding.component) \(finding.faultClass)"
                    if let previous = finding.previousClass { evidence["\(finding.component) \(previous)"] = nil }
                    evidence[key] = finding.event == .closed ? nil : finding.evidence
                }
                decisions += policy.step(window: window, findings: events)
            }
            carryOut(decisions)
        }
    }

    /// An operator's command; returns the decisions it caused, or why it was refused.
    public func apply(_ command: OperatorCommand, by actor: String) -> Result<[Decision], PolicyCommandError> {
        queue.sync {
            let now = clock.now()
            let afterWindow = policy.lastSteppedWindow
            let result = Result { () throws(PolicyCommandError) in try policy.apply(command, at: now) }
            guard case .success(let decisions) = result else { return result }
            // With the last window stepped before it, so that a replay applies it where it came.
            let recorded = RecordedCommand(at: now, afterWindow: afterWindow, command: command)
            try? executor.store.appendAudit(at: now, actor: actor, entry: recorded.auditEntry)
            carryOut(decisions)
            return .success(decisions)
        }
    }

    public var snapshot: Snapshot { published.withLock { $0 } }

    /// The last window the policy stepped, once the windows handed to it so far are stepped.
    public var lastSteppedWindow: Timestamp? { queue.sync { policy.lastSteppedWindow } }

    /// New policy settings, topology or runbooks (SIGHUP): the policy's memory carries over into a
    /// policy built from them (what no longer fits the topology is left out).
    public func reload(topology: Topology, rules: PolicyRules, runbooks: [RunbookHeader]) {
        queue.sync {
            var reloaded = Policy(topology: topology, settings: rules, runbooks: runbooks)
            reloaded.restore(policy.state)
            policy = reloaded
            publish()
        }
    }

    /// Waits for the queue's work (tests).
    public func waitUntilIdle() { queue.sync {} }

    private func carryOut(_ decisions: [Decision]) {
        let guards = policy.guardState
        let withContext = decisions.map { decision -> (decision: Decision, context: [String: JSONValue]) in
            var context: [String: JSONValue] = ["guards": guards]
            if let found = evidence["\(decision.component) \(decision.faultClass)"] { context["evidence"] = .object(found) }
            return (decision, context)
        }
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let state = String(decoding: try encoder.encode(policy.state), as: UTF8.self)
            let outcomes = try executor.execute(withContext, savingPolicyState: state)
            for (decision, outcome) in zip(decisions, outcomes) {
                log.log(
                    "decision",
                    [
                        "decision": .string(decision.kind.rawValue), "id": .string(decision.id),
                        "node": decision.node.map { .string($0.description) } ?? .null,
                        "outcome": .string("\(outcome)"),
                    ])
            }
        } catch {
            log.log("store-error", ["operation": .string("execute"), "error": .string("\(error)")])
        }
        published.withLock { snapshot in
            snapshot.recent = Array((snapshot.recent + decisions).suffix(Self.recentLimit))
        }
        publish()
    }

    private func publish() {
        let quarantined = policy.quarantined
        let pending = policy.pending.keys.sorted().compactMap { policy.pending[$0] }
        let breaker = policy.breaker
        let onHold = policy.onHold.sorted()
        published.withLock {
            $0.quarantined = quarantined
            $0.pending = pending
            $0.breaker = breaker
            $0.onHold = onHold
        }
    }
}
