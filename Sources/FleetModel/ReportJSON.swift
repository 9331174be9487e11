// Reads a report's JSON (wire-v1.md §3) into `WireReport` with `JSONReader`, straight from the
// body's bytes: the fields the spec names, unknown keys skipped (their syntax checked), `health` built
// as `JSONValue`, nothing else kept as a tree. Its errors are the ones Foundation's JSONDecoder gave
// before it (ReportJSONTests holds the two to one table): the field path and `missing`,
// `expected Int`, `expected String, found null`…, and when several fields are wrong, the one
// JSONDecoder named (it decoded fields in declaration order, after checking the structure of the
// whole input). A UTF-8 byte order mark is skipped, as JSONDecoder skipped it. Where this reader
// differs, it is stricter or names more:
// - a syntax error says what and where (`not valid JSON at byte 17: …`) and names the field it was in;
//   a malformed string or number is a syntax error wherever it is, reported before any missing or
//   mistyped field (JSONDecoder checked the insides of strings and numbers only as it decoded them,
//   so with several errors it could name another field first, and never looked inside unknown keys);
// - an Int field takes a number whose exact value is whole and within Int (`5`, `5.0`, `5e0`, `-0`);
//   JSONDecoder also took some that only rounded to a whole number through a double
//   (`4.9999999999999999`, `1e-400`), and named no field for the ones it refused;
// - a key given twice in any object the reader reads (the report, `agent`, a pair, `health` at any
//   depth) is an error (`given twice`): JSONDecoder kept the first, other readers keep the last;
// - trailing commas, invalid UTF-8 and unpaired `\u` surrogates are errors everywhere, also in the
//   values of unknown keys (JSONDecoder let those through there), and input in UTF-16 or UTF-32 is
//   not read (RFC 8259 §8.1: JSON between systems is UTF-8).

import QuantileSketch

extension WireReport {
    /// Reads one report's JSON; errors name the field.
    init(json bytes: UnsafeRawBufferPointer) throws(ReportError) {
        var reader = WireReportReader(bytes)
        self = try reader.read()
    }
}

/// Where in a report a field is: the error's field path, and its rank in the order JSONDecoder
/// decoded fields (declaration order, each pair in full before the next), which picks the error
/// to report when there are several.
struct ReportFieldPosition: Comparable {
    static let reportFields = ["version", "node", "windowStart", "windowSeconds", "agent", "pairs", "health"]
    static let agentFields = ["version", "transport"]
    static let pairFields = ["src", "dst", "sent", "lost", "errors", "rttMicros", "path"]
    static let (version, node, windowStart, windowSeconds, agent, pairs, health) = (0, 1, 2, 3, 4, 5, 6)
    static let (src, dst, sent, lost, errors, rttMicros, path) = (0, 1, 2, 3, 4, 5, 6)
    /// For a key the reader does not know: after the known ones.
    static let unknown = 100

    /// Index in `reportFields`, or -1 for the report itself.
    var field = -1
    /// For `agent`: the index in `agentFields`; for `pairs`: the pair's index.
    var index = -1
    /// For a pair: the index in `pairFields`.
    var pairField = -1
    /// For a pair's `path`: the element's index.
    var element = -1
    /// What follows: a path inside `health`, or an unknown key (`.name`).
    var suffix = ""

    var path: String {
        var text = ""
        if Self.reportFields.indices.contains(field) { text = Self.reportFields[field] }
        if field == Self.agent, Self.agentFields.indices.contains(index) {
            text += ".\(Self.agentFields[index])"
        }
        if field == Self.pairs {
            if index >= 0 { text += "[\(index)]" }
            if Self.pairFields.indices.contains(pairField) { text += ".\(Self.pairFields[pairField])" }
            if element >= 0 { text += "[\(element)]" }
        }
        text += suffix
        return text.hasPrefix(".") ? String(text.dropFirst()) : text
    }

    static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.field, lhs.index, lhs.pairField, lhs.element) < (
            rhs.field, rhs.index, rhs.pairField, rhs.element
        )
    }

    /// Same rank (the suffix does not count).
    static func == (lhs: Self, rhs: Self) -> Bool {
        (lhs.field, lhs.index, lhs.pairField, lhs.element) == (
            rhs.field, rhs.index, rhs.pairField, rhs.element
        )
    }
}

