// The one protocol every way of taking a node out of service speaks: quarantine, release, status.
// Every action verifies the node's state after acting (exit codes lie), refuses to touch a node
// someone else took out, and releases only what Faultline quarantined. docs/remediation.md.

import Engine
import FleetModel
import Foundation

/// A node's state as the scheduler (or whatever the action drives) reports it.
public struct SchedulerState: Sendable, Equatable {
    public let node: String
    /// Out of service: drained, cordoned, or what the action means by it.
    public let quarantined: Bool
    /// Taken out by Faultline (its reason or taint carries our mark).
    public let ours: Bool
    /// The scheduler's reason, as it says it.
    public let reason: String

    public init(node: String, quarantined: Bool, ours: Bool, reason: String) {
        self.node = node
        self.quarantined = quarantined
        self.ours = ours
        self.reason = reason
    }

    /// `{"node": ..., "quarantined": ..., "ours": ..., "reason": ...}`: `action run status --json`.
    public var jsonLine: String {
        "{\"node\": \(JSONValue.string(node).jsonText), \"quarantined\": \(quarantined), \"ours\": \(ours), "
            + "\"reason\": \(JSONValue.string(reason).jsonText)}"
    }
}

/// What a quarantine is for: enough for the scheduler's reason, a ticket or a script.
public struct QuarantineRequest: Sendable, Equatable {
    public let node: String
    /// The policy's intent id (`<node>@<window>`): the idempotency key.
    public let intent: String
    public let faultClass: String
    public let component: String
    /// Free text for people (a finding's summary, or what an operator typed).
    public let reason: String

    public init(node: String, intent: String, faultClass: String, component: String, reason: String) {
        self.node = node
        self.intent = intent
        self.faultClass = faultClass
        self.component = component
        self.reason = reason
    }

    /// The runbook of the finding's class, relative to the repository (runbooks/README.md).
    public var runbook: String { runbookPath(of: faultClass) }

    /// What Faultline writes where the scheduler keeps a reason: `faultline:<intent> <class>`.
    public var mark: String { "\(QuarantineMark.prefix)\(intent) \(faultClass)" }
}

/// How Faultline recognises its own quarantines.
public enum QuarantineMark {
    public static let prefix = "faultline:"

    public static func isOurs(_ reason: String) -> Bool { reason.hasPrefix(prefix) }
}

/// Why an action failed: the node, what was tried, and what was found.
public struct ActionError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The node is out of service for someone else's reason: left alone.
        case notOurs
        /// The command ran (or not) but the state read back is not what it should be.
        case notVerified
        /// The command could not run, timed out, or the target could not be reached.
        case failed
        /// The node is unknown to the scheduler.
        case unknownNode
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// Quarantine, release and status of one node. Implementations are values: safe to call from any
/// thread, each call independent (the executor serializes calls per node).
public protocol QuarantineAction: Sendable {
    /// `slurm`, `exec`, `webhook`, `dry-run`.
    var name: String { get }
    /// Takes the node out of service and returns the state read back. Idempotent: a node already
    /// quarantined by us is left as it is. Throws `notOurs` for a node someone else took out.
    func quarantine(_ request: QuarantineRequest) throws(ActionError) -> SchedulerState
    /// Puts a node we quarantined back into service and returns the state read back. A node not
    /// quarantined is left alone; one quarantined by someone else throws `notOurs`.
    func release(node: String) throws(ActionError) -> SchedulerState
    func status(node: String) throws(ActionError) -> SchedulerState
    /// What `quarantine` would run, for people: the command line or the request (dry-run prints it).
    func plan(quarantine request: QuarantineRequest) -> String
    /// What `release` would run.
    func plan(release node: String) -> String
}

extension QuarantineAction {
    public func plan(quarantine request: QuarantineRequest) -> String { "\(name): quarantine \(request.node) (\(request.mark))" }
    public func plan(release node: String) -> String { "\(name): release \(node)" }
}

/// Carries out a later step of a runbook's ladder (`webhook:NAME`, `exec:NAME`): a ticket, a page, a
/// site script. Escalations change no node's state, so there is nothing to read back: a 2xx answer or
/// a successful exit is the outcome.
public protocol Escalation: Sendable {
    func escalate(_ request: QuarantineRequest, step: String) throws(ActionError)
}
