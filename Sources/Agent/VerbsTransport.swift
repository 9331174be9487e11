// The verbs transport: `ProbeTransport` over the verbs probers of the Probe target. A loopback pair
// goes through its rail's RC loopback, a NIC↔NIC pair of this host through an RC pair between the
// two rails' ports, a peer through the source rail's UD queue pair. `VerbsProbeEngine` is the
// single-threaded core (post now; serve completions until a deadline), driven on a manual clock in
// tests; `VerbsTransport` runs one on a thread of its own for the agent. See docs/agent.md.

import Dispatch
import FleetModel
import Foundation
import Net
import Probe
import Verbs

/// Where a rail of this node probes from: its NIC and that NIC's port (nil: the first ACTIVE port,
/// else the first).
public struct VerbsRail: Hashable, Sendable {
    public var rail: Int
    public var device: String
    public var port: UInt8?

    public init(rail: Int, device: String, port: UInt8? = nil) {
        self.rail = rail
        self.device = device
        self.port = port
    }
}

/// Where each peer endpoint's UD queue pair is: the pinglist's and the peers file's `addresses`
/// entries whose value is an object (`{"lid", "qpn", "gid"}`) rather than HOST:PORT.
public struct VerbsAddressBook: Hashable, Sendable {
    public var entries: [EndpointID: QueuePairAddress]

    public init(_ entries: [EndpointID: QueuePairAddress] = [:]) { self.entries = entries }

    /// Adds `other`'s entries, replacing ours where both name the same endpoint.
    public func merging(_ other: VerbsAddressBook) -> VerbsAddressBook {
        VerbsAddressBook(entries.merging(other.entries) { _, new in new })
    }

    /// `{"n1/0": {"lid": 7, "qpn": 257}, ...}` in endpoint order, the form the inputs take.
    public var json: String {
        let items = entries.keys.sorted().map { endpoint -> String in
            let address = entries[endpoint]!
            let gid = address.gid.map { #", "gid": "\#($0)""# } ?? ""
            return #""\#(endpoint)": {"lid": \#(address.lid), "qpn": \#(address.qpNumber)\#(gid)}"#
        }
        return "{" + items.joined(separator: ", ") + "}"
    }
}

/// What the verbs probers did, for /metrics.
public struct VerbsTransportCounters: Hashable, Sendable {
    /// Peers' pings answered by our UD queue pairs; pings from queue pairs with no address here.
    public var answered = 0
    public var unknownSenders = 0
    /// RC pairs reset and reconnected after an error; completions with an error status.
    public var reconnects = 0
    public var failedCompletions = 0
    /// Failed polls or channel waits, and failed address-handle updates for new peers.
    public var pollErrors = 0
    public var peerErrors = 0
    /// Replies to probes the engine no longer remembered (after `forgetAfterNanoseconds`).
    public var unmatchedReplies = 0
    public init() {}
}

/// The probers of one node behind `post` and `serve`. Single-threaded and not Sendable, like the
/// `VerbsAPI` it owns: one thread calls everything (the transport's, or a test's on a manual clock).
public final class VerbsProbeEngine {
    let api: any VerbsAPI
    let clock: any MonotonicClock
    public let node: NodeName
    let configuration: ProbeConfiguration
    /// Each rail's device and (resolved) port.
    public let rails: [Int: VerbsRail]
    /// Probes still unanswered are forgotten after this long (their replies then count as
    /// `unmatchedReplies`); far beyond any probe timeout.
    static let forgetAfterNanoseconds: UInt64 = 3_600_000_000_000

    private enum Owner: Hashable {
        case loopback(Int)
        case hostPair(Int, Int)
        case peer(Int)
    }
    private struct Key: Hashable {
        var owner: Owner
        var sequence: UInt32
    }
    private var loopbacks: [Int: LoopbackProber] = [:]
    private var hostPairs: [[Int]: LoopbackProber] = [:]
    private var peerProbers: [Int: PeerProber] = [:]
    /// Per rail, each peer endpoint's index in its prober's `peers`.
    private var peerIndex: [Int: [EndpointID: Int]] = [:]
    /// Every completion queue to poll, in creation order, and whose it is.
    private var queues: [CompletionQueueHandle] = []
    private var owners: [CompletionQueueHandle: Owner] = [:]
    private var outstanding: [Key: (sequence: UInt64, sentAt: UInt64)] = [:]
    /// Keys in posting order, to forget the oldest; entries before `sentOrderHead` are done.
    private var sentOrder: [(key: Key, sentAt: UInt64)] = []
    private var sentOrderHead = 0
    /// The RC probers' error counts (their `handle` counts into a tally).
    private var rcTally = ProbeTally()
    private var pollErrors = 0
    private var peerErrors = 0
    private var unmatchedReplies = 0

