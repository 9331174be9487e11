// The UDP transport: a responder socket on the agent's --listen address that answers other agents'
// probes (and our own loopback ones), with injected faults; one prober socket per source rail that
// sends this agent's probes and gets their replies. A rail's socket is its own: a dead link that
// fills one rail's send buffer (probes queued toward neighbours that never answer ARP) does not
// stop the other rails or the responder.
//
// One I/O thread serves every socket in passes, a tick apart: no thread wakes per datagram, which
// is what a probe costs most here. Times come from the kernel (`SO_TIMESTAMPNS`, when a datagram
// arrived), so a datagram read later in a pass measures the same. The responder tells in each reply
// how long it held the request (its own time, from arrival to answer, not the network's), and the
// prober takes it off the round trip: RTT is the path's, not the responder's scheduling.

import Dispatch
import FleetModel
import Foundation
import Glibc
import Net
import Verbs

/// Where each endpoint answers UDP probes. An endpoint's own entry (`node/rail`) wins over its
/// node's (`node`): all rails of a node usually share the node's one responder.
public struct AddressBook: Hashable, Sendable {
    public var entries: [String: SocketAddress]

    public init(_ entries: [String: SocketAddress] = [:]) { self.entries = entries }

    public func address(of endpoint: EndpointID) -> SocketAddress? {
        entries[endpoint.description] ?? entries[endpoint.node.rawValue]
    }

    /// Adds `other`'s entries over ours: where both name the same key, and where `other` names a
    /// node whose endpoints we name one by one (what it says of the whole node wins).
    public func merging(_ other: AddressBook) -> AddressBook {
        let overridden = Set(other.entries.keys.filter { !$0.contains("/") })
        let kept = entries.filter { key, _ in
            guard let slash = key.firstIndex(of: "/") else { return true }
            return !overridden.contains(String(key[..<slash]))
        }
        return AddressBook(kept.merging(other.entries) { _, new in new })
    }
}

/// What the transport did, for /metrics.
public struct UDPTransportCounters: Hashable, Sendable {
    /// Probes of other agents (and our own loopback) answered, dropped by a fault, held back by an
    /// injected delay, or not answered because too many were held.
    public var answered = 0
    public var faultDrops = 0
    public var delayed = 0
    public var delayQueueFull = 0
    /// Datagrams that were not probes, and replies carrying another session (an earlier run).
    public var malformed = 0
    public var foreignReplies = 0
    public var sendErrors = 0
    public init() {}

    mutating func add(_ other: UDPTransportCounters) {
        answered += other.answered
        faultDrops += other.faultDrops
        delayed += other.delayed
        delayQueueFull += other.delayQueueFull
        malformed += other.malformed
        foreignReplies += other.foreignReplies
        sendErrors += other.sendErrors
    }
}

public final class UDPTransport: ProbeTransport {
    public let kind = Report.Transport.udp
    public let defaultTimeoutNanoseconds: UInt64 = 500_000_000
    public let node: NodeName
    public let session: UInt64
    let responder: UDPSocket
    public let listenAddress: SocketAddress
    private let nodeBytes: [UInt8]
    private let clock = SystemMonotonicClock()
    private let routes: Locked<Routes>
    private let faults: Locked<(plan: FaultPlan, random: SplitMix64)>
    private let state = Locked(UDPTransportCounters())
    private let stopping = Locked(false)
    private let finished = DispatchSemaphore(value: 0)
    /// Whether the I/O thread runs (set by `start`, cleared by the first `stop`).
    private let running = Locked(false)
    private let wake = DispatchSemaphore(value: 0)
    /// The most answers held back by injected delays at once; beyond it a request is not answered
    /// (counted `delayQueueFull`).
    static let maxDelayed = 65_536
    /// The I/O thread's pass interval: what a reply may wait in its socket before it is read (its
    /// RTT is unaffected: the kernel stamped its arrival) and an answer before it is sent.
    static let tickNanoseconds: UInt64 = 5_000_000
    static let receiveBufferBytes: Int32 = 4 << 20

    /// Where probes go and what sends them: the address book, its entries already in the kernel's
    /// form, and the prober socket of each source rail (opened at a rail's first probe).
    private struct Routes {
        var book: AddressBook
        var resolved: [EndpointID: DatagramAddress] = [:]
        var probers: [Int: UDPSocket] = [:]

        mutating func address(of endpoint: EndpointID) -> DatagramAddress? {
            if let address = resolved[endpoint] { return address }
            guard let address = book.address(of: endpoint).map(DatagramAddress.init) else { return nil }
            resolved[endpoint] = address
            return address
        }
    }

    /// An answer held back by an injected delay, until `due` (the request's arrival plus the delay).
    struct HeldAnswer {
        var due: UInt64
        var bytes: [UInt8]
        var to: DatagramAddress
    }

