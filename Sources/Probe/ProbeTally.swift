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

/// A completion and the completion queue it was polled from (queue pair numbers are per device,
/// so the queue tells whose it is when several devices are polled together).
public struct PolledCompletion: Hashable, Sendable {
    public var queue: CompletionQueueHandle
    public var completion: WorkCompletion
}

/// Spins on the CQs, then arms their channels, polls once more (a completion that came between
/// the last poll and the arming would not fire a channel), and sleeps on the channels until
/// `deadline`. Returns what it polled; empty at the deadline. The one way every prober waits.
public func nextCompletions(
    _ api: any VerbsAPI, _ queues: [CompletionQueueHandle], clock: any MonotonicClock, deadline: UInt64,
    spinPolls: Int
) throws(VerbsError) -> [PolledCompletion] {
    func pollAll() throws(VerbsError) -> [PolledCompletion] {
        var polled: [PolledCompletion] = []
        for queue in queues {
            for completion in try api.pollCompletions(queue, maximum: 16) {
                polled.append(PolledCompletion(queue: queue, completion: completion))
            }
        }
        return polled
    }
    guard !queues.isEmpty else { return [] }
    for _ in 0..<spinPolls {
        let polled = try pollAll()
        if !polled.isEmpty { return polled }
    }
    while true {
        for queue in queues { try api.requestNotification(queue) }
        let polled = try pollAll()
        if !polled.isEmpty { return polled }
        let now = clock.nanoseconds
        if now >= deadline { return [] }
        if try api.waitForCompletion(queues, timeoutNanoseconds: deadline - now) {
            let polled = try pollAll()
            if !polled.isEmpty { return polled }
            // A spurious wake-up (the event was for completions already polled): arm again.
        } else {
            return []
        }
    }
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
