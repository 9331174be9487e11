// The UDP transport: one socket on the agent's --listen address that sends this agent's probes,
// answers other agents' probes (the responder, with injected faults) and reads the replies to ours.
// A thin owner over Net.UDPSocket: a receive thread and a delay thread, both plain POSIX threads.

import Dispatch
import FleetModel
import Foundation
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

    /// Adds `other`'s entries, replacing ours where both name the same key.
    public func merging(_ other: AddressBook) -> AddressBook {
        AddressBook(entries.merging(other.entries) { _, new in new })
    }
}

/// What the transport did, for /metrics.
public struct UDPTransportCounters: Hashable, Sendable {
    /// Probes of other agents (and our own loopback) answered, dropped by a fault, or not answered
    /// because the delay queue was full.
    public var answered = 0
    public var faultDrops = 0
    public var delayed = 0
    public var delayQueueFull = 0
    /// Datagrams that were not probes, and replies carrying another session (an earlier run).
    public var malformed = 0
    public var foreignReplies = 0
    public var sendErrors = 0
    public init() {}
}

public final class UDPTransport: ProbeTransport {
    public let kind = Report.Transport.udp
    public let defaultTimeoutNanoseconds: UInt64 = 500_000_000
    public let node: NodeName
    public let session: UInt64
    let socket: UDPSocket
    public let listenAddress: SocketAddress
    private let clock = SystemMonotonicClock()
    private let addresses: Locked<AddressBook>
    private let faults: Locked<(plan: FaultPlan, random: SplitMix64)>
    private let state = Locked(UDPTransportCounters())
    private let stopping = Locked(false)
    private let threads = DispatchGroup()
    private let delayQueue = Locked<[DelayedReply]>([])
    private let delayWake = DispatchSemaphore(value: 0)
    static let maxDelayed = 65_536
    static let wakeLatencyNanoseconds: UInt64 = 50_000

    struct DelayedReply: Sendable {
        var due: UInt64
        var bytes: [UInt8]
        var to: SocketAddress
    }

    /// Binds `listen` now (an error names the address), so a misconfigured agent fails at start.
    public init(node: NodeName, listen: SocketAddress, addresses: AddressBook, faults: FaultPlan) throws {
        self.node = node
        do {
            socket = try UDPSocket.bound(to: listen, receiveBufferBytes: 4 << 20)
            listenAddress = try socket.localAddress()
        } catch {
            throw AgentError("cannot bind UDP \(listen): \(error)")
        }
        var generator = SystemRandomNumberGenerator()
        session = generator.next()
        self.addresses = Locked(addresses)
        self.faults = Locked((faults, SplitMix64(seed: faults.seed ?? generator.next())))
    }

    public var counters: UDPTransportCounters { state.withLock { $0 } }

    public func setAddresses(_ book: AddressBook) { addresses.withLock { $0 = book } }

    public func setFaults(_ plan: FaultPlan) {
        faults.withLock { $0 = (plan, SplitMix64(seed: plan.seed ?? $0.random.next())) }
    }

    /// `onSendFailed` is never called: a UDP send fails at once, in `send`'s result.
    public func start(
        onReply: @escaping @Sendable (ProbeReply) -> Void,
        onSendFailed: @escaping @Sendable (ProbeOrder, String) -> Void
    ) throws {
        threads.enter()
        do {
            try spawnThread { [self] in
                receiveLoop(onReply)
                threads.leave()
            }
        } catch {
            threads.leave()
            throw AgentError("cannot start the UDP receive thread: \(error)")
        }
        threads.enter()
        do {
            try spawnThread { [self] in
                delayLoop()
                threads.leave()
            }
        } catch {
            threads.leave()
            throw AgentError("cannot start the UDP delay thread: \(error)")
        }
    }

    public func send(_ order: ProbeOrder) -> ProbeSendResult {
        guard let address = addresses.withLock({ $0.address(of: order.target.dst) }) else {
            return .failed("no address for \(order.target.dst)")
        }
        let packet = ProbePacket(
            kind: .request, srcRail: UInt8(order.target.src.rail), dstRail: UInt8(order.target.dst.rail),
            session: session, sequence: order.sequence, sendTime: clock.nanoseconds, srcNode: node.rawValue)
        do {
            return try socket.send(packet.bytes, to: address) ? .sent : .failed("sendto: socket buffer full")
        } catch {
            return .failed("\(error)")
        }
    }

