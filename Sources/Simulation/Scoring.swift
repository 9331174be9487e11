// Scoring a findings stream against the injected truth: which opened findings name a faulty
// component (and which name a healthy one, or the wrong one beside a fault), precision and recall
// per component kind, time to detect, and false findings in fault-free windows. See docs/simulator.md.

import Engine
import FleetModel

/// One opened finding, judged.
public struct ScoredFinding: Sendable {
    public let finding: Finding
    /// Its window, counted from the scenario's first (0-based).
    public let window: Int
    /// The faults (indexes into the scenario's `faults`) it rightly names; empty for a false finding.
    public let matches: [Int]
    /// Why a false finding is wrong: the faulty component it sits beside, or that nothing near it
    /// was faulty. Nil for a right one.
    public let mistake: String?

    public var isCorrect: Bool { !matches.isEmpty }
}

/// What became of one injected fault.
public struct FaultOutcome: Sendable {
    public let fault: InjectedFault
    /// The window of the first opened finding that names it; nil if none did.
    public let detectedAt: Int?
    /// Opened findings that name it.
    public let findings: Int

    /// Windows from the fault's start to its detection, counting both: 1 when the finding opened
    /// in the fault's first window.
    public var timeToDetect: Int? { detectedAt.map { $0 - fault.fault.start + 1 } }
    /// Silent agents are not faults to find.
    public var isFindable: Bool { fault.component != nil }
}

/// Precision and recall for one component kind.
public struct KindScore: Sendable, Equatable {
    /// `gpu`, `node`, `link` or `switch` (a finding's `kind`).
    public let kind: String
    /// Opened findings naming a component of this kind, and how many of them were right.
    public var findings = 0
    public var correct = 0
    /// Injected faults on a component of this kind, and how many were found.
    public var faults = 0
    public var detected = 0

    public init(kind: String) { self.kind = kind }

    /// Nil without findings.
    public var precision: Double? { findings > 0 ? Double(correct) / Double(findings) : nil }
    /// Nil without faults.
    public var recall: Double? { faults > 0 ? Double(detected) / Double(faults) : nil }
}

/// The figures of one run, or of several merged.
public struct Score: Sendable, Equatable {
    public static let kinds = ["gpu", "node", "link", "switch"]

    /// In the order of `kinds`.
    public var kinds: [KindScore] = Score.kinds.map(KindScore.init(kind:))
    /// Times to detect (windows) of the found hard (dead) and gray (slow, lossy) faults, sorted.
    public var hardDetectionTimes: [Int] = []
    public var grayDetectionTimes: [Int] = []
    public var hardFaults = 0
    public var grayFaults = 0
    /// False findings opened in fault-free windows, and the component-windows those windows hold.
    public var faultFreeFindings = 0
    public var faultFreeComponentWindows = 0

    public init() {}

    public var total: KindScore {
        var all = KindScore(kind: "all")
        for kind in kinds {
            all.findings += kind.findings
            all.correct += kind.correct
            all.faults += kind.faults
            all.detected += kind.detected
        }
        return all
    }

    public var falseFindingsPerThousand: Double? {
        faultFreeComponentWindows > 0
            ? Double(faultFreeFindings) * 1000 / Double(faultFreeComponentWindows) : nil
    }

    /// The sum of several runs' counts.
    public static func merged(_ scores: [Score]) -> Score {
        var result = Score()
        for score in scores {
            for (i, kind) in score.kinds.enumerated() {
                result.kinds[i].findings += kind.findings
                result.kinds[i].correct += kind.correct
                result.kinds[i].faults += kind.faults
                result.kinds[i].detected += kind.detected
            }
            result.hardDetectionTimes += score.hardDetectionTimes
            result.grayDetectionTimes += score.grayDetectionTimes
            result.hardFaults += score.hardFaults
            result.grayFaults += score.grayFaults
            result.faultFreeFindings += score.faultFreeFindings
            result.faultFreeComponentWindows += score.faultFreeComponentWindows
        }
        result.hardDetectionTimes.sort()
        result.grayDetectionTimes.sort()
        return result
    }
}

