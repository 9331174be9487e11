// A simulator scenario (docs/simulator.md): the fleet, the probing, the noise model and the injected
// faults, parsed from JSON and validated with errors that name the field path (`faults[2].factor`).
// Fault targets are checked against the topology later, when the simulator resolves them.

import FleetModel
import Foundation

/// What is wrong with a scenario, and where (a field path like `noise.rtt.loopback.median`).
public struct ScenarioError: Error, Sendable, Equatable, CustomStringConvertible {
    public let field: String
    public let reason: String

    public init(_ field: String, _ reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { field.isEmpty ? reason : "\(field): \(reason)" }
}

/// One simulation: a fleet probed for a number of windows with noise and faults.
public struct Scenario: Sendable, Equatable {
    /// Where the fleet comes from.
    public enum TopologySource: Sendable, Equatable {
        /// A rail-optimized fabric (`Topology.railOptimized`).
        case generated(Topology.Shape)
        /// A topology file; a relative path is relative to the scenario file's folder.
        case file(String)
    }

    /// A lognormal RTT: `median · exp(sigma · N(0,1))`, in microseconds.
    public struct PathNoise: Sendable, Equatable {
        public var median: Double
        public var sigma: Double

        public init(median: Double, sigma: Double) {
            self.median = median
            self.sigma = sigma
        }
    }

    /// A node whose probes are briefly slow: in a node-window chosen with `probability`, each probe
    /// the node sends is slowed by `factor` with probability `share` (the part of the window the
    /// hiccup lasted).
    public struct HostNoise: Sendable, Equatable {
        public var probability: Double
        public var factor: Double
        public var share: Double

        public init(probability: Double, factor: Double, share: Double) {
            self.probability = probability
            self.factor = factor
            self.share = share
        }
    }

    public struct Noise: Sendable, Equatable {
        /// The healthy RTT of each path class.
        public var rtt: [PathClass: PathNoise]
        /// Each pair's own lasting offset: its RTTs are multiplied by `exp(pairOffsetSigma · N(0,1))`,
        /// drawn once per pair (the same in every window).
        public var pairOffsetSigma: Double
        /// A probe is a spike with this probability: multiplied by a Pareto factor of at least
        /// `spikeFactor` (shape 2, capped at 20 × spikeFactor).
        public var spikeProbability: Double
        public var spikeFactor: Double
        public var hostNoise: HostNoise
        /// Every probe is lost with this probability, faults or not.
        public var backgroundLoss: Double

        public static let defaults = Noise(
            rtt: [
                .loopback: PathNoise(median: 2.0, sigma: 0.05),
                .intraHost: PathNoise(median: 3.5, sigma: 0.08),
                .sameLeaf: PathNoise(median: 5.0, sigma: 0.10),
                .crossLeaf: PathNoise(median: 7.0, sigma: 0.12),
            ],
            pairOffsetSigma: 0.05, spikeProbability: 0.001, spikeFactor: 5,
            hostNoise: HostNoise(probability: 0, factor: 3, share: 0.3), backgroundLoss: 0.0001)
    }

    public enum FaultKind: String, Sendable, CaseIterable {
        case endpoint
        case accessLink
        case fabricLink
        case `switch`
        case node
        /// The node's agent sends no reports; its endpoints still answer others' probes. Not a
        /// fault to find: no finding may name the node.
        case agentSilent
    }

    public enum Effect: String, Sendable, CaseIterable {
        /// Probes through the component take `factor` times as long.
        case slow
        /// Probes through the component are lost with probability `loss`.
        case lossy
        /// Every probe through the component is lost (a dead node also sends no reports).
        case dead
    }