    public func stop() {
        stopping.withLock { $0 = true }
        delayWake.signal()
        threads.wait()
    }

    private var isStopping: Bool { stopping.withLock { $0 } }

    private func receiveLoop(_ onReply: @Sendable (ProbeReply) -> Void) {
        var buffer = [UInt8](repeating: 0, count: 256)
        while !isStopping {
            let received: (count: Int, from: SocketAddress)?
            do {
                received = try buffer.withUnsafeMutableBytes { raw in
                    try socket.receive(into: raw, timeout: .milliseconds(100))
                }
            } catch {
                // Nothing a datagram socket returns here is fatal (ECONNREFUSED from an ICMP): go on.
                continue
            }
            guard let received else { continue }
            let now = clock.nanoseconds
            guard var packet = ProbePacket(buffer[0..<min(received.count, buffer.count)]) else {
                state.withLock { $0.malformed += 1 }
                continue
            }
            switch packet.kind {
            case .reply:
                guard packet.session == session else {
                    state.withLock { $0.foreignReplies += 1 }
                    continue
                }
                onReply(ProbeReply(sequence: packet.sequence, sentAt: packet.sendTime, receivedAt: now))
            case .request:
                let fate = faults.withLock { faults in
                    faults.plan.fate(
                        rail: Int(packet.dstRail), peerNode: packet.srcNode, peerRail: Int(packet.srcRail),
                        unit: faults.plan.rules.isEmpty ? 1 : faults.random.nextUnit())
                }
                packet.kind = .reply
                switch fate {
                case .drop:
                    state.withLock { $0.faultDrops += 1 }
                case .answer(let delay) where delay == 0:
                    answer(packet.bytes, to: received.from)
                case .answer(let delay):
                    let item = DelayedReply(due: now + delay, bytes: packet.bytes, to: received.from)
                    let queued = delayQueue.withLock { queue -> Bool in
                        guard queue.count < Self.maxDelayed else { return false }
                        // Mostly appended in order (one delay per rule): insert from the back.
                        var index = queue.count
                        while index > 0, queue[index - 1].due > item.due { index -= 1 }
                        queue.insert(item, at: index)
                        return true
                    }
                    state.withLock {
                        if queued { $0.delayed += 1 } else { $0.delayQueueFull += 1 }
                    }
                    if queued { delayWake.signal() }
                }
            }
        }
    }

    private func answer(_ bytes: [UInt8], to address: SocketAddress) {
        let sent = (try? socket.send(bytes, to: address)) ?? false
        state.withLock {
            if sent { $0.answered += 1 } else { $0.sendErrors += 1 }
        }
    }

    /// Sends delayed replies when they are due; sleeps on a semaphore until the earliest is due or a
    /// new one arrives.
    private func delayLoop() {
        while !isStopping {
            let now = clock.nanoseconds
            let (due, wait) = delayQueue.withLock { queue -> ([DelayedReply], UInt64?) in
                var due: [DelayedReply] = []
                while let first = queue.first, first.due <= now + Self.wakeLatencyNanoseconds {
                    due.append(queue.removeFirst())
                }
                return (due, queue.first.map { $0.due - now })
            }
            for reply in due { answer(reply.bytes, to: reply.to) }
            if !due.isEmpty { continue }
            // A timed wait wakes about the timer slack (50 µs by default on Linux) late: aim that
            // much early, so an injected delay measures as what it says. No spinning: under CPU
            // contention a sleeper that wakes is scheduled sooner than a spinner that was preempted.
            let nanoseconds = Int(
                min((wait ?? 100_000_000) - min(wait ?? 0, Self.wakeLatencyNanoseconds), 100_000_000))
            _ = delayWake.wait(timeout: .now() + .nanoseconds(nanoseconds))
        }
    }
}
