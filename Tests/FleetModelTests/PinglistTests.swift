// Pinglist planning: every endpoint's loopback, intra-host and same-leaf pairs; cross-leaf pairs that
// cover every leaf–spine link, balanced and capped, or say which links they could not cover;
// determinism for a seed.

import Foundation
import Testing

@testable import FleetModel

/// A rail-optimized fabric (see `Topology.railOptimized`).
private func fabric(_ nodes: Int, rails: Int, perLeaf: Int, spines: Int) throws -> Topology {
    try Topology.railOptimized(.init(nodes: nodes, rails: rails, nodesPerLeaf: perLeaf, spines: spines))
}

/// Cross-leaf pairs per endpoint, as source and as destination.
private func crossLeafCounts(_ list: Pinglist) -> (out: [EndpointID: Int], in: [EndpointID: Int]) {
    var out: [EndpointID: Int] = [:]
    var into: [EndpointID: Int] = [:]
    for pair in list.pairs where pair.pathClass == .crossLeaf {
        out[pair.src, default: 0] += 1
        into[pair.dst, default: 0] += 1
    }
    return (out, into)
}

/// What every plan must satisfy, whatever the fabric: sorted and one pair per source and
/// destination; classes and pinned routes that the topology agrees with; a loopback and all
/// intra-host pairs for every endpoint; the cap; sources within one of destinations; coverage
/// figures that match the pairs; and uncovered links exactly those under the target.
private func expectSound(
    _ topology: Topology, _ list: Pinglist, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let options = list.options
    for (a, b) in zip(list.pairs, list.pairs.dropFirst()) {
        #expect((a.src, a.dst) < (b.src, b.dst), "\(a) before \(b)", sourceLocation: sourceLocation)
    }
    var counted: [LinkID: Int] = [:]
    for pair in list.pairs {
        let path = try topology.path(from: pair.src, to: pair.dst, route: topology.route(of: pair))
        #expect(path.pathClass == pair.pathClass, "\(pair)", sourceLocation: sourceLocation)
        #expect(
            (pair.via != nil) == (pair.pathClass == .crossLeaf), "\(pair)", sourceLocation: sourceLocation)
        if pair.pathClass == .crossLeaf {
            #expect(path.spineChoices.isEmpty, "\(pair): route pinned", sourceLocation: sourceLocation)
            for case .link(let link) in path.components
            where topology.accessLink(of: pair.src) != link
                && topology.accessLink(of: pair.dst) != link
            {
                counted[link, default: 0] += 1
            }
        }
    }
    for endpoint in topology.endpoints {
        let mine = Set(list.pairs(from: endpoint).map { $0.dst })
        #expect(mine.contains(endpoint), "\(endpoint) loopback", sourceLocation: sourceLocation)
        for rail in topology.node(endpoint.node)!.rails where rail.endpoint != endpoint {
            let dst = rail.endpoint
            #expect(mine.contains(dst), "\(endpoint) → \(dst)", sourceLocation: sourceLocation)
        }
    }
    let (out, into) = crossLeafCounts(list)
    for endpoint in topology.endpoints {
        let sent = out[endpoint] ?? 0
        let received = into[endpoint] ?? 0
        #expect(
            sent <= options.maxCrossLeafPerEndpoint, "\(endpoint) sends \(sent)",
            sourceLocation: sourceLocation)
        #expect(
            received <= options.maxCrossLeafPerEndpoint, "\(endpoint) receives \(received)",
            sourceLocation: sourceLocation)
        #expect(
            abs(sent - received) <= 1, "\(endpoint): \(sent) out, \(received) in",
            sourceLocation: sourceLocation)
    }
    let fabricLinks = topology.links.filter {
        if case .switch = $0.a, case .switch = $0.b { return true } else { return false }
    }.map(\.id).sorted()
    #expect(list.linkCoverage.map(\.link) == fabricLinks, sourceLocation: sourceLocation)
    for entry in list.linkCoverage {
        #expect(entry.pairs == counted[entry.link] ?? 0, "\(entry.link)", sourceLocation: sourceLocation)
        #expect(entry.endpoints <= entry.pairs, sourceLocation: sourceLocation)
        #expect(list.coverage(of: entry.link) == entry, sourceLocation: sourceLocation)
    }
    #expect(
        list.uncoveredLinks == list.linkCoverage.filter { $0.pairs < options.linkCoverage }.map(\.link),
        sourceLocation: sourceLocation)
}

