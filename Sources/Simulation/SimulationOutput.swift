// How a simulation's result is shown: a readable table for people and one JSON object for programs
// (`faultline simulate` and the SimulationTests log). Both are built in a fixed order, so the same
// run always prints the same bytes.

import Engine
import FleetModel
import Foundation

extension SimulationResult {
    /// One JSON object: the run, the engine's counters, the score, every fault's outcome, the false
    /// findings with the reason, and every finding event as the engine wrote it.
    public var jsonText: String {
        let card = scorecard
        let score = card.score
        func count(_ value: Int) -> JSONValue { .number(Double(value)) }
        func ratio(_ value: Double?) -> JSONValue {
            value.map { .number(($0 * 10_000).rounded() / 10_000) } ?? .null
        }
        func kind(_ entry: KindScore) -> JSONValue {
            .object([
                "findings": count(entry.findings), "correct": count(entry.correct),
                "precision": ratio(entry.precision),
                "faults": count(entry.faults), "detected": count(entry.detected),
                "recall": ratio(entry.recall),
            ])
        }
        func detection(_ times: [Int], faults: Int) -> JSONValue {
            .object([
                "faults": count(faults), "detected": count(times.count), "median": ratio(medianOf(times)),
                "max": times.last.map(count) ?? .null,
            ])
        }
        var kinds: [String: JSONValue] = [:]
        for entry in score.kinds { kinds[entry.kind] = kind(entry) }
        kinds["all"] = kind(score.total)
        let scoreValue = JSONValue.object([
            "kinds": .object(kinds),
            "timeToDetect": .object([
                "hard": detection(score.hardDetectionTimes, faults: score.hardFaults),
                "gray": detection(score.grayDetectionTimes, faults: score.grayFaults),
            ]),
            "faultFree": .object([
                "falseFindings": count(score.faultFreeFindings),
                "componentWindows": count(score.faultFreeComponentWindows),
                "perThousandComponentWindows": ratio(score.falseFindingsPerThousand),
            ]),
        ])
        let faultValues = card.faults.map { outcome -> JSONValue in
            let fault = outcome.fault
            var entry: [String: JSONValue] = [
                "index": count(fault.index), "kind": .string(fault.fault.kind.rawValue),
                "target": .string(fault.fault.target), "start": count(fault.fault.start),
                "end": count(fault.fault.end),
                "label": .string(fault.label), "findings": count(outcome.findings),
                "detectedAt": outcome.detectedAt.map(count) ?? .null,
                "timeToDetect": outcome.timeToDetect.map(count) ?? .null,
            ]
            entry["component"] = fault.component.map { .string($0.description) } ?? .null
            entry["effect"] = fault.fault.effect.map { .string($0.rawValue) } ?? .null
            if !outcome.isFindable { entry["findable"] = .bool(false) }
            return .object(entry)
        }
        let falseValues = card.findings.filter { !$0.isCorrect }.map { scored -> JSONValue in
            .object([
                "window": count(scored.window), "component": .string(scored.finding.component.description),
                "kind": .string(scored.finding.component.kind), "class": .string(scored.finding.faultClass),
                "why": .string(scored.mistake ?? ""),
            ])
        }
        let engine = JSONValue.object([
            "reportsAccepted": count(counters.reportsAccepted), "reportsLate": count(counters.reportsLate),
            "reportsDuplicate": count(counters.reportsDuplicate), "pairsJudged": count(counters.pairsJudged),
            "pairsInvalidSketch": count(counters.pairsInvalidSketch),
            "pairsInvalidPath": count(counters.pairsInvalidPath),
            "pairsUnknownEndpoint": count(counters.pairsUnknownEndpoint),
            "windowsClosed": count(counters.windowsClosed),
            "noisyReporterWindows": count(counters.noisyReporterWindows),
        ])
        var lines = [
            "{\"scenario\": \(JSONValue.string(scenario.name).jsonText), \"seed\": \(scenario.seed), "
                + "\"nodes\": \(nodes), \"endpoints\": \(endpoints), \"plannedPairs\": \(plannedPairs), "
                + "\"windows\": \(scenario.windows), \"windowSeconds\": \(scenario.windowSeconds), \"reports\": \(reports),",
            " \"engine\": \(engine.jsonText),",
            " \"score\": \(scoreValue.jsonText),",
            " \"faults\": \(JSONValue.array(faultValues).jsonText),",
            " \"falseFindings\": \(JSONValue.array(falseValues).jsonText),",
        ]
        if findings.isEmpty {
            lines.append(" \"findings\": []}")
        } else {
            lines.append(" \"findings\": [")
            for (i, finding) in findings.enumerated() {
                lines.append("  " + finding.jsonLine + (i + 1 < findings.count ? "," : ""))
            }
            lines.append(" ]}")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The score as a table, then every fault's outcome and every false finding with the reason.
    public var text: String {
        let card = scorecard
        let score = card.score
        var out = """
            scenario \(scenario.name): \(grouped(nodes)) nodes, \(grouped(endpoints)) endpoints, \
            \(grouped(plannedPairs)) planned pairs; \(scenario.windows) windows of \(scenario.windowSeconds) s; \
            \(grouped(reports)) reports
            engine: \(grouped(counters.pairsJudged)) pairs judged; \(counters.pairsInvalidSketch) invalid sketches, \
            \(counters.pairsInvalidPath) invalid paths, \(counters.pairsUnknownEndpoint) unknown endpoints, \
            \(counters.reportsLate) late reports; \(counters.noisyReporterWindows) noisy reporter-windows


            """
        out += Self.scoreTable(score)
        out += "\nfaults:\n"
        if card.faults.isEmpty { out += "  none\n" }
        for outcome in card.faults {
            let fault = outcome.fault
            var line = "  #\(fault.index) \(fault.label), windows \(fault.fault.start)..<\(fault.fault.end): "
            if !outcome.isFindable {
                line += "not a fault to find"
            } else if let at = outcome.detectedAt, let time = outcome.timeToDetect {
                line +=
                    "found in window \(at) (\(time) window\(time == 1 ? "" : "s")), \(outcome.findings) finding\(outcome.findings == 1 ? "" : "s")"
            } else {
                line += "MISSED"
            }
            out += line + "\n"
        }
        let wrong = card.findings.filter { !$0.isCorrect }
        out += "false findings: \(wrong.isEmpty ? "none" : String(wrong.count))\n"
        for scored in wrong {
            out +=
                "  window \(scored.window)  \(scored.finding.component)  \(scored.finding.faultClass)  "
                + "\(scored.mistake ?? "")\n"
        }
        return out
    }

    /// Precision and recall per kind, time to detect and the fault-free false-finding rate.
    public static func scoreTable(_ score: Score) -> String {
        func cell(_ text: String, _ width: Int) -> String {
            String(repeating: " ", count: max(0, width - text.count)) + text
        }
        func ratio(_ value: Double?) -> String {
            guard let value else { return "-" }
            let text = "\((value * 1000).rounded() / 1000)"
            let parts = text.split(separator: ".")
            return parts.count == 2 ? "\(parts[0]).\(parts[1].padding(3))" : text
        }
        var out = "kind     findings  right  precision   faults  found  recall\n"
        for entry in score.kinds + [score.total] {
            out +=
                entry.kind.padding(toLength: 8, withPad: " ", startingAt: 0) + cell("\(entry.findings)", 9)
                + cell("\(entry.correct)", 7) + cell(ratio(entry.precision), 11) + cell("\(entry.faults)", 9)
                + cell("\(entry.detected)", 7) + cell(ratio(entry.recall), 8) + "\n"
        }
        func detection(_ name: String, _ times: [Int], _ faults: Int) -> String {
            guard let median = medianOf(times), let maximum = times.last else {
                return "\(name) \(times.count) of \(faults) found"
            }
            return "\(name) \(times.count) of \(faults) found, median \(shortNumber(median)), max \(maximum)"
        }
        out +=
            "time to detect (windows): \(detection("hard", score.hardDetectionTimes, score.hardFaults)); "
            + "\(detection("gray", score.grayDetectionTimes, score.grayFaults))\n"
        let rate = score.falseFindingsPerThousand.map { "\(($0 * 1000).rounded() / 1000)" } ?? "-"
        out +=
            "false findings in fault-free windows: \(score.faultFreeFindings) in "
            + "\(grouped(score.faultFreeComponentWindows)) component-windows (\(rate) per 1,000)\n"
        return out
    }
}

extension Substring {
    /// Right-padded with zeros to `length` characters.
    fileprivate func padding(_ length: Int) -> String {
        String(self) + String(repeating: "0", count: Swift.max(0, length - count))
    }
}

/// `12,345`.
func grouped(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var out = ""
    for (i, digit) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(digit)
    }
    return value < 0 ? "-" + out : out
}
