// `faultline rules check | show` in process: directories of rules files in filename order over the
// defaults, `FILE:LINE: message` errors with status 65, missing input 66, usage 64.

import Engine
import FleetModel
import Foundation
import Testing

@testable import FaultlineCLI

/// A fresh temporary directory holding `files` (name → bytes); removed by `remove()`.
private struct RulesDirectory {
    let path: String

    init(_ files: [String: [UInt8]]) throws {
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent(
                "faultline-rules-\(UUID().uuidString)"
            )
            .path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        for (name, bytes) in files {
            try Data(bytes).write(to: URL(fileURLWithPath: path + "/" + name))
        }
    }

    init(text files: [String: String]) throws {
        try self.init(files.mapValues { Array($0.utf8) })
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// The repository's rules/ directory.
private let repositoryRules = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("rules").path

@Suite("rules commands")
struct RulesCommandTests {
    @Test("rules show prints the built-in defaults, the same rules as rules/00-default.rules")
    func showDefaults() throws {
        let (status, out, err) = run(["rules", "show"])
        #expect(status == .success)
        #expect(err == "")
        #expect(out == Rules.defaults.canonicalText)
        let file = try String(contentsOfFile: repositoryRules + "/00-default.rules", encoding: .utf8)
        #expect(try RulesParser.parse(file, file: "00-default.rules") == Rules.defaults)
        #expect(try RulesParser.parse(out, file: "stdout") == Rules.defaults)
    }

    @Test("rules check on the repository's rules/ passes with every setting at its default")
    func checkRepository() {
        let (status, out, err) = run(["rules", "check", repositoryRules])
        #expect(status == .success)
        #expect(err == "")
        #expect(out.hasPrefix("\(repositoryRules): valid (1 file: 00-default.rules)\n"))
        #expect(out.contains("\nlossy        ≥ 1% of probes lost, and ≥ 3 lost\n"))
        #expect(out.contains("\ncross-leaf   ×1.5      ×2        3 µs        none         none\n"))
        #expect(out.contains("\nevery setting is the built-in default\n"))
        // The runbooks beside it are checked too.
        #expect(out.hasSuffix("runbooks: 15 runbooks valid, one for every fault class\n"))
    }

    @Test("rules check names a bad runbook header at its line, and a missing runbook")
    func badRunbooks() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("runbooks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = URL(fileURLWithPath: repositoryRules).deletingLastPathComponent().appendingPathComponent("runbooks")
        for name in try FileManager.default.contentsOfDirectory(atPath: source.path) where name != "link.loss.md" {
            try FileManager.default.copyItem(at: source.appendingPathComponent(name), to: directory.appendingPathComponent(name))
        }
        let broken = directory.appendingPathComponent("gpu.down.md")
        let text = try String(contentsOf: broken, encoding: .utf8).replacingOccurrences(of: "release: auto", with: "release: never")
        try text.write(to: broken, atomically: true, encoding: .utf8)
        let (status, _, err) = run(["rules", "check", repositoryRules, "--runbooks", directory.path])
        #expect(status == .dataError)
        #expect(err.contains("\(directory.path)/gpu.down.md:4: release must be auto or manual, got 'never'\n"))
        #expect(err.contains("\(directory.path)/link.loss.md: missing"))
    }

    @Test("a site file overrides single keys; check lists the changes with the line that made each")
    func siteOverride() throws {
        let directory = try RulesDirectory(text: [
            // The repository's file, as a site would copy it: it must sort before the site's.
            "00-default.rules": try String(
                contentsOfFile: repositoryRules + "/00-default.rules", encoding: .utf8),
            "90-site.rules": """
            # Our spines add latency; page less for gray faults.
            [class cross-leaf]
            min-excess-us = 5     # measured
            ceiling-p99-us = 400
            [hysteresis gray]
            open = 4 of 6
            [pair]
            lossy-rate = 2%
            min-samples = 10      # the default, set again: not a change
            """,
            "README.md": "not rules [at all\n",
            ".90-site.rules.swp": "garbage\n",
        ])
        defer { directory.remove() }
        let (status, out, err) = run(["rules", "check", directory.path])
        #expect(err == "")
        #expect(status == .success)
        let site = directory.path + "/90-site.rules"
        #expect(out.hasPrefix("\(directory.path): valid (2 files: 00-default.rules, 90-site.rules)\n\n"))
        #expect(out.contains("\nlossy        ≥ 2% of probes lost, and ≥ 3 lost\n"))
        #expect(out.contains("\ngray faults  open in 4 of 6 windows, close after 3 clean\n"))
        #expect(out.contains("\ncross-leaf   ×1.5      ×2        5 µs        none         400 µs\n"))
        #expect(
            out.hasSuffix(
                """

                4 settings differ from the built-in defaults:
                  [pair] lossy-rate = 0.02, default 0.01 (\(site):8)
                  [class cross-leaf] min-excess-us = 5.0, default 3.0 (\(site):3)
                  [class cross-leaf] ceiling-p99-us = 400.0, default 0 (\(site):4)
                  [hysteresis gray] open = 4 of 6, default 3 of 4 (\(site):6)

                """))

        let (showStatus, shown, showErr) = run(["rules", "show", "--rules", directory.path])
        #expect(showStatus == .success)
        #expect(showErr == "")
        var expected = Rules.defaults
        expected.pathClasses[.crossLeaf]!.minExcessMicros = 5
        expected.pathClasses[.crossLeaf]!.ceilingP99Micros = 400
        expected.grayFault = Hysteresis(openWindows: 4, lookbackWindows: 6, closeAfterClean: 3)
        expected.lossyRate = 0.02
        #expect(shown == expected.canonicalText)
        #expect(shown.contains("\nopen = 4 of 6 "))
    }

    @Test("files apply in bytewise filename order: 10-x before 9-y, so 9-y wins")
    func filenameOrder() throws {
        let directory = try RulesDirectory(text: [
            "9-y.rules": "[window]\ngrace-windows = 3\n",
            "10-x.rules": "[window]\ngrace-windows = 2\n",
        ])
        defer { directory.remove() }
        let (status, out, _) = run(["rules", "check", directory.path + "/"])
        #expect(status == .success)
        #expect(out.hasPrefix("\(directory.path)/: valid (2 files: 10-x.rules, 9-y.rules)\n"))
        #expect(out.contains("\ngrace        3 windows for late reports\n"))
        #expect(out.contains("  [window] grace-windows = 3, default 1 (\(directory.path)/9-y.rules:2)\n"))
        let (_, shown, _) = run(["rules", "show", "--rules", directory.path])
        #expect(shown.contains("\ngrace-windows = 3 "))
    }

    @Test("every error of every file is printed as FILE:LINE: message; then status 65")
    func errorsInTwoFiles() throws {
        let directory = try RulesDirectory([
            "a.rules": Array("[pair]\nmin-samples = 0\n\n[hysteresis hard]\nopen = 3 of 2\n".utf8),
            "b.rules": Array("lossy-rate = 0.5\n[pair]\nmin-samples = ".utf8) + [0xC3, 0x28] + [0x0A],
        ])
        defer { directory.remove() }
        for args in [["rules", "check", directory.path], ["rules", "show", "--rules", directory.path]] {
            let (status, out, err) = run(args)
            #expect(status == .dataError)
            #expect(out == "")
            let a = directory.path + "/a.rules"
            let b = directory.path + "/b.rules"
            #expect(
                err == """
                    \(a):2: min-samples must be a whole number from 1 to 1000000, got '0'
                    \(a):5: open must be 'K of M' windows with 1 ≤ K ≤ M ≤ 64, got '3 of 2'
                    \(b):1: 'lossy-rate' is outside any section; put it under [pair]
                    \(b):3: not valid UTF-8
                    faultline \(args[0]) \(args[1]): 4 errors in \(directory.path)

                    """)
        }
    }

