// A strict RFC 8259 JSON reader over UTF-8 bytes, pulled value by value: the report reader
// (ReportJSON.swift) takes the fields it knows straight from the request body and skips the rest, so
// no tree is built except for the free-form parts (`JSONValue`). Strict: the grammar exactly (no
// trailing commas, comments, NaN, leading zeros or raw control characters in strings), UTF-8 only and
// valid (no overlong forms, no surrogates, nothing above U+10FFFF), `\u` escapes with surrogates in
// pairs. It never traps, takes time linear in the input, and does not recurse: nesting is bounded by
// `maxDepth` and skipped or built values keep their own stack.

import Foundation

/// Why bytes are not JSON, and where: the byte offset from the start of the input.
struct JSONSyntaxError: Error, Equatable {
    var offset: Int
    var message: String

    /// "not valid JSON at byte 17: …", with line and column when the input has several lines.
    func reason(in bytes: UnsafeRawBufferPointer) -> String {
        var line = 1
        var lineStart = 0
        for index in 0..<min(offset, bytes.count) where bytes[index] == UInt8(ascii: "\n") {
            line += 1
            lineStart = index + 1
        }
        let place =
            line > 1 ? "line \(line), column \(offset - lineStart + 1) (byte \(offset))" : "byte \(offset)"
        return "not valid JSON at \(place): \(message)"
    }
}

/// The kind of the next value, from its first byte.
enum JSONValueKind: Equatable {
    case object, array, string, number, `true`, `false`, null
}

/// An object key as it stands in the input: its bytes between the quotes (escapes undone only when
/// asked for, so comparing a plain key with a known name costs no allocation).
struct JSONKey {
    let start: Int
    let end: Int
    let hasEscapes: Bool
}

/// A number as it stands in the input, its grammar checked; its value is read on demand (exactly as
/// an integer, or as the nearest double).
struct JSONNumber {
    let start: Int
    let end: Int
    let isNegative: Bool
    /// The digits before the point, and after it (empty when there is no fraction).
    let integerDigits: Range<Int>
    let fractionDigits: Range<Int>
    /// The exponent's value, saturated far beyond any input's length (so it cannot overflow).
    let exponent: Int
}

/// What reading a number as an integer gave.
enum JSONIntegerReading: Equatable {
    case value(Int)
    /// The exact value has a fraction (`5.5`, `1e-400`).
    case notWhole
    /// A whole number outside Int's range (`1e400`, `9223372036854775808`).
    case outOfRange
}

/// Something in a free-form value that is JSON but has no `JSONValue`: a number beyond a double's
/// range, or a key given twice. `path` is relative to the value (`.a[2]`).
struct JSONValueProblem: Equatable {
    var path: String
    var reason: String
}

/// Reads JSON from bytes it does not own: use it only inside the `withUnsafeBytes` call that lent them.
struct JSONReader {
    /// Objects and arrays open at once, the outermost counted (what Foundation's JSONDecoder allows).
    static let maxDepth = 512

    let bytes: UnsafeRawBufferPointer
    private(set) var offset: Int
    /// Containers opened and not yet closed.
    private(set) var depth = 0

