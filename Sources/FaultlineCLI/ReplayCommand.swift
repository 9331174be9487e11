// `faultline replay` (wire-v1.md §6, docs/replay.md): recorded reports — from an NDJSON file or the
// service's own store — through the same engine and policy the service runs, windows closed as the
// live service would close them; a timeline or the findings and decisions as JSON lines, byte-identical
// every run. `--compare` holds the replay against what the store recorded live.

import Engine
import FleetModel
import Foundation
import Policy
import Service
import Store

struct ReplayCommand: Command {
    static let name = "replay"
    static let summary = "run the engine and the policy over recorded reports: findings, then decisions"
    static let usage =
        "replay (--db FILE | --topology FILE --input REPORTS.ndjson) [--from T] [--to T] [--rules DIR] [--runbooks DIR] [--json] [--compare]"
    static let help = """
        Reads probe reports, groups them by window, closes each window as the live service would (the
        grace period counted in windows, not wall time), runs the engine and the remediation policy
        and prints, per window, the findings opened, updated and closed and the policy's decisions
        (quarantine, release, notify, held, awaiting-approval, ...: docs/remediation.md) as the
        executor would take them in dry-run; from a store, also the actions recorded live and their
        outcomes. From a store, the operators' commands in its audit (approve, release, ...) are
        applied between the window steps they came between live, and the windows the service closed
        past the last reports close too. With --json: the findings stream (wire-v1.md §5), then the
        decisions, one JSON object per line. The same input gives the same bytes on every run.

        options:
          --db FILE         the service's store: its reports, and the topology and rules it recorded as
                            in force (the latest in the range); --topology and --rules override them
          --topology FILE   the fabric (wire-v1.md §2)
          --input FILE      the reports, NDJSON (- for standard input)
          --from T, --to T  print windows starting in [T, T) only (RFC 3339 UTC). The engine still
                            runs over every report before --to, so baselines are those live had
          --rules DIR       detection and policy rules; another directory asks "what if" of both
          --runbooks DIR    the runbooks whose headers give each class's ladder (its later steps
                            become escalate decisions) and release policy (manual: the node is
                            parked); without it nothing escalates and every class is released
          --json            the findings and the decisions as JSON lines
          --compare         (with --db) hold the replayed findings and decisions against those the
                            store recorded live, print the differences; exit 0 when identical, 1
                            when not, so a rule change can be tried on recorded incidents in CI

        Reports that fail validation stop the replay with FILE:LINE: field: reason (exit 65); reports
        the engine counts instead of applying (late, duplicate, unknown node) are summarized on stderr.
        """

    enum Source {
        case files(topology: String, input: String)
        case store(path: String, topology: String?)
    }

