// A simulated verbs layer for tests and demos: devices and ports as configured, queue pairs with
// the real state rules, and a fabric on a manual clock that completes, delays, fails or loses
// work requests deterministically (from a script, then from a seeded generator).

/// What happens to one send.
public enum FakeFate: Hashable, Sendable {
    /// Arrives at the destination after this many nanoseconds; the send completes then too.
    case deliver(afterNanoseconds: UInt64)
    /// Never arrives. On UD the send still completes (the datagram left the NIC); on RC the work
    /// request never completes at all (a hung request, as after a lost ACK on a wedged path).
    case lose
    /// Completes with this error status after the fabric's one-way delay; an RC queue pair goes to
    /// ERR and flushes its posted receives.
    case fail(CompletionStatus)
}

/// The fabric's behaviour for sends that no script entry decides.
public struct FakeFabric: Hashable, Sendable {
    public var oneWayNanoseconds: UInt64
    /// Uniform extra delay in 0..<jitterNanoseconds.
    public var jitterNanoseconds: UInt64
    /// Probability that a send is lost.
    public var lossRate: Double
    /// Probability that a send completes with IBV_WC_RETRY_EXC_ERR.
    public var failureRate: Double

    public init(
        oneWayNanoseconds: UInt64 = 2_000, jitterNanoseconds: UInt64 = 0, lossRate: Double = 0,
        failureRate: Double = 0
    ) {
        self.oneWayNanoseconds = oneWayNanoseconds
        self.jitterNanoseconds = jitterNanoseconds
        self.lossRate = lossRate
        self.failureRate = failureRate
    }
}

/// A queue pair on another host that answers every message it receives after `turnaround`
/// nanoseconds with the immediate that `reply` makes of it (nil: no answer).
public struct FakeRemoteResponder {
    public var address: QueuePairAddress
    public var turnaroundNanoseconds: UInt64
    public var reply: (UInt32) -> UInt32?

    public init(
        address: QueuePairAddress, turnaroundNanoseconds: UInt64 = 1_000, reply: @escaping (UInt32) -> UInt32?
    ) {
        self.address = address
        self.turnaroundNanoseconds = turnaroundNanoseconds
        self.reply = reply
    }
}

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The fake. Not Sendable: a test drives it from one thread, as the prober drives RealVerbs.
public final class FakeVerbs: VerbsAPI {
    public let clock: ManualClock
    /// The default behaviour of the fabric.
    public var fabric: FakeFabric
    /// Per destination QP number, a fabric that replaces the default (a slow or lossy path).
    public var pathOverrides: [UInt32: FakeFabric] = [:]
    /// Fates for the next sends, taken first-in first-out before the fabric decides.
    public var script: [FakeFate] = []
    /// When set, deviceNames and openDevice throw it (ENOSYS mimics a kernel without RDMA).
    public var listError: VerbsError?
    /// Counters of what the fabric did.
    public private(set) var delivered = 0
    public private(set) var lost = 0
    public private(set) var failed = 0
    /// Messages that arrived where no receive was posted, or at a queue pair not ready to receive.
    public private(set) var dropped = 0
    /// How often each verbs call was made, by its C name (e.g. "ibv_create_qp", "ibv_post_recv").
    public private(set) var calls: [String: Int] = [:]
    /// When true, each device numbers its queue pairs from 0x101, as separate hosts do (so QP
    /// numbers collide across devices and only LID/GID + QPN names a queue pair).
    public var numbersQueuePairsPerDevice = false

    private var devices: [DeviceInfo]
    private var rng: SplitMix64
    private var failNext: [String: VerbsError] = [:]
    private var responders: [UInt32: FakeRemoteResponder] = [:]

    private struct Queue {
        var entries: Int
        var completions: [WorkCompletion] = []
        var armed = false
        var fired = false
    }

