// VerbsAPI over libibverbs: the owning wrappers of Handles.swift kept in tables behind the
// protocol's handles, plus the queries (device, ports through the query_port shim, GID table),
// posting work requests and the completion-channel wait.

import CIBVerbs

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The real verbs. One thread owns an instance (it is not Sendable); its objects are freed when
/// it is, children before parents (each wrapper holds its parent).
public final class RealVerbs: VerbsAPI {
    /// Bytes of one buffer slot: 40 for the GRH a UD receive gets in front, 8 of payload, rounded.
    static let slotSize = 64

    private struct OpenDevice {
        let context: Context
        let domain: ProtectionDomain
    }

    private struct Pair {
        let queuePair: QueuePair
        let memory: MemoryRegion
        let slots: Int
        let queue: Int
    }

    private var devices: [Int: OpenDevice] = [:]
    private var queues: [Int: CompletionQueue] = [:]
    private var pairs: [Int: Pair] = [:]
    private var addressHandles: [Int: AddressHandle] = [:]
    private var nextHandle = 1
    /// Where ibv_poll_cq writes: allocated once, so polling allocates nothing.
    private static let pollCapacity = 64
    private let scratch = UnsafeMutablePointer<ibv_wc>.allocate(capacity: RealVerbs.pollCapacity)

    public init() { scratch.initialize(repeating: ibv_wc(), count: Self.pollCapacity) }

    deinit {
        // Children before parents: address handles and queue pairs hold their domain and CQ alive.
        addressHandles = [:]
        pairs = [:]
        queues = [:]
        devices = [:]
        scratch.deallocate()
    }

    private func newHandle() -> Int {
        defer { nextHandle += 1 }
        return nextHandle
    }

    public func deviceNames() throws(VerbsError) -> [String] {
        try DeviceList().names
    }

    public func openDevice(_ name: String) throws(VerbsError) -> DeviceHandle {
        let list = try DeviceList()
        let context = try Context(device: name, in: list)
        let handle = newHandle()
        devices[handle] = OpenDevice(context: context, domain: try ProtectionDomain(context))
        return DeviceHandle(handle)
    }

    /// Drops this table's reference: the context and domain are freed once the queue pairs, CQs and
    /// address handles made on them (which hold them) are gone too.
    public func closeDevice(_ handle: DeviceHandle) { devices[handle.rawValue] = nil }

    private func device(_ handle: DeviceHandle) -> OpenDevice {
        guard let device = devices[handle.rawValue] else { preconditionFailure("unknown device handle") }
        return device
    }

    public func queryDevice(_ handle: DeviceHandle) throws(VerbsError) -> DeviceInfo {
        let context = device(handle).context
        var attributes = ibv_device_attr()
        let result = ibv_query_device(context.handle, &attributes)
        if result != 0 { throw VerbsError(call: "ibv_query_device", code: result, detail: context.name) }
        let firmware = withUnsafeBytes(of: attributes.fw_ver) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        var ports: [PortInfo] = []
        for number in 1...max(1, attributes.phys_port_cnt) where attributes.phys_port_cnt > 0 {
            ports.append(try queryPort(context, number))
        }
        return DeviceInfo(
            name: context.name, guid: UInt64(bigEndian: attributes.node_guid), firmware: firmware,
            ports: ports)
    }

    /// ibv_query_port through the shim, and the port's non-zero GIDs (at most 256 looked at).
    private func queryPort(_ context: Context, _ number: UInt8) throws(VerbsError) -> PortInfo {
        var attributes = ibv_port_attr()
        let result = faultline_ibv_query_port(context.handle, number, &attributes)
        if result != 0 {
            throw VerbsError(call: "ibv_query_port", code: result, detail: "\(context.name) port \(number)")
        }
        var gids: [Int: GID] = [:]
        for index in 0..<min(Int(attributes.gid_tbl_len), 256) {
            var gid = ibv_gid()
            guard ibv_query_gid(context.handle, number, Int32(index), &gid) == 0 else { continue }
            let bytes = withUnsafeBytes(of: gid) { Array($0.prefix(16)) }
            let value = GID(bytes: bytes)
            if !value.isZero { gids[index] = value }
        }
        let linkLayer: LinkLayer =
            switch attributes.link_layer {
            case UInt8(IBV_LINK_LAYER_INFINIBAND): .infiniband
            case UInt8(IBV_LINK_LAYER_ETHERNET): .ethernet
            default: .unspecified
            }
        return PortInfo(
            number: number, state: PortState(rawState: attributes.state.rawValue), linkLayer: linkLayer,
            activeSpeed: attributes.active_speed, activeWidth: attributes.active_width,
            mtu: mtuBytes(rawMTU: attributes.active_mtu.rawValue), lid: attributes.lid, gids: gids)
    }