    let source: Source
    let from: Timestamp?
    let to: Timestamp?
    let rulesPath: String?
    let runbooksPath: String?
    let json: Bool
    let compare: Bool

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(
            arguments, valued: ["db", "topology", "input", "from", "to", "rules", "runbooks"],
            flags: ["json", "compare"])
        if let path = options.value("db") {
            if options.value("input") != nil { throw CommandError.usage("give --db or --input, not both") }
            source = .store(path: path, topology: options.value("topology"))
        } else {
            source = .files(topology: try options.required("topology"), input: try options.required("input"))
        }
        from = try options.timestamp("from")
        to = try options.timestamp("to")
        if let from, let to, to <= from { throw CommandError.usage("--to must be after --from") }
        rulesPath = options.value("rules")
        runbooksPath = options.value("runbooks")
        json = options.flag("json")
        compare = options.flag("compare")
        if compare, case .files = source {
            throw CommandError.usage("--compare needs --db: what was recorded live is in the store")
        }
    }

    /// What a replay runs on, and (from a store) what happened live. `feed` hands the reports over
    /// in (window, node) order, their sketches read: from a store, one row at a time, read and
    /// measured on a second thread while the engine works on this one.
    struct Inputs {
        var topology: Topology
        var rules: Rules
        var feed: ((MeasuredReport) -> Void) throws -> Void
        var live: LiveRecord?
        /// Operators' commands from the store's audit, and those it recorded without their place
        /// among the window steps (before this was recorded), which are not applied.
        var commands: [RecordedCommand] = []
        var unplacedCommands = 0
        /// The end of the last window the live service closed (from a store).
        var liveClosedUntil: Timestamp?
    }

    func run(io: some CommandIO) throws(CommandError) {
        let inputs = try load(io: io)
        let runbooks = try runbooksPath.map { (path) throws(CommandError) in try checkRunbooks(path, io: io) }
        var replayer = Replayer(topology: inputs.topology, rules: inputs.rules, runbooks: runbooks ?? [])
        let timeline = !json && !compare
        replayer.capturesUnhealthyPairs = timeline
        replayer.add(commands: inputs.commands)
        var turned = TurnedUnhealthy()
        try withStoreErrors {
            try inputs.feed { report in
                replayer.add(report)
                if timeline { turned.add(replayer.takeUnhealthy(), keeping: inRange) }
            }
        }
        // Windows the service closed past the last reports close here too, up to --to.
        replayer.finish(through: inputs.liveClosedUntil.map { end in to.map { min($0, end) } ?? end })
        if timeline { turned.add(replayer.takeUnhealthy(), keeping: inRange) }
        var events = replayer.events.filter { inRange($0.window) }
        var decisions = replayer.decisions.filter { inRange($0.time) }
        if compare, var live = inputs.live {
            // Windows the service had not closed yet (the last ones of a running service) have no
            // live findings to compare with: both sides stop where live did.
            if let end = inputs.liveClosedUntil, to.map({ $0 > end }) ?? true {
                events = events.filter { $0.window < end }
                decisions = decisions.filter { $0.time < end }
                live.keep(before: end)
                io.writeError("faultline replay: compared up to \(end), the end of the last window the service closed\n")
            }
            var comparison = ReplayComparison(replayed: (events, decisions), live: live)
            comparison.unplacedCommands = inputs.unplacedCommands
            try report(comparison, io: io)
        } else if json {
            io.write((events.map(\.jsonLine) + decisions.map(\.jsonLine)).map { $0 + "\n" }.joined())
        } else {
            io.write(self.timeline(events, decisions, turned: turned, actions: inputs.live?.actions ?? []))
        }
        summarizeSkipped(replayer.counters, io: io)
        for recorded in replayer.unappliedCommands where to.map({ recorded.at < $0 }) ?? true {
            io.writeError(
                "faultline replay: the operator's \(recorded.command.verb) \(recorded.command.target) at \(recorded.at) "
                    + "came after the last window this replay closed: not applied\n")
        }
        for (recorded, reason) in replayer.refusedCommands {
            io.writeError(
                "faultline replay: the operator's \(recorded.command.verb) \(recorded.command.target) at \(recorded.at) "
                    + "is refused in this replay: \(reason)\n")
        }
        if inputs.unplacedCommands > 0 && !compare {
            io.writeError(
                "faultline replay: \(inputs.unplacedCommands) operator command(s) whose audit entry does not say, or does "
                    + "not read, what and after which window (an older service's) are not applied\n")
        }
        if !replayer.commandsBeforeTheReplay.isEmpty {
            io.writeError(
                "faultline replay: \(replayer.commandsBeforeTheReplay.count) operator command(s) came after windows whose "
                    + "reports the store no longer has (pruned): not applied\n")
        }
    }

    private func inRange(_ time: Timestamp) -> Bool {
        (from.map { time >= $0 } ?? true) && (to.map { time < $0 } ?? true)
    }

    private func load(io: some CommandIO) throws(CommandError) -> Inputs {
        switch source {
        case .files(let topologyPath, let inputPath):
            let data =
                inputPath == "-"
                ? Data(try readAllInput(io: io, limit: 1 << 30)) : try readFile(inputPath, limit: 1 << 30)
            var reports: [Report]
            do { reports = try Report.parseLines(data, name: inputPath, topology: nil) } catch {
                throw CommandError.data("\(error)")
            }
            if let to { reports = reports.filter { $0.windowStart < to } }
            reports.sort { ($0.windowStart, $0.node) < ($1.windowStart, $1.node) }
            return Inputs(
                topology: try loadTopology(topologyPath), rules: try rules(stored: nil, io: io),
                feed: { [reports] each in
                    var reader = PairSketchReader()
                    for report in reports { each(MeasuredReport(report, reader: &reader)) }
                },
                live: nil)
        case .store(let path, let topologyPath):
            try requireExistingFile(path)
            return try withStoreErrors { () throws -> Inputs in
                let store = try Store(path: path, mode: .readOnly, migrate: false)
                let until = to ?? Timestamp(secondsSinceEpoch: Int64.max / 2)
                let topology: Topology
                if let topologyPath {
                    topology = try loadTopology(topologyPath)
                } else {
                    guard let record = try store.configuration(.topology, at: until) else {
                        throw CommandError.data("\(path): the store records no topology: give --topology")
                    }
                    do { topology = try Topology(json: Data(record.text.utf8)) } catch {
                        throw CommandError.data("\(path): the recorded topology \(record.sha256.prefix(12)): \(error)")
                    }
                }
                let rules = try rules(stored: try store.configuration(.rules, at: until), io: io)
                let (commands, unplaced) = try recordedCommands(store)
                let closedUntil = try store.database.singleInt(
                    "SELECT MAX(window_start + window_seconds) FROM windows WHERE closed_at IS NOT NULL"
                ).map { Timestamp(secondsSinceEpoch: $0) }
                return Inputs(
                    topology: topology, rules: rules,
                    feed: { [to] each in
                        try readingAhead(
                            produce: { yield in
                                let rows = try Store(path: path, mode: .readOnly, migrate: false)
                                var reader = StoredReportReader()
                                try rows.forEachMeasuredReport(to: to, reader: &reader) { yield($0) }
                            }, consume: each)
                    },
                    live: compare || !json ? try LiveRecord(store: store, from: from, to: to) : nil,
                    commands: commands, unplacedCommands: unplaced, liveClosedUntil: closedUntil)
            }
        }
    }

    /// The operators' commands in the store's audit, in order, with the window each came after;
    /// and how many were recorded without it (by a service before this was recorded).
    private func recordedCommands(_ store: Store) throws -> (commands: [RecordedCommand], unplaced: Int) {
        var commands: [RecordedCommand] = []
        var unplaced = 0
        for entry in try store.auditEntries() {
            switch RecordedCommand.read(auditEntry: entry.entry, at: entry.at) {
            case .command(let command): commands.append(command)
            case .unplaced, .unreadable: unplaced += 1
            case .notACommand: continue
            }
        }
        return (commands, unplaced)
    }

    /// --rules; else the rules the store recorded as in force; else the built-in ones.
    private func rules(stored: ConfigurationRecord?, io: some CommandIO) throws(CommandError) -> Rules {
        if let rulesPath { return try loadRules(rulesPath, io: io).rules }
        guard let stored else { return .defaults }
        do {
            return try RulesParser.parse(stored.text, file: "recorded rules \(stored.sha256.prefix(12))")
        } catch {
            throw CommandError.data("\(error)")
        }
    }

    /// Per window: the pairs that turned unhealthy, the findings' events, the decisions, and the
    /// actions recorded live for them.
    private func timeline(
        _ events: [Finding], _ decisions: [Decision], turned: TurnedUnhealthy, actions: [LiveRecord.Action]
    ) -> String {
        let windows = Set(events.map(\.window)).union(decisions.map(\.time)).union(turned.byWindow.keys).sorted()
        let eventsByWindow = Dictionary(grouping: events, by: \.window)
        let decisionsByWindow = Dictionary(grouping: decisions, by: \.time)
        let actionsByDecision = Dictionary(grouping: actions, by: \.decisionID)
        var output = ""
        for window in windows {
            output += "== \(window)\n"
            if let pairs = turned.byWindow[window] {
                let shown = pairs.examples.map { "\($0.src) -> \($0.dst) \($0.verdict)" }.joined(separator: ", ")
                let more = pairs.count > pairs.examples.count ? ", and \(pairs.count - pairs.examples.count) more" : ""
                output += "  unhealthy  \(pairs.count) pair(s) turned: \(shown)\(more)\n"
            }
            for finding in eventsByWindow[window] ?? [] {
                output +=
                    "  \(finding.event.rawValue.padding(toLength: 7))  \(finding.faultClass.padding(toLength: 18))  "
                    + "\(finding.component)  (confidence \(JSONValue.number((finding.confidence * 100).rounded() / 100).jsonText))\n"
            }
            for decision in decisionsByWindow[window] ?? [] {
                output += "  " + decision.textLine.dropFirst("\(decision.time)  ".count) + "\n"
                for action in actionsByDecision[decision.id] ?? [] where action.kind == decision.kind.rawValue {
                    output += "      live: \(action.event) \(action.outcome.map { "-> \($0)" } ?? "")\n"
                }
            }
        }
        return output
    }

    private func report(_ comparison: ReplayComparison, io: some CommandIO) throws(CommandError) {
        var output = ""
        for difference in comparison.differences { output += difference + "\n" }
        if !comparison.changedCourses.isEmpty {
            output += "decisions that change (id: live -> replay):\n"
            for course in comparison.changedCourses { output += "  " + course + "\n" }
        }
        if comparison.unplacedCommands > 0 {
            output +=
                "note: \(comparison.unplacedCommands) operator command(s) whose audit entry does not say, or does not "
                + "read, what and after which window (an older service's) are not applied, so decisions after them may differ\n"
        }
        let summary =
            "findings: \(comparison.findings.replayed) replayed, \(comparison.findings.live) recorded live; "
            + "decisions: \(comparison.decisions.replayed) replayed, \(comparison.decisions.live) recorded live"
        if comparison.differences.isEmpty {
            io.write(output + "identical: " + summary + "\n")
        } else {
            io.write(output)
            throw CommandError.differences("\(comparison.differences.count) difference(s): " + summary)
        }
    }

    private func summarizeSkipped(_ counters: EngineCounters, io: some CommandIO) {
        let skipped = [
            ("late", counters.reportsLate), ("duplicate", counters.reportsDuplicate),
            ("unknown node", counters.reportsUnknownNode),
            ("other window length", counters.reportsWrongWindowLength),
            ("pairs to unknown endpoints", counters.pairsUnknownEndpoint),
            ("pairs with a path the topology contradicts", counters.pairsInvalidPath),
            ("pairs with a bad sketch", counters.pairsInvalidSketch),
        ].filter { $0.1 > 0 }
        if !skipped.isEmpty {
            io.writeError(
                "faultline replay: counted, not applied: "
                    + skipped.map { "\($0.1) \($0.0)" }.joined(separator: ", ") + "\n")
        }
    }
}

