// The engine on a small hand-built fleet: windows and what it counts instead of applying, pair
// verdicts, localization of endpoint, link, node and switch faults, the two-reporter rule,
// hysteresis, and byte-identical output.

import Foundation
import QuantileSketch
import Simulation
import Testing

@testable import Engine
@testable import FleetModel

/// A fleet of `nodes` × `rails`, every endpoint probing its loopback, its node's other rails and
/// every endpoint of the same rail on other nodes (cross-leaf pairs routed via spine by a fixed
/// rule), `probes` probes per pair, with faults given as a function of a pair's components.
struct Fleet {
    let topology: Topology
    let start = Timestamp(secondsSinceEpoch: 1_800_000_000)
    var probes = 40
    /// Per pair: (RTT factor, loss rate) from the components on its route.
    var fault: (Set<Component>) -> (factor: Double, loss: Double) = { _ in (1, 0) }
    /// Nodes that send no report (a dead node also answers nothing: give it loss 1 via `fault`).
    var silent: Set<String> = []
    /// Nodes whose host stalls: every probe they send (their own pairs only) takes this many times
    /// as long, while probes other nodes send them are answered at full speed.
    var stalledHosts: [String: Double] = [:]

    init(nodes: Int = 8, rails: Int = 2, nodesPerLeaf: Int = 4, spines: Int = 2) throws {
        topology = try Topology.railOptimized(
            .init(nodes: nodes, rails: rails, nodesPerLeaf: nodesPerLeaf, spines: spines))
    }

    func baseRTT(_ pathClass: PathClass) -> Double {
        switch pathClass {
        case .loopback: 2
        case .intraHost: 3
        case .sameLeaf: 5
        case .crossLeaf: 7
        }
    }

    func route(_ src: EndpointID, _ dst: EndpointID) -> [SwitchName]? {
        let srcLeaf = topology.rail(src)!.leaf
        let dstLeaf = topology.rail(dst)!.leaf
        guard srcLeaf != dstLeaf else { return nil }
        let spines = topology.spines(of: srcLeaf)
        let spine = spines[
            (src.node.rawValue.hashValueStable &+ dst.node.rawValue.hashValueStable) % spines.count]
        return [srcLeaf, spine, dstLeaf]
    }

    func reports(window: Int) -> [Report] {
        let windowStart = start.adding(seconds: Int64(window * 10))
        return topology.nodes.filter { !silent.contains($0.name.rawValue) }.map { node in
            var generator = SeededGenerator(
                seed: UInt64(window) &* 1_000_003 &+ UInt64(node.name.rawValue.hashValueStable))
            var pairs: [Report.Pair] = []
            for rail in node.rails {
                let src = rail.endpoint
                let dsts = topology.endpoints.filter { $0.node == src.node || $0.rail == src.rail }
                for dst in dsts {
                    let route = route(src, dst)
                    let path = try! topology.path(from: src, to: dst, route: route)
                    var (factor, loss) = fault(Set(path.components))
                    factor *= stalledHosts[node.name.rawValue] ?? 1
                    var sketch = try! QuantileSketch()
                    var lost = 0
                    for _ in 0..<probes {
                        if generator.nextUnit() < loss {
                            lost += 1
                        } else {
                            try! sketch.add(
                                baseRTT(path.pathClass) * factor * (1 + 0.05 * generator.nextUnit()))
                        }
                    }
                    let encoded = lost == probes ? nil : WireSketch.bytes(sketch.encoded())
                    pairs.append(
                        Report.Pair(
                            src: src, dst: dst, sent: probes, lost: lost, rttMicros: encoded, path: route))
                }
            }
            return Report(
                node: node.name, windowStart: windowStart, windowSeconds: 10, agentVersion: "test",
                transport: .udp, pairs: pairs)
        }
    }

    /// Runs `windows` windows through an engine; returns the findings as JSON lines.
    func run(windows: Int, rules: Rules = .defaults, engine: inout Engine) -> [String] {
        var lines: [String] = []
        for window in 0..<windows {
            for report in reports(window: window) { engine.ingest(report) }
            let tick = start.adding(seconds: Int64((window + 1 + rules.graceWindows) * 10))
            lines += engine.advance(to: tick).map(\.jsonLine)
        }
        return lines
    }

    func run(windows: Int) -> [String] {
        var engine = Engine(topology: topology, rules: .defaults, windowSeconds: 10)
        return run(windows: windows, engine: &engine)
    }
}

