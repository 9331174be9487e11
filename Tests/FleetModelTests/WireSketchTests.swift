// A report's sketch leaves its base64 when the report is read: strict base64 becomes bytes and
// gives back the very text it came as; anything else stays the text that came.

import Foundation
import Testing

@testable import FleetModel

struct WireSketchTests {
    @Test func strictBase64BecomesBytesAndEncodesBackToTheSameText() {
        for bytes in [[], [0], [0, 1], [0xFF, 0xFE, 0xFD], Array(0...255)] as [[UInt8]] {
            let text = Data(bytes).base64EncodedString()
            let sketch = WireSketch(base64: text)
            #expect(sketch == .bytes(bytes))
            #expect(sketch.base64 == text)
            #expect(sketch.decodedBytes == bytes)
        }
    }

    @Test func otherTextIsKeptAsItCame() {
        // Unpadded, non-zero unused bits (lenient decoders take both), whitespace, not base64.
        for text in ["AAA", "AAB=", "AA AA", "not base64!"] {
            let sketch = WireSketch(base64: text)
            #expect(sketch == .text(text))
            #expect(sketch.base64 == text)
            #expect(sketch.decodedBytes == Data(base64Encoded: text).map(Array.init))
        }
        #expect(WireSketch(base64: "AAB=").decodedBytes == [0, 0])  // Foundation's reading
    }

    @Test func reportsReadFromJSONWriteTheirSketchesBackVerbatim() throws {
        let line = """
            {"version": 1, "node": "gpu-a017", "windowStart": "2026-11-21T10:00:00Z", "windowSeconds": 10, \
            "agent": {"version": "0.1.0", "transport": "udp"}, "pairs": [\
            {"src": "gpu-a017/0", "dst": "gpu-a017/0", "sent": 4, "lost": 0, "rttMicros": "AAEC"}, \
            {"src": "gpu-a017/0", "dst": "gpu-a017/1", "sent": 4, "lost": 0, "rttMicros": "AAB="}]}
            """
        let report = try Report(json: Data(line.utf8))
        #expect(report.pairs.map(\.rttMicros) == [.bytes([0, 1, 2]), .text("AAB=")])
        #expect(report.jsonLine == line)
    }

    @Test func aSketchWithEscapesOrAQuoteLaterReadsAsItsUnescapedText() throws {
        // JSON writers may escape `/` (Foundation's JSONEncoder does): the same bytes as without.
        let bytes: [UInt8] = [0xFF, 0xF0, 0x3F, 0xFB, 0xEF, 0xFE]  // "//A/+//+"
        let text = Data(bytes).base64EncodedString()
        #expect(text.contains("/"))
        func report(sketch: String, errors: String = "") -> String {
            """
            {"version": 1, "node": "gpu-a017", "windowStart": "2026-11-21T10:00:00Z", "windowSeconds": 10, \
            "agent": {"version": "0.1.0", "transport": "udp"}, "pairs": [\
            {"src": "gpu-a017/0", "dst": "gpu-a017/0", "sent": 4, "lost": 0, "rttMicros": \(sketch)\(errors)}]}
            """
        }
        let escaped = "\"" + text.replacingOccurrences(of: "/", with: "\\/") + "\""
        #expect(try Report(json: Data(report(sketch: escaped).utf8)).pairs[0].rttMicros == .bytes(bytes))
        // Text that is not base64 up to the next quote is read as any string, escapes undone.
        let notBase64 = #""AA\u0041A""#
        #expect(try Report(json: Data(report(sketch: notBase64).utf8)).pairs[0].rttMicros == .bytes([0, 0, 0]))
        // An unterminated sketch string is a syntax error, not a sketch read up to a later quote.
        #expect(throws: ReportError.self) {
            try Report(json: Data(report(sketch: "\"AAAA", errors: ", \"x\": \"y\"").utf8))
        }
    }
}
