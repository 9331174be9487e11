// `faultline rules check | show`: validate a directory of rules files and summarize the rules in
// effect, or print them as rules text; and `loadRules`, which every command taking `--rules DIR` uses.

import Engine
import FleetModel
import Foundation
import Policy
import Service

/// The rules in effect for a rules directory, and where they came from.
struct LoadedRules {
    let rules: Rules
    /// The files applied, as displayed in messages (`DIR/name.rules`), in the order applied.
    let files: [String]
    /// Where each setting a file set was last set.
    let origins: [RulesSettingName: RulesLocation]
}

/// A rules file may not be larger than this.
let rulesFileLimit = 1 << 20

/// The `*.rules` files of directory `path`, applied in filename order (bytewise) over the built-in
/// defaults; names starting with `.` are skipped. `path` may also name one file, applied alone.
/// Every problem is written to stderr as `FILE:LINE: message`; then the command stops with 65.
func loadRules(_ path: String, io: some CommandIO) throws(CommandError) -> LoadedRules {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw CommandError.noInput("cannot open \(path): no such file or directory")
    }
    let files: [String]
    if isDirectory.boolValue {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw CommandError.noInput("cannot list \(path): \(error.localizedDescription)")
        }
        let directory = path.hasSuffix("/") ? path : path + "/"
        files =
            names
            .filter { $0.hasSuffix(".rules") && !$0.hasPrefix(".") }
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            .map { directory + $0 }
            .filter { file in
                var isSubdirectory: ObjCBool = false
                return FileManager.default.fileExists(atPath: file, isDirectory: &isSubdirectory)
                    && !isSubdirectory.boolValue
            }
        guard !files.isEmpty else { throw CommandError.noInput("no *.rules files in \(path)") }
    } else {
        files = [path]
    }
    var parser = RulesParser()
    for file in files {
        parser.apply(file: file, bytes: [UInt8](try readFile(file, limit: rulesFileLimit)))
    }
    do {
        return LoadedRules(rules: try parser.result(), files: files, origins: parser.origins)
    } catch {
        for problem in error.errors { io.writeError("\(problem)\n") }
        throw CommandError.data("\(plural(error.errors.count, "error")) in \(path)")
    }
}

struct RulesCheckCommand: Command {
    static let name = "rules check"
    static let summary = "validate a directory of rules files and summarize the rules in effect"
    static let usage = "rules check DIR [--runbooks DIR]"
    static let help = """
        Applies the *.rules files of DIR in filename order over the built-in defaults, the way every
        command that takes --rules DIR reads them (files whose names start with '.' are skipped), and
        checks every line: unknown sections and keys, a key set twice in one file, values of the wrong
        type or out of range. Each problem is printed on stderr as "FILE:LINE: message", then the
        status is 65. When all is well it summarizes the rules in effect and lists every setting that
        differs from the built-in defaults with the file and line that set it. DIR may also be a single
        rules file. docs/rules.md describes the format.

        The runbooks are checked too (--runbooks DIR, by default the runbooks/ folder beside DIR when
        there is one): every fault class the engine raises has its runbook, every runbook names a
        class the engine raises, and each one's header block (severity, ladder, release: see
        runbooks/README.md) is valid; problems as "FILE:LINE: message".
        """

