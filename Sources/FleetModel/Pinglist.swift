// Pinglist planning: which endpoint pairs the agents probe every window. Per endpoint: its loopback,
// its node's other rails, a ring of same-leaf peers, and cross-leaf peers pinned to spines so that
// every leaf–spine link is crossed by enough probed pairs from distinct endpoints, with every
// endpoint a source about as often as a destination. Pure and deterministic for a seed; see
// docs/pinglist.md for the method and the figures.

/// One pair an agent probes: `src` sends, `dst` answers. A cross-leaf pair carries the spine its
/// route is pinned to (the agent picks the IB source route or RoCE flow label that lands on it and
/// reports `path` = [src leaf, via, dst leaf]).
public struct PlannedPair: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let src: EndpointID
    public let dst: EndpointID
    public let pathClass: PathClass
    /// The spine of a cross-leaf pair; nil for every other class.
    public let via: SwitchName?

    public init(src: EndpointID, dst: EndpointID, pathClass: PathClass, via: SwitchName? = nil) {
        self.src = src
        self.dst = dst
        self.pathClass = pathClass
        self.via = via
    }

    /// `src dst class`, then `via spine` for a cross-leaf pair: the CLI's line.
    public var description: String {
        let head = "\(src) \(dst) \(pathClass.rawValue)"
        guard let via else { return head }
        return "\(head) via \(via)"
    }

    /// By source, then destination (a planned list has one pair per source and destination), then
    /// class and spine.
    public static func < (lhs: PlannedPair, rhs: PlannedPair) -> Bool {
        if lhs.src != rhs.src { return lhs.src < rhs.src }
        if lhs.dst != rhs.dst { return lhs.dst < rhs.dst }
        if lhs.pathClass != rhs.pathClass { return lhs.pathClass < rhs.pathClass }
        switch (lhs.via, rhs.via) {
        case (nil, nil): return false
        case (nil, _): return true
        case (_, nil): return false
        case (let a?, let b?): return a < b
        }
    }
}

/// What the planner aims for. Negative numbers count as 0.
public struct PinglistOptions: Sendable, Equatable {
    /// Same-leaf peers each endpoint probes (fewer when its leaf has fewer other endpoints).
    public var sameLeafPeers: Int
    /// Planned pairs that must cross every leaf–spine link in a window.
    public var linkCoverage: Int
    /// The most cross-leaf pairs an endpoint is the source of, and the most it is the destination of.
    public var maxCrossLeafPerEndpoint: Int
    /// The fewest cross-leaf pairs an endpoint is the source of, where the fabric allows it (so every
    /// endpoint exercises its access link towards the spine tier even when coverage needs fewer).
    public var minCrossLeafPerEndpoint: Int
    /// Cross-leaf pairs stay within a rail; when same-rail pairs cannot cover a leaf's spine links
    /// (one scalable unit, so a rail has a single leaf; tiny leaves with few same-rail partners),
    /// pair endpoints of different rails for the rest rather than leave links under-covered.
    public var crossRailFallback: Bool
    public var seed: UInt64

    public init(
        sameLeafPeers: Int = 4, linkCoverage: Int = 8, maxCrossLeafPerEndpoint: Int = 16,
        minCrossLeafPerEndpoint: Int = 1, crossRailFallback: Bool = true, seed: UInt64 = 1
    ) {
        self.sameLeafPeers = sameLeafPeers
        self.linkCoverage = linkCoverage
        self.maxCrossLeafPerEndpoint = maxCrossLeafPerEndpoint
        self.minCrossLeafPerEndpoint = minCrossLeafPerEndpoint
        self.crossRailFallback = crossRailFallback
        self.seed = seed
    }
}

/// The planned pairs of a whole fabric, with how well they cover its leaf–spine links.
public struct Pinglist: Sendable {
    /// How many planned pairs cross one leaf–spine link.
    public struct LinkCoverage: Sendable, Hashable {
        public let link: LinkID
        public let leaf: SwitchName
        public let spine: SwitchName
        /// Cross-leaf pairs whose pinned route crosses the link.
        public let pairs: Int
        /// Distinct endpoints on the leaf's side of those pairs.
        public let endpoints: Int
    }

    public let options: PinglistOptions
    /// Every planned pair, sorted; one per source and destination.
    public let pairs: [PlannedPair]
    /// Every leaf–spine link of the topology, sorted by link id.
    public let linkCoverage: [LinkCoverage]
    /// The leaf–spine links crossed by fewer than `options.linkCoverage` pairs, sorted: what the
    /// topology or the per-endpoint cap did not allow.
    public let uncoveredLinks: [LinkID]

    /// The pairs whose source is an endpoint of `node`, sorted.
    public func pairs(from node: NodeName) -> [PlannedPair] {
        let start = lowerBound { $0.src.node < node }
        let end = lowerBound { $0.src.node <= node }
        return Array(pairs[start..<end])
    }

    /// The pairs whose source is `endpoint`, sorted.
    public func pairs(from endpoint: EndpointID) -> [PlannedPair] {
        let start = lowerBound { $0.src < endpoint }
        let end = lowerBound { $0.src <= endpoint }
        return Array(pairs[start..<end])
    }

    /// The coverage of one leaf–spine link; nil for any other link.
    public func coverage(of link: LinkID) -> LinkCoverage? {
        var low = 0
        var high = linkCoverage.count
        while low < high {
            let mid = (low + high) / 2
            if linkCoverage[mid].link < link { low = mid + 1 } else { high = mid }
        }
        return low < linkCoverage.count && linkCoverage[low].link == link ? linkCoverage[low] : nil
    }

    /// The first index whose pair fails `isBefore` (pairs are sorted, so the predicate holds on a prefix).
    private func lowerBound(_ isBefore: (PlannedPair) -> Bool) -> Int {
        var low = 0
        var high = pairs.count
        while low < high {
            let mid = (low + high) / 2
            if isBefore(pairs[mid]) { low = mid + 1 } else { high = mid }
        }
        return low
    }
}

