// `faultline-bench`: speed and accuracy of the quantile sketch, measured in a release build with a
// warm-up and repeated runs (medians). `make bench` prints the table; docs/benchmarks.md keeps the
// figures. `--write-data DIR` and `--json --data DIR` let ci/bench-peers run other sketches on the
// very same data.

import Foundation
import QuantileSketch
import Simulation

let quantilesOfInterest = [0.5, 0.9, 0.99, 0.999]
let valuesPerDataset = 1_000_000
let runs = 7

/// Timing: one warm-up, then `runs` runs; the median, in nanoseconds per operation.
func medianNanoseconds(operations: Int, _ body: () throws -> Void) rethrows -> Double {
    try body()
    var samples: [Double] = []
    let clock = ContinuousClock()
    for _ in 0..<runs {
        let elapsed = try clock.measure { try body() }
        let nanoseconds =
            Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        samples.append(nanoseconds / Double(operations))
    }
    return samples.sorted()[runs / 2]
}

/// Keeps results alive so the optimizer cannot drop the work.
nonisolated(unsafe) var sink: UInt64 = 0

struct DatasetResult {
    let name: String
    let count: Int
    /// One `add(_:)` call per value, from this module (what a caller without a batch pays).
    let insertNanoseconds: Double
    /// `add(contentsOf:)` on the whole array.
    let batchInsertNanoseconds: Double
    /// (q, exact, estimate, relative error)
    let quantiles: [(q: Double, exact: Double, estimate: Double, error: Double)]
}

func measureDataset(name: String, values: [Double]) throws -> DatasetResult {
    var sketch = try QuantileSketch()
    let insert = try medianNanoseconds(operations: values.count) {
        var fresh = try QuantileSketch()
        for value in values { try fresh.add(value) }
        sink &+= fresh.count
        sketch = fresh
    }
    let batchInsert = try medianNanoseconds(operations: values.count) {
        var fresh = try QuantileSketch()
        try fresh.add(contentsOf: values)
        sink &+= fresh.count
    }
    let sorted = values.sorted()
    let estimates = try sketch.quantiles(quantilesOfInterest) ?? []
    let rows = zip(quantilesOfInterest, estimates).map { q, estimate in
        let exact = exactLowerQuantile(sorted, q)
        return (q, exact, estimate, abs(estimate - exact) / abs(exact))
    }
    return DatasetResult(
        name: name, count: values.count, insertNanoseconds: insert, batchInsertNanoseconds: batchInsert,
        quantiles: rows)
}

func datasets(from directory: String?) throws -> [(name: String, values: [Double])] {
    try LatencyDistribution.benchmarkSet.enumerated().map { index, entry in
        guard let directory else {
            return (entry.name, entry.distribution.samples(valuesPerDataset, seed: UInt64(index + 1)))
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(entry.name).f64"))
        let values = data.withUnsafeBytes { raw in
            (0..<(raw.count / 8)).map {
                Double(
                    bitPattern: UInt64(
                        littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)))
            }
        }
        return (entry.name, values)
    }
}

func writeDatasets(to directory: String) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    for (index, entry) in LatencyDistribution.benchmarkSet.enumerated() {
        let values = entry.distribution.samples(valuesPerDataset, seed: UInt64(index + 1))
        var bytes = Data(capacity: values.count * 8)
        for value in values {
            withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        }
        try bytes.write(to: URL(fileURLWithPath: "\(directory)/\(entry.name).f64"))
    }
}

func machineDescription() -> String {
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let model =
        cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
        .map { $0.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces) }
        ?? "unknown CPU"
    return "\(model), \(ProcessInfo.processInfo.activeProcessorCount) cores"
}

/// Sketches of `samples` lognormal RTTs, one per seed.
func sketches(count: Int, samples: Int, distribution: LatencyDistribution) throws -> [QuantileSketch] {
    try (0..<count).map { seed in
        var sketch = try QuantileSketch()
        try sketch.add(contentsOf: distribution.samples(samples, seed: UInt64(1000 + seed)))
        return sketch
    }
}

