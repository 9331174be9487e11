// Peer probes over UD: one UD queue pair per port and an address handle per peer; each round pings
// every peer at once, matches replies by sequence number and sender, and answers the pings that
// peers send us. Loss stays visible as loss (no retransmission in the NIC). `post(toPeer:)` and
// `handle(_:)` are the non-blocking halves the agent's verbs transport drives. Pure logic over
// VerbsAPI.

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
    public private(set) var peers: [PeerTarget] = []
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
        device = try api.openDevice(deviceName)
        port = try findPort(api.queryDevice(device), portNumber)
        queue = try api.createCompletionQueue(device, entries: 4 * configuration.slots)
        queuePair = try api.createQueuePair(
            device, type: .ud, completionQueue: queue, slots: configuration.slots)
        address = localAddress(port, qpNumber: api.queuePairNumber(queuePair), psn: 0)
        // From here every property is set: if anything throws, deinit frees what exists.
        try api.connect(queuePair, port: port.number, remote: address, localPSN: 0, mtu: port.mtu)
        for slot in 0..<configuration.slots { try api.postReceive(queuePair, workRequestID: UInt64(slot)) }
        try setPeers(peers)
    }

    /// Replaces the peers, with an address handle each; the queue pair (and so this prober's
    /// address) stays. On an error the prober has no peers until the next call succeeds.
    public func setPeers(_ newPeers: [PeerTarget]) throws(VerbsError) {
        for handle in addressHandles { api.destroyAddressHandle(handle) }
        addressHandles = []
        peers = []
        peerByQPNumber = [:]
        var handles: [AddressHandleHandle] = []
        let sorted = newPeers.sorted { $0.name < $1.name }
        for peer in sorted {
            var remote = peer.address
            remote.gidIndex = address.gidIndex
            do {
                handles.append(try api.createAddressHandle(device, port: port.number, remote: remote))
            } catch {
                for handle in handles { api.destroyAddressHandle(handle) }
                throw error
            }
        }
        peers = sorted
        addressHandles = handles
        for (index, peer) in sorted.enumerated() { peerByQPNumber[peer.address.qpNumber] = index }
    }

    /// The completion queue to poll for this prober.
    public var completionQueue: CompletionQueueHandle { queue }

    deinit {
        for handle in addressHandles { api.destroyAddressHandle(handle) }
        api.destroyQueuePair(queuePair)
    }

    /// One round: a ping to every peer, then replies until all are in or the timeout passes.
    /// Returns each peer's tally, in peer-name order.
    public func probeRound() -> [(peer: PeerTarget, tally: ProbeTally)] {
        var tallies = [ProbeTally](repeating: ProbeTally(), count: peers.count)
        let start = clock.nanoseconds
        for index in peers.indices {
            if outstanding.count >= configuration.slots {
                tallies[index].errors += 1  // send queue full: the round has more peers than slots
                continue
            }
            do {
                let posted = try post(toPeer: index)
                outstanding[posted.sequence] = (index, posted.sentAt)
                tallies[index].sent += 1
            } catch {
                tallies[index].errors += 1
                tallies[index].lastError = error
            }
        }
        let deadline = start + configuration.timeoutNanoseconds
        while !outstanding.isEmpty {
            let completions: [PolledCompletion]
            do {
                completions = try nextCompletions(
                    api, [queue], clock: clock, deadline: deadline, spinPolls: configuration.spinPolls)
            } catch {
                for index in tallies.indices { tallies[index].lastError = error }
                break
            }
            for polled in completions { count(handle(polled.completion), in: &tallies) }
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
            for completion in completions { count(handle(completion), in: &ignored) }
        }
    }

    /// Posts one ping to `peers[index]` with the next sequence number (31 bits); returns it and the
    /// monotonic time just before the post. Does not block; throws if the post fails.
    public func post(toPeer index: Int) throws(VerbsError) -> (sequence: UInt32, sentAt: UInt64) {
        sequence = (sequence + 1) & ProbeImmediate.sequenceMask
        let current = sequence
        let sentAt = clock.nanoseconds
        try api.postSend(
            queuePair, workRequestID: UInt64(current), immediate: current, kind: .sendWithImmediate,
            to: .datagram(addressHandles[index], qpNumber: peers[index].address.qpNumber, qKey: ProbeDefaults.qKey))
        return (current, sentAt)
    }

    /// What one completion meant for this prober's own probes.
    public enum Event: Hashable, Sendable {
        /// A reply from `peers[peer]` to our ping `sequence`.
        case reply(peer: Int, sequence: UInt32)
        /// Our ping `sequence` completed with an error (its timeout decides whether it is lost).
        case sendFailed(sequence: UInt32)
    }

    /// Handles one completion of `completionQueue`: reposts the consumed receive, answers a known
    /// peer's ping through its address handle, counts unknown senders. Returns what it meant for
    /// our own probes, if anything.
    public func handle(_ completion: WorkCompletion) -> Event? {
        guard completion.opcode == .receive else {
            guard completion.status != .success else { return nil }
            return .sendFailed(sequence: UInt32(truncatingIfNeeded: completion.workRequestID))
        }
        try? api.postReceive(queuePair, workRequestID: completion.workRequestID)
        guard completion.status == .success, let immediate = completion.immediate else { return nil }
        guard let index = peerByQPNumber[completion.sourceQPNumber] else {
            unknownSenders += 1
            return nil
        }
        if immediate & ProbeImmediate.replyBit == 0 {
            // A peer's ping: answer through its address handle.
            try? api.postSend(
                queuePair, workRequestID: UInt64(ProbeImmediate.replyBit | immediate),
                immediate: immediate | ProbeImmediate.replyBit, kind: .sendWithImmediate,
                to: .datagram(
                    addressHandles[index], qpNumber: peers[index].address.qpNumber, qKey: ProbeDefaults.qKey))
            answered += 1
            return nil
        }
        return .reply(peer: index, sequence: immediate & ProbeImmediate.sequenceMask)
    }

    /// A round's bookkeeping of one event: RTTs of replies in flight, late ones, failed sends.
    private func count(_ event: Event?, in tallies: inout [ProbeTally]) {
        switch event {
        case .reply(let index, let number):
            guard let probe = outstanding[number], probe.peer == index else {
                tallies[index].late += 1
                return
            }
            outstanding[number] = nil
            tallies[index].rttNanoseconds.append(clock.nanoseconds - probe.sentAt)
        case .sendFailed(let number):
            if let probe = outstanding[number] { tallies[probe.peer].failedCompletions += 1 }
        case nil:
            break
        }
    }
}

@available(*, unavailable) extension PeerProber: Sendable {}
