// Plain values that cross the VerbsAPI boundary: device and port descriptions, queue pair types,
// states and addresses, work completions, and the opaque handles that name a device's objects.

/// Which kind of queue pair: reliable connected (one peer, retransmits in the NIC) or unreliable
/// datagram (any peer through an address handle, a lost packet stays lost).
public enum QueuePairType: String, Sendable, Hashable {
    case rc = "RC"
    case ud = "UD"
}

/// ibv_qp_state, the states a probe walks through (RESET → INIT → RTR → RTS) and ERR.
public enum QueuePairState: String, Sendable, Hashable {
    case reset = "RESET"
    case initialized = "INIT"
    case readyToReceive = "RTR"
    case readyToSend = "RTS"
    case error = "ERR"
}

/// A port's link layer: InfiniBand (addressed by LID) or Ethernet (RoCE, addressed by GID).
public enum LinkLayer: String, Sendable, Hashable {
    case infiniband = "InfiniBand"
    case ethernet = "Ethernet"
    case unspecified = "unspecified"
}

/// ibv_port_state.
public enum PortState: String, Sendable, Hashable {
    case down = "DOWN"
    case initializing = "INIT"
    case armed = "ARMED"
    case active = "ACTIVE"
    case activeDeferred = "ACTIVE_DEFER"
    case unknown = "UNKNOWN"

    /// From ibv_port_state's raw value (1 DOWN ... 5 ACTIVE_DEFER, 0 NOP).
    public init(rawState: UInt32) {
        switch rawState {
        case 1: self = .down
        case 2: self = .initializing
        case 3: self = .armed
        case 4: self = .active
        case 5: self = .activeDeferred
        default: self = .unknown
        }
    }
}

/// A 128-bit GID (the port's IPv6-like address; for RoCE it carries the interface's IP).
public struct GID: Hashable, Sendable, CustomStringConvertible {
    /// The 16 bytes in network order.
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16, "a GID is 16 bytes")
        self.bytes = bytes
    }

    public static let zero = GID(bytes: [UInt8](repeating: 0, count: 16))
    public var isZero: Bool { bytes.allSatisfy { $0 == 0 } }

    /// `fe80:0000:0000:0000:0e42:a1ff:fe2b:3c4d`, as `show_gids` prints them.
    public var description: String {
        stride(from: 0, to: 16, by: 2).map { hex(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), width: 4) }
            .joined(separator: ":")
    }
}

/// One port of a device as ibv_query_port (and ibv_query_gid) see it.
public struct PortInfo: Hashable, Sendable {
    /// 1-based port number.
    public var number: UInt8
    public var state: PortState
    public var linkLayer: LinkLayer
    /// ibv_port_attr.active_speed, the IB encoding (1 SDR ... 128 NDR); see `speedName`.
    public var activeSpeed: UInt8
    /// ibv_port_attr.active_width (1 = 1x, 2 = 4x, 4 = 8x, 8 = 12x, 16 = 2x).
    public var activeWidth: UInt8
    /// Active MTU in bytes (256...4096).
    public var mtu: Int
    public var lid: UInt16
    /// The non-zero entries of the GID table, by index (RoCE needs them; IB has the link-local one).
    public var gids: [Int: GID]

    public init(
        number: UInt8, state: PortState, linkLayer: LinkLayer, activeSpeed: UInt8, activeWidth: UInt8,
        mtu: Int, lid: UInt16, gids: [Int: GID] = [:]
    ) {
        self.number = number
        self.state = state
        self.linkLayer = linkLayer
        self.activeSpeed = activeSpeed
        self.activeWidth = activeWidth
        self.mtu = mtu
        self.lid = lid
        self.gids = gids
    }

    /// The lanes of `activeWidth`, 0 if unknown.
    public var lanes: Int {
        switch activeWidth {
        case 1: 1
        case 2: 4
        case 4: 8
        case 8: 12
        case 16: 2
        default: 0
        }
    }

    /// The name of `activeSpeed` (SDR, DDR, QDR, FDR10, FDR, EDR, HDR, NDR, XDR), or `speed N`.
    public var speedName: String {
        switch activeSpeed {
        case 1: "SDR"
        case 2: "DDR"
        case 4: "QDR"
        case 8: "FDR10"
        case 16: "FDR"
        case 32: "EDR"
        case 64: "HDR"
        case 128: "NDR"
        case 255: "XDR"
        default: "speed \(activeSpeed)"
        }
    }

    /// The GID index a probe should use: for Ethernet (RoCE) the highest non-zero entry (RoCE v2 on
    /// IPv4 is usually last, as perftest's auto-selection finds it); for IB none (LID routing).
    public var probeGIDIndex: Int? {
        linkLayer == .ethernet ? gids.keys.max() : nil
    }
}

/// A device: its name, node GUID, firmware and ports.
public struct DeviceInfo: Hashable, Sendable {
    public var name: String
    /// Node GUID in host order (printed as four groups of four hex digits).
    public var guid: UInt64
    public var firmware: String
    public var ports: [PortInfo]

    public init(name: String, guid: UInt64, firmware: String = "", ports: [PortInfo]) {
        self.name = name
        self.guid = guid
        self.firmware = firmware
        self.ports = ports
    }