/// What a report's `rttMicros` carries for one pair in one window: 20 probes' RTTs (a pair's own
/// median spread as the simulator spreads them), as base64.
func probeSketchTexts(count: Int) throws -> [String] {
    var generator = SeededGenerator(seed: 2026)
    return try (0..<count).map { seed in
        var sketch = try QuantileSketch()
        let median = 8 * exp(0.1 * (generator.nextUnit() - 0.5) * 4)
        try sketch.add(contentsOf: LatencyDistribution.lognormal(median: median, sigma: 0.15).samples(20, seed: UInt64(seed)))
        return Data(sketch.encoded()).base64EncodedString()
    }
}

func printTable(_ results: [DatasetResult]) throws {
    let lognormal = LatencyDistribution.benchmarkSet[0].distribution
    let narrow = LatencyDistribution.lognormal(median: 8, sigma: 0.1)
    print("faultline-bench: \(machineDescription()); release build; median of \(runs) runs after a warm-up")
    print("")
    print("insert (ns/value, 1,000,000 values)   add(_:) per value   add(contentsOf:)")
    for result in results {
        let name = result.name.padding(toLength: 10, withPad: " ", startingAt: 0)
        print(
            "  \(name) \(String(format: "%25.2f", result.insertNanoseconds))"
                + " \(String(format: "%18.2f", result.batchInsertNanoseconds))")
    }

    print("")
    print("1,000-sample sketches (ns per sketch; mean non-empty bins in brackets)")
    for (label, distribution) in [("lognormal σ=0.1", narrow), ("lognormal σ=0.45", lognormal)] {
        let pool = try sketches(count: 1000, samples: 1000, distribution: distribution)
        let bins = Double(pool.map(\.binCount).reduce(0, +)) / Double(pool.count)
        let merge = try medianNanoseconds(operations: pool.count) {
            var accumulator = try QuantileSketch()
            for sketch in pool { try accumulator.merge(sketch) }
            sink &+= accumulator.count
        }
        let pairMerge = try medianNanoseconds(operations: pool.count / 2) {
            for i in stride(from: 0, to: pool.count, by: 2) {
                var left = pool[i]
                try left.merge(pool[i + 1])
                sink &+= left.count
            }
        }
        let encode = medianNanoseconds(operations: pool.count) {
            for sketch in pool { sink &+= UInt64(sketch.encoded().count) }
        }
        let wires = pool.map { $0.encoded() }
        let decode = try medianNanoseconds(operations: wires.count) {
            for wire in wires { sink &+= try QuantileSketch(decoding: wire).count }
        }
        print("  \(label) [\(String(format: "%.0f", bins)) bins]")
        print("    merge into an accumulator   \(String(format: "%8.1f", merge))")
        print("    merge a pair (copy + merge) \(String(format: "%8.1f", pairMerge))")
        print("    encode                      \(String(format: "%8.1f", encode))")
        print("    decode                      \(String(format: "%8.1f", decode))")
    }

    print("")
    let probeTexts = try probeSketchTexts(count: 10_000)
    var reader = try EncodedSketchReader(quantiles: [0.5, 0.9, 0.99, 0.999])
    let read = try medianNanoseconds(operations: probeTexts.count) {
        for text in probeTexts where try reader.read(base64: text) { sink &+= reader.count }
    }
    let meanLength = Double(probeTexts.map(\.utf8.count).reduce(0, +)) / Double(probeTexts.count)
    print("20-sample probe sketches from base64 (\(String(format: "%.0f", meanLength)) characters on average)")
    print("    count and 4 quantiles (ns)  \(String(format: "%8.1f", read))")

    print("")
    let (reportBody, topology) = try benchReport()
    let parse = try medianNanoseconds(operations: 1_000) {
        try parseReports(reportBody, topology: topology, count: 1_000)
    }
    print("report JSON (64 pairs, \(reportBody.count) bytes; 1,000-node topology)")
    print("    Report(json:topology:) (µs) \(String(format: "%8.1f", parse / 1_000))")

    print("")
    print("encoded bytes (mean over 100 sketches)")
    for (label, distribution) in [("lognormal σ=0.1", narrow), ("lognormal σ=0.45", lognormal)] {
        for samples in [100, 1000] {
            let sizes = try sketches(count: 100, samples: samples, distribution: distribution).map {
                $0.encoded().count
            }
            let mean = Double(sizes.reduce(0, +)) / Double(sizes.count)
            print("  \(label), \(samples) samples: \(String(format: "%.0f", mean)) (max \(sizes.max()!))")
        }
    }

    print("")
    print("accuracy (relative error vs exact, lower rank convention; guarantee 1%)")
    print(
        "  dataset     "
            + quantilesOfInterest.map { "q=\($0)".padding(toLength: 10, withPad: " ", startingAt: 0) }
            .joined())
    for result in results {
        let errors = result.quantiles.map {
            String(format: "%.4f%%", $0.error * 100).padding(toLength: 10, withPad: " ", startingAt: 0)
        }
        print("  \(result.name.padding(toLength: 10, withPad: " ", startingAt: 0))  \(errors.joined())")
    }
    print("")
    print("(sink \(sink % 10))")
}