    /// A UTF-8 byte order mark at the start is skipped (RFC 8259 §8.1 lets a reader ignore it).
    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        let hasByteOrderMark = bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF
        offset = hasByteOrderMark ? 3 : 0
    }

    // MARK: Structure

    /// The kind of the next value, after whitespace; an error at the end of the input or on a byte
    /// that cannot start a value.
    mutating func peek() throws(JSONSyntaxError) -> JSONValueKind {
        skipWhitespace()
        guard offset < bytes.count else { throw error("unexpected end of input, expected a value") }
        switch bytes[offset] {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        case UInt8(ascii: "t"): return .true
        case UInt8(ascii: "f"): return .false
        case UInt8(ascii: "n"): return .null
        case let byte: throw error("\(quoted(byte)) where a value should start")
        }
    }

    /// Consumes `{` (the caller has seen it with `peek`). Read the members with `nextKey`.
    mutating func beginObject() throws(JSONSyntaxError) {
        try open(UInt8(ascii: "{"))
    }

    /// Consumes `[` (the caller has seen it with `peek`). Read the elements with `nextElement`.
    mutating func beginArray() throws(JSONSyntaxError) {
        try open(UInt8(ascii: "["))
    }

    /// The next member's key, with the `:` after it consumed (its value comes next); nil when the
    /// object ends (its `}` consumed). `isFirst` starts true for each object.
    mutating func nextKey(isFirst: inout Bool) throws(JSONSyntaxError) -> JSONKey? {
        skipWhitespace()
        guard offset < bytes.count else { throw error("unexpected end of input in an object") }
        if bytes[offset] == UInt8(ascii: "}") {
            offset += 1
            depth -= 1
            return nil
        }
        if !isFirst {
            guard bytes[offset] == UInt8(ascii: ",") else {
                throw error("expected ',' or '}' after an object member, found \(quoted(bytes[offset]))")
            }
            offset += 1
            skipWhitespace()
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "}") {
                throw error("trailing comma before '}'")
            }
        }
        isFirst = false
        guard offset < bytes.count else { throw error("unexpected end of input, expected a key") }
        guard bytes[offset] == UInt8(ascii: "\"") else {
            throw error("expected a string key, found \(quoted(bytes[offset]))")
        }
        let scanned = try scanString()
        skipWhitespace()
        guard offset < bytes.count, bytes[offset] == UInt8(ascii: ":") else {
            throw error(
                offset < bytes.count ? "expected ':' after a key" : "unexpected end of input, expected ':'")
        }
        offset += 1
        return JSONKey(start: scanned.start, end: scanned.end, hasEscapes: scanned.hasEscapes)
    }

    /// True when another element follows (its value comes next); false when the array ends (its
    /// `]` consumed). `isFirst` starts true for each array.
    mutating func nextElement(isFirst: inout Bool) throws(JSONSyntaxError) -> Bool {
        skipWhitespace()
        guard offset < bytes.count else { throw error("unexpected end of input in an array") }
        if bytes[offset] == UInt8(ascii: "]") {
            offset += 1
            depth -= 1
            return false
        }
        if !isFirst {
            guard bytes[offset] == UInt8(ascii: ",") else {
                throw error("expected ',' or ']' after an array element, found \(quoted(bytes[offset]))")
            }
            offset += 1
            skipWhitespace()
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "]") {
                throw error("trailing comma before ']'")
            }
        }
        isFirst = false
        return true
    }

    /// After the one top-level value: only whitespace may follow.
    mutating func finish() throws(JSONSyntaxError) {
        skipWhitespace()
        if offset < bytes.count { throw error("\(quoted(bytes[offset])) after the end of the value") }
    }

    /// True when `key` is exactly `name` (after undoing escapes, if it has any).
    func key(_ key: JSONKey, is name: StaticString) -> Bool {
        if key.hasEscapes { return keyString(key) == name.description }
        let length = key.end - key.start
        guard length == name.utf8CodeUnitCount else { return false }
        let expected = name.utf8Start
        for index in 0..<length where bytes[key.start + index] != expected[index] { return false }
        return true
    }

    /// The key as text.
    func keyString(_ key: JSONKey) -> String {
        makeString(start: key.start, end: key.end, hasEscapes: key.hasEscapes)
    }

    // MARK: Scalars

    /// A string value, escapes undone.
    mutating func readString() throws(JSONSyntaxError) -> String {
        let scanned = try scanString()
        return makeString(start: scanned.start, end: scanned.end, hasEscapes: scanned.hasEscapes)
    }

    /// A string value, escapes undone, handed to `body` as UTF-8: the input's own bytes when it has
    /// no escapes, so a value read into something other than a String is never made a String.
    mutating func readString<T>(utf8 body: (UnsafeBufferPointer<UInt8>) -> T) throws(JSONSyntaxError) -> T {
        let scanned = try scanString()
        guard scanned.hasEscapes else {
            return UnsafeRawBufferPointer(rebasing: bytes[scanned.start..<scanned.end])
                .withMemoryRebound(to: UInt8.self, body)
        }
        var string = makeString(start: scanned.start, end: scanned.end, hasEscapes: true)
        return string.withUTF8(body)
    }

    /// A string value (the next value must be one) whose bytes up to the next quote `accept` takes,
    /// read without scanning them; nil, with nothing read, when `accept` refuses them. `accept` must
    /// refuse every backslash and control character (base64 does): what it takes is then the whole
    /// string, escapes and all.
    mutating func readString<T>(ifAccepted accept: (UnsafeBufferPointer<UInt8>) -> T?) -> T? {
        let start = offset + 1
        guard start < bytes.count,
            let quote = memchr(bytes.baseAddress! + start, Int32(UInt8(ascii: "\"")), bytes.count - start)
        else { return nil }
        let end = start + (UnsafeRawPointer(quote) - (bytes.baseAddress! + start))
        guard let value = UnsafeRawBufferPointer(rebasing: bytes[start..<end]).withMemoryRebound(
            to: UInt8.self, accept)
        else { return nil }
        offset = end + 1
        return value
    }

    /// A number token, its grammar checked: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    mutating func readNumber() throws(JSONSyntaxError) -> JSONNumber {
        let start = offset
        let isNegative = offset < bytes.count && bytes[offset] == UInt8(ascii: "-")
        if isNegative { offset += 1 }
        let integerStart = offset
        guard offset < bytes.count, isDigit(bytes[offset]) else {
            throw error("expected a digit in a number")
        }
        if bytes[offset] == UInt8(ascii: "0") {
            offset += 1
            if offset < bytes.count, isDigit(bytes[offset]) {
                throw error("a number may not have a leading zero")
            }
        } else {
            skipDigits()
        }
        let integerDigits = integerStart..<offset
        var fractionDigits = offset..<offset
        if offset < bytes.count, bytes[offset] == UInt8(ascii: ".") {
            offset += 1
            let fractionStart = offset
            guard offset < bytes.count, isDigit(bytes[offset]) else {
                throw error("expected a digit after the decimal point")
            }
            skipDigits()
            fractionDigits = fractionStart..<offset
        }
        var exponent = 0
        if offset < bytes.count, bytes[offset] == UInt8(ascii: "e") || bytes[offset] == UInt8(ascii: "E") {
            offset += 1
            var exponentIsNegative = false
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "+") || bytes[offset] == UInt8(ascii: "-")
            {
                exponentIsNegative = bytes[offset] == UInt8(ascii: "-")
                offset += 1
            }
            guard offset < bytes.count, isDigit(bytes[offset]) else {
                throw error("expected a digit in the exponent")
            }
            while offset < bytes.count, isDigit(bytes[offset]) {
                exponent = min(exponent * 10 + Int(bytes[offset] - UInt8(ascii: "0")), Self.exponentLimit)
                offset += 1
            }
            if exponentIsNegative { exponent = -exponent }
        }
        return JSONNumber(
            start: start, end: offset, isNegative: isNegative, integerDigits: integerDigits,
            fractionDigits: fractionDigits, exponent: exponent)
    }

    /// Larger than any input's length, so saturating here cannot change whether a number is whole or
    /// in range.
    private static let exponentLimit = 1 << 50

    /// Consumes `true`, `false` or `null` (whichever `peek` saw).
    mutating func readLiteral() throws(JSONSyntaxError) {
        let literal: StaticString
        switch offset < bytes.count ? bytes[offset] : 0 {
        case UInt8(ascii: "t"): literal = "true"
        case UInt8(ascii: "f"): literal = "false"
        default: literal = "null"
        }
        let length = literal.utf8CodeUnitCount
        guard bytes.count - offset >= length else { throw error("expected \(literal)") }
        for index in 0..<length where bytes[offset + index] != literal.utf8Start[index] {
            throw error("expected \(literal)")
        }
        offset += length
    }

    /// The number's exact value as an Int: `5`, `5.0`, `5e0`, `-0`, `0.5e1` are whole; a fraction or a
    /// value beyond Int is not. No rounding through a double.
    func integer(_ number: JSONNumber) -> JSONIntegerReading {
        // The digits as one sequence (integer part, then fraction), with the exponent applied to the
        // last one: value = significand × 10^scale.
        let digitCount = number.integerDigits.count + number.fractionDigits.count
        func digit(_ position: Int) -> UInt8 {
            let index =
                position < number.integerDigits.count
                ? number.integerDigits.lowerBound + position
                : number.fractionDigits.lowerBound + position - number.integerDigits.count
            return bytes[index] &- UInt8(ascii: "0")
        }
        guard let firstNonZero = (0..<digitCount).first(where: { digit($0) != 0 }) else { return .value(0) }
        var lastNonZero = digitCount - 1
        while digit(lastNonZero) == 0 { lastNonZero -= 1 }
        let trailingZeros = digitCount - 1 - lastNonZero
        let scale = number.exponent - number.fractionDigits.count + trailingZeros
        if scale < 0 { return .notWhole }
        guard lastNonZero - firstNonZero + 1 + scale <= 19 else { return .outOfRange }
        var magnitude: UInt64 = 0
        for position in firstNonZero...lastNonZero {
            magnitude = magnitude * 10 + UInt64(digit(position))  // at most 19 digits: no overflow
        }
        for _ in 0..<scale {
            let (product, overflow) = magnitude.multipliedReportingOverflow(by: 10)
            if overflow { return .outOfRange }
            magnitude = product
        }
        if number.isNegative {
            guard magnitude <= UInt64(Int.max) + 1 else { return .outOfRange }
            return .value(magnitude == UInt64(Int.max) + 1 ? Int.min : -Int(magnitude))
        }
        guard magnitude <= UInt64(Int.max) else { return .outOfRange }
        return .value(Int(magnitude))
    }

    /// The nearest double; nil when the number is beyond a double's range (it would become infinity,
    /// or zero although a digit is not zero), as Foundation's JSONDecoder refuses it. Digits past the
    /// 800th significant one are folded into one sticky digit first, which keeps the rounding exact
    /// (a double never needs more than 768) and the time linear however long the number is.
    func double(_ number: JSONNumber) -> Double? {
        let integerCount = number.integerDigits.count
        let digitCount = integerCount + number.fractionDigits.count
        func digit(_ position: Int) -> UInt8 {
            position < integerCount
                ? bytes[number.integerDigits.lowerBound + position]
                : bytes[number.fractionDigits.lowerBound + position - integerCount]
        }
        guard let firstNonZero = (0..<digitCount).first(where: { digit($0) != UInt8(ascii: "0") }) else {
            return number.isNegative ? -0.0 : 0.0
        }
        let significantCount = digitCount - firstNonZero
        let keptCount = min(significantCount, 800)
        var text = number.isNegative ? "-" : ""
        text.reserveCapacity(keptCount + 12)
        for position in firstNonZero..<(firstNonZero + keptCount) {
            text.unicodeScalars.append(Unicode.Scalar(digit(position)))
        }
        var scale = number.exponent - number.fractionDigits.count + (significantCount - keptCount)
        if ((firstNonZero + keptCount)..<digitCount).contains(where: { digit($0) != UInt8(ascii: "0") }) {
            text += "1"
            scale -= 1
        }
        text += "e\(min(max(scale, -100_000), 100_000))"
        guard let value = Double(text), value.isFinite, value != 0 else { return nil }
        return value
    }

    /// The number as written, for messages (long ones shortened).
    func text(of number: JSONNumber, limit: Int = .max) -> String {
        let end = number.end - number.start > limit ? number.start + limit : number.end
        let text = String(
            decoding: UnsafeRawBufferPointer(rebasing: bytes[number.start..<end]), as: UTF8.self)
        return end < number.end ? text + "… (\(number.end - number.start) characters)" : text
    }

    // MARK: Whole values

    /// Skips one value of any kind, checking its syntax.
    mutating func skipValue() throws(JSONSyntaxError) {
        var openContainers: [Bool] = []  // for each container opened here and not closed: is it an object?
        readingValues: while true {
            var isFirst = true
            switch try peek() {
            case .object:
                try beginObject()
                if try nextKey(isFirst: &isFirst) != nil {
                    openContainers.append(true)
                    continue readingValues
                }
            case .array:
                try beginArray()
                if try nextElement(isFirst: &isFirst) {
                    openContainers.append(false)
                    continue readingValues
                }
            case .string: _ = try scanString()
            case .number: _ = try readNumber()
            case .true, .false, .null: try readLiteral()
            }
            // A value is complete: move to the next one, closing the containers that end here.
            while let isObject = openContainers.last {
                isFirst = false
                let another =
                    isObject ? try nextKey(isFirst: &isFirst) != nil : try nextElement(isFirst: &isFirst)
                if another { continue readingValues }
                openContainers.removeLast()
            }
            return
        }
    }

    /// One value of any kind as a `JSONValue`, and the first problem in it, if any (a number beyond a
    /// double's range becomes `.null`; a key given twice keeps its first value).
    mutating func readValue() throws(JSONSyntaxError) -> (JSONValue, JSONValueProblem?) {
        enum Frame {
            case array([JSONValue])
            case object([String: JSONValue], key: String)
        }
        var stack: [Frame] = []  // the containers opened here and not closed, innermost last
        var problem: JSONValueProblem?
        func path(_ stack: [Frame], last: String = "") -> String {
            var text = ""
            for frame in stack {
                switch frame {
                case .array(let elements): text += "[\(elements.count)]"
                case .object(_, let key): text += ".\(key)"
                }
            }
            return text + last
        }
        readingValues: while true {
            var value: JSONValue
            var isFirst = true
            switch try peek() {
            case .object:
                try beginObject()
                if let key = try nextKey(isFirst: &isFirst) {
                    stack.append(.object([:], key: keyString(key)))
                    continue readingValues
                }
                value = .object([:])
            case .array:
                try beginArray()
                if try nextElement(isFirst: &isFirst) {
                    stack.append(.array([]))
                    continue readingValues
                }
                value = .array([])
            case .string: value = .string(try readString())
            case .number:
                let number = try readNumber()
                if let double = double(number) {
                    value = .number(double)
                } else {
                    value = .null
                    if problem == nil {
                        problem = JSONValueProblem(
                            path: path(stack),
                            reason: "\(text(of: number, limit: 40)) is beyond the range of a double")
                    }
                }
            case .true:
                try readLiteral()
                value = .bool(true)
            case .false:
                try readLiteral()
                value = .bool(false)
            case .null:
                try readLiteral()
                value = .null
            }
            // A value is complete: put it in its container and move to the next value, closing the
            // containers that end here (each becomes the value completed in the one around it).
            while let frame = stack.popLast() {
                isFirst = false
                switch frame {
                case .array(var elements):
                    elements.append(value)
                    if try nextElement(isFirst: &isFirst) {
                        stack.append(.array(elements))
                        continue readingValues
                    }
                    value = .array(elements)
                case .object(var members, let key):
                    if members[key] == nil {
                        members[key] = value
                    } else if problem == nil {
                        problem = JSONValueProblem(path: path(stack, last: ".\(key)"), reason: "given twice")
                    }
                    if let next = try nextKey(isFirst: &isFirst) {
                        stack.append(.object(members, key: keyString(next)))
                        continue readingValues
                    }
                    value = .object(members)
                }
            }
            return (value, problem)
        }
    }

    // MARK: Bytes

    mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x0A, 0x0D, 0x09: offset += 1
            default: return
            }
        }
    }

    private mutating func open(_ bracket: UInt8) throws(JSONSyntaxError) {
        guard offset < bytes.count, bytes[offset] == bracket else {
            throw error("expected '\(Character(Unicode.Scalar(bracket)))'")
        }
        guard depth < Self.maxDepth else { throw error("nested deeper than \(Self.maxDepth) levels") }
        depth += 1
        offset += 1
    }

    private mutating func skipDigits() {
        while offset < bytes.count, isDigit(bytes[offset]) { offset += 1 }
    }

    /// Checks a string from its opening quote to its closing one, which it consumes: escapes, UTF-8,
    /// no raw control characters. Returns the bytes between the quotes.
    private mutating func scanString() throws(JSONSyntaxError) -> (start: Int, end: Int, hasEscapes: Bool) {
        guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else {
            throw error("expected a string")
        }
        offset += 1
        let start = offset
        var hasEscapes = false
        while offset < bytes.count {
            // Eight bytes at a time while none needs a look (sketches are long base64 runs).
            while bytes.count - offset >= 8,
                !mayNeedALook(bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            {
                offset += 8
            }
            guard offset < bytes.count else { break }
            let byte = bytes[offset]
            switch byte {
            case UInt8(ascii: "\""):
                let end = offset
                offset += 1
                return (start, end, hasEscapes)
            case UInt8(ascii: "\\"):
                hasEscapes = true
                try scanEscape()
            case 0x00..<0x20:
                throw error("control character \(quoted(byte)) in a string (escape it)")
            case 0x20..<0x80:
                offset += 1
            default:
                try scanMultiByteCharacter()
            }
        }
        throw error("unexpected end of input in a string")
    }

    /// One escape, from its backslash.
    private mutating func scanEscape() throws(JSONSyntaxError) {
        let escapeStart = offset
        guard offset + 1 < bytes.count else { throw error("unexpected end of input in an escape") }
        switch bytes[offset + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
            UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            offset += 2
        case UInt8(ascii: "u"):
            guard let unit = hexUnit(at: offset + 2) else {
                throw error("\\u must be followed by 4 hex digits")
            }
            offset += 6
            switch unit {
            case 0xD800...0xDBFF:
                guard offset + 1 < bytes.count, bytes[offset] == UInt8(ascii: "\\"),
                    bytes[offset + 1] == UInt8(ascii: "u"), let low = hexUnit(at: offset + 2),
                    (0xDC00...0xDFFF).contains(low)
                else {
                    throw JSONSyntaxError(
                        offset: escapeStart, message: "unpaired surrogate \\u\(hex(unit)) in a string")
                }
                offset += 6
            case 0xDC00...0xDFFF:
                throw JSONSyntaxError(
                    offset: escapeStart, message: "unpaired surrogate \\u\(hex(unit)) in a string")
            default: break
            }
        case let byte:
            offset += 1
            throw error("invalid escape: \\ followed by \(quoted(byte))")
        }
    }

    /// One UTF-8 sequence of 2 to 4 bytes, checked strictly (RFC 3629: no overlong forms, no
    /// surrogates, nothing above U+10FFFF).
    private mutating func scanMultiByteCharacter() throws(JSONSyntaxError) {
        let lead = bytes[offset]
        let length: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            secondRange = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            secondRange = 0x80...0x9F
        case 0xF0:
            length = 4
            secondRange = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            secondRange = 0x80...0x8F
        default: throw error("invalid UTF-8 (byte 0x\(hex(UInt16(lead), digits: 2)))")
        }
        guard bytes.count - offset >= length, secondRange.contains(bytes[offset + 1]) else {
            throw error(
                "invalid UTF-8 (byte 0x\(hex(UInt16(lead), digits: 2)) not followed by a valid sequence)")
        }
        for index in 2..<length where !(0x80...0xBF).contains(bytes[offset + index]) {
            throw error(
                "invalid UTF-8 (byte 0x\(hex(UInt16(lead), digits: 2)) not followed by a valid sequence)")
        }
        offset += length
    }

    /// The text of a string already checked by `scanString`.
    private func makeString(start: Int, end: Int, hasEscapes: Bool) -> String {
        let content = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        guard hasEscapes else { return String(decoding: content, as: UTF8.self) }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(content.count)
        var index = content.startIndex
        while index < content.endIndex {
            let byte = content[index]
            guard byte == UInt8(ascii: "\\"), index + 1 < content.endIndex else {
                decoded.append(byte)
                index += 1
                continue
            }
            let escaped = content[index + 1]
            index += 2
            switch escaped {
            case UInt8(ascii: "b"): decoded.append(0x08)
            case UInt8(ascii: "f"): decoded.append(0x0C)
            case UInt8(ascii: "n"): decoded.append(0x0A)
            case UInt8(ascii: "r"): decoded.append(0x0D)
            case UInt8(ascii: "t"): decoded.append(0x09)
            case UInt8(ascii: "u"):
                // scanString has checked the digits and that surrogates come in pairs.
                var scalarValue = UInt32(hexUnit(at: start + index) ?? 0xFFFD)
                index += 4
                if (0xD800...0xDBFF).contains(scalarValue), let low = hexUnit(at: start + index + 2),
                    (0xDC00...0xDFFF).contains(low)
                {
                    scalarValue = 0x10000 + ((scalarValue - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                    index += 6
                }
                appendUTF8(of: Unicode.Scalar(scalarValue) ?? "\u{FFFD}", to: &decoded)
            default: decoded.append(escaped)  // " \ /
            }
        }
        return String(decoding: decoded, as: UTF8.self)
    }

    /// Four hex digits at `index` as a UTF-16 code unit; nil unless all four are there.
    private func hexUnit(at index: Int) -> UInt16? {
        guard index >= 0, bytes.count - index >= 4 else { return nil }
        var unit: UInt16 = 0
        for position in index..<(index + 4) {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            unit = unit << 4 | UInt16(digit)
        }
        return unit
    }

    private func error(_ message: String) -> JSONSyntaxError {
        JSONSyntaxError(offset: offset, message: message)
    }
}

/// Appends a scalar's UTF-8 bytes.
private func appendUTF8(of scalar: Unicode.Scalar, to bytes: inout [UInt8]) {
    let value = scalar.value
    switch value {
    case 0..<0x80: bytes.append(UInt8(value))
    case 0x80..<0x800:
        bytes.append(UInt8(0xC0 | value >> 6))
        bytes.append(UInt8(0x80 | value & 0x3F))
    case 0x800..<0x10000:
        bytes.append(UInt8(0xE0 | value >> 12))
        bytes.append(UInt8(0x80 | value >> 6 & 0x3F))
        bytes.append(UInt8(0x80 | value & 0x3F))
    default:
        bytes.append(UInt8(0xF0 | value >> 18))
        bytes.append(UInt8(0x80 | value >> 12 & 0x3F))
        bytes.append(UInt8(0x80 | value >> 6 & 0x3F))
        bytes.append(UInt8(0x80 | value & 0x3F))
    }
}

/// True when one of the eight bytes in `word` may be a quote, a backslash, a control character or
/// not ASCII (never false when one is; the byte-by-byte loop decides).
private func mayNeedALook(_ word: UInt64) -> Bool {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let highBits: UInt64 = 0x8080_8080_8080_8080
    // For bytes below 0x80, (byte - n) & ~byte has its high bit set exactly when byte < n, and a
    // byte equal to c is a zero byte of word ^ c (the classic tests, without false negatives).
    func hasZeroByte(_ value: UInt64) -> UInt64 { (value &- ones) & ~value }
    let control = (word &- ones &* 0x20) & ~word
    let quote = hasZeroByte(word ^ (ones &* UInt64(UInt8(ascii: "\""))))
    let backslash = hasZeroByte(word ^ (ones &* UInt64(UInt8(ascii: "\\"))))
    return (word | control | quote | backslash) & highBits != 0
}

private func isDigit(_ byte: UInt8) -> Bool {
    byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
}

private func hex(_ value: UInt16, digits: Int = 4) -> String {
    let text = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, digits - text.count)) + text
}

/// A byte for a message: `'x'` when printable ASCII, else `byte 0x1F`.
private func quoted(_ byte: UInt8) -> String {
    (0x21..<0x7F).contains(byte)
        ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(hex(UInt16(byte), digits: 2))"
}
