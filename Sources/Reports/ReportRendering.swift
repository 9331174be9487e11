// The weekly report written out: one self-contained HTML file (inline SVG and CSS, readable printed
// and in dark mode), Markdown with its charts as SVG files beside it, or JSON for tools. Every
// format carries the same figures; the same report gives the same bytes.

import Charts
import FleetModel
import Foundation

extension WeeklyReport {
    /// The charts, by file name (`latency-p99.svg`, ...), in the order the report shows them.
    public var charts: [(name: String, title: String, svg: String)] {
        var charts: [(String, String, String)] = []
        let start = period.from.secondsSinceEpoch
        // x: days from the start for a period of two days or more (ticks on dates), else seconds
        // (ticks on clock times).
        let inDays = period.to.secondsSinceEpoch - start >= 2 * 86_400
        let unit: Double = inDays ? 86_400 : 1
        let short = period.to.secondsSinceEpoch - start < 3_600
        let xLabel: @Sendable (Double) -> String = { x in
            let text = Timestamp(secondsSinceEpoch: start + Int64((x * unit).rounded())).description
            return inDays ? String(text.dropFirst(5).prefix(5)) : String(text.dropFirst(11).prefix(short ? 8 : 5))
        }
        let step = [10: "10 s", 60: "minute", 300: "5 min", 900: "15 min", 3_600: "hour", 21_600: "6 h"][bucketSeconds] ?? "day"
        for quantile in ["p99", "p50"] {
            let title = "\(quantile) by path class (µs, per \(step))"
            var chart = LineChart(
                title: title, yLabel: "µs",
                series: latency.map { latency in
                    LineChart.Series(
                        name: latency.pathClass.rawValue,
                        points: latency.series.map {
                            (Double($0.start.secondsSinceEpoch - start) / unit, quantile == "p99" ? $0.p99 : $0.p50)
                        })
                })
            chart.xTickLabel = xLabel
            charts.append(("latency-\(quantile).svg", title, chart.svg))
        }
        let leaves = heatmaps.leaves
        let hour = heatmaps.worstHour.map { "\($0)" } ?? "none"
        for (name, caption, title, unit, values) in [
            ("leaves-week-p99.svg", "Leaf × leaf p99 over the week (µs)", "p99, the week (µs)", "µs", heatmaps.weekP99),
            ("leaves-week-loss.svg", "Leaf × leaf loss over the week (%)", "loss, the week (%)", "%", percent(heatmaps.weekLoss)),
            ("leaves-worst-hour-p99.svg", "Leaf × leaf p99 in the worst hour, \(hour) (µs)", "p99, worst hour (µs)", "µs", heatmaps.worstHourP99),
            ("leaves-worst-hour-loss.svg", "Leaf × leaf loss in the worst hour, \(hour) (%)", "loss, worst hour (%)", "%",
             percent(heatmaps.worstHourLoss)),
        ] {
            charts.append((name, caption, Heatmap(title: title, unit: unit, rows: leaves, columns: leaves, values: values).svg))
        }
        return charts
    }

    private func percent(_ grid: [[Double?]]) -> [[Double?]] { grid.map { $0.map { $0.map { $0 * 100 } } } }

    // MARK: Formatting

    static func number(_ value: Double?, digits: Int = 1) -> String {
        guard let value, value.isFinite else { return "–" }
        return String(format: "%.\(digits)f", value)
    }

    static func percentText(_ value: Double?, digits: Int = 2) -> String {
        value.map { number($0 * 100, digits: digits) + "%" } ?? "–"
    }

    static func duration(_ seconds: Double?) -> String {
        guard let seconds else { return "–" }
        if seconds < 120 { return "\(Int(seconds.rounded())) s" }
        if seconds < 7_200 { return number(seconds / 60) + " min" }
        return number(seconds / 3_600) + " h"
    }

    /// A change against the week before, as "+12.0%".
    static func change(_ now: Double?, _ before: Double?) -> String {
        guard let now, let before, before > 0 else { return "–" }
        let change = (now - before) / before * 100
        return (change >= 0 ? "+" : "") + number(change) + "%"
    }

