// Reading standard input in bounded chunks: numbers one per line (with the line number of any bad
// one), or the whole input up to a size limit.

/// Streams standard input line by line with bounded memory.
struct LineReader {
    static let maxLineBytes = 4096
    private let io: any CommandIO
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var start = 0
    private var end = 0
    private var atEndOfInput = false
    private(set) var lineNumber = 0

    init(io: any CommandIO) { self.io = io }

    /// The next line without its newline (and a trailing CR), or nil at the end of input. A line
    /// longer than `maxLineBytes` (without its LF or CRLF) is an error however the reads fall.
    mutating func nextLine() throws(CommandError) -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[start..<end].firstIndex(of: UInt8(ascii: "\n")) {
                lineNumber += 1
                let line = trimCR(buffer[start..<newline])
                start = newline + 1
                return try checkedLength(line)
            }
            // Room for a CR whose LF has not been read yet.
            if end - start > Self.maxLineBytes + 1 {
                throw CommandError.data("line \(lineNumber + 1): longer than \(Self.maxLineBytes) bytes")
            }
            if atEndOfInput {
                guard start < end else { return nil }
                lineNumber += 1
                let line = trimCR(buffer[start..<end])
                start = end
                return try checkedLength(line)
            }
            try fill()
        }
    }

    private func checkedLength(_ line: ArraySlice<UInt8>) throws(CommandError) -> ArraySlice<UInt8> {
        guard line.count <= Self.maxLineBytes else {
            throw CommandError.data("line \(lineNumber): longer than \(Self.maxLineBytes) bytes")
        }
        return line
    }

    /// Moves the unread bytes to the front and reads more after them.
    private mutating func fill() throws(CommandError) {
        if start > 0 {
            buffer.replaceSubrange(0..<(end - start), with: buffer[start..<end])
            end -= start
            start = 0
        }
        let n = try io.readInput(into: &buffer, at: end)
        if n == 0 { atEndOfInput = true }
        end += n
    }

    private func trimCR(_ line: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        line.last == UInt8(ascii: "\r") ? line.dropLast() : line
    }
}

/// Calls `body` with every number on standard input, one per line. A line that is not a finite
/// number stops the command with `line N: ...` and exit status 65.
func forEachNumber(io: some CommandIO, _ body: (Double) throws(CommandError) -> Void) throws(CommandError) {
    var reader = LineReader(io: io)
    while let line = try reader.nextLine() {
        let text = String(decoding: line, as: UTF8.self).trimmingASCIIWhitespace()
        guard !text.isEmpty else {
            throw CommandError.data("line \(reader.lineNumber): empty line, expected a number")
        }
        guard let value = Double(text) else {
            throw CommandError.data("line \(reader.lineNumber): '\(text.prefix(64))' is not a number")
        }
        guard value.isFinite else {
            throw CommandError.data("line \(reader.lineNumber): '\(text.prefix(64))' is not a finite number")
        }
        try body(value)
    }
}

/// All of standard input, refusing more than `limit` bytes.
func readAllInput(io: some CommandIO, limit: Int) throws(CommandError) -> [UInt8] {
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = try io.readInput(into: &chunk, at: 0)
        if n == 0 { return data }
        data.append(contentsOf: chunk[0..<n])
        guard data.count <= limit else { throw CommandError.data("input is larger than \(limit) bytes") }
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        // "\r\n" is one Character (a grapheme cluster), equal to neither "\r" nor "\n".
        let isSpace: (Character) -> Bool = {
            $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "\r\n"
        }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) })
        else {
            return ""
        }
        return String(self[first...last])
    }
}
