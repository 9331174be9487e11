// The verbs transport: `ProbeTransport` over the verbs probers of the Probe target. A loopback pair
// goes through its rail's RC loopback, a NIC↔NIC pair of this host through an RC pair between the
// two rails' ports, a peer through the source rail's UD queue pair. `VerbsProbeEngine` is the
// single-threaded core (post now; serve completions until a deadline), driven on a manual clock in
// tests; `VerbsTransport` runs one on a thread of its own for the agent. See docs/agent.md.

import Dispatch
#if canImport(Glibc)
@preconcurrency import Glibc
#endif
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
    /// Pings answered by our UD queue pairs; pings from queue pairs that are not peers (answered
    /// through an address handle made from the completion); answers that could not be sent.
    public var answered = 0
    public var unknownSenders = 0
    public var failedAnswers = 0
    /// RC pairs reset and reconnected after an error; UD queue pairs reset after an error;
    /// completions with an error status (other than flushes).
    public var reconnects = 0
    public var udResets = 0
    public var failedCompletions = 0
    /// Failed polls, arms or channel waits (each backs the thread off); RC pairs that could not be
    /// created (retried with backoff); peers whose address handle could not be made (left out).
    public var pollErrors = 0
    public var rcCreateErrors = 0
    public var peerErrors = 0
    /// Replies to probes the engine no longer remembered (after the timeout and its margin);
    /// probes refused because `maxOutstanding` were remembered already.
    public var unmatchedReplies = 0
    public var outstandingDrops = 0
    public init() {}
}

/// The probers of one node behind `post` and `serve`. Single-threaded and not Sendable, like the
/// `VerbsAPI` it owns: one thread calls everything (the transport's, or a test's on a manual clock).
/// Each rail's device is opened once, with one completion queue (so one channel) that all of that
/// device's queue pairs share; completions go to their prober by (CQ, QP number).
public final class VerbsProbeEngine {
    let api: any VerbsAPI
    let clock: any MonotonicClock
    public let node: NodeName
    let configuration: ProbeConfiguration
    /// Each rail's device and (resolved) port.
    public let rails: [Int: VerbsRail]
    /// Unanswered probes are forgotten this long after they were sent (their replies then count as
    /// `unmatchedReplies`): the scheduler's timeout plus a margin, as the scheduler has counted
    /// them lost by then.
    public let forgetAfterNanoseconds: UInt64
    /// The most probes remembered at once; a post beyond it is refused (`outstandingDrops`).
    public let maxOutstanding: Int
    /// The first and the longest wait before an RC pair whose creation failed is tried again.
    static let firstRetryNanoseconds: UInt64 = 1_000_000_000
    static let maxRetryNanoseconds: UInt64 = 60_000_000_000
    /// The longest pause after a failed poll (doubling from 1 ms).
    static let maxPollBackoffNanoseconds: UInt64 = 1_000_000_000

    private enum Owner: Hashable {
        case loopback(Int)
        case hostPair(Int, Int)
        case peer(Int)
    }
    private struct Key: Hashable {
        var owner: Owner
        /// The UD peer a probe went to (nil for RC): UD replies match on (peer, sequence).
        var peer: EndpointID?
        var sequence: UInt32
    }
    private struct QueuePairKey: Hashable {
        var queue: CompletionQueueHandle
        var number: UInt32
    }
    private var devices: [String: ProbeDevice] = [:]
    private var loopbacks: [Int: LoopbackProber] = [:]
    private var hostPairs: [[Int]: LoopbackProber] = [:]
    private var peerProbers: [Int: PeerProber] = [:]
    /// Per rail, each peer endpoint's index in its prober's `peers`.
    private var peerIndex: [Int: [EndpointID: Int]] = [:]
    /// The CQs to poll (one per device) and whose queue pair each completion is.
    private var queues: [CompletionQueueHandle] = []
    private var owners: [QueuePairKey: Owner] = [:]
    /// RC pairs whose creation failed: when to try again, the next wait, and why.
    private var rcFailures: [Owner: (retryAt: UInt64, wait: UInt64, reason: String)] = [:]
    private var outstanding: [Key: (sequence: UInt64, sentAt: UInt64)] = [:]
    /// Keys in posting order, to forget the oldest; entries before `sentOrderHead` are done.
    private var sentOrder: [(key: Key, sentAt: UInt64)] = []
    private var sentOrderHead = 0
    private var sweep = CompletionSweep()
    /// Spin on the CQs only when something was posted since the last serve.
    private var postedSinceServe = false
    private var pollBackoff: UInt64 = 0
    /// After a failed poll, `serve` does nothing until then (the transport sleeps instead).
    public private(set) var backoffUntil: UInt64?
    /// The last poll error and RC creation error, for the transport's log.
    public private(set) var lastPollError: VerbsError?
    /// The RC probers' error counts (their `handle` counts into a tally).
    private var rcTally = ProbeTally()
    private var pollErrors = 0
    private var rcCreateErrors = 0
    private var peerErrors = 0
    private var udResetErrors = 0
    private var unmatchedReplies = 0
    private var outstandingDrops = 0

