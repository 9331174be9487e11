// `UDPSocket`: one bound datagram socket (the agent's responder, or one of its probers), and
// `spawnThread` for the loops that read it. Same syscall layer and errors as the TCP side.

@preconcurrency import Glibc

/// A bound, non-blocking UDP socket that timestamps what it receives, closed in `deinit`.
/// Sendable: its only state is the descriptor, and the kernel serializes `sendto`/`recvmsg` on one
/// socket, so one thread may receive while others send.
public final class UDPSocket: Sendable {
    public let fd: Int32

    private init(adopting fd: Int32) { self.fd = fd }

    deinit { Syscall.close(fd) }

    /// A UDP socket bound to `address` (port 0: the kernel chooses; see `localAddress`).
    public static func bound(
        to address: SocketAddress, receiveBufferBytes: Int32? = nil
    ) throws(SystemCallError) -> UDPSocket {
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let socket = UDPSocket(adopting: try Syscall.socket(family: address.family, type: type))
        if let receiveBufferBytes {
            try Syscall.setOption(socket.fd, level: SOL_SOCKET, name: SO_RCVBUF, value: receiveBufferBytes)
        }
        try Syscall.setOption(socket.fd, level: SOL_SOCKET, name: SO_TIMESTAMPNS_OLD, value: 1)
        try address.withSockaddr { (pointer, length) throws(SystemCallError) in
            try Syscall.bind(socket.fd, pointer, length)
        }
        return socket
    }

    /// The address this socket is bound to.
    public func localAddress() throws(SystemCallError) -> SocketAddress {
        SocketAddress(try Syscall.localAddress(fd))
    }

    /// Sends one datagram without waiting. False when the socket's buffer is full (EAGAIN): the
    /// datagram was not sent.
    public func send(_ bytes: UnsafeRawBufferPointer, to address: DatagramAddress) throws(SystemCallError) -> Bool {
        try address.withSockaddr { (pointer, length) throws(SystemCallError) -> Bool in
            try Syscall.sendTo(fd, bytes, pointer, length) != nil
        }
    }

    /// Those of `sockets` that have something queued, in order, without waiting: one `poll` for all
    /// (reading each until EAGAIN would cost a system call per idle socket). All of them if the
    /// poll fails.
    public static func readable(_ sockets: [UDPSocket]) -> [UDPSocket] {
        var fds = sockets.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        guard (try? Syscall.poll(&fds, deadline: .now)) != nil else { return sockets }
        return zip(sockets, fds).filter { $0.1.revents != 0 }.map(\.0)
    }

    /// One queued datagram, without waiting: its length (truncated to the buffer), its sender and
    /// when the kernel received it (CLOCK_REALTIME ns); nil when none is queued.
    public func receive(
        into buffer: UnsafeMutableRawBufferPointer
    ) throws(SystemCallError) -> (count: Int, from: DatagramAddress, kernelTime: Int64?)? {
        try Syscall.receiveMessage(fd, into: buffer)
    }
}

/// Starts a detached POSIX thread (stack `stackBytes`) for a blocking loop, off Swift's cooperative
/// pool. Throws when the system has no thread to give (EAGAIN).
public func spawnThread(
    stackBytes: Int = 512 << 10, _ body: @escaping @Sendable () -> Void
) throws(SystemCallError) {
    try Syscall.spawnThread(stackBytes: stackBytes, body)
}