    @Test("one error is counted as one")
    func oneError() throws {
        let directory = try RulesDirectory(text: ["x.rules": "[pairs]\n"])
        defer { directory.remove() }
        let (status, _, err) = run(["rules", "check", directory.path])
        #expect(status == .dataError)
        #expect(err.hasSuffix("faultline rules check: 1 error in \(directory.path)\n"))
        #expect(err.hasPrefix("\(directory.path)/x.rules:1: unknown section '[pairs]'"))
    }

    @Test("check and show take one rules file as well as a directory")
    func singleFile() throws {
        let directory = try RulesDirectory(text: ["site.conf": "[localize]\nmin-independent-reporters = 3\n"])
        defer { directory.remove() }
        let file = directory.path + "/site.conf"
        let (status, out, _) = run(["rules", "check", file])
        #expect(status == .success)
        #expect(out.hasPrefix("\(file): valid (1 file: site.conf)\n"))
        #expect(out.contains("  [localize] min-independent-reporters = 3, default 2 (\(file):2)\n"))
        let (showStatus, shown, _) = run(["rules", "show", "--rules=\(file)"])
        #expect(showStatus == .success)
        #expect(try RulesParser.parse(shown, file: "s").minIndependentReporters == 3)
    }

    @Test("a missing directory, or one without *.rules files, is status 66")
    func noInput() throws {
        let empty = try RulesDirectory(text: ["README.md": "# nothing\n", "old.rules.bak": "[pair]\n"])
        defer { empty.remove() }
        let missing = empty.path + "/nope"
        for (args, message) in [
            (
                ["rules", "check", missing],
                "faultline rules check: cannot open \(missing): no such file or directory\n"
            ),
            (
                ["rules", "show", "--rules", missing],
                "faultline rules show: cannot open \(missing): no such file or directory\n"
            ),
            (["rules", "check", empty.path], "faultline rules check: no *.rules files in \(empty.path)\n"),
        ] {
            let (status, out, err) = run(args)
            #expect(status == .noInput, "\(args)")
            #expect(out == "")
            #expect(err == message)
        }
    }

