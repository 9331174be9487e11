// The agent's inputs besides its command line: the config file (--config), the pinglist (a file
// or the correlator's GET /v1/pinglist/{node}, in the JSON `faultline topology pinglist --json`
// prints, optionally with addresses) and the peers file (--peers: endpoint or node → HOST:PORT for
// UDP, endpoint → {"lid", "qpn", "gid"} for verbs).

import FleetModel
import Foundation
import Net
import Verbs

/// `--config FILE`: every key optional; command-line options win over the file.
public struct AgentConfigFile: Hashable, Sendable, Decodable {
    public struct SpoolSection: Hashable, Sendable, Decodable {
        public var maxReports: Int?
        public var maxBytes: Int?
        public var maxAgeSeconds: Int?
    }
    public struct BackoffSection: Hashable, Sendable, Decodable {
        public var initialMillis: Int?
        public var maxMillis: Int?
    }
    public var windowSeconds: Int?
    public var loopbackRate: Double?
    public var peerRate: Double?
    public var jitter: Double?
    public var maxInFlight: Int?
    public var timeoutMillis: Int?
    public var seed: UInt64?
    public var pinglistRefreshSeconds: Int?
    public var flushSeconds: Int?
    public var metrics: String?
    /// `{"0": "mlx5_3"}`: the NIC of a rail, over discovery's choice (as `agent discover --rails`).
    public var rails: [String: String]?
    public var spool: SpoolSection?
    public var backoff: BackoffSection?

    public init() {}

    public static func load(_ path: String) throws -> AgentConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgentError("--config \(path): cannot read")
        }
        do { return try JSONDecoder().decode(AgentConfigFile.self, from: data) } catch {
            throw AgentError("--config \(path): \(describeDecoding(error))")
        }
    }

    /// Scheduler settings from the file over `base`.
    public func settings(over base: SchedulerSettings) -> SchedulerSettings {
        var settings = base
        if let value = windowSeconds { settings.windowSeconds = value }
        if let value = loopbackRate { settings.loopbackRate = value }
        if let value = peerRate { settings.peerRate = value }
        if let value = jitter { settings.jitter = value }
        if let value = maxInFlight { settings.maxInFlight = value }
        if let value = timeoutMillis { settings.timeoutNanoseconds = UInt64(max(0, value)) * 1_000_000 }
        if let value = seed { settings.seed = value }
        return settings
    }

    /// `rails` as discovery's overrides; a key that is not a rail number is an error naming it.
    public func railOverrides() throws -> [Int: String] {
        var overrides: [Int: String] = [:]
        for (key, nic) in rails ?? [:] {
            guard let rail = Int(key), (0...63).contains(rail) else {
                throw AgentError("--config: rails.\(key): not a rail number (0...63)")
            }
            overrides[rail] = nic
        }
        return overrides
    }

    public func spoolLimits() throws -> SpoolLimits {
        var limits = SpoolLimits()
        if let value = spool?.maxReports { limits.maxReports = value }
        if let value = spool?.maxBytes { limits.maxBytes = value }
        if let value = spool?.maxAgeSeconds { limits.maxAgeSeconds = value }
        guard limits.maxReports >= 1, limits.maxBytes >= 1024, limits.maxAgeSeconds >= 1 else {
            throw AgentError(
                "--config: spool limits must be maxReports >= 1, maxBytes >= 1024, maxAgeSeconds >= 1")
        }
        return limits
    }
}

/// A node's pinglist as the agent reads it.
public struct AgentPinglist: Hashable, Sendable {
    public var node: NodeName
    public var targets: [ProbeTarget]
    public var addresses: AddressBook
    public var verbsAddresses: VerbsAddressBook

    /// An `addresses` value: HOST:PORT (UDP) or a UD queue pair `{"lid", "qpn", "gid"}` (verbs).
    enum AddressValue: Decodable {
        case udp(String)
        case verbs(lid: Int, qpn: Int, gid: String?)

        private enum Keys: String, CodingKey { case lid, qpn, gid }

        init(from decoder: any Decoder) throws {
            if let text = try? decoder.singleValueContainer().decode(String.self) {
                self = .udp(text)
                return
            }
            let container = try decoder.container(keyedBy: Keys.self)
            self = .verbs(
                lid: try container.decode(Int.self, forKey: .lid), qpn: try container.decode(Int.self, forKey: .qpn),
                gid: try container.decodeIfPresent(String.self, forKey: .gid))
        }
    }

    struct Wire: Decodable {
        struct Pair: Decodable {
            var src: String
            var dst: String
            var path: [String]?
        }
        var node: String
        var pairs: [Pair]
        var addresses: [String: AddressValue]?
    }

