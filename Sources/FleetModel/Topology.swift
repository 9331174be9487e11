// The fabric as wire-v1.md §2 describes it: nodes and their rails, leaf and spine switches, and
// the links between them. Loaded from JSON and validated with errors that name the field path;
// written back in a canonical order so the same topology always gives the same bytes.

import Foundation

/// A validated topology with the indexes the engine and the planner need.
public struct Topology: Sendable {
    public enum Tier: String, Sendable, Codable, CaseIterable {
        case leaf
        case spine
    }

    public struct Rail: Sendable, Equatable {
        public let endpoint: EndpointID
        public let leaf: SwitchName
        public let nic: String?
        public let gpu: Int?
        public let address: String?
    }

    public struct Node: Sendable, Equatable {
        public let name: NodeName
        /// In rail order.
        public let rails: [Rail]
    }

    public struct Switch: Sendable, Equatable {
        public let name: SwitchName
        public let tier: Tier
    }

    public enum LinkEnd: Hashable, Sendable, CustomStringConvertible {
        case endpoint(EndpointID)
        case `switch`(SwitchName)

        public var description: String {
            switch self {
            case .endpoint(let id): id.description
            case .switch(let name): name.description
            }
        }
    }

    public struct Link: Sendable, Equatable {
        public let id: LinkID
        public let a: LinkEnd
        public let b: LinkEnd
    }

    /// In the order of the document.
    public let nodes: [Node]
    public let switches: [Switch]
    public let links: [Link]

    // Indexes, built once.
    private let nodeIndex: [NodeName: Int]
    private let railIndex: [EndpointID: Rail]
    private let tiers: [SwitchName: Tier]
    private let linkIndex: [LinkID: Int]
    /// The link between an endpoint and its leaf.
    private let accessLinks: [EndpointID: LinkID]
    /// Links between a leaf and a spine, by unordered pair.
    private let fabricLinks: [SwitchPair: LinkID]
    /// Per leaf, the spines it links to, sorted.
    private let spinesOfLeaf: [SwitchName: [SwitchName]]

    struct SwitchPair: Hashable {
        let low: SwitchName
        let high: SwitchName
        init(_ a: SwitchName, _ b: SwitchName) { (low, high) = a < b ? (a, b) : (b, a) }
    }

    public var endpointCount: Int { railIndex.count }
    public var endpoints: [EndpointID] { nodes.flatMap { $0.rails.map(\.endpoint) } }

    public func node(_ name: NodeName) -> Node? { nodeIndex[name].map { nodes[$0] } }
    public func rail(_ endpoint: EndpointID) -> Rail? { railIndex[endpoint] }
    public func tier(of name: SwitchName) -> Tier? { tiers[name] }
    public func link(_ id: LinkID) -> Link? { linkIndex[id].map { links[$0] } }

    /// The component of this topology a name names: a link id, an endpoint, a node or a switch
    /// (`Component.description` read back); nil for anything else.
    public func component(named id: String) -> Component? {
        if let link = LinkID(id), self.link(link) != nil { return .link(link) }
        if let endpoint = EndpointID(id), rail(endpoint) != nil { return .endpoint(endpoint) }
        if let node = NodeName(id), self.node(node) != nil { return .node(node) }
        if let name = SwitchName(id), tier(of: name) != nil { return .switch(name) }
        return nil
    }
    public func accessLink(of endpoint: EndpointID) -> LinkID? { accessLinks[endpoint] }
    public func spines(of leaf: SwitchName) -> [SwitchName] { spinesOfLeaf[leaf] ?? [] }
    public func fabricLink(_ a: SwitchName, _ b: SwitchName) -> LinkID? { fabricLinks[SwitchPair(a, b)] }
    public var leaves: [SwitchName] { switches.filter { $0.tier == .leaf }.map(\.name) }
    public var spines: [SwitchName] { switches.filter { $0.tier == .spine }.map(\.name) }