extension Topology {
    /// Plans the pairs every endpoint probes in a window (docs/pinglist.md):
    /// 1. its loopback;
    /// 2. every other rail of its node (intra-host);
    /// 3. the next `sameLeafPeers` endpoints of other nodes on its leaf, in a ring, so every
    ///    endpoint is a destination as often as a source;
    /// 4. cross-leaf peers of the same rail, each pinned to a spine, so that every leaf–spine link
    ///    is crossed by at least `linkCoverage` pairs; each endpoint is the source and the
    ///    destination of at most `maxCrossLeafPerEndpoint` of them, and a source at most one more
    ///    or one fewer times than a destination.
    ///
    /// The same topology and options give the same list, on every run and every machine.
    public func pinglist(_ options: PinglistOptions = PinglistOptions()) -> Pinglist {
        var planner = PinglistPlanner(self, options)
        return planner.plan()
    }

    /// The switches a planned pair's probes cross, as a report's `path` carries them: `[leaf]` for
    /// a same-leaf pair, `[src leaf, spine, dst leaf]` for a cross-leaf one, nil for the others.
    public func route(of pair: PlannedPair) -> [SwitchName]? {
        guard let srcLeaf = rail(pair.src)?.leaf, let dstLeaf = rail(pair.dst)?.leaf else { return nil }
        switch pair.pathClass {
        case .loopback, .intraHost: return nil
        case .sameLeaf: return [srcLeaf]
        case .crossLeaf: return pair.via.map { [srcLeaf, $0, dstLeaf] }
        }
    }
}

// MARK: - The planner

/// Works on integer indexes (endpoints in sorted order, leaves and spines by name) so that nothing
/// depends on hashing order and the output comes out sorted without comparing strings.
private struct PinglistPlanner {
    let topology: Topology
    let options: PinglistOptions
    var random: SplitMix64

    // Endpoints, sorted: index order is EndpointID order.
    var endpoints: [EndpointID] = []
    var endpointNode: [Int] = []
    var endpointLeaf: [Int] = []
    /// Per node (sorted by name): its endpoints' indexes, in rail order.
    var nodeEndpoints: [[Int]] = []

    var leafNames: [SwitchName] = []
    var spineNames: [SwitchName] = []
    /// Per leaf: the spines it links to (indexes, ascending), and the first slot of its links.
    var leafSpines: [[Int]] = []
    var slotBase: [Int] = []
    /// Per slot (a leaf–spine link): its leaf and spine.
    var slotLeaf: [Int] = []
    var slotSpine: [Int] = []
    /// Per spine: the leaves linked to it, each with the slot of the link.
    var spineMembers: [[(leaf: Int, slot: Int)]] = []
    /// Per leaf: its endpoints (in a seeded order, for pairing).
    var leafEndpoints: [[Int]] = []
    /// Per leaf: its endpoints by rail, then node: the same-leaf ring.
    var leafRing: [[Int]] = []

    /// A unit is the endpoints of one rail on one leaf (a rail-optimized leaf is one unit).
    var unitLeaf: [Int] = []
    var unitRail: [Int] = []
    var unitEndpoints: [[Int]] = []
    /// Per leaf: its units, by rail.
    var leafUnits: [[Int]] = []
    /// Endpoints per rail number (0...63).
    var railTotals = [Int](repeating: 0, count: EndpointID.rails.count)

    // Cross-leaf state.
    var degree: [Int] = []
    /// Round-robin pools for pairing: unit `u` is group `u`, leaf `l` is group `units + l`; a
    /// group's endpoints are `poolItems[poolStart[g]..<poolStart[g + 1]]`, next up at its cursor.
    var poolItems: [Int] = []
    var poolStart: [Int] = []
    var poolCursor: [Int] = []
    var usedPairs: Set<UInt64> = []
    var edgeA: [Int] = []
    var edgeB: [Int] = []
    var edgeSpine: [Int] = []
    var edgeSlotA: [Int] = []
    var edgeSlotB: [Int] = []
    var slotCount: [Int] = []

    /// Per endpoint, the most cross-leaf pairs it may be in (as source plus as destination).
    let degreeCap: Int
    /// What `splitPair` may still spend, in pairs and endpoints looked at: the repair of a fabric
    /// that cannot be covered stays bounded.
    var splitWork = 5_000_000
    /// The same for the steps of `swapTrail`'s walks.
    var trailWork = 20_000_000

    init(_ topology: Topology, _ options: PinglistOptions) {
        self.topology = topology
        self.options = options
        self.degreeCap = 2 * max(0, options.maxCrossLeafPerEndpoint)
        self.random = SplitMix64(seed: options.seed)
    }

    mutating func plan() -> Pinglist {
        index()
        let sameLeaf = sameLeafPeers()
        planCrossLeaf()
        let crossLeaf = orientCrossLeaf()
        let pairs = assemble(sameLeaf: sameLeaf, crossLeaf: crossLeaf)
        let coverage = linkCoverage(distinct: crossLeaf.distinct)
        let target = max(0, options.linkCoverage)
        return Pinglist(
            options: options, pairs: pairs, linkCoverage: coverage,
            uncoveredLinks: coverage.filter { $0.pairs < target }.map(\.link))
    }

    // MARK: Indexes

