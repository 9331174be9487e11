// Scales for the report's charts: a linear scale with "nice" ticks (1, 2 or 5 times a power of ten,
// the way people count) and a sequential colour scale for heatmaps. Pure arithmetic, deterministic.

import Foundation

/// Maps a domain of values onto a range of pixels (an inverted range, for a y axis, works too).
public struct LinearScale: Sendable, Equatable {
    public let domain: ClosedRange<Double>
    public let range: ClosedRange<Double>
    /// Whether the range runs backwards (pixels grow downwards while values grow upwards).
    public let inverted: Bool

    public init(domain: ClosedRange<Double>, range: ClosedRange<Double>, inverted: Bool = false) {
        self.domain = domain
        self.range = range
        self.inverted = inverted
    }

    /// The pixel of `value` (values outside the domain land outside the range).
    public func callAsFunction(_ value: Double) -> Double {
        let span = domain.upperBound - domain.lowerBound
        let t = span > 0 ? (value - domain.lowerBound) / span : 0.5
        let pixels = range.upperBound - range.lowerBound
        return inverted ? range.upperBound - t * pixels : range.lowerBound + t * pixels
    }

    /// About `count` steps of 1, 2 or 5 × 10^k across `span`.
    public static func niceStep(span: Double, count: Int) -> Double {
        guard span > 0, span.isFinite, count > 0 else { return 1 }
        let rough = span / Double(count)
        let power = pow(10, floor(log10(rough)))
        let fraction = rough / power
        let nice: Double = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10
        return nice * power
    }

    /// The same scale with its domain widened to whole steps, so that its ends are ticks.
    public func niced(count: Int = 5) -> LinearScale {
        let step = Self.niceStep(span: domain.upperBound - domain.lowerBound, count: count)
        let low = floor(domain.lowerBound / step) * step
        var high = ceil(domain.upperBound / step) * step
        if high <= low { high = low + step }
        return LinearScale(domain: low...high, range: range, inverted: inverted)
    }

    /// The ticks inside the domain, at whole multiples of the nice step (a step below 1 divides
    /// by its inverse, so 3 × 0.2 is 0.6, not 0.6000000000000001).
    public func ticks(count: Int = 5) -> [Double] {
        let step = Self.niceStep(span: domain.upperBound - domain.lowerBound, count: count)
        let inverse = step < 1 ? (1 / step).rounded() : nil
        func tick(_ k: Double) -> Double { inverse.map { k / $0 } ?? k * step }
        var k = ceil(domain.lowerBound / step - 1e-9)
        var ticks: [Double] = []
        while tick(k) <= domain.upperBound + step * 1e-9, ticks.count < 1000 {
            ticks.append(k == 0 ? 0 : tick(k))
            k += 1
        }
        return ticks
    }

    /// A tick's label: as many decimals as the step needs, no more.
    public static func label(_ value: Double, step: Double) -> String {
        let decimals = step >= 1 ? 0 : min(6, Int(ceil(-log10(step) - 1e-9)))
        return String(format: "%.\(decimals)f", value)
    }
}

/// An sRGB colour.
public struct RGB: Sendable, Equatable {
    public let red: Double
    public let green: Double
    public let blue: Double

    public init(_ red: Double, _ green: Double, _ blue: Double) {
        (self.red, self.green, self.blue) = (red, green, blue)
    }

    /// `#rrggbb`.
    public var hex: String {
        func byte(_ value: Double) -> Int { Int((min(1, max(0, value)) * 255).rounded()) }
        return String(format: "#%02x%02x%02x", byte(red), byte(green), byte(blue))
    }
}

/// A sequential colour scale: values from `domain` onto colours interpolated between stops.
public struct ColourScale: Sendable, Equatable {
    public let domain: ClosedRange<Double>
    public let stops: [RGB]

    public init(domain: ClosedRange<Double>, stops: [RGB] = ColourScale.viridis) {
        precondition(stops.count >= 2, "a colour scale needs two stops")
        self.domain = domain
        self.stops = stops
    }

    /// Viridis' five anchor colours: ordered in lightness, readable by the colour-blind and in print.
    public static let viridis = [
        RGB(0.267, 0.005, 0.329), RGB(0.231, 0.322, 0.545), RGB(0.129, 0.569, 0.549),
        RGB(0.369, 0.788, 0.384), RGB(0.992, 0.906, 0.145),
    ]

    /// The colour of `value`, clamped to the domain's ends.
    public func colour(_ value: Double) -> RGB {
        let span = domain.upperBound - domain.lowerBound
        let t = span > 0 ? min(1, max(0, (value - domain.lowerBound) / span)) : 0
        let position = t * Double(stops.count - 1)
        let index = min(stops.count - 2, Int(position))
        let f = position - Double(index)
        let (a, b) = (stops[index], stops[index + 1])
        return RGB(a.red + (b.red - a.red) * f, a.green + (b.green - a.green) * f, a.blue + (b.blue - a.blue) * f)
    }
}
