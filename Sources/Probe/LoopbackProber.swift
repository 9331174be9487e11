// RC round trips inside one host: two RC queue pairs connected to each other, either on the same
// port (loopback per rail) or on two NICs of the host (NIC↔NIC); one pings (SEND or RDMA WRITE
// with immediate), the other answers at once; the RTT is read from a monotonic clock. Pure logic
// over VerbsAPI, so the same code runs on the fake.

import Verbs

/// Probes one port through the NIC and back, or one NIC to another in the same host. Blocking in
/// `probe(count:)` (it sleeps on the completion channel): run it on a thread of its own, never on
/// the cooperative pool. `post()` and `handle(_:tally:)` are the non-blocking halves, for a caller
/// that polls the queues itself (the agent's verbs transport). Not Sendable.
public final class LoopbackProber {
    let api: any VerbsAPI
    let clock: any MonotonicClock
    let configuration: ProbeConfiguration
    /// The pinger's port and device.
    public let port: PortInfo
    public let deviceName: String
    /// The responder's port and device: the pinger's for a loopback, another NIC's for NIC↔NIC.
    public let responderPort: PortInfo
    public let responderDeviceName: String
    let queue: CompletionQueueHandle
    /// The responder's CQ: `queue` itself when both sides are on one device.
    let responderQueue: CompletionQueueHandle
    let pinger: QueuePairHandle
    let responder: QueuePairHandle
    let pingerNumber: UInt32
    let responderNumber: UInt32
    /// Devices and CQs this prober opened itself (made by device name), freed in deinit.
    private var owned: [ProbeDevice] = []
    private var sequence: UInt32 = 0
    /// Bumped at each reconnect: completions of older work requests are ignored.
    private var epoch: UInt32 = 0
    /// True after a completion error moved the queue pairs to ERR; the next probe reconnects.
    private var broken = false
    /// How often the pair was reset and reconnected after an error.
    public private(set) var reconnects = 0

    /// Creates both queue pairs on devices someone else opened (and will close), their completions
    /// going to the devices' shared CQs, connects them to each other and posts their receives.
    /// Without `responder` both are on `device`'s `port` (a loopback); with it, the responder is
    /// on that device's `responderPort` (NIC↔NIC). Throws the first verbs call that fails, having
    /// destroyed what it created.
    public init(
        api: any VerbsAPI, clock: any MonotonicClock, device: ProbeDevice, port portNumber: UInt8,
        responder responderDevice: ProbeDevice? = nil, responderPort responderPortNumber: UInt8? = nil,
        configuration: ProbeConfiguration = ProbeConfiguration()
    ) throws(VerbsError) {
        self.api = api
        self.clock = clock
        self.configuration = configuration
        deviceName = device.info.name
        let other = responderDevice ?? device
        responderDeviceName = other.info.name
        port = try findPort(device.info, portNumber)
        responderPort = try findPort(other.info, responderPortNumber ?? portNumber)
        queue = device.queue
        responderQueue = other.queue
        pinger = try api.createQueuePair(
            device.handle, type: .rc, completionQueue: queue, slots: configuration.slots)
        do {
            responder = try api.createQueuePair(
                other.handle, type: .rc, completionQueue: responderQueue, slots: configuration.slots)
        } catch {
            api.destroyQueuePair(pinger)
            throw error
        }
        pingerNumber = api.queuePairNumber(pinger)
        responderNumber = api.queuePairNumber(responder)
        // Every property is set: if connecting throws, deinit destroys both queue pairs.
        try connectPair()
    }

    /// Opens the device(s) and a CQ each for this prober alone (freed with it), then as above.
    public convenience init(
        api: any VerbsAPI, clock: any MonotonicClock, deviceName: String, port portNumber: UInt8,
        responderDevice: String? = nil, responderPort responderPortNumber: UInt8? = nil,
        configuration: ProbeConfiguration = ProbeConfiguration()
    ) throws(VerbsError) {
        let entries = 4 * configuration.slots
        let device = try openProbeDevice(api, deviceName, entries: entries)
        var opened = [device]
        do {
            var other: ProbeDevice?
            if let name = responderDevice, name != deviceName {
                other = try openProbeDevice(api, name, entries: entries)
                opened.append(other!)
            }
            try self.init(
                api: api, clock: clock, device: device, port: portNumber, responder: other,
                responderPort: responderPortNumber, configuration: configuration)
        } catch {
            for device in opened { closeProbeDevice(api, device) }
            throw error
        }
        owned = opened
    }

    deinit {
        api.destroyQueuePair(pinger)
        api.destroyQueuePair(responder)
        for device in owned { closeProbeDevice(api, device) }
    }

    /// The completion queues to poll for this prober: one, or two for NIC↔NIC.
    public var completionQueues: [CompletionQueueHandle] {
        queue == responderQueue ? [queue] : [queue, responderQueue]
    }

    /// Whose completions are this prober's: (CQ, queue pair number) of the pinger and responder.
    public var queuePairs: [(queue: CompletionQueueHandle, number: UInt32)] {
        [(queue, pingerNumber), (responderQueue, responderNumber)]
    }