    /// Binds `listen` now (an error names the address), so a misconfigured agent fails at start.
    public init(node: NodeName, listen: SocketAddress, addresses: AddressBook, faults: FaultPlan) throws {
        self.node = node
        nodeBytes = Array(node.rawValue.utf8.prefix(ProbePacket.maxNameBytes))
        do {
            responder = try UDPSocket.bound(to: listen, receiveBufferBytes: Self.receiveBufferBytes)
            listenAddress = try responder.localAddress()
        } catch {
            throw AgentError("cannot bind UDP \(listen): \(error)")
        }
        var generator = SystemRandomNumberGenerator()
        session = generator.next()
        routes = Locked(Routes(book: addresses))
        self.faults = Locked((faults, SplitMix64(seed: faults.seed ?? generator.next())))
    }

    public var counters: UDPTransportCounters { state.withLock { $0 } }

    public func setAddresses(_ book: AddressBook) {
        routes.withLock {
            $0.book = book
            $0.resolved = [:]
        }
    }

    public func setFaults(_ plan: FaultPlan) {
        faults.withLock { $0 = (plan, SplitMix64(seed: plan.seed ?? $0.random.next())) }
    }

    /// `onSendFailed` is never called: a UDP send fails at once, in `send`'s result.
    public func start(
        onReply: @escaping @Sendable (ProbeReply) -> Void,
        onSendFailed: @escaping @Sendable (ProbeOrder, String) -> Void
    ) throws {
        do {
            try spawnThread { [self] in
                ioLoop(onReply)
                finished.signal()
            }
        } catch {
            throw AgentError("cannot start the UDP transport's thread: \(error)")
        }
        running.withLock { $0 = true }
    }

    public func send(_ order: ProbeOrder) -> ProbeSendResult {
        let route = routes.withLock { routes -> Result<(UDPSocket, DatagramAddress), AgentError> in
            guard let address = routes.address(of: order.target.dst) else {
                return .failure(AgentError("no address for \(order.target.dst)"))
            }
            let rail = order.target.src.rail
            if let prober = routes.probers[rail] { return .success((prober, address)) }
            do {
                let prober = try UDPSocket.bound(
                    to: try SocketAddress(host: listenAddress.host, port: 0),
                    receiveBufferBytes: Self.receiveBufferBytes)
                routes.probers[rail] = prober
                return .success((prober, address))
            } catch {
                return .failure(AgentError("cannot open rail \(rail)'s UDP socket on \(listenAddress.host): \(error)"))
            }
        }
        let (prober, address): (UDPSocket, DatagramAddress)
        switch route {
        case .success(let route): (prober, address) = route
        case .failure(let error): return .failed(error.description)
        }
        return withUnsafeTemporaryAllocation(byteCount: ProbePacket.maxBytes, alignment: 8) { buffer in
            let count = nodeBytes.withUnsafeBytes { name in
                ProbePacket.encode(
                    kind: .request, srcRail: UInt8(order.target.src.rail), dstRail: UInt8(order.target.dst.rail),
                    session: session, sequence: order.sequence, sendTime: clock.nanoseconds, srcNode: name,
                    into: buffer)
            }
            do {
                return try prober.send(UnsafeRawBufferPointer(rebasing: buffer[..<count]), to: address)
                    ? .sent : .failed("sendto: socket buffer full")
            } catch {
                return .failed("\(error)")
            }
        }
    }

    /// Stops the I/O thread and waits for it; nothing to wait for when it never started or has
    /// already stopped.
    public func stop() {
        stopping.withLock { $0 = true }
        wake.signal()
        let wasRunning = running.withLock { running -> Bool in
            defer { running = false }
            return running
        }
        if wasRunning { finished.wait() }
    }

    // MARK: The I/O thread