    /// One injected fault, active in windows `start ..< end`.
    public struct Fault: Sendable, Equatable {
        public var kind: FaultKind
        /// An endpoint id, link id (or, for an access link, its endpoint's id), switch or node name.
        public var target: String
        /// Nil only for `agentSilent`.
        public var effect: Effect?
        /// RTT multiplier of a slow fault (1 otherwise).
        public var factor: Double
        /// Loss probability of a lossy fault (0 otherwise).
        public var loss: Double
        /// The share of the pairs through the component that are affected (chosen per pair by a
        /// hash, the same in every window, as ECMP pins flows); 1 by default.
        public var fraction: Double
        public var start: Int
        public var end: Int

        public init(
            kind: FaultKind, target: String, effect: Effect?, factor: Double = 1, loss: Double = 0,
            fraction: Double = 1, start: Int, end: Int
        ) {
            self.kind = kind
            self.target = target
            self.effect = effect
            self.factor = factor
            self.loss = loss
            self.fraction = fraction
            self.start = start
            self.end = end
        }
    }

    public var name: String
    public var seed: UInt64
    public var topology: TopologySource
    /// The first window's start; a whole multiple of `windowSeconds` since the epoch.
    public var start: Timestamp
    public var windowSeconds: Int
    public var windows: Int
    /// Probes per window of a same-leaf or cross-leaf pair.
    public var probesPerPair: Int
    /// Probes per window of a loopback or intra-host pair (agents can afford more; default the same).
    public var probesPerLocalPair: Int
    /// How the pinglist is planned (its seed defaults to the scenario's).
    public var pinglist: PinglistOptions
    public var noise: Noise
    public var faults: [Fault]

    public static let defaultStart = Timestamp(rfc3339: "2026-11-21T10:00:00Z")!

    /// Limits that keep a scenario bounded.
    public static let maxWindows = 100_000
    public static let maxProbesPerPair = 100_000
    public static let maxNodes = 100_000
    public static let maxFaults = 10_000

    public init(
        name: String, seed: UInt64, topology: TopologySource, start: Timestamp = Scenario.defaultStart,
        windowSeconds: Int = 10, windows: Int, probesPerPair: Int = 20, probesPerLocalPair: Int? = nil,
        pinglist: PinglistOptions? = nil, noise: Noise = .defaults, faults: [Fault] = []
    ) {
        self.name = name
        self.seed = seed
        self.topology = topology
        self.start = start
        self.windowSeconds = windowSeconds
        self.windows = windows
        self.probesPerPair = probesPerPair
        self.probesPerLocalPair = probesPerLocalPair ?? probesPerPair
        self.pinglist = pinglist ?? PinglistOptions(seed: seed)
        self.noise = noise
        self.faults = faults
    }

    /// Parses and validates scenario JSON. Unknown keys are errors (a misspelt key would otherwise
    /// silently fall back to a default).
    public init(json: Data) throws(ScenarioError) {
        let root: JSONValue
        do {
            root = try JSONDecoder().decode(JSONValue.self, from: json)
        } catch {
            throw ScenarioError("", "not valid JSON")
        }
        var top = try ObjectReader(root, path: "")
        name = try top.string("name")
        guard !name.isEmpty, name.utf8.count <= 200 else {
            throw ScenarioError("name", "must be 1 to 200 bytes")
        }
        seed = UInt64(try top.integer("seed", in: 0...(1 << 53)))
        topology = try Self.topologySource(top.required("topology"), path: "topology")
        windowSeconds = try top.integer("windowSeconds", in: 1...3600, default: 10)
        if let text = try top.optionalString("start") {
            guard let parsed = Timestamp(rfc3339: text) else {
                throw ScenarioError("start", "'\(text)' is not RFC 3339 UTC like 2026-11-21T10:00:00Z")
            }
            start = parsed
        } else {
            start = Self.defaultStart
        }
        guard start.secondsSinceEpoch % Int64(windowSeconds) == 0 else {
            throw ScenarioError("start", "\(start) is not a multiple of \(windowSeconds) s since the epoch")
        }
        windows = try top.integer("windows", in: 1...Self.maxWindows)
        probesPerPair = try top.integer("probesPerPair", in: 1...Self.maxProbesPerPair, default: 20)
        probesPerLocalPair = try top.integer(
            "probesPerLocalPair", in: 1...Self.maxProbesPerPair, default: probesPerPair)
        if let value = top.optional("pinglist") {
            pinglist = try Self.pinglistOptions(value, path: "pinglist", seed: seed)
        } else {
            pinglist = PinglistOptions(seed: seed)
        }
        if let value = top.optional("noise") {
            noise = try Self.noise(value, path: "noise")
        } else {
            noise = .defaults
        }
        faults = []
        if let value = top.optional("faults") {
            guard case .array(let entries) = value else { throw ScenarioError("faults", "expected an array") }
            guard entries.count <= Self.maxFaults else {
                throw ScenarioError("faults", "\(entries.count) faults, over the limit of \(Self.maxFaults)")
            }
            for (i, entry) in entries.enumerated() {
                faults.append(try Self.fault(entry, path: "faults[\(i)]", windows: windows))
            }
        }
        try top.rejectUnknownKeys()
    }