/// One pass over a report's bytes. A syntax error ends it at once (JSONDecoder checked the structure
/// before anything else); a field of the wrong type, missing or given twice is noted and skipped, and
/// the first in JSONDecoder's order is thrown at the end.
struct WireReportReader {
    private var reader: JSONReader
    /// The field being read, for a syntax error's path.
    private var position = ReportFieldPosition()
    private var firstError: (position: ReportFieldPosition, error: ReportError)?

    init(_ bytes: UnsafeRawBufferPointer) {
        reader = JSONReader(bytes)
    }

    mutating func read() throws(ReportError) -> WireReport {
        let report: WireReport?
        do {
            report = try readReport()
            position = ReportFieldPosition()
            try reader.finish()
        } catch {
            throw ReportError(position.path, error.reason(in: reader.bytes))
        }
        if let firstError { throw firstError.error }
        guard let report else { throw ReportError("", "not a report") }  // readReport notes why it gives nil
        return report
    }

    // MARK: The report's shape

    private mutating func readReport() throws(JSONSyntaxError) -> WireReport? {
        guard try reader.peek() == .object else {
            try noteNotAnObject(at: ReportFieldPosition())
            return nil
        }
        var version: Int?
        var node: String?
        var windowStart: String?
        var windowSeconds: Int?
        var agent: WireReport.Agent?
        var pairs: [WireReport.Pair]?
        var health: [String: JSONValue]?
        var present = FieldSet()
        var unknownKeys: Set<String> = []
        try reader.beginObject()
        var isFirst = true
        while let key = try reader.nextKey(isFirst: &isFirst) {
            let field = reportField(key)
            position = ReportFieldPosition(field: field ?? -1)  // an unknown key's value: the report
            guard let field else {
                try skipUnknown(
                    key, seen: &unknownKeys, at: ReportFieldPosition(field: ReportFieldPosition.unknown))
                continue
            }
            guard present.insert(field) else {
                note("given twice", at: position)
                try reader.skipValue()
                continue
            }
            switch field {
            case ReportFieldPosition.version: version = try readInt(at: position)
            case ReportFieldPosition.node: node = try readString(at: position)
            case ReportFieldPosition.windowStart: windowStart = try readString(at: position)
            case ReportFieldPosition.windowSeconds: windowSeconds = try readInt(at: position)
            case ReportFieldPosition.agent: agent = try readAgent()
            case ReportFieldPosition.pairs: pairs = try readPairs()
            default: health = try readHealth()
            }
            position = ReportFieldPosition()
        }
        position = ReportFieldPosition()
        if let missing = present.firstMissing(of: 0..<ReportFieldPosition.health) {
            note("missing", at: ReportFieldPosition(field: missing))
        }
        guard let version, let node, let windowStart, let windowSeconds, let agent, let pairs else {
            return nil
        }
        return WireReport(
            version: version, node: node, windowStart: windowStart, windowSeconds: windowSeconds,
            agent: agent,
            pairs: pairs, health: health)
    }

    private mutating func readAgent() throws(JSONSyntaxError) -> WireReport.Agent? {
        let here = position
        guard try reader.peek() == .object else {
            try noteNotAnObject(at: here)
            return nil
        }
        var version: String?
        var transport: String?
        var present = FieldSet()
        var unknownKeys: Set<String> = []
        try reader.beginObject()
        var isFirst = true
        while let key = try reader.nextKey(isFirst: &isFirst) {
            let field: Int? =
                reader.key(key, is: "version") ? 0 : reader.key(key, is: "transport") ? 1 : nil
            position = here
            position.index = field ?? -1
            guard let field else {
                var unknown = here
                unknown.index = ReportFieldPosition.unknown
                try skipUnknown(key, seen: &unknownKeys, at: unknown)
                continue
            }
            guard present.insert(field) else {
                note("given twice", at: position)
                try reader.skipValue()
                continue
            }
            if field == 0 {
                version = try readString(at: position)
            } else {
                transport = try readString(at: position)
            }
            position = here
        }
        position = here
        if let missing = present.firstMissing(of: 0..<2) {
            var missingPosition = here
            missingPosition.index = missing
            note("missing", at: missingPosition)
        }
        guard let version, let transport else { return nil }
        return WireReport.Agent(version: version, transport: transport)
    }