    public func createCompletionQueue(
        _ handle: DeviceHandle, entries: Int
    ) throws(VerbsError)
        -> CompletionQueueHandle
    {
        let channel = try CompletionChannel(device(handle).context)
        let queue = try CompletionQueue(channel, entries: entries)
        let id = newHandle()
        queues[id] = queue
        return CompletionQueueHandle(id)
    }

    /// Drops this table's reference: the CQ and its channel are freed once no queue pair holds it.
    public func destroyCompletionQueue(_ handle: CompletionQueueHandle) { queues[handle.rawValue] = nil }

    private func queue(_ handle: CompletionQueueHandle) -> CompletionQueue {
        guard let queue = queues[handle.rawValue] else {
            preconditionFailure("unknown completion queue handle")
        }
        return queue
    }

    public func createQueuePair(
        _ handle: DeviceHandle, type: QueuePairType, completionQueue: CompletionQueueHandle, slots: Int
    ) throws(VerbsError) -> QueuePairHandle {
        let domain = device(handle).domain
        // Receives and sends each get `slots` buffers: receives in the first half, sends after.
        let memory = try MemoryRegion(domain, length: 2 * slots * Self.slotSize)
        let queuePair = try QueuePair(domain, type: type, queue: queue(completionQueue), depth: slots)
        let id = newHandle()
        pairs[id] = Pair(queuePair: queuePair, memory: memory, slots: slots, queue: completionQueue.rawValue)
        return QueuePairHandle(id)
    }

    private func pair(_ handle: QueuePairHandle) -> Pair {
        guard let pair = pairs[handle.rawValue] else { preconditionFailure("unknown queue pair handle") }
        return pair
    }

    public func queuePairNumber(_ handle: QueuePairHandle) -> UInt32 { pair(handle).queuePair.number }

    public func modifyQueuePair(
        _ handle: QueuePairHandle, _ transition: QueuePairTransition
    ) throws(VerbsError) {
        try pair(handle).queuePair.modify(transition)
    }

    public func destroyQueuePair(_ handle: QueuePairHandle) { pairs[handle.rawValue] = nil }

    public func createAddressHandle(
        _ handle: DeviceHandle, port: UInt8, remote: QueuePairAddress
    )
        throws(VerbsError) -> AddressHandleHandle
    {
        let addressHandle = try AddressHandle(device(handle).domain, port: port, remote: remote)
        let id = newHandle()
        addressHandles[id] = addressHandle
        return AddressHandleHandle(id)
    }

    public func createAddressHandle(
        _ handle: DeviceHandle, port: UInt8, replyingTo completion: WorkCompletion, on queuePair: QueuePairHandle
    ) throws(VerbsError) -> AddressHandleHandle {
        let pair = pair(queuePair)
        var wc = ibv_wc()
        wc.wr_id = completion.workRequestID
        wc.qp_num = completion.qpNumber
        wc.src_qp = completion.sourceQPNumber
        wc.slid = completion.sourceLID
        wc.sl = completion.serviceLevel
        wc.dlid_path_bits = completion.pathBits
        wc.wc_flags = completion.sourceGID == nil ? 0 : IBV_WC_GRH.rawValue
        // A UD receive's first 40 bytes in its slot are the GRH.
        let grh = pair.memory.buffer + Int((completion.workRequestID & 0xFFFF_FFFF) % UInt64(pair.slots)) * Self.slotSize
        let addressHandle = try AddressHandle(device(handle).domain, port: port, completion: &wc, grh: grh)
        let id = newHandle()
        addressHandles[id] = addressHandle
        return AddressHandleHandle(id)
    }

