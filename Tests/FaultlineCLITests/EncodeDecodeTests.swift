// `sketch encode` and `sketch decode` in process: padded base64, round-trip answers, bad input (65).

import Foundation
import QuantileSketch
import Simulation
import Testing

@testable import FaultlineCLI

@Suite("sketch encode and decode")
struct EncodeDecodeTests {
    /// RFC 4648 base64 with padding: groups of four from the standard alphabet, `=` only at the end.
    static func isPaddedBase64(_ text: Substring) -> Bool {
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        let padding = text.reversed().prefix { $0 == "=" }.count
        return !text.isEmpty && text.count % 4 == 0 && padding <= 2
            && text.dropLast(padding).allSatisfy { alphabet.contains($0) }
    }

    static let accuracies: [Double?] = [nil, 0.05, 0.001]

    @Test(
        "encode prints one line of padded base64 of a sketch that holds the input",
        arguments: [UInt64(5), 6], accuracies)
    func encodeOutput(seed: UInt64, accuracy: Double?) throws {
        let values = LatencyDistribution.bimodal(fast: 6.9, slow: 48, fastShare: 0.9, sigma: 0.15)
            .samples(4000, seed: seed)
        let options = accuracy.map { ["--accuracy", "\($0)"] } ?? []
        let (status, out, err) = run(["sketch", "encode"] + options, stdin: lines(values))
        #expect(status == .success)
        #expect(err == "")
        try #require(out.hasSuffix("\n") && out.dropLast().firstIndex(of: "\n") == nil, "one line")
        let line = out.dropLast()
        #expect(Self.isPaddedBase64(line), "\(line)")
        let bytes = try #require(Data(base64Encoded: String(line)))
        // The bytes are a sketch with the asked accuracy, holding every value, answering within it.
        let sketch = try QuantileSketch(decoding: bytes)
        let alpha = accuracy ?? 0.01
        #expect(abs(sketch.relativeAccuracy - alpha) <= alpha * 1e-9)
        #expect(sketch.count == UInt64(values.count))
        let sorted = values.sorted()
        let qs = [0.01, 0.5, 0.9, 0.95, 0.99]
        let answers = try #require(try sketch.quantiles(qs))
        for (q, answer) in zip(qs, answers) {
            let exact = exactLowerQuantile(sorted, q)
            #expect(relativeError(answer, exact) <= alpha * (1 + 1e-9), "q \(q)")
        }
    }

    @Test(
        "decode of encode answers what quantiles answers, without min and max", arguments: [UInt64(1), 2, 3])
    func roundTrip(seed: UInt64) throws {
        let values = LatencyDistribution.lognormal(median: 6.8, sigma: 0.12).samples(3000, seed: seed)
        let sorted = values.sorted()
        let q = "0,0.25,0.5,0.9,0.99,0.999,1"
        let labels = q.split(separator: ",").map(String.init)

        let direct = run(["sketch", "quantiles", "--json", "--q", q], stdin: lines(values))
        #expect(direct.0 == .success)
        let encoded = run(["sketch", "encode"], stdin: lines(values))
        #expect(encoded.0 == .success)
        // The encoded line goes in as it came out, newline and all, as through a shell pipe.
        let decoded = run(["sketch", "decode", "--json", "--q", q], stdin: encoded.out)
        #expect(decoded.0 == .success)
        #expect(decoded.err == "")

        let before = try QuantilesJSON(direct.out)
        let after = try QuantilesJSON(decoded.out)
        #expect(after.count == UInt64(values.count))
        #expect(after.count == before.count)
        #expect(after.min == nil, "the protobuf does not carry the minimum")
        #expect(after.max == nil, "the protobuf does not carry the maximum")
        #expect(Set(after.quantiles.keys) == Set(labels))
        let min = try #require(before.min)
        let max = try #require(before.max)
        for label in labels {
            let fromWire = try after.answer(label)
            let exact = exactLowerQuantile(sorted, try #require(Double(label)))
            #expect(
                relativeError(fromWire, exact) <= 0.01 + 1e-12, "q \(label): the guarantee survives the wire")
            // quantiles keeps answers within the exact min and max; otherwise the bins are the same.
            let clamped = Swift.min(Swift.max(fromWire, min), max)
            #expect(relativeError(clamped, try before.answer(label)) <= 1e-12, "q \(label)")
        }
    }