    /// Validates a decoded document: every name well formed and unique, every link between things
    /// that exist, every endpoint with exactly one link and that to the leaf it names, leaves
    /// linked only to endpoints and spines, spines only to leaves.
    public init(_ document: TopologyDocument) throws(TopologyError) {
        guard document.version == 1 else {
            throw TopologyError("version", "unsupported version \(document.version) (this reader knows 1)")
        }
        var switches: [Switch] = []
        var tiers: [SwitchName: Tier] = [:]
        for (i, entry) in document.switches.enumerated() {
            guard let name = SwitchName(entry.name) else {
                throw TopologyError("switches[\(i)].name", "'\(entry.name)' is not a valid switch name")
            }
            guard let tier = Tier(rawValue: entry.tier) else {
                throw TopologyError(
                    "switches[\(i)].tier",
                    "unknown tier '\(entry.tier)' (known: \(Tier.allCases.map(\.rawValue)))")
            }
            guard tiers.updateValue(tier, forKey: name) == nil else {
                throw TopologyError("switches[\(i)].name", "duplicate switch '\(name)'")
            }
            switches.append(Switch(name: name, tier: tier))
        }

        var nodes: [Node] = []
        var nodeIndex: [NodeName: Int] = [:]
        var railIndex: [EndpointID: Rail] = [:]
        for (i, entry) in document.nodes.enumerated() {
            guard let name = NodeName(entry.name) else {
                throw TopologyError("nodes[\(i)].name", "'\(entry.name)' is not a valid node name")
            }
            if tiers[SwitchName(entry.name)!] != nil {
                throw TopologyError("nodes[\(i)].name", "'\(name)' is also the name of a switch")
            }
            guard nodeIndex.updateValue(nodes.count, forKey: name) == nil else {
                throw TopologyError("nodes[\(i)].name", "duplicate node '\(name)'")
            }
            guard !entry.rails.isEmpty else {
                throw TopologyError("nodes[\(i)].rails", "a node needs at least one rail")
            }
            var rails: [Rail] = []
            for (j, railEntry) in entry.rails.enumerated() {
                let path = "nodes[\(i)].rails[\(j)]"
                guard let endpoint = EndpointID(node: name, rail: railEntry.rail) else {
                    throw TopologyError(
                        "\(path).rail", "rail \(railEntry.rail) is outside \(EndpointID.rails)")
                }
                guard let leaf = SwitchName(railEntry.leaf) else {
                    throw TopologyError("\(path).leaf", "'\(railEntry.leaf)' is not a valid switch name")
                }
                guard let tier = tiers[leaf] else {
                    throw TopologyError("\(path).leaf", "no switch named '\(leaf)'")
                }
                guard tier == .leaf else {
                    throw TopologyError("\(path).leaf", "'\(leaf)' is a \(tier), not a leaf")
                }
                if let gpu = railEntry.gpu, gpu < 0 {
                    throw TopologyError("\(path).gpu", "GPU index \(gpu) is negative")
                }
                let rail = Rail(
                    endpoint: endpoint, leaf: leaf, nic: railEntry.nic, gpu: railEntry.gpu,
                    address: railEntry.address)
                guard railIndex.updateValue(rail, forKey: endpoint) == nil else {
                    throw TopologyError("\(path).rail", "duplicate rail \(railEntry.rail) on node '\(name)'")
                }
                rails.append(rail)
            }
            nodes.append(Node(name: name, rails: rails.sorted { $0.endpoint.rail < $1.endpoint.rail }))
        }

        var links: [Link] = []
        var linkIDs: Set<LinkID> = []
        var accessLinks: [EndpointID: LinkID] = [:]
        var fabricLinks: [SwitchPair: LinkID] = [:]
        var spinesOfLeaf: [SwitchName: Set<SwitchName>] = [:]
        for (i, entry) in document.links.enumerated() {
            guard let id = LinkID(entry.id) else {
                throw TopologyError("links[\(i)].id", "'\(entry.id)' is not a valid link id")
            }
            guard linkIDs.insert(id).inserted else {
                throw TopologyError("links[\(i)].id", "duplicate link '\(id)'")
            }
            func end(_ text: String, _ field: String) throws(TopologyError) -> LinkEnd {
                if let endpoint = EndpointID(text) {
                    guard railIndex[endpoint] != nil else {
                        throw TopologyError("links[\(i)].\(field)", "no endpoint '\(text)' (dangling link)")
                    }
                    return .endpoint(endpoint)
                }
                guard let name = SwitchName(text), tiers[name] != nil else {
                    throw TopologyError(
                        "links[\(i)].\(field)", "no endpoint or switch named '\(text)' (dangling link)")
                }
                return .switch(name)
            }
            let a = try end(entry.a, "a")
            let b = try end(entry.b, "b")
            switch (a, b) {
            case (.endpoint(let endpoint), .switch(let name)), (.switch(let name), .endpoint(let endpoint)):
                let leaf = railIndex[endpoint]!.leaf
                guard name == leaf else {
                    throw TopologyError(
                        "links[\(i)]",
                        "endpoint \(endpoint) links to '\(name)' but its rail names leaf '\(leaf)'")
                }
                guard accessLinks.updateValue(id, forKey: endpoint) == nil else {
                    throw TopologyError(
                        "links[\(i)]", "endpoint \(endpoint) has more than one link to its leaf")
                }
            case (.switch(let x), .switch(let y)):
                guard
                    let (leaf, spine) = tiers[x] == .leaf && tiers[y] == .spine
                        ? (x, y)
                        : tiers[x] == .spine && tiers[y] == .leaf ? (y, x) : nil
                else {
                    throw TopologyError(
                        "links[\(i)]", "'\(x)' (\(tiers[x]!)) to '\(y)' (\(tiers[y]!)): leaves link to spines"
                    )
                }
                guard fabricLinks.updateValue(id, forKey: SwitchPair(leaf, spine)) == nil else {
                    throw TopologyError("links[\(i)]", "a second link between '\(leaf)' and '\(spine)'")
                }
                spinesOfLeaf[leaf, default: []].insert(spine)
            case (.endpoint, .endpoint):
                throw TopologyError(
                    "links[\(i)]", "\(a) to \(b): endpoints link to their leaf, not to each other")
            }
            links.append(Link(id: id, a: a, b: b))
        }
        for (i, node) in nodes.enumerated() {
            for (j, rail) in node.rails.enumerated() where accessLinks[rail.endpoint] == nil {
                throw TopologyError(
                    "nodes[\(i)].rails[\(j)]",
                    "endpoint \(rail.endpoint) has no link to its leaf '\(rail.leaf)'")
            }
        }

        self.nodes = nodes
        self.switches = switches
        self.links = links
        self.nodeIndex = nodeIndex
        self.railIndex = railIndex
        self.tiers = tiers
        self.linkIndex = Dictionary(uniqueKeysWithValues: links.enumerated().map { ($1.id, $0) })
        self.accessLinks = accessLinks
        self.fabricLinks = fabricLinks
        self.spinesOfLeaf = spinesOfLeaf.mapValues { $0.sorted() }
    }