extension String {
    /// A hash that is the same in every process (Swift's `hashValue` is seeded per process).
    var hashValueStable: Int {
        var hash: UInt64 = 1_469_598_103_934_665_603
        for byte in utf8 { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
        return Int(hash >> 1)
    }
}

func opened(_ lines: [String]) -> [String] {
    lines.filter { $0.contains("\"event\": \"opened\"") }.map { line in
        let component = line.components(separatedBy: "\"component\": \"")[1].components(separatedBy: "\"")[0]
        let faultClass = line.components(separatedBy: "\"class\": \"")[1].components(separatedBy: "\"")[0]
        return "\(component) \(faultClass)"
    }
}

struct EngineTests {
    @Test func aClassChangeIsAnUpdateNamingTheClassItReplaces() throws {
        var tracker = FindingTracker()
        let key = FindingTracker.Key(component: .node(NodeName("gpu-a001")!), symptom: .loss)
        func observe(_ window: Int64, _ faultClass: String?) -> [Finding] {
            let observations = faultClass.map {
                [key: FindingTracker.Observation(faultClass: $0, isHard: true, confidence: 1, evidence: [:])]
            } ?? [:]
            return tracker.advance(
                window: Timestamp(secondsSinceEpoch: 10 * window), observations: observations, rules: .defaults)
        }
        var events: [Finding] = []
        for (window, faultClass) in [(0, "node.unreachable"), (1, "node.unreachable"), (2, "node.loss"), (3, "node.loss")] {
            events += observe(Int64(window), faultClass)
        }
        for window in 4...8 { events += observe(Int64(window), nil) }
        #expect(events.map(\.event) == [.opened, .updated, .closed])
        #expect(events.map(\.faultClass) == ["node.unreachable", "node.loss", "node.loss"])
        #expect(events.map(\.previousClass) == [nil, "node.unreachable", nil])
    }

    @Test func aHealthyFleetHasNoFindings() throws {
        let fleet = try Fleet()
        #expect(fleet.run(windows: 12).isEmpty)
    }

    @Test func aDeadEndpointOpensAsHardAndClosesWhenItRecovers() throws {
        var fleet = try Fleet()
        let victim = Component.endpoint(EndpointID("gpu-0005/1")!)
        fleet.fault = { components in components.contains(victim) ? (1, 1) : (1, 0) }
        var engine = Engine(topology: fleet.topology, rules: .defaults, windowSeconds: 10)
        let during = fleet.run(windows: 4, engine: &engine)
        #expect(opened(during) == ["gpu-0005/1 gpu.down"])
        // Opened in the second faulty window (2 of 3): the window starting 10 s after the first.
        #expect(during.first?.contains("\"window\": \"\(fleet.start.adding(seconds: 10))\"") == true)
        fleet.fault = { _ in (1, 0) }  // repaired
        var closes: [String] = []
        for window in 4..<10 {
            for report in fleet.reports(window: window) { engine.ingest(report) }
            closes += engine.advance(to: fleet.start.adding(seconds: Int64((window + 2) * 10))).map(
                \.jsonLine)
        }
        #expect(
            closes.count == 1 && closes[0].contains("\"event\": \"closed\"")
                && closes[0].contains("gpu-0005/1"))
    }

    @Test func aSlowEndpointIsBlamedAloneNotItsNodeOrPeers() throws {
        var fleet = try Fleet()
        let victim = Component.endpoint(EndpointID("gpu-0002/0")!)
        fleet.fault = { components in components.contains(victim) ? (4, 0) : (1, 0) }
        #expect(opened(fleet.run(windows: 5)) == ["gpu-0002/0 gpu.degraded"])
    }

    @Test func aLossyAccessLinkIsBlamedNotItsEndpoint() throws {
        var fleet = try Fleet()
        let victim = Component.link(LinkID("gpu-0006/1~leaf-s1-r1")!)
        fleet.fault = { components in components.contains(victim) ? (1, 0.3) : (1, 0) }
        #expect(opened(fleet.run(windows: 5)) == ["gpu-0006/1~leaf-s1-r1 link.loss"])
    }

    @Test func aSlowNodeIsOneFindingNotOnePerRail() throws {
        var fleet = try Fleet(nodes: 8, rails: 4)
        let victim = Component.node(NodeName("gpu-0003")!)
        let endpoints = Set((0..<4).map { Component.endpoint(EndpointID("gpu-0003/\($0)")!) })
        fleet.fault = { components in
            components.contains(victim) || !components.isDisjoint(with: endpoints) ? (3, 0) : (1, 0)
        }
        #expect(opened(fleet.run(windows: 5)) == ["gpu-0003 node.degraded"])
    }

