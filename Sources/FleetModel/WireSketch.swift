// A pair's RTT sketch as a report carries it (wire-v1.md §3, `rttMicros`: base64 of the sketch's
// protobuf bytes), taken out of its base64 once, when the report is read: the store and the engine
// both want the bytes, and a window of a large fleet has millions of sketches. Reports read back
// from the event log for a replay may keep the log's compact form instead, expanded as it is read.

import Foundation
import QuantileSketch

public enum WireSketch: Sendable {
    /// The bytes of strict base64 text (what agents send). Strict base64 is canonical: encoding
    /// the bytes gives back the very text that came.
    case bytes([UInt8])
    /// Text that is not strict base64, kept as it came: the engine judges it (a sketch that does
    /// not decode invalidates its pair only).
    case text(String)
    /// Protobuf bytes in the event log's compact form (`SketchCompaction`: counts as varints), a
    /// slice of the stored row that every pair of the report shares. It is checked only when read
    /// (the engine counts one that does not expand as an invalid sketch); it stands for the bytes
    /// it expands to, and equals `.bytes` of them.
    case compact(ArraySlice<UInt8>)

    /// The sketch as a report's text carries it.
    public init(base64 text: String) {
        var text = text
        self = text.withUTF8 { WireSketch(base64: $0) }
    }

    /// The sketch as a report's text carries it, from the text's UTF-8 bytes.
    public init(base64 utf8: UnsafeBufferPointer<UInt8>) {
        self = StrictBase64.decode(utf8).map(WireSketch.bytes) ?? .text(String(decoding: utf8, as: UTF8.self))
    }

    /// The sketch's bytes: those of strict base64, or what Foundation's lenient decoder makes of
    /// other text; nil when the text is not base64 at all.
    public var decodedBytes: [UInt8]? {
        switch self {
        case .bytes(let bytes): bytes
        case .text(let text): Data(base64Encoded: text).map(Array.init)
        case .compact(let compact): try? SketchCompaction.expand(Array(compact))
        }
    }

    /// The length of the sketch's text in a report, without making the text.
    public var base64Length: Int {
        switch self {
        case .bytes(let bytes): (bytes.count + 2) / 3 * 4
        case .text(let text): text.utf8.count
        case .compact: decodedBytes.map { ($0.count + 2) / 3 * 4 } ?? 0
        }
    }

    /// The sketch as text for a report, exactly as it came; empty for a compact form that does not
    /// expand (a damaged row: the report's validation then refuses the pair).
    public var base64: String {
        switch self {
        case .bytes(let bytes): Data(bytes).base64EncodedString()
        case .text(let text): text
        case .compact: decodedBytes.map { Data($0).base64EncodedString() } ?? ""
        }
    }

    /// Calls `body` with the sketch's protobuf bytes: in place, or expanded into `scratch` (kept by
    /// the caller from one sketch to the next); nil, without calling it, when there are none (text
    /// that is not base64, a compact form that does not expand).
    public func withProtobufBytes<Result>(
        scratch: inout [UInt8], _ body: (UnsafeBufferPointer<UInt8>) throws -> Result
    ) rethrows -> Result? {
        switch self {
        case .bytes(let bytes): return try bytes.withUnsafeBufferPointer(body)
        case .compact(let compact):
            let length = compact.withUnsafeBufferPointer { buffer in
                try? SketchCompaction.expand(buffer, into: &scratch)
            }
            guard let length else { return nil }
            return try scratch.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[..<length])) }
        case .text: return try decodedBytes?.withUnsafeBufferPointer(body)
        }
    }

}

extension WireSketch: Hashable {
    /// A compact form equals the bytes it expands to (and another compact form of them); `.text`
    /// equals only the same text, as it came.
    public static func == (lhs: WireSketch, rhs: WireSketch) -> Bool {
        switch (lhs, rhs) {
        case (.text(let a), .text(let b)): a == b
        case (.text, _), (_, .text): false
        case (.bytes(let a), .bytes(let b)): a == b
        case (.compact(let a), .compact(let b)) where a == b: true
        default: lhs.decodedBytes.map { $0 == rhs.decodedBytes } ?? false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .text(let text): hasher.combine(text)
        case .bytes, .compact: hasher.combine(decodedBytes)
        }
    }
}
