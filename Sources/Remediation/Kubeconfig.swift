// Where the kubernetes action finds the API server and its credentials: a kubeconfig file (the
// block-style YAML kubectl writes: current-context, contexts, clusters, users) or the in-cluster
// service account (KUBERNETES_SERVICE_HOST/PORT and /var/run/secrets/kubernetes.io/serviceaccount).
// Only what a long-running service can use unattended: bearer tokens (inline or a token file, read
// again on every call since projected tokens rotate), client certificates, a CA; exec and
// auth-provider plugins are refused by name. Errors say file:line.

import Foundation

/// The API server and how to prove who we are to it.
public struct KubernetesCredentials: Sendable, Equatable {
    /// `https://HOST:PORT`, no trailing slash.
    public var server: String
    /// A PEM file with the CA that signed the API server's certificate (nil: the system's CAs).
    public var certificateAuthority: String?
    public var token: Token?
    /// PEM files of a client certificate and its key.
    public var clientCertificate: String?
    public var clientKey: String?

    public enum Token: Sendable, Equatable {
        case inline(String)
        /// Read on every call: the kubelet rewrites projected service-account tokens before they expire.
        case file(String)
    }

    public init(
        server: String, certificateAuthority: String? = nil, token: Token? = nil, clientCertificate: String? = nil,
        clientKey: String? = nil
    ) {
        self.server = server
        self.certificateAuthority = certificateAuthority
        self.token = token
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
    }