    /// The topology this scenario runs on; a file is read relative to `directory`.
    public func loadTopology(relativeTo directory: URL?) throws(ScenarioError) -> Topology {
        switch topology {
        case .generated(let shape):
            do {
                return try Topology.railOptimized(shape)
            } catch {
                throw ScenarioError("topology.\(error.field)", error.reason)
            }
        case .file(let path):
            let url: URL
            if path.hasPrefix("/") || directory == nil {
                url = URL(fileURLWithPath: path)
            } else {
                url = directory!.appendingPathComponent(path)
            }
            let data: Data
            do {
                data = try Data(contentsOf: url)
            } catch {
                throw ScenarioError("topology.file", "cannot read \(url.path)")
            }
            do {
                return try Topology(json: data)
            } catch {
                throw ScenarioError("topology.file", "\(url.path): \(error)")
            }
        }
    }

    // MARK: Parts

    private static func topologySource(
        _ value: JSONValue, path: String
    ) throws(ScenarioError) -> TopologySource {
        var reader = try ObjectReader(value, path: path)
        if reader.has("file") {
            let file = try reader.string("file")
            guard !file.isEmpty else { throw ScenarioError("\(path).file", "empty path") }
            try reader.rejectUnknownKeys()
            return .file(file)
        }
        let shape = Topology.Shape(
            nodes: try reader.integer("nodes", in: 1...maxNodes),
            rails: try reader.integer("rails", in: 1...EndpointID.rails.count),
            nodesPerLeaf: try reader.integer("nodesPerLeaf", in: 1...maxNodes),
            spines: try reader.integer("spines", in: 1...1024))
        try reader.rejectUnknownKeys()
        return .generated(shape)
    }

    private static func pinglistOptions(
        _ value: JSONValue, path: String, seed: UInt64
    ) throws(ScenarioError) -> PinglistOptions {
        var reader = try ObjectReader(value, path: path)
        let defaults = PinglistOptions()
        let options = PinglistOptions(
            sameLeafPeers: try reader.integer("sameLeafPeers", in: 0...1024, default: defaults.sameLeafPeers),
            linkCoverage: try reader.integer("linkCoverage", in: 0...1024, default: defaults.linkCoverage),
            maxCrossLeafPerEndpoint: try reader.integer(
                "maxCrossLeafPerEndpoint", in: 0...1024, default: defaults.maxCrossLeafPerEndpoint),
            minCrossLeafPerEndpoint: try reader.integer(
                "minCrossLeafPerEndpoint", in: 0...1024, default: defaults.minCrossLeafPerEndpoint),
            crossRailFallback: try reader.bool("crossRailFallback", default: defaults.crossRailFallback),
            seed: UInt64(try reader.integer("seed", in: 0...(1 << 53), default: Int(seed))))
        try reader.rejectUnknownKeys()
        return options
    }

