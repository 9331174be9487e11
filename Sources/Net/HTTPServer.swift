// The HTTP/1.1 server: an accept thread, one thread per admitted connection (up to the cap), poll-based
// read, idle and write timeouts, over-cap and full-queue 503s, graceful stop, and counters. See
// docs/service.md, "Threads and connections".

import Dispatch
import Foundation
@preconcurrency import Glibc
import Synchronization

/// A small hardened HTTP/1.1 server on POSIX sockets and threads.
///
/// Threads: `start()` binds and spawns one accept thread; each admitted connection gets its own
/// thread, which reads, parses, runs the handler (or hands it to a `WorkQueue`) and writes, one
/// request at a time. Nothing here runs on Swift concurrency's cooperative pool.
public final class HTTPServer: Sendable {
    /// Every limit, with its default. Tests set them small.
    public struct Limits: Sendable, Hashable {
        /// Request line plus headers, CRLFs included. Over it: 431.
        public var maxHeaderBytes = 16 * 1024
        /// Header fields in one request. Over it: 431.
        public var maxHeaderCount = 100
        /// Content-Length of one body. Over it: 413, answered before any of the body is read.
        public var maxBodyBytes = 8 << 20
        /// Open connections. Past it a connection is accepted, answered 503 and closed (counted).
        public var maxConnections = 256
        /// Time for one whole request (head and body) to arrive once its first byte has; then 408 and
        /// close. This, not a per-read timeout, is what stops slowloris clients that trickle bytes.
        public var readTimeout: Duration = .seconds(15)
        /// Time a keep-alive connection may wait for the first byte of its next request.
        public var idleTimeout: Duration = .seconds(30)
        /// Time to write one response into a client that does not read.
        public var writeTimeout: Duration = .seconds(15)
        /// After an error answer, how long the server reads and drops what the client still sends
        /// before closing, so the answer is not lost to a TCP reset.
        public var lingerTimeout: Duration = .seconds(1)

        public init() {}
    }

    /// Everything a server is started with.
    public struct Configuration: Sendable {
        /// Where to listen; `127.0.0.1:0` (loopback, kernel-chosen port) by default.
        public var address: SocketAddress
        public var limits: Limits
        /// Whether responses carry a `Date` header (tests turn it off for stable bytes).
        public var sendsDate: Bool
        /// Stack size of each connection thread.
        public var threadStackBytes: Int

        public init(
            address: SocketAddress = .defaultListen, limits: Limits = Limits(), sendsDate: Bool = true,
            threadStackBytes: Int = 512 * 1024
        ) {
            self.address = address
            self.limits = limits
            self.sendsDate = sendsDate
            self.threadStackBytes = threadStackBytes
        }
    }

    /// Counters since start, as one consistent snapshot (for /metrics).
    public struct Counters: Sendable, Hashable {
        /// Connections admitted under the cap.
        public var connectionsAccepted = 0
        /// Connections over the cap (answered 503 and closed), or refused while stopping.
        public var connectionsRejected = 0
        /// Connections open now.
        public var connectionsOpen = 0
        /// Responses written, by status.
        public var responsesByStatus: [Int: Int] = [:]
        public var bytesIn = 0
        public var bytesOut = 0
        /// Requests not complete within the read timeout (answered 408).
        public var readTimeouts = 0
        /// Keep-alive connections closed after the idle timeout.
        public var idleTimeouts = 0
        /// Responses the client did not take within the write timeout.
        public var writeTimeouts = 0
        /// Requests refused by the parser (400, 411, 413, 431, 501, 505).
        public var parseErrors = 0
        /// Requests answered 503 because their work queue was full.
        public var queueRejections = 0
        /// Handlers that threw something other than `HTTPError` (answered 500).
        public var handlerErrors = 0
        /// accept or connection I/O failures (resets and the like).
        public var ioErrors = 0

        public init() {}
    }

    private enum Phase { case created, running, stopping, stopped }

    private struct State {
        var phase = Phase.created
        var boundAddress: SocketAddress?
        var counters = Counters()
    }

    public let configuration: Configuration
    private let router: Router
    private let state = Locked(State())
    private let threads = DispatchGroup()
    private let wake: WakePipe

    public init(configuration: Configuration = Configuration(), router: Router) throws(SystemCallError) {
        self.configuration = configuration
        self.router = router
        self.wake = try WakePipe()
    }

    /// The address the server listens on, with the kernel's port when port 0 was asked for.
    public var boundAddress: SocketAddress? { state.withLock { $0.boundAddress } }