    /// The bearer token as of now.
    func currentToken() throws(ActionError) -> String? {
        switch token {
        case nil: return nil
        case .inline(let text): return text
        case .file(let path):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ActionError(.failed, "kubernetes: cannot read the token file \(path)")
            }
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty, !text.contains(where: { $0.isNewline || $0 == "\"" }) else {
                throw ActionError(.failed, "kubernetes: the token file \(path) does not hold one token")
            }
            return text
        }
    }

    /// The pod's service account, as the kubelet mounts it. `directory` and `environment` are
    /// parameters for tests.
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String = "/var/run/secrets/kubernetes.io/serviceaccount"
    ) throws(ActionError) -> KubernetesCredentials {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
            let port = environment["KUBERNETES_SERVICE_PORT"], UInt16(port) != nil
        else {
            throw ActionError(
                .failed, "kubernetes: not in a cluster (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT unset)")
        }
        for file in ["token", "ca.crt"] where !FileManager.default.isReadableFile(atPath: "\(directory)/\(file)") {
            throw ActionError(.failed, "kubernetes: no service account: cannot read \(directory)/\(file)")
        }
        let authority = host.contains(":") ? "[\(host)]" : host
        return KubernetesCredentials(
            server: "https://\(authority):\(port)", certificateAuthority: "\(directory)/ca.crt",
            token: .file("\(directory)/token"))
    }

    /// The credentials of `context` (nil: the file's current-context) in the kubeconfig at `path`.
    /// `*-data` fields (base64 PEM) are written to files in `privateDirectory` (made 0700, files
    /// 0600), because curl reads certificates from files. Relative paths are the file's directory's,
    /// as kubectl takes them.
    public static func kubeconfig(
        _ path: String, context wanted: String? = nil, privateDirectory: String
    ) throws(ActionError) -> KubernetesCredentials {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ActionError(.failed, "kubernetes: cannot read the kubeconfig \(path)")
        }
        let root: YAMLNode
        do { root = try YAMLNode.parse(String(decoding: data, as: UTF8.self)) } catch {
            throw ActionError(.failed, "kubernetes: \(path):\(error.line): \(error.message)")
        }
        func fail(_ node: YAMLNode?, _ message: String) -> ActionError {
            ActionError(.failed, "kubernetes: \(path)\(node.map { ":\($0.line)" } ?? ""): \(message)")
        }
        func named(_ list: String, _ name: String) throws(ActionError) -> YAMLNode {
            guard let entry = root[list]?.items.first(where: { $0["name"]?.text == name }) else {
                throw fail(root[list], "no \(list.dropLast()) named '\(name)' in \(list)")
            }
            guard let body = entry[String(list.dropLast())] else {
                throw fail(entry, "\(list.dropLast()) '\(name)' has no '\(list.dropLast())' mapping")
            }
            return body
        }
        guard let contextName = wanted ?? root["current-context"]?.text, !contextName.isEmpty else {
            throw fail(nil, "no current-context, and no context named")
        }
        let context = try named("contexts", contextName)
        guard let clusterName = context["cluster"]?.text, let userName = context["user"]?.text else {
            throw fail(context, "context '\(contextName)' needs a cluster and a user")
        }
        let cluster = try named("clusters", clusterName)
        let user = try named("users", userName)
        guard let server = cluster["server"]?.text, server.hasPrefix("https://") else {
            throw fail(cluster["server"] ?? cluster, "cluster '\(clusterName)' needs an https:// server")
        }
        if cluster["insecure-skip-tls-verify"]?.text == "true" {
            throw fail(cluster["insecure-skip-tls-verify"], "insecure-skip-tls-verify: quarantines are not sent to an unverified server")
        }
        for plugin in ["exec", "auth-provider"] where user[plugin] != nil {
            throw fail(user[plugin], "user '\(userName)' authenticates through '\(plugin)': use a token, a token file or a client certificate")
        }
        let base = (path as NSString).deletingLastPathComponent
        func file(_ node: YAMLNode, _ key: String, _ name: String) throws(ActionError) -> String? {
            if let encoded = node["\(key)-data"] {
                guard let bytes = Data(base64Encoded: encoded.text, options: .ignoreUnknownCharacters) else {
                    throw fail(encoded, "\(key)-data is not base64")
                }
                return try writePrivate(bytes, name: name, directory: privateDirectory)
            }
            guard let given = node[key]?.text, !given.isEmpty else { return nil }
            return given.hasPrefix("/") || base.isEmpty ? given : "\(base)/\(given)"
        }
        var credentials = KubernetesCredentials(
            server: String(server.reversed().drop { $0 == "/" }.reversed()),
            certificateAuthority: try file(cluster, "certificate-authority", "ca.crt"),
            clientCertificate: try file(user, "client-certificate", "client.crt"),
            clientKey: try file(user, "client-key", "client.key"))
        if let token = user["token"]?.text, !token.isEmpty {
            guard !token.contains(where: { $0.isNewline || $0 == "\"" || $0.asciiValue.map { $0 < 0x20 } == true }) else {
                throw fail(user["token"], "user '\(userName)' has a token with a line break or a quote in it")
            }
            credentials.token = .inline(token)
        } else if let tokenFile = user["tokenFile"]?.text, !tokenFile.isEmpty {
            credentials.token = .file(tokenFile.hasPrefix("/") || base.isEmpty ? tokenFile : "\(base)/\(tokenFile)")
        }
        guard credentials.token != nil || credentials.clientCertificate != nil else {
            throw fail(user, "user '\(userName)' has no token, tokenFile or client certificate")
        }
        guard (credentials.clientCertificate == nil) == (credentials.clientKey == nil) else {
            throw fail(user, "user '\(userName)' needs both client-certificate and client-key")
        }
        return credentials
    }

    private static func writePrivate(_ bytes: Data, name: String, directory: String) throws(ActionError) -> String {
        let path = "\(directory)/\(name)"
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory)
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw CocoaError(.fileWriteUnknown)
            }
            try bytes.write(to: URL(fileURLWithPath: path))
        } catch {
            throw ActionError(.failed, "kubernetes: cannot write \(path): \(error.localizedDescription)")
        }
        return path
    }
}

/// The part of YAML kubeconfigs use: block mappings and sequences (a sequence may sit at its key's
/// indentation, as kubectl writes it), plain and quoted scalars, `{}` and `[]`, comments. Anything
/// else (anchors, block scalars, flow collections with content, tabs) is an error naming its line.
struct YAMLNode: Equatable {
    enum Value: Equatable {
        case scalar(String)
        case mapping([(key: String, value: YAMLNode)])
        case sequence([YAMLNode])

        static func == (a: Value, b: Value) -> Bool {
            switch (a, b) {
            case (.scalar(let x), .scalar(let y)): x == y
            case (.sequence(let x), .sequence(let y)): x == y
            case (.mapping(let x), .mapping(let y)): x.map(\.key) == y.map(\.key) && x.map(\.value) == y.map(\.value)
            default: false
            }
        }
    }
    var value: Value
    /// 1-based line where it starts (a mapping's value: its key's line).
    var line: Int