    private mutating func readPairs() throws(JSONSyntaxError) -> [WireReport.Pair]? {
        let here = position
        switch try reader.peek() {
        case .array: break
        case .null:
            try reader.readLiteral()
            note("expected Array<Any>, found null", at: here)
            return nil
        default:
            try reader.skipValue()
            note("expected Array<Any>", at: here)
            return nil
        }
        var pairs: [WireReport.Pair] = []
        pairs.reserveCapacity(64)
        var complete = true  // false once a pair failed: the rest are read for their errors only
        try reader.beginArray()
        var isFirst = true
        var index = 0
        while try reader.nextElement(isFirst: &isFirst) {
            position = here
            position.index = index
            if let pair = try readPair(at: position), complete {
                pairs.append(pair)
            } else {
                complete = false
            }
            position = here
            index += 1
        }
        position = here
        return complete ? pairs : nil
    }

    private mutating func readPair(at here: ReportFieldPosition) throws(JSONSyntaxError) -> WireReport.Pair? {
        guard try reader.peek() == .object else {
            try noteNotAnObject(at: here)
            return nil
        }
        var src: String?
        var dst: String?
        var sent: Int?
        var lost: Int?
        var errors: Int?
        var rttMicros: WireSketch?
        var path: [String]?
        var present = FieldSet()
        var unknownKeys: Set<String> = []
        try reader.beginObject()
        var isFirst = true
        while let key = try reader.nextKey(isFirst: &isFirst) {
            let field = pairField(key)
            position = here
            position.pairField = field ?? -1
            guard let field else {
                var unknown = here
                unknown.pairField = ReportFieldPosition.unknown
                try skipUnknown(key, seen: &unknownKeys, at: unknown)
                continue
            }
            guard present.insert(field) else {
                note("given twice", at: position)
                try reader.skipValue()
                continue
            }
            switch field {
            case ReportFieldPosition.src: src = try readString(at: position)
            case ReportFieldPosition.dst: dst = try readString(at: position)
            case ReportFieldPosition.sent: sent = try readInt(at: position)
            case ReportFieldPosition.lost: lost = try readInt(at: position)
            case ReportFieldPosition.errors: errors = try readInt(at: position, nullIsAbsent: true)
            case ReportFieldPosition.rttMicros: rttMicros = try readSketch(at: position)
            default: path = try readSwitchNames()
            }
            position = here
        }
        position = here
        if let missing = present.firstMissing(of: 0..<ReportFieldPosition.errors) {
            var missingPosition = here
            missingPosition.pairField = missing
            note("missing", at: missingPosition)
        }
        guard let src, let dst, let sent, let lost else { return nil }
        return WireReport.Pair(
            src: src, dst: dst, sent: sent, lost: lost, errors: errors, rttMicros: rttMicros, path: path)
    }

    /// A pair's `path`: null (absent) or an array of strings.
    private mutating func readSwitchNames() throws(JSONSyntaxError) -> [String]? {
        let here = position
        switch try reader.peek() {
        case .array: break
        case .null:
            try reader.readLiteral()
            return nil
        default:
            try reader.skipValue()
            note("expected Array<Any>", at: here)
            return nil
        }
        var names: [String] = []
        var complete = true
        try reader.beginArray()
        var isFirst = true
        var index = 0
        while try reader.nextElement(isFirst: &isFirst) {
            position = here
            position.element = index
            if let name = try readString(at: position) { names.append(name) } else { complete = false }
            position = here
            index += 1
        }
        position = here
        return complete ? names : nil
    }

    /// `health`: null (absent) or an object of anything.
    private mutating func readHealth() throws(JSONSyntaxError) -> [String: JSONValue]? {
        let here = position
        switch try reader.peek() {
        case .object:
            let (value, problem) = try reader.readValue()
            if let problem {
                var problemPosition = here
                problemPosition.suffix = problem.path
                note(problem.reason, at: problemPosition)
            }
            guard case .object(let members) = value else { return nil }
            return members
        case .null:
            try reader.readLiteral()
            return nil
        default:
            try reader.skipValue()
            note("expected Dictionary<String, Any>", at: here)
            return nil
        }
    }

    // MARK: Fields

    private func reportField(_ key: JSONKey) -> Int? {
        if reader.key(key, is: "version") { return ReportFieldPosition.version }
        if reader.key(key, is: "node") { return ReportFieldPosition.node }
        if reader.key(key, is: "windowStart") { return ReportFieldPosition.windowStart }
        if reader.key(key, is: "windowSeconds") { return ReportFieldPosition.windowSeconds }
        if reader.key(key, is: "agent") { return ReportFieldPosition.agent }
        if reader.key(key, is: "pairs") { return ReportFieldPosition.pairs }
        if reader.key(key, is: "health") { return ReportFieldPosition.health }
        return nil
    }

