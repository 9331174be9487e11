// Prometheus text exposition format 0.0.4: a small registry of families built per scrape, rendered
// deterministically (families by name, samples by labels), and what the process itself knows
// (resident memory and CPU seconds from /proc/self, the start time).

import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// One metric family for one scrape: its help, its type and its samples.
public struct MetricFamily: Sendable {
    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    public struct Sample: Sendable {
        /// The full sample name (with `_bucket`, `_sum`, `_count` for histograms).
        public var name: String
        public var labels: [(String, String)]
        public var value: Double

        public init(name: String, labels: [(String, String)] = [], value: Double) {
            self.name = name
            self.labels = labels
            self.value = value
        }
    }

    public var name: String
    public var help: String
    public var kind: Kind
    public var samples: [Sample] = []

    public init(_ name: String, _ kind: Kind, help: String) {
        self.name = name
        self.kind = kind
        self.help = help
    }

    /// Adds a sample named like the family.
    public mutating func add(_ value: Double, labels: [(String, String)] = []) {
        samples.append(Sample(name: name, labels: labels, value: value))
    }

    public mutating func add(_ value: Int, labels: [(String, String)] = []) {
        add(Double(value), labels: labels)
    }
}

/// A fixed-bucket histogram of durations in seconds (cumulative when rendered).
public struct DurationHistogram: Sendable, Equatable {
    public static let bounds: [Double] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    public private(set) var counts = [Int](repeating: 0, count: bounds.count)
    public private(set) var count = 0
    public private(set) var sum = 0.0

    public init() {}

    public mutating func observe(_ seconds: Double) {
        if let index = Self.bounds.firstIndex(where: { seconds <= $0 }) { counts[index] += 1 }
        count += 1
        sum += seconds
    }

    /// The family's samples: cumulative `_bucket`s up to `+Inf`, `_sum`, `_count`.
    public func family(_ name: String, help: String) -> MetricFamily {
        var family = MetricFamily(name, .histogram, help: help)
        var cumulative = 0
        for (bound, bucket) in zip(Self.bounds, counts) {
            cumulative += bucket
            family.samples.append(
                .init(
                    name: name + "_bucket", labels: [("le", Metrics.number(bound))], value: Double(cumulative)
                ))
        }
        family.samples.append(.init(name: name + "_bucket", labels: [("le", "+Inf")], value: Double(count)))
        family.samples.append(.init(name: name + "_sum", value: sum))
        family.samples.append(.init(name: name + "_count", value: Double(count)))
        return family
    }
}

/// Renders families as Prometheus text 0.0.4.
public enum Metrics {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// `# HELP`, `# TYPE` and samples of every family, families sorted by name, samples by their
    /// label text (histogram buckets stay in bound order).
    public static func render(_ families: [MetricFamily]) -> String {
        var text = ""
        for family in families.sorted(by: { $0.name < $1.name }) {
            text += "# HELP \(family.name) \(escapeHelp(family.help))\n"
            text += "# TYPE \(family.name) \(family.kind.rawValue)\n"
            let samples =
                family.kind == .histogram
                ? family.samples
                : family.samples.sorted { labelText($0.labels) < labelText($1.labels) }
            for sample in samples {
                text += "\(sample.name)\(labelText(sample.labels)) \(number(sample.value))\n"
            }
        }
        return text
    }

    static func labelText(_ labels: [(String, String)]) -> String {
        guard !labels.isEmpty else { return "" }
        return "{" + labels.map { "\($0.0)=\"\(escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
    }

    /// A sample value: integers without a fraction, others in Swift's shortest round-trip form.
    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    private static func escapeHelp(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }

    private static func escapeLabel(_ text: String) -> String {
        escapeHelp(text).replacingOccurrences(of: "\"", with: "\\\"")
    }

    /// Resident memory in bytes (VmRSS of /proc/self/status), nil when unreadable.
    public static func residentMemoryBytes() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, let kib = Double(parts[1]) else { return nil }
            return kib * 1024
        }
        return nil
    }

    /// User plus system CPU seconds of the process (utime and stime of /proc/self/stat).
    public static func cpuSeconds() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // Fields after the command's closing parenthesis start at field 3 (state).
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else {
            return nil
        }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (user + system) / (ticks > 0 ? ticks : 100)
    }
}