    mutating func index() {
        leafNames = topology.leaves.sorted()
        spineNames = topology.spines.sorted()
        var leafIndex: [SwitchName: Int] = [:]
        for (i, name) in leafNames.enumerated() { leafIndex[name] = i }
        var spineIndex: [SwitchName: Int] = [:]
        for (i, name) in spineNames.enumerated() { spineIndex[name] = i }

        for (nodeNumber, node) in topology.nodes.sorted(by: { $0.name < $1.name }).enumerated() {
            var mine: [Int] = []
            for rail in node.rails {  // in rail order
                mine.append(endpoints.count)
                endpoints.append(rail.endpoint)
                endpointNode.append(nodeNumber)
                endpointLeaf.append(leafIndex[rail.leaf]!)  // validated: every rail names a leaf
                railTotals[rail.endpoint.rail] += 1
            }
            nodeEndpoints.append(mine)
        }

        spineMembers = Array(repeating: [], count: spineNames.count)
        for (leaf, name) in leafNames.enumerated() {
            let spines = topology.spines(of: name).map { spineIndex[$0]! }  // sorted by name
            slotBase.append(slotLeaf.count)
            leafSpines.append(spines)
            for spine in spines {
                spineMembers[spine].append((leaf, slotLeaf.count))
                slotLeaf.append(leaf)
                slotSpine.append(spine)
            }
        }
        slotCount = Array(repeating: 0, count: slotLeaf.count)

        leafEndpoints = Array(repeating: [], count: leafNames.count)
        leafUnits = Array(repeating: [], count: leafNames.count)
        var unitOfLeafRail: [[Int]] = Array(
            repeating: Array(repeating: -1, count: EndpointID.rails.count), count: leafNames.count)
        for (e, endpoint) in endpoints.enumerated() {
            let leaf = endpointLeaf[e]
            leafEndpoints[leaf].append(e)
            var unit = unitOfLeafRail[leaf][endpoint.rail]
            if unit < 0 {
                unit = unitLeaf.count
                unitOfLeafRail[leaf][endpoint.rail] = unit
                unitLeaf.append(leaf)
                unitRail.append(endpoint.rail)
                unitEndpoints.append([])
                leafUnits[leaf].append(unit)
            }
            unitEndpoints[unit].append(e)
        }
        for leaf in leafUnits.indices { leafUnits[leaf].sort { unitRail[$0] < unitRail[$1] } }
        // The same-leaf ring: by rail, then node (endpoint order), before the seeded shuffles.
        leafRing = leafUnits.map { units in units.flatMap { unitEndpoints[$0] } }
        // Seeded orders: which endpoints of a leaf take its first cross-leaf pairs.
        for unit in unitEndpoints.indices { random.shuffle(&unitEndpoints[unit]) }
        for leaf in leafEndpoints.indices { random.shuffle(&leafEndpoints[leaf]) }
        degree = Array(repeating: 0, count: endpoints.count)
        for list in unitEndpoints + leafEndpoints {
            poolStart.append(poolItems.count)
            poolItems += list
        }
        poolStart.append(poolItems.count)
        poolCursor = Array(repeating: 0, count: unitEndpoints.count + leafNames.count)
    }

    // MARK: Same leaf

    /// Per endpoint, its same-leaf destinations: on each leaf, the endpoints in a ring by rail and
    /// node; each probes the next `sameLeafPeers` of other nodes.
    func sameLeafPeers() -> [[Int]] {
        var peers = [[Int]](repeating: [], count: endpoints.count)
        let wanted = max(0, options.sameLeafPeers)
        guard wanted > 0 else { return peers }
        for ring in leafRing {
            for (position, src) in ring.enumerated() {
                var step = 1
                while peers[src].count < wanted, step < ring.count {
                    let dst = ring[(position + step) % ring.count]
                    if endpointNode[dst] != endpointNode[src] { peers[src].append(dst) }
                    step += 1
                }
            }
        }
        return peers
    }

    // MARK: Cross leaf

    /// Chooses the cross-leaf pairs (unordered, each with its spine), in two passes over the spines
    /// and a repair. Pass 1, within each rail: at every spine, the units of the rail linked to it
    /// share out their demand as a graph on leaves (`realize`), so a link's pairs go to different
    /// leaves. Pass 2, when allowed, covers what pass 1 could not with endpoints of any rail. The
    /// repair mends what is still short (`repair`).
    mutating func planCrossLeaf() {
        guard degreeCap > 0, !endpoints.isEmpty else { return }
        let target = leafTargets()
        var ends = 0
        for leaf in leafNames.indices { ends += target[leaf] * leafSpines[leaf].count }
        usedPairs.reserveCapacity(ends / 2 + ends / 8)
        sameRailPass(target)
        if options.crossRailFallback { anyRailPass(target) }
        repair()
        if options.crossRailFallback { separateTwinLinks() }
    }

    /// Pairs a link's flows must have that avoid its twin (below) for the two to be told apart.
    static let pairsAvoidingTwin = 2

    /// Gives every leaf–spine link flows of its own. When a rail has two leaves, every same-rail
    /// pair through `leaf-s1-r3~spine-00` also crosses `leaf-s0-r3~spine-00`: the two links are
    /// twins that no set of results can tell apart (a dead one blames both or, by name, the wrong
    /// one). For each link whose pairs nearly all cross one other link, adds pairs over the same
    /// spine toward leaves of other rails until `pairsAvoidingTwin` of its pairs avoid the twin.
    mutating func separateTwinLinks() {
        var partners = [[Int]](repeating: [], count: slotLeaf.count)
        for edge in edgeA.indices {
            partners[edgeSlotA[edge]].append(edgeSlotB[edge])
            partners[edgeSlotB[edge]].append(edgeSlotA[edge])
        }
        let cap = degreeCap
        for slot in slotLeaf.indices where !partners[slot].isEmpty {
            // The link most of this one's pairs also cross, and how many avoid it.
            var counts: [Int: Int] = [:]
            for partner in partners[slot] { counts[partner, default: 0] += 1 }
            let twin = counts.max { ($0.value, -$0.key) < ($1.value, -$1.key) }!.key
            var avoiding = partners[slot].count - counts[twin]!
            guard avoiding < Self.pairsAvoidingTwin else { continue }
            let leaf = slotLeaf[slot]
            let spine = slotSpine[slot]
            let members = spineMembers[spine]
            let start = random.below(members.count)
            search: for t in 0..<members.count {
                let other = members[(start + t) % members.count]
                guard other.leaf != leaf, other.slot != twin else { continue }
                // The least used endpoints first, so the extra pairs spread over the leaves.
                let xs = leafEndpoints[leaf].filter { degree[$0] < cap }.sorted { degree[$0] < degree[$1] }
                let ys = leafEndpoints[other.leaf].filter { degree[$0] < cap }.sorted { degree[$0] < degree[$1] }
                for x in xs {
                    for y in ys where endpointNode[y] != endpointNode[x] {
                        let key = x < y ? UInt64(x) << 32 | UInt64(y) : UInt64(y) << 32 | UInt64(x)
                        guard usedPairs.insert(key).inserted else { continue }
                        addEdge(x, y, spine: spine, slot, other.slot)
                        partners[slot].append(other.slot)
                        partners[other.slot].append(slot)
                        avoiding += 1
                        if avoiding >= Self.pairsAvoidingTwin { break search }
                        continue search  // the next pair toward another leaf
                    }
                }
            }
        }
    }