    private struct Pair {
        var device: String
        var type: QueuePairType
        var queue: Int
        var slots: Int
        var number: UInt32
        var state: QueuePairState = .reset
        var port: UInt8 = 0
        var qKey: UInt32 = 0
        var remote: QueuePairAddress?
        var mtu = 0
        var receives: [UInt64] = []
        var sendsOutstanding = 0
    }

    private enum EventKind {
        case complete(queuePair: Int, WorkCompletion, freesSend: Bool)
        case arrive(
            queuePair: Int, immediate: UInt32, opcode: CompletionOpcode, from: UInt32, lid: UInt16, gid: GID?)
        case respond(responder: UInt32, immediate: UInt32, to: Int)
    }

    private struct Event {
        var time: UInt64
        var order: Int
        var kind: EventKind
    }

    private var open: [Int: String] = [:]
    private var queues: [Int: Queue] = [:]
    private var pairs: [Int: Pair] = [:]
    private var addressHandles: [Int: (device: String, port: UInt8, remote: QueuePairAddress)] = [:]
    private var events: [Event] = []
    private var nextHandle = 1
    private var nextOrder = 0
    private var nextQPNumber: [String: UInt32] = [:]

    /// - Parameters:
    ///   - devices: the devices and ports the fake reports.
    ///   - seed: the generator's seed for jitter, loss and failure.
    public init(
        devices: [DeviceInfo], fabric: FakeFabric = FakeFabric(), seed: UInt64 = 1,
        clock: ManualClock = ManualClock()
    ) {
        self.devices = devices
        self.fabric = fabric
        self.rng = SplitMix64(seed: seed)
        self.clock = clock
    }

    /// The next call named `call` (e.g. "ibv_create_qp", "ibv_post_send") throws `code`.
    public func failNextCall(_ call: String, code: Int32) {
        failNext[call] = VerbsError(call: call, code: code, detail: "injected by FakeVerbs")
    }

    /// Adds a queue pair on another host that answers what it receives.
    public func addRemoteResponder(_ responder: FakeRemoteResponder) {
        responders[responder.address.qpNumber] = responder
    }

    /// The state of a queue pair, for tests.
    public func state(of queuePair: QueuePairHandle) -> QueuePairState? { pairs[queuePair.rawValue]?.state }

    /// How many receives a queue pair has posted and not yet consumed.
    public func postedReceives(_ queuePair: QueuePairHandle) -> Int {
        pairs[queuePair.rawValue]?.receives.count ?? 0
    }

    /// Events still scheduled (messages in flight, completions to come).
    public var pendingEvents: Int { events.count }

    /// How many queue pairs, address handles, open devices and CQs are alive (to check that their
    /// owners free them).
    public var liveQueuePairs: Int { pairs.count }
    public var liveAddressHandles: Int { addressHandles.count }
    public var liveDevices: Int { open.count }
    public var liveCompletionQueues: Int { queues.count }

    /// The path MTU a queue pair was connected with (RC; 0 before RTR).
    public func pathMTU(of queuePair: QueuePairHandle) -> Int? { pairs[queuePair.rawValue]?.mtu }

    /// Moves a queue pair to ERR as a local error would (a UD send error, a CQ overrun): what it has
    /// posted is flushed, and later posts complete flushed.
    public func forceError(_ queuePair: QueuePairHandle) {
        guard var pair = pairs[queuePair.rawValue] else { return }
        pair.state = .error
        for receive in pair.receives {
            push(
                WorkCompletion(workRequestID: receive, status: .flushed, opcode: .receive, qpNumber: pair.number),
                to: pair.queue)
        }
        pair.receives = []
        pairs[queuePair.rawValue] = pair
    }

    private func check(_ call: String) throws(VerbsError) {
        calls[call, default: 0] += 1
        if let error = failNext.removeValue(forKey: call) { throw error }
    }

    private func newHandle() -> Int {
        defer { nextHandle += 1 }
        return nextHandle
    }

    // MARK: VerbsAPI

    public func deviceNames() throws(VerbsError) -> [String] {
        if let listError { throw listError }
        try check("ibv_get_device_list")
        return devices.map(\.name)
    }

