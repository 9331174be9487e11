// Owners of file descriptors: `Socket` (one TCP socket, closed in deinit, used by one thread at a
// time) and `WakePipe` (the pipe whose readability tells every waiting thread that the server stops).

@preconcurrency import Glibc

/// A TCP socket descriptor with exactly one owner, closed when the owner lets go. Not `Sendable`: it
/// moves between threads only whole (see `Transfer`), never shared.
public final class Socket {
    public let fd: Int32

    init(adopting fd: Int32) { self.fd = fd }

    deinit { Syscall.close(fd) }

    /// A listening socket on `address` (`SO_REUSEADDR`, backlog `backlog`).
    /// Non-blocking, so an accept after poll never blocks when the client has gone meanwhile.
    static func listening(on address: SocketAddress, backlog: Int32 = 512) throws(SystemCallError) -> Socket {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let socket = Socket(adopting: try Syscall.socket(family: address.family, type: type))
        try Syscall.setOption(socket.fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1)
        try address.withSockaddr { (pointer, length) throws(SystemCallError) in
            try Syscall.bind(socket.fd, pointer, length)
        }
        try Syscall.listen(socket.fd, backlog: backlog)
        return socket
    }

    /// A connected socket, or ETIMEDOUT when the connection is not made by `deadline`. The socket is
    /// non-blocking (every wait is a poll); TCP_NODELAY is set.
    public static func connected(
        to address: SocketAddress, deadline: ContinuousClock.Instant? = nil
    ) throws(SystemCallError) -> Socket {
        let socket = Socket(
            adopting: try Syscall.socket(family: address.family, type: Int32(SOCK_STREAM.rawValue)))
        try address.withSockaddr { (pointer, length) throws(SystemCallError) in
            try Syscall.connect(socket.fd, pointer, length, deadline: deadline)
        }
        socket.setNoDelay()
        return socket
    }

    /// Disables Nagle's algorithm: a response goes out whole at once, so small ones are not delayed.
    func setNoDelay() {
        try? Syscall.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
    }

    /// The address this socket is bound to (the kernel's choice after binding port 0).
    public func localAddress() throws(SystemCallError) -> SocketAddress {
        SocketAddress(try Syscall.localAddress(fd))
    }

    /// Waits until the socket is readable (or has hung up), the wake pipe fired, or the deadline
    /// passed.
    func waitReadable(
        until deadline: ContinuousClock.Instant?, wake: WakePipe?
    ) throws(SystemCallError) -> Readiness {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        if let wake { fds.append(pollfd(fd: wake.readFD, events: Int16(POLLIN), revents: 0)) }
        if try Syscall.poll(&fds, deadline: deadline) == 0 { return .timedOut }
        if fds[0].revents != 0 { return .ready }
        return .woken
    }

    enum Readiness { case ready, timedOut, woken }

    /// Reads what is there, waiting until `deadline`. Returns the bytes (empty at end of stream), or
    /// nil on timeout.
    func read(
        into buffer: UnsafeMutableRawBufferPointer, until deadline: ContinuousClock.Instant?
    ) throws(SystemCallError) -> Int? {
        while true {
            if let count = try Syscall.receive(fd, into: buffer) { return count }
            if try waitReadable(until: deadline, wake: nil) == .timedOut { return nil }
        }
    }

    /// Writes all of `bytes`, waiting for buffer space until `deadline`. False when the deadline
    /// passed first.
    func writeAll(_ bytes: [UInt8], until deadline: ContinuousClock.Instant?) throws(SystemCallError) -> Bool
    {
        var offset = 0
        while offset < bytes.count {
            let written = try Syscall.typed {
                try bytes.withUnsafeBytes { all in
                    try Syscall.send(fd, UnsafeRawBufferPointer(rebasing: all[offset...]))
                }
            }
            if let written {
                offset += written
                continue
            }
            var fds = [pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)]
            if try Syscall.poll(&fds, deadline: deadline) == 0 { return false }
        }
        return true
    }

    /// Sends what fits now without waiting; used where waiting is not allowed (the accept thread).
    func writeWithoutWaiting(_ bytes: [UInt8]) {
        _ = try? bytes.withUnsafeBytes { (all) throws(SystemCallError) -> Int? in try Syscall.send(fd, all) }
    }

    /// Half-closes the sending side: the peer reads end of stream after what was sent.
    func shutdownWrite() { Syscall.shutdown(fd, Int32(SHUT_WR)) }
}

@available(*, unavailable)
extension Socket: Sendable {}

/// A non-blocking pipe. Writing one byte makes the read end readable for good, so every thread
/// polling it (accept loop, idle connections) wakes, now and later. Closed when the last user lets go.
final class WakePipe: Sendable {
    let readFD: Int32
    let writeFD: Int32

    init() throws(SystemCallError) {
        (readFD, writeFD) = try Syscall.pipe()
    }

    func fire() { Syscall.write(writeFD, 1) }

    var hasFired: Bool {
        var fds = [pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)]
        return ((try? Syscall.poll(&fds, deadline: .now)) ?? 0) > 0
    }

    deinit {
        Syscall.close(readFD)
        Syscall.close(writeFD)
    }
}

/// Moves a value with a single owner (a `Socket`) to the thread that will own it from then on: the
/// sender puts it in and never touches it again, the receiving thread takes it out once, so the box
/// keeps no reference (the socket closes when its new owner lets go, not when the box goes). That
/// contract is what makes it sendable, hence unchecked; thread start orders the two accesses.
final class Handoff<Value>: @unchecked Sendable {
    private var value: Value?

    init(_ value: Value) { self.value = value }

    func take() -> Value {
        guard let value else { preconditionFailure("handed-off value taken twice") }
        self.value = nil
        return value
    }
}
