// Loopback per rail: two RC queue pairs on the same port connected to each other; one pings (SEND
// or RDMA WRITE with immediate), the other answers at once; the RTT is read from a monotonic
// clock. Pure logic over VerbsAPI, so the same code runs on the fake.

import Verbs

/// Probes one port through the NIC and back. Synchronous and blocking (it sleeps on the completion
/// channel): run it on a thread of its own, never on the cooperative pool. Not Sendable.
public final class LoopbackProber {
    let api: any VerbsAPI
    let clock: any MonotonicClock
    let configuration: ProbeConfiguration
    public let port: PortInfo
    public let deviceName: String
    let device: DeviceHandle
    let queue: CompletionQueueHandle
    let pinger: QueuePairHandle
    let responder: QueuePairHandle
    private var sequence: UInt32 = 0
    /// True after a completion error moved the queue pairs to ERR; the next probe reconnects.
    private var broken = false
    /// How often the pair was reset and reconnected after an error.
    public private(set) var reconnects = 0

    /// Opens `deviceName`, creates the CQ and both queue pairs, connects them to each other and
    /// posts their receives. Throws the first verbs call that fails.
    public init(
        api: any VerbsAPI, clock: any MonotonicClock, deviceName: String, port portNumber: UInt8,
        configuration: ProbeConfiguration = ProbeConfiguration()
    ) throws(VerbsError) {
        self.api = api
        self.clock = clock
        self.configuration = configuration
        self.deviceName = deviceName
        device = try api.openDevice(deviceName)
        port = try findPort(api.queryDevice(device), portNumber)
        queue = try api.createCompletionQueue(device, entries: 4 * configuration.slots)
        pinger = try api.createQueuePair(
            device, type: .rc, completionQueue: queue, slots: configuration.slots)
        do {
            responder = try api.createQueuePair(
                device, type: .rc, completionQueue: queue, slots: configuration.slots)
        } catch {
            api.destroyQueuePair(pinger)
            throw error
        }
        // Every property is set: if connecting throws, deinit destroys both queue pairs.
        try connectPair()
    }

    deinit {
        api.destroyQueuePair(pinger)
        api.destroyQueuePair(responder)
    }

    /// RESET → INIT → RTR → RTS for each towards the other, then a full ring of receives each.
    private func connectPair() throws(VerbsError) {
        let pingerAddress = localAddress(port, qpNumber: api.queuePairNumber(pinger), psn: 0x1000)
        let responderAddress = localAddress(port, qpNumber: api.queuePairNumber(responder), psn: 0x2000)
        try api.connect(
            pinger, port: port.number, remote: responderAddress, localPSN: pingerAddress.psn, mtu: port.mtu)
        try api.connect(
            responder, port: port.number, remote: pingerAddress, localPSN: responderAddress.psn, mtu: port.mtu
        )
        for slot in 0..<configuration.slots {
            try api.postReceive(pinger, workRequestID: UInt64(slot))
            try api.postReceive(responder, workRequestID: UInt64(slot))
        }
    }

    /// Resets both queue pairs and connects them again (after an error moved them to ERR).
    private func reconnect() throws(VerbsError) {
        try api.modifyQueuePair(pinger, .reset)
        try api.modifyQueuePair(responder, .reset)
        // Drop what the error left in the CQ (flushed receives and sends) before posting anew:
        // those completions belong to the old connection.
        while try !api.pollCompletions(queue, maximum: 64).isEmpty {}
        try connectPair()
        broken = false
        reconnects += 1
    }

    /// Sends `count` probes one after another, each waiting for its reply or its timeout.
    public func probe(count: Int) -> ProbeTally {
        var tally = ProbeTally()
        for _ in 0..<count { probeOnce(&tally) }
        return tally
    }

    private func probeOnce(_ tally: inout ProbeTally) {
        if broken {
            do {
                try reconnect()
            } catch {
                tally.errors += 1
                tally.lastError = error
                return
            }
        }
        sequence = (sequence + 1) & ProbeImmediate.sequenceMask
        let current = sequence
        let start = clock.nanoseconds
        do {
            try api.postSend(
                pinger, workRequestID: UInt64(current), immediate: current, kind: configuration.sendKind,
                to: .connected)
        } catch {
            tally.errors += 1
            tally.lastError = error
            return
        }
        tally.sent += 1
        let deadline = start + configuration.timeoutNanoseconds
        while true {
            let completions: [WorkCompletion]
            do {
                completions = try nextCompletions(
                    api, queue, clock: clock, deadline: deadline, spinPolls: configuration.spinPolls)
            } catch {
                tally.lastError = error
                tally.lost += 1
                return
            }
            var answered = false
            for completion in completions where handle(completion, current: current, tally: &tally) {
                answered = true
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

    /// Handles one completion; true if it is the reply to probe `current`.
    private func handle(_ completion: WorkCompletion, current: UInt32, tally: inout ProbeTally) -> Bool {
        guard completion.status == .success else {
            if completion.status != .flushed { tally.failedCompletions += 1 }
            broken = true
            return false
        }
        let pingerNumber = api.queuePairNumber(pinger)
        switch completion.opcode {
        case .receive, .receiveRDMAWithImmediate:
            let pair = completion.qpNumber == pingerNumber ? pinger : responder
            do {
                try api.postReceive(pair, workRequestID: completion.workRequestID)
            } catch {
                tally.lastError = error
                broken = true
            }
            guard let immediate = completion.immediate else { return false }
            if completion.qpNumber != pingerNumber {
                // The responder: answer the ping with the same sequence and the reply bit.
                do {
                    try api.postSend(
                        responder, workRequestID: UInt64(immediate),
                        immediate: immediate | ProbeImmediate.replyBit,
                        kind: configuration.sendKind, to: .connected)
                } catch {
                    tally.lastError = error
                }
                return false
            }
            if immediate == current | ProbeImmediate.replyBit { return true }
            tally.late += 1
            return false
        default:
            return false  // a send completed: nothing to do
        }
    }
}

@available(*, unavailable) extension LoopbackProber: Sendable {}
