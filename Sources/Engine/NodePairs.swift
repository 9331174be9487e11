// What the engine keeps of one node's pairs from window to window, in the order the node reports
// them: each pair's route resolved against the topology once (recomputing it every window was a
// quarter of the engine's time) and its recent healthy p50s. A node sends the same routes every
// window, so a report's roster is matched against the last one (by identity when the replay shared
// it, else route by route); a changed roster is resolved anew and keeps the history of the pairs
// it still has. One entry per pair: memory grows with pairs, not with time.

import FleetModel

struct NodePairs: Sendable {
    enum Problem: Sendable {
        case unknownEndpoint
        case invalidPath
        /// The same source and destination earlier in the report.
        case repeated
    }

    /// What the engine needs of a pair every window: numbers only, so that reading it costs no
    /// reference counting, and no wider than they need (20 bytes: every window reads every pair's).
    struct Entry: Sendable {
        /// Why the pair cannot be used; nil when it can.
        let problem: Problem?
        let pathClass: PathClass
        private let componentCount: UInt8
        private let componentStart: Int32
        let srcNumber: Int32
        let dstNumber: Int32
        let dstNodeNumber: Int32

        /// Where the numbers of the components the pair crosses are in `components` (at most 9, as
        /// a route has: ProbePath).
        var components: Range<Int> { Int(componentStart)..<Int(componentStart) + Int(componentCount) }

        init(
            problem: Problem?, pathClass: PathClass, components: Range<Int>, srcNumber: Int32, dstNumber: Int32,
            dstNodeNumber: Int32
        ) {
            self.problem = problem
            self.pathClass = pathClass
            componentCount = UInt8(components.count)
            componentStart = Int32(components.lowerBound)
            self.srcNumber = srcNumber
            self.dstNumber = dstNumber
            self.dstNodeNumber = dstNodeNumber
        }
    }

    private struct PairKey: Hashable {
        let src: EndpointID
        let dst: EndpointID
    }

    /// The pairs' p50s a pair's own baseline is the median of.
    static let historyLength = 8

    private(set) var entries: [Entry] = []
    /// The routes the entries were resolved for, in the same order.
    private var roster = PairRoster([])
    /// Every entry's component numbers, ascending per entry, one after the other.
    private(set) var components: [Int32] = []
    /// `historyLength` slots per entry, written round-robin; `historyWrites` counts the writes.
    private var history: [Double] = []
    private var historyWrites: [UInt32] = []

    /// Whether the entries were resolved for `roster`: the same object, or the same routes in the
    /// same order (then it is kept instead, so that the node's next report, which a replay gives
    /// the same object, is known at once).
    mutating func isResolved(for roster: PairRoster) -> Bool {
        if roster === self.roster { return true }
        guard roster.routes == self.roster.routes else { return false }
        self.roster = roster
        return true
    }

    /// Resolves a new roster, keeping the history of the pairs (source and destination) it had
    /// before.
    mutating func rebuild(for roster: PairRoster, topology: Topology, table: ComponentTable) {
        var previous: [PairKey: Int] = [:]
        for (index, entry) in entries.enumerated() where entry.problem == nil {
            let route = self.roster.routes[index]
            previous[PairKey(src: route.src, dst: route.dst)] = index
        }
        var seen: Set<PairKey> = []
        var newEntries: [Entry] = []
        var newComponents: [Int32] = []
        var newHistory: [Double] = []
        var newWrites: [UInt32] = []
        newEntries.reserveCapacity(roster.routes.count)
        for pair in roster.routes {
            let key = PairKey(src: pair.src, dst: pair.dst)
            var problem: Problem?
            var pathClass = PathClass.loopback
            let start = newComponents.count
            if topology.rail(pair.dst) == nil || topology.rail(pair.src) == nil {
                problem = .unknownEndpoint
            } else if let path = try? topology.path(from: pair.src, to: pair.dst, route: pair.path) {
                if seen.insert(key).inserted {
                    pathClass = path.pathClass
                    newComponents += path.components.map { table.number($0)! }  // components of the topology
                } else {
                    problem = .repeated
                }
            } else {
                problem = .invalidPath
            }
            let srcNumber = problem == .unknownEndpoint ? -1 : table.number(.endpoint(pair.src))!
            let dstNumber = problem == .unknownEndpoint ? -1 : table.number(.endpoint(pair.dst))!
            let dstNodeNumber = problem == .unknownEndpoint ? -1 : table.number(.node(pair.dst.node))!
            newEntries.append(
                Entry(
                    problem: problem, pathClass: pathClass,
                    components: start..<newComponents.count, srcNumber: srcNumber, dstNumber: dstNumber,
                    dstNodeNumber: dstNodeNumber))
            if problem == nil, let old = previous[key] {
                let slots = old * Self.historyLength..<(old + 1) * Self.historyLength
                newHistory += history[slots]
                newWrites.append(historyWrites[old])
            } else {
                newHistory += repeatElement(0, count: Self.historyLength)
                newWrites.append(0)
            }
        }
        entries = newEntries
        self.roster = roster
        components = newComponents
        history = newHistory
        historyWrites = newWrites
    }

    /// The lowest of an entry's remembered p50s; nil before the first.
    func historyMinimum(_ entry: Int) -> Double? {
        let count = min(Int(historyWrites[entry]), Self.historyLength)
        guard count > 0 else { return nil }
        let base = entry * Self.historyLength
        var lowest = history[base]
        for slot in (base + 1)..<(base + count) where history[slot] < lowest { lowest = history[slot] }
        return lowest
    }

    /// The median of an entry's remembered p50s; nil before the first.
    func historyMedian(_ entry: Int) -> Double? {
        let count = min(Int(historyWrites[entry]), Self.historyLength)
        guard count > 0 else { return nil }
        let base = entry * Self.historyLength
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: Self.historyLength) { values in
            // Sorted by insertion: for eight values, a sixth cheaper than the standard library's
            // sort, and stable like it, so the same order (even of 0 and -0): a sketch's
            // quantiles are finite, and `>` orders them all.
            for i in 0..<count {
                let value = history[base + i]
                var slot = i
                while slot > 0 && values[slot - 1] > value {
                    values[slot] = values[slot - 1]
                    slot -= 1
                }
                values[slot] = value
            }
            let middle = count / 2
            return count % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2
        }
    }

    /// Remembers a healthy p50 of an entry, forgetting its oldest beyond `historyLength`.
    mutating func remember(_ p50: Double, _ entry: Int) {
        let writes = Int(historyWrites[entry])
        let slot = entry * Self.historyLength + writes % Self.historyLength
        // A steady pair's p50 is often the very value it replaces (a sketch's bin): left unwritten,
        // its cache line stays clean and need not go back to memory.
        if history[slot].bitPattern != p50.bitPattern { history[slot] = p50 }
        // Past 2 × length, one length less: the same slot next time, and no overflow ever.
        let next = writes + 1
        historyWrites[entry] = UInt32(next >= 2 * Self.historyLength ? next - Self.historyLength : next)
    }
}