/// Nodes with 2 and 4 rails on two leaves per rail, and rail 3 only on one leaf.
private func unevenDocument() -> TopologyDocument {
    var document = TopologyDocument(version: 1, nodes: [], switches: [], links: [])
    for name in ["leaf-a", "leaf-b", "spine-1", "spine-2"] {
        document.switches.append(.init(name: name, tier: name.hasPrefix("leaf") ? "leaf" : "spine"))
    }
    for leaf in ["leaf-a", "leaf-b"] {
        for spine in ["spine-1", "spine-2"] {
            document.links.append(.init(id: "\(leaf)~\(spine)", a: leaf, b: spine))
        }
    }
    let nodes: [(String, Int, String)] = [
        ("n1", 4, "leaf-a"), ("n2", 2, "leaf-a"), ("n3", 4, "leaf-b"), ("n4", 2, "leaf-b"),
        ("n5", 2, "leaf-b"),
    ]
    for (name, rails, leaf) in nodes {
        document.nodes.append(
            .init(
                name: name,
                rails: (0..<rails).map { .init(rail: $0, leaf: leaf, nic: nil, gpu: nil, address: nil) }))
        for rail in 0..<rails {
            document.links.append(.init(id: "\(name)/\(rail)~\(leaf)", a: "\(name)/\(rail)", b: leaf))
        }
    }
    return document
}

