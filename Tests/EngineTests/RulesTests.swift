// The rules text format: the built-in defaults equal rules/00-default.rules, files override in order,
// every kind of mistake is reported with its file and line, and written rules parse back exactly.

import FleetModel
import Foundation
import Simulation
import Testing

@testable import Engine

/// The repository's rules/00-default.rules, found from this file's place in the source tree.
private func repositoryDefaultRules() throws -> [UInt8] {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    return [UInt8](try Data(contentsOf: root.appendingPathComponent("rules/00-default.rules")))
}

/// Parses `text` as one file named `t.rules` over the defaults and returns its problems as
/// "LINE: message" (the file name is checked once, in `errorsNameTheFileAndLine`).
private func problems(_ text: String) -> [String] {
    var parser = RulesParser()
    parser.apply(file: "t.rules", text: text)
    return parser.errors.map { "\($0.location.line): \($0.message)" }
}

@Suite("rules")
struct RulesTests {
    @Test("the built-in defaults are the documented values")
    func defaultsAreTheDocumentedValues() throws {
        let rules = Rules.defaults
        #expect(rules.graceWindows == 1)
        #expect(rules.minSamples == 10)
        #expect(rules.lossyRate == 0.01)
        #expect(rules.minLostProbes == 3)
        #expect(rules.minProbesForDead == 5)
        #expect(rules.minBadShare == 0.6)
        #expect(rules.minIndependentReporters == 2)
        #expect(rules.pathClasses.keys.sorted() == PathClass.allCases)
        let excess: [PathClass: Double] = [.loopback: 1.0, .intraHost: 1.5, .sameLeaf: 2.0, .crossLeaf: 3.0]
        for pathClass in PathClass.allCases {
            let c = try #require(rules.pathClasses[pathClass])
            #expect(
                c
                    == PathClassRules(
                        slowP50Ratio: 1.5, slowP99Ratio: 2.0, minExcessMicros: excess[pathClass]!,
                        ceilingP50Micros: 0, ceilingP99Micros: 0), "\(pathClass)")
        }
        #expect(rules.hardFault == Hysteresis(openWindows: 2, lookbackWindows: 3, closeAfterClean: 3))
        #expect(rules.grayFault == Hysteresis(openWindows: 3, lookbackWindows: 4, closeAfterClean: 3))
    }

    @Test("rules/00-default.rules parses to exactly the built-in defaults")
    func repositoryFileIsTheDefaults() throws {
        // Over a base that differs in every setting, so that the file must set every key itself.
        var base = Rules.defaults
        base.graceWindows = 7
        base.minSamples = 99
        base.lossyRate = 0.5
        base.minLostProbes = 99
        base.minProbesForDead = 99
        base.minBadShare = 0.99
        base.minIndependentReporters = 9
        for pathClass in PathClass.allCases {
            base.pathClasses[pathClass] = PathClassRules(
                slowP50Ratio: 9, slowP99Ratio: 9, minExcessMicros: 99, ceilingP50Micros: 999,
                ceilingP99Micros: 999)
        }
        base.hardFault = Hysteresis(openWindows: 9, lookbackWindows: 9, closeAfterClean: 9)
        base.grayFault = Hysteresis(openWindows: 9, lookbackWindows: 9, closeAfterClean: 9)

        var parser = RulesParser(base: base)
        parser.apply(file: "rules/00-default.rules", bytes: try repositoryDefaultRules())
        #expect(parser.errors == [])
        #expect(parser.rules == Rules.defaults)
        #expect(parser.origins.count == Rules.defaults.settings.count)
    }

    @Test("the canonical text of the defaults parses back to the defaults")
    func canonicalDefaultsRoundTrip() throws {
        let text = Rules.defaults.canonicalText
        #expect(try RulesParser.parse(text, file: "x.rules", over: Rules.defaults) == Rules.defaults)
        // Every line is a comment, blank, a header or one `key = value` with its comment.
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            #expect(line.isEmpty || line.hasPrefix("#") || line.hasPrefix("[") || line.contains(" = "))
            #expect(!line.hasSuffix(" "), "trailing blank: \(line)")
        }
        #expect(text.hasSuffix("\n"))
    }

    @Test("written rules parse back equal, for many random valid rules", arguments: 0..<200)
    func randomRoundTrip(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        func number(_ range: ClosedRange<Double>) -> Double {
            // Mix short decimals with full-precision doubles and the ends of the range.
            switch Int.random(in: 0..<4, using: &random) {
            case 0: range.lowerBound
            case 1: range.upperBound
            case 2: (Double.random(in: range, using: &random) * 100).rounded() / 100
            default: Double.random(in: range, using: &random)
            }
        }
        func fraction() -> Double {
            let x = number(0...1)
            return x == 0 ? Double.leastNonzeroMagnitude : x
        }
        func hysteresis() -> Hysteresis {
            let lookback = Int.random(in: 1...64, using: &random)
            return Hysteresis(
                openWindows: Int.random(in: 1...lookback, using: &random), lookbackWindows: lookback,
                closeAfterClean: Int.random(in: 1...10_000, using: &random))
        }
        var rules = Rules.defaults
        rules.graceWindows = Int.random(in: 0...16, using: &random)
        rules.minSamples = Int.random(in: 1...1_000_000, using: &random)
        rules.lossyRate = fraction()
        rules.minLostProbes = Int.random(in: 1...1_000_000, using: &random)
        rules.minProbesForDead = Int.random(in: 1...1_000_000, using: &random)
        rules.minBadShare = fraction()
        rules.minIndependentReporters = Int.random(in: 1...1_000, using: &random)
        for pathClass in PathClass.allCases {
            rules.pathClasses[pathClass] = PathClassRules(
                slowP50Ratio: number(1...1000), slowP99Ratio: number(1...1000),
                minExcessMicros: number(0...10_000_000), ceilingP50Micros: number(0...10_000_000),
                ceilingP99Micros: number(0...1e-3))
        }
        rules.hardFault = hysteresis()
        rules.grayFault = hysteresis()

        let text = rules.canonicalText
        #expect(try RulesParser.parse(text, file: "r.rules") == rules)
        // Writing is a function of the value alone.
        #expect(try RulesParser.parse(text, file: "r.rules").canonicalText == text)
    }

    @Test("a later file overrides single keys of an earlier one; origins name the last setter")
    func laterFilesOverride() throws {
        var parser = RulesParser()
        parser.apply(
            file: "00-base.rules",
            text: """
                [pair]
                lossy-rate = 0.02
                min-samples = 20
                [class cross-leaf]
                min-excess-us = 5
                """)
        parser.apply(
            file: "90-site.rules",
            text: """
                # this site's spines are slower
                [class cross-leaf]
                min-excess-us = 8.5   # measured in March
                [pair]
                lossy-rate = 5%
                """)
        let rules = try parser.result()
        var expected = Rules.defaults
        expected.lossyRate = 0.05
        expected.minSamples = 20
        expected.pathClasses[.crossLeaf]!.minExcessMicros = 8.5
        #expect(rules == expected)
        #expect(
            parser.origins[RulesSettingName(section: "pair", key: "min-samples")]?.description
                == "00-base.rules:3")
        #expect(
            parser.origins[RulesSettingName(section: "pair", key: "lossy-rate")]?.description
                == "90-site.rules:5")
        #expect(
            parser.origins[RulesSettingName(section: "class cross-leaf", key: "min-excess-us")]?.description
                == "90-site.rules:3")
        #expect(parser.origins[RulesSettingName(section: "window", key: "grace-windows")] == nil)
    }

    @Test("comments, blank lines, tabs, CRLF, a byte order mark and a repeated section are fine")
    func layoutIsFree() throws {
        let text =
            "\u{FEFF}# site rules\r\n\r\n  [ class\tsame-leaf ]  # header comment\r\n\tmin-excess-us=2.5#no space\r\n"
            + "[pair]\nmin-samples = 12\n\n   # indented comment\n[class same-leaf]\nslow-p99-ratio = 3\n"
        let rules = try RulesParser.parse(text, file: "t.rules")
        var expected = Rules.defaults
        expected.pathClasses[.sameLeaf]!.minExcessMicros = 2.5
        expected.pathClasses[.sameLeaf]!.slowP99Ratio = 3
        expected.minSamples = 12
        #expect(rules == expected)
        #expect(try RulesParser.parse("", file: "empty.rules") == Rules.defaults)
        #expect(try RulesParser.parse("# nothing but comments\n\n", file: "c.rules") == Rules.defaults)
    }

    @Test("fractions read as decimals or percentages, exactly")
    func fractions() throws {
        for (text, value) in [
            ("1%", 0.01), ("0.1%", 0.001), ("100%", 1.0), ("60%", 0.6), ("0.07", 0.07), ("1", 1.0),
            ("7e-3", 0.007),
        ] {
            let rules = try RulesParser.parse("[pair]\nlossy-rate = \(text)\n", file: "t.rules")
            #expect(rules.lossyRate == value, "\(text)")
        }
        #expect(problems("[localize]\nmin-bad-share = 0%\n").count == 1)
        #expect(problems("[localize]\nmin-bad-share = 101%\n").count == 1)
        #expect(problems("[localize]\nmin-bad-share = 1e1%\n").count == 1)
        #expect(problems("[localize]\nmin-bad-share = %\n").count == 1)
        #expect(problems("[class loopback]\nmin-excess-us = 5%\n").count == 1)  // only fractions take %
    }

    struct Mistake: Sendable, CustomTestStringConvertible {
        let text: String
        /// "LINE: message".
        let problem: String
        var testDescription: String { problem }
    }

    static let mistakes: [Mistake] = [
        // Structure.
        Mistake(
            text: "# site\nmin-samples = 3\n",
            problem: "2: 'min-samples' is outside any section; put it under [pair]"),
        Mistake(
            text: "open = 2 of 3\n",
            problem: "1: 'open' is outside any section; put it under [hysteresis hard|gray]"),
        Mistake(text: "zzz = 3\n", problem: "1: 'zzz' is outside any section"),
        Mistake(
            text: "[pair]\n\nmin-samples 10\n",
            problem: "3: expected 'key = value' or '[section]', got 'min-samples 10'"),
        Mistake(text: "[pair]\n= 10\n", problem: "2: missing key before '=' in '= 10'"),
        Mistake(text: "[pair]\nmin-samples =   # forgot\n", problem: "2: 'min-samples' has no value"),
        Mistake(text: "[pair\n", problem: "1: a section header must end with ']': '[pair'"),
        Mistake(text: "[pair] x\n", problem: "1: a section header must end with ']': '[pair] x'"),
        Mistake(text: "[]\n", problem: "1: empty section header '[]'"),
        Mistake(
            text: "\n[thresholds]\n",
            problem:
                "2: unknown section '[thresholds]'; the sections are [window], [pair], [localize], [class <path class>], [hysteresis hard|gray], [guards], [approval], [release]"
        ),
        Mistake(
            text: "[Pair]\n",
            problem:
                "1: unknown section '[Pair]'; the sections are [window], [pair], [localize], [class <path class>], [hysteresis hard|gray], [guards], [approval], [release]"
        ),
        Mistake(text: "[pair extra]\n", problem: "1: section [pair] takes no name, got '[pair extra]'"),
        Mistake(
            text: "[class]\n",
            problem:
                "1: section [class NAME] needs one path class (loopback, intra-host, same-leaf, cross-leaf), got '[class]'"
        ),
        Mistake(
            text: "[class spine]\n",
            problem:
                "1: unknown path class 'spine'; the classes are loopback, intra-host, same-leaf, cross-leaf"),
        Mistake(
            text: "[class same-leaf cross-leaf]\n",
            problem:
                "1: section [class NAME] needs one path class (loopback, intra-host, same-leaf, cross-leaf), got '[class same-leaf cross-leaf]'"
        ),
        Mistake(
            text: "[hysteresis soft]\n",
            problem:
                "1: hysteresis sections are [hysteresis hard] and [hysteresis gray], got '[hysteresis soft]'"),
        Mistake(
            text: "[hysteresis]\n",
            problem: "1: hysteresis sections are [hysteresis hard] and [hysteresis gray], got '[hysteresis]'"),
        // Keys.
        Mistake(
            text: "[pair]\nmin-sample = 3\n",
            problem:
                "2: unknown key 'min-sample' in [pair]; the keys here are min-samples, lossy-rate, min-lost-probes, min-probes-for-dead"
        ),
        Mistake(
            text: "[window]\nlossy-rate = 0.02\n",
            problem: "2: unknown key 'lossy-rate' in [window]; it belongs under [pair]"),
        Mistake(
            text: "[pair]\nslow-p99-ratio = 3\n",
            problem: "2: unknown key 'slow-p99-ratio' in [pair]; it belongs under [class <path class>]"),
        Mistake(
            text: "[pair]\nmin-samples = 10\nlossy-rate = 0.02\n\nmin-samples = 12\n",
            problem: "5: min-samples is set twice in [pair]; first on line 2"),
        Mistake(
            text: "[class loopback]\nceiling-p99-us = 9\n[pair]\n[class loopback]\nceiling-p99-us = 10\n",
            problem: "5: ceiling-p99-us is set twice in [class loopback]; first on line 2"),
        // Types and ranges.
        Mistake(
            text: "[window]\ngrace-windows = 17\n",
            problem: "2: grace-windows must be a whole number from 0 to 16, got '17'"),
        Mistake(
            text: "[pair]\nmin-samples = 10.5\n",
            problem: "2: min-samples must be a whole number from 1 to 1000000, got '10.5'"),
        Mistake(
            text: "[pair]\nmin-samples = 0\n",
            problem: "2: min-samples must be a whole number from 1 to 1000000, got '0'"),
        Mistake(
            text: "[pair]\nmin-lost-probes = -3\n",
            problem: "2: min-lost-probes must be a whole number from 1 to 1000000, got '-3'"),
        Mistake(
            text: "[pair]\nmin-probes-for-dead = five\n",
            problem: "2: min-probes-for-dead must be a whole number from 1 to 1000000, got 'five'"),
        Mistake(
            text: "[pair]\nmin-samples = 99999999999999999999999\n",
            problem: "2: min-samples must be a whole number from 1 to 1000000, got '99999999999999999999999'"),
        Mistake(
            text: "[localize]\nmin-independent-reporters = 0\n",
            problem: "2: min-independent-reporters must be a whole number from 1 to 1000, got '0'"),
        Mistake(
            text: "[pair]\nlossy-rate = 0\n",
            problem: "2: lossy-rate must be a fraction above 0 and at most 1 (such as 0.01 or 1%), got '0'"),
        Mistake(
            text: "[pair]\nlossy-rate = 1.01\n",
            problem: "2: lossy-rate must be a fraction above 0 and at most 1 (such as 0.01 or 1%), got '1.01'"
        ),
        Mistake(
            text: "[localize]\nmin-bad-share = nan\n",
            problem:
                "2: min-bad-share must be a fraction above 0 and at most 1 (such as 0.01 or 1%), got 'nan'"),
        Mistake(
            text: "[class intra-host]\nslow-p50-ratio = 0.9\n",
            problem: "2: slow-p50-ratio must be a ratio from 1 to 1000, got '0.9'"),
        Mistake(
            text: "[class intra-host]\nslow-p99-ratio = inf\n",
            problem: "2: slow-p99-ratio must be a ratio from 1 to 1000, got 'inf'"),
        Mistake(
            text: "[class intra-host]\nslow-p99-ratio = 0x1p1\n",
            problem: "2: slow-p99-ratio must be a ratio from 1 to 1000, got '0x1p1'"),
        Mistake(
            text: "[class intra-host]\nslow-p99-ratio = 2 x\n",
            problem: "2: slow-p99-ratio must be a ratio from 1 to 1000, got '2 x'"),
        Mistake(
            text: "[class cross-leaf]\nmin-excess-us = -1\n",
            problem: "2: min-excess-us must be microseconds from 0 to 10000000, got '-1'"),
        Mistake(
            text: "[class cross-leaf]\nceiling-p50-us = 1e8\n",
            problem: "2: ceiling-p50-us must be microseconds from 0 to 10000000, got '1e8'"),
        Mistake(
            text: "[class cross-leaf]\nceiling-p99-us = 20us\n",
            problem: "2: ceiling-p99-us must be microseconds from 0 to 10000000, got '20us'"),
        Mistake(
            text: "[hysteresis hard]\nopen = 4 of 3\n",
            problem: "2: open must be 'K of M' windows with 1 ≤ K ≤ M ≤ 64, got '4 of 3'"),
        Mistake(
            text: "[hysteresis hard]\nopen = 0 of 3\n",
            problem: "2: open must be 'K of M' windows with 1 ≤ K ≤ M ≤ 64, got '0 of 3'"),
        Mistake(
            text: "[hysteresis gray]\nopen = 3 of 65\n",
            problem: "2: open must be 'K of M' windows with 1 ≤ K ≤ M ≤ 64, got '3 of 65'"),
        Mistake(
            text: "[hysteresis gray]\nopen = 3/4\n",
            problem: "2: open must be 'K of M' windows with 1 ≤ K ≤ M ≤ 64, got '3/4'"),
        Mistake(
            text: "[hysteresis gray]\nopen = 3\n",
            problem: "2: open must be 'K of M' windows with 1 ≤ K ≤ M ≤ 64, got '3'"),
        Mistake(
            text: "[hysteresis gray]\nclose-after = 0\n",
            problem: "2: close-after must be a whole number from 1 to 10000, got '0'"),
        // Hostile bytes: quoted safely.
        Mistake(
            text: "[pair]\nmin-samples = \u{1B}[31mred\n",
            problem: "2: min-samples must be a whole number from 1 to 1000000, got '\\u{1b}[31mred'"),
        Mistake(
            text: "[pair]\nmin-samples = \(String(repeating: "9", count: 100))\n",
            problem:
                "2: min-samples must be a whole number from 1 to 1000000, got '\(String(repeating: "9", count: 60))…'"
        ),
    ]

    @Test("every kind of mistake is reported once, with its line", arguments: mistakes)
    func mistakeIsReported(mistake: Mistake) {
        #expect(problems(mistake.text) == [mistake.problem])
    }

    @Test("errors name the file and line; the parse fails with all of them")
    func errorsNameTheFileAndLine() throws {
        #expect(throws: InvalidRules.self) {
            try RulesParser.parse("[pair]\nmin-samples = 0\n", file: "a.rules")
        }
        do {
            _ = try RulesParser.parse("[pair]\nmin-samples = 0\n[nope]\n", file: "rules/90-site.rules")
            Issue.record("parsed")
        } catch {
            #expect(
                error.description == """
                    rules/90-site.rules:2: min-samples must be a whole number from 1 to 1000000, got '0'
                    rules/90-site.rules:3: unknown section '[nope]'; the sections are [window], [pair], [localize], [class <path class>], [hysteresis hard|gray], [guards], [approval], [release]
                    """)
        }
    }

    @Test("every problem in every file is reported; keys under a bad header are not")
    func allProblemsAcrossFiles() {
        var parser = RulesParser()
        parser.apply(
            file: "10-a.rules",
            text: """
                [pair]
                min-samples = ten
                lossy-rate = 0.02
                [clas loopback]
                whatever = 1
                also = 2
                [hysteresis hard]
                open = 9 of 3
                """)
        parser.apply(
            file: "20-b.rules",
            bytes: Array("[window]\ngrace-windows = 2\n".utf8) + [0xFF, 0x0A] + Array("x\n".utf8))
        #expect(
            parser.errors.map(\.description) == [
                "10-a.rules:2: min-samples must be a whole number from 1 to 1000000, got 'ten'",
                "10-a.rules:4: unknown section '[clas loopback]'; the sections are [window], [pair], [localize], [class <path class>], [hysteresis hard|gray], [guards], [approval], [release]",
                "10-a.rules:8: open must be 'K of M' windows with 1 ≤ K ≤ M ≤ 64, got '9 of 3'",
                "20-b.rules:3: not valid UTF-8",
                "20-b.rules:4: expected 'key = value' or '[section]', got 'x'",
            ])
        // The valid settings still applied, for a caller that wants to show them.
        #expect(parser.rules.lossyRate == 0.02)
        #expect(parser.rules.graceWindows == 2)
        #expect(throws: InvalidRules.self) { try parser.result() }
    }

    @Test("the same key in two files is an override, not a duplicate")
    func sameKeyInTwoFiles() throws {
        var parser = RulesParser()
        parser.apply(file: "a.rules", text: "[hysteresis gray]\nopen = 2 of 5\nclose-after = 6\n")
        parser.apply(file: "b.rules", text: "[hysteresis gray]\nopen = 4 of 6\n")
        let rules = try parser.result()
        #expect(rules.grayFault == Hysteresis(openWindows: 4, lookbackWindows: 6, closeAfterClean: 6))
        #expect(rules.hardFault == Rules.defaults.hardFault)
    }

    @Test("a base without some path classes gets them from the defaults")
    func missingPathClassesAreFilled() throws {
        var base = Rules.defaults
        base.pathClasses = [
            .crossLeaf: PathClassRules(
                slowP50Ratio: 3, slowP99Ratio: 4, minExcessMicros: 5, ceilingP50Micros: 6, ceilingP99Micros: 7
            )
        ]
        let rules = try RulesParser.parse(
            "[class loopback]\nceiling-p50-us = 40\n", file: "t.rules", over: base)
        #expect(rules.pathClasses.keys.sorted() == PathClass.allCases)
        #expect(rules.pathClasses[.crossLeaf] == base.pathClasses[.crossLeaf])
        #expect(rules.pathClasses[.sameLeaf] == Rules.defaults.pathClasses[.sameLeaf])
        #expect(rules.pathClasses[.loopback]?.ceilingP50Micros == 40)
        // Written out, such a value is complete.
        #expect(try RulesParser.parse(base.canonicalText, file: "w.rules").pathClasses.count == 4)
    }

    @Test("the policy's settings read durations and shares, and refuse what is out of range")
    func policySettings() throws {
        let rules = try RulesParser.parse(
            "[guards]\nmax-quarantined = 4\nmax-quarantined-share = 5%\nleaf-period = 90m\n"
                + "[approval]\nexpires = 45\n[release]\ndelay = 2h\npark-period = 7d\n",
            file: "90-site.rules")
        #expect(rules.policy.maxQuarantined == 4)
        #expect(rules.policy.maxQuarantinedShare == 0.05)
        #expect(rules.policy.leafPeriodSeconds == 5400)
        #expect(rules.policy.approvalExpirySeconds == 45)
        #expect(rules.policy.releaseDelaySeconds == 7200)
        #expect(rules.policy.parkPeriodSeconds == 7 * 86_400)
        // Written back in the largest unit that divides, and read again to the same value.
        #expect(rules.canonicalText.contains("leaf-period = 90m"))
        #expect(try RulesParser.parse(rules.canonicalText, file: "w.rules") == rules)
        for bad in ["0", "31d", "1w", "-5m", "m", "1.5h", "2592001"] {
            #expect(throws: InvalidRules.self, "\(bad)") {
                try RulesParser.parse("[release]\ndelay = \(bad)\n", file: "x.rules")
            }
        }
    }

    @Test("settings are listed in the canonical order with their written values")
    func settingsList() {
        let settings = Rules.defaults.settings
        #expect(settings.count == 1 + 4 + 2 + 4 * 5 + 2 * 2 + 5 + 3 + 4)
        #expect(
            settings.first
                == RulesSetting(name: RulesSettingName(section: "window", key: "grace-windows"), value: "1"))
        #expect(settings.map(\.name.description).contains("[class intra-host] min-excess-us"))
        #expect(
            settings.last
                == RulesSetting(name: RulesSettingName(section: "release", key: "park-period"), value: "1d"))
        #expect(
            settings.first { $0.name == RulesSettingName(section: "hysteresis gray", key: "close-after") }?.value == "3")
        #expect(
            settings.first { $0.name == RulesSettingName(section: "hysteresis hard", key: "open") }?.value
                == "2 of 3")
    }
}
