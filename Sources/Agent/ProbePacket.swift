// The UDP probe on the wire (docs/agent.md, "UDP probes"): a fixed 40-byte header (magic, version,
// kind, rails, the prober's session, sequence and monotonic send time, the responder's hold time)
// and the prober's node name. A responder echoes a request back as a reply, with the time it held
// the request filled in and every other byte unchanged. `ProbePacket` is the value;
// `ProbeDatagram` reads a received one in place (the per-datagram path allocates nothing).

import FleetModel

public struct ProbePacket: Hashable, Sendable {
    public enum Kind: UInt8, Sendable {
        case request = 1
        case reply = 2
    }

    /// "FLPB": Faultline probe.
    public static let magic: [UInt8] = [0x46, 0x4C, 0x50, 0x42]
    public static let version: UInt8 = 2
    public static let headerBytes = 40
    public static let maxNameBytes = 63
    public static let maxBytes = headerBytes + 1 + maxNameBytes
    static let kindOffset = 5
    static let holdOffset = 32

    public var kind: Kind
    public var srcRail: UInt8
    public var dstRail: UInt8
    /// Random per agent process: replies to an earlier run of the agent are not ours.
    public var session: UInt64
    public var sequence: UInt64
    /// The prober's CLOCK_MONOTONIC at sending, in nanoseconds.
    public var sendTime: UInt64
    /// In a reply: how long the responder held the request, from the kernel's receiving it to the
    /// answer's `sendto`, minus any injected delay (which stands for the network), in nanoseconds.
    /// The prober takes it off the RTT. 0 in a request.
    public var hold: UInt64
    /// The prober's node (for faults per peer and the responder's counters).
    public var srcNode: String

    public init(
        kind: Kind, srcRail: UInt8, dstRail: UInt8, session: UInt64, sequence: UInt64, sendTime: UInt64,
        hold: UInt64 = 0, srcNode: String
    ) {
        self.kind = kind
        self.srcRail = srcRail
        self.dstRail = dstRail
        self.session = session
        self.sequence = sequence
        self.sendTime = sendTime
        self.hold = hold
        self.srcNode = srcNode
    }

    public var bytes: [UInt8] {
        let name = Array(srcNode.utf8.prefix(Self.maxNameBytes))
        return [UInt8](unsafeUninitializedCapacity: Self.headerBytes + 1 + name.count) { buffer, count in
            count = name.withUnsafeBytes { name in
                Self.encode(
                    kind: kind, srcRail: srcRail, dstRail: dstRail, session: session, sequence: sequence,
                    sendTime: sendTime, hold: hold, srcNode: name, into: UnsafeMutableRawBufferPointer(buffer))
            }
        }
    }

    /// Writes a datagram into `buffer` (room for `headerBytes + 1 + srcNode.count`, the name at most
    /// `maxNameBytes`) and returns its length.
    static func encode(
        kind: Kind, srcRail: UInt8, dstRail: UInt8, session: UInt64, sequence: UInt64, sendTime: UInt64,
        hold: UInt64 = 0, srcNode: UnsafeRawBufferPointer, into buffer: UnsafeMutableRawBufferPointer
    ) -> Int {
        precondition(srcNode.count <= maxNameBytes && buffer.count >= headerBytes + 1 + srcNode.count)
        for (index, byte) in magic.enumerated() { buffer[index] = byte }
        (buffer[4], buffer[5], buffer[6], buffer[7]) = (version, kind.rawValue, srcRail, dstRail)
        buffer.storeBytes(of: session.bigEndian, toByteOffset: 8, as: UInt64.self)
        buffer.storeBytes(of: sequence.bigEndian, toByteOffset: 16, as: UInt64.self)
        buffer.storeBytes(of: sendTime.bigEndian, toByteOffset: 24, as: UInt64.self)
        buffer.storeBytes(of: hold.bigEndian, toByteOffset: holdOffset, as: UInt64.self)
        buffer[headerBytes] = UInt8(srcNode.count)
        UnsafeMutableRawBufferPointer(rebasing: buffer[(headerBytes + 1)..<(headerBytes + 1 + srcNode.count)])
            .copyMemory(from: srcNode)
        return headerBytes + 1 + srcNode.count
    }

    /// Parses a datagram; nil for anything that is not a well-formed probe of our version.
    public init?(_ bytes: some Collection<UInt8>) {
        guard
            let packet = Array(bytes).withUnsafeBytes({ raw in
                ProbeDatagram(raw).map {
                    ProbePacket(
                        kind: $0.kind, srcRail: $0.srcRail, dstRail: $0.dstRail, session: $0.session,
                        sequence: $0.sequence, sendTime: $0.sendTime, hold: $0.hold, srcNode: $0.srcNode)
                }
            })
        else { return nil }
        self = packet
    }
}

/// A received datagram, validated once and read in place. Valid only as long as its buffer.
struct ProbeDatagram {
    let bytes: UnsafeRawBufferPointer
    let kind: ProbePacket.Kind

    /// Nil for anything that is not a well-formed probe of our version.
    init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > ProbePacket.headerBytes, bytes.count <= ProbePacket.maxBytes,
            bytes.prefix(4).elementsEqual(ProbePacket.magic), bytes[4] == ProbePacket.version,
            let kind = ProbePacket.Kind(rawValue: bytes[ProbePacket.kindOffset]),
            bytes[6] < 64, bytes[7] < 64,
            bytes.count == ProbePacket.headerBytes + 1 + Int(bytes[ProbePacket.headerBytes])
        else { return nil }
        self.bytes = bytes
        self.kind = kind
    }

    var srcRail: UInt8 { bytes[6] }
    var dstRail: UInt8 { bytes[7] }
    var session: UInt64 { word(at: 8) }
    var sequence: UInt64 { word(at: 16) }
    var sendTime: UInt64 { word(at: 24) }
    var hold: UInt64 { word(at: ProbePacket.holdOffset) }
    var srcNode: String { String(decoding: bytes[(ProbePacket.headerBytes + 1)...], as: UTF8.self) }

    private func word(at offset: Int) -> UInt64 {
        UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// Turns the request in `buffer` (a datagram's own bytes) into its reply, held `hold` ns.
    static func makeReply(_ buffer: UnsafeMutableRawBufferPointer, hold: UInt64) {
        buffer[ProbePacket.kindOffset] = ProbePacket.Kind.reply.rawValue
        buffer.storeBytes(of: hold.bigEndian, toByteOffset: ProbePacket.holdOffset, as: UInt64.self)
    }
}