    public func destroyAddressHandle(_ handle: AddressHandleHandle) { addressHandles[handle.rawValue] = nil }

    /// The source GID in a received GRH: the IPv6 header's, or for RoCE v2 over IPv4 (an IPv4
    /// header in the last 20 of the 40 bytes) the IPv4-mapped source address, as rdma-core reads it.
    static func sourceGID(grh: UnsafeRawPointer) -> GID {
        let bytes = UnsafeRawBufferPointer(start: grh, count: 40)
        if bytes[20] == 0x45, bytes[0] >> 4 != 6 {
            return GID(bytes: [UInt8](repeating: 0, count: 10) + [0xff, 0xff] + Array(bytes[32..<36]))
        }
        return GID(bytes: Array(bytes[8..<24]))
    }

    public func postReceive(_ handle: QueuePairHandle, workRequestID: UInt64) throws(VerbsError) {
        let pair = pair(handle)
        let slot = Int((workRequestID & 0xFFFF_FFFF) % UInt64(pair.slots))
        var entry = ibv_sge(
            addr: pair.memory.address + UInt64(slot * Self.slotSize), length: UInt32(Self.slotSize),
            lkey: pair.memory.localKey)
        let result = withUnsafeMutablePointer(to: &entry) { sge -> Int32 in
            var request = ibv_recv_wr()
            request.wr_id = workRequestID
            request.sg_list = sge
            request.num_sge = 1
            var bad: UnsafeMutablePointer<ibv_recv_wr>?
            return ibv_post_recv(pair.queuePair.handle, &request, &bad)
        }
        if result != 0 {
            throw VerbsError(call: "ibv_post_recv", code: result, detail: "qpn \(pair.queuePair.number)")
        }
    }

    public func postSend(
        _ handle: QueuePairHandle, workRequestID: UInt64, immediate: UInt32, kind: SendKind,
        to destination: SendDestination
    ) throws(VerbsError) {
        let pair = pair(handle)
        let slot = pair.slots + Int((workRequestID & 0xFFFF_FFFF) % UInt64(pair.slots))
        let address = pair.memory.buffer + slot * Self.slotSize
        address.storeBytes(of: workRequestID.bigEndian, as: UInt64.self)
        var entry = ibv_sge(
            addr: pair.memory.address + UInt64(slot * Self.slotSize), length: 8, lkey: pair.memory.localKey)
        var request = ibv_send_wr()
        request.wr_id = workRequestID
        request.send_flags = IBV_SEND_SIGNALED.rawValue
        request.imm_data = immediate.bigEndian
        switch kind {
        case .sendWithImmediate:
            request.opcode = IBV_WR_SEND_WITH_IMM
            request.num_sge = 1
        case .rdmaWriteWithImmediate:
            // A zero-length write: only the immediate travels, so no remote address or R_Key is
            // needed (the responder does not validate them for a zero-length RDMA WRITE).
            request.opcode = IBV_WR_RDMA_WRITE_WITH_IMM
            request.num_sge = 0
        }
        if case .datagram(let addressHandle, let qpNumber, let qKey) = destination {
            guard let ah = addressHandles[addressHandle.rawValue] else {
                preconditionFailure("unknown address handle")
            }
            request.wr.ud.ah = ah.handle
            request.wr.ud.remote_qpn = qpNumber
            request.wr.ud.remote_qkey = qKey
        }
        let result = withUnsafeMutablePointer(to: &entry) { sge -> Int32 in
            request.sg_list = sge
            var bad: UnsafeMutablePointer<ibv_send_wr>?
            return ibv_post_send(pair.queuePair.handle, &request, &bad)
        }
        if result != 0 {
            throw VerbsError(call: "ibv_post_send", code: result, detail: "qpn \(pair.queuePair.number)")
        }
    }