    /// The report's tables as rows of cells: (title, header, rows); the same in HTML and Markdown.
    var tables: [(id: String, title: String, header: [String], rows: [[String]])] {
        let s = summary
        var tables: [(String, String, [String], [[String]])] = []
        tables.append((
            "summary", "Summary", ["figure", "value"],
            [
                ["fleet", "\(s.nodes) nodes, \(s.endpoints) endpoints (GPU + NIC)"],
                ["availability (endpoint-hours healthy)", Self.percentText(s.availability, digits: 3)],
                ["endpoint-hours under a finding", Self.number(s.unhealthyEndpointHours, digits: 2)],
                ["findings opened", "\(s.findingsOpened)"],
                ["by kind", s.findingsByKind.map { "\($0.name) \($0.count)" }.joined(separator: ", ")],
                ["by class", s.findingsByClass.map { "\($0.name) \($0.count)" }.joined(separator: ", ")],
                ["quarantines", "\(s.quarantines) (\(s.quarantinesFailed) failed), \(s.releases) released"],
                ["mean time to detect", Self.duration(s.meanTimeToDetect)],
                ["mean time to release", Self.duration(s.meanTimeToRelease)],
                ["coverage (reports arrived / expected)", "\(Self.percentText(s.coverage)) (\(s.reportsArrived) of \(s.reportsExpected))"],
            ]
        ))
        tables.append((
            "latency", "Fleet latency per path class (µs)",
            ["class", "p50", "p99", "p50 week before", "p99 week before", "p99 change", "loss"],
            latency.map { l in
                [
                    l.pathClass.rawValue, Self.number(l.week.p50), Self.number(l.week.p99), Self.number(l.previousWeek?.p50),
                    Self.number(l.previousWeek?.p99), Self.change(l.week.p99, l.previousWeek?.p99),
                    Self.percentText(l.week.lossRate, digits: 3),
                ]
            }
        ))
        tables.append((
            "offenders", "Top offenders (windows under a finding)", ["component", "kind", "windows", "findings", "classes"],
            topOffenders.map { [$0.component, $0.kind, "\($0.unhealthyWindows)", "\($0.findings)", $0.classes.joined(separator: ", ")] }
        ))
        tables.append((
            "repeat", "Repeat offenders (quarantined twice or more: RMA candidates)", ["node", "quarantines", "classes"],
            repeatOffenders.map { [$0.node, "\($0.quarantines)", $0.classes.joined(separator: ", ")] }
        ))
        tables.append((
            "open", "Findings still open at the week's end", ["component", "kind", "class", "opened", "confidence", "runbook"],
            openAtEnd.map { [$0.component, $0.kind, $0.faultClass, "\($0.opened)", Self.number($0.confidence, digits: 2), $0.runbook] }
        ))
        tables.append((
            "quarantines", "Quarantine log",
            ["node", "decided", "class", "finding", "reason", "state", "out for", "approved by", "released by", "runbook"],
            quarantines.map { q in
                [
                    q.node, "\(q.decided)", q.faultClass, q.component, q.reason, q.state,
                    q.duration.map { Self.duration($0) } ?? (q.state == "done" ? "still out" : "–"), q.approvedBy ?? "–",
                    q.releasedBy ?? "–", q.runbook,
                ]
            }
        ))
        return tables
    }

    // MARK: HTML

