// `faultline topology generate | check`: make a rail-optimized fabric's topology JSON, and
// validate one with errors that name the file and the field.

import FleetModel
import Foundation

/// Loads and validates a topology file; a bad one stops the command with exit status 65.
func loadTopology(_ path: String) throws(CommandError) -> Topology {
    let data = try readFile(path)
    do {
        return try Topology(json: data)
    } catch {
        throw CommandError.data("\(path): \(error)")
    }
}

struct TopologyGenerateCommand: Command {
    static let name = "topology generate"
    static let summary = "write the topology of a rail-optimized leaf-spine fabric"
    static let usage = "topology generate --nodes N --rails R --nodes-per-leaf K --spines S [-o FILE]"
    static let help = """
        Writes topology JSON (wire-v1.md §2) for a rail-optimized fabric: node i is gpu-NNNN, in
        scalable unit s = i / K; its rail r links to leaf leaf-s<s>-r<r>; every leaf links to every
        spine (spine-NN). The same arguments always give the same bytes.

        options:
          --nodes N           nodes (at least 1)
          --rails R           rails per node, 1...64 (a GPU and its NIC each)
          --nodes-per-leaf K  nodes of a scalable unit, which share a leaf per rail
          --spines S          spine switches
          -o, --output FILE   write to FILE instead of standard output
        """

    let shape: Topology.Shape
    let output: String?

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(
            arguments, valued: ["nodes", "rails", "nodes-per-leaf", "spines", "output"],
            aliases: ["o": "output"])
        for name in ["nodes", "rails", "nodes-per-leaf", "spines"] { _ = try options.required(name) }
        shape = Topology.Shape(
            nodes: try options.integer("nodes", default: 0, in: 1...1_000_000),
            rails: try options.integer("rails", default: 0, in: 1...EndpointID.rails.count),
            nodesPerLeaf: try options.integer("nodes-per-leaf", default: 0, in: 1...100_000),
            spines: try options.integer("spines", default: 0, in: 1...10_000))
        output = options.value("output")
    }

    func run(io: some CommandIO) throws(CommandError) {
        let topology: Topology
        do {
            topology = try Topology.railOptimized(shape)
        } catch {
            throw CommandError.usage("\(error)")
        }
        var data = topology.jsonData()
        data.append(UInt8(ascii: "\n"))
        try writeOutput(data, to: output, io: io)
    }
}

struct TopologyCheckCommand: Command {
    static let name = "topology check"
    static let summary = "validate a topology file and summarize it"
    static let usage = "topology check FILE"
    static let help = """
        Validates topology JSON (wire-v1.md §2) and prints a summary: nodes, endpoints, switches per
        tier, links, rails per node and the spread of nodes over leaves. An invalid file stops with
        "FILE: field.path: reason" and exit status 65.
        """

    let path: String

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: [], positionals: 1)
        guard let path = options.positionals.first else { throw CommandError.usage("which topology file?") }
        self.path = path
    }

    func run(io: some CommandIO) throws(CommandError) {
        let topology = try loadTopology(path)
        let railCounts = topology.nodes.map(\.rails.count)
        let nodesPerLeaf = Dictionary(grouping: topology.nodes.flatMap(\.rails), by: \.leaf).values.map(
            \.count)
        let access = topology.endpointCount
        func range(_ values: [Int]) -> String {
            guard let low = values.min(), let high = values.max() else { return "-" }
            return low == high ? "\(low)" : "\(low)-\(high)"
        }
        io.write(
            """
            \(path): valid
            nodes        \(topology.nodes.count)
            endpoints    \(topology.endpointCount) (rails per node: \(range(railCounts)))
            leaves       \(topology.leaves.count) (endpoints per leaf: \(range(nodesPerLeaf)))
            spines       \(topology.spines.count) (spines per leaf: \(range(topology.leaves.map { topology.spines(of: $0).count })))
            links        \(topology.links.count) (\(access) endpoint-leaf, \(topology.links.count - access) leaf-spine)

            """)
    }
}