    public func openDevice(_ name: String) throws(VerbsError) -> DeviceHandle {
        if let listError { throw listError }
        try check("ibv_open_device")
        guard devices.contains(where: { $0.name == name }) else {
            throw VerbsError(call: "ibv_open_device", code: 19 /* ENODEV */, detail: name)
        }
        let id = newHandle()
        open[id] = name
        return DeviceHandle(id)
    }

    public func closeDevice(_ device: DeviceHandle) { open[device.rawValue] = nil }

    public func queryDevice(_ device: DeviceHandle) throws(VerbsError) -> DeviceInfo {
        try check("ibv_query_device")
        guard let name = open[device.rawValue], let info = devices.first(where: { $0.name == name }) else {
            preconditionFailure("unknown device handle")
        }
        return info
    }

    public func createCompletionQueue(
        _ device: DeviceHandle, entries: Int
    ) throws(VerbsError)
        -> CompletionQueueHandle
    {
        try check("ibv_create_cq")
        precondition(open[device.rawValue] != nil, "unknown device handle")
        let id = newHandle()
        queues[id] = Queue(entries: entries)
        return CompletionQueueHandle(id)
    }

    public func destroyCompletionQueue(_ queue: CompletionQueueHandle) { queues[queue.rawValue] = nil }

    public func createQueuePair(
        _ device: DeviceHandle, type: QueuePairType, completionQueue: CompletionQueueHandle, slots: Int
    ) throws(VerbsError) -> QueuePairHandle {
        try check("ibv_create_qp")
        guard let name = open[device.rawValue], queues[completionQueue.rawValue] != nil else {
            preconditionFailure("unknown device or completion queue handle")
        }
        let id = newHandle()
        let numbering = numbersQueuePairsPerDevice ? name : ""
        let number = nextQPNumber[numbering, default: 0x000101]
        nextQPNumber[numbering] = number + 1
        pairs[id] = Pair(device: name, type: type, queue: completionQueue.rawValue, slots: slots, number: number)
        return QueuePairHandle(id)
    }

    public func queuePairNumber(_ queuePair: QueuePairHandle) -> UInt32 { pairs[queuePair.rawValue]!.number }

    public func modifyQueuePair(
        _ queuePair: QueuePairHandle, _ transition: QueuePairTransition
    ) throws(VerbsError) {
        try check("ibv_modify_qp")
        guard var pair = pairs[queuePair.rawValue] else { preconditionFailure("unknown queue pair handle") }
        let invalid = VerbsError(
            call: "ibv_modify_qp", code: 22 /* EINVAL */,
            detail: "qpn \(pair.number) \(pair.state.rawValue) -> \(transition)")
        switch transition {
        case .reset:
            pair = Pair(
                device: pair.device, type: pair.type, queue: pair.queue, slots: pair.slots,
                number: pair.number)
            events.removeAll {
                if case .complete(let id, _, _) = $0.kind { id == queuePair.rawValue } else { false }
            }
        case .initialize(let port, let qKey):
            guard pair.state == .reset else { throw invalid }
            guard let device = devices.first(where: { $0.name == pair.device }),
                device.ports.contains(where: { $0.number == port })
            else { throw invalid }
            pair.state = .initialized
            pair.port = port
            pair.qKey = qKey
        case .readyToReceive(let remote, let mtu, _):
            guard pair.state == .initialized else { throw invalid }
            pair.state = .readyToReceive
            if pair.type == .rc {
                pair.remote = remote
                pair.mtu = mtu
            }
        case .readyToSend:
            guard pair.state == .readyToReceive else { throw invalid }
            pair.state = .readyToSend
        }
        pairs[queuePair.rawValue] = pair
    }

    public func destroyQueuePair(_ queuePair: QueuePairHandle) {
        pairs[queuePair.rawValue] = nil
        events.removeAll {
            switch $0.kind {
            case .complete(let id, _, _), .arrive(let id, _, _, _, _, _), .respond(_, _, let id):
                id == queuePair.rawValue
            }
        }
    }

