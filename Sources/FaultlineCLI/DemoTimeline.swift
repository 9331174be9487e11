// The demo's schedule and what it shows: faults injected and healed at fixed windows, and, read from
// the correlator's API once a second, the windows it closed, the findings it opened and closed
// (GET /v1/findings?state=all) and the remediation policy's decisions (GET /v1/quarantine); then a
// summary of what was injected, what was found and when. A status line is redrawn on a terminal;
// otherwise the output is plain lines.

import FleetModel
import Foundation

struct DemoTimeline {
    /// The schedule, in windows from the start.
    static let injectSlowRail = 4
    static let injectLossyLink = 8
    static let injectDeadNode = 12
    static let restartCorrelator = 19
    static let heal = 22
    static let end = 36

    let fleet: DemoFleet
    let io: any CommandIO
    let faults: [DemoFault]
    private let isTerminal = isatty(1) == 1
    private let started = ContinuousClock.now
    private var injectedAt: [Double?]
    private var healedAt: Double?
    private var restartedAt: Double?
    private var windowsClosed = 0
    /// The correlator's count of closed windows (`/metrics`) as last read, and what the processes
    /// before a restart counted (a restarted correlator counts from zero).
    private var windowCounter = (lastRead: 0, beforeRestarts: 0)
    private var seenFindings: Set<String> = []
    /// Every finding event seen, with when (seconds from the start) it was first seen.
    private var findings: [(seconds: Double, event: String, component: String, faultClass: String, confidence: Double)] = []
    private var seenDecisions: Set<String> = []
    private var decisions: [(seconds: Double, kind: String, subject: String)] = []
    private var statusShown = false
    /// Stopped by SIGINT or SIGTERM: the summary then makes no claim about what was not found.
    private(set) var interrupted = false

    init(fleet: DemoFleet, io: some CommandIO) {
        self.fleet = fleet
        self.io = io
        let names = fleet.names
        let rails = fleet.topology.nodes[0].rails.count
        faults = [
            .slowRail(EndpointID(node: names[names.count / 3], rail: min(2, rails - 1))!, delayMicros: 5000),
            .lossyLink(EndpointID(node: names[2 * names.count / 3], rail: 1)!, drop: 0.2),
            .deadNode(names[names.count - 1]),
        ]
        injectedAt = Array(repeating: nil, count: faults.count)
    }

    private var seconds: Double { (ContinuousClock.now - started) / .seconds(1) }

    mutating func run(until stop: DemoStopSignal) throws(CommandError) {
        let window = Double(fleet.windowSeconds)
        line(
            "faultline demo: \(fleet.names.count) nodes x \(fleet.topology.nodes[0].rails.count) rails, "
                + "correlator on \(fleet.correlatorAddress), agents on 127.0.1.1-\(fleet.names.count), "
                + "\(fleet.windowSeconds) s windows, \(Self.end) windows; files in \(fleet.directory)")
        let schedule = [Self.injectSlowRail, Self.injectLossyLink, Self.injectDeadNode]
        var lastPoll = -1.0
        while !stop.isRaised {
            let now = seconds
            let windowNow = Int(now / window)
            if windowNow >= Self.end { break }
            for (index, at) in schedule.enumerated() where injectedAt[index] == nil && windowNow >= at {
                try inject(index)
            }
            if restartedAt == nil && windowNow >= Self.restartCorrelator {
                restartedAt = seconds
                line("restart  the correlator killed (SIGKILL) and started again on its store; agents spool meanwhile")
                try fleet.restartCorrelator()
                line("restart  the correlator is back on \(fleet.correlatorAddress)")
            }
            if healedAt == nil && windowNow >= Self.heal { try healAll() }
            if now - lastPoll >= 1 {
                lastPoll = now
                poll()
            }
            if isTerminal { showStatus(windowNow) }
            usleep(200_000)
        }
        if stop.isRaised {
            interrupted = true
            line("interrupted: stopping every process of the demo")
        }
        poll()
        // The findings stream as the live correlator recorded it, for comparing with a replay.
        if let body = fleet.get("/v1/findings?state=all") {
            try? Data(body).write(to: URL(fileURLWithPath: fleet.directory + "/findings.ndjson"))
        }
        clearStatus()
    }

