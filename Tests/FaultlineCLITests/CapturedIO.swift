// The in-process harness: runs a command line against given stdin bytes and captures stdout and stderr.

import Foundation
import Testing

@testable import FaultlineCLI

/// Standard streams for `FaultlineCommand.run`: stdin from memory, delivered a few bytes per read
/// (as a slow pipe would), stdout and stderr into strings.
final class CapturedIO: CommandIO {
    private let input: [UInt8]
    private var position = 0
    private let chunkSize: Int
    private(set) var output = ""
    private(set) var errorOutput = ""

    init(stdin: [UInt8], chunkSize: Int) {
        precondition(chunkSize > 0)
        self.input = stdin
        self.chunkSize = chunkSize
    }

    func readInput(into buffer: inout [UInt8], at offset: Int) throws(CommandError) -> Int {
        // The contract: there is room at `offset`; a read of 0 bytes means the end of input.
        guard offset >= 0, offset < buffer.count else {
            Issue.record("readInput(into:at:) called with offset \(offset) in a buffer of \(buffer.count)")
            return 0
        }
        let n = Swift.min(chunkSize, buffer.count - offset, input.count - position)
        guard n > 0 else { return 0 }
        let size = buffer.count
        buffer.replaceSubrange(offset..<(offset + n), with: input[position..<(position + n)])
        precondition(buffer.count == size)
        position += n
        return n
    }

    func write(_ text: String) { output += text }
    func writeError(_ text: String) { errorOutput += text }
}

/// Runs `faultline <args>` in process with `stdin`, 7 bytes per read unless told otherwise.
func run(
    _ args: [String], stdin: String = "", chunkSize: Int = 7
) -> (ExitCode, out: String, err: String) {
    let io = CapturedIO(stdin: Array(stdin.utf8), chunkSize: chunkSize)
    let status = FaultlineCommand.run(args, io: io)
    return (status, io.output, io.errorOutput)
}

/// What `--json` prints: one object with count, min, max and the quantiles by label.
struct QuantilesJSON {
    let count: UInt64
    let min: Double?
    let max: Double?
    /// Every label present, with nil for a JSON null.
    let quantiles: [String: Double?]

    struct FormatError: Error, CustomStringConvertible {
        let description: String
    }

    /// The values, read exactly (JSONSerialization gives NSDecimalNumber, whose doubleValue can be
    /// an ulp off the double the text names).
    private struct Values: Decodable {
        let count: UInt64
        let min: Double?
        let max: Double?
        let quantiles: [String: Double?]
    }

    /// Parses the whole of `text`, which must be exactly one JSON object and one newline.
    init(_ text: String) throws {
        guard text.hasSuffix("\n"), text.dropLast().firstIndex(of: "\n") == nil else {
            throw FormatError(description: "not exactly one line: \(text.debugDescription)")
        }
        // The shape: one object (anything after it fails the parse) with exactly these keys; the
        // decoder then insists on a whole count and numbers or nulls everywhere else.
        let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8))
        guard let object = parsed as? [String: Any] else {
            throw FormatError(description: "not a JSON object: \(text)")
        }
        guard Set(object.keys) == ["count", "min", "max", "quantiles"] else {
            throw FormatError(description: "keys are \(object.keys.sorted())")
        }
        let values = try JSONDecoder().decode(Values.self, from: Data(text.utf8))
        count = values.count
        min = values.min
        max = values.max
        quantiles = values.quantiles
    }

    /// The answer for `label`, which must be present and a number.
    func answer(_ label: String) throws -> Double {
        guard let entry = quantiles[label], let value = entry else {
            throw FormatError(description: "no number for quantile \(label) in \(quantiles)")
        }
        return value
    }
}

/// |answer − exact| / |exact|.
func relativeError(_ answer: Double, _ exact: Double) -> Double {
    abs(answer - exact) / abs(exact)
}

/// One number per line, in Swift's shortest round-trip form.
func lines(_ values: [Double], terminator: String = "\n") -> String {
    values.map { "\($0)\(terminator)" }.joined()
}
