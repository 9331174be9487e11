// The syscall layer: every C call Net makes on sockets and pipes goes through here, retried on EINTR in
// one place, with failures thrown as `SystemCallError` (the errno and the C function's name).

@preconcurrency import Glibc
import Synchronization

/// Held while a descriptor exists without close-on-exec (between `pipe` or `accept` and their
/// `fcntl`; Glibc's Swift module exports neither pipe2 nor accept4) and while a program is spawned:
/// a child started on another thread in that instant would inherit the descriptor, and a pipe's
/// reader would then wait for that child, not only for ours.
let descriptorCreation = Mutex<Void>(())

/// An `errno` value, as the C library reported it.
public struct Errno: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let interrupted = Errno(rawValue: EINTR)
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let addressInUse = Errno(rawValue: EADDRINUSE)
    public static let connectionRefused = Errno(rawValue: ECONNREFUSED)
    public static let connectionReset = Errno(rawValue: ECONNRESET)
    public static let brokenPipe = Errno(rawValue: EPIPE)
    public static let tooManyOpenFiles = Errno(rawValue: EMFILE)
    public static let inProgress = Errno(rawValue: EINPROGRESS)

    /// `strerror` text, e.g. "Connection refused".
    public var description: String { String(cString: strerror(rawValue)) }
}

/// A failed system call: which C function, and the errno it left.
public struct SystemCallError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The C function, e.g. `"accept4"`.
    public let call: String
    public let errno: Errno

    public init(_ call: String, _ errno: Errno) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(errno) (errno \(errno.rawValue))" }

    /// `case .connectionRefused` in a `catch` or `switch` over an error.
    public static func ~= (errno: Errno, error: SystemCallError) -> Bool { error.errno == errno }
}

/// The raw calls. Internal: the typed API is `Socket`, `WakePipe`, `HTTPServer` and `HTTPClient`.
enum Syscall {
    /// Runs `body`, which can only throw `SystemCallError` but whose type says `any Error` (Array's
    /// `withUnsafeBytes` rethrows untyped), and throws that error typed.
    @inline(__always)
    static func typed<Result>(_ body: () throws -> Result) throws(SystemCallError) -> Result {
        do { return try body() } catch let error as SystemCallError { throw error } catch {
            preconditionFailure("only SystemCallError is thrown here, not \(error)")
        }
    }

