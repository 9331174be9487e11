// The report's charts as inline SVG (issue 9: no packages, nothing loaded from elsewhere): a line
// chart with axes, nice ticks and a legend, and a heatmap with its colour scale's legend. Text and
// axes use `currentColor`, so the page's CSS sets them for print and for dark mode. The same input
// gives the same bytes.

import Foundation

/// Text for SVG and HTML: `&`, `<`, `>` and quotes escaped.
public func escapeMarkup(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(character)
        }
    }
    return out
}

/// A number in an attribute: at most two decimals, no trailing zeros.
func coordinate(_ value: Double) -> String {
    let rounded = (value * 100).rounded() / 100
    if rounded == rounded.rounded() { return String(Int(rounded)) }
    var text = String(format: "%.2f", rounded)
    while text.hasSuffix("0") { text.removeLast() }
    return text
}

/// The series colours of line charts: distinct in hue and lightness (Okabe–Ito).
let seriesColours = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000"]

/// Lines over a shared x axis (time, as seconds, or any number), with a legend.
public struct LineChart: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]

        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points
        }
    }

    public var title: String
    public var yLabel: String
    public var series: [Series]
    public var width = 640.0
    public var height = 280.0
    /// The x axis's tick labels (default: the number itself).
    public var xTickLabel: @Sendable (Double) -> String = { LinearScale.label($0, step: 1) }

    public init(title: String, yLabel: String, series: [Series]) {
        self.title = title
        self.yLabel = yLabel
        self.series = series
    }

    public var svg: String {
        let margin = (left: 56.0, right: 16.0, top: 28.0, bottom: 44.0)
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(coordinate(width)) \(coordinate(height))\""
        out += " role=\"img\" aria-label=\"\(escapeMarkup(title))\" class=\"chart line-chart\">\n"
        out += "<text x=\"\(coordinate(width / 2))\" y=\"16\" text-anchor=\"middle\" fill=\"currentColor\" class=\"title\">"
        out += "\(escapeMarkup(title))</text>\n"
        let points = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        guard let first = points.first else {
            out += "<text x=\"\(coordinate(width / 2))\" y=\"\(coordinate(height / 2))\" text-anchor=\"middle\" "
            out += "fill=\"currentColor\" class=\"no-data\">no data</text>\n</svg>\n"
            return out
        }
        var (xMin, xMax, yMax) = (first.x, first.x, first.y)
        var yMin = min(0, first.y)
        for point in points {
            (xMin, xMax) = (min(xMin, point.x), max(xMax, point.x))
            (yMin, yMax) = (min(yMin, point.y), max(yMax, point.y))
        }
        if xMax == xMin { xMax = xMin + 1 }
        let x = LinearScale(domain: xMin...xMax, range: margin.left...(width - margin.right))
        let y = LinearScale(domain: yMin...max(yMax, yMin + 1e-9), range: margin.top...(height - margin.bottom), inverted: true)
            .niced()
        // Axes, ticks and grid lines.
        let yStep = LinearScale.niceStep(span: y.domain.upperBound - y.domain.lowerBound, count: 5)
        out += "<g class=\"axis\" stroke=\"currentColor\" stroke-opacity=\"0.25\">\n"
        for tick in y.ticks() {
            out += "<line x1=\"\(coordinate(margin.left))\" x2=\"\(coordinate(width - margin.right))\" "
            out += "y1=\"\(coordinate(y(tick)))\" y2=\"\(coordinate(y(tick)))\"/>\n"
        }
        out += "</g>\n<g class=\"ticks\" fill=\"currentColor\" font-size=\"10\">\n"
        for tick in y.ticks() {
            out += "<text x=\"\(coordinate(margin.left - 6))\" y=\"\(coordinate(y(tick) + 3))\" text-anchor=\"end\">"
            out += "\(LinearScale.label(tick, step: yStep))</text>\n"
        }
        for tick in x.ticks(count: 6) {
            out += "<text x=\"\(coordinate(x(tick)))\" y=\"\(coordinate(height - margin.bottom + 14))\" text-anchor=\"middle\">"
            out += "\(escapeMarkup(xTickLabel(tick)))</text>\n"
        }
        out += "<text transform=\"translate(12 \(coordinate((margin.top + height - margin.bottom) / 2))) rotate(-90)\" "
        out += "text-anchor=\"middle\">\(escapeMarkup(yLabel))</text>\n</g>\n"
        // The lines, then the legend under the plot.
        for (index, line) in series.enumerated() {
            let colour = seriesColours[index % seriesColours.count]
            let path = line.points.filter { $0.x.isFinite && $0.y.isFinite }
                .map { "\(coordinate(x($0.x))),\(coordinate(y($0.y)))" }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(path)\">"
            out += "<title>\(escapeMarkup(line.name))</title></polyline>\n"
        }
        out += "<g class=\"legend\" font-size=\"10\" fill=\"currentColor\">\n"
        var legendX = margin.left
        for (index, line) in series.enumerated() {
            let colour = seriesColours[index % seriesColours.count]
            let top = height - 14
            out += "<rect x=\"\(coordinate(legendX))\" y=\"\(coordinate(top - 8))\" width=\"10\" height=\"10\" fill=\"\(colour)\"/>"
            out += "<text x=\"\(coordinate(legendX + 14))\" y=\"\(coordinate(top))\">\(escapeMarkup(line.name))</text>\n"
            legendX += 24 + Double(line.name.count) * 6
        }
        out += "</g>\n</svg>\n"
        return out
    }
}