    /// One self-contained page: inline CSS (light, dark and print) and inline SVG charts.
    public var html: String {
        let charts = self.charts
        let tables = self.tables
        func table(_ id: String) -> String {
            guard let table = tables.first(where: { $0.id == id }) else { return "" }
            return HTMLPage.table(id: table.id, title: table.title, header: table.header, rows: table.rows)
        }
        func figures(_ names: [String]) -> String {
            HTMLPage.figures(charts.filter { names.contains($0.name) }.map { ($0.title, $0.svg) })
        }
        var body = table("summary")
        body += table("latency")
        body += figures(["latency-p99.svg", "latency-p50.svg"])
        body += "<h2 id=\"heatmaps\">Leaf × leaf</h2>\n"
        body += figures(["leaves-week-p99.svg", "leaves-week-loss.svg"])
        body += figures(["leaves-worst-hour-p99.svg", "leaves-worst-hour-loss.svg"])
        for id in ["offenders", "repeat", "open", "quarantines"] { body += table(id) }
        return HTMLPage.page(
            title: "Fleet health, \(period.label)", subtitle: "\(period.from) to \(period.to), written by faultline report",
            notes: notes, body: body)
    }

    // MARK: Markdown

    /// Markdown for wikis and tickets; the charts are referenced as `prefix` + their file names,
    /// written beside it by the caller (`charts`); nil: no charts.
    public func markdown(chartPrefix: String?) -> String {
        func cell(_ text: String) -> String {
            text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
        }
        var out = "# Fleet health, \(period.label)\n\n\(period.from) to \(period.to), written by faultline report.\n\n"
        for note in notes { out += "> \(note)\n" }
        if !notes.isEmpty { out += "\n" }
        let charts = self.charts
        for table in tables {
            out += "## \(table.title)\n\n"
            out += "| " + table.header.map(cell).joined(separator: " | ") + " |\n"
            out += "|" + table.header.map { _ in "---|" }.joined() + "\n"
            if table.rows.isEmpty { out += "| none |" + String(repeating: " |", count: table.header.count - 1) + "\n" }
            for row in table.rows { out += "| " + row.map(cell).joined(separator: " | ") + " |\n" }
            out += "\n"
            if table.id == "latency", let chartPrefix {
                for chart in charts where chart.name.hasPrefix("latency") {
                    out += "![\(chart.title)](\(chartPrefix)\(chart.name))\n\n"
                }
                out += "## Leaf × leaf\n\n"
                for chart in charts where chart.name.hasPrefix("leaves") {
                    out += "![\(chart.title)](\(chartPrefix)\(chart.name))\n\n"
                }
            }
        }
        return out
    }

    // MARK: JSON

