// A replay (wire-v1.md §6): recorded reports through the engine and the policy exactly as the live
// service runs them, windows closed as it would close them. `faultline replay` prints it; tests
// hold the live service's findings and decisions to it. `Replayer` takes reports one at a time in
// (window, node) order, as a store reads them, so a replay's memory does not grow with the log.

import Engine
import FleetModel

public enum Replay {
    /// The engine and the policy over reports in any order: windows close as the service would
    /// close them, the window length taken from the earliest report; every closed window, with or
    /// without findings, is a step of the policy.
    public static func run(
        _ reports: [Report], topology: Topology, rules: Rules, runbooks: [RunbookHeader] = []
    ) -> (events: [Finding], decisions: [Decision], counters: EngineCounters) {
        var replayer = Replayer(topology: topology, rules: rules, runbooks: runbooks)
        for report in reports.sorted(by: { ($0.windowStart, $0.node) < ($1.windowStart, $1.node) }) {
            replayer.add(report)
        }
        replayer.finish()
        return (replayer.events, replayer.decisions, replayer.counters)
    }
}

/// A replay fed one report at a time, in (window start, node) order.
public struct Replayer {
    public let topology: Topology
    public let rules: Rules
    let runbooks: [RunbookHeader]
    private var engine: Engine?
    private var policy: Policy
    public private(set) var events: [Finding] = []
    public private(set) var decisions: [Decision] = []

    /// Keep the unhealthy pairs of every window (for a timeline); read them with `takeUnhealthy`.
    public var capturesUnhealthyPairs = false

    public init(topology: Topology, rules: Rules, runbooks: [RunbookHeader] = []) {
        self.topology = topology
        self.rules = rules
        self.runbooks = runbooks
        policy = Policy(topology: topology, settings: rules.policy, runbooks: runbooks)
    }

    /// The unhealthy pairs of the windows closed since the last call, by window.
    public mutating func takeUnhealthy() -> [(window: Timestamp, verdicts: [PairVerdict])] {
        engine?.takeCaptured() ?? []
    }

    public var counters: EngineCounters { engine?.counters ?? EngineCounters() }

    /// The next report. The first one sets the window length.
    public mutating func add(_ report: Report) {
        if engine == nil {
            engine = Engine(topology: topology, rules: rules, windowSeconds: report.windowSeconds)
            if capturesUnhealthyPairs {
                engine!.captureFrom = report.windowStart
                engine!.captureUnhealthyOnly = true
            }
        }
        // A window closes once reports of a window past its grace period arrive, as live.
        let before = engine!.nextWindowToClose
        let found = engine!.replay(report).findings
        stepPolicy(closedFrom: before, findings: found)
        events += found
    }

    /// Closes every window still open.
    public mutating func finish() {
        guard engine != nil else { return }
        let before = engine!.nextWindowToClose
        let found = engine!.finish()
        stepPolicy(closedFrom: before, findings: found)
        events += found
    }

    /// One policy step per window closed since `start`.
    private mutating func stepPolicy(closedFrom start: Timestamp?, findings: [Finding]) {
        guard let start, let next = engine!.nextWindowToClose else { return }
        var window = start
        while window < next {
            decisions += policy.step(window: window, findings: findings.filter { $0.window == window })
            window = window.adding(seconds: Int64(engine!.windowSeconds))
        }
    }
}
