// The detection rules' text format (docs/rules.md): parsing rules files over a base (the built-in
// defaults), every problem reported as `file:line: message`, and writing rules back as canonical,
// commented text that parses to the same value. Pure and deterministic: the caller reads the files.

import FleetModel

/// A line of a rules file.
public struct RulesLocation: Sendable, Hashable, CustomStringConvertible {
    /// The file's name as the user should see it (e.g. `rules/90-site.rules`).
    public let file: String
    /// 1-based.
    public let line: Int

    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    public var description: String { "\(file):\(line)" }
}

/// One problem in a rules file; prints as `file:line: message`.
public struct RulesError: Error, Sendable, Equatable, CustomStringConvertible {
    public let location: RulesLocation
    public let message: String

    public init(location: RulesLocation, message: String) {
        self.location = location
        self.message = message
    }

    public var description: String { "\(location): \(message)" }
}

/// Rules files that did not parse: every problem found, in the order of the files and their lines.
public struct InvalidRules: Error, Sendable, Equatable, CustomStringConvertible {
    public let errors: [RulesError]

    public init(errors: [RulesError]) { self.errors = errors }

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// A setting's name: its section as written between the brackets, and its key.
public struct RulesSettingName: Sendable, Hashable, CustomStringConvertible {
    /// e.g. `pair`, `class cross-leaf`, `hysteresis gray`.
    public let section: String
    public let key: String

    public var description: String { "[\(section)] \(key)" }
}

/// One setting with its value in the text format, e.g. `[pair] lossy-rate` = `0.01`.
public struct RulesSetting: Sendable, Equatable {
    public let name: RulesSettingName
    public let value: String
}

/// Applies rules files, one after the other, over a base; collects every problem instead of
/// stopping at the first.
///
/// ```swift
/// var parser = RulesParser()               // over Rules.defaults
/// parser.apply(file: "rules/00-default.rules", bytes: defaultBytes)
/// parser.apply(file: "rules/90-site.rules", bytes: siteBytes)
/// let rules = try parser.result()          // throws InvalidRules with every file:line problem
/// ```
public struct RulesParser: Sendable {
    /// The rules so far: the base with every valid setting of the files applied.
    public private(set) var rules: Rules
    /// Every problem so far.
    public private(set) var errors: [RulesError] = []
    /// Where each setting a file set was last set (a later file overrides an earlier one).
    public private(set) var origins: [RulesSettingName: RulesLocation] = [:]

    /// Starts from `base`; a path class missing from it is taken from `Rules.defaults`, so that the
    /// result always has all four.
    public init(base: Rules = .defaults) {
        var rules = base
        for pathClass in PathClass.allCases where rules.pathClasses[pathClass] == nil {
            rules.pathClasses[pathClass] = Rules.defaults.pathClasses[pathClass]
        }
        self.rules = rules
    }

    /// Parses `text`, rules for one file, over `base`.
    public static func parse(
        _ text: String, file: String, over base: Rules = .defaults
    ) throws(InvalidRules)
        -> Rules
    {
        var parser = RulesParser(base: base)
        parser.apply(file: file, text: text)
        return try parser.result()
    }

    /// The rules, or every problem found.
    public func result() throws(InvalidRules) -> Rules {
        guard errors.isEmpty else { throw InvalidRules(errors: errors) }
        return rules
    }

    public mutating func apply(file: String, text: String) {
        apply(file: file, bytes: Array(text.utf8))
    }

    /// Applies one file's bytes (UTF-8; a leading byte order mark and CRLF line ends are accepted).
    /// `file` is the name errors and origins carry.
    public mutating func apply(file: String, bytes: [UInt8]) {
        var state = FileState()
        var start = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        var lineNumber = 0
        while start < bytes.count {
            let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            var lineBytes = bytes[start..<end]
            start = end + 1
            lineNumber += 1
            if lineBytes.last == UInt8(ascii: "\r") { lineBytes = lineBytes.dropLast() }
            let location = RulesLocation(file: file, line: lineNumber)
            guard let line = String(validating: lineBytes, as: UTF8.self) else {
                errors.append(RulesError(location: location, message: "not valid UTF-8"))
                continue
            }
            if let message = apply(line: line, at: location, state: &state) {
                errors.append(RulesError(location: location, message: message))
            }
        }
    }