    public func createAddressHandle(
        _ device: DeviceHandle, port: UInt8, remote: QueuePairAddress
    ) throws(VerbsError)
        -> AddressHandleHandle
    {
        try check("ibv_create_ah")
        guard let name = open[device.rawValue] else { preconditionFailure("unknown device handle") }
        let id = newHandle()
        addressHandles[id] = (name, port, remote)
        return AddressHandleHandle(id)
    }

    public func createAddressHandle(
        _ device: DeviceHandle, port: UInt8, replyingTo completion: WorkCompletion, on queuePair: QueuePairHandle
    ) throws(VerbsError) -> AddressHandleHandle {
        try check("ibv_create_ah_from_wc")
        guard let name = open[device.rawValue], pairs[queuePair.rawValue] != nil else {
            preconditionFailure("unknown device or queue pair handle")
        }
        let id = newHandle()
        addressHandles[id] = (
            name, port,
            QueuePairAddress(lid: completion.sourceLID, gid: completion.sourceGID, qpNumber: completion.sourceQPNumber)
        )
        return AddressHandleHandle(id)
    }

    public func destroyAddressHandle(_ handle: AddressHandleHandle) { addressHandles[handle.rawValue] = nil }

    public func postReceive(_ queuePair: QueuePairHandle, workRequestID: UInt64) throws(VerbsError) {
        try check("ibv_post_recv")
        guard var pair = pairs[queuePair.rawValue] else { preconditionFailure("unknown queue pair handle") }
        guard pair.state != .reset else {
            throw VerbsError(call: "ibv_post_recv", code: 22, detail: "qpn \(pair.number) in RESET")
        }
        guard pair.receives.count < pair.slots else {
            throw VerbsError(call: "ibv_post_recv", code: 12 /* ENOMEM */, detail: "qpn \(pair.number) full")
        }
        if pair.state == .error {
            schedule(
                at: clock.nanoseconds,
                .complete(
                    queuePair: queuePair.rawValue,
                    WorkCompletion(
                        workRequestID: workRequestID, status: .flushed, opcode: .receive,
                        qpNumber: pair.number),
                    freesSend: false))
            return
        }
        pair.receives.append(workRequestID)
        pairs[queuePair.rawValue] = pair
    }

