// What one prober measured for one pair in a window: probes sent, lost, not sendable, late replies
// and round-trip times; and the configuration the probers share.

import Verbs

/// Counts and RTTs of one pair (wire-v1.md §3: `sent`, `lost`, `errors`; RTTs go into the sketch).
public struct ProbeTally: Hashable, Sendable {
    /// Probes put on the wire (a post_send that succeeded).
    public var sent = 0
    /// Sent probes with no reply within the timeout, or whose send completed with an error.
    public var lost = 0
    /// Probes that could not be posted at all (a local failure); not in `sent`.
    public var errors = 0
    /// Replies that came after their probe had been counted lost (not counted again).
    public var late = 0
    /// Completions with an error status (RETRY_EXC_ERR, flushes after it), for diagnosis.
    public var failedCompletions = 0
    /// Round-trip times of the `sent - lost` probes that returned, in nanoseconds, in order.
    public var rttNanoseconds: [UInt64] = []
    /// The last local failure, for the agent's log.
    public var lastError: VerbsError?

    public init() {}
}

/// Settings shared by the loopback and peer probers.
public struct ProbeConfiguration: Hashable, Sendable {
    /// A probe with no reply after this long is lost.
    public var timeoutNanoseconds: UInt64
    /// Empty polls of the CQ before arming the completion channel and sleeping on it.
    public var spinPolls: Int
    /// SEND with immediate, or RDMA WRITE with immediate (RC loopback only; UD has no RDMA).
    public var sendKind: SendKind
    /// Receive and send buffers per queue pair (the most probes in flight).
    public var slots: Int

    public init(
        timeoutNanoseconds: UInt64 = 5_000_000, spinPolls: Int = 200, sendKind: SendKind = .sendWithImmediate,
        slots: Int = 64
    ) {
        precondition(slots > 0 && timeoutNanoseconds > 0 && spinPolls >= 0)
        self.timeoutNanoseconds = timeoutNanoseconds
        self.spinPolls = spinPolls
        self.sendKind = sendKind
        self.slots = slots
    }
}

/// The immediate's top bit marks a reply; the low 31 bits are the probe's sequence number.
public enum ProbeImmediate {
    public static let replyBit: UInt32 = 0x8000_0000
    public static let sequenceMask: UInt32 = 0x7FFF_FFFF
}

/// A completion, the completion queue it was polled from (queue pair numbers are per device, so
/// the queue tells whose it is when several devices are polled together) and the monotonic time of
/// that queue's poll (a reply's receive time).
public struct PolledCompletion: Hashable, Sendable {
    public var queue: CompletionQueueHandle
    public var completion: WorkCompletion
    public var polledAt: UInt64

    public init(queue: CompletionQueueHandle, completion: WorkCompletion, polledAt: UInt64 = 0) {
        self.queue = queue
        self.completion = completion
        self.polledAt = polledAt
    }
}

/// An open device, its description and the completion queue its probers share: whoever opened it
/// (the agent's engine, or a prober made by device name) destroys the CQ and closes the device.
public struct ProbeDevice: Hashable, Sendable {
    public var handle: DeviceHandle
    public var info: DeviceInfo
    public var queue: CompletionQueueHandle

    public init(handle: DeviceHandle, info: DeviceInfo, queue: CompletionQueueHandle) {
        self.handle = handle
        self.info = info
        self.queue = queue
    }
}

/// Where `nextCompletions` polls into, kept by its caller so a sweep allocates nothing, and the
/// per-queue poll errors it met (each counted; the other queues' completions are kept).
public struct CompletionSweep {
    public var polled: [PolledCompletion] = []
    public var pollErrors = 0
    public var lastError: VerbsError?
    var scratch: [WorkCompletion] = []

    public init() {
        polled.reserveCapacity(256)
        scratch.reserveCapacity(64)
    }
}