    @Test func aSlowLeafSpineLinkIsBlamedNotTheSpine() throws {
        var fleet = try Fleet(nodes: 8, rails: 2, nodesPerLeaf: 2, spines: 2)
        let victim = Component.link(LinkID("leaf-s0-r0~spine-00")!)
        fleet.fault = { components in components.contains(victim) ? (4, 0) : (1, 0) }
        #expect(opened(fleet.run(windows: 5)) == ["leaf-s0-r0~spine-00 link.degraded"])
    }

    @Test func aStalledProberHostIsNotBlamedWhileItsPeersReachItAtFullSpeed() throws {
        var fleet = try Fleet(nodes: 8, rails: 4)
        fleet.stalledHosts = ["gpu-0003": 4]
        var engine = Engine(topology: fleet.topology, rules: .defaults, windowSeconds: 10)
        #expect(fleet.run(windows: 6, engine: &engine).isEmpty)
        #expect(engine.counters.noisyReporterWindows == 6)
        // The same node slow in both directions is the node (aSlowNodeIsOneFindingNotOnePerRail).
    }

    @Test func aSpineSlowOnHalfItsFlowsIsTheSpineNotItsLinks() throws {
        var fleet = try Fleet(nodes: 32, rails: 2, nodesPerLeaf: 4, spines: 2)
        let victim = Component.switch(SwitchName("spine-01")!)
        fleet.fault = { components in
            // Half of the flows, chosen by the pair (as ECMP hashes flows onto a bad port group).
            let pair = components.map(\.description).sorted().joined(separator: " ")
            return components.contains(victim) && pair.hashValueStable % 2 == 0 ? (3, 0) : (1, 0)
        }
        #expect(opened(fleet.run(windows: 5)) == ["spine-01 switch.degraded"])
    }

    @Test func linksInSeriesAreReportedAsAmbiguous() throws {
        // Two leaves per rail and same-rail pairs only: every pair through one of a spine's links
        // of a rail crosses the other too, so a dead one cannot be told from its twin.
        var fleet = try Fleet(nodes: 8, rails: 2, nodesPerLeaf: 4, spines: 2)
        let victim = Component.link(LinkID("leaf-s1-r0~spine-00")!)
        fleet.fault = { components in components.contains(victim) ? (1, 1) : (1, 0) }
        let lines = fleet.run(windows: 3)
        #expect(opened(lines) == ["leaf-s0-r0~spine-00 link.down"])
        #expect(lines.first?.contains("\"ambiguousWith\": [\"leaf-s1-r0~spine-00\"]") == true, "\(lines)")
    }

    @Test func aDeadNodeIsUnreachable() throws {
        var fleet = try Fleet()
        fleet.silent = ["gpu-0004"]
        let victim = Component.node(NodeName("gpu-0004")!)
        fleet.fault = { components in
            components.contains(victim)
                || components.contains {
                    if case .endpoint(let e) = $0 { e.node.rawValue == "gpu-0004" } else { false }
                }
                ? (1, 1) : (1, 0)
        }
        #expect(opened(fleet.run(windows: 4)) == ["gpu-0004 node.unreachable"])
    }

    @Test func oneLyingReporterCannotGetAHealthyNodeBlamed() throws {
        let fleet = try Fleet()
        var engine = Engine(topology: fleet.topology, rules: .defaults, windowSeconds: 10)
        var lines: [String] = []
        for window in 0..<6 {
            for var report in fleet.reports(window: window) {
                if report.node.rawValue == "gpu-0001" {
                    // It claims every probe toward gpu-0007 was lost.
                    for i in report.pairs.indices where report.pairs[i].dst.node.rawValue == "gpu-0007" {
                        report.pairs[i].lost = report.pairs[i].sent
                        report.pairs[i].rttMicros = nil
                    }
                }
                engine.ingest(report)
            }
            lines += engine.advance(to: fleet.start.adding(seconds: Int64((window + 2) * 10))).map(\.jsonLine)
        }
        #expect(!lines.contains { $0.contains("gpu-0007") }, "\(lines)")
    }

