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
    /// Opens a device by name (ibv_open_device) with one protection domain (ibv_alloc_pd).
    func openDevice(_ name: String) throws(VerbsError) -> DeviceHandle
    /// The device's GUID, firmware and ports (ibv_query_device, ibv_query_port, ibv_query_gid).
    func queryDevice(_ device: DeviceHandle) throws(VerbsError) -> DeviceInfo
    /// A completion queue of `entries` with its own completion channel (ibv_create_comp_channel,
    /// ibv_create_cq).
    func createCompletionQueue(
        _ device: DeviceHandle, entries: Int
    ) throws(VerbsError)
        -> CompletionQueueHandle
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
    func destroyAddressHandle(_ handle: AddressHandleHandle)
    /// Posts one receive into buffer slot `workRequestID % slots` (ibv_post_recv).
    func postReceive(_ queuePair: QueuePairHandle, workRequestID: UInt64) throws(VerbsError)
    /// Posts one signaled send carrying `immediate` (ibv_post_send).
    func postSend(
        _ queuePair: QueuePairHandle, workRequestID: UInt64, immediate: UInt32, kind: SendKind,
        to destination: SendDestination
    ) throws(VerbsError)
    /// Up to `maximum` completions, without blocking (ibv_poll_cq).
    func pollCompletions(_ queue: CompletionQueueHandle, maximum: Int) throws(VerbsError) -> [WorkCompletion]
    /// Arms the queue's channel for the next completion (ibv_req_notify_cq).
    func requestNotification(_ queue: CompletionQueueHandle) throws(VerbsError)
    /// Blocks until the armed channel of any of `queues` fires or `timeoutNanoseconds` pass (poll on
    /// the channels' fds, then ibv_get_cq_event and ibv_ack_cq_events for each that fired). True if
    /// one fired. Never call on the cooperative pool.
    func waitForCompletion(
        _ queues: [CompletionQueueHandle], timeoutNanoseconds: UInt64
    ) throws(VerbsError) -> Bool
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