/// Spins `spinPolls` times on the CQs, then arms them, polls once more (a completion that came
/// between the last poll and the arming would not fire a channel), and sleeps on their channels
/// (and `wake`) until `deadline`. Leaves what it polled in `sweep.polled`, each stamped when its
/// queue was polled; empty at the deadline or on a wake. A queue whose poll fails is counted in
/// `sweep` and skipped; throws only when nothing was polled and some queue failed, or the wait
/// failed, so the caller can back off. The one way every prober waits.
public func nextCompletions(
    _ api: any VerbsAPI, _ queues: [CompletionQueueHandle], clock: any MonotonicClock, deadline: UInt64,
    spinPolls: Int, wake: Int32? = nil, into sweep: inout CompletionSweep
) throws(VerbsError) {
    func pollAll() throws(VerbsError) -> Bool {
        var failed: VerbsError?
        for queue in queues {
            sweep.scratch.removeAll(keepingCapacity: true)
            do {
                _ = try api.pollCompletions(queue, maximum: 16, into: &sweep.scratch)
            } catch {
                sweep.pollErrors += 1
                sweep.lastError = error
                failed = error
            }
            let now = clock.nanoseconds
            for completion in sweep.scratch {
                sweep.polled.append(PolledCompletion(queue: queue, completion: completion, polledAt: now))
            }
        }
        if !sweep.polled.isEmpty { return true }
        if let failed { throw failed }
        return false
    }
    sweep.polled.removeAll(keepingCapacity: true)
    guard !queues.isEmpty else { return }
    for _ in 0..<spinPolls where try pollAll() { return }
    while true {
        for queue in queues { try api.requestNotification(queue) }
        if try pollAll() { return }
        let now = clock.nanoseconds
        if now >= deadline { return }
        guard try api.waitForCompletion(queues, wake: wake, timeoutNanoseconds: deadline - now) else { return }
        if try pollAll() { return }
        // A spurious wake-up (the event was for completions already polled): arm again.
    }
}

/// `nextCompletions` into a fresh sweep, for the probers' own blocking loops.
public func nextCompletions(
    _ api: any VerbsAPI, _ queues: [CompletionQueueHandle], clock: any MonotonicClock, deadline: UInt64,
    spinPolls: Int
) throws(VerbsError) -> [PolledCompletion] {
    var sweep = CompletionSweep()
    try nextCompletions(api, queues, clock: clock, deadline: deadline, spinPolls: spinPolls, into: &sweep)
    return sweep.polled
}

/// Opens `name` with one completion queue of `entries`, closing what was opened if a step fails.
func openProbeDevice(_ api: any VerbsAPI, _ name: String, entries: Int) throws(VerbsError) -> ProbeDevice {
    let handle = try api.openDevice(name)
    do {
        let info = try api.queryDevice(handle)
        return ProbeDevice(handle: handle, info: info, queue: try api.createCompletionQueue(handle, entries: entries))
    } catch {
        api.closeDevice(handle)
        throw error
    }
}

/// Work request IDs: the low 32 bits pick a buffer slot (RealVerbs takes them modulo the slots),
/// bits 32...62 carry the queue pair's epoch (bumped at each reset, so completions from before
/// it are recognised and ignored), bit 63 marks a send (an error completion's opcode is undefined).
enum WorkRequestID {
    static let sendBit: UInt64 = 1 << 63
    static func make(epoch: UInt32, low: UInt32, send: Bool) -> UInt64 {
        (send ? sendBit : 0) | UInt64(epoch & 0x7FFF_FFFF) << 32 | UInt64(low)
    }
    static func epoch(_ id: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: id >> 32) & 0x7FFF_FFFF }
    static func low(_ id: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: id) }
    static func isSend(_ id: UInt64) -> Bool { id & sendBit != 0 }
}

/// The port `number` of `info`, or an error naming the device.
func findPort(_ info: DeviceInfo, _ number: UInt8) throws(VerbsError) -> PortInfo {
    guard let port = info.ports.first(where: { $0.number == number }) else {
        throw VerbsError(
            call: "ibv_query_port", code: 19 /* ENODEV */, detail: "\(info.name) has no port \(number)")
    }
    return port
}

/// The address of a local queue pair on `port`: its LID, and on RoCE its GID and GID index.
func localAddress(_ port: PortInfo, qpNumber: UInt32, psn: UInt32) -> QueuePairAddress {
    if let index = port.probeGIDIndex, let gid = port.gids[index] {
        return QueuePairAddress(lid: port.lid, gid: gid, gidIndex: index, qpNumber: qpNumber, psn: psn)
    }
    return QueuePairAddress(lid: port.lid, qpNumber: qpNumber, psn: psn)
}
