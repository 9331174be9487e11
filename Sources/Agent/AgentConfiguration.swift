// The agent's inputs besides its command line: the config file (--config), the pinglist (a file
// or the correlator's GET /v1/pinglist/{node}, in the JSON `faultline topology pinglist --json`
// prints, optionally with addresses) and the peers file (--peers: endpoint or node → HOST:PORT).

import FleetModel
import Foundation
import Net

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

    struct Wire: Decodable {
        struct Pair: Decodable {
            var src: String
            var dst: String
            var path: [String]?
        }
        var node: String
        var pairs: [Pair]
        var addresses: [String: String]?
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
        let book = try parseAddresses(wire.addresses ?? [:], name: "\(name): addresses")
        return AgentPinglist(node: node, targets: targets, addresses: book)
    }

    /// `{"gpu-b002": "127.0.1.2:7400", "gpu-b002/3": "127.0.2.2:7400"}`: keys are node names or
    /// endpoints, values HOST:PORT.
    public static func parseAddresses(_ entries: [String: String], name: String) throws -> AddressBook {
        var book: [String: SocketAddress] = [:]
        for key in entries.keys.sorted() {
            guard NodeName(key) != nil || EndpointID(key) != nil else {
                throw AgentError("\(name).\(key): not a node name or endpoint id")
            }
            do { book[key] = try SocketAddress.parse(entries[key]!) } catch {
                throw AgentError("\(name).\(key): \(error)")
            }
        }
        return AddressBook(book)
    }

    /// `--peers FILE`: a JSON object of addresses, as in a pinglist's `addresses`.
    public static func loadPeers(_ path: String) throws -> AddressBook {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgentError("--peers \(path): cannot read")
        }
        let entries: [String: String]
        do { entries = try JSONDecoder().decode([String: String].self, from: data) } catch {
            throw AgentError("--peers \(path): expected a JSON object of \"node\": \"HOST:PORT\"")
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