    /// A snapshot of the counters.
    public var counters: Counters { state.withLock { $0.counters } }

    /// Binds, listens and starts the accept thread. Returns the bound address.
    @discardableResult
    public func start() throws(SystemCallError) -> SocketAddress {
        precondition(state.withLock { $0.phase } == .created, "an HTTPServer starts once")
        let listener = try Socket.listening(on: configuration.address)
        let address = try listener.localAddress()
        state.withLock {
            $0.phase = .running
            $0.boundAddress = address
        }
        let handoff = Handoff(listener)
        threads.enter()
        do {
            try Syscall.spawnThread(stackBytes: configuration.threadStackBytes) { [self] in
                acceptLoop(handoff.take())  // the listener closes as this statement ends
                threads.leave()
            }
        } catch {
            threads.leave()
            state.withLock { $0.phase = .stopped }
            throw error
        }
        return address
    }

    /// Graceful stop: no new connections; requests already arriving or running finish and are
    /// answered with `Connection: close`; idle keep-alive connections close now. Returns when every
    /// server thread has ended.
    public func stop() {
        let wasStarted = state.withLock { state -> Bool in
            switch state.phase {
            case .created, .stopped:
                state.phase = .stopped
                return false
            case .running, .stopping:
                state.phase = .stopping
                return true
            }
        }
        guard wasStarted else { return }
        wake.fire()
        threads.wait()
        state.withLock { $0.phase = .stopped }
    }

    private var isStopping: Bool { state.withLock { $0.phase != .running } }

    private func count(_ update: (inout Counters) -> Void) { state.withLock { update(&$0.counters) } }

    // MARK: accepting