    private static func noise(_ value: JSONValue, path: String) throws(ScenarioError) -> Noise {
        var reader = try ObjectReader(value, path: path)
        var noise = Noise.defaults
        if let rttValue = reader.optional("rtt") {
            var rtt = try ObjectReader(rttValue, path: "\(path).rtt")
            for pathClass in PathClass.allCases {
                guard let classValue = rtt.optional(pathClass.rawValue) else { continue }
                var entry = try ObjectReader(classValue, path: "\(path).rtt.\(pathClass.rawValue)")
                let old = noise.rtt[pathClass]!
                noise.rtt[pathClass] = PathNoise(
                    median: try entry.double("median", default: old.median, "a number in (0, 1000000]") {
                        $0 > 0 && $0 <= 1_000_000
                    },
                    sigma: try entry.double("sigma", default: old.sigma, "a number in [0, 3]") {
                        $0 >= 0 && $0 <= 3
                    })
                try entry.rejectUnknownKeys()
            }
            try rtt.rejectUnknownKeys(
                hint: "path classes: \(PathClass.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        noise.pairOffsetSigma = try reader.double(
            "pairOffsetSigma", default: noise.pairOffsetSigma, "a number in [0, 3]"
        ) { $0 >= 0 && $0 <= 3 }
        noise.spikeProbability = try reader.double(
            "spikeProbability", default: noise.spikeProbability, "a probability in [0, 1]"
        ) { $0 >= 0 && $0 <= 1 }
        noise.spikeFactor = try reader.double(
            "spikeFactor", default: noise.spikeFactor, "a number in [1, 1000]"
        ) { $0 >= 1 && $0 <= 1000 }
        if let hostValue = reader.optional("hostNoise") {
            var host = try ObjectReader(hostValue, path: "\(path).hostNoise")
            noise.hostNoise = HostNoise(
                probability: try host.double(
                    "probability", default: noise.hostNoise.probability, "a probability in [0, 1]"
                ) { $0 >= 0 && $0 <= 1 },
                factor: try host.double("factor", default: noise.hostNoise.factor, "a number in [1, 1000]") {
                    $0 >= 1 && $0 <= 1000
                },
                share: try host.double("share", default: noise.hostNoise.share, "a share in [0, 1]") {
                    $0 >= 0 && $0 <= 1
                })
            try host.rejectUnknownKeys()
        }
        noise.backgroundLoss = try reader.double(
            "backgroundLoss", default: noise.backgroundLoss, "a probability in [0, 1)"
        ) { $0 >= 0 && $0 < 1 }
        try reader.rejectUnknownKeys()
        return noise
    }

    private static func fault(_ value: JSONValue, path: String, windows: Int) throws(ScenarioError) -> Fault {
        var reader = try ObjectReader(value, path: path)
        let kindText = try reader.string("kind")
        guard let kind = FaultKind(rawValue: kindText) else {
            throw ScenarioError(
                "\(path).kind",
                "unknown kind '\(kindText)' (known: \(FaultKind.allCases.map(\.rawValue).joined(separator: ", ")))"
            )
        }
        let target = try reader.string("target")
        guard !target.isEmpty else { throw ScenarioError("\(path).target", "empty") }
        var effect: Effect?
        if kind == .agentSilent {
            if reader.has("effect") {
                throw ScenarioError(
                    "\(path).effect", "an agentSilent fault has no effect (its node stays healthy)")
            }
        } else {
            let text = try reader.string("effect")
            guard let parsed = Effect(rawValue: text) else {
                throw ScenarioError(
                    "\(path).effect",
                    "unknown effect '\(text)' (known: \(Effect.allCases.map(\.rawValue).joined(separator: ", ")))"
                )
            }
            effect = parsed
        }
        var factor = 1.0
        if effect == .slow {
            factor = try reader.double("factor", "a number in (1, 1000]") { $0 > 1 && $0 <= 1000 }
        } else if reader.has("factor") {
            throw ScenarioError("\(path).factor", "only a slow fault has a factor")
        }
        var loss = 0.0
        if effect == .lossy {
            loss = try reader.double("loss", "a probability in (0, 1]") { $0 > 0 && $0 <= 1 }
        } else if reader.has("loss") {
            throw ScenarioError("\(path).loss", "only a lossy fault has a loss")
        }
        var fraction = 1.0
        if reader.has("fraction") {
            guard kind != .agentSilent, !(kind == .node && effect == .dead) else {
                throw ScenarioError(
                    "\(path).fraction",
                    "a \(kind == .agentSilent ? "silent agent" : "dead node") is all or nothing")
            }
            fraction = try reader.double("fraction", "a share in (0, 1]") { $0 > 0 && $0 <= 1 }
        }
        let start = try reader.integer("start", in: 0...(windows - 1))
        let end = try reader.integer("end", in: (start + 1)...windows, default: windows)
        try reader.rejectUnknownKeys()
        return Fault(
            kind: kind, target: target, effect: effect, factor: factor, loss: loss, fraction: fraction,
            start: start,
            end: end)
    }
}

// MARK: - Reading JSON objects with field paths

/// Reads one JSON object's fields, naming each by its path in errors, and remembers which keys it
/// read so that the rest can be rejected as unknown.
struct ObjectReader {
    let path: String
    private let entries: [String: JSONValue]
    private var used: Set<String> = []

