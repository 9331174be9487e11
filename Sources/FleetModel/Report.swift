// The probe report an agent sends each window (wire-v1.md §3): parsed from JSON or NDJSON,
// validated against the spec and the topology with errors that name the field (and the line), and
// written back in a stable form for files of reports.

import Foundation

/// One agent's report for one window. Sketches are out of their base64 (`WireSketch`) but not
/// decoded: the engine decodes them, and a sketch that fails to decode invalidates its pair only.
public struct Report: Sendable, Equatable {
    public enum Transport: String, Sendable, Codable, CaseIterable {
        case verbsRC = "verbs-rc"
        case verbsUD = "verbs-ud"
        case udp
    }

    public struct Pair: Sendable, Equatable {
        public var src: EndpointID
        public var dst: EndpointID
        /// Probes put on the wire.
        public var sent: Int
        /// Probes without a reply within the agent's timeout.
        public var lost: Int
        /// Probes that could not be sent at all (not in `sent`).
        public var errors: Int
        /// The DDSketch of the round-trip times (µs) of the `sent - lost` probes that returned.
        public var rttMicros: WireSketch?
        /// The switches crossed, in order, when the agent knows them.
        public var path: [SwitchName]?

        public init(
            src: EndpointID, dst: EndpointID, sent: Int, lost: Int, errors: Int = 0, rttMicros: WireSketch?,
            path: [SwitchName]? = nil
        ) {
            self.src = src
            self.dst = dst
            self.sent = sent
            self.lost = lost
            self.errors = errors
            self.rttMicros = rttMicros
            self.path = path
        }
    }

    public var node: NodeName
    public var windowStart: Timestamp
    public var windowSeconds: Int
    public var agentVersion: String
    public var transport: Transport
    public var pairs: [Pair]
    /// Node health that rides along; keys the project defines, unknown ones kept as they came.
    public var health: [String: JSONValue]

    public init(
        node: NodeName, windowStart: Timestamp, windowSeconds: Int, agentVersion: String,
        transport: Transport,
        pairs: [Pair], health: [String: JSONValue] = [:]
    ) {
        self.node = node
        self.windowStart = windowStart
        self.windowSeconds = windowSeconds
        self.agentVersion = agentVersion
        self.transport = transport
        self.pairs = pairs
        self.health = health
    }

    /// Limits that keep one report bounded.
    public static let maxPairs = 65_536
    public static let maxSketchBase64Bytes = 64 << 10
    /// Probes one pair may report sent in a window: far beyond any prober (600,000 a second for
    /// the longest window), and small enough that the engine keeps `sent` and `lost` in 32 bits.
    public static let maxProbesPerPair = Int(Int32.max)

    /// Parses and validates one report. With a topology, every `src` must be an endpoint of `node`
    /// in it (unknown destinations are the engine's to count, not an error here). The JSON is read
    /// strictly, straight from the bytes (ReportJSON.swift says how, and where it differs from
    /// Foundation's JSONDecoder, which read it before).
    public init(json: Data, topology: Topology? = nil) throws(ReportError) {
        let wire = try json.withUnsafeBytes { bytes in
            Result { () throws(ReportError) in try WireReport(json: bytes) }
        }.get()
        try self.init(wire, topology: topology)
    }

