// The report's JSON reader (JSONReader.swift, ReportJSON.swift) against Foundation's JSONDecoder,
// which read reports before it: a table of tricky inputs where the two must agree or differ only as
// ReportJSON.swift documents, every error naming its field, seeded mutations of valid reports, and
// the limits (nesting, huge numbers, invalid UTF-8, escapes).

import Foundation
import Testing

@testable import FleetModel

/// How reports were read before JSONReader: JSONDecoder into `WireReport`, then the same validation.
func readWithFoundation(_ bytes: [UInt8], topology: Topology? = nil) -> Result<Report, ReportError> {
    let wire: WireReport
    do {
        wire = try JSONDecoder().decode(WireReport.self, from: Data(bytes))
    } catch let error as DecodingError {
        return .failure(ReportError(decoding: error))
    } catch {
        return .failure(ReportError("", "not valid JSON"))
    }
    return Result { () throws(ReportError) in try Report(wire, topology: topology) }
}

/// The report path as it is.
func readWithReader(_ bytes: [UInt8], topology: Topology? = nil) -> Result<Report, ReportError> {
    Result { () throws(ReportError) in try Report(json: Data(bytes), topology: topology) }
}

/// What JSONDecoder said about any syntax error (and about numbers it would not convert).
let foundationSyntaxReason = "The given data was not valid JSON."

/// A valid report with every kind of field; rows of the table edit its text.
let sampleReport = """
    {"version": 1, "node": "gpu-a017", "windowStart": "2026-11-21T10:00:00Z", "windowSeconds": 10, \
    "agent": {"version": "0.3.0", "transport": "verbs-rc"}, "pairs": [\
    {"src": "gpu-a017/3", "dst": "gpu-a017/3", "sent": 100, "lost": 0, "rttMicros": "AAAA"}, \
    {"src": "gpu-a017/3", "dst": "gpu-b002/3", "sent": 20, "lost": 1, "errors": 2, "rttMicros": "BBBB", \
    "path": ["leaf-s1-r3", "spine-04", "leaf-s2-r3"]}], \
    "health": {"gpuTempC": [61, 64.5], "xid": null, "ok": true, "note": "fine"}}
    """

/// `sampleReport` with one edit (which must apply).
func sample(_ target: String, _ replacement: String) -> String {
    precondition(sampleReport.contains(target), "the sample has no \(target)")
    return sampleReport.replacingOccurrences(of: target, with: replacement)
}

/// How the two readers compare on one input.
enum Agreement: Sendable, CustomStringConvertible {
    /// The same report, or the same error (field and reason).
    case same
    /// Both refuse the syntax: JSONDecoder with no field, the reader saying where (and naming the
    /// field it was in, this one).
    case syntax(field: String)
    /// Both refuse; the reader names the field JSONDecoder did not, or says why more clearly.
    case clearer(field: String, reason: String)
    /// JSONDecoder accepted it; the reader refuses, as ReportJSON.swift documents.
    case stricter(field: String, reasonContains: String)
    /// JSONDecoder refused a whole number in range; the reader takes it.
    case looser

    var description: String {
        switch self {
        case .same: "same"
        case .syntax(let field): "syntax error in '\(field)'"
        case .clearer(let field, let reason): "clearer: \(field): \(reason)"
        case .stricter(let field, let reason): "stricter: \(field): …\(reason)…"
        case .looser: "looser"
        }
    }
}

struct AgreementRow: Sendable {
    let name: String
    let bytes: [UInt8]
    let expected: Agreement

    init(_ name: String, _ text: String, _ expected: Agreement = .same) {
        self.init(name, Array(text.utf8), expected)
    }

    init(_ name: String, _ bytes: [UInt8], _ expected: Agreement = .same) {
        self.name = name
        self.bytes = bytes
        self.expected = expected
    }
}