    /// Pass after pass until stopped: answer the requests that came in, send the held answers now
    /// due, read every rail's replies; then sleep a tick (less when a held answer is due sooner).
    private func ioLoop(_ onReply: (ProbeReply) -> Void) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { buffer.deallocate() }
        var held: [HeldAnswer] = []
        var counts = UDPTransportCounters()
        while !stopping.withLock({ $0 }) {
            let probers = routes.withLock { Array($0.probers.values) }
            let ready = UDPSocket.readable([responder] + probers)
            let clocks = ClockPair()
            if ready.first === responder { answerRequests(buffer, clocks, &held, &counts) }
            sendHeldAnswers(&held, &counts)
            for prober in ready where prober !== responder {
                readReplies(from: prober, buffer, clocks, onReply, &counts)
            }
            if counts != UDPTransportCounters() {
                state.withLock { $0.add(counts) }
                counts = UDPTransportCounters()
            }
            let now = clock.nanoseconds
            let wait = min(Self.tickNanoseconds, held.first.map { $0.due > now ? $0.due - now : 0 } ?? .max)
            _ = wake.wait(timeout: .now() + .nanoseconds(Int(wait)))
        }
    }

    /// Every datagram queued on the responder: answered now, held for an injected delay, or dropped.
    private func answerRequests(
        _ buffer: UnsafeMutableRawBufferPointer, _ clocks: ClockPair, _ held: inout [HeldAnswer],
        _ counts: inout UDPTransportCounters
    ) {
        while let received = try? responder.receive(into: buffer) {
            let bytes = UnsafeMutableRawBufferPointer(rebasing: buffer[..<min(received.count, buffer.count)])
            guard let request = ProbeDatagram(UnsafeRawBufferPointer(bytes)), request.kind == .request else {
                counts.malformed += 1
                continue
            }
            let arrived = clocks.monotonic(ofKernelTime: received.kernelTime)
            let fate = faults.withLock { faults -> FaultPlan.Fate in
                guard !faults.plan.rules.isEmpty else { return .answer(delayNanoseconds: 0) }
                return faults.plan.fate(
                    rail: Int(request.dstRail), peerNode: request.srcNode, peerRail: Int(request.srcRail),
                    unit: faults.random.nextUnit())
            }
            switch fate {
            case .drop:
                counts.faultDrops += 1
            case .answer(let delay) where delay == 0:
                let now = clock.nanoseconds
                ProbeDatagram.makeReply(bytes, hold: now > arrived ? now - arrived : 0)
                sendAnswer(UnsafeRawBufferPointer(bytes), to: received.from, &counts)
            case .answer(let delay):
                guard held.count < Self.maxDelayed else {
                    counts.delayQueueFull += 1
                    continue
                }
                let answer = HeldAnswer(due: arrived + delay, bytes: Array(bytes), to: received.from)
                // Mostly appended in order (one delay per rule): insert from the back.
                var index = held.count
                while index > 0, held[index - 1].due > answer.due { index -= 1 }
                held.insert(answer, at: index)
                counts.delayed += 1
            }
        }
    }

    /// Held answers whose delay is over. The hold they report leaves the injected delay in the RTT
    /// (it stands for a slow path) and takes out only how late this pass sends them.
    private func sendHeldAnswers(_ held: inout [HeldAnswer], _ counts: inout UDPTransportCounters) {
        var sent = 0
        while sent < held.count {
            let now = clock.nanoseconds
            guard held[sent].due <= now else { break }
            let answer = held[sent]
            let late = now - answer.due
            var bytes = answer.bytes
            bytes.withUnsafeMutableBytes { bytes in
                ProbeDatagram.makeReply(bytes, hold: late)
                sendAnswer(UnsafeRawBufferPointer(bytes), to: answer.to, &counts)
            }
            sent += 1
        }
        held.removeFirst(sent)
    }

    private func sendAnswer(
        _ bytes: UnsafeRawBufferPointer, to address: DatagramAddress, _ counts: inout UDPTransportCounters
    ) {
        if (try? responder.send(bytes, to: address)) == true {
            counts.answered += 1
        } else {
            counts.sendErrors += 1
        }
    }

    /// Every datagram queued on a prober socket: replies to our probes go to the scheduler.
    private func readReplies(
        from prober: UDPSocket, _ buffer: UnsafeMutableRawBufferPointer, _ clocks: ClockPair,
        _ onReply: (ProbeReply) -> Void, _ counts: inout UDPTransportCounters
    ) {
        while let received = try? prober.receive(into: buffer) {
            let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<min(received.count, buffer.count)])
            guard let reply = ProbeDatagram(bytes), reply.kind == .reply else {
                counts.malformed += 1
                continue
            }
            guard reply.session == session else {
                counts.foreignReplies += 1
                continue
            }
            onReply(
                ProbeReply(
                    sequence: reply.sequence, sentAt: reply.sendTime,
                    receivedAt: clocks.monotonic(ofKernelTime: received.kernelTime), responderHold: reply.hold))
        }
    }
}

/// CLOCK_REALTIME and CLOCK_MONOTONIC read together once per pass, to turn the kernel's receive
/// times (realtime) into monotonic ones: within a pass the two clocks move together (NTP slews by at
/// most 500 ppm: under 3 µs over a tick).
struct ClockPair {
    let realtime: Int64
    let monotonic: Int64

    init() {
        var real = timespec()
        var mono = timespec()
        clock_gettime(CLOCK_REALTIME, &real)
        clock_gettime(CLOCK_MONOTONIC, &mono)
        realtime = Int64(real.tv_sec) * 1_000_000_000 + Int64(real.tv_nsec)
        monotonic = Int64(mono.tv_sec) * 1_000_000_000 + Int64(mono.tv_nsec)
    }

    /// The monotonic time of a kernel receive time (before or after this pair was read: a datagram
    /// may come in during the pass). Without one, or when it is more than a second off (the wall
    /// clock stepped), the monotonic clock now.
    func monotonic(ofKernelTime kernelTime: Int64?) -> UInt64 {
        if let kernelTime, abs(kernelTime - realtime) < 1_000_000_000, monotonic + kernelTime - realtime >= 0 {
            return UInt64(monotonic + kernelTime - realtime)
        }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
