// Owning wrappers over libibverbs objects: each final class holds one handle, keeps its parent
// alive, and frees the handle in deinit. None is Sendable: one thread owns a device's objects.

import CIBVerbs

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif

/// The current errno as a VerbsError for `call` (a null return from libibverbs).
func lastError(_ call: String, _ detail: String = "") -> VerbsError {
    VerbsError(call: call, code: errno == 0 ? EIO : errno, detail: detail)
}

/// ibv_get_device_list / ibv_free_device_list.
public final class DeviceList {
    let list: UnsafeMutablePointer<UnsafeMutablePointer<ibv_device>?>
    /// How many devices the list holds.
    public let count: Int

    /// Lists the devices; throws `ibv_get_device_list` with errno (ENOSYS without kernel RDMA
    /// support, EPERM without access to /dev/infiniband).
    public init() throws(VerbsError) {
        var count: Int32 = 0
        errno = 0
        guard let list = ibv_get_device_list(&count) else { throw lastError("ibv_get_device_list") }
        self.list = list
        self.count = Int(max(0, count))
    }

    deinit { ibv_free_device_list(list) }

    /// The devices' names (ibv_get_device_name), in the library's order.
    public var names: [String] {
        (0..<count).compactMap { index in list[index].map { String(cString: ibv_get_device_name($0)) } }
    }

    /// The device called `name`, valid while this list lives.
    func device(named name: String) -> UnsafeMutablePointer<ibv_device>? {
        (0..<count).lazy.compactMap { self.list[$0] }.first {
            String(cString: ibv_get_device_name($0)) == name
        }
    }
}

@available(*, unavailable) extension DeviceList: Sendable {}

/// ibv_open_device / ibv_close_device. Devices opened stay valid after their list is freed.
public final class Context {
    let handle: UnsafeMutablePointer<ibv_context>
    public let name: String

    public init(device name: String, in list: DeviceList) throws(VerbsError) {
        guard let device = list.device(named: name) else {
            throw VerbsError(call: "ibv_open_device", code: ENODEV, detail: name)
        }
        errno = 0
        guard let handle = ibv_open_device(device) else { throw lastError("ibv_open_device", name) }
        self.handle = handle
        self.name = name
    }

    deinit { ibv_close_device(handle) }
}

@available(*, unavailable) extension Context: Sendable {}

/// ibv_alloc_pd / ibv_dealloc_pd.
public final class ProtectionDomain {
    let handle: UnsafeMutablePointer<ibv_pd>
    let context: Context

    public init(_ context: Context) throws(VerbsError) {
        errno = 0
        guard let handle = ibv_alloc_pd(context.handle) else { throw lastError("ibv_alloc_pd", context.name) }
        self.handle = handle
        self.context = context
    }

    deinit { ibv_dealloc_pd(handle) }
}

@available(*, unavailable) extension ProtectionDomain: Sendable {}

/// A page-aligned buffer registered with ibv_reg_mr for local and remote write; deregistered and
/// freed in deinit.
public final class MemoryRegion {
    let handle: UnsafeMutablePointer<ibv_mr>
    let buffer: UnsafeMutableRawPointer
    public let length: Int
    let domain: ProtectionDomain

    public init(_ domain: ProtectionDomain, length: Int) throws(VerbsError) {
        buffer = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 4096)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: length)
        let access = IBV_ACCESS_LOCAL_WRITE.rawValue | IBV_ACCESS_REMOTE_WRITE.rawValue
        errno = 0
        guard let handle = ibv_reg_mr(domain.handle, buffer, length, Int32(access)) else {
            let error = lastError("ibv_reg_mr", "\(length) bytes on \(domain.context.name)")
            buffer.deallocate()
            throw error
        }
        self.handle = handle
        self.length = length
        self.domain = domain
    }

    deinit {
        ibv_dereg_mr(handle)
        buffer.deallocate()
    }

    var localKey: UInt32 { handle.pointee.lkey }
    var address: UInt64 { UInt64(UInt(bitPattern: buffer)) }
}

@available(*, unavailable) extension MemoryRegion: Sendable {}

