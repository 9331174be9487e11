// `UDPSocket`: one bound datagram socket (the agent's probes and its responder), and `spawnThread`
// for the blocking loops that read it. Same syscall layer and errors as the TCP side.

@preconcurrency import Glibc

/// A bound, non-blocking UDP socket, closed in `deinit`. Sendable: its only state is the descriptor,
/// and the kernel serializes `sendto`/`recvfrom` on one socket, so one thread may receive while
/// others send.
public final class UDPSocket: Sendable {
    public let fd: Int32

    private init(adopting fd: Int32) { self.fd = fd }

    deinit { Syscall.close(fd) }

    /// A UDP socket bound to `address` (port 0: the kernel chooses; see `localAddress`).
    public static func bound(
        to address: SocketAddress, receiveBufferBytes: Int32? = nil
    ) throws(SystemCallError)
        -> UDPSocket
    {
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let socket = UDPSocket(adopting: try Syscall.socket(family: address.family, type: type))
        if let receiveBufferBytes {
            try Syscall.setOption(socket.fd, level: SOL_SOCKET, name: SO_RCVBUF, value: receiveBufferBytes)
        }
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
    public func send(_ bytes: [UInt8], to address: SocketAddress) throws(SystemCallError) -> Bool {
        try Syscall.typed {
            try bytes.withUnsafeBytes { buffer in
                try address.withSockaddr { (pointer, length) throws(SystemCallError) -> Bool in
                    try Syscall.sendTo(fd, buffer, pointer, length) != nil
                }
            }
        }
    }

    /// Waits until a datagram arrives or `timeout` passes. Returns its length (truncated to the
    /// buffer) and its sender, or nil on timeout.
    public func receive(
        into buffer: UnsafeMutableRawBufferPointer, timeout: Duration
    ) throws(SystemCallError) -> (count: Int, from: SocketAddress)? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let (count, storage) = try Syscall.receiveFrom(fd, into: buffer) {
                return (count, SocketAddress(storage))
            }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            if try Syscall.poll(&fds, deadline: deadline) == 0 { return nil }
        }
    }
}

/// Starts a detached POSIX thread (stack `stackBytes`) for a blocking loop, off Swift's cooperative
/// pool. Throws when the system has no thread to give (EAGAIN).
public func spawnThread(
    stackBytes: Int = 512 << 10, _ body: @escaping @Sendable () -> Void
) throws(SystemCallError) {
    try Syscall.spawnThread(stackBytes: stackBytes, body)
}
