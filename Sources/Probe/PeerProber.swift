// Peer probes over UD: one UD queue pair per port and an address handle per peer; each round pings
// every peer at once, matches replies by sequence number and sender (LID/GID + QPN), and answers
// every ping it gets (others' through an address handle made from the completion). Loss stays visible as loss (no retransmission in the NIC). `post(toPeer:)` and
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

/// Who sent a UD message: its source LID, GID (when the packet had a GRH) and QP number. QP numbers
/// are per device, so only the three together name a peer.
public struct PeerKey: Hashable, Sendable {
    public var lid: UInt16
    public var gid: GID?
    public var qpNumber: UInt32

    public init(lid: UInt16, gid: GID?, qpNumber: UInt32) {
        self.lid = lid
        self.gid = gid
        self.qpNumber = qpNumber
    }

    init(_ address: QueuePairAddress) { self.init(lid: address.lid, gid: address.gid, qpNumber: address.qpNumber) }
    init(sender completion: WorkCompletion) {
        self.init(lid: completion.sourceLID, gid: completion.sourceGID, qpNumber: completion.sourceQPNumber)
    }
}

/// Probes a set of peers from one port, and answers everyone's probes. Blocking in `probeRound`
/// (it sleeps on the completion channel): run it on a thread of its own. Not Sendable.
public final class PeerProber {
    let api: any VerbsAPI
    let clock: any MonotonicClock
    let configuration: ProbeConfiguration
    public let port: PortInfo
    let device: DeviceHandle
    let queue: CompletionQueueHandle
    let queuePair: QueuePairHandle
    /// The UD queue pair's number: its completions on the (shared) CQ are this prober's.
    public let queuePairNumber: UInt32
    /// The device and CQ this prober opened itself (made by device name), freed in deinit.
    private var owned: ProbeDevice?
    /// Peers in name order, with their address handles.
    public private(set) var peers: [PeerTarget] = []
    private var addressHandles: [AddressHandleHandle] = []
    private var peerByKey: [PeerKey: Int] = [:]
    /// Address handles back to senders that are not peers (made from their completions), at most
    /// `maxAnswerHandles`, the oldest replaced first.
    static let maxAnswerHandles = 1024
    private var answerHandles: [PeerKey: AddressHandleHandle] = [:]
    private var answerOrder: [PeerKey] = []
    private var answerOrderHead = 0
    /// Sends not yet completed: work request ID → the address handle it uses and, for a ping, its
    /// peer and sequence. Address handles are destroyed only when no send uses them (`retired`).
    private struct InFlight {
        var handle: AddressHandleHandle
        var ping: (peer: Int, sequence: UInt32)?
    }
    private var inFlight: [UInt64: InFlight] = [:]
    private var sendsPerHandle: [AddressHandleHandle: Int] = [:]
    private var retired: Set<AddressHandleHandle> = []
    private var sendCounter: UInt32 = 0
    private var sequence: UInt32 = 0
    /// Bumped at each reset of the queue pair: older completions are ignored.
    private var epoch: UInt32 = 0
    /// True after an error completion: the queue pair is reset before its next use.
    public private(set) var broken = false
    /// Probes in flight: sequence → (peer index, time sent).
    private var outstanding: [UInt32: (peer: Int, sentAt: UInt64)] = [:]
    /// Pings answered (peers' and others'); pings from queue pairs that are not peers (answered
    /// through an address handle made from the completion); answers that could not be sent (no
    /// address handle, a failed post, or a failed send completion).
    public private(set) var answered = 0
    public private(set) var unknownSenders = 0
    public private(set) var failedAnswers = 0
    /// Completions with an error status other than a flush; resets of the queue pair after one.
    public private(set) var failedCompletions = 0
    public private(set) var resets = 0
    /// This prober's address, for the peers' pinglists.
    public let address: QueuePairAddress

    /// A UD queue pair on a device someone else opened (and will close), its completions going to
    /// the device's shared CQ, then `peers`' address handles (a peer whose handle fails is skipped).
    public init(
        api: any VerbsAPI, clock: any MonotonicClock, device: ProbeDevice, port portNumber: UInt8,
        peers: [PeerTarget], configuration: ProbeConfiguration = ProbeConfiguration()
    ) throws(VerbsError) {
        self.api = api
        self.clock = clock
        self.configuration = configuration
        self.device = device.handle
        port = try findPort(device.info, portNumber)
        queue = device.queue
        queuePair = try api.createQueuePair(
            device.handle, type: .ud, completionQueue: queue, slots: configuration.slots)
        queuePairNumber = api.queuePairNumber(queuePair)
        address = localAddress(port, qpNumber: queuePairNumber, psn: 0)
        // From here every property is set: if anything throws, deinit frees what exists.
        try connect()
        if let (_, error) = setPeers(peers).first { throw error }
    }