    /// RESET → INIT → RTR → RTS for each towards the other, then a full ring of receives each. Both
    /// use the smaller of the two ports' MTUs.
    private func connectPair() throws(VerbsError) {
        let pingerAddress = localAddress(port, qpNumber: pingerNumber, psn: 0x1000)
        let responderAddress = localAddress(responderPort, qpNumber: responderNumber, psn: 0x2000)
        // A remote's gidIndex is the local port's to send from (RoCE).
        var towardsResponder = responderAddress
        towardsResponder.gidIndex = pingerAddress.gidIndex
        var towardsPinger = pingerAddress
        towardsPinger.gidIndex = responderAddress.gidIndex
        let mtu = min(port.mtu, responderPort.mtu)
        try api.connect(pinger, port: port.number, remote: towardsResponder, localPSN: pingerAddress.psn, mtu: mtu)
        try api.connect(
            responder, port: responderPort.number, remote: towardsPinger, localPSN: responderAddress.psn, mtu: mtu)
        for slot in 0..<UInt32(configuration.slots) {
            let id = WorkRequestID.make(epoch: epoch, low: slot, send: false)
            try api.postReceive(pinger, workRequestID: id)
            try api.postReceive(responder, workRequestID: id)
        }
    }

    /// Resets both queue pairs and connects them again (after an error moved them to ERR). What the
    /// error left in the CQs (flushed receives and sends) carries the old epoch and is ignored.
    private func reconnect() throws(VerbsError) {
        try api.modifyQueuePair(pinger, .reset)
        try api.modifyQueuePair(responder, .reset)
        epoch = (epoch + 1) & 0x7FFF_FFFF
        try connectPair()
        broken = false
        reconnects += 1
    }

    /// Posts one ping with the next sequence number (31 bits), reconnecting first if an error
    /// broke the pair. Returns the sequence and the monotonic time just before the post. Does not
    /// block. Throws if the reconnect or the post fails (the probe was not sent).
    public func post() throws(VerbsError) -> (sequence: UInt32, sentAt: UInt64) {
        if broken { try reconnect() }
        sequence = (sequence + 1) & ProbeImmediate.sequenceMask
        let current = sequence
        let sentAt = clock.nanoseconds
        try api.postSend(
            pinger, workRequestID: WorkRequestID.make(epoch: epoch, low: current, send: true), immediate: current,
            kind: configuration.sendKind, to: .connected)
        return (current, sentAt)
    }

    /// Handles one completion polled from `completionQueues`: reposts the consumed receive, lets the
    /// responder answer a ping, and marks the pair broken on an error status (counted in `tally`).
    /// Returns the sequence of the reply this completion carried to the pinger, if it was one.
    public func handle(_ polled: PolledCompletion, tally: inout ProbeTally) -> UInt32? {
        let completion = polled.completion
        // From before the last reconnect (flushes of the old connection): nothing to do.
        guard WorkRequestID.epoch(completion.workRequestID) == epoch else { return nil }
        guard completion.status == .success else {
            if completion.status != .flushed { tally.failedCompletions += 1 }
            broken = true
            return nil
        }
        let isPinger = polled.queue == queue && completion.qpNumber == pingerNumber
        switch completion.opcode {
        case .receive, .receiveRDMAWithImmediate:
            do {
                try api.postReceive(isPinger ? pinger : responder, workRequestID: completion.workRequestID)
            } catch {
                tally.lastError = error
                broken = true
            }
            guard let immediate = completion.immediate else { return nil }
            if !isPinger {
                // The responder: answer the ping with the same sequence and the reply bit.
                do {
                    try api.postSend(
                        responder, workRequestID: WorkRequestID.make(epoch: epoch, low: immediate, send: true),
                        immediate: immediate | ProbeImmediate.replyBit,
                        kind: configuration.sendKind, to: .connected)
                } catch {
                    tally.lastError = error
                }
                return nil
            }
            guard immediate & ProbeImmediate.replyBit != 0 else { return nil }
            return immediate & ProbeImmediate.sequenceMask
        default:
            return nil  // a send completed: nothing to do
        }
    }

    /// Sends `count` probes one after another, each waiting for its reply or its timeout.
    public func probe(count: Int) -> ProbeTally {
        var tally = ProbeTally()
        for _ in 0..<count { probeOnce(&tally) }
        return tally
    }

    private func probeOnce(_ tally: inout ProbeTally) {
        let current: UInt32
        let start: UInt64
        do {
            (current, start) = try post()
        } catch {
            tally.errors += 1
            tally.lastError = error
            return
        }
        tally.sent += 1
        let deadline = start + configuration.timeoutNanoseconds
        while true {
            let completions: [PolledCompletion]
            do {
                completions = try nextCompletions(
                    api, completionQueues, clock: clock, deadline: deadline, spinPolls: configuration.spinPolls)
            } catch {
                tally.lastError = error
                tally.lost += 1
                return
            }
            var answered = false
            for completion in completions {
                guard let reply = handle(completion, tally: &tally) else { continue }
                if reply == current { answered = true } else { tally.late += 1 }
            }
            if answered {
                tally.rttNanoseconds.append(clock.nanoseconds - start)
                return
            }
            if broken || clock.nanoseconds >= deadline {
                tally.lost += 1
                return
            }
        }
    }
}

@available(*, unavailable) extension LoopbackProber: Sendable {}

/// Destroys the CQ of a device opened with `openProbeDevice`, then closes the device.
func closeProbeDevice(_ api: any VerbsAPI, _ device: ProbeDevice) {
    api.destroyCompletionQueue(device.queue)
    api.closeDevice(device.handle)
}
