// The topology's components numbered in their sorted order, so the engine's per-window work runs
// on arrays indexed by small integers instead of dictionaries keyed by names: comparing two numbers
// is comparing the two components, and nothing depends on hashing order.

import FleetModel

struct ComponentTable: Sendable {
    /// Every component of the topology, sorted; a component's number is its position.
    let components: [Component]
    /// For an endpoint or a node, the number of its node; -1 for links and switches.
    let nodeOf: [Int32]
    private let numbers: [Component: Int32]

    init(topology: Topology) {
        var all: [Component] = []
        all.reserveCapacity(topology.endpointCount + topology.nodes.count + topology.links.count + topology.switches.count)
        for node in topology.nodes {
            all.append(.node(node.name))
            for rail in node.rails { all.append(.endpoint(rail.endpoint)) }
        }
        for link in topology.links { all.append(.link(link.id)) }
        for element in topology.switches { all.append(.switch(element.name)) }
        all.sort()
        var numbers: [Component: Int32] = [:]
        numbers.reserveCapacity(all.count)
        for (number, component) in all.enumerated() { numbers[component] = Int32(number) }
        nodeOf = all.map { component in
            switch component {
            case .endpoint(let endpoint): numbers[.node(endpoint.node)]!
            case .node: numbers[component]!
            case .link, .switch: -1
            }
        }
        self.components = all
        self.numbers = numbers
    }

    var count: Int { components.count }

    /// The number of a component of the topology.
    func number(_ component: Component) -> Int32? { numbers[component] }

    func isLinkOrSwitch(_ number: Int32) -> Bool { nodeOf[Int(number)] < 0 }
}
