// Writing JSON by hand for command output: numbers and strings only, so that output is exact and
// byte-for-byte stable (no dictionary ordering, no locale). Strings are escaped by FleetModel's
// JSONValue, the one JSON writer of the project.

import FleetModel

/// A JSON number for a finite double (Swift's shortest round-trip form), or null.
func jsonNumber(_ value: Double?) -> String {
    guard let value, value.isFinite else { return "null" }
    return "\(value)"
}

/// A JSON string literal, escaped per RFC 8259.
func jsonString(_ text: String) -> String {
    JSONValue.string(text).jsonText
}