    /// Checks that libibverbs lists devices (the error is ibv_get_device_list's, e.g. ENOSYS),
    /// resolves each rail's port and creates its UD queue pair, so peers can be told our addresses
    /// and are answered from now on. RC pairs are created at their first probe.
    public init(
        api: any VerbsAPI, clock: any MonotonicClock, node: NodeName, rails: [VerbsRail],
        configuration: ProbeConfiguration = ProbeConfiguration(slots: 256)
    ) throws {
        self.api = api
        self.clock = clock
        self.node = node
        self.configuration = configuration
        let names = try api.deviceNames()
        guard !rails.isEmpty else {
            throw AgentError("verbs: no rails (discovery found no GPU with an RDMA NIC; set \"rails\" in the config)")
        }
        var resolved: [Int: VerbsRail] = [:]
        for rail in rails.sorted(by: { $0.rail < $1.rail }) {
            guard names.contains(rail.device) else {
                throw AgentError("verbs: rail \(rail.rail): no RDMA device \(rail.device) (libibverbs lists \(names))")
            }
            var entry = rail
            if entry.port == nil {
                let ports = try api.queryDevice(api.openDevice(rail.device)).ports
                entry.port = (ports.first { $0.state == .active } ?? ports.first)?.number
            }
            guard let port = entry.port else { throw AgentError("verbs: \(rail.device) has no ports") }
            peerProbers[rail.rail] = try PeerProber(
                api: api, clock: clock, deviceName: rail.device, port: port, peers: [],
                configuration: configuration)
            resolved[rail.rail] = entry
        }
        self.rails = resolved
        for (rail, prober) in peerProbers.sorted(by: { $0.key < $1.key }) {
            register(prober.completionQueue, .peer(rail))
        }
    }

    /// Each rail's UD queue pair address: what peers need to probe this node's endpoints.
    public var localAddresses: VerbsAddressBook {
        var book: [EndpointID: QueuePairAddress] = [:]
        for (rail, prober) in peerProbers {
            if let endpoint = EndpointID(node: node, rail: rail) { book[endpoint] = prober.address }
        }
        return VerbsAddressBook(book)
    }

    public var counters: VerbsTransportCounters {
        var counters = VerbsTransportCounters()
        for prober in peerProbers.values {
            counters.answered += prober.answered
            counters.unknownSenders += prober.unknownSenders
        }
        for prober in Array(loopbacks.values) + Array(hostPairs.values) { counters.reconnects += prober.reconnects }
        counters.failedCompletions = rcTally.failedCompletions
        counters.pollErrors = pollErrors
        counters.peerErrors = peerErrors
        counters.unmatchedReplies = unmatchedReplies
        return counters
    }

    /// Gives every rail's UD queue pair an address handle for each peer endpoint in `book` (this
    /// node's own entries are skipped): those are probed and answered; pings from others are not.
    public func setPeers(_ book: VerbsAddressBook) throws(VerbsError) {
        let peers = book.entries.filter { $0.key.node != node }
            .map { PeerTarget(name: $0.key.description, address: $0.value) }
        for (rail, prober) in peerProbers.sorted(by: { $0.key < $1.key }) {
            peerIndex[rail] = [:]
            do { try prober.setPeers(peers) } catch {
                peerErrors += 1
                throw error
            }
            for (index, peer) in prober.peers.enumerated() {
                if let endpoint = EndpointID(peer.name) { peerIndex[rail]![endpoint] = index }
            }
        }
    }

