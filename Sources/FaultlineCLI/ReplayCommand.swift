// `faultline replay` (wire-v1.md §6): recorded reports through the same engine the service runs,
// windows closed as the live service would close them, findings out, byte-identical every run.

import Engine
import FleetModel
import Foundation
import Policy
import Service

struct ReplayCommand: Command {
    static let name = "replay"
    static let summary = "run the engine and the policy over recorded reports: findings, then decisions"
    static let usage = "replay --topology FILE --input REPORTS.ndjson [--rules DIR] [--runbooks DIR] [--json]"
    static let help = """
        Reads probe reports (NDJSON, one report per line, in any order), groups them by window, closes
        each window as the live service would (the grace period counted in windows, not wall time),
        runs the engine and prints the findings stream (wire-v1.md §5): one JSON object per line with
        --json, a readable line per event otherwise; then the remediation policy's decisions for the
        same windows (quarantine, release, notify, held, awaiting-approval, ...: docs/remediation.md),
        as the executor would take them in dry-run. The same input gives the same bytes on every run.

        options:
          --topology FILE   the fabric (wire-v1.md §2)
          --input FILE      the reports, NDJSON (- for standard input)
          --rules DIR       detection and policy rules (default: the built-in ones, equal to the
                            repo's rules/); another directory asks "what if" of both
          --runbooks DIR    the runbooks whose headers give each class's ladder (its later steps
                            become escalate decisions) and release policy (manual: the node is
                            parked); without it nothing escalates and every class is released
          --json            the findings and the decisions as JSON lines

        Reports that fail validation stop the replay with FILE:LINE: field: reason (exit 65); reports
        the engine counts instead of applying (late, duplicate, unknown node) are summarized on stderr.
        """

    let topologyPath: String
    let inputPath: String
    let rulesPath: String?
    let runbooksPath: String?
    let json: Bool

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["topology", "input", "rules", "runbooks"], flags: ["json"])
        topologyPath = try options.required("topology")
        inputPath = try options.required("input")
        rulesPath = options.value("rules")
        runbooksPath = options.value("runbooks")
        json = options.flag("json")
    }

    func run(io: some CommandIO) throws(CommandError) {
        let topology = try loadTopology(topologyPath)
        let rules =
            try rulesPath.map { (path) throws(CommandError) in try loadRules(path, io: io).rules }
            ?? .defaults
        let data =
            inputPath == "-"
            ? Data(try readAllInput(io: io, limit: 1 << 30)) : try readFile(inputPath, limit: 1 << 30)
        let reports: [Report]
        do {
            reports = try Report.parseLines(data, name: inputPath, topology: nil)
        } catch {
            throw CommandError.data("\(error)")
        }
        let runbooks = try runbooksPath.map { (path) throws(CommandError) in try checkRunbooks(path, io: io) }
        let findings = Replay.run(reports, topology: topology, rules: rules, runbooks: runbooks ?? [])
        var output = ""
        for finding in findings.events {
            if json {
                output += finding.jsonLine + "\n"
            } else {
                output +=
                    "\(finding.window)  \(finding.event.rawValue.padding(toLength: 7))  \(finding.faultClass.padding(toLength: 18))  "
                    + "\(finding.component)  (confidence \(JSONValue.number((finding.confidence * 100).rounded() / 100).jsonText))\n"
            }
        }
        for decision in findings.decisions {
            output += (json ? decision.jsonLine : decision.textLine) + "\n"
        }
        io.write(output)
        let counters = findings.counters
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