    /// What the parser knows while it reads one file.
    private struct FileState {
        enum Place {
            case beforeAnySection
            /// After a header that was wrong: its keys are skipped (the header was reported).
            case badSection
            case inSection(Section)
        }
        var place = Place.beforeAnySection
        /// The line each setting was first set on in this file.
        var firstSet: [RulesSettingName: Int] = [:]
    }

    /// Applies one line; returns what is wrong with it, if anything.
    private mutating func apply(line: String, at location: RulesLocation, state: inout FileState) -> String? {
        let content = trimmed(line.prefix { $0 != "#" })
        if content.isEmpty { return nil }
        if content.hasPrefix("[") {
            guard content.hasSuffix("]") else {
                state.place = .badSection
                return "a section header must end with ']': \(quoted(content))"
            }
            switch Section.parse(content.dropFirst().dropLast()) {
            case .success(let section):
                state.place = .inSection(section)
                return nil
            case .failure(let problem):
                state.place = .badSection
                return problem.message
            }
        }
        guard let equals = content.firstIndex(of: "=") else {
            return "expected 'key = value' or '[section]', got \(quoted(content))"
        }
        let key = String(trimmed(content[..<equals]))
        let value = trimmed(content[content.index(after: equals)...])
        guard !key.isEmpty else { return "missing key before '=' in \(quoted(content))" }
        guard !value.isEmpty else { return "\(quoted(key)) has no value" }
        let section: Section
        switch state.place {
        case .badSection:
            return nil
        case .beforeAnySection:
            return "\(quoted(key)) is outside any section" + Section.hint(for: key, prefix: "; put it under ")
        case .inSection(let current):
            section = current
        }
        guard let setting = section.settings.first(where: { $0.key == key }) else {
            let known = section.settings.map(\.key).joined(separator: ", ")
            return "unknown key \(quoted(key)) in [\(section.header)]"
                + Section.hint(
                    for: key, prefix: "; it belongs under ", orElse: "; the keys here are \(known)")
        }
        let name = RulesSettingName(section: section.header, key: key)
        if let first = state.firstSet[name] {
            return "\(key) is set twice in [\(section.header)]; first on line \(first)"
        }
        state.firstSet[name] = location.line
        switch setting.kind.parse(value) {
        case .success(let parsed):
            setting.set(&rules, parsed)
            origins[name] = location
            return nil
        case .failure(let problem):
            return "\(key) must be \(problem.message), got \(quoted(value))"
        }
    }
}

extension Rules {
    /// Every setting in the canonical order, with its value as the text format writes it.
    public var settings: [RulesSetting] {
        Section.all.flatMap { section in
            section.settings.map { setting in
                RulesSetting(
                    name: RulesSettingName(section: section.header, key: setting.key),
                    value: setting.kind.format(setting.get(self)))
            }
        }
    }

