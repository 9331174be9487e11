// `faultline simulate`: runs a scenario (a synthetic fleet with noise and injected faults) through
// the engine and scores the findings against the truth; optionally writes the reports it made as
// NDJSON for `faultline replay`. See docs/simulator.md.

import Engine
import FleetModel
import Foundation
import Simulation

struct SimulateCommand: Command {
    static let name = "simulate"
    static let summary = "run a fleet scenario with injected faults through the engine and score it"
    static let usage = "simulate --scenario FILE [--emit REPORTS.ndjson] [--rules DIR] [--json]"
    static let help = """
        Builds the probe reports a scenario's agents would send, window by window (docs/simulator.md
        describes the scenario JSON), runs them through the engine, and scores the findings against
        the injected faults: precision and recall per component kind, time to detect in windows, and
        false findings per 1,000 component-windows in fault-free windows. The same scenario always
        gives the same output.

        options:
          --scenario FILE   the scenario JSON; a topology file it names is relative to its folder
          --emit FILE       also write every report as NDJSON, sorted by window and node
          --rules DIR       rules files over the built-in defaults (as `rules check` reads them)
          --json            one JSON object: the score, every fault's outcome, the false findings
                            and every finding event
        """

    let scenarioPath: String
    let emitPath: String?
    let rulesPath: String?
    let json: Bool

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["scenario", "emit", "rules"], flags: ["json"])
        scenarioPath = try options.required("scenario")
        emitPath = options.value("emit")
        if emitPath == "-" || emitPath?.isEmpty == true {
            throw CommandError.usage("--emit needs a file name (standard output carries the score)")
        }
        rulesPath = options.value("rules")
        json = options.flag("json")
    }

    func run(io: some CommandIO) throws(CommandError) {
        let data = try readFile(scenarioPath, limit: 16 << 20)
        let simulator: FleetSimulator
        do {
            let scenario = try Scenario(json: data)
            let directory = URL(fileURLWithPath: scenarioPath).deletingLastPathComponent()
            simulator = try FleetSimulator(
                scenario: scenario, topology: scenario.loadTopology(relativeTo: directory))
        } catch {
            throw CommandError.data("\(scenarioPath): \(error)")
        }
        var rules = Rules.defaults
        if let rulesPath { rules = try loadRules(rulesPath, io: io).rules }

        var emitter: ReportEmitter?
        if let emitPath { emitter = try ReportEmitter(path: emitPath) }
        let result = simulator.run(rules: rules) { _, reports in emitter?.write(reports) }
        try emitter?.finish()

        io.write(json ? result.jsonText : result.text)
    }
}

/// Writes reports as NDJSON to a temporary file beside `path` as they come, and renames it into
/// place at the end, so a reader never sees half a file. Memory stays at one window's reports.
private final class ReportEmitter {
    let path: String
    let temporaryPath: String
    let handle: FileHandle
    var failure: String?
    var buffer = Data()

    init(path: String) throws(CommandError) {
        self.path = path
        temporaryPath = path + ".partial"
        guard FileManager.default.createFile(atPath: temporaryPath, contents: nil),
            let handle = FileHandle(forWritingAtPath: temporaryPath)
        else {
            throw CommandError.cannotCreate("cannot create \(path)")
        }
        self.handle = handle
    }

    func write(_ reports: [Report]) {
        guard failure == nil else { return }
        for report in reports {
            buffer.append(contentsOf: report.jsonLine.utf8)
            buffer.append(UInt8(ascii: "\n"))
        }
        do {
            try handle.write(contentsOf: buffer)
        } catch {
            failure = error.localizedDescription
        }
        buffer.removeAll(keepingCapacity: true)
    }

    func finish() throws(CommandError) {
        do {
            try handle.close()
        } catch {
            if failure == nil { failure = error.localizedDescription }
        }
        if let failure {
            try? FileManager.default.removeItem(atPath: temporaryPath)
            throw CommandError.io("cannot write \(path): \(failure)")
        }
        if rename(temporaryPath, path) != 0 {
            try? FileManager.default.removeItem(atPath: temporaryPath)
            throw CommandError.cannotCreate("cannot write \(path): rename failed")
        }
    }
}