    mutating func sameRailPass(_ target: [Int]) {
        // Pass 1: same rail. A leaf's target at a spine is split among its units whose rail has
        // another leaf at that spine.
        var shares: [[Int]] = unitLeaf.map { Array(repeating: 0, count: leafSpines[$0].count) }
        for (spine, members) in spineMembers.enumerated() {
            var leavesOfRail = [Int](repeating: 0, count: EndpointID.rails.count)
            for member in members {
                for unit in leafUnits[member.leaf] { leavesOfRail[unitRail[unit]] += 1 }
            }
            for member in members where target[member.leaf] > 0 {
                var routable = 0
                for unit in leafUnits[member.leaf] where leavesOfRail[unitRail[unit]] >= 2 { routable += 1 }
                guard routable > 0 else { continue }
                let position = member.slot - slotBase[member.leaf]
                let total = target[member.leaf]
                var i = 0
                for unit in leafUnits[member.leaf] where leavesOfRail[unitRail[unit]] >= 2 {
                    let turn = (i + spine) % routable
                    shares[unit][position] = total / routable + (turn < total % routable ? 1 : 0)
                    i += 1
                }
            }
        }
        var allowance: [[Int]] = []
        for unit in unitEndpoints.indices {
            let partners = railTotals[unitRail[unit]] - unitEndpoints[unit].count
            let budget = unitEndpoints[unit].count * min(degreeCap, partners)
            allowance.append(scaled(shares[unit], toBudget: budget))
        }
        for (spine, members) in spineMembers.enumerated() {
            var unitsOfRail = [[(unit: Int, slot: Int)]](repeating: [], count: EndpointID.rails.count)
            for member in members {
                let position = member.slot - slotBase[member.leaf]
                for unit in leafUnits[member.leaf] where allowance[unit][position] > 0 {
                    unitsOfRail[unitRail[unit]].append((unit, member.slot))
                }
            }
            for group in unitsOfRail where group.count >= 2 {
                let demands = group.map { allowance[$0.unit][$0.slot - slotBase[unitLeaf[$0.unit]]] }
                for (a, b) in realize(demands).edges {
                    _ = connectUnits(group[a], group[b], spine: spine)
                }
            }
        }
    }

    mutating func anyRailPass(_ target: [Int]) {
        // Pass 2: whatever is still short of the target, between leaves, any rails, within what
        // the endpoints have left.
        var anyShort = false
        for slot in 0..<slotLeaf.count where slotCount[slot] < target[slotLeaf[slot]] {
            anyShort = true
            break
        }
        guard anyShort else { return }
        var residual: [[Int]] = []
        for leaf in leafNames.indices {
            let base = slotBase[leaf]
            let short = leafSpines[leaf].indices.map { max(0, target[leaf] - slotCount[base + $0]) }
            let room = leafEndpoints[leaf].reduce(0) { sum, e in
                let otherNodes =
                    endpoints.count - leafEndpoints[leaf].count - (nodeEndpoints[endpointNode[e]].count - 1)
                return sum + max(0, min(degreeCap, otherNodes) - degree[e])
            }
            residual.append(scaled(short, toBudget: room))
        }
        for (spine, members) in spineMembers.enumerated() {
            let group = members.filter { residual[$0.leaf][$0.slot - slotBase[$0.leaf]] > 0 }
            guard !group.isEmpty else { continue }
            let demands = group.map { residual[$0.leaf][$0.slot - slotBase[$0.leaf]] }
            let realized = realize(demands)
            for (a, b) in realized.edges {
                _ = connectLeaves(group[a], group[b], spine: spine)
            }
            // Left over (one leaf with more demand than the others had): helpers, any leaf at this
            // spine with room, each taking one pair, round the spine's members.
            var next = random.below(members.count)
            for (i, left) in realized.leftover.enumerated() where left > 0 {
                var needed = left
                var misses = 0
                while needed > 0, misses < members.count {
                    let helper = members[next % members.count]
                    next += 1
                    if helper.leaf != group[i].leaf, connectLeaves(group[i], helper, spine: spine) {
                        needed -= 1
                        misses = 0
                    } else {
                        misses += 1
                    }
                }
            }
        }
    }

    /// Mends what the passes left short (pairs lost to endpoints already paired, or to a leaf with
    /// more demand than its partners at a spine): first every endpoint up to the minimum, then
    /// every link up to the coverage, by adding a pair where both ends have room or else by
    /// moving a pair from a spine where both its leaves have more than enough.
    mutating func repair() {
        let floor = 2 * min(max(0, options.minCrossLeafPerEndpoint), max(0, options.maxCrossLeafPerEndpoint))
        for e in endpoints.indices where degree[e] < floor {
            let leaf = endpointLeaf[e]
            let base = slotBase[leaf]
            // The leaf's links, least covered first.
            let slots = leafSpines[leaf].indices.map { base + $0 }.sorted {
                (slotCount[$0], $0) < (slotCount[$1], $1)
            }
            for slot in slots where degree[e] < floor {
                while degree[e] < floor, addPair(at: slot, from: e) {}
            }
        }
        let coverage = max(0, options.linkCoverage)
        // A leaf where neither helps is not tried again (all its links see the same endpoints).
        var stuck = [Bool](repeating: false, count: leafNames.count)
        for slot in slotLeaf.indices where slotCount[slot] < coverage && !stuck[slotLeaf[slot]] {
            while slotCount[slot] < coverage {
                if addPair(at: slot, from: nil) { continue }
                if splitPair(at: slot) { continue }
                stuck[slotLeaf[slot]] = true
                break
            }
        }
        guard slotCount.contains(where: { $0 < coverage }) else { return }
        rebalanceSpines()
    }

