// Window rollups for the weekly report: one window's pairs merged by path class and by leaf pair,
// stored per window (classes) and per hour (leaf pairs), recorded again without counting twice.

import Engine
import FleetModel
import Foundation
import QuantileSketch
import Store
import Testing

@Suite("store: window rollups")
struct RollupTests {
    /// gpu-0000..gpu-0003, two rails, two nodes per leaf: leaf-s0-r0/r1 and leaf-s1-r0/r1.
    let topology = try! Topology.railOptimized(.init(nodes: 4, rails: 2, nodesPerLeaf: 2, spines: 2))

    func pair(_ src: String, _ dst: String, sent: Int, lost: Int, median: Double, seed: UInt64) throws -> Report.Pair {
        Report.Pair(
            src: EndpointID(src)!, dst: EndpointID(dst)!, sent: sent, lost: lost,
            rttMicros: sent > lost ? try sketchBytes(count: sent - lost, median: median, seed: seed) : nil)
    }

    func report(_ node: String, start: Int64, _ pairs: [Report.Pair]) -> Report {
        Report(
            node: NodeName(node)!, windowStart: Timestamp(secondsSinceEpoch: start), windowSeconds: 10,
            agentVersion: "test", transport: .udp, pairs: pairs, health: [:])
    }

    @Test("a window merges by class and by leaf pair, and an hour merges its windows once")
    func rollUp() throws {
        let start: Int64 = 1_794_999_600  // a multiple of 3600: an hour's first window
        let reports = [
            report("gpu-0000", start: start, [
                try pair("gpu-0000/0", "gpu-0000/0", sent: 100, lost: 0, median: 4, seed: 1),
                try pair("gpu-0000/0", "gpu-0000/1", sent: 20, lost: 0, median: 6, seed: 2),
                try pair("gpu-0000/0", "gpu-0001/0", sent: 20, lost: 2, median: 9, seed: 3),  // same leaf
                try pair("gpu-0000/0", "gpu-0002/0", sent: 20, lost: 0, median: 20, seed: 4),  // s0-r0 -> s1-r0
                try pair("gpu-0000/0", "gpu-9999/0", sent: 20, lost: 0, median: 20, seed: 5),  // unknown: skipped
            ]),
            report("gpu-0002", start: start, [
                try pair("gpu-0002/0", "gpu-0000/0", sent: 20, lost: 20, median: 0, seed: 6),  // all lost, no sketch
                try pair("gpu-0002/0", "gpu-0001/0", sent: 20, lost: 0, median: 22, seed: 7),  // s1-r0 -> s0-r0
            ]),
        ]
        let rollup = WindowRollup.make(window: Timestamp(secondsSinceEpoch: start), reports: reports, topology: topology)
        #expect(rollup.skippedPairs == 1)
        #expect(rollup.classes.map(\.pathClass) == [.loopback, .intraHost, .sameLeaf, .crossLeaf])
        let cross = try #require(rollup.classes.last?.aggregate)
        #expect(cross.pairCount == 3 && cross.sent == 60 && cross.lost == 20)
        #expect(cross.sketch?.count == 40)
        #expect(rollup.leafPairs.map { "\($0.leaves.src)>\($0.leaves.dst)" } == [
            "leaf-s0-r0>leaf-s0-r0", "leaf-s0-r0>leaf-s1-r0", "leaf-s1-r0>leaf-s0-r0",
        ])
        let back = try #require(rollup.leafPairs.last?.aggregate)
        #expect(back.pairCount == 2 && back.sent == 40 && back.lost == 20 && back.sketch?.count == 20)
        // The same reports in another order give the same rollup.
        #expect(WindowRollup.make(window: rollup.window, reports: reports.reversed(), topology: topology) == rollup)

        try withStore { store, _ in
            func moved(_ offset: Int64) -> WindowRollup {
                WindowRollup.make(
                    window: Timestamp(secondsSinceEpoch: start + offset),
                    reports: reports.map {
                        var moved = $0
                        moved.windowStart = Timestamp(secondsSinceEpoch: start + offset)
                        return moved
                    }, topology: topology)
            }
            try store.record(rollups: [rollup, moved(10)])
            try store.record(rollups: [moved(10)])  // again, as a restart's rebuild does: counted once
            let classes = try store.classAggregates(
                from: Timestamp(secondsSinceEpoch: start), to: Timestamp(secondsSinceEpoch: start + 20))
            #expect(classes.count == 8 && classes.filter { $0.pathClass == .crossLeaf }.map(\.sent) == [60, 60])
            func hours() throws -> [LeafRollup] {
                try store.leafHours(from: Timestamp(secondsSinceEpoch: start), to: Timestamp(secondsSinceEpoch: start + 7_200))
            }
            var first = try hours()
            #expect(first.count == 3 && first.allSatisfy { $0.start.secondsSinceEpoch == start })
            let merged = try #require(first.last)
            #expect(merged.aggregate.pairCount == 4 && merged.aggregate.sent == 80 && merged.aggregate.lost == 40)
            #expect(merged.aggregate.sketch?.count == 40 && merged.p99 != nil)

            // The next hour starts: the first hour keeps its numbers, not its sketches; the day merges both.
            try store.record(rollups: [moved(3_600)])
            first = try hours().filter { $0.start.secondsSinceEpoch == start }
            #expect(first.count == 3 && first.allSatisfy { $0.aggregate.sketch == nil })
            #expect(first.last?.p99 == merged.p99 && first.last?.aggregate.sent == 80)
            #expect(try hours().filter { $0.start.secondsSinceEpoch == start + 3_600 }.allSatisfy { $0.aggregate.sketch != nil })
            let days = try store.leafDays(from: Timestamp(secondsSinceEpoch: start - start % 86_400), to: Timestamp(secondsSinceEpoch: start + 86_400))
            #expect(days.count == 3 && days.last?.aggregate.sent == 120 && days.last?.aggregate.sketch?.count == 60)
            // A leaf pair whose hour began with every probe lost (no sketch) still gets the later
            // windows' sketches of that hour.
            let dark = WindowRollup.make(
                window: Timestamp(secondsSinceEpoch: start + 3_610),
                reports: [report("gpu-0003", start: start + 3_610, [try pair("gpu-0003/1", "gpu-0001/1", sent: 20, lost: 20, median: 0, seed: 9)])],
                topology: topology)
            let light = WindowRollup.make(
                window: Timestamp(secondsSinceEpoch: start + 3_620),
                reports: [report("gpu-0003", start: start + 3_620, [try pair("gpu-0003/1", "gpu-0001/1", sent: 20, lost: 0, median: 30, seed: 10)])],
                topology: topology)
            try store.record(rollups: [dark, light])
            let recovered = try hours().first { $0.src.rawValue == "leaf-s1-r1" && $0.dst.rawValue == "leaf-s0-r1" }
            #expect(recovered?.aggregate.sent == 40 && recovered?.aggregate.sketch?.count == 20 && recovered?.p99 != nil)
            // A window an hour late: its sealed hour counts it, its p99 stays what it was.
            try store.record(rollups: [moved(20)])
            first = try hours().filter { $0.start.secondsSinceEpoch == start }
            #expect(first.last?.aggregate.sent == 120 && first.last?.p99 == merged.p99 && first.last?.aggregate.sketch == nil)
        }
    }
}
