// The executor: carries out the policy's quarantine and release decisions through one action, crash
// safe. For each: write the intent (and an audit entry), act, read the state back, record the
// outcome (and an audit entry). An intent already done is never acted on again (the idempotency
// key is the policy's intent id); an intent left pending by a crash is reconciled at start against
// the scheduler's real state: done if the node already is where the intent wanted it, acted on
// again (actions are idempotent) if not. Every other decision (held, notify, approval, ...) is
// audited only. docs/remediation.md.

import FleetModel
import Foundation
import Policy
import Store

public final class Executor {
    /// What happened to one decision.
    public enum Outcome: Sendable, Equatable {
        /// Acted and verified.
        case done(SchedulerState)
        /// Done before (a retried or replayed decision): nothing changed.
        case alreadyDone
        /// The action failed or could not be verified; the intent is recorded as failed.
        case failed(String)
        /// Not an action (held, notify, awaiting approval, ...): audited only.
        case audited
    }

    public let store: Store
    public let action: any QuarantineAction
    /// Who the audit says acted.
    public let actor: String
    /// The time the records carry (the decision's time in a replay; the wall clock live).
    private let now: () -> Timestamp

    public init(store: Store, action: any QuarantineAction, actor: String = "executor", now: @escaping () -> Timestamp) {
        self.store = store
        self.action = action
        self.actor = actor
        self.now = now
    }

    /// The intent id of a decision: the policy's id and what is to be done.
    public static func intentID(_ decision: Decision) -> String? {
        switch decision.kind {
        case .quarantine: "\(decision.id):quarantine"
        case .release: "\(decision.id):release"
        default: nil
        }
    }

    /// Carries out one decision.
    @discardableResult
    public func execute(_ decision: Decision) throws -> Outcome {
        guard let id = Self.intentID(decision), let node = decision.node else {
            try store.appendAudit(at: now(), actor: actor, entry: auditText("decision", decision.jsonLine, nil))
            return .audited
        }
        if let existing = try store.intent(id), existing.state == .done { return .alreadyDone }
        var intent = IntentRecord(
            id: id, kind: decision.kind == .quarantine ? .quarantine : .release, node: node.description,
            decidedAt: decision.time, decision: decision.jsonLine, state: .pending,
            attempts: (try store.intent(id)?.attempts ?? 0) + 1, outcome: nil, updatedAt: now())
        try store.record(intent: intent, audit: actor, entry: auditText("intent", decision.jsonLine, nil))
        return try act(&intent, request: request(for: decision, node: node))
    }

    /// Finishes every intent a crash left pending: the scheduler's state decides whether it still
    /// needs doing. Returns what happened to each, in order.
    @discardableResult
    public func reconcile() throws -> [(intent: String, outcome: Outcome)] {
        var outcomes: [(String, Outcome)] = []
        for var intent in try store.pendingIntents() {
            let state: SchedulerState
            do {
                state = try action.status(node: intent.node)
            } catch {
                outcomes.append((intent.id, .failed("status: \(error)")))
                continue  // still pending: the next reconcile tries again
            }
            let wanted = intent.kind == .quarantine ? state.quarantined && state.ours : !state.quarantined
            if wanted {
                intent.state = .done
                intent.outcome = "reconciled: the node already was \(intent.kind == .quarantine ? "out" : "back")"
                intent.updatedAt = now()
                try store.record(
                    intent: intent, audit: actor, entry: auditText("reconciled", intent.decision, intent.outcome))
                outcomes.append((intent.id, .done(state)))
                continue
            }
            intent.attempts += 1
            intent.updatedAt = now()
            try store.record(intent: intent, audit: actor, entry: auditText("retry", intent.decision, nil))
            let request = QuarantineRequest(
                node: intent.node, intent: Self.field("id", of: intent.decision) ?? intent.id,
                faultClass: Self.field("class", of: intent.decision) ?? "unknown",
                component: Self.field("component", of: intent.decision) ?? intent.node,
                reason: Self.field("reason", of: intent.decision) ?? "")
            outcomes.append((intent.id, try act(&intent, request: request)))
        }
        return outcomes
    }

    private func act(_ intent: inout IntentRecord, request: QuarantineRequest) throws -> Outcome {
        let outcome: Outcome
        do {
            let state = intent.kind == .quarantine ? try action.quarantine(request) : try action.release(node: intent.node)
            intent.state = .done
            intent.outcome = "\(action.name): \(state.quarantined ? "out of service" : "in service") (\(state.reason))"
            outcome = .done(state)
        } catch {
            intent.state = .failed
            intent.outcome = "\(action.name): \(error)"
            outcome = .failed("\(error)")
        }
        intent.updatedAt = now()
        try store.record(intent: intent, audit: actor, entry: auditText("outcome", intent.decision, intent.outcome))
        return outcome
    }

    private func request(for decision: Decision, node: NodeName) -> QuarantineRequest {
        QuarantineRequest(
            node: node.description, intent: decision.id, faultClass: decision.faultClass,
            component: decision.component, reason: decision.reason)
    }

    /// `{"event": ..., "decision": {...}, "outcome": ...}` with the decision's own JSON inside.
    private func auditText(_ event: String, _ decisionJSON: String, _ outcome: String?) -> String {
        let outcomeText = outcome.map { JSONValue.string($0).jsonText } ?? "null"
        return "{\"event\": \"\(event)\", \"decision\": \(decisionJSON), \"outcome\": \(outcomeText), "
            + "\"action\": \"\(action.name)\"}"
    }

    /// A string field of a decision's JSON line.
    static func field(_ name: String, of json: String) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return nil }
        return object[name] as? String
    }
}
