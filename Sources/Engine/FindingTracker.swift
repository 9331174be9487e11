// Hysteresis: a blamed component becomes a finding when the fault holds in K of the last M windows,
// and the finding closes after C clean windows in a row. State is per (component, symptom) and is
// dropped once nothing is open and the history is clean, so it stays bounded by what is failing.

import FleetModel

struct FindingTracker: Sendable {
    struct Key: Hashable, Comparable, Sendable {
        let component: Component
        let symptom: Symptom

        static func < (lhs: Key, rhs: Key) -> Bool {
            (lhs.component, lhs.symptom) < (rhs.component, rhs.symptom)
        }
    }

    /// What one window said about a key.
    struct Observation: Sendable {
        let faultClass: String
        let isHard: Bool
        let confidence: Double
        let evidence: [String: JSONValue]
    }

    private struct State: Sendable {
        /// Bit i set: blamed i windows ago (bit 0: the latest).
        var history: UInt64 = 0
        var openClass: String?
        var openIsHard = false
        var cleanStreak = 0
    }

    private var states: [Key: State] = [:]

    /// Components with an open finding, sorted.
    var openFindings: [(key: Key, faultClass: String)] {
        states.keys.sorted().compactMap { key in states[key]!.openClass.map { (key, $0) } }
    }

    /// Feeds one closed window's blames in; returns the events, in component order.
    mutating func advance(window: Timestamp, observations: [Key: Observation], rules: Rules) -> [Finding] {
        var events: [Finding] = []
        for key in Set(states.keys).union(observations.keys).sorted() {
            var state = states[key] ?? State()
            let observation = observations[key]
            state.history = (state.history << 1) | (observation == nil ? 0 : 1)
            if let observation {
                state.cleanStreak = 0
                let hysteresis = observation.isHard ? rules.hardFault : rules.grayFault
                let mask: UInt64 =
                    hysteresis.lookbackWindows >= 64 ? .max : (1 << UInt64(hysteresis.lookbackWindows)) - 1
                let held = (state.history & mask).nonzeroBitCount
                if let open = state.openClass {
                    if open != observation.faultClass {
                        state.openClass = observation.faultClass
                        state.openIsHard = observation.isHard
                        events.append(finding(window, .updated, key, observation, previousClass: open))
                    }
                } else if held >= hysteresis.openWindows {
                    state.openClass = observation.faultClass
                    state.openIsHard = observation.isHard
                    events.append(finding(window, .opened, key, observation))
                }
            } else if let open = state.openClass {
                state.cleanStreak += 1
                let closeAfter = (state.openIsHard ? rules.hardFault : rules.grayFault).closeAfterClean
                if state.cleanStreak >= closeAfter {
                    state.openClass = nil
                    events.append(
                        Finding(
                            window: window, event: .closed, component: key.component, faultClass: open,
                            confidence: 0,
                            evidence: [
                                "cleanWindows": .number(Double(state.cleanStreak)), "runbook": .string(runbookPath(of: open)),
                            ]))
                }
            }
            // Keep state only while it can still matter.
            let longest = max(rules.hardFault.lookbackWindows, rules.grayFault.lookbackWindows)
            let relevant: UInt64 = longest >= 64 ? .max : (1 << UInt64(longest)) - 1
            if state.openClass == nil && state.history & relevant == 0 {
                states[key] = nil
            } else {
                states[key] = state
            }
        }
        return events
    }

    /// An event for `observation`; an `updated` one names the class it replaces (`previousClass`).
    private func finding(
        _ window: Timestamp, _ event: Finding.Event, _ key: Key, _ observation: Observation,
        previousClass: String? = nil
    ) -> Finding {
        var added: [String: JSONValue] = ["runbook": .string(runbookPath(of: observation.faultClass))]
        if let previousClass { added["previousClass"] = .string(previousClass) }
        return Finding(
            window: window, event: event, component: key.component, faultClass: observation.faultClass,
            confidence: observation.confidence, evidence: observation.evidence.merging(added) { $1 })
    }
}