    init(_ wire: WireReport, topology: Topology?) throws(ReportError) {
        guard wire.version == 1 else { throw ReportError("version", "unsupported version \(wire.version)") }
        guard let node = NodeName(wire.node) else {
            throw ReportError("node", "'\(wire.node)' is not a valid node name")
        }
        // The node's endpoints in the topology, looked up once: each src must be one of them.
        var knownSources: [EndpointID]?
        if let topology {
            guard let entry = topology.node(node) else { throw ReportError("node", "unknown node '\(node)'") }
            knownSources = entry.rails.map(\.endpoint)
        }
        guard (1...3600).contains(wire.windowSeconds) else {
            throw ReportError("windowSeconds", "\(wire.windowSeconds) is outside 1...3600")
        }
        guard let start = Timestamp(rfc3339: wire.windowStart) else {
            throw ReportError(
                "windowStart", "'\(wire.windowStart)' is not RFC 3339 UTC like 2026-11-21T10:00:00Z")
        }
        guard start.secondsSinceEpoch % Int64(wire.windowSeconds) == 0 else {
            throw ReportError(
                "windowStart",
                "\(wire.windowStart) is not a multiple of \(wire.windowSeconds) s since the epoch")
        }
        guard let transport = Transport(rawValue: wire.agent.transport) else {
            throw ReportError(
                "agent.transport",
                "unknown transport '\(wire.agent.transport)' (known: \(Transport.allCases.map(\.rawValue)))")
        }
        guard wire.pairs.count <= Self.maxPairs else {
            throw ReportError("pairs", "\(wire.pairs.count) pairs, over the limit of \(Self.maxPairs)")
        }
        var pairs: [Pair] = []
        pairs.reserveCapacity(wire.pairs.count)
        // Every src is on this node, so a pair is known by its dst and src's rail: one hash a pair.
        var sourceRailsByDestination: [EndpointID: UInt64] = [:]
        sourceRailsByDestination.reserveCapacity(wire.pairs.count)
        for (i, entry) in wire.pairs.enumerated() {
            // The field path, built only for an error.
            func at(_ field: String = "") -> String { "pairs[\(i)]" + field }
            guard let src = EndpointID(entry.src) else {
                throw ReportError(at(".src"), "'\(entry.src)' is not an endpoint id")
            }
            guard let dst = EndpointID(entry.dst) else {
                throw ReportError(at(".dst"), "'\(entry.dst)' is not an endpoint id")
            }
            guard src.node == node else {
                throw ReportError(at(".src"), "\(src) is not an endpoint of \(node)")
            }
            if let knownSources, !knownSources.contains(src) {
                throw ReportError(at(".src"), "unknown endpoint \(src)")
            }
            guard insertRail(src.rail, into: &sourceRailsByDestination[dst, default: 0]) else {
                throw ReportError(at(), "pair \(src) -> \(dst) given twice")
            }
            guard entry.sent >= 0 else { throw ReportError(at(".sent"), "negative") }
            guard entry.sent <= Self.maxProbesPerPair else {
                throw ReportError(at(".sent"), "\(entry.sent) is over the limit of \(Self.maxProbesPerPair)")
            }
            guard (0...entry.sent).contains(entry.lost) else {
                throw ReportError(at(".lost"), "\(entry.lost) is outside 0...sent (\(entry.sent))")
            }
            let errors = entry.errors ?? 0
            guard errors >= 0 else { throw ReportError(at(".errors"), "negative") }
            if entry.rttMicros == nil, entry.sent > entry.lost {
                throw ReportError(
                    at(".rttMicros"), "missing while \(entry.sent - entry.lost) probes returned")
            }
            if let sketch = entry.rttMicros, sketch.base64Length > Self.maxSketchBase64Bytes {
                throw ReportError(at(".rttMicros"), "over \(Self.maxSketchBase64Bytes) bytes")
            }
            var path: [SwitchName]?
            if let names = entry.path {
                guard names.count <= 8 else { throw ReportError(at(".path"), "more than 8 switches") }
                path = []
                for (j, name) in names.enumerated() {
                    guard let switchName = SwitchName(name) else {
                        throw ReportError(at(".path[\(j)]"), "'\(name)' is not a switch name")
                    }
                    path?.append(switchName)
                }
            }
            pairs.append(
                Pair(
                    src: src, dst: dst, sent: entry.sent, lost: entry.lost, errors: errors,
                    rttMicros: entry.rttMicros, path: path))
        }
        self.init(
            node: node, windowStart: start, windowSeconds: wire.windowSeconds,
            agentVersion: wire.agent.version,
            transport: transport, pairs: pairs, health: wire.health ?? [:])
    }

    /// The report as one line of JSON (no newline), keys in the spec's order: the form agents
    /// send and report files hold.
    public var jsonLine: String {
        var fields = [
            "\"version\": 1", "\"node\": \(jsonQuote(node.rawValue))", "\"windowStart\": \"\(windowStart)\"",
            "\"windowSeconds\": \(windowSeconds)",
            "\"agent\": {\"version\": \(jsonQuote(agentVersion)), \"transport\": \"\(transport.rawValue)\"}",
        ]
        let pairTexts = pairs.map { pair -> String in
            var parts = [
                "\"src\": \"\(pair.src)\"", "\"dst\": \"\(pair.dst)\"", "\"sent\": \(pair.sent)",
                "\"lost\": \(pair.lost)",
            ]
            if pair.errors != 0 { parts.append("\"errors\": \(pair.errors)") }
            if let sketch = pair.rttMicros { parts.append("\"rttMicros\": \(jsonQuote(sketch.base64))") }
            if let path = pair.path {
                parts.append("\"path\": [\(path.map { "\"\($0)\"" }.joined(separator: ", "))]")
            }
            return "{\(parts.joined(separator: ", "))}"
        }
        fields.append("\"pairs\": [\(pairTexts.joined(separator: ", "))]")
        if !health.isEmpty {
            let entries = health.keys.sorted().map { "\(jsonQuote($0)): \(health[$0]!.jsonText)" }
            fields.append("\"health\": {\(entries.joined(separator: ", "))}")
        }
        return "{\(fields.joined(separator: ", "))}"
    }

    /// Reports from NDJSON, one per non-empty line; errors name the line (`name:LINE: field: reason`).
    public static func parseLines(
        _ text: Data, name: String, topology: Topology? = nil
    ) throws(ReportError) -> [Report] {
        try text.withUnsafeBytes { bytes in
            Result { () throws(ReportError) in try parseLines(bytes, name: name, topology: topology) }
        }.get()
    }

    static func parseLines(
        _ bytes: UnsafeRawBufferPointer, name: String, topology: Topology?
    ) throws(ReportError) -> [Report] {
        var reports: [Report] = []
        var lineNumber = 0
        var lineStart = 0
        while lineStart <= bytes.count {
            let lineEnd = bytes[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            let line = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<lineEnd])
            lineNumber += 1
            lineStart = lineEnd + 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            do {
                reports.append(try Report(WireReport(json: line), topology: topology))
            } catch {
                throw ReportError(error.field, error.reason, location: "\(name):\(lineNumber)")
            }
        }
        return reports
    }
}

