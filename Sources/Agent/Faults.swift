// Fault injection for tests and the demo: a JSON file (`--faults FILE`, re-read on SIGHUP) that makes
// this agent's responder delay or drop the probes it answers, per rail and per peer. Since an
// agent's loopback and intra-host probes go through its own responder, they see the faults too.

import Foundation

/// One rule: which probes it takes (every field that is present must match) and what it does.
public struct FaultRule: Hashable, Sendable, Codable {
    /// This node's rail being probed (the probe's destination rail); nil: every rail.
    public var rail: Int?
    /// The prober: a node name, or an endpoint `node/rail`; nil: every prober (including this node).
    public var peer: String?
    /// Extra delay before the reply, in microseconds.
    public var delayMicros: Int?
    /// Probability of dropping the probe unanswered, 0...1.
    public var drop: Double?

    public init(rail: Int? = nil, peer: String? = nil, delayMicros: Int? = nil, drop: Double? = nil) {
        self.rail = rail
        self.peer = peer
        self.delayMicros = delayMicros
        self.drop = drop
    }

    func matches(rail probedRail: Int, peerNode: String, peerRail: Int) -> Bool {
        if let rail, rail != probedRail { return false }
        if let peer, peer != peerNode, peer != "\(peerNode)/\(peerRail)" { return false }
        return true
    }
}

/// The faults file: `{"seed": 7, "rules": [{"rail": 0, "peer": "n2", "delayMicros": 2000, "drop": 0.3}]}`.
/// The first rule that matches a probe decides its fate.
public struct FaultPlan: Hashable, Sendable, Codable {
    public var seed: UInt64?
    public var rules: [FaultRule]

    public init(seed: UInt64? = nil, rules: [FaultRule] = []) {
        self.seed = seed
        self.rules = rules
    }

    public static let none = FaultPlan()

    /// Parses and checks a faults file's contents; errors name the rule and field.
    public static func parse(_ data: Data, name: String) throws -> FaultPlan {
        let plan: FaultPlan
        do { plan = try JSONDecoder().decode(FaultPlan.self, from: data) } catch {
            throw AgentError("\(name): not a faults file: \(error)")
        }
        for (index, rule) in plan.rules.enumerated() {
            if let rail = rule.rail, !(0...63).contains(rail) {
                throw AgentError("\(name): rules[\(index)].rail: \(rail) is outside 0...63")
            }
            if let delay = rule.delayMicros, !(0...10_000_000).contains(delay) {
                throw AgentError("\(name): rules[\(index)].delayMicros: \(delay) is outside 0...10000000")
            }
            if let drop = rule.drop, !(drop >= 0 && drop <= 1) {
                throw AgentError("\(name): rules[\(index)].drop: \(drop) is outside 0...1")
            }
        }
        return plan
    }

    public enum Fate: Equatable, Sendable {
        case answer(delayNanoseconds: UInt64)
        case drop
    }

    /// What happens to a probe of `rail` from `peerNode/peerRail`; `unit` is a uniform draw in [0, 1).
    func fate(rail: Int, peerNode: String, peerRail: Int, unit: Double) -> Fate {
        guard
            let rule = rules.first(where: { $0.matches(rail: rail, peerNode: peerNode, peerRail: peerRail) })
        else { return .answer(delayNanoseconds: 0) }
        if let drop = rule.drop, unit < drop { return .drop }
        return .answer(delayNanoseconds: UInt64(max(0, rule.delayMicros ?? 0)) * 1000)
    }
}

/// An error the agent reports as it is: a sentence naming the place.
public struct AgentError: Error, Sendable, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