    private mutating func inject(_ index: Int) throws(CommandError) {
        injectedAt[index] = seconds
        let fault = faults[index]
        line("inject   \(fault.description)")
        if case .deadNode(let node) = fault {
            fleet.killAgent(node)
        } else {
            try fleet.apply(faults.indices.filter { injectedAt[$0] != nil }.map { faults[$0] })
        }
    }

    private mutating func healAll() throws(CommandError) {
        healedAt = seconds
        let restarted = faults.compactMap { if case .deadNode(let node) = $0 { node.rawValue } else { nil } }
        line("heal     every fault removed; \(restarted.joined(separator: ", ")) started again")
        try fleet.apply([])
        for case .deadNode(let node) in faults { try fleet.startAgent(node) }
    }

    /// Reads what the correlator closed, found and decided since the last poll, and prints it.
    private mutating func poll() {
        if let metrics = fleet.get("/metrics").map({ String(decoding: $0, as: UTF8.self) }),
            let closed = metrics.split(separator: "\n").first(where: { $0.hasPrefix("faultline_engine_windows_closed_total ") }),
            let count = Double(closed.split(separator: " ").last ?? "").map(Int.init)
        {
            if count < windowCounter.lastRead { windowCounter.beforeRestarts += windowCounter.lastRead }
            windowCounter.lastRead = count
            while windowsClosed < windowCounter.beforeRestarts + count {
                windowsClosed += 1
                let open = openFindings.count
                line("window   \(windowsClosed) closed · \(open) open finding\(open == 1 ? "" : "s")")
            }
        }
        if let body = fleet.get("/v1/findings?state=all") {
            for text in String(decoding: body, as: UTF8.self).split(separator: "\n") where seenFindings.insert(String(text)).inserted {
                guard let object = Self.object(text) else { continue }
                let event = Self.string(object["event"]), component = Self.string(object["component"])
                let faultClass = Self.string(object["class"])
                let confidence = Self.number(object["confidence"])
                findings.append((seconds, event, component, faultClass, confidence))
                let mark = event == "closed" ? "○" : "●"
                line(
                    "finding  \(mark) \(event) \(component)  \(faultClass)  confidence \(String(format: "%.2f", confidence))"
                        + "  (window \(Self.string(object["window"])))")
            }
        }
        if let body = fleet.get("/v1/quarantine"), let object = Self.object(Substring(decoding: body, as: UTF8.self)),
            case .array(let recent)? = object["recentDecisions"]
        {
            for case .object(let decision) in recent {
                let key = "\(Self.string(decision["id"])) \(Self.string(decision["decision"])) \(Self.string(decision["time"]))"
                guard seenDecisions.insert(key).inserted else { continue }
                let kind = Self.string(decision["decision"])
                let subject = Self.string(decision["node"]).isEmpty ? Self.string(decision["component"]) : Self.string(decision["node"])
                decisions.append((seconds, kind, subject))
                let reason = Self.string(decision["reason"])
                let action = Self.string(object["action"])
                line(
                    "decision \(kind) \(subject)  \(Self.string(decision["class"]))"
                        + (reason.isEmpty ? "" : "  (\(reason))") + (kind == "quarantine" ? "  [\(action)]" : ""))
            }
        }
    }

    /// Components with an opened finding not closed since.
    private var openFindings: Set<String> {
        var open: Set<String> = []
        for finding in findings {
            if finding.event == "closed" { open.remove(finding.component) } else { open.insert(finding.component) }
        }
        return open
    }

    private mutating func line(_ text: String) {
        clearStatus()
        io.write(String(format: "[%4.0fs] ", seconds) + text + "\n")
    }

    private mutating func showStatus(_ window: Int) {
        let width = 30
        let done = min(width, width * window / Self.end)
        let bar = String(repeating: "█", count: done) + String(repeating: "░", count: width - done)
        let next =
            window < Self.heal
            ? "heal at window \(Self.heal)" : "ends at window \(Self.end)"
        io.write("\r[\(String(format: "%4.0fs", seconds))] \(bar) window \(window)/\(Self.end) · \(next)\u{1B}[K")
        statusShown = true
    }