/// Marks `rail` in a set of rails; false when it was there already.
private func insertRail(_ rail: Int, into rails: inout UInt64) -> Bool {
    let bit: UInt64 = 1 << UInt64(rail)  // EndpointID.rails is 0...63
    defer { rails |= bit }
    return rails & bit == 0
}

/// The JSON shape of a report, before validation. Unknown keys are ignored (writers may add some).
/// ReportJSON.swift reads it; `Decodable` is kept for the test that holds that reader to Foundation's
/// JSONDecoder, which read it before (not for use in the report path).
struct WireReport: Decodable {
    struct Agent: Decodable {
        var version: String
        var transport: String
    }
    struct Pair: Decodable {
        var src: String
        var dst: String
        var sent: Int
        var lost: Int
        var errors: Int?
        var rttMicros: WireSketch?
        var path: [String]?

        init(
            src: String, dst: String, sent: Int, lost: Int, errors: Int?, rttMicros: WireSketch?,
            path: [String]?
        ) {
            (self.src, self.dst, self.sent, self.lost) = (src, dst, sent, lost)
            (self.errors, self.rttMicros, self.path) = (errors, rttMicros, path)
        }

        /// JSONDecoder's reading (the comparison test's): `rttMicros` is text on the wire.
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            src = try container.decode(String.self, forKey: .src)
            dst = try container.decode(String.self, forKey: .dst)
            sent = try container.decode(Int.self, forKey: .sent)
            lost = try container.decode(Int.self, forKey: .lost)
            errors = try container.decodeIfPresent(Int.self, forKey: .errors)
            rttMicros = try container.decodeIfPresent(String.self, forKey: .rttMicros).map(WireSketch.init(base64:))
            path = try container.decodeIfPresent([String].self, forKey: .path)
        }

        private enum CodingKeys: String, CodingKey { case src, dst, sent, lost, errors, rttMicros, path }
    }
    var version: Int
    var node: String
    var windowStart: String
    var windowSeconds: Int
    var agent: Agent
    var pairs: [Pair]
    var health: [String: JSONValue]?
}

/// What is wrong with a report: the field path, and for files the `name:line` it came from.
public struct ReportError: Error, Sendable, Equatable, CustomStringConvertible {
    public let field: String
    public let reason: String
    public let location: String?

    public init(_ field: String, _ reason: String, location: String? = nil) {
        self.field = field
        self.reason = reason
        self.location = location
    }

    init(decoding error: DecodingError) {
        let (field, reason) = describe(error)
        self.init(field, reason)
    }

    public var description: String {
        let place = [location, field.isEmpty ? nil : field].compactMap { $0 }.joined(separator: ": ")
        return place.isEmpty ? reason : "\(place): \(reason)"
    }
}

/// A field path like `pairs[3].lost` and a reason, from a decoding error.
func describe(_ error: DecodingError) -> (String, String) {
    func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.reduce("") { path, key in
            if let index = key.intValue { return "\(path)[\(index)]" }
            return path.isEmpty ? key.stringValue : "\(path).\(key.stringValue)"
        }
    }
    switch error {
    case .keyNotFound(let key, let context): return (path(context.codingPath + [key]), "missing")
    case .typeMismatch(let type, let context): return (path(context.codingPath), "expected \(type)")
    case .valueNotFound(let type, let context):
        return (path(context.codingPath), "expected \(type), found null")
    case .dataCorrupted(let context): return (path(context.codingPath), context.debugDescription)
    @unknown default: return ("", "\(error)")
    }
}

/// A JSON string literal. Most text (names, base64 sketches) needs no escape: it is copied whole.
func jsonQuote(_ text: String) -> String {
    guard text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") })
    else { return "\"" + text + "\"" }
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