    /// Checks that libibverbs lists devices (the error is ibv_get_device_list's, e.g. ENOSYS),
    /// opens each rail's device once, resolves its port and creates its UD queue pair, so peers can
    /// be told our addresses and are answered from now on. RC pairs are created at their first
    /// probe. `timeoutNanoseconds` is the scheduler's probe timeout and `maxInFlight` its cap.
    public init(
        api: any VerbsAPI, clock: any MonotonicClock, node: NodeName, rails: [VerbsRail],
        configuration: ProbeConfiguration = ProbeConfiguration(slots: 256),
        timeoutNanoseconds: UInt64 = 500_000_000, maxInFlight: Int = 4096
    ) throws {
        self.api = api
        self.clock = clock
        self.node = node
        self.configuration = configuration
        forgetAfterNanoseconds = timeoutNanoseconds + max(timeoutNanoseconds, 1_000_000_000)
        maxOutstanding = 2 * max(1, maxInFlight)
        let names: [String]
        do { names = try api.deviceNames() } catch {
            self.rails = [:]
            throw error
        }
        guard !rails.isEmpty else {
            self.rails = [:]
            throw AgentError("verbs: no rails (discovery found no GPU with an RDMA NIC; set \"rails\" in the config)")
        }
        do {
            // Every queue pair of a device completes into its one CQ: a UD pair, the loopback's two
            // and a NIC↔NIC pinger and responder towards every other rail, each `2 × slots` deep.
            let entries = 2 * configuration.slots * (2 * rails.count + 1)
            var resolved: [Int: VerbsRail] = [:]
            for rail in rails.sorted(by: { $0.rail < $1.rail }) {
                guard names.contains(rail.device) else {
                    throw AgentError("verbs: rail \(rail.rail): no RDMA device \(rail.device) (libibverbs lists \(names))")
                }
                if devices[rail.device] == nil {
                    let handle = try api.openDevice(rail.device)
                    do {
                        let info = try api.queryDevice(handle)
                        let queue = try api.createCompletionQueue(handle, entries: entries)
                        devices[rail.device] = ProbeDevice(handle: handle, info: info, queue: queue)
                        queues.append(queue)
                    } catch {
                        api.closeDevice(handle)
                        throw error
                    }
                }
                let device = devices[rail.device]!
                var entry = rail
                if entry.port == nil {
                    let ports = device.info.ports
                    entry.port = (ports.first { $0.state == .active } ?? ports.first)?.number
                }
                guard let port = entry.port else { throw AgentError("verbs: \(rail.device) has no ports") }
                let prober = try PeerProber(
                    api: api, clock: clock, device: device, port: port, peers: [], configuration: configuration)
                peerProbers[rail.rail] = prober
                owners[QueuePairKey(queue: device.queue, number: prober.queuePairNumber)] = .peer(rail.rail)
                resolved[rail.rail] = entry
            }
            self.rails = resolved
        } catch {
            self.rails = [:]
            closeAll()
            throw error
        }
    }