    public func postSend(
        _ queuePair: QueuePairHandle, workRequestID: UInt64, immediate: UInt32, kind: SendKind,
        to destination: SendDestination
    ) throws(VerbsError) {
        try check("ibv_post_send")
        guard var pair = pairs[queuePair.rawValue] else { preconditionFailure("unknown queue pair handle") }
        let now = clock.nanoseconds
        let sendOpcode: CompletionOpcode = kind == .sendWithImmediate ? .send : .rdmaWrite
        if pair.state == .error {
            schedule(
                at: now,
                .complete(
                    queuePair: queuePair.rawValue,
                    WorkCompletion(
                        workRequestID: workRequestID, status: .flushed, opcode: sendOpcode,
                        qpNumber: pair.number),
                    freesSend: false))
            return
        }
        guard pair.state == .readyToSend else {
            throw VerbsError(
                call: "ibv_post_send", code: 22, detail: "qpn \(pair.number) in \(pair.state.rawValue)")
        }
        guard pair.sendsOutstanding < pair.slots else {
            throw VerbsError(call: "ibv_post_send", code: 12, detail: "qpn \(pair.number) send queue full")
        }
        let target: QueuePairAddress
        switch destination {
        case .connected:
            guard pair.type == .rc, let remote = pair.remote else {
                throw VerbsError(
                    call: "ibv_post_send", code: 22, detail: "qpn \(pair.number) has no connection")
            }
            target = remote
        case .datagram(let handle, let qpNumber, let qKey):
            guard pair.type == .ud, let ah = addressHandles[handle.rawValue] else {
                throw VerbsError(
                    call: "ibv_post_send", code: 22, detail: "qpn \(pair.number) bad address handle")
            }
            target = QueuePairAddress(lid: ah.remote.lid, gid: ah.remote.gid, qpNumber: qpNumber, psn: qKey)
        }
        pair.sendsOutstanding += 1
        pairs[queuePair.rawValue] = pair
        let fate = decideFate(for: target.qpNumber)
        let sent = WorkCompletion(
            workRequestID: workRequestID, status: .success, opcode: sendOpcode, qpNumber: pair.number)
        let sourcePort = port(of: pair)
        let sourceLID = sourcePort?.lid ?? 0
        let sourceGID = sourcePort.flatMap { port in port.probeGIDIndex.flatMap { port.gids[$0] } }
        let receiveOpcode: CompletionOpcode =
            kind == .sendWithImmediate ? .receive : .receiveRDMAWithImmediate
        switch fate {
        case .deliver(let delay):
            delivered += 1
            schedule(at: now + delay, .complete(queuePair: queuePair.rawValue, sent, freesSend: true))
            if let local = localPair(target) {
                // A UD target carries the send's Q_Key in `psn`; a wrong one is dropped silently.
                if pair.type == .ud, pairs[local]!.qKey != target.psn { break }
                schedule(
                    at: now + delay,
                    .arrive(
                        queuePair: local, immediate: immediate, opcode: receiveOpcode, from: pair.number,
                        lid: sourceLID, gid: sourceGID))
            } else if let responder = responders[target.qpNumber] {
                schedule(
                    at: now + delay + responder.turnaroundNanoseconds,
                    .respond(
                        responder: target.qpNumber, immediate: immediate, to: queuePair.rawValue))
            }
        case .lose:
            lost += 1
            if pair.type == .ud {
                schedule(
                    at: now + fabric.oneWayNanoseconds,
                    .complete(queuePair: queuePair.rawValue, sent, freesSend: true))
            }
        case .fail(let status):
            failed += 1
            var error = sent
            error.status = status
            schedule(
                at: now + fabric.oneWayNanoseconds,
                .complete(queuePair: queuePair.rawValue, error, freesSend: true))
        }
    }

    public func pollCompletions(
        _ queue: CompletionQueueHandle, maximum: Int
    ) throws(VerbsError) -> [WorkCompletion] {
        try check("ibv_poll_cq")
        runDueEvents()
        guard var entry = queues[queue.rawValue] else {
            preconditionFailure("unknown completion queue handle")
        }
        let taken = Array(entry.completions.prefix(maximum))
        entry.completions.removeFirst(taken.count)
        queues[queue.rawValue] = entry
        return taken
    }

    public func requestNotification(_ queue: CompletionQueueHandle) throws(VerbsError) {
        try check("ibv_req_notify_cq")
        queues[queue.rawValue]!.armed = true
    }

    /// Advances the manual clock to the next scheduled event until an armed queue of `queues` fires,
    /// or by the whole timeout. As with the real channel, only a completion added after arming fires
    /// it.
    public func waitForCompletion(
        _ waited: [CompletionQueueHandle], wake: Int32?, timeoutNanoseconds: UInt64
    ) throws(VerbsError)
        -> Bool
    {
        try check("ibv_get_cq_event")
        let deadline = clock.nanoseconds + timeoutNanoseconds
        while true {
            if let wake {
                // Another thread woke the waiter: return at once, as poll(2) would.
                var descriptor = pollfd(fd: wake, events: Int16(POLLIN), revents: 0)
                if poll(&descriptor, 1, 0) > 0 { return false }
            }
            runDueEvents()
            var fired = false
            for queue in waited where queues[queue.rawValue]!.fired {
                queues[queue.rawValue]!.fired = false
                fired = true
            }
            if fired { return true }
            guard let next = events.map(\.time).min(), next <= deadline else {
                clock.advance(to: deadline)
                return false
            }
            clock.advance(to: next)
        }
    }

    // MARK: The simulated fabric