/// The pairs that turned unhealthy in each window (judged slow, lossy or dead, and not in the window
/// before): a count and the first few, sorted.
struct TurnedUnhealthy {
    static let examples = 6
    var byWindow: [Timestamp: (count: Int, examples: [PairVerdict])] = [:]
    private var previous: Set<String> = []

    mutating func add(_ windows: [(window: Timestamp, verdicts: [PairVerdict])], keeping: (Timestamp) -> Bool) {
        for (window, verdicts) in windows {
            let keys = verdicts.map { "\($0.src) \($0.dst)" }
            let new = zip(keys, verdicts).filter { !previous.contains($0.0) }.map(\.1)
                .sorted { ($0.src, $0.dst) < ($1.src, $1.dst) }
            previous = Set(keys)
            if !new.isEmpty, keeping(window) {
                byWindow[window] = (new.count, Array(new.prefix(Self.examples)))
            }
        }
    }
}

/// What the store recorded live for a range: the findings stream, the decisions the executor took
/// (from its audit log, each once), the actions' outcomes, and the operator's commands.
struct LiveRecord {
    struct Action {
        var decisionID: String
        var kind: String
        var event: String
        var outcome: String?
    }

    var findings: [Finding]
    /// Each decision's JSON, canonical (sorted keys), in the order taken.
    var decisions: [(time: Timestamp, json: String)]
    var actions: [Action]

