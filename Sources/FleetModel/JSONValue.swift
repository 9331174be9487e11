// Any JSON value, for the parts of the wire format that are free-form (a report's `health`, a
// finding's `evidence`): decoded as it came and written back with sorted keys, so output is stable.

public enum JSONValue: Sendable, Equatable, Decodable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// Compact JSON with object keys sorted; integral numbers without a fraction.
    public var jsonText: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .number(let value):
            guard value.isFinite else { return "null" }
            if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
            return "\(value)"
        case .string(let value): return jsonQuote(value)
        case .array(let values): return "[\(values.map(\.jsonText).joined(separator: ", "))]"
        case .object(let entries):
            return
                "{\(entries.keys.sorted().map { "\(jsonQuote($0)): \(entries[$0]!.jsonText)" }.joined(separator: ", "))}"
        }
    }
}
