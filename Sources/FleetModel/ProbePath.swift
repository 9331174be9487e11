// Which components a probe between two endpoints can blame (wire-v1.md §2): the pair's class and
// the components on its route, with the spine tier left open when ECMP chose it.

/// The class of a probed pair, which sets its baseline.
public enum PathClass: String, Sendable, CaseIterable, Comparable {
    case loopback
    case intraHost = "intra-host"
    case sameLeaf = "same-leaf"
    case crossLeaf = "cross-leaf"

    public static func < (lhs: PathClass, rhs: PathClass) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// The components a pair's probes cross.
public struct ProbePath: Sendable, Equatable {
    public let pathClass: PathClass
    /// Components every probe of the pair crosses, sorted.
    public let components: [Component]
    /// For a cross-leaf pair without a known route: the spines ECMP may have chosen, each with
    /// the two leaf–spine links through it. Empty when the route is known or there is none.
    public let spineChoices: [SpineChoice]

    public struct SpineChoice: Sendable, Equatable {
        public let spine: SwitchName
        public let links: [LinkID]
    }
}

/// Why a pair cannot be placed on the topology.
public struct PathError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}

extension Topology {
    /// The route of `src -> dst`. `route` is the report's optional `path`: the switches crossed,
    /// in order (`[leaf]` or `[leaf, spine, leaf]`); it must agree with the topology.
    public func path(
        from src: EndpointID, to dst: EndpointID, route: [SwitchName]? = nil
    ) throws(PathError) -> ProbePath {
        guard let srcRail = rail(src) else { throw PathError(reason: "unknown endpoint \(src)") }
        guard let dstRail = rail(dst) else { throw PathError(reason: "unknown endpoint \(dst)") }
        if src == dst {
            return ProbePath(pathClass: .loopback, components: [.endpoint(src)], spineChoices: [])
        }
        if src.node == dst.node {
            return ProbePath(
                pathClass: .intraHost,
                components: [.endpoint(src), .endpoint(dst), .node(src.node)].sorted(),
                spineChoices: [])
        }
        var components: Set<Component> = [
            .endpoint(src), .endpoint(dst), .switch(srcRail.leaf), .switch(dstRail.leaf),
        ]
        components.insert(.link(accessLink(of: src)!))  // validated: every endpoint has one
        components.insert(.link(accessLink(of: dst)!))
        if srcRail.leaf == dstRail.leaf {
            if let route, route != [srcRail.leaf] {
                throw PathError(reason: "path \(route) does not match the shared leaf \(srcRail.leaf)")
            }
            return ProbePath(pathClass: .sameLeaf, components: components.sorted(), spineChoices: [])
        }
        if let route {
            // The reported spine alone: looking at every spine of a 64-spine leaf for each of a
            // window's millions of pairs was most of the engine's first window.
            guard route.count == 3, route[0] == srcRail.leaf, route[2] == dstRail.leaf,
                tier(of: route[1]) == .spine, let up = fabricLink(srcRail.leaf, route[1]), let down = fabricLink(route[1], dstRail.leaf)
            else {
                throw PathError(
                    reason:
                        "path \(route.map(\.rawValue)) is not \(srcRail.leaf) → a spine linked to both → \(dstRail.leaf)"
                )
            }
            components.insert(.switch(route[1]))
            components.insert(.link(up))
            components.insert(.link(down))
            return ProbePath(pathClass: .crossLeaf, components: components.sorted(), spineChoices: [])
        }
        let choices = spines(of: srcRail.leaf).filter { fabricLink($0, dstRail.leaf) != nil }.map { spine in
            ProbePath.SpineChoice(
                spine: spine, links: [fabricLink(srcRail.leaf, spine)!, fabricLink(spine, dstRail.leaf)!])
        }
        guard !choices.isEmpty else {
            throw PathError(reason: "no spine links \(srcRail.leaf) and \(dstRail.leaf)")
        }
        guard choices.count == 1 else {
            return ProbePath(pathClass: .crossLeaf, components: components.sorted(), spineChoices: choices)
        }
        // A single spine: the route is known anyway.
        let choice = choices[0]
        components.insert(.switch(choice.spine))
        for link in choice.links { components.insert(.link(link)) }
        return ProbePath(pathClass: .crossLeaf, components: components.sorted(), spineChoices: [])
    }
}