    init(store: Store, from: Timestamp?, to: Timestamp?) throws {
        findings = try store.findingEvents(from: from, to: to)
        decisions = []
        actions = []
        var seen: Set<String> = []
        for entry in try store.auditEntries() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(entry.entry.utf8)) as? [String: Any]
            else { continue }
            guard let decision = object["decision"] as? [String: Any],
                let timeText = decision["time"] as? String, let time = Timestamp(rfc3339: timeText),
                (from.map { time >= $0 } ?? true) && (to.map { time < $0 } ?? true)
            else { continue }
            let event = object["event"] as? String ?? ""
            switch event {
            case "decision", "intent":
                guard let json = canonicalJSON(decision), seen.insert(json).inserted else { continue }
                decisions.append((time, json))
            case "outcome", "reconciled":
                actions.append(
                    Action(
                        decisionID: decision["id"] as? String ?? "", kind: decision["decision"] as? String ?? "",
                        event: event, outcome: object["outcome"] as? String))
            default:
                continue
            }
        }
    }
}

extension LiveRecord {
    /// Only what concerns windows before `end`.
    mutating func keep(before end: Timestamp) {
        findings = findings.filter { $0.window < end }
        decisions = decisions.filter { $0.time < end }
    }
}

/// A decision's JSON with sorted keys: live (parsed from the audit) and replayed are compared in it.
func canonicalJSON(_ object: Any) -> String? {
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return nil }
    return String(decoding: data, as: UTF8.self)
}

