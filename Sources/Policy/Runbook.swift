// The header block of a runbook (runbooks/<class>.md): what the executor reads of it. An HTML
// comment at the top, so that the Markdown renders without it:
//
//   <!-- faultline
//   severity: high
//   ladder: quarantine; webhook:hw-ticket after 30m
//   release: auto
//   -->
//
// `severity` is critical, high, medium or low; `ladder` the remediation steps in order, each an
// action (`quarantine`, `notify`, `webhook:NAME`, `exec:NAME`) optionally `after` a duration from
// the finding; `release` is `auto` (the policy's clean windows and delay) or `manual` (a human
// releases). Every problem is a `RulesError` at its file and line, like the rules files'.

import Engine

public struct RunbookHeader: Sendable, Equatable {
    public enum Severity: String, Sendable, CaseIterable { case critical, high, medium, low }
    public enum Release: String, Sendable { case auto, manual }

    public struct Step: Sendable, Equatable {
        /// `quarantine`, `notify`, `webhook:NAME` or `exec:NAME`.
        public let action: String
        /// Seconds after the finding opened; 0 for at once.
        public let afterSeconds: Int
    }

    /// The fault class: the file's name without `.md`.
    public let faultClass: String
    public let severity: Severity
    public let ladder: [Step]
    public let release: Release

    /// Parses the header of the runbook `file` (its name gives the class). Throws every problem.
    public static func parse(_ text: String, file: String) throws(InvalidRules) -> RunbookHeader {
        let name = String(file.split(separator: "/").last ?? Substring(file))
        let faultClass = name.hasSuffix(".md") ? String(name.dropLast(3)) : name
        var errors: [RulesError] = []
        func problem(_ line: Int, _ message: String) {
            errors.append(RulesError(location: RulesLocation(file: file, line: line), message: message))
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasSuffix("\r") ? $0.dropLast() : $0
        }
        guard let open = lines.firstIndex(where: { $0.trimmingSpaces == "<!-- faultline" }) else {
            problem(1, "no header block: the runbook must start with '<!-- faultline', then severity, ladder and release lines, then '-->'")
            throw InvalidRules(errors: errors)
        }
        guard let close = lines[(open + 1)...].firstIndex(where: { $0.trimmingSpaces == "-->" }) else {
            problem(open + 1, "the header block is not closed with '-->'")
            throw InvalidRules(errors: errors)
        }
        var values: [String: (value: String, line: Int)] = [:]
        for index in (open + 1)..<close {
            let line = lines[index].trimmingSpaces
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let colon = line.firstIndex(of: ":") else {
                problem(index + 1, "expected 'key: value', got '\(line.prefix(60))'")
                continue
            }
            let key = String(line[..<colon]).trimmingSpaces
            let value = String(line[line.index(after: colon)...]).trimmingSpaces
            guard ["severity", "ladder", "release"].contains(key) else {
                problem(index + 1, "unknown key '\(key.prefix(40))'; the keys are severity, ladder and release")
                continue
            }
            if let first = values[key] {
                problem(index + 1, "\(key) is set twice; first on line \(first.line)")
                continue
            }
            values[key] = (value, index + 1)
        }
        for key in ["severity", "ladder", "release"] where values[key] == nil {
            problem(close + 1, "the header block has no \(key)")
        }
        let severity = values["severity"].flatMap { entry -> Severity? in
            guard let severity = Severity(rawValue: entry.value) else {
                problem(entry.line, "severity must be critical, high, medium or low, got '\(entry.value.prefix(40))'")
                return nil
            }
            return severity
        }
        let release = values["release"].flatMap { entry -> Release? in
            guard let release = Release(rawValue: entry.value) else {
                problem(entry.line, "release must be auto or manual, got '\(entry.value.prefix(40))'")
                return nil
            }
            return release
        }
        var ladder: [Step] = []
        if let entry = values["ladder"] {
            for part in entry.value.split(separator: ";").map({ String($0).trimmingSpaces }) {
                let words = part.split(separator: " ").map(String.init)
                guard let action = words.first, Self.isAction(action) else {
                    problem(entry.line, "a ladder step must be quarantine, notify, webhook:NAME or exec:NAME, got '\(part.prefix(40))'")
                    continue
                }
                var after = 0
                if words.count > 1 {
                    guard words.count == 3, words[1] == "after", let seconds = durationSeconds(words[2]) else {
                        problem(entry.line, "'\(part.prefix(40))': a step is ACTION or ACTION after DURATION (such as 30m)")
                        continue
                    }
                    after = seconds
                }
                if let previous = ladder.last, after < previous.afterSeconds {
                    problem(entry.line, "ladder steps must come in order of time: '\(part.prefix(40))' is earlier than the step before")
                }
                ladder.append(Step(action: action, afterSeconds: after))
            }
            if ladder.isEmpty && errors.isEmpty { problem(entry.line, "the ladder has no step") }
        }
        guard errors.isEmpty, let severity, let release else { throw InvalidRules(errors: errors) }
        return RunbookHeader(faultClass: faultClass, severity: severity, ladder: ladder, release: release)
    }

    private static func isAction(_ word: String) -> Bool {
        if word == "quarantine" || word == "notify" { return true }
        for prefix in ["webhook:", "exec:"] where word.hasPrefix(prefix) {
            let name = word.dropFirst(prefix.count)
            return !name.isEmpty && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        }
        return false
    }
}

extension StringProtocol {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