    /// The rules as text: every section in a fixed order, each key with a comment saying what it
    /// means. `RulesParser.parse(rules.canonicalText, ...)` gives back `rules` exactly (numbers are
    /// written in their shortest form that reads back as the same `Double`). A path class missing
    /// from `pathClasses` is written with its defaults.
    public var canonicalText: String {
        var sections: [(comments: [String], header: String, lines: [(text: String, comment: String)])] = []
        for section in Section.all {
            let lines = section.settings.map { setting in
                (text: "\(setting.key) = \(setting.kind.format(setting.get(self)))", comment: setting.comment)
            }
            sections.append((section.comments, section.header, lines))
        }
        let column = sections.flatMap { $0.lines.map(\.text.count) }.max()! + 2
        var out = Section.fileComments.map { $0.isEmpty ? "#\n" : "# \($0)\n" }.joined()
        for section in sections {
            out += "\n"
            for comment in section.comments { out += comment.isEmpty ? "#\n" : "# \(comment)\n" }
            out += "[\(section.header)]\n"
            for line in section.lines {
                out +=
                    line.text + String(repeating: " ", count: column - line.text.count)
                    + "# \(line.comment)\n"
            }
        }
        return out
    }
}

// MARK: - Sections and settings

/// The fault classes that have their own hysteresis.
private enum FaultClass: String, CaseIterable {
    /// Dead pairs, every probe lost.
    case hard
    /// Slow or lossy pairs.
    case gray
}

/// A wrong header or value; `message` reads after "must be" for values.
private struct Problem: Error {
    let message: String
}

/// A section of a rules file.
private enum Section: Equatable {
    case window, pair, localize
    case pathClass(PathClass)
    case hysteresis(FaultClass)
    case guards, approval, release

    /// In the order the canonical text writes them.
    static let all: [Section] =
        [.window, .pair, .localize] + PathClass.allCases.map(Section.pathClass)
        + FaultClass.allCases.map(Section.hysteresis) + [.guards, .approval, .release]

    static let catalog =
        "[window], [pair], [localize], [class <path class>], [hysteresis hard|gray], [guards], [approval], [release]"
    static let classList = PathClass.allCases.map(\.rawValue).joined(separator: ", ")

    /// Between the brackets.
    var header: String {
        switch self {
        case .window: "window"
        case .pair: "pair"
        case .localize: "localize"
        case .pathClass(let pathClass): "class \(pathClass.rawValue)"
        case .hysteresis(let faultClass): "hysteresis \(faultClass.rawValue)"
        case .guards: "guards"
        case .approval: "approval"
        case .release: "release"
        }
    }

    /// Parses what is between the brackets: one or two words separated by spaces or tabs.
    static func parse(_ inner: Substring) -> Result<Section, Problem> {
        let words = inner.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        let written = "[\(words.joined(separator: " "))]"
        guard let kind = words.first else { return .failure(Problem(message: "empty section header '[]'")) }
        switch kind {
        case "window", "pair", "localize", "guards", "approval", "release":
            guard words.count == 1 else {
                return .failure(Problem(message: "section [\(kind)] takes no name, got \(quoted(written))"))
            }
            let plain: [String: Section] = [
                "window": .window, "pair": .pair, "localize": .localize, "guards": .guards, "approval": .approval,
                "release": .release,
            ]
            return .success(plain[kind]!)  // one of the keys matched above
        case "class":
            guard words.count == 2 else {
                return .failure(
                    Problem(
                        message:
                            "section [class NAME] needs one path class (\(classList)), got \(quoted(written))"
                    ))
            }
            guard let pathClass = PathClass(rawValue: words[1]) else {
                return .failure(
                    Problem(message: "unknown path class \(quoted(words[1])); the classes are \(classList)"))
            }
            return .success(.pathClass(pathClass))
        case "hysteresis":
            guard words.count == 2, let faultClass = FaultClass(rawValue: words[1]) else {
                let problem = "hysteresis sections are [hysteresis hard] and [hysteresis gray]"
                return .failure(Problem(message: "\(problem), got \(quoted(written))"))
            }
            return .success(.hysteresis(faultClass))
        default:
            return .failure(
                Problem(message: "unknown section \(quoted(written)); the sections are \(catalog)"))
        }
    }

    /// Where a key belongs, e.g. "; it belongs under [pair]", or `orElse` when no section has it.
    static func hint(for key: String, prefix: String, orElse: String = "") -> String {
        let homes = [
            Section.window, .pair, .localize, .pathClass(.loopback), .hysteresis(.hard), .guards, .approval, .release,
        ]
        guard let home = homes.first(where: { $0.settings.contains { $0.key == key } }) else { return orElse }
        let written =
            switch home {
            case .pathClass: "[class <path class>]"
            case .hysteresis: "[hysteresis hard|gray]"
            default: "[\(home.header)]"
            }
        return prefix + written
    }