func printJSON(_ results: [DatasetResult]) {
    func number(_ value: Double) -> String { "\(value)" }
    let datasets = results.map { result in
        let quantiles = result.quantiles.map {
            "\"\($0.q)\": {\"exact\": \(number($0.exact)), \"estimate\": \(number($0.estimate)), \"relativeError\": \(number($0.error))}"
        }
        return
            "\"\(result.name)\": {\"count\": \(result.count), \"insertNsPerValue\": \(number(result.insertNanoseconds)), "
            + "\"batchInsertNsPerValue\": \(number(result.batchInsertNanoseconds)), "
            + "\"quantiles\": {\(quantiles.joined(separator: ", "))}}"
    }
    print(
        "{\"machine\": \"\(machineDescription())\", \"relativeAccuracy\": \(IndexMapping.defaultRelativeAccuracy), "
            + "\"datasets\": {\(datasets.joined(separator: ", "))}}")
}

/// A fixed amount of work, run `repeats` times without timing, for an instruction counter
/// (ci/bench-instructions runs it under valgrind with 1 and 2 repeats and takes the difference).
func runWorkload(_ name: String, repeats: Int) throws -> Int {
    let narrow = LatencyDistribution.lognormal(median: 8, sigma: 0.1)
    let lognormal = LatencyDistribution.benchmarkSet[0].distribution
    switch name {
    case "insert", "batch-insert":
        let values = lognormal.samples(100_000, seed: 1)
        for _ in 0..<repeats {
            var sketch = try QuantileSketch()
            if name == "insert" {
                for value in values { try sketch.add(value) }
            } else {
                try sketch.add(contentsOf: values)
            }
            sink &+= sketch.count
        }
        return values.count
    case "read-probe":
        let texts = try probeSketchTexts(count: 1000)
        var reader = try EncodedSketchReader(quantiles: [0.5, 0.9, 0.99, 0.999])
        for _ in 0..<repeats {
            for text in texts where try reader.read(base64: text) { sink &+= reader.count }
        }
        return texts.count
    case "parse-report":
        let (body, topology) = try benchReport()
        try parseReports(body, topology: topology, count: 100 * repeats)
        return 100
    case "ingest":
        let workload = try IngestWorkload(windows: 4)
        defer { workload.remove() }
        for window in 0..<min(repeats, 4) { sink &+= UInt64(try workload.ingest(window: window)) }
        return IngestWorkload.nodes
    case "merge-narrow", "merge-wide", "encode-narrow", "encode-wide", "decode-narrow", "decode-wide":
        let pool = try sketches(
            count: 200, samples: 1000, distribution: name.hasSuffix("narrow") ? narrow : lognormal)
        let wires = pool.map { $0.encoded() }
        for _ in 0..<repeats {
            if name.hasPrefix("merge") {
                var accumulator = try QuantileSketch()
                for sketch in pool { try accumulator.merge(sketch) }
                sink &+= accumulator.count
            } else if name.hasPrefix("encode") {
                for sketch in pool { sink &+= UInt64(sketch.encoded().count) }
            } else {
                for wire in wires { sink &+= try QuantileSketch(decoding: wire).count }
            }
        }
        return pool.count
    default:
        throw CocoaError(
            .featureUnsupported, userInfo: [NSLocalizedDescriptionKey: "unknown workload \(name)"])
    }
}