    /// Runs `body` until it does not fail with EINTR; -1 becomes a `SystemCallError` named `call`.
    @inline(__always)
    static func retryingOnInterrupt<Result: FixedWidthInteger>(
        _ call: String, _ body: () -> Result
    ) throws(SystemCallError) -> Result {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw SystemCallError(call, Errno(rawValue: code))
        }
    }

    static func socket(family: Int32, type: Int32) throws(SystemCallError) -> Int32 {
        try retryingOnInterrupt("socket") { Glibc.socket(family, type | Int32(SOCK_CLOEXEC.rawValue), 0) }
    }

    static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32) throws(SystemCallError) {
        var value = value
        _ = try retryingOnInterrupt("setsockopt") {
            Glibc.setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    static func bind(
        _ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t
    ) throws(SystemCallError) {
        _ = try retryingOnInterrupt("bind") { Glibc.bind(fd, address, length) }
    }

    static func listen(_ fd: Int32, backlog: Int32) throws(SystemCallError) {
        _ = try retryingOnInterrupt("listen") { Glibc.listen(fd, backlog) }
    }

    /// `accept`, then close-on-exec set with `fcntl` (Glibc's Swift module does not export
    /// `accept4`, a GNU extension); the peer address is not asked for. The listener is
    /// non-blocking, so holding `descriptorCreation` meanwhile keeps a spawn out of the gap.
    static func accept(_ fd: Int32) throws(SystemCallError) -> Int32 {
        let accepted = descriptorCreation.withLock { _ -> Result<Int32, SystemCallError> in
            Result { () throws(SystemCallError) in
                let connection = try retryingOnInterrupt("accept") { Glibc.accept(fd, nil, nil) }
                _ = Glibc.fcntl(connection, F_SETFD, FD_CLOEXEC)
                return connection
            }
        }
        return try accepted.get()
    }

    /// `connect` on a non-blocking socket, waiting with poll until `deadline` (then ETIMEDOUT).
    /// EINTR is not retried by calling again (that would fail with EALREADY): the connect goes on in
    /// the background and is waited for like EINPROGRESS.
    static func connect(
        _ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t,
        deadline: ContinuousClock.Instant?
    ) throws(SystemCallError) {
        _ = Glibc.fcntl(fd, F_SETFL, Glibc.fcntl(fd, F_GETFL) | O_NONBLOCK)
        if Glibc.connect(fd, address, length) == 0 { return }
        let code = Glibc.errno
        if code == EINTR || code == EINPROGRESS {
            var pfd = [pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)]
            if try poll(&pfd, deadline: deadline) == 0 {
                throw SystemCallError("connect", Errno(rawValue: ETIMEDOUT))
            }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = try retryingOnInterrupt("getsockopt") {
                Glibc.getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            }
            if error != 0 { throw SystemCallError("connect", Errno(rawValue: error)) }
            return
        }
        throw SystemCallError("connect", Errno(rawValue: code))
    }

    static func localAddress(_ fd: Int32) throws(SystemCallError) -> sockaddr_storage {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try withUnsafeMutablePointer(to: &storage) { (pointer) throws(SystemCallError) -> Int32 in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                (address) throws(SystemCallError) in
                try retryingOnInterrupt("getsockname") { Glibc.getsockname(fd, address, &length) }
            }
        }
        return storage
    }

    /// `poll` until one descriptor is ready or `deadline` passes (nil: no deadline). Returns the
    /// number of ready descriptors, 0 on timeout. An interrupted poll waits again for what is left.
    static func poll(_ fds: inout [pollfd], deadline: ContinuousClock.Instant?) throws(SystemCallError) -> Int
    {
        while true {
            let timeout = milliseconds(until: deadline)
            let result = fds.withUnsafeMutableBufferPointer { buffer in
                Glibc.poll(buffer.baseAddress, nfds_t(buffer.count), timeout)
            }
            if result >= 0 { return Int(result) }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw SystemCallError("poll", Errno(rawValue: code))
        }
    }

    /// poll's timeout argument for a deadline: -1 for none, rounded up so we never wake early.
    static func milliseconds(until deadline: ContinuousClock.Instant?) -> Int32 {
        guard let deadline else { return -1 }
        let left = ContinuousClock.now.duration(to: deadline)
        if left <= .zero { return 0 }
        let (seconds, attoseconds) = left.components
        let millis = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: millis)
    }

    /// `recv` with `MSG_DONTWAIT`: the number of bytes read, 0 at end of stream, nil when nothing is
    /// there yet (EAGAIN).
    static func receive(
        _ fd: Int32, into buffer: UnsafeMutableRawBufferPointer
    ) throws(SystemCallError) -> Int? {
        do {
            return try retryingOnInterrupt("recv") {
                Glibc.recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            }
        } catch  where error.errno == .wouldBlock {
            return nil
        }
    }

    /// `send` with `MSG_DONTWAIT | MSG_NOSIGNAL` (a closed peer is EPIPE, never SIGPIPE): bytes
    /// written, nil when the socket buffer is full (EAGAIN).
    static func send(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(SystemCallError) -> Int? {
        do {
            return try retryingOnInterrupt("send") {
                Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
            }
        } catch  where error.errno == .wouldBlock {
            return nil
        }
    }

    /// `sendto` with `MSG_DONTWAIT | MSG_NOSIGNAL`: bytes written, nil when the socket buffer is full
    /// (EAGAIN).
    static func sendTo(
        _ fd: Int32, _ buffer: UnsafeRawBufferPointer, _ address: UnsafePointer<sockaddr>, _ length: socklen_t
    ) throws(SystemCallError) -> Int? {
        do {
            return try retryingOnInterrupt("sendto") {
                Glibc.sendto(
                    fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), address,
                    length)
            }
        } catch  where error.errno == .wouldBlock {
            return nil
        }
    }

    /// `recvmsg` with `MSG_DONTWAIT`: the datagram's length, its sender and the time the kernel
    /// received it (`SO_TIMESTAMPNS`, CLOCK_REALTIME ns; nil when the socket does not ask for it);
    /// nil when none is queued.
    static func receiveMessage(
        _ fd: Int32, into buffer: UnsafeMutableRawBufferPointer
    ) throws(SystemCallError) -> (count: Int, from: DatagramAddress, kernelTime: Int64?)? {
        var sender = DatagramAddress()
        var vector = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
        let controlBytes = 64
        return try withUnsafeTemporaryAllocation(byteCount: controlBytes, alignment: 8) {
            (control) throws(SystemCallError) -> (count: Int, from: DatagramAddress, kernelTime: Int64?)? in
            let result = try sender.withMutableSockaddr {
                (address, length) throws(SystemCallError) -> (count: Int, controlLength: Int)? in
                try withUnsafeMutablePointer(to: &vector) { (vector) throws(SystemCallError) in
                    var message = msghdr(
                        msg_name: UnsafeMutableRawPointer(address), msg_namelen: length.pointee, msg_iov: vector,
                        msg_iovlen: 1, msg_control: control.baseAddress, msg_controllen: controlBytes, msg_flags: 0)
                    do throws(SystemCallError) {
                        let count = try retryingOnInterrupt("recvmsg") {
                            Glibc.recvmsg(fd, &message, Int32(MSG_DONTWAIT))
                        }
                        length.pointee = message.msg_namelen
                        return (count, message.msg_controllen)
                    } catch where error.errno == .wouldBlock {
                        return nil
                    }
                }
            }
            guard let result else { return nil }
            return (result.count, sender, kernelTime(in: UnsafeRawBufferPointer(rebasing: control[..<result.controlLength])))
        }
    }

    /// `SCM_TIMESTAMPNS` (= `SO_TIMESTAMPNS_OLD` on 64-bit Linux: a `timespec`) from a control
    /// buffer, walked as the `CMSG_*` macros do: `cmsghdr` (length, level, type), data, padding to 8.
    static func kernelTime(in control: UnsafeRawBufferPointer) -> Int64? {
        let header = MemoryLayout<cmsghdr>.size
        var offset = 0
        while offset + header <= control.count {
            let entry = control.loadUnaligned(fromByteOffset: offset, as: cmsghdr.self)
            let length = Int(entry.cmsg_len)
            guard length >= header, offset + length <= control.count else { return nil }
            if entry.cmsg_level == SOL_SOCKET, entry.cmsg_type == SO_TIMESTAMPNS_OLD,
                length >= header + MemoryLayout<timespec>.size
            {
                let time = control.loadUnaligned(fromByteOffset: offset + header, as: timespec.self)
                return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
            }
            offset += (length + 7) & ~7
        }
        return nil
    }

    static func shutdown(_ fd: Int32, _ how: Int32) {
        // ENOTCONN when the peer is already gone: nothing to do then.
        _ = Glibc.shutdown(fd, how)
    }

    /// A pipe, both ends close-on-exec and non-blocking, and numbered 3 or more: a process started
    /// with 0, 1 or 2 closed would otherwise get them as pipe ends, and a child's standard streams
    /// would be laid over them.
    static func pipe() throws(SystemCallError) -> (read: Int32, write: Int32) {
        let made = descriptorCreation.withLock { _ -> Result<(Int32, Int32), SystemCallError> in
            Result { () throws(SystemCallError) in
                var fds: [Int32] = [-1, -1]
                // pipe2 is a GNU extension Glibc's Swift module does not export: pipe, then fcntl.
                _ = try retryingOnInterrupt("pipe") { Glibc.pipe(&fds) }
                for index in fds.indices {
                    if fds[index] < 3 {
                        let moved = Glibc.fcntl(fds[index], F_DUPFD_CLOEXEC, 3)
                        _ = Glibc.close(fds[index])
                        fds[index] = moved
                    }
                }
                guard fds.allSatisfy({ $0 >= 0 }) else {
                    let error = SystemCallError("fcntl F_DUPFD_CLOEXEC", Errno(rawValue: errno))
                    for fd in fds where fd >= 0 { _ = Glibc.close(fd) }
                    throw error
                }
                for fd in fds {
                    _ = Glibc.fcntl(fd, F_SETFD, FD_CLOEXEC)
                    _ = Glibc.fcntl(fd, F_SETFL, Glibc.fcntl(fd, F_GETFL) | O_NONBLOCK)
                }
                return (fds[0], fds[1])
            }
        }
        let fds = try made.get()
        return (fds.0, fds.1)
    }

    static func write(_ fd: Int32, _ byte: UInt8) {
        var byte = byte
        _ = try? retryingOnInterrupt("write") { Glibc.write(fd, &byte, 1) }
    }

    /// Starts a detached POSIX thread with a stack of `stackBytes` running `body`. Unlike Foundation's
    /// `Thread`, a failure (EAGAIN when out of threads or memory) is an error the caller can answer.
    static func spawnThread(stackBytes: Int, _ body: @escaping @Sendable () -> Void) throws(SystemCallError) {
        final class Body {
            let run: @Sendable () -> Void
            init(_ run: @escaping @Sendable () -> Void) { self.run = run }
        }
        let attributes = UnsafeMutablePointer<pthread_attr_t>.allocate(capacity: 1)
        pthread_attr_init(attributes)
        defer {
            pthread_attr_destroy(attributes)
            attributes.deallocate()
        }
        pthread_attr_setdetachstate(attributes, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(attributes, max(stackBytes, Int(PTHREAD_STACK_MIN)))
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread: pthread_t = 0
        let result = pthread_create(
            &thread, attributes,
            { context in
                Unmanaged<Body>.fromOpaque(context!).takeRetainedValue().run()
                return nil
            }, context)
        if result != 0 {
            Unmanaged<Body>.fromOpaque(context).release()
            throw SystemCallError("pthread_create", Errno(rawValue: result))
        }
    }

    /// `close` is not retried on EINTR: Linux releases the descriptor whatever close returns, and a
    /// second close could close a descriptor another thread has just been given.
    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }
}