    private mutating func clearStatus() {
        if statusShown { io.write("\r\u{1B}[K") }
        statusShown = false
    }

    /// What was injected and found, and when; throws when a fault went unnamed or a component no
    /// fault explains was blamed (the demo then exits 65), unless the run was interrupted.
    func printSummary(report: (path: String, command: String)?) throws(CommandError) {
        var text = "\nSummary: \(fleet.names.count) nodes, \(windowsClosed) windows closed.\n"
        var missed: [String] = []
        for (index, fault) in faults.enumerated() {
            guard let at = injectedAt[index] else { continue }
            let opened = findings.first { $0.event == "opened" && $0.seconds >= at && fault.isNamed(by: $0.component) }
            text += "  injected at \(Int(at)) s: \(fault.description)\n"
            if let opened {
                let closed = findings.first { $0.event == "closed" && $0.component == opened.component && $0.seconds > opened.seconds }
                text += "    found at \(Int(opened.seconds)) s (\(Int(opened.seconds - at)) s later): \(opened.component) \(opened.faultClass)"
                    + " confidence \(String(format: "%.2f", opened.confidence))"
                    + (closed.map { ", closed at \(Int($0.seconds)) s" } ?? ", still open") + "\n"
            } else {
                text += "    NOT FOUND\n"
                missed.append(fault.description)
            }
        }
        let unexplained = Set(
            findings.filter { finding in finding.event == "opened" && !faults.contains { $0.isNamed(by: finding.component) } }
                .map(\.component)
        ).sorted()
        text += "  findings no injected fault explains: \(unexplained.isEmpty ? "none" : unexplained.joined(separator: ", "))\n"
        let quarantined = decisions.filter { $0.kind == "quarantine" }.map(\.subject)
        let released = decisions.filter { $0.kind == "release" }.map(\.subject)
        text += "  quarantined: \(quarantined.isEmpty ? "none" : quarantined.joined(separator: ", "))"
            + "; released: \(released.isEmpty ? "none" : released.joined(separator: ", "))\n"
        let faulty = faults.indices.filter { injectedAt[$0] != nil }.map { faults[$0].node.rawValue }
        let wronglyQuarantined = Set(quarantined).subtracting(faulty).sorted()
        let notQuarantined = faulty.filter { !quarantined.contains($0) }
        let directory = fleet.directory
        let faultline = fleet.executable
        text += """

            The run's reports, findings and decisions are in \(directory)/faultline.db. Its timeline replayed
            from the store (the rules and topology it recorded), and held against what happened live:
              \(faultline) replay --db \(directory)/faultline.db
              \(faultline) replay --db \(directory)/faultline.db --compare
            What if other rules had been in force: --rules DIR (docs/replay.md).
            Logs of every process: \(directory)/logs/

            """
        if let report {
            text += """
                The run's fleet health report (docs/reports.md): \(report.path)
                  \(faultline) \(report.command)

                """
        }
        io.write(text)
        // Findings no fault explains are listed, not failed on: on a loaded machine a process that
        // misses its turn looks slow to the others. Quarantining a node without a fault is a failure.
        if !interrupted, !missed.isEmpty || !wronglyQuarantined.isEmpty || !notQuarantined.isEmpty {
            throw CommandError.data(
                "the demo did not show what it should: "
                    + (missed.isEmpty ? "" : "not found: \(missed.joined(separator: "; ")). ")
                    + (notQuarantined.isEmpty ? "" : "not quarantined: \(notQuarantined.joined(separator: ", ")). ")
                    + (wronglyQuarantined.isEmpty
                        ? "" : "quarantined without a fault: \(wronglyQuarantined.joined(separator: ", ")).")
            )
        }
    }

    private static func object(_ text: Substring) -> [String: JSONValue]? {
        guard case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else {
            return nil
        }
        return object
    }

    private static func string(_ value: JSONValue?) -> String {
        if case .string(let text)? = value { return text }
        return ""
    }

    private static func number(_ value: JSONValue?) -> Double {
        if case .number(let number)? = value { return number }
        return 0
    }
}