    private func pairField(_ key: JSONKey) -> Int? {
        if reader.key(key, is: "src") { return ReportFieldPosition.src }
        if reader.key(key, is: "dst") { return ReportFieldPosition.dst }
        if reader.key(key, is: "sent") { return ReportFieldPosition.sent }
        if reader.key(key, is: "lost") { return ReportFieldPosition.lost }
        if reader.key(key, is: "errors") { return ReportFieldPosition.errors }
        if reader.key(key, is: "rttMicros") { return ReportFieldPosition.rttMicros }
        if reader.key(key, is: "path") { return ReportFieldPosition.path }
        return nil
    }

    /// An Int field. Anything but a whole number in Int's range is noted and skipped.
    private mutating func readInt(
        at here: ReportFieldPosition, nullIsAbsent: Bool = false
    ) throws(JSONSyntaxError) -> Int? {
        switch try reader.peek() {
        case .number:
            let number = try reader.readNumber()
            switch reader.integer(number) {
            case .value(let value): return value
            case .notWhole:
                note(
                    "expected Int, found \(reader.text(of: number, limit: 40)), not a whole number", at: here)
            case .outOfRange:
                note("expected Int, found \(reader.text(of: number, limit: 40)), out of range", at: here)
            }
        case .null:
            try reader.readLiteral()
            if !nullIsAbsent { note("expected Int, found null", at: here) }
        default:
            try reader.skipValue()
            note("expected Int", at: here)
        }
        return nil
    }

    /// A String field. Anything else is noted and skipped.
    private mutating func readString(
        at here: ReportFieldPosition, nullIsAbsent: Bool = false
    ) throws(JSONSyntaxError) -> String? {
        switch try reader.peek() {
        case .string: return try reader.readString()
        case .null:
            try reader.readLiteral()
            if !nullIsAbsent { note("expected String, found null", at: here) }
        default:
            try reader.skipValue()
            note("expected String", at: here)
        }
        return nil
    }

    /// A pair's `rttMicros`: null (absent) or a string, taken out of its base64 as it is read.
    private mutating func readSketch(at here: ReportFieldPosition) throws(JSONSyntaxError) -> WireSketch? {
        guard try reader.peek() == .string else {
            _ = try readString(at: here, nullIsAbsent: true)  // null is absent; anything else is noted
            return nil
        }
        // Strict base64, the form agents send, is taken out of it as the string is found.
        if let bytes = reader.readString(ifAccepted: StrictBase64.decode) { return .bytes(bytes) }
        return try reader.readString(utf8: WireSketch.init(base64:))
    }

    /// Where an object should be and is not.
    private mutating func noteNotAnObject(at here: ReportFieldPosition) throws(JSONSyntaxError) {
        if try reader.peek() == .null {
            try reader.readLiteral()
            note("expected Dictionary<String, Any>, found null", at: here)
        } else {
            try reader.skipValue()
            note("expected Dictionary<String, Any>", at: here)
        }
    }

    /// Skips an unknown key's value (forward compatibility), noting a key given twice.
    private mutating func skipUnknown(
        _ key: JSONKey, seen: inout Set<String>, at here: ReportFieldPosition
    ) throws(JSONSyntaxError) {
        let name = reader.keyString(key)
        if !seen.insert(name).inserted {
            var duplicate = here
            duplicate.suffix = ".\(name)"
            note("given twice", at: duplicate)
        }
        try reader.skipValue()
    }

    /// Keeps the error JSONDecoder would have thrown: the first in its order.
    private mutating func note(_ reason: String, at here: ReportFieldPosition) {
        if let firstError, firstError.position <= here { return }
        firstError = (here, ReportError(here.path, reason))
    }
}

/// Which of an object's known fields (at most 64) have been seen.
private struct FieldSet {
    private var bits: UInt64 = 0

    /// False when the field was there already.
    mutating func insert(_ field: Int) -> Bool {
        let bit: UInt64 = 1 << UInt64(field)
        defer { bits |= bit }
        return bits & bit == 0
    }

    func firstMissing(of fields: Range<Int>) -> Int? {
        fields.first { bits & (1 << UInt64($0)) == 0 }
    }
}
