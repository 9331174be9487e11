// A replay (wire-v1.md §6): recorded reports through the engine and the policy exactly as the live
// service runs them, windows closed as it would close them. `faultline replay` prints it; tests
// hold the live service's findings and decisions to it. `Replayer` takes reports one at a time in
// (window, node) order, as a store reads them, so a replay's memory does not grow with the log.

import Engine
import FleetModel
import Foundation

public enum Replay {
    /// The engine and the policy over reports in any order: windows close as the service would
    /// close them, the window length taken from the earliest report; every closed window, with or
    /// without findings, is a step of the policy; operators' commands come between the same steps.
    public static func run(
        _ reports: [Report], topology: Topology, rules: Rules, runbooks: [RunbookHeader] = [],
        commands: [RecordedCommand] = []
    ) -> (events: [Finding], decisions: [Decision], counters: EngineCounters) {
        var replayer = Replayer(topology: topology, rules: rules, runbooks: runbooks)
        replayer.add(commands: commands)
        for report in reports.sorted(by: { ($0.windowStart, $0.node) < ($1.windowStart, $1.node) }) {
            replayer.add(report)
        }
        replayer.finish()
        return (replayer.events, replayer.decisions, replayer.counters)
    }
}

/// An operator's command as the service's audit recorded it: when it came, and after which window's
/// policy step, so that a replay applies it between the same two steps as live.
public struct RecordedCommand: Sendable, Equatable {
    public let at: Timestamp
    /// The last window the policy had stepped when it came; nil before the first.
    public let afterWindow: Timestamp?
    public let command: OperatorCommand

    public init(at: Timestamp, afterWindow: Timestamp?, command: OperatorCommand) {
        self.at = at
        self.afterWindow = afterWindow
        self.command = command
    }

    /// The audit entry the service writes for it (keys sorted): the command as text (what the
    /// weekly report reads), its verb and target, and the window it came after.
    public var auditEntry: String {
        var entry: [String: JSONValue] = [
            "event": .string("command"), "command": .string("\(command)"), "verb": .string(command.verb),
            "target": .string(command.target),
        ]
        if let afterWindow { entry["afterWindow"] = .string(afterWindow.description) }
        return JSONValue.object(entry).jsonText
    }

    /// What an audit entry recorded at `at` says, when it is a command's.
    public enum Reading: Equatable {
        case command(RecordedCommand)
        /// A command's entry without its verb and target (written before they were).
        case unplaced
        /// A command's entry whose verb, target or window does not read.
        case unreadable
        case notACommand
    }

    public static func read(auditEntry text: String, at: Timestamp) -> Reading {
        guard case .object(let entry)? = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)),
            entry["event"] == .string("command")
        else { return .notACommand }
        guard entry["verb"] != nil || entry["target"] != nil else { return .unplaced }
        guard case .string(let verb)? = entry["verb"], case .string(let target)? = entry["target"],
            let command = OperatorCommand(verb: verb, target: target)
        else { return .unreadable }
        switch entry["afterWindow"] {
        case nil: return .command(RecordedCommand(at: at, afterWindow: nil, command: command))
        case .string(let text)?:
            guard let window = Timestamp(rfc3339: text) else { return .unreadable }
            return .command(RecordedCommand(at: at, afterWindow: window, command: command))
        default: return .unreadable
        }
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
    /// Reads the sketches of reports added unmeasured.
    private var sketchReader = PairSketchReader()
    /// Operators' commands not applied yet, in the order they came.
    private var commands: [RecordedCommand] = []
    /// Commands the replayed policy refused (other rules may leave nothing to approve), and why.
    public private(set) var refusedCommands: [(command: RecordedCommand, reason: String)] = []

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
        add(MeasuredReport(report, reader: &sketchReader))
    }

    /// The next report, its sketches read already (on another thread).
    public mutating func add(_ measured: MeasuredReport) {
        if engine == nil {
            engine = Engine(topology: topology, rules: rules, windowSeconds: measured.windowSeconds)
            if capturesUnhealthyPairs {
                engine!.captureFrom = measured.windowStart
                engine!.captureUnhealthyOnly = true
            }
        }
        // A window closes once reports of a window past its grace period arrive, as live.
        let before = engine!.nextWindowToClose
        let found = engine!.replay(measured).findings
        stepPolicy(closedFrom: before, findings: found)
        events += found
    }

    /// Operators' commands, in the order they came (the audit's): each is applied once the policy
    /// has stepped the window it came after, before the next, as live.
    public mutating func add(commands: [RecordedCommand]) {
        self.commands += commands
    }

    /// Closes every window still open, then applies the commands that came after the last one.
    /// `through`: the end of the last window the live service closed, when it closed windows past
    /// the last reports (silence is evidence): they close here too, as they did live.
    public mutating func finish(through end: Timestamp? = nil) {
        guard engine != nil else { return }
        if let end {
            let before = engine!.nextWindowToClose
            let grace = Int64(engine!.windowSeconds) * Int64(rules.graceWindows)
            let found = engine!.advance(to: end.adding(seconds: grace))
            stepPolicy(closedFrom: before, findings: found)
            events += found
        }
        let before = engine!.nextWindowToClose
        let found = engine!.finish()
        stepPolicy(closedFrom: before, findings: found)
        events += found
        if let last = policy.lastSteppedWindow { applyCommands { $0 <= last } }
    }

    /// Commands not applied: they came after the last window the replay stepped.
    public var unappliedCommands: [RecordedCommand] { commands }

    /// Commands not applied because they came after a window before the first one the replay
    /// stepped: their reports are gone (pruned), and what the commands acted on with them.
    public private(set) var commandsBeforeTheReplay: [RecordedCommand] = []

    /// One policy step per window closed since `start`, each after the commands that came before it.
    private mutating func stepPolicy(closedFrom start: Timestamp?, findings: [Finding]) {
        guard let start, let next = engine!.nextWindowToClose else { return }
        var window = start
        while window < next {
            if policy.lastSteppedWindow == nil {
                let first = window
                commandsBeforeTheReplay = commands.filter { $0.afterWindow.map { $0 < first } ?? false }
                commands.removeAll { $0.afterWindow.map { $0 < first } ?? false }
            }
            applyCommands { $0 < window }
            decisions += policy.step(window: window, findings: findings.filter { $0.window == window })
            window = window.adding(seconds: Int64(engine!.windowSeconds))
        }
    }

    /// Applies, in order, the commands that came before any step or after a window `cameAfter` holds for.
    private mutating func applyCommands(cameAfter: (Timestamp) -> Bool) {
        guard !commands.isEmpty else { return }
        var kept: [RecordedCommand] = []
        for recorded in commands {
            guard recorded.afterWindow.map(cameAfter) ?? true else {
                kept.append(recorded)
                continue
            }
            do {
                decisions += try policy.apply(recorded.command, at: recorded.at)
            } catch {
                refusedCommands.append((recorded, error.message))
            }
        }
        commands = kept
    }
}