    /// The comment lines the canonical text writes above the section's header.
    var comments: [String] {
        switch self {
        case .window:
            ["Windows: reports are grouped by the window they cover."]
        case .pair:
            ["Judging one probed pair in one window: healthy, slow, lossy or dead."]
        case .localize:
            [
                "Blaming a component. Healthy pairs through a component clear it; a component that is",
                "not the reporter's own endpoint or node needs witnesses on several nodes.",
            ]
        case .pathClass(let pathClass):
            switch pathClass {
            case .loopback:
                [
                    "Latency per path class, against the fleet's median for that class in the same window.",
                    "Slow = (p50 above ratio × median p50, or p99 above ratio × median p99) by at least",
                    "min-excess-us; or above an absolute ceiling. Ceilings of 0 mean none.",
                    "",
                    "loopback: a rail probing itself (its NIC and host path only).",
                ]
            case .intraHost: ["intra-host: two rails of the same node."]
            case .sameLeaf: ["same-leaf: rails of two nodes under one leaf switch."]
            case .crossLeaf: ["cross-leaf: through a spine switch."]
            }
        case .hysteresis(let faultClass):
            switch faultClass {
            case .hard:
                [
                    "Hysteresis: when a finding opens and closes, counted in closed windows.",
                    "hard: dead pairs, every probe lost.",
                ]
            case .gray: ["gray: slow or lossy pairs."]
            }
        case .guards:
            [
                "Remediation (docs/remediation.md). Node-scoped findings quarantine their node; switches and",
                "leaf-spine links only notify. Guards every quarantine passes; one that trips holds further",
                "quarantines until an operator resets the breaker. Durations: 90s, 30m, 24h or seconds.",
            ]
        case .approval: ["When a quarantine waits for 'faultline quarantine approve ID'."]
        case .release: ["Back to service, and when a node that keeps failing stays out for a human."]
        }
    }

    /// The comment at the top of the canonical text.
    static let fileComments = [
        "Faultline detection rules.",
        "",
        "'#' starts a comment; [section] headers; 'key = value' lines. The *.rules files of a rules",
        "directory apply in filename order over the built-in defaults, so a site file needs only the",
        "keys it changes. docs/rules.md explains every key; 'faultline rules check DIR' validates.",
    ]

