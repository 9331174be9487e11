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

    /// Gathers one window's pairs; the engine feeds it from the pairs it judges (no lookup twice),
    /// `make` from a window's reports.
    public struct Builder: Sendable {
        struct Running: Sendable {
            var aggregate = PairAggregate()
            var sketches = EncodedSketchAccumulator()

            mutating func add(sent: Int, lost: Int, sketch: UnsafeBufferPointer<UInt8>?) throws(SketchError) {
                if let sketch { try sketches.add(bytes: sketch) }
                aggregate.pairCount += 1
                aggregate.sent += sent
                aggregate.lost += lost
            }

            func finished() -> PairAggregate {
                var aggregate = self.aggregate
                aggregate.sketch = (try? sketches.sketch()) ?? nil
                return aggregate
            }
        }

        /// The fleet's leaves, sorted, and each endpoint's place among them; nil past `maxLeaves`.
        public let leaves: [SwitchName]?
        private var classes = [Running](repeating: Running(), count: PathClass.allCases.count)
        /// By source leaf × leaf count + destination leaf.
        private var leafPairs: [Int: Running] = [:]
        public private(set) var skipped = 0

        public init(topology: Topology) {
            let leaves = topology.leaves.sorted()
            self.leaves = leaves.count <= maxLeaves ? leaves : nil
        }

        /// Adds a pair of `pathClass` whose endpoints sit on leaves `srcLeaf` and `dstLeaf` (places
        /// in `leaves`; ignored for pairs within a node). A sketch that does not merge skips the pair.
        public mutating func add(
            pathClass: PathClass, srcLeaf: Int, dstLeaf: Int, sent: Int, lost: Int, sketch: UnsafeBufferPointer<UInt8>?
        ) {
            do {
                try classes[pathClass.ordinal].add(sent: sent, lost: lost, sketch: sketch)
            } catch {
                skipped += 1
                return
            }
            guard let leaves, pathClass == .sameLeaf || pathClass == .crossLeaf else { return }
            try? leafPairs[srcLeaf * leaves.count + dstLeaf, default: Running()].add(sent: sent, lost: lost, sketch: sketch)
        }

        public mutating func skip() { skipped += 1 }

        public func finish(window: Timestamp) -> WindowRollup {
            let count = leaves?.count ?? 1
            return WindowRollup(
                window: window,
                classes: PathClass.allCases.compactMap {
                    classes[$0.ordinal].aggregate.pairCount > 0 ? ($0, classes[$0.ordinal].finished()) : nil
                },
                leafPairs: leafPairs.keys.sorted().map {
                    (LeafPair(src: leaves![$0 / count], dst: leaves![$0 % count]), leafPairs[$0]!.finished())
                },
                skippedPairs: skipped, leafPairsOmitted: leaves == nil)
        }
    }

    /// The rollup of one window's reports (any order: the result is sorted), as the engine makes it
    /// of the pairs it judges: the class from the topology, sketches merged from their bytes.
    /// Pairs toward an unknown endpoint, or whose sketch does not decode, are skipped.
    public static func make(window: Timestamp, reports: [Report], topology: Topology) -> WindowRollup {
        var builder = Builder(topology: topology)
        let place = Dictionary(uniqueKeysWithValues: (builder.leaves ?? []).enumerated().map { ($1, $0) })
        for report in reports {
            for pair in report.pairs {
                guard let srcRail = topology.rail(pair.src), let dstRail = topology.rail(pair.dst) else {
                    builder.skip()
                    continue
                }
                let pathClass: PathClass =
                    pair.src == pair.dst
                    ? .loopback
                    : pair.src.node == pair.dst.node ? .intraHost : srcRail.leaf == dstRail.leaf ? .sameLeaf : .crossLeaf
                let srcLeaf = place[srcRail.leaf] ?? 0
                let dstLeaf = place[dstRail.leaf] ?? 0
                guard let wire = pair.rttMicros else {
                    builder.add(pathClass: pathClass, srcLeaf: srcLeaf, dstLeaf: dstLeaf, sent: pair.sent, lost: pair.lost, sketch: nil)
                    continue
                }
                guard let bytes = wire.decodedBytes else {
                    builder.skip()
                    continue
                }
                bytes.withUnsafeBufferPointer {
                    builder.add(pathClass: pathClass, srcLeaf: srcLeaf, dstLeaf: dstLeaf, sent: pair.sent, lost: pair.lost, sketch: $0)
                }
            }
        }
        return builder.finish(window: window)
    }
}