    struct ParseError: Error {
        var line: Int
        var message: String
    }

    subscript(key: String) -> YAMLNode? {
        guard case .mapping(let entries) = value else { return nil }
        return entries.first { $0.key == key }?.value
    }
    var items: [YAMLNode] {
        if case .sequence(let items) = value { return items }
        return []
    }
    /// A scalar's text; "" for collections.
    var text: String {
        if case .scalar(let text) = value { return text }
        return ""
    }

    private struct Line {
        var number: Int
        var indent: Int
        var content: Substring
    }

    static func parse(_ text: String) throws(ParseError) -> YAMLNode {
        var lines: [Line] = []
        // "\r\n" is one Character: split on it as on "\n" (kubeconfigs written on Windows).
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .enumerated()
        {
            let body = line.drop { $0 == " " }
            if body.hasPrefix("\t") { throw ParseError(line: index + 1, message: "a tab in the indentation") }
            let content = stripComment(body)
            if content.isEmpty || content == "---" { continue }
            if content == "..." { break }
            lines.append(Line(number: index + 1, indent: line.count - body.count, content: content))
        }
        var parser = Parser(lines: lines)
        guard let first = lines.first else { return YAMLNode(value: .mapping([]), line: 1) }
        let root = try parser.block(indent: first.indent)
        if parser.position < lines.count {
            throw ParseError(line: lines[parser.position].number, message: "unexpected indentation")
        }
        return root
    }

    /// The line without a trailing `# comment` (a `#` after a space, outside quotes) and spaces.
    /// A quote opens a quoted scalar only where a scalar starts (after a space or a colon, or at
    /// the line's start: `o'brien` holds no quote); `\` escapes inside double quotes.
    private static func stripComment(_ body: Substring) -> Substring {
        var quote: Character?
        var escaped = false
        var previous: Character = " "
        for index in body.indices {
            let character = body[index]
            if let open = quote {
                if escaped {
                    escaped = false
                } else if open == "\"" && character == "\\" {
                    escaped = true
                } else if character == open {
                    quote = nil
                }
            } else if (character == "\"" || character == "'") && (previous == " " || previous == ":" || previous == "-") {
                quote = character
            } else if character == "#" && previous == " " {
                return trimmed(body[..<index])
            }
            previous = character
        }
        return trimmed(body)
    }

    private static func trimmed(_ text: Substring) -> Substring {
        var end = text.endIndex
        while end > text.startIndex, text[text.index(before: end)] == " " { end = text.index(before: end) }
        return text[..<end]
    }

    private struct Parser {
        var lines: [Line]
        var position = 0

        mutating func block(indent: Int) throws(ParseError) -> YAMLNode {
            let line = lines[position]
            return isItem(line.content) ? try sequence(indent: indent) : try mapping(indent: indent)
        }

        func isItem(_ content: Substring) -> Bool { content == "-" || content.hasPrefix("- ") }

        mutating func sequence(indent: Int) throws(ParseError) -> YAMLNode {
            let start = lines[position].number
            var items: [YAMLNode] = []
            while position < lines.count, lines[position].indent == indent, isItem(lines[position].content) {
                let line = lines[position]
                let rest = line.content.dropFirst().drop { $0 == " " }
                if rest.isEmpty {
                    position += 1
                    guard position < lines.count, lines[position].indent > indent else {
                        items.append(YAMLNode(value: .scalar(""), line: line.number))
                        continue
                    }
                    items.append(try block(indent: lines[position].indent))
                } else if !isItem(rest), Self.splitKey(rest) == nil {
                    items.append(try YAMLNode.scalar(rest, line: line.number))
                    position += 1
                } else {
                    // "- key: value": the item's content is a block at the column after "- ".
                    let column = indent + (line.content.count - rest.count)
                    lines[position] = Line(number: line.number, indent: column, content: rest)
                    items.append(try block(indent: column))
                }
            }
            return YAMLNode(value: .sequence(items), line: start)
        }