    var settings: [Setting] {
        switch self {
        case .window:
            [
                .count(
                    "grace-windows", 0...16, "windows a window stays open after its end for late reports",
                    \.graceWindows)
            ]
        case .pair:
            [
                .count(
                    "min-samples", 1...1_000_000, "returned probes a pair needs to be judged on latency",
                    \.minSamples),
                Setting(
                    key: "lossy-rate", kind: .fraction,
                    comment: "lossy at this loss rate or more (0.01 = 1%)...",
                    get: { .number($0.lossyRate) }, set: { $0.lossyRate = $1.number }),
                .count(
                    "min-lost-probes", 1...1_000_000, "...with at least this many probes lost",
                    \.minLostProbes),
                .count(
                    "min-probes-for-dead", 1...1_000_000, "dead when all are lost of at least this many sent",
                    \.minProbesForDead),
            ]
        case .localize:
            [
                Setting(
                    key: "min-bad-share", kind: .fraction,
                    comment: "share of the judged pairs through a component that must be bad",
                    get: { .number($0.minBadShare) }, set: { $0.minBadShare = $1.number }),
                .count(
                    "min-independent-reporters", 1...1_000, "reporting nodes a remote component needs",
                    \.minIndependentReporters),
            ]
        case .pathClass(let pathClass):
            [
                .path(
                    pathClass, "slow-p50-ratio", .ratio, "slow when p50 > this × the class's median p50",
                    \.slowP50Ratio),
                .path(
                    pathClass, "slow-p99-ratio", .ratio, "...or p99 > this × the class's median p99",
                    \.slowP99Ratio),
                .path(
                    pathClass, "min-excess-us", .micros, "...by at least this many microseconds",
                    \.minExcessMicros),
                .path(
                    pathClass, "ceiling-p50-us", .micros, "slow whenever p50 is above this (0 = none)",
                    \.ceilingP50Micros),
                .path(
                    pathClass, "ceiling-p99-us", .micros, "slow whenever p99 is above this (0 = none)",
                    \.ceilingP99Micros),
            ]
        case .hysteresis(let faultClass):
            [
                Setting(
                    key: "open", kind: .windows, comment: "open when it holds in K of the last M windows",
                    get: { rules in
                        let h = faultClass.hysteresis(of: rules)
                        return .windows(h.openWindows, of: h.lookbackWindows)
                    },
                    set: { rules, value in
                        guard case .windows(let k, let m) = value else { return }
                        faultClass.update(&rules) {
                            $0.openWindows = k
                            $0.lookbackWindows = m
                        }
                    }),
                Setting(
                    key: "close-after", kind: .count(1...10_000),
                    comment: "close after this many clean windows in a row",
                    get: { .whole(faultClass.hysteresis(of: $0).closeAfterClean) },
                    set: { rules, value in faultClass.update(&rules) { $0.closeAfterClean = value.whole } }),
            ]
        case .guards:
            [
                .policyCount("max-quarantined", 0...100_000, "nodes quarantined at once, at most...", \.maxQuarantined),
                .policyFraction(
                    "max-quarantined-share", "...and this share of the fleet's nodes (the lower wins)",
                    \.maxQuarantinedShare),
                .policyDuration(
                    "leaf-period", "one new quarantine per leaf in this long, unless approved", \.leafPeriodSeconds),
                .policyCount("rate-burst", 1...10_000, "quarantines at once at most (a token bucket)...", \.rateBurst),
                .policyCount("rate-per-hour", 1...100_000, "...refilled at this many an hour", \.ratePerHour),
            ]
        case .approval:
            [
                .policyFraction(
                    "below-confidence", "a finding less confident than this waits for approval",
                    \.approvalBelowConfidence),
                .policyCount(
                    "above-leaf-quarantined", 0...10_000,
                    "so does one leaving more than this many nodes of a leaf out", \.approvalAboveLeafQuarantined),
                .policyDuration(
                    "expires", "an approval, a held or a waiting action lapses after this long",
                    \.approvalExpirySeconds),
            ]
        case .release:
            [
                .policyCount(
                    "clean-windows", 1...100_000, "back to service after this many clean windows in a row...",
                    \.releaseCleanWindows),
                .policyDuration("delay", "...and at least this long after the quarantine", \.releaseDelaySeconds),
                .policyCount(
                    "park-after", 1...1_000, "quarantined this many times within park-period: stays out",
                    \.parkAfterQuarantines),
                .policyDuration("park-period", "the period park-after counts in", \.parkPeriodSeconds),
            ]
        }
    }
}

extension FaultClass {
    func hysteresis(of rules: Rules) -> Hysteresis {
        switch self {
        case .hard: rules.hardFault
        case .gray: rules.grayFault
        }
    }

    func update(_ rules: inout Rules, _ change: (inout Hysteresis) -> Void) {
        switch self {
        case .hard: change(&rules.hardFault)
        case .gray: change(&rules.grayFault)
        }
    }
}

/// A parsed value.
private enum Value: Equatable {
    case whole(Int)
    case number(Double)
    case windows(Int, of: Int)
    case seconds(Int)

    var whole: Int {
        if case .whole(let n) = self { return n }
        preconditionFailure("not a whole number: \(self)")
    }