/// ibv_create_comp_channel / ibv_destroy_comp_channel; its fd is made non-blocking so a wait can
/// poll(2) it with a timeout before ibv_get_cq_event.
public final class CompletionChannel {
    let handle: UnsafeMutablePointer<ibv_comp_channel>
    let context: Context

    public init(_ context: Context) throws(VerbsError) {
        errno = 0
        guard let handle = ibv_create_comp_channel(context.handle) else {
            throw lastError("ibv_create_comp_channel", context.name)
        }
        let flags = fcntl(handle.pointee.fd, F_GETFL)
        if flags < 0 || fcntl(handle.pointee.fd, F_SETFL, flags | O_NONBLOCK) < 0 {
            let error = lastError("fcntl(O_NONBLOCK)", "completion channel of \(context.name)")
            ibv_destroy_comp_channel(handle)
            throw error
        }
        self.handle = handle
        self.context = context
    }

    deinit { ibv_destroy_comp_channel(handle) }

    var fileDescriptor: Int32 { handle.pointee.fd }
}

@available(*, unavailable) extension CompletionChannel: Sendable {}

/// ibv_create_cq / ibv_destroy_cq, bound to a completion channel. Events taken from the channel
/// are counted and acknowledged (ibv_ack_cq_events) before destroy, which would otherwise hang.
public final class CompletionQueue {
    let handle: UnsafeMutablePointer<ibv_cq>
    let channel: CompletionChannel

    public init(_ channel: CompletionChannel, entries: Int) throws(VerbsError) {
        errno = 0
        guard let handle = ibv_create_cq(channel.context.handle, Int32(entries), nil, channel.handle, 0)
        else {
            throw lastError("ibv_create_cq", "\(entries) entries on \(channel.context.name)")
        }
        self.handle = handle
        self.channel = channel
    }

    deinit { ibv_destroy_cq(handle) }
}

@available(*, unavailable) extension CompletionQueue: Sendable {}

/// ibv_create_qp / ibv_destroy_qp: one RC or UD queue pair with both queues on one CQ, one SGE
/// per work request, and sends signaled only when asked (sq_sig_all 0).
public final class QueuePair {
    let handle: UnsafeMutablePointer<ibv_qp>
    let type: QueuePairType
    let domain: ProtectionDomain
    let queue: CompletionQueue

    public init(
        _ domain: ProtectionDomain, type: QueuePairType, queue: CompletionQueue, depth: Int
    )
        throws(VerbsError)
    {
        var attributes = ibv_qp_init_attr()
        attributes.send_cq = queue.handle
        attributes.recv_cq = queue.handle
        attributes.cap.max_send_wr = UInt32(depth)
        attributes.cap.max_recv_wr = UInt32(depth)
        attributes.cap.max_send_sge = 1
        attributes.cap.max_recv_sge = 1
        attributes.qp_type = type == .rc ? IBV_QPT_RC : IBV_QPT_UD
        attributes.sq_sig_all = 0
        errno = 0
        guard let handle = ibv_create_qp(domain.handle, &attributes) else {
            throw lastError("ibv_create_qp", "\(type.rawValue) on \(domain.context.name)")
        }
        self.handle = handle
        self.type = type
        self.domain = domain
        self.queue = queue
    }

    deinit { ibv_destroy_qp(handle) }

    public var number: UInt32 { handle.pointee.qp_num }