    deinit { closeAll() }

    /// Probers first (their queue pairs and address handles), then each device's CQ and the device.
    private func closeAll() {
        loopbacks = [:]
        hostPairs = [:]
        peerProbers = [:]
        for device in devices.values {
            api.destroyCompletionQueue(device.queue)
            api.closeDevice(device.handle)
        }
        devices = [:]
        queues = []
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
            counters.failedAnswers += prober.failedAnswers
            counters.udResets += prober.resets
            counters.failedCompletions += prober.failedCompletions
        }
        for prober in Array(loopbacks.values) + Array(hostPairs.values) { counters.reconnects += prober.reconnects }
        counters.failedCompletions += rcTally.failedCompletions
        counters.pollErrors = pollErrors
        counters.rcCreateErrors = rcCreateErrors
        counters.peerErrors = peerErrors + udResetErrors
        counters.unmatchedReplies = unmatchedReplies
        counters.outstandingDrops = outstandingDrops
        return counters
    }

    /// Probes remembered now (at most `maxOutstanding`), for tests.
    var outstandingCount: Int { outstanding.count }

    /// Gives every rail's UD queue pair the peer endpoints in `book` (this node's own entries are
    /// skipped): unchanged peers keep their address handles, removed ones' are destroyed once
    /// their sends complete. A peer whose address handle fails is left out (its probes count as
    /// errors) and returned with the error; the others are applied.
    @discardableResult
    public func setPeers(_ book: VerbsAddressBook) -> [(peer: String, error: VerbsError)] {
        let peers = book.entries.filter { $0.key.node != node }
            .map { PeerTarget(name: $0.key.description, address: $0.value) }
        var failures: [(peer: String, error: VerbsError)] = []
        for (rail, prober) in peerProbers.sorted(by: { $0.key < $1.key }) {
            for failure in prober.setPeers(peers) {
                peerErrors += 1
                failures.append(("\(failure.name) from rail \(rail)", failure.error))
            }
            var index: [EndpointID: Int] = [:]
            for (position, peer) in prober.peers.enumerated() {
                if let endpoint = EndpointID(peer.name) { index[endpoint] = position }
            }
            peerIndex[rail] = index
        }
        return failures
    }

    /// Posts the probe on the queue pair its pair calls for, creating an RC pair at its first
    /// probe (after a failed creation, not again until its backoff passes). Never blocks. `.failed`
    /// when there is no rail, address or queue pair for it, too many probes are remembered, or the
    /// post failed: the scheduler counts it as an error.
    public func post(_ order: ProbeOrder) -> ProbeSendResult {
        let src = order.target.src
        let dst = order.target.dst
        guard src.node == node, let from = rails[src.rail] else {
            return .failed("no RDMA rail for \(src)")
        }
        let now = clock.nanoseconds
        forget(now: now)
        guard outstanding.count < maxOutstanding else {
            outstandingDrops += 1
            return .failed("verbs: \(maxOutstanding) probes awaiting replies")
        }
        do {
            let owner: Owner
            var peer: EndpointID?
            let posted: (sequence: UInt32, sentAt: UInt64)
            if dst == src {
                owner = .loopback(src.rail)
                guard let prober = try rcProber(owner, from: from, to: from, now: now) else {
                    return .failed(rcFailures[owner]!.reason)
                }
                posted = try prober.post()
            } else if dst.node == node {
                guard let to = rails[dst.rail] else { return .failed("no RDMA rail for \(dst)") }
                owner = .hostPair(src.rail, dst.rail)
                guard let prober = try rcProber(owner, from: from, to: to, now: now) else {
                    return .failed(rcFailures[owner]!.reason)
                }
                posted = try prober.post()
            } else {
                guard let index = peerIndex[src.rail]?[dst], let prober = peerProbers[src.rail] else {
                    return .failed("no verbs address for \(dst)")
                }
                owner = .peer(src.rail)
                peer = dst
                posted = try prober.post(toPeer: index)
            }
            let key = Key(owner: owner, peer: peer, sequence: posted.sequence)
            outstanding[key] = (order.sequence, posted.sentAt)
            sentOrder.append((key, posted.sentAt))
            postedSinceServe = true
            return .sent
        } catch {
            return .failed("\(error)")
        }
    }

    /// Polls the devices' CQs (spinning first only if something was posted since the last call),
    /// then sleeps on their channels and `wake` until a completion, a wake or `deadline`; handles
    /// what came (the responders answer, receives are reposted, a UD queue pair in error is reset)
    /// and returns the replies to posted probes, each stamped when its CQ was polled. After a failed
    /// poll it backs off: nothing is polled before `backoffUntil`.
    public func serve(until deadline: UInt64, wake: Int32? = nil) -> [ProbeReply] {
        let now = clock.nanoseconds
        forget(now: now)
        if let until = backoffUntil, now < until { return [] }
        let spin = postedSinceServe ? configuration.spinPolls : 0
        postedSinceServe = false
        do {
            try nextCompletions(
                api, queues, clock: clock, deadline: deadline, spinPolls: spin, wake: wake, into: &sweep)
            pollErrors += sweep.pollErrors
            if sweep.pollErrors > 0 { lastPollError = sweep.lastError } else { pollBackoff = 0 }
            backoffUntil = nil
        } catch {
            pollErrors += max(1, sweep.pollErrors)
            lastPollError = error
            pollBackoff = min(max(2 * pollBackoff, 1_000_000), Self.maxPollBackoffNanoseconds)
            backoffUntil = clock.nanoseconds + pollBackoff
        }
        sweep.pollErrors = 0
        var replies: [ProbeReply] = []
        for item in sweep.polled {
            guard let owner = owners[QueuePairKey(queue: item.queue, number: item.completion.qpNumber)] else {
                continue
            }
            let key: Key
            switch owner {
            case .loopback, .hostPair:
                guard let sequence = rcProbers(owner)?.handle(item, tally: &rcTally) else { continue }
                key = Key(owner: owner, peer: nil, sequence: sequence)
            case .peer(let rail):
                guard let prober = peerProbers[rail],
                    case .reply(let index, let sequence) = prober.handle(item.completion)
                else { continue }
                key = Key(owner: owner, peer: EndpointID(prober.peers[index].name), sequence: sequence)
            }
            if let probe = outstanding.removeValue(forKey: key) {
                replies.append(ProbeReply(sequence: probe.sequence, sentAt: probe.sentAt, receivedAt: item.polledAt))
            } else {
                unmatchedReplies += 1
            }
        }
        for prober in peerProbers.values where prober.broken {
            do { try prober.recover() } catch { udResetErrors += 1 }
        }
        return replies
    }

    private func rcProbers(_ owner: Owner) -> LoopbackProber? {
        switch owner {
        case .loopback(let rail): loopbacks[rail]
        case .hostPair(let src, let dst): hostPairs[[src, dst]]
        case .peer: nil
        }
    }

    /// The RC prober of `owner`, created now if it does not exist; nil while a failed creation's
    /// backoff runs (the failure is counted once per attempt, its reason kept for the post).
    private func rcProber(_ owner: Owner, from: VerbsRail, to: VerbsRail, now: UInt64) throws -> LoopbackProber? {
        if let prober = rcProbers(owner) { return prober }
        if let failure = rcFailures[owner], now < failure.retryAt { return nil }
        let fromDevice = devices[from.device]!
        let toDevice = devices[to.device]!
        let prober: LoopbackProber
        do {
            prober = try LoopbackProber(
                api: api, clock: clock, device: fromDevice, port: from.port ?? 1,
                responder: to.device == from.device ? nil : toDevice, responderPort: to.port,
                configuration: configuration)
        } catch {
            rcCreateErrors += 1
            let wait = min(2 * (rcFailures[owner]?.wait ?? Self.firstRetryNanoseconds / 2), Self.maxRetryNanoseconds)
            rcFailures[owner] = (
                now + wait, wait, "verbs: RC pair \(from.device) -> \(to.device): \(error) (retried in \(wait / 1_000_000) ms)"
            )
            return nil
        }
        rcFailures[owner] = nil
        switch owner {
        case .loopback(let rail): loopbacks[rail] = prober
        case .hostPair(let src, let dst): hostPairs[[src, dst]] = prober
        case .peer: break
        }
        for (queue, number) in prober.queuePairs { owners[QueuePairKey(queue: queue, number: number)] = owner }
        return prober
    }

    /// Forgets probes sent more than `forgetAfterNanoseconds` ago, from the front of `sentOrder`
    /// (entries already answered are skipped), and keeps `sentOrder` within a few times
    /// `maxOutstanding` by dropping its answered entries.
    private func forget(now: UInt64) {
        while sentOrderHead < sentOrder.count {
            let (key, sentAt) = sentOrder[sentOrderHead]
            if let probe = outstanding[key], probe.sentAt == sentAt {
                guard sentAt + forgetAfterNanoseconds <= now else { break }
                outstanding[key] = nil
            }
            sentOrderHead += 1
        }
        if sentOrderHead > 1024, sentOrderHead * 2 > sentOrder.count {
            sentOrder.removeFirst(sentOrderHead)
            sentOrderHead = 0
        }
        if sentOrder.count - sentOrderHead > 4 * maxOutstanding {
            sentOrder = sentOrder[sentOrderHead...].filter { outstanding[$0.key]?.sentAt == $0.sentAt }
            sentOrderHead = 0
        }
    }
}