    let path: String
    let runbooksPath: String?

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["runbooks"], positionals: 1)
        guard let path = options.positionals.first else { throw CommandError.usage("which rules directory?") }
        self.path = path
        if let given = options.value("runbooks") {
            runbooksPath = given
        } else {
            let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
            let parent = (trimmed as NSString).deletingLastPathComponent
            let beside = parent.isEmpty ? "runbooks" : parent + "/runbooks"
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: beside, isDirectory: &isDirectory) && isDirectory.boolValue
            runbooksPath = exists ? beside : nil
        }
    }

    func run(io: some CommandIO) throws(CommandError) {
        let loaded = try loadRules(path, io: io)
        let headers = try runbooksPath.map { (runbooks) throws(CommandError) in try checkRunbooks(runbooks, io: io) }
        let names = loaded.files.map { String($0.split(separator: "/").last ?? Substring($0)) }
        io.write("\(path): valid (\(plural(names.count, "file")): \(names.joined(separator: ", ")))\n\n")
        io.write(summary(loaded.rules))
        io.write("\n" + changes(loaded))
        if let runbooksPath, let headers {
            io.write("\n\(runbooksPath): \(plural(headers.count, "runbook")) valid, one for every fault class\n")
        }
    }

    /// The rules in a few lines and a table of the path classes.
    private func summary(_ rules: Rules) -> String {
        func hysteresis(_ h: Hysteresis) -> String {
            "open in \(h.openWindows) of \(h.lookbackWindows) windows, close after \(h.closeAfterClean) clean"
        }
        var out = """
            grace        \(plural(rules.graceWindows, "window")) for late reports
            latency      judged from \(rules.minSamples) returned probes per pair
            lossy        ≥ \(percent(rules.lossyRate)) of probes lost, and ≥ \(rules.minLostProbes) lost
            dead         every probe lost, of ≥ \(rules.minProbesForDead) sent
            blame        ≥ \(percent(rules.minBadShare)) of a component's judged pairs bad; \
            a remote one needs ≥ \(rules.minIndependentReporters) reporting nodes
            hard faults  \(hysteresis(rules.hardFault))
            gray faults  \(hysteresis(rules.grayFault))


            """
        let header = ["path class ", "slow p50", "slow p99", "min excess", "ceiling p50", "ceiling p99"]
        var rows = [header]
        for pathClass in PathClass.allCases {
            let c = rules.pathClasses[pathClass]!  // the parser fills all four
            func ceiling(_ micros: Double) -> String { micros == 0 ? "none" : "\(compact(micros)) µs" }
            rows.append([
                pathClass.rawValue, "×\(compact(c.slowP50Ratio))", "×\(compact(c.slowP99Ratio))",
                "\(compact(c.minExcessMicros)) µs", ceiling(c.ceilingP50Micros), ceiling(c.ceilingP99Micros),
            ])
        }
        let widths = header.indices.map { column in rows.map { $0[column].count }.max()! }
        for row in rows {
            let cells = row.indices.map {
                $0 == row.count - 1 ? row[$0] : row[$0].padding(toLength: widths[$0])
            }
            out += cells.joined(separator: "  ") + "\n"
        }
        return out
    }

    /// The settings that differ from the built-in defaults, with the file and line that set each.
    private func changes(_ loaded: LoadedRules) -> String {
        let changed = zip(loaded.rules.settings, Rules.defaults.settings).filter { $0.value != $1.value }
        guard !changed.isEmpty else { return "every setting is the built-in default\n" }
        let differ = changed.count == 1 ? "setting differs" : "settings differ"
        var out = "\(changed.count) \(differ) from the built-in defaults:\n"
        for (setting, builtIn) in changed {
            let origin = loaded.origins[setting.name].map { " (\($0))" } ?? ""
            out += "  \(setting.name) = \(setting.value), default \(builtIn.value)\(origin)\n"
        }
        return out
    }
}

struct RulesShowCommand: Command {
    static let name = "rules show"
    static let summary = "print the rules in effect as rules text"
    static let usage = "rules show [--rules DIR]"
    static let help = """
        Prints the rules in effect in the canonical rules text: every section and key in a fixed order,
        each with a comment. Without --rules, the built-in defaults, which rules/00-default.rules
        repeats (`faultline rules show > rules/00-default.rules` rewrites it). With --rules DIR, the
        *.rules files of DIR applied over the defaults; problems are reported as by `rules check`.

        options:
          --rules DIR   a rules directory (or one rules file)
        """

    let rulesPath: String?

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["rules"])
        rulesPath = options.value("rules")
    }

    func run(io: some CommandIO) throws(CommandError) {
        var rules = Rules.defaults
        if let rulesPath { rules = try loadRules(rulesPath, io: io).rules }
        io.write(rules.canonicalText)
    }
}

/// "1 file", "2 files".
private func plural(_ count: Int, _ noun: String) -> String {
    "\(count) \(noun)\(count == 1 ? "" : "s")"
}

/// `0.01` as `1%`, `0.6` as `60%`.
private func percent(_ fraction: Double) -> String {
    compact((fraction * 100 * 1e9).rounded() / 1e9) + "%"
}

/// A number without a needless `.0`: `2`, `1.5`.
private func compact(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? "\(Int(value))" : "\(value)"
}

/// Checks a runbooks directory (`Runbooks.load`); problems go to stderr as FILE:LINE.
func checkRunbooks(_ path: String, io: some CommandIO) throws(CommandError) -> [RunbookHeader] {
    do {
        return try Runbooks.load(directory: path)
    } catch {
        for problem in error.problems { io.writeError(problem + "\n") }
        throw CommandError.data("\(plural(error.problems.count, "error")) in \(path)")
    }
}