let agreementTable: [AgreementRow] = {
    let sent = "\"sent\": 20,"
    let lost = "\"lost\": 1,"
    func sentIs(_ text: String) -> String { sample(sent, "\"sent\": \(text),") }
    func lostIs(_ text: String) -> String { sample(lost, "\"lost\": \(text),") }
    let agentVersion = "\"version\": \"0.3.0\""
    func agentVersionBytes(_ middle: [UInt8]) -> [UInt8] {
        let parts = sampleReport.components(separatedBy: "0.3.0")
        return Array(parts[0].utf8) + middle + Array(parts[1].utf8)
    }
    let unknownBefore = "\"windowSeconds\": 10,"
    func unknownValue(_ text: String) -> String {
        sample(unknownBefore, "\"extra\": \(text), \"windowSeconds\": 10,")
    }
    func unknownValueBytes(_ value: [UInt8]) -> [UInt8] {
        let parts = sampleReport.components(separatedBy: unknownBefore)
        return Array((parts[0] + "\"extra\": ").utf8) + value + Array((", " + unknownBefore + parts[1]).utf8)
    }
    let deepUnknown = { (depth: Int) in
        unknownValue(String(repeating: "[", count: depth) + String(repeating: "]", count: depth))
    }
    let base = sampleReport
    return [
        AgreementRow("the sample", base),
        // Integers (Int fields): what JSONDecoder took, and what it refused.
        AgreementRow("20.0", sentIs("20.0")),
        AgreementRow("2e1", sentIs("2e1")),
        AgreementRow("2E+1", sentIs("2E+1")),
        AgreementRow("2.0e1", sentIs("2.0e1")),
        AgreementRow("200e-1", sentIs("200e-1")),
        AgreementRow("0.2e2", sentIs("0.2e2")),
        // Int.max in `errors`: `sent` (and so `lost`) stop at Report.maxProbesPerPair.
        AgreementRow("Int.max", sample("\"errors\": 2,", "\"errors\": 9223372036854775807,")),
        AgreementRow("Int.min (then negative)", sentIs("-9223372036854775808")),
        AgreementRow("-0", lostIs("-0")),
        AgreementRow("-0.0e5", lostIs("-0.0e5")),
        AgreementRow("0e999999", lostIs("0e999999")),
        AgreementRow(
            "20.5", sentIs("20.5"),
            .clearer(field: "pairs[1].sent", reason: "expected Int, found 20.5, not a whole number")),
        AgreementRow(
            "1e400", sentIs("1e400"),
            .clearer(field: "pairs[1].sent", reason: "expected Int, found 1e400, out of range")),
        AgreementRow(
            "1e19", sentIs("1e19"),
            .clearer(field: "pairs[1].sent", reason: "expected Int, found 1e19, out of range")),
        AgreementRow(
            "Int.max + 1", sentIs("9223372036854775808"),
            .clearer(field: "pairs[1].sent", reason: "expected Int, found 9223372036854775808, out of range")),
        AgreementRow(
            "Int.min - 1", sentIs("-9223372036854775809"),
            .clearer(field: "pairs[1].sent", reason: "expected Int, found -9223372036854775809, out of range")
        ),
        AgreementRow(
            "30 digits", sentIs("123456789012345678901234567890"),
            .clearer(
                field: "pairs[1].sent",
                reason: "expected Int, found 123456789012345678901234567890, out of range")),
        AgreementRow(
            "huge exponent", sentIs("1e99999999999999999999999"),
            .clearer(
                field: "pairs[1].sent", reason: "expected Int, found 1e99999999999999999999999, out of range")
        ),
        AgreementRow(
            "version 1.5 (first in order)", sample("\"version\": 1,", "\"version\": 1.5,"),
            .clearer(field: "version", reason: "expected Int, found 1.5, not a whole number")),
        AgreementRow(
            "rounds to 20 through a double", sentIs("19.999999999999999999"),
            .stricter(field: "pairs[1].sent", reasonContains: "not a whole number")),
        AgreementRow(
            "1e-400 rounds to 0", lostIs("1e-400"),
            .stricter(field: "pairs[1].lost", reasonContains: "not a whole number")),
        AgreementRow(
            "Int.max with an exponent", sample("\"errors\": 2,", "\"errors\": 92233720368547758070e-1,"), .looser),
        AgreementRow("leading zero", sentIs("020"), .syntax(field: "pairs[1].sent")),
        AgreementRow("no fraction digits", sentIs("20."), .syntax(field: "pairs[1].sent")),
        AgreementRow("no integer digits", sentIs(".5"), .syntax(field: "pairs[1].sent")),
        AgreementRow("plus sign", sentIs("+20"), .syntax(field: "pairs[1].sent")),
        AgreementRow("no exponent digits", sentIs("2e"), .syntax(field: "pairs[1].sent")),
        AgreementRow("minus alone", sentIs("-"), .syntax(field: "pairs[1].sent")),
        AgreementRow("NaN", sentIs("NaN"), .syntax(field: "pairs[1].sent")),
        AgreementRow("Infinity", sentIs("Infinity"), .syntax(field: "pairs[1].sent")),
        AgreementRow("hex", sentIs("0x14"), .syntax(field: "pairs[1]")),
        // Types and nulls.
        AgreementRow("Int as a string", sentIs("\"20\"")),
        AgreementRow("Int as a bool", sentIs("true")),
        AgreementRow("Int null", sentIs("null")),
        AgreementRow("Int as an array", sentIs("[20]")),
        AgreementRow("Int as an object", sentIs("{}")),
        AgreementRow("String as a number", sample("\"node\": \"gpu-a017\"", "\"node\": 17")),
        AgreementRow("String null", sample("\"node\": \"gpu-a017\"", "\"node\": null")),
        AgreementRow("errors null is absent", sample("\"errors\": 2", "\"errors\": null")),
        AgreementRow("errors as a string", sample("\"errors\": 2", "\"errors\": \"2\"")),
        AgreementRow(
            "rttMicros null (then missing)", sample("\"rttMicros\": \"AAAA\"", "\"rttMicros\": null")),
        AgreementRow(
            "rttMicros null with all lost",
            sample("\"lost\": 0, \"rttMicros\": \"AAAA\"", "\"lost\": 100, \"rttMicros\": null")),
        AgreementRow("rttMicros a number", sample("\"rttMicros\": \"AAAA\"", "\"rttMicros\": 5")),
        AgreementRow("path null", sample("[\"leaf-s1-r3\", \"spine-04\", \"leaf-s2-r3\"]", "null")),
        AgreementRow("path a string", sample("[\"leaf-s1-r3\", \"spine-04\", \"leaf-s2-r3\"]", "\"leaf\"")),
        AgreementRow("path element null", sample("\"spine-04\"", "null")),
        AgreementRow("path element a number", sample("\"spine-04\"", "4")),
        AgreementRow("path empty", sample("[\"leaf-s1-r3\", \"spine-04\", \"leaf-s2-r3\"]", "[]")),
        AgreementRow("agent null", sample("{\"version\": \"0.3.0\", \"transport\": \"verbs-rc\"}", "null")),
        AgreementRow("agent an array", sample("{\"version\": \"0.3.0\", \"transport\": \"verbs-rc\"}", "[]")),
        AgreementRow("agent empty", sample("{\"version\": \"0.3.0\", \"transport\": \"verbs-rc\"}", "{}")),
        AgreementRow("agent version a number", sample(agentVersion, "\"version\": 3")),
        AgreementRow("pairs null", sample("\"pairs\": [", "\"pairs\": null, \"x\": [")),
        AgreementRow("pairs an object", sample("\"pairs\": [", "\"pairs\": {}, \"x\": [")),
        AgreementRow("pairs empty", sample("\"pairs\": [", "\"pairs\": [], \"x\": [")),
        AgreementRow("a pair null", sample("\"pairs\": [", "\"pairs\": [null, ")),
        AgreementRow("a pair a number", sample("\"pairs\": [", "\"pairs\": [7, ")),
        AgreementRow("a pair empty", sample("\"pairs\": [", "\"pairs\": [{}, ")),
        AgreementRow("health null is absent", sample("\"health\": {", "\"health\": null, \"x\": {")),
        AgreementRow("health a number", sample("\"health\": {", "\"health\": 5, \"x\": {")),
        AgreementRow("health an array", sample("\"health\": {", "\"health\": [], \"x\": {")),
        AgreementRow(
            "health of every kind",
            sample(
                "\"note\": \"fine\"",
                "\"a\": {\"b\": [1, -0, 1.5e3, \"x\", false, null, {}, []]}, \"big\": 1e308")),
        AgreementRow(
            "health number beyond a double", sample("\"ok\": true", "\"ok\": 1e400"),
            .clearer(field: "health.ok", reason: "1e400 is beyond the range of a double")),
        AgreementRow(
            "health number that underflows", sample("\"ok\": true", "\"ok\": [1e-400]"),
            .clearer(field: "health.ok[0]", reason: "1e-400 is beyond the range of a double")),
        // Missing fields, in the order JSONDecoder looked for them.
        AgreementRow("not an object: array", "[]"),
        AgreementRow("not an object: null", "null"),
        AgreementRow("not an object: number", "5"),
        AgreementRow("not an object: string", "\"x\""),
        AgreementRow("empty object", "{}"),
        AgreementRow("missing node", sample("\"node\": \"gpu-a017\", ", "")),
        AgreementRow("missing agent.transport", sample(", \"transport\": \"verbs-rc\"", "")),
        AgreementRow("missing pairs[1].lost", sample(lost, "")),
        AgreementRow("missing pairs", sample("\"pairs\": [", "\"x\": [")),
        // Which error when several: JSONDecoder's order, not the document's.
        AgreementRow(
            "node wrong after pairs wrong",
            sample("\"node\": \"gpu-a017\"", "\"node\": 1").replacingOccurrences(
                of: sent, with: "\"sent\": \"x\",")),
        AgreementRow(
            "missing src before wrong sent",
            sample(
                "\"src\": \"gpu-a017/3\", \"dst\": \"gpu-b002/3\", \"sent\": 20",
                "\"dst\": \"gpu-b002/3\", \"sent\": \"x\"")),
        AgreementRow(
            "pairs[0] wrong before pairs[1] missing",
            sample("\"sent\": 100", "\"sent\": null").replacingOccurrences(
                of: "\"dst\": \"gpu-b002/3\", ", with: "")),
        AgreementRow(
            "version last in the document",
            sample("\"version\": 1, ", "").replacingOccurrences(
                of: "\"health\"", with: "\"version\": \"1\", \"health\""
            ).replacingOccurrences(of: sent, with: "\"sent\": null,")),
        AgreementRow("syntax error after a type error", sentIs("\"x\"") + "}", .syntax(field: "")),
        AgreementRow(
            "validation only after decoding",
            sample("\"version\": 1,", "\"version\": 2,").replacingOccurrences(
                of: sent, with: "\"sent\": null,")),
        // Validation (the same code after either reader).
        AgreementRow("version 2", sample("\"version\": 1,", "\"version\": 2,")),
        AgreementRow("bad node name", sample("\"node\": \"gpu-a017\"", "\"node\": \"gpu a017\"")),
        AgreementRow("misaligned window", sample(":00Z", ":03Z")),
        AgreementRow("unknown transport", sample("verbs-rc", "rdma")),
        AgreementRow("lost over sent", lostIs("21")),
        AgreementRow("negative sent", sentIs("-1")),
        AgreementRow("sent at the limit", sentIs("2147483647")),
        AgreementRow("sent over the limit", sentIs("2147483648")),
        AgreementRow(
            "src on another node",
            sample(
                "{\"src\": \"gpu-a017/3\", \"dst\": \"gpu-b002/3\"",
                "{\"src\": \"gpu-b002/3\", \"dst\": \"gpu-b002/3\"")),
        AgreementRow("pair given twice", sample("\"dst\": \"gpu-b002/3\"", "\"dst\": \"gpu-a017/3\"")),
        AgreementRow(
            "one dst from two rails",
            sample(
                "\"pairs\": [",
                "\"pairs\": [{\"src\": \"gpu-a017/4\", \"dst\": \"gpu-b002/3\", \"sent\": 1, \"lost\": 1}, ")),
        AgreementRow(
            "rails 0 and 63, then 63 again",
            sample(
                "\"pairs\": [",
                "\"pairs\": [{\"src\": \"gpu-a017/63\", \"dst\": \"gpu-a017/0\", \"sent\": 1, \"lost\": 1}, "
                    + "{\"src\": \"gpu-a017/0\", \"dst\": \"gpu-a017/0\", \"sent\": 1, \"lost\": 1}, "
                    + "{\"src\": \"gpu-a017/63\", \"dst\": \"gpu-a017/0\", \"sent\": 2, \"lost\": 2}, ")),
        AgreementRow("rail 64", sample("\"dst\": \"gpu-b002/3\"", "\"dst\": \"gpu-b002/64\"")),
        AgreementRow(
            "rail with a leading zero", sample("\"dst\": \"gpu-b002/3\"", "\"dst\": \"gpu-b002/03\"")),
        AgreementRow("bad switch name", sample("\"spine-04\"", "\"spine 04\"")),
        // Strings and escapes.
        AgreementRow(
            "every escape",
            sample(agentVersion, #""version": "q\" b\\ s\/ \b\f\n\r\t \u00e9 \u00E9 \ud83d\ude00 \u0000""#)),
        AgreementRow("escaped node name", sample("\"node\": \"gpu-a017\"", #""node": "gpu-a\u003017""#)),
        AgreementRow("escaped key", sample("\"node\":", #""n\u006fde":"#)),
        AgreementRow("raw UTF-8 and DEL", sample(agentVersion, "\"version\": \"é 😀 \u{7F}\"")),
        AgreementRow(
            "lone high surrogate", sample(agentVersion, #""version": "\ud800""#),
            .syntax(field: "agent.version")),
        AgreementRow(
            "lone low surrogate", sample(agentVersion, #""version": "\udc00\ud800""#),
            .syntax(field: "agent.version")),
        AgreementRow(
            "high surrogate then text", sample(agentVersion, #""version": "\ud800x""#),
            .syntax(field: "agent.version")),
        AgreementRow(
            "invalid escape", sample(agentVersion, #""version": "\x""#), .syntax(field: "agent.version")),
        AgreementRow(
            "short \\u", sample(agentVersion, #""version": "\u12""#), .syntax(field: "agent.version")),
        AgreementRow(
            "raw tab", sample(agentVersion, "\"version\": \"a\tb\""), .syntax(field: "agent.version")),
        AgreementRow(
            "raw newline", sample(agentVersion, "\"version\": \"a\nb\""), .syntax(field: "agent.version")),
        AgreementRow("invalid UTF-8 byte", agentVersionBytes([0xFF]), .syntax(field: "agent.version")),
        AgreementRow("overlong '/'", agentVersionBytes([0xC0, 0xAF]), .syntax(field: "agent.version")),
        AgreementRow(
            "encoded surrogate", agentVersionBytes([0xED, 0xA0, 0x80]), .syntax(field: "agent.version")),
        AgreementRow(
            "above U+10FFFF", agentVersionBytes([0xF4, 0x90, 0x80, 0x80]), .syntax(field: "agent.version")),
        AgreementRow("truncated sequence", agentVersionBytes([0xE2, 0x82]), .syntax(field: "agent.version")),
        AgreementRow("unterminated key", Array(sampleReport.utf8.prefix(40)), .syntax(field: "")),
        AgreementRow(
            "unterminated string", Array(sampleReport.utf8.prefix(58)), .syntax(field: "windowStart")),
        // Structure.
        AgreementRow("empty input", "", .syntax(field: "")),
        AgreementRow("only whitespace", " \n\t", .syntax(field: "")),
        AgreementRow("open brace", "{", .syntax(field: "")),
        AgreementRow("truncated", String(sampleReport.dropLast()), .syntax(field: "")),
        AgreementRow("text after the value", base + " x", .syntax(field: "")),
        AgreementRow("two values", base + "{}", .syntax(field: "")),
        AgreementRow("NUL after the value", base + "\u{0}", .syntax(field: "")),
        AgreementRow("comment", sample("\"version\": 1,", "\"version\": 1, /* c */"), .syntax(field: "")),
        AgreementRow("missing comma", sample("\"version\": 1,", "\"version\": 1"), .syntax(field: "")),
        AgreementRow("missing colon", sample("\"version\": 1,", "\"version\" 1,"), .syntax(field: "")),
        AgreementRow("single quotes", sample("\"version\": 1,", "'version': 1,"), .syntax(field: "")),
        AgreementRow("leading comma", sample("\"pairs\": [", "\"pairs\": [,"), .syntax(field: "pairs[0]")),
        AgreementRow(
            "missing comma between pairs", sample("}, {\"src\"", "} {\"src\""), .syntax(field: "pairs")),
        AgreementRow("double comma", sample("\"version\": 1,", "\"version\": 1,,"), .syntax(field: "")),
        AgreementRow(
            "whitespace everywhere",
            sampleReport.replacingOccurrences(of: ", ", with: " ,\r\n\t ").replacingOccurrences(
                of: ": ", with: " :  ")),
        AgreementRow(
            "no whitespace",
            sampleReport.replacingOccurrences(of: ", \"", with: ",\"").replacingOccurrences(
                of: "\": ", with: "\":")),
        AgreementRow("trailing newline", base + "\r\n"),
        AgreementRow("byte order mark", [0xEF, 0xBB, 0xBF] + Array(base.utf8)),
        AgreementRow(
            "unknown keys of every kind",
            unknownValue("{\"a\": [1, {\"b\": null}], \"c\": \"\\u00e9\", \"d\": -1.5e-3, \"e\": true}")),
        AgreementRow("unknown key in a pair", sample(sent, "\"future\": {\"x\": [1, 2]}, \(sent)")),
        AgreementRow("unknown key in agent", sample(agentVersion, "\"os\": \"linux\", \(agentVersion)")),
        AgreementRow("nesting at the limit", deepUnknown(JSONReader.maxDepth - 1)),
        AgreementRow("nesting over the limit", deepUnknown(JSONReader.maxDepth), .syntax(field: "")),
        AgreementRow("nesting far over the limit", deepUnknown(100_000), .syntax(field: "")),
        // Where the reader is stricter, as documented.
        AgreementRow(
            "trailing comma in an object",
            sample(", \"transport\": \"verbs-rc\"}", ", \"transport\": \"verbs-rc\",}"),
            .stricter(field: "agent", reasonContains: "trailing comma")),
        AgreementRow(
            "trailing comma in pairs", sample("]}], ", "]},], "),
            .stricter(field: "pairs", reasonContains: "trailing comma")),
        AgreementRow(
            "trailing comma in an unknown value", unknownValue("[1,]"),
            .stricter(field: "", reasonContains: "trailing comma")),
        AgreementRow(
            "sent given twice", sample(sent, "\(sent) \"sent\": 21,"),
            .stricter(field: "pairs[1].sent", reasonContains: "given twice")),
        AgreementRow(
            "node given twice",
            sample("\"node\": \"gpu-a017\",", "\"node\": \"gpu-a017\", \"node\": \"gpu-b002\","),
            .stricter(field: "node", reasonContains: "given twice")),
        AgreementRow(
            "escaped key given twice",
            sample("\"node\": \"gpu-a017\",", #""node": "gpu-a017", "n\u006fde": "gpu-a017","#),
            .stricter(field: "node", reasonContains: "given twice")),
        AgreementRow(
            "health key given twice", sample("\"ok\": true", "\"ok\": true, \"ok\": false"),
            .stricter(field: "health.ok", reasonContains: "given twice")),
        AgreementRow(
            "nested health key given twice",
            sample("\"ok\": true", "\"ok\": {\"a\": [{\"b\": 1, \"b\": 2}]}"),
            .stricter(field: "health.ok.a[0].b", reasonContains: "given twice")),
        AgreementRow(
            "unknown key given twice", unknownValue("1, \"extra\": 2"),
            .stricter(field: "extra", reasonContains: "given twice")),
        AgreementRow(
            "unknown pair key given twice", sample(sent, "\"x\": 1, \"x\": 1, \(sent)"),
            .stricter(field: "pairs[1].x", reasonContains: "given twice")),
        AgreementRow(
            "invalid UTF-8 in an unknown value", unknownValueBytes([0x22, 0xFF, 0x22]),
            .stricter(field: "", reasonContains: "UTF-8")),
        AgreementRow(
            "lone surrogate in an unknown value", unknownValue(#""\udead""#),
            .stricter(field: "", reasonContains: "surrogate")),
        AgreementRow(
            "UTF-16", [0xFF, 0xFE] + base.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] },
            .stricter(field: "", reasonContains: "not valid JSON")),
    ]
}()

/// Differences ReportJSON.swift documents: where the reader refuses what JSONDecoder took, or says
/// why in other words.
func isDocumentedDifference(_ error: ReportError) -> Bool {
    [
        "trailing comma", "given twice", "UTF-8", "surrogate", "not a whole number",
        "beyond the range of a double",
    ]
    .contains { error.reason.contains($0) }
}

/// True when `error` is a syntax error and Foundation's JSONSerialization, which checks every string
/// and number, also finds `bytes` not to be JSON.
func isInvalidJSON(_ bytes: [UInt8], _ error: ReportError) -> Bool {
    error.reason.hasPrefix("not valid JSON at ")
        && (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) == nil
}

@Suite("Report JSON: the hand-written reader against Foundation's JSONDecoder")
struct ReportJSONAgreementTests {
    @Test("a table of tricky inputs: both agree, or differ only as documented")
    func table() {
        for row in agreementTable {
            let old = readWithFoundation(row.bytes)
            let new = readWithReader(row.bytes)
            let context = Comment(
                rawValue: "\(row.name) (\(row.expected)): JSONDecoder \(old), reader \(new)")
            switch row.expected {
            case .same:
                #expect(old == new, context)
            case .syntax(let field):
                #expect(old == .failure(ReportError("", foundationSyntaxReason)), context)
                guard case .failure(let error) = new else {
                    Issue.record(context)
                    continue
                }
                #expect(error.field == field, context)
                #expect(error.reason.hasPrefix("not valid JSON at "), context)
            case .clearer(let field, let reason):
                guard case .failure = old else {
                    Issue.record(context)
                    continue
                }
                #expect(new == .failure(ReportError(field, reason)), context)
            case .stricter(let field, let fragment):
                guard case .success = old, case .failure(let error) = new else {
                    Issue.record(context)
                    continue
                }
                #expect(error.field == field, context)
                #expect(error.reason.contains(fragment), context)
                #expect(isDocumentedDifference(error) || error.reason.hasPrefix("not valid JSON"), context)
            case .looser:
                guard case .failure = old, case .success = new else {
                    Issue.record(context)
                    continue
                }
            }
        }
    }

    @Test("sent is at most Report.maxProbesPerPair: the engine keeps sent and lost in 32 bits")
    func sentLimit() throws {
        let atLimit = try readWithReader(Array(sample("\"sent\": 20,", "\"sent\": 2147483647,").utf8)).get()
        #expect(atLimit.pairs[1].sent == Int(Int32.max))
        let over = readWithReader(Array(sample("\"sent\": 20,", "\"sent\": 2147483648,").utf8))
        #expect(over == .failure(ReportError("pairs[1].sent", "2147483648 is over the limit of 2147483647")))
    }

    @Test("the table covers successes and each kind of error")
    func tableIsBroad() {
        let outcomes = agreementTable.map { readWithReader($0.bytes) }
        let successes = outcomes.filter { if case .success = $0 { true } else { false } }.count
        let reasons = Set(
            outcomes.compactMap { if case .failure(let error) = $0 { error.reason } else { nil } })
        #expect(successes >= 25)
        for reason in [
            "missing", "expected Int", "expected String", "expected Int, found null",
            "expected String, found null", "expected Array<Any>", "expected Array<Any>, found null",
            "expected Dictionary<String, Any>", "expected Dictionary<String, Any>, found null",
        ] {
            #expect(reasons.contains(reason), "\(reason)")
        }
    }

    @Test("seeded mutations of valid reports: never a trap; JSONDecoder's result, or a documented difference")
    func mutations() {
        var generator = SplitMix64(seed: 8259)
        let bases = [
            sampleReport,
            sample(
                "\"0.3.0\"", #""0.3.0 \"é\" \u00e9 \ud83d\ude00 😀 \/""#
            ).replacingOccurrences(
                of: "\"windowSeconds\": 10,", with: "\"windowSeconds\": 1e1, \"x\": [{}, []],"),
        ]
        let alphabet = Array("{}[]\":,0123456789-+.eE truefalsnl\\u/ZTé".utf8) + [0xFF, 0x80, 0x00, 0x09]
        var counts = (same: 0, documented: 0)
        for iteration in 0..<3_000 {
            var bytes = Array(bases[iteration % bases.count].utf8)
            for _ in 0..<(1 + generator.below(4)) where !bytes.isEmpty {
                let position = generator.below(bytes.count)
                switch generator.below(5) {
                case 0: bytes[position] = alphabet[generator.below(alphabet.count)]
                case 1: bytes.remove(at: position)
                case 2: bytes.insert(alphabet[generator.below(alphabet.count)], at: position)
                case 3:
                    let end = min(bytes.count, position + 1 + generator.below(24))
                    bytes.insert(contentsOf: bytes[position..<end], at: end)
                default: bytes = Array(bytes[..<position])
                }
            }
            let old = readWithFoundation(bytes)
            let new = readWithReader(bytes)
            let context = Comment(
                rawValue: "\(String(decoding: bytes, as: UTF8.self)): JSONDecoder \(old), reader \(new)")
            switch (old, new) {
            case (.success(let before), .success(let after)):
                #expect(before == after, context)
                counts.same += 1
            case (.failure, .success):
                Issue.record("the reader took what JSONDecoder refused: \(context)")
            case (.success, .failure(let error)):
                // JSONDecoder never looked inside unknown keys' values; the reader checks all of it.
                #expect(isDocumentedDifference(error) || isInvalidJSON(bytes, error), context)
                counts.documented += 1
            case (.failure(let before), .failure(let after)):
                if before.reason == foundationSyntaxReason {
                    #expect(
                        after.reason.hasPrefix("not valid JSON at ") || after.reason.contains("out of range")
                            || isDocumentedDifference(after), context)
                    counts.same += 1
                } else if isDocumentedDifference(after) || isInvalidJSON(bytes, after) {
                    // A malformed string or number comes first for the reader, when JSONDecoder
                    // decoded it.
                    counts.documented += 1
                } else {
                    #expect(before == after, context)
                    counts.same += 1
                }
            }
        }
        #expect(counts.same > 2_000)
    }

    @Test("every field's wrong type, null and absence name the field, as JSONDecoder named it")
    func everyFieldNamed() {
        let fields: [(path: String, text: String, wrong: String, required: Bool)] = [
            ("version", "\"version\": 1", "\"v\"", true),
            ("node", "\"node\": \"gpu-a017\"", "1", true),
            ("windowStart", "\"windowStart\": \"2026-11-21T10:00:00Z\"", "2026", true),
            ("windowSeconds", "\"windowSeconds\": 10", "\"10\"", true),
            ("agent", "\"agent\": {\"version\": \"0.3.0\", \"transport\": \"verbs-rc\"}", "[]", true),
            ("agent.version", "\"version\": \"0.3.0\"", "[]", true),
            ("agent.transport", "\"transport\": \"verbs-rc\"", "{}", true),
            (
                "pairs[1].src", "\"src\": \"gpu-a017/3\", \"dst\": \"gpu-b002/3\"",
                "7, \"dst\": \"gpu-b002/3\"", true
            ),
            ("pairs[1].dst", "\"dst\": \"gpu-b002/3\"", "false", true),
            ("pairs[1].sent", "\"sent\": 20", "\"20\"", true),
            ("pairs[1].lost", "\"lost\": 1", "[1]", true),
            ("pairs[1].errors", "\"errors\": 2", "\"2\"", false),
            ("pairs[1].rttMicros", "\"rttMicros\": \"BBBB\"", "{}", false),
            ("pairs[1].path", "\"path\": [\"leaf-s1-r3\", \"spine-04\", \"leaf-s2-r3\"]", "\"leaf\"", false),
            (
                "health",
                "\"health\": {\"gpuTempC\": [61, 64.5], \"xid\": null, \"ok\": true, \"note\": \"fine\"}",
                "7", false
            ),
        ]
        for field in fields {
            let key = field.text.split(separator: ":", maxSplits: 1)[0]
            let wrongType = sample(field.text, "\(key): \(field.wrong)")
            let null = sample(
                field.text, "\(key): null" + (field.path == "pairs[1].src" ? ", \"dst\": \"gpu-b002/3\"" : "")
            )
            for text in [wrongType, null] {
                let error = readWithReader(Array(text.utf8))
                let nullIsAbsent = text == null && !field.required
                if nullIsAbsent, field.path != "pairs[1].rttMicros" {
                    #expect(throws: Never.self, "\(field.path) null") { try error.get() }
                    continue
                }
                guard case .failure(let failure) = error else {
                    Issue.record("\(field.path): \(text) was taken")
                    continue
                }
                #expect(failure.field == field.path, "\(text): \(failure)")
                #expect(readWithFoundation(Array(text.utf8)) == error, "\(text)")
            }
            guard field.required else { continue }
            let leaf = field.path.split(separator: ".").last.map(String.init) ?? field.path
            let removed = sampleReport.replacingOccurrences(
                of: field.path == "pairs[1].src"
                    ? "{\"src\": \"gpu-a017/3\", \"dst\": \"gpu-b002/3\"," : field.text,
                with: field.path == "pairs[1].src" ? "{\"dst\": \"gpu-b002/3\"," : "\"x\(leaf)\": 0")
            let missing = readWithReader(Array(removed.utf8))
            #expect(missing == .failure(ReportError(field.path, "missing")), "\(removed)")
            #expect(readWithFoundation(Array(removed.utf8)) == missing)
        }
        // A path element, and validation's fields.
        let element = readWithReader(Array(sample("\"spine-04\"", "4").utf8))
        #expect(element == .failure(ReportError("pairs[1].path[1]", "expected String")))
        let validation: [(String, String, String)] = [
            ("\"version\": 1,", "\"version\": 3,", "version"),
            ("\"node\": \"gpu-a017\"", "\"node\": \"-x\"", "node"),
            ("10:00:00Z", "10:00:01Z", "windowStart"),
            ("\"windowSeconds\": 10", "\"windowSeconds\": 0", "windowSeconds"),
            ("verbs-rc", "tcp", "agent.transport"),
            (
                "\"src\": \"gpu-a017/3\", \"dst\": \"gpu-b002/3\"",
                "\"src\": \"gpu-a017/x\", \"dst\": \"gpu-b002/3\"", "pairs[1].src"
            ),
            ("\"dst\": \"gpu-b002/3\"", "\"dst\": \"gpu-b002\"", "pairs[1].dst"),
            ("\"sent\": 20", "\"sent\": -20", "pairs[1].sent"),
            ("\"lost\": 1", "\"lost\": 30", "pairs[1].lost"),
            ("\"errors\": 2", "\"errors\": -2", "pairs[1].errors"),
            ("\"rttMicros\": \"BBBB\", ", "", "pairs[1].rttMicros"),
            ("\"spine-04\"", "\"spine_04!\"", "pairs[1].path[1]"),
            ("\"dst\": \"gpu-b002/3\"", "\"dst\": \"gpu-a017/3\"", "pairs[1]"),
        ]
        for (target, replacement, path) in validation {
            let result = readWithReader(Array(sample(target, replacement).utf8))
            guard case .failure(let error) = result else {
                Issue.record("\(replacement) was taken")
                continue
            }
            #expect(error.field == path, "\(replacement): \(error)")
        }
    }

    @Test("NDJSON: lines read from one buffer, blank ones skipped, errors naming line and field")
    func lines() throws {
        let first = sampleReport
        let second = sample("10:00:00Z", "10:00:10Z")
        let text = "\n" + first + "\r\n \t\n" + second + "\n"
        let reports = try Report.parseLines(Data(text.utf8), name: "r.ndjson")
        #expect(reports.count == 2)
        #expect(reports[1].windowStart.description == "2026-11-21T10:00:10Z")
        #expect(try Report.parseLines(Data(), name: "empty").isEmpty)
        let bad = first + "\n\n" + sample("\"sent\": 20", "\"sent\": 2.5")
        #expect(
            throws: ReportError(
                "pairs[1].sent", "expected Int, found 2.5, not a whole number", location: "r:3")
        ) {
            try Report.parseLines(Data(bad.utf8), name: "r")
        }
        do {
            _ = try Report.parseLines(Data((first + "\n{\"version\": 1,\n").utf8), name: "r")
            Issue.record("a truncated line was taken")
        } catch {
            #expect(error.location == "r:2")
            #expect(error.reason.hasPrefix("not valid JSON at byte 14: "), "\(error)")
        }
    }
}

@Suite("JSONReader: RFC 8259, strictly")
struct JSONReaderTests {
    /// Reads one whole value from `bytes` as a JSONValue.
    func value(_ bytes: [UInt8]) -> Result<JSONValue, JSONSyntaxError> {
        bytes.withUnsafeBytes { raw in
            Result { () throws(JSONSyntaxError) in
                var reader = JSONReader(raw)
                let (value, _) = try reader.readValue()
                try reader.finish()
                return value
            }
        }
    }

    func value(_ text: String) -> Result<JSONValue, JSONSyntaxError> { value(Array(text.utf8)) }

    func skips(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var reader = JSONReader(raw)
            do {
                try reader.skipValue()
                try reader.finish()
                return true
            } catch {
                return false
            }
        }
    }

    @Test("escapes: all of them, surrogate pairs, upper and lower case hex")
    func escapes() {
        #expect(
            value(#""\" \\ \/ \b \f \n \r \t \u0041\u00e9\u00E9\u20AC \ud83d\ude00 \uD83D\uDE00 \u0000""#)
                == .success(.string("\" \\ / \u{8} \u{C} \n \r \t Aéé€ 😀 😀 \u{0}")))
        #expect(value(#"{"k\u0065y": 1}"#) == .success(.object(["key": .number(1)])))
        for bad in [
            #""\x""#, #""\u12""#, #""\u12G4""#, #""\ud800""#, #""\udc00""#, #""\ud800\u0041""#,
            #""\ud800\n""#,
            #""\"#, #""\u"#, #""abc"#, "\"a\u{1}b\"", "\"a\u{1F}\"",
        ] {
            #expect(throws: JSONSyntaxError.self, "\(bad)") { try value(bad).get() }
        }
    }

    @Test("long strings: an escape, a control character or a non-ASCII byte is found at every position")
    func longStrings() {
        for position in 0..<40 {
            let before = String(repeating: "a", count: position)
            let after = String(repeating: "b", count: 40 - position)
            for (escape, decoded) in [
                ("\\\"", "\""), ("\\\\", "\\"), ("\\n", "\n"), ("\\u00e9", "é"), ("é", "é"), ("😀", "😀"),
            ] {
                #expect(
                    value("\"\(before)\(escape)\(after)\"") == .success(.string(before + decoded + after)))
            }
            for bad: [UInt8] in [[0x01], [0x1F], [0x0A], [0xFF], [0xC3], [0xED, 0xA0, 0x80]] {
                let bytes = [0x22] + Array(before.utf8) + bad + Array(after.utf8) + [0x22]
                #expect(value(bytes).failureOffset == position + 1, "\(bad) at \(position)")
            }
            #expect(value("\"\(before)").failureOffset == position + 1)  // unterminated
            #expect(value("\"\(before)\"\(after)").failureOffset == position + 2)  // text after the string
        }
    }

    @Test("UTF-8: valid sequences of every length pass; invalid ones are errors at their byte")
    func utf8() {
        #expect(value("\"aé€😀\u{10FFFF}\u{7F}\"") == .success(.string("aé€😀\u{10FFFF}\u{7F}")))
        let invalid: [[UInt8]] = [
            [0x80], [0xBF], [0xC0, 0x80], [0xC1, 0xBF], [0xC2], [0xC2, 0x41], [0xE0, 0x80, 0x80],
            [0xE0, 0x9F, 0xBF],
            [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xEF, 0xBF], [0xF0, 0x80, 0x80, 0x80],
            [0xF0, 0x8F, 0xBF, 0xBF],
            [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xF8], [0xFE], [0xFF],
        ]
        for sequence in invalid {
            let bytes = [0x22, 0x61] + sequence + [0x22]
            #expect(value(bytes).failureOffset == 2, "\(sequence)")
            #expect(!skips(bytes))
        }
        #expect(value([0x5B, 0xFF, 0x5D]).failureOffset == 1)  // outside a string too
    }

    @Test("numbers: the grammar exactly; integers exactly; doubles correctly rounded, however long")
    func numbers() {
        for good in [
            "0", "-0", "1", "-1", "0.5", "1e5", "1E+5", "1e-5", "-1.25e-3", "123456789012345678901234567890",
        ] {
            #expect(skips(Array(good.utf8)), "\(good)")
        }
        for bad in [
            "01", "-01", "1.", ".5", "+1", "1e", "1e+", "-", "--1", "1.e5", "0x10", "NaN", "Infinity",
            "1_000",
        ] {
            #expect(!skips(Array(bad.utf8)), "\(bad)")
        }
        func integer(_ text: String) -> JSONIntegerReading? {
            Array(text.utf8).withUnsafeBytes { raw in
                var reader = JSONReader(raw)
                guard let number = try? reader.readNumber(), reader.offset == raw.count else { return nil }
                return reader.integer(number)
            }
        }
        let oneMillionZeros = String(repeating: "0", count: 1_000_000)
        let integers: [(String, JSONIntegerReading)] = [
            ("0", .value(0)), ("-0", .value(0)), ("5.0", .value(5)), ("5e0", .value(5)), ("0.5e1", .value(5)),
            ("100e-2", .value(1)), ("0.000", .value(0)), ("0e-999", .value(0)), ("1.5", .notWhole),
            ("1e-1", .notWhole),
            ("9223372036854775807", .value(Int.max)), ("-9223372036854775808", .value(Int.min)),
            ("9223372036854775808", .outOfRange), ("-9223372036854775809", .outOfRange),
            ("12345678901234567890", .outOfRange), ("1e19", .outOfRange),
            ("9.223372036854775807e18", .value(Int.max)),
            ("1" + oneMillionZeros + "e-1000000", .value(1)),
            ("0." + oneMillionZeros + "1e1000001", .value(1)),
            ("1e99999999999999999999999999", .outOfRange), ("1e-99999999999999999999999999", .notWhole),
        ]
        for (text, expected) in integers {
            #expect(integer(text) == expected, "\(text.prefix(40))")
        }
        func double(_ text: String) -> Double? {
            guard case .success(.number(let value)) = value(text) else { return nil }
            return value
        }
        #expect(double("1e308") == 1e308)
        #expect(double("1.7976931348623157e308") == .greatestFiniteMagnitude)
        #expect(double("4.9e-324") == .leastNonzeroMagnitude)
        #expect(double("-0")?.sign == .minus)
        #expect(double("0." + oneMillionZeros + "1e1000001") == 1)
        #expect(double("9007199254740993") == 9_007_199_254_740_992)  // a tie: to even
        #expect(
            double("9007199254740993." + String(repeating: "0", count: 900) + "1") == 9_007_199_254_740_994)
        for beyond in ["1e309", "-1e309", "1e-400", "1" + oneMillionZeros, "1e99999999999999999999"] {
            let bytes = Array("{\"a\": [\(beyond)]}".utf8)
            let problem = bytes.withUnsafeBytes { raw in
                var reader = JSONReader(raw)
                return (try? reader.readValue())?.1
            }
            #expect(problem?.path == ".a[0]", "\(beyond.prefix(40))")
            #expect(problem?.reason.contains("beyond the range of a double") == true)
        }
    }

    @Test("nesting: at the limit it reads, one over it is an error, far over it neither traps nor recurses")
    func nesting() {
        let limit = JSONReader.maxDepth
        func nested(_ depth: Int) -> String {
            String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        }
        func nestedObjects(_ depth: Int) -> String {
            String(repeating: "{\"a\":", count: depth) + "1" + String(repeating: "}", count: depth)
        }
        #expect(skips(Array(nested(limit).utf8)))
        #expect(skips(Array(nestedObjects(limit).utf8)))
        #expect(!skips(Array(nested(limit + 1).utf8)))
        #expect(!skips(Array(nestedObjects(limit + 1).utf8)))
        if case .success = value(nested(limit)) {} else { Issue.record("\(limit) arrays deep") }
        if case .success = value(nestedObjects(limit)) {} else { Issue.record("\(limit) objects deep") }
        #expect(value(nested(limit + 1)).failureOffset == limit)
        #expect(!skips(Array(String(repeating: "[", count: 1_000_000).utf8)))
        #expect(!skips(Array(String(repeating: "{\"a\":", count: 1_000_000).utf8)))
        #expect(value(String(repeating: "[{\"a\":", count: 500_000)).failureOffset != nil)
    }

    @Test("values: read as JSONValue, keys given twice found, errors with their offset, line and column")
    func values() {
        #expect(
            value(" {\"a\": [1, {\"b\": null}, [], {}], \"c\": \"x\", \"d\": true, \"e\": false} ")
                == .success(
                    .object([
                        "a": .array([.number(1), .object(["b": .null]), .array([]), .object([:])]),
                        "c": .string("x"),
                        "d": .bool(true), "e": .bool(false),
                    ])))
        for bad in [
            "", " ", "{", "[", "[1,]", "{\"a\":1,}", "{,}", "[,1]", "{\"a\" 1}", "{\"a\":}", "{1:2}", "tru",
            "nul",
            "[1 2]", "{\"a\":1 \"b\":2}", "1 2", "[]]", "{}}", "'a'", "/* */ 1",
        ] {
            #expect(value(bad).failureOffset != nil, "\(bad)")
            #expect(!skips(Array(bad.utf8)), "\(bad)")
        }
        let text = "{\n  \"a\": [1,\n   tru]\n}"
        guard case .failure(let error) = value(text) else {
            Issue.record("taken")
            return
        }
        let reason = Array(text.utf8).withUnsafeBytes { error.reason(in: $0) }
        #expect(reason == "not valid JSON at line 3, column 4 (byte 16): expected true")
        let duplicate = Array("{\"a\": {\"b\": [0, {\"c\": 1, \"c\": 2}]}}".utf8).withUnsafeBytes { raw in
            var reader = JSONReader(raw)
            return (try? reader.readValue())?.1
        }
        #expect(duplicate == JSONValueProblem(path: ".a.b[1].c", reason: "given twice"))
    }

    @Test(
        "seeded random token strings: never a trap; skip and read agree, with each other and with JSONSerialization"
    )
    func randomInput() {
        var generator = SplitMix64(seed: 1)
        // Tokens, valid and not, so that a fair share of the inputs are JSON.
        let tokens: [[UInt8]] =
            [
                "{", "}", "[", "]", ",", ":", " ", "\"a\"", "\"\\u00e9\\n\"", "\"\\ud83d\\ude00\"", "1",
                "-0.5e3", "0", "true",
                "null", "false", "\"\\ud800\"", "\"\\x\"", "01", "1.", "tru", "\"", "\\", "e", "-", "\"a\":",
            ].map { Array($0.utf8) }
            + [[0xC3, 0xA9], [0xFF], [0x0A], [0x22, 0xE2, 0x82, 0x22], [0x22, 0x01, 0x22]]
        var valid = 0
        for _ in 0..<20_000 {
            let bytes = (0..<generator.below(10)).flatMap { _ in tokens[generator.below(tokens.count)] }
            let skipped = skips(bytes)
            let read: Bool = if case .success = value(bytes) { true } else { false }
            #expect(skipped == read, "\(bytes)")
            if skipped { valid += 1 }
            // JSONSerialization as a second opinion (it guesses UTF-16 and UTF-32 from NUL bytes,
            // and takes trailing commas).
            guard !bytes.contains(0), !hasTrailingComma(bytes) else { continue }
            let foundation =
                (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
            #expect(skipped == foundation, "\(String(decoding: bytes, as: UTF8.self).debugDescription)")
        }
        #expect(valid > 500)
    }

    /// A comma, whitespace, then a closing bracket.
    func hasTrailingComma(_ bytes: [UInt8]) -> Bool {
        var afterComma = false
        for byte in bytes {
            if byte == UInt8(ascii: ",") {
                afterComma = true
            } else if afterComma, byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}") {
                return true
            } else if ![0x20, 0x0A, 0x0D, 0x09].contains(byte) {
                afterComma = false
            }
        }
        return false
    }
}

@Suite("EndpointID parsed byte by byte, as it was by characters")
struct EndpointIDParsingTests {
    /// The parser before it read bytes.
    func characterParse(_ text: String) -> EndpointID? {
        guard let slash = text.lastIndex(of: "/"), let node = NodeName(text[..<slash]) else { return nil }
        let railText = text[text.index(after: slash)...]
        guard !railText.isEmpty, railText.count <= 2, railText.allSatisfy({ $0.isASCII && $0.isNumber }),
            railText.count == 1 || railText.first != "0", let rail = Int(railText)
        else { return nil }
        return EndpointID(node: node, rail: rail)
    }

    @Test("tricky ids and seeded random ones agree")
    func agree() {
        let tricky = [
            "a/0", "a/9", "a/10", "a/63", "a/64", "a/00", "a/07", "a/", "/0", "a", "a/b/1", "a//1", "a/1/",
            "a/+1",
            "a/-0", "a/1 ", " a/1", "a/١", "a/1\u{301}", "a/\u{301}1", "a\u{301}/1", "é/1", "a/1\r\n",
            "a/\r\n",
            "a.b_c-d/5", "-a/5", String(repeating: "a", count: 63) + "/1",
            String(repeating: "a", count: 64) + "/1",
            "a/100", "a/6 3", "a/６",
        ]
        for text in tricky {
            #expect(EndpointID(text) == characterParse(text), "\(text)")
            #expect(EndpointID(Substring(text)) == characterParse(text), "\(text)")
        }
        var generator = SplitMix64(seed: 64)
        let alphabet: [Character] = [
            "a", "Z", "0", "1", "6", "3", "/", "-", ".", "_", " ", "é", "\u{301}", "١",
        ]
        for _ in 0..<20_000 {
            let text = String(
                (0..<(1 + generator.below(8))).map { _ in alphabet[generator.below(alphabet.count)] })
            #expect(EndpointID(text) == characterParse(text), "\(text)")
        }
    }
}

extension Result where Failure == JSONSyntaxError {
    var failureOffset: Int? {
        if case .failure(let error) = self { return error.offset }
        return nil
    }
}