    @Test func countedNotApplied() throws {
        let fleet = try Fleet()
        var engine = Engine(topology: fleet.topology, rules: .defaults, windowSeconds: 10)
        let first = fleet.reports(window: 0)
        #expect(engine.ingest(first[0]) == .accepted)
        #expect(engine.ingest(first[0]) == .duplicate)
        var wrongLength = first[1]
        wrongLength.windowSeconds = 20
        #expect(engine.ingest(wrongLength) == .wrongWindowLength)
        var stranger = first[1]
        stranger.node = NodeName("not-in-topology")!
        #expect(engine.ingest(stranger) == .unknownNode)
        var broken = first[1]
        broken.pairs[0].rttMicros = WireSketch(base64: "AAAA")  // valid base64, not a sketch
        broken.pairs[1].dst = EndpointID("nowhere/0")!
        #expect(engine.ingest(broken) == .accepted)
        _ = engine.advance(to: fleet.start.adding(seconds: 20))
        #expect(engine.counters.windowsClosed == 1)
        #expect(engine.counters.pairsInvalidSketch == 1)
        #expect(engine.counters.pairsUnknownEndpoint == 1)
        #expect(engine.counters.pairsJudged == first[0].pairs.count + first[1].pairs.count - 2)
        #expect(engine.ingest(first[2]) == .late)
        #expect(engine.counters.reportsLate == 1)
        #expect(engine.counters.reportsDuplicate == 1 && engine.counters.reportsUnknownNode == 1)
        var farAhead = first[3]
        farAhead.windowStart = fleet.start.adding(seconds: 10 * (Engine.maxOpenWindows + 1))
        #expect(engine.ingest(farAhead) == .tooFarAhead)
        #expect(engine.counters.reportsTooFarAhead == 1)
    }

    @Test func decisiveHealthBecomesAFindingOfTheRail() throws {
        let fleet = try Fleet()
        var engine = Engine(topology: fleet.topology, rules: .defaults, windowSeconds: 10)
        var lines: [String] = []
        for window in 0..<4 {
            for var report in fleet.reports(window: window) {
                if report.node.rawValue == "gpu-0006" {
                    report.health = [
                        "ports": .array([.object(["rail": .number(1), "state": .string("DOWN")])]),
                        "pcie": .array([
                            .object(["rail": .number(0), "width": .number(16), "expectedWidth": .number(16)])
                        ]),
                        "future-key": .string("kept and ignored"),
                    ]
                }
                engine.ingest(report)
            }
            lines += engine.advance(to: fleet.start.adding(seconds: Int64((window + 2) * 10))).map(\.jsonLine)
        }
        #expect(opened(lines) == ["gpu-0006/1 gpu.port-down"])
    }

    @Test func sameReportsInAnyOrderGiveTheSameBytes() throws {
        var fleet = try Fleet()
        let victim = Component.endpoint(EndpointID("gpu-0005/1")!)
        fleet.fault = { components in components.contains(victim) ? (1, 1) : (1, 0) }
        let reference = fleet.run(windows: 5)
        #expect(!reference.isEmpty)
        for seed in 0..<3 {
            var generator = SeededGenerator(seed: UInt64(seed))
            var engine = Engine(topology: fleet.topology, rules: .defaults, windowSeconds: 10)
            var shuffled = (0..<5).flatMap { fleet.reports(window: $0) }
            shuffled.shuffle(using: &generator)
            // The last window first: nothing has closed yet, so earlier windows are not late.
            let latest = shuffled.filter { $0.windowStart == fleet.start.adding(seconds: 40) }
            for report in latest + shuffled.filter({ $0.windowStart != fleet.start.adding(seconds: 40) }) {
                #expect(engine.ingest(report) == .accepted)
            }
            #expect(engine.finish().map(\.jsonLine) == reference)
        }
    }
}

@Suite("median by selection")
struct SelectMedianTests {
    @Test("equals the median of the sorted values, for many seeded arrays with ties, odd and even")
    func agreesWithSorting() {
        var generator = SeededGenerator(seed: 7)
        #expect({ var empty: [Double] = []; return selectMedian(&empty) }() == nil)
        for round in 0..<500 {
            // Mostly short arrays (sorted outright), every fifth long enough for rounds of selection.
            let count = 1 + Int(generator.next() % (round % 5 == 0 ? 5_000 : 64))
            // Few distinct values in some rounds, so ties and runs of equal pivots are common.
            let distinct = round % 3 == 0 ? 3 : 1_000
            var values = (0..<count).map { _ in Double(generator.next() % UInt64(distinct)) / 7 }
            let sorted = values.sorted()
            let middle = sorted.count / 2
            let expected = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
            #expect(selectMedian(&values) == expected, "round \(round): \(sorted)")
            #expect(values.sorted() == sorted, "round \(round): a permutation")
        }
    }

