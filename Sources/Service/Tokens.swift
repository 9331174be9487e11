// Bearer tokens: the tokens file (`<node> <token>` per line, `@admin <token>`, `#` comments) parsed
// with file:line errors, refused when group or others may read it, and looked up by digest so that the
// time a lookup takes says nothing about the tokens. Tokens never appear in errors, logs or descriptions.

import FleetModel
import Foundation
import Store

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Who a bearer token belongs to.
public enum Principal: Sendable, Equatable {
    /// An agent: it may report for this node only.
    case node(NodeName)
    /// The operator: the read endpoints, and reports for any node.
    case admin
}

/// A problem with the tokens file; prints as `file:line: message` (or `file: message`).
public struct TokensError: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String
    /// 1-based; nil for problems with the file as a whole.
    public let line: Int?
    public let message: String

    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}

/// The tokens the service accepts. Immutable; a reload makes a new one.
public struct Tokens: Sendable {
    private struct Entry: Sendable {
        let principal: Principal
        let token: [UInt8]
    }

    private let entries: [Entry]
    /// Each entry's position by the SHA-256 of its token.
    private let entryByDigest: [[UInt8]: Int]
    /// Tokens shorter than this are refused: a guessable token is no token.
    public static let minimumTokenBytes = 16
    public static let maximumFileBytes = 4 << 20

    /// The nodes that have a token, sorted.
    public var nodes: [NodeName] {
        entries.compactMap { if case .node(let name) = $0.principal { name } else { nil } }.sorted()
    }

    public var hasAdmin: Bool { entries.contains { $0.principal == .admin } }

    /// Parses the file's text. Every line is `<node> <token>`, `@admin <token>`, blank, or a `#`
    /// comment; a node named twice, a token used twice, a token shorter than 16 bytes, or more than
    /// two words is an error naming `file:line` (never the token).
    public init(text: String, file: String) throws(TokensError) {
        var entries: [Entry] = []
        var seenPrincipals: [String: Int] = [:]
        var seenTokens: Set<[UInt8]> = []
        for (index, rawLine) in text.split(
            omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }
        ).enumerated() {
            let number = index + 1
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if words.isEmpty || words[0].hasPrefix("#") { continue }
            func fail(_ message: String) -> TokensError {
                TokensError(file: file, line: number, message: message)
            }
            guard words.count == 2 else {
                throw fail("expected '<node> <token>' or '@admin <token>', found \(words.count) words")
            }
            let who = String(words[0])
            let principal: Principal
            if who == "@admin" {
                principal = .admin
            } else if let node = NodeName(who) {
                principal = .node(node)
            } else {
                throw fail("'\(who)' is not a node name or @admin")
            }
            if let earlier = seenPrincipals[who] {
                throw fail("\(who) already has a token (line \(earlier))")
            }
            seenPrincipals[who] = number
            let token = Array(words[1].utf8)
            guard token.count >= Self.minimumTokenBytes else {
                throw fail("the token of \(who) is shorter than \(Self.minimumTokenBytes) bytes")
            }
            guard seenTokens.insert(token).inserted else {
                throw fail("the token of \(who) is also another principal's token")
            }
            entries.append(Entry(principal: principal, token: token))
        }
        self.entries = entries
        entryByDigest = Dictionary(
            uniqueKeysWithValues: entries.indices.map { (SHA256.digest(entries[$0].token), $0) })
    }

    /// Reads and parses `path`, refusing a file that group or others can read or write.
    public static func load(path: String) throws(TokensError) -> Tokens {
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw TokensError(
                file: path, line: nil, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw TokensError(file: path, line: nil, message: "not a regular file")
        }
        guard status.st_mode & 0o077 == 0 else {
            let mode = String(status.st_mode & 0o777, radix: 8)
            throw TokensError(
                file: path, line: nil,
                message: "readable by group or others (mode \(mode)); run `chmod 600 \(path)`")
        }
        guard Int(status.st_size) <= maximumFileBytes else {
            throw TokensError(file: path, line: nil, message: "larger than \(maximumFileBytes) bytes")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokensError(file: path, line: nil, message: "cannot read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TokensError(file: path, line: nil, message: "not UTF-8")
        }
        return try Tokens(text: text, file: path)
    }

    /// The principal of a bearer token, nil when it is unknown. The token is looked up by its
    /// SHA-256: how long the lookup takes depends on the digest, which says nothing a caller can use
    /// about any token's bytes; the entry found is then compared in time that depends only on the
    /// lengths. One digest a request, however many nodes have tokens (comparing every entry cost
    /// 6% of the service's CPU at 2,500 nodes).
    public func principal(of token: some Collection<UInt8>) -> Principal? {
        let presented = Array(token)
        guard let index = entryByDigest[SHA256.digest(presented)],
            Self.constantTimeEqual(entries[index].token, presented)
        else { return nil }
        return entries[index].principal
    }

    /// The principal of an `Authorization` header value `Bearer <token>`; nil when the header is
    /// missing, not a bearer token, or the token is unknown.
    public func principal(authorization: String?) -> Principal? {
        guard let authorization else { return nil }
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return principal(of: parts[1].utf8)
    }

    /// Equal bytes, compared without an early exit.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count) | (a.count == b.count ? 0 : 1)
        let count = min(a.count, b.count)
        for index in 0..<count { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
