// `faultline report` (docs/reports.md): the weekly fleet health report from the service's store,
// as one self-contained HTML file, Markdown with its charts as SVG files beside it, or JSON.

import FleetModel
import Foundation
import Reports
import Store

struct ReportCommand: Command {
    static let name = "report"
    static let summary = "the weekly fleet health report from the store (HTML, Markdown or JSON)"
    static let usage = "report --db FILE [--week YYYY-Www | --from T --to T] [--format html|md|json] [-o|--output FILE] [--runbook-base URL]"
    static let help = """
        The fleet's health over a week (or any period) from the service's store: fleet size,
        availability (endpoint-hours not under a finding), findings by kind and class, quarantines,
        mean time to detect and to release, coverage; latency per path class against the week
        before; leaf × leaf p99 and loss over the week and its worst hour; top and repeat
        offenders; findings still open at the end; the quarantine log.

        options:
          --db FILE            the service's store (read only)
          --week YYYY-Www      an ISO week (Monday 00:00 UTC to the next Monday)
          --from T, --to T     a period (RFC 3339 UTC); without a period: the 7 days up to now
          --format F           html (default), md or json
          -o, --output FILE    where to write (default: standard output). For md, the charts are
                               written beside FILE as FILE-stem-*.svg; to standard output they are
                               left out.
          --runbook-base URL   prefix of runbook links (default: none, runbooks/<class>.md)
        """

    let path: String
    let period: (from: Timestamp, to: Timestamp, label: String?)
    let format: String
    let output: String?
    let runbookBase: String

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(
            arguments, valued: ["db", "week", "from", "to", "format", "output", "runbook-base"], aliases: ["o": "output"])
        path = try options.required("db")
        format = options.value("format") ?? "html"
        guard ["html", "md", "json"].contains(format) else {
            throw CommandError.usage("--format is html, md or json, not '\(format)'")
        }
        output = options.value("output")
        runbookBase = options.value("runbook-base") ?? ""
        let from = try options.timestamp("from")
        let to = try options.timestamp("to")
        if let week = options.value("week") {
            guard from == nil, to == nil else { throw CommandError.usage("give --week or --from/--to, not both") }
            guard let range = ISOWeek.period(week) else {
                throw CommandError.usage("--week: '\(week)' is not an ISO week such as 2026-W47")
            }
            period = (range.from, range.to, week)
        } else if from != nil || to != nil {
            guard let from, let to else { throw CommandError.usage("--from and --to go together") }
            guard from < to else { throw CommandError.usage("--from must be before --to") }
            period = (from, to, nil)
        } else {
            let now = Timestamp(secondsSinceEpoch: Int64(Date().timeIntervalSince1970))
            period = (now.adding(seconds: -7 * 86_400), now, nil)
        }
    }

    func run(io: some CommandIO) throws(CommandError) {
        try requireExistingFile(path)
        let report = try withStoreErrors { () throws -> WeeklyReport in
            let store = try Store(path: path, mode: .readOnly, migrate: false)
            return try WeeklyReport.build(
                store: store, from: period.from, to: period.to, label: period.label, runbookBase: runbookBase)
        }
        switch format {
        case "json":
            try writeOutput(Data((report.json.jsonText + "\n").utf8), to: output, io: io)
        case "md":
            guard let output, output != "-" else {
                try writeOutput(Data(report.markdown(chartPrefix: nil).utf8), to: nil, io: io)
                return
            }
            let url = URL(fileURLWithPath: output)
            let stem = url.deletingPathExtension().lastPathComponent
            for chart in report.charts {
                let file = url.deletingLastPathComponent().appendingPathComponent("\(stem)-\(chart.name)").path
                try writeOutput(Data(chart.svg.utf8), to: file, io: io)
            }
            try writeOutput(Data(report.markdown(chartPrefix: "\(stem)-").utf8), to: output, io: io)
        default:
            try writeOutput(Data(report.html.utf8), to: output, io: io)
        }
    }
}