struct PinglistTests {
    @Test func theSameSeedGivesTheSameListAndAnotherSeedMayNot() throws {
        let topology = try fabric(64, rails: 4, perLeaf: 8, spines: 8)
        let first = topology.pinglist(PinglistOptions(seed: 7))
        let again = topology.pinglist(PinglistOptions(seed: 7))
        #expect(first.pairs == again.pairs)
        #expect(first.linkCoverage == again.linkCoverage)
        let other = topology.pinglist(PinglistOptions(seed: 8))
        #expect(other.pairs != first.pairs)
        // Only the cross-leaf choice depends on the seed.
        #expect(
            other.pairs.filter { $0.pathClass != .crossLeaf }
                == first.pairs.filter { $0.pathClass != .crossLeaf })
        try expectSound(topology, other)
    }

    @Test func theOrderOfTheDocumentDoesNotMatter() throws {
        let topology = try fabric(24, rails: 4, perLeaf: 4, spines: 4)
        var document = topology.document
        document.nodes.reverse()
        document.switches.reverse()
        document.links.reverse()
        let reordered = try Topology(document)
        #expect(reordered.pinglist().pairs == topology.pinglist().pairs)
        #expect(reordered.pinglist().linkCoverage == topology.pinglist().linkCoverage)
    }

    @Test func everyEndpointProbesItsLoopbackAndItsNodesOtherRails() throws {
        let topology = try Topology(unevenDocument())
        let list = topology.pinglist()
        try expectSound(topology, list)
        let n1 = list.pairs(from: NodeName("n1")!)
        #expect(
            n1.filter { $0.pathClass == .loopback }.map(\.src.description) == [
                "n1/0", "n1/1", "n1/2", "n1/3",
            ])
        #expect(n1.filter { $0.pathClass == .intraHost }.count == 4 * 3)
        let n2 = list.pairs(from: NodeName("n2")!)
        #expect(
            n2.filter { $0.pathClass == .intraHost }.map(\.description) == [
                "n2/0 n2/1 intra-host", "n2/1 n2/0 intra-host",
            ])
        #expect(n2.allSatisfy { $0.src.node.rawValue == "n2" })
        // Intra-host and loopback pairs are fixed: 10 loopbacks, 12 + 2 + 12 + 2 + 2 intra-host.
        #expect(list.pairs.filter { $0.pathClass == .loopback }.count == 14)
        #expect(list.pairs.filter { $0.pathClass == .intraHost }.count == 30)
    }

    @Test func sameLeafPeersAreARingSoEveryEndpointIsADestinationAsOftenAsASource() throws {
        let topology = try fabric(10, rails: 2, perLeaf: 10, spines: 2)
        let list = topology.pinglist()
        for leaf in topology.leaves {
            let ring = topology.endpoints.filter { topology.rail($0)!.leaf == leaf }.sorted()
            #expect(ring.count == 10)
            for (i, src) in ring.enumerated() {
                let peers = list.pairs(from: src).filter { $0.pathClass == .sameLeaf }.map(\.dst)
                #expect(peers == (1...4).map { ring[(i + $0) % ring.count] }.sorted(), "\(src)")
            }
        }
        var received: [EndpointID: Int] = [:]
        for pair in list.pairs where pair.pathClass == .sameLeaf { received[pair.dst, default: 0] += 1 }
        #expect(received.count == 20 && received.values.allSatisfy { $0 == 4 })
        // A leaf of two endpoints: each probes the other once.
        let small = try fabric(2, rails: 1, perLeaf: 2, spines: 1).pinglist()
        #expect(
            small.pairs.filter { $0.pathClass == .sameLeaf }.map(\.description) == [
                "gpu-0000/0 gpu-0001/0 same-leaf", "gpu-0001/0 gpu-0000/0 same-leaf",
            ])
        let none = topology.pinglist(PinglistOptions(sameLeafPeers: 0))
        #expect(!none.pairs.contains { $0.pathClass == .sameLeaf })
    }

    static let coverableShapes: [Topology.Shape] = [
        .init(nodes: 16, rails: 8, nodesPerLeaf: 4, spines: 4),
        .init(nodes: 64, rails: 8, nodesPerLeaf: 16, spines: 8),
        .init(nodes: 40, rails: 2, nodesPerLeaf: 8, spines: 1),  // one spine
        .init(nodes: 48, rails: 4, nodesPerLeaf: 2, spines: 4),  // two endpoints per leaf
        .init(nodes: 16, rails: 8, nodesPerLeaf: 2, spines: 8),  // two per leaf, every endpoint at the cap
        .init(nodes: 33, rails: 8, nodesPerLeaf: 16, spines: 4),  // a last SU of one node
        .init(nodes: 16, rails: 8, nodesPerLeaf: 16, spines: 4),  // one SU: a rail has one leaf
        .init(nodes: 512, rails: 8, nodesPerLeaf: 32, spines: 16),
    ]

    @Test("every leaf–spine link is crossed by at least k pairs", arguments: coverableShapes)
    func everyLinkIsCovered(shape: Topology.Shape) throws {
        let topology = try Topology.railOptimized(shape)
        let list = topology.pinglist()
        try expectSound(topology, list)
        #expect(list.uncoveredLinks == [])
        #expect(list.linkCoverage.allSatisfy { $0.pairs >= 8 })
        // The pairs of a link come from distinct endpoints on its leaf, as far as the leaf has them.
        var onLeaf: [SwitchName: Int] = [:]
        for endpoint in topology.endpoints { onLeaf[topology.rail(endpoint)!.leaf, default: 0] += 1 }
        // (One endpoint may take two of a link's pairs where leaves are small and the plan tight.)
        let slack = shape.nodes >= 64 && shape.nodes % shape.nodesPerLeaf == 0 ? 0 : 1
        for entry in list.linkCoverage {
            #expect(entry.endpoints >= min(8, onLeaf[entry.leaf]!) - slack, "\(entry)")
        }
        // Every endpoint probes across the spine tier at least once.
        let (out, _) = crossLeafCounts(list)
        #expect(topology.endpoints.allSatisfy { (out[$0] ?? 0) >= 1 })
    }

    @Test func crossLeafPairsStayWithinARailWhereTheFabricAllows() throws {
        for shape in [
            Topology.Shape(nodes: 64, rails: 8, nodesPerLeaf: 16, spines: 8),
            .init(nodes: 96, rails: 2, nodesPerLeaf: 2, spines: 2),
        ] {
            let topology = try Topology.railOptimized(shape)
            for options in [PinglistOptions(), PinglistOptions(crossRailFallback: false)] {
                let list = topology.pinglist(options)
                #expect(list.uncoveredLinks == [], "\(shape)")
                let cross = list.pairs.filter { $0.pathClass == .crossLeaf }
                #expect(!cross.isEmpty && cross.allSatisfy { $0.src.rail == $0.dst.rail }, "\(shape)")
            }
        }
    }

    @Test("a rail with two leaves: each leaf–spine link gets pairs that avoid its twin")
    func twinLinksGetPairsOfTheirOwn() throws {
        for shape in [
            Topology.Shape(nodes: 8, rails: 2, nodesPerLeaf: 4, spines: 2),
            .init(nodes: 16, rails: 4, nodesPerLeaf: 8, spines: 2),
            .init(nodes: 64, rails: 8, nodesPerLeaf: 32, spines: 4),
        ] {
            let topology = try Topology.railOptimized(shape)
            /// Per leaf–spine link, the other leaf–spine link of each pair crossing it.
            func partners(_ list: Pinglist) throws -> [LinkID: [LinkID]] {
                var result: [LinkID: [LinkID]] = [:]
                for pair in list.pairs where pair.pathClass == .crossLeaf {
                    let path = try topology.path(from: pair.src, to: pair.dst, route: topology.route(of: pair))
                    let fabricLinks = path.components.compactMap { component -> LinkID? in
                        guard case .link(let id) = component, id.rawValue.hasPrefix("leaf-") else { return nil }
                        return id
                    }
                    try #require(fabricLinks.count == 2, "\(pair)")
                    result[fabricLinks[0], default: []].append(fabricLinks[1])
                    result[fabricLinks[1], default: []].append(fabricLinks[0])
                }
                return result
            }
            /// The fewest pairs of any link that avoid the link most of its pairs also cross.
            func fewestAvoidingTwin(_ list: Pinglist) throws -> Int {
                try partners(list).values.map { others in
                    let mostShared = Dictionary(grouping: others) { $0 }.values.map(\.count).max()!
                    return others.count - mostShared
                }.min()!
            }
            let list = topology.pinglist()
            try expectSound(topology, list)
            #expect(list.uncoveredLinks == [], "\(shape)")
            #expect(try fewestAvoidingTwin(list) >= 2, "\(shape)")
            // Same-rail pairs alone leave every link's pairs on its twin: what the pass repairs.
            let strict = topology.pinglist(PinglistOptions(crossRailFallback: false))
            #expect(try fewestAvoidingTwin(strict) == 0, "\(shape)")
        }
    }

    @Test func oneScalableUnitNeedsCrossRailPairs() throws {
        // Every rail has one leaf: same-rail pairs never leave it, so only other rails reach the spines.
        let topology = try fabric(16, rails: 8, perLeaf: 16, spines: 4)
        let strict = topology.pinglist(PinglistOptions(crossRailFallback: false))
        try expectSound(topology, strict)
        #expect(!strict.pairs.contains { $0.pathClass == .crossLeaf })
        #expect(strict.uncoveredLinks.count == 8 * 4)
        let fallback = topology.pinglist()
        #expect(fallback.uncoveredLinks == [])
        #expect(
            fallback.pairs.filter { $0.pathClass == .crossLeaf }.allSatisfy { $0.src.rail != $0.dst.rail })
    }

    @Test func aSingleLeafHasNothingToCrossAndSaysSo() throws {
        let topology = try fabric(4, rails: 1, perLeaf: 4, spines: 2)
        let list = topology.pinglist()
        try expectSound(topology, list)
        #expect(!list.pairs.contains { $0.pathClass == .crossLeaf })
        #expect(list.uncoveredLinks.map(\.rawValue) == ["leaf-s0-r0~spine-00", "leaf-s0-r0~spine-01"])
        #expect(list.linkCoverage.allSatisfy { $0.pairs == 0 })
    }

    @Test func theCapHoldsAndWhatItLeavesUncoveredIsReported() throws {
        // Two endpoints per leaf and 64 spines: 8 × 64 pairs per leaf, but 2 endpoints × 2 × 16 ends.
        let thin = try fabric(32, rails: 2, perLeaf: 2, spines: 64)
        let list = thin.pinglist()
        try expectSound(thin, list)
        #expect(list.uncoveredLinks.count > 0)
        #expect(list.uncoveredLinks.count <= list.linkCoverage.count)
        let (out, into) = crossLeafCounts(list)
        // The cap is used to the full: every endpoint sends and receives 16.
        #expect(thin.endpoints.allSatisfy { out[$0] == 16 && into[$0] == 16 })
        // The shortfall is spread: 64 pair ends per leaf over 64 links, about one each.
        #expect(list.linkCoverage.allSatisfy { $0.pairs <= 2 })
        #expect(list.linkCoverage.filter { $0.pairs == 0 }.count * 100 <= list.linkCoverage.count)

        // A tighter cap on a fabric that needs 8 per endpoint.
        let topology = try fabric(64, rails: 2, perLeaf: 8, spines: 16)
        #expect(topology.pinglist().uncoveredLinks == [])
        let capped = topology.pinglist(PinglistOptions(maxCrossLeafPerEndpoint: 3))
        try expectSound(topology, capped)
        #expect(capped.uncoveredLinks.count == capped.linkCoverage.count)
        let none = topology.pinglist(PinglistOptions(maxCrossLeafPerEndpoint: 0))
        try expectSound(topology, none)
        #expect(!none.pairs.contains { $0.pathClass == .crossLeaf })
        #expect(none.uncoveredLinks.count == 8 * 2 * 16)
    }

    @Test func moreCoverageAsksForMorePairs() throws {
        let topology = try fabric(64, rails: 2, perLeaf: 16, spines: 8)
        for k in [1, 4, 8, 16, 24] {
            let list = topology.pinglist(PinglistOptions(linkCoverage: k))
            try expectSound(topology, list)
            #expect(list.uncoveredLinks == [], "k = \(k)")
            // The minimum of one cross-leaf source per endpoint asks 2 × 16 / 8 = 4 per link.
            #expect(list.linkCoverage.allSatisfy { $0.pairs >= k && $0.pairs <= max(k, 4) + 1 }, "k = \(k)")
        }
    }

    @Test func unevenRailCountsAndARailOnOneLeaf() throws {
        let topology = try Topology(unevenDocument())
        let list = topology.pinglist(PinglistOptions(linkCoverage: 2))
        try expectSound(topology, list)
        #expect(list.uncoveredLinks == [])
        let strict = topology.pinglist(PinglistOptions(linkCoverage: 2, crossRailFallback: false))
        try expectSound(topology, strict)
        #expect(strict.pairs.filter { $0.pathClass == .crossLeaf }.allSatisfy { $0.src.rail == $0.dst.rail })
    }

    @Test func pairsFromANodeAreExactlyThoseItSources() throws {
        let topology = try fabric(24, rails: 4, perLeaf: 4, spines: 4)
        let list = topology.pinglist()
        var total = 0
        for node in topology.nodes {
            let mine = list.pairs(from: node.name)
            #expect(!mine.isEmpty && mine.allSatisfy { $0.src.node == node.name })
            #expect(mine == list.pairs.filter { $0.src.node == node.name })
            total += mine.count
        }
        #expect(total == list.pairs.count)
        #expect(list.pairs(from: NodeName("gpu-9999")!) == [])
        #expect(list.pairs(from: NodeName("a")!) == [])
    }

    @Test func routesAreWhatTheAgentReports() throws {
        let topology = try fabric(8, rails: 2, perLeaf: 4, spines: 2)
        let list = topology.pinglist()
        let cross = try #require(list.pairs.first { $0.pathClass == .crossLeaf })
        let route = try #require(topology.route(of: cross))
        #expect(route == [topology.rail(cross.src)!.leaf, cross.via!, topology.rail(cross.dst)!.leaf])
        #expect(cross.description.hasSuffix(" cross-leaf via \(cross.via!)"))
        let same = try #require(list.pairs.first { $0.pathClass == .sameLeaf })
        #expect(topology.route(of: same) == [topology.rail(same.src)!.leaf])
        #expect(topology.route(of: list.pairs[0]) == nil)
    }

    /// The figures in docs/pinglist.md; the 12,500-node fabric is too big for `make test`:
    /// `FAULTLINE_PINGLIST_FIGURES=1 swift test --filter PinglistTests/figures`.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["FAULTLINE_PINGLIST_FIGURES"] != nil))
    func figures() throws {
        let shapes: [Topology.Shape] = [
            .init(nodes: 16, rails: 8, nodesPerLeaf: 4, spines: 4),
            .init(nodes: 16, rails: 8, nodesPerLeaf: 8, spines: 8),
            .init(nodes: 16, rails: 8, nodesPerLeaf: 2, spines: 8),
            .init(nodes: 512, rails: 8, nodesPerLeaf: 32, spines: 16),
            .init(nodes: 12_500, rails: 8, nodesPerLeaf: 32, spines: 64),
        ]
        for shape in shapes {
            let topology = try Topology.railOptimized(shape)
            let wall = ContinuousClock()
            var list: Pinglist?
            let cpuStart = clock()
            let elapsed = wall.measure { list = topology.pinglist() }
            let cpu = Double(clock() - cpuStart) / Double(CLOCKS_PER_SEC)
            let plan = list!
            var perClass: [PathClass: Int] = [:]
            for pair in plan.pairs { perClass[pair.pathClass, default: 0] += 1 }
            var perSource: [EndpointID: Int] = [:]
            for pair in plan.pairs { perSource[pair.src, default: 0] += 1 }
            let (out, _) = crossLeafCounts(plan)
            let crossCounts = topology.endpoints.map { out[$0] ?? 0 }
            let crossRail = plan.pairs.filter { $0.pathClass == .crossLeaf && $0.src.rail != $0.dst.rail }
                .count
            let coverage = plan.linkCoverage.map(\.pairs)
            let distinct = plan.linkCoverage.map(\.endpoints)
            let classes = PathClass.allCases.map { "\($0.rawValue) \(perClass[$0] ?? 0)" }.joined(
                separator: ", ")
            let mean = Double(plan.pairs.count) / Double(topology.endpointCount)
            print(
                "figures \(shape.nodes) nodes × \(shape.rails) rails, \(shape.nodesPerLeaf)/leaf,",
                "\(shape.spines) spines: \(plan.pairs.count) pairs (\(classes)), cross-rail \(crossRail);",
                "per endpoint \(perSource.values.min()!)-\(perSource.values.max()!) mean \(mean);",
                "cross-leaf out \(crossCounts.min()!)-\(crossCounts.max()!);",
                "links \(coverage.count) pairs \(coverage.min()!)-\(coverage.max()!)",
                "endpoints \(distinct.min()!)-\(distinct.max()!); uncovered \(plan.uncoveredLinks.count);",
                "planned in \(elapsed) (\(cpu) s of CPU)")
        }
    }
}
