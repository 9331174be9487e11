// `sketch quantiles` in process: JSON and text output, accuracy, line endings, empty input, bad lines.

import Foundation
import Simulation
import Testing

@testable import FaultlineCLI

@Suite("sketch quantiles")
struct SketchQuantilesTests {
    static let seeds: [UInt64] = [1, 7, 42, 1234, 99_991]

    @Test(
        "--json: one object, the labels as given, exact min and max, answers within 1%",
        arguments: seeds, ["0.5,0.99,0.999,1", "0.50,0.9,0.999,0"])
    func jsonAnswersWithinAccuracy(seed: UInt64, q: String) throws {
        let values = LatencyDistribution.lognormal(median: 8, sigma: 0.45).samples(5000, seed: seed)
        let sorted = values.sorted()
        let (status, out, err) = run(["sketch", "quantiles", "--json", "--q", q], stdin: lines(values))
        #expect(status == .success)
        #expect(err == "")
        let json = try QuantilesJSON(out)
        let labels = q.split(separator: ",").map(String.init)
        #expect(Set(json.quantiles.keys) == Set(labels))
        #expect(json.count == UInt64(values.count))
        #expect(json.min == sorted.first)
        #expect(json.max == sorted.last)
        for label in labels {
            let answer = try json.answer(label)
            let exact = exactLowerQuantile(sorted, try #require(Double(label)))
            #expect(relativeError(answer, exact) <= 0.01 + 1e-12, "q \(label): \(answer) vs exact \(exact)")
            #expect(
                answer >= sorted.first! && answer <= sorted.last!, "q \(label): \(answer) outside the data")
        }
    }

