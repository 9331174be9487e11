// A report as the engine takes it: its pairs' routes apart from their numbers, and each pair's
// sketch already read (its count of round trips and the two quantiles the engine judges on).
// Reading sketches is most of what a window's close costs per pair, and it needs nothing of the
// engine's state, so it can happen on any thread before the report reaches the engine. A node's
// routes stay the same from window to window: a replay shares them between its reports.

import FleetModel
import QuantileSketch

/// What one pair's sketch says: its count of values and its p50 and p99, or that it has none that
/// reads (absent, not base64, malformed; the engine then counts the pair's sketch invalid when
/// probes returned). 24 bytes: a window's readings cross from the reading thread to the engine's.
public struct SketchReading: Sendable, Equatable {
    public let p50: Double
    public let p99: Double
    /// The count, or `UInt64.max` for no reading (a sketch's count is at most
    /// `QuantileSketch.maxCount`, far below).
    private let countOrNone: UInt64

    public var count: UInt64 { isValid ? countOrNone : 0 }
    public var isValid: Bool { countOrNone != .max }

    public init(count: UInt64, p50: Double, p99: Double, isValid: Bool) {
        precondition(!isValid || count < .max, "a sketch's count is at most QuantileSketch.maxCount")
        self.p50 = p50
        self.p99 = p99
        countOrNone = isValid ? count : .max
    }

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

/// Who a node's pairs probe and over which switches, in its report's order: what stays the same
/// from one window to the next. A replay from the store gives a node's successive reports the same
/// roster while its pairs stay the same, so the engine knows them by identity, without comparing
/// names (`StoredReportReader`).
public final class PairRoster: Sendable {
    public struct Route: Sendable, Equatable {
        public let src: EndpointID
        public let dst: EndpointID
        /// The switches crossed, in order, when the agent knows them.
        public let path: [SwitchName]?

        public init(src: EndpointID, dst: EndpointID, path: [SwitchName]?) {
            self.src = src
            self.dst = dst
            self.path = path
        }
    }

    public let routes: [Route]

    public init(_ routes: [Route]) { self.routes = routes }

    /// The routes of a report's pairs.
    public convenience init(pairs: [Report.Pair]) {
        self.init(pairs.map { Route(src: $0.src, dst: $0.dst, path: $0.path) })
    }
}

/// One pair's numbers in one window: probes sent and lost, and what its sketch says. 32 bytes (a
/// window of a 1,000-node fleet has 112,000 of them, written on one thread and read on another):
/// the counts are kept as Int32, which report validation keeps them within
/// (0...Report.maxProbesPerPair).
public struct PairMeasure: Sendable, Equatable {
    public let sketch: SketchReading
    private let sentProbes: Int32
    private let lostProbes: Int32

    public var sent: Int { Int(sentProbes) }
    public var lost: Int { Int(lostProbes) }

    public init(sent: Int, lost: Int, sketch: SketchReading) {
        self.sketch = sketch
        sentProbes = Int32(sent)
        lostProbes = Int32(lost)
    }
}

/// A report as the engine takes it: its pairs' routes (`roster`) apart from their numbers in the
/// window (`measures`, in the same order, each pair's sketch read already). Reading sketches is
/// most of what a window's close costs per pair, and it needs nothing of the engine's state, so it
/// happens on any thread before the report reaches the engine (a replay reads the store and the
/// sketches on one thread while the engine closes windows on another). The engine's answers are
/// the same either way.
public struct MeasuredReport: Sendable {
    public let node: NodeName
    public let windowStart: Timestamp
    public let windowSeconds: Int
    /// The node health that rode along (HealthSignals).
    public let health: [String: JSONValue]
    public let roster: PairRoster
    public let measures: [PairMeasure]
    /// The pairs' sketches, by pair, when kept: the rollups are made of them; the judging is not.
    public let sketches: [WireSketch?]?

    public var keepsSketches: Bool { sketches != nil }

    /// Reads every pair's sketch with `reader` (one per thread), keeping the sketches.
    public init(_ report: Report, reader: inout PairSketchReader) {
        node = report.node
        windowStart = report.windowStart
        windowSeconds = report.windowSeconds
        health = report.health
        roster = PairRoster(pairs: report.pairs)
        measures = report.pairs.map { pair in
            PairMeasure(sent: pair.sent, lost: pair.lost, sketch: pair.sent > pair.lost ? reader.read(pair.rttMicros) : .none)
        }
        sketches = report.pairs.map(\.rttMicros)
    }

    /// A report whose sketches were read as it was decoded and not kept (a replay from the store):
    /// one measure per route, in order.
    public init(
        node: NodeName, windowStart: Timestamp, windowSeconds: Int, health: [String: JSONValue], roster: PairRoster,
        measures: [PairMeasure]
    ) {
        precondition(measures.count == roster.routes.count, "one measure per route")
        self.node = node
        self.windowStart = windowStart
        self.windowSeconds = windowSeconds
        self.health = health
        self.roster = roster
        self.measures = measures
        sketches = nil
    }
}