    init(_ value: JSONValue, path: String) throws(ScenarioError) {
        guard case .object(let entries) = value else { throw ScenarioError(path, "expected an object") }
        self.path = path
        self.entries = entries
    }

    func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func has(_ key: String) -> Bool { entries[key] != nil }

    mutating func optional(_ key: String) -> JSONValue? {
        used.insert(key)
        return entries[key]
    }

    mutating func required(_ key: String) throws(ScenarioError) -> JSONValue {
        guard let value = optional(key) else { throw ScenarioError(field(key), "missing") }
        return value
    }

    mutating func string(_ key: String) throws(ScenarioError) -> String {
        guard case .string(let text) = try required(key) else {
            throw ScenarioError(field(key), "expected a string")
        }
        return text
    }

    mutating func optionalString(_ key: String) throws(ScenarioError) -> String? {
        guard let value = optional(key) else { return nil }
        guard case .string(let text) = value else { throw ScenarioError(field(key), "expected a string") }
        return text
    }

    mutating func bool(_ key: String, default defaultValue: Bool) throws(ScenarioError) -> Bool {
        guard let value = optional(key) else { return defaultValue }
        guard case .bool(let flag) = value else { throw ScenarioError(field(key), "expected true or false") }
        return flag
    }

    mutating func integer(
        _ key: String, in range: ClosedRange<Int>, default defaultValue: Int? = nil
    ) throws(ScenarioError) -> Int {
        guard let value = optional(key) else {
            guard let defaultValue else { throw ScenarioError(field(key), "missing") }
            return defaultValue
        }
        guard case .number(let number) = value, number == number.rounded(), abs(number) <= 0x1p53 else {
            throw ScenarioError(field(key), "expected an integer")
        }
        guard range.contains(Int(number)) else {
            throw ScenarioError(
                field(key), "\(Int(number)) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(number)
    }

    mutating func double(
        _ key: String, default defaultValue: Double? = nil, _ expectation: String, isValid: (Double) -> Bool
    ) throws(ScenarioError) -> Double {
        guard let value = optional(key) else {
            guard let defaultValue else { throw ScenarioError(field(key), "missing") }
            return defaultValue
        }
        guard case .number(let number) = value, number.isFinite, isValid(number) else {
            throw ScenarioError(field(key), "expected \(expectation)")
        }
        return number
    }

    /// Fails on the first key (in sorted order) that was never read.
    func rejectUnknownKeys(hint: String? = nil) throws(ScenarioError) {
        guard let unknown = entries.keys.filter({ !used.contains($0) }).sorted().first else { return }
        throw ScenarioError(field(unknown), "unknown key" + (hint.map { " (\($0))" } ?? ""))
    }
}