/// Rows × columns of values (nil: no data), coloured on a sequential scale, with the scale's legend.
public struct Heatmap: Sendable {
    public var title: String
    public var unit: String
    public var rows: [String]
    public var columns: [String]
    /// `values[row][column]`.
    public var values: [[Double?]]
    public var cell = 18.0

    public init(title: String, unit: String, rows: [String], columns: [String], values: [[Double?]]) {
        self.title = title
        self.unit = unit
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    public var svg: String {
        let labelWidth = 8.0 + Double((rows + columns).map(\.count).max() ?? 4) * 6
        let (left, top) = (labelWidth, 28.0 + labelWidth)
        let legendHeight = 46.0
        let width = left + Double(columns.count) * cell + 16
        let height = top + Double(rows.count) * cell + legendHeight
        let known = values.flatMap { $0 }.compactMap { $0 }.filter(\.isFinite)
        let scale = ColourScale(domain: (known.min() ?? 0)...max(known.max() ?? 1, (known.min() ?? 0) + 1e-9))
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(coordinate(width)) \(coordinate(height))\""
        out += " role=\"img\" aria-label=\"\(escapeMarkup(title))\" class=\"chart heatmap\">\n"
        out += "<text x=\"\(coordinate(width / 2))\" y=\"16\" text-anchor=\"middle\" fill=\"currentColor\" class=\"title\">"
        out += "\(escapeMarkup(title))</text>\n<g class=\"labels\" fill=\"currentColor\" font-size=\"10\">\n"
        for (index, row) in rows.enumerated() {
            out += "<text x=\"\(coordinate(left - 4))\" y=\"\(coordinate(top + (Double(index) + 0.7) * cell))\" "
            out += "text-anchor=\"end\">\(escapeMarkup(row))</text>\n"
        }
        for (index, column) in columns.enumerated() {
            let x = left + (Double(index) + 0.7) * cell
            out += "<text transform=\"translate(\(coordinate(x)) \(coordinate(top - 4))) rotate(-90)\">"
            out += "\(escapeMarkup(column))</text>\n"
        }
        out += "</g>\n<g class=\"cells\">\n"
        for (r, row) in rows.enumerated() {
            for (c, column) in columns.enumerated() {
                let value = r < values.count && c < values[r].count ? values[r][c] : nil
                let x = coordinate(left + Double(c) * cell)
                let y = coordinate(top + Double(r) * cell)
                let size = coordinate(cell - 1)
                if let value, value.isFinite {
                    out += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(size)\" height=\"\(size)\" fill=\"\(scale.colour(value).hex)\">"
                    out += "<title>\(escapeMarkup(row)) → \(escapeMarkup(column)): \(coordinate(value)) \(escapeMarkup(unit))</title></rect>\n"
                } else {
                    out += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(size)\" height=\"\(size)\" class=\"no-data\" fill=\"none\" "
                    out += "stroke=\"currentColor\" stroke-opacity=\"0.3\"><title>\(escapeMarkup(row)) → \(escapeMarkup(column)): no data</title></rect>\n"
                }
            }
        }
        out += "</g>\n"
        out += legend(scale: scale, x: left, y: top + Double(rows.count) * cell + 12, width: max(120, Double(columns.count) * cell))
        out += "</svg>\n"
        return out
    }

    /// A gradient bar for the colour scale, with nice ticks and the unit.
    private func legend(scale: ColourScale, x: Double, y: Double, width: Double) -> String {
        let id = "scale-\(String(stableHash(title), radix: 16))"
        var out = "<defs><linearGradient id=\"\(id)\">"
        for (index, stop) in scale.stops.enumerated() {
            let offset = Double(index) / Double(scale.stops.count - 1) * 100
            out += "<stop offset=\"\(coordinate(offset))%\" stop-color=\"\(stop.hex)\"/>"
        }
        out += "</linearGradient></defs>\n<g class=\"legend\" font-size=\"10\" fill=\"currentColor\">\n"
        out += "<rect x=\"\(coordinate(x))\" y=\"\(coordinate(y))\" width=\"\(coordinate(width))\" height=\"10\" fill=\"url(#\(id))\"/>\n"
        let axis = LinearScale(domain: scale.domain, range: x...(x + width))
        let step = LinearScale.niceStep(span: scale.domain.upperBound - scale.domain.lowerBound, count: 4)
        for tick in axis.ticks(count: 4) {
            out += "<text x=\"\(coordinate(axis(tick)))\" y=\"\(coordinate(y + 22))\" text-anchor=\"middle\">"
            out += "\(LinearScale.label(tick, step: step))</text>\n"
        }
        out += "<text x=\"\(coordinate(x + width + 4))\" y=\"\(coordinate(y + 9))\">\(escapeMarkup(unit))</text>\n</g>\n"
        return out
    }
}

/// FNV-1a of the text's bytes: an id that is the same on every run (Swift's hashValue is not).
func stableHash(_ text: String) -> UInt64 {
    text.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
}