    @Test("arrays arranged against the pivots still give the median: sorted, reversed, all equal, organ pipe")
    func awkwardArrangements() {
        for count in [17, 100, 4_097, 20_000] {
            let ascending = (0..<count).map { Double($0) }
            let pipe = (0..<count).map { Double(min($0, count - $0)) }
            for arrangement in [ascending, Array(ascending.reversed()), [Double](repeating: 2.5, count: count), pipe] {
                var values = arrangement
                let sorted = arrangement.sorted()
                let middle = count / 2
                let expected = count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
                #expect(selectMedian(&values) == expected, "\(count) values")
                #expect(values.sorted() == sorted)
            }
        }
    }
}

@Suite("the window's per-pair records")
struct PairRecordTests {
    @Test("stay small: a window of a 100k-GPU fleet has millions of them, streamed over several times")
    func sizes() {
        #expect(MemoryLayout<PairObservation>.stride == 48)
        #expect(MemoryLayout<JudgedPair>.stride == 56)
        // What the reading thread hands the engine per pair.
        #expect(MemoryLayout<SketchReading>.stride == 24)
        #expect(MemoryLayout<PairMeasure>.stride == 32)
        // What the engine keeps of each pair between windows.
        #expect(MemoryLayout<NodePairs.Entry>.stride == 20)
    }

    @Test("a measure and a reading give back what they were made of; no reading counts nothing")
    func measuresKeepTheirNumbers() {
        let reading = SketchReading(count: QuantileSketch.maxCount, p50: 7.25, p99: 19.5, isValid: true)
        #expect(reading.isValid && reading.count == QuantileSketch.maxCount)
        #expect(reading.p50 == 7.25 && reading.p99 == 19.5)
        #expect(!SketchReading.none.isValid && SketchReading.none.count == 0)
        #expect(SketchReading(count: 5, p50: 1, p99: 2, isValid: false).count == 0)
        let measure = PairMeasure(sent: Report.maxProbesPerPair, lost: 3, sketch: reading)
        #expect(measure.sent == Report.maxProbesPerPair && measure.lost == 3 && measure.sketch == reading)
    }

    @Test("without samples, no quantiles; with them, the sketch's")
    func quantilesOnlyWithSamples() {
        func observation(sent: Int32, lost: Int32, p50: Double?, p99: Double?) -> PairObservation {
            PairObservation(
                pathClass: .sameLeaf, routeStart: 0, routeCount: 0, srcNumber: 0, dstNumber: 1, reporterNumber: 2,
                dstNodeNumber: 3, sent: sent, lost: lost, p50: p50, p99: p99)
        }
        let dead = observation(sent: 20, lost: 20, p50: nil, p99: nil)
        #expect(dead.p50 == nil && dead.p99 == nil && dead.samples == 0)
        let returned = observation(sent: 20, lost: 1, p50: 9.5, p99: 12)
        #expect(returned.p50 == 9.5 && returned.p99 == 12 && returned.samples == 19)
        let extreme = observation(sent: .max, lost: 0, p50: 1, p99: 2)
        #expect(extreme.samples == Int(Int32.max) && extreme.lossRate == 0)
    }
}

@Suite("a node's pairs from window to window")
struct NodePairsTests {
    /// The first node's pairs of the test fleet, as a roster.
    private func roster(of fleet: Fleet) -> PairRoster {
        PairRoster(pairs: fleet.reports(window: 0)[0].pairs)
    }

    @Test("an entry's median is that of its last eight healthy p50s, sorted, with ties and before eight")
    func historyMedian() throws {
        let fleet = try Fleet()
        var state = NodePairs()
        let roster = roster(of: fleet)
        state.rebuild(for: roster, topology: fleet.topology, table: ComponentTable(topology: fleet.topology))
        var generator = SeededGenerator(seed: 11)
        for entry in 0..<3 {
            #expect(state.historyMedian(entry) == nil)
            var remembered: [Double] = []
            for write in 0..<40 {
                // Few distinct values for one entry, so that equal values leave and arrive.
                let value = entry == 1 ? Double(generator.next() % 3) : Double(generator.next() % 1_000) / 8
                state.remember(value, entry)
                remembered.append(value)
                let sorted = remembered.suffix(NodePairs.historyLength).sorted()
                let middle = sorted.count / 2
                let expected = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
                #expect(state.historyMedian(entry) == expected, "entry \(entry), write \(write)")
                #expect(state.historyMinimum(entry) == sorted.first, "entry \(entry), write \(write)")
            }
        }
    }