    /// Parses and validates topology JSON.
    public init(json: Data) throws(TopologyError) {
        let document: TopologyDocument
        do {
            document = try JSONDecoder().decode(TopologyDocument.self, from: json)
        } catch let error as DecodingError {
            throw TopologyError(decoding: error)
        } catch {
            throw TopologyError("", "not valid JSON: \(error.localizedDescription)")
        }
        try self.init(document)
    }

    /// The document this topology was validated from, in canonical order (nodes, switches and
    /// links as given; rails by number).
    public var document: TopologyDocument {
        TopologyDocument(
            version: 1,
            nodes: nodes.map { node in
                .init(
                    name: node.name.rawValue,
                    rails: node.rails.map {
                        .init(
                            rail: $0.endpoint.rail, leaf: $0.leaf.rawValue, nic: $0.nic, gpu: $0.gpu,
                            address: $0.address)
                    })
            },
            switches: switches.map { .init(name: $0.name.rawValue, tier: $0.tier.rawValue) },
            links: links.map { .init(id: $0.id.rawValue, a: $0.a.description, b: $0.b.description) })
    }

    /// JSON with sorted keys, the same bytes for the same topology.
    public func jsonData() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return (try? encoder.encode(document)) ?? Data()  // encoding plain strings and ints cannot fail
    }
}

/// The JSON document of wire-v1.md §2, before validation. Unknown keys are ignored.
public struct TopologyDocument: Codable, Sendable, Equatable {
    public struct Node: Codable, Sendable, Equatable {
        public var name: String
        public var rails: [Rail]
    }
    public struct Rail: Codable, Sendable, Equatable {
        public var rail: Int
        public var leaf: String
        public var nic: String?
        public var gpu: Int?
        public var address: String?
    }
    public struct Switch: Codable, Sendable, Equatable {
        public var name: String
        public var tier: String
    }
    public struct Link: Codable, Sendable, Equatable {
        public var id: String
        public var a: String
        public var b: String
    }

    public var version: Int
    public var nodes: [Node]
    public var switches: [Switch]
    public var links: [Link]
}

/// What is wrong with a topology, and where (a field path like `nodes[3].rails[1].leaf`).
public struct TopologyError: Error, Sendable, Equatable, CustomStringConvertible {
    public let field: String
    public let reason: String

    public init(_ field: String, _ reason: String) {
        self.field = field
        self.reason = reason
    }

    init(decoding error: DecodingError) {
        let (field, reason) = describe(error)
        self.init(field, reason)
    }

    public var description: String { field.isEmpty ? reason : "\(field): \(reason)" }
}