    /// Opens the device and a CQ for this prober alone (freed with it), then as above.
    public convenience init(
        api: any VerbsAPI, clock: any MonotonicClock, deviceName: String, port portNumber: UInt8,
        peers: [PeerTarget], configuration: ProbeConfiguration = ProbeConfiguration()
    ) throws(VerbsError) {
        let device = try openProbeDevice(api, deviceName, entries: 4 * configuration.slots)
        do {
            try self.init(
                api: api, clock: clock, device: device, port: portNumber, peers: peers, configuration: configuration)
        } catch {
            closeProbeDevice(api, device)
            throw error
        }
        owned = device
    }

    private func connect() throws(VerbsError) {
        try api.connect(queuePair, port: port.number, remote: address, localPSN: 0, mtu: port.mtu)
        for slot in 0..<UInt32(configuration.slots) {
            try api.postReceive(queuePair, workRequestID: WorkRequestID.make(epoch: epoch, low: slot, send: false))
        }
    }

    /// Resets the queue pair after an error completion and connects it again (its number, so this
    /// prober's address, stays). Sends in flight were flushed: their address handles are free.
    /// Does nothing unless `broken`.
    public func recover() throws(VerbsError) {
        guard broken else { return }
        try api.modifyQueuePair(queuePair, .reset)
        epoch = (epoch + 1) & 0x7FFF_FFFF
        inFlight = [:]
        sendsPerHandle = [:]
        releaseRetired()
        outstanding.removeAll()
        try connect()
        broken = false
        resets += 1
    }

    /// Applies a new set of peers: unchanged ones keep their address handles, new ones get one,
    /// removed ones' handles are destroyed once no send uses them. A peer whose address handle
    /// cannot be made is left out; those are returned with their errors.
    @discardableResult
    public func setPeers(_ newPeers: [PeerTarget]) -> [(name: String, error: VerbsError)] {
        var current: [String: (PeerTarget, AddressHandleHandle)] = [:]
        for (peer, handle) in zip(peers, addressHandles) { current[peer.name] = (peer, handle) }
        var kept: [PeerTarget] = []
        var handles: [AddressHandleHandle] = []
        var failures: [(name: String, error: VerbsError)] = []
        for peer in newPeers.sorted(by: { $0.name < $1.name }) {
            if let (old, handle) = current[peer.name], old.address == peer.address {
                current[peer.name] = nil
                kept.append(peer)
                handles.append(handle)
                continue
            }
            var remote = peer.address
            remote.gidIndex = address.gidIndex
            do {
                handles.append(try api.createAddressHandle(device, port: port.number, remote: remote))
                kept.append(peer)
            } catch {
                failures.append((peer.name, error))
            }
        }
        for (_, handle) in current.values { retire(handle) }
        peers = kept
        addressHandles = handles
        peerByKey = [:]
        for (index, peer) in kept.enumerated() { peerByKey[PeerKey(peer.address)] = index }
        // A round's outstanding probes name peers by index: those indices changed.
        outstanding.removeAll()
        return failures
    }

    /// The completion queue to poll for this prober (shared with the device's other probers: its
    /// completions are those of `queuePairNumber`).
    public var completionQueue: CompletionQueueHandle { queue }

    deinit {
        for handle in addressHandles { api.destroyAddressHandle(handle) }
        for handle in answerHandles.values { api.destroyAddressHandle(handle) }
        for handle in retired { api.destroyAddressHandle(handle) }
        api.destroyQueuePair(queuePair)
        if let owned { closeProbeDevice(api, owned) }
    }

    /// The peer index `key` names: by LID, GID and QP number; a peer given without a GID also
    /// matches a sender whose packets carry one (routed IB).
    private func peer(_ key: PeerKey) -> Int? {
        if let index = peerByKey[key] { return index }
        guard key.gid != nil else { return nil }
        return peerByKey[PeerKey(lid: key.lid, gid: nil, qpNumber: key.qpNumber)]
    }

    private func retire(_ handle: AddressHandleHandle) {
        if sendsPerHandle[handle, default: 0] == 0 {
            api.destroyAddressHandle(handle)
        } else {
            retired.insert(handle)
        }
    }

    private func releaseRetired() {
        for handle in retired where sendsPerHandle[handle, default: 0] == 0 {
            retired.remove(handle)
            api.destroyAddressHandle(handle)
        }
    }

    /// Posts a send through `handle`, remembering it until its completion.
    private func send(
        immediate: UInt32, through handle: AddressHandleHandle, qpNumber: UInt32, ping: (Int, UInt32)?
    ) throws(VerbsError) {
        sendCounter &+= 1
        let id = WorkRequestID.make(epoch: epoch, low: sendCounter, send: true)
        try api.postSend(
            queuePair, workRequestID: id, immediate: immediate, kind: .sendWithImmediate,
            to: .datagram(handle, qpNumber: qpNumber, qKey: ProbeDefaults.qKey))
        inFlight[id] = InFlight(handle: handle, ping: ping)
        sendsPerHandle[handle, default: 0] += 1
    }