    var number: Double {
        if case .number(let x) = self { return x }
        preconditionFailure("not a number: \(self)")
    }
}

/// One key of a section: its type and range, and how it reads and writes `Rules`.
private struct Setting {
    let key: String
    let kind: Kind
    /// One line for the canonical text; says what the key means, never its value.
    let comment: String
    let get: (Rules) -> Value
    let set: (inout Rules, Value) -> Void

    enum Kind {
        /// A whole number in the range.
        case count(ClosedRange<Int>)
        /// Seconds from 1 to 30 days, written `45`, `90s`, `30m`, `24h` or `7d`.
        case duration
        /// Above 0, at most 1; written `0.01` or `1%`.
        case fraction
        /// A factor from 1 to 1000.
        case ratio
        /// Microseconds from 0 to 10 seconds.
        case micros
        /// `K of M` with 1 ≤ K ≤ M ≤ 64.
        case windows
    }

    static func count(
        _ key: String, _ range: ClosedRange<Int>, _ comment: String, _ field: WritableKeyPath<Rules, Int>
    ) -> Setting {
        Setting(
            key: key, kind: .count(range), comment: comment, get: { .whole($0[keyPath: field]) },
            set: { $0[keyPath: field] = $1.whole })
    }

    static func policyCount(
        _ key: String, _ range: ClosedRange<Int>, _ comment: String, _ field: WritableKeyPath<PolicyRules, Int>
    ) -> Setting {
        Setting(
            key: key, kind: .count(range), comment: comment, get: { .whole($0.policy[keyPath: field]) },
            set: { $0.policy[keyPath: field] = $1.whole })
    }

    static func policyFraction(
        _ key: String, _ comment: String, _ field: WritableKeyPath<PolicyRules, Double>
    ) -> Setting {
        Setting(
            key: key, kind: .fraction, comment: comment, get: { .number($0.policy[keyPath: field]) },
            set: { $0.policy[keyPath: field] = $1.number })
    }

    static func policyDuration(
        _ key: String, _ comment: String, _ field: WritableKeyPath<PolicyRules, Int>
    ) -> Setting {
        Setting(
            key: key, kind: .duration, comment: comment, get: { .seconds($0.policy[keyPath: field]) },
            set: { rules, value in
                guard case .seconds(let seconds) = value else { return }
                rules.policy[keyPath: field] = seconds
            })
    }