    public func pollCompletions(
        _ handle: CompletionQueueHandle, maximum: Int
    ) throws(VerbsError)
        -> [WorkCompletion]
    {
        var completions: [WorkCompletion] = []
        _ = try pollCompletions(handle, maximum: maximum, into: &completions)
        return completions
    }

    public func pollCompletions(
        _ handle: CompletionQueueHandle, maximum: Int, into completions: inout [WorkCompletion]
    ) throws(VerbsError) -> Int {
        let queue = queue(handle)
        let count = ibv_poll_cq(queue.handle, Int32(min(max(1, maximum), Self.pollCapacity)), scratch)
        if count < 0 { throw VerbsError(call: "ibv_poll_cq", code: EIO, detail: "returned \(count)") }
        for index in 0..<Int(count) {
            let wc = scratch[index]
            let opcode: CompletionOpcode =
                switch wc.opcode {
                case IBV_WC_SEND: .send
                case IBV_WC_RDMA_WRITE: .rdmaWrite
                case IBV_WC_RECV: .receive
                case IBV_WC_RECV_RDMA_WITH_IMM: .receiveRDMAWithImmediate
                default: .other(wc.opcode.rawValue)
                }
            let hasImmediate = wc.wc_flags & IBV_WC_WITH_IMM.rawValue != 0
            var completion = WorkCompletion(
                workRequestID: wc.wr_id, status: CompletionStatus(raw: wc.status.rawValue), opcode: opcode,
                qpNumber: wc.qp_num, immediate: hasImmediate ? UInt32(bigEndian: wc.imm_data) : nil,
                sourceQPNumber: wc.src_qp, sourceLID: wc.slid)
            completion.serviceLevel = wc.sl
            completion.pathBits = wc.dlid_path_bits
            if wc.status == IBV_WC_SUCCESS, wc.wc_flags & IBV_WC_GRH.rawValue != 0,
                let pair = pairs.values.first(where: {
                    $0.queue == handle.rawValue && $0.queuePair.number == wc.qp_num
                })
            {
                let slot = Int((wc.wr_id & 0xFFFF_FFFF) % UInt64(pair.slots))
                completion.sourceGID = Self.sourceGID(grh: pair.memory.buffer + slot * Self.slotSize)
            }
            completions.append(completion)
        }
        return Int(count)
    }

    public func requestNotification(_ handle: CompletionQueueHandle) throws(VerbsError) {
        let result = ibv_req_notify_cq(queue(handle).handle, 0)
        if result != 0 { throw VerbsError(call: "ibv_req_notify_cq", code: result) }
    }

    public func waitForCompletion(
        _ handles: [CompletionQueueHandle], wake: Int32?, timeoutNanoseconds: UInt64
    ) throws(VerbsError)
        -> Bool
    {
        let queues = handles.map(queue)
        var descriptors = queues.map { pollfd(fd: $0.channel.fileDescriptor, events: Int16(POLLIN), revents: 0) }
        if let wake { descriptors.append(pollfd(fd: wake, events: Int16(POLLIN), revents: 0)) }
        let milliseconds = Int32(clamping: (timeoutNanoseconds + 999_999) / 1_000_000)
        while true {
            let ready = poll(&descriptors, nfds_t(descriptors.count), milliseconds)
            if ready < 0, errno == EINTR { continue }
            if ready < 0 { throw lastError("poll", "completion channel") }
            if ready == 0 { return false }
            break
        }
        var fired = false
        for (queue, descriptor) in zip(queues, descriptors) where descriptor.revents != 0 {
            var eventQueue: UnsafeMutablePointer<ibv_cq>?
            var eventContext: UnsafeMutableRawPointer?
            if ibv_get_cq_event(queue.channel.handle, &eventQueue, &eventContext) != 0 {
                if errno == EAGAIN { continue }
                throw lastError("ibv_get_cq_event")
            }
            // Acknowledge at once: destroying a CQ with unacknowledged events blocks forever.
            ibv_ack_cq_events(eventQueue ?? queue.handle, 1)
            fired = true
        }
        return fired
    }
}

@available(*, unavailable) extension RealVerbs: Sendable {}