    @Test("without --q: the default quantiles 0.5, 0.9, 0.99, 0.999")
    func defaultQuantiles() throws {
        let values = LatencyDistribution.pareto(scale: 2, alpha: 1.1).samples(3000, seed: 3)
        let sorted = values.sorted()
        let (status, out, _) = run(["sketch", "quantiles", "--json"], stdin: lines(values))
        #expect(status == .success)
        let json = try QuantilesJSON(out)
        #expect(Set(json.quantiles.keys) == ["0.5", "0.9", "0.99", "0.999"])
        for (label, answer) in json.quantiles {
            let exact = exactLowerQuantile(sorted, try #require(Double(label)))
            #expect(relativeError(try #require(answer), exact) <= 0.01 + 1e-12, "q \(label)")
        }
    }

    @Test("text output: count, min, max, then one line per quantile in the order given")
    func textOutput() throws {
        let (status, out, err) = run(["sketch", "quantiles", "--q", "0.999,0.5"], stdin: "3\n1\n2\n")
        #expect(status == .success)
        #expect(err == "")
        let rows = out.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        try #require(rows.count == 5 && rows.allSatisfy { $0.count == 2 }, "\(out.debugDescription)")
        #expect(rows.map { $0[0] } == ["count", "min", "max", "0.999", "0.5"])
        #expect(rows[0][1] == "3")
        #expect(Double(rows[1][1]) == 1)
        #expect(Double(rows[2][1]) == 3)
        let p999 = try #require(Double(rows[3][1]))
        let p50 = try #require(Double(rows[4][1]))
        #expect(relativeError(p999, 2) <= 0.01 + 1e-12)  // ⌊0.999·2⌋ = 1: the middle value
        #expect(relativeError(p50, 2) <= 0.01 + 1e-12)
    }

    @Test("CRLF line endings, spaces around numbers and a last line without newline read the same")
    func lineEndings() throws {
        let values = LatencyDistribution.lognormal(median: 3.4, sigma: 0.08).samples(500, seed: 11)
        let plain = run(["sketch", "quantiles", "--json"], stdin: lines(values))
        #expect(plain.0 == .success)
        let crlf = run(["sketch", "quantiles", "--json"], stdin: lines(values, terminator: "\r\n"))
        #expect(crlf.0 == .success)
        #expect(crlf.err == "")
        #expect(crlf.out == plain.out)
        let padded = values.map { " \t\($0) " }.joined(separator: "\n")
        let spaced = run(["sketch", "quantiles", "--json"], stdin: padded)
        #expect(spaced.0 == .success)
        #expect(spaced.out == plain.out)
        #expect(try QuantilesJSON(plain.out).count == 500)
    }

    @Test("empty input: count 0, and null min, max and quantiles")
    func emptyInput() throws {
        let (status, out, err) = run(["sketch", "quantiles", "--json", "--q", "0,0.5,1"], stdin: "")
        #expect(status == .success)
        #expect(err == "")
        let json = try QuantilesJSON(out)
        #expect(json.count == 0)
        #expect(json.min == nil)
        #expect(json.max == nil)
        #expect(Set(json.quantiles.keys) == ["0", "0.5", "1"])
        #expect(json.quantiles.values.allSatisfy { $0 == nil })

        let text = run(["sketch", "quantiles", "--q", "0.5"], stdin: "")
        #expect(text.0 == .success)
        #expect(text.out == "count\t0\nmin\t-\nmax\t-\n0.5\t-\n")
    }

    struct BadInput: Sendable, CustomTestStringConvertible {
        let name: String
        let stdin: String
        let line: Int
        let complaint: String
        var testDescription: String { name }
    }

    static let badInputs: [BadInput] = [
        BadInput(name: "abc", stdin: "1\n2\nabc\n4\n", line: 3, complaint: "is not a number"),
        BadInput(name: "nan", stdin: "nan\n", line: 1, complaint: "not a finite number"),
        BadInput(name: "inf", stdin: "1.5\ninf\n", line: 2, complaint: "not a finite number"),
        BadInput(
            name: "-infinity, last line", stdin: "1\n2\n3\n-infinity", line: 4, complaint: "not a finite"),
        BadInput(name: "1e999 overflows", stdin: "1\n1e999\n", line: 2, complaint: "not a finite number"),
        BadInput(name: "empty line", stdin: "1\n\n3\n", line: 2, complaint: "empty line"),
        BadInput(name: "blank line", stdin: "1\n2\n \t \n3\n", line: 3, complaint: "empty line"),
        BadInput(name: "CRLF, then x", stdin: "1\r\n2\r\nx\r\n", line: 3, complaint: "is not a number"),
        BadInput(name: "two numbers on a line", stdin: "1\n2 3\n", line: 2, complaint: "is not a number"),
        BadInput(
            name: "4000 digits overflow", stdin: "1\n" + String(repeating: "9", count: 4000) + "\n", line: 2,
            complaint: "is not a finite number"),
        BadInput(
            name: "5000 digits", stdin: "1\n" + String(repeating: "1", count: 5000) + "\n2\n", line: 2,
            complaint: "longer than 4096 bytes"),
        BadInput(
            name: "5000 digits, last line", stdin: "1\n2\n" + String(repeating: "7", count: 5000), line: 3,
            complaint: "longer than 4096 bytes"),
    ]

    @Test(
        "a bad line stops with exit 65 and names its line, whatever the read sizes",
        arguments: badInputs, [7, 1 << 20])
    func badLine(input: BadInput, chunkSize: Int) {
        let (status, out, err) = run(
            ["sketch", "quantiles", "--json"], stdin: input.stdin, chunkSize: chunkSize)
        #expect(status == .dataError)
        #expect(out == "", "nothing is printed for bad input")
        #expect(err.hasPrefix("faultline sketch quantiles: line \(input.line): "), "\(err.prefix(200))")
        #expect(err.contains(input.complaint), "\(err.prefix(200))")
        #expect(err.utf8.count < 1000, "the message quotes at most a bounded part of the line")
    }

    @Test(
        "a line of 4096 bytes is a number; 4097 bytes is too long (LF and CRLF)",
        arguments: ["\n", "\r\n"], [7, 1 << 20])
    func lineLengthLimit(terminator: String, chunkSize: Int) throws {
        let longest = String(repeating: "0", count: 4093) + "2.5"  // 4096 bytes, the number 2.5
        #expect(longest.utf8.count == 4096)
        let accepted = run(
            ["sketch", "quantiles", "--json", "--q", "0.5"], stdin: "2.5\(terminator)\(longest)\(terminator)",
            chunkSize: chunkSize)
        #expect(accepted.0 == .success, "\(accepted.err)")
        let json = try QuantilesJSON(accepted.out)
        #expect(json.count == 2)
        #expect(json.min == 2.5 && json.max == 2.5)

        let rejected = run(
            ["sketch", "quantiles", "--json"], stdin: "2.5\(terminator)0\(longest)\(terminator)",
            chunkSize: chunkSize)
        #expect(rejected.0 == .dataError)
        #expect(rejected.err.contains("line 2: longer than 4096 bytes"), "\(rejected.err.prefix(200))")
    }
}