    /// When endpoints with room have no partner with room left (all paired already, or on their
    /// node): replaces a pair u–v over the same spine with x–u and y–v, x on the short link's leaf
    /// and y any endpoint with room (x itself when it has room for two). u and v keep their counts;
    /// x's link gains one. Looks at a bounded number of pairs.
    mutating func splitPair(at slot: Int) -> Bool {
        let leaf = slotLeaf[slot]
        let spine = slotSpine[slot]
        let cap = degreeCap
        let xs = leafEndpoints[leaf].filter { degree[$0] < cap }
        guard !xs.isEmpty, !edgeA.isEmpty, splitWork > 0 else { return false }
        let roomy = endpoints.indices.filter { degree[$0] < cap }
        splitWork -= endpoints.count
        func key(_ a: Int, _ b: Int) -> UInt64 {
            a < b ? UInt64(a) << 32 | UInt64(b) : UInt64(b) << 32 | UInt64(a)
        }
        func fits(_ x: Int, _ u: Int) -> Bool {
            endpointLeaf[u] != endpointLeaf[x] && endpointNode[u] != endpointNode[x]
                && (options.crossRailFallback || endpoints[u].rail == endpoints[x].rail)
                && !usedPairs.contains(key(x, u))
        }
        let start = random.below(edgeA.count)
        var work = 0
        defer { splitWork -= work }
        for t in 0..<edgeA.count where work < min(200_000, splitWork) {
            let edge = (start + t) % edgeA.count
            work += 1
            guard edgeSpine[edge] == spine else { continue }
            for (u, v) in [(edgeA[edge], edgeB[edge]), (edgeB[edge], edgeA[edge])] {
                for x in xs where fits(x, u) {
                    for y in roomy where (y != x || degree[x] + 2 <= cap) && fits(y, v) {
                        work += 1
                        guard key(x, u) != key(y, v), let ySlot = slotOf(endpointLeaf[y], spine) else {
                            continue
                        }
                        let (uSlot, vSlot) =
                            edgeA[edge] == u
                            ? (edgeSlotA[edge], edgeSlotB[edge]) : (edgeSlotB[edge], edgeSlotA[edge])
                        usedPairs.remove(key(u, v))
                        usedPairs.insert(key(x, u))
                        usedPairs.insert(key(y, v))
                        slotCount[uSlot] -= 1
                        slotCount[vSlot] -= 1
                        edgeA[edge] = x
                        edgeB[edge] = u
                        edgeSlotA[edge] = slot
                        edgeSlotB[edge] = uSlot
                        degree[x] += 1
                        slotCount[slot] += 1
                        slotCount[uSlot] += 1
                        addEdge(y, v, spine: spine, ySlot, vSlot)
                        return true
                    }
                }
            }
        }
        return false
    }

    /// The slot of the link between `leaf` and `spine`, if they are linked.
    func slotOf(_ leaf: Int, _ spine: Int) -> Int? {
        let position = binarySearch(leafSpines[leaf], spine)
        guard position < leafSpines[leaf].count, leafSpines[leaf][position] == spine else { return nil }
        return slotBase[leaf] + position
    }

    /// Re-pins pairs to other spines where that brings short links nearer the coverage, by
    /// Kempe-style swaps: from a leaf with a short link (spine b) and a well-covered one (spine a),
    /// walk a trail of pairs pinned alternately to a and b and swap the two spines along it. Every
    /// leaf the trail passes through keeps its counts; only its two ends change, and a swap is made
    /// only when it lowers the total squared shortfall, so this ends.
    mutating func rebalanceSpines() {
        let coverage = max(0, options.linkCoverage)
        var edgesAt = [[Int]](repeating: [], count: leafNames.count)
        for edge in edgeA.indices {
            edgesAt[endpointLeaf[edgeA[edge]]].append(edge)
            edgesAt[endpointLeaf[edgeB[edge]]].append(edge)
        }
        /// What one more pair over a link with `count` pairs is worth: 2(k − count) − 1 below k.
        func gain(_ count: Int) -> Int { count < coverage ? 2 * (coverage - count) - 1 : 0 }
        var inTrail = [Bool](repeating: false, count: edgeA.count)
        var trail: [Int] = []
        for _ in 0..<8 {
            var changed = false
            for leaf in leafNames.indices {
                // Only a leaf with a short link and another that can spare a pair for it.
                let first = slotBase[leaf]
                let end = first + leafSpines[leaf].count
                guard end > first else { continue }
                var low = first
                var high = first
                for slot in first..<end {
                    if slotCount[slot] < slotCount[low] { low = slot }
                    if slotCount[slot] > slotCount[high] { high = slot }
                }
                guard slotCount[low] < coverage, gain(slotCount[low]) > gain(slotCount[high] - 1) else {
                    continue
                }
                for slot in first..<end where slotCount[slot] < coverage {
                    while slotCount[slot] < coverage {
                        // The leaf's best-covered link, to take a pair from.
                        let base = slotBase[leaf]
                        var from = base
                        for other in base..<(base + leafSpines[leaf].count)
                        where slotCount[other] > slotCount[from] {
                            from = other
                        }
                        let startGain = gain(slotCount[slot]) - gain(slotCount[from] - 1)
                        guard startGain > 0,
                            swapTrail(
                                from: leaf, spines: (slotSpine[from], slotSpine[slot]), startGain: startGain,
                                edgesAt: edgesAt, gain: gain, inTrail: &inTrail, trail: &trail)
                        else { break }
                        changed = true
                    }
                }
            }
            if !changed { break }
        }
    }