    /// An address handle back to a sender that is not a peer: cached, else made from `completion`
    /// (before its receive is posted again: the GRH is in its buffer).
    private func answerHandle(_ key: PeerKey, _ completion: WorkCompletion) throws(VerbsError) -> AddressHandleHandle {
        if let handle = answerHandles[key] { return handle }
        let handle = try api.createAddressHandle(device, port: port.number, replyingTo: completion, on: queuePair)
        if answerHandles.count >= Self.maxAnswerHandles {
            let oldest = answerOrder[answerOrderHead]
            answerOrderHead += 1
            if let evicted = answerHandles.removeValue(forKey: oldest) { retire(evicted) }
        }
        answerHandles[key] = handle
        answerOrder.append(key)
        if answerOrderHead > Self.maxAnswerHandles {
            answerOrder.removeFirst(answerOrderHead)
            answerOrderHead = 0
        }
        return handle
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
            for polled in completions where polled.completion.qpNumber == queuePairNumber {
                count(handle(polled.completion), in: &tallies)
            }
            if broken || clock.nanoseconds >= deadline { break }
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
            for completion in completions where completion.qpNumber == queuePairNumber {
                count(handle(completion), in: &ignored)
            }
        }
        try? recover()
    }

    /// Posts one ping to `peers[index]` with the next sequence number (31 bits); returns it and the
    /// monotonic time just before the post. Does not block; throws if the post fails.
    public func post(toPeer index: Int) throws(VerbsError) -> (sequence: UInt32, sentAt: UInt64) {
        try recover()
        sequence = (sequence + 1) & ProbeImmediate.sequenceMask
        let current = sequence
        let sentAt = clock.nanoseconds
        try send(
            immediate: current, through: addressHandles[index], qpNumber: peers[index].address.qpNumber,
            ping: (index, current))
        return (current, sentAt)
    }

    /// What one completion meant for this prober's own probes.
    public enum Event: Hashable, Sendable {
        /// A reply from `peers[peer]` to our ping `sequence`.
        case reply(peer: Int, sequence: UInt32)
        /// Our ping `sequence` to `peers[peer]` completed with an error (its timeout decides whether
        /// it is lost).
        case sendFailed(peer: Int, sequence: UInt32)
    }

    /// Handles one completion of this prober's queue pair. The status first: an error (other than
    /// a flush, counted) marks the queue pair for a reset (`recover`) and is never reposted. A
    /// receive is reposted; a ping is answered, a peer's through its address handle, anyone else's
    /// through one made from the completion; a reply to our ping is returned, matched by the
    /// sender's LID, GID and QP number. Completions from before the last reset are ignored.
    public func handle(_ completion: WorkCompletion) -> Event? {
        let id = completion.workRequestID
        guard WorkRequestID.epoch(id) == epoch else { return nil }
        if WorkRequestID.isSend(id) {
            let sent = inFlight.removeValue(forKey: id)
            if let sent {
                sendsPerHandle[sent.handle, default: 1] -= 1
                if sendsPerHandle[sent.handle] == 0 { sendsPerHandle[sent.handle] = nil }
                if !retired.isEmpty { releaseRetired() }
            }
            guard completion.status != .success else { return nil }
            noteError(completion.status)
            guard let ping = sent?.ping else {
                failedAnswers += 1
                return nil
            }
            return .sendFailed(peer: ping.peer, sequence: ping.sequence)
        }
        guard completion.status == .success else {
            noteError(completion.status)
            return nil
        }
        guard let immediate = completion.immediate else {
            repost(id)
            return nil
        }
        let key = PeerKey(sender: completion)
        let index = peer(key)
        if immediate & ProbeImmediate.replyBit == 0 {
            // A ping: answer it with the same sequence and the reply bit.
            let through: (AddressHandleHandle, UInt32)?
            if let index {
                through = (addressHandles[index], peers[index].address.qpNumber)
            } else {
                unknownSenders += 1
                through = try? (answerHandle(key, completion), key.qpNumber)
            }
            repost(id)
            guard let (handle, qpNumber) = through else {
                failedAnswers += 1
                return nil
            }
            do {
                try send(immediate: immediate | ProbeImmediate.replyBit, through: handle, qpNumber: qpNumber, ping: nil)
                answered += 1
            } catch {
                failedAnswers += 1
            }
            return nil
        }
        repost(id)
        guard let index else {
            unknownSenders += 1
            return nil
        }
        return .reply(peer: index, sequence: immediate & ProbeImmediate.sequenceMask)
    }

    private func noteError(_ status: CompletionStatus) {
        if status != .flushed { failedCompletions += 1 }
        broken = true
    }

    private func repost(_ id: UInt64) {
        do { try api.postReceive(queuePair, workRequestID: id) } catch { broken = true }
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
        case .sendFailed(let index, let number):
            if let probe = outstanding[number], probe.peer == index { tallies[index].failedCompletions += 1 }
        case nil:
            break
        }
    }
}

@available(*, unavailable) extension PeerProber: Sendable {}