    /// Parses `{"node", "pairs": [{"src", "dst", "class", "path"}], "addresses": {...}}`; pairs whose
    /// source is not on `node` are an error, as is a pinglist for another node.
    public static func parse(_ data: Data, name: String, node: NodeName) throws -> AgentPinglist {
        let wire: Wire
        do { wire = try JSONDecoder().decode(Wire.self, from: data) } catch {
            throw AgentError("\(name): not a pinglist: \(describeDecoding(error))")
        }
        guard wire.node == node.rawValue else {
            throw AgentError("\(name): node: the pinglist is for '\(wire.node)', this agent is '\(node)'")
        }
        var targets: [ProbeTarget] = []
        for (index, pair) in wire.pairs.enumerated() {
            guard let src = EndpointID(pair.src), src.node == node else {
                throw AgentError("\(name): pairs[\(index)].src: '\(pair.src)' is not an endpoint of \(node)")
            }
            guard let dst = EndpointID(pair.dst) else {
                throw AgentError("\(name): pairs[\(index)].dst: '\(pair.dst)' is not an endpoint id")
            }
            var path: [SwitchName]?
            if let names = pair.path {
                path = try names.enumerated().map { (j, text) in
                    guard let name = SwitchName(text) else {
                        throw AgentError(
                            "\(name): pairs[\(index)].path[\(j)]: '\(text)' is not a switch name")
                    }
                    return name
                }
            }
            targets.append(ProbeTarget(src: src, dst: dst, path: path))
        }
        let (book, verbs) = try parseAddresses(wire.addresses ?? [:], name: "\(name): addresses")
        return AgentPinglist(node: node, targets: targets, addresses: book, verbsAddresses: verbs)
    }

    /// `{"gpu-b002": "127.0.1.2:7400", "gpu-b002/3": "127.0.2.2:7400",
    /// "gpu-b002/4": {"lid": 12, "qpn": 291, "gid": "fe80:0000:..."}}`: keys are node names or
    /// endpoints; a HOST:PORT value is where UDP probes go, an object is the endpoint's UD queue
    /// pair for verbs probes (LID, QP number up to 2^24 - 1, and on RoCE the GID as
    /// eight groups of four hex digits).
    static func parseAddresses(
        _ entries: [String: AddressValue], name: String
    ) throws -> (AddressBook, VerbsAddressBook) {
        var book: [String: SocketAddress] = [:]
        var verbs: [EndpointID: QueuePairAddress] = [:]
        for key in entries.keys.sorted() {
            guard NodeName(key) != nil || EndpointID(key) != nil else {
                throw AgentError("\(name).\(key): not a node name or endpoint id")
            }
            switch entries[key]! {
            case .udp(let text):
                do { book[key] = try SocketAddress.parse(text) } catch {
                    throw AgentError("\(name).\(key): \(error)")
                }
            case .verbs(let lid, let qpn, let gidText):
                guard let endpoint = EndpointID(key) else {
                    throw AgentError("\(name).\(key): a queue pair address belongs to an endpoint (node/rail)")
                }
                guard (0...0xFFFF).contains(lid), (1...0xFF_FFFF).contains(qpn) else {
                    throw AgentError("\(name).\(key): lid must be 0...65535 and qpn 1...16777215")
                }
                var gid: GID?
                if let gidText {
                    guard let parsed = parseGID(gidText) else {
                        throw AgentError("\(name).\(key).gid: '\(gidText)' is not eight groups of four hex digits")
                    }
                    gid = parsed
                }
                verbs[endpoint] = QueuePairAddress(lid: UInt16(lid), gid: gid, qpNumber: UInt32(qpn))
            }
        }
        return (AddressBook(book), VerbsAddressBook(verbs))
    }

    /// `fe80:0000:0000:0000:0e42:a1ff:fe2b:3c4d`, as `GID.description` prints it.
    static func parseGID(_ text: String) -> GID? {
        let groups = text.split(separator: ":", omittingEmptySubsequences: false)
        guard groups.count == 8, groups.allSatisfy({ $0.count == 4 }) else { return nil }
        var bytes: [UInt8] = []
        for group in groups {
            guard let value = UInt16(group, radix: 16) else { return nil }
            bytes += [UInt8(value >> 8), UInt8(value & 0xFF)]
        }
        return GID(bytes: bytes)
    }

    /// `--peers FILE`: a JSON object of addresses, as in a pinglist's `addresses`.
    public static func loadPeers(_ path: String) throws -> (AddressBook, VerbsAddressBook) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgentError("--peers \(path): cannot read")
        }
        let entries: [String: AddressValue]
        do { entries = try JSONDecoder().decode([String: AddressValue].self, from: data) } catch {
            throw AgentError(
                "--peers \(path): expected a JSON object of \"node\": \"HOST:PORT\" or \"node/rail\": {\"lid\", \"qpn\"}")
        }
        return try parseAddresses(entries, name: "--peers \(path)")
    }
}

func describeDecoding(_ error: any Error) -> String {
    guard let error = error as? DecodingError else { return "not valid JSON" }
    func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.reduce("") { path, key in
            if let index = key.intValue { return "\(path)[\(index)]" }
            return path.isEmpty ? key.stringValue : "\(path).\(key.stringValue)"
        }
    }
    switch error {
    case .keyNotFound(let key, let context): return "\(path(context.codingPath + [key])): missing"
    case .typeMismatch(let type, let context): return "\(path(context.codingPath)): expected \(type)"
    case .valueNotFound(let type, let context):
        return "\(path(context.codingPath)): expected \(type), found null"
    case .dataCorrupted(let context):
        return context.codingPath.isEmpty
            ? "not valid JSON" : "\(path(context.codingPath)): \(context.debugDescription)"
    @unknown default: return "\(error)"
    }
}
