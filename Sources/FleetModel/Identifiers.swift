// The names of things in a fleet (wire-v1.md §1): nodes, endpoints (one rail: a GPU and its NIC),
// switches and links, each validated once at the edge so the rest of the code can trust them.

/// A node's name: `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`.
public struct NodeName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// Nil unless `text` is a valid name.
    public init?(_ text: some StringProtocol) {
        guard isValidName(text) else { return nil }
        rawValue = String(text)
    }

    /// `text` has passed `isValidName`.
    fileprivate init(validated text: String) { rawValue = text }

    public var description: String { rawValue }
    public static func < (lhs: NodeName, rhs: NodeName) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A switch's name: the same character set as a node's.
public struct SwitchName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init?(_ text: some StringProtocol) {
        guard isValidName(text) else { return nil }
        rawValue = String(text)
    }

    public var description: String { rawValue }
    public static func < (lhs: SwitchName, rhs: SwitchName) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One rail of a node: `<node>/<rail>`, rail 0...63.
public struct EndpointID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let rails = 0...63

    public let node: NodeName
    public let rail: Int

    public init?(node: NodeName, rail: Int) {
        guard Self.rails.contains(rail) else { return nil }
        self.node = node
        self.rail = rail
    }

    /// Parses `node/rail`; nil unless both parts are valid (the rail in plain decimal). Byte by
    /// byte: a valid id is all ASCII, so this agrees with reading it as characters.
    public init?(_ text: some StringProtocol) {
        let parsed =
            text.utf8.withContiguousStorageIfAvailable { Self.parse($0) }
            ?? Array(text.utf8).withUnsafeBufferPointer {
                Self.parse($0)
            }
        guard let parsed else { return nil }
        self = parsed
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> EndpointID? {
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return nil }
        var rail = 0
        for (position, byte) in bytes[(slash + 1)...].enumerated() {
            guard position < 2, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            guard position == 0 || rail != 0 else { return nil }  // no leading zero
            rail = rail * 10 + Int(byte - UInt8(ascii: "0"))
        }
        let nodeBytes = UnsafeBufferPointer(rebasing: bytes[..<slash])
        guard slash + 1 < bytes.count, isValidName(nodeBytes) else { return nil }
        return EndpointID(node: NodeName(validated: String(decoding: nodeBytes, as: UTF8.self)), rail: rail)
    }

    public var description: String { "\(node)/\(rail)" }

    public static func < (lhs: EndpointID, rhs: EndpointID) -> Bool {
        (lhs.node, lhs.rail) < (rhs.node, rhs.rail)
    }
}

/// A link's id, as the topology gives it (any non-empty text without control characters).
public struct LinkID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init?(_ text: some StringProtocol) {
        guard !text.isEmpty, text.utf8.count <= 200,
            text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
        else { return nil }
        rawValue = String(text)
    }

    public var description: String { rawValue }
    public static func < (lhs: LinkID, rhs: LinkID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`
private func isValidName(_ text: some StringProtocol) -> Bool {
    text.utf8.withContiguousStorageIfAvailable { isValidName($0) }
        ?? Array(text.utf8).withUnsafeBufferPointer { isValidName($0) }
}

private func isValidName(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
    guard let first = bytes.first, bytes.count <= 63, isAlphanumeric(first) else { return false }
    return bytes.allSatisfy {
        isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
    }
}

private func isAlphanumeric(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"):
        true
    default: false
    }
}

/// Something a finding can blame (wire-v1.md §5: `component` and `kind`).
public enum Component: Hashable, Comparable, Sendable, CustomStringConvertible {
    case endpoint(EndpointID)
    case node(NodeName)
    case link(LinkID)
    case `switch`(SwitchName)

    /// The finding's `kind`: an endpoint is a `gpu` (the GPU and its NIC).
    public var kind: String {
        switch self {
        case .endpoint: "gpu"
        case .node: "node"
        case .link: "link"
        case .switch: "switch"
        }
    }

    public var description: String {
        switch self {
        case .endpoint(let id): id.description
        case .node(let name): name.description
        case .link(let id): id.description
        case .switch(let name): name.description
        }
    }

    private var rank: Int {
        switch self {
        case .endpoint: 0
        case .node: 1
        case .link: 2
        case .switch: 3
        }
    }

    /// Endpoints, then nodes, links and switches; within a kind by name (endpoints by node, then rail).
    public static func < (lhs: Component, rhs: Component) -> Bool {
        switch (lhs, rhs) {
        case (.endpoint(let a), .endpoint(let b)): a < b
        case (.node(let a), .node(let b)): a < b
        case (.link(let a), .link(let b)): a < b
        case (.switch(let a), .switch(let b)): a < b
        default: lhs.rank < rhs.rank
        }
    }
}