    /// `0c42:a103:0012:3456`, as ibv_devinfo prints node_guid.
    public var guidText: String {
        stride(from: 48, through: 0, by: -16).map {
            hex(UInt16(truncatingIfNeeded: guid >> UInt64($0)), width: 4)
        }
        .joined(separator: ":")
    }
}

/// What a peer needs to reach a queue pair: its LID (IB), GID (RoCE or routed IB), QP number and
/// the packet sequence number it starts receiving at.
public struct QueuePairAddress: Hashable, Sendable, CustomStringConvertible {
    public var lid: UInt16
    public var gid: GID?
    /// The GID index on the *local* port to send from when `gid` is set.
    public var gidIndex: Int
    public var qpNumber: UInt32
    public var psn: UInt32

    public init(lid: UInt16, gid: GID? = nil, gidIndex: Int = 0, qpNumber: UInt32, psn: UInt32 = 0) {
        self.lid = lid
        self.gid = gid
        self.gidIndex = gidIndex
        self.qpNumber = qpNumber
        self.psn = psn
    }

    public var description: String {
        "lid \(lid) qpn 0x\(hex(qpNumber, width: 6)) psn 0x\(hex(psn, width: 6))"
            + (gid.map { " gid \($0)" } ?? "")
    }
}

/// ibv_wc_status, the ones a probe tells apart; everything else keeps its raw value.
public enum CompletionStatus: Hashable, Sendable {
    case success
    /// IBV_WC_WR_FLUSH_ERR: the queue pair went to ERR and its outstanding work was flushed.
    case flushed
    /// IBV_WC_RETRY_EXC_ERR: the peer never acknowledged (RC), after every retry.
    case retryExceeded
    /// IBV_WC_RNR_RETRY_EXC_ERR: the peer had no receive posted, after every retry.
    case receiverNotReady
    case other(UInt32)

    public init(raw: UInt32) {
        switch raw {
        case 0: self = .success
        case 5: self = .flushed
        case 12: self = .retryExceeded
        case 13: self = .receiverNotReady
        default: self = .other(raw)
        }
    }
}

/// What a completion was for.
public enum CompletionOpcode: Hashable, Sendable {
    case send
    case rdmaWrite
    case receive
    /// A receive consumed by an RDMA WRITE with immediate.
    case receiveRDMAWithImmediate
    case other(UInt32)
}

/// One entry polled from a completion queue (ibv_wc, the fields a probe reads).
public struct WorkCompletion: Hashable, Sendable {
    public var workRequestID: UInt64
    public var status: CompletionStatus
    public var opcode: CompletionOpcode
    /// The queue pair this completion belongs to (ibv_wc.qp_num).
    public var qpNumber: UInt32
    /// Immediate data in host order, if the message carried any.
    public var immediate: UInt32?
    /// For receives on UD: the sender's QP number and LID (ibv_wc.src_qp, slid), and its GID when
    /// the packet had a GRH (RoCE, routed IB; ibv_wc_flags IBV_WC_GRH, read from the GRH).
    public var sourceQPNumber: UInt32
    public var sourceLID: UInt16
    public var sourceGID: GID?
    /// ibv_wc.sl and dlid_path_bits, which an address handle back to the sender needs.
    public var serviceLevel: UInt8 = 0
    public var pathBits: UInt8 = 0

    public init(
        workRequestID: UInt64, status: CompletionStatus, opcode: CompletionOpcode, qpNumber: UInt32,
        immediate: UInt32? = nil, sourceQPNumber: UInt32 = 0, sourceLID: UInt16 = 0, sourceGID: GID? = nil
    ) {
        self.sourceGID = sourceGID
        self.workRequestID = workRequestID
        self.status = status
        self.opcode = opcode
        self.qpNumber = qpNumber
        self.immediate = immediate
        self.sourceQPNumber = sourceQPNumber
        self.sourceLID = sourceLID
    }
}

/// An open device, as a VerbsAPI implementation numbers it.
public struct DeviceHandle: Hashable, Sendable {
    public let rawValue: Int; public init(_ v: Int) { rawValue = v }
}
/// A completion queue with its completion channel.
public struct CompletionQueueHandle: Hashable, Sendable {
    public let rawValue: Int; public init(_ v: Int) { rawValue = v }
}
/// A queue pair with its registered buffers.
public struct QueuePairHandle: Hashable, Sendable {
    public let rawValue: Int; public init(_ v: Int) { rawValue = v }
}
/// An address handle (UD): where a datagram goes.
public struct AddressHandleHandle: Hashable, Sendable {
    public let rawValue: Int; public init(_ v: Int) { rawValue = v }
}

/// Where a send goes: on RC the connected peer; on UD an address handle, QP number and Q_Key.
public enum SendDestination: Hashable, Sendable {
    case connected
    case datagram(AddressHandleHandle, qpNumber: UInt32, qKey: UInt32)
}

/// How a send carries the probe's sequence number: SEND with immediate (consumes a receive at the
/// peer) or RDMA WRITE with immediate (writes nothing the probe needs, but also consumes a receive).
public enum SendKind: Hashable, Sendable {
    case sendWithImmediate
    case rdmaWriteWithImmediate
}

/// Lowercase hex of `value`, zero-padded to `width`.
func hex<T: BinaryInteger>(_ value: T, width: Int) -> String {
    let text = String(value, radix: 16)
    return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
}
