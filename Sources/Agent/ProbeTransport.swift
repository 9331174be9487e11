// What the scheduler hands a transport and what comes back: one protocol for every way of putting a
// probe on the wire (UDP; verbs RC/UD on hardware). Scheduling, timeouts and aggregation live in
// `ProbeScheduler` and know nothing of sockets or queue pairs.

import FleetModel

/// One pair to probe every window, from the pinglist: `src` (an endpoint of this node) sends,
/// `dst` answers; `path` is what the report carries for it (the pinglist's route).
public struct ProbeTarget: Hashable, Sendable, Comparable {
    public var src: EndpointID
    public var dst: EndpointID
    public var path: [SwitchName]?

    public init(src: EndpointID, dst: EndpointID, path: [SwitchName]? = nil) {
        self.src = src
        self.dst = dst
        self.path = path
    }

    public var isLoopback: Bool { src == dst }

    public static func < (lhs: ProbeTarget, rhs: ProbeTarget) -> Bool {
        (lhs.src, lhs.dst) < (rhs.src, rhs.dst)
    }
}

/// A probe the scheduler wants sent now: its sequence number, its pair, and the monotonic time the
/// scheduler decided it (the transport stamps the real send time into the probe).
public struct ProbeOrder: Hashable, Sendable {
    public var sequence: UInt64
    public var target: ProbeTarget
    public var scheduledAt: UInt64
}

/// A reply the transport matched to one of our probes by session; the scheduler matches sequence.
public struct ProbeReply: Hashable, Sendable {
    public var sequence: UInt64
    /// The monotonic send time the probe carried out and the reply carried back.
    public var sentAt: UInt64
    /// The monotonic time the reply arrived (the kernel's receive time where the transport has it).
    public var receivedAt: UInt64
    /// How long the responder held the probe before answering (its own time, not the network's),
    /// taken off the RTT; 0 where the answer is the hardware's (verbs).
    public var responderHold: UInt64

    public init(sequence: UInt64, sentAt: UInt64, receivedAt: UInt64, responderHold: UInt64 = 0) {
        self.sequence = sequence
        self.sentAt = sentAt
        self.receivedAt = receivedAt
        self.responderHold = responderHold
    }

    /// The path's round trip for a probe sent at `sentAt`: arrival minus sending, less the
    /// responder's hold (unless the hold is longer than the whole round trip: then it is not
    /// believed).
    public func pathTime(sentAt: UInt64) -> UInt64 {
        let roundTrip = receivedAt - sentAt
        return responderHold < roundTrip ? roundTrip - responderHold : roundTrip
    }
}

/// Puts probes on the wire and reports replies. Implementations own their sockets or queue pairs
/// and their receive threads; `send` must not block.
public protocol ProbeTransport: AnyObject, Sendable {
    /// The report's `agent.transport`.
    var kind: Report.Transport { get }
    /// How long a probe waits for its reply before it counts as lost, unless configured.
    var defaultTimeoutNanoseconds: UInt64 { get }
    /// Starts receiving; `onReply` is called from the transport's own thread for every reply to
    /// this transport's probes, `onSendFailed` (order, reason) for a probe that `send` accepted
    /// but that could not be put on the wire after all (a transport that posts from its own thread;
    /// the scheduler counts it in `errors`, as a `.failed` send).
    func start(
        onReply: @escaping @Sendable (ProbeReply) -> Void,
        onSendFailed: @escaping @Sendable (ProbeOrder, String) -> Void
    ) throws
    /// Sends one probe, stamped with the current monotonic time, or queues it for the transport's
    /// thread. `.failed`, with a reason, when it could not be sent at all (the scheduler counts it
    /// in `errors`, not `sent`).
    func send(_ order: ProbeOrder) -> ProbeSendResult
    /// Stops the receive threads; returns when they have ended.
    func stop()
}

public enum ProbeSendResult: Sendable, Equatable {
    case sent
    case failed(String)
}
