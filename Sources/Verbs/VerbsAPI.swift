// The operations a probe needs from libibverbs, as one protocol: RealVerbs calls the library,
// FakeVerbs simulates a fabric on a manual clock. The prober and discovery see only this.

/// One state transition of a queue pair, with the attributes rdma-core's pingpong examples and
/// perftest set for it.
public enum QueuePairTransition: Hashable, Sendable {
    /// RESET → INIT on `port`: P_Key index 0; RC gets remote-write access (for WRITE with
    /// immediate); UD gets the Q_Key.
    case initialize(port: UInt8, qKey: UInt32)
    /// INIT → RTR. RC: path MTU, the remote's QP number, LID or GID and its starting PSN,
    /// max_dest_rd_atomic 1, min_rnr_timer 12. UD: the state alone (`remote` is ignored).
    case readyToReceive(remote: QueuePairAddress, mtu: Int, port: UInt8)
    /// RTR → RTS. RC: timeout, retry_cnt, rnr_retry, sq_psn, max_rd_atomic 1. UD: sq_psn.
    case readyToSend(psn: UInt32, timeout: UInt8, retryCount: UInt8)
    /// Any state → RESET, to reuse a queue pair that went to ERR.
    case reset
}

/// The verbs a prober uses. Implementations are single-threaded objects (not Sendable): one prober
/// thread owns one, and only `waitForCompletion` blocks.
public protocol VerbsAPI: AnyObject {
    /// The names of the RDMA devices (ibv_get_device_list). Throws with ENOSYS where the kernel
    /// has no RDMA.
    func deviceNames() throws(VerbsError) -> [String]
    /// Opens a device by name (ibv_open_device) with one protection domain (ibv_alloc_pd). Its
    /// opener closes it with `closeDevice` once everything created on it is destroyed.
    func openDevice(_ name: String) throws(VerbsError) -> DeviceHandle
    /// Releases an open device (ibv_dealloc_pd, ibv_close_device once nothing on it is left).
    func closeDevice(_ device: DeviceHandle)
    /// The device's GUID, firmware and ports (ibv_query_device, ibv_query_port, ibv_query_gid).
    func queryDevice(_ device: DeviceHandle) throws(VerbsError) -> DeviceInfo
    /// A completion queue of `entries` with its own completion channel (ibv_create_comp_channel,
    /// ibv_create_cq).
    func createCompletionQueue(
        _ device: DeviceHandle, entries: Int
    ) throws(VerbsError)
        -> CompletionQueueHandle
    /// Frees a completion queue and its channel (ibv_destroy_cq, ibv_destroy_comp_channel) once no
    /// queue pair uses it.
    func destroyCompletionQueue(_ queue: CompletionQueueHandle)
    /// A queue pair whose send and receive completions go to `queue`, with `slots` registered
    /// buffers for receives and sends (ibv_reg_mr, ibv_create_qp). Starts in RESET.
    func createQueuePair(
        _ device: DeviceHandle, type: QueuePairType, completionQueue queue: CompletionQueueHandle, slots: Int
    ) throws(VerbsError) -> QueuePairHandle
    /// The queue pair's number (ibv_qp.qp_num).
    func queuePairNumber(_ queuePair: QueuePairHandle) -> UInt32
    /// One state transition (ibv_modify_qp).
    func modifyQueuePair(_ queuePair: QueuePairHandle, _ transition: QueuePairTransition) throws(VerbsError)
    /// Frees the queue pair and its buffers (ibv_destroy_qp, ibv_dereg_mr).
    func destroyQueuePair(_ queuePair: QueuePairHandle)
    /// An address handle to a remote port for UD sends (ibv_create_ah).
    func createAddressHandle(
        _ device: DeviceHandle, port: UInt8, remote: QueuePairAddress
    ) throws(VerbsError)
        -> AddressHandleHandle
    /// An address handle back to the sender of a UD receive (ibv_create_ah_from_wc, with the GRH
    /// in the receive's buffer): call before that receive is posted again.
    func createAddressHandle(
        _ device: DeviceHandle, port: UInt8, replyingTo completion: WorkCompletion, on queuePair: QueuePairHandle
    ) throws(VerbsError) -> AddressHandleHandle
    func destroyAddressHandle(_ handle: AddressHandleHandle)
    /// Posts one receive into buffer slot `(workRequestID & 0xFFFF_FFFF) % slots` (ibv_post_recv).
    func postReceive(_ queuePair: QueuePairHandle, workRequestID: UInt64) throws(VerbsError)
    /// Posts one signaled send carrying `immediate` (ibv_post_send).
    func postSend(
        _ queuePair: QueuePairHandle, workRequestID: UInt64, immediate: UInt32, kind: SendKind,
        to destination: SendDestination
    ) throws(VerbsError)
    /// Up to `maximum` completions, without blocking (ibv_poll_cq).
    func pollCompletions(_ queue: CompletionQueueHandle, maximum: Int) throws(VerbsError) -> [WorkCompletion]
    /// Up to `maximum` completions appended to `completions`, without blocking and without
    /// allocating when `completions` has the capacity (ibv_poll_cq). Returns how many.
    func pollCompletions(
        _ queue: CompletionQueueHandle, maximum: Int, into completions: inout [WorkCompletion]
    ) throws(VerbsError) -> Int
    /// Arms the queue's channel for the next completion (ibv_req_notify_cq).
    func requestNotification(_ queue: CompletionQueueHandle) throws(VerbsError)
    /// Blocks until the armed channel of any of `queues` fires, `wake` (a file descriptor, e.g. an
    /// eventfd another thread writes) becomes readable, or `timeoutNanoseconds` pass (poll(2) on the
    /// channels' fds and `wake`, then ibv_get_cq_event and ibv_ack_cq_events for each channel that
    /// fired). True if a channel fired; `wake` is not read. Never call on the cooperative pool.
    func waitForCompletion(
        _ queues: [CompletionQueueHandle], wake: Int32?, timeoutNanoseconds: UInt64
    ) throws(VerbsError) -> Bool
}