    /// Walks from `leaf` along pairs pinned alternately to spines a and b (each pair's leaves
    /// linked to both), and swaps a and b along the walk at the first leaf where the walk may end
    /// with a net gain. False when there is none within a bounded walk.
    mutating func swapTrail(
        from leaf: Int, spines: (a: Int, b: Int), startGain: Int, edgesAt: [[Int]], gain: (Int) -> Int,
        inTrail: inout [Bool], trail: inout [Int]
    ) -> Bool {
        defer {
            for edge in trail { inTrail[edge] = false }
            trail.removeAll(keepingCapacity: true)
        }
        var at = leaf
        var color = spines.a  // the spine of the next pair to take
        for _ in 0..<(4 * leafNames.count + 16) where trailWork > 0 {
            trailWork -= 1 + edgesAt[at].count
            var step: (edge: Int, next: Int)?
            for edge in edgesAt[at] where !inTrail[edge] && edgeSpine[edge] == color {
                let next =
                    endpointLeaf[edgeA[edge]] == at ? endpointLeaf[edgeB[edge]] : endpointLeaf[edgeA[edge]]
                if slotOf(next, spines.a) != nil, slotOf(next, spines.b) != nil {
                    step = (edge, next)
                    break
                }
            }
            guard let step else { return false }
            inTrail[step.edge] = true
            trail.append(step.edge)
            at = step.next
            let other = color == spines.a ? spines.b : spines.a
            // Ending here moves one pair at `at` from `color` to `other`.
            if at != leaf,
                startGain + gain(slotCount[slotOf(at, other)!]) - gain(slotCount[slotOf(at, color)!] - 1) > 0
            {
                for edge in trail {
                    let spine = edgeSpine[edge] == spines.a ? spines.b : spines.a
                    let slotA = slotOf(endpointLeaf[edgeA[edge]], spine)!
                    let slotB = slotOf(endpointLeaf[edgeB[edge]], spine)!
                    slotCount[edgeSlotA[edge]] -= 1
                    slotCount[edgeSlotB[edge]] -= 1
                    slotCount[slotA] += 1
                    slotCount[slotB] += 1
                    edgeSpine[edge] = spine
                    edgeSlotA[edge] = slotA
                    edgeSlotB[edge] = slotB
                }
                return true
            }
            color = other
        }
        return false
    }

    /// Adds a pair over the link at `slot`, from `fixed` or any endpoint of its leaf with room, to
    /// an endpoint with room on another leaf linked to the same spine: preferably of the same rail,
    /// on a leaf whose link to that spine is short. Looks at a bounded number of leaves.
    mutating func addPair(at slot: Int, from fixed: Int?) -> Bool {
        let leaf = slotLeaf[slot]
        let spine = slotSpine[slot]
        let members = spineMembers[spine]
        let cap = degreeCap
        let sources = fixed.map { [$0] } ?? leafEndpoints[leaf].filter { degree[$0] < cap }
        guard !sources.isEmpty, members.count > 1 else { return false }
        let coverage = max(0, options.linkCoverage)
        let start = random.below(members.count)
        let tries = min(members.count, 64)
        // Rounds: same rail to a short link, same rail, then (when allowed) any rail likewise.
        for round in 0..<(options.crossRailFallback ? 4 : 2) {
            let sameRail = round < 2
            let shortOnly = round % 2 == 0
            for t in 0..<tries {
                let other = members[(start + t) % members.count]
                guard other.leaf != leaf, !shortOnly || slotCount[other.slot] < coverage else { continue }
                for x in sources where degree[x] < cap {
                    for y in leafEndpoints[other.leaf] where degree[y] < cap {
                        guard endpointNode[y] != endpointNode[x],
                            !sameRail || endpoints[y].rail == endpoints[x].rail
                        else { continue }
                        let key = x < y ? UInt64(x) << 32 | UInt64(y) : UInt64(y) << 32 | UInt64(x)
                        guard usedPairs.insert(key).inserted else { continue }
                        addEdge(x, y, spine: spine, slot, other.slot)
                        return true
                    }
                }
            }
        }
        return false
    }

    /// Per leaf, the pairs each of its spine links should carry: the coverage, or more where the
    /// leaf has so many endpoints that each would otherwise fall short of the minimum.
    func leafTargets() -> [Int] {
        let coverage = max(0, options.linkCoverage)
        let floor = min(max(0, options.minCrossLeafPerEndpoint), max(0, options.maxCrossLeafPerEndpoint))
        return leafNames.indices.map { leaf in
            let spines = leafSpines[leaf].count
            guard spines > 0, !leafEndpoints[leaf].isEmpty else { return 0 }
            let ends = 2 * floor * leafEndpoints[leaf].count
            return max(coverage, (ends + spines - 1) / spines)
        }
    }

    /// `shares` cut down to sum to at most `budget`, in proportion, the remainder spread from a
    /// seeded starting point.
    mutating func scaled(_ shares: [Int], toBudget budget: Int) -> [Int] {
        let total = shares.reduce(0, +)
        guard total > budget else { return shares }
        guard budget > 0 else { return shares.map { _ in 0 } }
        var result = shares.map { $0 * budget / total }
        var remainder = budget - result.reduce(0, +)
        var i = random.below(shares.count)
        while remainder > 0 {
            let at = i % shares.count
            if result[at] < shares[at] {
                result[at] += 1
                remainder -= 1
            }
            i += 1
        }
        return result
    }