    @Test("a rules file over 1 MiB is refused with status 65")
    func oversizedFile() throws {
        let directory = try RulesDirectory(text: [
            "big.rules": String(repeating: "# padding\n", count: 110_000)
        ])
        defer { directory.remove() }
        let (status, _, err) = run(["rules", "check", directory.path])
        #expect(status == .dataError)
        #expect(err.contains("over the limit of 1048576"))
    }

    @Test(
        "wrong command lines are usage errors (64) with the usage line",
        arguments: [
            (["rules", "check"], "which rules directory?", "rules check DIR [--runbooks DIR]"),
            (["rules", "check", "a", "b"], "unexpected argument 'b'", "rules check DIR [--runbooks DIR]"),
            (["rules", "check", "--rules", "a"], "unknown option '--rules'", "rules check DIR [--runbooks DIR]"),
            (["rules", "show", "extra"], "unexpected argument 'extra'", "rules show [--rules DIR]"),
            (["rules", "show", "--rules"], "option '--rules' needs a value", "rules show [--rules DIR]"),
            (
                ["rules", "show", "--rules", "a", "--rules", "b"], "option '--rules' given twice",
                "rules show [--rules DIR]"
            ),
        ])
    func usageErrors(args: [String], complaint: String, usage: String) {
        let (status, out, err) = run(args)
        #expect(status == .usage)
        #expect(out == "")
        #expect(err == "faultline \(args[0]) \(args[1]): \(complaint)\nusage: faultline \(usage)\n")
    }

    @Test("help: the group lists both commands, each command explains itself")
    func help() {
        let (status, out, _) = run(["rules", "--help"])
        #expect(status == .success)
        #expect(out == "usage:\n  faultline rules check DIR [--runbooks DIR]\n  faultline rules show [--rules DIR]\n")
        let (checkStatus, checkHelp, _) = run(["rules", "check", "--help"])
        #expect(checkStatus == .success)
        #expect(checkHelp.hasPrefix("usage: faultline rules check DIR [--runbooks DIR]\n\n"))
        #expect(checkHelp.contains("FILE:LINE: message"))
        let (_, rootHelp, _) = run(["--help"])
        #expect(rootHelp.contains("  rules check "))
        #expect(rootHelp.contains("  rules show "))
    }
}
