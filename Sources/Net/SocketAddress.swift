// Addresses to listen on and connect to: `HOST:PORT` parsed with clear errors (IPv4, `[IPv6]`, or
// `localhost`; names are not resolved), and their sockaddr form for bind and connect.

@preconcurrency import Glibc

/// An IP address and TCP port. Port 0 asks the kernel to choose (see `HTTPServer.boundAddress`).
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// A numeric IPv4 or IPv6 address, without brackets.
    public let host: String
    public let port: UInt16

    /// The correlator's default: loopback only, kernel-chosen port.
    public static let defaultListen = SocketAddress(validatedHost: "127.0.0.1", port: 0)

    /// `host` must be a numeric IPv4 or IPv6 address; `localhost` means 127.0.0.1.
    public init(host: String, port: UInt16) throws(AddressError) {
        let host = host == "localhost" ? "127.0.0.1" : host
        guard Self.family(of: host) != nil else { throw AddressError.badHost(host) }
        self.host = host
        self.port = port
    }

    private init(validatedHost: String, port: UInt16) {
        self.host = validatedHost
        self.port = port
    }

    /// Parses `HOST:PORT`: `127.0.0.1:8080`, `[::1]:8080`, `localhost:0`, `0.0.0.0:7070`.
    public static func parse(_ text: String) throws(AddressError) -> SocketAddress {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw .malformed(text, "missing ']' after an IPv6 address")
            }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.first == ":" else { throw .malformed(text, "expected ':PORT' after ']'") }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .malformed(text, "expected HOST:PORT") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") {
                throw .malformed(text, "write an IPv6 address in brackets: [ADDRESS]:PORT")
            }
        }
        if host.isEmpty { throw .malformed(text, "the host is empty") }
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
            let port = UInt16(portText)
        else { throw .badPort(String(portText)) }
        return try SocketAddress(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    static func family(of host: String) -> Int32? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return AF_INET }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return AF_INET6 }
        return nil
    }

    var family: Int32 { Self.family(of: host)! }

    /// Calls `body` with this address as a `sockaddr` and its length.
    func withSockaddr<R>(
        _ body: (UnsafePointer<sockaddr>, socklen_t) throws(SystemCallError) -> R
    ) throws(SystemCallError) -> R {
        try DatagramAddress(self).withSockaddr(body)
    }

    /// The address a `getsockname` returned.
    init(_ storage: sockaddr_storage) {
        var storage = storage
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        if Int32(storage.ss_family) == AF_INET {
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }
            var raw = address.sin_addr
            _ = inet_ntop(AF_INET, &raw, &text, socklen_t(text.count))
            self.init(
                validatedHost: String(
                    decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                port: UInt16(bigEndian: address.sin_port))
        } else {
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }
            var raw = address.sin6_addr
            _ = inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
            self.init(
                validatedHost: String(
                    decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                port: UInt16(bigEndian: address.sin6_port))
        }
    }
}

/// An address in the kernel's own form (`sockaddr_in` or `sockaddr_in6`): converted from a
/// `SocketAddress` once, then sent to and received from per datagram without any text.
public struct DatagramAddress: Sendable {
    private var storage = sockaddr_storage()
    private var length = socklen_t(MemoryLayout<sockaddr_storage>.size)

    /// Room for whatever address `recvfrom` writes.
    init() {}

    public init(_ address: SocketAddress) {
        if address.family == AF_INET {
            var raw = sockaddr_in()
            raw.sin_family = sa_family_t(AF_INET)
            raw.sin_port = address.port.bigEndian
            _ = inet_pton(AF_INET, address.host, &raw.sin_addr)
            store(raw)
        } else {
            var raw = sockaddr_in6()
            raw.sin6_family = sa_family_t(AF_INET6)
            raw.sin6_port = address.port.bigEndian
            _ = inet_pton(AF_INET6, address.host, &raw.sin6_addr)
            store(raw)
        }
    }

    private mutating func store<Raw>(_ raw: Raw) {
        withUnsafeBytes(of: raw) { source in
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) }
        }
        length = socklen_t(MemoryLayout<Raw>.size)
    }

    func withSockaddr<R, E: Error>(
        _ body: (UnsafePointer<sockaddr>, socklen_t) throws(E) -> R
    ) throws(E) -> R {
        try withUnsafePointer(to: storage) { (pointer) throws(E) -> R in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(E) -> R in
                try body(address, length)
            }
        }
    }

    /// For calls that fill in an address (`recvfrom`): the room and its length, in and out.
    mutating func withMutableSockaddr<R, E: Error>(
        _ body: (UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) throws(E) -> R
    ) throws(E) -> R {
        length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return try withUnsafeMutablePointer(to: &storage) { (pointer) throws(E) -> R in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(E) -> R in
                try body(address, &length)
            }
        }
    }
}

/// Why a `HOST:PORT` was refused.
public enum AddressError: Error, Hashable, Sendable, CustomStringConvertible {
    case malformed(String, String)
    case badHost(String)
    case badPort(String)

    public var description: String {
        switch self {
        case .malformed(let text, let why): "address '\(text)': \(why)"
        case .badHost(let host):
            "host '\(host)' is not a numeric IPv4 or IPv6 address (names other than localhost are not resolved)"
        case .badPort(let port): "port '\(port)' is not a number in 0...65535"
        }
    }
}