    /// ibv_modify_qp with the attributes of `transition` (see QueuePairTransition).
    public func modify(_ transition: QueuePairTransition) throws(VerbsError) {
        var attributes = ibv_qp_attr()
        var mask: UInt32 = IBV_QP_STATE.rawValue
        let what: String
        switch transition {
        case .reset:
            attributes.qp_state = IBV_QPS_RESET
            what = "RESET"
        case .initialize(let port, let qKey):
            attributes.qp_state = IBV_QPS_INIT
            attributes.pkey_index = 0
            attributes.port_num = port
            mask |= IBV_QP_PKEY_INDEX.rawValue | IBV_QP_PORT.rawValue
            if type == .rc {
                attributes.qp_access_flags = IBV_ACCESS_REMOTE_WRITE.rawValue
                mask |= IBV_QP_ACCESS_FLAGS.rawValue
            } else {
                attributes.qkey = qKey
                mask |= IBV_QP_QKEY.rawValue
            }
            what = "RESET->INIT"
        case .readyToReceive(let remote, let mtu, let port):
            attributes.qp_state = IBV_QPS_RTR
            if type == .rc {
                attributes.path_mtu = ibv_mtu(rawValue: rawMTU(bytes: mtu))
                attributes.dest_qp_num = remote.qpNumber
                attributes.rq_psn = remote.psn
                attributes.max_dest_rd_atomic = 1
                attributes.min_rnr_timer = 12
                attributes.ah_attr = addressVector(remote, port: port)
                mask |=
                    IBV_QP_AV.rawValue | IBV_QP_PATH_MTU.rawValue | IBV_QP_DEST_QPN.rawValue
                    | IBV_QP_RQ_PSN.rawValue | IBV_QP_MAX_DEST_RD_ATOMIC.rawValue
                    | IBV_QP_MIN_RNR_TIMER.rawValue
            }
            what = "INIT->RTR"
        case .readyToSend(let psn, let timeout, let retryCount):
            attributes.qp_state = IBV_QPS_RTS
            attributes.sq_psn = psn
            mask |= IBV_QP_SQ_PSN.rawValue
            if type == .rc {
                attributes.timeout = timeout
                attributes.retry_cnt = retryCount
                attributes.rnr_retry = 7  // 7 = retry forever on receiver-not-ready
                attributes.max_rd_atomic = 1
                mask |=
                    IBV_QP_TIMEOUT.rawValue | IBV_QP_RETRY_CNT.rawValue | IBV_QP_RNR_RETRY.rawValue
                    | IBV_QP_MAX_QP_RD_ATOMIC.rawValue
            }
            what = "RTR->RTS"
        }
        let result = ibv_modify_qp(handle, &attributes, Int32(bitPattern: mask))
        if result != 0 {
            throw VerbsError(
                call: "ibv_modify_qp", code: result,
                detail: "\(domain.context.name) \(type.rawValue) qpn \(number) \(what)")
        }
    }
}

@available(*, unavailable) extension QueuePair: Sendable {}

/// ibv_ah_attr for `remote`: LID routing, plus a GRH (hop limit 1, the local GID index) when the
/// remote has a GID, as RoCE always needs.
func addressVector(_ remote: QueuePairAddress, port: UInt8) -> ibv_ah_attr {
    var vector = ibv_ah_attr()
    vector.dlid = remote.lid
    vector.sl = 0
    vector.src_path_bits = 0
    vector.port_num = port
    if let gid = remote.gid {
        vector.is_global = 1
        vector.grh.hop_limit = 1
        vector.grh.sgid_index = UInt8(truncatingIfNeeded: remote.gidIndex)
        withUnsafeMutableBytes(of: &vector.grh.dgid) { raw in
            for index in 0..<16 { raw[index] = gid.bytes[index] }
        }
    }
    return vector
}

/// ibv_create_ah / ibv_destroy_ah.
public final class AddressHandle {
    let handle: UnsafeMutablePointer<ibv_ah>
    let domain: ProtectionDomain

    public init(_ domain: ProtectionDomain, port: UInt8, remote: QueuePairAddress) throws(VerbsError) {
        var vector = addressVector(remote, port: port)
        errno = 0
        guard let handle = ibv_create_ah(domain.handle, &vector) else {
            throw lastError("ibv_create_ah", "\(domain.context.name) port \(port) to \(remote)")
        }
        self.handle = handle
        self.domain = domain
    }

    /// ibv_create_ah_from_wc: back to the sender of `completion`, whose GRH (if it had one) is at
    /// `grh`.
    init(
        _ domain: ProtectionDomain, port: UInt8, completion: inout ibv_wc, grh: UnsafeMutableRawPointer
    ) throws(VerbsError) {
        errno = 0
        guard
            let handle = ibv_create_ah_from_wc(
                domain.handle, &completion, grh.assumingMemoryBound(to: ibv_grh.self), port)
        else {
            throw lastError(
                "ibv_create_ah_from_wc", "\(domain.context.name) port \(port) to qpn \(completion.src_qp)")
        }
        self.handle = handle
        self.domain = domain
    }

    deinit { ibv_destroy_ah(handle) }
}

@available(*, unavailable) extension AddressHandle: Sendable {}