        mutating func mapping(indent: Int) throws(ParseError) -> YAMLNode {
            let start = lines[position].number
            var entries: [(key: String, value: YAMLNode)] = []
            while position < lines.count, lines[position].indent == indent, !isItem(lines[position].content) {
                let line = lines[position]
                guard let (key, rest) = Self.splitKey(line.content) else {
                    throw ParseError(line: line.number, message: "expected 'key: value'")
                }
                if entries.contains(where: { $0.key == key }) {
                    throw ParseError(line: line.number, message: "'\(key)' given twice")
                }
                position += 1
                if !rest.isEmpty {
                    // A plain scalar may go on over more-indented lines, folded with spaces.
                    var text = String(rest)
                    while position < lines.count, lines[position].indent > indent, !rest.hasPrefix("\""), !rest.hasPrefix("'") {
                        text += " " + lines[position].content
                        position += 1
                    }
                    entries.append((key, try YAMLNode.scalar(Substring(text), line: line.number)))
                } else if position < lines.count, lines[position].indent > indent
                    || (lines[position].indent == indent && isItem(lines[position].content))
                {
                    var nested = try block(indent: lines[position].indent)
                    nested.line = line.number  // a nested block is where its key is
                    entries.append((key, nested))
                } else {
                    entries.append((key, YAMLNode(value: .scalar(""), line: line.number)))
                }
            }
            if position < lines.count, lines[position].indent > indent {
                throw ParseError(line: lines[position].number, message: "unexpected indentation")
            }
            return YAMLNode(value: .mapping(entries), line: start)
        }

        /// `key: rest` (key plain or quoted); nil when the line is not one.
        static func splitKey(_ content: Substring) -> (String, Substring)? {
            var key: String
            var after: Substring
            if let quote = content.first, quote == "\"" || quote == "'" {
                guard let close = content.dropFirst().firstIndex(of: quote) else { return nil }
                key = String(content[content.index(after: content.startIndex)..<close])
                after = content[content.index(after: close)...]
                guard after.hasPrefix(":") else { return nil }
                after = after.dropFirst()
            } else {
                guard let colon = content.firstRange(of: ": ")?.lowerBound ?? (content.hasSuffix(":") ? content.index(before: content.endIndex) : nil)
                else { return nil }
                key = String(content[..<colon])
                after = content[content.index(after: colon)...]
            }
            guard !key.isEmpty else { return nil }
            return (key, after.drop { $0 == " " })
        }
    }

    static func scalar(_ text: Substring, line: Int) throws(ParseError) -> YAMLNode {
        if text == "{}" { return YAMLNode(value: .mapping([]), line: line) }
        if text == "[]" { return YAMLNode(value: .sequence([]), line: line) }
        guard let first = text.first else { return YAMLNode(value: .scalar(""), line: line) }
        switch first {
        case "\"":
            guard text.count >= 2, text.last == "\"" else { throw ParseError(line: line, message: "an unclosed \" string") }
            var result = ""
            var escaped = false
            let inner = text.dropFirst().dropLast()
            // An odd run of backslashes before the closing quote escapes it: the string never closed.
            guard inner.reversed().prefix(while: { $0 == "\\" }).count % 2 == 0 else {
                throw ParseError(line: line, message: "an unclosed \" string")
            }
            for character in inner {
                if escaped {
                    switch character {
                    case "n": result.append("\n")
                    case "t": result.append("\t")
                    case "\\", "\"", "/": result.append(character)
                    default: throw ParseError(line: line, message: "the escape \\\(character) is not supported")
                    }
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else {
                    result.append(character)
                }
            }
            return YAMLNode(value: .scalar(result), line: line)
        case "'":
            guard text.count >= 2, text.last == "'" else { throw ParseError(line: line, message: "an unclosed ' string") }
            return YAMLNode(value: .scalar(text.dropFirst().dropLast().replacingOccurrences(of: "''", with: "'")), line: line)
        case "{", "[", "&", "*", "|", ">", "!":
            throw ParseError(line: line, message: "'\(first)' (flow collections, anchors, block scalars, tags) is not supported")
        default:
            return YAMLNode(value: .scalar(String(text)), line: line)
        }
    }
}
