// `faultline sketch quantiles | encode | decode`: the quantile sketch from the shell, for operators
// checking a probe's numbers and for interop checks against other DDSketch implementations.

import Foundation
import QuantileSketch

/// The options shared by the sketch commands that print quantiles.
struct QuantileOutputOptions {
    static let defaultQuantiles = "0.5,0.9,0.99,0.999"

    /// The quantiles as the user wrote them (JSON keys) and as numbers.
    let labels: [String]
    let quantiles: [Double]
    let json: Bool

    init(_ options: OptionParser) throws(CommandError) {
        let text = options.value("q") ?? Self.defaultQuantiles
        var labels: [String] = []
        var quantiles: [Double] = []
        for label in text.split(separator: ",", omittingEmptySubsequences: false).map({ String($0) }) {
            let isDecimal = !label.isEmpty && label.allSatisfy { "0123456789.eE+-".contains($0) }
            guard isDecimal, let q = Double(label), q >= 0, q <= 1 else {
                throw CommandError.usage("--q takes numbers in [0, 1] separated by commas, got '\(label)'")
            }
            guard !labels.contains(label) else { throw CommandError.usage("--q names \(label) twice") }
            labels.append(label)
            quantiles.append(q)
        }
        self.labels = labels
        self.quantiles = quantiles
        self.json = options.flag("json")
    }

    /// Prints count, min, max and the quantiles: one JSON object, or `name<TAB>value` lines.
    func print(_ sketch: QuantileSketch, io: some CommandIO) throws(CommandError) {
        let answers: [Double]?
        do {
            answers = try sketch.quantiles(quantiles)
        } catch {
            throw CommandError.data(error.description)
        }
        if json {
            let pairs = labels.indices.map { "\(jsonString(labels[$0])): \(jsonNumber(answers?[$0]))" }
            io.write(
                "{\"count\": \(sketch.count), \"min\": \(jsonNumber(sketch.min)), \"max\": \(jsonNumber(sketch.max)), "
                    + "\"quantiles\": {\(pairs.joined(separator: ", "))}}\n")
        } else {
            var lines = ["count\t\(sketch.count)", "min\t\(text(sketch.min))", "max\t\(text(sketch.max))"]
            // Values the bin limit moved out of their own bin (the protobuf does not carry it).
            if sketch.collapsedCount > 0 { lines.append("collapsed\t\(sketch.collapsedCount)") }
            lines += labels.indices.map { "\(labels[$0])\t\(text(answers?[$0]))" }
            io.write(lines.joined(separator: "\n") + "\n")
        }
    }

    private func text(_ value: Double?) -> String { value.map { "\($0)" } ?? "-" }
}

/// Numbers from standard input into a sketch.
private func sketchOfInput(io: some CommandIO, accuracy: Double) throws(CommandError) -> QuantileSketch {
    var sketch: QuantileSketch
    do {
        sketch = try QuantileSketch(relativeAccuracy: accuracy)
    } catch {
        throw CommandError.usage(error.description)
    }
    try forEachNumber(io: io) { (value) throws(CommandError) in
        do {
            try sketch.add(value)
        } catch {
            throw CommandError.data("\(error)")
        }
    }
    return sketch
}

private func accuracyOption(_ options: OptionParser) throws(CommandError) -> Double {
    let accuracy = try options.double(
        "accuracy", default: IndexMapping.defaultRelativeAccuracy, "a number in (0, 1)"
    ) { $0 > 0 && $0 < 1 }
    do {
        _ = try IndexMapping(relativeAccuracy: accuracy)
    } catch {
        throw CommandError.usage("--accuracy: \(error.description)")
    }
    return accuracy
}

struct SketchQuantilesCommand: Command {
    static let name = "sketch quantiles"
    static let summary = "quantiles of the numbers on stdin, through the sketch"
    static let usage = "sketch quantiles [--accuracy A] [--q 0.5,0.9,0.99,0.999] [--json]"
    static let help = """
        Reads one number per line on stdin, adds each to a DDSketch and prints the count, the exact
        min and max, and the quantiles (lower rank convention: the element at index floor(q*(n-1))
        of the sorted values, answered within the relative accuracy).

        options:
          --accuracy A   relative accuracy in (0, 1) (default 0.01)
          --q LIST       quantiles in [0, 1], comma-separated (default 0.5,0.9,0.99,0.999)
          --json         print one JSON object: {"count": N, "min": X, "max": X, "quantiles": {"0.5": X, ...}}

        A line that is not a finite number stops with "line N: ..." and exit status 65.
        """

    let accuracy: Double
    let output: QuantileOutputOptions

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["accuracy", "q"], flags: ["json"])
        accuracy = try accuracyOption(options)
        output = try QuantileOutputOptions(options)
    }

    func run(io: some CommandIO) throws(CommandError) {
        try output.print(sketchOfInput(io: io, accuracy: accuracy), io: io)
    }
}

struct SketchEncodeCommand: Command {
    static let name = "sketch encode"
    static let summary = "numbers on stdin to one line of base64 DDSketch protobuf"
    static let usage = "sketch encode [--accuracy A]"
    static let help = """
        Reads one number per line on stdin and prints the sketch as one line of base64 (RFC 4648,
        padded) of its DDSketch protobuf: logarithmic mapping, contiguous bins (wire-v1.md §4).

        options:
          --accuracy A   relative accuracy in (0, 1) (default 0.01)
        """

    let accuracy: Double

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["accuracy"])
        accuracy = try accuracyOption(options)
    }

    func run(io: some CommandIO) throws(CommandError) {
        let sketch = try sketchOfInput(io: io, accuracy: accuracy)
        io.write(Data(sketch.encoded()).base64EncodedString() + "\n")
    }
}

struct SketchDecodeCommand: Command {
    static let name = "sketch decode"
    static let summary = "base64 DDSketch protobuf on stdin to its quantiles"
    static let usage = "sketch decode [--q 0.5,0.9,0.99,0.999] [--json]"
    static let help = """
        Reads one base64 DDSketch protobuf (as `sketch encode` or a probe report's rttMicros carries)
        on stdin and prints what `sketch quantiles` prints. min and max are unknown (the protobuf does
        not carry them): null in JSON, "-" in text.

        options:
          --q LIST       quantiles in [0, 1], comma-separated (default 0.5,0.9,0.99,0.999)
          --json         print one JSON object

        Malformed base64 or protobuf stops with a message and exit status 65.
        """

    /// Larger input than any sketch within the bin limit could need.
    static let maxInputBytes = 1 << 20

    let output: QuantileOutputOptions

    init(arguments: [String]) throws(CommandError) {
        let options = try OptionParser(arguments, valued: ["q"], flags: ["json"])
        output = try QuantileOutputOptions(options)
    }

    func run(io: some CommandIO) throws(CommandError) {
        let input = try readAllInput(io: io, limit: Self.maxInputBytes)
        let text = String(decoding: input, as: UTF8.self).trimmingASCIIWhitespace()
        guard !text.isEmpty else { throw CommandError.data("no input: expected one line of base64") }
        guard let bytes = Data(base64Encoded: text) else {
            throw CommandError.data("input is not valid base64 (RFC 4648, with padding)")
        }
        let sketch: QuantileSketch
        do {
            sketch = try QuantileSketch(decoding: bytes)
        } catch {
            throw CommandError.data(error.description)
        }
        try output.print(sketch, io: io)
    }
}
