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
    /// What carries out each ladder step, by its name in the runbook (`webhook:hw-ticket`).
    public let escalations: [String: any Escalation]
    /// Who the audit says acted.
    public let actor: String
    /// The time the records carry (the decision's time in a replay; the wall clock live).
    private let now: () -> Timestamp
    /// The context of the decision being executed, for its audit entries.
    private var context: [String: JSONValue] = [:]

    public init(
        store: Store, action: any QuarantineAction, escalations: [String: any Escalation] = [:],
        actor: String = "executor", now: @escaping () -> Timestamp
    ) {
        self.store = store
        self.action = action
        self.escalations = escalations
        self.actor = actor
        self.now = now
    }

    /// The intent id of a decision: the policy's id and what is to be done.
    public static func intentID(_ decision: Decision) -> String? {
        switch decision.kind {
        case .quarantine: "\(decision.id):quarantine"
        case .release: "\(decision.id):release"
        // `notify` steps are the notify decision itself: audited only.
        case .escalate where decision.reason != "notify": "\(decision.id):\(decision.reason)"
        default: nil
        }
    }

    /// Carries out one decision. `context` goes into its audit entries as it is: the finding's
    /// evidence and the guards' state when the decision was taken.
    @discardableResult
    public func execute(_ decision: Decision, context: [String: JSONValue] = [:]) throws -> Outcome {
        try execute([(decision, context)], savingPolicyState: nil)[0]
    }

    /// Carries out one policy step's decisions, each with its audit context, and saves `policyState`
    /// (the policy's memory after the step, when given) with them: every intent written, every other
    /// decision audited, and the memory saved, in one transaction before anything is acted on. A crash after
    /// it leaves pending intents that `reconcile` finishes; a crash before it leaves the step undone
    /// on both sides, never a node out that the policy does not know of.
    @discardableResult
    public func execute(
        _ decisions: [(decision: Decision, context: [String: JSONValue])], savingPolicyState policyState: String?
    ) throws -> [Outcome] {
        var toAct: [(index: Int, intent: IntentRecord, request: QuarantineRequest, context: [String: JSONValue])] = []
        var outcomes = [Outcome](repeating: .audited, count: decisions.count)
        try store.database.transaction {
            for (index, (decision, context)) in decisions.enumerated() {
                self.context = context
                defer { self.context = [:] }
                guard let id = Self.intentID(decision),
                    let node = decision.node?.description ?? (decision.kind == .escalate ? decision.component : nil)
                else {
                    try store.writeAudit(at: now(), actor: actor, entry: auditText("decision", decision.jsonLine, nil))
                    continue
                }
                let existing = try store.intent(id)
                if existing?.state == .done {
                    outcomes[index] = .alreadyDone
                    continue
                }
                let kind: IntentRecord.Kind =
                    decision.kind == .quarantine ? .quarantine : decision.kind == .release ? .release : .escalate
                let intent = IntentRecord(
                    id: id, kind: kind, node: node, decidedAt: decision.time, decision: decision.jsonLine,
                    state: .pending, attempts: (existing?.attempts ?? 0) + 1, outcome: nil, updatedAt: now())
                try store.writeIntent(intent, audit: actor, entry: auditText("intent", decision.jsonLine, nil))
                toAct.append((index, intent, request(for: decision, node: node), context))
            }
            if let policyState { try store.writePolicyState(policyState, at: now()) }
        }
        for var item in toAct {
            context = item.context
            defer { context = [:] }
            outcomes[item.index] = try act(&item.intent, request: item.request)
        }
        return outcomes
    }

    /// Finishes every intent a crash left pending: the scheduler's state decides whether it still
    /// needs doing. Returns what happened to each, in order.
    @discardableResult
    public func reconcile() throws -> [(intent: String, outcome: Outcome)] {
        var outcomes: [(String, Outcome)] = []
        for var intent in try store.pendingIntents() {
            if intent.kind == .escalate {
                // Nothing to read back: sent again (at least once; a second ticket beats a lost one).
                intent.attempts += 1
                intent.updatedAt = now()
                try store.record(intent: intent, audit: actor, entry: auditText("retry", intent.decision, nil))
                outcomes.append((intent.id, try act(&intent, request: request(replaying: intent))))
                continue
            }
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
            outcomes.append((intent.id, try act(&intent, request: request(replaying: intent))))
        }
        return outcomes
    }

    /// The request an intent was written for, from its decision's JSON.
    private func request(replaying intent: IntentRecord) -> QuarantineRequest {
        QuarantineRequest(
            node: intent.node, intent: Self.field("id", of: intent.decision) ?? intent.id,
            faultClass: Self.field("class", of: intent.decision) ?? "unknown",
            component: Self.field("component", of: intent.decision) ?? intent.node,
            reason: Self.field("reason", of: intent.decision) ?? "")
    }

    private func act(_ intent: inout IntentRecord, request: QuarantineRequest) throws -> Outcome {
        let outcome: Outcome
        do {
            let state: SchedulerState
            switch intent.kind {
            case .quarantine: state = try action.quarantine(request)
            case .release: state = try action.release(node: intent.node)
            case .escalate:
                // The step's name is the decision's reason (`webhook:hw-ticket`).
                let step = request.reason
                guard let escalation = escalations[step] else {
                    throw ActionError(.failed, "no escalation '\(step)' is configured (docs/remediation.md)")
                }
                try escalation.escalate(request, step: step)
                state = SchedulerState(node: intent.node, quarantined: false, ours: false, reason: "\(step) sent")
            }
            intent.state = .done
            intent.outcome =
                intent.kind == .escalate
                ? state.reason : "\(action.name): \(state.quarantined ? "out of service" : "in service") (\(state.reason))"
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

    private func request(for decision: Decision, node: String) -> QuarantineRequest {
        QuarantineRequest(
            node: node, intent: decision.id, faultClass: decision.faultClass,
            component: decision.component, reason: decision.reason)
    }

    /// `{"event": ..., "decision": {...}, "outcome": ...}` with the decision's own JSON inside.
    private func auditText(_ event: String, _ decisionJSON: String, _ outcome: String?) -> String {
        let outcomeText = outcome.map { JSONValue.string($0).jsonText } ?? "null"
        let contextText = context.isEmpty ? "" : ", \"context\": \(JSONValue.object(context).jsonText)"
        return "{\"event\": \"\(event)\", \"decision\": \(decisionJSON), \"outcome\": \(outcomeText), "
            + "\"action\": \"\(action.name)\"\(contextText)}"
    }

    /// A string field of a decision's JSON line.
    static func field(_ name: String, of json: String) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return nil }
        return object[name] as? String
    }
}