    /// Every figure, for tools: one object, keys sorted.
    public var json: JSONValue {
        func number(_ value: Double?) -> JSONValue { value.map { $0.isFinite ? .number($0) : .null } ?? .null }
        func figures(_ f: Figures?) -> JSONValue {
            guard let f else { return .null }
            return .object(["p50": number(f.p50), "p99": number(f.p99), "sent": .number(Double(f.sent)), "lost": .number(Double(f.lost))])
        }
        func grid(_ values: [[Double?]]) -> JSONValue { .array(values.map { .array($0.map(number)) }) }
        let s = summary
        return .object([
            "period": .object([
                "from": .string("\(period.from)"), "to": .string("\(period.to)"), "label": .string(period.label),
                "bucketSeconds": .number(Double(bucketSeconds)),
            ]),
            "summary": .object([
                "nodes": .number(Double(s.nodes)), "endpoints": .number(Double(s.endpoints)),
                "availability": number(s.availability), "unhealthyEndpointHours": number(s.unhealthyEndpointHours),
                "findingsOpened": .number(Double(s.findingsOpened)),
                "findingsByKind": .object(Dictionary(uniqueKeysWithValues: s.findingsByKind.map { ($0.name, JSONValue.number(Double($0.count))) })),
                "findingsByClass": .object(Dictionary(uniqueKeysWithValues: s.findingsByClass.map { ($0.name, JSONValue.number(Double($0.count))) })),
                "quarantines": .number(Double(s.quarantines)), "quarantinesFailed": .number(Double(s.quarantinesFailed)),
                "releases": .number(Double(s.releases)), "meanTimeToDetectSeconds": number(s.meanTimeToDetect),
                "meanTimeToReleaseSeconds": number(s.meanTimeToRelease), "coverage": number(s.coverage),
                "reportsArrived": .number(Double(s.reportsArrived)), "reportsExpected": .number(Double(s.reportsExpected)),
            ]),
            "latency": .array(latency.map { l in
                .object([
                    "class": .string(l.pathClass.rawValue), "week": figures(l.week), "previousWeek": figures(l.previousWeek),
                    "series": .array(l.series.map {
                        .object(["start": .string("\($0.start)"), "p50": number($0.p50), "p99": number($0.p99)])
                    }),
                ])
            }),
            "leaves": .object([
                "names": .array(heatmaps.leaves.map { .string($0) }), "weekP99": grid(heatmaps.weekP99),
                "weekLoss": grid(heatmaps.weekLoss), "worstHour": heatmaps.worstHour.map { .string("\($0)") } ?? .null,
                "worstHourP99": grid(heatmaps.worstHourP99), "worstHourLoss": grid(heatmaps.worstHourLoss),
            ]),
            "topOffenders": .array(topOffenders.map {
                .object([
                    "component": .string($0.component), "kind": .string($0.kind),
                    "unhealthyWindows": .number(Double($0.unhealthyWindows)), "findings": .number(Double($0.findings)),
                    "classes": .array($0.classes.map { .string($0) }),
                ])
            }),
            "repeatOffenders": .array(repeatOffenders.map {
                .object([
                    "node": .string($0.node), "quarantines": .number(Double($0.quarantines)),
                    "classes": .array($0.classes.map { .string($0) }),
                ])
            }),
            "openAtEnd": .array(openAtEnd.map {
                .object([
                    "component": .string($0.component), "kind": .string($0.kind), "class": .string($0.faultClass),
                    "opened": .string("\($0.opened)"), "confidence": .number($0.confidence), "runbook": .string($0.runbook),
                ])
            }),
            "quarantines": .array(quarantines.map { q in
                .object([
                    "node": .string(q.node), "decided": .string("\(q.decided)"), "class": .string(q.faultClass),
                    "component": .string(q.component), "reason": .string(q.reason), "state": .string(q.state),
                    "outcome": .string(q.outcome), "durationSeconds": number(q.duration),
                    "approvedBy": q.approvedBy.map { .string($0) } ?? .null,
                    "releasedBy": q.releasedBy.map { .string($0) } ?? .null, "runbook": .string(q.runbook),
                ])
            }),
            "notes": .array(notes.map { .string($0) }),
        ])
    }
}

/// The reports' HTML: one self-contained page (inline CSS for light, dark and print; inline SVG),
/// tables with runbook links, figures in a grid. The weekly report and the incident page share it.
enum HTMLPage {
    static let style = """
        :root { --fg: #1b1f24; --bg: #ffffff; --muted: #57606a; --rule: #d0d7de; --accent: #0a5bb5; --stripe: #f6f8fa; }
        @media (prefers-color-scheme: dark) {
          :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9da7b3; --rule: #30363d; --accent: #6cb6ff; --stripe: #161b22; }
        }
        body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg);
               max-width: 1100px; margin: 2rem auto; padding: 0 1rem; }
        h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid var(--rule); }
        .period { color: var(--muted); margin-top: 0; }
        table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
        th, td { text-align: left; padding: 0.3rem 0.5rem; border-bottom: 1px solid var(--rule); vertical-align: top; }
        tbody tr:nth-child(even) { background: var(--stripe); }
        td.empty { color: var(--muted); font-style: italic; }
        a { color: var(--accent); }
        .notes { color: var(--muted); }
        figure { margin: 1rem 0; } figure svg { max-width: 100%; height: auto; color: var(--fg); }
        .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 1rem; }
        svg .title { font-weight: 600; font-size: 13px; } svg text { font-size: 11px; }
        @media print {
          :root { --fg: #000; --bg: #fff; --muted: #333; --rule: #999; --accent: #000; --stripe: #fff; }
          body { margin: 0; max-width: none; } h2 { break-after: avoid; } figure, tr { break-inside: avoid; }
        }
        """