@available(*, unavailable) extension VerbsProbeEngine: Sendable {}

/// A non-blocking pipe another thread writes to wake the transport's thread from its poll(2)
/// (Glibc's overlay does not import eventfd).
final class WakeEvent: Sendable {
    /// The read end, for the poll(2) set; the write end signals.
    let descriptor: Int32
    private let writer: Int32

    init() throws {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw AgentError("pipe: \(String(cString: strerror(errno)))") }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        (descriptor, writer) = (ends[0], ends[1])
    }

    deinit {
        close(descriptor)
        close(writer)
    }

    /// Wakes the waiter (a full pipe is already a wake).
    func signal() {
        var one: UInt8 = 1
        _ = write(writer, &one, 1)
    }

    /// Clears the signal (before looking for work, so a signal after the look wakes the wait).
    func drain() {
        var bytes = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        while withUnsafeMutableBytes(of: &bytes, { read(descriptor, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// Sleeps until signalled or `nanoseconds` pass.
    func wait(_ nanoseconds: UInt64) {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        _ = poll(&entry, 1, Int32(clamping: (nanoseconds + 999_999) / 1_000_000))
    }
}

/// The agent's verbs transport: one thread owns a `VerbsProbeEngine` and loops — post the orders
/// `send` queued, serve completions until one comes, `send` or `stop` wakes it (an eventfd in its
/// poll(2) set) or `idleWaitNanoseconds` pass, report replies. `send` only queues, so a post that
/// fails is reported through `onSendFailed` from that thread.
public final class VerbsTransport: ProbeTransport {
    public let kind = Report.Transport.verbsUD
    public let defaultTimeoutNanoseconds: UInt64 = 500_000_000
    /// Each rail's UD queue pair address, for the peers' inputs (logged at start).
    public let localAddresses: VerbsAddressBook
    /// The longest the idle thread sleeps without a completion or a wake (to forget old probes).
    static let idleWaitNanoseconds: UInt64 = 100_000_000
    static let maxQueuedOrders = 65_536

    /// The engine, handed to the transport's thread: after `init` only that thread touches it.
    private struct Handover: @unchecked Sendable { let engine: VerbsProbeEngine }
    private let handover: Handover
    private let log: AgentLog?
    private let wake: WakeEvent
    private let orders = Locked<[ProbeOrder]>([])
    private let pendingPeers = Locked<VerbsAddressBook?>(nil)
    private let state = Locked(VerbsTransportCounters())
    private let stopping = Locked(false)
    private let threads = DispatchGroup()

    /// Takes `engine` over: the caller must not use it afterwards. Its clock must be the
    /// scheduler's (the system's monotonic clock in the agent): replies carry its times. `log`
    /// gets peers left out, failed polls and RC pairs that could not be created.
    public init(engine: VerbsProbeEngine, log: AgentLog? = nil) throws {
        localAddresses = engine.localAddresses
        handover = Handover(engine: engine)
        self.log = log
        wake = try WakeEvent()
    }

    /// The real verbs on the system's monotonic clock, for `rails`, forgetting probes after the
    /// scheduler's timeout (plus a margin). Where the kernel has no RDMA, throws "no RDMA devices:
    /// ibv_get_device_list: Function not implemented".
    public static func system(
        node: NodeName, rails: [VerbsRail], timeoutNanoseconds: UInt64 = 500_000_000, maxInFlight: Int = 4096,
        log: AgentLog? = nil
    ) throws -> VerbsTransport {
        do {
            return try VerbsTransport(
                engine: try VerbsProbeEngine(
                    api: RealVerbs(), clock: SystemMonotonicClock(), node: node, rails: rails,
                    timeoutNanoseconds: timeoutNanoseconds, maxInFlight: maxInFlight),
                log: log)
        } catch let error as VerbsError where error.call == "ibv_get_device_list" {
            throw AgentError("no RDMA devices: \(error)")
        } catch let error as VerbsError {
            throw AgentError("verbs: \(error)")
        }
    }

    public var counters: VerbsTransportCounters { state.withLock { $0 } }

    /// New peer addresses, applied by the transport's thread before its next posts.
    public func setPeers(_ book: VerbsAddressBook) {
        pendingPeers.withLock { $0 = book }
        wake.signal()
    }

    public func start(
        onReply: @escaping @Sendable (ProbeReply) -> Void,
        onSendFailed: @escaping @Sendable (ProbeOrder, String) -> Void
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

    /// Queues the order for the transport's thread and wakes it; `.failed` only when the queue is
    /// full.
    public func send(_ order: ProbeOrder) -> ProbeSendResult {
        let queued = orders.withLock { orders -> Bool in
            guard orders.count < Self.maxQueuedOrders else { return false }
            orders.append(order)
            return true
        }
        guard queued else { return .failed("verbs: \(Self.maxQueuedOrders) orders queued") }
        wake.signal()
        return .sent
    }

    public func stop() {
        stopping.withLock { $0 = true }
        wake.signal()
        threads.wait()
    }

    private func loop(
        _ onReply: @Sendable (ProbeReply) -> Void, _ onSendFailed: @Sendable (ProbeOrder, String) -> Void
    ) {
        let engine = handover.engine
        var logged = VerbsTransportCounters()
        while !stopping.withLock({ $0 }) {
            wake.drain()
            if let book = pendingPeers.withLock({ book in defer { book = nil }; return book }) {
                for (peer, error) in engine.setPeers(book).prefix(10) {
                    log?(.warning, "verbs peer left out: no address handle", ["peer": peer, "error": "\(error)"])
                }
            }
            for order in orders.withLock({ orders in defer { orders = [] }; return orders }) {
                if case .failed(let reason) = engine.post(order) { onSendFailed(order, reason) }
            }
            let now = engine.clock.nanoseconds
            if let until = engine.backoffUntil, until > now {
                wake.wait(until - now)
                continue
            }
            for reply in engine.serve(until: now + Self.idleWaitNanoseconds, wake: wake.descriptor) {
                onReply(reply)
            }
            let counters = engine.counters
            state.withLock { $0 = counters }
            if counters.pollErrors != logged.pollErrors, let error = engine.lastPollError {
                log?(.warning, "verbs poll failed: backing off", ["errors": "\(counters.pollErrors)", "error": "\(error)"])
            }
            logged = counters
        }
    }
}