    static func path(
        _ pathClass: PathClass, _ key: String, _ kind: Kind, _ comment: String,
        _ field: WritableKeyPath<PathClassRules, Double>
    ) -> Setting {
        Setting(
            key: key, kind: kind, comment: comment,
            get: { rules in
                .number(
                    (rules.pathClasses[pathClass] ?? Rules.defaults.pathClasses[pathClass]!)[keyPath: field])
            },
            set: { rules, value in
                rules.pathClasses[pathClass, default: Rules.defaults.pathClasses[pathClass]!][
                    keyPath: field] =
                    value.number
            })
    }
}

fileprivate extension Setting.Kind {
    static let maxRatio = 1000.0
    static let maxMicros = 10_000_000.0
    static let maxWindows = 64

    /// What a valid value looks like, to follow "must be".
    var expectation: String {
        switch self {
        case .count(let range): "a whole number from \(range.lowerBound) to \(range.upperBound)"
        case .fraction: "a fraction above 0 and at most 1 (such as 0.01 or 1%)"
        case .ratio: "a ratio from 1 to \(Int(Self.maxRatio))"
        case .micros: "microseconds from 0 to \(Int(Self.maxMicros))"
        case .windows: "'K of M' windows with 1 ≤ K ≤ M ≤ \(Self.maxWindows)"
        case .duration: "a duration from 1 s to 30 days (such as 90s, 30m, 24h, 7d or plain seconds)"
        }
    }

    func parse(_ text: Substring) -> Result<Value, Problem> {
        let wrong = Problem(message: expectation)
        switch self {
        case .count(let range):
            guard let n = wholeNumber(text), range.contains(n) else { return .failure(wrong) }
            return .success(.whole(n))
        case .fraction:
            let value: Double?
            if text.hasSuffix("%") {
                // Shift the decimal point in the text, so that 0.1% reads exactly as 0.001 does.
                let digits = text.dropLast()
                value =
                    digits.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") })
                        && digits.contains(where: \.isNumber)
                    ? Double(digits + "e-2") : nil
            } else {
                value = decimalNumber(text)
            }
            guard let value, value > 0, value <= 1 else { return .failure(wrong) }
            return .success(.number(value))
        case .ratio:
            guard let value = decimalNumber(text), value >= 1, value <= Self.maxRatio else {
                return .failure(wrong)
            }
            return .success(.number(value))
        case .micros:
            guard let value = decimalNumber(text), value >= 0, value <= Self.maxMicros else {
                return .failure(wrong)
            }
            return .success(.number(value))
        case .windows:
            let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count == 3, words[1] == "of", let k = wholeNumber(words[0]),
                let m = wholeNumber(words[2]),
                1 <= k, k <= m, m <= Self.maxWindows
            else { return .failure(wrong) }
            return .success(.windows(k, of: m))
        case .duration:
            guard let seconds = durationSeconds(text) else { return .failure(wrong) }
            return .success(.seconds(seconds))
        }
    }

    func format(_ value: Value) -> String {
        switch value {
        case .whole(let n): "\(n)"
        case .number(let x): x == 0 ? "0" : "\(x)"  // the shortest text that reads back as x
        case .windows(let k, let m): "\(k) of \(m)"
        case .seconds(let seconds):
            // The largest unit that divides it: 3600 is written 1h, 5400 is 90m.
            if seconds % 86_400 == 0 { "\(seconds / 86_400)d" }
            else if seconds % 3600 == 0 { "\(seconds / 3600)h" }
            else if seconds % 60 == 0 { "\(seconds / 60)m" }
            else { "\(seconds)s" }
        }
    }
}

/// A duration of the rules files and runbook headers in seconds: `45`, `90s`, `30m`, `24h` or `7d`,
/// from 1 s to 30 days; nil for anything else.
public func durationSeconds(_ text: some StringProtocol) -> Int? {
    let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
    let unit = text.last.flatMap { units[$0] }
    let digits = Substring(unit == nil ? Substring(text) : Substring(text).dropLast())
    guard let number = wholeNumber(digits), number <= 30 * 86_400 else { return nil }  // no overflow below
    let seconds = number * (unit ?? 1)
    return (1...(30 * 86_400)).contains(seconds) ? seconds : nil
}

/// Plain decimal digits, nothing else (no sign, no underscores).
private func wholeNumber(_ text: Substring) -> Int? {
    guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
    return Int(text)
}

/// A finite decimal number such as `2`, `1.5`, `.5` or `1e-3`; not hex, `inf` or `nan`. Negative
/// zero reads as zero.
private func decimalNumber(_ text: Substring) -> Double? {
    guard text.contains(where: { $0.isASCII && $0.isNumber }),
        text.allSatisfy({ $0.isASCII && ($0.isNumber || ".eE+-".contains($0)) }),
        let value = Double(text), value.isFinite
    else { return nil }
    return value + 0
}

private func trimmed(_ text: Substring) -> Substring {
    let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
    guard let first = text.firstIndex(where: { !isBlank($0) }),
        let last = text.lastIndex(where: { !isBlank($0) })
    else { return "" }
    return text[first...last]
}

/// `'text'` for a message: at most 60 characters, control characters escaped, so that hostile
/// input cannot garble the terminal.
private func quoted(_ text: some StringProtocol) -> String {
    var out = ""
    for (index, scalar) in text.unicodeScalars.enumerated() {
        if index == 60 {
            out += "…"
            break
        }
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator:
            out += "\\u{\(String(scalar.value, radix: 16))}"
        default:
            out.unicodeScalars.append(scalar)
        }
    }
    return "'\(out)'"
}