    static func page(title: String, subtitle: String, notes: [String], body: String) -> String {
        var out = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="color-scheme" content="light dark">
            <title>\(escapeMarkup(title))</title>
            <style>
            \(style)
            </style>
            </head>
            <body>
            <h1>\(escapeMarkup(title))</h1>
            <p class="period">\(escapeMarkup(subtitle))</p>

            """
        if !notes.isEmpty {
            out += "<ul class=\"notes\">\n" + notes.map { "<li>\(escapeMarkup($0))</li>\n" }.joined() + "</ul>\n"
        }
        return out + body + "</body>\n</html>\n"
    }

    /// A titled table; cells under a `runbook` header become links.
    static func table(id: String, title: String, header: [String], rows: [[String]]) -> String {
        var html = "<h2 id=\"\(id)\">\(escapeMarkup(title))</h2>\n<table>\n<thead><tr>"
        html += header.map { "<th>\(escapeMarkup($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        if rows.isEmpty { html += "<tr><td class=\"empty\" colspan=\"\(header.count)\">none</td></tr>\n" }
        for row in rows {
            html += "<tr>" + zip(header, row).map { name, cell in
                name == "runbook" && !cell.isEmpty
                    ? "<td><a href=\"\(escapeMarkup(cell))\">\(escapeMarkup(cell))</a></td>" : "<td>\(escapeMarkup(cell))</td>"
            }.joined() + "</tr>\n"
        }
        return html + "</tbody>\n</table>\n"
    }

    /// SVG figures with captions, side by side where the page is wide enough.
    static func figures(_ charts: [(caption: String, svg: String)]) -> String {
        "<div class=\"grid\">\n" + charts.map { "<figure>\n\($0.svg)<figcaption>\(escapeMarkup($0.caption))</figcaption>\n</figure>\n" }
            .joined() + "</div>\n"
    }
}

/// ISO 8601 weeks: `2026-W47` to the Monday 00:00 UTC that starts it, and back.
public enum ISOWeek {
    /// The start and end of week `text` (`YYYY-Www`), nil when it is not one.
    public static func period(_ text: String) -> (from: Timestamp, to: Timestamp)? {
        let parts = text.split(separator: "-")
        guard parts.count == 2, parts[0].count == 4, let year = Int(parts[0]), parts[1].hasPrefix("W"),
            parts[1].count == 3, let week = Int(parts[1].dropFirst()), (1...53).contains(week)
        else { return nil }
        let monday = mondayOfWeekOne(year) + Int64(week - 1) * 7
        // Week 53 exists only in years whose week 1 of the next year starts a week later.
        guard week < 53 || mondayOfWeekOne(year + 1) - monday >= 7 else { return nil }
        return (Timestamp(secondsSinceEpoch: monday * 86_400), Timestamp(secondsSinceEpoch: (monday + 7) * 86_400))
    }

    /// The ISO week `time` falls in, as `YYYY-Www`.
    public static func label(_ time: Timestamp) -> String {
        let day = time.secondsSinceEpoch >= 0 ? time.secondsSinceEpoch / 86_400 : (time.secondsSinceEpoch - 86_399) / 86_400
        let (year, _, _) = civil(day)
        for candidate in [year + 1, year, year - 1] where mondayOfWeekOne(candidate) <= day {
            let week = (day - mondayOfWeekOne(candidate)) / 7 + 1
            return String(format: "%04d-W%02d", candidate, week)
        }
        return ""
    }

    /// Days since 1970-01-01 of the Monday of ISO week 1 of `year` (the week with 4 January).
    static func mondayOfWeekOne(_ year: Int) -> Int64 {
        let january4 = days(year: year, month: 1, day: 4)
        let weekday = ((january4 % 7) + 7 + 3) % 7  // 0 = Monday; 1970-01-01 was a Thursday
        return january4 - weekday
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    static func days(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The date of a day since 1970-01-01 (civil_from_days).
    static func civil(_ days: Int64) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = Int(doy - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        return (Int(yoe + era * 400) + (month <= 2 ? 1 : 0), month, day)
    }
}
