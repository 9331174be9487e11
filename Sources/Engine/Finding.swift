// The engine's output: the findings stream of wire-v1.md §5, one event per line.

import FleetModel

/// Every fault class the engine raises: `<kind>.<symptom>` from localization (a node that others
/// cannot reach is `unreachable`, never `down`) and the three from node health. Each has its
/// runbook, runbooks/<class>.md.
public let faultClasses: [String] =
    ["gpu", "link", "switch"].flatMap { kind in ["degraded", "loss", "down"].map { "\(kind).\($0)" } }
    + ["node.degraded", "node.loss", "node.unreachable", "gpu.port-down", "gpu.off-bus", "gpu.pcie-downtrained"]

/// Where a fault class's runbook is, relative to the repository: every finding's evidence links it.
public func runbookPath(of faultClass: String) -> String { "runbooks/\(faultClass).md" }

/// One event of the findings stream: a finding opened, updated or closed in a window.
public struct Finding: Sendable, Equatable {
    public enum Event: String, Sendable {
        case opened
        case updated
        case closed
    }

    /// The start of the window that caused the event.
    public let window: Timestamp
    public let event: Event
    public let component: Component
    /// A fault class with a runbook, e.g. `link.loss`.
    public let faultClass: String
    /// 0...1.
    public let confidence: Double
    /// For people: the pairs, quantiles and baselines that led to it. An object.
    public let evidence: [String: JSONValue]

    public init(
        window: Timestamp, event: Event, component: Component, faultClass: String, confidence: Double,
        evidence: [String: JSONValue]
    ) {
        self.window = window
        self.event = event
        self.component = component
        self.faultClass = faultClass
        self.confidence = confidence
        self.evidence = evidence
    }

    /// An `updated` event changes the finding's class (the engine emits one only then): the class
    /// it had, from the evidence's `previousClass`. Whoever keeps open findings by component and
    /// class moves the open one from that class to this event's.
    public var previousClass: String? {
        guard event == .updated, case .string(let previous)? = evidence["previousClass"] else { return nil }
        return previous
    }

    /// The event as one JSON line (no newline), keys in the spec's order, numbers rounded so that
    /// the bytes are the same on every machine.
    public var jsonLine: String {
        let confidenceText = JSONValue.number((confidence * 1000).rounded() / 1000).jsonText
        return "{\"window\": \"\(window)\", \"event\": \"\(event.rawValue)\", "
            + "\"component\": \(JSONValue.string(component.description).jsonText), \"kind\": \"\(component.kind)\", "
            + "\"class\": \"\(faultClass)\", \"confidence\": \(confidenceText), "
            + "\"evidence\": \(JSONValue.object(evidence).jsonText)}"
    }
}
