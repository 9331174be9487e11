// Peer probes over UD: one UD queue pair per port and an address handle per peer; each round pings
// every peer at once, matches replies by sequence number and sender, and answers the pings that
// peers send us. Loss stays visible as loss (no retransmission in the NIC). Pure logic over VerbsAPI.

import Verbs

/// A remote endpoint to probe: its name (`node/rail`) and its UD queue pair's address, as the
/// correlator's pinglist will carry it.
public struct PeerTarget: Hashable, Sendable {
    public var name: String
    public var address: QueuePairAddress

    public init(name: String, address: QueuePairAddress) {
        self.name = name
        self.address = address
    }
}

/// Probes a set of peers from one port, and answers their probes. Blocking (it sleeps on the
/// completion channel): run it on a thread of its own. Not Sendable.
public final class PeerProber {
    let api: any VerbsAPI
    let clock: any MonotonicClock
    let configuration: ProbeConfiguration
    public let port: PortInfo
    let device: DeviceHandle
    let queue: CompletionQueueHandle
    let queuePair: QueuePairHandle
    /// Peers in name order, with their address handles.
    public let peers: [PeerTarget]
    private var addressHandles: [AddressHandleHandle] = []
    private var peerByQPNumber: [UInt32: Int] = [:]
    private var sequence: UInt32 = 0
    /// Probes in flight: sequence → (peer index, time sent).
    private var outstanding: [UInt32: (peer: Int, sentAt: UInt64)] = [:]
    /// Pings answered for peers, and pings from queue pairs we do not know (dropped, counted).
    public private(set) var answered = 0
    public private(set) var unknownSenders = 0
    /// This prober's address, for the peers' pinglists.
    public let address: QueuePairAddress

    public init(
        api: any VerbsAPI, clock: any MonotonicClock, deviceName: String, port portNumber: UInt8,
        peers: [PeerTarget], configuration: ProbeConfiguration = ProbeConfiguration()
    ) throws(VerbsError) {
        self.api = api
        self.clock = clock
        self.configuration = configuration
        self.peers = peers.sorted { $0.name < $1.name }
        device = try api.openDevice(deviceName)
        port = try findPort(api.queryDevice(device), portNumber)
        queue = try api.createCompletionQueue(device, entries: 4 * configuration.slots)
        queuePair = try api.createQueuePair(
            device, type: .ud, completionQueue: queue, slots: configuration.slots)
        address = localAddress(port, qpNumber: api.queuePairNumber(queuePair), psn: 0)
        // From here every property is set: if anything throws, deinit frees what exists.
        try api.connect(queuePair, port: port.number, remote: address, localPSN: 0, mtu: port.mtu)
        for slot in 0..<configuration.slots { try api.postReceive(queuePair, workRequestID: UInt64(slot)) }
        for (index, peer) in self.peers.enumerated() {
            var remote = peer.address
            remote.gidIndex = address.gidIndex
            addressHandles.append(try api.createAddressHandle(device, port: port.number, remote: remote))
            peerByQPNumber[peer.address.qpNumber] = index
        }
    }

    deinit {
        for handle in addressHandles { api.destroyAddressHandle(handle) }
        api.destroyQueuePair(queuePair)
    }

    /// One round: a ping to every peer, then replies until all are in or the timeout passes.
    /// Returns each peer's tally, in peer-name order.
    public func probeRound() -> [(peer: PeerTarget, tally: ProbeTally)] {
        var tallies = [ProbeTally](repeating: ProbeTally(), count: peers.count)
        let start = clock.nanoseconds
        for (index, peer) in peers.enumerated() {
            sequence = (sequence + 1) & ProbeImmediate.sequenceMask
            if outstanding.count >= configuration.slots {
                tallies[index].errors += 1  // send queue full: the round has more peers than slots
                continue
            }
            do {
                try api.postSend(
                    queuePair, workRequestID: UInt64(sequence), immediate: sequence, kind: .sendWithImmediate,
                    to: .datagram(
                        addressHandles[index], qpNumber: peer.address.qpNumber, qKey: ProbeDefaults.qKey))
                outstanding[sequence] = (index, clock.nanoseconds)
                tallies[index].sent += 1
            } catch {
                tallies[index].errors += 1
                tallies[index].lastError = error
            }
        }
        let deadline = start + configuration.timeoutNanoseconds
        while !outstanding.isEmpty {
            let completions: [WorkCompletion]
            do {
                completions = try nextCompletions(
                    api, queue, clock: clock, deadline: deadline, spinPolls: configuration.spinPolls)
            } catch {
                for index in tallies.indices { tallies[index].lastError = error }
                break
            }
            for completion in completions { handle(completion, tallies: &tallies) }
            if clock.nanoseconds >= deadline { break }
        }
        // What is still out is lost; a reply that comes later counts as late, not again.
        for (_, probe) in outstanding { tallies[probe.peer].lost += 1 }
        outstanding.removeAll()
        return zip(peers, tallies).map { ($0, $1) }
    }

    /// Answers pings that arrive while no round runs (call between rounds, e.g. from the agent's
    /// probe thread when idle): polls what is there without waiting.
    public func serve() {
        var ignored = [ProbeTally](repeating: ProbeTally(), count: peers.count)
        while let completions = try? api.pollCompletions(queue, maximum: 16), !completions.isEmpty {
            for completion in completions { handle(completion, tallies: &ignored) }
        }
    }

    private func handle(_ completion: WorkCompletion, tallies: inout [ProbeTally]) {
        guard completion.opcode == .receive else {
            // A send: an error is counted on its peer; the probe's timeout decides whether it is lost.
            if completion.status != .success,
                let probe = outstanding[UInt32(truncatingIfNeeded: completion.workRequestID)]
            {
                tallies[probe.peer].failedCompletions += 1
            }
            return
        }
        try? api.postReceive(queuePair, workRequestID: completion.workRequestID)
        guard completion.status == .success, let immediate = completion.immediate else { return }
        guard let index = peerByQPNumber[completion.sourceQPNumber] else {
            unknownSenders += 1
            return
        }
        if immediate & ProbeImmediate.replyBit == 0 {
            // A peer's ping: answer through its address handle.
            try? api.postSend(
                queuePair, workRequestID: UInt64(ProbeImmediate.replyBit | immediate),
                immediate: immediate | ProbeImmediate.replyBit, kind: .sendWithImmediate,
                to: .datagram(
                    addressHandles[index], qpNumber: peers[index].address.qpNumber, qKey: ProbeDefaults.qKey))
            answered += 1
            return
        }
        let number = immediate & ProbeImmediate.sequenceMask
        guard let probe = outstanding[number], probe.peer == index else {
            tallies[index].late += 1
            return
        }
        outstanding[number] = nil
        tallies[index].rttNanoseconds.append(clock.nanoseconds - probe.sentAt)
    }
}

@available(*, unavailable) extension PeerProber: Sendable {}
