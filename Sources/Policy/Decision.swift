// What the remediation policy decides: one line per decision, after the findings in a replay
// (wire-v1.md §6) and in the executor's intent log. Deterministic text: keys in a fixed order.

import FleetModel

/// One decision of the policy, taken at the end of a window or on an operator's command.
public struct Decision: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// Take the node out of service (the executor runs the configured action).
        case quarantine
        /// Put a node we quarantined back into service.
        case release
        /// A fabric component (switch, leaf–spine link) is at fault: tell people, drain nothing.
        case notify
        /// A guard tripped: the quarantine waits until an operator resets the breaker.
        case held
        /// The quarantine waits for `faultline quarantine approve ID`.
        case awaitingApproval = "awaiting-approval"
        /// An operator approved a waiting quarantine; it runs at the next window if the other
        /// guards allow it.
        case approved
        /// A waiting or held quarantine was dropped: its finding closed, it went stale, or it
        /// expired unapproved.
        case dropped
        /// The node was quarantined too often: it stays out until a human releases it.
        case parked
        /// The breaker was reset by an operator.
        case breakerReset = "breaker-reset"
        /// A later step of the runbook's ladder came due (`reason` names it, e.g. `webhook:hw-ticket`)
        /// while the node is still out or the fabric finding still open.
        case escalate
    }

    /// The window (or command time) it was taken at.
    public let time: Timestamp
    public let kind: Kind
    /// The intent's id: the same for every decision about one quarantine (`<node>@<time>`).
    public let id: String
    /// The node acted on; nil for fabric notifications and breaker resets.
    public let node: NodeName?
    /// The finding's component and class that led to it (empty for breaker resets).
    public let component: String
    public let faultClass: String
    /// Why, for people: which guard held it, what approval it waits for.
    public let reason: String

    public init(
        time: Timestamp, kind: Kind, id: String, node: NodeName?, component: String, faultClass: String,
        reason: String
    ) {
        self.time = time
        self.kind = kind
        self.id = id
        self.node = node
        self.component = component
        self.faultClass = faultClass
        self.reason = reason
    }

    /// The decision as one JSON line (no newline).
    public var jsonLine: String {
        let nodeText = node.map { JSONValue.string($0.description).jsonText } ?? "null"
        return "{\"time\": \"\(time)\", \"decision\": \"\(kind.rawValue)\", "
            + "\"id\": \(JSONValue.string(id).jsonText), \"node\": \(nodeText), "
            + "\"component\": \(JSONValue.string(component).jsonText), "
            + "\"class\": \(JSONValue.string(faultClass).jsonText), "
            + "\"reason\": \(JSONValue.string(reason).jsonText)}"
    }

    /// One readable line.
    public var textLine: String {
        let subject = node?.description ?? component
        let name = kind.rawValue + String(repeating: " ", count: max(0, 17 - kind.rawValue.count))
        return "\(time)  \(name)  "
            + "\(subject)  \(faultClass)\(reason.isEmpty ? "" : "  (\(reason))")"
    }
}
