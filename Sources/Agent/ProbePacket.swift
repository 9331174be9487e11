// The UDP probe on the wire (docs/agent.md, "UDP probes"): a fixed 32-byte header (magic, version,
// kind, rails, the prober's session, sequence and monotonic send time) and the prober's node name.
// A responder echoes a request back as a reply with every other byte unchanged.

import FleetModel

public struct ProbePacket: Hashable, Sendable {
    public enum Kind: UInt8, Sendable {
        case request = 1
        case reply = 2
    }

    /// "FLPB": Faultline probe.
    public static let magic: [UInt8] = [0x46, 0x4C, 0x50, 0x42]
    public static let version: UInt8 = 1
    public static let headerBytes = 32
    public static let maxBytes = headerBytes + 1 + 63

    public var kind: Kind
    public var srcRail: UInt8
    public var dstRail: UInt8
    /// Random per agent process: replies to an earlier run of the agent are not ours.
    public var session: UInt64
    public var sequence: UInt64
    /// The prober's CLOCK_MONOTONIC at sending, in nanoseconds.
    public var sendTime: UInt64
    /// The prober's node (for faults per peer and the responder's counters).
    public var srcNode: String

    public init(
        kind: Kind, srcRail: UInt8, dstRail: UInt8, session: UInt64, sequence: UInt64, sendTime: UInt64,
        srcNode: String
    ) {
        self.kind = kind
        self.srcRail = srcRail
        self.dstRail = dstRail
        self.session = session
        self.sequence = sequence
        self.sendTime = sendTime
        self.srcNode = srcNode
    }

    public var bytes: [UInt8] {
        var out = Self.magic
        out.reserveCapacity(Self.maxBytes)
        out += [Self.version, kind.rawValue, srcRail, dstRail]
        for value in [session, sequence, sendTime] {
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
            }
        }
        let name = Array(srcNode.utf8.prefix(63))
        out.append(UInt8(name.count))
        out += name
        return out
    }

    /// Parses a datagram; nil for anything that is not a well-formed probe of our version.
    public init?(_ bytes: some RandomAccessCollection<UInt8>) {
        let bytes = Array(bytes)
        guard bytes.count > Self.headerBytes, bytes.count <= Self.maxBytes, Array(bytes[0..<4]) == Self.magic,
            bytes[4] == Self.version, let kind = Kind(rawValue: bytes[5])
        else { return nil }
        func word(_ at: Int) -> UInt64 { bytes[at..<(at + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
        let length = Int(bytes[32])
        guard bytes.count == Self.headerBytes + 1 + length, bytes[6] < 64, bytes[7] < 64 else { return nil }
        self.init(
            kind: kind, srcRail: bytes[6], dstRail: bytes[7], session: word(8), sequence: word(16),
            sendTime: word(24), srcNode: String(decoding: bytes[33...], as: UTF8.self))
    }
}
