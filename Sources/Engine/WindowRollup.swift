// One closed window's latency and loss merged two ways, for the weekly report: by path class (the
// fleet's latency per class) and by leaf pair (the Pingmesh-style leaf × leaf heatmap). Pure: the
// window's reports and the topology in, sorted aggregates out. The engine makes one per window
// when asked (`Engine.rollUp`); the service stores them; replay can make them again from the log.

import FleetModel
import QuantileSketch

/// Sent, lost and the merged RTT sketch of a set of pairs.
public struct PairAggregate: Sendable, Equatable {
    public var pairCount = 0
    public var sent = 0
    public var lost = 0
    /// The merge of the pairs' sketches; nil when none had one.
    public var sketch: QuantileSketch?

    public init(pairCount: Int = 0, sent: Int = 0, lost: Int = 0, sketch: QuantileSketch? = nil) {
        self.pairCount = pairCount
        self.sent = sent
        self.lost = lost
        self.sketch = sketch
    }

    /// Adds `other`'s pairs; false when the sketches could not merge (different mappings).
    @discardableResult
    public mutating func add(_ other: PairAggregate) -> Bool {
        pairCount += other.pairCount
        sent += other.sent
        lost += other.lost
        guard let theirs = other.sketch else { return true }
        guard sketch != nil else {
            sketch = theirs
            return true
        }
        do { try sketch!.merge(theirs) } catch { return false }
        return true
    }
}

public struct WindowRollup: Sendable, Equatable {
    public struct LeafPair: Sendable, Hashable, Comparable {
        public var src: SwitchName
        public var dst: SwitchName
        public init(src: SwitchName, dst: SwitchName) {
            self.src = src
            self.dst = dst
        }
        public static func < (a: LeafPair, b: LeafPair) -> Bool { (a.src, a.dst) < (b.src, b.dst) }
    }

    public var window: Timestamp
    /// By class, in class order; classes without pairs are left out.
    public var classes: [(pathClass: PathClass, aggregate: PairAggregate)]
    /// Pairs between endpoints on different nodes, by (source leaf, destination leaf), sorted;
    /// empty when `leafPairsOmitted`.
    public var leafPairs: [(leaves: LeafPair, aggregate: PairAggregate)]
    /// Pairs left out: an endpoint the topology does not know, or a sketch that did not decode or merge.
    public var skippedPairs: Int
    /// True when the fleet has more than `maxLeaves` leaves: no leaf pairs then (a heatmap of
    /// thousands of leaves is unreadable, and a window of a 100,000-GPU fleet touches a million
    /// leaf pairs: merging them would cost several times the window's judging).
    public var leafPairsOmitted = false

    public static let maxLeaves = 512

    public static func == (a: WindowRollup, b: WindowRollup) -> Bool {
        a.window == b.window && a.skippedPairs == b.skippedPairs && a.leafPairsOmitted == b.leafPairsOmitted
            && a.classes.map(\.pathClass) == b.classes.map(\.pathClass)
            && a.classes.map(\.aggregate) == b.classes.map(\.aggregate)
            && a.leafPairs.map(\.leaves) == b.leafPairs.map(\.leaves)
            && a.leafPairs.map(\.aggregate) == b.leafPairs.map(\.aggregate)
    }

    /// The rollup of one window's reports (any order: the result is sorted). Sketches are merged
    /// from their bytes (`EncodedSketchAccumulator`), not decoded one by one.
    public static func make(window: Timestamp, reports: [Report], topology: Topology) -> WindowRollup {
        struct Running {
            var aggregate = PairAggregate()
            var sketches = EncodedSketchAccumulator()
        }
        var byClass = [Running](repeating: Running(), count: PathClass.allCases.count)
        var byLeaves: [LeafPair: Running] = [:]
        var skipped = 0
        let withLeaves = topology.leaves.count <= maxLeaves
        for report in reports {
            for pair in report.pairs {
                guard let srcRail = topology.rail(pair.src), let dstRail = topology.rail(pair.dst) else {
                    skipped += 1
                    continue
                }
                let pathClass: PathClass =
                    pair.src == pair.dst
                    ? .loopback
                    : pair.src.node == pair.dst.node ? .intraHost : srcRail.leaf == dstRail.leaf ? .sameLeaf : .crossLeaf
                let crossesNodes = withLeaves && pair.src.node != pair.dst.node
                let leaves = LeafPair(src: srcRail.leaf, dst: dstRail.leaf)
                if let wire = pair.rttMicros {
                    guard let bytes = wire.decodedBytes else {
                        skipped += 1
                        continue
                    }
                    let added = bytes.withUnsafeBufferPointer { (buffer) -> Bool in
                        do {
                            try byClass[pathClass.ordinal].sketches.add(bytes: buffer)
                            if crossesNodes { try byLeaves[leaves, default: Running()].sketches.add(bytes: buffer) }
                            return true
                        } catch {
                            return false
                        }
                    }
                    guard added else {
                        skipped += 1
                        continue
                    }
                }
                byClass[pathClass.ordinal].aggregate.count(pair)
                if crossesNodes { byLeaves[leaves, default: Running()].aggregate.count(pair) }
            }
        }
        func finished(_ running: Running) -> PairAggregate {
            var aggregate = running.aggregate
            aggregate.sketch = (try? running.sketches.sketch()) ?? nil
            return aggregate
        }
        return WindowRollup(
            window: window,
            classes: PathClass.allCases.compactMap {
                byClass[$0.ordinal].aggregate.pairCount > 0 ? ($0, finished(byClass[$0.ordinal])) : nil
            },
            leafPairs: byLeaves.keys.sorted().map { ($0, finished(byLeaves[$0]!)) }, skippedPairs: skipped,
            leafPairsOmitted: !withLeaves)
    }
}

extension PairAggregate {
    /// Counts one pair's probes (its sketch is merged apart).
    fileprivate mutating func count(_ pair: Report.Pair) {
        pairCount += 1
        sent += pair.sent
        lost += pair.lost
    }
}
