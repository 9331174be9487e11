// A replay (wire-v1.md §6): recorded reports through the engine and the policy exactly as the live
// service runs them, windows closed as it would close them. `faultline replay` prints it; tests
// hold the live service's findings and decisions to it.

import Engine
import FleetModel

public enum Replay {
    /// The engine and the policy over reports in any order: windows close as the service would
    /// close them, the window length taken from the earliest report; every closed window, with or
    /// without findings, is a step of the policy.
    public static func run(
        _ reports: [Report], topology: Topology, rules: Rules, runbooks: [RunbookHeader] = []
    ) -> (events: [Finding], decisions: [Decision], counters: EngineCounters) {
        let ordered = reports.sorted { ($0.windowStart, $0.node) < ($1.windowStart, $1.node) }
        guard let first = ordered.first else { return ([], [], EngineCounters()) }
        var engine = Engine(topology: topology, rules: rules, windowSeconds: first.windowSeconds)
        var policy = Policy(topology: topology, settings: rules.policy, runbooks: runbooks)
        var events: [Finding] = []
        var decisions: [Decision] = []
        func stepPolicy(closedFrom start: Timestamp?, findings: [Finding]) {
            guard let start, let next = engine.nextWindowToClose else { return }
            var window = start
            while window < next {
                decisions += policy.step(window: window, findings: findings.filter { $0.window == window })
                window = window.adding(seconds: Int64(first.windowSeconds))
            }
        }
        for report in ordered {
            // A window closes once reports of a window past its grace period arrive, as live.
            let before = engine.nextWindowToClose
            let found = engine.replay(report).findings
            stepPolicy(closedFrom: before, findings: found)
            events += found
        }
        let before = engine.nextWindowToClose
        let found = engine.finish()
        stepPolicy(closedFrom: before, findings: found)
        events += found
        return (events, decisions, engine.counters)
    }
}
