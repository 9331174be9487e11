// A report with its pairs' sketches already read: each pair's count of round trips and the two
// quantiles the engine judges on. Reading sketches is most of what a window's close costs per pair,
// and it needs nothing of the engine's state, so it can happen on any thread before the report
// reaches the engine (a replay reads the store and the sketches on one thread while the engine
// closes windows on another). The engine's answers are the same either way.

import FleetModel
import QuantileSketch

/// What one pair's sketch says: its count of values and its p50 and p99, or that it has none that
/// reads (absent, not base64, malformed; the engine then counts the pair's sketch invalid when
/// probes returned).
public struct SketchReading: Sendable, Equatable {
    public let count: UInt64
    public let p50: Double
    public let p99: Double
    public let isValid: Bool

    public static let none = SketchReading(count: 0, p50: 0, p99: 0, isValid: false)
}

/// Reads pairs' sketches one after another, reusing its buffers: one per thread.
public struct PairSketchReader: Sendable {
    /// The quantiles pairs are judged on.
    private var reader = try! EncodedSketchReader(quantiles: [0.5, 0.99])  // valid quantiles: cannot throw
    /// Where sketches that are not read in place are expanded.
    private var scratch: [UInt8] = []

    public init() {}

    /// What a sketch in the event log's compact form says.
    public mutating func read(compact: UnsafeBufferPointer<UInt8>) -> SketchReading {
        guard (try? reader.read(compact: compact)) != nil else { return .none }
        return SketchReading(count: reader.count, p50: reader.answer(0), p99: reader.answer(1), isValid: true)
    }

    /// What `sketch` says; a pair whose probes all failed has nothing to read.
    public mutating func read(_ sketch: WireSketch?) -> SketchReading {
        guard let sketch else { return .none }
        if case .compact(let compact) = sketch { return compact.withUnsafeBufferPointer { read(compact: $0) } }
        var buffer: [UInt8] = []
        swap(&buffer, &scratch)
        defer { swap(&buffer, &scratch) }
        let valid = sketch.withProtobufBytes(scratch: &buffer) { (try? reader.read(bytes: $0)) != nil } ?? false
        guard valid else { return .none }
        return SketchReading(count: reader.count, p50: reader.answer(0), p99: reader.answer(1), isValid: true)
    }
}

/// A report and what its pairs' sketches say, in the pairs' order.
public struct MeasuredReport: Sendable {
    public let report: Report
    public let readings: [SketchReading]
    /// Whether the pairs still carry their sketches: the rollups need them; the judging does not.
    public let keepsSketches: Bool

    /// Reads every pair's sketch with `reader` (one per thread).
    public init(_ report: Report, reader: inout PairSketchReader) {
        self.report = report
        readings = report.pairs.map { $0.sent > $0.lost ? reader.read($0.rttMicros) : .none }
        keepsSketches = true
    }

    /// A report whose sketches were read as it was decoded and not kept (`readings` holds one
    /// reading per pair, in order; a replay from the store).
    public init(sketchesRead report: Report, readings: [SketchReading]) {
        precondition(readings.count == report.pairs.count, "one reading per pair")
        self.report = report
        self.readings = readings
        keepsSketches = false
    }
}