    /// A loopless multigraph with the given degrees, as near to simple as the degrees allow:
    /// Havel–Hakimi, taking the vertex with the most demand left and joining it to the others with
    /// the most left (first come, first served among equals, for variety). Vertices are visited in a
    /// seeded order. `leftover` is the demand that found no partner.
    mutating func realize(_ demands: [Int]) -> (edges: [(Int, Int)], leftover: [Int]) {
        let count = demands.count
        var order = Array(0..<count)
        random.shuffle(&order)
        if let demand = demands.first, demand < count, demand % 2 == 0 || count % 2 == 0,
            !demands.contains(where: { $0 != demand })
        {
            // All alike (the usual case): a circulant graph, each vertex joined to the next
            // demand/2 in the seeded order and the previous demand/2, plus its opposite if odd.
            var edges: [(Int, Int)] = []
            edges.reserveCapacity(count * demand / 2)
            for offset in stride(from: 1, through: demand / 2, by: 1) {
                for i in 0..<count { edges.append((order[i], order[(i + offset) % count])) }
            }
            if demand % 2 == 1 {
                for i in 0..<(count / 2) { edges.append((order[i], order[i + count / 2])) }
            }
            return (edges, [Int](repeating: 0, count: count))
        }
        var left = demands
        // Buckets by demand left, first in first out; an entry is current while its stamp matches.
        var stamp = [Int](repeating: 0, count: count)
        let highest = demands.max() ?? 0
        var bucketVertex = [[Int]](repeating: [], count: highest + 1)
        var bucketStamp = [[Int]](repeating: [], count: highest + 1)
        var heads = [Int](repeating: 0, count: highest + 1)
        for vertex in order where left[vertex] > 0 {
            bucketVertex[left[vertex]].append(vertex)
            bucketStamp[left[vertex]].append(0)
        }
        var edges: [(Int, Int)] = []
        var leftover = [Int](repeating: 0, count: count)
        var top = highest
        var partners: [Int] = []
        while true {
            // The vertex with the most demand left.
            var found = -1
            while top > 0, found < 0 {
                while heads[top] < bucketVertex[top].count {
                    let vertex = bucketVertex[top][heads[top]]
                    let current = bucketStamp[top][heads[top]] == stamp[vertex] && left[vertex] == top
                    heads[top] += 1
                    if current {
                        found = vertex
                        break
                    }
                }
                if found < 0 { top -= 1 }
            }
            guard found >= 0 else { break }
            let vertex = found
            stamp[vertex] += 1  // out of the buckets while it is being joined
            // Partners: the others with the most demand left.
            partners.removeAll(keepingCapacity: true)
            var bucket = top
            while partners.count < left[vertex], bucket > 0 {
                if heads[bucket] < bucketVertex[bucket].count {
                    let other = bucketVertex[bucket][heads[bucket]]
                    let current = bucketStamp[bucket][heads[bucket]] == stamp[other] && left[other] == bucket
                    heads[bucket] += 1
                    if current { partners.append(other) }
                } else {
                    bucket -= 1
                }
            }
            if partners.isEmpty {
                leftover[vertex] = left[vertex]
                left[vertex] = 0
                continue
            }
            left[vertex] -= partners.count
            for other in partners + [vertex] {
                if other != vertex {
                    edges.append((vertex, other))
                    left[other] -= 1
                }
                stamp[other] += 1
                if left[other] > 0 {
                    bucketVertex[left[other]].append(other)
                    bucketStamp[left[other]].append(stamp[other])
                }
            }
        }
        return (edges, leftover)
    }

    /// Pairs an endpoint of one unit with one of another (same rail, different leaves) via `spine`.
    mutating func connectUnits(_ a: (unit: Int, slot: Int), _ b: (unit: Int, slot: Int), spine: Int) -> Bool {
        connect(a.unit, a.slot, b.unit, b.slot, spine: spine)
    }

    /// Pairs an endpoint of one leaf with one of another (any rails, different nodes) via `spine`.
    mutating func connectLeaves(_ a: (leaf: Int, slot: Int), _ b: (leaf: Int, slot: Int), spine: Int) -> Bool
    {
        connect(unitLeaf.count + a.leaf, a.slot, unitLeaf.count + b.leaf, b.slot, spine: spine)
    }

    /// Takes the next endpoint of pool group `gx` with room and the next of group `gy` with room
    /// that is on another node and not yet paired with it: round-robin, so a leaf's pairs spread
    /// evenly over its endpoints and a link's pairs come from distinct ones. One taken out of turn
    /// swaps places with the one whose turn it was, which keeps its turn. False when there is none.
    mutating func connect(_ gx: Int, _ slotX: Int, _ gy: Int, _ slotY: Int, spine: Int) -> Bool {
        let cap = degreeCap
        let startX = poolStart[gx]
        let countX = poolStart[gx + 1] - startX
        let startY = poolStart[gy]
        let countY = poolStart[gy + 1] - startY
        let cursorX = poolCursor[gx]
        let cursorY = poolCursor[gy]
        for i in 0..<countX {
            let px = startX + (cursorX + i) % countX
            let x = poolItems[px]
            guard degree[x] < cap else { continue }
            for j in 0..<countY {
                let py = startY + (cursorY + j) % countY
                let y = poolItems[py]
                guard degree[y] < cap, endpointNode[y] != endpointNode[x] else { continue }
                let key = x < y ? UInt64(x) << 32 | UInt64(y) : UInt64(y) << 32 | UInt64(x)
                guard usedPairs.insert(key).inserted else { continue }
                poolItems.swapAt(startX + cursorX, px)
                poolItems.swapAt(startY + cursorY, py)
                poolCursor[gx] = (cursorX + 1) % countX
                poolCursor[gy] = (cursorY + 1) % countY
                addEdge(x, y, spine: spine, slotX, slotY)
                return true
            }
        }
        return false
    }

    mutating func addEdge(_ x: Int, _ y: Int, spine: Int, _ slotX: Int, _ slotY: Int) {
        degree[x] += 1
        degree[y] += 1
        edgeA.append(x)
        edgeB.append(y)
        edgeSpine.append(spine)
        edgeSlotA.append(slotX)
        edgeSlotB.append(slotY)
        slotCount[slotX] += 1
        slotCount[slotY] += 1
    }