/// Replayed against live: every finding event and decision that one side has and the other not,
/// and per quarantine (decision id) the course it took on each side where they differ.
struct ReplayComparison {
    var differences: [String] = []
    /// `id: live kinds -> replayed kinds`, for each decision id whose decisions differ.
    var changedCourses: [String] = []
    var findings: (replayed: Int, live: Int)
    var decisions: (replayed: Int, live: Int)
    var unplacedCommands = 0

    init(replayed: (events: [Finding], decisions: [Decision]), live: LiveRecord) {
        findings = (replayed.events.count, live.findings.count)
        decisions = (replayed.decisions.count, live.decisions.count)
        differences += Self.differences(
            "finding", replayed: replayed.events.map { ($0.window, $0.jsonLine) },
            live: live.findings.map { ($0.window, $0.jsonLine) })
        let replayedDecisions = replayed.decisions.compactMap { decision -> (time: Timestamp, json: String)? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(decision.jsonLine.utf8)),
                let json = canonicalJSON(object)
            else { return nil }
            return (decision.time, json)
        }
        differences += Self.differences(
            "decision", replayed: replayedDecisions.map { ($0.time, $0.json) },
            live: live.decisions.map { ($0.time, $0.json) })
        changedCourses = Self.courses(live: live.decisions.map(\.json), replayed: replayedDecisions.map(\.json))
    }

    /// Each decision id's kinds in order (`quarantine, release`), live and replayed, where they differ.
    static func courses(live: [String], replayed: [String]) -> [String] {
        func kinds(_ lines: [String]) -> [String: [String]] {
            var byID: [String: [String]] = [:]
            for line in lines {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    let id = object["id"] as? String, !id.isEmpty, let kind = object["decision"] as? String
                else { continue }
                byID[id, default: []].append(kind)
            }
            return byID
        }
        let (before, after) = (kinds(live), kinds(replayed))
        return Set(before.keys).union(after.keys).sorted().compactMap { id in
            let (was, would) = (before[id] ?? [], after[id] ?? [])
            guard was != would else { return nil }
            func text(_ kinds: [String]) -> String { kinds.isEmpty ? "(none)" : kinds.joined(separator: ", ") }
            return "\(id): \(text(was)) -> \(text(would))"
        }
    }

    /// Lines only one side has, as `- live` / `+ replay` lines in time order (a multiset difference:
    /// a line twice on one side and once on the other is one difference).
    static func differences(
        _ what: String, replayed: [(Timestamp, String)], live: [(Timestamp, String)]
    ) -> [String] {
        var counts: [String: Int] = [:]
        for (_, line) in replayed { counts[line, default: 0] += 1 }
        for (_, line) in live { counts[line, default: 0] -= 1 }
        var out: [(Timestamp, Int, String)] = []
        var left = counts
        for (time, line) in live where (left[line] ?? 0) < 0 {
            left[line]! += 1
            out.append((time, 0, "- live    \(what): \(line)"))
        }
        for (time, line) in replayed where (left[line] ?? 0) > 0 {
            left[line]! -= 1
            out.append((time, 1, "+ replay  \(what): \(line)"))
        }
        return out.sorted { ($0.0, $0.1, $0.2) < ($1.0, $1.1, $1.2) }.map(\.2)
    }
}
