// A pair's RTT sketch as a report carries it (wire-v1.md §3, `rttMicros`: base64 of the sketch's
// protobuf bytes), taken out of its base64 once, when the report is read: the store and the engine
// both want the bytes, and a window of a large fleet has millions of sketches.

import Foundation
import QuantileSketch

public enum WireSketch: Sendable, Hashable {
    /// The bytes of strict base64 text (what agents send). Strict base64 is canonical: encoding
    /// the bytes gives back the very text that came.
    case bytes([UInt8])
    /// Text that is not strict base64, kept as it came: the engine judges it (a sketch that does
    /// not decode invalidates its pair only).
    case text(String)

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
        }
    }

    /// The length of the sketch's text in a report, without making the text.
    public var base64Length: Int {
        switch self {
        case .bytes(let bytes): (bytes.count + 2) / 3 * 4
        case .text(let text): text.utf8.count
        }
    }

    /// The sketch as text for a report, exactly as it came.
    public var base64: String {
        switch self {
        case .bytes(let bytes): Data(bytes).base64EncodedString()
        case .text(let text): text
        }
    }
}