/// Median of sorted values (the mean of the middle two for an even count); nil for none.
public func medianOf(_ sorted: [Int]) -> Double? {
    guard !sorted.isEmpty else { return nil }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? Double(sorted[middle]) : Double(sorted[middle - 1] + sorted[middle]) / 2
}

/// A run's findings judged against its faults.
public struct Scorecard: Sendable {
    /// A finding may open this many windows after its fault ended and still count as right
    /// (hysteresis needs a few windows of evidence).
    public static let lateWindows = 3

    public let score: Score
    /// Every opened finding, in stream order.
    public let findings: [ScoredFinding]
    /// Every injected fault, in scenario order.
    public let faults: [FaultOutcome]

    public init(
        findings stream: [Finding], faults: [InjectedFault], topology: Topology, start: Timestamp,
        windowSeconds: Int, windows: Int
    ) {
        let neighbourhood = Neighbourhood(topology)
        func covers(_ fault: InjectedFault, _ window: Int) -> Bool {
            fault.fault.start <= window && window < fault.fault.end + Self.lateWindows
        }
        var scored: [ScoredFinding] = []
        var firstDetection = [Int?](repeating: nil, count: faults.count)
        var findingCounts = [Int](repeating: 0, count: faults.count)
        var score = Score()
        for finding in stream where finding.event == .opened {
            let window = Int(
                (finding.window.secondsSinceEpoch - start.secondsSinceEpoch) / Int64(windowSeconds))
            var matches: [Int] = []
            for (i, fault) in faults.enumerated()
            where fault.component == finding.component && covers(fault, window) {
                matches.append(fault.index)
                findingCounts[i] += 1
                if firstDetection[i] == nil { firstDetection[i] = window }
            }
            var mistake: String?
            if matches.isEmpty {
                let nearby = faults.filter { covers($0, window) }.compactMap { fault -> String? in
                    if fault.component == nil {
                        return fault.silencedNode.flatMap { node in
                            neighbourhood.isPart(finding.component, of: .node(node))
                                ? "\(finding.component == .node(node) ? "node" : "part of node") \(node), whose agent is silent"
                                : nil
                        }
                    }
                    if fault.component == finding.component {
                        return "\(fault.component!) is faulty, but not in this window"
                    }
                    return neighbourhood.relation(finding.component, fault.component!).map {
                        "\($0) \(fault.component!) (fault \(fault.index))"
                    }
                }
                mistake = nearby.first ?? "nothing faulty near it"
            }
            if let index = Score.kinds.firstIndex(of: finding.component.kind) {
                score.kinds[index].findings += 1
                if !matches.isEmpty { score.kinds[index].correct += 1 }
            }
            scored.append(ScoredFinding(finding: finding, window: window, matches: matches, mistake: mistake))
        }

        var outcomes: [FaultOutcome] = []
        for (i, fault) in faults.enumerated() {
            let outcome = FaultOutcome(
                fault: fault, detectedAt: firstDetection[i], findings: findingCounts[i])
            outcomes.append(outcome)
            guard let component = fault.component, let index = Score.kinds.firstIndex(of: component.kind)
            else {
                continue
            }
            score.kinds[index].faults += 1
            if outcome.detectedAt != nil { score.kinds[index].detected += 1 }
            if fault.isHard {
                score.hardFaults += 1
                if let time = outcome.timeToDetect { score.hardDetectionTimes.append(time) }
            } else {
                score.grayFaults += 1
                if let time = outcome.timeToDetect { score.grayDetectionTimes.append(time) }
            }
        }
        score.hardDetectionTimes.sort()
        score.grayDetectionTimes.sort()

        // Fault-free windows: no injected fault of any kind (silent agents included) active, nor
        // ended within `lateWindows` before.
        let faultFree = (0..<windows).filter { window in !faults.contains { covers($0, window) } }
        let components =
            topology.endpointCount + topology.nodes.count + topology.links.count + topology.switches.count
        score.faultFreeComponentWindows = faultFree.count * components
        let faultFreeSet = Set(faultFree)
        score.faultFreeFindings = scored.filter { !$0.isCorrect && faultFreeSet.contains($0.window) }.count

        self.score = score
        self.findings = scored
        self.faults = outcomes
    }
}

