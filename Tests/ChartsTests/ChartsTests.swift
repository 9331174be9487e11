// The charts module: nice ticks, scales, colours, escaping, and charts whose SVG is well formed,
// carries what it shows (one line per series, one cell per value, the legends) and is the same
// bytes on every run.

import Foundation
import Testing

@testable import Charts

/// Checks that every element opened is closed, in order (self-closing ones count as both).
private func isWellFormed(_ svg: String) -> Bool {
    var stack: [Substring] = []
    var rest = svg[...]
    while let open = rest.firstIndex(of: "<") {
        guard let close = rest[open...].firstIndex(of: ">") else { return false }
        let tag = rest[rest.index(after: open)..<close]
        rest = rest[rest.index(after: close)...]
        if tag.hasPrefix("/") {
            guard stack.popLast() == tag.dropFirst() else { return false }
        } else if !tag.hasSuffix("/") {
            stack.append(tag.prefix { $0 != " " })
        }
    }
    return stack.isEmpty
}

private func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

@Suite struct ScaleTests {
    @Test func niceStepsAreOneTwoOrFiveTimesAPowerOfTen() {
        #expect(LinearScale.niceStep(span: 97, count: 5) == 20)
        #expect(LinearScale.niceStep(span: 1, count: 5) == 0.2)
        #expect(LinearScale.niceStep(span: 3_600, count: 6) == 500)
        #expect(LinearScale.niceStep(span: 0.013, count: 5) == 0.002)
        #expect(LinearScale.niceStep(span: 0, count: 5) == 1)
    }

    @Test func nicedDomainsEndOnTicks() {
        let scale = LinearScale(domain: 3...97, range: 0...100).niced()
        #expect(scale.domain == 0...100)
        #expect(scale.ticks() == [0, 20, 40, 60, 80, 100])
        #expect(LinearScale(domain: 0.1...0.95, range: 0...1).ticks() == [0.2, 0.4, 0.6, 0.8])
        #expect(LinearScale.label(0.2, step: 0.2) == "0.2")
        #expect(LinearScale.label(40, step: 20) == "40")
        #expect(LinearScale.label(0.004, step: 0.002) == "0.004")
    }

    @Test func valuesMapOntoTheRangeBothWays() {
        let x = LinearScale(domain: 0...10, range: 50...150)
        #expect(x(0) == 50 && x(5) == 100 && x(10) == 150)
        let y = LinearScale(domain: 0...10, range: 20...220, inverted: true)
        #expect(y(0) == 220 && y(10) == 20)
    }

    @Test func coloursRunThroughTheirStopsAndClamp() {
        let scale = ColourScale(domain: 0...4)
        #expect(scale.colour(0) == ColourScale.viridis[0])
        #expect(scale.colour(4) == ColourScale.viridis[4])
        #expect(scale.colour(-1) == ColourScale.viridis[0])
        #expect(scale.colour(9) == ColourScale.viridis[4])
        #expect(scale.colour(2).hex == ColourScale.viridis[2].hex)
        #expect(RGB(1, 0.5, 0).hex == "#ff8000")
    }

    @Test func markupIsEscaped() {
        #expect(escapeMarkup(#"<a & "b">'"#) == "&lt;a &amp; &quot;b&quot;&gt;&#39;")
    }
}

@Suite struct ChartTests {
    @Test func aLineChartHasItsLinesTicksAndLegendAndIsTheSameEveryRun() {
        var chart = LineChart(
            title: "p99 by class <this week>", yLabel: "µs",
            series: [
                .init(name: "same-leaf", points: [(0, 4.5), (1, 5.2), (2, 97)]),
                .init(name: "cross-leaf", points: [(0, 7), (1, 7.5), (2, 8)]),
            ])
        chart.xTickLabel = { "day \(Int($0))" }
        let svg = chart.svg
        #expect(isWellFormed(svg), "\(svg)")
        #expect(count("<polyline", in: svg) == 2)
        #expect(svg.contains(">same-leaf</text>") && svg.contains(">cross-leaf</text>"))
        #expect(svg.contains("aria-label=\"p99 by class &lt;this week&gt;\""))
        // The y axis is niced to 0...100 with ticks every 20; the x ticks carry their labels.
        for tick in ["0", "20", "40", "60", "80", "100"] { #expect(svg.contains(">\(tick)</text>"), "\(tick)") }
        #expect(svg.contains(">day 1</text>"))
        #expect(svg == chart.svg)
    }

    @Test func aChartWithoutDataSaysSo() {
        let svg = LineChart(title: "empty", yLabel: "µs", series: [.init(name: "a", points: [])]).svg
        #expect(isWellFormed(svg))
        #expect(svg.contains(">no data</text>"))
        #expect(!svg.contains("<polyline"))
    }

    @Test func aHeatmapHasACellPerValueALegendAndMarksMissingData() {
        let map = Heatmap(
            title: "leaf x leaf p99", unit: "µs", rows: ["leaf-a", "leaf-b"], columns: ["leaf-a", "leaf-b", "leaf-c"],
            values: [[5, 6, nil], [7, 40, 9]])
        let svg = map.svg
        #expect(isWellFormed(svg), "\(svg)")
        #expect(count("<rect", in: svg) == 6 + 1)  // the cells and the legend's bar
        #expect(count("class=\"no-data\"", in: svg) == 1)
        #expect(svg.contains("leaf-a → leaf-c: no data"))
        // Lowest and highest values take the scale's ends.
        #expect(svg.contains("fill=\"\(ColourScale.viridis[0].hex)\"><title>leaf-a → leaf-a: 5 µs"))
        #expect(svg.contains("fill=\"\(ColourScale.viridis[4].hex)\"><title>leaf-b → leaf-b: 40 µs"))
        #expect(count("<stop ", in: svg) == ColourScale.viridis.count)
        #expect(svg == map.svg)
    }
}