    /// Directs the cross-leaf pairs so that every endpoint is a source at most once more or once
    /// less than a destination: join each endpoint of odd degree to a virtual vertex, so all degrees
    /// are even, then walk closed trails and direct each edge the way it is walked. Also counts the
    /// distinct endpoints at each link.
    mutating func orientCrossLeaf() -> CrossLeafPairs {
        let real = edgeA.count
        let count = endpoints.count
        var result = CrossLeafPairs(
            start: [Int](repeating: 0, count: count + 1), dst: [Int](repeating: 0, count: real),
            spine: [Int](repeating: 0, count: real), distinct: [Int](repeating: 0, count: slotLeaf.count))
        guard real > 0 else { return result }
        var a = edgeA
        var b = edgeB
        for e in 0..<count where degree[e] % 2 == 1 {
            a.append(e)
            b.append(count)  // the virtual vertex
        }
        // Adjacency, compressed: the edges at each vertex, in the order they were planned.
        let vertices = count + 1
        var start = [Int](repeating: 0, count: vertices + 1)
        for i in 0..<a.count {
            start[a[i] + 1] += 1
            start[b[i] + 1] += 1
        }
        for v in 0..<vertices { start[v + 1] += start[v] }
        var fill = start
        var adjacency = [Int](repeating: 0, count: start[vertices])
        for i in 0..<a.count {
            adjacency[fill[a[i]]] = i
            fill[a[i]] += 1
            adjacency[fill[b[i]]] = i
            fill[b[i]] += 1
        }
        // Distinct endpoints per link: each endpoint counts once at each of its links.
        var lastSeen = [Int](repeating: -1, count: slotLeaf.count)
        for v in 0..<count {
            for k in start[v]..<start[v + 1] where adjacency[k] < real {
                let edge = adjacency[k]
                let slot = edgeA[edge] == v ? edgeSlotA[edge] : edgeSlotB[edge]
                if lastSeen[slot] != v {
                    lastSeen[slot] = v
                    result.distinct[slot] += 1
                }
            }
        }
        var source = [Int](repeating: 0, count: real)
        var used = [Bool](repeating: false, count: a.count)
        var next = start
        for origin in 0..<vertices {
            while true {
                var at = origin
                var walked = false
                while true {
                    while next[at] < start[at + 1], used[adjacency[next[at]]] { next[at] += 1 }
                    guard next[at] < start[at + 1] else { break }
                    let edge = adjacency[next[at]]
                    used[edge] = true
                    walked = true
                    if edge < real { source[edge] = at }
                    at = a[edge] == at ? b[edge] : a[edge]
                }
                if !walked { break }
            }
        }
        // By source, compressed.
        for edge in 0..<real { result.start[source[edge] + 1] += 1 }
        for v in 0..<count { result.start[v + 1] += result.start[v] }
        var at = result.start
        for edge in 0..<real {
            let src = source[edge]
            result.dst[at[src]] = edgeA[edge] == src ? edgeB[edge] : edgeA[edge]
            result.spine[at[src]] = edgeSpine[edge]
            at[src] += 1
        }
        return result
    }

    // MARK: Output

    /// Every endpoint's pairs, sorted by destination: the endpoints of other nodes before its node
    /// (sorted), its node's endpoints (its loopback and intra-host pairs, contiguous in index order),
    /// then the endpoints of other nodes after it.
    func assemble(sameLeaf: [[Int]], crossLeaf: CrossLeafPairs) -> [PlannedPair] {
        var pairs: [PlannedPair] = []
        var total = crossLeaf.dst.count
        for list in sameLeaf { total += list.count }
        for mine in nodeEndpoints { total += mine.count * mine.count }
        pairs.reserveCapacity(total)
        // Other nodes' endpoints as destination << 21 | (spine + 1), 0 for same-leaf.
        var others: [Int] = []
        for src in 0..<endpoints.count {
            others.removeAll(keepingCapacity: true)
            for dst in sameLeaf[src] { others.append(dst << 21) }
            for k in crossLeaf.start[src]..<crossLeaf.start[src + 1] {
                others.append(crossLeaf.dst[k] << 21 | (crossLeaf.spine[k] + 1))
            }
            for i in 1..<max(1, others.count) {  // insertion sort: a few dozen at most
                let value = others[i]
                var j = i
                while j > 0, others[j - 1] > value {
                    others[j] = others[j - 1]
                    j -= 1
                }
                others[j] = value
            }
            let node = nodeEndpoints[endpointNode[src]]
            let source = endpoints[src]
            var nodeDone = false
            for k in 0...others.count {
                let dst = k < others.count ? others[k] >> 21 : Int.max
                if !nodeDone, dst > node[0] {
                    for mine in node {
                        pairs.append(
                            PlannedPair(
                                src: source, dst: endpoints[mine],
                                pathClass: mine == src ? .loopback : .intraHost))
                    }
                    nodeDone = true
                }
                guard k < others.count else { break }
                let spine = (others[k] & ((1 << 21) - 1)) - 1
                pairs.append(
                    spine < 0
                        ? PlannedPair(src: source, dst: endpoints[dst], pathClass: .sameLeaf)
                        : PlannedPair(
                            src: source, dst: endpoints[dst], pathClass: .crossLeaf, via: spineNames[spine]))
            }
        }
        return pairs
    }

    func linkCoverage(distinct: [Int]) -> [Pinglist.LinkCoverage] {
        var result: [Pinglist.LinkCoverage] = []
        result.reserveCapacity(slotLeaf.count)
        for slot in 0..<slotLeaf.count {
            let leaf = leafNames[slotLeaf[slot]]
            let spine = spineNames[slotSpine[slot]]
            guard let link = topology.fabricLink(leaf, spine) else { continue }  // slots are links
            result.append(
                Pinglist.LinkCoverage(
                    link: link, leaf: leaf, spine: spine, pairs: slotCount[slot], endpoints: distinct[slot]))
        }
        return result.sorted { $0.link < $1.link }
    }
}

/// The cross-leaf pairs as directed, compressed by source: source `e`'s destinations and spines
/// are at `start[e]..<start[e + 1]`.
private struct CrossLeafPairs {
    var start: [Int]
    var dst: [Int]
    var spine: [Int]
    /// Per slot (leaf–spine link), the distinct endpoints on the leaf's side.
    var distinct: [Int]
}

/// The index of `value` in ascending `sorted`, which holds it.
private func binarySearch(_ sorted: [Int], _ value: Int) -> Int {
    var low = 0
    var high = sorted.count
    while low < high {
        let mid = (low + high) / 2
        if sorted[mid] < value { low = mid + 1 } else { high = mid }
    }
    return low
}