let usage = """
    usage: faultline-bench [--json] [--data DIR]
           faultline-bench --write-data DIR
           faultline-bench --engine SCENARIO.json [--rollup]
           faultline-bench --weekly-report STORE.db   (made once: a week of a 1,000-node fleet's rollups)
           faultline-bench --serve HOST:PORT --admin-token TOKEN [--nodes N] [--threads N] [--seconds S] [--window-seconds S]
           faultline-bench --workload insert|batch-insert|read-probe|parse-report|ingest|merge-narrow|merge-wide|encode-narrow|encode-wide|decode-narrow|decode-wide --repeat N
    """
var arguments = Array(CommandLine.arguments.dropFirst())
var json = false
var dataDirectory: String?
var writeDirectory: String?
var workload: String?
var engineScenario: String?
var repeats = 1
var serveLoad: ServeLoadOptions?
var weeklyReportStore: String?
while let argument = arguments.first {
    arguments.removeFirst()
    switch argument {
    case "--json": json = true
    case "--data" where !arguments.isEmpty: dataDirectory = arguments.removeFirst()
    case "--write-data" where !arguments.isEmpty: writeDirectory = arguments.removeFirst()
    case "--workload" where !arguments.isEmpty: workload = arguments.removeFirst()
    case "--engine" where !arguments.isEmpty: engineScenario = arguments.removeFirst()
    case "--rollup": break  // read by runEngineBench
    case "--weekly-report" where !arguments.isEmpty: weeklyReportStore = arguments.removeFirst()
    case "--serve" where !arguments.isEmpty:
        serveLoad = serveLoad ?? ServeLoadOptions()
        serveLoad?.address = arguments.removeFirst()
    case "--admin-token" where !arguments.isEmpty: serveLoad?.adminToken = arguments.removeFirst()
    case "--nodes" where !arguments.isEmpty && Int(arguments[0]) != nil:
        serveLoad?.nodes = Int(arguments.removeFirst())!
    case "--threads" where !arguments.isEmpty && Int(arguments[0]) != nil:
        serveLoad?.threads = Int(arguments.removeFirst())!
    case "--seconds" where !arguments.isEmpty && Double(arguments[0]) != nil:
        serveLoad?.seconds = Double(arguments.removeFirst())!
    case "--window-seconds" where !arguments.isEmpty && Int(arguments[0]) != nil:
        serveLoad?.windowSeconds = Int(arguments.removeFirst())!
    case "--repeat" where !arguments.isEmpty && Int(arguments[0]) != nil:
        repeats = Int(arguments.removeFirst())!
    case "--help", "-h":
        print(usage)
        exit(0)
    default:
        FileHandle.standardError.write(
            Data("faultline-bench: unknown argument '\(argument)'\n\(usage)\n".utf8))
        exit(64)
    }
}

do {
    if let writeDirectory {
        try writeDatasets(to: writeDirectory)
        exit(0)
    }
    if let serveLoad {
        try runServeLoad(serveLoad)
        exit(0)
    }
    if let weeklyReportStore {
        try runWeeklyReportBench(databasePath: weeklyReportStore)
        exit(0)
    }
    if let engineScenario {
        try runEngineBench(scenarioPath: engineScenario)
        exit(0)
    }
    if let workload {
        print(
            "\(workload): \(try runWorkload(workload, repeats: repeats)) operations per repeat (sink \(sink % 10))"
        )
        exit(0)
    }
    let results = try datasets(from: dataDirectory).map {
        try measureDataset(name: $0.name, values: $0.values)
    }
    if json { printJSON(results) } else { try printTable(results) }
} catch {
    FileHandle.standardError.write(Data("faultline-bench: \(error)\n".utf8))
    exit(70)
}