    /// Runs every event due at the clock's time, in time order then posting order.
    public func runDueEvents() {
        while true {
            let now = clock.nanoseconds
            guard
                let index = events.indices.filter({ events[$0].time <= now })
                    .min(by: { (events[$0].time, events[$0].order) < (events[$1].time, events[$1].order) })
            else { return }
            let event = events.remove(at: index)
            run(event.kind)
        }
    }

    private func run(_ kind: EventKind) {
        switch kind {
        case .complete(let id, let completion, let freesSend):
            guard var pair = pairs[id] else { return }
            if freesSend { pair.sendsOutstanding -= 1 }
            // The completion first; then, for an RC error, the flushes it causes (the hardware's order).
            push(completion, to: pair.queue)
            if completion.status != .success, completion.status != .flushed, pair.type == .rc {
                // An RC error moves the queue pair to ERR and flushes what it had posted.
                pair.state = .error
                for receive in pair.receives {
                    push(
                        WorkCompletion(
                            workRequestID: receive, status: .flushed, opcode: .receive, qpNumber: pair.number),
                        to: pair.queue)
                }
                pair.receives = []
            }
            pairs[id] = pair
        case .arrive(let id, let immediate, let opcode, let source, let lid, let gid):
            guard var pair = pairs[id], pair.state == .readyToReceive || pair.state == .readyToSend,
                !pair.receives.isEmpty
            else {
                dropped += 1
                return
            }
            let receive = pair.receives.removeFirst()
            pairs[id] = pair
            push(
                WorkCompletion(
                    workRequestID: receive, status: .success, opcode: opcode, qpNumber: pair.number,
                    immediate: immediate, sourceQPNumber: source, sourceLID: lid, sourceGID: gid), to: pair.queue)
        case .respond(let number, let immediate, let id):
            guard let responder = responders[number], let answer = responder.reply(immediate) else { return }
            switch decideFate(for: pairs[id]?.number ?? 0) {
            case .deliver(let delay):
                delivered += 1
                schedule(
                    at: clock.nanoseconds + delay,
                    .arrive(
                        queuePair: id, immediate: answer, opcode: .receive, from: number,
                        lid: responder.address.lid, gid: responder.address.gid))
            case .lose, .fail:
                lost += 1
            }
        }
    }

    private func push(_ completion: WorkCompletion, to queue: Int) {
        guard var entry = queues[queue] else { return }
        guard entry.completions.count < entry.entries else { return }  // CQ overrun: the real one errors
        entry.completions.append(completion)
        if entry.armed {
            entry.armed = false
            entry.fired = true
        }
        queues[queue] = entry
    }

    private func schedule(at time: UInt64, _ kind: EventKind) {
        events.append(Event(time: time, order: nextOrder, kind: kind))
        nextOrder += 1
    }

    private func decideFate(for destination: UInt32) -> FakeFate {
        if !script.isEmpty { return script.removeFirst() }
        let path = pathOverrides[destination] ?? fabric
        let draw = rng.nextUnit()
        if draw < path.lossRate { return .lose }
        if draw < path.lossRate + path.failureRate { return .fail(.retryExceeded) }
        let jitter = path.jitterNanoseconds > 0 ? rng.next() % path.jitterNanoseconds : 0
        return .deliver(afterNanoseconds: path.oneWayNanoseconds + jitter)
    }

    /// The queue pair `target` names: its number on the port with its LID (or, on RoCE, GID).
    private func localPair(_ target: QueuePairAddress) -> Int? {
        pairs.first { entry in
            guard entry.value.number == target.qpNumber, let port = port(of: entry.value) else { return false }
            if let gid = target.gid { return port.gids.values.contains(gid) }
            return port.lid == target.lid
        }?.key
    }

    private func port(of pair: Pair) -> PortInfo? {
        devices.first { $0.name == pair.device }?.ports.first { $0.number == pair.port }
    }
}

@available(*, unavailable) extension FakeVerbs: Sendable {}

/// SplitMix64: a small, seeded, repeatable generator.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
