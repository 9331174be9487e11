// Rail-optimized leaf–spine fabrics for tests, the simulator and `faultline topology generate`:
// the nodes of a scalable unit (SU) share one leaf per rail, and every leaf links to every spine.

extension Topology {
    /// Parameters of a generated fabric.
    public struct Shape: Sendable, Equatable {
        public var nodes: Int
        public var rails: Int
        public var nodesPerLeaf: Int
        public var spines: Int

        public init(nodes: Int, rails: Int, nodesPerLeaf: Int, spines: Int) {
            self.nodes = nodes
            self.rails = rails
            self.nodesPerLeaf = nodesPerLeaf
            self.spines = spines
        }

        /// Scalable units: groups of `nodesPerLeaf` nodes (the last may be smaller).
        public var scalableUnits: Int { (nodes + nodesPerLeaf - 1) / nodesPerLeaf }
    }

    /// A rail-optimized fabric: node `i` is `gpu-NNNNN` (zero-padded to the widest index), in SU
    /// `s = i / nodesPerLeaf`; its rail `r` links to leaf `leaf-s<s>-r<r>`; spines are `spine-NN`.
    /// Links are `<endpoint>~<leaf>` and `<leaf>~<spine>`.
    public static func railOptimized(_ shape: Shape) throws(TopologyError) -> Topology {
        guard shape.nodes >= 1 else { throw TopologyError("nodes", "at least 1 node") }
        guard EndpointID.rails.contains(shape.rails - 1), shape.rails >= 1 else {
            throw TopologyError("rails", "rails must be in 1...\(EndpointID.rails.count)")
        }
        guard shape.nodesPerLeaf >= 1 else {
            throw TopologyError("nodes-per-leaf", "at least 1 node per leaf")
        }
        guard shape.spines >= 1 else { throw TopologyError("spines", "at least 1 spine") }
        let nodeDigits = max(4, String(shape.nodes - 1).count)
        let spineDigits = max(2, String(shape.spines - 1).count)
        func padded(_ value: Int, _ digits: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, digits - text.count)) + text
        }
        let spineNames = (0..<shape.spines).map { "spine-\(padded($0, spineDigits))" }
        var document = TopologyDocument(version: 1, nodes: [], switches: [], links: [])
        for su in 0..<shape.scalableUnits {
            for rail in 0..<shape.rails {
                let leaf = "leaf-s\(su)-r\(rail)"
                document.switches.append(.init(name: leaf, tier: Tier.leaf.rawValue))
                for spine in spineNames {
                    document.links.append(.init(id: "\(leaf)~\(spine)", a: leaf, b: spine))
                }
            }
        }
        document.switches += spineNames.map { .init(name: $0, tier: Tier.spine.rawValue) }
        for index in 0..<shape.nodes {
            let name = "gpu-\(padded(index, nodeDigits))"
            let su = index / shape.nodesPerLeaf
            var rails: [TopologyDocument.Rail] = []
            for rail in 0..<shape.rails {
                let leaf = "leaf-s\(su)-r\(rail)"
                rails.append(.init(rail: rail, leaf: leaf, nic: "mlx5_\(rail)", gpu: rail, address: nil))
                document.links.append(.init(id: "\(name)/\(rail)~\(leaf)", a: "\(name)/\(rail)", b: leaf))
            }
            document.nodes.append(.init(name: name, rails: rails))
        }
        return try Topology(document)
    }
}