    private func acceptLoop(_ listener: Socket) {
        let limits = configuration.limits
        while true {
            var fds = [
                pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wake.readFD, events: Int16(POLLIN), revents: 0),
            ]
            do { _ = try Syscall.poll(&fds, deadline: nil) } catch { return }
            if fds[1].revents != 0 { return }  // stopping: the listener closes as this thread ends
            let fd: Int32
            do {
                fd = try Syscall.accept(listener.fd)
            } catch {
                switch error.errno.rawValue {
                case EAGAIN, ECONNABORTED, EPROTO: continue
                default:
                    // Out of descriptors or memory: back off instead of spinning on a full queue.
                    count { $0.ioErrors += 1 }
                    usleep(50_000)
                    continue
                }
            }
            let connection = Socket(adopting: fd)
            let admitted = state.withLock { state -> Bool in
                guard state.phase == .running, state.counters.connectionsOpen < limits.maxConnections else {
                    state.counters.connectionsRejected += 1
                    return false
                }
                state.counters.connectionsAccepted += 1
                state.counters.connectionsOpen += 1
                return true
            }
            guard admitted else {
                reject(connection)
                continue
            }
            let handoff = Handoff(connection)
            threads.enter()
            do {
                try Syscall.spawnThread(stackBytes: configuration.threadStackBytes) { [self] in
                    serve(handoff.take())  // the connection closes as this statement ends
                    count { $0.connectionsOpen -= 1 }
                    threads.leave()
                }
            } catch {
                // No thread to be had: answered like a connection over the cap.
                threads.leave()
                count {
                    $0.connectionsOpen -= 1
                    $0.connectionsAccepted -= 1
                    $0.connectionsRejected += 1
                    $0.ioErrors += 1
                }
                reject(handoff.take())
            }
        }
    }

    /// Answers 503 and closes, on the accept thread, which must never wait: what fits in the socket
    /// buffer (all of it, it is small), then FIN; the descriptor closes as `connection` goes.
    private func reject(_ connection: Socket) {
        let busy = HTTPResponse.error(HTTPError(503, "too many connections", headers: ["Retry-After": "1"]))
        count { $0.responsesByStatus[503, default: 0] += 1 }
        connection.writeWithoutWaiting(busy.serialized(connection: "close"))
        connection.shutdownWrite()
    }

    // MARK: one connection

    private func serve(_ socket: Socket) {
        do {
            try converse(socket)
        } catch {
            count { $0.ioErrors += 1 }
        }
    }

    /// Requests and responses on one connection until it closes.
    private func converse(_ socket: Socket) throws(SystemCallError) {
        socket.setNoDelay()
        let limits = configuration.limits
        var parser = HTTPRequestParser(limits: limits)
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var requestDeadline: ContinuousClock.Instant?
        var sentContinue = false
        while true {
            switch parser.next() {
            case .request(let request):
                requestDeadline = nil
                sentContinue = false
                let response = respond(to: request)
                // Decided after the handler: a stop that began meanwhile closes this connection.
                let keepAlive = request.keepAlive && !isStopping
                let connection = keepAlive ? (request.version == .http10 ? "keep-alive" : nil) : "close"
                guard try send(response, connection: connection, head: request.method == "HEAD", on: socket)
                else {
                    return
                }
                if !keepAlive {
                    socket.shutdownWrite()
                    return
                }
                continue
            case .failed(let error):
                count { $0.parseErrors += 1 }
                _ = try send(.error(error), connection: "close", head: false, on: socket)
                try lingeringClose(socket)
                return
            case .needMore:
                break
            }

            if let head = parser.headAwaitingBody, !sentContinue, head.version == .http11,
                head.headers.tokens("Expect").contains("100-continue")
            {
                sentContinue = true
                guard
                    try socket.writeAll(
                        Array("HTTP/1.1 100 Continue\r\n\r\n".utf8), until: .now + limits.writeTimeout)
                else { return }
            }

            let atBoundary = parser.isAtRequestBoundary
            let deadline: ContinuousClock.Instant
            if atBoundary {
                if wake.hasFired { return }  // stopping: an idle connection just closes
                deadline = .now + limits.idleTimeout
            } else {
                if requestDeadline == nil { requestDeadline = .now + limits.readTimeout }
                deadline = requestDeadline!
            }
            // Mid-request the wake pipe is not watched: a request that is arriving gets finished.
            switch try socket.waitReadable(until: deadline, wake: atBoundary ? wake : nil) {
            case .woken:
                return
            case .timedOut:
                if atBoundary {
                    count { $0.idleTimeouts += 1 }
                } else {
                    count { $0.readTimeouts += 1 }
                    let error = HTTPError(408, "request not complete within \(limits.readTimeout)")
                    _ = try send(.error(error), connection: "close", head: false, on: socket)
                    try lingeringClose(socket)
                }
                return
            case .ready:
                let read = try Syscall.typed {
                    try buffer.withUnsafeMutableBytes { raw -> Int? in
                        guard let count = try Syscall.receive(socket.fd, into: raw) else { return nil }
                        parser.feed(UnsafeRawBufferPointer(rebasing: raw[..<count]))
                        return count
                    }
                }
                guard let read else { continue }  // woken without data after all
                if read == 0 { return }  // the client closed
                count { $0.bytesIn += read }
            }
        }
    }

    /// Routes and runs the handler; every failure becomes its JSON error response.
    private func respond(to request: HTTPRequest) -> HTTPResponse {
        switch router.resolve(request) {
        case .failed(let error):
            return .error(error)
        case .handler(let routed, let execution, let handler):
            do {
                switch execution {
                case .connectionThread:
                    return try handler(routed)
                case .workQueue(let queue):
                    if let response = try queue.run({ try handler(routed) }) { return response }
                    count { $0.queueRejections += 1 }
                    return .error(
                        HTTPError(
                            503, "busy: work queue full",
                            headers: ["Retry-After": "\(queue.retryAfterSeconds)"]))
                }
            } catch let error as HTTPError {
                return .error(error)
            } catch {
                count { $0.handlerErrors += 1 }
                return .error(500, "internal error")
            }
        }
    }

    /// Writes one response within the write timeout; false (counted) when the client did not take it.
    private func send(
        _ response: HTTPResponse, connection: String?, head: Bool, on socket: Socket
    ) throws(SystemCallError)
        -> Bool
    {
        let bytes = response.serialized(
            connection: connection, date: configuration.sendsDate ? Date() : nil, omitBody: head)
        // Counted before writing, so whoever has read the response sees it counted.
        count { $0.responsesByStatus[response.status, default: 0] += 1 }
        let written = try socket.writeAll(bytes, until: .now + configuration.limits.writeTimeout)
        count { if written { $0.bytesOut += bytes.count } else { $0.writeTimeouts += 1 } }
        return written
    }

    /// After an error answer: FIN, then read and drop what still comes for the linger time, so the
    /// client reads the answer instead of a reset caused by unread data.
    private func lingeringClose(_ socket: Socket) throws(SystemCallError) {
        socket.shutdownWrite()
        let deadline = ContinuousClock.now + configuration.limits.lingerTimeout
        var scratch = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let read = try Syscall.typed {
                try scratch.withUnsafeMutableBytes { raw in try socket.read(into: raw, until: deadline) }
            }
            guard let read, read > 0 else { return }
        }
    }
}