extension VerbsAPI {
    /// Over the allocating `pollCompletions` (the fake's); RealVerbs polls into its own buffer.
    public func pollCompletions(
        _ queue: CompletionQueueHandle, maximum: Int, into completions: inout [WorkCompletion]
    ) throws(VerbsError) -> Int {
        let polled = try pollCompletions(queue, maximum: maximum)
        completions.append(contentsOf: polled)
        return polled.count
    }

    /// `waitForCompletion` with nothing else to wake it.
    public func waitForCompletion(
        _ queues: [CompletionQueueHandle], timeoutNanoseconds: UInt64
    ) throws(VerbsError) -> Bool {
        try waitForCompletion(queues, wake: nil, timeoutNanoseconds: timeoutNanoseconds)
    }
}

extension VerbsAPI {
    /// Walks a queue pair RESET → INIT → RTR → RTS towards `remote` (RC) or just to RTS (UD), with
    /// the error naming the transition that failed.
    public func connect(
        _ queuePair: QueuePairHandle, port: UInt8, remote: QueuePairAddress, localPSN: UInt32, mtu: Int,
        qKey: UInt32 = ProbeDefaults.qKey, timeout: UInt8 = ProbeDefaults.ackTimeout,
        retryCount: UInt8 = ProbeDefaults.retryCount
    ) throws(VerbsError) {
        try modifyQueuePair(queuePair, .initialize(port: port, qKey: qKey))
        try modifyQueuePair(queuePair, .readyToReceive(remote: remote, mtu: mtu, port: port))
        try modifyQueuePair(queuePair, .readyToSend(psn: localPSN, timeout: timeout, retryCount: retryCount))
    }
}

/// The constants probes use unless configured otherwise.
public enum ProbeDefaults {
    /// The Q_Key of Faultline's UD queue pairs (any value both sides agree on; not 0x8000_0000+,
    /// which are privileged).
    public static let qKey: UInt32 = 0x4641_4C54  // "FALT"
    /// RC local ACK timeout exponent: 4.096 µs × 2^14 ≈ 67 ms, perftest's default.
    public static let ackTimeout: UInt8 = 14
    /// RC retries before IBV_WC_RETRY_EXC_ERR; fewer than perftest's 7 so a dead path surfaces
    /// within the probe timeout's order of magnitude rather than half a second later.
    public static let retryCount: UInt8 = 3
}

/// The MTU in bytes for ibv_mtu's raw value (1 = 256 ... 5 = 4096); 0 if unknown.
public func mtuBytes(rawMTU: UInt32) -> Int {
    (1...5).contains(rawMTU) ? 128 << Int(rawMTU) : 0
}

/// ibv_mtu's raw value for a size in bytes (the largest that fits, at least 256).
public func rawMTU(bytes: Int) -> UInt32 {
    var raw: UInt32 = 1
    while raw < 5, 128 << Int(raw + 1) <= bytes { raw += 1 }
    return raw
}