    /// Posts the probe on the queue pair its pair calls for, creating an RC pair at its first
    /// probe. Never blocks. `.failed` when there is no rail, address or queue pair for it, or the
    /// post failed: the scheduler counts it as an error.
    public func post(_ order: ProbeOrder) -> ProbeSendResult {
        let src = order.target.src
        let dst = order.target.dst
        guard src.node == node, let from = rails[src.rail] else {
            return .failed("no RDMA rail for \(src)")
        }
        do {
            let owner: Owner
            let posted: (sequence: UInt32, sentAt: UInt64)
            if dst == src {
                owner = .loopback(src.rail)
                posted = try rcProber(owner, from: from, to: from).post()
            } else if dst.node == node {
                guard let to = rails[dst.rail] else { return .failed("no RDMA rail for \(dst)") }
                owner = .hostPair(src.rail, dst.rail)
                posted = try rcProber(owner, from: from, to: to).post()
            } else {
                guard let index = peerIndex[src.rail]?[dst], let prober = peerProbers[src.rail] else {
                    return .failed("no verbs address for \(dst)")
                }
                owner = .peer(src.rail)
                posted = try prober.post(toPeer: index)
            }
            let key = Key(owner: owner, sequence: posted.sequence)
            outstanding[key] = (order.sequence, posted.sentAt)
            sentOrder.append((key, posted.sentAt))
            return .sent
        } catch {
            return .failed("\(error)")
        }
    }

    /// Spins on every queue, then sleeps on their channels until a completion or `deadline`;
    /// handles what came (the responders answer, receives are reposted) and returns the replies to
    /// posted probes, stamped with the time they were polled.
    public func serve(until deadline: UInt64) -> [ProbeReply] {
        forget(now: clock.nanoseconds)
        let polled: [PolledCompletion]
        do {
            polled = try nextCompletions(
                api, queues, clock: clock, deadline: deadline, spinPolls: configuration.spinPolls)
        } catch {
            pollErrors += 1
            return []
        }
        let now = clock.nanoseconds
        var replies: [ProbeReply] = []
        for item in polled {
            guard let owner = owners[item.queue] else { continue }
            var sequence: UInt32?
            switch owner {
            case .loopback, .hostPair:
                sequence = rcProbers(owner)?.handle(item, tally: &rcTally)
            case .peer(let rail):
                if case .reply(_, let number) = peerProbers[rail]?.handle(item.completion) { sequence = number }
            }
            guard let sequence else { continue }
            if let probe = outstanding.removeValue(forKey: Key(owner: owner, sequence: sequence)) {
                replies.append(ProbeReply(sequence: probe.sequence, sentAt: probe.sentAt, receivedAt: now))
            } else {
                unmatchedReplies += 1
            }
        }
        return replies
    }

    /// True once there is a queue to wait on (every rail has its UD queue pair from the start).
    public var hasQueues: Bool { !queues.isEmpty }

    private func register(_ queue: CompletionQueueHandle, _ owner: Owner) {
        guard owners[queue] == nil else { return }
        owners[queue] = owner
        queues.append(queue)
    }

    private func rcProbers(_ owner: Owner) -> LoopbackProber? {
        switch owner {
        case .loopback(let rail): loopbacks[rail]
        case .hostPair(let src, let dst): hostPairs[[src, dst]]
        case .peer: nil
        }
    }

    private func rcProber(_ owner: Owner, from: VerbsRail, to: VerbsRail) throws -> LoopbackProber {
        if let prober = rcProbers(owner) { return prober }
        let prober = try LoopbackProber(
            api: api, clock: clock, deviceName: from.device, port: from.port ?? 1,
            responderDevice: to.device == from.device ? nil : to.device, responderPort: to.port,
            configuration: configuration)
        switch owner {
        case .loopback(let rail): loopbacks[rail] = prober
        case .hostPair(let src, let dst): hostPairs[[src, dst]] = prober
        case .peer: break
        }
        for queue in prober.completionQueues { register(queue, owner) }
        return prober
    }