/// How two components of a topology relate, to say why a finding beside a fault is wrong.
struct Neighbourhood {
    let topology: Topology
    /// Each link's two ends.
    let ends: [LinkID: (Topology.LinkEnd, Topology.LinkEnd)]

    init(_ topology: Topology) {
        self.topology = topology
        var ends: [LinkID: (Topology.LinkEnd, Topology.LinkEnd)] = [:]
        for link in topology.links { ends[link.id] = (link.a, link.b) }
        self.ends = ends
    }

    /// Whether `part` is `whole` or inside it (an endpoint of a node, a node's access link).
    func isPart(_ part: Component, of whole: Component) -> Bool {
        if part == whole { return true }
        switch (part, whole) {
        case (.endpoint(let endpoint), .node(let node)): return endpoint.node == node
        case (.link(let link), .node(let node)): return endpointEnd(of: link)?.node == node
        default: return false
        }
    }

    /// The endpoint at one end of an access link.
    private func endpointEnd(of link: LinkID) -> EndpointID? {
        guard let (a, b) = ends[link] else { return nil }
        if case .endpoint(let endpoint) = a { return endpoint }
        if case .endpoint(let endpoint) = b { return endpoint }
        return nil
    }

    private func switchEnds(of link: LinkID) -> [SwitchName] {
        guard let (a, b) = ends[link] else { return [] }
        return [a, b].compactMap { end in
            if case .switch(let name) = end { return name }
            return nil
        }
    }

    /// How `finding` sits next to the faulty `fault`, in words ("the node of"); nil when unrelated.
    func relation(_ finding: Component, _ fault: Component) -> String? {
        switch (finding, fault) {
        case (.node(let node), .endpoint(let endpoint)) where endpoint.node == node:
            return "the node of faulty endpoint"
        case (.endpoint(let endpoint), .node(let node)) where endpoint.node == node:
            return "an endpoint of faulty node"
        case (.endpoint(let a), .endpoint(let b)) where a.node == b.node:
            return "on the same node as faulty endpoint"
        case (.endpoint(let endpoint), .link(let link)) where topology.accessLink(of: endpoint) == link:
            return "the endpoint of faulty access link"
        case (.link(let link), .endpoint(let endpoint)) where topology.accessLink(of: endpoint) == link:
            return "the access link of faulty endpoint"
        case (.link(let link), .node(let node)) where endpointEnd(of: link)?.node == node:
            return "an access link of faulty node"
        case (.node(let node), .link(let link)) where endpointEnd(of: link)?.node == node:
            return "the node of faulty access link"
        case (.switch(let name), .link(let link)) where switchEnds(of: link).contains(name):
            return "a switch at an end of faulty link"
        case (.link(let link), .switch(let name)) where switchEnds(of: link).contains(name):
            return "a link of faulty switch"
        case (.link(let a), .link(let b)) where !Set(switchEnds(of: a)).isDisjoint(with: switchEnds(of: b)):
            return "a link sharing a switch with faulty link"
        case (.endpoint(let endpoint), .switch(let name)) where topology.rail(endpoint)?.leaf == name:
            return "an endpoint on faulty leaf"
        case (.switch(let name), .endpoint(let endpoint)) where topology.rail(endpoint)?.leaf == name:
            return "the leaf of faulty endpoint"
        case (.switch(let a), .switch(let b)) where topology.fabricLink(a, b) != nil:
            return "a switch linked to faulty switch"
        case (.node(let node), .switch(let name))
        where topology.node(node)?.rails.contains { $0.leaf == name } == true:
            return "a node on faulty leaf"
        default:
            return nil
        }
    }
}