    @Test("the same routes are known by identity or by value; changed ones are resolved anew, keeping the history of the pairs still there")
    func rosterChanges() throws {
        let fleet = try Fleet()
        let table = ComponentTable(topology: fleet.topology)
        var state = NodePairs()
        func resolved(_ roster: PairRoster) -> Bool { state.isResolved(for: roster) }
        let first = roster(of: fleet)
        #expect(!resolved(first))
        state.rebuild(for: first, topology: fleet.topology, table: table)
        #expect(resolved(first))
        #expect(resolved(roster(of: fleet)))  // another object, the same routes
        state.remember(5, 0)
        state.remember(7, 1)
        // The first pair dropped: the second one's history moves with it to the front.
        let shorter = PairRoster(Array(first.routes.dropFirst()))
        #expect(!resolved(shorter))
        state.rebuild(for: shorter, topology: fleet.topology, table: table)
        #expect(state.entries.count == first.routes.count - 1)
        #expect(state.historyMedian(0) == 7 && state.historyMedian(1) == nil)
        // A route through another spine is another pair's route: the same endpoints, so the same history.
        let index = try #require(shorter.routes.firstIndex { $0.path != nil })
        var routes = shorter.routes
        let path = try #require(routes[index].path)
        let spine = try #require(fleet.topology.spines(of: path[0]).first { $0 != path[1] })
        routes[index] = PairRoster.Route(src: routes[index].src, dst: routes[index].dst, path: [path[0], spine, path[2]])
        state.remember(9, index)
        let median = try #require(state.historyMedian(index))
        let rerouted = PairRoster(routes)
        #expect(!resolved(rerouted))
        state.rebuild(for: rerouted, topology: fleet.topology, table: table)
        #expect(state.historyMedian(index) == median)
        #expect(state.entries[index].problem == nil)
    }
}

@Suite("judging a pair")
struct JudgeTests {
    @Test("a pair's own median is looked at only where it can matter: the verdicts are those of always looking, for many seeded pairs, histories and rules")
    func ownHistoryOnlyWhereItMatters() {
        var generator = SeededGenerator(seed: 5)
        func unit() -> Double { Double(generator.next() % 1_000_000) / 1_000_000 }
        var asked = 0
        var skipped = 0
        var madeByHistory = 0
        for round in 0..<5_000 {
            let classRules = PathClassRules(
                slowP50Ratio: 1 + 2 * unit(), slowP99Ratio: 1 + 2 * unit(), minExcessMicros: round % 4 == 0 ? 0 : 3 * unit(),
                ceilingP50Micros: round % 5 == 0 ? 20 * unit() : 0, ceilingP99Micros: 0)
            let baseline = ClassBaseline(medianP50: 5 + unit(), medianP99: 9 + unit(), pairs: 100)
            let history = (0..<(1 + Int(generator.next() % 8))).map { _ in 3 + 6 * unit() }
            let sorted = history.sorted()
            let middle = sorted.count / 2
            let median = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
            let p50 = 3 + 12 * unit()
            let pair = PairObservation(
                pathClass: .sameLeaf, routeStart: 0, routeCount: 0, srcNumber: 0, dstNumber: 1, reporterNumber: 2,
                dstNodeNumber: 3, sent: 20, lost: 0, p50: p50, p99: p50 * (1 + unit()))
            var looked = false
            let judged = judge(
                pair, baseline: baseline, classRules: classRules, ownLowestP50: { sorted.first },
                ownP50: { looked = true; return median }, rules: .defaults)
            // Below every possible limit: the median is always looked at.
            let always = judge(
                pair, baseline: baseline, classRules: classRules, ownLowestP50: { -.infinity }, ownP50: { median },
                rules: .defaults)
            #expect(judged.verdict == always.verdict && judged.score == always.score, "round \(round)")
            #expect(judged.isSlowAtMedian == always.isSlowAtMedian, "round \(round)")
            if p50 > baseline.medianP50 { if looked { asked += 1 } else { skipped += 1 } }
            let withoutHistory = judge(
                pair, baseline: baseline, classRules: classRules, ownLowestP50: { nil }, ownP50: { nil }, rules: .defaults)
            if withoutHistory.verdict != always.verdict { madeByHistory += 1 }
        }
        // Both ways taken, and some verdicts made by the pair's own history.
        #expect(asked > 100 && skipped > 100 && madeByHistory > 100)
    }
}