    @Test(
        "decode takes the base64 line with LF, CRLF, no line end or blanks around it",
        arguments: ["\n", "\r\n", "", "\n\n", " \t", "\r\n\r\n"])
    func decodeLineEndings(ending: String) throws {
        let encoded = run(["sketch", "encode"], stdin: "1\n2\n3\n")
        let line = String(encoded.out.dropLast())
        let (status, out, err) = run(
            ["sketch", "decode", "--json", "--q", "0.5"], stdin: " \(line)\(ending)")
        #expect(status == .success, "\(err)")
        #expect(try QuantilesJSON(out).count == 3)
    }

    @Test("decode prints text with '-' for the unknown min and max")
    func decodeText() throws {
        let encoded = run(["sketch", "encode"], stdin: "10\n20\n30\n40\n")
        let (status, out, err) = run(["sketch", "decode", "--q", "0.5"], stdin: encoded.out)
        #expect(status == .success)
        #expect(err == "")
        let rows = out.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        try #require(rows.count == 4 && rows.allSatisfy { $0.count == 2 }, "\(out.debugDescription)")
        #expect(rows.map { $0[0] } == ["count", "min", "max", "0.5"])
        #expect(rows[0][1] == "4")
        #expect(rows[1][1] == "-")
        #expect(rows[2][1] == "-")
        #expect(relativeError(try #require(Double(rows[3][1])), 20) <= 0.01 + 1e-12)
    }

    @Test("an empty sketch survives the round trip: count 0, null answers")
    func emptyRoundTrip() throws {
        let encoded = run(["sketch", "encode"], stdin: "")
        #expect(encoded.0 == .success)
        let decoded = run(["sketch", "decode", "--json", "--q", "0.5"], stdin: encoded.out)
        #expect(decoded.0 == .success)
        let json = try QuantilesJSON(decoded.out)
        #expect(json.count == 0)
        #expect(json.quantiles.count == 1 && json.quantiles["0.5"]! == nil)
    }

    struct BadSketch: Sendable, CustomTestStringConvertible {
        let name: String
        let stdin: String
        let complaint: String
        var testDescription: String { name }
    }

    static let badSketches: [BadSketch] = [
        BadSketch(name: "not base64", stdin: "this is not base64!\n", complaint: "base64"),
        BadSketch(name: "base64 with a bad character", stdin: "AAA*\n", complaint: "base64"),
        BadSketch(name: "two lines of base64", stdin: "/w==\n/w==\n", complaint: "base64"),
        BadSketch(name: "0xFF", stdin: Data([0xFF]).base64EncodedString() + "\n", complaint: "malformed"),
        BadSketch(
            name: "a length past the end", stdin: Data([0x0A, 0x05, 0x09]).base64EncodedString(),
            complaint: "malformed"),
        BadSketch(name: "empty", stdin: "", complaint: "no input"),
        BadSketch(name: "only whitespace", stdin: " \n\r\n", complaint: "no input"),
    ]

    @Test("decode of bad input exits 65 with a message and prints nothing", arguments: badSketches)
    func decodeBadInput(input: BadSketch) {
        let (status, out, err) = run(["sketch", "decode", "--json"], stdin: input.stdin)
        #expect(status == .dataError)
        #expect(out == "")
        #expect(err.hasPrefix("faultline sketch decode: "), "\(err)")
        #expect(err.contains(input.complaint), "\(err)")
        #expect(!err.contains("usage:"), "bad data is not a usage error")
    }

    @Test("decode of a sketch cut short by one byte exits 65, malformed")
    func truncatedSketch() throws {
        let encoded = run(["sketch", "encode"], stdin: lines([1, 2, 3, 500, 1e6]))
        let bytes = try #require(Data(base64Encoded: String(encoded.out.dropLast())))
        // Positive values only: the sketch ends with the positive store, whose length then runs past the end.
        let cut = Data(bytes.dropLast()).base64EncodedString()
        let (status, out, err) = run(["sketch", "decode", "--json"], stdin: cut)
        #expect(status == .dataError)
        #expect(out == "")
        #expect(err.contains("malformed"), "\(err)")
    }
}