    /// Drops what was answered from the front of `sentOrder`, and what waited too long.
    private func forget(now: UInt64) {
        while sentOrderHead < sentOrder.count {
            let (key, sentAt) = sentOrder[sentOrderHead]
            if outstanding[key] != nil {
                guard sentAt + Self.forgetAfterNanoseconds <= now else { break }
                outstanding[key] = nil
            }
            sentOrderHead += 1
        }
        if sentOrderHead > 1024, sentOrderHead * 2 > sentOrder.count {
            sentOrder.removeFirst(sentOrderHead)
            sentOrderHead = 0
        }
    }
}

@available(*, unavailable) extension VerbsProbeEngine: Sendable {}

/// The agent's verbs transport: one thread owns a `VerbsProbeEngine` and loops — post the orders
/// `send` queued, serve completions for at most `orderLatencyNanoseconds`, report replies. `send`
/// only queues, so a post that fails is reported through `onSendFailed` from that thread.
public final class VerbsTransport: ProbeTransport {
    public let kind = Report.Transport.verbsUD
    public let defaultTimeoutNanoseconds: UInt64 = 500_000_000
    /// Each rail's UD queue pair address, for the peers' inputs (logged at start).
    public let localAddresses: VerbsAddressBook
    /// The longest a queued order waits for the thread (its sleep on the completion channels).
    static let orderLatencyNanoseconds: UInt64 = 1_000_000
    static let maxQueuedOrders = 65_536

    /// The engine, handed to the transport's thread: after `init` only that thread touches it.
    private struct Handover: @unchecked Sendable { let engine: VerbsProbeEngine }
    private let handover: Handover
    private let orders = Locked<[ProbeOrder]>([])
    private let pendingPeers = Locked<VerbsAddressBook?>(nil)
    private let state = Locked(VerbsTransportCounters())
    private let stopping = Locked(false)
    private let threads = DispatchGroup()

    /// Takes `engine` over: the caller must not use it afterwards. Its clock must be the
    /// scheduler's (the system's monotonic clock in the agent): replies carry its times.
    public init(engine: VerbsProbeEngine) {
        localAddresses = engine.localAddresses
        handover = Handover(engine: engine)
    }

    /// The real verbs on the system's monotonic clock, for `rails`. Where the kernel has no RDMA,
    /// throws "no RDMA devices: ibv_get_device_list: Function not implemented".
    public static func system(node: NodeName, rails: [VerbsRail]) throws -> VerbsTransport {
        do {
            return VerbsTransport(
                engine: try VerbsProbeEngine(api: RealVerbs(), clock: SystemMonotonicClock(), node: node, rails: rails))
        } catch let error as VerbsError where error.call == "ibv_get_device_list" {
            throw AgentError("no RDMA devices: \(error)")
        } catch let error as VerbsError {
            throw AgentError("verbs: \(error)")
        }
    }

    public var counters: VerbsTransportCounters { state.withLock { $0 } }

    /// New peer addresses, applied by the transport's thread before its next posts.
    public func setPeers(_ book: VerbsAddressBook) { pendingPeers.withLock { $0 = book } }

    public func start(
        onReply: @escaping @Sendable (ProbeReply) -> Void,
        onSendFailed: @escaping @Sendable (UInt64, String) -> Void
    ) throws {
        threads.enter()
        do {
            try spawnThread { [self] in
                loop(onReply, onSendFailed)
                threads.leave()
            }
        } catch {
            threads.leave()
            throw AgentError("cannot start the verbs thread: \(error)")
        }
    }

    /// Queues the order for the transport's thread; `.failed` only when the queue is full.
    public func send(_ order: ProbeOrder) -> ProbeSendResult {
        let queued = orders.withLock { orders -> Bool in
            guard orders.count < Self.maxQueuedOrders else { return false }
            orders.append(order)
            return true
        }
        return queued ? .sent : .failed("verbs: \(Self.maxQueuedOrders) orders queued")
    }

    public func stop() {
        stopping.withLock { $0 = true }
        threads.wait()
    }

    private func loop(
        _ onReply: @Sendable (ProbeReply) -> Void, _ onSendFailed: @Sendable (UInt64, String) -> Void
    ) {
        let engine = handover.engine
        while !stopping.withLock({ $0 }) {
            if let book = pendingPeers.withLock({ book in defer { book = nil }; return book }) {
                try? engine.setPeers(book)  // counted in peerErrors
            }
            for order in orders.withLock({ orders in defer { orders = [] }; return orders }) {
                if case .failed(let reason) = engine.post(order) { onSendFailed(order.sequence, reason) }
            }
            for reply in engine.serve(until: engine.clock.nanoseconds + Self.orderLatencyNanoseconds) {
                onReply(reply)
            }
            let counters = engine.counters
            state.withLock { $0 = counters }
        }
    }
}
